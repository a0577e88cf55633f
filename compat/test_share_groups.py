"""Share groups (KIP-932) with the real client: confluent-kafka's ShareConsumer
(librdkafka 2.16). Work-queue semantics: records handed to one member at a time,
acknowledged one by one, redelivered when released or when a holder dies, dead-lettered
when rejected or delivered too often; share state survives broker restarts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import AcknowledgeType, Consumer, ShareConsumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from helpers import admin, create_topic, produce_all, producer

WORKER = Path(__file__).resolve().parent / "share_worker.py"


def start_at_earliest(bootstrap: str, group: str) -> None:
    """Kafka's default share.auto.offset.reset is latest; these tests produce first."""
    client = admin(bootstrap)
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=15)


def share_consumer(bootstrap: str, group: str, topic: str, explicit: bool = False) -> ShareConsumer:
    config = {"bootstrap.servers": bootstrap, "group.id": group}
    if explicit:
        config["share.acknowledgement.mode"] = "explicit"
    consumer = ShareConsumer(config)
    consumer.subscribe([topic])
    return consumer


def poll_records(consumer: ShareConsumer, timeout: float = 1.0) -> list:
    return [m for m in consumer.poll(timeout) if not m.error()]


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list:
    """Every record of partition 0 of `topic` (a plain consumer, no group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            records.append(message)
    consumer.close()
    return records


def test_three_workers_process_each_record_exactly_once(broker, names, tmp_path):
    topic, group = names("t"), names("g")
    create_topic(broker.bootstrap, topic)
    produce_all(producer(broker.bootstrap), topic, [b"%d" % i for i in range(10_000)])
    start_at_earliest(broker.bootstrap, group)
    outputs = [tmp_path / f"worker{i}.txt" for i in range(3)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), broker.bootstrap, group, topic, "accept"],
            stdout=out.open("w"),
            stderr=subprocess.DEVNULL,
        )
        for out in outputs
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    seen = [[int(line.split()[0]) for line in out.read_text().splitlines()] for out in outputs]
    every = [offset for offsets in seen for offset in offsets]
    assert sorted(every) == list(range(10_000)), f"{len(every)} deliveries, {len(set(every))} distinct"
    assert sum(1 for offsets in seen if offsets) >= 2, [len(offsets) for offsets in seen]


def test_release_redelivers_with_a_higher_delivery_count(broker, names):
    topic, group = names("t"), names("g")
    create_topic(broker.bootstrap, topic)
    produce_all(producer(broker.bootstrap), topic, [b"%d" % i for i in range(50)])
    start_at_earliest(broker.bootstrap, group)
    consumer = share_consumer(broker.bootstrap, group, topic, explicit=True)
    deliveries: dict[int, list[int]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(len(deliveries.get(i, [])) == 2 for i in range(50)):
        for message in poll_records(consumer):
            deliveries.setdefault(message.offset(), []).append(message.delivery_count())
            first = message.delivery_count() == 1
            consumer.acknowledge(message, AcknowledgeType.RELEASE if first else AcknowledgeType.ACCEPT)
    consumer.close()
    assert {offset: counts for offset, counts in deliveries.items() if counts != [1, 2]} == {}
    assert sorted(deliveries) == list(range(50))


def test_reject_never_redelivers_and_dead_letters(make_broker, names):
    b = make_broker({"sluice.share.dlq.topic": "{topic}.dlq.{group}"})
    topic, group = names("t"), names("g")
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [b"v%d" % i for i in range(20)], key=b"k")
    start_at_earliest(b.bootstrap, group)
    consumer = share_consumer(b.bootstrap, group, topic, explicit=True)
    delivered: list[int] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for message in poll_records(consumer, 0.5):
            delivered.append(message.offset())
            reject = message.offset() % 2 == 0
            consumer.acknowledge(message, AcknowledgeType.REJECT if reject else AcknowledgeType.ACCEPT)
    consumer.close()
    assert sorted(delivered) == list(range(20)), "a rejected record came back, or one never came"
    dead = read_topic(b.bootstrap, f"{topic}.dlq.{group}", 10)
    assert [m.value() for m in dead] == [b"v%d" % i for i in range(0, 20, 2)]
    headers = dict(dead[0].headers())
    assert dead[0].key() == b"k"
    assert headers["sluice.dlq.original.topic"] == topic.encode()
    assert headers["sluice.dlq.original.partition"] == b"0"
    assert headers["sluice.dlq.original.offset"] == b"0"
    assert headers["sluice.dlq.group"] == group.encode()
    assert headers["sluice.dlq.delivery.count"] == b"1"
    assert headers["sluice.dlq.reason"] == b"REJECTED"


def test_delivery_count_limit_archives_into_the_dead_letter_topic(make_broker, names):
    b = make_broker({"sluice.share.dlq.topic": "{topic}-dlq", "group.share.delivery.count.limit": "3"})
    topic, group = names("t"), names("g")
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [b"poison"])
    start_at_earliest(b.bootstrap, group)
    consumer = share_consumer(b.bootstrap, group, topic, explicit=True)
    counts: list[int] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for message in poll_records(consumer, 0.5):
            counts.append(message.delivery_count())
            consumer.acknowledge(message, AcknowledgeType.RELEASE)
    consumer.close()
    assert counts == [1, 2, 3]
    dead = read_topic(b.bootstrap, f"{topic}-dlq", 1)
    assert [m.value() for m in dead] == [b"poison"]
    headers = dict(dead[0].headers())
    assert headers["sluice.dlq.reason"] == b"DELIVERY_COUNT_EXCEEDED"
    assert headers["sluice.dlq.delivery.count"] == b"3"
    assert headers["sluice.dlq.original.offset"] == b"0"


def test_records_of_a_killed_worker_are_redelivered_after_the_lock_timeout(make_broker, names, tmp_path):
    b = make_broker({"group.share.record.lock.duration.ms": "3000"})
    topic, group = names("t"), names("g")
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [b"%d" % i for i in range(100)])
    start_at_earliest(b.bootstrap, group)
    out = tmp_path / "holder.txt"
    holder = subprocess.Popen(
        [sys.executable, str(WORKER), b.bootstrap, group, topic, "hold"], stdout=out.open("w"), stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while "held" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    held = [int(line.split()[0]) for line in out.read_text().splitlines() if line != "held"]
    assert held, "the holder got no records"
    holder.kill()
    holder.wait()
    killed_at = time.monotonic()
    consumer = share_consumer(b.bootstrap, group, topic)
    redelivered: dict[int, tuple[int, float]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(redelivered) < 100:
        for message in poll_records(consumer, 0.5):
            redelivered[message.offset()] = (message.delivery_count(), time.monotonic() - killed_at)
    consumer.close()
    assert sorted(redelivered) == list(range(100))
    for offset in held:
        count, after = redelivered[offset]
        assert count == 2, f"offset {offset}: delivery count {count}"
        assert after >= 1.5, f"offset {offset} redelivered {after:.1f}s after the kill, before its lock expired"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_broker_restart_loses_no_acknowledgement(make_broker, names, how):
    b = make_broker()
    topic, group = names("t"), names("g")
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [b"%d" % i for i in range(1000)])
    start_at_earliest(b.bootstrap, group)
    consumer = share_consumer(b.bootstrap, group, topic, explicit=True)
    accepted: set[int] = set()
    in_flight: set[int] = set()
    deadline = time.monotonic() + 30
    while len(accepted) < 300 and time.monotonic() < deadline:
        for message in poll_records(consumer):
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            in_flight.add(message.offset())
        results = consumer.commit_sync(10)
        assert all(error is None for error in results.values()), results
        accepted |= in_flight
        in_flight = set()
    assert len(accepted) >= 300
    # One more batch, acquired and never acknowledged: it must come back after the restart.
    held = {m.offset() for m in poll_records(consumer, 5)}
    if how == "SIGKILL":
        b.kill()
        b.start()
    else:
        b.restart()
    consumer.close()
    consumer = share_consumer(b.bootstrap, group, topic)
    after: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(accepted) + len(after) < 1000:
        after += [m.offset() for m in poll_records(consumer)]
    consumer.close()
    assert not accepted & set(after), f"acknowledged records delivered again: {sorted(accepted & set(after))[:10]}"
    assert held <= set(after)
    assert sorted(accepted | set(after)) == list(range(1000))


def test_share_groups_are_described_and_deleted(broker, names):
    topic, group = names("t"), names("g")
    create_topic(broker.bootstrap, topic)
    produce_all(producer(broker.bootstrap), topic, [b"%d" % i for i in range(10)])
    start_at_earliest(broker.bootstrap, group)
    consumer = share_consumer(broker.bootstrap, group, topic, explicit=True)
    got = []
    deadline = time.monotonic() + 15
    while len(got) < 10 and time.monotonic() < deadline:
        got += poll_records(consumer)
    for message in got[:4]:
        consumer.acknowledge(message, AcknowledgeType.ACCEPT)
    for message in got[4:]:
        consumer.acknowledge(message, AcknowledgeType.RELEASE)
    consumer.commit_sync(10)
    client = admin(broker.bootstrap)
    # (Listing: confluent-kafka 2.16 has no share group type and drops such groups from
    # list_consumer_groups; SluiceKafkaTests covers ListGroups.)
    configs = client.describe_configs([ConfigResource(ResourceType.GROUP, group)])
    entries = list(configs.values())[0].result(timeout=15)
    assert entries["share.auto.offset.reset"].value == "earliest"
    assert entries[f"sluice.stats.share.{topic}.0.start.offset"].value == "4"
    assert entries[f"sluice.stats.share.{topic}.0.acquired"].value == "0"

    # A group with a member is not deleted; once it is empty, it goes with its state.
    with pytest.raises(Exception, match="NON_EMPTY_GROUP"):
        client.delete_consumer_groups([group])[group].result(timeout=15)
    consumer.close()
    client.delete_consumer_groups([group])[group].result(timeout=15)
    with pytest.raises(Exception, match="GROUP_ID_NOT_FOUND"):
        client.delete_consumer_groups([group])[group].result(timeout=15)
    # Its state went with it: the group starts again at the default position (latest).
    entries = list(client.describe_configs([ConfigResource(ResourceType.GROUP, group)]).values())[0].result(timeout=15)
    assert entries["share.auto.offset.reset"].value == "latest"
    assert not [name for name in entries if name.startswith("sluice.stats.")]


def sluice_cli(*args: str, bootstrap: str, timeout: float = 60) -> str:
    import os

    from conftest import sluice_binary

    result = subprocess.run(
        [str(sluice_binary()), *args, "--bootstrap", bootstrap],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "SWIFT_BACKTRACE": "enable=no"},
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def test_swift_share_consumer_shares_a_group_with_librdkafka(broker, names):
    """`sluice consume --share-group` (KafkaShareConsumer) and confluent-kafka's
    ShareConsumer in one share group: together they see every record once; records the
    Swift member releases come back to the other with delivery count 2; `sluice group
    describe` shows the share group."""
    topic, group = names("t"), names("g")
    create_topic(broker.bootstrap, topic)
    # One record per batch: a share fetch hands out whole batches, and the counts below
    # are exact only when a batch is one record.
    produce_all(producer(broker.bootstrap, **{"linger.ms": 0, "batch.num.messages": 1}), topic, [b"%d" % i for i in range(200)])
    start_at_earliest(broker.bootstrap, group)
    accepted = [int(x) for x in sluice_cli("consume", topic, "--share-group", group, "--count", "50", "--format", "%o\\n", bootstrap=broker.bootstrap).split()]
    released = [int(x) for x in sluice_cli("consume", topic, "--share-group", group, "--count", "10", "--ack", "release", "--format", "%o\\n", bootstrap=broker.bootstrap).split()]
    assert len(set(accepted)) == 50 and len(set(released)) == 10 and not set(accepted) & set(released)
    consumer = share_consumer(broker.bootstrap, group, topic, explicit=True)
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 20
    while len(seen) < 150 and time.monotonic() < deadline:
        for message in poll_records(consumer):
            seen[message.offset()] = message.delivery_count()
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
        consumer.commit_sync(10)
    described = sluice_cli("group", "describe", group, bootstrap=broker.bootstrap)
    consumer.close()
    assert sorted(set(seen) | set(accepted)) == list(range(200))
    assert not set(seen) & set(accepted)
    assert {offset: seen[offset] for offset in released} == {offset: 2 for offset in released}
    assert f"share group {group}" in described
    assert f"{topic}\t0\t200\t200\t0\t" in described, described

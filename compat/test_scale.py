"""Tens of thousands of partitions under this machine's descriptor limit (issue #26).

20,000 partitions (four topics of 5,000; a topic is capped at 10,000) are created with
confluent-kafka's AdminClient, written (one record each), restarted cleanly and after a
SIGKILL, and read back, by a broker that inherits the test's RLIMIT_NOFILE (20,000 here).
The broker's descriptors on log files stay within `sluice.log.max.open.files` (by default a
quarter of that limit) throughout.
"""
from __future__ import annotations

import os
import resource
import time

import pytest

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from helpers import producer

TOPICS = 4
PARTITIONS = 5_000


def log_descriptors(pid: int, data_dir) -> tuple[int, int]:
    """(descriptors on partition log files — segments and indexes — in the data directory,
    all descriptors) of a process."""
    under, total = 0, 0
    prefix = str(data_dir) + "/"
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        total += 1
        # The committed-offsets and share-state journals are not partition logs.
        in_partition = target.startswith(prefix) and not target.startswith(
            (prefix + "group-offsets/", prefix + "share-groups/")
        )
        under += in_partition and target.endswith((".log", ".index", ".timeindex"))
    return under, total


def latest_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    client = AdminClient({"bootstrap.servers": bootstrap})
    wanted = {TopicPartition(t, p): OffsetSpec.latest() for t in topics for p in range(PARTITIONS)}
    futures = client.list_offsets(wanted, request_timeout=120)
    return {(tp.topic, tp.partition): f.result(timeout=180).offset for tp, f in futures.items()}


@pytest.mark.timeout(600)
def test_twenty_thousand_partitions_under_the_descriptor_limit(make_broker, names):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = max(64, soft // 4)  # the broker's default sluice.log.max.open.files
    broker = make_broker()
    pid = broker.proc.pid
    topics = [names() for _ in range(TOPICS)]

    started = time.monotonic()
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.create_topics(
        [NewTopic(t, PARTITIONS, replication_factor=1) for t in topics], operation_timeout=300, request_timeout=300
    )
    for t in topics:
        futures[t].result(timeout=320)
    print(f"created {TOPICS * PARTITIONS} partitions in {time.monotonic() - started:.1f} s")
    under, total = log_descriptors(pid, broker.data_dir)
    assert under <= cap, f"{under} descriptors on log files, cap {cap}"
    assert total < soft

    p = producer(broker.bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000})
    errors: list = []
    for t in topics:
        for partition in range(PARTITIONS):
            while True:
                try:
                    p.produce(
                        t,
                        value=f"{t}:{partition}".encode(),
                        partition=partition,
                        on_delivery=lambda err, msg: err and errors.append(err),
                    )
                    break
                except BufferError:
                    p.poll(0.05)
    assert p.flush(180) == 0 and not errors, errors[:5]
    under, total = log_descriptors(pid, broker.data_dir)
    assert under <= cap, f"{under} descriptors on log files after writing, cap {cap}"

    started = time.monotonic()
    broker.restart()
    print(f"clean restart (stop and start) in {time.monotonic() - started:.1f} s")
    offsets = latest_offsets(broker.bootstrap, topics)
    assert len(offsets) == TOPICS * PARTITIONS
    assert all(o == 1 for o in offsets.values()), [k for k, o in offsets.items() if o != 1][:5]

    # Every record back, each in its own partition.
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": names("g"),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    c.assign([TopicPartition(t, partition, 0) for t in topics for partition in range(PARTITIONS)])
    seen: dict[tuple[str, int], bytes] = {}
    deadline = time.monotonic() + 240
    while len(seen) < TOPICS * PARTITIONS and time.monotonic() < deadline:
        for m in c.consume(10000, timeout=1):
            assert m.error() is None, m.error()
            seen[(m.topic(), m.partition())] = m.value()
    c.close()
    print(f"read back {len(seen)} partitions' records in {time.monotonic() - deadline + 240:.1f} s")
    assert len(seen) == TOPICS * PARTITIONS
    assert all(v == f"{t}:{partition}".encode() for (t, partition), v in seen.items())
    under, _ = log_descriptors(broker.proc.pid, broker.data_dir)
    assert under <= cap, f"{under} descriptors on log files after reading, cap {cap}"

    # After a SIGKILL every log is recovered in full; nothing acknowledged is lost.
    broker.kill()
    started = time.monotonic()
    broker.start(timeout=240)
    print(f"start after SIGKILL in {time.monotonic() - started:.1f} s")
    offsets = latest_offsets(broker.bootstrap, topics)
    assert all(o == 1 for o in offsets.values()), [k for k, o in offsets.items() if o != 1][:5]

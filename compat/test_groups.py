"""Consumer groups (classic protocol) and committed offsets with real clients:
confluent-kafka (librdkafka), kafka-python, aiokafka and kcat."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from helpers import admin, create_topic, kcat, produce_all, producer


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def group_consumer(bootstrap: str, group: str, **config) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(config)
    return Consumer(conf)


def poll_values(c: Consumer, count: int, timeout: float = 30) -> list[bytes]:
    """Polls until `count` records arrived (one at a time, so positions stop right there)."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert not m.error(), m.error()
        out.append(m.value())
    assert len(out) == count, f"got {len(out)} of {count} records within {timeout}s"
    return out


def fill(bootstrap: str, topic: str, partitions: int, per_partition: int, prefix: str = "v") -> set[bytes]:
    p = producer(bootstrap)
    values: set[bytes] = set()
    for part in range(partitions):
        batch = [f"{prefix}-{part}-{i}".encode() for i in range(per_partition)]
        produce_all(p, topic, batch, partition=part)
        values.update(batch)
    return values


class Member:
    """A confluent-kafka group member polled by a background thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, **config):
        self.consumer = group_consumer(bootstrap, group, **config)
        self.lock = threading.Lock()
        self.records: list[tuple[int, bytes, float]] = []  # partition, value, monotonic time
        self.changes: list[float] = []  # times of assignment changes (assign or revoke)
        self.owned: set[int] = set()
        self.eager = "cooperative" not in config.get("partition.assignment.strategy", "range")
        self.stopping = threading.Event()
        self.subscribed_at = time.monotonic()
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # The assignment is tracked from the rebalance callbacks (which run in the polling
    # thread): calling Consumer.assignment() from another thread can deadlock with them.
    def _assigned(self, consumer, partitions):
        with self.lock:
            if self.eager:
                self.owned = set()
            self.owned |= {tp.partition for tp in partitions}
            self.changes.append(time.monotonic())

    def _revoked(self, consumer, partitions):
        with self.lock:
            self.owned -= {tp.partition for tp in partitions}
            self.changes.append(time.monotonic())

    def _run(self):
        while not self.stopping.is_set():
            m = self.consumer.poll(0.05)
            if m is None or m.error():
                continue
            with self.lock:
                self.records.append((m.partition(), m.value(), time.monotonic()))

    def assignment(self) -> list[int]:
        with self.lock:
            return sorted(self.owned)

    def values(self) -> set[bytes]:
        with self.lock:
            return {value for _, value, _ in self.records}

    def first_record_after(self, t: float) -> float | None:
        with self.lock:
            return next((at for _, _, at in self.records if at >= t), None)

    def last_change(self) -> float | None:
        with self.lock:
            return self.changes[-1] if self.changes else None

    def close(self):
        self.stopping.set()
        self.thread.join(10)
        self.consumer.close()


CHILD = r"""
import sys
from confluent_kafka import Consumer
bootstrap, group, topic, assignor = sys.argv[1:5]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "partition.assignment.strategy": assignor,
              "session.timeout.ms": 6000, "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([topic])
last = None
while True:
    c.poll(0.05)
    now = sorted(tp.partition for tp in c.assignment())
    if now != last:
        print("assigned " + ",".join(map(str, now)), flush=True)
        last = now
"""


class ChildMember:
    """A group member in its own process, to be killed with SIGKILL."""

    def __init__(self, bootstrap: str, group: str, topic: str, assignor: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, bootstrap, group, topic, assignor],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.current: list[int] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("assigned"):
                parts = line.split()[1:] if len(line.split()) > 1 else []
                self.current = [int(x) for x in parts[0].split(",")] if parts else []

    def assignment(self) -> list[int]:
        return self.current

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


# --- confluent-kafka --------------------------------------------------------


@pytest.mark.timeout(60)
def test_subscribe_commit_resume(broker, names):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 2)
    values = fill(broker.bootstrap, t, 2, 10)

    c = group_consumer(broker.bootstrap, g)
    c.subscribe([t])
    first = poll_values(c, 8)
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=10)
    # A partition nothing was read from has no position, so nothing is committed for it.
    assert sum(max(tp.offset, 0) for tp in committed) == 8 and all(tp.error is None for tp in committed)
    c.close()

    c = group_consumer(broker.bootstrap, g)
    c.subscribe([t])
    rest = poll_values(c, 12)
    assert set(first) | set(rest) == values and len(set(first) | set(rest)) == 20
    assert c.poll(1.0) is None  # nothing read twice
    c.close()


@pytest.mark.timeout(60)
def test_auto_commit_then_resume(broker, names):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 1)
    fill(broker.bootstrap, t, 1, 20)
    c = group_consumer(broker.bootstrap, g, **{"enable.auto.commit": True, "auto.commit.interval.ms": 200})
    c.subscribe([t])
    poll_values(c, 20)
    wait_until(lambda: c.committed([TopicPartition(t, 0)], timeout=5)[0].offset == 20, 10, "the auto-commit")
    c.close()

    produce_all(producer(broker.bootstrap), t, [b"late-1", b"late-2"])
    c = group_consumer(broker.bootstrap, g, **{"enable.auto.commit": True})
    c.subscribe([t])
    assert poll_values(c, 2) == [b"late-1", b"late-2"]
    c.close()


@pytest.mark.timeout(60)
def test_manual_assignment_commit_without_membership(broker, names):
    """assign() + commit: OffsetCommit with generation -1 and no member id (as kcat does)."""
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 1)
    c = group_consumer(broker.bootstrap, g)
    c.assign([TopicPartition(t, 0, 0)])
    c.commit(offsets=[TopicPartition(t, 0, 42, "note")], asynchronous=False)
    (tp,) = c.committed([TopicPartition(t, 0)], timeout=10)
    assert tp.offset == 42 and tp.metadata == "note"
    with pytest.raises(KafkaException) as info:  # > offset.metadata.max.bytes
        c.commit(offsets=[TopicPartition(t, 0, 43, "x" * 5000)], asynchronous=False)
    assert info.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE
    c.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
@pytest.mark.parametrize("departure", ["close", "sigkill"])
def test_two_members_split_then_survivor_takes_all(broker, names, assignor, departure):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 4)
    config = {"partition.assignment.strategy": assignor, "session.timeout.ms": 6000}
    a = Member(broker.bootstrap, g, t, **config)
    try:
        wait_until(lambda: a.assignment() == [0, 1, 2, 3], 20, "the first member to own all partitions")
        if departure == "close":
            b = Member(broker.bootstrap, g, t, **config)
        else:
            b = ChildMember(broker.bootstrap, g, t, assignor)

        def split():
            mine, theirs = a.assignment(), b.assignment()
            return len(mine) == 2 and len(theirs) == 2 and sorted(mine + theirs) == [0, 1, 2, 3]

        wait_until(split, 30, f"a 2+2 split (a={a.assignment()}, b={b.assignment()})")
        # Each consumes what arrives on its partitions (the child's output is not watched).
        before = fill(broker.bootstrap, t, 4, 3, prefix="split")
        on = lambda parts: {v for v in before if int(v.split(b"-")[1]) in parts}  # noqa: E731
        wait_until(lambda: on(a.assignment()) <= a.values(), 20, "the first member to consume")
        if departure == "close":
            wait_until(lambda: on(b.assignment()) <= b.values(), 20, "the second member to consume")
        if departure == "close":
            b.close()
        else:
            b.kill()  # no LeaveGroup: the session (6 s) has to expire
        wait_until(lambda: a.assignment() == [0, 1, 2, 3], 40, "the survivor to take every partition")
        after = fill(broker.bootstrap, t, 4, 3, prefix="after")
        wait_until(lambda: after <= a.values(), 20, "the survivor to consume every partition")
    finally:
        a.close()


@pytest.mark.timeout(90)
def test_static_member_restart_keeps_assignment_without_rebalance(broker, names):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 4)
    a = Member(broker.bootstrap, g, t, **{"partition.assignment.strategy": "range"})
    static = {"partition.assignment.strategy": "range", "group.instance.id": "static-b", "session.timeout.ms": 30000}
    b = Member(broker.bootstrap, g, t, **static)
    try:
        wait_until(lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, 30, "a 2+2 split")
        owned = b.assignment()
        changes = len(a.changes)
        b.close()  # a static member leaves no LeaveGroup behind
        b = Member(broker.bootstrap, g, t, **static)
        wait_until(lambda: b.assignment() == owned, 20, "the restarted static member to get its partitions back")
        time.sleep(4)  # more than a heartbeat interval: a rebalance would have reached the other member
        assert len(a.changes) == changes, "the other member saw a rebalance"
        assert sorted(a.assignment() + b.assignment()) == [0, 1, 2, 3]
    finally:
        b.close()
        a.close()


@pytest.mark.timeout(180)
def test_rebalance_latency(broker, names, capsys):
    """Time from a second member's subscribe to both members consuming (librdkafka defaults).

    The first member learns of the rebalance from its next heartbeat (heartbeat.interval.ms
    3000), so the result depends on where in that interval the second member arrives: each
    assignor is measured with the second member arriving 0.3, 1.3 and 2.3 s after the first
    one got its partitions."""
    results: dict[str, list[float]] = {}
    for assignor in ("range", "cooperative-sticky"):
        for pause in (0.3, 1.3, 2.3):
            results.setdefault(assignor, []).append(measure_rebalance(broker, names, assignor, pause))
    with capsys.disabled():
        print("\nrebalance latency (second member subscribe -> both consuming, librdkafka defaults): "
              + "; ".join(f"{k} " + "/".join(f"{v * 1000:.0f}" for v in vs) + " ms" for k, vs in results.items()))
    assert all(v < 10 for vs in results.values() for v in vs)


def measure_rebalance(broker, names, assignor: str, pause: float) -> float:
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 4)
    p = producer(broker.bootstrap, **{"linger.ms": 0})
    stop = threading.Event()

    def produce_forever():
        i = 0
        while not stop.is_set():
            for part in range(4):
                p.produce(t, value=b"%d" % i, partition=part)
            i += 1
            p.poll(0)
            time.sleep(0.02)
        p.flush(10)

    feeder = threading.Thread(target=produce_forever, daemon=True)
    feeder.start()
    a = Member(broker.bootstrap, g, t, **{"partition.assignment.strategy": assignor})
    b = None
    try:
        wait_until(lambda: a.assignment() == [0, 1, 2, 3] and a.last_change(), 20, "the first member")
        time.sleep(max(0.0, a.last_change() + pause - time.monotonic()))
        b = Member(broker.bootstrap, g, t, **{"partition.assignment.strategy": assignor})
        start = b.subscribed_at

        def both_consuming():
            if len(a.assignment()) != 2 or len(b.assignment()) != 2:
                return None
            b_first = b.first_record_after(start)
            a_next = a.first_record_after(a.last_change() or start)
            return max(b_first, a_next) if b_first and a_next else None

        return wait_until(both_consuming, 30, "both members consuming") - start
    finally:
        stop.set()
        feeder.join(10)
        if b is not None:
            b.close()
        a.close()


@pytest.mark.timeout(90)
def test_admin_list_describe_delete_groups(broker, names):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 4)
    a = admin(broker.bootstrap)
    m1 = Member(broker.bootstrap, g, t, **{"partition.assignment.strategy": "range", "client.id": "member-one"})
    m2 = Member(broker.bootstrap, g, t, **{"partition.assignment.strategy": "range", "client.id": "member-two"})
    try:
        wait_until(lambda: len(m1.assignment()) == 2 and len(m2.assignment()) == 2, 30, "a 2+2 split")

        def described():
            d = a.describe_consumer_groups([g])[g].result(timeout=10)
            return d if d.state == ConsumerGroupState.STABLE and len(d.members) == 2 else None

        d = wait_until(described, 10, "a Stable description")
        assert d.partition_assignor == "range" and not d.is_simple_consumer_group
        by_client = {m.client_id: m for m in d.members}
        assert set(by_client) == {"member-one", "member-two"}
        assert all(m.host == "/127.0.0.1" and m.member_id.startswith(m.client_id + "-") for m in d.members)
        assigned = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members}
        assert assigned == {"member-one": m1.assignment(), "member-two": m2.assignment()}
        assert all(tp.topic == t for m in d.members for tp in m.assignment.topic_partitions)

        listed = a.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(timeout=10).valid
        assert g in {x.group_id for x in listed}
        assert g not in {x.group_id for x in a.list_consumer_groups(states={ConsumerGroupState.EMPTY})
                         .result(timeout=10).valid}
        # A group with members cannot be deleted.
        with pytest.raises(KafkaException) as info:
            a.delete_consumer_groups([g])[g].result(timeout=10)
        assert info.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        m1.close()
        m2.close()

    # Commit something as a standalone consumer, then delete the (now empty) group.
    c = group_consumer(broker.bootstrap, g)
    c.commit(offsets=[TopicPartition(t, 0, 3)], asynchronous=False)
    c.close()
    listed = {x.group_id: x for x in a.list_consumer_groups().result(timeout=10).valid}
    assert listed[g].state == ConsumerGroupState.EMPTY
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result(timeout=10)
    assert [(tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(0, 3)]
    assert a.delete_consumer_groups([g])[g].result(timeout=10) is None
    assert g not in {x.group_id for x in a.list_consumer_groups().result(timeout=10).valid}
    c = group_consumer(broker.bootstrap, g)
    assert c.committed([TopicPartition(t, 0)], timeout=10)[0].offset < 0  # gone
    c.close()
    with pytest.raises(KafkaException) as info:
        a.delete_consumer_groups([g])[g].result(timeout=10)
    assert info.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


@pytest.mark.timeout(90)
def test_committed_offsets_survive_broker_restart_and_crash(make_broker, names):
    b = make_broker()
    t, g = names(), names("g")
    create_topic(b.bootstrap, t, 2)
    fill(b.bootstrap, t, 2, 10)
    c = group_consumer(b.bootstrap, g)
    c.subscribe([t])
    poll_values(c, 6)
    c.commit(asynchronous=False)
    expected = {tp.partition: tp.offset for tp in c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=10)}
    c.close()
    assert sum(max(o, 0) for o in expected.values()) == 6

    for how in ("sigkill", "sigterm"):
        if how == "sigkill":
            b.kill()  # a crash: acknowledged commits were fsynced
            b.start()
        else:
            b.restart()
        c = group_consumer(b.bootstrap, g)
        got = {tp.partition: tp.offset for tp in c.committed([TopicPartition(t, 0), TopicPartition(t, 1)], timeout=10)}
        assert got == expected, how
        c.subscribe([t])
        rest = poll_values(c, 2)
        c.commit(asynchronous=False)
        expected = {tp.partition: tp.offset for tp in c.committed([TopicPartition(t, 0), TopicPartition(t, 1)],
                                                                   timeout=10)}
        c.close()
        assert len(rest) == 2 and sum(max(o, 0) for o in expected.values()) == 6 + 2 * (1 if how == "sigkill" else 2)


# --- kcat ---------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_kcat_balanced_consumer_commits_and_resumes(broker, names):
    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 1)
    produce_all(producer(broker.bootstrap), t, [b"k%d" % i for i in range(20)])
    common = ["-b", broker.bootstrap, "-X", "auto.offset.reset=earliest", "-f", "%s\n", "-q"]
    first = kcat(*common, "-G", g, t, "-c", "10").decode().split()
    assert first == ["k%d" % i for i in range(10)]
    second = kcat(*common, "-G", g, t, "-c", "10").decode().split()
    assert second == ["k%d" % i for i in range(10, 20)]
    c = group_consumer(broker.bootstrap, g)
    assert c.committed([TopicPartition(t, 0)], timeout=10)[0].offset == 20
    c.close()


# --- kafka-python ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_kafka_python_group_commit_and_resume(broker, names):
    from kafka import KafkaConsumer

    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 2)
    values = fill(broker.bootstrap, t, 2, 10)

    def consume(count: int) -> list[bytes]:
        c = KafkaConsumer(t, bootstrap_servers=broker.bootstrap, group_id=g, enable_auto_commit=False,
                          auto_offset_reset="earliest", session_timeout_ms=10000, request_timeout_ms=30000)
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(out) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200, max_records=count - len(out)).values():
                out += [r.value for r in records]
        c.commit()
        c.close()
        return out

    first = consume(7)
    rest = consume(13)
    assert len(first) == 7 and set(first) | set(rest) == values and len(rest) == 13


# --- aiokafka -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_aiokafka_group_commit_and_resume(broker, names):
    from aiokafka import AIOKafkaConsumer

    t, g = names(), names("g")
    create_topic(broker.bootstrap, t, 2)
    values = fill(broker.bootstrap, t, 2, 10)

    async def consume(count: int) -> list[bytes]:
        c = AIOKafkaConsumer(t, bootstrap_servers=broker.bootstrap, group_id=g, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        out: list[bytes] = []
        try:
            while len(out) < count:
                batches = await asyncio.wait_for(c.getmany(timeout_ms=200, max_records=count - len(out)), 30)
                out += [r.value for records in batches.values() for r in records]
            await c.commit()
        finally:
            await c.stop()
        return out

    first = asyncio.run(consume(9))
    rest = asyncio.run(consume(11))
    assert len(first) == 9 and set(first) | set(rest) == values and len(rest) == 11

"""Producers faster than consumers: the per-topic overflow policies (buffer, drop-oldest,
reject, backpressure), client quotas, and the figures that make them visible
(DescribeConfigs `sluice.stats.*`, the Prometheus endpoint). Real clients throughout:
confluent-kafka (librdkafka) for producing and consuming, kafka-python's protocol classes
for the client-quota APIs. See docs/overflow.md."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import free_port, sluice_binary
from helpers import consume, create_topic, describe_quotas, partition_files_size, produce_all, producer, quota_request, set_quota

RECORD = 1000  # value bytes per record in these tests


def overflow_broker(make_broker, **settings):
    metrics_port = free_port()
    b = make_broker({"metrics.listen": f"127.0.0.1:{metrics_port}", **settings})
    b.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return b


def stats(bootstrap: str, topic: str) -> dict[str, int]:
    """The topic's read-only `sluice.stats.*` entries from DescribeConfigs."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    result = a.describe_configs([ConfigResource("topic", topic)])
    configs = list(result.values())[0].result(timeout=10)
    out = {}
    for name, entry in configs.items():
        if name.startswith("sluice.stats."):
            assert entry.is_read_only, f"{name} should be read-only"
            out[name[len("sluice.stats.") :]] = int(entry.value)
    return out


def metric(url: str, name: str, **labels) -> int | None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return int(float(m.group(3)))
    return None


class PacedGroupConsumer(threading.Thread):
    """A consumer-group member that reads at most `rate` records/s and commits as it goes."""

    def __init__(self, bootstrap: str, topic: str, group: str, rate: float, commit_every: int = 20, **config):
        super().__init__(daemon=True)
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        conf.update(config)
        self.consumer = Consumer(conf)
        self.topic = topic
        self.rate = rate
        self.commit_every = commit_every
        self.stop_event = threading.Event()
        self.seen: list[tuple[float, int, bytes]] = []  # (time, offset, value)
        self.errors: list = []

    def run(self):
        self.consumer.subscribe([self.topic])
        interval = 1.0 / self.rate if self.rate > 0 else 0
        next_at = time.monotonic()
        since_commit = 0
        try:
            while not self.stop_event.is_set():
                m = self.consumer.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        self.errors.append(m.error())
                    continue
                self.seen.append((time.monotonic(), m.offset(), m.value()))
                since_commit += 1
                if since_commit >= self.commit_every:
                    self.consumer.commit(asynchronous=False)
                    since_commit = 0
                if interval:
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        next_at = time.monotonic()
            if since_commit:
                self.consumer.commit(asynchronous=False)
        finally:
            self.consumer.close()

    def stop(self):
        self.stop_event.set()
        self.join(30)


class FloodProducer(threading.Thread):
    """Produces RECORD-byte records (value = a sequence number, padded) as fast as the
    client lets it, until stopped; records every delivery (time, value) and error."""

    def __init__(self, bootstrap: str, topic: str, **config):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 16384}
        conf.update(config)
        self.producer = Producer(conf)
        self.topic = topic
        self.stop_event = threading.Event()
        self.delivered: list[tuple[float, bytes]] = []
        self.errors: list = []
        self.sent = 0

    def on_delivery(self, err, msg):
        if err:
            self.errors.append(err)
        else:
            self.delivered.append((time.monotonic(), msg.value()))

    def run(self):
        while not self.stop_event.is_set():
            value = str(self.sent).encode().ljust(RECORD, b".")
            try:
                self.producer.produce(self.topic, value=value, partition=0, on_delivery=self.on_delivery)
                self.sent += 1
            except BufferError:
                self.producer.poll(0.01)
                continue
            self.producer.poll(0)
        self.producer.flush(60)

    def stop(self):
        self.stop_event.set()
        self.join(90)


def test_overflow_configs_are_validated_described_and_alterable(make_broker, names):
    b = overflow_broker(make_broker)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    bad = names("bad")
    f = a.create_topics([NewTopic(bad, 1, 1, config={"sluice.overflow.policy": "reject"})])
    with pytest.raises(Exception) as e:
        f[bad].result(10)
    assert "needs sluice.overflow.max.bytes" in str(e.value)
    f = a.create_topics([NewTopic(bad, 1, 1, config={"sluice.overflow.policy": "drop-newest"})])
    with pytest.raises(Exception) as e:
        f[bad].result(10)
    assert "must be one of buffer, drop-oldest, reject, backpressure" in str(e.value)

    t = names()
    create_topic(b.bootstrap, t, config={"sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": "1000000"})
    configs = list(a.describe_configs([ConfigResource("topic", t)]).values())[0].result(10)
    assert configs["sluice.overflow.policy"].value == "backpressure"
    assert configs["sluice.overflow.max.bytes"].value == "1000000"
    assert configs["sluice.overflow.resume.bytes"].value == "-1"
    assert not configs["sluice.overflow.policy"].is_read_only
    assert configs["sluice.stats.backlog.bytes"].is_read_only

    # IncrementalAlterConfigs changes the policy; a statistic cannot be set.
    resource = ConfigResource(
        "topic", t, incremental_configs=[ConfigEntry("sluice.overflow.policy", "reject", incremental_operation=AlterConfigOpType.SET)]
    )
    list(a.incremental_alter_configs([resource]).values())[0].result(10)
    configs = list(a.describe_configs([ConfigResource("topic", t)]).values())[0].result(10)
    assert configs["sluice.overflow.policy"].value == "reject"
    resource = ConfigResource(
        "topic", t, incremental_configs=[ConfigEntry("sluice.stats.dropped.bytes", "0", incremental_operation=AlterConfigOpType.SET)]
    )
    with pytest.raises(Exception) as e:
        list(a.incremental_alter_configs([resource]).values())[0].result(10)
    assert "read-only statistic" in str(e.value)
    # Survives a restart.
    b.restart()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    configs = list(a.describe_configs([ConfigResource("topic", t)]).values())[0].result(10)
    assert configs["sluice.overflow.policy"].value == "reject"


@pytest.mark.timeout(120)
def test_buffer_keeps_everything_while_the_backlog_grows(make_broker, names):
    b = overflow_broker(make_broker)
    t, g = names(), names("g")
    create_topic(b.bootstrap, t)  # buffer is the default policy
    slow = PacedGroupConsumer(b.bootstrap, t, g, rate=100, commit_every=10)
    slow.start()
    p = FloodProducer(b.bootstrap, t)
    p.start()
    backlogs = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(1)
        backlogs.append(stats(b.bootstrap, t).get(f"group.backlog.bytes.{g}", 0))
    p.stop()
    slow.stop()
    assert not p.errors, p.errors[:3]
    assert len(p.delivered) > 20 * len(slow.seen), "the producer should be far ahead of the slow consumer"
    # The slow group's backlog grew, and is what the broker reports (stats and metrics).
    assert backlogs[-1] > backlogs[1] > 0, backlogs
    final = stats(b.bootstrap, t)
    assert final[f"group.backlog.bytes.{g}"] >= (len(p.delivered) - len(slow.seen) - 50) * RECORD
    assert metric(b.metrics_url, "sluice_overflow_group_backlog_bytes", topic=t, group=g) > 0
    # The CLI shows the figures too.
    out = subprocess.run(
        [str(sluice_binary()), "topic", "describe", t, "--bootstrap", b.bootstrap], capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    stats_line = [line for line in out.stdout.decode().splitlines() if line.strip().startswith("Stats:")]
    assert stats_line and f"group.backlog.bytes.{g}=" in stats_line[0], out.stdout
    assert final["dropped.records"] == 0 and final["rejected.requests"] == 0
    # Nothing lost: every acknowledged record is still there, in order.
    records = consume(b.bootstrap, t, timeout=120)
    assert [r.value for r in records] == [v for _, v in sorted(p.delivered, key=lambda d: int(d[1].split(b".")[0]))]


def test_drop_oldest_bounds_the_log_and_a_lagging_consumer_falls_off(make_broker, names):
    bound = 200_000
    b = overflow_broker(make_broker)
    t, g = names(), names("g")
    create_topic(b.bootstrap, t, config={"sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": str(bound)})
    # A group that read the first few records and committed, then stalled.
    produce_all(producer(b.bootstrap), t, [str(i).encode().ljust(RECORD, b".") for i in range(10)])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": g, "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
    got = 0
    while got < 5:
        m = c.poll(5)
        assert m is not None and not m.error()
        got += 1
    c.commit(offsets=[TopicPartition(t, 0, 5)], asynchronous=False)
    c.close()

    # 3 MB more from a fast producer, in batches of ~16 KB.
    values = [str(i).encode().ljust(RECORD, b".") for i in range(10, 3010)]
    delivered = produce_all(producer(b.bootstrap, **{"batch.size": 16384}), t, values)
    assert len(delivered) == len(values)
    s = stats(b.bootstrap, t)
    size = metric(b.metrics_url, "sluice_partition_size_bytes", topic=t, partition="0")
    start = metric(b.metrics_url, "sluice_partition_log_start_offset", topic=t, partition="0")
    end = metric(b.metrics_url, "sluice_partition_log_end_offset", topic=t, partition="0")
    assert end == 3010
    assert size <= bound, f"{size} bytes retained, bound {bound}"
    assert size > bound * 0.8, "only what is over the bound goes"
    assert s["dropped.records"] == start > 0
    assert s["dropped.bytes"] >= (start - 1) * RECORD
    # Disk usage follows (segments roll at a quarter of the bound; whole ones are deleted).
    assert partition_files_size(b.data_dir, t) <= 2 * bound
    # What remains is the newest data, gap-free to the end.
    records = consume(b.bootstrap, t)
    assert [r.offset for r in records] == list(range(start, end))
    assert records[-1].value == values[-1]

    # The stalled group, resuming at its committed offset 5, is told it fell off the log
    # (auto.offset.reset=error surfaces OFFSET_OUT_OF_RANGE)...
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": g, "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.subscribe([t])
    error = None
    deadline = time.monotonic() + 30
    while error is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            error = m.error()
        elif m is not None:
            pytest.fail(f"read offset {m.offset()} below the log start {start}?")
    c.close()
    assert error is not None and error.code() == KafkaError._AUTO_OFFSET_RESET, error
    assert "out of range" in error.str().lower()
    # ...and with auto.offset.reset=earliest it continues from the new log start.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": g, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([t])
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            first = m.offset()
    c.close()
    assert first is not None and first >= start


def test_drop_oldest_applies_a_lowered_bound_without_new_produce_requests(make_broker, names):
    b = overflow_broker(make_broker)
    t = names()
    create_topic(b.bootstrap, t, config={"sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": "1000000"})
    produce_all(producer(b.bootstrap, **{"batch.size": 16384}), t, [b"v" * RECORD] * 500)
    assert stats(b.bootstrap, t)["dropped.records"] == 0
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    resource = ConfigResource(
        "topic", t, incremental_configs=[ConfigEntry("sluice.overflow.max.bytes", "100000", incremental_operation=AlterConfigOpType.SET)]
    )
    list(a.incremental_alter_configs([resource]).values())[0].result(10)
    deadline = time.monotonic() + 5
    while metric(b.metrics_url, "sluice_partition_size_bytes", topic=t, partition="0") > 100_000:
        assert time.monotonic() < deadline, "housekeeping did not trim to the new bound"
        time.sleep(0.2)
    assert stats(b.bootstrap, t)["dropped.records"] > 350


@pytest.mark.parametrize("idempotent", [False, True])
def test_reject_refuses_produce_beyond_the_bound_until_consumers_catch_up(make_broker, names, idempotent):
    bound = 100_000
    b = overflow_broker(make_broker)
    t, g = names(), names("g")
    create_topic(b.bootstrap, t, config={"sluice.overflow.policy": "reject", "sluice.overflow.max.bytes": str(bound)})
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 16384, "enable.idempotence": idempotent})
    delivered, errors = [], []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or msg)

    for i in range(300):
        p.produce(t, value=str(i).encode().ljust(RECORD, b"."), partition=0, on_delivery=on_delivery)
        p.poll(0)
        time.sleep(0.001)
    assert p.flush(30) == 0
    # The producer is told, clearly and at once (non-retriable), and the backlog stayed bounded.
    assert errors, "nothing was rejected"
    assert {e.code() for e in errors} == {KafkaError.POLICY_VIOLATION}, errors[:3]
    assert not any(e.fatal() for e in errors)
    assert metric(b.metrics_url, "sluice_partition_size_bytes", topic=t, partition="0") <= bound
    assert len(delivered) * RECORD <= bound
    assert stats(b.bootstrap, t)["rejected.requests"] > 0
    # Acknowledged records are all there, in order.
    kept = consume(b.bootstrap, t)
    assert [r.value for r in kept] == [m.value() for m in delivered]

    # A consumer group reads everything and commits: the backlog is empty, producing works again
    # (the same producer instance, so an idempotent one must have recovered its sequence).
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": g, "enable.auto.commit": False})
    c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
    last = None
    while last is None or last < kept[-1].offset:
        m = c.poll(5)
        assert m is not None and not m.error()
        last = m.offset()
    c.commit(offsets=[TopicPartition(t, 0, last + 1)], asynchronous=False)
    c.close()
    assert stats(b.bootstrap, t)["backlog.bytes"] == 0
    errors.clear()
    before = len(delivered)
    for i in range(20):
        p.produce(t, value=b"again-%d" % i, partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0
    assert not errors, errors[:3]
    assert len(delivered) == before + 20


@pytest.mark.timeout(150)
def test_backpressure_slows_the_producer_to_the_consumers_pace(make_broker, names):
    high = 1_000_000
    b = overflow_broker(make_broker)
    t, g = names(), names("g")
    create_topic(
        b.bootstrap, t, config={"sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": str(high)}
    )
    rate = 400  # records/s the consumer takes: 400 KB/s
    slow = PacedGroupConsumer(b.bootstrap, t, g, rate=rate, commit_every=20)
    slow.start()
    time.sleep(2)  # the group forms and commits before the flood
    # A short client queue: on stop, what is still queued drains at the consumer's pace.
    p = FloodProducer(b.bootstrap, t, **{"enable.idempotence": True, "queue.buffering.max.messages": 1000})
    p.start()
    started = time.monotonic()
    backlogs = []
    while time.monotonic() - started < 16:
        time.sleep(0.5)
        backlogs.append(stats(b.bootstrap, t)["backlog.bytes"])
    p.stop()
    # After the producer stops, the consumer drains everything: nothing was lost.
    deadline = time.monotonic() + 60
    while len(slow.seen) < len(p.delivered) and time.monotonic() < deadline:
        time.sleep(0.5)
    slow.stop()
    assert not p.errors, p.errors[:3]
    assert not slow.errors, slow.errors[:3]

    # Rates over the 10 s after the first 5 s (the backlog filled to the mark by then).
    lo, hi = started + 5, started + 15
    produced = sum(1 for at, _ in p.delivered if lo <= at < hi) / 10
    consumed = sum(1 for at, _, _ in slow.seen if lo <= at < hi) / 10
    print(f"producer {produced:.0f} rec/s, consumer {consumed:.0f} rec/s, backlogs {backlogs}")
    assert consumed > rate * 0.5, f"the consumer ran at {consumed} rec/s"
    assert abs(produced - consumed) <= 0.2 * consumed, f"producer {produced} rec/s vs consumer {consumed} rec/s"
    # The backlog stayed within the high-water mark.
    assert max(backlogs) <= high, backlogs
    assert max(backlogs) > high * 0.5, "the producer should have pushed the backlog up to the mark"
    s = stats(b.bootstrap, t)
    assert s["throttled.requests"] > 0 and s["throttle.time.ms"] > 0
    assert s["rejected.requests"] == 0 and s["dropped.records"] == 0
    values = [v for _, _, v in slow.seen]
    assert sorted(set(values)) == sorted(v for _, v in p.delivered), "some acknowledged record was not consumed"


def test_client_quotas_are_stored_described_and_survive_restarts(make_broker):
    b = overflow_broker(make_broker)
    set_quota(b.bootstrap, "alpha", "producer_byte_rate", 1000.0)
    set_quota(b.bootstrap, None, "consumer_byte_rate", 5000.0)
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

    E = AlterClientQuotasRequest.EntryData
    bad = quota_request(
        b.bootstrap,
        AlterClientQuotasRequest(
            entries=[
                E(entity=[E.EntityData(entity_type="user", entity_name="u"), E.EntityData(entity_type="client-id", entity_name="x")], ops=[E.OpData(key="producer_byte_rate", value=1.0, remove=False)]),
                E(entity=[E.EntityData(entity_type="client-id", entity_name="x")], ops=[E.OpData(key="request_percentage", value=1.0, remove=False)]),
                E(entity=[E.EntityData(entity_type="client-id", entity_name="x")], ops=[E.OpData(key="producer_byte_rate", value=-5.0, remove=False)]),
                E(entity=[E.EntityData(entity_type="client-id", entity_name="x")], ops=[E.OpData(key="producer_byte_rate", value=1e-6, remove=False)]),
            ],
            validate_only=False,
        ),
    )
    assert [e.error_code for e in bad.entries] == [42, 42, 42, 42]  # INVALID_REQUEST, with messages
    assert all(e.error_message for e in bad.entries)
    assert describe_quotas(b.bootstrap) == {"alpha": {"producer_byte_rate": 1000.0}, None: {"consumer_byte_rate": 5000.0}}
    assert describe_quotas(b.bootstrap, match_type=2) == {"alpha": {"producer_byte_rate": 1000.0}}  # any named
    assert describe_quotas(b.bootstrap, match_type=1) == {None: {"consumer_byte_rate": 5000.0}}  # the default
    b.restart()
    assert describe_quotas(b.bootstrap) == {"alpha": {"producer_byte_rate": 1000.0}, None: {"consumer_byte_rate": 5000.0}}
    set_quota(b.bootstrap, "alpha", "producer_byte_rate", None)
    assert describe_quotas(b.bootstrap) == {None: {"consumer_byte_rate": 5000.0}}


@pytest.mark.timeout(120)
def test_produce_quota_holds_a_client_to_its_byte_rate(make_broker, names):
    quota = 200_000  # bytes/s
    b = overflow_broker(make_broker)
    t = names()
    create_topic(b.bootstrap, t)
    set_quota(b.bootstrap, "limited", "producer_byte_rate", float(quota))
    throttles = []
    p = FloodProducer(
        b.bootstrap,
        t,
        **{
            "client.id": "limited",
            "throttle_cb": lambda e: throttles.append(e.throttle_time),
            "queue.buffering.max.messages": 500,
        },
    )
    p.start()
    time.sleep(12.5)
    p.stop()
    assert not p.errors, p.errors[:3]
    # Measured by the client: acknowledged value bytes per second over 10 s (after 2 s).
    start = p.delivered[0][0] + 2
    window = [at for at, _ in p.delivered if start <= at < start + 10]
    rate = len(window) * RECORD / 10
    print(f"limited to {quota} B/s: {rate:.0f} B/s; throttle events {len(throttles)}")
    assert rate <= 1.1 * quota, f"{rate} B/s over a {quota} B/s quota"
    assert rate >= 0.5 * quota, f"{rate} B/s: throttled far below the quota"
    assert throttles and max(throttles) > 0, "librdkafka saw no throttle_time_ms"
    assert metric(b.metrics_url, "sluice_quota_throttle_time_ms_total", client_id="limited", quota="produce") > 0
    # Another client id is not limited.
    fast = FloodProducer(b.bootstrap, t, **{"client.id": "unlimited"})
    fast.start()
    time.sleep(3)
    fast.stop()
    assert len(fast.delivered) * RECORD / 3 > 2 * quota


@pytest.mark.timeout(120)
def test_fetch_quota_holds_a_consumer_to_its_byte_rate(make_broker, names):
    quota = 300_000
    b = overflow_broker(make_broker)
    t = names()
    create_topic(b.bootstrap, t)
    produce_all(producer(b.bootstrap, **{"batch.size": 65536}), t, [b"f" * RECORD] * 8000)  # 8 MB
    set_quota(b.bootstrap, None, "consumer_byte_rate", float(quota))  # the default for every client id
    c = Consumer(
        {
            "bootstrap.servers": b.bootstrap,
            "group.id": names("g"),
            "enable.auto.commit": False,
            "fetch.max.bytes": 65536,
            "message.max.bytes": 65536,
            "max.partition.fetch.bytes": 65536,
        }
    )
    c.assign([TopicPartition(t, 0, OFFSET_BEGINNING)])
    times = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        for m in c.consume(1000, 0.2):
            if not m.error():
                times.append(time.monotonic())
    c.close()
    start = times[0] + 1
    rate = sum(1 for at in times if start <= at < start + 10) * RECORD / 10
    print(f"consumer limited to {quota} B/s: {rate:.0f} B/s")
    assert rate <= 1.1 * quota, f"{rate} B/s over a {quota} B/s quota"
    assert rate >= 0.5 * quota, f"{rate} B/s: throttled far below the quota"

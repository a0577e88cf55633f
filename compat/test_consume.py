"""Consuming: positions, watermarks, timestamps, long polling, fetch limits, restarts."""

import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import ConfigResource, OffsetSpec, ResourceType
from confluent_kafka import TopicCollection

from helpers import RawClient, admin, consume, consumer, create_topic, kcat, produce_all, producer


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.timeout(60)
def test_consume_from_offset_beginning_end(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    p = producer(broker.bootstrap)
    produce_all(p, t, [b"m%d" % i for i in range(10)])

    assert [r.offset for r in consume(broker.bootstrap, t, offset=OFFSET_BEGINNING)] == list(range(10))
    assert [r.value for r in consume(broker.bootstrap, t, offset=4)] == [b"m%d" % i for i in range(4, 10)]
    assert consume(broker.bootstrap, t, offset=10) == []

    # From the end: only records produced after the position was resolved.
    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(t, 0, OFFSET_END)])
        # Wait until the end offset is resolved: the consumer reports PARTITION_EOF at 10.
        deadline = time.monotonic() + 10
        eof = None
        while eof is None and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None:
                assert m.error() and m.error().code() == KafkaError._PARTITION_EOF, m.error() or m.value()
                eof = m.offset()
        assert eof == 10
        produce_all(p, t, [b"late-1", b"late-2"])
        got = []
        while len(got) < 2 and time.monotonic() < deadline + 10:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
        assert got == [(10, b"late-1"), (11, b"late-2")]
    finally:
        c.close()

    # kcat: absolute, from beginning, and relative to the end.
    def kc(*args):
        return kcat("-C", "-b", broker.bootstrap, "-t", t, "-p", "0", "-e", "-q", *args).splitlines()

    assert kc("-o", "beginning") == [b"m%d" % i for i in range(10)] + [b"late-1", b"late-2"]
    assert kc("-o", "7") == [b"m7", b"m8", b"m9", b"late-1", b"late-2"]
    assert kc("-o", "-3") == [b"m9", b"late-1", b"late-2"]


@pytest.mark.timeout(60)
def test_out_of_range_offset_resets(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    produce_all(producer(broker.bootstrap), t, [b"a", b"b", b"c"])
    # Beyond the end with auto.offset.reset=earliest: OFFSET_OUT_OF_RANGE, then reset to 0.
    records = consume(broker.bootstrap, t, offset=50, count=3, **{"auto.offset.reset": "earliest"})
    assert [r.value for r in records] == [b"a", b"b", b"c"]


@pytest.mark.timeout(60)
def test_watermarks(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 2)
    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (0, 0)
        produce_all(producer(broker.bootstrap), t, [b"x"] * 25, partition=1)
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10) == (0, 25)
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (0, 0)
        a = admin(broker.bootstrap)
        list(a.delete_records([TopicPartition(t, 1, 20)]).values())[0].result(timeout=10)
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10) == (20, 25)
        # The admin ListOffsets view agrees.
        specs = {TopicPartition(t, 1): OffsetSpec.earliest()}
        assert list(a.list_offsets(specs).values())[0].result(timeout=10).offset == 20
        specs = {TopicPartition(t, 1): OffsetSpec.latest()}
        assert list(a.list_offsets(specs).values())[0].result(timeout=10).offset == 25
    finally:
        c.close()


def lookup(c, t, timestamp, partition=0) -> int:
    (tp,) = c.offsets_for_times([TopicPartition(t, partition, timestamp)], timeout=10)
    assert tp.error is None, tp.error
    return tp.offset


@pytest.mark.timeout(60)
def test_offsets_for_times(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    base = now_ms() - 100_000
    p = producer(broker.bootstrap, **{"linger.ms": 500})
    # One batch of ten records 100 ms apart, then a second batch with out-of-order stamps.
    for i in range(10):
        p.produce(t, value=b"%d" % i, partition=0, timestamp=base + 100 * i)
    assert p.flush(10) == 0
    for i, ts in enumerate([base + 5000, base + 3000, base + 4000]):
        p.produce(t, value=b"late%d" % i, partition=0, timestamp=ts)
    assert p.flush(10) == 0

    c = consumer(broker.bootstrap)
    try:
        assert lookup(c, t, 0) == 0
        assert lookup(c, t, base) == 0
        assert lookup(c, t, base + 1) == 1  # inside the first batch, between two records
        assert lookup(c, t, base + 450) == 5
        assert lookup(c, t, base + 500) == 5
        assert lookup(c, t, base + 900) == 9
        assert lookup(c, t, base + 901) == 10  # first record of the second batch (ts base+5000)
        assert lookup(c, t, base + 3500) == 10  # first offset whose timestamp >= target
        assert lookup(c, t, base + 5000) == 10
        assert lookup(c, t, base + 5001) == OFFSET_END  # nothing that late: -1
        assert lookup(c, t, now_ms() + 3_600_000) == OFFSET_END  # the future: -1
    finally:
        c.close()

    # ListOffsets v7 "max timestamp" through the admin client.
    a = admin(broker.bootstrap)
    result = list(a.list_offsets({TopicPartition(t, 0): OffsetSpec.max_timestamp()}).values())[0].result(timeout=10)
    assert (result.offset, result.timestamp) == (10, base + 5000)
    result = list(a.list_offsets({TopicPartition(t, 0): OffsetSpec.for_timestamp(base + 250)}).values())[0]
    assert result.result(timeout=10).offset == 3


@pytest.mark.timeout(60)
def test_offsets_for_times_kafka_python(broker, names):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    t = names()
    create_topic(broker.bootstrap, t, 1)
    base = now_ms() - 10_000
    p = producer(broker.bootstrap, **{"linger.ms": 200})
    for i in range(5):
        p.produce(t, value=b"%d" % i, partition=0, timestamp=base + 10 * i)
    assert p.flush(10) == 0
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tp = KTopicPartition(t, 0)
        found = kc.offsets_for_times({tp: base + 25})[tp]
        assert (found.offset, found.timestamp) == (3, base + 30)
        assert kc.offsets_for_times({tp: now_ms() + 60_000})[tp] is None
        assert kc.beginning_offsets([tp])[tp] == 0 and kc.end_offsets([tp])[tp] == 5
    finally:
        kc.close()


@pytest.mark.timeout(60)
def test_parked_fetch_woken_promptly(broker, names):
    """A consumer parked in a long poll (fetch.wait.max.ms=5000) gets a new record at once."""
    t = names()
    create_topic(broker.bootstrap, t, 1)
    p = producer(broker.bootstrap, **{"linger.ms": 0, "acks": "1"})
    produce_all(p, t, [b"warm-up"])  # connection and metadata ready before timing
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000, "fetch.error.backoff.ms": 10})
    try:
        c.assign([TopicPartition(t, 0, 1)])
        # Let the consumer connect and park its fetch at the end of the log.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            c.poll(0.1)
        latencies = []
        for i in range(3):
            time.sleep(1.0)  # the consumer's fetch is parked on the broker by now
            sent = time.monotonic()
            p.produce(t, value=b"wake-%d" % i, partition=0)
            p.poll(0)
            while True:
                m = c.poll(0.01)
                if m is not None and not m.error():
                    latencies.append(time.monotonic() - sent)
                    assert m.value() == b"wake-%d" % i
                    break
                assert time.monotonic() - sent < 10, "record never arrived"
        assert max(latencies) < 0.5, f"parked fetch not woken promptly: {latencies}"
    finally:
        c.close()
        p.flush(5)


@pytest.mark.timeout(60)
def test_raw_fetch_long_poll(broker, names):
    """At the high watermark a fetch really parks for max_wait_ms, and an append wakes it."""
    t = names()
    create_topic(broker.bootstrap, t, 1)
    p = producer(broker.bootstrap, **{"linger.ms": 0})
    produce_all(p, t, [b"one"])
    raw = RawClient(broker.bootstrap)
    try:
        start = time.monotonic()
        _, parts = raw.fetch_v4([(t, 0, 1, 1 << 20)], max_bytes=1 << 20, max_wait_ms=800)
        waited = time.monotonic() - start
        assert parts[(t, 0)][2] == [] and 0.7 <= waited < 2.0, waited

        result = {}

        def parked():
            begin = time.monotonic()
            result["parts"] = raw.fetch_v4([(t, 0, 1, 1 << 20)], max_bytes=1 << 20, max_wait_ms=10_000)[1]
            result["done"] = time.monotonic()

        thread = threading.Thread(target=parked)
        thread.start()
        time.sleep(1.0)
        sent = time.monotonic()
        produce_all(p, t, [b"two"])
        thread.join(15)
        assert "done" in result, "parked fetch never answered"
        assert result["done"] - sent < 0.3, result["done"] - sent
        assert [b[0] for b in result["parts"][(t, 0)][2]] == [1]
    finally:
        raw.close()


def produce_small_batches(bootstrap, t, n, size, partition=0, per_batch=10):
    """n records of `size` bytes in batches of `per_batch` records (one flush each)."""
    p = producer(bootstrap, **{"linger.ms": 1000, "batch.num.messages": per_batch})
    values = [(b"%06d-" % i) + b"v" * (size - 7) for i in range(n)]
    produce_all(p, t, values, partition=partition)
    return values


@pytest.mark.timeout(60)
def test_fetch_response_size_bounded(broker, names):
    """Raw Fetch v4: partition_max_bytes and max_bytes bound the response (KIP-74 soft:
    the first batch always comes whole)."""
    t = names()
    create_topic(broker.bootstrap, t, 2)
    produce_small_batches(broker.bootstrap, t, 400, 1000, partition=0)  # ~10 KB batches
    produce_small_batches(broker.bootstrap, t, 400, 1000, partition=1)
    raw = RawClient(broker.bootstrap)
    try:
        size, parts = raw.fetch_v4([(t, 0, 0, 64 * 1024)], max_bytes=50 << 20)
        err, hw, batches = parts[(t, 0)]
        assert (err, hw) == (0, 400)
        batch_size = max(b[2] for b in batches)
        assert batch_size < 16 * 1024
        data = sum(b[2] for b in batches)
        assert 64 * 1024 - batch_size < data <= 64 * 1024, (data, batches)
        assert size < 64 * 1024 + 200
        assert batches[0][0] == 0

        # A partition limit smaller than one batch: exactly one whole batch.
        size, parts = raw.fetch_v4([(t, 0, 0, 100)], max_bytes=50 << 20)
        err, hw, batches = parts[(t, 0)]
        assert err == 0 and len(batches) == 1 and batches[0][0] == 0

        # Fetching from the middle of a batch returns that batch (clients skip ahead).
        size, parts = raw.fetch_v4([(t, 0, 15, 100)], max_bytes=50 << 20)
        (first,) = parts[(t, 0)][2]
        assert first[0] <= 15 <= first[1]

        # The response-wide max_bytes across two partitions.
        size, parts = raw.fetch_v4([(t, 0, 0, 1 << 20), (t, 1, 0, 1 << 20)], max_bytes=32 * 1024)
        total = sum(b[2] for p in parts.values() for b in p[2])
        assert total <= 32 * 1024 and size < 32 * 1024 + 300, (total, size)
        assert list(parts) == [(t, 0), (t, 1)]  # every requested partition, in request order
        assert parts[(t, 0)][2], "the first partition must get data"

        # max_bytes smaller than a batch: the first batch of the first partition still whole.
        size, parts = raw.fetch_v4([(t, 0, 0, 1 << 20), (t, 1, 0, 1 << 20)], max_bytes=10)
        assert len(parts[(t, 0)][2]) == 1 and parts[(t, 1)][2] == []

        # At the high watermark: empty, no error; beyond it: OFFSET_OUT_OF_RANGE.
        _, parts = raw.fetch_v4([(t, 0, 400, 1 << 20)], max_bytes=1 << 20)
        assert parts[(t, 0)][0] == 0 and parts[(t, 0)][2] == []
        _, parts = raw.fetch_v4([(t, 0, 401, 1 << 20)], max_bytes=1 << 20)
        assert parts[(t, 0)][0] == 1
    finally:
        raw.close()


@pytest.mark.timeout(90)
def test_max_partition_fetch_bytes_consumer_progresses(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    values = produce_small_batches(broker.bootstrap, t, 3000, 500, per_batch=20)  # ~10 KB batches
    records = consume(broker.bootstrap, t, timeout=60, **{
        "max.partition.fetch.bytes": 2048,  # smaller than one batch
        "fetch.max.bytes": 4096,
        "message.max.bytes": 4096,  # librdkafka wants fetch.max.bytes >= this
    })
    assert [r.value for r in records] == values
    assert [r.offset for r in records] == list(range(3000))


@pytest.mark.timeout(90)
def test_restart_between_produce_and_consume(make_broker, names):
    b = make_broker()
    t = names()
    create_topic(b.bootstrap, t, 3, {"retention.ms": "86400000"})
    a = admin(b.bootstrap)
    topic_id = str(a.describe_topics(TopicCollection([t]))[t].result(timeout=10).topic_id)
    p = producer(b.bootstrap, acks="all")
    expected = {}
    for part in range(3):
        expected[part] = [b"p%d-%d" % (part, i) for i in range(2000)]
        produce_all(p, t, expected[part], partition=part)
    del p

    b.restart()

    for part in range(3):
        records = consume(b.bootstrap, t, partition=part)
        assert [r.value for r in records] == expected[part]
        assert [r.offset for r in records] == list(range(2000))
    a = admin(b.bootstrap)
    assert str(a.describe_topics(TopicCollection([t]))[t].result(timeout=10).topic_id) == topic_id
    resource = ConfigResource(ResourceType.TOPIC, t)
    assert a.describe_configs([resource])[resource].result(timeout=10)["retention.ms"].value == "86400000"
    # New records continue the offsets.
    reports = produce_all(producer(b.bootstrap, acks="all"), t, [b"after"], partition=1)
    assert reports[0].offset() == 2000


@pytest.mark.timeout(90)
def test_many_small_segments(make_broker, names):
    """Reads, time lookups, deletes and a restart across segment boundaries."""
    b = make_broker()
    t = names()
    create_topic(b.bootstrap, t, 1, {"segment.bytes": "16384"})
    base = now_ms() - 60_000
    p = producer(b.bootstrap, **{"linger.ms": 1000, "batch.num.messages": 7})
    for i in range(2000):
        p.produce(t, value=(b"%05d-" % i) + b"s" * 100, partition=0, timestamp=base + i)
    assert p.flush(30) == 0
    assert len(list((b.data_dir / f"{t}-0").glob("*.log"))) > 10, "expected many segments"
    expected = [(b"%05d-" % i) + b"s" * 100 for i in range(2000)]
    assert [r.value for r in consume(b.bootstrap, t)] == expected
    out = kcat("-C", "-b", b.bootstrap, "-t", t, "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == expected
    c = consumer(b.bootstrap)
    try:
        for target in (0, 1, 777, 1234, 1999):
            assert lookup(c, t, base + target) == target, target
    finally:
        c.close()
    a = admin(b.bootstrap)
    assert list(a.delete_records([TopicPartition(t, 0, 1500)]).values())[0].result(timeout=10).low_watermark == 1500
    b.restart()
    records = consume(b.bootstrap, t)
    assert [r.offset for r in records] == list(range(1500, 2000))
    c = consumer(b.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (1500, 2000)
        assert lookup(c, t, base + 10) == 1500  # below the log start: the first offset kept
    finally:
        c.close()


@pytest.mark.timeout(90)
def test_idempotent_producer_across_restart(make_broker, names):
    """Sequence state survives a restart: the same producer keeps producing without
    OUT_OF_ORDER_SEQUENCE errors and without duplicates."""
    b = make_broker()
    t = names()
    create_topic(b.bootstrap, t, 1)
    p = producer(b.bootstrap, **{"enable.idempotence": True, "linger.ms": 5})
    produce_all(p, t, [b"%d" % i for i in range(500)])
    b.restart()
    produce_all(p, t, [b"%d" % i for i in range(500, 1000)], timeout=30)
    records = consume(b.bootstrap, t)
    assert [int(r.value) for r in records] == list(range(1000))


@pytest.mark.timeout(60)
def test_log_append_time_topic(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1, {"message.timestamp.type": "LogAppendTime"})
    p = producer(broker.bootstrap, acks="all")
    before = now_ms()
    reports = produce_all(p, t, [b"a", b"b", b"c"], timestamp=1_000_000)  # an old client-side stamp
    after = now_ms()
    for m in reports:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 5 <= ts <= after + 5, (ts_type, ts)
    records = consume(broker.bootstrap, t)
    assert [r.value for r in records] == [b"a", b"b", b"c"]
    for r in records:
        assert r.timestamp_type == TIMESTAMP_LOG_APPEND_TIME, r
        assert before - 5 <= r.timestamp <= after + 5, (before, r.timestamp, after)

    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    kc.assign([KTopicPartition(t, 0)])
    kc.seek_to_beginning()
    got = [m for _, m in zip(range(3), kc)]
    kc.close()
    assert [m.timestamp_type for m in got] == [1, 1, 1]
    assert all(before - 5 <= m.timestamp <= after + 5 for m in got)
    # Time lookups use the broker's stamps.
    c = consumer(broker.bootstrap)
    try:
        assert lookup(c, t, 1_000_000) == 0
        assert lookup(c, t, after + 60_000) == OFFSET_END
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_create_time_topic_keeps_client_timestamps(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    ts = now_ms() - 3_600_000
    reports = produce_all(producer(broker.bootstrap), t, [b"x"], timestamp=ts)
    assert reports[0].timestamp() == (TIMESTAMP_CREATE_TIME, ts)
    (r,) = consume(broker.bootstrap, t)
    assert (r.timestamp_type, r.timestamp) == (TIMESTAMP_CREATE_TIME, ts)


@pytest.mark.timeout(90)
def test_memory_storage_topic(make_broker, names):
    b = make_broker()
    t = names()
    create_topic(b.bootstrap, t, 2, {"sluice.storage": "memory"})
    a = admin(b.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, t)
    assert a.describe_configs([resource])[resource].result(timeout=10)["sluice.storage"].value == "memory"
    values = [b"mem-%d" % i for i in range(5000)]
    produce_all(producer(b.bootstrap, acks="all", **{"compression.type": "lz4"}), t, values, partition=1)
    assert [r.value for r in consume(b.bootstrap, t, partition=1)] == values
    assert [r.value for r in consume(b.bootstrap, t, partition=1, offset=4990)] == values[4990:]
    out = kcat("-C", "-b", b.bootstrap, "-t", t, "-p", "1", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == values
    c = consumer(b.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10) == (0, 5000)
    finally:
        c.close()
    # Nothing of it on disk.
    assert not any(f.is_file() and f.suffix == ".log" for f in b.data_dir.glob(f"{t}-*/*"))

    # Documented: memory topics exist across restarts, their records do not.
    b.restart()
    c = consumer(b.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 1), timeout=10) == (0, 0)
    finally:
        c.close()
    produce_all(producer(b.bootstrap), t, [b"again"], partition=1)
    assert [r.value for r in consume(b.bootstrap, t, partition=1)] == [b"again"]

"""Producing with confluent-kafka, kcat, kafka-python and aiokafka; reading it back."""

import asyncio
import json
import os
import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, TopicPartition

from helpers import consume, consumer, create_topic, kcat, partition_files_size, produce_all, producer

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_acks(broker, names, acks):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    values = [b"acks-%s-%d" % (acks.encode(), i) for i in range(2000)]
    reports = produce_all(producer(broker.bootstrap, acks=acks), t, values)
    assert len(reports) == len(values)
    if acks != "0":
        assert [m.offset() for m in reports] == list(range(len(values)))
    records = consume(broker.bootstrap, t)
    assert [r.value for r in records] == values
    assert [r.offset for r in records] == list(range(len(values)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_kcat_acks(broker, names, acks):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    lines = [b"kcat-%s-%d" % (acks.encode(), i) for i in range(2000)]
    kcat("-P", "-b", broker.bootstrap, "-t", t, "-p", "0", "-X", f"acks={acks}", input=b"\n".join(lines) + b"\n")
    out = kcat("-C", "-b", broker.bootstrap, "-t", t, "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == lines


@pytest.mark.timeout(60)
def test_confluent_idempotent(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 3)
    p = producer(broker.bootstrap, **{"enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 100})
    errors = []
    for i in range(6000):
        p.produce(t, value=b"%d" % i, partition=i % 3, on_delivery=lambda e, m: e and errors.append(e))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0 and not errors, errors[:3]
    for part in range(3):
        records = consume(broker.bootstrap, t, partition=part)
        assert [int(r.value) for r in records] == list(range(part, 6000, 3))
        assert [r.offset for r in records] == list(range(2000))


@pytest.mark.timeout(60)
def test_aiokafka_idempotent(broker, names):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    t = names()
    create_topic(broker.bootstrap, t, 2)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, linger_ms=5)
        await p.start()
        try:
            futures = [await p.send(t, value=b"a%d" % i, key=b"k%d" % i, partition=i % 2) for i in range(2000)]
            metas = await asyncio.gather(*futures)
        finally:
            await p.stop()
        assert sorted(m.offset for m in metas if m.partition == 0) == list(range(1000))
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([ATopicPartition(t, 0), ATopicPartition(t, 1)])
            got = {0: [], 1: []}
            deadline = time.monotonic() + 20
            while sum(map(len, got.values())) < 2000 and time.monotonic() < deadline:
                batches = await c.getmany(timeout_ms=500)
                for tp, msgs in batches.items():
                    got[tp.partition] += [(m.offset, m.key, m.value) for m in msgs]
        finally:
            await c.stop()
        for part in (0, 1):
            assert [o for o, _, _ in got[part]] == list(range(1000))
            assert [v for _, _, v in got[part]] == [b"a%d" % i for i in range(part, 2000, 2)]
            assert [k for _, k, _ in got[part]] == [b"k%d" % i for i in range(part, 2000, 2)]

    asyncio.run(run())


@pytest.mark.timeout(60)
def test_keys_headers_timestamps_nulls(broker, names):
    t = names()
    # Old timestamps: without retention.ms=-1, time retention (7 days) would delete them.
    create_topic(broker.bootstrap, t, 1, {"retention.ms": "-1"})
    p = producer(broker.bootstrap)
    base = 1_600_000_000_000
    cases = [
        dict(key=b"k1", value=b"v1", headers=[("h1", b"x"), ("h2", b""), ("h1", b"dup")], timestamp=base),
        dict(key=None, value=b"no-key", timestamp=base + 1),
        dict(key=b"", value=b"empty-key", timestamp=base + 2),
        dict(key=b"null-value", value=None, timestamp=base + 3),
        dict(key=b"empty-value", value=b"", timestamp=base + 4),
        dict(key=None, value=None, timestamp=base + 5),
        dict(key=b"\x00\xff" * 10, value=bytes(range(256)), headers=[("null-header", None)], timestamp=base - 10_000),
        dict(key="ключ".encode(), value="значение".encode(), headers=[("ünï", "ç".encode())], timestamp=base + 7),
    ]
    errors = []
    for case in cases:
        p.produce(t, partition=0, on_delivery=lambda e, m: e and errors.append(e), **case)
    assert p.flush(15) == 0 and not errors
    records = consume(broker.bootstrap, t)
    assert len(records) == len(cases)
    for case, r in zip(cases, records):
        assert r.key == case["key"], case
        assert r.value == case["value"], case
        assert (r.timestamp_type, r.timestamp) == (TIMESTAMP_CREATE_TIME, case["timestamp"]), case
        assert (r.headers or []) == (case.get("headers") or []), case

    # The same records through kafka-python (an independent decoder).
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    kc.assign([KTopicPartition(t, 0)])
    kc.seek_to_beginning()
    got = []
    for m in kc:
        got.append(m)
        if len(got) == len(cases):
            break
    kc.close()
    assert len(got) == len(cases)
    for case, m in zip(cases, got):
        assert (m.key, m.value, m.timestamp) == (case["key"], case["value"], case["timestamp"])
        assert [(k, v) for k, v in m.headers] == (case.get("headers") or [])

    # And kcat's JSON view.
    out = kcat("-C", "-b", broker.bootstrap, "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", "-J")
    rows = [json.loads(line) for line in out.splitlines()[:6]]  # later ones hold raw binary
    assert [row["key"] for row in rows[:6]] == ["k1", None, "", "null-value", "empty-value", None]
    assert [row["payload"] for row in rows[:6]] == ["v1", "no-key", "empty-key", None, "", None]
    assert rows[0]["headers"] == ["h1", "x", "h2", "", "h1", "dup"]


@pytest.mark.timeout(60)
def test_kcat_keys_and_headers(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    kcat("-P", "-b", broker.bootstrap, "-t", t, "-p", "0", "-K", ":", "-H", "hk=hv", "-H", "hk2=",
         input=b"a:1\nb:2\n:3\n")
    records = consume(broker.bootstrap, t)
    assert [(r.key, r.value) for r in records] == [(b"a", b"1"), (b"b", b"2"), (b"", b"3")]
    assert records[0].headers == [("hk", b"hv"), ("hk2", b"")]


def compressible_values(n=1000):
    return [(b"record %06d " % i) + b"x" * 1000 for i in range(n)]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", CODECS)
def test_confluent_compression_round_trip(broker, names, codec):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    values = compressible_values()
    produce_all(producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 50}), t, values)
    assert [r.value for r in consume(broker.bootstrap, t)] == values
    out = kcat("-C", "-b", broker.bootstrap, "-t", t, "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == values
    stored = partition_files_size(broker.data_dir, t)
    raw = sum(map(len, values))
    if codec == "none":
        assert stored >= raw
    else:
        assert stored < raw / 4, f"{codec}: {stored} bytes stored for {raw} raw: not compressed?"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_compression_round_trip(broker, names, codec):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    values = compressible_values()
    kcat("-P", "-b", broker.bootstrap, "-t", t, "-p", "0", "-z", codec, "-X", "linger.ms=50",
         input=b"\n".join(values) + b"\n")
    out = kcat("-C", "-b", broker.bootstrap, "-t", t, "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == values
    assert [r.value for r in consume(broker.bootstrap, t)] == values
    stored = partition_files_size(broker.data_dir, t)
    raw = sum(map(len, values))
    if codec == "none":
        assert stored >= raw
    else:
        assert stored < raw / 4, f"{codec}: {stored} bytes stored for {raw} raw: not compressed?"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_compression_round_trip(broker, names, codec):
    """kafka-python frames snappy the Java way (xerial); read back with librdkafka."""
    from kafka import KafkaProducer

    t = names()
    create_topic(broker.bootstrap, t, 1)
    values = compressible_values(500)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=20, acks="all")
    futures = [p.send(t, value=v, partition=0) for v in values]
    p.flush(30)
    assert [f.get(timeout=10).offset for f in futures] == list(range(len(values)))
    p.close()
    assert [r.value for r in consume(broker.bootstrap, t)] == values


@pytest.mark.timeout(90)
def test_one_megabyte_record(broker, names):
    t = names()
    big = 1 << 20  # 1 MiB value: over the default max.message.bytes once framed
    create_topic(broker.bootstrap, t, 1, {"max.message.bytes": str(2 * big)})
    value = os.urandom(big)
    p = producer(broker.bootstrap, **{"message.max.bytes": 3 * big, "acks": "all"})
    produce_all(p, t, [b"small-before", value, b"small-after"])
    # A consumer whose limits admit it...
    records = consume(broker.bootstrap, t, **{"max.partition.fetch.bytes": 4 * big, "fetch.max.bytes": 8 * big})
    assert [r.value for r in records] == [b"small-before", value, b"small-after"]
    # ...and one with the default 1 MiB partition limit: KIP-74 still hands it over whole.
    records = consume(broker.bootstrap, t)
    assert [len(r.value) for r in records] == [12, big, 11] and records[1].value == value


@pytest.mark.timeout(60)
def test_record_too_large_rejected(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)  # default max.message.bytes 1048588
    p = producer(broker.bootstrap, **{"message.max.bytes": 4 << 20, "acks": "all", "retries": 0})
    errors = []
    p.produce(t, value=os.urandom(1_500_000), partition=0, on_delivery=lambda e, m: errors.append(e))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    produce_all(p, t, [b"still works"])
    assert [r.value for r in consume(broker.bootstrap, t)] == [b"still works"]


@pytest.mark.timeout(120)
def test_hundred_thousand_in_order(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    n = 100_000
    p = producer(broker.bootstrap, **{"linger.ms": 20, "batch.num.messages": 10000, "acks": "all"})
    produce_all(p, t, (b"%07d" % i for i in range(n)), timeout=60)
    records = consume(broker.bootstrap, t, timeout=60)
    offsets = [r.offset for r in records]
    values = [int(r.value) for r in records]
    lost = n - len(set(values))
    duplicated = len(values) - len(set(values))
    assert (lost, duplicated) == (0, 0), f"lost {lost}, duplicated {duplicated}"
    assert offsets == list(range(n)) and values == list(range(n))


@pytest.mark.timeout(60)
def test_kafka_python_produce_consume_by_assignment(broker, names):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    t = names()
    create_topic(broker.bootstrap, t, 2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    futures = [p.send(t, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2, headers=[("i", b"%d" % i)])
               for i in range(1000)]
    p.flush(30)
    metas = [f.get(timeout=10) for f in futures]
    assert sorted(m.offset for m in metas if m.partition == 1) == list(range(500))
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    c.assign([KTopicPartition(t, 0), KTopicPartition(t, 1)])
    c.seek(KTopicPartition(t, 1), 100)
    c.seek_to_beginning(KTopicPartition(t, 0))
    got = {0: [], 1: []}
    deadline = time.monotonic() + 20
    while sum(map(len, got.values())) < 900 and time.monotonic() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            got[tp.partition] += msgs
    c.close()
    assert [m.offset for m in got[0]] == list(range(500))
    assert [m.offset for m in got[1]] == list(range(100, 500))
    assert [m.value for m in got[1]] == [b"v%d" % i for i in range(201, 1000, 2)]
    assert all(m.headers == [("i", m.value[1:])] for m in got[0] + got[1])


@pytest.mark.timeout(60)
def test_aiokafka_produce_consume_by_assignment(broker, names):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    t = names()
    create_topic(broker.bootstrap, t, 1)
    ts = int(time.time() * 1000) - 60_000

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
        await p.start()
        try:
            first = await p.send_and_wait(t, value=b"first", key=b"k", partition=0, timestamp_ms=ts,
                                          headers=[("h", b"1")])
            batch = p.create_batch()
            for i in range(100):
                batch.append(key=None, value=b"b%d" % i, timestamp=None)
            meta = await (await p.send_batch(batch, t, partition=0))
        finally:
            await p.stop()
        assert first.offset == 0 and meta.offset == 1
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            tp = ATopicPartition(t, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 101 and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    got += msgs
            end = (await c.end_offsets([tp]))[tp]
        finally:
            await c.stop()
        assert [m.offset for m in got] == list(range(101))
        assert (got[0].key, got[0].value, got[0].timestamp, list(got[0].headers)) == (b"k", b"first", ts, [("h", b"1")])
        assert [m.value for m in got[1:]] == [b"b%d" % i for i in range(100)]
        assert end == 101

    asyncio.run(run())

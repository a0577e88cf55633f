"""Edge cases: auto-creation, acks=0 framing, idempotent duplicates and gaps, corrupt
batches, crash durability. Record batches are built by kafka-python's own encoder."""

import struct
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

from helpers import RawClient, admin, consume, consumer, create_topic, produce_all, producer


def build_batch(values, producer_id=-1, epoch=-1, base_sequence=-1, compression=0) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0,
                                  producer_id=producer_id, producer_epoch=epoch, base_sequence=base_sequence,
                                  batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, v in enumerate(values):
        b.append(i, timestamp=now, key=None, value=v, headers=[])
    return bytes(b.build())


def produce_v3(raw: RawClient, topic: str, partition: int, records: bytes, acks: int = -1,
               expect_response: bool = True):
    body = struct.pack(">hhi", -1, acks, 10000)  # transactional_id null, acks, timeout
    t = topic.encode()
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iii", 1, partition, len(records)) + records
    if not expect_response:
        raw.correlation += 1
        client_id = b"compat-raw"
        frame = struct.pack(">hhih", 0, 3, raw.correlation, len(client_id)) + client_id + body
        raw.sock.sendall(struct.pack(">i", len(frame)) + frame)
        return None
    resp = raw.request(0, 3, body)
    pos = 4  # topics array length
    (tlen,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + tlen + 4
    index, error, base_offset, append_time = struct.unpack_from(">ihqq", resp, pos)
    return error, base_offset


def init_producer_id(raw: RawClient) -> tuple[int, int]:
    resp = raw.request(22, 0, struct.pack(">hi", -1, 60000))
    _, error, pid, epoch = struct.unpack(">ihqh", resp[:16])
    assert error == 0
    return pid, epoch


def api_versions_v0(raw: RawClient) -> int:
    resp = raw.request(18, 0, b"")
    (error,) = struct.unpack_from(">h", resp, 0)
    return error


@pytest.mark.timeout(60)
def test_raw_acks_validation_and_acks0_sends_nothing(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    raw = RawClient(broker.bootstrap)
    try:
        assert produce_v3(raw, t, 0, build_batch([b"x"]), acks=2)[0] == 21  # INVALID_REQUIRED_ACKS
        # acks=0: no response at all; the next request's answer is the next thing on the wire.
        produce_v3(raw, t, 0, build_batch([b"fire-and-forget"]), acks=0, expect_response=False)
        assert api_versions_v0(raw) == 0  # RawClient checks the correlation id
        assert produce_v3(raw, t, 0, build_batch([b"acked"]), acks=1) == (0, 1)
    finally:
        raw.close()
    assert [r.value for r in consume(broker.bootstrap, t)] == [b"fire-and-forget", b"acked"]


@pytest.mark.timeout(60)
def test_raw_corrupt_batch_rejected(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    raw = RawClient(broker.bootstrap)
    try:
        batch = bytearray(build_batch([b"payload-1", b"payload-2"]))
        batch[-3] ^= 0xFF  # flip a byte of the last record: CRC mismatch
        assert produce_v3(raw, t, 0, bytes(batch))[0] == 2  # CORRUPT_MESSAGE
        assert produce_v3(raw, t, 0, build_batch([b"ok"])) == (0, 0)
    finally:
        raw.close()
    assert [r.value for r in consume(broker.bootstrap, t)] == [b"ok"]


@pytest.mark.timeout(60)
def test_raw_idempotent_duplicate_and_gap(broker, names):
    t = names()
    create_topic(broker.bootstrap, t, 1)
    raw = RawClient(broker.bootstrap)
    try:
        pid, epoch = init_producer_id(raw)
        first = build_batch([b"a", b"b", b"c"], pid, epoch, 0)
        assert produce_v3(raw, t, 0, first) == (0, 0)
        assert produce_v3(raw, t, 0, first) == (0, 0)  # a retry: same offset, not appended again
        assert produce_v3(raw, t, 0, build_batch([b"d"], pid, epoch, 3)) == (0, 3)
        assert produce_v3(raw, t, 0, build_batch([b"gap"], pid, epoch, 9))[0] == 45  # OUT_OF_ORDER_SEQUENCE
        # A bumped epoch restarts at sequence 0; the old epoch is then fenced.
        assert produce_v3(raw, t, 0, build_batch([b"e"], pid, epoch + 1, 0)) == (0, 4)
        assert produce_v3(raw, t, 0, build_batch([b"old"], pid, epoch, 4))[0] == 47  # INVALID_PRODUCER_EPOCH
    finally:
        raw.close()
    assert [r.value for r in consume(broker.bootstrap, t)] == [b"a", b"b", b"c", b"d", b"e"]


@pytest.mark.timeout(60)
def test_producer_auto_creates_topic_consumer_does_not(broker, names):
    t = names()
    # librdkafka producers ask Metadata to create a missing topic.
    reports = produce_all(producer(broker.bootstrap), t, [b"auto"])
    assert reports[0].offset() == 0
    assert t in admin(broker.bootstrap).list_topics(timeout=10).topics
    # A consumer's metadata request does not create anything.
    missing = names()
    c = consumer(broker.bootstrap)
    try:
        md = c.list_topics(missing, timeout=10)
        assert md.topics[missing].error is not None
        assert md.topics[missing].error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
    finally:
        c.close()
    assert missing not in admin(broker.bootstrap).list_topics(timeout=10).topics


@pytest.mark.timeout(60)
def test_auto_create_disabled(make_broker, names):
    b = make_broker({"auto.create.topics.enable": "false"})
    t = names()
    p = producer(b.bootstrap, **{"message.timeout.ms": 3000})
    errors = []
    p.produce(t, value=b"x", on_delivery=lambda e, m: errors.append(e))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert t not in admin(b.bootstrap).list_topics(timeout=10).topics


@pytest.mark.timeout(60)
def test_create_topic_bad_partitions_and_replication(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    with pytest.raises(Exception) as info:
        a.create_topics([NewTopic(t, 1, replication_factor=3)])[t].result(timeout=15)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    t = names()
    with pytest.raises(Exception) as info:
        a.create_topics([NewTopic(t, 1, replication_factor=0)])[t].result(timeout=15)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert t not in a.list_topics(timeout=10).topics
    t = names()
    assert a.create_topics([NewTopic(t, 1, replication_factor=-1)])[t].result(timeout=15) is None  # the default
    t = names()
    with pytest.raises(Exception) as info:
        a.create_topics([NewTopic(t, 0)])[t].result(timeout=15)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS


@pytest.mark.timeout(60)
def test_kafka_python_acks_0(broker, names):
    from kafka import KafkaProducer

    t = names()
    create_topic(broker.bootstrap, t, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=0)
    for i in range(200):
        p.send(t, value=b"%d" % i, partition=0)
    p.flush(10)
    # The connection must still work after unanswered requests.
    p.send(t, value=b"last", partition=0).get(timeout=10)
    p.close()
    records = consume(broker.bootstrap, t, count=201, timeout=20)
    assert [r.value for r in records] == [b"%d" % i for i in range(200)] + [b"last"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_log_append_time_compressed(broker, names, codec):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    t = names()
    create_topic(broker.bootstrap, t, 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce_all(producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 50}), t,
                [b"c%d" % i for i in range(50)], timestamp=5_000)
    after = int(time.time() * 1000)
    records = consume(broker.bootstrap, t)
    assert len(records) == 50
    for r in records:
        assert r.timestamp_type == TIMESTAMP_LOG_APPEND_TIME and before - 5 <= r.timestamp <= after + 5, r


@pytest.mark.timeout(90)
def test_durable_topic_survives_kill_9(make_broker, names):
    """flush.messages=1: every acknowledged record survives SIGKILL."""
    b = make_broker()
    t = names()
    create_topic(b.bootstrap, t, 1, {"flush.messages": "1"})
    values = [b"d%d" % i for i in range(2000)]
    produce_all(producer(b.bootstrap, acks="all"), t, values)
    b.kill()
    b.start()
    records = consume(b.bootstrap, t)
    assert [r.value for r in records] == values

"""Time retention with real clients: acknowledged records stay retention.ms after they were
written, whatever timestamps the producer put on them (issue #15: records sent with
timestamp -1 were deleted one second after being acknowledged).

Each test runs its own broker with log.retention.check.interval.ms=250, writes records to a
topic with retention.ms=3000, checks they are all readable until 3 s after the produce call
began, then watches the log start offset: it must not move before that, and must move by the
check after they expire.
"""

from __future__ import annotations

import time

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from kafka import KafkaProducer

from helpers import consume, consumer, create_topic, producer, produce_all

RETENTION_S = 3.0
CHECK_S = 0.25
COUNT = 100


def low_watermark(bootstrap: str, topic: str) -> int:
    c = consumer(bootstrap)
    try:
        low, _ = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        return low
    finally:
        c.close()


def expect_kept_then_deleted(bootstrap: str, topic: str, sent_at: float) -> list:
    """Every record readable until retention.ms after `sent_at`, all deleted by the check
    after that. Returns the records read right after producing."""
    first = consume(bootstrap, topic)
    assert [r.offset for r in first] == list(range(COUNT))
    # Several retention checks run meanwhile (one every 250 ms).
    while time.time() < sent_at + RETENTION_S - 0.6:
        assert low_watermark(bootstrap, topic) == 0, f"records deleted {time.time() - sent_at:.2f}s after produce"
        time.sleep(0.2)
    later = consume(bootstrap, topic)
    assert [r.offset for r in later] == list(range(COUNT)), "acknowledged records gone before retention.ms"
    deadline = sent_at + RETENTION_S + 10
    while time.time() < deadline:
        low = low_watermark(bootstrap, topic)
        if low != 0:
            deleted_at = time.time()
            assert low == COUNT
            assert deleted_at >= sent_at + RETENTION_S, f"deleted {deleted_at - sent_at:.2f}s after produce"
            return first
        time.sleep(0.05)
    raise AssertionError(f"records not deleted {deadline - sent_at:.1f}s after produce (retention.ms 3000)")


def start(make_broker):
    return make_broker({"log.retention.check.interval.ms": str(int(CHECK_S * 1000))})


def test_records_without_a_timestamp_stay_for_retention(make_broker, names):
    """confluent-kafka with timestamp=-1 (what librdkafka's C++ producer sends): record
    timestamps -1, batch header MaxTimestamp 0."""
    broker = start(make_broker)
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": str(int(RETENTION_S * 1000))})
    sent_at = time.time()
    produce_all(producer(broker.bootstrap), topic, [b"v%d" % i for i in range(COUNT)], timestamp=-1)
    records = expect_kept_then_deleted(broker.bootstrap, topic, sent_at)
    assert {r.timestamp for r in records} == {-1}


def test_records_stamped_zero_stay_for_retention(make_broker, names):
    """kafka-python with timestamp_ms=0: every record says 1970."""
    broker = start(make_broker)
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": str(int(RETENTION_S * 1000))})
    sent_at = time.time()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for i in range(COUNT):
        p.send(topic, value=b"v%d" % i, partition=0, timestamp_ms=0)
    p.flush(30)
    p.close()
    records = expect_kept_then_deleted(broker.bootstrap, topic, sent_at)
    assert {r.timestamp for r in records} == {0}


def test_records_stamped_in_the_past_within_retention_stay_for_retention(make_broker, names):
    """CreateTime 2.5 s ago on a 3 s topic: Kafka would delete them half a second after the
    append; they stay 3 s after it."""
    broker = start(make_broker)
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"retention.ms": str(int(RETENTION_S * 1000))})
    sent_at = time.time()
    stamp = int(sent_at * 1000) - 2500
    produce_all(producer(broker.bootstrap), topic, [b"v%d" % i for i in range(COUNT)], timestamp=stamp)
    records = expect_kept_then_deleted(broker.bootstrap, topic, sent_at)
    assert {r.timestamp for r in records} == {stamp}


def test_log_append_time_topics_stamp_and_keep_for_retention(make_broker, names):
    broker = start(make_broker)
    topic = names()
    create_topic(
        broker.bootstrap, topic, 1,
        {"retention.ms": str(int(RETENTION_S * 1000)), "message.timestamp.type": "LogAppendTime"},
    )
    sent_at = time.time()
    produce_all(producer(broker.bootstrap), topic, [b"v%d" % i for i in range(COUNT)], timestamp=1)
    records = expect_kept_then_deleted(broker.bootstrap, topic, sent_at)
    assert {r.timestamp_type for r in records} == {TIMESTAMP_LOG_APPEND_TIME}
    assert all(abs(r.timestamp - sent_at * 1000) < 10_000 for r in records)


def test_timestamps_out_of_bounds_are_refused(make_broker, names):
    """message.timestamp.before.max.ms (KIP-937): INVALID_TIMESTAMP, nothing appended."""
    broker = start(make_broker)
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.before.max.ms": "60000"})
    p = producer(broker.bootstrap, retries=0)
    errors = []
    p.produce(topic, b"old", partition=0, timestamp=int(time.time() * 1000) - 3_600_000,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None and errors[0].name() == "INVALID_TIMESTAMP", errors
    produce_all(p, topic, [b"now"])
    assert [r.value for r in consume(broker.bootstrap, topic)] == [b"now"]

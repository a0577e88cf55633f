"""The metrics endpoint (swift-metrics through swift-prometheus), read with the Prometheus
project's own text-format parser (`prometheus_client.parser`), and the structured logs
(`--log-format json`: the audit log of admin requests, the slow-request log)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import SluiceBroker, _finish
from helpers import admin, create_topic, producer, produce_all


def scrape(url: str) -> dict:
    """Families by name (prometheus_client drops a counter's `_total` from the family name)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict, sample_name: str, **labels) -> float | None:
    family_name = sample_name.removesuffix("_total")
    for suffix in ("_count", "_sum", "_bucket"):
        if sample_name.endswith(suffix) and family_name not in families:
            family_name = sample_name.removesuffix(suffix)
    family = families.get(family_name)
    if family is None:
        return None
    for sample in family.samples:
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


@pytest.fixture
def observed(tmp_path):
    """A broker with the HTTP front door, JSON logs and a slow-request log at 1 ms."""
    b = SluiceBroker(
        tmp_path / "data",
        {"sluice.slow.request.log.ms": "1"},
        http=True,
        extra_args=["--log-format", "json"],
    ).start()
    yield b
    _finish(b)


def test_each_family_is_present_and_moves_under_load(observed, names):
    b = observed
    url = b.http_url
    topic, durable, group = names("t"), names("durable"), names("g")
    create_topic(b.bootstrap, topic, partitions=2)
    create_topic(b.bootstrap, durable, config={"flush.messages": "1"})

    before = scrape(url)
    # Every family has its HELP text (the exporter adds it to swift-metrics' families).
    for family in before.values():
        assert family.documentation, f"{family.name} has no HELP"

    p = producer(b.bootstrap, **{"linger.ms": 0, "acks": "all"})
    produce_all(p, topic, [b"x" * 100] * 300, partition=0)
    produce_all(p, topic, [b"y" * 100] * 200, partition=1)
    produce_all(p, durable, [b"z" * 10] * 20)

    # A consumer group reads partition 0 to the end and commits; partition 1 stays unread.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.monotonic() + 30
    while got < 300 and time.monotonic() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.2):
            if not m.error():
                got += 1
    assert got == 300
    c.commit(offsets=[TopicPartition(topic, 0, 300)], asynchronous=False)
    c.commit(offsets=[TopicPartition(topic, 1, 50)], asynchronous=False)

    # Parked fetches: the consumer, at the end of its partition, keeps a Fetch waiting.
    stop = threading.Event()

    def keep_polling():
        while not stop.is_set():
            c.poll(0.2)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        parked = 0
        deadline = time.monotonic() + 10
        while parked < 1 and time.monotonic() < deadline:
            parked = value(scrape(url), "sluice_parked_fetches") or 0
            time.sleep(0.1)
        assert parked >= 1, "no parked fetch while a consumer waits at the log end"
        m = scrape(url)
        connections = [s for s in m["sluice_connections"].samples]
        assert connections and connections[0].labels["listener"].startswith("PLAINTEXT://")
        assert sum(s.value for s in connections) >= 2  # the producer and the consumer
    finally:
        stop.set()
        poller.join()
        c.close()

    # An error the response carries: creating an existing topic.
    client = admin(b.bootstrap)
    futures = client.create_topics([NewTopic(topic, 1, replication_factor=1)], operation_timeout=10)
    with pytest.raises(KafkaException):
        futures[topic].result(timeout=15)

    after = scrape(url)
    assert value(after, "sluice_topic_records_in_total", topic=topic) == 500
    assert value(after, "sluice_topic_bytes_in_total", topic=topic) > 500 * 100
    assert value(after, "sluice_topic_records_out_total", topic=topic) == 300
    assert value(after, "sluice_topic_bytes_out_total", topic=topic) > 300 * 100
    # Request counts and latency histograms by API.
    produced = value(after, "sluice_kafka_requests_total", api="Produce")
    assert produced >= 3  # at least one per produce_all (librdkafka batches what queues meanwhile)
    assert (value(before, "sluice_kafka_requests_total", api="Produce") or 0) == 0
    assert value(after, "sluice_kafka_request_duration_seconds_count", api="Produce") == produced
    assert value(after, "sluice_kafka_request_duration_seconds_bucket", api="Produce", le="+Inf") == produced
    assert value(after, "sluice_kafka_request_duration_seconds_sum", api="Produce") > 0
    assert value(after, "sluice_kafka_requests_total", api="ApiVersions") >= 3
    assert value(after, "sluice_kafka_request_errors_total", api="CreateTopics", error="TOPIC_ALREADY_EXISTS") == 1
    # fsync-before-ack: produce-to-durable and flush durations.
    assert value(after, "sluice_produce_durable_duration_seconds_count") >= 1
    assert value(after, "sluice_log_flush_duration_seconds_count") >= 1
    # Per-partition state and the group's lag.
    assert value(after, "sluice_partition_log_end_offset", topic=topic, partition="0") == 300
    assert value(after, "sluice_partition_high_watermark", topic=topic, partition="1") == 200
    assert value(after, "sluice_partition_size_bytes", topic=topic, partition="0") > 300 * 100
    assert value(after, "sluice_partition_offline", topic=topic, partition="0") == 0
    assert value(after, "sluice_group_lag", group=group, topic=topic, partition="0") == 0
    assert value(after, "sluice_group_lag", group=group, topic=topic, partition="1") == 150
    # Overflow figures and the HTTP front door's own.
    assert value(after, "sluice_overflow_group_backlog_bytes", topic=topic, group=group) > 0
    assert value(after, "sluice_http_responses_total", route="/metrics", code="200") >= 1

    # Every family the Grafana dashboard in docs/ charts is in the exposition.
    dashboard = json.loads((Path(__file__).parent.parent / "docs/observability/grafana-dashboard.json").read_text())
    charted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"sluice_\w+", target["expr"])}
    assert charted
    for name in charted:
        base = re.sub(r"_(bucket|total)$", "", name)
        assert base in after, f"the dashboard charts {name}, which /metrics does not have"

    # A deleted topic's series go with it.
    client.delete_topics([durable], operation_timeout=10)[durable].result(timeout=15)
    gone = scrape(url)
    assert value(gone, "sluice_topic_records_in_total", topic=durable) is None
    assert value(gone, "sluice_partition_log_end_offset", topic=durable, partition="0") is None

    # A webhook subscription made and removed through the HTTP API: audited too.
    hook = names("hook")
    made = urllib.request.Request(url + "/v1/webhooks", method="POST",
                                  data=json.dumps({"name": hook, "topic": topic, "url": "http://127.0.0.1:9/x"}).encode(),
                                  headers={"Content-Type": "application/json"})
    urllib.request.urlopen(made, timeout=10).read()
    urllib.request.urlopen(urllib.request.Request(f"{url}/v1/webhooks/{hook}", method="DELETE"), timeout=10).read()

    # The JSON log: one object per line; the admin requests are in the audit log with who
    # made them and the outcome; requests over 1 ms are in the slow-request log.
    time.sleep(0.3)
    lines = [line for line in b.log_path.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert events and all({"time", "level", "logger", "msg"} <= e.keys() for e in events)
    audit = [e for e in events if e["logger"] == "sluice.audit"]
    creates = [e for e in audit if e["api"] == "CreateTopics" and topic in e["resources"]]
    assert len(creates) == 2
    assert creates[0]["errors"] == [] and creates[1]["errors"] == ["TOPIC_ALREADY_EXISTS"]
    assert creates[0]["principal"] == "User:ANONYMOUS" and creates[0]["client_host"] == "127.0.0.1"
    assert any(e["api"] == "DeleteTopics" and durable in e["resources"] for e in audit)
    hooks = [e for e in audit if e.get("front_door") == "http" and e["resources"] == [hook]]
    assert [e["api"] for e in hooks] == ["POST /v1/webhooks", "DELETE /v1/webhooks/{name}"], hooks
    assert all(e["status"] in ("200", "201", "204") for e in hooks), hooks
    slow = [e for e in events if e["logger"] == "sluice.slow"]
    assert slow and all(float(e["duration_ms"]) >= 1 for e in slow)

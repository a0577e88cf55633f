"""REST Proxy v2 consumer instances (`/consumers/...`) against real Kafka consumers: a REST
instance and a librdkafka consumer in one group split its partitions; what one commits the
other resumes from. Uses the shared `http_broker` (see conftest.py)."""

from __future__ import annotations

import base64
import threading
import time

import requests
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition

from helpers import admin, create_topic

V2 = {"Content-Type": "application/vnd.kafka.v2+json"}
BINARY = {"Accept": "application/vnd.kafka.binary.v2+json"}


def instance_url(http_url: str, group: str, name: str) -> str:
    return f"{http_url}/consumers/{group}/instances/{name}"


def create_instance(http_url: str, group: str, name: str, **settings) -> str:
    r = requests.post(f"{http_url}/consumers/{group}", json={"name": name, **settings}, headers=V2, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["instance_id"] == name
    return instance_url(http_url, group, name)


def rest_assignment(url: str) -> set[int]:
    r = requests.get(f"{url}/assignments", timeout=10)
    assert r.status_code == 200, r.text
    return {p["partition"] for p in r.json()["partitions"]}


def rest_read(url: str, timeout_ms: int = 200) -> list[dict]:
    r = requests.get(f"{url}/records?timeout={timeout_ms}", headers=BINARY, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/vnd.kafka.binary.v2+json"
    return r.json()


def test_rest_and_librdkafka_consumers_split_a_group(http_broker, names):
    topic, group = names(), names("g")
    create_topic(http_broker.bootstrap, topic, partitions=4)
    rest = create_instance(http_broker.http_url, group, "rest-1", **{"auto.offset.reset": "earliest"})
    r = requests.post(f"{rest}/subscription", json={"topics": [topic]}, headers=V2, timeout=10)
    assert r.status_code == 204, r.text

    kafka = Consumer({
        "bootstrap.servers": http_broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 10000,
    })
    # The Kafka consumer is only touched from its polling thread; its assignment is kept
    # from the rebalance callbacks.
    theirs_now: set[int] = set()

    def on_assign(_consumer, partitions):
        theirs_now.clear()
        theirs_now.update(tp.partition for tp in partitions)

    def on_revoke(_consumer, _partitions):
        theirs_now.clear()

    kafka.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    kafka_records: list = []
    stop = threading.Event()

    def poll_kafka():
        while not stop.is_set():
            message = kafka.poll(0.1)
            if message is not None and message.error() is None:
                kafka_records.append((message.partition(), message.offset(), message.value()))

    poller = threading.Thread(target=poll_kafka)
    poller.start()
    try:
        # Both members settle into one generation: disjoint halves covering all four.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            rest_read(rest, 100)  # keeps the instance in use; nothing produced yet
            mine = rest_assignment(rest)
            theirs = set(theirs_now)
            if mine and theirs and mine.isdisjoint(theirs) and mine | theirs == {0, 1, 2, 3}:
                break
            time.sleep(0.2)
        assert mine and theirs and mine.isdisjoint(theirs) and mine | theirs == {0, 1, 2, 3}, (mine, theirs)
        client = admin(http_broker.bootstrap)  # kept: a destroyed client fails its futures
        description = client.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert len(description.members) == 2
        assert any(m.client_id == "sluice-rest-rest-1" for m in description.members)

        p = Producer({"bootstrap.servers": http_broker.bootstrap})
        sent = set()
        for i in range(40):
            value = f"v{i}".encode()
            p.produce(topic, value=value, partition=i % 4)
            sent.add((i % 4, value))
        assert p.flush(15) == 0

        rest_records: list = []
        deadline = time.monotonic() + 30
        while len(rest_records) + len(kafka_records) < 40 and time.monotonic() < deadline:
            rest_records += rest_read(rest)
        got_rest = {(r["partition"], base64.b64decode(r["value"])) for r in rest_records}
        got_kafka = {(partition, value) for partition, _, value in kafka_records}
        # Each side read only its own partitions, each record once, and together all of them.
        assert {partition for partition, _ in got_rest} <= mine
        assert {partition for partition, _ in got_kafka} <= theirs
        assert len(rest_records) + len(kafka_records) == 40
        assert got_rest | got_kafka == sent
    finally:
        stop.set()
        poller.join()
        kafka.close()

    # The REST instance commits what it read (auto-commit on close), and leaves.
    assert requests.delete(rest, timeout=10).status_code == 204
    client = admin(http_broker.bootstrap)
    committed = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in mine])]
    )[group].result(timeout=20)
    kafka_offsets = {tp.partition: tp.offset for tp in committed.topic_partitions}
    assert all(kafka_offsets[p] == 10 for p in mine), kafka_offsets
    assert requests.get(f"{rest}/assignments", timeout=10).json()["error_code"] == 40403


def test_rest_commit_is_what_a_kafka_consumer_resumes_from(http_broker, names):
    topic, group = names(), names("g")
    create_topic(http_broker.bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": http_broker.bootstrap})
    for i in range(10):
        p.produce(topic, value=f"r{i}".encode(), partition=0)
    assert p.flush(15) == 0
    rest = create_instance(
        http_broker.http_url, group, "manual", **{"auto.commit.enable": "false", "auto.offset.reset": "earliest"})
    r = requests.post(f"{rest}/assignments", json={"partitions": [{"topic": topic, "partition": 0}]},
                      headers=V2, timeout=10)
    assert r.status_code == 204
    records = []
    deadline = time.monotonic() + 10
    while len(records) < 10 and time.monotonic() < deadline:
        records += rest_read(rest)
    assert [r["offset"] for r in records] == list(range(10))
    # REST Proxy's commit takes the last offset consumed: 5 commits 6.
    r = requests.post(f"{rest}/offsets", json={"offsets": [{"topic": topic, "partition": 0, "offset": 5}]},
                      headers=V2, timeout=10)
    assert r.status_code == 200 and r.json() == []
    assert requests.delete(rest, timeout=10).status_code == 204

    kafka = Consumer({"bootstrap.servers": http_broker.bootstrap, "group.id": group, "auto.offset.reset": "latest"})
    kafka.subscribe([topic])
    values = []
    deadline = time.monotonic() + 30
    while len(values) < 4 and time.monotonic() < deadline:
        message = kafka.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
    kafka.close()
    assert values == [b"r6", b"r7", b"r8", b"r9"]

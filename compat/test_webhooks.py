"""Webhooks (`/v1/webhooks`, `sluice webhook …`) against a real HTTP receiver process
(compat/webhook_receiver.py): retries in order with Standard Webhooks signatures, a receiver
that is down for a while, one that always fails (dead-letter topic), and a broker killed
mid-delivery (at least once)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import free_port, sluice_binary
from helpers import create_topic

HERE = Path(__file__).resolve().parent
SECRET_KEY = os.urandom(24)
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


class Receiver:
    """compat/webhook_receiver.py on a free port, logging each request to a file."""

    def __init__(self, tmp_path: Path, *flags: str, port: int | None = None):
        self.port = port or free_port()
        self.log = tmp_path / f"receiver-{self.port}.jsonl"
        self.flags = flags
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "webhook_receiver.py"), str(self.port), str(self.log), *self.flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout.readline().strip() == b"ready"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def delivered(self) -> list[dict]:
        return [r for r in self.requests() if r["answer"] == 200]


@pytest.fixture
def receivers(tmp_path):
    made: list[Receiver] = []

    def make(*flags: str, port: int | None = None) -> Receiver:
        r = Receiver(tmp_path, *flags, port=port).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def create_webhook(http_url: str, **fields) -> dict:
    r = requests.post(f"{http_url}/v1/webhooks", json=fields, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def describe(http_url: str, name: str) -> dict:
    r = requests.get(f"{http_url}/v1/webhooks/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def produce(bootstrap: str, topic: str, count: int, partitions: int) -> set[tuple[int, int]]:
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        p.produce(topic, value=json.dumps({"n": i}).encode(), partition=i % partitions)
    assert p.flush(15) == 0
    return {(i % partitions, i // partitions) for i in range(count)}


def verify_signature(request: dict) -> bool:
    scheme, _, signature = request["signature"].partition(",")
    expected = hmac.new(
        SECRET_KEY, f"{request['id']}.{request['timestamp']}.{request['body']}".encode(), hashlib.sha256).digest()
    return scheme == "v1" and hmac.compare_digest(base64.b64decode(signature), expected)


def test_retries_deliver_everything_in_order_signed(http_broker, names, receivers):
    topic, name = names(), names("w")
    create_topic(http_broker.bootstrap, topic, partitions=3)
    expected = produce(http_broker.bootstrap, topic, 30, 3)
    receiver = receivers("--fail-first", "2")
    created = create_webhook(
        http_broker.http_url, name=name, topic=topic, url=receiver.url, secret=SECRET, **{"from": "beginning"},
        retry_backoff_ms=20, max_backoff_ms=100)
    assert created["signed"] is True and created["group"] == f"sluice-webhook-{name}"
    wait_for(lambda: len(receiver.delivered()) >= 30, 30, "30 deliveries")
    attempts = receiver.requests()
    delivered = receiver.delivered()
    # Every attempt is signed, and the signature verifies with the shared key.
    assert all(verify_signature(r) for r in attempts)
    # The webhook-id is the same on every retry of a record: each one 3 attempts (2 x 503, 1 x 200).
    by_id: dict[str, list[int]] = {}
    for r in attempts:
        by_id.setdefault(r["id"], []).append(r["answer"])
    assert all(answers == [503, 503, 200] for answers in by_id.values()), by_id
    # Each record once, in order per partition.
    bodies = [json.loads(r["body"]) for r in delivered]
    assert {(b["partition"], b["offset"]) for b in bodies} == expected
    for partition in range(3):
        offsets = [b["offset"] for b in bodies if b["partition"] == partition]
        assert offsets == sorted(offsets) and len(offsets) == 10
    assert all(b["topic"] == topic and json.loads(b["value"])["n"] >= 0 for b in bodies)
    # Progress is the group's committed offsets; the figures say what happened.
    d = wait_for(lambda: (lambda d: d if d["lag"] == 0 else None)(describe(http_broker.http_url, name)), 10, "lag 0")
    assert d["delivered"] == 30 and d["retries"] == 60 and d["failures"] == 60 and d["dead_lettered"] == 0
    assert d["last_status"] == 503
    metrics = requests.get(f"{http_broker.http_url}/metrics", timeout=10).text
    assert f'sluice_webhook_deliveries_total{{webhook="{name}"}} 30' in metrics
    client = AdminClient({"bootstrap.servers": http_broker.bootstrap})
    offsets = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(f"sluice-webhook-{name}", [TopicPartition(topic, p) for p in range(3)])]
    )[f"sluice-webhook-{name}"].result(timeout=15)
    assert sorted(tp.offset for tp in offsets.topic_partitions) == [10, 10, 10]


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_up(http_broker, names, receivers, tmp_path):
    topic, name = names(), names("w")
    create_topic(http_broker.bootstrap, topic, partitions=1)
    port = free_port()
    create_webhook(
        http_broker.http_url, name=name, topic=topic, url=f"http://127.0.0.1:{port}/hook", max_attempts=100,
        # A generous timeout: an attempt that times out while the receiver (just started, on a
        # loaded machine) still answers it is retried and delivered twice, as at-least-once
        # delivery does; this test is about a receiver that is down, not a slow one.
        retry_backoff_ms=50, max_backoff_ms=300, timeout_ms=10000, **{"from": "beginning"})
    expected = produce(http_broker.bootstrap, topic, 20, 1)
    # Refused connections count as failures, with the reason.
    d = wait_for(lambda: (lambda d: d if d["failures"] >= 3 else None)(describe(http_broker.http_url, name)), 10,
                 "failures while the receiver is down")
    assert d["delivered"] == 0 and d["last_error"] and d["last_status"] is None
    receiver = receivers(port=port)
    wait_for(lambda: len(receiver.delivered()) >= 20, 30, "20 deliveries")
    bodies = [json.loads(r["body"]) for r in receiver.delivered()]
    assert [b["offset"] for b in bodies] == list(range(20))
    assert {(b["partition"], b["offset"]) for b in bodies} == expected


def test_a_receiver_that_always_fails_fills_the_dead_letter_topic(http_broker, names, receivers):
    topic, name = names(), names("w")
    create_topic(http_broker.bootstrap, topic, partitions=2)
    produce(http_broker.bootstrap, topic, 6, 2)
    receiver = receivers("--always", "500")
    create_webhook(
        http_broker.http_url, name=name, topic=topic, url=receiver.url, max_attempts=3, retry_backoff_ms=10,
        max_backoff_ms=20, dead_letter_topic=f"{name}-dead", **{"from": "beginning"})
    d = wait_for(lambda: (lambda d: d if d["dead_lettered"] == 6 else None)(describe(http_broker.http_url, name)),
                 30, "6 dead-lettered records")
    assert d["delivered"] == 0 and d["failures"] == 18 and d["lag"] == 0
    assert len(receiver.requests()) == 18
    consumer = Consumer({"bootstrap.servers": http_broker.bootstrap, "group.id": names("g"),
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(f"{name}-dead", 0, 0)])
    dead = []
    deadline = time.monotonic() + 15
    while len(dead) < 6 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            dead.append(message)
    consumer.close()
    assert len(dead) == 6
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        assert headers["webhook.name"] == name and headers["webhook.status"] == "500"
        assert headers["webhook.attempts"] == "3" and headers["webhook.original.topic"] == topic
        assert headers["webhook.error"] == "HTTP 500"
        n = json.loads(message.value())["n"]
        assert int(headers["webhook.original.partition"]) == n % 2
        assert int(headers["webhook.original.offset"]) == n // 2


def test_broker_killed_mid_delivery_delivers_everything_at_least_once(make_broker, names, receivers):
    b = make_broker(http=True)
    topic, name = names(), names("w")
    create_topic(b.bootstrap, topic, partitions=2)
    expected = produce(b.bootstrap, topic, 200, 2)
    receiver = receivers("--delay-ms", "5")
    create_webhook(b.http_url, name=name, topic=topic, url=receiver.url, **{"from": "beginning"})
    wait_for(lambda: len(receiver.delivered()) >= 60, 30, "60 deliveries before the kill")
    b.kill()
    before = len(receiver.delivered())
    b.start()
    # The subscription is stored: it resumes from the committed offsets.
    wait_for(lambda: {(json.loads(r["body"])["partition"], json.loads(r["body"])["offset"])
                      for r in receiver.delivered()} >= expected, 60, "every record after the restart")
    bodies = [json.loads(r["body"]) for r in receiver.delivered()]
    keys = [(x["partition"], x["offset"]) for x in bodies]
    duplicates = len(keys) - len(set(keys))
    # At least once: nothing lost; again only what was in the last uncommitted window
    # (20 records or 200 ms per partition, and what was in flight).
    assert set(keys) == expected
    assert duplicates <= 2 * 25, (duplicates, before)
    for partition in range(2):
        offsets = [o for p, o in keys if p == partition]
        # In order, except that a redelivered window starts again from its beginning.
        restarts = sum(1 for a, c in zip(offsets, offsets[1:]) if c <= a)
        assert restarts <= 1


def test_pause_resume_delete_and_the_cli(make_broker, names, receivers):
    b = make_broker(http=True)
    topic, name = names(), names("w")
    create_topic(b.bootstrap, topic, partitions=1)
    receiver = receivers()
    cli = [str(sluice_binary()), "webhook"]
    http = ["--http", b.http_url]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args, *http], capture_output=True, timeout=30)

    created = run("create", name, "--topic", topic, "--url", receiver.url, "--secret", SECRET, "--from", "beginning")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == name
    assert run("create", name, "--topic", topic, "--url", receiver.url).returncode == 1  # exists: 409
    assert run("create", "x", "--topic", topic, "--url", "ftp://nope").returncode == 1  # 422
    assert run("pause", name).returncode == 0
    assert json.loads(run("describe", name).stdout)["state"] == "paused"
    produce(b.bootstrap, topic, 5, 1)
    time.sleep(1.5)
    assert receiver.delivered() == []
    # Paused is kept across a restart.
    b.stop()
    b.start()
    assert json.loads(run("list").stdout)[0]["state"] == "paused"
    assert run("resume", name).returncode == 0
    wait_for(lambda: len(receiver.delivered()) == 5, 20, "5 deliveries after resume")
    assert run("delete", name).returncode == 0
    assert run("describe", name).returncode == 1
    b.stop()
    b.start()
    assert json.loads(run("list").stdout) == []

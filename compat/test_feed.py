"""Multicast feeds (MoldUDP64) and their retransmission server (docs/udp.md), each test in a
network namespace of its own (compat/netns.py: loopback with multicast, a route for
224.0.0.0/4; iptables random loss where a test wants it). The broker, `sluice feed listen`,
the producers and this file's own sockets all run inside it.

- 100,000 records reach two `sluice feed listen` receivers through 5 % random loss
  (iptables -m statistic): complete, in order, once each, gaps recovered through the
  retransmission server (Jepsen-style total-queue counts printed).
- A late joiner (`--from 1 --json`, two partitions) catches up through retransmission
  while the feed goes on.
- A gap at the end (every datagram dropped for a while) is found from the heartbeats;
  records gone from the log (DeleteRecords) are counted unrecoverable and skipped; a
  listener counts garbage datagrams on the group (short, inconsistent counts and lengths,
  sequence numbers that overflow) as malformed and goes on.
- The framing against an independent decoder (compat/moldudp64.py, written from NASDAQ's
  MoldUDP64 1.00 specification): sessions, sequence number = offset + 1 and contiguity,
  packing up to sluice.feed.max.datagram.bytes, a large message alone, an oversize one
  empty, heartbeats when idle, retransmission answers (greedy, beyond the end, below the
  log start), the feed moving to another port and stopping (end of session).
- The `record` payload envelope (timestamp, key, value, headers; nulls) on the wire, in
  retransmissions and in `sluice feed listen --json`.
- Datagrams up to the MTU − 28 by default (lo at 1,500), zstd batches, the TTL, ends of
  session on topic deletion and broker stop; invalid feed configs refused.
- Hostile requests (wrong sizes, other sessions, count 0, random bytes) get no answer and
  are counted; the per-requester rate limit.

Needs root (ip netns, iptables): CI runs as root, and nothing here is skipped.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import moldudp64 as mold
from conftest import sluice_binary
from helpers import admin, consume, create_topic, produce_all, producer
from netns import NetNS, NsBroker

pytestmark = pytest.mark.timeout(90)

GROUP = "239.7.0.1"
PORT = 30001
RETRANSMIT = ("127.0.0.1", 30002)


@pytest.fixture
def ns():
    n = NetNS("sluice-feed")
    yield n
    n.close()


@pytest.fixture
def broker(ns, tmp_path):
    b = NsBroker(ns, sluice_binary(), tmp_path / "data").start()
    yield b
    running = b.alive()
    status = b.stop()
    print(f"---- sluice log ({b.log_path}):\n{b.log_tail()}")
    assert not running or status == 0, f"sluice exited with status {status} on SIGTERM"


def feed_config(group: str = GROUP, port: int = PORT, **extra) -> dict[str, str]:
    config = {
        "sluice.feed.multicast": f"{group}:{port}",
        "sluice.feed.retransmit": f"{RETRANSMIT[0]}:{RETRANSMIT[1]}",
        "sluice.feed.heartbeat.ms": "100",
    }
    config.update({"sluice.feed." + k.replace("_", "."): str(v) for k, v in extra.items()})
    return config


def wait_heartbeats(sock: socket.socket, sessions: dict[str, int], timeout: float = 15) -> list[mold.Packet]:
    """Reads the group until every session in `sessions` sent a heartbeat with the given
    next sequence number (the feed is up)."""
    seen: dict[str, int] = {}

    def done(packets):
        p = packets[-1]
        if p.heartbeat:
            seen[p.session] = p.sequence
        return all(seen.get(s) == q for s, q in sessions.items())

    packets = mold.receive(sock, timeout, done)
    assert all(seen.get(s) == q for s, q in sessions.items()), (
        f"no heartbeats {sessions} within {timeout}s; seen {seen}, {len(packets)} packets"
    )
    return packets


def feed_metric(metrics: dict[str, float], name: str, topic: str) -> float:
    """A sluice_feed_* sample labelled with the topic (0 when absent)."""
    for key, value in metrics.items():
        if key.startswith(name + "{") and f'topic="{topic}"' in key:
            return value
    return 0.0


class Listener:
    """`sluice feed listen …` in the namespace, stdout and stderr to files."""

    def __init__(self, ns: NetNS, tmp_path: Path, name: str, *args: str):
        self.out_path = tmp_path / f"{name}.out"
        self.err_path = tmp_path / f"{name}.err"
        self.args = args
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = ns.popen(str(sluice_binary()), "feed", "listen", *args, stdout=out, stderr=err)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError(
                f"sluice feed listen {' '.join(self.args)} did not end within {timeout}s: "
                f"{len(self.lines())} lines; stderr:\n{self.stderr()[-3000:]}"
            )

    def lines(self) -> list[bytes]:
        data = self.out_path.read_bytes()
        return data.split(b"\n")[:-1] if data else []

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stats(self) -> dict[str, int]:
        """The gap statistics printed on stderr at the end: every `word: N` / `word=N` /
        `N word` pair found, by lower-case word."""
        text = self.stderr()
        found: dict[str, int] = {}
        for word, n in re.findall(r"([A-Za-z_]+)\s*[=:]\s*(\d+)", text):
            found[word.lower()] = int(n)
        for n, word in re.findall(r"(\d+)\s+([A-Za-z_]+)", text):
            found.setdefault(word.lower(), int(n))
        return found


def total_queue(label: str, expected: list[bytes], got: list[bytes]) -> dict[str, int]:
    """Jepsen-style total-queue counts: lost, duplicated, unexpected; and whether the order
    is the produced one."""
    wanted = set(expected)
    counts = Counter(got)
    result = {
        "expected": len(expected),
        "received": len(got),
        "lost": sum(1 for v in expected if counts[v] == 0),
        "duplicated": sum(c - 1 for v, c in counts.items() if c > 1 and v in wanted),
        "unexpected": sum(c for v, c in counts.items() if v not in wanted),
        "in_order": int(got == expected),
    }
    print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return result


def wait_joined(ns: NetNS, group: str, users: int, listeners: list[Listener], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while ns.group_users(group) < users:
        for listener in listeners:
            assert listener.proc.poll() is None, f"sluice feed listen exited {listener.proc.returncode}: {listener.stderr()}"
        assert time.monotonic() < deadline, f"only {ns.group_users(group)} of {users} sockets joined {group}"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# The must-show: loss and recovery.


@pytest.mark.timeout(300)
def test_100k_records_reach_two_receivers_through_random_loss(ns, broker, tmp_path):
    topic, count = "loss", 100_000
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config(max_datagram_bytes=1472))
        probe = mold.join(GROUP, PORT)
    wait_heartbeats(probe, {"V000000000": 1})  # the feed is up, from sequence 1
    probe.close()
    rule = ns.drop_random(GROUP, 0.05)

    args = [f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT, "--count", str(count)]
    receivers = [Listener(ns, tmp_path, f"receiver{i}", *args) for i in range(2)]
    wait_joined(ns, GROUP, 2, receivers)
    time.sleep(0.8)  # ~8 heartbeats (5 % lost): each receiver knows the session starts at 1

    values = [b"r%06d-%s" % (i, b"x" * 24) for i in range(count)]
    started = time.monotonic()
    with ns.entered():
        produce_all(producer(broker.bootstrap, **{"linger.ms": 5}), topic, values, timeout=120)
    produced = time.monotonic() - started

    for i, r in enumerate(receivers):
        status = r.wait(120)
        got = r.lines()
        counts = total_queue(f"receiver{i}", values, got)
        stats = r.stats()
        print(f"receiver{i}: exit {status} after {time.monotonic() - started:.1f}s (produce {produced:.1f}s); "
              f"stderr: {r.stderr().strip()[-500:]}")
        assert status == 0, r.stderr()
        assert counts == {"expected": count, "received": count, "lost": 0, "duplicated": 0, "unexpected": 0,
                          "in_order": 1}, f"receiver{i}: {counts}"
        assert stats.get("gaps", 0) > 0, f"receiver{i} reports no gaps through 5 % loss: {r.stderr()}"
        assert stats.get("recovered", 0) > 0, f"receiver{i} reports nothing recovered: {r.stderr()}"
        assert stats.get("unrecoverable", 0) == 0, r.stderr()

    dropped = ns.dropped(GROUP)
    print(f"iptables dropped {dropped} datagrams to {GROUP}")
    assert dropped > 0
    ns.delete_rule(rule)

    m = broker.metrics()
    assert feed_metric(m, "sluice_feed_records_total", topic) == count
    datagrams = feed_metric(m, "sluice_feed_datagrams_total", topic)
    per_datagram = (1472 - 20) // (2 + len(values[0]))
    assert datagrams >= count / per_datagram, m
    assert feed_metric(m, "sluice_feed_heartbeats_total", topic) > 0
    assert feed_metric(m, "sluice_feed_retransmit_requests_total", topic) > 0
    assert feed_metric(m, "sluice_feed_retransmit_datagrams_total", topic) > 0
    assert feed_metric(m, "sluice_feed_retransmit_malformed_total", topic) == 0
    print({k: v for k, v in m.items() if k.startswith("sluice_feed")})


@pytest.mark.timeout(180)
def test_a_late_joiner_catches_up_from_sequence_1(ns, broker, tmp_path):
    topic, per_partition = "late", 10_000
    with ns.entered():
        create_topic(broker.bootstrap, topic, 2, feed_config(max_datagram_bytes=1472))
        probe = mold.join(GROUP, PORT)
    wait_heartbeats(probe, {"V000000000": 1, "V000000001": 1})
    probe.close()
    ns.drop_random(GROUP, 0.05)
    values = {p: [b"p%d-%05d" % (p, i) for i in range(per_partition)] for p in (0, 1)}
    half = per_partition // 2
    with ns.entered():
        prod = producer(broker.bootstrap)
        for p in (0, 1):
            produce_all(prod, topic, values[p][:half], partition=p)
    # Joins after half the records: --from 1 fetches them from the retransmission server
    # while the rest goes out live.
    late = Listener(ns, tmp_path, "late", f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT,
                    "--from", "1", "--count", str(2 * per_partition), "--json", "--interface", "127.0.0.1")
    wait_joined(ns, GROUP, 1, [late])
    with ns.entered():
        for p in (0, 1):
            produce_all(prod, topic, values[p][half:], partition=p)
    status = late.wait(120)
    assert status == 0, late.stderr()
    rows = [json.loads(line) for line in late.lines()]
    print(f"late joiner: {len(rows)} records; stderr: {late.stderr().strip()[-500:]}")
    for p in (0, 1):
        mine = [r for r in rows if r["partition"] == p]
        got = [r["value"].encode() for r in mine]
        counts = total_queue(f"partition {p}", values[p], got)
        assert counts["lost"] == counts["duplicated"] == counts["unexpected"] == 0 and counts["in_order"], counts
        assert [r["offset"] for r in mine] == list(range(per_partition))
        assert [r["sequence"] for r in mine] == list(range(1, per_partition + 1))
        assert {r["session"] for r in mine} == {mold.session_name(p)}
    assert len(rows) == 2 * per_partition
    stats = late.stats()
    assert stats.get("unrecoverable", 0) == 0, late.stderr()


def test_a_gap_at_the_end_is_found_from_heartbeats(ns, broker, tmp_path):
    topic = "tail"
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config(heartbeat_ms=200))
        probe = mold.join(GROUP, PORT)
    wait_heartbeats(probe, {"V000000000": 1})
    listener = Listener(ns, tmp_path, "tail", f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT, "--count", "10")
    wait_joined(ns, GROUP, 2, [listener])
    time.sleep(0.6)  # the listener saw heartbeats: the session starts at 1
    rule = ns.drop_all(GROUP)
    time.sleep(0.05)
    mold.drain(probe)
    values = [b"tail-%d" % i for i in range(10)]
    with ns.entered():
        produce_all(producer(broker.bootstrap), topic, values)
    packets = mold.receive(probe, 0.5)
    assert packets == [], "the DROP rule let datagrams through"
    time.sleep(0.5)
    assert listener.lines() == [], "records printed while every datagram was dropped"
    ns.delete_rule(rule)  # heartbeats with sequence 11 now arrive: the receiver asks for 1…10
    assert listener.wait(20) == 0, listener.stderr()
    assert listener.lines() == values
    assert listener.stats().get("gaps", 0) >= 1, listener.stderr()


def test_records_gone_from_the_log_are_counted_unrecoverable(ns, broker, tmp_path):
    topic = "gone"
    values = [b"g%03d" % i for i in range(200)]
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config())
        produce_all(producer(broker.bootstrap), topic, values)
        from confluent_kafka import TopicPartition

        client = admin(broker.bootstrap)  # kept: a destroyed client fails its futures
        for f in client.delete_records([TopicPartition(topic, 0, 50)]).values():
            f.result(timeout=15)
    listener = Listener(ns, tmp_path, "gone", f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT,
                        "--from", "1", "--count", "150", "--json")
    assert listener.wait(30) == 0, listener.stderr()
    rows = [json.loads(line) for line in listener.lines()]
    assert [r["offset"] for r in rows] == list(range(50, 200))
    assert [r["value"].encode() for r in rows] == values[50:]
    assert listener.stats().get("unrecoverable") == 50, listener.stderr()


def test_a_listener_survives_garbage_on_the_group(ns, broker, tmp_path):
    topic = "garbage"
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config())
        probe = mold.join(GROUP, PORT)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    wait_heartbeats(probe, {"V000000000": 1})
    listener = Listener(ns, tmp_path, "garbage", f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT, "--count", "2")
    wait_joined(ns, GROUP, 2, [listener])
    time.sleep(0.5)
    rnd = random.Random(5)
    garbage = [
        b"",
        b"\x00",
        b"V000000000" + b"\x00" * 9,  # 19 bytes: a short header
        mold.HEADER.pack(b"V000000000", 1, 5) + b"\x00\x01a",  # 5 messages announced, 1 there
        mold.HEADER.pack(b"V000000000", 1, 1) + b"\x00\x09abc",  # a length past the end
        mold.HEADER.pack(b"V000000000", 1, 1) + b"\x00\x01a" + b"junk",  # bytes after the last message
        mold.HEADER.pack(b"V000000000", 2**64 - 1, 2) + b"\x00\x01a\x00\x01b",  # sequence numbers overflow
        mold.HEADER.pack(b"V000000000", 1, 0) + b"x",  # a heartbeat with a body
    ]
    garbage += [mold.HEADER.pack(b"V000000000", 1, 3) + rnd.randbytes(rnd.randrange(0, 40)) for _ in range(20)]
    garbage = [g for g in garbage if not _decodes(g)]
    for g in garbage:
        sender.sendto(g, (GROUP, PORT))
    time.sleep(0.3)
    with ns.entered():
        produce_all(producer(broker.bootstrap), topic, [b"first", b"second"])
    assert listener.wait(20) == 0, listener.stderr()
    assert listener.lines() == [b"first", b"second"]
    stats = listener.stats()
    assert stats.get("malformed") == len(garbage), f"{len(garbage)} malformed datagrams sent: {listener.stderr()}"
    assert stats.get("gaps", 0) == 0 and stats.get("delivered") == 2, listener.stderr()


def _decodes(data: bytes) -> bool:
    try:
        p = mold.decode(data)
    except mold.DecodeError:
        return False
    return p.sequence + len(p.messages) <= 2**64


# ---------------------------------------------------------------------------------------------
# The framing, against the independent decoder.


def expected_message(value: bytes | None) -> bytes:
    """What a `value` feed carries for a record value: nothing for null, and nothing for a
    payload longer than a datagram holds (65,485 bytes)."""
    return b"" if value is None or len(value) > 65_485 else value


@pytest.mark.timeout(120)
def test_framing_against_an_independent_decoder(ns, broker):
    topic, limit = "mold", 600
    big = b"B" * 3000  # more than the limit: alone in a datagram
    huge = b"H" * 70_000  # more than a datagram holds: an empty message
    values = {
        0: [b"v%d-" % i + b"x" * (i % 50) for i in range(300)],
        1: [b"w%d" % i for i in range(200)],
    }
    values[0][7] = None  # null value: an empty message
    values[0][8] = b""
    values[0] += [big, huge, b"after"]
    with ns.entered():
        create_topic(broker.bootstrap, topic, 2, feed_config(max_datagram_bytes=limit, heartbeat_ms=200))
        sock = mold.join(GROUP, PORT)
        req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req.bind(("127.0.0.1", 0))
    # Sessions and their first heartbeats: empty partitions, next sequence number 1.
    first = wait_heartbeats(sock, {"V000000000": 1, "V000000001": 1})
    assert all(p.size == 20 for p in first if p.heartbeat)
    assert {p.session for p in first} <= {"V000000000", "V000000001"}

    with ns.entered():
        prod = producer(broker.bootstrap, **{"linger.ms": 20, "message.max.bytes": 200_000})
        for p in (0, 1):
            produce_all(prod, topic, values[p], partition=p)
    ends = {mold.session_name(p): len(values[p]) + 1 for p in (0, 1)}
    reached: dict[str, int] = {}

    def all_there(packets):
        p = packets[-1]
        reached[p.session] = max(reached.get(p.session, 1), p.next_sequence)
        return all(reached.get(s) == e for s, e in ends.items())

    packets = mold.receive(sock, 20, all_there)
    assert all(reached.get(s) == e for s, e in ends.items()), f"reached {reached}, expected {ends}"

    for p in (0, 1):
        session = mold.session_name(p)
        mine = [k for k in packets if k.session == session and not k.heartbeat]
        assert all(not k.end_of_session for k in mine)
        # Contiguity: each packet starts where the previous one ended; heartbeats in between
        # carry the next sequence number.
        nxt = 1
        messages: list[bytes] = []
        for k in (k for k in packets if k.session == session):
            if k.heartbeat:
                assert k.sequence == nxt, f"{session}: heartbeat {k.sequence} while {nxt} is next"
                continue
            assert k.sequence == nxt, f"{session}: packet at {k.sequence}, {nxt} expected (a gap or an overlap)"
            assert k.count == len(k.messages) >= 1
            messages += k.messages
            nxt = k.next_sequence
        assert messages == [expected_message(v) for v in values[p]]
        # Packing: up to the limit, except a large message alone.
        for k in mine:
            if k.size > limit:
                assert k.count == 1 and k.size == 20 + 2 + len(k.messages[0]), (k.sequence, k.count, k.size)
        assert max(k.count for k in mine) > 1, "no datagram carries more than one message"
    big_seq = values[0].index(big) + 1
    big_packet = [k for k in packets if k.session == "V000000000" and k.sequence <= big_seq < k.next_sequence][0]
    assert big_packet.sequence == big_seq and big_packet.count == 1 and big_packet.size == 3022
    huge_seq = values[0].index(huge) + 1
    assert [m for k in packets if k.session == "V000000000" and not k.heartbeat for m in k.messages][huge_seq - 1] == b""

    oversize_live = feed_metric(broker.metrics(), "sluice_feed_oversize_total", topic)
    assert oversize_live == 1, f"sluice_feed_oversize_total {oversize_live} after one oversize record went out"

    # Idle: heartbeats only, about every 200 ms, with the next sequence number.
    idle = mold.receive(sock, 1.6)
    for session, end in ends.items():
        beats = [k for k in idle if k.session == session]
        assert all(k.heartbeat and k.sequence == end and k.size == 20 for k in beats), beats
        assert 4 <= len(beats) <= 12, f"{len(beats)} heartbeats of {session} in 1.6 s at heartbeat.ms=200"

    # Retransmission.
    def answer(session: str, seq: int, count: int) -> mold.Packet:
        got = mold.ask(req, RETRANSMIT, mold.request(session, seq, count))
        assert len(got) == 1, f"request {session} {seq} {count}: {len(got)} answers"
        return got[0]

    v0 = [expected_message(v) for v in values[0]]
    a = answer("V000000000", 1, 5)
    assert (a.session, a.sequence, a.count, a.messages) == ("V000000000", 1, 5, v0[:5])
    a = answer("V000000000", 3, 0xFFFF)  # as many as fit in one datagram
    assert a.sequence == 3 and a.count >= 1 and a.size <= limit
    assert a.messages == v0[2:2 + a.count]
    assert a.size + 2 + len(v0[2 + a.count]) > limit, f"the answer stopped at {a.size} bytes with room for the next message"
    a = answer("V000000001", 150, 3)
    assert (a.session, a.sequence, a.messages) == ("V000000001", 150, [b"w149", b"w150", b"w151"])
    a = answer("V000000000", big_seq, 10)  # a large message: alone, whatever the limit
    assert (a.sequence, a.count, a.messages) == (big_seq, 1, [big])
    oversize_after_big = feed_metric(broker.metrics(), "sluice_feed_oversize_total", topic)  # checked at the end
    a = answer("V000000000", huge_seq, 1)
    assert (a.sequence, a.count, a.messages) == (huge_seq, 1, [b""])
    assert v0[huge_seq - 1] == b""
    a = answer("V000000000", ends["V000000000"] + 10, 5)  # beyond the end: the next number
    assert (a.count, a.sequence, a.size) == (0, ends["V000000000"], 20)
    a = answer("V000000000", ends["V000000000"], 5)
    assert (a.count, a.sequence) == (0, ends["V000000000"])
    with ns.entered():
        from confluent_kafka import TopicPartition

        client = admin(broker.bootstrap)
        for f in client.delete_records([TopicPartition(topic, 0, 100)]).values():
            f.result(timeout=15)
    a = answer("V000000000", 1, 5)  # below the log start: a heartbeat with the first retained
    assert (a.count, a.sequence, a.size) == (0, 101, 20)
    a = answer("V000000000", 101, 1)
    assert (a.sequence, a.messages) == (101, [v0[100]])

    m = broker.metrics()
    assert feed_metric(m, "sluice_feed_records_total", topic) == len(values[0]) + len(values[1])
    oversize_at_end = feed_metric(m, "sluice_feed_oversize_total", topic)
    assert feed_metric(m, "sluice_feed_retransmit_requests_total", topic) == 9
    assert feed_metric(m, "sluice_feed_heartbeats_total", topic) >= 8

    # The feed moves to another port: end of session on the old one (next sequence number),
    # heartbeats from the end on the new one.
    with ns.entered():
        moved = mold.join(GROUP, PORT + 10)
    ns.run(str(sluice_binary()), "topic", "alter", topic, "--bootstrap", broker.bootstrap,
           "--config", f"sluice.feed.multicast={GROUP}:{PORT + 10}")
    old = mold.receive(sock, 10, lambda ps: len(ends_of_session(ps)) == 2)
    assert ends_of_session(old) == ends, f"end of session {ends_of_session(old)}, expected {ends}; last packets {old[-4:]}"
    assert all(k.size == 20 for k in old if k.end_of_session)
    wait_heartbeats(moved, ends)
    assert_silent_after_end(sock, ends)
    # Deleting the config stops the feed: end of session, then silence.
    ns.run(str(sluice_binary()), "topic", "alter", topic, "--bootstrap", broker.bootstrap,
           "--delete-config", "sluice.feed.multicast")
    last = mold.receive(moved, 10, lambda ps: len(ends_of_session(ps)) == 2)
    assert ends_of_session(last) == ends
    assert_silent_after_end(moved, ends)

    # sluice_feed_oversize_total counts each time an oversize record goes out as an empty
    # message: live once, retransmitted once; not when an answer read it without sending it.
    assert oversize_after_big == 1, (
        f"sluice_feed_oversize_total went from 1 to {oversize_after_big} on an answer that did not send the oversize record")
    assert oversize_at_end == 2, oversize_at_end


def ends_of_session(packets: list[mold.Packet]) -> dict[str, int]:
    return {k.session: k.sequence for k in packets if k.end_of_session}


def assert_silent_after_end(sock: socket.socket, ends: dict[str, int]) -> None:
    """After its end of session a feed sends nothing more on that port (an end-of-session
    packet repeated is allowed)."""
    after = mold.receive(sock, 0.8)
    assert all(k.end_of_session and k.sequence == ends[k.session] for k in after), (
        f"packets after the end of session: {after[:5]}")


def test_record_payload_envelope(ns, broker, tmp_path):
    topic = "envelope"
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config(payload="record"))
        sock = mold.join(GROUP, PORT)
        req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req.bind(("127.0.0.1", 0))
    wait_heartbeats(sock, {"R000000000": 1})
    records = [
        dict(key=b"k1", value=b"v1", headers=[("h1", b"x"), ("h2", None), ("gr\u00fc\u00dfe", b"")], timestamp=1700000000123),
        dict(key=None, value=None, timestamp=1700000000456),
        dict(key=b"", value=b"\xff\xfe binary", headers=[("n", b"\x00\x01"), ("bin", b"\xff")], timestamp=1700000000789),
    ]
    with ns.entered():
        prod = producer(broker.bootstrap)
        for r in records:
            prod.produce(topic, partition=0, **r)
        assert prod.flush(15) == 0
        stored = consume(broker.bootstrap, topic, count=len(records))
    packets = mold.receive(sock, 10, lambda ps: sum(len(k.messages) for k in ps if not k.heartbeat) >= 3)
    data = [k for k in packets if not k.heartbeat]
    assert {k.session for k in data} == {"R000000000"}
    envelopes = [mold.decode_envelope(m) for k in data for m in k.messages]
    assert len(envelopes) == 3

    def expected(rec) -> mold.Envelope:
        headers = [(name, value) for name, value in (rec.headers or [])]
        return mold.Envelope(rec.timestamp, rec.key, rec.value, headers)

    assert envelopes == [expected(r) for r in stored]
    assert [e.timestamp for e in envelopes] == [r["timestamp"] for r in records]
    assert envelopes[0].headers == [("h1", b"x"), ("h2", None), ("gr\u00fc\u00dfe", b"")]
    assert (envelopes[1].key, envelopes[1].value, envelopes[1].headers) == (None, None, [])

    # A retransmission carries the same envelopes; a `value` session is not this feed's.
    got = mold.ask(req, RETRANSMIT, mold.request("R000000000", 1, 10))
    assert len(got) == 1 and got[0].session == "R000000000" and got[0].sequence == 1
    assert [mold.decode_envelope(m) for m in got[0].messages] == envelopes
    assert mold.ask(req, RETRANSMIT, mold.request("V000000000", 1, 10), timeout=0.8) == []

    # `sluice feed listen --json` shows the whole record.
    listener = Listener(ns, tmp_path, "json", f"{GROUP}:{PORT}", "--retransmit", "%s:%d" % RETRANSMIT,
                        "--from", "1", "--count", "3", "--json")
    assert listener.wait(20) == 0, listener.stderr()
    rows = [json.loads(line) for line in listener.lines()]
    print(rows)
    assert [(r["session"], r["partition"], r["sequence"], r["offset"]) for r in rows] == [
        ("R000000000", 0, i + 1, i) for i in range(3)]
    assert [r["timestamp"] for r in rows] == [r["timestamp"] for r in records]

    def text(row, field):
        value = row.get(field)
        if value is None:
            return None
        if row.get(f"{field}_encoding") == "base64":
            return base64.b64decode(value)
        return value.encode()

    assert [text(r, "value") for r in rows] == [b"v1", None, b"\xff\xfe binary"]
    assert rows[2].get("value_encoding") == "base64"
    assert [text(r, "key") for r in rows] == [b"k1", None, b""]
    assert [r["headers"] for r in rows] == [
        [{"key": "h1", "value": "x"}, {"key": "h2", "value": None}, {"key": "gr\u00fc\u00dfe", "value": ""}],
        [],
        [{"key": "n", "value": "\x00\x01"}, {"key": "bin", "value": "/w==", "value_encoding": "base64"}],
    ]


def test_mtu_sized_datagrams_compressed_batches_and_ends_of_session(ns, broker):
    """Without sluice.feed.max.datagram.bytes a feed packs up to the interface's MTU − 28
    (lo at 1,500 here: 1,472); zstd batches are unpacked; deleting the topic and stopping the
    broker each end the session with the next sequence number."""
    ns.run("ip", "link", "set", "lo", "mtu", "1500")
    ports = {"mtu": PORT, "gone": PORT + 1, "stop": PORT + 2}
    socks = {}
    with ns.entered():
        for i, (topic, port) in enumerate(ports.items()):
            config = feed_config(port=port)
            config["sluice.feed.retransmit"] = f"127.0.0.1:{RETRANSMIT[1] + i}"
            if topic == "stop":
                config["sluice.feed.ttl"] = "7"
            create_topic(broker.bootstrap, topic, 1, config)
            socks[topic] = mold.join(GROUP, port)
    for topic in ports:
        wait_heartbeats(socks[topic], {"V000000000": 1})
    # The multicast TTL (lo does not decrement it): 1 by default, sluice.feed.ttl otherwise.
    assert received_ttl(socks["gone"]) == 1
    assert received_ttl(socks["stop"]) == 7
    values = [b"m%05d-%s" % (i, b"y" * 34) for i in range(3000)]
    with ns.entered():
        produce_all(producer(broker.bootstrap, **{"compression.type": "zstd", "linger.ms": 50}), "mtu", values)
        prod = producer(broker.bootstrap)
        produce_all(prod, "gone", [b"g1", b"g2", b"g3", b"g4", b"g5"])
        produce_all(prod, "stop", [b"s1", b"s2", b"s3"])
    packets = [k for k in mold.receive(socks["mtu"], 20, lambda ps: ps[-1].next_sequence == len(values) + 1)
               if not k.heartbeat]
    assert [m for k in packets for m in k.messages] == values
    sizes = [k.size for k in packets]
    print(f"{len(packets)} datagrams, sizes {min(sizes)}..{max(sizes)}")
    assert max(sizes) <= 1472 and max(sizes) >= 1472 - (2 + len(values[0])), sizes
    assert "to 239.7.0.1:%d, datagrams up to 1472 bytes" % PORT in broker.log_path.read_text()

    with ns.entered():
        client = admin(broker.bootstrap)
        client.delete_topics(["gone"])["gone"].result(timeout=15)
    got = mold.receive(socks["gone"], 10, lambda ps: ps[-1].end_of_session)
    assert ends_of_session(got) == {"V000000000": 6}, got[-3:]
    assert_silent_after_end(socks["gone"], {"V000000000": 6})

    mold.drain(socks["stop"])
    mold.drain(socks["mtu"])
    assert broker.stop() == 0, broker.log_tail()
    got = mold.receive(socks["stop"], 1, lambda ps: ps[-1].end_of_session)
    assert ends_of_session(got) == {"V000000000": 4}, got[-3:]
    got = mold.receive(socks["mtu"], 1, lambda ps: ps[-1].end_of_session)
    assert ends_of_session(got) == {"V000000000": len(values) + 1}, got[-3:]


def received_ttl(sock: socket.socket) -> int:
    IP_RECVTTL = 12  # <linux/in.h>
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    try:
        mold.drain(sock)
        sock.settimeout(5)
        _, ancillary, _, _ = sock.recvmsg(65536, 64)
    finally:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 0)
        sock.settimeout(None)
    ttls = [int.from_bytes(data[:4], "little") for level, kind, data in ancillary
            if level == socket.IPPROTO_IP and kind == socket.IP_TTL]
    assert len(ttls) == 1, ancillary
    return ttls[0]


def test_invalid_feed_configs_are_refused(ns, broker):
    bad = {
        "sluice.feed.multicast": ["10.0.0.1:5000", "239.1.1.1", "239.1.1.1:0", "239.1.1.1:70000", "240.0.0.1:5000",
                                  "[ff02::1]:5000", "group:5000"],
        "sluice.feed.retransmit": ["nowhere", "127.0.0.1:99999"],
        "sluice.feed.ttl": ["256", "-1", "one"],
        "sluice.feed.payload": ["both", ""],
        "sluice.feed.max.datagram.bytes": ["65508", "-1"],
        "sluice.feed.heartbeat.ms": ["0", "x"],
        "sluice.feed.retransmit.rate": ["0", "-5"],
    }
    from confluent_kafka.admin import NewTopic

    accepted = []
    with ns.entered():
        client = admin(broker.bootstrap)
        for key, values in bad.items():
            for value in values:
                name = "bad-%s-%d" % (key.rsplit(".", 1)[-1], values.index(value))
                config = {key: value}
                if key != "sluice.feed.multicast":
                    config["sluice.feed.multicast"] = f"{GROUP}:{PORT}"
                try:
                    client.create_topics([NewTopic(name, 1, config=config)])[name].result(timeout=15)
                    accepted.append((key, value))
                except Exception as e:
                    assert "INVALID_CONFIG" in str(e) or "nvalid" in str(e), (key, value, str(e))
    assert accepted == [], f"accepted: {accepted}"
    assert broker.alive()


# ---------------------------------------------------------------------------------------------
# Hostile requests.


@pytest.mark.timeout(90)
def test_hostile_requests_are_dropped_and_counted_and_rate_limited(ns, broker):
    topic, rate = "hostile", 20
    with ns.entered():
        create_topic(broker.bootstrap, topic, 1, feed_config(retransmit_rate=rate))
        sock = mold.join(GROUP, PORT)
    wait_heartbeats(sock, {"V000000000": 1})
    with ns.entered():
        produce_all(producer(broker.bootstrap), topic, [b"h%03d" % i for i in range(50)])
        attacker, good, other = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3))
        for s in (attacker, good, other):
            s.bind(("127.0.0.1", 0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    valid = mold.request("V000000000", 1, 1)
    answered = mold.ask(good, RETRANSMIT, valid)
    assert [(k.sequence, k.messages) for k in answered] == [(1, [b"h000"])]

    rnd = random.Random(18)
    bad = [
        b"",
        b"\x00",
        valid[:19],
        valid + b"\x00",
        valid * 2,
        mold.request("V000000000", 1, 0),  # count 0
        mold.request("X000000000", 1, 1),  # no such session
        mold.request("R000000000", 1, 1),  # a record-payload session: not this feed's
        mold.request(b"V00000000 ", 1, 1),
        mold.request(b"v000000000", 1, 1),
        b"\xff" * 1500,
        b"\x00" * 65507,
    ]
    bad += [rnd.randbytes(20) for _ in range(30)]
    bad += [rnd.randbytes(rnd.randrange(1, 2000)) for _ in range(30)]
    bad = [b for b in bad if len(b) != 20 or not b.startswith(b"V000000000")]
    for data in bad:
        attacker.sendto(data, RETRANSMIT)
        time.sleep(0.002)
    assert mold.receive(attacker, 1.0) == [], "a malformed request was answered"
    assert broker.alive()
    # Still serving; the attacker too, once its bucket allows (whether malformed requests
    # take tokens is not specified).
    assert [k.messages for k in mold.ask(good, RETRANSMIT, mold.request("V000000000", 2, 1))] == [[b"h001"]]
    time.sleep(1.1)
    assert [k.messages for k in mold.ask(attacker, RETRANSMIT, mold.request("V000000000", 3, 1))] == [[b"h002"]]
    # Odd but well-formed: sequence 0 (below the first, 1) and the largest sequence numbers.
    a = mold.ask(good, RETRANSMIT, mold.request("V000000000", 0, 1))
    assert [(k.count, k.sequence) for k in a] == [(0, 1)]
    a = mold.ask(good, RETRANSMIT, mold.request("V000000000", 2**64 - 2, 1))  # the last whole range
    assert [(k.count, k.sequence) for k in a] == [(0, 51)]
    a = mold.ask(good, RETRANSMIT, mold.request("V000000000", 2**63 + 5, 10))  # past Int64
    assert [(k.count, k.sequence) for k in a] == [(0, 51)]
    time.sleep(0.5)
    m = broker.metrics()
    malformed = feed_metric(m, "sluice_feed_retransmit_malformed_total", topic)
    print(f"{len(bad)} malformed requests sent, {malformed} counted")
    assert malformed == len(bad)

    # Rate limit: a burst of 100 from one requester; `rate` a second, a burst of one
    # second's worth.
    time.sleep(1.1)  # every bucket full again
    burst = 100
    before_limited = feed_metric(broker.metrics(), "sluice_feed_retransmit_limited_total", topic)
    for i in range(burst):
        attacker.sendto(mold.request("V000000000", 1 + i % 50, 1), RETRANSMIT)
    during = mold.ask(other, RETRANSMIT, mold.request("V000000000", 5, 1))  # another requester
    answers = mold.receive(attacker, 1.0)
    print(f"burst of {burst} requests: {len(answers)} answered")
    assert rate <= len(answers) <= rate + 10, f"{len(answers)} answers to a burst of {burst} at {rate}/s"
    assert [k.messages for k in during] == [[b"h004"]], "another requester was limited too"
    limited = feed_metric(broker.metrics(), "sluice_feed_retransmit_limited_total", topic) - before_limited
    assert limited == burst - len(answers), f"limited {limited}, answered {len(answers)} of {burst}"
    time.sleep(1.1)
    assert len(mold.ask(attacker, RETRANSMIT, valid)) == 1, "the bucket did not refill"
    assert broker.alive()

    # A session of a partition the topic does not have: not this feed's either.
    malformed = feed_metric(broker.metrics(), "sluice_feed_retransmit_malformed_total", topic)
    assert mold.ask(good, RETRANSMIT, mold.request("V000000007", 1, 1), timeout=0.5) == []
    time.sleep(0.2)
    counted = feed_metric(broker.metrics(), "sluice_feed_retransmit_malformed_total", topic) - malformed
    assert counted == 1, "a request for partition 7 of a 1-partition topic was not counted as malformed"

"""`sluice direct pub|sub|push|pull` (SluiceDirect, ZMTP 3.1) against real libzmq (pyzmq).

- Swift PUB → pyzmq SUB with prefix filtering; the publisher waits for its subscribers, so
  nothing is lost to the slow-joiner race.
- pyzmq PUB → Swift SUB with several --subscribe prefixes and multipart messages (the last
  frame is printed); --count; Swift PUB and SUB through a libzmq XSUB/XPUB proxy (whose
  XSUB subscribes with 0x01-prefixed messages).
- PUSH/PULL both ways, in order; PUSH waits for a peer; Swift PUSH round-robins over two
  pyzmq PULLs; Swift PULL fair-queues two binds; a Swift PULL that cannot write its stdout
  pushes back on a libzmq PUSH and loses nothing.
- Reconnection of a --connect socket after its libzmq peer restarts on the same port (SUB
  re-subscribes; PULL; PUSH).
- A slow subscriber does not hold up a fast one; PING/PONG with libzmq both ways.
- CLI behaviour: sub/pull end when their stdout closes; --wait-timeout-ms; error messages.
- Swift → Swift (10,000 lines); 1 MiB messages both ways.
- Hostile raw-socket peers (garbage greetings, 2^40-byte frame headers, silence under
  heartbeats, a subscription flood, mismatched socket types) are closed or bounded while
  the process keeps serving real peers; incompatible libzmq socket types deliver nothing.

The greetings and commands of the raw-socket tests are written here from ZeroMQ RFC 37
(ZMTP 3.1), not taken from the code under test.
"""
from __future__ import annotations

import os
import random
import re
import select
import shutil
import socket
import string
import struct
import subprocess
import threading
import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from conftest import free_port, sluice_binary
from helpers import closed_within, send_quietly

# Deadlines are generous (a loaded 2-core machine, a debug binary); a passing test takes
# well under a second or two.
DEADLINE = 10.0


# ---------------------------------------------------------------------------
# A `sluice direct` process: stdin fed by the test, stdout lines and stderr collected by
# threads.


class Direct:
    def __init__(self, *args: str, hold_stdout: bool = False):
        cmd = [str(sluice_binary()), "direct", *args]
        self.cmd = cmd
        # setpriv --pdeathsig: the process dies with this pytest run (it execs: the pid is
        # sluice's own, for /proc).
        if shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "SWIFT_BACKTRACE": "enable=no"},
        )
        self.pid = self.proc.pid
        self.lines: list[bytes] = []
        self.stderr: list[bytes] = []
        self.cond = threading.Condition()
        self.stdout_done = False
        # hold_stdout: nothing reads the process's stdout until release_stdout() (so its
        # writes block, as behind a slow consumer).
        self.stdout_released = threading.Event()
        if not hold_stdout:
            self.stdout_released.set()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        self.stdout_released.wait()
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line[:-1] if line.endswith(b"\n") else line)
                self.cond.notify_all()
        with self.cond:
            self.stdout_done = True
            self.cond.notify_all()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self.cond:
                self.stderr.append(line)
                self.cond.notify_all()

    def describe(self) -> str:
        with self.cond:
            err = b"".join(self.stderr[-20:]).decode(errors="replace")
            n = len(self.lines)
        return f"`{' '.join(self.cmd[1:])}` (exit {self.proc.poll()}, {n} lines out) stderr:\n{err}"

    def wait_until(self, predicate, timeout: float = DEADLINE) -> bool:
        """Waits until predicate(lines) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
            return True

    def wait_lines(self, count: int, timeout: float = DEADLINE) -> list[bytes]:
        ok = self.wait_until(lambda lines: len(lines) >= count, timeout)
        assert ok, f"{len(self.lines)} of {count} lines within {timeout}s: {self.describe()}"
        with self.cond:
            return list(self.lines)

    def snapshot(self) -> list[bytes]:
        with self.cond:
            return list(self.lines)

    def ports(self, count: int = 1, timeout: float = DEADLINE) -> list[int]:
        """The ports of the first `count` `--bind`s, from `sluice direct: TYPE bound to
        tcp://HOST:PORT` on stderr."""
        pattern = re.compile(rb"bound to tcp://.*:(\d+)\s*$")
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [int(m.group(1)) for line in self.stderr if (m := pattern.search(line))]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, f"no bound port: {self.describe()}"
                self.cond.wait(min(left, 0.1))

    def port(self, timeout: float = DEADLINE) -> int:
        return self.ports(1, timeout)[0]

    def feed(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout}s: {self.describe()}")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def direct():
    """direct(*args) -> a started `sluice direct ARGS` (a Direct); killed at the end."""
    started: list[Direct] = []

    def start(*args: str, hold_stdout: bool = False) -> Direct:
        d = Direct(*args, hold_stdout=hold_stdout)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stdout_released.set()
        d.kill()


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def local(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


ANY = "tcp://127.0.0.1:*"


def recv_n(sock: zmq.Socket, count: int, timeout: float = DEADLINE) -> list[list[bytes]]:
    """`count` multipart messages from a pyzmq socket, within `timeout`."""
    out: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"received {len(out)} of {count} messages within {timeout}s"
        if sock.poll(int(min(left, 0.2) * 1000)):
            out.append(sock.recv_multipart())
    return out


def quiet_for(sock: zmq.Socket, seconds: float) -> list[list[bytes]]:
    """Whatever arrives on a pyzmq socket within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            out.append(sock.recv_multipart())
    return out


def send_until_seen(proc: Direct, send, seen, timeout: float = DEADLINE, interval: float = 0.05) -> None:
    """Calls send() every `interval` until seen(lines) holds (a PUB has no way to know when
    a subscription reached it, a restarted peer when the other side reconnected)."""
    deadline = time.monotonic() + timeout
    while True:
        send()
        if proc.wait_until(seen, interval):
            return
        assert time.monotonic() < deadline, f"never delivered within {timeout}s: {proc.describe()}"


def wait_handshakes(monitors: list[zmq.Socket], timeout: float = DEADLINE) -> None:
    """Waits for a ZMQ_EVENT_HANDSHAKE_SUCCEEDED on each monitor socket."""
    deadline = time.monotonic() + timeout
    for monitor in monitors:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no ZMTP handshake with sluice within the deadline"
            if monitor.poll(int(left * 1000) + 1):
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    break


def lines_of(*items: str | bytes) -> bytes:
    return b"".join((i.encode() if isinstance(i, str) else i) + b"\n" for i in items)


# ---------------------------------------------------------------------------
# Swift PUB → pyzmq SUB


@pytest.mark.timeout(30)
def test_swift_pub_prefix_filtering_and_waiting_for_subscribers(direct, ctx):
    # Three publishers, one topic each. `news` subscribes to "news." only; `everything`
    # subscribes to all, so it proves each publisher really sent its lines.
    topics = {"news.eu": 50, "sports": 40, "new": 30}  # "new" is shorter than the prefix "news."
    pubs = {t: direct("pub", "--bind", ANY, "--topic", t, "--wait-subscribers", "2") for t in topics}
    # The whole input is written (and stdin closed) before anyone subscribes: the publisher
    # must hold it until both subscribers are connected and subscribed.
    for t, n in topics.items():
        pubs[t].feed(lines_of(*(f"{t}-{i}" for i in range(n))))
        pubs[t].close_stdin()
    time.sleep(0.2)
    for t, p in pubs.items():
        assert p.proc.poll() is None, f"pub {t} did not wait for subscribers: {p.describe()}"

    news = ctx.socket(zmq.SUB)
    news.setsockopt(zmq.SUBSCRIBE, b"news.")
    everything = ctx.socket(zmq.SUB)
    everything.setsockopt(zmq.SUBSCRIBE, b"")
    for p in pubs.values():
        news.connect(local(p.port()))
        everything.connect(local(p.port()))

    total = sum(topics.values())
    got_all = recv_n(everything, total)
    for t, p in pubs.items():
        assert p.wait_exit() == 0, p.describe()
    for t, n in topics.items():
        assert [m for m in got_all if m[0] == t.encode()] == [[t.encode(), f"{t}-{i}".encode()] for i in range(n)]

    got_news = recv_n(news, topics["news.eu"])
    assert got_news == [[b"news.eu", f"news.eu-{i}".encode()] for i in range(topics["news.eu"])]
    # The publishers are gone (they flushed and closed): nothing else is on its way.
    assert quiet_for(news, 0.5) == []


@pytest.mark.timeout(30)
def test_swift_pub_without_topic_single_frame(direct, ctx):
    pub = direct("pub", "--bind", ANY)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"keep")
    sub.connect(local(pub.port()))
    pub.feed(lines_of("keep-1", "drop-1", "keep-2", "", "kee", "keep-3"))
    pub.close_stdin()
    assert pub.wait_exit() == 0, pub.describe()
    assert recv_n(sub, 3) == [[b"keep-1"], [b"keep-2"], [b"keep-3"]]
    assert quiet_for(sub, 0.3) == []


@pytest.mark.timeout(40)
def test_swift_pub_slow_subscriber_does_not_block_the_fast_one(direct, ctx):
    pub = direct("pub", "--bind", ANY, "--wait-subscribers", "2", "--hwm", "100")
    endpoint = local(pub.port())
    slow = ctx.socket(zmq.SUB)  # subscribes, then never reads
    slow.setsockopt(zmq.RCVHWM, 10)
    slow.setsockopt(zmq.RCVBUF, 64 << 10)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.connect(endpoint)
    fast = ctx.socket(zmq.SUB)
    fast.setsockopt(zmq.SUBSCRIBE, b"")
    fast.connect(endpoint)
    stop = threading.Event()

    def feeder():
        # 12 MB in all: far more than the slow subscriber's buffers hold.
        try:
            for k in range(12):
                chunk = b"".join(b"bulk-%06d-%s\n" % (k * 1000 + i, b"y" * 1000) for i in range(1000))
                if stop.is_set():
                    return
                pub.feed(chunk)
            i = 0
            while not stop.is_set():  # then markers until the fast one sees one
                pub.feed(b"marker-%d\n" % i)
                i += 1
                time.sleep(0.02)
        except (BrokenPipeError, ValueError):
            pass

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        seen = 0
        while True:
            assert time.monotonic() < deadline, f"fast subscriber got {seen} messages and no marker: {pub.describe()}"
            if fast.poll(200):
                m = fast.recv()
                seen += 1
                if m.startswith(b"marker-"):
                    break
        assert pub.proc.poll() is None, pub.describe()
    finally:
        stop.set()
        thread.join(DEADLINE)
    # The slow one missed messages (dropped at its high-water mark) instead of holding
    # everyone up.
    got_slow = quiet_for(slow, 1.0)
    assert 0 < len(got_slow) < 12_000, len(got_slow)


# ---------------------------------------------------------------------------
# pyzmq PUB → Swift SUB


@pytest.mark.timeout(30)
def test_pyzmq_pub_to_swift_sub_prefixes_and_multipart(direct, ctx):
    sub = direct("sub", "--bind", ANY, "--subscribe", "a.", "--subscribe", "b.")
    pub = ctx.socket(zmq.PUB)
    pub.connect(local(sub.port()))
    send_until_seen(sub, lambda: pub.send_multipart([b"a.sync", b"sync"]), lambda lines: b"sync" in lines)

    messages = [
        [b"a.x", b"one"],
        [b"c.x", b"not-subscribed"],
        [b"b.y", b"first", b"middle", b"two"],  # multipart: the last frame is printed
        [b"a", b"shorter-than-prefix"],
        [b"a.single-frame"],  # one frame: it is both topic and payload
        [b"A.x", b"case-differs"],
        [b"b.", b"three"],
        [b"ca.", b"prefix-not-at-start"],
        [b"b.z", b"", b"four"],
        [b"a.end", b"end"],
    ]
    for m in messages:
        pub.send_multipart(m)
    assert sub.wait_until(lambda lines: b"end" in lines), sub.describe()
    got = [l for l in sub.snapshot() if l != b"sync"]
    assert got == [b"one", b"two", b"a.single-frame", b"three", b"four", b"end"]
    assert sub.proc.poll() is None


@pytest.mark.timeout(30)
def test_swift_sub_count_exits(direct, ctx):
    port = free_port()
    sub = direct("sub", "--connect", local(port), "--subscribe", "t", "--count", "105")
    pub = ctx.socket(zmq.PUB)
    pub.bind(local(port))
    send_until_seen(sub, lambda: pub.send_multipart([b"t", b"sync"]), lambda lines: len(lines) >= 1)
    for i in range(200):  # more than needed: sluice stops after 105 lines (syncs included)
        pub.send_multipart([b"t", b"m%d" % i])
    assert sub.wait_exit() == 0, sub.describe()
    lines = sub.wait_lines(105)
    syncs = lines.count(b"sync")
    assert len(lines) == 105 and lines[:syncs] == [b"sync"] * syncs
    assert lines[syncs:] == [b"m%d" % i for i in range(105 - syncs)]


@pytest.mark.timeout(30)
def test_swift_pub_and_sub_through_a_libzmq_xsub_xpub_proxy(direct):
    # libzmq's XSUB forwards subscriptions upstream as messages (0x01 + prefix), the form
    # ZMTP 3.0 uses: the Swift publishers must take those as subscriptions too.
    stop, ready, ports = threading.Event(), threading.Event(), []

    def proxy():
        c = zmq.Context()
        xsub, xpub = c.socket(zmq.XSUB), c.socket(zmq.XPUB)
        ports.extend([xsub.bind_to_random_port("tcp://127.0.0.1"), xpub.bind_to_random_port("tcp://127.0.0.1")])
        ready.set()
        poller = zmq.Poller()
        poller.register(xsub, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        while not stop.is_set():
            for sock, _ in poller.poll(50):
                (xpub if sock is xsub else xsub).send_multipart(sock.recv_multipart())
        c.destroy(linger=0)

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    try:
        assert ready.wait(DEADLINE)
        xsub_port, xpub_port = ports
        # No --count: the subscription must outlive both publishers' arrival (a SUB that
        # left would take its subscription, via the proxy, away from a late publisher).
        sub = direct("sub", "--connect", local(xpub_port), "--subscribe", "a.")
        pub_a = direct("pub", "--connect", local(xsub_port), "--topic", "a.x")
        pub_b = direct("pub", "--connect", local(xsub_port), "--topic", "b.x")
        pub_b.feed(lines_of(*(f"b{i}" for i in range(50))))
        pub_b.close_stdin()
        pub_a.feed(lines_of(*(f"a{i}" for i in range(50))))
        pub_a.close_stdin()
        assert pub_a.wait_exit() == 0, pub_a.describe()  # so it did see a subscription
        assert pub_b.wait_exit() == 0, pub_b.describe()
        assert sub.wait_lines(50) == [b"a%d" % i for i in range(50)]
        time.sleep(0.2)
        assert sub.snapshot() == [b"a%d" % i for i in range(50)]
    finally:
        stop.set()
        thread.join(DEADLINE)


# ---------------------------------------------------------------------------
# PUSH / PULL


@pytest.mark.timeout(30)
def test_swift_push_to_pyzmq_pull_in_order(direct, ctx):
    push = direct("push", "--bind", ANY)
    pull = ctx.socket(zmq.PULL)
    pull.connect(local(push.port()))
    n = 3000
    feeder = threading.Thread(target=lambda: (push.feed(lines_of(*(f"p{i}" for i in range(n)))), push.close_stdin()))
    feeder.start()
    got = recv_n(pull, n)
    feeder.join(DEADLINE)
    assert got == [[f"p{i}".encode()] for i in range(n)]
    assert push.wait_exit() == 0, push.describe()
    assert quiet_for(pull, 0.2) == []


@pytest.mark.timeout(30)
def test_swift_push_waits_for_a_peer(direct, ctx):
    # PUSH with no peer blocks (backpressure) instead of dropping: lines written before any
    # PULL exists all arrive once one connects.
    push = direct("push", "--connect", local(port := free_port()))
    # Empty lines are empty messages; a "\r" before "\n" stays; the last line needs no "\n".
    odd = [b"", b"cr\r", "ünïcødé ✓".encode(), b"\x00nul"]
    push.feed(lines_of(*(f"w{i}" for i in range(100)), *odd) + b"no-newline")
    push.close_stdin()
    time.sleep(0.3)
    assert push.proc.poll() is None, f"push exited without a peer: {push.describe()}"
    pull = ctx.socket(zmq.PULL)
    pull.bind(local(port))
    assert recv_n(pull, 105) == [[f"w{i}".encode()] for i in range(100)] + [[o] for o in odd] + [[b"no-newline"]]
    assert push.wait_exit() == 0, push.describe()
    assert quiet_for(pull, 0.2) == []


@pytest.mark.timeout(30)
def test_pyzmq_push_to_swift_pull_in_order(direct, ctx):
    n = 3000
    pull = direct("pull", "--bind", ANY, "--count", str(n))
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
    push.connect(local(pull.port()))
    for i in range(n):
        if i % 3 == 0:
            push.send_multipart([b"head", b"x", f"q{i}".encode()])  # the last frame is printed
        else:
            push.send(f"q{i}".encode())
    assert pull.wait_exit() == 0, pull.describe()
    assert pull.wait_lines(n) == [f"q{i}".encode() for i in range(n)]


@pytest.mark.timeout(30)
def test_swift_push_round_robin_over_two_pyzmq_pulls(direct, ctx):
    push = direct("push", "--bind", ANY)
    endpoint = local(push.port())
    pulls, monitors = [], []
    for _ in range(2):
        s = ctx.socket(zmq.PULL)
        monitors.append(s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED))
        s.connect(endpoint)
        pulls.append(s)
    wait_handshakes(monitors)
    time.sleep(0.1)  # libzmq's READY reaches sluice just after libzmq saw sluice's

    n = 2000
    push.feed(lines_of(*(f"r{i}" for i in range(n))))
    push.close_stdin()
    got: list[list[int]] = [[], []]
    poller = zmq.Poller()
    for s in pulls:
        poller.register(s, zmq.POLLIN)
    deadline = time.monotonic() + DEADLINE
    while sum(map(len, got)) < n:
        assert time.monotonic() < deadline, f"got {list(map(len, got))} of {n}: {push.describe()}"
        for s, _ in poller.poll(200):
            got[pulls.index(s)].append(int(s.recv()[1:]))
    assert push.wait_exit() == 0, push.describe()
    assert sorted(got[0] + got[1]) == list(range(n))
    for part in got:
        assert part == sorted(part), "each peer receives its share in order"
        assert 0.4 * n <= len(part) <= 0.6 * n, f"unfair split: {list(map(len, got))}"


@pytest.mark.timeout(30)
def test_swift_pull_two_binds_fair_queues_two_pyzmq_pushes(direct, ctx):
    n = 500
    pull = direct("pull", "--bind", ANY, "--bind", ANY, "--count", str(2 * n))
    ports = pull.ports(2)
    assert ports[0] != ports[1]
    pushes = []
    for port in ports:
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
        s.connect(local(port))
        pushes.append(s)
    for i in range(n):
        for k, s in enumerate(pushes):
            s.send(b"%d-%d" % (k, i))
    assert pull.wait_exit() == 0, pull.describe()
    lines = pull.wait_lines(2 * n)
    for k in range(2):
        assert [l for l in lines if l.startswith(b"%d-" % k)] == [b"%d-%d" % (k, i) for i in range(n)]


@pytest.mark.timeout(40)
def test_swift_pull_backpressure_blocks_pyzmq_push_and_loses_nothing(direct, ctx):
    # Nothing reads sluice's stdout: its writes block, its receive queue (--hwm 100) fills,
    # it stops reading the connection, and TCP pushes back until the libzmq PUSH cannot send.
    pull = direct("pull", "--bind", ANY, "--hwm", "100", hold_stdout=True)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100)
    push.connect(local(pull.port()))
    rss_start = pull.rss_kb()
    payload = b"x" * 1000
    sent = 0
    blocked_since = None
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, f"the PUSH never blocked ({sent} messages sent)"
        try:
            push.send(b"%08d" % sent + payload, zmq.NOBLOCK)
            sent += 1
            blocked_since = None
        except zmq.Again:
            now = time.monotonic()
            blocked_since = blocked_since or now
            if now - blocked_since > 1.0:
                break
            time.sleep(0.01)
    assert sent < 200_000, f"{sent} KB accepted: no backpressure"
    rss_blocked = pull.rss_kb()
    # Kernel buffers hold most of what was sent; sluice itself holds ~100 messages.
    assert rss_blocked - rss_start < 64 << 10, f"RSS grew from {rss_start} KB to {rss_blocked} KB"
    pull.stdout_released.set()
    lines = pull.wait_lines(sent, timeout=20)
    assert len(lines) == sent
    assert all(l == b"%08d" % i + payload for i, l in enumerate(lines)), "lost, reordered or corrupted"


# ---------------------------------------------------------------------------
# Reconnecting after the libzmq peer restarts on the same port


def bind_again(ctx: zmq.Context, kind: int, port: int) -> zmq.Socket:
    deadline = time.monotonic() + DEADLINE
    while True:
        s = ctx.socket(kind)
        try:
            s.bind(local(port))
            return s
        except zmq.ZMQError:
            s.close(linger=0)
            assert time.monotonic() < deadline, f"cannot bind port {port} again"
            time.sleep(0.05)


@pytest.mark.timeout(30)
def test_swift_sub_resubscribes_after_pub_restart(direct, ctx):
    port = free_port()
    pub = ctx.socket(zmq.PUB)
    pub.bind(local(port))
    sub = direct("sub", "--connect", local(port), "--subscribe", "t.")
    send_until_seen(sub, lambda: pub.send_multipart([b"t.x", b"before"]), lambda lines: b"before" in lines)
    pub.close(linger=0)

    pub = bind_again(ctx, zmq.PUB, port)
    counter = iter(range(1_000_000))
    # Only a re-sent subscription makes the new libzmq PUB send anything.
    send_until_seen(
        sub,
        lambda: pub.send_multipart([b"t.x", b"after-%d" % next(counter)]),
        lambda lines: any(l.startswith(b"after-") for l in lines),
    )
    start = len(sub.snapshot())
    for i in range(200):
        pub.send_multipart([b"u.x", b"filtered-%d" % i])
        pub.send_multipart([b"t.y", b"steady-%d" % i])
    lines = sub.wait_lines(start + 200)
    tail = [l for l in lines[start:] if not l.startswith(b"after-")]
    assert tail == [b"steady-%d" % i for i in range(200)]


@pytest.mark.timeout(30)
def test_swift_pull_reconnects_after_push_restart(direct, ctx):
    port = free_port()
    push = ctx.socket(zmq.PUSH)
    push.bind(local(port))
    pull = direct("pull", "--connect", local(port))
    push.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
    push.send(b"before")  # waits for sluice to connect
    pull.wait_lines(1)
    push.close(linger=0)

    push = bind_again(ctx, zmq.PUSH, port)
    counter = iter(range(1_000_000))

    def send():
        try:
            push.send(b"after-%d" % next(counter), zmq.NOBLOCK)  # EAGAIN until sluice is back
        except zmq.Again:
            pass

    send_until_seen(pull, send, lambda lines: any(l.startswith(b"after-") for l in lines))
    start = len(pull.snapshot())
    push.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
    for i in range(500):
        push.send(b"steady-%d" % i)
    lines = pull.wait_lines(start + 500)
    assert [l for l in lines[start:] if not l.startswith(b"after-")] == [b"steady-%d" % i for i in range(500)]


@pytest.mark.timeout(30)
def test_swift_push_reconnects_after_pull_restart(direct, ctx):
    port = free_port()
    pull = ctx.socket(zmq.PULL)
    pull.bind(local(port))
    push = direct("push", "--connect", local(port))
    stop = threading.Event()
    fed = [0]

    def feeder():
        i = 0
        try:
            while not stop.is_set():
                push.feed(b"m%d\n" % i)
                i += 1
                fed[0] = i
                time.sleep(0.005)
        finally:
            push.close_stdin()

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    try:
        before = [int(m[0][1:]) for m in recv_n(pull, 30)]
        assert before == list(range(30))
        pull.close(linger=0)

        pull = bind_again(ctx, zmq.PULL, port)
        after = [int(m[0][1:]) for m in recv_n(pull, 30)]
        assert after[0] > before[-1] and after == sorted(after), after
        assert after == list(range(after[0], after[0] + 30)), "gapless once reconnected"
    finally:
        stop.set()
        thread.join(DEADLINE)
    # At EOF the remaining lines are flushed to the restarted peer, in order.
    last = fed[0] - 1
    rest = []
    deadline = time.monotonic() + DEADLINE
    while (rest[-1] if rest else after[-1]) < last:
        assert time.monotonic() < deadline, f"never got m{last} (got up to {rest[-1:]})"
        if pull.poll(200):
            rest.append(int(pull.recv()[1:]))
    assert rest == list(range(after[-1] + 1, last + 1))
    assert push.wait_exit() == 0, push.describe()


# ---------------------------------------------------------------------------
# Heartbeats (ZMTP 3.1 PING/PONG)


def monitor_events(monitor: zmq.Socket, seconds: float) -> list[int]:
    events = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if monitor.poll(int(left * 1000) + 1):
            events.append(recv_monitor_message(monitor)["event"])
    return events


@pytest.mark.timeout(30)
def test_swift_sub_answers_libzmq_pings(direct, ctx):
    # libzmq pings every 100 ms and drops the connection after 1 s without a reply.
    port = free_port()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.HEARTBEAT_IVL, 100)
    pub.setsockopt(zmq.HEARTBEAT_TIMEOUT, 1000)
    monitor = pub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    pub.bind(local(port))
    sub = direct("sub", "--connect", local(port))
    wait_handshakes([monitor])
    events = monitor_events(monitor, 2.5)  # idle: only PING/PONG on the wire
    assert zmq.EVENT_DISCONNECTED not in events, f"libzmq dropped sluice (events {events}): {sub.describe()}"
    send_until_seen(sub, lambda: pub.send(b"still-there"), lambda lines: b"still-there" in lines)


@pytest.mark.timeout(30)
def test_swift_heartbeat_kept_alive_by_libzmq_pongs(direct, ctx):
    # sluice pings every 200 ms and drops a connection silent for 600 ms; libzmq (no
    # heartbeats of its own) answers PINGs, which keeps an idle connection up.
    port = free_port()
    pull = ctx.socket(zmq.PULL)
    monitor = pull.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    pull.bind(local(port))
    push = direct("push", "--connect", local(port), "--heartbeat-ms", "200")
    wait_handshakes([monitor])
    events = monitor_events(monitor, 2.5)
    assert zmq.EVENT_DISCONNECTED not in events, f"sluice dropped libzmq (events {events}): {push.describe()}"
    push.feed(b"after-idle\n")
    push.close_stdin()
    assert recv_n(pull, 1) == [[b"after-idle"]]
    assert push.wait_exit() == 0, push.describe()


# ---------------------------------------------------------------------------
# CLI behaviour


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["sub", "pull"])
def test_swift_receiver_exits_when_its_stdout_closes(kind, ctx):
    # `sluice direct sub ... | head -n 1`: once the reader is gone, writes fail (EPIPE, or
    # SIGPIPE) and the command must end, as any Unix filter does, instead of running on.
    cmd = [str(sluice_binary()), "direct", kind, "--bind", ANY]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        m = re.search(rb":(\d+)\s*$", proc.stderr.readline())
        assert m, "no bound port"
        peer = ctx.socket(zmq.PUB if kind == "sub" else zmq.PUSH)
        peer.connect(local(int(m.group(1))))
        peer.send(b"first")  # PUSH: queued until connected; PUB: maybe lost, so repeat below
        deadline = time.monotonic() + DEADLINE
        while not select.select([proc.stdout], [], [], 0.05)[0]:
            assert time.monotonic() < deadline, "nothing printed"
            if kind == "sub":
                peer.send(b"first")
        assert proc.stdout.readline() == b"first\n"
        proc.stdout.close()  # the reader goes away, like `head -n 1`
        deadline = time.monotonic() + 5
        sent = 0
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                peer.send(b"more-%d" % sent, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
            time.sleep(0.01)
        assert proc.poll() is not None, (
            f"`sluice direct {kind}` still running 5 s after its stdout was closed "
            f"({sent} more messages sent to it)"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.timeout(30)
def test_pub_gives_up_waiting_for_subscribers(direct):
    pub = direct("pub", "--bind", ANY, "--wait-timeout-ms", "300")
    pub.feed(b"nobody-listens\n")
    pub.close_stdin()
    assert pub.wait_exit() == 1, pub.describe()
    assert b"no 1 subscriber(s) after 300 ms" in b"".join(pub.stderr), pub.describe()


@pytest.mark.timeout(30)
def test_cli_errors_are_plain_messages(direct):
    # Like every other sluice command (`error: MESSAGE`, exit status 1), not a Swift dump
    # of the error value.
    pub = direct("pub", "--bind", ANY, "--wait-timeout-ms", "100")
    pub.close_stdin()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    pull = direct("pull", "--bind", local(taken.getsockname()[1]))
    for proc, text in [(pub, b"no 1 subscriber(s) after 100 ms"), (pull, b"cannot bind")]:
        assert proc.wait_exit() == 1, proc.describe()
        err = b"".join(proc.stderr)
        assert err.startswith(b"error: ") or b"\nerror: " in err, f"stderr: {err!r}"
        assert text in err and b"UsageError(" not in err, f"stderr: {err!r}"
    taken.close()


# ---------------------------------------------------------------------------
# Swift → Swift, large messages


@pytest.mark.timeout(30)
def test_swift_pub_to_swift_sub_10000_lines(direct):
    n = 10_000
    sub = direct("sub", "--bind", ANY, "--count", str(n))
    pub = direct("pub", "--connect", local(sub.port()))
    expected = [b"line-%05d-%s" % (i, b"x" * (i % 50)) for i in range(n)]
    pub.feed(b"".join(l + b"\n" for l in expected))
    pub.close_stdin()
    assert pub.wait_exit() == 0, pub.describe()
    assert sub.wait_exit() == 0, sub.describe()
    assert sub.wait_lines(n) == expected


def big_line(size: int = 1 << 20, seed: int = 7) -> bytes:
    # Random printable bytes (any but "\n", which would split the line).
    alphabet = (string.ascii_letters + string.digits + " \t\r,;:!?()[]{}").encode()
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    return random.Random(seed).randbytes(size).translate(table)


@pytest.mark.timeout(30)
def test_1mib_message_swift_pub_to_pyzmq_sub(direct, ctx):
    big = big_line()
    pub = direct("pub", "--bind", ANY, "--topic", "big")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"big")
    sub.connect(local(pub.port()))
    pub.feed(b"small-1\n" + big + b"\nsmall-2\n")
    pub.close_stdin()
    got = recv_n(sub, 3)
    assert pub.wait_exit() == 0, pub.describe()
    assert [m[0] for m in got] == [b"big"] * 3
    assert got[0][1] == b"small-1" and got[2][1] == b"small-2"
    assert len(got[1][1]) == len(big) and got[1][1] == big


@pytest.mark.timeout(30)
def test_1mib_message_pyzmq_pub_to_swift_sub(direct, ctx):
    big = big_line(seed=11)
    sub = direct("sub", "--bind", ANY)
    pub = ctx.socket(zmq.PUB)
    pub.connect(local(sub.port()))
    send_until_seen(sub, lambda: pub.send(b"sync"), lambda lines: b"sync" in lines)
    pub.send_multipart([b"topic", big])
    pub.send(b"end")
    assert sub.wait_until(lambda lines: b"end" in lines), sub.describe()
    got = [l for l in sub.snapshot() if l != b"sync"]
    assert len(got) == 2 and got[1] == b"end"
    assert len(got[0]) == len(big) and got[0] == big


# ---------------------------------------------------------------------------
# Hostile peers on raw sockets (RFC 37 bytes written by hand)


def greeting(mechanism: bytes = b"NULL", major: int = 3, minor: int = 1) -> bytes:
    # signature: 0xFF, 8 bytes of padding, 0x7F; version; mechanism (20 bytes, zero-padded);
    # as-server; filler (31 zero bytes).
    return b"\xff" + bytes(8) + b"\x7f" + bytes([major, minor]) + mechanism.ljust(20, b"\x00") + b"\x00" + bytes(31)


def command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes([len(name)]) + name + data
    if len(body) <= 255:
        return bytes([0x04, len(body)]) + body
    return b"\x06" + struct.pack(">Q", len(body)) + body


def ready(socket_type: bytes) -> bytes:
    name = b"Socket-Type"
    return command(b"READY", bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, f"closed after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    flags = recv_exact(sock, 1)[0]
    size = struct.unpack(">Q", recv_exact(sock, 8))[0] if flags & 0x02 else recv_exact(sock, 1)[0]
    return flags, recv_exact(sock, size)


def handshake(port: int, peer_type: bytes) -> tuple[socket.socket, dict[str, bytes]]:
    """A raw connection that has done greeting + READY as `peer_type`; returns it and the
    properties of sluice's READY."""
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.sendall(greeting() + ready(peer_type))
    theirs = recv_exact(s, 64)
    assert theirs[0] == 0xFF and theirs[9] == 0x7F and theirs[10] == 3, theirs
    assert theirs[12:32].rstrip(b"\x00") == b"NULL"
    flags, body = read_frame(s)
    assert flags == 0x04 and body[0] == 5 and body[1:6] == b"READY", (flags, body)
    props, data = {}, body[6:]
    while data:
        n = data[0]
        name = data[1 : 1 + n].decode().lower()
        (vlen,) = struct.unpack(">I", data[1 + n : 5 + n])
        props[name] = data[5 + n : 5 + n + vlen]
        data = data[5 + n + vlen :]
    return s, props


def prove_alive(kind: str, proc: Direct, ctx: zmq.Context, marker: bytes) -> None:
    """A real libzmq peer still gets a message through to the `sub`/`pull` process."""
    assert proc.proc.poll() is None, proc.describe()
    peer = ctx.socket(zmq.PUB if kind == "sub" else zmq.PUSH)
    peer.connect(local(proc.port()))
    if kind == "sub":
        send_until_seen(proc, lambda: peer.send(marker), lambda lines: marker in lines)
    else:
        peer.setsockopt(zmq.SNDTIMEO, int(DEADLINE * 1000))
        peer.send(marker)
        assert proc.wait_until(lambda lines: marker in lines), proc.describe()
    peer.close(linger=0)


GARBAGE = [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(b"\x00\x00\x00\x10" + b"\x00" * 60, id="kafka-like"),
    pytest.param(b"\xff" + bytes(8) + b"\x00" + b"\x01" * 54, id="zmtp1.0"),
    pytest.param(greeting(major=2, minor=0), id="zmtp2.0"),
    pytest.param(greeting(mechanism=b"CURVE"), id="curve"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("kind", ["sub", "pull"])
def test_hostile_garbage_greeting_closed(direct, ctx, kind, garbage):
    proc = direct(kind, "--bind", ANY)
    port = proc.port()
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    send_quietly(s, garbage)
    # Well before the 10 s handshake timeout: the greeting itself was refused.
    closed, got = closed_within(s, 5)
    s.close()
    assert closed, f"connection still open 5 s after a garbage greeting (got {got[:80]!r})"
    prove_alive(kind, proc, ctx, b"alive")
    assert set(proc.snapshot()) == {b"alive"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind,peer_type", [("sub", b"PUB"), ("pull", b"PUSH")])
def test_hostile_2_pow_40_frame_closed_without_growing(direct, ctx, kind, peer_type):
    proc = direct(kind, "--bind", ANY)
    port = proc.port()
    s, props = handshake(port, peer_type)
    assert props["socket-type"] == kind.upper().encode()
    rss_before = proc.rss_kb()
    # A message frame (long size) announcing 2^40 bytes, then the start of a body.
    send_quietly(s, b"\x02" + struct.pack(">Q", 1 << 40) + bytes(256 << 10))
    closed, got = closed_within(s, 3)
    s.close()
    assert closed, "connection still open 3 s after a 2^40-byte frame header"
    rss_after = proc.rss_kb()
    assert rss_after - rss_before < 32 << 10, f"RSS grew from {rss_before} KB to {rss_after} KB"

    # Same for a command frame (command|long flags) announcing 2^40 bytes.
    s, _ = handshake(port, peer_type)
    send_quietly(s, b"\x06" + struct.pack(">Q", 1 << 40) + b"\x09SUBSCRIBE")
    assert closed_within(s, 3)[0], "still open after a 2^40-byte command header"
    s.close()

    prove_alive(kind, proc, ctx, b"alive")
    assert set(proc.snapshot()) == {b"alive"}
    assert proc.rss_kb() - rss_before < 32 << 10


@pytest.mark.timeout(30)
def test_hostile_silent_peer_dropped_by_heartbeat(direct, ctx):
    proc = direct("sub", "--bind", ANY, "--heartbeat-ms", "100")
    s, _ = handshake(proc.port(), b"PUB")
    started = time.monotonic()
    # Read sluice's frames (its SUBSCRIBE, then PINGs) and never answer.
    frames = []
    s.settimeout(DEADLINE)
    try:
        while True:
            frames.append(read_frame(s))
    except (AssertionError, ConnectionResetError):
        pass  # closed
    elapsed = time.monotonic() - started
    s.close()
    pings = [body for flags, body in frames if flags & 0x04 and body[:5] == b"\x04PING"]
    assert pings, f"no PING before the close: {frames}"
    assert all(len(p) >= 7 for p in pings), "PING without its TTL"
    assert 0.2 <= elapsed < 5, f"closed after {elapsed:.2f}s (heartbeat timeout ~0.3 s)"
    prove_alive("sub", proc, ctx, b"alive")


@pytest.mark.timeout(30)
def test_hostile_subscription_flood_bounded(direct, ctx):
    # 20,000 distinct 1000-byte subscriptions (20 MB) from one raw SUB peer: the publisher
    # keeps at most its per-peer cap (1 MiB) and still serves a real subscriber.
    pub = direct("pub", "--bind", ANY, "--wait-subscribers", "0")
    port = pub.port()
    s, props = handshake(port, b"SUB")
    assert props["socket-type"] == b"PUB"
    rss_before = pub.rss_kb()
    flood = b"".join(command(b"SUBSCRIBE", b"%06d" % i + b"s" * 994) for i in range(20_000))
    send_quietly(s, flood)
    real = ctx.socket(zmq.SUB)
    real.setsockopt(zmq.SUBSCRIBE, b"alive")
    real.connect(local(port))
    deadline = time.monotonic() + DEADLINE
    while not real.poll(50):
        assert time.monotonic() < deadline, f"the real subscriber got nothing: {pub.describe()}"
        pub.feed(b"alive\n")
    assert real.recv() == b"alive"
    rss_after = pub.rss_kb()
    assert rss_after - rss_before < 32 << 10, f"RSS grew from {rss_before} KB to {rss_after} KB"
    s.close()


# ---------------------------------------------------------------------------
# Incompatible socket types


@pytest.mark.timeout(30)
def test_pyzmq_push_to_swift_sub_delivers_nothing(direct, ctx):
    sub = direct("sub", "--bind", ANY)
    push = ctx.socket(zmq.PUSH)
    push.connect(local(sub.port()))
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            push.send(b"from-push", zmq.NOBLOCK)
        except zmq.Again:
            pass
        time.sleep(0.02)
    prove_alive("sub", sub, ctx, b"from-pub")
    assert b"from-push" not in sub.snapshot()
    assert set(sub.snapshot()) == {b"from-pub"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind,peer_type", [("sub", b"PUSH"), ("sub", b"SUB"), ("pull", b"PUB"), ("pull", b"PULL")])
def test_raw_mismatched_socket_type_refused(direct, ctx, kind, peer_type):
    # libzmq would refuse these itself; a raw peer shows that sluice checks too.
    proc = direct(kind, "--bind", ANY)
    s = socket.create_connection(("127.0.0.1", proc.port()), timeout=DEADLINE)
    send_quietly(s, greeting() + ready(peer_type) + b"\x00\x08raw-msg!")
    closed, got = closed_within(s, 5)
    s.close()
    assert closed, "a mismatched socket type was not disconnected"
    assert got[:1] == b"\xff" and len(got) >= 64  # sluice's greeting came first
    prove_alive(kind, proc, ctx, b"ok")
    assert b"raw-msg!" not in proc.snapshot()

"""Hostile and broken clients on raw sockets: oversized and garbage frames, truncated
frames, unknown APIs, absurd counts inside valid-looking frames, record batches with a valid
CRC but garbage records, connection caps
(`max.connections`, `max.connections.per.ip`) and the idle timeout
(`connections.max.idle.ms`, which only complete requests reset). After each abuse the
broker must still be running and serve a well-behaved client."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

from helpers import (
    RawClient, admin, closed_within, consume, create_topic, producer, produce_all, send_quietly,
)

# ---------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(broker, source: str | None = None, timeout: float = 5) -> socket.socket:
    s = socket.socket()
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", broker.port))
    return s


def header(api_key: int, version: int, correlation: int = 7, client_id: bytes = b"hostile") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def api_versions_ok(sock_or_bootstrap) -> bool:
    raw = RawClient(sock_or_bootstrap) if isinstance(sock_or_bootstrap, str) else None
    sock = raw.sock if raw else sock_or_bootstrap
    try:
        sock.settimeout(5)
        sock.sendall(frame(header(18, 0, 4242)))
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        body = recv_exact(sock, size)
        corr, err = struct.unpack_from(">ih", body)
        return corr == 4242 and err == 0
    finally:
        if raw:
            raw.close()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by broker")
        buf += chunk
    return bytes(buf)


def assert_serving(broker, names=None) -> None:
    """The broker is alive and a well-behaved client gets answers (raw ApiVersions,
    librdkafka metadata, and, with `names`, a produce acknowledged with acks=all)."""
    assert broker.proc is not None and broker.proc.poll() is None, f"broker died; log:\n{broker.log_tail()}"
    assert api_versions_ok(broker.bootstrap)
    md = admin(broker.bootstrap).list_topics(timeout=10)
    assert md.brokers, "no brokers in metadata"
    if names is not None:
        t = names()
        create_topic(broker.bootstrap, t)
        p = producer(broker.bootstrap, acks="all")
        assert len(produce_all(p, t, [b"still-serving"], timeout=15)) == 1


# ---------------------------------------------------------------------------
# Frames


def test_oversized_frame_refused_before_allocation(make_broker, names):
    b = make_broker({"socket.request.max.bytes": "65536"})
    assert_serving(b)
    before = rss_kb(b.proc.pid)
    for size in (2**31 - 1, 2_000_000_000, 65537, -1, -(2**31)):
        s = connect(b)
        start = time.monotonic()
        send_quietly(s, struct.pack(">i", size) + header(18, 0) + os.urandom(1024))
        closed, got = closed_within(s, 3)
        s.close()
        assert closed, f"size prefix {size}: connection not closed"
        assert got == b"", f"size prefix {size}: unexpected reply {got[:40]!r}"
        assert time.monotonic() - start < 2, f"size prefix {size}: closed only after {time.monotonic() - start:.1f}s"
    after = rss_kb(b.proc.pid)
    print(f"RSS before {before} kB, after five oversized size prefixes {after} kB")
    assert after - before < 20_000, f"RSS jumped {before} -> {after} kB"
    # A frame exactly at the limit is still accepted (ApiVersions padded with ignored bytes).
    s = connect(b)
    payload = header(18, 0, 99)
    send_quietly(s, frame(payload + b"\0" * (65536 - len(payload))))
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    assert struct.unpack_from(">i", recv_exact(s, size))[0] == 99
    s.close()
    assert_serving(b, names)


def test_garbage_bytes(broker, names):
    rng = random.Random(1234)
    for i in range(40):
        s = connect(broker)
        if i % 2 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
        else:  # a plausible size prefix followed by garbage of that size
            n = rng.randrange(1, 512)
            data = struct.pack(">i", n) + bytes(rng.randrange(256) for _ in range(n))
        send_quietly(s, data)
        closed_within(s, 0.2)  # a reply, a close or silence (waiting for more) are all fine
        s.close()
    assert_serving(broker, names)


def test_truncated_frames_then_close(broker, names):
    payload = header(3, 1) + struct.pack(">i", -1)  # Metadata v1, all topics
    whole = frame(payload)
    for cut in range(1, len(whole)):
        s = connect(broker)
        send_quietly(s, whole[:cut])
        s.close()
    # A size prefix promising far more than is sent, then close.
    for _ in range(20):
        s = connect(broker)
        send_quietly(s, struct.pack(">i", 60_000_000) + b"x" * 1000)
        s.close()
    # And with shutdown of the write side only (half-close): the broker must end it too.
    s = connect(broker)
    send_quietly(s, whole[:7])
    s.shutdown(socket.SHUT_WR)
    closed, _ = closed_within(s, 5)
    s.close()
    assert closed, "a half-closed connection with a truncated frame was not closed"
    assert_serving(broker, names)


def test_unknown_api_keys_and_versions(broker):
    # Unknown API key, unsupported versions of a known API: the connection is closed.
    for api_key, version in ((999, 0), (-5, 0), (0, 99), (3, 999), (1, -1)):
        s = connect(broker)
        send_quietly(s, frame(header(api_key, version) + b"\0" * 16))
        closed, got = closed_within(s, 3)
        s.close()
        assert closed and got == b"", f"api {api_key} v{version}: expected a close, got {got[:40]!r}"
    # ApiVersions at an unknown version: a v0 answer with UNSUPPORTED_VERSION (KIP-511).
    s = connect(broker)
    send_quietly(s, frame(header(18, 99, 55) + b"\0" * 8))
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    corr, err = struct.unpack_from(">ih", recv_exact(s, size))
    assert (corr, err) == (55, 35)
    assert api_versions_ok(s)  # the same connection still works
    s.close()
    assert_serving(broker)


def test_request_before_api_versions(broker):
    """Metadata and Produce as the very first requests on a connection are answered."""
    s = connect(broker)
    s.sendall(frame(header(3, 1, 31) + struct.pack(">i", -1)))  # Metadata v1, all topics
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    body = recv_exact(s, size)
    assert struct.unpack_from(">i", body)[0] == 31
    (nbrokers,) = struct.unpack_from(">i", body, 4)
    assert nbrokers == 1
    s.close()
    assert_serving(broker)


def test_huge_counts_and_lengths_inside_valid_frames(broker, names):
    pid = broker.proc.pid
    before = rss_kb(pid)
    big = 0x7FFFFFFF
    bodies = [
        # Metadata v1: topics array count 2^31-1, nothing after it.
        header(3, 1) + struct.pack(">i", big),
        # Metadata v1: one topic whose name claims 32767 bytes.
        header(3, 1) + struct.pack(">ih", 1, 0x7FFF) + b"abc",
        # A client id that claims 32767 bytes.
        struct.pack(">hhih", 3, 1, 7, 0x7FFF) + b"abc",
        # Produce v3: topic array count 2^31-1.
        header(0, 3) + struct.pack(">hhii", -1, -1, 30000, big),
        # Produce v3: one partition whose records claim 2^31-1 bytes.
        header(0, 3) + struct.pack(">hhii", -1, -1, 30000, 1) + struct.pack(">h", 1) + b"t"
        + struct.pack(">iii", 1, 0, big) + b"\0" * 64,
        # Fetch v4: partitions count 2^31-1.
        header(1, 4) + struct.pack(">iiiibi", -1, 100, 1, 1024, 0, 1) + struct.pack(">h", 1) + b"t"
        + struct.pack(">i", big),
        # Metadata v9 (flexible; request header v2): compact topics array of 2^32-2 entries.
        header(3, 9) + b"\0" + b"\xff\xff\xff\xff\x0f",
        # ApiVersions v3 (flexible): client software name claiming ~2^28 bytes.
        header(18, 3) + b"\0" + b"\xff\xff\xff\x7f" + b"x",
        # CreateTopics v2: topics count 2^31-1.
        header(19, 2) + struct.pack(">i", big),
        # Negative counts and lengths.
        header(3, 1) + struct.pack(">i", -7),
        header(3, 1) + struct.pack(">ih", 1, -9),
    ]
    for body in bodies:
        s = connect(broker)
        send_quietly(s, frame(body))
        closed, got = closed_within(s, 3)
        s.close()
        # A close, or a well-formed error response; never a hang or a crash.
        assert closed, f"request {body[:16].hex()}: connection left open"
        assert broker.proc.poll() is None, f"broker died on {body[:16].hex()}; log:\n{broker.log_tail()}"
    after = rss_kb(pid)
    print(f"RSS before {before} kB, after absurd counts {after} kB")
    assert after - before < 50_000, f"RSS jumped {before} -> {after} kB"
    assert_serving(broker, names)


# ---------------------------------------------------------------------------
# Record batches that are well-framed but whose records are not


def record_batch_v2(section: bytes, count: int, attributes: int = 0) -> bytes:
    """A v2 RecordBatch around `section` (the records, compressed already if `attributes`
    names a codec) with a valid CRC-32C: it passes every header check."""
    from kafka.record.util import calc_crc32c

    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, 1000, 1000, -1, -1, -1, count) + section
    batch_length = 4 + 1 + 4 + len(after_crc)  # partition leader epoch, magic, CRC, the rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, calc_crc32c(after_crc)) + after_crc


def produce_v8(raw: RawClient, topic: str, records: bytes) -> tuple[int, str | None]:
    """Produce v8 (acks=all) of `records` to partition 0; returns (error code, error message)."""
    name = topic.encode()
    body = struct.pack(">hhii", -1, -1, 10_000, 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">iii", 1, 0, len(records)) + records
    reply = raw.request(0, 8, body)
    at = 4  # responses count
    (name_len,) = struct.unpack_from(">h", reply, at)
    at += 2 + name_len + 4  # name, partitions count
    _, error, _, _, _, record_errors = struct.unpack_from(">ihqqqi", reply, at)
    at += 4 + 2 + 8 + 8 + 8 + 4
    for _ in range(record_errors):
        at += 4
        (n,) = struct.unpack_from(">h", reply, at)
        at += 2 + max(n, 0)
    (n,) = struct.unpack_from(">h", reply, at)
    message = reply[at + 2 : at + 2 + n].decode() if n >= 0 else None
    return error, message


def test_batch_of_garbage_records_refused(broker, names):
    """A batch with a correct CRC but garbage records (plain, or gzip that decompresses to
    garbage, or gzip that is not gzip) is refused with INVALID_RECORD and a message, nothing
    is appended, and a consumer of the partition reads everything else."""
    import gzip

    t = names()
    create_topic(broker.bootstrap, t)
    p = producer(broker.bootstrap, acks="all")
    produce_all(p, t, [b"before-%d" % i for i in range(5)])
    rng = random.Random(87)
    garbage = b"\x01" + bytes(rng.randrange(256) for _ in range(300))  # first length: -1
    bad_batches = {
        "plain garbage": record_batch_v2(garbage, count=4),
        "gzip of garbage": record_batch_v2(gzip.compress(garbage), count=4, attributes=1),
        "not gzip at all": record_batch_v2(garbage, count=4, attributes=1),
    }
    raw = RawClient(broker.bootstrap)
    try:
        for label, batch in bad_batches.items():
            error, message = produce_v8(raw, t, batch)
            assert error == 87, f"{label}: error {error} ({message}), expected INVALID_RECORD (not CORRUPT_MESSAGE, which clients retry)"
            assert message, f"{label}: no error message"
            print(f"{label}: INVALID_RECORD: {message}")
    finally:
        raw.close()
    produce_all(p, t, [b"after-%d" % i for i in range(5)])
    got = consume(broker.bootstrap, t)
    assert [r.value for r in got] == [b"before-%d" % i for i in range(5)] + [b"after-%d" % i for i in range(5)]
    assert [r.offset for r in got] == list(range(10)), "the refused batches took offsets"
    assert_serving(broker)


# ---------------------------------------------------------------------------
# Connection caps


def open_served(broker, n: int, source: str | None = None, within: float = 5) -> list[socket.socket]:
    """Opens n connections that are all served. A connection closed by a client (such as the
    fixture's readiness probe) holds its slot until the broker has read its end, a few ms
    later: until then one of the n may be refused, so the attempt is repeated."""
    deadline = time.monotonic() + within
    while True:
        socks = [connect(broker, source) for _ in range(n)]
        try:
            if all(api_versions_ok(s) for s in socks):
                return socks
        except (ConnectionError, OSError):
            pass
        for s in socks:
            s.close()
        assert time.monotonic() < deadline, f"could not get {n} connections served"
        time.sleep(0.2)


def test_max_connections(make_broker):
    n = 5
    b = make_broker({"max.connections": str(n)})
    socks = open_served(b, n)
    extra = connect(b)
    closed, got = closed_within(extra, 3)
    extra.close()
    assert closed and got == b"", "connection N+1 was not refused"
    for s in socks:  # the first N still work
        assert api_versions_ok(s)
    socks.pop().close()
    again = open_served(b, 1)[0]  # the freed slot is reusable (once the broker saw the close)
    again.close()
    for s in socks:  # and the others were not disturbed
        assert api_versions_ok(s)
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert_serving(b)


def test_max_connections_per_ip(make_broker):
    b = make_broker({"max.connections.per.ip": "3"})
    socks = open_served(b, 3)
    extra = connect(b)
    closed, got = closed_within(extra, 3)
    extra.close()
    assert closed and got == b"", "a 4th connection from 127.0.0.1 was not refused"
    # Another client address (the whole of 127/8 is loopback) is not affected.
    other = [connect(b, source="127.0.0.2") for _ in range(3)]
    for s in other + socks:
        assert api_versions_ok(s)  # no retry: nothing from 127.0.0.2 was ever closed
    for s in socks + other:
        s.close()
    time.sleep(0.3)
    assert_serving(b)


# ---------------------------------------------------------------------------
# Idle timeout


def test_idle_connection_closed(make_broker):
    b = make_broker({"connections.max.idle.ms": "1500"})
    silent = connect(b)
    start = time.monotonic()
    closed, _ = closed_within(silent, 6)
    elapsed = time.monotonic() - start
    silent.close()
    assert closed, "a silent connection was not closed"
    assert 1.2 <= elapsed <= 4.5, f"closed after {elapsed:.2f}s with connections.max.idle.ms=1500"

    # A connection that is used keeps living; once it goes quiet it is closed.
    busy = connect(b)
    for _ in range(8):  # 4 s of use, in steps shorter than the timeout
        time.sleep(0.5)
        assert api_versions_ok(busy)
    start = time.monotonic()  # the last complete request
    closed, _ = closed_within(busy, 6)
    elapsed = time.monotonic() - start
    busy.close()
    assert closed and 1.2 <= elapsed <= 4.5, f"closed {closed} after {elapsed:.2f}s of quiet"
    assert_serving(b)


def test_slow_sender_is_closed_by_idle_timeout(make_broker):
    """A frame trickled one byte at a time never completes a request, so partial bytes do
    not keep the connection alive."""
    b = make_broker({"connections.max.idle.ms": "1500"})
    s = connect(b)
    payload = frame(header(3, 1) + struct.pack(">i", -1) + b"\0" * 200)  # takes ~46 s at 0.2 s/byte
    start = time.monotonic()
    closed = False
    for byte in payload:
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        c, _ = closed_within(s, 0.2)
        if c:
            closed = True
            break
        if time.monotonic() - start > 10:
            break
    elapsed = time.monotonic() - start
    s.close()
    assert closed, f"trickling sender still connected after {elapsed:.1f}s"
    assert elapsed < 4.5, f"trickling sender closed only after {elapsed:.1f}s"
    assert_serving(b)


def test_request_in_progress_is_not_idle(make_broker, names):
    """A long-poll Fetch that waits longer than the idle timeout is answered, not cut off."""
    b = make_broker({"connections.max.idle.ms": "1000"})
    t = names()
    create_topic(b.bootstrap, t)
    raw = RawClient(b.bootstrap)
    start = time.monotonic()
    _, result = raw.fetch_v4([(t, 0, 0, 1 << 20)], max_bytes=1 << 20, max_wait_ms=2500, min_bytes=1 << 20)
    waited = time.monotonic() - start
    raw.close()
    assert result[(t, 0)][0] == 0
    assert waited >= 2.0, f"fetch returned after {waited:.2f}s: the long poll did not outlast the idle timeout"


# ---------------------------------------------------------------------------
# Memory with many idle connections (figures: scripts/idle-connections-rss.py)


def test_10k_idle_connections_memory_bound():
    import importlib.util
    import resource

    import pytest

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 11_000 and os.geteuid() != 0:
        # Not a skip: the measurement is a deliverable; say loudly why it cannot run here.
        pytest.fail(f"cannot raise the open-files limit to 11,000 (hard limit {hard}); run as root "
                    "or raise the hard limit (ulimit -Hn)")

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("idle_rss", REPO / "scripts" / "idle-connections-rss.py")
    idle_rss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(idle_rss)
    r = idle_rss.measure(10_000)
    print(r)
    assert r["alive"] and r["answered"] == 10_000, r
    # Measured ~92 MiB (debug build, ~9.7 KB per idle connection); the bound leaves room.
    assert r["growth_idle_kb"] < 200 * 1024, r

#!/usr/bin/env python3
"""Partition and connection scale: what many partitions and many idle connections cost.

A benchmark, not a test: it prints figures (and a markdown summary table for the README)
and exits 0 unless it could not run at all. Failures of a step (e.g. "Too many open
files" while creating 10,000 partitions on a storage engine that keeps descriptors per
partition) are reported per step, with the tail of the broker's log, and the run goes on.

    scripts/bench-scale.py                          # partitions 1000,10000,50000; 10,000 connections
    scripts/bench-scale.py --quick                  # smoke run: partitions 100,1000; 1,000 connections
    scripts/bench-scale.py --partitions 5000 --connections 2000
    scripts/bench-scale.py --partitions 20000 --connections 0 --json /tmp/scale.json
    SLUICE_BIN=/path/to/sluice scripts/bench-scale.py

The broker binary is env SLUICE_BIN (default .build-release/release/sluice, relative to the
repository root). Progress goes to stderr, figures to stdout. Each broker gets a fresh
temporary data directory (removed afterwards; its log is sluice.log beside it, shown on a
failure), is started with `sluice serve --set KEY=VALUE` (see --set) and is always killed
when the script ends.

For each partition count N (--partitions, default 1000,10000,50000). A topic holds at most
10,000 partitions, so N partitions are ceil(N/10000) topics of up to 10,000 each
(50,000 = 5 x 10,000), plus one single-partition topic for comparison:

  create        wall time of one AdminClient.create_topics call for all N partitions
                (operation and request timeout 600 s), and the broker's CPU seconds in it.
  RSS / fds     the broker's VmRSS (/proc/PID/status) and open descriptors (/proc/PID/fd)
                after creation, after the clean restart and after the unclean restart.
  metadata      median and p99 (of --metadata-requests, default 20: p99 is the slowest) of
                a full Metadata request (v1, all topics) on a raw socket: the time from
                sending the request to the last byte of the response, so the broker's
                work and the transfer, not a client's parsing. Also the response size.
  produce       a confluent-kafka producer (acks=1, linger.ms=5, default batching) sends
                --records (default 200,000) records of --value-size (100) bytes
                round-robin over all N partitions (explicit partition=), unpaced:
                records/s (acknowledged records / time from the first produce() to the
                last delivery report) and p50/p99 delivery latency (produce() call ->
                delivery report; unpaced, so mostly queueing in the client). Then the same
                to the single-partition topic; "ratio" is all-partitions / one-partition
                throughput.
  shutdown      SIGTERM -> the process has exited (s), and its exit status.
  clean start   spawn -> the broker answers a full Metadata request listing every topic
                with all its partitions (polled every 20 ms on a raw socket); "listening"
                is spawn -> it accepts TCP connections.
  unclean start --dirty-records more (default records/4) round-robin over all partitions,
                then SIGKILL as soon as they are acknowledged, restart, time as above.
  verify        after each restart: the sum of the high watermarks of all partitions
                (one bulk AdminClient.list_offsets) against the records acknowledged, and
                how many partitions differ: OK or MISMATCH.

After a count fails at creation, larger counts are skipped (they would fail the same
way) unless --keep-going.

Connections (--connections, default 10000,50000; 0 skips): measure() of
scripts/idle-connections-rss.py: the broker's RSS before and with N idle TCP connections
(that sent nothing) -> KB per connection, and after one ApiVersions on each. Around it, a
good client: a confluent-kafka producer (acks=1, linger.ms=0) sends --probe-records (2,000)
records paced at 1,000/s to a one-partition topic; p50/p99 delivery latency before the
connections are opened and while they are open and idle. Each connection takes a
descriptor in this process and one in the broker, so a count needs the open-file limit
(RLIMIT_NOFILE, hard) >= N + 1,000; larger counts are skipped, saying so.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from sluiceproc import cpu_seconds, percentile, start_sluice

REPO = Path(__file__).resolve().parent.parent
MAX_PARTITIONS_PER_TOPIC = 10_000
SINGLE_TOPIC = "scale-single"
CLIENT_ID = b"bench-scale"
DESCRIPTOR_HEADROOM = 1000  # what scripts/idle-connections-rss.py asks beyond N


def load_idle_connections():
    spec = importlib.util.spec_from_file_location("idle_connections_rss",
                                                  Path(__file__).resolve().parent / "idle-connections-rss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


idle_rss = load_idle_connections()


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def say(message: str = "") -> None:
    print(message, flush=True)


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def fmt(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


# ---------------------------------------------------------------------------
# The broker: start_sluice on one data directory, restartable


class Broker:
    def __init__(self, binary: str, data_dir: str, settings: dict[str, str]):
        self.binary, self.data_dir, self.settings = binary, data_dir, settings
        self.log_path = os.path.join(data_dir, "..", "sluice.log")
        self.proc = None
        self.bootstrap = None

    def start(self, timeout: float) -> float:
        """Spawns the broker; returns seconds from spawn until it accepts connections."""
        assert self.proc is None
        t0 = time.perf_counter()
        try:
            self.proc, self.bootstrap = start_sluice(self.binary, self.data_dir, self.settings, timeout=timeout)
        except SystemExit as e:  # start_sluice's way of saying it exited or did not start
            raise RuntimeError(f"broker did not start: {e}") from None
        return time.perf_counter() - t0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return idle_rss.rss_kb(self.pid)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout: float) -> tuple[float, int]:
        """SIGTERM; returns (seconds until it exited, exit status). Kills it after `timeout`
        (or if this script is interrupted meanwhile: self.proc stays set until it has exited)."""
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"broker did not exit within {timeout:.0f} s of SIGTERM (killed)") from None
        self.proc = None
        return time.perf_counter() - t0, status

    def kill(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
                text = f.read().decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError:
            return "(no log)"


RUNNING: list[Broker] = []  # brokers of this run, killed on any exit


def kill_all() -> None:
    for b in RUNNING:
        b.kill()


# ---------------------------------------------------------------------------
# A raw Metadata request: times the broker, not a client's parsing


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("connection closed by the broker")
        got += k
    return bytes(buf)


def metadata_all(sock: socket.socket, correlation: int) -> tuple[float, bytes]:
    """Metadata v1 for all topics (null topic array); returns (seconds, response body)."""
    header = struct.pack(">hhih", 3, 1, correlation, len(CLIENT_ID)) + CLIENT_ID
    frame = header + struct.pack(">i", -1)
    t0 = time.perf_counter()
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    body = _recv_exact(sock, size)
    elapsed = time.perf_counter() - t0
    if struct.unpack_from(">i", body)[0] != correlation:
        raise RuntimeError("Metadata response with the wrong correlation id")
    return elapsed, body


def parse_metadata_v1(body: bytes) -> dict[str, tuple[int, int, int]]:
    """topic -> (error code, partitions, partitions with an error)."""
    pos = 4  # correlation id
    (brokers,) = struct.unpack_from(">i", body, pos)
    pos += 4
    for _ in range(brokers):
        pos += 4  # node id
        (n,) = struct.unpack_from(">h", body, pos)
        pos += 2 + n + 4  # host, port
        (n,) = struct.unpack_from(">h", body, pos)
        pos += 2 + max(n, 0)  # rack
    pos += 4  # controller id
    (count,) = struct.unpack_from(">i", body, pos)
    pos += 4
    topics = {}
    for _ in range(count):
        error, n = struct.unpack_from(">hh", body, pos)
        pos += 4
        name = body[pos:pos + n].decode()
        pos += n + 1  # is_internal
        (partitions,) = struct.unpack_from(">i", body, pos)
        pos += 4
        bad = 0
        for _ in range(partitions):
            (perror,) = struct.unpack_from(">h", body, pos)
            bad += perror != 0
            pos += 2 + 4 + 4
            (n,) = struct.unpack_from(">i", body, pos)  # replicas
            pos += 4 + 4 * max(n, 0)
            (n,) = struct.unpack_from(">i", body, pos)  # isr
            pos += 4 + 4 * max(n, 0)
        topics[name] = (error, partitions, bad)
    return topics


def connect(bootstrap: str, timeout: float) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def missing_topics(listed: dict, expected: dict[str, int]) -> list[str]:
    out = []
    for name, count in expected.items():
        error, partitions, bad = listed.get(name, (-1, 0, 0))
        if error != 0 or partitions != count or bad:
            out.append(name)
    return out


def wait_for_metadata(broker: Broker, expected: dict[str, int], spawned: float, deadline: float) -> float:
    """Polls (every 20 ms) until a full Metadata response lists every expected topic with all
    its partitions and no errors; returns seconds since `spawned` (a perf_counter time)."""
    bootstrap = broker.bootstrap
    correlation = 0
    last = "no answer"
    while time.perf_counter() < deadline:
        if not broker.alive():
            raise RuntimeError(f"the broker exited while waiting for a complete Metadata answer (last: {last})")
        try:
            with connect(bootstrap, timeout=max(1.0, deadline - time.perf_counter())) as s:
                while time.perf_counter() < deadline:
                    correlation += 1
                    _, body = metadata_all(s, correlation)
                    answered = time.perf_counter()
                    missing = missing_topics(parse_metadata_v1(body), expected)
                    if not missing:
                        return answered - spawned
                    last = f"{len(missing)} topics missing or incomplete, e.g. {missing[0]}"
                    time.sleep(0.02)
        except (OSError, ConnectionError, struct.error) as e:
            last = repr(e)
            time.sleep(0.02)
    raise RuntimeError(f"no complete Metadata answer in time (last: {last})")


def time_metadata(bootstrap: str, requests: int) -> dict:
    with connect(bootstrap, timeout=120) as s:
        metadata_all(s, 0)  # warm-up
        times = sorted(metadata_all(s, i + 1)[0] * 1000 for i in range(requests))
        size = len(metadata_all(s, requests + 1)[1])
    return {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 99), "bytes": size}


# ---------------------------------------------------------------------------
# Clients (confluent-kafka)


def admin_client(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 300_000})


def collected(function):
    """Collects garbage after the call: a failed admin future holds a reference cycle back
    to its client, which would keep the client's threads and connections (and their
    reconnect attempts) alive long after the call."""
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        gc.collect()
        return result
    return call


@collected
def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 600) -> list[str]:
    """One CreateTopics for all `topics`; returns the errors, one line per failed topic."""
    from confluent_kafka.admin import NewTopic

    admin = admin_client(bootstrap)
    futures = admin.create_topics([NewTopic(name, count) for name, count in topics.items()],
                                  operation_timeout=timeout, request_timeout=timeout)
    errors = []
    for name, f in futures.items():
        try:
            f.result(timeout + 30)
        except Exception as e:  # KafkaException (with the broker's message) or a timeout
            errors.append(f"{name}: {e}")
    return errors


def produce(bootstrap: str, targets: list[tuple[str, int]], count: int, value_size: int,
            acked: Counter, start: int = 0, broker_pid: int | None = None) -> dict:
    """Sends `count` records round-robin over `targets` (topic, partition), unpaced, after
    one untimed warm-up record per topic; adds acknowledged records per target to `acked`."""
    from confluent_kafka import Producer

    latencies: list[float] = []
    errors: list[str] = []  # the first few
    failed = [0]

    def delivered(err, msg):
        now = time.perf_counter()
        if err is not None:
            if len(errors) < 5:
                errors.append(str(err))
            failed[0] += 1
            return
        latencies.append(now - struct.unpack_from(">d", msg.value())[0])
        acked[(msg.topic(), msg.partition())] += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "on_delivery": delivered,
                  "socket.timeout.ms": 300_000})
    padding = b"x" * max(0, value_size - 8)
    # Warm-up, not timed: one record to each topic, so connections and metadata are in place.
    for topic in dict.fromkeys(t for t, _ in targets):
        p.produce(topic, struct.pack(">d", time.perf_counter()) + padding, partition=0)
    p.flush(600)
    latencies.clear()
    n = len(targets)
    broker_cpu0 = cpu_seconds(broker_pid) if broker_pid else None
    client_cpu0 = time.process_time()  # this process: Python and librdkafka's threads
    t0 = time.perf_counter()
    for i in range(start, start + count):
        topic, partition = targets[i % n]
        value = struct.pack(">d", time.perf_counter()) + padding
        while True:
            try:
                p.produce(topic, value, partition=partition)
                break
            except BufferError:  # the local queue is full: serve delivery reports
                p.poll(0.005)
        if i % 100 == 0:
            p.poll(0)
    remaining = p.flush(600)
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    broker_cpu = cpu_seconds(broker_pid) - broker_cpu0 if broker_pid else None
    lat = sorted(v * 1000 for v in latencies)
    return {"records": count, "acked": len(latencies), "failed": failed[0], "undelivered": remaining,
            "errors": errors, "seconds": elapsed, "rate": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(lat, 50) if lat else None, "p99_ms": percentile(lat, 99) if lat else None,
            "broker_cpu": broker_cpu, "client_cpu": client_cpu}


@collected
def high_watermarks(bootstrap: str, topics: dict[str, int]) -> tuple[dict, list[str]]:
    """High watermark of every partition of `topics`, in one bulk list_offsets."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = admin_client(bootstrap)
    request = {TopicPartition(t, p): OffsetSpec.latest() for t, n in topics.items() for p in range(n)}
    futures = admin.list_offsets(request, request_timeout=300)
    offsets, errors = {}, []
    for tp, f in futures.items():
        try:
            offsets[(tp.topic, tp.partition)] = f.result(330).offset
        except Exception as e:
            if len(errors) < 5:
                errors.append(f"{tp.topic}/{tp.partition}: {e}")
            offsets[(tp.topic, tp.partition)] = None
    return offsets, errors


def verify(bootstrap: str, topics: dict[str, int], acked: Counter) -> dict:
    offsets, errors = high_watermarks(bootstrap, topics)
    total = sum(v for v in offsets.values() if v is not None)
    expected = sum(acked.values())
    differ = sum(1 for tp, v in offsets.items() if v != acked.get(tp, 0))
    unknown = sum(1 for v in offsets.values() if v is None)
    ok = differ == 0 and total == expected
    return {"ok": ok, "high_watermarks": total, "acked": expected, "partitions_differ": differ,
            "partitions_unknown": unknown, "errors": errors}


# ---------------------------------------------------------------------------
# One partition count


class StepFailed(Exception):
    pass


def fail(result: dict, broker: Broker | None, name: str, message: str) -> StepFailed:
    """Records and prints a failed step (with the broker's log tail); returns the exception to raise."""
    if broker is not None and broker.proc is not None and broker.proc.poll() is not None:
        message += f" (the broker exited with status {broker.proc.returncode})"
    result["failed"] = {"step": name, "error": message}
    say(f"  FAILED at {name}: {message}")
    if broker is not None:
        say("  broker log tail:")
        for line in broker.log_tail().splitlines():
            say(f"  | {line}")
    return StepFailed(message)


@contextmanager
def step(result: dict, broker: Broker | None, name: str):
    """A step of a run: progress on stderr; any error (or the broker dying) fails the step,
    which ends the run of this count with StepFailed."""
    progress(f"[{result['label']}] {name} ...")
    t0 = time.perf_counter()
    try:
        yield
    except StepFailed as e:
        raise fail(result, broker, name, str(e)) from None
    except Exception as e:
        if not isinstance(e, (RuntimeError, OSError)):
            traceback.print_exc(file=sys.stderr)
        raise fail(result, broker, name, f"{type(e).__name__}: {e}") from None
    if broker is not None and broker.proc is not None and broker.proc.poll() is not None:
        raise fail(result, broker, name, "the broker exited")
    progress(f"[{result['label']}] {name} done in {time.perf_counter() - t0:.1f} s")


def topic_layout(n: int) -> dict[str, int]:
    """ceil(n / 10,000) topics: full ones, then the remainder."""
    sizes = [min(MAX_PARTITIONS_PER_TOPIC, n - i) for i in range(0, n, MAX_PARTITIONS_PER_TOPIC)]
    return {f"scale-{i}": size for i, size in enumerate(sizes)}


def restart_and_wait(broker: Broker, expected: dict[str, int], timeout: float) -> dict:
    spawned = time.perf_counter()
    listening = broker.start(timeout=timeout)
    ready = wait_for_metadata(broker, expected, spawned, spawned + timeout)
    return {"listening_s": listening, "ready_s": ready, "cpu_s": broker.cpu(),
            "rss_kb": broker.rss_kb(), "fds": broker.fds()}


def report_start(label: str, c: dict) -> None:
    say(f"  {label}: answers full Metadata {c['ready_s']:.2f} s after spawn (listening after "
        f"{c['listening_s']:.2f} s, broker CPU {c['cpu_s']:.1f} s); RSS {mib(c['rss_kb'])} MiB, "
        f"{c['fds']:,} open descriptors")


def report_produce(label: str, p: dict) -> None:
    trouble = (f"; {p['failed']:,} failed, {p['undelivered']:,} undelivered: {'; '.join(p['errors'])}"
               if p["failed"] or p["undelivered"] else "")
    say(f"  produce to {label}: {p['rate']:,.0f} records/s ({p['acked']:,} of {p['records']:,} "
        f"acknowledged in {p['seconds']:.2f} s), delivery latency p50 {fmt(p['p50_ms'], '.1f')} ms, "
        f"p99 {fmt(p['p99_ms'], '.1f')} ms; CPU broker {fmt(p.get('broker_cpu'))} s, "
        f"client {fmt(p.get('client_cpu'))} s{trouble}")


def report_verify(v: dict, when: str) -> None:
    verdict = "OK" if v["ok"] else "MISMATCH"
    unknown = f" (no offset for {v['partitions_unknown']:,}: {'; '.join(v['errors'])})" if v["partitions_unknown"] else ""
    say(f"  verify after {when}: {verdict}: high watermarks sum {v['high_watermarks']:,}, acknowledged "
        f"{v['acked']:,}, partitions differing {v['partitions_differ']:,}{unknown}")


def run_partitions(n: int, args, binary: str, settings: dict[str, str]) -> dict:
    topics = topic_layout(n)
    r: dict = {"label": f"{n:,} partitions", "partitions": n, "topics": len(topics)}
    say(f"\n== {n:,} partitions ({len(topics)} topic{'s' if len(topics) > 1 else ''} of "
        f"{', '.join(f'{c:,}' for c in topics.values())}) ==")
    tmp = tempfile.mkdtemp(prefix="sluice-scale-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    broker = Broker(binary, data, settings)
    RUNNING.append(broker)
    everything = dict(topics)
    acked: Counter = Counter()
    try:
        with step(r, broker, "start"):
            broker.start(timeout=args.start_timeout)

        with step(r, broker, f"create {n:,} partitions"):
            cpu0, t0 = broker.cpu(), time.perf_counter()
            errors = create_topics(broker.bootstrap, topics)
            elapsed = time.perf_counter() - t0
            if errors:
                shown = "; ".join(errors[:3]) + (f"; ... ({len(errors)} topics failed)" if len(errors) > 3 else "")
                raise StepFailed(f"CreateTopics failed after {elapsed:.1f} s: {shown}".replace(data, "$DATA"))
            r["create_s"] = elapsed
            r["create_cpu_s"] = broker.cpu() - cpu0
            say(f"  create: {r['create_s']:.2f} s wall for {n:,} partitions in one CreateTopics, "
                f"broker CPU {r['create_cpu_s']:.1f} s")
            r["rss_created_kb"], r["fds_created"] = broker.rss_kb(), broker.fds()
            say(f"  after create: RSS {mib(r['rss_created_kb'])} MiB, {r['fds_created']:,} open descriptors")

        with step(r, broker, "create the single-partition topic"):
            errors = create_topics(broker.bootstrap, {SINGLE_TOPIC: 1}, timeout=120)
            if errors:
                raise StepFailed(errors[0])
            everything[SINGLE_TOPIC] = 1

        with step(r, broker, "metadata"):
            wait_for_metadata(broker, everything, time.perf_counter(), time.perf_counter() + 120)
            m = time_metadata(broker.bootstrap, args.metadata_requests)
            r["metadata"] = m
            say(f"  metadata (raw socket, Metadata v1 all topics, {m['bytes'] / 1024:,.0f} KiB response, "
                f"{args.metadata_requests} requests): median {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms")

        targets = [(t, p) for t, c in topics.items() for p in range(c)]
        with step(r, broker, f"produce {args.records:,} records over {n:,} partitions"):
            pa = r["produce_all"] = produce(broker.bootstrap, targets, args.records, args.value_size, acked,
                                            broker_pid=broker.pid)
            report_produce(f"all {n:,} partitions", pa)
        with step(r, broker, f"produce {args.records:,} records to 1 partition"):
            p1 = r["produce_one"] = produce(broker.bootstrap, [(SINGLE_TOPIC, 0)], args.records, args.value_size,
                                            acked, broker_pid=broker.pid)
            report_produce("1 partition", p1)
        r["produce_ratio"] = pa["rate"] / p1["rate"] if p1["rate"] else None
        say(f"  ratio all-partitions / 1-partition throughput: {fmt(r['produce_ratio'])}")

        with step(r, broker, "clean restart (SIGTERM)"):
            r["shutdown_s"], r["shutdown_status"] = broker.stop(timeout=args.stop_timeout)
            say(f"  shutdown (SIGTERM -> exit): {r['shutdown_s']:.2f} s, exit status {r['shutdown_status']}")
            c = restart_and_wait(broker, everything, args.start_timeout)
            r["clean"] = c
            report_start("clean start", c)
        with step(r, broker, "verify after clean restart"):
            r["verify_clean"] = verify(broker.bootstrap, everything, acked)
            report_verify(r["verify_clean"], "clean restart")

        dirty = args.dirty_records if args.dirty_records is not None else args.records // 4
        with step(r, broker, f"unclean restart ({dirty:,} more records, then SIGKILL)"):
            pd = produce(broker.bootstrap, targets, dirty, args.value_size, acked, start=args.records)
            r["produce_dirty"] = pd
            broker.kill()
            u = restart_and_wait(broker, everything, args.start_timeout)
            r["unclean"] = u
            report_start(f"unclean start (SIGKILL after {pd['acked']:,} more acknowledged records)", u)
        with step(r, broker, "verify after unclean restart"):
            r["verify_unclean"] = verify(broker.bootstrap, everything, acked)
            report_verify(r["verify_unclean"], "unclean restart")
    except StepFailed:
        pass
    finally:
        broker.kill()
        RUNNING.remove(broker)
        shutil.rmtree(tmp, ignore_errors=True)
    return r


# ---------------------------------------------------------------------------
# Idle connections


def good_client_probe(records: int, rate: int, value_size: int):
    """The good client of the connection test, as a probe for idle_rss.measure()."""
    def probe(bootstrap: str) -> dict:
        from confluent_kafka import Producer

        topic = "scale-probe"
        errors = create_topics(bootstrap, {topic: 1}, timeout=60)
        if errors and "TOPIC_ALREADY_EXISTS" not in errors[0]:  # the second call finds it
            raise RuntimeError(f"probe topic: {errors[0]}")
        latencies: list[float] = []
        failed = [0]

        def delivered(err, msg):
            if err is not None:
                failed[0] += 1
            else:
                latencies.append(time.perf_counter() - struct.unpack_from(">d", msg.value())[0])

        p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0, "on_delivery": delivered})
        p.produce(topic, struct.pack(">d", time.perf_counter()), partition=0)  # connect, metadata
        p.flush(30)
        latencies.clear()
        padding = b"x" * max(0, value_size - 8)
        start = time.perf_counter()
        for i in range(records):
            due = start + i / rate
            while (delay := due - time.perf_counter()) > 0:
                p.poll(min(delay, 0.01))
            p.produce(topic, struct.pack(">d", time.perf_counter()) + padding, partition=0)
            p.poll(0)
        p.flush(60)
        lat = sorted(v * 1000 for v in latencies)
        return {"acked": len(lat), "failed": failed[0], "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else None}
    return probe


def run_connections(n: int, args, binary: str, settings: dict[str, str]) -> dict:
    r: dict = {"label": f"{n:,} connections", "connections": n}
    say(f"\n== {n:,} idle connections ==")
    os.environ["SLUICE_BIN"] = binary  # what compat/conftest.py's SluiceBroker runs
    try:
        with step(r, None, f"measure {n:,} idle connections (scripts/idle-connections-rss.py)"):
            m = idle_rss.measure(n, settings={"max.connections": str(n + 1000), **settings},
                                 probe=good_client_probe(args.probe_records, 1000, args.value_size))
            r.update(m)
    except StepFailed:
        return r
    before, idle = m["probe_before"], m["probe_idle"]
    r["kb_per_connection"] = m["growth_idle_kb"] * 1024 / n / 1000
    say(f"  RSS {mib(m['rss_before_kb'])} -> {mib(m['rss_idle_kb'])} MiB with {n:,} idle connections "
        f"(+{mib(m['growth_idle_kb'])} MiB, {r['kb_per_connection']:.1f} KB per connection); after one "
        f"ApiVersions on each {mib(m['rss_used_kb'])} MiB ({m['answered']:,} answered); after closing "
        f"them {mib(m['rss_after_close_kb'])} MiB; broker {'alive' if m['alive'] else 'DEAD'}")
    for label, p in (("without idle connections", before), (f"with {n:,} idle connections", idle)):
        say(f"  good producer (acks=1, linger.ms=0, {args.probe_records:,} records at 1,000/s) {label}: "
            f"p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, max {fmt(p['max_ms'])} ms"
            + (f" ({p['failed']} failed)" if p["failed"] else ""))
    return r


# ---------------------------------------------------------------------------
# Summary


def short_error(failed: dict, limit: int = 200) -> str:
    """A failure for a table cell: KafkaError{code=X,val=N,str="..."} as X: ..., no pipes."""
    error = re.sub(r'KafkaError\{code=(\w+),val=-?\d+,str="(.*?)"\}', r"\1: \2", failed["error"])
    error = error.replace("|", "/")
    if len(error) > limit:
        error = error[:limit - 3] + "..."
    return f"failed at {failed['step']}: {error}"


def summary(partition_results: list[dict], connection_results: list[dict], skipped: list[str], binary: str) -> None:
    say("\n## Summary\n")
    say(f"Broker `{binary}`, {os.cpu_count()} cores, open-file limit "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}.\n")
    if partition_results:
        say("| Partitions (topics) | Create | RSS / fds after create | Metadata p50 / p99 (size) "
            "| Produce, all partitions: rec/s (p99) | Produce, 1 partition: rec/s (p99) | Ratio "
            "| Shutdown | Clean start | Unclean start | RSS / fds after start | Records after restarts |")
        say("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in partition_results:
            m, pa, p1 = r.get("metadata"), r.get("produce_all"), r.get("produce_one")
            c, u = r.get("clean"), r.get("unclean")
            verdicts = [v for v in (r.get("verify_clean"), r.get("verify_unclean")) if v]
            cells = [
                f"{r['partitions']:,} ({r['topics']})",
                f"{r['create_s']:.2f} s" if "create_s" in r else "-",
                f"{mib(r['rss_created_kb'])} MiB / {r['fds_created']:,}" if "rss_created_kb" in r else "-",
                f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms ({m['bytes'] / 1024:,.0f} KiB)" if m else "-",
                f"{pa['rate']:,.0f} ({fmt(pa['p99_ms'], '.0f')} ms)" if pa else "-",
                f"{p1['rate']:,.0f} ({fmt(p1['p99_ms'], '.0f')} ms)" if p1 else "-",
                fmt(r.get("produce_ratio")),
                f"{r['shutdown_s']:.2f} s" if "shutdown_s" in r else "-",
                f"{c['ready_s']:.2f} s" if c else "-",
                f"{u['ready_s']:.2f} s" if u else "-",
                f"{mib(c['rss_kb'])} MiB / {c['fds']:,}" if c else "-",
                ("OK" if all(v["ok"] for v in verdicts) else "MISMATCH") if verdicts else "-",
            ]
            if "failed" in r:
                cells[-1] = short_error(r["failed"])
            say("| " + " | ".join(cells) + " |")
        say()
    if connection_results:
        say("| Idle connections | RSS before -> with them | Per connection | Good producer p99 without / with "
            "| After one request each |")
        say("|---|---|---|---|---|")
        for r in connection_results:
            if "failed" in r:
                say(f"| {r['connections']:,} | {short_error(r['failed'])} | | | |")
                continue
            b, i = r["probe_before"], r["probe_idle"]
            say(f"| {r['connections']:,} | {mib(r['rss_before_kb'])} -> {mib(r['rss_idle_kb'])} MiB "
                f"| {r['kb_per_connection']:.1f} KB | {b['p99_ms']:.2f} / {i['p99_ms']:.2f} ms "
                f"| {mib(r['rss_used_kb'])} MiB |")
        say()
    for line in skipped:
        say(f"- {line}")


def int_list(text: str) -> list[int]:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("counts must be >= 0")
    return [v for v in values if v > 0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int_list, default=None, help="partition counts (default 1000,10000,50000)")
    ap.add_argument("--connections", type=int_list, default=None,
                    help="idle connection counts (default 10000,50000; 0 skips)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: partitions 100,1000, connections 1000, 50,000 records")
    ap.add_argument("--records", type=int, default=None, help="records per produce run (default 200,000)")
    ap.add_argument("--dirty-records", type=int, default=None, help="records before the SIGKILL (default records/4)")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--metadata-requests", type=int, default=20)
    ap.add_argument("--probe-records", type=int, default=2000, help="good producer's records (at 1,000/s)")
    ap.add_argument("--start-timeout", type=float, default=600, help="seconds a (re)start may take")
    ap.add_argument("--stop-timeout", type=float, default=300, help="seconds a SIGTERM shutdown may take")
    ap.add_argument("--keep-going", action="store_true", help="try larger counts after a creation failure")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra broker setting")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = ap.parse_args()
    if args.partitions is None:
        args.partitions = [100, 1000] if args.quick else [1000, 10_000, 50_000]
    if args.connections is None:
        args.connections = [1000] if args.quick else [10_000, 50_000]
    if args.records is None:
        args.records = 50_000 if args.quick else 200_000

    binary = Path(os.environ.get("SLUICE_BIN", ".build-release/release/sluice"))
    if not binary.is_absolute():  # relative to the repository root, as compat/conftest.py has it
        binary = REPO / binary if (REPO / binary).exists() or not binary.exists() else binary.resolve()
    if not binary.exists():
        print(f"sluice binary {binary} not found: build it (swift build -c release --product sluice "
              "--scratch-path .build-release) or set SLUICE_BIN", file=sys.stderr)
        return 2
    binary = str(binary)
    settings = dict(kv.split("=", 1) for kv in args.set)

    # The broker raises its soft limit to the hard one; let this process (and the brokers
    # it spawns) have it too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else f"{hard:,}"
    say(f"bench-scale: broker {binary}; open-file limit {soft:,} (hard {shown_hard})")

    partition_results, connection_results, skipped = [], [], []
    interrupted = False
    try:
        for i, n in enumerate(args.partitions):
            r = run_partitions(n, args, binary, settings)
            partition_results.append(r)
            if r.get("failed", {}).get("step", "").startswith("create") and not args.keep_going:
                rest = args.partitions[i + 1:]
                if rest:
                    line = (f"skipped {', '.join(f'{v:,}' for v in rest)} partitions: creating {n:,} failed "
                            "(--keep-going tries them anyway)")
                    say(f"\n{line}")
                    skipped.append(line)
                break
        for n in args.connections:
            limit = hard if hard != resource.RLIM_INFINITY else None
            if limit is not None and n + DESCRIPTOR_HEADROOM > limit:
                line = (f"skipped {n:,} idle connections: each takes a descriptor in this process and one in "
                        f"the broker, so it needs an open-file limit of at least {n + DESCRIPTOR_HEADROOM:,} "
                        f"(N + {DESCRIPTOR_HEADROOM:,} spare), and RLIMIT_NOFILE here is {soft:,} soft / "
                        f"{limit:,} hard (raising the hard limit needs root: ulimit -Hn)")
                say(f"\n{line}")
                skipped.append(line)
                continue
            connection_results.append(run_connections(n, args, binary, settings))
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: the figures so far
        interrupted = True
        say("\ninterrupted")
    finally:
        kill_all()
    summary(partition_results, connection_results, skipped, binary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"binary": binary, "partitions": partition_results, "connections": connection_results,
                       "skipped": skipped}, f, indent=2, default=str)
    return 130 if interrupted else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        kill_all()

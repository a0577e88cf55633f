#!/usr/bin/env python3
"""A well-behaved client's latency with and without hostile clients hammering the broker.

Starts a release `sluice serve` (building it first with
`swift build -c release --product sluice --scratch-path .build-release` unless told not
to), then, for each round, measures a confluent-kafka producer at a fixed rate (acks=all,
linger.ms=0: every record is its own request) and a consumer reading the same partition:

- produce-ack latency: send time -> delivery report;
- end-to-end latency: send time -> the consumer has the record.

First alone (baseline), then while an abuse process runs from other loopback addresses
(127.0.0.2-9, so per-address limits would not protect the good client):

- thousands of idle connections that never send a byte;
- slow senders trickling a request frame one byte at a time;
- garbage bytes on fresh connections;
- oversized frame headers (size prefixes up to 2^31-1);
- a reconnect storm: connect, ApiVersions, close, as fast as the rate allows.

The good client runs throughout; phases alternate (baseline, abuse, baseline, ...) and each
record counts for the phase it was sent in, so load elsewhere on the machine (a build)
tends to hit both sides alike. Prints p50/p99/p99.9 over all baseline records and over all
records sent under abuse, and the ratio of the p99s (target: <= 2), plus per-round ratios.

The abusers stand for other machines: the point is whether the *broker* keeps serving the
good client, not whether two cores can also run the load generators. So the abuse process
runs under SCHED_IDLE by default: it gets the CPU only when nothing else wants it, yet it
still delivers the configured abuse (its counts are printed; compare them across modes).
At nice 10 it does not stay out of the way: Linux's EEVDF scheduler lets it finish its slice
before a woken client thread runs, and 200 tricklers alone (2,000 asyncio wake-ups/s) then
gave 3.3x at nice 10 against 1.03x under SCHED_IDLE, with the same bytes delivered and the
broker's CPU unchanged. `--abuse-sched nice` shows that figure.

    scripts/abuse-latency.py                 # 6 rounds of 8 s each way
    scripts/abuse-latency.py --rounds 2 --seconds 5 --idle 2000
    scripts/abuse-latency.py --sluice-bin .build/debug/sluice --no-build
    scripts/abuse-latency.py --abuse-elsewhere   # the same abuse, at a second broker
Exit status 1 if a ratio exceeds --max-ratio (default 2) or the broker dies.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import cpu_seconds, free_port, percentile, start_sluice, stop_process

REPO = Path(__file__).resolve().parent.parent
ABUSE_SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]


# ---------------------------------------------------------------------------
# Broker


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------
# The well-behaved client


def consumer_main(bootstrap: str, topic: str, ready, stop, results):
    from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "abuse-" + uuid.uuid4().hex[:8],
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    while True:  # ready once the end offset is resolved
        m = c.poll(0.1)
        if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            break
    ready.set()
    samples = []  # (send time, latency), ns
    idle_since = None
    while True:
        m = c.poll(0.1)
        now = time.time_ns()
        if m is None or m.error():
            # Done once the producer has stopped and nothing came for a second.
            if stop.is_set():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.0:
                    break
            continue
        idle_since = None
        (sent,) = struct.unpack_from(">q", m.value())
        samples.append((sent, now - sent))
    c.close()
    results.put(("e2e", samples))


def producer_main(bootstrap: str, topic: str, rate: int, value_size: int, stop, results):
    import threading

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    samples: list[tuple[int, int]] = []
    errors: list = []

    def on_delivery(err, msg):
        now = time.time_ns()
        if err:
            errors.append(err)
        else:
            sent = struct.unpack_from(">q", msg.value())[0]
            samples.append((sent, now - sent))

    # Delivery reports are served by a thread blocked in poll(), so each is timed the moment
    # librdkafka has it, and the pacing loop sleeps instead of spinning: poll(timeout)
    # truncates to whole milliseconds, so a pacing loop built on it spins for sub-millisecond
    # waits and keeps a core busy, which on 2 cores is load the broker then competes with.
    polling = threading.Event()

    def poller():
        while not polling.is_set():
            p.poll(0.05)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    padding = b"x" * max(0, value_size - 8)
    start = time.perf_counter()
    sent = 0
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate) + 1
        while sent < due:
            try:
                p.produce(topic, value=struct.pack(">q", time.time_ns()) + padding, partition=0,
                          on_delivery=on_delivery)
            except BufferError:
                time.sleep(0.001)
                continue
            sent += 1
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    left = p.flush(30)
    polling.set()
    thread.join()
    results.put(("ack", samples))
    results.put(("sent", sent))
    results.put(("errors", [str(e) for e in errors[:5]] + ([f"{len(errors)} delivery errors, {left} undelivered"]
                                                            if errors or left else [])))


def summarize(samples: list[tuple[int, int]], windows: list[tuple[int, int]]) -> dict:
    """Percentiles (ms) of the latencies of records sent inside any of the windows."""
    ms = sorted(lat / 1e6 for sent, lat in samples if any(a <= sent < b for a, b in windows))
    out = {q: percentile(ms, q) for q in (50, 99, 99.9)}
    out["max"] = ms[-1] if ms else float("nan")
    out["n"] = len(ms)
    return out


# ---------------------------------------------------------------------------
# The abusers (one asyncio process)


def header(api_key: int, version: int, correlation: int = 7, client_id: bytes = b"abuser") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


API_VERSIONS = frame(header(18, 0))


def abuse_main(port: int, opts: dict, ready, stop, results):
    if opts["sched"] == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif opts["sched"] == "nice":
        os.nice(10)
    try:
        asyncio.run(Abuse(port, opts).run(ready, stop, results))
    except Exception as e:  # report instead of dying silently
        results.put({"crash": repr(e)})


class Abuse:
    def __init__(self, port: int, opts: dict):
        self.port = port
        self.opts = opts
        self.stats = {k: 0 for k in ("idle_open", "idle_closed_by_broker", "trickle_bytes", "trickle_reconnects",
                                     "garbage", "oversized", "oversized_closed", "storm", "storm_answered",
                                     "connect_errors")}
        self.rng = random.Random(42)
        self.source_index = 0
        self.stopping = False

    def source(self) -> str:
        self.source_index += 1
        return ABUSE_SOURCES[self.source_index % len(ABUSE_SOURCES)]

    async def connect(self):
        try:
            return await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.source(), 0)), 5)
        except (OSError, asyncio.TimeoutError):
            self.stats["connect_errors"] += 1
            return None

    @staticmethod
    def close(writer) -> None:
        try:
            writer.close()
        except Exception:
            pass

    async def idle(self, n: int, held: list):
        for i in range(n):
            conn = await self.connect()
            if conn:
                held.append(conn)
                self.stats["idle_open"] += 1
            if i % 200 == 199:
                await asyncio.sleep(0.01)

    async def watch_idle(self, held: list):
        while not self.stopping:
            await asyncio.sleep(1)
            self.stats["idle_closed_by_broker"] = sum(1 for reader, _ in held if reader.at_eof())

    async def trickler(self, interval: float):
        while not self.stopping:
            conn = await self.connect()
            if conn is None:
                await asyncio.sleep(0.5)
                continue
            reader, writer = conn
            # One Metadata request padded to 4 KiB: at 10 B/s the frame would take 400 s.
            payload = frame(header(3, 1) + struct.pack(">i", -1) + b"\0" * 4096)
            try:
                for byte in payload:
                    if self.stopping:
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    self.stats["trickle_bytes"] += 1
                    await asyncio.sleep(interval)
            except (ConnectionError, OSError):
                self.stats["trickle_reconnects"] += 1
            self.close(writer)

    async def paced(self, rate: float, action):
        """Starts `action` `rate` times a second (at most 200 in flight)."""
        if rate <= 0:
            return
        inflight = asyncio.Semaphore(200)
        start = time.monotonic()
        started = 0

        async def run():
            try:
                await action()
            except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                pass
            finally:
                inflight.release()

        while not self.stopping:
            due = int((time.monotonic() - start) * rate)
            while started < due and not self.stopping:
                await inflight.acquire()
                asyncio.ensure_future(run())
                started += 1
            await asyncio.sleep(0.005)

    async def garbage(self):
        conn = await self.connect()
        if not conn:
            return
        reader, writer = conn
        if self.rng.random() < 0.5:
            data = self.rng.randbytes(self.rng.randrange(1, 4096))
        else:  # a plausible size prefix, then garbage of that size
            n = self.rng.randrange(8, 512)
            data = struct.pack(">i", n) + self.rng.randbytes(n)
        writer.write(data)
        self.stats["garbage"] += 1
        try:
            await asyncio.wait_for(reader.read(65536), 0.5)
        except asyncio.TimeoutError:
            pass
        self.close(writer)

    async def oversized(self):
        conn = await self.connect()
        if not conn:
            return
        reader, writer = conn
        size = self.rng.choice([2**31 - 1, 2_000_000_000, 200_000_000, 104_857_601, -1, -(2**31)])
        writer.write(struct.pack(">i", size) + header(0, 9) + self.rng.randbytes(1024))
        self.stats["oversized"] += 1
        try:
            if await asyncio.wait_for(reader.read(65536), 2) == b"":
                self.stats["oversized_closed"] += 1
        except asyncio.TimeoutError:
            pass
        self.close(writer)

    async def storm(self):
        conn = await self.connect()
        if not conn:
            return
        reader, writer = conn
        writer.write(API_VERSIONS)
        self.stats["storm"] += 1
        try:
            size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 2))[0]
            await asyncio.wait_for(reader.readexactly(size), 2)
            self.stats["storm_answered"] += 1
        except asyncio.TimeoutError:
            pass
        self.close(writer)

    async def run(self, ready, stop, results):
        o = self.opts
        held: list = []
        await self.idle(o["idle"], held)
        tasks = [asyncio.ensure_future(self.watch_idle(held))]
        tasks += [asyncio.ensure_future(self.trickler(o["trickle_interval"])) for _ in range(o["tricklers"])]
        tasks.append(asyncio.ensure_future(self.paced(o["garbage_rate"], self.garbage)))
        tasks.append(asyncio.ensure_future(self.paced(o["oversized_rate"], self.oversized)))
        tasks.append(asyncio.ensure_future(self.paced(o["storm_rate"], self.storm)))
        await asyncio.sleep(1)  # let every kind of abuse get going
        ready.set()
        started = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        self.stopping = True
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        for _, writer in held:
            self.close(writer)
        await asyncio.sleep(0.2)
        results.put(self.stats | {"seconds": round(elapsed, 1)})


# ---------------------------------------------------------------------------


def fmt(d: dict) -> str:
    return "p50 %5.2f  p99 %6.2f  p99.9 %6.2f  max %7.2f ms" % (d[50], d[99], d[99.9], d["max"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    ap.add_argument("--no-build", action="store_true", help="use --sluice-bin as it is")
    ap.add_argument("--rounds", type=int, default=6, help="baseline/abuse phase pairs")
    ap.add_argument("--seconds", type=float, default=8, help="length of each phase")
    ap.add_argument("--rate", type=int, default=1000, help="good client's records per second")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--idle", type=int, default=5000, help="idle connections")
    ap.add_argument("--tricklers", type=int, default=200, help="slow senders (one byte per --trickle-interval)")
    ap.add_argument("--trickle-interval", type=float, default=0.1)
    ap.add_argument("--garbage-rate", type=float, default=100, help="garbage connections per second")
    ap.add_argument("--oversized-rate", type=float, default=100, help="oversized-frame connections per second")
    ap.add_argument("--storm-rate", type=float, default=300, help="connect/ApiVersions/close per second")
    ap.add_argument("--abuse-sched", choices=["idle", "nice", "normal"], default="idle",
                    help="CPU priority of the abuse process: SCHED_IDLE, nice 10 or normal")
    ap.add_argument("--ip-rate", type=int, default=0,
                    help="set the default ip entity's connection_creation_rate quota (KIP-612) to this many "
                         "connections/s before the run (0: no quota)")
    ap.add_argument("--abuse-elsewhere", action="store_true",
                    help="aim the abuse at a second broker process instead: the machine carries the same load "
                         "(abusers, kernel, a broker serving them) but the measured broker serves only the good "
                         "client, which shows how much of the ratio the machine's contention alone makes")
    ap.add_argument("--max-ratio", type=float, default=2.0)
    args = ap.parse_args()

    if not args.no_build:
        print("building: swift build -c release --product sluice --scratch-path .build-release", flush=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "sluice", "--scratch-path", ".build-release"],
                       cwd=REPO, check=True)
    want = args.idle + args.tricklers + 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:  # the broker and the abuse process inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))

    tmp = tempfile.mkdtemp(prefix="sluice-abuse-")
    os.makedirs(os.path.join(tmp, "data"))
    settings = {"max.connections": str(args.idle + args.tricklers + 5000)}
    metrics_port = free_port()
    settings["metrics.listen"] = f"127.0.0.1:{metrics_port}"
    proc, bootstrap = start_sluice(args.sluice_bin, os.path.join(tmp, "data"), settings)

    def open_connections() -> str:
        """The broker's own count of open connections (its metrics endpoint)."""
        try:
            import urllib.request

            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            return next(line.split()[-1] for line in text.splitlines() if line.startswith("sluice_connections "))
        except Exception as e:  # report, do not fail the run for it
            return f"? ({e})"
    port = int(bootstrap.rsplit(":", 1)[1])
    other = None
    if args.abuse_elsewhere:
        os.makedirs(os.path.join(tmp, "other", "data"))
        other, other_bootstrap = start_sluice(args.sluice_bin, os.path.join(tmp, "other", "data"),
                                              {"max.connections": settings["max.connections"]})
        port = int(other_bootstrap.rsplit(":", 1)[1])
        print(f"abuse aimed at a second broker on {other_bootstrap}, not at the measured one")
    opts = {"idle": args.idle, "tricklers": args.tricklers, "trickle_interval": args.trickle_interval,
            "garbage_rate": args.garbage_rate, "oversized_rate": args.oversized_rate, "storm_rate": args.storm_rate,
            "sched": args.abuse_sched}
    print(f"broker: {args.sluice_bin} on {bootstrap}")
    print(f"good client: {args.rate} records/s of {args.value_size} B, acks=all, linger.ms=0; "
          f"{args.rounds} x ({args.seconds:g} s baseline, {args.seconds:g} s under abuse)")
    print(f"abuse (from {ABUSE_SOURCES[0]}-{ABUSE_SOURCES[-1]}, scheduling: {args.abuse_sched}): {args.idle} idle connections, "
          f"{args.tricklers} slow senders at {1 / args.trickle_interval:g} B/s each, {args.garbage_rate:g} garbage/s, "
          f"{args.oversized_rate:g} oversized frames/s, {args.storm_rate:g} reconnects/s", flush=True)
    ok = True
    windows: dict[str, list[tuple[int, int]]] = {"baseline": [], "abuse": []}
    usage: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "abuse": []}
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        if args.ip_rate > 0:
            sys.path.insert(0, str(REPO / "compat"))
            from helpers import set_quota

            set_quota(bootstrap, None, "connection_creation_rate", float(args.ip_rate), entity_type="ip")
            print(f"connection_creation_rate quota for every address: {args.ip_rate}/s")
        topic = "abuse-" + uuid.uuid4().hex[:8]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
        ctx = mp.get_context("spawn")
        ready, stop_client, results = ctx.Event(), ctx.Event(), ctx.Queue()
        cons = ctx.Process(target=consumer_main, args=(bootstrap, topic, ready, stop_client, results))
        cons.start()
        if not ready.wait(60):
            raise SystemExit("consumer did not become ready")
        prod = ctx.Process(target=producer_main,
                           args=(bootstrap, topic, args.rate, args.value_size, stop_client, results))
        prod.start()
        time.sleep(2)  # warm-up: connections, metadata, first batches

        def phase(kind: str) -> None:
            cpu0, t0, load0 = cpu_seconds(proc.pid), time.time_ns(), os.getloadavg()[0]
            time.sleep(args.seconds)
            t1 = time.time_ns()
            windows[kind].append((t0, t1))
            usage[kind].append(((cpu_seconds(proc.pid) - cpu0) / ((t1 - t0) / 1e9), rss_mib(proc.pid), load0))

        for r in range(args.rounds):
            phase("baseline")
            a_ready, a_stop, a_results = ctx.Event(), ctx.Event(), ctx.Queue()
            abuser = ctx.Process(target=abuse_main, args=(port, opts, a_ready, a_stop, a_results))
            abuser.start()
            if not a_ready.wait(120):
                raise SystemExit("abuse did not get going within 120 s")
            a_cpu0 = cpu_seconds(abuser.pid)
            phase("abuse")
            abuser_cpu = (cpu_seconds(abuser.pid) - a_cpu0) / args.seconds
            a_stop.set()
            stats = a_results.get(timeout=60)
            abuser.join(30)
            b_cpu, _, b_load = usage["baseline"][-1]
            a_cpu, a_rss, a_load = usage["abuse"][-1]
            print(f"round {r + 1}: broker CPU {b_cpu * 100:.0f}% -> {a_cpu * 100:.0f}% under abuse, RSS {a_rss:.0f} MiB, "
                  f"load average {b_load:.1f}/{a_load:.1f}; abuse process CPU {abuser_cpu * 100:.0f}%, {stats}", flush=True)
            if "crash" in stats:
                ok = False
            if proc.poll() is not None:
                print("the broker died", file=sys.stderr)
                raise SystemExit(1)
            time.sleep(1)  # the abusers' connections are gone before the next baseline
            print(f"         connections open after the abusers left: {open_connections()}", flush=True)

        stop_client.set()
        got = {}
        while len(got) < 4:
            kind, values = results.get(timeout=120)
            got[kind] = values
        prod.join(30)
        cons.join(30)
        if got["errors"]:
            print(f"good client errors: {got['errors']}")
            ok = False
        received = len(got["e2e"])
        print(f"good client: {got['sent']} sent, {len(got['ack'])} acknowledged, {received} consumed")
        if not (got["sent"] == len(got["ack"]) == received):
            ok = False
        print()
        for metric, name in (("ack", "produce-ack"), ("e2e", "end-to-end")):
            base = summarize(got[metric], windows["baseline"])
            under = summarize(got[metric], windows["abuse"])
            ratio = under[99] / base[99]
            verdict = "ok" if ratio <= args.max_ratio else f"OVER {args.max_ratio:g}x"
            print(f"{name:12} baseline    ({base['n']:6} records): {fmt(base)}")
            print(f"{name:12} under abuse ({under['n']:6} records): {fmt(under)}")
            print(f"{name:12} p99 ratio {ratio:.2f}x  [{verdict}]")
            # Per round, to show the spread the machine's other load causes.
            per_round = [(summarize(got[metric], [b])[99], summarize(got[metric], [a])[99])
                         for b, a in zip(windows["baseline"], windows["abuse"])]
            print(f"{name:12} per-round p99 ratios: " + " ".join(f"{a / b:.2f}" for b, a in per_round)
                  + "  (ms: " + ", ".join(f"{b:.2f}->{a:.2f}" for b, a in per_round) + ")")
            if ratio > args.max_ratio:
                ok = False
    finally:
        if other is not None:
            other.kill()
            other.wait()
        stop_process(proc, 30)
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

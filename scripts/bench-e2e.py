#!/usr/bin/env python3
"""End-to-end latency through a Kafka-compatible broker with confluent-kafka (librdkafka).

A producer process sends timestamped records at a fixed rate (default 10,000/s for 10 s)
with librdkafka's default producer settings; a consumer process (default settings, so
librdkafka's default fetch.wait.max.ms) reads them by assignment and computes
now - send time for each. Prints p50/p90/p99/p99.9/max.

    scripts/bench-e2e.py                       # starts .build-release/release/sluice itself
    scripts/bench-e2e.py --sluice-bin .build/debug/sluice
    scripts/bench-e2e.py --bootstrap 127.0.0.1:9092   # an already running broker (any)

The send time (time.time_ns() just before produce()) travels in the value, so the
figure has microsecond resolution; the record timestamp (ms) is set from the same clock.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import consumer_at_end, cpu_seconds, percentile, start_sluice, stop_process

REPO = Path(__file__).resolve().parent.parent


def consumer_main(bootstrap: str, topic: str, expected: int, ready, results, timeout: float, config: dict):
    c = consumer_at_end(bootstrap, topic, config)
    ready.set()
    latencies = []
    deadline = time.monotonic() + timeout
    while len(latencies) < expected and time.monotonic() < deadline:
        # poll(), not consume(n): consume() waits until n records or its timeout.
        m = c.poll(0.1)
        now = time.time_ns()
        if m is None or m.error():
            continue
        (sent,) = struct.unpack_from(">q", m.value())
        latencies.append(now - sent)
    c.close()
    results.put(latencies)


def producer_main(bootstrap: str, topic: str, rate: int, seconds: float, value_size: int, config: dict):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap}
    conf.update(config)
    p = Producer(conf)
    padding = b"x" * max(0, value_size - 8)
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            now = time.time_ns()
            try:
                p.produce(topic, value=struct.pack(">q", now) + padding, partition=0, timestamp=now // 1_000_000)
            except BufferError:
                p.poll(0.001)
                continue
            sent += 1
        p.poll(0)
        # Sleep until the next record is due (keeps pacing smooth without burning a core).
        next_due = start + sent / rate
        delay = next_due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    remaining = p.flush(30)
    if remaining:
        print(f"producer: {remaining} records not delivered", file=sys.stderr)
    print(f"producer: {total} records in {elapsed:.2f} s ({total / elapsed:,.0f}/s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="use a running broker instead of starting sluice")
    ap.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    ap.add_argument("--rate", type=int, default=10_000, help="records per second")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of results to drop at the start")
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka setting for both clients (e.g. -X fetch.wait.max.ms=100)")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.X)

    proc = None
    tmp = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        tmp = tempfile.mkdtemp(prefix="sluice-e2e-")
        os.makedirs(os.path.join(tmp, "data"))
        proc, bootstrap = start_sluice(args.sluice_bin, os.path.join(tmp, "data"))
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = "e2e-" + uuid.uuid4().hex[:8]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1)])[topic].result(15)

        total = int(args.rate * args.seconds)
        ctx = mp.get_context("spawn")
        ready, results = ctx.Event(), ctx.Queue()
        cons = ctx.Process(target=consumer_main,
                           args=(bootstrap, topic, total, ready, results, args.seconds + 30, extra))
        cons.start()
        if not ready.wait(30):
            raise SystemExit("consumer did not become ready")
        prod = ctx.Process(target=producer_main,
                           args=(bootstrap, topic, args.rate, args.seconds, args.value_size, extra))
        cpu0, t0 = (cpu_seconds(proc.pid) if proc else 0.0), time.monotonic()
        prod.start()
        latencies = results.get(timeout=args.seconds + 60)
        cpu_pct = ((cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100) if proc else None
        prod.join()
        cons.join()

        skip = int(args.rate * args.warmup)
        measured = sorted(latencies[skip:])
        ms = [v / 1e6 for v in measured]
        print(f"broker: {'sluice ' + args.sluice_bin if proc else bootstrap}")
        print(f"received {len(latencies)} of {total} records; latency over {len(ms)} "
              f"(first {args.warmup:g} s dropped), settings {extra or 'librdkafka defaults'}:")
        print("  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms" % (
            percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), percentile(ms, 99.9),
            ms[-1] if ms else float("nan")))
        if cpu_pct is not None:
            print(f"  broker CPU {cpu_pct:.1f}% of a core while producing and consuming")
        if len(latencies) < total:
            sys.exit(1)
    finally:
        if proc is not None:
            stop_process(proc)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

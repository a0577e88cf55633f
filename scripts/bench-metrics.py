#!/usr/bin/env python3
"""Broker CPU cost of metrics at 100,000 records/s.

Runs the same produce load (confluent-kafka, paced to --rate records/s of 100 B, batched by
librdkafka's defaults (or --linger 0: one request per record), over 8 partitions, with a consumer group reading along) against the
broker three ways, alternating over --rounds: without scrapes, with a scrape of /metrics
every second, and (with --baseline-bin) a binary built before the swift-metrics
instrumentation, without scrapes. Prints the broker's CPU per second of load (median over
rounds) and the ratios.

  scripts/bench-metrics.py [--bin .build-static/release/sluice] [--baseline-bin OLD] [--rate 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluiceproc import cpu_seconds, free_port, start_sluice, stop_process


def run(binary: str, rate: int, seconds: float, scrape: bool, linger: float) -> tuple[float, int]:
    work = tempfile.mkdtemp(prefix="bench-metrics-")
    metrics_port = free_port()
    os.makedirs(f"{work}/data")
    proc, bootstrap = start_sluice(binary, f"{work}/data", extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"])
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("load", 8, replication_factor=1)])["load"].result(timeout=30)
        stop = threading.Event()
        consumed = [0]

        def consume():
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "readers", "auto.offset.reset": "earliest"})
            c.subscribe(["load"])
            while not stop.is_set():
                consumed[0] += len([m for m in c.consume(10000, 0.2) if not m.error()])
            c.close()

        reader = threading.Thread(target=consume)
        reader.start()
        scrapes = [0]

        def scraper():
            while not stop.is_set():
                urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
                scrapes[0] += 1
                stop.wait(1.0)

        scraping = threading.Thread(target=scraper) if scrape else None
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger, "queue.buffering.max.messages": 1_000_000})
        value = b"v" * 100
        time.sleep(1)  # the consumer joins
        if scraping:
            scraping.start()
        before = cpu_seconds(proc.pid)
        started = time.monotonic()
        sent = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            while sent < due:
                try:
                    p.produce("load", value=value)
                    sent += 1
                except BufferError:
                    p.poll(0.001)
            p.poll(0)
            time.sleep(0.001)
        p.flush(30)
        cpu = cpu_seconds(proc.pid) - before
        stop.set()
        reader.join()
        if scraping:
            scraping.join()
        return cpu / (time.monotonic() - started), sent
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build-static/release/sluice")
    parser.add_argument("--baseline-bin")
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--linger", type=float, default=5, help="the producer's linger.ms (0: a request per record)")
    args = parser.parse_args()
    cases = [("metrics, no scrape", args.bin, False), ("metrics, scrape every 1 s", args.bin, True)]
    if args.baseline_bin:
        cases.append(("before swift-metrics, no scrape", args.baseline_bin, False))
    results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for round_number in range(args.rounds):
        for name, binary, scrape in cases:
            core, sent = run(binary, args.rate, args.seconds, scrape, args.linger)
            results[name].append(core)
            print(f"round {round_number + 1}: {name:<34} {core * 100:5.1f}% of a core ({sent / args.seconds:,.0f} records/s)",
                  flush=True)
    base = statistics.median(results[cases[0][0]])
    print(f"\nBroker CPU at {args.rate:,} records/s of 100 B, linger.ms={args.linger:g} "
          f"(median of {args.rounds} rounds of {args.seconds:.0f} s):")
    for name, _, _ in cases:
        median = statistics.median(results[name])
        print(f"  {name:<34} {median * 100:5.1f}% of a core, {median / args.rate * 1e6:5.1f} µs per record   "
              f"ratio {median / base:.3f}")


if __name__ == "__main__":
    main()

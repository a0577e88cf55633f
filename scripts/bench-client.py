#!/usr/bin/env python3
"""The Swift client (`KafkaClient`, through `sluice bench`) next to confluent-kafka
(librdkafka) in the same run, against one release `sluice serve`:

  produce  N records of S bytes to a fresh 1-partition topic (acks=all, idempotent, linger
           5 ms), with the Swift producer's `send` (fire-and-forget, delivery reports as
           events), `sendAndAwait` from 1,000 tasks at once (each awaits its record, so the
           rate is about tasks / (linger + round trip)), and `enqueue`; and with
           confluent-kafka's `produce` + delivery callbacks (the same settings);
  consume  the N records as a group member from the beginning: the Swift consumer's
           `messages` sequence, and confluent-kafka's `consume(500)` batches, with
           librdkafka's defaults and with `fetch.queue.backoff.ms=0` (with the defaults some
           rounds stall about 1 s: librdkafka postpones fetching by that backoff when its
           prefetch queue is over its thresholds). Consumer ratios are against the faster
           of the two.

Each round runs every client once, the order rotating; it prints records/s per client per
round and the medians, and each Swift figure's ratio to confluent-kafka's. The client's
process CPU is not separated from the broker's: both run on this 2-core machine.

  swift build -c release --product sluice --scratch-path .build-release
  scripts/bench-client.py [--records 500000] [--size 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluiceproc import start_sluice


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def swift_bench(binary: str, args: list[str]) -> float:
    out = subprocess.run([binary, "bench", *args], check=True, capture_output=True, text=True, timeout=600)
    match = re.search(r"([0-9]+) records/s", out.stdout)
    assert match, out.stdout + out.stderr
    return float(match.group(1))


def confluent_produce(bootstrap: str, topic: str, records: int, size: int) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    value = b"x" * size
    p.produce(topic, value)
    p.flush(30)
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    p.flush(120)
    elapsed = time.perf_counter() - start
    assert not failures, failures[:3]
    return records / elapsed


def confluent_consume(bootstrap: str, topic: str, records: int, **extra) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": True, **extra})
    c.subscribe([topic])
    count = 0
    start = None
    deadline = time.monotonic() + 300
    while count < records and time.monotonic() < deadline:
        for message in c.consume(500, 1.0):
            if message.error():
                continue
            if start is None:
                start = time.perf_counter()
            count += 1
    elapsed = time.perf_counter() - start
    c.close()
    assert count >= records, f"read {count} of {records}"
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build-release/release/sluice")
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1000, help="tasks awaiting sends at once")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-client-")
    data = f"{work}/data"
    os.makedirs(data)
    proc, bootstrap = start_sluice(args.binary, data)
    common = ["--bootstrap", bootstrap]
    produce = {
        "swift send": lambda t: swift_bench(args.binary, [
            "produce", *common, "--topic", t, "--records", str(args.records),
            "--record-size", str(args.size), "--mode", "send"]),
        f"swift sendAndAwait x{args.concurrency}": lambda t: swift_bench(args.binary, [
            "produce", *common, "--topic", t, "--records", str(args.records),
            "--record-size", str(args.size), "--mode", "send-and-await", "--concurrency", str(args.concurrency)]),
        "swift enqueue": lambda t: swift_bench(args.binary, [
            "produce", *common, "--topic", t, "--records", str(args.records),
            "--record-size", str(args.size), "--mode", "enqueue"]),
        "confluent-kafka produce": lambda t: confluent_produce(bootstrap, t, args.records, args.size),
    }
    consume = {
        "swift group consumer": lambda t: swift_bench(args.binary, [
            "consume", *common, "--topic", t, "--records", str(args.records),
            "--group", f"bench-{uuid.uuid4().hex[:8]}"]),
        "confluent-kafka group consumer": lambda t: confluent_consume(bootstrap, t, args.records),
        "confluent-kafka, queue backoff 0": lambda t: confluent_consume(
            bootstrap, t, args.records, **{"fetch.queue.backoff.ms": 0}),
    }
    results: dict[str, list[float]] = {name: [] for name in [*produce, *consume]}
    try:
        for round_ in range(args.rounds):
            names = list(produce)
            names = names[round_ % len(names):] + names[:round_ % len(names)]
            filled = None
            for name in names:
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                create_topic(bootstrap, topic)
                rate = produce[name](topic)
                results[name].append(rate)
                filled = filled or topic
                print(f"round {round_ + 1}: {name}: {rate:,.0f} records/s", flush=True)
            # Each consumer reads the first topic of the round, which holds the round's records
            # (plus the warm-up record).
            order = list(consume)
            for name in order[round_ % len(order):] + order[:round_ % len(order)]:
                rate = consume[name](filled)
                results[name].append(rate)
                print(f"round {round_ + 1}: {name}: {rate:,.0f} records/s", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"\nmedians over {args.rounds} rounds, {args.records:,} records of {args.size} B, one partition:")
    for name, value in medians.items():
        peer = medians["confluent-kafka produce"] if name in produce else max(
            medians["confluent-kafka group consumer"], medians["confluent-kafka, queue backoff 0"])
        print(f"  {name:32} {value:12,.0f} records/s   {value / peer:5.2f}x confluent-kafka")


if __name__ == "__main__":
    main()

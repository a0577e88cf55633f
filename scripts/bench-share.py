#!/usr/bin/env python3
"""Throughput of a share group (work queue, KIP-932) against a classic consumer group, with
confluent-kafka (librdkafka 2.16) workers, each its own process.

A topic of 8 partitions is filled with N records (default 200,000 of 100 B) before each
run. Then W workers (1, 3 and 8) drain it, as members of a share group (ShareConsumer,
implicit acknowledgement: each poll accepts the previous batch) or of a classic consumer
group (Consumer, auto commit). Records/s counts from the first record any worker got to the
last; broker CPU is the broker's user+system time over the run, per million records. The
two kinds alternate over --rounds rounds (default 3), each round on a fresh group, and
the medians are printed.

    scripts/bench-share.py                      # starts .build-release/release/sluice
    scripts/bench-share.py --records 500000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import cpu_seconds, start_sluice

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 8


def worker(bootstrap: str, kind: str, group: str, topic: str, idle_s: float) -> None:
    """Reads until the topic has been idle for `idle_s`; prints count, first and last times."""
    from confluent_kafka import Consumer, ShareConsumer

    if kind == "share":
        consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    else:
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
        )
    consumer.subscribe([topic])
    count, first, last = 0, None, None
    idle_since = time.monotonic()
    print("ready", flush=True)
    while time.monotonic() - idle_since < idle_s:
        if kind == "share":
            got = sum(1 for m in consumer.poll(0.2) if not m.error())
        else:
            got = sum(1 for m in consumer.consume(500, 0.2) if not m.error())
        if got:
            now = time.time()
            first = first or now
            last = now
            count += got
            idle_since = time.monotonic()
    consumer.close()
    print(json.dumps({"count": count, "first": first, "last": last}), flush=True)


def fill(bootstrap: str, topic: str, records: int, size: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    value = b"x" * size
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(60) == 0


def start_at_earliest(bootstrap: str, group: str) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
    for future in admin.incremental_alter_configs(
        [ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])]
    ).values():
        future.result(timeout=15)


def run(bootstrap: str, broker_pid: int, kind: str, workers: int, topic: str, records: int) -> dict:
    group = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    if kind == "share":
        start_at_earliest(bootstrap, group)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", bootstrap, kind, group, topic],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    cpu_before = cpu_seconds(broker_pid)
    results = [json.loads(proc.stdout.readline()) for proc in procs]
    cpu_after = cpu_seconds(broker_pid)
    for proc in procs:
        proc.wait(timeout=30)
    got = sum(r["count"] for r in results)
    firsts = [r["first"] for r in results if r["first"]]
    lasts = [r["last"] for r in results if r["last"]]
    seconds = max(lasts) - min(firsts) if firsts else float("nan")
    return {
        "records": got,
        "rate": got / seconds if seconds > 0 else float("nan"),
        # The broker's CPU over the run includes the idle tail the workers wait out (2 s of
        # heartbeats and empty long polls: negligible next to the drain).
        "cpu_per_million": (cpu_after - cpu_before) / max(got, 1) * 1e6,
        "busy_workers": sum(1 for r in results if r["count"]),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6], idle_s=2.0)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,3,8")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    work = tempfile.mkdtemp(prefix="bench-share-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    proc, bootstrap = start_sluice(args.sluice_bin, data)
    figures: dict[tuple[str, int], list[dict]] = {}
    try:
        for round_index in range(args.rounds):
            for workers in worker_counts:
                kinds = ["share", "classic"] if round_index % 2 == 0 else ["classic", "share"]
                for kind in kinds:
                    topic = f"bench-{uuid.uuid4().hex[:8]}"
                    fill(bootstrap, topic, args.records, args.size)
                    result = run(bootstrap, proc.pid, kind, workers, topic, args.records)
                    if result["records"] < args.records:
                        print(f"  warning: {kind} x{workers} read {result['records']} of {args.records}")
                    figures.setdefault((kind, workers), []).append(result)
                    print(
                        f"round {round_index + 1} {kind:7} x{workers}: {result['rate']:>9,.0f} records/s, "
                        f"broker {result['cpu_per_million']:.2f} CPU-s per million, "
                        f"{result['busy_workers']} workers got records",
                        flush=True,
                    )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians over {args.rounds} rounds, {args.records:,} records of {args.size} B, {PARTITIONS} partitions:")
    print(f"{'workers':>7}  {'share rec/s':>12}  {'classic rec/s':>13}  {'ratio':>5}  "
          f"{'share CPU-s/M':>13}  {'classic CPU-s/M':>15}")
    for workers in worker_counts:
        share = figures[("share", workers)]
        classic = figures[("classic", workers)]
        share_rate = statistics.median(r["rate"] for r in share)
        classic_rate = statistics.median(r["rate"] for r in classic)
        print(
            f"{workers:>7}  {share_rate:>12,.0f}  {classic_rate:>13,.0f}  {share_rate / classic_rate:>5.2f}  "
            f"{statistics.median(r['cpu_per_million'] for r in share):>13.2f}  "
            f"{statistics.median(r['cpu_per_million'] for r in classic):>15.2f}"
        )


if __name__ == "__main__":
    main()

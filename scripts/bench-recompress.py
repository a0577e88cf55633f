#!/usr/bin/env python3
"""What `compression.type` costs: a topic that stores another codec than its producers send
recompresses every batch on the broker (issue #15).

For each case a confluent-kafka producer (librdkafka's defaults, linger.ms=5) writes
RECORDS records of about 200 compressible bytes to a fresh one-partition topic; the script
prints the producer's records/s, the broker's CPU seconds per million records (from
/proc/PID/stat) and the bytes stored on disk, as the median of RUNS runs. The first row,
compression.type=producer (the bytes stored as they came), is the baseline every other row's
CPU is compared with, measured in the same run.

    scripts/bench-recompress.py                    # release binary at .build-release/release/sluice
    SLUICE_BIN=.build/debug/sluice RECORDS=100000 RUNS=1 scripts/bench-recompress.py
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sluiceproc import cpu_seconds, start_sluice

REPO = Path(__file__).resolve().parent.parent
BINARY = os.environ.get("SLUICE_BIN", str(REPO / ".build-release/release/sluice"))
RECORDS = int(os.environ.get("RECORDS", "500000"))
RUNS = int(os.environ.get("RUNS", "3"))

# (producer codec, topic compression.type)
CASES = [
    ("lz4", "producer"),
    ("lz4", "zstd"),
    ("lz4", "gzip"),
    ("lz4", "snappy"),
    ("lz4", "uncompressed"),
    ("none", "lz4"),
    ("none", "zstd"),
]


def payloads() -> list[bytes]:
    rng = random.Random(7)
    words = [b"order", b"customer", b"amount", b"EUR", b"USD", b"status", b"shipped", b"pending", b"sku"]
    return [b" ".join(rng.choice(words) + str(rng.randrange(10_000)).encode() for _ in range(22))[:200]
            for _ in range(1000)]


def run_case(bootstrap: str, pid: int, data_dir: str, codec: str, topic_codec: str, values) -> tuple:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-{codec}-{topic_codec}-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, config={"compression.type": topic_codec})])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5,
                  "queue.buffering.max.messages": 1_000_000})
    cpu0 = cpu_seconds(pid)
    start = time.monotonic()
    for i in range(RECORDS):
        while True:
            try:
                p.produce(topic, values[i % len(values)], partition=0)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(300)
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu0
    stored = sum(f.stat().st_size for f in Path(data_dir, f"{topic}-0").glob("*.log"))
    return RECORDS / elapsed, cpu / RECORDS * 1e6, stored


def main() -> None:
    if not Path(BINARY).exists():
        sys.exit(f"{BINARY} not found: swift build -c release --scratch-path .build-release --product sluice")
    values = payloads()
    results: dict[tuple, list] = {case: [] for case in CASES}
    for run in range(RUNS):
        work = tempfile.mkdtemp(prefix="sluice-recompress-")
        data_dir = os.path.join(work, "data")
        os.makedirs(data_dir)
        proc, bootstrap = start_sluice(BINARY, data_dir)
        try:
            for case in CASES:
                results[case].append(run_case(bootstrap, proc.pid, data_dir, *case, values))
        finally:
            proc.terminate()
            proc.wait(30)
            shutil.rmtree(work, ignore_errors=True)
        print(f"run {run + 1}/{RUNS} done", file=sys.stderr)

    base_cpu = [r[1] for r in results[CASES[0]]]
    print(f"{RECORDS} records of ~200 B, median of {RUNS} runs, {BINARY}")
    print(f"{'producer → topic':28} {'records/s':>10} {'CPU-s/M':>8} {'× producer':>10} {'stored MB':>10}")
    for case in CASES:
        rows = results[case]
        ratios = [row[1] / base for row, base in zip(rows, base_cpu)]
        print(f"{case[0] + ' → ' + case[1]:28} {statistics.median(r[0] for r in rows):>10,.0f} "
              f"{statistics.median(r[1] for r in rows):>8.2f} {statistics.median(ratios):>10.2f} "
              f"{statistics.median(r[2] for r in rows) / 1e6:>10.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The broker's cost per small request, counted: heap allocations and CPU time per Produce
request and per woken Fetch, for one or two sluice binaries in the same run (issue #25).

The broker runs with scripts/malloc-count.c preloaded (built here with gcc), which counts
every glibc allocation and reports the count on SIGUSR2. A confluent-kafka producer sends
N records one request at a time (produce, then flush: exactly one Produce request each,
linger.ms=0, acks=1, 100 B):

  produce      N Produce requests, nobody reading;
  produce+fetch  the same with a consumer (another process, assigned at the end of the
               partition) that the producer waits for after each record, so every record
               wakes exactly one parked Fetch and is followed by the next Fetch parking.

Per request = (count after - count before) / N; a woken Fetch costs the difference of the
two. CPU is the broker's user+system time over the same window (/proc/PID/stat).
Allocation counts barely move from run to run; CPU time is noisy on a shared machine
(medians of --rounds are printed). valgrind (callgrind) would count instructions, but
Debian 12's valgrind 3.19 stops with an internal error as the broker starts its first
thread, and this VM exposes no hardware counters to perf.

    scripts/bench-requests.py                                  # .build-release/release/sluice
    scripts/bench-requests.py --baseline-bin /tmp/sluice-old   # before/after in one run
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import consumer_at_end, cpu_seconds, free_port, stop_process, wait_until_accepting

REPO = Path(__file__).resolve().parent.parent


def consumer_main(bootstrap: str, topic: str, ready, received):
    c = consumer_at_end(bootstrap, topic)
    ready.set()
    while True:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.value() == b"stop":
            break
        with received.get_lock():
            received.value += 1
    c.close()


class Broker:
    def __init__(self, binary: str, shim: str, workdir: str):
        self.data = os.path.join(workdir, "data-" + uuid.uuid4().hex[:6])
        os.makedirs(self.data)
        self.count_file = os.path.join(workdir, "count-" + uuid.uuid4().hex[:6])
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        env = dict(os.environ, LD_PRELOAD=shim, MALLOC_COUNT_FILE=self.count_file)
        self.proc = subprocess.Popen([binary, "serve", "--listen", self.bootstrap, "--data-dir", self.data],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_accepting(self.proc, port, binary)

    def allocations(self) -> int:
        if os.path.exists(self.count_file):
            os.unlink(self.count_file)
        self.proc.send_signal(signal.SIGUSR2)
        for _ in range(200):
            try:
                text = open(self.count_file).read()
                if text:
                    return int(text)
            except OSError:
                pass
            time.sleep(0.005)
        raise SystemExit("no allocation count from the broker")

    def stop(self):
        stop_process(self.proc)


def measure(broker: Broker, records: int, with_consumer: bool) -> tuple[float, float]:
    """(allocations, CPU µs) per record."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "req-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept alive until the result
    admin.create_topics([NewTopic(topic, 1)])[topic].result(15)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": 1,
                         "enable.idempotence": False})
    value = b"x" * 100
    for _ in range(50):  # warm-up: connections, metadata, first segment
        producer.produce(topic, value, partition=0)
        producer.flush(10)
    consumer = None
    received = mp.Value("q", 0)
    if with_consumer:
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        received = ctx.Value("q", 0)
        consumer = ctx.Process(target=consumer_main, args=(broker.bootstrap, topic, ready, received))
        consumer.start()
        ready.wait(30)
        time.sleep(0.3)
    allocations0, cpu0 = broker.allocations(), cpu_seconds(broker.proc.pid)
    for i in range(records):
        producer.produce(topic, value, partition=0)
        producer.flush(10)
        if with_consumer:
            deadline = time.monotonic() + 10
            while received.value < i + 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the consumer stopped receiving")
                time.sleep(0)
    allocations1, cpu1 = broker.allocations(), cpu_seconds(broker.proc.pid)
    if consumer is not None:
        producer.produce(topic, b"stop", partition=0)
        producer.flush(10)
        consumer.join(30)
    return (allocations1 - allocations0) / records, (cpu1 - cpu0) / records * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    ap.add_argument("--baseline-bin", help="a second binary measured in the same run (before)")
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="sluice-requests-")
    shim = os.path.join(workdir, "malloc-count.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", shim, str(REPO / "scripts/malloc-count.c")], check=True)
    binaries = {"after": a.sluice_bin}
    if a.baseline_bin:
        binaries = {"before": a.baseline_bin, "after": a.sluice_bin}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for rnd in range(a.rounds):
            names = list(binaries) if rnd % 2 == 0 else list(reversed(binaries))
            for name in names:
                broker = Broker(binaries[name], shim, workdir)
                try:
                    for mode in ("produce", "produce+fetch"):
                        r = measure(broker, a.records, mode == "produce+fetch")
                        results.setdefault((name, mode), []).append(r)
                        print(f"round {rnd + 1} {name:<6} {mode:<14} {r[0]:8.1f} allocations  {r[1]:7.1f} µs CPU"
                              " per record", flush=True)
                finally:
                    broker.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = statistics.median
    print(f"\nPer request, medians of {a.rounds} rounds of {a.records} records:")
    print(f"{'binary':<7} {'Produce allocs':>14} {'Produce µs':>10} {'woken Fetch allocs':>18} {'woken Fetch µs':>14}")
    for name in binaries:
        p = results[(name, "produce")]
        b = results[(name, "produce+fetch")]
        pa, pc = med(x[0] for x in p), med(x[1] for x in p)
        fa = med(y[0] - x[0] for x, y in zip(p, b))
        fc = med(y[1] - x[1] for x, y in zip(p, b))
        print(f"{name:<7} {pa:>14.1f} {pc:>10.1f} {fa:>18.1f} {fc:>14.1f}")


if __name__ == "__main__":
    main()

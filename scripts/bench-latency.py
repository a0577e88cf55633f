#!/usr/bin/env python3
"""Small-request latency: Sluice against Redis Streams, in one run (issue #25).

For each rate (default 1k, 10k and 50k records/s) a paced producer process and a consumer
process woken per record run against each broker in turn, the order alternating round by
round; each record carries its send time (time.time_ns(), the same wall clock in every
process) in its first 8 bytes and the consumer takes now - send time.

  Sluice   confluent-kafka (librdkafka), linger.ms=0 and acks=1 (every record is its own
           request), consumer by assignment from the end: a parked Fetch woken per record
           (librdkafka defaults: fetch.wait.max.ms=500, fetch.min.bytes=1).
  Redis    redis-server (Debian's), started here with persistence off (--save "",
           --appendonly no); redis-py (with hiredis when installed), one XADD per record,
           the consumer in XREAD BLOCK.
  Swift    (--clients swift or both) `sluice bench produce --rate` and `sluice bench
           consume --latency`: Sluice's own client on both ends, no Python in the path.

Both brokers start once and serve every trial (a new topic or stream each). Printed per
rate: medians over the rounds of p50/p99/p99.9 end-to-end latency, broker CPU per record
(from /proc/PID/stat: 10 ms ticks) and each client's CPU (its rusage), then the ratios
Sluice/Redis taken within each round, as medians.

    scripts/bench-latency.py                       # starts .build-release/release/sluice
    scripts/bench-latency.py --rounds 5 --seconds 8 --rates 10000
    scripts/bench-latency.py --clients both        # adds the Swift-client rows
    scripts/bench-latency.py --set log.flush.interval.messages=1   # Sluice settings
    scripts/bench-latency.py --baseline-bin /tmp/sluice-old      # an older build beside it

Storage differs, stated: Sluice writes every record to its log file (page cache, its
default); Redis keeps the stream in memory. `--sluice-memory` makes the topic a memory
topic (sluice.storage=memory) for a like-for-like row.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sluiceproc import (consumer_at_end, cpu_seconds, free_port, percentile, start_sluice, stop_process,
                        wait_until_accepting)

REPO = Path(__file__).resolve().parent.parent
SELF = Path(__file__).resolve()


# --- client roles (each runs in its own process) -----------------------------------------

def pace(rate: int, total: int, send, poll=lambda: None):
    """Calls send(now_ns) `total` times at `rate` per second, sleeping between records."""
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            send(time.time_ns())
            sent += 1
        poll()
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return time.perf_counter() - start


def own_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def role_kafka_producer(a):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 0, "acks": 1,
                  "enable.idempotence": False})
    padding = b"x" * max(0, a.value_size - 8)
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(err)

    def send(now):
        while True:
            try:
                p.produce(a.topic, value=struct.pack(">q", now) + padding, partition=0,
                          timestamp=now // 1_000_000, on_delivery=report)
                return
            except BufferError:
                p.poll(0.001)

    elapsed = pace(a.rate, a.total, send, lambda: p.poll(0))
    left = p.flush(30)
    print(json.dumps({"elapsed": elapsed, "undelivered": left, "failed": len(failures)}))


def role_kafka_consumer(a):
    c = consumer_at_end(a.bootstrap, a.topic)
    print("ready", flush=True)
    out = array.array("q")
    deadline = time.monotonic() + a.timeout
    while len(out) < a.total and time.monotonic() < deadline:
        m = c.poll(0.1)
        now = time.time_ns()
        if m is None or m.error():
            continue
        out.append(now - struct.unpack_from(">q", m.value())[0])
    c.close()
    with open(a.out, "wb") as f:
        out.tofile(f)


def redis_client(a):
    import redis
    host, port = a.bootstrap.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port))


def role_redis_producer(a):
    r = redis_client(a)
    padding = b"x" * max(0, a.value_size - 8)
    key = a.topic
    elapsed = pace(a.rate, a.total, lambda now: r.xadd(key, {"v": struct.pack(">q", now) + padding}))
    print(json.dumps({"elapsed": elapsed, "undelivered": 0, "failed": 0}))


def role_redis_consumer(a):
    r = redis_client(a)
    key = a.topic
    last = "0-0"  # the stream is new to this trial: from its start, so nothing sent after "ready" is missed
    r.ping()
    print("ready", flush=True)
    out = array.array("q")
    deadline = time.monotonic() + a.timeout
    while len(out) < a.total and time.monotonic() < deadline:
        reply = r.xread({key: last}, block=100)
        now = time.time_ns()
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append(now - struct.unpack_from(">q", fields[b"v"])[0])
                last = entry_id
    with open(a.out, "wb") as f:
        out.tofile(f)


ROLES = {"kafka-producer": role_kafka_producer, "kafka-consumer": role_kafka_consumer,
         "redis-producer": role_redis_producer, "redis-consumer": role_redis_consumer}


# --- the driver ---------------------------------------------------------------------------

def start_redis(binary: str, workdir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(os.path.join(workdir, "redis.log"), "ab")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir, "--protected-mode", "no"],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_until_accepting(proc, port, "redis-server")
    return proc, f"127.0.0.1:{port}"


def wait_with_cpu(proc: subprocess.Popen, timeout: float) -> float:
    """Waits for a child and returns its user + system CPU seconds (wait4's rusage)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise SystemExit(f"client {proc.args} exited with {proc.returncode}")
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"client {proc.args} timed out")
        time.sleep(0.01)


def client_commands(kind: str, a, bootstrap: str, topic: str, rate: int, total: int, out: str):
    if kind == "swift":
        base = [a.sluice_bin, "bench"]
        common = ["--bootstrap", bootstrap, "--topic", topic]
        producer = base + ["produce", *common, "--records", str(total), "--rate", str(rate),
                           "--record-size", str(a.value_size), "--acks", "1", "--linger-ms", "0",
                           "--no-idempotence", "--mode", "send"]
        consumer = base + ["consume", *common, "--records", str(total), "--latency-out", out,
                           "--from-end"]
        return producer, consumer
    prefix = "redis" if kind == "redis" else "kafka"
    common = ["--bootstrap", bootstrap, "--topic", topic, "--total", str(total),
              "--value-size", str(a.value_size), "--rate", str(rate), "--out", out,
              "--timeout", str(a.seconds + 30)]
    py = [sys.executable, str(SELF)]
    return py + ["--role", prefix + "-producer", *common], py + ["--role", prefix + "-consumer", *common]


def trial(kind: str, a, broker_pid: int, bootstrap: str, rate: int, workdir: str) -> dict:
    topic = "lat-" + uuid.uuid4().hex[:8]
    if kind in ("python", "swift", "baseline"):
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        config = {"sluice.storage": "memory"} if a.sluice_memory else {}
        admin.create_topics([NewTopic(topic, 1, config=config)])[topic].result(15)
    total = int(rate * a.seconds)
    out = os.path.join(workdir, topic + ".lat")
    prod_cmd, cons_cmd = client_commands(kind, a, bootstrap, topic, rate, total, out)
    cons = subprocess.Popen(cons_cmd, stdout=subprocess.PIPE, text=True)
    line = cons.stdout.readline()
    if line.strip() != "ready":
        cons.kill()
        raise SystemExit(f"{kind} consumer did not become ready: {line!r}")
    cpu0 = cpu_seconds(broker_pid)
    prod = subprocess.Popen(prod_cmd, stdout=subprocess.PIPE, text=True)
    producer_cpu = wait_with_cpu(prod, a.seconds + 60)
    producer_report = prod.stdout.read()
    consumer_cpu = wait_with_cpu(cons, a.seconds + 60)
    broker_cpu = cpu_seconds(broker_pid) - cpu0
    lat = array.array("q")
    with open(out, "rb") as f:
        lat.frombytes(f.read())
    os.unlink(out)
    skip = min(len(lat), int(rate * a.warmup))
    ms = sorted(v / 1e6 for v in lat[skip:])
    result = {"received": len(lat), "total": total,
              "p50": percentile(ms, 50), "p99": percentile(ms, 99), "p999": percentile(ms, 99.9),
              "broker_us": broker_cpu / total * 1e6, "producer_us": producer_cpu / total * 1e6,
              "consumer_us": consumer_cpu / total * 1e6}
    try:
        result["elapsed"] = json.loads(producer_report.strip().splitlines()[-1])["elapsed"]
    except (ValueError, IndexError, KeyError):
        # `sluice bench produce`: "N records, B bytes in S s: ..."
        words = producer_report.split()
        result["elapsed"] = float(words[words.index("in") + 1]) if "in" in words else a.seconds
    # The rate the producer reached (a Python client cannot send single requests at every rate).
    result["achieved"] = total / max(result["elapsed"], 1e-9)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--total", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60, help=argparse.SUPPRESS)
    ap.add_argument("--sluice-bin", default=str(REPO / ".build-release/release/sluice"))
    ap.add_argument("--redis-bin", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--baseline-bin", help="a second sluice binary (an older build) measured in the same run, "
                    "with the confluent-kafka clients")
    ap.add_argument("--rates", default="1000,10000,50000", help="records per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=5, help="per trial")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of results dropped per trial")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--clients", choices=["python", "swift", "both"], default="python",
                    help="Sluice's clients: confluent-kafka (beside Redis), Sluice's Swift client, or both")
    ap.add_argument("--sluice-memory", action="store_true", help="memory topics (sluice.storage=memory)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a Sluice setting")
    a = ap.parse_args()
    if a.role:
        ROLES[a.role](a)
        return

    rates = [int(r) for r in a.rates.split(",")]
    kinds = {"python": ["python", "redis"], "swift": ["swift"], "both": ["python", "redis", "swift"]}[a.clients]
    if a.baseline_bin:
        kinds = kinds + ["baseline"]
    workdir = tempfile.mkdtemp(prefix="sluice-latency-")
    os.makedirs(os.path.join(workdir, "data"))
    settings = dict(kv.split("=", 1) for kv in a.set)
    sluice, sluice_bootstrap = start_sluice(a.sluice_bin, os.path.join(workdir, "data"), settings)
    baseline = None
    if a.baseline_bin:
        os.makedirs(os.path.join(workdir, "baseline", "data"))
        baseline, baseline_bootstrap = start_sluice(a.baseline_bin, os.path.join(workdir, "baseline", "data"), settings)
    redis = None
    if "redis" in kinds:
        redis, redis_bootstrap = start_redis(a.redis_bin, workdir)
    results: dict[tuple[int, str], list[dict]] = {}
    try:
        for rnd in range(a.rounds):
            for rate in rates:
                order = kinds if rnd % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    pid, boot = {"redis": lambda: (redis.pid, redis_bootstrap),
                                 "baseline": lambda: (baseline.pid, baseline_bootstrap)}.get(
                        kind, lambda: (sluice.pid, sluice_bootstrap))()
                    r = trial(kind, a, pid, boot, rate, workdir)
                    results.setdefault((rate, kind), []).append(r)
                    print(f"round {rnd + 1} {rate:>6}/s {kind:<6} sent at {r['achieved']:,.0f}/s, "
                          f"received {r['received']}/{r['total']}  "
                          f"p50 {r['p50']:.3f}  p99 {r['p99']:.3f}  p99.9 {r['p999']:.3f} ms  "
                          f"broker {r['broker_us']:.1f} µs/rec  producer {r['producer_us']:.1f}  "
                          f"consumer {r['consumer_us']:.1f}", flush=True)
    finally:
        for proc in (sluice, redis, baseline):
            if proc is not None:
                stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)

    names = {"python": "sluice (confluent-kafka)", "redis": "redis streams (redis-py)",
             "swift": "sluice (Swift client)", "baseline": "baseline sluice (c-k)"}
    print(f"\nMedians of {a.rounds} rounds, {a.seconds:g} s per trial, {a.value_size} B records"
          f"{', Sluice memory topics' if a.sluice_memory else ''}:")
    print(f"{'rate/s':>7} {'broker':<26} {'sent/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
          f"{'broker µs/rec':>13} {'prod µs/rec':>11} {'cons µs/rec':>11} {'lost':>5}")
    med = statistics.median
    failed = False
    for rate in rates:
        for kind in kinds:
            rs = results[(rate, kind)]
            lost = sum(r["total"] - r["received"] for r in rs)
            failed |= lost > 0
            print(f"{rate:>7} {names[kind]:<26} {med(r['achieved'] for r in rs):>7,.0f} "
                  f"{med(r['p50'] for r in rs):>7.3f} {med(r['p99'] for r in rs):>7.3f} "
                  f"{med(r['p999'] for r in rs):>8.3f} {med(r['broker_us'] for r in rs):>13.1f} "
                  f"{med(r['producer_us'] for r in rs):>11.1f} {med(r['consumer_us'] for r in rs):>11.1f} {lost:>5}")
        if "redis" in kinds:
            pairs = list(zip(results[(rate, "python")], results[(rate, "redis")]))
            ratio = {k: med(s[k] / r[k] for s, r in pairs) for k in ("p50", "p99", "p999", "broker_us")}
            print(f"{rate:>7} {'ratio sluice/redis':<26} {'':>7} {ratio['p50']:>7.2f} {ratio['p99']:>7.2f} "
                  f"{ratio['p999']:>8.2f} {ratio['broker_us']:>13.2f}")
        if "baseline" in kinds:
            pairs = list(zip(results[(rate, "python")], results[(rate, "baseline")]))
            ratio = {k: med(s[k] / b[k] for s, b in pairs) for k in ("p50", "p99", "p999", "broker_us")}
            print(f"{rate:>7} {'ratio sluice/baseline':<26} {'':>7} {ratio['p50']:>7.2f} {ratio['p99']:>7.2f} "
                  f"{ratio['p999']:>8.2f} {ratio['broker_us']:>13.2f}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

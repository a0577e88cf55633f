#!/usr/bin/env python3
"""The HTTP front door against the Kafka protocol, on one `sluice serve --http-listen`.

(a) Produce throughput: N records of --record-bytes (default 100) through the REST Proxy v2
    API (POST /topics/T, --format binary (default) or json, --batch records per request) from
    --connections keep-alive connections, against the same records produced with
    confluent-kafka (librdkafka's default linger and acks=all, one producer per
    connection's worth). The two alternate over --rounds; medians and REST/Kafka ratios of
    records/s and broker CPU-seconds per million records are printed.

    The REST client is one process per connection (multiprocessing), each with one
    http.client.HTTPConnection reused for all its requests; every request body is encoded
    before the clock starts and a response is checked by counting its `"error_code":null`,
    so the client does little per request. The clients' own CPU is printed beside the
    broker's: on a 2-core machine they share the cores.

(b) Server-Sent Events end-to-end latency: a producer process sends --sse-rate records/s
    for --sse-seconds with confluent-kafka, the send time (time.time_ns()) as the value's
    text; a reader process holds GET /v1/topics/T/events open and computes receive - send
    per event. Prints p50/p99/p99.9/max (the first --warmup seconds dropped).

(c) Webhook deliveries/s: --webhook-records records (4 partitions) produced first, then a
    webhook subscription from the beginning to a local receiver (an asyncio process that
    answers 200 at once and counts); prints deliveries/s until all arrived and the broker's
    CPU per delivery.

    scripts/bench-http.py                                 # .build-release/release/sluice
    scripts/bench-http.py --sluice-bin /tmp/sluice --records 20000 --rounds 1 --sse-seconds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64encode
from pathlib import Path

from sluiceproc import cpu_seconds, free_port, percentile, stop_process

REPO = Path(__file__).resolve().parent.parent
BINARY_CT = "application/vnd.kafka.binary.v2+json"
JSON_CT = "application/vnd.kafka.json.v2+json"


def default_binary() -> str:
    # Where the other bench scripts' release build lives:
    #   swift build -c release --product sluice --scratch-path .build-release
    return str(REPO / ".build-release/release/sluice")


def start_sluice(binary: str, work: str, settings: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    """`sluice serve` with --http-listen, both on free loopback ports; returns (process,
    bootstrap, http base URL) once both accept connections."""
    port = free_port()
    http_port = free_port()
    while http_port == port:
        http_port = free_port()
    data = os.path.join(work, "data")
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http_port}",
           "--data-dir", data]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    log = open(os.path.join(work, "sluice.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    for p in (port, http_port):
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"sluice exited with {proc.returncode}; see {work}/sluice.log")
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise SystemExit("sluice did not start")
                time.sleep(0.02)
    return proc, f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])[topic].result(15)


def record_value(i: int, size: int) -> bytes:
    return (b"%012d" % i + b"x" * size)[:size]


# ---------------------------------------------------------------------------
# (a) produce throughput workers: each prepares, reports ready, waits for go, runs, reports.


def rest_worker(url: str, topic: str, first: int, count: int, batch: int, size: int, fmt: str, ready, go, results):
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = []
    for start in range(first, first + count, batch):
        n = min(batch, first + count - start)
        if fmt == "binary":
            records = [{"value": b64encode(record_value(i, size)).decode()} for i in range(start, start + n)]
        else:  # a JSON string: stored as its JSON text, quotes included (2 bytes more)
            records = [{"value": record_value(i, size - 2).decode()} for i in range(start, start + n)]
        bodies.append((n, json.dumps({"records": records}).encode()))
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Content-Type": BINARY_CT if fmt == "binary" else JSON_CT, "Accept": "application/vnd.kafka.v2+json"}
    ready.set()
    go.wait()
    cpu0 = time.process_time()
    errors = 0
    for n, body in bodies:
        conn.request("POST", f"/topics/{topic}", body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200 or answer.count(b'"error_code":null') != n:
            errors += n
    end = time.monotonic()
    conn.close()
    results.put((end, count, errors, time.process_time() - cpu0))


def kafka_worker(bootstrap: str, topic: str, first: int, count: int, batch: int, size: int, fmt: str, ready, go,
                 results):
    from confluent_kafka import Producer

    values = [record_value(i, size) for i in range(first, first + count)]
    p = Producer({"bootstrap.servers": bootstrap})  # librdkafka defaults (linger.ms 5, acks all)
    p.list_topics(topic, timeout=10)  # metadata and connection before the clock starts
    failed = []

    def on_delivery(err, _msg):
        if err:
            failed.append(err)

    ready.set()
    go.wait()
    cpu0 = time.process_time()
    for v in values:
        while True:
            try:
                p.produce(topic, value=v, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)
    remaining = p.flush(60)
    end = time.monotonic()
    results.put((end, count, len(failed) + remaining, time.process_time() - cpu0))


def produce_round(kind: str, proc, bootstrap: str, url: str, args) -> dict:
    topic = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, args.partitions)
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    share = [args.records // args.connections + (1 if i < args.records % args.connections else 0)
             for i in range(args.connections)]
    workers, readies = [], []
    first = 0
    for n in share:
        ready = ctx.Event()
        target = rest_worker if kind == "rest" else kafka_worker
        where = url if kind == "rest" else bootstrap
        w = ctx.Process(target=target, args=(where, topic, first, n, args.batch, args.record_bytes, args.format, ready, go,
                                                 results))
        w.start()
        workers.append(w)
        readies.append(ready)
        first += n
    for ready in readies:
        if not ready.wait(120):
            raise SystemExit(f"{kind} client did not get ready")
    cpu0 = cpu_seconds(proc.pid)
    start = time.monotonic()
    go.set()
    outcomes = [results.get(timeout=600) for _ in workers]
    end = max(o[0] for o in outcomes)
    cpu1 = cpu_seconds(proc.pid)
    for w in workers:
        w.join()
    count = sum(o[1] for o in outcomes)
    errors = sum(o[2] for o in outcomes)
    if errors:
        print(f"  {kind}: {errors} records failed", file=sys.stderr)
    elapsed = end - start
    return {"rps": count / elapsed, "seconds": elapsed, "cpu_per_m": (cpu1 - cpu0) / count * 1e6,
            "client_cpu": sum(o[3] for o in outcomes), "broker_cpu": cpu1 - cpu0}


# ---------------------------------------------------------------------------
# (b) SSE latency


def sse_reader(url: str, topic: str, expected: int, timeout: float, ready, results):
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", f"/v1/topics/{topic}/events?from=end", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    latencies: list[int] = []
    pending = b""
    deadline = time.monotonic() + timeout
    signalled = False
    while len(latencies) < expected and time.monotonic() < deadline:
        chunk = response.read1(65536)
        now = time.time_ns()
        if not chunk:
            break
        pending += chunk
        *blocks, pending = pending.split(b"\n\n")
        for block in blocks:
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    latencies.append(now - int(event["value"]))
        if not signalled:  # the opening block (positions resolved) has arrived
            ready.set()
            signalled = True
    conn.close()
    results.put(latencies)


def paced_producer(bootstrap: str, topic: str, rate: int, seconds: float):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    p.list_topics(topic, timeout=10)
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            try:
                p.produce(topic, value=b"%d" % time.time_ns(), partition=0)
            except BufferError:
                p.poll(0.001)
                continue
            sent += 1
        p.poll(0)
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    remaining = p.flush(30)
    if remaining:
        print(f"producer: {remaining} records not delivered", file=sys.stderr)
    print(f"  producer: {total} records in {elapsed:.2f} s ({total / elapsed:,.0f}/s)", flush=True)


def sse_latency(proc, bootstrap: str, url: str, args) -> None:
    topic = f"bench-sse-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    total = int(args.sse_rate * args.sse_seconds)
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=sse_reader, args=(url, topic, total, args.sse_seconds + 30, ready, results))
    reader.start()
    if not ready.wait(30):
        raise SystemExit("SSE reader did not become ready")
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    producer = ctx.Process(target=paced_producer, args=(bootstrap, topic, args.sse_rate, args.sse_seconds))
    producer.start()
    latencies = results.get(timeout=args.sse_seconds + 60)
    cpu_pct = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    producer.join()
    reader.join()
    skip = int(args.sse_rate * args.warmup)
    ms = sorted(v / 1e6 for v in latencies[skip:])
    print(f"  received {len(latencies)} of {total} events; latency over {len(ms)} (first {args.warmup:g} s dropped):")
    print("  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms   (broker CPU %.1f%% of a core)" % (
        percentile(ms, 50), percentile(ms, 99), percentile(ms, 99.9), ms[-1] if ms else float("nan"), cpu_pct))


def webhook_receiver(port: int, expected: int, ready, results):
    import asyncio

    count = 0

    async def handle(reader, writer):
        nonlocal count
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            count += 1
            if count == 1:
                results.put(("first", time.monotonic()))
            if count == expected:
                results.put(("last", time.monotonic()))
        finally:
            writer.close()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def webhook_throughput(proc, bootstrap: str, url: str, args) -> None:
    topic = f"bench-webhook-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 4)
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(args.webhook_records):
        p.produce(topic, value=record_value(i, args.record_bytes), partition=i % 4)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(60)
    port = free_port()
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    receiver = ctx.Process(target=webhook_receiver, args=(port, args.webhook_records, ready, results), daemon=True)
    receiver.start()
    if not ready.wait(30):
        raise SystemExit("webhook receiver did not start")
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    body = json.dumps({"name": f"bench-{uuid.uuid4().hex[:6]}", "topic": topic,
                       "url": f"http://127.0.0.1:{port}/hook", "from": "beginning",
                       "secret": "whsec_" + b64encode(os.urandom(24)).decode()}).encode()
    host, _, http_port = url.removeprefix("http://").rstrip("/").partition(":")
    connection = http.client.HTTPConnection(host, int(http_port), timeout=30)
    connection.request("POST", "/v1/webhooks", body=body, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 201:
        raise SystemExit(f"webhook create failed: {answer.status}")
    marks = {}
    while "last" not in marks:
        kind, at = results.get(timeout=600)
        marks[kind] = at
    cpu = cpu_seconds(proc.pid) - cpu0
    elapsed = marks["last"] - t0
    receiver.terminate()
    print(f"  {args.webhook_records:,} deliveries in {elapsed:.2f} s: {args.webhook_records / elapsed:,.0f} "
          f"deliveries/s (signed, one connection per delivery); broker {cpu / args.webhook_records * 1e6:.0f} "
          f"cpu-us per delivery", flush=True)


# ---------------------------------------------------------------------------


def versions(binary: str) -> str:
    import confluent_kafka

    client = confluent_kafka.version()
    client = client[0] if isinstance(client, tuple) else client
    parts = [f"python {platform.python_version()}",
             f"confluent-kafka {client} (librdkafka {confluent_kafka.libversion()[0]})"]
    try:
        git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if git:
            parts.append(f"sluice tree {git}")
    except OSError:
        pass
    try:
        st = os.stat(binary)
        parts.append(f"binary {binary} ({st.st_size / 1e6:.0f} MB, built {time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))})")
    except OSError:
        pass
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice-bin", default=default_binary())
    ap.add_argument("--records", type=int, default=200_000, help="records per measurement (N)")
    ap.add_argument("--record-bytes", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100, help="records per REST request (B)")
    ap.add_argument("--connections", type=int, default=4,
                    help="REST keep-alive connections (K), one client process each; as many Kafka producers")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--format", choices=("binary", "json"), default="binary",
                    help="REST embedded format: base64 values, or JSON strings")
    ap.add_argument("--rounds", type=int, default=3, help="REST and Kafka measurements, alternating")
    ap.add_argument("--sse-rate", type=int, default=1000, help="events per second")
    ap.add_argument("--sse-seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1.0, help="SSE: seconds of results to drop at the start")
    ap.add_argument("--skip-produce", action="store_true")
    ap.add_argument("--skip-sse", action="store_true")
    ap.add_argument("--webhook-records", type=int, default=5000)
    ap.add_argument("--skip-webhooks", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.sluice_bin):
        raise SystemExit(f"{args.sluice_bin} not found: swift build -c release --product sluice (or --sluice-bin)")

    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {platform.platform()}")
    print(f"versions: {versions(args.sluice_bin)}")
    work = tempfile.mkdtemp(prefix="sluice-bench-http-")
    proc = None
    try:
        proc, bootstrap, url = start_sluice(args.sluice_bin, work, {})
        print(f"broker: {bootstrap}, HTTP {url}", flush=True)
        if not args.skip_produce:
            print(f"(a) produce {args.records:,} x {args.record_bytes} B, {args.partitions} partitions, "
                  f"{args.connections} connections; REST: {args.format} format, {args.batch} records/request; "
                  f"Kafka: confluent-kafka defaults", flush=True)
            rounds = {"rest": [], "kafka": []}
            for r in range(args.rounds):
                for kind in (("rest", "kafka") if r % 2 == 0 else ("kafka", "rest")):
                    result = produce_round(kind, proc, bootstrap, url, args)
                    rounds[kind].append(result)
                    print(f"  round {r + 1} {kind:5s} {result['rps']:>10,.0f} records/s  {result['seconds']:6.2f} s  "
                          f"broker {result['cpu_per_m']:6.2f} cpu-s/M  clients {result['client_cpu']:.2f} cpu-s",
                          flush=True)
            med = {k: {m: statistics.median(x[m] for x in v) for m in ("rps", "cpu_per_m")} for k, v in rounds.items()}
            for kind in ("rest", "kafka"):
                print(f"  median {kind:5s} {med[kind]['rps']:>10,.0f} records/s  broker {med[kind]['cpu_per_m']:.2f} "
                      f"cpu-s per million records")
            print(f"  REST / Kafka: throughput {med['rest']['rps'] / med['kafka']['rps']:.2f}x, "
                  f"broker CPU per record {med['rest']['cpu_per_m'] / med['kafka']['cpu_per_m']:.2f}x", flush=True)
        if not args.skip_sse:
            print(f"(b) SSE latency: {args.sse_rate}/s for {args.sse_seconds:g} s, produced with confluent-kafka "
                  f"(defaults), read as GET /v1/topics/T/events", flush=True)
            sse_latency(proc, bootstrap, url, args)
        if not args.skip_webhooks:
            print(f"(c) webhooks: {args.webhook_records:,} records x {args.record_bytes} B in 4 partitions to a local "
                  f"receiver", flush=True)
            webhook_throughput(proc, bootstrap, url, args)
    finally:
        if proc is not None:
            stop_process(proc, 30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What TLS and SASL cost: one release `sluice serve` with PLAINTEXT, SSL, SASL_PLAINTEXT and
SASL_SSL listeners; for each, confluent-kafka produces N records (librdkafka defaults,
acks=all) to a fresh topic, then a consumer reads them back. Prints records/s and broker CPU
seconds per million records for produce and for fetch, medians over the rounds (listeners
take turns going first), and each listener's ratio to PLAINTEXT. Fetch on PLAINTEXT
sends record data from the segment files with sendfile; on TLS listeners it is read and
copied through the TLS encoder.

  swift build -c release --product sluice --scratch-path .build-release
  scripts/bench-tls.py [--records 200000] [--size 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer

from sluiceproc import cpu_seconds, free_port

PASSWORD = "bench-secret"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build-release/release/sluice")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-bench-tls-")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=bench CA", cwd=work)
    with open(os.path.join(work, "san.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj",
            "/CN=localhost", cwd=work)
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "broker.pem", "-days", "1", "-extfile", "san.cnf", cwd=work)
    data = os.path.join(work, "data")
    subprocess.run([args.binary, "user", "add", "bench", "--data-dir", data], input=PASSWORD + "\n", text=True,
                   check=True, capture_output=True)
    ports = {}
    while len(set(ports.values())) < 4:
        ports = {p: free_port() for p in ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]}
    cmd = [args.binary, "serve", "--data-dir", data]
    for protocol, port in ports.items():
        cmd += ["--listen", f"{protocol}://127.0.0.1:{port}"]
    for key, value in {"ssl.certificate.location": f"{work}/broker.pem", "ssl.key.location": f"{work}/broker.key",
                       "super.users": "User:bench", "allow.everyone.if.no.acl.found": "true"}.items():
        cmd += ["--set", f"{key}={value}"]
    log = open(os.path.join(work, "sluice.log"), "ab")
    broker = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    if broker.poll() is not None:
        sys.exit(f"sluice exited: {open(os.path.join(work, 'sluice.log')).read()}")

    def conf(protocol):
        c = {"bootstrap.servers": f"127.0.0.1:{ports[protocol]}", "security.protocol": protocol}
        if "SASL" in protocol:
            c.update({"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench", "sasl.password": PASSWORD})
        if "SSL" in protocol:
            c["ssl.ca.location"] = f"{work}/ca.pem"
        return c

    value = os.urandom(args.size)
    results = {p: {"produce": [], "fetch": [], "produce_cpu": [], "fetch_cpu": []} for p in ports}
    order = list(ports)
    for round_number in range(args.rounds):
        # Each round starts with the next listener, so none always runs first (after the
        # previous round's writeback) or last.
        for protocol in order[round_number % len(order):] + order[:round_number % len(order)]:
            topic = f"bench-{protocol.lower()}-{round_number}"
            producer = Producer({**conf(protocol), "acks": "all"})
            cpu0, t0 = cpu_seconds(broker.pid), time.monotonic()
            for _ in range(args.records):
                while True:
                    try:
                        producer.produce(topic, value)
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.flush(120)
            elapsed, cpu = time.monotonic() - t0, cpu_seconds(broker.pid) - cpu0
            results[protocol]["produce"].append(args.records / elapsed)
            results[protocol]["produce_cpu"].append(cpu / args.records * 1e6)

            consumer = Consumer({**conf(protocol), "group.id": topic, "auto.offset.reset": "earliest",
                                 "enable.auto.commit": False, "fetch.message.max.bytes": 1 << 20})
            consumer.subscribe([topic])
            read = 0
            started = None
            while read < args.records:
                batch = consumer.consume(10_000, 10)
                if batch and started is None:
                    started = (time.monotonic(), cpu_seconds(broker.pid))
                read += sum(1 for m in batch if not m.error())
            elapsed = time.monotonic() - started[0]
            cpu = cpu_seconds(broker.pid) - started[1]
            consumer.close()
            results[protocol]["fetch"].append(read / elapsed)
            results[protocol]["fetch_cpu"].append(cpu / read * 1e6)
            print(f"round {round_number + 1} {protocol:15} produce {results[protocol]['produce'][-1]:9.0f} rec/s  "
                  f"fetch {results[protocol]['fetch'][-1]:9.0f} rec/s", flush=True)
    broker.terminate()
    broker.wait(30)

    base = {k: statistics.median(v) for k, v in results["PLAINTEXT"].items()}
    print(f"\n{args.records} records of {args.size} B, medians of {args.rounds} rounds "
          "(broker CPU-s per million records; ratio to PLAINTEXT)")
    print(f"{'listener':15} {'produce rec/s':>14} {'CPU-s/M':>8} {'fetch rec/s':>12} {'CPU-s/M':>8}")
    for protocol, figures in results.items():
        m = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{protocol:15} {m['produce']:>9.0f} ({m['produce'] / base['produce']:.2f}) "
              f"{m['produce_cpu']:>5.2f} ({m['produce_cpu'] / base['produce_cpu']:.2f}) "
              f"{m['fetch']:>9.0f} ({m['fetch'] / base['fetch']:.2f}) "
              f"{m['fetch_cpu']:>5.2f} ({m['fetch_cpu'] / base['fetch_cpu']:.2f})")


if __name__ == "__main__":
    main()

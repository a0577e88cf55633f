#!/usr/bin/env python3
"""Figures of the UDP features (docs/udp.md), in a network namespace of their own
(compat/netns.py; lo's MTU set to 1,500 as on Ethernet, so feeds pack 1,472-byte datagrams):

  latency   multicast end-to-end latency, produce → receiver, at each --rates (records/s,
            default 10k and 100k) for --seconds: a paced confluent-kafka producer
            (linger.ms 1: small batches) puts its send time (time.time_ns(), one clock
            for every process here) in each value; the receiver takes now − send time
            on arrival. Three
            receivers, in separate runs: `python` (an independent MoldUDP64 decoder,
            compat/moldudp64.py), `cli` (`sluice feed listen`, each stdout line
            timestamped when read), and the peer `kafka`: a confluent-kafka consumer of the
            same topic from the same broker (a parked fetch woken on append). p50/p99/max in µs, the first --warmup s dropped.
  recovery  gap recovery at 10k records/s with --loss random loss (iptables -m statistic on
            the group): the Python receiver asks the retransmission server itself as soon as
            a packet reveals a gap; `sluice feed listen` runs alongside (the kernel drops a
            datagram for every socket at once, so both miss the same records). Reported: the
            end-to-end latency of recovered records, their delay over the run's median (the
            time from the dropped datagram's expected arrival to the record's delivery), and
            for the Python receiver the time from detecting the gap to the answer.
  statsd    StatsD lines/s ingested by the broker (`--statsd-listen`) from --statsd-senders
            Python processes blasting one or 20 lines per datagram for --seconds: lines from
            sluice_statsd_lines_total, CPU from /proc/PID/stat; lines per CPU-second is the
            per-core figure. Kernel drops are shown (a sender outruns the broker on purpose).

Each figure is the median over --rounds rounds.

    swift build -c release --product sluice --scratch-path .build-release
    scripts/bench-udp.py                                   # release build, defaults (~2-3 min)
    scripts/bench-udp.py --bin .build/debug/sluice --rounds 1 --rates 10000
    scripts/bench-udp.py --tests statsd --statsd-senders 2

Needs root (ip netns, iptables).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat"))
sys.path.insert(0, str(REPO / "scripts"))

import moldudp64 as mold  # noqa: E402
from netns import NetNS, NsBroker  # noqa: E402
from sluiceproc import cpu_seconds, percentile  # noqa: E402

GROUP = "239.8.0.1"
STATSD = ("127.0.0.1", 8125)
TESTS = ["latency", "recovery", "statsd"]


def value_of(i: int, size: int) -> bytes:
    head = b"%019d %09d " % (time.time_ns(), i)
    return head + b"x" * max(0, size - len(head))


def parse_value(v: bytes) -> tuple[int, int]:
    """(send time in ns, index)."""
    return int(v[:19]), int(v[20:29])


# ---------------------------------------------------------------------------------------------
# Roles: this script run again as a child process inside the namespace.


def role_producer(bootstrap: str, topic: str, rate: int, seconds: float, size: int, linger_ms: str) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "acks": "1", "enable.idempotence": False})
    p.list_topics(topic, timeout=10)  # connected before the clock starts
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            try:
                p.produce(topic, value=value_of(sent, size), partition=0)
            except BufferError:
                p.poll(0.001)
                continue
            sent += 1
        p.poll(0)
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    left = p.flush(30)
    print(json.dumps({"sent": total, "elapsed": elapsed, "undelivered": left}), flush=True)


def role_receiver(group: str, port: int, retransmit: str, expected: int, idle: float, recover: bool) -> None:
    """The independent MoldUDP64 receiver: latency of each record on first arrival; with
    `recover`, asks for gaps as soon as a packet reveals them (and again after 50 ms)."""
    host, rport = retransmit.split(":")
    server = (host, int(rport))
    sock = mold.join(group, port)
    uni = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uni.bind(("127.0.0.1", 0))
    uni.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    lat: dict[int, int] = {}
    missing: dict[int, float] = {}  # sequence -> time the gap was seen
    asked: dict[int, float] = {}
    recovered: dict[int, int] = {}  # index -> detect-to-deliver ns
    highest = None  # next sequence expected on the multicast stream
    session = None
    gaps = 0
    ready = False
    last = time.monotonic()  # the last data packet
    deadline = time.monotonic() + 120

    def ask(start: int, count: int) -> None:
        uni.sendto(mold.request(session, start, min(count, 0xFFFE)), server)
        asked[start] = time.monotonic()

    while len(lat) < expected and time.monotonic() < deadline:
        r, _, _ = select.select([sock, uni], [], [], 0.05)
        now_mono = time.monotonic()
        if lat and now_mono - last > idle:
            break
        if not r:
            if recover and missing:
                first = min(missing)
                if now_mono - asked.get(first, 0) > 0.05:
                    ask(first, max(missing) - first + 1)
            continue
        for s in r:
            data = s.recv(65536)
            now = time.time_ns()
            packet = mold.decode(data)
            if packet.heartbeat or packet.end_of_session:
                if not ready:
                    session = packet.session
                    highest = packet.sequence
                    ready = True
                    print("ready", flush=True)
                continue
            last = time.monotonic()
            if session is None:
                session, highest = packet.session, packet.sequence
            if s is sock and packet.sequence > highest:
                gaps += 1
                for q in range(highest, packet.sequence):
                    missing[q] = last
                if recover:
                    ask(highest, packet.sequence - highest)
            if s is sock:
                highest = max(highest, packet.next_sequence)
            for k, m in enumerate(packet.messages):
                q = packet.sequence + k
                sent, i = parse_value(m)
                if i in lat:
                    continue
                lat[i] = (now - sent) // 1000
                if q in missing:
                    recovered[i] = time.monotonic_ns() - int(missing.pop(q) * 1e9)
            if recover and s is uni and missing:
                first = min(missing)
                if first >= packet.next_sequence:  # the answer ended before the gap did
                    ask(first, max(missing) - first + 1)
    out = {"lat": [lat.get(i) for i in range(expected)], "gaps": gaps, "unrecovered": len(missing),
           "recovered": {str(i): ns // 1000 for i, ns in recovered.items()}}
    print(json.dumps(out), flush=True)


def role_cli(binary: str, group: str, port: int, retransmit: str, expected: int, idle: float) -> None:
    """`sluice feed listen`, each stdout line timestamped when read here."""
    proc = subprocess.Popen([binary, "feed", "listen", f"{group}:{port}", "--retransmit", retransmit,
                             "--count", str(expected)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "SWIFT_BACKTRACE": "enable=no"})
    want = "%08X" % int.from_bytes(socket.inet_aton(group), "little")
    deadline = time.monotonic() + 10
    while want not in open("/proc/net/igmp").read() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a few heartbeats: it knows where the session is
    print("ready", flush=True)
    lat: dict[int, int] = {}
    fd = proc.stdout.fileno()
    rest = b""
    last = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.1)[0]:
            if time.monotonic() - last > idle and lat:
                break
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 1 << 20)
        now = time.time_ns()
        if not chunk:
            break
        last = time.monotonic()
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            sent, i = parse_value(line)
            lat.setdefault(i, (now - sent) // 1000)
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    out = {"lat": [lat.get(i) for i in range(expected)], "stderr": err.decode(errors="replace")[-400:]}
    print(json.dumps(out), flush=True)


def role_kafka(bootstrap: str, topic: str, expected: int, idle: float) -> None:
    """The peer: a confluent-kafka consumer of the same topic (a parked fetch the broker
    answers on append, fetch.wait.max.ms 100), latency of each record on arrival."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "fetch.min.bytes": 1, "fetch.queue.backoff.ms": 0})
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the position is resolved (a fetch is parked)
        c.poll(0.05)
        if c.position([TopicPartition(topic, 0)])[0].offset >= 0:
            break
    time.sleep(0.3)
    print("ready", flush=True)
    lat: dict[int, int] = {}
    last = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(lat) < expected:
        first = c.poll(0.1)  # (consume(n, t) would wait for n messages or t)
        now = time.time_ns()
        msgs = [first] + c.consume(1000, 0) if first is not None else []
        if not msgs:
            if time.monotonic() - last > idle and lat:
                break
            continue
        last = time.monotonic()
        for m in msgs:
            if m.error() is None:
                sent, i = parse_value(m.value())
                lat.setdefault(i, (now - sent) // 1000)
    c.close()
    print(json.dumps({"lat": [lat.get(i) for i in range(expected)]}), flush=True)


def role_statsd_sender(seconds: float, per_datagram: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lines = [b"bench.c%d:1|c" % (i % 100) if i % 2 else b"bench.t%d:%d|ms" % (i % 100, i % 1000) for i in range(1000)]
    datagrams = [b"\n".join(lines[i:i + per_datagram]) for i in range(0, 1000, per_datagram)]
    sent = 0
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        for _ in range(200):
            try:
                s.sendto(datagrams[n % len(datagrams)], STATSD)
                sent += per_datagram
            except OSError:
                pass
            n += 1
    print(json.dumps({"lines": sent}), flush=True)


ROLES = {"_producer": role_producer, "_receiver": role_receiver, "_cli": role_cli, "_kafka": role_kafka,
         "_statsd": role_statsd_sender}


# ---------------------------------------------------------------------------------------------
# The driver.


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-udp-"))
        self.ns = NetNS("sluice-bench")
        self.ns.run("ip", "link", "set", "lo", "mtu", "1500")
        self.broker = NsBroker(self.ns, args.bin, self.tmp / "data",
                               {"sluice.statsd.flush.ms": "1000", "log.flush.interval.ms": "1000"},
                               args=["--statsd-listen", "%s:%d" % STATSD]).start()
        self.port = 30000
        self.admin = None

    def close(self):
        self.broker.stop()
        self.ns.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def role(self, *args: str) -> subprocess.Popen:
        return self.ns.popen(sys.executable, __file__, *map(str, args), stdout=subprocess.PIPE, stderr=None)

    @staticmethod
    def wait_ready(proc: subprocess.Popen, timeout: float = 20) -> None:
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                line = proc.stdout.readline()
                if line.strip() == b"ready":
                    return
                if not line:
                    break
        raise SystemExit(f"a receiver did not become ready (exit {proc.poll()})")

    @staticmethod
    def result(proc: subprocess.Popen, timeout: float) -> dict:
        out, _ = proc.communicate(timeout=timeout)
        lines = [l for l in out.decode().splitlines() if l.startswith("{")]
        if not lines:
            raise SystemExit(f"a bench process printed no result (exit {proc.returncode})")
        return json.loads(lines[-1])

    def feed_topic(self, name: str) -> tuple[int, str]:
        """A topic with a feed on a fresh port; returns once the feed is up."""
        from confluent_kafka.admin import AdminClient, NewTopic

        self.port += 1
        port, retransmit = self.port, f"127.0.0.1:{self.port + 1000}"
        config = {"sluice.feed.multicast": f"{GROUP}:{port}", "sluice.feed.retransmit": retransmit,
                  "sluice.feed.heartbeat.ms": "100"}
        with self.ns.entered():
            if self.admin is None:
                self.admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})
            self.admin.create_topics([NewTopic(name, 1, config=config)])[name].result(15)
            probe = mold.join(GROUP, port)
        try:
            mold.receive(probe, 15, lambda ps: ps[-1].heartbeat)
        finally:
            probe.close()
        return port, retransmit

    def trim(self, lat: list, rate: int) -> list[int]:
        skip = int(rate * self.args.warmup)
        return sorted(x for x in lat[skip:] if x is not None)

    def latency(self, rate: int, kind: str, round_: int) -> dict:
        a = self.args
        name = f"lat-{rate}-{kind}-{round_}"
        port, retransmit = self.feed_topic(name)
        expected = int(rate * a.seconds)
        if kind == "python":
            recv = self.role("_receiver", GROUP, port, retransmit, expected, 5.0, 0)
        elif kind == "kafka":
            recv = self.role("_kafka", self.broker.bootstrap, name, expected, 5.0)
        else:
            recv = self.role("_cli", a.bin, GROUP, port, retransmit, expected, 5.0)
        self.wait_ready(recv)
        prod = self.role("_producer", self.broker.bootstrap, name, rate, a.seconds, a.size, a.linger_ms)
        cpu0, t0 = cpu_seconds(self.broker.pid), time.monotonic()
        p = self.result(prod, a.seconds + 60)
        cpu = (cpu_seconds(self.broker.pid) - cpu0) / (time.monotonic() - t0)
        r = self.result(recv, 60)
        lat = self.trim(r["lat"], rate)
        got = sum(1 for x in r["lat"] if x is not None)
        return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": lat[-1] if lat else float("nan"),
                "received": got / expected, "achieved": p["sent"] / p["elapsed"], "cpu": cpu}

    def recovery(self, round_: int) -> dict:
        a = self.args
        rate = 10_000
        name = f"rec-{round_}"
        port, retransmit = self.feed_topic(name)
        expected = int(rate * a.seconds)
        py = self.role("_receiver", GROUP, port, retransmit, expected, 5.0, 1)
        cli = self.role("_cli", a.bin, GROUP, port, retransmit, expected, 5.0)
        self.wait_ready(py)
        self.wait_ready(cli)
        rule = self.ns.drop_random(GROUP, a.loss)
        try:
            prod = self.role("_producer", self.broker.bootstrap, name, rate, a.seconds, a.size, a.linger_ms)
            self.result(prod, a.seconds + 60)
            rp = self.result(py, 60)
            rc = self.result(cli, 60)
        finally:
            self.ns.delete_rule(rule)
        recovered = {int(i): us for i, us in rp["recovered"].items()}
        if a.verbose:
            print(f"  round {round_}: sluice feed listen: {rc['stderr'].strip()}", flush=True)
        out = {"gaps": rp["gaps"], "records lost": len(recovered), "unrecovered": rp["unrecovered"]}
        for label, lat in (("python", rp["lat"]), ("cli", rc["lat"])):
            normal = sorted(x for i, x in enumerate(lat) if x is not None and i not in recovered)
            rec = sorted(lat[i] for i in recovered if i < len(lat) and lat[i] is not None)
            median = percentile(normal, 50)
            out[f"{label} normal p50"] = median
            out[f"{label} recovered p50"] = percentile(rec, 50)
            out[f"{label} recovered p99"] = percentile(rec, 99)
            out[f"{label} recovery delay p50"] = percentile(rec, 50) - median
            out[f"{label} received"] = sum(1 for x in lat if x is not None) / expected
        out["python detect→deliver p50"] = percentile(sorted(recovered.values()), 50)
        out["python detect→deliver p99"] = percentile(sorted(recovered.values()), 99)
        return out

    def statsd(self, per_datagram: int, round_: int) -> dict:
        a = self.args

        def counters() -> tuple[float, float]:
            m = self.broker.metrics()
            get = lambda name: sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))  # noqa: E731
            return get("sluice_statsd_lines_total"), get("sluice_statsd_kernel_drops_total")

        lines0, drops0 = counters()
        cpu0, t0 = cpu_seconds(self.broker.pid), time.monotonic()
        senders = [self.role("_statsd", a.seconds, per_datagram) for _ in range(a.statsd_senders)]
        sent = sum(self.result(s, a.seconds + 30)["lines"] for s in senders)
        time.sleep(0.3)  # what is queued in the socket is read
        cpu1, t1 = cpu_seconds(self.broker.pid), time.monotonic()
        lines1, drops1 = counters()
        lines = lines1 - lines0
        return {"lines/s": lines / (t1 - t0), "lines/cpu-s": lines / max(1e-9, cpu1 - cpu0),
                "cpu": (cpu1 - cpu0) / (t1 - t0), "sent/s": sent / (t1 - t0),
                "dropped datagrams": drops1 - drops0, "received share": lines / max(1, sent)}


def median_of(rounds: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def fmt(v) -> str:
    if isinstance(v, float) and v != v:
        return "n/a"
    if isinstance(v, float) and abs(v) < 10 and v != int(v):
        return f"{v:.2f}"
    return f"{v:,.0f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        role, rest = ROLES[sys.argv[1]], sys.argv[2:]
        if role is role_producer:
            role(rest[0], rest[1], int(rest[2]), float(rest[3]), int(rest[4]), rest[5])
        elif role is role_receiver:
            role(rest[0], int(rest[1]), rest[2], int(rest[3]), float(rest[4]), rest[5] == "1")
        elif role is role_cli:
            role(rest[0], rest[1], int(rest[2]), rest[3], int(rest[4]), float(rest[5]))
        elif role is role_kafka:
            role(rest[0], rest[1], int(rest[2]), float(rest[3]))
        else:
            role(float(rest[0]), int(rest[1]))
        return

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / ".build-release/release/sluice"), help="the sluice binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="10000,100000", help="latency runs: records per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of sending per run")
    ap.add_argument("--warmup", type=float, default=0.5, help="latency: seconds of results dropped at the start")
    ap.add_argument("--size", type=int, default=64, help="record value size in bytes (at least 30)")
    ap.add_argument("--linger-ms", default="1", help="the producer's linger.ms (1: batches of ~10 records at 10k/s)")
    ap.add_argument("--loss", type=float, default=0.01, help="recovery: share of datagrams dropped")
    ap.add_argument("--statsd-senders", type=int, default=1, help="statsd: sender processes")
    ap.add_argument("--verbose", action="store_true", help="print the receivers' statistics")
    ap.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated subset of {','.join(TESTS)}")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        raise SystemExit(f"{args.bin} not found: build it (see --help) or pass --bin")
    tests = args.tests.split(",")
    rates = [int(r) for r in args.rates.split(",")]

    bench = Bench(args)
    started = time.monotonic()
    try:
        print(f"sluice {args.bin}; {os.cpu_count()} CPUs; {args.rounds} rounds of {args.seconds:g} s; "
              f"values {args.size} B; namespace {bench.ns.name}, lo MTU 1500", flush=True)
        if "latency" in tests:
            print("\nmulticast end-to-end latency, produce → receiver (µs; medians of rounds)")
            print(f"{'rate/s':>8} {'receiver':>8} {'p50':>8} {'p99':>8} {'max':>9} {'received':>9} {'produced/s':>11} {'broker CPU':>11}")
            for rate in rates:
                for kind in ("python", "cli", "kafka"):
                    m = median_of([bench.latency(rate, kind, r) for r in range(args.rounds)])
                    print(f"{rate:>8,} {kind:>8} {fmt(m['p50']):>8} {fmt(m['p99']):>8} {fmt(m['max']):>9} "
                          f"{m['received']:>9.4f} {fmt(m['achieved']):>11} {m['cpu'] * 100:>10.0f}%", flush=True)
        if "recovery" in tests:
            print(f"\ngap recovery at 10,000 records/s with {args.loss:.0%} random loss (µs; medians of rounds)")
            m = median_of([bench.recovery(r) for r in range(args.rounds)])
            for k, v in m.items():
                print(f"  {k:<32} {fmt(v)}", flush=True)
        if "statsd" in tests:
            print(f"\nStatsD intake, {args.statsd_senders} sender process(es) blasting (medians of rounds)")
            print(f"{'lines/dgram':>11} {'lines/s':>10} {'lines/CPU-s':>12} {'broker CPU':>11} {'sent/s':>10} {'received':>9} {'kernel drops':>13}")
            for per in (1, 20):
                m = median_of([bench.statsd(per, r) for r in range(args.rounds)])
                print(f"{per:>11} {fmt(m['lines/s']):>10} {fmt(m['lines/cpu-s']):>12} {m['cpu'] * 100:>10.0f}% "
                      f"{fmt(m['sent/s']):>10} {m['received share']:>9.3f} {fmt(m['dropped datagrams']):>13}", flush=True)
        print(f"\n({time.monotonic() - started:.0f} s)")
    finally:
        bench.close()


if __name__ == "__main__":
    main()

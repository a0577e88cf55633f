"""StatsD intake (`sluice serve --statsd-listen`, docs/udp.md), with a real client (PyPI
`statsd`) and raw datagrams; the aggregates read back from the `statsd` topic with
confluent-kafka and checked against figures computed here: counter sums and rates with
sample rates, gauges (absolute, +/- deltas, kept across intervals), timers and histograms
(count, min, max, mean, sum, nearest-rank percentiles), sets, DogStatsD tags and fields,
multi-line datagrams, malformed lines counted in `intake` and not crashing the broker,
lines over TCP, `raw` mode, the max.metrics and max.samples caps, /metrics; and under
overload (a small SO_RCVBUF, a blast of datagrams) received lines plus the kernel's drops
equal what was sent (checked against the namespace's own RcvbufErrors too).

Each broker runs in a network namespace (compat/netns.py), so its ports are fixed and the
kernel's UDP counters (/proc/net/snmp) are its alone. The exact checks send their lines
right after a flush, so that they all fall in one interval.
"""

from __future__ import annotations

import json
import math
import random
import socket
import time
import uuid

import pytest
import statsd
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from conftest import sluice_binary
from helpers import admin, consumer
from netns import NetNS, NsBroker

pytestmark = pytest.mark.timeout(60)

STATSD = ("127.0.0.1", 8125)
FLUSH_MS = 1000
# The exact checks are at a low rate: a pause after each datagram, so the socket's default
# receive buffer never overflows (they check that the kernel dropped nothing).
PACE = 0.0003


@pytest.fixture(scope="module")
def ns():
    n = NetNS("sluice-statsd")
    yield n
    n.close()


@pytest.fixture
def start_broker(ns, tmp_path):
    """start_broker(**settings) -> a broker with --statsd-listen 127.0.0.1:8125 in the
    namespace (settings: --set, flush.ms 1000 unless given)."""
    started: list[NsBroker] = []

    def start(**settings) -> NsBroker:
        s = {"sluice.statsd.flush.ms": str(FLUSH_MS)}
        s.update({k if k.startswith("sluice.") else "sluice.statsd." + k: str(v) for k, v in settings.items()})
        b = NsBroker(ns, sluice_binary(), tmp_path / f"data{len(started)}", s,
                     args=["--statsd-listen", "%s:%d" % STATSD]).start()
        started.append(b)
        wait_udp_bound(ns, STATSD[1])
        return b

    yield start
    failures = []
    for b in started:
        running = b.alive()
        status = b.stop()
        print(f"---- sluice log ({b.log_path}):\n{b.log_tail()}")
        if running and status != 0:
            failures.append(status)
    assert not failures, f"sluice exited with {failures} on SIGTERM"


def wait_udp_bound(ns: NetNS, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = ns.run("cat", "/proc/net/udp").stdout.decode().splitlines()[1:]
        if any(r.split()[1].endswith(":%04X" % port) for r in rows):
            return
        assert time.monotonic() < deadline, f"nothing bound UDP port {port}"
        time.sleep(0.05)


class RecordingClient(statsd.StatsClient):
    """The PyPI client, remembering each datagram it sent (it samples on its own when
    rate < 1: the expected figures come from what it actually sent)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def _send(self, data):
        self.sent.append(data)
        super()._send(data)
        time.sleep(PACE)

    def lines(self) -> list[str]:
        return [line for d in self.sent for line in d.split("\n")]


class Topic:
    """The records of the statsd topic: (key, JSON value), read as they come."""

    def __init__(self, ns: NetNS, broker: NsBroker, topic: str = "statsd"):
        self.ns = ns
        self.broker = broker
        self.topic = topic
        with ns.entered():
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.consumer = None
        self.records: list[tuple[bytes | None, dict | bytes]] = []
        self.sync_lines = 0  # lines fresh_interval() sent
        self.kafka_timestamps: list[int] = []  # of each record, beside self.records

    def send(self, data: bytes | str) -> None:
        self.raw.sendto(data.encode() if isinstance(data, str) else data, STATSD)
        time.sleep(PACE)

    def _ensure_consumer(self) -> bool:
        if self.consumer is not None:
            return True
        with self.ns.entered():
            md = admin(self.broker.bootstrap).list_topics(timeout=10)
            if self.topic not in md.topics or md.topics[self.topic].error is not None:
                return False
            self.consumer = consumer(self.broker.bootstrap, **{"fetch.wait.max.ms": 20})
            self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        return True

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._ensure_consumer():
                time.sleep(0.1)
                continue
            for m in self.consumer.consume(num_messages=10000, timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
                if m.error():
                    if m.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                value = m.value()
                try:  # strict JSON: NaN and Infinity are not JSON
                    value = json.loads(value, parse_constant=_reject)
                except ValueError:
                    pass
                self.records.append((m.key(), value))
                self.kafka_timestamps.append(m.timestamp()[1])

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.records:
                if isinstance(rec[1], dict) and predicate(rec[1]):
                    return rec[1]
            assert time.monotonic() < deadline, f"no {what} within {timeout}s; records: {self.records[-5:]}"
            self.poll(0.1)

    def fresh_interval(self) -> int:
        """Returns just after a flush, with most of the next interval ahead; returns that
        flush's timestamp (lines sent now land in the interval after it)."""
        for _ in range(5):
            name = "sync." + uuid.uuid4().hex[:8]
            self.send(f"{name}:1|c")
            self.sync_lines += 1
            rec = self.wait_for(lambda r: r.get("name") == name, 10 * FLUSH_MS / 1000, f"record of {name}")
            left = rec["timestamp"] + rec["interval_ms"] - time.time() * 1000
            if left > 0.6 * rec["interval_ms"]:
                return rec["timestamp"]
        raise AssertionError("could not catch the start of an interval")

    def interval_after(self, timestamp: int, settle: float = 0.4) -> list[dict]:
        """The records of the first flush after `timestamp`."""
        self.wait_for(lambda r: r["timestamp"] > timestamp, 10 * FLUSH_MS / 1000, f"a flush after {timestamp}")
        self.poll(settle)  # the rest of that flush's records
        flush = min(r["timestamp"] for _, r in self.records if isinstance(r, dict) and r["timestamp"] > timestamp)
        out = [r for _, r in self.records if isinstance(r, dict) and r["timestamp"] == flush]
        intakes = {json.dumps(r.get("intake"), sort_keys=True) for r in out}
        assert len(intakes) == 1, f"the records of one flush disagree on intake: {intakes}"
        assert out[0]["intake"]["kernel_drops"] == 0, f"the kernel dropped datagrams at a low rate: {out[0]['intake']}"
        return out


def _reject(constant: str):
    raise ValueError(f"{constant} is not JSON")


def by_metric(records: list[dict]) -> dict[tuple[str, str], dict]:
    """Records by (name, tags as sorted JSON); fails on two records of one metric."""
    out = {}
    for r in records:
        key = (r["name"], json.dumps(r.get("tags", {}), sort_keys=True))
        assert key not in out, f"two records of {key} in one flush: {out[key]} and {r}"
        out[key] = r
    return out


def one(records: list[dict], name: str, tags: dict | None = None) -> dict:
    metrics = by_metric(records)
    key = (name, json.dumps(tags or {}, sort_keys=True))
    assert key in metrics, f"no record of {key}; have {sorted(metrics)}"
    return metrics[key]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def nearest_rank(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def check_distribution(rec: dict, samples: list[float], kind: str, count: float | None = None,
                       percentiles=(50, 90, 95, 99)) -> None:
    assert rec["type"] == kind, rec
    assert close(rec["count"], len(samples) if count is None else count), (rec, len(samples))
    assert close(rec["min"], min(samples)) and close(rec["max"], max(samples)), rec
    assert close(rec["sum"], sum(samples)), (rec, sum(samples))
    assert close(rec["mean"], sum(samples) / len(samples)), (rec, sum(samples) / len(samples))
    for p in percentiles:
        want = nearest_rank(samples, p)
        assert close(rec[f"p{p}"], want), f"{rec['name']} p{p}: {rec[f'p{p}']}, nearest rank {want}"


def client(ns: NetNS, **kwargs) -> RecordingClient:
    with ns.entered():
        return RecordingClient(STATSD[0], STATSD[1], **kwargs)


# ---------------------------------------------------------------------------------------------


def test_counters_with_sample_rates(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    c = client(ns)
    t0 = topic.fresh_interval()
    random.seed(1)
    for _ in range(100):
        c.incr("c.plain")
    for _ in range(200):
        c.incr("c.sampled", 5, rate=0.5)  # the client sends about half, each `5|c|@0.5`
    for _ in range(10):
        c.decr("c.down", 3)
    for _ in range(7):
        topic.send("c.raw:1|c|@0.1")
    topic.send("c.half:0.5|c\nc.half:0.5|c\nc.half:0.5|c")
    expected: dict[str, float] = {"c.raw": 70.0, "c.half": 1.5}
    for line in c.lines():
        name, rest = line.split(":", 1)
        fields = rest.split("|")
        rate = float(fields[2][1:]) if len(fields) > 2 else 1.0
        expected[name] = expected.get(name, 0.0) + float(fields[0]) / rate
    assert expected["c.plain"] == 100 and expected["c.down"] == -30
    assert 0 < expected["c.sampled"] < 2000 and expected["c.sampled"] % 10 == 0
    records = topic.interval_after(t0)
    for name, value in expected.items():
        r = one(records, name)
        # interval_ms: the interval as measured (a timer's jitter over flush.ms).
        assert r["type"] == "counter" and r["tags"] == {} and FLUSH_MS <= r["interval_ms"] < 1.5 * FLUSH_MS, r
        assert close(r["value"], value), f"{name}: {r['value']}, sent {value}"
        assert close(r["rate"], value / (r["interval_ms"] / 1000)), r
    assert {r["name"] for r in records} == set(expected), "records of metrics that were not sent"
    # Keyed by the name; the Kafka timestamp is the flush's.
    for (key, r), ts in zip(topic.records, topic.kafka_timestamps):
        if isinstance(r, dict) and r in records:
            assert key == r["name"].encode() and ts == r["timestamp"], (key, ts, r)


def test_gauges_absolute_deltas_and_kept_across_intervals(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    c = client(ns)
    t0 = topic.fresh_interval()
    c.gauge("g.abs", 10)
    c.gauge("g.abs", 42)
    c.gauge("g.delta", 100)
    c.gauge("g.delta", 5, delta=True)  # +5
    c.gauge("g.delta", -30, delta=True)  # -30
    c.gauge("g.neg", -7)  # the client sends `0|g` then `-7|g` in one datagram
    topic.send("g.float:3.5|g")
    records = topic.interval_after(t0)
    assert {r["name"]: r["value"] for r in records} == {"g.abs": 42, "g.delta": 75, "g.neg": -7, "g.float": 3.5}
    assert all(r["type"] == "gauge" for r in records)
    # The value is kept for later changes; an unchanged gauge has no record.
    t1 = topic.fresh_interval()
    c.gauge("g.delta", 10, delta=True)
    records = topic.interval_after(t1)
    assert {r["name"]: r["value"] for r in records} == {"g.delta": 85}


def test_timers_and_histograms_percentiles(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    c = client(ns, maxudpsize=60000)
    rnd = random.Random(7)
    piped = [rnd.randrange(1, 4000) / 4 for _ in range(200)]
    single = [rnd.randrange(0, 1000) for _ in range(100)] + [0.25, 999.75]
    hist = [rnd.randrange(-500, 500) / 2 for _ in range(150)]
    t0 = topic.fresh_interval()
    with c.pipeline() as pipe:  # one multi-line datagram
        for v in piped:
            pipe.timing("t.pipe", v)
    for v in single:
        c.timing("t.single", v)
    for i in range(0, len(hist), 50):
        topic.send("\n".join(f"h.hist:{v}|h" for v in hist[i:i + 50]))
    topic.send("t.multi:1:2:3:4:5|ms")  # DogStatsD: several values in one line
    for _ in range(4):
        topic.send("t.rate:10|ms|@0.5")  # each sample counts 2
    assert len([d for d in c.sent if "t.pipe" in d]) == 1
    records = topic.interval_after(t0)
    check_distribution(one(records, "t.pipe"), piped, "timer")
    check_distribution(one(records, "t.single"), single, "timer")
    check_distribution(one(records, "h.hist"), hist, "histogram")
    check_distribution(one(records, "t.multi"), [1, 2, 3, 4, 5], "timer")
    check_distribution(one(records, "t.rate"), [10, 10, 10, 10], "timer", count=8)


def test_sets_count_distinct_values(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    c = client(ns)
    rnd = random.Random(3)
    users = [rnd.randrange(100) for _ in range(300)]
    t0 = topic.fresh_interval()
    for u in users:
        c.set("s.users", u)
    topic.send("s.raw:abc|s\ns.raw:abc|s\ns.raw:def|s")
    records = topic.interval_after(t0)
    assert one(records, "s.users")["value"] == len(set(users))
    assert one(records, "s.users")["type"] == "set"
    assert one(records, "s.raw")["value"] == 2


def test_dogstatsd_tags_and_fields(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    t0 = topic.fresh_interval()
    topic.send("api.latency:5|ms|#env:prod,region:eu\napi.latency:7|ms|#env:prod,region:eu")
    topic.send("api.latency:9|ms|#env:dev")
    topic.send("api.latency:11|ms")
    topic.send("flag.c:1|c|#canary\nflag.c:2|c|#canary")
    topic.send("x.c:3|c|@0.5|#a:b")
    topic.send("dd.c:2|c|c:abc123|T1656581400")  # container id and timestamp fields: ignored
    topic.send("dd.g:4|g|#k:v|c:cid")
    topic.send("order.c:1|c|#a:1,b:2\norder.c:1|c|#b:2,a:1")  # the same tags in another order
    records = topic.interval_after(t0)
    check_distribution(one(records, "api.latency", {"env": "prod", "region": "eu"}), [5, 7], "timer")
    check_distribution(one(records, "api.latency", {"env": "dev"}), [9], "timer")
    check_distribution(one(records, "api.latency"), [11], "timer")
    assert one(records, "flag.c", {"canary": ""})["value"] == 3
    assert one(records, "x.c", {"a": "b"})["value"] == 6
    assert one(records, "dd.c")["value"] == 2
    assert one(records, "dd.g", {"k": "v"})["value"] == 4
    assert one(records, "order.c", {"a": "1", "b": "2"})["value"] == 2
    assert len(records) == 8, [(r["name"], r["tags"]) for r in records]
    assert records[0]["intake"]["malformed"] == 0, records[0]["intake"]


def test_intake_counts_malformed_lines_and_survives_garbage(ns, start_broker):
    b = start_broker()
    topic = Topic(ns, b)
    t0 = topic.fresh_interval()
    datagrams = [
        "i.a:1|c\ni.b:2|c\ni.c:3|ms",
        "i.a:1|c\nnocolon\ni.d:abc|c\ni.e:1|zz\ni.f:1|c|@abc\n:1|c\ni.g:|c",  # 6 malformed
        "i.a:1|c\n",  # a trailing newline ends the line; it is not an empty one
        "i.h:1|c|#t:v\ni.h:1|c|#t:v",
    ]
    for d in datagrams:
        topic.send(d)
    records = topic.interval_after(t0)
    intake = records[0]["intake"]
    assert intake == {"packets": 4, "lines": 13, "malformed": 6, "kernel_drops": 0, "metrics_dropped": 0}, intake
    assert {(r["name"], r.get("value", r.get("count"))) for r in records} == {
        ("i.a", 3), ("i.b", 2), ("i.c", 1), ("i.h", 2)}
    assert one(records, "i.h", {"t": "v"})["value"] == 2

    # An interval with malformed lines only: one `sluice.statsd` intake record.
    t1 = topic.fresh_interval()
    topic.send("garbage")
    topic.send("more|garbage")
    records = topic.interval_after(t1)
    assert [(r["name"], r["type"]) for r in records] == [("sluice.statsd", "intake")], records
    assert records[0]["intake"] == {"packets": 2, "lines": 2, "malformed": 2, "kernel_drops": 0, "metrics_dropped": 0}

    # Garbage of every kind; the broker goes on and still aggregates right.
    rnd = random.Random(11)
    junk = [b"", b"\n", b"\n\n\n", b"|||", b":\n:\n", b"a::|c", b"a:1|c|@0", b"a:1|c|@-1", b"a:1|c|@2", b"a:nan|ms",
            b"a:inf|g", b"a:1e309|c", b"a:1|c|#", b"a:1|c|#,,,:", b"a:--1|g", b"a:+-1|g", b"\xff\xfe:1|c",
            b"a:" + b"9" * 5000 + b"|c", b"n" * 60000 + b":1|c", b"a:1|s|" + b"#" * 1000, b"a:1:2:3:|ms", b"a:1|ms|@"]
    junk += [rnd.randbytes(rnd.randrange(1, 1500)) for _ in range(200)]
    for d in junk:
        topic.send(d)
        time.sleep(0.0005)
    time.sleep(0.5)
    assert b.alive(), "sluice died on garbage"
    t2 = topic.fresh_interval()
    topic.send("after.c:5|c\nafter.t:1:2:3|ms")
    records = topic.interval_after(t2)
    assert one(records, "after.c")["value"] == 5
    check_distribution(one(records, "after.t"), [1, 2, 3], "timer")

    # /metrics agrees with the intake of every flush record (one per interval).
    time.sleep(FLUSH_MS / 1000 * 1.5)
    topic.poll(0.5)
    flushes: dict[int, dict] = {}
    for _, r in topic.records:
        if isinstance(r, dict):
            flushes[r["timestamp"]] = r["intake"]
    m = b.metrics()

    def metric(name: str) -> float:
        hits = [v for k, v in m.items() if k == name or k.startswith(name + "{")]
        assert len(hits) == 1, f"{name}: {hits}"
        return hits[0]

    assert metric("sluice_statsd_packets_total") == sum(i["packets"] for i in flushes.values())
    assert metric("sluice_statsd_lines_total") == sum(i["lines"] for i in flushes.values())
    assert metric("sluice_statsd_malformed_total") == sum(i["malformed"] for i in flushes.values())
    assert metric("sluice_statsd_kernel_drops_total") == 0
    assert metric("sluice_statsd_metrics_dropped_total") == 0
    assert metric("sluice_statsd_records_total") == len([r for r in topic.records if isinstance(r[1], dict)])
    assert metric("sluice_statsd_packets_total") >= len(junk) + 10
    # Every record is JSON (no NaN or Infinity from `nan`, `inf` or `1e309` values).
    assert all(isinstance(v, dict) for _, v in topic.records), [v for _, v in topic.records if not isinstance(v, dict)][:3]
    # Malformed lines are logged at most once every 10 s (this test takes a few seconds).
    logged = [line for line in b.log_path.read_text(errors="replace").splitlines() if "malformed line" in line.lower()]
    print("malformed lines logged:", logged)
    assert len(logged) <= 2, logged


def test_lines_over_tcp(ns, start_broker):
    """The intake also takes newline-separated lines over TCP on the same port (as the statsd
    daemon's TCP server does); each line counts as a line, none as a packet."""
    b = start_broker()
    topic = Topic(ns, b)
    t0 = topic.fresh_interval()
    with ns.entered():
        conn = socket.create_connection(STATSD, timeout=10)
    conn.sendall(b"tcp.c:1|c\ntcp.c:2|c\ntcp.t:5|ms\ntcp.t:")  # a line cut across two writes
    time.sleep(0.05)
    conn.sendall(b"7|ms\nnot a line\n")
    time.sleep(0.2)
    conn.close()
    records = topic.interval_after(t0)
    assert one(records, "tcp.c")["value"] == 3
    check_distribution(one(records, "tcp.t"), [5, 7], "timer")
    assert records[0]["intake"] == {"packets": 0, "lines": 5, "malformed": 1, "kernel_drops": 0, "metrics_dropped": 0}


def test_raw_mode_one_record_per_valid_line(ns, start_broker):
    b = start_broker(mode="raw")
    topic = Topic(ns, b)
    lines = ["r.a:1|c", "r.b:2|g|#t:v", "r.c:3|ms|@0.5", "r.d:4|s", "r.e:1:2|h"]
    topic.send(f"{lines[0]}\n{lines[1]}")
    topic.send("bad line")
    topic.send(f"{lines[2]}\nr.x:1|nope\n{lines[3]}\n")
    topic.send(lines[4])
    deadline = time.monotonic() + 10
    while len(topic.records) < len(lines) and time.monotonic() < deadline:
        topic.poll(0.2)
    topic.poll(FLUSH_MS / 1000 * 1.5)  # nothing more comes (no aggregate, no intake record)
    assert [(k, v if isinstance(v, bytes) else json.dumps(v).encode()) for k, v in topic.records] == [
        (line.split(":")[0].encode(), line.encode()) for line in lines]
    m = b.metrics()
    assert [v for k, v in m.items() if k.startswith("sluice_statsd_malformed_total")] == [2]
    assert [v for k, v in m.items() if k.startswith("sluice_statsd_lines_total")] == [7]


def test_max_metrics_max_samples_and_percentiles(ns, start_broker):
    b = start_broker(**{"max.metrics": 5, "max.samples": 100, "percentiles": "25,75,100"})
    topic = Topic(ns, b)
    t0 = topic.fresh_interval()
    topic.send("\n".join(f"m{i}:1|c" for i in range(8)) + "\nm0:1|c\nm7:1|c")
    records = topic.interval_after(t0)
    assert {r["name"]: r["value"] for r in records} == {"m0": 2, "m1": 1, "m2": 1, "m3": 1, "m4": 1}
    assert records[0]["intake"]["metrics_dropped"] == 4, records[0]["intake"]  # m5, m6, m7 twice
    assert records[0]["intake"]["lines"] == 10

    samples = list(range(1, 1001))
    random.Random(5).shuffle(samples)
    t1 = topic.fresh_interval()
    for i in range(0, 1000, 100):
        topic.send("big.t:" + ":".join(map(str, samples[i:i + 100])) + "|ms")
    topic.send("\n".join(f"big.s:u{i}|s" for i in range(500)))
    records = topic.interval_after(t1)
    t = one(records, "big.t")
    # Beyond max.samples: count, sum, min, max exact; percentiles from a sample of 100.
    assert (t["count"], t["sum"], t["min"], t["max"]) == (1000, sum(samples), 1, 1000), t
    assert close(t["mean"], 500.5)
    assert "p50" not in t and "p99" not in t, t
    assert t["p25"] <= t["p75"] <= t["p100"] <= 1000 and t["p25"] >= 1, t
    assert all(float(t[p]).is_integer() for p in ("p25", "p75", "p100")), t
    assert 100 <= t["p25"] <= 450 and 550 <= t["p75"] <= 900, f"percentiles far from a uniform sample's: {t}"
    assert one(records, "big.s")["value"] == 100, "a set counts at most max.samples distinct values"
    assert [v for k, v in b.metrics().items() if k.startswith("sluice_statsd_metrics_dropped_total")] == [4]


def softnet_dropped() -> int:
    """Packets the kernel's per-CPU backlogs dropped (second column of /proc/net/softnet_stat;
    machine-wide)."""
    return sum(int(line.split()[1], 16) for line in open("/proc/net/softnet_stat"))


@pytest.mark.timeout(120)
def test_overload_received_plus_dropped_equals_sent(ns, start_broker):
    b = start_broker(**{"receive.buffer.bytes": 4096, "flush.ms": 500})
    topic = Topic(ns, b)
    topic.fresh_interval()
    snmp_before = ns.udp_snmp()
    softnet_before = softnet_dropped()
    with ns.entered():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    total, sent = 200_000, 0
    line = b"ov:1|c"
    started = time.monotonic()
    for _ in range(total):
        try:
            s.sendto(line, STATSD)
            sent += 1
        except OSError:
            pass
    blast = time.monotonic() - started

    def tally():
        flushes: dict[int, dict] = {}
        ov = 0.0
        for _, r in topic.records:
            if isinstance(r, dict):
                flushes[r["timestamp"]] = r["intake"]
                if r["name"] == "ov":
                    ov += r["value"]
        lines = sum(i["lines"] for i in flushes.values())
        drops = sum(i["kernel_drops"] for i in flushes.values())
        return lines, drops, ov

    deadline = time.monotonic() + 20
    quiet_since = time.monotonic()
    seen = 0
    while time.monotonic() < deadline:
        topic.poll(0.25)
        lines, drops, _ = tally()
        if len(topic.records) != seen:
            seen, quiet_since = len(topic.records), time.monotonic()
        if lines - topic.sync_lines + drops >= sent and time.monotonic() - quiet_since > 1.5:
            break
        if time.monotonic() - quiet_since > 4:
            break
    lines, drops, ov = tally()
    lines -= topic.sync_lines
    snmp_after = ns.udp_snmp()
    softnet_after = softnet_dropped()
    rcvbuf_errors = snmp_after["RcvbufErrors"] - snmp_before["RcvbufErrors"]
    m = b.metrics()
    metric_drops = sum(v for k, v in m.items() if k.startswith("sluice_statsd_kernel_drops_total"))
    report = (f"sent {sent} datagrams in {blast:.2f}s ({sent / blast:,.0f}/s); broker: {lines} lines + "
              f"{drops} kernel drops = {lines + drops}; counter sum {ov}; /metrics kernel drops {metric_drops}; "
              f"namespace RcvbufErrors +{rcvbuf_errors}, InErrors +{snmp_after['InErrors'] - snmp_before['InErrors']}; "
              f"softnet backlog drops (machine-wide) +{softnet_after - softnet_before}")
    print(report)
    assert drops > 0, "no kernel drops: the blast did not overrun a 4 KiB receive buffer? " + report
    assert ov == lines, report
    assert drops == rcvbuf_errors, "kernel_drops disagree with the namespace's RcvbufErrors: " + report
    assert metric_drops == drops, report
    assert lines + drops == sent, report

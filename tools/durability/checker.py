#!/usr/bin/env python3
"""Jepsen-style "total queue" durability checker for Sluice.

Idempotent producers (confluent-kafka, acks=all, enable.idempotence=true) write unique
values to a multi-partition topic while the broker is killed (SIGKILL, or SIGTERM for the
graceful scenario) at random moments and restarted on the same data directory. Every
ACKNOWLEDGED (value, partition, offset) is recorded from the delivery reports. At the end
an independent consumer (assignment, from the beginning, up to the high watermark) reads
everything back and the checker prints:

    acknowledged, lost, duplicated, unexpected, offset-mismatched, offset-reused,
    reordered (per partition), gap-free (per partition)

  lost              acknowledged values not read back anywhere
  duplicated        extra copies of values read more than once
  unexpected        values read back that no producer ever sent
  offset-mismatched acknowledged values read back at another (partition, offset)
  offset-reused     acknowledged (partition, offset) now holding another value
  reordered         values read after a later value of the same producer instance in the
                    same partition (idempotence promises per-partition order)
  gap-free          the offsets read are exactly log-start..high-watermark-1

Scenarios (`--scenario`) and their promises (exit status 1 when broken):
  sigkill-fsync    flush.messages=1, SIGKILL: 0 lost, 0 duplicated, 0 offset mismatches,
                   0 unexpected, 0 reordered, gap-free
  sigterm          default flushing, SIGTERM: 0 lost, 0 unexpected, 0 duplicated, gap-free
  sigkill-default  default flushing, SIGKILL: loss (if any) confined to records acknowledged
                   within the flush window before a kill; 0 duplicated, 0 unexpected,
                   0 offset mismatches, gap-free
  memory-honesty   sluice.storage=memory, SIGKILL: the checker MUST report loss (lost > 0),
                   proving that it detects it
  group            flush.messages=1; after the producing phase (with broker kills) three
                   group members (subprocesses) read and commit while members and the broker
                   are SIGKILLed and restarted: 0 lost, committed offsets never go backwards
                   nor past the high watermark, the group reaches the end, and every
                   acknowledged record is seen by some member at least once

The broker binary is `SLUICE_BIN` (as in compat/); brokers are run with the compat
suite's `SluiceBroker` (compat/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "compat"))

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import SluiceBroker  # noqa: E402

SCENARIOS = {
    # name: (topic config, kill signal)
    "sigkill-fsync": ({"flush.messages": "1"}, signal.SIGKILL),
    "sigterm": ({}, signal.SIGTERM),
    "sigkill-default": ({}, signal.SIGKILL),
    "memory-honesty": ({"sluice.storage": "memory"}, signal.SIGKILL),
    "group": ({"flush.messages": "1"}, signal.SIGKILL),
}

DEFAULT_FLUSH_MS = 1000  # Sluice's default flush.ms
HOUSEKEEPING_MS = 1000
VERBOSE = False  # the broker's housekeeping interval, which runs time-based flushes


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class History:
    """Everything the producers sent and what the broker acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: set[bytes] = set()
        self.acked: dict[bytes, tuple[int, int, float]] = {}  # value -> (partition, offset, ack time)
        self.failed: Counter = Counter()  # delivery error name -> count
        self.fatal = 0

    def on_sent(self, value: bytes) -> None:
        with self.lock:
            self.sent.add(value)

    def on_delivery(self, err, msg) -> None:
        now = time.monotonic()
        with self.lock:
            if err is not None:
                self.failed[err.name()] += 1
            else:
                self.acked[msg.value()] = (msg.partition(), msg.offset(), now)


class ProducerThread(threading.Thread):
    """Produces unique values `run:instance:seq` to random partitions until stopped.

    A fatal idempotence error (e.g. after a broker lost acknowledged data) makes the
    producer unusable: it is replaced by a new instance (new producer id)."""

    instances = 0
    instances_lock = threading.Lock()

    def __init__(self, bootstrap: str, topic: str, partitions: int, history: History, run_id: str, rate: int):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.history, self.run_id, self.rate = history, run_id, rate
        self.stop_event = threading.Event()
        self.rng = random.Random()
        self.leftover = 0

    @classmethod
    def next_instance(cls) -> int:
        with cls.instances_lock:
            cls.instances += 1
            return cls.instances

    def make_producer(self) -> tuple[Producer, dict]:
        state = {"fatal": False}

        def on_error(err):
            if err.fatal():
                state["fatal"] = True

        p = Producer({
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 60000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "retry.backoff.ms": 50,
            "socket.connection.setup.timeout.ms": 2000,
            "error_cb": on_error,
            "log_level": 7 if VERBOSE else 0,  # connection-refused noise while the broker is down
        })
        return p, state

    def run(self) -> None:
        producer, state = self.make_producer()
        instance = self.next_instance()
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            if state["fatal"]:
                with self.history.lock:
                    self.history.fatal += 1
                self.leftover += producer.flush(5)  # delivers its failures
                producer, state = self.make_producer()
                instance = self.next_instance()
                seq = 0
            value = f"{self.run_id}:{instance}:{seq}".encode()
            seq += 1
            try:
                producer.produce(self.topic, value=value, partition=self.rng.randrange(self.partitions),
                                 on_delivery=self.history.on_delivery)
                self.history.on_sent(value)
            except BufferError:
                seq -= 1
                producer.poll(0.05)
                continue
            producer.poll(0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        self.leftover += producer.flush(90)
        self.producer = producer


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict) -> None:
    client = AdminClient({"bootstrap.servers": bootstrap})
    futures = client.create_topics([NewTopic(topic, partitions, replication_factor=1, config=config)],
                                   operation_timeout=10)
    futures[topic].result(timeout=15)


def read_back(bootstrap: str, topic: str, partitions: int, timeout: float = 120) -> tuple[dict, dict]:
    """Reads every partition from the beginning to its high watermark, by assignment."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "checker-" + uuid.uuid4().hex[:8],  # never joined (assign, no commits)
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 4 * 1024 * 1024,
        "log_level": 0,
    })
    try:
        marks = {}
        for p in range(partitions):
            marks[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
        records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        pending = {p for p in range(partitions) if marks[p][1] > marks[p][0]}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read-back timed out; partitions still pending: {sorted(pending)}")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= marks[msg.partition()][1]:
                        pending.discard(msg.partition())
                    continue
                raise RuntimeError(f"read-back error: {msg.error()}")
            p = msg.partition()
            if msg.offset() < marks[p][1]:
                records[p].append((msg.offset(), msg.value()))
            if msg.offset() >= marks[p][1] - 1:
                pending.discard(p)
        return records, marks
    finally:
        c.close()


def analyse(history: History, records: dict, marks: dict, kills: list[float], tail_window: float) -> dict:
    acked = dict(history.acked)
    seen: Counter = Counter()
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    at: dict[tuple[int, int], bytes] = {}
    reordered: dict[int, int] = {}
    gap_free: dict[int, bool] = {}
    for p, recs in records.items():
        offsets = [o for o, _ in recs]
        low, high = marks[p]
        gap_free[p] = offsets == list(range(low, high))
        last_seq: dict[str, int] = {}
        bad = 0
        for o, v in recs:
            seen[v] += 1
            where[v].append((p, o))
            at[(p, o)] = v
            try:
                run, inst, seq = v.decode().split(":")
                seq = int(seq)
            except ValueError:
                continue
            if inst in last_seq and seq < last_seq[inst]:
                bad += 1
            last_seq[inst] = max(seq, last_seq.get(inst, -1))
        reordered[p] = bad
    lost = [v for v in acked if v not in seen]
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    unexpected = [v for v in seen if v not in history.sent]
    mismatched = [v for v, (p, o, _) in acked.items() if v in seen and (p, o) not in where[v]]
    reused = [v for v, (p, o, _) in acked.items() if (p, o) in at and at[(p, o)] != v]
    # Loss confined to the unflushed tail: every lost record was acknowledged shortly before
    # a kill (its age at the next kill is within the flush window).
    ages = []
    for v in lost:
        t = acked[v][2]
        later = [k for k in kills if k >= t - 0.5]
        ages.append((later[0] - t) if later else float("inf"))
    max_age = max(ages) if ages else 0.0
    return {
        "acknowledged": len(acked),
        "sent": len(history.sent),
        "delivery-failed": sum(history.failed.values()),
        "delivery-errors": dict(history.failed),
        "fatal-producer-errors": history.fatal,
        "read": sum(len(r) for r in records.values()),
        "lost": len(lost),
        "duplicated": duplicated,
        "unexpected": len(unexpected),
        "offset-mismatched": len(mismatched),
        "offset-reused": len(reused),
        "reordered": reordered,
        "gap-free": gap_free,
        "lost-max-age-before-kill-s": round(max_age, 3) if ages else None,
        "lost-outside-tail": sum(1 for a in ages if a > tail_window),
        "examples": {
            "lost": [v.decode(errors="replace") for v in lost[:5]],
            "unexpected": [v.decode(errors="replace") for v in unexpected[:5]],
            "offset-mismatched": [(v.decode(errors="replace"), acked[v][:2], where[v]) for v in mismatched[:5]],
        },
    }


def verdict(scenario: str, r: dict) -> list[str]:
    broken = []

    def need(cond: bool, what: str):
        if not cond:
            broken.append(what)

    all_gap_free = all(r["gap-free"].values())
    no_reorder = sum(r["reordered"].values()) == 0
    if scenario == "memory-honesty":
        need(r["lost"] > 0, "memory topic killed with SIGKILL but the checker reported no loss")
        return broken
    need(r["unexpected"] == 0, "unexpected records")
    need(all_gap_free, "a partition is not gap-free")
    need(r["duplicated"] == 0, "duplicated records")
    need(r["offset-mismatched"] == 0, "offset mismatches")
    need(no_reorder, "reordered records")
    if scenario in ("sigkill-fsync", "sigterm"):
        need(r["lost"] == 0, "acknowledged records lost")
    if scenario == "group":
        need(r["lost"] == 0, "acknowledged records lost")
        need(r["committed-backwards"] == 0, "a committed offset went backwards")
        need(r["committed-past-hw"] == 0, "a committed offset passed the high watermark")
        need(r["group-reached-end"], "the group did not commit up to the high watermark")
        need(r["acked-unseen-by-group"] == 0, "acknowledged records never seen by the group")
    if scenario == "sigkill-default":
        need(r["lost-outside-tail"] == 0, "lost records outside the unflushed tail")
    return broken


# ---------------------------------------------------------------------------
# Consumer-group scenario: members (subprocesses running `--member`) are SIGKILLed and
# restarted, and the broker too, while a monitor samples the committed offsets.


def member_main(bootstrap: str, topic: str, group: str, out: str) -> int:
    """A group member: subscribe, append `partition offset value` lines for every record to
    `out` (flushed), then commit synchronously (at least once). Runs until SIGTERM/SIGKILL."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
        "reconnect.backoff.max.ms": 500, "log_level": 0,
    })
    c.subscribe([topic])
    with open(out, "a") as f:
        while not stop.is_set():
            msgs = c.consume(500, 0.3)
            good = [m for m in msgs if not m.error()]
            if not good:
                continue
            for m in good:
                f.write(f"{m.partition()} {m.offset()} {m.value().decode()}\n")
            f.flush()
            os.fsync(f.fileno())
            try:
                c.commit(asynchronous=False)
            except Exception:
                pass  # rebalanced or broker down: the records are re-read (at least once)
    c.close()
    return 0


class GroupRun:
    """Three members (subprocesses running `--member`) read and commit from the start of the
    run, while producers write and the broker is killed; members are SIGKILLed and restarted
    too. A monitor thread samples the committed offsets and high watermarks."""

    def __init__(self, broker: SluiceBroker, topic: str, partitions: int, base: Path):
        import subprocess

        self.subprocess = subprocess
        self.broker, self.topic, self.partitions = broker, topic, partitions
        self.group = f"durability-group-{uuid.uuid4().hex[:8]}"
        self.outs = [base / f"member{i}.txt" for i in range(3)]
        self.members = [self.spawn(i) for i in range(3)]
        self.monitor = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": self.group, "log_level": 0,
                                 "enable.auto.commit": False})
        self.last: dict[int, int] = {}
        self.backwards = self.past_hw = self.samples = 0
        self.problems: list[str] = []
        self.latest: dict[int, tuple[int, int]] = {}  # partition -> (committed, high watermark)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.sampler, daemon=True)
        self.thread.start()

    def spawn(self, i: int):
        return self.subprocess.Popen(
            [sys.executable, __file__, "--member", self.broker.bootstrap, self.topic, self.group, str(self.outs[i])],
            stdout=self.subprocess.DEVNULL, stderr=self.subprocess.DEVNULL)

    def kill_member(self, i: int) -> None:
        self.members[i].kill()
        self.members[i].wait()
        self.members[i] = self.spawn(i)

    def sampler(self) -> None:
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        while not self.stop_event.is_set():
            time.sleep(0.3)
            try:
                # High watermarks after the commits: a commit read here was made before them.
                committed = self.monitor.committed(tps, timeout=3)
                hws = {p: self.monitor.get_watermark_offsets(TopicPartition(self.topic, p), timeout=3)[1]
                       for p in range(self.partitions)}
            except Exception:
                continue  # broker down
            self.samples += 1
            for tp in committed:
                if tp.offset < 0:
                    continue
                p = tp.partition
                if tp.offset < self.last.get(p, -1):
                    self.backwards += 1
                    self.problems.append(f"p{p}: committed {self.last[p]} -> {tp.offset}")
                if tp.offset > hws[p]:
                    self.past_hw += 1
                    self.problems.append(f"p{p}: committed {tp.offset} > high watermark {hws[p]}")
                self.last[p] = max(tp.offset, self.last.get(p, -1))
                self.latest[p] = (tp.offset, hws[p])

    def finish(self, history: History, final_hw: dict[int, int], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        done = False
        while time.monotonic() < deadline:
            if all(self.latest.get(p, (0, 0))[0] >= final_hw[p] for p in range(self.partitions)):
                done = True
                break
            time.sleep(0.5)
        self.stop_event.set()
        self.thread.join(10)
        for m in self.members:
            m.terminate()
        for m in self.members:
            try:
                m.wait(20)
            except Exception:
                m.kill()
        self.monitor.close()
        seen: set[bytes] = set()
        for out in self.outs:
            if out.exists():
                for line in out.read_text().splitlines():
                    parts = line.split(" ", 2)
                    if len(parts) == 3:
                        seen.add(parts[2].encode())
        unseen = [v for v in history.acked if v not in seen]
        return {"group-samples": self.samples, "committed-backwards": self.backwards,
                "committed-past-hw": self.past_hw, "group-reached-end": done,
                "acked-unseen-by-group": len(unseen), "group-problems": self.problems[:5]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    ap.add_argument("--cycles", type=int, default=5, help="kill/restart cycles")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="mean seconds of producing between kills (each uniform in [0.3, 2*duration])")
    ap.add_argument("--down", type=float, default=0.3, help="max seconds the broker stays down")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--producers", type=int, default=3)
    ap.add_argument("--rate", type=int, default=1000, help="values per second per producer")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--data-dir", default=None, help="default: a fresh temporary directory")
    ap.add_argument("--json", action="store_true", help="print the result as JSON too")
    ap.add_argument("--verbose", action="store_true", help="show librdkafka's logs")
    args = ap.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    config, sig = SCENARIOS[args.scenario]
    tmp = tempfile.TemporaryDirectory(prefix="sluice-durability-") if args.data_dir is None else None
    base = Path(args.data_dir or tmp.name)
    broker = SluiceBroker(base / "data").start()
    log(f"scenario {args.scenario}, seed {seed}, broker {broker.bootstrap}, data {broker.data_dir}")
    topic = f"durability-{args.scenario}-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, args.partitions, config)

    history = History()
    run_id = uuid.uuid4().hex[:6]
    threads = [ProducerThread(broker.bootstrap, topic, args.partitions, history, run_id, args.rate)
               for _ in range(args.producers)]
    for t in threads:
        t.start()
    group = GroupRun(broker, topic, args.partitions, base) if args.scenario == "group" else None
    kills: list[float] = []
    started = time.monotonic()
    try:
        for cycle in range(1, args.cycles + 1):
            time.sleep(rng.uniform(0.3, 2 * args.duration))
            before = len(history.acked)
            if group is not None and cycle % 2 == 0:
                i = rng.randrange(3)
                group.kill_member(i)
                log(f"cycle {cycle}/{args.cycles}: group member {i} SIGKILLed and restarted")
                continue
            kills.append(time.monotonic())
            if sig == signal.SIGKILL:
                broker.kill()
            else:
                status = broker.stop()
                if status != 0:
                    log(f"broker exited with {status} on SIGTERM")
                    return 1
            time.sleep(rng.uniform(0, args.down))
            broker.start()
            log(f"cycle {cycle}/{args.cycles}: {'SIGKILL' if sig == signal.SIGKILL else 'SIGTERM'}, "
                f"restarted; acknowledged so far {before}")
        time.sleep(rng.uniform(0.5, args.duration))
    finally:
        for t in threads:
            t.stop_event.set()
        for t in threads:
            t.join(120)
    leftover = sum(t.leftover for t in threads)
    log(f"producers stopped after {time.monotonic() - started:.1f}s ({leftover} messages undelivered)")
    records, marks = read_back(broker.bootstrap, topic, args.partitions)
    group_result = None
    if group is not None:
        log("waiting for the group to commit up to the high watermarks")
        group_result = group.finish(history, {p: marks[p][1] for p in range(args.partitions)})
    status = broker.stop()
    tail_window = (DEFAULT_FLUSH_MS + HOUSEKEEPING_MS) / 1000 + 1.0
    r = analyse(history, records, marks, kills, tail_window)
    r.update({"scenario": args.scenario, "cycles": args.cycles, "seed": seed, "partitions": args.partitions,
              "broker-exit-on-final-sigterm": status})
    if group_result is not None:
        r.update(group_result)
    broken = verdict(args.scenario, r)
    print(f"scenario {args.scenario}: cycles {args.cycles}, acknowledged {r['acknowledged']} "
          f"(sent {r['sent']}, delivery failures {r['delivery-failed']}, fatal producer errors "
          f"{r['fatal-producer-errors']}), read {r['read']}")
    print(f"  lost {r['lost']}, duplicated {r['duplicated']}, unexpected {r['unexpected']}, "
          f"offset-mismatched {r['offset-mismatched']}, offset-reused {r['offset-reused']}")
    print(f"  reordered per partition {r['reordered']}")
    print(f"  gap-free per partition {r['gap-free']}")
    if r["lost"]:
        print(f"  lost: max age before the next kill {r['lost-max-age-before-kill-s']}s, "
              f"outside the unflushed tail ({tail_window}s) {r['lost-outside-tail']}; e.g. {r['examples']['lost']}")
    if r["delivery-errors"]:
        print(f"  delivery errors {r['delivery-errors']}")
    if group_result is not None:
        print(f"  group: committed-offset samples {r['group-samples']}, went backwards {r['committed-backwards']}, "
              f"past the high watermark {r['committed-past-hw']}, reached the end {r['group-reached-end']}, "
              f"acknowledged records never seen by the group {r['acked-unseen-by-group']} {r['group-problems']}")
    if args.json:
        print(json.dumps(r, default=str))
    if status != 0:
        broken.append(f"broker exited with {status} on the final SIGTERM")
    if broken:
        print(f"BROKEN: {'; '.join(broken)}")
        print(broker.log_tail(20))
        return 1
    print("OK: the scenario's promise holds")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--member":
        sys.exit(member_main(*sys.argv[2:]))
    sys.exit(main())

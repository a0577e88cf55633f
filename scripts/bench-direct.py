#!/usr/bin/env python3
"""Throughput and latency of SluiceDirect (ZMTP 3.1 in Swift) against libzmq (pyzmq), same run.

Sender→receiver pairs, alternated over --rounds (the order rotates each round), medians
reported:

    pyzmq→pyzmq   libzmq on both sides (the reference)
    swift→pyzmq   the SluiceDirect library (Benchmarks/DirectBench) → a pyzmq SUB/PULL
    pyzmq→swift   a pyzmq PUB/PUSH → the SluiceDirect library
    swift→swift   SluiceDirect on both sides
    cli→cli       `sluice direct pub|push` → `sluice direct sub|pull` (not in the default set)

"swift" is a small program on the library (one `send` per message, as the pyzmq side
does), so swift and pyzmq are compared as libraries. "cli" is the `sluice direct` CLI, whose
figures include a pipe: a Python process feeds the sender's stdin (one line per message)
and reads the receiver's stdout (one line per message). Every Python side runs in a
process of its own (no GIL sharing).

Tests, each with --size-byte single-frame messages (default 100):
  throughput  PUB→SUB and PUSH→PULL: --messages sent as fast as possible; the rate is
              messages received / (last - first arrival) at the receiver. PUB drops at the
              high-water mark (--hwm, every socket, default 1000 as libzmq), so the share
              delivered is shown too.
  latency     PUB→SUB paced at --rate for --duration seconds; each message carries its
              send time (time.monotonic_ns(), one clock for every process on the machine);
              the receiver takes its own reading on arrival (for the Swift receiver: when
              the line is read from its stdout). p50/p99/p99.9/max in microseconds.

CPU seconds of the sluice processes (user+system, from wait4's rusage) are reported per run.

    swift build -c release --product sluice --product DirectBench --scratch-path .build-release
    scripts/bench-direct.py                                  # release build, defaults
    scripts/bench-direct.py --bin .build/debug/sluice --lib-bin .build/debug/DirectBench \
        --rounds 1 --messages 20000
    scripts/bench-direct.py --pairs pyzmq-swift,swift-swift --tests latency --rate 50000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sluiceproc import free_port, percentile

REPO = Path(__file__).resolve().parent.parent
PAIRS = ["pyzmq-pyzmq", "swift-pyzmq", "pyzmq-swift", "swift-swift", "cli-cli"]
DEFAULT_PAIRS = PAIRS[:4]
TESTS = ["pubsub", "pushpull", "latency"]
TEST_TITLES = {
    "pubsub": "PUB→SUB throughput",
    "pushpull": "PUSH→PULL throughput",
    "latency": "PUB→SUB latency",
}

# A message: kind (W warm-up, D data), sequence number, send time, padding; one line,
# so it travels unchanged through the CLI's stdin and stdout.
HEADER = 1 + 10 + 1 + 20 + 1


def message(kind: bytes, seq: int, sent_ns: int, size: int) -> bytes:
    head = b"%s%010d %020d " % (kind, seq, sent_ns)
    return head + b"x" * (size - len(head))


def sent_time(msg: bytes) -> int:
    return int(msg[12:32])


# ---------------------------------------------------------------------------
# The Swift CLI, as a child of the process that drives it (wait4 gives its rusage).


def start_cli(binary: str, args: list[str], stdin=None, stdout=None) -> subprocess.Popen:
    return subprocess.Popen(
        [binary, "direct", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, "SWIFT_BACKTRACE": "enable=no"},
    )


def reap(proc: subprocess.Popen, timeout: float, kill: bool = False) -> tuple[int, float]:
    """Waits for (or, kill=True, terminates) a CLI process; returns its exit status and
    CPU seconds."""
    if kill and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        time.sleep(0.01)


def start_lib(binary: str, args: list[str], stdin=None) -> subprocess.Popen:
    return subprocess.Popen(
        [binary, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "SWIFT_BACKTRACE": "enable=no"},
    )


def read_lines(proc: subprocess.Popen, timeout: float):
    """Yields stdout lines of a DirectBench process until it ends or `timeout` passes."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    rest = b""
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from lines
    if rest:
        yield rest


def wait_bound(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Reads stderr up to `sluice direct: TYPE bound to ...`."""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    seen = b""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            if re.search(rb"bound to tcp://", seen):
                return
    raise RuntimeError(f"sluice did not bind: {seen.decode(errors='replace')}")


# ---------------------------------------------------------------------------
# Receivers: report (received data messages, first arrival ns, last arrival ns,
# latencies ns, swift cpu s).


def receiver_main(impl, socket_kind, port, params, bound, ready, results):
    try:
        results.put(("rx", _receiver(impl, socket_kind, port, params, bound, ready)))
    except BaseException as e:  # report, do not hang the parent
        results.put(("rx-error", repr(e)))


def _receiver(impl, socket_kind, port, params, bound, ready):
    expected, idle_s, timeout_s = params["expected"], params["idle"], params["timeout"]
    latency = params["latency"]
    count, first, last, lat = 0, None, None, []
    deadline = time.monotonic() + timeout_s

    if impl == "pyzmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB if socket_kind == "sub" else zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, params["hwm"])
        if socket_kind == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.bind(f"tcp://127.0.0.1:{port}")
        bound.set()
        recv, poll = sock.recv, sock.poll
        while count < expected and time.monotonic() < deadline:
            if not poll(int(idle_s * 1000) if first is not None else 100):
                if first is not None:
                    break  # idle after data: the rest was dropped
                continue
            msg = recv()
            now = time.monotonic_ns()
            if msg[:1] != b"D":
                ready.set()
                continue
            if first is None:
                first = now
                ready.set()
            last = now
            count += 1
            if latency:
                lat.append(now - sent_time(msg))
        ctx.destroy(linger=0)
        return count, first, last, lat, None

    if impl == "swift":
        import json

        proc = start_lib(params["lib_bin"], [
            "receive", "--type", socket_kind, "--bind", f"tcp://127.0.0.1:{port}", "--hwm", str(params["hwm"]),
            "--expected", str(expected), "--idle", str(idle_s)], stdin=subprocess.DEVNULL)
        result = None
        try:
            for line in read_lines(proc, timeout_s):
                if line.startswith(b"bound "):
                    bound.set()
                elif line == b"ready":
                    ready.set()
                elif line.startswith(b"{"):
                    result = json.loads(line)
                    break
        finally:
            _, cpu = reap(proc, 10, kill=result is None)
        if result is None:
            raise RuntimeError("DirectBench receive gave no result: " + proc.stderr.read().decode(errors="replace"))
        lat = result["latencies_ns"] if latency else []
        first = result["first_ns"] or None
        return result["count"], first, result["last_ns"], lat, cpu

    proc = start_cli(params["bin"], [socket_kind, "--bind", f"tcp://127.0.0.1:{port}", "--hwm", str(params["hwm"])],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        wait_bound(proc)
        bound.set()
        fd = proc.stdout.fileno()
        rest = b""
        while count < expected and time.monotonic() < deadline:
            if not select.select([fd], [], [], idle_s if first is not None else 0.1)[0]:
                if first is not None:
                    break
                continue
            chunk = os.read(fd, 1 << 20)
            now = time.monotonic_ns()
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line[:1] != b"D":
                    ready.set()
                    continue
                if first is None:
                    first = now
                    ready.set()
                last = now
                count += 1
                if latency:
                    lat.append(now - sent_time(line))
    finally:
        _, cpu = reap(proc, 5, kill=True)
    return count, first, last, lat, cpu


# ---------------------------------------------------------------------------
# Senders: report (data messages sent, swift cpu s, swift exit status).


def sender_main(impl, socket_kind, port, params, ready, results):
    try:
        results.put(("tx", _sender(impl, socket_kind, port, params, ready)))
    except BaseException as e:
        results.put(("tx-error", repr(e)))


def _paced(params, send_one):
    """Calls send_one(seq) at params['rate'] per second for params['duration'] seconds,
    catching up after late wake-ups, sleeping in between (no core burnt busy-waiting)."""
    rate, total = params["rate"], int(params["rate"] * params["duration"])
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            send_one(sent)
            sent += 1
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent


def _sender(impl, socket_kind, port, params, ready):
    size, n = params["size"], params["messages"]
    endpoint = f"tcp://127.0.0.1:{port}"

    if impl == "pyzmq":
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUB if socket_kind == "pub" else zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, params["hwm"])
        sock.connect(endpoint)
        # Warm-up: until the receiver saw something (for PUB: until the subscription is in).
        seq = 0
        while not ready.wait(0.01):
            sock.send(message(b"W", seq, 0, size))
            seq += 1
        if params["latency"]:
            sent = _paced(params, lambda i: sock.send(message(b"D", i, time.monotonic_ns(), size)))
        else:
            payloads = [message(b"D", i, 0, size) for i in range(n)]
            send = sock.send
            for p in payloads:
                send(p)
            sent = n
        ctx.destroy(linger=10_000)  # like the CLI at EOF: let queued messages out
        return sent, None, 0

    if impl == "swift":
        import json

        args = ["send", "--type", socket_kind, "--connect", endpoint, "--hwm", str(params["hwm"]),
                "--size", str(size)]
        args += (["--rate", str(params["rate"]), "--duration", str(params["duration"])] if params["latency"]
                 else ["--count", str(n)])
        proc = start_lib(params["lib_bin"], args, stdin=subprocess.PIPE)
        try:
            while not ready.wait(0.01):
                if proc.poll() is not None:
                    raise RuntimeError("DirectBench send ended early: " + proc.stderr.read().decode(errors="replace"))
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            sent = None
            for line in read_lines(proc, params["timeout"]):
                if line.startswith(b"{"):
                    sent = json.loads(line)["sent"]
            status, cpu = reap(proc, 30)
        except BaseException:
            reap(proc, 5, kill=True)
            raise
        if sent is None:
            raise RuntimeError("DirectBench send gave no result: " + proc.stderr.read().decode(errors="replace"))
        return sent, cpu, status

    args = [socket_kind, "--connect", endpoint, "--hwm", str(params["hwm"])]
    proc = start_cli(params["bin"], args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    fd = proc.stdin.fileno()

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    try:
        seq = 0
        while not ready.wait(0.01):
            write_all(message(b"W", seq, 0, size) + b"\n")
            seq += 1
        if params["latency"]:
            sent = _paced(params, lambda i: write_all(message(b"D", i, time.monotonic_ns(), size) + b"\n"))
        else:
            write_all(b"".join(message(b"D", i, 0, size) + b"\n" for i in range(n)))
            sent = n
        proc.stdin.close()
        status, cpu = reap(proc, 60)
    except BaseException:
        reap(proc, 5, kill=True)
        raise
    return sent, cpu, status


# ---------------------------------------------------------------------------


def run_one(pair: str, test: str, args) -> dict:
    tx_impl, rx_impl = pair.split("-")
    tx_kind, rx_kind = ("push", "pull") if test == "pushpull" else ("pub", "sub")
    latency = test == "latency"
    expected = int(args.rate * args.duration) if latency else args.messages
    params = {
        "bin": args.bin, "lib_bin": args.lib_bin, "size": args.size, "hwm": args.hwm, "messages": args.messages,
        "rate": args.rate, "duration": args.duration, "latency": latency,
        "expected": expected, "idle": 1.0, "timeout": 120.0,
    }
    ctx = mp.get_context("spawn")
    bound, ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
    port = free_port()
    rx = ctx.Process(target=receiver_main, args=(rx_impl, rx_kind, port, params, bound, ready, results))
    rx.start()
    if not bound.wait(30):
        rx.kill()
        return {"error": "receiver did not bind"}
    tx = ctx.Process(target=sender_main, args=(tx_impl, tx_kind, port, params, ready, results))
    tx.start()
    got = {}
    error = None
    try:
        for _ in range(2):
            kind, value = results.get(timeout=params["timeout"] + 30)
            if kind.endswith("error"):
                error = f"{kind}: {value}"
            got[kind] = value
    except Exception as e:  # queue.Empty
        error = f"timeout ({e!r})"
    for p in (tx, rx):
        p.join(10)
        if p.is_alive():
            p.kill()
    if error or "rx" not in got or "tx" not in got:
        return {"error": error or "no result"}
    count, first, last, lat, rx_cpu = got["rx"]
    sent, tx_cpu, tx_status = got["tx"]
    out = {"sent": sent, "received": count, "tx_cpu": tx_cpu, "rx_cpu": rx_cpu, "tx_status": tx_status}
    if count > 1:
        out["rate"] = (count - 1) / ((last - first) / 1e9)
    if latency and lat:
        lat.sort()
        us = [v / 1000 for v in lat]
        out.update(p50=percentile(us, 50), p99=percentile(us, 99), p999=percentile(us, 99.9), max=us[-1])
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def label(pair: str) -> str:
    return pair.replace("-", "→")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / ".build-release/release/sluice"), help="the sluice binary (cli pairs)")
    ap.add_argument("--lib-bin", default=str(REPO / ".build-release/release/DirectBench"),
                    help="the DirectBench binary (swift pairs)")
    ap.add_argument("--messages", type=int, default=200_000, help="messages per throughput run")
    ap.add_argument("--size", type=int, default=100, help=f"message size in bytes (at least {HEADER})")
    ap.add_argument("--rate", type=int, default=10_000, help="latency runs: messages per second")
    ap.add_argument("--duration", type=float, default=3.0, help="latency runs: seconds of sending")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over every pair; medians are reported")
    ap.add_argument("--hwm", type=int, default=1000, help="high-water mark of every socket (libzmq's default: 1000)")
    ap.add_argument("--pairs", default=",".join(DEFAULT_PAIRS), help=f"comma-separated subset of {','.join(PAIRS)}")
    ap.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated subset of {','.join(TESTS)}")
    args = ap.parse_args()
    pairs = [p for p in args.pairs.split(",") if p]
    tests = [t for t in args.tests.split(",") if t]
    if bad := [p for p in pairs if p not in PAIRS] + [t for t in tests if t not in TESTS]:
        ap.error(f"unknown pair or test: {', '.join(bad)}")
    if args.size < HEADER:
        ap.error(f"--size must be at least {HEADER}")
    if any("cli" in p for p in pairs) and not os.access(args.bin, os.X_OK):
        ap.error(f"{args.bin} is not an executable (build it, or give --bin)")
    if any("swift" in p for p in pairs) and not os.access(args.lib_bin, os.X_OK):
        ap.error(f"{args.lib_bin} is not an executable (build it, or give --lib-bin)")
    args.bin = str(Path(args.bin).resolve())
    args.lib_bin = str(Path(args.lib_bin).resolve())

    import zmq

    print(f"sluice direct benchmark: {args.size}-byte messages, hwm {args.hwm}, "
          f"median of {args.rounds} round(s), pairs alternated")
    for path in {args.lib_bin if any("swift" in p for p in pairs) else None,
                 args.bin if any("cli" in p for p in pairs) else None} - {None}:
        print(f"  {path}" + ("  (DEBUG BUILD: not representative)" if "/debug/" in path else ""))
    print(f"  pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}; {os.cpu_count()} CPUs")
    print("  swift = the SluiceDirect library (Benchmarks/DirectBench), one send per message;")
    print("  cli = the `sluice direct` CLI, whose figures include a stdin pipe (sender, fed by")
    print("  Python) or a stdout pipe (receiver, read by Python), one line per message.")
    print("  swift cpu s: user+system of the Swift process(es) of a run, start-up included.")
    print()

    results: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        order = pairs[r % len(pairs):] + pairs[: r % len(pairs)]
        for pair in order:
            for test in tests:
                res = run_one(pair, test, args)
                results.setdefault((test, pair), []).append(res)
                summary = res.get("error") or (
                    f"{fmt(res.get('rate'), ',.0f')} msg/s, {res['received']}/{res['sent']}"
                    + (f", p50 {res['p50']:.0f} µs p99 {res['p99']:.0f} µs" if "p50" in res else "")
                )
                print(f"  round {r + 1}: {label(pair):<13} {test:<9} {summary}", file=sys.stderr, flush=True)

    for test in tests:
        print()
        if test == "latency":
            print(f"{TEST_TITLES[test]}: paced {args.rate:,}/s for {args.duration:g} s; microseconds")
            print(f"{'pair':<14}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'delivered':>12}{'swift cpu s tx/rx':>22}")
        else:
            print(f"{TEST_TITLES[test]}: {args.messages:,} messages sent as fast as possible; "
                  "rate = first-to-last arrival")
            print(f"{'pair':<14}{'msg/s':>12}{'MB/s':>8}{'delivered':>12}{'swift cpu s tx/rx':>22}{'µs cpu/msg':>12}")
        for pair in pairs:
            runs = results.get((test, pair), [])
            ok = [x for x in runs if "error" not in x]
            errors = [x["error"] for x in runs if "error" in x]
            if not ok:
                print(f"{label(pair):<14}  FAILED: {errors[0] if errors else 'not run'}")
                continue
            delivered = median([x["received"] / x["sent"] * 100 if x["sent"] else None for x in ok])
            tx_cpu, rx_cpu = median([x["tx_cpu"] for x in ok]), median([x["rx_cpu"] for x in ok])
            cpu = f"{fmt(tx_cpu, '.2f')}/{fmt(rx_cpu, '.2f')}"
            note = f"  ({len(errors)} failed run(s): {errors[0]})" if errors else ""
            bad_exit = [x["tx_status"] for x in ok if x["tx_status"]]
            if bad_exit:
                note += f"  (sender exit status {bad_exit[0]})"
            if test == "latency":
                print(f"{label(pair):<14}"
                      + "".join(f"{fmt(median([x.get(k) for x in ok]), '.0f'):>9}" for k in ("p50", "p99", "p999", "max"))
                      + f"{fmt(delivered, '.1f'):>11}%{cpu:>22}{note}")
            else:
                rate = median([x.get("rate") for x in ok])
                mbps = rate * args.size / 1e6 if rate else None
                cpu_total = (tx_cpu or 0) + (rx_cpu or 0)
                received = median([x["received"] for x in ok])
                per_msg = cpu_total / received * 1e6 if (tx_cpu is not None or rx_cpu is not None) and received else None
                print(f"{label(pair):<14}{fmt(rate, ',.0f'):>12}{fmt(mbps, '.1f'):>8}{fmt(delivered, '.1f'):>11}%"
                      f"{cpu:>22}{fmt(per_msg, '.2f'):>12}{note}")


if __name__ == "__main__":
    main()

"""What the benchmark scripts share: a free port, starting `sluice serve` (or waiting for any
server to accept), a consumer positioned at a partition's end, a process's CPU time, and the
percentile they report. Imported by scripts/bench-e2e.py,
scripts/abuse-latency.py and scripts/bench-brokers.py (run from any directory: Python puts
a script's own directory first on its path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc/PID/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sluice(binary: str, data_dir: str, settings: dict[str, str] | None = None,
                 timeout: float = 15, extra_args: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """Starts `sluice serve` on a free loopback port with `settings` (--set KEY=VALUE), its
    output appended to sluice.log beside `data_dir`; returns once it accepts connections
    (within `timeout` seconds: a broker with many partitions opens them all first).
    `extra_args`: more `serve` arguments (--http-listen, --metrics-listen, ...)."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    cmd = [binary, "serve", "--listen", bootstrap, "--data-dir", data_dir]
    for k, v in (settings or {}).items():
        cmd += ["--set", f"{k}={v}"]
    cmd += extra_args or []
    log = open(os.path.join(data_dir, "..", "sluice.log"), "ab")  # a restart keeps the earlier output
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child has its own copy
    wait_until_accepting(proc, port, "sluice", timeout)
    return proc, bootstrap


def wait_until_accepting(proc: subprocess.Popen, port: int, name: str, timeout: float = 15) -> None:
    """Returns once 127.0.0.1:`port` accepts connections; exits if `proc` ends first or
    `timeout` seconds pass (then it is killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}")
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def consumer_at_end(bootstrap: str, topic: str, config: dict | None = None):
    """A confluent-kafka consumer assigned partition 0 of `topic` at its end, returned once
    the end offset is resolved (its first PARTITION_EOF), so that it reads every record
    produced after this returns."""
    import uuid
    from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

    conf = {"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex[:8],
            "enable.auto.commit": False, "enable.partition.eof": True}
    conf.update(config or {})
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    while True:
        m = consumer.poll(0.1)
        if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            return consumer


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (a broker's graceful shutdown), then SIGKILL if it has not exited in `timeout` s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values))) - 1))
    return sorted_values[index]

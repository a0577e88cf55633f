"""What the benchmark scripts share: a free port, starting `sluice serve`, a process's CPU
time, and the percentile they report. Imported by scripts/bench-e2e.py,
scripts/abuse-latency.py and scripts/bench-brokers.py (run from any directory: Python puts
a script's own directory first on its path)."""

from __future__ import annotations

import os
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
                 timeout: float = 15) -> tuple[subprocess.Popen, str]:
    """Starts `sluice serve` on a free loopback port with `settings` (--set KEY=VALUE), its
    output appended to sluice.log beside `data_dir`; returns once it accepts connections
    (within `timeout` seconds: a broker with many partitions opens them all first)."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    cmd = [binary, "serve", "--listen", bootstrap, "--data-dir", data_dir]
    for k, v in (settings or {}).items():
        cmd += ["--set", f"{k}={v}"]
    log = open(os.path.join(data_dir, "..", "sluice.log"), "ab")  # a restart keeps the earlier output
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child has its own copy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, bootstrap
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"sluice exited with {proc.returncode}")
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("sluice did not start")


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values))) - 1))
    return sorted_values[index]

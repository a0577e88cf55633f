#!/usr/bin/env python3
"""Broker memory with many idle connections: RSS (VmRSS) of `sluice serve` before and
after opening N idle TCP connections (default 10,000) that complete no request, and after
one ApiVersions round trip on each (a connection that has been used).

    SLUICE_BIN=.build/debug/sluice scripts/idle-connections-rss.py [N]

`measure()` is also imported by compat/test_hostile.py and scripts/bench-scale.py (which
passes a `probe`: a good client's latency before and while the idle connections are open).
"""
from __future__ import annotations

import resource
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))
from conftest import SluiceBroker  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(n: int, settings: dict[str, str] | None = None, probe=None) -> dict:
    """`settings`: extra broker --set settings. `probe(bootstrap) -> dict`, if given, runs
    once before the connections are opened and once while they are open and idle; its
    results are returned as "probe_before" and "probe_idle"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1000
    if soft < want:  # the broker inherits this limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    with tempfile.TemporaryDirectory() as tmp:
        b = SluiceBroker(Path(tmp) / "data", {"max.connections": str(n + 100), **(settings or {})}).start()
        try:
            pid = b.proc.pid
            probed = {}
            if probe is not None:
                probed["probe_before"] = probe(b.bootstrap)
            time.sleep(1)
            before = rss_kb(pid)
            socks = []
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
                socks.append(s)
            time.sleep(2)
            idle = rss_kb(pid)
            if probe is not None:
                probed["probe_idle"] = probe(b.bootstrap)
            for s in socks:  # each now completes one request
                s.sendall(struct.pack(">ihhih", 13, 18, 0, 1, 3) + b"rss")
            answered = 0
            for s in socks:
                try:
                    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
                    s.recv(size, socket.MSG_WAITALL)
                    answered += 1
                except (OSError, struct.error) as e:
                    print(f"connection {socks.index(s)} not answered: {e!r}", file=sys.stderr)
                    break
            time.sleep(1)
            used = rss_kb(pid)
            alive = b.proc.poll() is None
            for s in socks:
                s.close()
            time.sleep(2)
            after_close = rss_kb(pid)
            return {"connections": n, "rss_before_kb": before, "rss_idle_kb": idle, "rss_used_kb": used,
                    "rss_after_close_kb": after_close, "growth_idle_kb": idle - before,
                    "growth_used_kb": used - before, "alive": alive, "answered": answered, **probed}
        finally:
            b.stop()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    r = measure(n)
    print(r)
    print(f"{n} idle connections: RSS {r['rss_before_kb'] / 1024:.1f} -> {r['rss_idle_kb'] / 1024:.1f} MiB "
          f"(+{r['growth_idle_kb'] / 1024:.1f} MiB, {r['growth_idle_kb'] * 1024 / n:.0f} B/connection); "
          f"after one request each {r['rss_used_kb'] / 1024:.1f} MiB; after closing all {r['rss_after_close_kb'] / 1024:.1f} MiB")

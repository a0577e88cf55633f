"""The data directory lock (`<data-dir>/.lock`, as Kafka's): a second `sluice serve` on a
directory in use exits at once, naming the directory and the first broker's process; a
broker killed with SIGKILL leaves nothing that blocks its restart."""

from __future__ import annotations

import os
import subprocess
import time

from conftest import free_port, sluice_binary
from helpers import admin


def serves(broker) -> bool:
    """A real request round trip (also lets the readiness probe's connection settle before the
    broker is stopped: a SIGTERM right after a connection is accepted can hit a shutdown race
    in the Kafka listener, unrelated to the lock)."""
    return admin(broker.bootstrap).list_topics(timeout=10) is not None


def test_second_broker_on_the_same_data_directory_exits_at_once(make_broker):
    first = make_broker()
    data_dir = os.path.realpath(first.data_dir)
    started = time.monotonic()
    second = subprocess.run(
        [str(sluice_binary()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(first.data_dir)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert second.returncode != 0, f"the second broker started:\n{second.stderr}"
    assert elapsed < 5, f"took {elapsed:.1f}s to give up"
    assert data_dir in second.stderr, second.stderr
    assert f"pid {first.proc.pid}" in second.stderr, second.stderr

    # The first one is untouched and keeps serving.
    assert first.proc.poll() is None
    assert serves(first)
    # Once it stops, the directory is free.
    first.restart()
    assert serves(first)


def test_a_killed_broker_does_not_block_its_restart(make_broker):
    broker = make_broker()
    pid = broker.proc.pid
    broker.kill()  # SIGKILL: the lock file stays, with the dead process's PID in it
    assert (broker.data_dir / ".lock").read_text().strip() == str(pid)
    broker.start()
    assert (broker.data_dir / ".lock").read_text().strip() == str(broker.proc.pid)
    assert serves(broker)

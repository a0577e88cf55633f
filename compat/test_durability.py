"""Durability under broker crashes: tools/durability/checker.py ("total queue" check),
a few kill/restart cycles per scenario. The long run is scripts/durability-long.sh."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, sluice_binary

CHECKER = REPO / "tools" / "durability" / "checker.py"


def run_checker(scenario: str, cycles: int = 3) -> tuple[int, str, dict]:
    cmd = [sys.executable, str(CHECKER), "--scenario", scenario, "--cycles", str(cycles),
           "--duration", "1.5", "--rate", "700"]
    env = {**os.environ, "SLUICE_BIN": str(sluice_binary())}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    out = proc.stdout + proc.stderr
    counts = {k: int(v) for k, v in re.findall(
        r"\b(acknowledged|lost|duplicated|unexpected|offset-mismatched|offset-reused) (\d+)", proc.stdout)}
    return proc.returncode, out, counts


@pytest.mark.parametrize("scenario", ["sigkill-fsync", "sigterm", "sigkill-default"])
def test_promise_holds(scenario):
    status, out, counts = run_checker(scenario)
    print(out)
    assert status == 0, out
    assert counts["acknowledged"] > 1000, out  # the run really produced under the kills
    assert counts["duplicated"] == 0 and counts["unexpected"] == 0 and counts["offset-mismatched"] == 0, out
    if scenario != "sigkill-default":
        assert counts["lost"] == 0, out


def test_group_commits_survive_member_and_broker_kills():
    """Members SIGKILLed and restarted, the broker too: committed offsets never go backwards
    nor past the high watermark, and the group sees every acknowledged record."""
    status, out, counts = run_checker("group", cycles=4)
    print(out)
    assert status == 0, out
    assert "went backwards 0, past the high watermark 0, reached the end True" in out, out
    assert "never seen by the group 0" in out, out


def test_memory_topic_loss_is_reported():
    """The checker is honest: a memory topic killed with SIGKILL loses records and the
    checker says so (its own exit status requires lost > 0)."""
    status, out, counts = run_checker("memory-honesty")
    print(out)
    assert status == 0, out
    assert counts["lost"] > 0, out

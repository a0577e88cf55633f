"""Fixtures for the real-client compatibility suite.

The suite builds nothing: it runs the already-built `sluice serve` binary (env
`SLUICE_BIN`, default `.build/debug/sluice` relative to the repository root) on a free
loopback port with a fresh temporary data directory, waits until it accepts connections,
and stops it with SIGTERM at the end (a broker that does not exit cleanly fails the test
that owns it).

    broker        one broker shared by the whole session (tests use fresh topic names)
    http_broker   one broker shared by the whole session with the HTTP front door on
                  (`--http-listen`, URL in `.http_url`; see the fixture for its settings)
    make_broker   factory for private brokers (restarts, special --set settings, http=True)
    names         fresh topic / group names for the current test
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def sluice_binary() -> Path:
    path = Path(os.environ.get("SLUICE_BIN", ".build/debug/sluice"))
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        pytest.exit(
            f"sluice binary {path} not found: build it first with `swift build --product sluice` "
            "(or point SLUICE_BIN at it)",
            returncode=2,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SluiceBroker:
    """One `sluice serve` process on a fixed port and data directory."""

    def __init__(
        self,
        data_dir: Path,
        settings: dict[str, str] | None = None,
        http: bool = False,
        extra_args: list[str] | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.settings = dict(settings or {})
        # More `serve` arguments (further --listen listeners, …), after the first listener.
        self.extra_args = list(extra_args or [])
        self.port: int | None = None
        # http=True: also serve the HTTP front door (`--http-listen`) on a port of its own.
        self.http = http
        self.http_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        assert self.http_port is not None, "this broker was made without http=True"
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 15.0) -> "SluiceBroker":
        assert self.proc is None, "already running"
        attempts = 1 if self.port is not None else 5  # a restart keeps its port
        for _ in range(attempts):
            if self.port is None or attempts > 1:
                self.port = free_port()
                if self.http:
                    self.http_port = free_port()
                    while self.http_port == self.port:
                        self.http_port = free_port()
            if self._start_once(timeout):
                return self
        raise RuntimeError(f"sluice did not start; log:\n{self.log_tail()}")

    def _start_once(self, timeout: float) -> bool:
        cmd = [str(sluice_binary()), "serve", "--listen", self.bootstrap, "--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        if self.http:
            cmd += ["--http-listen", f"127.0.0.1:{self.http_port}"]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n==== start #{self.starts}: {' '.join(cmd)}\n".encode())
        log.flush()
        # setpriv --pdeathsig: the broker gets SIGTERM if this test process dies (killed by a
        # timeout, Ctrl-C), so no broker outlives its pytest run. (No preexec_fn: client
        # threads are running.)
        if shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "TERM", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        waiting = [self.port] + ([self.http_port] if self.http else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False  # e.g. port taken between free_port() and bind: try another
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5):
                    waiting.pop(0)
                    if not waiting:
                        return True
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"sluice did not accept connections within {timeout}s; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status. Kills (and raises) if it hangs."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"sluice did not stop within {timeout}s of SIGTERM; log:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> "SluiceBroker":
        status = self.stop()
        assert status == 0, f"sluice exited with {status} on SIGTERM; log:\n{self.log_tail()}"
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _finish(broker: SluiceBroker) -> None:
    running = broker.proc is not None
    status = broker.stop()
    if running and status != 0:
        pytest.fail(f"sluice exited with status {status} on SIGTERM; log:\n{broker.log_tail()}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = SluiceBroker(tmp_path_factory.mktemp("sluice") / "data").start()
    yield b
    _finish(b)


@pytest.fixture(scope="session")
def http_broker(tmp_path_factory):
    """A shared broker with the HTTP front door. Auto-created topics get 3 partitions, and
    an idle event stream wakes every 500 ms (heartbeat), so a stream commits its group's
    offsets and notices a gone client within a second or so."""
    settings = {"num.partitions": "3", "http.sse.heartbeat.ms": "500"}
    b = SluiceBroker(tmp_path_factory.mktemp("sluice-http") / "data", settings, http=True).start()
    yield b
    _finish(b)


@pytest.fixture
def make_broker(tmp_path):
    """make_broker(settings=None, http=False) -> a private, started broker on a fresh data
    dir (http=True: with the HTTP front door, at its `.http_url`)."""
    started: list[SluiceBroker] = []

    def make(settings: dict[str, str] | None = None, http: bool = False) -> SluiceBroker:
        b = SluiceBroker(tmp_path / f"data{len(started)}", settings, http=http).start()
        started.append(b)
        return b

    yield make
    for b in started:
        _finish(b)


class Names:
    def __init__(self, test_name: str):
        self.base = re.sub(r"[^a-zA-Z0-9_-]", "-", test_name)[:60]
        self.count = 0

    def __call__(self, kind: str = "t") -> str:
        self.count += 1
        return f"{self.base}-{kind}{self.count}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def names(request) -> Names:
    """names() -> a fresh, valid topic name; names('g') for groups."""
    return Names(request.node.name)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # On failure, attach the tail of every involved broker's log to the report.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("broker", "http_broker", "make_broker"):
            value = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(value, SluiceBroker):
                report.sections.append((f"sluice log ({name})", value.log_tail()))

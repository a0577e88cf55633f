"""Network namespaces for the UDP tests (compat/test_feed.py, compat/test_statsd.py) and
scripts/bench-udp.py: a namespace of their own per test (`ip netns add`), its loopback up
with multicast on and a route for 224.0.0.0/4, so multicast works on 127.0.0.1 and an
iptables rule in it (random loss) touches nothing else on the machine. Everything runs
inside it: `sluice serve`, `sluice feed listen`, and the test's own sockets and Kafka
clients (`with ns.entered():` moves this thread into the namespace for a while; sockets
and client threads made there stay in it). Inside, every port is free, so the ports are
fixed. See ../shared/TESTING.md. Needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
    return result


class NetNS:
    """One network namespace: `close()` kills every process in it and deletes it."""

    def __init__(self, prefix: str = "sluice-feed"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        _sh("ip", "netns", "add", self.name)
        self.procs: list[subprocess.Popen] = []
        self._fd: int | None = None
        try:
            self.run("ip", "link", "set", "lo", "up")
            self.run("ip", "link", "set", "lo", "multicast", "on")
            self.run("ip", "route", "add", "224.0.0.0/4", "dev", "lo")
            self._fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        except BaseException:
            self.close()
            raise

    # --- commands in the namespace -------------------------------------------------------

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(self.cmd(*args), capture_output=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] {' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}"
            )
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        """A process in the namespace (SIGKILLed if this process dies: setpriv --pdeathsig;
        `ip netns exec` execs, so the pid is the command's own)."""
        cmd = self.cmd(*args)
        if shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + cmd
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        env = {**os.environ, "SWIFT_BACKTRACE": "enable=no"}
        env.update(kwargs.pop("env", {}))
        proc = subprocess.Popen(cmd, env=env, **kwargs)
        self.procs.append(proc)
        return proc

    # --- this thread in the namespace ----------------------------------------------------

    @contextlib.contextmanager
    def entered(self):
        """Runs the block with this thread in the namespace: sockets made there, and threads
        started there (a Kafka client's), belong to the namespace for good."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(self._fd)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(own)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_DGRAM) -> socket.socket:
        with self.entered():
            return socket.socket(family, type)

    def http_get(self, url: str, timeout: float = 10) -> str:
        with self.entered():
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode()

    def wait_tcp(self, port: int, timeout: float = 20, proc: subprocess.Popen | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            with self.entered():
                s = socket.socket()
            try:
                s.settimeout(0.5)
                s.connect(("127.0.0.1", port))
                return True
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        return False

    # --- packet loss ------------------------------------------------------------------------

    def drop_random(self, dest: str, probability: float) -> list[str]:
        """iptables INPUT rule dropping a random share of datagrams to `dest`; returns the rule
        (for `delete_rule`)."""
        rule = ["INPUT", "-d", dest, "-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"]
        self.run("iptables", "-A", *rule)
        return rule

    def drop_all(self, dest: str) -> list[str]:
        rule = ["INPUT", "-d", dest, "-j", "DROP"]
        self.run("iptables", "-A", *rule)
        return rule

    def delete_rule(self, rule: list[str]) -> None:
        self.run("iptables", "-D", *rule)

    def dropped(self, dest: str) -> int:
        """Packets the DROP rules for `dest` in INPUT dropped so far."""
        out = self.run("iptables", "-L", "INPUT", "-v", "-n", "-x").stdout.decode()
        total = 0
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 9 and f[2] == "DROP" and dest in f[7:9]:
                total += int(f[0])
        return total

    # --- the kernel's view ------------------------------------------------------------------

    def group_users(self, group: str) -> int:
        """Sockets that joined `group` on lo (/proc/net/igmp of the namespace)."""
        want = "%08X" % int.from_bytes(socket.inet_aton(group), "little")
        out = self.run("cat", "/proc/net/igmp").stdout.decode()
        users = 0
        in_lo = False
        for line in out.splitlines():
            if not line.startswith("\t") and not line.startswith(" "):
                in_lo = ":" in line and line.split()[1].startswith("lo")
                continue
            f = line.split()
            if in_lo and f and f[0].upper() == want:
                users += int(f[1])
        return users

    def udp_snmp(self) -> dict[str, int]:
        """The `Udp:` counters of /proc/net/snmp in the namespace (InDatagrams, RcvbufErrors, …)."""
        lines = [l.split() for l in self.run("cat", "/proc/net/snmp").stdout.decode().splitlines() if l.startswith("Udp:")]
        return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}

    # --- teardown -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        out = _sh("ip", "netns", "pids", self.name, check=False).stdout.decode()
        return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        _sh("ip", "netns", "del", self.name, check=False)


class NsBroker:
    """`sluice serve` inside a namespace on fixed ports: Kafka 127.0.0.1:9092, /metrics on
    127.0.0.1:9100, plus `args` (e.g. --statsd-listen) and `settings` (--set)."""

    PORT = 9092
    METRICS_PORT = 9100

    def __init__(self, ns: NetNS, binary: str | Path, data_dir: Path, settings: dict[str, str] | None = None,
                 args: list[str] | None = None, port: int | None = None, metrics_port: int | None = None):
        self.ns = ns
        self.binary = str(binary)
        self.data_dir = Path(data_dir)
        self.settings = dict(settings or {})
        self.args = list(args or [])
        self.port = port or self.PORT
        self.metrics_port = metrics_port or self.METRICS_PORT
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 20) -> "NsBroker":
        cmd = [self.binary, "serve", "--listen", self.bootstrap, "--data-dir", str(self.data_dir),
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *self.args]
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        with open(self.log_path, "ab") as log:
            log.write(f"==== ip netns exec {self.ns.name} {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = self.ns.popen(*cmd, stdout=log, stderr=subprocess.STDOUT)
        if not (self.ns.wait_tcp(self.port, timeout, self.proc) and self.ns.wait_tcp(self.metrics_port, timeout, self.proc)):
            raise RuntimeError(f"sluice did not start in {self.ns.name}; log:\n{self.log_tail()}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> int:
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

    def metrics(self) -> dict[str, float]:
        """The samples of /metrics, by `name{labels}`."""
        out = {}
        for line in self.ns.http_get(self.metrics_url).splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

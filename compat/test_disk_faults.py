"""Disk faults under a running `sluice serve`:

- a full disk (a tiny tmpfs as the data directory);
- fsync failing with EIO (`fiu-run` preloads libfiu; `fiu-ctrl` turns the failure of
  fdatasync on and off in the running broker);
- a file system that turns read-only (a loop-mounted ext4 with errors=remount-ro, sent an
  error through /sys/fs/ext4/<dev>/trigger_fs_error, as a failing disk would).

In each case the producer must get KAFKA_STORAGE_ERROR instead of an acknowledgement, the
broker must stay up and keep serving what the fault does not touch, and once the fault
clears (and, where the log went offline, after a restart) every acknowledged record is
there. See docs/storage.md ("Disk faults") for the behaviour these tests pin down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import KafkaError

from conftest import SluiceBroker, sluice_binary
from helpers import consume, create_topic, producer

EIO = 5


def _require_root(what: str) -> None:
    # Not a skip: the suite runs as root (CI and these machines); elsewhere it must say so.
    if os.geteuid() != 0:
        pytest.fail(f"{what} needs root; run the compat suite as root (as CI does)")


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run scripts/install-test-deps.sh")
    return path


class Deliveries:
    """Produces one record at a time (acks=all, no retries, no idempotence) so each
    delivery report carries the broker's own answer to that record."""

    def __init__(self, bootstrap: str):
        self.p = producer(bootstrap, acks="all", retries=0, **{"enable.idempotence": False, "linger.ms": 0})
        self.acked: dict[tuple[str, int], list[bytes]] = {}
        self.failed: dict[tuple[str, int], list[tuple[bytes, KafkaError]]] = {}

    def send(self, topic: str, partition: int, value: bytes) -> KafkaError | None:
        result: list = []
        self.p.produce(topic, value=value, partition=partition, on_delivery=lambda err, msg: result.append(err))
        remaining = self.p.flush(15)
        assert remaining == 0 and result, f"no delivery report for {topic}/{partition} within 15 s"
        err = result[0]
        if err is None:
            self.acked.setdefault((topic, partition), []).append(value)
        else:
            self.failed.setdefault((topic, partition), []).append((value, err))
        return err


def _assert_acked_present(bootstrap: str, d: Deliveries, topic: str, partition: int) -> list[bytes]:
    """Every acknowledged record is there exactly once, in order, at dense offsets from 0;
    the only other records are ones whose produce failed (written, never acknowledged)."""
    acked = d.acked.get((topic, partition), [])
    unacked = {v for v, _ in d.failed.get((topic, partition), [])}
    got = consume(bootstrap, topic, partition=partition, timeout=20)
    values = [r.value for r in got]
    assert [r.offset for r in got] == list(range(len(got))), f"{topic}/{partition}: offsets not dense"
    assert len(set(values)) == len(values), f"{topic}/{partition}: duplicated records"
    kept = [v for v in values if v not in unacked]
    lost = [v for v in acked if v not in set(values)]
    assert kept == acked, (f"{topic}/{partition}: {len(acked)} acknowledged, {len(lost)} lost {lost[:5]}, "
                           f"read back {kept[:5]}...{kept[-5:]}")
    extra = len(values) - len(kept)
    print(f"{topic}/{partition}: {len(acked)} acknowledged, 0 lost, 0 duplicated, "
          f"{extra} unacknowledged record(s) also present")
    return values


def _mount_tmpfs(path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


@pytest.mark.timeout(120)
def test_disk_full_gives_storage_error_and_recovers(tmp_path, names):
    _require_root("mounting a tmpfs")
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "3m")
    broker = None
    try:
        broker = SluiceBroker(mnt / "data").start()
        topic = names()
        create_topic(broker.bootstrap, topic, 1, {"flush.messages": "1"})
        # No retries, no idempotence: each delivery report carries the broker's own answer.
        p = producer(broker.bootstrap, acks="all", retries=0, **{"enable.idempotence": False, "linger.ms": 0})
        acked: list[bytes] = []
        errors: list = []

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked.append(msg.value())

        value = b"v" * 50_000
        for i in range(200):  # 10 MB into a 3 MB file system
            p.produce(topic, value=b"%06d" % i + value, partition=0, on_delivery=on_delivery)
            p.flush(10)
            if errors:
                break
        assert errors, "the disk never filled up"
        assert errors[0].code() == KafkaError.KAFKA_STORAGE_ERROR, errors[0]
        assert acked, "nothing was acknowledged before the disk filled"
        assert broker.proc.poll() is None, "the broker died on a full disk"

        # Still serving: metadata answers and the acknowledged records read back.
        got = consume(broker.bootstrap, topic, count=len(acked))
        assert [r.value for r in got] == acked

        # Free space: appends work again, and every acknowledged record is still there.
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        errors.clear()
        for i in range(200, 205):
            p.produce(topic, value=b"%06d" % i + value, partition=0, on_delivery=on_delivery)
        p.flush(10)
        assert not errors, errors
        got = consume(broker.bootstrap, topic, count=len(acked))
        assert [r.value for r in got] == acked
        assert [int(v[:6]) for v in acked[-5:]] == list(range(200, 205))

        # And after a restart.
        broker.restart()
        got = consume(broker.bootstrap, topic, count=len(acked))
        assert [r.value for r in got] == acked
    finally:
        if broker is not None:
            broker.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class _FiuBroker(SluiceBroker):
    """`sluice serve` under fiu-run (libfiu's POSIX preload, remote control on)."""

    def __init__(self, data_dir, fiu_dir):
        super().__init__(data_dir)
        self.control = str(fiu_dir / "ctl")
        wrapper = fiu_dir / "sluice-under-fiu"
        wrapper.write_text(f'#!/bin/sh\nexec fiu-run -x -f {self.control} {sluice_binary()} "$@"\n')
        wrapper.chmod(0o755)
        self.wrapper = str(wrapper)

    def _start_once(self, timeout: float) -> bool:
        saved = os.environ.get("SLUICE_BIN")
        os.environ["SLUICE_BIN"] = self.wrapper  # conftest's sluice_binary() reads it per start
        try:
            return super()._start_once(timeout)
        finally:
            if saved is None:
                del os.environ["SLUICE_BIN"]
            else:
                os.environ["SLUICE_BIN"] = saved

    def fiu(self, command: str) -> None:
        # setpriv, the wrapper and fiu-run all exec: the Popen pid is the broker's.
        subprocess.run(["fiu-ctrl", "-f", self.control, "-c", command, str(self.proc.pid)], check=True, timeout=10)


@pytest.mark.timeout(120)
def test_fsync_eio_gives_storage_error_and_loses_nothing_acknowledged(tmp_path, names):
    _require_tool("fiu-run")
    _require_tool("fiu-ctrl")
    broker = _FiuBroker(tmp_path / "data", tmp_path).start()
    try:
        bs = broker.bootstrap
        durable, other, memory = names(), names(), names()
        create_topic(bs, durable, 2, {"flush.messages": "1"})
        create_topic(bs, other, 1, {"flush.messages": "1"})
        create_topic(bs, memory, 1, {"sluice.storage": "memory"})
        d = Deliveries(bs)
        for i in range(20):
            for topic, partition in ((durable, 0), (durable, 1), (other, 0)):
                assert d.send(topic, partition, b"before-%d" % i) is None

        # fdatasync fails with EIO while one record goes to durable/0. Nothing else writes
        # to disk in this window (the other logs have nothing unflushed).
        broker.fiu(f"enable name=posix/io/sync/fdatasync,failinfo={EIO}")
        try:
            err = d.send(durable, 0, b"during-fault")
            assert err is not None, "acknowledged although its fsync failed"
            assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
            # The broker itself is fine: metadata answers and a memory topic takes writes.
            assert broker.proc.poll() is None, "the broker died on a failed fsync"
            assert d.send(memory, 0, b"memory-during-fault") is None
        finally:
            broker.fiu("disable name=posix/io/sync/fdatasync")

        # The fault has cleared. The log whose fsync failed stays offline (its unflushed pages
        # may be gone: retrying the fsync could report lost data as durable) ...
        err = d.send(durable, 0, b"after-fault")
        assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
        # ... while every other partition and topic works as before.
        for i in range(5):
            assert d.send(durable, 1, b"after-%d" % i) is None
            assert d.send(other, 0, b"after-%d" % i) is None
        assert broker.proc.poll() is None
        _assert_acked_present(bs, d, durable, 1)
        _assert_acked_present(bs, d, other, 0)
        # The operator is told, once, within the housekeeping interval (1 s).
        deadline = time.monotonic() + 5
        while f"partition {durable}-0 is offline" not in broker.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no offline report in the log:\n{broker.log_tail()}"
            time.sleep(0.2)
        time.sleep(1.5)
        assert broker.log_path.read_text(errors="replace").count(f"partition {durable}-0 is offline") == 1

        # A restart (without the fault) brings the partition back with everything acknowledged.
        status = broker.stop()
        assert status == 0, f"sluice exited with {status} on SIGTERM after the fault; log:\n{broker.log_tail()}"
        broker.start()
        for topic, partition in ((durable, 0), (durable, 1), (other, 0)):
            _assert_acked_present(bs, d, topic, partition)
        assert d.send(durable, 0, b"after-restart") is None
        values = _assert_acked_present(bs, d, durable, 0)
        assert values[-1] == b"after-restart"
    finally:
        broker.stop()


def _ext4_loop_mount(image, mnt, size_mb: int = 32) -> str:
    """A fresh ext4 image loop-mounted with errors=remount-ro; returns the device name."""
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mnt.mkdir(parents=True, exist_ok=True)
    _mount_ext4(image, mnt)
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mnt)], check=True, capture_output=True,
                            text=True).stdout.strip()
    return os.path.basename(source)


def _mount_ext4(image, mnt) -> None:
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)], check=True)


def _is_read_only(mnt) -> bool:
    probe = mnt / "probe"
    try:
        probe.write_bytes(b"x")
    except OSError as e:
        return e.errno == 30  # EROFS
    probe.unlink()
    return False


@pytest.mark.timeout(180)
def test_read_only_file_system_gives_storage_error_and_loses_nothing_acknowledged(tmp_path, names):
    _require_root("loop-mounting an ext4 image")
    _require_tool("mkfs.ext4")
    _require_tool("e2fsck")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    device = _ext4_loop_mount(image, mnt)
    trigger = f"/sys/fs/ext4/{device}/trigger_fs_error"
    if not os.path.exists(trigger):
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        pytest.fail(f"{trigger} missing: this kernel cannot turn an ext4 read-only under a running broker")
    broker = None
    try:
        broker = SluiceBroker(mnt / "data").start()
        bs = broker.bootstrap
        durable, default, memory = names(), names(), names()
        create_topic(bs, durable, 1, {"flush.messages": "1"})
        create_topic(bs, default, 1, {})  # flush.ms=1000: acknowledged from the page cache
        create_topic(bs, memory, 1, {"sluice.storage": "memory"})
        d = Deliveries(bs)
        for i in range(20):
            assert d.send(durable, 0, b"before-%d" % i) is None
            assert d.send(default, 0, b"before-%d" % i) is None
        # Let the time-based flush cover the default topic (flush.ms=1000, checked every
        # second): what it acknowledged is then on disk too.
        time.sleep(3)

        # The file system turns read-only under the broker, as ext4 does on an I/O error with
        # errors=remount-ro. (A plain `mount -o remount,ro` is refused while the broker holds
        # files open for writing.)
        with open(trigger, "w") as f:
            f.write("sluice compat test: the disk failed\n")
        assert _is_read_only(mnt), "the file system did not turn read-only"

        for topic in (durable, default):
            err = d.send(topic, 0, b"read-only")
            assert err is not None, f"{topic}: acknowledged on a read-only file system"
            assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
        # The broker stays up: metadata answers and a memory topic takes writes.
        assert broker.proc.poll() is None, "the broker died on a read-only file system"
        assert d.send(memory, 0, b"memory-while-read-only") is None
        assert d.send(durable, 0, b"read-only-again").code() == KafkaError.KAFKA_STORAGE_ERROR
        _assert_acked_present(bs, d, memory, 0)

        # Clear the fault the way an operator would: stop the broker, unmount, fsck, mount
        # read-write again, start. Every acknowledged record is there.
        status = broker.stop()
        assert status == 0, f"sluice exited with {status} on SIGTERM on a read-only disk; log:\n{broker.log_tail()}"
        subprocess.run(["umount", str(mnt)], check=True)
        fsck = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, text=True)
        assert fsck.returncode in (0, 1), f"e2fsck exited {fsck.returncode}:\n{fsck.stdout}{fsck.stderr}"
        _mount_ext4(image, mnt)
        assert not _is_read_only(mnt)
        broker.start()
        _assert_acked_present(bs, d, durable, 0)
        _assert_acked_present(bs, d, default, 0)
        assert d.send(durable, 0, b"after-remount") is None
        assert d.send(default, 0, b"after-remount") is None
        assert _assert_acked_present(bs, d, durable, 0)[-1] == b"after-remount"
    finally:
        if broker is not None:
            broker.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)

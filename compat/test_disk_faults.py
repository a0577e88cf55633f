"""Disk faults under a running broker: a full disk (a tiny tmpfs as the data directory).

The producer must get KAFKA_STORAGE_ERROR instead of an acknowledgement, the broker must
stay up and keep answering, and once space is freed, produce works again and nothing that
was acknowledged is missing.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from confluent_kafka import KafkaError

from conftest import SluiceBroker
from helpers import consume, create_topic, producer


def _mount_tmpfs(path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


@pytest.mark.timeout(120)
def test_disk_full_gives_storage_error_and_recovers(tmp_path, names):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
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

"""A partition whose acknowledged data the disk damaged: `sluice storage verify` finds it, the
broker serves the records before the damage read-only and refuses produce, and `sluice
storage repair --confirm` (only with the broker stopped) cuts the log so it serves again."""

from __future__ import annotations

import subprocess
from pathlib import Path

from confluent_kafka import KafkaError

from conftest import sluice_binary
from helpers import consume, create_topic, producer


def storage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(sluice_binary()), "storage", *args], capture_output=True, text=True, timeout=60)


def batch_positions(path: Path) -> list[int]:
    data = path.read_bytes()
    positions, position = [], 0
    while position + 12 <= len(data):
        positions.append(position)
        position += int.from_bytes(data[position + 8:position + 12], "big") + 12
    return positions


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def test_verify_and_repair_a_log_damaged_below_the_recovery_point(make_broker, names):
    broker = make_broker()
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"flush.messages": "1"})
    p = producer(broker.bootstrap, **{"linger.ms": 0})
    for i in range(10):  # ten batches, each fsynced before it is acknowledged
        p.produce(topic, value=f"v{i}".encode(), partition=0)
        assert p.flush(10) == 0
    assert broker.stop() == 0  # a clean stop checkpoints the recovery point at the log end
    partition = broker.data_dir / f"{topic}-0"
    assert int((partition / "recovery-point").read_text()) == 10  # zero-padded digits
    # Without the clean-shutdown marker the next start verifies every batch, as after a crash.
    (partition / ".clean-shutdown").unlink()

    segment = partition / "00000000000000000000.log"
    positions = batch_positions(segment)
    position = positions[5]
    data = bytearray(segment.read_bytes())
    data[positions[6] - 3] ^= 0x10  # in the record data of the batch at offset 5
    segment.write_bytes(bytes(data))

    before = snapshot(broker.data_dir)
    verified = storage("verify", str(broker.data_dir))
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"{topic}-0 CORRUPT 00000000000000000000.log:{position} CRC" in verified.stdout, verified.stdout
    assert "meta.json ok" in verified.stdout
    assert snapshot(broker.data_dir) == before, "verify changed the data directory"

    # The broker serves the intact records before the damage, and refuses produce.
    broker.start()
    assert [r.value for r in consume(broker.bootstrap, topic)] == [f"v{i}".encode() for i in range(5)]
    refused: list = []
    # No retries, no idempotence: the delivery report carries the broker's own answer.
    p = producer(broker.bootstrap, acks="all", retries=0, **{"enable.idempotence": False, "linger.ms": 0})
    p.produce(topic, value=b"refused", partition=0, on_delivery=lambda err, msg: refused.append(err))
    p.flush(10)
    assert refused and refused[0] is not None and refused[0].code() == KafkaError.KAFKA_STORAGE_ERROR, refused

    # Repair refuses to run while the broker holds the directory.
    locked = storage("repair", str(broker.data_dir), "--topic", topic, "--partition", "0", "--confirm")
    assert locked.returncode == 2 and "in use" in locked.stderr, locked.stdout + locked.stderr
    assert broker.stop() == 0

    # Without --confirm: what it would do, nothing changed.
    before = snapshot(broker.data_dir)
    dry = storage("repair", str(broker.data_dir), "--topic", topic, "--partition", "0")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert f"truncate 00000000000000000000.log to {position} bytes" in dry.stdout, dry.stdout
    assert "--confirm" in dry.stdout
    assert snapshot(broker.data_dir) == before, "repair without --confirm changed the data directory"

    repaired = storage("repair", str(broker.data_dir), "--topic", topic, "--partition", "0", "--confirm")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert segment.stat().st_size == position
    healthy = storage("verify", str(broker.data_dir))
    assert healthy.returncode == 0 and f"{topic}-0 ok" in healthy.stdout, healthy.stdout

    # The log is whole again: it takes appends from where the damage was.
    broker.start()
    p = producer(broker.bootstrap)
    p.produce(topic, value=b"after", partition=0)
    assert p.flush(10) == 0
    records = consume(broker.bootstrap, topic)
    assert [(r.offset, r.value) for r in records] == [(i, f"v{i}".encode()) for i in range(5)] + [(5, b"after")]

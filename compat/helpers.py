"""Client helpers shared by the compat tests (confluent-kafka, kcat, a raw-protocol probe)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp_type: int
    timestamp: int


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None) -> None:
    client = admin(bootstrap)  # keep a reference: a destroyed client fails its futures
    futures = client.create_topics(
        [NewTopic(name, partitions, replication_factor=1, config=config or {})], operation_timeout=10
    )
    futures[name].result(timeout=15)


def producer(bootstrap: str, **config) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5}
    conf.update(config)
    return Producer(conf)


def produce_all(p: Producer, topic: str, values, partition: int = 0, timeout: float = 30, **kwargs) -> list:
    """Produces every value (bytes) to one partition; returns the delivery reports (msg)."""
    delivered: list = []
    errors: list = []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or msg)

    for v in values:
        while True:
            try:
                p.produce(topic, value=v, partition=partition, on_delivery=on_delivery, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages not delivered within {timeout}s"
    assert not errors, f"delivery errors: {errors[:5]}"
    return delivered


def consumer(bootstrap: str, **config) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-" + uuid.uuid4().hex[:8],  # required by the client; never joined
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    conf.update(config)
    return Consumer(conf)


def consume(
    bootstrap: str,
    topic: str,
    partition: int = 0,
    offset: int = OFFSET_BEGINNING,
    count: int | None = None,
    timeout: float = 30,
    **config,
) -> list[Rec]:
    """Reads one partition by assignment: `count` records, or (count=None) up to the end."""
    c = consumer(bootstrap, **config)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if count is not None and len(out) >= count:
                break
            batch = c.consume(num_messages=10000, timeout=0.1)
            eof = False
            for m in batch:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof = True
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                ts_type, ts = m.timestamp()
                out.append(Rec(m.partition(), m.offset(), m.key(), m.value(), m.headers(), ts_type, ts))
            if eof and count is None:
                break
        if count is not None:
            assert len(out) >= count, f"consumed {len(out)} of {count} records within {timeout}s"
        else:
            assert time.monotonic() < deadline, f"did not reach the end within {timeout}s ({len(out)} records)"
        return out
    finally:
        c.close()


def kcat(*args: str, input: bytes | None = None, timeout: float = 60) -> bytes:
    result = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"kcat {' '.join(args)} exited {result.returncode}: {result.stderr.decode()[-2000:]}"
    return result.stdout


def partition_files_size(data_dir, topic: str, partition: int = 0) -> int:
    """Bytes of segment data on disk for one partition (the .log files)."""
    from pathlib import Path

    d = Path(data_dir) / f"{topic}-{partition}"
    return sum(f.stat().st_size for f in d.glob("*.log"))


# ---------------------------------------------------------------------------
# A tiny raw-protocol client, to look at what the broker actually sends back.


class RawClient:
    def __init__(self, bootstrap: str):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by broker")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        """Request header v1 (non-flexible versions only); returns the response body after
        the correlation id."""
        self.correlation += 1
        client_id = b"compat-raw"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client_id)) + client_id
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv_exact(4))[0]
        payload = self._recv_exact(size)
        (corr,) = struct.unpack(">i", payload[:4])
        assert corr == self.correlation, f"correlation {corr} != {self.correlation}"
        return payload[4:]

    def fetch_v4(self, partitions: list[tuple[str, int, int, int]], max_bytes: int, max_wait_ms: int = 0,
                 min_bytes: int = 1) -> tuple[int, dict]:
        """Fetch v4 for [(topic, partition, offset, partition_max_bytes)]. Returns (response
        size in bytes, {(topic, partition): (error, high_watermark, record_batches)}), each
        batch as (base_offset, last_offset, size)."""
        by_topic: dict[str, list] = {}
        for topic, part, offset, pmax in partitions:
            by_topic.setdefault(topic, []).append((part, offset, pmax))
        body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)
        body += struct.pack(">i", len(by_topic))
        for topic, parts in by_topic.items():
            t = topic.encode()
            body += struct.pack(">h", len(t)) + t + struct.pack(">i", len(parts))
            for part, offset, pmax in parts:
                body += struct.pack(">iqi", part, offset, pmax)
        resp = self.request(1, 4, body)
        size = len(resp) + 4
        pos = 4  # throttle_time_ms
        result = {}
        (ntopics,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        for _ in range(ntopics):
            (tlen,) = struct.unpack_from(">h", resp, pos)
            pos += 2
            topic = resp[pos:pos + tlen].decode()
            pos += tlen
            (nparts,) = struct.unpack_from(">i", resp, pos)
            pos += 4
            for _ in range(nparts):
                part, err, hw, lso = struct.unpack_from(">ihqq", resp, pos)
                pos += 22
                (naborted,) = struct.unpack_from(">i", resp, pos)
                pos += 4
                pos += max(0, naborted) * 16
                (rlen,) = struct.unpack_from(">i", resp, pos)
                pos += 4
                records = resp[pos:pos + max(0, rlen)]
                pos += max(0, rlen)
                batches = []
                rpos = 0
                while rpos + 12 <= len(records):
                    base, blen = struct.unpack_from(">qi", records, rpos)
                    if rpos + 12 + blen > len(records):
                        break  # partial trailing batch (allowed by the protocol)
                    (last_delta,) = struct.unpack_from(">i", records, rpos + 23)
                    batches.append((base, base + last_delta, 12 + blen))
                    rpos += 12 + blen
                result[(topic, part)] = (err, hw, batches)
        return size, result


# ---------------------------------------------------------------------------
# Client quotas through kafka-python's protocol classes (confluent-kafka has no client-quota
# admin API): the client-id byte rates (test_overflow.py) and the ip connection creation
# rate (test_connection_rate.py).


def quota_request(bootstrap: str, request):
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:

        async def send():
            return await a._manager.send(request)

        return a._manager.run(send)
    finally:
        a.close()


def set_quota(bootstrap: str, name: str | None, key: str, value: float | None, entity_type: str = "client-id"):
    """Sets (value None: removes) one quota of the entity `entity_type` `name` (None: the default)."""
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

    E = AlterClientQuotasRequest.EntryData
    request = AlterClientQuotasRequest(
        entries=[
            E(
                entity=[E.EntityData(entity_type=entity_type, entity_name=name)],
                ops=[E.OpData(key=key, value=value or 0.0, remove=value is None)],
            )
        ],
        validate_only=False,
    )
    response = quota_request(bootstrap, request)
    assert response.entries[0].error_code == 0, response


def describe_quotas(
    bootstrap: str, match_type: int | None = None, entity_type: str = "client-id", match: str | None = None
) -> dict:
    """The quotas of `entity_type` entities, by entity name (None: the default entity): all of
    them (no filter in the request), or those one filter component selects (`match_type` 0: the
    entity named `match`, 1: the default, 2: any named one)."""
    from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest

    D = DescribeClientQuotasRequest
    components = [] if match_type is None else [D.ComponentData(entity_type=entity_type, match_type=match_type, match=match)]
    response = quota_request(bootstrap, D(components=components, strict=False))
    assert response.error_code == 0, response
    return {
        e.entity[0].entity_name: {v.key: v.value for v in e.values}
        for e in response.entries
        if e.entity[0].entity_type == entity_type
    }


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Reads until the peer closes (True) or `seconds` pass (False); returns what came."""
    deadline = time.monotonic() + seconds
    got = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, bytes(got)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, bytes(got)
        except (ConnectionResetError, BrokenPipeError):
            return True, bytes(got)
        if not chunk:
            return True, bytes(got)
        got += chunk


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Sends, ignoring a peer that closes first (what hostile-input tests expect)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass

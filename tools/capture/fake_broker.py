#!/usr/bin/env python3
"""A minimal fake Kafka broker that records every request frame it receives.

It answers just enough for real clients (kcat/librdkafka, confluent-kafka,
kafka-python, aiokafka) to get as far as sending Produce and Fetch requests:
ApiVersions, Metadata, InitProducerId, Produce, Fetch, ListOffsets,
FindCoordinator, OffsetFetch and OffsetCommit, at whatever version the client
sends (bodies are encoded from the Kafka JSON message definitions by
kafka_codec.py). One broker (node 0), every topic has one partition led by node 0,
produce always succeeds at base offset 0, fetches return no records with high
watermark 0.

Standalone use:
    python3 tools/capture/fake_broker.py --port 19092 --out /tmp/frames.jsonl
Each received frame is appended to --out as a JSON line (raw frame bytes in hex,
including the 4-byte size prefix). The capture driver (capture.py) instead embeds
FakeBroker and reads FakeBroker.frames directly.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import struct
import sys
import threading
import time
from typing import Any

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from kafka_codec import Schema, default_message_dir, parse_request_header, uvarint  # noqa: E402

# CLIENTS.md §1, "Advertise" column, for the keys this fake broker answers or may
# be asked about. Keys 11-14 (group membership) are advertised but not answered:
# the capture scenarios use assign(), never subscribe().
ADVERTISE: dict[int, tuple[int, int]] = {
    0: (3, 10),  # Produce
    1: (4, 12),  # Fetch
    2: (1, 7),  # ListOffsets
    3: (0, 12),  # Metadata
    8: (2, 9),  # OffsetCommit
    9: (1, 9),  # OffsetFetch
    10: (0, 4),  # FindCoordinator
    11: (0, 9),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 5),  # LeaveGroup
    14: (0, 5),  # SyncGroup
    18: (0, 4),  # ApiVersions
    22: (0, 4),  # InitProducerId
}

UNSUPPORTED_VERSION = 35
PRODUCER_ID = 1000
PRODUCER_EPOCH = 0


def topic_id(name: str) -> bytes:
    """A fixed, non-zero UUID per topic name (version-4 bits set)."""
    b = bytearray(hashlib.sha256(b"sluice-capture:" + name.encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


class FakeBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, schema: Schema | None = None,
                 topics: list[str] | None = None, fetch_wait_cap_ms: int = 250, log=None):
        self.host = host
        self.port = port
        self.schema = schema or Schema(default_message_dir())
        self.topics: list[str] = list(topics or [])
        self.fetch_wait_cap_ms = fetch_wait_cap_ms
        self.frames: list[dict[str, Any]] = []
        self.label = ""
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._lock = threading.Lock()
        self._conn_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.on_frame = None  # optional callback(frame_record)
        # Advertised ranges; capture.py may override entries for one scenario.
        self.advertise: dict[int, tuple[int, int]] = dict(ADVERTISE)

    # -- lifecycle ---------------------------------------------------------

    async def start_async(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def start_in_thread(self) -> None:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake broker did not start")

    def stop(self) -> None:
        if self._loop and self._server:
            async def close():
                self._server.close()
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def take_frames(self) -> list[dict[str, Any]]:
        with self._lock:
            f, self.frames = self.frames, []
            return f

    def set_label(self, label: str, advertise_overrides: dict[int, tuple[int, int]] | None = None) -> None:
        with self._lock:
            self.label = label
            self.advertise = dict(ADVERTISE)
            self.advertise.update(advertise_overrides or {})

    # -- connection handling -------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._conn_seq += 1
            conn = self._conn_seq
        try:
            while True:
                try:
                    size_b = await reader.readexactly(4)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                (size,) = struct.unpack(">i", size_b)
                if size < 8 or size > 64 * 1024 * 1024:
                    self.log(f"conn {conn}: bad frame size {size}, closing")
                    return
                try:
                    body = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                raw = size_b + body
                try:
                    hdr, off, flexible = parse_request_header(body, self.schema)
                except Exception as e:  # noqa: BLE001
                    self.log(f"conn {conn}: unparseable header: {e}")
                    return
                rec: dict[str, Any] = {"conn": conn, "time": time.time(), "raw": raw, "header": hdr,
                                       "bodyOffset": 4 + off}
                with self._lock:
                    rec["label"] = self.label
                    self.frames.append(rec)
                if self.on_frame:
                    self.on_frame(rec)
                try:
                    resp = await self._respond(hdr, body, off, rec)
                except Exception as e:  # noqa: BLE001
                    rec["error"] = repr(e)
                    self.log(f"conn {conn}: {self.schema_name(hdr['apiKey'])} v{hdr['apiVersion']}: {e!r}; closing")
                    return
                if resp is None:
                    continue
                writer.write(struct.pack(">i", len(resp)) + resp)
                try:
                    await writer.drain()
                except ConnectionError:
                    return
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    def schema_name(self, key: int) -> str:
        try:
            return self.schema.api_name(key)
        except KeyError:
            return f"api{key}"

    async def _respond(self, hdr: dict, body: bytes, off: int, rec: dict) -> bytes | None:
        key, ver, corr = hdr["apiKey"], hdr["apiVersion"], hdr["correlationId"]

        if key == 18:  # ApiVersions: response header is always v0
            lo, hi = self.advertise[18]
            if not lo <= ver <= hi:
                rbody = self.schema.response(18).encode(0, self._api_versions_body(UNSUPPORTED_VERSION))
            else:
                req, _ = self.schema.request(18).decode(ver, body, off)
                rec["request"] = req
                rbody = self.schema.response(18).encode(ver, self._api_versions_body(0))
            return struct.pack(">i", corr) + rbody

        if key not in self.advertise or not self.advertise[key][0] <= ver <= self.advertise[key][1]:
            raise ValueError("API/version not advertised")
        req, end = self.schema.request(key).decode(ver, body, off)
        if end != len(body):
            # Kafka ignores bytes after a request body, and librdkafka 2.16 sends some
            # (3 extra bytes 01 00 00 after an all-topics Metadata v9+ request).
            rec["trailingBytes"] = body[end:].hex()
            self.log(f"conn {rec['conn']}: {self.schema_name(key)} v{ver}: {len(body) - end} trailing bytes "
                     f"after the request body: {body[end:].hex()}")
        rec["request"] = req
        handler = {0: self._produce, 1: self._fetch, 2: self._list_offsets, 3: self._metadata,
                   8: self._offset_commit, 9: self._offset_fetch, 10: self._find_coordinator,
                   22: self._init_producer_id}.get(key)
        if handler is None:
            raise ValueError("no handler")
        resp = handler(ver, req)
        if asyncio.iscoroutine(resp):
            resp = await resp
        if resp is None:
            return None
        rmsg = self.schema.response(key)
        header = struct.pack(">i", corr)
        if ver in rmsg.flexible:
            header += uvarint(0)  # response header v1: empty tagged fields
        return header + rmsg.encode(ver, resp)

    # -- API handlers --------------------------------------------------------

    def _api_versions_body(self, error: int) -> dict:
        return {
            "ErrorCode": error,
            "ApiKeys": [{"ApiKey": k, "MinVersion": lo, "MaxVersion": hi} for k, (lo, hi) in sorted(self.advertise.items())],
            "ThrottleTimeMs": 0,
        }

    def _know(self, name: str | None) -> None:
        if name and name not in self.topics:
            self.topics.append(name)

    def _metadata(self, ver: int, req: dict) -> dict:
        topics = req.get("Topics")
        if topics is None or (ver == 0 and not topics):
            names = list(self.topics)
        else:
            names = []
            for t in topics:
                self._know(t.get("Name"))
                names.append(t.get("Name"))
        return {
            "ThrottleTimeMs": 0,
            "Brokers": [{"NodeId": 0, "Host": self.host, "Port": self.port, "Rack": None}],
            "ClusterId": "sluice-capture-cluster",
            "ControllerId": 0,
            "Topics": [
                {
                    "ErrorCode": 0,
                    "Name": n,
                    "TopicId": topic_id(n),
                    "IsInternal": False,
                    "Partitions": [
                        {"ErrorCode": 0, "PartitionIndex": 0, "LeaderId": 0, "LeaderEpoch": -1,
                         "ReplicaNodes": [0], "IsrNodes": [0], "OfflineReplicas": []}
                    ],
                    "TopicAuthorizedOperations": -2147483648,
                }
                for n in names
            ],
            "ClusterAuthorizedOperations": -2147483648,
        }

    def _init_producer_id(self, ver: int, req: dict) -> dict:
        return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProducerId": PRODUCER_ID, "ProducerEpoch": PRODUCER_EPOCH}

    def _produce(self, ver: int, req: dict) -> dict | None:
        if req["Acks"] == 0:
            return None
        return {
            "Responses": [
                {
                    "Name": t["Name"],
                    "PartitionResponses": [
                        {"Index": p["Index"], "ErrorCode": 0, "BaseOffset": 0, "LogAppendTimeMs": -1,
                         "LogStartOffset": 0, "RecordErrors": [], "ErrorMessage": None}
                        for p in t["PartitionData"]
                    ],
                }
                for t in req["TopicData"]
            ],
            "ThrottleTimeMs": 0,
        }

    async def _fetch(self, ver: int, req: dict) -> dict:
        wait = min(max(req.get("MaxWaitMs", 0), 0), self.fetch_wait_cap_ms)
        if wait:
            await asyncio.sleep(wait / 1000)
        return {
            "ThrottleTimeMs": 0,
            "ErrorCode": 0,
            "SessionId": 0,
            "Responses": [
                {
                    "Topic": t.get("Topic"),
                    "Partitions": [
                        {"PartitionIndex": p["Partition"], "ErrorCode": 0, "HighWatermark": 0,
                         "LastStableOffset": 0, "LogStartOffset": 0, "AbortedTransactions": None,
                         "PreferredReadReplica": -1, "Records": b""}
                        for p in t["Partitions"]
                    ],
                }
                for t in req["Topics"]
            ],
        }

    def _list_offsets(self, ver: int, req: dict) -> dict:
        return {
            "ThrottleTimeMs": 0,
            "Topics": [
                {
                    "Name": t["Name"],
                    "Partitions": [
                        {"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0, "OldStyleOffsets": [0],
                         "Timestamp": -1, "Offset": 0, "LeaderEpoch": -1}
                        for p in t["Partitions"]
                    ],
                }
                for t in req["Topics"]
            ],
        }

    def _find_coordinator(self, ver: int, req: dict) -> dict:
        if ver < 4:
            return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "NodeId": 0,
                    "Host": self.host, "Port": self.port}
        return {
            "ThrottleTimeMs": 0,
            "Coordinators": [
                {"Key": k, "NodeId": 0, "Host": self.host, "Port": self.port, "ErrorCode": 0, "ErrorMessage": None}
                for k in req["CoordinatorKeys"]
            ],
        }

    def _offset_fetch(self, ver: int, req: dict) -> dict:
        def parts(idx):
            return [{"PartitionIndex": i, "CommittedOffset": -1, "CommittedLeaderEpoch": -1, "Metadata": "",
                     "ErrorCode": 0} for i in idx]

        if ver < 8:
            topics = req.get("Topics") or []
            return {"ThrottleTimeMs": 0, "ErrorCode": 0,
                    "Topics": [{"Name": t["Name"], "Partitions": parts(t["PartitionIndexes"])} for t in topics]}
        return {
            "ThrottleTimeMs": 0,
            "Groups": [
                {"GroupId": g["GroupId"], "ErrorCode": 0,
                 "Topics": [{"Name": t["Name"], "Partitions": parts(t["PartitionIndexes"])} for t in (g.get("Topics") or [])]}
                for g in req["Groups"]
            ],
        }

    def _offset_commit(self, ver: int, req: dict) -> dict:
        return {
            "ThrottleTimeMs": 0,
            "Topics": [
                {"Name": t["Name"], "Partitions": [{"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0}
                                                   for p in t["Partitions"]]}
                for t in req["Topics"]
            ],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=19092)
    ap.add_argument("--topic", action="append", default=[], help="topic to list in all-topics metadata")
    ap.add_argument("--out", help="append received frames here as JSON lines")
    args = ap.parse_args()

    broker = FakeBroker(args.host, args.port, topics=args.topic)
    out = open(args.out, "a") if args.out else None

    def on_frame(rec):
        h = rec["header"]
        print(f"conn {rec['conn']} {broker.schema_name(h['apiKey'])} v{h['apiVersion']} "
              f"corr={h['correlationId']} client={h['clientId']!r} {len(rec['raw'])} bytes", file=sys.stderr)
        if out:
            out.write(json.dumps({"conn": rec["conn"], "time": rec["time"], **h, "raw": rec["raw"].hex()}) + "\n")
            out.flush()

    broker.on_frame = on_frame

    async def run():
        await broker.start_async()
        print(f"fake broker listening on {broker.host}:{broker.port}", file=sys.stderr)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""A small, schema-driven Kafka message codec for the capture tools.

Reads Apache Kafka's message definitions (the JSON files in
shared/kafka-protocol/message/) and encodes/decodes message bodies at any version,
including flexible versions (compact strings/arrays/bytes and tagged-field sections).
Messages are plain dicts keyed by the JSON field names; fields left out of a dict
are encoded with their default.

Also decodes RecordBatch v2 (with decompression) so captured Produce frames can be
checked down to record keys, values and headers.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from typing import Any

# ---------------------------------------------------------------------------
# Schema loading


class VersionRange:
    def __init__(self, spec: str | None):
        spec = (spec or "none").strip()
        if spec == "none":
            self.lo, self.hi = 1, 0
        elif spec.endswith("+"):
            self.lo, self.hi = int(spec[:-1]), 1 << 30
        elif "-" in spec:
            a, b = spec.split("-")
            self.lo, self.hi = int(a), int(b)
        else:
            self.lo = self.hi = int(spec)

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi


def _strip_comments(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


class Field:
    def __init__(self, d: dict, common: dict[str, list]):
        self.name: str = d["name"]
        self.type: str = d["type"]
        self.versions = VersionRange(d.get("versions"))
        self.nullable = VersionRange(d.get("nullableVersions"))
        self.tag: int | None = d.get("tag")
        self.tagged = VersionRange(d.get("taggedVersions")) if self.tag is not None else VersionRange("none")
        self.default = d.get("default")
        sub = d.get("fields")
        elem = self.type[2:] if self.type.startswith("[]") else self.type
        if sub is None and elem in common:
            sub = common[elem]
        self.fields = [Field(f, common) for f in sub] if sub is not None else None

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def elem(self) -> str:
        return self.type[2:] if self.is_array else self.type

    def default_value(self) -> Any:
        if self.is_array:
            return None if self.default == "null" else []
        if self.fields is not None:
            return {}
        d = self.default
        t = self.type
        if t == "bool":
            return d in (True, "true")
        if t in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
            if d is None or d == "":
                return 0
            return int(d, 0) if isinstance(d, str) else int(d)
        if t == "float64":
            return float(d) if d not in (None, "") else 0.0
        if t == "string":
            if d == "null":
                return None
            return d if isinstance(d, str) else ""
        if t in ("bytes", "records"):
            return None if d == "null" else b""
        if t == "uuid":
            return b"\x00" * 16
        raise ValueError(f"no default for type {t} ({self.name})")


class Message:
    def __init__(self, d: dict):
        self.name: str = d["name"]
        self.api_key: int | None = d.get("apiKey")
        self.type: str = d["type"]
        self.valid = VersionRange(d.get("validVersions"))
        self.flexible = VersionRange(d.get("flexibleVersions"))
        common = {c["name"]: c["fields"] for c in d.get("commonStructs", [])}
        self.fields = [Field(f, common) for f in d["fields"]]

    def encode(self, version: int, value: dict) -> bytes:
        w = Writer(version in self.flexible)
        w.struct(self.fields, version, value)
        return bytes(w.buf)

    def decode(self, version: int, data: bytes, pos: int = 0) -> tuple[dict, int]:
        r = Reader(data, pos, version in self.flexible)
        v = r.struct(self.fields, version)
        return v, r.pos


class Schema:
    """All request/response definitions, by (apiKey, 'request'|'response')."""

    def __init__(self, message_dir: str):
        self.by_key: dict[tuple[int, str], Message] = {}
        self.by_name: dict[str, Message] = {}
        for fn in sorted(os.listdir(message_dir)):
            if not fn.endswith(".json"):
                continue
            with open(os.path.join(message_dir, fn)) as f:
                d = json.loads(_strip_comments(f.read()))
            m = Message(d)
            self.by_name[m.name] = m
            if m.type in ("request", "response") and m.api_key is not None:
                self.by_key[(m.api_key, m.type)] = m

    def request(self, key: int) -> Message:
        return self.by_key[(key, "request")]

    def response(self, key: int) -> Message:
        return self.by_key[(key, "response")]

    def api_name(self, key: int) -> str:
        n = self.request(key).name
        return n[: -len("Request")] if n.endswith("Request") else n


def default_message_dir() -> str:
    env = os.environ.get("KAFKA_MESSAGE_DIR")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    for cand in (
        os.path.join(repo, "..", "shared", "kafka-protocol", "message"),
        "/work/shared/kafka-protocol/message",
    ):
        if os.path.isdir(cand):
            return os.path.abspath(cand)
    raise SystemExit("Kafka message definitions not found; set KAFKA_MESSAGE_DIR")


# ---------------------------------------------------------------------------
# Primitive encoding


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))


_FMT = {"int8": ">b", "int16": ">h", "int32": ">i", "int64": ">q", "uint16": ">H", "uint32": ">I", "float64": ">d"}


class Writer:
    def __init__(self, flexible: bool):
        self.flex = flexible
        self.buf = bytearray()

    def struct(self, fields: list[Field], version: int, value: dict) -> None:
        value = value or {}
        tagged: list[tuple[int, bytes]] = []
        for f in fields:
            if f.tag is not None and self.flex and version in f.tagged:
                if f.name not in value or value[f.name] is None:
                    continue
                sub = Writer(True)
                sub.field(f, version, value[f.name])
                tagged.append((f.tag, bytes(sub.buf)))
                continue
            if version not in f.versions or f.tag is not None and version in f.tagged:
                continue
            self.field(f, version, value.get(f.name, f.default_value()))
        if self.flex:
            tagged.sort()
            self.buf += uvarint(len(tagged))
            for tag, data in tagged:
                self.buf += uvarint(tag) + uvarint(len(data)) + data

    def field(self, f: Field, version: int, v: Any) -> None:
        if f.is_array:
            if v is None:
                if version not in f.nullable:
                    raise ValueError(f"{f.name} is not nullable at v{version}")
                self.buf += uvarint(0) if self.flex else struct.pack(">i", -1)
                return
            self.buf += uvarint(len(v) + 1) if self.flex else struct.pack(">i", len(v))
            for e in v:
                if f.fields is not None:
                    self.struct(f.fields, version, e)
                else:
                    self.prim(f.elem, e, False, f.name)
        elif f.fields is not None:
            self.struct(f.fields, version, v)
        else:
            self.prim(f.type, v, version in f.nullable, f.name)

    def prim(self, t: str, v: Any, nullable: bool, name: str) -> None:
        if t in _FMT:
            self.buf += struct.pack(_FMT[t], v)
        elif t == "bool":
            self.buf += b"\x01" if v else b"\x00"
        elif t == "uuid":
            assert len(v) == 16
            self.buf += v
        elif t in ("string", "bytes", "records"):
            if v is None:
                if not nullable:
                    raise ValueError(f"{name} is not nullable")
                if self.flex:
                    self.buf += uvarint(0)
                else:
                    self.buf += struct.pack(">h" if t == "string" else ">i", -1)
                return
            data = v.encode() if isinstance(v, str) else bytes(v)
            if self.flex:
                self.buf += uvarint(len(data) + 1)
            else:
                self.buf += struct.pack(">h" if t == "string" else ">i", len(data))
            self.buf += data
        else:
            raise ValueError(f"unknown type {t}")


class Reader:
    def __init__(self, data: bytes, pos: int, flexible: bool):
        self.d = data
        self.pos = pos
        self.flex = flexible

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.d):
            raise ValueError("truncated")
        b = self.d[self.pos : self.pos + n]
        self.pos += n
        return b

    def uvarint(self) -> int:
        shift = n = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def struct(self, fields: list[Field], version: int) -> dict:
        out: dict[str, Any] = {}
        for f in fields:
            if f.tag is not None and self.flex and version in f.tagged:
                out[f.name] = None
                continue
            if version not in f.versions:
                continue
            out[f.name] = self.field(f, version)
        if self.flex:
            by_tag = {f.tag: f for f in fields if f.tag is not None and version in f.tagged}
            for _ in range(self.uvarint()):
                tag = self.uvarint()
                size = self.uvarint()
                data = self.take(size)
                f = by_tag.get(tag)
                if f is not None:
                    sub = Reader(data, 0, True)
                    out[f.name] = sub.field(f, version)
                else:
                    out.setdefault("_unknown_tags", {})[tag] = data.hex()
        return out

    def field(self, f: Field, version: int) -> Any:
        if f.is_array:
            n = self.uvarint() - 1 if self.flex else struct.unpack(">i", self.take(4))[0]
            if n < 0:
                return None
            if f.fields is not None:
                return [self.struct(f.fields, version) for _ in range(n)]
            return [self.prim(f.elem) for _ in range(n)]
        if f.fields is not None:
            return self.struct(f.fields, version)
        return self.prim(f.type)

    def prim(self, t: str) -> Any:
        if t in _FMT:
            fmt = _FMT[t]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        if t == "bool":
            return self.take(1)[0] != 0
        if t == "uuid":
            return self.take(16)
        if t in ("string", "bytes", "records"):
            if self.flex:
                n = self.uvarint() - 1
            else:
                n = struct.unpack(">h" if t == "string" else ">i", self.take(2 if t == "string" else 4))[0]
            if n < 0:
                return None
            b = self.take(n)
            return b.decode() if t == "string" else b
        raise ValueError(f"unknown type {t}")


# ---------------------------------------------------------------------------
# Request/response headers


def parse_request_header(frame_body: bytes, schema: Schema) -> tuple[dict, int, bool]:
    """Parses the request header of a frame body (without the size prefix).

    Returns (header, body_offset, flexible)."""
    api_key, api_version, corr = struct.unpack(">hhi", frame_body[:8])
    pos = 8
    (n,) = struct.unpack(">h", frame_body[pos : pos + 2])
    pos += 2
    client_id = None
    if n >= 0:
        client_id = frame_body[pos : pos + n].decode()
        pos += n
    flexible = False
    try:
        flexible = api_version in schema.request(api_key).flexible
    except KeyError:
        pass
    tags = {}
    if flexible:
        r = Reader(frame_body, pos, True)
        for _ in range(r.uvarint()):
            tag = r.uvarint()
            tags[tag] = r.take(r.uvarint()).hex()
        pos = r.pos
    hdr = {"apiKey": api_key, "apiVersion": api_version, "correlationId": corr, "clientId": client_id}
    if tags:
        hdr["taggedFields"] = tags
    return hdr, pos, flexible


# ---------------------------------------------------------------------------
# RecordBatch v2


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _make_table() -> list[int]:
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C_TABLE = _make_table()
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _snappy_decompress(data: bytes) -> tuple[bytes, str]:
    import snappy  # python-snappy

    xerial = b"\x82SNAPPY\x00"
    if data.startswith(xerial):
        pos, out = 16, bytearray()
        while pos < len(data):
            (n,) = struct.unpack(">i", data[pos : pos + 4])
            out += snappy.uncompress(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        return bytes(out), "xerial"
    return snappy.uncompress(data), "raw"


def decompress(codec: int, data: bytes) -> tuple[bytes, str | None]:
    if codec == 0:
        return data, None
    if codec == 1:
        return gzip.decompress(data), None
    if codec == 2:
        return _snappy_decompress(data)
    if codec == 3:
        import lz4.frame

        return lz4.frame.decompress(data), None
    if codec == 4:
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data), None
    raise ValueError(f"unknown codec {codec}")


def _rvarint(d: bytes, pos: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = d[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def decode_record_batches(data: bytes) -> list[dict]:
    batches = []
    pos = 0
    while pos + 61 <= len(data):
        base_offset, batch_len = struct.unpack(">qi", data[pos : pos + 12])
        end = pos + 12 + batch_len
        b = data[pos:end]
        (leader_epoch, magic, crc, attrs, last_delta, base_ts, max_ts, pid, pepoch, bseq, count) = struct.unpack(
            ">ibIhiqqqhii", b[12:61]
        )
        if magic != 2:
            raise ValueError(f"magic {magic}")
        codec = attrs & 7
        payload, snappy_framing = decompress(codec, b[61:])
        records = []
        p = 0
        for _ in range(count):
            length, p = _rvarint(payload, p)
            rend = p + length
            p += 1  # attributes
            ts_delta, p = _rvarint(payload, p)
            off_delta, p = _rvarint(payload, p)
            kl, p = _rvarint(payload, p)
            key = None if kl < 0 else payload[p : p + kl]
            p += max(kl, 0)
            vl, p = _rvarint(payload, p)
            value = None if vl < 0 else payload[p : p + vl]
            p += max(vl, 0)
            hc, p = _rvarint(payload, p)
            headers = []
            for _ in range(hc):
                hkl, p = _rvarint(payload, p)
                hk = payload[p : p + hkl]
                p += hkl
                hvl, p = _rvarint(payload, p)
                hv = None if hvl < 0 else payload[p : p + hvl]
                p += max(hvl, 0)
                headers.append((hk, hv))
            if p != rend:
                raise ValueError("record length mismatch")
            records.append({"offsetDelta": off_delta, "timestampDelta": ts_delta, "key": key, "value": value, "headers": headers})
        batch = {
            "baseOffset": base_offset,
            "batchLength": batch_len,
            "partitionLeaderEpoch": leader_epoch,
            "magic": magic,
            "crc": crc,
            "crcValid": crc == crc32c(b[21:]),
            "attributes": attrs,
            "compression": CODECS.get(codec, str(codec)),
            "lastOffsetDelta": last_delta,
            "baseTimestamp": base_ts,
            "maxTimestamp": max_ts,
            "producerId": pid,
            "producerEpoch": pepoch,
            "baseSequence": bseq,
            "recordsCount": count,
            "records": records,
        }
        if snappy_framing:
            batch["snappyFraming"] = snappy_framing
        batches.append(batch)
        pos = end
    return batches

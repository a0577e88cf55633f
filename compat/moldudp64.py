"""An independent MoldUDP64 decoder and requester, written from NASDAQ's specification
(MoldUDP64 Protocol Specification, version 1.00), not from Sluice's code; plus the
`record` payload envelope as docs/udp.md lays it out. Used by compat/test_feed.py and
scripts/bench-udp.py.

    downstream packet: session (10 bytes, ASCII, space-padded alphanumeric)
                       sequence number (8 bytes, big-endian: the first message's)
                       message count (2 bytes, big-endian; 0: heartbeat, 0xFFFF: end of session)
                       then `count` message blocks: length (2 bytes, big-endian) · data
    request packet:    session (10) · sequence number (8) · requested message count (2)
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass, field

HEADER = struct.Struct(">10sQH")
HEARTBEAT = 0
END_OF_SESSION = 0xFFFF


class DecodeError(ValueError):
    pass


@dataclass
class Packet:
    session: str
    sequence: int
    count: int
    messages: list[bytes] = field(default_factory=list)
    size: int = 0
    arrival: float = 0.0  # time.monotonic() when it was read

    @property
    def heartbeat(self) -> bool:
        return self.count == HEARTBEAT

    @property
    def end_of_session(self) -> bool:
        return self.count == END_OF_SESSION

    @property
    def next_sequence(self) -> int:
        """The sequence number after this packet's messages."""
        return self.sequence + len(self.messages)


def decode(data: bytes, arrival: float = 0.0) -> Packet:
    """One downstream packet; raises DecodeError on anything the specification does not allow
    (a short header, a message block running past the end, bytes after the last block)."""
    if len(data) < HEADER.size:
        raise DecodeError(f"{len(data)}-byte packet: shorter than the 20-byte header")
    raw_session, sequence, count = HEADER.unpack_from(data)
    try:
        session = raw_session.decode("ascii")
    except UnicodeDecodeError as e:
        raise DecodeError(f"session {raw_session!r} is not ASCII") from e
    packet = Packet(session, sequence, count, size=len(data), arrival=arrival)
    if count in (HEARTBEAT, END_OF_SESSION):
        if len(data) != HEADER.size:
            raise DecodeError(f"{'heartbeat' if count == 0 else 'end of session'} of {len(data)} bytes (20 expected)")
        return packet
    pos = HEADER.size
    for i in range(count):
        if pos + 2 > len(data):
            raise DecodeError(f"message {i} of {count}: length field past the end ({len(data)} bytes)")
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + length > len(data):
            raise DecodeError(f"message {i} of {count}: {length} bytes at {pos} run past the end ({len(data)} bytes)")
        packet.messages.append(bytes(data[pos:pos + length]))
        pos += length
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} bytes after the last of {count} messages")
    return packet


def request(session: str | bytes, sequence: int, count: int) -> bytes:
    """A retransmission request packet (20 bytes)."""
    if isinstance(session, str):
        session = session.encode("ascii")
    return HEADER.pack(session, sequence, count)


def session_name(partition: int, payload: str = "value") -> str:
    """The session docs/udp.md gives a partition: V or R, then the partition in 9 digits."""
    return ("V" if payload == "value" else "R") + "%09d" % partition


# --- the `record` payload envelope (docs/udp.md) -------------------------------------------


@dataclass
class Envelope:
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def decode_envelope(msg: bytes) -> Envelope:
    """timestamp (i64, ms) · key length (i32, -1 = null) · key · value length (i32, -1 = null)
    · value · header count (u16) · per header: name length (u16) · name (UTF-8) · value length
    (i32, -1 = null) · value"""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(msg):
            raise DecodeError(f"envelope ends at {len(msg)} bytes, inside a field at {pos}")
        (v,) = struct.unpack_from(fmt, msg, pos)
        pos += size
        return v

    def take_bytes(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(msg):
            raise DecodeError(f"envelope: {n} bytes at {pos} past the end ({len(msg)})")
        b = bytes(msg[pos:pos + n])
        pos += n
        return b

    def nullable() -> bytes | None:
        n = take(">i")
        if n == -1:
            return None
        if n < -1:
            raise DecodeError(f"envelope: length {n}")
        return take_bytes(n)

    timestamp = take(">q")
    key = nullable()
    value = nullable()
    headers = []
    for _ in range(take(">H")):
        name = take_bytes(take(">H")).decode("utf-8")
        headers.append((name, nullable()))
    if pos != len(msg):
        raise DecodeError(f"envelope: {len(msg) - pos} bytes after the last header")
    return Envelope(timestamp, key, value, headers)


# --- sockets ---------------------------------------------------------------------------------


def join(group: str, port: int, interface: str = "127.0.0.1", rcvbuf: int = 16 << 20) -> socket.socket:
    """A UDP socket bound to the group's port that joined the group on `interface` (made in
    the calling thread's network namespace). SO_RCVBUFFORCE (root) gives it room for bursts."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((group, port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(interface))
    return s


def receive(sock: socket.socket, timeout: float, until=None) -> list[Packet]:
    """Decodes packets for up to `timeout` seconds, or until `until(packets)` is true."""
    packets: list[Packet] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return packets
        if not select.select([sock], [], [], left)[0]:
            continue
        data = sock.recv(65536)
        packets.append(decode(data, time.monotonic()))
        if until is not None and until(packets):
            return packets


def drain(sock: socket.socket) -> int:
    """Discards what is queued on a socket; returns how many datagrams."""
    n = 0
    while select.select([sock], [], [], 0)[0]:
        sock.recv(65536)
        n += 1
    return n


def ask(sock: socket.socket, server: tuple[str, int], data: bytes, timeout: float = 2.0) -> list[Packet]:
    """Sends one request (any bytes) and returns the answers that come within `timeout` (the
    window ends early 0.3 s after the first answer)."""
    drain(sock)
    sock.sendto(data, server)
    packets: list[Packet] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return packets
        data, _ = sock.recvfrom(65536)
        packets.append(decode(data, time.monotonic()))
        deadline = min(deadline, time.monotonic() + 0.3)

"""The fixed record contents every capture scenario produces (shared by the clients
and the manifest writer)."""

from __future__ import annotations

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

Record = tuple  # (key: bytes | None, value: bytes, headers: list[tuple[str, bytes]])


def records_for(variant: str) -> list[Record]:
    """Records for a Produce variant: a codec name, 'batch100', 'acks0' or 'idempotent'."""
    if variant == "batch100":
        return [(b"key-%03d" % i, b"value-%03d" % i, []) for i in range(100)]
    tag = variant or "none"
    h = [("h1", b"v1")]
    return [
        (b"k1", b"hello-" + tag.encode(), h),
        (None, b"nullkey-" + tag.encode(), h),  # null key
        (b"k3", b"", h),  # empty value
        # Long and repetitive, so compressed batches are smaller than uncompressed ones
        # (librdkafka sends a batch uncompressed when compression does not shrink it).
        (b"k4", b"hello-" + tag.encode() + b"-" + b"0123456789" * 20, h),
    ]


def kcat_input(variant: str) -> bytes:
    """stdin for `kcat -P -K: -H h1=v1`: 'key:value' lines, a line without ':' has a null key."""
    lines = []
    for k, v, _ in records_for(variant):
        lines.append(v if k is None else k + b":" + v)
    return b"\n".join(lines) + b"\n"

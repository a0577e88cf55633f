#!/usr/bin/env python3
"""Writes compression test vectors made by the real libraries.

Output: Tests/KafkaProtocolTests/Fixtures/compression/
  plain.bin                 the plaintext every other file decodes to (100,000 bytes)
  plain.gzip                gzip module, one member
  plain-2members.gzip       two gzip members back to back (halves of the plaintext)
  plain.zlib                zlib wrapper (decoders auto-detect gzip/zlib)
  plain.snappy              raw snappy (python-snappy / cramjam), as librdkafka sends
  plain.snappy-xerial       xerial framing as Java clients send: b"\\x82SNAPPY\\x00",
                            int32 version 1, int32 compatible version 1, then blocks of
                            big-endian int32 length + raw snappy of 32 KiB of plaintext
  plain.lz4                 lz4.frame defaults (linked 64 KiB blocks)
  plain-checksums.lz4       lz4.frame, 256 KiB independent blocks, content size,
                            block and content checksums
  plain.zst                 zstandard level 3, one frame with content size
  plain-stream.zst          zstandard level 19 streaming (no content size, large window)
  plain-2frames.zst         two zstd frames back to back (halves of the plaintext)

It also writes the seed corpus of the FuzzDecompress fuzzer (Fuzz/corpus/FuzzDecompress/):
small valid inputs, each prefixed with the codec-selector byte the fuzzer reads first
(codec id = byte % 5; bit 7 set = compress-then-decompress round trip of the rest).

Deterministic: rerunning produces identical files. Needs: pip install python-snappy lz4
zstandard (versions pinned in scripts/install-test-deps.sh).
"""
import gzip
import os
import random
import struct
import zlib

import lz4.frame
import snappy
import zstandard

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "KafkaProtocolTests", "Fixtures", "compression")
CORPUS = os.path.join(ROOT, "Fuzz", "corpus", "FuzzDecompress")


def plaintext() -> bytes:
    rng = random.Random(20240611)
    parts = []
    size = 0
    while size < 100_000:
        if rng.random() < 0.8:
            line = ('{"user":"u%05d","event":"%s","amount":%d.%02d,"tags":["%s"]}\n' % (
                rng.randrange(2000), rng.choice(["click", "view", "purchase", "refund"]),
                rng.randrange(1000), rng.randrange(100),
                rng.choice(["red", "green", "blue", "sluice"]))).encode()
        else:
            line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        parts.append(line)
        size += len(line)
    return b"".join(parts)[:100_000]


def xerial(data: bytes, block: int = 32 * 1024) -> bytes:
    out = [b"\x82SNAPPY\x00", struct.pack(">ii", 1, 1)]
    for i in range(0, len(data), block):
        raw = snappy.compress(data[i:i + block])
        out.append(struct.pack(">i", len(raw)))
        out.append(raw)
    return b"".join(out)


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    data = plaintext()
    half = len(data) // 2
    files = {
        "plain.bin": data,
        "plain.gzip": gzip.compress(data, mtime=0),
        "plain-2members.gzip": gzip.compress(data[:half], mtime=0) + gzip.compress(data[half:], mtime=0),
        "plain.zlib": zlib.compress(data),
        "plain.snappy": snappy.compress(data),
        "plain.snappy-xerial": xerial(data),
        "plain.lz4": lz4.frame.compress(data),
        "plain-checksums.lz4": lz4.frame.compress(
            data, block_size=lz4.frame.BLOCKSIZE_MAX256KB, block_linked=False,
            content_checksum=True, block_checksum=True, store_size=True),
        "plain.zst": zstandard.ZstdCompressor(level=3).compress(data),
        "plain-2frames.zst": zstandard.ZstdCompressor(level=3).compress(data[:half])
        + zstandard.ZstdCompressor(level=3).compress(data[half:]),
    }
    stream = zstandard.ZstdCompressor(level=19).compressobj()
    files["plain-stream.zst"] = stream.compress(data) + stream.flush()

    for name, payload in files.items():
        if name != "plain.bin":
            assert payload != data
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(payload)
        print(f"{name:24} {len(payload):7} bytes")

    # Self-check with the reference decoders.
    assert gzip.decompress(files["plain-2members.gzip"]) == data
    assert snappy.decompress(files["plain.snappy"]) == data
    assert lz4.frame.decompress(files["plain-checksums.lz4"]) == data
    assert zstandard.ZstdDecompressor().decompressobj().decompress(files["plain-stream.zst"]) == data


def corpus() -> None:
    os.makedirs(CORPUS, exist_ok=True)
    text = b"sluice " * 20 + b"kafka-compatible event broker, record batch v2\n" * 3
    seeds = {
        "none": b"\x00" + text,
        "gzip": b"\x01" + gzip.compress(text, mtime=0),
        "zlib": b"\x01" + zlib.compress(text),
        "snappy": b"\x02" + snappy.compress(text),
        "snappy-xerial": b"\x02" + xerial(text, block=64),
        "lz4": b"\x03" + lz4.frame.compress(text),
        "lz4-checksums": b"\x03" + lz4.frame.compress(
            text, block_linked=False, content_checksum=True, block_checksum=True, store_size=True),
        "zstd": b"\x04" + zstandard.ZstdCompressor(level=3).compress(text),
        "roundtrip-snappy": b"\x82" + text,
        "roundtrip-lz4": b"\x83" + text,
    }
    stream = zstandard.ZstdCompressor(level=3).compressobj()
    seeds["zstd-stream"] = b"\x04" + stream.compress(text) + stream.flush()
    for name, payload in seeds.items():
        with open(os.path.join(CORPUS, "seed-" + name), "wb") as f:
            f.write(payload)


if __name__ == "__main__":
    main()
    corpus()

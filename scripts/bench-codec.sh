#!/usr/bin/env bash
# Builds and runs the codec micro-benchmark (CRC-32C, RecordBatch validate/iterate/build) in
# release mode. Usage: scripts/bench-codec.sh [runs]   (median of `runs`, default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product CodecBench --scratch-path .build-release
exec .build-release/release/CodecBench "${1:-7}"

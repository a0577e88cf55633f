#!/usr/bin/env bash
# Storage benchmark (release build): FileLog append throughput with 1 KiB and 16 KiB batches
# in page-cache mode and with flush.messages=1 (group commit; 1 and 8 appenders), read
# throughput, recovery time of a 1 GiB log after an unclean stop, and the same disk's raw
# sequential write speed (dd, 1 MiB blocks, fdatasync) with the ratios to it.
#
#   scripts/bench-storage.sh [runs]        median of `runs` (default 3)
#   BENCH_DIR=/path scripts/bench-storage.sh   where the data goes (default: /tmp; the dd
#                                              figure is measured in the same directory)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
DIR=${BENCH_DIR:-${TMPDIR:-/tmp}}/sluice-storage-bench-$$
swift build -c release --product StorageBench --scratch-path .build-release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true

mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
echo "== disk: $(df -hT "$DIR" | awk 'NR==2 {print $1, $2, $3}')"
speeds=()
for _ in $(seq "$RUNS"); do
  out=$(LC_ALL=C dd if=/dev/zero of="$DIR/dd.bin" bs=1M count=512 conv=fdatasync 2>&1 | tail -1)
  rm -f "$DIR/dd.bin"
  # "536870912 bytes (537 MB, 512 MiB) copied, 0.46 s, 1.2 GB/s": recompute MiB/s from bytes and seconds.
  speeds+=("$(echo "$out" | awk -F', ' '{split($1, b, " "); split($3, t, " "); printf "%.1f", b[1] / 1048576 / t[1]}')")
done
raw=$(printf '%s\n' "${speeds[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "== dd runs (MiB/s): ${speeds[*]} -> median $raw"
echo
.build-release/release/StorageBench --dir "$DIR/bench" --runs "$RUNS" --raw-mbps "$raw" "${@:2}"

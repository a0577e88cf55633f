#!/usr/bin/env bash
# Builds the libFuzzer targets (ASan + fuzzer, in .build-fuzz) and runs each one.
#   scripts/fuzz.sh                     every target, $FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh FuzzRequest
# The seed corpus in Fuzz/corpus/<target> is copied to a scratch folder, so new inputs the
# fuzzer finds do not dirty the repo; a crash leaves its input in fuzz-artifacts/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=(FuzzRequest FuzzRecordBatch FuzzDecompress FuzzProduce FuzzHTTP FuzzZMTP FuzzMoldUDP64 FuzzStatsD FuzzShare FuzzSASL); fi
mkdir -p fuzz-artifacts
for target in "${TARGETS[@]}"; do
  # swiftc keeps only the last -sanitize flag for Swift code, so coverage for the fuzzer is
  # asked for explicitly; without it libFuzzer would see only the C code.
  swift build -q -c debug --sanitize=fuzzer --sanitize=address --product "$target" --scratch-path .build-fuzz \
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
done
status=0
for target in "${TARGETS[@]}"; do
  work=$(mktemp -d)
  if [ -d "Fuzz/corpus/$target" ]; then cp -r "Fuzz/corpus/$target/." "$work/"; fi
  echo "== $target for ${SECONDS_EACH}s"
  if ! SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build-fuzz/debug/"$target" "$work" \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix=fuzz-artifacts/"$target"- 2>"$work.log"; then
    tail -40 "$work.log" >&2
    echo "fuzz: $target found a failure (input saved in fuzz-artifacts/)" >&2
    status=1
  else
    # Executions, time, peak memory, final coverage, and the target's own summary if any.
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|Fuzz[A-Za-z]+: )' "$work.log" || true
    grep 'cov:' "$work.log" | tail -1 || true
  fi
  rm -rf "$work" "$work.log"
done
exit $status

#!/usr/bin/env bash
# Builds the libFuzzer targets (ASan + fuzzer, in .build-fuzz) and runs each one.
#   scripts/fuzz.sh                     every target, $FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh FuzzRequest
#   FUZZ_JOBS=1 scripts/fuzz.sh         one fuzzer at a time (default: one per core)
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
# Each fuzzer is one process on one core: $FUZZ_JOBS of them (default: the cores) run at
# once, each for its full time, and their reports are printed in order.
JOBS=${FUZZ_JOBS:-$(nproc)}
run_one() {
  local target=$1 report=$2
  local work
  work=$(mktemp -d)
  if [ -d "Fuzz/corpus/$target" ]; then cp -r "Fuzz/corpus/$target/." "$work/"; fi
  {
    echo "== $target for ${SECONDS_EACH}s"
    if ! SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build-fuzz/debug/"$target" "$work" \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix=fuzz-artifacts/"$target"- 2>"$work.log"; then
      tail -40 "$work.log"
      echo "fuzz: $target found a failure (input saved in fuzz-artifacts/)"
      echo FAILED
    else
      # Executions, time, peak memory, final coverage, and the target's own summary if any.
      grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|Fuzz[A-Za-z]+: )' "$work.log" || true
      grep 'cov:' "$work.log" | tail -1 || true
    fi
  } >"$report" 2>&1
  rm -rf "$work" "$work.log"
}
reports=$(mktemp -d)
status=0
index=0
for target in "${TARGETS[@]}"; do
  run_one "$target" "$reports/$(printf '%03d' $index)" &
  index=$((index + 1))
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
done
wait
for report in "$reports"/*; do
  cat "$report"
  if grep -q '^FAILED$' "$report"; then status=1; fi
done
rm -rf "$reports"
exit $status

#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command and what CI runs.
#   scripts/test.sh            everything: generated-code check, unit tests, short fuzz runs
#   SLUICE_SKIP_FUZZ=1 scripts/test.sh   without the fuzz runs (faster while iterating)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain: $(swift --version 2>&1 | head -1)"
scripts/install-test-deps.sh

echo "== generated protocol code is up to date"
scripts/generate-protocol.sh --check

echo "== swift format lint (hand-written code)"
# shellcheck disable=SC2046
swift format lint --strict $(git ls-files '*.swift' | grep -v '/Generated/' | grep -v '^Package.swift$')

echo "== swift test"
# In parallel: timing logic is tested with the broker's manual clock, not wall-clock bounds.
mkdir -p .build  # for the log below, before swift test creates it on a fresh clone
swift test 2>&1 | tee .build/last-test.log | grep -vE '^(◇|􀟈)|^Test Case .* started|^\[[0-9]+/[0-9]+\]' || true
# tee/grep hide swift test's exit status: read the verdict from its log.
if grep -qE '(✘ Test run|Test run with .* failed|error: fatalError|Fatal error|failed \(|error: exit)' .build/last-test.log \
  || ! grep -qE '✔ Test run with [0-9]+ tests? .*passed' .build/last-test.log; then
  echo "swift test failed" >&2
  exit 1
fi

echo "== compat: real Kafka clients against sluice serve"
swift build --product sluice
swift build --product swift-kafka-client-readme  # compat/test_swift_kafka_client_readme.py
SLUICE_BIN=.build/debug/sluice python3 -m pytest -q --durations=15 compat || { echo "compat tests failed" >&2; exit 1; }

if [ "${SLUICE_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== short fuzz runs"
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/fuzz.sh
fi
echo "== all tests passed"

#!/usr/bin/env bash
# Long durability run: tools/durability/checker.py with many kill/restart cycles.
#   scripts/durability-long.sh [CYCLES] [SCENARIO...]   (default: 100, all disk scenarios)
# Uses SLUICE_BIN (default .build/debug/sluice). Exits non-zero if any scenario's promise breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-100}"; shift || true
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(sigkill-fsync sigterm sigkill-default memory-honesty)
export SLUICE_BIN="${SLUICE_BIN:-.build/debug/sluice}"
status=0
for s in "${scenarios[@]}"; do
  echo "=== $s, $cycles cycles"
  python3 tools/durability/checker.py --scenario "$s" --cycles "$cycles" --duration 2 || status=1
done
exit $status

#!/usr/bin/env bash
# Regenerates Tests/KafkaProtocolTests/Fixtures/captured/ from real Kafka clients.
# Installs the pinned clients first (idempotent), then runs capture.py; extra
# arguments go to capture.py (e.g. --only kcat,confluent).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bash "$repo/scripts/install-test-deps.sh"
exec timeout 600 python3 "$here/capture.py" "$@"

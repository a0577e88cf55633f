#!/usr/bin/env bash
# Regenerates Sources/KafkaProtocol/Generated and the test samples from Kafka's message
# definitions in ../shared/kafka-protocol/message (or $KAFKA_MESSAGE_DIR), with the
# project's own definitions in protocol/message replacing Kafka's files of the same name
# (newer versions than that copy holds; each says where its facts come from).
#   scripts/generate-protocol.sh          regenerate in place
#   scripts/generate-protocol.sh --check  fail if regenerating would change anything
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGE_DIR=${KAFKA_MESSAGE_DIR:-../shared/kafka-protocol/message}
if [ ! -d "$MESSAGE_DIR" ]; then
  echo "generate-protocol: $MESSAGE_DIR not found; skipping (it is only needed to regenerate code)"
  exit 0
fi
README="$MESSAGE_DIR/../README.md"
COMMIT=$(grep -oE 'commit [0-9a-f]{7,40}' "$README" 2>/dev/null | head -1 | cut -d' ' -f2 || true)
COMMIT=${COMMIT:-unknown}
swift build -q --product _KafkaProtocolCodegen
BIN=$(swift build --show-bin-path)/_KafkaProtocolCodegen
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$BIN" "$MESSAGE_DIR" "$tmp/gen" "$tmp/tests" "$COMMIT" protocol/message >/dev/null
  if ! diff -r "$tmp/gen" Sources/KafkaProtocol/Generated >/dev/null \
    || ! diff -r "$tmp/tests" Tests/KafkaProtocolTests/Generated >/dev/null; then
    echo "generate-protocol: generated code is out of date; run scripts/generate-protocol.sh" >&2
    diff -r "$tmp/gen" Sources/KafkaProtocol/Generated | head -40 >&2 || true
    exit 1
  fi
  echo "generate-protocol: generated code matches $MESSAGE_DIR (commit $COMMIT)"
else
  "$BIN" "$MESSAGE_DIR" Sources/KafkaProtocol/Generated Tests/KafkaProtocolTests/Generated "$COMMIT" protocol/message
fi

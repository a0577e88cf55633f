#!/usr/bin/env bash
# kcat throughput against a release build of sluice: 1M × 100-byte records produced with
# `kcat -P -l FILE` and consumed with `kcat -C -e -o beginning -q | wc -l`; then the Swift
# client's (`sluice bench produce|consume`) on the same broker, for comparison.
#   swift build -c release --product sluice --scratch-path .build-release
#   scripts/bench-kcat.sh [SLUICE_BIN] [RECORDS]
# The consume is also run with larger client queues (queued.min.messages): with defaults,
# librdkafka 2.0.2 pauses fetching for ~1 s each time kcat's local queue passes 100k
# messages, which is a client-side stall, not the broker's.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build-release/release/sluice}
N=${2:-1000000}
D=$(mktemp -d /tmp/sluice-bench-kcat.XXXXXX)
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$D"' EXIT
python3 -c "
import sys
with open('$D/records.txt', 'wb') as f:
    for i in range($N):
        f.write(b'%08d' % i + b'x' * 92 + b'\n')   # 100-byte values
"
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$D/data" > "$D/log" 2>&1 &
PID=$!
for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
B=127.0.0.1:$PORT
T=bench-kcat
python3 -c "
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({'bootstrap.servers': '$B'}); a.create_topics([NewTopic('$T', 1)])['$T'].result(15)"
rate() { python3 -c "d = $2; print(f'$1 records in {d:.2f} s = {$1/d:,.0f} records/s')"; }
s=$(date +%s.%N); kcat -P -b $B -t $T -p 0 -l "$D/records.txt"; e=$(date +%s.%N)
echo "produce (kcat -P -l):                 $(rate $N "$e-$s")"
s=$(date +%s.%N); C=$(kcat -C -b $B -t $T -p 0 -e -o beginning -q | wc -l); e=$(date +%s.%N)
echo "consume (kcat -C -e -o beginning -q): $(rate $C "$e-$s")"
s=$(date +%s.%N); C=$(kcat -C -b $B -t $T -p 0 -e -o beginning -q -X queued.min.messages=2000000 \
  -X queued.max.messages.kbytes=2000000 | wc -l); e=$(date +%s.%N)
echo "consume, larger client queues:        $(rate $C "$e-$s")"
# The Swift client on the same broker in the same run (`sluice bench`, 100-byte values, one
# partition, idempotent acks=all producer).
python3 -c "
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({'bootstrap.servers': '$B'}); a.create_topics([NewTopic('$T-swift', 1)])['$T-swift'].result(15)"
echo "produce (sluice bench produce):       $("$BIN" bench produce --bootstrap $B --topic $T-swift --records $N --record-size 100)"
echo "consume (sluice bench consume):       $("$BIN" bench consume --bootstrap $B --topic $T-swift --records $N)"

#!/usr/bin/env bash
# Builds a release of sluice into OUTDIR (default: dist/): a self-contained binary (the Swift
# runtime and Foundation linked statically, stripped; `sluice --version` names the version
# and the commit), and a tarball with it, a systemd unit, an example configuration and shell
# completions. The binary needs only glibc, libstdc++ and zlib (every Debian or Ubuntu base
# system has them); zstd and lz4 are used when the system has them (docs/compression.md).
#
#   scripts/release.sh [OUTDIR]
#
# SLUICE_RELEASE_SCRATCH: the build folder (default .build-static; kept for the next run).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-dist}"
scratch="${SLUICE_RELEASE_SCRATCH:-.build-static}"
version=$(sed -n 's/^let sluiceVersion = "\(.*\)"$/\1/p' Sources/sluice/Version.swift)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit-dirty"
fi
[ -n "$version" ] || { echo "release.sh: no version in Sources/sluice/Version.swift" >&2; exit 1; }

echo "release.sh: building sluice $version (commit $commit) into $out" >&2
# The commit reaches the C helper target only (Package.swift reads it), so a new commit
# rebuilds that target and its dependents, not the whole dependency graph.
SLUICE_BUILD_COMMIT="$commit" swift build -c release --product sluice --static-swift-stdlib --scratch-path "$scratch"

name="sluice-$version-linux-$(uname -m)"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/completions" "$root/systemd" "$root/etc"
cp "$scratch/release/sluice" "$root/bin/sluice"
strip "$root/bin/sluice"

"$root/bin/sluice" --generate-completion-script bash > "$root/completions/sluice.bash"
"$root/bin/sluice" --generate-completion-script zsh > "$root/completions/_sluice"
"$root/bin/sluice" --generate-completion-script fish > "$root/completions/sluice.fish"

cat > "$root/systemd/sluice.service" <<'UNIT'
[Unit]
Description=Sluice event-streaming broker (Kafka protocol)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
# A system user made for the service; its data in /var/lib/sluice (StateDirectory).
DynamicUser=yes
StateDirectory=sluice
ExecStart=/usr/local/bin/sluice serve --config /etc/sluice/sluice.properties --data-dir /var/lib/sluice --log-format logfmt
# SIGTERM: graceful shutdown (logs flushed and closed, a clean-shutdown marker written).
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=2
# Every connection and every open segment takes a descriptor.
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
UNIT

cat > "$root/etc/sluice.properties" <<'CONFIG'
# Settings of `sluice serve` (Java properties). Every key: `sluice serve --help` and
# docs/configuration.md. Environment variables (SLUICE_...) and --set override these.

# Kafka listeners and what clients are told to connect to.
listen=0.0.0.0:9092
#advertise=broker.example.com:9092

# Prometheus metrics and the HTTP front door (REST Proxy, Server-Sent Events, webhooks).
metrics.listen=127.0.0.1:9644
#http.listen=127.0.0.1:8082

# Topics created by producers and consumers that name an unknown topic.
auto.create.topics.enable=true
num.partitions=3

# Default durability and retention of topics (each topic can set its own).
#log.flush.interval.messages=1
log.retention.ms=604800000

# Connections.
max.connections=10000

# Log slow requests; admin requests are always logged (sluice.audit).
sluice.slow.request.log.ms=200
CONFIG

cat > "$root/README.txt" <<TEXT
sluice $version (commit $commit) for Linux $(uname -m)

Install:
  sudo install -m 755 bin/sluice /usr/local/bin/sluice
  sudo install -D -m 644 etc/sluice.properties /etc/sluice/sluice.properties
  sudo install -m 644 systemd/sluice.service /etc/systemd/system/sluice.service
  sudo systemctl daemon-reload && sudo systemctl enable --now sluice
Shell completions: completions/sluice.bash (bash), completions/_sluice (zsh),
completions/sluice.fish (fish).
Try it: sluice serve   (a broker on 127.0.0.1:9092, data in ./sluice-data)
TEXT

mkdir -p "$out"
cp "$root/bin/sluice" "$out/sluice"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" sluice > SHA256SUMS)
echo "release.sh: $out/sluice ($("$out/sluice" --version)), $out/$name.tar.gz" >&2

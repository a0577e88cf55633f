#!/usr/bin/env bash
# Checks a release built by scripts/release.sh: the binary runs in a clean Debian root made
# with debootstrap (no Swift inside), serves kcat from there, and the tarball holds what
# the README's install section says.
#
#   scripts/test-release.sh [DIST]     (DIST: release.sh's OUTDIR, default dist)
#
# The root (debootstrap --variant=minbase bookworm, ~45 s) is cached as a tarball in
# SLUICE_ROOTFS_CACHE (default ~/.cache/sluice); delete it to make a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
dist="${1:-dist}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
fail() { echo "test-release: FAIL: $*" >&2; exit 1; }

binary="$dist/sluice"
tarball=$(ls "$dist"/sluice-*-linux-*.tar.gz 2>/dev/null | head -1)
[ -x "$binary" ] || fail "no $binary (run scripts/release.sh $dist first)"
[ -n "$tarball" ] || fail "no tarball in $dist"

echo "== the binary needs no Swift runtime"
libraries=$(ldd "$binary" || true)
echo "$libraries" | sed 's/^/  /'
if echo "$libraries" | grep -qiE 'swift|Foundation|not found'; then fail "it links a Swift library"; fi
version=$("$binary" --version)
echo "  sluice --version: $version"
echo "$version" | grep -qE '^[0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{12}(-dirty)?\)$' || fail "version without a commit: $version"

echo "== the tarball"
contents=$(tar -tzf "$tarball")
for wanted in bin/sluice systemd/sluice.service etc/sluice.properties completions/sluice.bash completions/_sluice \
  completions/sluice.fish README.txt; do
  echo "$contents" | grep -q "/$wanted\$" || fail "$tarball lacks $wanted"
done
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match"

echo "== a clean Debian root (debootstrap, no Swift)"
cache="${SLUICE_ROOTFS_CACHE:-$HOME/.cache/sluice}/debootstrap-bookworm-minbase.tar"
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  build=$(mktemp -d)
  $SUDO debootstrap --variant=minbase bookworm "$build/root" http://deb.debian.org/debian > "$build/log" 2>&1 \
    || { tail -20 "$build/log" >&2; fail "debootstrap failed"; }
  $SUDO tar -C "$build/root" -cf "$cache.part" . && mv "$cache.part" "$cache"
  $SUDO rm -rf "$build"
fi
root=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then $SUDO kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  $SUDO umount "$root/proc" 2>/dev/null || true
  $SUDO rm -rf "$root"
}
trap cleanup EXIT
$SUDO tar -C "$root" -xf "$cache"
if $SUDO chroot "$root" sh -c 'command -v swift || ls /usr/lib/swift /opt/swift' >/dev/null 2>&1; then
  fail "the root has Swift in it"
fi
$SUDO mount -t proc proc "$root/proc"
$SUDO install -m 755 "$binary" "$root/usr/local/bin/sluice"

echo "== sluice serve in the root, kcat from outside"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$SUDO chroot "$root" /usr/local/bin/sluice serve --listen "127.0.0.1:$port" --data-dir /var/lib/sluice \
  --log-format json > "$root.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
seq 1 100 | sed 's/^/record-/' | kcat -P -b "127.0.0.1:$port" -t release-check -z lz4 || fail "kcat could not produce"
got=$(kcat -C -b "127.0.0.1:$port" -t release-check -o beginning -e -q | wc -l)
[ "$got" = 100 ] || fail "kcat read $got of 100 records back; log: $(tail -5 "$root.log")"
$SUDO test -d "$root/var/lib/sluice/release-check-0" || fail "no partition directory in the root's data dir"
$SUDO kill -TERM "$pid"
wait "$pid" || fail "sluice did not exit cleanly on SIGTERM; log: $(tail -5 "$root.log")"
pid=""
grep -q '"msg":"stopped"' "$root.log" || fail "no clean stop in the log"
rm -f "$root.log"
echo "== release check passed: $version in a root without Swift, 100 records through kcat"

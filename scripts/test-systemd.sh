#!/usr/bin/env bash
# Checks scripts/wxauth.service with systemd's own tools, offline:
# `systemd-analyze verify` must print nothing (it only warns about unknown
# keys, so any output counts as a failure), and the sandbox exposure score
# from `systemd-analyze security` must stay "OK" (below 3.0).
#
# Usage: scripts/test-systemd.sh [path/to/wxauth]   (default: target/debug/wxauth)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${1:-target/debug/wxauth}")
[ -x "$bin" ] || { echo "test-systemd: no binary at $bin (cargo build first)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "test-systemd: systemd-analyze is missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart= exists; point it at the binary just built.
sed "s|/usr/local/bin/wxauth|$bin|g" scripts/wxauth.service > "$work/wxauth.service"

out=$(systemd-analyze verify "$work/wxauth.service" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "test-systemd: systemd-analyze verify complained:" >&2
    echo "$out" >&2
    exit 1
fi
echo "ok - systemd-analyze verify scripts/wxauth.service"

score=$(systemd-analyze security --offline=yes "$work/wxauth.service" 2>&1 |
    sed -n 's/.*Overall exposure level for wxauth.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "test-systemd: no exposure score" >&2; exit 1; }
awk -v s="$score" 'BEGIN { exit !(s < 3.0) }' || { echo "test-systemd: exposure $score, expected < 3.0" >&2; exit 1; }
echo "ok - systemd-analyze security: exposure $score"
echo "systemd: 2 passed, 0 failed"

#!/usr/bin/env bash
# Retakes the README's screenshots: runs the real-browser tests (headless
# Chromium, phone viewport, WeChat User-Agent, demo mode) and copies what
# they captured from target/screenshots/ to docs/.
#
# Usage: scripts/screenshots.sh
# Needs Debian's chromium, fonts-noto-cjk and fonts-noto-color-emoji.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf target/screenshots
WXAUTH_E2E=1 cargo test --quiet --test it browser:: -- --test-threads=1
mkdir -p docs
for name in home-guest consent profile error-declined error-wechat sim-error-10003 scan-desktop profile-desktop qrconnect-desktop profile-website; do
    cp "target/screenshots/$name.png" "docs/$name.png"
done
ls -l docs/*.png

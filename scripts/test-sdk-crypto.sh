#!/usr/bin/env bash
# Safe mode against an implementation wxauth did not write: wechatpy, a
# widely used Python WeChat SDK, installed from PyPI into a throwaway
# virtualenv. wechatpy encrypts and signs pushes as WeChat does; wxauth must
# take them, and wechatpy must open and verify wxauth's encrypted replies.
# Also: a push whose plaintext fills a whole 32-byte padding block, a wrong
# appid and a wrong key refused with their reasons in the log, and no key or
# plaintext in the log.
#
# Usage: scripts/test-sdk-crypto.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: python3 with venv and pip (PyPI reachable), curl. wxauth talks to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-sdk-crypto
BIN=${1:-target/debug/wxauth}
WECHATPY="wechatpy[cryptography]==1.8.18"
# The cipher wechatpy uses, pinned too: the check is the same on every run.
CRYPTOGRAPHY="cryptography==50.0.2"
. scripts/py-test-lib.sh
venv=${WXAUTH_SDK_VENV:-target/sdk-venv}
make_venv "$venv" "wechatpy, cryptography" "$WECHATPY" "$CRYPTOGRAPHY"
echo "$NAME: $("$venv/bin/python" -c 'import wechatpy, cryptography; print("wechatpy", wechatpy.__version__, "cryptography", cryptography.__version__)')"

read -r port < <(python3 scripts/free_ports.py 1)
token=sdkToken123
key=kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR
prev=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG
appid=wx49f0ab532d5d035a
env -i PATH="$PATH" WXAUTH_APPID="$appid" WXAUTH_SECRET=sdk-test-secret-0001 \
    WXAUTH_PUBLIC_URL="http://127.0.0.1:$port" WXAUTH_LISTEN="127.0.0.1:$port" \
    WXAUTH_TOKEN="$token" WXAUTH_ENCODING_AES_KEY="$key" WXAUTH_ENCODING_AES_KEY_PREV="$prev" \
    WXAUTH_MSG_MODE=safe WXAUTH_LOG=debug "$BIN" > "$work/wxauth.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || fail "wxauth did not start"

"$venv/bin/python" scripts/sdk_crypto_check.py "http://127.0.0.1:$port/wechat" \
    "$token" "$key" "$prev" "$appid" | tee "$work/out"
[ "${PIPESTATUS[0]}" = 0 ] || fail "the checks above"

grep -q "appid in message is wx0000000000other, expected $appid" "$work/wxauth.log" \
    || fail "the wrong appid's reason is not in the log"
grep -q "key does not decrypt" "$work/wxauth.log" || fail "the wrong key's reason is not in the log"
grep -q "msg_signature does not match" "$work/wxauth.log" || fail "the bad msg_signature's reason is not in the log"
if grep -q -e "$key" -e "$prev" -e "$token" -e "sdk-check-" "$work/wxauth.log"; then
    fail "a key, the token or a message's plaintext is in the log"
fi
echo "ok - every refusal logged with its reason; no key, token or plaintext in the log"
echo "sdk-crypto: $(($(grep -c '^ok - ' "$work/out") + 1)) passed, 0 failed"

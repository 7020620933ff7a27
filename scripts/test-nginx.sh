#!/usr/bin/env bash
# Runs scripts/nginx.conf for real, in front of wxauth (demo mode: the app
# and its WeChat simulator) on loopback ports, and drives a login through it
# with curl: TLS, the 80 → 443 redirect, no answer for unknown hosts, 413 for
# big bodies, Secure cookies, a callback that reaches wxauth exactly once, and
# HTTP/2.0, request smuggling and bad Content-Length answered by nginx itself.
#
# Usage: scripts/test-nginx.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: nginx, openssl, curl, python3. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-nginx
BIN=${1:-target/debug/wxauth}
bin=$BIN
. scripts/nginx-test-lib.sh

read -r https_port http_port app_port sim_port < <(python3 scripts/free_ports.py 4)
host=wx.test
public="https://$host:$https_port"

make_cert "$host"

# The shipped server blocks, moved onto our ports and test certificate.
sed -e "s|listen 443 ssl default_server;|listen 127.0.0.1:$https_port ssl default_server;|" \
    -e "s|listen 80 default_server;|listen 127.0.0.1:$http_port default_server;|" \
    -e "s|listen 443 ssl;|listen 127.0.0.1:$https_port ssl;|" \
    -e "s|listen 80;|listen 127.0.0.1:$http_port;|" \
    -e "/listen \[::\]/d" \
    -e "s|wx.example.com;|$host;|" \
    -e "s|/etc/letsencrypt/live/wx.example.com/fullchain.pem|$work/cert.pem|" \
    -e "s|/etc/letsencrypt/live/wx.example.com/privkey.pem|$work/key.pem|" \
    -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$app_port;|" \
    -e "s|/var/log/nginx/access.log|$work/access.log|" \
    scripts/nginx.conf > "$work/wxauth.conf"
grep -q "127.0.0.1:$app_port" "$work/wxauth.conf" || fail "nginx.conf no longer has the expected upstream line"

env -i PATH="$PATH" WXAUTH_DEMO=1 WXAUTH_LISTEN="127.0.0.1:$app_port" \
    WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" WXAUTH_PUBLIC_URL="$public" \
    "$bin" > "$work/wxauth.log" 2>&1 &
pids+=($!)
start_nginx "$work/wxauth.conf"

# Wait (at most 10 s) for both.
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$app_port/healthz" >/dev/null 2>&1 && [ -f "$work/nginx.pid" ] && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$app_port/healthz" >/dev/null || fail "wxauth did not start"

c() { curl -sS --max-time 10 -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" --cacert "$work/cert.pem" --resolve "$host:$https_port:127.0.0.1" \
        --resolve "$host:$http_port:127.0.0.1" -b "$work/jar" -c "$work/jar" "$@"; }

# Health through TLS.
[ "$(c "$public/healthz")" = '{"status":"ok"}' ] || fail "healthz through nginx"
ok "healthz over TLS through nginx"

# Port 80 goes to 443.
loc=$(c -o /dev/null -D - "http://$host:$http_port/profile?x=1" | header location)
[ "$loc" = "https://$host/profile?x=1" ] || [ "$loc" = "https://$host:$http_port/profile?x=1" ] || fail "80 → 443 redirect, got '$loc'"
ok "port 80 redirects to https"

# An unknown host: no TLS handshake, and nothing on port 80.
if curl -sS --max-time 5 -k --resolve "other.test:$https_port:127.0.0.1" "https://other.test:$https_port/" >/dev/null 2>&1; then
    fail "an unknown host got an answer over TLS"
fi
code=0; curl -sS --max-time 5 -H "Host: other.test" "http://127.0.0.1:$http_port/" >/dev/null 2>&1 || code=$?
[ "$code" = 52 ] || fail "an unknown host on port 80: curl exit $code, expected 52 (empty reply)"
ok "unknown hosts get no answer"

# The login, through nginx, as a browser would do it.
authorize=$(c -o /dev/null -D - "$public/login" | header location)
case "$authorize" in
    "http://127.0.0.1:$sim_port/connect/oauth2/authorize?appid="*"#wechat_redirect") ;;
    *) fail "login redirect: '$authorize'" ;;
esac
redirect_uri=$(query_param "$authorize" redirect_uri)
[ "$redirect_uri" = "$public/callback" ] || fail "redirect_uri is '$redirect_uri', not from WXAUTH_PUBLIC_URL"
c -o "$work/consent.html" "${authorize%%#*}"
grep -q "允许" "$work/consent.html" || fail "consent page"
form=$(consent_form "$authorize" 0)
callback=$(c -o /dev/null -D - --data "$form" "http://127.0.0.1:$sim_port/connect/oauth2/authorize/confirm" | header location)
case "$callback" in "$public/callback?code="*) ;; *) fail "callback URL: '$callback'" ;; esac
headers=$(c -o /dev/null -D - "$callback")
[ "$(echo "$headers" | header location)" = "/profile" ] || fail "callback did not land on /profile: $headers"
echo "$headers" | grep -i "^set-cookie: __Host-wxauth_session=" | grep -q "; Secure" || fail "session cookie without Secure or __Host-: $headers"
ok "callback through nginx sets a Secure __Host- session cookie"
c "$public/profile" | grep -q "熊猫🐼小明" || fail "profile through nginx"
ok "profile through nginx shows the user"
callbacks=$(grep -c "GET /callback " "$work/wxauth.log" || true)
[ "$callbacks" = 1 ] || fail "wxauth saw $callbacks callbacks, expected exactly 1"
ok "the callback reached wxauth exactly once"

# Bodies over 64 KiB stop at nginx.
status=$(head -c 100000 /dev/zero | c -o /dev/null -w '%{http_code}' --data-binary @- "$public/logout")
[ "$status" = 413 ] || fail "a 100 kB body got $status, expected 413"
ok "nginx refuses bodies over 64 KiB"

# The HTTP layer's first three cases end at nginx, which answers them itself:
# HTTP/2.0 (prior knowledge) on an HTTP/1.1 listener, a chunked body that is
# a request (smuggling), and a Content-Length that is not one plain number.
# wxauth answers them too when reached directly (tests/it/http_layer.rs);
# here they never reach it.
# raw BYTES: sends BYTES (printf escapes) to nginx over TLS, prints the
# status line of the answer.
raw() {
    printf "$1" | python3 -c '
import socket, ssl, sys
port, host, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=10) as s, \
        ctx.wrap_socket(s, server_hostname=host) as t:
    t.sendall(sys.stdin.buffer.read())
    answer = b""
    try:
        while b"\r\n" not in answer:
            chunk = t.recv(4096)
            if not chunk:
                break
            answer += chunk
    except (OSError, ssl.SSLError):
        pass
    print(answer.split(b"\r\n")[0].decode("latin-1"))
' "$https_port" "$host" "$work/cert.pem"
}
expect_raw() { # STATUS_LINE BYTES WHAT
    got=$(raw "$2")
    [ "$got" = "$1" ] || fail "$3: nginx answered '$got', expected '$1'"
}
expect_raw "HTTP/1.1 505 HTTP Version Not Supported" \
    "GET /probe-h2 HTTP/2.0\r\nHost: $host\r\n\r\n" "HTTP/2.0 request line"
expect_raw "HTTP/1.1 400 Bad Request" \
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" "HTTP/2 prior-knowledge preface"
expect_raw "HTTP/1.1 400 Bad Request" \
    "POST /probe-smuggle HTTP/1.1\r\nHost: $host\r\nTransfer-Encoding: chunked\r\n\r\nGET /probe-smuggled HTTP/1.1\r\nHost: $host\r\n\r\n" \
    "a chunked body that is a request"
for length in "+3" "0x3" "3 3" "-1" "abc" "99999999999999999999999"; do
    expect_raw "HTTP/1.1 400 Bad Request" \
        "POST /probe-length HTTP/1.1\r\nHost: $host\r\nContent-Length: $length\r\n\r\nabcGET /probe-smuggled HTTP/1.1\r\n\r\n" \
        "Content-Length: $length"
done
expect_raw "HTTP/1.1 400 Bad Request" \
    "POST /probe-length HTTP/1.1\r\nHost: $host\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc" \
    "two Content-Length headers"
expect_raw "HTTP/1.1 400 Bad Request" \
    "POST /probe-length HTTP/1.1\r\nHost: $host\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc" \
    "Content-Length with Transfer-Encoding"
if grep -q "probe-" "$work/wxauth.log"; then
    fail "wxauth saw requests nginx should have answered: $(grep probe- "$work/wxauth.log")"
fi
ok "nginx answers HTTP/2.0, request smuggling and bad Content-Length itself"

# Logout through nginx.
[ "$(c -o /dev/null -w '%{http_code}' -X POST "$public/logout")" = 303 ] || fail "logout"
[ "$(c -o /dev/null -w '%{http_code}' "$public/api/me")" = 401 ] || fail "still logged in after logout"
ok "logout through nginx"

echo "nginx: $passed passed, 0 failed"

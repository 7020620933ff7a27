#!/usr/bin/env bash
# Runs scripts/nginx-gateway.conf for real: nginx with a test certificate in
# front of a tiny app (it answers with the headers it received) and wxauth in
# demo mode with an allow-list, all on loopback ports. Drives with curl:
# anonymous → login through the simulator → back to the page first asked
# for, the app sees the user's identity, a forged X-WeChat-OpenID from the
# client never reaches it, and a user outside the allow-list gets the 403 page.
#
# Usage: scripts/test-gateway.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: nginx, openssl, curl, python3. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-gateway
BIN=${1:-target/debug/wxauth}
bin=$BIN
. scripts/nginx-test-lib.sh

read -r https_port http_port app_port sim_port up_port < <(python3 scripts/free_ports.py 5)
host=app.test
public="https://$host:$https_port"

make_cert "$host"

# The protected app: answers every request with the X-WeChat-* headers it got.
cat > "$work/app.py" <<'EOF'
import http.server, json, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen = {k: v for k, v in self.headers.items() if k.lower().startswith("x-wechat-")}
        body = json.dumps({"path": self.path, "headers": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with open(sys.argv[2], "a") as log:
            log.write(self.path + "\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
EOF
python3 "$work/app.py" "$up_port" "$work/app.log" &
pids+=($!)
touch "$work/app.log"

sed -e "s|listen 443 ssl;|listen 127.0.0.1:$https_port ssl;|" \
    -e "s|listen 80;|listen 127.0.0.1:$http_port;|" \
    -e "/listen \[::\]/d" \
    -e "s|app.example.com;|$host;|" \
    -e "s|/etc/letsencrypt/live/app.example.com/fullchain.pem|$work/cert.pem|" \
    -e "s|/etc/letsencrypt/live/app.example.com/privkey.pem|$work/key.pem|" \
    -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$app_port;|" \
    -e "s|server 127.0.0.1:9000;|server 127.0.0.1:$up_port;|" \
    scripts/nginx-gateway.conf > "$work/gateway.conf"
grep -q "127.0.0.1:$up_port" "$work/gateway.conf" || fail "nginx-gateway.conf no longer has the expected upstream lines"

# Only test user 3 is allowed.
echo "oSim3EmptyProfileAfter202104" > "$work/allow"
env -i PATH="$PATH" WXAUTH_DEMO=1 WXAUTH_LISTEN="127.0.0.1:$app_port" \
    WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" WXAUTH_PUBLIC_URL="$public" WXAUTH_ALLOW="$work/allow" \
    "$bin" > "$work/wxauth.log" 2>&1 &
pids+=($!)
start_nginx "$work/gateway.conf"
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$app_port/healthz" 2>/dev/null && break
    sleep 0.1
done

# A browser with its own cookie jar; the WeChat User-Agent as on a phone.
c() { curl -sS --max-time 10 --cacert "$work/cacert" --resolve "$host:$https_port:127.0.0.1" \
        -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" -b "$1" -c "$1" "${@:2}"; }
cp "$work/cert.pem" "$work/cacert"
header() { grep -i "^$1:" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
sim="http://127.0.0.1:$sim_port"

# login JAR USER: from a page behind the gateway through WeChat's consent; prints where it lands.
login() {
    local jar=$1 user=$2 first=$3
    local to authorize form callback
    to=$(c "$jar" -o /dev/null -D - -H "X-WeChat-OpenID: forged" "$public$first" | header location)
    case "$to" in /login\?next=*) ;; *) fail "anonymous $first went to '$to', not to /login" ;; esac
    authorize=$(c "$jar" -o /dev/null -D - "$public$to" | header location)
    form=$(python3 -c '
import sys, urllib.parse as u
q = dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))
print(u.urlencode({k: q[k] for k in ("appid", "redirect_uri", "response_type", "scope", "state")} | {"user": sys.argv[2], "action": "allow"}))
' "${authorize%%#*}" "$user")
    callback=$(c "$jar" -o /dev/null -D - --data "$form" "$sim/connect/oauth2/authorize/confirm" | header location)
    c "$jar" -o /dev/null -D - "$callback" | header location
}

page="/reports/2026?year=2026&q=a%20b"
[ "$(c "$work/jar0" -o /dev/null -w '%{http_code}' -H "X-WeChat-OpenID: forged" "$public$page")" = 302 ] \
    || fail "an anonymous visitor was not sent to log in"
[ ! -s "$work/app.log" ] || fail "the app was reached without a login: $(cat "$work/app.log")"
ok "anonymous visitors never reach the app, forged header or not"

landed=$(login "$work/jar3" 3 "$page")
[ "$landed" = "$page" ] || fail "after login landed on '$landed', not '$page'"
ok "login returns to the page first asked for, query string intact"

seen=$(c "$work/jar3" -H "X-WeChat-OpenID: forged" -H "X-WeChat-UnionID: forged" "$public$page")
python3 - "$seen" <<'EOF' || fail "the app saw: $seen"
import json, sys
seen = json.loads(sys.argv[1])
h = {k.lower(): v for k, v in seen["headers"].items()}
assert seen["path"] == "/reports/2026?year=2026&q=a%20b", seen
assert h.get("x-wechat-openid") == "oSim3EmptyProfileAfter202104", h
assert "x-wechat-unionid" not in h, h      # user 3 has none; the forged one is gone
assert h.get("x-wechat-nickname") == "%E5%BE%AE%E4%BF%A1%E7%94%A8%E6%88%B7", h   # 微信用户
EOF
ok "the app sees the user's identity, and never a client's forged header"

landed=$(login "$work/jar0" 0 "/reports/x")
status=$(c "$work/jar0" -o "$work/denied.html" -w '%{http_code}' "$public/reports/x")
[ "$status" = 403 ] || fail "a user outside the allow-list got $status"
grep -q "oSim0PandaXiaoMingEmoji00001" "$work/denied.html" || fail "the 403 page does not show the openid"
! grep -q "/reports/x" "$work/app.log" || fail "the app was reached by a user outside the allow-list"
ok "a user outside WXAUTH_ALLOW gets the 403 page with their openid"

[ "$(c "$work/jar3" -o /dev/null -w '%{http_code}' -X POST "$public/logout")" = 303 ] || fail "logout"
[ "$(c "$work/jar3" -o /dev/null -w '%{http_code}' "$public$page")" = 302 ] || fail "still let in after logout"
ok "after logout the gateway asks for a login again"

echo "gateway: $passed passed, 0 failed"

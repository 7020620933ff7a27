#!/usr/bin/env bash
# Runs scripts/nginx-gateway.conf for real: nginx with a test certificate in
# front of a tiny app (it answers with the headers it received) and wxauth in
# demo mode with an allow-list, all on loopback ports. Drives with curl:
# anonymous → login through the simulator → back to the page first asked
# for, the app sees the user's identity and never wxauth's cookies, a forged
# X-WeChat-OpenID from the client never reaches it, a user outside the
# allow-list gets the 403 page, a desktop logs in by scanning its QR code
# with a phone that confirms, and a cross-site POST is refused.
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
        seen = {k: v for k, v in self.headers.items() if k.lower().startswith("x-wechat-") or k.lower() == "cookie"}
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
    -e "s|/var/log/nginx/access.log|$work/access.log|" \
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

# A browser with its own cookie jar; the WeChat User-Agent as on a phone
# (d: a desktop's).
c() { curl -sS --max-time 10 --cacert "$work/cacert" --resolve "$host:$https_port:127.0.0.1" \
        -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" -b "$1" -c "$1" "${@:2}"; }
d() { curl -sS --max-time 10 --cacert "$work/cacert" --resolve "$host:$https_port:127.0.0.1" \
        -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36" \
        -b "$1" -c "$1" "${@:2}"; }
cp "$work/cert.pem" "$work/cacert"
sim="http://127.0.0.1:$sim_port"

# login JAR USER: from a page behind the gateway through WeChat's consent; prints where it lands.
login() {
    local jar=$1 user=$2 first=$3
    local to authorize form callback
    to=$(c "$jar" -o /dev/null -D - -H "X-WeChat-OpenID: forged" "$public$first" | header location)
    case "$to" in /login\?next=*) ;; *) fail "anonymous $first went to '$to', not to /login" ;; esac
    authorize=$(c "$jar" -o /dev/null -D - "$public$to" | header location)
    form=$(consent_form "$authorize" "$user")
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

grep -q "__Host-wxauth_session" "$work/jar3" || fail "no __Host- session cookie: $(cat "$work/jar3")"
seen=$(c "$work/jar3" -H "X-WeChat-OpenID: forged" -H "X-WeChat-UnionID: forged" \
    -H "Cookie: theme=dark; __Host-wxauth_login=planted" "$public$page")
python3 - "$seen" <<'EOF' || fail "the app saw: $seen"
import json, sys
seen = json.loads(sys.argv[1])
h = {k.lower(): v for k, v in seen["headers"].items()}
assert seen["path"] == "/reports/2026?year=2026&q=a%20b", seen
assert h.get("x-wechat-openid") == "oSim3EmptyProfileAfter202104", h
assert "x-wechat-unionid" not in h, h      # user 3 has none; the forged one is gone
assert h.get("x-wechat-nickname") == "%E5%BE%AE%E4%BF%A1%E7%94%A8%E6%88%B7", h   # 微信用户
assert "theme=dark" in h.get("cookie", ""), h     # the app's own cookie passes
assert "wxauth" not in h.get("cookie", ""), h     # wxauth's never do
EOF
ok "the app sees the user's identity, never a client's forged header, never wxauth's cookies"

landed=$(login "$work/jar0" 0 "/reports/x")
status=$(c "$work/jar0" -o "$work/denied.html" -w '%{http_code}' "$public/reports/x")
[ "$status" = 403 ] || fail "a user outside the allow-list got $status"
grep -q "oSim0PandaXiaoMingEmoji00001" "$work/denied.html" || fail "the 403 page does not show the openid"
! grep -q "/reports/x" "$work/app.log" || fail "the app was reached by a user outside the allow-list"
ok "a user outside WXAUTH_ALLOW gets the 403 page with their openid"

# A desktop browser logs in by scanning its QR code with a phone, through
# the gateway: the QR page and its script, the phone's login and its
# confirmation, the desktop's poll, then the app with the phone's user.
for asset in style.css avatar.svg favicon.svg scan.js; do
    type=$(d "$work/desk" -o /dev/null -w '%{content_type}' "$public/static/$asset")
    case "$type" in text/css*|image/svg+xml*|text/javascript*) ;; *) fail "/static/$asset came back as '$type'" ;; esac
done
! grep -q "/static/" "$work/app.log" || fail "wxauth's static files went to the app"
d "$work/desk" -o "$work/qr.html" "$public/login?next=%2Freports%2Fdesk&via=scan"
ticket=$(grep -o 'data-ticket="[A-Za-z0-9]*"' "$work/qr.html" | cut -d'"' -f2)
[ -n "$ticket" ] || fail "no QR ticket on the desktop's /login"
grep -q "$public/login/scan?t=$ticket" "$work/qr.html" || fail "the QR code does not point at $public"
poll() { d "$work/desk" "$public/login/ticket?t=$ticket"; }
[ "$(poll)" = '{"status":"pending"}' ] || fail "poll before the scan: $(poll)"
authorize=$(c "$work/phone" -o /dev/null -D - "$public/login/scan?t=$ticket" | header location)
form=$(consent_form "$authorize" 3)
callback=$(c "$work/phone" -o /dev/null -D - --data "$form" "$sim/connect/oauth2/authorize/confirm" | header location)
confirm=$(c "$work/phone" -o /dev/null -D - "$callback" | header location)
case "$confirm" in /login/scan/confirm\?t=*) ;; *) fail "the phone's login landed on '$confirm'" ;; esac
c "$work/phone" -o "$work/confirm.html" "$public$confirm"
grep -q "确认在电脑上登录" "$work/confirm.html" || fail "no confirmation page: $(cat "$work/confirm.html")"
grep -q "Chrome · Windows" "$work/confirm.html" || fail "the confirmation page does not name the desktop"
grep -q ">127.0.0.1<" "$work/confirm.html" || fail "the confirmation page does not show the desktop's address"
[ "$(poll)" = '{"status":"scanned"}' ] || fail "poll after the scan: $(poll)"
token=$(grep -o 'name="token" value="[A-Za-z0-9]*"' "$work/confirm.html" | head -1 | cut -d'"' -f4)
status=$(c "$work/phone" -o /dev/null -w '%{http_code}' -H "Origin: https://evil.example" \
    --data "t=$ticket&token=$token" "$public/login/scan/confirm")
[ "$status" = 403 ] || fail "a cross-site confirmation got $status"
[ "$(poll)" = '{"status":"scanned"}' ] || fail "poll after a cross-site post: $(poll)"
status=$(c "$work/phone" -o /dev/null -w '%{http_code}' -H "Origin: $public" \
    --data "t=$ticket&token=$token" "$public/login/scan/confirm")
[ "$status" = 303 ] || fail "the phone's confirmation got $status"
claimed=$(poll)
[ "$claimed" = '{"next":"/reports/desk","status":"done"}' ] || fail "poll after the confirmation: $claimed"
seen=$(d "$work/desk" "$public/reports/desk")
case "$seen" in *'oSim3EmptyProfileAfter202104'*) ;; *) fail "the app saw the desktop as: $seen" ;; esac
ok "a desktop logs in through the gateway by scanning its QR code with a phone that confirms"

# Another site's page cannot log anyone out.
status=$(c "$work/jar3" -o /dev/null -w '%{http_code}' -H "Origin: https://evil.example" -X POST "$public/logout")
[ "$status" = 403 ] || fail "a cross-site logout got $status"
[ "$(c "$work/jar3" -o /dev/null -w '%{http_code}' "$public$page")" = 200 ] || fail "logged out by a cross-site post"
ok "a cross-site POST /logout is refused and the session lives on"

[ "$(c "$work/jar3" -o /dev/null -w '%{http_code}' -H "Origin: $public" -X POST "$public/logout")" = 303 ] || fail "logout"
[ "$(c "$work/jar3" -o /dev/null -w '%{http_code}' "$public$page")" = 302 ] || fail "still let in after logout"
ok "after logout the gateway asks for a login again"

echo "gateway: $passed passed, 0 failed"

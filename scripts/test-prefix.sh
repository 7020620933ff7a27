#!/usr/bin/env bash
# Runs wxauth under a path prefix behind nginx, for real: nginx with a test
# certificate serves another app at / (python3's http.server on loopback)
# and wxauth at /wx/ with the location block of scripts/nginx-prefix.conf
# (the one the README shows; this checks it is still the same). wxauth runs
# in real mode with WXAUTH_PUBLIC_URL=https://app.test:PORT/wx against
# `wxauth sim`. Drives with curl: the pages and their links stay under /wx,
# a phone's login goes through WeChat and back to /wx/profile, the other
# app keeps its own / and /profile, a desktop's QR page polls under /wx,
# the gateway (auth_request on /wx/auth/check) lets a logged-in user into
# the other app's /private/, and logout and the same-origin check work.
#
# Usage: scripts/test-prefix.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: nginx, openssl, curl, python3. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-prefix
BIN=${1:-target/debug/wxauth}
bin=$BIN
. scripts/nginx-test-lib.sh

read -r https_port app_port sim_port other_port < <(python3 scripts/free_ports.py 4)
host=app.test
site="https://$host:$https_port"
public="$site/wx"
appid=wx1234567890abcdef
secret=prefix-test-secret-3b9e

make_cert "$host"
cp "$work/cert.pem" "$work/cacert"

# The README shows the very block this runs.
python3 - scripts/nginx-prefix.conf README.md <<'EOF' || fail "README.md does not show scripts/nginx-prefix.conf's location block as it is"
import sys
conf, readme = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
block = conf[conf.index("location /wx/ {"):]
block = block[: block.index("\n}") + 2]
sys.exit(0 if block in readme else 1)
EOF
ok "the README shows scripts/nginx-prefix.conf's location block"

# The other app: a few static pages, its own /profile and /login among them.
mkdir -p "$work/other/profile" "$work/other/login" "$work/other/private"
echo "<p>the other app's home</p>" > "$work/other/index.html"
echo "<p>the other app's profile</p>" > "$work/other/profile/index.html"
echo "<p>the other app's login</p>" > "$work/other/login/index.html"
echo "the other app's private report" > "$work/other/private/report.txt"
python3 -m http.server --bind 127.0.0.1 --directory "$work/other" "$other_port" \
    > "$work/other.log" 2>&1 &
pids+=($!)

start_real_wxauth

sed -e "s|proxy_pass http://127.0.0.1:8080;|proxy_pass http://127.0.0.1:$app_port;|" \
    scripts/nginx-prefix.conf > "$work/wxauth-prefix.conf"
grep -q "127.0.0.1:$app_port;" "$work/wxauth-prefix.conf" \
    || fail "nginx-prefix.conf no longer has the expected proxy_pass line"
# The host's server block: the other app at /, its /private/ behind the
# gateway (wxauth's /wx/auth/* routes), and wxauth's block included as it is.
cat > "$work/site.conf" <<CONF
server {
    listen 127.0.0.1:$https_port ssl;
    server_name $host;
    ssl_certificate     $work/cert.pem;
    ssl_certificate_key $work/key.pem;

    location / {
        proxy_pass http://127.0.0.1:$other_port;
    }

    location /private/ {
        auth_request /_wxauth_check;
        error_page 401 = @wxauth_login;
        error_page 403 /wx/auth/denied;
        proxy_set_header Cookie "";
        proxy_pass http://127.0.0.1:$other_port;
    }
    location = /_wxauth_check {
        internal;
        proxy_pass http://127.0.0.1:$app_port/wx/auth/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Host \$host;
    }
    location @wxauth_login {
        rewrite ^ /wx/auth/start break;
        proxy_pass http://127.0.0.1:$app_port;
        proxy_set_header Host \$host;
        proxy_set_header X-Original-URI \$request_uri;
    }

    include $work/wxauth-prefix.conf;
}
CONF
start_nginx "$work/site.conf"
wait_for "http://127.0.0.1:$app_port/healthz"
wait_for "http://127.0.0.1:$sim_port/sim/state"
wait_for "http://127.0.0.1:$other_port/"

# A phone (WeChat's User-Agent) and a desktop, each with a cookie jar.
c() { curl -sS --max-time 10 --cacert "$work/cacert" --resolve "$host:$https_port:127.0.0.1" \
        -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" -b "$1" -c "$1" "${@:2}"; }
d() { curl -sS --max-time 10 --cacert "$work/cacert" --resolve "$host:$https_port:127.0.0.1" \
        -A "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36" \
        -b "$1" -c "$1" "${@:2}"; }
sim="http://127.0.0.1:$sim_port"

# under_wx FILE: every href, src, action and data-poll in the page stays under /wx/.
under_wx() {
    python3 - "$1" <<'EOF'
import re, sys
page = open(sys.argv[1], encoding="utf-8").read()
links = re.findall(r'(?:href|src|action|data-poll|data-next)="([^"]*)"', page)
bad = [l for l in links if not l.startswith("/wx/") and not l.startswith("https://thirdwx.qlogo.cn/")]
if not links or bad:
    sys.exit(f"links leaving /wx/: {bad} (of {links})")
EOF
}

# consent JAR AUTHORIZE USER: 允许 on the simulator's page; prints the callback URL.
consent() {
    local form
    form=$(consent_form "$2" "$3")
    c "$1" -o /dev/null -D - --data "$form" "$sim/connect/oauth2/authorize/confirm" | header location
}

[ "$(c "$work/anon" "$site/")" = "<p>the other app's home</p>" ] || fail "/ is not the other app's"
status=$(c "$work/anon" -o /dev/null -w '%{http_code} %{redirect_url}' "$site/wx")
[ "$status" = "301 $site/wx/" ] || fail "/wx went to '$status', not to /wx/"
c "$work/anon" -o "$work/home.html" "$site/wx/"
grep -q "你好，游客" "$work/home.html" || fail "/wx/ is not wxauth's home: $(cat "$work/home.html")"
under_wx "$work/home.html" || fail "the home page links out of /wx/"
for asset in style.css favicon.svg avatar.svg scan.js; do
    type=$(c "$work/anon" -o /dev/null -w '%{content_type}' "$site/wx/static/$asset")
    case "$type" in text/css*|image/svg+xml*|text/javascript*) ;; *) fail "/wx/static/$asset came back as '$type'" ;; esac
done
ok "the other app keeps /, wxauth answers under /wx/ and every link of its home stays there"

to=$(c "$work/phone" -o /dev/null -D - "$site/wx/login" | header location)
case "$to" in "$sim/connect/oauth2/authorize?appid=$appid&redirect_uri=https%3A%2F%2F$host%3A$https_port%2Fwx%2Fcallback&"*) ;;
    *) fail "/wx/login sent the phone to '$to'" ;; esac
# curl's jar: HttpOnly, host, subdomains, path, Secure, expiry, name.
grep -qP "^#HttpOnly_$host\tFALSE\t/wx\tTRUE\t\d+\twxauth_login\t" "$work/phone" \
    || fail "the login cookie is not HttpOnly and Secure with Path=/wx: $(cat "$work/phone")"
callback=$(consent "$work/phone" "$to" 0)
case "$callback" in "$public/callback?code="*) ;; *) fail "WeChat sent the phone back to '$callback'" ;; esac
landed=$(c "$work/phone" -o /dev/null -D - "$callback" | header location)
[ "$landed" = "/wx/profile" ] || fail "the callback landed on '$landed'"
c "$work/phone" -o "$work/profile.html" "$site$landed"
grep -q "熊猫🐼小明" "$work/profile.html" || fail "no profile: $(cat "$work/profile.html")"
under_wx "$work/profile.html" || fail "the profile links out of /wx/"
ok "a phone's login goes through WeChat and back to /wx/profile, every link under /wx/"

[ "$(c "$work/phone" "$site/profile/")" = "<p>the other app's profile</p>" ] || fail "/profile is not the other app's"
[ "$(c "$work/phone" "$site/login/")" = "<p>the other app's login</p>" ] || fail "/login is not the other app's"
! grep -q '"GET /wx' "$work/other.log" || fail "the other app received wxauth's requests: $(cat "$work/other.log")"
ok "the other app's /profile and /login are its own, and it never sees /wx/"

d "$work/desk" -o "$work/qr.html" "$site/wx/login?next=%2Fwx%2Fprofile"
under_wx "$work/qr.html" || fail "the QR page links out of /wx/"
grep -q 'data-poll="/wx/login/ticket"' "$work/qr.html" || fail "scan.js would not poll under /wx/"
ticket=$(grep -o 'data-ticket="[A-Za-z0-9]*"' "$work/qr.html" | cut -d'"' -f2)
[ "$(d "$work/desk" "$site/wx/login/ticket?t=$ticket")" = '{"status":"pending"}' ] || fail "the desktop's poll under /wx/"
to=$(c "$work/phone2" -o /dev/null -D - "$public/login/scan?t=$ticket" | header location)
confirm=$(c "$work/phone2" -o /dev/null -D - "$(consent "$work/phone2" "$to" 3)" | header location)
case "$confirm" in /wx/login/scan/confirm\?t=*) ;; *) fail "the scanning phone landed on '$confirm'" ;; esac
c "$work/phone2" -o "$work/confirm.html" "$site$confirm"
under_wx "$work/confirm.html" || fail "the confirmation page links out of /wx/"
token=$(grep -o 'name="token" value="[A-Za-z0-9]*"' "$work/confirm.html" | head -1 | cut -d'"' -f4)
status=$(c "$work/phone2" -o /dev/null -w '%{http_code}' -H "Origin: $site" \
    --data "t=$ticket&token=$token" "$site/wx/login/scan/confirm")
[ "$status" = 303 ] || fail "the phone's confirmation got $status"
claimed=$(d "$work/desk" "$site/wx/login/ticket?t=$ticket")
[ "$claimed" = '{"next":"/wx/profile","status":"done"}' ] || fail "the desktop's poll after the confirmation: $claimed"
ok "a desktop logs in under /wx/ by scanning its QR code with a phone that confirms"

to=$(c "$work/visitor" -o /dev/null -D - "$site/private/report.txt" | header location)
[ "$to" = "/wx/login?next=%2Fprivate%2Freport.txt" ] || fail "an anonymous visitor of /private/ went to '$to'"
[ "$(c "$work/phone" "$site/private/report.txt")" = "the other app's private report" ] \
    || fail "the logged-in phone was not let into /private/"
ok "the gateway under /wx/ sends a visitor to /wx/login and lets a logged-in user into the other app"

status=$(c "$work/phone" -o /dev/null -w '%{http_code}' -H "Origin: https://evil.example" -X POST "$site/wx/logout")
[ "$status" = 403 ] || fail "a cross-site logout got $status"
out=$(c "$work/phone" -o /dev/null -w '%{http_code} %header{location}' -H "Origin: $site" -X POST "$site/wx/logout")
[ "$out" = "303 /wx/" ] || fail "logout answered '$out'"
[ "$(c "$work/phone" -o /dev/null -w '%{http_code}' "$site/wx/api/me")" = 401 ] || fail "still logged in after logout"
ok "logout under /wx/ (a cross-site one refused) ends the session and goes back to /wx/"

echo "prefix: $passed passed, 0 failed"

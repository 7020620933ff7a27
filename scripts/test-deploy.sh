#!/usr/bin/env bash
# Runs the README's deploy steps as written, on Debian's stock nginx, then
# what happens to the deployment afterwards: a renewal-style ACME request,
# a login, the access log, a renewal that reloads nginx, and
# nginx-gateway.conf installed beside nginx.conf.
#
# The steps are the shell blocks of README.md between the lines
# `<!-- test-deploy: begin` and `<!-- test-deploy: end -->` (step 4, nginx
# and the certificate, and step 5's checks), run one command at a time;
# any command that fails fails the test. They start from what
# `apt-get install nginx` leaves: the package's nginx.conf and default site
# (checked against the package's checksums), the default site enabled,
# conf.d empty.
#
# What differs from a real server, and only this:
# - Paths and ports. /etc/nginx, /etc/letsencrypt, /var/www/html,
#   /var/log/nginx, /run/nginx.pid (and nginx's built-in /var/lib/nginx)
#   live under a private directory; ports 80, 443 and 8080 are free
#   loopback ports; IPv6 listens are dropped. One substitution does it, the
#   same for Debian's files, scripts/*.conf and the README's commands.
# - Stand-ins, first on PATH while the steps run, for what would leave the
#   machine or touch the real system:
#   apt-get   nothing is installed (CI installs nginx); it starts nginx with
#             the package's configuration, as the package does.
#   certbot   cannot reach Let's Encrypt here. It does what Let's Encrypt's
#             HTTP-01 check does: a token file in the webroot's
#             .well-known/acme-challenge/, fetched over plain http on the
#             port-80 stand-in; it wants 200 and the file's content at once
#             (Let's Encrypt would follow a redirect, to wxauth's 404). Then
#             it puts a self-signed certificate made by openssl where
#             certbot puts its own (live/NAME/fullchain.pem and privkey.pem,
#             as files), keeps the webroot and the deploy hook, and runs the
#             hook. `renew --dry-run` does the challenge only.
#   systemctl `reload nginx`: `nginx -s reload`, then waits (10 s at most)
#             for new worker processes, so a configuration nginx refuses
#             fails here, where systemctl would say nothing.
#   nginx     the real nginx, with the private nginx.conf.
#   curl      the real curl, the domains resolved to 127.0.0.1, the
#             self-signed certificate trusted, 10 s at most.
# - wxauth runs in real mode against `wxauth sim` (step 3's systemd unit is
#   scripts/test-systemd.sh's).
#
# Usage: scripts/test-deploy.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: Debian's nginx, openssl, curl, python3, dpkg. Talks to 127.0.0.1 only.
# Runs as root (as in CI) or not: then nginx ignores `user www-data`.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

NAME=test-deploy
BIN=${1:-target/debug/wxauth}
bin=$BIN
. scripts/nginx-test-lib.sh
command -v dpkg-query >/dev/null || { echo "$NAME: dpkg-query is missing (Debian's nginx needed)" >&2; exit 1; }

root=$work/root
events=$work/events
touch "$events"
domain=wx.example.com
gateway_domain=app.example.com
appid=wx1234567890abcdef
secret=deploy-test-secret-5c1f
read -r http_port https_port app_port sim_port < <(python3 scripts/free_ports.py 4)
public="https://$domain:$https_port"
real_nginx=$(command -v nginx)
real_curl=$(command -v curl)

# Ours to stop: the nginx started by the apt-get stand-in.
deploy_cleanup() {
    if [ -f "$root/run/nginx.pid" ]; then
        kill "$(cat "$root/run/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 50); do [ -f "$root/run/nginx.pid" ] || break; sleep 0.1; done
    fi
    cleanup
}
trap deploy_cleanup EXIT

# The closing line comes out on a failure too.
fail() {
    echo "$NAME: FAIL: $*" >&2
    for f in steps.out renew.out gateway.out events wxauth.log sim.log root/var/log/nginx/error.log root/var/log/nginx/access.log; do
        [ -s "$work/$f" ] && { echo "--- $f" >&2; tail -n 40 "$work/$f" >&2; }
    done
    echo "deploy: $passed passed, 1 failed"
    exit 1
}
# A command that fails where no check expects it fails the test the same way.
trap 'fail "line $LINENO: exit $? from: $BASH_COMMAND"' ERR

# relocate: the one substitution (stdin to stdout), see the header.
relocate() {
    sed -e "s|/etc/nginx/|$root/etc/nginx/|g" \
        -e "s|/etc/letsencrypt/|$root/etc/letsencrypt/|g" \
        -e "s|/var/www/html|$root/var/www/html|g" \
        -e "s|/var/log/nginx/|$root/var/log/nginx/|g" \
        -e "s|/run/nginx.pid|$root/run/nginx.pid|g" \
        -e "s|listen 80\([ ;]\)|listen 127.0.0.1:$http_port\1|" \
        -e "s|listen 443\([ ;]\)|listen 127.0.0.1:$https_port\1|" \
        -e "/listen \[::\]:/d" \
        -e "s|127\.0\.0\.1:8080|127.0.0.1:$app_port|g" \
        -e "s|https://$domain/|https://$domain:$https_port/|g"
}

# --- Debian's nginx as `apt-get install nginx` leaves it -------------------
conffiles=$(dpkg-query -W -f='${Conffiles}\n' nginx-common 2>/dev/null) \
    || fail "the nginx-common package is not installed (Debian's nginx needed)"
for f in /etc/nginx/nginx.conf /etc/nginx/sites-available/default; do
    want=$(echo "$conffiles" | awk -v f="$f" '$1 == f { print $2 }')
    have=$(md5sum "$f" 2>/dev/null | cut -d' ' -f1)
    { [ -n "$want" ] && [ "$want" = "$have" ]; } || fail "$f is not the nginx package's (md5 $have, the package's $want)"
done
mkdir -p "$root/etc" "$root/run" "$root/var/log/nginx" "$root/var/www/html" "$root/var/lib/nginx" "$root/etc/letsencrypt"
cp -a /etc/nginx "$root/etc/nginx"
# conf.d and sites-enabled as after a fresh install, whatever this machine has.
rm -rf "$root/etc/nginx/conf.d" "$root/etc/nginx/sites-enabled"
mkdir "$root/etc/nginx/conf.d" "$root/etc/nginx/sites-enabled"
ln -s "$root/etc/nginx/sites-available/default" "$root/etc/nginx/sites-enabled/default"
find "$root/etc/nginx" -type f | while read -r f; do relocate < "$f" > "$f.new" && mv "$f.new" "$f"; done
# nginx's built-in temporary directories (/var/lib/nginx), relocated too.
sed -i "s|^http {|http {\n\tclient_body_temp_path $root/var/lib/nginx/body;\n\tproxy_temp_path $root/var/lib/nginx/proxy;\n\tfastcgi_temp_path $root/var/lib/nginx/fastcgi;\n\tuwsgi_temp_path $root/var/lib/nginx/uwsgi;\n\tscgi_temp_path $root/var/lib/nginx/scgi;|" \
    "$root/etc/nginx/nginx.conf"
grep -q "listen 127.0.0.1:$http_port default_server;" "$root/etc/nginx/sites-available/default" \
    || fail "Debian's default site no longer has the expected listen line"
# The welcome page the package puts in /var/www/html.
cp /usr/share/nginx/html/index.html "$root/var/www/html/index.nginx-debian.html" 2>/dev/null \
    || cp /var/www/html/index.nginx-debian.html "$root/var/www/html/" 2>/dev/null \
    || echo "<h1>Welcome to nginx!</h1>" > "$root/var/www/html/index.nginx-debian.html"

# The repository's files the steps read (scripts/nginx.conf ...), relocated.
mkdir -p "$work/checkout/scripts"
for f in scripts/nginx.conf scripts/nginx-gateway.conf; do relocate < "$f" > "$work/checkout/$f"; done

# --- The stand-ins -----------------------------------------------------------
mkdir "$work/bin"
cat > "$work/bin/shim.env" <<ENV
ROOT=$root
HTTP_PORT=$http_port
REAL_NGINX=$real_nginx
REAL_CURL=$real_curl
EVENTS=$events
LE=$root/etc/letsencrypt
DOMAINS="$domain $gateway_domain"
CA=$root/etc/letsencrypt/live/$domain/fullchain.pem
RESOLVE="--resolve $domain:$http_port:127.0.0.1 --resolve $domain:$https_port:127.0.0.1 --resolve $gateway_domain:$http_port:127.0.0.1 --resolve $gateway_domain:$https_port:127.0.0.1"
ENV

cat > "$work/bin/nginx" <<'SH'
#!/usr/bin/env bash
# Stand-in: the real nginx with the private nginx.conf.
. "$(dirname "$0")/shim.env"
exec "$REAL_NGINX" -c "$ROOT/etc/nginx/nginx.conf" "$@"
SH

cat > "$work/bin/curl" <<'SH'
#!/usr/bin/env bash
# Stand-in: the real curl, the domains on 127.0.0.1, the test certificate trusted.
. "$(dirname "$0")/shim.env"
# shellcheck disable=SC2086 # RESOLVE is several words
exec "$REAL_CURL" --max-time 10 $RESOLVE --cacert "$CA" "$@"
SH

cat > "$work/bin/systemctl" <<'SH'
#!/usr/bin/env bash
# Stand-in: `systemctl reload nginx` only; waits for nginx to take the new
# configuration (new worker processes), 10 s at most.
. "$(dirname "$0")/shim.env"
[ "$*" = "reload nginx" ] || { echo "systemctl (stand-in): only 'reload nginx' here, not '$*'" >&2; exit 1; }
master=$(cat "$ROOT/run/nginx.pid" 2>/dev/null) || { echo "systemctl (stand-in): nginx is not running" >&2; exit 1; }
workers() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cut -d' ' -f4 "$p/stat" 2>/dev/null)" = "$master" ] && echo "${p#/proc/}"
    done
    return 0
}
before=" $(workers | tr '\n' ' ')"
"$REAL_NGINX" -c "$ROOT/etc/nginx/nginx.conf" -s reload || exit 1
for _ in $(seq 100); do
    for w in $(workers); do
        case "$before" in *" $w "*) ;; *) echo "reload" >> "$EVENTS"; exit 0 ;; esac
    done
    sleep 0.1
done
echo "systemctl (stand-in): nginx did not take the new configuration within 10 s:" >&2
tail -n 5 "$ROOT/var/log/nginx/error.log" >&2
exit 1
SH

cat > "$work/bin/apt-get" <<'SH'
#!/usr/bin/env bash
# Stand-in: the packages are here already; starts nginx with the package's
# configuration as the package does, and checks Debian's default site answers.
. "$(dirname "$0")/shim.env"
[ "${1:-}" = install ] || { echo "apt-get (stand-in): only 'install' here" >&2; exit 1; }
shift
for package in "$@"; do
    case "$package" in
        -*) ;;
        certbot) ;;
        nginx)
            "$REAL_NGINX" -c "$ROOT/etc/nginx/nginx.conf" -t -q || exit 1
            "$REAL_NGINX" -c "$ROOT/etc/nginx/nginx.conf" || exit 1
            for _ in $(seq 100); do
                page=$("$REAL_CURL" -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/" 2>/dev/null) && break
                sleep 0.1
            done
            case "$page" in
                *"Welcome to nginx!"*) echo "nginx started: Debian's default site" >> "$EVENTS" ;;
                *) echo "apt-get (stand-in): nginx's port 80 did not answer with Debian's welcome page: $page" >&2; exit 1 ;;
            esac ;;
        *) echo "apt-get (stand-in): no stand-in for $package" >&2; exit 1 ;;
    esac
done
SH

cat > "$work/bin/certbot" <<'SH'
#!/usr/bin/env bash
# Stand-in: Let's Encrypt's HTTP-01 check over loopback, then a self-signed
# certificate where certbot keeps its own. See scripts/test-deploy.sh.
. "$(dirname "$0")/shim.env"

# challenge WEBROOT NAME WHAT: the token in the webroot, fetched over plain http.
challenge() {
    local token keyauth dir out body
    token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    keyauth="$token.stand-in-account-thumbprint"
    dir="$1/.well-known/acme-challenge"
    mkdir -p "$dir" && printf '%s' "$keyauth" > "$dir/$token" || return 1
    body=$(mktemp)
    out=$("$REAL_CURL" -sS --max-time 10 -o "$body" -w '%{http_code} %{redirect_url}' \
        --resolve "$2:$HTTP_PORT:127.0.0.1" "http://$2:$HTTP_PORT/.well-known/acme-challenge/$token") || out="no answer"
    rm -f "$dir/$token"
    if [ "$out" != "200 " ] || [ "$(cat "$body")" != "$keyauth" ]; then
        echo "certbot (stand-in): the challenge for $2 failed: http://$2/.well-known/acme-challenge/$token answered '$out': $(head -c 200 "$body")" >&2
        rm -f "$body"
        return 1
    fi
    rm -f "$body"
    echo "challenge $3 $2" >> "$EVENTS"
    echo "certbot (stand-in): $2's challenge answered from $1"
}

# issue NAME: a new self-signed certificate in live/NAME/.
issue() {
    local live="$LE/live/$1"
    mkdir -p "$live" || return 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 90 -subj "/CN=$1" -addext "subjectAltName=DNS:$1" \
        -keyout "$live/privkey.pem.new" -out "$live/fullchain.pem.new" 2>/dev/null || return 1
    mv "$live/privkey.pem.new" "$live/privkey.pem" && mv "$live/fullchain.pem.new" "$live/fullchain.pem"
    echo "issued $1" >> "$EVENTS"
    echo "certbot (stand-in): certificate for $1 in $live"
}

hook() {
    [ -n "$1" ] || return 0
    echo "deploy-hook $1" >> "$EVENTS"
    sh -c "$1"
}

command=${1:-}
shift || true
case "$command" in
    certonly)
        webroot="" name="" deploy_hook="" authenticator=""
        while [ $# -gt 0 ]; do
            case "$1" in
                --webroot) authenticator=webroot ;;
                -w|--webroot-path) webroot=$2; shift ;;
                -d|--domain|--domains) name=$2; shift ;;
                --deploy-hook) deploy_hook=$2; shift ;;
                -m|--email) shift ;;
                --agree-tos|-n|--non-interactive|--no-eff-email) ;;
                *) echo "certbot (stand-in): no stand-in for '$1'" >&2; exit 1 ;;
            esac
            shift
        done
        { [ "$authenticator" = webroot ] && [ -n "$webroot" ] && [ -n "$name" ]; } \
            || { echo "certbot (stand-in): certonly wants --webroot -w DIR -d NAME" >&2; exit 1; }
        case " $DOMAINS " in *" $name "*) ;; *) echo "certbot (stand-in): $name does not resolve here" >&2; exit 1 ;; esac
        challenge "$webroot" "$name" certonly || exit 1
        issue "$name" || exit 1
        mkdir -p "$LE/renewal"
        printf 'webroot_path = %s\nrenew_hook = %s\n' "$webroot" "$deploy_hook" > "$LE/renewal/$name.conf"
        hook "$deploy_hook" ;;
    renew)
        dry_run="" force=""
        for option; do
            case "$option" in
                --dry-run) dry_run=1 ;;
                --force-renewal) force=1 ;;
                -q|--quiet) ;;
                *) echo "certbot (stand-in): no stand-in for '$option'" >&2; exit 1 ;;
            esac
        done
        for conf in "$LE"/renewal/*.conf; do
            [ -f "$conf" ] || { echo "certbot (stand-in): no certificates"; exit 0; }
            name=$(basename "$conf" .conf)
            webroot=$(sed -n 's/^webroot_path = //p' "$conf")
            deploy_hook=$(sed -n 's/^renew_hook = //p' "$conf")
            if [ -n "$dry_run" ]; then
                challenge "$webroot" "$name" renew-dry-run || exit 1
                echo "certbot (stand-in): dry run: the renewal of $name would succeed"
            elif [ -n "$force" ]; then
                challenge "$webroot" "$name" renew || exit 1
                issue "$name" || exit 1
                hook "$deploy_hook" || exit 1
            else
                echo "certbot (stand-in): $name is not due for renewal"
            fi
        done ;;
    *) echo "certbot (stand-in): no stand-in for '$command'" >&2; exit 1 ;;
esac
SH
chmod 755 "$work"/bin/*

# --- wxauth, as step 3 leaves it: real mode on 127.0.0.1:8080 ----------------
start_real_wxauth
wait_for "http://127.0.0.1:$app_port/healthz"
wait_for "http://127.0.0.1:$sim_port/sim/state"

# --- The README's steps, as written ------------------------------------------
python3 - README.md > "$work/steps.txt" <<'EOF' || fail "README.md has no deploy steps between '<!-- test-deploy: begin' and '<!-- test-deploy: end -->'"
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
begin = [i for i, l in enumerate(lines) if l.strip().startswith("<!-- test-deploy: begin")]
end = [i for i, l in enumerate(lines) if l.strip() == "<!-- test-deploy: end -->"]
if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
    sys.exit(1)
fenced, out = False, []
for line in lines[begin[0] + 1 : end[0]]:
    text = line.strip()
    if text.startswith("```"):
        fenced = not fenced
    elif fenced and text and not text.startswith("#"):
        if text.endswith("\\"):
            sys.exit("a command continued on the next line: one command a line, please")
        out.append(text)
if fenced or not out:
    sys.exit(1)
print("\n".join(out))
EOF
grep -q "$domain" "$work/steps.txt" || fail "the README's steps no longer use $domain"
# One command a line; the first that fails stops the steps, with its line.
{
    echo "set -uo pipefail"
    while IFS= read -r line; do
        printf '%s\n' "$line"
        # shellcheck disable=SC2016 # $? and $rc belong to steps.sh
        printf 'rc=$?; if [ "$rc" != 0 ]; then echo "the README'"'"'s step failed (exit $rc): "%q >&2; exit 1; fi\n' "$line"
    done < <(relocate < "$work/steps.txt")
} > "$work/steps.sh"
(cd "$work/checkout" && PATH="$work/bin:$PATH" timeout 300 bash "$work/steps.sh") > "$work/steps.out" 2>&1 \
    || fail "the README's deploy steps: $(grep -E "emerg|\(stand-in\)|step failed" "$work/steps.out" | grep -v "answered from\|would succeed\|certificate for" || tail -n 3 "$work/steps.out")"

grep -qx "nginx started: Debian's default site" "$events" || fail "apt-get install nginx did not start nginx with Debian's default site"
ok "apt-get install nginx (stand-in): Debian's stock nginx.conf and default site answer on port 80"
{ grep -qx "challenge certonly $domain" "$events" && grep -qx "issued $domain" "$events"; } \
    || fail "the first certificate was not obtained: $(cat "$events")"
ok "the first certificate: certbot's webroot challenge answered by Debian's default site, before wxauth.conf"
grep -qx "reload" "$events" || fail "nginx never took the new configuration"
{ [ ! -e "$root/etc/nginx/sites-enabled/default" ] && [ -f "$root/etc/nginx/conf.d/wxauth.conf" ]; } \
    || fail "the steps left sites-enabled/default, or no conf.d/wxauth.conf"
grep -q "server_name $domain;" "$root/etc/nginx/conf.d/wxauth.conf" || fail "wxauth.conf does not name $domain"
ok "nginx -t passes with wxauth.conf in Debian's conf.d, and the reload takes it"
grep -qx "challenge renew-dry-run $domain" "$events" || fail "certbot renew --dry-run did not run its challenge"
ok "certbot renew --dry-run: the challenge answered through wxauth.conf's port 80"
grep -qF '{"status":"ok"}' "$work/steps.out" || fail "step 5's healthz did not print {\"status\":\"ok\"}"
grep -qiF "location: http://127.0.0.1:$sim_port/connect/oauth2/authorize?appid=$appid&redirect_uri=https%3A%2F%2F$domain%3A$https_port%2Fcallback" "$work/steps.out" \
    || fail "step 5's curl -sI … /login | grep -i location did not print the authorize link"
ok "step 5's checks: healthz and the login's Location, over TLS through nginx"

# c ARGS: a browser (WeChat's User-Agent) with its own cookie jar.
c() { "$real_curl" -sS --max-time 10 --cacert "$root/etc/letsencrypt/live/$domain/fullchain.pem" \
        --resolve "$domain:$https_port:127.0.0.1" --resolve "$domain:$http_port:127.0.0.1" \
        -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" -b "$work/jar" -c "$work/jar" "$@"; }

# Debian's default site is gone; wxauth.conf's catch-all has its place.
rc=0; page=$("$real_curl" -sS --max-time 5 -H "Host: other.test" "http://127.0.0.1:$http_port/" 2>&1) || rc=$?
[ "$rc" = 52 ] || fail "an unknown name on port 80: curl exit $rc, expected 52 (no answer): $page"
if "$real_curl" -sS --max-time 5 -k --resolve "other.test:$https_port:127.0.0.1" "https://other.test:$https_port/" >/dev/null 2>&1; then
    fail "an unknown name got a TLS handshake on 443"
fi
ok "Debian's welcome page is gone: unknown names get no answer on 80 and no TLS on 443"

# --- A renewal-style ACME request ----------------------------------------------
# What Let's Encrypt asks when certbot renews in 60 days: a file certbot put
# in the webroot, fetched over plain http on port 80.
acme=$root/var/www/html/.well-known/acme-challenge
mkdir -p "$acme"
token=renewal-test-$RANDOM$RANDOM
printf '%s.thumbprint' "$token" > "$acme/$token"
out=$(c -o "$work/acme.body" -w '%{http_code} %{redirect_url}' "http://$domain:$http_port/.well-known/acme-challenge/$token")
case "$out" in
    "200 ") [ "$(cat "$work/acme.body")" = "$token.thumbprint" ] || fail "the challenge file came back as '$(head -c 200 "$work/acme.body")'" ;;
    30*) fail "the challenge was redirected ($out): Let's Encrypt would follow it to https and wxauth" ;;
    *) fail "the challenge got '$out': $(head -c 200 "$work/acme.body")" ;;
esac
grep -q "acme-challenge" "$work/wxauth.log" && fail "wxauth was asked for the challenge"
rm "$acme/$token"
[ "$(c -o /dev/null -w '%{http_code}' "http://$domain:$http_port/.well-known/acme-challenge/$token")" = 404 ] \
    || fail "a challenge no longer there is not nginx's 404"
grep -q "acme-challenge" "$work/wxauth.log" && fail "wxauth was asked for a missing challenge"
loc=$(c -o /dev/null -D - "http://$domain:$http_port/callback?x=1" | header location)
[ "$loc" = "https://$domain/callback?x=1" ] || fail "port 80 no longer sends other paths to https: '$loc'"
ok "a renewal-style ACME request: 200 with the file over plain http on port 80 (no redirect, not wxauth); other paths still go to https"

# --- A login through nginx --------------------------------------------------------
to=$(c -o /dev/null -D - "$public/login" | header location)
case "$to" in "http://127.0.0.1:$sim_port/connect/oauth2/authorize?appid=$appid&"*) ;; *) fail "/login went to '$to'" ;; esac
state=$(query_param "$to" state)
form=$(consent_form "$to" 0)
callback=$(c -o /dev/null -D - --data "$form" "http://127.0.0.1:$sim_port/connect/oauth2/authorize/confirm" | header location)
case "$callback" in "$public/callback?code="*) ;; *) fail "WeChat sent the phone back to '$callback'" ;; esac
code=$(query_param "$callback" code)
landed=$(c -o /dev/null -D - "$callback" | header location)
[ "$landed" = /profile ] || fail "the callback landed on '$landed'"
c "$public/profile" | grep -q "熊猫🐼小明" || fail "the profile through nginx does not show the user"
ok "a login through nginx: WeChat's callback lands on /profile, which shows the user"

# A callback that fails shows a page at /callback?code=…; its stylesheet is
# requested with that URL as Referer (Referrer-Policy same-origin).
bad="$public/callback?code=deploy-test-code&state=deploy-test-state"
[ "$(c -o /dev/null -w '%{http_code}' "$bad")" = 400 ] || fail "a callback with a foreign state is not a 400 page"
c -o /dev/null -e "$bad" "$public/static/style.css"

log=$root/var/log/nginx/access.log
for secret_part in "code=" "state=" "$code" "$state" deploy-test-code deploy-test-state; do
    if grep -qF -- "$secret_part" "$log"; then
        fail "the access log holds '$secret_part': $(grep -F -- "$secret_part" "$log" | head -3)"
    fi
done
grep -q '"GET /callback HTTP/1.1" 302 ' "$log" || fail "the access log has no line for the callback: $(tail -n 5 "$log")"
grep -q '"GET /static/style.css HTTP/1.1" 200 ' "$log" || fail "the access log has no line for the stylesheet"
ok "the access log has the callbacks without their query: no code= or state=, not even in a Referer"

# --- Later on: a renewal, and the gateway beside ---------------------------------
# certbot.timer renews a certificate that is due; --force-renewal makes it due.
hooks=$(grep -cx "deploy-hook systemctl reload nginx" "$events" || true)
PATH="$work/bin:$PATH" certbot renew --force-renewal > "$work/renew.out" 2>&1 || fail "certbot renew: $(cat "$work/renew.out")"
[ "$(grep -cx "deploy-hook systemctl reload nginx" "$events")" = $((hooks + 1)) ] || fail "the renewal ran no deploy hook"
[ "$(grep -cx "issued $domain" "$events")" = 2 ] || fail "the renewal issued no new certificate"
[ "$(c -o /dev/null -w '%{http_code}' "$public/healthz")" = 200 ] \
    || fail "nginx does not serve the renewed certificate (the deploy hook did not reload it)"
ok "a renewal's deploy hook reloads nginx: the renewed certificate is served"

# A second site on the machine: nginx-gateway.conf, its first certificate
# through wxauth.conf's catch-all, installed as its header says.
(cd "$work/checkout" && PATH="$work/bin:$PATH" timeout 60 bash -euo pipefail -c "
    certbot certonly --webroot -w $root/var/www/html -d $gateway_domain --deploy-hook 'systemctl reload nginx'
    cp scripts/nginx-gateway.conf $root/etc/nginx/conf.d/app.conf
    nginx -t
    systemctl reload nginx
    certbot renew --dry-run") > "$work/gateway.out" 2>&1 \
    || fail "nginx-gateway.conf beside nginx.conf: $(grep -E "emerg|stand-in\): (the|no)" "$work/gateway.out" || tail -n 3 "$work/gateway.out")"
{ grep -qx "challenge certonly $gateway_domain" "$events" && grep -qx "challenge renew-dry-run $gateway_domain" "$events"; } \
    || fail "the gateway's name: no challenge answered"
[ "$(c -o /dev/null -w '%{http_code}' "$public/healthz")" = 200 ] || fail "wxauth's site after the gateway was added"
ok "nginx-gateway.conf beside nginx.conf: a new name's first certificate through the catch-all, nginx -t, its renewals"

echo "deploy: $passed passed, 0 failed"

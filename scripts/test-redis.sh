#!/usr/bin/env bash
# Two wxauth instances sharing one Redis behind Debian's nginx (an upstream
# with both, no sticky sessions), against `wxauth sim`: a login served by
# both, a logout on one seen by the other, one instance killed with -9 in
# the middle of traffic, Redis killed and started again. Every wait has a
# deadline.
#
# Usage: scripts/test-redis.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: nginx, redis-server, curl, python3. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-redis
BIN=${1:-target/debug/wxauth}
command -v redis-server >/dev/null || { echo "$NAME: redis-server is missing" >&2; exit 1; }
. scripts/nginx-test-lib.sh

read -r web_port a_port b_port sim_port redis_port < <(python3 scripts/free_ports.py 5)
appid=wx00000000000redis
secret=test-secret-for-redis-1234
public="http://127.0.0.1:$web_port"
redis_url="redis://127.0.0.1:$redis_port/0"

# Redis with an append-only file written at every command: killed with -9
# and started again, it keeps every session.
start_redis() {
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes \
        --appendfsync always --dir "$work" > "$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do
        python3 - "$redis_port" <<'PY' && return 0
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
        sleep 0.1
    done
    fail "redis-server did not start"
}

# start_instance NAME PORT: wxauth in real mode with the shared Redis.
start_instance() {
    env -i PATH="$PATH" WXAUTH_APPID="$appid" WXAUTH_SECRET="$secret" WXAUTH_PUBLIC_URL="$public" \
        WXAUTH_LISTEN="127.0.0.1:$2" WXAUTH_OPEN_BASE="http://127.0.0.1:$sim_port" \
        WXAUTH_API_BASE="http://127.0.0.1:$sim_port" WXAUTH_REDIS_URL="$redis_url" \
        "$BIN" >> "$work/$1.log" 2>&1 &
    eval "${1}_pid=$!"
    pids+=($!)
    wait_for "http://127.0.0.1:$2/healthz"
}

start_redis
env -i PATH="$PATH" WXAUTH_APPID="$appid" WXAUTH_SECRET="$secret" WXAUTH_PUBLIC_URL="$public" \
    WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" "$BIN" sim > "$work/sim.log" 2>&1 &
pids+=($!)
start_instance a "$a_port"
start_instance b "$b_port"
cat "$work/a.log" "$work/b.log" > "$work/wxauth.log"

cat > "$work/servers.conf" <<CONF
upstream wxauth_pair {
    server 127.0.0.1:$a_port max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$b_port max_fails=1 fail_timeout=2s;
}
server {
    listen 127.0.0.1:$web_port;
    location / {
        proxy_pass http://wxauth_pair;
        proxy_set_header Host \$http_host;
        proxy_set_header X-Real-IP \$remote_addr;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
    }
}
CONF
start_nginx "$work/servers.conf"
wait_for "$public/healthz"

c() { curl -sS --max-time 10 -A "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50" -b "$work/jar" -c "$work/jar" "$@"; }
status() { c -o /dev/null -w '%{http_code}' "$@"; }
served() { grep -c "app GET $2 " "$work/$1.log" || true; }

# log_in: the whole login through nginx; its requests go to either instance.
log_in() {
    rm -f "$work/jar"
    local authorize callback
    authorize=$(c -o /dev/null -D - "$public/login" | header location)
    callback=$(c -o /dev/null -D - -d "$(consent_form "$authorize" 0)" \
        "http://127.0.0.1:$sim_port/connect/oauth2/authorize/confirm" | header location)
    [ "$(status "$callback")" = 302 ] || fail "the callback through nginx"
}

log_in
ok "a login through nginx, its requests spread over both instances"
for _ in $(seq 10); do
    [ "$(status "$public/api/me")" = 200 ] || fail "/api/me through nginx after the login"
done
[ "$(served a /api/me)" -ge 3 ] && [ "$(served b /api/me)" -ge 3 ] ||
    fail "nginx did not spread /api/me over both (a: $(served a /api/me), b: $(served b /api/me))"
ok "both instances serve the session (a: $(served a /api/me), b: $(served b /api/me) of 10)"

for port in "$a_port" "$b_port"; do
    [ "$(status "http://127.0.0.1:$port/auth/check")" = 204 ] || fail "/auth/check on :$port"
done
cp "$work/jar" "$work/jar.copy"
[ "$(status -X POST "http://127.0.0.1:$b_port/logout")" = 303 ] || fail "logout on b"
for port in "$a_port" "$b_port"; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' -b "$work/jar.copy" "http://127.0.0.1:$port/api/me")
    [ "$code" = 401 ] || fail "the session lives on at :$port after a logout on b ($code)"
done
ok "a logout on one instance ends the session on both"

# kill -9 of one instance while a client keeps asking through nginx.
log_in
: > "$work/codes"
(
    for _ in $(seq 60); do
        curl -sS -o /dev/null -w '%{http_code}\n' --max-time 5 -b "$work/jar" "$public/auth/check" >> "$work/codes" || echo 000 >> "$work/codes"
        sleep 0.05
    done
) &
traffic=$!
sleep 1
{ kill -9 "$a_pid"; wait "$a_pid"; } 2>/dev/null || true
wait "$traffic"
bad=$(grep -vc '^204$' "$work/codes" || true)
[ "$bad" = 0 ] || fail "answers other than 204 around the kill: $(sort "$work/codes" | uniq -c | tr '\n' ' ')"
ok "kill -9 of one instance mid-traffic: $(wc -l < "$work/codes") checks, all 204 (nginx moved on to the other)"
start_instance a "$a_port"
[ "$(status "http://127.0.0.1:$a_port/api/me")" = 200 ] || fail "the restarted instance does not know the session"
ok "the restarted instance serves the same session: nothing was lost"

# Redis killed: a clear 503 within about a second, no logout; back by itself.
{ kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null || true
start=$(date +%s%N)
health=$(curl -sS --max-time 5 -w ' %{http_code}' "$public/healthz")
took=$(( ($(date +%s%N) - start) / 1000000 ))
case "$health" in *'"status":"unavailable"'*' 503') ;; *) fail "healthz with Redis down: $health" ;; esac
[ "$took" -lt 2500 ] || fail "healthz with Redis down took $took ms"
page=$(status "$public/profile")
[ "$page" = 503 ] || fail "/profile with Redis down: $page"
grep -q "wxauth_session" "$work/jar" || fail "the session cookie was dropped while Redis was down"
ok "Redis down: /healthz 503 unavailable in $took ms, /profile 503, the cookie kept"
start_redis
for _ in $(seq 50); do
    [ "$(status "$public/api/me")" = 200 ] && break
    sleep 0.1
done
[ "$(status "$public/api/me")" = 200 ] || fail "the service did not come back with Redis"
for port in "$a_port" "$b_port"; do
    [ "$(status "http://127.0.0.1:$port/auth/check")" = 204 ] || fail ":$port after Redis came back"
done
ok "Redis back: both instances serve the same session again, by themselves"

grep -h "simAT_\|simRT_\|$secret" "$work/a.log" "$work/b.log" && fail "a token or the secret in a log"
ok "no token or secret in the instances' logs"

echo "redis: $passed passed, 0 failed"

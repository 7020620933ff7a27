# Shared by scripts/test-{nginx,gateway,prefix,deploy}.sh (sourced, not
# run): the checks before starting, a work directory cleaned up on exit, a
# throwaway TLS certificate, nginx run on loopback with a server block file
# from scripts/, wxauth in real mode against `wxauth sim`, and the curl
# helpers for a login. Expects NAME (for messages) and BIN set by the caller.

for tool in nginx openssl curl python3; do
    command -v "$tool" >/dev/null || { echo "$NAME: $tool is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "$NAME: no binary at $BIN (cargo build first)" >&2; exit 1; }

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "$NAME: FAIL: $*" >&2
    echo "--- wxauth log" >&2; cat "$work/wxauth.log" >&2 || true
    echo "--- nginx error log" >&2; cat "$work/error.log" >&2 || true
    exit 1
}
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }

# make_cert HOST: a self-signed certificate for HOST in $work/cert.pem, key.pem.
make_cert() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$1" \
        -addext "subjectAltName=DNS:$1" \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
}

# start_nginx SERVERS: nginx on its own with the server blocks in the file
# SERVERS (already moved onto the test's ports), after `nginx -t`.
start_nginx() {
    cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 64; }
http {
    access_log $work/access.log;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    include $1;
}
CONF
    nginx -t -q -c "$work/nginx.conf" -p "$work" || fail "nginx -t"
    nginx -c "$work/nginx.conf" -p "$work"
}

# wait_for URL: up to 10 s for URL to answer 2xx.
wait_for() {
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$1 did not answer"
}

# header NAME: the first NAME header's value in the response headers on stdin.
header() { grep -i "^$1:" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# query_param URL NAME: the value of NAME in URL's query.
query_param() {
    python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))[sys.argv[2]])' "$1" "$2"
}

# consent_form AUTHORIZE USER: the form the simulator's consent page posts
# when USER (an index) presses 允许 for the authorize URL AUTHORIZE.
consent_form() {
    python3 -c '
import sys, urllib.parse as u
q = dict(u.parse_qsl(u.urlsplit(sys.argv[1].split("#")[0]).query))
print(u.urlencode({k: q[k] for k in ("appid", "redirect_uri", "response_type", "scope", "state")} | {"user": sys.argv[2], "action": "allow"}))
' "$1" "$2"
}

# start_real_wxauth: `wxauth sim` on 127.0.0.1:$sim_port and wxauth in real
# mode on 127.0.0.1:$app_port against it, both with $appid, $secret and
# $public; logs in $work/sim.log and $work/wxauth.log.
start_real_wxauth() {
    env -i PATH="$PATH" WXAUTH_APPID="$appid" WXAUTH_SECRET="$secret" WXAUTH_PUBLIC_URL="$public" \
        WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" "$BIN" sim > "$work/sim.log" 2>&1 &
    pids+=($!)
    env -i PATH="$PATH" WXAUTH_APPID="$appid" WXAUTH_SECRET="$secret" WXAUTH_PUBLIC_URL="$public" \
        WXAUTH_LISTEN="127.0.0.1:$app_port" WXAUTH_OPEN_BASE="http://127.0.0.1:$sim_port" \
        WXAUTH_API_BASE="http://127.0.0.1:$sim_port" "$BIN" > "$work/wxauth.log" 2>&1 &
    pids+=($!)
}

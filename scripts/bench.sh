#!/usr/bin/env bash
# Load benchmark for wxauth, on loopback only. Builds the release binary,
# starts the app (real mode, info logging to /dev/null) with the WeChat
# simulator as a separate process, and measures:
#   - requests/s and p99 latency with wrk, at 1 and 32 connections, for
#     GET /healthz, GET / (anonymous), GET /profile (with a session cookie);
#   - the same page from examples/reference.rs (tiny_http + minijinja, no
#     session lookup: the ceiling of the stack), /profile as a fraction of it;
#   - complete logins per second (/login → consent → /callback → /profile)
#     and the app's own CPU time per login (the simulator runs elsewhere);
#   - the login storm: every WeChat answer delayed 100 ms (the simulator's
#     latency switch), 8 and then 64 browsers log in over and over while a
#     logged-in probe asks /auth/check every 20 ms: logins/s and the probe's
#     p50/p99/max; with BENCH_BEFORE, the same storm against that binary too;
#   - RSS idle and after BENCH_SESSIONS sessions, bytes per session;
#   - start-up time (spawn → first /healthz answer) and binary size.
# Prints a table; --json FILE also writes the figures as JSON.
#
# Usage: scripts/bench.sh [--json FILE] [--quick]
#   BENCH_DURATION  seconds per wrk run and per login run (default 10; --quick: 3)
#   BENCH_SESSIONS  sessions to seed for the memory figure (default 100000; --quick: 10000)
#   BENCH_BEFORE    another wxauth binary (an older build) to run the login storm against
# Needs wrk (installed from Debian's packages when missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

json=""
duration=${BENCH_DURATION:-10}
sessions=${BENCH_SESSIONS:-100000}
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=$2; shift 2 ;;
        --quick) duration=${BENCH_DURATION:-3}; sessions=${BENCH_SESSIONS:-10000}; shift ;;
        *) echo "usage: scripts/bench.sh [--json FILE] [--quick]" >&2; exit 2 ;;
    esac
done

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1
    fi
fi

echo "building release binaries..." >&2
cargo build --release --quiet --bin wxauth --example reference --example bench
bin=target/release/wxauth
bench=target/release/examples/bench

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

read -r app_port sim_port ref_port boot_port before_port redis_port shared_port < <(python3 scripts/free_ports.py 7)
app="http://127.0.0.1:$app_port"
sim="http://127.0.0.1:$sim_port"
real_env=(WXAUTH_APPID=wx00000000000bench WXAUTH_SECRET=bench-secret
          WXAUTH_PUBLIC_URL="$app" WXAUTH_OPEN_BASE="$sim" WXAUTH_API_BASE="$sim")

env -i PATH="$PATH" "${real_env[@]}" WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" WXAUTH_LOG=warn \
    "$bin" sim >/dev/null 2>"$work/sim.err" &
pids+=($!)
env -i PATH="$PATH" "${real_env[@]}" WXAUTH_LISTEN="127.0.0.1:$app_port" WXAUTH_LOG=info \
    "$bin" >/dev/null 2>"$work/app.err" &
app_pid=$!
pids+=($app_pid)
"target/release/examples/reference" "127.0.0.1:$ref_port" >/dev/null 2>&1 &
pids+=($!)

wait_for() {
    for _ in $(seq 200); do
        curl -sf -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: $1 did not answer" >&2
    cat "$work/app.err" "$work/sim.err" >&2 2>/dev/null || true
    exit 1
}
wait_for "$app/healthz"
wait_for "$sim/sim/state"
wait_for "http://127.0.0.1:$ref_port/"
sleep 1

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
declare -A result

result[binary_bytes]=$(stat -c %s "$bin")
result[idle_rss_kb]=$(rss_kb "$app_pid")

# Start-up: a fresh process each time, until /healthz answers.
startup=$("$bench" startup "127.0.0.1:$boot_port" 20 -- env -i "${real_env[@]}" \
    WXAUTH_LISTEN="127.0.0.1:$boot_port" WXAUTH_LOG=off "$PWD/$bin")
result[startup_ms]=$(echo "$startup" | sed -n 's/.*startup_ms_median=\([0-9.]*\).*/\1/p')

cookie=$("$bench" cookie "$app" "$sim")

# wrk NAME URL CONNECTIONS [COOKIE]: records NAME_rps and NAME_p99_ms.
wrk_run() {
    local name=$1 url=$2 conns=$3 cookie_header=${4:-}
    local threads=$(( conns > 1 ? 2 : 1 ))
    local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency)
    [ -n "$cookie_header" ] && args+=(-H "Cookie: $cookie_header")
    local out
    out=$(wrk "${args[@]}" "$url")
    result[${name}_rps]=$(echo "$out" | awk '/^Requests\/sec/ { printf "%.0f", $2 }')
    result[${name}_p99_ms]=$(echo "$out" | awk '$1 == "99%" {
        v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v);
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000;
        printf "%.2f", v }')
    echo "  $name: ${result[${name}_rps]} req/s, p99 ${result[${name}_p99_ms]} ms" >&2
}

echo "wrk, ${duration} s per run..." >&2
for conns in 1 32; do
    wrk_run "healthz_c$conns" "$app/healthz" "$conns"
    wrk_run "home_c$conns" "$app/" "$conns"
done
wrk_run profile_c1 "$app/profile" 1 "$cookie"
wrk_run reference_c1 "http://127.0.0.1:$ref_port/" 1 "$cookie"
# At 32 connections the two are run three times, alternately, and the medians
# compared: the machine is shared and noisy, the ratio within a run is not.
for round in 1 2 3; do
    wrk_run "profile_c32_r$round" "$app/profile" 32 "$cookie"
    wrk_run "reference_c32_r$round" "http://127.0.0.1:$ref_port/" 32 "$cookie"
done
# /jssdk/config with the jsapi_ticket kept: every request signs on the loop;
# WeChat is asked once (base token, then ticket) for all of them.
page=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("http://127.0.0.1/shop?id=1", safe=""))')
wrk_run jssdk_c32 "$app/jssdk/config?url=$page" 32
calls=$(curl -s "$sim/sim/state")
result[jssdk_getticket_calls]=$(echo "$calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"]["getticket"])')
result[jssdk_requests]=$(( result[jssdk_c32_rps] * duration ))
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
for what in profile reference; do
    result[${what}_c32_rps]=$(median3 "${result[${what}_c32_r1_rps]}" "${result[${what}_c32_r2_rps]}" "${result[${what}_c32_r3_rps]}")
    result[${what}_c32_p99_ms]=$(median3 "${result[${what}_c32_r1_p99_ms]}" "${result[${what}_c32_r2_p99_ms]}" "${result[${what}_c32_r3_p99_ms]}")
done
result[profile_vs_reference]=$(awk -v a="${result[profile_c32_rps]}" -v b="${result[reference_c32_rps]}" 'BEGIN { printf "%.2f", a / b }')

# The same app with its state in Redis (WXAUTH_REDIS_URL) beside the memory
# one: /auth/check and /profile at 32 connections, alternately, three times.
if command -v redis-server >/dev/null; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$work" >/dev/null 2>&1 &
    pids+=($!)
    shared="http://127.0.0.1:$shared_port"
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
        sleep 0.05
    done
    env -i PATH="$PATH" "${real_env[@]}" WXAUTH_PUBLIC_URL="$shared" \
        WXAUTH_LISTEN="127.0.0.1:$shared_port" WXAUTH_LOG=info \
        WXAUTH_REDIS_URL="redis://127.0.0.1:$redis_port/0" "$bin" >/dev/null 2>>"$work/shared.err" &
    shared_pid=$!
    pids+=($shared_pid)
    wait_for "$shared/healthz"
    shared_cookie=$("$bench" cookie "$shared" "$sim")
    echo "memory and Redis, ${duration} s per run..." >&2
    for round in 1 2 3; do
        wrk_run "check_memory_r$round" "$app/auth/check" 32 "$cookie"
        wrk_run "check_redis_r$round" "$shared/auth/check" 32 "$shared_cookie"
        wrk_run "profile_memory_r$round" "$app/profile" 32 "$cookie"
        wrk_run "profile_redis_r$round" "$shared/profile" 32 "$shared_cookie"
    done
    for what in check_memory check_redis profile_memory profile_redis; do
        result[${what}_rps]=$(median3 "${result[${what}_r1_rps]}" "${result[${what}_r2_rps]}" "${result[${what}_r3_rps]}")
        result[${what}_p99_ms]=$(median3 "${result[${what}_r1_p99_ms]}" "${result[${what}_r2_p99_ms]}" "${result[${what}_r3_p99_ms]}")
    done
    for what in check profile; do
        result[${what}_redis_vs_memory]=$(awk -v a="${result[${what}_redis_rps]}" -v b="${result[${what}_memory_rps]}" 'BEGIN { printf "%.2f", a / b }')
    done
    kill "$shared_pid"
else
    echo "bench: redis-server is missing: no Redis figures" >&2
fi

echo "logins, ${duration} s per run..." >&2
before=$(cpu_ticks "$app_pid")
out=$("$bench" logins "$app" "$sim" 1 "$duration")
after=$(cpu_ticks "$app_pid")
result[logins_1_per_s]=$(echo "$out" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')
count=$(echo "$out" | sed -n 's/.*logins=\([0-9]*\).*/\1/p')
result[cpu_us_per_login]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$count" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
out=$("$bench" logins "$app" "$sim" 4 "$duration")
result[logins_4_per_s]=$(echo "$out" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')

# The login storm. The simulator holds every API answer back 100 ms, as
# WeChat's real round trip from a VPS would; the probe's session was made
# before, so /auth/check needs no call.
storm() {
    local name=$1 url=$2 browsers=$3 probe_cookie=$4 out
    out=$("$bench" storm "$url" "$sim" "$browsers" "$duration" "$probe_cookie")
    for field in rate failed probe_failed p50_ms p99_ms max_ms; do
        result[${name}_${field}]=$(echo "$out" | sed -n "s/.*[ ]${field}=\([0-9.]*\).*/\1/p")
    done
    echo "  $name: ${result[${name}_rate]} logins/s (${result[${name}_failed]} failed); probe p50 ${result[${name}_p50_ms]} ms, p99 ${result[${name}_p99_ms]} ms, max ${result[${name}_max_ms]} ms" >&2
}
echo "login storm (WeChat answers in 100 ms), ${duration} s per run..." >&2
curl -sf -o /dev/null -d latency=100 "$sim/sim/control"
storm storm8 "$app" 8 "$cookie"
storm storm64 "$app" 64 "$cookie"
if [ -n "${BENCH_BEFORE:-}" ]; then
    before="http://127.0.0.1:$before_port"
    env -i PATH="$PATH" "${real_env[@]}" WXAUTH_PUBLIC_URL="$before" \
        WXAUTH_LISTEN="127.0.0.1:$before_port" WXAUTH_LOG=warn \
        "$BENCH_BEFORE" >/dev/null 2>>"$work/before.err" &
    before_pid=$!
    pids+=($before_pid)
    wait_for "$before/healthz"
    curl -sf -o /dev/null -d latency=0 "$sim/sim/control"
    before_cookie=$("$bench" cookie "$before" "$sim")
    curl -sf -o /dev/null -d latency=100 "$sim/sim/control"
    storm before_storm8 "$before" 8 "$before_cookie"
    storm before_storm64 "$before" 64 "$before_cookie"
    kill "$before_pid"
fi
curl -sf -o /dev/null -d latency=0 "$sim/sim/control"

echo "seeding $sessions sessions..." >&2
# Measured from a fresh app, so the figure is sessions and nothing else.
kill "$app_pid"; wait "$app_pid" 2>/dev/null || true
env -i PATH="$PATH" "${real_env[@]}" WXAUTH_LISTEN="127.0.0.1:$app_port" WXAUTH_LOG=info \
    WXAUTH_MAX_SESSIONS="$sessions" "$bin" >/dev/null 2>>"$work/app.err" &
app_pid=$!
pids+=($app_pid)
wait_for "$app/healthz"
sleep 0.5
rss_before=$(rss_kb "$app_pid")
"$bench" seed "$app" "$sim" 4 "$sessions" >/dev/null
result[sessions]=$sessions
result[sessions_rss_kb]=$(rss_kb "$app_pid")
result[bytes_per_session]=$(( (result[sessions_rss_kb] - rss_before) * 1024 / sessions ))

# The bench runs real mode on a loopback port on purpose: that warning is expected.
sed -i '/warning: WXAUTH_PUBLIC_URL: port/d' "$work/app.err"
if [ -s "$work/app.err" ]; then
    echo "bench: the app complained:" >&2; cat "$work/app.err" >&2
fi

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF

wxauth $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) on $(nproc) cores ($cpu), $(date -u +%Y-%m-%d)
wrk and the servers share the cores; ${duration} s per run.

| measure | 1 connection | 32 connections |
|---|---|---|
| GET /healthz, req/s (p99) | ${result[healthz_c1_rps]} (${result[healthz_c1_p99_ms]} ms) | ${result[healthz_c32_rps]} (${result[healthz_c32_p99_ms]} ms) |
| GET / anonymous, req/s (p99) | ${result[home_c1_rps]} (${result[home_c1_p99_ms]} ms) | ${result[home_c32_rps]} (${result[home_c32_p99_ms]} ms) |
| GET /profile with a session, req/s (p99) | ${result[profile_c1_rps]} (${result[profile_c1_p99_ms]} ms) | ${result[profile_c32_rps]} (${result[profile_c32_p99_ms]} ms) |
| reference page (tiny_http + minijinja), req/s (p99) | ${result[reference_c1_rps]} (${result[reference_c1_p99_ms]} ms) | ${result[reference_c32_rps]} (${result[reference_c32_p99_ms]} ms) |
| /profile as a fraction of the reference | | ${result[profile_vs_reference]} |
| complete logins/s (1 and 4 clients) | ${result[logins_1_per_s]} | ${result[logins_4_per_s]} (4) |
| GET /jssdk/config, ticket kept, req/s (p99) | | ${result[jssdk_c32_rps]} (${result[jssdk_c32_p99_ms]} ms) |

/jssdk/config: about ${result[jssdk_requests]} requests cost WeChat ${result[jssdk_getticket_calls]} getticket call(s).

EOF
if [ -n "${result[check_redis_rps]:-}" ]; then
    cat <<EOF

State in memory and in Redis (WXAUTH_REDIS_URL, redis-server on loopback), 32 connections, medians of 3:

| request | memory, req/s (p99) | Redis, req/s (p99) | Redis / memory |
|---|---|---|---|
| GET /auth/check | ${result[check_memory_rps]} (${result[check_memory_p99_ms]} ms) | ${result[check_redis_rps]} (${result[check_redis_p99_ms]} ms) | ${result[check_redis_vs_memory]} |
| GET /profile | ${result[profile_memory_rps]} (${result[profile_memory_p99_ms]} ms) | ${result[profile_redis_rps]} (${result[profile_redis_p99_ms]} ms) | ${result[profile_redis_vs_memory]} |
EOF
fi
cat <<EOF

Login storm: every WeChat answer takes 100 ms; a logged-in probe asks /auth/check every 20 ms.

| browsers logging in | logins/s (failed) | probe p50 | probe p99 | probe max (failed) |
|---|---|---|---|---|
| 8 | ${result[storm8_rate]} (${result[storm8_failed]}) | ${result[storm8_p50_ms]} ms | ${result[storm8_p99_ms]} ms | ${result[storm8_max_ms]} ms (${result[storm8_probe_failed]}) |
| 64 | ${result[storm64_rate]} (${result[storm64_failed]}) | ${result[storm64_p50_ms]} ms | ${result[storm64_p99_ms]} ms | ${result[storm64_max_ms]} ms (${result[storm64_probe_failed]}) |
EOF
if [ -n "${BENCH_BEFORE:-}" ]; then
    cat <<EOF
| 8, before ($BENCH_BEFORE) | ${result[before_storm8_rate]} (${result[before_storm8_failed]}) | ${result[before_storm8_p50_ms]} ms | ${result[before_storm8_p99_ms]} ms | ${result[before_storm8_max_ms]} ms (${result[before_storm8_probe_failed]}) |
| 64, before ($BENCH_BEFORE) | ${result[before_storm64_rate]} (${result[before_storm64_failed]}) | ${result[before_storm64_p50_ms]} ms | ${result[before_storm64_p99_ms]} ms | ${result[before_storm64_max_ms]} ms (${result[before_storm64_probe_failed]}) |
EOF
fi
cat <<EOF

| measure | value |
|---|---|
| app CPU per complete login (simulator excluded) | ${result[cpu_us_per_login]} µs |
| RSS idle | ${result[idle_rss_kb]} KB |
| RSS with ${result[sessions]} sessions | ${result[sessions_rss_kb]} KB |
| RSS per session | ${result[bytes_per_session]} bytes |
| start-up to first /healthz answer (median of 20) | ${result[startup_ms]} ms |
| release binary | ${result[binary_bytes]} bytes |
EOF

if [ -n "$json" ]; then
    {
        echo "{"
        first=1
        for key in $(printf '%s\n' "${!result[@]}" | sort); do
            [ $first = 1 ] || echo ","
            first=0
            printf '  "%s": %s' "$key" "${result[$key]}"
        done
        echo
        echo "}"
    } > "$json"
    echo "wrote $json" >&2
fi

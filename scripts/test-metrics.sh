#!/usr/bin/env bash
# GET /metrics read by Prometheus' own parser: prometheus-client from PyPI,
# in a throwaway virtualenv. wxauth runs in demo mode with
# WXAUTH_METRICS_LISTEN; a login through the simulator and a 404 go to the
# app; the scrape must parse, hold every family, count the login, keep
# histogram buckets cumulative up to +Inf, and carry no request's path.
#
# Usage: scripts/test-metrics.sh [path/to/wxauth]   (default: target/debug/wxauth)
# Needs: python3 with venv and pip (PyPI reachable), curl. wxauth talks to
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-metrics
BIN=${1:-target/debug/wxauth}
PROMETHEUS_CLIENT="prometheus-client==0.21.1"
. scripts/py-test-lib.sh
venv=${WXAUTH_METRICS_VENV:-target/metrics-venv}
make_venv "$venv" prometheus_client "$PROMETHEUS_CLIENT"
echo "$NAME: prometheus-client $("$venv/bin/pip" show prometheus-client | sed -n 's/^Version: //p')"

read -r app_port sim_port metrics_port < <(python3 scripts/free_ports.py 3)
env -i PATH="$PATH" WXAUTH_LISTEN="127.0.0.1:$app_port" WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" \
    WXAUTH_METRICS_LISTEN="127.0.0.1:$metrics_port" "$BIN" > "$work/wxauth.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/metrics" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/metrics" || fail "wxauth did not start"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$app_port/metrics")" = 404 ] \
    || fail "the public listener answers /metrics"

"$venv/bin/python" - "http://127.0.0.1:$app_port" "http://127.0.0.1:$sim_port" \
    "http://127.0.0.1:$metrics_port/metrics" <<'PY' | tee "$work/out"
import http.client, sys, urllib.parse as up
from prometheus_client.parser import text_string_to_metric_families

APP, SIM, METRICS = sys.argv[1:4]
PHONE = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50"
passed = 0

def check(ok, what):
    global passed
    if not ok:
        print("test-metrics: FAIL:", what, file=sys.stderr)
        sys.exit(1)
    passed += 1
    print("ok -", what)

def request(method, url, body=None, jar=None):
    u = up.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"User-Agent": PHONE}
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body, headers)
    r = conn.getresponse()
    text = r.read().decode()
    if jar is not None:
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, value = v.split(";")[0].split("=", 1)
                jar[name] = value
    return r, text

def scrape():
    r, text = request("GET", METRICS)
    check(r.status == 200 and r.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8",
          "GET /metrics: 200, text/plain; version=0.0.4")
    return text, {f.name: f for f in text_string_to_metric_families(text)}

def value(families, family, sample, **labels):
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0

_, before = scrape()
jar = {}
r, _ = request("GET", APP + "/login", jar=jar)
authorize = r.getheader("Location")
q = dict(up.parse_qsl(up.urlsplit(authorize.split("#")[0]).query))
form = {k: q[k] for k in ("appid", "redirect_uri", "response_type", "scope", "state")}
form |= {"user": "0", "action": "allow"}
r, _ = request("POST", SIM + "/connect/oauth2/authorize/confirm", up.urlencode(form))
r, _ = request("GET", r.getheader("Location"), jar=jar)
check(r.status == 302 and "wxauth_session" in jar, "a demo login through the simulator")
r, _ = request("GET", APP + "/nonexistent-XYZ")
check(r.status == 404, "a 404")

text, after = scrape()
check("XYZ" not in text, "no request's path in a label")
wanted = {
    "wxauth_build_info": "gauge", "wxauth_start_time_seconds": "gauge",
    "wxauth_requests": "counter", "wxauth_request_duration_seconds": "histogram",
    "wxauth_logins_started": "counter", "wxauth_logins_completed": "counter",
    "wxauth_logins_failed": "counter", "wxauth_wechat_calls": "counter",
    "wxauth_wechat_call_duration_seconds": "histogram", "wxauth_calls_in_flight": "gauge",
    "wxauth_calls_queued": "gauge", "wxauth_sessions": "gauge", "wxauth_pending_logins": "gauge",
    "wxauth_pushes": "counter", "wxauth_pushes_refused": "counter", "wxauth_redis_up": "gauge",
}
for name, kind in wanted.items():
    check(name in after and after[name].type == kind, f"{name}: a {kind}")
moved = lambda fam, sample, **l: value(after, fam, sample, **l) - value(before, fam, sample, **l)
check(moved("wxauth_logins_started", "wxauth_logins_started_total", app="account") == 1, "one login started")
check(moved("wxauth_logins_completed", "wxauth_logins_completed_total", app="account") == 1, "one login completed")
check(moved("wxauth_requests", "wxauth_requests_total", route="other", **{"class": "4xx"}) == 1, "the 404 under route=other")
check(moved("wxauth_wechat_calls", "wxauth_wechat_calls_total",
            endpoint="sns/oauth2/access_token", outcome="ok") == 1, "one code exchanged")
check(value(after, "wxauth_sessions", "wxauth_sessions") == 1, "one session held")

histograms = 0
for family in (f for f in after.values() if f.type == "histogram"):
    series = {}
    for s in family.samples:
        if s.name.endswith("_bucket"):
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, []).append((s.labels["le"], s.value))
    for key, buckets in series.items():
        counts = [c for _, c in buckets]
        count = value(after, family.name, family.name + "_count", **dict(key))
        check(buckets[-1][0] == "+Inf" and counts == sorted(counts) and counts[-1] == count,
              f"{family.name}{dict(key)}: cumulative, ending in +Inf = _count")
        histograms += 1
check(histograms >= 3, "request and call histograms present")
print(f"metrics: {passed} passed, 0 failed")
PY
[ "${PIPESTATUS[0]}" = 0 ] || fail "the checks above"

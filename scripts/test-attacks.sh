#!/usr/bin/env bash
# Runs the attacks of SECURITY.md against the built binary (demo mode, on
# loopback ports) and prints its memory before and after a /login flood:
#   - a scan-to-login link opened by a logged-in stranger logs in no one;
#   - 20,000 GET /login (half from WeChat's browser, half from desktops)
#     leave an earlier login able to complete and an earlier QR ticket pending;
#   - a cross-site POST /logout leaves the session alive;
#   - a push retried three times gets three identical replies, acted on once.
#
# Usage: scripts/test-attacks.sh [path/to/wxauth]   (default: target/release/wxauth)
# Needs: python3. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/wxauth}
[ -x "$BIN" ] || { echo "test-attacks: no binary at $BIN (cargo build --release first)" >&2; exit 1; }
read -r app_port sim_port < <(python3 scripts/free_ports.py 2)
work=$(mktemp -d)
token=attackTestToken7
env -i PATH="$PATH" WXAUTH_DEMO=1 WXAUTH_LISTEN="127.0.0.1:$app_port" \
    WXAUTH_SIM_LISTEN="127.0.0.1:$sim_port" WXAUTH_TOKEN="$token" \
    "$BIN" > "$work/wxauth.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$app_port" "$sim_port" "$pid" "$token" "$work/wxauth.log" <<'EOF'
import hashlib, http.client, re, socket, sys, threading, time, urllib.parse as up

app_port, sim_port, pid, token, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
APP, SIM = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{sim_port}"
PHONE = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
passed = 0

def ok(what):
    global passed
    passed += 1
    print("ok -", what)

def fail(what):
    print("test-attacks: FAIL:", what, file=sys.stderr)
    sys.exit(1)

class Browser:
    """A cookie jar and a User-Agent; redirects are not followed."""
    def __init__(self, ua):
        self.ua, self.jar = ua, {}
    def request(self, method, url, body=None, headers=()):
        u = up.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        h = {"User-Agent": self.ua, **dict(headers)}
        if self.jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body, h)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, value = v.split(";")[0].split("=", 1)
                if "Max-Age=0" in v:
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = value
        conn.close()
        return r.status, r.getheader("Location") or "", text
    def get(self, url, headers=()):
        return self.request("GET", url if url.startswith("http") else APP + url, None, headers)
    def post(self, url, form, headers=()):
        return self.request("POST", APP + url, up.urlencode(form), headers)
    def consent(self, authorize, user=0):
        q = dict(up.parse_qsl(up.urlsplit(authorize.split("#")[0]).query))
        form = {k: q[k] for k in ("appid", "redirect_uri", "response_type", "scope", "state")}
        form |= {"user": str(user), "action": "allow"}
        return self.request("POST", SIM + "/connect/oauth2/authorize/confirm", up.urlencode(form))[1]
    def login(self, user=0, next="/profile"):
        status, authorize, _ = self.get("/login?next=" + up.quote(next, safe=""))
        return self.get(self.consent(authorize, user))

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

def ticket_of(html):
    return re.search(r'data-ticket="([A-Za-z0-9]+)"', html).group(1)

for _ in range(100):
    try:
        if Browser(PHONE).get("/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.1)

# 1. The one-tap link: a stranger's desktop shows T; a logged-in user opens its links.
attacker = Browser(DESKTOP)
t = ticket_of(attacker.get("/login?via=scan")[2])
victim = Browser(PHONE)
victim.login()
for path in (f"/login/scan/done?t={t}", f"/login/scan/confirm?t={t}", f"/login/ticket?t={t}"):
    victim.get(path)
status, to, _ = victim.get(f"/login/scan?t={t}")
status, back, _ = victim.get(victim.consent(to))
status, _, page = victim.get(back)
if "确认在电脑上登录" not in page:
    fail("the stranger's phone did not get the confirmation page")
poll = attacker.get(f"/login/ticket?t={t}")[2]
if '"scanned"' not in poll or attacker.get("/api/me")[0] != 401:
    fail(f"the attacker's desktop got somewhere: {poll}")
ok("links opened by a logged-in stranger log the attacker's desktop into nothing")

# 2. The flood: a login and a QR ticket begun before it.
user = Browser(PHONE)
status, authorize, _ = user.get("/login?next=%2Fbefore")
callback = user.consent(authorize)
desk = Browser(DESKTOP)
qr = ticket_of(desk.get("/login?via=scan")[2])
before = rss_kib()
def flood(n):
    reqs = [f"GET /login HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\r\n".encode() for ua in (PHONE, DESKTOP)]
    s = socket.create_connection(("127.0.0.1", app_port))
    sent = got = 0
    buf = b""
    while got < n:
        while sent < n and sent - got < 100:
            s.sendall(reqs[sent % 2]); sent += 1
        d = s.recv(1 << 16)
        if not d:
            fail("the server closed a flood connection")
        buf += d
        got += buf.count(b"HTTP/1.1 ")
        i = buf.rfind(b"HTTP/1.1 ")
        buf = buf[i + 9:] if i >= 0 else buf[-12:]
    s.close()
started = time.time()
threads = [threading.Thread(target=flood, args=(10_000,)) for _ in range(2)]
for th in threads: th.start()
for th in threads: th.join()
took = time.time() - started
after = rss_kib()
status, to, _ = user.get(callback)
if (status, to) != (302, "/before"):
    fail(f"the login begun before the flood: {status} {to}")
poll = desk.get(f"/login/ticket?t={qr}")[2]
if poll != '{"status":"pending"}':
    fail(f"the QR ticket shown before the flood: {poll}")
ok(f"20,000 GET /login in {took:.1f} s: the earlier login completes, the earlier QR ticket is pending")
print(f"memory: VmRSS {before} KiB before the flood, {after} KiB after")

# 3. A cross-site POST /logout.
status = user.post("/logout", {}, [("Origin", "https://evil.example")])[0]
if status != 403 or user.get("/api/me")[0] != 200:
    fail(f"a cross-site logout: {status}")
ok("a cross-site POST /logout is refused and the session lives on")

# 4. A push retried three times.
ts, nonce = str(int(time.time())), "918273"
sig = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
body = (f"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oAttackTest]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>")
replies = []
for _ in range(4):
    conn = http.client.HTTPConnection("127.0.0.1", app_port, timeout=10)
    conn.request("POST", f"/wechat?signature={sig}&timestamp={ts}&nonce={nonce}", body, {"Content-Type": "text/xml"})
    replies.append(conn.getresponse().read())
    conn.close()
time.sleep(0.3)
acted = open(log).read().count("wechat: subscribe from oAttackTest")
if len(set(replies)) != 1 or b"/login" not in replies[0] or acted != 1:
    fail(f"retries: {len(set(replies))} different replies, acted on {acted} times")
ok("a push retried three times gets three identical replies and is acted on once")
print(f"attacks: {passed} passed, 0 failed")
EOF

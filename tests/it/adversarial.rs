//! Hostile clients and a misbehaving upstream, over real sockets. After each
//! attack the server still answers /healthz and a session made before the
//! attack still works: nothing is lost, nothing hangs.

use crate::support::{attribute, start, start_real, start_with, Browser, Stack};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A stack with one user logged in before the attack.
pub fn stack_with_victim(settings: &[(&str, &str)]) -> (Stack, Browser) {
    let stack = start_with(settings);
    let mut victim = Browser::new();
    assert_eq!(victim.login_as(&stack, 0).status, 302);
    (stack, victim)
}

/// The server still serves, and the session made before the attack still works.
pub fn still_fine(stack: &Stack, victim: &mut Browser) {
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
    let me = victim.get(&stack.url("/api/me"));
    assert_eq!(me.status, 200, "the victim's session survived: {}", me.body);
    assert!(me.body.contains("熊猫🐼小明"));
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// The status code of the first answer on a raw connection, or 0 if it closed.
fn status_of(stream: &mut TcpStream) -> u16 {
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head) {
        Ok(()) => String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0),
        Err(_) => 0,
    }
}

#[test]
fn many_duplicate_and_garbage_cookies_are_harmless() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let session = victim.jar["wxauth_session"].clone();
    let garbage: String = (0..4096)
        .map(|i| char::from(b'!' + (i % 90) as u8))
        .filter(|c| *c != ';')
        .collect();
    let many: String = (0..300).map(|i| format!("c{i}=v{i}; ")).collect();
    for cookie in [
        format!("wxauth_session={garbage}"),
        format!("{many}wxauth_session={session}"),
        format!("wxauth_session=forged; wxauth_session={session}"),
        format!("wxauth_session={session}; wxauth_session=forged"),
        "wxauth_session=; =; ;;; wxauth_login=x".to_string(),
        format!("wxauth_session=\"{session}\""),
    ] {
        let resp = Browser::new().get_with(&stack.url("/api/me"), &[("Cookie", &cookie)]);
        assert!(
            matches!(resp.status, 200 | 401),
            "{cookie:.60}: {}",
            resp.status
        );
        let login = Browser::new().get_with(&stack.url("/login"), &[("Cookie", &cookie)]);
        assert_eq!(login.status, 302);
    }
    // Bytes no HTTP client library will send, over a raw socket.
    let mut raw = connect(stack.app.addr);
    raw.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: wxauth_session=\x7f\xff\xfe; \x01=\x02\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Bytes that are not UTF-8 are read as such (replaced), not refused.
    assert_eq!(status_of(&mut raw), 401);
    // A planted cookie sent before ours does not hide ours: each is tried.
    let forged_first = format!("wxauth_session=forged; wxauth_session={session}");
    let resp = Browser::new().get_with(&stack.url("/api/me"), &[("Cookie", &forged_first)]);
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains("熊猫🐼小明"));
    still_fine(&stack, &mut victim);
}

#[test]
fn every_method_on_every_path_gets_a_proper_answer() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let paths = [
        "/",
        "/login",
        "/callback",
        "/profile",
        "/profile/refresh",
        "/logout",
        "/api/me",
        "/healthz",
        "/static/style.css",
        "/static/nope",
        "/nope",
        "/api/nope",
    ];
    for method in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW",
    ] {
        for path in paths {
            let mut stream = connect(stack.app.addr);
            let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            assert!(
                matches!(
                    status,
                    200 | 204 | 302 | 303 | 400 | 401 | 403 | 404 | 405 | 501
                ),
                "{method} {path}: {status}"
            );
            assert_ne!(status, 500, "{method} {path}");
            if status == 405 {
                assert!(
                    answer.contains("\r\nAllow: "),
                    "{method} {path}: 405 without Allow"
                );
            }
        }
    }
    still_fine(&stack, &mut victim);
}

#[test]
fn a_client_that_sends_half_a_request_and_stalls_holds_up_no_one() {
    // A 3 s client timeout: a loop held up by the stalled clients would take
    // at least that long; the margin keeps a loaded test machine from failing.
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "3")]);
    let mut stalled = Vec::new();
    for partial in [
        &b"GET /healthz HT"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Half",
        b"POST /logout HTTP/1.1\r\n",
    ] {
        let mut stream = connect(stack.app.addr);
        stream.write_all(partial).unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();
    still_fine(&stack, &mut victim);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "served while they stall"
    );
    // The socket timeout then ends each stalled request with a 408.
    for stream in stalled.iter_mut() {
        let started = Instant::now();
        let status = status_of(stream);
        assert_eq!(status, 408);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "closed by the 3 s client timeout"
        );
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_client_timeout() {
    let stack = start_with(&[("WXAUTH_CLIENT_TIMEOUT", "1")]);
    let mut stream = connect(stack.app.addr);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_client_opening_many_connections_does_not_lock_others_out() {
    let (stack, mut victim) = stack_with_victim(&[]);
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(stack.app.addr)).collect();
    still_fine(&stack, &mut victim);
    drop(idle);
    // Connections in flight with complete requests are all answered.
    let mut streams: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = connect(stack.app.addr);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    for s in streams.iter_mut() {
        assert_eq!(status_of(s), 200);
    }
    still_fine(&stack, &mut victim);
}

/// Sends `count` pipelined copies of each request in `requests` (taking
/// turns) on one kept-alive connection, reading the answers as it goes;
/// returns how many answers came, by status.
fn pipelined_flood(addr: SocketAddr, requests: &[&[u8]], count: usize) -> Vec<(u16, usize)> {
    let mut stream = connect(addr);
    let pattern = b"HTTP/1.1 ";
    let mut tally: Vec<(u16, usize)> = Vec::new();
    let (mut answers, mut pending, mut sent) = (0usize, Vec::new(), 0usize);
    let mut buf = vec![0u8; 1 << 16];
    while answers < count {
        // At most 100 unanswered requests in flight, so no buffer fills up.
        while sent < count && sent - answers < 100 {
            stream.write_all(requests[sent % requests.len()]).unwrap();
            sent += 1;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the server closed the connection after {answers} answers"
        );
        pending.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while let Some(i) = pending[at..]
            .windows(pattern.len())
            .position(|w| w == pattern)
        {
            let start = at + i + pattern.len();
            if pending.len() < start + 3 {
                break;
            }
            let status: u16 = String::from_utf8_lossy(&pending[start..start + 3])
                .parse()
                .unwrap_or(0);
            match tally.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => tally.push((status, 1)),
            }
            answers += 1;
            at = start + 3;
        }
        // Keep an unread tail shorter than a status line: nothing counted twice.
        pending.drain(..at.max(pending.len().saturating_sub(pattern.len() + 2)));
    }
    tally.sort();
    tally
}

/// Issue 11's flood: 18,000 GET /login, from WeChat's browser, from
/// desktops asking for wxauth's QR page and from desktops sent to WeChat's
/// QR login (the demo has a website app), from two connections at once. Nothing is stored for them,
/// so a login and a QR ticket begun before it are still good after it.
#[test]
fn a_login_flood_evicts_no_login_under_way_and_no_qr_ticket() {
    let stack = start();
    let mut user = Browser::new();
    let authorize = user.start_login(&stack, Some("/before-the-flood"));
    let callback = user.consent(&authorize, 0, true);
    let mut desktop = Browser::new();
    desktop.user_agent = "Mozilla/5.0 (Windows NT 10.0) Chrome/126.0".into();
    let page = desktop.get(&stack.url("/login?via=scan"));
    let ticket = attribute(&page.body, "data-ticket");
    let poll = format!("/login/ticket?t={ticket}");
    assert!(desktop.get(&stack.url(&poll)).body.contains("pending"));

    let phone: &[u8] =
        b"GET /login HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 MicroMessenger/8.0.50\r\n\r\n";
    let pc: &[u8] = b"GET /login?via=scan HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0) Chrome/126.0\r\n\r\n";
    // The demo's website app: a desktop sent to WeChat's QR login.
    let web: &[u8] = b"GET /login HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0) Chrome/126.0\r\n\r\n";
    let addr = stack.app.addr;
    let floods: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || pipelined_flood(addr, &[phone, pc, web], 9_000)))
        .collect();
    for flood in floods {
        assert_eq!(flood.join().unwrap(), [(200, 3_000), (302, 6_000)]);
    }
    let stats = stack.app.stats();
    assert_eq!(
        (stats.spent, stats.scans),
        (0, 0),
        "a /login stores nothing: {stats:?}"
    );

    // The login begun before the flood completes, with one upstream exchange.
    let done = user.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/before-the-flood");
    assert_eq!(stack.calls("access_token"), 1);
    assert_eq!(user.get(&stack.url("/api/me")).status, 200);
    // The QR ticket shown before the flood is still pending.
    let answer = desktop.get(&stack.url(&poll));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"status":"pending"}"#)
    );
}

/// A fake WeChat API on loopback that accepts a connection and then does
/// `behave` with it, for the failures the simulator cannot act out.
fn fake_upstream(behave: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || behave(stream));
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_upstream_that_resets_hangs_or_closes_early_is_a_clean_502_or_504() {
    let cases: [(fn(TcpStream), u16); 4] = [
        // Closes at once, before reading the request.
        (|s| drop(s), 502),
        // Reads the request, then closes without a word.
        (
            |mut s| {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
            },
            502,
        ),
        // Starts an answer and stops in the middle of the headers.
        (
            |mut s| {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
            },
            502,
        ),
        // Hangs: reads the request and never answers.
        (
            |mut s| {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                std::thread::sleep(Duration::from_secs(5));
            },
            504,
        ),
    ];
    for (behave, expected) in cases {
        let api = fake_upstream(behave);
        let stack = start_real(&[("WXAUTH_API_BASE", &api), ("WXAUTH_UPSTREAM_TIMEOUT", "1")]);
        let mut browser = Browser::new();
        let started = Instant::now();
        let page = browser.login_as(&stack, 0);
        assert_eq!(page.status, expected, "{}", page.body);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "bounded by the 1 s timeout"
        );
        assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
    }
}

#[test]
fn a_location_built_from_input_never_carries_a_header_break() {
    let stack = start();
    for next in [
        "/%0d%0aSet-Cookie:%20evil=1",
        "/a%0aX-Injected:%201",
        "/%E5%98%8A%E5%98%8DSet-Cookie:x=1",
    ] {
        let mut browser = Browser::new();
        let authorize = browser.start_login(
            &stack,
            Some(&wxauth_app::transport::http::parse_query(&format!("n={next}"))[0].1),
        );
        let callback = browser.consent(&authorize, 0, true);
        let done = browser.get(&callback);
        assert_eq!(done.status, 302);
        assert!(!done.location().contains(['\r', '\n']));
        assert!(done.headers.iter().all(|(n, _)| n != "x-injected"));
        assert!(done
            .headers
            .iter()
            .all(|(n, v)| !(n == "set-cookie" && v.starts_with("evil"))));
    }
}

/// A fake WeChat API on loopback answering each request with whatever
/// `answer(request_line)` returns (a whole HTTP response).
fn fake_wechat(answer: fn(&str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = request.lines().next().unwrap_or("").to_string();
            let _ = stream.write_all(answer(&line).as_bytes());
        }
    });
    format!("http://{addr}")
}

fn json_200(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

const GRANT: &str = r#"{"access_token":"fakeAT","expires_in":7200,"refresh_token":"fakeRT","openid":"oFakeUser0000000000000000001","scope":"snsapi_userinfo"}"#;

#[test]
fn a_userinfo_for_another_openid_is_refused() {
    let api = fake_wechat(|line| {
        if line.contains("/sns/oauth2/access_token") {
            json_200(GRANT)
        } else {
            json_200(r#"{"openid":"oSomebodyElse00000000000000002","nickname":"冒名"}"#)
        }
    });
    let stack = start_real(&[("WXAUTH_API_BASE", &api)]);
    let mut browser = Browser::new();
    let page = browser.login_as(&stack, 0);
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(!browser.jar.contains_key("wxauth_session"));
}

#[test]
fn an_avatar_off_wechats_hosts_is_replaced_by_the_placeholder() {
    let api = fake_wechat(|line| {
        if line.contains("/sns/oauth2/access_token") {
            json_200(GRANT)
        } else {
            json_200(
                r#"{"openid":"oFakeUser0000000000000000001","nickname":"n","headimgurl":"https://evil.example/track.png?u=1"}"#,
            )
        }
    });
    let stack = start_real(&[("WXAUTH_API_BASE", &api)]);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&stack, 0).status, 302);
    let profile = browser.get(&stack.url("/profile"));
    assert!(!profile.body.contains("evil.example"), "{}", profile.body);
    assert!(profile.body.contains("/static/avatar.svg"));
    let csp = profile.header("content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' https://*.qlogo.cn"), "{csp}");
}

#[test]
fn a_redirect_from_the_api_is_never_followed() {
    // Where a followed redirect would carry the appsecret and the code.
    let thief = TcpListener::bind("127.0.0.1:0").unwrap();
    thief.set_nonblocking(true).unwrap();
    let thief_addr = thief.local_addr().unwrap();
    static THIEF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    THIEF.set(format!("http://{thief_addr}/steal")).unwrap();
    let api = fake_wechat(|_| {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            THIEF.get().unwrap()
        )
    });
    let stack = start_real(&[("WXAUTH_API_BASE", &api)]);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&stack, 0).status, 502);
    std::thread::sleep(Duration::from_millis(100));
    assert!(thief.accept().is_err(), "the redirect target was contacted");
}

#[test]
fn an_https_api_base_is_never_spoken_to_in_plain_http() {
    // A plain-HTTP server behind an https:// base: the TLS handshake fails,
    // nothing is sent in the clear.
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let api = fake_wechat(|line| {
        SEEN.lock().unwrap().push(line.to_string());
        json_200(GRANT)
    });
    let https_api = api.replace("http://", "https://");
    let stack = start_real(&[("WXAUTH_API_BASE", &https_api)]);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&stack, 0).status, 502);
    let seen = SEEN.lock().unwrap();
    assert!(
        seen.iter()
            .all(|l| !l.contains("secret=") && !l.contains("code=")),
        "{seen:?}"
    );
}

#[test]
fn the_server_keeps_accepting_after_a_quiet_spell_longer_than_the_client_timeout() {
    // The client timeout sits on the listening socket, where it also bounds
    // accept(): a quiet spell must not be taken for a broken listener.
    let (stack, mut victim) = stack_with_victim(&[("WXAUTH_CLIENT_TIMEOUT", "0.3")]);
    std::thread::sleep(Duration::from_millis(1200));
    still_fine(&stack, &mut victim);
    std::thread::sleep(Duration::from_millis(700));
    still_fine(&stack, &mut victim);
}

#[test]
fn a_burst_of_kept_alive_connections_is_served_at_once() {
    // Browsers keep connections open. Every connection of a burst must be
    // served while the others stay open, not queued until one of them closes.
    let stack = start();
    let mut open = Vec::new();
    for round in 0..4 {
        // Idle threads left over from the last round make the pool's count of
        // waiting threads lag behind: that is when connections were queued.
        let mut burst: Vec<TcpStream> = (0..40)
            .map(|_| {
                let mut s = connect(stack.app.addr);
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                s
            })
            .collect();
        for (i, s) in burst.iter_mut().enumerate() {
            assert_eq!(
                status_of(s),
                200,
                "round {round}: connection {i} of the burst was not served"
            );
        }
        if round % 2 == 0 {
            open.extend(burst); // kept alive through the next round
        }
    }
}

#[test]
fn an_openid_or_unionid_with_control_characters_is_refused_with_a_clear_page() {
    let cases: [fn(&str) -> String; 3] = [
        // The grant's openid carries a header break (JSON-escaped, valid JSON).
        |_| {
            json_200(
                r#"{"access_token":"fakeAT","expires_in":7200,"refresh_token":"fakeRT","openid":"oFake\r\nX-Injected: 1","scope":"snsapi_userinfo"}"#,
            )
        },
        // The grant's unionid carries a bell; then non-ASCII in the openid.
        |_| {
            json_200(
                r#"{"access_token":"fakeAT","expires_in":7200,"refresh_token":"fakeRT","openid":"oFakeUser0000000000000000001","unionid":"u\u0007","scope":"snsapi_userinfo"}"#,
            )
        },
        // The profile's unionid carries a newline.
        |line| {
            if line.contains("/sns/oauth2/access_token") {
                json_200(GRANT)
            } else {
                json_200(
                    r#"{"openid":"oFakeUser0000000000000000001","nickname":"n","unionid":"oUnion\n1"}"#,
                )
            }
        },
    ];
    for answer in cases {
        let api = fake_wechat(answer);
        let stack = start_real(&[("WXAUTH_API_BASE", &api)]);
        let mut browser = Browser::new();
        let page = browser.login_as(&stack, 0);
        assert_eq!(page.status, 502, "{}", page.body);
        assert!(page.body.contains("微信返回的身份无效"), "{}", page.body);
        assert!(!browser.jar.contains_key("wxauth_session"));
        assert!(page.headers.iter().all(|(n, _)| n != "x-injected"));
    }
}

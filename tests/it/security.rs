//! Secrets never reach the browser, the Host header changes nothing, a
//! planted session id is not promoted, and requests over the limits are refused.

use crate::support::{start, start_real, start_with, Browser};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn no_secret_or_token_reaches_the_browser_in_any_flow() {
    for stack in [start(), start_real(&[])] {
        let mut browser = Browser::new();
        browser.login_as(&stack, 0);
        for path in ["/", "/profile", "/api/me", "/healthz"] {
            browser.get(&stack.url(path));
        }
        stack.control(&[("advance", "7300")]);
        browser.post(&stack.url("/profile/refresh"), &[]);
        browser.get(&stack.url("/profile"));
        stack.control(&[("fault", "userinfo:errcode:40014")]);
        browser.post(&stack.url("/profile/refresh"), &[]);
        browser.post(&stack.url("/logout"), &[]);
        assert!(
            !browser.seen.contains(&stack.secret),
            "the appsecret leaked"
        );
        // The simulator's tokens carry recognisable prefixes.
        for prefix in ["simAT_", "simRT_", "access_token", "refresh_token"] {
            assert!(
                !browser.seen.contains(prefix),
                "{prefix} leaked: {}",
                browser.seen
            );
        }
    }
}

#[test]
fn a_spoofed_host_header_changes_nothing_in_the_authorize_redirect() {
    let stack = start();
    let mut browser = Browser::new();
    let resp = browser.get_with(
        &stack.url("/login"),
        &[
            ("Host", "evil.example"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    );
    assert_eq!(resp.status, 302);
    let expected =
        wxauth_app::transport::http::encode_component(&format!("{}/callback", stack.app_url));
    assert!(
        resp.location()
            .contains(&format!("redirect_uri={expected}&")),
        "{}",
        resp.location()
    );
    assert!(!resp.location().contains("evil"));
}

#[test]
fn the_state_is_fresh_random_base62_every_time() {
    let stack = start();
    let mut browser = Browser::new();
    let states: Vec<String> = (0..20)
        .map(|_| {
            let url = browser.start_login(&stack, None);
            url.split("&state=")
                .nth(1)
                .unwrap()
                .split(['&', '#'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for s in &states {
        assert!(
            s.len() >= 22 && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{s}"
        );
    }
    let mut unique = states.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), states.len());
}

#[test]
fn a_session_cookie_planted_before_login_is_not_kept() {
    let stack = start();
    let mut browser = Browser::new();
    browser.jar.insert(
        "wxauth_session".into(),
        "AttackerChosenId0123456789abcdef".into(),
    );
    browser.login_as(&stack, 0);
    assert_ne!(
        browser.jar["wxauth_session"],
        "AttackerChosenId0123456789abcdef"
    );
    let mut attacker = Browser::new();
    attacker.jar.insert(
        "wxauth_session".into(),
        "AttackerChosenId0123456789abcdef".into(),
    );
    assert_eq!(attacker.get(&stack.url("/api/me")).status, 401);
}

#[test]
fn cookies_are_secure_when_the_public_url_is_https() {
    let stack = start_real(&[("WXAUTH_PUBLIC_URL", "https://wx.example.com/wx")]);
    let resp = Browser::new().get(&stack.url("/wx/login"));
    let cookie = resp.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("wxauth_login=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    assert!(resp
        .location()
        .contains("redirect_uri=https%3A%2F%2Fwx.example.com%2Fwx%2Fcallback&"));
}

#[test]
fn an_https_site_at_the_root_uses_host_only_cookie_names() {
    // Served over plain HTTP here (nginx would terminate TLS); the names are
    // what a browser would hold over https, and no sibling subdomain can set.
    let stack = start_real(&[("WXAUTH_PUBLIC_URL", "https://wx.example.com")]);
    let mut browser = Browser::new();
    let authorize = browser.start_login(&stack, None);
    let cookie = browser
        .seen
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("set-cookie: __Host-wxauth_login=")
            && cookie.ends_with("; Max-Age=600; Path=/; HttpOnly; SameSite=Lax; Secure")
            && !cookie.contains("Domain"),
        "{cookie}"
    );
    let callback = browser.consent(&authorize, 0, true);
    let callback = callback.replace("https://wx.example.com", &stack.app_url);
    let done = browser.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    let session = done.header("set-cookie").unwrap();
    assert!(
        session.starts_with("__Host-wxauth_session=") && session.contains("; Path=/;"),
        "{session}"
    );
    assert_eq!(browser.get(&stack.url("/api/me")).status, 200);
    // The plain name means nothing to this site: a planted one is not read.
    let sid = browser.jar["__Host-wxauth_session"].clone();
    let mut planted = Browser::new();
    planted.jar.insert("wxauth_session".into(), sid);
    assert_eq!(planted.get(&stack.url("/api/me")).status, 401);
}

#[test]
fn a_cross_site_post_leaves_the_session_alive() {
    let stack = start();
    let mut browser = Browser::new();
    browser.login_as(&stack, 0);
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "http://127.0.0.1.evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    ] {
        for path in ["/logout", "/profile/refresh"] {
            let resp = browser.post_with(&stack.url(path), &[], &headers);
            assert_eq!(resp.status, 403, "{path} {headers:?}");
            assert!(resp.body.contains("请求来自其他网站"), "{}", resp.body);
        }
    }
    assert_eq!(
        browser.get(&stack.url("/api/me")).status,
        200,
        "still logged in"
    );
    assert_eq!(stack.calls("userinfo"), 1, "no refresh was made");
    // Our own pages' posts, and clients that are not browsers, get through.
    let same = browser.post_with(
        &stack.url("/profile/refresh"),
        &[],
        &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(same.status, 303);
    let curl = browser.post_with(&stack.url("/profile/refresh"), &[], &[]);
    assert_eq!(curl.status, 303);
    assert_eq!(browser.post(&stack.url("/logout"), &[]).status, 303);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 401);
}

/// Sends raw bytes and returns the status line (or "" when the server just closed).
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn requests_over_the_limits_are_refused() {
    let stack = start();
    let addr = stack.app.addr;
    let long_url = format!(
        "GET /?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    assert!(raw(addr, long_url.as_bytes()).contains("414"));
    let big_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..40)
            .map(|i| format!("X-Pad-{i}: {}\r\n", "b".repeat(500)))
            .collect::<String>()
    );
    assert!(raw(addr, big_headers.as_bytes()).contains("431"));
    let big_body = format!(
        "POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        100 * 1024
    );
    assert!(raw(addr, big_body.as_bytes()).contains("413"));
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
}

#[test]
fn garbage_and_bad_encodings_never_break_the_server() {
    let stack = start();
    let addr = stack.app.addr;
    for request in [
        &b"GET /callback?state=%FF%FE&code=%E4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"GET /login?next=%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: wxauth_session=\xff\xfe; ;;=; a\r\nConnection: close\r\n\r\n",
        b"NONSENSE\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let _ = raw(addr, request);
    }
    let mut browser = Browser::new();
    let resp = browser.get(&stack.url("/login?next=%0d%0aSet-Cookie:%20x=1"));
    assert_eq!(resp.status, 302);
    assert!(resp
        .headers
        .iter()
        .all(|(n, v)| !(n == "set-cookie" && v.starts_with("x="))));
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
}

#[test]
fn a_client_that_announces_a_body_and_stalls_does_not_hold_up_others() {
    // A loop held up by the stalled bodies would take the 3 s client timeout.
    let stack = start_with(&[("WXAUTH_CLIENT_TIMEOUT", "3")]);
    // tiny_http reads a body of up to 64 KiB on the connection's own thread
    // before handing the request over (vendor/tiny_http/PATCHES.md), so a
    // stalled body stalls only that connection, never the loop.
    let mut stalled = Vec::new();
    for length in [1000, 5000, 60_000] {
        let mut stream = TcpStream::connect(stack.app.addr).unwrap();
        let head =
            format!("POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nabc");
        stream.write_all(head.as_bytes()).unwrap();
        stalled.push(stream);
    }
    let started = std::time::Instant::now();
    let mut browser = Browser::new();
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
    browser.login_as(&stack, 0);
    assert_eq!(browser.get(&stack.url("/api/me")).status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "served while three bodies stall"
    );
    // Each stalled connection is ended by the client timeout with a 408,
    // never with a reply to a request it did not finish.
    for stream in stalled.iter_mut() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
    }
}

#[test]
fn a_huge_declared_body_does_not_crash_the_server() {
    let stack = start();
    for length in ["100000000000", "18446744073709551615", "70000"] {
        let request =
            format!("POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nabc");
        assert!(
            raw_until_closed(stack.app.addr, request.as_bytes()).contains("413"),
            "{length}"
        );
    }
    let mut browser = Browser::new();
    assert_eq!(browser.get(&stack.url("/healthz")).status, 200);
}

/// Sends raw bytes, reads the status line, then closes from our side (the
/// server may still wait for the body it was promised).
fn raw_until_closed(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut status = [0u8; 12];
    let line = match stream.read_exact(&mut status) {
        Ok(()) => String::from_utf8_lossy(&status).into_owned(),
        Err(e) => format!("no answer: {e}"),
    };
    drop(stream);
    line
}

#[test]
fn an_endless_header_line_is_cut_off() {
    let stack = start();
    let mut stream = TcpStream::connect(stack.app.addr).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nX-Endless: ").unwrap();
    // 32 KiB with no newline: the server stops reading at 16 KiB, answers 431
    // and closes, instead of buffering for ever while it waits for the line
    // to end.
    let _ = stream.write_all(&[b'a'; 32 * 1024]);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{rest}"
    );
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..150)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    // A 431 from the HTTP layer itself (vendor/tiny_http: at most 100
    // header lines), then the connection closes: not silence.
    assert_eq!(
        raw(stack.app.addr, many.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let hundred = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..98).map(|i| format!("X-{i}: y\r\n")).collect::<String>()
    );
    assert!(
        raw(stack.app.addr, hundred.as_bytes()).starts_with("HTTP/1.1 200 "),
        "100 header lines are fine"
    );
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
}

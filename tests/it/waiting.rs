//! The loop never waits: while logins wait on a slow WeChat, every other
//! request is answered at once; a reload joins the exchange under way; the
//! work taken on is bounded (503 past it); pipelining and clients that do
//! not read cannot stall anyone. The simulator's `latency` switch stands in
//! for WeChat's real round trip.

use crate::support::{start_with, Browser, Stack};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A second browser with the same cookies (another tab, or a reload racing the first).
fn same_browser(browser: &Browser) -> Browser {
    let mut copy = Browser::new();
    copy.jar = browser.jar.clone();
    copy
}

/// Begins a login and walks WeChat's consent: the callback URL, not yet opened.
fn callback_url(stack: &Stack, browser: &mut Browser, user: usize) -> String {
    let authorize = browser.start_login(stack, None);
    browser.consent(&authorize, user, true)
}

/// `n` browsers, each with a login walked up to WeChat's callback (test
/// users in turn): the callback URLs, not yet opened.
fn callbacks(stack: &Stack, n: usize) -> Vec<(Browser, String)> {
    (0..n)
        .map(|i| {
            let mut browser = Browser::new();
            let url = callback_url(stack, &mut browser, i % 5);
            (browser, url)
        })
        .collect()
}

/// Waits (with a deadline) until the simulator has seen `n` calls of `endpoint`.
fn wait_for_calls(stack: &Stack, endpoint: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.calls(endpoint) < n {
        assert!(
            Instant::now() < deadline,
            "{endpoint}: {} calls, want {n}",
            stack.calls(endpoint)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// GETs `url` and returns the status and how long the answer took.
fn timed_get(browser: &mut Browser, url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = browser.get(url).status;
    (status, started.elapsed())
}

#[test]
fn other_requests_are_answered_at_once_while_eight_logins_wait_on_wechat() {
    let stack = start_with(&[("WXAUTH_UPSTREAM_TIMEOUT", "5")]);
    let mut user = Browser::new();
    assert_eq!(user.login_as(&stack, 0).status, 302);
    let callbacks = callbacks(&stack, 8);
    // Every WeChat call now takes 2 s: each callback waits 4 s (two calls).
    stack.control(&[("latency", "2000")]);
    let waiting: Vec<_> = callbacks
        .into_iter()
        .map(|(mut b, url)| thread::spawn(move || b.get(&url)))
        .collect();
    wait_for_calls(&stack, "access_token", 9);

    let mut times = Vec::new();
    for _ in 0..3 {
        for path in ["/healthz", "/auth/check", "/profile", "/static/style.css"] {
            let (status, took) = timed_get(&mut user, &stack.url(path));
            assert_eq!(
                status,
                if path == "/auth/check" { 204 } else { 200 },
                "{path}"
            );
            times.push(took);
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = *times.last().unwrap();
    // A loop that waited on WeChat would answer after 2 s or more.
    assert!(
        median < Duration::from_millis(50) && max < Duration::from_millis(500),
        "answers while logins wait: median {median:?}, max {max:?}"
    );
    for waiter in waiting {
        let resp = waiter.join().expect("the callback thread");
        assert_eq!(resp.status, 302, "{}", resp.body);
        assert_eq!(resp.location(), "/profile");
    }
    assert_eq!(stack.calls("access_token"), 9);
    assert_eq!(stack.app.stats().sessions, 9);
}

#[test]
fn a_reload_and_a_second_callback_during_the_exchange_make_one_exchange() {
    let stack = start_with(&[("WXAUTH_UPSTREAM_TIMEOUT", "5")]);
    let mut browser = Browser::new();
    let url = callback_url(&stack, &mut browser, 0);
    stack.control(&[("latency", "800")]);
    let mut first_tab = same_browser(&browser);
    let first_url = url.clone();
    let first = thread::spawn(move || first_tab.get(&first_url));
    wait_for_calls(&stack, "access_token", 1);
    // The reload, and WeChat's known double callback: a new code, the same state.
    let mut reload = same_browser(&browser);
    let reload_url = url.clone();
    let reloaded = thread::spawn(move || reload.get(&reload_url));
    let (path, query) = url.split_once('?').unwrap();
    let state = query
        .split('&')
        .find(|p| p.starts_with("state="))
        .expect("a state in the callback");
    let second = browser.get(&format!(
        "{path}?code=aSecondCodeFromWeChat0000000000&{state}"
    ));

    let first = first.join().unwrap();
    let reloaded = reloaded.join().unwrap();
    for resp in [&first, &reloaded, &second] {
        assert_eq!(resp.status, 302, "{}", resp.body);
        assert_eq!(resp.location(), "/profile");
    }
    let cookie = |r: &crate::support::Resp| {
        r.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    };
    assert!(cookie(&first).is_some());
    assert_eq!(cookie(&first), cookie(&reloaded), "one session for both");
    assert_eq!(cookie(&first), cookie(&second), "one session for all three");
    assert_eq!(stack.calls("access_token"), 1, "one code exchanged");
    assert_eq!(stack.app.stats().sessions, 1);
}

#[test]
fn a_logout_while_the_refresh_is_out_is_not_undone_when_it_comes_back() {
    let stack = start_with(&[("WXAUTH_UPSTREAM_TIMEOUT", "5")]);
    let mut browser = Browser::new();
    assert_eq!(browser.login_as(&stack, 0).status, 302);
    let stale = browser.jar.clone();
    // WeChat says the token is stale (42001): refresh, then ask again; slowly.
    stack.control(&[("fault", "userinfo:errcode:42001"), ("latency", "700")]);
    let mut tab = same_browser(&browser);
    let refresh_url = stack.url("/profile/refresh");
    let refreshing = thread::spawn(move || tab.post(&refresh_url, &[]));
    wait_for_calls(&stack, "userinfo", 2);
    let out = browser.post(&stack.url("/logout"), &[]);
    assert_eq!(out.status, 303);

    let refreshed = refreshing.join().unwrap();
    assert_eq!(refreshed.status, 303);
    assert_eq!(refreshed.location(), "/login?next=%2Fprofile");
    wait_for_calls(&stack, "refresh_token", 1);
    let mut replay = Browser::new();
    replay.jar = stale;
    assert_eq!(
        replay.get(&stack.url("/api/me")).status,
        401,
        "the refresh's answer did not bring the session back"
    );
    assert_eq!(stack.app.stats().sessions, 0);
}

#[test]
fn past_the_queue_and_the_workers_a_callback_gets_503_with_retry_after() {
    // One worker, so four calls may wait: five callbacks at most.
    let stack = start_with(&[
        ("WXAUTH_UPSTREAM_TIMEOUT", "5"),
        ("WXAUTH_UPSTREAM_WORKERS", "1"),
    ]);
    let mut pending = callbacks(&stack, 6);
    let (mut last, last_url) = pending.pop().unwrap();
    stack.control(&[("latency", "400")]);
    let waiting: Vec<_> = pending
        .into_iter()
        .enumerate()
        .map(|(i, (mut b, url))| {
            // Five clients behind nginx (a trusted proxy on loopback).
            let ip = format!("192.0.2.{}", i + 1);
            thread::spawn(move || b.get_with(&url, &[("X-Real-IP", &ip)]))
        })
        .collect();
    wait_for_calls(&stack, "access_token", 1);
    thread::sleep(Duration::from_millis(100));
    let busy = last.get_with(&last_url, &[("X-Real-IP", "192.0.2.99")]);
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(busy.body.contains("服务繁忙"), "{}", busy.body);
    // Everyone else is still served meanwhile.
    assert_eq!(Browser::new().get(&stack.url("/healthz")).status, 200);
    for waiter in waiting {
        assert_eq!(waiter.join().unwrap().status, 302);
    }
    // The refused callback's code never went to WeChat: tapping 重试 (the
    // same callback again) once there is room completes that login.
    let exchanged = stack.calls("access_token");
    let retried = last.get_with(&last_url, &[("X-Real-IP", "192.0.2.99")]);
    assert_eq!(retried.status, 302, "{}", retried.body);
    assert_eq!(retried.location(), "/profile");
    assert_eq!(stack.calls("access_token"), exchanged + 1);
}

#[test]
fn one_client_cannot_hold_more_than_its_share_of_calls() {
    let stack = start_with(&[
        ("WXAUTH_UPSTREAM_TIMEOUT", "5"),
        ("WXAUTH_UPSTREAM_PER_CLIENT", "2"),
    ]);
    let mut pending = callbacks(&stack, 4);
    let (mut other, other_url) = pending.pop().unwrap();
    let (mut third, third_url) = pending.pop().unwrap();
    stack.control(&[("latency", "600")]);
    let waiting: Vec<_> = pending
        .into_iter()
        .map(|(mut b, url)| thread::spawn(move || b.get_with(&url, &[("X-Real-IP", "192.0.2.7")])))
        .collect();
    wait_for_calls(&stack, "access_token", 2);
    let refused = third.get_with(&third_url, &[("X-Real-IP", "192.0.2.7")]);
    assert_eq!(refused.status, 503, "a third call from the same address");
    // X-Real-IP is believed only from a trusted proxy: the peer here is
    // loopback (trusted by default), so another address is another client.
    let accepted = other.get_with(&other_url, &[("X-Real-IP", "192.0.2.8")]);
    assert_eq!(accepted.status, 302);
    for waiter in waiting {
        assert_eq!(waiter.join().unwrap().status, 302);
    }
}

/// Reads one HTTP/1.1 answer (head and a Content-Length body) from `stream`.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream
            .read(&mut byte)
            .expect("an answer before the deadline");
        assert_eq!(
            n,
            1,
            "connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head[9..12].parse().expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("the body");
    (status, head)
}

#[test]
fn a_pipelined_request_behind_a_slow_callback_is_answered_in_order() {
    let stack = start_with(&[("WXAUTH_UPSTREAM_TIMEOUT", "5")]);
    let mut browser = Browser::new();
    let url = callback_url(&stack, &mut browser, 0);
    stack.control(&[("latency", "700")]);
    let target = url
        .strip_prefix(&stack.app_url)
        .expect("a callback on the app");
    let cookies: Vec<String> = browser
        .jar
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut stream = TcpStream::connect(stack.app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let pipelined = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        cookies.join("; ")
    );
    stream.write_all(pipelined.as_bytes()).unwrap();
    wait_for_calls(&stack, "access_token", 1);
    // Meanwhile, on other connections, nothing waits.
    let (status, took) = timed_get(&mut Browser::new(), &stack.url("/healthz"));
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(500), "{took:?}");
    let (first, head) = read_answer(&mut stream);
    assert_eq!(first, 302, "{head}");
    assert!(head.contains("Location: /profile"), "{head}");
    let (second, head) = read_answer(&mut stream);
    assert_eq!(
        second, 200,
        "the pipelined /healthz, after the callback: {head}"
    );
}

#[test]
fn a_client_that_never_reads_its_replies_stalls_no_one() {
    let stack = start_with(&[]);
    // Two thousand pipelined page requests (megabytes of answers), never read.
    let mut hog = TcpStream::connect(stack.app.addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n";
    let burst: Vec<u8> = request.repeat(2000);
    // The server stops reading once its replies back up: writing may stall.
    let writer = thread::spawn(move || {
        let _ = hog.write_all(&burst);
        hog
    });
    thread::sleep(Duration::from_millis(500));
    let mut others = Browser::new();
    for _ in 0..10 {
        let (status, took) = timed_get(&mut others, &stack.url("/healthz"));
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    let mut user = Browser::new();
    assert_eq!(user.login_as(&stack, 0).status, 302);
    drop(writer.join());
}

#[test]
fn a_flood_of_qr_pages_from_one_client_holds_up_no_one_else() {
    let stack = start_with(&[]);
    // Sixteen connections of one client behind nginx ask for desktop QR
    // pages as fast as they are answered; a long `next` makes each code
    // large, so each drawing takes a while.
    let stop = Arc::new(AtomicBool::new(false));
    let drawn = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let next = format!("/{}", "a".repeat(600));
            let url = stack.url(&format!("/login?next={next}&via=scan"));
            let (stop, drawn) = (Arc::clone(&stop), Arc::clone(&drawn));
            thread::spawn(move || {
                let mut desktop = Browser::new();
                desktop.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0".into();
                while !stop.load(Ordering::Relaxed) {
                    let page = desktop.get_with(&url, &[("X-Real-IP", "192.0.2.50")]);
                    assert!(matches!(page.status, 200 | 503), "{}", page.status);
                    if page.status == 200 {
                        drawn.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let mut others = Browser::new();
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let (status, took) = timed_get(&mut others, &stack.url("/healthz"));
            assert_eq!(status, 200);
            took
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    for flooder in flood {
        flooder.join().unwrap();
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        drawn.load(Ordering::Relaxed) > 0,
        "QR pages were drawn meanwhile"
    );
    // Drawn on the loop, each page held everyone for its drawing, and the
    // probe waited behind a queue of them (40 to 65 ms here); drawn by
    // workers, it waits about 10 ms (for the flood's own 503 pages).
    assert!(
        median < Duration::from_millis(30),
        "/healthz during the flood: median {median:?}, all {times:?}"
    );
}

//! /jssdk/config over HTTP against the simulator: signatures the simulator
//! accepts as WeChat's client would, URLs refused before any ticket is
//! fetched, one getticket for many pages, a refetch after expiry, WeChat's
//! failures never kept.

use crate::support::{start_real, Browser, Stack};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The JS-SDK domain of `start_real`'s PUBLIC_URL: 127.0.0.1 (its port is
/// the app's, which real mode refuses to sign for: WeChat serves 80 and 443
/// only); pages here are on the standard port.
const PAGE: &str = "http://127.0.0.1/shop/item?id=7&from=singlemessage";

fn stack() -> Stack {
    start_real(&[])
}

fn config(stack: &Stack, url: &str) -> (u16, Value) {
    let resp = Browser::new().get(&stack.url(&format!(
        "/jssdk/config?url={}",
        wxauth_app::transport::http::encode_component(url)
    )));
    assert_eq!(
        resp.header("cache-control"),
        Some("no-store"),
        "{}",
        resp.body
    );
    let json = serde_json::from_str(&resp.body).unwrap_or_else(|_| panic!("JSON: {}", resp.body));
    (resp.status, json)
}

/// What WeChat's client says about a config on the page at `url` (the
/// simulator's stand-in check).
fn client_check(stack: &Stack, config: &Value, url: &str) -> Value {
    let query = wxauth_app::transport::http::encode_query(&[
        ("appId", config["appId"].as_str().unwrap()),
        ("timestamp", &config["timestamp"].to_string()),
        ("nonceStr", config["nonceStr"].as_str().unwrap()),
        ("signature", config["signature"].as_str().unwrap()),
        ("url", url),
    ]);
    let resp = Browser::new().get(&format!("{}/sim/jssdk/check?{query}", stack.sim_url));
    serde_json::from_str(&resp.body).unwrap()
}

#[test]
fn a_signature_passes_wechats_check_for_the_page_without_its_fragment() {
    let stack = stack();
    let (status, answer) = config(&stack, &format!("{PAGE}#/cart?x=1"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["url"], PAGE, "the fragment is dropped");
    assert_eq!(answer["appId"], "wx000000000000test");
    let timestamp = answer["timestamp"].as_i64().unwrap();
    assert_eq!(timestamp.to_string().len(), 10, "seconds");
    assert!(answer["nonceStr"].as_str().unwrap().len() >= 16);
    assert_eq!(client_check(&stack, &answer, PAGE)["errMsg"], "config:ok");
    // Signed for that page only.
    let other = "http://127.0.0.1/shop/item?id=8";
    assert_eq!(
        client_check(&stack, &answer, other)["errMsg"],
        "config:invalid signature"
    );
    // A fresh nonce each time.
    let (_, again) = config(&stack, PAGE);
    assert_ne!(again["nonceStr"], answer["nonceStr"]);
    assert_eq!(client_check(&stack, &again, PAGE)["errMsg"], "config:ok");
}

#[test]
fn urls_that_cannot_be_signed_are_400_and_fetch_no_ticket() {
    let stack = stack();
    for url in [
        "",
        "javascript:alert(1)",
        "https://evil.example/",
        "http://127.0.0.1.evil.example/",
        "http://127.0.0.1:8443/",
        "http%3A%2F%2F127.0.0.1%2F",
        "http://127.0.0.1/?a=1&amp;b=2",
    ] {
        let (status, answer) = config(&stack, url);
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(answer["error"], "bad_url");
        assert!(
            answer["reason"].as_str().unwrap().starts_with("url:"),
            "{answer}"
        );
    }
    let missing = Browser::new().get(&stack.url("/jssdk/config"));
    assert_eq!(missing.status, 400);
    assert_eq!(stack.calls("getticket"), 0);
    assert_eq!(stack.calls("stable_token") + stack.calls("token"), 0);
}

#[test]
fn many_pages_one_ticket_and_one_more_after_it_expires() {
    let stack = stack();
    for i in 0..10 {
        let (status, answer) = config(&stack, &format!("http://127.0.0.1/p/{i}"));
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(stack.calls("getticket"), 1);
    assert_eq!(stack.calls("stable_token"), 1);
    // Two hours later, on both clocks: one new fetch, then kept again.
    stack.app.clock.advance(7200);
    stack.control(&[("advance", "7200")]);
    for _ in 0..3 {
        let (status, answer) = config(&stack, PAGE);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(client_check(&stack, &answer, PAGE)["errMsg"], "config:ok");
    }
    assert_eq!(stack.calls("getticket"), 2);
}

#[test]
fn pages_asking_at_once_share_one_fetch() {
    let stack = stack();
    // WeChat slow: every page arrives while the one fetch is under way.
    stack.control(&[("latency", "300")]);
    let urls: Vec<String> = (0..8)
        .map(|i| {
            stack.url(&format!(
                "/jssdk/config?url={}",
                wxauth_app::transport::http::encode_component(&format!("http://127.0.0.1/p/{i}"))
            ))
        })
        .collect();
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| s.spawn(move || Browser::new().get(url).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(stack.calls("getticket"), 1, "one fetch for all");
}

#[test]
fn wechat_failing_is_502_and_nothing_is_kept() {
    let stack = stack();
    stack.control(&[("fault", "getticket:errcode:45009"), ("times", "1")]);
    let (status, answer) = config(&stack, PAGE);
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"], "wechat_error");
    assert_eq!(answer["errcode"], 45009);
    // Within a second the failure is answered from memory: a page reloaded
    // in a loop does not spend the quota. Then WeChat is asked again.
    let (status, again) = config(&stack, PAGE);
    assert_eq!((status, &again), (502, &answer));
    assert_eq!(stack.calls("getticket"), 1);
    std::thread::sleep(Duration::from_millis(1100));
    let (status, answer) = config(&stack, PAGE);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(client_check(&stack, &answer, PAGE)["errMsg"], "config:ok");
    assert_eq!(stack.calls("getticket"), 2);
}

#[test]
fn an_answer_without_a_usable_ticket_is_502_and_never_kept() {
    // A lying WeChat: errcode 0 but the fields of the wrong types, or no
    // JSON at all. Nothing is signed with it, nothing kept.
    for fault in ["badtypes", "garbage"] {
        let stack = stack();
        stack.control(&[("fault", &format!("getticket:{fault}")), ("times", "1")]);
        let (status, answer) = config(&stack, PAGE);
        assert_eq!(status, 502, "{fault}: {answer}");
        assert_eq!(answer["error"], "upstream_error", "{fault}");
        std::thread::sleep(Duration::from_millis(1100));
        let (status, answer) = config(&stack, PAGE);
        assert_eq!(status, 200, "{fault}: {answer}");
        assert_eq!(client_check(&stack, &answer, PAGE)["errMsg"], "config:ok");
        assert_eq!(stack.calls("getticket"), 2, "{fault}");
    }
}

#[test]
fn a_stale_base_token_is_read_again_once() {
    let stack = stack();
    let (status, _) = config(&stack, PAGE);
    assert_eq!(status, 200);
    // The ticket is due for a refresh (10 minutes before its end) while the
    // base token is still fresh, and WeChat calls that token stale once.
    stack.app.clock.advance(6700);
    stack.control(&[
        ("advance", "6700"),
        ("fault", "getticket:errcode:40001"),
        ("times", "1"),
    ]);
    let (status, answer) = config(&stack, PAGE);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(client_check(&stack, &answer, PAGE)["errMsg"], "config:ok");
    assert_eq!(
        stack.calls("getticket"),
        3,
        "the first, the stale one, the retry"
    );
    assert_eq!(stack.calls("stable_token"), 2, "the token read once more");
}

#[test]
fn a_page_of_a_js_domain_on_another_origin_may_read_the_answer() {
    let stack = start_real(&[("WXAUTH_JS_DOMAINS", "127.0.0.1,m.example.com")]);
    let url = stack.url(&format!(
        "/jssdk/config?url={}",
        wxauth_app::transport::http::encode_component("https://m.example.com/a")
    ));
    let mut browser = Browser::new();
    let resp = browser.get_with(&url, &[("Origin", "https://m.example.com")]);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://m.example.com")
    );
    let other = browser.get_with(&url, &[("Origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn a_thousand_config_requests_make_two_wechat_calls() {
    let stack = stack();
    let urls: Vec<String> = (0..8)
        .map(|t| {
            stack.url(&format!(
                "/jssdk/config?url={}",
                wxauth_app::transport::http::encode_component(&format!("http://127.0.0.1/t/{t}"))
            ))
        })
        .collect();
    let ok = std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| {
                s.spawn(move || {
                    let mut browser = Browser::new();
                    (0..125).filter(|_| browser.get(url).status == 200).count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(ok, 1000);
    // One base token, one ticket: WeChat's whole share of 1,000 pages.
    assert_eq!(
        (stack.calls("stable_token"), stack.calls("getticket")),
        (1, 1)
    );
}

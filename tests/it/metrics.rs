//! GET /metrics (WXAUTH_METRICS_LISTEN): a login, a declined login, a 404
//! and pushes move the counters by exactly what they did, the WeChat call
//! counters agree with the simulator's own, no label comes from a request,
//! and every line is a comment or `name{labels} value`.
//!
//! The counters are one table per process, and this crate's tests run side
//! by side: the test that checks exact counts runs in a process of its own
//! (this test binary again, with only that test).

use crate::support::{start_with, Browser};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wxauth_app::web::metrics_service;

/// Set in the process that runs `counted_alone`.
const ALONE: &str = "WXAUTH_METRICS_ALONE";

#[test]
fn a_login_a_404_and_pushes_move_the_counters_exactly() {
    let dir = std::env::temp_dir().join(format!("wxauth-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "metrics::counted_alone",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ALONE, "1")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("run this test binary again");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("counted_alone did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = format!(
        "{}\n{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{printed}");
    assert!(printed.contains("1 passed"), "it did not run: {printed}");
}

#[test]
#[ignore = "run by a_login_a_404_and_pushes_move_the_counters_exactly, alone in its process"]
fn counted_alone() {
    // Beside other tests (`cargo test -- --ignored`) the counts would not be exact.
    if std::env::var_os(ALONE).is_none() {
        return;
    }
    let stack = start_with(&[]);
    let metrics = metrics_service::start("127.0.0.1:0".parse().unwrap(), Duration::from_secs(10))
        .expect("bind the metrics listener");
    let url = format!("http://{}/metrics", metrics.addr);
    let before = scrape(&url);

    let mut browser = Browser::new();
    let landed = browser.login_as(&stack, 0);
    assert_eq!(landed.status, 302, "{}", landed.body);
    let mut declining = Browser::new();
    let authorize = declining.start_login(&stack, None);
    let callback = declining.consent(&authorize, 0, false);
    assert_eq!(declining.get(&callback).status, 403);
    assert_eq!(browser.get(&stack.url("/nonexistent-XYZ")).status, 404);
    let pushed = stack.push(&[("kind", "subscribe"), ("repeat", "2")]);
    assert_eq!(pushed["answers"][1]["status"], 200, "{pushed}");
    let forged = stack.push(&[("kind", "CLICK"), ("key", "K"), ("bad_signature", "1")]);
    assert_eq!(forged["answers"][0]["status"], 403, "{forged}");

    let text = get(&url);
    assert!(!text.contains("XYZ"), "a request's path became a label");
    let after = parse(&text);
    let moved = |series: &str| {
        let was = before.get(series).copied().unwrap_or(0.0);
        let is = after.get(series).copied().unwrap_or(0.0);
        is - was
    };
    let expected = [
        ("wxauth_logins_started_total{app=\"account\"}", 2.0),
        ("wxauth_logins_started_total{app=\"website\"}", 0.0),
        ("wxauth_logins_completed_total{app=\"account\"}", 1.0),
        ("wxauth_logins_failed_total{reason=\"declined\"}", 1.0),
        ("wxauth_logins_failed_total{reason=\"bad_state\"}", 0.0),
        ("wxauth_requests_total{route=\"/login\",class=\"3xx\"}", 2.0),
        (
            "wxauth_requests_total{route=\"/callback\",class=\"3xx\"}",
            1.0,
        ),
        (
            "wxauth_requests_total{route=\"/callback\",class=\"4xx\"}",
            1.0,
        ),
        ("wxauth_requests_total{route=\"other\",class=\"4xx\"}", 1.0),
        // The simulator serves through the same loop, uncounted.
        ("wxauth_requests_total{route=\"other\",class=\"2xx\"}", 0.0),
        (
            "wxauth_requests_total{route=\"/wechat\",class=\"2xx\"}",
            2.0,
        ),
        (
            "wxauth_requests_total{route=\"/wechat\",class=\"4xx\"}",
            1.0,
        ),
        ("wxauth_request_duration_seconds_count", 8.0),
        ("wxauth_request_duration_seconds_bucket{le=\"+Inf\"}", 8.0),
        // A retry is answered, not acted on again.
        ("wxauth_pushes_total{kind=\"subscribe\"}", 1.0),
        ("wxauth_pushes_total{kind=\"CLICK\"}", 0.0),
        ("wxauth_pushes_refused_total{reason=\"signature\"}", 1.0),
    ];
    for (series, delta) in expected {
        assert_eq!(moved(series), delta, "{series}\n{text}");
    }
    for (sim, endpoint) in [
        ("access_token", "sns/oauth2/access_token"),
        ("userinfo", "sns/userinfo"),
    ] {
        let calls = stack.calls(sim) as f64;
        assert_eq!(calls, 1.0, "{sim}");
        let ok = format!("wxauth_wechat_calls_total{{endpoint=\"{endpoint}\",outcome=\"ok\"}}");
        assert_eq!(moved(&ok), calls, "{ok}\n{text}");
        let timed = format!("wxauth_wechat_call_duration_seconds_count{{endpoint=\"{endpoint}\"}}");
        assert_eq!(moved(&timed), calls, "{timed}\n{text}");
    }
    assert_eq!(after["wxauth_sessions"], 1.0);
    assert_eq!(after["wxauth_calls_in_flight"], 0.0);
    assert_eq!(after["wxauth_calls_queued"], 0.0);
    assert!(!after.contains_key("wxauth_redis_up"), "no Redis here");
    assert!(after
        .keys()
        .any(|k| k.starts_with("wxauth_build_info{version=")));
    assert!(after["wxauth_start_time_seconds"] > 1.7e9);

    // Nothing else on that listener.
    let mut other = Browser::new();
    let url_404 = format!("http://{}/", metrics.addr);
    assert_eq!(other.get(&url_404).status, 404);
    assert_eq!(other.get(&format!("{url}x")).status, 404);
}

fn get(url: &str) -> String {
    let resp = Browser::new().get(url);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    resp.body
}

fn scrape(url: &str) -> BTreeMap<String, f64> {
    parse(&get(url))
}

/// The samples, by `name{labels}`, read strictly: every line is `# HELP`
/// or `# TYPE` of the family its samples follow, or `name{labels} value`
/// with a name of [a-z_:], labels `name="value"` and a number.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut family = String::new();
    assert!(text.ends_with('\n'), "the last line ends with a newline");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap(), words.next().unwrap());
            assert!(matches!(kind, "HELP" | "TYPE"), "{line}");
            if kind == "TYPE" {
                assert_eq!(name, family, "TYPE follows its HELP: {line}");
                let kind = words.next().unwrap();
                assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
                assert!(kind != "counter" || name.ends_with("_total"), "{line}");
            }
            family = name.to_string();
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').expect(line)),
            None => (series, ""),
        };
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{line}"
        );
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| *base == family)
            .unwrap_or(name);
        assert_eq!(base, family, "a sample outside its family: {line}");
        check_labels(labels, line);
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

/// `a="x",b="y"`: names of [a-z_], values quoted with only \\, \" and \n escaped.
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{line}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(matches!(escaped, Some('\\' | '"' | 'n')), "{line}");
                }
                Some((at, '"')) => break at,
                Some(_) => {}
                None => panic!("an unterminated label value: {line}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

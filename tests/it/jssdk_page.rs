//! The demo's JS-SDK example page over HTTP: there in demo mode with the
//! simulator let into its CSP (and only there), 404 in real mode, and the
//! helper scripts served as JavaScript. tests/it/browser.rs runs them.

use crate::support::{origin_of, start, start_real, Browser, Resp};

/// Every Content-Security-Policy header of an answer.
fn policies(resp: &Resp) -> Vec<&str> {
    resp.headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-security-policy"))
        .map(|(_, value)| value.as_str())
        .collect()
}

/// The `src` of every `<script>` in `html`, in order; panics on an inline one.
fn script_sources(html: &str) -> Vec<String> {
    html.split("<script")
        .skip(1)
        .map(|tag| {
            let (attributes, rest) = tag.split_once('>').unwrap();
            assert!(
                rest.starts_with("</script>"),
                "an inline script: <script{tag}"
            );
            crate::support::attribute(attributes, "src")
        })
        .collect()
}

#[test]
fn the_example_page_lets_the_simulator_in_only_there() {
    let stack = start();
    let mut browser = Browser::new();
    let page = browser.get(&stack.url("/jssdk/example"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    for shown in [
        "<title>JS-SDK 示例 - wxauth</title>",
        "id=\"jssdk-status\"",
        "正在调用 wx.config…",
        "id=\"jssdk-check\"",
        // The snippet to copy: WeChat's real script, then wxauth's.
        "&lt;script src=\"https://res.wx.qq.com/open/js/jweixin-1.6.0.js\"&gt;",
        &format!(
            "&lt;script src=\"{}/static/wxauth-jssdk.js\"",
            stack.app_url
        ),
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    // The simulator's stand-in for jweixin.js, then the helper, then the
    // page's own script; nothing inline.
    assert_eq!(
        script_sources(&page.body),
        [
            format!("{}/sim/jweixin.js", stack.sim_url),
            "/static/wxauth-jssdk.js".to_string(),
            "/static/jssdk-example.js".to_string(),
        ]
    );
    let sim = origin_of(&stack.sim_url);
    let csp = policies(&page);
    assert_eq!(
        csp.len(),
        1,
        "one policy, not the strict one beside it: {csp:?}"
    );
    for directive in [
        format!("script-src 'self' {sim};"),
        format!("connect-src 'self' {sim};"),
        "default-src 'none';".to_string(),
        "frame-ancestors 'none';".to_string(),
    ] {
        assert!(csp[0].contains(&directive), "{directive}: {}", csp[0]);
    }
    assert!(!csp[0].contains("unsafe"), "{}", csp[0]);

    // The pages around it keep the strict policy.
    for path in ["/", "/login", "/jssdk/config?url=x", "/nope"] {
        let resp = browser.get(&stack.url(path));
        let csp = policies(&resp);
        assert_eq!(csp.len(), 1, "{path}: {csp:?}");
        assert!(
            csp[0].contains("script-src 'self'; connect-src 'self';") && !csp[0].contains(&sim),
            "{path}: {}",
            csp[0]
        );
    }
    // The demo's home page links to it.
    let home = browser.get(&stack.url("/"));
    assert!(
        home.body.contains("href=\"/jssdk/example\""),
        "{}",
        home.body
    );
}

#[test]
fn outside_demo_mode_there_is_no_example_page() {
    let stack = start_real(&[]);
    let mut browser = Browser::new();
    let page = browser.get(&stack.url("/jssdk/example"));
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(!page.body.contains("JS-SDK 示例"));
    let csp = policies(&page);
    assert_eq!(csp.len(), 1, "{csp:?}");
    assert!(!csp[0].contains(&origin_of(&stack.sim_url)), "{}", csp[0]);
    let home = browser.get(&stack.url("/"));
    assert!(!home.body.contains("/jssdk/example"), "{}", home.body);
    // The helper itself is for real pages: served in every mode.
    let helper = browser.get(&stack.url("/static/wxauth-jssdk.js"));
    assert_eq!(helper.status, 200);
}

#[test]
fn the_helper_scripts_are_served_as_javascript() {
    let stack = start();
    let mut browser = Browser::new();
    for (name, holds) in [
        ("wxauth-jssdk.js", "window.wxauthJssdk"),
        ("jssdk-example.js", "wx.checkJsApi"),
    ] {
        let resp = browser.get(&stack.url(&format!("/static/{name}")));
        assert_eq!(resp.status, 200, "{name}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{name}"
        );
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(resp.body.contains(holds), "{name}");
        // Nothing a strict CSP would refuse, nothing that writes markup.
        for never in ["eval(", "new Function", "innerHTML", "document.write"] {
            assert!(!resp.body.contains(never), "{name}: {never}");
        }
    }
    // Under a path prefix too: the helper finds wxauth from its own URL.
    let prefixed = start_real(&[("WXAUTH_PUBLIC_URL", "{app}/wx")]);
    let resp = browser.get(&prefixed.url("/wx/static/wxauth-jssdk.js"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

//! `/jssdk/config`: what a page inside WeChat passes to `wx.config`, signed
//! with the account's jsapi_ticket (wechat/jsapi.rs, docs/wechat.md §11).
//! The page sends its own URL; a URL that cannot be signed is refused before
//! any ticket is fetched. The ticket is fetched on a worker, one fetch at a
//! time, and kept: most requests are answered at once, on the loop.

use crate::log;
use crate::random;
use crate::transport::host::HttpUrl;
use crate::transport::http::{Reply, Req};
use crate::web::app::{App, Step};
use crate::wechat::client::WechatError;
use crate::wechat::jsapi::{page_url, signature};
use serde_json::json;

/// GET /jssdk/config?url=URL: `{"appId","timestamp","nonceStr","signature"}`
/// for `wx.config` on the page at URL (and `"url"`, the text signed, to
/// compare with the page's when WeChat says "invalid signature").
pub fn config(app: &mut App, req: &Req) -> Step {
    let hosts = hosts(app);
    let url = match page_url(req.query("url").unwrap_or(""), &hosts, app.config().demo) {
        Ok(url) => url,
        Err(reason) => {
            return Ok(answer(
                Reply::json(&json!({ "error": "bad_url", "reason": reason })).with_status(400),
                req,
                &hosts,
            )
            .into())
        }
    };
    if let Some(ticket) = app.jsapi_ticket() {
        return Ok(answer(signed(app, &ticket, &url), req, &hosts).into());
    }
    let req_for_answer = req.clone();
    app.fetch_jsapi_ticket(req, move |app, fetched| {
        let reply = match fetched {
            Ok(ticket) => signed(app, &ticket, &url),
            Err(error) => {
                log::warn(&format!("jssdk: jsapi_ticket: {error}"));
                upstream_error(&error)
            }
        };
        Ok(answer(reply, &req_for_answer, &hosts).into())
    })
}

/// The hosts whose pages may be signed for: WXAUTH_JS_DOMAINS, and in the
/// demo the host the browser used (it follows the browser's host).
fn hosts(app: &App) -> Vec<String> {
    let mut hosts = app.config().js_domains.clone();
    if app.config().demo {
        if let Some(url) = HttpUrl::parse(&app.site().url) {
            let host = url.authority().host().to_ascii_lowercase();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// The config for `url`: a fresh nonce from the OS CSPRNG, the time in
/// seconds (not milliseconds, a classic "invalid signature").
fn signed(app: &App, ticket: &str, url: &str) -> Reply {
    let (timestamp, nonce) = (app.now(), random::token(16));
    Reply::json(&json!({
        "appId": app.config().appid,
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": signature(ticket, &nonce, timestamp, url),
        "url": url,
    }))
}

/// WeChat failing: 502 with its errcode (the errmsg is WeChat's English,
/// the errcode what the docs index), 504 on a timeout. Nothing is kept.
fn upstream_error(error: &WechatError) -> Reply {
    match error {
        WechatError::Timeout => {
            Reply::json(&json!({ "error": "upstream_timeout" })).with_status(504)
        }
        WechatError::Api { errcode, .. } => {
            Reply::json(&json!({ "error": "wechat_error", "errcode": errcode })).with_status(502)
        }
        _ => Reply::json(&json!({ "error": "upstream_error" })).with_status(502),
    }
}

/// Every answer (never cached: the security headers add `no-store`) is
/// readable by a page of a JS-SDK domain on another origin than wxauth's.
/// A signature is of no use to another site: WeChat's client checks it
/// against the page it runs on and that page's domain.
fn answer(reply: Reply, req: &Req, hosts: &[String]) -> Reply {
    let reply = reply.with_header("Vary", "Origin");
    let allowed = req.header("origin").filter(|origin| {
        HttpUrl::parse(origin).is_some_and(|url| {
            let host = url.authority().host().to_ascii_lowercase();
            hosts.contains(&host) && url.path().is_empty()
        })
    });
    match allowed {
        Some(origin) => reply.with_header("Access-Control-Allow-Origin", origin),
        None => reply,
    }
}

use crate::transport::http::SECURITY_HEADERS;
use crate::web::error::AppError;
use minijinja::context;

/// GET /jssdk/example, in demo mode only (404 otherwise): static/wxauth-jssdk.js
/// at work on a page, with the simulator's stand-in for WeChat's
/// jweixin.js. The page's CSP lets the simulator in (`example_csp`): the
/// stand-in is its script, and it asks the simulator whether the signature
/// holds. Every other page keeps the strict one (app.rs,
/// `with_security_headers`, leaves a policy a reply has alone).
pub fn example(app: &mut App, _req: &Req) -> Result<Reply, AppError> {
    if !app.config().demo {
        return Err(AppError::NotFound);
    }
    let sim_origin = HttpUrl::parse(&app.site().open_base).map(|url| url.origin());
    let page = app.page(
        "jssdk_example.html",
        context! { site_url => app.site().url.as_str() },
    )?;
    Ok(match sim_origin {
        Some(origin) => page.with_header("Content-Security-Policy", &example_csp(&origin)),
        // No simulator to name: the strict policy, and the page says wx is missing.
        None => page,
    })
}

/// The strict policy (`SECURITY_HEADERS`) with `sim_origin` added to
/// script-src and connect-src, and nothing else changed.
fn example_csp(sim_origin: &str) -> String {
    let strict = SECURITY_HEADERS
        .iter()
        .find(|(name, _)| *name == "Content-Security-Policy")
        .map_or("", |(_, value)| *value);
    strict
        .split("; ")
        .map(|directive| match directive {
            "script-src 'self'" | "connect-src 'self'" => format!("{directive} {sim_origin}"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::{Config, RawConfig};
    use crate::transport::service::{Outcome, Service};

    const STRICT: &str = SECURITY_HEADERS[0].1;

    #[test]
    fn the_example_policy_adds_the_simulator_to_scripts_and_fetches_only() {
        let csp = example_csp("http://127.0.0.1:8081");
        assert_eq!(
            csp,
            STRICT
                .replace(
                    "script-src 'self'",
                    "script-src 'self' http://127.0.0.1:8081"
                )
                .replace(
                    "connect-src 'self'",
                    "connect-src 'self' http://127.0.0.1:8081"
                )
        );
        assert_eq!(csp.matches("http://127.0.0.1:8081").count(), 2, "{csp}");
    }

    /// A demo app, as `wxauth demo` builds it (nothing listens).
    fn demo_app() -> App {
        let env = [("WXAUTH_DEMO", "1"), ("WXAUTH_LOG", "error")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let raw = RawConfig::from_env_and_args(env, &[]).unwrap();
        App::new(Config::from_raw(&raw).unwrap(), Clock::new()).unwrap()
    }

    /// The Content-Security-Policy headers of the app's reply to GET `path`
    /// (None when the request waits for a call or a store).
    fn policies(app: &mut App, path: &str) -> Option<Vec<String>> {
        let req = Req::fake("GET", path, &[("host", "127.0.0.1:8080")]);
        match app.handle(&req) {
            Outcome::Reply(reply) => Some(
                reply
                    .headers
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("content-security-policy"))
                    .map(|(_, value)| value.clone())
                    .collect(),
            ),
            _ => None,
        }
    }

    #[test]
    fn only_the_example_page_loosens_the_policy() {
        let mut app = demo_app();
        let example = policies(&mut app, "/jssdk/example").unwrap();
        assert_eq!(example.len(), 1, "one policy, not the strict one beside it");
        assert!(
            example[0].contains("script-src 'self' http://"),
            "{example:?}"
        );
        let mut paths: Vec<String> = crate::web::routes::ROUTES
            .iter()
            .map(|(_, path, _)| path.to_string())
            .filter(|path| path != "/jssdk/example")
            .collect();
        paths.extend(crate::web::assets::names().map(|name| format!("/static/{name}")));
        paths.extend(["/nope".into(), "/jssdk/config?url=x".into()]);
        let mut answered = 0;
        for path in &paths {
            // A request that waits (a call to WeChat) is finished by the same
            // `App::finish` later; the others say enough.
            if let Some(found) = policies(&mut app, path) {
                assert_eq!(found, [STRICT], "{path}");
                answered += 1;
            }
        }
        // All but /login: the QR page draws its code on a worker.
        assert!(answered + 1 >= paths.len(), "{answered} of {}", paths.len());
    }
}

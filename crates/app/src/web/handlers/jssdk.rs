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

/// Every answer: never cached (a signature holds a nonce and a time), and
/// readable by a page of a JS-SDK domain on another origin than wxauth's.
/// A signature is of no use to another site: WeChat's client checks it
/// against the page it runs on and that page's domain.
fn answer(reply: Reply, req: &Req, hosts: &[String]) -> Reply {
    let reply = reply
        .with_header("Cache-Control", "no-store")
        .with_header("Vary", "Origin");
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

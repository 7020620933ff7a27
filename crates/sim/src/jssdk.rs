//! WeChat's client side of the JS-SDK: what `wx.config` checks inside the
//! WeChat app (`/sim/jssdk/check`), and a stand-in for `jweixin-1.6.0.js`
//! (`/sim/jweixin.js`) that asks it. Not an API a server calls: a page does,
//! so answers are readable from any origin. The ticket side
//! (cgi-bin/ticket/getticket) is in cgi.rs and ticket.rs.
//!
//! The signature is computed here, not with the app's
//! `wxauth_app::wechat::jsapi::signature`: the simulator plays WeChat's
//! client and must judge the app's signatures on its own. Sharing the app's
//! function would let it agree with the app's mistakes (as for the menu
//! rules, menu.rs).

use super::link::on_our_domain;
use super::Sim;
use sha1::{Digest, Sha1};
use wxauth_app::transport::host::HttpUrl;
use wxauth_app::transport::http::{Reply, Req};

/// What `wx.config` ends with: WeChat's `errMsg` texts. "invalid url
/// domain" and "invalid signature" are the ones WeChat's clients show; for a
/// wrong appId the simulator writes it like newer clients' `config:fail,…`.
const CONFIG_OK: &str = "config:ok";
const BAD_APPID: &str = "config:fail,invalid appid";
const BAD_DOMAIN: &str = "config:invalid url domain";
const BAD_SIGNATURE: &str = "config:invalid signature";

/// The stand-in for jweixin-1.6.0.js.
const JWEIXIN_JS: &str = include_str!("../static/jweixin.js");

/// `GET /sim/jssdk/check?appId=&timestamp=&nonceStr=&signature=&url=`:
/// `{"errMsg": …, "url": the URL judged}`, always HTTP 200 (a failed
/// config is the page's business, as in WeChat, where the server never
/// learns of it).
pub(super) fn check(sim: &mut Sim, req: &Req) -> Reply {
    // The client never signs a fragment (location.href.split('#')[0]).
    let url = req.query("url").unwrap_or("");
    let url = url.split('#').next().unwrap_or_default();
    let err_msg = judge(sim, req, url);
    Reply::json(&serde_json::json!({ "errMsg": err_msg, "url": url }))
        .with_header("Access-Control-Allow-Origin", "*")
        .with_header("Cache-Control", "no-store")
}

/// `GET /sim/jweixin.js`: the `wx` object for pages in the demo and tests.
pub(super) fn jweixin(_sim: &mut Sim, _req: &Req) -> Reply {
    Reply::with_body(
        200,
        "application/javascript; charset=utf-8",
        JWEIXIN_JS.as_bytes().to_vec(),
    )
    .with_header("Cache-Control", "no-cache")
    .with_header("Access-Control-Allow-Origin", "*")
}

/// WeChat's order: the appId, then the page's domain, then the signature.
fn judge(sim: &Sim, req: &Req, url: &str) -> &'static str {
    let appid = sim.config.appid.as_str();
    if req.query("appId") != Some(appid) {
        return BAD_APPID;
    }
    if !HttpUrl::parse(url).is_some_and(|u| on_our_domain(&u, &sim.config)) {
        return BAD_DOMAIN;
    }
    // Milliseconds (13 digits), a classic mistake, never match.
    let Some(timestamp) = req.query("timestamp").filter(|t| is_seconds(t)) else {
        return BAD_SIGNATURE;
    };
    let nonce = req.query("nonceStr").unwrap_or("");
    let given = req.query("signature").unwrap_or("");
    let now = sim.clock.now();
    let signed = sim
        .jsapi_tickets
        .valid(appid, now)
        .any(|ticket| signature(ticket, nonce, timestamp, url) == given);
    if signed {
        CONFIG_OK
    } else {
        BAD_SIGNATURE
    }
}

/// Ten decimal digits: Unix seconds, as WeChat wants them.
fn is_seconds(timestamp: &str) -> bool {
    timestamp.len() == 10 && timestamp.bytes().all(|b| b.is_ascii_digit())
}

/// Lowercase hex SHA-1 of `jsapi_ticket=T&noncestr=N&timestamp=S&url=U`:
/// the keys in ASCII order, every value raw (not URL-escaped). Compared as
/// is: an upper-case hex signature is not accepted.
fn signature(ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    let text = format!("jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}");
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sim;
    use crate::SimConfig;
    use wxauth_app::transport::http::encode_query;

    const APPID: &str = "wxSIMAPPID0000001";
    const PAGE: &str = "http://127.0.0.1:8080/jssdk?x=1&y=%E4%B8%AD";

    #[test]
    fn wechats_published_example_reproduces() {
        let ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
        assert_eq!(
            signature(
                ticket,
                "Wm3WZYTPz0wzccnW",
                "1414587457",
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }

    /// A ticket as the app would get it, through a base token.
    fn ticket(s: &mut Sim) -> String {
        let url =
            "/cgi-bin/token?grant_type=client_credential&appid=wxSIMAPPID0000001&secret=simsecret";
        let token = json(&s.route(&Req::fake("GET", url, &[])))["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        let url = format!("/cgi-bin/ticket/getticket?access_token={token}&type=jsapi");
        json(&s.route(&Req::fake("GET", &url, &[])))["ticket"]
            .as_str()
            .expect("a ticket")
            .to_string()
    }

    fn json(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("JSON")
    }

    /// What the check answers for these wx.config fields.
    fn config(s: &mut Sim, appid: &str, timestamp: &str, sig: &str, url: &str) -> Reply {
        let query = encode_query(&[
            ("appId", appid),
            ("timestamp", timestamp),
            ("nonceStr", "Wm3WZYTPz0wzccnW"),
            ("signature", sig),
            ("url", url),
        ]);
        s.route(&Req::fake("GET", &format!("/sim/jssdk/check?{query}"), &[]))
    }

    fn err_msg(reply: &Reply) -> String {
        json(reply)["errMsg"].as_str().unwrap_or("").to_string()
    }

    #[test]
    fn a_correct_signature_passes_and_is_readable_from_any_page() {
        let mut s = sim();
        let t = ticket(&mut s);
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", "1414587457", PAGE);
        let r = config(&mut s, APPID, "1414587457", &sig, PAGE);
        assert_eq!(
            json(&r),
            serde_json::json!({"errMsg": "config:ok", "url": PAGE})
        );
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(r.header("Cache-Control"), Some("no-store"));
        // The fragment is not part of the URL judged.
        let r = config(&mut s, APPID, "1414587457", &sig, &format!("{PAGE}#/a?b"));
        assert_eq!(
            (err_msg(&r), json(&r)["url"].clone()),
            (CONFIG_OK.into(), PAGE.into())
        );
    }

    #[test]
    fn wrong_fields_fail_in_wechats_order() {
        let mut s = sim();
        let t = ticket(&mut s);
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", "1414587457", PAGE);
        let sig = sig.as_str();
        let upper = sig.to_uppercase();
        let shared = format!("{PAGE}&from=singlemessage");
        let other = "http://localhost:8080/jssdk?x=1&y=%E4%B8%AD";
        let evil = "http://127.0.0.1.evil.example/";
        for (appid, ts, sig, url, expected) in [
            ("wxOTHER", "1414587457", sig, PAGE, BAD_APPID),
            ("", "1414587457", sig, PAGE, BAD_APPID),
            // Appid before domain, domain before signature.
            ("wxOTHER", "1414587457", "x", other, BAD_APPID),
            (APPID, "1414587457", "x", other, BAD_DOMAIN),
            (APPID, "1414587457", sig, other, BAD_DOMAIN),
            (APPID, "1414587457", sig, "127.0.0.1/jssdk", BAD_DOMAIN),
            (APPID, "1414587457", sig, evil, BAD_DOMAIN),
            (APPID, "1414587457", sig, "", BAD_DOMAIN),
            (APPID, "1414587458", sig, PAGE, BAD_SIGNATURE),
            (APPID, "1414587457", upper.as_str(), PAGE, BAD_SIGNATURE),
            // The URL a share adds parameters to is another URL.
            (APPID, "1414587457", sig, shared.as_str(), BAD_SIGNATURE),
            (APPID, "1414587457", "", PAGE, BAD_SIGNATURE),
        ] {
            let r = config(&mut s, appid, ts, sig, url);
            assert_eq!(err_msg(&r), expected, "{appid} {ts} {url}");
            assert_eq!(r.status, 200);
        }
    }

    #[test]
    fn a_millisecond_timestamp_never_passes() {
        let mut s = sim();
        let t = ticket(&mut s);
        let ms = "1414587457000";
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", ms, PAGE);
        assert_eq!(
            err_msg(&config(&mut s, APPID, ms, &sig, PAGE)),
            BAD_SIGNATURE
        );
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", "141458745", PAGE);
        assert_eq!(
            err_msg(&config(&mut s, APPID, "141458745", &sig, PAGE)),
            BAD_SIGNATURE
        );
    }

    #[test]
    fn a_signature_holds_while_its_ticket_lives() {
        let mut s = sim();
        let t = ticket(&mut s);
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", "1414587457", PAGE);
        s.clock.advance(crate::ticket::TICKET_TTL - 1);
        assert_eq!(
            err_msg(&config(&mut s, APPID, "1414587457", &sig, PAGE)),
            CONFIG_OK
        );
        s.clock.advance(1);
        assert_eq!(
            err_msg(&config(&mut s, APPID, "1414587457", &sig, PAGE)),
            BAD_SIGNATURE
        );
    }

    #[test]
    fn in_demo_mode_pages_of_the_demo_app_pass_the_domain_check() {
        let mut s = Sim::new(SimConfig {
            demo_app: Some("127.0.0.1:8080".parse().unwrap()),
            ..sim().config
        });
        let t = ticket(&mut s);
        let page = "http://localhost:8080/jssdk";
        let sig = signature(&t, "Wm3WZYTPz0wzccnW", "1414587457", page);
        assert_eq!(
            err_msg(&config(&mut s, APPID, "1414587457", &sig, page)),
            CONFIG_OK
        );
        // Not the demo's port, nor https: not the demo app.
        for url in [
            "http://localhost:9999/jssdk",
            "https://localhost:8080/jssdk",
        ] {
            assert_eq!(
                err_msg(&config(&mut s, APPID, "1414587457", &sig, url)),
                BAD_DOMAIN
            );
        }
    }

    #[test]
    fn the_js_stand_in_is_served_as_javascript() {
        let r = sim().route(&Req::fake("GET", "/sim/jweixin.js", &[]));
        assert_eq!(
            (r.status, r.header("Content-Type")),
            (200, Some("application/javascript; charset=utf-8"))
        );
        let js = String::from_utf8(r.body).expect("UTF-8");
        for part in [
            "window.wx",
            "config",
            "ready",
            "error",
            "checkJsApi",
            "updateAppMessageShareData",
            "updateTimelineShareData",
            "location.href.split('#')[0]",
            "document.currentScript",
            "/sim/jssdk/check",
        ] {
            assert!(js.contains(part), "{part} not in jweixin.js");
        }
        assert!(!js.contains("eval(") && !js.contains("alert("));
    }
}

//! The JS-SDK (docs/wechat.md §11): the signature `wx.config` needs, which
//! page URLs may have one, and the jsapi_ticket it is made from, cached.
//!
//! The ticket is fetched with the base access_token (account.rs) and kept
//! until shortly before it expires. WeChat hands out the *same* ticket while
//! it is valid, with a fresh-looking `expires_in`: a re-fetch that returns
//! the ticket already kept keeps the expiry it had, so its life is never
//! overstated. An empty ticket or an errcode is never kept.

use crate::clock::Clock;
use crate::transport::host::HttpUrl;
use crate::wechat::account::{BaseToken, TokenShelf};
use crate::wechat::client::{WechatClient, WechatError};
use sha1::{Digest, Sha1};

/// Refresh this long before the ticket's expiry, so no page gets a
/// signature that dies while it loads.
const REFRESH_AHEAD: i64 = 600;
/// Past this close to the expiry a ticket is not signed with at all.
const SAFETY: i64 = 60;
/// After WeChat gave back the ticket already kept, ask again this much later.
const RETRY_SAME: i64 = 60;
/// How long a ticket handed back again near its end is trusted when its
/// first expiry is already past by our clock: WeChat still calls it valid.
const SAME_AT_THE_END: i64 = 2 * SAFETY;

/// WeChat's JS-SDK signature: lowercase hex SHA-1 of
/// `jsapi_ticket=T&noncestr=N&timestamp=S&url=U`, the keys in this (ASCII)
/// order and every value raw, not URL-escaped.
pub fn signature(ticket: &str, noncestr: &str, timestamp: i64, url: &str) -> String {
    let text = format!("jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}");
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL to sign for a page that sent `raw` (its `location.href`): the
/// text before any `#`, exactly as sent (WeChat's client signs the page's own
/// URL, byte for byte). Refused, with a reason a developer can act on, when
/// it is not an http(s) URL of one of `hosts`, or carries the marks of the
/// usual mistakes. `any_port`: the demo, whose pages are not on 80 or 443.
pub fn page_url(raw: &str, hosts: &[String], any_port: bool) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("url: required: the page's location.href without its #fragment".into());
    }
    let url = raw.split('#').next().unwrap_or_default();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http%3a") || lower.starts_with("https%3a") {
        return Err(
            "url: still percent-encoded after one decoding: encode it once \
             (encodeURIComponent), not twice"
                .into(),
        );
    }
    if url.contains("&amp;") {
        return Err(
            "url: holds &amp;, an HTML-escaped &: sign location.href as it is, not as \
             written in HTML"
                .into(),
        );
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("url: holds spaces or control characters; send location.href".into());
    }
    let parsed = HttpUrl::parse(url).ok_or_else(|| {
        format!(
            "url: not an http or https URL: {}",
            url.chars().take(40).collect::<String>()
        )
    })?;
    let host = parsed.authority().host();
    if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return Err(format!(
            "url: {host} is not a JS-SDK domain here (WXAUTH_JS_DOMAINS: {}); add it there and \
             in the console's JS接口安全域名",
            hosts.join(",")
        ));
    }
    if !any_port && parsed.port().is_some_and(|p| p != 80 && p != 443) {
        return Err(format!(
            "url: port {}: WeChat's JS-SDK works on 80 and 443 only",
            parsed.port().unwrap_or_default()
        ));
    }
    if parsed.path().is_empty() {
        // What a browser's location.href always has: `http://qq.com/`.
        return Err("url: no path: location.href ends the host with /".into());
    }
    Ok(url.to_string())
}

/// What a JS-SDK signature needs fetched: the base token, then with it the
/// ticket. The loop moves both to the worker that fetches and gets them
/// back with the answer: one fetch at a time, and no lock.
#[derive(Default)]
pub struct JsapiCaches {
    pub base: BaseToken,
    pub ticket: JsapiTicket,
}

impl JsapiCaches {
    /// Fetches the ticket (`JsapiTicket::get`). Blocks: for a worker.
    pub fn fetch(&mut self, client: &WechatClient, clock: &Clock) -> Result<String, WechatError> {
        self.ticket.get(&mut self.base, client, clock)
    }
}

/// A ticket kept, when it expires, and when to ask WeChat again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kept {
    ticket: String,
    expires: i64,
    /// Not before this even when a refresh is due: WeChat just gave the
    /// same ticket back.
    retry_after: i64,
}

/// The cached jsapi_ticket. Never shown, never logged.
#[derive(Default)]
pub struct JsapiTicket {
    kept: Option<Kept>,
    /// Where instances sharing a store keep it (WXAUTH_REDIS_URL).
    shelf: Option<Box<dyn TokenShelf + Send>>,
    /// How many times WeChat was asked for a ticket (tests, and the log).
    pub fetches: u32,
}

impl JsapiTicket {
    /// A cache whose ticket is shared through `shelf`.
    pub fn shared(shelf: Box<dyn TokenShelf + Send>) -> JsapiTicket {
        JsapiTicket {
            shelf: Some(shelf),
            ..JsapiTicket::default()
        }
    }

    /// The ticket to sign with now, with no call at all: kept, not too
    /// close to its expiry, and no refresh due.
    pub fn ready(&self, now: i64) -> Option<&str> {
        self.kept
            .as_ref()
            .filter(|k| ready(k, now))
            .map(|k| k.ticket.as_str())
    }

    /// The ticket, fetched when `ready` has none: from the shelf when
    /// another instance fetched it, else from WeChat with the base token
    /// (one more try after WeChat calls that token stale), under the
    /// shelf's lock. Blocks: for a worker.
    pub fn get(
        &mut self,
        base: &mut BaseToken,
        client: &WechatClient,
        clock: &Clock,
    ) -> Result<String, WechatError> {
        let now = clock.now();
        if let Some(ticket) = self.ready(now) {
            return Ok(ticket.to_string());
        }
        let _lock = match &self.shelf {
            Some(shelf) => {
                let lock = match adoptable(shelf.read(), now) {
                    Some(kept) => Err(kept),
                    // Another instance may fetch meanwhile: look again
                    // once the lock is ours.
                    None => {
                        let lock = shelf.lock();
                        adoptable(shelf.read(), now).map_or(Ok(lock), Err)
                    }
                };
                match lock {
                    Ok(lock) => Some(lock),
                    Err(kept) => {
                        let ticket = kept.ticket.clone();
                        self.kept = Some(kept);
                        return Ok(ticket);
                    }
                }
            }
            None => None,
        };
        let (ticket, expires_in) = base.with(client, clock, |token| fetch(client, token))?;
        self.fetches += 1;
        let now = clock.now();
        let kept = self.keep(ticket, expires_in, now);
        if let Some(shelf) = &self.shelf {
            shelf.write(&kept.ticket, kept.expires, now);
        }
        Ok(kept.ticket)
    }

    /// Keeps what WeChat answered. The ticket already kept, given back,
    /// keeps its first expiry (or, past it, a short life), and is not asked
    /// for again for a while; a new one lives `expires_in` from now.
    fn keep(&mut self, ticket: String, expires_in: i64, now: i64) -> Kept {
        let kept = match self.kept.take() {
            Some(old) if old.ticket == ticket => Kept {
                expires: if old.expires - SAFETY > now {
                    old.expires
                } else {
                    now + SAME_AT_THE_END
                },
                retry_after: now + RETRY_SAME,
                ticket,
            },
            _ => Kept {
                ticket,
                expires: now + expires_in,
                retry_after: 0,
            },
        };
        self.kept.insert(kept).clone()
    }
}

/// The shelf's ticket, when it is ready to sign with.
fn adoptable(shelved: Option<(String, i64)>, now: i64) -> Option<Kept> {
    let (ticket, expires) = shelved?;
    let kept = Kept {
        ticket,
        expires,
        retry_after: 0,
    };
    ready(&kept, now).then_some(kept)
}

/// Signable now and no refresh due: before the expiry's safety margin, and
/// either before the refresh window or inside a pause after WeChat gave the
/// same ticket back.
fn ready(kept: &Kept, now: i64) -> bool {
    now < kept.expires - SAFETY && (now < kept.expires - REFRESH_AHEAD || now < kept.retry_after)
}

/// cgi-bin/ticket/getticket?type=jsapi: the ticket and its expires_in. An
/// answer without a ticket is an error, never a ticket.
fn fetch(client: &WechatClient, token: &str) -> Result<(String, i64), WechatError> {
    let query = crate::transport::http::encode_query(&[("access_token", token), ("type", "jsapi")]);
    let answer = client.get("/cgi-bin/ticket/getticket", &query)?;
    let ticket = answer["ticket"].as_str().unwrap_or("");
    if ticket.is_empty() || !ticket.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WechatError::BadAnswer(
            "getticket answer without a ticket".into(),
        ));
    }
    let expires_in = answer["expires_in"].as_i64().unwrap_or(7200).clamp(0, 7200);
    Ok((ticket.to_string(), expires_in))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechats_published_example_reproduces() {
        // docs/wechat.md §11: the JS-SDK document's 附录1 example.
        let ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
        assert_eq!(
            signature(
                ticket,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value"
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
        assert_eq!(
            signature(
                ticket,
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com"
            ),
            "f4d90daf4b3bca3078ab155816175ba34c443a7b"
        );
    }

    fn hosts() -> Vec<String> {
        vec!["wx.example.com".into(), "m.example.com".into()]
    }

    #[test]
    fn the_page_url_is_signed_as_sent_without_its_fragment() {
        for (sent, signed) in [
            (
                "https://wx.example.com/a?b=1&c=2#/route?x",
                "https://wx.example.com/a?b=1&c=2",
            ),
            (
                "http://M.example.com/?from=singlemessage&isappinstalled=0",
                "http://M.example.com/?from=singlemessage&isappinstalled=0",
            ),
            (
                "https://wx.example.com:443/p#",
                "https://wx.example.com:443/p",
            ),
            (
                "https://wx.example.com/%E4%B8%AD",
                "https://wx.example.com/%E4%B8%AD",
            ),
        ] {
            assert_eq!(page_url(sent, &hosts(), false).as_deref(), Ok(signed));
        }
    }

    #[test]
    fn urls_that_cannot_be_signed_say_why() {
        for (sent, why) in [
            ("", "required"),
            ("https%3A%2F%2Fwx.example.com%2F", "percent-encoded"),
            ("https://wx.example.com/?a=1&amp;b=2", "&amp;"),
            (
                "javascript:alert(1)//wx.example.com/",
                "not an http or https URL",
            ),
            ("ftp://wx.example.com/", "not an http or https URL"),
            (
                "https://evil.example/?wx.example.com",
                "not a JS-SDK domain",
            ),
            (
                "https://wx.example.com.evil.example/",
                "not a JS-SDK domain",
            ),
            ("https://wx.example.com@evil.example/", "not"),
            ("https://wx.example.com:8443/", "port 8443"),
            ("https://wx.example.com", "no path"),
            ("https://wx.example.com/a b", "spaces"),
        ] {
            let refused = page_url(sent, &hosts(), false).unwrap_err();
            assert!(refused.contains(why), "{sent}: {refused}");
        }
        // The demo's pages are on other ports.
        assert!(page_url("http://wx.example.com:8080/", &hosts(), true).is_ok());
    }

    #[test]
    fn a_ticket_given_back_keeps_its_first_expiry() {
        let mut cache = JsapiTicket::default();
        let t0 = 1_000_000;
        cache.keep("T1".into(), 7200, t0);
        assert_eq!(cache.ready(t0), Some("T1"));
        assert_eq!(cache.ready(t0 + 7200 - REFRESH_AHEAD - 1), Some("T1"));
        // The refresh window: nothing ready, a fetch is due.
        let due = t0 + 7200 - REFRESH_AHEAD;
        assert_eq!(cache.ready(due), None);
        // WeChat gives T1 back "for 7200 s": its life is not stretched.
        cache.keep("T1".into(), 7200, due);
        assert_eq!(cache.kept.as_ref().unwrap().expires, t0 + 7200);
        assert_eq!(cache.ready(due + RETRY_SAME - 1), Some("T1"));
        assert_eq!(
            cache.ready(due + RETRY_SAME),
            None,
            "asked again a minute later"
        );
        // A new ticket lives from now.
        cache.keep("T2".into(), 7200, due + RETRY_SAME);
        assert_eq!(cache.ready(due + RETRY_SAME + 7000), None);
        assert_eq!(cache.ready(due + RETRY_SAME + 6000), Some("T2"));
        // Given back past our idea of its expiry: WeChat still calls it
        // valid; trusted briefly.
        let late = t0 + 50_000;
        cache.keep("T2".into(), 7200, late);
        assert_eq!(cache.ready(late), Some("T2"));
        assert_eq!(cache.ready(late + SAME_AT_THE_END), None);
    }

    #[test]
    fn a_ticket_from_the_shelf_is_taken_only_when_ready() {
        let now = 5_000;
        assert_eq!(
            adoptable(Some(("S".into(), now + 7000)), now).map(|k| k.ticket),
            Some("S".into())
        );
        assert_eq!(adoptable(Some(("S".into(), now + 100)), now), None);
        assert_eq!(adoptable(None, now), None);
    }
}

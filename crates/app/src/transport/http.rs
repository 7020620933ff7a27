//! The request and reply types every handler sees, and the small parsers for
//! query strings, form bodies and cookies. Knows nothing about tiny_http
//! (event_loop.rs converts) and nothing about WeChat.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::net::{IpAddr, SocketAddr};

/// Headers on every reply, whoever writes it (the app, or the HTTP layer
/// refusing a request it cannot parse). The CSP allows only our own assets
/// plus WeChat's avatar hosts; the Referrer-Policy keeps a code or state out of
/// other sites' Referer headers. `Cache-Control` is added beside them.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
         img-src 'self' https://*.qlogo.cn data:; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    // same-origin, not no-referrer: under no-referrer browsers send
    // `Origin: null` on our own form posts, and the origin check
    // (web/routes.rs) could not tell them from a cross-site post. Other sites
    // still get no Referer, so a code or state never leaks in one.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
];

/// The HTTP methods the routing table distinguishes; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl Method {
    /// Parses a method name as it appears on the request line (case-sensitive, like HTTP).
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The name as written in an `Allow` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// One request, already read within the size limits. Owned by value so that
/// handlers can be unit-tested without a socket (`Req::fake`).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    /// The path without the query string, exactly as sent (not percent-decoded).
    pub path: String,
    /// The query string as sent (after `?`), for code that checks its exact form.
    pub raw_query: String,
    /// Percent-decoded query pairs, in order; invalid UTF-8 is replaced, never rejected.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The socket's peer (nginx, when it is in front).
    pub peer: Option<SocketAddr>,
    /// The client: the peer, or the X-Real-IP a trusted proxy sent (limits.rs).
    pub client: Option<IpAddr>,
}

impl Req {
    /// Builds a request from its parts; `url` is the request target (path and query).
    pub fn new(method: Method, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Req {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url, ""),
        };
        let cookies = headers
            .iter()
            .filter(|(name, _)| name == "cookie")
            .flat_map(|(_, value)| parse_cookies(value))
            .collect();
        Req {
            method,
            path: path.to_string(),
            raw_query: query.to_string(),
            query: parse_query(query),
            headers,
            cookies,
            body,
            peer: None,
            client: None,
        }
    }

    /// A request for unit tests: `Req::fake("GET", "/callback?state=x", &[("cookie", "a=b")])`.
    pub fn fake(method: &str, url: &str, headers: &[(&str, &str)]) -> Req {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        Req::new(Method::parse(method), url, headers, Vec::new())
    }

    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// The first header called `name` (give it lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// The first cookie called `name`. Where ours are concerned, use
    /// `cookies_named`: a cookie planted with a longer Path (or by a sibling
    /// subdomain) is sent before ours, so the first is not to be trusted blindly.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        first(&self.cookies, name)
    }

    /// Every cookie called `name`, in the order sent.
    pub fn cookies_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.cookies
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_query(&String::from_utf8_lossy(&self.body))
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Parses `a=1&b=%E4%BD%A0` (also a form body). `+` is a space, bad escapes
/// are kept literally, invalid UTF-8 becomes U+FFFD: bad input never fails.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Everything but RFC 3986's unreserved characters, so that a value is safe
/// in any part of a URL. WeChat wants `redirect_uri` encoded this fully.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value or path segment (UTF-8, `:/?#&=` included).
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Builds `a=1&b=2` with each value encoded by `encode_component`.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a `Cookie:` header value. Malformed parts are skipped.
pub fn parse_cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|part| {
            let (name, value) = part.split_once('=')?;
            let name = name.trim();
            let value = value.trim().trim_matches('"');
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// A `Set-Cookie` we send. Every cookie of the app is HttpOnly and
/// SameSite=Lax; the path, Secure and the lifetime vary.
#[derive(Clone, Debug)]
pub struct Cookie {
    pub name: &'static str,
    pub value: String,
    /// Seconds; 0 deletes the cookie.
    pub max_age: u64,
    pub secure: bool,
    /// `Path=`: "/", or a prefix the site lives under (checked by config.rs:
    /// no `;`, no space, nothing a header could be split on).
    pub path: String,
}

impl Cookie {
    /// The header value for `Set-Cookie`.
    pub fn header_value(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={}; Max-Age={}; Path={}; HttpOnly; SameSite=Lax{}",
            self.name, self.value, self.max_age, self.path, secure
        )
    }

    /// The same cookie under another path.
    pub fn with_path(mut self, path: &str) -> Cookie {
        self.path = path.to_string();
        self
    }
}

/// What a handler answers. `event_loop.rs` hands it to the connection's
/// thread, which writes it; nothing else touches sockets.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 HTML page.
    pub fn html(body: String) -> Reply {
        Reply::with_body(200, "text/html; charset=utf-8", body.into_bytes())
    }

    /// A 200 JSON answer.
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::with_body(
            200,
            "application/json",
            serde_json::to_vec(value).expect("a serde_json::Value always serializes"),
        )
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::with_body(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes().to_vec(),
        )
    }

    /// A redirect (302, 303). `location` must not hold CR or LF: tiny_http
    /// writes header values raw, so callers pass only values they built.
    pub fn redirect(status: u16, location: &str) -> Reply {
        debug_assert!(!location.contains(['\r', '\n']));
        let location: String = location.chars().filter(|c| !c.is_control()).collect();
        Reply::empty(status).with_header("Location", &location)
    }

    /// A reply with no body.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A reply with the given status, content type and body.
    pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body,
        }
    }

    /// The same reply with another status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Adds a header (appends; duplicates are allowed, as for Set-Cookie).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a `Set-Cookie` header.
    pub fn with_cookie(self, cookie: &Cookie) -> Reply {
        self.with_header("Set-Cookie", &cookie.header_value())
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_and_never_fails() {
        let q = parse_query("a=1&b=%E4%BD%A0+x&c&=v&d=%zz&e=%FF");
        assert_eq!(
            q,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "你 x".into()),
                ("c".into(), "".into()),
                ("".into(), "v".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "\u{FFFD}".into()),
            ]
        );
    }

    #[test]
    fn component_encoding_covers_url_delimiters() {
        assert_eq!(
            encode_component("https://a.b/c?d=e&f#g h"),
            "https%3A%2F%2Fa.b%2Fc%3Fd%3De%26f%23g%20h"
        );
        assert_eq!(encode_component("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn cookies_parse_loosely() {
        let c = parse_cookies(" a=1; b = \"2\" ;junk; =x; c=3=4");
        assert_eq!(
            c,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3=4".into()),
            ]
        );
    }

    #[test]
    fn request_splits_path_query_and_cookies() {
        let r = Req::fake(
            "GET",
            "/callback?code=C&state=S",
            &[("Cookie", "x=1; y=2"), ("Cookie", "x=3")],
        );
        assert_eq!(r.path, "/callback");
        assert_eq!(r.query("state"), Some("S"));
        assert_eq!(r.cookie("x"), Some("1"));
        assert_eq!(r.cookies_named("x").collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(r.cookie("y"), Some("2"));
        assert_eq!(r.header("cookie"), Some("x=1; y=2"));
    }

    #[test]
    fn set_cookie_has_the_fixed_attributes() {
        let c = Cookie {
            name: "s",
            value: "v".into(),
            max_age: 60,
            secure: true,
            path: "/".into(),
        };
        assert_eq!(
            c.header_value(),
            "s=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }
}

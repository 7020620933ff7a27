//! Hosts and URLs, read one way everywhere: a Host header's `host[:port]`,
//! an http(s) URL's scheme, host, port and path, and an address to bind.
//! The host itself is read by the `url` crate, as browsers read it (the
//! WHATWG URL rules): lower case, an internationalised name in punycode, an
//! IPv6 address in brackets. What a browser never sends is refused rather
//! than guessed at, so that no other reader (nginx, WeChat, a proxy) can take
//! the same text for another host: userinfo (`a@b`), percent-encoding, an
//! IPv4 address in any form but four decimal numbers (`127.1`,
//! `0x7f.0.0.1`), an empty or oversized port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use url::Host;

/// A host and maybe a port, as a Host header or a URL's authority writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    host: Host<String>,
    port: Option<u16>,
}

impl Authority {
    /// Reads `host`, `host:port`, `[v6]` or `[v6]:port`; None for anything
    /// else. The port is kept as written, even when it is the scheme's
    /// default: a Host header has no scheme.
    pub fn parse(value: &str) -> Option<Authority> {
        let (host, after) = match value.strip_prefix('[') {
            // Bracketed, the host runs to `]`; the IPv6 reader checks it.
            Some(rest) => value.split_at(rest.find(']')? + 2),
            // A colon outside brackets starts the port.
            None => value.split_at(value.find(':').unwrap_or(value.len())),
        };
        let port = match after {
            "" => None,
            _ => Some(port_number(after.strip_prefix(':')?)?),
        };
        Some(Authority {
            host: read_host(host)?,
            port,
        })
    }

    /// The host as text: a name (lower case, punycode), or an address,
    /// IPv6 without brackets (as a 网页授权域名 is written).
    pub fn host(&self) -> String {
        match &self.host {
            Host::Domain(name) => name.clone(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        }
    }

    /// The address, when the host is one rather than a name.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Domain(_) => None,
            Host::Ipv4(ip) => Some(ip.into()),
            Host::Ipv6(ip) => Some(ip.into()),
        }
    }

    /// The name `localhost` exactly (any case); `localhost.` is another name.
    pub fn is_localhost(&self) -> bool {
        matches!(&self.host, Host::Domain(name) if name == "localhost")
    }

    /// This machine itself, wherever it is opened: `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.is_localhost() || self.ip().is_some_and(|ip| ip.is_loopback())
    }

    /// The port, if one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// True when both name the same host, whatever their ports: cookies are
    /// kept per host, so that is what decides whether one set on one
    /// reaches the other.
    pub fn same_host(&self, other: &Authority) -> bool {
        self.host == other.host
    }
}

impl fmt::Display for Authority {
    /// `host` or `host:port`, IPv6 in brackets: as a URL or a Host header has it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// An http or https URL: scheme, authority, and the path as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    https: bool,
    authority: Authority,
    path: &'a str,
}

impl<'a> HttpUrl<'a> {
    /// Reads `http://` or `https://` (either in any case), an authority as
    /// `Authority::parse` takes it, and anything after. The authority ends
    /// at `/`, `?`, `#`, or `\`, which browsers take for `/`. None for
    /// anything else, or when a browser would read another host or port
    /// from it.
    pub fn parse(value: &'a str) -> Option<HttpUrl<'a>> {
        let (scheme, rest) = value.split_once("://")?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = Authority::parse(&rest[..end])?;
        let tail = &rest[end..];
        let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
        let url = HttpUrl {
            https,
            authority,
            path,
        };
        // Where a browser can read the whole URL, it must name the same
        // place: a guard against any way of writing one that is read apart
        // here. (A browser refuses `http://evil.127.0.0.1/`, which goes nowhere.)
        let same = url::Url::parse(value).map_or(true, |browser| {
            browser.host().map(|h| h.to_owned()).as_ref() == Some(&url.authority.host)
                && browser.port_or_known_default() == Some(url.effective_port())
        });
        same.then_some(url)
    }

    /// True for https.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host and the port as written.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The port written, if any (`:443` in `https://h:443` included).
    pub fn port(&self) -> Option<u16> {
        self.authority.port
    }

    /// The port a browser connects to: the one written, else the scheme's.
    pub fn effective_port(&self) -> u16 {
        self.authority.port.unwrap_or(self.default_port())
    }

    /// The path as written, up to `?` or `#`: "" when there is none, else
    /// from its `/` on. Not normalised: `/./` and `%xx` stay as they are.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The origin as browsers write it in `Origin`: scheme, host in lower
    /// case, and the port unless it is the scheme's default.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let authority = Authority {
            host: self.authority.host.clone(),
            port: self.port().filter(|p| *p != self.default_port()),
        };
        format!("{scheme}://{authority}")
    }

    fn default_port(&self) -> u16 {
        if self.https {
            443
        } else {
            80
        }
    }
}

/// An address to bind: `ip:port`, `[v6]:port`, or `localhost:port`, which
/// means IPv4 loopback without asking a resolver.
pub fn listen_address(value: &str) -> Option<SocketAddr> {
    if let Ok(addr) = value.parse() {
        return Some(addr);
    }
    let authority = Authority::parse(value)?;
    let port = authority.port.filter(|_| authority.is_localhost())?;
    Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// `addr`, with an unspecified address (0.0.0.0, ::) replaced by loopback:
/// where this machine itself reaches a socket bound there.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// A port: one to five digits that fit in 16 bits.
fn port_number(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// A host as `url` reads it, when that is the only way to read it.
fn read_host(text: &str) -> Option<Host<String>> {
    // `url` would decode `%41` to `a`; nothing sends a host that way.
    if text.contains('%') {
        return None;
    }
    match Host::parse(text) {
        // `url` takes `127.1` and `2130706433` for 127.0.0.1, as browsers
        // do, which then never send them; other readers take them for names.
        Ok(Host::Ipv4(ip)) if text.parse::<Ipv4Addr>() != Ok(ip) => None,
        Ok(host) => Some(host),
        // A name whose last label is a number, yet no address
        // (`evil.127.0.0.1`): browsers refuse to open it, but to DNS and to
        // WeChat it is a name, and it stays one: never an address of ours.
        Err(url::ParseError::InvalidIpv4Address) if is_plain_name(text) => {
            Some(Host::Domain(text.to_ascii_lowercase()))
        }
        Err(_) => None,
    }
}

/// Letters, digits, `-` and `.` only.
fn is_plain_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A host the demo answers on, as a Host header named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listened {
    /// `localhost` was written (rather than an address).
    pub localhost: bool,
    /// The address: the one written, or loopback for `localhost`.
    pub ip: IpAddr,
}

impl Listened {
    /// `host:port` for URLs, IPv6 in brackets.
    pub fn authority(&self, port: u16) -> String {
        match (self.localhost, self.ip) {
            (true, _) => format!("localhost:{port}"),
            (false, ip) => SocketAddr::new(ip, port).to_string(),
        }
    }
}

/// The host a Host header (or a URL's authority) names, if a socket bound
/// at `listen` answers there: the same port (80 when none is written), and `localhost` or an
/// address of this machine that `listen` covers (its own address, or any of
/// the machine's when it is 0.0.0.0 or ::). Names other than `localhost`
/// are never followed: a DNS name pointed at us (rebinding) is someone
/// else's origin.
pub fn listened(listen: SocketAddr, host: &Authority) -> Option<Listened> {
    if host.port().unwrap_or(80) != listen.port() {
        return None;
    }
    let bound = listen.ip();
    if host.is_localhost() {
        let ip = match bound {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        let covered = bound.is_loopback() || bound.is_unspecified();
        return covered.then_some(Listened {
            localhost: true,
            ip,
        });
    }
    let ip = host.ip()?;
    if ip.is_unspecified() || ip.is_multicast() {
        return None;
    }
    let covered = if bound.is_unspecified() {
        // Linux's [::] takes IPv4 too; 0.0.0.0 takes only IPv4.
        let family = bound.is_ipv6() || ip.is_ipv4();
        family && is_own_address(ip)
    } else {
        ip == bound
    };
    covered.then_some(Listened {
        localhost: false,
        ip,
    })
}

/// True when `ip` is an address of this machine: binding a UDP socket to it
/// succeeds only then. Nothing is sent. This runs per request (demo mode on
/// 0.0.0.0 or ::), so the loopback address, which every machine with the
/// family has and which most requests name, is taken without a socket.
fn is_own_address(ip: IpAddr) -> bool {
    ip == Ipv4Addr::LOCALHOST
        || ip == Ipv6Addr::LOCALHOST
        || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (host, port) as read from a Host header value.
    fn read(value: &str) -> Option<(String, Option<u16>)> {
        Authority::parse(value).map(|a| (a.host(), a.port()))
    }

    fn host(name: &str, port: Option<u16>) -> Option<(String, Option<u16>)> {
        Some((name.to_string(), port))
    }

    #[test]
    fn a_host_header_is_a_name_or_an_address_and_maybe_a_port() {
        assert_eq!(read("wx.example.com"), host("wx.example.com", None));
        assert_eq!(
            read("wx.example.com:8443"),
            host("wx.example.com", Some(8443))
        );
        assert_eq!(read("127.0.0.1:80"), host("127.0.0.1", Some(80)));
        assert_eq!(read("WX.Example.COM"), host("wx.example.com", None));
        // A trailing dot names the same place in DNS, but is another host
        // to a browser's cookies and origins: kept.
        assert_eq!(read("localhost."), host("localhost.", None));
        assert_eq!(read("h:0"), host("h", Some(0)));
        assert_eq!(read("h:65535"), host("h", Some(65535)));
    }

    #[test]
    fn ipv6_is_bracketed_with_or_without_a_port() {
        assert_eq!(read("[::1]"), host("::1", None));
        assert_eq!(read("[::1]:8080"), host("::1", Some(8080)));
        assert_eq!(read("[0:0:0:0:0:0:0:1]:80"), host("::1", Some(80)));
        assert_eq!(read("[2001:DB8::1]"), host("2001:db8::1", None));
        assert_eq!(
            Authority::parse("[::1]:8080").unwrap().to_string(),
            "[::1]:8080"
        );
        for bad in [
            "::1",
            "::1:8080",
            "[::1",
            "[::1]x",
            "[::1]x:8080",
            "[::1]:",
            "[localhost]",
            "[127.0.0.1]",
            "[]",
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_hosts_and_ports_are_refused() {
        for bad in [
            "",
            ":8080",
            "h:",
            "h:abc",
            "h:80x",
            "h:08080x",
            "h:99999",
            "h:65536",
            "h:000080",
            "h:+80",
            "h:-1",
            "h:80:80",
            // Userinfo, and the ways of writing a path or more.
            "a@b",
            "127.0.0.1:8080@evil.example",
            "user:pass@h",
            "h/x",
            "h?x",
            "h#x",
            "h\\x",
            // Spaces and controls, which `url` would drop from a whole URL.
            " h",
            "h ",
            "a b",
            "h\t",
            "a\tb",
            "h\n",
            // Percent-encoding, which `url` would decode.
            "ex%61mple.com",
            "%6c%6f%63%61%6c%68%6f%73%74",
            // IPv4 other than four decimal numbers.
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "2130706433",
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_name_ending_in_a_number_that_is_no_address_stays_a_name() {
        for name in ["evil.127.0.0.1", "127.0.0.1.5", "1.2.3.256", "Evil.1"] {
            let a = Authority::parse(name).unwrap();
            assert_eq!(a.host(), name.to_ascii_lowercase(), "{name}");
            assert_eq!(a.ip(), None, "{name}");
        }
        let u = HttpUrl::parse("http://evil.127.0.0.1:8080/cb").unwrap();
        assert_eq!(u.authority().host(), "evil.127.0.0.1");
        // Only letters, digits, `-` and `.` make such a name.
        assert_eq!(read("evil host.1"), None);
        assert_eq!(read("evil_host.1"), None);
    }

    #[test]
    fn an_international_name_is_read_in_punycode() {
        assert_eq!(
            read("Bücher.example:8080"),
            host("xn--bcher-kva.example", Some(8080))
        );
        let unicode = Authority::parse("bücher.example").unwrap();
        let ascii = Authority::parse("xn--bcher-kva.example").unwrap();
        assert!(unicode.same_host(&ascii));
    }

    #[test]
    fn localhost_and_loopback() {
        let a = |v: &str| Authority::parse(v).unwrap();
        assert!(a("LocalHost:8080").is_localhost());
        assert!(!a("localhost.:8080").is_localhost());
        assert!(!a("127.0.0.1").is_localhost());
        for lo in ["localhost", "127.0.0.1", "127.0.0.2:1", "[::1]:8080"] {
            assert!(a(lo).is_loopback(), "{lo}");
        }
        for not in ["192.0.2.7", "localhost.", "[::2]", "example.com"] {
            assert!(!a(not).is_loopback(), "{not}");
        }
        assert_eq!(a("[::1]").ip(), Some(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(a("localhost").ip(), None);
    }

    #[test]
    fn hosts_compare_without_the_port() {
        let a = |v: &str| Authority::parse(v).unwrap();
        assert!(a("WX.example.com").same_host(&a("wx.example.com:443")));
        assert!(a("[::1]").same_host(&a("[0::1]:8080")));
        assert!(!a("127.0.0.1").same_host(&a("localhost")));
        assert!(!a("wx.example.com").same_host(&a("wx.example.com.")));
    }

    #[test]
    fn a_url_is_a_scheme_an_authority_and_a_path() {
        let u = HttpUrl::parse("https://WX.example.com:8443/wx/x?y=1#z").unwrap();
        assert!(u.is_https());
        assert_eq!(u.authority().host(), "wx.example.com");
        assert_eq!(u.port(), Some(8443));
        assert_eq!(u.path(), "/wx/x");
        let u = HttpUrl::parse("HTTP://h").unwrap();
        assert!(!u.is_https());
        assert_eq!((u.path(), u.port(), u.effective_port()), ("", None, 80));
        let u = HttpUrl::parse("http://h?x=/y").unwrap();
        assert_eq!(u.path(), "");
        // The path as written, not as a browser would tidy it.
        let u = HttpUrl::parse("http://h/./a/../%62").unwrap();
        assert_eq!(u.path(), "/./a/../%62");
        // A backslash ends the authority, as it does in browsers.
        let u = HttpUrl::parse("http://evil.example\\@127.0.0.1/").unwrap();
        assert_eq!(u.authority().host(), "evil.example");
        assert_eq!(
            HttpUrl::parse("http://[::1]:8080/cb")
                .unwrap()
                .authority()
                .host(),
            "::1"
        );
        for bad in [
            "",
            "h",
            "h/x",
            "//h/x",
            "ftp://h/",
            "http:h",
            "http:/h",
            "http:///cb",
            "http://",
            "http://:443",
            "http://h:",
            "https://h:abc",
            "https://h:99999",
            "http://127.0.0.1@evil.example/",
            "http://a:b@h/",
            "https://[wx.example.com]",
            "http://[::1]x:8080/",
            "http://127.1/",
            "http://h%2Fx/",
            "http://a b/",
            "http://a\tb/",
        ] {
            assert_eq!(HttpUrl::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origin_drops_the_path_and_the_default_port() {
        let origin = |url: &str| HttpUrl::parse(url).unwrap().origin();
        assert_eq!(
            origin("https://WX.example.com:443/app"),
            "https://wx.example.com"
        );
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://h:80"), "http://h");
        assert_eq!(origin("https://h:8443"), "https://h:8443");
        assert_eq!(origin("https://h:80"), "https://h:80");
        assert_eq!(origin("HTTP://[::1]:80/x"), "http://[::1]");
    }

    #[test]
    fn host_strips_scheme_port_and_path() {
        let host = |url: &str| HttpUrl::parse(url).unwrap().authority().host();
        assert_eq!(host("https://a.b.c:8443/x"), "a.b.c");
        assert_eq!(host("http://[::1]:80/"), "::1");
        assert_eq!(host("http://h"), "h");
    }

    #[test]
    fn an_address_to_bind_may_say_localhost() {
        let at = |v: &str| listen_address(v).map(|a| a.to_string());
        assert_eq!(at("127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(at("[::]:8080").as_deref(), Some("[::]:8080"));
        assert_eq!(at("localhost:9090").as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(at("LocalHost:9090").as_deref(), Some("127.0.0.1:9090"));
        for bad in [
            "localhost",
            "localhost:",
            "localhost:99999",
            "example.com:80",
            "127.0.0.1",
            "nowhere",
            "",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_unspecified_address_is_reached_over_loopback() {
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(reachable(any).to_string(), "127.0.0.1:8081");
        assert_eq!(reachable("[::]:1".parse().unwrap()).to_string(), "[::1]:1");
        let lan: SocketAddr = "192.0.2.7:80".parse().unwrap();
        assert_eq!(reachable(lan), lan);
    }
}

//! Where a browser reaches the app, request by request. In real mode, and
//! whenever WXAUTH_PUBLIC_URL is set, that is the public URL, whatever the
//! request says. In demo mode without one, it is the host the browser used
//! (`localhost`, `127.0.0.1`, a LAN address) when the demo listens there, so
//! the login cookie and the callback share a host. A Host naming anything
//! else changes nothing: it is the client's to write.

use crate::config::Config;
use crate::transport::host::{listened, Authority, HttpUrl};
use crate::transport::http::Req;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The site as this request's browser sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Scheme, authority and path prefix, no trailing slash (PUBLIC_URL's form).
    pub url: String,
    /// Where the browser goes for WeChat's authorize page: WXAUTH_OPEN_BASE,
    /// or the simulator as this browser can reach it (demo mode).
    pub open_base: String,
}

impl Site {
    /// The configured site: PUBLIC_URL and WXAUTH_OPEN_BASE.
    pub fn configured(config: &Config) -> Site {
        Site {
            url: config.public_url.clone(),
            open_base: config.open_base.clone(),
        }
    }

    /// The site for `req`: the host it was sent to when demo mode may follow
    /// it (`Config::follow_host`) and the demo listens there; else the
    /// configured one.
    pub fn of(config: &Config, req: &Req) -> Site {
        if !config.follow_host {
            return Site::configured(config);
        }
        let host = req.header("host").and_then(|h| Authority::parse(h.trim()));
        let Some(host) = host.and_then(|h| listened(config.listen, &h)) else {
            return Site::configured(config);
        };
        Site {
            url: format!("http://{}", host.authority(config.listen.port())),
            open_base: format!("http://{}", sim_address(config.sim_listen, host.ip)),
        }
    }

    /// WeChat sends the browser back here: the site + `/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.url)
    }

    /// The site's origin as browsers write it in `Origin`.
    pub fn origin(&self) -> String {
        HttpUrl::parse(&self.url).map_or_else(String::new, |url| url.origin())
    }
}

/// The site as a phone should open it from a QR code shown at `site_url`:
/// the same, unless that is a loopback address (which on the phone is the
/// phone itself) and the demo is bound to every address: then its first
/// LAN address (`lan`, from `lan_addresses`).
pub fn for_phone(site_url: &str, listen: SocketAddr, lan: &[IpAddr]) -> String {
    let loopback = HttpUrl::parse(site_url).is_some_and(|url| url.authority().is_loopback());
    match lan.first() {
        Some(ip) if loopback && listen.ip().is_unspecified() => {
            format!("http://{}", SocketAddr::new(*ip, listen.port()))
        }
        _ => site_url.to_string(),
    }
}

/// True when a Host header names the same host as `url`, whatever the port:
/// cookies are kept per host, so that is what decides whether a login
/// cookie set on one reaches the other.
pub fn same_host(url: &str, host_header: &str) -> bool {
    match (HttpUrl::parse(url), Authority::parse(host_header.trim())) {
        (Some(url), Some(host)) => url.authority().same_host(&host),
        _ => false,
    }
}

/// The simulator's address as a browser that reached the app at `ip` can
/// reach it: that same address when the simulator listens on every
/// address of its family, else where it is bound.
pub fn sim_address(sim: SocketAddr, ip: IpAddr) -> SocketAddr {
    match sim.ip() {
        IpAddr::V6(v6) if v6.is_unspecified() => SocketAddr::new(ip, sim.port()),
        IpAddr::V4(v4) if v4.is_unspecified() => match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, sim.port()),
            IpAddr::V6(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), sim.port()),
        },
        _ => sim,
    }
}

/// The address other machines on the network reach this one at, for each
/// family `listen` covers: the source address the system would use towards
/// a documentation address (RFC 5737, RFC 3849). "Connecting" a UDP socket
/// only chooses a route; no packet is sent. Found without reading
/// interface tables, so it works the same on Linux, macOS and Windows; it
/// is the interface of the default route, which is the Wi-Fi or Ethernet a
/// phone on the same network shares. Empty without a network.
pub fn lan_addresses(listen: IpAddr) -> Vec<IpAddr> {
    if !listen.is_unspecified() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let probes: &[(IpAddr, IpAddr)] = &[
        (
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::new(192, 0, 2, 1).into(),
        ),
        (
            Ipv6Addr::UNSPECIFIED.into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        ),
    ];
    for (any, probe) in probes {
        if listen.is_ipv4() && probe.is_ipv6() {
            continue;
        }
        let source = UdpSocket::bind(SocketAddr::new(*any, 0))
            .and_then(|s| s.connect(SocketAddr::new(*probe, 9)).map(|()| s))
            .and_then(|s| s.local_addr());
        if let Ok(addr) = source {
            let ip = addr.ip();
            if !ip.is_loopback() && !ip.is_unspecified() && !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(listen: &str, host: &str) -> Option<String> {
        let listen: SocketAddr = listen.parse().unwrap();
        let host = Authority::parse(host.trim())?;
        listened(listen, &host).map(|l| l.authority(listen.port()))
    }

    #[test]
    fn a_host_is_followed_only_where_the_demo_listens() {
        // Bound to loopback: its address and localhost, on its port.
        assert_eq!(
            at("127.0.0.1:8080", "127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            at("127.0.0.1:8080", "LocalHost:8080").as_deref(),
            Some("localhost:8080")
        );
        assert_eq!(
            at("127.0.0.1:80", "localhost").as_deref(),
            Some("localhost:80")
        );
        for foreign in [
            "127.0.0.1:8081",
            "127.0.0.1",
            "127.0.0.2:8080",
            "evil.example:8080",
            "evil.example",
            "localhost.:8080",
            "127.0.0.1.nip.io:8080",
            "0.0.0.0:8080",
            "127.0.0.1:8080@evil.example",
            "127.0.0.1:08080x",
            "[::1]:8080",
            "",
            ":8080",
            "127.0.0.1:",
            "127.0.0.1:99999",
        ] {
            assert_eq!(at("127.0.0.1:8080", foreign), None, "{foreign:?}");
        }
        // Bound to every address: any of this machine's (all of 127/8 is).
        assert_eq!(
            at("0.0.0.0:8080", "127.0.0.2:8080").as_deref(),
            Some("127.0.0.2:8080")
        );
        assert_eq!(
            at("0.0.0.0:8080", "localhost:8080").as_deref(),
            Some("localhost:8080")
        );
        // TEST-NET-3 is nobody's address here; multicast and 0.0.0.0 never are.
        for foreign in [
            "203.0.113.9:8080",
            "224.0.0.1:8080",
            "0.0.0.0:8080",
            "x:8080",
        ] {
            assert_eq!(at("0.0.0.0:8080", foreign), None, "{foreign:?}");
        }
        // An IPv4 socket is not reached over IPv6.
        assert_eq!(at("0.0.0.0:8080", "[::1]:8080"), None);
        // Bound to a LAN address: that one, not localhost.
        assert_eq!(at("192.0.2.7:8080", "localhost:8080"), None);
        assert_eq!(
            at("192.0.2.7:8080", "192.0.2.7:8080").as_deref(),
            Some("192.0.2.7:8080")
        );
    }

    #[test]
    fn ipv6_hosts_are_written_in_brackets() {
        assert_eq!(
            at("[::1]:8080", "[::1]:8080").as_deref(),
            Some("[::1]:8080")
        );
        assert_eq!(
            at("[::1]:8080", "localhost:8080").as_deref(),
            Some("localhost:8080")
        );
        assert_eq!(at("[::1]:8080", "[::1]x:8080"), None);
        assert_eq!(at("[::1]:8080", "::1:8080"), None);
        assert_eq!(at("[::1]:8080", "[localhost]:8080"), None);
    }

    #[test]
    fn the_simulator_is_reached_where_the_browser_reached_the_app() {
        let lan: IpAddr = "192.0.2.7".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(sim_address(any, lan).to_string(), "192.0.2.7:8081");
        assert_eq!(
            sim_address(any, "::1".parse().unwrap()).to_string(),
            "127.0.0.1:8081"
        );
        let lo: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(sim_address(lo, lan), lo);
        let reachable = crate::transport::host::reachable;
        assert_eq!(reachable(any).to_string(), "127.0.0.1:8081");
        assert_eq!(reachable("[::]:1".parse().unwrap()).to_string(), "[::1]:1");
    }

    #[test]
    fn a_qr_code_shown_on_loopback_sends_the_phone_to_the_lan_address() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap()];
        for shown in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert_eq!(
                for_phone(shown, any, &lan),
                "http://192.0.2.7:8080",
                "{shown}"
            );
        }
        // Shown at the LAN address already, or with no LAN, or bound to loopback only.
        assert_eq!(
            for_phone("http://192.0.2.9:8080", any, &lan),
            "http://192.0.2.9:8080"
        );
        assert_eq!(
            for_phone("http://127.0.0.1:8080", any, &[]),
            "http://127.0.0.1:8080"
        );
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            for_phone("http://127.0.0.1:8080", lo, &lan),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn hosts_compare_without_the_port() {
        assert!(same_host("https://wx.example.com/wx", "WX.example.com"));
        assert!(same_host("https://wx.example.com", "wx.example.com:443"));
        assert!(same_host("https://app.test:8443", "app.test"));
        assert!(same_host("http://[::1]:8080", "[::1]"));
        assert!(!same_host("http://127.0.0.1:8080", "localhost:8080"));
        assert!(!same_host("https://wx.example.com", "www.wx.example.com"));
        assert!(!same_host(
            "https://wx.example.com",
            "wx.example.com.evil.example"
        ));
        assert!(!same_host("https://wx.example.com", ""));
    }
}

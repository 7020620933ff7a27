//! One person across the two apps (docs/wechat.md §12): the openids a
//! unionid was seen with, on the Official Account and on the website app,
//! so that a profile can show both. Bounded and expiring like every memory
//! store; Redis keeps its own (store/redis.rs).

use crate::store::expiring::{Expires, Expiring};

/// The openids of each unionid seen logging in.
pub struct Links {
    map: Expiring<String, Linked>,
    ttl: i64,
}

/// A unionid's openid on the Official Account and on the website app.
#[derive(Clone, Debug, Default)]
struct Linked {
    account: Option<String>,
    website: Option<String>,
    expires: i64,
}

impl Expires for Linked {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Links {
    /// Links kept `ttl` seconds after their last login, at most `cap`.
    pub fn new(ttl: u64, cap: usize) -> Links {
        Links {
            map: Expiring::new(cap),
            ttl: ttl as i64,
        }
    }

    /// Records `openid` for `unionid` on the website app or the account,
    /// and answers the other app's, when seen.
    pub fn link(&mut self, unionid: &str, website: bool, openid: &str, now: i64) -> Option<String> {
        let mut linked = self.map.get(unionid, now).cloned().unwrap_or_default();
        let (mine, other) = if website {
            (&mut linked.website, linked.account.clone())
        } else {
            (&mut linked.account, linked.website.clone())
        };
        *mine = Some(openid.to_string());
        linked.expires = now + self.ttl;
        self.map.insert(unionid.to_string(), linked);
        other
    }

    /// Drops expired links.
    pub fn sweep(&mut self, now: i64) {
        self.map.sweep(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_learns_the_others_openid() {
        let mut links = Links::new(100, 10);
        assert_eq!(links.link("U1", false, "oAccount", 0), None);
        assert_eq!(links.link("U1", true, "oWeb", 1), Some("oAccount".into()));
        assert_eq!(links.link("U1", false, "oAccount", 2), Some("oWeb".into()));
        assert_eq!(links.link("U2", true, "oOther", 2), None, "another person");
        // Expired with the sessions they came with.
        assert_eq!(links.link("U1", true, "oWeb", 500), None);
    }
}

//! The Official Account's own (base) access_tokens: cgi-bin/token and
//! cgi-bin/stable_token, with WeChat's 2-hour life and 5-minute overlap.
//! Pure: time comes in as an argument. Not the per-user sns tokens (state.rs).

use std::collections::HashMap;
use wxauth_app::random;
use wxauth_app::wechat::errcode::{ACCESS_TOKEN_EXPIRED, INVALID_CREDENTIAL};

/// A base access_token lives 2 hours, like the web-authorization one.
pub const BASE_TTL: i64 = 7200;
/// How long a replaced token keeps working (docs/wechat.md §8: "about 5 minutes").
pub const OVERLAP: i64 = 300;
/// Prefix that makes base tokens easy to grep for in leak checks.
pub const BASE_PREFIX: &str = "simBT_";

/// How long a dead token is remembered, so that "expired" (42001) can be
/// told apart from "never issued" (40001).
const KEEP: i64 = 24 * 3600;
/// Cap on remembered tokens; the oldest goes first. A demo never nears it.
const MAX_TOKENS: usize = 10_000;

/// The two independent chains: a cgi-bin/token fetch never replaces the
/// stable token, and the reverse (WeChat keeps them apart on purpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    Token,
    Stable,
}

#[derive(Debug)]
struct Entry {
    issued: i64,
    /// When a newer token of the same chain replaced this one.
    replaced: Option<i64>,
}

/// A token handed out, and the seconds it has left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    pub expires_in: i64,
}

/// Every base token issued, and the current one of each chain.
#[derive(Debug, Default)]
pub struct BaseTokens {
    tokens: HashMap<String, Entry>,
    current_token: Option<String>,
    current_stable: Option<String>,
    /// When `prune` last ran: at most once per simulated second.
    pruned_at: Option<i64>,
}

impl BaseTokens {
    /// No tokens yet.
    pub fn new() -> BaseTokens {
        BaseTokens::default()
    }

    /// cgi-bin/token: always a new token; the previous one gets `OVERLAP` more seconds.
    pub fn fetch(&mut self, now: i64) -> Granted {
        self.prune(now);
        self.issue(Chain::Token, now)
    }

    /// cgi-bin/stable_token: the current stable token while it lives (with
    /// the seconds it has left), else or when `force_refresh` a new one.
    pub fn fetch_stable(&mut self, force_refresh: bool, now: i64) -> Granted {
        self.prune(now);
        let live = self.current_stable.as_ref().and_then(|t| {
            let entry = self.tokens.get(t)?;
            let left = entry.issued + BASE_TTL - now;
            (left > 0).then(|| Granted {
                access_token: t.clone(),
                expires_in: left,
            })
        });
        match live {
            Some(granted) if !force_refresh => granted,
            _ => self.issue(Chain::Stable, now),
        }
    }

    /// Is `token` usable now? Err is WeChat's errcode: 42001 past its two
    /// hours, 40001 when unknown or replaced more than `OVERLAP` seconds ago.
    pub fn check(&mut self, token: &str, now: i64) -> Result<(), i64> {
        self.prune(now);
        let entry = self.tokens.get(token).ok_or(INVALID_CREDENTIAL)?;
        // "not latest" wins over "expired": that is what went wrong first.
        if entry.replaced.is_some_and(|at| now - at >= OVERLAP) {
            return Err(INVALID_CREDENTIAL);
        }
        if now - entry.issued >= BASE_TTL {
            return Err(ACCESS_TOKEN_EXPIRED);
        }
        Ok(())
    }

    /// How many tokens are remembered, dead ones included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    fn issue(&mut self, chain: Chain, now: i64) -> Granted {
        // WeChat's base tokens are long (over 130 characters): so are ours.
        let token = format!("{BASE_PREFIX}{}", random::token(130));
        let current = match chain {
            Chain::Token => &mut self.current_token,
            Chain::Stable => &mut self.current_stable,
        };
        if let Some(old) = current.replace(token.clone()) {
            if let Some(entry) = self.tokens.get_mut(&old) {
                entry.replaced.get_or_insert(now);
            }
        }
        if self.tokens.len() >= MAX_TOKENS {
            let oldest = self
                .tokens
                .iter()
                .min_by_key(|(_, e)| e.issued)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.tokens.remove(&oldest);
            }
        }
        let entry = Entry {
            issued: now,
            replaced: None,
        };
        self.tokens.insert(token.clone(), entry);
        Granted {
            access_token: token,
            expires_in: BASE_TTL,
        }
    }

    /// Forgets tokens long dead, so memory stays bounded without a timer.
    fn prune(&mut self, now: i64) {
        if self.pruned_at == Some(now) {
            return;
        }
        self.pruned_at = Some(now);
        self.tokens.retain(|_, e| now - e.issued < BASE_TTL + KEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    #[test]
    fn a_new_fetch_leaves_the_old_token_five_minutes() {
        let mut b = BaseTokens::new();
        let first = b.fetch(T0);
        assert!(first.access_token.starts_with(BASE_PREFIX));
        assert_eq!(first.expires_in, BASE_TTL);
        let second = b.fetch(T0 + 100);
        assert_ne!(first.access_token, second.access_token);
        assert_eq!(b.check(&first.access_token, T0 + 399), Ok(()));
        assert_eq!(
            b.check(&first.access_token, T0 + 400),
            Err(INVALID_CREDENTIAL)
        );
        assert_eq!(b.check(&second.access_token, T0 + 400), Ok(()));
    }

    #[test]
    fn tokens_expire_after_two_hours_and_unknown_ones_are_invalid() {
        let mut b = BaseTokens::new();
        let t = b.fetch(T0).access_token;
        assert_eq!(b.check(&t, T0 + BASE_TTL - 1), Ok(()));
        assert_eq!(b.check(&t, T0 + BASE_TTL), Err(ACCESS_TOKEN_EXPIRED));
        assert_eq!(b.check("simBT_nope", T0), Err(INVALID_CREDENTIAL));
        assert_eq!(b.check(&t, T0 + BASE_TTL + KEEP), Err(INVALID_CREDENTIAL));
    }

    #[test]
    fn the_stable_token_stays_until_it_expires_or_is_forced() {
        let mut b = BaseTokens::new();
        let first = b.fetch_stable(false, T0);
        let again = b.fetch_stable(false, T0 + 60);
        assert_eq!(again.access_token, first.access_token);
        assert_eq!(again.expires_in, BASE_TTL - 60);
        // A plain cgi-bin/token fetch does not touch the stable chain.
        b.fetch(T0 + 61);
        assert_eq!(
            b.fetch_stable(false, T0 + 62).access_token,
            first.access_token
        );
        let forced = b.fetch_stable(true, T0 + 100);
        assert_ne!(forced.access_token, first.access_token);
        assert_eq!(b.check(&first.access_token, T0 + 399), Ok(()));
        assert_eq!(
            b.check(&first.access_token, T0 + 400),
            Err(INVALID_CREDENTIAL)
        );
        let later = b.fetch_stable(false, T0 + 100 + BASE_TTL);
        assert_ne!(later.access_token, forced.access_token);
        assert_eq!(later.expires_in, BASE_TTL);
    }
}

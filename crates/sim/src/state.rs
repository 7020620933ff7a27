//! The simulator's memory of codes, access tokens and refresh tokens, with
//! WeChat's lifetimes, and the errcode each failure maps to. Pure: time comes
//! in as an argument, so the lifecycle is unit-tested without a clock.

use std::collections::HashMap;
use wxauth_app::random;
use wxauth_app::wechat::errcode::*;

/// A code is single use and lives 5 minutes (docs/wechat.md §2).
pub const CODE_TTL: i64 = 300;
/// A website app's code (qrconnect) is single use too but lives 10 minutes
/// ("code的超时时间为10分钟").
pub const WEB_CODE_TTL: i64 = 600;
/// A web-authorization access_token lives 2 hours.
pub const ACCESS_TTL: i64 = 7200;
/// A refresh_token lives 30 days.
pub const REFRESH_TTL: i64 = 30 * 24 * 3600;

/// How long a dead entry is kept after its lifetime, so that WeChat's
/// "expired" or "used" errcodes can be told apart from "invalid".
const CODE_KEEP: i64 = 1800;
const TOKEN_KEEP: i64 = 24 * 3600;
/// Caps on each store; the oldest entry goes first. A demo never nears them.
const MAX_ENTRIES: usize = 10_000;

/// WeChat's "invalid args" (getticket with a `type` other than jsapi). Not
/// in wxauth_app::wechat::errcode, which lists only the codes the app acts
/// on, so the simulator names it itself.
pub const INVALID_ARGS: i64 = 40097;

/// Prefixes that make the sim's tokens easy to grep for in leak checks.
pub const ACCESS_PREFIX: &str = "simAT_";
pub const REFRESH_PREFIX: &str = "simRT_";

/// WeChat's errmsg for an errcode (the English text api.weixin.qq.com sends).
pub fn errmsg(errcode: i64) -> &'static str {
    match errcode {
        0 => "ok",
        SYSTEM_BUSY => "system error",
        INVALID_CREDENTIAL => "invalid credential, access_token is invalid or not latest",
        INVALID_GRANT_TYPE => "invalid grant_type",
        INVALID_OPENID => "invalid openid",
        INVALID_APPID => "invalid appid",
        INVALID_ACCESS_TOKEN => "invalid access_token",
        INVALID_CODE => "invalid code",
        INVALID_REFRESH_TOKEN => "invalid refresh_token",
        INVALID_SECRET => "invalid appsecret",
        CODE_USED => "code been used",
        INVALID_IP => "invalid ip, not in whitelist",
        // Menu validation (cgi-bin/menu/create); chosen in menu.rs.
        INVALID_BUTTON_SIZE => "invalid button size",
        INVALID_BUTTON_TYPE => "invalid button type",
        INVALID_BUTTON_NAME_SIZE => "invalid button name size",
        INVALID_BUTTON_KEY_SIZE => "invalid button key size",
        INVALID_BUTTON_URL_SIZE => "invalid button url size",
        INVALID_SUB_BUTTON_SIZE => "invalid sub button size",
        INVALID_SUB_BUTTON_TYPE => "invalid sub button type",
        INVALID_SUB_BUTTON_NAME_SIZE => "invalid sub button name size",
        INVALID_SUB_BUTTON_KEY_SIZE => "invalid sub button key size",
        INVALID_SUB_BUTTON_URL_SIZE => "invalid sub button url size",
        INVALID_SUB_BUTTON_URL_DOMAIN => "invalid sub button url domain",
        INVALID_BUTTON_URL_DOMAIN => "invalid button url domain",
        MISSING_ACCESS_TOKEN => "access_token missing",
        MISSING_APPID => "appid missing",
        MISSING_REFRESH_TOKEN => "refresh_token missing",
        MISSING_SECRET => "appsecret missing",
        MISSING_CODE => "missing code",
        MISSING_OPENID => "missing openid",
        ACCESS_TOKEN_EXPIRED => "access_token expired",
        REFRESH_TOKEN_EXPIRED => "refresh_token expired",
        CODE_EXPIRED => "code expired",
        TOKENS_REVOKED => "access_token and refresh_token exception",
        DAILY_QUOTA => "reach max api daily quota limit",
        MINUTE_QUOTA => "api minute-quota reach limit  mustslower  retry next minute",
        EMPTY_POST_DATA => "empty post data",
        MENU_NO_EXIST => "menu no exist",
        DATA_FORMAT_ERROR => "data format error",
        API_UNAUTHORIZED => "api unauthorized",
        INVALID_ARGS => "invalid args",
        _ => "simulated error",
    }
}

/// The scopes of a grant: the Official Account's two, and the website
/// app's one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Base,
    Userinfo,
    /// A website app's QR login (qrconnect): reads the profile too.
    Login,
}

impl Scope {
    /// Reads the `scope` of an Official Account's authorize link; anything
    /// else, snsapi_login included, is not a scope it grants.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "snsapi_base" => Some(Scope::Base),
            "snsapi_userinfo" => Some(Scope::Userinfo),
            _ => None,
        }
    }

    /// The value as WeChat writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Base => "snsapi_base",
            Scope::Userinfo => "snsapi_userinfo",
            Scope::Login => "snsapi_login",
        }
    }

    /// Whether sns/userinfo answers for a token of this scope.
    pub fn reads_profile(self) -> bool {
        self != Scope::Base
    }

    /// How long a code for this scope lives: website codes last longer.
    pub fn code_ttl(self) -> i64 {
        match self {
            Scope::Login => WEB_CODE_TTL,
            Scope::Base | Scope::Userinfo => CODE_TTL,
        }
    }
}

/// What a user allowed: carried from the code to the tokens made from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub appid: String,
    /// Index into `users::USERS`.
    pub user: usize,
    pub scope: Scope,
    /// A snapshot-page grant: virtual openid, `is_snapshotuser: 1`.
    pub snapshot: bool,
}

/// The tokens handed out by a code exchange or a refresh.
#[derive(Clone, Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub grant: Grant,
}

#[derive(Debug)]
struct Entry {
    grant: Grant,
    issued: i64,
    used: bool,
}

/// Codes, access tokens and refresh tokens, each with its issue time.
#[derive(Debug, Default)]
pub struct Store {
    codes: HashMap<String, Entry>,
    access: HashMap<String, Entry>,
    refresh: HashMap<String, Entry>,
    /// When `prune` last ran: it runs at most once per simulated second.
    pruned_at: Option<i64>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// A fresh code for `grant`, valid for its scope's `code_ttl` from `now`.
    pub fn issue_code(&mut self, grant: Grant, now: i64) -> String {
        self.prune(now);
        // 32 base62 characters, the length of WeChat's codes.
        let code = random::token(32);
        insert(&mut self.codes, code.clone(), grant, now);
        code
    }

    /// Exchanges a code (sns/oauth2/access_token). A code works once.
    pub fn redeem_code(&mut self, appid: &str, code: &str, now: i64) -> Result<Issued, i64> {
        self.prune(now);
        let entry = match self.codes.get_mut(code) {
            // A code of another appid is simply unknown to this one.
            Some(entry) if entry.grant.appid == appid => entry,
            _ => return Err(INVALID_CODE),
        };
        if entry.used {
            return Err(CODE_USED);
        }
        if now - entry.issued >= entry.grant.scope.code_ttl() {
            return Err(CODE_EXPIRED);
        }
        entry.used = true;
        let grant = entry.grant.clone();
        let refresh_token = format!("{REFRESH_PREFIX}{}", random::token(80));
        insert(&mut self.refresh, refresh_token.clone(), grant.clone(), now);
        Ok(self.issue_access(refresh_token, grant, now))
    }

    /// Turns the grant behind `code` into a snapshot-page one (the control
    /// switch was turned on between the consent and the exchange). A
    /// website login is left alone: the snapshot page is the WeChat
    /// client's, and a QR login happens in a PC browser.
    pub fn mark_snapshot(&mut self, code: &str) {
        let entry = self.codes.get_mut(code);
        if let Some(entry) = entry.filter(|e| e.grant.scope != Scope::Login) {
            entry.grant.snapshot = true;
        }
    }

    /// A new access_token for a live refresh_token (sns/oauth2/refresh_token).
    /// The refresh_token itself is kept, and its 30 days count from its issue.
    pub fn refresh(&mut self, appid: &str, refresh_token: &str, now: i64) -> Result<Issued, i64> {
        self.prune(now);
        let entry = match self.refresh.get(refresh_token) {
            Some(entry) if entry.grant.appid == appid => entry,
            _ => return Err(INVALID_REFRESH_TOKEN),
        };
        if now - entry.issued >= REFRESH_TTL {
            return Err(REFRESH_TOKEN_EXPIRED);
        }
        let grant = entry.grant.clone();
        Ok(self.issue_access(refresh_token.to_string(), grant, now))
    }

    /// The grant behind a live access_token.
    pub fn check_access(&mut self, access_token: &str, now: i64) -> Result<Grant, i64> {
        self.prune(now);
        let entry = self.access.get(access_token).ok_or(INVALID_ACCESS_TOKEN)?;
        if now - entry.issued >= ACCESS_TTL {
            return Err(ACCESS_TOKEN_EXPIRED);
        }
        Ok(entry.grant.clone())
    }

    /// How many entries each store holds (codes, access, refresh).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.codes.len(), self.access.len(), self.refresh.len())
    }

    fn issue_access(&mut self, refresh_token: String, grant: Grant, now: i64) -> Issued {
        let access_token = format!("{ACCESS_PREFIX}{}", random::token(80));
        insert(&mut self.access, access_token.clone(), grant.clone(), now);
        Issued {
            access_token,
            refresh_token,
            grant,
        }
    }

    /// Drops entries long dead, so memory stays bounded without a timer.
    fn prune(&mut self, now: i64) {
        if self.pruned_at == Some(now) {
            return;
        }
        self.pruned_at = Some(now);
        self.codes
            .retain(|_, e| now - e.issued < e.grant.scope.code_ttl() + CODE_KEEP);
        self.access
            .retain(|_, e| now - e.issued < ACCESS_TTL + TOKEN_KEEP);
        self.refresh
            .retain(|_, e| now - e.issued < REFRESH_TTL + TOKEN_KEEP);
    }
}

fn insert(map: &mut HashMap<String, Entry>, key: String, grant: Grant, now: i64) {
    if map.len() >= MAX_ENTRIES {
        let oldest = map
            .iter()
            .min_by_key(|(_, e)| e.issued)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
    let entry = Entry {
        grant,
        issued: now,
        used: false,
    };
    map.insert(key, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    fn grant(scope: Scope) -> Grant {
        Grant {
            appid: "wxA".into(),
            user: 0,
            scope,
            snapshot: false,
        }
    }

    #[test]
    fn a_code_works_once() {
        let mut s = Store::new();
        let code = s.issue_code(grant(Scope::Userinfo), T0);
        let issued = s.redeem_code("wxA", &code, T0 + 10).expect("first use");
        assert!(issued.access_token.starts_with(ACCESS_PREFIX));
        assert!(issued.refresh_token.starts_with(REFRESH_PREFIX));
        assert_eq!(s.redeem_code("wxA", &code, T0 + 11).err(), Some(CODE_USED));
    }

    #[test]
    fn a_code_expires_after_five_minutes() {
        let mut s = Store::new();
        let code = s.issue_code(grant(Scope::Base), T0);
        assert_eq!(
            s.redeem_code("wxA", &code, T0 + 301).err(),
            Some(CODE_EXPIRED)
        );
        let code = s.issue_code(grant(Scope::Base), T0);
        assert!(s.redeem_code("wxA", &code, T0 + 299).is_ok());
    }

    #[test]
    fn a_website_code_lives_ten_minutes_and_works_once() {
        let mut s = Store::new();
        let code = s.issue_code(grant(Scope::Login), T0);
        assert!(s.redeem_code("wxA", &code, T0 + 599).is_ok());
        assert_eq!(s.redeem_code("wxA", &code, T0 + 599).err(), Some(CODE_USED));
        let code = s.issue_code(grant(Scope::Login), T0);
        assert_eq!(
            s.redeem_code("wxA", &code, T0 + 601).err(),
            Some(CODE_EXPIRED)
        );
        // Never a snapshot grant, whatever the switch says.
        let code = s.issue_code(grant(Scope::Login), T0);
        s.mark_snapshot(&code);
        let issued = s.redeem_code("wxA", &code, T0).expect("redeem");
        assert!(!issued.grant.snapshot);
    }

    #[test]
    fn unknown_foreign_and_long_dead_codes_are_invalid() {
        let mut s = Store::new();
        assert_eq!(s.redeem_code("wxA", "nope", T0).err(), Some(INVALID_CODE));
        let code = s.issue_code(grant(Scope::Base), T0);
        assert_eq!(s.redeem_code("wxB", &code, T0).err(), Some(INVALID_CODE));
        assert_eq!(
            s.redeem_code("wxA", &code, T0 + 7201).err(),
            Some(INVALID_CODE)
        );
    }

    #[test]
    fn access_tokens_expire_after_two_hours() {
        let mut s = Store::new();
        let code = s.issue_code(grant(Scope::Userinfo), T0);
        let issued = s.redeem_code("wxA", &code, T0).expect("redeem");
        assert_eq!(
            s.check_access(&issued.access_token, T0 + 7199)
                .map(|g| g.scope),
            Ok(Scope::Userinfo)
        );
        assert_eq!(
            s.check_access(&issued.access_token, T0 + 7201).err(),
            Some(ACCESS_TOKEN_EXPIRED)
        );
        assert_eq!(
            s.check_access("simAT_nope", T0).err(),
            Some(INVALID_ACCESS_TOKEN)
        );
    }

    #[test]
    fn refresh_gives_a_new_access_token_and_keeps_the_refresh_token() {
        let mut s = Store::new();
        let code = s.issue_code(grant(Scope::Userinfo), T0);
        let first = s.redeem_code("wxA", &code, T0).expect("redeem");
        let later = T0 + 8000;
        let again = s
            .refresh("wxA", &first.refresh_token, later)
            .expect("refresh");
        assert_ne!(again.access_token, first.access_token);
        assert_eq!(again.refresh_token, first.refresh_token);
        assert!(s.check_access(&again.access_token, later).is_ok());
        assert_eq!(
            s.refresh("wxA", "simRT_nope", later).err(),
            Some(INVALID_REFRESH_TOKEN)
        );
        assert_eq!(
            s.refresh("wxB", &first.refresh_token, later).err(),
            Some(INVALID_REFRESH_TOKEN)
        );
        assert_eq!(
            s.refresh("wxA", &first.refresh_token, T0 + REFRESH_TTL + 1)
                .err(),
            Some(REFRESH_TOKEN_EXPIRED)
        );
    }

    #[test]
    fn stores_stay_bounded() {
        let mut s = Store::new();
        for i in 0..(MAX_ENTRIES + 5) {
            s.issue_code(grant(Scope::Base), T0 + (i as i64 % 100));
        }
        assert_eq!(s.sizes().0, MAX_ENTRIES);
        s.issue_code(grant(Scope::Base), T0 + 100_000);
        assert_eq!(s.sizes().0, 1);
    }

    #[test]
    fn every_errcode_used_has_a_message() {
        for code in [
            INVALID_CODE,
            CODE_USED,
            CODE_EXPIRED,
            API_UNAUTHORIZED,
            MINUTE_QUOTA,
            INVALID_ARGS,
            SYSTEM_BUSY,
        ] {
            assert_ne!(errmsg(code), "simulated error");
        }
    }
}

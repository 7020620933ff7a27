//! WeChat's errcodes, each named once: the app checks them (client.rs,
//! account.rs, refresh.rs) and the simulator answers them (crates/sim), both
//! by these names, so a number is written in one place and a reader can
//! look up what WeChat means by it. The meanings are WeChat's; where
//! docs/wechat.md lists a code, the doc comment cites the section.
//!
//! Only the number is shared. What the app does with a code, and when the
//! simulator answers one, each side decides on its own. Tests write the
//! numbers out rather than these names: they pin what goes over the wire,
//! so a wrong number here fails them instead of passing on both sides.

// -- Everywhere ---------------------------------------------------------------

/// System busy (errmsg "system error"): try again later. docs/wechat.md §6.
pub const SYSTEM_BUSY: i64 = -1;

// -- Credentials: appid, secret, tokens, grant types ---------------------------

/// Invalid credential: the access_token is wrong or no longer the latest.
/// docs/wechat.md §6.
pub const INVALID_CREDENTIAL: i64 = 40001;
/// Invalid grant_type. docs/wechat.md §6.
pub const INVALID_GRANT_TYPE: i64 = 40002;
/// Invalid openid: not a user of this appid, or not the token's. docs/wechat.md §6.
pub const INVALID_OPENID: i64 = 40003;
/// Invalid appid. docs/wechat.md §6.
pub const INVALID_APPID: i64 = 40013;
/// Invalid access_token. docs/wechat.md §6.
pub const INVALID_ACCESS_TOKEN: i64 = 40014;
/// Invalid code: wrong, long expired, or another appid's. docs/wechat.md §6.
pub const INVALID_CODE: i64 = 40029;
/// Invalid refresh_token. docs/wechat.md §6.
pub const INVALID_REFRESH_TOKEN: i64 = 40030;
/// Invalid appsecret. docs/wechat.md §6.
pub const INVALID_SECRET: i64 = 40125;
/// Code been used: a code is exchanged once. docs/wechat.md §2, §6.
pub const CODE_USED: i64 = 40163;
/// The caller's IP is not on the account's whitelist (cgi-bin). docs/wechat.md §6.
pub const INVALID_IP: i64 = 40164;
/// The access_token parameter is missing. docs/wechat.md §6.
pub const MISSING_ACCESS_TOKEN: i64 = 41001;
/// The appid parameter is missing. docs/wechat.md §6.
pub const MISSING_APPID: i64 = 41002;
/// The refresh_token parameter is missing. docs/wechat.md §6.
pub const MISSING_REFRESH_TOKEN: i64 = 41003;
/// The secret parameter is missing. docs/wechat.md §6.
pub const MISSING_SECRET: i64 = 41004;
/// The code parameter is missing. docs/wechat.md §6.
pub const MISSING_CODE: i64 = 41008;
/// The openid parameter is missing. docs/wechat.md §6.
pub const MISSING_OPENID: i64 = 41009;
/// The access_token expired. docs/wechat.md §6.
pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
/// The refresh_token expired (30 days after the first grant). docs/wechat.md §3, §6.
pub const REFRESH_TOKEN_EXPIRED: i64 = 42002;
/// The code expired (5 minutes). docs/wechat.md §2, §6.
pub const CODE_EXPIRED: i64 = 42003;
/// The user changed their password: access_token and refresh_token are both
/// dead, the user must authorize again. docs/wechat.md §6.
pub const TOKENS_REVOKED: i64 = 42007;

// -- Requests, quotas, permissions ---------------------------------------------

/// The POST body is empty. docs/wechat.md §6, §9.
pub const EMPTY_POST_DATA: i64 = 44002;
/// The API's daily quota is used up. docs/wechat.md §6.
pub const DAILY_QUOTA: i64 = 45009;
/// The API's per-minute limit is reached: retry next minute. docs/wechat.md §6.
pub const MINUTE_QUOTA: i64 = 45011;
/// The JSON (or XML) body cannot be parsed. docs/wechat.md §6, §9.
pub const DATA_FORMAT_ERROR: i64 = 47001;
/// API unauthorized: e.g. sns/userinfo with an snsapi_base token. docs/wechat.md §4, §6.
pub const API_UNAUTHORIZED: i64 = 48001;

// -- The custom menu (cgi-bin/menu/*) ------------------------------------------

/// Invalid button count: none, or more than 3. docs/wechat.md §9.
pub const INVALID_BUTTON_SIZE: i64 = 40016;
/// Invalid button type. docs/wechat.md §9.
pub const INVALID_BUTTON_TYPE: i64 = 40017;
/// Invalid button name size (1 to 16 bytes). docs/wechat.md §9.
pub const INVALID_BUTTON_NAME_SIZE: i64 = 40018;
/// Invalid button key size. docs/wechat.md §9.
pub const INVALID_BUTTON_KEY_SIZE: i64 = 40019;
/// Invalid button url size. docs/wechat.md §9.
pub const INVALID_BUTTON_URL_SIZE: i64 = 40020;
/// Invalid sub button count: none, or more than 5. docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_SIZE: i64 = 40023;
/// Invalid sub button type. docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_TYPE: i64 = 40024;
/// Invalid sub button name size (1 to 60 bytes). docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_NAME_SIZE: i64 = 40025;
/// Invalid sub button key size. docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_KEY_SIZE: i64 = 40026;
/// Invalid sub button url size. docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_URL_SIZE: i64 = 40027;
/// Invalid sub button url domain. docs/wechat.md §9.
pub const INVALID_SUB_BUTTON_URL_DOMAIN: i64 = 40054;
/// Invalid button url domain. docs/wechat.md §9.
pub const INVALID_BUTTON_URL_DOMAIN: i64 = 40055;
/// Menu no exist: menu/get when no menu was created. docs/wechat.md §9.
pub const MENU_NO_EXIST: i64 = 46003;

// -- The authorize page (shown to the user instead of a callback) ----------------

/// redirect_uri域名与后台配置不一致: the redirect_uri's host is not the
/// account's 网页授权域名. docs/wechat.md §1, §6.
pub const REDIRECT_URI_DOMAIN_MISMATCH: i64 = 10003;
/// 此公众号并没有这些scope的权限: the account may not ask for that scope. docs/wechat.md §6.
pub const SCOPE_NOT_ALLOWED: i64 = 10005;
/// scope不能为空: the scope is empty. docs/wechat.md §6.
pub const SCOPE_EMPTY: i64 = 10010;
/// redirect_uri不能为空: the redirect_uri is empty. docs/wechat.md §6.
pub const REDIRECT_URI_EMPTY: i64 = 10011;
/// appid不能为空: the appid is empty. docs/wechat.md §6.
pub const APPID_EMPTY: i64 = 10012;
/// state不能为空: the state is empty or missing. docs/wechat.md §1, §6.
pub const STATE_EMPTY: i64 = 10013;

// -- The table -------------------------------------------------------------------

/// Every errcode above, once: the metrics count a login's failure by its
/// errcode only when it is here (any other is `errcode_other`), so the
/// labels stay a fixed set.
pub const NAMED: &[i64] = &[
    SYSTEM_BUSY,
    INVALID_CREDENTIAL,
    INVALID_GRANT_TYPE,
    INVALID_OPENID,
    INVALID_APPID,
    INVALID_ACCESS_TOKEN,
    INVALID_CODE,
    INVALID_REFRESH_TOKEN,
    INVALID_SECRET,
    CODE_USED,
    INVALID_IP,
    MISSING_ACCESS_TOKEN,
    MISSING_APPID,
    MISSING_REFRESH_TOKEN,
    MISSING_SECRET,
    MISSING_CODE,
    MISSING_OPENID,
    ACCESS_TOKEN_EXPIRED,
    REFRESH_TOKEN_EXPIRED,
    CODE_EXPIRED,
    TOKENS_REVOKED,
    EMPTY_POST_DATA,
    DAILY_QUOTA,
    MINUTE_QUOTA,
    DATA_FORMAT_ERROR,
    API_UNAUTHORIZED,
    INVALID_BUTTON_SIZE,
    INVALID_BUTTON_TYPE,
    INVALID_BUTTON_NAME_SIZE,
    INVALID_BUTTON_KEY_SIZE,
    INVALID_BUTTON_URL_SIZE,
    INVALID_SUB_BUTTON_SIZE,
    INVALID_SUB_BUTTON_TYPE,
    INVALID_SUB_BUTTON_NAME_SIZE,
    INVALID_SUB_BUTTON_KEY_SIZE,
    INVALID_SUB_BUTTON_URL_SIZE,
    INVALID_SUB_BUTTON_URL_DOMAIN,
    INVALID_BUTTON_URL_DOMAIN,
    MENU_NO_EXIST,
    REDIRECT_URI_DOMAIN_MISMATCH,
    SCOPE_NOT_ALLOWED,
    SCOPE_EMPTY,
    REDIRECT_URI_EMPTY,
    APPID_EMPTY,
    STATE_EMPTY,
];

#[cfg(test)]
mod tests {
    use super::NAMED;

    #[test]
    fn the_table_names_every_errcode_once() {
        let source = include_str!("errcode.rs");
        let constants = source
            .lines()
            .filter(|line| line.starts_with("pub const ") && line.contains(": i64 ="))
            .count();
        assert_eq!(NAMED.len(), constants, "an errcode is missing from NAMED");
        let mut codes = NAMED.to_vec();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), NAMED.len(), "an errcode is in NAMED twice");
        assert!(NAMED.len() <= crate::metrics::ERRCODE_SLOTS);
    }
}

//! Compact forms of what a session keeps: the profile and the tokens, each
//! packed into one allocation. A server holds up to 100,000 sessions, and a
//! dozen small strings per session cost more in allocator overhead than in
//! text. Handlers read fields through accessors; /api/me and the session
//! file see the plain `WechatUser` again.

use crate::wechat::client::{Grant, WechatUser};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Separates privilege items in the packed text. Control characters never
/// survive in a stored field (`WechatUser::from_value` drops them).
const ITEM: char = '\u{1}';

/// The text fields, in packing order; privilege items come last.
const OPENID: usize = 0;
const NICKNAME: usize = 1;
const PROVINCE: usize = 2;
const CITY: usize = 3;
const COUNTRY: usize = 4;
const HEADIMGURL: usize = 5;
const UNIONID: usize = 6;
const FIELDS: usize = 7;

/// A `WechatUser` in one allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "WechatUser", into = "WechatUser")]
pub struct StoredUser {
    text: Box<str>,
    /// Where each of the first FIELDS fields ends in `text`.
    ends: [u32; FIELDS],
    has_unionid: bool,
    sex: i64,
    /// Fields WeChat may add later; almost always none.
    extra: Option<Box<Map<String, Value>>>,
}

impl StoredUser {
    fn field(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.text[start..self.ends[index] as usize]
    }

    /// The user's openid.
    pub fn openid(&self) -> &str {
        self.field(OPENID)
    }

    /// The nickname, repaired.
    pub fn nickname(&self) -> &str {
        self.field(NICKNAME)
    }

    /// 1 male, 2 female, 0 unknown.
    pub fn sex(&self) -> i64 {
        self.sex
    }

    /// Province, empty for most users since 2021.
    pub fn province(&self) -> &str {
        self.field(PROVINCE)
    }

    /// City, empty for most users since 2021.
    pub fn city(&self) -> &str {
        self.field(CITY)
    }

    /// Country, empty for most users since 2021.
    pub fn country(&self) -> &str {
        self.field(COUNTRY)
    }

    /// The avatar URL (https), empty when there is none.
    pub fn headimgurl(&self) -> &str {
        self.field(HEADIMGURL)
    }

    /// The unionid, when WeChat sent one.
    pub fn unionid(&self) -> Option<&str> {
        self.has_unionid.then(|| self.field(UNIONID))
    }

    /// The privilege list.
    pub fn privilege(&self) -> impl Iterator<Item = &str> {
        let rest = &self.text[self.ends[FIELDS - 1] as usize..];
        rest.split(ITEM).filter(|item| !item.is_empty())
    }

    /// Sets the unionid if WeChat did not send one this time.
    pub fn keep_unionid(&mut self, unionid: Option<&str>) {
        if !self.has_unionid {
            if let Some(unionid) = unionid {
                let mut user = WechatUser::from(self.clone());
                user.unionid = Some(unionid.to_string());
                *self = StoredUser::from(user);
            }
        }
    }
}

impl From<WechatUser> for StoredUser {
    fn from(user: WechatUser) -> StoredUser {
        let fields = [
            user.openid.as_str(),
            &user.nickname,
            &user.province,
            &user.city,
            &user.country,
            &user.headimgurl,
            user.unionid.as_deref().unwrap_or(""),
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum::<usize>() + 16);
        let mut ends = [0u32; FIELDS];
        for (end, field) in ends.iter_mut().zip(fields) {
            text.push_str(field);
            *end = text.len() as u32;
        }
        for item in &user.privilege {
            text.push(ITEM);
            text.extend(item.chars().filter(|c| !c.is_control()));
        }
        StoredUser {
            text: text.into_boxed_str(),
            ends,
            has_unionid: user.unionid.is_some(),
            sex: user.sex,
            extra: (!user.extra.is_empty()).then(|| Box::new(user.extra)),
        }
    }
}

impl From<StoredUser> for WechatUser {
    fn from(stored: StoredUser) -> WechatUser {
        WechatUser {
            openid: stored.openid().to_string(),
            nickname: stored.nickname().to_string(),
            sex: stored.sex,
            province: stored.province().to_string(),
            city: stored.city().to_string(),
            country: stored.country().to_string(),
            headimgurl: stored.headimgurl().to_string(),
            privilege: stored.privilege().map(str::to_string).collect(),
            unionid: stored.unionid().map(str::to_string),
            extra: stored.extra.map(|extra| *extra).unwrap_or_default(),
        }
    }
}

/// The user's WeChat tokens, both in one allocation. Never leave the server
/// (the session file is the server's own, mode 0600).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TokensFile", into = "TokensFile")]
pub struct Tokens {
    /// access_token then refresh_token.
    pair: Box<str>,
    split: u32,
    /// Unix seconds after which we treat the access_token as expired.
    pub access_expires: i64,
    pub refresh_expires: i64,
}

/// WeChat's refresh_token lives 30 days.
const REFRESH_TTL: i64 = 30 * 86400;

impl Tokens {
    /// Tokens from a grant received at `now`. We expire the access_token a
    /// minute early so a call never starts with a token about to die.
    pub fn from_grant(grant: &Grant, now: i64) -> Tokens {
        Tokens::new(
            &grant.access_token,
            &grant.refresh_token,
            now + (grant.expires_in - 60).max(0),
            now + REFRESH_TTL,
        )
    }

    /// Tokens from their parts.
    pub fn new(access: &str, refresh: &str, access_expires: i64, refresh_expires: i64) -> Tokens {
        Tokens {
            pair: format!("{access}{refresh}").into_boxed_str(),
            split: access.len() as u32,
            access_expires,
            refresh_expires,
        }
    }

    /// The access_token.
    pub fn access_token(&self) -> &str {
        &self.pair[..self.split as usize]
    }

    /// The refresh_token.
    pub fn refresh_token(&self) -> &str {
        &self.pair[self.split as usize..]
    }
}

/// How the session file writes tokens.
#[derive(Clone, Serialize, Deserialize)]
struct TokensFile {
    access_token: String,
    access_expires: i64,
    refresh_token: String,
    refresh_expires: i64,
}

impl From<TokensFile> for Tokens {
    fn from(t: TokensFile) -> Tokens {
        Tokens::new(
            &t.access_token,
            &t.refresh_token,
            t.access_expires,
            t.refresh_expires,
        )
    }
}

impl From<Tokens> for TokensFile {
    fn from(t: Tokens) -> TokensFile {
        TokensFile {
            access_token: t.access_token().to_string(),
            access_expires: t.access_expires,
            refresh_token: t.refresh_token().to_string(),
            refresh_expires: t.refresh_expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(value: Value) -> WechatUser {
        WechatUser::from_value(value).unwrap()
    }

    #[test]
    fn a_full_profile_survives_packing() {
        let full = user(json!({
            "openid": "o1", "nickname": "熊猫🐼小明", "sex": "2", "province": "广东", "city": "深圳",
            "country": "中国", "headimgurl": "http://thirdwx.qlogo.cn/a/132",
            "privilege": ["chinaunicom", "", "x\u{1}y"], "unionid": "u1", "future": {"k": [1, 2]}
        }));
        let stored = StoredUser::from(full.clone());
        assert_eq!(stored.openid(), "o1");
        assert_eq!(stored.nickname(), "熊猫🐼小明");
        assert_eq!(stored.sex(), 2);
        assert_eq!(
            (stored.province(), stored.city(), stored.country()),
            ("广东", "深圳", "中国")
        );
        assert_eq!(stored.headimgurl(), "https://thirdwx.qlogo.cn/a/132");
        assert_eq!(stored.unionid(), Some("u1"));
        assert_eq!(
            stored.privilege().collect::<Vec<_>>(),
            ["chinaunicom", "xy"]
        );
        let back = WechatUser::from(stored);
        assert_eq!(back.extra, full.extra);
        assert_eq!(back.nickname, full.nickname);
        assert_eq!(back.privilege, ["chinaunicom", "xy"]);
    }

    #[test]
    fn an_empty_profile_and_a_missing_unionid_stay_so() {
        let stored = StoredUser::from(user(json!({ "openid": "o2" })));
        assert_eq!(stored.unionid(), None);
        assert_eq!(stored.nickname(), "");
        assert_eq!(stored.privilege().count(), 0);
        assert!(stored.extra.is_none());
        let mut stored = stored;
        stored.keep_unionid(Some("u9"));
        assert_eq!(stored.unionid(), Some("u9"));
        assert_eq!(stored.openid(), "o2");
    }

    #[test]
    fn tokens_split_where_they_should() {
        let t = Tokens::new("AT", "RTRT", 1, 2);
        assert_eq!((t.access_token(), t.refresh_token()), ("AT", "RTRT"));
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"access_token\":\"AT\""), "{json}");
        assert_eq!(serde_json::from_str::<Tokens>(&json).unwrap(), t);
    }
}

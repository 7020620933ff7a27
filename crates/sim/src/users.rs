//! The simulator's test users and the sns/userinfo bodies it sends for them.
//! Bodies are written by hand, byte by byte, because some users must come out
//! as the broken JSON WeChat really sends (see docs/wechat.md §6).

/// `sex` as it appears in the JSON: WeChat documents a number, but examples
/// in the wild send a string, so one test user does that.
#[derive(Clone, Copy, Debug)]
pub enum Sex {
    Number(u8),
    Text(&'static str),
}

/// The `lang` of sns/userinfo; it changes only the region words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    ZhTw,
    En,
}

impl Lang {
    /// Reads `lang`. Missing or unknown falls back to zh_CN, WeChat's default.
    pub fn parse(lang: Option<&str>) -> Lang {
        match lang {
            Some("zh_TW") => Lang::ZhTw,
            Some("en") => Lang::En,
            _ => Lang::ZhCn,
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::ZhCn => 0,
            Lang::ZhTw => 1,
            Lang::En => 2,
        }
    }
}

/// One test user. Everything is static: the users never change.
#[derive(Debug)]
pub struct User {
    /// 28 characters starting with "o", like WeChat's.
    pub openid: &'static str,
    pub nickname: &'static str,
    pub sex: Sex,
    /// (province, city, country) for zh_CN, zh_TW and en.
    pub region: [(&'static str, &'static str, &'static str); 3],
    /// Plain http on purpose: the app must serve it as https.
    pub headimgurl: &'static str,
    pub privilege: &'static [&'static str],
    pub unionid: Option<&'static str>,
    /// When set, the nickname's control characters go out raw and the city
    /// carries one broken UTF-8 byte: the body is not valid JSON.
    pub broken: bool,
    /// One line for the index page: what this user exercises.
    pub note: &'static str,
}

/// The test users, in the order the consent page lists them. Index 0 is the
/// default "current" user of a browser.
pub const USERS: &[User] = &[
    User {
        openid: "oSim0PandaXiaoMingEmoji00001",
        nickname: "熊猫🐼小明",
        sex: Sex::Number(1),
        region: [
            ("广东", "深圳", "中国"),
            ("廣東", "深圳", "中國"),
            ("Guangdong", "Shenzhen", "CN"),
        ],
        headimgurl: "http://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLsimPandaXiaoMingAvatar0/132",
        privilege: &["chinaunicom"],
        unionid: Some("oSimUnion0PandaXiaoMing00001"),
        broken: false,
        note: "emoji 昵称，完整资料，有 unionid",
    },
    User {
        openid: "oSim1ScriptNicknameXss000002",
        nickname: "<script>alert(\"xss\")</script>&<b>粗</b>",
        sex: Sex::Text("2"),
        region: [
            ("北京", "海淀", "中国"),
            ("北京", "海澱", "中國"),
            ("Beijing", "Haidian", "CN"),
        ],
        headimgurl: "http://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLsimScriptNickAvatar01/0",
        privilege: &[],
        unionid: Some("oSimUnion1ScriptNickname0002"),
        broken: false,
        note: "像 HTML 的昵称，sex 是字符串 \"2\"",
    },
    User {
        openid: "oSim2BrokenJsonControl000003",
        nickname: "控制\u{1}字符\u{1f}测试",
        sex: Sex::Number(2),
        region: [
            ("浙江", "杭州", "中国"),
            ("浙江", "杭州", "中國"),
            ("Zhejiang", "Hangzhou", "CN"),
        ],
        headimgurl: "http://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLsimBrokenJsonAvatar2/64",
        privilege: &[],
        unionid: Some("oSimUnion2BrokenJsonCtrl0003"),
        broken: true,
        note: "昵称含原始控制字符、城市含坏 UTF-8：返回的 JSON 无效",
    },
    User {
        openid: "oSim3EmptyProfileAfter202104",
        nickname: "微信用户",
        sex: Sex::Number(0),
        region: [("", "", ""), ("", "", ""), ("", "", "")],
        headimgurl: "",
        privilege: &[],
        unionid: None,
        broken: false,
        note: "2021 年后的资料：无性别地区、无头像、无 unionid",
    },
    User {
        openid: "oSim4RightToLeftMarks0000005",
        nickname: "\u{202e}olleh\u{202c} 👨\u{200d}👩\u{200d}👧 مرحبا",
        sex: Sex::Number(1),
        region: [
            ("", "迪拜", "阿拉伯联合酋长国"),
            ("", "杜拜", "阿拉伯聯合大公國"),
            ("", "Dubai", "AE"),
        ],
        headimgurl: "http://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLsimRightToLeftAva4/96",
        privilege: &[],
        unionid: Some("oSimUnion4RightToLeftMark005"),
        broken: false,
        note: "昵称含 RTL 控制符、ZWJ emoji 和阿拉伯文",
    },
    User {
        openid: "oSim5LongNicknameWraps000006",
        nickname: "名字很长很长的用户Supercalifragilisticexpialidocious_ThisNicknameNeverEnds",
        sex: Sex::Number(2),
        region: [
            ("上海", "浦东新区", "中国"),
            ("上海", "浦東新區", "中國"),
            ("Shanghai", "Pudong", "CN"),
        ],
        headimgurl: "http://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLsimLongNicknameAva5/132",
        privilege: &[],
        unionid: Some("oSimUnion5LongNicknameWrap06"),
        broken: false,
        note: "很长、不含空格的昵称：每个页面都必须把它折行",
    },
];

/// The virtual openid a snapshot-page grant gets instead of the user's own
/// (docs/wechat.md §5: snapshot users are virtual accounts).
pub const SNAPSHOT_OPENID: &str = "oSimSnapshotVirtualUser00000";

/// How every test user's Official Account openid starts.
const OA_PREFIX: &str = "oSim";
/// What its website-app openid starts with instead.
const WEB_PREFIX: &str = "oWeb";

/// The user's openid on the website app. WeChat gives one user a
/// different openid in each app (the unionid is shared): here `oSim…`
/// becomes `oWeb…`, the same length, so a test can tell the two apart and
/// still predict both.
pub fn web_openid(user: &User) -> String {
    let rest = user.openid.strip_prefix(OA_PREFIX).unwrap_or(user.openid);
    format!("{WEB_PREFIX}{rest}")
}

/// The user at `index`, if there is one.
pub fn get(index: usize) -> Option<&'static User> {
    USERS.get(index)
}

/// The nickname as the consent page shows it: control characters dropped,
/// because a browser would show them as boxes (auto-escape still applies).
pub fn display_nickname(user: &User) -> String {
    user.nickname.chars().filter(|c| !c.is_control()).collect()
}

/// The sns/userinfo body for `user`, whose openid in the asking app is
/// `openid`. Slashes in headimgurl come out as `\/`, as WeChat writes them;
/// a `broken` user yields invalid JSON on purpose.
pub fn userinfo_body(user: &User, openid: &str, lang: Lang) -> Vec<u8> {
    let (province, city, country) = user.region[lang.index()];
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    key(&mut out, "openid");
    string(&mut out, openid, false);
    key(&mut out, "nickname");
    string(&mut out, user.nickname, user.broken);
    key(&mut out, "sex");
    match user.sex {
        Sex::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Sex::Text(s) => string(&mut out, s, false),
    }
    key(&mut out, "city");
    if user.broken {
        // The first byte of a three-byte sequence with nothing after it:
        // WeChat has been seen sending such cut-off UTF-8 in region fields.
        out.push(b'"');
        escape_into(&mut out, city, false);
        out.push(0xE5);
        out.push(b'"');
    } else {
        string(&mut out, city, false);
    }
    key(&mut out, "province");
    string(&mut out, province, false);
    key(&mut out, "country");
    string(&mut out, country, false);
    key(&mut out, "headimgurl");
    out.push(b'"');
    escape_into(&mut out, user.headimgurl, false);
    out.push(b'"');
    key(&mut out, "privilege");
    out.push(b'[');
    for (i, p) in user.privilege.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(&mut out, p, false);
    }
    out.push(b']');
    if let Some(unionid) = user.unionid {
        key(&mut out, "unionid");
        string(&mut out, unionid, false);
    }
    out.push(b'}');
    out
}

/// The profile a snapshot-page token sees: virtual, like WeChat's.
pub fn snapshot_userinfo_body() -> Vec<u8> {
    let body = serde_json::json!({
        "openid": SNAPSHOT_OPENID,
        "nickname": "微信用户",
        "sex": 0,
        "city": "",
        "province": "",
        "country": "",
        "headimgurl": "",
        "privilege": [],
        "is_snapshotuser": 1,
    });
    body.to_string().into_bytes()
}

fn key(out: &mut Vec<u8>, name: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    string(out, name, false);
    out.push(b':');
}

fn string(out: &mut Vec<u8>, s: &str, raw_controls: bool) {
    out.push(b'"');
    escape_into(out, s, raw_controls);
    out.push(b'"');
}

/// JSON string escaping, plus WeChat's `\/`. With `raw_controls` the
/// characters U+0000–U+001F are written unescaped, which makes the JSON invalid.
fn escape_into(out: &mut Vec<u8>, s: &str, raw_controls: bool) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 && !raw_controls => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids_and_unionids_look_like_wechat_ones() {
        let web: Vec<String> = USERS.iter().map(web_openid).collect();
        let mut ids: Vec<&str> = USERS.iter().map(|u| u.openid).collect();
        ids.push(SNAPSHOT_OPENID);
        ids.extend(USERS.iter().filter_map(|u| u.unionid));
        ids.extend(web.iter().map(String::as_str));
        for user in USERS {
            assert!(user.openid.starts_with(OA_PREFIX), "{}", user.openid);
        }
        for id in &ids {
            assert_eq!(id.len(), 28, "{id}");
            assert!(id.starts_with('o'), "{id}");
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn well_formed_users_give_valid_json_with_their_fields() {
        for user in USERS.iter().filter(|u| !u.broken) {
            let body = userinfo_body(user, user.openid, Lang::ZhCn);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(v["nickname"], user.nickname);
            assert_eq!(v["headimgurl"], user.headimgurl);
            assert_eq!(v.get("unionid").is_some(), user.unionid.is_some());
        }
        let v: serde_json::Value =
            serde_json::from_slice(&userinfo_body(&USERS[1], USERS[1].openid, Lang::ZhCn))
                .expect("valid JSON");
        assert_eq!(v["sex"], "2");
    }

    #[test]
    fn region_follows_lang() {
        let city = |lang| {
            let v: serde_json::Value =
                serde_json::from_slice(&userinfo_body(&USERS[0], USERS[0].openid, lang))
                    .expect("valid JSON");
            v["province"].as_str().unwrap_or_default().to_string()
        };
        assert_eq!(city(Lang::ZhCn), "广东");
        assert_eq!(city(Lang::ZhTw), "廣東");
        assert_eq!(city(Lang::En), "Guangdong");
        assert_eq!(Lang::parse(Some("xx")), Lang::ZhCn);
    }

    #[test]
    fn the_broken_user_gives_invalid_json_with_raw_controls_and_bad_utf8() {
        let body = userinfo_body(&USERS[2], USERS[2].openid, Lang::ZhCn);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        assert!(body.contains(&0x01) && body.contains(&0x1f));
        assert!(std::str::from_utf8(&body).is_err());
        assert!(body.windows(2).any(|w| w == b"\\/"));
    }
}

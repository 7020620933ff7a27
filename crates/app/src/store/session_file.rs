//! The session file (WXAUTH_SESSION_FILE): live sessions, the key login
//! states and scan tickets are signed with, and the states already spent,
//! written at shutdown and read back at start, so a restart logs no one out
//! and a login under way still completes. It holds WeChat tokens and the key:
//! written atomically (temp file in the same directory, fsync, rename) with
//! mode 0600, and removed once read.

use crate::store::logins::Logins;
use crate::store::sessions::{Session, SessionStore};
use crate::store::signed::Key;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes. Version 1 (before signed states) is
/// still read, for its sessions; any other is not.
const VERSION: u32 = 2;

#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    key: String,
    sessions: Vec<(&'a str, &'a Session)>,
    spent: Vec<(&'a str, Option<&'a str>, i64)>,
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    #[serde(default)]
    key: Option<String>,
    sessions: Vec<(String, Session)>,
    #[serde(default)]
    spent: Vec<(String, Option<String>, i64)>,
}

/// Writes every session, the signing key and the spent states to `path`,
/// replacing it atomically. Returns how many sessions were written.
pub fn save(path: &Path, sessions: &SessionStore, logins: &Logins) -> io::Result<usize> {
    let saving = Saving {
        version: VERSION,
        key: logins.key().to_hex(),
        sessions: sessions.iter().collect(),
        spent: logins.iter().collect(),
    };
    let temp = temp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer(&mut out, &saving).map_err(io::Error::other)?;
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    fs::rename(&temp, path)?;
    // Make the rename itself durable; not every filesystem allows this.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(saving.sessions.len())
}

/// Reads `path` into the stores, dropping expired entries, then removes the
/// file: if the process later dies without saving, sessions ended in the
/// meantime (logouts) must not come back. A missing file is no error. The
/// saved key replaces `logins`' (fresh) one, so states issued before the
/// restart still check out. Returns how many sessions were restored.
pub fn load(
    path: &Path,
    sessions: &mut SessionStore,
    logins: &mut Logins,
    now: i64,
) -> Result<usize, String> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let saved: Saved = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a session file: {e}", path.display()))?;
    if !(1..=VERSION).contains(&saved.version) {
        return Err(format!(
            "{} has version {}, expected {VERSION}",
            path.display(),
            saved.version
        ));
    }
    let key = match saved.key.as_deref().map(Key::from_hex) {
        Some(Some(key)) => Some(key),
        Some(None) => return Err(format!("{} has a malformed key", path.display())),
        None => None,
    };
    if let Some(key) = key {
        *logins = Logins::new(key);
    }
    // Logins refuse an openid or unionid no header could carry
    // (wechat::identity); a file from before that rule could hold one. Such
    // a session is left behind here, once, rather than checked on every
    // /auth/check.
    let mut unusable = 0;
    for (id, session) in saved.sessions {
        let user = &session.user;
        let usable = crate::wechat::client::identity("openid", user.openid()).is_ok()
            && user
                .unionid()
                .is_none_or(|u| crate::wechat::client::identity("unionid", u).is_ok());
        if usable {
            sessions.restore(&id, session, now);
        } else {
            unusable += 1;
        }
    }
    if unusable > 0 {
        crate::log::warn(&format!(
            "{}: {unusable} saved session(s) hold an openid or unionid no header can carry; \
             left out (those users log in again)",
            path.display()
        ));
    }
    for (nonce, session, expires) in &saved.spent {
        logins.restore(nonce, session.as_deref(), *expires, now);
    }
    if let Err(e) = fs::remove_file(path) {
        crate::log::warn(&format!(
            "cannot remove {} after reading it: {e}",
            path.display()
        ));
    }
    Ok(sessions.len())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sessions".into());
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scope;
    use crate::store::logins::LoginCookie;
    use crate::store::sessions::{StoredUser, Tokens};
    use crate::wechat::client::WechatUser;
    use std::os::unix::fs::PermissionsExt;

    fn session(nickname: &str) -> Session {
        Session {
            scope: Scope::Userinfo,
            user: StoredUser::from(WechatUser {
                openid: "o1".into(),
                unionid: Some("u1".into()),
                nickname: nickname.into(),
                ..WechatUser::default()
            }),
            tokens: Tokens::new("A", "R", 7000, 9000),
            expires: 0,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wxauth-persist-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn sessions_survive_a_save_and_load_in_order_and_expired_ones_are_dropped() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("sessions.json");
        let mut sessions = SessionStore::new(100, 10);
        let old = sessions.create(session("老"), 0);
        let new = sessions.create(session("新🐼"), 50);
        let mut logins = Logins::new(Key::random());
        let mut cookie = LoginCookie::new();
        let state = logins.begin(&mut cookie, "/next", 40);
        let checked = logins.check(&state, [cookie.value().as_str()], 40).unwrap();
        logins.spend(&checked, 40);
        logins.complete(&checked, &new);
        assert_eq!(save(&path, &sessions, &logins).unwrap(), 2);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let mut back = SessionStore::new(100, 10);
        let mut back_logins = Logins::new(Key::random());
        // At t=120 the first session (expires 100) is gone, the second (150) is not.
        assert_eq!(load(&path, &mut back, &mut back_logins, 120).unwrap(), 1);
        assert!(back.get(&old, 120).is_none());
        let restored = back.get(&new, 120).unwrap();
        assert_eq!(restored.user.nickname(), "新🐼");
        assert_eq!(restored.tokens.refresh_token(), "R");
        // The key came back: the state still checks out, and is still spent.
        let again = back_logins
            .check(&state, [cookie.value().as_str()], 120)
            .unwrap();
        assert_eq!(again.next, "/next");
        let spent = back_logins.spent(&again, 120).unwrap();
        assert_eq!(spent.session(), Some(new.as_str()));
        assert!(!path.exists(), "the file is removed once read");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_missing_file_is_an_empty_start_and_a_corrupt_one_an_error() {
        let dir = temp_dir("corrupt");
        let path = dir.join("sessions.json");
        let (mut s, mut l) = (SessionStore::new(100, 10), Logins::new(Key::random()));
        assert_eq!(load(&path, &mut s, &mut l, 0), Ok(0));
        for junk in [
            &b"{not json"[..],
            b"",
            b"{\"version\":99,\"sessions\":[],\"logins\":[]}",
            b"{\"version\":2,\"key\":\"abc\",\"sessions\":[]}",
            b"\xff\xfe",
        ] {
            fs::write(&path, junk).unwrap();
            assert!(load(&path, &mut s, &mut l, 0).is_err());
            assert!(s.is_empty());
        }
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_version_1_file_keeps_its_sessions_across_the_upgrade() {
        let dir = temp_dir("v1");
        let path = dir.join("sessions.json");
        let mut sessions = SessionStore::new(100, 10);
        let id = sessions.create(session("老"), 0);
        save(&path, &sessions, &Logins::new(Key::random())).unwrap();
        let mut file: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        file["version"] = 1.into();
        file.as_object_mut().unwrap().remove("key");
        file.as_object_mut().unwrap().remove("spent");
        file["logins"] = serde_json::json!([["s", {"browser": "b", "next": "/", "created": 0}]]);
        fs::write(&path, file.to_string()).unwrap();
        let (mut back, mut logins) = (SessionStore::new(100, 10), Logins::new(Key::random()));
        assert_eq!(load(&path, &mut back, &mut logins, 1), Ok(1));
        assert!(back.get(&id, 1).is_some());
        fs::remove_dir_all(&dir).ok();
    }
}

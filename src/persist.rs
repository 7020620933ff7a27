//! The session file (WXAUTH_SESSION_FILE): live sessions and logins under
//! way, written at shutdown and read back at start, so a restart logs no one
//! out. It holds WeChat tokens: written atomically (temp file in the same
//! directory, fsync, rename) with mode 0600, and removed once read.

use crate::session::{LoginState, LoginStates, Session, SessionStore};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes; a file of another version is not read.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    sessions: Vec<(&'a str, &'a Session)>,
    logins: Vec<(&'a String, &'a LoginState)>,
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    sessions: Vec<(String, Session)>,
    logins: Vec<(String, LoginState)>,
}

/// Writes every session and login to `path`, replacing it atomically.
/// Returns how many sessions were written.
pub fn save(path: &Path, sessions: &SessionStore, logins: &LoginStates) -> io::Result<usize> {
    let saving = Saving {
        version: VERSION,
        sessions: sessions.iter().collect(),
        logins: logins.iter().collect(),
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
/// meantime (logouts) must not come back. A missing file is no error.
/// Returns how many sessions were restored.
pub fn load(
    path: &Path,
    sessions: &mut SessionStore,
    logins: &mut LoginStates,
    now: i64,
) -> Result<usize, String> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let saved: Saved = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a session file: {e}", path.display()))?;
    if saved.version != VERSION {
        return Err(format!(
            "{} has version {}, expected {VERSION}",
            path.display(),
            saved.version
        ));
    }
    for (id, session) in saved.sessions {
        sessions.restore(&id, session, now);
    }
    for (state, login) in saved.logins {
        logins.restore(state, login, now);
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
    use crate::session::{StoredUser, Tokens};
    use crate::wechat::WechatUser;
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
        let mut logins = LoginStates::new(10);
        let state = logins.begin("browser", "/next", 40);
        assert_eq!(save(&path, &sessions, &logins).unwrap(), 2);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let mut back = SessionStore::new(100, 10);
        let mut back_logins = LoginStates::new(10);
        // At t=120 the first session (expires 100) is gone, the second (150) is not.
        assert_eq!(load(&path, &mut back, &mut back_logins, 120).unwrap(), 1);
        assert!(back.get(&old, 120).is_none());
        let restored = back.get(&new, 120).unwrap();
        assert_eq!(restored.user.nickname(), "新🐼");
        assert_eq!(restored.tokens.refresh_token(), "R");
        assert_eq!(back_logins.get(&state, 120).unwrap().next, "/next");
        assert!(!path.exists(), "the file is removed once read");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_missing_file_is_an_empty_start_and_a_corrupt_one_an_error() {
        let dir = temp_dir("corrupt");
        let path = dir.join("sessions.json");
        let (mut s, mut l) = (SessionStore::new(100, 10), LoginStates::new(10));
        assert_eq!(load(&path, &mut s, &mut l, 0), Ok(0));
        for junk in [
            &b"{not json"[..],
            b"",
            b"{\"version\":99,\"sessions\":[],\"logins\":[]}",
            b"\xff\xfe",
        ] {
            fs::write(&path, junk).unwrap();
            assert!(load(&path, &mut s, &mut l, 0).is_err());
            assert!(s.is_empty());
        }
        fs::remove_dir_all(&dir).ok();
    }
}

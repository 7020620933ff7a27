//! The session file (WXAUTH_SESSION_FILE): live sessions, the key login
//! states and scan tickets are signed with, and the states already spent,
//! written whole at a clean stop and read back at start, so a restart logs
//! no one out and a login under way still completes. Between the two, the
//! journal beside it (`<file>.journal`, journal.rs) follows every change, so
//! a crash loses at most the last ~100 ms of them.
//!
//! At start (`open`): the session file and the journal are read, the one
//! with the higher generation wins (each file written whole is numbered
//! above any on disk, journal.rs), the state goes into the stores, a fresh
//! journal holding it all is written, and only then is the session file
//! removed. At a clean stop (`save_after`): the journal thread has written
//! everything, the session file is written whole above the journal's
//! generation, and the journal is removed.
//!
//! Both hold WeChat tokens and the key: written as a temp file in the same
//! directory, fsync, rename, with mode 0600; a temp file is removed on any
//! error, so no partial copy of the tokens is left behind.

use crate::clock::Clock;
use crate::store::journal::{self, Journal, Replayed};
use crate::store::logins::Logins;
use crate::store::sessions::{Session, SessionStore};
use crate::store::signed::Key;
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes. Version 1 (before signed states) is
/// still read, for its sessions; any other is not. (The generation, added
/// later, is optional: a file without one is generation 0.)
const VERSION: u32 = 2;

#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    generation: u64,
    key: String,
    sessions: Vec<(&'a str, &'a Session)>,
    spent: Vec<(&'a str, Option<&'a str>, i64)>,
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    #[serde(default)]
    generation: u64,
    #[serde(default)]
    key: Option<String>,
    sessions: Vec<(String, Session)>,
    #[serde(default)]
    spent: Vec<(String, Option<String>, i64)>,
}

/// What a session file or a journal holds, to go into the stores.
struct State {
    key: Option<Key>,
    sessions: Vec<(String, Session)>,
    spent: Vec<(String, Option<String>, i64)>,
}

impl State {
    fn of_journal(replayed: &Replayed) -> State {
        State {
            key: Some(replayed.key.clone()),
            sessions: replayed
                .sessions()
                .map(|(id, session)| (id.to_string(), session.clone()))
                .collect(),
            spent: replayed
                .spent()
                .map(|(n, session, expires)| (n.to_string(), session.map(str::to_string), expires))
                .collect(),
        }
    }
}

/// Writes every session, the signing key and the spent states to `path`,
/// replacing it atomically, then removes the journal. Returns how many
/// sessions were written.
pub fn save(path: &Path, sessions: &SessionStore, logins: &Logins) -> io::Result<usize> {
    save_after(path, 0, sessions, logins)
}

/// `save`, numbering the file above `generation` (the journal's, which its
/// thread may still rewrite under that number) and above any file on disk.
pub fn save_after(
    path: &Path,
    generation: u64,
    sessions: &SessionStore,
    logins: &Logins,
) -> io::Result<usize> {
    let journal = journal::path_for(path);
    let on_disk = journal::file_generation(path).max(journal::generation_of(&journal).unwrap_or(0));
    let saving = Saving {
        version: VERSION,
        generation: generation.max(on_disk) + 1,
        key: logins.key().to_hex(),
        sessions: sessions.iter().collect(),
        spent: logins.iter().collect(),
    };
    let temp = temp_path(path);
    if let Err(e) = write_whole(&temp, &saving).and_then(|()| fs::rename(&temp, path)) {
        // Whatever part of it was written holds tokens.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    journal::sync_dir(path);
    // The file outranks the journal now: one left behind is never replayed.
    match fs::remove_file(&journal) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => crate::log::warn(&format!(
            "cannot remove {} after saving: {e} (harmless: {} is newer)",
            journal.display(),
            path.display()
        )),
        _ => journal::sync_dir(&journal),
    }
    Ok(saving.sessions.len())
}

fn write_whole(temp: &Path, saving: &Saving) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer(&mut out, saving).map_err(io::Error::other)?;
    out.flush()?;
    out.get_ref().sync_all()
}

/// Reads the session file at `path`: its generation and state, None if
/// there is none.
fn read_snapshot(path: &Path) -> Result<Option<(u64, State)>, String> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
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
    let state = State {
        key,
        sessions: saved.sessions,
        spent: saved.spent,
    };
    Ok(Some((saved.generation, state)))
}

/// What `restore` found.
pub struct Restored {
    /// Above every generation seen on disk: the number for the next file
    /// written whole.
    pub next_generation: u64,
    /// How many sessions came back and from which file; None when there was
    /// nothing to restore; an error when the files were left unused (the
    /// stores are then as they were).
    pub outcome: Result<Option<(usize, PathBuf)>, String>,
}

/// Reads the session file at `path` and its journal into the stores,
/// dropping what has expired; removes neither. Of the two, the one with the
/// higher generation wins; a damaged journal that may be the newer makes
/// both unusable (the session file alone could bring back sessions ended
/// since it was written). The saved key replaces `logins`' (fresh) one, so
/// states issued before the restart still check out. `cap` is the session
/// store's.
pub fn restore(
    path: &Path,
    sessions: &mut SessionStore,
    logins: &mut Logins,
    now: i64,
    cap: usize,
) -> Restored {
    let journal_path = journal::path_for(path);
    let snapshot = read_snapshot(path);
    let replayed = journal::replay(&journal_path, cap, now);
    let snapshot_generation = match &snapshot {
        Ok(Some((generation, _))) => *generation,
        _ => 0,
    };
    let journal_generation = match &replayed {
        Ok(Some(replayed)) => replayed.generation,
        Ok(None) => 0,
        Err(unreadable) => unreadable.generation.unwrap_or(0),
    };
    let next_generation = snapshot_generation.max(journal_generation) + 1;
    let from_journal = |replayed: Replayed| {
        if replayed.torn {
            crate::log::info(&format!(
                "{}: its last line was cut short by the crash; ignored",
                journal_path.display()
            ));
        }
        (State::of_journal(&replayed), journal_path.clone())
    };
    let chosen = match (snapshot, replayed) {
        (Ok(None), Ok(None)) => Ok(None),
        (Ok(Some((_, state))), Ok(None)) => Ok(Some((state, path.to_path_buf()))),
        (Ok(None), Ok(Some(replayed))) => Ok(Some(from_journal(replayed))),
        (Ok(Some((generation, state))), Ok(Some(replayed))) => {
            if replayed.generation > generation {
                Ok(Some(from_journal(replayed)))
            } else {
                Ok(Some((state, path.to_path_buf())))
            }
        }
        (Err(e), Ok(Some(replayed))) => {
            crate::log::warn(&format!("{e}; using the journal"));
            Ok(Some(from_journal(replayed)))
        }
        (Err(e), Ok(None)) => Err(e),
        (Ok(None), Err(unreadable)) => Err(unreadable.why),
        // A damaged journal older than the file: left behind by a clean stop.
        (Ok(Some((generation, state))), Err(unreadable))
            if unreadable.generation.is_some_and(|g| g < generation) =>
        {
            Ok(Some((state, path.to_path_buf())))
        }
        (Ok(Some(_)), Err(unreadable)) => Err(format!(
            "{}; the session file alone could bring back sessions ended since it was written",
            unreadable.why
        )),
        (Err(e), Err(unreadable)) => Err(format!("{e}; {}", unreadable.why)),
    };
    let outcome = chosen.map(|found| {
        found.map(|(state, from)| {
            let n = apply(state, sessions, logins, now, &from);
            (n, from)
        })
    });
    Restored {
        next_generation,
        outcome,
    }
}

/// Puts a state into the stores; returns how many sessions they hold.
fn apply(
    state: State,
    sessions: &mut SessionStore,
    logins: &mut Logins,
    now: i64,
    from: &Path,
) -> usize {
    if let Some(key) = state.key {
        *logins = Logins::new(key);
    }
    // Logins refuse an openid or unionid no header could carry
    // (wechat::identity); a file from before that rule could hold one. Such
    // a session is left behind here, once, rather than checked on every
    // /auth/check.
    let mut unusable = 0;
    for (id, session) in state.sessions {
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
            from.display()
        ));
    }
    for (nonce, session, expires) in &state.spent {
        logins.restore(nonce, session.as_deref(), *expires, now);
    }
    sessions.len()
}

/// Reads the session file and its journal into the stores (`restore`, with
/// no cap but the store's), then removes both: if the process later dies
/// without saving, sessions ended in the meantime (logouts) must not come
/// back. A missing file is no error. Returns how many sessions were
/// restored. (The server itself uses `open`, which keeps a journal.)
pub fn load(
    path: &Path,
    sessions: &mut SessionStore,
    logins: &mut Logins,
    now: i64,
) -> Result<usize, String> {
    restore(path, sessions, logins, now, usize::MAX).outcome?;
    for file in [path.to_path_buf(), journal::path_for(path)] {
        if let Err(e) = fs::remove_file(&file) {
            if e.kind() != io::ErrorKind::NotFound {
                crate::log::warn(&format!(
                    "cannot remove {} after reading it: {e}",
                    file.display()
                ));
            }
        }
    }
    Ok(sessions.len())
}

/// What `open` restored and set up.
pub struct Opened {
    /// The journal that follows the stores from now on (off if it could not
    /// be written, which `open` has said).
    pub journal: Journal,
    /// As in `Restored`.
    pub restored: Result<Option<(usize, PathBuf)>, String>,
}

/// At start: restores the session file and its journal into the stores
/// (`restore`), writes a fresh journal holding all of it, numbered above
/// both, and starts its thread; then removes the session file. If no
/// journal can be written, the old files are removed instead (so nothing
/// stale comes back after a crash) and the server runs in memory only; if
/// they cannot be removed either, Err: starting would let a crash bring
/// back sessions ended while running.
pub fn open(
    path: &Path,
    sessions: &mut SessionStore,
    logins: &mut Logins,
    cap: usize,
    clock: Clock,
) -> Result<Opened, String> {
    let restored = restore(path, sessions, logins, clock.now(), cap);
    // Left by a crash while one was being written; both may hold tokens.
    for temp in [temp_path(path), journal::temp_path_for(path)] {
        let _ = fs::remove_file(temp);
    }
    let journal_path = journal::path_for(path);
    match Journal::start(path, restored.next_generation, sessions, logins, cap, clock) {
        Ok(journal) => {
            // The journal outranks the file now: removing it only tidies up.
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    crate::log::warn(&format!(
                        "cannot remove {} after reading it: {e} (harmless: {} is newer)",
                        path.display(),
                        journal_path.display()
                    ));
                }
            }
            Ok(Opened {
                journal,
                restored: restored.outcome,
            })
        }
        Err(e) => {
            let stuck: Vec<String> = [path, journal_path.as_path()]
                .into_iter()
                .filter(|file| match fs::remove_file(file) {
                    Ok(()) => false,
                    Err(e) => e.kind() != io::ErrorKind::NotFound,
                })
                .map(|file| file.display().to_string())
                .collect();
            if !stuck.is_empty() {
                return Err(format!(
                    "WXAUTH_SESSION_FILE: cannot write {} ({e}) nor remove {}: a crash would \
                     bring back sessions ended while running; make the directory writable",
                    journal_path.display(),
                    stuck.join(" and ")
                ));
            }
            crate::log::error(&format!(
                "cannot write {}: {e}; sessions are kept in memory only (a crash loses them, \
                 a clean stop still tries to save them)",
                journal_path.display()
            ));
            Ok(Opened {
                journal: Journal::off(),
                restored: restored.outcome,
            })
        }
    }
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
    use crate::clock::Clock;
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
            other_openid: None,
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

    #[test]
    fn the_newer_of_the_file_and_the_journal_wins_and_a_doubtful_journal_spoils_both() {
        use crate::store::journal;
        let dir = temp_dir("generations");
        let path = dir.join("sessions.json");
        let journal_path = journal::path_for(&path);
        let now = crate::clock::Clock::new().now();
        let mut sessions = SessionStore::new(1000, 10);
        let stays = sessions.create(session("stays"), now);
        let leaves = sessions.create(session("leaves"), now);
        let logins = Logins::new(Key::random());
        save(&path, &sessions, &logins).unwrap();
        let stale = fs::read(&path).unwrap();

        // A start: the journal is numbered above the file; then a logout.
        let mut back = (SessionStore::new(1000, 10), Logins::new(Key::random()));
        let opened = open(&path, &mut back.0, &mut back.1, 10, Clock::new()).unwrap();
        assert_eq!(opened.restored, Ok(Some((2, path.clone()))));
        let mut journal = opened.journal;
        assert!(!path.exists(), "removed once the journal holds it all");
        back.0.remove(&leaves);
        journal.touch(&leaves);
        journal.flush(&back.0);
        journal.close(&back.0);
        // The file comes back (its removal failed, say): the journal still wins.
        fs::write(&path, &stale).unwrap();
        let restore_into = |cap| {
            let mut stores = (SessionStore::new(1000, 10), Logins::new(Key::random()));
            let restored = restore(&path, &mut stores.0, &mut stores.1, now, cap);
            (restored, stores.0)
        };
        let (restored, got) = restore_into(10);
        assert_eq!(restored.outcome, Ok(Some((1, journal_path.clone()))));
        assert!(got.get(&stays, now).is_some() && got.get(&leaves, now).is_none());
        let journal_generation = journal::generation_of(&journal_path).unwrap();
        assert_eq!(restored.next_generation, journal_generation + 1);

        // A journal damaged beyond its last line, newer than the file: neither.
        let mut text = fs::read_to_string(&journal_path).unwrap();
        let good = text.clone();
        text.insert_str(text.find('\n').unwrap() + 1, "{\"put\":\n");
        fs::write(&journal_path, &text).unwrap();
        let (restored, got) = restore_into(10);
        assert!(restored.outcome.is_err() && got.is_empty());

        // A clean stop writes the file above the journal: now the file wins,
        // and a damaged journal older than it is no reason to refuse it.
        fs::write(&journal_path, &good).unwrap();
        save_after(&path, journal_generation, &back.0, &back.1).unwrap();
        assert!(!journal_path.exists(), "removed once the file is written");
        fs::write(&journal_path, &text).unwrap();
        let (restored, got) = restore_into(10);
        assert_eq!(restored.outcome, Ok(Some((1, path.clone()))));
        assert!(got.get(&stays, now).is_some() && got.get(&leaves, now).is_none());
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_save_that_fails_leaves_no_temp_file() {
        let dir = temp_dir("failed-save");
        let path = dir.join("sessions.json");
        let temp = temp_path(&path);
        let mut sessions = SessionStore::new(100, 10);
        sessions.create(session("a"), 0);
        let logins = Logins::new(Key::random());
        // The rename fails: the temp file was written whole, and must go.
        fs::create_dir_all(path.join("in-the-way")).unwrap();
        assert!(save(&path, &sessions, &logins).is_err());
        assert!(!temp.exists(), "no partial copy of the tokens");
        fs::remove_dir_all(&path).unwrap();
        // The temp file cannot be made at all.
        fs::create_dir_all(temp.join("in-the-way")).unwrap();
        assert!(save(&path, &sessions, &logins).is_err());
        assert!(!path.exists());
        fs::remove_dir_all(&dir).ok();
    }
}

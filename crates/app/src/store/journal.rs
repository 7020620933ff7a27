//! The session journal, `<session file>.journal`: every change to the
//! sessions and spent login states since the server started, so that a
//! crash (kill -9, the OOM killer, a power cut) loses at most the last
//! ~100 ms of them rather than every session.
//!
//! Who does what. The request loop never touches the disk. A request marks
//! the sessions it stored, replaced or ended (`Journal::touch`); after it
//! (`Journal::flush`) each one's current form, or its end, goes on a bounded
//! channel with `try_send`: a clone of the session and an id, no JSON. The
//! `journal` thread serializes them, appends one JSON line per change and
//! writes each batch out at once (kill -9 loses only what it had not yet
//! received), and calls fdatasync at most every 100 ms after a write (a
//! power cut loses at most the last ~100 ms).
//!
//! A stuck disk. When the channel is full the loop does not wait: the ids it
//! could not send stay marked and go with a later request, in their state
//! then (late, not lost), and the loop says once that the journal is behind.
//! Past `MAX_HELD` of them it gives the journal up: the thread removes the
//! file as soon as it runs again, so a crash restores no session rather than
//! a wrong set, and the server goes on in memory only (a clean stop still
//! saves everything). Spent-state changes that find the channel full are
//! dropped: after a crash, a reload of that callback then gets an error page
//! instead of landing (WeChat takes a code once), nothing worse. While the
//! disk is stuck nothing becomes durable: a crash in that window restores
//! the state from before it, logouts made during it included.
//!
//! Format: UTF-8, one JSON object per line, written by the thread alone.
//!
//! ```text
//! {"journal":{"version":1,"generation":G,"key":"<64 hex digits>"}}   first line
//! {"put":{"id":"<session id>","session":{…as in the session file…}}} stored or replaced
//! {"end":{"id":"<session id>"}}                                      ended
//! {"spent":{"nonce":"<nonce>","session":"<session id>"|null,"expires":T}}
//! {"unspent":{"nonce":"<nonce>"}}                                    spend undone
//! ```
//!
//! The file begins with the whole state (the header, then a `put` for every
//! session, oldest first, and a `spent` for every spent state), then the
//! changes: replayed in order, later lines win. A last line cut short (a
//! crash mid-write) is ignored; a bad line with good ones after it means the
//! file is damaged, and then nothing in it is trusted (a lost `end` would
//! bring a logout back).
//!
//! Generations. Each file written whole (the session file at a clean stop,
//! this journal at start) is numbered above any file on disk, and at start
//! the higher number wins (session_file.rs): a session file whose removal
//! failed is never replayed without the journal that came after it, and a
//! journal whose removal failed never overrides the session file written
//! after it.
//!
//! Bounded. The thread keeps its own copy of the live sessions and spent
//! states (a clone of each session, so the journal doubles what sessions
//! cost in memory) and, once the file has grown past its base by
//! clamp(3 × base, 1 MiB, 64 MiB), rewrites it from that copy (temp file,
//! fsync, rename) under the same generation.

use crate::clock::Clock;
use crate::log;
use crate::random;
use crate::store::expiring::{Expires, Expiring};
use crate::store::logins::{Checked, Logins, NONCE_LEN};
use crate::store::sessions::{Session, SessionStore, ID_LEN};
use crate::store::signed::Key;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a written change waits for its fdatasync.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);
/// Changes in flight between the loop and the thread (a session clone
/// each, a few hundred bytes: 10 MB or so when full): a stall of 1.6 s at
/// 10,000 logins a second before the loop starts holding ids back.
const QUEUE: usize = 16_384;
/// Session ids the loop holds back while the channel is full before it
/// gives the journal up (32 bytes and a String each).
const MAX_HELD: usize = 100_000;
/// Spent states the copy keeps at most, as `Logins` does.
const MAX_SPENT: usize = 100_000;
/// Growth past the base before a rewrite: clamp(3 × base, these).
const MIN_GROWTH: u64 = 1 << 20;
const MAX_GROWTH: u64 = 64 << 20;
/// How long a clean stop waits for the thread to write what it was sent.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Bumped when the line format changes.
const VERSION: u32 = 1;

/// One line of the journal, as written.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Out<'a> {
    Journal {
        version: u32,
        generation: u64,
        key: &'a str,
    },
    Put {
        id: &'a str,
        session: &'a Session,
    },
    End {
        id: &'a str,
    },
    Spent {
        nonce: &'a str,
        session: Option<&'a str>,
        expires: i64,
    },
    Unspent {
        nonce: &'a str,
    },
}

/// One line of the journal, as read.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum In {
    Journal {
        version: u32,
        generation: u64,
        key: String,
    },
    Put {
        id: String,
        session: Box<Session>,
    },
    End {
        id: String,
    },
    Spent {
        nonce: String,
        session: Option<String>,
        expires: i64,
    },
    Unspent {
        nonce: String,
    },
}

/// A change, from the loop to the thread.
enum Change {
    /// Shared with the store (copy on write there): sending one costs the
    /// loop a pointer, and the thread's view costs no second copy.
    Put(SessionId, Arc<Session>),
    End(SessionId),
    Spent(Nonce, Record),
    Unspent(Nonce),
}

type SessionId = [u8; ID_LEN];
type Nonce = [u8; NONCE_LEN];

fn session_id(id: &str) -> Option<SessionId> {
    random::is_token(id, ID_LEN).then(|| id.as_bytes().try_into().expect("ID_LEN bytes"))
}

fn nonce(nonce: &str) -> Option<Nonce> {
    random::is_token(nonce, NONCE_LEN).then(|| nonce.as_bytes().try_into().expect("NONCE_LEN"))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("ids and nonces are ASCII")
}

/// A spent state as the journal keeps it: the session its login made, and
/// when the state expires. (One still exchanging comes back as failed: the
/// exchange died with the process.)
#[derive(Clone, Copy)]
struct Record {
    session: Option<SessionId>,
    expires: i64,
}

impl Expires for Record {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Sessions and spent states in the order they came, bounded like the
/// stores: what the thread writes a rewrite from, and what a replay builds.
struct View {
    sessions: Expiring<SessionId, Arc<Session>>,
    spent: Expiring<Nonce, Record>,
}

impl View {
    fn new(cap: usize) -> View {
        View {
            sessions: Expiring::new(cap),
            spent: Expiring::new(MAX_SPENT),
        }
    }

    /// A copy of the stores.
    fn of(sessions: &SessionStore, logins: &Logins, cap: usize) -> View {
        let mut view = View::new(cap);
        for (id, session) in sessions.iter_shared() {
            if let Some(id) = session_id(id) {
                view.sessions.insert(id, Arc::clone(session));
            }
        }
        for (n, session, expires) in logins.iter() {
            if let Some(n) = nonce(n) {
                let session = session.and_then(session_id);
                view.spent.insert(n, Record { session, expires });
            }
        }
        view
    }

    /// Applies a change; false when it changes nothing (the end of a session
    /// the journal never had: a stale cookie at logout), so no line is due.
    fn apply(&mut self, change: Change, now: i64) -> bool {
        match change {
            Change::Put(id, session) => {
                if let Some(stored) = self.sessions.stored_mut(&id) {
                    // A replaced session keeps its place, as in the store.
                    *stored = session;
                } else {
                    if self.sessions.is_full() {
                        self.sessions.sweep_oldest(now);
                    }
                    self.sessions.insert(id, session);
                }
                true
            }
            Change::End(id) => self.sessions.remove(&id).is_some(),
            Change::Spent(n, record) => {
                if self.spent.is_full() && !self.spent.contains_key(&n) {
                    self.spent.sweep_oldest(now);
                }
                self.spent.insert(n, record);
                true
            }
            Change::Unspent(n) => self.spent.remove(&n).is_some(),
        }
    }
}

/// What a journal file held, replayed.
pub struct Replayed {
    pub generation: u64,
    pub key: Key,
    /// The last line was cut short and ignored.
    pub torn: bool,
    view: View,
}

impl Replayed {
    /// Every session, oldest first.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, &Session)> {
        self.view
            .sessions
            .iter()
            .map(|(id, session)| (text(id), &**session))
    }

    /// Every spent state, oldest first: nonce, session, expiry.
    pub fn spent(&self) -> impl Iterator<Item = (&str, Option<&str>, i64)> {
        self.view.spent.iter().map(|(n, record)| {
            let session = record.session.as_ref().map(|id| text(id));
            (text(n), session, record.expires)
        })
    }
}

/// Why a journal file could not be replayed, and its generation if its
/// header could be read.
#[derive(Debug)]
pub struct Unreadable {
    pub generation: Option<u64>,
    pub why: String,
}

/// The journal that goes with the session file `path`.
pub fn path_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The temp file a journal is written whole in before it is renamed.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sessions".into());
    path.with_file_name(format!(".{name}.journal.tmp"))
}

/// The generation in a journal's first line, if there is a journal and its
/// first line reads (cheap: the first line only).
pub fn generation_of(journal: &Path) -> Option<u64> {
    let file = File::open(journal).ok()?;
    let mut first = String::new();
    io::BufRead::read_line(&mut io::BufReader::new(file), &mut first).ok()?;
    match serde_json::from_str(&first) {
        Ok(In::Journal { generation, .. }) => Some(generation),
        _ => None,
    }
}

/// Only the generation of a session file.
#[derive(Deserialize)]
struct FileGeneration {
    #[serde(default)]
    generation: u64,
}

/// The generation of the session file at `path`; 0 if there is none, it
/// has none (written before generations), or it does not read.
pub fn file_generation(path: &Path) -> u64 {
    fs::read(path)
        .ok()
        .and_then(|text| serde_json::from_slice::<FileGeneration>(&text).ok())
        .map_or(0, |g| g.generation)
}

/// Replays the journal file `journal`: None when there is none. `cap` is
/// the session store's: past it the oldest go, as they did while running.
pub fn replay(journal: &Path, cap: usize, now: i64) -> Result<Option<Replayed>, Unreadable> {
    let bytes = match fs::read(journal) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Unreadable {
                generation: None,
                why: format!("cannot read {}: {e}", journal.display()),
            })
        }
    };
    let unreadable = |generation, why: String| Unreadable {
        generation,
        why: format!("{}: {why}", journal.display()),
    };
    // Every line but the last ends in a newline; a last one without it was
    // being written when the process died.
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let tail = lines.pop().unwrap_or_default();
    let mut torn = !tail.iter().all(|b| b.is_ascii_whitespace() || *b == 0);
    let mut lines = lines.into_iter();
    let (generation, key) = match lines.next().map(serde_json::from_slice) {
        Some(Ok(In::Journal {
            version: VERSION,
            generation,
            key,
        })) => match Key::from_hex(&key) {
            Some(key) => (generation, key),
            None => return Err(unreadable(Some(generation), "a malformed key".into())),
        },
        Some(Ok(In::Journal { version, .. })) => {
            return Err(unreadable(
                None,
                format!("version {version}, expected {VERSION}"),
            ))
        }
        _ => return Err(unreadable(None, "not a session journal".into())),
    };
    let mut view = View::new(cap);
    let mut bad = None;
    for (number, line) in lines.enumerate() {
        let parsed = serde_json::from_slice::<In>(line);
        if bad.is_some() {
            if parsed.is_ok() {
                return Err(unreadable(
                    Some(generation),
                    format!("line {} is damaged", bad.unwrap_or(0) + 2),
                ));
            }
            continue;
        }
        let change = match parsed {
            Ok(In::Put { id, session }) => {
                session_id(&id).map(|id| Change::Put(id, Arc::from(session)))
            }
            Ok(In::End { id }) => session_id(&id).map(Change::End),
            Ok(In::Spent {
                nonce: n,
                session,
                expires,
            }) => nonce(&n).map(|n| {
                let session = session.as_deref().and_then(session_id);
                Change::Spent(n, Record { session, expires })
            }),
            Ok(In::Unspent { nonce: n }) => nonce(&n).map(Change::Unspent),
            Ok(In::Journal { .. }) => {
                return Err(unreadable(
                    Some(generation),
                    format!("a second header at line {}", number + 2),
                ))
            }
            // Zeros or half a line where the file ended at a crash: fine if
            // nothing good follows.
            Err(_) => {
                bad = Some(number);
                None
            }
        };
        if let Some(change) = change {
            view.apply(change, now);
        }
    }
    torn |= bad.is_some();
    Ok(Some(Replayed {
        generation,
        key,
        torn,
        view,
    }))
}

/// The journal as the request loop holds it: a sender, or nothing (no
/// session file, or the journal was given up).
pub struct Journal {
    on: Option<On>,
    /// The journal's generation (kept after it is given up: the session
    /// file written at the stop must be numbered above it).
    generation: u64,
}

struct On {
    tx: SyncSender<Change>,
    /// Sessions touched by the request in hand, and any the channel had no
    /// room for yet.
    held: VecDeque<String>,
    /// Said once that the channel was full.
    told_behind: bool,
    /// Set by the loop to have the thread remove the file and stop.
    give_up: Arc<AtomicBool>,
    /// Closed by the thread when it ends.
    done: Receiver<()>,
    journal: PathBuf,
}

impl Journal {
    /// No journal: every call does nothing.
    pub fn off() -> Journal {
        Journal {
            on: None,
            generation: 0,
        }
    }

    /// Writes the journal for session file `path` afresh, numbered
    /// `generation`, holding what the stores hold now, then starts the
    /// thread that appends to it. `cap` is the session store's cap.
    pub fn start(
        path: &Path,
        generation: u64,
        sessions: &SessionStore,
        logins: &Logins,
        cap: usize,
        clock: Clock,
    ) -> io::Result<Journal> {
        let view = View::of(sessions, logins, cap);
        let writer = Writer::create(path, generation, logins.key().to_hex(), view, clock)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::sync_channel(0);
        let give_up = Arc::new(AtomicBool::new(false));
        let journal = writer.journal.clone();
        let flag = Arc::clone(&give_up);
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                writer.run(rx, &flag);
                drop(done_tx);
            })?;
        Ok(Journal {
            on: Some(On {
                tx,
                held: VecDeque::new(),
                told_behind: false,
                give_up,
                done,
                journal,
            }),
            generation,
        })
    }

    /// True while changes are being journaled.
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// The journal's generation; 0 if there never was one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Session `id` was stored, replaced or ended by the request in hand.
    pub fn touch(&mut self, id: &str) {
        if let Some(on) = &mut self.on {
            on.held.push_back(id.to_string());
        }
    }

    /// After a request: each session touched goes to the thread as it is
    /// now (or as ended), without waiting. What finds the channel full stays
    /// for the next request.
    pub fn flush(&mut self, sessions: &SessionStore) {
        let Some(on) = &mut self.on else { return };
        if on.held.is_empty() {
            return;
        }
        let (mut sent, mut gone) = (0, false);
        for id in &on.held {
            let Some(change) = change_of(sessions, id) else {
                sent += 1;
                continue;
            };
            match on.tx.try_send(change) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(_)) => {
                    if !std::mem::replace(&mut on.told_behind, true) {
                        log::warn(&format!(
                            "{}: the disk is not keeping up; session changes wait in memory \
                             and go when it does (a crash meanwhile loses them)",
                            on.journal.display()
                        ));
                    }
                    break;
                }
                // The thread stopped on an error, and said so.
                Err(TrySendError::Disconnected(_)) => {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            self.on = None;
            return;
        }
        on.held.drain(..sent);
        if on.held.len() > MAX_HELD {
            log::error(&format!(
                "{}: the disk has not taken a change for too long; journal given up \
                 (removed when the disk answers): a crash now restores no session, a clean \
                 stop still saves them",
                on.journal.display()
            ));
            self.give_up();
        }
    }

    /// After `login`'s spent state changed in `logins`: its record (or its
    /// absence) goes to the thread if there is room.
    pub fn spent(&mut self, logins: &Logins, login: &Checked) {
        let Some(on) = &mut self.on else { return };
        let Some(n) = nonce(&login.nonce) else { return };
        let change = match logins.spent(login, i64::MIN) {
            Some(spent) => Change::Spent(
                n,
                Record {
                    session: spent.session().and_then(session_id),
                    expires: spent.expires,
                },
            ),
            None => Change::Unspent(n),
        };
        if let Err(TrySendError::Disconnected(_)) = on.tx.try_send(change) {
            self.on = None;
        }
    }

    /// At a clean stop, the loop stopped: sends what is held back (waiting
    /// now, within a bound), stops the thread and waits for it to have
    /// written everything. Returns the generation.
    pub fn close(&mut self, sessions: &SessionStore) -> u64 {
        let Some(mut on) = self.on.take() else {
            return self.generation;
        };
        let deadline = Instant::now() + CLOSE_WAIT;
        for id in std::mem::take(&mut on.held) {
            let Some(mut change) = change_of(sessions, &id) else {
                continue;
            };
            loop {
                match on.tx.try_send(change) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                        change = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        }
        drop(on.tx);
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = on.done.recv_timeout(left) {
            log::warn(&format!(
                "{}: still writing after {}s; going on without it",
                on.journal.display(),
                CLOSE_WAIT.as_secs()
            ));
        }
        self.generation
    }

    /// Has the thread remove the file and stop; nothing more is sent.
    fn give_up(&mut self) {
        if let Some(on) = self.on.take() {
            on.give_up.store(true, Ordering::Relaxed);
        }
    }
}

/// The change that brings the journal up to date with session `id`: its
/// current form, or its end. None for a value that is no session id.
fn change_of(sessions: &SessionStore, id: &str) -> Option<Change> {
    let key = session_id(id)?;
    // Expired but not yet swept counts as stored: replay drops it by its expiry.
    Some(match sessions.get_shared(id, i64::MIN) {
        Some(session) => Change::Put(key, session),
        None => Change::End(key),
    })
}

/// `Logins` as a handler changes it, each change to a spent state sent to
/// the journal as it is made.
pub struct SpentStates<'a> {
    logins: &'a mut Logins,
    journal: &'a mut Journal,
}

impl<'a> SpentStates<'a> {
    pub fn new(logins: &'a mut Logins, journal: &'a mut Journal) -> SpentStates<'a> {
        SpentStates { logins, journal }
    }

    /// `Logins::spend`, journaled.
    pub fn spend(&mut self, login: &Checked, now: i64) {
        self.logins.spend(login, now);
        self.journal.spent(self.logins, login);
    }

    /// `Logins::complete`, journaled.
    pub fn complete(&mut self, login: &Checked, session: &str) {
        self.logins.complete(login, session);
        self.journal.spent(self.logins, login);
    }

    /// `Logins::fail`, journaled.
    pub fn fail(&mut self, login: &Checked) {
        self.logins.fail(login);
        self.journal.spent(self.logins, login);
    }

    /// `Logins::unspend`, journaled.
    pub fn unspend(&mut self, login: &Checked) {
        self.logins.unspend(login);
        self.journal.spent(self.logins, login);
    }
}

/// The thread's side: the file, and its copy of the state.
struct Writer {
    path: PathBuf,
    journal: PathBuf,
    file: File,
    /// Lines not yet written to the file.
    buf: Vec<u8>,
    generation: u64,
    key: String,
    view: View,
    clock: Clock,
    /// The file's length, and its length when last written whole.
    len: u64,
    base: u64,
}

impl Writer {
    /// Writes the journal whole (header and state) to the temp file, syncs
    /// it, and renames it into place.
    fn create(
        path: &Path,
        generation: u64,
        key: String,
        view: View,
        clock: Clock,
    ) -> io::Result<Writer> {
        let temp = temp_path_for(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        let mut writer = Writer {
            path: path.to_path_buf(),
            journal: path_for(path),
            file,
            buf: Vec::new(),
            generation,
            key,
            view,
            clock,
            len: 0,
            base: 0,
        };
        match writer.write_whole(&temp) {
            Ok(()) => Ok(writer),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// The header and the state into `self.file` (the temp file), then the
    /// rename over the journal.
    fn write_whole(&mut self, temp: &Path) -> io::Result<()> {
        self.buf.clear();
        let header = Out::Journal {
            version: VERSION,
            generation: self.generation,
            key: &self.key,
        };
        line(&mut self.buf, &header)?;
        for (id, session) in self.view.sessions.iter() {
            let id = text(id);
            line(&mut self.buf, &Out::Put { id, session })?;
            if self.buf.len() >= 1 << 20 {
                self.file.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        for (n, record) in self.view.spent.iter() {
            line(&mut self.buf, &spent_line(n, record))?;
        }
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        self.file.sync_all()?;
        self.len = self.file.metadata()?.len();
        self.base = self.len;
        fs::rename(temp, &self.journal)?;
        sync_dir(&self.journal);
        Ok(())
    }

    /// Appends the line for a change, if it changes anything.
    fn record(&mut self, change: Change) -> io::Result<()> {
        let mark = self.buf.len();
        let out = match &change {
            Change::Put(id, session) => Out::Put {
                id: text(id),
                session,
            },
            Change::End(id) => Out::End { id: text(id) },
            Change::Spent(n, record) => spent_line(n, record),
            Change::Unspent(n) => Out::Unspent { nonce: text(n) },
        };
        line(&mut self.buf, &out)?;
        if !self.view.apply(change, self.clock.now()) {
            self.buf.truncate(mark);
        }
        Ok(())
    }

    /// The lines recorded so far, into the file (no sync): a kill -9 from
    /// now on loses none of them.
    fn write_out(&mut self) -> io::Result<bool> {
        if self.buf.is_empty() {
            return Ok(false);
        }
        self.file.write_all(&self.buf)?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(true)
    }

    /// True when the file has grown enough past its base to be rewritten.
    fn too_long(&self) -> bool {
        let growth = (3 * self.base).clamp(MIN_GROWTH, MAX_GROWTH);
        self.len > self.base + growth
    }

    /// Rewrites the file from the copy: what has expired goes, the
    /// generation stays.
    fn rewrite(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.view.sessions.sweep(now);
        self.view.spent.sweep(now);
        let temp = temp_path_for(&self.path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        let journal = std::mem::replace(&mut self.file, file);
        let written = self.write_whole(&temp);
        if written.is_err() {
            // Whatever part of it was written holds tokens; the journal
            // itself is what `abandon` must deal with.
            let _ = fs::remove_file(&temp);
            self.file = journal;
        }
        written
    }

    /// Serves the channel until it closes (a clean stop), the loop gives up,
    /// or the disk fails.
    fn run(mut self, rx: Receiver<Change>, give_up: &AtomicBool) {
        match self.serve(&rx, give_up) {
            Ok(()) if !give_up.load(Ordering::Relaxed) => {}
            Ok(()) => self.abandon(),
            Err(e) => {
                log::error(&format!(
                    "{}: {e}; journal removed: a crash now restores no session, a clean \
                     stop still saves them",
                    self.journal.display()
                ));
                self.abandon();
            }
        }
    }

    fn serve(&mut self, rx: &Receiver<Change>, give_up: &AtomicBool) -> io::Result<()> {
        // When the oldest line written but not yet synced was written.
        let mut unsynced: Option<Instant> = None;
        loop {
            if give_up.load(Ordering::Relaxed) {
                return Ok(());
            }
            let got = match unsynced {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => {
                    rx.recv_timeout((since + SYNC_EVERY).saturating_duration_since(Instant::now()))
                }
            };
            match got {
                Ok(change) => {
                    self.record(change)?;
                    // Whatever else is waiting goes in the same write.
                    for change in rx.try_iter().take(QUEUE) {
                        self.record(change)?;
                    }
                    if self.write_out()? && unsynced.is_none() {
                        unsynced = Some(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_out()?;
                    return self.file.sync_data();
                }
            }
            if unsynced.is_some_and(|since| since.elapsed() >= SYNC_EVERY) {
                self.file.sync_data()?;
                unsynced = None;
                if self.too_long() {
                    self.rewrite()?;
                }
            }
        }
    }

    /// The journal can no longer follow the state: it must not be replayed.
    /// Removed; if that fails, emptied (an empty journal restores nothing).
    /// A session file older than it (one whose removal at start failed)
    /// goes too: alone it would bring back what the journal recorded since.
    fn abandon(&mut self) {
        if fs::remove_file(&self.journal).is_err() {
            let _ = self.file.set_len(0).and_then(|()| self.file.sync_all());
        }
        if file_generation(&self.path) < self.generation {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn spent_line<'a>(n: &'a Nonce, record: &'a Record) -> Out<'a> {
    Out::Spent {
        nonce: text(n),
        session: record.session.as_ref().map(|id| text(id)),
        expires: record.expires,
    }
}

/// Appends `value` as one JSON line.
fn line(buf: &mut Vec<u8>, value: &Out) -> io::Result<()> {
    serde_json::to_writer(&mut *buf, value).map_err(io::Error::other)?;
    buf.push(b'\n');
    Ok(())
}

/// Makes a rename in `path`'s directory durable; not every filesystem allows it.
pub fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scope;
    use crate::store::sessions::{StoredUser, Tokens};
    use crate::wechat::client::WechatUser;
    use std::os::unix::fs::PermissionsExt;

    fn session(nickname: &str) -> Session {
        Session {
            scope: Scope::Userinfo,
            user: StoredUser::from(WechatUser {
                openid: "o1".into(),
                nickname: nickname.into(),
                headimgurl: "https://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTK".into(),
                ..WechatUser::default()
            }),
            tokens: Tokens::new(&"A".repeat(110), &"R".repeat(110), 7000, 9000),
            expires: 0,
            other_openid: None,
        }
    }

    fn checked(nonce: &str) -> Checked {
        Checked {
            nonce: nonce.to_string(),
            browser: String::new(),
            next: "/".into(),
            issued: 0,
            website: false,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wxauth-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn json(value: &Out) -> String {
        let mut buf = Vec::new();
        line(&mut buf, value).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn nicknames(replayed: &Replayed) -> Vec<String> {
        replayed
            .sessions()
            .map(|(_, s)| s.user.nickname().to_string())
            .collect()
    }

    /// Waits for the journal at `file` to hold what `check` wants.
    fn eventually(journal: &Path, check: impl Fn(&Replayed) -> bool) -> Replayed {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(replayed)) = replay(journal, 100, 0) {
                if check(&replayed) {
                    return replayed;
                }
            }
            assert!(Instant::now() < deadline, "the journal never got there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn replay_takes_later_lines_over_earlier_ones_honours_ends_and_ignores_a_torn_tail() {
        let dir = temp_dir("replay");
        let journal = dir.join("s.json.journal");
        let key = Key::random();
        let (a, b) = (random::token(ID_LEN), random::token(ID_LEN));
        let (n1, n2) = (random::token(NONCE_LEN), random::token(NONCE_LEN));
        let (old, new, gone) = (session("旧"), session("新🐼"), session("退出"));
        let mut text = json(&Out::Journal {
            version: VERSION,
            generation: 7,
            key: &key.to_hex(),
        });
        for out in [
            Out::Put {
                id: &a,
                session: &old,
            },
            Out::Put {
                id: &b,
                session: &gone,
            },
            Out::Put {
                id: &a,
                session: &new,
            },
            Out::End { id: &b },
            Out::Spent {
                nonce: &n1,
                session: Some(&a),
                expires: 600,
            },
            Out::Spent {
                nonce: &n2,
                session: None,
                expires: 600,
            },
            Out::Unspent { nonce: &n2 },
        ] {
            text.push_str(&json(&out));
        }
        // The crash came in the middle of a logout's line.
        text.push_str(&json(&Out::End { id: &a })[..20]);
        fs::write(&journal, &text).unwrap();
        let replayed = replay(&journal, 100, 0).unwrap().unwrap();
        assert_eq!(replayed.generation, 7);
        assert!(replayed.key == key);
        assert!(replayed.torn);
        assert_eq!(nicknames(&replayed), ["新🐼"], "b ended; a replaced");
        let spent: Vec<_> = replayed.spent().collect();
        assert_eq!(spent, [(n1.as_str(), Some(a.as_str()), 600)]);

        // A whole last line counts, and zeros after it (a file extended but
        // never written, on some filesystems after a power cut) are no line.
        text.push_str(&json(&Out::End { id: &a })[20..]);
        fs::write(&journal, format!("{text}\0\0\0\0\n\0\0")).unwrap();
        let replayed = replay(&journal, 100, 0).unwrap().unwrap();
        assert!(nicknames(&replayed).is_empty() && replayed.torn);
        fs::write(&journal, &text).unwrap();
        assert!(!replay(&journal, 100, 0).unwrap().unwrap().torn);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_damaged_line_with_good_ones_after_it_makes_the_journal_unusable() {
        let dir = temp_dir("damaged");
        let journal = dir.join("s.json.journal");
        let id = random::token(ID_LEN);
        let header = json(&Out::Journal {
            version: VERSION,
            generation: 3,
            key: &Key::random().to_hex(),
        });
        let put = json(&Out::Put {
            id: &id,
            session: &session("a"),
        });
        let end = json(&Out::End { id: &id });
        fs::write(&journal, format!("{header}{put}{{\"end\":{{\"i\n{end}")).unwrap();
        let e = replay(&journal, 100, 0).err().expect("damaged");
        assert_eq!(e.generation, Some(3));
        assert!(e.why.contains("line 3 is damaged"), "{}", e.why);
        for junk in [
            String::new(),
            "garbage\n".into(),
            put.clone(),
            header.replace("\"version\":1", "\"version\":9"),
            header
                .replace(":3,", ":3,\"x\":1,")
                .replace("key\":\"", "key\":\"zz"),
        ] {
            fs::write(&journal, &junk).unwrap();
            assert!(replay(&journal, 100, 0).is_err(), "{junk:?}");
        }
        fs::remove_file(&journal).unwrap();
        assert!(matches!(replay(&journal, 100, 0), Ok(None)));
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_thread_writes_every_change_and_syncs_it_promptly() {
        let dir = temp_dir("thread");
        let path = dir.join("s.json");
        let mut sessions = SessionStore::new(1000, 100);
        let mut logins = Logins::new(Key::random());
        let before = sessions.create(session("before"), 0);
        let mut journal = Journal::start(&path, 5, &sessions, &logins, 100, Clock::new()).unwrap();
        let file = path_for(&path);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let started = replay(&file, 100, 0).unwrap().unwrap();
        assert_eq!(started.generation, 5);
        assert_eq!(nicknames(&started), ["before"], "the base state");

        let after = sessions.create(session("after"), 0);
        journal.touch(&after);
        sessions.remove(&before);
        journal.touch(&before);
        // Not a session id at all (a cookie's junk), or no session we had.
        journal.touch("junk");
        journal.touch(&random::token(ID_LEN));
        sessions.get_mut(&after, 0).unwrap().user = session("renamed").user;
        journal.touch(&after);
        let nonce = random::token(NONCE_LEN);
        let login = checked(&nonce);
        SpentStates::new(&mut logins, &mut journal).spend(&login, 100);
        SpentStates::new(&mut logins, &mut journal).complete(&login, &after);
        journal.flush(&sessions);
        let replayed = eventually(&file, |r| {
            r.spent().count() == 1 && nicknames(r) == ["renamed"]
        });
        assert_eq!(nicknames(&replayed), ["renamed"]);
        let spent: Vec<_> = replayed.spent().collect();
        assert_eq!(
            spent,
            [(
                nonce.as_str(),
                Some(after.as_str()),
                crate::store::logins::LOGIN_TTL
            )],
            "a state lives from when it was issued"
        );
        let lines = fs::read_to_string(&file).unwrap().lines().count();
        // The base (header, one put); the two spent changes as made; then
        // at the flush a put for `after` per touch, and an end for `before`.
        // The junk and the unknown id cost no line.
        assert_eq!(lines, 2 + 2 + 3);
        SpentStates::new(&mut logins, &mut journal).unspend(&login);
        assert_eq!(journal.close(&sessions), 5);
        let closed = replay(&file, 100, 0).unwrap().unwrap();
        assert_eq!(closed.spent().count(), 0, "written before close returned");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_full_channel_holds_ids_back_and_too_many_give_the_journal_up() {
        let (tx, rx) = mpsc::sync_channel(1);
        let (_done_tx, done) = mpsc::sync_channel(0);
        let give_up = Arc::new(AtomicBool::new(false));
        let mut journal = Journal {
            on: Some(On {
                tx,
                held: VecDeque::new(),
                told_behind: false,
                give_up: Arc::clone(&give_up),
                done,
                journal: PathBuf::from("test.journal"),
            }),
            generation: 1,
        };
        let mut sessions = SessionStore::new(1000, 10);
        let ids: Vec<String> = (0..3)
            .map(|i| sessions.create(session(&i.to_string()), 0))
            .collect();
        for id in &ids {
            journal.touch(id);
        }
        journal.flush(&sessions);
        let held = |j: &Journal| j.on.as_ref().map(|on| Vec::from(on.held.clone()));
        assert_eq!(
            held(&journal),
            Some(ids[1..].to_vec()),
            "one sent, two held"
        );
        assert!(matches!(rx.try_recv(), Ok(Change::Put(..))));
        // Ended meanwhile: it goes as it is now.
        sessions.remove(&ids[1]);
        journal.flush(&sessions);
        assert!(matches!(rx.try_recv(), Ok(Change::End(..))));
        journal.flush(&sessions);
        assert!(matches!(rx.try_recv(), Ok(Change::Put(..))));
        assert_eq!(held(&journal), Some(vec![]));

        for _ in 0..=MAX_HELD + 1 {
            journal.touch(&ids[0]);
        }
        journal.flush(&sessions);
        assert!(!journal.is_on(), "given up");
        assert!(give_up.load(Ordering::Relaxed));
        assert_eq!(journal.generation(), 1, "the stop still numbers above it");
    }

    #[test]
    fn a_journal_given_up_takes_an_older_session_file_with_it() {
        let dir = temp_dir("abandon");
        let path = dir.join("s.json");
        let sessions = SessionStore::new(1000, 10);
        let logins = Logins::new(Key::random());
        let mut journal = Journal::start(&path, 4, &sessions, &logins, 10, Clock::new()).unwrap();
        // One whose removal at start failed, and so outlived the start.
        fs::write(&path, r#"{"version":2,"generation":3,"sessions":[]}"#).unwrap();
        let done = journal.on.take().map(|on| {
            on.give_up.store(true, Ordering::Relaxed);
            on.done
        });
        let _ = done.unwrap().recv_timeout(Duration::from_secs(5));
        assert!(!path_for(&path).exists(), "the journal is gone");
        assert!(!path.exists(), "and so is the file it followed");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_journal_is_rewritten_once_it_grows_past_its_bound() {
        let dir = temp_dir("rewrite");
        let path = dir.join("s.json");
        let mut sessions = SessionStore::new(1000, 100);
        let logins = Logins::new(Key::random());
        // A rewrite drops what has expired by the clock.
        let now = Clock::new().now();
        let id = sessions.create(session("0"), now);
        let mut journal = Journal::start(&path, 1, &sessions, &logins, 100, Clock::new()).unwrap();
        let file = path_for(&path);
        let mut written = 0;
        let mut i = 0;
        while written < 3 * MIN_GROWTH {
            i += 1;
            sessions.get_mut(&id, now).unwrap().user = session(&i.to_string()).user;
            journal.touch(&id);
            journal.flush(&sessions);
            written += json(&Out::Put {
                id: &id,
                session: sessions.get(&id, now).unwrap(),
            })
            .len() as u64;
            if i % 500 == 0 {
                std::thread::sleep(SYNC_EVERY);
            }
        }
        journal.close(&sessions);
        // Past its base by 1 MiB, the file is rewritten at the next sync.
        let len = fs::metadata(&file).unwrap().len();
        assert!(
            len < written - MIN_GROWTH / 2,
            "rewritten: {len} bytes of {written}"
        );
        let replayed = replay(&file, 100, 0).unwrap().unwrap();
        assert_eq!(nicknames(&replayed), [i.to_string()]);
        assert_eq!(replayed.generation, 1, "a rewrite keeps the generation");
        fs::remove_dir_all(&dir).ok();
    }

    /// What the journal costs the loop: 100,000 session creations, each
    /// followed by the flush a request ends with, against the same without a
    /// journal; then how long the thread takes to have them on disk, and
    /// the memory its copy takes. `cargo test --release -p wxauth-app
    /// journal_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn journal_cost() {
        const N: usize = 100_000;
        let rss = || -> u64 {
            let statm = fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: u64 = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pages * 4096
        };
        let logins = Logins::new(Key::random());
        let template = session("熊猫🐼小明");
        let now = Clock::new().now();

        let before = rss();
        let mut plain = SessionStore::new(1000, N);
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(plain.create(template.clone(), now));
        }
        let without = t.elapsed();
        let store_bytes = rss().saturating_sub(before);

        let dir = temp_dir("cost");
        let path = dir.join("s.json");
        let mut sessions = SessionStore::new(1000, N);
        let mut journal = Journal::start(&path, 1, &sessions, &logins, N, Clock::new()).unwrap();
        let before = rss();
        let (mut flushing, mut most_held) = (Duration::ZERO, 0);
        let t = Instant::now();
        for _ in 0..N {
            let id = sessions.create(template.clone(), now);
            journal.touch(&id);
            let f = Instant::now();
            journal.flush(&sessions);
            flushing += f.elapsed();
            most_held = most_held.max(journal.on.as_ref().map_or(0, |on| on.held.len()));
        }
        let with = t.elapsed();
        journal.close(&sessions);
        let durable = t.elapsed();
        let both_bytes = rss().saturating_sub(before);
        let replayed = replay(&path_for(&path), N, now).unwrap().unwrap();
        assert_eq!(replayed.sessions().count(), N);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
        println!(
            "{N} creations back to back: {:.1} ms without the journal ({:.2} µs each), \
             {:.1} ms with it ({:.2} µs each, of which flush {:.2} µs); at most {most_held} \
             ids held back; all on disk after {:.1} ms; journal {} bytes; memory: store \
             {} bytes per session, store and journal {} bytes per session",
            without.as_secs_f64() * 1e3,
            per(without),
            with.as_secs_f64() * 1e3,
            per(with),
            per(flushing),
            durable.as_secs_f64() * 1e3,
            fs::metadata(path_for(&path)).unwrap().len(),
            store_bytes / N as u64,
            both_bytes / N as u64,
        );
        drop(plain);
        fs::remove_dir_all(&dir).ok();
    }
}

//! The default backend: everything in this process, owned by the loop
//! (no locks), bounded and expiring (`Expiring`), saved to the session file
//! at a stop. Every operation answers at once.

use crate::store::backend::{
    Backend, Claimed, Decided, Found, Replaced, SavedReply, ScanStatus, ScanView, SpentState,
    Stored,
};
use crate::store::journal::{Journal, SpentStates};
use crate::store::links::Links;
use crate::store::logins::NONCE_LEN;
use crate::store::logins::{Checked, Logins};
use crate::store::pushes::SeenPushes;
use crate::store::sessions::{Session, SessionStore};
use crate::store::tickets::{Scan, Scans, Status};

/// The stores of one process.
pub struct Memory {
    pub sessions: SessionStore,
    /// The signing key (kept here for the session file) and the spent states.
    pub logins: Logins,
    pub scans: Scans,
    pub pushes: SeenPushes,
    /// Each unionid's openids on the two apps (`Backend::link_openid`):
    /// kept as long as a session, in this process only.
    pub links: Links,
    /// Where changes to sessions and spent states go, with a session file
    /// (journal.rs); off without one.
    pub journal: Journal,
}

impl Memory {
    /// The spent states, each change journaled.
    fn spent_states(&mut self) -> SpentStates<'_> {
        SpentStates::new(&mut self.logins, &mut self.journal)
    }

    /// Sends the sessions the request in hand changed to the journal (the
    /// loop calls it once a request is answered).
    pub fn journal_changes(&mut self) {
        self.journal.flush(&self.sessions);
    }

    /// Drops expired records (the loop calls it now and then).
    pub fn sweep(&mut self, now: i64) {
        self.sessions.sweep(now);
        self.logins.sweep(now);
        self.scans.sweep(now);
        self.links.sweep(now);
    }
}

fn nonce_id(nonce: &str) -> Option<[u8; NONCE_LEN]> {
    nonce.as_bytes().try_into().ok()
}

impl Backend for Memory {
    fn session(&mut self, cookies: &[String], now: i64) -> Stored<Option<Found>> {
        Ok(cookies.iter().find_map(|cookie| {
            let session = self.sessions.get_shared(cookie, now)?;
            Some(Found {
                cookie: cookie.clone(),
                session,
            })
        }))
    }

    fn create_session(&mut self, session: Session, now: i64) -> Stored<String> {
        let id = self.sessions.create(session, now);
        self.journal.touch(&id);
        Ok(id)
    }

    fn end_sessions(&mut self, cookies: &[String]) -> Stored<()> {
        for cookie in cookies {
            self.sessions.remove(cookie);
            self.journal.touch(cookie);
        }
        Ok(())
    }

    fn revoke_user(&mut self, who: &str) -> Stored<usize> {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.openid() == who || s.user.unionid() == Some(who))
            .map(|(id, _)| id.to_string())
            .collect();
        for id in &ids {
            self.sessions.remove(id);
            self.journal.touch(id);
        }
        Ok(ids.len())
    }

    fn replace_session(
        &mut self,
        cookie: &str,
        refresh_token: &str,
        session: Session,
        now: i64,
    ) -> Stored<Replaced> {
        Ok(match self.sessions.get(cookie, now) {
            Some(held) if held.tokens.refresh_token() == refresh_token => {
                self.sessions.replace(cookie, session, now);
                self.journal.touch(cookie);
                Replaced::Written
            }
            Some(_) => Replaced::Changed,
            None => Replaced::Gone,
        })
    }

    fn spent(&mut self, login: &Checked, now: i64) -> Stored<Option<SpentState>> {
        Ok(self
            .logins
            .spent(login, now)
            .map(|spent| match (spent.exchanging(), spent.session()) {
                (true, _) => SpentState::Exchanging,
                (false, Some(sid)) => SpentState::Landed(sid.to_string()),
                (false, None) => SpentState::Failed,
            }))
    }

    fn spend(&mut self, login: &Checked, now: i64) -> Stored<bool> {
        if self.logins.spent(login, now).is_some() {
            return Ok(false);
        }
        self.spent_states().spend(login, now);
        Ok(true)
    }

    fn complete(&mut self, login: &Checked, cookie: &str, _now: i64) -> Stored<()> {
        self.spent_states().complete(login, cookie);
        Ok(())
    }

    fn unspend(&mut self, login: &Checked) -> Stored<()> {
        self.spent_states().unspend(login);
        Ok(())
    }

    fn fail(&mut self, login: &Checked, _now: i64) -> Stored<()> {
        self.spent_states().fail(login);
        Ok(())
    }

    fn scan(&mut self, nonce: &str, sid: &str, now: i64) -> Stored<Option<ScanView>> {
        let Some(id) = nonce_id(nonce) else {
            return Ok(None);
        };
        Ok(self.scans.get(&id, now).map(|scan| ScanView {
            mine: !sid.is_empty() && scan.sid == sid,
            status: match scan.status {
                Status::Scanned => ScanStatus::Scanned,
                Status::Confirmed(_) => ScanStatus::Confirmed,
                Status::Cancelled => ScanStatus::Cancelled,
                Status::Claimed => ScanStatus::Claimed,
            },
        }))
    }

    fn record_scan(
        &mut self,
        nonce: &str,
        phone: &str,
        sid: &str,
        expires: i64,
        now: i64,
    ) -> Stored<()> {
        let Some(id) = nonce_id(nonce) else {
            return Ok(());
        };
        match self.scans.get_mut(&id, now) {
            None => self.scans.insert(
                id,
                Scan {
                    phone: phone.to_string(),
                    sid: sid.to_string(),
                    status: Status::Scanned,
                    expires,
                },
            ),
            // The same phone scanning again: its new session takes over.
            Some(scan) if scan.phone == phone && matches!(scan.status, Status::Scanned) => {
                scan.sid = sid.to_string();
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn decide(
        &mut self,
        nonce: &str,
        _ticket: &str,
        sid: &str,
        confirmed: Option<Session>,
        now: i64,
    ) -> Stored<Decided> {
        let Some(scan) = nonce_id(nonce).and_then(|id| self.scans.get_mut(&id, now)) else {
            return Ok(Decided::Gone);
        };
        if scan.sid != sid {
            return Ok(Decided::NotYours);
        }
        if !matches!(scan.status, Status::Scanned) {
            return Ok(Decided::Already);
        }
        scan.status = match confirmed {
            Some(session) => Status::Confirmed(Box::new(session)),
            None => Status::Cancelled,
        };
        Ok(Decided::Now)
    }

    fn claim(&mut self, nonce: &str, _ticket: &str, now: i64) -> Stored<Claimed> {
        let Some(scan) = nonce_id(nonce).and_then(|id| self.scans.get_mut(&id, now)) else {
            return Ok(Claimed::Pending);
        };
        // Taking the session claims the ticket; any other status is put back.
        Ok(match std::mem::replace(&mut scan.status, Status::Claimed) {
            Status::Confirmed(session) => Claimed::Session(session),
            Status::Scanned => {
                scan.status = Status::Scanned;
                Claimed::Scanned
            }
            Status::Cancelled => {
                scan.status = Status::Cancelled;
                Claimed::Cancelled
            }
            // Used once: asking again finds nothing.
            Status::Claimed => Claimed::Gone,
        })
    }

    fn push_reply(&mut self, key: &str, now: i64) -> Stored<Option<SavedReply>> {
        Ok(self.pushes.reply_to(key, now))
    }

    fn remember_push(
        &mut self,
        key: &str,
        reply: SavedReply,
        now: i64,
    ) -> Stored<Option<SavedReply>> {
        if let Some(first) = self.pushes.reply_to(key, now) {
            return Ok(Some(first));
        }
        self.pushes.remember(key.to_string(), &reply, now);
        Ok(None)
    }

    fn ping(&mut self) -> Stored<()> {
        Ok(())
    }

    fn link_openid(
        &mut self,
        unionid: &str,
        website: bool,
        openid: &str,
        now: i64,
    ) -> Stored<Option<String>> {
        Ok(self.links.link(unionid, website, openid, now))
    }
}

//! Who is logged in: `SessionStore`, session id → user and tokens. Bounded:
//! sessions expire, and past a cap the oldest go first. A plain map: the
//! request loop is single-threaded, so there are no locks. (Logins under way
//! are stored nowhere: logins.rs.)

use crate::config::Scope;
use crate::random;
pub use crate::store::compact::{StoredUser, Tokens};
use crate::store::expiring::{Expires, Expiring};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Length of session ids (≈190 bits).
pub const ID_LEN: usize = 32;

/// One logged-in browser. Kept small: a server holds 100,000 of these.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub scope: Scope,
    /// Who it is. With snsapi_base only `openid` (and `unionid` when WeChat
    /// sent one) are filled; with snsapi_userinfo the whole profile.
    pub user: StoredUser,
    pub tokens: Tokens,
    pub expires: i64,
    /// The same person's openid on the other app (the website app for a
    /// login through the Official Account, and the reverse), when their
    /// unionid was seen logging in there (`Backend::link_openid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_openid: Option<String>,
}

impl Session {
    /// The user's openid.
    pub fn openid(&self) -> &str {
        self.user.openid()
    }
}

/// A session id as stored: its 32 base62 characters, inline (no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id([u8; ID_LEN]);

impl Id {
    /// The id in a cookie value, if it has the shape of one.
    fn parse(s: &str) -> Option<Id> {
        random::is_token(s, ID_LEN).then(|| Id(s.as_bytes().try_into().expect("ID_LEN bytes")))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are ASCII")
    }
}

impl Expires for Session {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Session id → session, with a lifetime and a cap.
pub struct SessionStore {
    /// Behind a pointer so that the table's spare capacity costs a pointer
    /// per slot, not a whole session; shared (`Arc`), so that a request
    /// reading one gets it without a copy (`get_shared`).
    map: Expiring<Id, Arc<Session>>,
    ttl: i64,
}

impl SessionStore {
    /// An empty store; sessions live `ttl` seconds, at most `cap` are kept.
    pub fn new(ttl: u64, cap: usize) -> SessionStore {
        SessionStore {
            map: Expiring::new(cap),
            ttl: ttl as i64,
        }
    }

    /// Stores a session under a fresh id and returns the id. A login always
    /// gets a new id, so an id planted before login is never promoted.
    pub fn create(&mut self, mut session: Session, now: i64) -> String {
        session.expires = now + self.ttl;
        let token = random::token(ID_LEN);
        let id = Id::parse(&token).expect("random::token makes ids");
        self.map.insert(id, Arc::new(session));
        token
    }

    /// The live session with this id, if any.
    pub fn get(&self, id: &str, now: i64) -> Option<&Session> {
        self.map.get(&Id::parse(id)?, now).map(|s| &**s)
    }

    /// The live session with this id, shared: a pointer's copy.
    pub fn get_shared(&self, id: &str, now: i64) -> Option<Arc<Session>> {
        self.map.get(&Id::parse(id)?, now).map(Arc::clone)
    }

    /// The live session with this id, to update it (copied first if a
    /// request still holds it).
    pub fn get_mut(&mut self, id: &str, now: i64) -> Option<&mut Session> {
        self.map.get_mut(&Id::parse(id)?, now).map(Arc::make_mut)
    }

    /// Puts `session` in place of the live session with this id (a
    /// refresh written back), without copying the one a reader may hold.
    pub fn replace(&mut self, id: &str, session: Session, now: i64) -> bool {
        let Some(slot) = Id::parse(id).and_then(|id| self.map.get_mut(&id, now)) else {
            return false;
        };
        *slot = Arc::new(session);
        true
    }

    /// Ends a session (logout, or a grant WeChat no longer honours).
    pub fn remove(&mut self, id: &str) {
        if let Some(id) = Id::parse(id) {
            self.map.remove(&id);
        }
    }

    /// Drops expired sessions.
    pub fn sweep(&mut self, now: i64) {
        self.map.sweep(now);
    }

    /// How many sessions are stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no session is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every stored session (expired ones too, until swept), oldest first
    /// (for the session file).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Session)> {
        self.map
            .iter()
            .map(|(id, session)| (id.as_str(), &**session))
    }

    /// `iter`, the sessions shared rather than borrowed (the journal's view).
    pub fn iter_shared(&self) -> impl Iterator<Item = (&str, &Arc<Session>)> {
        self.map.iter().map(|(id, session)| (id.as_str(), session))
    }

    /// Puts back a saved session under its old id, unless it has expired.
    /// Call in the saved order, oldest first, so eviction order survives.
    pub fn restore(&mut self, id: &str, session: Session, now: i64) {
        let Some(id) = Id::parse(id) else { return };
        if session.expires > now && !self.map.contains_key(&id) && !self.map.is_full() {
            self.map.insert(id, Arc::new(session));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::client::WechatUser;

    fn session(openid: &str) -> Session {
        Session {
            scope: Scope::Base,
            user: StoredUser::from(WechatUser {
                openid: openid.into(),
                ..WechatUser::default()
            }),
            tokens: Tokens::new("A", "R", 0, 0),
            expires: 0,
            other_openid: None,
        }
    }

    #[test]
    fn sessions_expire_after_their_ttl() {
        let mut store = SessionStore::new(100, 10);
        let id = store.create(session("o1"), 1000);
        assert_eq!(store.get(&id, 1099).map(Session::openid), Some("o1"));
        assert!(store.get(&id, 1100).is_none());
        store.sweep(1100);
        assert!(store.is_empty());
    }

    #[test]
    fn the_oldest_session_is_evicted_at_the_cap() {
        let mut store = SessionStore::new(100, 3);
        let ids: Vec<String> = (0..4)
            .map(|i| store.create(session(&format!("o{i}")), 0))
            .collect();
        assert_eq!(store.len(), 3);
        assert!(store.get(&ids[0], 1).is_none());
        assert!(ids[1..].iter().all(|id| store.get(id, 1).is_some()));
    }

    #[test]
    fn every_login_gets_a_new_id_and_logout_removes_it() {
        let mut store = SessionStore::new(100, 10);
        let a = store.create(session("o"), 0);
        let b = store.create(session("o"), 0);
        assert_ne!(a, b);
        assert!(random::is_token(&a, ID_LEN));
        store.remove(&a);
        assert!(store.get(&a, 1).is_none() && store.get(&b, 1).is_some());
        assert!(store.get("not an id", 1).is_none() && store.get("", 1).is_none());
    }

    #[test]
    fn removed_ids_do_not_pile_up_in_the_eviction_queue() {
        let mut store = SessionStore::new(100, 1000);
        for _ in 0..10_000 {
            let id = store.create(session("o"), 0);
            store.remove(&id);
        }
        assert!(store.map.queue_len() <= 64 + 1);
    }
}

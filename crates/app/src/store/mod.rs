//! What the app remembers between requests: sessions, login states spent,
//! scan tickets, pushes seen, and the file sessions survive a restart in.
//! Owned by the request loop; nothing here locks, blocks or names a request.
//! Each bounded store is an `expiring::Expiring` map: entries expire, and
//! past a cap the oldest go first.

pub mod backend;
pub mod compact;
pub mod expiring;
pub mod journal;
pub mod logins;
pub mod pushes;
pub mod session_file;
pub mod sessions;
pub mod signed;
pub mod tickets;

//! What the app remembers between requests: sessions, login states spent,
//! scan tickets, pushes seen, and the file sessions survive a restart in.
//! The in-process stores are owned by the request loop; nothing in them
//! locks, blocks or names a request. Each bounded one is an
//! `expiring::Expiring` map: entries expire, and past a cap the oldest go
//! first. `backend` is the seam a store outside the process plugs into;
//! `redis` is that store, called from workers only (it blocks, briefly).

pub mod backend;
pub mod compact;
pub mod expiring;
pub mod journal;
pub mod links;
pub mod logins;
pub mod memory;
pub mod pushes;
pub mod redis;
pub mod sealed;
pub mod session_file;
pub mod sessions;
pub mod signed;
pub mod tickets;

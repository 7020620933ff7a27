//! WeChat as the app sees it: the client for the web-authorization APIs
//! (client.rs), a user's token kept alive across calls (refresh.rs), the
//! account's own APIs (account.rs: base token, menu), the message protocol
//! of pushes and passive replies (message.rs), and WeChat's errcodes by name
//! (errcode.rs). The only layer that names ureq. Protocol facts:
//! docs/wechat.md.

pub mod account;
pub mod client;
pub mod encryption;
pub mod errcode;
pub mod jsapi;
pub mod message;
pub mod refresh;

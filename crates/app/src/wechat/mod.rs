//! WeChat as the app sees it: the client for the web-authorization APIs
//! (client.rs), the account's own APIs (account.rs: base token, menu), and
//! the message protocol of pushes and passive replies (message.rs). The only
//! layer that names ureq. Protocol facts: docs/wechat.md.

pub mod account;
pub mod client;
pub mod message;

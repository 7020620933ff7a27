//! wxauth: WeChat Official Account web authorization (网页授权) in one binary.
//! This package is the composition root: the binary (main.rs) and demo mode,
//! which starts the app (`wxauth_app`) beside the simulator (`wxauth_sim`).
//! The two are separate crates, and the app's cannot name the simulator's.
#![forbid(unsafe_code)]

pub mod control;
pub mod demo;

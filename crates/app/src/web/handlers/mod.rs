//! The handlers, one file an area of the route table (routes.rs).

pub mod gateway;
pub mod json;
pub mod jssdk;
pub mod login;
pub mod profile;
pub mod scan;
pub mod wechat_endpoint;

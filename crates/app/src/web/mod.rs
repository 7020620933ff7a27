//! The web app: its state (app.rs), the route table (routes.rs), the
//! handlers by area (handlers/), error pages, templates and assets.

pub mod app;
pub mod assets;
pub mod error;
pub mod handlers;
pub mod metrics_service;
pub mod render;
pub mod routes;
pub mod service;
pub mod site;

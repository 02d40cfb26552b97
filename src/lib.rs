//! dashgate: an authentication and authorization gateway for Plotly Dash apps and other web
//! dashboards. See `ARCHITECTURE.md` for the design and the external contract.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod directory;
pub mod error;
pub mod http_util;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod token;

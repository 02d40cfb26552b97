//! dashgate: an authentication and authorization gateway for Plotly Dash apps and other web
//! dashboards. See `ARCHITECTURE.md` for the design and the external contract.

// The request future (connection → tracing span → routing → proxy) is deeply nested; its
// layout needs more than the default query depth in a clean build.
#![recursion_limit = "256"]

pub mod auth;
pub mod cidr;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dash_guard;
pub mod dash_mcp;
pub mod dash_socket;
pub mod db;
pub mod directory;
pub mod error;
pub mod html;
pub mod http_util;
#[cfg(test)]
mod import_order;
pub mod metrics;
pub mod names;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod session;
pub mod sign_in;
pub mod state;
pub mod store;
pub mod tls;
pub mod token;

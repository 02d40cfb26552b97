//! Integration tests: the real `dashgate` binary, on loopback, in front of a real upstream.
//! One test binary with many modules (one link step instead of one per file).

mod support;

mod attacks;
mod audit;
mod bad_input;
mod balance;
mod cli;
mod cluster;
mod csrf;
mod deploy;
mod ldap;
mod login;
mod logout;
mod metrics;
mod modes;
mod oidc;
mod password;
mod policy;
mod postgres;
mod proxy;
mod prune;
mod replicas;
mod sentinel;
mod sessions;
mod throttle;
mod tls;

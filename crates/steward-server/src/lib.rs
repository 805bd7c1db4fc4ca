//! The running Steward process: configuration, start-up checks, TLS listeners, the data-plane and
//! admin routers, and their wiring to the store, the coordination service and the audit writer.
//!
//! This crate owns the HTTP edge (check order, error bodies, correlation ids, logs, metrics) and the
//! process lifecycle (`init`, `serve`, signals). It must not implement cryptography, storage or
//! policy itself: those live in their crates behind typed APIs, and this crate only wires them.

pub mod bootstrap;
pub mod builtin_templates;
pub mod config;
pub mod console;
pub mod exit;
pub mod files;
pub mod http;
pub mod listener;
pub mod observability;
pub mod proxy_protocol;
pub mod read_cache;
pub mod routes;
pub mod runtime;
pub mod services;
pub mod startup;
pub mod tls;

pub use exit::{ExitCode, StartupError};

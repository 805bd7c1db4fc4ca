//! Test fixtures shared by every crate's tests: private PostgreSQL databases and Redis key prefixes on
//! the machine's local services, private `redis-server` and PostgreSQL clusters for fault tests, a
//! test PKI generated at test time (no committed private keys), a recording, scriptable HTTPS upstream, a UDP
//! DNS responder, a small HTTP(S) test client, free loopback ports, and the JSON of templates and execute
//! fixtures ([`templates`], [`execute`]).
//!
//! Dev-dependency only: nothing here may be used by production code. Tests read
//! `STEWARD_TEST_POSTGRES_URL` and `STEWARD_TEST_REDIS_URL` (defaults: the local services) and fail,
//! never skip, when those cannot be reached.

pub mod clients;
pub mod dns;
pub mod execute;
pub mod fake_provider;
pub mod faults;
pub mod http_client;
pub mod pki;
mod services;
pub mod templates;
pub mod upstream;

pub use faults::{PrivatePostgres, PrivateRedis};
pub use services::{TestDatabase, postgres_base_url, redis_url, unique_redis_prefix};
pub use upstream::{ReceivedRequest, Reply, Step, TestUpstream, UpstreamConnection, UpstreamOptions};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a
/// server the test starts as a separate process or configures before it binds. Tests of one binary
/// run in parallel, so every test takes its own ports this way and never a fixed one.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

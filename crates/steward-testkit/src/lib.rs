//! Test fixtures shared by every crate's tests: private PostgreSQL databases and Redis key prefixes on
//! the machine's local services, and a test PKI generated at test time (no committed private keys).
//!
//! Dev-dependency only: nothing here may be used by production code. Tests read
//! `STEWARD_TEST_POSTGRES_URL` and `STEWARD_TEST_REDIS_URL` (defaults: the local services) and fail,
//! never skip, when those cannot be reached.

pub mod dns;
pub mod faults;
pub mod http_client;
pub mod pki;
mod services;
pub mod upstream;

pub use faults::{PrivatePostgres, PrivateRedis};
pub use services::{TestDatabase, postgres_base_url, redis_url, unique_redis_prefix};
pub use upstream::{ReceivedRequest, TestUpstream, UpstreamBehavior};

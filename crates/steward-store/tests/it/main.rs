//! The steward-store integration tests, one test binary: the storage conformance suite (every test
//! body run against SQLite and PostgreSQL through `backend_suite!`, the `sqlite::`/`postgres::`
//! test-name parts) and the migration tests. Every SQLite test gets its own temporary directory and
//! every PostgreSQL test its own database, so all of them run in parallel.

// First, on its own: `backend_suite!` is used by the modules below.
#[macro_use]
mod harness;

mod audit;
mod basics;
mod catalog_conformance;
mod conformance;
mod governance_conformance;
mod idempotency_conformance;
mod identity_conformance;
mod migration_0008;
mod migration_0009;
mod oauth2_conformance;

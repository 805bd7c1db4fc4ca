//! The steward-coord integration tests, one test binary: the coordinator conformance suite (run
//! against the embedded and the Redis coordinator) and each backend's own behaviour. Every Redis test
//! uses its own key prefix or its own redis-server on a free port, so all of them run in parallel.

mod conformance;
mod embedded_specific;
mod redis_specific;

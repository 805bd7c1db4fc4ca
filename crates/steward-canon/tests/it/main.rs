//! The steward-canon integration tests, one test binary (the layout of every crate): property tests
//! of canonicalization against templates.

mod properties;

//! The harness's data generator (issue 18): large stores to measure Steward as the data grows.

pub mod audit;

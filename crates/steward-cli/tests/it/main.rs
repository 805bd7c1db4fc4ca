//! The steward-cli integration tests, one test binary with one module per area. They run the real
//! `steward` binary (`CARGO_BIN_EXE_steward`) against real PostgreSQL and Redis; `common` starts
//! and drives single servers, `cluster` shared-mode deployments of several. Every server, private
//! PostgreSQL cluster and private redis-server gets its own free port and directory, so all tests of
//! the binary run in parallel.

mod cluster;
mod common;

mod admin_cli;
mod doctor;
mod faults;
mod first_steps;
mod gateway;
mod init_race;
mod mcp;
mod mcp_remote;
mod multi_instance;
mod readme_quickstart;
mod sdk_agents;
mod server_commands;
mod workload_cli;

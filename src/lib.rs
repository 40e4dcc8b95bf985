//! The `heartsuite` binary's library half: CLI, HTTP server and the wiring of every crate, so the
//! black-box tests in `tests/` can start the real server on a random port.

pub mod api_error;
pub mod bench;
pub mod bench_day;
pub mod bench_netsuite;
pub mod day;
pub mod demo;
pub mod drift;
pub mod flows_cmd;
pub mod wiring;
pub mod cli;
pub mod config;
pub mod config_audit;
pub mod connectors;
pub mod customer_match;
pub mod pollers;
pub mod recon_cmd;
pub mod sandbox_cmd;
pub mod scheduler;
pub mod server;
pub mod soak;
pub mod sources;
pub mod telemetry;

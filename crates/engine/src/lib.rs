//! The engine: everything between "a sender handed us bytes" and "the effect is recorded".
//!
//! - [`ingress`]: per-source authenticity checks, card scrubbing, event keys and kinds;
//! - [`writer`]: the group-commit inbox writer (many webhooks, one transaction, then the 2xx);
//! - [`worker`]: the pool that leases jobs, runs them, and records outcomes by [`policy`];
//! - [`context`]: idempotent effects through the crosswalk, so a rerun skips what is done;
//! - [`breaker`]: one circuit per remote system; [`alerts`]: rate-limited notifications;
//! - [`admin`]: dead-letter queue and audit operations shared by the CLI and the HTTP API;
//! - [`secrets`]: the encrypted secrets file.

pub mod admin;
pub mod alerts;
pub mod breaker;
pub mod context;
pub mod ingress;
pub mod metrics;
pub mod policy;
pub mod secrets;
pub mod worker;
pub mod writer;

pub use context::JobContext;
pub use worker::{JobHandler, Worker, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] heartsuite_store::StoreError),
    #[error("the inbox writer has stopped")]
    WriterStopped,
    #[error("{0}")]
    Secrets(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

//! heartsuite-sandbox-netsuite: a NetSuite REST simulator written from
//! `reference/netsuite.md` (never from the connector crate), so that real clients can referee
//! between our connector and this second, independent implementation.
//!
//! Serves the record service, SuiteQL, the OAuth 2.0 token endpoint and governanceLimits with
//! TBA/bearer auth, NetSuite's JSON shapes and error envelope, a concurrency limit, latency,
//! injectable faults, and user-event-style signed events. See README.md for the control API.

mod auth;
mod error;
mod events;
mod model;
mod render;
mod server;
mod sql;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

pub use auth::{Credentials, pct, signature as tba_signature};
pub use error::Error;
pub use events::{EventSink, sign as sign_event};
pub use server::{Fault, FaultKind};

/// The public key of certificate `sandbox-cert` (testdata/netsuite/README.md).
pub const SANDBOX_CERT_PUBLIC_PEM: &str = include_str!("../../../testdata/netsuite/sandbox-cert-es256-public.pem");

/// Sandbox configuration. `Default` gives the fixed sandbox credentials.
#[derive(Debug, Clone)]
pub struct Config {
    /// Account id, raw form (the TBA realm): `1234567_SB1`.
    pub account: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token_id: String,
    pub token_secret: String,
    /// OAuth 2.0 client id whose certificate `cert_id` (ES256 public key `cert_public_pem`) signs assertions.
    pub client_id: String,
    pub cert_id: String,
    pub cert_public_pem: String,
    /// Added before every API request is handled (not to the control API).
    pub latency: Duration,
    /// Concurrent API requests allowed; one more gets 429.
    pub concurrency_limit: u32,
    /// Allowed distance between `oauth_timestamp` and the sandbox clock.
    pub timestamp_tolerance: Duration,
    pub emit_events_to: Option<EventSink>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            account: "1234567_SB1".into(),
            consumer_key: "sandbox-consumer-key".into(),
            consumer_secret: "sandbox-consumer-secret".into(),
            token_id: "sandbox-token-id".into(),
            token_secret: "sandbox-token-secret".into(),
            client_id: "sandbox-client-id".into(),
            cert_id: "sandbox-cert".into(),
            cert_public_pem: SANDBOX_CERT_PUBLIC_PEM.into(),
            latency: Duration::ZERO,
            concurrency_limit: 15,
            timestamp_tolerance: Duration::from_secs(300),
            emit_events_to: None,
        }
    }
}

/// A snapshot of what the sandbox has done.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// API requests received (everything under /services/rest, including refused ones).
    pub requests: u64,
    /// Requests answered 429 (concurrency limit or injected).
    pub rate_limited: u64,
    /// Requests answered 401.
    pub auth_failures: u64,
    /// Faults injected (any kind).
    pub faults_injected: u64,
    pub in_flight: u32,
    pub concurrency_limit: u32,
    pub latency_ms: u64,
    pub events_sent: u64,
    pub events_failed: u64,
    /// Records stored, by REST record type (seeded list records included).
    pub records: BTreeMap<String, u64>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub auth_failures: AtomicU64,
    pub faults_injected: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_failed: AtomicU64,
}

pub(crate) struct Shared {
    pub cfg: Config,
    pub creds: Credentials,
    pub db: tokio::sync::Mutex<store::Db>,
    pub pool: sqlx::SqlitePool,
    /// Keeps the in-memory SuiteQL mirror alive whatever happens to the pool's connection.
    pub _sql_anchor: tokio::sync::Mutex<sqlx::SqliteConnection>,
    pub auth: std::sync::Mutex<auth::AuthState>,
    pub faults: std::sync::Mutex<Vec<server::FaultRule>>,
    pub counters: Counters,
    pub in_flight: AtomicU32,
    pub limit: AtomicU32,
    pub latency_ms: AtomicU64,
    pub events: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<serde_json::Value>>,
}

/// The sandbox's state, cloneable; build a router from it with [`router`].
#[derive(Clone)]
pub struct SandboxState(pub(crate) Arc<Shared>);

impl SandboxState {
    /// Create the store (seeded) and the SQLite mirror; starts the event emitter if configured.
    pub async fn new(cfg: Config) -> Result<SandboxState, Error> {
        if cfg.concurrency_limit == 0 {
            return Err(Error::Config("concurrency_limit must be at least 1".into()));
        }
        let db = store::Db::seeded();
        let (pool, sql_anchor) = sql::open().await?;
        sql::rebuild(&pool, &db).await?;
        let creds = Credentials {
            account: cfg.account.clone(),
            consumer_key: cfg.consumer_key.clone(),
            consumer_secret: cfg.consumer_secret.clone(),
            token_id: cfg.token_id.clone(),
            token_secret: cfg.token_secret.clone(),
            client_id: cfg.client_id.clone(),
            cert_id: cfg.cert_id.clone(),
            cert_public_pem: cfg.cert_public_pem.clone(),
        };
        let shared = Arc::new(Shared {
            limit: AtomicU32::new(cfg.concurrency_limit),
            latency_ms: AtomicU64::new(u64::try_from(cfg.latency.as_millis()).unwrap_or(u64::MAX)),
            cfg,
            creds,
            db: tokio::sync::Mutex::new(db),
            pool,
            _sql_anchor: tokio::sync::Mutex::new(sql_anchor),
            auth: std::sync::Mutex::new(auth::AuthState::default()),
            faults: std::sync::Mutex::new(Vec::new()),
            counters: Counters::default(),
            in_flight: AtomicU32::new(0),
            events: std::sync::OnceLock::new(),
        });
        if let Some(sink) = shared.cfg.emit_events_to.clone() {
            let tx = events::start(sink, shared.clone());
            let _ = shared.events.set(tx);
        }
        Ok(SandboxState(shared))
    }

    pub async fn stats(&self) -> Stats {
        let s = &self.0;
        let records = {
            let db = s.db.lock().await;
            model::RType::ALL.iter().map(|t| (t.name().to_string(), db.count(*t) as u64)).collect()
        };
        Stats {
            requests: s.counters.requests.load(Ordering::Relaxed),
            rate_limited: s.counters.rate_limited.load(Ordering::Relaxed),
            auth_failures: s.counters.auth_failures.load(Ordering::Relaxed),
            faults_injected: s.counters.faults_injected.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            concurrency_limit: s.limit.load(Ordering::Relaxed),
            latency_ms: s.latency_ms.load(Ordering::Relaxed),
            events_sent: s.counters.events_sent.load(Ordering::Relaxed),
            events_failed: s.counters.events_failed.load(Ordering::Relaxed),
            records,
        }
    }

    pub fn set_latency(&self, d: Duration) {
        self.0.latency_ms.store(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn set_concurrency_limit(&self, n: u32) {
        self.0.limit.store(n.max(1), Ordering::Relaxed);
    }

    /// Queue a fault; returns its id.
    pub fn inject_fault(&self, f: Fault) -> u64 {
        server::add_fault(&self.0, f)
    }

    pub fn clear_faults(&self) {
        if let Ok(mut f) = self.0.faults.lock() {
            f.clear();
        }
    }

    /// Back to the seeded state: records, stock, faults, nonces, tokens and counters cleared;
    /// latency and concurrency limit back to the configured values.
    pub async fn reset(&self) -> Result<(), Error> {
        server::reset(&self.0).await
    }
}

/// The axum router serving the API and the control API. Prefer [`spawn`]: the `timeout` and
/// `lost_response` faults and the loopback check of the control API need its connection loop.
pub fn router(state: SandboxState) -> axum::Router {
    server::router(state.0)
}

/// A running sandbox.
pub struct SandboxHandle {
    addr: SocketAddr,
    state: SandboxState,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}` — clients append `/services/rest/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub async fn stats(&self) -> Stats {
        self.state.stats().await
    }

    /// Stop accepting, drop open connections, and wait for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Serve the sandbox on `listener` until the handle is shut down.
pub async fn spawn(listener: tokio::net::TcpListener, cfg: Config) -> Result<SandboxHandle, Error> {
    let addr = listener.local_addr()?;
    let state = SandboxState::new(cfg).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = server::router(state.0.clone());
    let task = tokio::spawn(server::serve(listener, app, rx));
    Ok(SandboxHandle { addr, state, shutdown: tx, task })
}

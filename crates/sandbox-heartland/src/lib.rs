//! heartsuite-sandbox-heartland: a local, faithful simulator of the two Heartland APIs heartsuite
//! talks to — GP-API (`/ucp/...`, payments and settlement) and Heartland Retail (`/api/...`, the
//! POS) — written from `reference/heartland.md` alone, never from the connector crate, so that a
//! bug shared by client and simulator cannot hide. The official `globalpayments-api` Python SDK is
//! the referee (see `tests/python_sdk.rs`).
//!
//! One [`Sandbox`] holds all state behind a mutex; [`spawn`] serves it on two listeners; the
//! business-day generator ([`DayOptions`], [`Sandbox::generate_day`]) drives the same state, so
//! both APIs then serve that day. Faults and helpers are reachable over `/_sandbox/...` on each
//! port (see README.md) and as methods on [`Sandbox`].

mod card;
mod control;
mod delivery;
mod generator;
mod gpapi;
mod retail;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use generator::{
    BatchLine, BrandTotals, CurrencyTotals, DayOptions, DaySummary, DepositLine, GeneratedDay,
};
pub use state::{
    BatchClose, DepositView, FaultSpec, Faults, Sandbox, Service, Stats, WebhookPayload,
};

/// Card-brand fee: a percentage of the sale in basis points (1 bp = 0.01 %) plus a fixed fee in
/// minor units per sale. Integers so the deposit arithmetic is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrandFee {
    pub percent_bps: i64,
    pub fixed_minor: i64,
}

/// Fees the simulated processor withholds from each deposit, by card brand (`VISA`, `MASTERCARD`,
/// `AMEX`, `DISCOVER`); brands not listed pay `default`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeeModel {
    pub default: BrandFee,
    pub by_brand: BTreeMap<String, BrandFee>,
}

impl Default for FeeModel {
    fn default() -> Self {
        let f = |percent_bps, fixed_minor| BrandFee {
            percent_bps,
            fixed_minor,
        };
        let by_brand = BTreeMap::from([
            ("VISA".to_string(), f(180, 10)),
            ("MASTERCARD".to_string(), f(190, 10)),
            ("AMEX".to_string(), f(290, 15)),
            ("DISCOVER".to_string(), f(200, 10)),
        ]);
        Self {
            default: f(250, 10),
            by_brand,
        }
    }
}

impl FeeModel {
    /// Fee on one sale: percentage rounded half-up to the minor unit, plus the fixed part.
    pub fn fee_for(&self, brand: &str, amount_minor: i64) -> i64 {
        let fee = self.by_brand.get(brand).copied().unwrap_or(self.default);
        let pct = (amount_minor * fee.percent_bps + 5_000).div_euclid(10_000);
        pct + fee.fixed_minor
    }
}

/// Sandbox configuration. `Default` gives the fixed, documented credentials.
#[derive(Clone)]
pub struct Config {
    pub app_id: String,
    pub app_key: String,
    pub retail_token: String,
    pub merchant_id: String,
    pub merchant_name: String,
    pub fees: FeeModel,
    /// Added to every API request (the fault API can add more).
    pub latency: Duration,
    /// Seeds object ids and chargeback draws, so a run is reproducible.
    pub seed: u64,
    /// Chance per settled sale that it comes back as a chargeback, in parts per million.
    pub chargeback_ppm: u32,
    /// Default access-token lifetime when the request names none.
    pub token_ttl_secs: i64,
    /// Webhook / status_url retries after the first attempt, and the first backoff (doubled).
    pub webhook_retries: u32,
    pub webhook_backoff: Duration,
    /// Reject GP-API requests without `X-GP-Version` (the real API requires it).
    pub require_gp_version: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            app_id: "sandbox-app-id".into(),
            app_key: "sandbox-app-key".into(),
            retail_token: "sandbox-retail-token".into(),
            merchant_id: "MER_7e3e2c7df34f42819b3edee31022ee3f".into(),
            merchant_name: "Sandbox_merchant_heartsuite".into(),
            fees: FeeModel::default(),
            latency: Duration::ZERO,
            seed: 42,
            chargeback_ppm: 700,
            token_ttl_secs: 86_399,
            webhook_retries: 3,
            webhook_backoff: Duration::from_millis(200),
            require_gp_version: true,
        }
    }
}

// Secrets never reach Debug output (and so never logs).
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("app_id", &self.app_id)
            .field("app_key", &"<redacted>")
            .field("retail_token", &"<redacted>")
            .field("merchant_id", &self.merchant_id)
            .field("fees", &self.fees)
            .field("latency", &self.latency)
            .field("seed", &self.seed)
            .field("chargeback_ppm", &self.chargeback_ppm)
            .finish_non_exhaustive()
    }
}

/// The crate's one error type. API-shaped variants carry what the wire response needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A GP-API error envelope `{error_code, detailed_error_code, detailed_error_description}`.
    #[error("GP-API {status} {code} {detailed}: {description}")]
    GpApi {
        status: u16,
        code: &'static str,
        detailed: &'static str,
        description: String,
    },
    /// A Heartland Retail error `{error, message}`.
    #[error("Retail {status} {error}: {message}")]
    Retail {
        status: u16,
        error: &'static str,
        message: String,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn gp(
        status: u16,
        code: &'static str,
        detailed: &'static str,
        d: impl Into<String>,
    ) -> Self {
        Error::GpApi {
            status,
            code,
            detailed,
            description: d.into(),
        }
    }
    pub(crate) fn retail(status: u16, error: &'static str, m: impl Into<String>) -> Self {
        Error::Retail {
            status,
            error,
            message: m.into(),
        }
    }
}

/// A running sandbox: its addresses, its state, and the way to stop it.
pub struct SandboxHandle {
    pub gpapi_addr: SocketAddr,
    pub retail_addr: SocketAddr,
    sandbox: Sandbox,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SandboxHandle {
    /// Shared state: the same object the HTTP handlers use.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
    /// `http://addr/ucp` — what a GP-API client takes as its service URL.
    pub fn gpapi_url(&self) -> String {
        format!("http://{}/ucp", self.gpapi_addr)
    }
    /// `http://addr/api`.
    pub fn retail_url(&self) -> String {
        format!("http://{}/api", self.retail_addr)
    }
    /// Stops both servers (in-flight requests finish) and the delivery worker.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Serves GP-API on `gpapi` and Retail on `retail` until [`SandboxHandle::shutdown`].
pub async fn spawn(
    gpapi: tokio::net::TcpListener,
    retail: tokio::net::TcpListener,
    cfg: Config,
) -> Result<SandboxHandle, Error> {
    let gpapi_addr = gpapi.local_addr()?;
    let retail_addr = retail.local_addr()?;
    let (sandbox, outbox) = Sandbox::new(cfg);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();

    tasks.push(tokio::spawn(delivery::run(
        sandbox.clone(),
        outbox,
        stop_rx.clone(),
    )));

    let apps = [
        (
            gpapi,
            control::with_faults(gpapi::router(), Service::GpApi, sandbox.clone()),
        ),
        (
            retail,
            control::with_faults(retail::router(), Service::Retail, sandbox.clone()),
        ),
    ];
    for (listener, app) in apps {
        let mut rx = stop_rx.clone();
        let svc = app.into_make_service_with_connect_info::<SocketAddr>();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, svc)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "sandbox-heartland server stopped");
            }
        }));
    }
    Ok(SandboxHandle {
        gpapi_addr,
        retail_addr,
        sandbox,
        stop,
        tasks,
    })
}

//! zero2prod-style harness: the real server on a random port with a fresh database per test.
#![allow(dead_code)]

pub mod engine;

use async_trait::async_trait;
use heartsuite::server::{self, FlowRouter, Running, StartOptions};
use heartsuite_core::{Clock, Failure, Secret, SystemClock};
use heartsuite_engine::alerts::{AlertConfig, Alerts};
use heartsuite_engine::breaker::{BreakerConfig, Breakers};
use heartsuite_engine::ingress::{self, SourceAuth, SourceFormat, SourceSpec};
use heartsuite_engine::{JobContext, JobHandler, WorkerConfig};
use heartsuite_store::{DynStore, LeasedJob};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const SHOP_SECRET: &str = "shop-test-secret";
pub const GP_KEY: &str = "gp-app-key";
pub const RETAIL_TOKEN: &str = "retail-path-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-test-token";

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub store: DynStore,
    pub http: reqwest::Client,
    pub running: Option<Running>,
    pub dir: PathBuf,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_signed(&self, source: &str, body: &str, secret: &str) -> reqwest::Response {
        let ts = (SystemClock.now_micros() / 1_000_000).to_string();
        let sig = ingress::hmac_signature(secret.as_bytes(), &ts, body.as_bytes());
        self.http
            .post(self.url(&format!("/hooks/{source}")))
            .header(ingress::TIMESTAMP_HEADER, ts)
            .header(ingress::SIGNATURE_HEADER, sig)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every event triggers the flows named here.
pub struct StaticRouter(pub Vec<String>);
impl FlowRouter for StaticRouter {
    fn flows_for(&self, _kind: &str, _payload: &Value) -> Vec<String> {
        self.0.clone()
    }
}

pub struct Noop;
#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _job: &LeasedJob, _ctx: &JobContext) -> Result<(), Failure> {
        Ok(())
    }
}

pub fn fresh_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hs-test-{}-{:x}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn sources() -> Vec<SourceSpec> {
    vec![
        SourceSpec {
            name: "shop".into(),
            auth: SourceAuth::Hmac { secrets: vec![Secret::new(SHOP_SECRET)], tolerance_secs: 300 },
            format: SourceFormat::Shop,
        },
        SourceSpec { name: "gpapi".into(), auth: SourceAuth::GpSignature { app_key: Secret::new(GP_KEY) }, format: SourceFormat::GpApi },
        SourceSpec {
            name: "retail".into(),
            auth: SourceAuth::PathToken { token: Secret::new(RETAIL_TOKEN) },
            format: SourceFormat::Retail,
        },
    ]
}

pub async fn spawn_app(router: Arc<dyn FlowRouter>, handler: Arc<dyn JobHandler>, workers: bool) -> TestApp {
    let dir = fresh_dir();
    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("t.db").display())).await.expect("store");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: sources(),
            router,
            handler,
            alerts: Arc::new(Alerts::new(AlertConfig::default(), clock.clone())),
            breakers: Arc::new(Breakers::new(BreakerConfig::default(), clock.clone())),
            worker: workers.then(|| WorkerConfig {
                concurrency: 4,
                lease_for: Duration::from_secs(5),
                idle_poll: Duration::from_millis(50),
                ..WorkerConfig::default()
            }),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            max_body: 64 * 1024,
            max_batch: 256,
        },
    )
    .await
    .expect("start");
    TestApp { addr: running.addr, store, http: reqwest::Client::new(), running: Some(running), dir }
}

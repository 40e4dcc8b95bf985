//! The whole engine as `heartsuite serve` assembles it (built-in flows, connectors, sources,
//! worker) from a `Config`, on a random port, for end-to-end tests against the sandboxes.

use heartsuite::config::{
    Config, NetSuiteConfig, RetailConfig, SecretResolver, SourceConfig, SourceKind,
};
use heartsuite::server::{self, Running, StartOptions};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_engine::alerts::Alerts;
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_store::DynStore;
use std::sync::Arc;
use std::time::Duration;

pub struct Engine {
    pub running: Running,
    pub store: DynStore,
    pub alerts: Arc<Alerts>,
}

/// The built-in flows, Retail webhooks at `/hooks/retail/<hook_token>` fetched back from the
/// Retail sandbox, and the NetSuite sandbox as the write target; data in a fresh directory.
pub fn retail_to_netsuite_config(
    hook_token: &str,
    retail_url: String,
    netsuite_url: String,
) -> Config {
    let mut cfg = Config::default();
    cfg.server.data_dir = super::fresh_dir();
    cfg.flows.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/flows").into();
    cfg.sources.insert(
        "retail".into(),
        SourceConfig {
            kind: SourceKind::Retail,
            secrets: vec![],
            app_key: None,
            token: Some(hook_token.into()),
            tolerance_secs: 300,
        },
    );
    // The Heartland sandbox's fixed Retail API token.
    cfg.retail = Some(RetailConfig {
        base_url: retail_url,
        token: "sandbox-retail-token".into(),
    });
    cfg.netsuite = Some(NetSuiteConfig {
        concurrency: 5,
        timeout_secs: 10,
        ..NetSuiteConfig::sandbox(netsuite_url)
    });
    cfg
}

pub async fn start_engine(cfg: &Config) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = SecretResolver::new(cfg);
    let store = heartsuite::cli::open_store(cfg).await.expect("store");
    let (alerts, breakers) =
        heartsuite::cli::engine_parts(cfg, clock.clone(), &secrets).expect("engine parts");
    let wired = heartsuite::wiring::build(
        cfg,
        &secrets,
        clock.clone(),
        breakers.clone(),
        Some(store.clone()),
    )
    .expect("wiring");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut worker = heartsuite::cli::worker_config(cfg);
    worker.idle_poll = Duration::from_millis(50);
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock,
            sources: heartsuite::sources::build(cfg, &secrets).expect("sources"),
            router: wired.router.clone(),
            handler: wired.handler.clone(),
            alerts: alerts.clone(),
            breakers,
            worker: Some(worker),
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 64,
        },
    )
    .await
    .expect("start");
    Engine {
        running,
        store,
        alerts,
    }
}

/// A client of the NetSuite sandbox with its fixed TBA credentials, for reading back what the
/// engine wrote and for setting up records made "in NetSuite".
pub fn sandbox_netsuite_client(base_url: String) -> NetSuiteClient {
    let conf = heartsuite_netsuite::Config::new(
        "1234567_SB1",
        heartsuite_netsuite::Auth::Tba {
            consumer_key: Secret::new("sandbox-consumer-key"),
            consumer_secret: Secret::new("sandbox-consumer-secret"),
            token_id: Secret::new("sandbox-token-id"),
            token_secret: Secret::new("sandbox-token-secret"),
        },
    )
    .with_base_url(base_url);
    NetSuiteClient::new(conf).expect("netsuite client")
}

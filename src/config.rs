//! One TOML file with environment overrides (`HEARTSUITE_SERVER__LISTEN=...`: section and key
//! joined by `__`). Unknown keys are errors that name the key, so a typo never silently falls back
//! to a default. Credentials are references, never literals in logs: `env:NAME` reads an
//! environment variable, `secret:NAME` the encrypted secrets file, `file:PATH` a file's content.

use anyhow::{Context, Result, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use heartsuite_core::Secret;
use heartsuite_engine::policy::ClassPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub engine: EngineConfig,
    /// Webhook sources by name (`/hooks/{name}`).
    pub sources: BTreeMap<String, SourceConfig>,
    pub alerts: AlertsConfig,
    /// Default retry policy overrides by error class (`[retry.transient]`).
    pub retry: BTreeMap<String, ClassPolicy>,
    pub secrets: SecretsConfig,
    pub flows: FlowsConfig,
    /// The NetSuite account (absent: flows cannot write to NetSuite).
    pub netsuite: Option<NetSuiteConfig>,
    /// GP-API credentials (absent: no captures, refunds, deposit polling).
    pub gpapi: Option<GpApiConfig>,
    /// Heartland Retail API (absent: no record fetch-back, item/stock pushes).
    pub retail: Option<RetailConfig>,
    /// Pollers for what sends no webhooks.
    pub pollers: crate::pollers::PollersConfig,
    /// Reconciliation rules, translation tables and the daily schedule (`heartsuite reconcile`).
    pub recon: heartsuite_recon::ReconConfig,
    /// Item and stock pushes to Heartland Retail: location pairing, adjustment reason.
    pub stock: crate::drift::StockConfig,
    /// The scheduled NetSuite ⇄ Retail item and stock drift check.
    pub drift: crate::drift::DriftConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSuiteConfig {
    /// Account id as NetSuite writes it, e.g. `1234567_SB1`.
    pub account: String,
    /// Override of `https://{account-slug}.suitetalk.api.netsuite.com` (the sandbox).
    #[serde(default)]
    pub base_url: Option<String>,
    /// `tba` (OAuth 1.0a) or `oauth2` (client credentials, JWT ES256).
    pub auth: String,
    #[serde(default)]
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub consumer_secret: Option<String>,
    #[serde(default)]
    pub token_id: Option<String>,
    #[serde(default)]
    pub token_secret: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// PKCS#8 PEM private key (a secret reference such as `file:/etc/heartsuite/ns.pem`).
    #[serde(default)]
    pub private_key: Option<String>,
    /// Concurrent requests this integration may use; 0 = ask governanceLimits.
    #[serde(default = "default_ns_concurrency")]
    pub concurrency: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl NetSuiteConfig {
    /// The NetSuite sandbox's fixed TBA credentials (`heartsuite sandbox`, the demo, tests).
    pub fn sandbox(base_url: String) -> Self {
        Self {
            account: "1234567_SB1".into(),
            base_url: Some(base_url),
            auth: "tba".into(),
            consumer_key: Some("sandbox-consumer-key".into()),
            consumer_secret: Some("sandbox-consumer-secret".into()),
            token_id: Some("sandbox-token-id".into()),
            token_secret: Some("sandbox-token-secret".into()),
            client_id: None,
            certificate_id: None,
            private_key: None,
            concurrency: 15,
            timeout_secs: 30,
        }
    }
}

fn default_ns_concurrency() -> u32 {
    5
}

fn default_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpApiConfig {
    /// Default `https://apis.sandbox.globalpay.com/ucp`.
    #[serde(default)]
    pub base_url: Option<String>,
    pub app_id: String,
    pub app_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetailConfig {
    /// `https://{subdomain}.retail.heartland.us/api`.
    pub base_url: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// Empty: SQLite at `{data_dir}/heartsuite.db`. `postgres://...` for PostgreSQL.
    pub database_url: String,
    /// Largest webhook body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Bearer token for the admin API (a secret reference); unset = admin API disabled.
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            max_body_bytes: 1024 * 1024,
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Jobs run at once in this process.
    pub workers: usize,
    pub lease_secs: u64,
    /// Most events committed in one inbox transaction.
    pub max_batch: usize,
    /// Consecutive failures that open a system's circuit, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_open_secs: u64,
    /// Run the worker pool inside `serve` (turn off for an ingest-only node).
    pub run_workers: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { workers: 16, lease_secs: 60, max_batch: 512, breaker_threshold: 5, breaker_open_secs: 30, run_workers: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Netsuite,
    Shop,
    Gpapi,
    Retail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// HMAC secrets (netsuite, shop): several during a rotation.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// GP-API app key (gpapi).
    #[serde(default)]
    pub app_key: Option<String>,
    /// URL path token (retail).
    #[serde(default)]
    pub token: Option<String>,
    /// Allowed clock skew for signed sources, seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

fn default_tolerance() -> i64 {
    300
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Slack-compatible webhook URL (a secret reference).
    pub webhook_url: Option<String>,
    pub per_key_interval_secs: u64,
    pub window_secs: u64,
    pub burst: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { webhook_url: None, per_key_interval_secs: 300, window_secs: 600, burst: 10 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Encrypted secrets file; default `{data_dir}/secrets.json`.
    pub file: Option<PathBuf>,
    /// File holding the key; otherwise `HEARTSUITE_SECRETS_KEY`.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Directory of flow files.
    pub dir: PathBuf,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("flows") }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            engine: EngineConfig::default(),
            sources: BTreeMap::new(),
            alerts: AlertsConfig::default(),
            retry: BTreeMap::new(),
            secrets: SecretsConfig::default(),
            flows: FlowsConfig::default(),
            netsuite: None,
            gpapi: None,
            retail: None,
            pollers: crate::pollers::PollersConfig::default(),
            recon: heartsuite_recon::ReconConfig::default(),
            stock: crate::drift::StockConfig::default(),
            drift: crate::drift::DriftConfig::default(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if given), then `HEARTSUITE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                bail!("config file {} does not exist", f.display());
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables with a `__` are config keys (HEARTSUITE_SERVER__LISTEN); others such as
        // HEARTSUITE_SECRETS_KEY are read where they are used.
        fig = fig.merge(Env::prefixed("HEARTSUITE_").filter(|k| k.as_str().contains("__")).split("__"));
        let cfg: Config = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow!("configuration error: {}", msgs.join("; "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        for name in self.retry.keys() {
            if heartsuite_core::ErrorClass::parse(name).is_none() {
                let known: Vec<_> = heartsuite_core::ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
                bail!("configuration error: [retry.{name}] is not an error class; use one of {}", known.join(", "));
            }
        }
        for (name, s) in &self.sources {
            let missing = match s.kind {
                SourceKind::Netsuite | SourceKind::Shop if s.secrets.is_empty() => Some("secrets"),
                SourceKind::Gpapi if s.app_key.is_none() => Some("app_key"),
                SourceKind::Retail if s.token.is_none() => Some("token"),
                _ => None,
            };
            if let Some(key) = missing {
                bail!("configuration error: sources.{name}.{key} is required for a {:?} source", s.kind);
            }
        }
        self.recon.validate().map_err(|e| anyhow!("configuration error: {e}"))?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        if self.server.database_url.trim().is_empty() {
            format!("sqlite://{}", self.server.data_dir.join("heartsuite.db").display())
        } else {
            self.server.database_url.clone()
        }
    }

    pub fn secrets_file(&self) -> PathBuf {
        self.secrets.file.clone().unwrap_or_else(|| self.server.data_dir.join("secrets.json"))
    }
}

/// Resolves a secret reference (`env:`, `secret:`, `file:` or a literal).
pub struct SecretResolver {
    file: Option<heartsuite_engine::secrets::SecretsFile>,
    file_error: Option<String>,
}

impl SecretResolver {
    pub fn new(cfg: &Config) -> Self {
        let key = match &cfg.secrets.key_file {
            Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read key file {}: {e}", p.display())),
            None => std::env::var("HEARTSUITE_SECRETS_KEY").map_err(|_| "HEARTSUITE_SECRETS_KEY is not set".to_string()),
        };
        let opened = key.and_then(|k| heartsuite_engine::secrets::parse_key(&k).map_err(|e| e.to_string())).and_then(|k| {
            heartsuite_engine::secrets::SecretsFile::open(&cfg.secrets_file(), &k).map_err(|e| e.to_string())
        });
        match opened {
            Ok(f) => Self { file: Some(f), file_error: None },
            Err(e) => Self { file: None, file_error: Some(e) },
        }
    }

    pub fn resolve(&self, reference: &str, what: &str) -> Result<Secret> {
        if let Some(var) = reference.strip_prefix("env:") {
            return std::env::var(var)
                .map(Secret::new)
                .with_context(|| format!("{what}: environment variable {var} is not set"));
        }
        if let Some(name) = reference.strip_prefix("secret:") {
            let f = self.file.as_ref().ok_or_else(|| {
                anyhow!("{what}: cannot open the secrets file ({})", self.file_error.as_deref().unwrap_or("unknown"))
            })?;
            return f.get(name).map_err(|e| anyhow!("{what}: {e}"));
        }
        if let Some(path) = reference.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end()))
                .with_context(|| format!("{what}: cannot read {path}"));
        }
        Ok(Secret::new(reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("hs-cfg-{}.toml", rand_suffix()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn rand_suffix() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    #[test]
    fn unknown_keys_are_named() {
        let p = write("[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"x\"\n");
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("listne"), "{e}");
    }

    #[test]
    fn sources_need_their_credentials() {
        let p = write("[sources.shop]\nkind = \"shop\"\n");
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("sources.shop.secrets"), "{e}");
        let p = write("[retry.transiant]\nmax_attempts = 3\nbase_delay = 1\nmax_delay = 2\nmax_age = 3\nburns_attempt = true\ndead_letter_at_once = false\n");
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("transiant") && e.contains("transient"), "{e}");
    }

    #[test]
    fn secret_references() {
        let cfg = Config::default();
        let r = SecretResolver::new(&cfg);
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("HS_TEST_SECRET_REF", "v") };
        assert_eq!(r.resolve("env:HS_TEST_SECRET_REF", "x").unwrap().expose(), "v");
        let e = r.resolve("env:HS_TEST_NOT_SET_AT_ALL", "sources.shop.secrets").unwrap_err().to_string();
        assert!(e.contains("HS_TEST_NOT_SET_AT_ALL") && e.contains("sources.shop.secrets"), "{e}");
        assert_eq!(r.resolve("literal", "x").unwrap().expose(), "literal");
    }
}

//! The command line. Each subcommand is a thin shell over library code that tests also call.

use crate::config::{Config, SecretResolver};
use crate::server::{self, StartOptions};
use crate::wiring;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_engine::alerts::{AlertConfig, Alerts};
use heartsuite_engine::breaker::{BreakerConfig, Breakers};
use heartsuite_engine::{WorkerConfig, admin};
use heartsuite_store::DynStore;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "heartsuite", version, about = "NetSuite ⇄ Heartland integration engine")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Configuration file (TOML). Environment variables HEARTSUITE_SECTION__KEY override it.
    #[arg(long, global = true, env = "HEARTSUITE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, secrets file).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the webhook server and the worker pool.
    Serve {
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Jobs by state, dead letters, circuits.
    Status,
    /// The dead-letter queue.
    Dlq {
        #[command(subcommand)]
        cmd: DlqCmd,
    },
    /// Possible duplicate customers held for a decision: list, merge, create-new (audited).
    Review {
        #[command(subcommand)]
        cmd: crate::customer_match::ReviewCmd,
    },
    /// The tamper-evident audit chain.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// The encrypted secrets file.
    Secrets {
        #[command(subcommand)]
        cmd: SecretsCmd,
    },
    /// Measurements (see docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        cmd: crate::bench::BenchCmd,
    },
    /// Run the sandbox demo end to end on the embedded default.
    Demo(crate::demo::DemoArgs),
    /// Check flow files and run their examples.
    Flows {
        #[command(subcommand)]
        cmd: crate::flows_cmd::FlowsCmd,
    },
    /// Mappings: `map test --flow F --input x.json` dry-runs a payload through a flow.
    Map {
        #[command(subcommand)]
        cmd: MapCmd,
    },
    /// Copy the built-in flows into DIR for editing.
    Init { dir: PathBuf },
    /// Run the NetSuite, GP-API and Heartland Retail sandboxes.
    Sandbox(crate::sandbox_cmd::SandboxArgs),
    /// Reconcile Heartland against NetSuite for a business date or a deposit; re-drive or
    /// accept an exception.
    Reconcile(crate::recon_cmd::ReconcileArgs),
    /// Compare NetSuite items and on-hand stock with Heartland Retail: every (SKU, location)
    /// whose quantity differs, items on one side only, price and description differences.
    /// Exit code: 0 no drift, 1 drift found, 2 the check could not run.
    Drift {
        #[arg(long, value_enum, default_value = "table")]
        format: crate::drift::DriftFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum MapCmd {
    /// Print what a payload becomes and every validation finding, writing nothing.
    Test {
        #[arg(long)]
        flow: String,
        #[arg(long)]
        input: PathBuf,
        /// Flows directory (default: flows.dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCmd {
    /// Dead-lettered jobs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job with its event payload and last error.
    Show { id: i64 },
    /// Put a job back in the queue, optionally with an edited payload (audited).
    Replay {
        id: i64,
        #[arg(long)]
        payload: Option<PathBuf>,
    },
    /// Give up on a job (audited).
    Discard {
        id: i64,
        #[arg(long, default_value = "discarded by operator")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check every link of the chain; names the first altered entry.
    Verify,
    /// The history of one record or job (subject as written in the chain, e.g. `job:42`).
    Show {
        #[arg(long)]
        subject: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Print a new random key for HEARTSUITE_SECRETS_KEY or secrets.key_file.
    Keygen,
    /// Store a secret; the value is read from standard input.
    Set { name: String },
    /// Names of stored secrets (never values).
    List,
    /// Remove a secret.
    Remove { name: String },
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and benchmarks print their own summary, dead letters and alerts included.
    let quiet = matches!(cli.command, Command::Demo(_) | Command::Bench { .. });
    crate::telemetry::init(if quiet { "error" } else { "info" });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn load_config(g: &Global) -> Result<Config> {
    let mut cfg = Config::load(g.config.as_deref())?;
    if let Some(d) = &g.data_dir {
        cfg.server.data_dir = d.clone();
    }
    if let Some(u) = &g.database_url {
        cfg.server.database_url = u.clone();
    }
    Ok(cfg)
}

pub async fn open_store(cfg: &Config) -> Result<DynStore> {
    if cfg.database_url().starts_with("sqlite") {
        std::fs::create_dir_all(&cfg.server.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.server.data_dir.display()))?;
    }
    heartsuite_store::open(&cfg.database_url()).await.map_err(|e| anyhow!("cannot open the store: {e}"))
}

pub async fn run(cli: Cli) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve { listen } => {
            let mut cfg = load_config(&cli.global)?;
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            serve(cfg, clock).await
        }
        Command::Migrate => {
            let cfg = load_config(&cli.global)?;
            let store = open_store(&cfg).await?;
            store.migrate().await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Status => {
            let cfg = load_config(&cli.global)?;
            let store = open_store(&cfg).await?;
            println!("store: {} ({})", store.backend(), redact_url(&cfg.database_url()));
            println!("events: {}", store.event_count().await?);
            for (state, n) in store.job_counts().await? {
                println!("jobs {:<10} {n}", state.as_str());
            }
            Ok(())
        }
        Command::Dlq { cmd } => {
            let cfg = load_config(&cli.global)?;
            let store = open_store(&cfg).await?;
            dlq(cmd, &store, clock.as_ref()).await
        }
        Command::Review { cmd } => {
            let cfg = load_config(&cli.global)?;
            let store = open_store(&cfg).await?;
            crate::customer_match::review(cmd, &store, clock.as_ref()).await
        }
        Command::Audit { cmd } => {
            let cfg = load_config(&cli.global)?;
            let store = open_store(&cfg).await?;
            audit(cmd, &store).await
        }
        Command::Secrets { cmd } => secrets(cmd, &load_config(&cli.global)?, clock.as_ref()).await,
        Command::Bench { cmd } => crate::bench::run(cmd, &cli.global).await,
        Command::Demo(args) => crate::demo::run(args, &cli.global).await,
        Command::Flows { cmd } => crate::flows_cmd::run(cmd, &load_config(&cli.global)?),
        Command::Map { cmd: MapCmd::Test { flow, input, dir } } => {
            crate::flows_cmd::map_test(&load_config(&cli.global)?, &flow, &input, dir)
        }
        Command::Init { dir } => crate::flows_cmd::init(&dir),
        Command::Sandbox(a) => crate::sandbox_cmd::run(a).await,
        Command::Reconcile(a) => crate::recon_cmd::run(a, &load_config(&cli.global)?, clock).await,
        Command::Drift { format } => crate::drift::command(&load_config(&cli.global)?, format, clock).await,
    }
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub fn engine_parts(cfg: &Config, clock: Arc<dyn Clock>, secrets: &SecretResolver) -> Result<(Arc<Alerts>, Arc<Breakers>)> {
    let webhook_url = cfg.alerts.webhook_url.as_deref().map(|r| secrets.resolve(r, "alerts.webhook_url")).transpose()?;
    let alerts = Arc::new(Alerts::new(
        AlertConfig {
            webhook_url,
            per_key_interval: Duration::from_secs(cfg.alerts.per_key_interval_secs),
            window: Duration::from_secs(cfg.alerts.window_secs),
            burst: cfg.alerts.burst,
        },
        clock.clone(),
    ));
    let breakers = Arc::new(Breakers::new(
        BreakerConfig { failure_threshold: cfg.engine.breaker_threshold, open_for: cfg.engine.breaker_open_secs as i64 * 1_000_000 },
        clock,
    ));
    Ok((alerts, breakers))
}

pub fn worker_config(cfg: &Config) -> WorkerConfig {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    WorkerConfig {
        owner: format!("{host}:{}:{:08x}", std::process::id(), rand_u32()),
        concurrency: cfg.engine.workers.max(1),
        lease_for: Duration::from_secs(cfg.engine.lease_secs.max(1)),
        ..WorkerConfig::default()
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

async fn serve(cfg: Config, clock: Arc<dyn Clock>) -> Result<()> {
    let store = open_store(&cfg).await?;
    let secrets = SecretResolver::new(&cfg);
    let sources = crate::sources::build(&cfg, &secrets)?;
    let (alerts, breakers) = engine_parts(&cfg, clock.clone(), &secrets)?;
    let wired = wiring::build(&cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone()))?;
    let admin_token = cfg.server.admin_token.as_deref().map(|r| secrets.resolve(r, "server.admin_token")).transpose()?;
    let changed = crate::config_audit::record(&store, clock.as_ref(), &cfg).await?;
    if !changed.is_empty() {
        tracing::info!(changed = ?changed, "configuration changed since the last start (recorded in the audit chain)");
    }
    let clock_for_pollers = clock.clone();
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let running = server::start(
        listener,
        StartOptions {
            store,
            clock,
            sources,
            router: wired.router.clone(),
            handler: wired.handler.clone(),
            alerts: alerts.clone(),
            breakers,
            worker: cfg.engine.run_workers.then(|| worker_config(&cfg)),
            admin_token,
            max_body: cfg.server.max_body_bytes,
            max_batch: cfg.engine.max_batch,
        },
    )
    .await?;
    tracing::info!(addr = %running.addr, store = running.store.backend(), "heartsuite serving");
    let token = running.token();
    let recon = crate::recon_cmd::spawn_daily(&cfg, running.store.clone(), wired.connectors.clone(), clock_for_pollers.clone(), token.clone())?;
    let pollers = crate::pollers::spawn(&cfg.pollers, running.store.clone(), wired.connectors.clone(), wired.router.clone(), clock_for_pollers, token.clone());
    let drift = crate::drift::spawn(&cfg.drift, wired.connectors.clone(), alerts, token.clone());
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing in-flight work");
        token.cancel();
    });
    running.wait().await;
    for p in pollers.into_iter().chain(drift) {
        let _ = p.await;
    }
    if let Some(r) = recon {
        let _ = r.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn dlq(cmd: DlqCmd, store: &DynStore, clock: &dyn Clock) -> Result<()> {
    match cmd {
        DlqCmd::List { limit } => {
            let jobs = admin::dlq_list(store, limit).await?;
            if jobs.is_empty() {
                println!("the dead-letter queue is empty");
            }
            for j in jobs {
                let err = j.last_error.as_ref().map(|e| e.to_string()).unwrap_or_default();
                println!("{:>8}  {:<32} event {:<8} attempts {:<3} {}", j.id, j.flow, j.event_id, j.attempts, err);
            }
            Ok(())
        }
        DlqCmd::Show { id } => {
            let (job, event) = admin::job_with_event(store, id).await?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"job": job, "event": event}))?);
            Ok(())
        }
        DlqCmd::Replay { id, payload } => {
            let edited = match payload {
                Some(p) => {
                    let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
                    Some(serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?)
                }
                None => None,
            };
            let who = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
            admin::dlq_replay(store, clock, id, edited, &who).await?;
            println!("job {id} is queued again");
            Ok(())
        }
        DlqCmd::Discard { id, reason } => {
            let who = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
            admin::dlq_discard(store, clock, id, &who, &reason).await?;
            println!("job {id} discarded");
            Ok(())
        }
    }
}

async fn audit(cmd: AuditCmd, store: &DynStore) -> Result<()> {
    match cmd {
        AuditCmd::Verify => {
            let r = admin::audit_verify(store).await?;
            match r.first_break {
                None => {
                    println!("audit chain intact: {} entries verified", r.entries);
                    Ok(())
                }
                Some(b) => bail!("audit chain BROKEN at entry {}: {} ({} entries before it verified)", b.seq, b.reason, r.entries),
            }
        }
        AuditCmd::Show { subject } => {
            let entries = store.audit_for_subject(&subject).await?;
            if entries.is_empty() {
                println!("no audit entries for {subject}");
            }
            for e in entries {
                println!(
                    "#{:<6} {} {:<28} by {:<12} event {:?} job {:?} remote {:?} {}",
                    e.seq,
                    heartsuite_core::clock::format_micros(e.entry.at),
                    e.entry.action,
                    e.entry.actor,
                    e.entry.event_id,
                    e.entry.job_id,
                    e.entry.remote_id,
                    e.entry.details
                );
            }
            Ok(())
        }
    }
}

async fn secrets(cmd: SecretsCmd, cfg: &Config, clock: &dyn Clock) -> Result<()> {
    use heartsuite_engine::secrets::{SecretsFile, generate_key, parse_key};
    if let SecretsCmd::Keygen = cmd {
        println!("{}", generate_key());
        return Ok(());
    }
    let key_text = match &cfg.secrets.key_file {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read key file {}", p.display()))?,
        None => std::env::var("HEARTSUITE_SECRETS_KEY")
            .map_err(|_| anyhow!("set HEARTSUITE_SECRETS_KEY (create one with `heartsuite secrets keygen`) or secrets.key_file"))?,
    };
    let key = parse_key(&key_text)?;
    let path = cfg.secrets_file();
    let mut file = SecretsFile::open(&path, &key)?;
    match cmd {
        SecretsCmd::Keygen => Ok(()),
        SecretsCmd::Set { name } => {
            let mut value = String::new();
            std::io::stdin().read_line(&mut value).context("reading the secret from standard input")?;
            let value = value.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                bail!("no value on standard input");
            }
            file.set(&name, &Secret::new(value))?;
            file.save()?;
            audit_admin(cfg, clock, "secrets.set", &name).await?;
            println!("stored `{name}` in {}", path.display());
            Ok(())
        }
        SecretsCmd::List => {
            for n in file.names() {
                println!("{n}");
            }
            Ok(())
        }
        SecretsCmd::Remove { name } => {
            if !file.remove(&name) {
                bail!("no secret named `{name}`");
            }
            file.save()?;
            audit_admin(cfg, clock, "secrets.remove", &name).await?;
            println!("removed `{name}`");
            Ok(())
        }
    }
}

/// Records an administrative change in the audit chain: who and what, never a value.
async fn audit_admin(cfg: &Config, clock: &dyn Clock, action: &str, name: &str) -> Result<()> {
    let store = open_store(cfg).await?;
    store
        .audit_append(&heartsuite_store::NewAudit {
            at: clock.now_micros(),
            actor: format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())),
            action: action.to_string(),
            subject: format!("secret:{name}"),
            event_id: None,
            job_id: None,
            remote_id: None,
            details: serde_json::json!({}),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}

//! Configuration changes in the audit chain. `serve` has no live reload: a change takes effect
//! when a process starts, so that is when it is recorded. Each configuration section and each
//! flow file is hashed; a section whose hash differs from the one recorded last time is appended
//! to the chain as `config.change` (who: the OS user that started the process; what: the changed
//! sections and flow files, never their values — a section may hold a literal credential). The
//! hashes are kept in the store's cursors, so two processes with the same configuration record
//! it once.

use crate::config::Config;
use anyhow::{Context, Result};
use heartsuite_core::Clock;
use heartsuite_store::{DynStore, NewAudit};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const CURSOR_PREFIX: &str = "config.digest.";

fn hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One hash per configuration section (`server`, `netsuite`, `sources`...) and per flow file
/// (`flows/<file name>`).
pub fn digests(cfg: &Config) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let whole = serde_json::to_value(cfg).context("encoding the configuration")?;
    if let Value::Object(sections) = whole {
        for (name, mut v) in sections {
            // Where to listen is the host's business (often a flag, a new port per start), not
            // behaviour worth an audit entry.
            if let (true, Value::Object(m)) = (name == "server", &mut v) {
                m.remove("listen");
            }
            out.insert(name, hash(&v.to_string()));
        }
    }
    if cfg.flows.dir.is_dir() {
        let entries = std::fs::read_dir(&cfg.flows.dir).with_context(|| format!("reading {}", cfg.flows.dir.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) == Some("toml") {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                out.insert(format!("flows/{}", e.file_name().to_string_lossy()), hash(&text));
            }
        }
    }
    Ok(out)
}

/// Records what changed since the configuration last recorded; returns the changed names.
pub async fn record(store: &DynStore, clock: &dyn Clock, cfg: &Config) -> Result<Vec<String>> {
    let now = digests(cfg)?;
    let mut changed = Vec::new();
    let mut first_time = true;
    for (name, digest) in &now {
        let previous = store.cursor(&format!("{CURSOR_PREFIX}{name}")).await?;
        first_time &= previous.is_none();
        if previous.as_deref() != Some(digest.as_str()) {
            changed.push(name.clone());
        }
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    let actor = format!("os:{}", std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()));
    store
        .audit_append(&NewAudit {
            at: clock.now_micros(),
            actor,
            action: "config.change".into(),
            subject: "config".into(),
            event_id: None,
            job_id: None,
            remote_id: None,
            details: json!({"changed": changed, "first_start": first_time, "digests": changed.iter().map(|n| (n.clone(), now[n].clone())).collect::<BTreeMap<_, _>>()}),
        })
        .await?;
    for name in &changed {
        store.set_cursor(&format!("{CURSOR_PREFIX}{name}"), &now[name], clock.now_micros()).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartsuite_core::ManualClock;

    #[tokio::test]
    async fn a_changed_section_or_flow_file_is_audited_once_and_values_never() {
        let dir = std::env::temp_dir().join(format!("hs-config-audit-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("flows")).expect("dir");
        std::fs::write(dir.join("flows/a.toml"), "name = \"a\"").expect("flow");
        let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("t.db").display())).await.expect("store");
        let clock = ManualClock::new(1_000);
        let mut cfg = Config::default();
        cfg.flows.dir = dir.join("flows");
        cfg.server.admin_token = Some("a-literal-token-value".into());

        let first = record(&store, &clock, &cfg).await.expect("record");
        assert!(first.contains(&"server".to_string()) && first.contains(&"flows/a.toml".to_string()), "{first:?}");
        assert!(record(&store, &clock, &cfg).await.expect("again").is_empty(), "an unchanged start records nothing");

        cfg.server.listen = "127.0.0.1:1".into();
        assert!(record(&store, &clock, &cfg).await.expect("listen").is_empty(), "a new port is not a change");
        cfg.engine.workers += 1;
        std::fs::write(dir.join("flows/a.toml"), "name = \"a\" # edited").expect("flow");
        assert_eq!(record(&store, &clock, &cfg).await.expect("changed"), ["engine", "flows/a.toml"]);

        let entries = store.audit_entries(0, 100).await.expect("entries");
        let changes: Vec<_> = entries.iter().filter(|e| e.entry.action == "config.change").collect();
        assert_eq!(changes.len(), 2);
        assert!(entries.iter().all(|e| !e.entry.details.to_string().contains("a-literal-token-value")), "values never reach the chain");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

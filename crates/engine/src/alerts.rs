//! Alerts to a Slack-compatible webhook and the log, rate-limited so that an outage sends a
//! few messages, not thousands: one per (kind, key) per interval, and at most `burst` per window
//! overall; what was held back is counted and mentioned in the next alert that goes out.

use heartsuite_core::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    DeadLettered,
    CircuitOpened,
    CircuitClosed,
    CredentialsRefused,
    ReconciliationDifferences,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DeadLettered => "dead_lettered",
            AlertKind::CircuitOpened => "circuit_opened",
            AlertKind::CircuitClosed => "circuit_closed",
            AlertKind::CredentialsRefused => "credentials_refused",
            AlertKind::ReconciliationDifferences => "reconciliation_differences",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Slack-compatible incoming webhook; None = log only.
    pub webhook_url: Option<heartsuite_core::Secret>,
    pub per_key_interval: Duration,
    pub window: Duration,
    pub burst: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self { webhook_url: None, per_key_interval: Duration::from_secs(300), window: Duration::from_secs(600), burst: 10 }
    }
}

#[derive(Default)]
struct Limiter {
    last_by_key: HashMap<(AlertKind, String), i64>,
    window_start: i64,
    sent_in_window: u32,
    suppressed: u64,
}

pub struct Alerts {
    cfg: AlertConfig,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    limiter: Mutex<Limiter>,
    sent: Mutex<Vec<String>>,
}

impl Alerts {
    pub fn new(cfg: AlertConfig, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { cfg, clock, http, limiter: Mutex::new(Limiter::default()), sent: Mutex::new(Vec::new()) }
    }

    /// Decides whether this alert goes out; returns the text to send (with the suppressed count).
    fn admit(&self, kind: AlertKind, key: &str, text: &str) -> Option<String> {
        let now = self.clock.now_micros();
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let per_key = self.cfg.per_key_interval.as_micros() as i64;
        let window = self.cfg.window.as_micros() as i64;
        if let Some(last) = l.last_by_key.get(&(kind, key.to_string())) {
            if now - last < per_key {
                l.suppressed += 1;
                return None;
            }
        }
        if now - l.window_start >= window {
            l.window_start = now;
            l.sent_in_window = 0;
        }
        if l.sent_in_window >= self.cfg.burst {
            l.suppressed += 1;
            return None;
        }
        l.sent_in_window += 1;
        l.last_by_key.insert((kind, key.to_string()), now);
        let held = std::mem::take(&mut l.suppressed);
        Some(if held > 0 { format!("{text} ({held} similar alerts were held back)") } else { text.to_string() })
    }

    /// Fires an alert: logged, and posted to the webhook if configured, unless rate-limited.
    pub fn fire(&self, kind: AlertKind, key: &str, text: &str) -> bool {
        let Some(msg) = self.admit(kind, key, text) else {
            tracing::debug!(alert = kind.as_str(), key, "alert held back by the rate limit");
            return false;
        };
        tracing::warn!(alert = kind.as_str(), key, "{msg}");
        metrics::counter!(crate::metrics::ALERTS_SENT, "kind" => kind.as_str()).increment(1);
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(msg.clone());
        if let Some(url) = &self.cfg.webhook_url {
            let http = self.http.clone();
            let url = url.expose().to_string();
            let body = serde_json::json!({ "text": format!("heartsuite: {msg}") });
            tokio::spawn(async move {
                // The URL itself is a credential (Slack); never log it.
                if let Err(e) = http.post(&url).json(&body).send().await.and_then(|r| r.error_for_status()) {
                    tracing::warn!(error = %e.without_url(), "alert webhook delivery failed");
                }
            });
        }
        true
    }

    /// Alerts that went out (for the demo summary and tests).
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartsuite_core::ManualClock;

    #[tokio::test]
    async fn an_outage_sends_a_few_alerts_not_thousands() {
        let clock = Arc::new(ManualClock::new(0));
        let a = Alerts::new(AlertConfig { burst: 3, ..Default::default() }, clock.clone());
        let mut sent = 0;
        for i in 0..5000 {
            if a.fire(AlertKind::DeadLettered, &format!("job-{}", i % 50), "job dead-lettered") {
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        clock.advance(600_000_000);
        assert!(a.fire(AlertKind::CircuitOpened, "netsuite", "circuit open"));
        let last = a.sent().pop().unwrap();
        assert!(last.contains("4997 similar alerts were held back"), "{last}");
    }

    #[tokio::test]
    async fn same_key_is_quiet_for_the_interval() {
        let clock = Arc::new(ManualClock::new(0));
        let a = Alerts::new(AlertConfig::default(), clock.clone());
        assert!(a.fire(AlertKind::CircuitOpened, "netsuite", "open"));
        assert!(!a.fire(AlertKind::CircuitOpened, "netsuite", "open"));
        assert!(a.fire(AlertKind::CircuitOpened, "gpapi", "open"));
        clock.advance(300_000_000);
        assert!(a.fire(AlertKind::CircuitOpened, "netsuite", "open"));
    }
}

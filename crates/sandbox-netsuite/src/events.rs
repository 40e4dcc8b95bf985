//! The user-event-script emulation: signed POSTs to heartsuite's `/hooks/netsuite` after
//! records are created, edited or deleted (format: docs/signed-events.md).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::Shared;

/// Where and how to deliver record events.
#[derive(Clone)]
pub struct EventSink {
    /// Full URL, e.g. `http://127.0.0.1:8080/hooks/netsuite`.
    pub url: String,
    /// Shared secret for `X-Heartsuite-Signature`.
    pub secret: String,
    /// REST record type ids to emit for (case-insensitive); empty means every type.
    pub record_types: Vec<String>,
}

impl EventSink {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> EventSink {
        EventSink { url: url.into(), secret: secret.into(), record_types: vec![] }
    }

    pub fn wants(&self, record_type: &str) -> bool {
        self.record_types.is_empty() || self.record_types.iter().any(|t| t.eq_ignore_ascii_case(record_type))
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink").field("url", &self.url).field("record_types", &self.record_types).finish_non_exhaustive()
    }
}

/// `v1=` + hex HMAC-SHA256 over `"{timestamp}.{body}"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Deliver events one at a time (order preserved), retrying a few times; the API never waits.
pub fn start(sink: EventSink, shared: Arc<Shared>) -> mpsc::UnboundedSender<Value> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "sandbox event emitter: cannot build HTTP client");
                return;
            }
        };
        while let Some(ev) = rx.recv().await {
            let body = ev.to_string();
            let mut delivered = false;
            for attempt in 0..4u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                }
                // Re-sign each attempt: heartsuite rejects timestamps older than 300 s.
                let ts = jiff::Timestamp::now().as_second();
                let res = client
                    .post(&sink.url)
                    .header("content-type", "application/json")
                    .header("x-heartsuite-timestamp", ts.to_string())
                    .header("x-heartsuite-signature", sign(&sink.secret, ts, body.as_bytes()))
                    .body(body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        delivered = true;
                        break;
                    }
                    Ok(r) => tracing::warn!(status = %r.status(), attempt, "sandbox event delivery refused"),
                    Err(e) => tracing::warn!(error = %e, attempt, "sandbox event delivery failed"),
                }
            }
            let c = if delivered { &shared.counters.events_sent } else { &shared.counters.events_failed };
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_format() {
        let s = super::sign("secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64, "{s}");
    }
}

//! Outbound deliveries (Retail webhooks, GP-API `status_url` notifications). Handlers only queue;
//! this worker sends, each delivery in its own task so a slow receiver never blocks the API or
//! other deliveries. A non-2xx or failed send is retried with doubling backoff, a few times.

use tokio::sync::{mpsc, watch};

use crate::state::{DeliveryRecord, Outgoing, Sandbox, push_delivery};

pub(crate) async fn run(
    sb: Sandbox,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(out) => { tokio::spawn(deliver(sb.clone(), out)); }
                None => return,
            },
            _ = stop.changed() => return,
        }
    }
}

async fn deliver(sb: Sandbox, out: Outgoing) {
    let retries = sb.config().webhook_retries;
    let mut backoff = sb.config().webhook_backoff;
    let mut attempts = 0u32;
    let outcome = loop {
        attempts += 1;
        let mut req = sb.inner.http.post(&out.url).body(out.body.clone());
        for (k, v) in &out.headers {
            req = req.header(*k, v);
        }
        let result = req.send().await;
        sb.lock().stats.webhook_attempts += 1;
        let last = match result {
            Ok(r) if r.status().is_success() => {
                break format!("delivered ({})", r.status().as_u16());
            }
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => format!("send failed: {e}"),
        };
        if attempts > retries {
            break format!("failed after {attempts} attempts: {last}");
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    };
    let mut st = sb.lock();
    let delivered = outcome.starts_with("delivered");
    match (delivered, out.event == "status_url") {
        (true, true) => st.stats.notifications_delivered += 1,
        (true, false) => st.stats.webhooks_delivered += 1,
        (false, _) => st.stats.webhooks_failed += 1,
    }
    if !delivered {
        tracing::warn!(url = %out.url, event = %out.event, %outcome, "sandbox delivery failed");
    }
    push_delivery(
        &mut st,
        DeliveryRecord {
            event: out.event,
            url: out.url,
            attempts,
            outcome,
        },
    );
}

//! Turning Heartland activity into heartsuite events: classifying Retail webhook payloads (which
//! carry no event name, only the bare resource) and polling GP-API for funded deposits (GP-API
//! has no settlement webhook).

use crate::error::{Error, System};
use crate::gpapi::{
    Deposit, DepositQuery, DepositStatus, GpApiClient, Transaction, TransactionQuery,
};
use crate::wire::scalar_text;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

pub const RETAIL_TICKET_COMPLETED: &str = "retail.ticket.completed";
pub const RETAIL_ITEM_CHANGED: &str = "retail.item.changed";
pub const RETAIL_CUSTOMER_CHANGED: &str = "retail.customer.changed";
pub const GPAPI_DEPOSIT_FUNDED: &str = "gpapi.deposit.funded";

/// What a Retail webhook payload is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetailWebhookEvent {
    /// One of the `RETAIL_*` kinds.
    pub kind: &'static str,
    pub record_id: String,
    /// `updated_at` or `completed_at` when present: with the id it tells a redelivery (same
    /// version) from a new change of the same record.
    pub version: Option<String>,
}

impl RetailWebhookEvent {
    /// A key for the inbox's `source_event_key`: a redelivery of the same change maps to the
    /// same key, a later change of the record does not.
    pub fn source_event_key(&self) -> String {
        match &self.version {
            Some(v) => format!("{}:{}:{}", self.kind, self.record_id, v),
            None => format!("{}:{}", self.kind, self.record_id),
        }
    }
}

/// Classifies a Retail webhook body by its shape: a ticket has `type` `Ticket`/`Return`; a
/// customer has `first_name` and `email`; an item is the snake_case item with `public_id`.
/// `None` means the shape is not one we know (the caller should keep it for inspection).
pub fn classify_retail_webhook(payload: &Value) -> Option<RetailWebhookEvent> {
    let obj = payload.as_object()?;
    let record_id = obj
        .get("id")
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())?;
    let text = |k: &str| obj.get(k).and_then(scalar_text).filter(|s| !s.is_empty());
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("Ticket") | Some("Return") => RETAIL_TICKET_COMPLETED,
        // Customers are checked before items: a customer may carry a `public_id` too, but an
        // item never has `first_name` and `email`.
        _ if obj.contains_key("first_name") && obj.contains_key("email") => RETAIL_CUSTOMER_CHANGED,
        _ if obj.contains_key("public_id") => RETAIL_ITEM_CHANGED,
        _ => return None,
    };
    let version = if kind == RETAIL_TICKET_COMPLETED {
        text("completed_at").or_else(|| text("updated_at"))
    } else {
        text("updated_at")
    };
    Some(RetailWebhookEvent {
        kind,
        record_id,
        version,
    })
}

/// A funded deposit and every settlement transaction in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositWithTransactions {
    pub deposit: Deposit,
    pub transactions: Vec<Transaction>,
}

/// Tuning for [`poll_funded_deposits_with`].
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Deposits dated up to this many days before the newest one seen are asked for again, so a
    /// deposit that becomes FUNDED late (or is published late) under an older date is still
    /// found; the cursor remembers the ids in that window so none is returned twice.
    pub lookback_days: i32,
    /// Where the very first poll (no cursor) starts; `None` = everything the API returns.
    pub start_date: Option<jiff::civil::Date>,
    pub page_size: u32,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            lookback_days: 3,
            start_date: None,
            page_size: 100,
        }
    }
}

/// The poller's durable state, stored by the caller as an opaque string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    v: u32,
    /// Newest deposit date seen (`YYYY-MM-DD`).
    #[serde(default)]
    watermark: Option<jiff::civil::Date>,
    /// Deposits already returned whose date is inside the look-back window.
    #[serde(default)]
    seen: BTreeSet<(jiff::civil::Date, String)>,
}

/// Polls `/settlement/deposits?status=FUNDED&from_time_created=…` and fetches each new deposit's
/// transactions (all pages). Store the returned cursor only after the deposits are safely
/// processed; passing it back returns only deposits not returned before.
pub async fn poll_funded_deposits(
    client: &GpApiClient,
    cursor: Option<String>,
) -> Result<(Vec<DepositWithTransactions>, String), Error> {
    poll_funded_deposits_with(client, cursor, &PollOptions::default()).await
}

pub async fn poll_funded_deposits_with(
    client: &GpApiClient,
    cursor: Option<String>,
    opts: &PollOptions,
) -> Result<(Vec<DepositWithTransactions>, String), Error> {
    let mut cur: Cursor = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => Cursor {
            v: 1,
            ..Cursor::default()
        },
        Some(c) => serde_json::from_str(c).map_err(|e| Error::InvalidCursor(e.to_string()))?,
    };
    if cur.v != 1 {
        return Err(Error::InvalidCursor(format!(
            "unknown cursor version {}",
            cur.v
        )));
    }
    let from = match cur.watermark {
        Some(w) => Some(
            w.checked_sub(jiff::Span::new().days(opts.lookback_days))
                .map_err(|e| Error::InvalidCursor(e.to_string()))?,
        ),
        None => opts.start_date,
    };
    let deposits = client
        .list_all_deposits(&DepositQuery {
            page_size: Some(opts.page_size),
            status: Some(DepositStatus::Funded),
            from_time_created: from,
            order_by: Some("TIME_CREATED".into()),
            order: Some("ASC".into()),
            ..DepositQuery::default()
        })
        .await?;

    let mut fresh: Vec<(jiff::civil::Date, Deposit)> = Vec::new();
    for d in deposits {
        // The filter is on the server; re-check so a server that ignores it cannot make us
        // return a deposit twice or one that is not funded.
        if d.status != DepositStatus::Funded {
            continue;
        }
        let date = deposit_date(&d)?;
        if from.is_some_and(|f| date < f) || cur.seen.contains(&(date, d.id.clone())) {
            continue;
        }
        if fresh.iter().any(|(_, f)| f.id == d.id) {
            continue;
        }
        fresh.push((date, d));
    }
    // Oldest first, id as the tie-break, so the engine sees deposits in a stable order.
    fresh.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));

    let mut out = Vec::with_capacity(fresh.len());
    for (date, deposit) in fresh {
        let transactions = client
            .list_all_settlement_transactions(&TransactionQuery {
                page_size: Some(opts.page_size),
                deposit_id: Some(deposit.id.clone()),
                ..TransactionQuery::default()
            })
            .await?;
        cur.seen.insert((date, deposit.id.clone()));
        cur.watermark = Some(cur.watermark.map_or(date, |w| w.max(date)));
        out.push(DepositWithTransactions {
            deposit,
            transactions,
        });
    }

    // Forget ids that fell out of the window: they are older than anything the next poll asks
    // for.
    if let Some(w) = cur.watermark
        && let Ok(oldest) = w.checked_sub(jiff::Span::new().days(opts.lookback_days))
    {
        cur.seen.retain(|(d, _)| *d >= oldest);
    }
    let encoded = serde_json::to_string(&cur).map_err(|e| Error::InvalidCursor(e.to_string()))?;
    Ok((out, encoded))
}

/// A deposit's business date. The real API sends a date; an instant is accepted too (its UTC date).
fn deposit_date(d: &Deposit) -> Result<jiff::civil::Date, Error> {
    let t = d.time_created.trim();
    if let Ok(date) = t.parse::<jiff::civil::Date>() {
        return Ok(date);
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        .map_err(|_| {
            Error::decode(
                System::GpApi,
                format!("deposit {} time_created `{t}`", d.id),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_tickets_and_returns() {
        let t = classify_retail_webhook(&json!({"id": 101, "type": "Ticket", "total": 10.5, "completed_at": "2025-01-01T10:00:00Z"})).unwrap();
        assert_eq!(t.kind, RETAIL_TICKET_COMPLETED);
        assert_eq!(t.record_id, "101");
        assert_eq!(
            t.source_event_key(),
            "retail.ticket.completed:101:2025-01-01T10:00:00Z"
        );
        let r = classify_retail_webhook(
            &json!({"id": "102", "type": "Return", "parent_transaction_id": 101}),
        )
        .unwrap();
        assert_eq!(r.kind, RETAIL_TICKET_COMPLETED);
        assert_eq!(r.record_id, "102");
    }

    #[test]
    fn classifies_items_and_customers() {
        let i = classify_retail_webhook(&json!({"id": 7, "public_id": "SKU-1", "description": "Mug", "price": 9.99, "updated_at": "u1"})).unwrap();
        assert_eq!(
            (i.kind, i.record_id.as_str(), i.version.as_deref()),
            (RETAIL_ITEM_CHANGED, "7", Some("u1"))
        );
        let c = classify_retail_webhook(
            &json!({"id": 9, "public_id": "C-9", "first_name": "Ada", "email": "ada@example.com"}),
        )
        .unwrap();
        assert_eq!(c.kind, RETAIL_CUSTOMER_CHANGED);
        assert_eq!(c.record_id, "9");
    }

    #[test]
    fn unknown_shapes_are_not_guessed() {
        assert_eq!(
            classify_retail_webhook(&json!({"id": 1, "type": "Invoice"})),
            None
        );
        assert_eq!(classify_retail_webhook(&json!({"type": "Ticket"})), None);
        assert_eq!(classify_retail_webhook(&json!([1, 2])), None);
        assert_eq!(
            classify_retail_webhook(&json!({"id": 3, "first_name": "NoEmail"})),
            None
        );
    }
}

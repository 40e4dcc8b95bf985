//! The event envelope: what ingress writes to the inbox and what a flow run receives.

use serde::{Deserialize, Serialize};

/// Where an event came from. The inbox is unique on `(source, source_event_key)`.
pub type Source = String;

/// The kind of business event (`retail.ticket.completed`, `gpapi.transaction.captured`,
/// `netsuite.record.changed`, `gpapi.deposit.funded`, `shop.order.created`...); flows trigger on it.
pub type EventKind = String;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub source: Source,
    /// The sender's own id for this event (or a hash of its body when it has none), so that a
    /// redelivery lands on the same inbox row.
    pub source_event_key: String,
    pub kind: EventKind,
    /// The payload after card-number scrubbing. Never holds a PAN.
    pub payload: serde_json::Value,
    /// Microseconds since the epoch.
    pub received_at: i64,
}

//! The audit chain's hashing, shared by both backends and by `audit verify`.
//! hash = hex(SHA-256(prev_hash ‖ "\n" ‖ canonical JSON of [seq, at, actor, action, subject,
//! event_id, job_id, remote_id, details])). Any change to a stored row breaks its own hash, and any
//! deletion or reordering breaks the next row's `prev_hash`.

use crate::model::{AuditEntry, NewAudit};
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn entry_hash(prev_hash: &str, seq: i64, e: &NewAudit) -> String {
    let canonical = serde_json::json!([
        seq, e.at, e.actor, e.action, e.subject, e.event_id, e.job_id, e.remote_id, e.details
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Checks a run of entries that starts after `prev` (the hash of the entry before the first one,
/// or GENESIS with `expect_seq` 1). Returns the first broken link.
pub fn verify_chain(prev: &str, expect_seq: i64, entries: &[AuditEntry]) -> Result<(), ChainBreak> {
    let mut prev = prev.to_string();
    for (seq, e) in (expect_seq..).zip(entries) {
        if e.seq != seq {
            return Err(ChainBreak { seq: e.seq, reason: format!("expected entry {seq}, found {} (an entry was removed)", e.seq) });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak { seq: e.seq, reason: "prev_hash does not match the previous entry's hash".into() });
        }
        let h = entry_hash(&prev, e.seq, &e.entry);
        if h != e.hash {
            return Err(ChainBreak { seq: e.seq, reason: "the entry's content does not match its hash (it was altered)".into() });
        }
        prev = h;
    }
    Ok(())
}

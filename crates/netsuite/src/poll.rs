//! Change polling over SuiteQL on `lastmodifieddate`, with a durable cursor the caller stores.
//!
//! NetSuite stamps changes to the second, and a second is not over when we read it: a record may
//! be saved — or saved again — later in the same second, whatever its id. So the poll re-reads the
//! cursor's own second every time (`>=`), and the cursor remembers what it already returned for
//! that second as (id, content digest) pairs: a row is returned again only if it is new in that
//! second or its content changed. Nothing is skipped; nothing unchanged is repeated.
//!
//! The cursor is `"{YYYY-MM-DD HH24:MI:SS}|{id}:{digest},…"`. Only the timestamp goes into the
//! SuiteQL text (checked to be digits and separators); the pairs are compared in Rust. When more
//! rows share the cursor's second than fit in a page, the poll pages through that second by offset
//! rather than stalling on it.
//! `TO_CHAR` renders in the integration user's time zone: keep that zone fixed (ideally without
//! DST, where local times repeat during the fall-back hour).

use crate::client::NetSuiteClient;
use crate::error::Error;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Column added to every row: the row's cursor time.
pub const CURSOR_COLUMN: &str = "hs_cursor_ts";

const TS_FORMAT: &str = "YYYY-MM-DD HH24:MI:SS";

/// Pages read at most within one second before a poll gives up for now (1000 × this rows).
const MAX_PAGES_PER_SECOND: u64 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub modified: String,
    /// (id, content digest) of the rows already returned whose second is `modified`.
    pub seen: BTreeSet<(u64, String)>,
}

fn check_ts(ts: &str) -> bool {
    ts.len() == 19
        && ts.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidInput(format!("poll cursor {s:?} is not \"YYYY-MM-DD HH:MM:SS|id:digest,…\""));
        let (ts, pairs) = s.split_once('|').ok_or_else(bad)?;
        // Only digits, '-', ':' and one space: the value is spliced into SuiteQL text.
        if !check_ts(ts) {
            return Err(bad());
        }
        let mut seen = BTreeSet::new();
        for p in pairs.split(',').filter(|p| !p.is_empty()) {
            let (id, digest) = p.split_once(':').unwrap_or((p, ""));
            seen.insert((id.parse::<u64>().map_err(|_| bad())?, digest.to_string()));
        }
        Ok(Cursor { modified: ts.to_string(), seen })
    }

    pub fn encode(&self) -> String {
        let pairs: Vec<String> = self.seen.iter().map(|(id, d)| format!("{id}:{d}")).collect();
        format!("{}|{}", self.modified, pairs.join(","))
    }
}

/// The SuiteQL text for one poll: the cursor's second and everything after it.
pub fn poll_query(table: &str, cursor: Option<&Cursor>) -> Result<String, Error> {
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::InvalidInput(format!("table name {table:?}")));
    }
    let ts = format!("TO_CHAR(t.lastmodifieddate, '{TS_FORMAT}')");
    let filter = match cursor {
        Some(c) if check_ts(&c.modified) => format!(" WHERE {ts} >= '{}'", c.modified),
        Some(_) => return Err(Error::InvalidInput("poll cursor timestamp".into())),
        None => String::new(),
    };
    Ok(format!("SELECT t.*, {ts} AS {CURSOR_COLUMN} FROM {table} t{filter} ORDER BY {ts}, t.id"))
}

fn row_id(row: &Map<String, Value>) -> Result<u64, Error> {
    match row.get("id") {
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        Some(Value::Number(n)) => n.to_string().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::Unexpected("poll row without a numeric id".into()))
}

fn row_second(row: &Map<String, Value>) -> Result<&str, Error> {
    row.get(CURSOR_COLUMN).and_then(Value::as_str).ok_or_else(|| Error::Unexpected(format!("poll row without {CURSOR_COLUMN}")))
}

/// First 16 hex digits of SHA-256 over the row's JSON: enough to tell a changed row apart.
pub fn digest(row: &Map<String, Value>) -> String {
    let text = Value::Object(row.clone()).to_string();
    hex_prefix(&Sha256::digest(text.as_bytes()))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Drops rows already returned (same second, id and content), keeps at most `max` new ones, and
/// computes the cursor that covers exactly the rows kept.
pub fn select_new(
    previous: Option<Cursor>,
    rows: Vec<Map<String, Value>>,
    max: usize,
) -> Result<(Vec<Map<String, Value>>, Option<Cursor>), Error> {
    let mut cur = previous;
    let mut out = Vec::new();
    for row in rows {
        if out.len() >= max {
            break;
        }
        let second = row_second(&row)?.to_string();
        let key = (row_id(&row)?, digest(&row));
        match &mut cur {
            Some(c) if c.modified == second => {
                if !c.seen.insert(key) {
                    continue;
                }
            }
            // Rows come ordered by second, so a different second is a newer one.
            _ => cur = Some(Cursor { modified: second, seen: BTreeSet::from([key]) }),
        }
        out.push(row);
    }
    Ok((out, cur))
}

/// Rows of `table` changed since `cursor` (all rows when `None`), oldest first, and the cursor to
/// store once they are safely handled: at most `page_limit` (≤ 1000) rows. Reads further pages
/// only while a full page is still inside the cursor's own second (already-returned rows there
/// would otherwise fill every page). When nothing changed the cursor
/// comes back unchanged (`None` stays `None`).
pub async fn poll_changes(
    client: &NetSuiteClient,
    table: &str,
    cursor: Option<String>,
    page_limit: u32,
) -> Result<(Vec<Map<String, Value>>, Option<String>), Error> {
    let parsed = cursor.as_deref().map(Cursor::parse).transpose()?;
    let q = poll_query(table, parsed.as_ref())?;
    let limit = page_limit.clamp(1, 1000);
    let mut rows = Vec::new();
    for page_no in 0..MAX_PAGES_PER_SECOND {
        let page = client.suiteql_page(&q, limit, page_no * u64::from(limit)).await?;
        let full = page.items.len() as u64 == u64::from(limit) && page.has_more;
        let stuck_in_cursor_second = match (&parsed, page.items.last()) {
            (Some(c), Some(last)) => row_second(last)? == c.modified,
            _ => false,
        };
        rows.extend(page.items);
        if !(full && stuck_in_cursor_second) {
            break;
        }
    }
    let (fresh, next) = select_new(parsed, rows, limit as usize)?;
    let next = next.map(|c| c.encode()).or(cursor);
    Ok((fresh, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: u64, ts: &str, email: &str) -> Map<String, Value> {
        match json!({"id": id.to_string(), "email": email, CURSOR_COLUMN: ts}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn cursor_round_trip_and_rejects_injection() {
        let c = Cursor::parse("2026-11-26 10:00:00|123:abc,7:def").unwrap();
        assert_eq!(c.modified, "2026-11-26 10:00:00");
        assert_eq!(c.seen.len(), 2);
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        // The "second|id" form written by earlier versions still parses.
        assert_eq!(Cursor::parse("2026-11-26 10:00:00|5").unwrap().seen.len(), 1);
        assert!(Cursor::parse("2026-11-26 10:00:00' OR 1=1 --|1").is_err());
        assert!(Cursor::parse("2026-11-26 10:00:00|1 OR 1=1").is_err());
        assert!(Cursor::parse("garbage").is_err());
    }

    #[test]
    fn query_rereads_the_cursor_second() {
        let q = poll_query("transaction", Some(&Cursor::parse("2026-11-26 10:00:00|5:aa").unwrap())).unwrap();
        assert_eq!(
            q,
            "SELECT t.*, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS hs_cursor_ts FROM transaction t \
             WHERE TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') >= '2026-11-26 10:00:00' \
             ORDER BY TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS'), t.id"
        );
        assert!(poll_query("customer; DROP", None).is_err());
    }

    #[test]
    fn same_second_rows_are_returned_when_new_or_changed_and_never_repeated() {
        let t = "2026-11-26 10:00:00";
        let (out, c) = select_new(None, vec![row(3, t, "a"), row(8, t, "b")], 10).unwrap();
        assert_eq!(out.len(), 2);
        // Re-reading the second: unchanged rows are dropped; a lower id saved later and a changed
        // row in the same second both come through.
        let (out, c) = select_new(c, vec![row(1, t, "new"), row(3, t, "a"), row(8, t, "b-edited")], 10).unwrap();
        let ids: Vec<_> = out.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, vec![json!("1"), json!("8")]);
        // A newer second starts afresh.
        // At most `max` new rows; the cursor covers only those, so the rest come next time.
        let (out, short) = select_new(c.clone(), vec![row(5, t, "n1"), row(6, t, "n2")], 1).unwrap();
        assert_eq!(out.len(), 1);
        let (out2, _) = select_new(short, vec![row(5, t, "n1"), row(6, t, "n2")], 1).unwrap();
        assert_eq!(out2[0]["id"], json!("6"));
        let (out, c) = select_new(c, vec![row(3, t, "a"), row(4, "2026-11-26 10:00:01", "x")], 10).unwrap();
        assert_eq!(out.len(), 1);
        let c = c.unwrap();
        assert_eq!(c.modified, "2026-11-26 10:00:01");
        assert_eq!(c.seen.len(), 1);
    }
}

//! Change polling over SuiteQL on `lastmodifieddate`, with a durable cursor the caller stores.
//!
//! The cursor is `"{YYYY-MM-DD HH24:MI:SS}|{id}"`: the last row's modification time (as NetSuite
//! renders it with `TO_CHAR`, at whole seconds) and its internal id. The next page asks for rows
//! strictly after that pair, ordered by the same pair, so rows sharing a second are neither skipped
//! nor repeated across pages. The comparison is made on the `TO_CHAR` text (zero-padded, so text
//! order is time order), which keeps it consistent with the cursor whatever sub-second precision
//! the column has.
//!
//! Known limits: a row committed later with the same second and a lower id than the cursor is
//! missed (poll with some overlap if that matters); `TO_CHAR` renders in the integration user's
//! time zone, so keep that user's zone fixed (and prefer one without DST: during a DST fall-back
//! hour local times repeat).

use crate::client::NetSuiteClient;
use crate::error::Error;
use serde_json::{Map, Value};

/// Column added to every row: the row's cursor time.
pub const CURSOR_COLUMN: &str = "hs_cursor_ts";

const TS_FORMAT: &str = "YYYY-MM-DD HH24:MI:SS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub modified: String,
    pub id: u64,
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidInput(format!("poll cursor {s:?} is not \"YYYY-MM-DD HH:MM:SS|id\""));
        let (ts, id) = s.rsplit_once('|').ok_or_else(bad)?;
        // Only digits, '-', ':' and one space: the value is spliced into SuiteQL text.
        let shape_ok = ts.len() == 19
            && ts.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(bad());
        }
        Ok(Cursor { modified: ts.to_string(), id: id.parse().map_err(|_| bad())? })
    }

    pub fn encode(&self) -> String {
        format!("{}|{}", self.modified, self.id)
    }
}

/// The SuiteQL text for one poll page.
pub fn poll_query(table: &str, cursor: Option<&Cursor>) -> Result<String, Error> {
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::InvalidInput(format!("table name {table:?}")));
    }
    let ts = format!("TO_CHAR(t.lastmodifieddate, '{TS_FORMAT}')");
    let filter = match cursor {
        None => String::new(),
        Some(c) => format!(" WHERE {ts} > '{m}' OR ({ts} = '{m}' AND t.id > {id})", m = c.modified, id = c.id),
    };
    Ok(format!("SELECT t.*, {ts} AS {CURSOR_COLUMN} FROM {table} t{filter} ORDER BY {ts}, t.id"))
}

/// Rows of `table` changed after `cursor` (all rows when `None`), at most `page_limit` (≤ 1000),
/// oldest first, and the cursor to store once they are safely handled. When no row is newer the
/// cursor comes back unchanged (`None` stays `None`).
pub async fn poll_changes(
    client: &NetSuiteClient,
    table: &str,
    cursor: Option<String>,
    page_limit: u32,
) -> Result<(Vec<Map<String, Value>>, Option<String>), Error> {
    let parsed = cursor.as_deref().map(Cursor::parse).transpose()?;
    let q = poll_query(table, parsed.as_ref())?;
    // One page at offset 0: the cursor, not the offset, moves us forward.
    let page = client.suiteql_page(&q, page_limit, 0).await?;
    let rows = page.items;
    let next = match rows.last() {
        None => cursor,
        Some(last) => {
            let modified = last
                .get(CURSOR_COLUMN)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Unexpected(format!("poll row without {CURSOR_COLUMN}")))?;
            let id = match last.get("id") {
                Some(Value::String(s)) => s.parse::<u64>().ok(),
                Some(Value::Number(n)) => n.to_string().parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| Error::Unexpected("poll row without a numeric id".into()))?;
            let c = Cursor { modified: modified.to_string(), id };
            // Re-validate what NetSuite gave us before it goes back into a query.
            Cursor::parse(&c.encode())?;
            Some(c.encode())
        }
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_injection() {
        let c = Cursor::parse("2026-11-26 10:00:00|123").unwrap();
        assert_eq!(c, Cursor { modified: "2026-11-26 10:00:00".into(), id: 123 });
        assert_eq!(c.encode(), "2026-11-26 10:00:00|123");
        assert!(Cursor::parse("2026-11-26 10:00:00' OR 1=1 --|1").is_err());
        assert!(Cursor::parse("2026-11-26 10:00:00|1 OR 1=1").is_err());
        assert!(Cursor::parse("garbage").is_err());
    }

    #[test]
    fn query_tie_breaks_on_id() {
        let q = poll_query("transaction", Some(&Cursor::parse("2026-11-26 10:00:00|5").unwrap())).unwrap();
        assert_eq!(
            q,
            "SELECT t.*, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS hs_cursor_ts FROM transaction t \
             WHERE TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') > '2026-11-26 10:00:00' \
             OR (TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') = '2026-11-26 10:00:00' AND t.id > 5) \
             ORDER BY TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS'), t.id"
        );
        assert!(poll_query("customer; DROP", None).is_err());
    }
}

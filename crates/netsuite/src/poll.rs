//! Change polling over SuiteQL on `lastmodifieddate`, with a durable cursor the caller stores.
//!
//! NetSuite stamps changes to the second, and a second is not over when we read it: a record may
//! be saved — or saved again — later in the same second, whatever its id. A cursor of
//! (second, last id) alone would skip such a save of a lower id. So the cursor says: every row
//! before `second` has been returned; within `second`, every row with an id up to `id` has been
//! returned, and it records *what* was returned for those rows, in one of two forms:
//! - `"{YYYY-MM-DD HH24:MI:SS}|{id}|{id}:{digest},…"` — the [`digest`] returned for each of them
//!   (at most [`MAX_LISTED`] entries);
//! - `"{YYYY-MM-DD HH24:MI:SS}|{id}|={sum}"` — when more rows share the second, only the wrapping
//!   sum of their 64-bit digests (16 hex digits), so the cursor stays small.
//!
//! Each poll first re-reads the cursor's second up to `id` (by id, keyset-paged), then:
//! - listed form: returns the rows there whose digest is not the one listed (a late save of a
//!   lower id, or a row saved again), then what follows (second, id);
//! - sum form: if the digests still add up to `sum`, returns what follows (second, id); if not,
//!   returns the second again from its first row. Rows already returned come back unchanged —
//!   same id, second and digest, which the caller recognises (the engine keys events by them) —
//!   and the new save comes with them.
//!
//! A row that left the second (saved again later) is simply dropped from the list; it is found
//! again under its new second. Rows after (second, id) come from one SuiteQL request, so they
//! are a gap-free run of the (second, id) order; everything handed out is oldest first, and the
//! returned cursor covers exactly what was handed out. Only the timestamp (checked to be digits
//! and separators) and integer ids go into the SuiteQL text.
//!
//! Assumed, as by any poller on this column: once a save stamped with a later second is visible,
//! no more saves stamped with an earlier second appear. `TO_CHAR` renders in the integration
//! user's time zone: keep that zone fixed (ideally without DST, where local times repeat during
//! the fall-back hour).

use crate::client::NetSuiteClient;
use crate::error::Error;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Column added to every row: the row's cursor time.
pub const CURSOR_COLUMN: &str = "hs_cursor_ts";

macro_rules! ts_format {
    () => {
        "YYYY-MM-DD HH24:MI:SS"
    };
}

/// Pages (of 1000) read at most to re-check the cursor's second. Past this (a single second with
/// over 100,000 rows) the unread part is trusted rather than checked, so the poller never stalls.
const MAX_CHECK_PAGES: usize = 100;
const CHECK_PAGE: u32 = 1000;

/// Rows of the cursor's second listed in a cursor before it switches to a sum.
pub const MAX_LISTED: usize = 200;

/// What was returned for the rows of the cursor's second up to its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// id → [`digest_u64`] as returned. A row of that second not listed (or listed with another
    /// digest) has not been returned in its current form.
    Listed(BTreeMap<u64, u64>),
    /// Wrapping sum of [`digest_u64`] over those rows, as returned.
    Sum(u64),
}

impl Seen {
    fn add(&mut self, id: u64, digest: u64) {
        match self {
            Seen::Listed(m) => {
                m.insert(id, digest);
            }
            Seen::Sum(s) => *s = s.wrapping_add(digest),
        }
    }

    fn bounded(self) -> Self {
        match self {
            Seen::Listed(m) if m.len() > MAX_LISTED => Seen::Sum(m.values().fold(0u64, |a, d| a.wrapping_add(*d))),
            other => other,
        }
    }
}

/// A position in the (second, id) order plus what was returned in that second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The second (`YYYY-MM-DD HH24:MI:SS`) of the last row returned.
    pub modified: String,
    /// The id of the last row returned in `modified`.
    pub id: u64,
    pub seen: Seen,
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

fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl Cursor {
    /// Parses `"second|id|id:digest,…"` or `"second|id|=sum"`. Cursors written by earlier
    /// versions also parse: `"second|id:digest,…"` (listed; `id` is the highest listed) and
    /// `"second|id"` (nothing listed, so that second's rows up to `id` come again — repeats the
    /// caller recognises — rather than risking a skip).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidInput(format!("poll cursor {s:?} is not \"YYYY-MM-DD HH:MM:SS|id|id:digest,…\""));
        let parts: Vec<&str> = s.split('|').collect();
        // Only digits, '-', ':' and one space: the value is spliced into SuiteQL text.
        if !check_ts(parts[0]) {
            return Err(bad());
        }
        let modified = parts[0].to_string();
        let listed = |text: &str| -> Result<BTreeMap<u64, u64>, Error> {
            let mut m = BTreeMap::new();
            for p in text.split(',').filter(|p| !p.is_empty()) {
                let (id, digest) = p.split_once(':').ok_or_else(bad)?;
                m.insert(parse_id(id).ok_or_else(bad)?, parse_hex(digest).ok_or_else(bad)?);
            }
            Ok(m)
        };
        match parts[1..] {
            [id, seen] => {
                let id = parse_id(id).ok_or_else(bad)?;
                let seen = match seen.strip_prefix('=') {
                    Some(sum) if sum.len() == 16 => Seen::Sum(parse_hex(sum).ok_or_else(bad)?),
                    Some(_) => return Err(bad()),
                    None => Seen::Listed(listed(seen)?),
                };
                Ok(Cursor { modified, id, seen })
            }
            [""] => Ok(Cursor { modified, id: 0, seen: Seen::Listed(BTreeMap::new()) }),
            [old] if !old.contains(':') => Ok(Cursor { modified, id: parse_id(old).ok_or_else(bad)?, seen: Seen::Listed(BTreeMap::new()) }),
            [old] => {
                let m = listed(old)?;
                Ok(Cursor { modified, id: m.keys().next_back().copied().unwrap_or(0), seen: Seen::Listed(m) })
            }
            _ => Err(bad()),
        }
    }

    pub fn encode(&self) -> String {
        let seen = match &self.seen {
            Seen::Listed(m) => m.iter().map(|(id, d)| format!("{id}:{d:016x}")).collect::<Vec<_>>().join(","),
            Seen::Sum(s) => format!("={s:016x}"),
        };
        format!("{}|{}|{seen}", self.modified, self.id)
    }
}

/// The row's second as the poller compares it (and as [`CURSOR_COLUMN`] carries it).
const TS_EXPR: &str = concat!("TO_CHAR(t.lastmodifieddate, '", ts_format!(), "')");

fn check_table(table: &str) -> Result<(), Error> {
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::InvalidInput(format!("table name {table:?}")));
    }
    Ok(())
}

fn checked_ts(ts: &str) -> Result<&str, Error> {
    if check_ts(ts) { Ok(ts) } else { Err(Error::InvalidInput(format!("poll cursor timestamp {ts:?}"))) }
}

fn select(table: &str, filter: &str, order: &str) -> String {
    format!("SELECT t.*, {TS_EXPR} AS {CURSOR_COLUMN} FROM {table} t{filter} ORDER BY {order}")
}

/// Where the rows handed out start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollFrom<'a> {
    /// The very first row.
    Start,
    /// The first row of this second.
    Second(&'a str),
    /// The row after (second, id).
    After(&'a str, u64),
}

/// The SuiteQL text for the rows handed out: from `from` on, in (second, id) order.
pub fn poll_query(table: &str, from: PollFrom<'_>) -> Result<String, Error> {
    check_table(table)?;
    let filter = match from {
        PollFrom::Start => String::new(),
        PollFrom::Second(ts) => format!(" WHERE {TS_EXPR} >= '{}'", checked_ts(ts)?),
        PollFrom::After(ts, id) => {
            let ts = checked_ts(ts)?;
            format!(" WHERE {TS_EXPR} > '{ts}' OR ({TS_EXPR} = '{ts}' AND t.id > {id})")
        }
    };
    Ok(select(table, &filter, &format!("{TS_EXPR}, t.id")))
}

/// The SuiteQL text re-reading the cursor's second up to its id, by id, after `after`.
pub fn check_query(table: &str, cursor: &Cursor, after: Option<u64>) -> Result<String, Error> {
    check_table(table)?;
    let ts = checked_ts(&cursor.modified)?;
    let after = after.map(|p| format!(" AND t.id > {p}")).unwrap_or_default();
    Ok(select(table, &format!(" WHERE {TS_EXPR} = '{ts}' AND t.id <= {}{after}", cursor.id), "t.id"))
}

fn row_id(row: &Map<String, Value>) -> Result<u64, Error> {
    match row.get("id") {
        Some(Value::String(s)) => parse_id(s),
        Some(Value::Number(n)) => parse_id(&n.to_string()),
        _ => None,
    }
    .ok_or_else(|| Error::Unexpected("poll row without a numeric id".into()))
}

fn row_second(row: &Map<String, Value>) -> Result<&str, Error> {
    row.get(CURSOR_COLUMN)
        .and_then(Value::as_str)
        .filter(|s| check_ts(s))
        .ok_or_else(|| Error::Unexpected(format!("poll row without a valid {CURSOR_COLUMN}")))
}

/// First 8 bytes of SHA-256 over the row's JSON, as a number: enough to tell a changed row apart.
pub fn digest_u64(row: &Map<String, Value>) -> u64 {
    let text = Value::Object(row.clone()).to_string();
    let hash = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// [`digest_u64`] as 16 hex digits (the engine keys poll events by id, second and this).
pub fn digest(row: &Map<String, Value>) -> String {
    format!("{:016x}", digest_u64(row))
}

/// The cursor after handing out `tail` — a gap-free run of the (second, id) order that starts
/// just after (`modified`, `id`), or at the first row of its own second when `modified` differs —
/// given `seen` for (`modified`, `id`).
pub fn advance(modified: &str, id: u64, seen: Seen, tail: &[Map<String, Value>]) -> Result<Cursor, Error> {
    let Some(last) = tail.last() else {
        return Ok(Cursor { modified: modified.to_string(), id, seen: seen.bounded() });
    };
    let second = row_second(last)?;
    let mut seen = if second == modified { seen } else { Seen::Listed(BTreeMap::new()) };
    for row in tail {
        if row_second(row)? == second {
            seen.add(row_id(row)?, digest_u64(row));
        }
    }
    Ok(Cursor { modified: second.to_string(), id: row_id(last)?, seen: seen.bounded() })
}

/// The rows of the cursor's second up to its id as they are now, by id; `None` when there are
/// too many to read (then they are trusted).
async fn current_rows(client: &NetSuiteClient, table: &str, cursor: &Cursor) -> Result<Option<Vec<Map<String, Value>>>, Error> {
    let mut rows = Vec::new();
    if cursor.id == 0 {
        return Ok(Some(rows));
    }
    let mut after = None;
    for _ in 0..MAX_CHECK_PAGES {
        let page = client.suiteql_page(&check_query(table, cursor, after)?, CHECK_PAGE, 0).await?;
        let more = page.has_more;
        rows.extend(page.items);
        match rows.last() {
            Some(last) if more => after = Some(row_id(last)?),
            _ => return Ok(Some(rows)),
        }
    }
    Ok(None)
}

/// Rows of `table` changed since `cursor` (all rows when `None`), oldest first, and the cursor to
/// store once they are safely handled: at most `page_limit` (≤ 1000) rows. Rows of the cursor's
/// own second saved late or saved again come first; in a crowded second (over [`MAX_LISTED`]
/// rows) such a save brings the whole second again, rows already returned unchanged included
/// (the caller recognises them by id, second and [`digest`]; see the module docs). When nothing
/// changed the cursor comes back unchanged (`None` stays `None`).
pub async fn poll_changes(
    client: &NetSuiteClient,
    table: &str,
    cursor: Option<String>,
    page_limit: u32,
) -> Result<(Vec<Map<String, Value>>, Option<String>), Error> {
    check_table(table)?;
    let limit = page_limit.clamp(1, 1000) as usize;
    let page = |from: PollFrom<'_>, n: usize| {
        let q = poll_query(table, from);
        async move { Ok::<_, Error>(client.suiteql_page(&q?, n as u32, 0).await?.items) }
    };
    let Some(c) = cursor.as_deref().map(Cursor::parse).transpose()? else {
        let rows = page(PollFrom::Start, limit).await?;
        let next = if rows.is_empty() { None } else { Some(advance("", 0, Seen::Sum(0), &rows)?.encode()) };
        return Ok((rows, next));
    };
    let now = current_rows(client, table, &c).await?;
    let (mut out, modified, seen) = match (c.seen.clone(), now) {
        // Too many to re-read: trust them.
        (seen, None) => (Vec::new(), c.modified.as_str(), seen),
        (Seen::Sum(sum), Some(now)) => {
            if now.iter().fold(0u64, |a, r| a.wrapping_add(digest_u64(r))) == sum {
                (Vec::new(), c.modified.as_str(), Seen::Sum(sum))
            } else {
                // Something in that second changed; we cannot tell what: all of it again.
                let rows = page(PollFrom::Second(&c.modified), limit).await?;
                if rows.is_empty() {
                    return Ok((rows, cursor));
                }
                let next = advance("", 0, Seen::Sum(0), &rows)?;
                return Ok((rows, Some(next.encode())));
            }
        }
        (Seen::Listed(old), Some(now)) => {
            // Keep only rows still in that second, as returned; hand out those new or changed.
            let mut kept = BTreeMap::new();
            let mut out = Vec::new();
            for row in now {
                let (id, d) = (row_id(&row)?, digest_u64(&row));
                if old.get(&id) == Some(&d) {
                    kept.insert(id, d);
                } else if out.len() < limit {
                    kept.insert(id, d);
                    out.push(row);
                } else if let Some(prev) = old.get(&id) {
                    kept.insert(id, *prev);
                }
            }
            (out, c.modified.as_str(), Seen::Listed(kept))
        }
    };
    let tail = if out.len() < limit { page(PollFrom::After(&c.modified, c.id), limit - out.len()).await? } else { Vec::new() };
    let next = advance(modified, c.id, seen, &tail)?;
    out.extend(tail);
    if out.is_empty() {
        return Ok((out, cursor));
    }
    Ok((out, Some(next.encode())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: &str = "2026-11-26 10:00:00";

    fn row(id: u64, ts: &str, email: &str) -> Map<String, Value> {
        match json!({"id": id.to_string(), "email": email, CURSOR_COLUMN: ts}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn listed(pairs: &[(u64, u64)]) -> Seen {
        Seen::Listed(pairs.iter().copied().collect())
    }

    #[test]
    fn cursor_format_round_trips() {
        let c = Cursor { modified: T.into(), id: 123, seen: listed(&[(7, 0xabc), (123, u64::MAX)]) };
        assert_eq!(c.encode(), "2026-11-26 10:00:00|123|7:0000000000000abc,123:ffffffffffffffff");
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        let s = Cursor { modified: T.into(), id: u64::MAX, seen: Seen::Sum(0x00ab_cdef_0123_4567) };
        assert_eq!(s.encode(), "2026-11-26 10:00:00|18446744073709551615|=00abcdef01234567");
        assert_eq!(Cursor::parse(&s.encode()).unwrap(), s);
        let empty = Cursor { modified: T.into(), id: 4, seen: listed(&[]) };
        assert_eq!(empty.encode(), "2026-11-26 10:00:00|4|");
        assert_eq!(Cursor::parse(&empty.encode()).unwrap(), empty);
        assert_eq!(Cursor::parse("2026-11-26 10:00:00|7|=FFFFFFFFFFFFFFFF").unwrap().seen, Seen::Sum(u64::MAX));
        // Later seconds encode to larger strings (fixed-width timestamp first).
        let later = Cursor { modified: "2026-11-26 10:00:01".into(), id: 1, seen: listed(&[]) };
        assert!(later.encode() > c.encode());
    }

    #[test]
    fn cursor_stays_small_however_crowded_the_second() {
        let many: Vec<Map<String, Value>> = (1..=MAX_LISTED as u64 + 1).map(|i| row(i, T, "x")).collect();
        let at_limit = advance("", 0, Seen::Sum(0), &many[..MAX_LISTED]).unwrap();
        assert!(matches!(&at_limit.seen, Seen::Listed(m) if m.len() == MAX_LISTED));
        let over = advance("", 0, Seen::Sum(0), &many).unwrap();
        let sum = many.iter().fold(0u64, |a, r| a.wrapping_add(digest_u64(r)));
        assert_eq!(over.seen, Seen::Sum(sum));
        assert_eq!(over.id, MAX_LISTED as u64 + 1);
        assert!(over.encode().len() < 64);
        // Growing a listed cursor past the limit switches it to the sum of the same rows.
        let grown = advance(T, at_limit.id, at_limit.seen.clone(), &many[MAX_LISTED..]).unwrap();
        assert_eq!(grown, over);
    }

    #[test]
    fn legacy_cursors_never_skip() {
        // "second|id:digest,…" (the previous format): listed, up to the highest id.
        let c = Cursor::parse("2026-11-26 10:00:00|123:abc,7:def").unwrap();
        assert_eq!(c, Cursor { modified: T.into(), id: 123, seen: listed(&[(7, 0xdef), (123, 0xabc)]) });
        // "second|id": nothing listed, so that second's rows up to id come again.
        assert_eq!(Cursor::parse("2026-11-26 10:00:00|5").unwrap(), Cursor { modified: T.into(), id: 5, seen: listed(&[]) });
        assert_eq!(Cursor::parse("2026-11-26 10:00:00|").unwrap(), Cursor { modified: T.into(), id: 0, seen: listed(&[]) });
    }

    #[test]
    fn cursor_rejects_injection_and_garbage() {
        for bad in [
            "garbage",
            "",
            "2026-11-26 10:00:00",
            "2026-11-26 10:00:00' OR 1=1 --|1|=0000000000000000",
            "2026-11-26 10:00:00|1 OR 1=1|=0000000000000000",
            "2026-11-26 10:00:00|+1|=0000000000000000",
            "2026-11-26 10:00:00|-1|=0000000000000000",
            "2026-11-26 10:00:00|1|=000000000000000",
            "2026-11-26 10:00:00|1|=00000000000000000",
            "2026-11-26 10:00:00|1|=000000000000000g",
            "2026-11-26 10:00:00|1|=0000000000000000|2",
            "2026-11-26 10:00:00|1|0000000000000000",
            "2026-11-26 10:00:00|1|1:",
            "2026-11-26 10:00:00|1|1:00000000000000000",
            "2026-11-26 10:00:00|1|x:1",
            "2026-11-26 10:00:00|1|1:1' OR '1",
            "2026-11-26 10:00:00|99999999999999999999|=0000000000000000",
            "2026-11-26 10:00:00|1 OR 1=1",
            "2026-11-26 10:00:00|1:ab'--",
            "2026-11-26T10:00:00|1|=0000000000000000",
            "2026-11-26 10:00:00|1:ab'",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queries_splice_only_checked_values() {
        let ts = "TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS')";
        let head = format!("SELECT t.*, {ts} AS hs_cursor_ts FROM transaction t");
        assert_eq!(poll_query("transaction", PollFrom::Start).unwrap(), format!("{head} ORDER BY {ts}, t.id"));
        assert_eq!(
            poll_query("transaction", PollFrom::Second(T)).unwrap(),
            format!("{head} WHERE {ts} >= '{T}' ORDER BY {ts}, t.id")
        );
        assert_eq!(
            poll_query("transaction", PollFrom::After(T, 5)).unwrap(),
            format!("{head} WHERE {ts} > '{T}' OR ({ts} = '{T}' AND t.id > 5) ORDER BY {ts}, t.id")
        );
        let c = Cursor { modified: T.into(), id: 9, seen: Seen::Sum(1) };
        assert_eq!(check_query("transaction", &c, None).unwrap(), format!("{head} WHERE {ts} = '{T}' AND t.id <= 9 ORDER BY t.id"));
        assert_eq!(
            check_query("transaction", &c, Some(4)).unwrap(),
            format!("{head} WHERE {ts} = '{T}' AND t.id <= 9 AND t.id > 4 ORDER BY t.id")
        );
        assert!(poll_query("customer; DROP", PollFrom::Start).is_err());
        assert!(poll_query("customer", PollFrom::Second("2026-11-26' OR '1")).is_err());
        assert!(poll_query("customer", PollFrom::After("x", 1)).is_err());
        let evil = Cursor { modified: "1' OR '1'='1".into(), id: 1, seen: Seen::Sum(0) };
        assert!(check_query("customer", &evil, None).is_err());
    }

    #[test]
    fn advance_lists_the_last_second_only() {
        let rows = [row(4, "2026-11-26 09:59:59", "x"), row(3, T, "a"), row(8, T, "b")];
        let c = advance("", 0, Seen::Sum(0), &rows).unwrap();
        assert_eq!((c.modified.as_str(), c.id), (T, 8));
        assert_eq!(c.seen, listed(&[(3, digest_u64(&rows[1])), (8, digest_u64(&rows[2]))]));
        assert_eq!(digest(&rows[1]), format!("{:016x}", digest_u64(&rows[1])));
        // Continuing in the same second adds; a new second starts afresh; nothing keeps all.
        let more = [row(9, T, "c")];
        let c2 = advance(T, 8, c.seen.clone(), &more).unwrap();
        assert!(matches!(&c2.seen, Seen::Listed(m) if m.len() == 3 && m[&9] == digest_u64(&more[0])));
        let newer = [row(10, T, "d"), row(2, "2026-11-26 10:00:01", "e")];
        let c3 = advance(T, 9, c2.seen.clone(), &newer).unwrap();
        assert_eq!(c3, Cursor { modified: "2026-11-26 10:00:01".into(), id: 2, seen: listed(&[(2, digest_u64(&newer[1]))]) });
        assert_eq!(advance(T, 8, c.seen.clone(), &[]).unwrap(), c);
        // A sum adds the new rows of its second.
        let s = advance(T, 8, Seen::Sum(5), &more).unwrap();
        assert_eq!(s.seen, Seen::Sum(5u64.wrapping_add(digest_u64(&more[0]))));
        // An edit changes the digest.
        assert_ne!(digest_u64(&row(3, T, "a2")), digest_u64(&rows[1]));
        // Rows whose second could not go back into SuiteQL are refused.
        assert!(advance("", 0, Seen::Sum(0), &[row(1, "2026-11-26' --", "x")]).is_err());
    }
}

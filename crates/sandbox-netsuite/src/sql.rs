//! The SuiteQL side: an in-memory SQLite mirror of the records, kept in step on every write,
//! and a light rewriter from SuiteQL (Oracle dialect) to SQLite.

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::error::Error;
use crate::model::{RType, status_label};
use crate::store::{Changes, Db, Record, fmt_ts, ref_id};

const SCHEMA: &str = r#"
CREATE TABLE customer (id INTEGER PRIMARY KEY, entityid TEXT, companyname TEXT, firstname TEXT, lastname TEXT,
  isperson TEXT, email TEXT, phone TEXT, subsidiary INTEGER, currency INTEGER, externalid TEXT, isinactive TEXT,
  datecreated TEXT, lastmodifieddate TEXT);
CREATE TABLE item (id INTEGER PRIMARY KEY, itemid TEXT, displayname TEXT, salesdescription TEXT, itemtype TEXT,
  baseprice NUMERIC, cost NUMERIC, upccode TEXT, subsidiary INTEGER, externalid TEXT, isinactive TEXT,
  createddate TEXT, lastmodifieddate TEXT);
CREATE TABLE "transaction" (id INTEGER PRIMARY KEY, tranid TEXT, type TEXT, recordtype TEXT, trandate TEXT,
  entity INTEGER, currency INTEGER, subsidiary INTEGER, location INTEGER, status TEXT, memo TEXT, otherrefnum TEXT,
  externalid TEXT, foreigntotal NUMERIC, total NUMERIC, foreignamountremaining NUMERIC, foreignamountpaid NUMERIC,
  createdfrom INTEGER, account INTEGER, paymentmethod INTEGER, undepfunds TEXT, createddate TEXT, lastmodifieddate TEXT);
CREATE TABLE transactionline ("transaction" INTEGER, id INTEGER, linesequencenumber INTEGER, mainline TEXT,
  item INTEGER, quantity NUMERIC, rate NUMERIC, netamount NUMERIC, foreignamount NUMERIC, amount NUMERIC,
  location INTEGER, memo TEXT, entity INTEGER, account INTEGER, debitforeignamount NUMERIC, creditforeignamount NUMERIC,
  createdfrom INTEGER, isclosed TEXT, quantityshiprecv NUMERIC, subsidiary INTEGER,
  PRIMARY KEY ("transaction", id));
CREATE TABLE aggregateitemlocation (item INTEGER, location INTEGER, quantityonhand NUMERIC, quantityavailable NUMERIC,
  PRIMARY KEY (item, location));
CREATE TABLE account (id INTEGER PRIMARY KEY, acctnumber TEXT, acctname TEXT, fullname TEXT, accountsearchdisplayname TEXT,
  accttype TEXT, currency INTEGER, subsidiary INTEGER, externalid TEXT, isinactive TEXT, lastmodifieddate TEXT);
CREATE TABLE subsidiary (id INTEGER PRIMARY KEY, name TEXT, currency INTEGER, country TEXT, externalid TEXT, isinactive TEXT, lastmodifieddate TEXT);
CREATE TABLE location (id INTEGER PRIMARY KEY, name TEXT, subsidiary INTEGER, externalid TEXT, isinactive TEXT, lastmodifieddate TEXT);
CREATE TABLE paymentmethod (id INTEGER PRIMARY KEY, name TEXT, methodtype TEXT, account INTEGER, undepfunds TEXT, externalid TEXT, isinactive TEXT, lastmodifieddate TEXT);
CREATE TABLE currency (id INTEGER PRIMARY KEY, name TEXT, symbol TEXT, isbasecurrency TEXT, exchangerate NUMERIC, externalid TEXT, isinactive TEXT, lastmodifieddate TEXT);
CREATE TABLE __df (kind TEXT, key TEXT, display TEXT, PRIMARY KEY (kind, key));
"#;

/// The mirror's database outlives any one pool connection: a named, shared-cache in-memory
/// database lives as long as some connection to it is open, and the anchor returned by [`open`]
/// is that connection. (The soak test found why: a request dropped mid-query — a client that
/// hung up — makes the pool close its connection, and a plain `:memory:` database went with it,
/// so the next SuiteQL query said "no such table".)
pub async fn open() -> Result<(SqlitePool, sqlx::SqliteConnection), Error> {
    use sqlx::Connection;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let opts = SqliteConnectOptions::new()
        .filename(format!("file:hs-netsuite-sandbox-{}-{n}", std::process::id()))
        .in_memory(true)
        .shared_cache(true);
    let anchor = sqlx::SqliteConnection::connect_with(&opts).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await?;
    for stmt in SCHEMA.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(sqlx::AssertSqlSafe(stmt.to_string())).execute(&pool).await?;
    }
    let mut tx = pool.begin().await?;
    for t in RType::ALL {
        if let Some(code) = t.tran_code() {
            exec(&mut tx, "INSERT OR REPLACE INTO __df VALUES ('type', ?, ?)", vec![V::T(code.into()), V::T(t.meta().label.into())]).await?;
            for s in ["A", "B", "C", "D", "E", "F", "G", "H"] {
                if let Some(l) = status_label(code, s) {
                    exec(&mut tx, "INSERT OR REPLACE INTO __df VALUES ('status', ?, ?)", vec![V::T(format!("{code}:{s}")), V::T(l.into())]).await?;
                }
            }
        }
    }
    tx.commit().await?;
    Ok((pool, anchor))
}

#[derive(Debug, Clone)]
enum V {
    N,
    I(i64),
    T(String),
}

async fn exec(conn: &mut sqlx::SqliteConnection, sql: &str, binds: Vec<V>) -> Result<(), Error> {
    // Every statement here is built by this module from constants; values are bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = match b {
            V::N => q.bind(None::<String>),
            V::I(i) => q.bind(i),
            V::T(s) => q.bind(s),
        };
    }
    q.execute(conn).await?;
    Ok(())
}

fn t(b: &Map<String, Value>, k: &str) -> V {
    match b.get(k) {
        Some(Value::String(s)) => V::T(s.clone()),
        Some(Value::Bool(x)) => V::T(if *x { "T" } else { "F" }.into()),
        Some(Value::Number(n)) => V::T(n.to_string()),
        Some(v @ Value::Object(_)) => match ref_id(Some(v)) {
            Some(id) => V::I(id as i64),
            None => V::T(v.to_string()),
        },
        _ => V::N,
    }
}

fn tb(b: &Map<String, Value>, k: &str, default: bool) -> V {
    V::T(if b.get(k).and_then(Value::as_bool).unwrap_or(default) { "T" } else { "F" }.into())
}

/// Replace the mirror rows of every record the write touched.
pub async fn sync(pool: &SqlitePool, db: &Db, ch: &Changes) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    for (rt, id) in ch.deleted.iter().chain(&ch.touched) {
        delete_rows(&mut tx, *rt, *id).await?;
    }
    for (rt, id) in &ch.touched {
        if let Some(r) = db.get(*rt, *id) {
            insert_rows(&mut tx, db, r).await?;
        }
    }
    for (item, loc) in &ch.stock {
        exec(&mut tx, "DELETE FROM aggregateitemlocation WHERE item = ? AND location = ?", vec![V::I(*item as i64), V::I(*loc as i64)]).await?;
        if let Some(q) = db.onhand.get(&(*item, *loc)) {
            let q = V::T(q.normalize().to_string());
            exec(&mut tx, "INSERT INTO aggregateitemlocation VALUES (?, ?, ?, ?)", vec![V::I(*item as i64), V::I(*loc as i64), q.clone(), q]).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuild the mirror from scratch (after a reset).
pub async fn rebuild(pool: &SqlitePool, db: &Db) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    for table in ["customer", "item", "\"transaction\"", "transactionline", "aggregateitemlocation", "account", "subsidiary", "location", "paymentmethod", "currency"] {
        exec(&mut tx, &format!("DELETE FROM {table}"), vec![]).await?;
    }
    exec(&mut tx, "DELETE FROM __df WHERE kind NOT IN ('type', 'status')", vec![]).await?;
    tx.commit().await?;
    let mut ch = Changes::default();
    for (rt, m) in &db.records {
        for id in m.keys() {
            ch.touched.push((*rt, *id));
        }
    }
    ch.stock = db.onhand.keys().copied().collect();
    sync(pool, db, &ch).await
}

fn table_of(rt: RType) -> &'static str {
    match rt {
        RType::Customer => "customer",
        RType::InventoryItem => "item",
        RType::Account => "account",
        RType::Subsidiary => "subsidiary",
        RType::Location => "location",
        RType::PaymentMethod => "paymentmethod",
        RType::Currency => "currency",
        _ => "transaction",
    }
}

fn df_kind(rt: RType) -> &'static str {
    match rt {
        RType::Customer => "entity",
        RType::InventoryItem => "item",
        RType::Account => "account",
        RType::Subsidiary => "subsidiary",
        RType::Location => "location",
        RType::PaymentMethod => "paymentmethod",
        RType::Currency => "currency",
        _ => "transaction",
    }
}

async fn delete_rows(tx: &mut sqlx::SqliteConnection, rt: RType, id: u64) -> Result<(), Error> {
    let id = id as i64;
    exec(tx, &format!("DELETE FROM \"{}\" WHERE id = ?", table_of(rt)), vec![V::I(id)]).await?;
    if rt.is_transaction() {
        exec(tx, "DELETE FROM transactionline WHERE \"transaction\" = ?", vec![V::I(id)]).await?;
    }
    exec(tx, "DELETE FROM __df WHERE kind = ? AND key = ?", vec![V::T(df_kind(rt).into()), V::T(id.to_string())]).await?;
    Ok(())
}

async fn insert_rows(tx: &mut sqlx::SqliteConnection, db: &Db, r: &Record) -> Result<(), Error> {
    let b = &r.body;
    let id = V::I(r.id as i64);
    let (created, modified) = (V::T(fmt_ts(r.created)), V::T(fmt_ts(r.modified)));
    exec(tx, "INSERT OR REPLACE INTO __df VALUES (?, ?, ?)", vec![V::T(df_kind(r.rtype).into()), V::T(r.id.to_string()), V::T(db.display(r.rtype, r.id))]).await?;
    match r.rtype {
        RType::Customer => {
            exec(tx, "INSERT INTO customer VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", vec![
                id, t(b, "entityId"), t(b, "companyName"), t(b, "firstName"), t(b, "lastName"), tb(b, "isPerson", false),
                t(b, "email"), t(b, "phone"), t(b, "subsidiary"), t(b, "currency"), t(b, "externalId"), tb(b, "isInactive", false), created, modified,
            ]).await
        }
        RType::InventoryItem => {
            exec(tx, "INSERT INTO item VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", vec![
                id, t(b, "itemId"), t(b, "displayName"), t(b, "salesDescription"), V::T("InvtPart".into()), t(b, "basePrice"), t(b, "cost"),
                t(b, "upcCode"), t(b, "subsidiary"), t(b, "externalId"), tb(b, "isInactive", false), created, modified,
            ]).await
        }
        RType::Account => {
            let full = match (b.get("acctNumber").and_then(Value::as_str), b.get("acctName").and_then(Value::as_str)) {
                (Some(n), Some(a)) => V::T(format!("{n} {a}")),
                _ => t(b, "acctName"),
            };
            exec(tx, "INSERT INTO account VALUES (?,?,?,?,?,?,?,?,?,?,?)", vec![
                id, t(b, "acctNumber"), t(b, "acctName"), t(b, "acctName"), full, t(b, "acctType"), t(b, "currency"), t(b, "subsidiary"),
                t(b, "externalId"), tb(b, "isInactive", false), modified,
            ]).await
        }
        RType::Subsidiary => {
            exec(tx, "INSERT INTO subsidiary VALUES (?,?,?,?,?,?,?)", vec![id, t(b, "name"), t(b, "currency"), t(b, "country"), t(b, "externalId"), tb(b, "isInactive", false), modified]).await
        }
        RType::Location => {
            exec(tx, "INSERT INTO location VALUES (?,?,?,?,?,?)", vec![id, t(b, "name"), t(b, "subsidiary"), t(b, "externalId"), tb(b, "isInactive", false), modified]).await
        }
        RType::PaymentMethod => {
            exec(tx, "INSERT INTO paymentmethod VALUES (?,?,?,?,?,?,?,?)", vec![id, t(b, "name"), t(b, "methodType"), t(b, "account"), tb(b, "undepFunds", true), t(b, "externalId"), tb(b, "isInactive", false), modified]).await
        }
        RType::Currency => {
            exec(tx, "INSERT INTO currency VALUES (?,?,?,?,?,?,?,?)", vec![id, t(b, "name"), t(b, "symbol"), tb(b, "isBaseCurrency", false), t(b, "exchangeRate"), t(b, "externalId"), tb(b, "isInactive", false), modified]).await
        }
        rt => insert_transaction(tx, db, r, rt).await,
    }
}

async fn insert_transaction(tx: &mut sqlx::SqliteConnection, db: &Db, r: &Record, rt: RType) -> Result<(), Error> {
    let b = &r.body;
    let code = rt.tran_code().unwrap_or_default();
    let entity = if b.contains_key("customer") { t(b, "customer") } else { t(b, "entity") };
    let total: Option<Decimal> = match rt {
        RType::CustomerPayment => Some(r.dec("payment")),
        RType::JournalEntry => Some(r.lines.get("line").into_iter().flatten().filter_map(|l| l.get("debit").and_then(Value::as_str)?.parse::<Decimal>().ok()).sum()),
        RType::ItemFulfillment | RType::InventoryAdjustment => None,
        _ => Some(r.dec("total")),
    };
    let total = total.map_or(V::N, |d| V::T(d.normalize().to_string()));
    let (remaining, paid) = if matches!(rt, RType::Invoice | RType::CreditMemo | RType::CustomerPayment) {
        let rem = db.remaining(r);
        let base = if rt == RType::CustomerPayment { r.dec("payment") } else { r.dec("total") };
        (V::T(rem.normalize().to_string()), V::T((base - rem).normalize().to_string()))
    } else {
        (V::N, V::N)
    };
    let pm = if b.contains_key("paymentOption") { t(b, "paymentOption") } else { t(b, "paymentMethod") };
    let undep = if matches!(rt, RType::CustomerPayment | RType::CashSale) { tb(b, "undepFunds", true) } else { V::N };
    exec(tx, "INSERT INTO \"transaction\" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", vec![
        V::I(r.id as i64), t(b, "tranId"), V::T(code.into()), V::T(rt.name().to_ascii_lowercase()), t(b, "tranDate"),
        entity.clone(), t(b, "currency"), t(b, "subsidiary"), if b.contains_key("location") { t(b, "location") } else { t(b, "adjLocation") },
        db.status(r).map_or(V::N, V::T), t(b, "memo"), t(b, "otherRefNum"), t(b, "externalId"), total.clone(), total.clone(),
        remaining, paid, t(b, "createdFrom"), t(b, "account"), pm, undep, V::T(fmt_ts(r.created)), V::T(fmt_ts(r.modified)),
    ]).await?;
    // NetSuite has a main line (id 0) per transaction carrying the header, then one row per line.
    exec(tx, "INSERT INTO transactionline (\"transaction\", id, linesequencenumber, mainline, entity, netamount, foreignamount, amount, location, memo, account, createdfrom, subsidiary) VALUES (?,0,0,'T',?,?,?,?,?,?,?,?,?)", vec![
        V::I(r.id as i64), entity.clone(), total.clone(), total.clone(), total, t(b, "location"), t(b, "memo"), t(b, "account"), t(b, "createdFrom"), t(b, "subsidiary"),
    ]).await?;
    let sub = match rt {
        RType::JournalEntry => "line",
        RType::InventoryAdjustment => "inventory",
        RType::Deposit => "payment",
        RType::CustomerPayment | RType::CustomerRefund => "apply",
        _ => "item",
    };
    for (seq, l) in r.lines.get(sub).into_iter().flatten().enumerate() {
        let line_id = l.get("line").and_then(Value::as_i64).unwrap_or(seq as i64 + 1);
        let qty = if rt == RType::InventoryAdjustment { t(l, "adjustQtyBy") } else { t(l, "quantity") };
        let amt = match rt {
            RType::JournalEntry => match (l.get("debit"), l.get("credit")) {
                (Some(d), _) => V::T(d.as_str().unwrap_or_default().to_string()),
                (_, Some(c)) => V::T(format!("-{}", c.as_str().unwrap_or_default())),
                _ => V::N,
            },
            RType::Deposit => t(l, "paymentAmount"),
            _ => t(l, "amount"),
        };
        let line_entity = if l.contains_key("entity") { t(l, "entity") } else { entity.clone() };
        exec(tx, "INSERT INTO transactionline (\"transaction\", id, linesequencenumber, mainline, item, quantity, rate, netamount, foreignamount, amount, location, memo, entity, account, debitforeignamount, creditforeignamount, createdfrom, isclosed, subsidiary) VALUES (?,?,?,'F',?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", vec![
            V::I(r.id as i64), V::I(line_id), V::I(seq as i64 + 1), t(l, "item"), qty, t(l, "rate"), amt.clone(), amt.clone(), amt,
            if l.contains_key("location") { t(l, "location") } else { t(b, "location") }, t(l, "memo"), line_entity, t(l, "account"),
            t(l, "debit"), t(l, "credit"), if l.contains_key("doc") { t(l, "doc") } else { t(b, "createdFrom") }, tb(l, "isClosed", false), t(b, "subsidiary"),
        ]).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------ SuiteQL

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Other(String),
}

fn lex(q: &str) -> Result<Vec<Tok>, Error> {
    let cs: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err(invalid("unterminated string literal")),
                    Some('\'') if cs.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_alphabetic() || c == '_' {
            let mut s = String::new();
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '$') {
                s.push(cs[i]);
                i += 1;
            }
            out.push(Tok::Ident(s));
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                s.push(cs[i]);
                i += 1;
            }
            out.push(Tok::Other(s));
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(Tok::Other(c.to_string()));
            i += 1;
        }
    }
    Ok(out)
}

fn invalid(msg: &str) -> Error {
    Error::bad_param(format!("Invalid search query. Detailed unprocessed description follows. Search error occurred: {msg}"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Oracle date format + value → ISO (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`).
fn oracle_date(value: &str, fmt: &str) -> Option<String> {
    let f = fmt.to_ascii_uppercase();
    let order: Vec<&str> = {
        let mut v: Vec<(usize, &str)> = ["YYYY", "MM", "DD", "HH24", "MI", "SS"]
            .iter()
            .filter_map(|k| f.find(k).map(|p| (p, *k)))
            .collect();
        // "HH" without 24 also means hours.
        if !f.contains("HH24")
            && let Some(p) = f.find("HH")
        {
            v.push((p, "HH24"));
        }
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    };
    let nums: Vec<u32> = value.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
    let get = |k: &str| order.iter().position(|x| *x == k).and_then(|i| nums.get(i).copied());
    let (y, m, d) = (get("YYYY")?, get("MM")?, get("DD").unwrap_or(1));
    let date = jiff::civil::Date::new(i16::try_from(y).ok()?, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()?;
    if order.contains(&"HH24") {
        Some(format!("{date}T{:02}:{:02}:{:02}Z", get("HH24").unwrap_or(0), get("MI").unwrap_or(0), get("SS").unwrap_or(0)))
    } else {
        Some(date.to_string())
    }
}

fn strftime_of(fmt: &str) -> String {
    fmt.replace("YYYY", "%Y").replace("MM", "%m").replace("DD", "%d").replace("HH24", "%H").replace("HH", "%H").replace("MI", "%M").replace("SS", "%S")
}

/// Find the index of the `)` closing the `(` at `open`.
fn close_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Other(s) if s == "(" => depth += 1,
            Tok::Other(s) if s == ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Split the tokens between parentheses on top-level commas.
fn args(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Other(s) if s == "(" => depth += 1,
            Tok::Other(s) if s == ")" => depth -= 1,
            Tok::Other(s) if s == "," && depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[start..]);
    out
}

fn render_toks(toks: &[Tok]) -> Result<String, Error> {
    let mut out = String::new();
    let mut i = 0;
    while i < toks.len() {
        let upper = |j: usize| match toks.get(j) {
            Some(Tok::Ident(s)) => s.to_ascii_uppercase(),
            _ => String::new(),
        };
        let is = |j: usize, s: &str| matches!(toks.get(j), Some(Tok::Other(x)) if x == s);
        match &toks[i] {
            Tok::Ident(_) if upper(i) == "BUILTIN" && is(i + 1, ".") && upper(i + 2) == "DF" && is(i + 3, "(") => {
                let end = close_paren(toks, i + 3).ok_or_else(|| invalid("unbalanced parentheses"))?;
                let inner = &toks[i + 4..end];
                let inner_sql = render_toks(inner)?.trim().to_string();
                let col = inner.iter().rev().find_map(|t| match t { Tok::Ident(s) => Some(s.to_ascii_lowercase()), _ => None }).unwrap_or_default();
                let prefix = if inner.len() >= 3 { render_toks(&inner[..inner.len() - 1])?.trim().to_string() } else { String::new() };
                let kind = match col.as_str() {
                    "entity" | "customer" | "company" => Some("entity"),
                    "item" => Some("item"),
                    "location" | "adjlocation" => Some("location"),
                    "subsidiary" => Some("subsidiary"),
                    "currency" => Some("currency"),
                    "account" | "expenseaccount" => Some("account"),
                    "paymentmethod" | "paymentoption" => Some("paymentmethod"),
                    "createdfrom" | "transaction" | "doc" => Some("transaction"),
                    "type" => Some("type"),
                    "status" => None,
                    _ => Some(""),
                };
                let sql = match kind {
                    None => format!("(SELECT display FROM __df WHERE kind = 'status' AND key = {prefix}type || ':' || {inner_sql})"),
                    Some("") => format!("({inner_sql})"),
                    Some(k) => format!("(SELECT display FROM __df WHERE kind = '{k}' AND key = CAST({inner_sql} AS TEXT))"),
                };
                out.push_str(&sql);
                out.push(' ');
                i = end + 1;
            }
            Tok::Ident(_) if matches!(upper(i).as_str(), "TO_DATE" | "TO_TIMESTAMP") && is(i + 1, "(") => {
                let end = close_paren(toks, i + 1).ok_or_else(|| invalid("unbalanced parentheses"))?;
                let a = args(&toks[i + 2..end]);
                let lit = match a.as_slice() {
                    [[Tok::Str(v)], [Tok::Str(f)]] => oracle_date(v, f).ok_or_else(|| invalid(&format!("unparseable date '{v}' for format '{f}'")))?,
                    [[Tok::Str(v)]] => crate::store::parse_date(v).ok_or_else(|| invalid(&format!("unparseable date '{v}'")))?,
                    _ => return Err(invalid("TO_DATE/TO_TIMESTAMP need literal arguments in the sandbox")),
                };
                out.push_str(&quote(&lit));
                out.push(' ');
                i = end + 1;
            }
            Tok::Ident(_) if upper(i) == "TO_CHAR" && is(i + 1, "(") => {
                let end = close_paren(toks, i + 1).ok_or_else(|| invalid("unbalanced parentheses"))?;
                let a = args(&toks[i + 2..end]);
                let sql = match a.as_slice() {
                    [expr, [Tok::Str(f)]] => format!("strftime({}, {})", quote(&strftime_of(f)), render_toks(expr)?),
                    [expr] => format!("CAST({} AS TEXT)", render_toks(expr)?),
                    _ => return Err(invalid("TO_CHAR takes one or two arguments")),
                };
                out.push_str(&sql);
                out.push(' ');
                i = end + 1;
            }
            Tok::Ident(_) if upper(i) == "SYSDATE" || upper(i) == "CURRENT_TIMESTAMP" => {
                out.push_str(&quote(&fmt_ts(jiff::Timestamp::now())));
                out.push(' ');
                i += 1;
            }
            Tok::Ident(_) if upper(i) == "NVL" => {
                out.push_str("IFNULL ");
                i += 1;
            }
            Tok::Ident(_) if upper(i) == "FETCH" && upper(i + 1) == "FIRST" && upper(i + 3) == "ROWS" && upper(i + 4) == "ONLY" => {
                let n = match toks.get(i + 2) {
                    Some(Tok::Other(s)) if s.chars().all(|c| c.is_ascii_digit()) => s.clone(),
                    _ => return Err(invalid("FETCH FIRST needs a row count")),
                };
                out.push_str(&format!("LIMIT {n} "));
                i += 5;
            }
            Tok::Ident(s) => {
                // `transaction` is an SQLite keyword; quote it wherever it is used as a name.
                if s.eq_ignore_ascii_case("transaction") {
                    out.push_str("\"transaction\"");
                } else {
                    out.push_str(s);
                }
                if !matches!(toks.get(i + 1), Some(Tok::Other(n)) if n == ".") {
                    out.push(' ');
                }
                i += 1;
            }
            Tok::Str(s) => {
                out.push_str(&quote(s));
                out.push(' ');
                i += 1;
            }
            Tok::Other(s) => {
                out.push_str(s);
                // Keep multi-character operators (<=, >=, <>, !=, ||) together.
                let glue = matches!(toks.get(i + 1), Some(Tok::Other(n)) if matches!((s.as_str(), n.as_str()), ("<", "=") | (">", "=") | ("<", ">") | ("!", "=") | ("|", "|")));
                if !glue && s != "." && !matches!(toks.get(i + 1), Some(Tok::Other(n)) if n == ".") {
                    out.push(' ');
                }
                i += 1;
            }
        }
    }
    Ok(out)
}

/// SuiteQL → SQLite. Read-only: a single SELECT (or WITH) statement.
pub fn rewrite(q: &str) -> Result<String, Error> {
    let q = q.trim().trim_end_matches(';');
    let toks = lex(q)?;
    match toks.first() {
        Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("SELECT") || s.eq_ignore_ascii_case("WITH") => {}
        _ => return Err(invalid("only SELECT statements are supported")),
    }
    if toks.iter().any(|t| matches!(t, Tok::Other(s) if s == ";")) {
        return Err(invalid("only one statement is allowed"));
    }
    render_toks(&toks)
}

fn format_real(f: f64) -> String {
    // Aggregates over decimal columns come back as doubles; round away binary noise so
    // `0.1 + 0.2` reads "0.3" (amounts have at most a few decimals).
    let s = format!("{:.9}", f);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Run a SuiteQL page. Returns (rows, totalResults).
pub async fn query(pool: &SqlitePool, q: &str, limit: u32, offset: u32) -> Result<(Vec<Value>, u64), Error> {
    let sql = rewrite(q)?;
    let map_err = |e: sqlx::Error| match e {
        sqlx::Error::Database(d) => invalid(d.message()),
        other => Error::Sql(other),
    };
    let total: i64 = // The query is the client's SuiteQL by design; `rewrite` admits one SELECT only.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM ({sql})"))).fetch_one(pool).await.map_err(map_err)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM ({sql}) LIMIT {limit} OFFSET {offset}"))).fetch_all(pool).await.map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut o = Map::new();
        o.insert("links".into(), Value::Array(vec![]));
        for (i, col) in row.columns().iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(map_err)?;
            if raw.is_null() {
                continue;
            }
            let ty = raw.type_info().name().to_string();
            let v = match ty.as_str() {
                "INTEGER" | "BOOLEAN" | "INT4" => row.try_get_unchecked::<i64, _>(i).map(|x| x.to_string()),
                "REAL" | "NUMERIC" => row.try_get_unchecked::<f64, _>(i).map(format_real),
                _ => row.try_get_unchecked::<String, _>(i),
            }
            .map_err(map_err)?;
            o.insert(col.name().to_ascii_lowercase(), Value::String(v));
        }
        out.push(Value::Object(o));
    }
    Ok((out, u64::try_from(total).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_builtin_df_dates_and_keywords() {
        let s = rewrite("SELECT t.id, BUILTIN.DF(t.entity) AS customer, BUILTIN.DF(t.status) FROM transaction t WHERE t.lastmodifieddate >= TO_DATE('11/26/2026', 'MM/DD/YYYY') AND NVL(t.memo,'x') <> 'a. b' FETCH FIRST 10 ROWS ONLY").unwrap_or_else(|e| e.to_string());
        assert!(s.contains("'a. b'") && s.contains("LIMIT 10"), "{s}");
        assert!(s.contains("kind = 'entity' AND key = CAST(t.entity AS TEXT)"), "{s}");
        assert!(s.contains("key = t.type || ':' || t.status"), "{s}");
        assert!(s.contains("'2026-11-26'"), "{s}");
        assert!(s.contains("FROM \"transaction\" t"), "{s}");
        assert!(s.contains("IFNULL"), "{s}");
        assert!(s.contains("<>"), "{s}");
        assert!(rewrite("DELETE FROM customer").is_err());
        assert!(rewrite("SELECT 1; DROP TABLE customer").is_err());
    }

    #[test]
    fn oracle_dates() {
        assert_eq!(oracle_date("2026-11-26 10:05:00", "YYYY-MM-DD HH24:MI:SS").as_deref(), Some("2026-11-26T10:05:00Z"));
        assert_eq!(oracle_date("11/26/2026", "MM/DD/YYYY").as_deref(), Some("2026-11-26"));
        assert_eq!(format_real(0.1 + 0.2), "0.3");
        assert_eq!(format_real(20.0), "20");
    }
}

#[cfg(test)]
mod anchor_tests {
    use super::*;

    #[tokio::test]
    async fn the_mirror_survives_losing_its_pool_connection() {
        let (pool, _anchor) = open().await.expect("open");
        // What a request dropped mid-query does: the pool's connection is closed for good.
        let conn = pool.acquire().await.expect("acquire").detach();
        drop(conn);
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM __df").fetch_one(&pool).await.expect("the tables are still there");
        assert!(n > 0);
    }
}

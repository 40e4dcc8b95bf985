//! Records → NetSuite REST JSON, and the `q` filter of the list operation.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::str::FromStr;

use crate::error::Error;
use crate::model::{Kind, RType};
use crate::store::{Db, Record, fmt_ts, parse_date, ref_id, status_ref};

/// An exact decimal string as a JSON number (serde_json's arbitrary_precision keeps the digits).
pub fn num(s: &str) -> Value {
    serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn self_link(href: String) -> Value {
    json!([{"rel": "self", "href": href}])
}

fn render_value(db: &Db, base: &str, kind: Kind, v: &Value) -> Value {
    match kind {
        Kind::Ref(t) => match ref_id(Some(v)) {
            Some(id) => json!({"links": self_link(format!("{base}/{}/{id}", t.name())), "id": id.to_string(), "refName": db.display(t, id)}),
            None => v.clone(),
        },
        Kind::TranRef => match ref_id(Some(v)).and_then(|id| db.tran(id)) {
            Some(r) => json!({"links": self_link(format!("{base}/{}/{}", r.rtype.name(), r.id)), "id": r.id.to_string(), "refName": db.display(r.rtype, r.id)}),
            None => v.clone(),
        },
        Kind::Enum => match v.as_str() {
            Some(s) => json!({"id": s, "refName": s}),
            None => v.clone(),
        },
        Kind::Dec => v.as_str().map(num).unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

fn render_fields(db: &Db, base: &str, rt_fields: &[(&'static str, Kind)], src: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in src {
        let kind = rt_fields.iter().find(|(n, _)| n == k).map_or(Kind::Text, |(_, k)| *k);
        out.insert(k.clone(), render_value(db, base, kind, v));
    }
}

/// A sublist as an expanded collection.
pub fn render_sublist(db: &Db, base: &str, r: &Record, sub: &'static str) -> Value {
    let fields = r.rtype.sublist(sub).map(|(_, f)| f).unwrap_or_default();
    let href = format!("{base}/{}/{}/{sub}", r.rtype.name(), r.id);
    let items: Vec<Value> = r
        .lines
        .get(sub)
        .into_iter()
        .flatten()
        .map(|l| {
            let mut o = Map::new();
            o.insert("links".into(), json!([]));
            render_fields(db, base, fields, l, &mut o);
            Value::Object(o)
        })
        .collect();
    json!({"links": self_link(href), "count": items.len(), "hasMore": false, "items": items, "offset": 0, "totalResults": items.len()})
}

/// A record as `GET /record/v1/{type}/{id}` returns it.
pub fn render(db: &Db, base: &str, r: &Record, expand: bool) -> Value {
    let mut o = Map::new();
    o.insert("links".into(), self_link(format!("{base}/{}/{}", r.rtype.name(), r.id)));
    o.insert("id".into(), Value::String(r.id.to_string()));
    let fields: Vec<(&'static str, Kind)> = r.rtype.all_fields().collect();
    render_fields(db, base, &fields, &r.body, &mut o);
    if let (Some(code), Some(s)) = (r.rtype.tran_code(), db.status(r)) {
        o.insert("status".into(), status_ref(code, &s));
    }
    if r.rtype == RType::Invoice {
        let rem = db.remaining(r);
        o.insert("amountRemaining".into(), num(&rem.normalize().to_string()));
        o.insert("amountPaid".into(), num(&(r.dec("total") - rem).normalize().to_string()));
    }
    if r.rtype == RType::InventoryItem {
        let qty: Decimal = db.onhand.iter().filter(|((i, _), _)| *i == r.id).map(|(_, q)| *q).sum();
        o.insert("quantityOnHand".into(), num(&qty.normalize().to_string()));
    }
    let created_key = if r.rtype.is_transaction() { "createdDate" } else { "dateCreated" };
    o.insert(created_key.into(), Value::String(fmt_ts(r.created)));
    o.insert("lastModifiedDate".into(), Value::String(fmt_ts(r.modified)));
    for (sub, _) in r.rtype.meta().sublists {
        let v = if expand {
            render_sublist(db, base, r, sub)
        } else {
            json!({"links": self_link(format!("{base}/{}/{}/{sub}", r.rtype.name(), r.id))})
        };
        o.insert((*sub).to_string(), v);
    }
    Value::Object(o)
}

// ------------------------------------------------------------------------ q filter

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond { field: String, op: String, values: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
}

fn lex(q: &str) -> Result<Vec<Tok>, Error> {
    let mut out = Vec::new();
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => { out.push(Tok::LParen); i += 1 }
            ')' => { out.push(Tok::RParen); i += 1 }
            '[' => { out.push(Tok::LBrack); i += 1 }
            ']' => { out.push(Tok::RBrack); i += 1 }
            ',' => { out.push(Tok::Comma); i += 1 }
            '"' | '\'' => {
                let mut s = String::new();
                i += 1;
                while i < cs.len() && cs[i] != c {
                    s.push(cs[i]);
                    i += 1;
                }
                if i >= cs.len() {
                    return Err(Error::bad_param("Invalid search query: unterminated string literal."));
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            _ => {
                let mut s = String::new();
                while i < cs.len() && !cs[i].is_whitespace() && !"()[],\"'".contains(cs[i]) {
                    s.push(cs[i]);
                    i += 1;
                }
                out.push(Tok::Word(s));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn or(&mut self) -> Result<Expr, Error> {
        let mut e = self.and()?;
        while self.peek_word("OR") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, Error> {
        let mut e = self.atom()?;
        while self.peek_word("AND") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.atom()?));
        }
        Ok(e)
    }
    fn value(&mut self) -> Option<String> {
        match self.toks.get(self.pos)? {
            Tok::Word(w) if !w.eq_ignore_ascii_case("AND") && !w.eq_ignore_ascii_case("OR") => {
                self.pos += 1;
                Some(w.clone())
            }
            Tok::Str(s) => {
                self.pos += 1;
                Some(s.clone())
            }
            _ => None,
        }
    }
    fn atom(&mut self) -> Result<Expr, Error> {
        let bad = |m: &str| Error::bad_param(format!("Invalid search query: {m}."));
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.toks.get(self.pos) != Some(&Tok::RParen) {
                return Err(bad("missing )"));
            }
            self.pos += 1;
            return Ok(e);
        }
        let Some(Tok::Word(field)) = self.toks.get(self.pos).cloned() else { return Err(bad("expected a field name")) };
        self.pos += 1;
        let Some(Tok::Word(op)) = self.toks.get(self.pos).cloned() else { return Err(bad("expected an operator")) };
        self.pos += 1;
        let op = op.to_ascii_uppercase();
        let mut values = Vec::new();
        if op.trim_end_matches("_NOT") == "EMPTY" {
            return Ok(Expr::Cond { field, op, values });
        }
        if self.toks.get(self.pos) == Some(&Tok::LBrack) {
            self.pos += 1;
            loop {
                match self.toks.get(self.pos) {
                    Some(Tok::RBrack) => { self.pos += 1; break }
                    Some(Tok::Comma) => self.pos += 1,
                    _ => values.push(self.value().ok_or_else(|| bad("bad value list"))?),
                }
            }
        } else {
            values.push(self.value().ok_or_else(|| bad("expected a value"))?);
            while self.toks.get(self.pos) == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.value().ok_or_else(|| bad("expected a value"))?);
            }
        }
        // `ANY_OF "1, 2"` is accepted as well as `ANY_OF 1, 2` and `ANY_OF [1, 2]`.
        if op.starts_with("ANY_OF") && values.len() == 1 {
            values = values[0].split(',').map(|s| s.trim().to_string()).collect();
        }
        Ok(Expr::Cond { field, op, values })
    }
}

pub struct Filter(Option<Expr>);

impl Filter {
    pub fn parse(q: Option<&str>) -> Result<Filter, Error> {
        let Some(q) = q.filter(|q| !q.trim().is_empty()) else { return Ok(Filter(None)) };
        let mut p = Parser { toks: lex(q)?, pos: 0 };
        let e = p.or()?;
        if p.pos != p.toks.len() {
            return Err(Error::bad_param("Invalid search query: unexpected trailing input."));
        }
        Ok(Filter(Some(e)))
    }

    pub fn matches(&self, db: &Db, r: &Record) -> Result<bool, Error> {
        match &self.0 {
            None => Ok(true),
            Some(e) => eval(db, r, e),
        }
    }
}

enum FVal {
    Null,
    Text(String),
    Num(Decimal),
    Bool(bool),
    /// An instant or date as a sortable string `YYYY-MM-DD[THH:MM:SSZ]`.
    Date(String),
}

fn field_value(db: &Db, r: &Record, field: &str) -> Result<FVal, Error> {
    let f = field.to_ascii_lowercase();
    match f.as_str() {
        "id" | "internalid" => return Ok(FVal::Num(Decimal::from(r.id))),
        "lastmodifieddate" => return Ok(FVal::Date(fmt_ts(r.modified))),
        "datecreated" | "createddate" => return Ok(FVal::Date(fmt_ts(r.created))),
        "status" => {
            return Ok(db.status(r).map_or(FVal::Null, FVal::Text));
        }
        _ => {}
    }
    let Some((name, kind)) = r.rtype.field(field) else {
        if let Some(v) = r.body.get(field) {
            return Ok(v.as_str().map_or(FVal::Text(v.to_string()), |s| FVal::Text(s.into())));
        }
        return Err(Error::bad_param(format!(
            "Invalid search query. Detailed unprocessed description follows. Search error occurred: Field '{field}' for record '{}' was not found.",
            r.rtype.name()
        )));
    };
    let Some(v) = r.body.get(name) else { return Ok(FVal::Null) };
    Ok(match kind {
        Kind::Ref(_) | Kind::TranRef => ref_id(Some(v)).map_or(FVal::Null, |i| FVal::Num(Decimal::from(i))),
        Kind::Dec | Kind::Int => v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).parse().map_or(FVal::Null, FVal::Num),
        Kind::Bool => FVal::Bool(v.as_bool().unwrap_or(false)),
        Kind::Date => FVal::Date(v.as_str().unwrap_or_default().to_string()),
        _ => FVal::Text(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
    })
}

/// A date literal, in either the US user preference (`MM/DD/YYYY`, optional time) or ISO.
fn parse_date_lit(s: &str) -> Result<(String, bool), Error> {
    let s = s.trim();
    let unparseable = || Error::bad_param(format!("Invalid search query. Unparseable date: \"{s}\""));
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok((fmt_ts(ts), true));
    }
    if let Ok(dt) = s.replace(' ', "T").parse::<jiff::civil::DateTime>() {
        return Ok((format!("{}Z", dt.strftime("%Y-%m-%dT%H:%M:%S")), true));
    }
    let (date, time) = s.split_once(' ').map_or((s, None), |(d, t)| (d, Some(t.trim())));
    let d = parse_date(date).ok_or_else(unparseable)?;
    match time {
        None => Ok((d, false)),
        Some(t) => {
            // "10:05 am" / "10:05 pm" / "13:05"
            let lower = t.to_ascii_lowercase();
            let (hm, pm) = match lower.strip_suffix("pm") {
                Some(x) => (x.trim().to_string(), Some(true)),
                None => (lower.strip_suffix("am").map_or(lower.clone(), |x| x.trim().to_string()), lower.ends_with("am").then_some(false)),
            };
            let mut it = hm.split(':');
            let mut h: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(unparseable)?;
            let m: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(unparseable)?;
            let sec: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            match pm {
                Some(true) if h < 12 => h += 12,
                Some(false) if h == 12 => h = 0,
                _ => {}
            }
            Ok((format!("{d}T{h:02}:{m:02}:{sec:02}Z"), true))
        }
    }
}

fn eval(db: &Db, r: &Record, e: &Expr) -> Result<bool, Error> {
    match e {
        Expr::And(a, b) => Ok(eval(db, r, a)? && eval(db, r, b)?),
        Expr::Or(a, b) => Ok(eval(db, r, a)? || eval(db, r, b)?),
        Expr::Cond { field, op, values } => {
            let fv = field_value(db, r, field)?;
            let (base, negate) = match op.strip_suffix("_NOT") {
                Some(b) => (b, true),
                None => (op.as_str(), false),
            };
            let v0 = values.first().map(String::as_str).unwrap_or_default();
            let dec = |s: &str| Decimal::from_str(s.trim()).map_err(|_| Error::bad_param(format!("Invalid search query: '{s}' is not a number.")));
            let res = match (base, &fv) {
                ("EMPTY", f) => matches!(f, FVal::Null) || matches!(f, FVal::Text(s) if s.is_empty()),
                (_, FVal::Null) => false,
                ("IS", FVal::Bool(b)) => *b == v0.eq_ignore_ascii_case("true"),
                ("IS", FVal::Text(s)) => s.eq_ignore_ascii_case(v0),
                ("IS" | "EQUAL", FVal::Num(n)) => *n == dec(v0)?,
                ("EQUAL", FVal::Text(s)) => s == v0,
                ("ANY_OF", FVal::Num(n)) => {
                    let mut hit = false;
                    for v in values {
                        hit |= *n == dec(v)?;
                    }
                    hit
                }
                ("ANY_OF", FVal::Text(s)) => values.iter().any(|v| v.eq_ignore_ascii_case(s)),
                ("GREATER", FVal::Num(n)) => *n > dec(v0)?,
                ("GREATER_OR_EQUAL", FVal::Num(n)) => *n >= dec(v0)?,
                ("LESS", FVal::Num(n)) => *n < dec(v0)?,
                ("LESS_OR_EQUAL", FVal::Num(n)) => *n <= dec(v0)?,
                ("BETWEEN", FVal::Num(n)) => {
                    let hi = values.get(1).map(String::as_str).unwrap_or(v0);
                    *n >= dec(v0)? && *n <= dec(hi)?
                }
                ("CONTAIN", FVal::Text(s)) => s.to_lowercase().contains(&v0.to_lowercase()),
                ("START_WITH", FVal::Text(s)) => s.to_lowercase().starts_with(&v0.to_lowercase()),
                ("END_WITH", FVal::Text(s)) => s.to_lowercase().ends_with(&v0.to_lowercase()),
                (op @ ("AFTER" | "BEFORE" | "ON" | "ON_OR_AFTER" | "ON_OR_BEFORE"), FVal::Date(d)) => {
                    let (lit, has_time) = parse_date_lit(v0)?;
                    // A date-only literal compares whole days; a literal with a time compares instants.
                    let lhs = if has_time { d.clone() } else { d.get(..10).unwrap_or(d).to_string() };
                    let lhs = if has_time && lhs.len() == 10 { format!("{lhs}T00:00:00Z") } else { lhs };
                    match op {
                        "AFTER" => lhs > lit,
                        "BEFORE" => lhs < lit,
                        "ON" => lhs == lit,
                        "ON_OR_AFTER" => lhs >= lit,
                        _ => lhs <= lit,
                    }
                }
                (op, _) => {
                    return Err(Error::bad_param(format!(
                        "Invalid search query: operator {op} is not valid for field {field}."
                    )));
                }
            };
            Ok(res != negate)
        }
    }
}

//! The record store and NetSuite's business rules: validation, defaults, totals, transforms,
//! inventory, payment application, fulfilment and deposit tracking.
//!
//! Every write goes through `write`: the new record is normalized, validated and its
//! side effects ("effects": stock moves, amounts applied to documents, quantities fulfilled,
//! payments deposited) are checked against the state *without* the record's previous effects,
//! so an edit is judged as NetSuite would judge it, and a failed write changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::model::{Fields, Kind, RType, status_short};

pub type Obj = Map<String, Value>;

/// Output-only body fields (`render` adds them); accepted and ignored on input.
const READ_ONLY_FIELDS: &[&str] = &["lastModifiedDate", "dateCreated", "createdDate", "quantityOnHand"];

#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub rtype: RType,
    /// Canonical field names; references `{"id":"n"}`, decimals as exact strings, dates `YYYY-MM-DD`.
    pub body: Obj,
    pub lines: BTreeMap<&'static str, Vec<Obj>>,
    pub created: Timestamp,
    pub modified: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
enum Effect {
    OnHand { item: u64, location: u64, delta: Decimal },
    Apply { doc: u64, amount: Decimal },
    Fulfil { so: u64, line: i64, qty: Decimal },
    Bill { so: u64 },
    Deposited { doc: u64 },
}

/// What a write changed, for the SQLite mirror and the event emitter.
#[derive(Debug, Default)]
pub struct Changes {
    /// Records whose stored or derived state changed (the written one first).
    pub touched: Vec<(RType, u64)>,
    pub deleted: Vec<(RType, u64)>,
    pub stock: BTreeSet<(u64, u64)>,
}

/// How the write was asked for; `Create` fails on a duplicate externalId, `Upsert` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Upsert,
    Update,
}

#[derive(Default)]
pub struct Db {
    pub records: HashMap<RType, BTreeMap<u64, Record>>,
    eids: HashMap<(RType, String), u64>,
    seq: HashMap<&'static str, u64>,
    tran_no: HashMap<RType, u64>,
    pub onhand: BTreeMap<(u64, u64), Decimal>,
    effects: HashMap<u64, Vec<Effect>>,
    applied_to: HashMap<u64, Decimal>,
    fulfilled: HashMap<(u64, i64), Decimal>,
    billed: HashMap<u64, u32>,
    deposited: HashMap<u64, u32>,
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

pub fn fmt_ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn dec_of(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok().or_else(|| Decimal::from_scientific(&n.to_string()).ok()),
        _ => None,
    }
}

fn dec_str(d: Decimal) -> Value {
    Value::String(d.normalize().to_string())
}

pub fn ref_id(v: Option<&Value>) -> Option<u64> {
    v?.get("id")?.as_str()?.parse().ok()
}

fn text<'a>(o: &'a Obj, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn truthy(v: Option<&Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        _ => default,
    }
}

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

impl Record {
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.body.get(k)
    }
    pub fn dec(&self, k: &str) -> Decimal {
        dec_of(self.body.get(k)).unwrap_or_default()
    }
    pub fn entity_id(&self) -> Option<u64> {
        ref_id(self.body.get("entity")).or_else(|| ref_id(self.body.get("customer")))
    }
}

impl Db {
    pub fn seeded() -> Db {
        let mut db = Db::default();
        let t = now();
        let seed = |db: &mut Db, rt: RType, id: u64, body: Value| {
            let body = body.as_object().cloned().unwrap_or_default();
            if let Some(e) = text(&body, "externalId") {
                db.eids.insert((rt, e.to_string()), id);
            }
            db.records.entry(rt).or_default().insert(
                id,
                Record { id, rtype: rt, body, lines: BTreeMap::new(), created: t, modified: t },
            );
            let s = db.seq.entry(rt.family()).or_insert(0);
            *s = (*s).max(id);
        };
        // JPY too: the flows' currency tables name it (id 5), and a yen settlement must post.
        for (id, name, sym) in [(1, "USD", "$"), (2, "CAD", "C$"), (3, "EUR", "€"), (4, "GBP", "£"), (5, "JPY", "¥")] {
            seed(&mut db, RType::Currency, id, json!({"name": name, "symbol": sym, "isBaseCurrency": id == 1, "exchangeRate": "1", "externalId": name}));
        }
        seed(&mut db, RType::Subsidiary, 1, json!({"name": "Heartsuite Sandbox Inc.", "currency": {"id": "1"}, "country": "US"}));
        for (id, name) in [(1, "Main Store"), (2, "Warehouse"), (3, "Outlet")] {
            seed(&mut db, RType::Location, id, json!({"name": name, "subsidiary": {"id": "1"}}));
        }
        let accounts = [
            (1, "1200", "Undeposited Funds", "OthCurrAsset", "undeposited-funds"),
            (2, "1000", "Operating Bank", "Bank", "operating-bank"),
            (3, "6100", "Merchant Fees", "Expense", "merchant-fees"),
            (4, "6150", "Chargebacks", "Expense", "chargebacks"),
            (5, "1250", "Clearing", "OthCurrAsset", "clearing"),
            (6, "6900", "Variance", "Expense", "variance"),
            (7, "1100", "Accounts Receivable", "AcctRec", "accounts-receivable"),
            (8, "4000", "Sales", "Income", "sales"),
            (9, "1300", "Inventory Asset", "OthCurrAsset", "inventory-asset"),
            (10, "5000", "Cost of Goods Sold", "COGS", "cogs"),
            (11, "5100", "Inventory Adjustments", "Expense", "inventory-adjustments"),
        ];
        for (id, num, name, ty, eid) in accounts {
            seed(&mut db, RType::Account, id, json!({"acctNumber": num, "acctName": name, "acctType": ty, "currency": {"id": "1"}, "subsidiary": {"id": "1"}, "externalId": eid}));
        }
        for (id, name, eid) in [(1, "Cash", "CASH"), (2, "Check", "CHECK"), (3, "Discover", "DISC"), (4, "Master Card", "MC"), (5, "VISA", "VISA"), (6, "American Express", "AMEX")] {
            seed(&mut db, RType::PaymentMethod, id, json!({"name": name, "undepFunds": true, "externalId": eid}));
        }
        // Leave room so created entities, items and transactions look like NetSuite ids.
        db.seq.insert("customer", 100);
        db.seq.insert("inventoryItem", 500);
        db.seq.insert("transaction", 1000);
        db
    }

    pub fn get(&self, rt: RType, id: u64) -> Option<&Record> {
        self.records.get(&rt)?.get(&id)
    }

    pub fn by_eid(&self, rt: RType, eid: &str) -> Option<u64> {
        self.eids.get(&(rt, eid.to_string())).copied()
    }

    /// Any transaction by id (the transaction family shares one id space).
    pub fn tran(&self, id: u64) -> Option<&Record> {
        RType::ALL.into_iter().filter(|t| t.is_transaction()).find_map(|t| self.get(t, id))
    }

    pub fn count(&self, rt: RType) -> usize {
        self.records.get(&rt).map_or(0, BTreeMap::len)
    }

    /// The display name used for refName and BUILTIN.DF.
    pub fn display(&self, rt: RType, id: u64) -> String {
        let Some(r) = self.get(rt, id) else { return id.to_string() };
        let b = &r.body;
        match rt {
            RType::Customer => text(b, "entityId").or(text(b, "companyName")).unwrap_or_default().to_string(),
            RType::InventoryItem => text(b, "itemId").unwrap_or_default().to_string(),
            RType::Account => text(b, "acctName").unwrap_or_default().to_string(),
            RType::Currency | RType::Subsidiary | RType::Location | RType::PaymentMethod => {
                text(b, "name").unwrap_or_default().to_string()
            }
            t => format!("{} #{}", t.meta().label, text(b, "tranId").unwrap_or_default()),
        }
    }

    /// Amount still open on a document that payments, credits or refunds apply to.
    pub fn remaining(&self, doc: &Record) -> Decimal {
        let applied = self.applied_to.get(&doc.id).copied().unwrap_or_default();
        match doc.rtype {
            RType::Invoice => doc.dec("total") - applied,
            RType::CreditMemo => doc.dec("total") - doc.dec("applied") - applied,
            RType::CustomerPayment => doc.dec("payment") - doc.dec("applied") - applied,
            _ => Decimal::ZERO,
        }
    }

    /// Transaction status letter, derived from the live state (as NetSuite derives it).
    pub fn status(&self, r: &Record) -> Option<String> {
        let s = match r.rtype {
            RType::SalesOrder => {
                if text(&r.body, "orderStatus") == Some("A") {
                    "A"
                } else {
                    let lines = r.lines.get("item").map(Vec::as_slice).unwrap_or_default();
                    let (mut any, mut all) = (false, true);
                    for l in lines {
                        let line = l.get("line").and_then(Value::as_i64).unwrap_or_default();
                        let done = self.fulfilled.get(&(r.id, line)).copied().unwrap_or_default();
                        any |= done > Decimal::ZERO;
                        all &= done >= dec_of(l.get("quantity")).unwrap_or_default();
                    }
                    match (any, all, self.billed.get(&r.id).copied().unwrap_or(0) > 0) {
                        (_, true, true) => "G",
                        (_, true, false) => "F",
                        (true, false, _) => "D",
                        _ => "B",
                    }
                }
            }
            RType::Invoice => if self.remaining(r) > Decimal::ZERO { "A" } else { "B" },
            RType::CreditMemo => if self.remaining(r) > Decimal::ZERO { "A" } else { "B" },
            RType::CustomerPayment | RType::CashSale => {
                if !truthy(r.get("undepFunds"), true) || self.deposited.contains_key(&r.id) { "C" } else { "B" }
            }
            RType::ItemFulfillment => return Some(text(&r.body, "shipStatus").unwrap_or("C").to_string()),
            RType::JournalEntry => "B",
            _ => return None,
        };
        Some(s.to_string())
    }

    // ---------------------------------------------------------------- normalization

    fn resolve_ref(&self, target: Option<RType>, v: &Value, field: &str, path: &str) -> Result<Value, Error> {
        let shown = match v {
            Value::Object(o) => o.get("id").or(o.get("externalId")).map(|x| x.to_string().trim_matches('"').to_string()),
            other => Some(other.to_string().trim_matches('"').to_string()),
        }
        .unwrap_or_default();
        let bad = || Error::invalid_value(&shown, field).at(path);
        let id: Option<u64> = match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.to_string().parse().ok(),
            Value::Object(o) => match (o.get("id"), o.get("externalId")) {
                (Some(Value::String(s)), _) => s.parse().ok(),
                (Some(Value::Number(n)), _) => n.to_string().parse().ok(),
                (None, Some(Value::String(e))) => match target {
                    Some(t) => self.by_eid(t, e),
                    None => RType::ALL.into_iter().filter(|t| t.is_transaction()).find_map(|t| self.by_eid(t, e)),
                },
                _ => None,
            },
            _ => None,
        };
        let id = id.ok_or_else(bad)?;
        let exists = match target {
            Some(t) => self.get(t, id).is_some(),
            None => self.tran(id).is_some(),
        };
        if !exists {
            return Err(bad());
        }
        Ok(json!({"id": id.to_string()}))
    }

    fn norm_value(&self, kind: Kind, v: &Value, field: &str, path: &str) -> Result<Value, Error> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let bad = || Error::invalid_value(v.to_string().trim_matches('"'), field).at(path);
        Ok(match kind {
            Kind::Text => match v {
                Value::String(_) => v.clone(),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                // Text-typed fields that NetSuite renders as sub-objects (addressBookAddress)
                // are kept as given.
                Value::Object(_) => v.clone(),
                _ => return Err(bad()),
            },
            Kind::Bool => match v {
                Value::Bool(_) => v.clone(),
                Value::String(s) if s == "T" || s == "true" => Value::Bool(true),
                Value::String(s) if s == "F" || s == "false" => Value::Bool(false),
                _ => return Err(bad()),
            },
            Kind::Date => {
                let s = v.as_str().ok_or_else(bad)?;
                Value::String(parse_date(s).ok_or_else(bad)?)
            }
            Kind::Dec => dec_str(dec_of(Some(v)).ok_or_else(bad)?),
            Kind::Ref(t) => self.resolve_ref(Some(t), v, field, path)?,
            Kind::TranRef => self.resolve_ref(None, v, field, path)?,
            Kind::Enum => match v {
                Value::String(_) => v.clone(),
                Value::Object(o) => o.get("id").and_then(Value::as_str).map(|s| Value::String(s.into())).ok_or_else(bad)?,
                _ => return Err(bad()),
            },
            Kind::Int => match v {
                Value::Number(n) => n.to_string().parse::<i64>().map(Value::from).map_err(|_| bad())?,
                Value::String(s) => s.parse::<i64>().map(Value::from).map_err(|_| bad())?,
                _ => return Err(bad()),
            },
        })
    }

    /// Input JSON → canonical body fields and sublists (`None` = sublist not sent).
    fn normalize(&self, rt: RType, input: &Obj, strict_names: bool) -> Result<(Obj, BTreeMap<&'static str, Vec<Obj>>), Error> {
        let mut body = Obj::new();
        let mut lines = BTreeMap::new();
        for (k, v) in input {
            if k == "links" || k == "id" || k == "refName" {
                continue;
            }
            // Server-maintained fields this simulator renders on GET. They exist on the record
            // (reference §5 lists `lastModifiedDate`), so a GET → PATCH round trip that sends
            // them back must not be refused as NONEXISTENT_FIELD; they are ignored on input.
            if READ_ONLY_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                continue;
            }
            if let Some((name, kind)) = rt.field(k) {
                body.insert(name.to_string(), self.norm_value(kind, v, name, name)?);
            } else if let Some((name, fields)) = rt.sublist(k) {
                let items = match v {
                    Value::Object(o) => o.get("items").cloned().unwrap_or(Value::Array(vec![])),
                    Value::Array(_) => v.clone(),
                    Value::Null => Value::Array(vec![]),
                    _ => return Err(Error::invalid_value(&v.to_string(), name).at(name)),
                };
                let mut out = Vec::new();
                for (i, item) in items.as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
                    let Some(item) = item.as_object() else {
                        return Err(Error::invalid_value(&item.to_string(), name).at(format!("{name}.items[{i}]")));
                    };
                    out.push(self.normalize_line(fields, item, name, i, strict_names)?);
                }
                lines.insert(name, out);
            } else if k.to_ascii_lowercase().starts_with("cust") {
                // Custom fields (custbody_*, custentity_*, custitem_*) are stored verbatim.
                body.insert(k.clone(), v.clone());
            } else if strict_names {
                return Err(Error::api(
                    axum::http::StatusCode::BAD_REQUEST,
                    "NONEXISTENT_FIELD",
                    format!("Error while accessing a resource. Invalid field name: {k}. The field does not exist on record type {}.", rt.name()),
                )
                .at(k.clone()));
            }
        }
        Ok((body, lines))
    }

    fn normalize_line(&self, fields: Fields, item: &Obj, sub: &str, i: usize, strict: bool) -> Result<Obj, Error> {
        let mut line = Obj::new();
        for (k, v) in item {
            if k == "links" || k == "refName" {
                continue;
            }
            // Deposit payment lines identify the payment by `id` in NetSuite's schema.
            let key = if k == "id" && fields.iter().any(|(n, _)| *n == "doc") { "doc" } else { k.as_str() };
            if let Some((name, kind)) = fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)) {
                let path = format!("{sub}.items[{i}].{name}");
                line.insert(name.to_string(), self.norm_value(*kind, v, name, &path)?);
            } else if k.to_ascii_lowercase().starts_with("cust") {
                line.insert(k.clone(), v.clone());
            } else if strict && k != "id" {
                return Err(Error::api(
                    axum::http::StatusCode::BAD_REQUEST,
                    "NONEXISTENT_FIELD",
                    format!("Error while accessing a resource. Invalid field name: {k}."),
                )
                .at(format!("{sub}.items[{i}].{k}")));
            }
        }
        Ok(line)
    }

    // ---------------------------------------------------------------- writes

    fn next_id(&mut self, rt: RType) -> u64 {
        let s = self.seq.entry(rt.family()).or_insert(0);
        *s += 1;
        *s
    }

    /// Create (`existing = None`) or update a record from REST input. Returns its id.
    pub fn write(&mut self, rt: RType, existing: Option<u64>, input: &Obj, mode: Mode, replace: &[String], strict: bool) -> Result<(u64, Changes), Error> {
        if rt == RType::ItemFulfillment && existing.is_none() && !input.keys().any(|k| k.eq_ignore_ascii_case("createdFrom")) {
            return Err(Error::user("An item fulfillment can only be created by transforming a sales order (POST salesOrder/{id}/!transform/itemFulfillment)."));
        }
        let (body_in, lines_in) = self.normalize(rt, input, strict)?;
        let old = existing.and_then(|id| self.get(rt, id).cloned());
        if existing.is_some() && old.is_none() {
            return Err(Error::not_found());
        }
        // Merge onto the old record: omitted fields unchanged, null clears; sublists keyed
        // by `line` update in place, other lines append, `replace=` swaps the whole sublist.
        let (mut body, mut lines) = match &old {
            Some(o) => (o.body.clone(), o.lines.clone()),
            None => (Obj::new(), BTreeMap::new()),
        };
        for (k, v) in body_in {
            if v.is_null() {
                body.remove(&k);
            } else {
                body.insert(k, v);
            }
        }
        for (name, new_lines) in lines_in {
            let replacing = old.is_none() || replace.iter().any(|r| r.eq_ignore_ascii_case(name));
            let cur = lines.entry(name).or_default();
            if replacing {
                *cur = new_lines;
                continue;
            }
            for nl in new_lines {
                let key = nl.get("line").and_then(Value::as_i64);
                match key.and_then(|k| cur.iter_mut().find(|l| l.get("line").and_then(Value::as_i64) == Some(k))) {
                    Some(l) => {
                        for (k, v) in nl {
                            if v.is_null() { l.remove(&k); } else { l.insert(k, v); }
                        }
                    }
                    None => {
                        let mut nl = nl;
                        nl.remove("line");
                        cur.push(nl);
                    }
                }
            }
        }

        // externalId uniqueness within the record type.
        let eid = text(&body, "externalId").map(str::to_string);
        if let Some(e) = &eid {
            // Reference §1: external IDs may contain letters, digits, `_` and `-`.
            if !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(Error::invalid_value(e, "externalId").at("externalId"));
            }
            if let Some(other) = self.by_eid(rt, e)
                && Some(other) != existing
            {
                let _ = mode;
                return Err(Error::api(
                    axum::http::StatusCode::BAD_REQUEST,
                    "DUP_RCRD",
                    format!("Error while accessing a resource. A {} record with this externalId ({e}) already exists.", rt.name()),
                )
                .at("externalId"));
            }
        }

        let id = existing.unwrap_or(0);
        let mut rec = Record { id, rtype: rt, body, lines, created: old.as_ref().map_or_else(now, |o| o.created), modified: now() };
        self.finalize(&mut rec)?;

        // Judge the new effects against the state without this record's old ones.
        let old_effects = if id != 0 { self.effects.remove(&id).unwrap_or_default() } else { vec![] };
        self.run_effects(&old_effects, -1);
        let new_effects = match self.effects_of(&rec) {
            Ok(e) => e,
            Err(err) => {
                self.run_effects(&old_effects, 1);
                if id != 0 { self.effects.insert(id, old_effects); }
                return Err(err);
            }
        };
        if let Err(err) = self.check_effects(&rec, &new_effects) {
            self.run_effects(&old_effects, 1);
            if id != 0 { self.effects.insert(id, old_effects); }
            return Err(err);
        }
        let id = if id == 0 { self.next_id(rt) } else { id };
        rec.id = id;
        if rt.is_transaction() && text(&rec.body, "tranId").is_none() {
            let n = self.tran_no.entry(rt).or_insert(1000);
            *n += 1;
            rec.body.insert("tranId".into(), Value::String(n.to_string()));
        }
        self.run_effects(&new_effects, 1);
        let mut changes = Changes::default();
        changes.touched.push((rt, id));
        self.note_related(&old_effects, &new_effects, &mut changes);
        self.effects.insert(id, new_effects);
        if let Some(o) = &old
            && let Some(e) = text(&o.body, "externalId")
        {
            self.eids.remove(&(rt, e.to_string()));
        }
        if let Some(e) = eid {
            self.eids.insert((rt, e), id);
        }
        self.records.entry(rt).or_default().insert(id, rec);
        Ok((id, changes))
    }

    pub fn delete(&mut self, rt: RType, id: u64) -> Result<Changes, Error> {
        if self.get(rt, id).is_none() {
            return Err(Error::not_found());
        }
        let dependent = self.applied_to.get(&id).is_some_and(|a| !a.is_zero())
            || self.fulfilled.iter().any(|((so, _), q)| *so == id && !q.is_zero())
            || self.billed.get(&id).is_some_and(|n| *n > 0)
            || self.deposited.contains_key(&id)
            || (!rt.is_transaction() && self.is_referenced(rt, id));
        if dependent {
            return Err(Error::user("This record cannot be deleted because it has dependent records."));
        }
        let effects = self.effects.remove(&id).unwrap_or_default();
        self.run_effects(&effects, -1);
        let mut changes = Changes::default();
        self.note_related(&effects, &[], &mut changes);
        if let Some(r) = self.records.get_mut(&rt).and_then(|m| m.remove(&id))
            && let Some(e) = text(&r.body, "externalId")
        {
            self.eids.remove(&(rt, e.to_string()));
        }
        changes.deleted.push((rt, id));
        Ok(changes)
    }

    fn is_referenced(&self, rt: RType, id: u64) -> bool {
        let target = json!({"id": id.to_string()});
        self.records.values().flat_map(BTreeMap::values).any(|r| {
            r.rtype.all_fields().any(|(n, k)| k == Kind::Ref(rt) && r.body.get(n) == Some(&target))
                || r.lines.iter().any(|(sub, ls)| {
                    r.rtype.sublist(sub).is_some_and(|(_, fields)| {
                        fields.iter().any(|(n, k)| *k == Kind::Ref(rt) && ls.iter().any(|l| l.get(*n) == Some(&target)))
                    })
                })
        })
    }

    fn note_related(&mut self, a: &[Effect], b: &[Effect], ch: &mut Changes) {
        let t = now();
        for e in a.iter().chain(b) {
            let id = match e {
                Effect::OnHand { item, location, .. } => {
                    ch.stock.insert((*item, *location));
                    continue;
                }
                Effect::Apply { doc, .. } | Effect::Deposited { doc } => *doc,
                Effect::Fulfil { so, .. } | Effect::Bill { so } => *so,
            };
            if let Some(rt) = self.tran(id).map(|r| r.rtype) {
                if !ch.touched.contains(&(rt, id)) {
                    ch.touched.push((rt, id));
                }
                // A payment or fulfilment changes the document's status, and NetSuite bumps
                // its lastModifiedDate, which is what pollers watch.
                if let Some(r) = self.records.get_mut(&rt).and_then(|m| m.get_mut(&id)) {
                    r.modified = t;
                }
            }
        }
    }

    fn run_effects(&mut self, effects: &[Effect], sign: i32) {
        let s = Decimal::from(sign);
        for e in effects {
            match e {
                Effect::OnHand { item, location, delta } => *self.onhand.entry((*item, *location)).or_default() += *delta * s,
                Effect::Apply { doc, amount } => *self.applied_to.entry(*doc).or_default() += *amount * s,
                Effect::Fulfil { so, line, qty } => *self.fulfilled.entry((*so, *line)).or_default() += *qty * s,
                Effect::Bill { so } => {
                    let n = self.billed.entry(*so).or_default();
                    *n = n.saturating_add_signed(sign);
                }
                Effect::Deposited { doc } => {
                    let n = self.deposited.entry(*doc).or_default();
                    *n = n.saturating_add_signed(sign);
                    if *n == 0 {
                        self.deposited.remove(doc);
                    }
                }
            }
        }
    }

    fn effects_of(&self, r: &Record) -> Result<Vec<Effect>, Error> {
        let mut out = Vec::new();
        let lines = |s: &str| r.lines.get(s).map(Vec::as_slice).unwrap_or_default();
        let body_loc = ref_id(r.get("location")).or(ref_id(r.get("adjLocation")));
        match r.rtype {
            // Item lines move stock: a cash sale, a fulfilment and a stand-alone invoice take it
            // out (an invoice billed from a sales order does not: its fulfilment did), a cash
            // refund puts it back. A line without a quantity (a discount or charge) moves none.
            RType::CashSale | RType::ItemFulfillment | RType::CashRefund | RType::Invoice => {
                let billed_order = r.rtype == RType::Invoice && ref_id(r.get("createdFrom")).is_some();
                let sign = if r.rtype == RType::CashRefund { Decimal::ONE } else { -Decimal::ONE };
                for (i, l) in lines("item").iter().enumerate().filter(|_| !billed_order) {
                    if !truthy(l.get("itemReceive"), true) {
                        continue;
                    }
                    let (Some(item), Some(qty)) = (ref_id(l.get("item")), dec_of(l.get("quantity"))) else { continue };
                    let location = ref_id(l.get("location")).or(body_loc).unwrap_or(1);
                    out.push(Effect::OnHand { item, location, delta: qty * sign });
                    if r.rtype == RType::ItemFulfillment {
                        let so = ref_id(r.get("createdFrom")).ok_or_else(|| Error::missing("Created From"))?;
                        let line = l.get("orderLine").and_then(Value::as_i64).ok_or_else(|| Error::missing("Order Line").at(format!("item.items[{i}].orderLine")))?;
                        out.push(Effect::Fulfil { so, line, qty });
                    }
                }
            }
            RType::InventoryAdjustment => {
                for l in lines("inventory") {
                    if let (Some(item), Some(location)) = (ref_id(l.get("item")), ref_id(l.get("location")).or(body_loc)) {
                        out.push(Effect::OnHand { item, location, delta: dec_of(l.get("adjustQtyBy")).unwrap_or_default() });
                    }
                }
            }
            RType::Deposit => {
                for l in lines("payment") {
                    if truthy(l.get("deposit"), true)
                        && let Some(doc) = ref_id(l.get("doc"))
                    {
                        out.push(Effect::Deposited { doc });
                    }
                }
            }
            _ => {}
        }
        if matches!(r.rtype, RType::CustomerPayment | RType::CreditMemo | RType::CustomerRefund) {
            for l in lines("apply") {
                if truthy(l.get("apply"), true)
                    && let Some(doc) = ref_id(l.get("doc"))
                {
                    out.push(Effect::Apply { doc, amount: dec_of(l.get("amount")).unwrap_or_default() });
                }
            }
        }
        if matches!(r.rtype, RType::Invoice | RType::CashSale)
            && let Some(src) = ref_id(r.get("createdFrom"))
            && self.get(RType::SalesOrder, src).is_some()
        {
            out.push(Effect::Bill { so: src });
        }
        Ok(out)
    }

    /// Business rules that depend on other records.
    fn check_effects(&self, r: &Record, effects: &[Effect]) -> Result<(), Error> {
        let entity = r.entity_id();
        let mut apply_i = 0usize;
        let mut pay_i = 0usize;
        let mut fulfil_i = 0usize;
        let mut pending: HashMap<u64, Decimal> = HashMap::new();
        for e in effects {
            match e {
                Effect::Apply { doc, amount } => {
                    let path = format!("apply.items[{apply_i}]");
                    apply_i += 1;
                    let d = self.tran(*doc).ok_or_else(|| Error::invalid_value(&doc.to_string(), "doc").at(format!("{path}.doc")))?;
                    let allowed = match r.rtype {
                        RType::CustomerPayment | RType::CreditMemo => d.rtype == RType::Invoice,
                        RType::CustomerRefund => matches!(d.rtype, RType::CreditMemo | RType::CustomerPayment),
                        _ => false,
                    };
                    if !allowed || d.entity_id() != entity {
                        return Err(Error::invalid_value(&doc.to_string(), "doc").at(format!("{path}.doc")));
                    }
                    if *amount < Decimal::ZERO {
                        return Err(Error::invalid_value(&amount.to_string(), "amount").at(format!("{path}.amount")));
                    }
                    let p = pending.entry(*doc).or_default();
                    *p += *amount;
                    let rem = self.remaining(d);
                    if *p > rem {
                        return Err(Error::user(format!(
                            "The amount applied ({}) exceeds the amount remaining ({}) on {}.",
                            p.normalize(),
                            rem.normalize(),
                            self.display(d.rtype, d.id)
                        ))
                        .at(format!("{path}.amount")));
                    }
                }
                Effect::Fulfil { so, line, qty } => {
                    let path = format!("item.items[{fulfil_i}]");
                    fulfil_i += 1;
                    let order = self.get(RType::SalesOrder, *so).ok_or_else(|| Error::invalid_value(&so.to_string(), "createdFrom").at("createdFrom"))?;
                    let ol = order
                        .lines
                        .get("item")
                        .and_then(|ls| ls.iter().find(|l| l.get("line").and_then(Value::as_i64) == Some(*line)))
                        .ok_or_else(|| Error::invalid_value(&line.to_string(), "orderLine").at(format!("{path}.orderLine")))?;
                    let ordered = dec_of(ol.get("quantity")).unwrap_or_default();
                    let done = self.fulfilled.get(&(*so, *line)).copied().unwrap_or_default();
                    if *qty <= Decimal::ZERO || done + *qty > ordered {
                        return Err(Error::user(format!(
                            "You cannot fulfill {} on order line {line}: {} remain to be fulfilled.",
                            qty.normalize(),
                            (ordered - done).normalize()
                        ))
                        .at(format!("{path}.quantity")));
                    }
                }
                Effect::Deposited { doc } => {
                    let path = format!("payment.items[{pay_i}].doc");
                    pay_i += 1;
                    let d = self.tran(*doc).ok_or_else(|| Error::invalid_value(&doc.to_string(), "doc").at(&path))?;
                    if !matches!(d.rtype, RType::CustomerPayment | RType::CashSale) || !truthy(d.get("undepFunds"), true) {
                        return Err(Error::invalid_value(&doc.to_string(), "doc").at(&path));
                    }
                    if self.deposited.contains_key(doc) {
                        return Err(Error::user(format!("{} has already been deposited.", self.display(d.rtype, d.id))).at(&path));
                    }
                }
                Effect::OnHand { .. } | Effect::Bill { .. } => {}
            }
        }
        Ok(())
    }

    /// Required fields, defaults and computed totals.
    fn finalize(&self, r: &mut Record) -> Result<(), Error> {
        // Business dates default to the UTC date (the sandbox has no user time-zone preference).
        let today = fmt_ts(now()).get(..10).unwrap_or_default().to_string();
        let rt = r.rtype;
        let b = &mut r.body;
        let has = |b: &Obj, k: &str| b.get(k).is_some_and(|v| !v.is_null() && v != "");
        match rt {
            RType::Customer => {
                let person = truthy(b.get("isPerson"), false) || (!has(b, "companyName") && has(b, "firstName") && has(b, "lastName"));
                if person {
                    let miss: Vec<&str> = [("firstName", "First Name"), ("lastName", "Last Name")]
                        .iter()
                        .filter(|(k, _)| !has(b, k))
                        .map(|(_, l)| *l)
                        .collect();
                    if !miss.is_empty() {
                        return Err(Error::missing(&miss.join(", ")));
                    }
                    b.insert("isPerson".into(), Value::Bool(true));
                } else {
                    if !has(b, "companyName") {
                        return Err(Error::missing("Company Name").at("companyName"));
                    }
                    b.insert("isPerson".into(), Value::Bool(false));
                }
                if !has(b, "subsidiary") {
                    return Err(Error::missing("Primary Subsidiary").at("subsidiary"));
                }
                if !has(b, "entityId") {
                    let name = match text(b, "companyName") {
                        Some(c) if !person => c.to_string(),
                        _ => format!("{} {}", text(b, "firstName").unwrap_or_default(), text(b, "lastName").unwrap_or_default()),
                    };
                    b.insert("entityId".into(), Value::String(name));
                }
                if !has(b, "currency") {
                    let cur = ref_id(b.get("subsidiary"))
                        .and_then(|s| self.get(RType::Subsidiary, s))
                        .and_then(|s| s.get("currency").cloned())
                        .unwrap_or(json!({"id": "1"}));
                    b.insert("currency".into(), cur);
                }
            }
            RType::InventoryItem => {
                if !has(b, "itemId") {
                    return Err(Error::missing("Item Name/Number").at("itemId"));
                }
            }
            RType::Account => {
                if !has(b, "acctName") {
                    return Err(Error::missing("Name").at("acctName"));
                }
            }
            RType::Subsidiary | RType::Location | RType::PaymentMethod | RType::Currency => {
                if !has(b, "name") {
                    return Err(Error::missing("Name").at("name"));
                }
            }
            _ => {}
        }
        if !rt.is_transaction() {
            return Ok(());
        }
        // ---- transactions
        if !has(b, "tranDate") {
            b.insert("tranDate".into(), Value::String(today));
        }
        let entity_field = match rt {
            RType::CustomerPayment | RType::CustomerRefund => Some(("customer", "Customer")),
            RType::JournalEntry | RType::Deposit | RType::InventoryAdjustment => None,
            _ => Some(("entity", "Customer")),
        };
        if let Some((f, label)) = entity_field {
            if !has(b, f) {
                return Err(Error::missing(label).at(f));
            }
            // Currency and subsidiary default from the customer, as NetSuite's form does.
            if let Some(c) = ref_id(b.get(f)).and_then(|c| self.get(RType::Customer, c)) {
                for k in ["currency", "subsidiary"] {
                    if !has(b, k)
                        && let Some(v) = c.get(k)
                    {
                        b.insert(k.into(), v.clone());
                    }
                }
            }
        }
        if !has(b, "subsidiary") {
            b.insert("subsidiary".into(), json!({"id": "1"}));
        }
        if !has(b, "currency") {
            b.insert("currency".into(), json!({"id": "1"}));
        }
        if matches!(rt, RType::CashSale | RType::CustomerPayment) && !has(b, "account") {
            // Without an account, NetSuite posts to Undeposited Funds.
            b.insert("undepFunds".into(), Value::Bool(true));
            b.insert("account".into(), json!({"id": "1"}));
        } else if matches!(rt, RType::CashSale | RType::CustomerPayment) {
            let undep = ref_id(b.get("account")) == Some(1);
            b.insert("undepFunds".into(), Value::Bool(undep));
        }
        if matches!(rt, RType::CashRefund | RType::CustomerRefund) && !has(b, "account") {
            b.insert("account".into(), json!({"id": "2"}));
        }

        let needs_lines = |r: &Record, sub: &str| -> Result<(), Error> {
            if r.lines.get(sub).is_none_or(Vec::is_empty) {
                return Err(Error::user("You must enter at least one line item for this transaction.").at(sub));
            }
            Ok(())
        };
        number_lines(r);
        match rt {
            RType::SalesOrder | RType::Invoice | RType::CashSale | RType::CashRefund | RType::CreditMemo => {
                needs_lines(r, "item")?;
                let mut subtotal = Decimal::ZERO;
                for (i, l) in r.lines.get_mut("item").into_iter().flatten().enumerate() {
                    let p = |f: &str| format!("item.items[{i}].{f}");
                    let Some(item) = ref_id(l.get("item")) else { return Err(Error::missing("Item").at(p("item"))) };
                    let (rate, amount) = match (dec_of(l.get("quantity")), dec_of(l.get("rate")), dec_of(l.get("amount"))) {
                        (Some(qty), Some(r), _) => (r, money(qty * r)),
                        (Some(qty), None, Some(a)) if !qty.is_zero() => (a / qty, money(a)),
                        (Some(qty), None, _) => {
                            let r = self.get(RType::InventoryItem, item).map(|it| it.dec("basePrice")).unwrap_or_default();
                            (r, money(qty * r))
                        }
                        // A discount or charge line (a tax collected by the POS): an amount and
                        // no quantity, as NetSuite takes discount and other-charge items.
                        (None, _, Some(a)) => (money(a), money(a)),
                        (None, _, None) => return Err(Error::missing("Quantity").at(p("quantity"))),
                    };
                    l.insert("rate".into(), dec_str(rate));
                    l.insert("amount".into(), dec_str(amount));
                    subtotal += amount;
                }
                let ship = r.dec("shippingCost");
                r.body.insert("subtotal".into(), dec_str(subtotal));
                r.body.insert("total".into(), dec_str(subtotal + ship));
                if rt == RType::CreditMemo {
                    self.default_apply(r, subtotal + ship)?;
                }
            }
            RType::ItemFulfillment => {
                needs_lines(r, "item")?;
                for (i, l) in r.lines.get("item").into_iter().flatten().enumerate() {
                    if ref_id(l.get("item")).is_none() {
                        return Err(Error::missing("Item").at(format!("item.items[{i}].item")));
                    }
                    if dec_of(l.get("quantity")).is_none() {
                        return Err(Error::missing("Quantity").at(format!("item.items[{i}].quantity")));
                    }
                }
                if !has(&r.body, "shipStatus") {
                    r.body.insert("shipStatus".into(), Value::String("C".into()));
                }
            }
            RType::CustomerPayment => {
                let cap = dec_of(r.get("payment"));
                let applied = self.default_apply(r, cap.unwrap_or(Decimal::MAX))?;
                let payment = cap.unwrap_or(applied);
                if payment <= Decimal::ZERO {
                    return Err(Error::missing("Payment Amount").at("payment"));
                }
                r.body.insert("payment".into(), dec_str(payment));
                r.body.insert("unapplied".into(), dec_str(payment - applied));
            }
            RType::CustomerRefund => {
                let applied = self.default_apply(r, dec_of(r.get("total")).unwrap_or(Decimal::MAX))?;
                let total = dec_of(r.get("total")).unwrap_or(applied);
                if total <= Decimal::ZERO {
                    return Err(Error::missing("Amount").at("total"));
                }
                r.body.insert("total".into(), dec_str(total));
            }
            RType::JournalEntry => {
                needs_lines(r, "line")?;
                let (mut dr, mut cr) = (Decimal::ZERO, Decimal::ZERO);
                for (i, l) in r.lines.get("line").into_iter().flatten().enumerate() {
                    if ref_id(l.get("account")).is_none() {
                        return Err(Error::missing("Account").at(format!("line.items[{i}].account")));
                    }
                    let (d, c) = (dec_of(l.get("debit")), dec_of(l.get("credit")));
                    match (d, c) {
                        (Some(d), None) if d >= Decimal::ZERO => dr += d,
                        (None, Some(c)) if c >= Decimal::ZERO => cr += c,
                        _ => return Err(Error::user("Each journal line needs exactly one of Debit or Credit, not negative.").at(format!("line.items[{i}]"))),
                    }
                }
                if dr != cr {
                    return Err(Error::user(format!(
                        "Transaction is not in balance: debits {} and credits {} must be equal.",
                        dr.normalize(),
                        cr.normalize()
                    ))
                    .at("line"));
                }
                r.body.insert("approved".into(), Value::Bool(true));
            }
            RType::Deposit => {
                if !has(&r.body, "account") {
                    return Err(Error::missing("Account").at("account"));
                }
                let mut total = Decimal::ZERO;
                for (i, l) in r.lines.get_mut("payment").into_iter().flatten().enumerate() {
                    let Some(doc) = ref_id(l.get("doc")) else { return Err(Error::missing("Payment").at(format!("payment.items[{i}].doc"))) };
                    let amt = match dec_of(l.get("paymentAmount")) {
                        Some(a) => a,
                        None => self.tran(doc).map(|d| if d.rtype == RType::CashSale { d.dec("total") } else { d.dec("payment") }).unwrap_or_default(),
                    };
                    l.insert("paymentAmount".into(), dec_str(amt));
                    if truthy(l.get("deposit"), true) {
                        total += amt;
                    }
                }
                for (sub, sign) in [("other", Decimal::ONE), ("cashBack", Decimal::NEGATIVE_ONE)] {
                    for (i, l) in r.lines.get(sub).into_iter().flatten().enumerate() {
                        if ref_id(l.get("account")).is_none() {
                            return Err(Error::missing("Account").at(format!("{sub}.items[{i}].account")));
                        }
                        let Some(a) = dec_of(l.get("amount")) else { return Err(Error::missing("Amount").at(format!("{sub}.items[{i}].amount"))) };
                        total += a * sign;
                    }
                }
                if r.lines.values().all(Vec::is_empty) {
                    return Err(Error::user("You must enter at least one line item for this transaction."));
                }
                r.body.insert("total".into(), dec_str(total));
            }
            RType::InventoryAdjustment => {
                if !has(&r.body, "account") {
                    return Err(Error::missing("Adjustment Account").at("account"));
                }
                needs_lines(r, "inventory")?;
                let adj = ref_id(r.get("adjLocation"));
                for (i, l) in r.lines.get("inventory").into_iter().flatten().enumerate() {
                    if ref_id(l.get("item")).is_none() {
                        return Err(Error::missing("Item").at(format!("inventory.items[{i}].item")));
                    }
                    if dec_of(l.get("adjustQtyBy")).is_none() {
                        return Err(Error::missing("Adjust Qty. By").at(format!("inventory.items[{i}].adjustQtyBy")));
                    }
                    if ref_id(l.get("location")).or(adj).is_none() {
                        return Err(Error::missing("Location").at(format!("inventory.items[{i}].location")));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Fill apply-line amounts left blank (the open amount, capped by what is left of `cap`)
    /// and store the applied total. Returns the sum applied.
    fn default_apply(&self, r: &mut Record, cap: Decimal) -> Result<Decimal, Error> {
        let own = self.effects.get(&r.id).cloned().unwrap_or_default();
        let mut left = cap;
        let mut applied = Decimal::ZERO;
        for (i, l) in r.lines.get_mut("apply").into_iter().flatten().enumerate() {
            if !truthy(l.get("apply"), true) {
                continue;
            }
            let Some(doc) = ref_id(l.get("doc")) else { return Err(Error::missing("Document").at(format!("apply.items[{i}].doc"))) };
            let amount = match dec_of(l.get("amount")) {
                Some(a) => a,
                None => {
                    // The doc's open amount, as if this record's earlier application were undone.
                    let mine: Decimal = own.iter().filter_map(|e| match e { Effect::Apply { doc: d, amount } if *d == doc => Some(*amount), _ => None }).sum();
                    let open = self.tran(doc).map(|d| self.remaining(d) + mine).unwrap_or_default();
                    open.min(left).max(Decimal::ZERO)
                }
            };
            l.insert("amount".into(), dec_str(amount));
            l.insert("apply".into(), Value::Bool(true));
            left -= amount;
            applied += amount;
        }
        if applied > cap {
            return Err(Error::user(format!(
                "The total applied ({}) exceeds the amount of this transaction ({}).",
                applied.normalize(),
                cap.normalize()
            ))
            .at("apply"));
        }
        r.body.insert("applied".into(), dec_str(applied));
        Ok(applied)
    }

    // ---------------------------------------------------------------- transforms

    /// Build the target's input from the source record, then let `body` override it.
    pub fn transform_input(&self, src_t: RType, src_id: u64, target: RType, body: &Obj) -> Result<Obj, Error> {
        let src = self.get(src_t, src_id).ok_or_else(Error::not_found)?;
        let mut out = Obj::new();
        let copy = |out: &mut Obj, keys: &[&str]| {
            for k in keys {
                if let Some(v) = src.body.get(*k) {
                    out.insert((*k).to_string(), v.clone());
                }
            }
        };
        let src_lines = src.lines.get("item").cloned().unwrap_or_default();
        let body_lines: Option<Vec<Obj>> = body
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("item"))
            .and_then(|(_, v)| v.get("items").and_then(Value::as_array).cloned())
            .map(|a| a.into_iter().filter_map(|v| v.as_object().cloned()).collect());
        out.insert("createdFrom".into(), json!({"id": src_id.to_string()}));
        match (src_t, target) {
            (RType::SalesOrder, RType::ItemFulfillment) => {
                copy(&mut out, &["entity", "subsidiary", "currency"]);
                let mut lines = Vec::new();
                let remaining = |l: &Obj| {
                    let n = l.get("line").and_then(Value::as_i64).unwrap_or_default();
                    dec_of(l.get("quantity")).unwrap_or_default() - self.fulfilled.get(&(src_id, n)).copied().unwrap_or_default()
                };
                let line_json = |l: &Obj, qty: Decimal, loc: Option<&Value>| {
                    json!({
                        "item": l.get("item").cloned().unwrap_or(Value::Null),
                        "quantity": dec_str(qty),
                        "orderLine": l.get("line").cloned().unwrap_or(Value::Null),
                        "location": loc.or(l.get("location")).or(src.body.get("location")).cloned().unwrap_or(json!({"id": "1"})),
                        "itemReceive": true,
                    })
                };
                match &body_lines {
                    Some(bl) => {
                        for (i, b) in bl.iter().enumerate() {
                            if !truthy(b.get("itemReceive"), true) {
                                continue;
                            }
                            let ol = b.get("orderLine").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
                            let l = src_lines
                                .iter()
                                .find(|l| l.get("line").and_then(Value::as_i64) == ol && ol.is_some())
                                .ok_or_else(|| Error::invalid_value(&b.get("orderLine").map(Value::to_string).unwrap_or_default(), "orderLine").at(format!("item.items[{i}].orderLine")))?;
                            let qty = dec_of(b.get("quantity")).unwrap_or_else(|| remaining(l));
                            lines.push(line_json(l, qty, b.get("location")));
                        }
                    }
                    None => {
                        for l in &src_lines {
                            let q = remaining(l);
                            if q > Decimal::ZERO && !truthy(l.get("isClosed"), false) {
                                lines.push(line_json(l, q, None));
                            }
                        }
                    }
                }
                if lines.is_empty() {
                    return Err(Error::user("You must enter at least one line item for this transaction. The sales order has nothing left to fulfill."));
                }
                out.insert("item".into(), json!({"items": lines}));
            }
            (RType::SalesOrder | RType::Invoice | RType::CashSale, RType::Invoice | RType::CashSale | RType::CreditMemo | RType::CashRefund)
                if matches!((src_t, target), (RType::SalesOrder, RType::Invoice | RType::CashSale) | (RType::Invoice, RType::CreditMemo) | (RType::CashSale, RType::CashRefund)) =>
            {
                copy(&mut out, &["entity", "subsidiary", "currency", "location", "otherRefNum"]);
                if target != RType::CreditMemo && target != RType::CashRefund {
                    copy(&mut out, &["shippingCost"]);
                }
                if matches!(target, RType::CashRefund) {
                    copy(&mut out, &["paymentMethod", "paymentOption"]);
                }
                let pick = |l: &Obj, qty: Option<Decimal>| {
                    let mut o = Obj::new();
                    for k in ["item", "quantity", "rate", "description", "location"] {
                        if let Some(v) = l.get(k) {
                            o.insert(k.into(), v.clone());
                        }
                    }
                    if let Some(q) = qty {
                        o.insert("quantity".into(), dec_str(q));
                    }
                    Value::Object(o)
                };
                let lines: Vec<Value> = match &body_lines {
                    // Lines naming an orderLine bill that source line (with their quantity);
                    // other body lines are new lines.
                    Some(bl) => bl
                        .iter()
                        .map(|b| {
                            let ol = b.get("orderLine").and_then(Value::as_i64);
                            match src_lines.iter().find(|l| ol.is_some() && l.get("line").and_then(Value::as_i64) == ol) {
                                Some(l) => pick(l, dec_of(b.get("quantity"))),
                                None => Value::Object(b.clone()),
                            }
                        })
                        .collect(),
                    None => src_lines.iter().map(|l| pick(l, None)).collect(),
                };
                out.insert("item".into(), json!({"items": lines}));
                if target == RType::CreditMemo {
                    out.insert("apply".into(), json!({"items": [{"doc": {"id": src_id.to_string()}, "apply": true}]}));
                }
            }
            (RType::Invoice, RType::CustomerPayment) | (RType::CreditMemo | RType::CustomerPayment, RType::CustomerRefund) => {
                let who = src.body.get("entity").or(src.body.get("customer")).cloned().unwrap_or(Value::Null);
                out.insert("customer".into(), who);
                copy(&mut out, &["subsidiary", "currency"]);
                out.insert("apply".into(), json!({"items": [{"doc": {"id": src_id.to_string()}, "apply": true}]}));
                if self.remaining(src) <= Decimal::ZERO {
                    return Err(Error::user(format!("{} has no amount remaining.", self.display(src_t, src_id))));
                }
            }
            _ => {
                return Err(Error::bad_param(format!(
                    "The transformation from {} to {} is not supported.",
                    src_t.name(),
                    target.name()
                )));
            }
        }
        for (k, v) in body {
            if k.eq_ignore_ascii_case("item") && body_lines.is_some() {
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
        Ok(out)
    }
}

fn number_lines(r: &mut Record) {
    for ls in r.lines.values_mut() {
        let mut next = ls.iter().filter_map(|l| l.get("line").and_then(Value::as_i64)).max().unwrap_or(0);
        for l in ls.iter_mut() {
            if l.get("line").and_then(Value::as_i64).is_none() {
                next += 1;
                l.insert("line".into(), Value::from(next));
            }
        }
    }
}

/// Accepts `YYYY-MM-DD`, `M/D/YYYY`, or an ISO datetime (date part kept).
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(d) = s.get(..10).unwrap_or(s).parse::<jiff::civil::Date>() {
        return Some(d.to_string());
    }
    let mut it = s.split('/');
    let (m, d, y) = (it.next()?.parse::<i8>().ok()?, it.next()?.parse::<i8>().ok()?, it.next()?.get(..4)?.parse::<i16>().ok()?);
    jiff::civil::Date::new(y, m, d).ok().map(|d| d.to_string())
}

pub fn status_ref(code: &str, s: &str) -> Value {
    json!({"id": s, "refName": status_short(code, s).unwrap_or(s)})
}

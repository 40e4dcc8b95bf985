//! Heartland Retail under `/api` (reference §5): items, inventory values and adjustment sets,
//! customers and addresses, sales tickets with lines and payments, payments, locations,
//! webhooks. Collections page with `page`/`per_page` into `{results, total, pages}` and filter
//! with `_filter` JSON (`$eq $ne $gt $gte $lt $lte $in`, plus `$and`/`$or`). Money is a JSON
//! decimal number; boolean names end in `?`; POST answers 201 with a `Location` header.

use std::cmp::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::gpapi::query_pairs;
use crate::state::{Hook, Retail, Sandbox, State as St, dec_json, json_dec};

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/api/items", get(list_items).post(create_item))
        .route("/api/items/{id}", get(get_item).put(update_item))
        .route("/api/inventory/values", get(inventory_values))
        .route(
            "/api/inventory/adjustment_sets",
            get(list_adjustment_sets).post(create_adjustment_set),
        )
        .route(
            "/api/inventory/adjustment_sets/{id}",
            get(get_adjustment_set).put(update_adjustment_set),
        )
        .route(
            "/api/inventory/adjustment_sets/{id}/lines",
            get(list_adjustment_lines).post(create_adjustment_line),
        )
        .route(
            "/api/reason_codes/inventory_adjustment_reasons",
            get(list_adjustment_reasons).post(create_adjustment_reason),
        )
        .route("/api/customers", get(list_customers).post(create_customer))
        .route(
            "/api/customers/{id}",
            get(get_customer).put(update_customer),
        )
        .route(
            "/api/customers/{id}/addresses",
            get(list_addresses).post(create_address),
        )
        .route("/api/sales/tickets", get(list_tickets).post(create_ticket))
        .route(
            "/api/sales/tickets/{id}",
            get(get_ticket).put(update_ticket),
        )
        .route(
            "/api/sales/tickets/{id}/lines",
            get(list_lines).post(create_line),
        )
        .route(
            "/api/sales/tickets/{id}/payments",
            get(list_ticket_payments).post(create_payment),
        )
        .route("/api/payments", get(list_payments))
        .route("/api/locations", get(list_locations).post(create_location))
        .route("/api/locations/{id}", get(get_location))
        .route("/api/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/api/webhooks/{id}",
            get(get_webhook).delete(delete_webhook),
        )
        .fallback(|| async { error_response(&not_found("resource")) })
}

// ---------------------------------------------------------------- wire helpers

pub(crate) fn error_response(e: &Error) -> Response {
    let (status, body) = match e {
        Error::Retail {
            status,
            error,
            message,
        } => (*status, json!({"error": error, "message": message})),
        Error::Invalid(m) => (400, json!({"error": "invalid_request", "message": m})),
        other => (
            500,
            json!({"error": "internal_error", "message": other.to_string()}),
        ),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn reply(r: Result<Value, Error>) -> Response {
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => error_response(&e),
    }
}

fn created(r: Result<(String, Value), Error>) -> Response {
    match r {
        Ok((location, v)) => {
            let mut resp = (StatusCode::CREATED, axum::Json(v)).into_response();
            if let Ok(h) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, h);
            }
            resp
        }
        Err(e) => error_response(&e),
    }
}

fn not_found(what: &str) -> Error {
    Error::retail(404, "not_found", format!("{what} not found"))
}

fn invalid(m: impl Into<String>) -> Error {
    Error::retail(400, "invalid_request", m)
}

fn unprocessable(m: impl Into<String>) -> Error {
    Error::retail(422, "validation_failed", m)
}

fn body_obj(b: &Bytes) -> Result<Map<String, Value>, Error> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("request body must be a JSON object")),
        Err(e) => Err(invalid(format!("request body is not valid JSON: {e}"))),
    }
}

fn id_param(s: &str) -> Result<i64, Error> {
    s.parse().map_err(|_| not_found(&format!("id {s}")))
}

pub(crate) fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Sandbox {
    fn retail_auth(&self, h: &HeaderMap) -> Result<(), Error> {
        let ok = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(s, t)| {
                s.eq_ignore_ascii_case("bearer") && t.trim() == self.inner.cfg.retail_token
            });
        if ok {
            Ok(())
        } else {
            Err(Error::retail(
                401,
                "unauthorized",
                "invalid or missing API token",
            ))
        }
    }
}

// ---------------------------------------------------------------- collections: paging, filter, sort

/// Comparison the way `_filter` needs it: numbers (and numeric strings against numbers) exactly
/// as decimals, strings lexically (ISO timestamps sort correctly), booleans for equality.
fn cmp_vals(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => Some(json_dec(a)?.cmp(&json_dec(b)?)),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn field<'a>(obj: &'a Map<String, Value>, path: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return &NULL;
    };
    let mut cur = obj.get(first).unwrap_or(&NULL);
    for p in parts {
        cur = cur.get(p).unwrap_or(&NULL);
    }
    cur
}

fn matches(obj: &Map<String, Value>, f: &Value) -> Result<bool, Error> {
    let Value::Object(f) = f else {
        return Err(invalid("_filter must be a JSON object"));
    };
    for (k, cond) in f {
        let ok = match k.as_str() {
            "$and" | "$or" => {
                let arr = cond
                    .as_array()
                    .ok_or_else(|| invalid(format!("{k} expects an array")))?;
                let mut rs = arr.iter().map(|c| matches(obj, c));
                if k == "$and" {
                    rs.try_fold(true, |acc, r| r.map(|r| acc && r))?
                } else {
                    rs.try_fold(false, |acc, r| r.map(|r| acc || r))?
                }
            }
            _ => {
                let v = field(obj, k);
                match cond {
                    Value::Object(ops) if ops.keys().all(|o| o.starts_with('$')) => {
                        let mut all = true;
                        for (op, arg) in ops {
                            let c = cmp_vals(v, arg);
                            all &= match op.as_str() {
                                "$eq" => c == Some(Ordering::Equal),
                                "$ne" => c != Some(Ordering::Equal),
                                "$gt" => c == Some(Ordering::Greater),
                                "$gte" => matches!(c, Some(Ordering::Greater | Ordering::Equal)),
                                "$lt" => c == Some(Ordering::Less),
                                "$lte" => matches!(c, Some(Ordering::Less | Ordering::Equal)),
                                "$in" => arg
                                    .as_array()
                                    .ok_or_else(|| invalid("$in expects an array"))?
                                    .iter()
                                    .any(|a| cmp_vals(v, a) == Some(Ordering::Equal)),
                                "$nin" => !arg
                                    .as_array()
                                    .ok_or_else(|| invalid("$nin expects an array"))?
                                    .iter()
                                    .any(|a| cmp_vals(v, a) == Some(Ordering::Equal)),
                                other => {
                                    return Err(invalid(format!(
                                        "unsupported filter operator {other}"
                                    )));
                                }
                            };
                        }
                        all
                    }
                    other => cmp_vals(v, other) == Some(Ordering::Equal),
                }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

struct ListQuery {
    filters: Vec<Value>,
    page: usize,
    per_page: Option<usize>,
    sort: Vec<(String, bool)>,
    pairs: Vec<(String, String)>,
}

fn list_query(raw: Option<&str>, unfilterable: &[&str]) -> Result<ListQuery, Error> {
    let pairs = query_pairs(raw);
    let mut filters = Vec::new();
    let mut page = 1usize;
    let mut per_page = Some(20usize);
    let mut sort = Vec::new();
    for (k, v) in &pairs {
        match k.as_str() {
            "_filter" | "_filter[]" => {
                let f: Value = serde_json::from_str(v)
                    .map_err(|e| invalid(format!("_filter is not valid JSON: {e}")))?;
                filters.push(f);
            }
            "page" => {
                page = v
                    .parse()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| invalid("page must be a positive integer"))?
            }
            "per_page" if v == "all" => per_page = None,
            "per_page" => {
                per_page = Some(
                    v.parse()
                        .ok()
                        .filter(|p| (1..=1000).contains(p))
                        .ok_or_else(|| invalid("per_page must be 1..1000 or all"))?,
                )
            }
            "sort[]" | "sort" => {
                let (f, dir) = v.split_once(',').unwrap_or((v.as_str(), "asc"));
                sort.push((f.to_string(), dir.eq_ignore_ascii_case("desc")));
            }
            // Bracket form: `_filter[type][$eq]=Return` or `_filter[type]=Return`.
            k if k.starts_with("_filter[") => {
                let inner = &k["_filter".len()..];
                let parts: Vec<&str> = inner
                    .trim_matches(|c| c == '[' || c == ']')
                    .split("][")
                    .collect();
                let val =
                    serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone()));
                let f = match parts.as_slice() {
                    [fld] => json!({ *fld: val }),
                    [fld, op] => json!({ *fld: { *op: val } }),
                    _ => return Err(invalid(format!("unsupported filter parameter {k}"))),
                };
                filters.push(f);
            }
            _ => {}
        }
    }
    for f in &filters {
        if let Some(bad) = f
            .as_object()
            .and_then(|o| o.keys().find(|k| unfilterable.contains(&k.as_str())))
        {
            return Err(invalid(format!("{bad} is not filterable")));
        }
    }
    Ok(ListQuery {
        filters,
        page,
        per_page,
        sort,
        pairs,
    })
}

fn collection<'a>(
    items: impl Iterator<Item = &'a Map<String, Value>>,
    lq: &ListQuery,
) -> Result<Value, Error> {
    let mut hits = Vec::new();
    for it in items {
        let mut ok = true;
        for f in &lq.filters {
            ok &= matches(it, f)?;
        }
        if ok {
            hits.push(it);
        }
    }
    for (f, desc) in lq.sort.iter().rev() {
        hits.sort_by(|a, b| {
            let o = cmp_vals(field(a, f), field(b, f)).unwrap_or(Ordering::Equal);
            if *desc { o.reverse() } else { o }
        });
    }
    let total = hits.len();
    let (results, pages): (Vec<Value>, usize) = match lq.per_page {
        None => (
            hits.into_iter().map(|m| Value::Object(m.clone())).collect(),
            usize::from(total > 0),
        ),
        Some(pp) => (
            hits.into_iter()
                .skip((lq.page - 1).saturating_mul(pp))
                .take(pp)
                .map(|m| Value::Object(m.clone()))
                .collect(),
            total.div_ceil(pp),
        ),
    };
    Ok(json!({"results": results, "total": total, "pages": pages}))
}

fn touch(m: &mut Map<String, Value>, at: Timestamp, creating: bool) {
    if creating {
        m.insert("created_at".into(), json!(ts(at)));
    }
    m.insert("updated_at".into(), json!(ts(at)));
}

/// Money / quantity fields arrive as numbers or strings; store them as exact JSON decimals.
fn normalize_decimals(m: &mut Map<String, Value>, keys: &[&str]) -> Result<(), Error> {
    for k in keys {
        if let Some(v) = m.get(*k) {
            if v.is_null() {
                continue;
            }
            // Bounded so line values and ticket totals cannot overflow a Decimal.
            let d = json_dec(v)
                .filter(|d| d.abs() <= Decimal::from(1_000_000_000))
                .ok_or_else(|| {
                    unprocessable(format!("{k} must be a decimal number of at most 1e9"))
                })?;
            m.insert((*k).to_string(), dec_json(d));
        }
    }
    Ok(())
}

const READ_ONLY: &[&str] = &["id", "created_at", "updated_at"];

fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>, also_read_only: &[&str]) {
    for (k, v) in src {
        if !READ_ONLY.contains(&k.as_str()) && !also_read_only.contains(&k.as_str()) {
            dst.insert(k, v);
        }
    }
}

// ---------------------------------------------------------------- items

async fn list_items(State(sb): State<Sandbox>, h: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        collection(
            sb.lock().retail.all("items"),
            &list_query(raw.as_deref(), &[])?,
        )
    }))
}

async fn get_item(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| get_one(&sb, "items", &id)))
}

fn get_one(sb: &Sandbox, coll: &'static str, id: &str) -> Result<Value, Error> {
    let id = id_param(id)?;
    sb.lock()
        .retail
        .get(coll, id)
        .map(|m| Value::Object(m.clone()))
        .ok_or_else(|| not_found(&format!("{coll} {id}")))
}

async fn create_item(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let id = sb.create_item_locked(&mut st, b, Timestamp::now())?;
        Ok((
            format!("/api/items/{id}"),
            Value::Object(st.retail.get("items", id).cloned().unwrap_or_default()),
        ))
    })())
}

async fn update_item(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let id = id_param(&id)?;
        let mut b = body_obj(&body)?;
        normalize_decimals(&mut b, &["price", "cost"])?;
        let mut st = sb.lock();
        let item = st
            .retail
            .coll("items")
            .get_mut(&id)
            .ok_or_else(|| not_found(&format!("item {id}")))?;
        merge(item, b, &[]);
        touch(item, Timestamp::now(), false);
        let v = Value::Object(item.clone());
        sb.emit_retail(&mut st, "item_updated", &v);
        Ok(v)
    })())
}

impl Sandbox {
    pub(crate) fn create_item_locked(
        &self,
        st: &mut St,
        mut b: Map<String, Value>,
        at: Timestamp,
    ) -> Result<i64, Error> {
        if b.get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(unprocessable("description is required"));
        }
        normalize_decimals(&mut b, &["price", "cost"])?;
        // The item number identifies an item in the POS; Retail refuses a second one.
        if let Some(sku) = b.get("public_id").filter(|v| !v.is_null())
            && st
                .retail
                .all("items")
                .any(|m| m.get("public_id") == Some(sku))
        {
            return Err(unprocessable(format!(
                "public_id {sku} has already been taken"
            )));
        }
        let id = st.retail.next_id("items");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("public_id".into(), json!(format!("SKU-{id}")));
        m.insert("description".into(), Value::Null);
        m.insert("price".into(), json!(0));
        m.insert("cost".into(), json!(0));
        m.insert("active?".into(), json!(true));
        m.insert("track_inventory?".into(), json!(true));
        m.insert("primary_vendor_id".into(), Value::Null);
        m.insert("custom".into(), json!({}));
        merge(&mut m, b, &[]);
        touch(&mut m, at, true);
        let v = Value::Object(m.clone());
        st.retail.coll("items").insert(id, m);
        self.emit_retail(st, "item_created", &v);
        Ok(id)
    }

    /// Sets the on-hand quantity of an item at a location.
    pub fn set_inventory(&self, item_id: i64, location_id: i64, qty: Decimal) {
        self.lock()
            .retail
            .inventory
            .insert((item_id, location_id), qty);
    }

    /// Adds `delta` (negative to remove) to an item's quantity at a location; returns the new qty.
    pub fn adjust_inventory(&self, item_id: i64, location_id: i64, delta: Decimal) -> Decimal {
        let mut st = self.lock();
        let q = st
            .retail
            .inventory
            .entry((item_id, location_id))
            .or_default();
        *q += delta;
        *q
    }

    /// Quantity on hand (zero when never set).
    pub fn inventory_qty(&self, item_id: i64, location_id: i64) -> Decimal {
        self.lock()
            .retail
            .inventory
            .get(&(item_id, location_id))
            .copied()
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------- inventory

async fn inventory_values(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let lq = list_query(raw.as_deref(), &[])?;
        let wanted = |key: &str| -> Result<Option<Vec<i64>>, Error> {
            let vals: Vec<&str> = lq
                .pairs
                .iter()
                .filter(|(k, v)| (k == key || k == &format!("{key}[]")) && !v.is_empty())
                .flat_map(|(_, v)| v.split(','))
                .collect();
            if vals.is_empty() {
                return Ok(None);
            }
            vals.iter()
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| invalid(format!("{key} must be an integer")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        let items_f = wanted("item_id")?;
        let locs_f = wanted("location_id")?;
        let exclude_empty = lq
            .pairs
            .iter()
            .any(|(k, v)| k == "exclude_empty_locations" && v == "true");
        let include_item = lq
            .pairs
            .iter()
            .any(|(k, v)| (k == "_include[]" || k == "embed[]") && v == "item");
        let st = sb.lock();
        let rows: Vec<Map<String, Value>> = st
            .retail
            .inventory
            .iter()
            .filter(|((i, l), q)| {
                items_f.as_ref().is_none_or(|f| f.contains(i))
                    && locs_f.as_ref().is_none_or(|f| f.contains(l))
                    && !(exclude_empty && q.is_zero())
            })
            .map(|((i, l), q)| {
                let item = st.retail.get("items", *i);
                let unit_cost = item
                    .map(|m| m.get("cost").cloned().unwrap_or(json!(0)))
                    .unwrap_or(json!(0));
                let mut row = Map::new();
                row.insert("item_id".into(), json!(i));
                row.insert("location_id".into(), json!(l));
                for k in ["qty", "qty_on_hand", "qty_available"] {
                    row.insert(k.into(), dec_json(*q));
                }
                for k in ["qty_committed", "qty_on_po", "qty_in_transit"] {
                    row.insert(k.into(), json!(0));
                }
                row.insert("unit_cost".into(), unit_cost);
                if include_item {
                    row.insert(
                        "item".into(),
                        item.map(|m| Value::Object(m.clone()))
                            .unwrap_or(Value::Null),
                    );
                }
                row
            })
            .collect();
        collection(rows.iter(), &lq)
    })())
}

// ---------------------------------------------------------------- inventory adjustments

// Heartland Retail changes stock through adjustment sets (not in reference §5; seen in
// third-party Retail clients): POST a set for one location and reason, POST its lines
// (`item_id`, signed `qty` delta, `unit_cost`), then PUT `{status: "complete"}`, which moves
// the stock once. Reasons live under `/reason_codes/inventory_adjustment_reasons`.

const DEFAULT_REASONS: &[&str] = &["Physical Count", "Damaged", "Correction"];

impl Retail {
    /// Accounts come with a few adjustment reasons; created on first use so ids are stable.
    fn ensure_reasons(&mut self, at: Timestamp) {
        if self
            .colls
            .get("adjustment_reasons")
            .is_some_and(|c| !c.is_empty())
        {
            return;
        }
        for name in DEFAULT_REASONS {
            let id = self.next_id("adjustment_reasons");
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m.insert("name".into(), json!(name));
            m.insert("description".into(), json!(name));
            m.insert("active?".into(), json!(true));
            touch(&mut m, at, true);
            self.coll("adjustment_reasons").insert(id, m);
        }
    }
}

/// A top-level collection, filtered and paged.
fn list_coll(sb: &Sandbox, h: &HeaderMap, raw: Option<&str>, coll: &'static str) -> Response {
    reply(
        sb.retail_auth(h)
            .and_then(|_| collection(sb.lock().retail.all(coll), &list_query(raw, &[])?)),
    )
}

async fn list_adjustment_reasons(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if sb.retail_auth(&h).is_ok() {
        sb.lock().retail.ensure_reasons(Timestamp::now());
    }
    list_coll(&sb, &h, raw.as_deref(), "adjustment_reasons")
}

async fn create_adjustment_reason(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        if b.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(unprocessable("name is required"));
        }
        let now = Timestamp::now();
        let mut st = sb.lock();
        st.retail.ensure_reasons(now);
        let id = st.retail.next_id("adjustment_reasons");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("description".into(), Value::Null);
        m.insert("active?".into(), json!(true));
        merge(&mut m, b, &[]);
        touch(&mut m, now, true);
        st.retail.coll("adjustment_reasons").insert(id, m.clone());
        Ok((
            format!("/api/reason_codes/inventory_adjustment_reasons/{id}"),
            Value::Object(m),
        ))
    })())
}

/// A referenced id that must name an existing record: 422 naming the field otherwise.
fn existing_ref(
    st: &St,
    b: &Map<String, Value>,
    field: &str,
    coll: &'static str,
) -> Result<i64, Error> {
    let id = b
        .get(field)
        .and_then(|v| json_dec(v))
        .filter(|d| d.fract().is_zero())
        .and_then(|d| i64::try_from(d).ok())
        .ok_or_else(|| unprocessable(format!("{field} is required")))?;
    st.retail
        .get(coll, id)
        .map(|_| id)
        .ok_or_else(|| unprocessable(format!("{field} {id} does not exist")))
}

async fn list_adjustment_sets(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list_coll(&sb, &h, raw.as_deref(), "adjustment_sets")
}

async fn get_adjustment_set(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    reply(
        sb.retail_auth(&h)
            .and_then(|_| get_one(&sb, "adjustment_sets", &id)),
    )
}

async fn create_adjustment_set(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        let now = Timestamp::now();
        let mut st = sb.lock();
        st.retail.ensure_reasons(now);
        let location = existing_ref(&st, &b, "location_id", "locations")?;
        let reason = existing_ref(&st, &b, "adjustment_reason_id", "adjustment_reasons")?;
        let id = st.retail.next_id("adjustment_sets");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("note".into(), Value::Null);
        merge(&mut m, b, &["status", "completed_at"]);
        m.insert("location_id".into(), json!(location));
        m.insert("adjustment_reason_id".into(), json!(reason));
        m.insert("status".into(), json!("pending"));
        m.insert("completed_at".into(), Value::Null);
        touch(&mut m, now, true);
        st.retail.coll("adjustment_sets").insert(id, m.clone());
        Ok((
            format!("/api/inventory/adjustment_sets/{id}"),
            Value::Object(m),
        ))
    })())
}

async fn update_adjustment_set(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let id = id_param(&id)?;
        let mut b = body_obj(&body)?;
        let now = Timestamp::now();
        let mut st = sb.lock();
        let set = st
            .retail
            .get("adjustment_sets", id)
            .ok_or_else(|| not_found(&format!("adjustment set {id}")))?;
        let was = set
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("pending")
            .to_string();
        let location = set
            .get("location_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let to = match b.remove("status") {
            None => was.clone(),
            Some(Value::String(s)) if s == "pending" || s == "complete" => s,
            Some(other) => {
                return Err(unprocessable(format!(
                    "status must be \"pending\" or \"complete\", got {other}"
                )));
            }
        };
        if was == "complete" && to != "complete" {
            return Err(unprocessable(
                "a complete adjustment set cannot change status",
            ));
        }
        // Completing moves the stock exactly once; completing again changes nothing.
        if was == "pending" && to == "complete" {
            let moves: Vec<(i64, Decimal)> = st
                .retail
                .children_of("adjustment_lines", id)
                .filter_map(|l| Some((l.get("item_id")?.as_i64()?, dec_of(l, "qty"))))
                .collect();
            for (item, qty) in moves {
                *st.retail.inventory.entry((item, location)).or_default() += qty;
            }
        }
        let set = st
            .retail
            .coll("adjustment_sets")
            .get_mut(&id)
            .ok_or_else(|| not_found(&format!("adjustment set {id}")))?;
        merge(
            set,
            b,
            &["location_id", "adjustment_reason_id", "completed_at"],
        );
        if was == "pending" && to == "complete" {
            set.insert("completed_at".into(), json!(ts(now)));
        }
        set.insert("status".into(), json!(to));
        touch(set, now, false);
        Ok(Value::Object(set.clone()))
    })())
}

async fn list_adjustment_lines(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let id = id_param(&id)?;
        let st = sb.lock();
        if st.retail.get("adjustment_sets", id).is_none() {
            return Err(not_found(&format!("adjustment set {id}")));
        }
        collection(
            st.retail.children_of("adjustment_lines", id),
            &list_query(raw.as_deref(), &[])?,
        )
    })())
}

async fn create_adjustment_line(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let set_id = id_param(&id)?;
        let mut b = body_obj(&body)?;
        normalize_decimals(&mut b, &["qty", "unit_cost"])?;
        let now = Timestamp::now();
        let mut st = sb.lock();
        let status = st
            .retail
            .get("adjustment_sets", set_id)
            .ok_or_else(|| not_found(&format!("adjustment set {set_id}")))?
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("pending");
        if status != "pending" {
            return Err(unprocessable(
                "lines can only be added to a pending adjustment set",
            ));
        }
        let item = existing_ref(&st, &b, "item_id", "items")?;
        if b.get("qty").is_none_or(Value::is_null) {
            return Err(unprocessable("qty is required"));
        }
        let id = st.retail.next_id("adjustment_lines");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("unit_cost".into(), Value::Null);
        merge(&mut m, b, &["adjustment_set_id"]);
        m.insert("adjustment_set_id".into(), json!(set_id));
        m.insert("item_id".into(), json!(item));
        touch(&mut m, now, true);
        st.retail.coll("adjustment_lines").insert(id, m.clone());
        st.retail
            .children
            .entry(("adjustment_lines", set_id))
            .or_default()
            .push(id);
        Ok((
            format!("/api/inventory/adjustment_sets/{set_id}/lines/{id}"),
            Value::Object(m),
        ))
    })())
}

// ---------------------------------------------------------------- customers

async fn list_customers(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        collection(
            sb.lock().retail.all("customers"),
            &list_query(raw.as_deref(), &[])?,
        )
    }))
}

async fn get_customer(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        sb.retail_auth(&h)
            .and_then(|_| get_one(&sb, "customers", &id)),
    )
}

async fn create_customer(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let id = sb.create_customer_locked(&mut st, b, Timestamp::now())?;
        Ok((
            format!("/api/customers/{id}"),
            Value::Object(st.retail.get("customers", id).cloned().unwrap_or_default()),
        ))
    })())
}

async fn update_customer(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let id = id_param(&id)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let c = st
            .retail
            .coll("customers")
            .get_mut(&id)
            .ok_or_else(|| not_found(&format!("customer {id}")))?;
        merge(c, b, &[]);
        touch(c, Timestamp::now(), false);
        let v = Value::Object(c.clone());
        sb.emit_retail(&mut st, "customer_updated", &v);
        Ok(v)
    })())
}

impl Sandbox {
    pub(crate) fn create_customer_locked(
        &self,
        st: &mut St,
        b: Map<String, Value>,
        at: Timestamp,
    ) -> Result<i64, Error> {
        let has = |k: &str| {
            b.get(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if !has("first_name") && !has("last_name") && !has("email") {
            return Err(unprocessable(
                "a customer needs first_name, last_name or email",
            ));
        }
        let id = st.retail.next_id("customers");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("public_id".into(), json!(format!("C-{id}")));
        for k in ["first_name", "last_name", "email", "phone"] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("active?".into(), json!(true));
        m.insert("custom".into(), json!({}));
        merge(&mut m, b, &[]);
        touch(&mut m, at, true);
        let v = Value::Object(m.clone());
        st.retail.coll("customers").insert(id, m);
        self.emit_retail(st, "customer_created", &v);
        Ok(id)
    }
}

async fn list_addresses(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let cid = id_param(&id)?;
        let st = sb.lock();
        st.retail
            .get("customers", cid)
            .ok_or_else(|| not_found(&format!("customer {cid}")))?;
        collection(
            st.retail
                .all("addresses")
                .filter(|a| a.get("customer_id") == Some(&json!(cid))),
            &list_query(raw.as_deref(), &[])?,
        )
    })())
}

async fn create_address(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let cid = id_param(&id)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        st.retail
            .get("customers", cid)
            .ok_or_else(|| not_found(&format!("customer {cid}")))?;
        let aid = st.retail.next_id("addresses");
        let mut m = Map::new();
        m.insert("id".into(), json!(aid));
        m.insert("customer_id".into(), json!(cid));
        for k in ["address_1", "address_2", "city", "state", "zip", "country"] {
            m.insert(k.into(), Value::Null);
        }
        merge(&mut m, b, &["customer_id"]);
        touch(&mut m, Timestamp::now(), true);
        let v = Value::Object(m.clone());
        st.retail.coll("addresses").insert(aid, m);
        Ok((format!("/api/customers/{cid}/addresses/{aid}"), v))
    })())
}

// ---------------------------------------------------------------- locations

async fn list_locations(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        collection(
            sb.lock().retail.all("locations"),
            &list_query(raw.as_deref(), &[])?,
        )
    }))
}

async fn get_location(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        sb.retail_auth(&h)
            .and_then(|_| get_one(&sb, "locations", &id)),
    )
}

async fn create_location(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        if b.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(unprocessable("name is required"));
        }
        let mut st = sb.lock();
        let id = sb.create_location_locked(&mut st, b, Timestamp::now());
        Ok((
            format!("/api/locations/{id}"),
            Value::Object(st.retail.get("locations", id).cloned().unwrap_or_default()),
        ))
    })())
}

impl Sandbox {
    pub(crate) fn create_location_locked(
        &self,
        st: &mut St,
        b: Map<String, Value>,
        at: Timestamp,
    ) -> i64 {
        let id = st.retail.next_id("locations");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("public_id".into(), json!(format!("{:03}", id - 100_000)));
        m.insert("name".into(), Value::Null);
        m.insert("currency_code".into(), json!("USD"));
        m.insert("time_zone".into(), json!("America/Chicago"));
        m.insert("active?".into(), json!(true));
        merge(&mut m, b, &[]);
        touch(&mut m, at, true);
        st.retail.coll("locations").insert(id, m);
        id
    }
}

// ---------------------------------------------------------------- tickets

const TICKET_UNFILTERABLE: &[&str] = &["completed?", "voided?", "source_location_id"];

async fn list_tickets(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        collection(
            sb.lock().retail.all("tickets"),
            &list_query(raw.as_deref(), TICKET_UNFILTERABLE)?,
        )
    }))
}

async fn get_ticket(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(
        sb.retail_auth(&h)
            .and_then(|_| get_one(&sb, "tickets", &id)),
    )
}

async fn create_ticket(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let id = sb.create_ticket_locked(&mut st, b, Timestamp::now())?;
        Ok((
            format!("/api/sales/tickets/{id}"),
            Value::Object(st.retail.get("tickets", id).cloned().unwrap_or_default()),
        ))
    })())
}

async fn update_ticket(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let id = id_param(&id)?;
        let mut b = body_obj(&body)?;
        let now = Timestamp::now();
        let mut st = sb.lock();
        let complete = b
            .remove("status")
            .and_then(|s| s.as_str().map(str::to_ascii_lowercase))
            .is_some_and(|s| s == "complete");
        {
            let t = st
                .retail
                .coll("tickets")
                .get_mut(&id)
                .ok_or_else(|| not_found(&format!("ticket {id}")))?;
            merge(t, b, TICKET_COMPUTED);
            touch(t, now, false);
        }
        if complete {
            return sb.complete_ticket_locked(&mut st, id, now);
        }
        Ok(Value::Object(
            st.retail.get("tickets", id).cloned().unwrap_or_default(),
        ))
    })())
}

const TICKET_COMPUTED: &[&str] = &[
    "total",
    "total_tax",
    "total_discounts",
    "balance",
    "completed?",
    "voided?",
    "completed_at",
    "local_completed_at",
    "type",
    "public_id",
];

/// A ticket's lines or payments (`children` = "lines" | "payments"); 404 for an unknown ticket.
fn list_ticket_children(sb: &Sandbox, h: &HeaderMap, id: &str, raw: Option<&str>, children: &'static str) -> Response {
    reply((|| {
        sb.retail_auth(h)?;
        let tid = id_param(id)?;
        let st = sb.lock();
        st.retail
            .get("tickets", tid)
            .ok_or_else(|| not_found(&format!("ticket {tid}")))?;
        collection(st.retail.children_of(children, tid), &list_query(raw, &[])?)
    })())
}

async fn list_lines(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    list_ticket_children(&sb, &h, &id, raw.as_deref(), "lines")
}

async fn create_line(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let tid = id_param(&id)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let lid = sb.add_line_locked(&mut st, tid, b, Timestamp::now())?;
        Ok((
            format!("/api/sales/tickets/{tid}/lines/{lid}"),
            Value::Object(st.retail.get("lines", lid).cloned().unwrap_or_default()),
        ))
    })())
}

async fn list_ticket_payments(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    list_ticket_children(&sb, &h, &id, raw.as_deref(), "payments")
}

async fn create_payment(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let tid = id_param(&id)?;
        let b = body_obj(&body)?;
        let mut st = sb.lock();
        let pid = sb.add_payment_locked(&mut st, tid, b, Timestamp::now())?;
        Ok((
            format!("/api/payments/{pid}"),
            Value::Object(st.retail.get("payments", pid).cloned().unwrap_or_default()),
        ))
    })())
}

async fn list_payments(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        collection(
            sb.lock().retail.all("payments"),
            &list_query(raw.as_deref(), &["location_id"])?,
        )
    }))
}

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn dec_of(m: &Map<String, Value>, k: &str) -> Decimal {
    m.get(k).and_then(json_dec).unwrap_or_default()
}

/// The store-local wall-clock time for a location (`local_completed_at` has no offset).
fn local_time(st: &St, location_id: Option<i64>, at: Timestamp) -> String {
    let tz = location_id
        .and_then(|l| st.retail.get("locations", l))
        .and_then(|l| l.get("time_zone"))
        .and_then(Value::as_str)
        .and_then(|name| jiff::tz::TimeZone::get(name).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    at.to_zoned_datetime(tz)
        .datetime()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

impl Sandbox {
    pub(crate) fn create_ticket_locked(
        &self,
        st: &mut St,
        b: Map<String, Value>,
        at: Timestamp,
    ) -> Result<i64, Error> {
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Ticket")
            .to_string();
        if kind != "Ticket" && kind != "Return" {
            return Err(unprocessable("type must be Ticket or Return"));
        }
        let loc = match b.get("source_location_id") {
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| unprocessable("source_location_id must be an integer"))?,
            ),
            None => st
                .retail
                .all("locations")
                .next()
                .and_then(|l| l.get("id"))
                .and_then(Value::as_i64),
        };
        if let Some(l) = loc {
            st.retail
                .get("locations", l)
                .ok_or_else(|| unprocessable(format!("location {l} does not exist")))?;
        }
        let id = st.retail.next_id("tickets");
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert(
            "public_id".into(),
            json!(format!("{}-{:06}", loc.unwrap_or(0) % 1000, id - 100_000)),
        );
        m.insert("type".into(), json!(kind));
        m.insert("status".into(), json!("Pending"));
        m.insert("completed?".into(), json!(false));
        m.insert("voided?".into(), json!(false));
        for k in ["total", "total_tax", "total_discounts", "balance"] {
            m.insert(k.into(), json!(0));
        }
        for k in [
            "customer_id",
            "customer_name",
            "station_id",
            "sales_rep",
            "parent_transaction_id",
            "completed_at",
            "local_completed_at",
        ] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("source_location_id".into(), json!(loc));
        m.insert("custom".into(), json!({}));
        merge(&mut m, b, TICKET_COMPUTED);
        m.insert("type".into(), json!(kind));
        if let Some(cid) = m.get("customer_id").and_then(Value::as_i64) {
            let c = st
                .retail
                .get("customers", cid)
                .ok_or_else(|| unprocessable(format!("customer {cid} does not exist")))?;
            let name = [c.get("first_name"), c.get("last_name")]
                .iter()
                .filter_map(|v| v.and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            m.insert("customer_name".into(), json!(name));
        }
        touch(&mut m, at, true);
        st.retail.coll("tickets").insert(id, m);
        Ok(id)
    }

    fn open_ticket(&self, st: &St, tid: i64) -> Result<(), Error> {
        let t = st
            .retail
            .get("tickets", tid)
            .ok_or_else(|| not_found(&format!("ticket {tid}")))?;
        if t.get("completed?") == Some(&json!(true)) {
            return Err(unprocessable(format!("ticket {tid} is already complete")));
        }
        Ok(())
    }

    pub(crate) fn add_line_locked(
        &self,
        st: &mut St,
        tid: i64,
        mut b: Map<String, Value>,
        at: Timestamp,
    ) -> Result<i64, Error> {
        self.open_ticket(st, tid)?;
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ItemLine")
            .to_string();
        normalize_decimals(
            &mut b,
            &[
                "qty",
                "value",
                "original_unit_price",
                "adjusted_unit_price",
                "unit_cost",
            ],
        )?;
        let lid = st.retail.next_id("lines");
        let mut m = Map::new();
        m.insert("id".into(), json!(lid));
        m.insert("ticket_id".into(), json!(tid));
        m.insert("type".into(), json!(kind));
        match kind.as_str() {
            "ItemLine" => {
                let item_id = b
                    .get("item_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| unprocessable("item_id is required on an ItemLine"))?;
                let item = st
                    .retail
                    .get("items", item_id)
                    .ok_or_else(|| unprocessable(format!("item {item_id} does not exist")))?
                    .clone();
                let qty = b.get("qty").and_then(json_dec).unwrap_or(Decimal::ONE);
                let original = b
                    .get("original_unit_price")
                    .and_then(json_dec)
                    .unwrap_or_else(|| dec_of(&item, "price"));
                let adjusted = b
                    .get("adjusted_unit_price")
                    .and_then(json_dec)
                    .unwrap_or(original);
                let unit_cost = b
                    .get("unit_cost")
                    .and_then(json_dec)
                    .unwrap_or_else(|| dec_of(&item, "cost"));
                m.insert("item_id".into(), json!(item_id));
                m.insert(
                    "description".into(),
                    item.get("description").cloned().unwrap_or(Value::Null),
                );
                m.insert("qty".into(), dec_json(qty));
                m.insert("original_unit_price".into(), dec_json(original));
                m.insert("adjusted_unit_price".into(), dec_json(adjusted));
                m.insert("unit_cost".into(), dec_json(unit_cost));
                m.insert("value".into(), dec_json(money(qty * adjusted)));
                if let Some(d) = b.get("description").filter(|d| d.is_string()) {
                    m.insert("description".into(), d.clone());
                }
            }
            _ => {
                let value = b
                    .get("value")
                    .and_then(json_dec)
                    .ok_or_else(|| unprocessable(format!("value is required on a {kind}")))?;
                m.insert("value".into(), dec_json(money(value)));
                m.insert(
                    "description".into(),
                    b.get("description").cloned().unwrap_or(Value::Null),
                );
            }
        }
        touch(&mut m, at, true);
        st.retail.coll("lines").insert(lid, m);
        st.retail
            .children
            .entry(("lines", tid))
            .or_default()
            .push(lid);
        self.recompute_ticket(st, tid);
        Ok(lid)
    }

    pub(crate) fn add_payment_locked(
        &self,
        st: &mut St,
        tid: i64,
        mut b: Map<String, Value>,
        at: Timestamp,
    ) -> Result<i64, Error> {
        self.open_ticket(st, tid)?;
        normalize_decimals(&mut b, &["amount"])?;
        let amount = b
            .get("amount")
            .and_then(json_dec)
            .ok_or_else(|| unprocessable("amount is required"))?;
        let loc = st
            .retail
            .get("tickets", tid)
            .and_then(|t| t.get("source_location_id"))
            .and_then(Value::as_i64);
        let pid = st.retail.next_id("payments");
        let mut m = Map::new();
        m.insert("id".into(), json!(pid));
        m.insert("ticket_id".into(), json!(tid));
        m.insert("type".into(), json!("CreditCardPayment"));
        m.insert("status".into(), json!("complete"));
        m.insert("payment_type_id".into(), Value::Null);
        merge(&mut m, b, &["ticket_id", "status"]);
        m.insert("amount".into(), dec_json(money(amount)));
        m.insert("completed_at".into(), json!(ts(at)));
        m.insert("local_completed_at".into(), json!(local_time(st, loc, at)));
        touch(&mut m, at, true);
        st.retail.coll("payments").insert(pid, m);
        st.retail
            .children
            .entry(("payments", tid))
            .or_default()
            .push(pid);
        self.recompute_ticket(st, tid);
        Ok(pid)
    }

    fn recompute_ticket(&self, st: &mut St, tid: i64) {
        let mut total = Decimal::ZERO;
        let mut tax = Decimal::ZERO;
        let mut discounts = Decimal::ZERO;
        for l in st.retail.children_of("lines", tid) {
            let v = dec_of(l, "value");
            total += v;
            match l.get("type").and_then(Value::as_str) {
                Some("TaxLine") => tax += v,
                Some("ItemLine") => {
                    discounts += money(
                        (dec_of(l, "original_unit_price") - dec_of(l, "adjusted_unit_price"))
                            * dec_of(l, "qty"),
                    )
                }
                _ => {}
            }
        }
        let paid: Decimal = st
            .retail
            .children_of("payments", tid)
            .map(|p| dec_of(p, "amount"))
            .sum();
        if let Some(t) = st.retail.coll("tickets").get_mut(&tid) {
            t.insert("total".into(), dec_json(total));
            t.insert("total_tax".into(), dec_json(tax));
            t.insert("total_discounts".into(), dec_json(discounts));
            t.insert("balance".into(), dec_json(total - paid));
        }
    }

    /// Completes a ticket (what `PUT /api/sales/tickets/{id} {"status":"complete"}` does):
    /// requires a zero balance, moves stock at the ticket's location (a sale removes, a return's
    /// negative quantities put back) and fires `sales_transaction_completed`.
    pub fn complete_ticket(&self, id: i64, at: Timestamp) -> Result<Value, Error> {
        let mut st = self.lock();
        self.complete_ticket_locked(&mut st, id, at)
    }

    pub(crate) fn complete_ticket_locked(
        &self,
        st: &mut St,
        id: i64,
        at: Timestamp,
    ) -> Result<Value, Error> {
        self.open_ticket(st, id)?;
        let t = st.retail.get("tickets", id).cloned().unwrap_or_default();
        let balance = dec_of(&t, "balance");
        if !balance.is_zero() {
            return Err(unprocessable(format!(
                "ticket {id} has an unpaid balance of {balance}"
            )));
        }
        let loc = t.get("source_location_id").and_then(Value::as_i64);
        let moves: Vec<(i64, Decimal)> = st
            .retail
            .children_of("lines", id)
            .filter(|l| l.get("type") == Some(&json!("ItemLine")))
            .filter_map(|l| Some((l.get("item_id")?.as_i64()?, dec_of(l, "qty"))))
            .collect();
        if let Some(loc) = loc {
            for (item, qty) in moves {
                let tracked = st
                    .retail
                    .get("items", item)
                    .and_then(|i| i.get("track_inventory?"))
                    != Some(&json!(false));
                if tracked {
                    *st.retail.inventory.entry((item, loc)).or_default() -= qty;
                }
            }
        }
        let local = local_time(st, loc, at);
        let v = {
            let t = st
                .retail
                .coll("tickets")
                .get_mut(&id)
                .ok_or_else(|| not_found(&format!("ticket {id}")))?;
            t.insert("status".into(), json!("Complete"));
            t.insert("completed?".into(), json!(true));
            t.insert("completed_at".into(), json!(ts(at)));
            t.insert("local_completed_at".into(), json!(local));
            touch(t, at, false);
            Value::Object(t.clone())
        };
        self.emit_retail(st, "sales_transaction_completed", &v);
        Ok(v)
    }
}

// ---------------------------------------------------------------- webhooks

fn hook_json(h: &Hook) -> Value {
    json!({"id": h.id, "url": h.url, "events": h.events})
}

async fn list_webhooks(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply((|| {
        sb.retail_auth(&h)?;
        let rows: Vec<Map<String, Value>> = sb
            .lock()
            .retail
            .hooks
            .values()
            .filter_map(|h| hook_json(h).as_object().cloned())
            .collect();
        collection(rows.iter(), &list_query(raw.as_deref(), &[])?)
    })())
}

async fn get_webhook(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(sb.retail_auth(&h).and_then(|_| {
        let id = id_param(&id)?;
        sb.lock()
            .retail
            .hooks
            .get(&id)
            .map(hook_json)
            .ok_or_else(|| not_found(&format!("webhook {id}")))
    }))
}

async fn create_webhook(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    created((|| {
        sb.retail_auth(&h)?;
        let b = body_obj(&body)?;
        let url = b
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        let url = url
            .ok_or_else(|| unprocessable("url must be an http(s) URL"))?
            .to_string();
        let events: Vec<String> = b
            .get("events")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if events.is_empty() {
            return Err(unprocessable("events must list at least one event"));
        }
        let mut st = sb.lock();
        let id = st.retail.next_id("webhooks");
        let hook = Hook { id, url, events };
        let v = hook_json(&hook);
        st.retail.hooks.insert(id, hook);
        Ok((format!("/api/webhooks/{id}"), v))
    })())
}

async fn delete_webhook(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let r = sb.retail_auth(&h).and_then(|_| {
        let id = id_param(&id)?;
        sb.lock()
            .retail
            .hooks
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| not_found(&format!("webhook {id}")))
    });
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

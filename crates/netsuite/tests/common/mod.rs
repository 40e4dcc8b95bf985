//! A small in-test NetSuite fake, written from reference/netsuite.md (not from the sandbox
//! simulator): record service, SuiteQL for the shapes our client sends, the error envelope, a
//! concurrency limit that answers 429, an OAuth 2.0 token endpoint that checks the ES256
//! assertion, and knobs for injecting faults.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier as _};
use p256::pkcs8::DecodePublicKey as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACCOUNT: &str = "1234567_SB1";
pub const PUBLIC_KEY: &str = include_str!("../../../../testdata/netsuite/sandbox-cert-es256-public.pem");
pub const PRIVATE_KEY: &str = include_str!("../../../../testdata/netsuite/sandbox-cert-es256-private.pk8.pem");

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Tba,
    Bearer,
}

pub struct Injected {
    pub path_contains: String,
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

#[derive(Default)]
pub struct Fake {
    pub base: String,
    pub auth: Mutex<Option<AuthMode>>,
    /// (lowercased type, internal id) → record
    pub records: Mutex<BTreeMap<(String, u64), Map<String, Value>>>,
    pub next_id: AtomicU64,
    pub limit: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// Highest in-flight count seen, counting rejected arrivals too.
    pub max_seen: AtomicUsize,
    pub rejected_429: AtomicUsize,
    pub latency_ms: AtomicU64,
    /// After applying the next write to a path containing this, stall past the client timeout.
    pub stall_after_write: Mutex<Option<(String, Duration)>>,
    pub inject: Mutex<VecDeque<Injected>>,
    pub governance: Mutex<Option<(u16, Value)>>,
    // OAuth 2.0
    pub tokens_issued: AtomicU64,
    pub valid_tokens: Mutex<HashSet<String>>,
    pub token_lifetime: AtomicU64,
    pub token_delay_ms: AtomicU64,
    pub token_in_flight: AtomicUsize,
    pub token_max_in_flight: AtomicUsize,
    /// SuiteQL rows per table (lowercase keys, `lastmodifieddate` as "YYYY-MM-DD HH:MM:SS").
    pub tables: Mutex<BTreeMap<String, Vec<Map<String, Value>>>>,
    pub suiteql_requests: Mutex<Vec<(u64, u64, String)>>,
    pub requests: AtomicU64,
    pub saw_prefer_transient: AtomicBool,
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn envelope(status: u16, code: &str, detail: &str, path: Option<&str>) -> Value {
    let mut d = json!({"detail": detail, "o:errorCode": code});
    if let Some(p) = path {
        d["o:errorPath"] = json!(p);
    }
    json!({"type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1", "title": "Error", "status": status, "o:errorDetails": [d]})
}

fn err(status: u16, code: &str, detail: &str, path: Option<&str>) -> Response {
    let s = StatusCode::from_u16(status).unwrap();
    (s, [("content-type", "application/vnd.oracle.resource+json; type=error")], envelope(status, code, detail, path).to_string())
        .into_response()
}

fn no_content(location: String) -> Response {
    (StatusCode::NO_CONTENT, [("location", location)]).into_response()
}

fn json_resp(v: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/vnd.oracle.resource+json; type=singular")], v.to_string()).into_response()
}

/// Finds `{"id": "9999"}` anywhere: the fake's stand-in for "invalid reference".
fn find_bad_ref(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            if m.get("id").and_then(Value::as_str) == Some("9999") {
                return Some(path.to_string());
            }
            for (k, c) in m {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if let Some(f) = find_bad_ref(c, &p) {
                    return Some(f);
                }
            }
            None
        }
        Value::Array(a) => a.iter().enumerate().find_map(|(i, c)| find_bad_ref(c, &format!("{path}[{i}]"))),
        _ => None,
    }
}

impl Fake {
    pub async fn start(auth: AuthMode) -> Arc<Fake> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(Fake {
            base: format!("http://{addr}"),
            auth: Mutex::new(Some(auth)),
            next_id: AtomicU64::new(100),
            limit: AtomicUsize::new(1000),
            token_lifetime: AtomicU64::new(3600),
            ..Default::default()
        });
        let app = axum::Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn rest(&self) -> String {
        format!("{}/services/rest", self.base)
    }

    pub fn insert(&self, record_type: &str, mut rec: Map<String, Value>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        rec.insert("id".into(), json!(id.to_string()));
        self.records.lock().unwrap().insert((record_type.to_ascii_lowercase(), id), rec);
        id
    }

    pub fn count(&self, record_type: &str) -> usize {
        let t = record_type.to_ascii_lowercase();
        self.records.lock().unwrap().keys().filter(|(k, _)| *k == t).count()
    }

    pub fn record(&self, record_type: &str, id: u64) -> Option<Map<String, Value>> {
        self.records.lock().unwrap().get(&(record_type.to_ascii_lowercase(), id)).cloned()
    }

    pub fn inject(&self, path_contains: &str, status: u16, body: Value, retry_after: Option<&str>) {
        self.inject.lock().unwrap().push_back(Injected {
            path_contains: path_contains.into(),
            status,
            body,
            retry_after: retry_after.map(str::to_string),
        });
    }

    fn find_eid(&self, t: &str, eid: &str) -> Option<u64> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .find(|((tt, _), r)| tt == t && r.get("externalId").and_then(Value::as_str) == Some(eid))
            .map(|((_, id), _)| *id)
    }

    fn resolve_id(&self, t: &str, seg: &str) -> Option<u64> {
        match seg.strip_prefix("eid:") {
            Some(e) => self.find_eid(t, e),
            None => seg.parse().ok().filter(|id| self.records.lock().unwrap().contains_key(&(t.to_string(), *id))),
        }
    }
}

async fn handle(State(f): State<Arc<Fake>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    f.requests.fetch_add(1, Ordering::SeqCst);
    let path = uri.path().to_string();
    let Some(rest) = path.strip_prefix("/services/rest") else { return err(404, "NONEXISTENT_ID", "no such path", None) };
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    if rest == "/auth/oauth2/v1/token" {
        return token(&f, &body).await;
    }

    // Authentication.
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mode = *f.auth.lock().unwrap();
    let authed = match mode {
        Some(AuthMode::Tba) => {
            auth.starts_with(&format!("OAuth realm=\"{ACCOUNT}\"")) && auth.contains("oauth_signature=\"") && auth.contains("HMAC-SHA256")
        }
        Some(AuthMode::Bearer) => auth.strip_prefix("Bearer ").is_some_and(|t| f.valid_tokens.lock().unwrap().contains(t)),
        None => true,
    };
    if !authed {
        return err(401, "INVALID_LOGIN", "Invalid login attempt. For more details, see the Login Audit Trail.", None);
    }

    // Concurrency governance: count this arrival; above the limit it is refused with 429.
    let now = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&f.in_flight);
    f.max_seen.fetch_max(now, Ordering::SeqCst);
    if now > f.limit.load(Ordering::SeqCst) {
        f.rejected_429.fetch_add(1, Ordering::SeqCst);
        return err(429, "CONCURRENCY_LIMIT_EXCEEDED", "Too Many Requests", None);
    }
    let latency = f.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }

    let injected = {
        let mut q = f.inject.lock().unwrap();
        let pos = q.iter().position(|i| rest.contains(&i.path_contains));
        pos.and_then(|p| q.remove(p))
    };
    if let Some(i) = injected {
        let mut r = (StatusCode::from_u16(i.status).unwrap(), i.body.to_string()).into_response();
        if let Some(ra) = i.retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }

    if rest == "/system/v1/governanceLimits" {
        return match f.governance.lock().unwrap().clone() {
            Some((200, v)) => json_resp(v),
            Some((s, _)) => err(s, "INSUFFICIENT_PERMISSION", "Permission Violation", None),
            None => err(403, "INSUFFICIENT_PERMISSION", "Permission Violation", None),
        };
    }
    if rest == "/query/v1/suiteql" && method == Method::POST {
        return suiteql(&f, &headers, &query, &body);
    }
    let Some(rec_path) = rest.strip_prefix("/record/v1/") else { return err(404, "NONEXISTENT_ID", "no such path", None) };
    let segs: Vec<&str> = rec_path.split('/').collect();
    let t = segs[0].to_ascii_lowercase();
    let loc = |id: u64| format!("{}/record/v1/{}/{}", f.rest(), segs[0], id);
    let body_json: Option<Map<String, Value>> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };

    if (method == Method::POST || method == Method::PUT || method == Method::PATCH) && !body.is_empty() {
        let Some(b) = &body_json else { return err(400, "INVALID_CONTENT", "Invalid JSON", None) };
        if b.contains_key("bogusField") {
            return err(400, "NONEXISTENT_FIELD", "Invalid field name bogusField", Some("bogusField"));
        }
        if let Some(p) = find_bad_ref(&Value::Object(b.clone()), "") {
            return err(
                400,
                "INVALID_CONTENT",
                "Error while accessing resource: You have entered an Invalid Field Value 9999 for the following field: item",
                Some(&p),
            );
        }
        if t == "customer"
            && method != Method::PATCH
            && !b.contains_key("companyName")
            && !(b.contains_key("firstName") && b.contains_key("lastName"))
        {
            return err(400, "USER_ERROR", "Please enter value(s) for: Company Name.", None);
        }
    }

    let stall = |f: &Fake| {
        let mut s = f.stall_after_write.lock().unwrap();
        match s.as_ref() {
            Some((p, d)) if rest.contains(p.as_str()) => {
                let d = *d;
                *s = None;
                Some(d)
            }
            _ => None,
        }
    };

    match (method.clone(), segs.len()) {
        (Method::POST, 1) => {
            let mut b = body_json.unwrap_or_default();
            if let Some(e) = b.get("externalId").and_then(Value::as_str)
                && f.find_eid(&t, e).is_some()
            {
                return err(400, "USER_ERROR", "A record with this external ID already exists.", None);
            }
            b.remove("id");
            let id = f.insert(&t, b);
            if let Some(d) = stall(&f) {
                tokio::time::sleep(d).await;
            }
            no_content(loc(id))
        }
        (Method::GET, 1) => {
            let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
            let offset: usize = query.get("offset").and_then(|l| l.parse().ok()).unwrap_or(0);
            if limit == 0 || limit > 1000 || !offset.is_multiple_of(limit) {
                return err(400, "INVALID_PARAMETER", "Invalid limit or offset", None);
            }
            // q: only `field IS "value"` is understood; anything else is refused like NetSuite.
            let filter = match query.get("q") {
                None => None,
                Some(q) => {
                    let parts: Vec<&str> = q.splitn(3, ' ').collect();
                    if parts.len() != 3 || parts[1] != "IS" {
                        return err(400, "INVALID_PARAMETER", "Invalid search query", None);
                    }
                    Some((parts[0].to_string(), parts[2].trim_matches('"').to_string()))
                }
            };
            let ids: Vec<u64> = f
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|((tt, _), r)| {
                    *tt == t && filter.as_ref().is_none_or(|(k, v)| r.get(k).and_then(Value::as_str) == Some(v))
                })
                .map(|((_, id), _)| *id)
                .collect();
            let page: Vec<Value> = ids.iter().skip(offset).take(limit).map(|id| json!({"links": [], "id": id.to_string()})).collect();
            let has_more = offset + page.len() < ids.len();
            json_resp(json!({"links": [], "count": page.len(), "hasMore": has_more, "offset": offset, "totalResults": ids.len(), "items": page}))
        }
        (Method::GET, 2) => match f.resolve_id(&t, segs[1]) {
            None => err(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid record instance ID.", None),
            Some(id) => {
                let mut r = f.record(&t, id).unwrap_or_default();
                let expand = query.get("expandSubResources").map(String::as_str) == Some("true");
                for (k, v) in r.iter_mut() {
                    if v.get("items").is_some() && !expand {
                        *v = json!({"links": [{"rel": "self", "href": format!("{}/{}", loc(id), k)}]});
                    }
                }
                r.insert("links".into(), json!([{"rel": "self", "href": loc(id)}]));
                json_resp(Value::Object(r))
            }
        },
        (Method::PATCH, 2) => match f.resolve_id(&t, segs[1]) {
            None => err(404, "NONEXISTENT_ID", "The record instance does not exist.", None),
            Some(id) => {
                let mut recs = f.records.lock().unwrap();
                if let Some(r) = recs.get_mut(&(t.clone(), id)) {
                    for (k, v) in body_json.unwrap_or_default() {
                        if v.is_null() {
                            r.remove(&k);
                        } else {
                            r.insert(k, v);
                        }
                    }
                }
                no_content(loc(id))
            }
        },
        (Method::DELETE, 2) => match f.resolve_id(&t, segs[1]) {
            None => err(404, "NONEXISTENT_ID", "The record instance does not exist.", None),
            Some(id) => {
                f.records.lock().unwrap().remove(&(t.clone(), id));
                StatusCode::NO_CONTENT.into_response()
            }
        },
        (Method::PUT, 2) => {
            let Some(eid) = segs[1].strip_prefix("eid:") else {
                return err(400, "INVALID_PARAMETER", "PUT requires an external id", None);
            };
            let mut b = body_json.unwrap_or_default();
            b.insert("externalId".into(), json!(eid));
            let id = match f.find_eid(&t, eid) {
                Some(id) => {
                    let mut recs = f.records.lock().unwrap();
                    if let Some(r) = recs.get_mut(&(t.clone(), id)) {
                        r.extend(b);
                    }
                    id
                }
                None => f.insert(&t, b),
            };
            if let Some(d) = stall(&f) {
                tokio::time::sleep(d).await;
            }
            no_content(loc(id))
        }
        (Method::POST, 4) if segs[2] == "!transform" => match f.resolve_id(&t, segs[1]) {
            None => err(404, "NONEXISTENT_ID", "The record instance does not exist.", None),
            Some(src) => {
                let mut b = body_json.unwrap_or_default();
                b.insert("createdFrom".into(), json!({"id": src.to_string()}));
                let target = segs[3].to_string();
                let id = f.insert(&target, b);
                no_content(format!("{}/record/v1/{}/{}", f.rest(), target, id))
            }
        },
        _ => err(405, "INVALID_PARAMETER", "unsupported", None),
    }
}

fn suiteql(f: &Fake, headers: &HeaderMap, query: &BTreeMap<String, String>, body: &[u8]) -> Response {
    if headers.get("prefer").and_then(|v| v.to_str().ok()) == Some("transient") {
        f.saw_prefer_transient.store(true, Ordering::SeqCst);
    }
    let limit: u64 = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let offset: u64 = query.get("offset").and_then(|l| l.parse().ok()).unwrap_or(0);
    if limit == 0 || limit > 1000 || !offset.is_multiple_of(limit) {
        return err(400, "INVALID_PARAMETER", "Invalid limit or offset", None);
    }
    let Some(q) = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["q"].as_str().map(str::to_string)) else {
        return err(400, "INVALID_CONTENT", "missing q", None);
    };
    f.suiteql_requests.lock().unwrap().push((limit, offset, q.clone()));
    // Understands "... FROM <table> ..." plus the poller's filters: "WHERE <ts> >= 'S'",
    // "WHERE <ts> > 'S' OR (<ts> = 'S' AND t.id > K)" and "WHERE <ts> = 'S' AND t.id <= K [AND t.id > P]".
    let lower = q.to_ascii_lowercase();
    let Some(table) = lower.split(" from ").nth(1).and_then(|s| s.split_whitespace().next()) else {
        return err(400, "INVALID_PARAMETER", "Invalid search query", None);
    };
    let mut rows = f.tables.lock().unwrap().get(table).cloned().unwrap_or_default();
    let ts = |r: &Map<String, Value>| r.get("lastmodifieddate").and_then(Value::as_str).unwrap_or("").to_string();
    let id = |r: &Map<String, Value>| r.get("id").and_then(Value::as_str).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    rows.sort_by_key(|r| (ts(r), id(r)));
    if let Some(w) = lower.split(" where ").nth(1) {
        let w = w.split(" order by ").next().unwrap_or(w);
        let cur_ts = w.split('\'').nth(3).unwrap_or("").to_string();
        let num = |op: &str| w.split(op).nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).and_then(|n| n.parse::<u64>().ok());
        if w.contains(">= '") {
            rows.retain(|r| ts(r) >= cur_ts);
        } else if w.contains(" or (") {
            let k = num("t.id > ").unwrap_or(0);
            rows.retain(|r| ts(r) > cur_ts || (ts(r) == cur_ts && id(r) > k));
        } else {
            let (k, p) = (num("t.id <= ").unwrap_or(0), num("t.id > "));
            rows.retain(|r| ts(r) == cur_ts && id(r) <= k && p.is_none_or(|p| id(r) > p));
        }
    }
    let total = rows.len() as u64;
    let page: Vec<Value> = rows
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|mut r| {
            if lower.contains("hs_cursor_ts") {
                let t = ts(&r);
                r.insert("hs_cursor_ts".into(), json!(t));
            }
            r.insert("links".into(), json!([]));
            Value::Object(r)
        })
        .collect();
    let has_more = offset + (page.len() as u64) < total;
    json_resp(json!({"links": [], "count": page.len(), "hasMore": has_more, "offset": offset, "totalResults": total, "items": page}))
}

async fn token(f: &Fake, body: &[u8]) -> Response {
    let n = f.token_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.token_in_flight);
    f.token_max_in_flight.fetch_max(n, Ordering::SeqCst);
    let delay = f.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let bad = |e: &str| (StatusCode::BAD_REQUEST, json!({"error": e}).to_string()).into_response();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_assertion_type").map(String::as_str) != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return bad("unsupported_grant_type");
    }
    let Some(jwt) = form.get("client_assertion") else { return bad("invalid_request") };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return bad("invalid_request");
    }
    let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap_or_default();
    let header: Value = serde_json::from_slice(&dec(parts[0])).unwrap_or_default();
    let claims: Value = serde_json::from_slice(&dec(parts[1])).unwrap_or_default();
    let vk = VerifyingKey::from_public_key_pem(PUBLIC_KEY).unwrap();
    let sig_ok = Signature::from_slice(&dec(parts[2]))
        .ok()
        .is_some_and(|s| vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &s).is_ok());
    let iat = claims["iat"].as_i64().unwrap_or(0);
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if !sig_ok
        || header["alg"] != "ES256"
        || header["kid"] != "sandbox-cert"
        || claims["iss"] != "sandbox-client-id"
        || claims["aud"] != format!("{}/auth/oauth2/v1/token", f.rest())
        || !claims["scope"].as_str().unwrap_or("").split(',').any(|s| s == "rest_webservices")
        || exp <= iat
        || exp - iat > 3600
    {
        return bad("invalid_client");
    }
    let n = f.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let tok = format!("tok-{n}");
    f.valid_tokens.lock().unwrap().insert(tok.clone());
    let body = json!({"access_token": tok, "token_type": "bearer", "expires_in": f.token_lifetime.load(Ordering::SeqCst)});
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

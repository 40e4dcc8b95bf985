//! HTTP: the connection loop, governance and fault middleware, the REST handlers and the
//! control API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::auth::{self, decode_query};
use crate::error::{Error, envelope};
use crate::model::RType;
use crate::render::{Filter, render, render_sublist};
use crate::store::{Changes, Mode, Obj, fmt_ts};
use crate::{Shared, sql};

type S = Arc<Shared>;

/// Per-connection context inserted by the accept loop.
#[derive(Clone)]
pub(crate) struct Conn {
    peer: SocketAddr,
    kill: Arc<Notify>,
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, peer) = tokio::select! {
            acc = listener.accept() => match acc {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let app = app.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let conn_ctx = Conn { peer, kill: kill.clone() };
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn_ctx.clone());
                tower::ServiceExt::oneshot(app.clone(), req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            // Dropping the connection future closes the socket without an answer: that is how
            // the `timeout` and `lost_response` faults lose a response.
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "sandbox connection ended") },
                _ = kill.notified() => {}
                _ = sd.changed() => {}
            }
        });
    }
}

pub(crate) fn router(s: S) -> Router {
    let api = Router::new()
        .route("/services/rest/auth/oauth2/v1/token", post(token))
        .route("/services/rest/system/v1/governanceLimits", get(governance))
        .route("/services/rest/query/v1/suiteql", post(suiteql))
        .route("/services/rest/record/v1/{rtype}", get(list).post(create))
        .route("/services/rest/record/v1/{rtype}/{id}", get(get_one).patch(patch).put(upsert).delete(delete))
        .route("/services/rest/record/v1/{rtype}/{id}/{sub}", get(get_sublist))
        .route("/services/rest/record/v1/{rtype}/{id}/!transform/{target}", post(transform))
        .fallback(api_fallback)
        .layer(middleware::from_fn_with_state(s.clone(), governor));
    let control = Router::new()
        .route("/_sandbox/stats", get(c_stats))
        .route("/_sandbox/reset", post(c_reset))
        .route("/_sandbox/latency", axum::routing::put(c_latency).post(c_latency))
        .route("/_sandbox/concurrency", axum::routing::put(c_concurrency).post(c_concurrency))
        .route("/_sandbox/faults", get(c_faults_list).post(c_faults_add).delete(c_faults_clear))
        .layer(middleware::from_fn(loopback_only));
    api.merge(control).with_state(s)
}

// ------------------------------------------------------------------ governance & faults

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer 5xx (`status`, default 500) without touching anything.
    ServerError,
    /// Answer 429 as if the concurrency limit were hit.
    RateLimit,
    /// Hang `hang_ms` (default 70 s, longer than common client timeouts), then drop the
    /// connection without an answer; nothing is applied.
    Timeout,
    /// Apply the request, then drop the connection without an answer (after `hang_ms`,
    /// default 0): the write happened but the client never learns it.
    LostResponse,
}

/// A fault rule: applies to the next `count` matching requests, or to each with
/// `probability`, or both (probability, at most `count` times). Neither means once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub hang_ms: Option<u64>,
    /// Only requests with this method (case-insensitive).
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path contains this (case-insensitive).
    #[serde(default)]
    pub path_contains: Option<String>,
}

impl Fault {
    pub fn new(kind: FaultKind) -> Fault {
        Fault { kind, count: None, probability: None, status: None, hang_ms: None, method: None, path_contains: None }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FaultRule {
    id: u64,
    #[serde(flatten)]
    fault: Fault,
    remaining: Option<u32>,
}

static FAULT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) fn add_fault(s: &Shared, f: Fault) -> u64 {
    let id = FAULT_SEQ.fetch_add(1, Ordering::Relaxed);
    let remaining = match (f.count, f.probability) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    };
    if let Ok(mut v) = s.faults.lock() {
        v.push(FaultRule { id, fault: f, remaining });
    }
    id
}

fn take_fault(s: &Shared, method: &Method, path: &str) -> Option<Fault> {
    let mut rules = s.faults.lock().ok()?;
    let lower = path.to_ascii_lowercase();
    let mut hit = None;
    for r in rules.iter_mut() {
        if r.fault.method.as_ref().is_some_and(|m| !m.eq_ignore_ascii_case(method.as_str())) {
            continue;
        }
        if r.fault.path_contains.as_ref().is_some_and(|p| !lower.contains(&p.to_ascii_lowercase())) {
            continue;
        }
        if let Some(p) = r.fault.probability
            && rand::random::<f64>() >= p
        {
            continue;
        }
        if let Some(n) = r.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
        hit = Some(r.fault.clone());
        break;
    }
    rules.retain(|r| r.remaining != Some(0));
    hit
}

struct InFlight(S);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn lose_connection(conn: Option<&Conn>, hang: Duration) -> Response {
    tokio::time::sleep(hang).await;
    match conn {
        Some(c) => {
            c.kill.notify_one();
            std::future::pending::<Response>().await
        }
        // Mounted without our accept loop: the closest we can do is a gateway timeout.
        None => Error::api(StatusCode::GATEWAY_TIMEOUT, "UNEXPECTED_ERROR", "The request timed out.").into_response(),
    }
}

async fn governor(State(s): State<S>, req: Request, next: Next) -> Response {
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    let limit = s.limit.load(Ordering::Relaxed);
    if s.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
        s.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Error::too_many().into_response();
    }
    let _permit = InFlight(s.clone());
    let latency = s.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let conn = req.extensions().get::<Conn>().cloned();
    let fault = take_fault(&s, req.method(), req.uri().path());
    if fault.is_some() {
        s.counters.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
    match fault {
        Some(f) if f.kind == FaultKind::ServerError => {
            let status = f.status.and_then(|c| StatusCode::from_u16(c).ok()).filter(|c| c.is_server_error()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = envelope(status, "UNEXPECTED_ERROR", "An unexpected error occurred. Error ID: sandbox-injected", None);
            (status, [(header::CONTENT_TYPE, "application/vnd.oracle.resource+json; type=error")], body.to_string()).into_response()
        }
        Some(f) if f.kind == FaultKind::RateLimit => {
            s.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            Error::too_many().into_response()
        }
        Some(f) if f.kind == FaultKind::Timeout => lose_connection(conn.as_ref(), Duration::from_millis(f.hang_ms.unwrap_or(70_000))).await,
        Some(f) => {
            let resp = authenticated(&s, req, next).await;
            tracing::debug!(status = %resp.status(), "sandbox lost_response fault: dropping the answer");
            lose_connection(conn.as_ref(), Duration::from_millis(f.hang_ms.unwrap_or(0))).await
        }
        None => authenticated(&s, req, next).await,
    }
}

const MAX_BODY: usize = 104 * 1024 * 1024;

async fn authenticated(s: &S, req: Request, next: Next) -> Response {
    if req.uri().path() == "/services/rest/auth/oauth2/v1/token" {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return Error::bad_param("The request body could not be read or is larger than 104 MB.").into_response(),
    };
    let authz = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    let verdict = if let Some(tok) = authz.strip_prefix("Bearer ") {
        let ok = s.auth.lock().map(|a| a.bearer_ok(tok.trim(), now)).unwrap_or(false);
        if ok { Ok(()) } else { Err(Error::invalid_login("unknown or expired bearer token")) }
    } else if authz.starts_with("OAuth ") {
        let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
        let sreq = auth::SignedRequest {
            method: parts.method.as_str(),
            base_url: auth::base_url(host, parts.uri.path()),
            raw_query: parts.uri.query(),
            authorization: authz,
            body: &bytes,
        };
        let tolerance = i64::try_from(s.cfg.timestamp_tolerance.as_secs()).unwrap_or(300);
        match s.auth.lock() {
            Ok(mut st) => auth::verify_tba(&sreq, &s.creds, &mut st, now, tolerance),
            Err(_) => Err(Error::invalid_login("auth state unavailable")),
        }
    } else {
        Err(Error::invalid_login("no Authorization header"))
    };
    if let Err(e) = verdict {
        s.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        if let Error::Api { auth_reason: Some(r), .. } = &e {
            tracing::info!(reason = %r, "sandbox refused login");
        }
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

async fn api_fallback(req: Request) -> Response {
    if req.method() == Method::OPTIONS {
        // Auth probe used by Airbyte and others.
        return StatusCode::NO_CONTENT.into_response();
    }
    Error::api(StatusCode::NOT_FOUND, "NONEXISTENT_ID", format!("Resource {} does not exist.", req.uri().path())).into_response()
}

// ------------------------------------------------------------------ helpers

fn host(h: &HeaderMap) -> String {
    h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string()
}

fn record_base(h: &HeaderMap) -> String {
    format!("http://{}/services/rest/record/v1", host(h))
}

fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref().map(decode_query).unwrap_or_default()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
}

fn rtype(t: &str) -> Result<RType, Error> {
    RType::parse(t).ok_or_else(|| Error::no_record_type(t))
}

fn json_body(b: &Bytes) -> Result<Obj, Error> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(Obj::new());
    }
    match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Error::api(StatusCode::BAD_REQUEST, "INVALID_CONTENT", "Error while accessing a resource. The request body is not a valid JSON object.")),
    }
}

fn strict_names(h: &HeaderMap) -> bool {
    h.get("x-netsuite-propertynamevalidation").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("error"))
}

fn resolve_id(db: &crate::store::Db, rt: RType, id: &str) -> Result<u64, Error> {
    if let Some(e) = id.strip_prefix("eid:") {
        return db.by_eid(rt, e).ok_or_else(Error::not_found);
    }
    let n: u64 = id.parse().map_err(|_| Error::not_found())?;
    db.get(rt, n).map(|_| n).ok_or_else(Error::not_found)
}

fn paging(p: &[(String, String)]) -> Result<(u32, u32), Error> {
    let limit = match param(p, "limit") {
        None => 1000,
        Some(v) => v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
            Error::bad_param(format!("Invalid value for the parameter 'limit': {v}. The value must be an integer between 1 and 1000."))
        })?,
    };
    let offset = match param(p, "offset") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| Error::bad_param(format!("Invalid value for the parameter 'offset': {v}.")))?,
    };
    if offset % limit != 0 {
        return Err(Error::bad_param("The offset must be a multiple of the limit.").at("offset"));
    }
    Ok((limit, offset))
}

fn page_links(self_url: &str, other: &[(String, String)], limit: u32, offset: u32, total: u64, has_more: bool) -> Value {
    let mk = |off: u64| {
        let mut q: Vec<String> = other.iter().filter(|(k, _)| k != "limit" && k != "offset").map(|(k, v)| format!("{}={}", auth::pct(k), auth::pct(v))).collect();
        q.push(format!("limit={limit}"));
        q.push(format!("offset={off}"));
        format!("{self_url}?{}", q.join("&"))
    };
    let last = if total == 0 { 0 } else { (total - 1) / u64::from(limit) * u64::from(limit) };
    let mut links = vec![json!({"rel": "first", "href": mk(0)})];
    if offset > 0 {
        links.push(json!({"rel": "prev", "href": mk(u64::from(offset.saturating_sub(limit)))}));
    }
    if has_more {
        links.push(json!({"rel": "next", "href": mk(u64::from(offset) + u64::from(limit))}));
    }
    links.push(json!({"rel": "last", "href": mk(last)}));
    links.push(json!({"rel": "self", "href": mk(u64::from(offset))}));
    Value::Array(links)
}

fn typed_json(kind: &'static str, v: Value) -> Response {
    ([(header::CONTENT_TYPE, kind)], v.to_string()).into_response()
}

fn created(h: &HeaderMap, rt: RType, id: u64) -> Response {
    let loc = format!("{}/{}/{id}", record_base(h), rt.name());
    (StatusCode::NO_CONTENT, [(header::LOCATION, loc)]).into_response()
}

/// After a write: mirror to SQLite and queue the user-event-script event.
async fn after_write(s: &S, db: &crate::store::Db, h: &HeaderMap, ch: &Changes, kind: &str) -> Result<(), Error> {
    sql::sync(&s.pool, db, ch).await?;
    let (Some(tx), Some(sink)) = (s.events.get(), s.cfg.emit_events_to.as_ref()) else { return Ok(()) };
    let (rt, id) = match (kind, ch.deleted.first(), ch.touched.first()) {
        ("delete", Some(x), _) => *x,
        (_, _, Some(x)) => *x,
        _ => return Ok(()),
    };
    if !sink.wants(rt.name()) {
        return Ok(());
    }
    let rec = db.get(rt, id);
    let occurred = rec.map_or_else(jiff::Timestamp::now, |r| r.modified);
    let occurred_at = fmt_ts(occurred);
    let event = json!({
        // Millisecond precision keeps two edits within one second distinct in heartsuite's inbox.
        "event_id": format!("{}:{id}:{kind}:{}", rt.name(), occurred.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
        "type": kind,
        "record_type": rt.name(),
        "id": id.to_string(),
        "external_id": rec.and_then(|r| r.body.get("externalId").cloned()).unwrap_or(Value::Null),
        "occurred_at": occurred_at,
        "record": rec.map_or(Value::Null, |r| render(db, &record_base(h), r, true)),
    });
    let _ = tx.send(event);
    Ok(())
}

// ------------------------------------------------------------------ record handlers

async fn list(State(s): State<S>, Path(t): Path<String>, RawQuery(q): RawQuery, h: HeaderMap) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let p = params(&q);
    let (limit, offset) = paging(&p)?;
    let filter = Filter::parse(param(&p, "q"))?;
    let db = s.db.lock().await;
    let mut ids = Vec::new();
    for r in db.records.get(&rt).into_iter().flat_map(|m| m.values()) {
        if filter.matches(&db, r)? {
            ids.push(r.id);
        }
    }
    let total = ids.len() as u64;
    let base = record_base(&h);
    let items: Vec<Value> = ids
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|id| json!({"links": [{"rel": "self", "href": format!("{base}/{}/{id}", rt.name())}], "id": id.to_string()}))
        .collect();
    let has_more = u64::from(offset) + (items.len() as u64) < total;
    let links = page_links(&format!("{base}/{}", rt.name()), &p, limit, offset, total, has_more);
    Ok(typed_json(
        "application/vnd.oracle.resource+json; type=collection",
        json!({"links": links, "count": items.len(), "hasMore": has_more, "items": items, "offset": offset, "totalResults": total}),
    ))
}

async fn get_one(State(s): State<S>, Path((t, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let p = params(&q);
    let expand = param(&p, "expandSubResources").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let db = s.db.lock().await;
    let id = resolve_id(&db, rt, &id)?;
    let r = db.get(rt, id).ok_or_else(Error::not_found)?;
    let mut v = render(&db, &record_base(&h), r, expand);
    if let (Some(fields), Value::Object(o)) = (param(&p, "fields"), &mut v) {
        let keep: Vec<String> = fields.split(',').map(|f| f.trim().to_ascii_lowercase()).collect();
        o.retain(|k, _| k == "links" || k == "id" || keep.contains(&k.to_ascii_lowercase()));
    }
    Ok(typed_json("application/vnd.oracle.resource+json; type=singular", v))
}

async fn get_sublist(State(s): State<S>, Path((t, id, sub)): Path<(String, String, String)>, h: HeaderMap) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let db = s.db.lock().await;
    let id = resolve_id(&db, rt, &id)?;
    let r = db.get(rt, id).ok_or_else(Error::not_found)?;
    let (name, _) = rt.sublist(&sub).ok_or_else(|| Error::api(StatusCode::NOT_FOUND, "NONEXISTENT_ID", format!("Sublist '{sub}' does not exist on record type '{}'.", rt.name())))?;
    Ok(typed_json("application/vnd.oracle.resource+json; type=collection", render_sublist(&db, &record_base(&h), r, name)))
}

async fn create(State(s): State<S>, Path(t): Path<String>, h: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let input = json_body(&body)?;
    let mut db = s.db.lock().await;
    let (id, ch) = db.write(rt, None, &input, Mode::Create, &[], strict_names(&h))?;
    after_write(&s, &db, &h, &ch, "create").await?;
    Ok(created(&h, rt, id))
}

async fn patch(State(s): State<S>, Path((t, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let input = json_body(&body)?;
    let p = params(&q);
    let replace: Vec<String> = param(&p, "replace").map(|r| r.split(',').map(|x| x.trim().to_string()).collect()).unwrap_or_default();
    let mut db = s.db.lock().await;
    let id = resolve_id(&db, rt, &id)?;
    let (id, ch) = db.write(rt, Some(id), &input, Mode::Update, &replace, strict_names(&h))?;
    after_write(&s, &db, &h, &ch, "edit").await?;
    Ok(created(&h, rt, id))
}

async fn upsert(State(s): State<S>, Path((t, id)): Path<(String, String)>, RawQuery(q): RawQuery, h: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let Some(eid) = id.strip_prefix("eid:") else {
        return Err(Error::bad_param("PUT is supported only with an external ID: PUT /record/v1/{type}/eid:{externalId}."));
    };
    let mut input = json_body(&body)?;
    input.retain(|k, _| !k.eq_ignore_ascii_case("externalId"));
    input.insert("externalId".into(), Value::String(eid.to_string()));
    let p = params(&q);
    let replace: Vec<String> = param(&p, "replace").map(|r| r.split(',').map(|x| x.trim().to_string()).collect()).unwrap_or_default();
    let mut db = s.db.lock().await;
    let existing = db.by_eid(rt, eid);
    let (id, ch) = db.write(rt, existing, &input, Mode::Upsert, &replace, strict_names(&h))?;
    after_write(&s, &db, &h, &ch, if existing.is_some() { "edit" } else { "create" }).await?;
    Ok(created(&h, rt, id))
}

async fn delete(State(s): State<S>, Path((t, id)): Path<(String, String)>, h: HeaderMap) -> Result<Response, Error> {
    let rt = rtype(&t)?;
    let mut db = s.db.lock().await;
    let id = resolve_id(&db, rt, &id)?;
    let ch = db.delete(rt, id)?;
    after_write(&s, &db, &h, &ch, "delete").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn transform(State(s): State<S>, Path((t, id, target)): Path<(String, String, String)>, h: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let src = rtype(&t)?;
    let target = rtype(&target)?;
    let body = json_body(&body)?;
    let mut db = s.db.lock().await;
    let id = resolve_id(&db, src, &id)?;
    let input = db.transform_input(src, id, target, &body)?;
    let (new_id, ch) = db.write(target, None, &input, Mode::Create, &[], false)?;
    after_write(&s, &db, &h, &ch, "create").await?;
    Ok(created(&h, target, new_id))
}

// ------------------------------------------------------------------ SuiteQL, token, governance

async fn suiteql(State(s): State<S>, RawQuery(q): RawQuery, h: HeaderMap, body: Bytes) -> Result<Response, Error> {
    let p = params(&q);
    let (limit, offset) = paging(&p)?;
    let input = json_body(&body)?;
    let query = input.get("q").and_then(Value::as_str).ok_or_else(|| Error::bad_param("The request body must be {\"q\": \"SELECT ...\"}."))?;
    // Hold the store lock so a page never sees a half-mirrored write.
    let _db = s.db.lock().await;
    let (items, total) = sql::query(&s.pool, query, limit, offset).await?;
    let has_more = u64::from(offset) + (items.len() as u64) < total;
    let self_url = format!("http://{}/services/rest/query/v1/suiteql", host(&h));
    let links = page_links(&self_url, &p, limit, offset, total, has_more);
    Ok(typed_json(
        "application/vnd.oracle.resource+json; type=collection",
        json!({"links": links, "count": items.len(), "hasMore": has_more, "items": items, "offset": offset, "totalResults": total}),
    ))
}

async fn token(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let oauth_err = |code: &str, desc: String| {
        tracing::info!(error = code, %desc, "sandbox refused token request");
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": code, "error_description": desc}))).into_response()
    };
    let form = decode_query(&String::from_utf8_lossy(&body));
    let f = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if f("grant_type") != Some("client_credentials") {
        return oauth_err("unsupported_grant_type", "the sandbox supports grant_type=client_credentials".into());
    }
    if f("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return oauth_err("invalid_request", "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into());
    }
    let Some(jwt) = f("client_assertion") else { return oauth_err("invalid_request", "client_assertion missing".into()) };
    let url = format!("http://{}/services/rest/auth/oauth2/v1/token", host(&h));
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) = auth::verify_client_assertion(jwt, &s.creds, &url, now) {
        s.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        return oauth_err("invalid_grant", e);
    }
    let tok = match s.auth.lock() {
        Ok(mut a) => a.issue_token(now),
        Err(_) => return oauth_err("server_error", "auth state unavailable".into()),
    };
    axum::Json(json!({"access_token": tok, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

async fn governance(State(s): State<S>) -> Response {
    // Field names are UNCONFIRMED in the reference (§4); these follow its description.
    let n = s.limit.load(Ordering::Relaxed);
    axum::Json(json!({"accountConcurrencyLimit": n, "accountUnallocatedConcurrencyLimit": n, "limitType": "ACCOUNT"})).into_response()
}

// ------------------------------------------------------------------ control API

async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Conn>()
        .map(|c| c.peer)
        .or_else(|| req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0));
    if !peer.is_some_and(|p| p.ip().is_loopback()) {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"error": "the sandbox control API is loopback-only"}))).into_response();
    }
    next.run(req).await
}

async fn c_stats(State(s): State<S>) -> Response {
    axum::Json(crate::SandboxState(s).stats().await).into_response()
}

pub(crate) async fn reset(s: &Shared) -> Result<(), Error> {
    let mut db = s.db.lock().await;
    *db = crate::store::Db::seeded();
    sql::rebuild(&s.pool, &db).await?;
    if let Ok(mut f) = s.faults.lock() {
        f.clear();
    }
    if let Ok(mut a) = s.auth.lock() {
        a.clear();
    }
    for c in [&s.counters.requests, &s.counters.rate_limited, &s.counters.auth_failures, &s.counters.faults_injected, &s.counters.events_sent, &s.counters.events_failed] {
        c.store(0, Ordering::Relaxed);
    }
    s.limit.store(s.cfg.concurrency_limit, Ordering::Relaxed);
    s.latency_ms.store(u64::try_from(s.cfg.latency.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    Ok(())
}

async fn c_reset(State(s): State<S>) -> Result<Response, Error> {
    reset(&s).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}

async fn c_latency(State(s): State<S>, body: Bytes) -> Response {
    match serde_json::from_slice::<LatencyBody>(&body) {
        Ok(b) => {
            s.latency_ms.store(b.ms, Ordering::Relaxed);
            axum::Json(json!({"latency_ms": b.ms})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": format!("expected {{\"ms\": N}}: {e}")}))).into_response(),
    }
}

#[derive(Deserialize)]
struct LimitBody {
    limit: u32,
}

async fn c_concurrency(State(s): State<S>, body: Bytes) -> Response {
    match serde_json::from_slice::<LimitBody>(&body) {
        Ok(b) if b.limit >= 1 => {
            s.limit.store(b.limit, Ordering::Relaxed);
            axum::Json(json!({"concurrency_limit": b.limit})).into_response()
        }
        Ok(_) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "limit must be at least 1"}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": format!("expected {{\"limit\": N}}: {e}")}))).into_response(),
    }
}

async fn c_faults_list(State(s): State<S>) -> Response {
    let v: Vec<FaultRule> = s.faults.lock().map(|f| f.clone()).unwrap_or_default();
    axum::Json(v).into_response()
}

async fn c_faults_add(State(s): State<S>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            if f.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
                return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "probability must be within 0..=1"}))).into_response();
            }
            let id = add_fault(&s, f);
            (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn c_faults_clear(State(s): State<S>) -> Response {
    if let Ok(mut f) = s.faults.lock() {
        f.clear();
    }
    StatusCode::NO_CONTENT.into_response()
}

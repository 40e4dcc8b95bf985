//! The HTTP side: webhook ingress, health, metrics and the admin API, and the wiring that starts
//! the inbox writer and the worker pool beside it.

use crate::api_error::ApiError;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use heartsuite_core::{Clock, NewEvent, Secret};
use heartsuite_engine::alerts::Alerts;
use heartsuite_engine::breaker::Breakers;
use heartsuite_engine::ingress::{self, IngressError, SourceSpec};
use heartsuite_engine::writer::InboxWriter;
use heartsuite_engine::{JobHandler, Worker, WorkerConfig, admin, metrics as m};
use heartsuite_store::{DynStore, IngestItem, JobState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Which flows an event kind triggers.
pub trait FlowRouter: Send + Sync + 'static {
    fn flows_for(&self, kind: &str, payload: &Value) -> Vec<String>;
    /// Flows with a `[trigger] schedule`, which `start` hands to the scheduler.
    fn schedules(&self) -> Vec<(String, heartsuite_flows::schedule::Schedule)> {
        Vec::new()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub sources: Arc<HashMap<String, SourceSpec>>,
    pub writer: InboxWriter,
    pub router: Arc<dyn FlowRouter>,
    pub breakers: Arc<Breakers>,
    pub admin_token: Option<Secret>,
    pub max_body: usize,
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(m::JOB_DURATION.to_string()), m::JOB_DURATION_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

pub fn router(state: AppState) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/hooks/{source}", post(hook))
        .route("/hooks/{source}/{token}", post(hook_with_token))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/admin/jobs", get(admin_jobs))
        .route("/admin/jobs/{id}/replay", post(admin_replay))
        .route("/admin/jobs/{id}/discard", post(admin_discard))
        .route("/admin/audit/verify", get(admin_verify))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn hook(State(s): State<AppState>, Path(source): Path<String>, headers: HeaderMap, body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Response {
    ingest(&s, &source, None, &headers, body).await
}

async fn hook_with_token(
    State(s): State<AppState>,
    Path((source, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    ingest(&s, &source, Some(token), &headers, body).await
}

fn count(source: &str, outcome: &'static str) {
    metrics::counter!(m::EVENTS_RECEIVED, "source" => source.to_string(), "outcome" => outcome).increment(1);
}

async fn ingest(
    s: &AppState,
    source: &str,
    token: Option<String>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Some(spec) = s.sources.get(source) else {
        return ApiError::UnknownSource(source.to_string()).into_response();
    };
    let body = match body {
        Ok(b) => b,
        Err(_) => {
            count(source, "rejected");
            return ApiError::PayloadTooLarge(s.max_body).into_response();
        }
    };
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let now = s.clock.now_micros();
    if let Err(e) = ingress::verify(spec, &lookup, token.as_deref(), &body, now / 1_000_000) {
        count(source, "rejected");
        tracing::warn!(source, "webhook refused: {e}");
        return match e {
            IngressError::Unauthorized(m) => ApiError::Unauthorized(m),
            IngressError::BadRequest(m) => ApiError::InvalidPayload(m),
            IngressError::UnknownSource(x) => ApiError::UnknownSource(x),
        }
        .into_response();
    }
    let parsed = match ingress::parse(spec.format, &body) {
        Ok(p) => p,
        Err(e) => {
            count(source, "rejected");
            return ApiError::InvalidPayload(e.to_string().trim_start_matches("bad request: ").to_string()).into_response();
        }
    };
    if parsed.pans_masked > 0 {
        metrics::counter!(m::PANS_MASKED, "source" => source.to_string()).increment(parsed.pans_masked as u64);
        tracing::warn!(source, masked = parsed.pans_masked, "card numbers found in a webhook were masked before storage");
    }
    let flows = s.router.flows_for(&parsed.kind, &parsed.payload);
    let item = IngestItem {
        event: NewEvent {
            source: source.to_string(),
            source_event_key: parsed.key,
            kind: parsed.kind.clone(),
            payload: parsed.payload,
            received_at: now,
        },
        flows,
        run_at: now,
    };
    match s.writer.submit(item).await {
        Ok(r) if r.duplicate => {
            count(source, "duplicate");
            (StatusCode::OK, Json(json!({"status": "duplicate", "event_id": r.event_id}))).into_response()
        }
        Ok(r) => {
            count(source, "accepted");
            tracing::info!(source, event_id = r.event_id, kind = %parsed.kind, jobs = r.job_ids.len(), "event accepted");
            (StatusCode::OK, Json(json!({"status": "accepted", "event_id": r.event_id, "jobs": r.job_ids.len()}))).into_response()
        }
        Err(e) => ApiError::StoreUnavailable(e.to_string()).into_response(),
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store not ready: {e}")).into_response(),
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    if let Ok(counts) = s.store.job_counts().await {
        let get = |st: JobState| counts.iter().find(|(x, _)| *x == st).map(|(_, n)| *n).unwrap_or(0);
        let depth = get(JobState::Pending) + get(JobState::Retrying) + get(JobState::Running);
        metrics::gauge!(m::QUEUE_DEPTH).set(depth as f64);
        metrics::gauge!(m::DLQ_SIZE).set(get(JobState::Dead) as f64);
        for (st, n) in &counts {
            metrics::gauge!("heartsuite_jobs", "state" => st.as_str()).set(*n as f64);
        }
    }
    for (system, state) in s.breakers.states() {
        metrics::gauge!(m::CIRCUIT_STATE, "system" => system).set(m::circuit_value(&state));
    }
    match prometheus() {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
}

fn check_admin(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.admin_token else { return Err(ApiError::AdminDisabled) };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.len() == token.expose().len() && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("admin API needs `Authorization: Bearer <server.admin_token>`".into()))
    }
}

#[derive(Deserialize)]
struct JobsQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn admin_jobs(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<JobsQuery>) -> Result<Response, ApiError> {
    check_admin(&s, &headers)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(x) => Some(JobState::parse(x).ok_or_else(|| ApiError::InvalidPayload(format!("unknown job state `{x}`")))?),
    };
    let jobs = s.store.jobs(state, q.limit.unwrap_or(100).min(1000)).await.map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
    Ok(Json(json!({"jobs": jobs})).into_response())
}

fn engine_err(e: heartsuite_engine::EngineError) -> ApiError {
    match e {
        heartsuite_engine::EngineError::NotFound(m) => ApiError::NotFound(m),
        heartsuite_engine::EngineError::Invalid(m) => ApiError::Conflict(m),
        other => ApiError::StoreUnavailable(other.to_string()),
    }
}

async fn admin_replay(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<i64>, body: Bytes) -> Result<Response, ApiError> {
    check_admin(&s, &headers)?;
    let payload = if body.is_empty() {
        None
    } else {
        Some(serde_json::from_slice::<Value>(&body).map_err(|e| ApiError::InvalidPayload(format!("edited payload is not JSON: {e}")))?)
    };
    admin::dlq_replay(&s.store, s.clock.as_ref(), id, payload, "api:admin").await.map_err(engine_err)?;
    Ok(Json(json!({"status": "replayed", "job_id": id})).into_response())
}

#[derive(Deserialize, Default)]
struct DiscardBody {
    reason: Option<String>,
}

async fn admin_discard(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<i64>, body: Bytes) -> Result<Response, ApiError> {
    check_admin(&s, &headers)?;
    let b: DiscardBody = if body.is_empty() { DiscardBody::default() } else { serde_json::from_slice(&body).unwrap_or_default() };
    admin::dlq_discard(&s.store, s.clock.as_ref(), id, "api:admin", b.reason.as_deref().unwrap_or("discarded by operator"))
        .await
        .map_err(engine_err)?;
    Ok(Json(json!({"status": "discarded", "job_id": id})).into_response())
}

async fn admin_verify(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_admin(&s, &headers)?;
    let r = admin::audit_verify(&s.store).await.map_err(engine_err)?;
    Ok(Json(json!({
        "entries": r.entries,
        "intact": r.first_break.is_none(),
        "first_break": r.first_break.map(|b| json!({"seq": b.seq, "reason": b.reason})),
    }))
    .into_response())
}

/// Everything `serve` runs, ready to start.
pub struct StartOptions {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub sources: Vec<SourceSpec>,
    pub router: Arc<dyn FlowRouter>,
    pub handler: Arc<dyn JobHandler>,
    pub alerts: Arc<Alerts>,
    pub breakers: Arc<Breakers>,
    pub worker: Option<WorkerConfig>,
    pub admin_token: Option<Secret>,
    pub max_body: usize,
    pub max_batch: usize,
}

pub struct Running {
    pub addr: SocketAddr,
    pub store: DynStore,
    pub breakers: Arc<Breakers>,
    pub alerts: Arc<Alerts>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    worker: Option<tokio::task::JoinHandle<()>>,
    scheduler: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight webhooks finish, drains running jobs.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        if let Some(w) = self.worker {
            let _ = w.await;
        }
        if let Some(s) = self.scheduler {
            let _ = s.await;
        }
    }

    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for the server to stop (after a signal cancels the token).
    pub async fn wait(self) {
        let _ = self.server.await;
        if let Some(w) = self.worker {
            let _ = w.await;
        }
        if let Some(s) = self.scheduler {
            let _ = s.await;
        }
    }
}

pub async fn start(listener: TcpListener, opts: StartOptions) -> std::io::Result<Running> {
    let _ = prometheus();
    let addr = listener.local_addr()?;
    let wake = Arc::new(Notify::new());
    let (writer, _writer_task) = InboxWriter::spawn(opts.store.clone(), opts.max_batch, 16 * 1024, wake.clone());
    let state = AppState {
        store: opts.store.clone(),
        clock: opts.clock.clone(),
        sources: Arc::new(opts.sources.into_iter().map(|s| (s.name.clone(), s)).collect()),
        writer,
        router: opts.router.clone(),
        breakers: opts.breakers.clone(),
        admin_token: opts.admin_token,
        max_body: opts.max_body,
    };
    let shutdown = CancellationToken::new();
    let app = router(state);
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        let r = axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await }).await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server stopped with an error");
        }
    });
    let worker = opts.worker.map(|cfg| {
        let w = Arc::new(Worker::new(
            opts.store.clone(),
            opts.handler.clone(),
            opts.clock.clone(),
            opts.breakers.clone(),
            opts.alerts.clone(),
            cfg,
            wake,
        ));
        let token = shutdown.clone();
        tokio::spawn(async move { w.run(token).await })
    });
    // Scheduled slots go into the inbox like webhooks; every node may run this (the inbox key
    // makes a slot fire once).
    let scheduler = crate::scheduler::spawn(
        opts.router.schedules(),
        opts.store.clone(),
        opts.router,
        opts.clock.clone(),
        crate::scheduler::TICK,
        shutdown.clone(),
    );
    Ok(Running { addr, store: opts.store, breakers: opts.breakers, alerts: opts.alerts, shutdown, server, worker, scheduler })
}

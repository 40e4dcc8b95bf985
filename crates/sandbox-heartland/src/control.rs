//! The control API (`/_sandbox/...`, on both ports, no auth, loopback callers only) and the
//! fault layer in front of the simulated APIs: downtime (503), latency, 429 with `Retry-After`.
//! See README.md for the endpoint list.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{FaultSpec, Sandbox, Service, json_dec};
use crate::{DayOptions, Error};

pub(crate) fn with_faults(api: Router<Sandbox>, service: Service, sb: Sandbox) -> Router {
    api.merge(control_routes(service))
        .layer(middleware::from_fn_with_state(
            (sb.clone(), service),
            fault_layer,
        ))
        .with_state(sb)
}

fn err(status: StatusCode, m: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": m.into()}))).into_response()
}

async fn fault_layer(
    State((sb, service)): State<(Sandbox, Service)>,
    req: Request<Body>,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/_sandbox") {
        // The control API can wipe state and break the service: loopback callers only.
        let remote = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if remote.is_some_and(|ip| !ip.is_loopback()) {
            return err(
                StatusCode::FORBIDDEN,
                "the control API answers loopback callers only",
            );
        }
        return next.run(req).await;
    }
    let now = Instant::now();
    let (latency, verdict) = {
        let mut st = sb.lock();
        match service {
            Service::GpApi => st.stats.gpapi_requests += 1,
            Service::Retail => st.stats.retail_requests += 1,
        }
        let f = st.faults.for_service(service);
        let latency = sb.config().latency + f.latency;
        let verdict = if let Some(until) = f.down_until.filter(|u| *u > now) {
            st.stats.faults_503 += 1;
            Some((
                StatusCode::SERVICE_UNAVAILABLE,
                until.duration_since(now).as_secs().max(1),
            ))
        } else if f.rate_limit_until.is_some_and(|u| u > now) || f.rate_limit_remaining.is_some() {
            if let Some(n) = f.rate_limit_remaining.as_mut() {
                *n -= 1;
                if *n == 0 {
                    f.rate_limit_remaining = None;
                }
            }
            let retry = f.retry_after_secs.max(1);
            st.stats.faults_429 += 1;
            Some((StatusCode::TOO_MANY_REQUESTS, retry))
        } else {
            None
        };
        (latency, verdict)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match verdict {
        Some((code, retry_after)) => {
            let e = match (service, code) {
                (Service::GpApi, StatusCode::SERVICE_UNAVAILABLE) => Error::gp(
                    503,
                    "SYSTEM_ERROR_DOWNSTREAM",
                    "50018",
                    "Service temporarily unavailable (sandbox downtime fault)",
                ),
                (Service::GpApi, _) => Error::gp(
                    429,
                    "RATE_LIMIT_EXCEEDED",
                    "40029",
                    "Too many requests (sandbox rate-limit fault)",
                ),
                (Service::Retail, StatusCode::SERVICE_UNAVAILABLE) => Error::retail(
                    503,
                    "service_unavailable",
                    "temporarily unavailable (sandbox downtime fault)",
                ),
                (Service::Retail, _) => Error::retail(
                    429,
                    "rate_limited",
                    "too many requests (sandbox rate-limit fault)",
                ),
            };
            let mut r = match service {
                Service::GpApi => crate::gpapi::error_response(&e),
                Service::Retail => crate::retail::error_response(&e),
            };
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        None => next.run(req).await,
    };
    *sb.lock()
        .stats
        .responses_by_status
        .entry(resp.status().as_u16())
        .or_default() += 1;
    resp
}

fn control_routes(service: Service) -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/reset", post(reset))
        .route(
            "/_sandbox/faults",
            get(get_faults)
                .delete(clear_faults)
                .post(move |s: State<Sandbox>, b: Bytes| set_faults(s, b, service)),
        )
        .route("/_sandbox/generate", post(generate))
        .route("/_sandbox/batches/close", post(close_batches))
        .route("/_sandbox/deposits/fund", post(fund))
        .route("/_sandbox/deposits", get(deposits))
        .route("/_sandbox/tickets/{id}/complete", post(complete_ticket))
        .route("/_sandbox/inventory", put(set_inventory))
        .route("/_sandbox/inventory/adjust", post(adjust_inventory))
        .route("/_sandbox/tokens/expire", post(expire_tokens))
        .route("/_sandbox/deliveries", get(deliveries))
}

fn parse<T: for<'de> Deserialize<'de> + Default>(b: &Bytes) -> Result<T, Box<Response>> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(b)
        .map_err(|e| Box::new(err(StatusCode::BAD_REQUEST, format!("bad body: {e}"))))
}

fn ok(v: impl serde::Serialize) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

async fn stats(State(sb): State<Sandbox>) -> Response {
    let st = sb.lock();
    let mut v = serde_json::to_value(&st.stats).unwrap_or(Value::Null);
    v["counts"] = json!({
        "transactions": st.gp.txns.len(),
        "batches": st.gp.batches.len(),
        "deposits": st.gp.deposits.len(),
        "payment_methods": st.gp.pmts.len(),
        "tokens": st.gp.tokens.len(),
        "items": st.retail.colls.get("items").map_or(0, |c| c.len()),
        "customers": st.retail.colls.get("customers").map_or(0, |c| c.len()),
        "tickets": st.retail.colls.get("tickets").map_or(0, |c| c.len()),
        "locations": st.retail.colls.get("locations").map_or(0, |c| c.len()),
        "webhooks": st.retail.hooks.len(),
    });
    ok(v)
}

async fn reset(State(sb): State<Sandbox>) -> Response {
    sb.reset();
    ok(json!({"reset": true}))
}

async fn get_faults(State(sb): State<Sandbox>) -> Response {
    ok(sb.lock().faults.view())
}

async fn clear_faults(State(sb): State<Sandbox>) -> Response {
    sb.clear_faults();
    ok(sb.lock().faults.view())
}

async fn set_faults(State(sb): State<Sandbox>, body: Bytes, service: Service) -> Response {
    let spec: FaultSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match sb.set_faults(&spec, service) {
        Ok(()) => ok(sb.lock().faults.view()),
        Err(e) => err(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn generate(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let opts: DayOptions = match parse(&body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    // A few thousand tickets take a moment: keep it off the async workers.
    match tokio::task::spawn_blocking(move || sb.generate_day(&opts)).await {
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("generator task failed: {e}"),
        ),
        Ok(Err(e)) => err(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Ok(day)) => ok(json!({"summary": day.summary, "webhook_payloads": day.webhooks.len()})),
    }
}

async fn close_batches(State(sb): State<Sandbox>) -> Response {
    ok(sb.close_open_batches(Timestamp::now()))
}

#[derive(Default, Deserialize)]
struct FundBody {
    date: Option<jiff::civil::Date>,
}

async fn fund(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let b: FundBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let date = b.date.unwrap_or_else(|| {
        Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
    });
    ok(sb.fund_deposits(date))
}

async fn deposits(State(sb): State<Sandbox>) -> Response {
    ok(sb.deposits())
}

async fn complete_ticket(State(sb): State<Sandbox>, Path(id): Path<i64>) -> Response {
    match sb.complete_ticket(id, Timestamp::now()) {
        Ok(v) => ok(v),
        Err(e) => crate::retail::error_response(&e),
    }
}

#[derive(Default, Deserialize)]
struct InventoryBody {
    item_id: i64,
    location_id: i64,
    qty: Option<Value>,
    delta: Option<Value>,
}

fn dec_arg(v: Option<&Value>, name: &str) -> Result<Decimal, Box<Response>> {
    // Bounded so repeated adjustments can never overflow a Decimal.
    v.and_then(json_dec)
        .filter(|d| d.abs() <= Decimal::from(1_000_000_000))
        .ok_or_else(|| {
            Box::new(err(
                StatusCode::BAD_REQUEST,
                format!("{name} must be a decimal number of at most 1e9"),
            ))
        })
}

async fn set_inventory(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let r = parse::<InventoryBody>(&body).and_then(|b| {
        let q = dec_arg(b.qty.as_ref(), "qty")?;
        sb.set_inventory(b.item_id, b.location_id, q);
        Ok(ok(json!({"item_id": b.item_id, "location_id": b.location_id, "qty": crate::state::dec_json(q)})))
    });
    r.unwrap_or_else(|e| *e)
}

async fn adjust_inventory(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let r = parse::<InventoryBody>(&body).and_then(|b| {
        let d = dec_arg(b.delta.as_ref(), "delta")?;
        let q = sb.adjust_inventory(b.item_id, b.location_id, d);
        Ok(ok(json!({"item_id": b.item_id, "location_id": b.location_id, "qty": crate::state::dec_json(q)})))
    });
    r.unwrap_or_else(|e| *e)
}

async fn expire_tokens(State(sb): State<Sandbox>) -> Response {
    sb.expire_tokens();
    ok(json!({"expired": true}))
}

async fn deliveries(State(sb): State<Sandbox>) -> Response {
    ok(sb.delivery_log())
}

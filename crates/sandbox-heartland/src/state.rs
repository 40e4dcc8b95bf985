//! The simulator's shared state and the [`Sandbox`] handle the servers, the generator, tests and
//! the demo all act through. One mutex guards everything: requests are tiny and never await while
//! holding it, and one lock makes every operation atomic (an idempotency check and the write it
//! guards cannot interleave with another request).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::card::CardInfo;
use crate::{Config, Error};

/// Which of the two simulated APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    GpApi,
    Retail,
}

// ---------------------------------------------------------------- GP-API model

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Status {
    Preauthorized,
    Captured,
    Batched,
    Funded,
    Reversed,
    Declined,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Preauthorized => "PREAUTHORIZED",
            Status::Captured => "CAPTURED",
            Status::Batched => "BATCHED",
            Status::Funded => "FUNDED",
            Status::Reversed => "REVERSED",
            Status::Declined => "DECLINED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sale,
    Refund,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "SALE",
            Kind::Refund => "REFUND",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub id: String,
    pub kind: &'static str,
    pub time_created: Timestamp,
    pub result_code: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub id: String,
    pub time_created: Timestamp,
    pub kind: Kind,
    pub status: Status,
    pub channel: String,
    pub capture_mode: String,
    /// Current amount in minor units: authorized, then captured (GP-API reports the latter).
    pub amount: i64,
    pub authorized: i64,
    /// Sum of linked refunds, to refuse an over-refund.
    pub refunded: i64,
    pub currency: String,
    pub country: String,
    pub reference: String,
    pub description: Option<String>,
    pub order_reference: Option<String>,
    pub entry_mode: String,
    pub cardholder: Option<String>,
    pub card: CardInfo,
    pub funding: String,
    pub token_id: Option<String>,
    pub result: String,
    pub authcode: String,
    pub brand_reference: String,
    pub arn: String,
    pub action: Action,
    pub batch_id: String,
    pub deposit_id: Option<String>,
    pub parent_id: Option<String>,
    pub status_url: Option<String>,
    pub chargeback: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredCard {
    pub id: String,
    pub time_created: Timestamp,
    pub card: CardInfo,
    pub exp_month: String,
    pub exp_year: String,
    pub name: Option<String>,
    pub reference: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub id: String,
    pub currency: String,
    pub closed_at: Option<Timestamp>,
    pub txn_ids: Vec<String>,
    pub deposit_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Deposit {
    pub id: String,
    pub date: jiff::civil::Date,
    pub status: &'static str,
    pub currency: String,
    pub batch_ids: Vec<String>,
    pub sales_count: i64,
    pub sales_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    pub fees_amount: i64,
    pub fees_by_brand: BTreeMap<String, i64>,
    pub chargebacks_count: i64,
    pub chargebacks_amount: i64,
    pub net: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Gp {
    pub tokens: HashMap<String, Timestamp>,
    pub txns: Vec<Txn>,
    pub txn_by_id: HashMap<String, usize>,
    /// Idempotency key -> id of the resource the first request produced.
    pub idem: HashMap<String, String>,
    pub pmts: HashMap<String, StoredCard>,
    pub batches: Vec<Batch>,
    pub batch_by_id: HashMap<String, usize>,
    /// Currency -> the batch captures currently land in.
    pub open_batch: BTreeMap<String, String>,
    pub deposits: Vec<Deposit>,
    pub deposit_by_id: HashMap<String, usize>,
}

// ---------------------------------------------------------------- Retail model

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Hook {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
}

/// Retail resources are kept as JSON objects: the API is schemaless at the edges (`custom{}`,
/// PUT of any field) and `_filter` can name any field.
#[derive(Debug, Default)]
pub(crate) struct Retail {
    pub next_ids: BTreeMap<&'static str, i64>,
    pub colls: BTreeMap<&'static str, BTreeMap<i64, Map<String, Value>>>,
    /// (item_id, location_id) -> quantity on hand.
    pub inventory: BTreeMap<(i64, i64), Decimal>,
    pub hooks: BTreeMap<i64, Hook>,
    /// (child collection, ticket id) -> child ids, so ticket totals never scan every line.
    pub children: HashMap<(&'static str, i64), Vec<i64>>,
}

impl Retail {
    pub(crate) fn next_id(&mut self, coll: &'static str) -> i64 {
        let n = self.next_ids.entry(coll).or_insert(100_000);
        *n += 1;
        *n
    }
    pub(crate) fn coll(&mut self, coll: &'static str) -> &mut BTreeMap<i64, Map<String, Value>> {
        self.colls.entry(coll).or_default()
    }
    pub(crate) fn get(&self, coll: &'static str, id: i64) -> Option<&Map<String, Value>> {
        self.colls.get(coll).and_then(|c| c.get(&id))
    }
    pub(crate) fn children_of(
        &self,
        coll: &'static str,
        ticket: i64,
    ) -> impl Iterator<Item = &Map<String, Value>> {
        self.children
            .get(&(coll, ticket))
            .into_iter()
            .flatten()
            .filter_map(move |id| self.get(coll, *id))
    }
    pub(crate) fn all(&self, coll: &'static str) -> impl Iterator<Item = &Map<String, Value>> {
        self.colls.get(coll).into_iter().flat_map(|c| c.values())
    }
}

// ---------------------------------------------------------------- faults and stats

#[derive(Debug, Clone, Default)]
pub struct ServiceFaults {
    pub down_until: Option<Instant>,
    pub latency: Duration,
    pub rate_limit_until: Option<Instant>,
    /// When set, only this many more requests get a 429 (counted down).
    pub rate_limit_remaining: Option<u32>,
    pub retry_after_secs: u64,
}

/// Fault settings in force.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub gpapi: ServiceFaults,
    pub retail: ServiceFaults,
    /// The next N webhook / status_url deliveries are silently dropped.
    pub drop_webhooks: u32,
    /// Deposits are created `DELAYED` instead of `FUNDED` while set.
    pub delay_deposits: bool,
}

impl Faults {
    pub(crate) fn for_service(&mut self, s: Service) -> &mut ServiceFaults {
        match s {
            Service::GpApi => &mut self.gpapi,
            Service::Retail => &mut self.retail,
        }
    }

    pub(crate) fn view(&self) -> Value {
        let now = Instant::now();
        let svc = |f: &ServiceFaults| {
            let left = |t: Option<Instant>| {
                t.map(|t| t.saturating_duration_since(now).as_millis() as u64)
                    .unwrap_or(0)
            };
            serde_json::json!({
                "downtime_remaining_ms": left(f.down_until),
                "latency_ms": f.latency.as_millis() as u64,
                "rate_limit_remaining_ms": left(f.rate_limit_until),
                "rate_limit_requests": f.rate_limit_remaining,
                "retry_after_secs": f.retry_after_secs,
            })
        };
        serde_json::json!({
            "gpapi": svc(&self.gpapi),
            "retail": svc(&self.retail),
            "drop_webhooks": self.drop_webhooks,
            "delay_deposits": self.delay_deposits,
        })
    }
}

/// Body of `POST /_sandbox/faults`; every field optional, absent = unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `gpapi`, `retail` or `both`; default: the service whose port received the request.
    pub service: Option<String>,
    pub downtime_secs: Option<u64>,
    pub downtime_ms: Option<u64>,
    pub latency_ms: Option<u64>,
    /// 429 for this long ...
    pub rate_limit_secs: Option<u64>,
    /// ... or for this many requests.
    pub rate_limit_requests: Option<u32>,
    pub retry_after_secs: Option<u64>,
    pub drop_webhooks: Option<u32>,
    pub delay_deposits: Option<bool>,
}

/// Counters for `/_sandbox/stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub gpapi_requests: u64,
    pub retail_requests: u64,
    pub responses_by_status: BTreeMap<u16, u64>,
    pub faults_503: u64,
    pub faults_429: u64,
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
    pub webhooks_dropped: u64,
    pub webhook_attempts: u64,
    pub notifications_delivered: u64,
}

/// One delivery the sandbox made (or would make): a Retail webhook or a GP-API status_url POST.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookPayload {
    /// Retail event name, or `status_url` for GP-API notifications.
    pub event: String,
    pub body: Value,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeliveryRecord {
    pub event: String,
    pub url: String,
    pub attempts: u32,
    pub outcome: String,
}

/// What the delivery worker sends.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub event: String,
    pub url: String,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Result of closing a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchClose {
    pub id: String,
    pub currency: String,
    pub transaction_count: i64,
    pub sales_count: i64,
    pub sales_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    /// sales − refunds, minor units.
    pub net_amount: i64,
}

/// A deposit as the demo/tests see it (all amounts minor units, positive magnitudes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositView {
    pub id: String,
    pub date: String,
    pub status: String,
    pub currency: String,
    pub batch_ids: Vec<String>,
    pub sales_count: i64,
    pub sales_amount: i64,
    pub refunds_count: i64,
    pub refunds_amount: i64,
    pub fees_amount: i64,
    pub fees_by_brand: BTreeMap<String, i64>,
    pub chargebacks_count: i64,
    pub chargebacks_amount: i64,
    /// sales − refunds − fees − chargebacks.
    pub net_amount: i64,
}

impl From<&Deposit> for DepositView {
    fn from(d: &Deposit) -> Self {
        DepositView {
            id: d.id.clone(),
            date: d.date.to_string(),
            status: d.status.to_string(),
            currency: d.currency.clone(),
            batch_ids: d.batch_ids.clone(),
            sales_count: d.sales_count,
            sales_amount: d.sales_amount,
            refunds_count: d.refunds_count,
            refunds_amount: d.refunds_amount,
            fees_amount: d.fees_amount,
            fees_by_brand: d.fees_by_brand.clone(),
            chargebacks_count: d.chargebacks_count,
            chargebacks_amount: d.chargebacks_amount,
            net_amount: d.net,
        }
    }
}

// ---------------------------------------------------------------- the state

#[derive(Debug, Default)]
pub(crate) struct State {
    pub seq: u64,
    pub gp: Gp,
    pub retail: Retail,
    pub faults: Faults,
    pub stats: Stats,
    pub deliveries: VecDeque<DeliveryRecord>,
    /// Set while the generator runs with `emit_webhooks: false`.
    pub mute_webhooks: bool,
}

impl State {
    /// Deterministic, realistic-looking ids (`TRN_` + 30 hex): hash of seed, prefix and a counter,
    /// so the same seed and the same sequence of operations give the same ids.
    pub(crate) fn id(&mut self, seed: u64, prefix: &str) -> String {
        self.seq += 1;
        let h = Sha256::digest(format!("{seed}:{prefix}:{}", self.seq).as_bytes());
        format!("{prefix}_{}", &hex::encode(h)[..30])
    }
}

pub(crate) struct Inner {
    pub cfg: Config,
    pub st: Mutex<State>,
    pub outbox: mpsc::UnboundedSender<Outgoing>,
    pub http: reqwest::Client,
}

/// Shared handle on the simulator (cheap to clone). Everything the HTTP APIs can do to the state
/// is also reachable here, for tests and the demo.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

impl Sandbox {
    pub(crate) fn new(cfg: Config) -> (Sandbox, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let inner = Inner {
            cfg,
            st: Mutex::new(State::default()),
            outbox: tx,
            http,
        };
        (
            Sandbox {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// A poisoned lock only means a handler panicked mid-request; the data is still the best we
    /// have, so keep serving rather than failing every later request.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn send(&self, st: &mut State, out: Outgoing) {
        if st.faults.drop_webhooks > 0 {
            st.faults.drop_webhooks -= 1;
            st.stats.webhooks_dropped += 1;
            push_delivery(
                st,
                DeliveryRecord {
                    event: out.event,
                    url: out.url,
                    attempts: 0,
                    outcome: "dropped (fault)".into(),
                },
            );
            return;
        }
        // The receiver lives as long as the servers; after shutdown there is nobody to deliver to.
        let _ = self.inner.outbox.send(out);
    }

    /// Queues a Retail webhook for every registration that subscribed to `event`.
    pub(crate) fn emit_retail(&self, st: &mut State, event: &str, body: &Value) {
        let targets: Vec<String> = st
            .retail
            .hooks
            .values()
            .filter(|h| h.events.iter().any(|e| e == event || e == "*"))
            .map(|h| h.url.clone())
            .collect();
        if targets.is_empty() || st.mute_webhooks {
            return;
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        for url in targets {
            let out = Outgoing {
                event: event.to_string(),
                url,
                body: bytes.clone(),
                headers: vec![("content-type", "application/json".into())],
            };
            self.send(st, out);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Current fault settings.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Applies a fault spec; `default_service` is used when the spec names none.
    pub fn set_faults(&self, spec: &FaultSpec, default_service: Service) -> Result<(), Error> {
        let services: Vec<Service> = match spec.service.as_deref() {
            None => vec![default_service],
            Some("gpapi") => vec![Service::GpApi],
            Some("retail") => vec![Service::Retail],
            Some("both") | Some("all") => vec![Service::GpApi, Service::Retail],
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "service must be gpapi, retail or both, not `{other}`"
                )));
            }
        };
        let now = Instant::now();
        // Faults are bounded (a week, a minute of latency) so `Instant` arithmetic cannot overflow.
        const MAX_MS: u64 = 7 * 24 * 3600 * 1000;
        let until = |ms: u64| (ms > 0).then(|| now + Duration::from_millis(ms.min(MAX_MS)));
        let mut st = self.lock();
        for s in services {
            let f = st.faults.for_service(s);
            if let Some(ms) = spec
                .downtime_ms
                .or(spec.downtime_secs.map(|s| s.saturating_mul(1000)))
            {
                f.down_until = until(ms);
            }
            if let Some(ms) = spec.latency_ms {
                f.latency = Duration::from_millis(ms.min(60_000));
            }
            if let Some(secs) = spec.rate_limit_secs {
                f.rate_limit_until = until(secs.saturating_mul(1000));
            }
            if let Some(n) = spec.rate_limit_requests {
                f.rate_limit_remaining = (n > 0).then_some(n);
            }
            if let Some(r) = spec.retry_after_secs {
                f.retry_after_secs = r;
            }
            if f.retry_after_secs == 0 {
                f.retry_after_secs = 1;
            }
        }
        if let Some(n) = spec.drop_webhooks {
            st.faults.drop_webhooks = n;
        }
        if let Some(d) = spec.delay_deposits {
            st.faults.delay_deposits = d;
        }
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
    }

    /// Forgets everything: transactions, tokens, Retail data, webhooks, faults, stats.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// Makes every issued access token expired (to exercise re-authentication).
    pub fn expire_tokens(&self) {
        let past = Timestamp::UNIX_EPOCH;
        for exp in self.lock().gp.tokens.values_mut() {
            *exp = past;
        }
    }

    /// Recent deliveries (newest last), at most 500.
    pub fn delivery_log(&self) -> Value {
        serde_json::to_value(&self.lock().deliveries).unwrap_or(Value::Null)
    }

    pub(crate) fn chargeback_rng(&self, salt: &str) -> StdRng {
        let h = Sha256::digest(format!("{}:cb:{salt}", self.inner.cfg.seed).as_bytes());
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&h);
        StdRng::from_seed(seed)
    }
}

pub(crate) fn push_delivery(st: &mut State, rec: DeliveryRecord) {
    if st.deliveries.len() >= 500 {
        st.deliveries.pop_front();
    }
    st.deliveries.push_back(rec);
}

/// An exact decimal as a JSON number (serde_json is built with `arbitrary_precision`, so the
/// digits go out as written — never through a float).
pub(crate) fn dec_json(d: Decimal) -> Value {
    d.normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Reads a decimal from a JSON number or string, exactly.
pub(crate) fn json_dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Minor units (2-decimal currencies, the only ones the sandbox's locations use) to a decimal.
pub(crate) fn minor_to_dec(minor: i64) -> Decimal {
    Decimal::new(minor, 2)
}

/// RFC 3339 with milliseconds and `Z`, as GP-API writes `time_created`.
pub(crate) fn ts_ms(t: Timestamp) -> String {
    format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

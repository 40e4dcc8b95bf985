//! Wiring: flow files decide which flows an event triggers, and a job runs its flow with a
//! context whose lookups read the crosswalk (then the remote) and whose writes are the engine's
//! idempotent effects executed by the connectors.

use crate::config::{Config, SecretResolver};
use crate::connectors::Connectors;
use crate::server::FlowRouter;
use anyhow::{Result, anyhow};
use async_trait::async_trait;
use heartsuite_core::{Clock, ErrorClass, Failure};
use heartsuite_engine::breaker::Breakers;
use heartsuite_engine::context::job_input;
use heartsuite_engine::policy::Policies;
use heartsuite_engine::{JobContext, JobHandler};
use heartsuite_flows::{FlowContext, FlowSet, WriteIntent, WriteResult};
use heartsuite_store::LeasedJob;
use serde_json::Value;
use std::sync::Arc;

pub struct FlowEngine {
    pub flows: Arc<FlowSet>,
    pub connectors: Arc<Connectors>,
    pub breakers: Arc<Breakers>,
    pub base_policies: Policies,
}

impl FlowRouter for FlowEngine {
    fn flows_for(&self, kind: &str, payload: &Value) -> Vec<String> {
        self.flows.flows_for(kind, payload).into_iter().map(|f| f.name().to_string()).collect()
    }
    fn schedules(&self) -> Vec<(String, heartsuite_flows::schedule::Schedule)> {
        self.flows.flows().iter().filter_map(|f| Some((f.name().to_string(), f.schedule()?.clone()))).collect()
    }
}

#[async_trait]
impl JobHandler for FlowEngine {
    fn policies(&self, flow: &str) -> Policies {
        let mut p = self.base_policies.clone();
        if let Some(over) = self.flows.get(flow).ok().and_then(|f| f.retry_policy()) {
            for class in ErrorClass::ALL {
                if let Some(o) = over.for_class(class) {
                    let mut cp = p.get(class);
                    if let Some(v) = o.max_attempts {
                        cp.max_attempts = v;
                    }
                    if let Some(v) = o.base_delay {
                        cp.base_delay = v;
                    }
                    if let Some(v) = o.max_delay {
                        cp.max_delay = v;
                    }
                    p.set(class, cp);
                }
            }
        }
        p
    }

    async fn run(&self, job: &LeasedJob, ctx: &JobContext) -> Result<(), Failure> {
        let flow = self
            .flows
            .get(&job.job.flow)
            .map_err(|_| Failure::bug(format!("flow `{}` is no longer loaded; restore its file or discard the job", job.job.flow)))?;
        let input = self.trusted_input(job, ctx).await?;
        let mut fctx = EngineFlowContext { job: ctx, engine: self };
        let report = flow.run(&input, &mut fctx).await?;
        // A warning (e.g. a settlement variance) lets the run finish but must stay visible:
        // it goes to the log and, with the job as subject, to the audit chain.
        for w in report.findings.iter().filter(|f| f.kind == heartsuite_flows::FindingKind::Warning) {
            tracing::warn!(flow = %job.job.flow, job = job.job.id, step = %w.step, path = %w.path, "{}", w.message);
            let details = serde_json::json!({"flow": job.job.flow, "step": w.step, "path": w.path, "rule": w.rule, "message": w.message});
            ctx.audit("flow.warning", &format!("job:{}", job.job.id), None, details).await?;
        }
        // Corrections the validation made (trimmed, e-mail case, phone, country...) are part
        // of the record's history: one audit entry per run, before and after each.
        let corrections: Vec<Value> = report
            .findings
            .iter()
            .filter(|f| f.kind == heartsuite_flows::FindingKind::Correction)
            .map(|c| serde_json::json!({"step": c.step, "path": c.path, "rule": c.rule, "before": c.before, "after": c.after}))
            .collect();
        if !corrections.is_empty() {
            let details = serde_json::json!({"flow": job.job.flow, "corrections": corrections});
            ctx.audit("flow.corrections", &format!("job:{}", job.job.id), None, details).await?;
        }
        Ok(())
    }
}

impl FlowEngine {
    /// Heartland Retail signs nothing: its webhook is only a hint. With `[retail]` configured,
    /// the record is fetched back from the Retail API and its fields replace what the webhook
    /// claimed (an operator's edited replay payload is used as given).
    async fn trusted_input(&self, job: &LeasedJob, ctx: &JobContext) -> Result<Value, Failure> {
        let payload = job_input(job).clone();
        if let (Some(ns), true, None) = (&self.connectors.netsuite, job.event.kind.starts_with("netsuite."), &job.job.payload_override) {
            return self.netsuite_fetch_back(ns, payload, ctx).await;
        }
        let (Some(retail), true, None) = (&self.connectors.retail, job.event.kind.starts_with("retail."), &job.job.payload_override) else {
            return Ok(payload);
        };
        let id = match payload.get("id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| Failure::data("a Heartland Retail webhook without a numeric `id`").with_field("id"))?;
        if let Some(parked) = self.breakers.check("retail") {
            return Err(parked);
        }
        ctx.touch("retail");
        let fetched = match job.event.kind.as_str() {
            "retail.customer.changed" => serde_json::to_value(retail.get_customer_with_addresses(id).await?),
            "retail.ticket.completed" | "retail.return.completed" => Ok(ticket_with_skus(retail, id).await?),
            "retail.item.changed" => serde_json::to_value(retail.get_item(id).await?),
            _ => return Ok(payload),
        }
        .map_err(|e| Failure::bug(format!("re-encoding the fetched Retail record: {e}")))?;
        let mut merged = payload;
        if let (Value::Object(into), Value::Object(from)) = (&mut merged, fetched) {
            for (k, v) in from {
                if !v.is_null() {
                    into.insert(k, v);
                }
            }
        }
        Ok(merged)
    }
}

/// The record a NetSuite transaction was created from, for the types whose source is fixed:
/// a fulfilment's lines carry no prices, its sales order does.
fn created_from_type(record_type: &str) -> Option<&'static str> {
    record_type.eq_ignore_ascii_case("itemFulfillment").then_some("salesOrder")
}

impl FlowEngine {
    /// The NetSuite user-event script sends `record: null` (SuiteScript cannot produce the REST
    /// shape) and a snapshot could be stale or forged, so the record is read by id from the REST
    /// API (sublists expanded) and put in as `record`; for a fulfilment, its sales order as
    /// `created_from`. Poller rows (no `record_type`) come from the API already and deletions
    /// have nothing left to read: both are used as given.
    async fn netsuite_fetch_back(&self, ns: &heartsuite_netsuite::NetSuiteClient, payload: Value, ctx: &JobContext) -> Result<Value, Failure> {
        let Some(record_type) = payload.get("record_type").and_then(Value::as_str).map(str::to_string) else {
            return Ok(payload);
        };
        if payload.get("type").and_then(Value::as_str) == Some("delete") {
            return Ok(payload);
        }
        let id = match payload.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(Failure::data("a NetSuite record event without an `id`").with_field("id")),
        };
        if let Some(parked) = self.breakers.check("netsuite") {
            return Err(parked);
        }
        ctx.touch("netsuite");
        let record: Value = ns.get(&record_type, &id, true).await.map_err(|e| e.to_failure())?;
        let source = match (created_from_type(&record_type), record.pointer("/createdFrom/id").and_then(Value::as_str)) {
            (Some(t), Some(from)) => Some(ns.get::<Value>(t, from, true).await.map_err(|e| e.to_failure())?),
            _ => None,
        };
        let mut merged = payload;
        if let Value::Object(m) = &mut merged {
            m.insert("record".into(), record);
            if let Some(s) = source {
                m.insert("created_from".into(), s);
            }
        }
        Ok(merged)
    }
}

struct EngineFlowContext<'a> {
    job: &'a JobContext,
    engine: &'a FlowEngine,
}

impl EngineFlowContext<'_> {
    fn admit(&self, system: &str) -> Result<(), Failure> {
        match self.engine.breakers.check(system) {
            None => Ok(()),
            Some(parked) => Err(parked),
        }
    }
}

#[async_trait]
impl FlowContext for EngineFlowContext<'_> {
    async fn candidates(&mut self, system: &str, record_type: &str, probe: &Value) -> Result<Vec<Value>, Failure> {
        crate::customer_match::candidates(self.job, self.engine, system, record_type, probe).await
    }

    async fn lookup(&mut self, system: &str, record_type: &str, key: &str) -> Result<Option<String>, Failure> {
        if let Some(id) = self.job.known(system, record_type, key).await? {
            return Ok(Some(id));
        }
        // Not created by us (or not yet recorded): ask the remote, and remember what it says.
        if !self.engine.connectors.can_lookup(system, record_type) {
            return Ok(None);
        }
        self.admit(system)?;
        self.job.touch(system);
        match self.engine.connectors.remote_lookup(system, record_type, key).await? {
            Some(id) => {
                let recorded = self.job.once(system, record_type, key, "lookup", || async { Ok(id) }).await?;
                Ok(Some(recorded))
            }
            None => Ok(None),
        }
    }

    async fn write(&mut self, intent: &WriteIntent) -> Result<WriteResult, Failure> {
        // Customer merges and e-mail-claimed creates (flow 7) need more than one effect.
        if let Some(r) = crate::customer_match::write(self.job, self.engine, intent).await {
            return r.map(|remote_id| WriteResult { remote_id, response: Value::Null });
        }
        let system = intent.target.split('.').next().unwrap_or_default().to_string();
        let action = intent.target.split_once('.').map(|(_, a)| a).unwrap_or("write");
        if self.job.known(&system, &intent.record_type, &intent.idempotency_key).await?.is_none() {
            self.admit(&system)?;
        }
        let connectors = self.engine.connectors.clone();
        let remote_id = self
            .job
            .once(&system, &intent.record_type, &intent.idempotency_key, action, || async move { connectors.execute(intent).await })
            .await?;
        let response = if system == "gpapi" {
            self.admit(&system)?;
            self.engine.connectors.write_response(&intent.target, &remote_id).await?
        } else {
            Value::Null
        };
        Ok(WriteResult { remote_id, response })
    }
}

/// A ticket with its lines and payments, each item line with its item's `sku` (Retail
/// `public_id`): NetSuite knows items by SKU, and a Retail line carries only the item id. One
/// request for all the ticket's items.
async fn ticket_with_skus(retail: &heartsuite_heartland::RetailClient, id: i64) -> Result<Value, Failure> {
    let detail = retail.ticket_detail(id).await?;
    let item_ids: std::collections::BTreeSet<i64> = detail.lines.iter().filter_map(|l| l.item_id).collect();
    let mut v = serde_json::to_value(&detail).map_err(|e| Failure::bug(format!("re-encoding the fetched Retail ticket: {e}")))?;
    if item_ids.is_empty() {
        return Ok(v);
    }
    let q = heartsuite_heartland::ListQuery::filter(serde_json::json!({"id": {"$in": item_ids}}));
    let skus: std::collections::HashMap<i64, String> =
        retail.list_items(&q).await?.into_iter().filter_map(|i| Some((i.id, i.public_id?))).collect();
    // A line whose item has no SKU gets none; the flow reports it by line.
    for line in v.get_mut("lines").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(sku) = line.get("item_id").and_then(Value::as_i64).and_then(|i| skus.get(&i)) {
            line["sku"] = Value::String(sku.clone());
        }
    }
    Ok(v)
}

/// Loads the flows: the configured directory if it exists, else the built-in flows.
pub fn load_flows(cfg: &Config) -> Result<FlowSet> {
    let loaded = if cfg.flows.dir.is_dir() { FlowSet::load_dir(&cfg.flows.dir) } else { FlowSet::builtin() };
    loaded.map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow!("the flow files have {} problem(s):\n{}", lines.len(), lines.join("\n"))
    })
}

pub fn build(
    cfg: &Config,
    secrets: &SecretResolver,
    clock: Arc<dyn Clock>,
    breakers: Arc<Breakers>,
    store: Option<heartsuite_store::DynStore>,
) -> Result<Wired> {
    let flows = Arc::new(load_flows(cfg)?);
    let connectors = Arc::new(Connectors::from_config(cfg, secrets, clock, store)?);
    let mut base_policies = Policies::default();
    for (name, p) in &cfg.retry {
        if let Some(class) = ErrorClass::parse(name) {
            base_policies.set(class, p.clone());
        }
    }
    let engine = Arc::new(FlowEngine { flows, connectors: connectors.clone(), breakers, base_policies });
    Ok(Wired { router: engine.clone(), handler: engine, connectors })
}

pub struct Wired {
    pub router: Arc<dyn FlowRouter>,
    pub handler: Arc<dyn JobHandler>,
    pub connectors: Arc<Connectors>,
}

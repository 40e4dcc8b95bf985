//! Running a flow: steps in order, each expression evaluated against the event (`input`) and
//! the results of earlier steps (`steps.<name>`). Remote effects go through [`FlowContext`],
//! which the engine implements with its idempotent effect store and the connectors, and which
//! [`DryRunContext`] implements for examples and `map test` (records writes, executes nothing).

use crate::expr::{Bindings, CelJson, StepValues, json_text};
use crate::flow::{Cast, FieldValue, Flow, Severity, Step, StepKind};
use crate::normalize as n;
use crate::validate::{Finding, FindingKind, check_fields};
use heartsuite_core::{ErrorClass, Failure};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// What a write step asks the engine to do. `idempotency_key` is the flow's external id
/// expression (for NetSuite: the record's externalId, used as `eid:<key>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteIntent {
    /// `<system>.<operation>`: "netsuite.upsert", "netsuite.transform", "gpapi.capture"...
    pub target: String,
    pub record_type: String,
    pub idempotency_key: String,
    pub body: J,
    #[serde(default)]
    pub params: Map<String, J>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResult {
    pub remote_id: String,
    #[serde(default)]
    pub response: J,
}

/// The engine's side of a run. Lookups answer from the crosswalk (or the remote) and writes are
/// the engine's idempotent effects; both return classified failures.
#[async_trait::async_trait]
pub trait FlowContext: Send {
    async fn lookup(
        &mut self,
        system: &str,
        record_type: &str,
        key: &str,
    ) -> Result<Option<String>, Failure>;
    async fn write(&mut self, intent: &WriteIntent) -> Result<WriteResult, Failure>;
    /// Existing records that may be the same person as `probe` (a dedupe step in match mode):
    /// JSON objects with `id`, `email`, `phone`, `first_name`, `last_name`, `address`. `probe`
    /// holds the normalised `email`, `phone`, `first_name` and `last_name`. A context that cannot
    /// search finds nothing, which makes every match step decide "create".
    async fn candidates(
        &mut self,
        _system: &str,
        _record_type: &str,
        _probe: &J,
    ) -> Result<Vec<J>, Failure> {
        Ok(Vec::new())
    }
}

/// Records writes instead of executing them and answers lookups from fixtures.
#[derive(Debug, Default, Clone)]
pub struct DryRunContext {
    lookups: HashMap<(String, String, String), String>,
    pub writes: Vec<WriteIntent>,
    /// Every lookup asked, with its answer, so `map test` can show them.
    pub lookups_asked: Vec<(String, String, String, Option<String>)>,
    /// What a dedupe step in match mode finds (any system and record type).
    pub candidates: Vec<J>,
    /// What a write answers, by idempotency key (default: `dry-run:N` and `{}`).
    write_results: HashMap<String, WriteResult>,
}

impl DryRunContext {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_lookup(mut self, system: &str, record_type: &str, key: &str, id: &str) -> Self {
        self.add_lookup(system, record_type, key, id);
        self
    }
    pub fn add_write_result(&mut self, idempotency_key: &str, result: WriteResult) {
        self.write_results.insert(idempotency_key.into(), result);
    }
    pub fn add_lookup(&mut self, system: &str, record_type: &str, key: &str, id: &str) {
        self.lookups
            .insert((system.into(), record_type.into(), key.into()), id.into());
    }
}

#[async_trait::async_trait]
impl FlowContext for DryRunContext {
    async fn candidates(&mut self, _: &str, _: &str, _: &J) -> Result<Vec<J>, Failure> {
        Ok(self.candidates.clone())
    }
    async fn lookup(
        &mut self,
        system: &str,
        record_type: &str,
        key: &str,
    ) -> Result<Option<String>, Failure> {
        let found = self
            .lookups
            .get(&(system.to_string(), record_type.to_string(), key.to_string()))
            .cloned();
        self.lookups_asked
            .push((system.into(), record_type.into(), key.into(), found.clone()));
        Ok(found)
    }
    async fn write(&mut self, intent: &WriteIntent) -> Result<WriteResult, Failure> {
        self.writes.push(intent.clone());
        if let Some(r) = self.write_results.get(&intent.idempotency_key) {
            return Ok(r.clone());
        }
        Ok(WriteResult {
            remote_id: format!("dry-run:{}", self.writes.len()),
            response: J::Object(Map::new()),
        })
    }
}

/// The dedupe step's verdict in match mode, as the step's value (`steps.<name>.outcome` is
/// `merge` or `create`), or the review failure that holds the job for an operator.
fn match_outcome(
    step: &str,
    person: &J,
    candidates: &[J],
    t: crate::dedupe::Thresholds,
) -> Result<J, Failure> {
    use crate::dedupe::{Decision, Person, decide};
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    match decide(&Person::from_json(person), candidates, t) {
        Decision::Merge {
            id,
            matched_on,
            score,
        } => Ok(serde_json::json!({"outcome": "merge", "id": id, "matched_on": matched_on, "score": round(score)})),
        Decision::Create { best_score } => {
            Ok(serde_json::json!({"outcome": "create", "best_score": round(best_score)}))
        }
        Decision::Review { id, score, reason } => {
            let theirs = candidates
                .iter()
                .find(|c| c.get("id").and_then(json_text).as_deref() == Some(id.as_str()))
                .cloned()
                .unwrap_or(J::Null);
            Err(Failure::data(format!(
                "step `{step}`: possible duplicate held for review ({reason}); incoming {person} vs existing {theirs} (score {}); \
                 decide with `heartsuite review merge <job> {id}` or `heartsuite review create-new <job>`",
                round(score)
            ))
            .with_system("flow")
            .with_field("match")
            .with_code(crate::dedupe::REVIEW_CODE))
        }
    }
}

/// An operator's decision on a held duplicate: merge into a named record, or create anyway.
fn operator_outcome(step: &str, d: &J) -> Result<Option<J>, Failure> {
    if d.is_null() {
        return Ok(None);
    }
    let bad = |m: &str| data(step, "match.decision", m);
    match d.get("decision").and_then(J::as_str) {
        Some("merge") => {
            let id = d
                .get("netsuite_id")
                .and_then(json_text)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("a merge decision needs `netsuite_id`"))?;
            Ok(Some(serde_json::json!({"outcome": "merge", "id": id, "matched_on": "operator"})))
        }
        Some("create_new") => Ok(Some(serde_json::json!({"outcome": "create", "matched_on": "operator"}))),
        _ => Err(bad("`decision` must be \"merge\" or \"create_new\"")),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedRecord {
    pub step: String,
    pub record: J,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteRecord {
    pub step: String,
    pub intent: WriteIntent,
    pub result: WriteResult,
}

/// Everything one run produced: mapped records, writes made, validation findings (corrections
/// with before/after, warnings, errors), and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub flow: String,
    pub records: Vec<MappedRecord>,
    pub writes: Vec<WriteRecord>,
    pub findings: Vec<Finding>,
    /// Set when a dedupe step stopped the run (the work was already done).
    pub skipped: Option<String>,
    /// Set when the run failed; `Flow::run` returns it as `Err`.
    pub failure: Option<Failure>,
}

enum Control<'a> {
    Next,
    Enter(&'a [Step]),
    Stop(String),
}

fn data(step: &str, field: &str, msg: impl std::fmt::Display) -> Failure {
    let f = Failure::data(format!("step `{step}`: {field}: {msg}")).with_system("flow");
    if field.is_empty() {
        f
    } else {
        f.with_field(field.to_string())
    }
}

/// Puts `v` at a dotted path, creating objects on the way.
fn set_path(out: &mut J, path: &str, v: J) {
    let mut cur = out;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if !cur.is_object() {
            *cur = J::Object(Map::new());
        }
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            obj.insert(p.to_string(), v);
            return;
        }
        cur = obj
            .entry(p.to_string())
            .or_insert_with(|| J::Object(Map::new()));
    }
}

fn cast(c: Cast, v: J) -> Result<J, String> {
    if v.is_null() {
        return Ok(v);
    }
    let text = json_text(&v)
        .ok_or_else(|| format!("cannot convert a {} to {c:?}", crate::expr::type_name(&v)))?;
    Ok(match c {
        // The decimal's own text becomes the JSON number (arbitrary_precision): exact, no double.
        Cast::Number => {
            let d = n::parse_decimal(&text)?;
            J::Number(serde_json::Number::from_str(&d.to_string()).map_err(|e| e.to_string())?)
        }
        Cast::Integer => J::Number(
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("`{text}` is not an integer"))?
                .into(),
        ),
        Cast::Boolean => {
            J::Bool(n::parse_bool(&text).ok_or_else(|| format!("`{text}` is not a yes/no value"))?)
        }
        Cast::String => J::String(text),
        Cast::Date => J::String(
            n::parse_date(&text)
                .ok_or_else(|| format!("`{text}` is not a date"))?
                .to_string(),
        ),
    })
}

fn to_mj(v: &J) -> minijinja::Value {
    match v {
        J::Null => minijinja::Value::from(()),
        J::Bool(b) => minijinja::Value::from(*b),
        J::Number(num) => match num.as_i64() {
            Some(i) => minijinja::Value::from(i),
            // Decimals render as their exact text.
            None => minijinja::Value::from(num.to_string()),
        },
        J::String(s) => minijinja::Value::from(s.as_str()),
        J::Array(a) => minijinja::Value::from(a.iter().map(to_mj).collect::<Vec<_>>()),
        J::Object(o) => minijinja::Value::from(
            o.iter()
                .map(|(k, v)| (k.clone(), to_mj(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn dec_json(v: &J) -> Result<Decimal, String> {
    match v {
        J::Number(num) => n::parse_decimal(&num.to_string()),
        J::String(s) => n::parse_decimal(s),
        J::Null => Ok(Decimal::ZERO),
        other => Err(format!(
            "expected a decimal, got {}",
            crate::expr::type_name(other)
        )),
    }
}

impl Flow {
    /// Does this flow take events of `kind` with this payload? Errors in the filter are returned
    /// so the engine can dead-letter rather than silently drop the event.
    pub fn matches(&self, kind: &str, payload: &J) -> Result<bool, Failure> {
        // `schedule.<flow>` is the scheduler's event for exactly one flow: no pattern (`*`,
        // `schedule.*`) of another flow takes it, and the filter (about event payloads) is not
        // asked.
        if let Some(flow) = kind.strip_prefix(crate::schedule::EVENT_PREFIX) {
            return Ok(flow == self.name && self.trigger.cron.is_some());
        }
        let kind_ok = self
            .trigger
            .events
            .iter()
            .any(|e| match e.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => e == kind,
            });
        if !kind_ok {
            return Ok(false);
        }
        let Some(filter) = &self.trigger.filter else {
            return Ok(true);
        };
        let input = CelJson::new(payload);
        self.rt
            .eval_bool(filter, &Bindings::new().with("input", &input))
            .map_err(|m| data("trigger", "filter", m))
    }

    /// Runs the flow. Writes and lookups go through `ctx`; a failure is returned classified.
    pub async fn run(&self, input: &J, ctx: &mut dyn FlowContext) -> Result<RunReport, Failure> {
        let mut report = self.run_report(input, ctx).await;
        match report.failure.take() {
            Some(f) => Err(f),
            None => Ok(report),
        }
    }

    /// Like `run`, but always returns the report, with the failure inside it, so a dry run can
    /// show every finding even when validation failed.
    pub async fn run_report(&self, input: &J, ctx: &mut dyn FlowContext) -> RunReport {
        let mut report = RunReport {
            flow: self.name.clone(),
            records: Vec::new(),
            writes: Vec::new(),
            findings: Vec::new(),
            skipped: None,
            failure: None,
        };
        let mut steps = J::Object(Map::new());
        let mut step_vals = StepValues::default();
        let input_cel = CelJson::new(input);
        let mut stack: Vec<std::slice::Iter<'_, Step>> = vec![self.steps.iter()];
        loop {
            let next = match stack.last_mut() {
                Some(it) => it.next(),
                None => break,
            };
            let Some(step) = next else {
                stack.pop();
                continue;
            };
            match self
                .exec(
                    step,
                    input,
                    &input_cel,
                    &mut steps,
                    &mut step_vals,
                    &mut report,
                    ctx,
                )
                .await
            {
                Ok(Control::Next) => {}
                Ok(Control::Enter(children)) => stack.push(children.iter()),
                Ok(Control::Stop(why)) => {
                    report.skipped = Some(why);
                    break;
                }
                Err(f) => {
                    report.failure = Some(f);
                    break;
                }
            }
        }
        // Records were kept only in `steps` while running (no copies); move them out now, with
        // any corrections validation made.
        if let J::Object(mut m) = steps {
            for r in &mut report.records {
                if let Some(v) = m.shift_remove(&r.step) {
                    r.record = v;
                }
            }
        }
        report
    }

    async fn exec<'a>(
        &'a self,
        step: &'a Step,
        input: &J,
        input_cel: &CelJson<'_>,
        steps: &mut J,
        step_vals: &mut StepValues,
        report: &mut RunReport,
        ctx: &mut dyn FlowContext,
    ) -> Result<Control<'a>, Failure> {
        let name = step.name.as_str();
        // Everything that only needs evaluation happens inside this block, while `steps` is
        // borrowed; effects (await, mutation) happen after it.
        enum Effect {
            Set(J),
            Lookup {
                system: String,
                record_type: String,
                key: String,
                required: bool,
                default: Option<J>,
                dedupe: Option<bool>,
            },
            /// A dedupe step in match mode: the incoming person and the thresholds.
            Match {
                system: String,
                record_type: String,
                person: J,
                thresholds: crate::dedupe::Thresholds,
            },
            /// One lookup per list element: (key, default) each.
            LookupEach {
                system: String,
                record_type: String,
                keys: Vec<(Option<String>, Option<J>)>,
                required: bool,
            },
            Write(WriteIntent),
            Validated {
                corrected: bool,
                findings: Vec<Finding>,
            },
        }
        static NULL: J = J::Null;
        let effect = {
            let b = Bindings::new()
                .with("input", input_cel)
                .with_steps(step_vals);
            if let Some(when) = &step.when {
                if !self
                    .rt
                    .eval_bool(when, &b)
                    .map_err(|m| data(name, "when", m))?
                {
                    return Ok(Control::Next);
                }
            }
            match &step.kind {
                StepKind::Map { fields, keep_nulls } => {
                    let mut out = J::Object(Map::new());
                    let mut tpl_ctx = None;
                    for f in fields {
                        let v = match &f.value {
                            FieldValue::Expr(e) => {
                                self.rt.eval(e, &b).map_err(|m| data(name, &f.path, m))?
                            }
                            FieldValue::Template(t) => {
                                let c = tpl_ctx.get_or_insert_with(|| {
                                    minijinja::Value::from(BTreeMap::from([
                                        ("input".to_string(), to_mj(input)),
                                        ("steps".to_string(), to_mj(steps)),
                                    ]))
                                });
                                let tpl = self
                                    .templates
                                    .get_template(t)
                                    .map_err(|e| data(name, &f.path, e))?;
                                J::String(
                                    tpl.render(c.clone()).map_err(|e| data(name, &f.path, e))?,
                                )
                            }
                        };
                        let v = match f.cast {
                            Some(c) => cast(c, v).map_err(|m| data(name, &f.path, m))?,
                            None => v,
                        };
                        if v.is_null() && !keep_nulls {
                            continue;
                        }
                        set_path(&mut out, &f.path, v);
                    }
                    report.records.push(MappedRecord {
                        step: name.to_string(),
                        record: J::Null,
                    });
                    Effect::Set(out)
                }
                StepKind::Validate {
                    record,
                    fields,
                    rules,
                } => {
                    // Corrections are made in place: the record is never copied.
                    let mut findings = match steps.get_mut(record.as_str()) {
                        Some(rec) => check_fields(name, rec, fields),
                        None => Vec::new(),
                    };
                    let corrected = findings.iter().any(|f| f.kind == FindingKind::Correction);
                    let rec_cel = CelJson::new(steps.get(record.as_str()).unwrap_or(&NULL));
                    let rb = Bindings::new()
                        .with("input", input_cel)
                        .with_steps(step_vals)
                        .with("record", &rec_cel);
                    for r in rules {
                        let (ok, msg) = match self.rt.eval_bool(&r.check, &rb) {
                            Ok(ok) => (ok, r.message.clone()),
                            Err(m) => (
                                false,
                                format!("{} (the check could not be evaluated: {m})", r.message),
                            ),
                        };
                        if !ok {
                            let kind = if r.severity == Severity::Warning {
                                FindingKind::Warning
                            } else {
                                FindingKind::Error
                            };
                            findings.push(Finding {
                                kind,
                                step: name.to_string(),
                                path: r.path.clone(),
                                rule: "rule".into(),
                                message: msg,
                                before: None,
                                after: None,
                            });
                        }
                    }
                    Effect::Validated {
                        corrected,
                        findings,
                    }
                }
                StepKind::Lookup {
                    system,
                    record_type,
                    key,
                    required,
                    default,
                    for_each: Some(list),
                } => {
                    let list = self.rt.eval(list, &b).map_err(|m| data(name, "for_each", m))?;
                    let J::Array(list) = list else {
                        return Err(data(
                            name,
                            "for_each",
                            format!("expected a list, got {}", crate::expr::type_name(&list)),
                        ));
                    };
                    let mut keys = Vec::with_capacity(list.len());
                    for (i, item) in list.iter().enumerate() {
                        let item_cel = CelJson::new(item);
                        let ib = Bindings::new()
                            .with("input", input_cel)
                            .with_steps(step_vals)
                            .with("item", &item_cel);
                        let k = self
                            .rt
                            .eval(key, &ib)
                            .map_err(|m| data(name, &format!("for_each[{i}] key"), m))?;
                        let d = match default {
                            Some(d) => Some(
                                self.rt
                                    .eval(d, &ib)
                                    .map_err(|m| data(name, &format!("for_each[{i}] default"), m))?,
                            ),
                            None => None,
                        };
                        let k = json_text(&k).filter(|k| !k.is_empty());
                        if k.is_none() && d.is_none() && *required {
                            return Err(data(name, &format!("for_each[{i}] key"), "the lookup key is empty"));
                        }
                        keys.push((k, d));
                    }
                    Effect::LookupEach {
                        system: system.clone(),
                        record_type: record_type.clone(),
                        keys,
                        required: *required,
                    }
                }
                StepKind::Lookup {
                    system,
                    record_type,
                    key,
                    required,
                    default,
                    for_each: None,
                } => {
                    let k = self.rt.eval(key, &b).map_err(|m| data(name, "key", m))?;
                    let default = match default {
                        Some(d) => Some(self.rt.eval(d, &b).map_err(|m| data(name, "default", m))?),
                        None => None,
                    };
                    match json_text(&k) {
                        Some(k) if !k.is_empty() => Effect::Lookup {
                            system: system.clone(),
                            record_type: record_type.clone(),
                            key: k,
                            required: *required,
                            default,
                            dedupe: None,
                        },
                        _ if default.is_some() => Effect::Set(default.unwrap_or(J::Null)),
                        _ if *required => return Err(data(name, "key", "the lookup key is empty")),
                        _ => Effect::Set(J::Null),
                    }
                }
                StepKind::Dedupe {
                    system,
                    record_type,
                    matching: Some(m),
                    ..
                } => {
                    let decided = match &m.decision {
                        Some(d) => {
                            let d = self.rt.eval(d, &b).map_err(|e| data(name, "match.decision", e))?;
                            operator_outcome(name, &d)?
                        }
                        None => None,
                    };
                    match decided {
                        Some(out) => Effect::Set(out),
                        None => {
                            let mut person = Map::new();
                            for (f, e) in &m.fields {
                                let v = self
                                    .rt
                                    .eval(e, &b)
                                    .map_err(|err| data(name, &format!("match.{f}"), err))?;
                                person.insert(f.clone(), v);
                            }
                            Effect::Match {
                                system: system.clone(),
                                record_type: record_type.clone(),
                                person: J::Object(person),
                                thresholds: m.thresholds,
                            }
                        }
                    }
                }
                StepKind::Dedupe {
                    system,
                    record_type,
                    key,
                    skip,
                    matching: None,
                } => {
                    let Some(key) = key else {
                        return Err(data(name, "key", "a dedupe step needs `key` or `[match]`"));
                    };
                    let k = self.rt.eval(key, &b).map_err(|m| data(name, "key", m))?;
                    let k = json_text(&k)
                        .filter(|k| !k.is_empty())
                        .ok_or_else(|| data(name, "key", "the dedupe key is empty"))?;
                    Effect::Lookup {
                        system: system.clone(),
                        record_type: record_type.clone(),
                        key: k,
                        required: false,
                        default: None,
                        dedupe: Some(*skip),
                    }
                }
                StepKind::Branch { cases, otherwise } => {
                    for (i, (when, children)) in cases.iter().enumerate() {
                        if self
                            .rt
                            .eval_bool(when, &b)
                            .map_err(|m| data(name, &format!("cases[{i}].when"), m))?
                        {
                            return Ok(Control::Enter(children));
                        }
                    }
                    return Ok(Control::Enter(otherwise));
                }
                StepKind::Aggregate {
                    items,
                    group_by,
                    sums,
                } => {
                    let list = self
                        .rt
                        .eval(items, &b)
                        .map_err(|m| data(name, "items", m))?;
                    let J::Array(list) = list else {
                        return Err(data(
                            name,
                            "items",
                            format!("expected a list, got {}", crate::expr::type_name(&list)),
                        ));
                    };
                    let mut groups: BTreeMap<String, (u64, Vec<Decimal>)> = BTreeMap::new();
                    for (i, item) in list.iter().enumerate() {
                        let item_cel = CelJson::new(item);
                        let ib = Bindings::new()
                            .with("input", input_cel)
                            .with_steps(step_vals)
                            .with("item", &item_cel);
                        let key = match group_by {
                            Some(g) => {
                                let k = self
                                    .rt
                                    .eval(g, &ib)
                                    .map_err(|m| data(name, &format!("items[{i}] group_by"), m))?;
                                json_text(&k).unwrap_or_default()
                            }
                            None => String::new(),
                        };
                        let entry = groups
                            .entry(key)
                            .or_insert_with(|| (0, vec![Decimal::ZERO; sums.len()]));
                        entry.0 += 1;
                        for (j, (sname, e)) in sums.iter().enumerate() {
                            let field = format!("items[{i}].{sname}");
                            let v = self.rt.eval(e, &ib).map_err(|m| data(name, &field, m))?;
                            let d = dec_json(&v).map_err(|m| data(name, &field, m))?;
                            entry.1[j] = entry.1[j]
                                .checked_add(d)
                                .ok_or_else(|| data(name, &field, "sum overflows"))?;
                        }
                    }
                    let render = |key: Option<&str>, count: u64, totals: &[Decimal]| {
                        let mut o = Map::new();
                        if let Some(k) = key {
                            o.insert("key".into(), J::String(k.to_string()));
                        }
                        o.insert("count".into(), J::Number(count.into()));
                        for ((sname, _), t) in sums.iter().zip(totals) {
                            o.insert(sname.clone(), J::String(t.to_string()));
                        }
                        J::Object(o)
                    };
                    let out = if group_by.is_some() {
                        J::Array(
                            groups
                                .iter()
                                .map(|(k, (c, t))| render(Some(k), *c, t))
                                .collect(),
                        )
                    } else {
                        let zero = vec![Decimal::ZERO; sums.len()];
                        let (c, t) = groups
                            .get("")
                            .map(|(c, t)| (*c, t.as_slice()))
                            .unwrap_or((0, &zero));
                        render(None, c, t)
                    };
                    report.records.push(MappedRecord {
                        step: name.to_string(),
                        record: J::Null,
                    });
                    Effect::Set(out)
                }
                StepKind::Write {
                    target,
                    record_type,
                    external_id,
                    body,
                    params,
                } => {
                    let key = self
                        .rt
                        .eval(external_id, &b)
                        .map_err(|m| data(name, "external_id", m))?;
                    let key = json_text(&key)
                        .filter(|k| !k.trim().is_empty())
                        .ok_or_else(|| data(name, "external_id", "the external id is empty"))?;
                    let body_v = match steps.get(body.as_str()) {
                        Some(v) if !v.is_null() => v.clone(),
                        _ => {
                            return Err(data(
                                name,
                                "body",
                                format!(
                                    "step `{body}` produced no record (was it skipped by its `when`?)"
                                ),
                            ));
                        }
                    };
                    let mut p = Map::new();
                    for (k, e) in params {
                        p.insert(
                            k.clone(),
                            self.rt
                                .eval(e, &b)
                                .map_err(|m| data(name, &format!("params.{k}"), m))?,
                        );
                    }
                    Effect::Write(WriteIntent {
                        target: target.clone(),
                        record_type: record_type.clone(),
                        idempotency_key: key,
                        body: body_v,
                        params: p,
                    })
                }
            }
        };
        let result = match effect {
            Effect::Set(v) => v,
            Effect::Validated {
                corrected,
                findings,
            } => {
                let errors: Vec<&Finding> = findings
                    .iter()
                    .filter(|f| f.kind == FindingKind::Error)
                    .collect();
                let failure = errors.first().map(|first| {
                    let all = errors
                        .iter()
                        .map(|f| format!("{}: {}", f.path, f.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    Failure::data(format!("step `{name}`: validation failed: {all}"))
                        .with_system("flow")
                        .with_field(first.path.clone())
                });
                report.findings.extend(findings);
                if let (true, StepKind::Validate { record, .. }) = (corrected, &step.kind) {
                    // Later steps see the corrected record.
                    step_vals.set(record, steps.get(record.as_str()).unwrap_or(&NULL));
                }
                if let Some(f) = failure {
                    return Err(f);
                }
                return Ok(Control::Next);
            }
            Effect::Lookup {
                system,
                record_type,
                key,
                required,
                default,
                dedupe,
            } => {
                let found = ctx.lookup(&system, &record_type, &key).await?;
                match (dedupe, found) {
                    (Some(skip), Some(id)) => {
                        if skip {
                            return Ok(Control::Stop(format!(
                                "duplicate: {system} {record_type} `{key}` already exists as {id}"
                            )));
                        }
                        serde_json::json!({"duplicate": true, "id": id})
                    }
                    (Some(_), None) => serde_json::json!({"duplicate": false}),
                    (None, Some(id)) => J::String(id),
                    (None, None) => match default {
                        Some(d) => d,
                        None if required => {
                            return Err(Failure::new(ErrorClass::Dependency, format!("step `{name}`: no {system} {record_type} found for `{key}` (not synced yet?)"))
                                .with_system("flow")
                                .with_field(format!("steps.{name}")));
                        }
                        None => J::Null,
                    },
                }
            }
            Effect::Match {
                system,
                record_type,
                person,
                thresholds,
            } => {
                let probe = crate::dedupe::Person::from_json(&person).probe();
                let found = ctx.candidates(&system, &record_type, &probe).await?;
                match_outcome(name, &person, &found, thresholds)?
            }
            Effect::LookupEach {
                system,
                record_type,
                keys,
                required,
            } => {
                // Lines often repeat a SKU: ask once per distinct key.
                let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
                let mut ids = Vec::with_capacity(keys.len());
                for (i, (key, default)) in keys.into_iter().enumerate() {
                    let found = match &key {
                        Some(k) => match seen.get(k) {
                            Some(f) => f.clone(),
                            None => {
                                let f = ctx.lookup(&system, &record_type, k).await?;
                                seen.insert(k.clone(), f.clone());
                                f
                            }
                        },
                        None => None,
                    };
                    ids.push(match (found, default) {
                        (Some(id), _) => J::String(id),
                        (None, Some(d)) => d,
                        (None, None) if required => {
                            return Err(Failure::new(
                                ErrorClass::Dependency,
                                format!(
                                    "step `{name}`: no {system} {record_type} found for `{}` (element {i}; not synced yet?)",
                                    key.unwrap_or_default()
                                ),
                            )
                            .with_system("flow")
                            .with_field(format!("steps.{name}[{i}]")));
                        }
                        (None, None) => J::Null,
                    });
                }
                J::Array(ids)
            }
            Effect::Write(intent) => {
                let res = ctx.write(&intent).await?;
                let out = serde_json::json!({"remote_id": res.remote_id, "response": res.response});
                report.writes.push(WriteRecord {
                    step: name.to_string(),
                    intent,
                    result: res,
                });
                out
            }
        };
        step_vals.set(name, &result);
        if let Some(obj) = steps.as_object_mut() {
            obj.insert(name.to_string(), result);
        }
        Ok(Control::Next)
    }

    /// Runs the flow against `input` with lookup fixtures and no remote effects (for `map test`
    /// and examples).
    pub fn dry_run(&self, input: &J, ctx: &mut DryRunContext) -> RunReport {
        block_on_ready(self.run_report(input, ctx))
    }
}

/// Drives a future whose awaits never really wait (the dry-run context answers at once), so the
/// examples and `map test` need no async runtime. A future that does return `Pending` is polled
/// again; with the dry-run context that cannot happen.
pub(crate) fn block_on_ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[allow(dead_code)]
fn _run_future_is_send(flow: &Flow, input: &J, ctx: &mut dyn FlowContext) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&flow.run(input, ctx));
}

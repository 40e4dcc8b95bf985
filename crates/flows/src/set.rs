//! A directory of flows, the built-in flows shipped in the repository's `flows/` directory,
//! and the example runner behind `heartsuite flows test`.

use crate::error::{FlowError, LoadError};
use crate::flow::{Example, Flow};
use crate::run::{DryRunContext, RunReport};
use crate::validate::Finding;
use serde_json::Value as J;
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in flows, compiled into the binary so `heartsuite` runs without a flows directory
/// and `heartsuite init DIR` can copy them out for editing.
pub const BUILTIN_FLOWS: &[(&str, &str)] = &[
    (
        "gpapi_payment_to_customer_payment.toml",
        include_str!("../../../flows/gpapi_payment_to_customer_payment.toml"),
    ),
    (
        "gpapi_refund_to_credit_memo.toml",
        include_str!("../../../flows/gpapi_refund_to_credit_memo.toml"),
    ),
    (
        "retail_customer_to_netsuite.toml",
        include_str!("../../../flows/retail_customer_to_netsuite.toml"),
    ),
    ("shop_order_to_sales_order.toml", include_str!("../../../flows/shop_order_to_sales_order.toml")),
    ("netsuite_fulfillment_to_capture.toml", include_str!("../../../flows/netsuite_fulfillment_to_capture.toml")),
    ("netsuite_item_to_retail.toml", include_str!("../../../flows/netsuite_item_to_retail.toml")),
    (
        "gpapi_settlement_to_deposit.toml",
        include_str!("../../../flows/gpapi_settlement_to_deposit.toml"),
    ),
    (
        "retail_ticket_to_cash_sale.toml",
        include_str!("../../../flows/retail_ticket_to_cash_sale.toml"),
    ),
    (
        "retail_return_to_cash_refund.toml",
        include_str!("../../../flows/retail_return_to_cash_refund.toml"),
    ),
];

#[derive(Debug, Default)]
pub struct FlowSet {
    flows: Vec<Flow>,
}

impl FlowSet {
    /// Loads every `*.toml` in `path` (sorted by name). All problems in all files are reported
    /// together, so one `flows check` shows everything to fix.
    pub fn load_dir(path: impl AsRef<Path>) -> Result<FlowSet, Vec<LoadError>> {
        let dir = path.as_ref();
        let whole = |message: String| LoadError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            step: None,
            field: None,
            message,
            expected: None,
            suggestion: None,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| vec![whole(format!("cannot read the flows directory: {e}"))])?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        let mut errs = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(s) => sources.push((f, s)),
                Err(e) => errs.push(LoadError {
                    file: f,
                    message: format!("cannot read: {e}"),
                    ..whole(String::new())
                }),
            }
        }
        match Self::from_sources(sources.iter().map(|(p, s)| (p.as_path(), s.as_str()))) {
            Ok(set) if errs.is_empty() => Ok(set),
            Ok(_) => Err(errs),
            Err(mut more) => {
                errs.append(&mut more);
                Err(errs)
            }
        }
    }

    /// The flows shipped with heartsuite.
    pub fn builtin() -> Result<FlowSet, Vec<LoadError>> {
        Self::from_sources(BUILTIN_FLOWS.iter().map(|(n, s)| (Path::new(*n), *s)))
    }

    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> Result<FlowSet, Vec<LoadError>> {
        let mut flows: Vec<Flow> = Vec::new();
        let mut errs = Vec::new();
        for (path, src) in sources {
            match Flow::from_str(path, src) {
                Ok(f) => {
                    if let Some(other) = flows.iter().find(|o| o.name == f.name) {
                        errs.push(LoadError {
                            file: path.to_path_buf(),
                            line: 1,
                            column: 1,
                            step: None,
                            field: Some("name".into()),
                            message: format!(
                                "flow name `{}` is also used by {}",
                                f.name,
                                other.file.display()
                            ),
                            expected: Some("a unique flow name".into()),
                            suggestion: None,
                        });
                    } else {
                        flows.push(f);
                    }
                }
                Err(mut e) => errs.append(&mut e),
            }
        }
        if errs.is_empty() {
            Ok(FlowSet { flows })
        } else {
            Err(errs)
        }
    }

    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    pub fn get(&self, name: &str) -> Result<&Flow, FlowError> {
        self.flows
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| FlowError::UnknownFlow(name.to_string()))
    }

    /// Flows triggered by an event of `kind` whose filter accepts `payload`. A filter that fails
    /// to evaluate does not match; use [`Flow::matches`] to see the error.
    pub fn flows_for(&self, kind: &str, payload: &J) -> Vec<&Flow> {
        self.flows
            .iter()
            .filter(|f| f.matches(kind, payload).unwrap_or(false))
            .collect()
    }

    /// Runs every example of every flow against a dry-run context.
    pub fn run_examples(&self) -> ExampleReport {
        let mut results = Vec::new();
        for f in &self.flows {
            for ex in &f.examples {
                let problems = run_example(f, ex);
                results.push(ExampleResult {
                    flow: f.name.clone(),
                    example: ex.name.clone(),
                    file: f.file.clone(),
                    line: ex.line,
                    problems,
                });
            }
        }
        ExampleReport { results }
    }
}

/// Copies the built-in flows into `dir` (created if missing); existing files are left alone.
pub fn write_builtin_flows(dir: &Path) -> Result<Vec<PathBuf>, FlowError> {
    std::fs::create_dir_all(dir).map_err(|source| FlowError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, src) in BUILTIN_FLOWS {
        let p = dir.join(name);
        if p.exists() {
            continue;
        }
        std::fs::write(&p, src).map_err(|source| FlowError::Io {
            path: p.clone(),
            source,
        })?;
        written.push(p);
    }
    Ok(written)
}

#[derive(Debug, Clone)]
pub struct ExampleResult {
    pub flow: String,
    pub example: String,
    pub file: PathBuf,
    pub line: usize,
    /// Empty when the example passed; otherwise one readable line per difference.
    pub problems: Vec<String>,
}

impl ExampleResult {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExampleReport {
    pub results: Vec<ExampleResult>,
}

impl ExampleReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(ExampleResult::passed)
    }
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }
}

impl fmt::Display for ExampleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            if r.passed() {
                writeln!(f, "ok   {} :: {}", r.flow, r.example)?;
            } else {
                writeln!(
                    f,
                    "FAIL {} :: {} ({}:{})",
                    r.flow,
                    r.example,
                    r.file.display(),
                    r.line
                )?;
                for p in &r.problems {
                    writeln!(f, "       {p}")?;
                }
            }
        }
        write!(
            f,
            "{} passed, {} failed",
            self.results.len() - self.failed(),
            self.failed()
        )
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (
        crate::normalize::parse_decimal(&a.to_string()),
        crate::normalize::parse_decimal(&b.to_string()),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.to_string() == b.to_string(),
    }
}

/// Compares `actual` with `expected`: objects by the expected keys only unless `exact`; numbers
/// by value (19.9 equals 19.90); everything else exactly. Differences are pushed as
/// `path: expected X, got Y`.
pub(crate) fn diff(
    path: &str,
    expected: &J,
    actual: Option<&J>,
    exact: bool,
    out: &mut Vec<String>,
) {
    let show = |v: Option<&J>| v.map(|v| v.to_string()).unwrap_or_else(|| "nothing".into());
    match (expected, actual) {
        (J::Object(e), Some(J::Object(a))) => {
            for (k, ev) in e {
                diff(&join(path, k), ev, a.get(k), exact, out);
            }
            if exact {
                for k in a.keys().filter(|k| !e.contains_key(*k)) {
                    out.push(format!(
                        "{}: not expected, got {}",
                        join(path, k),
                        show(a.get(k))
                    ));
                }
            }
        }
        (J::Array(e), Some(J::Array(a))) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{path}: expected {} item(s), got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, ev) in e.iter().enumerate() {
                diff(&format!("{path}[{i}]"), ev, a.get(i), exact, out);
            }
        }
        (J::Number(e), Some(J::Number(a))) if numbers_equal(e, a) => {}
        (e, Some(a)) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, got {}", show(a))),
    }
}

fn join(p: &str, k: &str) -> String {
    if p.is_empty() {
        k.to_string()
    } else {
        format!("{p}.{k}")
    }
}

fn finding_matches(e: &crate::flow::ExpectedFinding, f: &Finding) -> bool {
    e.path == f.path
        && e.rule.as_ref().is_none_or(|r| *r == f.rule)
        && e.kind.as_ref().is_none_or(|k| k == f.kind.as_str())
        && e.before
            .as_ref()
            .is_none_or(|b| Some(b) == f.before.as_ref())
        && e.after.as_ref().is_none_or(|a| Some(a) == f.after.as_ref())
}

fn run_example(flow: &Flow, ex: &Example) -> Vec<String> {
    let mut ctx = DryRunContext::new();
    for l in &ex.lookups {
        ctx.add_lookup(&l.system, &l.record_type, &l.key, &l.id);
    }
    ctx.candidates = ex.candidates.clone();
    for w in &ex.write_results {
        let remote_id = w
            .remote_id
            .clone()
            .unwrap_or_else(|| format!("dry-run:{}", w.idempotency_key));
        let result = crate::run::WriteResult {
            remote_id,
            response: w.response.clone(),
        };
        ctx.add_write_result(&w.idempotency_key, result);
    }
    let report: RunReport = flow.dry_run(&ex.input, &mut ctx);
    let mut problems = Vec::new();
    match (&ex.expect_error, &report.failure) {
        (None, Some(f)) => problems.push(format!("unexpected failure: {f}")),
        (Some(e), None) => problems.push(format!(
            "expected a {} failure, but the run succeeded",
            e.class
        )),
        (Some(e), Some(f)) => {
            if e.class != f.class {
                problems.push(format!("expected a {} failure, got {f}", e.class));
            }
            if let Some(field) = &e.field {
                if f.field_path.as_deref() != Some(field.as_str()) {
                    problems.push(format!(
                        "expected the failure to name field `{field}`, got {:?}",
                        f.field_path
                    ));
                }
            }
            if let Some(m) = &e.message_contains {
                if !f.message.contains(m.as_str()) {
                    problems.push(format!(
                        "expected the failure message to contain `{m}`, got `{}`",
                        f.message
                    ));
                }
            }
        }
        (None, None) => {}
    }
    if let Some(skip) = ex.expect_skipped {
        if skip != report.skipped.is_some() {
            problems.push(format!(
                "expected skipped = {skip}, got {:?}",
                report.skipped
            ));
        }
    }
    if let Some(expected) = &ex.expect_writes {
        if expected.len() != report.writes.len() {
            let got: Vec<String> = report
                .writes
                .iter()
                .map(|w| {
                    format!(
                        "{} {} {}",
                        w.intent.target, w.intent.record_type, w.intent.idempotency_key
                    )
                })
                .collect();
            problems.push(format!(
                "expected {} write(s), got {}: [{}]",
                expected.len(),
                report.writes.len(),
                got.join(", ")
            ));
        }
        for (i, (e, w)) in expected.iter().zip(&report.writes).enumerate() {
            let w = &w.intent;
            if e.target != w.target || e.record_type != w.record_type {
                problems.push(format!(
                    "write {i}: expected {} {}, got {} {}",
                    e.target, e.record_type, w.target, w.record_type
                ));
            }
            if let Some(k) = &e.idempotency_key {
                if *k != w.idempotency_key {
                    problems.push(format!(
                        "write {i}: expected idempotency key `{k}`, got `{}`",
                        w.idempotency_key
                    ));
                }
            }
            if let Some(body) = &e.body {
                diff(
                    &format!("write {i} body"),
                    body,
                    Some(&w.body),
                    e.exact,
                    &mut problems,
                );
            }
        }
    }
    for e in &ex.expect_findings {
        if !report.findings.iter().any(|f| finding_matches(e, f)) {
            let got: Vec<String> = report
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {} {} {:?}→{:?}",
                        f.kind.as_str(),
                        f.path,
                        f.rule,
                        f.before,
                        f.after
                    )
                })
                .collect();
            problems.push(format!("expected a finding at `{}` (rule {:?}, before {:?}, after {:?}); findings were: [{}]", e.path, e.rule, e.before, e.after, got.join("; ")));
        }
    }
    for (step, expected) in &ex.expect_records {
        let actual = report
            .records
            .iter()
            .rev()
            .find(|r| r.step == *step)
            .map(|r| &r.record);
        if actual.is_none() {
            problems.push(format!(
                "expected a record from step `{step}`, but it produced none"
            ));
        } else {
            diff(
                &format!("record {step}"),
                expected,
                actual,
                false,
                &mut problems,
            );
        }
    }
    problems
}

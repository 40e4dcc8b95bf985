//! The flow model and its loader. A flow file is read with `toml`'s spanned document API, so
//! every key and value keeps its position and each error can name file, line, step and field.
//! Everything is checked here, once: unknown keys (with a "did you mean"), types, step
//! references, and every expression is compiled.

use crate::error::LoadError;
use crate::expr::{Expr, ExprIssue, RateTable, Runtime, ValueTable, suggest};
use heartsuite_core::ErrorClass;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value as J;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Per error class overrides of the engine's retry policy (plain data; the engine applies it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryOverrides {
    pub by_class: BTreeMap<ErrorClass, RetryPolicy>,
}

impl RetryOverrides {
    pub fn for_class(&self, class: ErrorClass) -> Option<&RetryPolicy> {
        self.by_class.get(&class)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    pub max_attempts: Option<u32>,
    pub base_delay: Option<Duration>,
    pub max_delay: Option<Duration>,
}

#[derive(Debug)]
pub struct Trigger {
    /// Event kinds; a trailing `*` matches a prefix (`gpapi.transaction.*`).
    pub events: Vec<String>,
    pub(crate) filter: Option<Expr>,
    /// A schedule for flows that run on time rather than on events (cron syntax, interpreted
    /// by the engine's scheduler).
    pub schedule: Option<String>,
    /// `schedule`, parsed and checked at load.
    pub(crate) cron: Option<crate::schedule::Schedule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cast {
    Number,
    Integer,
    Boolean,
    String,
    Date,
}

#[derive(Debug)]
pub(crate) enum FieldValue {
    Expr(Expr),
    /// A minijinja template, registered in the flow's template environment under this name.
    Template(String),
}

#[derive(Debug)]
pub(crate) struct MapField {
    pub path: String,
    pub value: FieldValue,
    pub cast: Option<Cast>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Email,
    Phone,
    Country,
    UsState,
    Date,
    Amount,
    Integer,
    Boolean,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug)]
pub(crate) struct FieldRule {
    pub path: String,
    pub required: bool,
    pub format: Option<Format>,
    pub correct: bool,
    pub max_length: Option<usize>,
    pub one_of: Option<Vec<String>>,
    pub region: String,
    pub severity: Severity,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub check: Expr,
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Debug)]
pub(crate) enum StepKind {
    Map {
        fields: Vec<MapField>,
        keep_nulls: bool,
    },
    Validate {
        record: String,
        fields: Vec<FieldRule>,
        rules: Vec<Rule>,
    },
    Lookup {
        system: String,
        record_type: String,
        key: Expr,
        required: bool,
        default: Option<Expr>,
        /// A list: `key` is evaluated once per element (bound as `item`) and the step's value
        /// is the list of ids in the same order (an order's lines → item ids).
        for_each: Option<Expr>,
    },
    Dedupe {
        system: String,
        record_type: String,
        /// Absent in match mode (the candidates come from the engine's search instead).
        key: Option<Expr>,
        skip: bool,
        /// `[steps.match]`: duplicate detection by e-mail, phone and fuzzy name + address.
        matching: Option<Box<MatchSpec>>,
    },
    Branch {
        cases: Vec<(Expr, Vec<Step>)>,
        otherwise: Vec<Step>,
    },
    Aggregate {
        items: Expr,
        group_by: Option<Expr>,
        sums: Vec<(String, Expr)>,
    },
    Write {
        target: String,
        record_type: String,
        external_id: Expr,
        body: String,
        params: Vec<(String, Expr)>,
    },
}

#[derive(Debug)]
pub(crate) struct Step {
    pub name: String,
    pub when: Option<Expr>,
    pub kind: StepKind,
}

/// Lookup fixture for an example: what the crosswalk/resolver answers.
#[derive(Debug, Clone)]
pub struct LookupFixture {
    pub system: String,
    pub record_type: String,
    pub key: String,
    pub id: String,
}

/// Write fixture for an example: what a write with this key answers (a GP-API decline...).
#[derive(Debug, Clone)]
pub struct WriteFixture {
    pub idempotency_key: String,
    pub remote_id: Option<String>,
    pub response: J,
}

#[derive(Debug, Clone)]
pub struct ExpectedWrite {
    pub target: String,
    pub record_type: String,
    pub idempotency_key: Option<String>,
    pub body: Option<J>,
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub struct ExpectedFinding {
    pub path: String,
    pub rule: Option<String>,
    pub kind: Option<String>,
    pub before: Option<J>,
    pub after: Option<J>,
}

#[derive(Debug, Clone)]
pub struct ExpectedError {
    pub class: ErrorClass,
    pub field: Option<String>,
    pub message_contains: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Example {
    pub name: String,
    pub line: usize,
    pub input: J,
    pub lookups: Vec<LookupFixture>,
    /// What a dedupe step in match mode finds: existing records (`id`, `email`, `phone`,
    /// `first_name`, `last_name`, `address`).
    pub candidates: Vec<J>,
    pub write_results: Vec<WriteFixture>,
    pub expect_writes: Option<Vec<ExpectedWrite>>,
    pub expect_findings: Vec<ExpectedFinding>,
    pub expect_error: Option<ExpectedError>,
    pub expect_skipped: Option<bool>,
    /// Map outputs to compare (step name → subset of the record).
    pub expect_records: Vec<(String, J)>,
}

/// One loaded, checked flow.
pub struct Flow {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) file: PathBuf,
    pub(crate) trigger: Trigger,
    pub(crate) retry: Option<RetryOverrides>,
    pub(crate) steps: Vec<Step>,
    pub(crate) examples: Vec<Example>,
    pub(crate) rt: Runtime,
    pub(crate) templates: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("name", &self.name)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Flow {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
    /// The parsed `[trigger] schedule`, for the engine's scheduler.
    pub fn schedule(&self) -> Option<&crate::schedule::Schedule> {
        self.trigger.cron.as_ref()
    }
    pub fn retry_policy(&self) -> Option<&RetryOverrides> {
        self.retry.as_ref()
    }
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Loads one flow from TOML text; `file` is only used in error messages.
    pub fn from_str(file: &Path, src: &str) -> Result<Flow, Vec<LoadError>> {
        Loader::new(file, src).load()
    }
}

// ------------------------------------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "trigger",
    "retry",
    "tables",
    "rates",
    "steps",
    "examples",
];
const STEP_KINDS: &[&str] = &[
    "map",
    "validate",
    "lookup",
    "dedupe",
    "branch",
    "aggregate",
    "write",
];
const COMMON_STEP_KEYS: &[&str] = &["kind", "name", "when", "description"];
const VARS: &[&str] = &["input", "steps"];
const FORMATS: &[&str] = &[
    "email", "phone", "country", "us_state", "date", "amount", "integer", "boolean", "string",
];
const CASTS: &[&str] = &["number", "integer", "boolean", "string", "date"];

fn step_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "map" => &["fields", "keep_nulls"],
        "validate" => &["record", "fields", "rules"],
        "lookup" => &["system", "record_type", "key", "required", "default", "for_each"],
        "dedupe" => &["system", "record_type", "key", "on_duplicate", "match"],
        "branch" => &["cases", "otherwise"],
        "aggregate" => &["items", "group_by", "sums"],
        "write" => &["target", "record_type", "external_id", "body", "params"],
        _ => &[],
    }
}

/// A dedupe step's `[steps.match]` table: what the incoming person is (each an expression), the
/// thresholds, and where an operator's review decision is read from.
#[derive(Debug)]
pub(crate) struct MatchSpec {
    /// (`email` | `phone` | `first_name` | `last_name` | `name` | `address`, expression).
    pub fields: Vec<(String, Expr)>,
    pub thresholds: crate::dedupe::Thresholds,
    /// Evaluates to null or `{decision: "merge" | "create_new", netsuite_id}`.
    pub decision: Option<Expr>,
}

const MATCH_FIELDS: &[&str] = &["email", "phone", "first_name", "last_name", "name", "address"];

pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

type T<'i> = DeTable<'i>;
type V<'i> = Spanned<DeValue<'i>>;

struct Loader<'s> {
    file: PathBuf,
    src: &'s str,
    errs: Vec<LoadError>,
    step: Option<String>,
    names: HashSet<String>,
    templates: minijinja::Environment<'static>,
    rt: Option<Runtime>,
    /// Names of steps defined so far (document order), for `body = "..."` / `record = "..."`.
    defined: Vec<String>,
}

fn type_of(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// TOML → JSON without ever going through a double: integers and floats keep their source text.
pub(crate) fn de_json(v: &DeValue<'_>) -> Result<J, String> {
    Ok(match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("integer `{}` is out of range", i.as_str()))?;
            J::Number(n.into())
        }
        DeValue::Float(f) => {
            let text: String = f.as_str().chars().filter(|c| *c != '_').collect();
            J::Number(
                serde_json::Number::from_str(&text)
                    .map_err(|_| format!("`{text}` is not a finite number"))?,
            )
        }
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(
            a.iter()
                .map(|x| de_json(x.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => {
            let mut m = serde_json::Map::new();
            for (k, v) in t.iter() {
                m.insert(k.get_ref().to_string(), de_json(v.get_ref())?);
            }
            J::Object(m)
        }
    })
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

impl<'s> Loader<'s> {
    fn new(file: &Path, src: &'s str) -> Self {
        let mut templates = minijinja::Environment::new();
        // Templates fill record fields, not HTML: no escaping; a missing variable is an error
        // rather than an empty string; fuel bounds loops so a template cannot hang a worker.
        templates.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        templates.set_fuel(Some(20_000));
        Self {
            file: file.to_path_buf(),
            src,
            errs: Vec::new(),
            step: None,
            names: HashSet::new(),
            templates,
            rt: None,
            defined: Vec::new(),
        }
    }

    fn err(
        &mut self,
        span: Range<usize>,
        field: Option<&str>,
        message: String,
        expected: Option<String>,
        suggestion: Option<String>,
    ) {
        let (line, column) = line_col(self.src, span.start);
        self.errs.push(LoadError {
            file: self.file.clone(),
            line,
            column,
            step: self.step.clone(),
            field: field.map(str::to_string),
            message,
            expected,
            suggestion,
        });
    }

    fn check_keys(&mut self, t: &T<'_>, allowed: &[&str], prefix: &str) {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if !allowed.contains(&key) {
                let field = format!("{prefix}{key}");
                self.err(
                    k.span(),
                    Some(&field),
                    format!("unknown field `{key}`"),
                    Some(format!("one of: {}", allowed.join(", "))),
                    suggest(key, allowed.iter().copied()),
                );
            }
        }
    }

    fn str_at(&mut self, v: &V<'_>, field: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.err(
                    v.span(),
                    Some(field),
                    format!("found {}", type_of(other)),
                    Some("a string".into()),
                    None,
                );
                None
            }
        }
    }

    fn str_(
        &mut self,
        t: &T<'_>,
        key: &str,
        required: bool,
        span: &Range<usize>,
    ) -> Option<String> {
        match t.get(key) {
            Some(v) => self.str_at(v, key),
            None => {
                if required {
                    self.err(
                        span.clone(),
                        Some(key),
                        format!("missing required field `{key}`"),
                        Some("a string".into()),
                        None,
                    );
                }
                None
            }
        }
    }

    fn bool_(&mut self, t: &T<'_>, key: &str, default: bool) -> bool {
        match t.get(key) {
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => *b,
                other => {
                    let msg = format!("found {}", type_of(other));
                    self.err(v.span(), Some(key), msg, Some("true or false".into()), None);
                    default
                }
            },
            None => default,
        }
    }

    fn compile_at(&mut self, v: &V<'_>, field: &str, vars: &[&str]) -> Option<Expr> {
        let src = self.str_at(v, field)?;
        let span = v.span();
        // Where the expression text starts inside the TOML string (after `"` or `'''`).
        let raw = self.src.get(span.start..).unwrap_or("");
        let delim = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        // Without a runtime (tables failed to load, already reported) nothing can be compiled.
        let compiled = self.step_rt()?.compile(&src, vars);
        match compiled {
            Ok(e) => Some(e),
            Err(issues) => {
                for ExprIssue {
                    offset,
                    message,
                    expected,
                    suggestion,
                } in issues
                {
                    let at = span.start + delim + offset;
                    self.err(
                        at..at,
                        Some(field),
                        format!("{message} in `{src}`"),
                        expected,
                        suggestion,
                    );
                }
                None
            }
        }
    }

    fn expr(
        &mut self,
        t: &T<'_>,
        key: &str,
        required: bool,
        span: &Range<usize>,
        vars: &[&str],
    ) -> Option<Expr> {
        match t.get(key) {
            Some(v) => self.compile_at(v, key, vars),
            None => {
                if required {
                    self.err(
                        span.clone(),
                        Some(key),
                        format!("missing required field `{key}`"),
                        Some("an expression".into()),
                        None,
                    );
                }
                None
            }
        }
    }

    fn table<'a, 'i>(&mut self, v: &'a V<'i>, field: &str) -> Option<&'a T<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    v.span(),
                    Some(field),
                    format!("found {}", type_of(other)),
                    Some("a table".into()),
                    None,
                );
                None
            }
        }
    }

    fn tables<'a, 'i>(&mut self, v: &'a V<'i>, field: &str) -> Vec<(&'a T<'i>, Range<usize>)> {
        match v.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    if let Some(t) = self.table(item, field) {
                        out.push((t, item.span()));
                    }
                }
                out
            }
            other => {
                self.err(
                    v.span(),
                    Some(field),
                    format!("found {}", type_of(other)),
                    Some(format!("an array of tables (`[[...{field}]]`)")),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn step_rt(&self) -> Option<&Runtime> {
        self.rt.as_ref()
    }
}

const WRITE_SYSTEMS: &[&str] = &["netsuite", "gpapi", "retail"];

impl<'s> Loader<'s> {
    fn load(mut self) -> Result<Flow, Vec<LoadError>> {
        let src = self.src;
        let doc = match DeTable::parse(src) {
            Ok(d) => d,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.err(
                    span,
                    None,
                    format!("not valid TOML: {}", e.message().trim()),
                    None,
                    None,
                );
                return Err(self.errs);
            }
        };
        let whole = doc.span();
        let top = doc.get_ref();
        self.check_keys(top, TOP_KEYS, "");
        let name = self.str_(top, "name", true, &(0..0)).unwrap_or_default();
        if !name.is_empty()
            && !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            let span = top.get("name").map(|v| v.span()).unwrap_or(0..0);
            self.err(
                span,
                Some("name"),
                format!("flow name `{name}` has characters other than letters, digits, _ and -"),
                Some("a name like `gpapi_payment_to_customer_payment`".into()),
                None,
            );
        }
        let description = self
            .str_(top, "description", false, &whole)
            .unwrap_or_default();

        let tables = top
            .get("tables")
            .map(|v| self.value_tables(v))
            .unwrap_or_default();
        let rates = top.get("rates").map(|v| self.rates(v)).unwrap_or_default();
        match Runtime::new(tables, rates) {
            Ok(rt) => self.rt = Some(rt),
            Err(m) => {
                let span = top.get("tables").map(|v| v.span()).unwrap_or(0..0);
                self.err(span, Some("tables"), m, None, None);
            }
        }

        let trigger = match top.get("trigger") {
            Some(v) => self.trigger(v),
            None => {
                self.err(
                    0..0,
                    Some("trigger"),
                    "missing [trigger]".into(),
                    Some("`events = [\"...\"]` or `schedule = \"...\"`".into()),
                    None,
                );
                None
            }
        };
        let retry = top.get("retry").and_then(|v| self.retry(v));
        let steps = match top.get("steps") {
            Some(v) => {
                let items = self.tables(v, "steps");
                self.steps(items)
            }
            None => {
                self.err(
                    0..0,
                    Some("steps"),
                    "a flow needs at least one step".into(),
                    Some("`[[steps]]` tables".into()),
                    None,
                );
                Vec::new()
            }
        };
        self.step = None;
        let examples = match top.get("examples") {
            Some(v) => {
                let items = self.tables(v, "examples");
                items
                    .into_iter()
                    .filter_map(|(t, span)| self.example(t, span))
                    .collect()
            }
            None => Vec::new(),
        };
        if !self.errs.is_empty() {
            return Err(self.errs);
        }
        let (Some(rt), Some(trigger)) = (self.rt.take(), trigger) else {
            return Err(self.errs);
        };
        Ok(Flow {
            name,
            description,
            file: self.file,
            trigger,
            retry,
            steps,
            examples,
            rt,
            templates: self.templates,
        })
    }

    fn value_tables(&mut self, v: &V<'_>) -> Vec<ValueTable> {
        let Some(t) = self.table(v, "tables") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, tv) in t.iter() {
            let tname = k.get_ref().to_string();
            let field = format!("tables.{tname}");
            let Some(body) = self.table(tv, &field) else {
                continue;
            };
            self.check_keys(body, &["args", "rows", "default"], &format!("{field}."));
            let mut args = Vec::new();
            match body.get("args").map(|a| (a.span(), a.get_ref())) {
                Some((_, DeValue::Array(a))) => {
                    for x in a.iter() {
                        if let Some(s) = self.str_at(x, &format!("{field}.args")) {
                            args.push(s);
                        }
                    }
                }
                Some((span, other)) => self.err(
                    span,
                    Some(&format!("{field}.args")),
                    format!("found {}", type_of(other)),
                    Some("a list of argument names".into()),
                    None,
                ),
                None => self.err(
                    k.span(),
                    Some(&format!("{field}.args")),
                    "missing `args`".into(),
                    Some(
                        "the names of the lookup keys, e.g. args = [\"brand\", \"location\"]"
                            .into(),
                    ),
                    None,
                ),
            }
            let mut rows = BTreeMap::new();
            if let Some(rv) = body.get("rows") {
                if let Some(rt) = self.table(rv, &format!("{field}.rows")) {
                    for (rk, rvv) in rt.iter() {
                        let key = rk.get_ref().to_string();
                        if !args.is_empty() && key.split('|').count() != args.len() {
                            self.err(rk.span(), Some(&format!("{field}.rows")), format!("row key `{key}` has {} part(s) but the table has {} argument(s)", key.split('|').count(), args.len()), Some(format!("keys like \"{}\" (use * for any)", args.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join("|"))), None);
                        }
                        match de_json(rvv.get_ref()) {
                            Ok(j) => {
                                rows.insert(key, j);
                            }
                            Err(m) => {
                                self.err(rvv.span(), Some(&format!("{field}.rows")), m, None, None)
                            }
                        }
                    }
                }
            }
            let default = body.get("default").and_then(|d| de_json(d.get_ref()).ok());
            out.push(ValueTable {
                name: tname,
                args,
                rows: crate::expr::table_rows(rows),
                default,
            });
        }
        out
    }

    fn rates(&mut self, v: &V<'_>) -> RateTable {
        let mut out = RateTable::new();
        let Some(t) = self.table(v, "rates") else {
            return out;
        };
        for (k, rv) in t.iter() {
            let pair = k.get_ref().to_string();
            let Some((from, to)) = pair.split_once('/') else {
                self.err(
                    k.span(),
                    Some("rates"),
                    format!("`{pair}` is not a currency pair"),
                    Some("\"FROM/TO\", e.g. \"EUR/USD\" = \"1.0842\"".into()),
                    None,
                );
                continue;
            };
            let text = match rv.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.as_str().to_string(),
                // The float's source text, not an f64: "1.0842" stays exactly 1.0842.
                DeValue::Float(f) => f.as_str().replace('_', ""),
                other => {
                    self.err(
                        rv.span(),
                        Some(&format!("rates.{pair}")),
                        format!("found {}", type_of(other)),
                        Some("a decimal string such as \"1.0842\"".into()),
                        None,
                    );
                    continue;
                }
            };
            match Decimal::from_str(text.trim()) {
                Ok(d) if d > Decimal::ZERO => {
                    out.insert(
                        (
                            from.trim().to_ascii_uppercase(),
                            to.trim().to_ascii_uppercase(),
                        ),
                        d,
                    );
                }
                _ => self.err(
                    rv.span(),
                    Some(&format!("rates.{pair}")),
                    format!("`{text}` is not a positive decimal"),
                    Some("a decimal string such as \"1.0842\"".into()),
                    None,
                ),
            }
        }
        out
    }

    fn trigger(&mut self, v: &V<'_>) -> Option<Trigger> {
        let span = v.span();
        let t = self.table(v, "trigger")?;
        self.check_keys(t, &["events", "filter", "schedule"], "trigger.");
        let mut events = Vec::new();
        if let Some(ev) = t.get("events") {
            match ev.get_ref() {
                DeValue::Array(a) => {
                    for x in a.iter() {
                        if let Some(s) = self.str_at(x, "trigger.events") {
                            events.push(s);
                        }
                    }
                }
                other => self.err(
                    ev.span(),
                    Some("trigger.events"),
                    format!("found {}", type_of(other)),
                    Some("a list of event kinds".into()),
                    None,
                ),
            }
        }
        let schedule = self.str_(t, "schedule", false, &span);
        let cron = match (&schedule, t.get("schedule")) {
            (Some(src), Some(v)) => match crate::schedule::Schedule::parse(src) {
                Ok(c) => Some(c),
                Err(m) => {
                    self.err(
                        v.span(),
                        Some("trigger.schedule"),
                        format!("`{src}` is not a cron expression: {m}"),
                        Some("five fields `minute hour day-of-month month day-of-week` (e.g. \"0 2 * * *\" = 02:00 UTC daily), an optional leading seconds field, or @hourly/@daily/@weekly/@monthly".into()),
                        None,
                    );
                    None
                }
            },
            _ => None,
        };
        if events.is_empty() && schedule.is_none() {
            self.err(
                span.clone(),
                Some("trigger"),
                "the trigger has neither events nor a schedule".into(),
                Some(
                    "`events = [\"gpapi.transaction.captured\"]` or `schedule = \"0 2 * * *\"`"
                        .into(),
                ),
                None,
            );
        }
        let filter = t
            .get("filter")
            .and_then(|f| self.compile_at(f, "trigger.filter", &["input"]));
        Some(Trigger {
            events,
            filter,
            schedule,
            cron,
        })
    }

    fn retry(&mut self, v: &V<'_>) -> Option<RetryOverrides> {
        let t = self.table(v, "retry")?;
        let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
        let mut out = RetryOverrides::default();
        for (k, cv) in t.iter() {
            let key = k.get_ref().to_string();
            let Some(class) = ErrorClass::parse(&key) else {
                self.err(
                    k.span(),
                    Some(&format!("retry.{key}")),
                    format!("unknown error class `{key}`"),
                    Some(format!("one of: {}", names.join(", "))),
                    suggest(&key, names.iter().copied()),
                );
                continue;
            };
            let field = format!("retry.{key}");
            let Some(ct) = self.table(cv, &field) else {
                continue;
            };
            self.check_keys(
                ct,
                &["max_attempts", "base_delay", "max_delay"],
                &format!("{field}."),
            );
            let mut p = RetryPolicy::default();
            if let Some(m) = ct.get("max_attempts") {
                match m.get_ref() {
                    DeValue::Integer(i) => p.max_attempts = i.as_str().parse().ok(),
                    other => self.err(
                        m.span(),
                        Some(&format!("{field}.max_attempts")),
                        format!("found {}", type_of(other)),
                        Some("a whole number".into()),
                        None,
                    ),
                }
            }
            for (key, slot) in [
                ("base_delay", &mut p.base_delay),
                ("max_delay", &mut p.max_delay),
            ] {
                if let Some(d) = ct.get(key) {
                    let parsed = match d.get_ref() {
                        DeValue::String(s) => parse_duration(s),
                        _ => None,
                    };
                    match parsed {
                        Some(x) => *slot = Some(x),
                        None => {
                            let f = format!("{field}.{key}");
                            self.err(
                                d.span(),
                                Some(&f),
                                "not a duration".into(),
                                Some("a string like \"500ms\", \"30s\", \"10m\" or \"2h\"".into()),
                                None,
                            )
                        }
                    }
                }
            }
            out.by_class.insert(class, p);
        }
        Some(out)
    }

    fn steps(&mut self, items: Vec<(&T<'_>, Range<usize>)>) -> Vec<Step> {
        items
            .into_iter()
            .filter_map(|(t, span)| self.step(t, span))
            .collect()
    }

    fn step(&mut self, t: &T<'_>, span: Range<usize>) -> Option<Step> {
        let outer = self.step.take();
        let name = self.str_(t, "name", true, &span);
        self.step = name.clone().or_else(|| outer.clone());
        let kind = self.str_(t, "kind", true, &span);
        let result = self.step_body(t, &span, name, kind);
        self.step = outer;
        result
    }

    fn step_body(
        &mut self,
        t: &T<'_>,
        span: &Range<usize>,
        name: Option<String>,
        kind: Option<String>,
    ) -> Option<Step> {
        let kind = kind?;
        if !STEP_KINDS.contains(&kind.as_str()) {
            let s = t.get("kind").map(|v| v.span()).unwrap_or(span.clone());
            self.err(
                s,
                Some("kind"),
                format!("unknown step kind `{kind}`"),
                Some(format!("one of: {}", STEP_KINDS.join(", "))),
                suggest(&kind, STEP_KINDS.iter().copied()),
            );
            return None;
        }
        let allowed: Vec<&str> = COMMON_STEP_KEYS
            .iter()
            .chain(step_keys(&kind))
            .copied()
            .collect();
        self.check_keys(t, &allowed, "");
        let name = name?;
        if !self.names.insert(name.clone()) {
            let s = t.get("name").map(|v| v.span()).unwrap_or(span.clone());
            self.err(
                s,
                Some("name"),
                format!("step name `{name}` is used twice"),
                Some("unique step names (later steps refer to them as steps.<name>)".into()),
                None,
            );
        }
        let when = self.expr(t, "when", false, span, VARS);
        let kind = match kind.as_str() {
            "map" => self.map_step(t, span, &name)?,
            "validate" => self.validate_step(t, span)?,
            "lookup" => {
                let for_each = self.expr(t, "for_each", false, span, VARS);
                let key_vars: &[&str] = if for_each.is_some() { &["input", "steps", "item"] } else { VARS };
                StepKind::Lookup {
                    system: self.str_(t, "system", true, span).unwrap_or_default(),
                    record_type: self.str_(t, "record_type", true, span).unwrap_or_default(),
                    key: self.expr(t, "key", true, span, key_vars)?,
                    required: self.bool_(t, "required", true),
                    default: self.expr(t, "default", false, span, key_vars),
                    for_each,
                }
            }
            "dedupe" => {
                let on_dup = self
                    .str_(t, "on_duplicate", false, span)
                    .unwrap_or_else(|| "skip".into());
                if on_dup != "skip" && on_dup != "continue" {
                    let s = t
                        .get("on_duplicate")
                        .map(|v| v.span())
                        .unwrap_or(span.clone());
                    self.err(
                        s,
                        Some("on_duplicate"),
                        format!("unknown value `{on_dup}`"),
                        Some("\"skip\" or \"continue\"".into()),
                        suggest(&on_dup, ["skip", "continue"]),
                    );
                }
                let matching = match t.get("match") {
                    Some(mv) => Some(Box::new(self.match_spec(mv)?)),
                    None => None,
                };
                StepKind::Dedupe {
                    system: self.str_(t, "system", true, span).unwrap_or_default(),
                    record_type: self.str_(t, "record_type", true, span).unwrap_or_default(),
                    key: match matching {
                        Some(_) => self.expr(t, "key", false, span, VARS),
                        None => Some(self.expr(t, "key", true, span, VARS)?),
                    },
                    skip: on_dup != "continue",
                    matching,
                }
            }
            "branch" => self.branch_step(t, span)?,
            "aggregate" => {
                let item_vars = &["input", "steps", "item"];
                let mut sums = Vec::new();
                if let Some(sv) = t.get("sums") {
                    if let Some(st) = self.table(sv, "sums") {
                        for (k, ev) in st.iter() {
                            let f = format!("sums.{}", k.get_ref());
                            if let Some(e) = self.compile_at(ev, &f, item_vars) {
                                sums.push((k.get_ref().to_string(), e));
                            }
                        }
                    }
                }
                StepKind::Aggregate {
                    items: self.expr(t, "items", true, span, VARS)?,
                    group_by: self.expr(t, "group_by", false, span, item_vars),
                    sums,
                }
            }
            "write" => self.write_step(t, span)?,
            _ => return None,
        };
        if matches!(
            kind,
            StepKind::Map { .. }
                | StepKind::Aggregate { .. }
                | StepKind::Lookup { .. }
                | StepKind::Write { .. }
                | StepKind::Dedupe { .. }
        ) {
            self.defined.push(name.clone());
        }
        Some(Step { name, when, kind })
    }

    fn match_spec(&mut self, mv: &V<'_>) -> Option<MatchSpec> {
        let mt = self.table(mv, "match")?;
        let mut allowed: Vec<&str> = MATCH_FIELDS.to_vec();
        allowed.extend(["merge_at", "review_at", "decision"]);
        self.check_keys(mt, &allowed, "match.");
        let mut fields = Vec::new();
        for f in MATCH_FIELDS {
            if let Some(v) = mt.get(*f) {
                fields.push((f.to_string(), self.compile_at(v, &format!("match.{f}"), VARS)?));
            }
        }
        let mut thresholds = crate::dedupe::Thresholds::default();
        for (key, slot) in [("merge_at", &mut thresholds.merge), ("review_at", &mut thresholds.review)] {
            let Some(v) = mt.get(key) else { continue };
            // A similarity score, not money: a float is the natural unit here.
            let parsed = match v.get_ref() {
                DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
                _ => None,
            };
            match parsed.filter(|x| (0.0..=1.0).contains(x)) {
                Some(x) => *slot = x,
                None => self.err(
                    v.span(),
                    Some(&format!("match.{key}")),
                    format!("found {}", type_of(v.get_ref())),
                    Some("a number between 0.0 and 1.0".into()),
                    None,
                ),
            }
        }
        if thresholds.review > thresholds.merge {
            self.err(
                mv.span(),
                Some("match.review_at"),
                format!("review_at {} is above merge_at {}", thresholds.review, thresholds.merge),
                Some("review_at <= merge_at".into()),
                None,
            );
        }
        let decision = match mt.get("decision") {
            Some(v) => Some(self.compile_at(v, "match.decision", VARS)?),
            None => None,
        };
        Some(MatchSpec {
            fields,
            thresholds,
            decision,
        })
    }

    fn map_step(&mut self, t: &T<'_>, span: &Range<usize>, step: &str) -> Option<StepKind> {
        let Some(fv) = t.get("fields") else {
            self.err(
                span.clone(),
                Some("fields"),
                "a map step needs `fields`".into(),
                Some("a table of output field = expression".into()),
                None,
            );
            return None;
        };
        let ft = self.table(fv, "fields")?;
        let mut fields = Vec::new();
        for (k, v) in ft.iter() {
            let path = k.get_ref().to_string();
            let field = format!("fields.{path}");
            match v.get_ref() {
                DeValue::String(_) => {
                    if let Some(e) = self.compile_at(v, &field, VARS) {
                        fields.push(MapField {
                            path,
                            value: FieldValue::Expr(e),
                            cast: None,
                        });
                    }
                }
                DeValue::Table(inner) => {
                    self.check_keys(inner, &["expr", "template", "type"], &format!("{field}."));
                    let cast = match inner.get("type") {
                        Some(tv) => match self.str_at(tv, &format!("{field}.type")).as_deref() {
                            Some("number") => Some(Cast::Number),
                            Some("integer") => Some(Cast::Integer),
                            Some("boolean") => Some(Cast::Boolean),
                            Some("string") => Some(Cast::String),
                            Some("date") => Some(Cast::Date),
                            Some(other) => {
                                self.err(
                                    tv.span(),
                                    Some(&format!("{field}.type")),
                                    format!("unknown type `{other}`"),
                                    Some(format!("one of: {}", CASTS.join(", "))),
                                    suggest(other, CASTS.iter().copied()),
                                );
                                None
                            }
                            None => None,
                        },
                        None => None,
                    };
                    let value = match (inner.get("expr"), inner.get("template")) {
                        (Some(e), None) => self
                            .compile_at(e, &format!("{field}.expr"), VARS)
                            .map(FieldValue::Expr),
                        (None, Some(tpl)) => {
                            let src = self.str_at(tpl, &format!("{field}.template"));
                            src.and_then(|src| {
                                let tname = format!("{step}/{path}");
                                match self.templates.add_template_owned(tname.clone(), src) {
                                    Ok(()) => Some(FieldValue::Template(tname)),
                                    Err(e) => {
                                        self.err(tpl.span(), Some(&format!("{field}.template")), format!("template does not parse: {e}"), Some("a minijinja template such as \"Payment {{ input.id }}\"".into()), None);
                                        None
                                    }
                                }
                            })
                        }
                        _ => {
                            self.err(
                                v.span(),
                                Some(&field),
                                "give exactly one of `expr` or `template`".into(),
                                Some("{ expr = \"...\" } or { template = \"...\" }".into()),
                                None,
                            );
                            None
                        }
                    };
                    if let Some(value) = value {
                        fields.push(MapField { path, value, cast });
                    }
                }
                other => self.err(
                    v.span(),
                    Some(&field),
                    format!("found {}", type_of(other)),
                    Some("an expression string or { expr = \"...\", type = \"number\" }".into()),
                    None,
                ),
            }
        }
        Some(StepKind::Map {
            fields,
            keep_nulls: self.bool_(t, "keep_nulls", false),
        })
    }

    fn known_record(
        &mut self,
        v: Option<&V<'_>>,
        field: &str,
        span: &Range<usize>,
    ) -> Option<String> {
        let Some(v) = v else {
            self.err(
                span.clone(),
                Some(field),
                format!("missing required field `{field}`"),
                Some("the name of an earlier map step".into()),
                None,
            );
            return None;
        };
        let name = self.str_at(v, field)?;
        if !self.defined.contains(&name) {
            let defined = self.defined.clone();
            self.err(
                v.span(),
                Some(field),
                format!("no earlier step named `{name}`"),
                Some(if defined.is_empty() {
                    "a step defined above this one".into()
                } else {
                    format!("one of: {}", defined.join(", "))
                }),
                suggest(&name, defined.iter().map(String::as_str)),
            );
        }
        Some(name)
    }

    fn validate_step(&mut self, t: &T<'_>, span: &Range<usize>) -> Option<StepKind> {
        let record = self.known_record(t.get("record"), "record", span)?;
        let mut fields = Vec::new();
        if let Some(fv) = t.get("fields") {
            for (ft, fspan) in self.tables(fv, "fields") {
                self.check_keys(
                    ft,
                    &[
                        "path",
                        "required",
                        "format",
                        "correct",
                        "max_length",
                        "one_of",
                        "region",
                        "severity",
                    ],
                    "fields.",
                );
                let Some(path) = self.str_(ft, "path", true, &fspan) else {
                    continue;
                };
                let format = match ft.get("format") {
                    Some(v) => match self.str_at(v, "fields.format").as_deref() {
                        Some("email") => Some(Format::Email),
                        Some("phone") => Some(Format::Phone),
                        Some("country") => Some(Format::Country),
                        Some("us_state") => Some(Format::UsState),
                        Some("date") => Some(Format::Date),
                        Some("amount") => Some(Format::Amount),
                        Some("integer") => Some(Format::Integer),
                        Some("boolean") => Some(Format::Boolean),
                        Some("string") => Some(Format::String),
                        Some(other) => {
                            self.err(
                                v.span(),
                                Some("fields.format"),
                                format!("unknown format `{other}`"),
                                Some(format!("one of: {}", FORMATS.join(", "))),
                                suggest(other, FORMATS.iter().copied()),
                            );
                            None
                        }
                        None => None,
                    },
                    None => None,
                };
                let max_length = ft.get("max_length").and_then(|v| match v.get_ref() {
                    DeValue::Integer(i) => i.as_str().parse().ok(),
                    _ => None,
                });
                let one_of = ft
                    .get("one_of")
                    .and_then(|v| de_json(v.get_ref()).ok())
                    .and_then(|j| {
                        j.as_array()
                            .map(|a| a.iter().filter_map(crate::expr::json_text).collect())
                    });
                let severity = self.severity(ft, &fspan);
                fields.push(FieldRule {
                    path,
                    required: self.bool_(ft, "required", false),
                    format,
                    correct: self.bool_(ft, "correct", true),
                    max_length,
                    one_of,
                    region: self
                        .str_(ft, "region", false, &fspan)
                        .unwrap_or_else(|| "US".into()),
                    severity,
                });
            }
        }
        let mut rules = Vec::new();
        if let Some(rv) = t.get("rules") {
            for (rt, rspan) in self.tables(rv, "rules") {
                self.check_keys(rt, &["check", "path", "message", "severity"], "rules.");
                let check = self.expr(rt, "check", true, &rspan, &["input", "steps", "record"]);
                let path = self.str_(rt, "path", false, &rspan).unwrap_or_default();
                let message = self.str_(rt, "message", true, &rspan).unwrap_or_default();
                let severity = self.severity(rt, &rspan);
                if let Some(check) = check {
                    rules.push(Rule {
                        check,
                        path,
                        message,
                        severity,
                    });
                }
            }
        }
        Some(StepKind::Validate {
            record,
            fields,
            rules,
        })
    }

    fn severity(&mut self, t: &T<'_>, span: &Range<usize>) -> Severity {
        match self.str_(t, "severity", false, span).as_deref() {
            None | Some("error") => Severity::Error,
            Some("warning") => Severity::Warning,
            Some(other) => {
                let s = t.get("severity").map(|v| v.span()).unwrap_or(span.clone());
                self.err(
                    s,
                    Some("severity"),
                    format!("unknown severity `{other}`"),
                    Some("\"error\" or \"warning\"".into()),
                    suggest(other, ["error", "warning"]),
                );
                Severity::Error
            }
        }
    }

    fn branch_step(&mut self, t: &T<'_>, span: &Range<usize>) -> Option<StepKind> {
        let mut cases = Vec::new();
        if let Some(cv) = t.get("cases") {
            for (ct, cspan) in self.tables(cv, "cases") {
                self.check_keys(ct, &["when", "steps"], "cases.");
                let when = self.expr(ct, "when", true, &cspan, VARS);
                let steps = match ct.get("steps") {
                    Some(sv) => {
                        let items = self.tables(sv, "cases.steps");
                        self.steps(items)
                    }
                    None => Vec::new(),
                };
                if let Some(when) = when {
                    cases.push((when, steps));
                }
            }
        } else {
            self.err(
                span.clone(),
                Some("cases"),
                "a branch needs `cases`".into(),
                Some("[[steps.cases]] with `when` and [[steps.cases.steps]]".into()),
                None,
            );
        }
        let otherwise = match t.get("otherwise") {
            Some(ov) => {
                let items = self.tables(ov, "otherwise");
                self.steps(items)
            }
            None => Vec::new(),
        };
        Some(StepKind::Branch { cases, otherwise })
    }

    fn write_step(&mut self, t: &T<'_>, span: &Range<usize>) -> Option<StepKind> {
        let target = self.str_(t, "target", true, span)?;
        let system = target.split('.').next().unwrap_or("");
        if !WRITE_SYSTEMS.contains(&system) || !target.contains('.') {
            let s = t.get("target").map(|v| v.span()).unwrap_or(span.clone());
            let known = [
                "netsuite.upsert",
                "netsuite.transform",
                "gpapi.capture",
                "gpapi.refund",
                "retail.upsert",
            ];
            self.err(s, Some("target"), format!("unknown write target `{target}`"), Some("`<system>.<operation>` with system netsuite, gpapi or retail, e.g. \"netsuite.upsert\"".into()), suggest(&target, known));
        }
        let record_type = self.str_(t, "record_type", true, span)?;
        let external_id = self.expr(t, "external_id", true, span, VARS)?;
        let body = self.known_record(t.get("body"), "body", span)?;
        let mut params = Vec::new();
        if let Some(pv) = t.get("params") {
            if let Some(pt) = self.table(pv, "params") {
                for (k, ev) in pt.iter() {
                    let f = format!("params.{}", k.get_ref());
                    if let Some(e) = self.compile_at(ev, &f, VARS) {
                        params.push((k.get_ref().to_string(), e));
                    }
                }
            }
        }
        Some(StepKind::Write {
            target,
            record_type,
            external_id,
            body,
            params,
        })
    }

    fn example(&mut self, t: &T<'_>, span: Range<usize>) -> Option<Example> {
        self.check_keys(
            t,
            &[
                "name",
                "input",
                "input_json",
                "lookups",
                "write_results",
                "candidates",
                "expect_writes",
                "expect_findings",
                "expect_error",
                "expect_skipped",
                "expect_records",
            ],
            "examples.",
        );
        let name = self.str_(t, "name", true, &span)?;
        self.step = None;
        let field = |f: &str| format!("examples[{name}].{f}");
        let input = match (t.get("input"), t.get("input_json")) {
            (Some(v), None) => de_json(v.get_ref())
                .map_err(|m| self.err(v.span(), Some(&field("input")), m, None, None))
                .ok()?,
            (None, Some(v)) => {
                let text = self.str_at(v, &field("input_json"))?;
                match serde_json::from_str(&text) {
                    Ok(j) => j,
                    Err(e) => {
                        self.err(
                            v.span(),
                            Some(&field("input_json")),
                            format!("not valid JSON: {e}"),
                            None,
                            None,
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.err(
                    span.clone(),
                    Some(&field("input")),
                    "give exactly one of `input` (a table) or `input_json` (a JSON string)".into(),
                    None,
                    None,
                );
                return None;
            }
        };
        let mut lookups = Vec::new();
        if let Some(lv) = t.get("lookups") {
            for (lt, lspan) in self.tables(lv, &field("lookups")) {
                self.check_keys(lt, &["system", "record_type", "key", "id"], "lookups.");
                if let (Some(system), Some(record_type), Some(key), Some(id)) = (
                    self.str_(lt, "system", true, &lspan),
                    self.str_(lt, "record_type", true, &lspan),
                    self.str_(lt, "key", true, &lspan),
                    self.str_(lt, "id", true, &lspan),
                ) {
                    lookups.push(LookupFixture {
                        system,
                        record_type,
                        key,
                        id,
                    });
                }
            }
        }
        let mut candidates = Vec::new();
        if let Some(cv) = t.get("candidates") {
            match de_json(cv.get_ref()) {
                Ok(J::Array(a)) if a.iter().all(J::is_object) => candidates = a,
                Ok(_) => self.err(
                    cv.span(),
                    Some(&field("candidates")),
                    "expected an array of tables".into(),
                    None,
                    None,
                ),
                Err(m) => self.err(cv.span(), Some(&field("candidates")), m, None, None),
            }
        }
        let mut write_results = Vec::new();
        if let Some(wv) = t.get("write_results") {
            for (wt, wspan) in self.tables(wv, &field("write_results")) {
                self.check_keys(
                    wt,
                    &["idempotency_key", "remote_id", "response"],
                    "write_results.",
                );
                if let Some(idempotency_key) = self.str_(wt, "idempotency_key", true, &wspan) {
                    write_results.push(WriteFixture {
                        idempotency_key,
                        remote_id: self.str_(wt, "remote_id", false, &wspan),
                        response: wt
                            .get("response")
                            .and_then(|r| de_json(r.get_ref()).ok())
                            .unwrap_or(J::Object(Default::default())),
                    });
                }
            }
        }
        let expect_writes = t.get("expect_writes").map(|wv| {
            let mut out = Vec::new();
            for (wt, wspan) in self.tables(wv, &field("expect_writes")) {
                self.check_keys(
                    wt,
                    &["target", "record_type", "idempotency_key", "body", "match"],
                    "expect_writes.",
                );
                let exact = match self.str_(wt, "match", false, &wspan).as_deref() {
                    None | Some("subset") => false,
                    Some("exact") => true,
                    Some(other) => {
                        self.err(
                            wspan.clone(),
                            Some("match"),
                            format!("unknown match `{other}`"),
                            Some("\"subset\" or \"exact\"".into()),
                            suggest(other, ["subset", "exact"]),
                        );
                        false
                    }
                };
                if let (Some(target), Some(record_type)) = (
                    self.str_(wt, "target", true, &wspan),
                    self.str_(wt, "record_type", true, &wspan),
                ) {
                    out.push(ExpectedWrite {
                        target,
                        record_type,
                        idempotency_key: self.str_(wt, "idempotency_key", false, &wspan),
                        body: wt.get("body").and_then(|b| de_json(b.get_ref()).ok()),
                        exact,
                    });
                }
            }
            out
        });
        let mut expect_findings = Vec::new();
        if let Some(fv) = t.get("expect_findings") {
            for (ft, fspan) in self.tables(fv, &field("expect_findings")) {
                self.check_keys(
                    ft,
                    &["path", "rule", "kind", "before", "after"],
                    "expect_findings.",
                );
                if let Some(path) = self.str_(ft, "path", true, &fspan) {
                    expect_findings.push(ExpectedFinding {
                        path,
                        rule: self.str_(ft, "rule", false, &fspan),
                        kind: self.str_(ft, "kind", false, &fspan),
                        before: ft.get("before").and_then(|b| de_json(b.get_ref()).ok()),
                        after: ft.get("after").and_then(|b| de_json(b.get_ref()).ok()),
                    });
                }
            }
        }
        let expect_error = match t.get("expect_error") {
            Some(ev) => {
                let et = self.table(ev, &field("expect_error"))?;
                self.check_keys(et, &["class", "field", "message_contains"], "expect_error.");
                let class_s = self.str_(et, "class", true, &ev.span())?;
                let names: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.as_str()).collect();
                let Some(class) = ErrorClass::parse(&class_s) else {
                    self.err(
                        ev.span(),
                        Some("expect_error.class"),
                        format!("unknown error class `{class_s}`"),
                        Some(format!("one of: {}", names.join(", "))),
                        suggest(&class_s, names.iter().copied()),
                    );
                    return None;
                };
                Some(ExpectedError {
                    class,
                    field: self.str_(et, "field", false, &ev.span()),
                    message_contains: self.str_(et, "message_contains", false, &ev.span()),
                })
            }
            None => None,
        };
        let expect_skipped = t
            .get("expect_skipped")
            .map(|_| self.bool_(t, "expect_skipped", false));
        let mut expect_records = Vec::new();
        if let Some(rv) = t.get("expect_records") {
            if let Some(rt) = self.table(rv, &field("expect_records")) {
                for (k, v) in rt.iter() {
                    if let Ok(j) = de_json(v.get_ref()) {
                        expect_records.push((k.get_ref().to_string(), j));
                    }
                }
            }
        }
        Some(Example {
            name,
            line: line_col(self.src, span.start).0,
            input,
            lookups,
            candidates,
            write_results,
            expect_writes,
            expect_findings,
            expect_error,
            expect_skipped,
            expect_records,
        })
    }
}

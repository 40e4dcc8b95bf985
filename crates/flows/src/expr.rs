//! The one module that knows the `cel` crate (0.15, pinned). `cel` has frequent breaking 0.x
//! releases, so everything else in this crate sees only [`Runtime`], [`Expr`], [`Bindings`] and
//! JSON values; an upgrade touches this file alone.
//!
//! Rules enforced here:
//! - expressions are compiled once, when a flow loads, and checked for unknown functions,
//!   unknown variables and doubles (float literals or `double()`), so a typo or a float on a
//!   money path is a load error, not a 3 a.m. dead letter;
//! - JSON numbers that are not integers enter CEL as decimal *strings*, so no amount is ever
//!   a binary double; the `dec_*` functions do exact arithmetic on them;
//! - evaluation never panics: every failure, including one inside the interpreter, comes back
//!   as an error string the caller turns into a classified failure.

mod fast;

use crate::normalize as n;
use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue};
use cel::common::types::{
    CelBool, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::extractors::Arguments;
use cel::objects::{Key, Map as CelMapValue};
use cel::{Context, Env, ExecutionError, Program, Value as CV};
use rust_decimal::Decimal;
use serde_json::Value as J;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

pub(crate) const NO_DOUBLES: &str = "doubles are not allowed in flow expressions (money must stay exact): write the number as a decimal string, e.g. dec_mul(x, \"1.5\")";

/// Every function we add, with its signature, for the consultant's guide and for "did you mean".
pub const FUNCTIONS: &[(&str, &str)] = &[
    (
        "minor_to_decimal",
        "minor_to_decimal(minor, currency) -> decimal string with the currency's places",
    ),
    (
        "decimal_to_minor",
        "decimal_to_minor(amount, currency) -> int minor units (error if too precise)",
    ),
    ("currency_places", "currency_places(currency) -> int"),
    ("dec", "dec(x) -> decimal string (x: int or decimal string)"),
    ("dec_add", "dec_add(a, b, ...) -> decimal string"),
    ("dec_sub", "dec_sub(a, b) -> decimal string"),
    ("dec_mul", "dec_mul(a, b) -> decimal string"),
    (
        "dec_div",
        "dec_div(a, b, places [, mode]) -> decimal string rounded to places",
    ),
    (
        "dec_round",
        "dec_round(x, places [, mode]) -> decimal string with exactly places places",
    ),
    ("dec_neg", "dec_neg(x) -> decimal string"),
    ("dec_abs", "dec_abs(x) -> decimal string"),
    ("dec_sum", "dec_sum(list) -> decimal string"),
    ("dec_cmp", "dec_cmp(a, b) -> -1, 0 or 1"),
    ("dec_eq", "dec_eq(a, b) -> bool"),
    ("dec_lt", "dec_lt(a, b) -> bool"),
    ("dec_le", "dec_le(a, b) -> bool"),
    ("dec_gt", "dec_gt(a, b) -> bool"),
    ("dec_ge", "dec_ge(a, b) -> bool"),
    (
        "amount",
        "amount(text) -> decimal string from \"$1,234.50\"-style text",
    ),
    (
        "convert_currency",
        "convert_currency(amount, from, to) -> decimal string using the flow's [rates]",
    ),
    (
        "fx_rate",
        "fx_rate(from, to) -> decimal string rate from the flow's [rates]",
    ),
    (
        "parse_date",
        "parse_date(text) -> \"YYYY-MM-DD\" from common formats",
    ),
    (
        "format_date",
        "format_date(date_or_timestamp, strftime_format) -> string",
    ),
    (
        "local_date",
        "local_date(timestamp, time_zone) -> \"YYYY-MM-DD\" business date in that zone",
    ),
    (
        "format_datetime",
        "format_datetime(timestamp, time_zone, strftime_format) -> string",
    ),
    ("to_int", "to_int(x) -> int from \"1,234\" / \"42\""),
    (
        "to_bool",
        "to_bool(x) -> bool from yes/no/true/false/1/0/y/n",
    ),
    ("concat", "concat(a, b, ...) -> string, nulls skipped"),
    (
        "join_nonempty",
        "join_nonempty(separator, a, b, ...) -> string of the non-empty parts",
    ),
    ("upper", "upper(s) -> string"),
    ("lower", "lower(s) -> string"),
    ("title_case", "title_case(s) -> string"),
    (
        "collapse_spaces",
        "collapse_spaces(s) -> string trimmed, inner runs of spaces made one",
    ),
    ("split_name", "split_name(full) -> {first, last}"),
    ("first_name", "first_name(full) -> string"),
    ("last_name", "last_name(full) -> string"),
    (
        "parse_address",
        "parse_address(line) -> {addr1, addr2, city, state, zip, country}",
    ),
    (
        "phone_e164",
        "phone_e164(phone [, region]) -> \"+15125550100\"",
    ),
    (
        "email_norm",
        "email_norm(email) -> trimmed lower-case address",
    ),
    (
        "country_code",
        "country_code(name_or_code) -> ISO 3166 alpha-2",
    ),
    (
        "us_state_code",
        "us_state_code(name_or_code) -> two-letter code",
    ),
    (
        "coalesce",
        "coalesce(a, b, ...) -> first value that is not null or \"\"",
    ),
    (
        "get",
        "get(value, \"dotted.path\" [, default]) -> value at path or default/null",
    ),
    (
        "zip",
        "zip(a, b) -> [[a[0], b[0]], [a[1], b[1]], ...] (error if the lengths differ)",
    ),
];

/// CEL's own functions and macros, offered as suggestions (acceptance is checked against the
/// environment itself).
const CEL_NAMES: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "string",
    "bool",
    "bytes",
    "timestamp",
    "duration",
    "type",
    "dyn",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "max",
    "min",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "join",
    "reverse",
    "getFullYear",
    "getMonth",
    "getDayOfMonth",
    "getHours",
    "getMinutes",
];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // The strings extension gives consultants `s.split(",")`, `s.trim()`, `s.lowerAscii()`...
    // If it ever fails to register we still run, just without those members.
    if env.add_extension(cel::extensions::strings).is_err() {
        return Arc::new(Env::stdlib());
    }
    Arc::new(env)
});

/// A value table declared in a flow (`[tables.gl_account]`), callable as `gl_account(a, b)`.
#[derive(Debug, Clone)]
pub struct ValueTable {
    pub name: String,
    pub args: Vec<String>,
    /// Keys are the argument values joined by `|`, lower-cased; `*` matches anything.
    pub rows: HashMap<String, J>,
    pub default: Option<J>,
}

impl ValueTable {
    pub fn lookup(&self, keys: &[String]) -> Option<&J> {
        let n = keys.len();
        let lower: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        // Most specific first: fewer wildcards, and wildcards in later positions before earlier.
        let mut masks: Vec<u32> = (0..(1u32 << n.min(8))).collect();
        masks.sort_by_key(|m| (m.count_ones(), m.reverse_bits()));
        for mask in masks {
            let key: Vec<&str> = (0..n)
                .map(|i| {
                    if mask & (1 << i) != 0 {
                        "*"
                    } else {
                        lower[i].as_str()
                    }
                })
                .collect();
            if let Some(v) = self.rows.get(&key.join("|")) {
                return Some(v);
            }
        }
        self.default.as_ref()
    }
}

/// Currency pairs `"EUR/USD" = "1.0842"`: one EUR is 1.0842 USD.
pub type RateTable = HashMap<(String, String), Decimal>;

/// A compiled expression. Compiling costs tens of microseconds, evaluating about one, so a
/// flow compiles every expression once at load.
pub struct Expr {
    pub source: String,
    program: Program,
    /// The same expression for the direct evaluator, when it has the shape that evaluator
    /// handles (most mapping fields do); CEL stays the reference and the fallback.
    fast: Option<fast::Fast>,
}

impl Expr {
    /// Whether evaluation can bypass the interpreter (see [`fast`]). For tests and profiling.
    pub fn is_direct(&self) -> bool {
        self.fast.is_some()
    }
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// A problem found while compiling one expression; `offset` is a byte offset into its source.
#[derive(Debug, Clone)]
pub struct ExprIssue {
    pub offset: usize,
    pub message: String,
    pub expected: Option<String>,
    pub suggestion: Option<String>,
}

/// A JSON value as CEL sees it. Conversion is lazy: `input.a.b` is answered by walking the JSON
/// and converting only the leaf (CEL asks the resolver for the dotted name first); the whole
/// value is converted, once, only when an expression uses it bare (`has(input.x)`, `get(input, ..)`).
pub struct CelJson<'a> {
    json: &'a J,
    whole: std::sync::OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> CelJson<'a> {
    pub fn new(v: &'a J) -> Self {
        CelJson {
            json: v,
            whole: std::sync::OnceLock::new(),
        }
    }
}

/// Object-safe view of a [`CelJson`], so bindings of different lifetimes can sit side by side.
trait Source: Send + Sync {
    fn json(&self) -> &J;
    fn whole(&self) -> &(dyn Val + '_);
}

impl Source for CelJson<'_> {
    fn json(&self) -> &J {
        self.json
    }
    fn whole(&self) -> &(dyn Val + '_) {
        self.whole.get_or_init(|| json_to_val(self.json)).as_ref()
    }
}

/// Results of earlier steps, as JSON copies taken when the step finished (the run's own record
/// keeps changing, e.g. by validation corrections, and expressions must see the value as it was
/// when this was set). The CEL form is made only if an interpreted expression asks for
/// `steps.<name>`; direct paths read the JSON. CEL asks the resolver for the dotted name
/// `steps.payment` before it looks for a variable `steps`, so no map of all steps is ever built.
#[derive(Default)]
pub struct StepValues {
    vals: Vec<StepVal>,
}

struct StepVal {
    name: String,
    json: J,
    cel: std::sync::OnceLock<Box<dyn Val + 'static>>,
}

impl StepValues {
    pub fn set(&mut self, name: &str, v: &J) {
        match self.vals.iter_mut().find(|s| s.name == name) {
            Some(slot) => {
                slot.json = v.clone();
                slot.cel = std::sync::OnceLock::new();
            }
            None => self.vals.push(StepVal {
                name: name.to_string(),
                json: v.clone(),
                cel: std::sync::OnceLock::new(),
            }),
        }
    }
    fn find(&self, name: &str) -> Option<&StepVal> {
        self.vals.iter().find(|s| s.name == name)
    }
    fn get(&self, name: &str) -> Option<&(dyn Val + 'static)> {
        self.find(name)
            .map(|s| s.cel.get_or_init(|| json_to_val_owned(&s.json)).as_ref())
    }
}

/// The variables one evaluation sees (`input`, `steps`, `record`, `item`...), by reference: no
/// copy of the event is made per expression.
#[derive(Default)]
pub struct Bindings<'s> {
    vars: Vec<(&'static str, &'s dyn Source)>,
    steps: Option<&'s StepValues>,
}

impl<'s> Bindings<'s> {
    pub fn new() -> Self {
        Self {
            vars: Vec::with_capacity(4),
            steps: None,
        }
    }
    pub fn with_steps(mut self, steps: &'s StepValues) -> Self {
        self.steps = Some(steps);
        self
    }
    pub fn with(mut self, name: &'static str, v: &'s CelJson<'_>) -> Self {
        self.set(name, v);
        self
    }
    pub fn set(&mut self, name: &'static str, v: &'s CelJson<'_>) {
        let r: &'s dyn Source = v;
        if let Some(slot) = self.vars.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = r;
        } else {
            self.vars.push((name, r));
        }
    }
}

impl<'s> Bindings<'s> {
    fn var_json(&self, name: &str) -> Option<&'s J> {
        self.vars.iter().find(|(k, _)| *k == name).map(|(_, v)| {
            let v: &'s dyn Source = *v;
            v.json()
        })
    }
    fn step_json(&self, name: &str) -> Option<&'s J> {
        self.steps?.find(name).map(|s| &s.json)
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if let (Some(rest), Some(steps)) = (variable.strip_prefix("steps."), self.steps) {
            return steps.get(rest).map(CowVal::Borrowed);
        }
        let (root, path) = match variable.split_once('.') {
            Some((r, p)) => (r, Some(p)),
            None => (variable, None),
        };
        let src = self
            .vars
            .iter()
            .find(|(k, _)| *k == root)
            .map(|(_, v)| *v)?;
        match path {
            None => Some(CowVal::Borrowed(src.whole())),
            Some(p) => {
                let mut cur = src.json();
                for seg in p.split('.') {
                    cur = cur.as_object()?.get(seg)?;
                }
                Some(CowVal::Owned(json_to_val(cur)))
            }
        }
    }
}

/// One flow's expression runtime: CEL's standard library, our functions, and the flow's own
/// value tables and rates. Built once per flow at load; shared by every run.
pub struct Runtime {
    ctx: Context<'static, 'static>,
    /// Our functions and the flow's tables by name, for [`Fast`] calls.
    funs: HashMap<String, Arc<Fun>>,
    table_names: Vec<String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Runtime(tables: {:?})", self.table_names)
    }
}

type Fun = dyn Fn(&[CV]) -> Result<CV, String> + Send + Sync;

/// CEL's context plus our own functions by name, so the direct evaluator ([`Fast`]) can call
/// exactly the code CEL would call.
struct Registry {
    ctx: Context<'static, 'static>,
    funs: HashMap<String, Arc<Fun>>,
}

fn add(reg: &mut Registry, name: &str, f: Box<Fun>) -> Result<(), String> {
    let f: Arc<Fun> = Arc::from(f);
    reg.funs.insert(name.to_string(), f.clone());
    let owned: Arc<str> = Arc::from(name);
    reg.ctx
        .add_function(
            name,
            move |Arguments(args): Arguments| -> Result<CV, ExecutionError> {
                f(&args).map_err(|m| ExecutionError::function_error(&owned, m))
            },
        )
        .map_err(|e| e.to_string())
}

impl Runtime {
    pub fn new(tables: Vec<ValueTable>, rates: RateTable) -> Result<Self, String> {
        let mut reg = Registry {
            ctx: Context::with_env(ENV.clone()),
            funs: HashMap::new(),
        };
        register_builtins(&mut reg)?;
        let rates = Arc::new(rates);
        {
            let r = rates.clone();
            add(
                &mut reg,
                "convert_currency",
                Box::new(move |a| convert_currency(&r, a)),
            )?;
            let r = rates.clone();
            add(
                &mut reg,
                "fx_rate",
                Box::new(move |a| {
                    arity(a, 2, 2)?;
                    Ok(CV::String(Arc::new(
                        rate(&r, &text(&a[0])?, &text(&a[1])?)?.to_string(),
                    )))
                }),
            )?;
        }
        let mut table_names = Vec::new();
        for t in tables {
            if is_known_function(&t.name) || FUNCTIONS.iter().any(|(f, _)| *f == t.name) {
                return Err(format!(
                    "table name `{}` is already a function name; rename the table",
                    t.name
                ));
            }
            table_names.push(t.name.clone());
            let name = t.name.clone();
            let f = move |args: &[CV]| -> Result<CV, String> {
                if args.len() != t.args.len() {
                    return Err(format!(
                        "takes {} arguments ({}), got {}",
                        t.args.len(),
                        t.args.join(", "),
                        args.len()
                    ));
                }
                let keys = args.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                match t.lookup(&keys) {
                    Some(v) => Ok(json_to_value(v)),
                    None => Err(format!("no row for ({}) and no default", keys.join(", "))),
                }
            };
            add(&mut reg, &name, Box::new(f))?;
        }
        Ok(Runtime {
            ctx: reg.ctx,
            funs: reg.funs,
            table_names,
        })
    }

    fn is_function(&self, name: &str) -> bool {
        FUNCTIONS.iter().any(|(f, _)| *f == name)
            || self.table_names.iter().any(|t| t == name)
            || is_known_function(name)
    }

    /// Compiles and checks one expression; `vars` are the variable names it may use.
    pub fn compile(&self, src: &str, vars: &[&str]) -> Result<Expr, Vec<ExprIssue>> {
        let program = match ENV.compile(src) {
            Ok(p) => p,
            Err(errs) => {
                return Err(errs
                    .errors
                    .iter()
                    .map(|e| ExprIssue {
                        offset: offset_of(src, e.pos.0, e.pos.1),
                        message: format!("not a valid expression: {}", e.msg),
                        expected: Some(
                            "a CEL expression, e.g. minor_to_decimal(input.amount, input.currency)"
                                .into(),
                        ),
                        suggestion: None,
                    })
                    .collect());
            }
        };
        let mut issues = Vec::new();
        let mut bound = Vec::new();
        self.check(
            &program,
            program.expression(),
            vars,
            &mut bound,
            &mut issues,
        );
        if issues.is_empty() {
            let fast = fast::compile(program.expression(), vars, &self.funs);
            Ok(Expr {
                source: src.to_string(),
                program,
                fast,
            })
        } else {
            Err(issues)
        }
    }

    fn check<'p>(
        &self,
        p: &Program,
        e: &'p IdedExpr,
        vars: &[&str],
        bound: &mut Vec<&'p str>,
        out: &mut Vec<ExprIssue>,
    ) {
        let at = |id: u64| {
            p.source_info()
                .offset_for(id)
                .map(|(s, _)| s as usize)
                .unwrap_or(0)
        };
        match &e.expr {
            Ast::Literal(LiteralValue::Double(_)) => out.push(ExprIssue {
                offset: at(e.id),
                message: "a double (floating-point) number".into(),
                expected: Some("an integer or a decimal string".into()),
                suggestion: Some(NO_DOUBLES.into()),
            }),
            Ast::Ident(name)
                if name == "steps" && vars.contains(&"steps") && !bound.contains(&"steps") =>
            {
                out.push(ExprIssue {
                    offset: at(e.id),
                    message: "`steps` on its own is not a value".into(),
                    expected: Some("`steps.<step name>`, e.g. steps.customer".into()),
                    suggestion: None,
                })
            }
            Ast::Ident(name) => {
                if !bound.contains(&name.as_str()) && !vars.contains(&name.as_str()) {
                    out.push(ExprIssue {
                        offset: at(e.id),
                        message: format!("unknown variable `{name}`"),
                        expected: Some(format!("one of: {}", vars.join(", "))),
                        suggestion: suggest(name, vars.iter().copied()),
                    });
                }
            }
            Ast::Call(c) => {
                let name = c.func_name.as_str();
                let named = name
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_alphabetic())
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.');
                if name == "double" {
                    out.push(ExprIssue {
                        offset: at(e.id),
                        message: "`double()` converts to a floating-point number".into(),
                        expected: Some("exact decimals".into()),
                        suggestion: Some(NO_DOUBLES.into()),
                    });
                } else if named && !self.is_function(name) {
                    let candidates = FUNCTIONS
                        .iter()
                        .map(|(f, _)| *f)
                        .chain(CEL_NAMES.iter().copied())
                        .chain(self.table_names.iter().map(String::as_str));
                    // CEL places a call at its `(`; point at the start of the name instead.
                    out.push(ExprIssue {
                        offset: at(e.id).saturating_sub(name.len()),
                        message: format!("unknown function `{name}`"),
                        expected: Some(
                            "a function listed in docs/flows.md or a table declared in this flow"
                                .into(),
                        ),
                        suggestion: suggest(name, candidates),
                    });
                }
                if let Some(t) = &c.target {
                    self.check(p, t, vars, bound, out);
                }
                for a in &c.args {
                    self.check(p, a, vars, bound, out);
                }
            }
            // `steps.<name>` is resolved by name (see StepValues); only a bare `steps` is refused.
            Ast::Select(s)
                if !s.test
                    && matches!(&s.operand.expr, Ast::Ident(n) if n == "steps")
                    && vars.contains(&"steps") => {}
            Ast::Select(s) => self.check(p, &s.operand, vars, bound, out),
            Ast::List(l) => l
                .elements
                .iter()
                .for_each(|x| self.check(p, x, vars, bound, out)),
            Ast::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            self.check(p, &me.key, vars, bound, out);
                            self.check(p, &me.value, vars, bound, out);
                        }
                        EntryExpr::StructField(f) => self.check(p, &f.value, vars, bound, out),
                    }
                }
            }
            Ast::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.check(p, &f.value, vars, bound, out);
                    }
                }
            }
            Ast::Comprehension(c) => {
                self.check(p, &c.iter_range, vars, bound, out);
                self.check(p, &c.accu_init, vars, bound, out);
                let before = bound.len();
                bound.push(&c.iter_var);
                if let Some(v2) = &c.iter_var2 {
                    bound.push(v2);
                }
                bound.push(&c.accu_var);
                self.check(p, &c.loop_cond, vars, bound, out);
                self.check(p, &c.loop_step, vars, bound, out);
                self.check(p, &c.result, vars, bound, out);
                bound.truncate(before);
            }
            _ => {}
        }
    }

    /// Evaluates to JSON. Never panics: an interpreter panic becomes an error too. The direct
    /// evaluator answers when it can; anything else, every error included, is CEL's to answer.
    pub fn eval(&self, e: &Expr, b: &Bindings<'_>) -> Result<J, String> {
        if let Some(f) = &e.fast {
            if let Ok(Some(v)) = catch_unwind(AssertUnwindSafe(|| fast::eval_json(f, b))) {
                return Ok(v);
            }
        }
        self.eval_interpreted(e, b)
    }

    /// Evaluates with the CEL interpreter only: the reference the direct evaluator is tested
    /// against.
    pub fn eval_interpreted(&self, e: &Expr, b: &Bindings<'_>) -> Result<J, String> {
        let out = catch_unwind(AssertUnwindSafe(|| {
            let ctx = scope(&self.ctx, b);
            e.program.execute(&ctx)
        }));
        match out {
            Ok(Ok(v)) => cel_to_json(&v),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("the expression engine failed on this input (internal error)".into()),
        }
    }

    pub fn eval_bool(&self, e: &Expr, b: &Bindings<'_>) -> Result<bool, String> {
        match self.eval(e, b)? {
            J::Bool(v) => Ok(v),
            other => Err(format!("expected true or false, got {}", type_name(&other))),
        }
    }
}

fn scope<'b>(root: &'b Context<'b, 'b>, b: &'b Bindings<'_>) -> Context<'b, 'b> {
    let mut ctx = root.new_inner_scope();
    ctx.set_variable_resolver(b);
    ctx
}

fn is_known_function(name: &str) -> bool {
    // `add_function` refuses exactly the names the environment already declares, so a throwaway
    // context tells us whether CEL (or its strings extension) knows a name.
    let mut probe = Context::with_env(ENV.clone());
    probe.add_function(name, || 0i64).is_err()
}

pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn offset_of(src: &str, line: isize, col: isize) -> usize {
    let mut off = 0usize;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i as isize + 1 == line {
            return (off + col.max(0) as usize).min(src.len());
        }
        off += l.len();
    }
    0
}

pub(crate) fn type_name(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "bool",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "list",
        J::Object(_) => "map",
    }
}

// ---------- conversions ----------

fn json_to_val<'a>(v: &'a J) -> Box<dyn Val + 'a> {
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(num) => {
            if let Some(i) = num.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = num.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                // A fraction or a huge number: keep its exact text (arbitrary_precision).
                Box::new(CelString::from(num.to_string()))
            }
        }
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(a) => Box::new(CelList::from(a.iter().map(json_to_val).collect::<Vec<_>>())),
        J::Object(o) => Box::new(CelMap::from(
            o.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

fn json_to_val_owned(v: &J) -> Box<dyn Val + 'static> {
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(num) => match (num.as_i64(), num.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelString::from(num.to_string())),
        },
        J::String(s) => Box::new(CelString::from(s.clone())),
        J::Array(a) => Box::new(CelList::from(
            a.iter().map(json_to_val_owned).collect::<Vec<_>>(),
        )),
        J::Object(o) => Box::new(CelMap::from(
            o.iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), json_to_val_owned(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

fn json_to_value(v: &J) -> CV {
    match v {
        J::Null => CV::Null,
        J::Bool(b) => CV::Bool(*b),
        J::Number(num) => match (num.as_i64(), num.as_u64()) {
            (Some(i), _) => CV::Int(i),
            (None, Some(u)) => CV::UInt(u),
            _ => CV::String(Arc::new(num.to_string())),
        },
        J::String(s) => CV::String(Arc::new(s.clone())),
        J::Array(a) => CV::List(Arc::new(a.iter().map(json_to_value).collect())),
        J::Object(o) => CV::Map(CelMapValue {
            map: Arc::new(
                o.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_value(v)))
                    .collect(),
            ),
        }),
    }
}

fn key_string(k: &Key) -> String {
    match k {
        Key::String(s) => s.to_string(),
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
    }
}

pub(crate) fn cel_to_json(v: &CV) -> Result<J, String> {
    Ok(match v {
        CV::Null => J::Null,
        CV::Bool(b) => J::Bool(*b),
        CV::Int(i) => J::Number((*i).into()),
        CV::UInt(u) => J::Number((*u).into()),
        CV::Float(_) => return Err(NO_DOUBLES.into()),
        CV::String(s) => J::String(s.to_string()),
        CV::List(l) => J::Array(l.iter().map(cel_to_json).collect::<Result<_, _>>()?),
        CV::Map(m) => {
            // Sorted, so that output (and example diffs) never depend on hash order.
            let mut entries: Vec<(String, J)> = m
                .map
                .iter()
                .map(|(k, v)| Ok((key_string(k), cel_to_json(v)?)))
                .collect::<Result<_, String>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            J::Object(entries.into_iter().collect())
        }
        CV::Timestamp(t) => J::String(t.to_rfc3339()),
        CV::Duration(d) => J::String(format!("{}s", d.num_seconds())),
        CV::Bytes(_) => return Err("bytes cannot be written to a record; use a string".into()),
        other => {
            return Err(format!(
                "a {} cannot be written to a record",
                other.type_of()
            ));
        }
    })
}

// ---------- argument helpers ----------

fn arity(a: &[CV], min: usize, max: usize) -> Result<(), String> {
    if a.len() < min || a.len() > max {
        return Err(if min == max {
            format!("takes {min} arguments, got {}", a.len())
        } else {
            format!("takes {min} to {max} arguments, got {}", a.len())
        });
    }
    Ok(())
}

fn cel_type(v: &CV) -> String {
    v.type_of().to_string()
}

/// Text of a scalar: strings as they are, integers and booleans printed.
fn text(v: &CV) -> Result<String, String> {
    match v {
        CV::String(s) => Ok(s.to_string()),
        CV::Int(i) => Ok(i.to_string()),
        CV::UInt(u) => Ok(u.to_string()),
        CV::Bool(b) => Ok(b.to_string()),
        CV::Float(_) => Err(NO_DOUBLES.into()),
        CV::Null => Err("got null where text was expected".into()),
        other => Err(format!("expected text, got {}", cel_type(other))),
    }
}

fn opt_text(v: &CV) -> Result<Option<String>, String> {
    match v {
        CV::Null => Ok(None),
        other => text(other).map(Some),
    }
}

fn dec_of(v: &CV) -> Result<Decimal, String> {
    match v {
        CV::Int(i) => Ok(Decimal::from(*i)),
        CV::UInt(u) => Ok(Decimal::from(*u)),
        CV::String(s) => n::parse_decimal(s),
        CV::Float(_) => Err(NO_DOUBLES.into()),
        CV::Null => Err("got null where a decimal was expected".into()),
        other => Err(format!("expected a decimal, got {}", cel_type(other))),
    }
}

fn int_of(v: &CV) -> Result<i64, String> {
    match v {
        CV::Int(i) => Ok(*i),
        CV::UInt(u) => i64::try_from(*u).map_err(|_| "integer too large".to_string()),
        CV::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not an integer")),
        CV::Float(_) => Err(NO_DOUBLES.into()),
        other => Err(format!("expected an integer, got {}", cel_type(other))),
    }
}

fn places_of(v: &CV) -> Result<u32, String> {
    let p = int_of(v)?;
    u32::try_from(p)
        .ok()
        .filter(|p| *p <= 28)
        .ok_or_else(|| format!("places must be 0..=28, got {p}"))
}

fn s(v: impl Into<String>) -> CV {
    CV::String(Arc::new(v.into()))
}

fn d(v: Decimal) -> CV {
    s(v.to_string())
}

fn strmap(pairs: Vec<(&'static str, String)>) -> CV {
    CV::Map(CelMapValue {
        map: Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k.to_string())), s(v)))
                .collect(),
        ),
    })
}

fn variadic(a: &[CV]) -> Vec<CV> {
    // f(list) and f(a, b, c) mean the same.
    match a {
        [CV::List(l)] => l.as_ref().clone(),
        _ => a.to_vec(),
    }
}

fn cmp2(a: &[CV]) -> Result<std::cmp::Ordering, String> {
    arity(a, 2, 2)?;
    Ok(dec_of(&a[0])?.cmp(&dec_of(&a[1])?))
}

fn rate(r: &RateTable, from: &str, to: &str) -> Result<Decimal, String> {
    let (f, t) = (
        from.trim().to_ascii_uppercase(),
        to.trim().to_ascii_uppercase(),
    );
    if f == t {
        return Ok(Decimal::ONE);
    }
    if let Some(x) = r.get(&(f.clone(), t.clone())) {
        return Ok(*x);
    }
    if let Some(x) = r.get(&(t.clone(), f.clone())) {
        if !x.is_zero() {
            // The inverse of a quoted rate, to 28 significant digits; the converted amount is
            // rounded to the target currency afterwards, so this never shows in a posting.
            return Decimal::ONE
                .checked_div(*x)
                .ok_or_else(|| "rate overflow".to_string());
        }
    }
    Err(format!("no rate {f}/{t} in this flow's [rates] table"))
}

fn convert_currency(r: &RateTable, a: &[CV]) -> Result<CV, String> {
    arity(a, 3, 3)?;
    let amount = dec_of(&a[0])?;
    let (from, to) = (text(&a[1])?, text(&a[2])?);
    let places = n::currency_places(&to)?;
    let x = amount
        .checked_mul(rate(r, &from, &to)?)
        .ok_or("amount overflow")?;
    Ok(d(n::round_to(
        x,
        places,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    )))
}

fn timestamp_of(v: &CV) -> Result<jiff::Timestamp, String> {
    match v {
        CV::Timestamp(t) => t.to_rfc3339().parse().map_err(|e| format!("{e}")),
        other => {
            let t = text(other)?;
            t.trim()
                .parse::<jiff::Timestamp>()
                .map_err(|_| format!("`{t}` is not a timestamp with an offset (RFC 3339)"))
        }
    }
}

fn tz(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone `{name}`"))
}

fn strftime(fmt: &str, x: impl Into<jiff::fmt::strtime::BrokenDownTime>) -> Result<String, String> {
    jiff::fmt::strtime::format(fmt, x).map_err(|e| format!("bad date format `{fmt}`: {e}"))
}

fn get_path(v: &CV, path: &str) -> Option<CV> {
    let mut cur = v.clone();
    for seg in path.split('.').filter(|x| !x.is_empty()) {
        cur = match &cur {
            CV::Map(m) => m.map.get(&Key::String(Arc::new(seg.to_string())))?.clone(),
            CV::List(l) => l.get(seg.parse::<usize>().ok()?)?.clone(),
            _ => return None,
        };
    }
    Some(cur)
}

fn register_builtins(ctx: &mut Registry) -> Result<(), String> {
    use std::cmp::Ordering::*;
    add(
        ctx,
        "minor_to_decimal",
        Box::new(|a| {
            arity(a, 2, 2)?;
            Ok(s(n::minor_to_decimal(&text(&a[0])?, &text(&a[1])?)?))
        }),
    )?;
    add(
        ctx,
        "decimal_to_minor",
        Box::new(|a| {
            arity(a, 2, 2)?;
            Ok(CV::Int(n::decimal_to_minor(
                &dec_of(&a[0])?.to_string(),
                &text(&a[1])?,
            )?))
        }),
    )?;
    add(
        ctx,
        "currency_places",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(CV::Int(n::currency_places(&text(&a[0])?)? as i64))
        }),
    )?;
    add(
        ctx,
        "dec",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(d(dec_of(&a[0])?))
        }),
    )?;
    add(
        ctx,
        "dec_add",
        Box::new(|a| {
            arity(a, 1, 64)?;
            let mut acc = Decimal::ZERO;
            for x in variadic(a) {
                acc = acc.checked_add(dec_of(&x)?).ok_or("decimal overflow")?;
            }
            Ok(d(acc))
        }),
    )?;
    add(
        ctx,
        "dec_sum",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let CV::List(l) = &a[0] else {
                return Err(format!("expected a list, got {}", cel_type(&a[0])));
            };
            let mut acc = Decimal::ZERO;
            for x in l.iter() {
                acc = acc.checked_add(dec_of(x)?).ok_or("decimal overflow")?;
            }
            Ok(d(acc))
        }),
    )?;
    add(
        ctx,
        "dec_sub",
        Box::new(|a| {
            arity(a, 2, 2)?;
            Ok(d(dec_of(&a[0])?
                .checked_sub(dec_of(&a[1])?)
                .ok_or("decimal overflow")?))
        }),
    )?;
    add(
        ctx,
        "dec_mul",
        Box::new(|a| {
            arity(a, 2, 2)?;
            Ok(d(dec_of(&a[0])?
                .checked_mul(dec_of(&a[1])?)
                .ok_or("decimal overflow")?))
        }),
    )?;
    add(
        ctx,
        "dec_div",
        Box::new(|a| {
            arity(a, 3, 4)?;
            let den = dec_of(&a[1])?;
            if den.is_zero() {
                return Err("division by zero".into());
            }
            let mode = if a.len() == 4 {
                n::rounding(&text(&a[3])?)?
            } else {
                n::rounding("half_up")?
            };
            let q = dec_of(&a[0])?.checked_div(den).ok_or("decimal overflow")?;
            Ok(d(n::round_to(q, places_of(&a[2])?, mode)))
        }),
    )?;
    add(
        ctx,
        "dec_round",
        Box::new(|a| {
            arity(a, 2, 3)?;
            let mode = if a.len() == 3 {
                n::rounding(&text(&a[2])?)?
            } else {
                n::rounding("half_up")?
            };
            Ok(d(n::round_to(dec_of(&a[0])?, places_of(&a[1])?, mode)))
        }),
    )?;
    add(
        ctx,
        "dec_neg",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(d(-dec_of(&a[0])?))
        }),
    )?;
    add(
        ctx,
        "dec_abs",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(d(dec_of(&a[0])?.abs()))
        }),
    )?;
    add(
        ctx,
        "dec_cmp",
        Box::new(|a| {
            Ok(CV::Int(match cmp2(a)? {
                Less => -1,
                Equal => 0,
                Greater => 1,
            }))
        }),
    )?;
    add(ctx, "dec_eq", Box::new(|a| Ok(CV::Bool(cmp2(a)? == Equal))))?;
    add(ctx, "dec_lt", Box::new(|a| Ok(CV::Bool(cmp2(a)? == Less))))?;
    add(
        ctx,
        "dec_le",
        Box::new(|a| Ok(CV::Bool(cmp2(a)? != Greater))),
    )?;
    add(
        ctx,
        "dec_gt",
        Box::new(|a| Ok(CV::Bool(cmp2(a)? == Greater))),
    )?;
    add(ctx, "dec_ge", Box::new(|a| Ok(CV::Bool(cmp2(a)? != Less))))?;
    add(
        ctx,
        "amount",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let t = text(&a[0])?;
            n::clean_amount(&t)
                .map(s)
                .ok_or_else(|| format!("`{t}` is not an amount"))
        }),
    )?;
    add(
        ctx,
        "parse_date",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let t = text(&a[0])?;
            n::parse_date(&t)
                .map(|x| s(x.to_string()))
                .ok_or_else(|| format!("`{t}` is not a date in a known format"))
        }),
    )?;
    add(
        ctx,
        "format_date",
        Box::new(|a| {
            arity(a, 2, 2)?;
            let fmt = text(&a[1])?;
            let t = match &a[0] {
                CV::Timestamp(x) => x.to_rfc3339(),
                other => text(other)?,
            };
            let date = n::parse_date(&t)
                .ok_or_else(|| format!("`{t}` is not a date in a known format"))?;
            Ok(s(strftime(&fmt, date)?))
        }),
    )?;
    add(
        ctx,
        "local_date",
        Box::new(|a| {
            arity(a, 2, 2)?;
            let z = timestamp_of(&a[0])?.to_zoned_datetime(tz(&text(&a[1])?)?);
            Ok(s(z.date().to_string()))
        }),
    )?;
    add(
        ctx,
        "format_datetime",
        Box::new(|a| {
            arity(a, 3, 3)?;
            let z = timestamp_of(&a[0])?.to_zoned_datetime(tz(&text(&a[1])?)?);
            Ok(s(strftime(&text(&a[2])?, &z)?))
        }),
    )?;
    add(
        ctx,
        "to_int",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let t = text(&a[0])?;
            let cleaned: String = t
                .trim()
                .chars()
                .filter(|c| *c != ',' && *c != '_')
                .collect();
            cleaned
                .parse::<i64>()
                .map(CV::Int)
                .map_err(|_| format!("`{t}` is not an integer"))
        }),
    )?;
    add(
        ctx,
        "to_bool",
        Box::new(|a| {
            arity(a, 1, 1)?;
            match &a[0] {
                CV::Bool(b) => Ok(CV::Bool(*b)),
                CV::Null => Ok(CV::Bool(false)),
                other => {
                    let t = text(other)?;
                    n::parse_bool(&t)
                        .map(CV::Bool)
                        .ok_or_else(|| format!("`{t}` is not a yes/no value"))
                }
            }
        }),
    )?;
    add(
        ctx,
        "concat",
        Box::new(|a| {
            let mut out = String::new();
            for x in variadic(a) {
                if let Some(t) = opt_text(&x)? {
                    out.push_str(&t);
                }
            }
            Ok(s(out))
        }),
    )?;
    add(
        ctx,
        "join_nonempty",
        Box::new(|a| {
            arity(a, 1, 64)?;
            let sep = text(&a[0])?;
            let mut parts = Vec::new();
            for x in variadic(&a[1..]) {
                if let Some(t) = opt_text(&x)? {
                    let t = t.trim().to_string();
                    if !t.is_empty() {
                        parts.push(t);
                    }
                }
            }
            Ok(s(parts.join(&sep)))
        }),
    )?;
    add(
        ctx,
        "upper",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(text(&a[0])?.to_uppercase()))
        }),
    )?;
    add(
        ctx,
        "lower",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(text(&a[0])?.to_lowercase()))
        }),
    )?;
    add(
        ctx,
        "title_case",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(n::title_case(&text(&a[0])?)))
        }),
    )?;
    add(
        ctx,
        "collapse_spaces",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(n::collapse(&text(&a[0])?)))
        }),
    )?;
    add(
        ctx,
        "split_name",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let (f, l) = n::split_name(&text(&a[0])?);
            Ok(strmap(vec![("first", f), ("last", l)]))
        }),
    )?;
    add(
        ctx,
        "first_name",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(n::split_name(&text(&a[0])?).0))
        }),
    )?;
    add(
        ctx,
        "last_name",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(n::split_name(&text(&a[0])?).1))
        }),
    )?;
    add(
        ctx,
        "parse_address",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(strmap(n::parse_address(&text(&a[0])?)))
        }),
    )?;
    add(
        ctx,
        "phone_e164",
        Box::new(|a| {
            arity(a, 1, 2)?;
            let region = if a.len() == 2 {
                text(&a[1])?
            } else {
                "US".into()
            };
            Ok(s(n::phone_e164(&text(&a[0])?, &region)?))
        }),
    )?;
    add(
        ctx,
        "email_norm",
        Box::new(|a| {
            arity(a, 1, 1)?;
            Ok(s(n::email_norm(&text(&a[0])?)?))
        }),
    )?;
    add(
        ctx,
        "country_code",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let t = text(&a[0])?;
            n::country_code(&t)
                .map(s)
                .ok_or_else(|| format!("`{t}` is not a country we know"))
        }),
    )?;
    add(
        ctx,
        "us_state_code",
        Box::new(|a| {
            arity(a, 1, 1)?;
            let t = text(&a[0])?;
            n::us_state_code(&t)
                .map(s)
                .ok_or_else(|| format!("`{t}` is not a US state"))
        }),
    )?;
    add(
        ctx,
        "coalesce",
        Box::new(|a| {
            Ok(variadic(a)
                .into_iter()
                .find(|x| match x {
                    CV::Null => false,
                    CV::String(t) => !t.trim().is_empty(),
                    _ => true,
                })
                .unwrap_or(CV::Null))
        }),
    )?;
    add(
        ctx,
        "get",
        Box::new(|a| {
            arity(a, 2, 3)?;
            let found = get_path(&a[0], &text(&a[1])?).filter(|v| !matches!(v, CV::Null));
            Ok(found.or_else(|| a.get(2).cloned()).unwrap_or(CV::Null))
        }),
    )?;
    // CEL's `map` gives no index: `zip` pairs a list with a `for_each` lookup's ids, which come
    // back in the same order.
    add(
        ctx,
        "zip",
        Box::new(|a| {
            arity(a, 2, 2)?;
            let (CV::List(x), CV::List(y)) = (&a[0], &a[1]) else {
                return Err(format!("zip expects two lists, got {} and {}", cel_type(&a[0]), cel_type(&a[1])));
            };
            if x.len() != y.len() {
                return Err(format!("zip: the lists have different lengths ({} and {})", x.len(), y.len()));
            }
            Ok(CV::List(Arc::new(
                x.iter().zip(y.iter()).map(|(p, q)| CV::List(Arc::new(vec![p.clone(), q.clone()]))).collect(),
            )))
        }),
    )?;
    Ok(())
}

/// A helper used by tests and by `map test` to evaluate one expression against a JSON input
/// without a flow (the consultant's scratchpad).
pub fn eval_standalone(src: &str, input: &J) -> Result<J, String> {
    let rt = Runtime::new(Vec::new(), RateTable::new())?;
    let e = rt.compile(src, &["input"]).map_err(|issues| {
        issues
            .iter()
            .map(|i| i.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let cj = CelJson::new(input);
    rt.eval(&e, &Bindings::new().with("input", &cj))
}

/// Builds a `BTreeMap` of table rows from already-converted JSON (used by the loader).
pub fn table_rows(rows: BTreeMap<String, J>) -> HashMap<String, J> {
    rows.into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect()
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Runtime>();
    is::<Expr>();
}

pub(crate) fn cow_str(v: &J) -> Option<Cow<'_, str>> {
    match v {
        J::String(s) => Some(Cow::Borrowed(s)),
        J::Number(n) => Some(Cow::Owned(n.to_string())),
        J::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Text of a scalar JSON value (strings as they are, numbers and booleans printed).
pub(crate) fn json_text(v: &J) -> Option<String> {
    cow_str(v).map(|c| c.into_owned())
}

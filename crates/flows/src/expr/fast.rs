//! A direct evaluator for the shapes most mapping expressions have: field paths
//! (`input.customer.id`, `steps.payment.externalId`), literals, calls of our own functions and
//! value tables on those, `string(x)`, `has(...)`, `&&`, `||`, `!`, `==`, `!=`, `? :`, and list
//! and map literals. It reads the event's JSON where it is, so nothing is converted to CEL
//! values that the expression does not use, and the interpreter is never entered.
//!
//! It is an optimisation only, never a second semantics: it calls the very functions CEL calls
//! and, whenever it meets anything it does not handle *or anything goes wrong* (a missing
//! field, a type it does not compare, a function error), it gives up and the caller runs the
//! CEL program, which produces the result or the error message exactly as before. So its
//! successes must equal CEL's results; `tests/fast_path.rs` checks that over random inputs.

use super::{Bindings, Fun, cel_to_json, json_to_value};
use cel::Value as CV;
use cel::common::ast::operators as op;
use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue};
use cel::objects::{Key, Map as CelMapValue};
use serde_json::Value as J;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) enum Fast {
    Lit(CV),
    Path(Path),
    /// `has(<path>.<field>)`.
    Has(Path, String),
    Call(Arc<Fun>, Box<[Fast]>),
    /// CEL's `string(x)` on a scalar.
    Str(Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Not(Box<Fast>),
    /// `==` (false) or `!=` (true) on two scalars of one type.
    Eq(Box<Fast>, Box<Fast>, bool),
    Cond(Box<Fast>, Box<Fast>, Box<Fast>),
    List(Box<[Fast]>),
    Map(Box<[(Arc<String>, Fast)]>),
}

pub(super) struct Path {
    root: Root,
    segs: Vec<String>,
}

enum Root {
    /// A bound variable: `input`, `record`, `item`.
    Var(String),
    /// `steps.<name>`.
    Step(String),
}

/// The direct form of `e`, or `None` when any part of it needs the interpreter.
pub(super) fn compile(
    e: &IdedExpr,
    vars: &[&str],
    funs: &HashMap<String, Arc<Fun>>,
) -> Option<Fast> {
    let sub = |x: &IdedExpr| compile(x, vars, funs).map(Box::new);
    Some(match &e.expr {
        Ast::Literal(l) => Fast::Lit(match l {
            LiteralValue::Boolean(b) => CV::Bool(*b.inner()),
            LiteralValue::Int(i) => CV::Int(*i.inner()),
            LiteralValue::UInt(u) => CV::UInt(*u.inner()),
            LiteralValue::Null => CV::Null,
            LiteralValue::String(s) => CV::String(Arc::new(s.inner().to_string())),
            LiteralValue::Bytes(_) | LiteralValue::Double(_) => return None,
        }),
        Ast::Ident(name) if name != "steps" && vars.contains(&name.as_str()) => Fast::Path(Path {
            root: Root::Var(name.clone()),
            segs: Vec::new(),
        }),
        Ast::Select(s) => {
            let path = match &s.operand.expr {
                Ast::Ident(n) if n == "steps" && vars.contains(&"steps") && !s.test => {
                    return Some(Fast::Path(Path {
                        root: Root::Step(s.field.clone()),
                        segs: Vec::new(),
                    }));
                }
                _ => match compile(&s.operand, vars, funs)? {
                    Fast::Path(p) => p,
                    _ => return None,
                },
            };
            if s.test {
                Fast::Has(path, s.field.clone())
            } else {
                let mut path = path;
                path.segs.push(s.field.clone());
                Fast::Path(path)
            }
        }
        Ast::Call(c) if c.target.is_none() => match (c.func_name.as_str(), c.args.as_slice()) {
            (op::LOGICAL_AND, [a, b]) => Fast::And(sub(a)?, sub(b)?),
            (op::LOGICAL_OR, [a, b]) => Fast::Or(sub(a)?, sub(b)?),
            (op::LOGICAL_NOT, [a]) => Fast::Not(sub(a)?),
            (op::EQUALS, [a, b]) => Fast::Eq(sub(a)?, sub(b)?, false),
            (op::NOT_EQUALS, [a, b]) => Fast::Eq(sub(a)?, sub(b)?, true),
            (op::CONDITIONAL, [c, a, b]) => Fast::Cond(sub(c)?, sub(a)?, sub(b)?),
            ("string", [a]) => Fast::Str(sub(a)?),
            (name, args) => {
                let f = funs.get(name)?.clone();
                let args = args
                    .iter()
                    .map(|a| compile(a, vars, funs))
                    .collect::<Option<Box<[Fast]>>>()?;
                Fast::Call(f, args)
            }
        },
        Ast::List(l) if l.optional_indices.is_empty() => Fast::List(
            l.elements
                .iter()
                .map(|x| compile(x, vars, funs))
                .collect::<Option<_>>()?,
        ),
        Ast::Map(m) => {
            let mut entries = Vec::with_capacity(m.entries.len());
            for entry in &m.entries {
                let EntryExpr::MapEntry(me) = &entry.expr else {
                    return None;
                };
                let Ast::Literal(LiteralValue::String(k)) = &me.key.expr else {
                    return None;
                };
                if me.optional {
                    return None;
                }
                entries.push((
                    Arc::new(k.inner().to_string()),
                    compile(&me.value, vars, funs)?,
                ));
            }
            Fast::Map(entries.into())
        }
        _ => return None,
    })
}

/// A value while evaluating: JSON where it already is, or a computed CEL value.
enum V<'b> {
    J(&'b J),
    C(CV),
}

impl V<'_> {
    fn cel(self) -> CV {
        match self {
            V::J(j) => json_to_value(j),
            V::C(c) => c,
        }
    }
    fn bool(&self) -> Option<bool> {
        match self {
            V::J(J::Bool(b)) => Some(*b),
            V::C(CV::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// The result as JSON, or `None`: run the CEL program instead.
pub(super) fn eval_json(f: &Fast, b: &Bindings<'_>) -> Option<J> {
    match eval(f, b)? {
        V::J(j) => Some(like_cel(j)),
        V::C(c) => cel_to_json(&c).ok(),
    }
}

fn resolve<'b>(p: &Path, b: &Bindings<'b>) -> Option<&'b J> {
    let mut cur = match &p.root {
        Root::Var(name) => b.var_json(name)?,
        Root::Step(name) => b.step_json(name)?,
    };
    for seg in &p.segs {
        cur = cur.as_object()?.get(seg.as_str())?;
    }
    Some(cur)
}

fn eval<'b>(f: &Fast, b: &Bindings<'b>) -> Option<V<'b>> {
    Some(match f {
        Fast::Lit(v) => V::C(v.clone()),
        Fast::Path(p) => V::J(resolve(p, b)?),
        Fast::Has(p, field) => V::C(CV::Bool(
            resolve(p, b)?.as_object()?.contains_key(field.as_str()),
        )),
        Fast::Call(fun, args) => {
            let args = args
                .iter()
                .map(|a| eval(a, b).map(V::cel))
                .collect::<Option<Vec<CV>>>()?;
            V::C(fun(&args).ok()?)
        }
        Fast::Str(x) => V::C(match eval(x, b)?.cel() {
            s @ CV::String(_) => s,
            CV::Int(i) => CV::String(Arc::new(i.to_string())),
            CV::UInt(u) => CV::String(Arc::new(u.to_string())),
            CV::Bool(v) => CV::String(Arc::new(v.to_string())),
            _ => return None,
        }),
        // CEL's `&&`/`||` absorb an error on one side when the other decides; giving up on any
        // error leaves those cases to CEL, so only the plain ones are answered here.
        Fast::And(x, y) => match eval(x, b)?.bool()? {
            false => V::C(CV::Bool(false)),
            true => V::C(CV::Bool(eval(y, b)?.bool()?)),
        },
        Fast::Or(x, y) => match eval(x, b)?.bool()? {
            true => V::C(CV::Bool(true)),
            false => V::C(CV::Bool(eval(y, b)?.bool()?)),
        },
        Fast::Not(x) => V::C(CV::Bool(!eval(x, b)?.bool()?)),
        Fast::Eq(x, y, negate) => {
            let same = match (eval(x, b)?.cel(), eval(y, b)?.cel()) {
                (CV::String(a), CV::String(c)) => a == c,
                (CV::Int(a), CV::Int(c)) => a == c,
                (CV::UInt(a), CV::UInt(c)) => a == c,
                (CV::Bool(a), CV::Bool(c)) => a == c,
                (CV::Null, CV::Null) => true,
                _ => return None,
            };
            V::C(CV::Bool(same != *negate))
        }
        Fast::Cond(c, x, y) => match eval(c, b)?.bool()? {
            true => eval(x, b)?,
            false => eval(y, b)?,
        },
        Fast::List(items) => V::C(CV::List(Arc::new(
            items
                .iter()
                .map(|x| eval(x, b).map(V::cel))
                .collect::<Option<Vec<_>>>()?,
        ))),
        Fast::Map(entries) => {
            let mut map = HashMap::with_capacity(entries.len());
            for (k, x) in entries.iter() {
                if map
                    .insert(Key::String(k.clone()), eval(x, b)?.cel())
                    .is_some()
                {
                    // A repeated key is CEL's error to report.
                    return None;
                }
            }
            V::C(CV::Map(CelMapValue { map: Arc::new(map) }))
        }
    })
}

/// JSON as it comes out of a CEL round trip (`json_to_val` then `cel_to_json`): numbers that
/// are not 64-bit integers become their exact decimal text, integers are re-made (so `-0` is
/// `0`), and object keys are sorted.
fn like_cel(v: &J) -> J {
    match v {
        J::Null | J::Bool(_) | J::String(_) => v.clone(),
        J::Number(num) => match (num.as_i64(), num.as_u64()) {
            (Some(i), _) => J::Number(i.into()),
            (None, Some(u)) => J::Number(u.into()),
            _ => J::String(num.to_string()),
        },
        J::Array(a) => J::Array(a.iter().map(like_cel).collect()),
        J::Object(o) => {
            let mut entries: Vec<(&String, &J)> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            J::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), like_cel(v)))
                    .collect(),
            )
        }
    }
}

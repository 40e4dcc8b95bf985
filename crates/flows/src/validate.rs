//! Validation with safe auto-correction. A correction is made only when its result is certain
//! (trimmed whitespace, e-mail case, phone to E.164, country and state names to codes, dates to
//! ISO, amounts without symbols) and is recorded with before and after; anything else is a
//! finding of kind `error`, which fails the run as a `data` failure naming the field path.

use crate::flow::{FieldRule, Format, Severity};
use crate::normalize as n;
use serde::Serialize;
use serde_json::Value as J;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Correction,
    Warning,
    Error,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Correction => "correction",
            FindingKind::Warning => "warning",
            FindingKind::Error => "error",
        }
    }
}

/// What validation said about one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub step: String,
    /// Path inside the validated record, e.g. `addressbook.addr.country` or `line.items[1].debit`.
    pub path: String,
    /// Which rule: `required`, `trim`, `email`, `phone`, `country`, `us_state`, `date`, `amount`,
    /// `integer`, `boolean`, `string`, `max_length`, `one_of`, or `rule` for a CEL business rule.
    pub rule: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<J>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<J>,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
    All,
}

fn parse_path(p: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in p.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(close) = rest.find(']') {
                let inner = &rest[1..close];
                out.push(match inner {
                    "" | "*" => Seg::All,
                    x => x.parse().map(Seg::Index).unwrap_or(Seg::Key(x.to_string())),
                });
                rest = &rest[close + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

/// Expands wildcards against the record: `items[*].x` → `items[0].x`, `items[1].x`, ...
fn expand(
    v: Option<&J>,
    segs: &[Seg],
    prefix: String,
    concrete: Vec<Seg>,
    out: &mut Vec<(String, Vec<Seg>)>,
) {
    let Some((first, rest)) = segs.split_first() else {
        out.push((prefix, concrete));
        return;
    };
    let join = |p: &str, k: &str| {
        if p.is_empty() {
            k.to_string()
        } else {
            format!("{p}.{k}")
        }
    };
    match first {
        Seg::Key(k) => {
            let mut c = concrete;
            c.push(first.clone());
            expand(v.and_then(|x| x.get(k)), rest, join(&prefix, k), c, out);
        }
        Seg::Index(i) => {
            let mut c = concrete;
            c.push(first.clone());
            expand(
                v.and_then(|x| x.get(*i)),
                rest,
                format!("{prefix}[{i}]"),
                c,
                out,
            );
        }
        Seg::All => {
            if let Some(J::Array(a)) = v {
                for (i, item) in a.iter().enumerate() {
                    let mut c = concrete.clone();
                    c.push(Seg::Index(i));
                    expand(Some(item), rest, format!("{prefix}[{i}]"), c, out);
                }
            }
        }
    }
}

fn get<'a>(v: &'a J, segs: &[Seg]) -> Option<&'a J> {
    segs.iter().try_fold(v, |cur, s| match s {
        Seg::Key(k) => cur.get(k),
        Seg::Index(i) => cur.get(*i),
        Seg::All => None,
    })
}

fn get_mut<'a>(v: &'a mut J, segs: &[Seg]) -> Option<&'a mut J> {
    segs.iter().try_fold(v, |cur, s| match s {
        Seg::Key(k) => cur.get_mut(k.as_str()),
        Seg::Index(i) => cur.get_mut(*i),
        Seg::All => None,
    })
}

/// Applies field rules to `record` in place; returns the findings (corrections included).
pub(crate) fn check_fields(step: &str, record: &mut J, rules: &[FieldRule]) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in rules {
        let mut paths = Vec::new();
        expand(
            Some(record),
            &parse_path(&rule.path),
            String::new(),
            Vec::new(),
            &mut paths,
        );
        for (path, segs) in paths {
            let current = get(record, &segs).cloned();
            let mut emit = |kind: FindingKind,
                            r: &str,
                            message: String,
                            before: Option<J>,
                            after: Option<J>| {
                let kind = if kind == FindingKind::Error && rule.severity == Severity::Warning {
                    FindingKind::Warning
                } else {
                    kind
                };
                out.push(Finding {
                    kind,
                    step: step.to_string(),
                    path: path.clone(),
                    rule: r.to_string(),
                    message,
                    before,
                    after,
                });
            };
            let missing = match &current {
                None | Some(J::Null) => true,
                Some(J::String(s)) => s.trim().is_empty(),
                _ => false,
            };
            if missing {
                if rule.required {
                    emit(
                        FindingKind::Error,
                        "required",
                        "required field is missing or empty".into(),
                        current.clone(),
                        None,
                    );
                }
                continue;
            }
            let Some(value) = current else { continue };
            let mut fixed = value.clone();
            // 1. whitespace
            if let J::String(s) = &fixed {
                let t = s.trim();
                if t.len() != s.len() {
                    let after = J::String(t.to_string());
                    if rule.correct {
                        emit(
                            FindingKind::Correction,
                            "trim",
                            "trimmed surrounding whitespace".into(),
                            Some(fixed.clone()),
                            Some(after.clone()),
                        );
                        fixed = after;
                    } else {
                        emit(
                            FindingKind::Error,
                            "trim",
                            "has surrounding whitespace".into(),
                            Some(fixed.clone()),
                            None,
                        );
                    }
                }
            }
            // 2. format
            if let Some(format) = rule.format {
                match normalise(format, &fixed, &rule.region) {
                    Ok(norm) if norm != fixed => {
                        let (r, what) = format_rule(format);
                        if rule.correct {
                            emit(
                                FindingKind::Correction,
                                r,
                                format!("normalised {what}"),
                                Some(fixed.clone()),
                                Some(norm.clone()),
                            );
                            fixed = norm;
                        } else {
                            emit(
                                FindingKind::Error,
                                r,
                                format!("{what} is not in canonical form"),
                                Some(fixed.clone()),
                                Some(norm),
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(m) => emit(
                        FindingKind::Error,
                        format_rule(format).0,
                        m,
                        Some(fixed.clone()),
                        None,
                    ),
                }
            }
            // 3. length and allowed values (never "corrected": truncating or guessing changes meaning)
            if let (Some(max), J::String(s)) = (rule.max_length, &fixed) {
                let len = s.chars().count();
                if len > max {
                    emit(
                        FindingKind::Error,
                        "max_length",
                        format!("is {len} characters, at most {max} allowed"),
                        Some(fixed.clone()),
                        None,
                    );
                }
            }
            if let Some(allowed) = &rule.one_of {
                let text = crate::expr::json_text(&fixed).unwrap_or_default();
                if !allowed.contains(&text) {
                    let hint = crate::expr::suggest(&text, allowed.iter().map(String::as_str))
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default();
                    emit(
                        FindingKind::Error,
                        "one_of",
                        format!("`{text}` is not one of: {}{hint}", allowed.join(", ")),
                        Some(fixed.clone()),
                        None,
                    );
                }
            }
            if fixed != value {
                if let Some(slot) = get_mut(record, &segs) {
                    *slot = fixed;
                }
            }
        }
    }
    out
}

fn format_rule(f: Format) -> (&'static str, &'static str) {
    match f {
        Format::Email => ("email", "e-mail address"),
        Format::Phone => ("phone", "phone number to E.164"),
        Format::Country => ("country", "country to its ISO 3166 code"),
        Format::UsState => ("us_state", "US state to its two-letter code"),
        Format::Date => ("date", "date to YYYY-MM-DD"),
        Format::Amount => ("amount", "amount to a plain decimal"),
        Format::Integer => ("integer", "integer"),
        Format::Boolean => ("boolean", "yes/no value to a boolean"),
        Format::String => ("string", "value to text"),
    }
}

/// The canonical form of a value for a format, or why there is none.
fn normalise(f: Format, v: &J, region: &str) -> Result<J, String> {
    let text = crate::expr::json_text(v);
    let need_text = || {
        text.clone()
            .ok_or_else(|| format!("expected a scalar value, got {}", crate::expr::type_name(v)))
    };
    Ok(match f {
        Format::Email => J::String(n::email_norm(&need_text()?)?),
        Format::Phone => J::String(n::phone_e164(&need_text()?, region)?),
        Format::Country => {
            let t = need_text()?;
            J::String(
                n::country_code(&t)
                    .ok_or_else(|| format!("`{t}` is not a country name or ISO code we know"))?
                    .to_string(),
            )
        }
        Format::UsState => {
            let t = need_text()?;
            J::String(
                n::us_state_code(&t)
                    .ok_or_else(|| format!("`{t}` is not a US state name or code"))?
                    .to_string(),
            )
        }
        Format::Date => {
            let t = need_text()?;
            J::String(
                n::parse_date(&t)
                    .ok_or_else(|| format!("`{t}` is not a date in a known format"))?
                    .to_string(),
            )
        }
        Format::Amount => match v {
            J::Number(_) => v.clone(),
            _ => {
                let t = need_text()?;
                if n::parse_decimal(&t).is_ok() {
                    v.clone()
                } else {
                    J::String(n::clean_amount(&t).ok_or_else(|| format!("`{t}` is not an amount"))?)
                }
            }
        },
        Format::Integer => match v {
            J::Number(num) if num.is_i64() || num.is_u64() => v.clone(),
            _ => {
                let t = need_text()?;
                let cleaned: String = t.trim().chars().filter(|c| *c != ',').collect();
                J::Number(
                    cleaned
                        .parse::<i64>()
                        .map_err(|_| format!("`{t}` is not a whole number"))?
                        .into(),
                )
            }
        },
        Format::Boolean => match v {
            J::Bool(_) => v.clone(),
            _ => {
                let t = need_text()?;
                J::Bool(n::parse_bool(&t).ok_or_else(|| format!("`{t}` is not a yes/no value"))?)
            }
        },
        Format::String => J::String(need_text()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_wildcards_expand_against_the_record() {
        let rec = serde_json::json!({"line": {"items": [{"debit": "1"}, {"credit": "1"}]}});
        let mut out = Vec::new();
        expand(
            Some(&rec),
            &parse_path("line.items[*].debit"),
            String::new(),
            Vec::new(),
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["line.items[0].debit", "line.items[1].debit"]);
        assert_eq!(get(&rec, &out[0].1), Some(&serde_json::json!("1")));
        assert_eq!(get(&rec, &out[1].1), None);
    }
}

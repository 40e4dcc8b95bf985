//! Small helpers shared by both clients: URL building, Retry-After, and exact number handling.
//!
//! Numbers are read through `serde_json::Value` (the workspace enables `arbitrary_precision`, so a
//! `Value::Number` keeps the remote's exact text) and never through `f64`.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// `base` + path segments, each percent-encoded, so an id can never change the path's shape.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut u = base.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty();
        p.extend(segments);
    }
    u
}

/// Parses `Retry-After` as delta-seconds or an HTTP date (RFC 7231 allows both).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// A JSON scalar as text: strings as-is, numbers in their exact textual form.
pub(crate) fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Deserializes an optional string that the remote may send as a string or a number
/// (GP-API amounts and counts, Retail ids).
pub(crate) fn de_opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(scalar_text).filter(|s| !s.is_empty()))
}

pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

/// Exact decimals for Heartland Retail, which sends and expects JSON numbers (`19.99`).
pub(crate) mod decimal_opt {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        match v.as_ref().and_then(scalar_text) {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => parse_decimal(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("`{t}` is not a decimal"))),
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(d) => super::decimal::serialize(d, s),
        }
    }
}

pub(crate) mod decimal {
    use super::*;
    use serde::Serialize;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        // Writing the number through `serde_json::Number` parsed from the decimal's text keeps it
        // exact (arbitrary_precision), where `f64` would turn 0.1 into 0.1000000000000000055...
        let n = serde_json::Number::from_str(&d.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        n.serialize(s)
    }
}

/// Retail ids: integers on the wire, accepted as strings too.
pub(crate) mod id {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        scalar_text(&v)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| serde::de::Error::custom(format!("`{v}` is not an id")))
    }
}

pub(crate) mod id_opt {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Option::<serde_json::Value>::deserialize(d)?;
        match v.as_ref().and_then(scalar_text) {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("`{t}` is not an id"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct P {
        #[serde(with = "decimal_opt", default)]
        price: Option<Decimal>,
    }

    #[test]
    fn decimals_round_trip_exactly() {
        let p: P = serde_json::from_str(r#"{"price": 0.1}"#).unwrap();
        assert_eq!(p.price, Some(Decimal::new(1, 1)));
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"price":0.1}"#);
        let p: P = serde_json::from_str(r#"{"price": "19.99"}"#).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"price":19.99}"#);
        let p: P = serde_json::from_str(r#"{"price": null}"#).unwrap();
        assert_eq!(p.price, None);
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}

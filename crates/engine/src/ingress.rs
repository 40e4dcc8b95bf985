//! Per-source authenticity, card scrubbing, and the (key, kind) of each event. Pure functions over
//! bytes and headers; the HTTP server calls them, and nothing reaches the inbox without them.
//!
//! Schemes (ARCHITECTURE.md, Security):
//! - our own signed sources (NetSuite script, web shop): HMAC-SHA256 over `"{ts}.{body}"`, with a
//!   timestamp tolerance, several live secrets for rotation (docs/signed-events.md);
//! - GP-API `status_url`: `X-GP-Signature` = hex SHA-512(body ‖ app key);
//! - Heartland Retail (signs nothing): an unguessable token in the URL path, and the flow fetches
//!   the record back from the API before trusting it.

use heartsuite_core::{Secret, pan};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-heartsuite-signature";
pub const TIMESTAMP_HEADER: &str = "x-heartsuite-timestamp";
pub const GP_SIGNATURE_HEADER: &str = "x-gp-signature";

#[derive(Debug, Clone)]
pub enum SourceAuth {
    Hmac { secrets: Vec<Secret>, tolerance_secs: i64 },
    GpSignature { app_key: Secret },
    PathToken { token: Secret },
}

/// How a source's payloads name their events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// docs/signed-events.md: `event_id`, `record_type`, `type`.
    NetSuite,
    /// A web-shop order: `event_id`, optional `type` (default `order.created`).
    Shop,
    /// GP-API status notification: `id`, `status`, optional `type`.
    GpApi,
    /// Heartland Retail webhook: the bare resource, told apart by shape.
    Retail,
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub auth: SourceAuth,
    pub format: SourceFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// What ingress hands the inbox writer.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub key: String,
    pub kind: String,
    pub payload: Value,
    /// How many card numbers were masked (for the log; the numbers themselves are gone).
    pub pans_masked: usize,
}

pub fn hmac_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // `new_from_slice` accepts keys of any length for HMAC; the error arm is unreachable.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn gp_signature(app_key: &str, body: &[u8]) -> String {
    let mut h = Sha512::new();
    h.update(body);
    h.update(app_key.as_bytes());
    hex::encode(h.finalize())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks authenticity. `header` looks a header up by lower-case name.
pub fn verify(
    spec: &SourceSpec,
    header: &dyn Fn(&str) -> Option<String>,
    path_token: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), IngressError> {
    match &spec.auth {
        SourceAuth::Hmac { secrets, tolerance_secs } => {
            let ts = header(TIMESTAMP_HEADER)
                .ok_or_else(|| IngressError::Unauthorized(format!("missing {TIMESTAMP_HEADER} header")))?;
            let sig = header(SIGNATURE_HEADER)
                .ok_or_else(|| IngressError::Unauthorized(format!("missing {SIGNATURE_HEADER} header")))?;
            let ts_num: i64 = ts
                .trim()
                .parse()
                .map_err(|_| IngressError::Unauthorized(format!("{TIMESTAMP_HEADER} is not Unix seconds")))?;
            if (now_secs - ts_num).abs() > *tolerance_secs {
                return Err(IngressError::Unauthorized(format!(
                    "timestamp is {}s away from our clock (tolerance {tolerance_secs}s); check the sender's clock or replayed request",
                    now_secs - ts_num
                )));
            }
            let ok = secrets.iter().any(|s| ct_eq(&hmac_signature(s.expose().as_bytes(), ts.trim(), body), sig.trim()));
            if ok { Ok(()) } else { Err(IngressError::Unauthorized("signature does not match".into())) }
        }
        SourceAuth::GpSignature { app_key } => {
            let sig = header(GP_SIGNATURE_HEADER)
                .ok_or_else(|| IngressError::Unauthorized(format!("missing {GP_SIGNATURE_HEADER} header")))?;
            if ct_eq(&gp_signature(app_key.expose(), body), &sig.trim().to_ascii_lowercase()) {
                Ok(())
            } else {
                Err(IngressError::Unauthorized("X-GP-Signature does not match".into()))
            }
        }
        SourceAuth::PathToken { token } => match path_token {
            Some(t) if ct_eq(t, token.expose()) => Ok(()),
            Some(_) => Err(IngressError::Unauthorized("wrong endpoint token".into())),
            None => Err(IngressError::Unauthorized("this source's URL carries a token: /hooks/<source>/<token>".into())),
        },
    }
}

fn str_field<'a>(v: &'a Value, field: &str, format: &str) -> Result<&'a str, IngressError> {
    match v.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::Number(_)) => Err(IngressError::BadRequest(format!(
            "field `{field}` must be a string in a {format} event (got a number)"
        ))),
        _ => Err(IngressError::BadRequest(format!("field `{field}` (string) is required in a {format} event"))),
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn body_digest(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..8])
}

/// Parses, scrubs card numbers, and names the event.
pub fn parse(format: SourceFormat, body: &[u8]) -> Result<Parsed, IngressError> {
    let mut payload: Value = serde_json::from_slice(body).map_err(|e| {
        IngressError::BadRequest(format!("body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()))
    })?;
    if !payload.is_object() {
        return Err(IngressError::BadRequest("body must be a JSON object".into()));
    }
    let pans_masked = pan::mask_json(&mut payload);
    let (key, kind) = match format {
        SourceFormat::NetSuite => {
            let key = str_field(&payload, "event_id", "NetSuite")?.to_string();
            let rt = str_field(&payload, "record_type", "NetSuite")?;
            let ty = str_field(&payload, "type", "NetSuite")?;
            (key, format!("netsuite.{rt}.{ty}"))
        }
        SourceFormat::Shop => {
            let key = str_field(&payload, "event_id", "shop")?.to_string();
            let ty = payload.get("type").and_then(Value::as_str).unwrap_or("order.created");
            (key, format!("shop.{ty}"))
        }
        SourceFormat::GpApi => {
            let id = str_field(&payload, "id", "GP-API notification")?;
            let status = str_field(&payload, "status", "GP-API notification")?.to_ascii_lowercase();
            // Sales and refunds share the kind; flows tell them apart by `input.type`.
            (format!("{id}:{status}"), format!("gpapi.transaction.{status}"))
        }
        SourceFormat::Retail => {
            let id = id_of(&payload)
                .ok_or_else(|| IngressError::BadRequest("field `id` is required in a Heartland Retail webhook".into()))?;
            let kind = retail_kind(&payload).ok_or_else(|| {
                IngressError::BadRequest(
                    "cannot tell what this Heartland Retail payload is: expected a ticket (`type`: Ticket/Return), an item (`public_id`), or a customer (`first_name`/`email`)".into(),
                )
            })?;
            let version = ["updated_at", "completed_at"]
                .iter()
                .find_map(|f| payload.get(*f).and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| body_digest(body));
            (format!("{kind}:{id}:{version}"), kind.to_string())
        }
    };
    Ok(Parsed { key, kind, payload, pans_masked })
}

/// Heartland Retail posts bare resources; receivers tell them apart by shape (reference §5).
pub fn retail_kind(v: &Value) -> Option<&'static str> {
    match v.get("type").and_then(Value::as_str) {
        Some("Ticket") => return Some("retail.ticket.completed"),
        Some("Return") => return Some("retail.return.completed"),
        _ => {}
    }
    // Customers carry a `public_id` (their customer number) as items do (their SKU): the
    // customer fields decide first.
    if v.get("first_name").is_some() || v.get("last_name").is_some() || v.get("email").is_some() {
        return Some("retail.customer.changed");
    }
    if v.get("public_id").is_some() {
        return Some("retail.item.changed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retail_resources_are_told_apart_by_shape() {
        let customer = json!({"id": 100002, "public_id": "C-100002", "first_name": "Ann", "last_name": "Lee", "email": null});
        let item = json!({"id": 100001, "public_id": "HS-0001", "description": "Organic Cotton Tee", "price": 24});
        assert_eq!(retail_kind(&customer), Some("retail.customer.changed"), "a customer has a public_id too");
        assert_eq!(retail_kind(&item), Some("retail.item.changed"));
        assert_eq!(retail_kind(&json!({"id": 7, "type": "Return"})), Some("retail.return.completed"));
        assert_eq!(retail_kind(&json!({"id": 7})), None);
    }

    fn hmac_spec() -> SourceSpec {
        SourceSpec {
            name: "shop".into(),
            auth: SourceAuth::Hmac { secrets: vec![Secret::new("old"), Secret::new("new")], tolerance_secs: 300 },
            format: SourceFormat::Shop,
        }
    }

    fn headers(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    }

    #[test]
    fn hmac_accepts_any_live_secret_and_refuses_the_rest() {
        let body = br#"{"event_id":"e1"}"#;
        let now = 1_700_000_000;
        for (secret, ok) in [("old", true), ("new", true), ("wrong", false)] {
            let sig = hmac_signature(secret.as_bytes(), &now.to_string(), body);
            let h = headers(vec![(TIMESTAMP_HEADER, now.to_string()), (SIGNATURE_HEADER, sig)]);
            assert_eq!(verify(&hmac_spec(), &h, None, body, now).is_ok(), ok, "{secret}");
        }
    }

    #[test]
    fn hmac_refuses_stale_timestamps_and_altered_bodies() {
        let body = br#"{"event_id":"e1"}"#;
        let ts = 1_700_000_000;
        let sig = hmac_signature(b"new", &ts.to_string(), body);
        let h = headers(vec![(TIMESTAMP_HEADER, ts.to_string()), (SIGNATURE_HEADER, sig)]);
        let err = verify(&hmac_spec(), &h, None, body, ts + 301).unwrap_err();
        assert!(err.to_string().contains("tolerance"), "{err}");
        assert!(verify(&hmac_spec(), &h, None, br#"{"event_id":"e2"}"#, ts).is_err());
        let none = headers(vec![]);
        assert!(verify(&hmac_spec(), &none, None, body, ts).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn gp_signature_good_bad_and_altered() {
        let spec = SourceSpec {
            name: "gpapi".into(),
            auth: SourceAuth::GpSignature { app_key: Secret::new("k") },
            format: SourceFormat::GpApi,
        };
        let body = br#"{"id":"TRN_1","status":"CAPTURED"}"#;
        let good = headers(vec![(GP_SIGNATURE_HEADER, gp_signature("k", body))]);
        assert!(verify(&spec, &good, None, body, 0).is_ok());
        let bad = headers(vec![(GP_SIGNATURE_HEADER, gp_signature("other", body))]);
        assert!(verify(&spec, &bad, None, body, 0).is_err());
        assert!(verify(&spec, &good, None, br#"{"id":"TRN_1","status":"REVERSED"}"#, 0).is_err());
    }

    #[test]
    fn path_token() {
        let spec = SourceSpec {
            name: "retail".into(),
            auth: SourceAuth::PathToken { token: Secret::new("s3cret-token") },
            format: SourceFormat::Retail,
        };
        let h = headers(vec![]);
        assert!(verify(&spec, &h, Some("s3cret-token"), b"{}", 0).is_ok());
        assert!(verify(&spec, &h, Some("guess"), b"{}", 0).is_err());
        assert!(verify(&spec, &h, None, b"{}", 0).is_err());
    }

    #[test]
    fn parse_names_events_per_source_and_masks_cards() {
        let p = parse(SourceFormat::NetSuite, br#"{"event_id":"so:1:create","record_type":"salesOrder","type":"create"}"#).unwrap();
        assert_eq!((p.key.as_str(), p.kind.as_str()), ("so:1:create", "netsuite.salesOrder.create"));
        let p = parse(SourceFormat::GpApi, br#"{"id":"TRN_9","status":"CAPTURED","type":"REFUND"}"#).unwrap();
        assert_eq!((p.key.as_str(), p.kind.as_str()), ("TRN_9:captured", "gpapi.transaction.captured"));
        let p = parse(SourceFormat::Retail, br#"{"id":42,"type":"Ticket","completed_at":"2026-11-26T10:00:00Z"}"#).unwrap();
        assert_eq!(p.key, "retail.ticket.completed:42:2026-11-26T10:00:00Z");
        let p = parse(SourceFormat::Shop, br#"{"event_id":"o1","note":"card 4263970000005262"}"#).unwrap();
        assert_eq!(p.pans_masked, 1);
        assert_eq!(p.payload, json!({"event_id":"o1","note":"card 426397******5262"}));
    }

    #[test]
    fn parse_explains_what_is_wrong() {
        let e = parse(SourceFormat::Shop, b"{\"event_id\": ").unwrap_err().to_string();
        assert!(e.contains("not valid JSON") && e.contains("line 1"), "{e}");
        let e = parse(SourceFormat::Shop, b"[1]").unwrap_err().to_string();
        assert!(e.contains("JSON object"), "{e}");
        let e = parse(SourceFormat::NetSuite, br#"{"event_id":"x","type":"create"}"#).unwrap_err().to_string();
        assert!(e.contains("record_type"), "{e}");
        let e = parse(SourceFormat::Retail, br#"{"id":1,"foo":2}"#).unwrap_err().to_string();
        assert!(e.contains("cannot tell"), "{e}");
    }
}

//! The crate's one error type, NetSuite's `o:errorDetails` envelope, and the mapping of both onto
//! heartsuite's error classes (`Failure`).

use heartsuite_core::{ErrorClass, Failure};
use serde::Deserialize;
use std::time::Duration;

pub const SYSTEM: &str = "netsuite";

/// Everything that can go wrong talking to NetSuite. Messages never carry credentials: they are
/// built from status codes, NetSuite error codes and details, never from request headers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A request argument NetSuite would refuse (bad external id, page size...): a data error.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Connect error, TLS error, connection reset before a response arrived.
    #[error("transport error: {0}")]
    Transport(String),
    /// No response within the client timeout. The request may or may not have been applied.
    #[error("request timed out")]
    Timeout,
    /// NetSuite answered with a non-success status (the envelope, when there was one, parsed).
    #[error("NetSuite HTTP {status}{}: {detail}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Remote {
        status: u16,
        code: Option<String>,
        detail: String,
        field_path: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The OAuth 2.0 token endpoint refused us or answered something unusable.
    #[error("token endpoint HTTP {status}: {error}")]
    Token { status: u16, error: String, retry_after: Option<Duration> },
    /// A success response we could not interpret (missing Location, bad JSON...).
    #[error("unexpected response: {0}")]
    Unexpected(String),
    /// Building a signature or assertion failed (bad key, RNG failure).
    #[error("signing failed: {0}")]
    Signing(String),
    /// The shared permit store (database leases) failed.
    #[error("permit store: {0}")]
    Permits(Failure),
}

/// NetSuite error codes that mean "the account's concurrency limit is exhausted".
const RATE_LIMIT_CODES: &[&str] = &["SSS_REQUEST_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED", "CONCURRENCY_LIMIT_EXCEEDED"];
const AUTH_CODES: &[&str] = &["INVALID_LOGIN", "INVALID_LOGIN_ATTEMPT", "INSUFFICIENT_PERMISSION", "INVALID_LOGIN_CREDENTIALS"];
const DUPLICATE_CODES: &[&str] = &["DUP_ENTITY", "DUP_RCRD", "DUPLICATE_ACTION", "DUP_EXTERNALID", "DUP_EXTERNAL_ID"];

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) => ErrorClass::Bug,
            Error::InvalidInput(_) => ErrorClass::Data,
            Error::Transport(_) | Error::Timeout => ErrorClass::Transient,
            Error::Remote { status, code, detail, .. } => classify(*status, code.as_deref(), detail),
            Error::Token { status, .. } => match *status {
                429 => ErrorClass::RateLimited,
                s if s >= 500 => ErrorClass::Transient,
                // invalid_client / invalid_grant / bad assertion: the credentials are wrong.
                _ => ErrorClass::Auth,
            },
            Error::Unexpected(_) | Error::Signing(_) => ErrorClass::Bug,
            Error::Permits(f) => f.class,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Remote { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        self.class() == ErrorClass::Duplicate
    }

    pub fn is_rate_limited(&self) -> bool {
        self.class() == ErrorClass::RateLimited
    }

    /// "No such record": NetSuite's NONEXISTENT_ID (or a bare 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Remote { status, code, .. }
            if code.as_deref() == Some("NONEXISTENT_ID") || (*status == 404 && code.is_none()))
    }

    pub fn to_failure(&self) -> Failure {
        if let Error::Permits(f) = self {
            return f.clone();
        }
        let mut f = Failure::new(self.class(), self.to_string()).with_system(SYSTEM);
        match self {
            Error::Remote { code, field_path, retry_after, .. } => {
                if let Some(c) = code {
                    f = f.with_code(c.clone());
                }
                if let Some(p) = field_path {
                    f = f.with_field(p.clone());
                }
                if let Some(d) = retry_after {
                    f = f.with_retry_after(*d);
                }
            }
            Error::Token { retry_after: Some(d), .. } => f = f.with_retry_after(*d),
            _ => {}
        }
        f
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Error::Timeout;
        }
        // without_url: the URL can carry a `q` filter or SuiteQL paging we need not repeat in logs.
        Error::Transport(error_chain(&e.without_url()))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        e.to_failure()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The status + NetSuite code (+ detail, for duplicates that only say so in words) → class.
pub fn classify(status: u16, code: Option<&str>, detail: &str) -> ErrorClass {
    let code_up = code.map(|c| c.to_ascii_uppercase());
    let code = code_up.as_deref();
    if status == 429 || code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c)) {
        return ErrorClass::RateLimited;
    }
    if status == 401 || status == 403 || code.is_some_and(|c| AUTH_CODES.contains(&c)) {
        return ErrorClass::Auth;
    }
    if code.is_some_and(|c| DUPLICATE_CODES.contains(&c)) || mentions_existing_external_id(detail) {
        return ErrorClass::Duplicate;
    }
    if code == Some("NONEXISTENT_ID") {
        return ErrorClass::Dependency;
    }
    if status >= 500 {
        return ErrorClass::Transient;
    }
    if status == 404 && code.is_none() {
        return ErrorClass::Dependency;
    }
    if status == 408 {
        return ErrorClass::Transient;
    }
    if (400..500).contains(&status) {
        // USER_ERROR, INVALID_CONTENT, INVALID_PARAMETER, NONEXISTENT_FIELD and any other 4xx:
        // the payload is wrong and a retry would fail the same way.
        return ErrorClass::Data;
    }
    ErrorClass::Bug
}

/// NetSuite reports a clashing externalId with USER_ERROR-ish codes whose wording varies
/// ("A record with this external ID already exists", "...external ID ... is not unique"), so the
/// detail text is the only dependable signal.
fn mentions_existing_external_id(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    let about_eid = d.contains("external id") || d.contains("externalid");
    about_eid && (d.contains("already exists") || d.contains("not unique") || d.contains("duplicate"))
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "o:errorDetails")]
    details: Vec<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default, rename = "o:errorCode")]
    code: Option<String>,
    #[serde(default, rename = "o:errorPath")]
    path: Option<String>,
    #[serde(default, rename = "o:errorQueryParam")]
    query_param: Option<String>,
    #[serde(default, rename = "o:errorHeader")]
    header: Option<String>,
}

const MAX_DETAIL: usize = 600;

/// Builds an `Error::Remote` from a non-success response. A body that is not the envelope (an
/// HTML error page from a proxy, say) still yields a classified error from the status alone.
pub(crate) fn remote_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
    let (code, detail, field_path) = match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => {
            let first = env.details.into_iter().next();
            let code = first.as_ref().and_then(|d| d.code.clone());
            let detail = first
                .as_ref()
                .and_then(|d| d.detail.clone())
                .or(env.title)
                .unwrap_or_else(|| "no detail".to_string());
            let path = first.and_then(|d| d.path.or(d.query_param).or(d.header));
            (code, detail, path)
        }
        Err(_) => (None, format!("non-envelope body ({} bytes)", body.len()), None),
    };
    let detail = truncate(detail, MAX_DETAIL);
    Error::Remote { status, code, detail, field_path, retry_after }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// `Retry-After` is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(v: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let d = when.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(d.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(code: &str, detail: &str, path: Option<&str>) -> Vec<u8> {
        let mut d = serde_json::json!({"detail": detail, "o:errorCode": code});
        if let Some(p) = path {
            d["o:errorPath"] = serde_json::json!(p);
        }
        serde_json::to_vec(&serde_json::json!({"type": "x", "title": "Bad Request", "status": 400, "o:errorDetails": [d]}))
            .unwrap()
    }

    #[test]
    fn envelope_maps_to_classes_and_field_path() {
        let e = remote_error(400, &env("INVALID_CONTENT", "Invalid Field Value 9999", Some("item.items[0].item")), None);
        let f = e.to_failure();
        assert_eq!(f.class, ErrorClass::Data);
        assert_eq!(f.code.as_deref(), Some("INVALID_CONTENT"));
        assert_eq!(f.field_path.as_deref(), Some("item.items[0].item"));
        assert_eq!(f.system.as_deref(), Some("netsuite"));

        for code in ["USER_ERROR", "INVALID_PARAMETER", "NONEXISTENT_FIELD"] {
            assert_eq!(remote_error(400, &env(code, "x", None), None).class(), ErrorClass::Data, "{code}");
        }
        assert_eq!(remote_error(404, &env("NONEXISTENT_ID", "no record", None), None).class(), ErrorClass::Dependency);
        assert_eq!(remote_error(401, &env("INVALID_LOGIN", "Invalid login attempt.", None), None).class(), ErrorClass::Auth);
        assert_eq!(remote_error(403, &env("INSUFFICIENT_PERMISSION", "no", None), None).class(), ErrorClass::Auth);
        assert_eq!(remote_error(400, &env("SSS_REQUEST_LIMIT_EXCEEDED", "limit", None), None).class(), ErrorClass::RateLimited);
        assert_eq!(remote_error(429, b"Too Many Requests", None).class(), ErrorClass::RateLimited);
        assert_eq!(remote_error(503, b"<html>", None).class(), ErrorClass::Transient);
        assert_eq!(
            remote_error(400, &env("USER_ERROR", "A record with this external ID already exists.", None), None).class(),
            ErrorClass::Duplicate
        );
        assert_eq!(remote_error(400, &env("DUP_ENTITY", "This entity already exists.", None), None).class(), ErrorClass::Duplicate);
        assert_eq!(Error::Timeout.class(), ErrorClass::Transient);
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Thu, 26 Nov 2026 10:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        let e = remote_error(429, b"", Some(Duration::from_secs(3)));
        assert_eq!(e.to_failure().retry_after, Some(Duration::from_secs(3)));
    }
}

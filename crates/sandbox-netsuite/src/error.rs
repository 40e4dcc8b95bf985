//! Errors: the crate's one error enum, and the NetSuite REST error envelope it renders to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything that can go wrong in the sandbox. `Api` is a NetSuite-style answer to a client;
/// the rest are failures of the sandbox itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{status} {code}: {detail}")]
    Api {
        status: StatusCode,
        code: &'static str,
        detail: String,
        path: Option<String>,
        /// Set on 401 only: why the signature was refused (sent as a sandbox-only header so a
        /// developer can see it; NetSuite itself only says "Invalid login attempt").
        auth_reason: Option<String>,
    },
    #[error("sqlite mirror: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    pub fn api(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Error {
        Error::Api { status, code, detail: detail.into(), path: None, auth_reason: None }
    }

    /// Attach `o:errorPath` (e.g. `item.items[0].item`).
    pub fn at(self, p: impl Into<String>) -> Error {
        match self {
            Error::Api { status, code, detail, auth_reason, .. } => {
                Error::Api { status, code, detail, path: Some(p.into()), auth_reason }
            }
            other => other,
        }
    }

    pub fn invalid_login(reason: impl Into<String>) -> Error {
        Error::Api {
            status: StatusCode::UNAUTHORIZED,
            code: "INVALID_LOGIN",
            detail: "Invalid login attempt. For more details, see the Login Audit Trail in the \
                     NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail."
                .into(),
            path: None,
            auth_reason: Some(reason.into()),
        }
    }

    pub fn user(detail: impl Into<String>) -> Error {
        Error::api(StatusCode::BAD_REQUEST, "USER_ERROR", format!("Error while accessing a resource. {}", detail.into()))
    }

    /// "You have entered an Invalid Field Value X for the following field: f" — NetSuite's
    /// answer to a reference that does not resolve or a value of the wrong shape.
    pub fn invalid_value(value: &str, field: &str) -> Error {
        Error::api(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTENT",
            format!(
                "Error while accessing a resource. You have entered an Invalid Field Value {value} for the following field: {field}"
            ),
        )
    }

    pub fn missing(labels: &str) -> Error {
        Error::user(format!("Please enter value(s) for: {labels}."))
    }

    pub fn bad_param(detail: impl Into<String>) -> Error {
        Error::api(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", detail)
    }

    pub fn not_found() -> Error {
        Error::api(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            "The record instance does not exist. Provide a valid record instance ID.",
        )
    }

    pub fn no_record_type(t: &str) -> Error {
        Error::api(StatusCode::NOT_FOUND, "NONEXISTENT_ID", format!("Record type '{t}' does not exist."))
    }

    /// The sandbox's answer when the account's concurrency limit is exceeded. NetSuite REST
    /// answers 429 "Too Many Requests"; the envelope's error code is UNCONFIRMED in the
    /// reference (§4), so this code is our choice, documented in the README.
    pub fn too_many() -> Error {
        Error::api(
            StatusCode::TOO_MANY_REQUESTS,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        )
    }
}

fn type_url(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
        401 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2",
        403 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4",
        404 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        _ => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1",
    }
}

/// The NetSuite error envelope: `{type, title, status, o:errorDetails:[{detail, o:errorCode, o:errorPath?}]}`.
pub fn envelope(status: StatusCode, code: &str, detail: &str, path: Option<&str>) -> serde_json::Value {
    let mut d = json!({"detail": detail, "o:errorCode": code});
    if let (Some(p), Some(obj)) = (path, d.as_object_mut()) {
        obj.insert("o:errorPath".into(), json!(p));
    }
    json!({
        "type": type_url(status),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "o:errorDetails": [d],
    })
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, detail, path, reason) = match self {
            Error::Api { status, code, detail, path, auth_reason } => (status, code, detail, path, auth_reason),
            other => {
                tracing::error!(error = %other, "sandbox internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "UNEXPECTED_ERROR", "An unexpected error occurred.".to_string(), None, None)
            }
        };
        let body = envelope(status, code, &detail, path.as_deref());
        let mut resp = (status, [("content-type", "application/vnd.oracle.resource+json; type=error")], body.to_string()).into_response();
        if let Some(r) = reason
            && let Ok(v) = axum::http::HeaderValue::from_str(&r)
        {
            resp.headers_mut().insert("x-sandbox-auth-failure", v);
        }
        resp
    }
}

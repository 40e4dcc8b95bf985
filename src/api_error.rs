//! One registry of the errors our HTTP API returns, each with a stable code and status (the
//! meilisearch pattern): senders and operators can match on `code`, never on message text.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    UnknownSource(String),
    Unauthorized(String),
    InvalidPayload(String),
    PayloadTooLarge(usize),
    StoreUnavailable(String),
    NotFound(String),
    Conflict(String),
    AdminDisabled,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSource(_) => "unknown_source",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidPayload(_) => "invalid_payload",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::AdminDisabled => "admin_disabled",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownSource(_) | ApiError::NotFound(_) | ApiError::AdminDisabled => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::UnknownSource(s) => format!("no source named `{s}` is configured; see [sources] in the config"),
            ApiError::Unauthorized(m) | ApiError::InvalidPayload(m) | ApiError::NotFound(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::PayloadTooLarge(max) => format!("the body is larger than {max} bytes (server.max_body_bytes)"),
            ApiError::StoreUnavailable(m) => format!("the event could not be stored; retry later ({m})"),
            ApiError::AdminDisabled => "the admin API is disabled; set server.admin_token".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.message()}});
        (self.status(), Json(body)).into_response()
    }
}

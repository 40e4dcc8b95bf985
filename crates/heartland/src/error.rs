//! The crate's one error type, and its mapping into the engine's `Failure` vocabulary.
//!
//! Messages are built from remote error codes and descriptions (with any card-number-looking digit
//! run masked), never from our request bodies, so neither credentials nor card data can reach a
//! log line through an error.

use heartsuite_core::{ErrorClass, Failure};
use std::fmt;
use std::time::Duration;

/// Which remote system an error came from; becomes `Failure::system`, which keys circuits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    GpApi,
    Retail,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::GpApi => "gpapi",
            System::Retail => "retail",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad URL, missing credentials, no usable account).
    #[error("{system} configuration: {message}")]
    Config { system: System, message: String },

    /// The caller asked for something we refuse before sending (e.g. a non-positive amount).
    #[error("invalid request: {message}")]
    InvalidInput {
        message: String,
        field: Option<String>,
    },

    /// The remote answered with an error status or error envelope.
    #[error("{system} HTTP {status} {code}: {message}")]
    Api {
        system: System,
        status: u16,
        /// `error_code` for GP-API (`RESOURCE_NOT_FOUND`), `http_<status>` or the body's own
        /// `error` for Retail.
        code: String,
        /// GP-API `detailed_error_code` (`40118`).
        detailed_code: Option<String>,
        message: String,
        class: ErrorClass,
        field: Option<String>,
        retry_after: Option<Duration>,
    },

    /// Connect error, timeout, or the connection dropped mid-response.
    #[error("{system} transport: {message}")]
    Transport { system: System, message: String },

    /// A 2xx response we could not understand: our defect or an API change.
    #[error("{system} unexpected response: {message}")]
    Decode { system: System, message: String },

    /// A deposit-poller cursor that we did not write (or that was damaged in storage).
    #[error("invalid deposit cursor: {0}")]
    InvalidCursor(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            // A config that cannot work will not fix itself by retrying; treat like refused
            // credentials so the circuit opens and an operator is alerted.
            Error::Config { .. } => ErrorClass::Auth,
            Error::InvalidInput { .. } => ErrorClass::Data,
            Error::Api { class, .. } => *class,
            Error::Transport { .. } => ErrorClass::Transient,
            Error::Decode { .. } | Error::InvalidCursor(_) => ErrorClass::Bug,
        }
    }

    pub fn system(&self) -> Option<System> {
        match self {
            Error::Config { system, .. }
            | Error::Api { system, .. }
            | Error::Transport { system, .. }
            | Error::Decode { system, .. } => Some(*system),
            Error::InvalidInput { .. } | Error::InvalidCursor(_) => None,
        }
    }

    /// The remote's error code, if any (`DUPLICATE_ACTION`, `http_429`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn failure(&self) -> Failure {
        let message = match self {
            Error::Api {
                message,
                detailed_code: Some(d),
                ..
            } => format!("{message} (detailed code {d})"),
            Error::Api { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let mut f = Failure::new(self.class(), message);
        if let Some(s) = self.system() {
            f = f.with_system(s.as_str());
        }
        if let Some(c) = self.code() {
            f = f.with_code(c);
        }
        if let Some(d) = self.retry_after() {
            f = f.with_retry_after(d);
        }
        match self {
            Error::Api { field: Some(p), .. } | Error::InvalidInput { field: Some(p), .. } => {
                f = f.with_field(p.clone());
            }
            _ => {}
        }
        f
    }

    pub(crate) fn decode(system: System, message: impl Into<String>) -> Self {
        Error::Decode {
            system,
            message: message.into(),
        }
    }

    pub(crate) fn config(system: System, message: impl Into<String>) -> Self {
        Error::Config {
            system,
            message: message.into(),
        }
    }

    pub(crate) fn input(message: impl Into<String>, field: Option<&str>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub(crate) fn transport(system: System, e: &reqwest::Error) -> Self {
        // reqwest's text includes the URL; ours never carry credentials (those travel in
        // headers), and the kind (timeout/connect) leads so an operator sees it first.
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect error"
        } else {
            "request failed"
        };
        let detail = mask(&e.to_string());
        Error::Transport {
            system,
            message: format!("{kind}: {detail}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        e.failure()
    }
}

/// Masks anything that looks like a card number, so a remote that echoes request data in an
/// error description cannot put a PAN into our logs or dead-letter queue.
pub(crate) fn mask(s: &str) -> String {
    heartsuite_core::pan::mask_text(s).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_becomes_a_complete_failure() {
        let e = Error::Api {
            system: System::GpApi,
            status: 429,
            code: "http_429".into(),
            detailed_code: None,
            message: "slow down".into(),
            class: ErrorClass::RateLimited,
            field: None,
            retry_after: Some(Duration::from_secs(3)),
        };
        let f: Failure = e.into();
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.system.as_deref(), Some("gpapi"));
        assert_eq!(f.code.as_deref(), Some("http_429"));
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn remote_descriptions_are_masked() {
        assert_eq!(
            mask("bad card 4263970000005262 given"),
            "bad card 426397******5262 given"
        );
    }
}

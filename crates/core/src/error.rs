//! Error classes: the one vocabulary every connector maps its failures into, and that the engine's
//! retry policy is keyed by (see ARCHITECTURE.md, "Error classes and what each gets").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Connect error, timeout, 5xx: retry with backoff.
    Transient,
    /// 429 / SSS_REQUEST_LIMIT_EXCEEDED: back-pressure, retry later, no attempt burned.
    RateLimited,
    /// Circuit open or maintenance: park, no attempt burned.
    Unavailable,
    /// Credentials refused: open the circuit, alert.
    Auth,
    /// The payload is wrong: dead-letter at once naming the field.
    Data,
    /// A referenced record is not there yet: retry with delay, bounded.
    Dependency,
    /// Already done elsewhere: resolved by lookup.
    Duplicate,
    /// Our own defect or an unexpected shape.
    Bug,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Transient,
        ErrorClass::RateLimited,
        ErrorClass::Unavailable,
        ErrorClass::Auth,
        ErrorClass::Data,
        ErrorClass::Dependency,
        ErrorClass::Duplicate,
        ErrorClass::Bug,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Auth => "auth",
            ErrorClass::Data => "data",
            ErrorClass::Dependency => "dependency",
            ErrorClass::Duplicate => "duplicate",
            ErrorClass::Bug => "bug",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure of one step or one remote call. `message` must never contain secrets or
/// card data: connectors build it from remote error codes and field paths, not from raw requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    /// Which system failed (`netsuite`, `gpapi`, `retail`, `flow`...), for circuits and alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The field the remote (or our validation) named, e.g. `item.items[0].item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
    /// The remote's own error code, e.g. `INVALID_CONTENT`, `DUPLICATE_ACTION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A delay the remote asked for (Retry-After).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), system: None, field_path: None, code: None, retry_after: None }
    }
    pub fn transient(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, m)
    }
    pub fn data(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Data, m)
    }
    pub fn bug(m: impl Into<String>) -> Self {
        Self::new(ErrorClass::Bug, m)
    }
    pub fn with_system(mut self, s: impl Into<String>) -> Self {
        self.system = Some(s.into());
        self
    }
    pub fn with_field(mut self, p: impl Into<String>) -> Self {
        self.field_path = Some(p.into());
        self
    }
    pub fn with_code(mut self, c: impl Into<String>) -> Self {
        self.code = Some(c.into());
        self
    }
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.class)?;
        if let Some(s) = &self.system {
            write!(f, " {s}:")?;
        }
        if let Some(c) = &self.code {
            write!(f, " {c}:")?;
        }
        write!(f, " {}", self.message)?;
        if let Some(p) = &self.field_path {
            write!(f, " (field {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn class_names_round_trip() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorClass::parse("nope"), None);
    }
    #[test]
    fn failure_serializes_retry_after_in_millis() {
        let f = Failure::transient("x").with_retry_after(Duration::from_millis(1500));
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["retry_after"], serde_json::json!(1500));
        let back: Failure = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}

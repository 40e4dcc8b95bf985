//! The crate's errors. Run-time failures are `heartsuite_core::Failure` (the engine's retry
//! policy is keyed by its class); this module holds what happens before a run: a flow that does
//! not load.

use std::fmt;
use std::path::PathBuf;

/// One problem in one flow file, told so a person can fix it without reading Rust: where
/// (file:line:column, step, field), what is wrong, what was expected, and a likely fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole (unreadable, empty directory).
    pub line: usize,
    pub column: usize,
    pub step: Option<String>,
    pub field: Option<String>,
    pub message: String,
    pub expected: Option<String>,
    pub suggestion: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ":")?;
        if let Some(s) = &self.step {
            write!(f, " step `{s}`:")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`:")?;
        }
        write!(f, " {}", self.message)?;
        if let Some(e) = &self.expected {
            write!(f, "; expected {e}")?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, "; {s}")?;
        }
        Ok(())
    }
}

/// Errors of this crate's own operations outside a run.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{} flow file problem(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Load(Vec<LoadError>),
    #[error("no flow named `{0}`")]
    UnknownFlow(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

//! Structured logs: JSON when stdout is not a terminal (for collectors), human text when it is.
//! `RUST_LOG` filters as usual; payloads are never logged.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() { builder.try_init() } else { builder.json().flatten_event(true).try_init() };
}

//! Time as an injected dependency, so that retry schedules, leases and circuit breakers can be
//! tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

/// Microseconds since the Unix epoch, UTC. Stored as BIGINT in both databases.
pub type Micros = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_micros(&self) -> Micros;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> Micros {
        jiff::Timestamp::now().as_microsecond()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Micros) -> Self {
        Self(AtomicI64::new(start))
    }
    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
    pub fn set(&self, micros: Micros) {
        self.0.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
}

/// Formats microseconds as an RFC 3339 UTC instant; out-of-range values print as the raw number.
pub fn format_micros(m: Micros) -> String {
    match jiff::Timestamp::from_microsecond(m) {
        Ok(ts) => ts.to_string(),
        Err(_) => m.to_string(),
    }
}

//! One circuit breaker per remote system (netsuite, gpapi, retail). Hand-written (see
//! rust-stack.md): a tiny state machine with an injected clock is easier to test exactly than a
//! tower layer, and it must park *jobs* (durable) rather than fail requests.

use heartsuite_core::{Clock, ErrorClass};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    /// Refusing calls until the given instant (µs), then one probe is let through.
    Open { until: i64 },
    /// One probe is in flight since the given instant (µs); others wait. A probe that never
    /// reports (its job failed on another system, or its process died) is replaced after
    /// `open_for`, so a circuit can never stay half-open for good.
    HalfOpen { since: i64 },
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses before probing (µs).
    pub open_for: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: 30_000_000 }
    }
}

#[derive(Debug)]
struct Circuit {
    state: State,
    consecutive_failures: u32,
}

/// A change worth an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened { system: String, reason: String },
    Closed { system: String },
}

pub struct Breakers {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    circuits: Mutex<HashMap<String, Circuit>>,
}

/// Whether a job touching `system` may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Parked until this instant (µs).
    No { until: i64 },
}

impl Breakers {
    pub fn new(cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self { cfg, clock, circuits: Mutex::new(HashMap::new()) }
    }

    fn with<R>(&self, system: &str, f: impl FnOnce(&mut Circuit) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of plain counters;
        // the data is still usable.
        let mut map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(system.to_string()).or_insert(Circuit { state: State::Closed, consecutive_failures: 0 });
        f(c)
    }

    pub fn admit(&self, system: &str) -> Admit {
        let now = self.clock.now_micros();
        let retry_in = self.cfg.open_for / 10;
        self.with(system, |c| match c.state {
            State::Closed => Admit::Yes,
            State::Open { until } if now >= until => {
                c.state = State::HalfOpen { since: now };
                Admit::Yes
            }
            State::Open { until } => Admit::No { until },
            State::HalfOpen { since } if now >= since + self.cfg.open_for => {
                c.state = State::HalfOpen { since: now };
                Admit::Yes
            }
            // One probe at a time; the others look again shortly.
            State::HalfOpen { .. } => Admit::No { until: now + retry_in.max(1_000_000) },
        })
    }

    /// `None` when a call to `system` may go ahead; otherwise the `unavailable` failure that
    /// parks the job until the circuit's next probe (its `retry_after` says when).
    pub fn check(&self, system: &str) -> Option<heartsuite_core::Failure> {
        match self.admit(system) {
            Admit::Yes => None,
            Admit::No { until } => {
                let wait = (until - self.clock.now_micros()).max(0) as u64;
                Some(
                    heartsuite_core::Failure::new(ErrorClass::Unavailable, format!("circuit for {system} is open; parked"))
                        .with_system(system)
                        .with_retry_after(std::time::Duration::from_micros(wait)),
                )
            }
        }
    }

    pub fn on_success(&self, system: &str) -> Option<Transition> {
        self.with(system, |c| {
            c.consecutive_failures = 0;
            let was = c.state;
            c.state = State::Closed;
            (was != State::Closed).then(|| Transition::Closed { system: system.to_string() })
        })
    }

    /// Records a failure of a class that says something about the remote's health.
    pub fn on_failure(&self, system: &str, class: ErrorClass, reason: &str) -> Option<Transition> {
        let counts = matches!(class, ErrorClass::Transient | ErrorClass::Unavailable | ErrorClass::Auth);
        if !counts {
            return None;
        }
        let now = self.clock.now_micros();
        let open_for = self.cfg.open_for;
        let threshold = self.cfg.failure_threshold;
        self.with(system, |c| {
            // Jobs parked behind an open circuit report `unavailable` too; they must not push
            // the probe further away, or the circuit would never close.
            if matches!(c.state, State::Open { .. }) {
                return None;
            }
            c.consecutive_failures += 1;
            let trip = class == ErrorClass::Auth
                || matches!(c.state, State::HalfOpen { .. })
                || c.consecutive_failures >= threshold;
            if !trip {
                return None;
            }
            let was_open = matches!(c.state, State::Open { .. } | State::HalfOpen { .. });
            c.state = State::Open { until: now + open_for };
            (!was_open).then(|| Transition::Opened { system: system.to_string(), reason: reason.to_string() })
        })
    }

    pub fn states(&self) -> Vec<(String, State)> {
        let map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, c)| (k.clone(), c.state)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartsuite_core::ManualClock;

    fn breakers() -> (Arc<ManualClock>, Breakers) {
        let clock = Arc::new(ManualClock::new(0));
        let b = Breakers::new(BreakerConfig { failure_threshold: 3, open_for: 10_000_000 }, clock.clone());
        (clock, b)
    }

    #[test]
    fn opens_after_threshold_then_probes_then_closes() {
        let (clock, b) = breakers();
        assert_eq!(b.on_failure("ns", ErrorClass::Transient, "503"), None);
        assert_eq!(b.on_failure("ns", ErrorClass::Transient, "503"), None);
        assert!(matches!(b.on_failure("ns", ErrorClass::Transient, "503"), Some(Transition::Opened { .. })));
        assert_eq!(b.admit("ns"), Admit::No { until: 10_000_000 });
        assert_eq!(b.admit("gp"), Admit::Yes, "circuits are per system");
        clock.advance(10_000_000);
        assert_eq!(b.admit("ns"), Admit::Yes, "one probe after the cool-down");
        assert!(matches!(b.admit("ns"), Admit::No { .. }), "only one probe at a time");
        assert_eq!(b.on_success("ns"), Some(Transition::Closed { system: "ns".into() }));
        assert_eq!(b.admit("ns"), Admit::Yes);
    }

    #[test]
    fn failed_probe_reopens_and_auth_opens_at_once() {
        let (clock, b) = breakers();
        assert!(b.on_failure("gp", ErrorClass::Auth, "401").is_some());
        clock.advance(10_000_000);
        assert_eq!(b.admit("gp"), Admit::Yes);
        assert_eq!(b.on_failure("gp", ErrorClass::Transient, "503"), None, "already open: no second alert");
        assert!(matches!(b.admit("gp"), Admit::No { .. }));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_the_cool_down() {
        // The soak test found this: a probe job that failed on another system never told the
        // circuit, which then parked every job for good.
        let (clock, b) = breakers();
        assert!(b.on_failure("retail", ErrorClass::Auth, "401").is_some());
        clock.advance(10_000_000);
        assert_eq!(b.admit("retail"), Admit::Yes, "the probe");
        clock.advance(9_999_999);
        assert!(matches!(b.admit("retail"), Admit::No { .. }), "still waiting for the probe");
        clock.advance(1);
        assert_eq!(b.admit("retail"), Admit::Yes, "a new probe once the first is overdue");
        assert!(matches!(b.admit("retail"), Admit::No { .. }), "and again only one");
    }

    #[test]
    fn data_errors_do_not_trip() {
        let (_c, b) = breakers();
        for _ in 0..10 {
            assert_eq!(b.on_failure("ns", ErrorClass::Data, "bad field"), None);
        }
        assert_eq!(b.admit("ns"), Admit::Yes);
    }
}

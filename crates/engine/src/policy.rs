//! What happens after a failure: a pure function from (class, attempt, age) to the job's next
//! state, so it is exhaustively testable. Durable retries are ours, not a crate's, because every
//! retry of something that moves money must be visible in the job row and survive a crash.

use heartsuite_core::{ErrorClass, Failure};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPolicy {
    /// Attempts (that burn budget) before the job is dead-lettered.
    pub max_attempts: u32,
    /// First delay; doubles per attempt up to `max_delay`; the actual wait is uniform in
    /// [0, that] ("full jitter", so a crowd of retries spreads out).
    #[serde(with = "secs")]
    pub base_delay: Duration,
    #[serde(with = "secs")]
    pub max_delay: Duration,
    /// Give up when the event is older than this, whatever the attempt count.
    #[serde(with = "secs")]
    pub max_age: Duration,
    /// Whether a failure of this class counts against `max_attempts`.
    pub burns_attempt: bool,
    /// Dead-letter at once (data errors, bugs): retrying the same input cannot help.
    pub dead_letter_at_once: bool,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl ClassPolicy {
    const fn new(max_attempts: u32, base: u64, max: u64, age_h: u64, burns: bool, dead: bool) -> Self {
        Self {
            max_attempts,
            base_delay: Duration::from_secs(base),
            max_delay: Duration::from_secs(max),
            max_age: Duration::from_secs(age_h * 3600),
            burns_attempt: burns,
            dead_letter_at_once: dead,
        }
    }

    /// The defaults of ARCHITECTURE.md's error-class table.
    pub fn default_for(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Transient => Self::new(10, 1, 300, 24, true, false),
            ErrorClass::RateLimited => Self::new(10, 2, 60, 24, false, false),
            ErrorClass::Unavailable => Self::new(10, 30, 300, 72, false, false),
            ErrorClass::Auth => Self::new(10, 60, 900, 72, false, false),
            ErrorClass::Data => Self::new(1, 0, 0, 24, true, true),
            ErrorClass::Dependency => Self::new(8, 30, 1800, 48, true, false),
            // A duplicate that the connector could not resolve to the existing record.
            ErrorClass::Duplicate => Self::new(1, 0, 0, 24, true, true),
            ErrorClass::Bug => Self::new(1, 0, 0, 24, true, true),
        }
    }
}

/// Policies for every class, with per-flow overrides layered on top.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    by_class: BTreeMap<ErrorClass, ClassPolicy>,
}

impl Default for Policies {
    fn default() -> Self {
        Self { by_class: ErrorClass::ALL.into_iter().map(|c| (c, ClassPolicy::default_for(c))).collect() }
    }
}

impl Policies {
    pub fn get(&self, class: ErrorClass) -> ClassPolicy {
        self.by_class.get(&class).cloned().unwrap_or_else(|| ClassPolicy::default_for(class))
    }
    pub fn set(&mut self, class: ErrorClass, p: ClassPolicy) {
        self.by_class.insert(class, p);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retry { delay: Duration, refund_attempt: bool },
    DeadLetter { reason: String },
}

/// `attempts` counts the attempt that just failed (1 for the first run); `age` is how old the
/// event is.
pub fn decide(p: &ClassPolicy, failure: &Failure, attempts: u32, age: Duration, rng: &mut impl Rng) -> Decision {
    if p.dead_letter_at_once {
        return Decision::DeadLetter { reason: format!("{} errors are not retried", failure.class) };
    }
    if age > p.max_age {
        return Decision::DeadLetter {
            reason: format!("gave up: the event is older than {}s, the limit for {} errors", p.max_age.as_secs(), failure.class),
        };
    }
    if p.burns_attempt && attempts >= p.max_attempts {
        return Decision::DeadLetter { reason: format!("gave up after {attempts} attempts ({} errors)", failure.class) };
    }
    let delay = match failure.retry_after {
        // The remote said when; honour it (capped at an hour, against a broken header).
        Some(d) => d.min(Duration::from_secs(3600)),
        None => full_jitter(p.base_delay, p.max_delay, attempts, rng),
    };
    Decision::Retry { delay, refund_attempt: !p.burns_attempt }
}

pub fn full_jitter(base: Duration, max: Duration, attempts: u32, rng: &mut impl Rng) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exp).min(max);
    let ms = ceiling.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rng.random_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn f(class: ErrorClass) -> Failure {
        Failure::new(class, "x")
    }

    #[test]
    fn data_and_bug_dead_letter_at_once() {
        let ps = Policies::default();
        let mut rng = StdRng::seed_from_u64(1);
        for c in [ErrorClass::Data, ErrorClass::Bug] {
            assert!(matches!(decide(&ps.get(c), &f(c), 1, Duration::ZERO, &mut rng), Decision::DeadLetter { .. }));
        }
    }

    #[test]
    fn transient_backs_off_within_bounds_then_gives_up() {
        let p = ClassPolicy::default_for(ErrorClass::Transient);
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..p.max_attempts {
            match decide(&p, &f(ErrorClass::Transient), attempt, Duration::ZERO, &mut rng) {
                Decision::Retry { delay, refund_attempt } => {
                    assert!(!refund_attempt);
                    let ceiling = p.base_delay.saturating_mul(1 << (attempt - 1)).min(p.max_delay);
                    assert!(delay <= ceiling, "attempt {attempt}: {delay:?} > {ceiling:?}");
                }
                d => panic!("attempt {attempt}: {d:?}"),
            }
        }
        assert!(matches!(
            decide(&p, &f(ErrorClass::Transient), p.max_attempts, Duration::ZERO, &mut rng),
            Decision::DeadLetter { .. }
        ));
    }

    #[test]
    fn rate_limits_refund_the_attempt_and_honour_retry_after() {
        let p = ClassPolicy::default_for(ErrorClass::RateLimited);
        let mut rng = StdRng::seed_from_u64(3);
        let fail = f(ErrorClass::RateLimited).with_retry_after(Duration::from_secs(7));
        // Far past max_attempts: back-pressure never exhausts the budget.
        assert_eq!(
            decide(&p, &fail, 1000, Duration::ZERO, &mut rng),
            Decision::Retry { delay: Duration::from_secs(7), refund_attempt: true }
        );
    }

    #[test]
    fn age_bounds_every_retry() {
        let p = ClassPolicy::default_for(ErrorClass::RateLimited);
        let mut rng = StdRng::seed_from_u64(3);
        let d = decide(&p, &f(ErrorClass::RateLimited), 1, p.max_age + Duration::from_secs(1), &mut rng);
        assert!(matches!(d, Decision::DeadLetter { .. }));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(11);
        let ds: std::collections::BTreeSet<_> = (0..50)
            .map(|_| full_jitter(Duration::from_secs(1), Duration::from_secs(60), 6, &mut rng))
            .collect();
        assert!(ds.len() > 30, "full jitter should rarely repeat: {}", ds.len());
        assert!(ds.iter().all(|d| *d <= Duration::from_secs(32)));
    }
}

//! `[trigger] schedule = "<cron>"`: the expression is parsed when the flow loads (a bad one is
//! a load error) and the engine's scheduler asks it for slots. Slots are whole seconds in UTC.
//!
//! croner searches over any type that implements its `CronDateTime` trait; we give it a UTC
//! wall-clock time built on jiff 1 (croner's own jiff support is for jiff 0.2).

use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use jiff::civil::DateTime;
use std::cmp::Ordering;
use std::str::FromStr;

/// Event kinds `schedule.<flow name>` are the scheduler's, routed to that one flow.
pub const EVENT_PREFIX: &str = "schedule.";

/// Microseconds since the Unix epoch, as `heartsuite_core::Clock` gives them.
pub type Micros = i64;

#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: Cron,
}

impl Schedule {
    /// Five fields (minute hour day-of-month month day-of-week), an optional leading seconds
    /// field, or an alias such as `@daily`. The error says what is wrong, in croner's words.
    pub fn parse(src: &str) -> Result<Schedule, String> {
        let cron = Cron::from_str(src.trim()).map_err(|e| explain(src, e.to_string()))?;
        Ok(Schedule {
            source: src.to_string(),
            cron,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The latest slot at or before `now`, or `None` when the expression never matched before.
    pub fn latest_at_or_before(&self, now: Micros) -> Option<Micros> {
        let t = Utc::from_micros(now)?;
        self.cron
            .find_previous_occurrence(&t, true)
            .ok()
            .and_then(|s| s.micros())
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Micros) -> Option<Micros> {
        let t = Utc::from_micros(t)?;
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .and_then(|s| s.micros())
    }
}

const FIELDS: [(&str, &str); 6] = [
    ("seconds", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, L, #"),
];

/// croner says what kind of thing is wrong ("Number out of bounds"); this adds which field, by
/// parsing each field alone with `*` everywhere else.
fn explain(src: &str, croner_says: String) -> String {
    let fields: Vec<&str> = src.split_whitespace().collect();
    let names = match fields.len() {
        5 => &FIELDS[1..],
        6 => &FIELDS[..],
        _ if src.trim_start().starts_with('@') => return croner_says,
        n => return format!("it has {n} field(s), not 5 (or 6 with seconds)"),
    };
    for (i, ((name, allowed), field)) in names.iter().zip(&fields).enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        if Cron::from_str(&probe.join(" ")).is_err() {
            return format!("the {name} field `{field}` is not valid (allowed: {allowed})");
        }
    }
    croner_says
}

/// A UTC wall-clock time, whole seconds (a slot never has a fraction).
#[derive(Debug, Clone, Copy)]
struct Utc(DateTime);

impl Utc {
    fn from_micros(m: Micros) -> Option<Utc> {
        let secs = m.div_euclid(1_000_000);
        let ts = jiff::Timestamp::from_second(secs).ok()?;
        Some(Utc(jiff::tz::TimeZone::UTC.to_datetime(ts)))
    }
    fn micros(&self) -> Option<Micros> {
        jiff::tz::TimeZone::UTC
            .to_timestamp(self.0)
            .ok()
            .map(|t| t.as_microsecond())
    }
}

impl CronDateTime for Utc {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0;
        // jiff keeps every part in range, so croner's unchecked constructors are safe here.
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(i32::from(d.year()), d.month() as u32, d.day() as u32),
            CivilTime::from_parts_unchecked(d.hour() as u32, d.minute() as u32, d.second() as u32),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(
        &self,
        c: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        // UTC has no gaps or folds: every wall-clock time happens exactly once.
        let year = i16::try_from(c.year()).map_err(|_| croner::errors::CronError::InvalidDate)?;
        DateTime::new(
            year,
            c.month() as i8,
            c.day() as i8,
            c.hour() as i8,
            c.minute() as i8,
            c.second() as i8,
            0,
        )
        .map(|d| Resolution::Single(Utc(d)))
        .map_err(|_| croner::errors::CronError::InvalidDate)
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()
            .map(Utc)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Micros {
        s.parse::<jiff::Timestamp>()
            .map(|t| t.as_microsecond())
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn show(m: Option<Micros>) -> String {
        m.and_then(|m| jiff::Timestamp::from_microsecond(m).ok())
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn slots_of_common_expressions() {
        // (expression, latest slot at or before / next slot after, at, expected slot)
        let cases = [
            // A slot is the latest match at or before now; exactly on a slot is that slot.
            (
                "*/5 * * * *",
                "latest",
                "2026-03-14T10:07:59.9Z",
                "2026-03-14T10:05:00Z",
            ),
            (
                "*/5 * * * *",
                "latest",
                "2026-03-14T10:05:00Z",
                "2026-03-14T10:05:00Z",
            ),
            (
                "*/5 * * * *",
                "next",
                "2026-03-14T10:05:00Z",
                "2026-03-14T10:10:00Z",
            ),
            // Across midnight and a month end.
            (
                "0 2 * * *",
                "latest",
                "2026-03-01T01:59:59Z",
                "2026-02-28T02:00:00Z",
            ),
            (
                "0 2 * * *",
                "next",
                "2026-02-28T02:00:00Z",
                "2026-03-01T02:00:00Z",
            ),
            // Weekdays only (Friday morning -> Monday), a seconds field, and an alias.
            (
                "30 6 * * MON-FRI",
                "next",
                "2026-03-13T07:00:00Z",
                "2026-03-16T06:30:00Z",
            ),
            (
                "15 * * * * *",
                "next",
                "2026-03-14T10:00:15Z",
                "2026-03-14T10:01:15Z",
            ),
            (
                "@daily",
                "latest",
                "2026-03-14T10:00:00Z",
                "2026-03-14T00:00:00Z",
            ),
        ];
        for (expr, which, now, want) in cases {
            let s = Schedule::parse(expr).expect("parse");
            let got = match which {
                "latest" => s.latest_at_or_before(at(now)),
                _ => s.next_after(at(now)),
            };
            assert_eq!(show(got), want, "{expr}: {which} from {now}");
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (bad, says) in [
            ("", "it has 0 field(s)"),
            ("* * *", "it has 3 field(s), not 5 (or 6 with seconds)"),
            (
                "61 * * * *",
                "the minute field `61` is not valid (allowed: 0-59)",
            ),
            (
                "0 25 * * *",
                "the hour field `25` is not valid (allowed: 0-23)",
            ),
            ("0 2 * * FUNDAY", "the day-of-week field `FUNDAY`"),
            ("70 0 2 * * *", "the seconds field `70`"),
            ("every day at two", "it has 4 field(s)"),
        ] {
            let err = Schedule::parse(bad).expect_err(bad);
            assert!(err.starts_with(says), "{bad}: {err}");
        }
    }
}

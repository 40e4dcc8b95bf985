//! Reconciliation of Heartland against NetSuite (issue #7).
//!
//! Three levels, anchored on the deposit (`../shared/reference/accounting.md`): each settled
//! GP-API transaction against one NetSuite payment / cash sale / credit memo / cash refund; each
//! funded deposit against its NetSuite deposit or journal entry (and the deposit's transaction
//! list against the deposit's payment lines); totals per status and per card brand.
//!
//! `engine::reconcile` is pure (normalized records + rules → report); `fetch` reads both systems;
//! `render` prints table, JSON, CSV or a printable HTML page.

pub mod engine;
pub mod fetch;
pub mod model;
pub mod render;

pub use engine::{ReconError, reconcile};
pub use fetch::{FetchError, FetchOptions, Fetcher};
pub use model::*;
pub use render::{Format, render};

/// `[recon]` in the configuration file: the rules and the translation tables in one place.
pub type ReconConfig = Rules;

impl Rules {
    /// `HH:MM` of `daily_at`, checked.
    pub fn daily_time(&self) -> Result<Option<jiff::civil::Time>, String> {
        let Some(s) = self
            .daily_at
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let (h, m) = s
            .split_once(':')
            .ok_or_else(|| format!("recon.daily_at `{s}` is not HH:MM"))?;
        let (h, m) = (
            h.parse::<i8>()
                .map_err(|_| format!("recon.daily_at `{s}`: hour is not a number"))?,
            m.parse::<i8>()
                .map_err(|_| format!("recon.daily_at `{s}`: minute is not a number"))?,
        );
        jiff::civil::Time::new(h, m, 0, 0)
            .map(Some)
            .map_err(|e| format!("recon.daily_at `{s}`: {e}"))
    }

    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone, String> {
        jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|e| format!("recon.time_zone `{}`: {e}", self.time_zone))
    }

    /// Everything checked at start-up, so a typo fails `serve` and the CLI at once.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_matching()?;
        self.daily_time()?;
        self.time_zone()?;
        heartsuite_core::money::parse_currency(&self.default_currency)
            .map_err(|e| format!("recon.default_currency: {e}"))?;
        for (id, code) in &self.currencies {
            heartsuite_core::money::parse_currency(code)
                .map_err(|e| format!("recon.currencies.{id}: {e}"))?;
        }
        Ok(())
    }

    pub fn fetch_options(&self) -> Result<FetchOptions, String> {
        Ok(FetchOptions {
            time_zone: self.time_zone()?,
            currencies: self
                .currencies
                .iter()
                .map(|(k, v)| (k.clone(), v.to_ascii_uppercase()))
                .collect(),
            payment_methods: self
                .payment_methods
                .iter()
                .map(|(k, v)| (k.clone(), v.to_ascii_uppercase()))
                .collect(),
            default_currency: self.default_currency.to_ascii_uppercase(),
            bank_accounts: self.bank_accounts.clone(),
            chargeback_accounts: self.chargeback_accounts.clone(),
            refund_accounts: self.refund_accounts.clone(),
        })
    }
}

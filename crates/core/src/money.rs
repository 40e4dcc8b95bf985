//! Exact money: integer minor units plus an ISO 4217 currency. GP-API speaks minor-unit strings
//! ("1999"), NetSuite and Heartland Retail speak decimals (19.99); both conversions are exact or
//! they fail, never rounded silently and never through a float.

use iso_currency::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown ISO 4217 currency code `{0}`")]
    UnknownCurrency(String),
    #[error("`{value}` is not an amount: {reason}")]
    Parse { value: String, reason: String },
    #[error("`{value}` has more decimal places than {currency} allows ({exponent})")]
    TooPrecise { value: String, currency: String, exponent: u32 },
    #[error("amount overflows 64-bit minor units")]
    Overflow,
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(String, String),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for USD, yen for JPY, fils/1000 for BHD).
    pub minor: i64,
    #[serde(with = "currency_code")]
    pub currency: Currency,
}

/// Minor-unit exponent of a currency; currencies without one (XAU, XDR...) are treated as 0.
pub fn exponent_of(c: Currency) -> u32 {
    c.exponent().map(u32::from).unwrap_or(0)
}

pub fn parse_currency(code: &str) -> Result<Currency, MoneyError> {
    Currency::from_code(&code.trim().to_ascii_uppercase())
        .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn from_minor_str(value: &str, currency: &str) -> Result<Self, MoneyError> {
        let currency = parse_currency(currency)?;
        let minor = value.trim().parse::<i64>().map_err(|e| MoneyError::Parse {
            value: value.to_string(),
            reason: format!("expected an integer count of minor units ({e})"),
        })?;
        Ok(Self { minor, currency })
    }

    /// Parses a decimal such as `19.99` or `-5`; more places than the currency has is an error,
    /// trailing zeros beyond it (`19.990`) are fine.
    pub fn from_decimal_str(value: &str, currency: &str) -> Result<Self, MoneyError> {
        let d = Decimal::from_str(value.trim()).map_err(|e| MoneyError::Parse {
            value: value.to_string(),
            reason: e.to_string(),
        })?;
        Self::from_decimal(d, parse_currency(currency)?)
    }

    pub fn from_decimal(d: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let exp = exponent_of(currency);
        let d = d.normalize();
        if d.scale() > exp {
            return Err(MoneyError::TooPrecise {
                value: d.to_string(),
                currency: currency.code().to_string(),
                exponent: exp,
            });
        }
        let scaled = d.checked_mul(Decimal::from(10i64.pow(exp))).ok_or(MoneyError::Overflow)?;
        let minor = i64::try_from(scaled.trunc().mantissa() / 10i128.pow(scaled.trunc().scale()))
            .map_err(|_| MoneyError::Overflow)?;
        Ok(Self { minor, currency })
    }

    pub fn to_decimal(&self) -> Decimal {
        Decimal::from_i128_with_scale(self.minor as i128, exponent_of(self.currency))
    }

    /// The decimal string NetSuite and Heartland Retail expect, always with the currency's places.
    pub fn to_decimal_string(&self) -> String {
        let exp = exponent_of(self.currency) as usize;
        let neg = self.minor < 0;
        let digits = self.minor.unsigned_abs().to_string();
        let s = if exp == 0 {
            digits
        } else {
            let padded = format!("{digits:0>width$}", width = exp + 1);
            let (int, frac) = padded.split_at(padded.len() - exp);
            format!("{int}.{frac}")
        };
        if neg { format!("-{s}") } else { s }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(Money::new(self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        Ok(Money::new(self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?, self.currency))
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(
                self.currency.code().to_string(),
                other.currency.code().to_string(),
            ));
        }
        Ok(())
    }

    pub fn code(&self) -> &'static str {
        self.currency.code()
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency.code())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency.code())
    }
}

mod currency_code {
    use iso_currency::Currency;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.code())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_currency(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso_currency::IntoEnumIterator;
    use proptest::prelude::*;

    #[test]
    fn decimal_strings_by_exponent() {
        assert_eq!(Money::from_minor_str("1999", "USD").unwrap().to_decimal_string(), "19.99");
        assert_eq!(Money::from_minor_str("5", "USD").unwrap().to_decimal_string(), "0.05");
        assert_eq!(Money::from_minor_str("-1000", "usd").unwrap().to_decimal_string(), "-10.00");
        assert_eq!(Money::from_minor_str("500", "JPY").unwrap().to_decimal_string(), "500");
        assert_eq!(Money::from_minor_str("1234", "BHD").unwrap().to_decimal_string(), "1.234");
    }

    #[test]
    fn parses_decimals_exactly_and_refuses_extra_precision() {
        assert_eq!(Money::from_decimal_str("19.99", "USD").unwrap().minor, 1999);
        assert_eq!(Money::from_decimal_str("19.990", "USD").unwrap().minor, 1999);
        assert_eq!(Money::from_decimal_str("-0.01", "USD").unwrap().minor, -1);
        assert!(matches!(Money::from_decimal_str("19.999", "USD"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::from_decimal_str("1.5", "JPY"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::from_decimal_str("abc", "USD"), Err(MoneyError::Parse { .. })));
        assert!(matches!(Money::from_decimal_str("1", "ZZZ"), Err(MoneyError::UnknownCurrency(_))));
    }

    #[test]
    fn arithmetic_checks_currency() {
        let a = Money::from_minor_str("100", "USD").unwrap();
        let b = Money::from_minor_str("100", "EUR").unwrap();
        assert!(a.checked_add(b).is_err());
        assert_eq!(a.checked_sub(a).unwrap().minor, 0);
    }

    proptest! {
        /// Money survives minor → decimal string → minor for every ISO 4217 exponent.
        #[test]
        fn round_trips_for_every_currency(minor in -9_000_000_000_000i64..9_000_000_000_000i64,
                                          idx in 0usize..200) {
            let all: Vec<Currency> = Currency::iter().collect();
            let c = all[idx % all.len()];
            let m = Money::new(minor, c);
            let s = m.to_decimal_string();
            let back = Money::from_decimal_str(&s, c.code()).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!(Money::from_decimal(m.to_decimal(), c).unwrap(), m);
        }
    }
}

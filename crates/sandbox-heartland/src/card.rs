//! Card handling. A received number is reduced at once to brand, first 6 and last 4 plus the
//! sandbox outcome it triggers (the test-card table of reference §2), and then dropped: the
//! simulator never stores or logs a full PAN.

use serde::Serialize;

/// What the sandbox does with a card, decided from the reference's test-card table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Approve,
    /// Declined with HTTP 200 and this `payment_method.result` code.
    Decline(&'static str),
    /// The issuer link fails: answered as `SYSTEM_ERROR_DOWNSTREAM`.
    CommError,
}

/// The safe remains of a card number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardInfo {
    pub brand: String,
    pub first6: String,
    pub last4: String,
    pub outcome: Outcome,
}

impl CardInfo {
    /// `XXXXXXXXXXXX5262`: the shape GP-API uses for `masked_number_last4`.
    pub fn masked_last4(&self) -> String {
        format!("XXXXXXXXXXXX{}", self.last4)
    }
    /// `426397XXXXXX5262` (`masked_number_first6last4` in settlement reports).
    pub fn masked_first6last4(&self) -> String {
        format!("{}XXXXXX{}", self.first6, self.last4)
    }
}

const DECLINES: &[(&str, &str)] = &[
    ("4000120000001154", "101"),
    ("5114610000004778", "101"),
    ("4000130000001724", "102"),
    ("5114630000009791", "102"),
    ("4000160000004147", "103"),
    ("5121220000006921", "103"),
    ("4242420000000091", "111"),
];
const COMM_ERROR: &str = "4009830000001985";

/// Message GP-API puts next to a result code.
pub fn result_message(result: &str) -> &'static str {
    match result {
        "00" => "(00)[ test system ] Authorised",
        "101" => "(101)[ test system ] DECLINED",
        "102" => "(102)[ test system ] REFERRAL B",
        "103" => "(103)[ test system ] LOST CARD",
        "111" => "(111)[ test system ] STRONG CUSTOMER AUTHENTICATION REQUIRED",
        _ => "(--)[ test system ] DECLINED",
    }
}

pub fn luhn_ok(digits: &str) -> bool {
    digits.bytes().all(|b| b.is_ascii_digit())
        && heartsuite_core::pan::luhn_valid(digits.as_bytes())
}

pub fn brand_of(digits: &str) -> &'static str {
    let p2: u32 = digits.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let p3: u32 = digits.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let p4: u32 = digits.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    if digits.starts_with('4') {
        "VISA"
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        "MASTERCARD"
    } else if p2 == 34 || p2 == 37 {
        "AMEX"
    } else if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) {
        "DISCOVER"
    } else {
        "UNKNOWN"
    }
}

/// Validates and reduces a card number. `Err` carries a reason suitable for the error envelope
/// (and never the number itself).
pub fn inspect(number: &str) -> Result<CardInfo, &'static str> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("card.number must be 12 to 19 digits");
    }
    if !luhn_ok(&digits) {
        return Err("card.number failed the Luhn check");
    }
    let outcome = if digits == COMM_ERROR {
        Outcome::CommError
    } else if let Some((_, code)) = DECLINES.iter().find(|(n, _)| *n == digits) {
        Outcome::Decline(code)
    } else {
        Outcome::Approve
    };
    Ok(CardInfo {
        brand: brand_of(&digits).to_string(),
        first6: digits[..6].to_string(),
        last4: digits[digits.len() - 4..].to_string(),
        outcome,
    })
}

/// Approved sandbox cards per brand (reference §2), used by the generator.
pub fn approve_card(brand: &str) -> &'static str {
    match brand {
        "MASTERCARD" => "5425230000004415",
        "AMEX" => "374101000000608",
        "DISCOVER" => "6011000000000087",
        _ => "4263970000005262",
    }
}

/// Declining sandbox cards (reference §2), used by the generator.
pub fn decline_card(i: usize) -> &'static str {
    DECLINES[i % 6].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_cards_are_luhn_valid_and_classified() {
        for (n, code) in DECLINES {
            let c = inspect(n).expect("luhn-valid test card");
            assert_eq!(c.outcome, Outcome::Decline(code));
        }
        assert_eq!(
            inspect(COMM_ERROR).map(|c| c.outcome),
            Ok(Outcome::CommError)
        );
        for b in ["VISA", "MASTERCARD", "AMEX", "DISCOVER"] {
            let c = inspect(approve_card(b)).expect("approve card");
            assert_eq!(c.brand, b);
            assert_eq!(c.outcome, Outcome::Approve);
        }
        assert!(inspect("4263970000005263").is_err());
        let c = inspect("4263 9700 0000 5262").expect("spaced");
        assert_eq!((c.first6.as_str(), c.last4.as_str()), ("426397", "5262"));
        assert_eq!(c.masked_first6last4(), "426397XXXXXX5262");
    }
}

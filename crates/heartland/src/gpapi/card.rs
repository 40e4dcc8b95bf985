//! What pays: a stored GP-API token (preferred: no card data in our process at all) or raw card
//! data the caller supplies. Card data lives in `Secret`s, so neither `Debug` nor an error can show
//! the PAN or CVV; it is exposed only while building the request body.

use heartsuite_core::Secret;
use serde_json::{Value, json};
use std::fmt;

#[derive(Clone)]
pub struct CardData {
    number: Secret,
    expiry_month: u8,
    /// Two- or four-digit year; sent as two digits, as GP-API expects.
    expiry_year: u16,
    cvv: Option<Secret>,
    pub cardholder_name: Option<String>,
    pub avs_address: Option<String>,
    pub avs_postal_code: Option<String>,
}

impl CardData {
    pub fn new(number: impl Into<String>, expiry_month: u8, expiry_year: u16) -> Self {
        let number: String = number.into();
        Self {
            number: Secret::new(
                number
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>(),
            ),
            expiry_month,
            expiry_year,
            cvv: None,
            cardholder_name: None,
            avs_address: None,
            avs_postal_code: None,
        }
    }

    pub fn with_cvv(mut self, cvv: impl Into<String>) -> Self {
        self.cvv = Some(Secret::new(cvv));
        self
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.cardholder_name = Some(name.into());
        self
    }

    /// Last four digits, the most PCI DSS allows us to show.
    pub fn last4(&self) -> &str {
        let n = self.number.expose();
        &n[n.len().saturating_sub(4)..]
    }

    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let n = self.number.expose();
        if !(12..=19).contains(&n.len()) {
            return Err(crate::Error::input(
                "card number must have 12-19 digits",
                Some("payment_method.card.number"),
            ));
        }
        if !(1..=12).contains(&self.expiry_month) {
            return Err(crate::Error::input(
                "expiry month must be 1-12",
                Some("payment_method.card.expiry_month"),
            ));
        }
        Ok(())
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut card = json!({
            "number": self.number.expose(),
            "expiry_month": format!("{:02}", self.expiry_month),
            "expiry_year": format!("{:02}", self.expiry_year % 100),
        });
        if let Some(cvv) = &self.cvv {
            card["cvv"] = json!(cvv.expose());
            card["cvv_indicator"] = json!("PRESENT");
        }
        if let Some(a) = &self.avs_address {
            card["avs_address"] = json!(a);
        }
        if let Some(z) = &self.avs_postal_code {
            card["avs_postal_code"] = json!(z);
        }
        card
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("number", &format_args!("****{}", self.last4()))
            .field(
                "expiry",
                &format_args!("{:02}/{:02}", self.expiry_month, self.expiry_year % 100),
            )
            .field("cvv", &self.cvv.as_ref().map(|_| "***"))
            .field("cardholder_name", &self.cardholder_name)
            .finish()
    }
}

/// How a transaction is paid.
#[derive(Clone, Debug)]
pub enum PaymentMethod {
    /// A stored payment method, `PMT_...`.
    Token(String),
    Card(CardData),
}

impl PaymentMethod {
    pub(crate) fn to_json(
        &self,
        entry_mode: &str,
        name: Option<&str>,
    ) -> Result<Value, crate::Error> {
        let mut pm = json!({ "entry_mode": entry_mode });
        match self {
            PaymentMethod::Token(id) => {
                if id.trim().is_empty() {
                    return Err(crate::Error::input(
                        "empty payment method token",
                        Some("payment_method.id"),
                    ));
                }
                pm["id"] = json!(id);
            }
            PaymentMethod::Card(card) => {
                card.validate()?;
                pm["card"] = card.to_json();
                if let Some(n) = card.cardholder_name.as_deref().or(name) {
                    pm["name"] = json!(n);
                }
            }
        }
        if let (Some(n), None) = (name, pm.get("name")) {
            pm["name"] = json!(n);
        }
        Ok(pm)
    }
}

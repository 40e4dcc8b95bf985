//! Typed GP-API resources. Wire structs (all-optional, string-tolerant) are converted into typed
//! values with `Money`, so a missing or malformed amount is caught here, once, as a `Decode` error
//! instead of surfacing as a wrong number later.

use crate::error::{Error, System};
use crate::wire::de_opt_text;
use heartsuite_core::Money;
use serde::{Deserialize, Serialize};

/// Declares a string enum that keeps unknown values (GP-API adds statuses over time; an unknown
/// one must not make a whole response unreadable).
macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name { $($var,)* Other(String) }
        impl $name {
            pub fn as_str(&self) -> &str {
                match self { $($name::$var => $s,)* $name::Other(s) => s }
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() { $($s => $name::$var,)* _ => $name::Other(s) }
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.as_str().to_string() }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

open_enum!(
    /// php/py `TransactionStatus`, plus `VERIFIED` from verifications.
    TransactionStatus {
        Initiated = "INITIATED",
        Authenticated = "AUTHENTICATED",
        Pending = "PENDING",
        Declined = "DECLINED",
        Preauthorized = "PREAUTHORIZED",
        Captured = "CAPTURED",
        Batched = "BATCHED",
        Reversed = "REVERSED",
        Funded = "FUNDED",
        Rejected = "REJECTED",
        Verified = "VERIFIED",
    }
);

open_enum!(TransactionType { Sale = "SALE", Refund = "REFUND" });

open_enum!(
    /// php `DepositStatus`.
    DepositStatus {
        Funded = "FUNDED",
        SplitFunding = "SPLIT_FUNDING",
        Delayed = "DELAYED",
        Reserved = "RESERVED",
        Irregular = "IRREG",
        Released = "RELEASED",
    }
);

/// The card part of a transaction response: masked by the gateway, safe to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardResult {
    #[serde(default, deserialize_with = "de_opt_text")]
    pub brand: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub masked_number_last4: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub masked_number_first6last4: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub authcode: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub brand_reference: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub cvv_result: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub avs_address_result: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub avs_postal_code_result: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodResult {
    /// Issuer result code: `00` approved, `101`/`102`/`103` declines.
    #[serde(default, deserialize_with = "de_opt_text")]
    pub result: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub entry_mode: Option<String>,
    /// The stored payment method id when the request used or created one.
    #[serde(default, deserialize_with = "de_opt_text")]
    pub id: Option<String>,
    #[serde(default)]
    pub card: Option<CardResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    #[serde(default, deserialize_with = "de_opt_text")]
    pub id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "de_opt_text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub time_created: Option<String>,
    /// `SUCCESS` or `DECLINED`; the SDKs expose this as the response code.
    #[serde(default, deserialize_with = "de_opt_text")]
    pub result_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    #[serde(default, deserialize_with = "de_opt_text")]
    pub mid: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub hierarchy: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    pub dba: Option<String>,
}

#[derive(Deserialize)]
struct TransactionWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    time_created: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "de_opt_text")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    channel: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    capture_mode: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    amount: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    country: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    merchant_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    account_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    account_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    reference: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    batch_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    batch_time_created: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    deposit_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    deposit_status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    deposit_time_created: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    deposit_amount: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    parent_resource_id: Option<String>,
    #[serde(default)]
    payment_method: Option<PaymentMethodResult>,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    system: Option<SystemInfo>,
}

/// A GP-API transaction (`TRN_...`), from `/transactions` or `/settlement/transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: String,
    pub status: TransactionStatus,
    pub kind: Option<TransactionType>,
    pub amount: Option<Money>,
    pub time_created: Option<String>,
    pub channel: Option<String>,
    pub capture_mode: Option<String>,
    pub country: Option<String>,
    pub merchant_id: Option<String>,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub reference: Option<String>,
    /// `BAT_...`; GP-API sends `""` before batching, which we read as `None`.
    pub batch_id: Option<String>,
    pub batch_time_created: Option<String>,
    pub deposit_id: Option<String>,
    pub deposit_status: Option<String>,
    pub deposit_time_created: Option<String>,
    pub deposit_amount: Option<Money>,
    pub parent_resource_id: Option<String>,
    pub payment_method: Option<PaymentMethodResult>,
    pub action: Option<Action>,
    pub system: Option<SystemInfo>,
}

impl Transaction {
    pub(crate) fn from_value(v: serde_json::Value) -> Result<Self, Error> {
        let w: TransactionWire = serde_json::from_value(v)
            .map_err(|e| Error::decode(System::GpApi, format!("transaction: {e}")))?;
        let id =
            w.id.ok_or_else(|| Error::decode(System::GpApi, "transaction without id"))?;
        let status = w.status.ok_or_else(|| {
            Error::decode(System::GpApi, format!("transaction {id} without status"))
        })?;
        let money = |amount: Option<String>, what: &str| -> Result<Option<Money>, Error> {
            match (amount, w.currency.as_deref()) {
                (None, _) => Ok(None),
                (Some(a), Some(c)) => Money::from_minor_str(&a, c).map(Some).map_err(|e| {
                    Error::decode(System::GpApi, format!("transaction {id} {what}: {e}"))
                }),
                (Some(_), None) => Err(Error::decode(
                    System::GpApi,
                    format!("transaction {id} {what} without currency"),
                )),
            }
        };
        Ok(Transaction {
            amount: money(w.amount, "amount")?,
            deposit_amount: money(w.deposit_amount, "deposit_amount")?,
            status: status.into(),
            kind: w.kind.map(Into::into),
            time_created: w.time_created,
            channel: w.channel,
            capture_mode: w.capture_mode,
            country: w.country,
            merchant_id: w.merchant_id,
            account_id: w.account_id,
            account_name: w.account_name,
            reference: w.reference,
            batch_id: w.batch_id,
            batch_time_created: w.batch_time_created,
            deposit_id: w.deposit_id,
            deposit_status: w.deposit_status,
            deposit_time_created: w.deposit_time_created,
            parent_resource_id: w.parent_resource_id,
            payment_method: w.payment_method,
            action: w.action,
            system: w.system,
            id,
        })
    }

    /// A decline is a business outcome (HTTP 200), not an error.
    pub fn is_declined(&self) -> bool {
        self.status == TransactionStatus::Declined
            || self.action.as_ref().and_then(|a| a.result_code.as_deref()) == Some("DECLINED")
    }

    /// The issuer result (`00`, `101`...).
    pub fn result_code(&self) -> Option<&str> {
        self.payment_method
            .as_ref()
            .and_then(|p| p.result.as_deref())
    }
}

/// A `{count, amount}` block of a deposit or batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountAmount {
    pub count: u64,
    pub amount: Money,
}

#[derive(Deserialize, Default)]
struct CountAmountWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    count: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    amount: Option<String>,
}

impl CountAmountWire {
    fn typed(self, currency: &str, what: &str) -> Result<Option<CountAmount>, Error> {
        if self.count.is_none() && self.amount.is_none() {
            return Ok(None);
        }
        let count = match self.count {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| Error::decode(System::GpApi, format!("{what}.count `{c}`")))?,
        };
        let amount = Money::from_minor_str(self.amount.as_deref().unwrap_or("0"), currency)
            .map_err(|e| Error::decode(System::GpApi, format!("{what}.amount: {e}")))?;
        Ok(Some(CountAmount { count, amount }))
    }
}

#[derive(Deserialize, Default)]
struct DisputesWire {
    #[serde(default)]
    chargebacks: Option<CountAmountWire>,
    #[serde(default)]
    reversals: Option<CountAmountWire>,
}

#[derive(Deserialize, Default)]
struct BankWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    masked_account_number_last4: Option<String>,
}

#[derive(Deserialize)]
struct DepositWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    time_created: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    funding_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    amount: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    aggregation_model: Option<String>,
    #[serde(default)]
    bank_transfer: Option<BankWire>,
    #[serde(default)]
    system: Option<SystemInfo>,
    #[serde(default)]
    sales: Option<CountAmountWire>,
    #[serde(default)]
    refunds: Option<CountAmountWire>,
    #[serde(default)]
    discounts: Option<CountAmountWire>,
    #[serde(default)]
    tax: Option<CountAmountWire>,
    #[serde(default)]
    disputes: Option<DisputesWire>,
    #[serde(default)]
    fees: Option<CountAmountWire>,
}

/// A settlement deposit (`DEP_...`): money paid to the merchant's bank, with its breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    pub id: String,
    /// A date (`2020-11-21`) on the real API; kept as text because some hosts send an instant.
    pub time_created: String,
    pub status: DepositStatus,
    pub funding_type: Option<String>,
    pub amount: Money,
    pub aggregation_model: Option<String>,
    pub masked_account_number_last4: Option<String>,
    pub system: Option<SystemInfo>,
    pub sales: Option<CountAmount>,
    pub refunds: Option<CountAmount>,
    pub discounts: Option<CountAmount>,
    pub tax: Option<CountAmount>,
    pub chargebacks: Option<CountAmount>,
    pub reversals: Option<CountAmount>,
    pub fees: Option<Money>,
}

impl Deposit {
    pub(crate) fn from_value(v: serde_json::Value) -> Result<Self, Error> {
        let w: DepositWire = serde_json::from_value(v)
            .map_err(|e| Error::decode(System::GpApi, format!("deposit: {e}")))?;
        let id =
            w.id.ok_or_else(|| Error::decode(System::GpApi, "deposit without id"))?;
        let cur = w.currency.ok_or_else(|| {
            Error::decode(System::GpApi, format!("deposit {id} without currency"))
        })?;
        let amount = Money::from_minor_str(w.amount.as_deref().unwrap_or("0"), &cur)
            .map_err(|e| Error::decode(System::GpApi, format!("deposit {id} amount: {e}")))?;
        let block = |b: Option<CountAmountWire>, what: &str| {
            b.map(|b| b.typed(&cur, what))
                .transpose()
                .map(Option::flatten)
        };
        let disputes = w.disputes.unwrap_or_default();
        Ok(Deposit {
            time_created: w.time_created.ok_or_else(|| {
                Error::decode(System::GpApi, format!("deposit {id} without time_created"))
            })?,
            status: w.status.unwrap_or_default().into(),
            funding_type: w.funding_type,
            amount,
            aggregation_model: w.aggregation_model,
            masked_account_number_last4: w
                .bank_transfer
                .and_then(|b| b.masked_account_number_last4),
            system: w.system,
            sales: block(w.sales, "sales")?,
            refunds: block(w.refunds, "refunds")?,
            discounts: block(w.discounts, "discounts")?,
            tax: block(w.tax, "tax")?,
            chargebacks: block(disputes.chargebacks, "disputes.chargebacks")?,
            reversals: block(disputes.reversals, "disputes.reversals")?,
            fees: block(w.fees, "fees")?.map(|f| f.amount),
            id,
        })
    }
}

/// The answer to closing a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchClose {
    pub id: String,
    pub status: String,
    pub amount: Option<Money>,
    pub transaction_count: Option<u64>,
    pub sales: Option<CountAmount>,
    pub refunds: Option<CountAmount>,
}

#[derive(Deserialize)]
struct BatchWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    amount: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    transaction_count: Option<String>,
    #[serde(default)]
    sales: Option<CountAmountWire>,
    #[serde(default)]
    refunds: Option<CountAmountWire>,
}

impl BatchClose {
    pub(crate) fn from_value(v: serde_json::Value, default_currency: &str) -> Result<Self, Error> {
        let w: BatchWire = serde_json::from_value(v)
            .map_err(|e| Error::decode(System::GpApi, format!("batch: {e}")))?;
        let id =
            w.id.ok_or_else(|| Error::decode(System::GpApi, "batch without id"))?;
        // Batch responses may omit the currency; a batch is single-currency per account.
        let cur = w.currency.unwrap_or_else(|| default_currency.to_string());
        let amount = w
            .amount
            .map(|a| Money::from_minor_str(&a, &cur))
            .transpose()
            .map_err(|e| Error::decode(System::GpApi, format!("batch {id} amount: {e}")))?;
        let transaction_count = w
            .transaction_count
            .map(|c| c.parse::<u64>())
            .transpose()
            .map_err(|_| Error::decode(System::GpApi, format!("batch {id} transaction_count")))?;
        Ok(BatchClose {
            status: w.status.unwrap_or_default(),
            amount,
            transaction_count,
            sales: w
                .sales
                .map(|b| b.typed(&cur, "sales"))
                .transpose()?
                .flatten(),
            refunds: w
                .refunds
                .map(|b| b.typed(&cur, "refunds"))
                .transpose()?
                .flatten(),
            id,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `total_record_count` when the API sent it.
    pub total: Option<u64>,
    pub page: u32,
    pub page_size: u32,
}

impl<T> Page<T> {
    /// Whether asking for the next page can return more: a short page is the last one, and so is
    /// the page that reaches the announced total.
    pub fn has_more(&self) -> bool {
        if self.items.is_empty() || (self.items.len() as u64) < u64::from(self.page_size) {
            return false;
        }
        match self.total {
            Some(t) => u64::from(self.page) * u64::from(self.page_size) < t,
            None => true,
        }
    }
}

//! The normalized records both sides are reduced to, the rules, and the report. The matching
//! engine sees only these types, so it is tested without HTTP and a fetcher bug cannot hide in it.

use heartsuite_core::Money;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which side of the ledger a transaction is on. A Heartland refund must match a NetSuite credit
/// memo or cash refund, never a payment of the same amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sale,
    Refund,
}

/// One settled GP-API transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartlandTxn {
    /// `TRN_...`.
    pub id: String,
    pub direction: Direction,
    /// Always positive; the direction carries the sign.
    pub amount: Money,
    /// The merchant's business date (local), which is the date NetSuite postings carry.
    pub date: Date,
    /// Upper-case brand (`VISA`), `UNKNOWN` when GP-API sent none.
    pub brand: String,
    pub authcode: Option<String>,
    /// The merchant's reference (a POS ticket id for POS sales), used by `{reference}` templates.
    pub reference: Option<String>,
    pub deposit_id: Option<String>,
    pub status: String,
}

/// A funded GP-API deposit with its breakdown, all positive magnitudes except `net`, which is
/// negative for a DEBIT funding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartlandDeposit {
    pub id: String,
    pub date: Date,
    pub status: String,
    pub sales: Money,
    pub refunds: Money,
    pub fees: Money,
    pub chargebacks: Money,
    pub net: Money,
    /// The `TRN_...` ids GP-API lists for this deposit: the anchor of the deposit level.
    pub transactions: Vec<String>,
}

/// The NetSuite record types the transaction level matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsKind {
    CustomerPayment,
    CashSale,
    CreditMemo,
    CashRefund,
}

impl NsKind {
    pub fn direction(self) -> Direction {
        match self {
            NsKind::CustomerPayment | NsKind::CashSale => Direction::Sale,
            NsKind::CreditMemo | NsKind::CashRefund => Direction::Refund,
        }
    }

    /// SuiteQL `transaction.type`.
    pub fn code(self) -> &'static str {
        match self {
            NsKind::CustomerPayment => "CustPymt",
            NsKind::CashSale => "CashSale",
            NsKind::CreditMemo => "CustCred",
            NsKind::CashRefund => "CashRfnd",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [
            NsKind::CustomerPayment,
            NsKind::CashSale,
            NsKind::CreditMemo,
            NsKind::CashRefund,
        ]
        .into_iter()
        .find(|k| k.code().eq_ignore_ascii_case(code))
    }
}

/// One NetSuite payment, cash sale, credit memo or cash refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSuiteTxn {
    /// Internal id.
    pub id: String,
    pub kind: NsKind,
    pub tran_id: Option<String>,
    pub external_id: Option<String>,
    /// Positive magnitude (NetSuite stores credit memos negative in `foreigntotal`).
    pub amount: Money,
    pub date: Date,
    pub memo: Option<String>,
    pub other_ref: Option<String>,
    /// From the payment method (`paymentmethod` → brand table), when it has one.
    pub brand: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsDepositKind {
    /// Detailed mode: a deposit record whose payment lines are the payments it contains.
    Deposit,
    /// Summarized mode: one journal entry per Heartland deposit.
    JournalEntry,
}

/// A NetSuite deposit or journal entry standing for a Heartland deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSuiteDeposit {
    pub id: String,
    pub kind: NsDepositKind,
    pub external_id: Option<String>,
    pub date: Date,
    /// What reached the bank: the deposit's total, or the journal's bank-account debit.
    pub net: Money,
    /// Money moved out of Undeposited Funds (sales − refunds).
    pub gross: Money,
    pub fees: Money,
    pub chargebacks: Money,
    /// Internal ids of the payments on a deposit's payment lines (empty for a journal entry).
    pub payment_ids: Vec<String>,
}

/// Which NetSuite records are "ours to explain": an unmatched one inside the scope is
/// `missing_in_heartland`; outside it, it was only a candidate and is not reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NsScope {
    /// A business date range (inclusive): records dated inside it.
    Dates { from: Date, to: Date },
    /// A deposit: the payments listed on the matched NetSuite deposit record.
    DepositLines,
}

/// How items are looked for, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// The external id the flows write (`hs-pay-<TRN>`, ...).
    ExternalId,
    /// Same direction and currency, amount within tolerance, date within the window, and the
    /// authorization code in the memo or other reference number (when Heartland has one).
    AmountDateAuth,
}

/// `[recon]` in the configuration: the matching rules, and how the two systems' codes and
/// dates translate. The report carries a copy, so it says which rules produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Order of evaluation: each Heartland item is tried against each key in turn.
    pub keys: Vec<MatchKey>,
    /// Largest difference, in minor units, still counted as `matched`.
    pub amount_tolerance_minor: i64,
    /// Largest difference in days between the two business dates still counted as `matched`,
    /// and how far around an item the amount/date/auth key looks.
    pub date_window_days: i64,
    /// External ids a sale may have been posted under; `{id}` = TRN id, `{reference}` = the
    /// merchant reference without `pos_reference_prefix` (the POS ticket id).
    pub sale_external_ids: Vec<String>,
    /// A POS card sale's GP-API reference is this prefix + the Retail ticket id (the settlement
    /// flow's `pos_reference_prefix`); a `{reference}` template applies only to such sales.
    pub pos_reference_prefix: String,
    pub refund_external_ids: Vec<String>,
    pub deposit_external_ids: Vec<String>,
    /// The amount/date/auth key requires the authorization code to appear on the NetSuite side.
    pub require_authcode: bool,
    /// Run the reconciliation of the previous business date every day at `HH:MM` merchant time
    /// inside `serve`; unset = off.
    pub daily_at: Option<String>,
    /// The merchant's time zone (business dates, `daily_at`).
    pub time_zone: String,
    /// Where the daily report is written (`{data_dir}/recon` when unset).
    pub out_dir: Option<String>,
    /// NetSuite currency internal id → ISO code.
    pub currencies: BTreeMap<String, String>,
    /// NetSuite payment method internal id → card brand.
    pub payment_methods: BTreeMap<String, String>,
    /// Used when a NetSuite row has no currency the table knows.
    pub default_currency: String,
    /// Journal-entry lines on these NetSuite accounts are the bank (net) line; empty = the
    /// largest debit.
    pub bank_accounts: Vec<String>,
    /// Journal debits / deposit cash-back lines on these accounts are chargebacks, not fees.
    pub chargeback_accounts: Vec<String>,
    /// Journal debits on these accounts are card refunds (the settlement flow's
    /// `refunds_account`), which lower what left Undeposited Funds.
    pub refund_accounts: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Self {
            keys: vec![MatchKey::ExternalId, MatchKey::AmountDateAuth],
            amount_tolerance_minor: 0,
            date_window_days: 1,
            sale_external_ids: vec!["hs-pay-{id}".into(), "hs-sale-{reference}".into()],
            pos_reference_prefix: "POS-".into(),
            refund_external_ids: vec!["hs-cm-{id}".into(), "hs-ret-{reference}".into()],
            deposit_external_ids: vec!["hs-dep-{id}".into()],
            require_authcode: true,
            daily_at: None,
            time_zone: "America/Chicago".into(),
            out_dir: None,
            // The same ids the built-in flows write with.
            currencies: map(&[
                ("1", "USD"),
                ("2", "CAD"),
                ("3", "EUR"),
                ("4", "GBP"),
                ("5", "JPY"),
            ]),
            payment_methods: map(&[
                ("5", "VISA"),
                ("4", "MASTERCARD"),
                ("6", "AMEX"),
                ("3", "DISCOVER"),
            ]),
            default_currency: "USD".into(),
            bank_accounts: Vec::new(),
            // The settlement flow's `chargebacks_account` and `refunds_account` settings.
            chargeback_accounts: vec!["4".into()],
            // Undeposited Funds (1): the settlement flow's journal takes card refunds out of it
            // (flows/gpapi_settlement_to_deposit.toml `refunds_account`); Clearing (5) too.
            refund_accounts: vec!["1".into(), "5".into()],
        }
    }
}

impl Rules {
    /// Expands templates; a `{reference}` template is skipped unless the item's reference is a
    /// POS ticket (`pos_reference_prefix` + ticket id).
    pub fn external_ids_for(&self, t: &HeartlandTxn) -> Vec<String> {
        let templates = match t.direction {
            Direction::Sale => &self.sale_external_ids,
            Direction::Refund => &self.refund_external_ids,
        };
        templates
            .iter()
            .filter_map(|tpl| {
                if tpl.contains("{reference}") {
                    let r = t
                        .reference
                        .as_deref()?
                        .strip_prefix(self.pos_reference_prefix.as_str())
                        .filter(|r| !r.is_empty())?;
                    Some(tpl.replace("{reference}", r).replace("{id}", &t.id))
                } else {
                    Some(tpl.replace("{id}", &t.id))
                }
            })
            .collect()
    }

    pub fn deposit_external_ids_for(&self, deposit_id: &str) -> Vec<String> {
        self.deposit_external_ids
            .iter()
            .map(|t| t.replace("{id}", deposit_id))
            .collect()
    }

    /// Checks the matching rules make sense, naming the key that does not.
    pub fn validate_matching(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err(
                "recon.keys must name at least one key (external_id, amount_date_auth)".into(),
            );
        }
        if self.amount_tolerance_minor < 0 {
            return Err(format!(
                "recon.amount_tolerance_minor must be 0 or more, not {}",
                self.amount_tolerance_minor
            ));
        }
        if !(0..=31).contains(&self.date_window_days) {
            return Err(format!(
                "recon.date_window_days must be between 0 and 31, not {}",
                self.date_window_days
            ));
        }
        for (name, list) in [
            ("sale_external_ids", &self.sale_external_ids),
            ("refund_external_ids", &self.refund_external_ids),
            ("deposit_external_ids", &self.deposit_external_ids),
        ] {
            if let Some(t) = list
                .iter()
                .find(|t| !t.contains("{id}") && !t.contains("{reference}"))
            {
                return Err(format!(
                    "recon.{name}: template `{t}` has neither {{id}} nor {{reference}}"
                ));
            }
        }
        Ok(())
    }
}

/// Everything the engine needs: both sides, normalized, and the scope of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// `date 2026-03-14` or `deposit DEP_...`, for the report's title.
    pub title: String,
    pub heartland: Vec<HeartlandTxn>,
    pub heartland_deposits: Vec<HeartlandDeposit>,
    pub netsuite: Vec<NetSuiteTxn>,
    pub netsuite_deposits: Vec<NetSuiteDeposit>,
    pub scope: NsScope,
    /// Items a person accepted earlier (item key → note).
    pub accepted: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Matched,
    AmountDiffers,
    DateDiffers,
    MissingInNetsuite,
    MissingInHeartland,
    DuplicateInNetsuite,
    /// An exception a person accepted with a note (the original status is kept alongside).
    Accepted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::AmountDiffers => "amount_differs",
            Status::DateDiffers => "date_differs",
            Status::MissingInNetsuite => "missing_in_netsuite",
            Status::MissingInHeartland => "missing_in_heartland",
            Status::DuplicateInNetsuite => "duplicate_in_netsuite",
            Status::Accepted => "accepted",
        }
    }

    pub const ALL: [Status; 7] = [
        Status::Matched,
        Status::AmountDiffers,
        Status::DateDiffers,
        Status::MissingInNetsuite,
        Status::MissingInHeartland,
        Status::DuplicateInNetsuite,
        Status::Accepted,
    ];

    pub fn is_exception(self) -> bool {
        !matches!(self, Status::Matched | Status::Accepted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Transaction,
    Deposit,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stable key used by `--redrive` and `--accept`: `txn:TRN_...`, `deposit:DEP_...`,
    /// `netsuite:<internal id>`.
    pub key: String,
    pub level: Level,
    pub status: Status,
    /// For an accepted item, what it was before it was accepted.
    pub original_status: Option<Status>,
    pub accepted_note: Option<String>,
    /// What a person should do about it, in words.
    pub reason: String,
    pub direction: Option<Direction>,
    pub brand: Option<String>,
    pub heartland_id: Option<String>,
    pub heartland_amount: Option<Money>,
    pub heartland_date: Option<Date>,
    pub deposit_id: Option<String>,
    /// NetSuite internal ids (several for a duplicate).
    pub netsuite_ids: Vec<String>,
    pub netsuite_external_id: Option<String>,
    pub netsuite_amount: Option<Money>,
    pub netsuite_date: Option<Date>,
    /// NetSuite − Heartland, when both sides have an amount.
    pub difference: Option<Money>,
    /// How the NetSuite side was found (`external_id`, `amount_date_auth`).
    pub matched_by: Option<MatchKey>,
}

/// Count and amount, per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    /// Currency code → sum of Heartland amounts (NetSuite's where Heartland has none).
    pub amounts: BTreeMap<String, Money>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandTotals {
    pub heartland_count: u64,
    pub heartland_sales: BTreeMap<String, Money>,
    pub heartland_refunds: BTreeMap<String, Money>,
    pub netsuite_count: u64,
    pub netsuite_sales: BTreeMap<String, Money>,
    pub netsuite_refunds: BTreeMap<String, Money>,
}

/// The deposit level: Heartland's breakdown against the NetSuite side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositLine {
    pub deposit_id: String,
    pub date: Date,
    pub status: Status,
    pub reason: String,
    pub heartland_sales: Money,
    pub heartland_refunds: Money,
    /// Sales − refunds: what leaves Undeposited Funds.
    pub heartland_gross: Money,
    pub heartland_fees: Money,
    pub heartland_chargebacks: Money,
    pub heartland_net: Money,
    pub netsuite_id: Option<String>,
    pub netsuite_kind: Option<NsDepositKind>,
    pub netsuite_gross: Option<Money>,
    pub netsuite_fees: Option<Money>,
    pub netsuite_chargebacks: Option<Money>,
    pub netsuite_net: Option<Money>,
    /// Heartland transactions of this deposit whose NetSuite posting is not on the NetSuite
    /// deposit's payment lines (detailed mode only).
    pub lines_missing: Vec<String>,
    /// Payments on the NetSuite deposit that Heartland does not list for it.
    pub lines_extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    pub rules: Rules,
    pub items: Vec<Item>,
    pub deposits: Vec<DepositLine>,
    /// Status name → tally of transaction-level items (Heartland amount, NetSuite's where
    /// Heartland has none).
    pub by_status: BTreeMap<String, Tally>,
    /// Status name → number of deposit-level items.
    pub deposits_by_status: BTreeMap<String, u64>,
    /// Brand → both sides' totals.
    pub by_brand: BTreeMap<String, BrandTotals>,
}

impl Report {
    pub fn exceptions(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.status.is_exception())
    }

    /// Transaction-level items with this status.
    pub fn count(&self, s: Status) -> u64 {
        self.by_status.get(s.as_str()).map_or(0, |t| t.count)
    }

    pub fn deposit_count(&self, s: Status) -> u64 {
        self.deposits_by_status
            .get(s.as_str())
            .copied()
            .unwrap_or(0)
    }

    pub fn item(&self, key: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.key == key)
    }
}

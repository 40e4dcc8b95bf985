//! Thin fetchers: GP-API settlement data and NetSuite SuiteQL rows, reduced to the engine's
//! normalized records. All judgement lives in `engine`; here only reading and converting, with
//! errors that name the record and field that could not be read.
//!
//! SuiteQL stays within columns real NetSuite has on `transaction` (`id`, `tranid`, `type`,
//! `trandate`, `externalid`, `foreigntotal`, `currency`, `memo`, `otherrefnum`, `paymentmethod`)
//! and `transactionline` (`transaction`, `mainline`, `account`, `createdfrom`, `foreignamount`,
//! `debitforeignamount`, `creditforeignamount`). A NetSuite deposit record is also read whole
//! through REST (`deposit/{id}?expandSubResources=true`): its cash-back lines (fees, chargebacks,
//! refunds) are what splits the gross from the net.

use crate::model::*;
use heartsuite_core::Money;
use heartsuite_heartland::GpApiClient;
use heartsuite_heartland::gpapi::{
    Deposit, Transaction, TransactionQuery, TransactionStatus, TransactionType,
};
use heartsuite_netsuite::NetSuiteClient;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GP-API: {0}")]
    Heartland(#[from] heartsuite_heartland::Error),
    #[error("NetSuite: {0}")]
    NetSuite(#[from] heartsuite_netsuite::Error),
    /// A record one side returned that cannot be read; names the record and the field.
    #[error("{record}: field `{field}`: {message}")]
    Data {
        record: String,
        field: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

fn data(record: &str, field: &str, message: impl Into<String>) -> FetchError {
    FetchError::Data {
        record: record.into(),
        field: field.into(),
        message: message.into(),
    }
}

/// How the two systems' codes translate; `[recon]` in the configuration.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The merchant's time zone: GP-API stamps UTC, NetSuite postings carry the local date.
    pub time_zone: TimeZone,
    /// NetSuite currency internal id → ISO code.
    pub currencies: BTreeMap<String, String>,
    /// NetSuite payment method internal id → card brand (upper case).
    pub payment_methods: BTreeMap<String, String>,
    /// Used when a NetSuite row has no currency the table knows.
    pub default_currency: String,
    /// Journal lines on these accounts are the bank (net) side; empty = the largest debit.
    pub bank_accounts: Vec<String>,
    /// Journal debits / deposit cash-back lines on these accounts are chargebacks, not fees.
    pub chargeback_accounts: Vec<String>,
    /// Journal debits on these accounts are card refunds (they lower the gross).
    pub refund_accounts: Vec<String>,
}

/// The record-id-safe subset of external id characters; anything else is not one of ours and is
/// never spliced into a query.
fn safe_literal(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn text(row: &Map<String, Value>, k: &str) -> Option<String> {
    match row.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// NetSuite dates come back as the query's `TO_CHAR(…, 'YYYY-MM-DD')`; `M/D/YYYY` (the account's
/// display format) is read too, in case a deployment returns it.
fn parse_date(record: &str, field: &str, s: &str) -> Result<Date, FetchError> {
    let s = s.trim();
    if let Ok(d) = s.get(..10).unwrap_or(s).parse::<Date>() {
        return Ok(d);
    }
    let parts: Vec<&str> = s.split('/').collect();
    if let [m, d, y] = parts.as_slice()
        && let (Ok(m), Ok(d), Ok(y)) = (
            m.parse::<i8>(),
            d.parse::<i8>(),
            y.get(..4).unwrap_or(y).parse::<i16>(),
        )
        && let Ok(date) = Date::new(y, m, d)
    {
        return Ok(date);
    }
    Err(data(record, field, format!("`{s}` is not a date")))
}

fn abs(m: Money) -> Money {
    Money::new(m.minor.abs(), m.currency)
}

pub fn local_date(ts: &str, tz: &TimeZone, record: &str) -> Result<Date, FetchError> {
    let t: jiff::Timestamp = ts
        .parse()
        .map_err(|e| data(record, "time_created", format!("`{ts}`: {e}")))?;
    Ok(t.to_zoned_datetime(tz.clone()).date())
}

/// Statuses that mean money moved (or will at the next funding): worth a NetSuite posting.
fn settled(s: &TransactionStatus) -> bool {
    matches!(
        s,
        TransactionStatus::Captured | TransactionStatus::Batched | TransactionStatus::Funded
    )
}

pub fn heartland_txn(t: &Transaction, tz: &TimeZone) -> Result<HeartlandTxn, FetchError> {
    let rec = format!("GP-API transaction {}", t.id);
    let amount = t.amount.ok_or_else(|| data(&rec, "amount", "missing"))?;
    let ts = t
        .time_created
        .as_deref()
        .ok_or_else(|| data(&rec, "time_created", "missing"))?;
    let card = t.payment_method.as_ref().and_then(|p| p.card.as_ref());
    Ok(HeartlandTxn {
        id: t.id.clone(),
        direction: match &t.kind {
            Some(TransactionType::Refund) => Direction::Refund,
            Some(TransactionType::Sale) => Direction::Sale,
            other => {
                return Err(data(
                    &rec,
                    "type",
                    format!("{other:?} is neither SALE nor REFUND"),
                ));
            }
        },
        amount: abs(amount),
        date: local_date(ts, tz, &rec)?,
        brand: card
            .and_then(|c| c.brand.clone())
            .filter(|b| !b.is_empty())
            .map(|b| b.to_ascii_uppercase())
            .unwrap_or_else(|| "UNKNOWN".into()),
        authcode: card
            .and_then(|c| c.authcode.clone())
            .filter(|a| !a.is_empty()),
        reference: t.reference.clone().filter(|r| !r.is_empty()),
        deposit_id: t.deposit_id.clone().filter(|d| !d.is_empty()),
        status: t.status.as_str().to_string(),
    })
}

pub fn heartland_deposit(
    d: &Deposit,
    transactions: Vec<String>,
) -> Result<HeartlandDeposit, FetchError> {
    let rec = format!("GP-API deposit {}", d.id);
    let zero = Money::new(0, d.amount.currency);
    let part =
        |c: Option<heartsuite_heartland::gpapi::CountAmount>| c.map_or(zero, |c| abs(c.amount));
    let debit = d
        .funding_type
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("DEBIT"));
    Ok(HeartlandDeposit {
        id: d.id.clone(),
        date: parse_date(&rec, "time_created", &d.time_created)?,
        status: d.status.as_str().to_string(),
        sales: part(d.sales),
        refunds: part(d.refunds),
        fees: d.fees.map_or(zero, abs),
        chargebacks: part(d.chargebacks),
        net: if debit {
            Money::new(-d.amount.minor.abs(), d.amount.currency)
        } else {
            abs(d.amount)
        },
        transactions,
    })
}

pub struct Fetcher<'a> {
    pub gp: &'a GpApiClient,
    pub ns: &'a NetSuiteClient,
    pub rules: &'a Rules,
    pub opts: &'a FetchOptions,
}

const TXN_COLUMNS: &str = "t.id, t.tranid, t.type, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.externalid, t.foreigntotal, t.currency, t.memo, t.otherrefnum, t.paymentmethod";

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fixed part of each `{id}` template before the placeholder (`hs-pay-`). `{reference}`
/// templates are left out: a POS ticket's cash sale may have been paid in cash, with no
/// Heartland transaction at all, so `hs-sale-` does not mark a record as ours (a card-paid one
/// is found by its card payment method).
fn prefixes(templates: &[String]) -> Vec<String> {
    templates
        .iter()
        .filter(|t| !t.contains("{reference}"))
        .filter_map(|t| t.split('{').next())
        .filter(|p| safe_literal(p))
        .map(str::to_string)
        .collect()
}

impl Fetcher<'_> {
    fn currency(&self, row: &Map<String, Value>) -> String {
        text(row, "currency")
            .and_then(|id| self.opts.currencies.get(&id).cloned())
            .unwrap_or_else(|| self.opts.default_currency.clone())
    }

    fn ns_txn(&self, row: &Map<String, Value>) -> Result<Option<NetSuiteTxn>, FetchError> {
        let id =
            text(row, "id").ok_or_else(|| data("NetSuite transaction row", "id", "missing"))?;
        let rec = format!("NetSuite transaction {id}");
        let Some(kind) = text(row, "type").and_then(|c| NsKind::from_code(&c)) else {
            return Ok(None);
        };
        let total =
            text(row, "foreigntotal").ok_or_else(|| data(&rec, "foreigntotal", "missing"))?;
        let amount = Money::from_decimal_str(&total, &self.currency(row))
            .map_err(|e| data(&rec, "foreigntotal", e.to_string()))?;
        let date = parse_date(
            &rec,
            "trandate",
            &text(row, "trandate").ok_or_else(|| data(&rec, "trandate", "missing"))?,
        )?;
        Ok(Some(NetSuiteTxn {
            kind,
            tran_id: text(row, "tranid"),
            external_id: text(row, "externalid"),
            amount: abs(amount),
            date,
            memo: text(row, "memo"),
            other_ref: text(row, "otherrefnum"),
            brand: text(row, "paymentmethod")
                .and_then(|p| self.opts.payment_methods.get(&p).cloned()),
            id,
        }))
    }

    async fn ns_rows(&self, q: &str) -> Result<Vec<Map<String, Value>>, FetchError> {
        tracing::debug!(query = q, "recon SuiteQL");
        Ok(self.ns.suiteql(q, 1000).await?)
    }

    /// NetSuite transactions under the given external ids, plus those in `[from, to]` that look
    /// like ours (our external id prefixes or a card payment method).
    async fn netsuite_txns(
        &self,
        eids: &[String],
        from: Date,
        to: Date,
    ) -> Result<Vec<NetSuiteTxn>, FetchError> {
        let types = quote_list(
            &[
                NsKind::CustomerPayment,
                NsKind::CashSale,
                NsKind::CreditMemo,
                NsKind::CashRefund,
            ]
            .map(|k| k.code().to_string()),
        );
        let mut rows = Vec::new();
        let eids: Vec<String> = eids
            .iter()
            .filter(|e| safe_literal(e))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in eids.chunks(200) {
            rows.extend(self.ns_rows(&format!("SELECT {TXN_COLUMNS} FROM transaction t WHERE t.type IN ({types}) AND t.externalid IN ({}) ORDER BY t.id", quote_list(chunk))).await?);
        }
        let mut ours: Vec<String> = prefixes(&self.rules.sale_external_ids)
            .into_iter()
            .chain(prefixes(&self.rules.refund_external_ids))
            .map(|p| format!("t.externalid LIKE '{p}%'"))
            .collect();
        let cards: Vec<String> = self
            .opts
            .payment_methods
            .keys()
            .filter(|k| safe_literal(k))
            .cloned()
            .collect();
        if !cards.is_empty() {
            ours.push(format!("t.paymentmethod IN ({})", cards.join(", ")));
        }
        if !ours.is_empty() {
            rows.extend(
                self.ns_rows(&format!(
                    "SELECT {TXN_COLUMNS} FROM transaction t WHERE t.type IN ({types}) AND t.trandate >= TO_DATE('{from}', 'YYYY-MM-DD') AND t.trandate <= TO_DATE('{to}', 'YYYY-MM-DD') AND ({}) ORDER BY t.id",
                    ours.join(" OR ")
                ))
                .await?,
            );
        }
        let mut out: BTreeMap<String, NetSuiteTxn> = BTreeMap::new();
        for row in &rows {
            if let Some(t) = self.ns_txn(row)? {
                out.insert(t.id.clone(), t);
            }
        }
        Ok(out.into_values().collect())
    }

    /// NetSuite deposits / journal entries under the given external ids, plus (for a date run)
    /// those dated in `[from, to]` under our deposit prefix.
    async fn netsuite_deposits(
        &self,
        eids: &[String],
        dated: Option<(Date, Date)>,
        currency_of: &BTreeMap<String, String>,
    ) -> Result<Vec<NetSuiteDeposit>, FetchError> {
        let cols = "t.id, t.type, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.externalid, t.foreigntotal, t.currency";
        let mut heads = Vec::new();
        let eids: Vec<String> = eids.iter().filter(|e| safe_literal(e)).cloned().collect();
        for chunk in eids.chunks(200) {
            heads.extend(self.ns_rows(&format!("SELECT {cols} FROM transaction t WHERE t.type IN ('Deposit', 'Journal') AND t.externalid IN ({}) ORDER BY t.id", quote_list(chunk))).await?);
        }
        if let Some((from, to)) = dated {
            let like: Vec<String> = prefixes(&self.rules.deposit_external_ids)
                .into_iter()
                .map(|p| format!("t.externalid LIKE '{p}%'"))
                .collect();
            if !like.is_empty() {
                heads.extend(
                    self.ns_rows(&format!(
                        "SELECT {cols} FROM transaction t WHERE t.type IN ('Deposit', 'Journal') AND t.trandate >= TO_DATE('{from}', 'YYYY-MM-DD') AND t.trandate <= TO_DATE('{to}', 'YYYY-MM-DD') AND ({}) ORDER BY t.id",
                        like.join(" OR ")
                    ))
                    .await?,
                );
            }
        }
        let mut by_id: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for h in heads {
            if let Some(id) = text(&h, "id").filter(|i| safe_literal(i)) {
                by_id.insert(id, h);
            }
        }
        let ids: Vec<String> = by_id.keys().cloned().collect();
        let mut lines: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
        for chunk in ids.chunks(200) {
            let q = format!(
                "SELECT tl.transaction AS tran, tl.id AS line, tl.account, tl.createdfrom, tl.foreignamount, tl.debitforeignamount, tl.creditforeignamount FROM transactionline tl WHERE tl.mainline = 'F' AND tl.transaction IN ({}) ORDER BY tl.transaction, tl.id",
                chunk.join(", ")
            );
            for row in self.ns_rows(&q).await? {
                if let Some(t) = text(&row, "tran") {
                    lines.entry(t).or_default().push(row);
                }
            }
        }
        let mut out = Vec::new();
        for (id, h) in &by_id {
            let rec = format!("NetSuite transaction {id}");
            let eid = text(h, "externalid");
            // A journal entry's currency may be missing from the row; the Heartland deposit's is
            // the one the entry was posted in.
            let cur = text(h, "currency")
                .and_then(|c| self.opts.currencies.get(&c).cloned())
                .or_else(|| eid.as_ref().and_then(|e| currency_of.get(e).cloned()))
                .unwrap_or_else(|| self.opts.default_currency.clone());
            let m = |field: &str, v: Option<String>| -> Result<Money, FetchError> {
                Money::from_decimal_str(v.as_deref().unwrap_or("0"), &cur)
                    .map(abs)
                    .map_err(|e| data(&rec, field, e.to_string()))
            };
            let zero = m("foreigntotal", None)?;
            let sum = |xs: &[Money]| {
                xs.iter()
                    .try_fold(zero, |a, b| a.checked_add(*b))
                    .map_err(|e| data(&rec, "lines", e.to_string()))
            };
            let ls = lines.get(id).map(Vec::as_slice).unwrap_or_default();
            let date = parse_date(&rec, "trandate", &text(h, "trandate").unwrap_or_default())?;
            let dep = match text(h, "type").as_deref() {
                Some("Deposit") => {
                    // The record itself, for its sublists: payment lines are the payments it
                    // moves out of Undeposited Funds, cash-back lines the fees, chargebacks and
                    // refunds taken out of it, "other" lines the reversals added back.
                    let body: Value = self.ns.get("deposit", id, true).await?;
                    let items = |list: &str| {
                        body.get(list)
                            .and_then(|l| l.get("items"))
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    };
                    let line_amount = |l: &Value, field: &str| -> Result<Money, FetchError> {
                        let v = match l.get(field) {
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(Value::Number(n)) => Some(n.to_string()),
                            _ => None,
                        };
                        m(field, v)
                    };
                    let suiteql_amount: BTreeMap<String, Option<String>> = ls
                        .iter()
                        .filter_map(|l| Some((text(l, "createdfrom")?, text(l, "foreignamount"))))
                        .collect();
                    let mut pays = Vec::new();
                    let mut payment_ids = Vec::new();
                    for l in items("payment") {
                        if l.get("deposit").and_then(Value::as_bool) == Some(false) {
                            continue;
                        }
                        let Some(pid) = l
                            .get("doc")
                            .and_then(|d| d.get("id"))
                            .or_else(|| l.get("id"))
                            .and_then(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .or_else(|| v.as_u64().map(|n| n.to_string()))
                            })
                        else {
                            return Err(data(
                                &rec,
                                "payment.items[].doc.id",
                                "a payment line names no payment",
                            ));
                        };
                        let amt = if l.get("paymentAmount").is_some() {
                            line_amount(&l, "paymentAmount")?
                        } else {
                            m("foreignamount", suiteql_amount.get(&pid).cloned().flatten())?
                        };
                        pays.push(amt);
                        payment_ids.push(pid);
                    }
                    let (mut fees, mut cbs, mut refunds) = (Vec::new(), Vec::new(), Vec::new());
                    for l in items("cashBack") {
                        let acct = l
                            .get("account")
                            .and_then(|a| a.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let amt = line_amount(&l, "amount")?;
                        let has = |list: &[String]| acct.as_ref().is_some_and(|a| list.contains(a));
                        if has(&self.opts.chargeback_accounts) {
                            cbs.push(amt);
                        } else if has(&self.opts.refund_accounts) {
                            refunds.push(amt);
                        } else {
                            fees.push(amt);
                        }
                    }
                    let mut chargebacks = sum(&cbs)?;
                    for l in items("other") {
                        let acct = l
                            .get("account")
                            .and_then(|a| a.get("id"))
                            .and_then(Value::as_str);
                        if acct
                            .is_some_and(|a| self.opts.chargeback_accounts.iter().any(|c| c == a))
                        {
                            chargebacks = chargebacks
                                .checked_sub(line_amount(&l, "amount")?)
                                .map_err(|e| data(&rec, "other", e.to_string()))?;
                        }
                    }
                    NetSuiteDeposit {
                        id: id.clone(),
                        kind: NsDepositKind::Deposit,
                        external_id: eid,
                        date,
                        net: m("foreigntotal", text(h, "foreigntotal"))?,
                        gross: sum(&pays)?
                            .checked_sub(sum(&refunds)?)
                            .map_err(|e| data(&rec, "refunds", e.to_string()))?,
                        fees: sum(&fees)?,
                        chargebacks,
                        payment_ids,
                    }
                }
                Some("Journal") => {
                    // Each line signed (debit − credit) and classed by account: the bank line is
                    // the net, chargeback lines (reversals credit them back) the chargebacks,
                    // refund debits lower what left Undeposited Funds, other debits are fees and
                    // other credits the sales taken out of Undeposited Funds.
                    let mut signed: Vec<(Money, Option<String>)> = Vec::new();
                    for l in ls {
                        let d = m("debitforeignamount", text(l, "debitforeignamount"))?;
                        let c = m("creditforeignamount", text(l, "creditforeignamount"))?;
                        let v = d
                            .checked_sub(c)
                            .map_err(|e| data(&rec, "line", e.to_string()))?;
                        signed.push((v, text(l, "account")));
                    }
                    let in_list = |a: &Option<String>, list: &[String]| {
                        a.as_ref().is_some_and(|a| list.contains(a))
                    };
                    let largest_debit = signed
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.0.minor > 0)
                        .max_by_key(|(_, l)| l.0.minor)
                        .map(|(i, _)| i);
                    let mut parts: [Vec<Money>; 5] = Default::default(); // net, chargebacks, refunds, fees, sales
                    for (i, (v, acct)) in signed.iter().enumerate() {
                        let bank = if self.opts.bank_accounts.is_empty() {
                            Some(i) == largest_debit
                        } else {
                            in_list(acct, &self.opts.bank_accounts)
                        };
                        let slot = if bank {
                            0
                        } else if in_list(acct, &self.opts.chargeback_accounts) {
                            1
                        } else if v.minor > 0 && in_list(acct, &self.opts.refund_accounts) {
                            // A debit: refunds leave the account the sales came out of (a
                            // credit on the same account is the sales).
                            2
                        } else if v.minor > 0 {
                            3
                        } else {
                            4
                        };
                        // Sales are credits: count them positive.
                        parts[slot].push(if slot == 4 { abs(*v) } else { *v });
                    }
                    let refunds = sum(&parts[2])?;
                    NetSuiteDeposit {
                        id: id.clone(),
                        kind: NsDepositKind::JournalEntry,
                        external_id: eid,
                        date,
                        net: sum(&parts[0])?,
                        gross: sum(&parts[4])?
                            .checked_sub(refunds)
                            .map_err(|e| data(&rec, "lines", e.to_string()))?,
                        fees: sum(&parts[3])?,
                        chargebacks: sum(&parts[1])?,
                        payment_ids: Vec::new(),
                    }
                }
                _ => continue,
            };
            out.push(dep);
        }
        Ok(out)
    }

    async fn settlement(&self, q: TransactionQuery) -> Result<Vec<Transaction>, FetchError> {
        Ok(self
            .gp
            .list_all_settlement_transactions(&TransactionQuery {
                page_size: Some(100),
                ..q
            })
            .await?)
    }

    /// A deposit and its transaction ids.
    async fn deposit(&self, id: &str) -> Result<(HeartlandDeposit, Vec<Transaction>), FetchError> {
        let d = self.gp.get_deposit(id).await?;
        let txns = self
            .settlement(TransactionQuery {
                deposit_id: Some(id.to_string()),
                ..Default::default()
            })
            .await?;
        let ids = txns.iter().map(|t| t.id.clone()).collect();
        Ok((heartland_deposit(&d, ids)?, txns))
    }

    /// Both sides for the merchant's business date `date`: its settled transactions, the
    /// deposits that fund them (with every transaction those deposits list), and NetSuite.
    pub async fn for_date(&self, date: Date) -> Result<Input, FetchError> {
        let tz = &self.opts.time_zone;
        let day = |n: i64| {
            date.checked_add(jiff::Span::new().days(n))
                .map_err(|e| FetchError::Config(e.to_string()))
        };
        // GP-API filters on the UTC date; a local day spans two of them.
        let raw = self
            .settlement(TransactionQuery {
                from_time_created: Some(day(-1)?),
                to_time_created: Some(day(1)?),
                ..Default::default()
            })
            .await?;
        let mut hl: BTreeMap<String, HeartlandTxn> = BTreeMap::new();
        for t in raw.iter().filter(|t| settled(&t.status)) {
            let h = heartland_txn(t, tz)?;
            if h.date == date {
                hl.insert(h.id.clone(), h);
            }
        }
        let deposit_ids: BTreeSet<String> =
            hl.values().filter_map(|h| h.deposit_id.clone()).collect();
        let mut deposits = Vec::new();
        for id in &deposit_ids {
            let (d, txns) = self.deposit(id).await?;
            // A deposit also funds transactions of the neighbouring day (a batch closes when it
            // closes); they are part of its reconciliation.
            for t in txns.iter().filter(|t| settled(&t.status)) {
                let h = heartland_txn(t, tz)?;
                hl.entry(h.id.clone()).or_insert(h);
            }
            deposits.push(d);
        }
        self.assemble(
            format!("business date {date}"),
            hl,
            deposits,
            NsScope::Dates {
                from: date,
                to: date,
            },
            Some((date, date)),
        )
        .await
    }

    /// Both sides for one deposit.
    pub async fn for_deposit(&self, id: &str) -> Result<Input, FetchError> {
        let (d, txns) = self.deposit(id).await?;
        let mut hl = BTreeMap::new();
        for t in txns.iter().filter(|t| settled(&t.status)) {
            let h = heartland_txn(t, &self.opts.time_zone)?;
            hl.insert(h.id.clone(), h);
        }
        self.assemble(
            format!("deposit {id} (funded {})", d.date),
            hl,
            vec![d],
            NsScope::DepositLines,
            None,
        )
        .await
    }

    async fn assemble(
        &self,
        title: String,
        mut hl: BTreeMap<String, HeartlandTxn>,
        deposits: Vec<HeartlandDeposit>,
        scope: NsScope,
        dated: Option<(Date, Date)>,
    ) -> Result<Input, FetchError> {
        let w = jiff::Span::new().days(self.rules.date_window_days);
        let dates: Vec<Date> = hl
            .values()
            .map(|h| h.date)
            .chain(dated.map(|d| d.0))
            .chain(dated.map(|d| d.1))
            .collect();
        let (Some(lo), Some(hi)) = (dates.iter().min().copied(), dates.iter().max().copied())
        else {
            return Ok(Input {
                title,
                heartland: Vec::new(),
                heartland_deposits: deposits,
                netsuite: Vec::new(),
                netsuite_deposits: Vec::new(),
                scope,
                accepted: BTreeMap::new(),
            });
        };
        let (from, to) = (
            lo.checked_sub(w).unwrap_or(lo),
            hi.checked_add(w).unwrap_or(hi),
        );
        let eids: Vec<String> = hl
            .values()
            .flat_map(|h| self.rules.external_ids_for(h))
            .collect();
        let netsuite = self.netsuite_txns(&eids, from, to).await?;

        // A NetSuite posting in scope whose external id names a transaction of another day:
        // fetch that transaction, so it reads as "date differs" rather than "missing in Heartland".
        if let NsScope::Dates { from: sf, to: st } = &scope {
            let pre: Vec<String> = prefixes(
                &self
                    .rules
                    .sale_external_ids
                    .iter()
                    .chain(&self.rules.refund_external_ids)
                    .filter(|t| t.ends_with("{id}"))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let known: BTreeSet<String> = hl
                .values()
                .flat_map(|h| self.rules.external_ids_for(h))
                .collect();
            let mut wanted = BTreeSet::new();
            for n in netsuite.iter().filter(|n| n.date >= *sf && n.date <= *st) {
                let Some(eid) = n.external_id.as_deref().filter(|e| !known.contains(*e)) else {
                    continue;
                };
                if let Some(trn) = pre
                    .iter()
                    .find_map(|p| eid.strip_prefix(p.as_str()))
                    .filter(|t| safe_literal(t))
                {
                    wanted.insert(trn.to_string());
                }
            }
            for trn in wanted {
                match self.gp.get_transaction(&trn).await {
                    Ok(t) if settled(&t.status) => {
                        let h = heartland_txn(&t, &self.opts.time_zone)?;
                        hl.entry(h.id.clone()).or_insert(h);
                    }
                    Ok(_) => {}
                    Err(e)
                        if e.class() == heartsuite_core::ErrorClass::Data
                            || e.code() == Some("RESOURCE_NOT_FOUND") => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let currency_of: BTreeMap<String, String> = deposits
            .iter()
            .flat_map(|d| {
                self.rules
                    .deposit_external_ids_for(&d.id)
                    .into_iter()
                    .map(move |e| (e, d.net.code().to_string()))
            })
            .collect();
        let dep_eids: Vec<String> = currency_of.keys().cloned().collect();
        let netsuite_deposits = self
            .netsuite_deposits(&dep_eids, dated, &currency_of)
            .await?;
        Ok(Input {
            title,
            heartland: hl.into_values().collect(),
            heartland_deposits: deposits,
            netsuite,
            netsuite_deposits,
            scope,
            accepted: BTreeMap::new(),
        })
    }
}

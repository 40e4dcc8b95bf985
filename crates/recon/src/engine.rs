//! The matching engine: two lists of normalized records and the rules in, a report out. No I/O.
//!
//! Transaction level: each Heartland transaction is tried against the keys in the configured
//! order; a NetSuite record, once taken, cannot match a second item. Deposit level: each
//! Heartland deposit against the NetSuite deposit or journal entry under its external id, and
//! its transaction list against the deposit's payment lines. Then totals.

use crate::model::*;
use heartsuite_core::{Money, MoneyError};
use jiff::civil::Date;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    #[error("invalid rules: {0}")]
    Rules(String),
    #[error("{what}: {source}")]
    Money { what: String, source: MoneyError },
}

fn money_err(what: impl Into<String>) -> impl FnOnce(MoneyError) -> ReconError {
    let what = what.into();
    move |source| ReconError::Money { what, source }
}

fn days_between(a: Date, b: Date) -> i64 {
    // Dates a few thousand years apart do not occur; `until` failing means garbage input, which
    // must read as "far apart", never as "same day".
    a.until(b)
        .map(|s| i64::from(s.get_days()).abs())
        .unwrap_or(i64::MAX)
}

fn authcode_on(ns: &NetSuiteTxn, code: &str) -> bool {
    let code = code.trim();
    !code.is_empty()
        && [ns.memo.as_deref(), ns.other_ref.as_deref()]
            .into_iter()
            .flatten()
            .any(|t| t.contains(code))
}

fn fmt_days(d: i64) -> String {
    if d == 1 {
        "1 day".into()
    } else {
        format!("{d} days")
    }
}

struct Matcher<'a> {
    rules: &'a Rules,
    ns: &'a [NetSuiteTxn],
    by_eid: HashMap<&'a str, Vec<usize>>,
    taken: Vec<bool>,
}

impl<'a> Matcher<'a> {
    fn new(rules: &'a Rules, ns: &'a [NetSuiteTxn]) -> Self {
        let mut by_eid: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in ns.iter().enumerate() {
            if let Some(e) = n.external_id.as_deref().filter(|e| !e.is_empty()) {
                by_eid.entry(e).or_default().push(i);
            }
        }
        Self {
            rules,
            ns,
            by_eid,
            taken: vec![false; ns.len()],
        }
    }

    /// NetSuite records under one of the item's external ids, same direction, not yet taken.
    fn by_external_id(&self, t: &HeartlandTxn) -> (Vec<usize>, Option<String>) {
        for eid in self.rules.external_ids_for(t) {
            let hits: Vec<usize> = self
                .by_eid
                .get(eid.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| !self.taken[i] && self.ns[i].kind.direction() == t.direction)
                .collect();
            if !hits.is_empty() {
                return (hits, Some(eid));
            }
        }
        (Vec::new(), None)
    }

    /// The closest untaken candidate by date, then amount, then id; none when two are equally
    /// close (a guess between two equal candidates would be a coin toss a controller can't audit).
    fn by_amount_date_auth(&self, t: &HeartlandTxn) -> Option<usize> {
        let mut best: Vec<(i64, i64, usize)> = self
            .ns
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                !self.taken[*i]
                    && n.kind.direction() == t.direction
                    && n.amount.currency == t.amount.currency
                    && (n.amount.minor - t.amount.minor).abs() <= self.rules.amount_tolerance_minor
                    && days_between(n.date, t.date) <= self.rules.date_window_days
                    && (!self.rules.require_authcode
                        || t.authcode
                            .as_deref()
                            .is_some_and(|code| authcode_on(n, code)))
            })
            .map(|(i, n)| {
                (
                    days_between(n.date, t.date),
                    (n.amount.minor - t.amount.minor).abs(),
                    i,
                )
            })
            .collect();
        best.sort();
        match best.as_slice() {
            [] => None,
            [only] => Some(only.2),
            [a, b, ..] if (a.0, a.1) == (b.0, b.1) => None,
            [a, ..] => Some(a.2),
        }
    }
}

fn base_item(t: &HeartlandTxn) -> Item {
    Item {
        key: format!("txn:{}", t.id),
        level: Level::Transaction,
        status: Status::Matched,
        original_status: None,
        accepted_note: None,
        reason: String::new(),
        direction: Some(t.direction),
        brand: Some(t.brand.clone()),
        heartland_id: Some(t.id.clone()),
        heartland_amount: Some(t.amount),
        heartland_date: Some(t.date),
        deposit_id: t.deposit_id.clone(),
        netsuite_ids: Vec::new(),
        netsuite_external_id: None,
        netsuite_amount: None,
        netsuite_date: None,
        difference: None,
        matched_by: None,
    }
}

fn what(d: Direction) -> &'static str {
    match d {
        Direction::Sale => "payment or cash sale",
        Direction::Refund => "credit memo or cash refund",
    }
}

/// Compares one Heartland transaction with the one NetSuite record found for it.
fn judge(
    rules: &Rules,
    t: &HeartlandTxn,
    n: &NetSuiteTxn,
    by: MatchKey,
    item: &mut Item,
) -> Result<(), ReconError> {
    item.netsuite_ids = vec![n.id.clone()];
    item.netsuite_external_id = n.external_id.clone();
    item.netsuite_amount = Some(n.amount);
    item.netsuite_date = Some(n.date);
    item.matched_by = Some(by);
    if n.amount.currency != t.amount.currency {
        item.status = Status::AmountDiffers;
        item.reason = format!(
            "NetSuite {} {} is in {}, Heartland {} is in {}: correct the currency on the NetSuite record",
            n.kind.code(),
            n.id,
            n.amount.code(),
            t.id,
            t.amount.code()
        );
        return Ok(());
    }
    let diff = n
        .amount
        .checked_sub(t.amount)
        .map_err(money_err(format!("difference for {}", t.id)))?;
    item.difference = Some(diff);
    let days = days_between(n.date, t.date);
    let how = match by {
        MatchKey::ExternalId => format!("external id {}", n.external_id.as_deref().unwrap_or("")),
        MatchKey::AmountDateAuth => "amount, date and authorization code (the external id is not the one the flows write: check how it was posted)".into(),
    };
    if diff.minor.abs() > rules.amount_tolerance_minor {
        let dir = if diff.minor > 0 { "more" } else { "less" };
        item.status = Status::AmountDiffers;
        item.reason = format!(
            "NetSuite {} {} is {} {} than Heartland ({} vs {}); correct the NetSuite amount or accept the difference",
            n.kind.code(),
            n.id,
            Money::new(diff.minor.abs(), diff.currency),
            dir,
            n.amount,
            t.amount
        );
        if days > rules.date_window_days {
            item.reason
                .push_str(&format!("; the dates also differ by {}", fmt_days(days)));
        }
    } else if days > rules.date_window_days {
        item.status = Status::DateDiffers;
        item.reason = format!(
            "NetSuite {} {} is dated {} but Heartland's business date is {} ({} apart, window {}); correct the NetSuite date if it is in the wrong period",
            n.kind.code(),
            n.id,
            n.date,
            t.date,
            fmt_days(days),
            fmt_days(rules.date_window_days)
        );
    } else {
        item.status = Status::Matched;
        item.reason = format!("matched by {how}");
        if diff.minor != 0 {
            item.reason
                .push_str(&format!("; differs by {diff}, within the tolerance"));
        }
        if days != 0 {
            item.reason.push_str(&format!(
                "; dated {} apart, within the window",
                fmt_days(days)
            ));
        }
    }
    Ok(())
}

fn match_transactions(rules: &Rules, input: &Input) -> Result<(Vec<Item>, Vec<bool>), ReconError> {
    let mut m = Matcher::new(rules, &input.netsuite);
    let mut items = Vec::with_capacity(input.heartland.len());
    // One Heartland id twice (a list that overlapped pages) must not become two items.
    let mut seen = BTreeSet::new();
    for t in input.heartland.iter().filter(|t| seen.insert(t.id.clone())) {
        let mut item = base_item(t);
        let mut found = false;
        for key in &rules.keys {
            match key {
                MatchKey::ExternalId => {
                    let (hits, eid) = m.by_external_id(t);
                    match hits.as_slice() {
                        [] => continue,
                        [one] => {
                            m.taken[*one] = true;
                            judge(
                                rules,
                                t,
                                &input.netsuite[*one],
                                MatchKey::ExternalId,
                                &mut item,
                            )?;
                        }
                        many => {
                            for &i in many {
                                m.taken[i] = true;
                            }
                            let ids: Vec<String> =
                                many.iter().map(|&i| input.netsuite[i].id.clone()).collect();
                            let amounts: Vec<String> = many
                                .iter()
                                .map(|&i| input.netsuite[i].amount.to_string())
                                .collect();
                            item.status = Status::DuplicateInNetsuite;
                            item.netsuite_ids = ids.clone();
                            item.netsuite_external_id = eid.clone();
                            // The sum of the copies: what the ledger holds for this sale.
                            let mut total = input.netsuite[many[0]].amount;
                            for &i in &many[1..] {
                                total = total
                                    .checked_add(input.netsuite[i].amount)
                                    .map_err(money_err(format!("duplicates of {}", t.id)))?;
                            }
                            item.netsuite_amount = Some(total);
                            item.netsuite_date = Some(input.netsuite[many[0]].date);
                            item.matched_by = Some(MatchKey::ExternalId);
                            item.reason = format!(
                                "{} NetSuite records carry external id {} ({}; amounts {}): Heartland {} was posted {} times; void all but one",
                                many.len(),
                                eid.unwrap_or_default(),
                                ids.join(", "),
                                amounts.join(", "),
                                t.id,
                                many.len()
                            );
                        }
                    }
                    found = true;
                }
                MatchKey::AmountDateAuth => {
                    let Some(i) = m.by_amount_date_auth(t) else {
                        continue;
                    };
                    m.taken[i] = true;
                    judge(
                        rules,
                        t,
                        &input.netsuite[i],
                        MatchKey::AmountDateAuth,
                        &mut item,
                    )?;
                    found = true;
                }
            }
            if found {
                break;
            }
        }
        if !found {
            item.status = Status::MissingInNetsuite;
            let eids = rules.external_ids_for(t);
            item.reason = format!(
                "no NetSuite {} for Heartland {} ({} {} on {}{}); looked for external id {} and by amount/date/authorization code; re-drive it with `heartsuite reconcile --redrive txn:{}`",
                what(t.direction),
                t.id,
                t.brand,
                t.amount,
                t.date,
                t.authcode
                    .as_deref()
                    .map(|a| format!(", auth {a}"))
                    .unwrap_or_default(),
                if eids.is_empty() {
                    "(none configured)".into()
                } else {
                    eids.join(" / ")
                },
                t.id
            );
        }
        items.push(item);
    }
    Ok((items, m.taken))
}

/// NetSuite records nobody in Heartland accounts for, inside the scope.
fn orphans(input: &Input, taken: &[bool], ns_deposit_lines: &BTreeSet<String>) -> Vec<Item> {
    input
        .netsuite
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            !taken[*i]
                && match &input.scope {
                    NsScope::Dates { from, to } => n.date >= *from && n.date <= *to,
                    NsScope::DepositLines => ns_deposit_lines.contains(&n.id),
                }
        })
        .map(|(_, n)| Item {
            key: format!("netsuite:{}", n.id),
            level: Level::Transaction,
            status: Status::MissingInHeartland,
            original_status: None,
            accepted_note: None,
            reason: format!(
                "NetSuite {} {}{} ({} on {}) has no settled Heartland transaction{}; void it if it was posted in error, or find the sale it belongs to",
                n.kind.code(),
                n.id,
                n.external_id.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default(),
                n.amount,
                n.date,
                match &input.scope {
                    NsScope::Dates { .. } => " for this date",
                    NsScope::DepositLines => " in this deposit",
                }
            ),
            direction: Some(n.kind.direction()),
            brand: n.brand.clone(),
            heartland_id: None,
            heartland_amount: None,
            heartland_date: None,
            deposit_id: None,
            netsuite_ids: vec![n.id.clone()],
            netsuite_external_id: n.external_id.clone(),
            netsuite_amount: Some(n.amount),
            netsuite_date: Some(n.date),
            difference: None,
            matched_by: None,
        })
        .collect()
}

fn deposit_items(
    rules: &Rules,
    input: &Input,
    txn_items: &[Item],
) -> Result<(Vec<DepositLine>, Vec<Item>), ReconError> {
    let mut lines = Vec::new();
    let mut items = Vec::new();
    // Heartland TRN → the NetSuite record it matched, to check the deposit's payment lines.
    let posted: HashMap<&str, &[String]> = txn_items
        .iter()
        .filter(|i| i.status != Status::MissingInNetsuite)
        .filter_map(|i| Some((i.heartland_id.as_deref()?, i.netsuite_ids.as_slice())))
        .collect();
    // Refunds are credit memos, which a deposit cannot carry on a payment line (they come out
    // of it as cash-back lines, checked through the gross); only sales are looked for.
    let refunds: BTreeSet<&str> = input
        .heartland
        .iter()
        .filter(|t| t.direction == Direction::Refund)
        .map(|t| t.id.as_str())
        .collect();
    let mut taken = vec![false; input.netsuite_deposits.len()];
    for d in &input.heartland_deposits {
        let eids = rules.deposit_external_ids_for(&d.id);
        let hits: Vec<usize> = input
            .netsuite_deposits
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                !taken[*i]
                    && n.external_id
                        .as_deref()
                        .is_some_and(|e| eids.iter().any(|x| x == e))
            })
            .map(|(i, _)| i)
            .collect();
        for &i in &hits {
            taken[i] = true;
        }
        let gross = d
            .sales
            .checked_sub(d.refunds)
            .map_err(money_err(format!("deposit {} gross", d.id)))?;
        let mut line = DepositLine {
            deposit_id: d.id.clone(),
            date: d.date,
            status: Status::Matched,
            reason: String::new(),
            heartland_sales: d.sales,
            heartland_refunds: d.refunds,
            heartland_gross: gross,
            heartland_fees: d.fees,
            heartland_chargebacks: d.chargebacks,
            heartland_net: d.net,
            netsuite_id: None,
            netsuite_kind: None,
            netsuite_gross: None,
            netsuite_fees: None,
            netsuite_chargebacks: None,
            netsuite_net: None,
            lines_missing: Vec::new(),
            lines_extra: Vec::new(),
        };
        match hits.as_slice() {
            [] => {
                line.status = Status::MissingInNetsuite;
                line.reason = format!(
                    "no NetSuite deposit or journal entry with external id {} for Heartland deposit {} (net {} on {}); the bank statement line has nothing to match",
                    eids.join(" / "),
                    d.id,
                    d.net,
                    d.date
                );
            }
            [one] => {
                let n = &input.netsuite_deposits[*one];
                line.netsuite_id = Some(n.id.clone());
                line.netsuite_kind = Some(n.kind);
                line.netsuite_gross = Some(n.gross);
                line.netsuite_fees = Some(n.fees);
                line.netsuite_chargebacks = Some(n.chargebacks);
                line.netsuite_net = Some(n.net);
                let mut diffs = Vec::new();
                for (label, h, s) in [
                    ("net", d.net, n.net),
                    ("gross (sales − refunds)", gross, n.gross),
                    ("fees", d.fees, n.fees),
                    ("chargebacks", d.chargebacks, n.chargebacks),
                ] {
                    let diff = s
                        .checked_sub(h)
                        .map_err(money_err(format!("deposit {} {label}", d.id)))?;
                    if diff.minor.abs() > rules.amount_tolerance_minor {
                        diffs.push(format!(
                            "{label}: NetSuite {s} vs Heartland {h} (off by {diff})"
                        ));
                    }
                }
                if n.kind == NsDepositKind::Deposit {
                    let on_deposit: BTreeSet<&str> =
                        n.payment_ids.iter().map(String::as_str).collect();
                    let mut expected = BTreeSet::new();
                    for trn in d
                        .transactions
                        .iter()
                        .filter(|t| !refunds.contains(t.as_str()))
                    {
                        match posted.get(trn.as_str()) {
                            Some(ids) if ids.iter().any(|i| on_deposit.contains(i.as_str())) => {
                                expected.extend(ids.iter().map(String::as_str));
                            }
                            Some(ids) => {
                                expected.extend(ids.iter().map(String::as_str));
                                line.lines_missing.push(trn.clone());
                            }
                            None => line.lines_missing.push(trn.clone()),
                        }
                    }
                    line.lines_extra = n
                        .payment_ids
                        .iter()
                        .filter(|p| !expected.contains(p.as_str()))
                        .cloned()
                        .collect();
                }
                let days = days_between(n.date, d.date);
                if !diffs.is_empty() {
                    line.status = Status::AmountDiffers;
                    line.reason = format!(
                        "NetSuite {} differs from Heartland deposit {}: {}",
                        n.id,
                        d.id,
                        diffs.join("; ")
                    );
                } else if !line.lines_missing.is_empty() || !line.lines_extra.is_empty() {
                    line.status = Status::AmountDiffers;
                    line.reason = format!(
                        "NetSuite deposit {} totals agree but its payment lines do not: {} Heartland transaction(s) not on it ({}), {} payment(s) on it Heartland does not list ({})",
                        n.id,
                        line.lines_missing.len(),
                        line.lines_missing.join(", "),
                        line.lines_extra.len(),
                        line.lines_extra.join(", ")
                    );
                } else if days > rules.date_window_days {
                    line.status = Status::DateDiffers;
                    line.reason = format!(
                        "NetSuite {} is dated {}, the deposit was funded {} ({} apart)",
                        n.id,
                        n.date,
                        d.date,
                        fmt_days(days)
                    );
                } else {
                    line.reason = format!("NetSuite {} equals the deposit: net {}", n.id, n.net);
                }
            }
            many => {
                let ids: Vec<String> = many
                    .iter()
                    .map(|&i| input.netsuite_deposits[i].id.clone())
                    .collect();
                line.status = Status::DuplicateInNetsuite;
                line.netsuite_id = Some(ids.join(","));
                line.reason = format!(
                    "{} NetSuite records for Heartland deposit {} ({}): the bank line is booked {} times; void all but one",
                    many.len(),
                    d.id,
                    ids.join(", "),
                    many.len()
                );
            }
        }
        items.push(Item {
            key: format!("deposit:{}", d.id),
            level: Level::Deposit,
            status: line.status,
            original_status: None,
            accepted_note: None,
            reason: line.reason.clone(),
            direction: None,
            brand: None,
            heartland_id: Some(d.id.clone()),
            heartland_amount: Some(d.net),
            heartland_date: Some(d.date),
            deposit_id: Some(d.id.clone()),
            netsuite_ids: line
                .netsuite_id
                .iter()
                .flat_map(|s| s.split(',').map(str::to_string))
                .collect(),
            netsuite_external_id: eids.first().cloned(),
            netsuite_amount: line.netsuite_net,
            netsuite_date: hits.first().map(|&i| input.netsuite_deposits[i].date),
            difference: match line.netsuite_net {
                Some(n) => Some(
                    n.checked_sub(d.net)
                        .map_err(money_err(format!("deposit {} net", d.id)))?,
                ),
                None => None,
            },
            matched_by: (!hits.is_empty()).then_some(MatchKey::ExternalId),
        });
        lines.push(line);
    }
    // A NetSuite deposit under our external id prefix that no Heartland deposit claims.
    for (i, n) in input
        .netsuite_deposits
        .iter()
        .enumerate()
        .filter(|(i, _)| !taken[*i])
    {
        let in_scope = match &input.scope {
            NsScope::Dates { from, to } => n.date >= *from && n.date <= *to,
            NsScope::DepositLines => false,
        };
        if !in_scope {
            continue;
        }
        items.push(Item {
            key: format!("netsuite:{}", n.id),
            level: Level::Deposit,
            status: Status::MissingInHeartland,
            original_status: None,
            accepted_note: None,
            reason: format!(
                "NetSuite {} {}{} (net {} on {}) matches no funded Heartland deposit; check it against the bank statement",
                if n.kind == NsDepositKind::Deposit { "deposit" } else { "journal entry" },
                n.id,
                n.external_id.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default(),
                n.net,
                n.date
            ),
            direction: None,
            brand: None,
            heartland_id: None,
            heartland_amount: None,
            heartland_date: None,
            deposit_id: None,
            netsuite_ids: vec![input.netsuite_deposits[i].id.clone()],
            netsuite_external_id: n.external_id.clone(),
            netsuite_amount: Some(n.net),
            netsuite_date: Some(n.date),
            difference: None,
            matched_by: None,
        });
    }
    Ok((lines, items))
}

fn add(map: &mut BTreeMap<String, Money>, m: Money, what: &str) -> Result<(), ReconError> {
    let e = map
        .entry(m.code().to_string())
        .or_insert(Money::new(0, m.currency));
    *e = e.checked_add(m).map_err(money_err(what.to_string()))?;
    Ok(())
}

/// Runs the reconciliation.
pub fn reconcile(rules: &Rules, input: &Input) -> Result<Report, ReconError> {
    rules.validate_matching().map_err(ReconError::Rules)?;
    let (mut items, taken) = match_transactions(rules, input)?;
    // The payments on the matched NetSuite deposit records: the scope of a deposit run.
    let eids: BTreeSet<String> = input
        .heartland_deposits
        .iter()
        .flat_map(|d| rules.deposit_external_ids_for(&d.id))
        .collect();
    let deposit_lines: BTreeSet<String> = input
        .netsuite_deposits
        .iter()
        .filter(|n| n.external_id.as_ref().is_some_and(|e| eids.contains(e)))
        .flat_map(|n| n.payment_ids.iter().cloned())
        .collect();
    items.extend(orphans(input, &taken, &deposit_lines));
    let (mut deposits, dep_items) = deposit_items(rules, input, &items)?;
    items.extend(dep_items);

    for item in &mut items {
        if item.status.is_exception()
            && let Some(note) = input.accepted.get(&item.key)
        {
            item.original_status = Some(item.status);
            item.status = Status::Accepted;
            item.accepted_note = Some(note.clone());
        }
    }
    for line in &mut deposits {
        if line.status.is_exception()
            && input
                .accepted
                .contains_key(&format!("deposit:{}", line.deposit_id))
        {
            line.status = Status::Accepted;
        }
    }

    let mut by_status: BTreeMap<String, Tally> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), Tally::default()))
        .collect();
    let mut by_brand: BTreeMap<String, BrandTotals> = BTreeMap::new();
    let mut deposits_by_status: BTreeMap<String, u64> = BTreeMap::new();
    for item in &items {
        // A deposit's net is not a sale: deposits are counted apart, their money is in
        // `deposits`.
        if item.level != Level::Transaction {
            *deposits_by_status
                .entry(item.status.as_str().to_string())
                .or_default() += 1;
            continue;
        }
        let tally = by_status
            .entry(item.status.as_str().to_string())
            .or_default();
        tally.count += 1;
        if let Some(m) = item.heartland_amount.or(item.netsuite_amount) {
            add(&mut tally.amounts, m, "status totals")?;
        }
        let brand = item.brand.clone().unwrap_or_else(|| "UNKNOWN".into());
        let b = by_brand.entry(brand).or_default();
        let refund = item.direction == Some(Direction::Refund);
        if let Some(m) = item.heartland_amount {
            b.heartland_count += 1;
            add(
                if refund {
                    &mut b.heartland_refunds
                } else {
                    &mut b.heartland_sales
                },
                m,
                "brand totals",
            )?;
        }
        // A duplicate's NetSuite amount is already the sum of its copies; count each copy.
        if let Some(m) = item.netsuite_amount {
            b.netsuite_count += item.netsuite_ids.len().max(1) as u64;
            add(
                if refund {
                    &mut b.netsuite_refunds
                } else {
                    &mut b.netsuite_sales
                },
                m,
                "brand totals",
            )?;
        }
    }
    // Transactions first (exceptions before matches), then deposits; stable within a status.
    items.sort_by(|a, b| {
        let rank = |i: &Item| {
            (
                i.level == Level::Deposit,
                !i.status.is_exception(),
                i.status,
            )
        };
        rank(a).cmp(&rank(b)).then_with(|| a.key.cmp(&b.key))
    });
    Ok(Report {
        title: input.title.clone(),
        rules: rules.clone(),
        items,
        deposits,
        by_status,
        deposits_by_status,
        by_brand,
    })
}

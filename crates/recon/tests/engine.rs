//! The matching engine without HTTP: every status, the tolerance and date-window edges, keys in
//! order, deposits one-to-one and one-to-many, totals to the cent, accepted items, rendering.

use heartsuite_core::Money;
use heartsuite_recon::*;
use jiff::civil::{Date, date};
use std::collections::BTreeMap;

fn usd(minor: i64) -> Money {
    Money::from_minor_str(&minor.to_string(), "USD").unwrap()
}

const D: Date = date(2026, 3, 14);

fn hl(id: &str, minor: i64, day: Date) -> HeartlandTxn {
    HeartlandTxn {
        id: id.into(),
        direction: Direction::Sale,
        amount: usd(minor),
        date: day,
        brand: "VISA".into(),
        authcode: Some(format!("A{}", &id[4..])),
        reference: None,
        deposit_id: Some("DEP_1".into()),
        status: "FUNDED".into(),
    }
}

fn refund(id: &str, minor: i64) -> HeartlandTxn {
    HeartlandTxn {
        direction: Direction::Refund,
        brand: "MASTERCARD".into(),
        ..hl(id, minor, D)
    }
}

fn ns(id: &str, eid: Option<&str>, minor: i64, day: Date) -> NetSuiteTxn {
    NetSuiteTxn {
        id: id.into(),
        kind: NsKind::CustomerPayment,
        tran_id: None,
        external_id: eid.map(str::to_string),
        amount: usd(minor),
        date: day,
        memo: None,
        other_ref: None,
        brand: Some("VISA".into()),
    }
}

fn input(h: Vec<HeartlandTxn>, n: Vec<NetSuiteTxn>) -> Input {
    Input {
        title: "test".into(),
        heartland: h,
        heartland_deposits: vec![],
        netsuite: n,
        netsuite_deposits: vec![],
        scope: NsScope::Dates { from: D, to: D },
        accepted: BTreeMap::new(),
    }
}

fn run(rules: &Rules, i: &Input) -> Report {
    reconcile(rules, i).unwrap()
}

fn status(r: &Report, key: &str) -> Status {
    r.item(key)
        .unwrap_or_else(|| panic!("no item {key} in {:#?}", r.items))
        .status
}

#[test]
fn matched_by_external_id_to_the_cent() {
    let r = run(
        &Rules::default(),
        &input(
            vec![hl("TRN_1", 12999, D)],
            vec![ns("701", Some("hs-pay-TRN_1"), 12999, D)],
        ),
    );
    let i = r.item("txn:TRN_1").unwrap();
    assert_eq!(i.status, Status::Matched);
    assert_eq!(i.netsuite_ids, vec!["701"]);
    assert_eq!(i.difference, Some(usd(0)));
    assert_eq!(i.matched_by, Some(MatchKey::ExternalId));
    assert_eq!(r.count(Status::Matched), 1);
    assert_eq!(r.by_status["matched"].amounts["USD"], usd(12999));
}

#[test]
fn amount_differs_names_the_difference_and_the_tolerance_edge_is_inclusive() {
    let i = input(
        vec![hl("TRN_1", 10000, D)],
        vec![ns("701", Some("hs-pay-TRN_1"), 10003, D)],
    );
    let strict = run(&Rules::default(), &i);
    let item = strict.item("txn:TRN_1").unwrap();
    assert_eq!(item.status, Status::AmountDiffers);
    assert_eq!(item.difference, Some(usd(3)));
    assert!(item.reason.contains("0.03 USD more"), "{}", item.reason);

    let at_edge = run(
        &Rules {
            amount_tolerance_minor: 3,
            ..Rules::default()
        },
        &i,
    );
    assert_eq!(
        status(&at_edge, "txn:TRN_1"),
        Status::Matched,
        "a difference equal to the tolerance is matched"
    );
    assert!(
        at_edge
            .item("txn:TRN_1")
            .unwrap()
            .reason
            .contains("within the tolerance")
    );
    let below = run(
        &Rules {
            amount_tolerance_minor: 2,
            ..Rules::default()
        },
        &i,
    );
    assert_eq!(status(&below, "txn:TRN_1"), Status::AmountDiffers);

    // Less in NetSuite reads "less".
    let less = run(
        &Rules::default(),
        &input(
            vec![hl("TRN_1", 10000, D)],
            vec![ns("701", Some("hs-pay-TRN_1"), 9000, D)],
        ),
    );
    let item = less.item("txn:TRN_1").unwrap();
    assert_eq!(item.difference, Some(usd(-1000)));
    assert!(item.reason.contains("10.00 USD less"), "{}", item.reason);
}

#[test]
fn date_window_edges() {
    let two_days = date(2026, 3, 16);
    let i = input(
        vec![hl("TRN_1", 500, D)],
        vec![ns("701", Some("hs-pay-TRN_1"), 500, two_days)],
    );
    assert_eq!(
        status(
            &run(
                &Rules {
                    date_window_days: 2,
                    ..Rules::default()
                },
                &i
            ),
            "txn:TRN_1"
        ),
        Status::Matched
    );
    let r = run(
        &Rules {
            date_window_days: 1,
            ..Rules::default()
        },
        &i,
    );
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(item.status, Status::DateDiffers);
    assert!(
        item.reason.contains("2026-03-16") && item.reason.contains("2 days apart"),
        "{}",
        item.reason
    );
    // Zero window: the next day already differs.
    let next = input(
        vec![hl("TRN_1", 500, D)],
        vec![ns("701", Some("hs-pay-TRN_1"), 500, date(2026, 3, 15))],
    );
    assert_eq!(
        status(
            &run(
                &Rules {
                    date_window_days: 0,
                    ..Rules::default()
                },
                &next
            ),
            "txn:TRN_1"
        ),
        Status::DateDiffers
    );
    // Amount wins over date, and the reason mentions both.
    let both = input(
        vec![hl("TRN_1", 500, D)],
        vec![ns("701", Some("hs-pay-TRN_1"), 400, two_days)],
    );
    let r = run(&Rules::default(), &both);
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(item.status, Status::AmountDiffers);
    assert!(item.reason.contains("dates also differ"), "{}", item.reason);
}

#[test]
fn missing_in_netsuite_says_how_to_redrive() {
    let r = run(&Rules::default(), &input(vec![hl("TRN_1", 500, D)], vec![]));
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(item.status, Status::MissingInNetsuite);
    assert!(
        item.reason.contains("--redrive txn:TRN_1") && item.reason.contains("hs-pay-TRN_1"),
        "{}",
        item.reason
    );
    assert_eq!(r.by_status["missing_in_netsuite"].amounts["USD"], usd(500));
}

#[test]
fn missing_in_heartland_only_inside_the_scope() {
    let other_day = date(2026, 3, 13);
    let r = run(
        &Rules::default(),
        &input(
            vec![],
            vec![
                ns("701", Some("hs-pay-TRN_X"), 500, D),
                ns("702", Some("hs-pay-TRN_Y"), 700, other_day),
            ],
        ),
    );
    assert_eq!(status(&r, "netsuite:701"), Status::MissingInHeartland);
    assert!(
        r.item("netsuite:702").is_none(),
        "a record outside the date scope was only a candidate"
    );
}

#[test]
fn duplicate_in_netsuite_sums_the_copies() {
    let r = run(
        &Rules::default(),
        &input(
            vec![hl("TRN_1", 2500, D)],
            vec![
                ns("701", Some("hs-pay-TRN_1"), 2500, D),
                ns("702", Some("hs-pay-TRN_1"), 2500, D),
            ],
        ),
    );
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(item.status, Status::DuplicateInNetsuite);
    assert_eq!(item.netsuite_ids, vec!["701", "702"]);
    assert_eq!(item.netsuite_amount, Some(usd(5000)));
    assert!(item.reason.contains("void all but one"), "{}", item.reason);
    assert!(
        r.item("netsuite:702").is_none(),
        "both copies belong to the duplicate item"
    );
    let visa = &r.by_brand["VISA"];
    assert_eq!((visa.heartland_count, visa.netsuite_count), (1, 2));
    assert_eq!(visa.netsuite_sales["USD"], usd(5000));
}

#[test]
fn amount_date_auth_key_and_its_edges() {
    let mut n = ns("701", Some("manual-1"), 1999, date(2026, 3, 15));
    n.memo = Some("GP-API auth A1 card sale".into());
    let r = run(
        &Rules::default(),
        &input(vec![hl("TRN_1", 1999, D)], vec![n.clone()]),
    );
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(
        (item.status, item.matched_by),
        (Status::Matched, Some(MatchKey::AmountDateAuth))
    );

    // Without the authorization code on the NetSuite side there is no match…
    let mut no_auth = n.clone();
    no_auth.memo = None;
    let r = run(
        &Rules::default(),
        &input(vec![hl("TRN_1", 1999, D)], vec![no_auth.clone()]),
    );
    assert_eq!(status(&r, "txn:TRN_1"), Status::MissingInNetsuite);
    // …unless the rules do not require it.
    let r = run(
        &Rules {
            require_authcode: false,
            ..Rules::default()
        },
        &input(vec![hl("TRN_1", 1999, D)], vec![no_auth]),
    );
    assert_eq!(status(&r, "txn:TRN_1"), Status::Matched);

    // Outside the window or the tolerance: no candidate.
    let mut far = n.clone();
    far.date = date(2026, 3, 16);
    assert_eq!(
        status(
            &run(
                &Rules::default(),
                &input(vec![hl("TRN_1", 1999, D)], vec![far])
            ),
            "txn:TRN_1"
        ),
        Status::MissingInNetsuite
    );
    let mut off = n.clone();
    off.amount = usd(2000);
    assert_eq!(
        status(
            &run(
                &Rules::default(),
                &input(vec![hl("TRN_1", 1999, D)], vec![off.clone()])
            ),
            "txn:TRN_1"
        ),
        Status::MissingInNetsuite
    );
    let r = run(
        &Rules {
            amount_tolerance_minor: 1,
            ..Rules::default()
        },
        &input(vec![hl("TRN_1", 1999, D)], vec![off]),
    );
    assert_eq!(status(&r, "txn:TRN_1"), Status::Matched);

    // Order of evaluation: with only the external id key, the memo match is not tried.
    let r = run(
        &Rules {
            keys: vec![MatchKey::ExternalId],
            ..Rules::default()
        },
        &input(vec![hl("TRN_1", 1999, D)], vec![n]),
    );
    assert_eq!(status(&r, "txn:TRN_1"), Status::MissingInNetsuite);
}

#[test]
fn a_refund_never_matches_a_payment() {
    let mut cm = ns("801", Some("hs-cm-TRN_R"), 700, D);
    cm.kind = NsKind::CreditMemo;
    let pay = ns("802", Some("hs-cm-TRN_R"), 700, D);
    let r = run(
        &Rules::default(),
        &input(vec![refund("TRN_R", 700)], vec![cm, pay]),
    );
    let item = r.item("txn:TRN_R").unwrap();
    assert_eq!(
        (item.status, item.netsuite_ids.clone()),
        (Status::Matched, vec!["801".to_string()])
    );
    assert_eq!(status(&r, "netsuite:802"), Status::MissingInHeartland);
    assert_eq!(r.by_brand["MASTERCARD"].heartland_refunds["USD"], usd(700));
}

#[test]
fn ambiguous_amount_matches_are_not_guessed() {
    let mut a = ns("701", None, 1000, D);
    a.memo = Some("auth A1".into());
    let mut b = ns("702", None, 1000, D);
    b.memo = Some("auth A1".into());
    let r = run(
        &Rules::default(),
        &input(vec![hl("TRN_1", 1000, D)], vec![a, b]),
    );
    assert_eq!(status(&r, "txn:TRN_1"), Status::MissingInNetsuite);
}

#[test]
fn the_reference_template_finds_a_pos_cash_sale() {
    // A POS card sale: GP-API reference POS-<ticket>, NetSuite cash sale hs-sale-<ticket>.
    let mut t = hl("TRN_1", 4200, D);
    t.reference = Some("POS-88".into());
    let mut cs = ns("901", Some("hs-sale-88"), 4200, D);
    cs.kind = NsKind::CashSale;
    let r = run(&Rules::default(), &input(vec![t.clone()], vec![cs.clone()]));
    assert_eq!(status(&r, "txn:TRN_1"), Status::Matched);
    assert_eq!(
        Rules::default().external_ids_for(&t),
        vec!["hs-pay-TRN_1", "hs-sale-88"]
    );
    // A reference that is not a POS ticket (a web order) names no cash sale.
    t.reference = Some("web-88".into());
    assert_eq!(Rules::default().external_ids_for(&t), vec!["hs-pay-TRN_1"]);
}

fn hl_deposit(txns: &[&str]) -> HeartlandDeposit {
    HeartlandDeposit {
        id: "DEP_1".into(),
        date: date(2026, 3, 15),
        status: "FUNDED".into(),
        sales: usd(30000),
        refunds: usd(1000),
        fees: usd(870),
        chargebacks: usd(0),
        net: usd(28130),
        transactions: txns.iter().map(|s| s.to_string()).collect(),
    }
}

fn ns_deposit(id: &str, kind: NsDepositKind, net: i64, payments: &[&str]) -> NetSuiteDeposit {
    NetSuiteDeposit {
        id: id.into(),
        kind,
        external_id: Some("hs-dep-DEP_1".into()),
        date: date(2026, 3, 15),
        net: usd(net),
        gross: usd(29000),
        fees: usd(29000 - net),
        chargebacks: usd(0),
        payment_ids: payments.iter().map(|s| s.to_string()).collect(),
    }
}

fn deposit_input(n_deposits: Vec<NetSuiteDeposit>) -> Input {
    let mut i = input(
        vec![
            hl("TRN_1", 10000, D),
            hl("TRN_2", 20000, D),
            refund("TRN_3", 1000),
        ],
        vec![
            ns("701", Some("hs-pay-TRN_1"), 10000, D),
            ns("702", Some("hs-pay-TRN_2"), 20000, D),
            {
                let mut c = ns("703", Some("hs-cm-TRN_3"), 1000, D);
                c.kind = NsKind::CreditMemo;
                c
            },
        ],
    );
    i.heartland_deposits = vec![hl_deposit(&["TRN_1", "TRN_2", "TRN_3"])];
    i.netsuite_deposits = n_deposits;
    i
}

#[test]
fn deposit_one_to_many_matches_and_checks_payment_lines() {
    let r = run(
        &Rules::default(),
        &deposit_input(vec![ns_deposit(
            "1500",
            NsDepositKind::Deposit,
            28130,
            // The refund's credit memo (703) is not a payment line: it leaves as cash back.
            &["701", "702"],
        )]),
    );
    let d = &r.deposits[0];
    assert_eq!(d.status, Status::Matched, "{}", d.reason);
    assert_eq!(
        (d.heartland_gross, d.netsuite_gross),
        (usd(29000), Some(usd(29000)))
    );
    assert_eq!(
        (d.heartland_fees, d.netsuite_fees),
        (usd(870), Some(usd(870)))
    );
    assert_eq!(status(&r, "deposit:DEP_1"), Status::Matched);

    // A payment missing from the NetSuite deposit's lines, and a stranger on them.
    let r = run(
        &Rules::default(),
        &deposit_input(vec![ns_deposit(
            "1500",
            NsDepositKind::Deposit,
            28130,
            &["701", "703", "999"],
        )]),
    );
    let d = &r.deposits[0];
    assert_eq!(d.status, Status::AmountDiffers);
    assert_eq!(d.lines_missing, vec!["TRN_2"]);
    assert_eq!(
        d.lines_extra,
        vec!["703", "999"],
        "a credit memo on a payment line is extra"
    );
}

#[test]
fn deposit_statuses() {
    // Journal entry with the wrong net.
    let r = run(
        &Rules::default(),
        &deposit_input(vec![ns_deposit(
            "1500",
            NsDepositKind::JournalEntry,
            28100,
            &[],
        )]),
    );
    let d = &r.deposits[0];
    assert_eq!(d.status, Status::AmountDiffers);
    assert!(
        d.reason
            .contains("net: NetSuite 281.00 USD vs Heartland 281.30 USD (off by -0.30 USD)"),
        "{}",
        d.reason
    );
    assert_eq!(r.item("deposit:DEP_1").unwrap().difference, Some(usd(-30)));
    // Missing, duplicate.
    let r = run(&Rules::default(), &deposit_input(vec![]));
    assert_eq!(r.deposits[0].status, Status::MissingInNetsuite);
    let r = run(
        &Rules::default(),
        &deposit_input(vec![
            ns_deposit("1500", NsDepositKind::JournalEntry, 28130, &[]),
            ns_deposit("1501", NsDepositKind::JournalEntry, 28130, &[]),
        ]),
    );
    assert_eq!(r.deposits[0].status, Status::DuplicateInNetsuite);
    assert_eq!(
        r.item("deposit:DEP_1").unwrap().netsuite_ids,
        vec!["1500", "1501"]
    );
    // Dated far from the funding date.
    let mut late = ns_deposit("1500", NsDepositKind::JournalEntry, 28130, &[]);
    late.date = date(2026, 3, 20);
    let r = run(&Rules::default(), &deposit_input(vec![late]));
    assert_eq!(r.deposits[0].status, Status::DateDiffers);
}

#[test]
fn accepted_items_show_as_accepted_with_their_note() {
    let mut i = input(
        vec![hl("TRN_1", 10000, D)],
        vec![ns("701", Some("hs-pay-TRN_1"), 10003, D)],
    );
    i.accepted
        .insert("txn:TRN_1".into(), "rounding agreed with the bank".into());
    // An accepted key for an item that is matched changes nothing.
    i.accepted.insert("txn:TRN_9".into(), "n/a".into());
    let r = run(&Rules::default(), &i);
    let item = r.item("txn:TRN_1").unwrap();
    assert_eq!(
        (item.status, item.original_status),
        (Status::Accepted, Some(Status::AmountDiffers))
    );
    assert_eq!(
        item.accepted_note.as_deref(),
        Some("rounding agreed with the bank")
    );
    assert_eq!(r.count(Status::Accepted), 1);
    assert_eq!(r.exceptions().count(), 0);
}

#[test]
fn invalid_rules_are_named() {
    let e = reconcile(
        &Rules {
            keys: vec![],
            ..Rules::default()
        },
        &input(vec![], vec![]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("recon.keys"), "{e}");
    let e = reconcile(
        &Rules {
            amount_tolerance_minor: -1,
            ..Rules::default()
        },
        &input(vec![], vec![]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("amount_tolerance_minor"), "{e}");
}

#[test]
fn every_format_renders_and_html_is_escaped() {
    let mut n = ns("701", Some("hs-pay-TRN_1"), 10003, D);
    n.memo = Some("<script>alert(1)</script>".into());
    let mut i = input(
        vec![hl("TRN_1", 10000, D), hl("TRN_2", 500, D)],
        vec![n, ns("702", Some("hs-pay-TRN_2"), 500, D)],
    );
    i.title = "date <2026-03-14> & co".into();
    let r = run(&Rules::default(), &i);
    let html = render(&r, Format::Html);
    assert!(html.contains("date &lt;2026-03-14&gt; &amp; co") && !html.contains("<2026-03-14>"));
    let (s, e, m) = (
        html.find("<h2>Summary").unwrap(),
        html.find("<h2>Exceptions").unwrap(),
        html.find("<h2>Matched").unwrap(),
    );
    assert!(
        s < e && e < m,
        "summary, then exceptions, then matched detail"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
    assert_eq!(json["by_status"]["amount_differs"]["count"], 1);
    let csv = render(&r, Format::Csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with("exception,txn:TRN_1,transaction,amount_differs,")
            && lines[1].contains(",100.00,USD,"),
        "{}",
        lines[1]
    );
    let table = render(&r, Format::Table);
    assert!(table.find("Exceptions (1)").unwrap() < table.find("Matched (1)").unwrap());
}

//! The report in four formats. Every format puts the summary first, then the exceptions, then
//! the matched detail, so the first screen (or printed page) is what needs a person.

use crate::model::*;
use heartsuite_core::Money;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(format!(
                "unknown format `{other}`; use table, json, csv or html"
            )),
        }
    }
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        // Serializing plain data with string keys cannot fail; an empty object is never shown.
        Format::Json => serde_json::to_string_pretty(report)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        Format::Csv => csv(report),
        Format::Html => html(report),
    }
}

fn amounts(m: &BTreeMap<String, Money>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.values()
        .map(Money::to_string)
        .collect::<Vec<_>>()
        .join(" + ")
}

fn opt(m: Option<Money>) -> String {
    m.map_or_else(|| "-".into(), |m| m.to_string())
}

fn date(d: Option<jiff::civil::Date>) -> String {
    d.map_or_else(|| "-".into(), |d| d.to_string())
}

/// Items in print order: exceptions, accepted, matched.
fn ordered(report: &Report) -> [Vec<&Item>; 3] {
    let ex = report
        .items
        .iter()
        .filter(|i| i.status.is_exception())
        .collect();
    let acc = report
        .items
        .iter()
        .filter(|i| i.status == Status::Accepted)
        .collect();
    let ok = report
        .items
        .iter()
        .filter(|i| i.status == Status::Matched)
        .collect();
    [ex, acc, ok]
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Reconciliation — {}", r.title);
    let _ = writeln!(
        s,
        "rules: keys {:?}, tolerance {} minor units, date window {} day(s)\n",
        r.rules.keys, r.rules.amount_tolerance_minor, r.rules.date_window_days
    );
    let _ = writeln!(
        s,
        "{:<22} {:>6} {:>9}  amount",
        "status", "count", "deposits"
    );
    for (status, t) in &r.by_status {
        let deps = r.deposits_by_status.get(status).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:<22} {:>6} {:>9}  {}",
            status,
            t.count,
            deps,
            amounts(&t.amounts)
        );
    }
    let _ = writeln!(
        s,
        "\n{:<12} {:>5} {:>24} {:>24} {:>5} {:>24} {:>24}",
        "brand", "HL #", "HL sales", "HL refunds", "NS #", "NS sales", "NS refunds"
    );
    for (brand, b) in &r.by_brand {
        let _ = writeln!(
            s,
            "{:<12} {:>5} {:>24} {:>24} {:>5} {:>24} {:>24}",
            brand,
            b.heartland_count,
            amounts(&b.heartland_sales),
            amounts(&b.heartland_refunds),
            b.netsuite_count,
            amounts(&b.netsuite_sales),
            amounts(&b.netsuite_refunds)
        );
    }
    if !r.deposits.is_empty() {
        let _ = writeln!(s, "\nDeposits");
        for d in &r.deposits {
            let _ = writeln!(
                s,
                "{} {} [{}] NetSuite {}",
                d.deposit_id,
                d.date,
                d.status.as_str(),
                d.netsuite_id.as_deref().unwrap_or("-")
            );
            let _ = writeln!(s, "  {:<14} {:>20} {:>20}", "", "Heartland", "NetSuite");
            for (label, h, n) in [
                ("gross", d.heartland_gross, d.netsuite_gross),
                ("fees", d.heartland_fees, d.netsuite_fees),
                (
                    "chargebacks",
                    d.heartland_chargebacks,
                    d.netsuite_chargebacks,
                ),
                ("net", d.heartland_net, d.netsuite_net),
            ] {
                let _ = writeln!(s, "  {:<14} {:>20} {:>20}", label, h.to_string(), opt(n));
            }
            let _ = writeln!(
                s,
                "  (sales {}, refunds {})",
                d.heartland_sales, d.heartland_refunds
            );
        }
    }
    let [ex, acc, ok] = ordered(r);
    for (title, list) in [("Exceptions", ex), ("Accepted", acc), ("Matched", ok)] {
        let _ = writeln!(s, "\n{title} ({})", list.len());
        for i in list {
            let _ = writeln!(
                s,
                "  {:<30} {:<22} HL {:>16} {:<10}  NS {:>16} {:<10} {}",
                i.key,
                i.status.as_str(),
                opt(i.heartland_amount),
                date(i.heartland_date),
                opt(i.netsuite_amount),
                date(i.netsuite_date),
                i.netsuite_ids.join(",")
            );
            let _ = writeln!(s, "      {}", i.reason);
            if let Some(n) = &i.accepted_note {
                let _ = writeln!(s, "      accepted: {n}");
            }
        }
    }
    s
}

fn csv_field(v: &str) -> String {
    // Quote everything that needs it; also defuse a leading = + - @ so a spreadsheet never
    // evaluates a reason or a memo as a formula.
    let v = if v.starts_with(['=', '+', '-', '@']) && v.parse::<f64>().is_err() {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn money_cols(m: Option<Money>) -> [String; 2] {
    match m {
        Some(m) => [m.to_decimal_string(), m.code().to_string()],
        None => [String::new(), String::new()],
    }
}

fn csv(r: &Report) -> String {
    let mut s = String::from(
        "section,key,level,status,original_status,brand,direction,heartland_id,heartland_amount,heartland_currency,heartland_date,deposit_id,netsuite_ids,netsuite_external_id,netsuite_amount,netsuite_currency,netsuite_date,difference,matched_by,reason,accepted_note\n",
    );
    let [ex, acc, ok] = ordered(r);
    for (section, list) in [("exception", ex), ("accepted", acc), ("matched", ok)] {
        for i in list {
            let [ha, hc] = money_cols(i.heartland_amount);
            let [na, nc] = money_cols(i.netsuite_amount);
            let row = [
                section.to_string(),
                i.key.clone(),
                format!("{:?}", i.level).to_lowercase(),
                i.status.as_str().to_string(),
                i.original_status
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                i.brand.clone().unwrap_or_default(),
                i.direction
                    .map(|d| format!("{d:?}").to_lowercase())
                    .unwrap_or_default(),
                i.heartland_id.clone().unwrap_or_default(),
                ha,
                hc,
                i.heartland_date.map(|d| d.to_string()).unwrap_or_default(),
                i.deposit_id.clone().unwrap_or_default(),
                i.netsuite_ids.join(" "),
                i.netsuite_external_id.clone().unwrap_or_default(),
                na,
                nc,
                i.netsuite_date.map(|d| d.to_string()).unwrap_or_default(),
                i.difference
                    .map(|d| d.to_decimal_string())
                    .unwrap_or_default(),
                i.matched_by.map(|m| format!("{m:?}")).unwrap_or_default(),
                i.reason.clone(),
                i.accepted_note.clone().unwrap_or_default(),
            ];
            let line: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
            s.push_str(&line.join(","));
            s.push('\n');
        }
    }
    s
}

fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn item_rows(s: &mut String, list: &[&Item]) {
    s.push_str("<table><thead><tr><th>Item</th><th>Status</th><th>Brand</th><th>Heartland</th><th>Date</th><th>NetSuite</th><th>Date</th><th>Record(s)</th><th>Reason</th></tr></thead><tbody>\n");
    for i in list {
        let _ = writeln!(
            s,
            "<tr class=\"{cls}\"><td>{key}</td><td>{st}</td><td>{brand}</td><td class=\"n\">{ha}</td><td>{hd}</td><td class=\"n\">{na}</td><td>{nd}</td><td>{ids}</td><td>{reason}{note}</td></tr>",
            cls = esc(i.status.as_str()),
            key = esc(&i.key),
            st = esc(&match i.original_status {
                Some(o) => format!("{} ({})", i.status.as_str(), o.as_str()),
                None => i.status.as_str().to_string(),
            }),
            brand = esc(i.brand.as_deref().unwrap_or("")),
            ha = esc(&opt(i.heartland_amount)),
            hd = esc(&date(i.heartland_date)),
            na = esc(&opt(i.netsuite_amount)),
            nd = esc(&date(i.netsuite_date)),
            ids = esc(&i.netsuite_ids.join(", ")),
            reason = esc(&i.reason),
            note = i
                .accepted_note
                .as_deref()
                .map(|n| format!("<br><em>Accepted: {}</em>", esc(n)))
                .unwrap_or_default(),
        );
    }
    s.push_str("</tbody></table>\n");
}

fn html(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Reconciliation — {t}</title>\n<style>\
body{{font:11pt/1.35 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5cm;color:#111}}\
h1{{font-size:16pt;margin:0 0 .2em}}h2{{font-size:13pt;margin:1.2em 0 .4em;border-bottom:1px solid #999}}\
table{{border-collapse:collapse;width:100%;margin-bottom:.8em}}th,td{{border:1px solid #bbb;padding:2px 5px;vertical-align:top;text-align:left}}\
th{{background:#eee}}td.n{{text-align:right;white-space:nowrap}}tr.matched td{{color:#333}}\
tr.amount_differs,tr.missing_in_netsuite,tr.missing_in_heartland,tr.duplicate_in_netsuite,tr.date_differs{{background:#fff3f0}}\
tr.accepted{{background:#f4f8ff}}.meta{{color:#555}}@media print{{body{{margin:0}}h2{{break-after:avoid}}tr{{break-inside:avoid}}}}\
</style></head><body>\n<h1>Reconciliation — {t}</h1>\n<p class=\"meta\">Heartland (GP-API settlement) against NetSuite. Rules: keys {k}; amount tolerance {tol} minor units; date window {w} day(s).</p>\n",
        t = esc(&r.title),
        k = esc(&format!("{:?}", r.rules.keys)),
        tol = r.rules.amount_tolerance_minor,
        w = r.rules.date_window_days,
    );
    s.push_str("<h2>Summary</h2>\n<table><thead><tr><th>Status</th><th>Transactions</th><th>Amount</th><th>Deposits</th></tr></thead><tbody>\n");
    for (status, t) in &r.by_status {
        let _ = writeln!(
            s,
            "<tr class=\"{c}\"><td>{c}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            t.count,
            esc(&amounts(&t.amounts)),
            r.deposits_by_status.get(status).copied().unwrap_or(0),
            c = esc(status)
        );
    }
    s.push_str("</tbody></table>\n<table><thead><tr><th>Brand</th><th>Heartland #</th><th>Heartland sales</th><th>Heartland refunds</th><th>NetSuite #</th><th>NetSuite sales</th><th>NetSuite refunds</th></tr></thead><tbody>\n");
    for (brand, b) in &r.by_brand {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(brand),
            b.heartland_count,
            esc(&amounts(&b.heartland_sales)),
            esc(&amounts(&b.heartland_refunds)),
            b.netsuite_count,
            esc(&amounts(&b.netsuite_sales)),
            esc(&amounts(&b.netsuite_refunds))
        );
    }
    s.push_str("</tbody></table>\n");
    if !r.deposits.is_empty() {
        s.push_str("<h2>Deposits</h2>\n<table><thead><tr><th>Deposit</th><th>Funded</th><th>Status</th><th>NetSuite</th><th></th><th>Gross</th><th>Fees</th><th>Chargebacks</th><th>Net</th></tr></thead><tbody>\n");
        for d in &r.deposits {
            let _ = writeln!(
                s,
                "<tr class=\"{st}\"><td rowspan=\"2\">{id}</td><td rowspan=\"2\">{dt}</td><td rowspan=\"2\">{st}<br>{reason}</td><td rowspan=\"2\">{ns}</td><td>Heartland</td><td class=\"n\">{g}</td><td class=\"n\">{f}</td><td class=\"n\">{c}</td><td class=\"n\">{n}</td></tr>\n<tr class=\"{st}\"><td>NetSuite</td><td class=\"n\">{ng}</td><td class=\"n\">{nf}</td><td class=\"n\">{nc}</td><td class=\"n\">{nn}</td></tr>",
                st = esc(d.status.as_str()),
                id = esc(&d.deposit_id),
                dt = d.date,
                reason = esc(&d.reason),
                ns = esc(d.netsuite_id.as_deref().unwrap_or("-")),
                g = esc(&d.heartland_gross.to_string()),
                f = esc(&d.heartland_fees.to_string()),
                c = esc(&d.heartland_chargebacks.to_string()),
                n = esc(&d.heartland_net.to_string()),
                ng = esc(&opt(d.netsuite_gross)),
                nf = esc(&opt(d.netsuite_fees)),
                nc = esc(&opt(d.netsuite_chargebacks)),
                nn = esc(&opt(d.netsuite_net)),
            );
        }
        s.push_str("</tbody></table>\n");
    }
    let [ex, acc, ok] = ordered(r);
    let _ = writeln!(s, "<h2>Exceptions ({})</h2>", ex.len());
    if ex.is_empty() {
        s.push_str("<p>None.</p>\n");
    } else {
        item_rows(&mut s, &ex);
    }
    if !acc.is_empty() {
        let _ = writeln!(s, "<h2>Accepted differences ({})</h2>", acc.len());
        item_rows(&mut s, &acc);
    }
    let _ = writeln!(s, "<h2>Matched ({})</h2>", ok.len());
    item_rows(&mut s, &ok);
    s.push_str("</body></html>\n");
    s
}

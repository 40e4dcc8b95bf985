//! The business-day generator: a seeded, deterministic day of trade across several stores (one in
//! Canada, in CAD), driven through the simulator's own state so that GP-API and Retail then serve
//! that day: POS tickets with item and tax lines, cash and card payments by brand, declines,
//! returns with card refunds, web orders authorized card-not-present and mostly captured, the
//! end-of-day batch close and the next day's funded deposit with fees and perhaps a chargeback.
//!
//! Same seed (and same starting state) → the same day, id for id.

use std::collections::BTreeMap;

use jiff::civil::{Date, date};
use jiff::{Timestamp, tz::TimeZone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::card;
use crate::gpapi::NewTxn;
use crate::state::{
    BatchClose, DepositView, Sandbox, State as St, WebhookPayload, dec_json, minor_to_dec,
};

pub type BatchLine = BatchClose;
pub type DepositLine = DepositView;

/// What kind of day to generate. Every field has a default (`DayOptions::default()`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DayOptions {
    pub seed: u64,
    pub date: Date,
    /// POS sale tickets across all stores.
    pub tickets: usize,
    /// E-commerce orders authorized card-not-present (USD).
    pub web_orders: usize,
    /// Include the Toronto store (CAD).
    pub include_cad: bool,
    /// Card attempts that decline, per mille.
    pub decline_per_mille: u32,
    /// Tickets later partly returned, per mille.
    pub return_per_mille: u32,
    /// Tickets paid in cash, per mille.
    pub cash_per_mille: u32,
    /// Close the day's batches at 23:30 (merchant time).
    pub close_batch: bool,
    /// Fund the closed batches as deposits dated the next day.
    pub fund: bool,
    /// Deliver webhooks to registered receivers while generating (the payloads are returned either way).
    pub emit_webhooks: bool,
}

impl Default for DayOptions {
    fn default() -> Self {
        DayOptions {
            seed: 1,
            date: date(2025, 3, 14),
            tickets: 3000,
            web_orders: 150,
            include_cad: true,
            decline_per_mille: 25,
            return_per_mille: 30,
            cash_per_mille: 180,
            close_batch: true,
            fund: true,
            emit_webhooks: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BrandTotals {
    pub count: u64,
    pub amount_minor: i64,
}

/// Per-currency totals, all in minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrencyTotals {
    pub tickets: u64,
    pub returns: u64,
    /// Item value of sale tickets, before tax.
    pub net_sales_minor: i64,
    pub tax_minor: i64,
    /// Sale tickets' totals (net sales + tax).
    pub gross_minor: i64,
    /// Return tickets' totals including tax, as a positive amount.
    pub returns_minor: i64,
    pub cash_taken_minor: i64,
    pub cash_refunded_minor: i64,
    /// Approved card sales (POS sales + captured web orders).
    pub card_captured_minor: i64,
    pub card_refunded_minor: i64,
    pub web_authorized_minor: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaySummary {
    pub seed: u64,
    pub date: String,
    pub locations: usize,
    pub items: usize,
    pub customers: usize,
    pub tickets: u64,
    pub returns: u64,
    pub cash_tickets: u64,
    pub card_tickets: u64,
    pub declines: u64,
    pub web_orders: u64,
    pub web_captured: u64,
    pub web_reversed: u64,
    pub web_open: u64,
    pub web_declined: u64,
    pub refunds: u64,
    pub by_currency: BTreeMap<String, CurrencyTotals>,
    /// currency -> brand -> approved card sales.
    pub card_by_brand: BTreeMap<String, BTreeMap<String, BrandTotals>>,
    pub batches: Vec<BatchLine>,
    pub deposits: Vec<DepositLine>,
    pub webhook_payloads: usize,
    /// Every GP-API transaction id the day created, in order (determinism is checked on these).
    pub transaction_ids_digest: String,
}

/// A generated day: its summary and the Retail webhook payloads it emitted (or would have).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedDay {
    pub summary: DaySummary,
    pub webhooks: Vec<WebhookPayload>,
}

struct Store {
    name: &'static str,
    tz: &'static str,
    currency: &'static str,
    tax_bps: i64,
    weight: u32,
}

const STORES: &[Store] = &[
    Store {
        name: "Chicago Loop",
        tz: "America/Chicago",
        currency: "USD",
        tax_bps: 1025,
        weight: 35,
    },
    Store {
        name: "Austin Domain",
        tz: "America/Chicago",
        currency: "USD",
        tax_bps: 825,
        weight: 25,
    },
    Store {
        name: "Portland Pearl",
        tz: "America/Los_Angeles",
        currency: "USD",
        tax_bps: 0,
        weight: 20,
    },
    Store {
        name: "Toronto Queen West",
        tz: "America/Toronto",
        currency: "CAD",
        tax_bps: 1300,
        weight: 20,
    },
];

/// (description, price, cost) in minor units. The Toronto store sells the same catalog at the
/// same numeric prices in CAD — a simplification (one price per item, as Retail items have).
const CATALOG: &[(&str, i64, i64)] = &[
    ("Organic Cotton Tee", 2400, 900),
    ("Merino Crew Sweater", 8900, 3400),
    ("Selvedge Denim Jeans", 12800, 5200),
    ("Canvas Tote Bag", 1800, 600),
    ("Wool Beanie", 2900, 1000),
    ("Leather Belt", 4500, 1600),
    ("Rain Shell Jacket", 15900, 6800),
    ("Trail Socks 3-Pack", 1999, 650),
    ("Linen Button-Down", 6800, 2500),
    ("Chino Shorts", 4900, 1800),
    ("Ceramic Mug", 1600, 450),
    ("Soy Candle", 2200, 700),
    ("Enamel Pin", 899, 150),
    ("Stainless Water Bottle", 3200, 1100),
    ("Notebook A5", 1450, 380),
    ("Sunglasses", 7500, 2100),
    ("Baseball Cap", 2800, 900),
    ("Hoodie Heavyweight", 7200, 2800),
    ("Gift Card Sleeve", 199, 20),
    ("Sneaker Cleaner Kit", 1750, 500),
    ("Crossbody Bag", 5900, 2200),
    ("Scented Hand Cream", 1399, 380),
    ("Throw Blanket", 9900, 3900),
    ("Phone Case", 3499, 800),
];

const FIRST: &[&str] = &[
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Zoe",
    "Amir", "Priya", "Chen", "Hana", "Diego",
];
const LAST: &[&str] = &[
    "Nguyen", "Smith", "Garcia", "Patel", "Kim", "Johnson", "Tremblay", "Lopez", "Brown", "Martin",
    "Rossi", "Okafor", "Cohen", "Silva",
];

const BRANDS: &[(&str, u32)] = &[
    ("VISA", 55),
    ("MASTERCARD", 25),
    ("AMEX", 12),
    ("DISCOVER", 8),
];

/// The merchant's Retail payment types (Settings > Payment Types), by id: what a payment's
/// `payment_type_id` points at, and what flows/retail_*.toml's `retail_tender` table lists.
const CASH_PAYMENT_TYPE: i64 = 1;
fn card_payment_type(brand: &str) -> i64 {
    match brand {
        "VISA" => 3,
        "MASTERCARD" => 4,
        "AMEX" => 5,
        _ => 6,
    }
}

fn pick_weighted<'a, T>(rng: &mut StdRng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (it, w) in items {
        if x < *w {
            return it;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

fn per_mille(rng: &mut StdRng, pm: u32) -> bool {
    rng.random_range(0..1000) < pm
}

/// Tax in minor units, rounded half-up (sign-aware) as a POS rounds per ticket.
fn tax_of(subtotal: i64, bps: i64) -> i64 {
    let num = subtotal * bps;
    let q = (num.abs() + 5_000) / 10_000;
    if num < 0 { -q } else { q }
}

fn at_local(d: Date, tz: &str, secs: i64) -> Result<Timestamp, Error> {
    let tz = TimeZone::get(tz).map_err(|e| Error::Invalid(format!("time zone {tz}: {e}")))?;
    let midnight = d
        .to_zoned_datetime(tz)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(midnight.timestamp() + jiff::SignedDuration::from_secs(secs))
}

struct Sold {
    ticket_id: i64,
    store: usize,
    at: Timestamp,
    item_id: i64,
    unit_minor: i64,
    card_txn: Option<String>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Sandbox {
    /// Generates a business day into this sandbox (see the module docs). Holds the state lock for
    /// the whole run, so the day appears atomically.
    pub fn generate_day(&self, opts: &DayOptions) -> Result<GeneratedDay, Error> {
        let mut guard = self.lock();
        let st: &mut St = &mut guard;
        st.mute_webhooks = !opts.emit_webhooks;
        let r = self.generate_locked(st, opts);
        st.mute_webhooks = false;
        r
    }

    fn generate_locked(&self, st: &mut St, o: &DayOptions) -> Result<GeneratedDay, Error> {
        if o.tickets > 200_000 || o.web_orders > 50_000 {
            return Err(Error::Invalid(
                "at most 200000 tickets and 50000 web orders per day".into(),
            ));
        }
        if !(2000..=2100).contains(&o.date.year()) {
            return Err(Error::Invalid("date must be between 2000 and 2100".into()));
        }
        if o.decline_per_mille > 1000 || o.return_per_mille > 1000 || o.cash_per_mille > 1000 {
            return Err(Error::Invalid("rates are per mille (0..=1000)".into()));
        }
        let mut rng = StdRng::seed_from_u64(o.seed);
        let mut s = DaySummary {
            seed: o.seed,
            date: o.date.to_string(),
            ..Default::default()
        };
        let mut hooks: Vec<WebhookPayload> = Vec::new();
        let first_txn = st.gp.txns.len();
        // Set-up times: the morning of the day, before stores open.
        let setup_at = at_local(o.date, "America/Chicago", 6 * 3600)?;

        // Stores, catalog, customers: reuse what an earlier day created, so days can be chained.
        let stores: Vec<&Store> = STORES
            .iter()
            .filter(|s| o.include_cad || s.currency != "CAD")
            .collect();
        let mut loc_ids = Vec::new();
        for store in &stores {
            let existing = st
                .retail
                .all("locations")
                .find(|l| l.get("name") == Some(&json!(store.name)))
                .and_then(|l| l.get("id")?.as_i64());
            let id = match existing {
                Some(id) => id,
                None => self.create_location_locked(
                    st,
                    obj(json!({"name": store.name, "time_zone": store.tz, "currency_code": store.currency,
                               "custom": {"tax_rate_bps": store.tax_bps}})),
                    setup_at,
                ),
            };
            loc_ids.push(id);
        }
        let mut item_ids = Vec::new();
        for (i, (desc, price, cost)) in CATALOG.iter().enumerate() {
            let public_id = format!("HS-{:04}", i + 1);
            let existing = st
                .retail
                .all("items")
                .find(|m| m.get("public_id") == Some(&json!(public_id)))
                .and_then(|m| m.get("id")?.as_i64());
            let id = match existing {
                Some(id) => id,
                None => {
                    let body = obj(
                        json!({"public_id": public_id, "description": desc, "price": dec_json(minor_to_dec(*price)),
                                          "cost": dec_json(minor_to_dec(*cost))}),
                    );
                    let id = self.create_item_locked(st, body, setup_at)?;
                    if let Some(m) = st.retail.get("items", id) {
                        hooks.push(WebhookPayload {
                            event: "item_created".into(),
                            body: Value::Object(m.clone()),
                        });
                    }
                    id
                }
            };
            for loc in &loc_ids {
                st.retail
                    .inventory
                    .entry((id, *loc))
                    .or_insert_with(|| rust_decimal::Decimal::from(400));
            }
            item_ids.push((id, *price));
        }
        let existing_customers: Vec<i64> = st
            .retail
            .all("customers")
            .filter_map(|c| c.get("id")?.as_i64())
            .collect();
        let customer_ids = if existing_customers.len() >= 100 {
            existing_customers
        } else {
            let mut ids = Vec::new();
            for i in 0..120 {
                let (f, l) = (
                    FIRST[rng.random_range(0..FIRST.len())],
                    LAST[rng.random_range(0..LAST.len())],
                );
                let body = obj(
                    json!({"first_name": f, "last_name": l, "email": format!("{}.{}{}@example.com", f.to_lowercase(), l.to_lowercase(), i)}),
                );
                let id = self.create_customer_locked(st, body, setup_at)?;
                if let Some(m) = st.retail.get("customers", id) {
                    hooks.push(WebhookPayload {
                        event: "customer_created".into(),
                        body: Value::Object(m.clone()),
                    });
                }
                ids.push(id);
            }
            ids
        };
        s.locations = loc_ids.len();
        s.items = item_ids.len();
        s.customers = customer_ids.len();

        // Ticket times first, sorted, so the day reads chronologically.
        let store_weights: Vec<(usize, u32)> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.weight))
            .collect();
        let mut plan: Vec<(Timestamp, usize)> = Vec::with_capacity(o.tickets);
        for _ in 0..o.tickets {
            let si = *pick_weighted(&mut rng, &store_weights);
            // Open 09:00–21:00 local, busier around lunch and after work.
            let secs =
                9 * 3600 + (rng.random_range(0..12 * 3600) + rng.random_range(0..12 * 3600)) / 2;
            plan.push((at_local(o.date, stores[si].tz, secs)?, si));
        }
        plan.sort_by_key(|(t, _)| *t);

        let brand_w: Vec<(&str, u32)> = BRANDS.to_vec();
        let mut sold: Vec<Sold> = Vec::new();
        let mut decline_i = 0usize;
        for (at, si) in plan {
            let store = stores[si];
            let cur = store.currency;
            let customer = per_mille(&mut rng, 400)
                .then(|| customer_ids[rng.random_range(0..customer_ids.len())]);
            let mut tb = json!({"source_location_id": loc_ids[si], "station_id": (si as i64) * 10 + rng.random_range(1..4), "sales_rep": "POS"});
            if let Some(c) = customer {
                tb["customer_id"] = json!(c);
            }
            let tid = self.create_ticket_locked(st, obj(tb), at)?;
            let n_lines = *pick_weighted(&mut rng, &[(1usize, 40), (2, 30), (3, 18), (4, 12)]);
            let mut subtotal = 0i64;
            let mut first_line: Option<(i64, i64)> = None;
            for _ in 0..n_lines {
                let (item_id, price) = item_ids[rng.random_range(0..item_ids.len())];
                let qty = *pick_weighted(&mut rng, &[(1i64, 80), (2, 15), (3, 5)]);
                let unit = if per_mille(&mut rng, 100) {
                    price - price * rng.random_range(10..=20) / 100
                } else {
                    price
                };
                self.add_line_locked(
                    st,
                    tid,
                    obj(json!({"type": "ItemLine", "item_id": item_id, "qty": qty, "original_unit_price": dec_json(minor_to_dec(price)),
                               "adjusted_unit_price": dec_json(minor_to_dec(unit))})),
                    at,
                )?;
                subtotal += unit * qty;
                first_line.get_or_insert((item_id, unit));
            }
            let tax = tax_of(subtotal, store.tax_bps);
            if tax != 0 {
                self.add_line_locked(st, tid, obj(json!({"type": "TaxLine", "value": dec_json(minor_to_dec(tax)), "description": "Sales Tax"})), at)?;
            }
            let total = subtotal + tax;
            let totals = s.by_currency.entry(cur.to_string()).or_default();
            totals.tickets += 1;
            totals.net_sales_minor += subtotal;
            totals.tax_minor += tax;
            totals.gross_minor += total;
            s.tickets += 1;

            let mut card_txn = None;
            let mut paid_cash = per_mille(&mut rng, o.cash_per_mille);
            if !paid_cash {
                let mut brand = *pick_weighted(&mut rng, &brand_w);
                if per_mille(&mut rng, o.decline_per_mille) {
                    let req =
                        NewTxn::card_sale(card::decline_card(decline_i), total, cur, false, true)?;
                    decline_i += 1;
                    let mut req = req;
                    req.reference = Some(format!("POS-{tid}-D"));
                    self.create_txn_locked(st, req, None, at)?;
                    s.declines += 1;
                    // The shopper then pays with another card, or cash.
                    paid_cash = rng.random_range(0..2) == 0;
                    brand = *pick_weighted(&mut rng, &brand_w);
                }
                if !paid_cash {
                    let mut req =
                        NewTxn::card_sale(card::approve_card(brand), total, cur, false, true)?;
                    req.reference = Some(format!("POS-{tid}"));
                    let pay_at = at + jiff::SignedDuration::from_secs(30);
                    let idx = self.create_txn_locked(st, req, None, pay_at)?;
                    let t = &st.gp.txns[idx];
                    let (tid_gp, last4) = (t.id.clone(), t.card.last4.clone());
                    self.add_payment_locked(
                        st,
                        tid,
                        obj(json!({"type": "CreditCardPayment", "amount": dec_json(minor_to_dec(total)), "transaction_id": tid_gp,
                                   "card_brand": brand, "card_last4": last4, "payment_type_id": card_payment_type(brand)})),
                        pay_at,
                    )?;
                    let b = s
                        .card_by_brand
                        .entry(cur.to_string())
                        .or_default()
                        .entry(brand.to_string())
                        .or_default();
                    b.count += 1;
                    b.amount_minor += total;
                    s.by_currency
                        .entry(cur.to_string())
                        .or_default()
                        .card_captured_minor += total;
                    s.card_tickets += 1;
                    card_txn = Some(tid_gp);
                }
            }
            if paid_cash {
                self.add_payment_locked(
                    st,
                    tid,
                    obj(json!({"type": "CashPayment", "amount": dec_json(minor_to_dec(total)), "payment_type_id": CASH_PAYMENT_TYPE})),
                    at,
                )?;
                s.cash_tickets += 1;
                s.by_currency
                    .entry(cur.to_string())
                    .or_default()
                    .cash_taken_minor += total;
            }
            let done =
                self.complete_ticket_locked(st, tid, at + jiff::SignedDuration::from_secs(45))?;
            hooks.push(WebhookPayload {
                event: "sales_transaction_completed".into(),
                body: done,
            });
            if let Some((item_id, unit_minor)) = first_line {
                sold.push(Sold {
                    ticket_id: tid,
                    store: si,
                    at,
                    item_id,
                    unit_minor,
                    card_txn,
                });
            }
        }

        // Returns: one unit of the first line of an earlier ticket, later the same day.
        let n_returns = (o.tickets as u64 * u64::from(o.return_per_mille) / 1000) as usize;
        let close_local_secs = 23 * 3600 + 30 * 60;
        for _ in 0..n_returns.min(sold.len()) {
            let j = rng.random_range(0..sold.len());
            let orig = &sold[j];
            let store = stores[orig.store];
            let cur = store.currency;
            let at = orig.at + jiff::SignedDuration::from_secs(rng.random_range(600..4 * 3600));
            let latest = at_local(o.date, store.tz, 21 * 3600 + 1800)?;
            let at = at.min(latest);
            let tax = tax_of(orig.unit_minor, store.tax_bps);
            let refund_total = orig.unit_minor + tax;
            let rid = self.create_ticket_locked(
                st,
                obj(json!({"type": "Return", "source_location_id": loc_ids[orig.store], "parent_transaction_id": orig.ticket_id, "sales_rep": "POS"})),
                at,
            )?;
            self.add_line_locked(
                st,
                rid,
                obj(json!({"type": "ItemLine", "item_id": orig.item_id, "qty": -1, "adjusted_unit_price": dec_json(minor_to_dec(orig.unit_minor))})),
                at,
            )?;
            if tax != 0 {
                self.add_line_locked(st, rid, obj(json!({"type": "TaxLine", "value": dec_json(minor_to_dec(-tax)), "description": "Sales Tax"})), at)?;
            }
            let totals = s.by_currency.entry(cur.to_string()).or_default();
            totals.returns += 1;
            totals.returns_minor += refund_total;
            let refunded = match &orig.card_txn {
                // The POS sends the return ticket as the refund's merchant reference, as it
                // sends the sale ticket with the sale (`POS-<ticket>`).
                Some(txn) => self.refund_locked(st, txn, Some(refund_total), None, at).ok().map(|i| {
                    st.gp.txns[i].reference = format!("POS-{rid}");
                    st.gp.txns[i].id.clone()
                }),
                None => None,
            };
            let payment = match &refunded {
                Some(rtxn) => {
                    s.refunds += 1;
                    s.by_currency
                        .entry(cur.to_string())
                        .or_default()
                        .card_refunded_minor += refund_total;
                    // Back on the sale's card, under the sale's payment type.
                    let card_type = st
                        .retail
                        .children_of("payments", orig.ticket_id)
                        .find_map(|p| p.get("payment_type_id").and_then(Value::as_i64));
                    json!({"type": "CreditCardPayment", "amount": dec_json(minor_to_dec(-refund_total)), "transaction_id": rtxn, "payment_type_id": card_type})
                }
                None => {
                    s.by_currency
                        .entry(cur.to_string())
                        .or_default()
                        .cash_refunded_minor += refund_total;
                    json!({"type": "CashPayment", "amount": dec_json(minor_to_dec(-refund_total)), "payment_type_id": CASH_PAYMENT_TYPE})
                }
            };
            self.add_payment_locked(st, rid, obj(payment), at)?;
            let done =
                self.complete_ticket_locked(st, rid, at + jiff::SignedDuration::from_secs(60))?;
            hooks.push(WebhookPayload {
                event: "sales_transaction_completed".into(),
                body: done,
            });
            s.returns += 1;
        }

        // Web orders: card-not-present authorizations, captured at fulfilment.
        for n in 0..o.web_orders {
            let secs = rng.random_range(0..22 * 3600);
            let at = at_local(o.date, "America/Chicago", secs)?;
            let amount = rng.random_range(2_500..30_000);
            let brand = *pick_weighted(&mut rng, &brand_w);
            let declined = per_mille(&mut rng, o.decline_per_mille);
            let number = if declined {
                card::decline_card(n)
            } else {
                card::approve_card(brand)
            };
            let mut req = NewTxn::card_sale(number, amount, "USD", true, false)?;
            let order = format!("WEB-{}-{:05}", o.date.strftime("%Y%m%d"), n + 1);
            req.reference = Some(order.clone());
            req.order_reference = Some(order);
            let idx = self.create_txn_locked(st, req, None, at)?;
            s.web_orders += 1;
            if declined {
                s.web_declined += 1;
                s.declines += 1;
                continue;
            }
            let id = st.gp.txns[idx].id.clone();
            s.by_currency
                .entry("USD".into())
                .or_default()
                .web_authorized_minor += amount;
            let fate = rng.random_range(0..100);
            let cap_at = (at + jiff::SignedDuration::from_secs(rng.random_range(3600..6 * 3600)))
                .min(at_local(o.date, "America/Chicago", 23 * 3600)?);
            if fate < 85 {
                self.capture_locked(st, &id, None, None, cap_at)?;
                s.web_captured += 1;
                let b = s
                    .card_by_brand
                    .entry("USD".into())
                    .or_default()
                    .entry(brand.to_string())
                    .or_default();
                b.count += 1;
                b.amount_minor += amount;
                s.by_currency
                    .entry("USD".into())
                    .or_default()
                    .card_captured_minor += amount;
                if rng.random_range(0..100) < 4 {
                    let part = amount / 2;
                    self.refund_locked(
                        st,
                        &id,
                        Some(part),
                        None,
                        cap_at + jiff::SignedDuration::from_secs(1800),
                    )?;
                    s.refunds += 1;
                    s.by_currency
                        .entry("USD".into())
                        .or_default()
                        .card_refunded_minor += part;
                }
            } else if fate < 90 {
                self.reverse_locked(st, &id, None, None, cap_at)?;
                s.web_reversed += 1;
            } else {
                s.web_open += 1;
            }
        }

        if o.close_batch {
            let close_at = at_local(o.date, "America/Chicago", close_local_secs)?;
            s.batches = self.close_open_batches_locked(st, close_at);
            if o.fund {
                let next = o
                    .date
                    .tomorrow()
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                s.deposits = self.fund_deposits_locked(st, next);
            }
        }
        let mut digest = sha2::Sha256::default();
        for t in &st.gp.txns[first_txn..] {
            sha2::Digest::update(&mut digest, t.id.as_bytes());
        }
        s.transaction_ids_digest = hex::encode(sha2::Digest::finalize(digest));
        s.webhook_payloads = hooks.len();
        Ok(GeneratedDay {
            summary: s,
            webhooks: hooks,
        })
    }
}

//! Items and stock (issue #6, flow 6). NetSuite is the book of record for items and on-hand
//! quantities: the flow `netsuite_item_to_retail` pushes an item's SKU, description and price
//! (`retail.item_upsert`) and its on-hand per location (`retail.inventory_set`) to Heartland
//! Retail, and the drift check here compares both sides and names every difference.
//!
//! **No double counting.** A POS sale lowers Retail's stock when the ticket completes, and
//! NetSuite's through the POS flow's cash sale (item lines at a location). Nothing here writes a
//! NetSuite `inventoryAdjustment` for a sale, and stock only ever moves NetSuite → Retail, so each
//! sale is subtracted once on each side. Until the cash sale is posted, the two sides differ by
//! that sale; the drift check reports it, and it clears when NetSuite catches up.

use crate::connectors::Connectors;
use heartsuite_core::Failure;
use heartsuite_engine::alerts::{AlertKind, Alerts};
use heartsuite_heartland::RetailClient;
use heartsuite_heartland::retail::{AdjustmentLine, InventoryQuery};
use heartsuite_netsuite::NetSuiteClient;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockConfig {
    /// NetSuite location internal id → Heartland Retail location id. Empty: locations with the
    /// same name (ignoring case and surrounding spaces) are paired. Unpaired locations (a
    /// warehouse with no store) are neither pushed nor compared.
    pub locations: BTreeMap<String, i64>,
    /// Name of the Retail inventory adjustment reason pushes are booked under; unset: the
    /// account's first active reason.
    pub adjustment_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Run the drift check every N seconds inside `serve` (0 = off); drift is logged and alerted.
    pub every_secs: u64,
}

/// A NetSuite location and the Retail location that sells its stock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationPair {
    pub netsuite_id: String,
    pub retail_id: i64,
    pub name: String,
}

/// A NetSuite item as the flow maps it: the SKU is `itemId`, the description `displayName`
/// (`itemId` when empty), the price `basePrice`.
#[derive(Debug, Clone)]
struct NsItem {
    id: String,
    sku: String,
    description: String,
    price: Option<Decimal>,
}

/// One difference between NetSuite and Heartland Retail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub sku: String,
    /// Set for quantity differences: the location's name.
    pub location: Option<String>,
    /// `only_in_netsuite`, `only_in_heartland`, `duplicate_in_heartland`, `price`,
    /// `description` or `quantity`.
    pub kind: &'static str,
    pub netsuite: Option<String>,
    pub heartland: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub items_checked: usize,
    pub locations: Vec<LocationPair>,
    pub findings: Vec<Finding>,
}

impl DriftReport {
    pub fn has_drift(&self) -> bool {
        !self.findings.is_empty()
    }

    pub fn table(&self) -> String {
        let mut rows =
            vec![["SKU", "LOCATION", "DIFFERENCE", "NETSUITE", "HEARTLAND"].map(String::from)];
        for f in &self.findings {
            rows.push([
                f.sku.clone(),
                f.location.clone().unwrap_or_else(|| "-".into()),
                f.kind.to_string(),
                f.netsuite.clone().unwrap_or_else(|| "-".into()),
                f.heartland.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let mut widths = [0usize; 5];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        if self.has_drift() {
            for r in &rows {
                let cells: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
        }
        let names: Vec<&str> = self.locations.iter().map(|l| l.name.as_str()).collect();
        out.push_str(&format!(
            "{} difference(s); {} item(s) at {} location(s) compared ({})\n",
            self.findings.len(),
            self.items_checked,
            self.locations.len(),
            names.join(", ")
        ));
        out
    }
}

fn cell(row: &Map<String, Value>, k: &str) -> Option<String> {
    match row.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn decimal(text: &str, what: &str) -> Result<Decimal, Failure> {
    text.trim().parse::<Decimal>().map_err(|_| {
        Failure::data(format!("{what} `{text}` is not a decimal number"))
            .with_field(what.to_string())
    })
}

fn ns_failure(e: heartsuite_netsuite::Error) -> Failure {
    e.to_failure()
}

/// Pairs NetSuite and Retail locations: the configured table, else by name.
pub async fn location_pairs(
    ns: &NetSuiteClient,
    retail: &RetailClient,
    cfg: &StockConfig,
) -> Result<Vec<LocationPair>, Failure> {
    let ns_locs = ns
        .suiteql("SELECT id, name FROM location ORDER BY id", 1000)
        .await
        .map_err(ns_failure)?;
    let ns_name = |id: &str| {
        ns_locs
            .iter()
            .find(|r| cell(r, "id").as_deref() == Some(id))
            .and_then(|r| cell(r, "name"))
    };
    if !cfg.locations.is_empty() {
        return Ok(cfg
            .locations
            .iter()
            .map(|(ns_id, rt)| LocationPair {
                netsuite_id: ns_id.clone(),
                retail_id: *rt,
                name: ns_name(ns_id).unwrap_or_else(|| format!("location {ns_id}")),
            })
            .collect());
    }
    let norm = |s: &str| s.trim().to_lowercase();
    let rt_locs = retail.list_locations().await?;
    let mut pairs = Vec::new();
    for r in &ns_locs {
        let (Some(id), Some(name)) = (cell(r, "id"), cell(r, "name")) else {
            continue;
        };
        if let Some(l) = rt_locs
            .iter()
            .find(|l| l.name.as_deref().is_some_and(|n| norm(n) == norm(&name)))
        {
            pairs.push(LocationPair {
                netsuite_id: id,
                retail_id: l.id,
                name,
            });
        }
    }
    Ok(pairs)
}

/// NetSuite on-hand by (item id, location id), from SuiteQL `aggregateItemLocation` (the REST
/// item record's per-location fields are unconfirmed; reference/netsuite.md).
async fn netsuite_on_hand(
    ns: &NetSuiteClient,
    item: Option<u64>,
) -> Result<BTreeMap<(String, String), Decimal>, Failure> {
    let filter = item
        .map(|i| format!(" WHERE item = {i}"))
        .unwrap_or_default();
    let q = format!(
        "SELECT item, location, quantityonhand FROM aggregateitemlocation{filter} ORDER BY item, location"
    );
    let mut out = BTreeMap::new();
    for r in ns.suiteql(&q, 1000).await.map_err(ns_failure)? {
        let (Some(i), Some(l)) = (cell(&r, "item"), cell(&r, "location")) else {
            continue;
        };
        let q = cell(&r, "quantityonhand")
            .map(|t| decimal(&t, "quantityonhand"))
            .transpose()?
            .unwrap_or_default();
        out.insert((i, l), q);
    }
    Ok(out)
}

async fn netsuite_items(ns: &NetSuiteClient) -> Result<Vec<NsItem>, Failure> {
    let q = "SELECT id, itemid, displayname, baseprice, isinactive FROM item WHERE itemtype = 'InvtPart' ORDER BY id";
    let mut out = Vec::new();
    for r in ns.suiteql(q, 1000).await.map_err(ns_failure)? {
        if cell(&r, "isinactive").as_deref() == Some("T") {
            continue;
        }
        let (Some(id), Some(sku)) = (cell(&r, "id"), cell(&r, "itemid")) else {
            continue;
        };
        let description = cell(&r, "displayname")
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| sku.clone());
        let price = cell(&r, "baseprice")
            .map(|t| decimal(&t, "baseprice"))
            .transpose()?;
        out.push(NsItem {
            id,
            sku,
            description,
            price,
        });
    }
    Ok(out)
}

/// Retail's available quantity (what the POS may sell); on-hand when the row has no availability.
fn available(v: &heartsuite_heartland::retail::InventoryValue) -> Decimal {
    v.qty_available
        .or(v.qty_on_hand)
        .or(v.qty)
        .unwrap_or_default()
}

type PushLocks = std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>;
static PUSH_LOCKS: std::sync::LazyLock<PushLocks> = std::sync::LazyLock::new(Default::default);

/// Sets Retail's available quantity of one item at every paired location to NetSuite's on-hand,
/// one adjustment set per location that differs. The changes are computed from what both sides
/// hold now, so a rerun after a completed push changes nothing. Returns the adjustment set ids.
pub async fn push_item_stock(
    ns: &NetSuiteClient,
    retail: &RetailClient,
    cfg: &StockConfig,
    netsuite_item_id: &str,
    retail_item_id: i64,
    note: &str,
) -> Result<Vec<i64>, Failure> {
    // A number only: it goes into a SuiteQL query.
    let item: u64 = netsuite_item_id.trim().parse().map_err(|_| {
        Failure::data(format!(
            "body.netsuite_item_id `{netsuite_item_id}` is not a NetSuite internal id"
        ))
        .with_field("body.netsuite_item_id")
    })?;
    // Two pushes of one item at once (a create and an edit event a moment apart) would each read
    // the same quantities and both add the difference; one at a time, the second finds none.
    // Across processes on PostgreSQL this is not held: the drift check reports such a race and
    // the next push of the item corrects it.
    let lock = {
        let mut locks = PUSH_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(retail_item_id).or_default().clone()
    };
    let _held = lock.lock().await;
    let pairs = location_pairs(ns, retail, cfg).await?;
    if pairs.is_empty() {
        return Err(Failure::data("no NetSuite location is paired with a Heartland Retail location; set [stock] locations").with_field("stock.locations"));
    }
    let on_hand = netsuite_on_hand(ns, Some(item)).await?;
    let current = retail
        .inventory_values(&InventoryQuery {
            item_id: Some(retail_item_id),
            ..Default::default()
        })
        .await?;
    let mut changes = Vec::new();
    for p in &pairs {
        let want = on_hand
            .get(&(item.to_string(), p.netsuite_id.clone()))
            .copied()
            .unwrap_or_default();
        let have: Decimal = current
            .iter()
            .filter(|v| v.item_id == retail_item_id && v.location_id == Some(p.retail_id))
            .map(available)
            .sum();
        if want != have {
            changes.push((p.retail_id, want - have));
        }
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let reasons = retail.adjustment_reasons().await?;
    let reason = match &cfg.adjustment_reason {
        Some(name) => reasons.iter().find(|r| {
            r.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
        }),
        None => reasons.iter().find(|r| r.active != Some(false)),
    }
    .ok_or_else(|| {
        Failure::data(match &cfg.adjustment_reason {
            Some(n) => format!("Heartland Retail has no inventory adjustment reason named `{n}`"),
            None => "Heartland Retail has no active inventory adjustment reason".into(),
        })
        .with_field("stock.adjustment_reason")
    })?;
    let mut sets = Vec::new();
    for (location, delta) in changes {
        let line = AdjustmentLine {
            item_id: retail_item_id,
            qty: delta,
            unit_cost: None,
        };
        sets.push(
            retail
                .adjust_inventory(location, reason.id, note, &[line])
                .await?,
        );
    }
    Ok(sets)
}

/// Retail's items with this SKU (`public_id`): none, one, or (a data problem) several.
pub async fn retail_items_by_sku(
    retail: &RetailClient,
    sku: &str,
) -> Result<Vec<heartsuite_heartland::retail::Item>, Failure> {
    Ok(retail
        .list_items(&heartsuite_heartland::ListQuery::filter(
            serde_json::json!({"public_id": {"$eq": sku}}),
        ))
        .await?)
}

/// The Retail item for a NetSuite item, found by SKU (NetSuite `itemId` = Retail `public_id`);
/// `None` while the item has not reached Retail yet. Two Retail items with one SKU is a data error.
pub async fn retail_item_for(
    ns: &NetSuiteClient,
    retail: &RetailClient,
    netsuite_item_id: &str,
) -> Result<Option<i64>, Failure> {
    // A number only: it goes into a SuiteQL query.
    let id: u64 = netsuite_item_id.trim().parse().map_err(|_| {
        Failure::data(format!(
            "NetSuite item id `{netsuite_item_id}` is not an internal id"
        ))
        .with_field("body.netsuite_item_ids")
    })?;
    let rows = ns
        .suiteql(&format!("SELECT itemid FROM item WHERE id = {id}"), 1)
        .await
        .map_err(ns_failure)?;
    let Some(sku) = rows.first().and_then(|r| cell(r, "itemid")) else {
        return Ok(None);
    };
    let found = retail_items_by_sku(retail, &sku).await?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.id)),
        many => Err(Failure::data(format!(
            "Heartland Retail has {} items with SKU (public_id) `{sku}`; make it unique",
            many.len()
        ))
        .with_field("public_id")),
    }
}

/// Compares every NetSuite inventory item with Heartland Retail: items on one side only, price
/// and description differences, and on-hand vs available quantity at every paired location.
pub async fn check(
    ns: &NetSuiteClient,
    retail: &RetailClient,
    cfg: &StockConfig,
) -> Result<DriftReport, Failure> {
    let locations = location_pairs(ns, retail, cfg).await?;
    let ns_items = netsuite_items(ns).await?;
    let on_hand = netsuite_on_hand(ns, None).await?;
    let rt_items = retail.list_items(&Default::default()).await?;
    let rt_stock = retail.inventory_values(&InventoryQuery::default()).await?;
    let mut by_sku: BTreeMap<&str, Vec<&heartsuite_heartland::retail::Item>> = BTreeMap::new();
    // Retired items on either side are not compared: a NetSuite item made inactive is pushed as
    // `active? = false`, and an inactive Retail item sells nothing.
    for i in rt_items.iter().filter(|i| i.active != Some(false)) {
        if let Some(sku) = i.public_id.as_deref() {
            by_sku.entry(sku).or_default().push(i);
        }
    }
    let mut findings = Vec::new();
    let finding = |sku: &str,
                   location: Option<&str>,
                   kind,
                   netsuite: Option<String>,
                   heartland: Option<String>| Finding {
        sku: sku.to_string(),
        location: location.map(str::to_string),
        kind,
        netsuite,
        heartland,
    };
    for n in &ns_items {
        let Some(matches) = by_sku.get(n.sku.as_str()) else {
            findings.push(finding(
                &n.sku,
                None,
                "only_in_netsuite",
                Some(format!("item {}", n.id)),
                None,
            ));
            continue;
        };
        if matches.len() > 1 {
            let ids: Vec<String> = matches.iter().map(|i| i.id.to_string()).collect();
            findings.push(finding(
                &n.sku,
                None,
                "duplicate_in_heartland",
                Some(format!("item {}", n.id)),
                Some(format!("items {}", ids.join(", "))),
            ));
        }
        let r = matches[0];
        if n.price.map(|p| p.normalize()) != r.price.map(|p| p.normalize()) {
            findings.push(finding(
                &n.sku,
                None,
                "price",
                n.price.map(|p| p.to_string()),
                r.price.map(|p| p.to_string()),
            ));
        }
        if Some(n.description.as_str()) != r.description.as_deref() {
            findings.push(finding(
                &n.sku,
                None,
                "description",
                Some(n.description.clone()),
                r.description.clone(),
            ));
        }
        for p in &locations {
            let want = on_hand
                .get(&(n.id.clone(), p.netsuite_id.clone()))
                .copied()
                .unwrap_or_default();
            let have: Decimal = rt_stock
                .iter()
                .filter(|v| v.item_id == r.id && v.location_id == Some(p.retail_id))
                .map(available)
                .sum();
            if want != have {
                findings.push(finding(
                    &n.sku,
                    Some(&p.name),
                    "quantity",
                    Some(want.normalize().to_string()),
                    Some(have.normalize().to_string()),
                ));
            }
        }
    }
    let ns_skus: std::collections::BTreeSet<&str> =
        ns_items.iter().map(|n| n.sku.as_str()).collect();
    for (sku, items) in &by_sku {
        if !ns_skus.contains(sku) {
            findings.push(finding(
                sku,
                None,
                "only_in_heartland",
                None,
                Some(format!("item {}", items[0].id)),
            ));
        }
    }
    Ok(DriftReport {
        items_checked: ns_items.len(),
        locations,
        findings,
    })
}

/// The check with the configured clients: both `[netsuite]` and `[retail]` are needed.
pub async fn check_with(connectors: &Connectors) -> Result<DriftReport, Failure> {
    let (Some(ns), Some(retail)) = (&connectors.netsuite, &connectors.retail) else {
        return Err(Failure::new(
            heartsuite_core::ErrorClass::Auth,
            "the drift check needs both [netsuite] and [retail] in the configuration",
        ));
    };
    check(ns, retail, &connectors.stock).await
}

/// Inside `serve`: the check every `every_secs`, drift logged per finding and alerted once per run.
pub fn spawn(
    cfg: &DriftConfig,
    connectors: Arc<Connectors>,
    alerts: Arc<Alerts>,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if cfg.every_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(cfg.every_secs);
    Some(tokio::spawn(async move {
        loop {
            tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(every) => {} }
            match check_with(&connectors).await {
                Ok(r) if r.has_drift() => {
                    for f in &r.findings {
                        tracing::warn!(sku = %f.sku, location = f.location.as_deref().unwrap_or("-"), kind = f.kind, netsuite = f.netsuite.as_deref().unwrap_or("-"), heartland = f.heartland.as_deref().unwrap_or("-"), "stock drift");
                    }
                    let text = format!(
                        "stock drift: {} difference(s) between NetSuite and Heartland Retail; run `heartsuite drift` for the list",
                        r.findings.len()
                    );
                    alerts.fire(AlertKind::ReconciliationDifferences, "stock-drift", &text);
                }
                Ok(r) => tracing::info!(
                    items = r.items_checked,
                    locations = r.locations.len(),
                    "stock drift check: none"
                ),
                Err(f) => tracing::warn!("stock drift check failed; will try again: {f}"),
            }
        }
    }))
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum DriftFormat {
    #[default]
    Table,
    Json,
}

/// `heartsuite drift`: prints the report; exits 0 when the sides agree, 1 when drift is found,
/// 2 when the check could not run (so a script can tell drift from a failure).
pub async fn command(
    cfg: &crate::config::Config,
    format: DriftFormat,
    clock: Arc<dyn heartsuite_core::Clock>,
) -> anyhow::Result<()> {
    let secrets = crate::config::SecretResolver::new(cfg);
    let connectors = Connectors::from_config(cfg, &secrets, clock, None)?;
    let report = match check_with(&connectors).await {
        Ok(r) => r,
        Err(f) => {
            eprintln!("error: the drift check could not run: {f}");
            std::process::exit(2);
        }
    };
    match format {
        DriftFormat::Table => print!("{}", report.table()),
        DriftFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if report.has_drift() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(1);
    }
    Ok(())
}

//! The write targets flows may name, and the connectors that carry them out:
//! `netsuite.upsert`, `netsuite.transform`, `gpapi.capture`, `gpapi.refund`, `gpapi.reverse`.
//! Each is idempotent under the intent's key, which is what makes a rerun after a crash safe.

use crate::config::{Config, SecretResolver};
use anyhow::{Result, anyhow, bail};
use heartsuite_core::{Clock, Failure, Money};
use heartsuite_flows::WriteIntent;
use heartsuite_heartland::{GpApiClient, GpApiConfig, PaymentMethod, PaymentRequest, RetailClient, RetailConfig};
use heartsuite_netsuite::{Auth, Concurrency, NetSuiteClient};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// NetSuite's concurrency limit is per account, shared by every process: with PostgreSQL the
/// permits are lease rows in the database, so the sum across processes stays under the limit.
pub struct StorePermits {
    pub store: heartsuite_store::DynStore,
    pub clock: Arc<dyn Clock>,
    /// Longer than the client's request timeout, so a slot is never reclaimed mid-request.
    pub ttl: Duration,
}

#[async_trait::async_trait]
impl heartsuite_netsuite::PermitStore for StorePermits {
    async fn acquire(&self, pool: &str, limit: u32, owner: &str) -> Result<Option<u32>, Failure> {
        let now = self.clock.now_micros();
        self.store
            .acquire_permit(pool, limit, owner, now, self.ttl.as_micros() as i64)
            .await
            .map_err(|e| Failure::transient(format!("permit store: {e}")).with_system("store"))
    }
    async fn release(&self, pool: &str, slot: u32, owner: &str) -> Result<(), Failure> {
        self.store.release_permit(pool, slot, owner).await.map_err(|e| Failure::transient(format!("permit store: {e}")).with_system("store"))
    }
}

#[derive(Default)]
pub struct Connectors {
    pub netsuite: Option<Arc<NetSuiteClient>>,
    pub gpapi: Option<Arc<GpApiClient>>,
    pub retail: Option<Arc<RetailClient>>,
    /// Location pairing and adjustment reason for `retail.inventory_set`.
    pub stock: crate::drift::StockConfig,
}

fn not_configured(system: &str) -> Failure {
    // A flow that writes to a system with no credentials: the operator must configure it;
    // auth-class keeps the job parked (attempts refunded) instead of losing it.
    Failure::new(heartsuite_core::ErrorClass::Auth, format!("no [{system}] section in the configuration")).with_system(system)
}

fn param<'a>(intent: &'a WriteIntent, name: &str) -> Result<&'a str, Failure> {
    intent.params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| {
        Failure::data(format!("write `{}` needs params.{name}", intent.target)).with_field(format!("params.{name}"))
    })
}

fn amount_param(intent: &WriteIntent) -> Result<Option<Money>, Failure> {
    let Some(amount) = intent.params.get("amount").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }) else {
        return Ok(None);
    };
    let currency = param(intent, "currency")?;
    Money::from_decimal_str(&amount, currency)
        .map(Some)
        .map_err(|e| Failure::data(format!("params.amount: {e}")).with_field("params.amount"))
}

impl Connectors {
    /// `store` given and PostgreSQL: NetSuite permits are shared through the database.
    pub fn from_config(cfg: &Config, secrets: &SecretResolver, clock: Arc<dyn Clock>, store: Option<heartsuite_store::DynStore>) -> Result<Self> {
        let mut c = Connectors::default();
        if let Some(ns) = &cfg.netsuite {
            let get = |v: &Option<String>, key: &str| -> Result<heartsuite_core::Secret> {
                let r = v.as_deref().ok_or_else(|| anyhow!("configuration error: netsuite.{key} is required for auth = \"{}\"", ns.auth))?;
                secrets.resolve(r, &format!("netsuite.{key}"))
            };
            let auth = match ns.auth.as_str() {
                "tba" => Auth::Tba {
                    consumer_key: get(&ns.consumer_key, "consumer_key")?,
                    consumer_secret: get(&ns.consumer_secret, "consumer_secret")?,
                    token_id: get(&ns.token_id, "token_id")?,
                    token_secret: get(&ns.token_secret, "token_secret")?,
                },
                "oauth2" => Auth::OAuth2 {
                    client_id: get(&ns.client_id, "client_id")?.expose().to_string(),
                    certificate_id: get(&ns.certificate_id, "certificate_id")?.expose().to_string(),
                    private_key_pem: get(&ns.private_key, "private_key")?,
                    scope: "rest_webservices".into(),
                },
                other => bail!("configuration error: netsuite.auth = \"{other}\"; use \"tba\" or \"oauth2\""),
            };
            let mut conf = heartsuite_netsuite::Config::new(ns.account.clone(), auth);
            conf.base_url = ns.base_url.clone();
            conf.timeout = Duration::from_secs(ns.timeout_secs.max(1));
            conf.concurrency = if ns.concurrency == 0 { Concurrency::FromAccount { fallback: 5 } } else { Concurrency::Fixed(ns.concurrency) };
            conf.clock = clock.clone();
            if let (Some(store), 1..) = (store.filter(|s| s.backend() == "postgres"), ns.concurrency) {
                let permits = Arc::new(StorePermits { store, clock: clock.clone(), ttl: conf.timeout * 2 });
                let owner = format!("{}:{:x}", std::process::id(), clock.now_micros());
                let gov = heartsuite_netsuite::Governor::new(format!("netsuite:{}", ns.account), ns.concurrency, conf.increase_after)
                    .with_store(permits, owner);
                conf.governor = Some(Arc::new(gov));
            }
            c.netsuite = Some(Arc::new(NetSuiteClient::new(conf).map_err(|e| anyhow!("netsuite: {e}"))?));
        }
        if let Some(gp) = &cfg.gpapi {
            let mut conf = GpApiConfig::new(gp.app_id.clone(), secrets.resolve(&gp.app_key, "gpapi.app_key")?);
            if let Some(u) = &gp.base_url {
                conf = conf.with_base_url(u.clone());
            }
            c.gpapi = Some(Arc::new(GpApiClient::with_clock(conf, clock.clone()).map_err(|e| anyhow!("gpapi: {e}"))?));
        }
        if let Some(r) = &cfg.retail {
            let conf = RetailConfig::new(r.base_url.clone(), secrets.resolve(&r.token, "retail.token")?);
            c.retail = Some(Arc::new(RetailClient::new(conf).map_err(|e| anyhow!("retail: {e}"))?));
        }
        c.stock = cfg.stock.clone();
        Ok(c)
    }

    fn netsuite(&self) -> Result<&NetSuiteClient, Failure> {
        self.netsuite.as_deref().ok_or_else(|| not_configured("netsuite"))
    }

    fn retail(&self) -> Result<&RetailClient, Failure> {
        self.retail.as_deref().ok_or_else(|| not_configured("retail"))
    }

    fn gpapi(&self) -> Result<&GpApiClient, Failure> {
        self.gpapi.as_deref().ok_or_else(|| not_configured("gpapi"))
    }

    /// Whether a crosswalk miss can be answered by the remote (NetSuite records by external id).
    pub fn can_lookup(&self, system: &str, record_type: &str) -> bool {
        system == "netsuite" && self.netsuite.is_some() && !record_type.contains('_')
    }

    pub async fn remote_lookup(&self, system: &str, record_type: &str, key: &str) -> Result<Option<String>, Failure> {
        match system {
            // Items are keyed by SKU (NetSuite's itemId), not by our externalId: most are made in
            // NetSuite, which is the book of record for items.
            "netsuite" if record_type == "item" => self.netsuite_item_by_sku(key).await,
            // Web-store customers: exact keys only (a normalised e-mail; an E.164 phone with
            // lower-case first and last name, `|`-joined). Fuzzy matching is the dedupe step's.
            "netsuite" if record_type == "customerEmail" => self.netsuite_customer_where(&[("LOWER(email)", key)]).await,
            "netsuite" if record_type == "customerPhoneName" => match key.splitn(3, '|').collect::<Vec<_>>()[..] {
                [phone, first, last] => {
                    self.netsuite_customer_where(&[("phone", phone), ("LOWER(firstname)", first), ("LOWER(lastname)", last)]).await
                }
                _ => Err(Failure::data(format!("customerPhoneName key `{key}` is not phone|first|last")).with_field("key")),
            },
            "netsuite" => self.netsuite()?.find_id_by_external_id(record_type, key).await.map_err(|e| e.to_failure()),
            _ => Ok(None),
        }
    }

    /// What a write produced, for later steps (`steps.<name>.response`). GP-API writes answer
    /// with the transaction as GP-API has it now, read back by id, so a rerun whose write was
    /// skipped (already in the crosswalk) sees the same decline or approval as the first run.
    pub async fn write_response(&self, target: &str, remote_id: &str) -> Result<Value, Failure> {
        if !target.starts_with("gpapi.") {
            return Ok(Value::Null);
        }
        let t = self.gpapi()?.get_transaction(remote_id).await?;
        let pm = t.payment_method.as_ref();
        Ok(serde_json::json!({
            "id": t.id,
            "status": t.status.as_str(),
            "amount": t.amount.map(|m| m.minor.to_string()),
            "currency": t.amount.map(|m| m.code().to_string()),
            "reference": t.reference,
            "parent_id": t.parent_resource_id,
            "result_code": t.action.as_ref().and_then(|a| a.result_code.clone()),
            "result": pm.and_then(|p| p.result.clone()),
            "message": pm.and_then(|p| p.message.clone()),
            "authcode": pm.and_then(|p| p.card.as_ref()).and_then(|c| c.authcode.clone()),
            "brand": pm.and_then(|p| p.card.as_ref()).and_then(|c| c.brand.clone()),
        }))
    }

    /// The oldest active customer whose columns equal the values (quoted literals, `'` doubled).
    /// Several matches are left to the customer dedupe; the oldest is the one people have used.
    async fn netsuite_customer_where(&self, conds: &[(&str, &str)]) -> Result<Option<String>, Failure> {
        let wh: Vec<String> = conds.iter().map(|(col, v)| format!("{col} = '{}'", v.replace('\'', "''"))).collect();
        let q = format!("SELECT id FROM customer WHERE isinactive = 'F' AND {} ORDER BY id", wh.join(" AND "));
        let page = self.netsuite()?.suiteql_page(&q, 1, 0).await.map_err(|e| e.to_failure())?;
        Ok(page.items.first().and_then(|r| match r.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }))
    }

    /// One SuiteQL query; the SKU becomes a quoted literal with `'` doubled, so no SKU can end the
    /// string. Two items with one SKU is a data error: picking either would post the wrong item.
    async fn netsuite_item_by_sku(&self, sku: &str) -> Result<Option<String>, Failure> {
        let q = format!("SELECT id FROM item WHERE itemid = '{}'", sku.replace('\'', "''"));
        // One page of two rows is enough to tell none, one and more than one apart.
        let page = self.netsuite()?.suiteql_page(&q, 2, 0).await.map_err(|e| e.to_failure())?;
        let ids: Vec<String> = page
            .items
            .iter()
            .filter_map(|r| match r.get("id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        match ids.as_slice() {
            [] => Ok(None),
            [id] => Ok(Some(id.clone())),
            _ => Err(Failure::data(format!("NetSuite has {} items with SKU (itemId) `{sku}`; make it unique", ids.len())).with_field("sku")),
        }
    }

    pub async fn execute(&self, intent: &WriteIntent) -> Result<String, Failure> {
        match intent.target.as_str() {
            "netsuite.upsert" => {
                self.netsuite()?.upsert(&intent.record_type, &intent.idempotency_key, &intent.body).await.map_err(|e| e.to_failure())
            }
            "netsuite.transform" => {
                let ns = self.netsuite()?;
                // A transform is not idempotent by itself: the new record carries our key as its
                // externalId, and a rerun finds it instead of transforming twice.
                if let Some(id) = ns.find_id_by_external_id(&intent.record_type, &intent.idempotency_key).await.map_err(|e| e.to_failure())? {
                    return Ok(id);
                }
                let mut body = intent.body.clone();
                if let Value::Object(m) = &mut body {
                    m.insert("externalId".into(), Value::String(intent.idempotency_key.clone()));
                }
                ns.transform(param(intent, "from_type")?, param(intent, "from_id")?, &intent.record_type, Some(&body))
                    .await
                    .map_err(|e| e.to_failure())
            }
            "gpapi.capture" => {
                let t = self.gpapi()?.capture(param(intent, "transaction_id")?, amount_param(intent)?, &intent.idempotency_key).await?;
                Ok(t.id)
            }
            "gpapi.refund" => {
                let t = self.gpapi()?.refund(param(intent, "transaction_id")?, amount_param(intent)?, &intent.idempotency_key).await?;
                Ok(t.id)
            }
            "gpapi.reverse" => {
                let t = self.gpapi()?.reverse(param(intent, "transaction_id")?, &intent.idempotency_key).await?;
                Ok(t.id)
            }
            "gpapi.authorize" => {
                // An order paid with a stored token (`PMT_…`, never a card number): authorized
                // now and captured per shipment, hence `MULTIPLE`. A decline is an answer, not a
                // failure: the flow reads `status` from the write's response.
                let amount = amount_param(intent)?
                    .ok_or_else(|| Failure::data("write `gpapi.authorize` needs params.amount").with_field("params.amount"))?;
                let token = param(intent, "token")?;
                if !token.starts_with("PMT_") {
                    return Err(Failure::data("params.token must be a stored GP-API payment method id (PMT_…)").with_field("params.token"));
                }
                let text = |name: &str| intent.params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
                let mut req = PaymentRequest::new(amount, PaymentMethod::Token(token.to_string()), intent.idempotency_key.clone());
                req.reference = text("reference");
                req.order_reference = text("order_reference");
                let t = self.gpapi()?.authorize_multiple(&req).await?;
                Ok(t.id)
            }
            "retail.item_upsert" => self.retail_item_upsert(intent).await,
            "retail.inventory_set" => self.retail_inventory_set(intent).await,
            other => Err(Failure::data(format!(
                "unknown write target `{other}`; known: netsuite.upsert, netsuite.transform, retail.item_upsert, retail.inventory_set, gpapi.authorize, gpapi.capture, gpapi.refund, gpapi.reverse"
            ))
            .with_field("target")),
        }
    }
}

impl Connectors {
    /// `retail.item_upsert`: the Retail item whose `public_id` is the body's SKU is updated, or
    /// created when there is none. Looked up by SKU first, so a rerun after a crash between the
    /// create and our record of it updates the item it made instead of making a second one.
    async fn retail_item_upsert(&self, intent: &WriteIntent) -> Result<String, Failure> {
        let retail = self.retail()?;
        let body = intent.body.as_object().ok_or_else(|| Failure::data("write `retail.item_upsert` needs an object body").with_field("body"))?;
        let text = |k: &str| body_text(intent, k);
        let sku = required_body_text(intent, "public_id")?;
        let currency = retail.config().currency.clone();
        let money = |k: &str| -> Result<Option<Money>, Failure> {
            text(k)
                .map(|t| Money::from_decimal_str(&t, &currency).map_err(|e| Failure::data(format!("body.{k}: {e}")).with_field(format!("body.{k}"))))
                .transpose()
        };
        let mut input = heartsuite_heartland::retail::ItemInput {
            public_id: Some(sku.clone()),
            description: text("description"),
            price: money("price")?,
            cost: money("cost")?,
            active: body.get("active?").and_then(Value::as_bool),
            // Only inventory items come this way, and Retail counts stock only for tracked items.
            track_inventory: Some(true),
            primary_vendor_id: None,
            custom: body.get("custom").and_then(Value::as_object).cloned(),
        };
        let found = crate::drift::retail_items_by_sku(retail, &sku).await?;
        let existing = match found.as_slice() {
            [] => match retail.create_item(&input).await {
                Ok(id) => return Ok(id.to_string()),
                // Another job created the SKU between our look-up and our create (a create and an
                // edit event a moment apart): Retail refuses a second item number, so update it.
                Err(e) => match crate::drift::retail_items_by_sku(retail, &sku).await?.as_slice() {
                    [one] => one.clone(),
                    _ => return Err(e.into()),
                },
            },
            [one] => one.clone(),
            many => return Err(Failure::data(format!("Heartland Retail has {} items with SKU (public_id) `{sku}`; make it unique", many.len())).with_field("body.public_id")),
        };
        // `custom` is one field on the wire: keep the merchant's own custom fields, set ours.
        if let (Some(ours), Some(theirs)) = (&input.custom, &existing.custom) {
            let mut merged = theirs.clone();
            merged.extend(ours.clone());
            input.custom = Some(merged);
        }
        retail.update_item(existing.id, &input).await?;
        Ok(existing.id.to_string())
    }
}

/// A body field as text (numbers in their exact JSON form), trimmed; empty counts as absent.
fn body_text(intent: &WriteIntent, k: &str) -> Option<String> {
    match intent.body.get(k)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn required_body_text(intent: &WriteIntent, k: &str) -> Result<String, Failure> {
    body_text(intent, k).ok_or_else(|| Failure::data(format!("write `{}` needs body.{k}", intent.target)).with_field(format!("body.{k}")))
}

impl Connectors {
    /// `retail.inventory_set`: Retail's available quantity of `body.retail_item_id` at every paired
    /// location becomes NetSuite's on-hand of `body.netsuite_item_id` (src/drift.rs). A set, not
    /// a delta, so a rerun finds the quantities already equal and changes nothing.
    ///
    /// With `body.netsuite_item_ids` (a NetSuite inventory adjustment's items) each item is
    /// found in Retail by SKU and pushed; one not in Retail yet is skipped, as its stock goes
    /// along when the item flow creates it.
    async fn retail_inventory_set(&self, intent: &WriteIntent) -> Result<String, Failure> {
        if let Some(list) = intent.body.get("netsuite_item_ids") {
            let ids: std::collections::BTreeSet<String> = list
                .as_array()
                .ok_or_else(|| Failure::data("body.netsuite_item_ids must be a list").with_field("body.netsuite_item_ids"))?
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.trim().to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            let (ns, retail) = (self.netsuite()?, self.retail()?);
            let mut done = Vec::new();
            for ns_item in ids {
                let outcome = match crate::drift::retail_item_for(ns, retail, &ns_item).await? {
                    None => "not in Retail".to_string(),
                    Some(item) => pushed(&crate::drift::push_item_stock(ns, retail, &self.stock, &ns_item, item, &intent.idempotency_key).await?),
                };
                done.push(format!("{ns_item}:{outcome}"));
            }
            return Ok(done.join(" "));
        }
        let item: i64 = required_body_text(intent, "retail_item_id")?
            .parse()
            .map_err(|_| Failure::data("body.retail_item_id must be a Heartland Retail item id").with_field("body.retail_item_id"))?;
        let ns_item = required_body_text(intent, "netsuite_item_id")?;
        let sets = crate::drift::push_item_stock(self.netsuite()?, self.retail()?, &self.stock, &ns_item, item, &intent.idempotency_key).await?;
        Ok(pushed(&sets))
    }
}

/// The crosswalk keeps which adjustment sets a push made ("none": the quantities were equal).
fn pushed(sets: &[i64]) -> String {
    let ids: Vec<String> = sets.iter().map(i64::to_string).collect();
    if ids.is_empty() { "none".into() } else { ids.join(",") }
}

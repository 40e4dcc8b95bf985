//! Heartland Retail (formerly Springboard Retail) REST client: items, inventory (levels and
//! adjustment sets), customers, sales tickets, payments, locations and webhooks. Bearer-token
//! auth; collections page with `page`/`per_page` and answer `{results, total, pages}`.

mod types;

pub use types::{
    Address, AdjustmentLine, AdjustmentReason, Customer, CustomerInput, InventoryValue, Item,
    ItemInput, Location, Payment, RetailPage, Ticket, TicketDetail, TicketLine, Webhook,
};

use crate::error::{Error, System, mask};
use crate::wire;
use heartsuite_core::{Money, Secret};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::marker::PhantomData;
use std::time::Duration;
use url::Url;

const SYS: System = System::Retail;
const MAX_PAGES: u32 = 100_000;

#[derive(Clone, Debug)]
pub struct RetailConfig {
    /// Up to and including `/api`, e.g. `https://acme.retail.heartland.us/api`.
    pub base_url: String,
    pub token: Secret,
    /// The account's currency: Retail amounts carry none.
    pub currency: String,
    pub timeout: Duration,
    /// Page size for collect-all helpers.
    pub per_page: u32,
    /// How many times one call waits out a 429 itself before returning `rate_limited`.
    pub max_rate_limit_retries: u32,
    /// A 429 asking for longer than this is returned at once rather than slept on.
    pub max_retry_wait: Duration,
}

impl RetailConfig {
    pub fn new(base_url: impl Into<String>, token: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            currency: "USD".into(),
            timeout: Duration::from_secs(30),
            per_page: 100,
            max_rate_limit_retries: 2,
            max_retry_wait: Duration::from_secs(5),
        }
    }

    pub fn for_subdomain(subdomain: &str, token: Secret) -> Self {
        Self::new(
            format!("https://{subdomain}.retail.heartland.us/api"),
            token,
        )
    }
}

/// Query options for a collection.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Sent as `_filter=<json>`, e.g. `{"local_completed_at":{"$gte":"2025-01-01T00:00:00"}}`.
    pub filter: Option<Value>,
    /// `sort[]` entries such as `id,desc`.
    pub sort: Vec<String>,
    /// Page size; default `RetailConfig::per_page`.
    pub per_page: Option<u32>,
    /// Anything else (`_include[]`, `embed[]`, plain field filters...).
    pub extra: Vec<(String, String)>,
}

impl ListQuery {
    pub fn filter(filter: Value) -> Self {
        Self {
            filter: Some(filter),
            ..Self::default()
        }
    }
}

/// Which inventory rows to read from `/inventory/values`.
#[derive(Debug, Clone, Default)]
pub struct InventoryQuery {
    pub item_id: Option<i64>,
    pub location_id: Option<i64>,
    pub exclude_empty_locations: bool,
}

#[derive(Clone)]
pub struct RetailClient {
    cfg: RetailConfig,
    base: Url,
    http: reqwest::Client,
}

impl std::fmt::Debug for RetailClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetailClient")
            .field("base_url", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Walks a collection page by page (an async iterator without a stream dependency).
pub struct Pager<'c, T> {
    client: &'c RetailClient,
    segments: Vec<String>,
    query: ListQuery,
    next: Option<u32>,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<'_, T> {
    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<RetailPage<T>>, Error> {
        let Some(n) = self.next else { return Ok(None) };
        let segs: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let page = self.client.list_page::<T>(&segs, &self.query, n).await?;
        self.next = if page.has_more() && n < MAX_PAGES {
            Some(n + 1)
        } else {
            None
        };
        Ok(Some(page))
    }
}

impl RetailClient {
    pub fn new(cfg: RetailConfig) -> Result<Self, Error> {
        let base = Url::parse(cfg.base_url.trim_end_matches('/'))
            .map_err(|e| Error::config(SYS, format!("base_url `{}`: {e}", cfg.base_url)))?;
        if base.cannot_be_a_base() {
            return Err(Error::config(
                SYS,
                format!("base_url `{}` cannot hold paths", cfg.base_url),
            ));
        }
        if cfg.token.is_empty() {
            return Err(Error::config(SYS, "an API token is required"));
        }
        wire_currency(&cfg.currency)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::config(SYS, format!("http client: {e}")))?;
        Ok(Self { cfg, base, http })
    }

    pub fn config(&self) -> &RetailConfig {
        &self.cfg
    }

    /// A Retail decimal as `Money` in the account's currency; more places than the currency has
    /// is an error, never a rounding.
    pub fn money(&self, d: Decimal) -> Result<Money, Error> {
        // Through the decimal's exact text, so the core's precision check applies.
        Money::from_decimal_str(&d.to_string(), &self.cfg.currency)
            .map_err(|e| Error::decode(SYS, format!("amount {d}: {e}")))
    }

    fn decimal(&self, m: Money, field: &str) -> Result<Decimal, Error> {
        if !m.code().eq_ignore_ascii_case(&self.cfg.currency) {
            return Err(Error::input(
                format!(
                    "{field} is in {}, the Retail account uses {}",
                    m.code(),
                    self.cfg.currency
                ),
                Some(field),
            ));
        }
        Ok(m.to_decimal())
    }

    // ---------------------------------------------------------------- transport

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let url = wire::join(&self.base, segments);
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.cfg.token.expose())
                .header("Accept", "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| Error::transport(SYS, &e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body_bytes = resp
                .bytes()
                .await
                .map_err(|e| Error::transport(SYS, &e))?
                .to_vec();
            tracing::debug!(system = "retail", method = %method, path = url.path(), status = status.as_u16(), "retail call");
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = wire::retry_after(&headers);
                // A 429 was not processed, so repeating even a POST is safe; bounded in count and
                // in how long we are willing to hold the caller.
                let sleep = wait.unwrap_or(Duration::from_secs(1));
                if attempt < self.cfg.max_rate_limit_retries && sleep <= self.cfg.max_retry_wait {
                    attempt += 1;
                    tokio::time::sleep(sleep).await;
                    continue;
                }
            }
            if status.is_success() {
                return Ok(Reply {
                    status,
                    headers,
                    body: body_bytes,
                });
            }
            return Err(retail_error(
                status,
                wire::retry_after(&headers),
                &body_bytes,
            ));
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(String, String)],
    ) -> Result<T, Error> {
        let r = self.send(Method::GET, segments, query, None).await?;
        parse(&r.body, segments)
    }

    /// One page of any collection (`segments` relative to `/api`, e.g. `["sales", "tickets"]`).
    pub async fn list_page<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        q: &ListQuery,
        page: u32,
    ) -> Result<RetailPage<T>, Error> {
        let per_page = q.per_page.unwrap_or(self.cfg.per_page).max(1);
        let page = page.max(1);
        let mut query = vec![
            ("page".to_string(), page.to_string()),
            ("per_page".to_string(), per_page.to_string()),
        ];
        if let Some(f) = &q.filter {
            query.push(("_filter".into(), f.to_string()));
        }
        for s in &q.sort {
            query.push(("sort[]".into(), s.clone()));
        }
        query.extend(q.extra.iter().cloned());
        let v: Value = self.get_json(segments, &query).await?;
        let Value::Object(mut obj) = v else {
            return Err(Error::decode(
                SYS,
                format!("/{} is not a collection", segments.join("/")),
            ));
        };
        let results = match obj.remove("results") {
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|r| {
                    serde_json::from_value(r)
                        .map_err(|e| Error::decode(SYS, format!("/{}: {e}", segments.join("/"))))
                })
                .collect::<Result<Vec<T>, _>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(Error::decode(SYS, "`results` is not an array")),
        };
        let num = |k: &str| {
            obj.get(k)
                .and_then(wire::scalar_text)
                .and_then(|t| t.parse::<u64>().ok())
        };
        Ok(RetailPage {
            results,
            total: num("total"),
            pages: num("pages").map(|p| p.min(u64::from(u32::MAX)) as u32),
            page,
            per_page,
        })
    }

    /// A page-by-page walk over a collection.
    pub fn pages<T: DeserializeOwned>(&self, segments: &[&str], q: ListQuery) -> Pager<'_, T> {
        Pager {
            client: self,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            query: q,
            next: Some(1),
            _t: PhantomData,
        }
    }

    /// Every record of a collection.
    pub async fn collect_all<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        q: &ListQuery,
    ) -> Result<Vec<T>, Error> {
        let mut pager = self.pages::<T>(segments, q.clone());
        let mut out = Vec::new();
        while let Some(p) = pager.next_page().await? {
            out.extend(p.results);
        }
        Ok(out)
    }

    /// POST; Retail answers 201 with a `Location` ending in the new id (the body may be empty).
    async fn create(&self, segments: &[&str], body: &Value) -> Result<i64, Error> {
        let r = self.send(Method::POST, segments, &[], Some(body)).await?;
        if let Some(id) = r
            .headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .and_then(|s| s.parse::<i64>().ok())
        {
            return Ok(id);
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        v.get("id")
            .and_then(wire::scalar_text)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                Error::decode(
                    SYS,
                    format!(
                        "POST /{} answered {} without a Location or id",
                        segments.join("/"),
                        r.status
                    ),
                )
            })
    }

    async fn update(&self, segments: &[&str], body: &Value) -> Result<(), Error> {
        self.send(Method::PUT, segments, &[], Some(body))
            .await
            .map(|_| ())
    }

    // ---------------------------------------------------------------- items

    pub async fn list_items(&self, q: &ListQuery) -> Result<Vec<Item>, Error> {
        self.collect_all(&["items"], q).await
    }

    pub async fn get_item(&self, id: i64) -> Result<Item, Error> {
        self.get_json(&["items", &id.to_string()], &[]).await
    }

    /// Creates an item and returns its id.
    pub async fn create_item(&self, input: &ItemInput) -> Result<i64, Error> {
        let body = self.item_body(input)?;
        self.create(&["items"], &body).await
    }

    pub async fn update_item(&self, id: i64, input: &ItemInput) -> Result<(), Error> {
        let body = self.item_body(input)?;
        self.update(&["items", &id.to_string()], &body).await
    }

    fn item_body(&self, i: &ItemInput) -> Result<Value, Error> {
        let mut b = json!({});
        if let Some(v) = &i.public_id {
            b["public_id"] = json!(v);
        }
        if let Some(v) = &i.description {
            b["description"] = json!(v);
        }
        if let Some(m) = i.price {
            b["price"] = decimal_value(self.decimal(m, "price")?)?;
        }
        if let Some(m) = i.cost {
            b["cost"] = decimal_value(self.decimal(m, "cost")?)?;
        }
        if let Some(v) = i.active {
            b["active?"] = json!(v);
        }
        if let Some(v) = i.track_inventory {
            b["track_inventory?"] = json!(v);
        }
        if let Some(v) = i.primary_vendor_id {
            b["primary_vendor_id"] = json!(v);
        }
        if let Some(v) = &i.custom {
            b["custom"] = Value::Object(v.clone());
        }
        Ok(b)
    }

    // ---------------------------------------------------------------- inventory

    /// Stock by item and location (`/inventory/values?group[]=item_id&group[]=location_id`).
    pub async fn inventory_values(&self, q: &InventoryQuery) -> Result<Vec<InventoryValue>, Error> {
        let mut lq = ListQuery::default();
        lq.extra.push(("group[]".into(), "item_id".into()));
        lq.extra.push(("group[]".into(), "location_id".into()));
        if q.exclude_empty_locations {
            lq.extra
                .push(("exclude_empty_locations".into(), "true".into()));
        }
        if let Some(i) = q.item_id {
            lq.extra.push(("item_id".into(), i.to_string()));
        }
        if let Some(l) = q.location_id {
            lq.extra.push(("location_id".into(), l.to_string()));
        }
        self.collect_all(&["inventory", "values"], &lq).await
    }

    /// The account's inventory adjustment reasons (`/reason_codes/inventory_adjustment_reasons`).
    pub async fn adjustment_reasons(&self) -> Result<Vec<AdjustmentReason>, Error> {
        self.collect_all(
            &["reason_codes", "inventory_adjustment_reasons"],
            &ListQuery::default(),
        )
        .await
    }

    /// Moves stock at one location: an adjustment set with one line per item (`qty` is the signed
    /// change), then completed, which is when Retail applies it. Returns the set's id.
    ///
    /// Not idempotent by itself: callers compute the changes from a fresh `inventory_values`
    /// read, so a rerun after a completed set finds nothing left to change. A set left pending
    /// by a failure moves no stock.
    pub async fn adjust_inventory(
        &self,
        location_id: i64,
        reason_id: i64,
        note: &str,
        lines: &[AdjustmentLine],
    ) -> Result<i64, Error> {
        let set = self
            .create(
                &["inventory", "adjustment_sets"],
                &json!({"location_id": location_id, "adjustment_reason_id": reason_id, "note": note}),
            )
            .await?;
        let set_s = set.to_string();
        for l in lines {
            let mut body = json!({"item_id": l.item_id, "qty": decimal_value(l.qty)?});
            if let Some(c) = l.unit_cost {
                body["unit_cost"] = decimal_value(c)?;
            }
            self.create(&["inventory", "adjustment_sets", &set_s, "lines"], &body)
                .await?;
        }
        self.update(
            &["inventory", "adjustment_sets", &set_s],
            &json!({"status": "complete"}),
        )
        .await?;
        Ok(set)
    }

    // ---------------------------------------------------------------- customers

    pub async fn list_customers(&self, q: &ListQuery) -> Result<Vec<Customer>, Error> {
        self.collect_all(&["customers"], q).await
    }

    pub async fn get_customer(&self, id: i64) -> Result<Customer, Error> {
        self.get_json(&["customers", &id.to_string()], &[]).await
    }

    /// The customer with `addresses` filled from `/customers/{id}/addresses`.
    pub async fn get_customer_with_addresses(&self, id: i64) -> Result<Customer, Error> {
        let mut c = self.get_customer(id).await?;
        c.addresses = self.customer_addresses(id).await?;
        Ok(c)
    }

    pub async fn customer_addresses(&self, id: i64) -> Result<Vec<Address>, Error> {
        self.collect_all(
            &["customers", &id.to_string(), "addresses"],
            &ListQuery::default(),
        )
        .await
    }

    pub async fn create_customer(&self, input: &CustomerInput) -> Result<i64, Error> {
        let body = serde_json::to_value(input).map_err(|e| Error::decode(SYS, e.to_string()))?;
        self.create(&["customers"], &body).await
    }

    pub async fn update_customer(&self, id: i64, input: &CustomerInput) -> Result<(), Error> {
        let body = serde_json::to_value(input).map_err(|e| Error::decode(SYS, e.to_string()))?;
        self.update(&["customers", &id.to_string()], &body).await
    }

    pub async fn add_customer_address(
        &self,
        customer_id: i64,
        address: &Address,
    ) -> Result<i64, Error> {
        let body = serde_json::to_value(address).map_err(|e| Error::decode(SYS, e.to_string()))?;
        self.create(&["customers", &customer_id.to_string(), "addresses"], &body)
            .await
    }

    // ---------------------------------------------------------------- sales

    pub async fn list_tickets(&self, q: &ListQuery) -> Result<Vec<Ticket>, Error> {
        self.collect_all(&["sales", "tickets"], q).await
    }

    pub async fn get_ticket(&self, id: i64) -> Result<Ticket, Error> {
        self.get_json(&["sales", "tickets", &id.to_string()], &[])
            .await
    }

    pub async fn ticket_lines(&self, id: i64) -> Result<Vec<TicketLine>, Error> {
        self.collect_all(
            &["sales", "tickets", &id.to_string(), "lines"],
            &ListQuery::default(),
        )
        .await
    }

    /// Payments of one ticket (`/sales/tickets/{id}/payments`; the path is UNCONFIRMED in the
    /// reference, mirroring orders' `/sales/orders/{id}/payments`).
    pub async fn ticket_payments(&self, id: i64) -> Result<Vec<Payment>, Error> {
        self.collect_all(
            &["sales", "tickets", &id.to_string(), "payments"],
            &ListQuery::default(),
        )
        .await
    }

    /// A ticket with its lines and payments.
    pub async fn ticket_detail(&self, id: i64) -> Result<TicketDetail, Error> {
        let ticket = self.get_ticket(id).await?;
        let lines = self.ticket_lines(id).await?;
        let payments = self.ticket_payments(id).await?;
        Ok(TicketDetail {
            ticket,
            lines,
            payments,
        })
    }

    pub async fn list_payments(&self, q: &ListQuery) -> Result<Vec<Payment>, Error> {
        self.collect_all(&["payments"], q).await
    }

    // ---------------------------------------------------------------- locations

    pub async fn list_locations(&self) -> Result<Vec<Location>, Error> {
        self.collect_all(&["locations"], &ListQuery::default())
            .await
    }

    pub async fn get_location(&self, id: i64) -> Result<Location, Error> {
        self.get_json(&["locations", &id.to_string()], &[]).await
    }

    // ---------------------------------------------------------------- webhooks

    /// Registers `url` for `events` (e.g. `sales_transaction_completed`, `item_updated`).
    pub async fn register_webhook(&self, url: &str, events: &[&str]) -> Result<Webhook, Error> {
        let body = json!({ "url": url, "events": events });
        let r = self
            .send(Method::POST, &["webhooks"], &[], Some(&body))
            .await?;
        // Answered either with the resource (`{id, ...}`) or 201 + Location.
        if let Ok(w) = serde_json::from_slice::<Webhook>(&r.body) {
            return Ok(w);
        }
        let id = r
            .headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Error::decode(SYS, "POST /webhooks answered without an id"))?;
        Ok(Webhook {
            id,
            url: Some(url.to_string()),
            events: events.iter().map(|e| e.to_string()).collect(),
        })
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, Error> {
        self.collect_all(&["webhooks"], &ListQuery::default()).await
    }

    pub async fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        self.send(Method::DELETE, &["webhooks", &id.to_string()], &[], None)
            .await
            .map(|_| ())
    }
}

fn wire_currency(code: &str) -> Result<(), Error> {
    heartsuite_core::money::parse_currency(code)
        .map(|_| ())
        .map_err(|e| Error::config(SYS, e.to_string()))
}

fn decimal_value(d: Decimal) -> Result<Value, Error> {
    let n: serde_json::Number = d
        .normalize()
        .to_string()
        .parse()
        .map_err(|_| Error::decode(SYS, format!("decimal {d}")))?;
    Ok(Value::Number(n))
}

fn parse<T: DeserializeOwned>(body: &[u8], segments: &[&str]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::decode(SYS, format!("/{}: {e}", segments.join("/"))))
}

fn retail_error(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    // `error` is a short machine code on Retail (`invalid_request`); anything long is prose.
    let code = text("error")
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        })
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = text("message")
        .or_else(|| text("error"))
        .or_else(|| v.get("errors").map(|e| e.to_string()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let message: String = mask(&message).chars().take(500).collect();
    Error::Api {
        system: SYS,
        status: status.as_u16(),
        code,
        detailed_code: None,
        message,
        class: crate::gpapi::class_by_status(status),
        field: None,
        retry_after,
    }
}

//! GP-API (Global Payments REST, used by Heartland merchants): access token, transactions,
//! settlement reporting, batches. Only the base URL and credentials differ between the sandbox,
//! production and a local simulator.

mod card;
mod types;

pub use card::{CardData, PaymentMethod};
pub use types::{
    Action, BatchClose, CardResult, CountAmount, Deposit, DepositStatus, Page, PaymentMethodResult,
    SystemInfo, Transaction, TransactionStatus, TransactionType,
};

use crate::error::{Error, System, mask};
use crate::wire::{self, de_opt_text, scalar_text};
use heartsuite_core::{Clock, ErrorClass, Money, Secret, SystemClock};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use url::Url;

pub const SANDBOX_URL: &str = "https://apis.sandbox.globalpay.com/ucp";
pub const PRODUCTION_URL: &str = "https://apis.globalpay.com/ucp";
pub const API_VERSION: &str = "2021-03-22";

const SYS: System = System::GpApi;
/// Used when a token response omits `seconds_to_expire`, which the real API always sends; short,
/// so that a surprise costs one extra sign-in rather than a stream of 40001s.
const DEFAULT_TOKEN_SECONDS: i64 = 600;
/// A bound on list walks, so a remote that never reports the last page cannot loop us forever.
const MAX_PAGES: u32 = 100_000;

#[derive(Clone, Debug)]
pub struct GpApiConfig {
    /// Up to and including `/ucp`, e.g. `https://apis.sandbox.globalpay.com/ucp`.
    pub base_url: String,
    pub app_id: String,
    pub app_key: Secret,
    /// `CNP` (card not present) or `CP`.
    pub channel: String,
    pub country: String,
    /// Currency assumed where a response omits one (batch close).
    pub default_currency: String,
    /// Transaction-processing account (`TRA_...` id or its name); default: the first `TRA_`
    /// account in the token's scope.
    pub transaction_account: Option<String>,
    /// Settlement-reporting account (`DAA_...` id or name); default: the first `DAA_` account.
    pub settlement_account: Option<String>,
    /// Requested token lifetime; `None` lets the server choose.
    pub seconds_to_expire: Option<u32>,
    /// Refresh this long before the token's expiry (capped at half its lifetime).
    pub refresh_buffer: Duration,
    pub timeout: Duration,
    pub permissions: Vec<String>,
}

impl GpApiConfig {
    pub fn new(app_id: impl Into<String>, app_key: Secret) -> Self {
        Self {
            base_url: SANDBOX_URL.to_string(),
            app_id: app_id.into(),
            app_key,
            channel: "CNP".into(),
            country: "US".into(),
            default_currency: "USD".into(),
            transaction_account: None,
            settlement_account: None,
            seconds_to_expire: None,
            refresh_buffer: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            permissions: Vec::new(),
        }
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
}

/// An account from the token's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
}

struct Token {
    value: Secret,
    /// When we stop using it (expiry minus the refresh buffer), in clock micros.
    refresh_at: i64,
    accounts: Vec<Account>,
    /// Distinguishes tokens so that only the first of several concurrent 40001s forces a new
    /// sign-in.
    generation: u64,
}

struct Inner {
    cfg: GpApiConfig,
    base: Url,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Held across a sign-in, so concurrent callers wait for one sign-in instead of each doing
    /// their own (single flight).
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    generation: AtomicI64,
    last_nonce: AtomicI64,
}

/// GP-API client. Cheap to clone; clones share the token cache.
#[derive(Clone)]
pub struct GpApiClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GpApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpApiClient")
            .field("base_url", &self.inner.base.as_str())
            .field("app_id", &self.inner.cfg.app_id)
            .finish_non_exhaustive()
    }
}

/// Request for a sale or an authorization.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub amount: Money,
    pub payment_method: PaymentMethod,
    /// The engine's key for this effect (derived from the source event). The same key always
    /// yields the same `x-gp-idempotency`, so a retry cannot charge twice.
    pub idempotency_key: String,
    /// Merchant reference; defaults to the derived idempotency key, so it is stable across retries.
    pub reference: Option<String>,
    pub description: Option<String>,
    pub order_reference: Option<String>,
    /// Defaults to `ECOM` for CNP and `MANUAL` for CP.
    pub entry_mode: Option<String>,
    pub cardholder_name: Option<String>,
    /// `notifications.status_url`: where GP-API POSTs each status change of the transaction
    /// (signed with `X-GP-Signature`, see [`crate::signature`]); refunds inherit it.
    pub status_url: Option<String>,
}

impl PaymentRequest {
    pub fn new(
        amount: Money,
        payment_method: PaymentMethod,
        idempotency_key: impl Into<String>,
    ) -> Self {
        Self {
            amount,
            payment_method,
            idempotency_key: idempotency_key.into(),
            reference: None,
            description: None,
            order_reference: None,
            entry_mode: None,
            cardholder_name: None,
            status_url: None,
        }
    }
}

/// Filters for `GET /transactions` and `GET /settlement/transactions`.
#[derive(Debug, Clone, Default)]
pub struct TransactionQuery {
    /// From 1; default 1.
    pub page: Option<u32>,
    /// Default 100.
    pub page_size: Option<u32>,
    /// `TIME_CREATED`, `STATUS`, `TYPE`, `DEPOSIT_ID`, `ID`.
    pub order_by: Option<String>,
    /// `ASC` or `DESC`.
    pub order: Option<String>,
    pub from_time_created: Option<jiff::civil::Date>,
    pub to_time_created: Option<jiff::civil::Date>,
    pub id: Option<String>,
    pub kind: Option<TransactionType>,
    pub status: Option<TransactionStatus>,
    pub channel: Option<String>,
    pub amount: Option<Money>,
    pub reference: Option<String>,
    pub batch_id: Option<String>,
    pub brand: Option<String>,
    pub number_last4: Option<String>,
    pub authcode: Option<String>,
    /// Settlement only.
    pub deposit_id: Option<String>,
    /// Settlement only.
    pub deposit_status: Option<DepositStatus>,
    /// Anything else the API accepts (`arn`, `system.mid`, `from_deposit_time_created`...).
    pub extra: Vec<(String, String)>,
}

impl TransactionQuery {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k.to_string(), v));
            }
        };
        put("order_by", self.order_by.clone());
        put("order", self.order.clone());
        put(
            "from_time_created",
            self.from_time_created.map(|d| d.to_string()),
        );
        put(
            "to_time_created",
            self.to_time_created.map(|d| d.to_string()),
        );
        put("id", self.id.clone());
        put("type", self.kind.as_ref().map(|k| k.as_str().to_string()));
        put(
            "status",
            self.status.as_ref().map(|s| s.as_str().to_string()),
        );
        put("channel", self.channel.clone());
        put("amount", self.amount.map(|m| m.minor.to_string()));
        put("currency", self.amount.map(|m| m.code().to_string()));
        put("reference", self.reference.clone());
        put("batch_id", self.batch_id.clone());
        put("brand", self.brand.clone());
        put("number_last4", self.number_last4.clone());
        put("authcode", self.authcode.clone());
        put("deposit_id", self.deposit_id.clone());
        put(
            "deposit_status",
            self.deposit_status.as_ref().map(|s| s.as_str().to_string()),
        );
        q.extend(self.extra.iter().cloned());
        q
    }
}

/// Filters for `GET /settlement/deposits`.
#[derive(Debug, Clone, Default)]
pub struct DepositQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub order_by: Option<String>,
    pub order: Option<String>,
    pub from_time_created: Option<jiff::civil::Date>,
    pub to_time_created: Option<jiff::civil::Date>,
    pub id: Option<String>,
    pub status: Option<DepositStatus>,
    pub amount: Option<Money>,
    pub masked_account_number_last4: Option<String>,
    pub extra: Vec<(String, String)>,
}

impl DepositQuery {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k.to_string(), v));
            }
        };
        put("order_by", self.order_by.clone());
        put("order", self.order.clone());
        put(
            "from_time_created",
            self.from_time_created.map(|d| d.to_string()),
        );
        put(
            "to_time_created",
            self.to_time_created.map(|d| d.to_string()),
        );
        put("id", self.id.clone());
        put(
            "status",
            self.status.as_ref().map(|s| s.as_str().to_string()),
        );
        put("amount", self.amount.map(|m| m.minor.to_string()));
        put(
            "masked_account_number_last4",
            self.masked_account_number_last4.clone(),
        );
        q.extend(self.extra.iter().cloned());
        q
    }
}

/// The `x-gp-idempotency` value for an operation: a UUID-shaped digest of the operation, its
/// target transaction and the caller's key. Deterministic, so a retry after a crash or timeout
/// sends the same value; scoped by operation, so one event key used for a capture and a refund
/// cannot make GP-API mistake the refund for the capture.
pub fn idempotency_key(operation: &str, target: &str, caller_key: &str) -> String {
    let mut h = Sha256::new();
    for part in ["heartsuite/gpapi/v1", operation, target, caller_key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = hex::encode(h.finalize());
    format!(
        "{}-{}-{}-{}-{}",
        &d[0..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

/// `secret` for `/accesstoken`: lowercase hex SHA-512(nonce + app_key).
pub fn access_token_secret(nonce: &str, app_key: &Secret) -> String {
    let mut h = Sha512::new();
    h.update(nonce.as_bytes());
    h.update(app_key.expose().as_bytes());
    hex::encode(h.finalize())
}

#[derive(Deserialize)]
struct TokenWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    token: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    seconds_to_expire: Option<String>,
    #[serde(default)]
    scope: Option<ScopeWire>,
}

#[derive(Deserialize, Default)]
struct ScopeWire {
    #[serde(default)]
    accounts: Vec<AccountWire>,
}

#[derive(Deserialize)]
struct AccountWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    name: Option<String>,
}

impl GpApiClient {
    pub fn new(cfg: GpApiConfig) -> Result<Self, Error> {
        Self::with_clock(cfg, Arc::new(SystemClock))
    }

    /// As `new`, with an injected clock (token expiry is judged by it).
    pub fn with_clock(cfg: GpApiConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let base = Url::parse(cfg.base_url.trim_end_matches('/'))
            .map_err(|e| Error::config(SYS, format!("base_url `{}`: {e}", cfg.base_url)))?;
        if base.cannot_be_a_base() {
            return Err(Error::config(
                SYS,
                format!("base_url `{}` cannot hold paths", cfg.base_url),
            ));
        }
        if cfg.app_id.trim().is_empty() || cfg.app_key.is_empty() {
            return Err(Error::config(SYS, "app_id and app_key are required"));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::config(SYS, format!("http client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                http,
                clock,
                token: tokio::sync::Mutex::new(None),
                generation: AtomicI64::new(0),
                last_nonce: AtomicI64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &GpApiConfig {
        &self.inner.cfg
    }

    // ---------------------------------------------------------------- token

    /// A nonce that is unique per client even when two sign-ins share a microsecond: an RFC 3339
    /// instant (as php sends), bumped past the last one used.
    fn nonce(&self) -> String {
        let now = self.inner.clock.now_micros();
        let prev = self.inner.last_nonce.fetch_max(now, Ordering::SeqCst);
        let micros = if prev >= now {
            self.inner.last_nonce.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            now
        };
        match jiff::Timestamp::from_microsecond(micros) {
            Ok(ts) => format!("{ts:.6}"),
            Err(_) => micros.to_string(),
        }
    }

    async fn sign_in(&self) -> Result<Token, Error> {
        let cfg = &self.inner.cfg;
        let nonce = self.nonce();
        let mut body = json!({
            "app_id": cfg.app_id,
            "nonce": nonce,
            "secret": access_token_secret(&nonce, &cfg.app_key),
            "grant_type": "client_credentials",
        });
        if let Some(s) = cfg.seconds_to_expire {
            body["seconds_to_expire"] = json!(s);
        }
        if !cfg.permissions.is_empty() {
            body["permissions"] = json!(cfg.permissions);
        }
        let started = self.inner.clock.now_micros();
        let v = self
            .send(Method::POST, &["accesstoken"], &[], Some(&body), None, None)
            .await?;
        let w: TokenWire =
            serde_json::from_value(v).map_err(|e| Error::decode(SYS, format!("token: {e}")))?;
        let token = w
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::decode(SYS, "token response without token"))?;
        let secs = match w.seconds_to_expire {
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| Error::decode(SYS, format!("seconds_to_expire `{s}`")))?,
            None => DEFAULT_TOKEN_SECONDS,
        };
        let buffer = (cfg.refresh_buffer.as_micros() as i64).min(secs * 500_000);
        let accounts = w
            .scope
            .unwrap_or_default()
            .accounts
            .into_iter()
            .filter_map(|a| a.id.map(|id| Account { id, name: a.name }))
            .collect();
        tracing::debug!(system = "gpapi", seconds_to_expire = secs, "signed in");
        Ok(Token {
            value: Secret::new(token),
            // Counted from before the request, so network time cannot push us past expiry.
            refresh_at: started + secs * 1_000_000 - buffer,
            accounts,
            generation: self.inner.generation.fetch_add(1, Ordering::SeqCst) as u64 + 1,
        })
    }

    async fn token(&self) -> Result<Arc<Token>, Error> {
        let mut slot = self.inner.token.lock().await;
        if let Some(t) = slot.as_ref()
            && self.inner.clock.now_micros() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let t = Arc::new(self.sign_in().await?);
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Forgets `stale` unless another caller already replaced it.
    async fn invalidate(&self, stale: &Token) {
        let mut slot = self.inner.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.generation == stale.generation)
        {
            *slot = None;
        }
    }

    /// The accounts the current token may use (signs in if needed).
    pub async fn accounts(&self) -> Result<Vec<Account>, Error> {
        Ok(self.token().await?.accounts.clone())
    }

    fn pick_account(token: &Token, wanted: Option<&str>, prefix: &str) -> Result<Account, Error> {
        if let Some(w) = wanted {
            if let Some(a) = token
                .accounts
                .iter()
                .find(|a| a.id == w || a.name.as_deref() == Some(w))
            {
                return Ok(a.clone());
            }
            // Not listed in the scope: trust the configuration (some tokens carry no scope).
            return Ok(if w.starts_with(prefix) {
                Account {
                    id: w.to_string(),
                    name: None,
                }
            } else {
                Account {
                    id: String::new(),
                    name: Some(w.to_string()),
                }
            });
        }
        token
            .accounts
            .iter()
            .find(|a| a.id.starts_with(prefix))
            .cloned()
            .ok_or_else(|| {
                Error::config(
                    SYS,
                    format!("the access token's scope has no {prefix} account"),
                )
            })
    }

    fn account_fields(a: &Account, target: &mut Vec<(String, String)>) {
        if !a.id.is_empty() {
            target.push(("account_id".into(), a.id.clone()));
        } else if let Some(n) = &a.name {
            target.push(("account_name".into(), n.clone()));
        }
    }

    // ---------------------------------------------------------------- transport

    /// One request with the current token; on 40001 the token is dropped, we sign in again and
    /// retry exactly once (the python SDK retries with the stale token and fails).
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
        idempotency: Option<&str>,
    ) -> Result<(Value, Arc<Token>), Error> {
        let mut token = self.token().await?;
        match self
            .send(
                method.clone(),
                segments,
                query,
                body,
                idempotency,
                Some(&token.value),
            )
            .await
        {
            Err(e) if is_not_authenticated(&e) => {
                tracing::info!(
                    system = "gpapi",
                    "token refused (NOT_AUTHENTICATED); signing in again"
                );
                self.invalidate(&token).await;
                token = self.token().await?;
                let v = self
                    .send(
                        method,
                        segments,
                        query,
                        body,
                        idempotency,
                        Some(&token.value),
                    )
                    .await?;
                Ok((v, token))
            }
            other => other.map(|v| (v, token)),
        }
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
        idempotency: Option<&str>,
        bearer: Option<&Secret>,
    ) -> Result<Value, Error> {
        let url = wire::join(&self.inner.base, segments);
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header("X-GP-Version", API_VERSION)
            .header("Accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency {
            req = req.header("x-gp-idempotency", k);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(|e| Error::transport(SYS, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| Error::transport(SYS, &e))?;
        tracing::debug!(system = "gpapi", method = %method, path = url.path(), status = status.as_u16(), "gp-api call");
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::decode(
                    SYS,
                    format!("{} {}: body is not JSON: {e}", method, url.path()),
                )
            });
        }
        Err(gp_error(status, wire::retry_after(&headers), &bytes))
    }

    // ---------------------------------------------------------------- transactions

    pub async fn sale(&self, req: &PaymentRequest) -> Result<Transaction, Error> {
        self.create_transaction(req, "AUTO", "sale").await
    }

    /// An authorization: a `SALE` with `capture_mode: LATER`; capture it with [`Self::capture`].
    pub async fn authorize(&self, req: &PaymentRequest) -> Result<Transaction, Error> {
        self.create_transaction(req, "LATER", "authorize").await
    }

    /// An authorization that may be captured in parts (`capture_mode: MULTIPLE`), e.g. one
    /// capture per shipment of an order; each [`Self::capture`] answers with that capture's own
    /// transaction, and the parts together may not exceed the authorized amount.
    pub async fn authorize_multiple(&self, req: &PaymentRequest) -> Result<Transaction, Error> {
        self.create_transaction(req, "MULTIPLE", "authorize").await
    }

    async fn create_transaction(
        &self,
        req: &PaymentRequest,
        capture_mode: &str,
        op: &str,
    ) -> Result<Transaction, Error> {
        check_key(&req.idempotency_key)?;
        if req.amount.minor <= 0 {
            return Err(Error::input("amount must be positive", Some("amount")));
        }
        let cfg = &self.inner.cfg;
        let idem = idempotency_key(op, "", &req.idempotency_key);
        let entry_mode = req.entry_mode.clone().unwrap_or_else(|| {
            if cfg.channel.eq_ignore_ascii_case("CP") {
                "MANUAL".into()
            } else {
                "ECOM".into()
            }
        });
        let token = self.token().await?;
        let account = Self::pick_account(&token, cfg.transaction_account.as_deref(), "TRA_")?;
        let mut body = json!({
            "channel": cfg.channel,
            "country": cfg.country,
            "type": "SALE",
            "capture_mode": capture_mode,
            "amount": req.amount.minor.to_string(),
            "currency": req.amount.code(),
            "reference": req.reference.clone().unwrap_or_else(|| idem.clone()),
            "payment_method": req.payment_method.to_json(&entry_mode, req.cardholder_name.as_deref())?,
        });
        if !account.id.is_empty() {
            body["account_id"] = json!(account.id);
        }
        if let Some(n) = &account.name {
            body["account_name"] = json!(n);
        }
        if let Some(d) = &req.description {
            body["description"] = json!(d);
        }
        if let Some(o) = &req.order_reference {
            body["order"] = json!({ "reference": o });
        }
        if let Some(u) = &req.status_url {
            body["notifications"] = json!({ "status_url": u });
        }
        self.move_money(&["transactions"], &body, &idem).await
    }

    /// Captures an authorization; `None` captures the authorized amount.
    pub async fn capture(
        &self,
        transaction_id: &str,
        amount: Option<Money>,
        idempotency_key: &str,
    ) -> Result<Transaction, Error> {
        self.follow_up(transaction_id, "capture", amount, idempotency_key)
            .await
    }

    /// Refunds a captured transaction; `None` refunds in full. The answer is the new `REFUND`
    /// transaction.
    pub async fn refund(
        &self,
        transaction_id: &str,
        amount: Option<Money>,
        idempotency_key: &str,
    ) -> Result<Transaction, Error> {
        self.follow_up(transaction_id, "refund", amount, idempotency_key)
            .await
    }

    /// Reverses (voids) a transaction in full; GP-API refuses partial reversals (40214).
    pub async fn reverse(
        &self,
        transaction_id: &str,
        idempotency_key: &str,
    ) -> Result<Transaction, Error> {
        self.follow_up(transaction_id, "reversal", None, idempotency_key)
            .await
    }

    async fn follow_up(
        &self,
        id: &str,
        op: &str,
        amount: Option<Money>,
        key: &str,
    ) -> Result<Transaction, Error> {
        check_key(key)?;
        if id.trim().is_empty() {
            return Err(Error::input("transaction id is required", Some("id")));
        }
        let mut body = json!({});
        if let Some(a) = amount {
            if a.minor <= 0 {
                return Err(Error::input("amount must be positive", Some("amount")));
            }
            body["amount"] = json!(a.minor.to_string());
        }
        let idem = idempotency_key(op, id, key);
        self.move_money(&["transactions", id, op], &body, &idem)
            .await
    }

    /// POSTs a money-moving request. When GP-API answers DUPLICATE_ACTION (we, or an earlier
    /// process, already sent this key), the earlier transaction named in the message is fetched
    /// and returned as the result: the retry observes the original outcome and no money moves
    /// twice.
    async fn move_money(
        &self,
        segments: &[&str],
        body: &Value,
        idem: &str,
    ) -> Result<Transaction, Error> {
        match self
            .call(Method::POST, segments, &[], Some(body), Some(idem))
            .await
        {
            Ok((v, _)) => Transaction::from_value(v),
            Err(e) if e.code() == Some("DUPLICATE_ACTION") => {
                let earlier = match &e {
                    Error::Api { message, .. } => earlier_transaction_id(message),
                    _ => None,
                };
                match earlier {
                    Some(id) => {
                        tracing::info!(system = "gpapi", transaction = %id, "idempotency key seen before; returning the earlier transaction");
                        self.get_transaction(&id).await
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get_transaction(&self, id: &str) -> Result<Transaction, Error> {
        let (v, _) = self
            .call(Method::GET, &["transactions", id], &[], None, None)
            .await?;
        Transaction::from_value(v)
    }

    /// One page of `GET /transactions`.
    pub async fn list_transactions(
        &self,
        q: &TransactionQuery,
    ) -> Result<Page<Transaction>, Error> {
        self.transaction_page(
            &["transactions"],
            "TRA_",
            self.inner.cfg.transaction_account.clone(),
            q,
        )
        .await
    }

    /// Every page of `GET /transactions` from `q.page` on.
    pub async fn list_all_transactions(
        &self,
        q: &TransactionQuery,
    ) -> Result<Vec<Transaction>, Error> {
        collect_pages(q.page, |n| {
            let mut q = q.clone();
            q.page = Some(n);
            async move { self.list_transactions(&q).await }
        })
        .await
    }

    /// One page of `GET /settlement/transactions` (settlement-reporting account).
    pub async fn list_settlement_transactions(
        &self,
        q: &TransactionQuery,
    ) -> Result<Page<Transaction>, Error> {
        self.transaction_page(
            &["settlement", "transactions"],
            "DAA_",
            self.inner.cfg.settlement_account.clone(),
            q,
        )
        .await
    }

    pub async fn list_all_settlement_transactions(
        &self,
        q: &TransactionQuery,
    ) -> Result<Vec<Transaction>, Error> {
        collect_pages(q.page, |n| {
            let mut q = q.clone();
            q.page = Some(n);
            async move { self.list_settlement_transactions(&q).await }
        })
        .await
    }

    async fn transaction_page(
        &self,
        segments: &[&str],
        prefix: &str,
        wanted: Option<String>,
        q: &TransactionQuery,
    ) -> Result<Page<Transaction>, Error> {
        let (page, page_size) = (
            q.page.unwrap_or(1).max(1),
            q.page_size.unwrap_or(100).max(1),
        );
        let token = self.token().await?;
        let mut query = vec![
            ("page".to_string(), page.to_string()),
            ("page_size".to_string(), page_size.to_string()),
        ];
        Self::account_fields(
            &Self::pick_account(&token, wanted.as_deref(), prefix)?,
            &mut query,
        );
        query.extend(q.pairs());
        let (v, _) = self.call(Method::GET, segments, &query, None, None).await?;
        parse_page(v, "transactions", page, page_size, Transaction::from_value)
    }

    // ---------------------------------------------------------------- settlement

    pub async fn list_deposits(&self, q: &DepositQuery) -> Result<Page<Deposit>, Error> {
        let (page, page_size) = (
            q.page.unwrap_or(1).max(1),
            q.page_size.unwrap_or(100).max(1),
        );
        let token = self.token().await?;
        let mut query = vec![
            ("page".to_string(), page.to_string()),
            ("page_size".to_string(), page_size.to_string()),
        ];
        Self::account_fields(
            &Self::pick_account(&token, self.inner.cfg.settlement_account.as_deref(), "DAA_")?,
            &mut query,
        );
        query.extend(q.pairs());
        let (v, _) = self
            .call(Method::GET, &["settlement", "deposits"], &query, None, None)
            .await?;
        parse_page(v, "deposits", page, page_size, Deposit::from_value)
    }

    pub async fn list_all_deposits(&self, q: &DepositQuery) -> Result<Vec<Deposit>, Error> {
        collect_pages(q.page, |n| {
            let mut q = q.clone();
            q.page = Some(n);
            async move { self.list_deposits(&q).await }
        })
        .await
    }

    pub async fn get_deposit(&self, id: &str) -> Result<Deposit, Error> {
        let token = self.token().await?;
        let mut query = Vec::new();
        Self::account_fields(
            &Self::pick_account(&token, self.inner.cfg.settlement_account.as_deref(), "DAA_")?,
            &mut query,
        );
        let (v, _) = self
            .call(
                Method::GET,
                &["settlement", "deposits", id],
                &query,
                None,
                None,
            )
            .await?;
        Deposit::from_value(v)
    }

    /// Closes a batch (`POST /batches/{id}`). Closing is naturally idempotent on GP-API's side:
    /// a second close answers ACTION_FAILED 500010, which maps to `duplicate`.
    pub async fn close_batch(&self, batch_id: &str) -> Result<BatchClose, Error> {
        let token = self.token().await?;
        let account = Self::pick_account(
            &token,
            self.inner.cfg.transaction_account.as_deref(),
            "TRA_",
        )?;
        let mut body = json!({});
        if !account.id.is_empty() {
            body["account_id"] = json!(account.id);
        }
        if let Some(n) = &account.name {
            body["account_name"] = json!(n);
        }
        let (v, _) = self
            .call(Method::POST, &["batches", batch_id], &[], Some(&body), None)
            .await?;
        BatchClose::from_value(v, &self.inner.cfg.default_currency)
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.trim().is_empty() {
        return Err(Error::input(
            "an idempotency key is required for money-moving calls",
            Some("idempotency_key"),
        ));
    }
    Ok(())
}

fn is_not_authenticated(e: &Error) -> bool {
    matches!(e, Error::Api { code, detailed_code, .. }
        if code == "NOT_AUTHENTICATED" || detailed_code.as_deref() == Some("40001"))
}

/// `Idempotency Key seen before: id=TRN_abc, status=CAPTURED` → `TRN_abc`.
pub fn earlier_transaction_id(message: &str) -> Option<String> {
    let start = message.find("id=")? + 3;
    let id: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

async fn collect_pages<T, F, Fut>(start: Option<u32>, mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, Error>>,
{
    let mut out = Vec::new();
    let mut n = start.unwrap_or(1).max(1);
    loop {
        let p = fetch(n).await?;
        let more = p.has_more();
        out.extend(p.items);
        if !more {
            return Ok(out);
        }
        n += 1;
        if n > MAX_PAGES {
            return Err(Error::decode(SYS, "paging did not end"));
        }
    }
}

fn parse_page<T>(
    v: Value,
    key: &str,
    page: u32,
    page_size: u32,
    item: impl Fn(Value) -> Result<T, Error>,
) -> Result<Page<T>, Error> {
    let Value::Object(mut obj) = v else {
        return Err(Error::decode(SYS, format!("{key} list is not an object")));
    };
    let items = match obj.remove(key) {
        Some(Value::Array(a)) => a.into_iter().map(item).collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(Error::decode(SYS, format!("`{key}` is not an array"))),
    };
    let total = obj
        .get("total_record_count")
        .and_then(scalar_text)
        .and_then(|t| t.parse().ok());
    let paging = obj.get("paging");
    let num = |k: &str| {
        paging
            .and_then(|p| p.get(k))
            .and_then(scalar_text)
            .and_then(|t| t.parse::<u32>().ok())
    };
    Ok(Page {
        items,
        total,
        page: num("page").unwrap_or(page),
        page_size: num("page_size").unwrap_or(page_size),
    })
}

#[derive(Deserialize, Default)]
struct ErrorWire {
    #[serde(default, deserialize_with = "de_opt_text")]
    error_code: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    detailed_error_code: Option<String>,
    #[serde(default, deserialize_with = "de_opt_text")]
    detailed_error_description: Option<String>,
}

/// Maps a non-2xx GP-API answer to an `Error` with its class.
fn gp_error(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Error {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // php accepts the envelope either at the top level or under `error`.
    let env = match parsed.get("error") {
        Some(inner @ Value::Object(_)) => inner.clone(),
        _ => parsed,
    };
    let w: ErrorWire = serde_json::from_value(env).unwrap_or_default();
    let code = w
        .error_code
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let detailed = w.detailed_error_code;
    let description = mask(
        &w.detailed_error_description
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
    );
    let class = if status == StatusCode::TOO_MANY_REQUESTS {
        ErrorClass::RateLimited
    } else {
        match code.as_str() {
            "NOT_AUTHENTICATED" | "ACTION_NOT_AUTHORIZED" => ErrorClass::Auth,
            "MANDATORY_DATA_MISSING" | "INVALID_REQUEST_DATA" => ErrorClass::Data,
            "RESOURCE_NOT_FOUND" => ErrorClass::Dependency,
            "DUPLICATE_ACTION" => ErrorClass::Duplicate,
            "SYSTEM_ERROR_DOWNSTREAM" => ErrorClass::Transient,
            // Batch already closed: the goal is reached.
            "ACTION_FAILED" if detailed.as_deref() == Some("500010") => ErrorClass::Duplicate,
            _ => class_by_status(status),
        }
    };
    let field = if code == "MANDATORY_DATA_MISSING" {
        description
            .split("following fields")
            .nth(1)
            .map(|f| f.trim().trim_matches(':').trim().to_string())
    } else {
        None
    }
    .filter(|f| !f.is_empty());
    Error::Api {
        system: SYS,
        status: status.as_u16(),
        code,
        detailed_code: detailed,
        message: description,
        class,
        field,
        retry_after,
    }
}

pub(crate) fn class_by_status(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        404 => ErrorClass::Dependency,
        409 => ErrorClass::Duplicate,
        400 | 422 => ErrorClass::Data,
        408 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Bug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secret_is_sha512_of_nonce_and_key() {
        // sha512("abc") known vector: nonce "a" + key "bc".
        assert_eq!(
            access_token_secret("a", &Secret::new("bc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn idempotency_keys_are_deterministic_and_scoped() {
        let a = idempotency_key("capture", "TRN_1", "evt-1");
        assert_eq!(a, idempotency_key("capture", "TRN_1", "evt-1"));
        assert_ne!(a, idempotency_key("refund", "TRN_1", "evt-1"));
        assert_ne!(a, idempotency_key("capture", "TRN_2", "evt-1"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn earlier_id_is_read_from_the_duplicate_message() {
        assert_eq!(
            earlier_transaction_id("Idempotency Key seen before: id=TRN_abc123, status=CAPTURED")
                .as_deref(),
            Some("TRN_abc123")
        );
        assert_eq!(earlier_transaction_id("Idempotency Key seen before"), None);
    }

    #[test]
    fn error_envelope_classes() {
        let e = |status: u16, code: &str| {
            let body = json!({"error_code": code, "detailed_error_code": "1", "detailed_error_description": "d"}).to_string();
            gp_error(StatusCode::from_u16(status).unwrap(), None, body.as_bytes()).class()
        };
        assert_eq!(e(401, "NOT_AUTHENTICATED"), ErrorClass::Auth);
        assert_eq!(e(403, "ACTION_NOT_AUTHORIZED"), ErrorClass::Auth);
        assert_eq!(e(400, "MANDATORY_DATA_MISSING"), ErrorClass::Data);
        assert_eq!(e(400, "INVALID_REQUEST_DATA"), ErrorClass::Data);
        assert_eq!(e(404, "RESOURCE_NOT_FOUND"), ErrorClass::Dependency);
        assert_eq!(e(409, "DUPLICATE_ACTION"), ErrorClass::Duplicate);
        assert_eq!(e(502, "SYSTEM_ERROR_DOWNSTREAM"), ErrorClass::Transient);
        assert_eq!(e(429, "WHATEVER"), ErrorClass::RateLimited);
        assert_eq!(
            gp_error(StatusCode::BAD_GATEWAY, None, b"<html>").class(),
            ErrorClass::Transient
        );
        let nested =
            json!({"error": {"error_code": "RESOURCE_NOT_FOUND", "detailed_error_code": "40118"}})
                .to_string();
        assert_eq!(
            gp_error(StatusCode::NOT_FOUND, None, nested.as_bytes()).code(),
            Some("RESOURCE_NOT_FOUND")
        );
        let missing =
            json!({"error_code": "MANDATORY_DATA_MISSING", "detailed_error_code": "40005",
            "detailed_error_description": "Request expects the following fields currency"})
            .to_string();
        assert_eq!(
            gp_error(StatusCode::BAD_REQUEST, None, missing.as_bytes())
                .failure()
                .field_path
                .as_deref(),
            Some("currency")
        );
    }
}

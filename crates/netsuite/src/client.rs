//! The NetSuite REST client: configuration, the request pipeline (governor → auth → send →
//! classify → back off on 429), and the record service and SuiteQL operations.

use crate::error::{Error, parse_retry_after, remote_error};
use crate::governor::{Governor, Outcome};
use crate::oauth1::{self, NonceSource, OAuthParams, OsNonce, pct};
use crate::oauth2::TokenSource;
use heartsuite_core::clock::SystemClock;
use heartsuite_core::{Clock, Secret};
use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// How heartsuite proves who it is. Exactly one per connection.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Token-based authentication (OAuth 1.0a, HMAC-SHA256). No new TBA integrations from 2027.1.
    Tba { consumer_key: Secret, consumer_secret: Secret, token_id: Secret, token_secret: Secret },
    /// OAuth 2.0 client credentials with an ES256 JWT assertion signed by `private_key_pem`
    /// (PKCS#8); `certificate_id` is the id NetSuite gave the uploaded public certificate.
    OAuth2 { client_id: String, certificate_id: String, private_key_pem: Secret, scope: String },
}

/// Where the concurrency ceiling comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(u32),
    /// Ask `/system/v1/governanceLimits` on first use (needs an administrator role); use
    /// `fallback` when that is refused or fails.
    FromAccount { fallback: u32 },
}

pub struct Config {
    /// Raw account id, e.g. `1234567_SB1`: the OAuth realm and the source of the default host.
    pub account_id: String,
    /// Override for the REST host (`http://127.0.0.1:9101` for the sandbox); default
    /// `https://{slug}.suitetalk.api.netsuite.com`.
    pub base_url: Option<String>,
    pub auth: Auth,
    /// Whole-request timeout. NetSuite itself gives up after 15 minutes; writes rarely take > 60 s.
    pub timeout: Duration,
    pub concurrency: Concurrency,
    /// Successes that earn one permit back after a 429 halved the window.
    pub increase_after: u32,
    /// In-client retries of a 429 before it is returned as `rate_limited`. Safe for every
    /// method: a 429 means NetSuite did not run the request.
    pub rate_limit_retries: u32,
    /// First 429 backoff (doubled per retry, full jitter); a longer Retry-After than
    /// `max_backoff` is returned to the caller instead of slept on.
    pub backoff_base: Duration,
    pub max_backoff: Duration,
    /// Share one governor between clients of the same account (e.g. with a `PermitStore`).
    pub governor: Option<Arc<Governor>>,
    pub clock: Arc<dyn Clock>,
    pub nonce: Arc<dyn NonceSource>,
}

impl Config {
    pub fn new(account_id: impl Into<String>, auth: Auth) -> Self {
        Self {
            account_id: account_id.into(),
            base_url: None,
            auth,
            timeout: Duration::from_secs(60),
            concurrency: Concurrency::Fixed(5),
            increase_after: 20,
            rate_limit_retries: 3,
            backoff_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            governor: None,
            clock: Arc::new(SystemClock),
            nonce: Arc::new(OsNonce),
        }
    }

    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("account_id", &self.account_id)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// `1234567_SB1` → `1234567-sb1` (reference §1: lowercase, every `_` → `-`).
pub fn account_slug(account_id: &str) -> String {
    account_id.to_ascii_lowercase().replace('_', "-")
}

pub fn default_base_url(account_id: &str) -> String {
    format!("https://{}.suitetalk.api.netsuite.com", account_slug(account_id))
}

enum AuthImpl {
    Tba { consumer_key: Secret, consumer_secret: Secret, token_id: Secret, token_secret: Secret },
    OAuth2(TokenSource),
}

struct Inner {
    http: reqwest::Client,
    /// `{base}/services/rest`
    root: String,
    account_id: String,
    auth: AuthImpl,
    governor: Arc<Governor>,
    concurrency: Concurrency,
    governance_loaded: tokio::sync::OnceCell<()>,
    timeout: Duration,
    rate_limit_retries: u32,
    backoff_base: Duration,
    max_backoff: Duration,
    clock: Arc<dyn Clock>,
    nonce: Arc<dyn NonceSource>,
}

/// A NetSuite connection. Clones share the HTTP pool, token cache and governor.
#[derive(Clone)]
pub struct NetSuiteClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NetSuiteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetSuiteClient").field("account_id", &self.inner.account_id).field("root", &self.inner.root).finish()
    }
}

const GOVERNANCE_PATH: &str = "/system/v1/governanceLimits";
const TOKEN_PATH: &str = "/auth/oauth2/v1/token";
pub const MAX_PAGE: u32 = 1000;

pub(crate) struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Request {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), query: Vec::new(), body: None, headers: Vec::new() }
    }
    fn query(mut self, k: &str, v: impl ToString) -> Self {
        self.query.push((k.to_string(), v.to_string()));
        self
    }
    fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, Error> {
        self.body = Some(serde_json::to_vec(body).map_err(|e| Error::InvalidInput(format!("body does not serialize: {e}")))?);
        // Unknown field names fail loudly instead of being dropped (NetSuite's default is Warning).
        self.headers.push(("X-NetSuite-PropertyNameValidation", "Error"));
        Ok(self)
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One page of a record collection: ids only (fetch each record with `get`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    #[serde(default)]
    pub items: Vec<ListItem>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub total_results: Option<u64>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListItem {
    pub id: String,
}

/// One page of SuiteQL rows; keys are lowercase column names, `links` removed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteQlPage {
    #[serde(default)]
    pub items: Vec<Map<String, Value>>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub total_results: Option<u64>,
}

/// What `/system/v1/governanceLimits` reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GovernanceLimits {
    pub account_limit: Option<u32>,
    pub unallocated_limit: Option<u32>,
    pub integration_limit: Option<u32>,
    pub limit_type: Option<String>,
}

impl GovernanceLimits {
    /// The limit this integration may use: its own allocation if it has one, else the pool for
    /// integrations without one, else the account total.
    pub fn effective(&self) -> Option<u32> {
        self.integration_limit.or(self.unallocated_limit).or(self.account_limit).filter(|n| *n > 0)
    }

    /// Field names are matched loosely: Oracle documents the three values but not their JSON
    /// spelling.
    pub fn from_json(v: &Value) -> Self {
        let mut g = GovernanceLimits::default();
        let Some(obj) = v.as_object() else { return g };
        for (k, val) in obj {
            let key = k.to_ascii_lowercase();
            let num = match val {
                Value::Number(n) => n.to_string().parse::<u32>().ok(),
                Value::String(s) => s.parse::<u32>().ok(),
                _ => None,
            };
            if key.contains("limittype") || key == "type" {
                g.limit_type = val.as_str().map(str::to_string);
            } else if key.contains("unallocated") {
                g.unallocated_limit = num;
            } else if key.contains("integration") {
                g.integration_limit = num;
            } else if key.contains("account") || key.contains("concurrency") {
                g.account_limit = num;
            }
        }
        g
    }
}

fn valid_external_id(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The internal id in a `Location` header: its last path segment.
pub(crate) fn id_from_location(headers: &HeaderMap) -> Option<String> {
    let loc = headers.get(LOCATION)?.to_str().ok()?;
    let path = loc.split(['?', '#']).next()?;
    let seg = path.trim_end_matches('/').rsplit('/').next()?;
    let seg = percent_encoding::percent_decode_str(seg).decode_utf8().ok()?.to_string();
    (!seg.is_empty()).then_some(seg)
}

fn record_path(record_type: &str) -> String {
    format!("/record/v1/{}", pct(record_type))
}

fn id_segment(id: &str) -> String {
    // `eid:KEY` is NetSuite's own syntax and must reach it unencoded.
    match id.strip_prefix("eid:") {
        Some(k) => format!("eid:{}", pct(k)),
        None => pct(id),
    }
}

impl NetSuiteClient {
    pub fn new(config: Config) -> Result<Self, Error> {
        if config.account_id.trim().is_empty() {
            return Err(Error::Config("account_id is empty".into()));
        }
        let base = config.base_url.clone().unwrap_or_else(|| default_base_url(&config.account_id));
        let base = base.trim_end_matches('/').to_string();
        let parsed = Url::parse(&base).map_err(|e| Error::Config(format!("base_url {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Error::Config(format!("base_url {base:?} is not an http(s) URL")));
        }
        let root = format!("{base}/services/rest");
        let http = reqwest::Client::builder()
            // APIs answer; a redirect would re-send credentials somewhere we did not choose.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .user_agent(concat!("heartsuite-netsuite/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let auth = match config.auth {
            Auth::Tba { consumer_key, consumer_secret, token_id, token_secret } => {
                if consumer_key.is_empty() || consumer_secret.is_empty() || token_id.is_empty() || token_secret.is_empty() {
                    return Err(Error::Config("TBA credentials are incomplete".into()));
                }
                AuthImpl::Tba { consumer_key, consumer_secret, token_id, token_secret }
            }
            Auth::OAuth2 { client_id, certificate_id, private_key_pem, scope } => {
                if client_id.is_empty() || certificate_id.is_empty() {
                    return Err(Error::Config("OAuth 2.0 client_id and certificate_id are required".into()));
                }
                let scope = if scope.trim().is_empty() { "rest_webservices".to_string() } else { scope };
                AuthImpl::OAuth2(TokenSource::new(
                    http.clone(),
                    format!("{root}{TOKEN_PATH}"),
                    client_id,
                    certificate_id,
                    scope,
                    &private_key_pem,
                    config.clock.clone(),
                )?)
            }
        };
        let initial = match config.concurrency {
            Concurrency::Fixed(n) => n,
            Concurrency::FromAccount { fallback } => fallback,
        };
        let governor = config.governor.clone().unwrap_or_else(|| {
            Arc::new(Governor::new(format!("netsuite:{}", config.account_id), initial, config.increase_after))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                root,
                account_id: config.account_id,
                auth,
                governor,
                concurrency: config.concurrency,
                governance_loaded: tokio::sync::OnceCell::new(),
                timeout: config.timeout,
                rate_limit_retries: config.rate_limit_retries,
                backoff_base: config.backoff_base,
                max_backoff: config.max_backoff,
                clock: config.clock,
                nonce: config.nonce,
            }),
        })
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// `{base}/services/rest`
    pub fn rest_root(&self) -> &str {
        &self.inner.root
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.inner.governor
    }

    /// How many access tokens have been fetched (OAuth 2.0); 0 for TBA. For metrics and tests.
    pub fn token_fetches(&self) -> u64 {
        match &self.inner.auth {
            AuthImpl::OAuth2(t) => t.fetch_count(),
            AuthImpl::Tba { .. } => 0,
        }
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> Result<Url, Error> {
        let mut s = format!("{}{}", self.inner.root, path);
        if !query.is_empty() {
            // RFC 3986 encoding here too, so what is signed is exactly what is sent.
            let q = query.iter().map(|(k, v)| format!("{}={}", pct(k), pct(v))).collect::<Vec<_>>().join("&");
            s.push('?');
            s.push_str(&q);
        }
        Url::parse(&s).map_err(|e| Error::InvalidInput(format!("request URL: {e}")))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng as _;
        let cap = self.inner.backoff_base.saturating_mul(1u32 << attempt.min(16)).min(self.inner.max_backoff);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// Sends one logical request: waits for a governor permit, authenticates, and retries only
    /// what is safe to retry (429s, and one 401 with a refreshed OAuth 2.0 token). Returns the
    /// 2xx response or the classified error.
    pub(crate) async fn execute(&self, req: Request) -> Result<Response, Error> {
        if let Concurrency::FromAccount { .. } = self.inner.concurrency {
            self.inner.governance_loaded.get_or_init(|| self.load_governance()).await;
        }
        self.execute_now(req).await
    }

    async fn execute_now(&self, req: Request) -> Result<Response, Error> {
        let url = self.url(&req.path, &req.query)?;
        let mut rate_limited = 0u32;
        let mut reauthenticated = false;
        loop {
            // Fetch the bearer token before taking a permit, so a slow token endpoint does not
            // hold one of the account's few concurrency slots.
            let bearer = match &self.inner.auth {
                AuthImpl::OAuth2(ts) => Some(ts.token().await?),
                AuthImpl::Tba { .. } => None,
            };
            let permit = self.inner.governor.acquire().await?;
            let authorization = match (&self.inner.auth, &bearer) {
                (_, Some(tok)) => format!("Bearer {}", tok.expose()),
                (AuthImpl::Tba { consumer_key, consumer_secret, token_id, token_secret }, None) => {
                    // Signed after the permit wait, so the timestamp is fresh when it is sent.
                    let nonce = self.inner.nonce.nonce();
                    let timestamp = self.inner.clock.now_micros().div_euclid(1_000_000).max(0) as u64;
                    let p = OAuthParams { consumer_key: consumer_key.expose(), token: token_id.expose(), nonce: &nonce, timestamp };
                    oauth1::authorization_header(
                        req.method.as_str(),
                        &url,
                        &self.inner.account_id,
                        &p,
                        consumer_secret.expose(),
                        token_secret.expose(),
                    )
                }
                (AuthImpl::OAuth2(_), None) => return Err(Error::Unexpected("no OAuth 2.0 token".into())),
            };
            let mut rb = self
                .inner
                .http
                .request(req.method.clone(), url.clone())
                .timeout(self.inner.timeout)
                .header(reqwest::header::AUTHORIZATION, authorization);
            for (k, v) in &req.headers {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = &req.body {
                rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.clone());
            }
            let sent = async {
                let resp = rb.send().await?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(Response { status, headers, body })
            }
            .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    permit.finish(Outcome::Neutral).await;
                    return Err(Error::from_reqwest(e));
                }
            };
            if (200..300).contains(&resp.status) {
                permit.finish(Outcome::Success).await;
                return Ok(resp);
            }
            let retry_after = resp
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
            let err = remote_error(resp.status, &resp.body, retry_after);
            if err.is_rate_limited() {
                permit.finish(Outcome::RateLimited).await;
                if rate_limited < self.inner.rate_limit_retries {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(rate_limited));
                    if wait <= self.inner.max_backoff {
                        rate_limited += 1;
                        tracing::debug!(path = %req.path, attempt = rate_limited, ?wait, "NetSuite rate limited; backing off");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
                return Err(err);
            }
            permit.finish(Outcome::Neutral).await;
            if resp.status == 401
                && !reauthenticated
                && let (AuthImpl::OAuth2(ts), Some(tok)) = (&self.inner.auth, &bearer)
            {
                // The token may have been revoked or expired early: one retry with a new one.
                ts.invalidate(tok).await;
                reauthenticated = true;
                continue;
            }
            return Err(err);
        }
    }

    async fn load_governance(&self) {
        match self.governance_limits().await {
            Ok(g) => match g.effective() {
                Some(n) => {
                    tracing::info!(account = %self.inner.account_id, limit = n, "NetSuite concurrency limit from governanceLimits");
                    self.inner.governor.set_limit(n);
                }
                None => tracing::warn!("governanceLimits returned no usable limit; keeping the fallback"),
            },
            Err(e) => tracing::warn!(error = %e, "governanceLimits unavailable (admin role needed); keeping the fallback"),
        }
    }

    /// `GET /system/v1/governanceLimits` (administrator role only).
    pub async fn governance_limits(&self) -> Result<GovernanceLimits, Error> {
        let resp = self.execute_now(Request::new(Method::GET, GOVERNANCE_PATH)).await?;
        let v: Value = parse_json(&resp.body)?;
        Ok(GovernanceLimits::from_json(&v))
    }

    // ----- record service ----------------------------------------------------------------------

    /// `POST /record/v1/{type}` → the new internal id (from `Location`). If the body carries an
    /// `externalId` that already exists, the clash is resolved by looking that external id up
    /// and the existing record's id is returned: the write had already happened.
    pub async fn create<T: Serialize + ?Sized>(&self, record_type: &str, body: &T) -> Result<String, Error> {
        let req = Request::new(Method::POST, record_path(record_type)).json(body)?;
        match self.execute(req).await {
            Ok(resp) => id_from_location(&resp.headers)
                .ok_or_else(|| Error::Unexpected(format!("create {record_type}: no Location header"))),
            Err(e) if e.is_duplicate() => {
                let eid = serde_json::to_value(body)
                    .ok()
                    .and_then(|v| v.get("externalId").and_then(Value::as_str).map(str::to_string));
                let Some(eid) = eid else { return Err(e) };
                match self.find_id_by_external_id(record_type, &eid).await? {
                    Some(id) => {
                        tracing::info!(record_type, external_id = %eid, id = %id, "create hit an existing externalId; resolved to it");
                        Ok(id)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /record/v1/{type}/{id}`; `id` may be `eid:KEY`. `expand` sets `expandSubResources`
    /// so sublists come back as items instead of links.
    pub async fn get<T: DeserializeOwned>(&self, record_type: &str, id: &str, expand: bool) -> Result<T, Error> {
        let mut req = Request::new(Method::GET, format!("{}/{}", record_path(record_type), id_segment(id)));
        if expand {
            req = req.query("expandSubResources", "true");
        }
        let resp = self.execute(req).await?;
        parse_json(&resp.body)
    }

    /// The record with this external id, or `None`.
    pub async fn get_by_external_id<T: DeserializeOwned>(
        &self,
        record_type: &str,
        external_id: &str,
        expand: bool,
    ) -> Result<Option<T>, Error> {
        check_external_id(external_id)?;
        match self.get(record_type, &format!("eid:{external_id}"), expand).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The internal id of the record with this external id, or `None`.
    pub async fn find_id_by_external_id(&self, record_type: &str, external_id: &str) -> Result<Option<String>, Error> {
        let rec: Option<Value> = self.get_by_external_id(record_type, external_id, false).await?;
        Ok(rec.and_then(|v| match v.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }))
    }

    /// `PATCH /record/v1/{type}/{id}`: omitted fields stay, `null` clears. `replace` names
    /// sublists to replace wholesale instead of merging lines.
    pub async fn update<T: Serialize + ?Sized>(&self, record_type: &str, id: &str, body: &T, replace: &[&str]) -> Result<(), Error> {
        let mut req = Request::new(Method::PATCH, format!("{}/{}", record_path(record_type), id_segment(id))).json(body)?;
        if !replace.is_empty() {
            req = req.query("replace", replace.join(","));
        }
        self.execute(req).await.map(|_| ())
    }

    /// `DELETE /record/v1/{type}/{id}`.
    pub async fn delete(&self, record_type: &str, id: &str) -> Result<(), Error> {
        let req = Request::new(Method::DELETE, format!("{}/{}", record_path(record_type), id_segment(id)));
        self.execute(req).await.map(|_| ())
    }

    /// `PUT /record/v1/{type}/eid:{external_id}`: create or update, keyed by external id. This is
    /// the primary write path: repeating it after a lost response changes nothing new. Returns
    /// the internal id (from `Location`, or by lookup when `Location` names the external id).
    pub async fn upsert<T: Serialize + ?Sized>(&self, record_type: &str, external_id: &str, body: &T) -> Result<String, Error> {
        check_external_id(external_id)?;
        // NetSuite appends unkeyed sublist lines on update; a repeated upsert (after a lost
        // response) would double them. Replacing every sublist the body carries makes the
        // repeat a true no-op.
        let value = serde_json::to_value(body).map_err(|e| Error::Unexpected(format!("upsert body: {e}")))?;
        let sublists: Vec<&str> = match &value {
            Value::Object(m) => m.iter().filter(|(_, v)| v.get("items").is_some_and(Value::is_array)).map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        };
        let mut req = Request::new(Method::PUT, format!("{}/eid:{}", record_path(record_type), pct(external_id))).json(&value)?;
        if !sublists.is_empty() {
            req = req.query("replace", sublists.join(","));
        }
        let resp = self.execute(req).await?;
        match id_from_location(&resp.headers) {
            Some(id) if !id.starts_with("eid:") => Ok(id),
            _ => self.find_id_by_external_id(record_type, external_id).await?.ok_or_else(|| {
                Error::Unexpected(format!("upsert {record_type} eid:{external_id} succeeded but the record is not found"))
            }),
        }
    }

    /// `POST /record/v1/{type}/{id}/!transform/{target}` (e.g. salesOrder → itemFulfillment);
    /// `body` holds fields of the new record. Returns the new record's id.
    pub async fn transform<T: Serialize + ?Sized>(
        &self,
        record_type: &str,
        id: &str,
        target_type: &str,
        body: Option<&T>,
    ) -> Result<String, Error> {
        let path = format!("{}/{}/!transform/{}", record_path(record_type), id_segment(id), pct(target_type));
        let mut req = Request::new(Method::POST, path);
        req = match body {
            Some(b) => req.json(b)?,
            // An empty object rather than no body: the transform takes the source's defaults.
            None => req.json(&serde_json::json!({}))?,
        };
        let resp = self.execute(req).await?;
        id_from_location(&resp.headers).ok_or_else(|| Error::Unexpected(format!("transform to {target_type}: no Location header")))
    }

    /// One page of `GET /record/v1/{type}?q=&limit=&offset=`.
    pub async fn list(&self, record_type: &str, q: Option<&str>, limit: u32, offset: u64) -> Result<ListPage, Error> {
        let limit = check_limit(limit)?;
        if !offset.is_multiple_of(u64::from(limit)) {
            return Err(Error::InvalidInput(format!("offset {offset} is not a multiple of limit {limit}")));
        }
        let mut req = Request::new(Method::GET, record_path(record_type));
        if let Some(q) = q {
            req = req.query("q", q);
        }
        req = req.query("limit", limit).query("offset", offset);
        let resp = self.execute(req).await?;
        parse_json(&resp.body)
    }

    /// Every id matching `q`, following pages while `hasMore`.
    pub async fn list_all(&self, record_type: &str, q: Option<&str>, page_size: u32) -> Result<Vec<String>, Error> {
        let limit = check_limit(page_size)?;
        let mut ids = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.list(record_type, q, limit, offset).await?;
            let n = page.items.len();
            ids.extend(page.items.into_iter().map(|i| i.id));
            if !page.has_more {
                return Ok(ids);
            }
            if n == 0 {
                return Err(Error::Unexpected("list page empty while hasMore is true".into()));
            }
            offset += u64::from(limit);
        }
    }

    // ----- SuiteQL -----------------------------------------------------------------------------

    /// One page of `POST /query/v1/suiteql?limit=&offset=` with `Prefer: transient`.
    pub async fn suiteql_page(&self, query: &str, limit: u32, offset: u64) -> Result<SuiteQlPage, Error> {
        let limit = check_limit(limit)?;
        if !offset.is_multiple_of(u64::from(limit)) {
            return Err(Error::InvalidInput(format!("offset {offset} is not a multiple of limit {limit}")));
        }
        let mut req = Request::new(Method::POST, "/query/v1/suiteql")
            .query("limit", limit)
            .query("offset", offset)
            .json(&serde_json::json!({ "q": query }))?;
        req.headers.push(("Prefer", "transient"));
        let resp = self.execute(req).await?;
        let mut page: SuiteQlPage = parse_json(&resp.body)?;
        for row in &mut page.items {
            row.remove("links");
        }
        Ok(page)
    }

    /// Every row of `query`, `page_size` (≤ 1000) at a time, until `hasMore` is false. Give the
    /// query an unambiguous ORDER BY, or pages may overlap.
    pub async fn suiteql(&self, query: &str, page_size: u32) -> Result<Vec<Map<String, Value>>, Error> {
        let limit = check_limit(page_size)?;
        let mut rows = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.suiteql_page(query, limit, offset).await?;
            let n = page.items.len();
            rows.extend(page.items);
            if !page.has_more {
                return Ok(rows);
            }
            if n == 0 {
                return Err(Error::Unexpected("SuiteQL page empty while hasMore is true".into()));
            }
            offset += u64::from(limit);
        }
    }
}

fn check_limit(limit: u32) -> Result<u32, Error> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::InvalidInput(format!("page limit {limit} must be 1..={MAX_PAGE}")));
    }
    Ok(limit)
}

fn check_external_id(k: &str) -> Result<(), Error> {
    if valid_external_id(k) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("external id {k:?} may only contain letters, digits, '_' and '-'")))
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Unexpected(format!("response JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_and_default_host() {
        assert_eq!(account_slug("1234567_SB1"), "1234567-sb1");
        assert_eq!(account_slug("TSTDRV_1_SB2"), "tstdrv-1-sb2");
        assert_eq!(default_base_url("1234567_SB1"), "https://1234567-sb1.suitetalk.api.netsuite.com");
    }

    #[test]
    fn location_last_segment() {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, "https://x/services/rest/record/v1/customer/647".parse().unwrap());
        assert_eq!(id_from_location(&h).as_deref(), Some("647"));
        h.insert(LOCATION, "/services/rest/record/v1/itemFulfillment/12/".parse().unwrap());
        assert_eq!(id_from_location(&h).as_deref(), Some("12"));
        h.insert(LOCATION, "https://x/services/rest/record/v1/customer/eid:abc".parse().unwrap());
        assert_eq!(id_from_location(&h).as_deref(), Some("eid:abc"));
        assert_eq!(id_from_location(&HeaderMap::new()), None);
    }

    #[test]
    fn governance_limits_parse_loosely() {
        let g = GovernanceLimits::from_json(&serde_json::json!({
            "accountConcurrencyLimit": 15, "accountUnallocatedConcurrencyLimit": "10", "limitType": "accountUnallocated"
        }));
        assert_eq!(g.account_limit, Some(15));
        assert_eq!(g.unallocated_limit, Some(10));
        assert_eq!(g.effective(), Some(10));
        let g = GovernanceLimits::from_json(&serde_json::json!({"integrationConcurrencyLimit": 2, "limitType": "integrationSpecific"}));
        assert_eq!(g.effective(), Some(2));
    }

    #[test]
    fn external_id_charset() {
        assert!(valid_external_id("hs-order_123"));
        assert!(!valid_external_id("a b"));
        assert!(!valid_external_id("a/b"));
        assert!(!valid_external_id(""));
    }

    #[test]
    fn config_debug_hides_secrets() {
        let c = Config::new(
            "1234567_SB1",
            Auth::Tba {
                consumer_key: Secret::new("CK-SECRET-VALUE"),
                consumer_secret: Secret::new("CS-SECRET-VALUE"),
                token_id: Secret::new("TK-SECRET-VALUE"),
                token_secret: Secret::new("TS-SECRET-VALUE"),
            },
        );
        let d = format!("{c:?}");
        assert!(!d.contains("SECRET-VALUE"), "{d}");
    }
}

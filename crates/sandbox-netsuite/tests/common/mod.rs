//! Test helpers: start a sandbox on a random port and talk to it with a TBA-signing client
//! (written here from the reference rule, independent of the sandbox's verifier internals
//! except for the exported HMAC primitive, which the reference test vector pins down).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use heartsuite_sandbox_netsuite::{Config, SandboxHandle, pct, spawn, tba_signature};
use serde_json::Value;

pub async fn start(cfg: Config) -> SandboxHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    spawn(listener, cfg).await.expect("spawn sandbox")
}

static NONCE: AtomicU64 = AtomicU64::new(1);

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["o:errorDetails"][0]["o:errorCode"].as_str().unwrap_or("")
    }
    pub fn path(&self) -> &str {
        self.body["o:errorDetails"][0]["o:errorPath"].as_str().unwrap_or("")
    }
    pub fn new_id(&self) -> String {
        self.location.as_deref().and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_string()
    }
}

pub fn oauth_header(method: &str, url: &str, body: Option<&[u8]>, nonce: &str, ts: i64) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(a, b)| (a, b));
    let cfg = Config::default();
    let mut params: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), cfg.consumer_key.clone()),
        ("oauth_token".into(), cfg.token_id.clone()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_timestamp".into(), ts.to_string()),
        ("oauth_signature_method".into(), "HMAC-SHA256".into()),
        ("oauth_version".into(), "1.0".into()),
    ];
    if let Some(b) = body {
        use sha1::Digest as _;
        params.push(("oauth_body_hash".into(), base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b))));
    }
    let oauth = params.clone();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let d = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        params.push((d(k), d(v)));
    }
    let sig = tba_signature(method, base, &params, &cfg.consumer_secret, &cfg.token_secret);
    let mut h = format!("OAuth realm=\"{}\"", cfg.account);
    for (k, v) in oauth {
        h.push_str(&format!(", {k}=\"{}\"", pct(&v)));
    }
    h.push_str(&format!(", oauth_signature=\"{}\"", pct(&sig)));
    h
}

impl Api {
    pub fn new(h: &SandboxHandle) -> Api {
        Api { base: h.base_url(), http: reqwest::Client::new() }
    }

    pub async fn call(&self, method: &str, path_and_query: &str, body: Option<Value>) -> Resp {
        let url = format!("{}/services/rest{path_and_query}", self.base);
        let bytes = body.map(|b| b.to_string().into_bytes());
        let nonce = format!("n{}-{}", NONCE.fetch_add(1, Ordering::Relaxed), rand_suffix());
        let ts = jiff::Timestamp::now().as_second();
        let auth = oauth_header(method, &url, bytes.as_deref(), &nonce, ts);
        self.send(method, &url, bytes, Some(auth), &[]).await
    }

    pub async fn send(&self, method: &str, url: &str, body: Option<Vec<u8>>, auth: Option<String>, extra: &[(&str, &str)]) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, url);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, location, body }
    }

    pub async fn get(&self, p: &str) -> Resp {
        self.call("GET", p, None).await
    }
    pub async fn post(&self, p: &str, b: Value) -> Resp {
        self.call("POST", p, Some(b)).await
    }
    pub async fn patch(&self, p: &str, b: Value) -> Resp {
        self.call("PATCH", p, Some(b)).await
    }
    pub async fn put(&self, p: &str, b: Value) -> Resp {
        self.call("PUT", p, Some(b)).await
    }
    pub async fn delete(&self, p: &str) -> Resp {
        self.call("DELETE", p, None).await
    }
    pub async fn suiteql(&self, q: &str, limit: u32, offset: u32) -> Resp {
        self.call("POST", &format!("/query/v1/suiteql?limit={limit}&offset={offset}"), Some(serde_json::json!({"q": q}))).await
    }

    /// Create and return the new id, panicking with the error body if refused.
    pub async fn create(&self, rtype: &str, b: Value) -> String {
        let r = self.post(&format!("/record/v1/{rtype}"), b).await;
        assert_eq!(r.status, 204, "create {rtype}: {}", r.body);
        r.new_id()
    }

    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("control request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

pub async fn customer(api: &Api, name: &str) -> String {
    api.create("customer", serde_json::json!({"companyName": name, "subsidiary": {"id": "1"}})).await
}

pub async fn item(api: &Api, sku: &str, price: &str) -> String {
    api.create("inventoryItem", serde_json::json!({"itemId": sku, "basePrice": price})).await
}

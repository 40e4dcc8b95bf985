//! Shared test harness: a sandbox on random loopback ports plus small HTTP helpers.
#![allow(dead_code)]

use heartsuite_sandbox_heartland::{Config, SandboxHandle, spawn};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

pub async fn start() -> SandboxHandle {
    start_with(Config::default()).await
}

pub async fn start_with(cfg: Config) -> SandboxHandle {
    let g = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gpapi");
    let r = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind retail");
    spawn(g, r, cfg).await.expect("spawn sandbox")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub fn secret(nonce: &str, key: &str) -> String {
    hex::encode(Sha512::digest(format!("{nonce}{key}").as_bytes()))
}

/// A GP-API session: token plus base URL.
pub struct Gp {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Gp {
    pub async fn new(h: &SandboxHandle) -> Gp {
        let http = client();
        let base = h.gpapi_url();
        let body = json!({"app_id": "sandbox-app-id", "nonce": "n-1", "secret": secret("n-1", "sandbox-app-key"), "grant_type": "client_credentials"});
        let r = http
            .post(format!("{base}/accesstoken"))
            .header("X-GP-Version", "2021-03-22")
            .json(&body)
            .send()
            .await
            .expect("token");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("token json");
        Gp {
            base,
            token: v["token"].as_str().expect("token").to_string(),
            http,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_with(path, body, None).await
    }

    pub async fn post_with(&self, path: &str, body: Value, idem: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("X-GP-Version", "2021-03-22")
            // What the official SDKs send: not application/json.
            .header("Content-Type", "charset=UTF-8")
            .body(body.to_string());
        if let Some(k) = idem {
            req = req.header("x-gp-idempotency", k);
        }
        let r = req.send().await.expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("X-GP-Version", "2021-03-22")
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

pub fn sale(number: &str, amount: &str, capture: &str) -> Value {
    json!({
        "account_name": "Transaction_Processing", "channel": "CNP", "country": "US", "type": "SALE",
        "capture_mode": capture, "amount": amount, "currency": "USD", "reference": "ref-1",
        "payment_method": {"entry_mode": "ECOM", "name": "Jane", "card": {"number": number, "expiry_month": "12", "expiry_year": "30", "cvv": "123"}}
    })
}

/// A Retail session.
pub struct Retail {
    pub base: String,
    pub http: reqwest::Client,
}

impl Retail {
    pub fn new(h: &SandboxHandle) -> Retail {
        Retail {
            base: h.retail_url(),
            http: client(),
        }
    }
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("sandbox-retail-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("send");
        let s = r.status().as_u16();
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (s, r.json().await.unwrap_or(Value::Null), loc)
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::GET, path, None).await;
        (s, v)
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value, Option<String>) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        (s, v)
    }
}

pub type Received = std::sync::Arc<tokio::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A local HTTP receiver that records every POST body and its headers.
pub struct Receiver {
    pub url: String,
    pub got: Received,
}

pub async fn receiver(status: u16) -> Receiver {
    use axum::routing::post;
    let got: Received = Default::default();
    let g2 = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |h: axum::http::HeaderMap, b: axum::body::Bytes| {
            let g = g2.clone();
            async move {
                g.lock().await.push((h, b.to_vec()));
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Receiver { url, got }
}

/// Polls until `f` is true or 5 s pass.
pub async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

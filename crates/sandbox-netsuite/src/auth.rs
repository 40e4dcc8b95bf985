//! Authentication: TBA (OAuth 1.0a, HMAC-SHA256) verification per reference §3, and the
//! OAuth 2.0 client-credentials token endpoint (ES256 JWT assertion) with the bearer tokens it
//! issues.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use crate::error::Error;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 §3.6).
const OAUTH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, OAUTH).to_string()
}

fn decode(s: &str) -> String {
    // Form-style '+' is a space in query strings; OAuth header values never contain '+' raw.
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

/// The base string's parameter part: every pair encoded, sorted by key then value, joined.
pub fn normalize_params(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    enc.sort();
    enc.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// HMAC-SHA256 signature over `METHOD&pct(base_url)&pct(params)`, keyed `pct(cs)&pct(ts)`.
pub fn signature(method: &str, base_url: &str, params: &[(String, String)], consumer_secret: &str, token_secret: &str) -> String {
    let base = format!("{}&{}&{}", method.to_ascii_uppercase(), pct(base_url), pct(&normalize_params(params)));
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    // HMAC accepts keys of any length, so this cannot fail; fall back to an impossible
    // signature rather than panic if it ever did.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(base.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Parse `OAuth k="v", …` into decoded pairs.
pub fn parse_oauth_header(h: &str) -> Option<Vec<(String, String)>> {
    let rest = h.trim().strip_prefix("OAuth ").or_else(|| h.trim().strip_prefix("oauth "))?;
    let mut out = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('"');
        out.push((decode(k.trim()), decode(v)));
    }
    Some(out)
}

/// The credentials the sandbox accepts.
#[derive(Clone)]
pub struct Credentials {
    pub account: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token_id: String,
    pub token_secret: String,
    pub client_id: String,
    pub cert_id: String,
    pub cert_public_pem: String,
}

impl std::fmt::Debug for Credentials {
    // Secrets never appear in Debug output, even for a sandbox.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.account)
            .field("consumer_key", &self.consumer_key)
            .field("token_id", &self.token_id)
            .field("client_id", &self.client_id)
            .field("cert_id", &self.cert_id)
            .finish_non_exhaustive()
    }
}

/// Replay protection and issued bearer tokens.
#[derive(Default)]
pub struct AuthState {
    nonces: HashMap<String, i64>,
    nonce_order: VecDeque<(i64, String)>,
    tokens: HashMap<String, i64>,
}

impl AuthState {
    pub fn clear(&mut self) {
        *self = AuthState::default();
    }

    /// Records a nonce; false if it was seen within the tolerance window.
    fn use_nonce(&mut self, nonce: &str, now: i64, tolerance: i64) -> bool {
        while let Some((t, _)) = self.nonce_order.front() {
            if *t >= now - 2 * tolerance {
                break;
            }
            if let Some((_, n)) = self.nonce_order.pop_front() {
                self.nonces.remove(&n);
            }
        }
        if self.nonces.contains_key(nonce) {
            return false;
        }
        self.nonces.insert(nonce.to_string(), now);
        self.nonce_order.push_back((now, nonce.to_string()));
        true
    }

    pub fn issue_token(&mut self, now: i64) -> String {
        let bytes: [u8; 32] = rand::random();
        let tok = URL_SAFE_NO_PAD.encode(bytes);
        self.tokens.retain(|_, exp| *exp > now);
        self.tokens.insert(tok.clone(), now + 3600);
        tok
    }

    pub fn bearer_ok(&self, tok: &str, now: i64) -> bool {
        self.tokens.get(tok).is_some_and(|exp| *exp > now)
    }
}

/// What a request looks like to the verifier.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// `http://{Host}{path}` exactly as received (host lowercased, default port dropped).
    pub base_url: String,
    pub raw_query: Option<&'a str>,
    pub authorization: &'a str,
    pub body: &'a [u8],
}

pub fn base_url(host: &str, path: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    format!("http://{host}{path}")
}

/// Verify a TBA request. Every failure is INVALID_LOGIN; the reason only goes to a sandbox
/// header and the log.
pub fn verify_tba(req: &SignedRequest<'_>, creds: &Credentials, state: &mut AuthState, now: i64, tolerance: i64) -> Result<(), Error> {
    let params = parse_oauth_header(req.authorization).ok_or_else(|| Error::invalid_login("malformed OAuth header"))?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let realm = get("realm").unwrap_or_default();
    if !realm.is_empty() && realm != creds.account {
        return Err(Error::invalid_login(format!("realm {realm:?} is not account {:?}", creds.account)));
    }
    if get("oauth_consumer_key") != Some(creds.consumer_key.as_str()) {
        return Err(Error::invalid_login("unknown oauth_consumer_key"));
    }
    if get("oauth_token") != Some(creds.token_id.as_str()) {
        return Err(Error::invalid_login("unknown oauth_token"));
    }
    if get("oauth_signature_method") != Some("HMAC-SHA256") {
        return Err(Error::invalid_login("oauth_signature_method must be HMAC-SHA256"));
    }
    if let Some(v) = get("oauth_version")
        && v != "1.0"
    {
        return Err(Error::invalid_login("oauth_version must be 1.0"));
    }
    let ts: i64 = get("oauth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::invalid_login("missing oauth_timestamp"))?;
    if (ts - now).abs() > tolerance {
        return Err(Error::invalid_login(format!("oauth_timestamp {ts} is more than {tolerance}s from server time {now}")));
    }
    let nonce = get("oauth_nonce").filter(|n| !n.is_empty()).ok_or_else(|| Error::invalid_login("missing oauth_nonce"))?;
    let given = get("oauth_signature").ok_or_else(|| Error::invalid_login("missing oauth_signature"))?;
    if let Some(bh) = get("oauth_body_hash") {
        use sha1::Digest as _;
        let want = STANDARD.encode(sha1::Sha1::digest(req.body));
        if bh != want {
            return Err(Error::invalid_login("oauth_body_hash does not match the body"));
        }
    }
    // Sign over every oauth_* parameter received (oauth_body_hash included) except the
    // signature itself, plus the query parameters; realm is not signed.
    let mut signed: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k.starts_with("oauth_") && k != "oauth_signature")
        .cloned()
        .collect();
    if let Some(q) = req.raw_query {
        signed.extend(decode_query(q));
    }
    let want = signature(req.method, &req.base_url, &signed, &creds.consumer_secret, &creds.token_secret);
    let ok = hmac_eq(want.as_bytes(), given.as_bytes());
    if !ok {
        return Err(Error::invalid_login(format!("signature mismatch for base URL {}", req.base_url)));
    }
    // Only a correctly signed request consumes its nonce, so a forged request cannot burn a
    // legitimate client's nonce.
    if !state.use_nonce(nonce, now, tolerance) {
        return Err(Error::invalid_login("oauth_nonce reused"));
    }
    Ok(())
}

fn hmac_eq(a: &[u8], b: &[u8]) -> bool {
    // Constant-time comparison: cheap, and a sandbox should not teach timing leaks.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verify an OAuth 2.0 client-credentials assertion (ES256 only) and return nothing on success.
pub fn verify_client_assertion(jwt: &str, creds: &Credentials, token_url: &str, now: i64) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::{Signature, VerifyingKey};
    use p256::pkcs8::DecodePublicKey as _;

    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("client_assertion is not a compact JWS".into());
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad JWT header")?;
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad JWT claims")?;
    if header["alg"] != "ES256" {
        return Err(format!("alg {} not supported by the sandbox (ES256 only)", header["alg"]));
    }
    if header["kid"] != creds.cert_id.as_str() {
        return Err(format!("unknown kid {}", header["kid"]));
    }
    let key = VerifyingKey::from_public_key_pem(&creds.cert_public_pem).map_err(|e| format!("certificate: {e}"))?;
    let sig_bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| "bad JWT signature encoding")?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| "JWT signature is not a 64-byte ES256 signature")?;
    key.verify(format!("{h}.{p}").as_bytes(), &sig).map_err(|_| "JWT signature does not verify")?;

    if claims["iss"] != creds.client_id.as_str() {
        return Err("iss is not the client id".into());
    }
    let https_url = token_url.replacen("http://", "https://", 1);
    let aud_ok = |v: &serde_json::Value| v.as_str().is_some_and(|a| a == token_url || a == https_url);
    let aud = &claims["aud"];
    if !(aud_ok(aud) || aud.as_array().is_some_and(|a| a.iter().any(aud_ok))) {
        return Err(format!("aud must be the token URL {token_url}"));
    }
    let scope_ok = match &claims["scope"] {
        serde_json::Value::String(s) => s.split([',', ' ']).any(|x| x == "rest_webservices"),
        serde_json::Value::Array(a) => a.iter().any(|x| x == "rest_webservices"),
        _ => false,
    };
    if !scope_ok {
        return Err("scope must include rest_webservices".into());
    }
    let iat = claims["iat"].as_i64().ok_or("iat missing")?;
    let exp = claims["exp"].as_i64().ok_or("exp missing")?;
    if exp > iat + 3600 {
        return Err("exp must be at most iat + 3600".into());
    }
    if exp <= now {
        return Err("assertion expired".into());
    }
    if iat > now + 300 {
        return Err("iat is in the future".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_test_vector() {
        let params: Vec<(String, String)> = [
            ("oauth_consumer_key", "ck"),
            ("oauth_token", "tk"),
            ("oauth_nonce", "abc123"),
            ("oauth_timestamp", "1700000000"),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_version", "1.0"),
            ("expandSubResources", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = signature(
            "GET",
            "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer/42",
            &params,
            "cs",
            "ts",
        );
        assert_eq!(sig, "WgSqkjATKkXNlpCafuxevhlopaiD6jEPwqL8055eHek=");
    }

    fn creds() -> Credentials {
        Credentials {
            account: "ACCT".into(),
            consumer_key: "ck".into(),
            consumer_secret: "cs".into(),
            token_id: "tk".into(),
            token_secret: "ts".into(),
            client_id: "cid".into(),
            cert_id: "kid".into(),
            cert_public_pem: String::new(),
        }
    }

    fn header(sig: &str, nonce: &str, ts: i64) -> String {
        format!(
            "OAuth realm=\"ACCT\", oauth_consumer_key=\"ck\", oauth_token=\"tk\", oauth_nonce=\"{nonce}\", oauth_timestamp=\"{ts}\", oauth_signature_method=\"HMAC-SHA256\", oauth_version=\"1.0\", oauth_signature=\"{}\"",
            pct(sig)
        )
    }

    fn sign(nonce: &str, ts: i64) -> String {
        let params: Vec<(String, String)> = [
            ("oauth_consumer_key", "ck"),
            ("oauth_token", "tk"),
            ("oauth_nonce", nonce),
            ("oauth_timestamp", &ts.to_string()),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_version", "1.0"),
            ("limit", "5"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        signature("GET", "http://127.0.0.1:9101/services/rest/record/v1/customer", &params, "cs", "ts")
    }

    fn req(auth: &str) -> SignedRequest<'_> {
        SignedRequest {
            method: "GET",
            base_url: base_url("127.0.0.1:9101", "/services/rest/record/v1/customer"),
            raw_query: Some("limit=5"),
            authorization: auth,
            body: b"",
        }
    }

    #[test]
    fn verify_accepts_good_rejects_replay_skew_and_tamper() {
        let mut st = AuthState::default();
        let now = 1_700_000_000;
        let good = header(&sign("n1", now), "n1", now);
        assert!(verify_tba(&req(&good), &creds(), &mut st, now, 300).is_ok());
        // Same nonce again: replay.
        assert!(verify_tba(&req(&good), &creds(), &mut st, now, 300).is_err());
        // Timestamp outside tolerance.
        let old = header(&sign("n2", now - 301), "n2", now - 301);
        assert!(verify_tba(&req(&old), &creds(), &mut st, now, 300).is_err());
        // Query parameter changed after signing.
        let h = header(&sign("n3", now), "n3", now);
        let mut r = req(&h);
        r.raw_query = Some("limit=6");
        assert!(verify_tba(&r, &creds(), &mut st, now, 300).is_err());
        // Wrong host (URL as received is signed).
        let h = header(&sign("n4", now), "n4", now);
        let mut r = req(&h);
        r.base_url = base_url("localhost:9101", "/services/rest/record/v1/customer");
        assert!(verify_tba(&r, &creds(), &mut st, now, 300).is_err());
    }
}

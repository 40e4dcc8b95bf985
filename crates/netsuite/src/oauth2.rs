//! OAuth 2.0 client credentials (machine to machine) with an ES256-signed JWT assertion, and a
//! token cache that refreshes before expiry with one refresh in flight at a time.

use crate::error::{Error, parse_retry_after};
use base64::Engine as _;
use heartsuite_core::{Clock, Secret};
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use p256::pkcs8::DecodePrivateKey as _;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// NetSuite caps `exp - iat` at 3600 s; the assertion is spent at once, so keep it short-lived.
pub const ASSERTION_LIFETIME_SECS: i64 = 1800;
/// Refresh this long before the token's stated expiry, so a request never leaves with a token
/// that expires in flight.
pub const REFRESH_SKEW: Duration = Duration::from_secs(120);
/// Used when the token response has no `expires_in` (NetSuite issues ~60-minute tokens).
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds and signs the client assertion: header `{alg: ES256, typ: JWT, kid}`, claims
/// `{iss: client id, scope, aud: token URL, iat, exp}`.
pub fn build_assertion(
    key: &SigningKey,
    client_id: &str,
    certificate_id: &str,
    scope: &str,
    token_url: &str,
    now_secs: i64,
) -> Result<String, Error> {
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": certificate_id});
    let claims = serde_json::json!({
        "iss": client_id,
        "scope": scope,
        "aud": token_url,
        "iat": now_secs,
        "exp": now_secs + ASSERTION_LIFETIME_SECS,
    });
    let enc = |v: &serde_json::Value| serde_json::to_vec(v).map(|b| b64url(&b)).map_err(|e| Error::Signing(e.to_string()));
    let signing_input = format!("{}.{}", enc(&header)?, enc(&claims)?);
    // JWS ES256 wants the raw 64-byte r||s form, not DER (RFC 7518 §3.4).
    let sig: Signature = key.try_sign(signing_input.as_bytes()).map_err(|e| Error::Signing(e.to_string()))?;
    Ok(format!("{signing_input}.{}", b64url(&sig.to_bytes())))
}

pub fn parse_private_key(pem: &Secret) -> Result<SigningKey, Error> {
    // Never echo the key or the parser's view of it into the error.
    SigningKey::from_pkcs8_pem(pem.expose())
        .map_err(|_| Error::Config("OAuth 2.0 private key is not a PKCS#8 PEM P-256 key".into()))
}

#[derive(Clone)]
struct CachedToken {
    token: Arc<Secret>,
    /// Unix microseconds after which we fetch a new one (expiry minus skew).
    refresh_at: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(crate) struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    certificate_id: String,
    scope: String,
    key: SigningKey,
    clock: Arc<dyn Clock>,
    /// Held across the refresh: the first caller that finds the token stale refreshes while the
    /// others queue on the lock and then find the fresh token (single flight).
    cache: Mutex<Option<CachedToken>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        certificate_id: String,
        scope: String,
        private_key_pem: &Secret,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        Ok(Self {
            http,
            token_url,
            client_id,
            certificate_id,
            scope,
            key: parse_private_key(private_key_pem)?,
            clock,
            cache: Mutex::new(None),
            fetches: Default::default(),
        })
    }

    /// A valid access token, fetching one if the cache is empty or close to expiry.
    pub(crate) async fn token(&self) -> Result<Arc<Secret>, Error> {
        let mut guard = self.cache.lock().await;
        let now = self.clock.now_micros();
        if let Some(c) = guard.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *guard = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token if it is still `stale` (a 401 told us it no longer works), so the
    /// next `token()` fetches a new one; a token someone else already replaced is kept.
    pub(crate) async fn invalidate(&self, stale: &Arc<Secret>) {
        let mut guard = self.cache.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(&c.token, stale)) {
            *guard = None;
        }
    }

    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn fetch(&self) -> Result<CachedToken, Error> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let now_micros = self.clock.now_micros();
        let assertion = build_assertion(
            &self.key,
            &self.client_id,
            &self.certificate_id,
            &self.scope,
            &self.token_url,
            now_micros.div_euclid(1_000_000),
        )?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ];
        let resp = self.http.post(&self.token_url).form(&form).send().await.map_err(Error::from_reqwest)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let body = resp.bytes().await.map_err(Error::from_reqwest)?;
        if !(200..300).contains(&status) {
            let error = match serde_json::from_slice::<TokenErrorBody>(&body) {
                Ok(TokenErrorBody { error: Some(e), error_description: d }) => match d {
                    Some(d) => format!("{e}: {d}"),
                    None => e,
                },
                _ => format!("{} byte body", body.len()),
            };
            return Err(Error::Token { status, error, retry_after });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::Unexpected("token response without access_token".into()))?;
        // expires_in is a number by RFC 6749, but some servers send it as a string.
        let lifetime = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.to_string().parse::<u64>().ok(),
            Some(serde_json::Value::String(s)) => s.parse::<u64>().ok(),
            _ => None,
        }
        .unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS);
        // A lifetime shorter than the skew still gets used once rather than refetched forever.
        let usable = Duration::from_secs(lifetime).saturating_sub(REFRESH_SKEW).max(Duration::from_secs(lifetime / 2));
        Ok(CachedToken {
            token: Arc::new(Secret::new(parsed.access_token)),
            refresh_at: now_micros.saturating_add(usable.as_micros() as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{VerifyingKey, signature::Verifier as _};
    use p256::pkcs8::DecodePublicKey as _;

    const PRIV: &str = include_str!("../../../testdata/netsuite/sandbox-cert-es256-private.pk8.pem");
    const PUBK: &str = include_str!("../../../testdata/netsuite/sandbox-cert-es256-public.pem");

    #[test]
    fn assertion_is_a_valid_es256_jwt_with_netsuite_claims() {
        let key = parse_private_key(&Secret::new(PRIV)).unwrap();
        let url = "http://127.0.0.1:9101/services/rest/auth/oauth2/v1/token";
        let jwt = build_assertion(&key, "sandbox-client-id", "sandbox-cert", "rest_webservices", url, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "sandbox-cert");
        assert_eq!(claims["iss"], "sandbox-client-id");
        assert_eq!(claims["scope"], "rest_webservices");
        assert_eq!(claims["aud"], url);
        let iat = claims["iat"].to_string().parse::<i64>().unwrap();
        let exp = claims["exp"].to_string().parse::<i64>().unwrap();
        assert!(exp > iat && exp - iat <= 3600);

        let vk = VerifyingKey::from_public_key_pem(PUBK).unwrap();
        let sig = Signature::from_slice(&dec(parts[2])).unwrap();
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
    }

    #[test]
    fn bad_key_is_a_config_error_without_key_material() {
        let e = parse_private_key(&Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(!e.to_string().contains("AAAA"));
    }
}

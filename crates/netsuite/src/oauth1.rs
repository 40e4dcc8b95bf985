//! Token-based authentication: OAuth 1.0a (RFC 5849) with HMAC-SHA256, as NetSuite wants it.
//!
//! Hand-rolled because the published OAuth 1 crates only do HMAC-SHA1, which NetSuite dropped in
//! 2023.1. The rules that matter (reference §3): only the RFC 3986 unreserved set stays
//! unencoded; the realm (raw account id, e.g. `1234567_SB1`) is sent but not signed; query
//! parameters are signed, JSON bodies are not.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use url::Url;

/// Everything but ALPHA / DIGIT / "-" / "." / "_" / "~" is encoded (RFC 3986 §2.3, RFC 5849 §3.6).
/// Form encoding (space as `+`, `*` kept) would give signatures NetSuite rejects.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The per-request values that make a signature unique.
#[derive(Debug, Clone)]
pub struct OAuthParams<'a> {
    pub consumer_key: &'a str,
    pub token: &'a str,
    pub nonce: &'a str,
    pub timestamp: u64,
}

/// `scheme://host[:port]/path`, scheme and host lowercased, default ports dropped (RFC 5849 §3.4.1.2).
pub fn base_string_uri(url: &Url) -> String {
    let scheme = url.scheme().to_ascii_lowercase();
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    // Url::port() is already None for the scheme's default port.
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", url.path())
}

/// RFC 5849 §3.4.1: METHOD & pct(base uri) & pct(sorted, encoded k=v pairs).
pub fn signature_base_string(method: &str, url: &Url, p: &OAuthParams<'_>) -> String {
    let ts = p.timestamp.to_string();
    let mut pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (pct(&k), pct(&v))).collect();
    for (k, v) in [
        ("oauth_consumer_key", p.consumer_key),
        ("oauth_nonce", p.nonce),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", ts.as_str()),
        ("oauth_token", p.token),
        ("oauth_version", "1.0"),
    ] {
        pairs.push((pct(k), pct(v)));
    }
    // Sort by encoded name, then encoded value (§3.4.1.3.2).
    pairs.sort();
    let normalized = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("{}&{}&{}", method.to_ascii_uppercase(), pct(&base_string_uri(url)), pct(&normalized))
}

/// base64(HMAC-SHA256(pct(consumer_secret)&pct(token_secret), base string)).
pub fn sign(base_string: &str, consumer_secret: &str, token_secret: &str) -> String {
    let key = format!("{}&{}", pct(consumer_secret), pct(token_secret));
    // HMAC accepts keys of any length, so this cannot fail; map instead of unwrap all the same.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(base_string.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The full `Authorization` header value.
pub fn authorization_header(
    method: &str,
    url: &Url,
    realm: &str,
    p: &OAuthParams<'_>,
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let sig = sign(&signature_base_string(method, url, p), consumer_secret, token_secret);
    format!(
        "OAuth realm=\"{}\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_nonce=\"{}\", \
         oauth_timestamp=\"{}\", oauth_signature_method=\"HMAC-SHA256\", oauth_version=\"1.0\", oauth_signature=\"{}\"",
        pct(realm),
        pct(p.consumer_key),
        pct(p.token),
        pct(p.nonce),
        p.timestamp,
        pct(&sig)
    )
}

/// Where nonces come from; injectable so tests can sign deterministically.
pub trait NonceSource: Send + Sync + 'static {
    fn nonce(&self) -> String;
}

/// 32 random bytes from the operating system's RNG, hex-encoded (64 chars, all unreserved).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsNonce;

impl NonceSource for OsNonce {
    fn nonce(&self) -> String {
        use rand::TryRngCore as _;
        let mut buf = [0u8; 32];
        if rand::rngs::OsRng.try_fill_bytes(&mut buf).is_err() {
            // The OS RNG failing is near-impossible; ThreadRng is a CSPRNG seeded from it, so it
            // is an acceptable fallback and avoids a panic on the request path.
            use rand::RngCore as _;
            rand::rng().fill_bytes(&mut buf);
        }
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's vector, verified there with Python oauthlib.
    #[test]
    fn reference_test_vector() {
        let url = Url::parse(
            "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer/42?expandSubResources=true",
        )
        .unwrap();
        let p = OAuthParams { consumer_key: "ck", token: "tk", nonce: "abc123", timestamp: 1_700_000_000 };
        let base = signature_base_string("GET", &url, &p);
        assert_eq!(sign(&base, "cs", "ts"), "WgSqkjATKkXNlpCafuxevhlopaiD6jEPwqL8055eHek=");
        let h = authorization_header("GET", &url, "1234567_SB1", &p, "cs", "ts");
        assert!(h.starts_with("OAuth realm=\"1234567_SB1\", "), "{h}");
        assert!(h.contains("oauth_signature=\"WgSqkjATKkXNlpCafuxevhlopaiD6jEPwqL8055eHek%3D\""), "{h}");
        // The realm is not part of what is signed.
        assert!(!base.contains("realm"));
    }

    #[test]
    fn encodes_only_the_unreserved_set() {
        assert_eq!(pct("aZ09-._~"), "aZ09-._~");
        assert_eq!(pct("a b+c*d/e:f!"), "a%20b%2Bc%2Ad%2Fe%3Af%21");
        assert_eq!(pct("é"), "%C3%A9");
    }

    #[test]
    fn base_uri_drops_default_port_and_lowercases() {
        let u = Url::parse("HTTPS://Acct.Suitetalk.Api.NetSuite.com:443/services/rest/record/v1/customer").unwrap();
        assert_eq!(base_string_uri(&u), "https://acct.suitetalk.api.netsuite.com/services/rest/record/v1/customer");
        let u = Url::parse("http://127.0.0.1:9101/services/rest/query/v1/suiteql?limit=5").unwrap();
        assert_eq!(base_string_uri(&u), "http://127.0.0.1:9101/services/rest/query/v1/suiteql");
    }

    #[test]
    fn os_nonces_are_long_and_distinct() {
        let a = OsNonce.nonce();
        let b = OsNonce.nonce();
        assert!(a.len() >= 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}

//! GP-API `status_url` notification authenticity: `X-GP-Signature` is lowercase hex
//! SHA-512(raw body + app_key). The check runs over the exact received bytes (re-serialising
//! the JSON would change them) and compares in constant time, so the comparison does not reveal
//! how many leading characters of a forged signature were right.

use heartsuite_core::Secret;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// The header GP-API puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-GP-Signature";

/// The signature GP-API would send for `body`.
pub fn gp_signature(body: &[u8], app_key: &Secret) -> String {
    let mut h = Sha512::new();
    h.update(body);
    h.update(app_key.expose().as_bytes());
    hex::encode(h.finalize())
}

/// True when `signature` (the header value) matches `body` signed with `app_key`.
pub fn verify_gp_signature(body: &[u8], signature: &str, app_key: &Secret) -> bool {
    // Hex is case-insensitive; the reference says lowercase, but accepting either costs nothing.
    let given = signature.trim().to_ascii_lowercase();
    let expected = gp_signature(body, app_key);
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"TRN_abc","status":"CAPTURED"}"#;

    #[test]
    fn good_signature_verifies() {
        let key = Secret::new("app-key");
        let sig = gp_signature(BODY, &key);
        assert_eq!(sig.len(), 128);
        assert!(verify_gp_signature(BODY, &sig, &key));
        assert!(verify_gp_signature(BODY, &sig.to_ascii_uppercase(), &key));
    }

    #[test]
    fn signature_matches_independent_computation() {
        // SHA-512 of "abc" split as body "ab" + key "c".
        assert_eq!(
            gp_signature(b"ab", &Secret::new("c")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn bad_signature_is_refused() {
        let key = Secret::new("app-key");
        let sig = gp_signature(BODY, &Secret::new("other-key"));
        assert!(!verify_gp_signature(BODY, &sig, &key));
        assert!(!verify_gp_signature(BODY, "", &key));
        assert!(!verify_gp_signature(BODY, "zz", &key));
    }

    #[test]
    fn altered_body_is_refused() {
        let key = Secret::new("app-key");
        let sig = gp_signature(BODY, &key);
        let altered = br#"{"id":"TRN_abc","status":"DECLINED"}"#;
        assert!(!verify_gp_signature(altered, &sig, &key));
        // Re-serialised (pretty) JSON with the same meaning is different bytes, so it fails too.
        let pretty = br#"{ "id": "TRN_abc", "status": "CAPTURED" }"#;
        assert!(!verify_gp_signature(pretty, &sig, &key));
    }
}

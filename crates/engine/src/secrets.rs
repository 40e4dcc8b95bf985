//! Credentials at rest: a JSON file of XChaCha20-Poly1305 ciphertexts, one per name, with the
//! name as associated data so two entries cannot be swapped. 24-byte random nonces are safe even
//! when several nodes share the key. The key comes from `HEARTSUITE_SECRETS_KEY` (base64 of 32
//! bytes) or a key file; it is never written next to the secrets.

use crate::EngineError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use heartsuite_core::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const AAD_PREFIX: &str = "heartsuite-secret:v1:";

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    entries: BTreeMap<String, String>,
}

pub struct SecretsFile {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
    file: FileFormat,
}

impl std::fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsFile").field("path", &self.path).field("names", &self.file.entries.keys().collect::<Vec<_>>()).finish()
    }
}

fn err(m: impl Into<String>) -> EngineError {
    EngineError::Secrets(m.into())
}

/// A new random key, base64, for `HEARTSUITE_SECRETS_KEY` or a key file.
pub fn generate_key() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

pub fn parse_key(text: &str) -> Result<[u8; 32], EngineError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| err("the secrets key is not base64; create one with `heartsuite secrets keygen`"))?;
    bytes.try_into().map_err(|_| err("the secrets key must be 32 bytes (base64); create one with `heartsuite secrets keygen`"))
}

impl SecretsFile {
    /// Opens the file (or starts an empty one if it does not exist yet).
    pub fn open(path: &Path, key: &[u8; 32]) -> Result<Self, EngineError> {
        let cipher = XChaCha20Poly1305::new(key.into());
        let file = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| err(format!("{} is not a heartsuite secrets file: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFormat { version: 1, entries: BTreeMap::new() },
            Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(Self { path: path.to_path_buf(), cipher, file })
    }

    pub fn names(&self) -> Vec<String> {
        self.file.entries.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Result<Secret, EngineError> {
        let blob = self.file.entries.get(name).ok_or_else(|| {
            err(format!("no secret named `{name}` in {}; add it with `heartsuite secrets set {name}`", self.path.display()))
        })?;
        let raw = B64.decode(blob).map_err(|_| err(format!("secret `{name}` is damaged (not base64)")))?;
        if raw.len() < 24 {
            return Err(err(format!("secret `{name}` is damaged (too short)")));
        }
        let (nonce, ct) = raw.split_at(24);
        let aad = format!("{AAD_PREFIX}{name}");
        let nonce = XNonce::try_from(nonce).map_err(|_| err(format!("secret `{name}` is damaged (nonce)")))?;
        let plain = self
            .cipher
            .decrypt(&nonce, Payload { msg: ct, aad: aad.as_bytes() })
            .map_err(|_| err(format!("secret `{name}` cannot be decrypted: wrong key, or the file was altered")))?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| err(format!("secret `{name}` is not text")))
    }

    pub fn set(&mut self, name: &str, value: &Secret) -> Result<(), EngineError> {
        let nonce_bytes = rand::random::<[u8; 24]>();
        let nonce = XNonce::from(nonce_bytes);
        let aad = format!("{AAD_PREFIX}{name}");
        let ct = self
            .cipher
            .encrypt(&nonce, Payload { msg: value.expose().as_bytes(), aad: aad.as_bytes() })
            .map_err(|_| err("encryption failed"))?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ct);
        self.file.entries.insert(name.to_string(), B64.encode(blob));
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.file.entries.remove(name).is_some()
    }

    /// Writes atomically (temp file + rename), readable by the owner only.
    pub fn save(&self) -> Result<(), EngineError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(&self.file).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| err(format!("cannot replace {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = std::env::temp_dir().join(format!("hs-secrets-{}", rand::random::<u64>()));
        let path = dir.join("secrets.json");
        let key = parse_key(&generate_key()).unwrap();
        let mut f = SecretsFile::open(&path, &key).unwrap();
        f.set("netsuite.token_secret", &Secret::new("tok-secret-value")).unwrap();
        f.set("gpapi.app_key", &Secret::new("app-key-value")).unwrap();
        f.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tok-secret-value") && !text.contains("app-key-value"));

        let f = SecretsFile::open(&path, &key).unwrap();
        assert_eq!(f.get("netsuite.token_secret").unwrap().expose(), "tok-secret-value");
        assert!(!format!("{f:?}").contains("value"));

        let other = parse_key(&generate_key()).unwrap();
        let e = SecretsFile::open(&path, &other).unwrap().get("gpapi.app_key").unwrap_err().to_string();
        assert!(e.contains("wrong key"), "{e}");

        // Swapping two ciphertexts is caught by the associated data.
        let mut swapped: serde_json::Value = serde_json::from_str(&text).unwrap();
        let a = swapped["entries"]["gpapi.app_key"].clone();
        swapped["entries"]["netsuite.token_secret"] = a;
        std::fs::write(&path, swapped.to_string()).unwrap();
        assert!(SecretsFile::open(&path, &key).unwrap().get("netsuite.token_secret").is_err());
        let e = SecretsFile::open(&path, &key).unwrap().get("missing").unwrap_err().to_string();
        assert!(e.contains("heartsuite secrets set missing"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(parse_key("not base64!").unwrap_err().to_string().contains("keygen"));
        assert!(parse_key("AAAA").unwrap_err().to_string().contains("32 bytes"));
    }
}

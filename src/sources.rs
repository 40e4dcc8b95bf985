//! Turns `[sources.*]` config into ingress specs, resolving each credential reference.

use crate::config::{Config, SecretResolver, SourceKind};
use anyhow::Result;
use heartsuite_engine::ingress::{SourceAuth, SourceFormat, SourceSpec};

pub fn build(cfg: &Config, secrets: &SecretResolver) -> Result<Vec<SourceSpec>> {
    let mut out = Vec::new();
    for (name, s) in &cfg.sources {
        let (auth, format) = match s.kind {
            SourceKind::Netsuite | SourceKind::Shop => {
                let secrets = s
                    .secrets
                    .iter()
                    .enumerate()
                    .map(|(i, r)| secrets.resolve(r, &format!("sources.{name}.secrets[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                let format = if s.kind == SourceKind::Netsuite { SourceFormat::NetSuite } else { SourceFormat::Shop };
                (SourceAuth::Hmac { secrets, tolerance_secs: s.tolerance_secs }, format)
            }
            SourceKind::Gpapi => {
                let r = s.app_key.as_deref().unwrap_or_default();
                (SourceAuth::GpSignature { app_key: secrets.resolve(r, &format!("sources.{name}.app_key"))? }, SourceFormat::GpApi)
            }
            SourceKind::Retail => {
                let r = s.token.as_deref().unwrap_or_default();
                (SourceAuth::PathToken { token: secrets.resolve(r, &format!("sources.{name}.token"))? }, SourceFormat::Retail)
            }
        };
        out.push(SourceSpec { name: name.clone(), auth, format });
    }
    Ok(out)
}

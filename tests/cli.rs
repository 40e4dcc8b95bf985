//! The operator's CLI against a real data directory: secrets are stored encrypted and audited by
//! name only; the DLQ and audit commands work on the same store.

use std::io::Write;
use std::process::{Command, Stdio};

fn hs(dir: &std::path::Path, key: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heartsuite"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("HEARTSUITE_SECRETS_KEY", key)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(c.stdin.take());
    }
    let o = c.wait_with_output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn secrets_are_encrypted_and_their_changes_audited_by_name_only() {
    let dir = std::env::temp_dir().join(format!("hs-cli-{}", std::process::id()));
    let (ok, key, _) = hs(&dir, "", &["secrets", "keygen"], None);
    assert!(ok);
    let key = key.trim().to_string();
    let (ok, out, err) = hs(&dir, &key, &["secrets", "set", "gpapi_app_key"], Some("very-secret-value\n"));
    assert!(ok, "{out}{err}");
    let text = std::fs::read_to_string(dir.join("secrets.json")).unwrap();
    assert!(!text.contains("very-secret-value"));
    let (ok, out, _) = hs(&dir, &key, &["secrets", "list"], None);
    assert!(ok && out.contains("gpapi_app_key") && !out.contains("very-secret-value"));
    let (ok, out, _) = hs(&dir, &key, &["audit", "show", "--subject", "secret:gpapi_app_key"], None);
    assert!(ok && out.contains("secrets.set"), "{out}");
    assert!(!out.contains("very-secret-value"));
    let (ok, out, _) = hs(&dir, &key, &["audit", "verify"], None);
    assert!(ok && out.contains("audit chain intact: 1 entries verified"), "{out}");
    // A wrong key cannot read it, and says how to fix it.
    let (ok, _, err) = hs(&dir, "AAAA", &["secrets", "set", "x"], Some("v\n"));
    assert!(!ok && err.contains("32 bytes"), "{err}");
    let (ok, out, _) = hs(&dir, &key, &["dlq", "list"], None);
    assert!(ok && out.contains("empty"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Runs the user-event script's stubbed test (integrations/netsuite/heartsuite_ue.test.js) when
//! node is available, so the script's signing stays checked with the crate.

#[test]
fn user_event_script_signs_events_per_spec() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/netsuite");
    let out = match std::process::Command::new("node").arg(dir.join("heartsuite_ue.test.js")).output() {
        Ok(o) => o,
        Err(_) => {
            println!("SKIPPED user_event_script_signs_events_per_spec: node not installed");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! `[trigger] schedule`: checked when the flow loads, and its events routed to that flow alone.

use heartsuite_flows::FlowSet;
use serde_json::json;
use std::path::Path;

fn flow(name: &str, trigger: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[trigger]\n{trigger}\n\n[[steps]]\nkind = \"map\"\nname = \"m\"\n[steps.fields]\n\"x\" = \"'1'\"\n"
    )
}

#[test]
fn a_bad_cron_expression_is_a_load_error_naming_file_line_and_problem() {
    let src = flow("nightly", "schedule = \"0 25 * * *\"");
    let errs = FlowSet::from_sources([(Path::new("flows/nightly.toml"), src.as_str())])
        .expect_err("hour 25 must not load");
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.file, Path::new("flows/nightly.toml"));
    assert_eq!(e.line, 4, "the line of `schedule = ...`");
    assert_eq!(e.field.as_deref(), Some("trigger.schedule"));
    let text = e.to_string();
    assert!(text.starts_with("flows/nightly.toml:4:"), "{text}");
    assert!(
        text.contains(
            "`0 25 * * *` is not a cron expression: the hour field `25` is not valid (allowed: 0-23)"
        ),
        "{text}"
    );
    assert!(
        text.contains("minute hour day-of-month month day-of-week"),
        "{text}"
    );

    for ok in [
        "0 2 * * *",
        "*/5 * * * *",
        "30 6 * * MON-FRI",
        "@hourly",
        "0 0 2 * * *",
    ] {
        let src = flow("nightly", &format!("schedule = \"{ok}\""));
        let set = FlowSet::from_sources([(Path::new("f.toml"), src.as_str())])
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        assert!(
            set.get("nightly").expect("flow").schedule().is_some(),
            "{ok}"
        );
    }
}

#[test]
fn schedule_events_route_to_exactly_their_flow() {
    let a = flow("close_day", "schedule = \"0 2 * * *\"");
    let b = flow("other_timed", "schedule = \"0 3 * * *\"");
    // Patterns that would otherwise catch `schedule.close_day`.
    let c = flow("greedy", "events = [\"*\", \"schedule.*\"]");
    let d = flow("no_schedule", "events = [\"schedule.no_schedule\"]");
    let set = FlowSet::from_sources([
        (Path::new("a.toml"), a.as_str()),
        (Path::new("b.toml"), b.as_str()),
        (Path::new("c.toml"), c.as_str()),
        (Path::new("d.toml"), d.as_str()),
    ])
    .expect("load");
    let names = |kind: &str| {
        set.flows_for(kind, &json!({"flow": "x", "slot": "2026-03-14T02:00:00Z"}))
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("schedule.close_day"), ["close_day"]);
    assert_eq!(names("schedule.other_timed"), ["other_timed"]);
    assert!(
        names("schedule.no_schedule").is_empty(),
        "only a scheduled flow takes its slot"
    );
    assert!(names("schedule.unknown").is_empty());
    assert_eq!(names("gpapi.transaction.captured"), ["greedy"]);
}

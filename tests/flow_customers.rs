//! Flow 7, customers: Heartland Retail customers become NetSuite customers without duplicates.
//! Everything runs for real: the Heartland Retail sandbox (webhooks are fetched back), the
//! NetSuite sandbox (SuiteQL candidate search, REST reads and writes), and the engine with the
//! built-in flow files. Outcomes are read back from NetSuite and from the crosswalk.

mod common;

use heartsuite::config::{Config, NetSuiteConfig, RetailConfig, SourceConfig, SourceKind};
use heartsuite::server;
use heartsuite_core::{Clock, ErrorClass, Secret, SystemClock};
use heartsuite_heartland::RetailClient;
use heartsuite_heartland::retail::CustomerInput;
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_sandbox::heartland;
use heartsuite_store::{DynStore, JobState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "customers-test-token-0123456789ab";

struct World {
    running: server::Running,
    store: DynStore,
    retail: RetailClient,
    ns: NetSuiteClient,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    hl: heartland::SandboxHandle,
    nss: heartsuite_sandbox::netsuite::SandboxHandle,
    dir: std::path::PathBuf,
}

async fn world() -> World {
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hl = heartland::spawn(gp, rt, heartland::Config::default())
        .await
        .unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nss = heartsuite_sandbox::netsuite::spawn(ns_l, Default::default())
        .await
        .unwrap();
    let retail = RetailClient::new(heartsuite_heartland::RetailConfig::new(
        hl.retail_url(),
        Secret::new("sandbox-retail-token"),
    ))
    .unwrap();

    let dir = common::fresh_dir();
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.clone();
    cfg.engine.workers = 4;
    cfg.flows.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/flows").into();
    cfg.sources.insert(
        "retail".into(),
        SourceConfig {
            kind: SourceKind::Retail,
            secrets: vec![],
            app_key: None,
            token: Some(TOKEN.into()),
            tolerance_secs: 300,
        },
    );
    cfg.retail = Some(RetailConfig {
        base_url: hl.retail_url(),
        token: "sandbox-retail-token".into(),
    });
    cfg.netsuite = Some(NetSuiteConfig {
        concurrency: 5,
        timeout_secs: 10,
        ..NetSuiteConfig::sandbox(nss.base_url())
    });
    // A customer waiting for a concurrent one with the same e-mail retries quickly.
    let mut dep = heartsuite_engine::policy::ClassPolicy::default_for(ErrorClass::Dependency);
    dep.base_delay = Duration::from_millis(200);
    dep.max_delay = Duration::from_millis(500);
    dep.max_attempts = 20;
    cfg.retry.insert("dependency".into(), dep);

    let engine = common::engine::start_engine(&cfg).await;
    let ns = common::engine::sandbox_netsuite_client(nss.base_url());
    World {
        running: engine.running,
        store: engine.store,
        retail,
        ns,
        http: reqwest::Client::new(),
        clock: Arc::new(SystemClock),
        hl,
        nss,
        dir,
    }
}

impl World {
    /// A customer keyed in by hand in NetSuite (no external id).
    async fn netsuite_customer(
        &self,
        first: &str,
        last: &str,
        email: &str,
        phone: &str,
        address: Option<(&str, &str, &str, &str)>,
    ) -> String {
        let mut body = json!({"isPerson": true, "firstName": first, "lastName": last, "subsidiary": {"id": "1"}});
        if !email.is_empty() {
            body["email"] = json!(email);
        }
        if !phone.is_empty() {
            body["phone"] = json!(phone);
        }
        if let Some((addr1, city, state, zip)) = address {
            body["addressBook"] = json!({"items": [{"defaultBilling": true, "defaultShipping": true,
                "addressBookAddress": {"addr1": addr1, "city": city, "state": state, "zip": zip, "country": {"id": "US"}}}]});
        }
        self.ns.create("customer", &body).await.unwrap()
    }

    /// A customer in Heartland Retail, then its webhook (which carries the address line; the
    /// engine fetches the rest back from Retail).
    async fn retail_customer(
        &self,
        first: &str,
        last: &str,
        email: &str,
        phone: &str,
        address: &str,
    ) -> i64 {
        let input = CustomerInput {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: (!email.is_empty()).then(|| email.into()),
            phone: (!phone.is_empty()).then(|| phone.into()),
            custom: None,
        };
        let id = self.retail.create_customer(&input).await.unwrap();
        self.webhook(id, address).await;
        id
    }

    async fn webhook(&self, id: i64, address: &str) {
        let mut body = bare_customer(&self.retail, id).await;
        if !address.is_empty() {
            body["address"] = json!({"line": address});
        }
        let r = self
            .http
            .post(format!("http://{}/hooks/retail/{TOKEN}", self.running.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r: Value = r.json().await.unwrap();
        assert_eq!(r["jobs"], 1, "{r}");
    }

    /// Waits until no job is pending, running or retrying.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c: std::collections::BTreeMap<_, _> =
                self.store.job_counts().await.unwrap().into_iter().collect();
            let busy: i64 = [JobState::Pending, JobState::Running, JobState::Retrying]
                .iter()
                .map(|s| c.get(s).copied().unwrap_or(0))
                .sum();
            if busy == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs did not settle: {c:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count(&self, state: JobState) -> i64 {
        self.store
            .job_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .unwrap_or(0)
    }

    /// The NetSuite customer the crosswalk links this Retail customer to.
    async fn linked(&self, retail_id: i64) -> Option<String> {
        self.store
            .effect("netsuite", "customer", &format!("hs-cust-{retail_id}"))
            .await
            .unwrap()
            .map(|e| e.remote_id)
    }

    async fn customer(&self, id: &str) -> Value {
        self.ns.get("customer", id, true).await.unwrap()
    }

    async fn ids_where(&self, cond: &str) -> Vec<String> {
        let rows = self
            .ns
            .suiteql(
                &format!("SELECT id FROM customer WHERE {cond} ORDER BY id"),
                100,
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                r["id"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| r["id"].to_string())
            })
            .collect()
    }

    async fn all_customer_ids(&self) -> Vec<String> {
        self.ids_where("1 = 1").await
    }

    async fn stop(self) {
        self.running.shutdown().await;
        self.nss.shutdown().await;
        self.hl.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bare customer as Retail posts it (its fields, no nulls; `updated_at` tells the versions of
/// one customer apart).
async fn bare_customer(retail: &RetailClient, id: i64) -> Value {
    let c = serde_json::to_value(retail.get_customer(id).await.unwrap()).unwrap();
    let mut body: serde_json::Map<String, Value> = c
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !v.is_null() && *k != "public_id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    body.insert(
        "updated_at".into(),
        json!(format!(
            "2026-11-26T10:00:{:02}Z",
            rand::random::<u8>() % 60
        )),
    );
    Value::Object(body)
}

#[tokio::test]
async fn exact_email_duplicate_merges_filling_only_empty_fields_and_redelivery_creates_nothing() {
    let w = world().await;
    let existing = w
        .netsuite_customer("Dana", "Whitfield", "Dana.Whitfield@Example.com", "", None)
        .await;

    // Another first name in Retail, a phone and an address NetSuite lacks.
    let a = w
        .retail_customer(
            "Danielle",
            "Whitfield",
            " DANA.WHITFIELD@example.com ",
            "(512) 555-0100",
            "123 Main St, Apt 4, Austin, TX 78701",
        )
        .await;
    w.settle().await;
    assert_eq!(w.count(JobState::Succeeded).await, 1);
    assert_eq!(w.linked(a).await.as_deref(), Some(existing.as_str()));
    assert_eq!(
        w.all_customer_ids().await,
        vec![existing.clone()],
        "no second customer"
    );
    let c = w.customer(&existing).await;
    assert_eq!(c["firstName"], "Dana", "NetSuite's value is kept: {c}");
    assert_eq!(c["phone"], "+15125550100", "an empty field is filled: {c}");
    assert_eq!(
        c["addressBook"]["items"][0]["addressBookAddress"]["addr1"], "123 Main St",
        "{c}"
    );
    assert_eq!(
        c["addressBook"]["items"][0]["addressBookAddress"]["zip"], "78701",
        "{c}"
    );
    assert!(
        c.get("externalId").is_none_or(Value::is_null),
        "the hand-keyed record keeps its identity: {c}"
    );
    // The conflict is on the record, not silently resolved.
    let audit = w
        .store
        .audit_for_subject(&format!("netsuite:customer:{existing}"))
        .await
        .unwrap();
    let merge = audit
        .iter()
        .find(|e| e.entry.action == "customer.merge")
        .expect("merge audited");
    assert_eq!(merge.entry.details["matched_on"], "email");
    assert_eq!(
        merge.entry.details["conflicts_kept_netsuite_value"],
        json!([{"field": "firstName", "netsuite": "Dana", "retail": "Danielle"}])
    );
    assert!(
        merge.entry.details["filled"]
            .as_array()
            .unwrap()
            .contains(&json!("phone")),
        "{}",
        merge.entry.details
    );

    // A second Retail customer with the same e-mail: the same NetSuite customer, two links.
    let b = w
        .retail_customer("Dana", "Whitfield", "dana.whitfield@example.com", "", "")
        .await;
    w.settle().await;
    assert_eq!(w.linked(b).await.as_deref(), Some(existing.as_str()));
    assert_eq!(w.all_customer_ids().await, vec![existing.clone()]);

    // Redelivery of both webhooks: jobs succeed, nothing is written.
    let before = w.customer(&existing).await;
    w.webhook(a, "999 Other St, Dallas, TX 75001").await;
    w.webhook(b, "").await;
    w.settle().await;
    assert_eq!(w.count(JobState::Succeeded).await, 4);
    assert_eq!(w.all_customer_ids().await, vec![existing.clone()]);
    assert_eq!(
        w.customer(&existing).await,
        before,
        "a redelivery changes nothing"
    );
    w.stop().await;
}

#[tokio::test]
async fn phone_and_fuzzy_duplicates_merge_and_distinct_people_are_created() {
    let w = world().await;
    let robert = w
        .netsuite_customer(
            "Robert",
            "Smith",
            "rsmith@work.example",
            "(312) 555-0199",
            Some(("9 Elm Road", "Chicago", "IL", "60601")),
        )
        .await;
    let kathy = w
        .netsuite_customer(
            "Katherine",
            "O'Neil",
            "k.oneil@old.example",
            "",
            Some(("40 Lake Shore Drive", "Chicago", "IL", "60611")),
        )
        .await;

    // Same phone written another way, a nickname, another e-mail: merged on phone.
    let bob = w
        .retail_customer("Bob", "Smith", "bob@home.example", "312.555.0199", "")
        .await;
    // No shared key; nickname + typo-free surname variant + the same address: fuzzy merge.
    let kate = w
        .retail_customer(
            "Kathy",
            "ONeil",
            "kathy@new.example",
            "",
            "40 Lake Shore Dr, Chicago, IL 60611",
        )
        .await;
    // Robert's household: same address, another person.
    let mark = w
        .retail_customer(
            "Mark",
            "Smith",
            "mark@home.example",
            "",
            "9 Elm Rd, Chicago, IL 60601",
        )
        .await;
    // A namesake in another city.
    let other = w
        .retail_customer(
            "Robert",
            "Smith",
            "bobby@florida.example",
            "",
            "77 Ocean Ave, Miami, FL 33101",
        )
        .await;
    w.settle().await;
    assert_eq!(
        w.count(JobState::Succeeded).await,
        4,
        "{:?}",
        w.store.jobs(Some(JobState::Dead), 10).await.unwrap()
    );

    assert_eq!(w.linked(bob).await.as_deref(), Some(robert.as_str()));
    assert_eq!(w.linked(kate).await.as_deref(), Some(kathy.as_str()));
    let audit = w
        .store
        .audit_for_subject(&format!("netsuite:customer:{kathy}"))
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.entry.action == "customer.merge" && e.entry.details["matched_on"] == "fuzzy"),
        "{audit:?}"
    );

    let mark_id = w.linked(mark).await.expect("Mark created");
    let other_id = w.linked(other).await.expect("the namesake created");
    assert!(
        ![&robert, &kathy].contains(&&mark_id) && ![&robert, &kathy, &mark_id].contains(&&other_id)
    );
    let m = w.customer(&mark_id).await;
    assert_eq!(
        (
            m["firstName"].as_str(),
            m["lastName"].as_str(),
            m["externalId"].as_str()
        ),
        (
            Some("Mark"),
            Some("Smith"),
            Some(&*format!("hs-cust-{mark}"))
        )
    );
    let o = w.customer(&other_id).await;
    assert_eq!(o["email"], "bobby@florida.example");
    assert_eq!(
        o["addressBook"]["items"][0]["addressBookAddress"]["city"],
        "Miami"
    );
    assert_eq!(w.all_customer_ids().await.len(), 4);
    w.stop().await;
}

#[tokio::test]
async fn grey_zone_is_held_for_review_until_an_audited_decision() {
    let w = world().await;
    let john = w
        .netsuite_customer(
            "John",
            "Carter",
            "jc@corp.example",
            "",
            Some(("12 Birch Ln", "Denver", "CO", "80202")),
        )
        .await;

    // An initial at the same address: likely, not proven.
    let j = w
        .retail_customer(
            "J.",
            "Carter",
            "jcarter@home.example",
            "",
            "12 Birch Lane, Denver, CO 80202",
        )
        .await;
    let z = w
        .retail_customer(
            "J",
            "Carter",
            "zoe.carter@home.example",
            "",
            "12 Birch Ln, Denver, CO 80202",
        )
        .await;
    w.settle().await;
    assert_eq!(w.count(JobState::Dead).await, 2);
    assert_eq!(
        w.all_customer_ids().await,
        vec![john.clone()],
        "nothing created while held"
    );
    assert_eq!(w.linked(j).await, None);

    let held = heartsuite::customer_match::held(&w.store, 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    for (_, flow, msg) in &held {
        assert_eq!(flow, "retail_customer_to_netsuite");
        // Both candidates and the reason are in the message.
        assert!(
            msg.contains("held for review") && msg.contains("jcarter@home.example")
                || msg.contains("zoe.carter@home.example"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("\"id\":\"{john}\""))
                && msg.contains("jc@corp.example")
                && msg.contains("score"),
            "{msg}"
        );
    }
    let job_of = |email: &str| {
        held.iter()
            .find(|(_, _, m)| m.contains(email))
            .map(|(id, _, _)| *id)
            .unwrap()
    };
    let (job_j, job_z) = (
        job_of("jcarter@home.example"),
        job_of("zoe.carter@home.example"),
    );

    // Deciding on something that is not held is refused.
    assert!(
        heartsuite::customer_match::decide(
            &w.store,
            w.clock.as_ref(),
            999_999,
            json!({"decision": "create_new"}),
            "cli:test"
        )
        .await
        .is_err()
    );

    // The operator's command, as typed: `heartsuite review merge <job> <netsuite id>`.
    let data_dir = w.dir.display().to_string();
    let (job_arg, cmd) = (job_j.to_string(), ["list", "merge"]);
    for c in cmd {
        let mut args = vec!["heartsuite", "--data-dir", &data_dir, "review", c];
        if c == "merge" {
            args.extend([job_arg.as_str(), john.as_str()]);
        }
        let cli = <heartsuite::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        heartsuite::cli::run(cli).await.unwrap();
    }
    heartsuite::customer_match::decide(
        &w.store,
        w.clock.as_ref(),
        job_z,
        json!({"decision": "create_new"}),
        "cli:bob",
    )
    .await
    .unwrap();
    w.settle().await;
    assert_eq!(w.count(JobState::Dead).await, 0);
    assert_eq!(w.linked(j).await.as_deref(), Some(john.as_str()));
    let zoe = w
        .linked(z)
        .await
        .expect("created on the operator's decision");
    assert_ne!(zoe, john);
    assert_eq!(w.customer(&zoe).await["email"], "zoe.carter@home.example");
    assert_eq!(w.all_customer_ids().await.len(), 2);

    // Who decided what, on which grounds, is in the audit chain.
    let a = w
        .store
        .audit_for_subject(&format!("job:{job_j}"))
        .await
        .unwrap();
    let d = a
        .iter()
        .find(|e| e.entry.action == "review.merge")
        .expect("merge decision audited");
    assert!(d.entry.actor.starts_with("cli:"), "{}", d.entry.actor);
    assert_eq!(d.entry.remote_id.as_deref(), Some(john.as_str()));
    assert!(
        d.entry.details["held_because"]
            .as_str()
            .unwrap()
            .contains("held for review")
    );
    let a = w
        .store
        .audit_for_subject(&format!("job:{job_z}"))
        .await
        .unwrap();
    assert!(
        a.iter()
            .any(|e| e.entry.action == "review.create_new" && e.entry.actor == "cli:bob"),
        "{a:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn concurrent_customers_with_one_email_become_one_netsuite_customer() {
    let w = world().await;
    let input = |i: usize| CustomerInput {
        first_name: Some(["Lee", "Leigh", "Lee", "L", "Lee"][i].into()),
        last_name: Some("Park".into()),
        email: Some(
            [
                "lee.park@example.com",
                "Lee.Park@Example.com",
                " LEE.PARK@EXAMPLE.COM",
                "lee.park@example.com",
                "lee.park@example.com",
            ][i]
                .into(),
        ),
        phone: None,
        custom: None,
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(w.retail.create_customer(&input(i)).await.unwrap());
    }
    // All five webhooks at once, picked up by four workers.
    let mut posts = tokio::task::JoinSet::new();
    for id in &ids {
        let (http, url) = (
            w.http.clone(),
            format!("http://{}/hooks/retail/{TOKEN}", w.running.addr),
        );
        let body = bare_customer(&w.retail, *id).await;
        posts.spawn(async move { http.post(url).json(&body).send().await.map(|r| r.status()) });
    }
    while let Some(r) = posts.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 200);
    }
    w.settle().await;
    assert_eq!(
        w.count(JobState::Succeeded).await,
        5,
        "{:?}",
        w.store.jobs(Some(JobState::Dead), 10).await.unwrap()
    );
    let all = w.all_customer_ids().await;
    assert_eq!(all.len(), 1, "one NetSuite customer: {all:?}");
    for id in &ids {
        assert_eq!(w.linked(*id).await.as_ref(), Some(&all[0]), "retail {id}");
    }
    let c = w.customer(&all[0]).await;
    assert_eq!(c["email"], "lee.park@example.com");
    assert_eq!(c["lastName"], "Park");
    w.stop().await;
}

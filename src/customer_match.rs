//! Flow 7 (customers), the engine's side of duplicate detection: finding NetSuite customers
//! that may be the incoming person (crosswalk, then SuiteQL), merging into one (fill only what
//! NetSuite lacks, conflicts audited), creating under an e-mail claim so two Retail customers
//! with one address never become two NetSuite customers, and the operator's `review` commands
//! for duplicates held in the grey zone. The decision itself is the flows crate's pure
//! `dedupe::decide`.

use crate::connectors::Connectors;
use crate::wiring::FlowEngine;
use anyhow::{Result, bail};
use clap::Subcommand;
use heartsuite_core::{Clock, ErrorClass, Failure};
use heartsuite_engine::JobContext;
use heartsuite_flows::WriteIntent;
use heartsuite_flows::dedupe::{REVIEW_CODE, fill_empty};
use heartsuite_flows::normalize::{email_norm, phone_e164};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_store::{DynStore, NewAudit};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Crosswalk record types: normalised e-mail → NetSuite customer id, and e-mail → the
/// idempotency key of the Retail customer that claimed the right to create it.
const BY_EMAIL: &str = "customer_by_email";
const CLAIM: &str = "customer_email_claim";
/// Name-search candidates read back per incoming customer (each is one GET).
const MAX_NAME_CANDIDATES: u32 = 10;

fn netsuite(c: &Connectors) -> Result<&NetSuiteClient, Failure> {
    c.netsuite.as_deref().ok_or_else(|| {
        // Parked, not dropped: the operator must configure NetSuite.
        Failure::new(
            ErrorClass::Auth,
            "no [netsuite] section in the configuration",
        )
        .with_system("netsuite")
    })
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A SuiteQL string literal: `'` doubled, so no value can end the string.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Existing NetSuite customers that may be the person in `probe`: the crosswalk's e-mail entry,
/// exact e-mail or phone (searched on the last four digits, since a hand-keyed NetSuite phone is
/// rarely E.164, then compared normalised), and family-name prefixes (either name field, for
/// transposed names). Each is read back for its address.
pub async fn candidates(
    job: &JobContext,
    engine: &FlowEngine,
    system: &str,
    record_type: &str,
    probe: &Value,
) -> Result<Vec<Value>, Failure> {
    if (system, record_type) != ("netsuite", "customer") {
        return Err(Failure::data(format!(
            "a match step can search netsuite customers only, not {system} {record_type}"
        ))
        .with_field("record_type"));
    }
    let ns = netsuite(&engine.connectors)?;
    let email = str_of(probe.get("email"));
    let mut ids = BTreeSet::new();
    if let Some(e) = &email {
        if let Some(id) = job.known("netsuite", BY_EMAIL, e).await? {
            ids.insert(id);
        }
    }
    if let Some(parked) = engine.breakers.check("netsuite") {
        return Err(parked);
    }
    job.touch("netsuite");
    let mut exact = Vec::new();
    if let Some(e) = &email {
        exact.push(format!("LOWER(email) = {}", lit(e)));
    }
    let digits: String = str_of(probe.get("phone"))
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.len() >= 7 {
        exact.push(format!(
            "phone LIKE {}",
            lit(&format!("%{}", &digits[digits.len() - 4..]))
        ));
    }
    let prefix = |k: &str| -> Option<String> {
        let p: String = str_of(probe.get(k))?
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(3)
            .collect::<String>()
            .to_uppercase();
        (p.len() >= 2).then_some(p)
    };
    let mut by_name = Vec::new();
    if let Some(p) = prefix("last_name") {
        // "O%N%E%": punctuation inside a stored name ("O'Neil", "Mc Donald") still matches.
        let pattern: String = p.chars().flat_map(|c| [c, '%']).collect();
        by_name.push(format!("UPPER(lastname) LIKE {}", lit(&pattern)));
        by_name.push(format!("UPPER(firstname) LIKE {}", lit(&pattern)));
    }
    // Exact keys and names are asked apart, so a common surname cannot crowd out the record
    // with the same e-mail. Exact rows are checked here (normalised e-mail or E.164 phone equal)
    // before any is read back: four phone digits alone match many customers in a big account.
    let phone = str_of(probe.get("phone"));
    let same = |row: &serde_json::Map<String, Value>| {
        let norm_email = str_of(row.get("email")).and_then(|e| email_norm(&e).ok());
        let norm_phone = str_of(row.get("phone")).and_then(|p| phone_e164(&p, "US").ok());
        (email.is_some() && norm_email == email) || (phone.is_some() && norm_phone == phone)
    };
    for (conds, limit, exact) in [(exact, 200, true), (by_name, MAX_NAME_CANDIDATES, false)] {
        if conds.is_empty() {
            continue;
        }
        let q = format!(
            "SELECT id, email, phone FROM customer WHERE isinactive = 'F' AND ({}) ORDER BY id",
            conds.join(" OR ")
        );
        let page = ns
            .suiteql_page(&q, limit, 0)
            .await
            .map_err(|e| e.to_failure())?;
        let rows = page.items.iter().filter(|r| !exact || same(r));
        ids.extend(rows.filter_map(|r| str_of(r.get("id"))));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let rec: Value = ns
            .get("customer", &id, true)
            .await
            .map_err(|e| e.to_failure())?;
        out.push(candidate(&id, &rec));
    }
    Ok(out)
}

/// A NetSuite customer in the shape `dedupe::Person::from_json` reads.
fn candidate(id: &str, rec: &Value) -> Value {
    let addr = rec.pointer("/addressBook/items/0/addressBookAddress");
    let address: Vec<String> = ["addr1", "addr2", "city", "state", "zip"]
        .iter()
        .filter_map(|k| str_of(addr.and_then(|a| a.get(*k))))
        .collect();
    json!({
        "id": id,
        "email": rec.get("email"),
        "phone": rec.get("phone"),
        "first_name": rec.get("firstName"),
        "last_name": rec.get("lastName"),
        "name": rec.get("companyName"),
        "address": address.join(" "),
    })
}

/// Writes the customer flow needs beyond a plain upsert:
/// - `netsuite.merge` (`params.id`): the Retail customer's crosswalk entry points at the
///   existing customer, whose empty fields are filled; conflicting values are kept and audited.
/// - `netsuite.upsert` with `params.claim` (the normalised e-mail): created only by the first
///   Retail customer to claim the e-mail; a later one merges into it (or waits for it).
///
/// Returns None for any other write.
pub async fn write(
    job: &JobContext,
    engine: &FlowEngine,
    intent: &WriteIntent,
) -> Option<Result<String, Failure>> {
    let claim = intent
        .params
        .get("claim")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (intent.target.as_str(), claim) {
        ("netsuite.merge", _) => Some(merge_param(job, engine, intent).await),
        ("netsuite.upsert", Some(claim)) => Some(create_claimed(job, engine, intent, claim).await),
        _ => None,
    }
}

async fn merge_param(
    job: &JobContext,
    engine: &FlowEngine,
    intent: &WriteIntent,
) -> Result<String, Failure> {
    let id = str_of(intent.params.get("id")).ok_or_else(|| {
        Failure::data("write `netsuite.merge` needs params.id").with_field("params.id")
    })?;
    let how = str_of(intent.params.get("matched_on")).unwrap_or_else(|| "unknown".into());
    merge(job, engine, intent, &id, &how).await
}

async fn merge(
    job: &JobContext,
    engine: &FlowEngine,
    intent: &WriteIntent,
    id: &str,
    how: &str,
) -> Result<String, Failure> {
    let key = &intent.idempotency_key;
    if job
        .known("netsuite", &intent.record_type, key)
        .await?
        .is_none()
    {
        if let Some(parked) = engine.breakers.check("netsuite") {
            return Err(parked);
        }
    }
    let ns = netsuite(&engine.connectors)?;
    let remote = job
        .once("netsuite", &intent.record_type, key, "merge", || async {
            let existing: Value = ns.get(&intent.record_type, id, true).await.map_err(|e| e.to_failure())?;
            let (patch, conflicts) = fill_empty(&existing, &intent.body);
            if !patch.is_empty() {
                ns.update(&intent.record_type, id, &Value::Object(patch.clone()), &[]).await.map_err(|e| e.to_failure())?;
            }
            let filled: Vec<&String> = patch.keys().collect();
            // Before the effect is recorded: a crash in between re-runs the fill (a no-op now
            // that the fields are filled) and audits again, rather than never.
            job.audit(
                "customer.merge",
                &format!("netsuite:{}:{id}", intent.record_type),
                Some(id.to_string()),
                json!({"retail_key": key, "matched_on": how, "filled": filled, "conflicts_kept_netsuite_value": conflicts}),
            )
            .await?;
            Ok(id.to_string())
        })
        .await?;
    remember_email(job, intent, &remote).await?;
    Ok(remote)
}

async fn create_claimed(
    job: &JobContext,
    engine: &FlowEngine,
    intent: &WriteIntent,
    claim: &str,
) -> Result<String, Failure> {
    let key = &intent.idempotency_key;
    if let Some(id) = job.known("netsuite", &intent.record_type, key).await? {
        return Ok(id);
    }
    // The store keeps the first claim for an e-mail (insert-or-keep), so of two Retail customers
    // racing with one address exactly one creates; the other sees the winner's key.
    let owner = job
        .once("netsuite", CLAIM, claim, "claim", || async {
            Ok(key.clone())
        })
        .await?;
    if owner != *key {
        return match job.known("netsuite", &intent.record_type, &owner).await? {
            Some(id) => merge(job, engine, intent, &id, "email (claimed by another Retail customer)").await,
            None => Err(Failure::new(
                ErrorClass::Dependency,
                format!("Retail customer `{owner}` with the same e-mail is being created in NetSuite; this one merges into it once it exists"),
            )
            .with_system("flow")
            .with_field("email")),
        };
    }
    if let Some(parked) = engine.breakers.check("netsuite") {
        return Err(parked);
    }
    let connectors = engine.connectors.clone();
    let id = job
        .once(
            "netsuite",
            &intent.record_type,
            key,
            "upsert",
            || async move { connectors.execute(intent).await },
        )
        .await?;
    remember_email(job, intent, &id).await?;
    Ok(id)
}

/// The crosswalk's e-mail entry, which the next customer's candidate search reads first.
async fn remember_email(job: &JobContext, intent: &WriteIntent, id: &str) -> Result<(), Failure> {
    let email = intent
        .body
        .get("email")
        .and_then(Value::as_str)
        .and_then(|e| email_norm(e).ok());
    if let Some(e) = email {
        job.once("netsuite", BY_EMAIL, &e, "link", || async {
            Ok(id.to_string())
        })
        .await?;
    }
    Ok(())
}

/// `heartsuite review`: duplicates held for an operator (dead-lettered with code
/// REVIEW_DUPLICATE) and the two decisions. A decision re-queues the job with `_review` in its
/// payload, which the flow's dedupe step obeys, and appends `review.merge` or
/// `review.create_new` to the audit chain with who decided and the message they decided on.
#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Duplicates waiting for a decision, with both candidates.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Merge the incoming customer into the named NetSuite customer.
    Merge { job: i64, netsuite_id: String },
    /// Create a new NetSuite customer: they are different people.
    CreateNew { job: i64 },
}

pub async fn review(cmd: ReviewCmd, store: &DynStore, clock: &dyn Clock) -> Result<()> {
    let who = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    match cmd {
        ReviewCmd::List { limit } => {
            let held = held(store, limit).await?;
            if held.is_empty() {
                println!("no duplicates are waiting for review");
            }
            for (id, flow, msg) in held {
                println!("{id:>8}  {flow}  {msg}");
            }
            Ok(())
        }
        ReviewCmd::Merge { job, netsuite_id } => {
            if netsuite_id.trim().is_empty() {
                bail!("give the NetSuite internal id to merge into");
            }
            decide(
                store,
                clock,
                job,
                json!({"decision": "merge", "netsuite_id": netsuite_id.trim()}),
                &who,
            )
            .await?;
            println!(
                "job {job} is queued again to merge into NetSuite customer {}",
                netsuite_id.trim()
            );
            Ok(())
        }
        ReviewCmd::CreateNew { job } => {
            decide(store, clock, job, json!({"decision": "create_new"}), &who).await?;
            println!("job {job} is queued again to create a new NetSuite customer");
            Ok(())
        }
    }
}

/// Dead-lettered jobs held as possible duplicates: (job id, flow, message).
pub async fn held(store: &DynStore, limit: u32) -> Result<Vec<(i64, String, String)>> {
    let jobs =
        heartsuite_engine::admin::dlq_list(store, limit.saturating_mul(4).max(limit)).await?;
    Ok(jobs
        .into_iter()
        .filter_map(|j| {
            let e = j.last_error.as_ref()?;
            (e.code.as_deref() == Some(REVIEW_CODE))
                .then(|| (j.id, j.flow.clone(), e.message.clone()))
        })
        .take(limit as usize)
        .collect())
}

/// Records the decision, then re-queues the job with it (the replay itself is audited too).
pub async fn decide(
    store: &DynStore,
    clock: &dyn Clock,
    job_id: i64,
    decision: Value,
    who: &str,
) -> Result<()> {
    let (job, event) = heartsuite_engine::admin::job_with_event(store, job_id).await?;
    let Some(err) = job
        .last_error
        .as_ref()
        .filter(|e| e.code.as_deref() == Some(REVIEW_CODE))
    else {
        bail!("job {job_id} is not a duplicate held for review (see `heartsuite review list`)");
    };
    let mut payload = job
        .payload_override
        .clone()
        .unwrap_or_else(|| event.payload.clone());
    let Value::Object(m) = &mut payload else {
        bail!("job {job_id}'s payload is not a JSON object");
    };
    m.insert("_review".into(), decision.clone());
    let action = match decision.get("decision").and_then(Value::as_str) {
        Some("merge") => "review.merge",
        _ => "review.create_new",
    };
    heartsuite_engine::admin::dlq_replay(store, clock, job_id, Some(payload), who).await?;
    store
        .audit_append(&NewAudit {
            at: clock.now_micros(),
            actor: who.to_string(),
            action: action.into(),
            subject: format!("job:{job_id}"),
            event_id: Some(job.event_id),
            job_id: Some(job_id),
            remote_id: decision
                .get("netsuite_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            details: json!({"flow": job.flow, "decision": decision, "held_because": err.message}),
        })
        .await?;
    Ok(())
}

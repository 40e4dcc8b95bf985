//! heartsuite-flows: flows and mappings as data.
//!
//! A flow is a TOML file (see `docs/flows.md`): a trigger, ordered steps drawn from a fixed set
//! (`map`, `validate`, `lookup`, `dedupe`, `branch`, `aggregate`, `write`), value tables, rates,
//! per-class retry overrides and examples. Field values are CEL expressions compiled once at
//! load (the `cel` crate is wrapped in [`expr`] alone); money stays exact (integer minor units
//! and decimal strings — a double in an expression is a load error).
//!
//! The engine calls [`FlowSet::flows_for`] to pick flows for an event and [`Flow::run`] with
//! its own [`FlowContext`] (crosswalk lookups, idempotent writes). [`DryRunContext`] records
//! writes instead, for examples ([`FlowSet::run_examples`]) and `heartsuite map test`.

pub mod dedupe;
pub mod error;
pub mod expr;
pub mod flow;
pub mod normalize;
pub mod run;
pub mod schedule;
pub mod set;
pub mod validate;

pub use error::{FlowError, LoadError};
pub use flow::{Example, Flow, RetryOverrides, RetryPolicy, Severity, Trigger};
pub use run::{
    DryRunContext, FlowContext, MappedRecord, RunReport, WriteIntent, WriteRecord, WriteResult,
};
pub use set::{BUILTIN_FLOWS, ExampleReport, ExampleResult, FlowSet, write_builtin_flows};
pub use validate::{Finding, FindingKind};

use std::time::{Duration, Instant};

/// A realistic GP-API captured transaction, as the payment flow receives it.
pub fn sample_captured_payment() -> serde_json::Value {
    serde_json::json!({
        "id": "TRN_Bq4rTxK3Yw9pLmN2",
        "time_created": "2026-03-14T22:41:07.512Z",
        "type": "SALE",
        "status": "CAPTURED",
        "channel": "CNP",
        "amount": "12999",
        "currency": "USD",
        "reference": "INV-10442",
        "merchant_id": "MER_7e3f",
        "account_name": "transaction_processing",
        "payment_method": {
            "result": "00",
            "message": "[ test system ] AUTHORISED",
            "entry_mode": "ECOM",
            "card": {"brand": "VISA", "masked_number_last4": "XXXXXXXXXXXX1111", "authcode": "12345A", "brand_reference": "MCC5D5V3G0511"}
        },
        "batch_id": "BAT_845591",
        "customer": {"id": "CUS_81922", "email": "Dana.Whitfield@Example.com"},
        "order": {"invoice_internal_id": "8812"}
    })
}

/// Cost of one run of the built-in GP-API payment → customerPayment flow (crosswalk lookup, map,
/// validate, write recorded by the dry-run context), per record. `heartsuite bench mapping`
/// calls this; the target is under 20 µs per record in a release build. The machine is shared
/// (two cores, parallel builds), so this reports the best of 20 batch means rather than one
/// mean that a neighbour's compile would inflate.
pub fn bench_mapping(n: u32) -> Duration {
    let Ok(set) = FlowSet::builtin() else {
        return Duration::MAX;
    };
    let Ok(flow) = set.get("gpapi_payment_to_customer_payment") else {
        return Duration::MAX;
    };
    let input = sample_captured_payment();
    let base = DryRunContext::new().with_lookup("netsuite", "customer", "hs-cust-CUS_81922", "4417");
    // Warm up caches and lazily initialised state before timing.
    for _ in 0..n.min(100) {
        let mut ctx = base.clone();
        let _ = flow.dry_run(&input, &mut ctx);
    }
    let batch = (n / 20).max(1);
    let mut best = Duration::MAX;
    for _ in 0..20 {
        let start = Instant::now();
        for _ in 0..batch {
            let mut ctx = base.clone();
            let r = flow.dry_run(&input, &mut ctx);
            std::hint::black_box(r);
        }
        best = best.min(start.elapsed() / batch);
    }
    best
}

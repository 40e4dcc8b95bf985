//! Metric names in one place (Prometheus text via the `metrics` facade).

pub const EVENTS_RECEIVED: &str = "heartsuite_events_received_total";
pub const JOBS_FINISHED: &str = "heartsuite_jobs_finished_total";
pub const JOB_DURATION: &str = "heartsuite_job_duration_seconds";
pub const QUEUE_DEPTH: &str = "heartsuite_queue_depth";
pub const DLQ_SIZE: &str = "heartsuite_dlq_size";
pub const CIRCUIT_STATE: &str = "heartsuite_circuit_state";
pub const PANS_MASKED: &str = "heartsuite_card_numbers_masked_total";
pub const ALERTS_SENT: &str = "heartsuite_alerts_total";

pub const JOB_DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

pub fn circuit_value(state: &crate::breaker::State) -> f64 {
    match state {
        crate::breaker::State::Closed => 0.0,
        crate::breaker::State::HalfOpen { .. } => 1.0,
        crate::breaker::State::Open { .. } => 2.0,
    }
}

//! Chooses, from the configuration, which flows an event triggers and what runs a job.

use crate::config::{Config, SecretResolver};
use crate::server::FlowRouter;
use anyhow::Result;
use async_trait::async_trait;
use heartsuite_core::{Clock, Failure};
use heartsuite_engine::{JobContext, JobHandler};
use heartsuite_store::LeasedJob;
use serde_json::Value;
use std::sync::Arc;

/// Until flow files are loaded (issue #3), no event triggers a flow: events are stored in the
/// inbox and nothing runs.
struct NoFlows;

impl FlowRouter for NoFlows {
    fn flows_for(&self, _kind: &str, _payload: &Value) -> Vec<String> {
        Vec::new()
    }
}

#[async_trait]
impl JobHandler for NoFlows {
    async fn run(&self, job: &LeasedJob, _ctx: &JobContext) -> Result<(), Failure> {
        Err(Failure::bug(format!("no flow named `{}` is loaded", job.job.flow)))
    }
}

pub fn build(_cfg: &Config, _secrets: &SecretResolver, _clock: Arc<dyn Clock>) -> Result<(Arc<dyn FlowRouter>, Arc<dyn JobHandler>)> {
    let n = Arc::new(NoFlows);
    Ok((n.clone(), n))
}

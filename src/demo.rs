//! `heartsuite demo`.
use crate::cli::Global;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub async fn run(_args: DemoArgs, _g: &Global) -> Result<()> {
    anyhow::bail!("the demo is being wired")
}

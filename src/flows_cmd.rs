//! `heartsuite flows check|test`, `heartsuite map test`, `heartsuite init`: the consultant's
//! loop — edit a flow file, check it, run its examples, dry-run a payload — without Rust and
//! without writing anywhere.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use heartsuite_flows::{DryRunContext, FlowSet, write_builtin_flows};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum FlowsCmd {
    /// Load and check every flow file; print each problem with file, line, step and field.
    Check {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the examples inside every flow file.
    Test {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn dir_or(cfg: &Config, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| cfg.flows.dir.clone())
}

fn load(dir: &Path) -> Result<FlowSet> {
    let loaded = if dir.is_dir() {
        FlowSet::load_dir(dir)
    } else {
        eprintln!("{} is not a directory: using the built-in flows", dir.display());
        FlowSet::builtin()
    };
    loaded.map_err(|errs| {
        for e in &errs {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{} problem(s) in the flow files", errs.len())
    })
}

pub fn run(cmd: FlowsCmd, cfg: &Config) -> Result<()> {
    match cmd {
        FlowsCmd::Check { dir } => {
            let dir = dir_or(cfg, dir);
            let set = load(&dir)?;
            for f in set.flows() {
                println!("ok   {} ({})", f.name(), f.file().display());
            }
            println!("{} flow(s) checked, no problems", set.flows().len());
            Ok(())
        }
        FlowsCmd::Test { dir } => {
            let dir = dir_or(cfg, dir);
            let report = load(&dir)?.run_examples();
            println!("{report}");
            if report.passed() { Ok(()) } else { bail!("{} example(s) failed", report.failed()) }
        }
    }
}

/// `heartsuite map test --flow F --input x.json`: the output and every finding, nothing written.
pub fn map_test(cfg: &Config, flow: &str, input: &Path, dir: Option<PathBuf>) -> Result<()> {
    let set = load(&dir_or(cfg, dir))?;
    let flow = set.get(flow).with_context(|| {
        let names: Vec<_> = set.flows().iter().map(|f| f.name().to_string()).collect();
        format!("no flow named `{flow}`; loaded: {}", names.join(", "))
    })?;
    let text = std::fs::read_to_string(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut payload: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", input.display()))?;
    heartsuite_core::pan::mask_json(&mut payload);
    let mut ctx = DryRunContext::new();
    let report = flow.dry_run(&payload, &mut ctx);
    println!("{}", serde_json::to_string_pretty(&report)?);
    for (system, rt, key, found) in &ctx.lookups_asked {
        eprintln!("lookup {system}/{rt} {key} -> {}", found.as_deref().unwrap_or("(not found: a live run would ask the remote)"));
    }
    match &report.failure {
        Some(f) => bail!("the flow would fail: {f}"),
        None => Ok(()),
    }
}

pub fn init(dir: &Path) -> Result<()> {
    let written = write_builtin_flows(dir)?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    println!("{} flow file(s) written to {}; set flows.dir to use them", written.len(), dir.display());
    Ok(())
}

//! `drydock kernel-check FILE|DEB [--level docker|kubernetes|podman] [--json]`: the container
//! readiness check of kernel-packager on its own. Exit 0 when the level is met, 1 when not (the
//! table's last line and `missing` in JSON name every missing required option), 2 for bad input.

use std::process::ExitCode;

use anyhow::Result;
use kernel_packager::readiness::{self, Level};

use crate::cli::{KernelCheckArgs, LevelArg};
use crate::{Ctx, UsageError};

pub fn level(l: LevelArg) -> Level {
    match l {
        LevelArg::Docker => Level::Docker,
        LevelArg::Kubernetes => Level::Kubernetes,
        LevelArg::Podman => Level::Podman,
    }
}

pub fn run(_ctx: &Ctx, args: KernelCheckArgs) -> Result<ExitCode> {
    let loaded = kernel_packager::input::load(&args.file).map_err(|e| {
        if e.is_bad_input() {
            anyhow::Error::new(UsageError(e.to_string()))
        } else {
            anyhow::Error::new(e)
        }
    })?;
    let report = readiness::check(&loaded.config, level(args.level));
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["input"] = serde_json::Value::String(loaded.origin.clone());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("kernel config: {}\n", loaded.origin);
        print!("{}", report.table());
    }
    if report.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} does not meet the {} level; missing: {}",
            loaded.origin,
            report.level,
            report.missing.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

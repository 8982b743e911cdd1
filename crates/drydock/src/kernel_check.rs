//! `drydock kernel-check`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::KernelCheckArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: KernelCheckArgs) -> Result<ExitCode> {
    crate::not_built("kernel-check", "the kernel-packager issue")
}

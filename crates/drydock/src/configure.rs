//! `drydock configure`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::ConfigureArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: ConfigureArgs) -> Result<ExitCode> {
    crate::not_built("configure", "the configure/flash issue")
}

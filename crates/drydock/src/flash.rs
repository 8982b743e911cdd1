//! `drydock flash`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::FlashArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: FlashArgs) -> Result<ExitCode> {
    crate::not_built("flash", "the configure/flash issue")
}

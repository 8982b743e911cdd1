//! `drydock build`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::BuildArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: BuildArgs) -> Result<ExitCode> {
    crate::not_built("build", "the image-assembler issue")
}

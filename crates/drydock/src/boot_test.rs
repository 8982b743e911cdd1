//! `drydock boot-test`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::BootTestArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: BootTestArgs) -> Result<ExitCode> {
    crate::not_built("boot-test", "the drydock boot-test issue")
}

//! `drydock test`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::TestArgs;
use crate::Ctx;

pub fn run(_ctx: &Ctx, _args: TestArgs) -> Result<ExitCode> {
    crate::not_built("test", "the drydock test issue")
}

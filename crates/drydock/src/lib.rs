//! drydock, the orchestrator: loads board profiles, turns them into builder specs, runs the pipeline
//! through the artifact cache, and provides the image tools (test, boot-test, configure, flash).

pub mod artifacts;
pub mod assemble;
pub mod blockdev;
pub mod boot_test;
pub mod build;
pub mod checks;
pub mod cli;
pub mod configure;
pub mod doctor;
pub mod flash;
pub mod image_test;
pub mod imagefile;
pub mod kernel_check;
pub mod logging;
pub mod pipeline;
pub mod profile;
pub mod progress;
pub mod qemu;
pub mod seed;
pub mod size;
pub mod ssh;
pub mod test_container;

mod boards_cmd;
mod cache_cmd;
pub(crate) use cache_cmd::human as cache_cmd_human;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use artifact::Store;

use cli::{Cli, Command};

/// Marks an error caused by bad input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error: 2 for bad input (profiles, arguments), 1 for everything else.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<profile::ProfileError>() || cause.is::<UsageError>() {
            return 2;
        }
    }
    1
}

/// What every command gets: the store and global options.
pub struct Ctx {
    pub store: Store,
    pub verbose: u8,
}

impl Ctx {
    pub fn new(cache_dir: Option<PathBuf>, verbose: u8) -> Result<Ctx> {
        let root = cache_dir.unwrap_or_else(Store::default_root);
        let store = Store::open(&root)?;
        Ok(Ctx { store, verbose })
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Boards(a) => boards_cmd::run(a),
        Command::Doctor(a) => doctor::run(&a, g.cache_dir.clone()),
        Command::Cache(a) => cache_cmd::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
        Command::BuildArtifact(a) => {
            let ctx = Ctx::new(g.cache_dir, g.verbose)?;
            let profile = profile::load(&a.board)?;
            artifacts::build_one(&ctx, &profile, a.kind, &a.out.out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(a) => build::run(&Ctx::new(g.cache_dir, g.verbose)?, a, g.quiet),
        Command::Test(a) => image_test::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
        Command::BootTest(a) => boot_test::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
        Command::Configure(a) => configure::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
        Command::Flash(a) => flash::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
        Command::KernelCheck(a) => kernel_check::run(&Ctx::new(g.cache_dir, g.verbose)?, a),
    }
}

//! `kernel-packager`: the kernel builder on its own. Parses arguments, sets up logging, calls the
//! library, prints the error chain and exits non-zero (2 for bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernel_packager::readiness::{self, Level};

/// Board kernels as .debs (Debian's packages or a cross-compiled tree), checked for containers.
#[derive(Debug, Parser)]
#[command(name = "kernel-packager", version, max_term_width = 100)]
struct Cli {
    /// More log output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check a kernel .config (plain, .gz, .xz) or a kernel .deb for what containers need.
    ///
    /// Exit 0 when the level is met, 1 when not (naming each missing option), 2 for bad input.
    Check {
        /// Kernel config or kernel image .deb (its /boot/config-* is read).
        file: PathBuf,
        /// docker, kubernetes or podman.
        #[arg(long, default_value = "docker")]
        level: Level,
        /// JSON report on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let code = if e.is_bad_input() { 2 } else { 1 };
            eprintln!("error: {:#}", anyhow::Error::new(e));
            ExitCode::from(code)
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode, kernel_packager::Error> {
    match cmd {
        Cmd::Check { file, level, json } => {
            let l = kernel_packager::input::load(&file)?;
            let r = readiness::check(&l.config, level);
            if json {
                print!("{}", r.json());
            } else {
                println!("kernel config: {}\n", l.origin);
                print!("{}", r.table());
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

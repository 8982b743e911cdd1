//! `drydock`: the command users run. Parses arguments, sets up logging, dispatches to the library,
//! prints the error chain and exits non-zero (2 for bad input such as a bad profile, 1 otherwise).

use std::process::ExitCode;

use clap::Parser;

use drydock::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    drydock::logging::init(cli.global.verbose, cli.global.quiet);
    match drydock::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(drydock::exit_code(&e))
        }
    }
}

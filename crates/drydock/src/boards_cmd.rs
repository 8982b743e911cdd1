//! `drydock boards`: list and show board profiles.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::{BoardsArgs, BoardsCommand};
use crate::profile;

pub fn run(a: BoardsArgs) -> Result<ExitCode> {
    match a.command.unwrap_or(BoardsCommand::List) {
        BoardsCommand::List => {
            let names = profile::known_boards();
            if names.is_empty() {
                anyhow::bail!(
                    "no board profiles found in {}",
                    profile::boards_dir().display()
                );
            }
            let width = names.iter().map(String::len).max().unwrap_or(0);
            for n in names {
                let p = profile::load(&n)?;
                let default = if n == "rpi-arm64" { " (default)" } else { "" };
                println!("{n:width$}  {}{default}", p.description);
            }
        }
        BoardsCommand::Show { name, json } => {
            let p = profile::load(&name)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&p).context("rendering JSON")?
                );
            } else {
                print!("{}", serde_yaml::to_string(&p).context("rendering YAML")?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

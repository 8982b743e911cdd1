//! `raw-image`: build and inspect partitioned disk images as plain files.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "raw-image",
    version,
    about = "Partitioned disk images as plain files: no loop devices, no mounts, no root"
)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print an image's partition table (MBR or GPT): disk id, PARTUUIDs, offsets, types.
    Inspect {
        /// Image file.
        image: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Inspect { image, json } => {
            let t = raw_image::inspect::read_table(&image)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
                    "{:?} disk id {} sector {}",
                    t.kind, t.disk_id, t.sector_size
                );
                for p in &t.partitions {
                    println!(
                        "{:>3} start {:>12} size {:>12} {:?} partuuid {} {}{}",
                        p.index,
                        p.start_bytes,
                        p.size_bytes,
                        p.part_type,
                        p.partuuid,
                        p.name,
                        if p.bootable { " bootable" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raw-image: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

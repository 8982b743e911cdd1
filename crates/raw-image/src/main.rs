//! `raw-image`: build and inspect partitioned disk images as plain files.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use artifact::Builder;
use clap::{Args, Parser, Subcommand};
use raw_image::layout::Layout;

#[derive(Debug, Parser)]
#[command(
    name = "raw-image",
    version,
    about = "Partitioned disk images as plain files: no loop devices, no mounts, no root",
    long_about = "Partitioned disk images as plain files: no loop devices, no mounts, no root.\n\n\
        A layout file (YAML or JSON) names the table (mbr, gpt, hybrid-mbr), the alignment, an \
        optional disk size, the partitions (name, label, fs fat32|ext4|none, size: 256MiB | rest | \
        fit+HEADROOM, bootable, gpt-type, mbr-type) and blobs at byte offsets. The partition table \
        is written by this program; FAT by mkfs.vfat + mtools, ext4 by mke2fs -d, each in place at \
        its offset. Identifiers derive from a seed and timestamps from SOURCE_DATE_EPOCH: same \
        inputs, same bytes."
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
    /// Build the blank raw-image artifact of a layout (empty file systems) into the artifact
    /// cache and copy `<name>-raw.img.zst`, its `.sha256` and `manifest.json` to --out.
    Build(BuildArgs),
    /// Make an image from a layout, filling partitions from folder trees.
    Fill(FillArgs),
    /// Check a layout and print where every partition and blob goes (no trees: fit sizes are
    /// their headroom).
    Plan {
        /// Layout file (YAML or JSON).
        #[arg(long)]
        layout: PathBuf,
    },
    /// Print an image's partition table (MBR or GPT): disk id, PARTUUIDs, offsets, types.
    Inspect {
        /// Image file.
        image: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Layout file (YAML or JSON).
    #[arg(long)]
    layout: PathBuf,
    /// Folder to copy the artifact's files into.
    #[arg(long)]
    out: PathBuf,
    /// Artifact cache (default: $DRYDOCK_CACHE_DIR, $XDG_CACHE_HOME/drydock, ~/.cache/drydock).
    #[arg(long, env = "DRYDOCK_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FillArgs {
    /// Layout file (YAML or JSON).
    #[arg(long)]
    layout: PathBuf,
    /// NAME=DIR: fill partition NAME from folder DIR (repeatable). Partitions without a tree get
    /// an empty file system.
    #[arg(long = "tree", value_name = "NAME=DIR")]
    trees: Vec<String>,
    /// NAME=FILE: write blob NAME from FILE (repeatable).
    #[arg(long = "blob", value_name = "NAME=FILE")]
    blobs: Vec<String>,
    /// Seed for disk id, partition and file system UUIDs, volume ids and hash seeds.
    #[arg(long, default_value = "raw-image")]
    seed: String,
    /// Image file to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Keep made ext4 partitions in DIR, and copy a kept one into place when the same partition
    /// is asked for again (with --tree-key).
    #[arg(long, value_name = "DIR", requires = "tree_keys")]
    keep: Option<PathBuf>,
    /// NAME=KEY: your name for the content of partition NAME's tree (same key, same tree: you
    /// vouch for it). Only with --keep.
    #[arg(long = "tree-key", value_name = "NAME=KEY", requires = "keep")]
    tree_keys: Vec<String>,
    /// Print the result (PARTUUIDs, file system UUIDs) as JSON.
    #[arg(long)]
    json: bool,
}

fn load_layout(path: &PathBuf) -> Result<Layout> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading layout {}", path.display()))?;
    let l: Layout = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("layout {}", path.display()))?
    } else {
        serde_yaml::from_str(&text).with_context(|| format!("layout {}", path.display()))?
    };
    Ok(l)
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, PathBuf>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(n, p)| (n.to_string(), PathBuf::from(p)))
                .with_context(|| format!("--{what} {s:?}: expected NAME=PATH"))
        })
        .collect()
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Build(a) => {
            let layout = load_layout(&a.layout)?;
            layout.plan(&|_| None, &|_| None)?;
            let epoch = raw_image::blank::source_date_epoch()?;
            let store =
                artifact::Store::open(a.cache_dir.unwrap_or_else(artifact::Store::default_root))?;
            let b = raw_image::blank::BlankBuilder::new(layout, epoch);
            let key = b.cache_key()?;
            let (entry, cached) = store.get_or_build(&key, |staging| b.build(&key, staging))?;
            if !cached {
                b.validate(&entry)?;
            }
            let mut files: Vec<String> = entry
                .manifest
                .files
                .iter()
                .map(|f| f.path.clone())
                .collect();
            files.push("manifest.json".into());
            let written = artifact::fsutil::export_files(&entry.dir, &files, &a.out)?;
            println!(
                "{} raw-image {} ({})",
                if cached { "cached" } else { "built " },
                entry.manifest.name,
                &entry.manifest.inputs_digest[..12]
            );
            for w in written {
                println!("  wrote {}", w.display());
            }
        }
        Cmd::Fill(a) => {
            let layout = load_layout(&a.layout)?;
            let inputs = raw_image::Inputs {
                trees: pairs(&a.trees, "tree")?,
                blobs: pairs(&a.blobs, "blob")?,
                reuse: a
                    .keep
                    .map(|dir| -> Result<raw_image::keep::Reuse> {
                        let trees = pairs(&a.tree_keys, "tree-key")?
                            .into_iter()
                            .map(|(n, k)| (n, k.to_string_lossy().into_owned()))
                            .collect();
                        Ok(raw_image::keep::Reuse { dir, trees })
                    })
                    .transpose()?,
                defer_sync: false,
            };
            let epoch = raw_image::blank::source_date_epoch()?;
            let filled = raw_image::fill_with(&layout, &inputs, &a.seed, epoch, &a.out)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&filled)?);
            } else {
                println!("{} ({} bytes)", a.out.display(), filled.disk_size);
                for p in &filled.partitions {
                    println!(
                        "{:>3} {:<10} start {:>12} size {:>12} partuuid {} fs {:?} uuid {}",
                        p.index,
                        p.name,
                        p.start_bytes,
                        p.size_bytes,
                        p.partuuid,
                        p.fs,
                        p.fs_uuid.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        Cmd::Plan { layout } => {
            let l = load_layout(&layout)?;
            let p = l.plan(&|_| None, &|_| None)?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            let bad_input = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<raw_image::Error>(),
                    Some(raw_image::Error::Layout { .. })
                ) || c.is::<serde_yaml::Error>()
                    || c.is::<serde_json::Error>()
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
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

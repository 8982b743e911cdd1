//! `image-assembler`: the two assembly stages from artifact folders (each with its manifest.json,
//! verified before use), without the drydock orchestrator or its cache.
//!
//! ```text
//! image-assembler system --spec system.json --rootfs DIR --kernel DIR --deb-repo DIR --out DIR
//! image-assembler image  --spec image.json  --system DIR [--preload FILE.tar]... --out DIR
//! ```
//! The spec files are the JSON forms of `SystemSpec` and `ImageSpec` (`drydock build -vv` logs the
//! ones it uses). `--out` gets the stage's files and `report.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use image_assembler::image::{ImageInputs, ImageSpec};
use image_assembler::inputs::Input;
use image_assembler::system::{SystemInputs, SystemSpec};

/// Assemble drydock images from artifact folders.
#[derive(Debug, Parser)]
#[command(name = "image-assembler", version, max_term_width = 100)]
struct Cli {
    /// More log output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install kernel, engine and packages into the rootfs (foreign-arch chroot; needs root).
    System {
        /// SystemSpec as JSON.
        #[arg(long)]
        spec: PathBuf,
        /// The rootfs artifact folder (a *.tar.zst).
        #[arg(long)]
        rootfs: PathBuf,
        /// The kernel artifact folder (its *.deb files are installed).
        #[arg(long)]
        kernel: PathBuf,
        /// The deb-repo artifact folder (a signed APT repository with key.asc).
        #[arg(long)]
        deb_repo: PathBuf,
        /// Keep downloaded packages here between runs.
        #[arg(long)]
        apt_cache: Option<PathBuf>,
        /// Output folder (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Apply per-image settings, fill the partitions and write the bundle.
    Image {
        /// ImageSpec as JSON.
        #[arg(long)]
        spec: PathBuf,
        /// The system artifact folder (from `image-assembler system` or the drydock cache).
        #[arg(long)]
        system: PathBuf,
        /// Container archives to preload, in the order of the spec's `preload` list.
        #[arg(long, value_name = "FILE.tar")]
        preload: Vec<PathBuf>,
        /// Keep the unpacked system tree in this folder for the next image of the same system.
        #[arg(long, value_name = "DIR")]
        tree_cache: Option<PathBuf>,
        /// Output folder (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let t = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&t).with_context(|| format!("{}: not a valid spec", p.display()))
}

fn out_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    if std::fs::read_dir(p)
        .with_context(|| format!("listing {}", p.display()))?
        .next()
        .is_some()
    {
        anyhow::bail!("{} is not empty", p.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::System {
            spec,
            rootfs,
            kernel,
            deb_repo,
            apt_cache,
            out,
        } => {
            let spec: SystemSpec = read_json(&spec)?;
            let rootfs = Input::open("rootfs", &rootfs)?;
            let kernel = Input::open("kernel", &kernel)?;
            let repo = Input::open("deb-repo", &deb_repo)?;
            for a in [&rootfs, &kernel, &repo] {
                a.verify()?;
            }
            let repo = image_assembler::inputs::Repo::find(&repo)?;
            if repo.suite != spec.repo_suite || !repo.components.contains(&spec.repo_component) {
                anyhow::bail!(
                    "the deb-repo artifact has suite {} components {:?}; the spec wants {} {}",
                    repo.suite,
                    repo.components,
                    spec.repo_suite,
                    spec.repo_component
                );
            }
            let inputs = SystemInputs {
                rootfs_tarball: rootfs.one_file(".tar.zst")?,
                kernel_dir: kernel.dir.clone(),
                kernel_debs: kernel.files(".deb"),
                repo_dir: repo.root,
                repo_key: repo.key,
                apt_cache,
            };
            out_dir(&out)?;
            let work = tempfile::Builder::new()
                .prefix(".image-assembler-")
                .tempdir_in(&out)
                .context("creating a work folder")?;
            let report = image_assembler::system::build(&spec, &inputs, work.path(), &out, &|s| {
                tracing::info!("{s}")
            })?;
            work.close().context("removing the work folder")?;
            std::fs::write(
                out.join("report.json"),
                serde_json::to_string_pretty(&report)?,
            )
            .context("writing report.json")?;
            println!("{}", out.join(&report.tarball).display());
        }
        Cmd::Image {
            spec,
            system,
            preload,
            tree_cache,
            out,
        } => {
            let spec: ImageSpec = read_json(&spec)?;
            let system = Input::open("system", &system)?;
            system.verify()?;
            let inputs = ImageInputs {
                system_tarball: system.one_file(".tar.zst")?,
                preload_files: preload,
                tree_cache: tree_cache.map(|d| (d, system.digest().to_string())),
            };
            out_dir(&out)?;
            let work = tempfile::Builder::new()
                .prefix(".image-assembler-")
                .tempdir_in(&out)
                .context("creating a work folder")?;
            let report = image_assembler::image::build(&spec, &inputs, work.path(), &out, &|s| {
                tracing::info!("{s}")
            })?;
            work.close().context("removing the work folder")?;
            std::fs::write(
                out.join("report.json"),
                serde_json::to_string_pretty(&report)?,
            )
            .context("writing report.json")?;
            println!("{}", out.join(&report.image).display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info,tool=off",
        1 => "debug,tool=off",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

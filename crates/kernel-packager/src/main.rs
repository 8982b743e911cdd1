//! `kernel-packager`: the kernel builder on its own. Parses arguments, sets up logging, calls the
//! library, prints the error chain and exits non-zero (2 for bad input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kernel_packager::mirror::{Mirror, DEBIAN_KEYRING};
use kernel_packager::readiness::{self, Level};
use kernel_packager::spec::{shipped_fragment, Fragment, KernelSpec, Mode, SourceSpec, Tree};

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
    /// Take a kernel from a Debian mirror (packages checked through the signed InRelease chain).
    ///
    /// The artifact (the .debs, report.json, report.txt, manifest.json) is built in the cache and
    /// copied to --out. Fails naming every missing option when --level is not met.
    Upstream {
        /// Package to take, `name` or `name=version`; metapackages bring their kernel. Repeatable.
        #[arg(long = "package", required = true, value_name = "PKG")]
        packages: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Cross-compile a kernel tree with a base config and fragments, packaged by bindeb-pkg.
    Source {
        /// `debian` (Debian's linux-source from the mirror), `debian:PKG[=VERSION]`, or a path.
        #[arg(long, default_value = "debian")]
        tree: String,
        /// Base config target (defconfig, tinyconfig, allnoconfig, ...).
        #[arg(long, default_value = "defconfig")]
        defconfig: String,
        /// Fragment: a shipped name (containers, modules) or a file; repeatable, in order.
        #[arg(long = "fragment", value_name = "NAME|FILE")]
        fragments: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// Options of both build modes.
#[derive(Debug, Args)]
struct Common {
    /// Name used in the artifact, package versions and LOCALVERSION.
    #[arg(long, default_value = "custom")]
    board: String,
    /// Debian architecture.
    #[arg(long, default_value = "arm64")]
    arch: String,
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    mirror: String,
    #[arg(long, default_value = "trixie")]
    suite: String,
    /// Archive component; repeatable.
    #[arg(long = "component", default_value = "main")]
    components: Vec<String>,
    /// Readiness level the config must meet: docker, kubernetes, podman, or none.
    #[arg(long, default_value = "docker")]
    level: String,
    /// Artifact cache [default: $DRYDOCK_CACHE_DIR or ~/.cache/drydock].
    #[arg(long, env = "DRYDOCK_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Folder the artifact's files are copied to.
    #[arg(long, default_value = "out", value_name = "DIR")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Cmd::Upstream { packages, common } => {
            let mode = Mode::Upstream {
                packages: kernel_packager::builder::requests(&packages)?,
            };
            build(mode, common)
        }
        Cmd::Source {
            tree,
            defconfig,
            fragments,
            common,
        } => {
            let tree = if tree == "debian" {
                Tree::Debian("linux-source".parse()?)
            } else if let Some(p) = tree.strip_prefix("debian:") {
                Tree::Debian(p.parse()?)
            } else {
                Tree::Path(PathBuf::from(tree))
            };
            let fragments = fragments
                .iter()
                .map(|f| {
                    if let Some(s) = shipped_fragment(f) {
                        return Ok(s);
                    }
                    let p = PathBuf::from(f);
                    let text = std::fs::read_to_string(&p).map_err(|e| {
                        kernel_packager::Error::BadInput(format!("fragment {}: {e}", p.display()))
                    })?;
                    Ok(Fragment {
                        name: p
                            .file_stem()
                            .map_or_else(|| f.clone(), |s| s.to_string_lossy().into_owned()),
                        text,
                    })
                })
                .collect::<Result<_, kernel_packager::Error>>()?;
            build(
                Mode::Source(SourceSpec {
                    tree,
                    defconfig,
                    fragments,
                }),
                common,
            )
        }
    }
}

fn build(mode: Mode, c: Common) -> Result<ExitCode, kernel_packager::Error> {
    let readiness = match c.level.as_str() {
        "none" => None,
        l => Some(
            l.parse::<Level>()
                .map_err(kernel_packager::Error::BadInput)?,
        ),
    };
    let spec = KernelSpec {
        name: format!("kernel-{}", c.board),
        board: c.board.clone(),
        arch: c.arch.clone(),
        mirror: Mirror {
            url: c.mirror,
            suite: c.suite,
            components: c.components,
            arch: c.arch,
            keyring: DEBIAN_KEYRING.into(),
        },
        mode,
        board_package: None,
        readiness,
    };
    let store = artifact::Store::open(c.cache_dir.unwrap_or_else(artifact::Store::default_root))?;
    let (entry, cached) = kernel_packager::builder::build_in_store(spec, &store)?;
    let mut files: Vec<String> = entry
        .manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    files.push("manifest.json".into());
    let written = artifact::fsutil::export_files(&entry.dir, &files, &c.out)?;
    println!(
        "{} kernel {} ({})",
        if cached { "cached" } else { "built " },
        entry.manifest.name,
        entry.dir.display()
    );
    for w in written {
        println!("  wrote {}", w.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        for args in [
            vec![
                "kernel-packager",
                "check",
                "f",
                "--level",
                "podman",
                "--json",
            ],
            vec![
                "kernel-packager",
                "upstream",
                "--package",
                "linux-image-arm64",
            ],
            vec![
                "kernel-packager",
                "source",
                "--tree",
                "/src/linux",
                "--defconfig",
                "tinyconfig",
                "--fragment",
                "containers",
                "--level",
                "none",
            ],
        ] {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}

//! `rootfs-builder`: build a Debian root filesystem tarball from flags, through the artifact cache.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use rootfs_builder::{ImageSources, Options, OsRelease, Retry, RootfsSpec, Zstd};

/// Build a clean Debian root filesystem tarball for one architecture with mmdebstrap.
///
/// Cross-architecture builds run package scripts under qemu-user through binfmt
/// (`scripts/setup-host.sh` enables it). Customisation happens inside the same mmdebstrap run:
/// root locked, no SSH host keys (a first-boot unit creates them), an empty /etc/machine-id, no
/// apt lists or caches, no resolv.conf or hostname of the build host, locale generated, timezone
/// set, apt sources and os-release fields written.
///
/// The result is published in the artifact store ($DRYDOCK_CACHE_DIR, default
/// ~/.cache/drydock): rootfs-<arch>-<suite>-<digest>.tar.zst, its .sha256 and manifest.json
/// listing every installed package. The cache key covers the spec, the mmdebstrap recipe and
/// version, and the mirror state (sha256 of the suite's InRelease): same spec and same mirror
/// state, no rebuild. SOURCE_DATE_EPOCH (default: the suite's Release date) makes two builds
/// byte-identical.
///
/// Example: rootfs-builder --arch arm64 --packages openssh-server,sudo --out out/
#[derive(Debug, Parser)]
#[command(name = "rootfs-builder", version)]
struct Cli {
    /// Debian suite: trixie, bookworm, forky or sid.
    #[arg(long, default_value = "trixie")]
    suite: String,
    /// Debian architecture: arm64, armhf or amd64.
    #[arg(long, default_value = "arm64")]
    arch: String,
    /// Debian mirror used for the build.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    mirror: String,
    /// Archive components, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "main")]
    components: Vec<String>,
    /// mmdebstrap variant (minbase, important, standard, ...).
    #[arg(long, default_value = "minbase")]
    variant: String,
    /// Extra packages, comma-separated or repeated (locales and tzdata are added when needed).
    #[arg(long, value_delimiter = ',')]
    packages: Vec<String>,
    /// The image's hostname (/etc/hostname, /etc/hosts).
    #[arg(long, default_value = "black-pearl")]
    hostname: String,
    /// Default locale, generated in the image (C.UTF-8 needs no generation).
    #[arg(long, default_value = "en_US.UTF-8")]
    locale: String,
    /// Timezone under /usr/share/zoneinfo.
    #[arg(long, default_value = "Etc/UTC")]
    timezone: String,
    /// deb822 file to install as /etc/apt/sources.list.d/debian.sources in the image. Default:
    /// the mirror's suite and <suite>-updates, plus <suite>-security, same components.
    #[arg(long, value_name = "FILE")]
    image_sources: Option<PathBuf>,
    /// os-release IMAGE_ID.
    #[arg(long, default_value = "drydock")]
    image_id: String,
    /// os-release IMAGE_VERSION (default: this tool's version).
    #[arg(long)]
    image_version: Option<String>,
    /// More os-release fields, KEY=VALUE, repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    os_release: Vec<String>,
    /// Fixed SOURCE_DATE_EPOCH (default: the Date of the suite's Release file).
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<u64>,
    /// Artifact store.
    #[arg(long, env = "DRYDOCK_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Copy the tarball, its .sha256 and manifest.json here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Attempts to reach the mirror before giving up.
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Wait before the second attempt, in milliseconds (doubled after each failure).
    #[arg(long, default_value_t = 3000)]
    retry_delay_ms: u64,
    /// zstd level of the tarball.
    #[arg(long, default_value_t = Zstd::default().level)]
    zstd_level: i32,
    /// zstd long-distance window (log2 bytes, e.g. 27); 0 = off.
    #[arg(long, default_value_t = 0)]
    zstd_window_log: u32,
    /// The mmdebstrap program.
    #[arg(long, default_value = "mmdebstrap")]
    mmdebstrap: PathBuf,
    /// Print the mmdebstrap command line for the spec and exit (no network).
    #[arg(long)]
    print_command: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// More logging (-v: commands, -vv: their output).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn spec_from(cli: &Cli) -> anyhow::Result<RootfsSpec> {
    let image_sources = match &cli.image_sources {
        None => ImageSources::Default,
        Some(p) => ImageSources::Deb822(
            std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading --image-sources {}: {e}", p.display()))?,
        ),
    };
    let mut extra = Vec::new();
    for kv in &cli.os_release {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--os-release {kv:?}: expected KEY=VALUE"))?;
        extra.push((k.to_string(), v.to_string()));
    }
    Ok(RootfsSpec {
        suite: cli.suite.parse()?,
        arch: cli.arch.parse()?,
        mirror: cli.mirror.clone(),
        components: cli.components.clone(),
        variant: cli.variant.clone(),
        packages: cli.packages.clone(),
        hostname: cli.hostname.clone(),
        locale: cli.locale.clone(),
        timezone: cli.timezone.clone(),
        image_sources,
        os_release: OsRelease {
            image_id: cli.image_id.clone(),
            image_version: cli
                .image_version
                .clone()
                .unwrap_or_else(|| OsRelease::default().image_version),
            extra,
        },
        source_date_epoch: cli.source_date_epoch,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let spec = spec_from(&cli)?;
    spec.validate()?;
    if cli.print_command {
        let sde = spec.source_date_epoch.unwrap_or(0);
        let c = rootfs_builder::mmdebstrap::command(
            &cli.mmdebstrap,
            &spec,
            sde,
            std::path::Path::new("rootfs.tar"),
            std::path::Path::new("$WORK"),
            std::path::Path::new("$WORK/hook"),
        );
        println!("{}", artifact::cmd::display(&c));
        return Ok(());
    }
    let root = cli
        .cache_dir
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(artifact::Store::default_root);
    let store = artifact::Store::open(&root)?;
    let opts = Options {
        mmdebstrap: cli.mmdebstrap.clone(),
        retry: Retry {
            attempts: cli.retries.max(1),
            delay: Duration::from_millis(cli.retry_delay_ms),
            ..Retry::default()
        },
        zstd: Zstd {
            level: cli.zstd_level,
            window_log: cli.zstd_window_log,
        },
        ..Options::default()
    };
    let built = rootfs_builder::build(&store, spec, opts)?;
    let meta = rootfs_builder::metadata(&built.entry)?;
    let mut exported = Vec::new();
    if let Some(out) = &cli.out {
        let mut files: Vec<String> = built
            .entry
            .manifest
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect();
        files.push("manifest.json".into());
        exported = artifact::fsutil::export_files(&built.entry.dir, &files, out)?;
    }
    if cli.json {
        let v = serde_json::json!({
            "cached": built.cached,
            "digest": built.entry.manifest.inputs_digest,
            "entry": built.entry.dir,
            "tarball": built.tarball,
            "sha256": meta.tarball_sha256,
            "tar_bytes": meta.tar_bytes,
            "packages": meta.packages.len(),
            "build_seconds": meta.build_seconds,
            "exported": exported,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} {} ({} packages, {} MiB uncompressed) {}",
            if built.cached { "cached" } else { "built " },
            meta.tarball,
            meta.packages.len(),
            meta.tar_bytes >> 20,
            built.entry.dir.display()
        );
        for p in exported {
            println!("  wrote {}", p.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn,rootfs_builder=info,artifact=info",
        1 => "info,artifact=debug",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRYDOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e.chain().any(|c| {
                matches!(
                    c.downcast_ref(),
                    Some(rootfs_builder::Error::Invalid { .. })
                )
            });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}

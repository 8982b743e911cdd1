//! `deb-repo`: build, sign and serve an APT repository; inspect `.deb` files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use deb_repo::gpg::SigningKey;
use deb_repo::repo::{self, RepoOptions};

/// Build, sign and serve an APT repository from a folder of .deb files.
///
/// `deb-repo build DEBS_DIR --out REPO_DIR` puts the packages into REPO_DIR/pool/, writes
/// dists/<suite>/<component>/binary-<arch>/Packages{,.gz,.xz} and a Release file signed as
/// InRelease and Release.gpg, and exports the public key as REPO_DIR/key.asc (and key.gpg) for
/// apt's `signed-by`. Running it again adds packages: only new files are read, and the new
/// dists/ replaces the old one atomically.
#[derive(Debug, Parser)]
#[command(name = "deb-repo", version, max_term_width = 100)]
struct Cli {
    /// More log output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Add .deb files (or folders of them) to a repository and publish a new signed index.
    Build(Box<BuildArgs>),
    /// Print a Packages index of the .debs under a folder (like `apt-ftparchive packages`).
    Packages(PackagesArgs),
    /// Serve a repository folder over read-only HTTP until stopped.
    Serve(ServeArgs),
    /// Show a .deb's control file, control members and (with --contents) its files.
    Info(InfoArgs),
    /// Benchmark against apt-ftparchive and reprepro (see scripts/bench-deb-repo.sh).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// GnuPG home folder holding the signing key; a key is generated there on first use
    /// [default: <drydock cache>/aux/deb-repo-key].
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
    /// Which secret key of --key-dir signs (fingerprint or its tail); needed when it holds several.
    #[arg(long, value_name = "FINGERPRINT")]
    signing_key: Option<String>,
    /// Import this secret key (armoured or binary) into --key-dir and sign with it.
    #[arg(long, value_name = "FILE", conflicts_with = "signing_key")]
    import_key: Option<PathBuf>,
}

impl KeyArgs {
    fn open(&self) -> Result<SigningKey> {
        let dir = match &self.key_dir {
            Some(d) => d.clone(),
            None => {
                artifact::Store::open(artifact::Store::default_root())?.aux_dir("deb-repo-key")?
            }
        };
        Ok(match &self.import_key {
            Some(f) => SigningKey::import(&dir, f)?,
            None => SigningKey::open_or_create(&dir, self.signing_key.as_deref())?,
        })
    }
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// .deb files, or folders searched (recursively) for *.deb. None: re-index the pool.
    #[arg(value_name = "DEBS")]
    inputs: Vec<PathBuf>,
    /// The repository folder (created if missing).
    #[arg(long, value_name = "REPO_DIR")]
    out: PathBuf,
    /// Suite name: the `dists/<suite>` folder and what sources.list names.
    #[arg(long, default_value = "drydock")]
    suite: String,
    /// Codename in Release [default: the suite].
    #[arg(long)]
    codename: Option<String>,
    #[arg(long, default_value = "main")]
    component: String,
    /// Publish this architecture even without packages of its own (repeatable); `all` packages
    /// are listed in every architecture's Packages. [default: the packages' architectures, or
    /// amd64, arm64 and armhf when all are `all`]
    #[arg(long = "arch", value_name = "ARCH")]
    architectures: Vec<String>,
    #[arg(long, default_value = "drydock")]
    origin: String,
    #[arg(long, default_value = "drydock")]
    label: String,
    /// Copy .debs into the pool instead of hard-linking them.
    #[arg(long)]
    copy: bool,
    /// Parallel readers [default: one per core].
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Debug, Args)]
struct PackagesArgs {
    /// Folder searched (recursively) for *.deb.
    dir: PathBuf,
    /// Parallel readers [default: one per core].
    #[arg(long, default_value_t = 0)]
    jobs: usize,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The repository folder.
    repo: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

#[derive(Debug, Args)]
struct InfoArgs {
    deb: PathBuf,
    /// Also list the files of the data part.
    #[arg(long)]
    contents: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Folder of .debs to index.
    debs: PathBuf,
    /// Work folder for the repositories built [default: a temporary folder beside DEBS].
    #[arg(long)]
    work: Option<PathBuf>,
    /// Timed runs of each fast step (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn,deb_repo=info",
        1 => "info,deb_repo=debug",
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
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Build(a) => build(*a),
        Cmd::Serve(a) => {
            let srv = deb_repo::serve::Server::start(&a.repo, &a.listen)?;
            eprintln!("serving {} on http://{}/", a.repo.display(), srv.addr());
            srv.wait();
            Ok(())
        }
        Cmd::Info(a) => info(a),
        Cmd::Packages(a) => {
            use std::io::Write;
            let text = repo::packages_for_dir(&a.dir, a.jobs)?;
            std::io::stdout().lock().write_all(&text)?;
            Ok(())
        }
        Cmd::Bench(a) => deb_repo::bench::run(&a.debs, a.work.as_deref(), a.runs),
    }
}

fn build(a: BuildArgs) -> Result<()> {
    let t = std::time::Instant::now();
    let key = a.key.open()?;
    let key_open = t.elapsed().as_secs_f64();
    let opts = RepoOptions {
        suite: a.suite,
        codename: a.codename,
        component: a.component,
        architectures: a.architectures,
        origin: a.origin,
        label: a.label,
        copy: a.copy,
        jobs: a.jobs,
        ..RepoOptions::default()
    };
    let mut report = repo::update(&a.out, &a.inputs, &opts, &key)
        .with_context(|| format!("building repository {}", a.out.display()))?;
    let fpr = key.fingerprint().to_string();
    let t = std::time::Instant::now();
    key.close()?;
    report.timings.insert(0, ("key-open", key_open));
    report
        .timings
        .push(("key-close", t.elapsed().as_secs_f64()));
    if a.json {
        let v = serde_json::json!({
            "repo": a.out,
            "packages": report.packages,
            "read": report.read,
            "added": report.added,
            "architectures": report.architectures,
            "release_sha256": report.release_sha256,
            "key_fingerprint": fpr,
            "timings": report.timings.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} packages ({} read, {} added), architectures {}, signed by {fpr}",
            a.out.display(),
            report.packages,
            report.read.len(),
            report.added.len(),
            report.architectures.join(" ")
        );
    }
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let mut r = deb_repo::DebReader::open(&a.deb)?;
    let i = r.info();
    print!("{}", i.control);
    println!(
        "# {} bytes, sha256 {}, control.tar{}, data.tar{}",
        i.size,
        i.sha256,
        i.control_compression.suffix(),
        i.data_compression.suffix()
    );
    for (name, data) in &i.control_members {
        println!("# control member {name} ({} bytes)", data.len());
    }
    if a.contents {
        for e in r.data_entries()? {
            let link = e.link.map(|l| format!(" -> {l}")).unwrap_or_default();
            println!(
                "{:?} {:o} {}/{} {:>10} {}{link}",
                e.kind, e.mode, e.uname, e.gname, e.size, e.path
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

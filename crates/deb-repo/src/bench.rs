//! `deb-repo bench`: time deb-repo against apt-ftparchive and reprepro on one folder of .debs, in
//! one run, and print the ratios. Every tool runs as a process on a warm page cache; the
//! deb-repo steps run this very binary (`deb-repo build`), so process start, key handling and
//! signing are included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::repo::find_debs;

fn time(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    artifact::cmd::run(cmd).with_context(|| format!("running {}", artifact::cmd::display(cmd)))?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fresh(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// Run the benchmark.
pub fn run(debs_dir: &Path, work: Option<&Path>, runs: usize) -> Result<()> {
    let runs = runs.max(1);
    let debs = find_debs(debs_dir)?;
    if debs.len() < 2 {
        bail!("{}: need at least two .debs", debs_dir.display());
    }
    let total: u64 = debs
        .iter()
        .map(|d| std::fs::metadata(d).map(|m| m.len()).unwrap_or(0))
        .sum();
    let work = match work {
        Some(w) => w.to_path_buf(),
        None => debs_dir.with_file_name("bench-work"),
    };
    let work = fresh(&work)?;
    let exe = std::env::current_exe().context("locating the deb-repo binary")?;
    let key_dir = work.join("key");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{} .debs, {:.1} MB, {} cores; median of {runs} runs where marked",
        debs.len(),
        total as f64 / 1e6,
        cores
    );

    // Warm the page cache so every tool reads from memory, and make the key (untimed).
    for d in &debs {
        std::fs::read(d).with_context(|| format!("reading {}", d.display()))?;
    }
    let (last, rest) = debs.split_last().context("no debs")?;
    let rest_dir = fresh(&work.join("rest"))?;
    for d in rest {
        let name = d.file_name().context("deb without a name")?;
        std::fs::hard_link(d, rest_dir.join(name))
            .or_else(|_| std::fs::copy(d, rest_dir.join(name)).map(|_| ()))
            .with_context(|| format!("linking {}", d.display()))?;
    }
    let build = |inputs: &[&Path], out: &Path| {
        let mut c = Command::new(&exe);
        c.arg("build").args(inputs).arg("--out").arg(out);
        c.arg("--key-dir").arg(&key_dir).arg("--arch").arg("arm64");
        c
    };
    time(&mut build(&[rest_dir.as_path()], &work.join("warmup")))?;

    // deb-repo, full index of everything.
    let mut full = Vec::new();
    for _ in 0..runs {
        let out = fresh(&work.join("deb-repo-full"))?;
        full.push(time(&mut build(&[debs_dir], &out))?);
    }
    let full = median(full);

    // deb-repo, no-op re-index and incremental add of one .deb to a repository of the rest.
    let mut noop = Vec::new();
    let mut incr = Vec::new();
    for _ in 0..runs {
        let out = fresh(&work.join("deb-repo-incr"))?;
        time(&mut build(&[rest_dir.as_path()], &out))?;
        noop.push(time(&mut build(&[rest_dir.as_path()], &out))?);
        incr.push(time(&mut build(&[last.as_path()], &out))?);
    }
    let noop = median(noop);
    let incr = median(incr);

    // apt-ftparchive packages (writes Packages to stdout).
    let mut ftp = Vec::new();
    for _ in 0..runs {
        let mut c = Command::new("apt-ftparchive");
        c.arg("packages").arg(debs_dir);
        ftp.push(time(&mut c)?);
    }
    let ftp = median(ftp);

    // reprepro includedeb into a fresh repository with the same indices (.gz, .xz) and signing.
    let rr = fresh(&work.join("reprepro"))?;
    std::fs::create_dir_all(rr.join("conf"))?;
    let fpr = {
        let k = crate::gpg::SigningKey::open_or_create(&key_dir, None)?;
        let f = k.fingerprint().to_string();
        k.close()?;
        f
    };
    std::fs::write(
        rr.join("conf/distributions"),
        format!(
            "Codename: drydock\nSuite: drydock\nArchitectures: arm64\nComponents: main\nDebIndices: Packages Release . .gz .xz\nSignWith: {fpr}\n"
        ),
    )?;
    let mut c = Command::new("reprepro");
    c.env("GNUPGHOME", &key_dir)
        .arg("-b")
        .arg(&rr)
        .args([
            "--ignore=wrongdistribution",
            "--ignore=extension",
            "includedeb",
            "drydock",
        ])
        .args(&debs);
    let rep = time(&mut c)?;
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(&key_dir)
        .args(["--kill", "gpg-agent"])
        .status();

    let s = |d: Duration| d.as_secs_f64();
    println!("{:<44} {:>9}", "step", "seconds");
    println!(
        "{:<44} {:>9.3}",
        "deb-repo build (full index, signed)",
        s(full)
    );
    println!("{:<44} {:>9.3}", "deb-repo build (no-op re-index)", s(noop));
    println!("{:<44} {:>9.3}", "deb-repo build (add one .deb)", s(incr));
    println!("{:<44} {:>9.3}", "apt-ftparchive packages", s(ftp));
    println!("{:<44} {:>9.3}", "reprepro includedeb (signed)", s(rep));
    println!();
    println!(
        "apt-ftparchive / deb-repo full : {:>6.1}x (goal >= 5x)",
        s(ftp) / s(full)
    );
    println!(
        "reprepro / deb-repo full       : {:>6.1}x",
        s(rep) / s(full)
    );
    println!(
        "deb-repo add one / full        : {:>6.1}% (goal < 5%)",
        100.0 * s(incr) / s(full)
    );
    Ok(())
}

//! `deb-repo bench`: time deb-repo against apt-ftparchive and reprepro on one folder of .debs, in
//! one run, and print the ratios. Every tool runs as a process on a warm page cache; the
//! deb-repo steps run this very binary (`deb-repo build`), so process start, key handling and
//! signing are included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::repo::find_debs;

fn time(cmd: &mut Command) -> Result<Took> {
    Ok(time_json(cmd)?.0)
}

/// Wall and CPU (user + system of waited-for children) time of one run.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Took {
    wall: f64,
    cpu: f64,
}

fn children_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Run, timing it; parse stdout as deb-repo's `--json` report when it is one.
fn time_json(cmd: &mut Command) -> Result<(Took, Option<serde_json::Value>)> {
    let c0 = children_cpu();
    let t = Instant::now();
    let out = artifact::cmd::run(cmd)
        .with_context(|| format!("running {}", artifact::cmd::display(cmd)))?;
    let took = Took {
        wall: t.elapsed().as_secs_f64(),
        cpu: children_cpu() - c0,
    };
    Ok((took, serde_json::from_slice(&out.stdout).ok()))
}

fn phases(v: &Option<serde_json::Value>) -> String {
    let Some(t) = v
        .as_ref()
        .and_then(|v| v.get("timings"))
        .and_then(|t| t.as_array())
    else {
        return String::new();
    };
    t.iter()
        .filter_map(|p| {
            Some(format!(
                "{} {:.3}",
                p.get(0)?.as_str()?,
                p.get(1)?.as_f64()?
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Median wall time and median CPU time, separately.
fn median(v: Vec<Took>) -> Took {
    let mut w: Vec<f64> = v.iter().map(|t| t.wall).collect();
    let mut c: Vec<f64> = v.iter().map(|t| t.cpu).collect();
    w.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    Took {
        wall: w[w.len() / 2],
        cpu: c[c.len() / 2],
    }
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
        c.arg("--key-dir")
            .arg(&key_dir)
            .arg("--arch")
            .arg("arm64")
            .arg("--json");
        c
    };
    time(&mut build(&[rest_dir.as_path()], &work.join("warmup")))?;

    // deb-repo, full index of everything.
    let mut full = Vec::new();
    let mut full_phases = String::new();
    // Every run writes a new folder; nothing is deleted until the end (deleting thousands of
    // folders right before creating as many makes ext4's inode allocator scan, which would
    // charge the deletion to the next build).
    for i in 0..runs {
        let out = fresh(&work.join(format!("deb-repo-full-{i}")))?;
        let (d, j) = time_json(&mut build(&[debs_dir], &out))?;
        full.push(d);
        full_phases = phases(&j);
    }
    let full = median(full);

    // deb-repo, no-op re-index and incremental add of one .deb to a repository of the rest.
    let mut noop = Vec::new();
    let mut incr = Vec::new();
    let mut incr_phases = String::new();
    for i in 0..runs {
        let out = fresh(&work.join(format!("deb-repo-incr-{i}")))?;
        time(&mut build(&[rest_dir.as_path()], &out))?;
        noop.push(time(&mut build(&[rest_dir.as_path()], &out))?);
        let (d, j) = time_json(&mut build(&[last.as_path()], &out))?;
        incr.push(d);
        incr_phases = phases(&j);
    }
    let noop = median(noop);
    let incr = median(incr);

    // The same job as apt-ftparchive: a Packages index of the folder on stdout.
    let mut pk = Vec::new();
    for _ in 0..runs {
        let mut c = Command::new(&exe);
        c.arg("packages").arg(debs_dir);
        pk.push(time(&mut c)?);
    }
    let pk = median(pk);

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

    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average now: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("{:<40} {:>9} {:>9}", "step", "wall s", "cpu s");
    for (name, t) in [
        ("deb-repo build (full index, signed)", full),
        ("deb-repo build (no-op re-index)", noop),
        ("deb-repo build (add one .deb)", incr),
        ("deb-repo packages (index to stdout)", pk),
        ("apt-ftparchive packages", ftp),
        ("reprepro includedeb (signed)", rep),
    ] {
        println!("{name:<40} {:>9.3} {:>9.3}", t.wall, t.cpu);
    }
    println!();
    println!("deb-repo full phases (wall s): {full_phases}");
    println!("deb-repo add-one phases (wall s): {incr_phases}");
    println!();
    println!("{:<34} {:>8} {:>8}", "ratio", "wall", "cpu");
    println!(
        "{:<34} {:>7.1}x {:>7.1}x   (goal >= 5x)",
        "apt-ftparchive / deb-repo full",
        ftp.wall / full.wall,
        ftp.cpu / full.cpu
    );
    println!(
        "{:<34} {:>7.1}x {:>7.1}x",
        "apt-ftparchive / deb-repo packages",
        ftp.wall / pk.wall,
        ftp.cpu / pk.cpu
    );
    println!(
        "{:<34} {:>7.1}x {:>7.1}x",
        "reprepro / deb-repo full",
        rep.wall / full.wall,
        rep.cpu / full.cpu
    );
    println!(
        "{:<34} {:>7.1}% {:>7.1}%   (goal < 5%)",
        "deb-repo add one / full",
        100.0 * incr.wall / full.wall,
        100.0 * incr.cpu / full.cpu
    );
    Ok(())
}

//! `drydock build [BOARD] --out DIR`: check the host, run the pipeline through the cache, export
//! the bundle, and say what was built, what came from the cache and where the bundle is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use image_assembler::bundle::Compression;

use crate::assemble::ImageOptions;
use crate::cli::{BuildArgs, CompressArg};
use crate::pipeline::Outcome;
use crate::progress::Progress;
use crate::{doctor, profile, Ctx};

/// Free space a build needs in the cache (rootfs, system, image and their staging copies).
pub const MIN_FREE: u64 = 8 << 30;

fn compression(c: Option<CompressArg>) -> Option<Compression> {
    c.map(|c| match c {
        CompressArg::Zstd => Compression::Zstd,
        CompressArg::Xz => Compression::Xz,
        CompressArg::Zip => Compression::Zip,
        CompressArg::None => Compression::None,
    })
}

/// The bundle's files in an image entry, in export order: SHA256SUMS last (its presence marks a
/// complete bundle), manifest.json just before it.
pub fn bundle_files(image: &artifact::Entry) -> Vec<String> {
    let mut files: Vec<String> = image
        .manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| p != "SHA256SUMS")
        .collect();
    files.push("manifest.json".into());
    files.push("SHA256SUMS".into());
    files
}

/// Copy the bundle to `out`: first remove `out/SHA256SUMS`, so an interrupted export never leaves
/// a bundle that looks complete; then every file (atomically each, skipping files that are
/// already there unchanged); SHA256SUMS last.
pub fn export(image: &artifact::Entry, out: &Path) -> Result<Vec<PathBuf>> {
    let sums = out.join("SHA256SUMS");
    if sums.exists() {
        std::fs::remove_file(&sums).with_context(|| format!("removing {}", sums.display()))?;
    }
    let files = bundle_files(image);
    let written = artifact::fsutil::export_files(&image.dir, &files, out)
        .with_context(|| format!("exporting the bundle to {}", out.display()))?;
    artifact::fsutil::sync_dir(out)?;
    Ok(written)
}

fn human(b: u64) -> String {
    crate::cache_cmd_human(b)
}

/// Print the summary: each step (built or cached), then the bundle.
pub fn summary(o: &Outcome, out: &Path, written: &[PathBuf], secs: f64) {
    println!("drydock build: {} in {secs:.1} s", o.image.manifest.name);
    for s in &o.steps {
        println!(
            "  {:<7} {:<10} {:<28} {}  ({:.1} s)",
            if s.cached { "cached" } else { "built" },
            s.step,
            s.name,
            &s.digest[..12.min(s.digest.len())],
            s.seconds
        );
    }
    println!("bundle in {}:", out.display());
    for p in written {
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:<40} {:>10}",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            human(size)
        );
    }
}

/// `drydock build`; `quiet` (-q) hides the progress lines.
/// The summary as JSON (`--json`): board, steps (built or cached, digest, seconds), the image
/// stage's timings, and the bundle files with their sizes.
pub fn json_summary(
    board: &str,
    o: &Outcome,
    out: &Path,
    written: &[PathBuf],
    secs: f64,
) -> serde_json::Value {
    let files: Vec<serde_json::Value> = written
        .iter()
        .map(|p| serde_json::json!({"path": p, "size": std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)}))
        .collect();
    serde_json::json!({
        "board": board,
        "image": o.image.manifest.name,
        "seconds": secs,
        "steps": o.steps,
        "timings": o.image.manifest.metadata.get("timings"),
        "mapped-bytes": o.image.manifest.metadata.get("mapped-bytes"),
        "out": out,
        "files": files,
    })
}

pub fn run(ctx: &Ctx, args: BuildArgs, quiet: bool) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let path = profile::resolve(&args.board)?;
    let profile = profile::load_file(&path)?;
    let profile_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    // Fail before any long work when the host lacks something.
    let report = doctor::check(
        &profile,
        &doctor::Needs {
            boot_test: false,
            min_free: MIN_FREE,
        },
        ctx.store.root(),
    );
    if !report.ok() {
        bail!(
            "this host cannot build {} yet — {}; `drydock doctor --board {}` shows details",
            profile.name,
            report.summary(),
            profile.name
        );
    }
    if !image_assembler::chroot::can_unshare() {
        bail!("drydock build installs packages in a chroot inside a private mount namespace and needs root: run it with sudo");
    }
    let opts = ImageOptions {
        hostname: args.hostname.clone(),
        preload: args.preload.clone(),
        compression: compression(args.compress),
    };
    let progress = Progress::new(quiet);
    let outcome = crate::pipeline::run(ctx, &profile, &profile_dir, &opts, &progress);
    progress.finish();
    let outcome = outcome?;
    let written = export(&outcome.image, &args.out.out)?;
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json_summary(&profile.name, &outcome, &args.out.out, &written, secs)
        );
    } else {
        summary(&outcome, &args.out.out, &written, secs);
    }
    Ok(ExitCode::SUCCESS)
}

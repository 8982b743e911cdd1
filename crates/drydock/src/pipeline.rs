//! The whole pipeline of `drydock build`: the input artifacts in parallel (rootfs, kernel, deb-repo,
//! raw-image), then the system stage, then the image stage — each through the store, so what is
//! already built is reused.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use artifact::Entry;

use crate::assemble::{self, ImageOptions};
use crate::cli::ArtifactKind;
use crate::profile::Profile;
use crate::progress::Progress;
use crate::Ctx;

/// Image bundles of one image name kept in the cache after a build (the one just built
/// included); older ones are removed (`drydock cache gc` applies its own `--keep` to the rest).
pub const KEEP_IMAGES: usize = 3;

/// What one step did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub step: String,
    pub kind: String,
    pub name: String,
    pub digest: String,
    pub cached: bool,
    pub seconds: f64,
}

/// The result of a pipeline run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub image: Entry,
    pub steps: Vec<StepReport>,
}

/// Get one input artifact of a board through the store (built when missing).
///
/// The artifact modules' `build` also exports the files; the pipeline gives them a scratch
/// folder in the cache that persists between runs, so an unchanged artifact is not copied again
/// (see `artifact::fsutil::export_files`).
pub fn input(ctx: &Ctx, profile: &Profile, kind: ArtifactKind) -> Result<(Entry, bool)> {
    let scratch = ctx
        .store
        .aux_dir(&format!("exports/{}/{}", profile.name, step_name(kind)))?;
    let b = match kind {
        ArtifactKind::Rootfs => crate::artifacts::rootfs::build(ctx, profile, &scratch)?,
        ArtifactKind::Kernel => crate::artifacts::kernel::build(ctx, profile, &scratch)?,
        ArtifactKind::DebRepo => crate::artifacts::deb_repo::build(ctx, profile, &scratch)?,
        ArtifactKind::RawImage => crate::artifacts::raw_image::build(ctx, profile, &scratch)?,
    };
    Ok((b.entry, b.cached))
}

fn step_name(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Rootfs => "rootfs",
        ArtifactKind::Kernel => "kernel",
        ArtifactKind::DebRepo => "deb-repo",
        ArtifactKind::RawImage => "raw-image",
    }
}

fn report(step: &str, e: &Entry, cached: bool, t: Instant) -> StepReport {
    StepReport {
        step: step.to_string(),
        kind: e.manifest.kind.clone(),
        name: e.manifest.name.clone(),
        digest: e.digest().to_string(),
        cached,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// Run the pipeline for `profile`; `profile_dir` resolves relative paths in the profile.
pub fn run(
    ctx: &Ctx,
    profile: &Profile,
    profile_dir: &Path,
    opts: &ImageOptions,
    progress: &Progress,
) -> Result<Outcome> {
    let layout = crate::artifacts::raw_image::layout(profile)?;
    // 1. The input artifacts, independent of each other: in parallel.
    let kinds = [
        ArtifactKind::Rootfs,
        ArtifactKind::Kernel,
        ArtifactKind::DebRepo,
        ArtifactKind::RawImage,
    ];
    let results: Vec<(ArtifactKind, Result<(Entry, bool)>, StepReport)> = std::thread::scope(|s| {
        let handles: Vec<_> = kinds
            .iter()
            .map(|&kind| {
                let step = progress.step(step_name(kind), "looking up the cache");
                s.spawn(move || {
                    let t = Instant::now();
                    let r = input(ctx, profile, kind);
                    let rep = match &r {
                        Ok((e, cached)) => {
                            step.done(&format!(
                                "{} {} {}",
                                if *cached { "cached" } else { "built" },
                                e.manifest.name,
                                &e.digest()[..12]
                            ));
                            report(step_name(kind), e, *cached, t)
                        }
                        Err(err) => {
                            step.fail(&format!("{err:#}"));
                            StepReport {
                                step: step_name(kind).into(),
                                kind: String::new(),
                                name: String::new(),
                                digest: String::new(),
                                cached: false,
                                seconds: t.elapsed().as_secs_f64(),
                            }
                        }
                    };
                    (kind, r, rep)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        ArtifactKind::Rootfs,
                        Err(anyhow!("a build thread panicked")),
                        StepReport {
                            step: "?".into(),
                            kind: String::new(),
                            name: String::new(),
                            digest: String::new(),
                            cached: false,
                            seconds: 0.0,
                        },
                    )
                })
            })
            .collect()
    });
    let mut steps = Vec::new();
    let mut entries: BTreeMap<&'static str, Entry> = BTreeMap::new();
    let mut errors = Vec::new();
    for (kind, r, rep) in results {
        match r {
            Ok((e, _)) => {
                entries.insert(step_name(kind), e);
                steps.push(rep);
            }
            Err(e) => errors.push(format!("{}: {e:#}", step_name(kind))),
        }
    }
    if !errors.is_empty() {
        return Err(anyhow!("{}", errors.join("\n")));
    }
    let get = |k: &str| {
        entries
            .get(k)
            .cloned()
            .with_context(|| format!("no {k} artifact"))
    };
    let (rootfs, kernel, repo, raw) = (
        get("rootfs")?,
        get("kernel")?,
        get("deb-repo")?,
        get("raw-image")?,
    );

    // 2. The system: kernel, engine and packages installed (the expensive stage).
    let step = progress.step("system", "looking up the cache");
    let t = Instant::now();
    let r = assemble::system(
        ctx,
        profile,
        &layout,
        &rootfs,
        &kernel,
        &repo,
        &|m: &str| step.set(m),
    );
    let (system, cached) = match r {
        Ok(r) => r,
        Err(e) => {
            step.fail(&format!("{e:#}"));
            return Err(e.context(format!("assembling the system of board {}", profile.name)));
        }
    };
    step.done(&format!(
        "{} {} {}",
        if cached { "cached" } else { "built" },
        system.manifest.name,
        &system.digest()[..12]
    ));
    steps.push(report("system", &system, cached, t));

    // 3. The image and its bundle (cheap, per-image settings).
    let artifacts: BTreeMap<String, String> = [
        ("rootfs", &rootfs),
        ("kernel", &kernel),
        ("deb-repo", &repo),
        ("raw-image", &raw),
    ]
    .into_iter()
    .map(|(k, e)| (k.to_string(), e.digest().to_string()))
    .collect();
    let step = progress.step("image", "looking up the cache");
    let t = Instant::now();
    let r = assemble::image(
        ctx,
        profile,
        profile_dir,
        &layout,
        &system,
        &artifacts,
        opts,
        &|m: &str| step.set(m),
    );
    let (image, cached) = match r {
        Ok(r) => r,
        Err(e) => {
            step.fail(&format!("{e:#}"));
            return Err(e.context(format!("assembling the image of board {}", profile.name)));
        }
    };
    step.done(&format!(
        "{} {} {}",
        if cached { "cached" } else { "built" },
        image.manifest.name,
        &image.digest()[..12]
    ));
    steps.push(report("image", &image, cached, t));
    // Bundles are large and cheap to make again (seconds, from the kept system and root file
    // system): keep the few most recent of this image, not one per hostname ever built.
    if !cached {
        match ctx
            .store
            .prune("image", &image.manifest.name, KEEP_IMAGES, &image.dir)
        {
            Ok(r) if !r.removed.is_empty() => tracing::info!(
                "removed {} older {} bundles from the cache ({:.1} GiB)",
                r.removed.len(),
                image.manifest.name,
                r.freed_bytes as f64 / (1u64 << 30) as f64
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not remove older bundles from the cache: {e:#}"),
        }
    }
    Ok(Outcome { image, steps })
}

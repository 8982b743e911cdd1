//! Turning a profile into each builder's spec and building one artifact through the cache.
//!
//! One module per artifact kind; each converts the profile into its builder's spec (builders never
//! read profiles), computes the cache key, looks it up in the store, builds on a miss and exports
//! the artifact's files to `--out`.

pub mod deb_repo;
pub mod kernel;
pub mod raw_image;
pub mod rootfs;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::ArtifactKind;
use crate::profile::Profile;
use crate::Ctx;

/// A built (or cached) artifact and where its files were exported.
#[derive(Debug, Clone)]
pub struct Built {
    pub entry: artifact::Entry,
    /// True when the store already had it.
    pub cached: bool,
    /// Paths written under `--out`.
    pub exported: Vec<PathBuf>,
}

impl Built {
    /// Print the summary line and the exported paths (a closed stdout, e.g. `| head -1`, is not
    /// an error of the build).
    pub fn report(&self) {
        use std::io::Write;
        let m = &self.entry.manifest;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{} {} {} ({}, {})",
            if self.cached { "cached" } else { "built " },
            m.kind,
            m.name,
            &m.inputs_digest[..12.min(m.inputs_digest.len())],
            self.entry.dir.display()
        );
        for p in &self.exported {
            let _ = writeln!(out, "  wrote {}", p.display());
        }
    }
}

/// Copy every file of an entry (and its manifest) to `out`.
/// Export a built or cached entry into `out` and say what happened.
pub fn exported(entry: artifact::Entry, cached: bool, out: &Path) -> Result<Built> {
    let exported = export(&entry, out)?;
    Ok(Built {
        entry,
        cached,
        exported,
    })
}

pub fn export(entry: &artifact::Entry, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<String> = entry
        .manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    files.push("manifest.json".into());
    Ok(artifact::fsutil::export_files(&entry.dir, &files, out)?)
}

/// Build (or fetch from the cache) one artifact of a board and copy it to `out`.
pub fn build_one(ctx: &Ctx, profile: &Profile, kind: ArtifactKind, out: &Path) -> Result<Built> {
    let built = match kind {
        ArtifactKind::Rootfs => rootfs::build(ctx, profile, out)?,
        ArtifactKind::Kernel => kernel::build(ctx, profile, out)?,
        ArtifactKind::DebRepo => deb_repo::build(ctx, profile, out)?,
        ArtifactKind::RawImage => raw_image::build(ctx, profile, out)?,
    };
    built.report();
    Ok(built)
}

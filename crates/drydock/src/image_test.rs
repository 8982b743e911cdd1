//! `drydock test IMAGE`: static checks on an image file, no mount and no root.
//!
//! The image is read through raw-image (partition table in Rust, FAT via mtools, ext4 via
//! debugfs, both at the partition's offset); the bundle files beside it (manifest.json, SBOM,
//! SHA256SUMS, .bmap) are checked against the image. Checks are grouped as HypriotOS's serverspec
//! tests were; see [`checks`] for the list of generators.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::checks::bundle;
use crate::checks::disk::ImageDisk;
use crate::checks::subject::{HostFacts, Subject};
use crate::checks::{boot, layout, system, Report};
use crate::cli::TestArgs;
use crate::profile::{self, Profile};
use crate::{Ctx, UsageError};

/// Run every static check generator on an opened image.
pub fn checks(s: &Subject) -> Report {
    let mut r = Report::new();
    layout::partitions(s, &mut r);
    boot::boot_files(s, &mut r);
    boot::kernel(s, &mut r);
    system::engine(s, &mut r);
    system::security(s, &mut r);
    system::cloud_init(s, &mut r);
    system::os_release(s, &mut r);
    layout::fstab_cmdline(s, &mut r);
    bundle::bundle(s, &mut r);
    r
}

/// The board an image was built for: `--board`, else the bundle manifest's, else rpi-arm64.
pub fn board_for(image: &Path, board: Option<&str>) -> (String, &'static str) {
    if let Some(b) = board {
        return (b.to_string(), "--board");
    }
    if let Some(b) = bundle::manifest_board(&bundle::find(image)) {
        return (b, "manifest.json beside the image");
    }
    (
        "rpi-arm64".to_string(),
        "default board (no --board, no manifest.json)",
    )
}

/// Check that IMAGE is a plain image file.
pub fn require_image(image: &Path) -> Result<()> {
    let name = image.to_string_lossy();
    for ext in [".zst", ".xz", ".zip", ".gz"] {
        if name.ends_with(ext) {
            return Err(UsageError(format!(
                "{name}: a compressed image; give the .img (decompress it first, e.g. `zstd -d {name}`)"
            ))
            .into());
        }
    }
    let m = std::fs::metadata(image).with_context(|| format!("reading image {name}"))?;
    if !m.is_file() {
        return Err(UsageError(format!("{name}: not a regular file")).into());
    }
    Ok(())
}

/// Open an image and run the static checks.
pub fn test_image(image: &Path, profile: &Profile) -> Result<Report> {
    require_image(image)?;
    let disk = ImageDisk::open(image)?;
    let bundle = bundle::find(image);
    let subject = Subject::open(profile, &disk, Some(bundle), HostFacts::read());
    Ok(checks(&subject))
}

/// Print a report: human (grouped) or JSON lines on stdout; failures named on stderr.
pub fn print_report(r: &Report, json: bool, what: &str) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    if json {
        r.write_json(stdout.lock()).context("writing the report")?;
    } else {
        r.write_human(stdout.lock()).context("writing the report")?;
    }
    if r.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        let failed: Vec<String> = r
            .failed()
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        eprintln!(
            "drydock {what}: {} of {} checks failed: {}",
            failed.len(),
            r.checks.len(),
            failed.join("; ")
        );
        Ok(ExitCode::from(1))
    }
}

pub fn run(_ctx: &Ctx, a: TestArgs) -> Result<ExitCode> {
    require_image(&a.image)?;
    let (board, from) = board_for(&a.image, a.board.as_deref());
    tracing::info!("board {board} ({from})");
    let profile = profile::load(&board)?;
    let r = test_image(&a.image, &profile)?;
    print_report(&r, a.json, "test")
}

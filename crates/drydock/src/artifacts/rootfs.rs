//! The rootfs artifact of a board: profile → [`RootfsSpec`] → store → `--out`.
//!
//! Only `rootfs.{suite, mirror, components, variant, packages, hostname, locale, timezone}` and
//! the board's `arch` shape the rootfs; `image-packages`, `engine`, `user` and `password` are the
//! assembler's. The rootfs is per architecture: its os-release names the image (`drydock`, this
//! version), and the assembler adds the board.

use std::path::Path;

use anyhow::{Context, Result};
use rootfs_builder::{ImageSources, Options, OsRelease, RootfsSpec};

use super::Built;
use crate::profile::Profile;
use crate::{Ctx, UsageError};

/// The builder spec of a profile. Errors name the profile field.
pub fn spec(profile: &Profile) -> Result<RootfsSpec> {
    let r = &profile.rootfs;
    let bad = |field: &str, e: rootfs_builder::Error| {
        UsageError(format!("profile {}: {field}: {e}", profile.name))
    };
    let spec = RootfsSpec {
        suite: r.suite.parse().map_err(|e| bad("rootfs.suite", e))?,
        arch: profile.arch.parse().map_err(|e| bad("arch", e))?,
        mirror: r.mirror.clone(),
        components: r.components.clone(),
        variant: r.variant.clone(),
        packages: r.packages.clone(),
        hostname: r.hostname.clone(),
        locale: r.locale.clone(),
        timezone: r.timezone.clone(),
        image_sources: ImageSources::Default,
        os_release: OsRelease::default(),
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    };
    spec.validate().map_err(|e| bad("rootfs", e))?;
    Ok(spec)
}

/// Build (or reuse) the rootfs artifact of `profile` and export it to `out`.
pub fn build(ctx: &Ctx, profile: &Profile, out: &Path) -> Result<Built> {
    let spec = spec(profile)?;
    let name = spec.name();
    let b = rootfs_builder::build(&ctx.store, spec, Options::default())
        .with_context(|| format!("building the rootfs of board {}", profile.name))?;
    let exported = super::export(&b.entry, out)
        .with_context(|| format!("exporting {name} to {}", out.display()))?;
    Ok(Built {
        entry: b.entry,
        cached: b.cached,
        exported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpi_arm64_profile_to_spec() {
        let p = crate::profile::load("rpi-arm64").unwrap();
        let s = spec(&p).unwrap();
        assert_eq!(s.arch, rootfs_builder::Arch::Arm64);
        assert_eq!(s.suite, rootfs_builder::Suite::Trixie);
        assert_eq!(s.components, vec!["main", "non-free-firmware"]);
        assert_eq!(s.hostname, "black-pearl");
        assert!(s.packages.contains(&"openssh-server".to_string()));
        // The assembler's packages and engine stay out of the rootfs.
        for p in &p.rootfs.image_packages {
            assert!(!s.packages.contains(p), "{p}");
        }
        assert!(!s.packages.iter().any(|p| p == "docker.io"));
    }

    #[test]
    fn bad_profile_value_is_a_usage_error() {
        let mut p = crate::profile::load("rpi-arm64").unwrap();
        p.rootfs.hostname = "no_underscores".into();
        let e = spec(&p).unwrap_err();
        assert_eq!(crate::exit_code(&e), 2);
        let s = e.to_string();
        assert!(s.contains("rootfs: hostname: \"no_underscores\""), "{s}");
    }
}

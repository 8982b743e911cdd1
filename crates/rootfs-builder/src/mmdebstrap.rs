//! The mmdebstrap command line for a spec.
//!
//! The arguments are a pure function of the spec and the resolved SOURCE_DATE_EPOCH; they contain
//! no paths of this build except the target, which is always the last-but-one argument, so the
//! [`recipe`] (the arguments without the target) goes into the cache key: changing a hook changes
//! the key.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::hooks;
use crate::spec::RootfsSpec;

/// Placeholder standing for the output path in [`recipe`].
pub const TARGET_PLACEHOLDER: &str = "TARGET.tar";

/// The arguments for mmdebstrap writing an uncompressed tarball to `target`.
///
/// - `--mode=unshare`: the chroot's mounts (/proc, /sys, /dev) live in a private mount namespace
///   that dies with the build, so a killed build leaves no mount behind in the staging folder.
/// - `--format=tar`: mmdebstrap sorts members by name and clamps mtimes to SOURCE_DATE_EPOCH; we
///   compress ourselves (multithreaded zstd with fixed parameters).
/// - hooks: see [`hooks`]; `Acquire::Retries` makes apt retry flaky downloads.
pub fn args(spec: &RootfsSpec, target: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--mode=unshare".into(),
        "--format=tar".into(),
        format!("--variant={}", spec.variant).into(),
        format!("--architectures={}", spec.arch).into(),
        format!("--components={}", spec.components.join(",")).into(),
    ];
    let pkgs = spec.install_packages();
    if !pkgs.is_empty() {
        a.push(format!("--include={}", pkgs.join(",")).into());
    }
    a.push("--aptopt=Acquire::Retries \"5\"".into());
    a.push("--dpkgopt=force-unsafe-io".into());
    // The customize hook removes apt's lists and caches itself (see hooks.rs).
    a.push("--skip=cleanup/apt".into());
    a.push(format!("--essential-hook={}", hooks::essential_hook(spec)).into());
    a.push(format!("--customize-hook={}", hooks::customize_hook(spec)).into());
    a.push(spec.suite.as_str().into());
    a.push(target.into());
    a.push(spec.mirror.clone().into());
    a
}

/// The arguments with the target replaced by [`TARGET_PLACEHOLDER`]: what the cache key covers.
pub fn recipe(spec: &RootfsSpec) -> Vec<String> {
    args(spec, Path::new(TARGET_PLACEHOLDER))
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

/// The full command: mmdebstrap, its arguments, and a fixed environment.
///
/// `SOURCE_DATE_EPOCH` makes mmdebstrap (and the tools it runs) reproducible; `TMPDIR` puts
/// mmdebstrap's temporary chroot inside `work` (in the store's staging folder, so an abandoned
/// build is cleaned by `drydock cache gc`); `DRYDOCK_HOOK_OUT` is where the hooks report;
/// `LC_ALL=C.UTF-8` keeps the host's locale out of the chroot's package scripts.
pub fn command(
    program: &Path,
    spec: &RootfsSpec,
    source_date_epoch: u64,
    target: &Path,
    work: &Path,
    hook_out: &Path,
) -> Command {
    let mut c = Command::new(program);
    c.args(args(spec, target))
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .env("TMPDIR", work)
        .env("DRYDOCK_HOOK_OUT", hook_out)
        .env("LC_ALL", "C.UTF-8")
        .env_remove("LANG")
        .env_remove("LANGUAGE");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Arch, Suite};

    #[test]
    fn arguments_for_a_spec() {
        let spec = RootfsSpec {
            suite: Suite::Bookworm,
            arch: Arch::Armhf,
            components: vec!["main".into(), "non-free-firmware".into()],
            packages: vec!["openssh-server".into(), "curl".into()],
            ..Default::default()
        };
        let a: Vec<String> = args(&spec, Path::new("/w/rootfs.tar"))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            a[..9],
            [
                "--mode=unshare",
                "--format=tar",
                "--variant=minbase",
                "--architectures=armhf",
                "--components=main,non-free-firmware",
                "--include=curl,locales,openssh-server,tzdata",
                "--aptopt=Acquire::Retries \"5\"",
                "--dpkgopt=force-unsafe-io",
                "--skip=cleanup/apt",
            ]
        );
        assert_eq!(
            a[9],
            format!("--essential-hook={}", hooks::essential_hook(&spec))
        );
        assert_eq!(
            a[10],
            format!("--customize-hook={}", hooks::customize_hook(&spec))
        );
        assert_eq!(
            a[11..],
            ["bookworm", "/w/rootfs.tar", "http://deb.debian.org/debian"]
        );
    }

    #[test]
    fn recipe_has_no_build_paths_and_follows_hooks() {
        let spec = RootfsSpec::default();
        let r = recipe(&spec);
        assert_eq!(r[r.len() - 2], TARGET_PLACEHOLDER);
        let other = recipe(&RootfsSpec {
            hostname: "other".into(),
            ..spec
        });
        assert_ne!(r, other);
    }

    #[test]
    fn command_environment() {
        let c = command(
            Path::new("mmdebstrap"),
            &RootfsSpec::default(),
            1754730806,
            Path::new("/w/r.tar"),
            Path::new("/w"),
            Path::new("/w/hook"),
        );
        let env: Vec<(String, Option<String>)> = c
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(env.contains(&("SOURCE_DATE_EPOCH".into(), Some("1754730806".into()))));
        assert!(env.contains(&("TMPDIR".into(), Some("/w".into()))));
        assert!(env.contains(&("DRYDOCK_HOOK_OUT".into(), Some("/w/hook".into()))));
        assert!(env.contains(&("LANG".into(), None)));
    }
}

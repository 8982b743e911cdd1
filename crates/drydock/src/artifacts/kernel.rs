//! The kernel artifact of a board: profile → [`KernelSpec`] → store.
//!
//! Upstream mode takes `kernel.packages` from the profile's mirror, suite and components (those of
//! the rootfs); source mode builds `kernel.source` (Debian's `linux-source` or a path) with the base
//! config and fragments (a shipped name such as `containers`, or a file path). Boards booted by the
//! Raspberry Pi firmware get a board package (`drydock-kernel-config-<board>`) with the config.txt
//! lines and extra command line for raspi-firmware's hooks, and every board gets its dtb list and
//! command line under `/usr/share/drydock/kernel/`.

use std::path::Path;

use anyhow::{Context, Result};
use kernel_packager::mirror::{Mirror, DEBIAN_KEYRING};
use kernel_packager::readiness::Level;
use kernel_packager::spec::{
    shipped_fragment, BoardFile, BoardPackage, Fragment, KernelSpec, Mode, SourceSpec, Tree,
    SHIPPED_FRAGMENTS,
};

use super::Built;
use crate::profile::{BootloaderKind, KernelMode, Profile, Readiness};
use crate::{Ctx, UsageError};

fn usage(e: kernel_packager::Error) -> anyhow::Error {
    if e.is_bad_input() {
        anyhow::Error::new(UsageError(e.to_string()))
    } else {
        anyhow::Error::new(e)
    }
}

/// The board package of a profile.
pub fn board_package(profile: &Profile) -> BoardPackage {
    let k = &profile.kernel;
    let mut files = vec![
        BoardFile {
            path: "/usr/share/drydock/kernel/dtbs".into(),
            content: k.dtbs.iter().map(|d| format!("{d}\n")).collect(),
            conffile: false,
        },
        BoardFile {
            path: "/usr/share/drydock/kernel/cmdline".into(),
            content: format!("{}\n", k.cmdline.join(" ")),
            conffile: false,
        },
    ];
    if profile.bootloader.kind == BootloaderKind::RpiFirmware {
        // raspi-firmware's kernel hook appends these to config.txt and cmdline.txt. It writes
        // console= (from CONSOLES in /etc/default/raspi-firmware), rootwait and fsck.repair itself.
        let extra: Vec<&str> = k
            .cmdline
            .iter()
            .map(String::as_str)
            .filter(|a| {
                !a.starts_with("console=") && *a != "rootwait" && !a.starts_with("fsck.repair=")
            })
            .collect();
        files.push(BoardFile {
            path: "/etc/default/raspi-firmware-custom".into(),
            content: profile
                .bootloader
                .config_txt
                .iter()
                .map(|l| format!("{l}\n"))
                .collect(),
            conffile: true,
        });
        files.push(BoardFile {
            path: "/etc/default/raspi-extra-cmdline".into(),
            content: format!("{}\n", extra.join(" ")),
            conffile: true,
        });
    }
    BoardPackage {
        name: format!(
            "drydock-kernel-config-{}",
            profile.name.to_ascii_lowercase()
        ),
        description: format!(
            "boot configuration of the {} board (drydock)\n {}",
            profile.name, profile.description
        ),
        files,
    }
}

fn fragment(name: &str) -> Result<Fragment> {
    if let Some(f) = shipped_fragment(name) {
        return Ok(f);
    }
    let p = Path::new(name);
    if !name.contains('/') && !name.ends_with(".config") {
        return Err(UsageError(format!(
            "kernel.source.fragments: {name:?} is neither a shipped fragment ({}) nor a file path",
            SHIPPED_FRAGMENTS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let text = std::fs::read_to_string(p)
        .map_err(|e| UsageError(format!("kernel.source.fragments: {}: {e}", p.display())))?;
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    Ok(Fragment { name: stem, text })
}

/// Convert a profile into the kernel builder's spec.
pub fn spec(profile: &Profile) -> Result<KernelSpec> {
    let k = &profile.kernel;
    let mode = match k.mode {
        KernelMode::Upstream => Mode::Upstream {
            packages: kernel_packager::builder::requests(&k.packages).map_err(usage)?,
        },
        KernelMode::Source => {
            let src = k.source.as_ref().ok_or_else(|| {
                UsageError("kernel.source: source mode needs a `source:` section".into())
            })?;
            let tree = if src.tree == "debian" {
                Tree::Debian("linux-source".parse().map_err(usage)?)
            } else if let Some(pkg) = src.tree.strip_prefix("debian:") {
                Tree::Debian(pkg.parse().map_err(usage)?)
            } else {
                Tree::Path(
                    std::path::absolute(&src.tree)
                        .with_context(|| format!("kernel.source.tree: {}", src.tree))?,
                )
            };
            Mode::Source(SourceSpec {
                tree,
                defconfig: src.defconfig.clone(),
                fragments: src
                    .fragments
                    .iter()
                    .map(|f| fragment(f))
                    .collect::<Result<_>>()?,
            })
        }
    };
    let readiness = match k.readiness {
        Readiness::None => None,
        Readiness::Docker => Some(Level::Docker),
        Readiness::Kubernetes => Some(Level::Kubernetes),
        Readiness::Podman => Some(Level::Podman),
    };
    Ok(KernelSpec {
        name: format!("kernel-{}", profile.name),
        board: profile.name.clone(),
        arch: profile.arch.clone(),
        mirror: Mirror {
            url: profile.rootfs.mirror.clone(),
            suite: profile.rootfs.suite.clone(),
            components: profile.rootfs.components.clone(),
            arch: profile.arch.clone(),
            keyring: DEBIAN_KEYRING.into(),
        },
        mode,
        board_package: Some(board_package(profile)),
        readiness,
    })
}

/// Build (or reuse) the kernel artifact of `profile` and export it to `out`.
pub fn build(ctx: &Ctx, profile: &Profile, out: &Path) -> Result<Built> {
    let spec = spec(profile)?;
    let (entry, cached) =
        kernel_packager::builder::build_in_store(spec, &ctx.store).map_err(usage)?;
    super::exported(entry, cached, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpi_spec() {
        let p = crate::profile::load("rpi-arm64").unwrap();
        let s = spec(&p).unwrap();
        assert_eq!(s.name, "kernel-rpi-arm64");
        assert_eq!(s.readiness, Some(Level::Docker));
        assert_eq!(s.mirror.components, ["main", "non-free-firmware"]);
        let Mode::Upstream { packages } = &s.mode else {
            panic!("upstream expected")
        };
        let names: Vec<_> = packages.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["linux-image-arm64", "raspi-firmware"]);
        let bp = s.board_package.unwrap();
        assert_eq!(bp.name, "drydock-kernel-config-rpi-arm64");
        let custom = bp
            .files
            .iter()
            .find(|f| f.path == "/etc/default/raspi-firmware-custom")
            .unwrap();
        assert!(custom.content.contains("arm_64bit=1"));
        let extra = bp
            .files
            .iter()
            .find(|f| f.path == "/etc/default/raspi-extra-cmdline")
            .unwrap();
        assert_eq!(extra.content, "cgroup_enable=memory cgroup_memory=1\n");
        let dtbs = bp.files.iter().find(|f| f.path.ends_with("/dtbs")).unwrap();
        assert!(dtbs.content.contains("broadcom/bcm2711-rpi-4-b.dtb\n"));
    }

    #[test]
    fn unknown_fragment_name_is_usage_error() {
        let e = fragment("nosuchfragment").unwrap_err();
        assert!(e.is::<UsageError>());
        assert!(e.to_string().contains("containers"), "{e}");
        let e = fragment("/nonexistent/x.config").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.config"), "{e}");
        assert_eq!(fragment("containers").unwrap().name, "containers");
    }
}

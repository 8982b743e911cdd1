//! The system stage (artifact kind `system`): the rootfs with the kernel, the container engine,
//! cloud-init and drydock's own packages installed, cleaned, packed as a reproducible tarball.
//!
//! Steps, in a staging tree:
//! 1. unpack the rootfs tarball (owners, modes, xattrs, hard links kept);
//! 2. write fstab and the boot settings (`/etc/default/raspi-firmware*`) *before* the kernel is
//!    installed, so the one initramfs run sees the right root;
//! 3. in the chroot (see [`crate::chroot`]): forbid service starts (policy-rc.d), divert
//!    `update-initramfs` to a no-op, add drydock's signed repository (`signed-by`, never
//!    `trusted=yes`), download with retries, install the kernel .debs and every package with apt;
//! 4. restore `update-initramfs` and run it exactly once per kernel (raspi-firmware's hook then
//!    copies kernel, initrd and device trees to /boot/firmware and writes config.txt/cmdline.txt);
//! 5. direct boot: put `vmlinuz`, `initrd.img` and `cmdline.txt` on the boot partition's tree;
//! 6. clean up: apt lists and caches, logs, build-host traces, SSH host keys, machine-id,
//!    random seeds, policy-rc.d and the build-time repository entry;
//! 7. pack the tree (sorted, mtimes clamped, numeric owners, zstd -T0).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bootcfg::{self, Boot, PartRef};
use crate::chroot::Chroot;
use crate::dpkg::{self, Package};

/// Where drydock's repository is bound inside the chroot, and its apt source line.
pub const REPO_MOUNT: &str = "/srv/drydock-repo";
/// Where the kernel artifact's .debs are bound inside the chroot.
pub const KERNEL_MOUNT: &str = "/srv/drydock-kernel";
/// The repository's public key inside the image.
pub const REPO_KEY: &str = "/etc/apt/keyrings/drydock.asc";
const REPO_LIST: &str = "/etc/apt/sources.list.d/drydock.list";

/// What the system stage installs and how the system is tied to its disk and board. Everything
/// here is in the stage's cache key; nothing per image (hostname, seed, preloads) is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SystemSpec {
    /// Artifact name, e.g. `system-rpi-arm64`.
    pub name: String,
    /// Debian architecture.
    pub arch: String,
    /// Packages from the Debian mirror (container engine, cloud-init, the profile's image-packages).
    pub mirror_packages: Vec<String>,
    /// Packages from drydock's own repository.
    pub repo_packages: Vec<String>,
    /// Suite and component of drydock's repository (`drydock`, `main`).
    pub repo_suite: String,
    pub repo_component: String,
    /// The partitions, with the PARTUUIDs the image will have.
    pub parts: Vec<PartRef>,
    pub boot: Boot,
    /// SOURCE_DATE_EPOCH.
    pub epoch: i64,
}

/// The consumed artifacts, as paths.
#[derive(Debug, Clone)]
pub struct SystemInputs {
    /// The rootfs tarball.
    pub rootfs_tarball: PathBuf,
    /// Folder holding the kernel .debs (the kernel artifact), and their names in it.
    pub kernel_dir: PathBuf,
    pub kernel_debs: Vec<String>,
    /// Root of the signed APT repository (`dists/`, `pool/`).
    pub repo_dir: PathBuf,
    /// Its ASCII-armoured public key.
    pub repo_key: PathBuf,
    /// A persistent folder for downloaded .debs (bound at /var/cache/apt/archives), if any.
    pub apt_cache: Option<PathBuf>,
}

/// What the stage produced, besides the tarball.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SystemReport {
    /// The tarball's file name in the output folder.
    pub tarball: String,
    /// Installed packages (from the tree's dpkg status).
    pub packages: Vec<Package>,
    /// Kernel versions found in /lib/modules.
    pub kernels: Vec<String>,
    /// How often package scripts called update-initramfs during the install (deferred, no-ops).
    pub initramfs_deferred_calls: u32,
    /// Real initramfs generations (one per kernel).
    pub initramfs_runs: u32,
    /// Seconds per step.
    pub timings: Vec<(String, f64)>,
}

/// The policy-rc.d that keeps services from starting in the chroot.
const POLICY_RC_D: &str =
    "#!/bin/sh\n# drydock: no service starts while the image is built\nexit 101\n";

/// The update-initramfs stand-in while packages are installed: counts the calls, does nothing.
const INITRAMFS_NOOP: &str = "#!/bin/sh\n# drydock: deferred; the real update-initramfs runs once after all packages are installed\necho \"update-initramfs $*: deferred by drydock\" >&2\necho x >> /var/lib/drydock-initramfs-deferred\nexit 0\n";

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The install script run in the chroot.
fn install_script(spec: &SystemSpec, kernel_debs: &[String]) -> String {
    let mut pkgs: Vec<String> = kernel_debs
        .iter()
        .map(|d| shell_quote(&format!("{KERNEL_MOUNT}/{d}")))
        .collect();
    pkgs.extend(spec.mirror_packages.iter().map(|p| shell_quote(p)));
    pkgs.extend(spec.repo_packages.iter().map(|p| shell_quote(p)));
    let pkgs = pkgs.join(" ");
    format!(
        r#"set -eu
dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.drydock --add /usr/sbin/update-initramfs
cp /usr/sbin/drydock-initramfs-noop /usr/sbin/update-initramfs
chmod 755 /usr/sbin/update-initramfs
echo "deb [signed-by={REPO_KEY}] file:{REPO_MOUNT} {suite} {component}" > {REPO_LIST}
apt_opts="-o APT::Install-Recommends=false -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Acquire::Retries=3"
try() {{ n=1; until "$@"; do [ $n -ge 3 ] && return 1; echo "retrying in $((n*15)) s: $*" >&2; sleep $((n*15)); n=$((n+1)); done; }}
try apt-get $apt_opts update
# Downloads are retried by apt (Acquire::Retries); a package apt cannot find fails here at once,
# with apt's own message.
apt-get $apt_opts install -y --download-only {pkgs}
apt-get $apt_opts install -y {pkgs}
"#,
        suite = spec.repo_suite,
        component = spec.repo_component,
    )
}

/// Regenerate the initramfs once per installed kernel, with the real update-initramfs.
const INITRAMFS_SCRIPT: &str = r#"set -eu
rm -f /usr/sbin/update-initramfs
dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.drydock --remove /usr/sbin/update-initramfs
test -x /usr/sbin/update-initramfs || { echo "update-initramfs is missing after the install (initramfs-tools not installed?)" >&2; exit 1; }
for v in $(ls /lib/modules); do update-initramfs -c -k "$v"; done
"#;

fn write_file(tree: &Path, path: &str, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = tree.join(path.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // Never write through a symlink the tree holds (it could point at the host).
    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&p).with_context(|| format!("removing symlink {}", p.display()))?;
    }
    std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))?;
    Ok(())
}

fn remove(tree: &Path, rel: &str) -> Result<()> {
    let p = tree.join(rel.trim_start_matches('/'));
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))
        }
        Ok(_) => std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display())),
        Err(_) => Ok(()),
    }
}

/// Empty a folder's contents (keeping the folder).
fn empty_dir(tree: &Path, rel: &str) -> Result<()> {
    let p = tree.join(rel.trim_start_matches('/'));
    let Ok(rd) = std::fs::read_dir(&p) else {
        return Ok(());
    };
    for e in rd {
        let e = e.with_context(|| format!("listing {}", p.display()))?;
        let path = e.path();
        if e.file_type()
            .with_context(|| format!("stat {}", path.display()))?
            .is_dir()
        {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Truncate every regular file under /var/log and remove rotated ones.
fn clean_logs(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let p = e.path();
        let ft = e
            .file_type()
            .with_context(|| format!("stat {}", p.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            clean_logs(&p)?;
        } else if ft.is_file() {
            let rotated = name.ends_with(".gz")
                || name.ends_with(".xz")
                || name
                    .rsplit('.')
                    .next()
                    .is_some_and(|s| s.parse::<u32>().is_ok());
            if rotated {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_len(0))
                    .with_context(|| format!("truncating {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// Remove what the build host and the package installs left that must not be shared by every
/// device made from this image.
pub fn clean_tree(tree: &Path) -> Result<()> {
    // Host traces.
    remove(tree, "etc/resolv.conf")?;
    write_file(tree, "etc/hostname", "localhost\n", 0o644)?;
    // Per-device identity: generated on first boot.
    write_file(tree, "etc/machine-id", "", 0o444)?;
    remove(tree, "var/lib/dbus/machine-id")?;
    remove(tree, "var/lib/systemd/random-seed")?;
    remove(tree, "var/lib/systemd/credential.secret")?;
    if let Ok(rd) = std::fs::read_dir(tree.join("etc/ssh")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    remove(tree, "var/lib/cloud")?;
    // Build-time only.
    remove(tree, "usr/sbin/policy-rc.d")?;
    remove(tree, "usr/sbin/drydock-initramfs-noop")?;
    remove(tree, "var/lib/drydock-initramfs-deferred")?;
    remove(tree, REPO_LIST)?;
    remove(tree, REPO_KEY)?;
    // dpkg keeps the conffiles drydock wrote before their package came (--force-confold) and
    // leaves the package's version beside them.
    remove(tree, "etc/default/raspi-firmware.dpkg-dist")?;
    // Caches and logs. (The persistent download cache was bound over /var/cache/apt/archives
    // during the install; the tree's own folder only holds what was there before.)
    empty_dir(tree, "var/lib/apt/lists")?;
    if let Ok(rd) = std::fs::read_dir(tree.join("var/cache/apt/archives")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(".deb") {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    std::fs::create_dir_all(tree.join("var/lib/apt/lists/partial"))
        .context("creating var/lib/apt/lists/partial")?;
    for rel in [
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/diversions-old",
        "var/cache/ldconfig/aux-cache",
        "root/.bash_history",
        "etc/apt/apt.conf.d/99drydock-build",
    ] {
        remove(tree, rel)?;
    }
    for rel in ["tmp", "var/tmp", "run"] {
        empty_dir(tree, rel)?;
    }
    // The install's own logs go; other logs are emptied (their files may be expected).
    for rel in [
        "var/log/apt",
        "var/log/dpkg.log",
        "var/log/alternatives.log",
        "var/log/bootstrap.log",
        "var/log/cloud-init.log",
        "var/log/cloud-init-output.log",
    ] {
        remove(tree, rel)?;
    }
    std::fs::create_dir_all(tree.join("var/log/apt")).context("creating var/log/apt")?;
    clean_logs(&tree.join("var/log"))?;
    Ok(())
}

/// Install the direct-boot files: `vmlinuz`, `initrd.img` (the newest kernel) and `cmdline.txt` in
/// the boot partition's folder, plus a kernel hook that keeps them current on upgrades.
fn direct_boot(tree: &Path, boot_dir: &str, cmdline: &str) -> Result<()> {
    let kernels = latest_kernel(tree)?;
    let (vmlinuz, initrd) =
        kernels.context("no /boot/vmlinuz-* after installing the kernel packages")?;
    let dir = tree.join(boot_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::copy(&vmlinuz, dir.join("vmlinuz"))
        .with_context(|| format!("copying {}", vmlinuz.display()))?;
    std::fs::copy(&initrd, dir.join("initrd.img"))
        .with_context(|| format!("copying {}", initrd.display()))?;
    write_file(tree, &format!("{boot_dir}/cmdline.txt"), cmdline, 0o644)?;
    let hook = format!(
        "#!/bin/sh\n# drydock: keep the direct-boot kernel and initrd on the boot partition current.\nset -e\nk=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)\n[ -n \"$k\" ] || exit 0\nv=${{k#/boot/vmlinuz-}}\n[ -e /boot/initrd.img-$v ] || exit 0\ncp /boot/vmlinuz-$v {boot_dir}/vmlinuz.new && mv {boot_dir}/vmlinuz.new {boot_dir}/vmlinuz\ncp /boot/initrd.img-$v {boot_dir}/initrd.img.new && mv {boot_dir}/initrd.img.new {boot_dir}/initrd.img\n"
    );
    write_file(
        tree,
        "etc/kernel/postinst.d/zz-drydock-direct-boot",
        &hook,
        0o755,
    )?;
    write_file(
        tree,
        "etc/initramfs/post-update.d/zz-drydock-direct-boot",
        &hook,
        0o755,
    )?;
    Ok(())
}

/// The newest `/boot/vmlinuz-V` with its `/boot/initrd.img-V`.
fn latest_kernel(tree: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    let boot = tree.join("boot");
    let mut versions: Vec<String> = std::fs::read_dir(&boot)
        .with_context(|| format!("listing {}", boot.display()))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .collect();
    versions.sort_by(|a, b| version_cmp(a, b));
    Ok(versions.last().map(|v| {
        (
            boot.join(format!("vmlinuz-{v}")),
            boot.join(format!("initrd.img-{v}")),
        )
    }))
}

/// Compare version strings by their numeric runs (6.12.9 < 6.12.10).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut num = String::new();
        let mut txt = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !txt.is_empty() {
                    out.push((0, std::mem::take(&mut txt)));
                }
                num.push(c);
            } else {
                if !num.is_empty() {
                    out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                    num.clear();
                }
                txt.push(c);
            }
        }
        if !num.is_empty() {
            out.push((num.parse().unwrap_or(u64::MAX), String::new()));
        }
        if !txt.is_empty() {
            out.push((0, txt));
        }
        out
    }
    parts(a).cmp(&parts(b))
}

fn kernels_in(tree: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree.join("lib/modules"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Prepare the unpacked tree for the chroot: a resolv.conf the bind mount can cover, fstab and the
/// boot settings, the repository key, policy-rc.d and the initramfs stand-in.
fn prepare(tree: &Path, spec: &SystemSpec, inputs: &SystemInputs) -> Result<()> {
    for d in ["proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(tree.join(d))
            .with_context(|| format!("creating {}/{d}", tree.display()))?;
    }
    remove(tree, "etc/resolv.conf")?;
    write_file(tree, "etc/resolv.conf", "", 0o644)?;
    write_file(tree, "etc/fstab", &bootcfg::fstab(&spec.parts), 0o644)?;
    let root =
        bootcfg::root_part(&spec.parts).context("the layout has no partition mounted at /")?;
    if let Boot::RpiFirmware { cmdline, .. } = &spec.boot {
        write_file(
            tree,
            "/etc/default/raspi-firmware",
            &bootcfg::raspi_firmware_default(root, cmdline),
            0o644,
        )?;
    }
    for p in &spec.parts {
        if let Some(m) = &p.mount {
            std::fs::create_dir_all(tree.join(m.trim_start_matches('/')))
                .with_context(|| format!("creating mount point {m}"))?;
        }
    }
    let key = std::fs::read_to_string(&inputs.repo_key)
        .with_context(|| format!("reading the repository key {}", inputs.repo_key.display()))?;
    write_file(tree, REPO_KEY, &key, 0o644)?;
    write_file(tree, "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)?;
    write_file(
        tree,
        "usr/sbin/drydock-initramfs-noop",
        INITRAMFS_NOOP,
        0o755,
    )?;
    Ok(())
}

/// Run the system stage: `work` is an empty scratch folder (the tree is built in it), `out` the
/// artifact's staging folder (the tarball is written there). Progress goes to `step`.
pub fn build(
    spec: &SystemSpec,
    inputs: &SystemInputs,
    work: &Path,
    out: &Path,
    step: &dyn Fn(&str),
) -> Result<SystemReport> {
    if !inputs.rootfs_tarball.is_file() {
        bail!(
            "rootfs tarball {} is missing",
            inputs.rootfs_tarball.display()
        );
    }
    for d in &inputs.kernel_debs {
        if !inputs.kernel_dir.join(d).is_file() {
            bail!(
                "kernel package {} is missing",
                inputs.kernel_dir.join(d).display()
            );
        }
    }
    if !inputs
        .repo_dir
        .join("dists")
        .join(&spec.repo_suite)
        .is_dir()
    {
        bail!(
            "{} is not an APT repository with suite {}",
            inputs.repo_dir.display(),
            spec.repo_suite
        );
    }
    let mut timings: Vec<(String, f64)> = Vec::new();
    fn timed(timings: &mut Vec<(String, f64)>, name: &str, t: Instant) {
        timings.push((name.to_string(), t.elapsed().as_secs_f64()));
    }
    let tree = work.join("tree");
    let t = Instant::now();
    step("unpacking the rootfs");
    crate::tarball::unpack(&inputs.rootfs_tarball, &tree)?;
    timed(&mut timings, "unpack", t);
    prepare(&tree, spec, inputs)?;

    let mut ch = Chroot::new(&tree)?;
    ch.bind(&inputs.repo_dir, REPO_MOUNT, true)?;
    ch.bind(&inputs.kernel_dir, KERNEL_MOUNT, true)?;
    ch.bind(Path::new("/etc/resolv.conf"), "/etc/resolv.conf", true)?;
    if let Some(cache) = &inputs.apt_cache {
        std::fs::create_dir_all(cache.join("partial"))
            .with_context(|| format!("creating {}", cache.display()))?;
        ch.bind(cache, "/var/cache/apt/archives", false)?;
    }
    ch.env("SOURCE_DATE_EPOCH", &spec.epoch.to_string());
    for k in ["http_proxy", "https_proxy", "no_proxy"] {
        if let Ok(v) = std::env::var(k) {
            ch.env(k, &v);
        }
    }
    let t = Instant::now();
    step("installing packages (qemu-user chroot)");
    ch.run(
        "installing the kernel, container engine and packages",
        &install_script(spec, &inputs.kernel_debs),
    )?;
    timed(&mut timings, "install", t);
    let deferred = std::fs::read_to_string(tree.join("var/lib/drydock-initramfs-deferred"))
        .map(|s| s.lines().count() as u32)
        .unwrap_or(0);
    let kernels = kernels_in(&tree);
    if kernels.is_empty() {
        bail!(
            "no kernel in /lib/modules after installing {}",
            inputs.kernel_debs.join(", ")
        );
    }
    let t = Instant::now();
    step("generating the initramfs (once)");
    ch.run("generating the initramfs", INITRAMFS_SCRIPT)?;
    timed(&mut timings, "initramfs", t);
    tracing::info!(
        "update-initramfs: {deferred} calls during the install deferred, {} real run(s) in {:.0} s",
        kernels.len(),
        timings.last().map(|t| t.1).unwrap_or(0.0)
    );
    ch.close()?;

    if let Boot::Direct { cmdline } = &spec.boot {
        let root =
            bootcfg::root_part(&spec.parts).context("the layout has no partition mounted at /")?;
        let boot_dir = spec
            .parts
            .iter()
            .filter_map(|p| p.mount.as_deref())
            .find(|m| *m != "/")
            .context("direct boot needs a boot partition (a partition mounted besides /)")?;
        direct_boot(&tree, boot_dir, &bootcfg::direct_cmdline(root, cmdline))?;
    }
    clean_tree(&tree)?;
    let status_path = tree.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path)
        .with_context(|| format!("reading {}", status_path.display()))?;
    let packages = dpkg::parse_status(&status).map_err(anyhow::Error::msg)?;

    let tarball = format!("{}.tar.zst", spec.name);
    let t = Instant::now();
    step("packing the system tarball");
    crate::tarball::pack(&tree, &out.join(&tarball), spec.epoch)?;
    timed(&mut timings, "pack", t);
    Ok(SystemReport {
        tarball,
        packages,
        kernels: kernels.clone(),
        initramfs_deferred_calls: deferred,
        initramfs_runs: kernels.len() as u32,
        timings,
    })
}

/// Human duration for logs.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec!["6.12.10-arm64", "6.12.9-arm64", "6.1.0-arm64"];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v, ["6.1.0-arm64", "6.12.9-arm64", "6.12.10-arm64"]);
    }

    #[test]
    fn install_script_quotes_and_uses_signed_by() {
        let spec = SystemSpec {
            name: "system-x".into(),
            arch: "arm64".into(),
            mirror_packages: vec!["docker.io".into(), "cloud-init".into()],
            repo_packages: vec!["drydock-firstboot".into()],
            repo_suite: "drydock".into(),
            repo_component: "main".into(),
            parts: vec![],
            boot: Boot::Direct { cmdline: vec![] },
            epoch: 0,
        };
        let s = install_script(&spec, &["linux-image_1_arm64.deb".into()]);
        assert!(s.contains(
            "deb [signed-by=/etc/apt/keyrings/drydock.asc] file:/srv/drydock-repo drydock main"
        ));
        assert!(!s.contains("trusted=yes"));
        assert!(s.contains("'/srv/drydock-kernel/linux-image_1_arm64.deb' 'docker.io' 'cloud-init' 'drydock-firstboot'"));
        assert!(s.contains("--divert /usr/sbin/update-initramfs.drydock --add"));
    }

    #[test]
    fn clean_tree_removes_identity_and_traces() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        for (p, c) in [
            ("etc/ssh/ssh_host_ed25519_key", "k"),
            ("etc/ssh/ssh_host_ed25519_key.pub", "k"),
            ("etc/ssh/sshd_config", "keep"),
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            ("var/lib/dbus/machine-id", "0123"),
            ("var/log/apt/history.log", "lots"),
            ("var/log/dpkg.log.1", "old"),
            ("var/log/syslog", "kept, emptied"),
            (
                "var/lib/apt/lists/deb.debian.org_dists_trixie_InRelease",
                "x",
            ),
            ("etc/resolv.conf", "nameserver 10.0.0.1\n"),
            ("etc/hostname", "buildhost\n"),
            ("usr/sbin/policy-rc.d", "exit 101"),
            ("var/lib/systemd/random-seed", "r"),
            ("tmp/junk", "j"),
        ] {
            std::fs::create_dir_all(t.join(p).parent().unwrap()).unwrap();
            std::fs::write(t.join(p), c).unwrap();
        }
        clean_tree(t).unwrap();
        assert!(!t.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(!t.join("etc/ssh/ssh_host_ed25519_key.pub").exists());
        assert!(t.join("etc/ssh/sshd_config").exists());
        assert_eq!(std::fs::read(t.join("etc/machine-id")).unwrap(), b"");
        assert!(!t.join("var/lib/dbus/machine-id").exists());
        assert!(!t.join("var/log/apt/history.log").exists());
        assert!(t.join("var/log/apt").is_dir());
        assert!(!t.join("var/log/dpkg.log.1").exists());
        assert_eq!(std::fs::read(t.join("var/log/syslog")).unwrap(), b"");
        assert!(t.join("var/lib/apt/lists/partial").is_dir());
        assert_eq!(
            std::fs::read_dir(t.join("var/lib/apt/lists"))
                .unwrap()
                .count(),
            1
        );
        assert!(!t.join("etc/resolv.conf").exists());
        assert_eq!(
            std::fs::read_to_string(t.join("etc/hostname")).unwrap(),
            "localhost\n"
        );
        assert!(!t.join("usr/sbin/policy-rc.d").exists());
        assert!(!t.join("var/lib/systemd/random-seed").exists());
        assert!(!t.join("tmp/junk").exists());
    }
}

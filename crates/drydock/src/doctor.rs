//! `drydock doctor`: which host tools a build needs, which are missing, and the apt command that
//! installs them. `drydock build` runs the same check before any long work starts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::DoctorArgs;
use crate::profile::{self, KernelMode, Profile};

/// One host tool: the program looked up on PATH and the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    pub purpose: &'static str,
}

const fn t(program: &'static str, package: &'static str, purpose: &'static str) -> Tool {
    Tool {
        program,
        package,
        purpose,
    }
}

/// Tools every build needs.
const BASE: &[Tool] = &[
    t("mmdebstrap", "mmdebstrap", "builds the root filesystem"),
    t(
        "curl",
        "curl",
        "fetches the suite's InRelease (the mirror state in the rootfs cache key)",
    ),
    t("mke2fs", "e2fsprogs", "makes ext4 filesystems from trees"),
    t(
        "debugfs",
        "e2fsprogs",
        "reads ext4 filesystems without mounting",
    ),
    t("mkfs.vfat", "dosfstools", "makes FAT filesystems"),
    t("fsck.vfat", "dosfstools", "checks FAT filesystems"),
    t("mcopy", "mtools", "copies files into FAT filesystems"),
    t("sfdisk", "fdisk", "reads partition tables in tests"),
    t("gpg", "gpg", "signs the APT repository"),
    t("gpgv", "gpgv", "verifies Debian's signed Release files"),
    t("dpkg-deb", "dpkg", "reads and checks .deb packages"),
    t("zstd", "zstd", "compresses images"),
    t("xz", "xz-utils", "compresses images"),
];

/// Tools a `source` kernel build needs.
const KERNEL_SOURCE: &[Tool] = &[
    t("make", "make", "runs the kernel build"),
    t("bc", "bc", "kernel build"),
    t("bison", "bison", "kernel build"),
    t("flex", "flex", "kernel build"),
    t("cpio", "cpio", "kernel build"),
    t("rsync", "rsync", "kernel headers package"),
    t("dpkg-buildpackage", "dpkg-dev", "make bindeb-pkg"),
    t(
        "dh_listpackages",
        "debhelper",
        "make bindeb-pkg (debian/rules)",
    ),
];

/// Tools `drydock boot-test` needs.
const BOOT_TEST: &[Tool] = &[
    t(
        "qemu-system-aarch64",
        "qemu-system-arm",
        "boots arm64 images",
    ),
    t("ssh", "openssh-client", "checks the booted image"),
    t("ssh-keygen", "openssh-client", "makes the test key"),
    t(
        "blkid",
        "util-linux",
        "identifies file systems for drydock test",
    ),
    t(
        "dumpe2fs",
        "e2fsprogs",
        "reads ext4 superblocks for drydock test",
    ),
    t(
        "apt-get",
        "apt",
        "fetches busybox-static for the boot-test container",
    ),
];

/// qemu-user binary and binfmt entry name for a foreign Debian arch.
pub fn qemu_user(arch: &str) -> Option<(&'static str, &'static str)> {
    match arch {
        "arm64" => Some(("qemu-aarch64-static", "qemu-aarch64")),
        "armhf" => Some(("qemu-arm-static", "qemu-arm")),
        _ => None,
    }
}

fn cross_gcc(arch: &str) -> Option<(&'static str, &'static str)> {
    match arch {
        "arm64" => Some(("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")),
        "armhf" => Some(("arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf")),
        _ => None,
    }
}

/// The Debian architecture of this host.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        other => other,
    }
}

/// A finding of the doctor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// Debian package that fixes it.
    pub package: Option<String>,
    /// A fix that is not an apt install.
    pub fix: Option<String>,
}

/// Everything the doctor found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// The apt command installing every missing package, if any.
    pub fn apt_command(&self) -> Option<String> {
        let mut pkgs: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| !f.ok)
            .filter_map(|f| f.package.as_deref())
            .collect();
        pkgs.sort();
        pkgs.dedup();
        (!pkgs.is_empty()).then(|| format!("apt-get install -y {}", pkgs.join(" ")))
    }

    /// A one-paragraph summary for errors.
    pub fn summary(&self) -> String {
        let missing: Vec<String> = self
            .findings
            .iter()
            .filter(|f| !f.ok)
            .map(|f| format!("{} ({})", f.what, f.detail))
            .collect();
        let mut s = format!("missing: {}", missing.join(", "));
        if let Some(c) = self.apt_command() {
            s.push_str(&format!("; install with: {c}"));
        }
        for f in self.findings.iter().filter(|f| !f.ok) {
            if let Some(fix) = &f.fix {
                s.push_str(&format!("; {fix}"));
            }
        }
        s
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub boot_test: bool,
    /// Minimum free bytes in the cache folder.
    pub min_free: u64,
}

/// Check the host for a profile.
pub fn check(p: &Profile, needs: &Needs, cache_dir: &Path) -> Report {
    let mut r = Report::default();
    let mut tools: Vec<Tool> = BASE.to_vec();
    if p.kernel.mode == KernelMode::Source {
        tools.extend_from_slice(KERNEL_SOURCE);
    }
    if needs.boot_test {
        tools.extend_from_slice(BOOT_TEST);
    }
    for tool in &tools {
        let found = artifact::cmd::which(tool.program);
        r.findings.push(Finding {
            what: tool.program.to_string(),
            ok: found.is_some(),
            detail: match &found {
                Some(p) => p.display().to_string(),
                None => format!("not found; {}", tool.purpose),
            },
            package: Some(tool.package.to_string()),
            fix: None,
        });
    }
    if p.kernel.mode == KernelMode::Source && host_arch() != p.arch {
        if let Some((gcc, pkg)) = cross_gcc(&p.arch) {
            let found = artifact::cmd::which(gcc);
            r.findings.push(Finding {
                what: gcc.to_string(),
                ok: found.is_some(),
                detail: found
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "not found; cross-compiles the kernel".into()),
                package: Some(pkg.into()),
                fix: None,
            });
        }
    }
    if host_arch() != p.arch {
        if let Some((qemu, binfmt)) = qemu_user(&p.arch) {
            let found = artifact::cmd::which(qemu);
            r.findings.push(Finding {
                what: qemu.to_string(),
                ok: found.is_some(),
                detail: found.map(|p| p.display().to_string()).unwrap_or_else(|| {
                    format!("not found; runs {} programs in the rootfs", p.arch)
                }),
                package: Some("qemu-user-static".into()),
                fix: None,
            });
            let entry = PathBuf::from("/proc/sys/fs/binfmt_misc").join(binfmt);
            let enabled = std::fs::read_to_string(&entry)
                .map(|s| s.lines().next() == Some("enabled"))
                .unwrap_or(false);
            r.findings.push(Finding {
                what: format!("binfmt {binfmt}"),
                ok: enabled,
                detail: if enabled {
                    format!("{} enabled", entry.display())
                } else {
                    format!("{} is not registered or not enabled", entry.display())
                },
                package: Some("binfmt-support".into()),
                fix: (!enabled).then(|| {
                    if std::path::Path::new("/proc/sys/fs/binfmt_misc/status").exists() {
                        format!("then: update-binfmts --enable {binfmt}")
                    } else {
                        format!(
                            "then: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable {binfmt}"
                        )
                    }
                }),
            });
        }
    }
    if needs.min_free > 0 {
        let probe = existing_ancestor(cache_dir);
        match nix::sys::statvfs::statvfs(&probe) {
            Ok(st) => {
                let free = st.blocks_available() as u64 * st.fragment_size() as u64;
                r.findings.push(Finding {
                    what: "free disk".into(),
                    ok: free >= needs.min_free,
                    detail: format!(
                        "{} free at {} (need {})",
                        crate::cache_cmd_human(free),
                        probe.display(),
                        crate::cache_cmd_human(needs.min_free)
                    ),
                    package: None,
                    fix: (free < needs.min_free).then(|| {
                        "free some space or point --cache-dir elsewhere; `drydock cache gc` removes old artifacts".to_string()
                    }),
                });
            }
            Err(e) => r.findings.push(Finding {
                what: "free disk".into(),
                ok: false,
                detail: format!("statvfs {}: {e}", probe.display()),
                package: None,
                fix: None,
            }),
        }
    }
    r
}

fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors()
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `drydock doctor`.
pub fn run(a: &DoctorArgs, cache_dir: Option<PathBuf>) -> Result<ExitCode> {
    let p = profile::load(&a.board)?;
    let cache = cache_dir.unwrap_or_else(artifact::Store::default_root);
    let needs = Needs {
        boot_test: a.boot_test,
        min_free: 8 << 30,
    };
    let r = check(&p, &needs, &cache);
    println!(
        "host check for board {} ({} on {}):",
        p.name,
        p.arch,
        host_arch()
    );
    for f in &r.findings {
        println!(
            "  [{}] {:<24} {}",
            if f.ok { " ok " } else { "MISS" },
            f.what,
            f.detail
        );
    }
    if r.ok() {
        println!("everything a build of {} needs is here.", p.name);
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    if let Some(c) = r.apt_command() {
        println!("install what is missing with:\n  {c}");
    }
    for f in r.findings.iter().filter(|f| !f.ok) {
        if let Some(fix) = &f.fix {
            println!("  {fix}");
        }
    }
    Ok(ExitCode::FAILURE)
}

//! `source` mode: cross-compile a kernel tree with a base config plus fragments and package it
//! with `make bindeb-pkg`.
//!
//! Steps: `make O=BUILD <defconfig>`; append the fragments to `BUILD/.config`; `make olddefconfig`;
//! read the resolved `.config` and compare it with the fragments (an option no Kconfig defines is a
//! warning, a value Kconfig dropped is an error naming it); `make` (parallel); `make bindeb-pkg`.
//! The build is out of tree (`O=`), so a user's tree is never written to.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{check_fragments, FragmentCheck, KernelConfig};
use crate::spec::Fragment;
use crate::{Error, IoContext, Result};

/// The `ARCH=` and `CROSS_COMPILE=` of a Debian architecture, and the cross compiler's package.
pub fn cross(arch: &str) -> Result<(&'static str, &'static str, &'static str)> {
    match arch {
        "arm64" => Ok(("arm64", "aarch64-linux-gnu-", "gcc-aarch64-linux-gnu")),
        "armhf" => Ok(("arm", "arm-linux-gnueabihf-", "gcc-arm-linux-gnueabihf")),
        "amd64" => Ok(("x86", "x86_64-linux-gnu-", "gcc-x86-64-linux-gnu")),
        other => Err(Error::BadInput(format!(
            "source builds do not know the cross compiler for arch {other:?} (arm64, armhf, amd64)"
        ))),
    }
}

/// Check that `tree` looks like a kernel source tree.
pub fn check_tree(tree: &Path) -> Result<()> {
    if !tree.exists() {
        return Err(Error::BadInput(format!(
            "kernel tree {}: no such folder",
            tree.display()
        )));
    }
    for f in ["Makefile", "Kconfig", "scripts/kconfig"] {
        if !tree.join(f).exists() {
            return Err(Error::BadInput(format!(
                "kernel tree {}: no {f}; is this a Linux source tree?",
                tree.display()
            )));
        }
    }
    Ok(())
}

/// Every Kconfig symbol a tree defines (`config X` / `menuconfig X` in any `Kconfig*` file).
pub fn kconfig_symbols(tree: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))?;
        for e in rd {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let ft = e
                .file_type()
                .ctx(|| format!("stat {}", e.path().display()))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                if name != ".git" {
                    stack.push(e.path());
                }
            } else if ft.is_file() && name.starts_with("Kconfig") {
                let text =
                    std::fs::read(e.path()).ctx(|| format!("reading {}", e.path().display()))?;
                for line in String::from_utf8_lossy(&text).lines() {
                    let l = line.trim_start();
                    let rest = l
                        .strip_prefix("config ")
                        .or_else(|| l.strip_prefix("menuconfig "));
                    if let Some(sym) = rest.map(str::trim) {
                        if !sym.is_empty()
                            && sym.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            out.insert(sym.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A fingerprint of a tree on disk for the cache key: every file's path, size and mtime (not its
/// contents: hashing a 1.5 GB tree on each run would cost more than it saves).
pub fn tree_fingerprint(tree: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
            let e = e.ctx(|| format!("listing {}", dir.display()))?;
            let md = e
                .path()
                .symlink_metadata()
                .ctx(|| format!("stat {}", e.path().display()))?;
            if md.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(e.path());
                }
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(tree)
                .unwrap_or(&e.path())
                .to_string_lossy()
                .into_owned();
            entries.push(format!("{rel}\0{}\0{}", md.len(), md.mtime()));
        }
    }
    entries.sort();
    let mut h = Sha256::new();
    for e in &entries {
        h.update(e.as_bytes());
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// Unpack Debian's `linux-source-X` package (its `/usr/src/linux-source-X.tar.xz`) into `dest`
/// (which must not exist; it is created through a temporary folder beside it and renamed, so a
/// killed extraction leaves nothing that looks complete). Returns the tree folder inside `dest`.
pub fn unpack_linux_source(deb: &Path, dest: &Path) -> Result<PathBuf> {
    if !dest.exists() {
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-tree-")
            .tempdir_in(parent)
            .ctx(|| format!("creating a temporary folder in {}", parent.display()))?;
        tracing::info!("unpacking the kernel source of {}", deb.display());
        let mut reader = deb_repo::deb::DebReader::open(deb).map_err(|e| Error::Deb {
            path: deb.display().to_string(),
            message: e.to_string(),
        })?;
        let mut found = false;
        reader
            .for_each_data_entry(|e, r| {
                if e.path.starts_with("/usr/src/linux-source-") && e.path.ends_with(".tar.xz") {
                    let mut ar = tar::Archive::new(xz2::read::XzDecoder::new(
                        std::io::BufReader::with_capacity(1 << 20, r),
                    ));
                    ar.set_preserve_mtime(true);
                    ar.unpack(tmp.path())?;
                    found = true;
                    return Ok(false);
                }
                Ok(true)
            })
            .map_err(|e| Error::Deb {
                path: deb.display().to_string(),
                message: format!("unpacking the kernel source: {e}"),
            })?;
        if !found {
            return Err(Error::Deb {
                path: deb.display().to_string(),
                message: "holds no /usr/src/linux-source-*.tar.xz; is it a linux-source package?"
                    .into(),
            });
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, dest).ctx(|| format!("renaming into {}", dest.display()))?;
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dest)
        .ctx(|| format!("listing {}", dest.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match subdirs.len() {
        1 => Ok(subdirs.remove(0)),
        _ => Err(Error::Deb {
            path: deb.display().to_string(),
            message: format!(
                "expected one kernel tree in its tarball, found {} folders in {}",
                subdirs.len(),
                dest.display()
            ),
        }),
    }
}

/// A configured and (optionally) built kernel.
#[derive(Debug)]
pub struct Configured {
    /// The resolved `.config`.
    pub config: KernelConfig,
    pub config_text: String,
    pub fragments: FragmentCheck,
}

/// Runs `make` in one tree with one object folder and fixed variables.
#[derive(Debug, Clone)]
pub struct Make {
    pub tree: PathBuf,
    pub obj: PathBuf,
    pub arch: String,
    pub cross_compile: String,
    pub localversion: String,
    pub jobs: usize,
}

impl Make {
    fn cmd(&self, targets: &[&str], extra: &[String]) -> Command {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&self.tree)
            .arg(format!("O={}", self.obj.display()))
            .arg(format!("ARCH={}", self.arch))
            .arg(format!("CROSS_COMPILE={}", self.cross_compile))
            .arg(format!("LOCALVERSION={}", self.localversion))
            .arg(format!("-j{}", self.jobs.max(1)))
            .args(extra)
            .args(targets)
            .env("KBUILD_BUILD_USER", "drydock")
            .env("KBUILD_BUILD_HOST", "drydock");
        if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
            c.env("KBUILD_BUILD_TIMESTAMP", format!("@{epoch}"));
        }
        c
    }

    /// Run targets (output streamed to the log at debug level).
    pub fn run(&self, targets: &[&str], extra: &[String]) -> Result<()> {
        artifact::cmd::run_logged(&mut self.cmd(targets, extra))?;
        Ok(())
    }

    /// `make -s kernelversion`.
    pub fn kernel_version(&self) -> Result<String> {
        let mut c = Command::new("make");
        c.arg("-s").arg("-C").arg(&self.tree).arg("kernelversion");
        Ok(artifact::cmd::run(&mut c)?.stdout_str().trim().to_string())
    }

    /// The kernel release of the configured build (`include/config/kernel.release`).
    pub fn kernel_release(&self) -> Result<String> {
        let p = self.obj.join("include/config/kernel.release");
        Ok(std::fs::read_to_string(&p)
            .ctx(|| format!("reading {}", p.display()))?
            .trim()
            .to_string())
    }

    /// Base config, fragments appended, `olddefconfig`; then the resolved config is compared
    /// with the fragments. Dropped values are an error naming each; unknown options warnings.
    pub fn configure(&self, defconfig: &str, fragments: &[Fragment]) -> Result<Configured> {
        let parsed: Vec<(String, KernelConfig)> = fragments
            .iter()
            .map(|f| {
                Ok((
                    f.name.clone(),
                    KernelConfig::parse_fragment(&f.text, &f.name)?,
                ))
            })
            .collect::<Result<_>>()?;
        std::fs::create_dir_all(&self.obj).ctx(|| format!("creating {}", self.obj.display()))?;
        self.run(&[defconfig], &[]).map_err(|e| match e {
            Error::Command(c) if c.stderr_tail().contains("No rule to make target") => {
                Error::BadInput(format!(
                    "base config {defconfig:?} is not a config target of {} for ARCH={}",
                    self.tree.display(),
                    self.arch
                ))
            }
            other => other,
        })?;
        let cfg_path = self.obj.join(".config");
        let mut text =
            std::fs::read_to_string(&cfg_path).ctx(|| format!("reading {}", cfg_path.display()))?;
        for f in fragments {
            text.push_str(&format!("\n# drydock fragment: {}\n", f.name));
            text.push_str(&f.text);
            text.push('\n');
        }
        std::fs::write(&cfg_path, &text).ctx(|| format!("writing {}", cfg_path.display()))?;
        self.run(&["olddefconfig"], &[])?;
        let mut resolved_text = String::new();
        std::fs::File::open(&cfg_path)
            .and_then(|mut f| f.read_to_string(&mut resolved_text))
            .ctx(|| format!("reading {}", cfg_path.display()))?;
        let resolved = KernelConfig::parse(&resolved_text, &cfg_path.display().to_string())?;
        let check = if parsed.is_empty() {
            FragmentCheck::default()
        } else {
            let symbols = kconfig_symbols(&self.tree)?;
            check_fragments(&parsed, &resolved, |n| symbols.contains(n))
        };
        for w in &check.unknown {
            tracing::warn!(
                "{}:{}: CONFIG_{} is not a Kconfig option of this kernel; ignored",
                w.fragment,
                w.line,
                crate::config::short_name(&w.option)
            );
        }
        if !check.dropped.is_empty() {
            return Err(Error::FragmentDropped {
                issues: check.dropped.iter().map(|i| i.to_string()).collect(),
            });
        }
        Ok(Configured {
            config: resolved,
            config_text: resolved_text,
            fragments: check,
        })
    }

    /// Compile and package: `make`, then `make bindeb-pkg` (no build-dependency check: the cross
    /// toolchain is the host's). Returns the `.deb`s, written beside the object folder.
    pub fn build_debs(&self, pkgversion: &str) -> Result<Vec<PathBuf>> {
        self.run(&[], &[])?;
        self.run(
            &["bindeb-pkg"],
            &[
                format!("KDEB_PKGVERSION={pkgversion}"),
                "DPKG_FLAGS=-d".to_string(),
            ],
        )?;
        let parent = self.obj.parent().unwrap_or(Path::new("."));
        let mut debs: Vec<PathBuf> = std::fs::read_dir(parent)
            .ctx(|| format!("listing {}", parent.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        if debs.is_empty() {
            return Err(Error::BadInput(format!(
                "make bindeb-pkg wrote no .deb beside {}",
                self.obj.display()
            )));
        }
        Ok(debs)
    }
}

/// The package version of a source build: the kernel version plus board and fragments, e.g.
/// `6.12.107+drydock.rpi-arm64.containers-1`.
pub fn package_version(kernel_version: &str, board: &str, fragments: &[Fragment]) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '.'
                }
            })
            .collect()
    };
    let mut v = format!("{}+drydock.{}", clean(kernel_version), clean(board));
    for f in fragments {
        v.push('.');
        v.push_str(&clean(&f.name));
    }
    v.push_str("-1");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_board_and_fragments() {
        let f = |n: &str| Fragment {
            name: n.into(),
            text: String::new(),
        };
        let v = package_version("6.12.107", "rpi-arm64", &[f("containers"), f("My_Extra")]);
        assert_eq!(v, "6.12.107+drydock.rpi-arm64.containers.my.extra-1");
        deb_repo::control::validate_version(&v).unwrap();
    }

    #[test]
    fn missing_tree_is_clear() {
        let d = tempfile::tempdir().unwrap();
        let e = check_tree(&d.path().join("linux")).unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("no such folder"), "{e}");
        let e = check_tree(d.path()).unwrap_err();
        assert!(e.to_string().contains("no Makefile"), "{e}");
    }

    #[test]
    fn kconfig_symbols_are_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net/x")).unwrap();
        std::fs::write(
            d.path().join("Kconfig"),
            "mainmenu \"x\"\nconfig FOO\n\tbool \"foo\"\nmenuconfig BAR\n\ttristate\n\thelp\n\t  config words in help\n",
        )
        .unwrap();
        std::fs::write(d.path().join("net/x/Kconfig.debug"), "  config BAZ_2\n").unwrap();
        std::fs::write(d.path().join("net/x/Makefile"), "config NOT_ME\n").unwrap();
        let s = kconfig_symbols(d.path()).unwrap();
        let v: Vec<_> = s.iter().map(String::as_str).collect();
        assert_eq!(v, ["BAR", "BAZ_2", "FOO"]);
    }
}

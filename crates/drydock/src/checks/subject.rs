//! The image under test: its profile, disk, the boot and root file systems, the installed package
//! list and the bundle files beside it, read once and shared by every check generator.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::checks::image::{read_follow, Disk, FsRead, Part};
use crate::profile::{FsKind, Partition, Profile};

/// A partition with its file system opened.
pub struct Mounted<'a> {
    pub part: Part,
    pub spec: Partition,
    pub fs: Box<dyn FsRead + 'a>,
}

/// One package of the image's dpkg status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub status: String,
}

impl Pkg {
    pub fn installed(&self) -> bool {
        self.status == "install ok installed"
    }
}

/// Facts about the machine that built (or tests) the image, to detect leaked build-host state.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub resolv_conf: String,
}

impl HostFacts {
    pub fn read() -> HostFacts {
        HostFacts {
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_string(),
            resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        }
    }
}

/// The bundle files found beside the image.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub image: PathBuf,
    pub dir: PathBuf,
    /// `manifest.json`, parsed (or the parse error).
    pub manifest: Option<Result<serde_json::Value, String>>,
    /// `*.spdx.json`: path and parsed content (or the parse error).
    pub sbom: Option<(PathBuf, Result<serde_json::Value, String>)>,
    pub sha256sums: Option<PathBuf>,
    pub bmap: Option<PathBuf>,
}

/// The image under test.
pub struct Subject<'a> {
    pub profile: &'a Profile,
    pub disk: &'a dyn Disk,
    /// Each profile partition with the table entry at the same position (if any).
    pub parts: Vec<(Partition, Option<Part>)>,
    pub boot: Option<Mounted<'a>>,
    pub root: Option<Mounted<'a>>,
    /// The root file system's dpkg status, or why it could not be read.
    pub dpkg: Result<BTreeMap<String, Pkg>, String>,
    pub bundle: Option<Bundle>,
    pub host: HostFacts,
}

fn fs_name(k: FsKind) -> &'static str {
    match k {
        FsKind::Fat32 => "vfat",
        FsKind::Ext4 => "ext4",
        FsKind::None => "",
    }
}

impl<'a> Subject<'a> {
    /// Pair the profile's partitions with the table's (by position) and open the boot and root
    /// file systems.
    pub fn open(
        profile: &'a Profile,
        disk: &'a dyn Disk,
        bundle: Option<Bundle>,
        host: HostFacts,
    ) -> Subject<'a> {
        let mut table_parts = disk.table().parts.clone();
        table_parts.sort_by_key(|p| p.index);
        let parts: Vec<(Partition, Option<Part>)> = profile
            .layout
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), table_parts.get(i).cloned()))
            .collect();
        let open = |pred: &dyn Fn(&Partition) -> bool| -> Option<Mounted<'a>> {
            let (spec, part) = parts.iter().find(|(s, _)| pred(s))?;
            let part = part.clone()?;
            let fs = disk.fs(&part, fs_name(spec.fs)).ok()?;
            Some(Mounted {
                part,
                spec: spec.clone(),
                fs,
            })
        };
        let root = open(&|s: &Partition| s.mount.as_deref() == Some("/"));
        let boot = open(&|s: &Partition| {
            s.fs == FsKind::Fat32
                && (s.mount.as_deref().is_some_and(|m| m.starts_with("/boot")) || s.name == "boot")
        });
        let dpkg = match &root {
            Some(r) => read_dpkg_status(r.fs.as_ref()),
            None => Err("no root file system to read /var/lib/dpkg/status from".into()),
        };
        Subject {
            profile,
            disk,
            parts,
            boot,
            root,
            dpkg,
            bundle,
            host,
        }
    }

    /// The mount point of the boot partition in the running system.
    pub fn boot_mount(&self) -> String {
        self.boot
            .as_ref()
            .and_then(|b| b.spec.mount.clone())
            .unwrap_or_else(|| "/boot/firmware".into())
    }

    /// A package from dpkg status, when installed.
    pub fn installed(&self, name: &str) -> Option<&Pkg> {
        self.dpkg.as_ref().ok()?.get(name).filter(|p| p.installed())
    }
}

/// Read a text file of a file system (following symlinks): `Ok(None)` when absent, `Err` with the
/// reason when it cannot be read.
pub fn text(fs: &dyn FsRead, path: &str) -> Result<Option<String>, String> {
    match read_follow(fs, path) {
        Ok(Some(b)) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("cannot read {path}: {e:#}")),
    }
}

/// Parse dpkg's status file (deb822 stanzas) into packages by name.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, Pkg> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in stanza.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        if let Some(name) = fields.get("Package") {
            out.insert(
                name.to_string(),
                Pkg {
                    name: name.to_string(),
                    version: fields.get("Version").unwrap_or(&"").to_string(),
                    arch: fields.get("Architecture").unwrap_or(&"").to_string(),
                    status: fields.get("Status").unwrap_or(&"").to_string(),
                },
            );
        }
    }
    out
}

fn read_dpkg_status(fs: &dyn FsRead) -> Result<BTreeMap<String, Pkg>, String> {
    match text(fs, "/var/lib/dpkg/status")? {
        Some(t) => {
            let pkgs = parse_dpkg_status(&t);
            if pkgs.is_empty() {
                Err("/var/lib/dpkg/status lists no packages".into())
            } else {
                Ok(pkgs)
            }
        }
        None => Err("/var/lib/dpkg/status is missing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parses() {
        let s = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: arm64\nDescription: x\n more\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n";
        let p = parse_dpkg_status(s);
        assert_eq!(p.len(), 2);
        assert!(p["a"].installed());
        assert_eq!(p["a"].version, "1.0");
        assert!(!p["b"].installed());
    }
}

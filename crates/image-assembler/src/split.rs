//! Splitting an assembled root tree into one tree per partition, by the layout's mount points.
//!
//! Everything under a partition's mount point (e.g. `/boot/firmware`) is moved (renamed, so it
//! costs nothing) out of the root tree into its own folder; an empty folder with the same mode,
//! owner and times stays behind as the mount point.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use artifact::IoContext;

/// A partition that receives a tree: its name in the layout and where the running system mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    pub partition: String,
    /// Absolute path: `/`, `/boot/firmware`, `/data`.
    pub mount: String,
}

/// Split `tree` (the whole system, root at `tree`) into per-partition trees. Non-root mounts are
/// moved to `into/<partition>`; the root mount keeps `tree`. Deeper mounts are taken out first, so
/// `/boot/firmware` goes to its own partition even when `/boot` is a mount too. A mount point that
/// does not exist in the tree gives an empty tree. Returns `(partition, folder)` in the order of
/// `mounts`.
pub fn split_by_mounts(
    tree: &Path,
    mounts: &[MountPoint],
    into: &Path,
) -> artifact::Result<Vec<(String, PathBuf)>> {
    for m in mounts {
        if !m.mount.starts_with('/') || m.mount.split('/').any(|c| c == "..") {
            return Err(artifact::Error::Corrupt {
                path: m.mount.clone(),
                message: format!(
                    "mount point of partition {} must be an absolute path without `..`",
                    m.partition
                ),
            });
        }
    }
    let mut order: Vec<&MountPoint> = mounts.iter().collect();
    order.sort_by_key(|m| std::cmp::Reverse(m.mount.trim_end_matches('/').matches('/').count()));
    let mut result = std::collections::BTreeMap::new();
    std::fs::create_dir_all(into).io_context(|| format!("creating {}", into.display()))?;
    for m in order {
        let rel = m.mount.trim_matches('/');
        if rel.is_empty() {
            result.insert(m.partition.clone(), tree.to_path_buf());
            continue;
        }
        let src = tree.join(rel);
        let dst = into.join(&m.partition);
        if dst.exists() {
            return Err(artifact::Error::Corrupt {
                path: dst.display().to_string(),
                message: "split target already exists".into(),
            });
        }
        match std::fs::symlink_metadata(&src) {
            Ok(meta) if meta.is_dir() => {
                std::fs::rename(&src, &dst)
                    .io_context(|| format!("moving {} to {}", src.display(), dst.display()))?;
                std::fs::create_dir(&src)
                    .io_context(|| format!("creating mount point {}", src.display()))?;
                std::fs::set_permissions(
                    &src,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )
                .io_context(|| format!("chmod {}", src.display()))?;
                std::os::unix::fs::lchown(&src, Some(meta.uid()), Some(meta.gid()))
                    .io_context(|| format!("chown {}", src.display()))?;
                let mtime = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(meta.mtime().max(0) as u64);
                let f = std::fs::File::open(&src)
                    .io_context(|| format!("opening {}", src.display()))?;
                f.set_modified(mtime)
                    .io_context(|| format!("setting mtime of {}", src.display()))?;
            }
            Ok(_) => {
                return Err(artifact::Error::Corrupt {
                    path: src.display().to_string(),
                    message: format!("mount point of partition {} is not a folder", m.partition),
                })
            }
            Err(_) => {
                std::fs::create_dir_all(&dst)
                    .io_context(|| format!("creating {}", dst.display()))?;
                std::fs::create_dir_all(&src)
                    .io_context(|| format!("creating {}", src.display()))?;
            }
        }
        result.insert(m.partition.clone(), dst);
    }
    Ok(mounts
        .iter()
        .filter_map(|m| {
            result
                .get(&m.partition)
                .map(|p| (m.partition.clone(), p.clone()))
        })
        .collect())
}

/// Undo [`split_by_mounts`]: put every non-root partition's tree back at its mount point (which
/// must be the empty folder the split left), shallowest mounts first.
pub fn unsplit(
    tree: &Path,
    mounts: &[MountPoint],
    parts: &[(String, PathBuf)],
) -> artifact::Result<()> {
    let mut order: Vec<&MountPoint> = mounts
        .iter()
        .filter(|m| !m.mount.trim_matches('/').is_empty())
        .collect();
    order.sort_by_key(|m| m.mount.trim_end_matches('/').matches('/').count());
    for m in order {
        let Some((_, from)) = parts.iter().find(|(p, _)| p == &m.partition) else {
            continue;
        };
        let to = tree.join(m.mount.trim_matches('/'));
        std::fs::remove_dir(&to).io_context(|| {
            format!(
                "removing the mount point {} (it must be empty)",
                to.display()
            )
        })?;
        std::fs::rename(from, &to)
            .io_context(|| format!("moving {} back to {}", from.display(), to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(p: &str, m: &str) -> MountPoint {
        MountPoint {
            partition: p.into(),
            mount: m.into(),
        }
    }

    #[test]
    fn boot_firmware_goes_to_its_own_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("boot/firmware/overlays")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("boot/firmware/config.txt"), "arm_64bit=1\n").unwrap();
        std::fs::write(root.join("boot/firmware/overlays/x.dtbo"), "o").unwrap();
        std::fs::write(root.join("boot/vmlinuz"), "k").unwrap();
        std::fs::write(root.join("etc/fstab"), "f").unwrap();
        std::fs::set_permissions(
            root.join("boot/firmware"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let parts = split_by_mounts(
            &root,
            &[
                mp("boot", "/boot/firmware"),
                mp("root", "/"),
                mp("data", "/data"),
            ],
            &d.path().join("parts"),
        )
        .unwrap();
        assert_eq!(parts[0].0, "boot");
        assert_eq!(parts[1], ("root".to_string(), root.clone()));
        let boot = &parts[0].1;
        assert_eq!(
            std::fs::read_to_string(boot.join("config.txt")).unwrap(),
            "arm_64bit=1\n"
        );
        assert!(boot.join("overlays/x.dtbo").is_file());
        // The mount point stays, empty, with its mode.
        let mpd = root.join("boot/firmware");
        assert!(mpd.is_dir());
        assert_eq!(std::fs::read_dir(&mpd).unwrap().count(), 0);
        assert_eq!(std::fs::metadata(&mpd).unwrap().mode() & 0o777, 0o700);
        assert!(root.join("boot/vmlinuz").is_file());
        assert!(root.join("etc/fstab").is_file());
        // A mount point missing from the tree: empty tree, mount point created.
        assert_eq!(std::fs::read_dir(&parts[2].1).unwrap().count(), 0);
        assert!(root.join("data").is_dir());
        // unsplit puts the trees back (the created /data stays, holding nothing).
        let mounts = [
            mp("boot", "/boot/firmware"),
            mp("root", "/"),
            mp("data", "/data"),
        ];
        unsplit(&root, &mounts, &parts).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("boot/firmware/config.txt")).unwrap(),
            "arm_64bit=1\n"
        );
        assert!(root.join("boot/firmware/overlays/x.dtbo").is_file());
        assert_eq!(
            std::fs::metadata(root.join("boot/firmware"))
                .unwrap()
                .mode()
                & 0o777,
            0o700
        );
    }

    #[test]
    fn nested_mounts_deepest_first() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("boot/firmware")).unwrap();
        std::fs::write(root.join("boot/firmware/a"), "a").unwrap();
        std::fs::write(root.join("boot/b"), "b").unwrap();
        let parts = split_by_mounts(
            &root,
            &[
                mp("root", "/"),
                mp("boot", "/boot"),
                mp("fw", "/boot/firmware"),
            ],
            &d.path().join("parts"),
        )
        .unwrap();
        assert!(parts[1].1.join("b").is_file());
        assert!(parts[1].1.join("firmware").is_dir());
        assert!(!parts[1].1.join("firmware/a").exists());
        assert!(parts[2].1.join("a").is_file());
    }

    #[test]
    fn relative_mount_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(split_by_mounts(d.path(), &[mp("x", "boot")], &d.path().join("p")).is_err());
        assert!(split_by_mounts(d.path(), &[mp("x", "/a/../b")], &d.path().join("p")).is_err());
    }
}

//! The unpacked system tree, kept between image builds.
//!
//! Unpacking a ~1 GB system tarball costs as much as filling the partitions, and every image of a
//! system starts from the same tree. So the tree is unpacked once per system digest into
//! `<base>/<key>/tree`; an image build leases it (exclusive `flock`), changes a handful of files
//! through a [`Journal`] (each original is moved aside first, never written in place), fills the
//! partitions from it, and restores it. A `.in-use` marker is present exactly while a lease may
//! have changed the tree: a build killed mid-way leaves it, and the next lease unpacks afresh
//! instead of trusting the tree.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

const COMPLETE: &str = ".complete";
const IN_USE: &str = ".in-use";

/// An exclusive lease on an unpacked system tree.
pub struct Lease {
    dir: PathBuf,
    tree: PathBuf,
    _lock: Flock<File>,
    restored: bool,
}

fn remove_path(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Lease the tree of `tarball` under `base/key`, unpacking it when there is no trusted copy.
/// Other keys' trees under `base` that nobody uses are removed (one tree per board is kept).
/// Returns the lease and whether the tree had to be unpacked.
pub fn lease(base: &Path, key: &str, tarball: &Path) -> Result<(Lease, bool)> {
    let dir = base.join(key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let lock = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let tree = dir.join("tree");
    let trusted = dir.join(COMPLETE).exists() && !dir.join(IN_USE).exists() && tree.is_dir();
    if !trusted {
        let _ = std::fs::remove_file(dir.join(COMPLETE));
        remove_path(&tree).with_context(|| format!("removing {}", tree.display()))?;
        let tmp = dir.join("tree.tmp");
        remove_path(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        crate::tarball::unpack(tarball, &tmp)?;
        std::fs::rename(&tmp, &tree)
            .with_context(|| format!("renaming {} to {}", tmp.display(), tree.display()))?;
        let _ = std::fs::remove_file(dir.join(IN_USE));
        std::fs::write(dir.join(COMPLETE), tarball.display().to_string())
            .context("marking the tree complete")?;
    }
    std::fs::write(dir.join(IN_USE), std::process::id().to_string())
        .context("marking the tree in use")?;
    // Drop the trees of other system digests that nobody holds.
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if p == dir || !p.is_dir() {
                continue;
            }
            let Ok(f) = File::options().write(true).open(p.join(".lock")) else {
                continue;
            };
            if let Ok(_l) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                tracing::debug!("removing the unused system tree {}", p.display());
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
    Ok((
        Lease {
            dir,
            tree,
            _lock: lock,
            restored: false,
        },
        !trusted,
    ))
}

impl Lease {
    pub fn tree(&self) -> &Path {
        &self.tree
    }

    /// Where file systems made from this tree are kept (see `raw_image::keep`); removed with
    /// the tree when another system's tree replaces it.
    pub fn kept_dir(&self) -> PathBuf {
        self.dir.join("kept")
    }

    /// Mark the tree restored to the system's content (after [`Journal::restore`] and any other
    /// undo succeeded): the next lease trusts it.
    pub fn release(mut self) -> Result<()> {
        std::fs::remove_file(self.dir.join(IN_USE))
            .with_context(|| format!("unmarking {}", self.dir.display()))?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.restored {
            tracing::debug!(
                "system tree {} left changed; the next build unpacks it again",
                self.tree.display()
            );
        }
    }
}

/// Create the missing folders above `path`, mode 0755 whatever the umask (they end up in a file
/// system, and a kept partition's key names only the files written); returns them, outermost
/// first.
pub fn create_parents(path: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut missing = Vec::new();
    for a in path.ancestors().skip(1) {
        if std::fs::symlink_metadata(a).is_ok() {
            break;
        }
        missing.push(a.to_path_buf());
    }
    missing.reverse();
    for d in &missing {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", d.display()))?;
    }
    Ok(missing)
}

/// What was changed in a tree, to undo it.
#[derive(Debug, Default)]
pub struct Journal {
    /// Where originals are moved aside.
    backup: PathBuf,
    /// (path in the tree, backup of the original if there was one), in change order.
    files: Vec<(PathBuf, Option<PathBuf>)>,
    /// Folders created, in creation order.
    dirs: Vec<PathBuf>,
}

impl Journal {
    /// A journal that moves originals into `backup` (created; on the tree's file system).
    pub fn new(backup: &Path) -> Result<Journal> {
        remove_path(backup).with_context(|| format!("removing {}", backup.display()))?;
        std::fs::create_dir_all(backup)
            .with_context(|| format!("creating {}", backup.display()))?;
        Ok(Journal {
            backup: backup.to_path_buf(),
            ..Default::default()
        })
    }

    /// Prepare `path` to be (re)written: create missing parent folders (recorded) and move an
    /// existing file or symlink aside (recorded). Folders cannot be replaced.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        if self.files.iter().any(|(p, _)| p == path) {
            // Already saved: remove our own earlier version.
            remove_path(path).with_context(|| format!("removing {}", path.display()))?;
            return Ok(());
        }
        self.dirs.extend(create_parents(path)?);
        let backup = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => bail!(
                "{} is a folder; it cannot be replaced by a file",
                path.display()
            ),
            Ok(_) => {
                let b = self.backup.join(self.files.len().to_string());
                std::fs::rename(path, &b)
                    .with_context(|| format!("moving {} aside", path.display()))?;
                Some(b)
            }
            Err(_) => None,
        };
        self.files.push((path.to_path_buf(), backup));
        Ok(())
    }

    /// Undo every change, newest first.
    pub fn restore(self) -> Result<()> {
        for (path, backup) in self.files.into_iter().rev() {
            remove_path(&path).with_context(|| format!("removing {}", path.display()))?;
            if let Some(b) = backup {
                std::fs::rename(&b, &path)
                    .with_context(|| format!("restoring {}", path.display()))?;
            }
        }
        for d in self.dirs.into_iter().rev() {
            std::fs::remove_dir(&d).with_context(|| format!("removing {}", d.display()))?;
        }
        std::fs::remove_dir(&self.backup)
            .with_context(|| format!("removing {}", self.backup.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_parents_makes_the_missing_folders_outermost_first() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("a/b/c.txt");
        let made = create_parents(&file).unwrap();
        assert_eq!(made, vec![d.path().join("a"), d.path().join("a/b")]);
        assert!(d.path().join("a/b").is_dir());
        assert!(create_parents(&file).unwrap().is_empty());
    }
    use std::os::unix::fs::MetadataExt;

    fn snapshot(root: &Path) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        fn walk(root: &Path, d: &Path, out: &mut Vec<(String, u64, String)>) {
            let mut ents: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
            ents.sort_by_key(|e| e.file_name());
            for e in ents {
                let p = e.path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let content = if m.is_file() {
                    std::fs::read_to_string(&p).unwrap_or_default()
                } else if m.file_type().is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else {
                    String::new()
                };
                out.push((rel, m.ino(), content));
                if m.is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        walk(root, root, &mut out);
        out
    }

    #[test]
    fn journal_restores_files_links_and_folders() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tree");
        std::fs::create_dir_all(t.join("etc")).unwrap();
        std::fs::write(t.join("etc/hostname"), "localhost\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", t.join("etc/os-release")).unwrap();
        let before = snapshot(&t);
        let mut j = Journal::new(&d.path().join("backup")).unwrap();
        for (p, c) in [
            ("etc/hostname", "black-pearl\n"),
            ("etc/os-release", "ID=debian\n"),
            ("var/lib/drydock/preload/a.tar", "tar"),
            ("etc/hostname", "again\n"),
        ] {
            j.save(&t.join(p)).unwrap();
            std::fs::write(t.join(p), c).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(t.join("etc/hostname")).unwrap(),
            "again\n"
        );
        j.save(&t.join("etc")).unwrap_err();
        j.restore().unwrap();
        assert_eq!(snapshot(&t), before);
        assert!(!d.path().join("backup").exists());
    }

    #[test]
    fn lease_reuses_a_restored_tree_and_unpacks_a_dirty_one() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/hostname"), "localhost\n").unwrap();
        let tarball = d.path().join("system.tar.zst");
        crate::tarball::pack(&src, &tarball, 1_700_000_000).unwrap();
        let base = d.path().join("trees");
        let (l, unpacked) = lease(&base, "k1", &tarball).unwrap();
        assert!(unpacked);
        let ino = std::fs::metadata(l.tree().join("etc/hostname"))
            .unwrap()
            .ino();
        l.release().unwrap();
        let (l, unpacked) = lease(&base, "k1", &tarball).unwrap();
        assert!(!unpacked);
        assert_eq!(
            std::fs::metadata(l.tree().join("etc/hostname"))
                .unwrap()
                .ino(),
            ino
        );
        // A lease dropped without release (a build that failed or was killed mid-way).
        std::fs::write(l.tree().join("etc/hostname"), "changed\n").unwrap();
        drop(l);
        let (l, unpacked) = lease(&base, "k1", &tarball).unwrap();
        assert!(unpacked);
        assert_eq!(
            std::fs::read_to_string(l.tree().join("etc/hostname")).unwrap(),
            "localhost\n"
        );
        l.release().unwrap();
        // Another key's lease removes the unused tree.
        let (l2, _) = lease(&base, "k2", &tarball).unwrap();
        assert!(!base.join("k1").exists());
        l2.release().unwrap();
    }
}

//! The content-addressed local artifact store.
//!
//! Layout under the store root:
//!
//! ```text
//! entries/<kind>/<digest>/manifest.json   a published artifact (manifest written last)
//! entries/<kind>/.tmp-<digest>-<pid>-…/   a build in progress (never trusted, removed by gc)
//! quarantine/<kind>-<digest>-<unix time>/ entries that failed `verify`
//! ```
//!
//! Publishing builds into a temporary folder beside the final one, writes the manifest last, fsyncs
//! every file and folder, then renames the folder into place. A crash at any point leaves either no
//! entry or a complete one: lookups only trust `entries/<kind>/<digest>/manifest.json` whose
//! `inputs_digest` equals the folder name and whose files all exist with their recorded sizes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::CacheKey;
use crate::fsutil::{sync_dir, sync_tree};
use crate::manifest::Manifest;
use crate::{Error, IoContext, Result};

/// Environment variable that overrides the store location.
pub const CACHE_DIR_ENV: &str = "DRYDOCK_CACHE_DIR";

/// A published artifact in the store.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Entry {
    /// Absolute path of one of the artifact's files.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The artifact's digest (its cache key).
    pub fn digest(&self) -> &str {
        &self.manifest.inputs_digest
    }

    /// Paths of files whose names end with `suffix`.
    pub fn files_ending_with(&self, suffix: &str) -> Vec<PathBuf> {
        self.manifest
            .files
            .iter()
            .filter(|f| f.path.ends_with(suffix))
            .map(|f| self.dir.join(&f.path))
            .collect()
    }
}

/// Result of verifying one entry.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub kind: String,
    pub digest: String,
    pub problems: Vec<String>,
    /// Where the entry was moved when it was corrupt.
    pub quarantined: Option<PathBuf>,
}

/// What `gc` removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub removed: Vec<PathBuf>,
    pub freed_bytes: u64,
}

/// Auxiliary folders holding per-build scratch space; `gc` removes children older than its
/// `stale` age (what a killed build left behind).
pub const SCRATCH_AUX: &[&str] = &["work", "kernel/builds"];

/// Auxiliary folders holding reusable caches, one child per item; `gc` keeps the `keep` most
/// recently made.
pub const REUSABLE_AUX: &[&str] = &["kernel/trees"];

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in ["entries", "quarantine"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p)
                .io_context(|| format!("creating cache folder {}", p.display()))?;
        }
        Ok(Store { root })
    }

    /// The default location: `$DRYDOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/drydock`, else
    /// `~/.cache/drydock`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os(CACHE_DIR_ENV).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
            return PathBuf::from(p).join("drydock");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".cache").join("drydock")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A folder for downloads and other non-artifact caches (`<root>/downloads/<name>`).
    pub fn aux_dir(&self, name: &str) -> Result<PathBuf> {
        let p = self.root.join("aux").join(name);
        std::fs::create_dir_all(&p).io_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    fn kind_dir(&self, kind: &str) -> PathBuf {
        self.root.join("entries").join(kind)
    }

    /// Find a trusted entry for `kind` and `digest`.
    pub fn lookup(&self, kind: &str, digest: &str) -> Option<Entry> {
        let dir = self.kind_dir(kind).join(digest);
        let manifest = Manifest::load(&dir).ok()?;
        if manifest.inputs_digest != digest || manifest.kind != kind {
            return None;
        }
        for f in &manifest.files {
            match std::fs::metadata(dir.join(&f.path)) {
                Ok(m) if m.is_file() && m.len() == f.size => {}
                _ => return None,
            }
        }
        touch(&dir);
        Some(Entry { dir, manifest })
    }

    /// Look up `key`, or build and publish it. Returns the entry and whether it came from the cache.
    pub fn get_or_build<E>(
        &self,
        key: &CacheKey,
        build: impl FnOnce(&Path) -> std::result::Result<Manifest, E>,
    ) -> std::result::Result<(Entry, bool), E>
    where
        E: From<Error>,
    {
        if let Some(e) = self.lookup(key.kind(), &key.digest()) {
            return Ok((e, true));
        }
        Ok((self.publish(key, build)?, false))
    }

    /// Build into a staging folder beside the final location and publish atomically.
    ///
    /// The closure gets an empty folder and returns the manifest; the store completes the file
    /// list from the folder's contents (entries the closure listed are kept when they name a
    /// regular file of that size; the rest is hashed), writes `manifest.json` last, fsyncs and
    /// renames. On error the staging folder is removed.
    pub fn publish<E>(
        &self,
        key: &CacheKey,
        build: impl FnOnce(&Path) -> std::result::Result<Manifest, E>,
    ) -> std::result::Result<Entry, E>
    where
        E: From<Error>,
    {
        let digest = key.digest();
        let kdir = self.kind_dir(key.kind());
        std::fs::create_dir_all(&kdir).io_context(|| format!("creating {}", kdir.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".tmp-{digest}-{}-", std::process::id()))
            .tempdir_in(&kdir)
            .io_context(|| format!("creating a staging folder in {}", kdir.display()))?;
        let mut manifest = build(staging.path())?;
        manifest.kind = key.kind().to_string();
        manifest.inputs_digest = digest.clone();
        // Files the builder already hashed while writing them (e.g. the image stage's one pass
        // over a 2 GB image) are kept when they name a regular file of that size in the folder;
        // every other file is hashed here.
        manifest.files.retain(|f| {
            let safe = !f.path.is_empty()
                && !f.path.starts_with('/')
                && f.path
                    .split('/')
                    .all(|c| c != ".." && c != "." && !c.is_empty());
            safe && std::fs::symlink_metadata(staging.path().join(&f.path))
                .is_ok_and(|m| m.is_file() && m.len() == f.size)
        });
        manifest.add_files_from(staging.path())?;
        self.finish_publish(staging, &kdir, &digest, manifest)
            .map_err(E::from)
    }

    fn finish_publish(
        &self,
        staging: tempfile::TempDir,
        kdir: &Path,
        digest: &str,
        manifest: Manifest,
    ) -> Result<Entry> {
        manifest.write(staging.path())?;
        sync_tree(staging.path())?;
        let final_dir = kdir.join(digest);
        let staging_path = staging.keep();
        match std::fs::rename(&staging_path, &final_dir) {
            Ok(()) => {}
            Err(_) if self.lookup(&manifest.kind, digest).is_some() => {
                // Another build published the same key first; ours is identical by contract.
                let _ = std::fs::remove_dir_all(&staging_path);
            }
            Err(e) => {
                // A stale, untrusted folder may sit at the final path (e.g. quarantined
                // content that was put back by hand): move it aside and retry once.
                if final_dir.exists() {
                    self.quarantine(&manifest.kind, digest, &final_dir)?;
                    std::fs::rename(&staging_path, &final_dir)
                        .io_context(|| format!("publishing {}", final_dir.display()))?;
                } else {
                    let _ = std::fs::remove_dir_all(&staging_path);
                    return Err(Error::Io {
                        context: format!("publishing {}", final_dir.display()),
                        source: e,
                    });
                }
            }
        }
        sync_dir(kdir)?;
        Ok(Entry {
            dir: final_dir,
            manifest,
        })
    }

    /// Every published entry (trusted or not: `ls` shows them all; `verify` judges).
    pub fn list(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let mut out = Vec::new();
        let entries = self.root.join("entries");
        let kinds =
            std::fs::read_dir(&entries).io_context(|| format!("listing {}", entries.display()))?;
        for k in kinds {
            let k = k.io_context(|| format!("listing {}", entries.display()))?;
            if !k.path().is_dir() {
                continue;
            }
            let kind = k.file_name().to_string_lossy().into_owned();
            let rd = std::fs::read_dir(k.path())
                .io_context(|| format!("listing {}", k.path().display()))?;
            for e in rd {
                let e = e.io_context(|| format!("listing {}", k.path().display()))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") || !e.path().is_dir() {
                    continue;
                }
                out.push((kind.clone(), name, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hash every file of every entry; move corrupt entries to `quarantine/`.
    pub fn verify(&self) -> Result<Vec<VerifyReport>> {
        let mut reports = Vec::new();
        for (kind, digest, dir) in self.list()? {
            let problems = match Manifest::load(&dir) {
                Ok(m) if m.inputs_digest != digest => {
                    vec![format!(
                        "manifest inputs_digest {} does not match folder name",
                        m.inputs_digest
                    )]
                }
                Ok(m) => m.verify(&dir),
                Err(e) => vec![e.to_string()],
            };
            let quarantined = if problems.is_empty() {
                None
            } else {
                Some(self.quarantine(&kind, &digest, &dir)?)
            };
            reports.push(VerifyReport {
                kind,
                digest,
                problems,
                quarantined,
            });
        }
        Ok(reports)
    }

    fn quarantine(&self, kind: &str, digest: &str, dir: &Path) -> Result<PathBuf> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = self
            .root
            .join("quarantine")
            .join(format!("{kind}-{digest}-{now}"));
        std::fs::rename(dir, &to)
            .io_context(|| format!("moving {} to {}", dir.display(), to.display()))?;
        Ok(to)
    }

    /// Remove abandoned staging folders older than `stale`, everything in quarantine, and all but
    /// the `keep` most recently used entries of each kind and name.
    pub fn gc(&self, keep: usize, stale: Duration) -> Result<GcReport> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        // Abandoned staging folders.
        let entries = self.root.join("entries");
        for k in
            std::fs::read_dir(&entries).io_context(|| format!("listing {}", entries.display()))?
        {
            let k = k.io_context(|| format!("listing {}", entries.display()))?;
            if !k.path().is_dir() {
                continue;
            }
            for e in std::fs::read_dir(k.path())
                .io_context(|| format!("listing {}", k.path().display()))?
            {
                let e = e.io_context(|| format!("listing {}", k.path().display()))?;
                if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                    continue;
                }
                if age_of(&e, now) >= stale {
                    self.remove(&e.path(), &mut report)?;
                }
            }
        }
        // Quarantine.
        let q = self.root.join("quarantine");
        for e in std::fs::read_dir(&q).io_context(|| format!("listing {}", q.display()))? {
            let e = e.io_context(|| format!("listing {}", q.display()))?;
            self.remove(&e.path(), &mut report)?;
        }
        // Old entries: group by (kind, name), keep the most recently used.
        for (_, dirs) in self.groups()? {
            for dir in dirs.into_iter().skip(keep) {
                self.remove(&dir, &mut report)?;
            }
        }
        // Scratch folders that a killed build left behind (a running build touches its own).
        for rel in SCRATCH_AUX {
            for (age, path) in self.aux_children(rel)? {
                if age >= stale {
                    self.remove(&path, &mut report)?;
                }
            }
        }
        // Caches kept for speed only (unpacked kernel sources): the most recently made.
        for rel in REUSABLE_AUX {
            let mut c = self.aux_children(rel)?;
            c.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, path) in c.into_iter().skip(keep) {
                self.remove(&path, &mut report)?;
            }
        }
        Ok(report)
    }

    /// Entries grouped by (kind, name), each group most recently used first.
    fn groups(&self) -> Result<std::collections::BTreeMap<(String, String), Vec<PathBuf>>> {
        let mut groups: std::collections::BTreeMap<(String, String), Vec<(SystemTime, PathBuf)>> =
            Default::default();
        for (kind, _digest, dir) in self.list()? {
            let name = Manifest::load(&dir).map(|m| m.name).unwrap_or_default();
            let used = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            groups.entry((kind, name)).or_default().push((used, dir));
        }
        Ok(groups
            .into_iter()
            .map(|(k, mut dirs)| {
                dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
                (k, dirs.into_iter().map(|(_, d)| d).collect())
            })
            .collect())
    }

    /// Remove all but the `keep` most recently used entries of `kind` named `name` (never
    /// `current`, the one just used). For artifacts that are cheap to make again and large
    /// (image bundles: one per hostname otherwise piles up).
    pub fn prune(&self, kind: &str, name: &str, keep: usize, current: &Path) -> Result<GcReport> {
        let mut report = GcReport::default();
        let dirs = self
            .groups()?
            .remove(&(kind.to_string(), name.to_string()))
            .unwrap_or_default();
        for dir in dirs
            .into_iter()
            .filter(|d| d.as_path() != current)
            .skip(keep.saturating_sub(1))
        {
            self.remove(&dir, &mut report)?;
        }
        Ok(report)
    }

    /// Children of `aux/<rel>` with the time since each was last modified (none if missing).
    fn aux_children(&self, rel: &str) -> Result<Vec<(Duration, PathBuf)>> {
        let dir = self.root.join("aux").join(rel);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).io_context(|| format!("listing {}", dir.display())),
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for e in rd {
            let e = e.io_context(|| format!("listing {}", dir.display()))?;
            out.push((age_of(&e, now), e.path()));
        }
        Ok(out)
    }

    fn remove(&self, path: &Path, report: &mut GcReport) -> Result<()> {
        report.freed_bytes += du(path);
        if path.is_dir() {
            std::fs::remove_dir_all(path).io_context(|| format!("removing {}", path.display()))?;
        } else {
            std::fs::remove_file(path).io_context(|| format!("removing {}", path.display()))?;
        }
        report.removed.push(path.to_path_buf());
        Ok(())
    }
}

/// Time since a folder entry was last modified (zero if unknown or in the future).
pub fn age_of(e: &std::fs::DirEntry, now: SystemTime) -> Duration {
    e.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or_default()
}

/// Mark an entry as recently used (its folder's mtime), best effort.
fn touch(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Disk usage of a path in bytes (allocated blocks, so sparse images count what they use).
pub fn du(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.blocks() * 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileEntry;

    fn key(n: u32) -> CacheKey {
        CacheKey::new("test", &n)
    }

    fn build_ok(dir: &Path) -> Result<Manifest> {
        std::fs::write(dir.join("data.bin"), b"payload").unwrap();
        Ok(Manifest::new("test", "thing", "1", "all", ""))
    }

    #[test]
    fn publish_then_lookup() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert!(s.lookup("test", &key(1).digest()).is_none());
        let e = s.publish(&key(1), build_ok).unwrap();
        assert_eq!(e.manifest.files.len(), 1);
        assert_eq!(e.manifest.inputs_digest, key(1).digest());
        let again = s.lookup("test", &key(1).digest()).unwrap();
        assert_eq!(again.manifest, e.manifest);
        let (_, cached) = s.get_or_build(&key(1), build_ok).unwrap();
        assert!(cached);
    }

    #[test]
    fn failed_build_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let r: Result<Entry> = s.publish(&key(2), |dir| {
            std::fs::write(dir.join("half"), b"x").unwrap();
            Err(Error::Corrupt {
                path: "x".into(),
                message: "boom".into(),
            })
        });
        assert!(r.is_err());
        assert!(s.lookup("test", &key(2).digest()).is_none());
        let leftovers: Vec<_> = std::fs::read_dir(d.path().join("entries/test"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// A crash between writing the files and the rename: the staging folder (complete, with a
    /// manifest) sits beside the final path. It must not be trusted, and gc removes it.
    #[test]
    fn crash_before_rename_is_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let k = key(3);
        let kdir = d.path().join("entries/test");
        std::fs::create_dir_all(&kdir).unwrap();
        let staging = kdir.join(format!(".tmp-{}-999-abc", k.digest()));
        std::fs::create_dir(&staging).unwrap();
        let mut m = build_ok(&staging).unwrap();
        m.inputs_digest = k.digest();
        m.add_files_from(&staging).unwrap();
        m.write(&staging).unwrap();
        assert!(s.lookup("test", &k.digest()).is_none());
        assert!(s.list().unwrap().is_empty());
        let r = s.gc(3, Duration::ZERO).unwrap();
        assert_eq!(r.removed, vec![staging.clone()]);
        assert!(!staging.exists());
    }

    /// Entries the builder hashed itself are kept when they fit the folder; a stale or unsafe
    /// one (wrong size, missing file, path outside the folder) is dropped and the real file hashed.
    #[test]
    fn publish_keeps_prehashed_entries_that_fit() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let e = s
            .publish(&key(9), |dir: &Path| -> Result<Manifest> {
                std::fs::write(dir.join("a.bin"), b"aaaa").unwrap();
                std::fs::write(dir.join("b.bin"), b"bbbb").unwrap();
                let mut m = Manifest::new("test", "t", "1", "all", "");
                let pre = |path: &str, size, sha: &str| FileEntry {
                    path: path.into(),
                    size,
                    sha256: sha.into(),
                };
                m.files.push(pre("a.bin", 4, "prehashed"));
                m.files.push(pre("b.bin", 3, "wrong-size"));
                m.files.push(pre("gone.bin", 1, "missing"));
                m.files.push(pre("../escape", 4, "outside"));
                Ok(m)
            })
            .unwrap();
        let got: Vec<_> = e
            .manifest
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.clone()))
            .collect();
        let (b_sha, _) = crate::sha256_file(&e.path("b.bin")).unwrap();
        assert_eq!(
            got,
            vec![("a.bin", "prehashed".to_string()), ("b.bin", b_sha)]
        );
    }

    /// gc removes scratch folders older than `stale` (a killed build's work folder) and keeps
    /// only the `keep` newest reusable caches; young scratch folders (a running build) stay.
    #[test]
    fn gc_cleans_aux_scratch_and_old_caches() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let old_work = s.aux_dir("work/assemble-old").unwrap();
        std::fs::write(old_work.join("big"), vec![0u8; 4096]).unwrap();
        let trees: Vec<_> = (0..3)
            .map(|i| {
                let t = s.aux_dir(&format!("kernel/trees/t{i}")).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                t
            })
            .collect();
        // Nothing is stale after an hour: the work folder stays; the oldest tree goes (keep 2).
        let r = s.gc(2, Duration::from_secs(3600)).unwrap();
        assert!(old_work.exists());
        assert_eq!(r.removed, vec![trees[0].clone()]);
        assert!(trees[1].exists() && trees[2].exists());
        // With no grace period the abandoned work folder goes too, and its bytes are counted.
        let r = s.gc(2, Duration::ZERO).unwrap();
        assert_eq!(r.removed, vec![old_work.clone()]);
        assert!(r.freed_bytes >= 4096, "{}", r.freed_bytes);
        assert!(!old_work.exists());
    }

    /// A crash midway through writing the final folder by hand (manifest missing, or a file cut
    /// short) is not trusted either.
    #[test]
    fn truncated_entry_is_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let e = s.publish(&key(4), build_ok).unwrap();
        std::fs::write(e.path("data.bin"), b"pay").unwrap();
        assert!(s.lookup("test", &key(4).digest()).is_none());
        std::fs::remove_file(e.path("manifest.json")).unwrap();
        assert!(s.lookup("test", &key(4).digest()).is_none());
    }

    #[test]
    fn verify_finds_flipped_byte_and_quarantines() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let e = s.publish(&key(5), build_ok).unwrap();
        let good = s.publish(&key(6), build_ok).unwrap();
        let mut bytes = std::fs::read(e.path("data.bin")).unwrap();
        bytes[0] ^= 1;
        std::fs::write(e.path("data.bin"), &bytes).unwrap();
        let reports = s.verify().unwrap();
        let bad: Vec<_> = reports.iter().filter(|r| !r.problems.is_empty()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].digest, key(5).digest());
        assert!(bad[0].problems[0].contains("data.bin"));
        assert!(bad[0].quarantined.as_ref().unwrap().exists());
        assert!(s.lookup("test", &key(5).digest()).is_none());
        assert!(s.lookup("test", &good.manifest.inputs_digest).is_some());
        // Rebuilding after quarantine works.
        let (_, cached) = s.get_or_build(&key(5), build_ok).unwrap();
        assert!(!cached);
    }

    #[test]
    fn gc_keeps_most_recent() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        for i in 10..14 {
            s.publish(&key(i), build_ok).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = s.gc(2, Duration::from_secs(3600)).unwrap();
        assert_eq!(r.removed.len(), 2);
        assert!(s.lookup("test", &key(13).digest()).is_some());
        assert!(s.lookup("test", &key(12).digest()).is_some());
        assert!(s.lookup("test", &key(10).digest()).is_none());
    }

    #[test]
    fn prune_keeps_the_current_and_the_most_recent() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let mut dirs = Vec::new();
        for i in 20..25 {
            dirs.push(s.publish(&key(i), build_ok).unwrap().dir);
            std::thread::sleep(Duration::from_millis(20));
        }
        // The oldest is the one just used: kept, with the newest other one.
        let r = s.prune("test", "thing", 2, &dirs[0]).unwrap();
        assert_eq!(r.removed.len(), 3, "{:?}", r.removed);
        assert!(dirs[0].exists() && dirs[4].exists());
        assert!(!dirs[1].exists() && !dirs[2].exists() && !dirs[3].exists());
        // Another name is left alone.
        assert_eq!(
            s.prune("test", "other", 1, &dirs[0]).unwrap().removed.len(),
            0
        );
        assert!(dirs[4].exists());
    }
}

//! An APT repository from a set of `.deb` files.
//!
//! Layout of a repository folder:
//!
//! ```text
//! pool/<component>/<p>/<package>_<version>_<arch>.deb   the packages (the source of truth)
//! dists -> .dists/<digest>                                         symlink to the published index
//! .dists/<digest>/<suite>/{Release,InRelease,Release.gpg}
//! .dists/<digest>/<suite>/<component>/binary-<arch>/Packages{,.gz,.xz}
//! key.asc, key.gpg                                                 the public key (armoured, binary)
//! .deb-repo/index.json                                             index cache (fingerprint → stanza)
//! ```
//!
//! [`update`] adds `.deb` files to the pool and republishes the index. Files are read once: the
//! control part is parsed while the whole file streams through sha256, in parallel across cores.
//! The index cache maps a file's fingerprint (device, inode, size, mtime) to its stanza, so after
//! adding one `.deb` only that file is read. The new `dists` is written beside the old one and
//! published by renaming a new symlink over `dists`: a reader sees the old index or the new one,
//! never a mix. Every input is checked before anything is written, so bad input (a truncated
//! `.deb`, a bad control file, two different files claiming one package, version and
//! architecture) leaves the published repository as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::deb::{scan_deb, Compression};
use crate::gpg::SigningKey;
use crate::{Error, Result};

/// How `dists/` is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistsLayout {
    /// `dists` is a symlink to `.dists/<digest>`, swapped atomically (repositories that are updated
    /// in place and served while they change).
    Swap,
    /// `dists/` is a plain folder written in place (a fresh folder that is itself published
    /// atomically, such as an artifact staging folder).
    Plain,
}

/// What the repository publishes.
#[derive(Debug, Clone)]
pub struct RepoOptions {
    pub suite: String,
    /// Defaults to the suite.
    pub codename: Option<String>,
    pub component: String,
    /// Architectures to publish besides those of the packages (`all` packages appear in each).
    /// When no package names one and this is empty: amd64, arm64, armhf.
    pub architectures: Vec<String>,
    pub origin: String,
    pub label: String,
    pub description: String,
    /// The Release `Date` (seconds since 1970). Default: `SOURCE_DATE_EPOCH`, else now.
    pub date: Option<u64>,
    pub layout: DistsLayout,
    /// Keep `.deb-repo/index.json` (incremental re-indexing).
    pub index_cache: bool,
    /// Copy inputs into the pool instead of hard-linking them (when on the same filesystem).
    pub copy: bool,
    /// Parallel readers (0: one per core).
    pub jobs: usize,
    /// xz preset for `Packages.xz` (0-9). Default 2: on Packages text, within ~5% of preset 6's
    /// size at a third of its time.
    pub xz_level: u32,
    /// gzip level for `Packages.gz` (1-9).
    pub gz_level: u32,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            suite: "drydock".into(),
            codename: None,
            component: "main".into(),
            architectures: Vec::new(),
            origin: "drydock".into(),
            label: "drydock".into(),
            description: "drydock packages".into(),
            date: None,
            layout: DistsLayout::Swap,
            index_cache: true,
            copy: false,
            jobs: 0,
            xz_level: 2,
            gz_level: 6,
        }
    }
}

/// Architectures published when the packages and options name none.
pub const DEFAULT_ARCHES: &[&str] = &["amd64", "arm64", "armhf"];

/// What [`update`] did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Packages in the published index.
    pub packages: usize,
    /// Files that were read (cache misses).
    pub read: Vec<PathBuf>,
    /// Pool paths added by this run.
    pub added: Vec<String>,
    pub architectures: Vec<String>,
    /// The published index folder (`REPO/dists` resolves to it).
    pub dists: PathBuf,
    /// sha256 of the Release file.
    pub release_sha256: String,
    /// Seconds spent per phase (scan, read, place, indices, sign, write+swap, cache).
    pub timings: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_s: i64,
    mtime_ns: i64,
}

impl Fingerprint {
    fn of(md: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_s: md.mtime(),
            mtime_ns: md.mtime_nsec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedDeb {
    fp: Fingerprint,
    sha256: String,
    package: String,
    version: String,
    arch: String,
    /// The control stanza as it goes into `Packages` (without Filename, Size, SHA256).
    control: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexCache {
    version: u32,
    /// By pool path (relative to the repository root).
    packages: BTreeMap<String, CachedDeb>,
    /// Inputs seen before: absolute path → fingerprint and pool path.
    sources: BTreeMap<String, (Fingerprint, String)>,
    key_fingerprint: String,
}

const CACHE_VERSION: u32 = 1;
const STATE_DIR: &str = ".deb-repo";
const GEN_DIR: &str = ".dists";

fn stat(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))
}

/// Every `*.deb` under `dir` (sorted), skipping hidden entries.
pub fn find_debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk_debs(dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_debs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let ft = ent
            .file_type()
            .map_err(|e| Error::io(format!("stat {}", ent.path().display()), e))?;
        if ft.is_dir() {
            walk_debs(&ent.path(), out)?;
        } else if name.ends_with(".deb") && (ft.is_file() || ft.is_symlink()) {
            out.push(ent.path());
        }
    }
    Ok(())
}

/// `pool/<component>/<prefix>/<package>_<version>_<arch>.deb`, the prefix being the source
/// package's first letter (`lib` and one more for library sources), as in Debian.
///
/// Unlike Debian there is no folder per source package: a thousand-package repository then needs
/// a few dozen folders instead of a thousand, which dominated the cost of a first build (mkdir and
/// fsync). apt only follows `Filename`, so any layout serves.
pub fn pool_path(component: &str, control: &crate::Stanza) -> String {
    let package = control.get("Package").unwrap_or("unknown");
    let source = control
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or(package);
    let prefix = if source.starts_with("lib") && source.len() > 3 {
        &source[..4]
    } else {
        &source[..1.min(source.len())]
    };
    format!(
        "pool/{component}/{prefix}/{}",
        crate::deb::deb_file_name(
            package,
            control.get("Version").unwrap_or("0"),
            control.get("Architecture").unwrap_or("all")
        )
    )
}

/// A `Packages` index of the `.deb` files under `dir` (what `apt-ftparchive packages DIR`
/// prints): `Filename` is the path as found under `dir` (joined to `dir` as given). Files are
/// read in parallel; every bad file is reported.
pub fn packages_for_dir(dir: &Path, jobs: usize) -> Result<Vec<u8>> {
    let debs = find_debs(dir)?;
    let results = par_map(&debs, jobs, |p| scan_deb(p));
    let mut out = String::new();
    let mut errors = Vec::new();
    for (p, r) in debs.iter().zip(results) {
        match r {
            Ok(info) => {
                out.push_str(&info.control.to_string());
                out.push_str(&format!(
                    "Filename: {}\nSize: {}\nSHA256: {}\n\n",
                    p.display(),
                    info.size,
                    info.sha256
                ));
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Error::BadInputs(errors));
    }
    Ok(out.into_bytes())
}

/// Run `f` over `items` on `jobs` threads, keeping the order of results.
pub fn par_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let jobs = if jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        jobs
    }
    .min(items.len().max(1));
    if jobs <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items.len() {
                            break;
                        }
                        mine.push((i, f(&items[i])));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

fn lock_repo(state: &Path) -> Result<Lock> {
    std::fs::create_dir_all(state)
        .map_err(|e| Error::io(format!("creating {}", state.display()), e))?;
    let p = state.join("lock");
    let f =
        std::fs::File::create(&p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(format!("locking {}", p.display()), e.into()))?;
    Ok(Lock(l))
}

fn load_cache(path: &Path) -> IndexCache {
    let Ok(text) = std::fs::read(path) else {
        return IndexCache::default();
    };
    match serde_json::from_slice::<IndexCache>(&text) {
        Ok(c) if c.version == CACHE_VERSION => c,
        Ok(_) => IndexCache::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unreadable index cache: {e}");
            IndexCache::default()
        }
    }
}

/// One package in the index being assembled.
struct Pkg {
    pool: String,
    deb: CachedDeb,
    /// Where it came from, for error messages.
    origin: PathBuf,
    /// An input to place into the pool (None: already there).
    place_from: Option<PathBuf>,
}

/// Add `inputs` (`.deb` files, or folders searched for them) to the repository at `root` and
/// publish a new signed index. With no inputs, re-index the pool.
pub fn update(
    root: &Path,
    inputs: &[PathBuf],
    opts: &RepoOptions,
    key: &SigningKey,
) -> Result<Report> {
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let root = std::fs::canonicalize(root)
        .map_err(|e| Error::io(format!("resolving {}", root.display()), e))?;
    let state = root.join(STATE_DIR);
    let _lock = lock_repo(&state)?;
    let cache_path = state.join("index.json");
    let mut t = std::time::Instant::now();
    let old = if opts.index_cache {
        load_cache(&cache_path)
    } else {
        IndexCache::default()
    };
    let mut report = Report::default();
    let mut lap = |report: &mut Report, name: &'static str| {
        report.timings.push((name, t.elapsed().as_secs_f64()));
        t = std::time::Instant::now();
    };

    lap(&mut report, "load");
    // 1. What the pool holds: cached entries whose fingerprint still matches, others to read.
    // The pool is walked when there is no cache or nothing to add (a re-index); otherwise the
    // cached files are checked with one stat each.
    let pool_dir = root.join("pool");
    let pool_files = if inputs.is_empty() || old.packages.is_empty() {
        if pool_dir.is_dir() {
            find_debs(&pool_dir)?
        } else {
            Vec::new()
        }
    } else {
        old.packages
            .keys()
            .map(|k| root.join(k))
            .filter(|p| p.exists())
            .collect()
    };
    let mut pkgs: Vec<Pkg> = Vec::new();
    let mut to_read: Vec<(PathBuf, Option<String>)> = Vec::new(); // (file, pool path if in pool)
    let mut pool_fps: BTreeMap<Fingerprint, String> = BTreeMap::new();
    for f in &pool_files {
        let rel = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned();
        let fp = Fingerprint::of(&stat(f)?);
        match old.packages.get(&rel) {
            Some(c) if c.fp == fp => {
                pool_fps.insert(fp, rel.clone());
                pkgs.push(Pkg {
                    pool: rel,
                    deb: c.clone(),
                    origin: f.clone(),
                    place_from: None,
                });
            }
            _ => to_read.push((f.clone(), Some(rel))),
        }
    }

    // 2. Inputs: skip those already in the pool (same source fingerprint, or a hard link of a pool
    // file); read the rest.
    let mut sources: BTreeMap<String, (Fingerprint, String)> = BTreeMap::new();
    let mut input_files = Vec::new();
    for i in inputs {
        if stat(i)?.is_dir() {
            input_files.extend(find_debs(i)?);
        } else {
            input_files.push(i.clone());
        }
    }
    for f in input_files {
        let abs = std::fs::canonicalize(&f)
            .map_err(|e| Error::io(format!("resolving {}", f.display()), e))?;
        if abs.starts_with(&root) {
            // Already inside the repository (its pool): covered by step 1.
            continue;
        }
        let fp = Fingerprint::of(&stat(&abs)?);
        let key_s = abs.to_string_lossy().into_owned();
        let known = old
            .sources
            .get(&key_s)
            .filter(|(sfp, pool)| *sfp == fp && pkgs.iter().any(|p| &p.pool == pool))
            .map(|(_, pool)| pool.clone())
            .or_else(|| pool_fps.get(&fp).cloned());
        match known {
            Some(pool) => {
                sources.insert(key_s, (fp, pool));
            }
            None => to_read.push((abs, None)),
        }
    }

    lap(&mut report, "scan");
    // 3. Read what is new, in parallel; every bad file is reported.
    let results = par_map(
        &to_read,
        opts.jobs,
        |(path, _)| -> Result<(CachedDeb, crate::Stanza)> {
            let md = stat(path)?;
            let info = scan_deb(path)?;
            let deb = CachedDeb {
                fp: Fingerprint::of(&md),
                sha256: info.sha256.clone(),
                package: info.package().to_string(),
                version: info.version().to_string(),
                arch: info.architecture().to_string(),
                control: info.control.to_string(),
            };
            Ok((deb, info.control))
        },
    );
    let mut errors = Vec::new();
    for ((path, in_pool), res) in to_read.iter().zip(results) {
        report.read.push(path.clone());
        match res {
            Ok((deb, control)) => {
                let (pool, place_from) = match in_pool {
                    Some(rel) => (rel.clone(), None),
                    None => (pool_path(&opts.component, &control), Some(path.clone())),
                };
                if place_from.is_some() {
                    sources.insert(path.to_string_lossy().into_owned(), (deb.fp, pool.clone()));
                }
                pkgs.push(Pkg {
                    pool,
                    deb,
                    origin: path.clone(),
                    place_from,
                });
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Error::BadInputs(errors));
    }

    lap(&mut report, "read");
    // 4. One file per package, version and architecture.
    let mut by_id: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut keep = Vec::new();
    for (i, p) in pkgs.iter().enumerate() {
        let id = (
            p.deb.package.clone(),
            p.deb.version.clone(),
            p.deb.arch.clone(),
        );
        match by_id.get(&id) {
            Some(&j) if pkgs[j].deb.sha256 == p.deb.sha256 => {} // the same file twice
            Some(&j) => errors.push(Error::Conflict {
                path: p.origin.display().to_string(),
                other: pkgs[j].origin.display().to_string(),
                package: id.0.clone(),
                version: id.1.clone(),
                arch: id.2.clone(),
            }),
            None => {
                if p.place_from.is_some()
                    && pkgs
                        .iter()
                        .any(|q| q.place_from.is_none() && q.pool == p.pool)
                {
                    // A different package already sits at that pool path.
                    let other = pkgs
                        .iter()
                        .find(|q| q.place_from.is_none() && q.pool == p.pool);
                    errors.push(Error::Invalid(format!(
                        "{}: pool path {} is taken by {}",
                        p.origin.display(),
                        p.pool,
                        other
                            .map(|o| o.origin.display().to_string())
                            .unwrap_or_default()
                    )));
                    continue;
                }
                by_id.insert(id, i);
                keep.push(i);
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::BadInputs(errors));
    }
    let mut pkgs: Vec<Pkg> = {
        let keep: BTreeSet<usize> = keep.into_iter().collect();
        pkgs.into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, p)| p)
            .collect()
    };

    // 5. Place new files into the pool (before the index that names them is published).
    // Durable before the index naming them is: copied files, and every folder that got entries.
    let mut dirty = BTreeSet::new();
    let mut to_sync = Vec::new();
    for p in &mut pkgs {
        if let Some(src) = p.place_from.take() {
            let dst = root.join(&p.pool);
            if place(&src, &dst, opts.copy, &mut dirty)? {
                to_sync.push(dst.clone());
            }
            p.deb.fp = Fingerprint::of(&stat(&dst)?);
            report.added.push(p.pool.clone());
        }
    }
    to_sync.extend(dirty);
    if to_sync.len() > 64 {
        // Many new folders (a first build): one syncfs of the repository's filesystem is far
        // cheaper than an fsync per folder.
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&root)
            .map_err(|e| Error::io(format!("opening {}", root.display()), e))?;
        nix::unistd::syncfs(f.as_raw_fd()).map_err(|e| {
            Error::io(
                format!("syncing the filesystem of {}", root.display()),
                e.into(),
            )
        })?;
    } else {
        sync_paths(&to_sync)?;
    }
    pkgs.sort_by(|a, b| {
        (&a.deb.package, &a.deb.version, &a.deb.arch).cmp(&(
            &b.deb.package,
            &b.deb.version,
            &b.deb.arch,
        ))
    });

    lap(&mut report, "place");
    // 6. Indices, Release, signatures, publish.
    let mut arches: BTreeSet<String> = opts.architectures.iter().cloned().collect();
    arches.extend(
        pkgs.iter()
            .filter(|p| p.deb.arch != "all")
            .map(|p| p.deb.arch.clone()),
    );
    if arches.is_empty() {
        arches.extend(DEFAULT_ARCHES.iter().map(|s| s.to_string()));
    }
    arches.remove("all");
    report.architectures = arches.iter().cloned().collect();
    let date = opts.date.unwrap_or_else(|| {
        let e = crate::deb::source_date_epoch();
        if e > 0 {
            e
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }
    });
    let (dists, release_sha) =
        publish_dists(&root, &pkgs, &arches, date, opts, key, &mut report.timings)?;
    report.dists = dists;
    report.release_sha256 = release_sha;
    report.packages = pkgs.len();

    lap(&mut report, "publish");
    // 7. The public key and the cache.
    let asc = root.join("key.asc");
    if !asc.exists() || old.key_fingerprint != key.fingerprint() {
        artifact::fsutil::write_atomic(&asc, &key.public_armored()?)?;
        artifact::fsutil::write_atomic(&root.join("key.gpg"), &key.public_binary()?)?;
    }
    if opts.index_cache {
        let cache = IndexCache {
            version: CACHE_VERSION,
            packages: pkgs
                .iter()
                .map(|p| (p.pool.clone(), p.deb.clone()))
                .collect(),
            sources,
            key_fingerprint: key.fingerprint().to_string(),
        };
        let text = serde_json::to_vec(&cache)
            .map_err(|e| Error::Invalid(format!("serialising the index cache: {e}")))?;
        // A cache: renamed into place but not fsynced (a torn or lost cache only costs re-reading;
        // fingerprints keep a stale one from being trusted).
        let tmp = state.join(format!(".index.json.{}", std::process::id()));
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &cache_path))
            .map_err(|e| Error::io(format!("writing {}", cache_path.display()), e))?;
    } else {
        let _ = std::fs::remove_dir_all(&state);
    }
    lap(&mut report, "cache");
    Ok(report)
}

/// Hard-link `src` to `dst` (a link appears complete), or copy it through a temporary name when
/// linking is not possible or `copy` is set. Returns whether the file was copied (and so still
/// needs an fsync).
fn place(src: &Path, dst: &Path, copy: bool, dirty: &mut BTreeSet<PathBuf>) -> Result<bool> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    if !dirty.contains(dir) {
        // Folders about to be created, and the existing one above them, get new entries.
        let mut a = dir;
        while !a.exists() {
            dirty.insert(a.to_path_buf());
            a = a.parent().unwrap_or(Path::new("/"));
        }
        dirty.insert(a.to_path_buf());
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    if !copy && std::fs::hard_link(src, dst).is_ok() {
        return Ok(false);
    }
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        dst.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(src, &tmp)
        .map_err(|e| Error::io(format!("copying {} to {}", src.display(), tmp.display()), e))?;
    std::fs::rename(&tmp, dst).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), dst.display()),
            e,
        )
    })?;
    Ok(true)
}

/// fsync files and folders, many at a time (the disk batches them).
fn sync_paths(paths: &[PathBuf]) -> Result<()> {
    for r in par_map(paths, 16, |p| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", p.display()), e))
    }) {
        r?;
    }
    Ok(())
}

/// RFC 2822 date in UTC, as in Debian's Release files.
pub fn rfc2822(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An index split into chunks of whole stanzas. A chunk ends after a package whose name hashes
/// to 0 mod [`CHUNK_SPREAD`] (or at [`CHUNK_MAX`] bytes), so inserting a package changes only the
/// chunk it lands in.
fn packages_chunks<'a>(pkgs: impl Iterator<Item = &'a Pkg>) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut cur = String::new();
    for p in pkgs {
        cur.push_str(&p.deb.control);
        cur.push_str(&format!(
            "Filename: {}\nSize: {}\nSHA256: {}\n\n",
            p.pool, p.deb.fp.size, p.deb.sha256
        ));
        if fnv1a(p.deb.package.as_bytes()) & (CHUNK_SPREAD - 1) == 0 || cur.len() >= CHUNK_MAX {
            chunks.push(std::mem::take(&mut cur).into_bytes());
        }
    }
    if !cur.is_empty() {
        chunks.push(cur.into_bytes());
    }
    chunks
}

/// A power of two.
const CHUNK_SPREAD: u64 = 32;
const CHUNK_MAX: usize = 256 * 1024;

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compressed chunks: gzip members (concatenated, apt reads every member) and xz blocks
/// (assembled into one stream). Cached in `.deb-repo/chunks/` by content digest and level.
#[derive(Clone)]
enum Piece {
    Gz(Vec<u8>),
    Xz(crate::xzblocks::Block),
}

fn compress_indices(
    plain: &[(String, Vec<Vec<u8>>)],
    opts: &RepoOptions,
    cache_dir: Option<&Path>,
) -> Result<Vec<(String, Vec<u8>)>> {
    // Every distinct chunk × {gz, xz}.
    let mut wanted: BTreeMap<(String, bool), &[u8]> = BTreeMap::new();
    for (_, chunks) in plain {
        for c in chunks {
            let d = artifact::sha256_bytes(c)[..32].to_string();
            wanted.insert((d.clone(), true), c);
            wanted.insert((d, false), c);
        }
    }
    let file_of = |d: &str, xz: bool| {
        if xz {
            format!("{d}.xz{}", opts.xz_level)
        } else {
            format!("{d}.gz{}", opts.gz_level)
        }
    };
    let mut have: BTreeMap<(String, bool), Piece> = BTreeMap::new();
    if let Some(dir) = cache_dir {
        for (d, xz) in wanted.keys() {
            if let Ok(b) = std::fs::read(dir.join(file_of(d, *xz))) {
                let piece = if *xz {
                    crate::xzblocks::from_cache(&b).map(Piece::Xz)
                } else {
                    Some(Piece::Gz(b))
                };
                if let Some(p) = piece {
                    have.insert((d.clone(), *xz), p);
                }
            }
        }
    }
    let todo: Vec<(&(String, bool), &&[u8])> = wanted
        .iter()
        .filter(|(k, _)| !have.contains_key(*k))
        .collect();
    let done = par_map(
        &todo,
        opts.jobs,
        |((_, xz), data)| -> std::io::Result<Piece> {
            Ok(if *xz {
                Piece::Xz(crate::xzblocks::block(data, opts.xz_level)?)
            } else {
                Piece::Gz(Compression::Gzip.compress_level(data, Some(opts.gz_level))?)
            })
        },
    );
    for ((k, _), piece) in todo.iter().zip(done) {
        let piece = piece.map_err(|e| Error::io("compressing Packages", e))?;
        if let Some(dir) = cache_dir {
            let bytes = match &piece {
                Piece::Gz(b) => b.clone(),
                Piece::Xz(b) => crate::xzblocks::to_cache(b),
            };
            let p = dir.join(file_of(&k.0, k.1));
            std::fs::write(&p, bytes)
                .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        }
        have.insert((*k).clone(), piece);
    }
    if let Some(dir) = cache_dir {
        // Drop cached chunks no index uses any more.
        let keep: BTreeSet<String> = wanted.keys().map(|(d, xz)| file_of(d, *xz)).collect();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if !keep.contains(&*e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let mut files = Vec::new();
    for (name, chunks) in plain {
        let keys: Vec<String> = chunks
            .iter()
            .map(|c| artifact::sha256_bytes(c)[..32].to_string())
            .collect();
        let mut gz = Vec::new();
        let mut blocks = Vec::new();
        for k in &keys {
            if let Some(Piece::Gz(b)) = have.get(&(k.clone(), false)) {
                gz.extend_from_slice(b);
            }
            if let Some(Piece::Xz(b)) = have.get(&(k.clone(), true)) {
                blocks.push(b);
            }
        }
        if gz.is_empty() {
            gz = Compression::Gzip
                .compress_level(b"", Some(opts.gz_level))
                .map_err(|e| Error::io("compressing Packages", e))?;
        }
        files.push((name.clone(), chunks.concat()));
        files.push((format!("{name}.gz"), gz));
        files.push((format!("{name}.xz"), crate::xzblocks::stream(blocks)));
    }
    Ok(files)
}

fn publish_dists(
    root: &Path,
    pkgs: &[Pkg],
    arches: &BTreeSet<String>,
    date: u64,
    opts: &RepoOptions,
    key: &SigningKey,
    timings: &mut Vec<(&'static str, f64)>,
) -> Result<(PathBuf, String)> {
    let t = std::time::Instant::now();
    let comp = &opts.component;
    // `all` packages are listed in each architecture's Packages; Release says so with
    // `No-Support-for-Architecture-all: Packages`, and there is no binary-all.
    let mut plain: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for a in arches {
        plain.push((
            format!("{comp}/binary-{a}/Packages"),
            packages_chunks(
                pkgs.iter()
                    .filter(|p| p.deb.arch == *a || p.deb.arch == "all"),
            ),
        ));
    }
    let cache_dir = if opts.index_cache {
        let d = root.join(STATE_DIR).join("chunks");
        std::fs::create_dir_all(&d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        Some(d)
    } else {
        None
    };
    let mut files = compress_indices(&plain, opts, cache_dir.as_deref())?;
    timings.push(("indices", t.elapsed().as_secs_f64()));
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let suite = &opts.suite;
    let mut release = String::new();
    let arch_list: Vec<&str> = arches.iter().map(String::as_str).collect();
    for (k, v) in [
        ("Origin", opts.origin.as_str()),
        ("Label", opts.label.as_str()),
        ("Suite", suite.as_str()),
        ("Codename", opts.codename.as_deref().unwrap_or(suite)),
        ("Date", &rfc2822(date)),
        ("Architectures", &arch_list.join(" ")),
        ("Components", comp.as_str()),
        ("Description", opts.description.as_str()),
        ("No-Support-for-Architecture-all", "Packages"),
        ("Acquire-By-Hash", "yes"),
    ] {
        // No trailing blanks anywhere (see SigningKey::sign_release), no line breaks.
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        if v.is_empty() {
            return Err(Error::Invalid(format!("Release field {k} is empty")));
        }
        release.push_str(&format!("{k}: {v}\n"));
    }
    release.push_str("SHA256:\n");
    for (name, data) in &files {
        release.push_str(&format!(
            " {} {:>8} {}\n",
            artifact::sha256_bytes(data),
            data.len(),
            name
        ));
    }
    // No final newline: the text a cleartext signature covers is exactly this file, so the
    // signature block of InRelease is also a valid detached signature (see sign_release).
    let release = release.trim_end().to_string();
    let release_sha = artifact::sha256_bytes(release.as_bytes());

    // The generation being replaced (Swap layout): its indices stay reachable by hash.
    let previous_suite = match opts.layout {
        DistsLayout::Swap => std::fs::read_link(root.join("dists"))
            .ok()
            .map(|t| root.join(t).join(suite)),
        DistsLayout::Plain => None,
    };
    let write_tree = |dists: &Path| -> Result<f64> {
        let sdir = dists.join(suite);
        let mut by_hash = Vec::new();
        for (name, data) in &files {
            let p = sdir.join(name);
            let parent = p.parent().unwrap_or(&sdir);
            let bh = parent.join("by-hash/SHA256");
            std::fs::create_dir_all(&bh)
                .map_err(|e| Error::io(format!("creating {}", bh.display()), e))?;
            std::fs::write(&p, data)
                .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
            // Acquire-By-Hash: apt fetches `by-hash/SHA256/<sha256>`, a hard link.
            let link = bh.join(artifact::sha256_bytes(data));
            if !link.exists() {
                std::fs::hard_link(&p, &link)
                    .map_err(|e| Error::io(format!("linking {}", link.display()), e))?;
            }
            by_hash.push(link);
        }
        // The previous generation's indices, by their hashes in its Release: an apt that read the
        // old InRelease just before the swap still finds what it names.
        if let Some(prev) = &previous_suite {
            let text = std::fs::read_to_string(prev.join("Release")).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with(' ')) {
                let f: Vec<&str> = line.split_whitespace().collect();
                let [sha, _, name] = f[..] else { continue };
                let Some(dir) = Path::new(name).parent() else {
                    continue;
                };
                let bh = sdir.join(dir).join("by-hash/SHA256");
                let link = bh.join(sha);
                if bh.is_dir()
                    && !link.exists()
                    && std::fs::hard_link(prev.join(name), &link).is_ok()
                {
                    by_hash.push(link);
                }
            }
        }
        let rel = sdir.join("Release");
        std::fs::write(&rel, &release)
            .map_err(|e| Error::io(format!("writing {}", rel.display()), e))?;
        // The indices are fsynced while gpg signs; then the signed files and the folders.
        let mut paths: Vec<PathBuf> = files.iter().map(|(n, _)| sdir.join(n)).collect();
        paths.extend(by_hash);
        let t = std::time::Instant::now();
        let (signed, synced) = std::thread::scope(|s| {
            let sync = s.spawn(|| sync_paths(&paths));
            let signed = key.sign_release(&rel).map(|()| t.elapsed().as_secs_f64());
            (signed, sync.join())
        });
        let signed = signed?;
        synced.map_err(|_| Error::Invalid("fsync thread panicked".into()))??;
        let dirs: BTreeSet<PathBuf> = paths
            .iter()
            .flat_map(|p| {
                p.ancestors()
                    .skip(1)
                    .take_while(|a| a.starts_with(dists))
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .collect();
        paths.clear();
        for n in ["Release", "InRelease", "Release.gpg"] {
            paths.push(sdir.join(n));
        }
        paths.extend(dirs);
        sync_paths(&paths)?;
        Ok(signed)
    };

    let link = root.join("dists");
    match opts.layout {
        DistsLayout::Plain => {
            if link.exists() {
                std::fs::remove_dir_all(&link)
                    .map_err(|e| Error::io(format!("removing {}", link.display()), e))?;
            }
            let signed = write_tree(&link)?;
            timings.push(("sign", signed));
            Ok((link, release_sha))
        }
        DistsLayout::Swap => {
            let gens = root.join(GEN_DIR);
            std::fs::create_dir_all(&gens)
                .map_err(|e| Error::io(format!("creating {}", gens.display()), e))?;
            let staging = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempdir_in(&gens)
                .map_err(|e| {
                    Error::io(
                        format!("creating a staging folder in {}", gens.display()),
                        e,
                    )
                })?;
            let t = std::time::Instant::now();
            let signed = write_tree(staging.path())?;
            timings.push(("sign", signed));
            let inrelease = std::fs::read(staging.path().join(suite).join("InRelease"))
                .map_err(|e| Error::io("reading InRelease", e))?;
            let name = artifact::sha256_bytes(&inrelease)[..16].to_string();
            let fin = gens.join(&name);
            let previous = std::fs::read_link(&link).ok();
            if fin.exists() {
                // Identical generation already there (same content, same signature).
            } else {
                let p = staging.keep();
                std::fs::rename(&p, &fin)
                    .and_then(|()| std::fs::File::open(&gens)?.sync_all())
                    .map_err(|e| {
                        Error::io(format!("renaming {} to {}", p.display(), fin.display()), e)
                    })?;
            }
            // Publish: a new symlink renamed over `dists` (atomic). A real `dists/` folder from
            // elsewhere is moved aside first.
            if let Ok(md) = std::fs::symlink_metadata(&link) {
                if !md.file_type().is_symlink() {
                    let aside = gens.join(format!("old-{}", std::process::id()));
                    std::fs::rename(&link, &aside)
                        .map_err(|e| Error::io(format!("moving {} aside", link.display()), e))?;
                }
            }
            let tmp_link = root.join(format!(".dists-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp_link);
            let target = PathBuf::from(GEN_DIR).join(&name);
            std::os::unix::fs::symlink(&target, &tmp_link)
                .map_err(|e| Error::io(format!("creating symlink {}", tmp_link.display()), e))?;
            std::fs::rename(&tmp_link, &link)
                .map_err(|e| Error::io(format!("publishing {}", link.display()), e))?;
            artifact::fsutil::sync_dir(root)?;
            // Keep the current and the previous generation (a reader may still be on it).
            let keep: BTreeSet<PathBuf> = [Some(target), previous].into_iter().flatten().collect();
            if let Ok(rd) = std::fs::read_dir(&gens) {
                for e in rd.flatten() {
                    let rel = PathBuf::from(GEN_DIR).join(e.file_name());
                    if !keep.contains(&rel) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            timings.push(("write+swap", t.elapsed().as_secs_f64() - signed));
            Ok((fin, release_sha))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(rfc2822(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 UTC");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 UTC");
    }

    #[test]
    fn pool_paths() {
        let s = crate::Stanza::parse(
            "Package: libfoo1\nSource: libfoo (1.2-1)\nVersion: 1:1.2-1+b1\nArchitecture: arm64\n",
        )
        .unwrap();
        assert_eq!(
            pool_path("main", &s),
            "pool/main/libf/libfoo1_1.2-1+b1_arm64.deb"
        );
        let s = crate::Stanza::parse("Package: hello\nVersion: 1\nArchitecture: all\n").unwrap();
        assert_eq!(pool_path("main", &s), "pool/main/h/hello_1_all.deb");
    }

    #[test]
    fn par_map_keeps_order() {
        let v: Vec<u32> = (0..100).collect();
        assert_eq!(
            par_map(&v, 4, |x| x * 2),
            v.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}

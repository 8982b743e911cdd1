//! An APT repository from a set of `.deb` files.
//!
//! Layout of a repository folder:
//!
//! ```text
//! pool/<component>/<p>/<source>/<package>_<version>_<arch>.deb   the packages (the source of truth)
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

use crate::deb::{read_deb, Compression};
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
    /// xz preset for `Packages.xz` (0-9).
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
            xz_level: 6,
            gz_level: 9,
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

/// `pool/<component>/<prefix>/<source>/<package>_<version>_<arch>.deb`.
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
        "pool/{component}/{prefix}/{source}/{}",
        crate::deb::deb_file_name(
            package,
            control.get("Version").unwrap_or("0"),
            control.get("Architecture").unwrap_or("all")
        )
    )
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
    let old = if opts.index_cache {
        load_cache(&cache_path)
    } else {
        IndexCache::default()
    };
    let mut report = Report::default();

    // 1. What the pool holds: cached entries whose fingerprint still matches, others to read.
    let pool_dir = root.join("pool");
    let pool_files = if pool_dir.is_dir() {
        find_debs(&pool_dir)?
    } else {
        Vec::new()
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

    // 3. Read what is new, in parallel; every bad file is reported.
    let results = par_map(
        &to_read,
        opts.jobs,
        |(path, _)| -> Result<(CachedDeb, crate::Stanza)> {
            let md = stat(path)?;
            let info = read_deb(path)?;
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
    for p in &mut pkgs {
        if let Some(src) = p.place_from.take() {
            let dst = root.join(&p.pool);
            place(&src, &dst, opts.copy)?;
            p.deb.fp = Fingerprint::of(&stat(&dst)?);
            report.added.push(p.pool.clone());
        }
    }
    pkgs.sort_by(|a, b| {
        (&a.deb.package, &a.deb.version, &a.deb.arch).cmp(&(
            &b.deb.package,
            &b.deb.version,
            &b.deb.arch,
        ))
    });

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
    let (dists, release_sha) = publish_dists(&root, &pkgs, &arches, date, opts, key)?;
    report.dists = dists;
    report.release_sha256 = release_sha;
    report.packages = pkgs.len();

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
        artifact::fsutil::write_atomic(&cache_path, &text)?;
    } else {
        let _ = std::fs::remove_dir_all(&state);
    }
    Ok(report)
}

/// Hard-link (or copy) `src` to `dst` through a temporary name, so `dst` appears complete.
fn place(src: &Path, dst: &Path, copy: bool) -> Result<()> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        dst.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    let linked = !copy && std::fs::hard_link(src, &tmp).is_ok();
    if !linked {
        std::fs::copy(src, &tmp)
            .map_err(|e| Error::io(format!("copying {} to {}", src.display(), tmp.display()), e))?;
        let f = std::fs::File::open(&tmp)
            .map_err(|e| Error::io(format!("opening {}", tmp.display()), e))?;
        f.sync_all()
            .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
    }
    std::fs::rename(&tmp, dst).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), dst.display()),
            e,
        )
    })
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

fn packages_text<'a>(pkgs: impl Iterator<Item = &'a Pkg>) -> Vec<u8> {
    let mut out = String::new();
    for p in pkgs {
        out.push_str(&p.deb.control);
        out.push_str(&format!(
            "Filename: {}\nSize: {}\nSHA256: {}\n\n",
            p.pool, p.deb.fp.size, p.deb.sha256
        ));
    }
    out.into_bytes()
}

fn publish_dists(
    root: &Path,
    pkgs: &[Pkg],
    arches: &BTreeSet<String>,
    date: u64,
    opts: &RepoOptions,
    key: &SigningKey,
) -> Result<(PathBuf, String)> {
    let comp = &opts.component;
    // (relative path under dists/<suite>, content)
    let mut plain: Vec<(String, Vec<u8>)> = Vec::new();
    plain.push((
        format!("{comp}/binary-all/Packages"),
        packages_text(pkgs.iter().filter(|p| p.deb.arch == "all")),
    ));
    for a in arches {
        plain.push((
            format!("{comp}/binary-{a}/Packages"),
            packages_text(
                pkgs.iter()
                    .filter(|p| p.deb.arch == *a || p.deb.arch == "all"),
            ),
        ));
    }
    let mut jobs: Vec<(usize, Compression)> = Vec::new();
    for i in 0..plain.len() {
        jobs.push((i, Compression::Xz));
        jobs.push((i, Compression::Gzip));
    }
    let compressed = par_map(&jobs, 0, |(i, c)| {
        let level = match c {
            Compression::Xz => opts.xz_level,
            _ => opts.gz_level,
        };
        c.compress_level(&plain[*i].1, Some(level))
            .map(|b| (format!("{}{}", plain[*i].0, c.suffix()), b))
    });
    let mut files: Vec<(String, Vec<u8>)> = plain;
    for c in compressed {
        files.push(c.map_err(|e| Error::io("compressing Packages", e))?);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let suite = &opts.suite;
    let mut release = String::new();
    let arch_list: Vec<&str> = std::iter::once("all")
        .chain(arches.iter().map(String::as_str))
        .collect();
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
    ] {
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
    let release_sha = artifact::sha256_bytes(release.as_bytes());

    let write_tree = |dists: &Path| -> Result<()> {
        let sdir = dists.join(suite);
        for (name, data) in &files {
            let p = sdir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            }
            std::fs::write(&p, data)
                .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        }
        let rel = sdir.join("Release");
        std::fs::write(&rel, &release)
            .map_err(|e| Error::io(format!("writing {}", rel.display()), e))?;
        key.sign_release(&rel)?;
        artifact::fsutil::sync_tree(dists)?;
        Ok(())
    };

    let link = root.join("dists");
    match opts.layout {
        DistsLayout::Plain => {
            if link.exists() {
                std::fs::remove_dir_all(&link)
                    .map_err(|e| Error::io(format!("removing {}", link.display()), e))?;
            }
            write_tree(&link)?;
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
            write_tree(staging.path())?;
            let inrelease = std::fs::read(staging.path().join(suite).join("InRelease"))
                .map_err(|e| Error::io("reading InRelease", e))?;
            let name = artifact::sha256_bytes(&inrelease)[..16].to_string();
            let fin = gens.join(&name);
            let previous = std::fs::read_link(&link).ok();
            if fin.exists() {
                // Identical generation already there (same content, same signature).
            } else {
                let p = staging.keep();
                std::fs::rename(&p, &fin).map_err(|e| {
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
            "pool/main/libf/libfoo/libfoo1_1.2-1+b1_arm64.deb"
        );
        let s = crate::Stanza::parse("Package: hello\nVersion: 1\nArchitecture: all\n").unwrap();
        assert_eq!(pool_path("main", &s), "pool/main/h/hello/hello_1_all.deb");
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

//! rootfs-builder: a Debian root filesystem tarball per architecture, built by mmdebstrap.
//!
//! From a [`RootfsSpec`] (suite, arch, mirror, components, variant, packages, hostname, locale,
//! timezone, the apt sources left in the image, os-release fields) one mmdebstrap run builds the
//! tree, cross-arch through qemu-user/binfmt, and customises it through hooks in the same run
//! ([`hooks`]): root locked, no SSH host keys, empty `/etc/machine-id`, no apt lists or caches,
//! no resolv.conf or hostname of the build host, locale generated, timezone set.
//!
//! The artifact (`kind: rootfs`) holds `rootfs-<arch>-<suite>-<short digest>.tar.zst`
//! (multithreaded zstd), its `.sha256`, and a manifest whose metadata lists every installed
//! package read from the tarball's own `/var/lib/dpkg/status`.
//!
//! Cache key: the canonical spec, the mmdebstrap recipe (arguments and hooks), the zstd
//! parameters, the mmdebstrap version, and the mirror state: the sha256 of the suite's InRelease
//! fetched once per build ([`mirror`]). `SOURCE_DATE_EPOCH` defaults to that Release's `Date`, so
//! two builds from the same mirror state give the same bytes.

pub mod hooks;
pub mod mirror;
pub mod mmdebstrap;
pub mod spec;
pub mod status;
pub mod tarball;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use artifact::{CacheKey, Entry, IoContext, Manifest, Store};
use serde::Serialize;

pub use mirror::{MirrorState, Retry};
pub use spec::{Arch, ImageSources, OsRelease, RootfsSpec, Suite};
pub use status::Package;
pub use tarball::Zstd;

/// The artifact kind in manifests and the store.
pub const KIND: &str = "rootfs";

/// Errors of the rootfs builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {value:?} is not valid (expected {expected})")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    #[error("mirror {mirror} unreachable after {attempts} attempts: {message}")]
    Mirror {
        mirror: String,
        attempts: u32,
        message: String,
    },
    #[error("the mirror changed during the build (InRelease sha256 {before} when the build started, {during} as apt saw it); run the build again")]
    MirrorMoved { before: String, during: String },
    #[error("the built rootfs breaks its promises:\n  {}", .0.join("\n  "))]
    Unclean(Vec<String>),
    #[error("reading the dpkg status of the built rootfs: {0}")]
    Status(#[from] status::StatusError),
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    #[error(transparent)]
    Command(#[from] artifact::cmd::CommandError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run a build (not part of the artifact's identity, except the zstd parameters).
#[derive(Debug, Clone)]
pub struct Options {
    /// The mmdebstrap program.
    pub mmdebstrap: PathBuf,
    pub retry: Retry,
    pub zstd: Zstd,
    /// zstd worker threads (the output does not depend on it).
    pub zstd_workers: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mmdebstrap: PathBuf::from("mmdebstrap"),
            retry: Retry::default(),
            zstd: Zstd::default(),
            zstd_workers: tarball::zstd_workers(),
        }
    }
}

/// What the cache key covers, serialised canonically.
#[derive(Debug, Serialize)]
struct KeyInputs<'a> {
    spec: &'a RootfsSpec,
    source_date_epoch: u64,
    recipe: Vec<String>,
    zstd: Zstd,
}

/// Metadata of a rootfs artifact (`manifest.metadata`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Metadata {
    pub tarball: String,
    pub tarball_sha256: String,
    pub suite: String,
    pub mirror: String,
    pub mirror_inrelease_sha256: String,
    pub source_date_epoch: u64,
    pub mmdebstrap_version: String,
    pub hostname: String,
    pub locale: String,
    pub timezone: String,
    pub image_id: String,
    pub image_version: String,
    /// Uncompressed tar size.
    pub tar_bytes: u64,
    pub installed_size_kib: u64,
    pub build_seconds: f64,
    pub packages: Vec<Package>,
}

/// A rootfs build: spec + options, implementing [`artifact::Builder`].
///
/// `cache_key` fetches the suite's InRelease (once) and remembers the mirror state for `build`.
pub struct RootfsBuilder {
    pub spec: RootfsSpec,
    pub options: Options,
    state: RefCell<Option<(MirrorState, String)>>,
}

impl RootfsBuilder {
    /// Validate the spec (before anything touches the network) and make a builder.
    pub fn new(spec: RootfsSpec, options: Options) -> Result<Self> {
        spec.validate()?;
        Ok(RootfsBuilder {
            spec,
            options,
            state: RefCell::new(None),
        })
    }

    /// The mirror state and mmdebstrap version, fetched on first use.
    fn resolved(&self) -> Result<(MirrorState, String)> {
        if let Some(s) = self.state.borrow().as_ref() {
            return Ok(s.clone());
        }
        let m = mirror::fetch(
            &self.spec.mirror,
            self.spec.suite.as_str(),
            self.options.retry,
        )?;
        let prog = self.options.mmdebstrap.to_string_lossy().into_owned();
        let v = artifact::cmd::tool_version(&prog, "mmdebstrap");
        *self.state.borrow_mut() = Some((m.clone(), v.clone()));
        Ok((m, v))
    }

    /// Forget the fetched mirror state (the next key fetches again).
    pub fn refresh(&self) {
        *self.state.borrow_mut() = None;
    }

    /// The SOURCE_DATE_EPOCH of this build.
    pub fn source_date_epoch(&self) -> Result<u64> {
        match self.spec.source_date_epoch {
            Some(t) => Ok(t),
            None => Ok(self.resolved()?.0.date_epoch),
        }
    }

    /// The tarball's file name for a key.
    pub fn tarball_name(&self, key: &CacheKey) -> String {
        format!(
            "rootfs-{}-{}-{}.tar.zst",
            self.spec.arch,
            self.spec.suite,
            key.short()
        )
    }

    fn build_into(&self, key: &CacheKey, staging: &Path) -> Result<Manifest> {
        let started = Instant::now();
        let (state, mmdebstrap_version) = self.resolved()?;
        let sde = self.source_date_epoch()?;
        let work = staging.join("work");
        let hook_out = work.join("hook");
        std::fs::create_dir_all(&hook_out)
            .io_context(|| format!("creating {}", hook_out.display()))?;
        let tar = work.join("rootfs.tar");
        tracing::info!(
            "building {} ({} packages on {}) from {} at SOURCE_DATE_EPOCH={sde}",
            self.spec.name(),
            self.spec.install_packages().len(),
            self.spec.variant,
            self.spec.mirror
        );
        let mut cmd = mmdebstrap::command(
            &self.options.mmdebstrap,
            &self.spec,
            sde,
            &tar,
            &work,
            &hook_out,
        );
        artifact::cmd::run_logged(&mut cmd)?;

        // The suite index apt used must be the one the key names.
        let rec = hook_out.join("apt-inrelease.sha256");
        let during =
            std::fs::read_to_string(&rec).io_context(|| format!("reading {}", rec.display()))?;
        let during = during.lines().next().unwrap_or("").trim().to_string();
        if during != state.inrelease_sha256 {
            return Err(Error::MirrorMoved {
                before: state.inrelease_sha256,
                during,
            });
        }

        let name = self.tarball_name(key);
        let out = staging.join(&name);
        let t = Instant::now();
        let (tar_bytes, zst_bytes) =
            tarball::compress(&tar, &out, self.options.zstd, self.options.zstd_workers)?;
        tracing::info!(
            "compressed {} MiB to {} MiB in {:.1}s",
            tar_bytes >> 20,
            zst_bytes >> 20,
            t.elapsed().as_secs_f64()
        );
        std::fs::remove_dir_all(&work).io_context(|| format!("removing {}", work.display()))?;

        // Checks and the package list come from the published tarball itself.
        let contents = tarball::read_contents(&out)?;
        let problems = contents.problems(
            self.spec.arch,
            &self.spec.hostname,
            &self.spec.os_release.image_id,
        );
        if !problems.is_empty() {
            return Err(Error::Unclean(problems));
        }
        let packages = status::parse(&contents.dpkg_status().unwrap_or_default())?;
        let (sha, _) = artifact::sha256_file(&out)?;
        tarball::write_sha256_file(&out, &sha)?;

        let meta = Metadata {
            tarball: name.clone(),
            tarball_sha256: sha,
            suite: self.spec.suite.to_string(),
            mirror: self.spec.mirror.clone(),
            mirror_inrelease_sha256: state.inrelease_sha256.clone(),
            source_date_epoch: sde,
            mmdebstrap_version,
            hostname: self.spec.hostname.clone(),
            locale: self.spec.locale.clone(),
            timezone: self.spec.timezone.clone(),
            image_id: self.spec.os_release.image_id.clone(),
            image_version: self.spec.os_release.image_version.clone(),
            tar_bytes,
            installed_size_kib: status::total_installed_kib(&packages),
            build_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            packages,
        };
        let mut m = Manifest::new(
            KIND,
            &self.spec.name(),
            &mirror::format_epoch(sde),
            self.spec.arch.as_str(),
            &key.digest(),
        );
        m.metadata = serde_json::to_value(&meta).map_err(|e| artifact::Error::Manifest {
            path: name,
            message: e.to_string(),
        })?;
        Ok(m)
    }
}

impl artifact::Builder for RootfsBuilder {
    type Error = Error;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn cache_key(&self) -> Result<CacheKey> {
        let (state, mmdebstrap_version) = self.resolved()?;
        let inputs = KeyInputs {
            spec: &self.spec,
            source_date_epoch: self.source_date_epoch()?,
            recipe: mmdebstrap::recipe(&self.spec),
            zstd: self.options.zstd,
        };
        Ok(CacheKey::new(KIND, &inputs)
            .input("mirror-inrelease", &state.inrelease_sha256)
            .tool("mmdebstrap", &mmdebstrap_version))
    }

    fn build(&self, key: &CacheKey, staging: &Path) -> Result<Manifest> {
        self.build_into(key, staging)
    }

    fn validate(&self, entry: &Entry) -> Result<()> {
        let meta = metadata(entry)?;
        let f = entry
            .manifest
            .file(&meta.tarball)
            .ok_or_else(|| artifact::Error::Corrupt {
                path: entry.dir.display().to_string(),
                message: format!("manifest does not list {}", meta.tarball),
            })?;
        if f.sha256 != meta.tarball_sha256 {
            return Err(artifact::Error::Corrupt {
                path: entry.path(&meta.tarball).display().to_string(),
                message: "sha256 differs from the metadata's".into(),
            }
            .into());
        }
        Ok(())
    }
}

/// The rootfs metadata of an entry.
pub fn metadata(entry: &Entry) -> Result<Metadata> {
    serde_json::from_value(entry.manifest.metadata.clone()).map_err(|e| {
        artifact::Error::Manifest {
            path: entry.dir.join("manifest.json").display().to_string(),
            message: format!("rootfs metadata: {e}"),
        }
        .into()
    })
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub entry: Entry,
    pub cached: bool,
    pub tarball: PathBuf,
}

/// Build (or reuse) the rootfs of `spec` in `store`.
///
/// Validates the spec first (no network before that), fetches the mirror state, and on a cache
/// miss builds inside [`Store::publish`]: a failed or killed build leaves no trusted artifact. If
/// the mirror moves between the key and the build, the key is recomputed and the build retried
/// once.
pub fn build(store: &Store, spec: RootfsSpec, options: Options) -> Result<Built> {
    use artifact::Builder as _;
    let b = RootfsBuilder::new(spec, options)?;
    let mut tries = 0;
    loop {
        tries += 1;
        let key = b.cache_key()?;
        let r = store.get_or_build(&key, |staging| b.build(&key, staging));
        match r {
            Ok((entry, cached)) => {
                b.validate(&entry)?;
                let meta = metadata(&entry)?;
                let tarball = entry.path(&meta.tarball);
                return Ok(Built {
                    entry,
                    cached,
                    tarball,
                });
            }
            Err(Error::MirrorMoved { .. }) if tries < 2 => {
                tracing::warn!("the mirror changed during the build; building again");
                b.refresh();
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_spec_fails_before_network() {
        // The mirror is unreachable: if validation came after fetching, the error would name it.
        let spec = RootfsSpec {
            mirror: "http://127.0.0.1:9/debian".into(),
            hostname: "bad host".into(),
            ..Default::default()
        };
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let e = build(&store, spec, Options::default()).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        assert!(e.to_string().starts_with("hostname: \"bad host\""), "{e}");
    }

    #[test]
    fn unreachable_mirror_leaves_nothing() {
        let spec = RootfsSpec {
            mirror: "http://127.0.0.1:9/debian".into(),
            ..Default::default()
        };
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let opts = Options {
            retry: Retry {
                attempts: 2,
                delay: std::time::Duration::from_millis(10),
                connect_timeout: std::time::Duration::from_secs(2),
            },
            ..Default::default()
        };
        let e = build(&store, spec, opts).unwrap_err().to_string();
        assert!(
            e.starts_with("mirror http://127.0.0.1:9/debian unreachable after 2 attempts"),
            "{e}"
        );
        assert!(store.list().unwrap().is_empty());
    }
}

//! The artifact contract shared by every drydock builder.
//!
//! An *artifact* is a folder holding `manifest.json` plus the files it lists. The manifest names the
//! artifact (kind, name, version, arch), records the digest of the inputs that produced it (its cache
//! key) and lists each file with its size and sha256.
//!
//! This crate knows nothing about boards; it only provides:
//! - [`digest`]: sha256 helpers and [`CacheKey`], the digest of a canonical spec, consumed artifacts and
//!   host tool versions;
//! - [`Manifest`]: reading, writing and verifying manifests;
//! - [`Store`]: the content-addressed local store with atomic publish, lookup, verify and gc;
//! - [`cmd`]: the one way drydock runs host tools;
//! - [`Builder`]: the trait every artifact builder implements.

pub mod cmd;
pub mod digest;
pub mod fsutil;
pub mod manifest;
pub mod store;

pub use digest::{sha256_bytes, sha256_file, CacheKey};
pub use manifest::{FileEntry, Manifest};
pub use store::{Entry, Store};

/// Errors of the artifact contract.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid manifest: {message}")]
    Manifest { path: String, message: String },
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error(transparent)]
    Command(#[from] cmd::CommandError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human context to an `io::Result`.
pub trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// What every artifact builder provides: a stable kind name, a cache key computed before any work,
/// the build itself into an empty staging folder, and validation of a finished artifact.
///
/// The orchestrator calls [`Builder::cache_key`], looks the key up in the [`Store`], and only on a
/// miss calls [`Builder::build`] inside [`Store::publish`].
pub trait Builder {
    /// Error type of this builder.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stable kind name used in manifests and the store (`rootfs`, `kernel`, `raw-image`, ...).
    fn kind(&self) -> &'static str;

    /// The cache key: digest of the canonical spec, consumed artifacts and host tool versions.
    fn cache_key(&self) -> std::result::Result<CacheKey, Self::Error>;

    /// Build the artifact into `staging` (an empty folder) and return its manifest (which the store
    /// writes last). `key` is the value [`Builder::cache_key`] returned.
    fn build(
        &self,
        key: &CacheKey,
        staging: &std::path::Path,
    ) -> std::result::Result<Manifest, Self::Error>;

    /// Check a finished artifact beyond its file hashes (e.g. the tarball opens). Default: nothing.
    fn validate(&self, _artifact: &Entry) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
}

/// For tests that need a host capability (a tool, root, loop devices): outside CI, print that
/// the test is skipped and why; under CI (`CI=true`), where scripts/setup-host.sh provides all
/// of them, a missing capability is a failure, so no test passes there without running.
pub fn skip_test(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI this test must run: {why}"
    );
    eprintln!("skipping: {why}");
}

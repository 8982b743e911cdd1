//! kernel-packager: a board's kernel as `.deb` packages plus a container-readiness report.
//!
//! - [`config`]: kernel `.config` and fragment parsing; fragment-vs-resolved comparison.
//! - [`readiness`]: the container-readiness rules (Docker's check-config, Kubernetes, podman).
//! - [`mirror`]: Debian packages through the signed InRelease → Packages → .deb chain.
//! - [`source`]: cross-compiling a kernel tree with fragments, packaged by `make bindeb-pkg`.
//! - [`builder`]: the kernel artifact (`.deb`s, report, manifest) through the store.
//! - [`input`]: read a config from a `.config`, a gzip/xz-compressed config or a kernel `.deb`
//!   (through deb-repo's reader, [`debfile`]).

pub mod builder;
pub mod config;
pub mod debfile;
pub mod input;
pub mod mirror;
pub mod readiness;
pub mod source;
pub mod spec;
pub mod version;

pub use config::{KernelConfig, Value};
pub use readiness::{Level, Report};

/// Errors of the kernel packager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{path}: {message}")]
    Deb { path: String, message: String },
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    #[error(transparent)]
    Command(#[from] artifact::cmd::CommandError),
    #[error("{url}: not found on the mirror")]
    NotFound { url: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{what}: hash mismatch: expected {expected}, got {got}")]
    HashMismatch {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{what}: {message}")]
    Signature { what: String, message: String },
    #[error("package {name} is not on the mirror: {place}")]
    MissingPackage { name: String, place: String },
    #[error("kernel config {config} does not meet the {level} readiness level; missing: {}", .missing.join(", "))]
    NotReady {
        level: readiness::Level,
        config: String,
        missing: Vec<String>,
    },
    #[error("the kernel's Kconfig dropped fragment options (unmet dependencies or a conflicting select):\n  {}", .issues.join("\n  "))]
    FragmentDropped { issues: Vec<String> },
    /// Bad input given by the user (a missing file, a bad option value...).
    #[error("{0}")]
    BadInput(String),
}

impl Error {
    /// Whether the error is caused by the input (exit code 2) rather than the environment.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::Deb { .. }
                | Error::BadInput(_)
                | Error::MissingPackage { .. }
                | Error::FragmentDropped { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human context to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

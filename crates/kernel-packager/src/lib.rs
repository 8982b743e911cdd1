//! kernel-packager: a board's kernel as `.deb` packages plus a container-readiness report.
//!
//! - [`config`]: kernel `.config` and fragment parsing; fragment-vs-resolved comparison.
//! - [`readiness`]: the container-readiness rules (Docker's check-config, Kubernetes, podman).
//! - [`input`]: read a config from a `.config`, a gzip/xz-compressed config or a kernel `.deb`.

pub mod config;
pub mod debfile;
pub mod input;
pub mod readiness;

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
    /// Bad input given by the user (a missing file, a bad option value...).
    #[error("{0}")]
    BadInput(String),
}

impl Error {
    /// Whether the error is caused by the input (exit code 2) rather than the environment.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::Config(_) | Error::Deb { .. } | Error::BadInput(_)
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

//! deb-repo: read and write Debian binary packages and build, sign and serve an APT repository.
//!
//! - [`control`]: deb822 control stanzas (strict parser, writer).
//! - [`ar`]: the `ar` container of a `.deb`.
//! - [`deb`]: [`deb::read_deb`] / [`deb::DebReader`] to read packages, [`deb::DebBuilder`] to
//!   write policy-correct ones with deterministic bytes.

pub mod ar;
pub mod control;
pub mod deb;
mod tarw;

pub use control::{ControlError, Stanza};
pub use deb::{read_deb, Compression, DebBuilder, DebInfo, DebReader};

/// Errors of the crate. Every variant names the file or step it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Deb {
        path: String,
        #[source]
        source: deb::DebError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: building package: {source}")]
    Build {
        path: String,
        #[source]
        source: deb::BuildError,
    },
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    #[error(transparent)]
    Command(#[from] artifact::cmd::CommandError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! deb-repo: read and write Debian binary packages and build, sign and serve an APT repository.
//!
//! - [`control`]: deb822 control stanzas (strict parser, writer).
//! - [`ar`]: the `ar` container of a `.deb`.
//! - [`deb`]: [`deb::read_deb`] / [`deb::DebReader`] to read packages, [`deb::DebBuilder`] to
//!   write policy-correct ones with deterministic bytes.
//! - [`repo`]: a signed APT repository from `.deb` files, re-indexed incrementally and published
//!   atomically; [`gpg`] keeps its signing key.
//! - [`serve`]: a read-only HTTP server for a repository folder.

pub mod ar;
pub mod bench;
pub mod control;
pub mod deb;
pub mod gpg;
pub mod repo;
pub mod serve;
mod tarw;
pub mod xzblocks;

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
    #[error("{path}: claims {package} {version} {arch}, as does the different file {other}")]
    Conflict {
        path: String,
        other: String,
        package: String,
        version: String,
        arch: String,
    },
    #[error("{}", join_errors(.0))]
    BadInputs(Vec<Error>),
    #[error("{0}")]
    Invalid(String),
}

fn join_errors(errors: &[Error]) -> String {
    let mut s = format!(
        "{} bad input file(s); the repository was not changed:",
        errors.len()
    );
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
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

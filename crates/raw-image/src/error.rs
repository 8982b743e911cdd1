//! The crate's error type.

/// Errors of raw-image: I/O with context, host tools, partition tables read back, filesystems
/// accessed inside an image, and layouts that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Command(#[from] artifact::cmd::CommandError),
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    /// A partition table that cannot be read (bad signature, checksum, bounds).
    #[error("partition table: {0}")]
    Table(String),
    /// A file system inside an image: a path that is missing, output we cannot parse.
    #[error("{fs} at byte {offset} of {image}: {message}")]
    Fs {
        fs: &'static str,
        image: String,
        offset: u64,
        message: String,
    },
    /// A layout that cannot be built; the message names the partition and the numbers.
    #[error("layout {layout}: {message}")]
    Layout { layout: String, message: String },
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

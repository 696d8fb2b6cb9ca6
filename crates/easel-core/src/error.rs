//! The library's typed errors: each says what was expected, what was found, and which file.

use std::path::PathBuf;

/// Everything that can go wrong in easel's compute and data code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: {what}, not a regular file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{}: {bytes} bytes is more than the {limit} bytes easel reads from such a file", path.display())]
    TooLarge { path: PathBuf, bytes: u64, limit: u64 },
    #[error("{}: the file is empty", path.display())]
    EmptyFile { path: PathBuf },
    #[error("{}: not a readable image ({reason})", path.display())]
    Image { path: PathBuf, reason: String },
    #[error("{}: no images found (looked for {exts})", path.display())]
    NoImages { path: PathBuf, exts: String },
    #[error("{}: not a weights file easel can read: {reason}", path.display())]
    Weights { path: PathBuf, reason: String },
    #[error("{}: tensor '{name}' has shape {found:?}, the model expects {expected:?}", path.display())]
    TensorShape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{}: tensor '{name}' (shape {expected:?}) is missing{more}", path.display())]
    MissingTensor { path: PathBuf, name: String, expected: Vec<usize>, more: String },
    #[error("{}: tensor '{name}' (shape {found:?}) is not part of the {arch} architecture{more}", path.display())]
    UnexpectedTensor { path: PathBuf, name: String, found: Vec<usize>, arch: String, more: String },
    #[error("{}: {reason}", path.display())]
    Card { path: PathBuf, reason: String },
    #[error("the model card names {card} classes but the model's head has {head} outputs")]
    ClassCount { card: usize, head: usize },
    #[error("{}:{line}: {reason}", path.display())]
    Parse { path: PathBuf, line: usize, reason: String },
    #[error("device: {0}")]
    Device(String),
    #[error("{0}")]
    Invalid(String),
    #[error("computation failed: {0}")]
    Compute(String),
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write { path: path.into(), source }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

//! Typed errors for reading image data.

use std::path::PathBuf;

/// What can go wrong reading image data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file named `.gz` that is not gzip data.
    #[error("{path} is named .gz but is not gzip data (it does not start with 1f 8b)")]
    NotGzip {
        /// The file.
        path: PathBuf,
    },
    /// Gzip data that does not decompress (truncated or corrupt).
    #[error("{path}: corrupt gzip stream: {reason}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The first bytes are not an IDX magic number.
    #[error("{path}: not an IDX file (magic bytes {found:02x?}, expected 00 00 TT NN)")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// An IDX element type other than unsigned bytes (0x08).
    #[error("{path}: IDX element type 0x{code:02x} is not supported (only 0x08, unsigned byte)")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The type code.
        code: u8,
    },
    /// Fewer bytes than the header promises.
    #[error("{path}: truncated: the header promises {expected} bytes of data, found {actual}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the dimensions call for.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Dimensions and data that do not agree, or do not fit what the reader expects.
    #[error("{path}: {reason}")]
    DimensionMismatch {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A required file is not in the directory.
    #[error("no {what} in {dir}: tried {tried:?}")]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// What was looked for.
        what: String,
        /// The file names tried.
        tried: Vec<String>,
    },
    /// An image file that does not decode.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Images of different sizes or channel counts in one folder.
    #[error(
        "{path} is {actual}, but the folder's first image is {expected}; all images must match"
    )]
    InconsistentImages {
        /// The odd file.
        path: PathBuf,
        /// The first image's shape.
        expected: String,
        /// This image's shape.
        actual: String,
    },
    /// A folder or file with no images.
    #[error("{0}: no images")]
    Empty(PathBuf),
}

impl From<DataError> for genmodels_core::GenError {
    fn from(e: DataError) -> Self {
        genmodels_core::GenError::Data(Box::new(e))
    }
}

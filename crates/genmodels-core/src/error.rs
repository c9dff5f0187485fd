//! The one error type of genmodels.

use std::path::PathBuf;

/// Result alias used across genmodels.
pub type Result<T, E = GenError> = std::result::Result<T, E>;

/// Everything that can go wrong in genmodels, as a typed value.
///
/// Bad input never panics and never yields a silently wrong number: it is one of these.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The model has no tractable likelihood (an autoencoder, a GAN).
    #[error("log-likelihood is not available for {model}: {reason}")]
    LikelihoodNotAvailable {
        /// The model's name.
        model: String,
        /// Why no likelihood can be computed.
        reason: String,
    },

    /// A tensor or image set had the wrong shape for the model or operation.
    #[error("shape mismatch in {context}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// Where the mismatch was found.
        context: String,
        /// The shape that was expected, e.g. `[N, 1, 28, 28]`.
        expected: String,
        /// The shape that was given.
        actual: String,
    },

    /// Pixel values outside the range the model accepts.
    #[error("{context}: pixel values must lie in {expected}, found a value {found}")]
    ValueOutOfRange {
        /// Where the values were checked.
        context: String,
        /// The accepted range, e.g. `[0, 1]` or `{0, 1}`.
        expected: String,
        /// An offending value.
        found: f32,
    },

    /// A NaN or infinite input value.
    #[error("{context}: input contains a NaN or infinite value")]
    NonFiniteInput {
        /// Where the value was found.
        context: String,
    },

    /// An empty data set or batch where at least one example is needed.
    #[error("{context}: the data set is empty")]
    EmptyData {
        /// What was empty.
        context: String,
    },

    /// A configuration value that cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The training loss became NaN or infinite.
    #[error(
        "training diverged at step {step} (epoch {epoch}): loss is {loss}; {}",
        match last_checkpoint {
            Some(path) => format!("the last good checkpoint is kept at {}", path.display()),
            None => "no checkpoint had been written yet".to_string(),
        }
    )]
    Diverged {
        /// The global optimisation step (1-based) whose loss was not finite.
        step: usize,
        /// The epoch (1-based) of that step.
        epoch: usize,
        /// The offending loss value.
        loss: f64,
        /// Where the last good checkpoint lies, if one was written.
        last_checkpoint: Option<PathBuf>,
    },

    /// A checkpoint that cannot be read: missing, truncated or corrupt.
    #[error("cannot read checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The file that failed.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// A checkpoint whose weights do not fit the model built from its config.
    #[error("checkpoint {path} does not match its config: {reason}")]
    CheckpointMismatch {
        /// The weights file.
        path: PathBuf,
        /// Which tensors are missing, surplus or of the wrong shape.
        reason: String,
    },

    /// A backend that was not compiled in or cannot start.
    #[error("backend `{name}` is not available: {reason}")]
    BackendUnavailable {
        /// The backend's name.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// Labels missing where a model needs them (a class-conditional model, the judge's
    /// classifier), given where it takes none, or outside its classes.
    #[error("invalid labels: {0}")]
    InvalidLabels(String),

    /// A file-system error, with the path it concerned. The message includes the cause, so
    /// it is not also given as [`std::error::Error::source`] (which would print it twice).
    #[error("I/O error on {path}: {error}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },

    /// A folder another process is writing to (a training run into the same `--out`).
    #[error(
        "{path} is in use by another genmodels process ({holder}); wait for it to finish or \
         choose another folder"
    )]
    FolderInUse {
        /// The folder.
        path: PathBuf,
        /// Who holds it, as the holder wrote it (process id and command).
        holder: String,
    },

    /// A JSON file that does not parse as what it should be (the cause in the message, as
    /// for [`GenError::Io`]).
    #[error("invalid JSON in {path}: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        error: serde_json::Error,
    },

    /// An image that cannot be encoded or decoded.
    #[error("image error on {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Data that cannot be read: a corrupt IDX file, mismatched PNG sizes, … It holds the data
    /// crate's own typed error (downcast it to match), whose message it prints.
    #[error("data error: {0}")]
    Data(Box<dyn std::error::Error + Send + Sync>),

    /// A tensor operation failed inside the backend (e.g. reading data back from a GPU).
    #[error("backend error: {0}")]
    Backend(String),
}

impl GenError {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
        }
    }

    /// A shape mismatch described with `Debug`-printed shapes.
    pub fn shape(
        context: impl Into<String>,
        expected: impl std::fmt::Debug,
        actual: impl std::fmt::Debug,
    ) -> Self {
        Self::ShapeMismatch {
            context: context.into(),
            expected: format!("{expected:?}"),
            actual: format!("{actual:?}"),
        }
    }
}

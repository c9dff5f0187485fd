//! The shipped sample-quality judge: a LeNet-like MNIST classifier whose features and class
//! probabilities give MNIST-FID, an Inception-style score and mode coverage
//! ([`genmodels_eval::quality`]).
//!
//! The weights in `assets/mnist-judge.safetensors` (0.74 MB of f32) are embedded in the
//! binary, so nothing is downloaded. They were produced from the repository root by
//!
//! ```text
//! cargo run --release -p genmodels-cli -- train-judge
//! ```
//!
//! which trains on the bundled 8,000 training digits (seed 0, 40 epochs, half of the images
//! binarised, ±2 px shifts) and writes the file only if at least 97% of the 2,000 bundled
//! test digits are classified correctly (it got 99.15% grey, 98.55% binarised). The run is
//! deterministic on a given backend, so it rewrites the same bytes; docs/sample-quality.md
//! records the checksum and how long it took.

use genmodels_core::Result;
use genmodels_core::burn::tensor::Device;
use genmodels_eval::quality::Judge;

/// The judge's weights as safetensors bytes, for the default
/// [`ClassifierConfig`](genmodels_eval::quality::ClassifierConfig).
pub static MNIST_JUDGE_SAFETENSORS: &[u8] = include_bytes!("../assets/mnist-judge.safetensors");

/// The shipped MNIST judge, on `device`.
///
/// # Errors
/// Only if the embedded weights were damaged at build time ([`GenError::CorruptCheckpoint`]
/// or [`GenError::CheckpointMismatch`]).
///
/// [`GenError::CorruptCheckpoint`]: genmodels_core::GenError::CorruptCheckpoint
/// [`GenError::CheckpointMismatch`]: genmodels_core::GenError::CheckpointMismatch
pub fn mnist_judge(device: &Device) -> Result<Judge> {
    Judge::from_safetensors_bytes(MNIST_JUDGE_SAFETENSORS, device)
}

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

#[cfg(test)]
mod tests {
    use genmodels_core::ImageDataset;
    use genmodels_eval::quality::{LaplacianEnergy, gaussian_blur};

    use super::*;
    use crate::{Binarization, Mnist};

    /// The sharpness of the judge's report on the bundled test digits: 1.0 for the digits
    /// against themselves, lower for every wider blur.
    #[test]
    fn real_test_digits_are_sharpness_one_and_blurs_of_rising_width_score_lower_and_lower() {
        let device = Device::flex();
        let test = Mnist::bundled()
            .unwrap()
            .test
            .take(200)
            .with_binarization(Binarization::None);
        let indices: Vec<usize> = (0..test.len()).collect();
        let digits = test.batch(&indices, 0, &device).unwrap().images().clone();
        let reference = LaplacianEnergy::of(digits.clone()).unwrap();
        let itself = LaplacianEnergy::of(digits.clone()).unwrap();
        assert_eq!(itself.sharpness_against(&reference).unwrap(), 1.0);
        let mut last = 1.0;
        for sigma in [0.25, 0.5, 0.75, 1.0, 1.5, 2.0] {
            let blurred = gaussian_blur(&digits, sigma).unwrap();
            let sharpness = LaplacianEnergy::of(blurred)
                .unwrap()
                .sharpness_against(&reference)
                .unwrap();
            assert!(sharpness < last, "σ = {sigma}: {sharpness} ≥ {last}");
            last = sharpness;
        }
        assert!(last < 0.1, "σ = 2 leaves {last}");
    }
}

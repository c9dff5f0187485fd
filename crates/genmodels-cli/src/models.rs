//! What the CLI needs of each model beyond the [`GenerativeModel`] trait: preview pictures and
//! the data presentation it expects.

use genmodels::ae::{Autoencoder, AutoencoderConfig, ReconstructionLoss};
use genmodels::burn::tensor::Tensor;
use genmodels::vae::{DecoderDistribution, Vae, VaeConfig};
use genmodels::{GenerativeModel, ImageBatch, Result};

use crate::{BinarizeMode, ModelName};

/// A model the CLI can train, evaluate and draw.
pub trait CliModel: GenerativeModel {
    /// The CLI's name of the model.
    const NAME: ModelName;

    /// Images for `samples.png`.
    fn preview_samples(&self, n: usize, seed: u64, pixel_draws: bool) -> Result<Tensor<4>>;

    /// Reconstructions of `batch`, when the model has them.
    fn reconstructions(&self, batch: &ImageBatch) -> Option<Result<Tensor<4>>>;

    /// Interpolations between the images of two batches, when the model has them.
    fn interpolations(
        &self,
        a: &ImageBatch,
        b: &ImageBatch,
        steps: usize,
    ) -> Option<Result<Tensor<4>>>;

    /// The binarisation its observation model expects.
    fn default_binarize(config: &Self::Config) -> BinarizeMode;

    /// Whether the ELBO is reported beside the likelihood estimate.
    const REPORTS_ELBO: bool;
}

impl CliModel for Vae {
    const NAME: ModelName = ModelName::Vae;
    const REPORTS_ELBO: bool = true;

    /// Mean images `E[x|z]` unless pixel draws are asked for.
    fn preview_samples(&self, n: usize, seed: u64, pixel_draws: bool) -> Result<Tensor<4>> {
        if pixel_draws {
            self.sample(n, seed)
        } else {
            self.sample_means(n, seed)
        }
    }

    fn reconstructions(&self, batch: &ImageBatch) -> Option<Result<Tensor<4>>> {
        Some(self.reconstruct(batch))
    }

    fn interpolations(
        &self,
        a: &ImageBatch,
        b: &ImageBatch,
        steps: usize,
    ) -> Option<Result<Tensor<4>>> {
        Some(self.interpolate(a, b, steps))
    }

    fn default_binarize(config: &VaeConfig) -> BinarizeMode {
        match config.decoder {
            DecoderDistribution::Bernoulli => BinarizeMode::Dynamic,
            DecoderDistribution::Gaussian => BinarizeMode::None,
        }
    }
}

impl CliModel for Autoencoder {
    const NAME: ModelName = ModelName::Ae;
    const REPORTS_ELBO: bool = false;

    fn preview_samples(&self, n: usize, seed: u64, _pixel_draws: bool) -> Result<Tensor<4>> {
        self.sample(n, seed)
    }

    fn reconstructions(&self, batch: &ImageBatch) -> Option<Result<Tensor<4>>> {
        Some(self.reconstruct(batch))
    }

    fn interpolations(
        &self,
        a: &ImageBatch,
        b: &ImageBatch,
        steps: usize,
    ) -> Option<Result<Tensor<4>>> {
        Some(self.interpolate(a, b, steps))
    }

    fn default_binarize(config: &AutoencoderConfig) -> BinarizeMode {
        match config.loss {
            ReconstructionLoss::Bce => BinarizeMode::Dynamic,
            ReconstructionLoss::Mse => BinarizeMode::None,
        }
    }
}

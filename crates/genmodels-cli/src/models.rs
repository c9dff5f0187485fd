//! What the CLI needs of each model beyond the [`GenerativeModel`] trait: preview pictures and
//! the data presentation it expects.

use genmodels::ae::{Autoencoder, AutoencoderConfig, ReconstructionLoss};
use genmodels::autoregressive::{PixelCnn, PixelCnnConfig, PixelDistribution};
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

    /// The default configuration for grey-level data (`--binarize none` without `--config`).
    fn grey_level_config() -> Self::Config;

    /// Why `config` cannot be trained on data presented with `binarize`, if it cannot.
    fn data_mismatch(config: &Self::Config, binarize: BinarizeMode) -> Option<String>;

    /// Images completed from their observed sub-pixels, when the model can do it.
    fn completions(
        &self,
        _batch: &ImageBatch,
        _observed: &[bool],
        _seed: u64,
    ) -> Option<Result<Tensor<4>>> {
        None
    }

    /// The configuration a `--preset` names.
    fn preset(name: &str) -> Result<Self::Config> {
        Err(genmodels::GenError::InvalidConfig(format!(
            "this model has no preset `{name}`"
        )))
    }

    /// Whether the ELBO is reported beside the likelihood estimate.
    const REPORTS_ELBO: bool;

    /// How many images `samples.png` shows.
    const PREVIEW_SAMPLES: usize = 64;

    /// The sampler `samples.png` used, where the model offers a choice.
    const SAMPLE_METHOD: Option<&'static str> = None;
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

    fn grey_level_config() -> VaeConfig {
        VaeConfig::new().with_decoder(DecoderDistribution::Gaussian)
    }

    /// A Bernoulli likelihood of grey levels is not a likelihood: refuse before training.
    fn data_mismatch(config: &VaeConfig, binarize: BinarizeMode) -> Option<String> {
        (config.decoder == DecoderDistribution::Bernoulli && binarize == BinarizeMode::None).then(
            || {
                "a Bernoulli decoder needs binary pixels: choose --binarize dynamic, stochastic \
                 or threshold, or a config with \"decoder\": \"Gaussian\""
                    .to_string()
            },
        )
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

    /// Squared error for grey levels.
    fn grey_level_config() -> AutoencoderConfig {
        AutoencoderConfig::new().with_loss(ReconstructionLoss::Mse)
    }

    /// Both losses are defined on `[0, 1]` pixels.
    fn data_mismatch(_: &AutoencoderConfig, _: BinarizeMode) -> Option<String> {
        None
    }
}

impl CliModel for PixelCnn {
    const NAME: ModelName = ModelName::Pixelcnn;
    const REPORTS_ELBO: bool = false;
    // One network pass per pixel: keep the preview small.
    const PREVIEW_SAMPLES: usize = 16;
    const SAMPLE_METHOD: Option<&'static str> = Some("naive");

    fn preview_samples(&self, n: usize, seed: u64, _pixel_draws: bool) -> Result<Tensor<4>> {
        self.sample(n, seed)
    }

    fn reconstructions(&self, _: &ImageBatch) -> Option<Result<Tensor<4>>> {
        None
    }

    fn interpolations(
        &self,
        _: &ImageBatch,
        _: &ImageBatch,
        _: usize,
    ) -> Option<Result<Tensor<4>>> {
        None
    }

    fn default_binarize(config: &PixelCnnConfig) -> BinarizeMode {
        match config.distribution {
            PixelDistribution::Bernoulli => BinarizeMode::Dynamic,
            PixelDistribution::Categorical { .. } => BinarizeMode::None,
        }
    }

    /// A 256-way softmax per pixel.
    fn grey_level_config() -> PixelCnnConfig {
        PixelCnnConfig::small().with_distribution(PixelDistribution::Categorical { levels: 256 })
    }

    fn data_mismatch(config: &PixelCnnConfig, binarize: BinarizeMode) -> Option<String> {
        (config.distribution == PixelDistribution::Bernoulli && binarize == BinarizeMode::None)
            .then(|| {
                "a Bernoulli PixelCNN needs binary pixels: choose --binarize dynamic, \
                 stochastic or threshold, or a config with a Categorical distribution"
                    .to_string()
            })
    }

    fn completions(
        &self,
        batch: &ImageBatch,
        observed: &[bool],
        seed: u64,
    ) -> Option<Result<Tensor<4>>> {
        Some(self.complete(batch, observed, seed))
    }

    fn preset(name: &str) -> Result<PixelCnnConfig> {
        match name {
            "small" => Ok(PixelCnnConfig::small()),
            other => Err(genmodels::GenError::InvalidConfig(format!(
                "unknown PixelCNN preset `{other}`; available: small"
            ))),
        }
    }
}

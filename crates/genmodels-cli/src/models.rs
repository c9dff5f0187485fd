//! What the CLI needs of each model beyond the [`GenerativeModel`] trait: preview pictures and
//! the data presentation it expects.

use genmodels::ae::{Autoencoder, AutoencoderConfig, ReconstructionLoss};
use genmodels::autoregressive::{
    DiagonalBiLstm, DiagonalBiLstmConfig, GatedPixelCnn, GatedPixelCnnConfig, IncrementalSampling,
    PixelCnn, PixelCnnConfig, PixelDistribution, RowLstm, RowLstmConfig, SamplingMethod,
};
use genmodels::burn::tensor::Tensor;
use genmodels::gan::{Gan, GanConfig, LatentPath, VaeGan, VaeGanConfig};
use genmodels::mixture::{ComponentLikelihood, Mixture, MixtureConfig};
use genmodels::vae::{DecoderDistribution, Vae, VaeConfig};
use genmodels::{GenerativeModel, ImageBatch, ImageShape, Result, Trainable};

use crate::{BinarizeMode, ModelName, ObjectiveArg};

/// A model the CLI can train, evaluate and draw.
pub trait CliModel: Trainable {
    /// The CLI's name of the model.
    const NAME: ModelName;

    /// Images for `samples.png` and `genmodels sample`.
    fn preview_samples(&self, n: usize, seed: u64, options: &SampleOptions) -> Result<Tensor<4>>;

    /// Reconstructions of `batch`, when the model has them (an encoder); none by default.
    fn reconstructions(&self, _batch: &ImageBatch) -> Option<Result<Tensor<4>>> {
        None
    }

    /// Interpolations between the images of two batches, when the model can encode images;
    /// none by default.
    fn interpolations(
        &self,
        _a: &ImageBatch,
        _b: &ImageBatch,
        _steps: usize,
    ) -> Option<Result<Tensor<4>>> {
        None
    }

    /// Rows of images along paths between latents drawn from seeds, for models that
    /// cannot encode images (GANs); used when [`interpolations`](Self::interpolations) is
    /// `None`.
    fn latent_interpolations(
        &self,
        _seed: u64,
        _rows: usize,
        _steps: usize,
    ) -> Option<Result<Tensor<4>>> {
        None
    }

    /// Pictures of the model itself (a mixture's component means), by file name.
    fn model_pictures(&self) -> Vec<(&'static str, Result<Tensor<4>>)> {
        Vec::new()
    }

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
        _method: SamplingMethod,
    ) -> Option<Result<Tensor<4>>> {
        None
    }

    /// The configuration `train MODEL` starts from when no `--config` or `--preset` is given;
    /// `None` for the config type's default (or [`grey_level_config`](Self::grey_level_config)
    /// under `--binarize none`). Several CLI names may share one model type (`gan`, `dcgan`).
    fn default_config(_name: ModelName, _binarize: Option<BinarizeMode>) -> Option<Self::Config> {
        None
    }

    /// The configuration with the GAN objective `--objective` names.
    ///
    /// # Errors
    /// For a model that has no adversarial objective.
    fn with_objective(_config: Self::Config, _objective: ObjectiveArg) -> Result<Self::Config> {
        Err(genmodels::GenError::InvalidConfig(format!(
            "--objective applies to GAN models (gan, dcgan, cgan), not {}",
            Self::NAME.name()
        )))
    }

    /// The learning rate when `--lr` is not given.
    fn default_learning_rate(_config: &Self::Config) -> f64 {
        1e-3
    }

    /// The configuration and the trainer's epoch count for `--epochs` (default 10): gradient
    /// epochs for most models; a model fitted in closed form after training (the mixture's EM)
    /// takes them as its own iterations and trains 0 gradient epochs.
    fn training_epochs(config: Self::Config, epochs: Option<usize>) -> (Self::Config, usize) {
        (config, epochs.unwrap_or(10))
    }

    /// Samples of the given classes, for class-conditional models.
    fn labelled_samples(&self, _labels: &[usize], _seed: u64) -> Option<Result<Tensor<4>>> {
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

    /// Whether the model offers a choice of sampler (`--method`).
    const CHOOSES_SAMPLER: bool = false;

    /// The sampler `options` ask for, with the default filled in; `None` for a model with
    /// one sampler.
    ///
    /// # Errors
    /// A `--method` for a model that has one sampler.
    fn sampling_method(options: &SampleOptions) -> Result<Option<SamplingMethod>> {
        match (Self::CHOOSES_SAMPLER, options.method) {
            (true, method) => Ok(Some(method.unwrap_or(SamplingMethod::Cached))),
            (false, None) => Ok(None),
            (false, Some(_)) => Err(genmodels::GenError::InvalidConfig(format!(
                "--method applies to autoregressive models, not {}",
                Self::NAME.name()
            ))),
        }
    }
}

/// How `samples.png` and `genmodels sample` draw images.
#[derive(Debug, Clone, Copy, Default)]
pub struct SampleOptions {
    /// For a VAE: pixels drawn from `p(x|z)` instead of the mean image.
    pub pixel_draws: bool,
    /// For an autoregressive model: the sampler (default cached).
    pub method: Option<SamplingMethod>,
}

impl CliModel for Vae {
    const NAME: ModelName = ModelName::Vae;
    const REPORTS_ELBO: bool = true;

    /// Mean images `E[x|z]` unless pixel draws are asked for.
    fn preview_samples(&self, n: usize, seed: u64, options: &SampleOptions) -> Result<Tensor<4>> {
        if options.pixel_draws {
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

    fn preview_samples(&self, n: usize, seed: u64, _: &SampleOptions) -> Result<Tensor<4>> {
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

/// The `CliModel` of an autoregressive model: exact likelihood, a choice of sampler,
/// completion, no reconstructions or interpolations.
macro_rules! autoregressive_cli_model {
    ($model:ty, $config:ty, $name:expr, $display:literal, presets: [$($preset:literal => $make:expr),+ $(,)?]) => {
        impl CliModel for $model {
            const NAME: ModelName = $name;
            const REPORTS_ELBO: bool = false;
            // Pixel-by-pixel sampling: keep the preview small.
            const PREVIEW_SAMPLES: usize = 16;
            const CHOOSES_SAMPLER: bool = true;

            fn preview_samples(
                &self,
                n: usize,
                seed: u64,
                options: &SampleOptions,
            ) -> Result<Tensor<4>> {
                let method = Self::sampling_method(options)?.unwrap_or(SamplingMethod::Cached);
                self.sample_with(n, seed, method)
            }



            fn default_binarize(config: &$config) -> BinarizeMode {
                match config.distribution {
                    PixelDistribution::Bernoulli => BinarizeMode::Dynamic,
                    PixelDistribution::Categorical { .. } => BinarizeMode::None,
                }
            }

            /// A 256-way softmax per pixel.
            fn grey_level_config() -> $config {
                <$config>::new().with_distribution(PixelDistribution::Categorical { levels: 256 })
            }

            fn data_mismatch(config: &$config, binarize: BinarizeMode) -> Option<String> {
                (config.distribution == PixelDistribution::Bernoulli
                    && binarize == BinarizeMode::None)
                    .then(|| {
                        format!(
                            "a Bernoulli {} needs binary pixels: choose --binarize dynamic, \
                             stochastic or threshold, or a config with a Categorical distribution",
                            $display
                        )
                    })
            }

            fn completions(
                &self,
                batch: &ImageBatch,
                observed: &[bool],
                seed: u64,
                method: SamplingMethod,
            ) -> Option<Result<Tensor<4>>> {
                Some(self.complete(batch, observed, seed, method))
            }

            fn preset(name: &str) -> Result<$config> {
                match name {
                    $($preset => Ok($make),)+
                    other => Err(genmodels::GenError::InvalidConfig(format!(
                        "unknown {} preset `{other}`; available: {}",
                        $display,
                        [$($preset),+].join(", ")
                    ))),
                }
            }
        }
    };
}

autoregressive_cli_model!(PixelCnn, PixelCnnConfig, ModelName::Pixelcnn, "PixelCNN", presets: [
    "small" => PixelCnnConfig::small(),
    "paper" => PixelCnnConfig::paper(),
]);
autoregressive_cli_model!(
    GatedPixelCnn,
    GatedPixelCnnConfig,
    ModelName::GatedPixelcnn,
    "Gated PixelCNN",
    presets: ["small" => GatedPixelCnnConfig::new()]
);
autoregressive_cli_model!(RowLstm, RowLstmConfig, ModelName::RowLstm, "Row LSTM", presets: [
    "small" => RowLstmConfig::new(),
]);
autoregressive_cli_model!(
    DiagonalBiLstm,
    DiagonalBiLstmConfig,
    ModelName::DiagonalBilstm,
    "Diagonal BiLSTM",
    presets: ["small" => DiagonalBiLstmConfig::new()]
);

impl CliModel for Gan {
    const NAME: ModelName = ModelName::Gan;
    const REPORTS_ELBO: bool = false;

    /// A conditional model cycles through the classes.
    fn preview_samples(&self, n: usize, seed: u64, _: &SampleOptions) -> Result<Tensor<4>> {
        self.sample(n, seed)
    }

    /// Rows of spherical paths between latents drawn from consecutive seeds.
    fn latent_interpolations(
        &self,
        seed: u64,
        rows: usize,
        steps: usize,
    ) -> Option<Result<Tensor<4>>> {
        let classes = self.config().classes;
        let paths: Result<Vec<Tensor<4>>> = (0..rows as u64)
            .map(|row| {
                let label = classes.map(|k| row as usize % k);
                let from = seed.wrapping_add(2 * row);
                self.interpolate(from, from + 1, steps, label, LatentPath::Spherical)
            })
            .collect();
        Some(paths.map(|p| Tensor::cat(p, 0)))
    }

    /// GANs model grey levels, scaled to `[−1, 1]` inside the model.
    fn default_binarize(_: &GanConfig) -> BinarizeMode {
        BinarizeMode::None
    }

    fn grey_level_config() -> GanConfig {
        GanConfig::default()
    }

    /// Any `[0, 1]` data will do.
    fn data_mismatch(_: &GanConfig, _: BinarizeMode) -> Option<String> {
        None
    }

    fn default_config(name: ModelName, _: Option<BinarizeMode>) -> Option<GanConfig> {
        match name {
            ModelName::Gan => Some(GanConfig::mlp(ImageShape::MNIST)),
            ModelName::Cgan => Some(GanConfig::cgan(ImageShape::MNIST, 10)),
            _ => Some(GanConfig::dcgan(ImageShape::MNIST)),
        }
    }

    fn with_objective(config: GanConfig, objective: ObjectiveArg) -> Result<GanConfig> {
        Ok(config.with_objective(objective.into()))
    }

    /// The objective's ([`genmodels::gan::GanObjective::recommended_learning_rate`]).
    fn default_learning_rate(config: &GanConfig) -> f64 {
        config.objective.recommended_learning_rate()
    }

    fn labelled_samples(&self, labels: &[usize], seed: u64) -> Option<Result<Tensor<4>>> {
        self.is_conditional()
            .then(|| self.sample_with_labels(labels, seed))
    }
}

impl CliModel for Mixture {
    const NAME: ModelName = ModelName::Gmm;
    const REPORTS_ELBO: bool = false;

    fn preview_samples(&self, n: usize, seed: u64, _: &SampleOptions) -> Result<Tensor<4>> {
        self.sample(n, seed)
    }

    /// `components.png`: every component's mean image.
    fn model_pictures(&self) -> Vec<(&'static str, Result<Tensor<4>>)> {
        vec![("components.png", Ok(self.component_images()))]
    }

    /// EM sees the training set binarised once (as presented in epoch 0).
    fn default_binarize(config: &MixtureConfig) -> BinarizeMode {
        match config.likelihood {
            ComponentLikelihood::Bernoulli => BinarizeMode::Dynamic,
            ComponentLikelihood::DiagonalGaussian => BinarizeMode::None,
        }
    }

    fn grey_level_config() -> MixtureConfig {
        MixtureConfig::gaussian(10, ImageShape::MNIST)
    }

    fn data_mismatch(config: &MixtureConfig, binarize: BinarizeMode) -> Option<String> {
        (config.likelihood == ComponentLikelihood::Bernoulli && binarize == BinarizeMode::None)
            .then(|| {
                "a Bernoulli mixture needs binary pixels: choose --binarize dynamic, stochastic \
                 or threshold, or --preset gaussian-K"
                    .to_string()
            })
    }

    /// `--epochs` counts EM iterations (default 100); the trainer runs no gradient epochs and
    /// fits the mixture by EM afterwards.
    fn training_epochs(config: MixtureConfig, epochs: Option<usize>) -> (MixtureConfig, usize) {
        let iterations = epochs.unwrap_or(config.em_max_iterations);
        (config.with_em_max_iterations(iterations), 0)
    }

    /// `bernoulli-K` or `gaussian-K`.
    fn preset(name: &str) -> Result<MixtureConfig> {
        let parsed = name.split_once('-').and_then(|(kind, k)| {
            let k: usize = k.parse().ok()?;
            match kind {
                "bernoulli" => Some(MixtureConfig::bernoulli(k, ImageShape::MNIST)),
                "gaussian" => Some(MixtureConfig::gaussian(k, ImageShape::MNIST)),
                _ => None,
            }
        });
        parsed.ok_or_else(|| {
            genmodels::GenError::InvalidConfig(format!(
                "unknown mixture preset `{name}`; use bernoulli-K or gaussian-K, e.g. bernoulli-50"
            ))
        })
    }
}

impl CliModel for VaeGan {
    const NAME: ModelName = ModelName::VaeGan;
    const REPORTS_ELBO: bool = false;

    fn preview_samples(&self, n: usize, seed: u64, _: &SampleOptions) -> Result<Tensor<4>> {
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

    /// Grey levels, scaled to `[−1, 1]` for the discriminator.
    fn default_binarize(_: &VaeGanConfig) -> BinarizeMode {
        BinarizeMode::None
    }

    fn grey_level_config() -> VaeGanConfig {
        VaeGanConfig::default()
    }

    fn data_mismatch(_: &VaeGanConfig, _: BinarizeMode) -> Option<String> {
        None
    }

    /// DCGAN's rate, as for the GANs.
    fn default_learning_rate(_: &VaeGanConfig) -> f64 {
        2e-4
    }
}

//! What some models can do beyond [`GenerativeModel`]'s likelihood and sampling: one trait per
//! capability, implemented by the families that have it.
//!
//! | capability | trait | who |
//! |---|---|---|
//! | reconstruct an image through a code | [`Reconstruct`] | AE, VAE, VAE-GAN |
//! | interpolate between two images' codes | [`Interpolate`] | AE, VAE, VAE-GAN |
//! | interpolate between latents drawn from seeds | [`InterpolateLatents`] | GAN |
//! | choose the sampler (naive or cached; ancestral or DDIM) | [`SampleWithMethod`] | autoregressive, diffusion |
//! | complete partly observed images | [`Complete`] | autoregressive, diffusion |
//! | sample given class labels | [`ConditionalSample`] | cGAN, conditional Gated PixelCNN |
//! | anomaly scores from an exact likelihood | [`AnomalyScore`] | autoregressive, mixtures |
//!
//! The tools (`genmodels` CLI, `compare`, `bench`) learn which of these a model has from the
//! model registry (`genmodels::registry`), which lists them once per model.

use burn::tensor::Tensor;

use crate::{GenError, GenerativeModel, ImageBatch, LikelihoodOptions, Result};

/// How a model with a choice of samplers draws (see [`SampleWithMethod`]): the
/// autoregressive models' naive and cached samplers (the same images for the same seed), or a
/// diffusion model's ancestral and DDIM samplers (different images: DDIM is a different,
/// shorter reverse process).
#[derive(burn::config::Config, Debug, Copy, PartialEq)]
pub enum SamplingMethod {
    /// One full forward pass per sub-pixel: `C·H·W` passes over the whole image.
    Naive,
    /// Incremental: only what the newly drawn pixel changes is computed. The PixelCNNs cache
    /// every layer's activations (Ramachandran et al. 2017); the PixelRNNs carry their LSTM
    /// states row by row.
    Cached,
    /// A diffusion model's ancestral sampler: every one of its `T` reverse steps, one network
    /// pass each (Ho et al. 2020).
    Ancestral,
    /// DDIM (Song et al. 2021): `steps` of the `T` steps, one network pass each, with noise
    /// scale `eta` (0: deterministic given `x_T`; 1 with `steps = T`: ancestral).
    Ddim {
        /// Reverse steps taken, `1..=T`.
        steps: usize,
        /// Noise scale η ≥ 0.
        eta: f64,
    },
}

impl SamplingMethod {
    /// DDIM's usual fast setting: 50 deterministic steps (η = 0).
    pub const DDIM_50: Self = Self::Ddim {
        steps: 50,
        eta: 0.0,
    };

    /// The name used on the command line and in `metrics.json`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::Cached => "cached",
            Self::Ancestral => "ancestral",
            Self::Ddim { .. } => "ddim",
        }
    }

    /// The name with its settings, for tables and messages ("DDIM, 50 steps, η = 0").
    pub fn describe(&self) -> String {
        match self {
            Self::Ddim { steps, eta } => format!("DDIM, {steps} steps, η = {eta}"),
            other => other.name().to_string(),
        }
    }

    /// The slow sampler this one stands in for, or `None` for a slow one: the naive sampler
    /// for the cached one, the ancestral sampler for DDIM.
    pub fn slow_counterpart(&self) -> Option<Self> {
        match self {
            Self::Cached => Some(Self::Naive),
            Self::Ddim { .. } => Some(Self::Ancestral),
            Self::Naive | Self::Ancestral => None,
        }
    }

    /// The error for a model asked to draw with a method it does not have: `who` ("the
    /// autoregressive models sample") with `own` ("`naive` or `cached`").
    pub fn unsupported(&self, who: &str, own: &str) -> GenError {
        GenError::InvalidConfig(format!("{who} with {own}, not `{}`", self.name()))
    }
}

impl std::str::FromStr for SamplingMethod {
    type Err = GenError;

    /// `naive`, `cached`, `ancestral` or `ddim` (50 steps, η = 0: [`Self::DDIM_50`]).
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "naive" => Ok(Self::Naive),
            "cached" => Ok(Self::Cached),
            "ancestral" => Ok(Self::Ancestral),
            "ddim" => Ok(Self::DDIM_50),
            other => Err(GenError::InvalidConfig(format!(
                "unknown sampling method `{other}` (naive, cached, ancestral or ddim)"
            ))),
        }
    }
}

/// Images passed through the model's code and back.
pub trait Reconstruct: GenerativeModel {
    /// The reconstructions of `batch`, `[N, C, H, W]` in `[0, 1]` (mean images for a
    /// probabilistic decoder).
    ///
    /// # Errors
    /// When the batch does not fit the model.
    fn reconstruct(&self, batch: &ImageBatch) -> Result<Tensor<4>>;
}

/// Paths between the codes of two batches of images.
pub trait Interpolate: GenerativeModel {
    /// For each pair `(a[i], b[i])`, `steps` images decoded along the straight line between
    /// their codes, `[N·steps, C, H, W]`, pair by pair.
    ///
    /// # Errors
    /// When the batches do not fit the model or differ in length; `steps < 2`.
    fn interpolate(&self, a: &ImageBatch, b: &ImageBatch, steps: usize) -> Result<Tensor<4>>;
}

/// Paths between latents drawn from seeds, for a model that cannot encode images.
pub trait InterpolateLatents: GenerativeModel {
    /// `rows` paths of `steps` images each, `[rows·steps, C, H, W]`: row `r` runs between the
    /// latents drawn from seeds `seed + 2r` and `seed + 2r + 1`.
    ///
    /// # Errors
    /// `steps < 2` or `rows = 0`.
    fn interpolate_latents(&self, seed: u64, rows: usize, steps: usize) -> Result<Tensor<4>>;
}

/// A choice of sampler.
pub trait SampleWithMethod: GenerativeModel {
    /// `n` images drawn with `method`. The naive and cached samplers give the same images for
    /// the same seed; DDIM's differ from the ancestral sampler's.
    ///
    /// # Errors
    /// As [`GenerativeModel::sample`]; [`GenError::InvalidConfig`] for a method the model does
    /// not have (see [`SamplingMethod::unsupported`]).
    fn sample_with(&self, n: usize, seed: u64, method: SamplingMethod) -> Result<Tensor<4>>;
}

/// Completion of partly observed images.
pub trait Complete: GenerativeModel {
    /// Keeps every sub-pixel where `observed` is true (one flag per sub-pixel of the batch, laid
    /// out as the images) and samples the others.
    ///
    /// # Errors
    /// Input errors as for [`GenerativeModel::log_likelihood`];
    /// [`GenError::ShapeMismatch`] when `observed` has the wrong length.
    fn complete(
        &self,
        batch: &ImageBatch,
        observed: &[bool],
        seed: u64,
        method: SamplingMethod,
    ) -> Result<Tensor<4>>;
}

/// Sampling given class labels.
pub trait ConditionalSample: GenerativeModel {
    /// The number of classes, or `None` for a model built without labels.
    fn classes(&self) -> Option<usize>;

    /// One image per label.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a model without labels, a label out of range or no
    /// labels.
    fn sample_with_labels(&self, labels: &[usize], seed: u64) -> Result<Tensor<4>>;
}

/// Anomaly scores from an exact likelihood.
pub trait AnomalyScore: GenerativeModel {
    /// Per-image `−log p(x)` in nats (higher is less likely): the exact negative
    /// log-likelihood, so scores of different images compare.
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`].
    fn anomaly_scores(&self, batch: &ImageBatch) -> Result<Vec<f64>> {
        let likelihood = self.log_likelihood(batch, &LikelihoodOptions::default())?;
        Ok(likelihood
            .log_likelihood_nats
            .into_iter()
            .map(|v| -v)
            .collect())
    }
}

/// Checks the end points of an [`Interpolate::interpolate`] call: both batches of the model's
/// `shape`, equally long, and at least two steps.
///
/// # Errors
/// [`GenError::ShapeMismatch`] for a batch of another shape or batches of different lengths;
/// [`GenError::InvalidConfig`] for fewer than 2 steps.
pub fn check_interpolation(
    a: &ImageBatch,
    b: &ImageBatch,
    steps: usize,
    shape: crate::ImageShape,
    model: &str,
) -> Result<()> {
    a.require_shape(shape, model)?;
    b.require_shape(shape, model)?;
    if a.len() != b.len() {
        return Err(GenError::shape(
            "interpolation end points",
            a.len(),
            b.len(),
        ));
    }
    if steps < 2 {
        return Err(GenError::InvalidConfig(format!(
            "an interpolation needs at least 2 steps, got {steps}"
        )));
    }
    Ok(())
}

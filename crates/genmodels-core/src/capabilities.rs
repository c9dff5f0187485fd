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
//! | per-image anomaly scores, each named for what it is | [`AnomalyScore`] | every family |
//! | a feature vector per image, for a linear probe | [`Represent`] | AE, VAE, GAN, autoregressive, mixture |
//!
//! The tools (`genmodels` CLI, `compare`, `bench`) learn which of these a model has from the
//! model registry (`genmodels::registry`), which lists them once per model.

use burn::tensor::Tensor;

use serde::{Deserialize, Serialize};

use crate::{
    GenError, GenerativeModel, ImageBatch, LikelihoodKind, LikelihoodOptions, LogLikelihood, Result,
};

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

/// Per-image anomaly scores of a batch, higher = more anomalous, with what they measure.
///
/// Scores of different kinds do not compare (nats of `−log p(x)` against a discriminator's
/// logit); scores of one kind from one model rank images, which is what an anomaly detector
/// needs (e.g. for an AUROC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyScores {
    /// A short column name, snake case, with the sign and unit in it
    /// (`neg_log_likelihood_nats`, `neg_elbo_nats`, `neg_iwae_k500_nats`,
    /// `reconstruction_bce_nats`, `neg_discriminator_logit`).
    pub name: String,
    /// What the score is, in words ("−log p(x), exact, nats per image").
    pub description: String,
    /// One score per image of the batch, in order.
    pub scores: Vec<f64>,
}

impl AnomalyScores {
    /// `−log p(x)` (or the negated bound or estimate) of each image, from a log-likelihood
    /// result: `−ℓᵢ` for every `ℓᵢ` of `likelihood`, named by its [`LikelihoodKind`]. For a bound
    /// `ℓ ≤ log p(x)` the score `−ℓ ≥ −log p(x)` over-states the surprise by the bound's gap.
    pub fn negative_log_likelihood(likelihood: LogLikelihood) -> Self {
        let (name, description) = match likelihood.kind {
            LikelihoodKind::Exact => (
                "neg_log_likelihood_nats".to_string(),
                "−log p(x), exact, nats per image".to_string(),
            ),
            LikelihoodKind::Elbo => (
                "neg_elbo_nats".to_string(),
                "−ELBO ≥ −log p(x), nats per image".to_string(),
            ),
            LikelihoodKind::ImportanceWeighted { k } => (
                format!("neg_iwae_k{k}_nats"),
                format!("−IWAE (k = {k}) ≥ −log p(x), nats per image"),
            ),
            LikelihoodKind::ParzenEstimate => (
                "neg_parzen_log_density".to_string(),
                "−(Parzen-window estimate of log p(x)), nats per image".to_string(),
            ),
        };
        Self {
            name,
            description,
            scores: likelihood
                .log_likelihood_nats
                .into_iter()
                .map(|v| -v)
                .collect(),
        }
    }

    /// Appends the scores of the next batch (of the same kind).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when `next` measures something else.
    pub fn extend(&mut self, next: Self) -> Result<()> {
        if next.name != self.name {
            return Err(GenError::InvalidConfig(format!(
                "anomaly scores `{}` cannot be joined with `{}`",
                next.name, self.name
            )));
        }
        self.scores.extend(next.scores);
        Ok(())
    }
}

/// Per-image anomaly scores: higher = more anomalous, each named for what it is
/// ([`AnomalyScores`]).
///
/// A model with a likelihood scores `−log p(x)` in nats through
/// [`GenerativeModel::log_likelihood`] (the default method): exact for the autoregressive
/// models and mixtures, `−ELBO` or `−IWAE-k` for the VAE (by `options.iwae_k`), the negated
/// variational bound for the DDPM. A model without one says what it scores instead (the AE's
/// reconstruction error, a GAN's discriminator output).
pub trait AnomalyScore: GenerativeModel {
    /// The scores of every image of `batch`.
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`]: images that do not fit the model.
    fn anomaly_scores(
        &self,
        batch: &ImageBatch,
        options: &LikelihoodOptions,
    ) -> Result<AnomalyScores> {
        Ok(AnomalyScores::negative_log_likelihood(
            self.log_likelihood(batch, options)?,
        ))
    }
}

/// A feature vector per image: what the model has learned about an image, in a form a
/// linear classifier can read (a *linear probe* measures how much of the class is there).
///
/// Each family says which of its quantities it returns ([`representation_name`]):
///
/// | family | representation `r(x)` | `D` |
/// |---|---|---|
/// | autoencoder | the code `f(x)` | code size |
/// | VAE | the posterior mean `μ(x)` of `q(z∣x) = N(μ(x), diag σ²(x))` | latent size |
/// | GAN | the discriminator's penultimate activations `φ(x)`, `D(x) = ψ(φ(x))` | `φ`'s width |
/// | autoregressive | the last hidden map `h(x)` before the output head (the map whose 1×1 readout gives every conditional's logits), averaged over positions: `(1/HW) Σ_{i,j} h(x)_{:,i,j}` | its channels |
/// | mixture | the responsibilities `p(k∣x) = π_k p(x∣k) / Σ_j π_j p(x∣j)` | components `K` |
///
/// Every representation is a deterministic function of the image: no noise is drawn, and an
/// image's row does not depend on the other images of the batch (batch norms use their
/// running statistics).
///
/// [`representation_name`]: Represent::representation_name
pub trait Represent: GenerativeModel {
    /// The representation of every image of `batch`.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, D]`, `D` fixed by the model
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`] where the model checks its input the same way
    /// (shape, and pixel values a Bernoulli model cannot take); [`GenError::InvalidLabels`]
    /// for a class-conditional model given images without labels.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>>;

    /// What the representation is, in a few words, for tables ("posterior mean μ(x)").
    fn representation_name(&self) -> &'static str;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DensityScale;

    #[test]
    fn likelihood_scores_are_negated_and_named_by_their_kind() {
        let ll = |kind| LogLikelihood::new(kind, vec![-80.0, -120.5], 784, DensityScale::Discrete);
        let exact = AnomalyScores::negative_log_likelihood(ll(LikelihoodKind::Exact));
        assert_eq!(exact.scores, [80.0, 120.5]);
        assert_eq!(exact.name, "neg_log_likelihood_nats");
        let iwae = AnomalyScores::negative_log_likelihood(ll(LikelihoodKind::ImportanceWeighted {
            k: 50,
        }));
        assert_eq!(iwae.name, "neg_iwae_k50_nats");
        assert!(iwae.description.contains("k = 50"), "{}", iwae.description);
        let mut joined = exact.clone();
        joined.extend(exact.clone()).unwrap();
        assert_eq!(joined.scores, [80.0, 120.5, 80.0, 120.5]);
        let elbo = AnomalyScores::negative_log_likelihood(ll(LikelihoodKind::Elbo));
        assert!(matches!(
            joined.extend(elbo),
            Err(GenError::InvalidConfig(_))
        ));
    }
}

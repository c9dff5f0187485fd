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
//! | super-resolution: high-resolution images for low-resolution ones, and where there is one the exact `log p(x∣y)` | [`SuperResolve`] | diffusion (keeping the low-pass equal to the input), super-resolution Gated PixelCNN |
//! | a latent space: prior codes, decoding, encoding where there is an encoder | [`LatentCode`] | AE, VAE, GAN |
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

/// A latent space to move in: codes drawn from the prior, decoded to images, and images
/// encoded to codes where the model has an encoder. Latent arithmetic and attribute vectors
/// (`genmodels latent`) are made of these.
///
/// | family | code `z` | prior | decoded image | encoder |
/// |---|---|---|---|---|
/// | VAE | the latent | `N(0, I)` | the mean image `E[x∣z]` (for the Gaussian decoder, of the draw clamped into `[0, 1]`) | the posterior mean `μ(x)` |
/// | autoencoder | the code | the Gaussian fitted to the training codes | `g(z)` | `f(x)` |
/// | GAN | the generator's input | `N(0, I)` | `G(z)` | none: [`encode_codes`](Self::encode_codes) says so |
pub trait LatentCode: GenerativeModel {
    /// The size `L` of a code.
    fn latent_size(&self) -> usize;

    /// `n` codes drawn from the model's prior, `[n, L]`, reproducible from `seed` (the
    /// draws of [`GenerativeModel::sample`] for the same seed).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0` or a model whose prior is not fitted yet.
    fn prior_codes(&self, n: usize, seed: u64) -> Result<Tensor<2>>;

    /// The mean images of `codes`, `[N, C, H, W]` in `[0, 1]`.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for codes of another size or none;
    /// [`GenError::InvalidLabels`] for a model that decodes only with a class label (a
    /// conditional GAN).
    fn decode_codes(&self, codes: Tensor<2>) -> Result<Tensor<4>>;

    /// Whether the model has an encoder ([`encode_codes`](Self::encode_codes) works).
    fn can_encode(&self) -> bool;

    /// The codes of `batch`'s images, `[N, L]`, with no noise drawn (a VAE's posterior mean).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a model without an encoder (a GAN); as
    /// [`Represent::representation`] for images that do not fit the model.
    fn encode_codes(&self, batch: &ImageBatch) -> Result<Tensor<2>>;
}

/// Checks codes given to [`LatentCode::decode_codes`]: at least one, each of `size`.
///
/// # Errors
/// [`GenError::ShapeMismatch`] otherwise.
pub fn check_codes(codes: &Tensor<2>, size: usize, model: &str) -> Result<()> {
    let [n, l] = codes.dims();
    if n == 0 || l != size {
        return Err(GenError::ShapeMismatch {
            context: format!("{model} latent codes"),
            expected: format!("[N ≥ 1, {size}]"),
            actual: format!("[{n}, {l}]"),
        });
    }
    Ok(())
}

/// Super-resolution: high-resolution images consistent with low-resolution ones.
///
/// The low-resolution image `y` of an image `x` is its `f×f` block means, `y = D(x)`
/// ([`downsample`]); `U` repeats each pixel `f×f` times ([`upsample_nearest`]), so that
/// `D(U(y)) = y` and the low-pass `φ = U∘D` ([`low_pass`]) is a projection (`φ∘φ = φ`). A
/// super-resolver returns images `x` with `D(x) = y`, or as close as its read-out allows (the
/// DDPM's guided sampler keeps it exactly before its read-out); a model of `p(x | U(y))`
/// draws from that conditional, which puts its mass near `D(x) = y` as far as it has learned
/// to, and has the exact [`conditional_log_likelihood`](Self::conditional_log_likelihood).
pub trait SuperResolve: GenerativeModel {
    /// One image of the model's shape for each image of `low_res`, by `factor`.
    ///
    /// # Shapes
    /// - low_res: `[N, C, H/f, W/f]` with `(C, H, W)` the model's image shape, values in
    ///   `[0, 1]` (grey block means, also for a binary model)
    /// - output images: `[N, C, H, W]`
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a factor below 2 or that does not divide the image
    /// size, or a sampler the model does not have; [`GenError::ShapeMismatch`] for
    /// low-resolution images of another shape; [`GenError::NonFiniteInput`] and
    /// [`GenError::ValueOutOfRange`] for pixels that are NaN or outside `[0, 1]`.
    fn super_resolve(
        &self,
        low_res: Tensor<4>,
        factor: usize,
        seed: u64,
        method: SamplingMethod,
    ) -> Result<SuperResolved>;

    /// The exact `log p(x | y)` of every high-resolution image `x` of `high_res` given its
    /// own low-resolution image `y = D(x)` by `factor`, in nats per image (and bits per
    /// dimension of `x`), for a model of `p(x | U(y))` (the super-resolution Gated PixelCNN);
    /// `Ok(None)`, the default, for a model that super-resolves without a conditional
    /// likelihood (the DDPM's guided sampler has a bound on `−log p(x)`, not on
    /// `−log p(x | y)`).
    ///
    /// `−log p(x | y)` is what the model pays for the detail the low-resolution image does
    /// not hold: it is at most `−log p(x) + log p(y)` worth of information, so below the
    /// same model family's `−log p(x)`.
    ///
    /// # Shapes
    /// - high_res: `[N, C, H, W]`, the model's image shape
    ///
    /// # Errors
    /// As [`super_resolve`](Self::super_resolve) for the factor (a model trained for
    /// another factor refuses it with [`GenError::InvalidConfig`]); as
    /// [`GenerativeModel::log_likelihood`] for the images.
    fn conditional_log_likelihood(
        &self,
        high_res: &ImageBatch,
        factor: usize,
    ) -> Result<Option<LogLikelihood>> {
        let _ = (high_res, factor);
        Ok(None)
    }
}

/// What [`SuperResolve::super_resolve`] returns.
#[derive(Debug, Clone)]
pub struct SuperResolved {
    /// The images as the model reads them out, on its data grid (binary or grey),
    /// `[N, C, H, W]` in `[0, 1]`.
    pub images: Tensor<4>,
    /// The continuous images before that read-out, on the `[0, 1]` scale (not clamped), where
    /// the model has one (a diffusion model's last step): their low-pass equals the input's
    /// exactly, while the read-out (e.g. binarisation) changes it.
    pub continuous: Option<Tensor<4>>,
}

/// Checks `factor` against an image `shape`: at least 2, and dividing its height and width.
///
/// # Errors
/// [`GenError::InvalidConfig`] otherwise.
pub fn check_resolution_factor(factor: usize, shape: crate::ImageShape) -> Result<()> {
    if factor < 2 || !shape.height.is_multiple_of(factor) || !shape.width.is_multiple_of(factor) {
        return Err(GenError::InvalidConfig(format!(
            "a super-resolution factor must be at least 2 and divide the image size {}×{}, \
             got {factor}",
            shape.height, shape.width
        )));
    }
    Ok(())
}

/// Checks a [`SuperResolve::super_resolve`] call: `factor` as [`check_resolution_factor`],
/// `low_res` of shape `[N ≥ 1, C, H/f, W/f]` for the model's `shape`, its values finite and in
/// `[0, 1]`.
///
/// # Errors
/// As [`SuperResolve::super_resolve`]; [`GenError::EmptyData`] for no images.
pub fn check_super_resolution(
    low_res: &Tensor<4>,
    factor: usize,
    shape: crate::ImageShape,
    model: &str,
) -> Result<()> {
    check_resolution_factor(factor, shape)?;
    let [n, c, h, w] = low_res.dims();
    let context = format!("low-resolution images for a {model}");
    if n == 0 {
        return Err(GenError::EmptyData { context });
    }
    let expected = [
        n,
        shape.channels,
        shape.height / factor,
        shape.width / factor,
    ];
    if [n, c, h, w] != expected {
        return Err(GenError::shape(context, expected, [n, c, h, w]));
    }
    let pixels = crate::batch::to_host(low_res.clone())?;
    if pixels.iter().any(|v| !v.is_finite()) {
        return Err(GenError::NonFiniteInput { context });
    }
    if let Some(&found) = pixels.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(GenError::ValueOutOfRange {
            context,
            expected: "[0, 1]".into(),
            found,
        });
    }
    Ok(())
}

/// `D`: the mean of each `factor × factor` block, `[N, C, H, W] → [N, C, H/f, W/f]`.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a factor of 0 or one that does not divide `H` and `W`.
pub fn downsample(images: Tensor<4>, factor: usize) -> Result<Tensor<4>> {
    let [n, c, h, w] = images.dims();
    check_divides(factor, h, w)?;
    let (lh, lw) = (h / factor, w / factor);
    Ok(images
        .reshape([n, c, lh, factor, lw, factor])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([n, c, lh, lw]))
}

/// `U`: each pixel repeated as a `factor × factor` block, `[N, C, h, w] → [N, C, f·h, f·w]`
/// (nearest-neighbour upsampling); `D(U(y)) = y`.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a factor of 0.
pub fn upsample_nearest(images: Tensor<4>, factor: usize) -> Result<Tensor<4>> {
    check_divides(factor, 0, 0)?;
    Ok(genmodels_kernels::upsample_nearest(images, factor))
}

/// The low-pass `φ = U∘D`: each pixel replaced by the mean of its `factor × factor` block. A
/// projection: `φ(φ(x)) = φ(x)`, and `φ(x) = U(y)` exactly when `D(x) = y`.
///
/// # Errors
/// As [`downsample`].
pub fn low_pass(images: Tensor<4>, factor: usize) -> Result<Tensor<4>> {
    upsample_nearest(downsample(images, factor)?, factor)
}

fn check_divides(factor: usize, h: usize, w: usize) -> Result<()> {
    if factor == 0 || !h.is_multiple_of(factor) || !w.is_multiple_of(factor) {
        return Err(GenError::InvalidConfig(format!(
            "a resampling factor must be positive and divide the image size {h}×{w}, got {factor}"
        )));
    }
    Ok(())
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
    use crate::batch::to_host;
    use burn::tensor::{Device, TensorData};

    fn images(values: &[f32], dims: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), dims), &Device::flex())
    }

    #[test]
    fn the_low_pass_is_a_projection_onto_the_block_means() {
        // A 1×4×4 image: its 2×2 block means are known.
        #[rustfmt::skip]
        let x: Vec<f32> = vec![
            1.0, 0.0, 0.5, 0.5,
            0.0, 1.0, 0.5, 0.5,
            0.0, 0.0, 1.0, 1.0,
            0.0, 0.0, 1.0, 0.0,
        ];
        let x = images(&x, [1, 1, 4, 4]);
        let y = downsample(x.clone(), 2).unwrap();
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        assert_eq!(to_host(y.clone()).unwrap(), [0.5, 0.5, 0.0, 0.75]);
        // U repeats each pixel as a block; D(U(y)) = y.
        let up = upsample_nearest(y.clone(), 2).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.5, 0.5, 0.5, 0.5,
            0.5, 0.5, 0.5, 0.5,
            0.0, 0.0, 0.75, 0.75,
            0.0, 0.0, 0.75, 0.75,
        ];
        assert_eq!(to_host(up.clone()).unwrap(), expected);
        assert_eq!(
            to_host(downsample(up, 2).unwrap()).unwrap(),
            to_host(y).unwrap()
        );
        // φ is idempotent, on random images of two channels and by both factors of 28.
        let mut rng = crate::random::rng(3);
        let device = Device::flex();
        for factor in [2, 4, 7] {
            let x = crate::random::standard_normal([3, 2, 28, 28], &mut rng, &device);
            let once = low_pass(x.clone(), factor).unwrap();
            let twice = low_pass(once.clone(), factor).unwrap();
            let (once, twice) = (to_host(once).unwrap(), to_host(twice).unwrap());
            let gap = once
                .iter()
                .zip(&twice)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(gap < 1e-6, "factor {factor}: φ∘φ differs from φ by {gap}");
            // And φ(x) is not x: the projection removes the detail.
            assert!(to_host(x).unwrap() != once);
        }
    }

    #[test]
    fn bad_factors_and_low_resolution_inputs_are_typed_errors() {
        let x = images(&[0.0; 16], [1, 1, 4, 4]);
        for factor in [0, 3] {
            assert!(matches!(
                downsample(x.clone(), factor),
                Err(GenError::InvalidConfig(_))
            ));
        }
        assert!(matches!(
            upsample_nearest(x.clone(), 0),
            Err(GenError::InvalidConfig(_))
        ));
        let shape = crate::ImageShape::new(1, 4, 4);
        let check = |values: &[f32], dims, factor| {
            check_super_resolution(&images(values, dims), factor, shape, "test model")
        };
        assert!(check(&[0.5; 4], [1, 1, 2, 2], 2).is_ok());
        // Factor 1 leaves nothing to resolve; 3 does not divide 4.
        for factor in [1, 3] {
            assert!(matches!(
                check(&[0.5; 4], [1, 1, 2, 2], factor),
                Err(GenError::InvalidConfig(_))
            ));
        }
        assert!(matches!(
            check(&[0.5; 9], [1, 1, 3, 3], 2),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            check(&[0.5, f32::NAN, 0.5, 0.5], [1, 1, 2, 2], 2),
            Err(GenError::NonFiniteInput { .. })
        ));
        assert!(matches!(
            check(&[0.5, 1.5, 0.5, 0.5], [1, 1, 2, 2], 2),
            Err(GenError::ValueOutOfRange { .. })
        ));
    }

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

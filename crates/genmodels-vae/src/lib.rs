//! # genmodels-vae
//!
//! The variational autoencoder (Kingma & Welling 2014) with its importance-weighted
//! likelihood estimate (Burda et al. 2015).
//!
//! ## The maths
//! A latent `z ~ p(z) = N(0, I)` and a decoder `p_θ(x|z)` (Bernoulli for binary pixels,
//! a discretized Gaussian for 8-bit grey levels) define `p(x) = ∫ p_θ(x|z) p(z) dz`, which has
//! no closed form. An encoder `q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x))` gives the evidence lower
//! bound
//!
//! ```text
//! log p(x) ≥ ELBO(x) = E_q[log p_θ(x|z)] − KL(q_φ(z|x) ‖ p(z)),
//! ```
//!
//! with the KL in closed form, `½ Σ (σ² + μ² − 1 − log σ²)`, and the expectation estimated
//! with one reparameterised draw `z = μ + σ ⊙ ε`, `ε ~ N(0, I)`, so gradients flow through
//! `μ` and `σ`. Training minimises `−ELBO` (with an optional weight β on the KL term, as in
//! β-VAE; β = 1 is the true bound).
//!
//! The importance-weighted bound with `k` samples `zᵢ ~ q(z|x)`,
//!
//! ```text
//! IWAE_k(x) = log (1/k) Σᵢ p_θ(x|zᵢ) p(zᵢ) / q_φ(zᵢ|x),
//! ```
//!
//! satisfies `ELBO ≤ IWAE_k ≤ IWAE_{k'} ≤ log p(x)` in expectation for `k ≤ k'`, and tends to
//! `log p(x)` as `k → ∞`. It is computed batched over the `k` samples with a max-shifted
//! log-sum-exp.
//!
//! ## Grey levels
//! Both decoders give probabilities of discrete images, so every likelihood here is a
//! log-probability ([`DensityScale::Discrete`]: bits/dim = `−log₂ p(x) / D`), comparable with
//! the autoregressive models' and the mixtures'. The Gaussian decoder is the discretized
//! Gaussian of Ho et al. (2020): pixel level `v ∈ {0, …, 255}`, seen as `x = v/255`, has
//!
//! ```text
//! p(v | z) = Φ((x + 1/510 − μ)/σ) − Φ((x − 1/510 − μ)/σ),
//! ```
//!
//! the mass of `N(μ, σ²)` on the level's bin, with the first bin extended to `−∞` and the last
//! to `+∞`, so that the 256 levels of each pixel sum to 1 ([`discretized_gaussian_log_prob`]
//! computes it stably in log space). Its samples are the Gaussian draws binned the same way:
//! `round(255·clamp(μ + σε, 0, 1))/255`.

#![warn(missing_docs)]

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};
use genmodels_core::distributions::{
    bernoulli_log_prob, discretized_gaussian_log_prob, kl_diagonal_gaussian_to_standard_normal,
    log_sum_exp, standard_normal_log_prob,
};
use genmodels_core::nn::{Architecture, ImageDecoder, ImageEncoder, interpolate_codes};
use genmodels_core::{
    DensityScale, GenError, GenerativeModel, ImageBatch, ImageShape, Interpolate, LikelihoodKind,
    LikelihoodOptions, LogLikelihood, Loss, ModelConfig, Reconstruct, Result, Trainable,
    capabilities::check_interpolation,
    model::{module_device, require_samples},
    random,
};

/// The observation model `p(x|z)`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DecoderDistribution {
    /// Independent Bernoulli pixels; the decoder outputs logits. For binary data.
    Bernoulli,
    /// Independent discretized Gaussian pixels, for 8-bit grey levels `v/255`: the probability
    /// of level `v` is the mass of `N(μ, σ²)` on its bin `[v/255 − 1/510, v/255 + 1/510]`
    /// (the first bin extended to `−∞`, the last to `+∞`), with the mean `μ` the decoder
    /// output and the variance `σ²` a learned per-pixel parameter. Its likelihood is a
    /// probability of the 8-bit image; a pixel off the grid counts as the level whose bin
    /// holds it. (With an MLP of no hidden layers the model is linear-Gaussian, probabilistic
    /// PCA, binned: its `log p(x)` is the log of a Gaussian's mass on a box of the grid.)
    Gaussian,
}

/// Configuration of a [`Vae`]. The default is Burda et al. (2015)'s one-stochastic-layer
/// MNIST model: 784-200-200-50 with tanh units and a Bernoulli decoder.
#[derive(Config, Debug)]
pub struct VaeConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// Dimension of the latent `z`.
    #[config(default = 50)]
    pub latent_dim: usize,
    /// Encoder and decoder networks (the decoder mirrors the encoder).
    #[config(default = "Architecture::burda()")]
    pub architecture: Architecture,
    /// The observation model.
    #[config(default = "DecoderDistribution::Bernoulli")]
    pub decoder: DecoderDistribution,
    /// Weight of the KL term in the training loss (1 for the true ELBO).
    #[config(default = 1.0)]
    pub beta: f64,
}

impl Default for VaeConfig {
    /// The configuration with every field at its default.
    fn default() -> Self {
        Self::new()
    }
}

impl ModelConfig for VaeConfig {
    type Model = Vae;
    const MODEL_NAME: &'static str = "vae";

    fn init(&self, device: &Device) -> Result<Vae> {
        if self.latent_dim == 0 {
            return Err(GenError::InvalidConfig(
                "latent_dim must be positive".into(),
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "beta must be finite and non-negative, got {}",
                self.beta
            )));
        }
        let encoder = self
            .architecture
            .encoder(self.image_shape, 2 * self.latent_dim, device)?;
        let decoder = self
            .architecture
            .decoder(self.image_shape, self.latent_dim, device)?;
        let decoder_log_var = match self.decoder {
            DecoderDistribution::Bernoulli => None,
            DecoderDistribution::Gaussian => Some(Param::from_tensor(Tensor::full(
                [self.image_shape.dims()],
                (0.1f64).ln(),
                device,
            ))),
        };
        Ok(Vae {
            encoder,
            decoder,
            decoder_log_var,
            config: self.clone(),
        })
    }
}

/// The approximate posterior `q(z|x) = N(mean, diag exp(log_var))`.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// `[N, L]`.
    pub mean: Tensor<2>,
    /// `[N, L]`.
    pub log_var: Tensor<2>,
}

/// A variational autoencoder; build it with [`VaeConfig::init`].
#[derive(Module, Debug)]
pub struct Vae {
    encoder: ImageEncoder,
    decoder: ImageDecoder,
    /// Per-pixel log-variance of the Gaussian decoder.
    decoder_log_var: Option<Param<Tensor<1>>>,
    #[module(skip)]
    config: VaeConfig,
}

/// The Gaussian decoder's log-variance is kept in `[ln 1e-4, ln 1]` (σ from 0.01, about 2.5
/// grey levels, to 1). The discretized likelihood is a probability, at most 1, for any σ, but
/// below a bin's width its gradient in the mean grows like 1/σ²: the floor keeps training
/// well-conditioned.
const LOG_VAR_RANGE: (f64, f64) = (-9.21, 0.0);

/// Rows per decoder call in likelihood estimation (examples × importance samples). The
/// discretized Gaussian's log-probability holds more intermediate values per pixel, so its
/// calls take a quarter of that.
const ROWS_PER_CHUNK: usize = 16_384;

impl Vae {
    /// The posterior `q(z|x)`.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: mean and log-variance, `[N, L]` each
    pub fn encode(&self, images: Tensor<4>) -> Posterior {
        let stats = self.encoder.forward(images);
        let l = self.config.latent_dim;
        let mean = stats.clone().narrow(1, 0, l);
        let log_var = stats.narrow(1, l, l);
        Posterior { mean, log_var }
    }

    /// Decoder outputs: Bernoulli logits, or Gaussian means.
    ///
    /// # Shapes
    /// - z: `[N, L]`
    /// - output: `[N, C·H·W]`
    pub fn decoder_outputs(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z)
    }

    /// The mean image `E[x|z]` (Bernoulli probabilities or Gaussian means).
    ///
    /// # Shapes
    /// - z: `[N, L]`
    /// - output: `[N, C, H, W]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        let n = z.dims()[0];
        let s = self.config.image_shape;
        let outputs = self.decoder_outputs(z);
        let means = match self.config.decoder {
            DecoderDistribution::Bernoulli => sigmoid(outputs),
            DecoderDistribution::Gaussian => outputs,
        };
        means.reshape(s.batch_dims(n))
    }

    /// `n` mean images `E[x|z]` for `z ~ p(z)`: what sample grids usually show, smoother
    /// than the pixel draws of [`GenerativeModel::sample`] (which draws its pixels around
    /// them, from the same `z` for the same seed).
    ///
    /// For the Gaussian decoder the mean of a pixel is that of its draw clamped into
    /// `[0, 1]`, `E[clamp(v, 0, 1)]` for `v ~ N(μ, σ²)`: with `a = −μ/σ`, `b = (1 − μ)/σ`,
    /// `μ(Φ(b) − Φ(a)) + σ(φ(a) − φ(b)) + 1 − Φ(b)`. The decoder's `μ` itself may lie
    /// outside `[0, 1]` (the discretized Gaussian's edge bins are open), and the rounding of
    /// the draws to the 256 levels moves this mean by at most 1/510.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0`.
    pub fn sample_means(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        let means = self.prior_decoder_means(n, seed)?;
        Ok(self.clamped_means(means))
    }

    /// The mean images of codes `z`, in `[0, 1]`: [`decode`](Self::decode) for the Bernoulli
    /// decoder, and for the Gaussian one the mean of the draw clamped into `[0, 1]` (see
    /// [`sample_means`](Self::sample_means)).
    ///
    /// # Shapes
    /// - z: `[N, L]`
    /// - output: `[N, C, H, W]`
    pub fn mean_images(&self, z: Tensor<2>) -> Tensor<4> {
        self.clamped_means(self.decode(z))
    }

    /// Decoder mean parameters made mean images in `[0, 1]`.
    fn clamped_means(&self, means: Tensor<4>) -> Tensor<4> {
        match self.decoder_std() {
            None => means,
            Some(std) => clamped_gaussian_mean(means, std),
        }
    }

    /// `n` codes `z ~ p(z) = N(0, I)` drawn from `seed`, `[n, L]`.
    fn prior_draws(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        require_samples(n)?;
        Ok(random::standard_normal(
            [n, self.config.latent_dim],
            &mut random::rng(seed),
            &module_device(self),
        ))
    }

    /// The decoder's mean parameter (Bernoulli probabilities, or the Gaussian's `μ`) for `n`
    /// codes `z ~ p(z)` drawn from `seed`.
    fn prior_decoder_means(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        Ok(self.decode(self.prior_draws(n, seed)?))
    }

    /// The Gaussian decoder's per-pixel standard deviation `[1, C, H, W]`; `None` for the
    /// Bernoulli decoder.
    fn decoder_std(&self) -> Option<Tensor<4>> {
        let s = self.config.image_shape;
        self.decoder_log_var.as_ref().map(|log_var| {
            (log_var.val().clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1) * 0.5)
                .exp()
                .reshape([1, s.channels, s.height, s.width])
        })
    }

    /// `log p(x|z)` per row, from decoder outputs: a sum of Bernoulli log-probabilities, or
    /// of discretized Gaussian ones (see [`DecoderDistribution::Gaussian`]); log-probabilities
    /// of the binary or 8-bit image either way.
    ///
    /// # Shapes
    /// - outputs, x: `[M, D]`
    /// - output: `[M]`
    fn log_px_given_z(&self, outputs: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
        match &self.decoder_log_var {
            None => bernoulli_log_prob(outputs, x),
            Some(log_var) => {
                let d = log_var.dims()[0];
                let log_var = log_var
                    .val()
                    .clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1)
                    .reshape([1, d]);
                let m = x.dims()[0];
                discretized_gaussian_log_prob(x, outputs, log_var.expand([m, d]))
            }
        }
    }

    fn check_input(&self, batch: &ImageBatch, for_likelihood: bool) -> Result<()> {
        batch.require_shape(self.config.image_shape, "VAE")?;
        if for_likelihood && self.config.decoder == DecoderDistribution::Bernoulli {
            batch.require_binary("VAE")?;
        }
        Ok(())
    }

    /// Rows per decoder call in likelihood estimation.
    fn rows_per_chunk(&self) -> usize {
        match self.config.decoder {
            DecoderDistribution::Bernoulli => ROWS_PER_CHUNK,
            DecoderDistribution::Gaussian => ROWS_PER_CHUNK / 4,
        }
    }

    /// The ELBO per example: β = 1, the analytic KL, and one reparameterised draw with noise
    /// `eps`.
    fn elbo(&self, x: Tensor<2>, posterior: Posterior, eps: Tensor<2>) -> Tensor<1> {
        let z = posterior.mean.clone() + (posterior.log_var.clone() * 0.5).exp() * eps;
        let log_px = self.log_px_given_z(self.decoder_outputs(z), x);
        log_px - kl_diagonal_gaussian_to_standard_normal(posterior.mean, posterior.log_var)
    }

    /// The importance-weighted estimate per example with `k` samples.
    fn iwae(
        &self,
        x: Tensor<2>,
        posterior: Posterior,
        k: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Tensor<1> {
        let [b, l] = posterior.mean.dims();
        let d = x.dims()[1];
        let device = x.device();
        let eps = random::standard_normal([k, b, l], rng, &device);
        let std = (posterior.log_var.clone() * 0.5).exp().reshape([1, b, l]);
        let z = (posterior.mean.reshape([1, b, l]) + std * eps.clone()).reshape([k * b, l]);
        // log q(z|x) from ε directly: z − μ = σ ε.
        let log_q = ((eps.reshape([k * b, l]).powi_scalar(2)
            + posterior
                .log_var
                .reshape([1, b, l])
                .expand([k, b, l])
                .reshape([k * b, l])
            + (2.0 * std::f64::consts::PI).ln())
            * -0.5)
            .sum_dim(1)
            .squeeze_dim::<1>(1);
        let x_rep = x.reshape([1, b, d]).expand([k, b, d]).reshape([k * b, d]);
        let log_px = self.log_px_given_z(self.decoder_outputs(z.clone()), x_rep);
        let log_w = (log_px + standard_normal_log_prob(z) - log_q).reshape([k, b]);
        log_sum_exp(log_w, 0) - (k as f64).ln()
    }
}

impl GenerativeModel for Vae {
    type Config = VaeConfig;

    fn config(&self) -> &VaeConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// The ELBO (`iwae_k` of `None` or 1) or the importance-weighted estimate with `k`
    /// samples. Noise comes from `options.seed`, so estimates are reproducible.
    fn compute_log_likelihood(
        &self,
        batch: &ImageBatch,
        options: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        self.check_input(batch, true)?;
        let k = options.iwae_k.unwrap_or(1);
        if k == 0 {
            return Err(GenError::InvalidConfig("iwae_k must be at least 1".into()));
        }
        let x = batch.flat_images();
        let posterior = self.encode(batch.images().clone());
        let mut rng = random::rng(options.seed);
        let n = batch.len();
        let (kind, values) = if k == 1 {
            let eps = random::standard_normal(posterior.mean.dims(), &mut rng, &batch.device());
            (LikelihoodKind::Elbo, self.elbo(x, posterior, eps))
        } else {
            let chunk = (self.rows_per_chunk() / k).max(1);
            let mut parts = Vec::new();
            for start in (0..n).step_by(chunk) {
                let len = chunk.min(n - start);
                let part = Posterior {
                    mean: posterior.mean.clone().narrow(0, start, len),
                    log_var: posterior.log_var.clone().narrow(0, start, len),
                };
                parts.push(self.iwae(x.clone().narrow(0, start, len), part, k, &mut rng));
            }
            (
                LikelihoodKind::ImportanceWeighted { k },
                Tensor::cat(parts, 0),
            )
        };
        LogLikelihood::from_tensor(
            kind,
            values,
            self.config.image_shape.dims(),
            // Both decoders give probabilities of the binary or 8-bit image.
            DensityScale::Discrete,
        )
    }

    /// Draws `x ~ p(x|z)`, `z ~ p(z)`: binary pixels for the Bernoulli decoder, and for the
    /// Gaussian one 8-bit levels, `round(255·clamp(μ + σε, 0, 1))/255` (a Gaussian draw
    /// binned as the discretized likelihood bins it).
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        let means = self.prior_decoder_means(n, seed)?;
        let device = means.device();
        let mut rng = random::rng(seed ^ 0x005E_ED0F_D1CE);
        let dims = means.dims();
        Ok(match self.decoder_std() {
            None => random::uniform(dims, &mut rng, &device)
                .lower(means)
                .float(),
            Some(std) => {
                let draws = means + std * random::standard_normal(dims, &mut rng, &device);
                (draws.clamp(0.0, 1.0) * 255.0).round() / 255.0
            }
        })
    }
}

/// `−ELBO` of each image in nats, or `−IWAE-k` when `options.iwae_k` asks for `k > 1`
/// importance samples: an upper bound on `−log p(x)` that tightens with `k` (through
/// [`GenerativeModel::log_likelihood`], with `options.seed` for its draws).
impl genmodels_core::AnomalyScore for Vae {}

impl Trainable for Vae {
    /// `−ELBO` averaged over the batch, with the KL term weighted by β; the noise comes from
    /// the device RNG (the trainer seeds it).
    fn loss(&self, _player: usize, batch: &ImageBatch) -> Result<Loss> {
        self.check_input(batch, false)?;
        let x = batch.flat_images();
        let posterior = self.encode(batch.images().clone());
        let eps = Tensor::random(
            posterior.mean.dims(),
            Distribution::Normal(0.0, 1.0),
            &posterior.mean.device(),
        );
        let z = posterior.mean.clone() + (posterior.log_var.clone() * 0.5).exp() * eps;
        let reconstruction = -self.log_px_given_z(self.decoder_outputs(z), x).mean();
        let kl = kl_diagonal_gaussian_to_standard_normal(posterior.mean, posterior.log_var).mean();
        let objective = reconstruction.clone() + kl.clone() * self.config.beta;
        Ok(Loss::new(objective)
            .with_component("reconstruction", reconstruction)
            .with_component("kl", kl))
    }
}

impl Reconstruct for Vae {
    /// `E[x|z]` at the posterior mean of each image: the reconstruction.
    ///
    /// # Errors
    /// When the images do not fit the model.
    fn reconstruct(&self, batch: &ImageBatch) -> Result<Tensor<4>> {
        batch.require_shape(self.config.image_shape, "VAE")?;
        Ok(self.decode(self.encode(batch.images().clone()).mean))
    }
}

impl genmodels_core::capabilities::Represent for Vae {
    /// The posterior mean `μ(x)` of `q(z|x) = N(μ(x), diag σ²(x))` for each image: the most
    /// probable code under the encoder, with no noise drawn.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, L]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        self.check_input(batch, false)?;
        Ok(self.encode(batch.images().clone()).mean)
    }

    fn representation_name(&self) -> &'static str {
        "posterior mean μ(x)"
    }
}

impl Interpolate for Vae {
    /// Decoded points on the straight line between the posterior means of `start[i]` and
    /// `end[i]`, `steps` per pair, pair after pair: `[N·steps, C, H, W]`.
    ///
    /// # Errors
    /// When the batches do not fit the model or differ in size.
    fn interpolate(&self, start: &ImageBatch, end: &ImageBatch, steps: usize) -> Result<Tensor<4>> {
        check_interpolation(start, end, steps, self.config.image_shape, "VAE")?;
        let a = self.encode(start.images().clone()).mean;
        let b = self.encode(end.images().clone()).mean;
        Ok(self.decode(interpolate_codes(a, b, steps)))
    }
}

impl genmodels_core::capabilities::LatentCode for Vae {
    fn latent_size(&self) -> usize {
        self.config.latent_dim
    }

    /// `z ~ N(0, I)`: the codes [`GenerativeModel::sample`] and
    /// [`sample_means`](Vae::sample_means) decode for the same seed.
    fn prior_codes(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        self.prior_draws(n, seed)
    }

    /// [`Vae::mean_images`].
    fn decode_codes(&self, codes: Tensor<2>) -> Result<Tensor<4>> {
        genmodels_core::capabilities::check_codes(&codes, self.config.latent_dim, "VAE")?;
        Ok(self.mean_images(codes))
    }

    fn can_encode(&self) -> bool {
        true
    }

    /// The posterior mean `μ(x)`.
    fn encode_codes(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        self.check_input(batch, false)?;
        Ok(self.encode(batch.images().clone()).mean)
    }
}

/// `E[clamp(v, 0, 1)]` for `v ~ N(mean, std²)`, elementwise (see [`Vae::sample_means`]).
///
/// # Shapes
/// - mean: `[N, C, H, W]`; std: broadcastable to it
/// - output: `[N, C, H, W]`, in `[0, 1]`
fn clamped_gaussian_mean(mean: Tensor<4>, std: Tensor<4>) -> Tensor<4> {
    let dims = mean.dims();
    let std = std.expand(dims);
    let a = mean.clone().neg() / std.clone();
    let b = (mean.clone().neg().add_scalar(1.0)) / std.clone();
    let cdf = |x: Tensor<4>| (x * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * 0.5;
    let pdf = |x: Tensor<4>| {
        (x.powi_scalar(2) * -0.5).exp()
            * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2)
    };
    let (cdf_a, cdf_b) = (cdf(a.clone()), cdf(b.clone()));
    let inside = mean * (cdf_b.clone() - cdf_a) + std * (pdf(a) - pdf(b));
    (inside - cdf_b).add_scalar(1.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests;

//! # genmodels-mixture
//!
//! The textbook latent-variable model: a finite mixture
//!
//! ```text
//! p(x) = Σ_k π_k p(x | k),        z ~ Cat(π),  x | z = k ~ p(x | k),
//! ```
//!
//! with independent pixels given the component, in two forms:
//!
//! - **Bernoulli mixture**, for binary data: `p(x | k) = Π_d μ_kd^{x_d} (1 − μ_kd)^{1 − x_d}`;
//! - **diagonal-Gaussian mixture**, for 8-bit grey levels: each pixel's level `v_d`, seen as
//!   `x_d = v_d/255`, is a **discretized Gaussian**, the mass of `N(μ_kd, σ²_kd)` on the level's
//!   bin `[x_d − 1/510, x_d + 1/510]` (the first bin extended to `−∞`, the last to `+∞`):
//!   `p(v | k) = Π_d [Φ((x_d + 1/510 − μ_kd)/σ_kd) − Φ((x_d − 1/510 − μ_kd)/σ_kd)]`, a
//!   probability of the 8-bit image (see
//!   [`discretized_gaussian_log_prob_elements`]).
//!
//! With `K` components summed out exactly, `log p(x)` is **exact**: one `[N, K]` matrix of
//! `log π_k + log p(x_n | k)`, reduced by a max-shifted log-sum-exp over `k`, with no
//! per-example loops. For Bernoulli components the matrix is a matrix product; for discretized
//! Gaussians a gather from a `[K, D, 256]` table of every level's log-probability. Both are
//! probabilities of discrete images, so bits/dim is `−log₂ p(x) / D`
//! ([`DensityScale::Discrete`]), comparable with the other families' likelihoods of the same
//! images. Sampling is ancestral: `k ~ Cat(π)`, then `x ~ p(x | k)`; a discretized Gaussian
//! draws `N(μ_kd, σ²_kd)` and takes the level of the bin it falls in.
//!
//! ## Fitting Gaussian components
//!
//! EM ([`fit_em`]) fits the Gaussians to the continuous values `v/255` (its M-step is the
//! closed-form maximiser of the Gaussian density): a surrogate objective, close to the discrete
//! one wherever the Gaussians are wide against a bin (then the mass of a bin is the density
//! times 1/255), not the same at the edge bins, which take the tails. The model *defined*,
//! evaluated by [`GenerativeModel::log_likelihood`] and trained by [`Trainable::loss`], is the
//! mixture of discretized Gaussians, so its reported log-likelihood is exact for that model;
//! EM's report ([`EmReport`]) and the raw-point methods ([`Mixture::log_likelihood_points`],
//! [`Mixture::responsibilities`]) use the continuous density, which is also what a
//! diagonal-Gaussian mixture of synthetic, non-image points is.
//!
//! The model is fitted by expectation-maximisation ([`fit_em`], [`fit_em_points`]); its
//! parameters are stored unconstrained (mixture logits, Bernoulli logits, Gaussian
//! log-variances), so its [`loss`](Trainable::loss) — the mean NLL — is also
//! differentiable and the shared trainer could fit it by gradient descent.
//!
//! ## Floors
//!
//! Maximum likelihood for these models is degenerate without constraints: a Gaussian component
//! sitting on one point (or on a pixel that is always 0) sends its variance, and the density,
//! to infinity; a Bernoulli probability of exactly 0 or 1 gives a test image with one
//! unexpected pixel probability 0. The model is therefore defined with
//! `σ²_kd ≥ min_variance` and `μ_kd ∈ [min_probability, 1 − min_probability]`, and the
//! parameters are clamped into that set wherever they are read (a no-op for EM-fitted values,
//! which already lie in it).

#![warn(missing_docs)]

mod em;
#[cfg(test)]
mod tests;

pub use em::{EmOptions, EmReport, fit_em, fit_em_points};

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use genmodels_core::distributions::{
    GREY_LEVELS, discretized_gaussian_level_log_probs, discretized_gaussian_log_prob_elements,
    grey_levels, log_sum_exp, softplus,
};
use genmodels_core::{
    DensityScale, GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodKind,
    LikelihoodOptions, LogLikelihood, Loss, ModelConfig, Result, Trainable,
    batch::to_host,
    model::{materialise_parameters, module_device, require_samples},
    random,
};
use rand::Rng;
use std::f64::consts::PI;

/// The distribution of the pixels given the component.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ComponentLikelihood {
    /// Independent Bernoulli pixels, for binary data; `log p(x)` is a log-probability.
    Bernoulli,
    /// Independent discretized Gaussian pixels with per-component, per-pixel means and
    /// variances, for 8-bit grey levels; `log p(x)` of an image is a log-probability (see the
    /// crate docs). Raw points ([`Mixture::log_likelihood_points`]) get the continuous
    /// Gaussians' log-density.
    DiagonalGaussian,
}

/// Configuration of a [`Mixture`]. The default is a 10-component Bernoulli mixture of
/// binarised MNIST digits.
#[derive(Config, Debug)]
pub struct MixtureConfig {
    /// Number of components `K`.
    #[config(default = 10)]
    pub components: usize,
    /// The pixel distribution given the component.
    #[config(default = "ComponentLikelihood::Bernoulli")]
    pub likelihood: ComponentLikelihood,
    /// Shape of one example; synthetic `D`-dimensional points use `1×1×D`.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// Floor of every Gaussian variance `σ²_kd`. The default `10⁻³` (a standard deviation of
    /// about 8 grey levels) suits pixels in `[0, 1]`; scale it with the data otherwise. Without
    /// a floor the continuous density EM maximises is unbounded for a component on a constant
    /// pixel (the discretized model's probability stays at most 1, but EM would drive σ² to 0).
    #[config(default = 1e-3)]
    pub min_variance: f64,
    /// Bernoulli probabilities are kept in `[ε, 1 − ε]` with this `ε`. The default `10⁻³` lies
    /// well below `1/N_k` for the component sizes of MNIST-scale data (tens to thousands of
    /// images), so it barely moves a well-estimated pixel, while a test pixel that no training
    /// image of the component had costs at most `ln 1000 ≈ 6.9` nats instead of `∞`.
    #[config(default = 1e-3)]
    pub min_probability: f64,
    /// Most EM iterations when the shared [`Trainer`](genmodels_core::Trainer) fits the
    /// mixture after its gradient epochs ([`Trainable::fit_after_training`]); 0 leaves the
    /// gradient-trained parameters as they are.
    #[config(default = 100)]
    pub em_max_iterations: usize,
    /// EM stops once the mean training log-likelihood changes by less than this, relatively.
    #[config(default = 1e-6)]
    pub em_tolerance: f64,
}

impl Default for MixtureConfig {
    /// The configuration with every field at its default.
    fn default() -> Self {
        Self::new()
    }
}

impl MixtureConfig {
    /// A `k`-component Bernoulli mixture of `shape` images, other fields at their defaults.
    pub fn bernoulli(k: usize, shape: ImageShape) -> Self {
        Self::new()
            .with_components(k)
            .with_likelihood(ComponentLikelihood::Bernoulli)
            .with_image_shape(shape)
    }

    /// A `k`-component diagonal-Gaussian mixture of `shape` examples, other fields at their
    /// defaults.
    pub fn gaussian(k: usize, shape: ImageShape) -> Self {
        Self::new()
            .with_components(k)
            .with_likelihood(ComponentLikelihood::DiagonalGaussian)
            .with_image_shape(shape)
    }

    /// Number of dimensions `D` of one example.
    pub fn dims(&self) -> usize {
        self.image_shape.dims()
    }

    /// Checks the configuration can work.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `K = 0`, an empty image shape, a variance floor that is
    /// not positive and finite, or a probability floor outside `(0, ½)`.
    pub fn validate(&self) -> Result<()> {
        if self.components == 0 {
            return Err(GenError::InvalidConfig(
                "a mixture needs at least one component (components = 0)".into(),
            ));
        }
        if self.image_shape.dims() == 0 {
            return Err(GenError::InvalidConfig(format!(
                "the example shape {} has no dimensions",
                self.image_shape
            )));
        }
        if !(self.min_variance.is_finite() && self.min_variance > 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "min_variance must be positive and finite, got {}",
                self.min_variance
            )));
        }
        if !(self.min_probability > 0.0 && self.min_probability < 0.5) {
            return Err(GenError::InvalidConfig(format!(
                "min_probability must lie in (0, 0.5), got {}",
                self.min_probability
            )));
        }
        Ok(())
    }

    /// Logit of the probability floor, `ln(ε / (1 − ε))` (negative).
    fn min_logit(&self) -> f64 {
        (self.min_probability / (1.0 - self.min_probability)).ln()
    }

    /// How [`GenerativeModel::log_likelihood`] values relate to the data: log-probabilities
    /// of binary or 8-bit images ([`DensityScale::Discrete`]) for both likelihoods.
    pub fn density_scale(&self) -> DensityScale {
        match self.likelihood {
            ComponentLikelihood::Bernoulli | ComponentLikelihood::DiagonalGaussian => {
                DensityScale::Discrete
            }
        }
    }
}

impl ModelConfig for MixtureConfig {
    type Model = Mixture;
    const MODEL_NAME: &'static str = "gmm";

    /// A mixture with uniform weights and random components (Bernoulli logits uniform in
    /// `[−½, ½]`; Gaussian means uniform in `[0, 1]` with variance 0.1), drawn from the device
    /// RNG. EM replaces them with a data-driven start (see [`fit_em`]).
    fn init(&self, device: &Device) -> Result<Mixture> {
        self.validate()?;
        let (k, d) = (self.components, self.dims());
        let mixture_logits = Param::from_tensor(Tensor::zeros([k], device));
        let model = match self.likelihood {
            ComponentLikelihood::Bernoulli => Mixture {
                mixture_logits,
                bernoulli_logits: Some(Param::from_tensor(Tensor::random(
                    [k, d],
                    Distribution::Uniform(-0.5, 0.5),
                    device,
                ))),
                gaussian_means: None,
                gaussian_log_variances: None,
                config: self.clone(),
            },
            ComponentLikelihood::DiagonalGaussian => Mixture {
                mixture_logits,
                bernoulli_logits: None,
                gaussian_means: Some(Param::from_tensor(Tensor::random(
                    [k, d],
                    Distribution::Uniform(0.0, 1.0),
                    device,
                ))),
                gaussian_log_variances: Some(Param::from_tensor(Tensor::full(
                    [k, d],
                    0.1f64.ln().max(self.min_variance.ln()),
                    device,
                ))),
                config: self.clone(),
            },
        };
        materialise_parameters(&model);
        Ok(model)
    }
}

/// Values gathered at once from the discretized Gaussians' table (examples × components ×
/// pixels): 32 MB of f32.
const GATHER_VALUES: usize = 1 << 23;

/// The component parameters of a mixture as plain tensors, in the constrained set.
// Short-lived handles to device tensors; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Components {
    /// Bernoulli logits `[K, D]`.
    Bernoulli { logits: Tensor<2> },
    /// Gaussian means and log-variances, `[K, D]` each.
    Gaussian {
        means: Tensor<2>,
        log_variances: Tensor<2>,
    },
}

impl Components {
    /// `log p(x_n | k)` for every example and component, from matrix products.
    ///
    /// Bernoulli: `x·lᵀ − 1·softplus(l)ᵀ`, since `log μ = l − softplus(l)` and
    /// `log(1 − μ) = −softplus(l)`. Gaussian: the squared Mahalanobis term expanded,
    /// `Σ_d (x_d − μ_d)²/σ²_d = x²·(1/σ²)ᵀ − 2 x·(μ/σ²)ᵀ + Σ_d μ²_d/σ²_d`. `x_sq` is `x²`
    /// when the caller has it already (EM reuses it every iteration).
    ///
    /// # Shapes
    /// - x, x_sq: `[N, D]`
    /// - output: `[N, K]`
    pub(crate) fn log_likelihoods(&self, x: Tensor<2>, x_sq: Option<Tensor<2>>) -> Tensor<2> {
        match self {
            Self::Bernoulli { logits } => {
                let k = logits.dims()[0];
                let normaliser = softplus(logits.clone()).sum_dim(1).reshape([1, k]);
                x.matmul(logits.clone().transpose()) - normaliser
            }
            Self::Gaussian {
                means,
                log_variances,
            } => {
                let [k, d] = means.dims();
                let precision = log_variances.clone().neg().exp();
                let x_sq = x_sq.unwrap_or_else(|| x.clone().powi_scalar(2));
                let quadratic = x_sq.matmul(precision.clone().transpose());
                let cross = x.matmul((means.clone() * precision.clone()).transpose());
                let constant = (means.clone().powi_scalar(2) * precision + log_variances.clone())
                    .sum_dim(1)
                    .reshape([1, k])
                    + d as f64 * (2.0 * PI).ln();
                (quadratic - cross * 2.0 + constant) * -0.5
            }
        }
    }

    /// `log p(x_n | k)` of images for every example and component: the Bernoulli
    /// log-probability as in [`log_likelihoods`](Self::log_likelihoods), or the discretized
    /// Gaussians' (see the crate docs). For 256 images or more, gathered from the `[K, D, 256]`
    /// table of every level's log-probability; for fewer (a training batch, whose graph keeps
    /// every intermediate value), computed for the images' own levels, `[N, K, D]`. Either way
    /// `GATHER_VALUES` values at a time.
    ///
    /// # Shapes
    /// - x: `[N, D]`, pixels in `[0, 1]` (read as the level `round(255·x)`)
    /// - output: `[N, K]`
    pub(crate) fn image_log_likelihoods(&self, x: Tensor<2>) -> Tensor<2> {
        let Self::Gaussian {
            means,
            log_variances,
        } = self
        else {
            return self.log_likelihoods(x, None);
        };
        let [k, d] = means.dims();
        let [n, _] = x.dims();
        let chunk = (GATHER_VALUES / (k * d).max(1)).max(1);
        if n < GREY_LEVELS {
            let parts = (0..n)
                .step_by(chunk)
                .map(|start| {
                    let len = chunk.min(n - start);
                    let shape = [len, k, d];
                    discretized_gaussian_log_prob_elements(
                        x.clone()
                            .narrow(0, start, len)
                            .reshape([len, 1, d])
                            .expand(shape),
                        means.clone().reshape([1, k, d]).expand(shape),
                        log_variances.clone().reshape([1, k, d]).expand(shape),
                    )
                    .sum_dim(2)
                    .reshape([len, k])
                })
                .collect();
            return Tensor::cat(parts, 0);
        }
        let table = discretized_gaussian_level_log_probs(means.clone(), log_variances.clone())
            .reshape([k, d * GREY_LEVELS]);
        // Pixel d's level v is entry d·256 + v of a component's row.
        let offsets =
            Tensor::<1, Int>::arange_step(0..(d * GREY_LEVELS) as i64, GREY_LEVELS, &x.device())
                .reshape([1, d]);
        let parts = (0..n)
            .step_by(chunk)
            .map(|start| {
                let len = chunk.min(n - start);
                let index = (grey_levels(x.clone().narrow(0, start, len)) + offsets.clone())
                    .reshape([len * d]);
                table
                    .clone()
                    .select(1, index)
                    .reshape([k, len, d])
                    .sum_dim(2)
                    .reshape([k, len])
            })
            .collect();
        Tensor::cat(parts, 1).transpose()
    }
}

/// A mixture of `K` Bernoulli or diagonal-Gaussian components; build it with
/// [`MixtureConfig::init`], fit it with [`fit_em`], or set it by hand with
/// [`Mixture::from_parameters`].
///
/// Parameters: mixture logits `[K]` (`π = softmax`), and per component either Bernoulli
/// logits `[K, D]` (`μ = sigmoid`) or Gaussian means and log-variances `[K, D]`.
#[derive(Module, Debug)]
pub struct Mixture {
    mixture_logits: Param<Tensor<1>>,
    bernoulli_logits: Option<Param<Tensor<2>>>,
    gaussian_means: Option<Param<Tensor<2>>>,
    gaussian_log_variances: Option<Param<Tensor<2>>>,
    #[module(skip)]
    config: MixtureConfig,
}

impl Mixture {
    /// A mixture with the given weights `π` (`[K]`, positive; normalised here), component
    /// means (`[K, D]`: Bernoulli probabilities in `(0, 1)`, or Gaussian means) and, for
    /// Gaussian components, variances (`[K, D]`, positive). Values outside the configured
    /// floors are clamped into them when used.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for an invalid config, or variances given (or missing)
    /// against the likelihood; [`GenError::ShapeMismatch`] for shapes other than `[K]`,
    /// `[K, D]`; [`GenError::NonFiniteInput`] or [`GenError::ValueOutOfRange`] for values
    /// outside their domain.
    pub fn from_parameters(
        config: &MixtureConfig,
        weights: Tensor<1>,
        means: Tensor<2>,
        variances: Option<Tensor<2>>,
    ) -> Result<Self> {
        config.validate()?;
        let (k, d) = (config.components, config.dims());
        let device = means.device();
        if weights.dims() != [k] {
            return Err(GenError::shape("mixture weights", [k], weights.dims()));
        }
        if means.dims() != [k, d] {
            return Err(GenError::shape("mixture means", [k, d], means.dims()));
        }
        let w = to_host(weights)?;
        check_values(&w, "mixture weights", "(0, ∞)", |v| v > 0.0)?;
        let total: f64 = w.iter().map(|&v| f64::from(v)).sum();
        let log_w: Vec<f32> = w
            .iter()
            .map(|&v| (f64::from(v) / total).ln() as f32)
            .collect();
        let mixture_logits =
            Param::from_tensor(Tensor::from_data(TensorData::new(log_w, [k]), &device));
        let m = to_host(means.clone())?;
        let model = match (config.likelihood, variances) {
            (ComponentLikelihood::Bernoulli, None) => {
                check_values(&m, "Bernoulli means", "(0, 1)", |v| v > 0.0 && v < 1.0)?;
                let logits = means.clone().log() - means.neg().log1p();
                Self {
                    mixture_logits,
                    bernoulli_logits: Some(Param::from_tensor(logits)),
                    gaussian_means: None,
                    gaussian_log_variances: None,
                    config: config.clone(),
                }
            }
            (ComponentLikelihood::DiagonalGaussian, Some(variances)) => {
                check_values(&m, "Gaussian means", "(−∞, ∞)", |_| true)?;
                if variances.dims() != [k, d] {
                    return Err(GenError::shape(
                        "mixture variances",
                        [k, d],
                        variances.dims(),
                    ));
                }
                let v = to_host(variances.clone())?;
                check_values(&v, "Gaussian variances", "(0, ∞)", |v| v > 0.0)?;
                Self {
                    mixture_logits,
                    bernoulli_logits: None,
                    gaussian_means: Some(Param::from_tensor(means)),
                    gaussian_log_variances: Some(Param::from_tensor(variances.log())),
                    config: config.clone(),
                }
            }
            (ComponentLikelihood::Bernoulli, Some(_)) => {
                return Err(GenError::InvalidConfig(
                    "a Bernoulli mixture takes no variances".into(),
                ));
            }
            (ComponentLikelihood::DiagonalGaussian, None) => {
                return Err(GenError::InvalidConfig(
                    "a Gaussian mixture needs variances".into(),
                ));
            }
        };
        Ok(model)
    }

    /// Builds a model from EM's unconstrained tensors (already inside the floors).
    pub(crate) fn from_fitted(
        config: &MixtureConfig,
        log_weights: Tensor<1>,
        components: Components,
    ) -> Self {
        let mixture_logits = Param::from_tensor(log_weights);
        match components {
            Components::Bernoulli { logits } => Self {
                mixture_logits,
                bernoulli_logits: Some(Param::from_tensor(logits)),
                gaussian_means: None,
                gaussian_log_variances: None,
                config: config.clone(),
            },
            Components::Gaussian {
                means,
                log_variances,
            } => Self {
                mixture_logits,
                bernoulli_logits: None,
                gaussian_means: Some(Param::from_tensor(means)),
                gaussian_log_variances: Some(Param::from_tensor(log_variances)),
                config: config.clone(),
            },
        }
    }

    /// The mixture weights `π`, `[K]`.
    pub fn weights(&self) -> Tensor<1> {
        softmax(self.mixture_logits.val(), 0)
    }

    /// `log π`, `[K]`.
    pub fn log_weights(&self) -> Tensor<1> {
        log_softmax(self.mixture_logits.val(), 0)
    }

    /// The component means `E[x | k]`, `[K, D]`: Bernoulli probabilities or Gaussian means.
    pub fn component_means(&self) -> Tensor<2> {
        match self.components() {
            Components::Bernoulli { logits } => sigmoid(logits),
            Components::Gaussian { means, .. } => means,
        }
    }

    /// The component variances `σ²`, `[K, D]`, of a Gaussian mixture (`None` for Bernoulli).
    pub fn component_variances(&self) -> Option<Tensor<2>> {
        match self.components() {
            Components::Bernoulli { .. } => None,
            Components::Gaussian { log_variances, .. } => Some(log_variances.exp()),
        }
    }

    /// The component means as images `[K, C, H, W]`, for looking at (Gaussian means clamped
    /// to `[0, 1]`).
    pub fn component_images(&self) -> Tensor<4> {
        let k = self.config.components;
        self.component_means()
            .clamp(0.0, 1.0)
            .reshape(self.config.image_shape.batch_dims(k))
    }

    /// The component parameters, clamped into the configured floors.
    pub(crate) fn components(&self) -> Components {
        let config = &self.config;
        match (
            &self.bernoulli_logits,
            &self.gaussian_means,
            &self.gaussian_log_variances,
        ) {
            (Some(logits), _, _) => {
                let bound = -config.min_logit();
                Components::Bernoulli {
                    logits: logits.val().clamp(-bound, bound),
                }
            }
            (None, Some(means), Some(log_variances)) => Components::Gaussian {
                means: means.val(),
                log_variances: log_variances.val().clamp_min(config.min_variance.ln()),
            },
            _ => unreachable!("a mixture has Bernoulli or Gaussian components by construction"),
        }
    }

    /// `log π_k + log p(x_n | k)` for every example and component, without input checks, with
    /// the continuous Gaussian density for a Gaussian mixture (EM's objective; raw points).
    ///
    /// # Shapes
    /// - x: `[N, D]`
    /// - output: `[N, K]`
    pub(crate) fn log_joint_unchecked(&self, x: Tensor<2>) -> Tensor<2> {
        let k = self.config.components;
        self.components().log_likelihoods(x, None) + self.log_weights().reshape([1, k])
    }

    /// Exact `log p(x_n)` per example, without input checks (the continuous density for a
    /// Gaussian mixture).
    fn log_likelihood_unchecked(&self, x: Tensor<2>) -> Tensor<1> {
        log_sum_exp(self.log_joint_unchecked(x), 1)
    }

    /// Exact `log p(x_n)` of images per example, without input checks: the log-probability of
    /// the binary or 8-bit image, with discretized Gaussian components.
    ///
    /// # Shapes
    /// - x: `[N, D]`
    /// - output: `[N]`
    fn image_log_likelihood_unchecked(&self, x: Tensor<2>) -> Tensor<1> {
        let k = self.config.components;
        let log_joint =
            self.components().image_log_likelihoods(x) + self.log_weights().reshape([1, k]);
        log_sum_exp(log_joint, 1)
    }

    /// Exact `log p(x_n) = log Σ_k π_k p(x_n | k)` of raw points, in nats: for a Gaussian
    /// mixture the log-density of the continuous Gaussians, `p(x | k) = Π_d N(x_d; μ_kd,
    /// σ²_kd)`, for points anywhere in `ℝ^D` (images get the discretized model's
    /// log-probability from [`GenerativeModel::log_likelihood`]).
    ///
    /// # Shapes
    /// - x: `[N, D]`
    /// - output: `[N]`
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for `N = 0`, [`GenError::ShapeMismatch`] when `D` is not the
    /// config's, [`GenError::NonFiniteInput`] for NaN or ±∞, and for a Bernoulli mixture
    /// [`GenError::ValueOutOfRange`] for values other than 0 and 1.
    pub fn log_likelihood_points(&self, x: Tensor<2>) -> Result<Tensor<1>> {
        check_points(&self.config, &x, "mixture log-likelihood")?;
        Ok(self.log_likelihood_unchecked(x))
    }

    /// The posterior `p(k | x_n)` of each component (the E-step's responsibilities, under the
    /// continuous density for a Gaussian mixture).
    ///
    /// # Shapes
    /// - x: `[N, D]`
    /// - output: `[N, K]`, rows summing to 1
    ///
    /// # Errors
    /// As [`log_likelihood_points`](Self::log_likelihood_points).
    pub fn responsibilities(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        check_points(&self.config, &x, "mixture responsibilities")?;
        Ok(softmax(self.log_joint_unchecked(x), 1))
    }

    /// `n` points `[n, D]` drawn ancestrally, `k ~ Cat(π)` then `x ~ p(x | k)`, reproducible
    /// from `seed`. Gaussian draws are not clamped (see [`GenerativeModel::sample`] for
    /// images).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0`.
    pub fn sample_points(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        require_samples(n)?;
        let device = module_device(self);
        let d = self.config.dims();
        let mut rng = random::rng(seed);
        let weights = to_host(self.weights())?;
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let chosen: Vec<i64> = (0..n)
            .map(|_| categorical(&weights, total, rng.random::<f64>()) as i64)
            .collect();
        let chosen = Tensor::<1, Int>::from_data(TensorData::new(chosen, [n]), &device);
        Ok(match self.components() {
            Components::Bernoulli { logits } => {
                let probabilities = sigmoid(logits).select(0, chosen);
                random::uniform([n, d], &mut rng, &device)
                    .lower(probabilities)
                    .float()
            }
            Components::Gaussian {
                means,
                log_variances,
            } => {
                let std = (log_variances.select(0, chosen.clone()) * 0.5).exp();
                means.select(0, chosen) + std * random::standard_normal([n, d], &mut rng, &device)
            }
        })
    }
}

/// The index `k` with `Σ_{j<k} w_j ≤ u·total < Σ_{j≤k} w_j`.
fn categorical(weights: &[f32], total: f64, u: f64) -> usize {
    let target = u * total;
    let mut cumulative = 0.0;
    for (k, &w) in weights.iter().enumerate() {
        cumulative += f64::from(w);
        if target < cumulative {
            return k;
        }
    }
    weights.len() - 1
}

/// Checks every value satisfies `ok` (and is finite).
fn check_values(
    values: &[f32],
    context: &str,
    expected: &str,
    ok: impl Fn(f32) -> bool,
) -> Result<()> {
    for &v in values {
        if !v.is_finite() {
            return Err(GenError::NonFiniteInput {
                context: context.into(),
            });
        }
        if !ok(v) {
            return Err(GenError::ValueOutOfRange {
                context: context.into(),
                expected: expected.into(),
                found: v,
            });
        }
    }
    Ok(())
}

/// Checks raw points `[N, D]` fit a mixture of `config`: non-empty, `D` right, finite, and
/// binary for a Bernoulli mixture. Reads the points back to the host once.
pub(crate) fn check_points(config: &MixtureConfig, x: &Tensor<2>, context: &str) -> Result<()> {
    let [n, d] = x.dims();
    if n == 0 {
        return Err(GenError::EmptyData {
            context: context.into(),
        });
    }
    if d != config.dims() {
        return Err(GenError::shape(
            format!("{context} points"),
            format!("[N, {}]", config.dims()),
            [n, d],
        ));
    }
    let values = to_host(x.clone())?;
    match config.likelihood {
        ComponentLikelihood::Bernoulli => check_values(
            &values,
            &format!("{context} (Bernoulli likelihood)"),
            "{0, 1}",
            |v| v == 0.0 || v == 1.0,
        ),
        ComponentLikelihood::DiagonalGaussian => check_values(&values, context, "", |_| true),
    }
}

impl GenerativeModel for Mixture {
    type Config = MixtureConfig;

    fn config(&self) -> &MixtureConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// Exact `log p(x)` per image (options are ignored: nothing is estimated): the
    /// log-probability of the binary image, or of the 8-bit image under the discretized
    /// Gaussians.
    fn compute_log_likelihood(
        &self,
        batch: &ImageBatch,
        _: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        self.check_batch(batch)?;
        LogLikelihood::from_tensor(
            LikelihoodKind::Exact,
            self.image_log_likelihood_unchecked(batch.flat_images()),
            self.config.dims(),
            self.config.density_scale(),
        )
    }

    /// `n` images drawn ancestrally. Bernoulli samples are binary images; Gaussian samples are
    /// 8-bit images, each draw replaced by the level of its bin, `round(255·clamp(x, 0, 1))/255`
    /// (use [`Mixture::sample_points`] for the raw draws).
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        let points = self.sample_points(n, seed)?;
        let images = match self.config.likelihood {
            ComponentLikelihood::Bernoulli => points,
            ComponentLikelihood::DiagonalGaussian => grey_levels(points).float() / 255.0,
        };
        Ok(images.reshape(self.config.image_shape.batch_dims(n)))
    }
}

impl genmodels_core::capabilities::Represent for Mixture {
    /// The posterior over components of each image, Bayes' rule on the model's own image
    /// likelihood:
    ///
    /// ```text
    /// p(k | x) = π_k p(x | k) / Σ_j π_j p(x | j),
    /// ```
    ///
    /// computed as a softmax over `k` of `log π_k + log p(x | k)` (the Bernoulli probability of
    /// the binary image, or the discretized Gaussians' of the 8-bit image). A soft cluster
    /// assignment: rows are non-negative and sum to 1.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, K]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape; [`GenError::ValueOutOfRange`]
    /// for a Bernoulli mixture given grey levels.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        self.check_batch(batch)?;
        let k = self.config.components;
        let log_joint = self.components().image_log_likelihoods(batch.flat_images())
            + self.log_weights().reshape([1, k]);
        Ok(softmax(log_joint, 1))
    }

    fn representation_name(&self) -> &'static str {
        "responsibilities p(k|x)"
    }
}

/// `−log p(x)`, exact.
impl genmodels_core::AnomalyScore for Mixture {}

impl Trainable for Mixture {
    /// Mean negative log-likelihood per image, `−(1/N) Σ_n log p(x_n)`, in nats, of the model
    /// [`GenerativeModel::log_likelihood`] scores (discretized Gaussians for grey levels).
    fn loss(&self, _player: usize, batch: &ImageBatch) -> Result<Loss> {
        self.check_batch(batch)?;
        let nll = self
            .image_log_likelihood_unchecked(batch.flat_images())
            .mean()
            .neg();
        Ok(Loss::new(nll.clone()).with_component("nll", nll))
    }

    /// Fits the mixture by EM ([`fit_em`]) on the training images, with up to
    /// `em_max_iterations` iterations from a k-means++ initialisation drawn from `seed`. EM
    /// starts afresh: parameters from gradient epochs before it are not used, so train the
    /// mixture for 0 epochs (as the CLI does) unless gradient descent is what you want, with
    /// `em_max_iterations = 0`.
    fn fit_after_training(
        self,
        train: &dyn genmodels_core::ImageDataset,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if self.config.em_max_iterations == 0 {
            return Ok(self);
        }
        let options = EmOptions {
            max_iterations: self.config.em_max_iterations,
            tolerance: self.config.em_tolerance,
            seed,
            progress: true,
        };
        let (model, report) = fit_em(&self.config, train, &options, device)?;
        eprintln!(
            "EM: {} iterations ({}) in {:.1} s, mean training log-likelihood {:.3} nats{}",
            report.iterations,
            if report.converged {
                "converged"
            } else {
                "iteration limit"
            },
            report.seconds,
            report.final_log_likelihood(),
            match self.config.likelihood {
                ComponentLikelihood::Bernoulli => "",
                ComponentLikelihood::DiagonalGaussian =>
                    " (EM's continuous density, not the discretized model's probability)",
            }
        );
        Ok(model)
    }
}

impl Mixture {
    /// Checks a batch's shape, and that it is binary for a Bernoulli mixture.
    fn check_batch(&self, batch: &ImageBatch) -> Result<()> {
        batch.require_shape(self.config.image_shape, "mixture")?;
        if self.config.likelihood == ComponentLikelihood::Bernoulli {
            batch.require_binary("Bernoulli mixture")?;
        }
        Ok(())
    }
}

//! # genmodels-diffusion
//!
//! Denoising diffusion probabilistic models (Ho et al. 2020) with DDIM sampling (Song et al.
//! 2021) and the cosine schedule of Nichol & Dhariwal (2021).
//!
//! ## The maths
//! Images `x ∈ [0, 1]` are scaled to `x_0 = 2x − 1 ∈ [−1, 1]`. The forward process adds
//! Gaussian noise in `T` steps, `q(x_t|x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I)`, so that
//! `q(x_t|x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)` with `ᾱ_t = Π_{s≤t} (1 − β_s)` and `x_T` is close to
//! `N(0, I)` ([`Schedule`]). The generative model runs it backwards,
//! `p_θ(x_{t−1}|x_t) = N(μ_θ(x_t, t), σ_t² I)` from `p(x_T) = N(0, I)`, with `σ_t²` fixed
//! ([`ReverseVariance`]) and the mean from a network `ε_θ` (a [`UNet`]) that predicts the
//! noise in `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`:
//!
//! ```text
//! μ_θ(x_t, t) = (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t.
//! ```
//!
//! Training minimises Ho et al.'s `L_simple = E_{t, x_0, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε,
//! t)‖²` with `t` uniform on `1..=T`. The likelihood is the variational bound
//!
//! ```text
//! −log p_θ(x_0) ≤ L = KL(q(x_T|x_0) ‖ p(x_T)) + Σ_{t=2}^T KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t))
//!                     − log p_θ(x_0|x_1),
//! ```
//!
//! every KL between Gaussians in closed form, and the decoder `p_θ(x_0|x_1)` the mass of
//! `N(μ_θ(x_1, 1), σ_1²)` on `x_0`'s bin of the data's grid ([`DataGrid`]): two bins split at
//! 0 for binary images, 256 bins (Ho et al.'s discretized Gaussian) for 8-bit grey levels.
//! `−L` is therefore a lower bound on the log-probability of the binary or 8-bit image
//! ([`LikelihoodKind::Elbo`], [`DensityScale::Discrete`]), comparable with the other
//! families' likelihoods. See [`GaussianDiffusion`] for the terms and their estimates.
//!
//! ## Sampling
//! Ancestral sampling runs the `T` reverse steps; DDIM takes `S ≤ T` evenly spaced steps with
//! noise scale `η` (deterministic at `η = 0`). Both read the last step's continuous image out
//! on the data's grid ([`Diffusion::to_grid`]). Inpainting ([`Complete`] on [`Diffusion`]) replaces
//! the observed pixels at every step by their forward-noised copy; super-resolution
//! ([`SuperResolve`] on [`Diffusion`], ILVR) replaces the sample's low-pass at every step by
//! that of the forward-noised low-resolution input.
//!
//! ## Weights
//! Sampling and likelihoods use an exponential moving average of the trained weights (Ho et
//! al. use a decay of 0.9999), kept in the model next to the trained network so that
//! checkpoints save and load it.

#![warn(missing_docs)]

mod process;
mod schedule;
mod unet;

pub use process::{BoundOptions, BoundTerms, DataGrid, Decoder, GaussianDiffusion, NoisePredictor};
pub use schedule::{MAX_COSINE_BETA, NoiseSchedule, ReverseVariance, Schedule};
pub use unet::{
    DownLevel, Middle, ResidualBlock, SelfAttention, UNet, UNetConfig, UpLevel,
    sinusoidal_embedding,
};

use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};
use genmodels_core::{
    Complete, DensityScale, GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodKind,
    LikelihoodOptions, LogLikelihood, Loss, ModelConfig, Result, SampleWithMethod, SamplingMethod,
    Trainable,
    batch::to_host,
    capabilities::{SuperResolve, SuperResolved, check_super_resolution, upsample_nearest},
    model::{materialise_parameters, module_device, require_samples},
    random,
};

/// Steps per image of the bound's estimate in
/// [`compute_log_likelihood`](GenerativeModel::compute_log_likelihood): `L_0` and 32
/// stratified draws of the other terms (one from each run of `(T − 1)/32` consecutive steps),
/// so 33 network passes per image instead of `T` ([`BoundTerms::Sampled`]). [`Diffusion::variational_bound`] takes any choice, the exact sum included.
pub const LIKELIHOOD_TERMS: usize = 32;

/// DDIM steps of [`Diffusion::default_sampler`].
pub const DEFAULT_DDIM_STEPS: usize = 50;

/// Configuration of a [`Diffusion`] model. The default is [`DiffusionConfig::small`] for
/// binary MNIST.
#[derive(Config, Debug)]
pub struct DiffusionConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The grid the data lie on: the decoder of the bound and the read-out of samples.
    #[config(default = "DataGrid::Binary")]
    pub data_grid: DataGrid,
    /// Steps `T` of the forward process.
    #[config(default = 1000)]
    pub timesteps: usize,
    /// The variances `β_t`.
    #[config(default = "NoiseSchedule::HO")]
    pub schedule: NoiseSchedule,
    /// The reverse process's variances `σ_t²`.
    #[config(default = "ReverseVariance::PosteriorVariance")]
    pub reverse_variance: ReverseVariance,
    /// The noise predictor.
    #[config(default = "UNetConfig::new()")]
    pub unet: UNetConfig,
    /// Decay of the weights' moving average: after each step `ema ← d·ema + (1 − d)·θ` with
    /// `d = min(decay, (1 + n)/(10 + n))` after `n` earlier updates, so that the average
    /// follows the early, fast-moving weights.
    #[config(default = 0.999)]
    pub ema_decay: f64,
    /// Whether sampling clips each step's denoised estimate `x̂_0` to `[−1, 1]`, as Ho et
    /// al. do (the bound is always that of the unclipped model).
    #[config(default = true)]
    pub clip_denoised: bool,
}

impl Default for DiffusionConfig {
    /// [`DiffusionConfig::small`] for MNIST.
    fn default() -> Self {
        Self::new()
    }
}

impl DiffusionConfig {
    /// A small model that trains on two CPU cores: a U-Net of 16 base channels, multipliers
    /// `[1, 2, 2]` (28 → 14 → 7), one block per level, attention at the lowest level, 8
    /// groups, no dropout: 280,177 parameters for 1-channel images (the moving average holds
    /// as many again); Ho et al.'s linear schedule with `T = 1000`, `σ_t² = β̃_t`, EMA decay
    /// 0.999. A training step on 64 MNIST images took 0.66 s on two CPU cores shared with
    /// another job (about 73 s for an epoch of the 7,000 training digits of the comparison's
    /// split); a forward pass of 64 images 0.19 s, so
    /// ancestral sampling (`T` passes) is far slower than DDIM with a few dozen steps.
    pub fn small(image_shape: ImageShape, data_grid: DataGrid) -> Self {
        Self::new()
            .with_image_shape(image_shape)
            .with_data_grid(data_grid)
            .with_unet(
                UNetConfig::new()
                    .with_base_channels(16)
                    .with_channel_multipliers(vec![1, 2, 2])
                    .with_blocks_per_level(1)
                    .with_attention(true)
                    .with_groups(8),
            )
            .with_ema_decay(0.999)
    }

    /// A model in the spirit of Ho et al.'s (scaled for 28×28 images and a GPU): 64 base
    /// channels, multipliers `[1, 2, 2]`, two blocks per level, attention at 7×7, 32 groups,
    /// dropout 0.1, `T = 1000` with the linear schedule, EMA decay 0.9999: 6,469,889
    /// parameters for 1-channel images (and as many in the moving average).
    pub fn paper(image_shape: ImageShape, data_grid: DataGrid) -> Self {
        Self::new()
            .with_image_shape(image_shape)
            .with_data_grid(data_grid)
            .with_unet(
                UNetConfig::new()
                    .with_base_channels(64)
                    .with_channel_multipliers(vec![1, 2, 2])
                    .with_blocks_per_level(2)
                    .with_attention(true)
                    .with_groups(32)
                    .with_dropout(0.1),
            )
            .with_ema_decay(0.9999)
    }

    /// The reverse process the configuration describes.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a schedule that cannot work (see [`Schedule::new`]).
    pub fn process(&self) -> Result<GaussianDiffusion> {
        Ok(GaussianDiffusion::new(
            Schedule::new(self.schedule, self.timesteps)?,
            self.reverse_variance,
        ))
    }
}

impl ModelConfig for DiffusionConfig {
    type Model = Diffusion;
    const MODEL_NAME: &'static str = "diffusion";

    fn init(&self, device: &Device) -> Result<Diffusion> {
        let process = self.process()?;
        if !(self.ema_decay.is_finite() && (0.0..=1.0).contains(&self.ema_decay)) {
            return Err(GenError::InvalidConfig(format!(
                "ema_decay must lie in [0, 1], got {}",
                self.ema_decay
            )));
        }
        let unet = self.unet.init(self.image_shape, device)?;
        // Drawn now, so that the average starts from the very weights the network has.
        materialise_parameters(&unet);
        let ema = unet.clone().map(&mut FreshIds).freeze();
        Ok(Diffusion {
            unet,
            ema,
            ema_updates: Param::from_tensor(Tensor::zeros([1], device)).set_require_grad(false),
            config: self.clone(),
            process,
        })
    }
}

/// Gives every parameter a new id: the moving average must not share ids with the trained
/// network, or the optimiser would step it with the network's gradients.
struct FreshIds;

impl ModuleMapper for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(ParamId::new(), value.detach(), mapper)
    }
}

/// Collects a module's parameters, flattened, in visiting order.
struct Flatten(Vec<Tensor<1>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().detach();
        let len = value.shape().num_elements();
        self.0.push(value.reshape([len]));
    }
}

/// `ema ← decay·ema + (1 − decay)·θ`, parameter by parameter in visiting order.
struct MoveAverage {
    live: std::vec::IntoIter<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for MoveAverage {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let live = self
            .live
            .next()
            .expect("the average has the network's structure");
        let decay = self.decay;
        param.map(|average| {
            let shape = average.shape();
            (average.detach() * decay + live.reshape(shape) * (1.0 - decay)).detach()
        })
    }
}

/// A denoising diffusion model; build it with [`DiffusionConfig::init`].
#[derive(Module, Debug)]
pub struct Diffusion {
    /// The trained noise predictor.
    unet: UNet,
    /// The moving average of `unet`'s weights, frozen (no gradients, no dropout): what
    /// samples and likelihoods use.
    ema: UNet,
    /// How many times the average has been updated (a float, `[1]`, without gradient).
    ema_updates: Param<Tensor<1>>,
    #[module(skip)]
    config: DiffusionConfig,
    #[module(skip)]
    process: GaussianDiffusion,
}

/// A [`UNet`] as a [`NoisePredictor`]: steps go in as floats.
struct Network<'a>(&'a UNet);

impl NoisePredictor for Network<'_> {
    fn predict_noise(&self, noisy: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
        let steps: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
        let steps = Tensor::<1>::from_floats(steps.as_slice(), &noisy.device());
        self.0.forward(noisy, steps)
    }
}

impl Diffusion {
    /// The trained network.
    pub fn network(&self) -> &UNet {
        &self.unet
    }

    /// The moving average of its weights, which sampling and likelihoods use.
    pub fn average_network(&self) -> &UNet {
        &self.ema
    }

    /// The reverse process.
    pub fn process(&self) -> &GaussianDiffusion {
        &self.process
    }

    /// The averaged network's noise prediction `ε_θ(x_t, t)`, checked.
    ///
    /// # Shapes
    /// - noisy: `[N, C, H, W]` on the model's `[−1, 1]` scale; timesteps: `N` steps
    /// - output: `[N, C, H, W]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape or a step count that is not
    /// `N`; [`GenError::InvalidConfig`] for a step outside `1..=T`;
    /// [`GenError::NonFiniteInput`] for NaN or infinite pixels.
    pub fn predict_noise(&self, noisy: Tensor<4>, timesteps: &[usize]) -> Result<Tensor<4>> {
        self.check_tensor(&noisy, "diffusion noise prediction")?;
        if timesteps.len() != noisy.dims()[0] {
            return Err(GenError::shape(
                "diffusion timesteps",
                noisy.dims()[0],
                timesteps.len(),
            ));
        }
        if let Some(t) = timesteps
            .iter()
            .find(|&&t| t == 0 || t > self.config.timesteps)
        {
            return Err(GenError::InvalidConfig(format!(
                "timestep {t} is outside 1..={}",
                self.config.timesteps
            )));
        }
        Ok(Network(&self.ema).predict_noise(noisy, timesteps))
    }

    fn check_tensor(&self, x: &Tensor<4>, context: &str) -> Result<()> {
        let [_, c, h, w] = x.dims();
        let shape = self.config.image_shape;
        if ImageShape::new(c, h, w) != shape {
            return Err(GenError::shape(
                context,
                shape.batch_dims(x.dims()[0]),
                x.dims(),
            ));
        }
        if !to_host(x.clone())?.iter().all(|v| v.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: context.into(),
            });
        }
        Ok(())
    }

    fn check_input(&self, batch: &ImageBatch, for_likelihood: bool) -> Result<()> {
        batch.require_shape(self.config.image_shape, "diffusion model")?;
        if for_likelihood && self.config.data_grid == DataGrid::Binary {
            batch.require_binary("diffusion model")?;
        }
        Ok(())
    }

    /// Images on the model's scale: `2x − 1`.
    fn scaled(batch: &ImageBatch) -> Tensor<4> {
        batch.images().clone() * 2.0 - 1.0
    }

    /// Reads the reverse process's last, continuous image `x̂ ∈ ℝ` (model scale) out on the
    /// data's grid, in `[0, 1]`: the decoder's most probable value given its mean, the bin
    /// that holds `x̂` (its nearest grid point), so the read-out is deterministic. Binary:
    /// `1` where `x̂ > 0`, else `0`. Grey: `round(255·clamp((x̂ + 1)/2, 0, 1))/255`.
    ///
    /// # Shapes
    /// - x: `[N, C, H, W]`; output: the same
    pub fn to_grid(&self, x: Tensor<4>) -> Tensor<4> {
        match self.config.data_grid {
            DataGrid::Binary => x.greater_elem(0.0).float(),
            DataGrid::Grey256 => {
                ((x + 1.0) * 0.5).clamp(0.0, 1.0).mul_scalar(255.0).round() / 255.0
            }
        }
    }

    fn noise_start(&self, n: usize, rng: &mut rand::rngs::StdRng) -> Tensor<4> {
        random::standard_normal(
            self.config.image_shape.batch_dims(n),
            rng,
            &module_device(self),
        )
    }

    /// `n` images by ancestral sampling (`T` reverse steps, see
    /// [`GaussianDiffusion::sample_ancestral`]) with the averaged weights, read out by
    /// [`to_grid`](Self::to_grid); the same seed gives the same images.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0`.
    pub fn sample_ancestral(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let mut rng = random::rng(seed);
        let start = self.noise_start(n, &mut rng);
        let x = self.process.sample_ancestral(
            &Network(&self.ema),
            start,
            self.config.clip_denoised,
            &mut rng,
        );
        Ok(self.to_grid(x))
    }

    /// `n` images by DDIM with `steps` steps and noise scale `eta` (see
    /// [`GaussianDiffusion::sample_ddim`]) from `x_T` drawn from `seed`, read out by
    /// [`to_grid`](Self::to_grid).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0`, `steps` outside `1..=T` or `η` negative or
    /// not finite.
    pub fn sample_ddim(&self, n: usize, steps: usize, eta: f64, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let mut rng = random::rng(seed);
        let start = self.noise_start(n, &mut rng);
        self.sample_ddim_from(start, steps, eta, rng)
    }

    /// DDIM from a given `x_T` (model scale), its noise (for `η > 0`) drawn from `rng`; with
    /// `η = 0` the result is a function of `x_T` alone.
    ///
    /// # Errors
    /// As [`sample_ddim`](Self::sample_ddim); [`GenError::ShapeMismatch`] and
    /// [`GenError::NonFiniteInput`] for an `x_T` that does not fit.
    pub fn sample_ddim_from(
        &self,
        x_t: Tensor<4>,
        steps: usize,
        eta: f64,
        mut rng: rand::rngs::StdRng,
    ) -> Result<Tensor<4>> {
        self.check_tensor(&x_t, "DDIM start x_T")?;
        self.check_ddim(steps, eta)?;
        let x = self.process.sample_ddim(
            &Network(&self.ema),
            x_t,
            steps,
            eta,
            self.config.clip_denoised,
            &mut rng,
        );
        Ok(self.to_grid(x))
    }

    /// Checks DDIM's settings: `steps` in `1..=T`, `η` finite and non-negative.
    fn check_ddim(&self, steps: usize, eta: f64) -> Result<()> {
        if steps == 0 || steps > self.config.timesteps {
            return Err(GenError::InvalidConfig(format!(
                "DDIM takes 1 to T = {} steps, got {steps}",
                self.config.timesteps
            )));
        }
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "DDIM's η must be finite and non-negative, got {eta}"
            )));
        }
        Ok(())
    }

    /// The sampler the tools use by default: DDIM with 50 deterministic steps (all `T` if
    /// fewer), as most DDPM evaluations do; ancestral sampling takes `T` network passes per
    /// image.
    pub fn default_sampler(&self) -> SamplingMethod {
        SamplingMethod::Ddim {
            steps: DEFAULT_DDIM_STEPS.min(self.config.timesteps),
            eta: 0.0,
        }
    }

    /// The variational bound on `−log p(x)` per image, in nats, with the averaged weights:
    /// every term ([`BoundTerms::Exact`], `T` network passes per image) or an unbiased
    /// estimate ([`BoundTerms::Sampled`]). A bound on the log-probability of the binary or
    /// 8-bit image ([`DataGrid`]).
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`]; [`GenError::InvalidConfig`] for `k = 0` or a
    /// stratified `k > T − 1`.
    pub fn variational_bound(&self, batch: &ImageBatch, options: BoundOptions) -> Result<Vec<f64>> {
        self.check_input(batch, true)?;
        if let BoundTerms::Sampled { k, stratified } = options.terms
            && (k == 0 || (stratified && k > self.config.timesteps.saturating_sub(1).max(1)))
        {
            return Err(GenError::InvalidConfig(format!(
                "the bound's estimate needs 1 to T − 1 = {} terms when stratified (at least 1 \
                 otherwise), got {k}",
                self.config.timesteps.saturating_sub(1)
            )));
        }
        let bound = self.process.variational_bound(
            &Network(&self.ema),
            Self::scaled(batch),
            self.config.data_grid.into(),
            options,
        );
        Ok(to_host(bound)?.into_iter().map(f64::from).collect())
    }

    /// `L_simple` for a batch with steps and noise given: `mean ‖ε − ε_θ(x_t, t)‖²` over
    /// pixels and images, with the trained network.
    fn simple_loss(&self, x0: Tensor<4>, timesteps: Tensor<1, Int>, noise: Tensor<4>) -> Tensor<1> {
        let device = x0.device();
        let n = x0.dims()[0];
        let t_max = self.config.timesteps;
        let table = |f: &dyn Fn(usize) -> f64| {
            let values: Vec<f32> = (0..=t_max).map(|t| f(t) as f32).collect();
            Tensor::<1>::from_floats(values.as_slice(), &device)
                .select(0, timesteps.clone())
                .reshape([n, 1, 1, 1])
        };
        let s = &self.process.schedule;
        let signal = table(&|t| s.alpha_bar(t).sqrt());
        let scale = table(&|t| (1.0 - s.alpha_bar(t)).sqrt());
        let xt = x0 * signal + noise.clone() * scale;
        let predicted = self.unet.forward(xt, timesteps.float());
        (predicted - noise).powi_scalar(2).mean()
    }
}

impl GenerativeModel for Diffusion {
    type Config = DiffusionConfig;

    fn config(&self) -> &DiffusionConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// `−L`, minus the variational bound, estimated from `L_0` and [`LIKELIHOOD_TERMS`]
    /// stratified steps per image (all `T` terms where that is no more), with the averaged
    /// weights; noise from
    /// `options.seed`. A lower bound on `log p(x)` in expectation.
    fn compute_log_likelihood(
        &self,
        batch: &ImageBatch,
        options: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        let terms = if self.config.timesteps <= LIKELIHOOD_TERMS + 1 {
            BoundTerms::Exact
        } else {
            BoundTerms::Sampled {
                k: LIKELIHOOD_TERMS,
                stratified: true,
            }
        };
        let bound = self.variational_bound(
            batch,
            BoundOptions {
                terms,
                seed: options.seed,
            },
        )?;
        Ok(LogLikelihood::new(
            LikelihoodKind::Elbo,
            bound.into_iter().map(|v| -v).collect(),
            self.config.image_shape.dims(),
            DensityScale::Discrete,
        ))
    }

    /// Ancestral sampling ([`Diffusion::sample_ancestral`]).
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        self.sample_ancestral(n, seed)
    }
}

/// A diffusion model's samplers, as the tools name them.
const OWN_SAMPLERS: &str = "`ancestral` or `ddim`";
/// Who refuses the autoregressive models' samplers.
const WHO: &str = "a diffusion model samples";

impl SampleWithMethod for Diffusion {
    /// [`SamplingMethod::Ancestral`] ([`sample_ancestral`](Diffusion::sample_ancestral)) or
    /// [`SamplingMethod::Ddim`] ([`sample_ddim`](Diffusion::sample_ddim)).
    fn sample_with(&self, n: usize, seed: u64, method: SamplingMethod) -> Result<Tensor<4>> {
        match method {
            SamplingMethod::Ancestral => self.sample_ancestral(n, seed),
            SamplingMethod::Ddim { steps, eta } => self.sample_ddim(n, steps, eta, seed),
            SamplingMethod::Naive | SamplingMethod::Cached => {
                Err(method.unsupported(WHO, OWN_SAMPLERS))
            }
        }
    }
}

impl Diffusion {
    /// DDIM's `(steps, η)` for `method`, `None` for ancestral sampling.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for the autoregressive models' samplers and DDIM settings
    /// out of range.
    fn guided_sampler(&self, method: SamplingMethod) -> Result<Option<(usize, f64)>> {
        match method {
            SamplingMethod::Ancestral => Ok(None),
            SamplingMethod::Ddim { steps, eta } => {
                self.check_ddim(steps, eta)?;
                Ok(Some((steps, eta)))
            }
            SamplingMethod::Naive | SamplingMethod::Cached => {
                Err(method.unsupported(WHO, OWN_SAMPLERS))
            }
        }
    }
}

impl SuperResolve for Diffusion {
    /// ILVR (Choi et al. 2021): samples with `method` (ancestral or DDIM) in which, after
    /// every step, the sample's low-pass `φ` (block means by `factor`, repeated) is replaced
    /// by that of the low-resolution input upsampled and forward-noised to that step's noise
    /// level (see [`GaussianDiffusion::super_resolve`]). The continuous result's block means
    /// equal the input exactly; the images are then read out by
    /// [`to_grid`](Diffusion::to_grid), which moves the block means wherever the continuous
    /// values were not already on the grid (for a binary model, thresholding at ½ keeps a
    /// block's mean only when its pixels' roundings cancel out).
    ///
    /// # Errors
    /// As [`SuperResolve::super_resolve`].
    fn super_resolve(
        &self,
        low_res: Tensor<4>,
        factor: usize,
        seed: u64,
        method: SamplingMethod,
    ) -> Result<SuperResolved> {
        check_super_resolution(&low_res, factor, self.config.image_shape, "diffusion model")?;
        let ddim = self.guided_sampler(method)?;
        let reference = upsample_nearest(low_res, factor)? * 2.0 - 1.0;
        let mut rng = random::rng(seed);
        let x = self.process.super_resolve(
            &Network(&self.ema),
            &reference,
            factor,
            ddim,
            self.config.clip_denoised,
            &mut rng,
        );
        Ok(SuperResolved {
            continuous: Some((x.clone() + 1.0) * 0.5),
            images: self.to_grid(x),
        })
    }
}

impl Complete for Diffusion {
    /// Inpainting: keeps the pixels where `observed` is true and samples the others with
    /// `method` (ancestral or DDIM), in which the observed pixels are replaced, after every
    /// step, by their forward-noised copy at that step's noise level (see
    /// [`GaussianDiffusion::complete`]). The observed pixels come back exactly; the others are
    /// read out by [`to_grid`](Diffusion::to_grid).
    ///
    /// Replacement is the simple inpainting of Song et al. (2021, appendix): the unobserved
    /// pixels see the observed ones only through the network, so their agreement at the seam
    /// is looser than an exact conditional sampler's.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for a batch of another shape or a mask of the wrong
    /// length; for a binary model, [`GenError::ValueOutOfRange`] for grey pixels;
    /// [`GenError::InvalidConfig`] for the autoregressive models' samplers or DDIM settings
    /// out of range.
    fn complete(
        &self,
        batch: &ImageBatch,
        observed: &[bool],
        seed: u64,
        method: SamplingMethod,
    ) -> Result<Tensor<4>> {
        self.check_input(batch, true)?;
        let ddim = self.guided_sampler(method)?;
        let dims = batch.images().dims();
        let count: usize = dims.iter().product();
        if observed.len() != count {
            return Err(GenError::shape("inpainting mask", count, observed.len()));
        }
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(observed.to_vec(), dims), &batch.device());
        let mut rng = random::rng(seed);
        let x = self.process.complete(
            &Network(&self.ema),
            &Self::scaled(batch),
            &mask,
            ddim,
            self.config.clip_denoised,
            &mut rng,
        );
        Ok(self.to_grid(x).mask_where(mask, batch.images().clone()))
    }
}

impl Trainable for Diffusion {
    /// `L_simple` (Ho et al. 2020): `t` uniform on `1..=T` per image and `ε ~ N(0, I)`, both
    /// from the device RNG (the trainer seeds it), and the mean squared error of the trained
    /// network's `ε_θ(x_t, t)`.
    fn loss(&self, _player: usize, batch: &ImageBatch) -> Result<Loss> {
        self.check_input(batch, false)?;
        let x0 = Self::scaled(batch);
        let device = x0.device();
        let dims = x0.dims();
        let t_max = self.config.timesteps as f64;
        let timesteps = Tensor::<1>::random([dims[0]], Distribution::Uniform(0.0, t_max), &device)
            .floor()
            .clamp(0.0, t_max - 1.0)
            .add_scalar(1.0)
            .int();
        let noise = Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let objective = self.simple_loss(x0, timesteps, noise);
        Ok(Loss::new(objective.clone()).with_component("noise_mse", objective))
    }

    /// Updates the moving average of the weights after each optimiser step.
    fn after_player_step(mut self, _player: usize) -> Self {
        let updates = to_host(self.ema_updates.val())
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0) as f64;
        let decay = self
            .config
            .ema_decay
            .min((1.0 + updates) / (10.0 + updates));
        let mut live = Flatten(Vec::new());
        self.unet.visit(&mut live);
        self.ema = self.ema.map(&mut MoveAverage {
            live: live.0.into_iter(),
            decay,
        });
        self.ema_updates = self.ema_updates.map(|n| n.detach().add_scalar(1.0));
        self
    }
}

/// The negated variational bound of each image, `L ≥ −log p(x)` in nats (see the crate docs;
/// through [`GenerativeModel::log_likelihood`], with `options.seed` for its estimate).
impl genmodels_core::AnomalyScore for Diffusion {}

#[cfg(test)]
mod tests;

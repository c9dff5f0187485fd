//! The [`Gan`] model: configuration, the two training players, sampling and interpolation.

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use genmodels_core::batch::to_host;
use genmodels_core::nn::interpolate_codes;
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodOptions, LogLikelihood, Loss,
    ModelConfig, Player, Result, Trainable,
    model::{materialise_parameters, module_device, require_samples},
    random,
};

use crate::network::{Discriminator, GanArchitecture, Generator, NetworkSpec};
use crate::objective::{GanObjective, discriminator_loss, generator_loss};

/// Index of the discriminator in [`Trainable::players`]; it steps first on a batch.
pub const DISCRIMINATOR: usize = 0;
/// Index of the generator in [`Trainable::players`].
pub const GENERATOR: usize = 1;

/// The "discriminator wins" warning fires when, over an epoch, the mean `D(x) ≥ 0.99` and the
/// mean `D(G(z)) ≤ 0.01` (probability objectives): D then separates data from samples with
/// a loss below about 0.02 nats, and the minimax generator's gradient, proportional to
/// `D(G(z))`, is at 1% of its scale.
pub const DISCRIMINATOR_WINS: (f64, f64) = (0.99, 0.01);

/// The "lost diversity" warning fires when the generator's samples are on average closer to
/// each other than this fraction of the data's pairwise distance (a generator that maps many
/// `z` to a few images: mode collapse).
pub const MIN_SAMPLE_DIVERSITY: f64 = 0.2;

/// Configuration of a [`Gan`]. [`GanConfig::new`] is the MNIST DCGAN with the
/// non-saturating objective; the presets [`GanConfig::mlp`], [`GanConfig::dcgan`] and
/// [`GanConfig::cgan`] set the players for other image shapes, and the `with_*` methods adjust
/// any field.
#[derive(Config, Debug, PartialEq)]
pub struct GanConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The players' networks.
    #[config(default = "GanArchitecture::dcgan()")]
    pub architecture: GanArchitecture,
    /// The game.
    #[config(default = "GanObjective::NonSaturating")]
    pub objective: GanObjective,
    /// Dimension of the latent `z ~ N(0, I)`.
    #[config(default = 100)]
    pub latent_dim: usize,
    /// Number of classes of a class-conditional GAN (cGAN); `None` for an unconditional one.
    pub classes: Option<usize>,
    /// Width of the generator's label embedding (conditional models only).
    #[config(default = 16)]
    pub label_embedding_dim: usize,
    /// WGAN's clipping bound `c`: after every critic step each critic weight is clipped to
    /// `[−c, c]` (Wasserstein only).
    #[config(default = 0.01)]
    pub clip_value: f64,
    /// Discriminator steps per generator step; `None` for the objective's default
    /// ([`GanObjective::default_critic_steps`]).
    pub critic_steps: Option<usize>,
    /// Spectral normalisation of the discriminator; `None` for the objective's default
    /// ([`GanObjective::default_spectral_norm`]: on for hinge).
    pub spectral_norm: Option<bool>,
    /// Power iterations of spectral normalisation per training forward.
    #[config(default = 1)]
    pub power_iterations: usize,
}

impl GanConfig {
    /// MLP players with two hidden layers of 256 units, `z ∈ R¹⁰⁰`, the non-saturating
    /// objective.
    pub fn mlp(image_shape: ImageShape) -> Self {
        Self::new()
            .with_image_shape(image_shape)
            .with_architecture(GanArchitecture::mlp())
    }

    /// DCGAN players (Radford et al. 2015) with width 64 and, as in the paper, `z ∈ R¹⁰⁰`;
    /// the non-saturating objective. Train with Adam, learning rate 2e-4, β₁ = 0.5.
    pub fn dcgan(image_shape: ImageShape) -> Self {
        Self::new().with_image_shape(image_shape)
    }

    /// A class-conditional DCGAN over `classes` classes: the generator takes
    /// `concat(z, E_y)` with a 16-wide label embedding, the discriminator is a projection
    /// discriminator (Miyato & Koyama 2018).
    pub fn cgan(image_shape: ImageShape, classes: usize) -> Self {
        Self::dcgan(image_shape).with_classes(Some(classes))
    }

    /// Discriminator steps per generator step, after defaults.
    pub fn resolved_critic_steps(&self) -> usize {
        self.critic_steps
            .unwrap_or_else(|| self.objective.default_critic_steps())
    }

    /// Whether the discriminator is spectrally normalised, after defaults.
    pub fn uses_spectral_norm(&self) -> bool {
        self.spectral_norm
            .unwrap_or_else(|| self.objective.default_spectral_norm())
    }

    /// Checks the configuration can work.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(GenError::InvalidConfig(m));
        let s = self.image_shape;
        if s.dims() == 0 {
            return invalid(format!("image shape {s} has no pixels"));
        }
        if self.latent_dim == 0 {
            return invalid("latent_dim must be positive".into());
        }
        match &self.architecture {
            GanArchitecture::Mlp { hidden } if hidden.contains(&0) => {
                return invalid("MLP hidden widths must be positive".into());
            }
            GanArchitecture::Dcgan { width: 0 } => {
                return invalid("the DCGAN width must be positive".into());
            }
            GanArchitecture::Dcgan { .. }
                if s.height < 4
                    || s.width < 4
                    || !s.height.is_multiple_of(4)
                    || !s.width.is_multiple_of(4) =>
            {
                return invalid(format!(
                    "DCGAN needs H and W divisible by 4 (two stride-2 layers), got {s}"
                ));
            }
            _ => {}
        }
        if self.classes == Some(0) {
            return invalid("a conditional GAN needs at least one class".into());
        }
        if self.classes.is_some() && self.label_embedding_dim == 0 {
            return invalid("label_embedding_dim must be positive".into());
        }
        if !(self.clip_value.is_finite() && self.clip_value > 0.0) {
            return invalid(format!(
                "clip_value must be positive and finite, got {}",
                self.clip_value
            ));
        }
        if self.critic_steps == Some(0) {
            return invalid("critic_steps must be at least 1".into());
        }
        if self.uses_spectral_norm() && self.power_iterations == 0 {
            return invalid("spectral normalisation needs at least one power iteration".into());
        }
        Ok(())
    }

    fn spec(&self) -> NetworkSpec {
        NetworkSpec {
            architecture: self.architecture.clone(),
            image_shape: self.image_shape,
            latent_dim: self.latent_dim,
            classes: self.classes,
            label_embedding_dim: self.label_embedding_dim,
            spectral_norm: self.uses_spectral_norm().then_some(self.power_iterations),
        }
    }
}

impl ModelConfig for GanConfig {
    type Model = Gan;
    const MODEL_NAME: &'static str = "gan";

    fn init(&self, device: &Device) -> Result<Gan> {
        self.validate()?;
        let spec = self.spec();
        let gan = Gan {
            generator: Generator::new(&spec, device),
            discriminator: Discriminator::new(&spec, device),
            config: self.clone(),
        };
        materialise_parameters(&gan);
        Ok(gan)
    }
}

/// The path through latent space that [`Gan::interpolate`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatentPath {
    /// The straight line `(1 − t)·a + t·b`.
    Linear,
    /// The great circle (slerp), `sin((1 − t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b` with `Ω` the
    /// angle between `a` and `b`: its points keep the norm typical of `N(0, I)` draws, which
    /// the midpoint of a straight line does not (White 2016).
    Spherical,
}

/// A generative adversarial network (Goodfellow et al. 2014); build it with
/// [`GanConfig::init`] and train it with [`genmodels_core::Trainer`].
#[derive(Module, Debug)]
pub struct Gan {
    /// `G`.
    pub generator: Generator,
    /// `D`.
    pub discriminator: Discriminator,
    #[module(skip)]
    config: GanConfig,
}

/// The losses and discriminator outputs of one evaluation of both players.
struct Judged {
    d_real: Tensor<1>,
    d_fake: Tensor<1>,
}

impl Gan {
    /// Whether the model is class-conditional.
    pub fn is_conditional(&self) -> bool {
        self.config.classes.is_some()
    }

    /// The batch's labels, checked, when the model is conditional; `None` otherwise (an
    /// unconditional model ignores labels).
    fn batch_labels(&self, batch: &ImageBatch) -> Result<Option<Tensor<1, Int>>> {
        let Some(classes) = self.config.classes else {
            return Ok(None);
        };
        let labels = batch.labels().ok_or_else(|| {
            GenError::InvalidLabels(format!(
                "the conditional GAN ({classes} classes) needs a label for every image, and \
                 the batch has none"
            ))
        })?;
        let values = labels
            .clone()
            .try_into_vec_as::<i64>()
            .map_err(|e| GenError::Backend(format!("reading labels back: {e:?}")))?;
        check_labels(&values, classes)?;
        Ok(Some(labels.clone()))
    }

    /// Labels for generation, checked and placed on `device`.
    fn generation_labels(
        &self,
        labels: Option<&[usize]>,
        n: usize,
        device: &Device,
    ) -> Result<Option<Tensor<1, Int>>> {
        match (self.config.classes, labels) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(GenError::InvalidLabels(
                "labels were given, but the GAN is not class-conditional".into(),
            )),
            (Some(classes), None) => Err(GenError::InvalidLabels(format!(
                "the conditional GAN ({classes} classes) needs one label per sample"
            ))),
            (Some(classes), Some(labels)) => {
                if labels.len() != n {
                    return Err(GenError::shape("generation labels", n, labels.len()));
                }
                let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
                check_labels(&values, classes)?;
                Ok(Some(Tensor::from_data(
                    TensorData::new(values, [n]),
                    device,
                )))
            }
        }
    }

    /// Data scaled to the players' range, `x ↦ 2x − 1`.
    fn scaled(&self, batch: &ImageBatch) -> Result<Tensor<4>> {
        batch.require_shape(self.config.image_shape, "GAN")?;
        Ok(batch.images().clone() * 2.0 - 1.0)
    }

    /// Standard normal latents from the device RNG (seeded by the trainer each epoch).
    fn noise(&self, n: usize, device: &Device) -> Tensor<2> {
        Tensor::random(
            [n, self.config.latent_dim],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    }

    /// D's raw outputs on the batch and on as many fresh samples (with the batch's labels),
    /// drawn without a graph into the generator (for D's step): an untracked copy of G (still
    /// in training mode) skips autodiff's bookkeeping, and no gradient can reach G.
    fn judge(&self, batch: &ImageBatch) -> Result<Judged> {
        let x = self.scaled(batch)?;
        let labels = self.batch_labels(batch)?;
        let n = batch.len();
        let fake = self
            .generator
            .clone()
            .no_grad()
            .forward(self.noise(n, &batch.device()), labels.clone())
            .detach();
        let d_real = self.discriminator.forward(x, labels.clone());
        let d_fake = self.discriminator.forward(fake, labels);
        Ok(Judged { d_real, d_fake })
    }

    /// The monitoring figure of a set of raw outputs: the mean probability `σ(d)` for the
    /// probability objectives, the mean raw output otherwise.
    fn monitor(&self, d: Tensor<1>) -> Tensor<1> {
        let d = d.detach();
        if self.config.objective.is_probabilistic() {
            sigmoid(d).mean()
        } else {
            d.mean()
        }
    }

    /// Images `G(z, y)` in `[0, 1]`.
    ///
    /// # Shapes
    /// - z: `[N, latent_dim]`; labels: `N` labels of a conditional model, `None` otherwise
    /// - output: `[N, C, H, W]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for a latent of the wrong size; [`GenError::InvalidLabels`]
    /// for labels missing (conditional model), given (unconditional model) or outside the
    /// classes; [`GenError::ShapeMismatch`] for a label count other than `N`.
    pub fn generate(&self, z: Tensor<2>, labels: Option<&[usize]>) -> Result<Tensor<4>> {
        let [n, l] = z.dims();
        if l != self.config.latent_dim || n == 0 {
            return Err(GenError::ShapeMismatch {
                context: "GAN latent codes".into(),
                expected: format!("[N ≥ 1, {}]", self.config.latent_dim),
                actual: format!("[{n}, {l}]"),
            });
        }
        let device = z.device();
        let labels = self.generation_labels(labels, n, &device)?;
        Ok((self.generator.forward(z, labels) + 1.0) * 0.5)
    }

    fn latents(&self, n: usize, seed: u64) -> Tensor<2> {
        random::standard_normal(
            [n, self.config.latent_dim],
            &mut random::rng(seed),
            &module_device(self),
        )
    }

    /// `steps` images along a path from the latent drawn with `seed_from` to the one drawn
    /// with `seed_to` (ends included), of class `label` for a conditional model.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for fewer than 2 steps, [`GenError::InvalidLabels`] as in
    /// [`Gan::generate`].
    pub fn interpolate(
        &self,
        seed_from: u64,
        seed_to: u64,
        steps: usize,
        label: Option<usize>,
        path: LatentPath,
    ) -> Result<Tensor<4>> {
        if steps < 2 {
            return Err(GenError::InvalidConfig(format!(
                "an interpolation needs at least 2 steps, got {steps}"
            )));
        }
        let a = self.latents(1, seed_from);
        let b = self.latents(1, seed_to);
        let z = match path {
            LatentPath::Linear => interpolate_codes(a, b, steps),
            LatentPath::Spherical => slerp(a, b, steps)?,
        };
        let labels = label.map(|l| vec![l; steps]);
        self.generate(z, labels.as_deref())
    }
}

impl genmodels_core::ConditionalSample for Gan {
    fn classes(&self) -> Option<usize> {
        self.config.classes
    }

    /// `labels.len()` samples, sample `i` of class `labels[i]`, reproducible from `seed`.
    ///
    /// # Errors
    /// As [`Gan::generate`]; [`GenError::InvalidLabels`] for no labels.
    fn sample_with_labels(&self, labels: &[usize], seed: u64) -> Result<Tensor<4>> {
        require_samples(labels.len())?;
        let model = self.clone();
        genmodels_kernels::on_compute_threads(&module_device(self), move || {
            model.generate(model.latents(labels.len(), seed), Some(labels))
        })
    }
}

impl genmodels_core::capabilities::LatentCode for Gan {
    fn latent_size(&self) -> usize {
        self.config.latent_dim
    }

    /// `z ~ N(0, I)`: the latents [`GenerativeModel::sample`] draws for the same seed.
    fn prior_codes(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        require_samples(n)?;
        Ok(self.latents(n, seed))
    }

    /// `G(z)` in `[0, 1]`; a conditional GAN needs a label for that and refuses
    /// ([`GenError::InvalidLabels`]).
    fn decode_codes(&self, codes: Tensor<2>) -> Result<Tensor<4>> {
        self.generate(codes, None)
    }

    fn can_encode(&self) -> bool {
        false
    }

    /// Always [`GenError::InvalidConfig`]: a GAN maps codes to images only.
    fn encode_codes(&self, _batch: &ImageBatch) -> Result<Tensor<2>> {
        Err(GenError::InvalidConfig(
            "a GAN has no encoder: its codes come from the prior, not from images".into(),
        ))
    }
}

impl genmodels_core::InterpolateLatents for Gan {
    /// Spherical paths ([`LatentPath::Spherical`]); a conditional model's row `r` is of class
    /// `r mod classes`.
    fn interpolate_latents(&self, seed: u64, rows: usize, steps: usize) -> Result<Tensor<4>> {
        if rows == 0 {
            return Err(GenError::InvalidConfig(
                "a latent interpolation needs at least one row".into(),
            ));
        }
        let classes = self.config.classes;
        let paths: Result<Vec<Tensor<4>>> = (0..rows as u64)
            .map(|row| {
                let label = classes.map(|k| row as usize % k);
                let from = seed.wrapping_add(2 * row);
                self.interpolate(from, from + 1, steps, label, LatentPath::Spherical)
            })
            .collect();
        Ok(Tensor::cat(paths?, 0))
    }
}

/// Points on the great circle from `a` to `b` (linear when they are nearly parallel).
fn slerp(a: Tensor<2>, b: Tensor<2>, steps: usize) -> Result<Tensor<2>> {
    let device = a.device();
    let l = a.dims()[1];
    let a: Vec<f64> = to_host(a)?.into_iter().map(f64::from).collect();
    let b: Vec<f64> = to_host(b)?.into_iter().map(f64::from).collect();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let omega = (dot / (norm(&a) * norm(&b)).max(1e-12))
        .clamp(-1.0, 1.0)
        .acos();
    let mut values = Vec::with_capacity(steps * l);
    for s in 0..steps {
        let t = s as f64 / (steps - 1) as f64;
        let (wa, wb) = if omega.sin().abs() < 1e-6 {
            (1.0 - t, t)
        } else {
            (
                ((1.0 - t) * omega).sin() / omega.sin(),
                (t * omega).sin() / omega.sin(),
            )
        };
        values.extend(a.iter().zip(&b).map(|(x, y)| (wa * x + wb * y) as f32));
    }
    Ok(Tensor::from_data(
        TensorData::new(values, [steps, l]),
        &device,
    ))
}

fn check_labels(labels: &[i64], classes: usize) -> Result<()> {
    if let Some(&bad) = labels.iter().find(|&&l| l < 0 || l >= classes as i64) {
        return Err(GenError::InvalidLabels(format!(
            "label {bad} is outside the conditional GAN's {classes} classes (0 to {})",
            classes - 1
        )));
    }
    Ok(())
}

/// The mean pairwise Euclidean distance between the rows of `x` (off the diagonal).
///
/// # Shapes
/// - x: `[N, D]` with `N ≥ 2`
/// - output: `[1]`
pub(crate) fn mean_pairwise_distance(x: Tensor<2>) -> Tensor<1> {
    let n = x.dims()[0];
    let squared_norms = x.clone().powi_scalar(2).sum_dim(1);
    let gram = x.clone().matmul(x.transpose());
    let squared = (squared_norms.clone() + squared_norms.transpose() - gram * 2.0).clamp_min(0.0);
    // The diagonal is 0 up to rounding, which the clamp keeps non-negative and the square
    // root keeps small; it is excluded from the count.
    squared.sqrt().sum() / (n * (n - 1)) as f64
}

/// Clips every trainable weight of a module to `[−c, c]`, leaving running statistics (batch
/// norm's, spectral norm's `u`) alone.
struct ClipWeights {
    bound: f64,
    path: Vec<String>,
}

impl ClipWeights {
    fn is_running_state(&self) -> bool {
        matches!(
            self.path.last().map(String::as_str),
            Some("running_mean" | "running_var" | "u")
        )
    }
}

impl ModuleMapper for ClipWeights {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.is_running_state() {
            return param;
        }
        let bound = self.bound;
        // Clip outside the graph, then make the result a fresh leaf, as optimisers do.
        param.map(|tensor| {
            let (autodiff, require_grad) = (tensor.is_autodiff(), tensor.is_require_grad());
            let clipped = tensor.without_autodiff().clamp(-bound, bound);
            match (autodiff, require_grad) {
                (true, true) => clipped.autodiff().require_grad(),
                (true, false) => clipped.autodiff(),
                _ => clipped,
            }
        })
    }
}

/// Warnings from one epoch's mean components: a discriminator that wins outright (for
/// `probabilistic` outputs, where `d_real`, `d_fake` are mean probabilities) and samples that
/// lost diversity (`sample_diversity`). Shared by the GAN and the VAE-GAN.
pub(crate) fn collapse_warnings(
    probabilistic: bool,
    epoch_components: &[(String, f64)],
) -> Vec<String> {
    let mut warnings = Vec::new();
    if probabilistic
        && let (Some(real), Some(fake)) = (
            component(epoch_components, "d_real"),
            component(epoch_components, "d_fake"),
        )
        && real >= DISCRIMINATOR_WINS.0
        && fake <= DISCRIMINATOR_WINS.1
    {
        warnings.push(format!(
            "the discriminator wins outright: mean D(x) {real:.3}, D(G(z)) {fake:.3}; the \
                 generator gets little useful gradient"
        ));
    }
    if let Some(diversity) = component(epoch_components, "sample_diversity")
        && diversity < MIN_SAMPLE_DIVERSITY
    {
        warnings.push(format!(
            "generator samples lost diversity: their pairwise distance is {diversity:.2} of \
                 the data's (mode collapse?)"
        ));
    }
    warnings
}

fn component(components: &[(String, f64)], name: &str) -> Option<f64> {
    components.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

impl GenerativeModel for Gan {
    type Config = GanConfig;

    fn config(&self) -> &GanConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// Always [`GenError::LikelihoodNotAvailable`]: a GAN defines a sampler, not a density.
    fn compute_log_likelihood(
        &self,
        _batch: &ImageBatch,
        _options: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        Err(GenError::LikelihoodNotAvailable {
            model: "gan".into(),
            reason: "implicit density: a GAN defines samples, not p(x)".into(),
        })
    }

    /// `G(z)` for `z ~ N(0, I)` drawn on the host from `seed`, mapped to `[0, 1]`. A
    /// conditional model cycles the labels 0, 1, 2, … so that a grid shows every class.
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let z = self.latents(n, seed);
        match self.config.classes {
            None => self.generate(z, None),
            Some(classes) => {
                let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
                self.generate(z, Some(&labels))
            }
        }
    }
}

impl genmodels_core::capabilities::Represent for Gan {
    /// The discriminator's penultimate activations `φ(x)` of each image, scaled to `[−1, 1]`
    /// as in training: `D(x) = ψ(φ(x))` (plus the projection term `⟨E_y, φ(x)⟩` of a
    /// conditional model). For the MLP discriminator the last hidden layer's LeakyReLU
    /// outputs; for DCGAN's the flattened `2w × H/4 × W/4` map after the second convolution
    /// (and its batch norm, with running statistics). `φ` never reads the label, so a
    /// conditional model needs none here.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, F]`, `F` the width of the head's input
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        Ok(self.discriminator.features(self.scaled(batch)?))
    }

    fn representation_name(&self) -> &'static str {
        "discriminator features φ(x)"
    }
}

impl genmodels_core::AnomalyScore for Gan {
    /// `−d(x)`: the discriminator's raw output on each real image, negated, so that higher is
    /// more anomalous (every objective trains `d` up on data and down on samples). What `d`
    /// measures depends on the objective that shaped it:
    ///
    /// - minimax and non-saturating: `d` is a logit, and for the best discriminator against a
    ///   fixed generator `d*(x) = log p_data(x) / p_G(x)` (Goodfellow et al. 2014, Prop. 1),
    ///   so `−d` estimates `log p_G(x) − log p_data(x)`: a density *ratio*, high where the
    ///   generator puts more mass than the data, not a likelihood;
    /// - LSGAN (targets 0 and 1): `d*(x) = p_data / (p_data + p_G)`, the same ratio squashed;
    /// - hinge: the same ordering, but outputs beyond the margins ±1 earn nothing, so
    ///   confident outputs saturate and tie;
    /// - Wasserstein: the critic's potential, unbounded and only meaningful up to a constant.
    ///
    /// As the generator approaches the data the best discriminator tends to a constant and
    /// the score to noise: a converged GAN is a weak detector. A conditional GAN scores
    /// `−d(x, y)` with each image's own label. `options` are ignored (no noise is drawn).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape; [`GenError::InvalidLabels`]
    /// for a conditional model given images without labels or with labels out of range.
    fn anomaly_scores(
        &self,
        batch: &ImageBatch,
        _: &LikelihoodOptions,
    ) -> Result<genmodels_core::AnomalyScores> {
        let x = self.scaled(batch)?;
        let labels = self.batch_labels(batch)?;
        let d = self.discriminator.forward(x, labels);
        let given = if self.is_conditional() {
            " given its label"
        } else {
            ""
        };
        Ok(genmodels_core::AnomalyScores {
            name: "neg_discriminator_output".into(),
            description: format!(
                "−D(x){given}, the {} discriminator's raw output negated (not a likelihood)",
                self.config.objective
            ),
            scores: to_host(d)?.into_iter().map(|v| -f64::from(v)).collect(),
        })
    }
}

impl Trainable for Gan {
    /// The discriminator (steps on every batch), then the generator (on every
    /// `critic_steps`-th), both with the objective's optimiser.
    fn players(&self) -> Vec<Player> {
        let optimizer = self.config.objective.default_optimizer();
        vec![
            Player::new("discriminator").with_optimizer(optimizer),
            Player::new("generator")
                .with_optimizer(optimizer)
                .with_every(self.config.resolved_critic_steps()),
        ]
    }

    /// - discriminator: `L_D` on the batch and as many fresh samples `G(z)` (detached), with
    ///   components `d_real` and `d_fake`: the means of `σ(D(x))` and `σ(D(G(z)))` for
    ///   minimax and non-saturating (the probability D gives of "real"), the means of the raw
    ///   outputs for the other objectives;
    /// - generator: `L_G` on fresh samples, with component `sample_diversity`: the samples'
    ///   mean pairwise distance over the data batch's (≈ 1 healthy, → 0 collapsed).
    ///
    /// A conditional model gives its samples the batch's labels. Noise comes from the device
    /// RNG, which the trainer seeds each epoch.
    fn loss(&self, player: usize, batch: &ImageBatch) -> Result<Loss> {
        let objective = self.config.objective;
        if player == DISCRIMINATOR {
            let judged = self.judge(batch)?;
            let loss = discriminator_loss(objective, judged.d_real.clone(), judged.d_fake.clone());
            return Ok(Loss::new(loss)
                .with_component("d_real", self.monitor(judged.d_real))
                .with_component("d_fake", self.monitor(judged.d_fake)));
        }
        let x = self.scaled(batch)?;
        let labels = self.batch_labels(batch)?;
        let n = batch.len();
        let fake = self
            .generator
            .forward(self.noise(n, &batch.device()), labels.clone());
        // G's step needs D's input gradient, not its weight gradients (which G's optimiser
        // would discard): an untracked copy of D (still in training mode) skips them. This
        // made a DCGAN training step on flex about 1.1× faster.
        let d_fake = self
            .discriminator
            .clone()
            .no_grad()
            .forward(fake.clone(), labels);
        let mut loss = Loss::new(generator_loss(objective, d_fake));
        if n >= 2 {
            let dims = self.config.image_shape.dims();
            let fake_spread = mean_pairwise_distance(fake.detach().reshape([n, dims]));
            let real_spread = mean_pairwise_distance(x.reshape([n, dims])).clamp_min(1e-12);
            loss = loss.with_component("sample_diversity", fake_spread / real_spread);
        }
        Ok(loss)
    }

    /// Only the stepping player's own gradients, so its optimiser changes its weights alone.
    fn player_gradients(
        &self,
        player: usize,
        grads: burn::tensor::Gradients,
    ) -> burn::optim::GradientsParams {
        if player == DISCRIMINATOR {
            burn::optim::GradientsParams::from_grads(grads, &self.discriminator)
        } else {
            burn::optim::GradientsParams::from_grads(grads, &self.generator)
        }
    }

    /// WGAN: clips every critic weight to `[−c, c]` after each critic step.
    fn after_player_step(mut self, player: usize) -> Self {
        if player == DISCRIMINATOR && self.config.objective == GanObjective::Wasserstein {
            let mut clip = ClipWeights {
                bound: self.config.clip_value,
                path: Vec::new(),
            };
            self.discriminator = self.discriminator.map(&mut clip);
        }
        self
    }

    /// Flags a discriminator that wins outright (probability objectives: mean `D(x) ≥ 0.99`
    /// and `D(G(z)) ≤ 0.01`, see [`DISCRIMINATOR_WINS`]) and a generator whose samples lost
    /// diversity (below [`MIN_SAMPLE_DIVERSITY`] of the data's pairwise distance).
    fn training_warnings(&self, epoch_components: &[(String, f64)]) -> Vec<String> {
        collapse_warnings(self.config.objective.is_probabilistic(), epoch_components)
    }
}

//! The model registry: what the tools (the `genmodels` CLI, [`compare`](crate::compare) and
//! [`bench`](crate::bench)) know about each model, said once.
//!
//! Two levels:
//! - [`Registered`], implemented once per model type: its label, where it sits in the taxonomy,
//!   its presets and default configurations, the pixels it models, its recommended training
//!   settings, how its likelihood is reported and which [capabilities](Capabilities) it has
//!   (reconstruction, completion, conditional sampling, …; each a trait of
//!   [`genmodels_core::capabilities`]).
//! - [`Entry`], one per name on the command line: `dcgan`, `cgan` and `gan` are one model
//!   type under three presets. [`ENTRIES`] lists them in the order help texts and tables show.
//!
//! A tool reaches a model's concrete type through [`Entry::visit`] with a [`ModelVisitor`]:
//! one generic function per tool, called with the right type for the entry.
//!
//! # Adding a model
//! A new family crate, then here: an `impl Registered for NewModel`, a variant of the private
//! `ModelType` with its arm in [`Entry::visit`], and its entry (or entries) in [`ENTRIES`].

use genmodels_ae::{Autoencoder, AutoencoderConfig, ReconstructionLoss};
use genmodels_autoregressive::{
    DiagonalBiLstm, DiagonalBiLstmConfig, GatedPixelCnn, GatedPixelCnnConfig, PixelCnn,
    PixelCnnConfig, PixelDistribution, RowLstm, RowLstmConfig,
};
use genmodels_core::burn::tensor::Tensor;
use genmodels_core::capabilities;
use genmodels_core::capabilities::{LatentCode, Represent};
use genmodels_core::trainer::{EarlyStopping, LearningRateSchedule};
use genmodels_core::{
    AnomalyScore, AnomalyScores, Complete, ConditionalSample, GenError, ImageBatch, ImageShape,
    Interpolate, InterpolateLatents, LikelihoodOptions, ModelConfig, Reconstruct, Result,
    SampleWithMethod, SamplingMethod, Trainable,
};
use genmodels_diffusion::{DataGrid, Diffusion, DiffusionConfig};
use genmodels_gan::{Gan, GanConfig, GanObjective, VaeGan, VaeGanConfig};
use genmodels_mixture::{ComponentLikelihood, Mixture, MixtureConfig};
use genmodels_vae::{DecoderDistribution, Vae, VaeConfig};

/// Where a model sits in the taxonomy of generative models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DensityType {
    /// `log p(x)` computed exactly.
    ExplicitTractable,
    /// `log p(x)` bounded or estimated through latent variables.
    Approximate,
    /// A sampler without a density.
    Implicit,
    /// Not a generative model (the autoencoder baseline).
    NotGenerative,
}

impl DensityType {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::ExplicitTractable => "explicit-tractable",
            Self::Approximate => "approximate",
            Self::Implicit => "implicit",
            Self::NotGenerative => "none (baseline)",
        }
    }
}

/// The pixels a configuration models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// Binary pixels (a Bernoulli observation model): the data is binarised.
    Binary,
    /// Grey levels in `[0, 1]`.
    Grey,
}

/// Training settings recommended for a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSettings {
    /// Gradient epochs (0 for a model fitted in closed form after training).
    pub epochs: usize,
    /// The base learning rate. The optimiser is each player's own
    /// ([`Trainable::players`]): Adam (0.9, 0.999) unless the model says otherwise (the GANs'
    /// Adam (0.5, 0.999), the Wasserstein critic's RMSProp).
    pub learning_rate: f64,
}

/// What a model's validation score is, in its training [`Recipe`]: the score the best
/// checkpoint and early stopping follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeValidation {
    /// The mean negative log-likelihood of the validation split (exact, or the ELBO of a
    /// latent-variable model), nats per image.
    Likelihood,
    /// The MNIST-FID of this many samples against the validation split, by the bundled judge
    /// (the implicit models and the autoencoder, which have no likelihood).
    Fid {
        /// Samples drawn per score.
        samples: usize,
    },
    /// None: a model fitted in closed form (the mixture's EM) runs its fit to its own
    /// tolerance.
    None,
}

/// How a model is trained to convergence: what `genmodels train MODEL --recipe converged`
/// runs, and what the zoo's models were trained with.
///
/// Training holds out the last [`VALIDATION_IMAGES`] training images as a validation split,
/// scores it after every epoch, keeps the best epoch's checkpoint, and stops after
/// `patience` epochs without a better score (or at `max_epochs`). The test split chooses
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// The configuration preset; `None` for the entry's own configuration.
    pub preset: Option<&'static str>,
    /// The most epochs (for a model fitted in closed form, its fit's iterations).
    pub max_epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// The base learning rate (the optimiser is the model's own, see [`TrainingSettings`]).
    pub learning_rate: f64,
    /// How the learning rate falls from epoch to epoch.
    pub schedule: LearningRateSchedule,
    /// Seeds initialisation, data order, binarisation and noise.
    pub seed: u64,
    /// The score on the validation split.
    pub validation: RecipeValidation,
    /// Validation images scored after each epoch: the first this many of the split, or all
    /// of it (`None`). Fewer for a model whose likelihood costs many network passes.
    pub validation_images: Option<usize>,
    /// Epochs without a better score that end training, and by how much a score must fall to
    /// count as better.
    pub early_stopping: EarlyStopping,
}

/// The training images a [`Recipe`] holds out as its validation split: the last this many
/// of the training split, in file order.
pub const VALIDATION_IMAGES: usize = 1_000;

/// The recipes by name: only `converged` so far.
pub const RECIPES: &[&str] = &["converged"];

/// A recipe for a likelihood model: Adam at `learning_rate` decayed by `decay` per epoch, up
/// to `max_epochs`, stopping after `patience` epochs without a validation NLL lower by 0.01
/// nats.
const fn likelihood_recipe(
    max_epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    decay: f64,
    patience: usize,
) -> Recipe {
    Recipe {
        preset: None,
        max_epochs,
        batch_size,
        learning_rate,
        schedule: LearningRateSchedule::Exponential {
            decay_per_epoch: decay,
        },
        seed: 0,
        validation: RecipeValidation::Likelihood,
        validation_images: None,
        early_stopping: EarlyStopping {
            patience,
            min_improvement: 0.01,
        },
    }
}

/// A recipe for a model judged by its samples' FID (1,000 samples per score): a constant
/// learning rate, stopping after `patience` epochs without an FID lower by 0.1.
const fn fid_recipe(
    preset: Option<&'static str>,
    max_epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    patience: usize,
) -> Recipe {
    Recipe {
        preset,
        max_epochs,
        batch_size,
        learning_rate,
        schedule: LearningRateSchedule::Constant,
        seed: 0,
        validation: RecipeValidation::Fid { samples: 1_000 },
        validation_images: None,
        early_stopping: EarlyStopping {
            patience,
            min_improvement: 0.1,
        },
    }
}

/// [`Reconstruct::reconstruct`] of model `M`.
pub type ReconstructFn<M> = fn(&M, &ImageBatch) -> Result<Tensor<4>>;
/// [`Interpolate::interpolate`] of model `M`.
pub type InterpolateFn<M> = fn(&M, &ImageBatch, &ImageBatch, usize) -> Result<Tensor<4>>;
/// [`InterpolateLatents::interpolate_latents`] of model `M`.
pub type InterpolateLatentsFn<M> = fn(&M, u64, usize, usize) -> Result<Tensor<4>>;
/// [`SampleWithMethod::sample_with`] of model `M`.
pub type SampleWithFn<M> = fn(&M, usize, u64, SamplingMethod) -> Result<Tensor<4>>;
/// [`Complete::complete`] of model `M`.
pub type CompleteFn<M> = fn(&M, &ImageBatch, &[bool], u64, SamplingMethod) -> Result<Tensor<4>>;
/// [`AnomalyScore::anomaly_scores`] of model `M`.
pub type AnomalyScoresFn<M> = fn(&M, &ImageBatch, &LikelihoodOptions) -> Result<AnomalyScores>;
/// [`SuperResolve::super_resolve`](capabilities::SuperResolve::super_resolve) of model `M`.
pub type SuperResolveFn<M> =
    fn(&M, Tensor<4>, usize, u64, SamplingMethod) -> Result<capabilities::SuperResolved>;
/// [`SuperResolve::conditional_log_likelihood`](capabilities::SuperResolve::conditional_log_likelihood)
/// of model `M`.
pub type ConditionalLogLikelihoodFn<M> =
    fn(&M, &ImageBatch, usize) -> Result<Option<genmodels_core::LogLikelihood>>;

/// [`SuperResolve`](capabilities::SuperResolve)'s two methods.
pub struct SuperResolution<M> {
    /// [`SuperResolve::super_resolve`](capabilities::SuperResolve::super_resolve): results
    /// for low-resolution images.
    pub resolve: SuperResolveFn<M>,
    /// [`SuperResolve::conditional_log_likelihood`](capabilities::SuperResolve::conditional_log_likelihood):
    /// the exact `log p(x | D(x))` where the model has one, `None` otherwise.
    pub conditional_log_likelihood: ConditionalLogLikelihoodFn<M>,
}

/// The [`SuperResolution`] of a model that implements
/// [`SuperResolve`](capabilities::SuperResolve).
const fn super_resolution<M: capabilities::SuperResolve>() -> Option<SuperResolution<M>> {
    Some(SuperResolution {
        resolve: M::super_resolve,
        conditional_log_likelihood: M::conditional_log_likelihood,
    })
}
/// [`Represent::representation`] of model `M`: `[N, D]` features per batch.
pub type RepresentationFn<M> = fn(&M, &ImageBatch) -> Result<Tensor<2>>;

/// [`Represent`]'s two methods.
pub struct Representation<M> {
    /// [`Represent::representation`].
    pub features: RepresentationFn<M>,
    /// [`Represent::representation_name`].
    pub name: fn(&M) -> &'static str,
}

/// The [`Representation`] of a model that implements [`Represent`].
const fn representation<M: Represent>() -> Option<Representation<M>> {
    Some(Representation {
        features: M::representation,
        name: M::representation_name,
    })
}

/// [`LatentCode`]'s methods: the registry's view of a model's latent space.
pub struct Latent<M> {
    /// [`LatentCode::latent_size`].
    pub size: fn(&M) -> usize,
    /// [`LatentCode::prior_codes`].
    pub prior: fn(&M, usize, u64) -> Result<Tensor<2>>,
    /// [`LatentCode::decode_codes`].
    pub decode: fn(&M, Tensor<2>) -> Result<Tensor<4>>,
    /// [`LatentCode::encode_codes`], for a model with an encoder ([`LatentCode::can_encode`]).
    pub encode: fn(&M, &ImageBatch) -> Result<Tensor<2>>,
    /// [`LatentCode::can_encode`].
    pub can_encode: fn(&M) -> bool,
}

/// The [`Latent`] of a model that implements [`LatentCode`].
const fn latent<M: LatentCode>() -> Option<Latent<M>> {
    Some(Latent {
        size: M::latent_size,
        prior: M::prior_codes,
        decode: M::decode_codes,
        encode: M::encode_codes,
        can_encode: M::can_encode,
    })
}

/// What a model can do beyond likelihood and sampling: each field is the method of a trait of
/// [`genmodels_core::capabilities`], or `None` where the model lacks it. Declared once per
/// model in [`Registered::CAPABILITIES`], so that tools can ask before they build a model.
pub struct Capabilities<M> {
    /// [`Reconstruct`].
    pub reconstruct: Option<ReconstructFn<M>>,
    /// [`Interpolate`].
    pub interpolate: Option<InterpolateFn<M>>,
    /// [`InterpolateLatents`].
    pub interpolate_latents: Option<InterpolateLatentsFn<M>>,
    /// [`SampleWithMethod`]: naive and cached, or ancestral and DDIM.
    pub sample_with: Option<SampleWithFn<M>>,
    /// [`Complete`].
    pub complete: Option<CompleteFn<M>>,
    /// [`ConditionalSample`]: its classes (`None` for a model built without labels) and its
    /// sampler.
    pub conditional: Option<ConditionalSampling<M>>,
    /// [`AnomalyScore`]: per-image scores, higher = more anomalous, each named for what it
    /// is (`−log p(x)` or its bound for a model with a likelihood, the AE's reconstruction
    /// error, a GAN's discriminator output, the VAE-GAN's encoder loss).
    pub anomaly_scores: Option<AnomalyScoresFn<M>>,
    /// [`Represent`]: a feature vector per image for a linear probe (the AE's code, the VAE's
    /// posterior mean, a GAN discriminator's features, an autoregressive model's pooled last
    /// hidden layer, a mixture's responsibilities).
    pub representation: Option<Representation<M>>,
    /// [`SuperResolve`](capabilities::SuperResolve): high-resolution images for
    /// low-resolution inputs (the DDPM's ILVR-guided sampling, which keeps their block means;
    /// the Gated PixelCNN's draws from `p(x | U(y))`, for a model trained for it,
    /// `gated-pixelcnn-superres`, with the exact `log p(x | y)`).
    pub super_resolve: Option<SuperResolution<M>>,
    /// [`LatentCode`]: codes from the prior, decoded to images, and encoded from images where
    /// the model has an encoder (the AE, the VAE; a GAN's generator only decodes).
    pub latent: Option<Latent<M>>,
}

/// [`ConditionalSample`]'s two methods.
pub struct ConditionalSampling<M> {
    /// [`ConditionalSample::classes`].
    pub classes: fn(&M) -> Option<usize>,
    /// [`ConditionalSample::sample_with_labels`].
    pub sample_with_labels: fn(&M, &[usize], u64) -> Result<Tensor<4>>,
}

impl<M> Capabilities<M> {
    /// No capability.
    pub const NONE: Self = Self {
        reconstruct: None,
        interpolate: None,
        interpolate_latents: None,
        sample_with: None,
        complete: None,
        conditional: None,
        anomaly_scores: None,
        representation: None,
        super_resolve: None,
        latent: None,
    };

    /// The names of the capabilities present, for listings.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("reconstruction", self.reconstruct.is_some()),
            ("interpolation", self.interpolate.is_some()),
            ("latent interpolation", self.interpolate_latents.is_some()),
            ("a choice of samplers", self.sample_with.is_some()),
            ("completion", self.complete.is_some()),
            ("conditional sampling", self.conditional.is_some()),
            ("anomaly scores", self.anomaly_scores.is_some()),
            ("representation", self.representation.is_some()),
            ("super-resolution", self.super_resolve.is_some()),
            ("latent code", self.latent.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }
}

/// The capabilities of an autoregressive model (all but the conditional sampler).
const fn autoregressive_capabilities<M>() -> Capabilities<M>
where
    M: SampleWithMethod + Complete + AnomalyScore + Represent,
{
    Capabilities {
        sample_with: Some(M::sample_with),
        complete: Some(M::complete),
        anomaly_scores: Some(M::anomaly_scores),
        representation: representation(),
        ..Capabilities::NONE
    }
}

/// What the tools know about a model type. See the [module docs](self).
pub trait Registered: Trainable + Send + 'static {
    /// Its name in tables and messages ("PixelCNN").
    const LABEL: &'static str;

    /// Where it sits in the taxonomy; an [`Implicit`](DensityType::Implicit) model's
    /// likelihood is a Parzen-window estimate on its samples.
    const DENSITY: DensityType;

    /// What it can do beyond likelihood and sampling.
    const CAPABILITIES: Capabilities<Self> = Capabilities::NONE;

    /// The names [`preset`](Self::preset) knows (a pattern such as `bernoulli-K` for a family
    /// of them).
    const PRESETS: &'static [&'static str] = &[];

    /// What, in a configuration of binary pixels, cannot take grey levels ("a Bernoulli
    /// decoder"), for the message that refuses it grey data.
    const BINARY_MODEL: &'static str = "";

    /// How a configuration of grey-level pixels is had, for the same message.
    const GREY_LEVEL_HINT: &'static str = "";

    /// Whether the ELBO is reported beside the likelihood estimate.
    const REPORTS_ELBO: bool = false;

    /// Whether gradient steps train it (the mixture is fitted by EM after 0 epochs).
    const GRADIENT_TRAINED: bool = true;

    /// The name of the sampler the tools draw with: that of
    /// [`GenerativeModel::sample`](genmodels_core::GenerativeModel::sample), or for a model with
    /// a choice of samplers, of its [`default_method`](Self::default_method).
    const SAMPLER: &'static str;

    /// Images per call when many samples are drawn (fewer for the pixel-by-pixel samplers).
    const SAMPLE_BATCH: usize = 500;

    /// Images on a preview sheet (`samples.png`).
    const PREVIEW_SAMPLES: usize = 64;

    /// The configuration preset `name` describes, or `None` for a name it does not know.
    fn preset(_name: &str) -> Option<Self::Config> {
        None
    }

    /// The default configuration for `pixels` (a model that models one kind of pixels only
    /// ignores it).
    fn default_config(pixels: Pixels) -> Self::Config;

    /// The pixels `config` models: the data is binarised for [`Pixels::Binary`].
    fn pixels(config: &Self::Config) -> Pixels;

    /// Whether `config` cannot be trained on grey levels at all (a Bernoulli likelihood of
    /// grey levels is not a likelihood); every binary configuration by default.
    fn needs_binary(config: &Self::Config) -> bool {
        Self::pixels(config) == Pixels::Binary
    }

    /// `config` for images of `shape`, for a model that takes any size (the raster-order
    /// models); `None` for one built for its data's.
    fn resized(_config: Self::Config, _shape: ImageShape) -> Option<Self::Config> {
        None
    }

    /// The Adam learning rate when none is given.
    fn learning_rate(_config: &Self::Config) -> f64 {
        1e-3
    }

    /// The configuration and its [`TrainingSettings`] for `epochs` of training (`None`: the
    /// model's default, 10). A model fitted in closed form takes them as its own iterations
    /// and trains 0 gradient epochs.
    fn training(config: Self::Config, epochs: Option<usize>) -> (Self::Config, TrainingSettings) {
        let settings = TrainingSettings {
            epochs: epochs.unwrap_or(10),
            learning_rate: Self::learning_rate(&config),
        };
        (config, settings)
    }

    /// The configuration with the GAN objective `objective`.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a model without an adversarial objective.
    fn with_objective(_config: Self::Config, _objective: GanObjective) -> Result<Self::Config> {
        Err(GenError::InvalidConfig(format!(
            "an objective applies to GAN models (gan, dcgan, cgan), not the {}",
            Self::LABEL
        )))
    }

    /// The estimators of its likelihood rows: the trainer scores the first, `iwae_k` the
    /// importance samples of a latent-variable model's tighter estimate.
    fn likelihood_estimators(_iwae_k: usize) -> Vec<LikelihoodOptions> {
        vec![LikelihoodOptions::default()]
    }

    /// For a model with a choice of samplers ([`Capabilities::sample_with`]), the one the tools
    /// draw with when none is named: the autoregressive models' cached sampler, a diffusion
    /// model's DDIM. Its [`slow_counterpart`](SamplingMethod::slow_counterpart) is what
    /// `compare` times beside it.
    fn default_method(&self) -> SamplingMethod {
        SamplingMethod::Cached
    }

    /// `n` images drawn as the tools draw them: with the
    /// [`default_method`](Self::default_method) for a model with a choice of samplers, by
    /// [`GenerativeModel::sample`](genmodels_core::GenerativeModel::sample) otherwise.
    ///
    /// # Errors
    /// As the sampler.
    fn draw(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        match Self::CAPABILITIES.sample_with {
            Some(sample_with) => sample_with(self, n, seed, self.default_method()),
            None => self.sample(n, seed),
        }
    }

    /// Images for a preview sheet: samples as [`draw`](Self::draw) draws them, or what shows
    /// the model best (a VAE's mean images).
    ///
    /// # Errors
    /// As [`GenerativeModel::sample`](genmodels_core::GenerativeModel::sample).
    fn preview(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        self.draw(n, seed)
    }

    /// Pictures of the model itself (a mixture's component means), by file name.
    fn pictures(&self) -> Vec<(&'static str, Tensor<4>)> {
        Vec::new()
    }

    /// The decoder means `E[x|z]` of `n` prior draws, for a latent-variable model whose
    /// samples are pixel draws from them (the VAE): what "blurry samples" refers to. `None`
    /// for the other models.
    fn decoder_means(&self, _n: usize, _seed: u64) -> Option<Result<Tensor<4>>> {
        None
    }
}

/// The configuration preset `name` describes.
///
/// # Errors
/// [`GenError::InvalidConfig`] naming the presets there are.
pub fn preset<M: Registered>(name: &str) -> Result<M::Config> {
    M::preset(name).ok_or_else(|| {
        let known = if M::PRESETS.is_empty() {
            "it has none".to_string()
        } else {
            format!("available: {}", M::PRESETS.join(", "))
        };
        GenError::InvalidConfig(format!("unknown {} preset `{name}`; {known}", M::LABEL))
    })
}

/// The configuration and training settings for a budget of `epochs` gradient epochs or, for a
/// model fitted in closed form, `fit_iterations` of its fit.
pub fn budget_training<M: Registered>(
    config: M::Config,
    epochs: usize,
    fit_iterations: usize,
) -> (M::Config, TrainingSettings) {
    let epochs = if M::GRADIENT_TRAINED {
        epochs
    } else {
        fit_iterations
    };
    M::training(config, Some(epochs))
}

/// One name on the command line.
#[derive(Debug)]
pub struct Entry {
    /// The name (`pixelcnn`, `dcgan`, …).
    pub name: &'static str,
    /// One line for help texts.
    pub about: &'static str,
    /// The preset the name stands for, if any (`dcgan` is the GAN's `dcgan` preset).
    pub preset: Option<&'static str>,
    /// Whether `genmodels bench` measures it by default.
    pub benchmarked: bool,
    /// How it is trained to convergence (`--recipe converged`; the zoo).
    pub converged: Recipe,
    /// How its grey-level form is trained to convergence on the 8-bit digits (the zoo's grey
    /// track), for a model with a likelihood on the 256-level grid; `None` for the others.
    pub converged_grey: Option<Recipe>,
    model: ModelType,
}

/// The model types, for [`Entry::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelType {
    Autoencoder,
    Vae,
    PixelCnn,
    GatedPixelCnn,
    RowLstm,
    DiagonalBiLstm,
    Gan,
    VaeGan,
    Mixture,
    Diffusion,
}

/// Code that works on any registered model: [`Entry::visit`] calls
/// [`visit`](Self::visit) with the entry's model type.
pub trait ModelVisitor {
    /// What the visit returns.
    type Output;

    /// The work, for model type `M`.
    fn visit<M: Registered>(self, entry: &'static Entry) -> Self::Output;
}

impl Entry {
    /// Calls `visitor` with this entry's model type.
    pub fn visit<V: ModelVisitor>(&'static self, visitor: V) -> V::Output {
        match self.model {
            ModelType::Autoencoder => visitor.visit::<Autoencoder>(self),
            ModelType::Vae => visitor.visit::<Vae>(self),
            ModelType::PixelCnn => visitor.visit::<PixelCnn>(self),
            ModelType::GatedPixelCnn => visitor.visit::<GatedPixelCnn>(self),
            ModelType::RowLstm => visitor.visit::<RowLstm>(self),
            ModelType::DiagonalBiLstm => visitor.visit::<DiagonalBiLstm>(self),
            ModelType::Gan => visitor.visit::<Gan>(self),
            ModelType::VaeGan => visitor.visit::<VaeGan>(self),
            ModelType::Mixture => visitor.visit::<Mixture>(self),
            ModelType::Diffusion => visitor.visit::<Diffusion>(self),
        }
    }

    /// The configuration the name stands for: its preset, or the model's default for
    /// `pixels`.
    ///
    /// # Errors
    /// None for the registry's own entries (their presets exist; a test checks).
    pub fn config<M: Registered>(&self, pixels: Pixels) -> Result<M::Config> {
        match self.preset {
            Some(name) => preset::<M>(name),
            None => Ok(M::default_config(pixels)),
        }
    }

    /// The recipe `name` (one of [`RECIPES`]) for a configuration of `pixels`: the grey
    /// track's where the entry has one ([`Entry::converged_grey`]), its only recipe otherwise
    /// (the GANs' and the AE's are for grey levels already).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] naming the recipes there are.
    pub fn recipe(&self, name: &str, pixels: Pixels) -> Result<Recipe> {
        match (name, pixels, self.converged_grey) {
            ("converged", Pixels::Grey, Some(grey)) => Ok(grey),
            ("converged", _, _) => Ok(self.converged),
            _ => Err(GenError::InvalidConfig(format!(
                "unknown recipe `{name}`; available: {}",
                RECIPES.join(", ")
            ))),
        }
    }

    /// The `MODEL_NAME` its checkpoints record.
    pub fn checkpoint_name(&'static self) -> &'static str {
        struct Name;
        impl ModelVisitor for Name {
            type Output = &'static str;
            fn visit<M: Registered>(self, _: &'static Entry) -> &'static str {
                <M::Config as ModelConfig>::MODEL_NAME
            }
        }
        self.visit(Name)
    }
}

/// Every model the tools know, in the order help texts and tables list them.
pub static ENTRIES: &[Entry] = &[
    Entry {
        name: "ae",
        about: "Autoencoder (no likelihood)",
        preset: None,
        benchmarked: false,
        converged: fid_recipe(None, 200, 100, 1e-3, 10),
        converged_grey: None,
        model: ModelType::Autoencoder,
    },
    Entry {
        name: "vae",
        about: "Variational autoencoder (ELBO / IWAE)",
        preset: None,
        benchmarked: true,
        converged: likelihood_recipe(1_000, 100, 1e-3, 0.995, 30),
        // The discretized Gaussian decoder, with the binary recipe.
        converged_grey: Some(likelihood_recipe(1_000, 100, 1e-3, 0.995, 30)),
        model: ModelType::Vae,
    },
    Entry {
        name: "pixelcnn",
        about: "PixelCNN (exact likelihood)",
        preset: None,
        benchmarked: true,
        // `deep` reached a validation NLL of 90.65 nats where `small` stopped at 93.88
        // (the same recipe otherwise, 2026-12-07): chosen on the validation split.
        converged: Recipe {
            preset: Some("deep"),
            ..likelihood_recipe(100, 64, 1e-3, 0.95, 5)
        },
        // `deep` with a 256-way softmax per pixel. Its learning rate falls as fast as the
        // slow models' (0.9 per epoch): an epoch costs more than the binary model's. Up to
        // 100 epochs: at a cap of 60 it was still improving (by 0.01-0.03 nats an epoch).
        converged_grey: Some(Recipe {
            preset: Some("deep-256"),
            ..likelihood_recipe(100, 64, 1e-3, 0.9, 5)
        }),
        model: ModelType::PixelCnn,
    },
    Entry {
        name: "gated-pixelcnn",
        about: "Gated PixelCNN: vertical and horizontal stacks, gated units (exact likelihood)",
        preset: None,
        benchmarked: true,
        // `deep`, as PixelCNN's: `small` reaches 8 rows up, `deep` 18. Its learning rate
        // falls twice as fast per epoch as PixelCNN's (0.9 against 0.95) because an epoch
        // costs about 2.7 of PixelCNN `small`'s: the three slowest models converge in a
        // session of 2-core time instead of three.
        converged: Recipe {
            preset: Some("deep"),
            ..likelihood_recipe(60, 64, 1e-3, 0.9, 5)
        },
        converged_grey: None,
        model: ModelType::GatedPixelCnn,
    },
    Entry {
        name: "gated-pixelcnn-superres",
        about: "Gated PixelCNN of a digit given its 7×7 block means, p(x | D(x)), for superres \
                (exact conditional likelihood; `--preset superres-x2` for 14×14)",
        preset: Some("superres-x4"),
        benchmarked: false,
        // Gated PixelCNN's schedule on `small` conditioned on the low-pass: not a contender
        // of `compare`, whose models are of p(x).
        converged: Recipe {
            preset: Some("superres-x4"),
            ..likelihood_recipe(60, 64, 1e-3, 0.9, 5)
        },
        converged_grey: None,
        model: ModelType::GatedPixelCnn,
    },
    Entry {
        name: "row-lstm",
        about: "PixelRNN Row LSTM (exact likelihood)",
        preset: None,
        benchmarked: true,
        // The learning rate falls as fast as Gated PixelCNN's, for the same reason. Up to 100
        // epochs: at a cap of 60 it was still improving (by about 0.01 nats an epoch).
        converged: likelihood_recipe(100, 64, 1e-3, 0.9, 5),
        converged_grey: None,
        model: ModelType::RowLstm,
    },
    Entry {
        name: "diagonal-bilstm",
        about: "PixelRNN Diagonal BiLSTM (exact likelihood)",
        preset: None,
        benchmarked: true,
        // The learning rate falls as fast as Gated PixelCNN's, for the same reason.
        converged: likelihood_recipe(60, 64, 1e-3, 0.9, 5),
        converged_grey: None,
        model: ModelType::DiagonalBiLstm,
    },
    Entry {
        name: "gan",
        about: "GAN with MLP players (implicit density: no likelihood)",
        preset: Some("mlp"),
        benchmarked: false,
        converged: fid_recipe(Some("mlp"), 300, 64, 2e-4, 15),
        converged_grey: None,
        model: ModelType::Gan,
    },
    Entry {
        name: "dcgan",
        about: "DCGAN: convolutional players with batch norm (implicit density)",
        preset: Some("dcgan"),
        benchmarked: true,
        // 200 epochs at most: the hinge variant's FID was still falling at epoch 100 (the
        // non-saturating one stopped by its patience at 83).
        converged: fid_recipe(Some("dcgan"), 200, 64, 2e-4, 8),
        converged_grey: None,
        model: ModelType::Gan,
    },
    Entry {
        name: "cgan",
        about: "Class-conditional DCGAN: label embedding and a projection discriminator",
        preset: Some("cgan"),
        benchmarked: false,
        converged: fid_recipe(Some("cgan"), 100, 64, 2e-4, 8),
        converged_grey: None,
        model: ModelType::Gan,
    },
    Entry {
        name: "vae-gan",
        about: "VAE-GAN: a VAE whose reconstructions are measured in a discriminator's features",
        preset: None,
        benchmarked: false,
        converged: fid_recipe(None, 100, 64, 2e-4, 8),
        converged_grey: None,
        model: ModelType::VaeGan,
    },
    Entry {
        name: "gmm",
        about: "Mixture of Bernoulli (or diagonal Gaussian) components fitted by EM (exact likelihood)",
        preset: None,
        benchmarked: false,
        converged: Recipe {
            validation: RecipeValidation::None,
            ..likelihood_recipe(500, 100, 1e-3, 1.0, 1)
        },
        // 50 diagonal Gaussians, as many components as the comparison's Bernoulli mixture.
        converged_grey: Some(Recipe {
            preset: Some("gaussian-50"),
            validation: RecipeValidation::None,
            ..likelihood_recipe(500, 100, 1e-3, 1.0, 1)
        }),
        model: ModelType::Mixture,
    },
    Entry {
        name: "ddpm",
        about: "Denoising diffusion (DDPM; ancestral or DDIM sampling; variational bound)",
        preset: None,
        benchmarked: false,
        converged: DDPM_RECIPE,
        converged_grey: Some(Recipe {
            preset: Some("small-256"),
            ..DDPM_RECIPE
        }),
        model: ModelType::Diffusion,
    },
];

/// The DDPM's recipe: Adam at 1e-3 decaying 3% an epoch (to a fortieth of it by epoch 120),
/// validated by the bound's estimate on the first 250 validation digits (33 network passes
/// per image: on all 1,000 validating would cost more than the epoch's training), with the
/// same noise every epoch, until its patience runs out. A cap of 120 epochs stopped both
/// DDPMs while their bounds still fell by 0.1-1 nat an epoch; 400 is a backstop (the
/// learning rate is 5e-9 there).
const DDPM_RECIPE: Recipe = Recipe {
    validation_images: Some(250),
    ..likelihood_recipe(400, 64, 1e-3, 0.97, 8)
};

/// The entry named `name`.
///
/// # Errors
/// [`GenError::InvalidConfig`] listing the names there are.
pub fn entry(name: &str) -> Result<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name).ok_or_else(|| {
        GenError::InvalidConfig(format!(
            "unknown model `{name}`; choose one of {}",
            names().join(", ")
        ))
    })
}

/// The entry for a checkpoint whose config records `model_name` (the first entry of that
/// model type: `gan` for every GAN).
///
/// # Errors
/// [`GenError::InvalidConfig`] for a model name no entry has.
pub fn entry_for_checkpoint(model_name: &str) -> Result<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.checkpoint_name() == model_name)
        .ok_or_else(|| GenError::InvalidConfig(format!("unknown model `{model_name}`")))
}

/// Every entry's name, in order.
pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

impl Registered for Vae {
    const LABEL: &'static str = "VAE";
    const DENSITY: DensityType = DensityType::Approximate;
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        reconstruct: Some(Self::reconstruct),
        interpolate: Some(Self::interpolate),
        anomaly_scores: Some(Self::anomaly_scores),
        representation: representation(),
        latent: latent(),
        ..Capabilities::NONE
    };
    const BINARY_MODEL: &'static str = "a Bernoulli decoder";
    const GREY_LEVEL_HINT: &'static str = "a config with \"decoder\": \"Gaussian\"";
    const REPORTS_ELBO: bool = true;
    const SAMPLER: &'static str = "ancestral (z, then pixel draws)";

    fn default_config(pixels: Pixels) -> VaeConfig {
        match pixels {
            Pixels::Binary => VaeConfig::new(),
            Pixels::Grey => VaeConfig::new().with_decoder(DecoderDistribution::Gaussian),
        }
    }

    fn pixels(config: &VaeConfig) -> Pixels {
        match config.decoder {
            DecoderDistribution::Bernoulli => Pixels::Binary,
            DecoderDistribution::Gaussian => Pixels::Grey,
        }
    }

    /// The ELBO, then the IWAE estimate, which is tighter.
    fn likelihood_estimators(iwae_k: usize) -> Vec<LikelihoodOptions> {
        vec![
            LikelihoodOptions::default(),
            LikelihoodOptions::iwae(iwae_k),
        ]
    }

    /// Mean images `E[x|z]`, smoother than pixel draws.
    fn preview(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        self.sample_means(n, seed)
    }

    fn decoder_means(&self, n: usize, seed: u64) -> Option<Result<Tensor<4>>> {
        Some(self.sample_means(n, seed))
    }
}

impl Registered for Autoencoder {
    const LABEL: &'static str = "autoencoder";
    const DENSITY: DensityType = DensityType::NotGenerative;
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        reconstruct: Some(Self::reconstruct),
        interpolate: Some(Self::interpolate),
        anomaly_scores: Some(Self::anomaly_scores),
        representation: representation(),
        latent: latent(),
        ..Capabilities::NONE
    };
    const SAMPLER: &'static str = "decoder of Gaussian codes";

    /// Squared error for grey levels.
    fn default_config(pixels: Pixels) -> AutoencoderConfig {
        match pixels {
            Pixels::Binary => AutoencoderConfig::new(),
            Pixels::Grey => AutoencoderConfig::new().with_loss(ReconstructionLoss::Mse),
        }
    }

    /// Cross-entropy is meant for binary pixels, squared error for grey levels.
    fn pixels(config: &AutoencoderConfig) -> Pixels {
        match config.loss {
            ReconstructionLoss::Bce => Pixels::Binary,
            ReconstructionLoss::Mse => Pixels::Grey,
        }
    }

    /// Both losses are defined on `[0, 1]` pixels.
    fn needs_binary(_: &AutoencoderConfig) -> bool {
        false
    }
}

/// `Registered` for an autoregressive model: exact likelihood, a choice of sampler,
/// completion and anomaly scores.
macro_rules! registered_autoregressive {
    ($model:ty, $config:ty, $label:literal, capabilities: $capabilities:expr,
     presets: [$($preset:literal => $make:expr),+ $(,)?]) => {
        impl Registered for $model {
            const LABEL: &'static str = $label;
            const DENSITY: DensityType = DensityType::ExplicitTractable;
            const CAPABILITIES: Capabilities<Self> = $capabilities;
            const PRESETS: &'static [&'static str] = &[$($preset),+];
            const BINARY_MODEL: &'static str = concat!("a Bernoulli ", $label);
            const GREY_LEVEL_HINT: &'static str = "a config with a Categorical distribution";
            const SAMPLER: &'static str = "cached";
            const SAMPLE_BATCH: usize = 100;
            // Pixel-by-pixel sampling: keep the preview small.
            const PREVIEW_SAMPLES: usize = 16;

            fn preset(name: &str) -> Option<$config> {
                match name {
                    $($preset => Some($make),)+
                    _ => None,
                }
            }

            /// A 256-way softmax per pixel for grey levels.
            fn default_config(pixels: Pixels) -> $config {
                match pixels {
                    Pixels::Binary => <$config>::new(),
                    Pixels::Grey => <$config>::new().with_distribution(GREY_LEVELS),
                }
            }

            fn pixels(config: &$config) -> Pixels {
                match config.distribution {
                    PixelDistribution::Bernoulli => Pixels::Binary,
                    PixelDistribution::Categorical { .. } => Pixels::Grey,
                }
            }

            fn resized(config: $config, shape: ImageShape) -> Option<$config> {
                Some(config.with_image_shape(shape))
            }
        }
    };
}

registered_autoregressive!(PixelCnn, PixelCnnConfig, "PixelCNN",
    capabilities: autoregressive_capabilities(),
    presets: ["small" => PixelCnnConfig::small(), "paper" => PixelCnnConfig::paper(),
              "deep" => PixelCnnConfig::deep(),
              "small-256" => PixelCnnConfig::small().with_distribution(GREY_LEVELS),
              "paper-256" => PixelCnnConfig::paper().with_distribution(GREY_LEVELS),
              "deep-256" => PixelCnnConfig::deep().with_distribution(GREY_LEVELS)]);

/// A 256-way softmax per pixel: the autoregressive models' grey-level form.
const GREY_LEVELS: PixelDistribution = PixelDistribution::Categorical { levels: 256 };
registered_autoregressive!(GatedPixelCnn, GatedPixelCnnConfig, "Gated PixelCNN",
    capabilities: Capabilities {
        conditional: Some(ConditionalSampling {
            classes: <GatedPixelCnn as ConditionalSample>::classes,
            sample_with_labels: GatedPixelCnn::sample_with_labels,
        }),
        // A model trained for it (`gated-pixelcnn-superres`); the others refuse with a typed
        // error.
        super_resolve: super_resolution(),
        ..autoregressive_capabilities()
    },
    presets: ["small" => GatedPixelCnnConfig::small(), "deep" => GatedPixelCnnConfig::deep(),
              "superres-x4" => GatedPixelCnnConfig::super_resolution(ImageShape::MNIST, 4),
              "superres-x2" => GatedPixelCnnConfig::super_resolution(ImageShape::MNIST, 2)]);
registered_autoregressive!(RowLstm, RowLstmConfig, "Row LSTM",
    capabilities: autoregressive_capabilities(),
    presets: ["small" => RowLstmConfig::new()]);
registered_autoregressive!(DiagonalBiLstm, DiagonalBiLstmConfig, "Diagonal BiLSTM",
    capabilities: autoregressive_capabilities(),
    presets: ["small" => DiagonalBiLstmConfig::new()]);

impl Registered for Gan {
    const LABEL: &'static str = "GAN";
    const DENSITY: DensityType = DensityType::Implicit;
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        interpolate_latents: Some(Self::interpolate_latents),
        conditional: Some(ConditionalSampling {
            classes: <Gan as ConditionalSample>::classes,
            sample_with_labels: Gan::sample_with_labels,
        }),
        anomaly_scores: Some(Self::anomaly_scores),
        representation: representation(),
        latent: latent(),
        ..Capabilities::NONE
    };
    const PRESETS: &'static [&'static str] = &["mlp", "dcgan", "cgan", "dcgan-hinge"];
    const SAMPLER: &'static str = "one generator pass";

    fn preset(name: &str) -> Option<GanConfig> {
        match name {
            "mlp" => Some(GanConfig::mlp(ImageShape::MNIST)),
            "dcgan" => Some(GanConfig::dcgan(ImageShape::MNIST)),
            "cgan" => Some(GanConfig::cgan(ImageShape::MNIST, 10)),
            "dcgan-hinge" => {
                Some(GanConfig::dcgan(ImageShape::MNIST).with_objective(GanObjective::Hinge))
            }
            _ => None,
        }
    }

    fn default_config(_: Pixels) -> GanConfig {
        GanConfig::new()
    }

    /// Grey levels, scaled to `[−1, 1]` inside the model.
    fn pixels(_: &GanConfig) -> Pixels {
        Pixels::Grey
    }

    /// The objective's ([`GanObjective::recommended_learning_rate`]).
    fn learning_rate(config: &GanConfig) -> f64 {
        config.objective.recommended_learning_rate()
    }

    fn with_objective(config: GanConfig, objective: GanObjective) -> Result<GanConfig> {
        Ok(config.with_objective(objective))
    }
}

impl Registered for VaeGan {
    const LABEL: &'static str = "VAE-GAN";
    const DENSITY: DensityType = DensityType::Implicit;
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        reconstruct: Some(Self::reconstruct),
        interpolate: Some(Self::interpolate),
        anomaly_scores: Some(Self::anomaly_scores),
        representation: representation(),
        ..Capabilities::NONE
    };
    const SAMPLER: &'static str = "one decoder pass";

    fn default_config(_: Pixels) -> VaeGanConfig {
        VaeGanConfig::default()
    }

    /// Grey levels, scaled to `[−1, 1]` for the discriminator.
    fn pixels(_: &VaeGanConfig) -> Pixels {
        Pixels::Grey
    }

    /// DCGAN's rate, as for the GANs.
    fn learning_rate(_: &VaeGanConfig) -> f64 {
        GanObjective::NonSaturating.recommended_learning_rate()
    }
}

impl Registered for Mixture {
    const LABEL: &'static str = "mixture";
    const DENSITY: DensityType = DensityType::ExplicitTractable;
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        anomaly_scores: Some(Self::anomaly_scores),
        representation: representation(),
        ..Capabilities::NONE
    };
    const PRESETS: &'static [&'static str] = &["bernoulli-K", "gaussian-K"];
    const BINARY_MODEL: &'static str = "a Bernoulli mixture";
    const GREY_LEVEL_HINT: &'static str = "--preset gaussian-K";
    const GRADIENT_TRAINED: bool = false;
    const SAMPLER: &'static str = "ancestral (component, then pixels)";

    /// `bernoulli-K` or `gaussian-K`, e.g. `bernoulli-50`.
    fn preset(name: &str) -> Option<MixtureConfig> {
        let (kind, k) = name.split_once('-')?;
        let k: usize = k.parse().ok()?;
        match kind {
            "bernoulli" => Some(MixtureConfig::bernoulli(k, ImageShape::MNIST)),
            "gaussian" => Some(MixtureConfig::gaussian(k, ImageShape::MNIST)),
            _ => None,
        }
    }

    fn default_config(pixels: Pixels) -> MixtureConfig {
        match pixels {
            Pixels::Binary => MixtureConfig::default(),
            Pixels::Grey => MixtureConfig::gaussian(10, ImageShape::MNIST),
        }
    }

    fn pixels(config: &MixtureConfig) -> Pixels {
        match config.likelihood {
            ComponentLikelihood::Bernoulli => Pixels::Binary,
            ComponentLikelihood::DiagonalGaussian => Pixels::Grey,
        }
    }

    /// `epochs` counts EM iterations (default: the config's, 100); the trainer runs no
    /// gradient epochs and fits the mixture by EM afterwards.
    fn training(config: MixtureConfig, epochs: Option<usize>) -> (MixtureConfig, TrainingSettings) {
        let iterations = epochs.unwrap_or(config.em_max_iterations);
        let settings = TrainingSettings {
            epochs: 0,
            learning_rate: Self::learning_rate(&config),
        };
        (config.with_em_max_iterations(iterations), settings)
    }

    /// `components.png`: every component's mean image.
    fn pictures(&self) -> Vec<(&'static str, Tensor<4>)> {
        vec![("components.png", self.component_images())]
    }
}

impl Registered for Diffusion {
    const LABEL: &'static str = "DDPM";
    const DENSITY: DensityType = DensityType::Approximate;
    const PRESETS: &'static [&'static str] = &["small", "paper", "small-256", "paper-256"];
    const BINARY_MODEL: &'static str = "a two-bin decoder";
    const GREY_LEVEL_HINT: &'static str = "--preset small-256";
    const SAMPLER: &'static str = "DDIM (50 steps, η = 0)";
    const CAPABILITIES: Capabilities<Self> = Capabilities {
        sample_with: Some(Self::sample_with),
        complete: Some(Self::complete),
        anomaly_scores: Some(Self::anomaly_scores),
        super_resolve: super_resolution(),
        ..Capabilities::NONE
    };
    // T network passes per image: keep the preview small.
    const SAMPLE_BATCH: usize = 100;
    const PREVIEW_SAMPLES: usize = 16;

    /// `small` or `paper` for binary digits; `-256` for 8-bit grey levels.
    fn preset(name: &str) -> Option<DiffusionConfig> {
        let (size, grid) = match name.strip_suffix("-256") {
            Some(size) => (size, DataGrid::Grey256),
            None => (name, DataGrid::Binary),
        };
        match size {
            "small" => Some(DiffusionConfig::small(ImageShape::MNIST, grid)),
            "paper" => Some(DiffusionConfig::paper(ImageShape::MNIST, grid)),
            _ => None,
        }
    }

    fn default_config(pixels: Pixels) -> DiffusionConfig {
        let grid = match pixels {
            Pixels::Binary => DataGrid::Binary,
            Pixels::Grey => DataGrid::Grey256,
        };
        DiffusionConfig::small(ImageShape::MNIST, grid)
    }

    fn pixels(config: &DiffusionConfig) -> Pixels {
        match config.data_grid {
            DataGrid::Binary => Pixels::Binary,
            DataGrid::Grey256 => Pixels::Grey,
        }
    }

    /// Ho et al.'s 2e-4.
    fn learning_rate(_: &DiffusionConfig) -> f64 {
        2e-4
    }

    /// DDIM with 50 deterministic steps (η = 0; all `T` if fewer,
    /// [`Diffusion::default_sampler`]): ancestral sampling takes `T` network passes per image,
    /// too slow for a default on a CPU.
    fn default_method(&self) -> SamplingMethod {
        self.default_sampler()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Check;
    impl ModelVisitor for Check {
        type Output = Result<()>;
        fn visit<M: Registered>(self, entry: &'static Entry) -> Result<()> {
            entry.config::<M>(Pixels::Binary)?;
            for name in M::PRESETS.iter().filter(|p| !p.ends_with("-K")) {
                preset::<M>(name)?;
            }
            assert!(preset::<M>("no-such-preset").is_err());
            // Its recipe: a preset that exists, settings the trainer takes, and the score its
            // family is judged by (likelihood where there is one, FID where there is none).
            let recipe = entry.recipe("converged", Pixels::Binary)?;
            if let Some(name) = recipe.preset {
                let own = M::pixels(&entry.config::<M>(Pixels::Binary)?);
                assert_eq!(M::pixels(&preset::<M>(name)?), own, "{name}");
            }
            // A grey-level recipe trains a configuration of grey levels.
            if let Some(grey) = entry.converged_grey {
                assert_eq!(entry.recipe("converged", Pixels::Grey)?, grey);
                let config = match grey.preset {
                    Some(name) => preset::<M>(name)?,
                    None => M::default_config(Pixels::Grey),
                };
                assert_eq!(M::pixels(&config), Pixels::Grey, "{}", entry.name);
                assert_eq!(grey.validation, recipe.validation, "{}", entry.name);
            } else {
                assert_eq!(entry.recipe("converged", Pixels::Grey)?, recipe);
            }
            assert!(entry.recipe("no-such-recipe", Pixels::Binary).is_err());
            let trainer = genmodels_core::TrainerConfig {
                epochs: recipe.max_epochs,
                batch_size: recipe.batch_size,
                learning_rate: recipe.learning_rate,
                schedule: recipe.schedule,
                early_stopping: Some(recipe.early_stopping),
                ..Default::default()
            };
            trainer.validate()?;
            let expected = match (M::GRADIENT_TRAINED, M::DENSITY) {
                (false, _) => RecipeValidation::None,
                (true, DensityType::ExplicitTractable | DensityType::Approximate) => {
                    RecipeValidation::Likelihood
                }
                (true, DensityType::Implicit | DensityType::NotGenerative) => {
                    RecipeValidation::Fid { samples: 1_000 }
                }
            };
            assert_eq!(recipe.validation, expected, "{}", entry.name);
            // A binary model's grey-level default is grey, and the other way round.
            for pixels in [Pixels::Binary, Pixels::Grey] {
                let config = M::default_config(pixels);
                if M::pixels(&M::default_config(Pixels::Binary)) == Pixels::Binary {
                    assert_eq!(M::pixels(&config), pixels, "{}", entry.name);
                }
            }
            Ok(())
        }
    }

    #[test]
    fn every_entry_has_a_unique_name_and_a_config() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENTRIES.len());
        for entry in ENTRIES {
            entry.visit(Check).unwrap();
        }
        assert!(super::entry("pixelcnn++").is_err());
        assert_eq!(entry_for_checkpoint("gan").unwrap().name, "gan");
        assert_eq!(entry_for_checkpoint("gmm").unwrap().name, "gmm");
        assert!(entry_for_checkpoint("gaussian-pixels").is_err());
    }

    #[test]
    fn capabilities_are_as_the_families_say() {
        let caps = |e: &str| {
            struct Names;
            impl ModelVisitor for Names {
                type Output = Vec<&'static str>;
                fn visit<M: Registered>(self, _: &'static Entry) -> Vec<&'static str> {
                    M::CAPABILITIES.names()
                }
            }
            super::entry(e).unwrap().visit(Names)
        };
        assert_eq!(
            caps("vae"),
            [
                "reconstruction",
                "interpolation",
                "anomaly scores",
                "representation",
                "latent code"
            ]
        );
        assert!(caps("pixelcnn").contains(&"completion"));
        assert!(caps("gated-pixelcnn").contains(&"conditional sampling"));
        assert!(!caps("row-lstm").contains(&"conditional sampling"));
        assert_eq!(caps("gmm"), ["anomaly scores", "representation"]);
        assert_eq!(
            caps("dcgan"),
            [
                "latent interpolation",
                "conditional sampling",
                "anomaly scores",
                "representation",
                "latent code"
            ]
        );
        // A latent space to move in: the AE, the VAE and the GANs, nothing else.
        for entry in ENTRIES {
            assert_eq!(
                caps(entry.name).contains(&"latent code"),
                ["ae", "vae", "gan", "dcgan", "cgan", "dcgan-hinge"].contains(&entry.name),
                "{}",
                entry.name
            );
        }
        // Every model but the DDPM has a representation for a linear probe.
        for entry in ENTRIES {
            assert_eq!(
                caps(entry.name).contains(&"representation"),
                entry.name != "ddpm",
                "{}",
                entry.name
            );
        }
        // The DDPM super-resolves (ILVR-guided sampling), and the Gated PixelCNN (a model
        // trained on low-resolution maps, `gated-pixelcnn-superres`).
        for entry in ENTRIES {
            assert_eq!(
                caps(entry.name).contains(&"super-resolution"),
                ["ddpm", "gated-pixelcnn", "gated-pixelcnn-superres"].contains(&entry.name),
                "{}",
                entry.name
            );
        }
        // Every model scores images for anomaly detection, each in its own terms.
        for entry in ENTRIES {
            assert!(
                caps(entry.name).contains(&"anomaly scores"),
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn the_super_resolution_gated_pixelcnn_reads_its_low_pass_and_is_no_contender() {
        let superres = super::entry("gated-pixelcnn-superres").unwrap();
        let config = superres.config::<GatedPixelCnn>(Pixels::Binary).unwrap();
        assert_eq!(
            (config.super_resolution_factor, config.condition_channels),
            (Some(4), Some(1))
        );
        let recipe = superres.recipe("converged", Pixels::Binary).unwrap();
        let recipe_config = preset::<GatedPixelCnn>(recipe.preset.unwrap()).unwrap();
        assert_eq!(recipe_config.super_resolution_factor, Some(4));
        let x2 = preset::<GatedPixelCnn>("superres-x2").unwrap();
        assert_eq!(x2.super_resolution_factor, Some(2));
        // Its checkpoints record the Gated PixelCNN's name: they load as one.
        assert_eq!(superres.checkpoint_name(), "gated-pixelcnn");
        // Not benchmarked, and no contender of `compare` (whose models are of p(x)).
        assert!(!superres.benchmarked);
        for budget in [
            crate::compare::Budget::Tiny,
            crate::compare::Budget::Converged,
        ] {
            let contenders = crate::compare::Contender::all(&budget.plan());
            assert!(contenders.iter().any(|c| c.name() == "gated-pixelcnn"));
            assert!(contenders.iter().all(|c| !c.name().contains("superres")));
        }
        // The plain Gated PixelCNN is a model of p(x).
        let plain = super::entry("gated-pixelcnn").unwrap();
        assert_eq!(
            plain
                .config::<GatedPixelCnn>(Pixels::Binary)
                .unwrap()
                .super_resolution_factor,
            None
        );
    }

    #[test]
    fn recommended_settings_follow_the_model() {
        let (_, gan) = <Gan as Registered>::training(
            GanConfig::new().with_objective(GanObjective::Wasserstein),
            None,
        );
        assert_eq!(gan.learning_rate, 5e-5);
        assert_eq!(gan.epochs, 10);
        let (mixture, settings) = budget_training::<Mixture>(MixtureConfig::default(), 1000, 7);
        assert_eq!((mixture.em_max_iterations, settings.epochs), (7, 0));
        let (_, vae) = budget_training::<Vae>(VaeConfig::new(), 3, 7);
        assert_eq!((vae.epochs, vae.learning_rate), (3, 1e-3));
    }
}

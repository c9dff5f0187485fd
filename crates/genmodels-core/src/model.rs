//! The [`GenerativeModel`] trait that every model family implements.

use std::path::Path;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Gradients, Tensor};
use serde::{Serialize, de::DeserializeOwned};

use crate::batch::{ImageBatch, ImageDataset, ImageShape};
use crate::error::Result;
use crate::likelihood::{LikelihoodOptions, LogLikelihood};
use genmodels_kernels::on_compute_threads;

/// A training loss: the scalar the optimiser minimises, and its named parts for reporting.
#[derive(Debug, Clone)]
pub struct Loss {
    /// Mean loss over the batch, shape `[1]`; gradients flow from here.
    pub objective: Tensor<1>,
    /// Named parts of the loss (e.g. `reconstruction`, `kl`), each a batch mean of shape `[1]`.
    pub components: Vec<(&'static str, Tensor<1>)>,
}

impl Loss {
    /// A loss with no separate components.
    pub fn new(objective: Tensor<1>) -> Self {
        Self {
            objective,
            components: Vec::new(),
        }
    }

    /// Adds a named component.
    pub fn with_component(mut self, name: &'static str, value: Tensor<1>) -> Self {
        self.components.push((name, value));
        self
    }
}

/// How one player's parameters are optimised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba 2015) with moment decays `beta_1`, `beta_2` (ε = 1e-8).
    Adam {
        /// Decay of the first moment (0.9 by default; DCGAN uses 0.5).
        beta_1: f32,
        /// Decay of the second moment.
        beta_2: f32,
    },
    /// RMSProp with smoothing `alpha`, no momentum (ε = 1e-8), as WGAN with weight clipping
    /// prescribes.
    RmsProp {
        /// Smoothing constant of the squared-gradient average.
        alpha: f32,
    },
}

impl Default for OptimizerKind {
    fn default() -> Self {
        Self::Adam {
            beta_1: 0.9,
            beta_2: 0.999,
        }
    }
}

/// One player of training: a part of the model with its own loss, its own optimiser and its
/// own schedule.
///
/// Most models have one player that owns every parameter and minimises
/// [`Trainable::loss`]. A GAN has two, the discriminator and the generator; the
/// [`Trainer`](crate::Trainer) steps them in turn, each with its own optimiser state.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    /// The player's name, for progress, reports and checkpoint files (`discriminator`, …).
    pub name: &'static str,
    /// The player steps on every `every`-th batch of the run (batches counted across epochs):
    /// 1 for every batch, k for a generator that steps once per k critic steps.
    pub every: usize,
    /// Its optimiser.
    pub optimizer: OptimizerKind,
    /// Its learning rate as a multiple of the trainer's.
    pub learning_rate_scale: f64,
}

impl Player {
    /// A player that steps on every batch with Adam (0.9, 0.999) at the trainer's rate.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            every: 1,
            optimizer: OptimizerKind::default(),
            learning_rate_scale: 1.0,
        }
    }

    /// Steps on every `every`-th batch only.
    pub fn with_every(mut self, every: usize) -> Self {
        self.every = every;
        self
    }

    /// Uses `optimizer`.
    pub fn with_optimizer(mut self, optimizer: OptimizerKind) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// Scales the trainer's learning rate by `scale` for this player.
    pub fn with_learning_rate_scale(mut self, scale: f64) -> Self {
        self.learning_rate_scale = scale;
        self
    }
}

/// The configuration of a model: serialisable to the checkpoint's `config.json`, and able to
/// build the model it describes.
pub trait ModelConfig:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync
{
    /// The model this config builds.
    type Model: GenerativeModel<Config = Self>;

    /// The model's short name (`vae`, `ae`, …), stored in `config.json`.
    const MODEL_NAME: &'static str;

    /// Builds the model with freshly initialised weights on `device`.
    ///
    /// # Errors
    /// [`crate::GenError::InvalidConfig`] when the configuration cannot work.
    fn init(&self, device: &Device) -> Result<Self::Model>;
}

/// A generative model of images: what a user calls.
///
/// - [`log_likelihood`](Self::log_likelihood): `log p(x)` per example, typed by what kind of
///   number it is (exact, a bound, an estimate), or an error where no likelihood exists;
/// - [`sample`](Self::sample): new images;
/// - [`save`](Self::save) and [`load`](Self::load): the model as a directory (its config and
///   weights), readable by `genmodels eval` and `genmodels sample`.
///
/// How a model is trained is the [`Trainable`] trait's business.
///
/// A family implements [`compute_log_likelihood`](Self::compute_log_likelihood) and
/// [`compute_samples`](Self::compute_samples); the provided `log_likelihood` and `sample` run
/// them on flex's compute threads (`genmodels_kernels::on_compute_threads`), about 1.2–1.3×
/// faster than from the caller's thread on 2 cores, so that user code never has to.
pub trait GenerativeModel: Module + Sized {
    /// The configuration type that builds this model.
    type Config: ModelConfig<Model = Self>;

    /// The configuration the model was built from.
    fn config(&self) -> &Self::Config;

    /// The shape of the images the model takes and makes.
    fn image_shape(&self) -> ImageShape;

    /// Per-example `log p(x)` in nats, or a bound or estimate of it, with its kind.
    ///
    /// # Errors
    /// [`crate::GenError::LikelihoodNotAvailable`] for models without a tractable likelihood;
    /// [`crate::GenError::ShapeMismatch`] and friends when the batch does not fit the model.
    fn log_likelihood(
        &self,
        batch: &ImageBatch,
        options: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        let (model, batch, options) = (self.clone(), batch.clone(), *options);
        on_compute_threads(&batch.device(), move || {
            model.compute_log_likelihood(&batch, &options)
        })
    }

    /// What [`log_likelihood`](Self::log_likelihood) conditions on, for a model whose
    /// likelihood is a conditional `log p(x | c)` rather than `log p(x)` (e.g. "the class
    /// label"), so that reports do not present it as the other; `None` (the default) for
    /// `log p(x)`.
    fn likelihood_condition(&self) -> Option<String> {
        None
    }

    /// `n` new images `[n, C, H, W]` with values in `[0, 1]`, reproducible from `seed`.
    ///
    /// # Errors
    /// [`crate::GenError::InvalidConfig`] for `n = 0`, or a model that cannot sample yet.
    fn sample(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        let model = self.clone();
        on_compute_threads(&module_device(self), move || model.compute_samples(n, seed))
    }

    /// Saves the model to `dir` (created if needed): its `config.json` and weights, as a
    /// checkpoint without optimiser state. [`load`](Self::load), `genmodels eval` and
    /// `genmodels sample` read it; the files a previous save left there are replaced only once
    /// the new ones are on disk.
    ///
    /// # Errors
    /// [`crate::GenError::Io`] when a file cannot be written.
    fn save(&self, dir: &Path) -> Result<()> {
        let position = crate::checkpoint::TrainingPosition {
            epoch: 0,
            step: 0,
            seed: 0,
        };
        crate::checkpoint::save_checkpoint(dir, self, &[], position).map(|_| ())
    }

    /// Loads a model saved by [`save`](Self::save) (or a training checkpoint) onto `device`.
    ///
    /// # Errors
    /// [`crate::GenError::CorruptCheckpoint`] for missing, truncated or corrupt files;
    /// [`crate::GenError::CheckpointMismatch`] when the directory holds another model or
    /// weights that do not fit its config.
    fn load(dir: &Path, device: &Device) -> Result<Self> {
        crate::checkpoint::load_model::<Self::Config>(dir, device).map(|(model, _)| model)
    }

    /// [`log_likelihood`](Self::log_likelihood)'s work, on the calling thread: what a family
    /// implements.
    ///
    /// # Errors
    /// As [`log_likelihood`](Self::log_likelihood).
    fn compute_log_likelihood(
        &self,
        batch: &ImageBatch,
        options: &LikelihoodOptions,
    ) -> Result<LogLikelihood>;

    /// [`sample`](Self::sample)'s work, on the calling thread: what a family implements.
    ///
    /// # Errors
    /// As [`sample`](Self::sample).
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>>;
}

/// How a [`GenerativeModel`] trains: what the [`Trainer`](crate::Trainer) and the benchmarks
/// call, and users rarely do.
///
/// A model trains as one or more [`Player`]s, each minimising its own [`loss`](Self::loss)
/// over its own parameters with its own optimiser. Most models are one player that owns every
/// parameter (the default); a GAN has two, its discriminator and its generator.
pub trait Trainable: GenerativeModel {
    /// The players training steps in turn on each batch, in order. One player owning the
    /// whole model by default; adversarial models return one per network.
    fn players(&self) -> Vec<Player> {
        vec![Player::new("model")]
    }

    /// The loss player `player` (an index into [`players`](Self::players); always 0 for a
    /// one-player model) minimises on `batch`: the scalar objective and its named parts for
    /// reporting (the VAE's `reconstruction` and `kl`). Noise comes from the device RNG, which
    /// the trainer seeds each epoch.
    ///
    /// # Errors
    /// When the batch does not fit the model (shape, channels, value range).
    fn loss(&self, player: usize, batch: &ImageBatch) -> Result<Loss>;

    /// The gradients of player `player`'s own parameters, taken from `grads`; the optimiser
    /// step then changes those parameters only. The whole model by default.
    fn player_gradients(&self, _player: usize, grads: Gradients) -> GradientsParams {
        GradientsParams::from_grads(grads, self)
    }

    /// Called after each optimiser step of player `player`, for constraints that are not
    /// gradient steps (WGAN's weight clipping).
    fn after_player_step(self, _player: usize) -> Self {
        self
    }

    /// Called by the trainer once the gradient epochs end, with the training data and the
    /// training seed, for models that fit something in closed form (the autoencoder's code
    /// distribution, a mixture's EM).
    ///
    /// # Errors
    /// When the fit fails.
    fn fit_after_training(
        self,
        _train: &dyn ImageDataset,
        _seed: u64,
        _device: &Device,
    ) -> Result<Self> {
        Ok(self)
    }

    /// Warnings about the state of training, from one epoch's mean loss components (every
    /// player's, by name). The trainer prints them and keeps them in its report. GANs use this
    /// to flag a discriminator that wins outright or a generator that collapses.
    fn training_warnings(&self, _epoch_components: &[(String, f64)]) -> Vec<String> {
        Vec::new()
    }
}

/// Checks a requested sample count is positive.
///
/// # Errors
/// [`crate::GenError::InvalidConfig`] for `n = 0`.
pub fn require_samples(n: usize) -> Result<()> {
    if n == 0 {
        return Err(crate::GenError::InvalidConfig(
            "cannot draw 0 samples".into(),
        ));
    }
    Ok(())
}

/// The device a module's parameters live on (the first one, for a module spread over
/// several).
///
/// # Panics
/// If the module has no tensors at all, which no genmodels model is.
pub fn module_device<M: Module>(module: &M) -> Device {
    module
        .devices()
        .into_iter()
        .next()
        .expect("a model has parameters")
}

/// Draws every lazily initialised parameter of `module` now, in the module's own order.
///
/// burn draws a parameter's initial values from the device RNG when it is first read. A model
/// read first by something other than its `forward` (a sampler that walks the layers in
/// another order, say) would then get different weights from the same seed. Calling this at
/// the end of `init` makes the weights a function of the seed alone.
pub fn materialise_parameters<M: Module>(module: &M) {
    struct Materialise;
    impl burn::module::ModuleVisitor for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialise);
}

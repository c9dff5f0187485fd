//! The one training loop of genmodels.
//!
//! [`Trainer::fit`] trains any [`GenerativeModel`] on mini-batches: shuffled each epoch from
//! the seed, the loss checked for NaN/∞ at every step, a checkpoint after every epoch, the test
//! split evaluated at the end. [`Trainer::resume`] continues from a checkpoint as if training
//! had never stopped.
//!
//! A model trains as one or more [`Player`]s ([`Trainable::players`]). Each player has
//! its own loss, its own parameters and its own optimiser. On every batch the players whose
//! turn it is step in order: a GAN's discriminator on every batch, its generator on every
//! k-th. Each step is a forward pass of the player's loss, a backward pass, and an optimiser
//! update of that player's parameters only. Most models are a single player owning everything.
//!
//! Reproducibility: one seed fixes a run on a given backend. Burn's random generator is global
//! to a device, so two trainings running at once in one process on the same device draw from
//! the same stream and are no longer reproducible; train one model at a time per device.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamConfig, ModuleOptimizer, RmsPropConfig};
use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::batch::{ImageBatch, ImageDataset, ImageShape};
use crate::checkpoint::{self, TrainingPosition};
use crate::error::{GenError, Result};
use crate::evaluation::{LossSummary, evaluate_log_likelihood, evaluate_loss, scalar};
use crate::likelihood::{LikelihoodOptions, LogLikelihood};
use crate::model::{GenerativeModel, ModelConfig, OptimizerKind, Player, Trainable};
use crate::progress;
use genmodels_kernels::on_compute_threads;

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Total epochs (a resumed run continues up to this many).
    pub epochs: usize,
    /// Images per optimisation step.
    pub batch_size: usize,
    /// The learning rate (each [`Player`] may scale it).
    pub learning_rate: f64,
    /// Seeds weight initialisation (through [`init_seeded`]), shuffling and the model's noise.
    pub seed: u64,
    /// Where to write a checkpoint after every epoch; `None` writes none.
    pub checkpoint_dir: Option<PathBuf>,
    /// How the test split is evaluated at the end.
    pub eval_options: LikelihoodOptions,
    /// Batch size for evaluation (IWAE holds `k` samples per image, so keep it modest).
    pub eval_batch_size: usize,
    /// Show a progress bar (on a terminal) or per-epoch lines (elsewhere).
    pub progress: bool,
    /// Stop after this many optimisation steps in all (counting those before a resume): a
    /// step budget. `None` runs every epoch.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Stop after the first step that takes this run's training time past this many seconds:
    /// a time budget. `None` runs every epoch.
    #[serde(default)]
    pub max_train_seconds: Option<f64>,
    /// Record the test log-likelihood while training (needs a test split; models without a
    /// likelihood record nothing).
    #[serde(default)]
    pub likelihood_curve: Option<CurveOptions>,
}

/// How [`TrainerConfig::likelihood_curve`] samples the test log-likelihood during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveOptions {
    /// Training seconds between two points (the evaluation itself is not training time).
    pub every_seconds: f64,
    /// The first this many test images are evaluated at each point.
    pub test_images: usize,
    /// The estimator (an ELBO is cheaper than IWAE-k for a curve).
    pub options: LikelihoodOptions,
}

/// One point of the test log-likelihood recorded during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training seconds so far in this run (evaluation excluded).
    pub train_seconds: f64,
    /// Optimisation steps so far.
    pub steps: usize,
    /// Mean negative log-likelihood of the evaluated test images, nats per image.
    pub nll_nats: f64,
    /// The same in bits per dimension.
    pub bits_per_dim: f64,
    /// What kind of number it is (exact, ELBO, IWAE-k).
    pub kind: String,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 100,
            learning_rate: 1e-3,
            seed: 0,
            checkpoint_dir: None,
            eval_options: LikelihoodOptions::default(),
            eval_batch_size: 100,
            progress: true,
            max_steps: None,
            max_train_seconds: None,
            likelihood_curve: None,
        }
    }
}

impl TrainerConfig {
    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(GenError::InvalidConfig(
                "batch sizes must be positive".into(),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "the learning rate must be positive and finite, got {}",
                self.learning_rate
            )));
        }
        if self.max_steps == Some(0) {
            return Err(GenError::InvalidConfig(
                "a step budget must allow at least one step".into(),
            ));
        }
        if self
            .max_train_seconds
            .is_some_and(|s| !(s.is_finite() && s > 0.0))
        {
            return Err(GenError::InvalidConfig(
                "a time budget must be a positive number of seconds".into(),
            ));
        }
        if let Some(curve) = &self.likelihood_curve
            && (curve.test_images == 0
                || !(curve.every_seconds.is_finite() && curve.every_seconds > 0.0))
        {
            return Err(GenError::InvalidConfig(
                "a likelihood curve needs test images and a positive interval".into(),
            ));
        }
        Ok(())
    }

    fn budget_spent(&self, step: usize, train_seconds: f64) -> bool {
        self.max_steps.is_some_and(|m| step >= m)
            || self.max_train_seconds.is_some_and(|m| train_seconds >= m)
    }
}

/// What a training run did and measured.
#[derive(Debug, Clone)]
pub struct TrainingReport {
    /// Epochs completed in total (including those before a resume).
    pub epochs: usize,
    /// Optimisation steps completed in total.
    pub steps: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Wall-clock seconds of this run's training steps (evaluation excluded).
    pub train_seconds: f64,
    /// Wall-clock seconds of the post-training fit ([`Trainable::fit_after_training`]: the
    /// AE's code distribution, a mixture's EM), not counted in `train_seconds`.
    pub fit_seconds: f64,
    /// Training throughput of this run, images per second.
    pub images_per_second: f64,
    /// Mean training loss of each epoch of this run (of the first player, for a model that
    /// trains several; see `epoch_components` for all of them).
    pub epoch_losses: Vec<f64>,
    /// Each epoch's mean loss components of every player, by name: for a single player its
    /// objective as `loss` and its components; for several, `<player>_loss` for each
    /// player's objective and their components (a GAN's `d_real`, `d_fake`, …).
    pub epoch_components: Vec<Vec<(String, f64)>>,
    /// Warnings the model raised about training ([`Trainable::training_warnings`]),
    /// each prefixed with its epoch.
    pub warnings: Vec<String>,
    /// Mean test loss at the end, when a test split was given.
    pub test_loss: Option<LossSummary>,
    /// Test log-likelihood at the end, when the model has one and a test split was given.
    pub test_log_likelihood: Option<LogLikelihood>,
    /// Why there is no test likelihood, when the model has none.
    pub likelihood_unavailable: Option<String>,
    /// The test log-likelihood during training ([`TrainerConfig::likelihood_curve`]): before
    /// the first step, every interval, and after the last step.
    pub likelihood_curve: Vec<CurvePoint>,
    /// Whether a step or time budget ended training before the last epoch.
    pub stopped_by_budget: bool,
}

/// A trained model and its report.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model, in validation mode (no autodiff), on the inference device.
    pub model: M,
    /// What happened.
    pub report: TrainingReport,
}

/// Builds a model from `config` with weights drawn from `seed`, on `device`.
///
/// # Errors
/// As [`ModelConfig::init`].
pub fn init_seeded<C: ModelConfig>(config: &C, seed: u64, device: &Device) -> Result<C::Model> {
    device.seed(seed);
    config.init(device)
}

/// The training loop.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainerConfig,
}

impl Trainer {
    /// A trainer with `config`.
    pub fn new(config: TrainerConfig) -> Self {
        Self { config }
    }

    /// The trainer's configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Trains `model` from scratch on `train` for the configured epochs, then evaluates it on
    /// `test`.
    ///
    /// `device` is the plain (inference) device; training runs on `device.autodiff()`.
    ///
    /// # Errors
    /// [`GenError::Diverged`] naming the step when the loss becomes NaN or infinite (the last
    /// checkpoint, if any, stays as it was); input and I/O errors as they occur.
    pub fn fit<M: Trainable>(
        &self,
        model: M,
        train: &dyn ImageDataset,
        test: Option<&dyn ImageDataset>,
        device: &Device,
    ) -> Result<Trained<M>> {
        self.config.validate()?;
        let optimizers = optimizers_for(&model.players())?;
        self.run(model, optimizers, 0, 0, train, test, device)
    }

    /// Continues training from the checkpoint in `dir` up to the configured epochs.
    ///
    /// Weights, optimiser state, epoch and step come from the checkpoint. Data order and noise
    /// are derived from (seed, epoch), so a resumed run follows the same path as one that never
    /// stopped.
    ///
    /// Burn 0.22 materialises restored optimiser state on `Device::default()` before moving it
    /// to the parameters' device. When several backends are compiled in, set the environment
    /// variable `BURN_DEVICE` to the backend you train on (the CLI does), so that no other
    /// backend is started.
    ///
    /// # Errors
    /// Checkpoint errors when `dir` holds no complete checkpoint of a `C` model; otherwise as
    /// [`Trainer::fit`].
    pub fn resume<C: ModelConfig>(
        &self,
        dir: &Path,
        train: &dyn ImageDataset,
        test: Option<&dyn ImageDataset>,
        device: &Device,
    ) -> Result<Trained<C::Model>>
    where
        C::Model: Trainable,
    {
        self.config.validate()?;
        let (model, manifest) = checkpoint::load_model::<C>(dir, &device.clone().autodiff())?;
        if manifest.seed != self.config.seed {
            return Err(GenError::InvalidConfig(format!(
                "the checkpoint was trained with seed {}, this run asks for {}",
                manifest.seed, self.config.seed
            )));
        }
        let optimizers =
            checkpoint::load_optimizers(dir, &manifest, optimizers_for(&model.players())?)?;
        self.run(
            model,
            optimizers,
            manifest.epoch,
            manifest.step,
            train,
            test,
            device,
        )
    }

    /// Trains and evaluates, on flex's compute threads: every parallel kernel would otherwise
    /// hand its work over to them and wake this thread again afterwards (about 1.2× on DCGAN's
    /// and 1.3× on PixelCNN's training steps on 2 cores).
    #[allow(clippy::too_many_arguments)]
    fn run<M: Trainable>(
        &self,
        model: M,
        optimizers: Vec<ModuleOptimizer>,
        start_epoch: usize,
        start_step: usize,
        train: &dyn ImageDataset,
        test: Option<&dyn ImageDataset>,
        device: &Device,
    ) -> Result<Trained<M>> {
        on_compute_threads(device, || {
            let cfg = &self.config;
            if train.is_empty() {
                return Err(GenError::EmptyData {
                    context: "training set".into(),
                });
            }
            let expected = model.image_shape();
            if train.image_shape() != expected {
                return Err(GenError::ShapeMismatch {
                    context: "training images for the model".into(),
                    expected: expected.to_string(),
                    actual: train.image_shape().to_string(),
                });
            }
            let players = model.players();
            let several_players = players.len() > 1;
            let mut training_step =
                TrainingStep::with_optimizers(players.clone(), optimizers, cfg.learning_rate)?;
            let train_device = device.clone().autodiff();
            let mut model = model.fork(&train_device).train();
            let n = train.len();
            let steps_per_epoch = n.div_ceil(cfg.batch_size);
            let epochs_to_run = cfg.epochs.saturating_sub(start_epoch);

            let planned_images = match cfg.max_steps {
                Some(max) => {
                    (max.saturating_sub(start_step) * cfg.batch_size).min(epochs_to_run * n)
                }
                None => epochs_to_run * n,
            };
            // Under a time budget the bar counts seconds of it: the image count is not known.
            let time_bar = cfg.max_train_seconds.is_some() && cfg.max_steps.is_none();
            let bar = if cfg.progress && time_bar {
                let seconds = cfg.max_train_seconds.unwrap_or_default().ceil() as u64;
                progress::budget_bar(seconds, "training")
            } else if cfg.progress {
                progress::bar(planned_images as u64, "training", "img")
            } else {
                indicatif::ProgressBar::hidden()
            };
            let lines = cfg.progress && bar.is_hidden();

            let mut step = start_step;
            let mut last_checkpoint = cfg
                .checkpoint_dir
                .as_ref()
                .filter(|dir| dir.join(checkpoint::MANIFEST_FILE).exists())
                .cloned();
            let mut epoch_losses = Vec::with_capacity(epochs_to_run);
            let mut epoch_components = Vec::with_capacity(epochs_to_run);
            let mut warnings = Vec::new();
            let mut train_seconds = 0.0;
            let mut images_seen = 0;
            let mut curve = LikelihoodCurve::new(cfg.likelihood_curve.as_ref(), test);
            curve.record(&model, 0.0, step, device)?;
            let mut stopped_by_budget = false;

            for epoch in start_epoch..cfg.epochs {
                if cfg.budget_spent(step, train_seconds) {
                    stopped_by_budget = true;
                    break;
                }
                let epoch_seed = mix(cfg.seed, epoch as u64);
                train_device.seed(epoch_seed);
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut StdRng::seed_from_u64(epoch_seed));

                let mut means = RunningMeans::default();
                let mut epoch_seconds = 0.0;
                let mut epoch_images = 0;
                for indices in order.chunks(cfg.batch_size) {
                    if cfg.budget_spent(step, train_seconds) {
                        stopped_by_budget = true;
                        break;
                    }
                    // Only the steps count as training time: curve points and checkpoints do not.
                    let step_started = Instant::now();
                    step += 1;
                    let batch = train.batch(indices, epoch, &train_device)?;
                    let mut message = format!("epoch {}/{}", epoch + 1, cfg.epochs);
                    let losses = match training_step.step(model, &batch, step) {
                        Ok((stepped, losses)) => {
                            model = stepped;
                            losses
                        }
                        Err(GenError::Diverged { step, loss, .. }) => {
                            bar.abandon();
                            return Err(GenError::Diverged {
                                step,
                                epoch: epoch + 1,
                                loss,
                                last_checkpoint,
                            });
                        }
                        Err(e) => return Err(e),
                    };
                    let step_seconds = step_started.elapsed().as_secs_f64();
                    epoch_seconds += step_seconds;
                    train_seconds += step_seconds;
                    epoch_images += indices.len();
                    for loss in losses {
                        let objective_name = if several_players {
                            format!("{}_loss", players[loss.player].name)
                        } else {
                            "loss".to_string()
                        };
                        means.add(&objective_name, loss.objective);
                        for (name, value) in loss.components {
                            means.add(name, value);
                        }
                        message.push_str(&format!(" · {objective_name} {:.3}", loss.objective));
                    }
                    if time_bar {
                        bar.set_position(train_seconds as u64);
                    } else {
                        bar.inc(indices.len() as u64);
                    }
                    bar.set_message(message);
                    if curve.due(train_seconds) {
                        curve.record(&model, train_seconds, step, device)?;
                    }
                }
                images_seen += epoch_images;
                if epoch_images == 0 {
                    break;
                }
                let components = means.finish();
                let first_loss_name = if several_players {
                    format!("{}_loss", players[0].name)
                } else {
                    "loss".to_string()
                };
                epoch_losses.push(
                    components
                        .iter()
                        .find(|(name, _)| *name == first_loss_name)
                        .map_or(f64::NAN, |(_, v)| *v),
                );
                if lines {
                    let figures: Vec<String> = components
                        .iter()
                        .map(|(name, value)| format!("{name} {value:.4}"))
                        .collect();
                    eprintln!(
                        "epoch {}/{}: {}, {:.0} img/s",
                        epoch + 1,
                        cfg.epochs,
                        figures.join(", "),
                        epoch_images as f64 / epoch_seconds
                    );
                }
                for warning in model.training_warnings(&components) {
                    let warning = format!("epoch {}: {warning}", epoch + 1);
                    bar.suspend(|| eprintln!("warning: {warning}"));
                    warnings.push(warning);
                }
                epoch_components.push(components);
                if let Some(dir) = &cfg.checkpoint_dir {
                    // The last update can leave NaN weights behind a finite loss; such weights must
                    // never replace the last good checkpoint.
                    if !checkpoint::weights_are_finite(&model)? {
                        bar.abandon();
                        return Err(GenError::Diverged {
                            step,
                            epoch: epoch + 1,
                            loss: f64::NAN,
                            last_checkpoint,
                        });
                    }
                    // An epoch cut short by the budget counts as done: resuming starts the next.
                    let position = TrainingPosition {
                        epoch: epoch + 1,
                        step,
                        seed: cfg.seed,
                    };
                    checkpoint::save_checkpoint(
                        dir,
                        &model,
                        &training_step.named_optimizers(),
                        position,
                    )?;
                    last_checkpoint = Some(dir.clone());
                }
                if stopped_by_budget {
                    break;
                }
            }
            bar.finish_and_clear();
            let epochs_done = start_epoch + epoch_components.len();
            if !stopped_by_budget {
                debug_assert_eq!(step, start_step + epochs_to_run * steps_per_epoch);
            }
            if curve.last_steps() != Some(step) {
                curve.record(&model, train_seconds, step, device)?;
            }

            let model = model.valid().fork(device);
            let fit_started = Instant::now();
            let model = model.fit_after_training(train, cfg.seed, device)?;
            let fit_seconds = fit_started.elapsed().as_secs_f64();
            if let Some(dir) = &cfg.checkpoint_dir {
                // The post-training fit (e.g. the AE's code distribution) belongs in the checkpoint.
                let position = TrainingPosition {
                    epoch: epochs_done.max(start_epoch),
                    step,
                    seed: cfg.seed,
                };
                checkpoint::save_checkpoint(
                    dir,
                    &model,
                    &training_step.named_optimizers(),
                    position,
                )?;
            }

            let (test_loss, test_log_likelihood, likelihood_unavailable) = match test {
                Some(test) => {
                    let loss = evaluate_loss(&model, test, cfg.eval_batch_size, device)?;
                    match evaluate_log_likelihood(
                        &model,
                        test,
                        &cfg.eval_options,
                        cfg.eval_batch_size,
                        device,
                    ) {
                        Ok(ll) => (Some(loss), Some(ll), None),
                        Err(e @ GenError::LikelihoodNotAvailable { .. }) => {
                            (Some(loss), None, Some(e.to_string()))
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => (None, None, None),
            };

            Ok(Trained {
                model,
                report: TrainingReport {
                    epochs: epochs_done.max(start_epoch),
                    steps: step,
                    train_images: n,
                    train_seconds,
                    fit_seconds,
                    images_per_second: if train_seconds > 0.0 {
                        images_seen as f64 / train_seconds
                    } else {
                        0.0
                    },
                    epoch_losses,
                    epoch_components,
                    warnings,
                    test_loss,
                    test_log_likelihood,
                    likelihood_unavailable,
                    likelihood_curve: curve.points,
                    stopped_by_budget,
                },
            })
        })
    }
}

/// The points of [`TrainerConfig::likelihood_curve`] as training records them.
struct LikelihoodCurve<'a> {
    options: Option<&'a CurveOptions>,
    test: Option<Subset<'a>>,
    points: Vec<CurvePoint>,
    next_at: f64,
}

impl<'a> LikelihoodCurve<'a> {
    fn new(options: Option<&'a CurveOptions>, test: Option<&'a dyn ImageDataset>) -> Self {
        let test = options.zip(test).map(|(o, data)| Subset {
            data,
            len: o.test_images.min(data.len()),
        });
        Self {
            options,
            test,
            points: Vec::new(),
            next_at: 0.0,
        }
    }

    fn due(&self, train_seconds: f64) -> bool {
        self.test.is_some() && train_seconds >= self.next_at
    }

    fn last_steps(&self) -> Option<usize> {
        self.points.last().map(|p| p.steps)
    }

    /// Evaluates the model in its inference form; a model without a likelihood stops the curve.
    fn record<M: GenerativeModel>(
        &mut self,
        model: &M,
        train_seconds: f64,
        steps: usize,
        device: &Device,
    ) -> Result<()> {
        let (Some(options), Some(test)) = (self.options, &self.test) else {
            return Ok(());
        };
        let inference = model.clone().valid().fork(device);
        match evaluate_log_likelihood(&inference, test, &options.options, 100, device) {
            Ok(ll) => {
                self.points.push(CurvePoint {
                    train_seconds,
                    steps,
                    nll_nats: ll.mean_nll_nats(),
                    bits_per_dim: ll.nll_bits_per_dim(),
                    kind: ll.kind.to_string(),
                });
                self.next_at = train_seconds + options.every_seconds;
                Ok(())
            }
            Err(GenError::LikelihoodNotAvailable { .. }) => {
                self.test = None;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The first `len` images of a data set.
struct Subset<'a> {
    data: &'a dyn ImageDataset,
    len: usize,
}

impl ImageDataset for Subset<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn image_shape(&self) -> ImageShape {
        self.data.image_shape()
    }

    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<ImageBatch> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len) {
            return Err(GenError::InvalidConfig(format!(
                "image {i} is outside the first {} images",
                self.len
            )));
        }
        self.data.batch(indices, epoch, device)
    }
}

/// One player's loss on one step, read back to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerLoss {
    /// Index of the player in [`Trainable::players`].
    pub player: usize,
    /// The objective it minimised.
    pub objective: f64,
    /// The loss's named components.
    pub components: Vec<(&'static str, f64)>,
}

/// The unit of work the [`Trainer`] repeats: on one batch, every player whose turn it is takes
/// one step (forward pass of its loss, NaN/∞ check, backward pass, optimiser update, the
/// model's `after_player_step`).
///
/// Public so that benchmarks time exactly what training does (`genmodels bench`).
pub struct TrainingStep {
    players: Vec<Player>,
    optimizers: Vec<ModuleOptimizer>,
    learning_rate: f64,
}

impl TrainingStep {
    /// Fresh optimisers for `players` at the base `learning_rate`.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for no players or a player that never steps.
    pub fn new(players: Vec<Player>, learning_rate: f64) -> Result<Self> {
        let optimizers = optimizers_for(&players)?;
        Self::with_optimizers(players, optimizers, learning_rate)
    }

    /// Continues with existing optimiser state, one optimiser per player.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when the counts differ.
    pub fn with_optimizers(
        players: Vec<Player>,
        optimizers: Vec<ModuleOptimizer>,
        learning_rate: f64,
    ) -> Result<Self> {
        if players.len() != optimizers.len() {
            return Err(GenError::InvalidConfig(format!(
                "{} players but {} optimisers",
                players.len(),
                optimizers.len()
            )));
        }
        Ok(Self {
            players,
            optimizers,
            learning_rate,
        })
    }

    /// Steps every player due at `step` (1-based, counted over the whole run) on `batch`.
    /// `model` must live on an autodiff device.
    ///
    /// # Errors
    /// [`GenError::Diverged`] (with epoch 0 and no checkpoint: the caller knows those) when a
    /// player's loss is not finite, before any update from it; input errors from the model.
    pub fn step<M: Trainable>(
        &mut self,
        mut model: M,
        batch: &ImageBatch,
        step: usize,
    ) -> Result<(M, Vec<PlayerLoss>)> {
        let mut losses = Vec::with_capacity(self.players.len());
        for (p, player) in self.players.iter().enumerate() {
            if !step.is_multiple_of(player.every) {
                continue;
            }
            let loss = model.loss(p, batch)?;
            let objective = scalar(loss.objective.clone())?;
            if !objective.is_finite() {
                return Err(GenError::Diverged {
                    step,
                    epoch: 0,
                    loss: objective,
                    last_checkpoint: None,
                });
            }
            let components = loss
                .components
                .into_iter()
                .map(|(name, value)| Ok((name, scalar(value)?)))
                .collect::<Result<Vec<_>>>()?;
            let grads = model.player_gradients(p, loss.objective.backward());
            model = self.optimizers[p].step(
                self.learning_rate * player.learning_rate_scale,
                model,
                grads,
            );
            model = model.after_player_step(p);
            losses.push(PlayerLoss {
                player: p,
                objective,
                components,
            });
        }
        Ok((model, losses))
    }

    /// The optimisers by player name, as checkpoints store them.
    pub fn named_optimizers(&self) -> Vec<(&str, &ModuleOptimizer)> {
        self.players
            .iter()
            .map(|p| p.name)
            .zip(&self.optimizers)
            .collect()
    }
}

/// One fresh optimiser per player.
fn optimizers_for(players: &[Player]) -> Result<Vec<ModuleOptimizer>> {
    if players.is_empty() {
        return Err(GenError::InvalidConfig(
            "a model must train at least one player".into(),
        ));
    }
    players
        .iter()
        .map(|player| {
            if player.every == 0 {
                return Err(GenError::InvalidConfig(format!(
                    "player `{}` must step on every n-th batch with n ≥ 1",
                    player.name
                )));
            }
            Ok(match player.optimizer {
                OptimizerKind::Adam { beta_1, beta_2 } => AdamConfig::new()
                    .with_beta_1(beta_1)
                    .with_beta_2(beta_2)
                    .with_epsilon(1e-8)
                    .init(),
                OptimizerKind::RmsProp { alpha } => RmsPropConfig::new()
                    .with_alpha(alpha)
                    .with_momentum(0.0)
                    .with_epsilon(1e-8)
                    .init(),
            })
        })
        .collect()
}

/// Means of named values over an epoch, in first-seen order.
#[derive(Default)]
struct RunningMeans {
    sums: Vec<(String, f64, usize)>,
}

impl RunningMeans {
    fn add(&mut self, name: &str, value: f64) {
        match self.sums.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, sum, count)) => {
                *sum += value;
                *count += 1;
            }
            None => self.sums.push((name.to_string(), value, 1)),
        }
    }

    fn finish(self) -> Vec<(String, f64)> {
        self.sums
            .into_iter()
            .map(|(name, sum, count)| (name, sum / count as f64))
            .collect()
    }
}

/// A per-epoch seed from the run seed (SplitMix64 finaliser), so epochs draw unrelated streams.
fn mix(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

//! One training run: the loop over epochs and batches, and what ends it.

use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use super::curve::LikelihoodCurve;
use super::observer::{EpochRecord, StepRecord, TrainingObserver, TrainingPlan};
use super::step::{RunningMeans, TrainingStep, mix};
use super::{Trained, TrainerConfig, TrainingReport};
use crate::batch::ImageDataset;
use crate::checkpoint::{self, TrainingPosition};
use crate::error::{GenError, Result};
use crate::evaluation::{evaluate_log_likelihood, evaluate_loss};
use crate::model::{Player, Trainable};

/// Where a run starts: fresh (epoch and step 0) or from a checkpoint.
pub(super) struct Start {
    pub(super) optimizers: Vec<ModuleOptimizer>,
    pub(super) epoch: usize,
    pub(super) step: usize,
}

/// The state of a run between steps.
pub(super) struct Run<'a> {
    cfg: &'a TrainerConfig,
    observers: Vec<MutexGuard<'a, dyn TrainingObserver + 'static>>,
    train: &'a dyn ImageDataset,
    test: Option<&'a dyn ImageDataset>,
    device: &'a Device,
    train_device: Device,
    players: Vec<Player>,
    training_step: TrainingStep,
    start_epoch: usize,
    step: usize,
    train_seconds: f64,
    images_seen: usize,
    curve: LikelihoodCurve<'a>,
    last_checkpoint: Option<PathBuf>,
    epoch_losses: Vec<f64>,
    epoch_components: Vec<Vec<(String, f64)>>,
    warnings: Vec<String>,
    stopped_by_budget: bool,
}

impl<'a> Run<'a> {
    /// Checks the data against the model and sets the run up.
    pub(super) fn new<M: Trainable>(
        cfg: &'a TrainerConfig,
        observers: Vec<MutexGuard<'a, dyn TrainingObserver + 'static>>,
        model: &M,
        start: Start,
        (train, test): (&'a dyn ImageDataset, Option<&'a dyn ImageDataset>),
        device: &'a Device,
    ) -> Result<Self> {
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
        let training_step =
            TrainingStep::with_optimizers(players.clone(), start.optimizers, cfg.learning_rate)?;
        let last_checkpoint = cfg
            .checkpoint_dir
            .as_ref()
            .filter(|dir| dir.join(checkpoint::MANIFEST_FILE).exists())
            .cloned();
        Ok(Self {
            cfg,
            observers,
            train,
            test,
            device,
            train_device: device.clone().autodiff(),
            players,
            training_step,
            start_epoch: start.epoch,
            step: start.step,
            train_seconds: 0.0,
            images_seen: 0,
            curve: LikelihoodCurve::new(cfg.likelihood_curve.as_ref(), test),
            last_checkpoint,
            epoch_losses: Vec::new(),
            epoch_components: Vec::new(),
            warnings: Vec::new(),
            stopped_by_budget: false,
        })
    }

    /// Trains `model` through the remaining epochs, then fits, checkpoints and evaluates it.
    pub(super) fn train<M: Trainable>(mut self, model: M) -> Result<Trained<M>> {
        let mut model = model.fork(&self.train_device).train();
        self.notify_start();
        self.curve.record(&model, 0.0, self.step, self.device)?;
        for epoch in self.start_epoch..self.cfg.epochs {
            if self.cfg.budget_spent(self.step, self.train_seconds) {
                self.stopped_by_budget = true;
                break;
            }
            let (trained, images) = match self.epoch(model, epoch) {
                Ok(done) => done,
                Err(e) => {
                    self.notify_finished(true);
                    return Err(e);
                }
            };
            model = trained;
            if images == 0 || self.stopped_by_budget {
                break;
            }
        }
        self.notify_finished(false);
        if self.curve.last_steps() != Some(self.step) {
            self.curve
                .record(&model, self.train_seconds, self.step, self.device)?;
        }
        self.finish(model)
    }

    fn notify_start(&mut self) {
        let (cfg, n) = (self.cfg, self.train.len());
        let epochs_to_run = cfg.epochs.saturating_sub(self.start_epoch);
        let planned_images = match cfg.max_steps {
            Some(max) => (max.saturating_sub(self.step) * cfg.batch_size).min(epochs_to_run * n),
            None => epochs_to_run * n,
        };
        let plan = TrainingPlan {
            epochs: cfg.epochs,
            start_epoch: self.start_epoch,
            planned_images,
            time_budget_seconds: cfg.max_train_seconds.filter(|_| cfg.max_steps.is_none()),
        };
        for observer in &mut self.observers {
            observer.started(&plan);
        }
    }

    fn notify_finished(&mut self, failed: bool) {
        for observer in &mut self.observers {
            observer.finished(failed);
        }
    }

    /// One epoch: the shuffled batches, then the epoch's bookkeeping and checkpoint. Returns
    /// the model and the images it stepped over (0 when a budget ended training first).
    fn epoch<M: Trainable>(&mut self, mut model: M, epoch: usize) -> Result<(M, usize)> {
        let epoch_seed = mix(self.cfg.seed, epoch as u64);
        self.train_device.seed(epoch_seed);
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed));

        let mut means = RunningMeans::default();
        let (mut seconds, mut images) = (0.0, 0);
        for indices in order.chunks(self.cfg.batch_size) {
            if self.cfg.budget_spent(self.step, self.train_seconds) {
                self.stopped_by_budget = true;
                break;
            }
            let step_seconds;
            (model, step_seconds) = self.step(model, indices, epoch, &mut means)?;
            seconds += step_seconds;
            images += indices.len();
        }
        self.images_seen += images;
        if images == 0 {
            return Ok((model, 0));
        }
        let components = means.finish();
        self.end_epoch(&model, epoch, components, images, seconds)?;
        Ok((model, images))
    }

    /// One optimisation step on the images `indices`; returns the model and the step's seconds.
    fn step<M: Trainable>(
        &mut self,
        model: M,
        indices: &[usize],
        epoch: usize,
        means: &mut RunningMeans,
    ) -> Result<(M, f64)> {
        // Only the steps count as training time: curve points and checkpoints do not.
        let started = Instant::now();
        self.step += 1;
        let batch = self.train.batch(indices, epoch, &self.train_device)?;
        let (model, losses) = match self.training_step.step(model, &batch, self.step) {
            Ok(stepped) => stepped,
            Err(GenError::Diverged { step, loss, .. }) => {
                return Err(GenError::Diverged {
                    step,
                    epoch: epoch + 1,
                    loss,
                    last_checkpoint: self.last_checkpoint.clone(),
                });
            }
            Err(e) => return Err(e),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.train_seconds += seconds;
        let mut objectives = Vec::with_capacity(losses.len());
        for loss in losses {
            let name = self.objective_name(loss.player);
            means.add(&name, loss.objective);
            for (component, value) in loss.components {
                means.add(component, value);
            }
            objectives.push((name, loss.objective));
        }
        let record = StepRecord {
            epoch: epoch + 1,
            epochs: self.cfg.epochs,
            step: self.step,
            images: indices.len(),
            train_seconds: self.train_seconds,
            objectives: &objectives,
        };
        for observer in &mut self.observers {
            observer.stepped(&record);
        }
        if self.curve.due(self.train_seconds) {
            self.curve
                .record(&model, self.train_seconds, self.step, self.device)?;
        }
        Ok((model, seconds))
    }

    /// The name a player's objective is reported under.
    fn objective_name(&self, player: usize) -> String {
        if self.players.len() > 1 {
            format!("{}_loss", self.players[player].name)
        } else {
            "loss".to_string()
        }
    }

    /// Records the epoch's means and the model's warnings, tells the observers, and writes the
    /// checkpoint.
    fn end_epoch<M: Trainable>(
        &mut self,
        model: &M,
        epoch: usize,
        components: Vec<(String, f64)>,
        images: usize,
        seconds: f64,
    ) -> Result<()> {
        let first_loss = self.objective_name(0);
        self.epoch_losses.push(
            components
                .iter()
                .find(|(name, _)| *name == first_loss)
                .map_or(f64::NAN, |(_, v)| *v),
        );
        let warnings: Vec<String> = model
            .training_warnings(&components)
            .into_iter()
            .map(|warning| format!("epoch {}: {warning}", epoch + 1))
            .collect();
        let record = EpochRecord {
            epoch: epoch + 1,
            epochs: self.cfg.epochs,
            components: &components,
            images,
            seconds,
            warnings: &warnings,
        };
        for observer in &mut self.observers {
            observer.epoch_ended(&record);
        }
        self.warnings.extend(warnings);
        self.epoch_components.push(components);
        self.checkpoint_epoch(model, epoch)
    }

    /// The checkpoint after `epoch` (an epoch cut short by the budget counts as done: resuming
    /// starts the next), unless its weights are not finite.
    fn checkpoint_epoch<M: Trainable>(&mut self, model: &M, epoch: usize) -> Result<()> {
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Ok(());
        };
        // The last update can leave NaN weights behind a finite loss; such weights must never
        // replace the last good checkpoint.
        if !checkpoint::weights_are_finite(model)? {
            return Err(GenError::Diverged {
                step: self.step,
                epoch: epoch + 1,
                loss: f64::NAN,
                last_checkpoint: self.last_checkpoint.clone(),
            });
        }
        self.save(dir, model, epoch + 1)?;
        self.last_checkpoint = Some(dir.clone());
        Ok(())
    }

    fn save<M: Trainable>(&self, dir: &std::path::Path, model: &M, epoch: usize) -> Result<()> {
        let position = TrainingPosition {
            epoch,
            step: self.step,
            seed: self.cfg.seed,
        };
        checkpoint::save_checkpoint(dir, model, &self.training_step.named_optimizers(), position)
            .map(|_| ())
    }

    /// The post-training fit, its checkpoint, the evaluation of the test split and the report.
    fn finish<M: Trainable>(self, model: M) -> Result<Trained<M>> {
        let cfg = self.cfg;
        let epochs_done = self.start_epoch + self.epoch_components.len();
        let model = model.valid().fork(self.device);
        let fit_started = Instant::now();
        let model = model.fit_after_training(self.train, cfg.seed, self.device)?;
        let fit_seconds = fit_started.elapsed().as_secs_f64();
        if let Some(dir) = &cfg.checkpoint_dir {
            // The post-training fit (e.g. the AE's code distribution) belongs in the checkpoint.
            self.save(dir, &model, epochs_done)?;
        }
        let (test_loss, test_log_likelihood, likelihood_unavailable) = match self.test {
            Some(test) => {
                let loss = evaluate_loss(&model, test, cfg.eval_batch_size, self.device)?;
                let options = &cfg.eval_options;
                match evaluate_log_likelihood(
                    &model,
                    test,
                    options,
                    cfg.eval_batch_size,
                    self.device,
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
        let images_per_second = if self.train_seconds > 0.0 {
            self.images_seen as f64 / self.train_seconds
        } else {
            0.0
        };
        Ok(Trained {
            model,
            report: TrainingReport {
                epochs: epochs_done,
                steps: self.step,
                train_images: self.train.len(),
                train_seconds: self.train_seconds,
                fit_seconds,
                images_per_second,
                epoch_losses: self.epoch_losses,
                epoch_components: self.epoch_components,
                warnings: self.warnings,
                test_loss,
                test_log_likelihood,
                likelihood_unavailable,
                likelihood_curve: self.curve.points,
                stopped_by_budget: self.stopped_by_budget,
            },
        })
    }
}

//! One training run: the loop over epochs and batches, and what ends it.

use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use rand::rngs::StdRng;

use super::curve::LikelihoodCurve;
use super::epochs::{EpochLoop, EpochSummary, Learner, LoopReport, StepOutcome, StepPosition};
use super::observer::TrainingObserver;
use super::step::TrainingStep;
use super::validation::{BEST_DIR, Validation, ValidationOutcome, Validator};
use super::{Trained, TrainerConfig, TrainingReport, check_data};
use crate::batch::{ImageBatch, ImageDataset};
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

/// A generative model's run: the [`Learner`] the [`EpochLoop`] steps (every player due on
/// each batch), with the likelihood curve, the validation score and a checkpoint after each
/// epoch; then the post-training fit (of the best model, when the run validates) and the
/// evaluation of the test split.
pub(super) struct Run<'a, 'v, M> {
    cfg: &'a TrainerConfig,
    train: &'a dyn ImageDataset,
    test: Option<&'a dyn ImageDataset>,
    device: &'a Device,
    train_device: Device,
    players: Vec<Player>,
    training_step: TrainingStep,
    start: StepPosition,
    curve: LikelihoodCurve<'a>,
    last_checkpoint: Option<PathBuf>,
    validator: Option<Validator<'a, 'v, M>>,
}

impl<'a, 'v, M: Trainable> Run<'a, 'v, M> {
    /// Checks the data against the model and sets the run up.
    pub(super) fn new(
        cfg: &'a TrainerConfig,
        model: &M,
        start: Start,
        (train, test): (&'a dyn ImageDataset, Option<&'a dyn ImageDataset>),
        validation: Option<&'a mut (dyn Validation<M> + 'v)>,
        (device, replicas): (&'a Device, &[Device]),
    ) -> Result<Self> {
        check_data(model.image_shape(), train, test)?;
        let mut devices = vec![device.clone().autodiff()];
        for replica in replicas {
            let replica = replica.clone().autodiff();
            if devices.contains(&replica) {
                return Err(GenError::InvalidConfig(format!(
                    "data-parallel training needs distinct devices, and {replica:?} is given \
                     twice"
                )));
            }
            devices.push(replica);
        }
        let players = model.players();
        let training_step =
            TrainingStep::with_optimizers(players.clone(), start.optimizers, cfg.learning_rate)?
                .with_replicas(replicas);
        let last_checkpoint = cfg
            .checkpoint_dir
            .as_ref()
            .filter(|dir| dir.join(checkpoint::MANIFEST_FILE).exists())
            .cloned();
        let validator = validation
            .map(|validation| {
                Validator::new(
                    validation,
                    cfg.early_stopping,
                    cfg.checkpoint_dir.as_deref(),
                    start.epoch,
                )
            })
            .transpose()?;
        Ok(Self {
            cfg,
            train,
            test,
            device,
            train_device: device.clone().autodiff(),
            players,
            training_step,
            start: StepPosition {
                epoch: start.epoch,
                step: start.step,
            },
            curve: LikelihoodCurve::new(cfg.likelihood_curve.as_ref(), test),
            last_checkpoint,
            validator,
        })
    }

    /// Trains `model` through the remaining epochs, telling `observers`, then fits,
    /// checkpoints and evaluates it.
    pub(super) fn train(
        mut self,
        model: M,
        mut observers: Vec<MutexGuard<'_, dyn TrainingObserver + 'static>>,
    ) -> Result<Trained<M>> {
        let model = model.fork(&self.train_device).train();
        self.curve
            .record(&model, 0.0, self.start.step, self.device)?;
        let mut epochs = EpochLoop::new(self.cfg.loop_settings(), self.train, &self.train_device);
        for observer in &mut observers {
            epochs = epochs.with_observer(&mut **observer);
        }
        let start = self.start;
        let (model, done) = epochs.run(&mut self, model, start)?;
        if self.curve.last_steps() != Some(done.steps) {
            self.curve
                .record(&model, done.train_seconds, done.steps, self.device)?;
        }
        self.finish(model, done)
    }

    /// The name a player's objective is reported under.
    fn objective_name(&self, player: usize) -> String {
        if self.players.len() > 1 {
            format!("{}_loss", self.players[player].name)
        } else {
            "loss".to_string()
        }
    }

    fn save(&self, dir: &std::path::Path, model: &M, at: StepPosition) -> Result<()> {
        let position = TrainingPosition {
            epoch: at.epoch,
            step: at.step,
            seed: self.cfg.seed,
        };
        checkpoint::save_checkpoint(dir, model, &self.training_step.named_optimizers(), position)
            .map(|_| ())
    }

    /// The post-training fit, its checkpoint, the evaluation of the test split and the report.
    fn finish(self, model: M, done: LoopReport) -> Result<Trained<M>> {
        let cfg = self.cfg;
        let epochs_done = self.start.epoch + done.epoch_means.len();
        let mut model = model.valid().fork(self.device);
        // A validated run hands back (and fits, and tests) its best model, whose checkpoint
        // is the best folder's; the run folder keeps the last epoch's, to resume from.
        let mut best_at = None;
        if let Some(validator) = &self.validator
            && let Some(best) = validator.record().best(cfg.early_stopping.as_ref())
        {
            model = validator.best_model(model)?;
            best_at = Some(StepPosition {
                epoch: best.epoch,
                step: best.steps,
            });
        }
        let unfit_weights = match &cfg.checkpoint_dir {
            Some(_) => Some(checkpoint::weights_to_bytes(&model)?),
            None => None,
        };
        let fit_started = Instant::now();
        let model = model.fit_after_training(self.train, cfg.seed, self.device)?;
        let fit_seconds = fit_started.elapsed().as_secs_f64();
        if let Some(dir) = &cfg.checkpoint_dir {
            // The post-training fit (e.g. the AE's code distribution) belongs in the
            // checkpoint; a model without one was saved after its last epoch already.
            let fit_changed = unfit_weights != Some(checkpoint::weights_to_bytes(&model)?);
            match best_at {
                Some(at) if fit_changed => {
                    let position = TrainingPosition {
                        epoch: at.epoch,
                        step: at.step,
                        seed: cfg.seed,
                    };
                    checkpoint::save_checkpoint(&dir.join(BEST_DIR), &model, &[], position)?;
                }
                None if fit_changed || self.last_checkpoint.is_none() => {
                    let at = StepPosition {
                        epoch: epochs_done,
                        step: done.steps,
                    };
                    self.save(dir, &model, at)?;
                }
                _ => {}
            }
        }
        let (test_loss, test_log_likelihood, likelihood_unavailable) = match self.test {
            Some(test) => {
                let loss = evaluate_loss(&model, test, cfg.eval_batch_size, cfg.seed, self.device)?;
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
        let images_per_second = if done.train_seconds > 0.0 {
            done.images_seen as f64 / done.train_seconds
        } else {
            0.0
        };
        let first_loss = self.objective_name(0);
        let epoch_losses = done
            .epoch_means
            .iter()
            .map(|means| {
                means
                    .iter()
                    .find(|(name, _)| *name == first_loss)
                    .map_or(f64::NAN, |(_, v)| *v)
            })
            .collect();
        Ok(Trained {
            model,
            report: TrainingReport {
                epochs: epochs_done,
                steps: done.steps,
                train_images: self.train.len(),
                train_seconds: done.train_seconds,
                fit_seconds,
                images_per_second,
                epoch_losses,
                epoch_components: done.epoch_means,
                warnings: done.warnings,
                test_loss,
                test_log_likelihood,
                likelihood_unavailable,
                likelihood_curve: self.curve.points,
                stopped_by_budget: done.stopped_by_budget,
                stopped_early: done.stopped_early,
                best_epoch: best_at.map(|at| at.epoch),
                validation: self.validator.as_ref().map(|v| v.record().clone()),
            },
        })
    }
}

impl<M: Trainable> Learner<M> for Run<'_, '_, M> {
    fn start_epoch(&mut self, epoch: usize, epoch_seed: u64) {
        // The model's noise (dropout, a VAE's ε, a GAN's z) comes from the device's generator.
        self.train_device.seed(epoch_seed);
        for (i, replica) in self.training_step.replicas().iter().enumerate() {
            replica.seed(super::step::mix(epoch_seed, i as u64 + 1));
        }
        let learning_rate = self.cfg.learning_rate * self.cfg.schedule.factor(epoch);
        self.training_step.set_learning_rate(learning_rate);
    }

    fn step(
        &mut self,
        model: M,
        batch: &ImageBatch,
        at: StepPosition,
        _random: &mut StdRng,
    ) -> Result<(M, StepOutcome)> {
        let (model, losses) = self.training_step.step(model, batch, at.step)?;
        let mut outcome = StepOutcome::default();
        for loss in losses {
            let name = self.objective_name(loss.player);
            outcome.tallies.push((name.clone(), loss.objective, 1.0));
            for (component, value) in loss.components {
                outcome.tallies.push((component.to_string(), value, 1.0));
            }
            outcome.objectives.push((name, loss.objective));
        }
        Ok((model, outcome))
    }

    fn after_step(&mut self, model: &M, step: usize, train_seconds: f64) -> Result<()> {
        if self.curve.due(train_seconds) {
            self.curve.record(model, train_seconds, step, self.device)?;
        }
        Ok(())
    }

    fn epoch_warnings(&mut self, model: &M, means: &[(String, f64)]) -> Vec<String> {
        model.training_warnings(means)
    }

    fn validate(
        &mut self,
        model: &M,
        epoch: &EpochSummary<'_>,
    ) -> Result<Option<ValidationOutcome>> {
        let learning_rate = self.training_step.learning_rate();
        let Some(validator) = &mut self.validator else {
            return Ok(None);
        };
        validator
            .after_epoch(model, epoch, learning_rate, self.cfg.seed, self.device)
            .map(Some)
    }

    fn stopped(&self) -> bool {
        self.validator.as_ref().is_some_and(Validator::exhausted)
    }

    /// The checkpoint after the epoch (an epoch cut short by the budget counts as done:
    /// resuming starts the next), unless its weights are not finite.
    fn end_epoch(&mut self, model: &M, at: StepPosition) -> Result<()> {
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Ok(());
        };
        // The last update can leave NaN weights behind a finite loss; such weights must never
        // replace the last good checkpoint.
        if !checkpoint::weights_are_finite(model)? {
            return Err(GenError::Diverged {
                step: at.step,
                epoch: at.epoch + 1,
                loss: f64::NAN,
                last_checkpoint: self.last_checkpoint.clone(),
            });
        }
        let done = StepPosition {
            epoch: at.epoch + 1,
            step: at.step,
        };
        self.save(dir, model, done)?;
        self.last_checkpoint = Some(dir.clone());
        Ok(())
    }

    fn last_checkpoint(&self) -> Option<PathBuf> {
        self.last_checkpoint.clone()
    }
}

//! Training to convergence: a score on held-out images after every epoch, the best checkpoint
//! kept, early stopping once the score stops improving, and the learning-rate schedule.
//!
//! The held-out images are a validation split carved from the training digits; the test split
//! never chooses anything.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::epochs::EpochSummary;
use crate::batch::{ImageBatch, ImageDataset};
use crate::checkpoint::{self, TrainingPosition};
use crate::error::{GenError, Result};
use crate::evaluation::evaluate_log_likelihood;
use crate::fs::{read_json, write_json_atomic};
use crate::likelihood::LikelihoodOptions;
use crate::model::{GenerativeModel, Trainable};

/// The folder, inside a run's checkpoint folder, that holds the best checkpoint by validation
/// score (its weights and config; no optimiser state, so it is not resumed from).
pub const BEST_DIR: &str = "best";

/// The file, in a run's checkpoint folder, that records the validation scores so far (read
/// back by a resumed run).
pub const VALIDATION_FILE: &str = "validation.json";

/// How the learning rate changes from epoch to epoch: the base rate times
/// [`factor`](Self::factor).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LearningRateSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// `base · decay^epoch` (epoch counted from 0): PixelCNN++ and IWAE-style decay.
    Exponential {
        /// The factor per epoch, in (0, 1].
        decay_per_epoch: f64,
    },
}

impl LearningRateSchedule {
    /// The multiplier of the base learning rate in `epoch` (counted from 0).
    pub fn factor(&self, epoch: usize) -> f64 {
        match *self {
            Self::Constant => 1.0,
            Self::Exponential { decay_per_epoch } => {
                decay_per_epoch.powi(i32::try_from(epoch).unwrap_or(i32::MAX))
            }
        }
    }

    /// A name for logs and tables ("constant", "×0.95 per epoch").
    pub fn describe(&self) -> String {
        match *self {
            Self::Constant => "constant".to_string(),
            Self::Exponential { decay_per_epoch } => format!("×{decay_per_epoch} per epoch"),
        }
    }

    /// # Errors
    /// [`GenError::InvalidConfig`] for a decay outside (0, 1].
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Constant => Ok(()),
            Self::Exponential { decay_per_epoch }
                if decay_per_epoch > 0.0 && decay_per_epoch <= 1.0 =>
            {
                Ok(())
            }
            Self::Exponential { decay_per_epoch } => Err(GenError::InvalidConfig(format!(
                "a learning-rate decay per epoch must lie in (0, 1], got {decay_per_epoch}"
            ))),
        }
    }
}

/// When training on a validation score stops: after `patience` epochs in a row without a new
/// best score (lower by more than `min_improvement`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement that end training.
    pub patience: usize,
    /// The least decrease of the score that counts as an improvement.
    pub min_improvement: f64,
}

impl EarlyStopping {
    /// # Errors
    /// [`GenError::InvalidConfig`] for zero patience or a negative or non-finite threshold.
    pub fn validate(&self) -> Result<()> {
        if self.patience == 0 {
            return Err(GenError::InvalidConfig(
                "early stopping needs a patience of at least one epoch".into(),
            ));
        }
        if !(self.min_improvement.is_finite() && self.min_improvement >= 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "the least improvement must be a finite number ≥ 0, got {}",
                self.min_improvement
            )));
        }
        Ok(())
    }
}

/// A score of a model on held-out images, lower is better, computed after every epoch: what
/// the best checkpoint and early stopping follow.
pub trait Validation<M>: Send {
    /// What the score is, for logs and reports ("validation NLL (exact), nats per image").
    fn metric(&self) -> String;

    /// The score of `model` (in inference form, on `device`).
    ///
    /// # Errors
    /// As the evaluation; a score that is not finite is reported by the trainer as a
    /// divergence.
    fn score(&mut self, model: &M, device: &Device) -> Result<f64>;
}

/// The mean negative log-likelihood of a validation split, in nats per image (exact, ELBO or
/// IWAE-k as `options` and the model say).
pub struct LikelihoodValidation<'a> {
    data: &'a dyn ImageDataset,
    options: LikelihoodOptions,
    batch_size: usize,
    images: Option<usize>,
    kind: Option<String>,
}

impl<'a> LikelihoodValidation<'a> {
    /// The mean NLL of `data` with the estimator `options`, `batch_size` images at a time.
    pub fn new(data: &'a dyn ImageDataset, options: LikelihoodOptions, batch_size: usize) -> Self {
        Self {
            data,
            options,
            batch_size,
            images: None,
            kind: None,
        }
    }

    /// Scores only the first `images` images of the split (all of it when it has fewer): for
    /// a model whose likelihood costs many network passes per image (a diffusion model's
    /// bound), so that validating does not cost more than the epoch. The same images, and
    /// the same estimator noise, every epoch, so that scores differ by the model.
    pub fn with_images(mut self, images: usize) -> Self {
        self.images = Some(images);
        self
    }
}

/// The first `len` images of a data set (asked only for indices below `len`).
struct Head<'a> {
    data: &'a dyn ImageDataset,
    len: usize,
}

impl ImageDataset for Head<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn image_shape(&self) -> crate::ImageShape {
        self.data.image_shape()
    }

    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<ImageBatch> {
        self.data.batch(indices, epoch, device)
    }
}

impl<M: GenerativeModel> Validation<M> for LikelihoodValidation<'_> {
    fn metric(&self) -> String {
        match &self.kind {
            Some(kind) => format!("validation NLL ({kind}), nats per image"),
            None => "validation NLL, nats per image".to_string(),
        }
    }

    fn score(&mut self, model: &M, device: &Device) -> Result<f64> {
        let head = Head {
            data: self.data,
            len: self
                .images
                .map_or(self.data.len(), |n| n.min(self.data.len())),
        };
        let ll = evaluate_log_likelihood(model, &head, &self.options, self.batch_size, device)?;
        self.kind = Some(ll.kind.to_string());
        Ok(ll.mean_nll_nats())
    }
}

/// The validation score after one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    /// Epochs done (counted from 1).
    pub epoch: usize,
    /// Optimisation steps done.
    pub steps: usize,
    /// The score (lower is better).
    pub score: f64,
    /// The learning rate the epoch trained with.
    pub learning_rate: f64,
    /// Seconds of training steps up to the end of this epoch, over every sitting of a resumed
    /// run (evaluation excluded).
    #[serde(default)]
    pub train_seconds: f64,
    /// The epoch's mean training loss components, by name: with the scores, the run's log.
    #[serde(default)]
    pub training: Vec<(String, f64)>,
}

/// The validation scores of a run so far, as [`VALIDATION_FILE`] records them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// What the score is.
    pub metric: String,
    /// One point per epoch, in order.
    pub points: Vec<ValidationPoint>,
}

impl ValidationRecord {
    /// The point with the lowest score that counts under `stopping` (the first of equals; each
    /// later one must beat the best so far by more than the least improvement).
    pub fn best(&self, stopping: Option<&EarlyStopping>) -> Option<&ValidationPoint> {
        let margin = stopping.map_or(0.0, |s| s.min_improvement);
        let mut best: Option<&ValidationPoint> = None;
        for point in &self.points {
            if best.is_none_or(|b| point.score < b.score - margin) {
                best = Some(point);
            }
        }
        best
    }

    /// Epochs since the best one.
    pub fn epochs_since_best(&self, stopping: Option<&EarlyStopping>) -> usize {
        match (self.best(stopping), self.points.last()) {
            (Some(best), Some(last)) => last.epoch - best.epoch,
            _ => 0,
        }
    }

    /// Whether `stopping` ends training after these points.
    pub fn exhausted(&self, stopping: Option<&EarlyStopping>) -> bool {
        stopping.is_some_and(|s| self.epochs_since_best(Some(s)) >= s.patience)
    }

    /// The record in `dir`, or an empty one when the run has none yet; points after `epoch`
    /// (written by a run killed between its validation and its checkpoint) are dropped.
    ///
    /// # Errors
    /// [`GenError::CorruptCheckpoint`] when the file exists but does not read.
    pub fn read(dir: &Path, epoch: usize) -> Result<Self> {
        let path = dir.join(VALIDATION_FILE);
        if !path.exists() {
            return Ok(Self::default());
        }
        let mut record: Self = read_json(&path).map_err(|e| GenError::CorruptCheckpoint {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        record.points.retain(|p| p.epoch <= epoch);
        Ok(record)
    }
}

/// What a validated epoch tells the observers.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationOutcome {
    /// What the score is.
    pub metric: String,
    /// This epoch's point.
    pub point: ValidationPoint,
    /// The best point so far (this one when it improved).
    pub best: ValidationPoint,
    /// Whether this epoch set a new best.
    pub improved: bool,
    /// Whether early stopping ends training here.
    pub stop: bool,
}

/// The validation side of a run: scores each epoch, keeps the best checkpoint (on disk under
/// [`BEST_DIR`] and in memory) and decides when to stop.
pub(crate) struct Validator<'a, 'v, M> {
    validation: &'a mut (dyn Validation<M> + 'v),
    stopping: Option<EarlyStopping>,
    record: ValidationRecord,
    /// The best weights as burnpack bytes, to hand back the best model at the end.
    best_weights: Option<Vec<u8>>,
    dir: Option<PathBuf>,
    /// Training seconds of the sittings before this one.
    seconds_before: f64,
}

impl<'a, 'v, M: Trainable> Validator<'a, 'v, M> {
    /// A validator for a run checkpointed in `dir` that starts after `start_epoch` epochs: a
    /// resumed run reads the scores and the best weights back.
    pub(crate) fn new(
        validation: &'a mut (dyn Validation<M> + 'v),
        stopping: Option<EarlyStopping>,
        dir: Option<&Path>,
        start_epoch: usize,
    ) -> Result<Self> {
        let (record, best_weights) = match dir {
            Some(dir) if start_epoch > 0 => {
                let record = ValidationRecord::read(dir, start_epoch)?;
                let best_dir = dir.join(BEST_DIR);
                let best_weights = match record.best(stopping.as_ref()) {
                    Some(best) => {
                        let manifest = checkpoint::read_manifest(&best_dir)?;
                        // A run killed after writing a better checkpoint but before its
                        // epoch's own checkpoint holds weights from an epoch it will train
                        // again; that epoch replays the same way and writes them again.
                        (manifest.epoch == best.epoch)
                            .then(|| std::fs::read(best_dir.join(&manifest.weights)))
                            .transpose()
                            .map_err(|e| GenError::io(&best_dir, e))?
                    }
                    None => None,
                };
                (record, best_weights)
            }
            _ => (ValidationRecord::default(), None),
        };
        Ok(Self {
            validation,
            stopping,
            seconds_before: record.points.last().map_or(0.0, |p| p.train_seconds),
            record,
            best_weights,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// Whether early stopping has already ended the run (a resumed run that had stopped).
    pub(crate) fn exhausted(&self) -> bool {
        self.record.exhausted(self.stopping.as_ref())
    }

    /// Scores `model` after `epoch` (trained at `learning_rate`, in a run seeded `seed`); a new
    /// best is written to [`BEST_DIR`] and kept in memory.
    pub(crate) fn after_epoch(
        &mut self,
        model: &M,
        epoch: &EpochSummary<'_>,
        learning_rate: f64,
        seed: u64,
        device: &Device,
    ) -> Result<ValidationOutcome> {
        let position = TrainingPosition {
            epoch: epoch.at.epoch + 1,
            step: epoch.at.step,
            seed,
        };
        let inference = model.clone().valid().fork(device);
        let score = self.validation.score(&inference, device)?;
        if !score.is_finite() {
            return Err(GenError::Diverged {
                step: position.step,
                epoch: position.epoch,
                loss: score,
                last_checkpoint: self.dir.clone(),
            });
        }
        self.record.metric = self.validation.metric();
        let point = ValidationPoint {
            epoch: position.epoch,
            steps: position.step,
            score,
            learning_rate,
            train_seconds: self.seconds_before + epoch.train_seconds,
            training: epoch.means.to_vec(),
        };
        self.record.points.push(point.clone());
        let best = self
            .record
            .best(self.stopping.as_ref())
            .cloned()
            .expect("a point was just recorded");
        let improved = best == point;
        if improved {
            self.best_weights = Some(checkpoint::weights_to_bytes(&inference)?);
            if let Some(dir) = &self.dir {
                checkpoint::save_checkpoint(&dir.join(BEST_DIR), &inference, &[], position)?;
            }
        }
        if let Some(dir) = &self.dir {
            write_json_atomic(&dir.join(VALIDATION_FILE), &self.record)?;
        }
        Ok(ValidationOutcome {
            metric: self.record.metric.clone(),
            point,
            best,
            improved,
            stop: self.exhausted(),
        })
    }

    /// `model` with the best weights, when there are any (an inference-form model).
    pub(crate) fn best_model(&self, model: M) -> Result<M> {
        match &self.best_weights {
            Some(bytes) => checkpoint::weights_from_bytes(model, bytes.clone(), "best weights"),
            None => Ok(model),
        }
    }

    /// The record so far.
    pub(crate) fn record(&self) -> &ValidationRecord {
        &self.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scores: &[f64]) -> ValidationRecord {
        ValidationRecord {
            metric: "score".into(),
            points: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| ValidationPoint {
                    epoch: i + 1,
                    steps: 10 * (i + 1),
                    score,
                    learning_rate: 1e-3,
                    train_seconds: i as f64,
                    training: vec![("loss".into(), 100.0 - i as f64)],
                })
                .collect(),
        }
    }

    #[test]
    fn the_best_point_must_beat_the_last_best_by_the_least_improvement() {
        let stopping = EarlyStopping {
            patience: 2,
            min_improvement: 0.5,
        };
        let scores = record(&[10.0, 9.8, 9.6, 9.4, 9.3]);
        assert_eq!(scores.best(None).unwrap().epoch, 5);
        // 9.8 and 9.6 are within 0.5 of 10; 9.4 is not; 9.3 is within 0.5 of 9.4.
        assert_eq!(scores.best(Some(&stopping)).unwrap().epoch, 4);
        assert_eq!(scores.epochs_since_best(Some(&stopping)), 1);
        assert!(!scores.exhausted(Some(&stopping)));
        assert!(record(&[10.0, 9.8, 9.6]).exhausted(Some(&stopping)));
        assert!(!record(&[10.0, 9.8, 9.6]).exhausted(None));
        // The first of equal scores stays the best.
        assert_eq!(record(&[3.0, 3.0]).best(None).unwrap().epoch, 1);
        assert!(record(&[]).best(None).is_none());
        assert_eq!(record(&[]).epochs_since_best(Some(&stopping)), 0);
    }

    #[test]
    fn a_schedule_multiplies_the_base_rate_per_epoch() {
        assert_eq!(LearningRateSchedule::Constant.factor(7), 1.0);
        let decay = LearningRateSchedule::Exponential {
            decay_per_epoch: 0.9,
        };
        assert_eq!(decay.factor(0), 1.0);
        assert!((decay.factor(3) - 0.729).abs() < 1e-12);
        assert!(decay.validate().is_ok());
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let schedule = LearningRateSchedule::Exponential {
                decay_per_epoch: bad,
            };
            assert!(matches!(
                schedule.validate(),
                Err(GenError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn early_stopping_needs_patience_and_a_sane_threshold() {
        let ok = EarlyStopping {
            patience: 1,
            min_improvement: 0.0,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            EarlyStopping { patience: 0, ..ok },
            EarlyStopping {
                min_improvement: -1.0,
                ..ok
            },
            EarlyStopping {
                min_improvement: f64::INFINITY,
                ..ok
            },
        ] {
            assert!(matches!(bad.validate(), Err(GenError::InvalidConfig(_))));
        }
    }

    #[test]
    fn a_record_read_back_drops_epochs_its_checkpoint_never_reached() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ValidationRecord::read(dir.path(), 3).unwrap(),
            ValidationRecord::default()
        );
        write_json_atomic(&dir.path().join(VALIDATION_FILE), &record(&[3.0, 2.0, 1.0])).unwrap();
        assert_eq!(
            ValidationRecord::read(dir.path(), 2).unwrap(),
            record(&[3.0, 2.0])
        );
        std::fs::write(dir.path().join(VALIDATION_FILE), "{not json").unwrap();
        assert!(matches!(
            ValidationRecord::read(dir.path(), 2),
            Err(GenError::CorruptCheckpoint { .. })
        ));
    }
}

//! The loop over epochs and batches that every training in genmodels runs: the
//! [`Trainer`](super::Trainer)'s generative models and the sample-quality judge's classifier
//! (`genmodels-eval`). What a step does is the [`Learner`]'s; the order of the data, the step
//! count, the budgets, divergence, the epoch means and the observers are the loop's.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use super::observer::{EpochRecord, StepRecord, TrainingObserver, TrainingPlan};
use super::step::mix;
use super::validation::ValidationOutcome;
use crate::batch::{ImageBatch, ImageDataset};
use crate::error::{GenError, Result};

/// How an [`EpochLoop`] runs: epochs, batches, the seed of the data order, and budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopSettings {
    /// Total epochs (a run that starts later continues up to this many).
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seeds each epoch's order of the data and its host generator.
    pub seed: u64,
    /// Stop after this many steps in all (counting those before the start).
    pub max_steps: Option<usize>,
    /// Stop after the first step that takes the run's training time past this many seconds.
    pub max_train_seconds: Option<f64>,
}

impl LoopSettings {
    /// Whether a step or time budget is spent.
    pub(crate) fn budget_spent(&self, step: usize, train_seconds: f64) -> bool {
        self.max_steps.is_some_and(|m| step >= m)
            || self.max_train_seconds.is_some_and(|m| train_seconds >= m)
    }
}

/// Where a run stands: an epoch (counted from 0) and the steps taken so far, counted over the
/// whole run (a resume included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepPosition {
    /// The epoch, counted from 0.
    pub epoch: usize,
    /// Steps taken, this one included when it names a step.
    pub step: usize,
}

/// What one step measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    /// The objectives minimised, by name, as observers see them ([`StepRecord::objectives`]).
    pub objectives: Vec<(String, f64)>,
    /// Quantities averaged over the epoch, as `(name, total, count)`: the epoch's mean of a
    /// name is the sum of its totals over the sum of its counts (a batch mean counted once, or
    /// a sum over the batch's images counted per image).
    pub tallies: Vec<(String, f64, f64)>,
}

/// What an [`EpochLoop`] trains: a model of type `M`, one step per batch. Only
/// [`step`](Self::step) is required; the other hooks do nothing by default.
pub trait Learner<M> {
    /// Before the first batch of `epoch` (counted from 0); `epoch_seed` is the seed of the
    /// epoch's data order and host generator.
    fn start_epoch(&mut self, _epoch: usize, _epoch_seed: u64) {}

    /// One optimisation step on `batch` (built on the loop's device). `random` is the epoch's
    /// host generator, past the shuffle: the same for a seed, whatever runs beside.
    ///
    /// # Errors
    /// [`GenError::Diverged`] when an objective is not finite, before any update from it (the
    /// loop names the epoch and the last checkpoint); input errors as they occur.
    fn step(
        &mut self,
        model: M,
        batch: &ImageBatch,
        at: StepPosition,
        random: &mut StdRng,
    ) -> Result<(M, StepOutcome)>;

    /// After each step, once the observers know of it; `train_seconds` is the training time
    /// so far, which this hook's own time (a likelihood-curve point, say) does not count in.
    ///
    /// # Errors
    /// As the hook's work.
    fn after_step(&mut self, _model: &M, _step: usize, _train_seconds: f64) -> Result<()> {
        Ok(())
    }

    /// Warnings about an epoch from its means, told to the observers and kept in the report.
    fn epoch_warnings(&mut self, _model: &M, _means: &[(String, f64)]) -> Vec<String> {
        Vec::new()
    }

    /// After an epoch's means, before its observers: the model's score on held-out images,
    /// for a learner that validates. An outcome that says `stop` ends training after this
    /// epoch.
    ///
    /// # Errors
    /// As the evaluation.
    fn validate(
        &mut self,
        _model: &M,
        _epoch: &EpochSummary<'_>,
    ) -> Result<Option<ValidationOutcome>> {
        Ok(None)
    }

    /// Whether training has already ended before the next epoch (a resumed run whose early
    /// stopping had ended it).
    fn stopped(&self) -> bool {
        false
    }

    /// After an epoch and its observers (a checkpoint, say); `at` is the epoch and the steps
    /// taken.
    ///
    /// # Errors
    /// As the hook's work.
    fn end_epoch(&mut self, _model: &M, _at: StepPosition) -> Result<()> {
        Ok(())
    }

    /// The last checkpoint written, which a divergence error names.
    fn last_checkpoint(&self) -> Option<PathBuf> {
        None
    }
}

/// An epoch just trained, as [`Learner::validate`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochSummary<'a> {
    /// The epoch (counted from 0) and the steps taken.
    pub at: StepPosition,
    /// Training seconds of this run so far.
    pub train_seconds: f64,
    /// The epoch's mean loss components, by name.
    pub means: &'a [(String, f64)],
}

/// What an [`EpochLoop`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoopReport {
    /// Steps taken in all (counting those before the start).
    pub steps: usize,
    /// Seconds of this run's steps (hooks and observers excluded).
    pub train_seconds: f64,
    /// Images this run stepped over.
    pub images_seen: usize,
    /// Each epoch's means of the learner's tallies, by name, in first-seen order.
    pub epoch_means: Vec<Vec<(String, f64)>>,
    /// The learner's warnings, each prefixed with its epoch.
    pub warnings: Vec<String>,
    /// Whether a budget ended the run before the last epoch.
    pub stopped_by_budget: bool,
    /// Whether early stopping ended the run before the last epoch.
    pub stopped_early: bool,
}

/// The training loop: each epoch shuffles the data from `(seed, epoch)` and steps a
/// [`Learner`] over its batches, until the epochs or a budget run out, telling
/// [`TrainingObserver`]s as it goes; a non-finite objective stops it with the step named.
pub struct EpochLoop<'a> {
    settings: LoopSettings,
    data: &'a dyn ImageDataset,
    device: Device,
    observers: Vec<&'a mut dyn TrainingObserver>,
}

impl<'a> EpochLoop<'a> {
    /// A loop over `data`, whose batches it builds on `device` (an autodiff device, to train).
    pub fn new(settings: LoopSettings, data: &'a dyn ImageDataset, device: &Device) -> Self {
        Self {
            settings,
            data,
            device: device.clone(),
            observers: Vec::new(),
        }
    }

    /// Adds an observer.
    pub fn with_observer(mut self, observer: &'a mut dyn TrainingObserver) -> Self {
        self.observers.push(observer);
        self
    }

    /// Trains `model` from `start` (epoch 0 and step 0 for a fresh run) through the remaining
    /// epochs; returns it and what the loop did.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for an empty data set; [`GenError::Diverged`] naming the step
    /// and epoch; the learner's and the data set's errors. Observers are told the run failed.
    pub fn run<M, L: Learner<M>>(
        self,
        learner: &mut L,
        model: M,
        start: StepPosition,
    ) -> Result<(M, LoopReport)> {
        if self.data.is_empty() {
            return Err(GenError::EmptyData {
                context: "training set".into(),
            });
        }
        let mut state = LoopState {
            settings: self.settings,
            data: self.data,
            device: self.device,
            observers: self.observers,
            step: start.step,
            report: LoopReport::default(),
        };
        state.notify_start(start);
        let mut model = model;
        for epoch in start.epoch..state.settings.epochs {
            if learner.stopped() {
                state.report.stopped_early = true;
                break;
            }
            if state.budget_spent() {
                state.report.stopped_by_budget = true;
                break;
            }
            let images;
            (model, images) = match state.epoch(learner, model, epoch) {
                Ok(done) => done,
                Err(e) => {
                    state.notify_finished(true);
                    return Err(e);
                }
            };
            if images == 0 || state.report.stopped_by_budget || state.report.stopped_early {
                break;
            }
        }
        state.notify_finished(false);
        state.report.steps = state.step;
        Ok((model, state.report))
    }
}

/// A loop between steps.
struct LoopState<'a> {
    settings: LoopSettings,
    data: &'a dyn ImageDataset,
    device: Device,
    observers: Vec<&'a mut dyn TrainingObserver>,
    step: usize,
    report: LoopReport,
}

impl LoopState<'_> {
    fn budget_spent(&self) -> bool {
        self.settings
            .budget_spent(self.step, self.report.train_seconds)
    }

    fn notify_start(&mut self, start: StepPosition) {
        let (settings, n) = (&self.settings, self.data.len());
        let epochs_to_run = settings.epochs.saturating_sub(start.epoch);
        let planned_images = match settings.max_steps {
            Some(max) => {
                (max.saturating_sub(start.step) * settings.batch_size).min(epochs_to_run * n)
            }
            None => epochs_to_run * n,
        };
        let plan = TrainingPlan {
            epochs: settings.epochs,
            start_epoch: start.epoch,
            planned_images,
            time_budget_seconds: settings
                .max_train_seconds
                .filter(|_| settings.max_steps.is_none()),
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

    /// One epoch: the shuffled batches, then the epoch's means and the learner's end of epoch.
    /// Returns the model and the images it stepped over (0 when a budget ended training
    /// first).
    fn epoch<M, L: Learner<M>>(
        &mut self,
        learner: &mut L,
        mut model: M,
        epoch: usize,
    ) -> Result<(M, usize)> {
        let epoch_seed = mix(self.settings.seed, epoch as u64);
        learner.start_epoch(epoch, epoch_seed);
        let mut random = StdRng::seed_from_u64(epoch_seed);
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        order.shuffle(&mut random);

        let mut means = RunningMeans::default();
        let (mut seconds, mut images) = (0.0, 0);
        for indices in order.chunks(self.settings.batch_size) {
            if self.budget_spent() {
                self.report.stopped_by_budget = true;
                break;
            }
            let step_seconds;
            (model, step_seconds) =
                self.step(learner, model, indices, epoch, &mut random, &mut means)?;
            seconds += step_seconds;
            images += indices.len();
        }
        self.report.images_seen += images;
        if images == 0 {
            return Ok((model, 0));
        }
        let means = means.finish();
        let warnings: Vec<String> = learner
            .epoch_warnings(&model, &means)
            .into_iter()
            .map(|warning| format!("epoch {}: {warning}", epoch + 1))
            .collect();
        let at = StepPosition {
            epoch,
            step: self.step,
        };
        let summary = EpochSummary {
            at,
            train_seconds: self.report.train_seconds,
            means: &means,
        };
        let validation = learner.validate(&model, &summary)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            epochs: self.settings.epochs,
            components: &means,
            images,
            seconds,
            warnings: &warnings,
            validation: validation.as_ref(),
        };
        for observer in &mut self.observers {
            observer.epoch_ended(&record);
        }
        self.report.warnings.extend(warnings);
        self.report.epoch_means.push(means);
        learner.end_epoch(&model, at)?;
        if validation.is_some_and(|v| v.stop) {
            self.report.stopped_early = true;
        }
        Ok((model, images))
    }

    /// One step on the images `indices`; returns the model and the step's seconds.
    fn step<M, L: Learner<M>>(
        &mut self,
        learner: &mut L,
        model: M,
        indices: &[usize],
        epoch: usize,
        random: &mut StdRng,
        means: &mut RunningMeans,
    ) -> Result<(M, f64)> {
        // Only the steps count as training time: the hooks (curve points, checkpoints) do not.
        let started = Instant::now();
        self.step += 1;
        let batch = self.data.batch(indices, epoch, &self.device)?;
        let at = StepPosition {
            epoch,
            step: self.step,
        };
        let (model, outcome) = match learner.step(model, &batch, at, random) {
            Ok(stepped) => stepped,
            Err(GenError::Diverged { step, loss, .. }) => {
                return Err(GenError::Diverged {
                    step,
                    epoch: epoch + 1,
                    loss,
                    last_checkpoint: learner.last_checkpoint(),
                });
            }
            Err(e) => return Err(e),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.report.train_seconds += seconds;
        for (name, total, count) in &outcome.tallies {
            means.add(name, *total, *count);
        }
        let record = StepRecord {
            epoch: epoch + 1,
            epochs: self.settings.epochs,
            step: self.step,
            images: indices.len(),
            train_seconds: self.report.train_seconds,
            objectives: &outcome.objectives,
        };
        for observer in &mut self.observers {
            observer.stepped(&record);
        }
        learner.after_step(&model, self.step, self.report.train_seconds)?;
        Ok((model, seconds))
    }
}

/// Means of named tallies over an epoch, in first-seen order.
#[derive(Default)]
struct RunningMeans {
    sums: Vec<(String, f64, f64)>,
}

impl RunningMeans {
    fn add(&mut self, name: &str, total: f64, count: f64) {
        match self.sums.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, sum, counted)) => {
                *sum += total;
                *counted += count;
            }
            None => self.sums.push((name.to_string(), total, count)),
        }
    }

    fn finish(self) -> Vec<(String, f64)> {
        self.sums
            .into_iter()
            .map(|(name, sum, count)| (name, sum / count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ImageShape, InMemoryDataset, to_host};
    use rand::Rng;

    /// Ten 1×1×1 images whose pixel is their index / 10, so a batch tells which images it holds.
    fn indexed_images() -> InMemoryDataset {
        let pixels = (0..10).map(|i| i as f32 / 10.0).collect();
        InMemoryDataset::new(pixels, ImageShape::new(1, 1, 1), None).unwrap()
    }

    fn settings(epochs: usize, batch_size: usize) -> LoopSettings {
        LoopSettings {
            epochs,
            batch_size,
            seed: 7,
            max_steps: None,
            max_train_seconds: None,
        }
    }

    /// Records what it is shown; its "model" counts the steps it took. Reports the images'
    /// indices summed (a total over the batch) and a per-step objective equal to the step.
    #[derive(Default)]
    struct Recorder {
        batches: Vec<(StepPosition, Vec<usize>)>,
        draws: Vec<u64>,
        epochs_started: Vec<usize>,
        epochs_ended: Vec<StepPosition>,
        diverge_at: Option<usize>,
    }

    impl Learner<usize> for Recorder {
        fn start_epoch(&mut self, epoch: usize, _epoch_seed: u64) {
            self.epochs_started.push(epoch);
        }

        fn step(
            &mut self,
            steps: usize,
            batch: &ImageBatch,
            at: StepPosition,
            random: &mut StdRng,
        ) -> Result<(usize, StepOutcome)> {
            if self.diverge_at == Some(at.step) {
                return Err(GenError::Diverged {
                    step: at.step,
                    epoch: 0,
                    loss: f64::NAN,
                    last_checkpoint: None,
                });
            }
            let indices: Vec<usize> = to_host(batch.images().clone())
                .unwrap()
                .iter()
                .map(|v| (v * 10.0).round() as usize)
                .collect();
            self.draws.push(random.random());
            let total = indices.iter().sum::<usize>() as f64;
            let count = indices.len() as f64;
            self.batches.push((at, indices));
            let outcome = StepOutcome {
                objectives: vec![("loss".into(), at.step as f64)],
                tallies: vec![
                    ("index".into(), total, count),
                    ("step".into(), at.step as f64, 1.0),
                ],
            };
            Ok((steps + 1, outcome))
        }

        fn end_epoch(&mut self, _model: &usize, at: StepPosition) -> Result<()> {
            self.epochs_ended.push(at);
            Ok(())
        }

        fn last_checkpoint(&self) -> Option<PathBuf> {
            Some(PathBuf::from("last-good"))
        }
    }

    #[test]
    fn every_epoch_steps_over_each_image_once_in_a_seeded_order_and_averages_its_tallies() {
        let data = indexed_images();
        let device = Device::flex();
        let mut learner = Recorder::default();
        let (steps, report) = EpochLoop::new(settings(3, 4), &data, &device)
            .run(&mut learner, 0, StepPosition::default())
            .unwrap();
        assert_eq!((steps, report.steps, report.images_seen), (9, 9, 30));
        assert_eq!(learner.epochs_started, [0, 1, 2]);
        let ended: Vec<_> = learner
            .epochs_ended
            .iter()
            .map(|p| (p.epoch, p.step))
            .collect();
        assert_eq!(ended, [(0, 3), (1, 6), (2, 9)]);
        let mut orders = Vec::new();
        for epoch in 0..3 {
            let batches: Vec<_> = learner
                .batches
                .iter()
                .filter(|(at, _)| at.epoch == epoch)
                .collect();
            assert_eq!(
                batches.iter().map(|(_, b)| b.len()).collect::<Vec<_>>(),
                [4, 4, 2]
            );
            let order: Vec<usize> = batches.iter().flat_map(|(_, b)| b.clone()).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "epoch {epoch}");
            orders.push(order);
        }
        assert!(
            orders[0] != orders[1] || orders[1] != orders[2],
            "epochs are shuffled anew"
        );
        // The mean index over images is 4.5 however the batches fall; the step is a mean of
        // per-step values counted once each.
        for (epoch, means) in report.epoch_means.iter().enumerate() {
            assert_eq!(means[0], ("index".to_string(), 4.5));
            let first = (3 * epoch + 1) as f64;
            assert_eq!(means[1], ("step".to_string(), first + 1.0));
        }
        // The same seed gives the same batches and the same host draws.
        let mut again = Recorder::default();
        EpochLoop::new(settings(3, 4), &data, &device)
            .run(&mut again, 0, StepPosition::default())
            .unwrap();
        assert_eq!(again.batches, learner.batches);
        assert_eq!(again.draws, learner.draws);
    }

    #[test]
    fn a_later_start_continues_the_path_of_a_run_that_never_stopped() {
        let data = indexed_images();
        let device = Device::flex();
        let mut whole = Recorder::default();
        EpochLoop::new(settings(3, 4), &data, &device)
            .run(&mut whole, 0, StepPosition::default())
            .unwrap();
        let mut resumed = Recorder::default();
        let start = StepPosition { epoch: 1, step: 3 };
        let (_, report) = EpochLoop::new(settings(3, 4), &data, &device)
            .run(&mut resumed, 0, start)
            .unwrap();
        assert_eq!(report.steps, 9);
        assert_eq!(resumed.batches, whole.batches[3..]);
        assert_eq!(resumed.draws, whole.draws[3..]);
    }

    #[test]
    fn a_step_budget_stops_the_run_and_observers_see_every_step() {
        #[derive(Default)]
        struct Seen {
            planned: usize,
            steps: Vec<(usize, usize, f64)>,
            epochs: Vec<usize>,
            finished: Vec<bool>,
        }
        impl TrainingObserver for Seen {
            fn started(&mut self, plan: &TrainingPlan) {
                self.planned = plan.planned_images;
            }
            fn stepped(&mut self, step: &StepRecord<'_>) {
                self.steps
                    .push((step.epoch, step.step, step.objectives[0].1));
            }
            fn epoch_ended(&mut self, epoch: &EpochRecord<'_>) {
                self.epochs.push(epoch.images);
            }
            fn finished(&mut self, failed: bool) {
                self.finished.push(failed);
            }
        }
        let data = indexed_images();
        let device = Device::flex();
        let mut seen = Seen::default();
        let budget = LoopSettings {
            max_steps: Some(4),
            ..settings(5, 4)
        };
        let (steps, report) = EpochLoop::new(budget, &data, &device)
            .with_observer(&mut seen)
            .run(&mut Recorder::default(), 0, StepPosition::default())
            .unwrap();
        assert_eq!((steps, report.steps), (4, 4));
        assert!(report.stopped_by_budget);
        assert_eq!(seen.planned, 16);
        let expected: Vec<(usize, usize, f64)> =
            vec![(1, 1, 1.0), (1, 2, 2.0), (1, 3, 3.0), (2, 4, 4.0)];
        assert_eq!(seen.steps, expected);
        // The cut-short second epoch still ends, with its one batch.
        assert_eq!(seen.epochs, [10, 4]);
        assert_eq!(seen.finished, [false]);
    }

    #[test]
    fn divergence_names_the_step_the_epoch_and_the_last_checkpoint() {
        let data = indexed_images();
        let device = Device::flex();
        let mut learner = Recorder {
            diverge_at: Some(5),
            ..Recorder::default()
        };
        let err = EpochLoop::new(settings(3, 4), &data, &device)
            .run(&mut learner, 0, StepPosition::default())
            .unwrap_err();
        match err {
            GenError::Diverged {
                step,
                epoch,
                last_checkpoint,
                ..
            } => {
                assert_eq!((step, epoch), (5, 2));
                assert_eq!(last_checkpoint, Some(PathBuf::from("last-good")));
            }
            other => panic!("expected divergence, got {other}"),
        }
        assert_eq!(
            learner.epochs_ended.len(),
            1,
            "no epoch ends after the divergence"
        );
        let empty = InMemoryDataset::new(Vec::new(), ImageShape::new(1, 1, 1), None).unwrap();
        assert!(matches!(
            EpochLoop::new(settings(1, 4), &empty, &device).run(
                &mut Recorder::default(),
                0,
                StepPosition::default()
            ),
            Err(GenError::EmptyData { .. })
        ));
    }
}

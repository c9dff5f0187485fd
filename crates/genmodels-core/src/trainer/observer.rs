//! What a training run tells its observers, in the manner of burn-train's event processors: the
//! loop trains, observers show and record (`genmodels-report`'s progress bars and epoch lines,
//! a caller's own metrics log). The trainer's own observers, checkpoints and the likelihood
//! curve, are set in its [`TrainerConfig`](super::TrainerConfig) because they feed its report
//! and its resume.

use super::validation::ValidationOutcome;

/// What a run is about to do.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPlan {
    /// Epochs in all (a resumed run continues up to them).
    pub epochs: usize,
    /// The first epoch this run trains (0-based; later than 0 after a resume).
    pub start_epoch: usize,
    /// Images this run will step over, if a step or epoch count bounds it.
    pub planned_images: usize,
    /// The training seconds this run may take, when only a time budget bounds it (the image
    /// count is then unknown).
    pub time_budget_seconds: Option<f64>,
}

/// One optimisation step, done.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord<'a> {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Steps so far, counted over the whole run (a resume included).
    pub step: usize,
    /// Images in the batch.
    pub images: usize,
    /// Training seconds of this run so far.
    pub train_seconds: f64,
    /// The objective of every player that stepped, by name (`loss` for a one-player model,
    /// `<player>_loss` otherwise).
    pub objectives: &'a [(String, f64)],
}

/// One epoch, done.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord<'a> {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Its mean loss components of every player, by name.
    pub components: &'a [(String, f64)],
    /// Images it stepped over.
    pub images: usize,
    /// Its training seconds.
    pub seconds: f64,
    /// The model's warnings about it ([`Trainable::training_warnings`](crate::Trainable),
    /// prefixed with the epoch).
    pub warnings: &'a [String],
    /// Its score on held-out images, when the run validates.
    pub validation: Option<&'a ValidationOutcome>,
}

/// Something that watches a training run. Every method does nothing by default.
pub trait TrainingObserver: Send {
    /// Before the first step.
    fn started(&mut self, _plan: &TrainingPlan) {}

    /// After every optimisation step.
    fn stepped(&mut self, _step: &StepRecord<'_>) {}

    /// After every epoch (also one a budget cut short).
    fn epoch_ended(&mut self, _epoch: &EpochRecord<'_>) {}

    /// After the last step (`failed: false`; the post-training fit and the evaluation follow),
    /// or when training stops with an error (`failed: true`).
    fn finished(&mut self, _failed: bool) {}
}

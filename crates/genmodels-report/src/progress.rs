//! Training progress for people: a bar with rate and ETA on a terminal, a line per epoch
//! elsewhere, and the model's warnings either way.

use genmodels_core::progress::{bar, budget_bar};
use genmodels_core::{EpochRecord, StepRecord, TrainingObserver, TrainingPlan};
use indicatif::ProgressBar;

/// A [`TrainingObserver`] that shows a run: on a terminal a progress bar over its images (or
/// over the seconds of a time budget) with the step's losses; elsewhere (logs, CI) one line
/// per epoch with its mean losses and throughput. Warnings are printed in both cases.
///
/// ```no_run
/// # use genmodels_core::{Trainer, TrainerConfig};
/// let trainer = Trainer::new(TrainerConfig::default())
///     .with_observer(genmodels_report::TrainingProgress::new());
/// ```
#[derive(Debug, Default)]
pub struct TrainingProgress {
    bar: Option<ProgressBar>,
    /// Whether the bar counts seconds of a time budget rather than images.
    counts_seconds: bool,
}

impl TrainingProgress {
    /// An observer with nothing drawn yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prints `line` on stderr without tearing the bar.
    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl TrainingObserver for TrainingProgress {
    fn started(&mut self, plan: &TrainingPlan) {
        self.counts_seconds = plan.time_budget_seconds.is_some();
        self.bar = Some(match plan.time_budget_seconds {
            Some(seconds) => budget_bar(seconds.ceil() as u64, "training"),
            None => bar(plan.planned_images as u64, "training", "img"),
        });
    }

    fn stepped(&mut self, step: &StepRecord<'_>) {
        let Some(bar) = &self.bar else { return };
        let mut message = format!("epoch {}/{}", step.epoch, step.epochs);
        for (name, value) in step.objectives {
            message.push_str(&format!(" · {name} {value:.3}"));
        }
        if self.counts_seconds {
            bar.set_position(step.train_seconds as u64);
        } else {
            bar.inc(step.images as u64);
        }
        bar.set_message(message);
    }

    fn epoch_ended(&mut self, epoch: &EpochRecord<'_>) {
        // A hidden bar (no terminal, or GENMODELS_NO_PROGRESS) gets a line per epoch instead.
        if self.bar.as_ref().is_none_or(ProgressBar::is_hidden) {
            let figures: Vec<String> = epoch
                .components
                .iter()
                .map(|(name, value)| format!("{name} {value:.4}"))
                .collect();
            eprintln!(
                "epoch {}/{}: {}, {:.0} img/s",
                epoch.epoch,
                epoch.epochs,
                figures.join(", "),
                epoch.images as f64 / epoch.seconds
            );
        }
        for warning in epoch.warnings {
            self.print(&format!("warning: {warning}"));
        }
    }

    fn finished(&mut self, failed: bool) {
        if let Some(bar) = self.bar.take() {
            if failed {
                bar.abandon();
            } else {
                bar.finish_and_clear();
            }
        }
    }
}

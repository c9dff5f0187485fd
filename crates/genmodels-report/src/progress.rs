//! Progress for people: bars with rate and ETA on a terminal ([`TerminalProgress`] for the
//! library's long work, [`TrainingProgress`] for training), a line per epoch elsewhere, and
//! the model's warnings either way.

use std::sync::OnceLock;

use genmodels_core::progress::{ProgressDisplay, ProgressTask, ProgressUnit};
use genmodels_core::{EpochRecord, StepRecord, TrainingObserver, TrainingPlan};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Draws the library's [`Progress`](genmodels_core::progress::Progress) as bars on stderr,
/// with rate and ETA. Install it once at the start of a program:
///
/// ```
/// genmodels_report::TerminalProgress::install();
/// ```
///
/// Bars draw only when stderr is a terminal (indicatif's rule), so logs and CI stay clean; set
/// `GENMODELS_NO_PROGRESS=1` to hide them on a terminal too. Bars that are alive at the same
/// time (a comparison's overall bar, the trainer's, an evaluation's) stack as lines instead
/// of overwriting each other.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalProgress;

impl TerminalProgress {
    /// Installs the terminal bars as the display of this process's progress; `false` when
    /// another display was installed first.
    pub fn install() -> bool {
        genmodels_core::progress::show_progress_with(Self)
    }
}

impl ProgressDisplay for TerminalProgress {
    fn start(&self, len: u64, name: &str, unit: ProgressUnit) -> Box<dyn ProgressTask> {
        Box::new(TerminalTask(match unit {
            ProgressUnit::Count(unit) => bar(len, name, unit),
            ProgressUnit::BudgetSeconds => budget_bar(len, name),
        }))
    }
}

/// One bar of [`TerminalProgress`].
struct TerminalTask(ProgressBar);

impl ProgressTask for TerminalTask {
    fn advance(&self, units: u64) {
        self.0.inc(units);
    }

    fn set_position(&self, units: u64) {
        self.0.set_position(units);
    }

    fn set_message(&self, message: String) {
        self.0.set_message(message);
    }

    fn is_drawn(&self) -> bool {
        !self.0.is_hidden()
    }

    fn print_line(&self, line: &str) {
        self.0.suspend(|| eprintln!("{line}"));
    }

    fn finish(&self, failed: bool) {
        if failed {
            self.0.abandon();
        } else {
            self.0.finish_and_clear();
        }
    }
}

/// A progress bar on stderr over `len` units, showing rate and ETA.
fn bar(len: u64, prefix: &str, unit: &str) -> ProgressBar {
    let bar = screen().add(ProgressBar::new(len));
    let template = format!(
        "{{prefix:>14}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} · {{rate}} · ETA {{eta}} {{msg}}"
    );
    let unit = unit.to_string();
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the template is valid")
            .with_key(
                "rate",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} {unit}/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// A progress bar on stderr over a time budget of `seconds`: position and ETA in seconds of
/// the budget, for work that stops when its time is up rather than after a count.
fn budget_bar(seconds: u64, prefix: &str) -> ProgressBar {
    let bar = screen().add(ProgressBar::new(seconds));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>14} [{bar:30.cyan/blue}] {pos}/{len} s of its budget · ETA {eta} {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// The one set of lines all bars are drawn on.
fn screen() -> &'static MultiProgress {
    static SCREEN: OnceLock<MultiProgress> = OnceLock::new();
    SCREEN.get_or_init(|| MultiProgress::with_draw_target(draw_target()))
}

fn draw_target() -> ProgressDrawTarget {
    if std::env::var_os("GENMODELS_NO_PROGRESS").is_some() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

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
        if let Some(validation) = epoch.validation {
            let verdict = if validation.improved {
                "new best".to_string()
            } else {
                format!(
                    "best {:.4} at epoch {}",
                    validation.best.score, validation.best.epoch
                )
            };
            let stop = if validation.stop {
                ", no improvement for long enough: stopping"
            } else {
                ""
            };
            self.print(&format!(
                "epoch {}: {} {:.4} ({verdict}){stop}",
                epoch.epoch, validation.metric, validation.point.score
            ));
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

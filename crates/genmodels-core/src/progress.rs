//! Progress of long library work (evaluation, EM, the Parzen estimate, the judge's
//! training), told to whoever shows it.
//!
//! The library draws nothing itself: a program installs a [`ProgressDisplay`] once with
//! [`show_progress_with`] (the genmodels binaries install `genmodels-report`'s terminal bars,
//! with rate and ETA), and until one is installed every [`Progress`] is silent. Training
//! progress goes the same way through the trainer's observers instead.

use std::sync::OnceLock;

/// What a [`Progress`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Items of work, named (e.g. `"images"`).
    Count(&'static str),
    /// Seconds of a time budget, for work that stops when its time is up.
    BudgetSeconds,
}

/// Shows progress: the genmodels binaries install `genmodels-report`'s terminal bars.
pub trait ProgressDisplay: Send + Sync + 'static {
    /// Starts showing a piece of work of `len` units, under the name `name`.
    fn start(&self, len: u64, name: &str, unit: ProgressUnit) -> Box<dyn ProgressTask>;
}

/// One piece of work being shown.
pub trait ProgressTask: Send + Sync {
    /// Moves the position on by `units`.
    fn advance(&self, units: u64);
    /// Sets the position to `units`.
    fn set_position(&self, units: u64);
    /// Shows `message` beside the position.
    fn set_message(&self, message: String);
    /// Whether the display draws it live (a terminal); when not, callers print a line now and
    /// then instead.
    fn is_drawn(&self) -> bool;
    /// Prints `line` without tearing what is drawn.
    fn print_line(&self, line: &str);
    /// Ends the work: cleared when it completed, left on screen when it `failed`.
    fn finish(&self, failed: bool);
}

static DISPLAY: OnceLock<Box<dyn ProgressDisplay>> = OnceLock::new();

/// Installs the display every [`Progress`] of this process reports to. Returns `false`, and
/// changes nothing, when one was installed before.
pub fn show_progress_with(display: impl ProgressDisplay) -> bool {
    DISPLAY.set(Box::new(display)).is_ok()
}

/// A piece of long work as it goes: silent unless a display is installed
/// ([`show_progress_with`]). Finishes as failed when dropped unfinished (an error left early).
pub struct Progress {
    task: Option<Box<dyn ProgressTask>>,
}

impl Progress {
    /// Starts reporting a piece of work of `len` units.
    pub fn start(len: u64, name: &str, unit: ProgressUnit) -> Self {
        Self {
            task: DISPLAY.get().map(|display| display.start(len, name, unit)),
        }
    }

    /// Work of `len` items called `unit` (e.g. `"images"`).
    pub fn count(len: u64, name: &str, unit: &'static str) -> Self {
        Self::start(len, name, ProgressUnit::Count(unit))
    }

    /// Progress that is never shown.
    pub fn silent() -> Self {
        Self { task: None }
    }

    /// Moves the position on by `units`.
    pub fn advance(&self, units: u64) {
        if let Some(task) = &self.task {
            task.advance(units);
        }
    }

    /// Sets the position to `units`.
    pub fn set_position(&self, units: u64) {
        if let Some(task) = &self.task {
            task.set_position(units);
        }
    }

    /// Shows `message` beside the position (built only when something shows it).
    pub fn set_message(&self, message: impl FnOnce() -> String) {
        if let Some(task) = &self.task {
            task.set_message(message());
        }
    }

    /// Whether it is drawn live; when it is not, report now and then by a line of
    /// [`print_line`](Self::print_line) instead.
    pub fn is_drawn(&self) -> bool {
        self.task.as_ref().is_some_and(|task| task.is_drawn())
    }

    /// Whether anything shows it at all.
    pub fn is_shown(&self) -> bool {
        self.task.is_some()
    }

    /// Prints `line` on the display (stderr), without tearing what is drawn; nothing when
    /// silent.
    pub fn print_line(&self, line: &str) {
        if let Some(task) = &self.task {
            task.print_line(line);
        }
    }

    /// Ends the work as completed.
    pub fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.finish(false);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.finish(true);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("shown", &self.is_shown())
            .finish()
    }
}

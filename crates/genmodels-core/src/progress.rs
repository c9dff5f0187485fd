//! Progress bars with rate and ETA for long work.

use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress bar on stderr over `len` units, showing rate and ETA.
///
/// It draws only when stderr is a terminal (indicatif's rule), so logs and CI stay clean; set
/// `GENMODELS_NO_PROGRESS=1` to hide it on a terminal too. Bars that are alive at the same
/// time (a comparison's overall bar, the trainer's, an evaluation's) stack as lines instead
/// of overwriting each other; print through [`ProgressBar::suspend`] while one is drawn.
pub fn bar(len: u64, prefix: &str, unit: &str) -> ProgressBar {
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
pub fn budget_bar(seconds: u64, prefix: &str) -> ProgressBar {
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

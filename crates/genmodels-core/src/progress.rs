//! Progress bars with rate and ETA for long work.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress bar on stderr over `len` units, showing rate and ETA.
///
/// It draws only when stderr is a terminal (indicatif's rule), so logs and CI stay clean; set
/// `GENMODELS_NO_PROGRESS=1` to hide it on a terminal too.
pub fn bar(len: u64, prefix: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), draw_target());
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

fn draw_target() -> ProgressDrawTarget {
    if std::env::var_os("GENMODELS_NO_PROGRESS").is_some() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

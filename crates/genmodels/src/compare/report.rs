//! The comparison's files: `results.md`, `results.json`, `results.csv`, `samples.png` and
//! `nll_vs_time.png`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use genmodels_core::Result;
use genmodels_core::burn::tensor::Tensor;
use genmodels_core::fs::{write_atomic, write_json_atomic};
use genmodels_report::image_output::{GridLayout, save_labelled_panels};
use genmodels_report::plot::LineChart;

use super::{ComparisonResults, ComparisonRow, Figure, NllFigure, SamplingTime};

/// Panels per row of `samples.png`.
const PANELS_PER_ROW: usize = 5;

/// Writes every output file into `out`.
pub(crate) fn write_all(
    out: &Path,
    results: &ComparisonResults,
    panels: Vec<(String, Tensor<4>)>,
) -> Result<()> {
    write_json_atomic(&out.join("results.json"), results)?;
    write_atomic(&out.join("results.csv"), csv(results).as_bytes())?;
    write_atomic(&out.join("results.md"), markdown(results).as_bytes())?;
    let layout = GridLayout {
        columns: 8,
        padding: 1,
        scale: 1,
    };
    save_labelled_panels(&out.join("samples.png"), panels, layout, PANELS_PER_ROW)?;
    for (grey_track, file) in [(false, NLL_CHART), (true, GREY_CHART)] {
        if results.curves.iter().any(|c| c.grey_track == grey_track) {
            nll_chart(results, grey_track).save_png(out.join(file))?;
        }
    }
    Ok(())
}

/// The binarised track's NLL curves.
const NLL_CHART: &str = "nll_vs_time.png";

/// The grey track's NLL curves: apart, since its nats are on another scale.
const GREY_CHART: &str = "nll_vs_time_grey.png";

/// Test NLL against training seconds, one line per likelihood model of one track.
fn nll_chart(results: &ComparisonResults, grey_track: bool) -> LineChart {
    let mut chart = LineChart::new(format!(
        "test NLL during training, {} (first {} test images; VAE: ELBO; {} budget)",
        if grey_track {
            "8-bit grey digits"
        } else {
            "binarised digits"
        },
        results.plan.curve_test_images,
        results.budget
    ))
    .with_x_label("training seconds")
    .with_size(1000, 560);
    let curves: Vec<_> = results
        .curves
        .iter()
        .filter(|c| c.grey_track == grey_track)
        .collect();
    // A log scale keeps the converged models' few nats apart, which a linear axis up to the
    // untrained models' hundreds flattens into one line; it needs every NLL positive (a
    // discrete likelihood's always is).
    let positive = curves
        .iter()
        .all(|c| c.points.iter().all(|p| p.nll_nats > 0.0));
    chart = chart.with_log_y(positive).with_y_label(if positive {
        "test NLL, nats per image (log)"
    } else {
        "test NLL (nats per image)"
    });
    for curve in curves {
        chart = chart.with_series(
            curve.label.clone(),
            curve.points.iter().map(|p| (p.train_seconds, p.nll_nats)),
        );
    }
    chart
}

fn nll_cell(nll: &Figure<NllFigure>) -> [String; 3] {
    match nll {
        Figure::Value(v) => [
            format!("{:.2} ± {:.2}", v.nats, v.standard_error_nats),
            format!("{:.4}", v.bits_per_dim),
            v.kind.clone(),
        ],
        Figure::NotAvailable(reason) => ["n/a".into(), "n/a".into(), format!("n/a: {reason}")],
    }
}

fn sampling_cell(sampling: &SamplingTime) -> String {
    format!(
        "{} ({}, batch {})",
        seconds(sampling.seconds_per_image),
        sampling.sampler,
        sampling.batch
    )
}

fn slow_cell(slow: &Figure<SamplingTime>) -> String {
    match slow {
        Figure::Value(s) => format!(
            "{} ({}, batch {})",
            seconds(s.seconds_per_image),
            s.sampler,
            s.batch
        ),
        Figure::NotAvailable(reason) => format!("n/a: {reason}"),
    }
}

/// A duration with a unit that keeps it readable.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn throughput_cell(throughput: &Figure<f64>) -> String {
    match throughput {
        Figure::Value(v) => format!("{v:.0}"),
        Figure::NotAvailable(reason) => format!("n/a: {reason}"),
    }
}

fn markdown(results: &ComparisonResults) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Explicit, approximate and implicit density models compared\n"
    );
    let _ = writeln!(
        md,
        "Written by `{command}` on {date} ({machine}, backend `{backend}`). Budget `{budget}`, \
         models {source}; the whole run took {minutes:.1} minutes. Data: {data} ({train} \
         training images, {validation} held out for validation, {test} test images).\n",
        source = results.source,
        validation = results.validation_images,
        command = results.command,
        date = results.date,
        machine = results.machine,
        backend = results.backend,
        budget = results.budget,
        minutes = results.total_seconds / 60.0,
        data = results.data,
        train = results.train_images,
        test = results.test_images
    );
    if results.plan.recipes {
        let _ = writeln!(
            md,
            "Training every model to convergence took {:.1} hours in all: the sum of the models' \
             training seconds (gradient steps and fits, every sitting of a resumed run; not \
             evaluation).\n",
            results.train_seconds / 3600.0
        );
    }
    let (grey, binary): (Vec<&ComparisonRow>, Vec<&ComparisonRow>) =
        results.rows.iter().partition(|r| r.grey_track);
    if !binary.is_empty() {
        table(&mut md, &binary);
        let _ = writeln!(
            md,
            "\nFloors are real training images scored like samples against the same test images: \
         binary digits for the models of binary pixels, grey digits for the GANs and the AE. \
         NLLs of binary models are discrete (nats per binarised test image); the GANs' Parzen \
         estimates are densities of grey images in [0, 1]^784, a different scale: compare them \
         only with each other. ± is one standard error over test images. Sharpness is the \
         samples' Laplacian energy over real test digits' (1.00: as sharp as real digits, \
         lower: blurrier); in brackets, that of the VAE's decoder means E[x|z] against grey \
         digits, what \"blurry VAE samples\" refers to. Epochs: trained, and in brackets the \
         one kept (best on the validation split) for a recipe's run."
        );
    }
    if !grey.is_empty() {
        let _ = writeln!(md, "\n## The 8-bit grey track\n");
        table(&mut md, &grey);
        let _ = writeln!(
            md,
            "\nThe same digits as 256 grey levels, for the models with a likelihood on that \
             grid: a 256-way softmax per pixel (PixelCNN), discretized Gaussians (the VAE's \
             decoder, the mixture's components; Ho et al. 2020's bins). Every NLL here is a \
             discrete probability of the 8-bit test digits, so bits/dim compare across this \
             table, but not with the binarised table above (a binary digit carries far less \
             information than its 256-level original). Samples are judged against grey test \
             digits."
        );
    }
    let reused: Vec<&str> = results
        .rows
        .iter()
        .filter(|r| r.reused_checkpoint)
        .map(|r| r.label.as_str())
        .collect();
    if !reused.is_empty() {
        let _ = writeln!(
            md,
            "\nReused from an earlier run's checkpoints (training figures from that run): {}.",
            reused.join(", ")
        );
    }
    if !results.warnings.is_empty() {
        let _ = writeln!(md, "\n## Warnings\n");
        for warning in &results.warnings {
            let _ = writeln!(md, "- {warning}");
        }
    }
    let _ = writeln!(md, "\n![samples](samples.png)");
    for (grey_track, file, what) in [
        (false, NLL_CHART, "test NLL during training"),
        (true, GREY_CHART, "test NLL during training, grey track"),
    ] {
        if results.curves.iter().any(|c| c.grey_track == grey_track) {
            let _ = writeln!(md, "\n![{what}]({file})");
        }
    }
    md
}

/// One table of rows.
fn table(md: &mut String, rows: &[&ComparisonRow]) {
    let _ = writeln!(
        md,
        "| model | density | test NLL (nats) | bits/dim | NLL kind | MNIST-FID (floor) | IS \
         (floor) | modes hit (KL to uniform) | sharpness (decoder means) | sampling time / \
         image (sampler) | slow sampler / image | train img/s | train s | epochs (best) | \
         parameters |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let [nats, bpd, kind] = nll_cell(&row.nll);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} ({:.2}) | {:.2} ({:.2}) | {}/{} ({:.3}) | {} | {} | \
             {} | {} | {:.1} | {} | {} |",
            row.label,
            row.density.name(),
            nats,
            bpd,
            kind,
            row.fid,
            row.floor.fid,
            row.inception_score,
            row.floor.inception_score,
            row.coverage.classes_hit,
            row.coverage.classes,
            row.coverage.kl_to_uniform,
            sharpness_cell(row),
            sampling_cell(&row.sampling),
            slow_cell(&row.slow_sampling),
            throughput_cell(&row.train_images_per_second),
            row.train_seconds,
            epochs_cell(row),
            thousands(row.parameters)
        );
    }
}

fn sharpness_cell(row: &ComparisonRow) -> String {
    match &row.mean_sharpness {
        Figure::Value(means) => format!("{:.2} ({means:.2})", row.sharpness),
        Figure::NotAvailable(_) => format!("{:.2}", row.sharpness),
    }
}

fn epochs_cell(row: &ComparisonRow) -> String {
    match row.best_epoch {
        Some(best) => format!("{} ({best})", row.epochs),
        None => row.epochs.to_string(),
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line per row; fields with commas are quoted.
fn csv(results: &ComparisonResults) -> String {
    let header = [
        "model",
        "label",
        "density",
        "nll_nats",
        "nll_standard_error_nats",
        "bits_per_dim",
        "nll_kind",
        "fid",
        "fid_floor",
        "inception_score",
        "inception_score_floor",
        "classes_hit",
        "coverage_kl_to_uniform",
        "sharpness",
        "decoder_mean_sharpness",
        "sampler",
        "sample_seconds_per_image",
        "slow_sampler",
        "slow_sample_seconds_per_image",
        "train_images_per_second",
        "train_seconds",
        "epochs",
        "best_epoch",
        "parameters",
        "track",
    ];
    let mut out = header.join(",");
    out.push('\n');
    for row in &results.rows {
        out.push_str(
            &csv_row(row)
                .iter()
                .map(|f| quote(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

fn csv_row(row: &ComparisonRow) -> Vec<String> {
    let na = |reason: &str| format!("n/a: {reason}");
    let (nats, se, bpd, kind) = match &row.nll {
        Figure::Value(v) => (
            v.nats.to_string(),
            v.standard_error_nats.to_string(),
            v.bits_per_dim.to_string(),
            v.kind.clone(),
        ),
        Figure::NotAvailable(reason) => (na(reason), na(reason), na(reason), na(reason)),
    };
    vec![
        row.model.clone(),
        row.label.clone(),
        row.density.name().to_string(),
        nats,
        se,
        bpd,
        kind,
        row.fid.to_string(),
        row.floor.fid.to_string(),
        row.inception_score.to_string(),
        row.floor.inception_score.to_string(),
        row.coverage.classes_hit.to_string(),
        row.coverage.kl_to_uniform.to_string(),
        row.sharpness.to_string(),
        match &row.mean_sharpness {
            Figure::Value(v) => v.to_string(),
            Figure::NotAvailable(reason) => na(reason),
        },
        row.sampling.sampler.clone(),
        row.sampling.seconds_per_image.to_string(),
        match &row.slow_sampling {
            Figure::Value(s) => s.sampler.clone(),
            Figure::NotAvailable(_) => "none".to_string(),
        },
        match &row.slow_sampling {
            Figure::Value(s) => s.seconds_per_image.to_string(),
            Figure::NotAvailable(reason) => na(reason),
        },
        match &row.train_images_per_second {
            Figure::Value(v) => v.to_string(),
            Figure::NotAvailable(reason) => na(reason),
        },
        row.train_seconds.to_string(),
        row.epochs.to_string(),
        row.best_epoch
            .map_or_else(|| na("not a recipe's run"), |e| e.to_string()),
        row.parameters.to_string(),
        if row.grey_track { "grey" } else { "binary" }.to_string(),
    ]
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// `<CPU model>, <n> cores` from `/proc/cpuinfo` (Linux), or what can be said elsewhere.
pub fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {cores} cores")
}

/// The UTC date and time of `time`, `YYYY-MM-DD HH:MM UTC`.
pub fn utc_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(SystemTime::UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_372_200);
        assert_eq!(utc_date(t), "2026-11-22 18:30 UTC");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_date(leap), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(quote("a, b"), "\"a, b\"");
        assert_eq!(quote("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(quote("plain"), "plain");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn durations_keep_a_readable_unit() {
        assert_eq!(seconds(2.5), "2.50 s");
        assert_eq!(seconds(0.0123), "12.30 ms");
        assert_eq!(seconds(0.000_004_2), "4.2 µs");
    }
}

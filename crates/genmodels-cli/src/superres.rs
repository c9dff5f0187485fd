//! `genmodels superres`: super-resolution of test digits from their `f×f` block means, by a
//! model with the [`SuperResolve`](genmodels::capabilities::SuperResolve) capability (the
//! DDPM's ILVR-guided sampling, or the super-resolution Gated PixelCNN's draws from
//! `p(x | U(y))`) beside nearest-neighbour and bicubic upsampling, scored by PSNR and SSIM
//! against the true digit, the judge's accuracy on the results, how far their block means are
//! from the input and, for a model of `p(x | y)`, the exact `−log p(x | y)` of the true digit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use genmodels::burn::tensor::Tensor;
use genmodels::capabilities::{check_resolution_factor, downsample, upsample_nearest};
use genmodels::eval::metrics::{psnr, ssim};
use genmodels::eval::superres::{accuracy, low_pass_error, upsample_bicubic};
use genmodels::prelude::*;
use genmodels::progress::Progress;
use genmodels::registry::{Entry, ModelVisitor, Registered};
use genmodels::report::image_output::{GridLayout, save_labelled_panels};
use genmodels_core::fs::{write_atomic, write_json_atomic};
use serde::Serialize;

use crate::data::{datasets, load_mnist};
use crate::models::{SampleOptions, sampling_method};
use crate::{DataArgs, ModelSource, SamplerArgs};

/// Low-resolution images per call of the model (its seed is `--seed` plus the index of the
/// batch's first image, plus `n` times the sample's index).
const BATCH: usize = 50;
/// Digits on the picture sheet.
const SHEET_IMAGES: usize = 10;

#[derive(clap::Args, Debug, Clone)]
pub struct SuperResArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// The downsampling factor: the input is each test digit's f×f block means (28×28 → 14×14
    /// for 2, → 7×7 for 4).
    #[arg(long, default_value_t = 4)]
    pub factor: usize,
    /// The first N test digits (in file order), presented as the model's run saw its data.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub n: usize,
    /// The model's results per digit, each scored (the sheet shows them all).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Seed of the model's sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder: superres.md, superres.json and superres.png.
    #[arg(long, default_value = "runs/superres")]
    pub out: PathBuf,
}

pub fn superres(args: &SuperResArgs) -> anyhow::Result<()> {
    if args.n == 0 || args.samples == 0 {
        bail!("-n and --samples must be at least 1");
    }
    if args.out.is_file() {
        bail!(
            "{}: is a file; --out names the folder for superres.md, .json and .png",
            args.out.display()
        );
    }
    let (dir, _) = args.source.dir()?;
    let entry = crate::commands::checkpoint_entry(&dir)?;
    struct Visit<'a> {
        dir: &'a Path,
        args: &'a SuperResArgs,
    }
    impl ModelVisitor for Visit<'_> {
        type Output = anyhow::Result<()>;
        fn visit<M: Registered>(self, entry: &'static Entry) -> anyhow::Result<()> {
            superres_model::<M>(entry, self.dir, self.args)
        }
    }
    entry.visit(Visit { dir: &dir, args })
}

/// One method's scores over every result.
#[derive(Debug, Clone, Serialize)]
pub struct MethodRow {
    /// `nearest`, `bicubic`, or the model with its sampler.
    pub method: String,
    /// Results scored (digits × samples).
    pub results: usize,
    /// Mean PSNR against the true digit, dB, and its standard error.
    pub psnr_db: f64,
    pub psnr_stderr_db: f64,
    /// Mean SSIM against the true digit and its standard error.
    pub ssim: f64,
    pub ssim_stderr: f64,
    /// The judge's accuracy on the results against the true digits' labels (with labels and
    /// 1×28×28 images).
    pub judge_accuracy: Option<f64>,
    /// Block means against the input: the mean over results of each one's RMS difference,
    /// and the largest absolute difference of all.
    pub low_pass_rms: f64,
    pub low_pass_max: f64,
    /// The same for the model's continuous results before their read-out on the data grid.
    pub continuous_low_pass_rms: Option<f64>,
    pub continuous_low_pass_max: Option<f64>,
    /// Wall-clock seconds per result.
    pub seconds_per_image: f64,
    /// The exact `−log p(x | y)` of the true digit `x` given its own block means `y`, nats
    /// per image, averaged over the digits, and its standard error: for a model with a
    /// conditional likelihood
    /// ([`conditional_log_likelihood`](genmodels::capabilities::SuperResolve::conditional_log_likelihood),
    /// the super-resolution Gated PixelCNN), `None` for the others and the baselines.
    pub conditional_nll_nats: Option<f64>,
    pub conditional_nll_stderr_nats: Option<f64>,
}

/// Everything `superres.json` holds.
#[derive(Debug, Serialize)]
struct Report {
    model: &'static str,
    pretrained: Option<String>,
    checkpoint: String,
    factor: usize,
    low_resolution: String,
    high_resolution: String,
    digits: usize,
    samples_per_digit: usize,
    sampler: String,
    seed: u64,
    presentation: String,
    truth_judge_accuracy: Option<f64>,
    machine: String,
    date: String,
    seconds: f64,
    rows: Vec<MethodRow>,
}

/// Results of one method, gathered batch by batch.
struct Results {
    images: Vec<Tensor<4>>,
    continuous: Vec<Tensor<4>>,
    seconds: f64,
}

fn superres_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    args: &SuperResArgs,
) -> anyhow::Result<()> {
    let super_resolution = M::CAPABILITIES.super_resolve.as_ref().with_context(|| {
        format!(
            "a `{}` model cannot super-resolve; the DDPM can (ILVR-guided sampling), and a \
             `gated-pixelcnn-superres` (trained on low-resolution images)",
            entry.name
        )
    })?;
    let started = Instant::now();
    let device = args.data.backend.device()?;
    let (model, manifest) = crate::commands::load_trained::<M>(dir, &device)?;
    let method = sampling_method(
        &model,
        &SampleOptions {
            pixel_draws: false,
            sampler: args.sampler,
        },
    )?
    .context("a model that super-resolves has a choice of samplers")?;
    let shape = model.image_shape();
    check_resolution_factor(args.factor, shape)?;
    let factor = args.factor;
    // The test digits as the run presented its data (binary ones binarised once, with the
    // fixed seed every evaluation uses).
    let binarize = crate::commands::checkpoint_binarize(dir, &model);
    let (_, test) = datasets(load_mnist(&args.data)?, binarize, manifest.seed, None);
    let truth = test.first(args.n, &device)?;
    let n = truth.len();
    let truth = truth.images().clone();
    let labels: Option<Vec<usize>> = test
        .images()
        .labels()
        .map(|l| l[..n].iter().map(|&v| usize::from(v)).collect());
    let low_res = downsample(truth.clone(), factor)?;

    // The baselines, timed.
    let timed = |f: &dyn Fn() -> genmodels::Result<Tensor<4>>| -> anyhow::Result<Results> {
        let clock = Instant::now();
        let images = f()?;
        genmodels::batch::to_host(images.clone())?;
        Ok(Results {
            images: vec![images],
            continuous: Vec::new(),
            seconds: clock.elapsed().as_secs_f64(),
        })
    };
    let nearest = timed(&|| upsample_nearest(low_res.clone(), factor))?;
    let bicubic = timed(&|| upsample_bicubic(low_res.clone(), factor))?;

    // The model, batch by batch, with progress.
    let total = n * args.samples;
    let progress = Progress::count(total as u64, "super-resolution", "images");
    let mut model_results = Results {
        images: Vec::new(),
        continuous: Vec::new(),
        seconds: 0.0,
    };
    for s in 0..args.samples {
        let mut start = 0;
        while start < n {
            let count = BATCH.min(n - start);
            let batch = low_res.clone().narrow(0, start, count);
            let seed = args.seed.wrapping_add((s * n + start) as u64);
            let clock = Instant::now();
            let result = (super_resolution.resolve)(&model, batch, factor, seed, method)?;
            // Read back before the clock stops: a lazy backend's work is done.
            genmodels::batch::to_host(result.images.clone())?;
            model_results.seconds += clock.elapsed().as_secs_f64();
            model_results.images.push(result.images);
            if let Some(continuous) = result.continuous {
                model_results.continuous.push(continuous);
            }
            start += count;
            let done = s * n + start;
            progress.advance(count as u64);
            if !progress.is_drawn() {
                let rate = done as f64 / model_results.seconds.max(1e-9);
                progress.print_line(&format!(
                    "super-resolution: {done}/{total} images, {rate:.2} images/s, ETA {:.0} s",
                    (total - done) as f64 / rate
                ));
            }
        }
    }
    progress.finish();

    // The exact −log p(x | y) of every true digit given its own block means, for a model of
    // p(x | U(y)); none for the others.
    let mut conditional_nll: Option<Vec<f64>> = Some(Vec::new());
    let mut start = 0;
    while let (Some(nll), true) = (conditional_nll.as_mut(), start < n) {
        let count = BATCH.min(n - start);
        let batch = ImageBatch::from_tensor(truth.clone().narrow(0, start, count))?;
        match (super_resolution.conditional_log_likelihood)(&model, &batch, factor)? {
            Some(ll) => nll.extend(ll.log_likelihood_nats.iter().map(|v| -v)),
            None => conditional_nll = None,
        }
        start += count;
    }

    let judge = (shape == ImageShape::MNIST)
        .then(|| genmodels::data::mnist_judge(&device))
        .transpose()?;
    let judge_accuracy = |images: Tensor<4>, samples: usize| -> anyhow::Result<Option<f64>> {
        match (&judge, &labels) {
            (Some(judge), Some(labels)) => {
                let predicted = judge.judge(images.clamp(0.0, 1.0))?.predicted_classes();
                let wanted: Vec<usize> = (0..samples).flat_map(|_| labels.clone()).collect();
                Ok(Some(accuracy(&predicted, &wanted)?))
            }
            _ => Ok(None),
        }
    };
    let truth_judge_accuracy = judge_accuracy(truth.clone(), 1)?;
    let score = |name: String,
                 results: &Results,
                 samples: usize,
                 nll: Option<&[f64]>|
     -> anyhow::Result<MethodRow> {
        let images = Tensor::cat(results.images.clone(), 0);
        let reference = Tensor::cat(vec![truth.clone(); samples], 0);
        let inputs = Tensor::cat(vec![low_res.clone(); samples], 0);
        let (psnr_db, psnr_stderr_db) = mean_and_stderr(&psnr(reference.clone(), images.clone())?);
        let (ssim_mean, ssim_stderr) = mean_and_stderr(&ssim(reference, images.clone())?);
        let (low_pass_rms, low_pass_max) =
            summarise_low_pass(&low_pass_error(images.clone(), inputs.clone(), factor)?);
        let (continuous_low_pass_rms, continuous_low_pass_max) = if results.continuous.is_empty() {
            (None, None)
        } else {
            let continuous = Tensor::cat(results.continuous.clone(), 0);
            let (rms, max) = summarise_low_pass(&low_pass_error(continuous, inputs, factor)?);
            (Some(rms), Some(max))
        };
        Ok(MethodRow {
            method: name,
            results: images.dims()[0],
            psnr_db,
            psnr_stderr_db,
            ssim: ssim_mean,
            ssim_stderr,
            judge_accuracy: judge_accuracy(images, samples)?,
            low_pass_rms,
            low_pass_max,
            continuous_low_pass_rms,
            continuous_low_pass_max,
            seconds_per_image: results.seconds / (n * samples) as f64,
            conditional_nll_nats: nll.map(|v| mean_and_stderr(v).0),
            conditional_nll_stderr_nats: nll.map(|v| mean_and_stderr(v).1),
        })
    };
    // A model of p(x | y) says so in its row.
    let model_name = match conditional_nll {
        Some(_) => format!("{} of p(x∣y) ({})", M::LABEL, method.describe()),
        None => format!("{} ({})", M::LABEL, method.describe()),
    };
    let rows = vec![
        score("nearest".into(), &nearest, 1, None)?,
        score("bicubic".into(), &bicubic, 1, None)?,
        score(
            model_name.clone(),
            &model_results,
            args.samples,
            conditional_nll.as_deref(),
        )?,
    ];
    let seconds = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let presentation = format!("{:?}", test.binarization());
    let report = Report {
        model: entry.name,
        pretrained: args.source.pretrained.clone(),
        checkpoint: dir.display().to_string(),
        factor,
        low_resolution: format!("{}×{}", shape.height / factor, shape.width / factor),
        high_resolution: format!("{}×{}", shape.height, shape.width),
        digits: n,
        samples_per_digit: args.samples,
        sampler: method.describe(),
        seed: args.seed,
        presentation,
        truth_judge_accuracy,
        machine: format!(
            "{} ({})",
            genmodels::compare::machine_description(),
            genmodels::kernels::machine::vector_extensions().join(" ")
        ),
        date: genmodels::compare::utc_date(std::time::SystemTime::now()),
        seconds,
        rows,
    };
    let md = to_markdown(&report);
    write_atomic(&args.out.join("superres.md"), md.as_bytes())?;
    write_json_atomic(&args.out.join("superres.json"), &report)?;

    // The sheet: the input (shown by nearest upsampling), bicubic, the model's samples, its
    // first sample before the read-out, the truth.
    let columns = SHEET_IMAGES.min(n);
    let first = |t: &Tensor<4>| t.clone().narrow(0, 0, columns);
    let model_images = Tensor::cat(model_results.images.clone(), 0);
    let mut panels = vec![
        (
            format!(
                "input {} (block means)",
                report.low_resolution.replace('×', "x")
            ),
            first(&nearest.images[0]),
        ),
        ("bicubic".to_string(), first(&bicubic.images[0])),
    ];
    for s in 0..args.samples {
        panels.push((
            format!("{} sample {}", M::LABEL, s + 1),
            model_images.clone().narrow(0, s * n, columns),
        ));
    }
    if let Some(continuous) = model_results.continuous.first() {
        panels.push((
            format!("{} sample 1 before read-out", M::LABEL),
            first(continuous).clamp(0.0, 1.0),
        ));
    }
    panels.push(("truth".to_string(), first(&truth)));
    save_labelled_panels(
        &args.out.join("superres.png"),
        panels,
        GridLayout::with_columns(columns),
        1,
    )?;
    print!("{md}");
    eprintln!("written to {}", args.out.display());
    Ok(())
}

/// The mean and its standard error (0 for a single value).
fn mean_and_stderr(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

/// The mean of the per-image RMS errors and the largest absolute error.
fn summarise_low_pass(errors: &[(f64, f64)]) -> (f64, f64) {
    let rms = errors.iter().map(|e| e.0).sum::<f64>() / errors.len() as f64;
    let max = errors.iter().map(|e| e.1).fold(0.0, f64::max);
    (rms, max)
}

fn to_markdown(report: &Report) -> String {
    let mut md = format!(
        "# Super-resolution ×{}: {} → {}\n\n`genmodels superres` on {}{} (checkpoint {}): \
         the first {} test digits, presented as `{}`, downsampled to their {}×{} block means; \
         {} result(s) per digit from the model ({}), seed {}. {} on {}; {:.0} s.\n\n\
         | method | PSNR (dB) | SSIM | judge accuracy | low-pass error, RMS / max | time / image | −log p(x∣y), nats |\n\
         |---|---|---|---|---|---|---|\n",
        report.factor,
        report.low_resolution,
        report.high_resolution,
        report
            .pretrained
            .as_ref()
            .map_or(String::new(), |name| format!("{name}, ")),
        report.model,
        report.checkpoint,
        report.digits,
        report.presentation,
        report.factor,
        report.factor,
        report.samples_per_digit,
        report.sampler,
        report.seed,
        report.date,
        report.machine,
        report.seconds,
    );
    for row in &report.rows {
        let low_pass = match (row.continuous_low_pass_rms, row.continuous_low_pass_max) {
            (Some(rms), Some(max)) => format!(
                "{:.3} / {:.3} (before read-out: {rms:.1e} / {max:.1e})",
                row.low_pass_rms, row.low_pass_max
            ),
            _ => format!("{:.3} / {:.3}", row.low_pass_rms, row.low_pass_max),
        };
        md.push_str(&format!(
            "| {} | {:.2} ± {:.2} | {:.3} ± {:.3} | {} | {low_pass} | {} | {} |\n",
            row.method,
            row.psnr_db,
            row.psnr_stderr_db,
            row.ssim,
            row.ssim_stderr,
            row.judge_accuracy
                .map_or("—".to_string(), |a| format!("{:.1}%", 100.0 * a)),
            format_seconds(row.seconds_per_image),
            match (row.conditional_nll_nats, row.conditional_nll_stderr_nats) {
                (Some(nll), Some(stderr)) => format!("{nll:.2} ± {stderr:.2}"),
                _ => "—".to_string(),
            },
        ));
    }
    if let Some(a) = report.truth_judge_accuracy {
        md.push_str(&format!(
            "\nThe judge classifies {:.1}% of the true digits correctly (the ceiling).\n",
            100.0 * a
        ));
    }
    md.push_str(
        "\nPSNR and SSIM against the true digit (± a standard error over results); judge \
         accuracy: the bundled MNIST judge's class of each result against the true digit's \
         label; low-pass error: each result's block means against the input (0 when they \
         agree exactly). The model's \"before read-out\" is its continuous result before it \
         is put on the data's grid (binarised, for a binary model). −log p(x∣y): the exact \
         negative log-likelihood of the true digit x given its own block means y, nats per \
         image (± a standard error over digits), for a model of p(x∣y); — for the others.\n\n\
         ![sheet](superres.png)\n",
    );
    md
}

/// Seconds as µs, ms or s.
fn format_seconds(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_low_pass_summaries_have_their_known_values() {
        let (mean, stderr) = mean_and_stderr(&[1.0, 2.0, 3.0]);
        assert_eq!(mean, 2.0);
        assert!((stderr - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_and_stderr(&[5.0]), (5.0, 0.0));
        assert_eq!(summarise_low_pass(&[(0.1, 0.5), (0.3, 0.2)]), (0.2, 0.5));
    }
}

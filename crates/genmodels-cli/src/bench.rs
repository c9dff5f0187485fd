//! `genmodels bench`: throughput of every model's default preset on every compiled backend.

use genmodels::Backend;
use genmodels::bench::{BenchModel, BenchOp, BenchResult, Benchmark};
use genmodels::report::plot::BarChart;
use genmodels_core::progress::Progress;
use std::path::{Path, PathBuf};

/// What `genmodels bench` measures; empty lists mean all.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Model (repeatable; default pixelcnn, gated-pixelcnn, row-lstm, diagonal-bilstm, vae,
    /// dcgan): any model of `genmodels train`'s list, e.g. ddpm (its sample_naive is the
    /// ancestral sampler's 1,000 steps, minutes per batch on a CPU).
    #[arg(long = "model")]
    pub models: Vec<BenchModel>,
    /// Backend (repeatable; default every compiled one).
    #[arg(long = "backend")]
    pub backends: Vec<Backend>,
    /// Operation (repeatable; default all): train_step, train_loop (the trainer's loop over
    /// the training digits), log_likelihood, sample_naive, sample_cached.
    #[arg(long = "op")]
    pub ops: Vec<BenchOp>,
    /// Images per run (the training batch, or images sampled at once) [default: the
    /// comparison's batch, 64, for train_loop; 32 otherwise].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Side of the square images (other than 28 for the autoregressive samplers only).
    #[arg(long, default_value_t = 28)]
    pub image_size: usize,
    /// Timed runs of each operation [default: 5 for training and likelihood, 3 for cached
    /// sampling, 1 for naive sampling].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Untimed runs first (kernel compilation, allocator warm-up).
    #[arg(long, default_value_t = 1)]
    pub warm_up: usize,
    /// Print a JSON array of {model, backend, op, batch, images_per_second, …} instead of the
    /// table.
    #[arg(long)]
    pub json: bool,
    /// Also draw one bar chart of images/s per operation into this folder (`OP.png`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// On flex, with genmodels' hand-written kernels (`on`), on burn's own ops alone (`off`),
    /// or each of them in turn (`both`), which shows what the kernels are worth. Other
    /// backends have no kernels and run once.
    #[arg(long, value_enum, default_value_t = KernelsArg::Both)]
    pub kernels: KernelsArg,
    /// Only measure the peak rate of the kernels' matrix library (gemm, f32, on all compute
    /// threads): the rate a model's achieved FLOP/s is a share of.
    #[arg(long, conflicts_with_all = ["models", "backends", "ops", "plot"])]
    pub gemm_peak: bool,
}

/// `--kernels`: which of the two flex code paths to time.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelsArg {
    /// The hand-written kernels.
    On,
    /// burn's own ops.
    Off,
    /// Both, one after the other.
    Both,
}

impl KernelsArg {
    /// The kernel settings to run on `backend`: none but the current one off flex.
    fn settings(self, backend: Backend) -> anyhow::Result<Vec<bool>> {
        if backend != Backend::Flex {
            return Ok(vec![genmodels::kernels::enabled()]);
        }
        Ok(match self {
            Self::On if !genmodels::kernels::COMPILED => {
                anyhow::bail!("--kernels on: this binary was built without the `kernels` feature")
            }
            Self::On => vec![true],
            Self::Off => vec![false],
            Self::Both if !genmodels::kernels::COMPILED => vec![false],
            Self::Both => vec![true, false],
        })
    }
}

/// Timed runs when none are asked for: naive sampling is the slow one.
fn default_steps(op: BenchOp) -> usize {
    match op {
        BenchOp::TrainStep | BenchOp::LogLikelihood => 5,
        BenchOp::TrainLoop => 20,
        BenchOp::SampleCached => 3,
        BenchOp::SampleNaive => 1,
    }
}

/// One row of the table: measured, or why not.
enum Row {
    Measured(BenchResult),
    Skipped {
        model: BenchModel,
        backend: Backend,
        op: BenchOp,
        reason: String,
    },
}

pub fn bench(request: &BenchArgs) -> anyhow::Result<()> {
    if request.gemm_peak {
        return gemm_peak(request.json);
    }
    let models = given_or(&request.models, BenchModel::all);
    let backends = given_or(&request.backends, Backend::compiled);
    let ops = given_or(&request.ops, || BenchOp::ALL.to_vec());
    // A combination asked for by name must run; one that merely falls out of "all" may be
    // skipped with its reason.
    let explicit = !request.models.is_empty() && !request.ops.is_empty();

    let mut jobs = Vec::new();
    for &model in &models {
        for &backend in &backends {
            let settings = request.kernels.settings(backend)?;
            for (i, &kernels) in settings.iter().enumerate() {
                for &op in &ops {
                    // An operation the model lacks is one row, not one per setting.
                    if i == 0 || model.unsupported_reason(op).is_none() {
                        jobs.push((model, backend, kernels, op));
                    }
                }
            }
        }
    }
    let bar = Progress::count(jobs.len() as u64, "benchmarks", "runs");
    let mut rows = Vec::with_capacity(jobs.len());
    let kernels_before = genmodels::kernels::enabled();
    for (model, backend, kernels, op) in jobs {
        bar.set_message(|| format!("{model} {op} on {backend}"));
        genmodels::kernels::set_enabled(kernels);
        if let Some(reason) = model.unsupported_reason(op) {
            if explicit {
                anyhow::bail!("{model} has no {op}: {reason}");
            }
            rows.push(Row::Skipped {
                model,
                backend,
                op,
                reason: reason.into(),
            });
            bar.advance(1);
            continue;
        }
        let steps = request.steps.unwrap_or_else(|| default_steps(op));
        let batch = request.batch.unwrap_or_else(|| op.default_batch());
        let measured = Benchmark::prepare(model, op, backend, batch, request.image_size)
            .and_then(|mut bench| bench.measure(request.warm_up, steps));
        match measured {
            Ok(result) => rows.push(Row::Measured(result)),
            // A backend without a device here (no GPU adapter) is a row, not the end of the table.
            Err(e @ genmodels::GenError::BackendUnavailable { .. })
                if request.backends.is_empty() =>
            {
                rows.push(Row::Skipped {
                    model,
                    backend,
                    op,
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        }
        bar.advance(1);
    }
    bar.finish();
    genmodels::kernels::set_enabled(kernels_before);

    let measured: Vec<&BenchResult> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Measured(result) => Some(result),
            Row::Skipped { .. } => None,
        })
        .collect();
    if let Some(dir) = &request.plot {
        plot(&measured, request, dir)?;
    }
    if request.json {
        println!("{}", serde_json::to_string_pretty(&measured)?);
        return Ok(());
    }
    println!(
        "{}×{} images, default presets, seed 0; {}\n",
        request.image_size,
        request.image_size,
        machine_line()
    );
    println!(
        "| model | backend | kernels | op | batch | images/s | ms/image | peak memory (MiB) | timed runs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        match row {
            Row::Measured(r) => println!(
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
                r.model,
                r.backend,
                if r.kernels { "on" } else { "off" },
                r.op,
                r.batch,
                r.images_per_second,
                1e3 / r.images_per_second,
                r.peak_memory_bytes
                    .map_or_else(|| "n/a".into(), |b| format!("{:.0}", b as f64 / 1048576.0)),
                r.repetitions
            ),
            Row::Skipped {
                model,
                backend,
                op,
                reason,
            } => println!("| {model} | {backend} | | {op} | | n/a: {reason} | | | |"),
        }
    }
    Ok(())
}

/// The CPU, its vector extensions and the matrix kernel gemm picks on it: a speed figure
/// means little without them.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let extensions = genmodels::kernels::machine::vector_extensions();
    format!(
        "CPU {cpu}, {} threads, vector extensions: {}; matrix kernel: gemm {}",
        genmodels::kernels::machine::compute_threads(),
        if extensions.is_empty() {
            "none detected".to_string()
        } else {
            extensions.join(" ")
        },
        genmodels::kernels::machine::matrix_kernel()
    )
}

/// `--gemm-peak`: gemm's best f32 rate over square products of 256 to 2048, a second each.
fn gemm_peak(json: bool) -> anyhow::Result<()> {
    let sizes = [256, 512, 1024, 2048];
    let peak = genmodels::kernels::machine::gemm_peak(&sizes, 1.0).ok_or_else(|| {
        anyhow::anyhow!("this binary was built without the `kernels` feature: no gemm to time")
    })?;
    if json {
        let value = serde_json::json!({
            "gemm_peak_flops_per_second": peak.flops_per_second,
            "size": peak.size,
            "threads": peak.threads,
            "kernel": peak.kernel,
            "vector_extensions": genmodels::kernels::machine::vector_extensions(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", machine_line());
        println!(
            "gemm f32 peak: {:.1} GFLOP/s ({}×{} products, {} threads, {} kernel)",
            peak.flops_per_second / 1e9,
            peak.size,
            peak.size,
            peak.threads,
            peak.kernel
        );
    }
    Ok(())
}

/// One bar chart per operation: images/s of each model (groups) on each backend (bars).
fn plot(results: &[&BenchResult], request: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    for op in first_seen(results.iter().map(|r| r.op.as_str())) {
        let of_op: Vec<&&BenchResult> = results.iter().filter(|r| r.op == op).collect();
        let models = first_seen(of_op.iter().map(|r| r.model.as_str()));
        let backends = first_seen(of_op.iter().map(|r| series_name(r)));
        let rates = of_op.iter().map(|r| r.images_per_second);
        let (low, high) = rates.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let mut chart = BarChart::new(format!(
            "{op}, batch {}, {}x{} images",
            of_op[0].batch, request.image_size, request.image_size
        ))
        .with_y_label("images/s")
        // Backends differ by orders of magnitude; a linear axis would hide the slow ones.
        .with_log_y(high > 20.0 * low)
        .with_categories(models.iter().copied());
        for backend in &backends {
            let values = models.iter().map(|model| {
                of_op
                    .iter()
                    .find(|r| r.model == *model && series_name(r) == *backend)
                    .map(|r| r.images_per_second)
            });
            chart = chart.with_series(*backend, values);
        }
        chart.save_png(dir.join(format!("{op}.png")))?;
    }
    Ok(())
}

/// A bar's series: the backend, and on flex whether the kernels ran.
fn series_name(result: &BenchResult) -> &'static str {
    match (result.backend.as_str(), result.kernels) {
        ("flex", true) => "flex",
        ("flex", false) => "flex, burn ops only",
        ("ndarray", _) => "ndarray",
        ("cuda", _) => "cuda",
        _ => "wgpu",
    }
}

/// The values asked for, or all of them when none were.
fn given_or<T: Clone>(given: &[T], all: impl FnOnce() -> Vec<T>) -> Vec<T> {
    if given.is_empty() {
        all()
    } else {
        given.to_vec()
    }
}

/// The distinct names, in the order they first appear.
fn first_seen<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut distinct: Vec<&str> = Vec::new();
    for name in names {
        if !distinct.contains(&name) {
            distinct.push(name);
        }
    }
    distinct
}

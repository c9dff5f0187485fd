//! `genmodels bench`: throughput of every model's default preset on every compiled backend.

use genmodels::Backend;
use genmodels::bench::{BenchModel, BenchOp, BenchResult, Benchmark};
use genmodels::report::plot::BarChart;
use genmodels_core::progress;
use std::path::{Path, PathBuf};

/// What `genmodels bench` measures; empty lists mean all.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Model (repeatable; default all): pixelcnn, gated-pixelcnn, row-lstm,
    /// diagonal-bilstm, vae, dcgan.
    #[arg(long = "model")]
    pub models: Vec<BenchModel>,
    /// Backend (repeatable; default every compiled one).
    #[arg(long = "backend")]
    pub backends: Vec<Backend>,
    /// Operation (repeatable; default all): train_step, log_likelihood, sample_naive,
    /// sample_cached.
    #[arg(long = "op")]
    pub ops: Vec<BenchOp>,
    /// Images per run (the training batch, or images sampled at once).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
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
}

/// Timed runs when none are asked for: naive sampling is the slow one.
fn default_steps(op: BenchOp) -> usize {
    match op {
        BenchOp::TrainStep | BenchOp::LogLikelihood => 5,
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
    let models = given_or(&request.models, || BenchModel::ALL.to_vec());
    let backends = given_or(&request.backends, Backend::compiled);
    let ops = given_or(&request.ops, || BenchOp::ALL.to_vec());
    // A combination asked for by name must run; one that merely falls out of "all" may be
    // skipped with its reason.
    let explicit = !request.models.is_empty() && !request.ops.is_empty();

    let mut jobs = Vec::new();
    for &model in &models {
        for &backend in &backends {
            for &op in &ops {
                jobs.push((model, backend, op));
            }
        }
    }
    let bar = progress::bar(jobs.len() as u64, "benchmarks", "runs");
    let mut rows = Vec::with_capacity(jobs.len());
    for (model, backend, op) in jobs {
        bar.set_message(format!("{model} {op} on {backend}"));
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
            bar.inc(1);
            continue;
        }
        let steps = request.steps.unwrap_or_else(|| default_steps(op));
        let measured = Benchmark::prepare(model, op, backend, request.batch, request.image_size)
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
        bar.inc(1);
    }
    bar.finish_and_clear();

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
        "batch {}, {}×{} images, default presets, seed 0\n",
        request.batch, request.image_size, request.image_size
    );
    println!("| model | backend | op | images/s | ms/image | peak memory (MiB) | timed runs |");
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        match row {
            Row::Measured(r) => println!(
                "| {} | {} | {} | {:.2} | {:.2} | {} | {} |",
                r.model,
                r.backend,
                r.op,
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
            } => println!("| {model} | {backend} | {op} | n/a: {reason} | | | |"),
        }
    }
    Ok(())
}

/// One bar chart per operation: images/s of each model (groups) on each backend (bars).
fn plot(results: &[&BenchResult], request: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    for op in first_seen(results.iter().map(|r| r.op.as_str())) {
        let of_op: Vec<&&BenchResult> = results.iter().filter(|r| r.op == op).collect();
        let models = first_seen(of_op.iter().map(|r| r.model.as_str()));
        let backends = first_seen(of_op.iter().map(|r| r.backend.as_str()));
        let rates = of_op.iter().map(|r| r.images_per_second);
        let (low, high) = rates.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let mut chart = BarChart::new(format!(
            "{op}, batch {}, {}x{} images",
            request.batch, request.image_size, request.image_size
        ))
        .with_y_label("images/s")
        // Backends differ by orders of magnitude; a linear axis would hide the slow ones.
        .with_log_y(high > 20.0 * low)
        .with_categories(models.iter().copied());
        for backend in &backends {
            let values = models.iter().map(|model| {
                of_op
                    .iter()
                    .find(|r| r.model == *model && r.backend == *backend)
                    .map(|r| r.images_per_second)
            });
            chart = chart.with_series(*backend, values);
        }
        chart.save_png(dir.join(format!("{op}.png")))?;
    }
    Ok(())
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

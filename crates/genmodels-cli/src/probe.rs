//! `genmodels probe`: how much of the digit class a model's representation makes linearly
//! readable, measured by linear probes ([`genmodels::eval::probe`]) trained with a few labels
//! per class, against the same probe on the raw pixels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use genmodels::burn::tensor::Device;
use genmodels::eval::probe::{
    FeatureMatrix, LabelledSubset, ProbeOptions, fit_linear_probe, labelled_subset,
};
use genmodels::prelude::*;
use genmodels::registry::{self, Entry, ModelVisitor, Registered};
use genmodels_core::fs::{read_json, write_atomic, write_json_atomic};

use crate::data::{datasets, load_mnist};
use crate::{BinarizeMode, DataArgs, ModelSource};

/// Images per representation call.
const BATCH: usize = 100;

#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[command(flatten)]
    pub data: DataArgs,
    /// Labelled training images per class, one probe each (comma-separated). A class with
    /// fewer training images gives all it has (the bundled sample's 8,000 training images have
    /// 691 to 900 per class), and the table says so.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    pub labels: Vec<usize>,
    /// Seed of the labelled subsets: the same images for the same seed, and the subset for a
    /// smaller count inside the one for a larger.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The probe's inverse L2 penalty C (scikit-learn's convention: ½‖W‖² + C Σ
    /// cross-entropy, on standardised features).
    #[arg(long, default_value_t = 1.0)]
    pub inverse_penalty: f64,
    /// Also write the table as markdown to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Add this model's line, and its raw-pixel baseline's, to a PNG chart of test accuracy
    /// against labelled images per class. The chart's lines are kept in a JSON file beside
    /// it (the same name, .json), so probing several models into one chart draws them
    /// together; a line of the same name is replaced. At most 8 lines.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// Lines in one chart at most: the chart's palette.
const CHART_LINES: usize = genmodels::report::plot::PALETTE.len();

/// The lines of a `--chart`, kept beside it as JSON.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ChartData {
    lines: Vec<ChartLine>,
}

/// One line: (mean labelled images per class, test accuracy in %) per probe.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ChartLine {
    name: String,
    points: Vec<(f64, f64)>,
}

impl ChartData {
    /// The data kept beside `chart`, or none yet.
    fn read(chart: &Path) -> anyhow::Result<Self> {
        let path = chart.with_extension("json");
        if !path.exists() {
            return Ok(Self::default());
        }
        read_json(&path).with_context(|| {
            format!(
                "{}: not the data of a probe chart; remove it or choose another --chart",
                path.display()
            )
        })
    }

    /// Adds `line`, replacing one of the same name.
    fn add(&mut self, line: ChartLine) {
        match self.lines.iter_mut().find(|l| l.name == line.name) {
            Some(old) => *old = line,
            None => self.lines.push(line),
        }
    }

    /// Lines once `names` are added.
    fn lines_with(&self, names: &[&str]) -> usize {
        self.lines.len()
            + names
                .iter()
                .filter(|n| !self.lines.iter().any(|l| &l.name == *n))
                .count()
    }

    /// Draws the chart and keeps its data beside it.
    fn save(&self, chart: &Path) -> anyhow::Result<()> {
        let drawn = self.lines.iter().fold(
            genmodels::report::LineChart::new("Linear probes: test accuracy")
                .with_x_label("labelled training images per class")
                .with_y_label("test accuracy (%)")
                .with_log_x(true),
            |drawn, line| drawn.with_series(line.name.clone(), line.points.clone()),
        );
        drawn.save_png(chart)?;
        write_json_atomic(&chart.with_extension("json"), self)?;
        Ok(())
    }
}

pub fn probe(args: &ProbeArgs) -> anyhow::Result<()> {
    if args.labels.is_empty() || args.labels.contains(&0) {
        bail!("--labels takes counts of at least 1 labelled image per class, e.g. 10,100,1000");
    }
    if !(args.inverse_penalty > 0.0 && args.inverse_penalty.is_finite()) {
        bail!(
            "--inverse-penalty must be positive and finite, not {}",
            args.inverse_penalty
        );
    }
    if let Some(out) = &args.out
        && (!out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("md"))
            || out.is_dir())
    {
        bail!(
            "{}: the probe's table is written as markdown: give a file name ending .md",
            out.display()
        );
    }
    if let Some(chart) = &args.chart {
        if !chart
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
            || chart.is_dir()
        {
            bail!(
                "{}: the chart is a PNG: give a file name ending .png",
                chart.display()
            );
        }
        ChartData::read(chart)?;
    }
    let (dir, _) = args.source.dir()?;
    let entry = crate::commands::checkpoint_entry(&dir)?;
    struct Visit<'a> {
        dir: &'a Path,
        args: &'a ProbeArgs,
    }
    impl ModelVisitor for Visit<'_> {
        type Output = anyhow::Result<()>;
        fn visit<M: Registered>(self, entry: &'static Entry) -> anyhow::Result<()> {
            probe_model::<M>(entry, self.dir, self.args)
        }
    }
    entry.visit(Visit { dir: &dir, args })
}

/// The names of the models that have a representation, for the error of one that has none.
fn models_with_a_representation() -> Vec<&'static str> {
    struct Has;
    impl ModelVisitor for Has {
        type Output = bool;
        fn visit<M: Registered>(self, _: &'static Entry) -> bool {
            M::CAPABILITIES.representation.is_some()
        }
    }
    registry::ENTRIES
        .iter()
        .filter(|e| e.visit(Has))
        .map(|e| e.name)
        .collect()
}

/// One probe's result.
struct ProbeRow {
    subset: LabelledSubset,
    representation: f64,
    pixels: f64,
    notes: Vec<String>,
}

fn probe_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    args: &ProbeArgs,
) -> anyhow::Result<()> {
    let Some(representation) = M::CAPABILITIES.representation else {
        bail!(
            "the {} (`{}`) has no representation to probe; models with one: {}",
            M::LABEL,
            entry.name,
            models_with_a_representation().join(", ")
        );
    };
    let device = args.data.backend.device()?;
    let (model, manifest) = crate::commands::load_trained::<M>(dir, &device)?;
    let seed = manifest.seed;
    let binarize = crate::commands::checkpoint_binarize(dir, &model);
    let title = args.source.pretrained.as_deref().unwrap_or(entry.name);
    let pixel_line = match binarize {
        BinarizeMode::None => "raw pixels, grey",
        _ => "raw pixels, binary",
    };
    if let Some(chart) = &args.chart {
        let lines = ChartData::read(chart)?.lines_with(&[title, pixel_line]);
        if lines > CHART_LINES {
            bail!(
                "{}: adding `{title}` would draw {lines} lines, more than a chart's \
                 {CHART_LINES}; choose another --chart",
                chart.display()
            );
        }
    }
    let (train, test) = datasets(load_mnist(&args.data)?, binarize, seed, None);
    let labels_of = |set: &Dataset, which: &str| -> anyhow::Result<Vec<usize>> {
        let labels = set
            .images()
            .labels()
            .with_context(|| format!("the {which} split has no labels: a probe needs them"))?;
        Ok(labels.iter().map(|&y| usize::from(y)).collect())
    };
    let train_labels = labels_of(&train, "training")?;
    let test_labels = labels_of(&test, "test")?;
    let classes = train_labels
        .iter()
        .chain(&test_labels)
        .max()
        .map_or(0, |m| m + 1);
    let largest = *args.labels.iter().max().expect("checked non-empty");
    // The subsets are nested: the largest holds every image any probe uses.
    let pool = labelled_subset(&train_labels, classes, largest, args.seed)?;
    let started = Instant::now();
    let (pool_features, pool_pixels) = features(
        &model,
        representation.features,
        &train,
        &pool.indices,
        &device,
    )?;
    let test_indices: Vec<usize> = (0..test.len()).collect();
    let (test_features, test_pixels) = features(
        &model,
        representation.features,
        &test,
        &test_indices,
        &device,
    )?;
    let feature_seconds = started.elapsed().as_secs_f64();
    let what = (representation.name)(&model);
    eprintln!(
        "{}: {what}, {} features per image, of {} training and {} test images in {feature_seconds:.1} s",
        entry.name,
        pool_features.dims(),
        pool.indices.len(),
        test_indices.len()
    );
    let options = ProbeOptions {
        inverse_penalty: args.inverse_penalty,
        ..ProbeOptions::default()
    };
    let mut rows = Vec::new();
    for &per_class in &args.labels {
        let subset = labelled_subset(&train_labels, classes, per_class, args.seed)?;
        // Rows of the pool's features: both index lists ascend.
        let rows_in_pool: Vec<usize> = subset
            .indices
            .iter()
            .map(|i| pool.indices.binary_search(i).expect("subsets are nested"))
            .collect();
        let labels: Vec<usize> = subset.indices.iter().map(|&i| train_labels[i]).collect();
        let mut notes = Vec::new();
        let mut accuracy = |train: &FeatureMatrix, test: &FeatureMatrix, what: &str| {
            let started = Instant::now();
            let fit = fit_linear_probe(
                &train.select(&rows_in_pool)?,
                &labels,
                classes,
                &options,
                &device,
            )?;
            let accuracy = fit.probe.accuracy(test, &test_labels, &device)?;
            let end = match (fit.converged, fit.stalled) {
                (true, _) => "converged",
                (false, true) => "stalled at the f32 precision of the objective",
                (false, false) => "out of iterations",
            };
            notes.push(format!(
                "{what}: {} L-BFGS iterations, {end}, largest gradient {:.1e}, {:.1} s",
                fit.iterations,
                fit.largest_gradient,
                started.elapsed().as_secs_f64()
            ));
            anyhow::Ok(accuracy)
        };
        let on_representation = accuracy(&pool_features, &test_features, "representation")?;
        let on_pixels = accuracy(&pool_pixels, &test_pixels, "pixels")?;
        rows.push(ProbeRow {
            subset,
            representation: on_representation,
            pixels: on_pixels,
            notes,
        });
    }
    let pixels = match binarize {
        BinarizeMode::None => "grey levels",
        _ => "binarised as the model sees them",
    };
    let report = markdown(
        title,
        dir,
        what,
        pool_features.dims(),
        pixels,
        pool_pixels.dims(),
        test_indices.len(),
        args,
        &rows,
    );
    print!("{report}");
    if let Some(out) = &args.out {
        write_atomic(out, report.as_bytes())?;
        eprintln!("wrote {}", out.display());
    }
    if let Some(chart) = &args.chart {
        let line = |name: &str, accuracy: fn(&ProbeRow) -> f64| ChartLine {
            name: name.to_string(),
            points: rows
                .iter()
                .map(|r| {
                    let per_class = r.subset.indices.len() as f64 / classes as f64;
                    (per_class, 100.0 * accuracy(r))
                })
                .collect(),
        };
        let mut data = ChartData::read(chart)?;
        data.add(line(title, |r| r.representation));
        data.add(line(pixel_line, |r| r.pixels));
        data.save(chart)?;
        eprintln!("wrote {}", chart.display());
    }
    Ok(())
}

/// The representation and the raw pixels of the images `indices` of `set` (epoch 0's
/// presentation), `[N, D]` and `[N, C·H·W]`.
fn features<M: Registered>(
    model: &M,
    representation: genmodels::registry::RepresentationFn<M>,
    set: &Dataset,
    indices: &[usize],
    device: &Device,
) -> anyhow::Result<(FeatureMatrix, FeatureMatrix)> {
    let mut features: Option<FeatureMatrix> = None;
    let mut pixels: Option<FeatureMatrix> = None;
    for chunk in indices.chunks(BATCH) {
        let batch = set.batch(chunk, 0, device)?;
        let r = FeatureMatrix::from_tensor(representation(model, &batch)?)?;
        let p = FeatureMatrix::from_tensor(batch.flat_images())?;
        for (all, next) in [(&mut features, r), (&mut pixels, p)] {
            match all {
                Some(all) => all.append(next)?,
                None => *all = Some(next),
            }
        }
    }
    Ok((
        features.context("no images to probe")?,
        pixels.context("no images to probe")?,
    ))
}

/// The report: what was probed, then one row per label count.
#[allow(clippy::too_many_arguments)]
fn markdown(
    title: &str,
    dir: &Path,
    representation: &str,
    dims: usize,
    pixels: &str,
    pixel_dims: usize,
    test_images: usize,
    args: &ProbeArgs,
    rows: &[ProbeRow],
) -> String {
    let mut md = format!(
        "# Linear probe: {title}\n\n\
         - checkpoint: {}\n\
         - representation: {representation}, {dims} features\n\
         - baseline: raw pixels ({pixels}), {pixel_dims} features\n\
         - probe: multinomial logistic regression on standardised features, L2 penalty C = {}, \
           L-BFGS on all labelled images\n\
         - labelled images: drawn per class from the training split with seed {}; accuracy on \
           all {test_images} test images\n\n\
         | labels per class | labelled images | representation accuracy | raw-pixel accuracy |\n\
         |---:|---:|---:|---:|\n",
        dir.display(),
        args.inverse_penalty,
        args.seed,
    );
    for row in rows {
        let requested = row.subset.requested_per_class;
        let per_class = if row.subset.clipped() {
            format!(
                "{requested} (clipped: {} to {})",
                row.subset.min_per_class(),
                row.subset.per_class.iter().max().unwrap_or(&0)
            )
        } else {
            requested.to_string()
        };
        md.push_str(&format!(
            "| {per_class} | {} | {:.2}% | {:.2}% |\n",
            row.subset.indices.len(),
            100.0 * row.representation,
            100.0 * row.pixels
        ));
    }
    if rows.iter().any(|r| r.subset.clipped()) {
        md.push_str(
            "\nA clipped count asked for more labelled images than some class has in the \
             training split: every image of that class is used.\n",
        );
    }
    md.push_str("\nFits:\n\n");
    for row in rows {
        for note in &row.notes {
            md.push_str(&format!(
                "- {} per class, {note}\n",
                row.subset.requested_per_class
            ));
        }
    }
    md
}

//! `genmodels anomaly`: how well a model's anomaly score separates clean test digits from
//! corrupted ones, or the digits of a class held out of training from the others, as AUROC,
//! raw and corrected ([`genmodels::anomaly`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use genmodels::anomaly::{
    AnomalyInputs, AnomalyReport, CorruptionTask, HoldoutSplit, PixelBackground,
    evaluate_corruptions, evaluate_holdout, of_class,
};
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::prelude::*;
use genmodels::registry::{DensityType, Entry, ModelVisitor, Registered};
use genmodels::report::BarChart;
use genmodels::report::image_output::{GridLayout, save_labelled_panels};
use genmodels_core::fs::write_atomic;

use crate::data::{load_mnist, splits};
use crate::{DataArgs, ModelSource};

/// Images per scored batch.
const BATCH: usize = 100;
/// Images per corruption on the picture sheet.
const SHEET_IMAGES: usize = 8;

#[derive(clap::Args, Debug, Clone)]
pub struct AnomalyArgs {
    /// Checkpoint directory (the --out of `train`).
    #[arg(long, conflicts_with = "pretrained")]
    pub checkpoint: Option<PathBuf>,
    /// A model of the zoo (`genmodels zoo list`).
    #[arg(long)]
    pub pretrained: Option<String>,
    /// Task (a) instead of the corruptions: the test digits of this class against those of
    /// the other classes, for a model trained without it (on the data that
    /// --write-holdout-data writes, given back as --data-dir).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub holdout_class: Option<u8>,
    /// With --holdout-class: write the training digits without that class and the whole test
    /// split as IDX files into this folder (for `genmodels train --data-dir`), and stop.
    #[arg(long, requires = "holdout_class", conflicts_with_all = ["checkpoint", "pretrained"])]
    pub write_holdout_data: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Clean test digits, and other test digits per corruption (at most half the test split);
    /// with --holdout-class, the most test digits of each side.
    #[arg(long, default_value_t = genmodels::anomaly::DEFAULT_IMAGES)]
    pub images: usize,
    /// Seed of the task (which digits, the noise, the occluding squares) and of the
    /// estimator (batch b uses seed + b).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Importance samples for a latent-variable model's score (1 = −ELBO, k > 1 = −IWAE-k,
    /// k times slower); ignored by the other models.
    #[arg(long, default_value_t = 1)]
    pub iwae_k: usize,
    /// Output folder: anomaly.md, anomaly.csv, anomaly.json, anomaly.png (the AUROCs as
    /// bars) and, for the corruptions, corruptions.png.
    #[arg(long, default_value = "runs/anomaly")]
    pub out: PathBuf,
}

pub fn anomaly(args: &AnomalyArgs) -> anyhow::Result<()> {
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    if args.iwae_k == 0 {
        bail!("--iwae-k must be at least 1 (1 scores the −ELBO)");
    }
    if args.out.is_file() {
        bail!(
            "{}: is a file; --out names the folder for anomaly.md and anomaly.csv",
            args.out.display()
        );
    }
    if let (Some(class), Some(out)) = (args.holdout_class, &args.write_holdout_data) {
        let mnist = load_mnist(&args.data)?;
        let split = HoldoutSplit::new(&mnist.train, &mnist.test, class, None)?;
        split.write_idx(&mnist.test, out)?;
        println!(
            "wrote {} training digits (every class but {class}) and the {} test digits to {} \
             (IDX); train on them with `genmodels train MODEL --data-dir {}`, then score with \
             `genmodels anomaly --checkpoint RUN --data-dir {} --holdout-class {class}`",
            split.train.len(),
            mnist.test.len(),
            out.display(),
            out.display(),
            out.display()
        );
        return Ok(());
    }
    let source = ModelSource {
        checkpoint: args.checkpoint.clone(),
        pretrained: args.pretrained.clone(),
    };
    let (dir, _) = source.dir()?;
    let entry = crate::commands::checkpoint_entry(&dir)?;
    struct Visit<'a> {
        dir: &'a Path,
        args: &'a AnomalyArgs,
    }
    impl ModelVisitor for Visit<'_> {
        type Output = anyhow::Result<()>;
        fn visit<M: Registered>(self, entry: &'static Entry) -> anyhow::Result<()> {
            anomaly_model::<M>(entry, self.dir, self.args)
        }
    }
    entry.visit(Visit { dir: &dir, args })
}

fn anomaly_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    args: &AnomalyArgs,
) -> anyhow::Result<()> {
    let anomaly_scores = M::CAPABILITIES
        .anomaly_scores
        .with_context(|| format!("a `{}` model has no anomaly score", entry.name))?;
    let started = Instant::now();
    let device = args.data.backend.device()?;
    let mnist = load_mnist(&args.data)?;
    // Checked before the model loads: the corruptions need twice --images test digits, a
    // held-out class its test digits.
    let task = match args.holdout_class {
        Some(class) => Task::Holdout(HoldoutSplit::new(
            &mnist.train,
            &mnist.test,
            class,
            Some(args.images),
        )?),
        None => Task::Corruptions(CorruptionTask::new(&mnist.test, args.images, args.seed)?),
    };
    let (model, manifest) = crate::commands::load_trained::<M>(dir, &device)?;
    let binarize = crate::commands::checkpoint_binarize(dir, &model);
    // The recipes' splits: the typical score comes from the held-out last 1,000 training
    // digits (the validation split, never trained on by a recipe's run), the background from
    // the rest.
    let splits = splits(mnist, binarize, manifest.seed, None, true)?;
    let validation = splits
        .validation
        .context("a recipe's splits hold a validation split")?;
    // Without the held-out class: its digits are not typical.
    let (reference, train) = match args.holdout_class {
        Some(class) => (
            of_class(validation.images(), class, false, "validation")?,
            of_class(splits.train.images(), class, false, "training")?
                .with_binarization(splits.train.binarization()),
        ),
        None => (validation.images().clone(), splits.train.clone()),
    };
    let reference = reference
        .take(args.images)
        .with_binarization(validation.binarization());
    let likelihood = matches!(
        M::DENSITY,
        DensityType::ExplicitTractable | DensityType::Approximate
    );
    let background = if likelihood {
        Some(PixelBackground::fit(&train, &device)?)
    } else {
        None
    };
    let presentation = splits.test.binarization();
    let mut scorer =
        |batch: &ImageBatch, options: &LikelihoodOptions| anomaly_scores(&model, batch, options);
    let inputs = AnomalyInputs {
        reference: &reference,
        background: background.as_ref(),
        options: LikelihoodOptions::iwae(args.iwae_k).with_seed(args.seed),
        batch_size: BATCH,
    };
    let report: AnomalyReport = match &task {
        Task::Corruptions(task) => {
            evaluate_corruptions(&mut scorer, task, presentation, inputs, &device)?
        }
        Task::Holdout(split) => {
            evaluate_holdout(&mut scorer, split, presentation, inputs, &device)?
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut md = format!(
        "# Anomaly detection: {}{} ({})\n\ncheckpoint: {}; test digits presented as `{:?}`; \
         --images {} --seed {} --iwae-k {}; {:.0} s\n\n",
        args.pretrained
            .as_ref()
            .map_or(String::new(), |name| format!("{name}, ")),
        entry.name,
        M::DENSITY.name(),
        dir.display(),
        presentation,
        args.images,
        args.seed,
        args.iwae_k,
        seconds
    );
    md.push_str(&report.to_markdown());
    md.push_str(
        "\nAUROC: 1 separates perfectly, 0.5 is chance, below 0.5 the model finds the \
         anomalies more typical than real digits. Typicality: |score − typical score|. \
         Likelihood ratio: −log p(x) − (−log p_bg(x)), p_bg an independent-pixel model of the \
         training digits (likelihood models only).\n",
    );
    write_atomic(&args.out.join("anomaly.md"), md.as_bytes())?;
    write_atomic(&args.out.join("anomaly.csv"), report.to_csv().as_bytes())?;
    let mut json = serde_json::to_value(&report)?;
    json["model"] = entry.name.into();
    json["pretrained"] = args.pretrained.clone().into();
    json["holdout_class"] = args.holdout_class.into();
    json["checkpoint"] = dir.display().to_string().into();
    json["seed"] = args.seed.into();
    json["iwae_k"] = args.iwae_k.into();
    json["seconds"] = seconds.into();
    write_atomic(
        &args.out.join("anomaly.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    save_chart(&args.out.join("anomaly.png"), &report, args, entry.name)?;
    if let Task::Corruptions(task) = &task {
        save_corruption_sheet(
            &args.out.join("corruptions.png"),
            task,
            presentation,
            &device,
        )?;
    }
    print!("{md}");
    eprintln!("written to {}", args.out.display());
    Ok(())
}

/// The AUROCs as grouped bars: one group per set of anomalies, one bar per score.
fn save_chart(
    path: &Path,
    report: &AnomalyReport,
    args: &AnomalyArgs,
    model: &str,
) -> anyhow::Result<()> {
    let name = args.pretrained.as_deref().unwrap_or(model);
    let rows = &report.rows;
    let mut chart = BarChart::new(format!("{name}: AUROC, raw and corrected"))
        .with_y_label("AUROC (0.5 = chance)")
        .with_categories(rows.iter().map(|r| r.anomaly.clone()))
        .with_series("raw", rows.iter().map(|r| Some(r.auroc)))
        .with_series("typicality", rows.iter().map(|r| Some(r.auroc_typicality)));
    if rows.iter().any(|r| r.auroc_ratio.is_some()) {
        chart = chart.with_series("likelihood ratio", rows.iter().map(|r| r.auroc_ratio));
    }
    chart.save_png(path)?;
    Ok(())
}

/// Which of the two tasks a run measures.
enum Task {
    Corruptions(CorruptionTask),
    Holdout(HoldoutSplit),
}

/// The first images of the clean set and of each corruption, as the model sees them.
fn save_corruption_sheet(
    path: &Path,
    task: &CorruptionTask,
    presentation: genmodels::data::Binarization,
    device: &Device,
) -> anyhow::Result<()> {
    let panel = |set: &genmodels::data::ImageSet| -> anyhow::Result<Tensor<4>> {
        let data = set.clone().with_binarization(presentation);
        Ok(data.first(SHEET_IMAGES, device)?.images().clone())
    };
    let mut panels = vec![("clean".to_string(), panel(&task.clean)?)];
    for (corruption, set) in &task.corrupted {
        panels.push((corruption.name().to_string(), panel(set)?));
    }
    save_labelled_panels(path, panels, GridLayout::with_columns(SHEET_IMAGES), 4)?;
    Ok(())
}

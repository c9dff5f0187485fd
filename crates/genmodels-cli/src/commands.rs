//! The `train`, `eval`, `sample` and `complete` commands, each generic over a model of the
//! [registry](genmodels::registry) and reached through [`Entry::visit`].

use std::path::Path;

use anyhow::{Context, bail};
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::checkpoint::{self, MANIFEST_FILE};
use genmodels::eval::parzen::{ParzenOptions, evaluate_parzen};
use genmodels::eval::quality::{GaussianFit, LaplacianEnergy, SampleQuality};
use genmodels::evaluation::{evaluate_log_likelihood, evaluate_loss};
use genmodels::prelude::*;
use genmodels::recipe::RecipeRun;
use genmodels::registry::{self, Entry, ModelVisitor, Pixels, Recipe, Registered};
use genmodels::report::TrainingProgress;
use genmodels::report::image_output::{GridLayout, check_png_path, save_image_grid};
use genmodels::report::plot::validation_chart;
use genmodels::{ImageShape, ModelConfig, check_data};
use genmodels_core::fs::{FolderLock, read_json, write_atomic, write_json_atomic};

use crate::data::{datasets, load_mnist, splits};
use crate::metrics::{Metrics, QualityMetrics, TestMetrics, table};
use crate::models::{
    SampleOptions, check_method, data_mismatch, default_binarize, preview_samples, sampling_method,
};
use crate::{BinarizeMode, DataArgs, TrainArgs};

/// File in the output directory recording how the run was made (used by `eval`).
const RUN_FILE: &str = "run.json";
const EVAL_BATCH: usize = 100;
/// Samples drawn per call when scoring sample quality.
const QUALITY_SAMPLE_BATCH: usize = 500;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    model: String,
    binarize: BinarizeMode,
    seed: u64,
    /// The registry recipe the run follows (`converged`), which `--resume` continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipe: Option<String>,
}

/// Images per step when neither `--batch-size` nor a recipe says.
const DEFAULT_BATCH_SIZE: usize = 100;

/// A command for the model type of an entry: `$body` with `M` the model type and the
/// struct's fields in scope by name.
macro_rules! visit_with {
    ($entry:expr, $name:ident { $($field:ident : $ty:ty = $value:expr),* $(,)? } => $body:ident) => {{
        struct $name<'a> {
            $($field: $ty,)*
            _lifetime: std::marker::PhantomData<&'a ()>,
        }
        impl ModelVisitor for $name<'_> {
            type Output = anyhow::Result<()>;
            fn visit<M: Registered>(self, entry: &'static Entry) -> anyhow::Result<()> {
                let $name { $($field,)* .. } = self;
                $body::<M>(entry, $($field),*)
            }
        }
        $entry.visit($name { $($field: $value,)* _lifetime: std::marker::PhantomData })
    }};
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    visit_with!(args.model.0, Train { args: &'a TrainArgs = args } => train_model)
}

/// The `--config` file (a checkpoint's `config.json` or a bare config), the `--preset`, or the
/// configuration the model's name stands for, for binary data unless `--binarize none` asks
/// for grey levels; with `--objective` applied.
fn read_config<M: Registered>(
    entry: &'static Entry,
    args: &TrainArgs,
) -> anyhow::Result<M::Config> {
    let config = read_base_config::<M>(entry, args)?;
    match args.objective {
        Some(objective) => M::with_objective(config, objective.into()).map_err(|_| {
            anyhow::anyhow!(
                "--objective applies to GAN models (gan, dcgan, cgan), not {}",
                entry.name
            )
        }),
        None => Ok(config),
    }
}

fn read_base_config<M: Registered>(
    entry: &'static Entry,
    args: &TrainArgs,
) -> anyhow::Result<M::Config> {
    if let Some(name) = &args.preset {
        return Ok(registry::preset::<M>(name)?);
    }
    let pixels = match args.binarize {
        Some(BinarizeMode::None) => Pixels::Grey,
        _ => Pixels::Binary,
    };
    let recipe_preset = match &args.recipe {
        Some(recipe) => entry.recipe(recipe, pixels)?.preset,
        None => None,
    };
    if let (Some(name), None) = (recipe_preset, &args.config) {
        return Ok(registry::preset::<M>(name)?);
    }
    let Some(path) = &args.config else {
        return Ok(entry.config::<M>(pixels)?);
    };
    let model_name = <M::Config as ModelConfig>::MODEL_NAME;
    let value: serde_json::Value = read_json(path)?;
    let given = match value.get("config") {
        Some(inner) if value.get("model").is_some() => {
            let name = value["model"].as_str().unwrap_or_default();
            if name != model_name {
                bail!(
                    "{} configures a `{name}` model, not `{model_name}`",
                    path.display()
                );
            }
            inner.clone()
        }
        _ => value,
    };
    // Fields the file leaves out keep the model's defaults (whatever the binarisation).
    let base = entry.config::<M>(Pixels::Binary)?;
    let mut merged = serde_json::to_value(base)?;
    if let (Some(fields), Some(known)) = (given.as_object(), merged.as_object()) {
        let unknown: Vec<&String> = fields.keys().filter(|k| !known.contains_key(*k)).collect();
        if !unknown.is_empty() {
            let known: Vec<&String> = known.keys().collect();
            bail!(
                "{} has unknown {model_name} config fields {unknown:?}; the fields are {known:?}",
                path.display()
            );
        }
    }
    merge_json(&mut merged, given);
    let config = serde_json::from_value(merged);
    config.with_context(|| format!("{} is not a valid {model_name} config", path.display()))
}

/// Overlays `overlay` onto `base`: objects whose keys all exist in `base` are merged key by
/// key; anything else (a value, or an enum variant other than the default's) replaces.
fn merge_json(base: &mut serde_json::Value, overlay: serde_json::Value) {
    use serde_json::Value::Object;
    match (base, overlay) {
        (Object(base), Object(overlay)) if overlay.keys().all(|k| base.contains_key(k)) => {
            for (key, value) in overlay {
                merge_json(base.get_mut(&key).expect("checked above"), value);
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn train_model<M: Registered>(entry: &'static Entry, args: &TrainArgs) -> anyhow::Result<()> {
    let out = &args.out;
    let (device, replicas) = match &args.devices {
        Some(indices) => {
            let mut devices = args.data.backend.devices(indices)?.into_iter();
            (
                devices.next().expect("one device at least"),
                devices.collect(),
            )
        }
        None => (args.data.backend.device()?, Vec::new()),
    };
    let on_devices = match &args.devices {
        Some(indices) if indices.len() > 1 => format!("{} devices {indices:?}", args.data.backend),
        _ => args.data.backend.to_string(),
    };
    // Every input is checked before anything is written into `out`, so that a refused
    // command leaves the run folder as it was.
    let plan = plan_run::<M>(entry, args, &device)?;
    let seed = plan.record.seed;
    let splits = splits(
        load_mnist(&args.data)?,
        plan.record.binarize,
        seed,
        args.train_images,
        plan.recipe.is_some(),
    )?;
    let (train, test) = (&splits.train, &splits.test);
    check_data(plan.image_shape, train, Some(test))?;
    if let Some(validation) = &splits.validation {
        check_data(plan.image_shape, validation, None)?;
    }
    let sample_options = SampleOptions {
        pixel_draws: false,
        sampler: args.sampler,
    };
    check_method::<M>(&sample_options)?;
    let base = match &plan.recipe {
        Some(recipe) => RecipeRun::new(recipe).trainer_config(),
        None => TrainerConfig::default(),
    };
    let trainer = Trainer::new(TrainerConfig {
        epochs: plan.epochs,
        batch_size: plan.batch_size,
        learning_rate: plan.learning_rate,
        seed,
        checkpoint_dir: Some(out.clone()),
        eval_options: LikelihoodOptions::iwae(args.iwae_k.max(1)),
        eval_batch_size: EVAL_BATCH,
        ..base
    })
    .with_observer(TrainingProgress::new())
    .with_replicas(replicas);
    trainer.config().validate()?;

    // From here on this process writes into `out`; the lock keeps a second run out of it.
    let holder = format!("genmodels train {} --out {}", entry.name, out.display());
    let _lock = FolderLock::acquire(out, &holder)?;
    if out.join(MANIFEST_FILE).exists() != plan.resume {
        bail!(
            "a checkpoint appeared in {} while this run was starting (another run wrote it); \
             pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    if plan.write_record {
        write_json_atomic(&out.join(RUN_FILE), &plan.record)?;
    }
    let config = trainer.config();
    match (&plan.recipe, &splits.validation) {
        (Some(recipe), Some(validation)) => eprintln!(
            "training {} by the `{}` recipe on {} images ({}) for at most {} epochs (batch {}, \
             learning rate {} {}, stopping after {} epochs without improvement), validating \
             on {} of the {} held-out training images, with {}, writing to {}",
            entry.name,
            plan.record.recipe.as_deref().unwrap_or_default(),
            train.len(),
            train.image_shape(),
            plan.epochs,
            config.batch_size,
            config.learning_rate,
            config.schedule.describe(),
            recipe.early_stopping.patience,
            recipe
                .validation_images
                .map_or(validation.len(), |n| n.min(validation.len())),
            validation.len(),
            on_devices,
            out.display()
        ),
        _ => eprintln!(
            "training {} on {} images ({}) for {} epochs with {}, writing to {}",
            entry.name,
            train.len(),
            train.image_shape(),
            plan.epochs,
            on_devices,
            out.display()
        ),
    }
    let mut validation = match (&plan.recipe, &splits.validation) {
        (Some(recipe), Some(data)) => {
            RecipeRun::new(recipe).validation::<M>(data, train, &device)?
        }
        _ => None,
    };
    let trained = match (plan.resume, validation.as_deref_mut()) {
        (true, Some(validation)) => {
            trainer.resume_validated::<M::Config>(out, train, validation, Some(test), &device)?
        }
        (true, None) => trainer.resume::<M::Config>(out, train, Some(test), &device)?,
        (false, validation) => {
            let model = init_seeded(&plan.config, seed, &device)?;
            match validation {
                Some(validation) => {
                    trainer.fit_validated(model, train, validation, Some(test), &device)?
                }
                None => trainer.fit(model, train, Some(test), &device)?,
            }
        }
    };
    let (learning_rate, binarize) = (plan.learning_rate, plan.record.binarize);
    let report = &trained.report;
    let model = trained.model;

    let sample_method = sampling_method(&model, &sample_options)?;
    let sample_seconds_per_image =
        write_pictures(&model, test, out, seed, &sample_options, &device)?;
    if let Some(record) = &report.validation {
        validation_chart(record, report.best_epoch).save_png(out.join("validation.png"))?;
    }
    let test_metrics = test_metrics::<M>(
        test,
        report
            .test_loss
            .clone()
            .context("the trainer evaluated the test split")?,
        report.test_log_likelihood.clone(),
        report.likelihood_unavailable.clone(),
        model.likelihood_condition(),
    )?;
    let metrics = Metrics {
        model: entry.name.to_string(),
        backend: args.data.backend.to_string(),
        epochs: report.epochs,
        train_images: report.train_images,
        batch_size: plan.batch_size,
        lr: learning_rate,
        seed,
        binarize,
        train_seconds: report.train_seconds,
        train_images_per_second: report.images_per_second,
        fit_seconds: report.fit_seconds,
        params: model.num_params(),
        final_train_loss: report.epoch_losses.last().copied(),
        final_train_components: report.epoch_components.last().cloned().unwrap_or_default(),
        training_warnings: report.warnings.clone(),
        sample_seconds_per_image,
        sample_method: sample_method.map(|m| m.describe()),
        recipe: plan.record.recipe.clone(),
        validation_images: splits.validation.as_ref().map(|v| v.len()),
        best_epoch: report.best_epoch,
        stopped_early: report.stopped_early,
        validation: report.validation.clone(),
        test: test_metrics,
    };
    write_json_atomic(&out.join("metrics.json"), &metrics)?;
    print!("{}", metrics.summary());
    println!("wrote {}", out.display());
    Ok(())
}

/// What `train` will do, decided from the arguments and the run folder before anything is
/// written.
struct RunPlan<C> {
    /// The configuration to train from scratch (a resumed run trains its checkpoint's).
    config: C,
    /// Whether it continues the checkpoint in the run folder.
    resume: bool,
    /// The run's `run.json`.
    record: RunRecord,
    /// Whether `run.json` must be written (a new run, or a folder without one).
    write_record: bool,
    /// The images the model takes.
    image_shape: ImageShape,
    epochs: usize,
    learning_rate: f64,
    batch_size: usize,
    /// The recipe the run follows, when it follows one.
    recipe: Option<Recipe>,
}

/// Checks the arguments against the run folder (without writing to it) and decides the run.
fn plan_run<M: Registered>(
    entry: &'static Entry,
    args: &TrainArgs,
    device: &Device,
) -> anyhow::Result<RunPlan<M::Config>> {
    let out = &args.out;
    let resume = out.join(MANIFEST_FILE).exists();
    if resume && !args.resume {
        bail!(
            "{} already holds a checkpoint; pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    let requested = read_config::<M>(entry, args)?;
    let (config, recorded) = if resume {
        check_resumable::<M>(entry, args, &requested)?
    } else {
        (requested, None)
    };
    let recipe_name = match (
        &args.recipe,
        recorded.as_ref().and_then(|r| r.recipe.as_ref()),
    ) {
        (Some(asked), Some(run)) if asked != run => bail!(
            "{} follows the `{run}` recipe; --recipe {asked} would change it (leave --recipe \
             out to continue it)",
            out.display()
        ),
        (asked, run) => asked.clone().or_else(|| run.cloned()),
    };
    let recipe = recipe_name
        .as_deref()
        .map(|name| entry.recipe(name, M::pixels(&config)))
        .transpose()?;
    let seed = match (args.seed, recipe) {
        (Some(seed), _) => seed,
        // A resumed run continues with its checkpoint's seed.
        (None, _) if resume => checkpoint::read_manifest(out)?.seed,
        (None, Some(recipe)) => recipe.seed,
        (None, None) => 0,
    };
    let epochs = args.epochs.or(recipe.map(|r| r.max_epochs));
    let (config, settings) = M::training(config, epochs);
    let binarize = match (args.binarize, &recorded) {
        (Some(asked), Some(run)) if asked != run.binarize => bail!(
            "{} was trained on data binarised `{}`; --binarize {} would change its data \
             (leave --binarize out to continue it)",
            out.display(),
            binarize_name(run.binarize),
            binarize_name(asked)
        ),
        (Some(asked), _) => asked,
        (None, Some(run)) => run.binarize,
        (None, None) => default_binarize::<M>(&config),
    };
    if let Some(reason) = data_mismatch::<M>(&config, binarize) {
        bail!("{reason}");
    }
    let image_shape = config.init(device)?.image_shape();
    let record = RunRecord {
        model: entry.name.to_string(),
        binarize,
        seed,
        recipe: recipe_name,
    };
    let recipe_learning_rate = recipe
        .filter(|_| M::GRADIENT_TRAINED)
        .map(|r| r.learning_rate);
    Ok(RunPlan {
        config,
        resume,
        write_record: recorded.as_ref() != Some(&record),
        record,
        image_shape,
        epochs: settings.epochs,
        learning_rate: args
            .lr
            .or(recipe_learning_rate)
            .unwrap_or(settings.learning_rate),
        batch_size: args
            .batch_size
            .or(recipe.map(|r| r.batch_size))
            .unwrap_or(DEFAULT_BATCH_SIZE),
        recipe,
    })
}

/// Checks that the checkpoint in the run folder can be continued by these arguments: the
/// same model, the same seed, and (when `--config`, `--preset` or `--objective` is given) the
/// same configuration. Returns the checkpoint's configuration and the folder's `run.json`.
fn check_resumable<M: Registered>(
    entry: &'static Entry,
    args: &TrainArgs,
    requested: &M::Config,
) -> anyhow::Result<(M::Config, Option<RunRecord>)> {
    let out = &args.out;
    let model_name = <M::Config as ModelConfig>::MODEL_NAME;
    let saved_model = checkpoint::read_model_name(out)?;
    if saved_model != model_name {
        bail!(
            "{} holds a `{saved_model}` checkpoint, which cannot continue as `{}`",
            out.display(),
            entry.name
        );
    }
    let recorded = read_json::<RunRecord>(&out.join(RUN_FILE)).ok();
    if let Some(run) = recorded.as_ref().filter(|run| run.model != entry.name) {
        bail!(
            "{} holds a `{}` run, which cannot continue as `{}`",
            out.display(),
            run.model,
            entry.name
        );
    }
    let manifest = checkpoint::read_manifest(out)?;
    if args.seed.is_some_and(|seed| seed != manifest.seed) {
        bail!(
            "{} was trained with seed {}; pass --seed {} to continue it",
            out.display(),
            manifest.seed,
            manifest.seed
        );
    }
    let saved: M::Config = checkpoint::load_config(out)?;
    if args.config.is_some() || args.preset.is_some() || args.objective.is_some() {
        let differing = differing_fields(
            &serde_json::to_value(requested)?,
            &serde_json::to_value(&saved)?,
        );
        if !differing.is_empty() {
            bail!(
                "the configuration asked for differs from the checkpoint's in {}; a run \
                 continues with the configuration it started with (leave --config, --preset \
                 and --objective out, or train into another --out)",
                differing.join(", ")
            );
        }
    }
    Ok((saved, recorded))
}

/// The top-level fields in which two configurations differ.
fn differing_fields(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| format!("`{k}`"))
                .collect()
        }
        _ if a != b => vec!["its value".to_string()],
        _ => Vec::new(),
    }
}

/// A binarisation as the command line spells it.
fn binarize_name(mode: BinarizeMode) -> String {
    use clap::ValueEnum;
    mode.to_possible_value()
        .map_or_else(|| format!("{mode:?}"), |v| v.get_name().to_string())
}

/// Test figures: the loss, the likelihood estimate, and the ELBO where the model has one.
///
/// The ELBO needs no pass of its own: it is the likelihood itself when that was estimated
/// with one sample, and otherwise `−(reconstruction + kl)` from the test-loss pass (the VAE's
/// loss components, whatever its β), a one-sample ELBO estimate per image.
fn test_metrics<M: Registered>(
    test: &dyn ImageDataset,
    loss: genmodels::evaluation::LossSummary,
    likelihood: Option<LogLikelihood>,
    likelihood_unavailable: Option<String>,
    condition: Option<String>,
) -> anyhow::Result<TestMetrics> {
    let component = |wanted: &str| {
        loss.components
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, v)| *v)
    };
    let elbo = match (&likelihood, M::REPORTS_ELBO) {
        (Some(ll), true) if ll.kind == LikelihoodKind::Elbo => Some(ll.mean_log_likelihood_nats()),
        (_, true) => Some(
            -(component("reconstruction").context("the loss reports its reconstruction")?
                + component("kl").context("the loss reports its KL term")?),
        ),
        _ => None,
    };
    let reconstruction = component("reconstruction");
    Ok(TestMetrics {
        test_images: test.len(),
        test_loss: loss.mean,
        test_reconstruction: reconstruction,
        test_nll_nats: likelihood.as_ref().map(|l| l.mean_nll_nats()),
        test_nll_stderr_nats: likelihood.as_ref().map(|l| l.standard_error_nats()),
        nll_kind: likelihood.as_ref().map(|l| l.kind.name().to_string()),
        nll_condition: likelihood.as_ref().and(condition),
        iwae_k: likelihood.as_ref().and_then(|l| l.kind.iwae_k()),
        test_bits_per_dim: likelihood.as_ref().map(|l| l.nll_bits_per_dim()),
        test_elbo_nats: elbo,
        likelihood_unavailable,
        parzen_log_likelihood_nats: None,
        parzen_stderr_nats: None,
        parzen_sigma: None,
        parzen_samples: None,
        sample_quality: None,
    })
}

/// `samples.png`, `reconstructions.png` and `interpolation.png`; returns the sampling time
/// per image.
fn write_pictures<M: Registered>(
    model: &M,
    test: &Dataset,
    out: &Path,
    seed: u64,
    sample_options: &SampleOptions,
    device: &Device,
) -> anyhow::Result<f64> {
    let started = std::time::Instant::now();
    let samples = preview_samples(model, M::PREVIEW_SAMPLES, seed, sample_options)?;
    let sample_seconds_per_image = started.elapsed().as_secs_f64() / M::PREVIEW_SAMPLES as f64;
    save_image_grid(
        &out.join("samples.png"),
        samples,
        GridLayout::with_columns(8),
    )?;
    for (file, images) in model.pictures() {
        save_image_grid(&out.join(file), images, GridLayout::with_columns(10))?;
    }
    let originals = test.first(32, device)?;
    if let Some(reconstruct) = M::CAPABILITIES.reconstruct {
        // Rows of 8 originals, each followed by the row of their reconstructions.
        let (o, r) = (originals.images().clone(), reconstruct(model, &originals)?);
        let rows: Vec<Tensor<4>> = (0..originals.len().div_ceil(8))
            .flat_map(|i| {
                let len = 8.min(originals.len() - 8 * i);
                [
                    o.clone().narrow(0, 8 * i, len),
                    r.clone().narrow(0, 8 * i, len),
                ]
            })
            .collect();
        save_image_grid(
            &out.join("reconstructions.png"),
            Tensor::cat(rows, 0),
            GridLayout::with_columns(8),
        )?;
    }
    let indices: Vec<usize> = (0..16.min(test.len())).collect();
    let half = indices.len() / 2;
    if half > 0 {
        let start = test.batch(&indices[..half], 0, device)?;
        let end = test.batch(&indices[half..2 * half], 0, device)?;
        let capabilities = M::CAPABILITIES;
        let paths = match (capabilities.interpolate, capabilities.interpolate_latents) {
            (Some(interpolate), _) => Some(interpolate(model, &start, &end, 10)),
            (None, Some(interpolate_latents)) => Some(interpolate_latents(model, seed, half, 10)),
            (None, None) => None,
        };
        if let Some(paths) = paths {
            save_image_grid(
                &out.join("interpolation.png"),
                paths?,
                GridLayout::with_columns(10),
            )?;
        }
    }
    Ok(sample_seconds_per_image)
}

/// The model a run folder holds: its best checkpoint (the folder `best/`) when training by a
/// recipe kept one, else its last.
pub(crate) fn load_trained<M: Registered>(
    dir: &Path,
    device: &Device,
) -> anyhow::Result<(M, checkpoint::CheckpointManifest)> {
    let best = dir.join(genmodels::trainer::BEST_DIR);
    if best.join(MANIFEST_FILE).exists() {
        let (model, manifest) = checkpoint::load_model::<M::Config>(&best, device)?;
        eprintln!(
            "using {}: the best checkpoint by validation score, epoch {}",
            best.display(),
            manifest.epoch
        );
        return Ok((model, manifest));
    }
    Ok(checkpoint::load_model::<M::Config>(dir, device)?)
}

/// What `genmodels eval` computes.
pub struct EvalRequest {
    /// Whether the checkpoint folder is only read (the zoo's): no `eval.json` is written and
    /// no run's `metrics.json` updated.
    pub read_only: bool,
    /// Importance samples (1 = ELBO).
    pub iwae_k: usize,
    /// Seed of the estimators.
    pub seed: u64,
    /// A Parzen-window estimate too, when asked for.
    pub parzen: Option<ParzenRequest>,
    /// Sample-quality scores of this many samples, when asked for.
    pub quality_samples: Option<usize>,
    /// The sampler of those samples (the model's own when none is named).
    pub sampler: crate::SamplerArgs,
}

/// `--parzen`'s sizes.
pub struct ParzenRequest {
    /// Samples in the window.
    pub samples: usize,
    /// Training images on which σ is chosen.
    pub validation: usize,
}

pub fn eval(dir: &Path, data: &DataArgs, request: &EvalRequest) -> anyhow::Result<()> {
    visit_with!(checkpoint_entry(dir)?, Eval {
        dir: &'a Path = dir,
        data: &'a DataArgs = data,
        request: &'a EvalRequest = request,
    } => eval_model)
}

/// The registry entry of the model a checkpoint holds: the one its run was trained as (its
/// `run.json`, e.g. `gated-pixelcnn-superres`) where that entry is of the checkpoint's model
/// type, else the first entry of that type.
pub(crate) fn checkpoint_entry(dir: &Path) -> anyhow::Result<&'static Entry> {
    let name = checkpoint::read_model_name(dir)?;
    let trained_as = read_json::<RunRecord>(&dir.join(RUN_FILE))
        .ok()
        .and_then(|run| registry::entry(&run.model).ok())
        .filter(|entry| entry.checkpoint_name() == name);
    match trained_as {
        Some(entry) => Ok(entry),
        None => registry::entry_for_checkpoint(&name).with_context(|| dir.display().to_string()),
    }
}

fn eval_model<M: Registered>(
    _: &'static Entry,
    dir: &Path,
    data: &DataArgs,
    request: &EvalRequest,
) -> anyhow::Result<()> {
    // Bernoulli draws, not a VAE's mean images: the judge scores what the model samples.
    let sample_options = SampleOptions {
        pixel_draws: true,
        sampler: request.sampler,
    };
    check_method::<M>(&sample_options)?;
    let sampler_named = request.sampler.method.is_some();
    if sampler_named && request.quality_samples.is_none() {
        bail!("--method chooses the sampler of --quality-samples; add --quality-samples N");
    }
    let device = data.backend.device()?;
    let (model, manifest) = load_trained::<M>(dir, &device)?;
    let test = checkpoint_test_set(dir, &model, manifest.seed, data)?;
    let loss = evaluate_loss(&model, &test, EVAL_BATCH, request.seed, &device)?;
    let options = LikelihoodOptions::iwae(request.iwae_k.max(1)).with_seed(request.seed);
    let (likelihood, unavailable) =
        match evaluate_log_likelihood(&model, &test, &options, EVAL_BATCH, &device) {
            Ok(ll) => (Some(ll), None),
            Err(e @ GenError::LikelihoodNotAvailable { .. }) => (None, Some(e.to_string())),
            Err(e) => return Err(e.into()),
        };
    let condition = model.likelihood_condition();
    let mut metrics = test_metrics::<M>(&test, loss, likelihood, unavailable, condition)?;
    if let Some(parzen) = &request.parzen {
        // σ is chosen on held-out digits (Goodfellow et al.): the first of the recipes'
        // validation split, the last training images, never the test split.
        let validation = checkpoint_validation_set(dir, &model, manifest.seed, data)?;
        let options = ParzenOptions {
            samples: parzen.samples,
            validation: parzen.validation,
            seed: request.seed,
            ..ParzenOptions::default()
        };
        let estimate = evaluate_parzen(&model, &validation, &test, &options, &device)?;
        if estimate.sigma_at_grid_edge {
            eprintln!(
                "warning: the Parzen kernel width σ = {} lies at the edge of its grid",
                estimate.sigma
            );
        }
        metrics.parzen_log_likelihood_nats =
            Some(estimate.log_likelihood.mean_log_likelihood_nats());
        metrics.parzen_stderr_nats = Some(estimate.log_likelihood.standard_error_nats());
        metrics.parzen_sigma = Some(estimate.sigma);
        metrics.parzen_samples = Some(estimate.samples);
    }
    if let Some(samples) = request.quality_samples {
        let train = checkpoint_split(dir, &model, manifest.seed, data, Some(samples))?.0;
        metrics.sample_quality = Some(sample_quality(
            &model,
            &train,
            &test,
            samples,
            request.seed,
            &sample_options,
            &device,
        )?);
    }
    if !request.read_only {
        update_run_metrics(dir, &metrics)?;
    }
    let mut rows = vec![
        ("checkpoint".to_string(), dir.display().to_string()),
        (
            "model".into(),
            <M::Config as ModelConfig>::MODEL_NAME.into(),
        ),
        ("epochs trained".into(), manifest.epoch.to_string()),
        ("backend".into(), data.backend.to_string()),
    ];
    rows.extend(metrics.rows());
    print!("{}", table(&rows));
    if !request.read_only {
        write_json_atomic(&dir.join("eval.json"), &metrics)?;
    }
    Ok(())
}

/// What `genmodels ddim-curve` measures.
pub struct DdimCurveRequest {
    /// DDIM's steps, one point each.
    pub steps: Vec<usize>,
    /// DDIM's noise scale.
    pub eta: f64,
    /// Samples scored per point.
    pub samples: usize,
    /// Seed of the samples.
    pub seed: u64,
}

/// One point of the DDIM curve.
#[derive(Debug, Clone, serde::Serialize)]
struct DdimCurvePoint {
    steps: usize,
    eta: f64,
    quality: QualityMetrics,
}

pub fn ddim_curve(
    dir: &Path,
    request: &DdimCurveRequest,
    out: &Path,
    data: &DataArgs,
) -> anyhow::Result<()> {
    visit_with!(checkpoint_entry(dir)?, DdimCurve {
        dir: &'a Path = dir,
        request: &'a DdimCurveRequest = request,
        out: &'a Path = out,
        data: &'a DataArgs = data,
    } => ddim_curve_model)
}

fn ddim_curve_model<M: Registered>(
    _: &'static Entry,
    dir: &Path,
    request: &DdimCurveRequest,
    out: &Path,
    data: &DataArgs,
) -> anyhow::Result<()> {
    let mut steps = request.steps.clone();
    steps.sort_unstable();
    steps.dedup();
    if steps.is_empty() {
        bail!("--steps names no DDIM steps");
    }
    let device = data.backend.device()?;
    let (model, manifest) = load_trained::<M>(dir, &device)?;
    if !matches!(model.default_method(), SamplingMethod::Ddim { .. }) {
        bail!(
            "ddim-curve applies to diffusion models, not the {}",
            M::LABEL
        );
    }
    let options = |steps: usize| SampleOptions {
        pixel_draws: true,
        sampler: crate::SamplerArgs {
            method: Some(crate::MethodArg::Ddim),
            steps: Some(steps),
            eta: Some(request.eta),
        },
    };
    // Bad steps or η fail on one image before any long run.
    for &s in &steps {
        preview_samples(&model, 1, request.seed, &options(s))?;
    }
    let test = checkpoint_test_set(dir, &model, manifest.seed, data)?;
    let train = checkpoint_split(dir, &model, manifest.seed, data, Some(request.samples))?.0;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let mut points = Vec::new();
    for &s in &steps {
        let quality = sample_quality(
            &model,
            &train,
            &test,
            request.samples,
            request.seed,
            &options(s),
            &device,
        )?;
        println!(
            "DDIM {s:>4} steps: MNIST-FID {:.2}, sharpness {:.2}, {:.1} ms/image",
            quality.fid,
            quality.sharpness.unwrap_or(f64::NAN),
            quality.seconds_per_image.unwrap_or(f64::NAN) * 1e3
        );
        points.push(DdimCurvePoint {
            steps: s,
            eta: request.eta,
            quality,
        });
    }
    write_ddim_curve(dir, request, &points, out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The curve as a table (markdown and CSV), JSON and two charts.
fn write_ddim_curve(
    dir: &Path,
    request: &DdimCurveRequest,
    points: &[DdimCurvePoint],
    out: &Path,
) -> anyhow::Result<()> {
    use genmodels::report::plot::LineChart;
    let floor = points.first().map_or(f64::NAN, |p| p.quality.floor_fid);
    let mut md = format!(
        "# DDIM: sample quality against steps\n\n`genmodels ddim-curve` on `{}`, {} samples per \
         point (the same starting noise, seed {}), η = {}, on {} ({}), {}. MNIST-FID \
         of as many real training images (the floor): {floor:.2}.\n\n\
         | DDIM steps | MNIST-FID | Inception-style score | sharpness | time / image |\n\
         |---|---|---|---|---|\n",
        dir.display(),
        request.samples,
        request.seed,
        request.eta,
        genmodels::compare::machine_description(),
        genmodels::kernels::machine::vector_extensions().join(" "),
        genmodels::compare::utc_date(std::time::SystemTime::now()),
    );
    let mut csv = String::from(
        "steps,eta,samples,fid,floor_fid,inception_score,sharpness,seconds_per_image\n",
    );
    for p in points {
        let q = &p.quality;
        let (sharpness, seconds) = (
            q.sharpness.unwrap_or(f64::NAN),
            q.seconds_per_image.unwrap_or(f64::NAN),
        );
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {sharpness:.2} | {:.1} ms |\n",
            p.steps,
            q.fid,
            q.inception_score,
            seconds * 1e3
        ));
        csv.push_str(&format!(
            "{},{},{},{},{},{},{sharpness},{seconds}\n",
            p.steps, p.eta, q.samples, q.fid, q.floor_fid, q.inception_score
        ));
    }
    md.push_str("\n![MNIST-FID against steps](fid_vs_steps.png)\n\n![time per image against steps](time_vs_steps.png)\n");
    write_atomic(&out.join("ddim_curve.md"), md.as_bytes())?;
    write_atomic(&out.join("ddim_curve.csv"), csv.as_bytes())?;
    write_json_atomic(&out.join("ddim_curve.json"), &points)?;
    let series = |f: fn(&DdimCurvePoint) -> f64| -> Vec<(f64, f64)> {
        points.iter().map(|p| (p.steps as f64, f(p))).collect()
    };
    let log_x = points.len() > 1;
    LineChart::new("DDIM: MNIST-FID against steps")
        .with_x_label("DDIM steps")
        .with_y_label("MNIST-FID (lower is better)")
        .with_log_x(log_x)
        .with_markers(true)
        .with_series("samples", series(|p| p.quality.fid))
        .with_series("real training images", series(|p| p.quality.floor_fid))
        .save_png(out.join("fid_vs_steps.png"))?;
    LineChart::new("DDIM: sampling time per image")
        .with_x_label("DDIM steps")
        .with_y_label("milliseconds per image")
        .with_log_x(log_x)
        .with_log_y(log_x)
        .with_markers(true)
        .with_series(
            "time",
            series(|p| p.quality.seconds_per_image.unwrap_or(f64::NAN) * 1e3),
        )
        .save_png(out.join("time_vs_steps.png"))?;
    Ok(())
}

/// Scores `samples` of the model's samples with the MNIST judge against `test`, and as many
/// images of `train` for the floor.
fn sample_quality<M: Registered>(
    model: &M,
    train: &Dataset,
    test: &Dataset,
    samples: usize,
    seed: u64,
    options: &SampleOptions,
    device: &Device,
) -> anyhow::Result<QualityMetrics> {
    if samples < 2 {
        bail!("--quality-samples must be at least 2 (a covariance needs two samples)");
    }
    let judge = genmodels::data::mnist_judge(device)?;
    let reference = GaussianFit::of(&judge.judge_dataset(test, None, device)?)?;
    let mut energy = LaplacianEnergy::new();
    let mut sampling_seconds = 0.0;
    let judged = judge.judge_in_batches(samples, QUALITY_SAMPLE_BATCH, |start, n| {
        let started = std::time::Instant::now();
        // Read back (into the energy) before the clock stops: a lazy backend's work is done.
        let images = preview_samples(model, n, seed.wrapping_add(start as u64), options)?;
        energy.add(images.clone())?;
        sampling_seconds += started.elapsed().as_secs_f64();
        Ok(images)
    })?;
    let quality = SampleQuality::measure_against(&judged, &reference)?;
    let real = judge.judge_dataset(train, Some(samples), device)?;
    let floor = SampleQuality::measure_against(&real, &reference)?;
    let mut test_energy = LaplacianEnergy::new();
    let indices: Vec<usize> = (0..test.len()).collect();
    for chunk in indices.chunks(QUALITY_SAMPLE_BATCH) {
        test_energy.add(test.batch(chunk, 0, device)?.images().clone())?;
    }
    Ok(QualityMetrics {
        sampler: sampling_method(model, options)?.map(|m| m.describe()),
        seconds_per_image: Some(sampling_seconds / samples as f64),
        sharpness: Some(energy.sharpness_against(&test_energy)?),
        samples,
        presentation: if test.binarization() == Binarization::None {
            "grey"
        } else {
            "binary"
        }
        .into(),
        fid: quality.fid,
        inception_score: quality.inception_score,
        classes_hit: quality.coverage.classes_hit,
        class_kl_to_uniform: quality.coverage.kl_to_uniform,
        floor_fid: floor.fid,
        floor_inception_score: floor.inception_score,
    })
}

/// Adds the figures only `eval` computes (Parzen, sample quality) to the run's
/// `metrics.json`, when the run wrote one; figures not computed this time are left as they
/// were.
fn update_run_metrics(dir: &Path, metrics: &TestMetrics) -> anyhow::Result<()> {
    let path = dir.join("metrics.json");
    let figures = serde_json::to_value(metrics)?;
    let updates: Vec<&str> = EVAL_ONLY_FIGURES
        .into_iter()
        .filter(|key| !figures[*key].is_null())
        .collect();
    if updates.is_empty() || !path.exists() {
        return Ok(());
    }
    // A training run into the folder rewrites metrics.json when it ends; updating it under
    // the run's feet would lose one of the two. The figures were printed either way.
    let _lock = match FolderLock::acquire(dir, "genmodels eval") {
        Ok(lock) => lock,
        Err(GenError::FolderInUse { holder, .. }) => {
            eprintln!(
                "note: {} not updated: the folder is in use ({holder})",
                path.display()
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut run: serde_json::Value = read_json(&path)?;
    for key in updates {
        run[key] = figures[key].clone();
    }
    write_json_atomic(&path, &run)?;
    Ok(())
}

/// The figures only `eval` computes, which it adds to a run's metrics.json.
const EVAL_ONLY_FIGURES: [&str; 5] = [
    "parzen_log_likelihood_nats",
    "parzen_stderr_nats",
    "parzen_sigma",
    "parzen_samples",
    "sample_quality",
];

/// How the checkpoint's run presented its data (its `run.json`), or what the model's
/// observation model expects when that record is missing.
pub(crate) fn checkpoint_binarize<M: Registered>(dir: &Path, model: &M) -> BinarizeMode {
    match read_json::<RunRecord>(&dir.join(RUN_FILE)) {
        Ok(run) => run.binarize,
        Err(_) => default_binarize::<M>(model.config()),
    }
}

/// The test split presented as the checkpoint's run was trained (its `run.json`), or as the
/// model's observation model expects when that record is missing.
fn checkpoint_test_set<M: Registered>(
    dir: &Path,
    model: &M,
    seed: u64,
    data: &DataArgs,
) -> anyhow::Result<Dataset> {
    Ok(checkpoint_split(dir, model, seed, data, None)?.1)
}

/// The training split (its first `train_images`) and the test split, presented as for
/// [`checkpoint_test_set`].
fn checkpoint_split<M: Registered>(
    dir: &Path,
    model: &M,
    seed: u64,
    data: &DataArgs,
    train_images: Option<usize>,
) -> anyhow::Result<(Dataset, Dataset)> {
    let binarize = checkpoint_binarize(dir, model);
    Ok(datasets(load_mnist(data)?, binarize, seed, train_images))
}

/// The validation split a recipe holds out (the last training images), presented as for
/// [`checkpoint_test_set`]; held out from training only for a run that followed a recipe.
fn checkpoint_validation_set<M: Registered>(
    dir: &Path,
    model: &M,
    seed: u64,
    data: &DataArgs,
) -> anyhow::Result<Dataset> {
    let binarize = checkpoint_binarize(dir, model);
    splits(load_mnist(data)?, binarize, seed, None, true)?
        .validation
        .context("a recipe's splits hold a validation split")
}

/// How `genmodels score` scores.
pub struct ScoreRequest {
    /// Importance samples of a latent-variable model's score (1 = −ELBO).
    pub iwae_k: usize,
    /// Seed of the estimators.
    pub seed: u64,
}

pub fn score(
    dir: &Path,
    data: &DataArgs,
    request: &ScoreRequest,
    out: &Path,
) -> anyhow::Result<()> {
    visit_with!(checkpoint_entry(dir)?, Score {
        dir: &'a Path = dir,
        data: &'a DataArgs = data,
        request: &'a ScoreRequest = request,
        out: &'a Path = out,
    } => score_model)
}

/// Checks that `out` can take a CSV before any scoring: a `.csv` name, not a folder.
fn check_csv_path(out: &Path) -> anyhow::Result<()> {
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        bail!(
            "{}: scores are written as CSV only: give the file a .csv name",
            out.display()
        );
    }
    if out.is_dir() {
        bail!(
            "{}: is a folder; give a file name for the scores",
            out.display()
        );
    }
    Ok(())
}

/// Scores the checkpoint's test split (as it was presented in training) batch by batch, batch
/// `b` with estimator seed `seed + b` as in `eval`, writes the CSV and prints a summary.
fn score_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    data: &DataArgs,
    request: &ScoreRequest,
    out: &Path,
) -> anyhow::Result<()> {
    check_csv_path(out)?;
    if request.iwae_k == 0 {
        bail!("--iwae-k must be at least 1 (1 scores the −ELBO)");
    }
    let anomaly_scores = M::CAPABILITIES
        .anomaly_scores
        .with_context(|| format!("a `{}` model has no anomaly score", entry.name))?;
    let device = data.backend.device()?;
    let (model, manifest) = load_trained::<M>(dir, &device)?;
    let test = checkpoint_test_set(dir, &model, manifest.seed, data)?;
    let options = LikelihoodOptions::iwae(request.iwae_k).with_seed(request.seed);
    let mut scores: Option<AnomalyScores> = None;
    let mut labels: Vec<i64> = Vec::new();
    let indices: Vec<usize> = (0..test.len()).collect();
    for (b, chunk) in indices.chunks(EVAL_BATCH).enumerate() {
        let batch = test.batch(chunk, 0, &device)?;
        if let Some(l) = batch.labels() {
            labels.extend(
                l.clone()
                    .try_into_vec_as::<i64>()
                    .map_err(|e| anyhow::anyhow!("reading labels back: {e:?}"))?,
            );
        }
        let batch_scores =
            anomaly_scores(&model, &batch, &options.with_seed(request.seed + b as u64))?;
        match &mut scores {
            Some(all) => all.extend(batch_scores)?,
            None => scores = Some(batch_scores),
        }
    }
    let scores = scores.with_context(|| format!("the test split of {} is empty", dir.display()))?;
    let labelled = labels.len() == scores.scores.len();
    let mut csv = if labelled {
        format!("index,label,{}\n", scores.name)
    } else {
        format!("index,{}\n", scores.name)
    };
    for (i, score) in scores.scores.iter().enumerate() {
        match labelled {
            true => csv.push_str(&format!("{i},{},{score}\n", labels[i])),
            false => csv.push_str(&format!("{i},{score}\n")),
        }
    }
    genmodels_core::fs::write_atomic(out, csv.as_bytes())?;
    let summary = ScoreSummary::of(&scores.scores);
    let rows = vec![
        ("checkpoint".to_string(), dir.display().to_string()),
        ("model".into(), entry.name.into()),
        ("score".into(), scores.description.clone()),
        ("column".into(), scores.name.clone()),
        ("test images".into(), summary.n.to_string()),
        ("mean".into(), format!("{:.4}", summary.mean)),
        (
            "min / median / max".into(),
            format!(
                "{:.4} / {:.4} / {:.4}",
                summary.min, summary.median, summary.max
            ),
        ),
        ("written to".into(), out.display().to_string()),
    ];
    print!("{}", table(&rows));
    Ok(())
}

/// The summary `genmodels score` prints.
#[derive(Debug, PartialEq)]
struct ScoreSummary {
    n: usize,
    mean: f64,
    min: f64,
    median: f64,
    max: f64,
}

impl ScoreSummary {
    /// Of a non-empty list; the median of an even count is the mean of the middle two.
    fn of(scores: &[f64]) -> Self {
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            n,
            mean: sorted.iter().sum::<f64>() / n as f64,
            min: sorted[0],
            median,
            max: sorted[n - 1],
        }
    }
}

/// What `genmodels sample` draws.
pub struct SampleRequest {
    /// Number of samples.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// The class of every sample, for class-conditional models.
    pub label: Option<usize>,
}

pub fn sample(
    dir: &Path,
    request: &SampleRequest,
    out: &Path,
    backend: Backend,
    options: &SampleOptions,
) -> anyhow::Result<()> {
    visit_with!(checkpoint_entry(dir)?, Sample {
        dir: &'a Path = dir,
        request: &'a SampleRequest = request,
        out: &'a Path = out,
        backend: Backend = backend,
        options: &'a SampleOptions = options,
    } => sample_model)
}

fn sample_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    request: &SampleRequest,
    out: &Path,
    backend: Backend,
    options: &SampleOptions,
) -> anyhow::Result<()> {
    // Refused before the (possibly long) sampling, not after it.
    check_png_path(out)?;
    let device = backend.device()?;
    let (model, _) = load_trained::<M>(dir, &device)?;
    let n = request.n;
    let started = std::time::Instant::now();
    let images = match request.label {
        Some(label) => {
            let conditional = M::CAPABILITIES
                .conditional
                .filter(|c| (c.classes)(&model).is_some())
                .with_context(|| {
                    format!(
                        "--label applies to class-conditional models (cgan); this checkpoint \
                         holds an unconditional `{}` model",
                        entry.name
                    )
                })?;
            (conditional.sample_with_labels)(&model, &vec![label; n], request.seed)?
        }
        None => preview_samples(&model, n, request.seed, options)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let columns = (n as f64).sqrt().ceil() as usize;
    save_image_grid(out, images, GridLayout::with_columns(columns))?;
    let method = sampling_method(&model, options)?
        .map(|m| format!(" with the {} sampler", m.describe()))
        .unwrap_or_default();
    let class = request
        .label
        .map(|l| format!(" of class {l}"))
        .unwrap_or_default();
    println!(
        "wrote {n} samples{class} to {} ({seconds:.2} s{method}, {:.4} s per image)",
        out.display(),
        seconds / n as f64
    );
    Ok(())
}

/// What `genmodels complete` draws.
pub struct CompletionRequest {
    /// Rows observed at the top.
    pub rows_observed: usize,
    /// Test images to complete.
    pub images: usize,
    /// Completions per image.
    pub samples: usize,
    /// Seed of the first completion.
    pub seed: u64,
    /// Sampler (default: the model's own, cached or DDIM).
    pub sampler: crate::SamplerArgs,
}

pub fn complete(
    dir: &Path,
    request: &CompletionRequest,
    out: &Path,
    data: &DataArgs,
) -> anyhow::Result<()> {
    visit_with!(checkpoint_entry(dir)?, Completion {
        dir: &'a Path = dir,
        request: &'a CompletionRequest = request,
        out: &'a Path = out,
        data: &'a DataArgs = data,
    } => complete_model)
}

fn complete_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    request: &CompletionRequest,
    out: &Path,
    data: &DataArgs,
) -> anyhow::Result<()> {
    check_png_path(out)?;
    let complete = M::CAPABILITIES.complete.with_context(|| {
        format!(
            "a `{}` model cannot complete images; use an autoregressive or diffusion model",
            entry.name
        )
    })?;
    let device = data.backend.device()?;
    let (model, manifest) = load_trained::<M>(dir, &device)?;
    let method = sampling_method(
        &model,
        &SampleOptions {
            pixel_draws: false,
            sampler: request.sampler,
        },
    )?
    .context("a model that completes images has a choice of samplers")?;
    let shape = model.image_shape();
    if request.rows_observed > shape.height {
        bail!(
            "--rows-observed {} exceeds the image height {}",
            request.rows_observed,
            shape.height
        );
    }
    let test = checkpoint_test_set(dir, &model, manifest.seed, data)?;
    let originals = test.first(request.images, &device)?;
    let n = originals.len();
    let observed_rows = request.rows_observed * shape.width;
    let observed: Vec<bool> = (0..n * shape.dims())
        .map(|i| i % (shape.height * shape.width) < observed_rows)
        .collect();
    let grey = Tensor::<1>::from_floats(
        observed
            .iter()
            .map(|&o| if o { 1.0f32 } else { 0.0 })
            .collect::<Vec<_>>()
            .as_slice(),
        &device,
    )
    .reshape(shape.batch_dims(n));
    // The observed part, with unobserved pixels shown mid-grey.
    let shown = originals.images().clone() * grey.clone() + (grey.neg() + 1.0) * 0.5;
    let mut rows = vec![originals.images().clone(), shown];
    for s in 0..request.samples as u64 {
        rows.push(complete(
            &model,
            &originals,
            &observed,
            request.seed + s,
            method,
        )?);
    }
    save_image_grid(out, Tensor::cat(rows, 0), GridLayout::with_columns(n))?;
    println!(
        "wrote {} completions of {n} test images from their top {} rows to {}",
        request.samples,
        request.rows_observed,
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_summaries_have_the_known_order_statistics() {
        let odd = ScoreSummary::of(&[3.0, -1.0, 10.0]);
        assert_eq!(
            odd,
            ScoreSummary {
                n: 3,
                mean: 4.0,
                min: -1.0,
                median: 3.0,
                max: 10.0
            }
        );
        assert_eq!(ScoreSummary::of(&[4.0, 1.0, 2.0, 8.0]).median, 3.0);
    }

    #[test]
    fn scores_go_to_csv_files_only() {
        assert!(check_csv_path(Path::new("scores.csv")).is_ok());
        assert!(check_csv_path(Path::new("out/SCORES.CSV")).is_ok());
        let err = check_csv_path(Path::new("scores.txt")).unwrap_err();
        assert!(err.to_string().contains(".csv name"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a.csv");
        std::fs::create_dir(&folder).unwrap();
        assert!(check_csv_path(&folder).is_err());
    }
}

//! The comparison of explicit, approximate and implicit density models: what
//! `genmodels compare` and `examples/compare.rs` run.
//!
//! [`run`] trains every model of the comparison on the same data under one [`Budget`], then
//! measures each on the same test split:
//! - the test negative log-likelihood, of the kind the model has: exact (PixelCNN, Gated
//!   PixelCNN, Row LSTM, Diagonal BiLSTM, Bernoulli mixture), a bound or an estimate (the
//!   VAE's ELBO and IWAE-k), a Parzen-window estimate (the GANs), or none (the AE);
//! - sample quality judged by the bundled MNIST classifier
//!   ([`genmodels_eval::quality`]): MNIST-FID, the Inception-style score and mode coverage,
//!   each next to its floor (real training images against real test images);
//! - sampling time per image, with the sampler named (and the slow sampler beside the fast
//!   one: the autoregressive models' naive sampler beside the cached one, a diffusion model's
//!   ancestral sampler beside DDIM);
//! - training throughput and time, and the parameter count.
//!
//! It writes `results.md`, `results.json`, `results.csv`, `samples.png` (a labelled panel of
//! samples per model) and `nll_vs_time.png` (test NLL against training seconds, recorded
//! while training) into the output directory. Each trained model keeps its checkpoint under
//! `models/<name>/`; a later run with the same budget reuses it instead of training again,
//! unless [`CompareOptions::retrain`] is set.
//!
//! Binary and grey data: the likelihood models of binary pixels (autoregressive models,
//! mixture, VAE) train on dynamically binarised digits and are scored on the test split
//! binarised once; the GANs and the AE model grey levels. Each model's samples are judged
//! against real test images presented the same way, and its floors are computed the same way.
//!
//! The 8-bit grey track: PixelCNN with a 256-way softmax per pixel, the VAE with a
//! discretized Gaussian decoder and a Gaussian mixture (discretized Gaussian components) are
//! trained on the grey digits and scored by their discrete likelihood of the 8-bit test
//! digits, a second table whose bits/dim compare with each other (not with the binarised
//! track's).

mod contenders;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use genmodels_core::burn::tensor::Device;
use genmodels_core::progress::Progress;
use genmodels_core::{Backend, CurvePoint, GenError, ImageDataset, Result};
use genmodels_data::{Binarization, Dataset, Mnist};
use genmodels_eval::quality::{
    GaussianFit, Judge, JudgedImages, LaplacianEnergy, ModeCoverage, inception_score,
};
use serde::{Deserialize, Serialize};

pub use contenders::Contender;
pub use report::{machine_description, utc_date};

pub use crate::recipe::VALIDATION_BINARIZATION_SEED;
use crate::recipe::validation_split;
pub use crate::registry::DensityType;

/// Seed of the test split's one stochastic binarisation (the CLI's `train`/`eval` use the
/// same), so every model is scored on the same binary test images.
pub const TEST_BINARIZATION_SEED: u64 = 0x7E57;

/// How much work the comparison does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// A few steps per model and a handful of samples: checks the whole pipeline in about a
    /// minute; its numbers mean nothing.
    Tiny,
    /// One CPU minute of training per gradient-trained model and 1,000 samples each: 12
    /// minutes of training for the fourteen models, then their evaluation (the two DDPMs'
    /// bounds and samples cost the most of it).
    Quick,
    /// Paper-scale presets (PixelCNN `paper`) and 30 minutes per model: for a GPU.
    Full,
    /// Every model trained to convergence by its registry recipe (validation split, best
    /// epoch, early stopping) and 2,000 samples each: the zoo's budget. Trained from scratch
    /// it takes hours on 2 cores; evaluating the shipped zoo takes minutes.
    Converged,
}

impl Budget {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Quick => "quick",
            Self::Full => "full",
            Self::Converged => "converged",
        }
    }

    /// What the budget allows.
    pub fn plan(self) -> BudgetPlan {
        match self {
            Self::Tiny => BudgetPlan {
                max_train_seconds: None,
                max_steps: Some(2),
                max_epochs: 1,
                batch_size: 16,
                em_iterations: 2,
                quality_samples: 40,
                slow_samples: 1,
                test_images: Some(64),
                iwae_k: 4,
                parzen_samples: 64,
                parzen_validation: 32,
                curve_every_seconds: 1.0,
                curve_test_images: 16,
                paper_presets: false,
                recipes: false,
            },
            Self::Quick => BudgetPlan {
                // One minute, not two: twelve gradient-trained models and their evaluation
                // (each DDPM's bound and samples take minutes) must fit in half an hour.
                max_train_seconds: Some(60.0),
                max_steps: None,
                max_epochs: 1_000,
                batch_size: 64,
                em_iterations: 50,
                quality_samples: 1_000,
                slow_samples: 4,
                test_images: None,
                iwae_k: 500,
                parzen_samples: 10_000,
                parzen_validation: 1_000,
                curve_every_seconds: 10.0,
                curve_test_images: 500,
                paper_presets: false,
                recipes: false,
            },
            Self::Full => BudgetPlan {
                max_train_seconds: Some(1_800.0),
                max_steps: None,
                max_epochs: 1_000,
                batch_size: 64,
                em_iterations: 200,
                quality_samples: 10_000,
                slow_samples: 16,
                test_images: None,
                iwae_k: 5_000,
                parzen_samples: 10_000,
                parzen_validation: 1_000,
                curve_every_seconds: 120.0,
                curve_test_images: 2_000,
                paper_presets: true,
                recipes: false,
            },
            Self::Converged => BudgetPlan {
                max_train_seconds: None,
                max_steps: None,
                max_epochs: 0,
                batch_size: 0,
                em_iterations: 0,
                quality_samples: 2_000,
                slow_samples: 4,
                test_images: None,
                iwae_k: 500,
                parzen_samples: 10_000,
                parzen_validation: 1_000,
                curve_every_seconds: 60.0,
                curve_test_images: 500,
                paper_presets: false,
                recipes: true,
            },
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Budget {
    type Err = GenError;

    fn from_str(name: &str) -> Result<Self> {
        [Self::Tiny, Self::Quick, Self::Full, Self::Converged]
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                GenError::InvalidConfig(format!(
                    "unknown budget `{name}`; choose tiny, quick, full or converged"
                ))
            })
    }
}

/// The numbers behind a [`Budget`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetPlan {
    /// Training seconds per gradient-trained model (a cap checked after every step).
    pub max_train_seconds: Option<f64>,
    /// Optimisation steps per gradient-trained model.
    pub max_steps: Option<usize>,
    /// Epochs per gradient-trained model, whichever budget ends first.
    pub max_epochs: usize,
    /// Images per optimisation step.
    pub batch_size: usize,
    /// EM iterations of the mixture.
    pub em_iterations: usize,
    /// Samples per model for FID, the Inception-style score and mode coverage.
    pub quality_samples: usize,
    /// Images timed with the slow sampler a model's default one stands in for (one batch):
    /// the autoregressive models' naive sampler, a diffusion model's ancestral one.
    pub slow_samples: usize,
    /// Test images scored for the likelihood (`None`: the whole test split).
    pub test_images: Option<usize>,
    /// Importance samples of the VAE's IWAE estimate.
    pub iwae_k: usize,
    /// Model samples in the GANs' Parzen window.
    pub parzen_samples: usize,
    /// Held-out images (the validation split, never trained on) on which the Parzen bandwidth
    /// is chosen.
    pub parzen_validation: usize,
    /// Training seconds between two points of the NLL-against-time curve.
    pub curve_every_seconds: f64,
    /// Test images scored at each point of the curve.
    pub curve_test_images: usize,
    /// Whether models with a paper-scale preset use it (PixelCNN `paper`).
    pub paper_presets: bool,
    /// Whether each model trains by its registry's `converged` recipe (its epochs, batch,
    /// learning rate and schedule, validated after every epoch, stopped early), in which case
    /// `max_epochs`, `batch_size` and `em_iterations` are not used.
    #[serde(default)]
    pub recipes: bool,
}

/// What to compare, and where the results go.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// How much work.
    pub budget: Budget,
    /// The output directory.
    pub out: PathBuf,
    /// The backend everything runs on.
    pub backend: Backend,
    /// A zoo of trained models (a folder of `<model>/` checkpoints written by
    /// [`crate::zoo::pack`]) to evaluate instead of training: for the `converged` budget.
    pub zoo: Option<PathBuf>,
    /// Train every model again even where a finished checkpoint exists.
    pub retrain: bool,
    /// Seed of initialisation, data order and sampling.
    pub seed: u64,
    /// Only these models (by [`Contender::name`]); `None` for all.
    pub only: Option<Vec<String>>,
    /// The command line that started the run, recorded in `results.md`.
    pub command: String,
    /// Where the data came from, recorded in `results.md`.
    pub data_description: String,
}

/// A number, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure<T> {
    /// The measured value.
    Value(T),
    /// Why there is no value.
    NotAvailable(String),
}

impl<T> Figure<T> {
    /// The value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            Self::NotAvailable(_) => None,
        }
    }

    fn not_available(reason: impl Into<String>) -> Self {
        Self::NotAvailable(reason.into())
    }
}

/// A test negative log-likelihood and what kind of number it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NllFigure {
    /// Mean negative log-likelihood per test image, nats.
    pub nats: f64,
    /// The same in bits per dimension.
    pub bits_per_dim: f64,
    /// Standard error of the mean, nats.
    pub standard_error_nats: f64,
    /// exact, ELBO, IWAE k=…, Parzen estimate.
    pub kind: String,
    /// Test images scored.
    pub test_images: usize,
}

impl NllFigure {
    fn of(ll: &genmodels_core::LogLikelihood) -> Self {
        Self {
            nats: ll.mean_nll_nats(),
            bits_per_dim: ll.nll_bits_per_dim(),
            standard_error_nats: ll.standard_error_nats(),
            kind: ll.kind.to_string(),
            test_images: ll.len(),
        }
    }
}

/// One sampler's speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingTime {
    /// The sampler, e.g. `cached` or `one generator pass`.
    pub sampler: String,
    /// Wall-clock seconds per image.
    pub seconds_per_image: f64,
    /// Images drawn per call.
    pub batch: usize,
    /// Images timed.
    pub images: usize,
}

/// The real-data floor of the sample-quality metrics for one presentation of the data: real
/// training images judged against real test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityFloor {
    /// `binary` or `grey`.
    pub presentation: String,
    /// FID of real training images against the test split (as many as each model's samples).
    pub fid: f64,
    /// Inception-style score of the same training images.
    pub inception_score: f64,
    /// Classes they hit.
    pub classes_hit: usize,
    /// KL of their class histogram to uniform, nats.
    pub coverage_kl: f64,
    /// Real images in the set.
    pub images: usize,
}

/// One row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The model's name ([`Contender::name`], plus the estimator for the VAE's two rows).
    pub model: String,
    /// What the row shows, for people.
    pub label: String,
    /// Explicit-tractable, approximate, implicit, or not generative.
    pub density: DensityType,
    /// The test NLL, or why there is none.
    pub nll: Figure<NllFigure>,
    /// MNIST-FID of the samples against the test split.
    pub fid: f64,
    /// Inception-style score of the samples.
    pub inception_score: f64,
    /// Classes hit / 10 and KL of the class histogram to uniform.
    pub coverage: ModeCoverage,
    /// The real-data floor for this model's presentation of the data.
    pub floor: QualityFloor,
    /// The sampler used for the samples, and its time per image.
    pub sampling: SamplingTime,
    /// The time of the slow sampler the default one stands in for (the autoregressive models'
    /// naive sampler, a diffusion model's ancestral one), or why there is none.
    pub slow_sampling: Figure<SamplingTime>,
    /// Training images per second, or why there is none (EM is not gradient training).
    pub train_images_per_second: Figure<f64>,
    /// Seconds of training (gradient steps and the post-training fit).
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Whether the model came from an earlier run's checkpoint (or the zoo).
    pub reused_checkpoint: bool,
    /// Sharpness of the samples: their Laplacian energy over real test images' in the same
    /// presentation (1.0 as sharp as real digits; see
    /// [`LaplacianEnergy`]).
    #[serde(default)]
    pub sharpness: f64,
    /// Sharpness of a latent-variable model's decoder means `E[x|z]` (what "blurry" refers
    /// to) against real grey test digits, or why there are none.
    #[serde(default = "no_means")]
    pub mean_sharpness: Figure<f64>,
    /// Epochs trained (for a recipe's run, up to its early stop).
    #[serde(default)]
    pub epochs: usize,
    /// The epoch whose weights were measured, for a recipe's run: the best by validation.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// Whether the row is on the 8-bit grey track: its NLL is a discrete likelihood of the
    /// 256-level test digits, a different scale from the binarised track's.
    #[serde(default)]
    pub grey_track: bool,
}

fn no_means() -> Figure<f64> {
    Figure::not_available("no decoder means")
}

/// One likelihood model's test NLL during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NllCurve {
    /// The model's label.
    pub label: String,
    /// The points.
    pub points: Vec<CurvePoint>,
    /// Whether the model is on the 8-bit grey track (its NLLs are on another scale).
    #[serde(default)]
    pub grey_track: bool,
}

/// Everything a comparison measured: what `results.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResults {
    /// The budget's name.
    pub budget: Budget,
    /// What it allowed.
    pub plan: BudgetPlan,
    /// The backend.
    pub backend: String,
    /// The command that produced the results.
    pub command: String,
    /// CPU model and core count.
    pub machine: String,
    /// UTC date of the run.
    pub date: String,
    /// Where the data came from.
    pub data: String,
    /// Where the models came from: trained by this run, or the zoo folder evaluated.
    #[serde(default)]
    pub source: String,
    /// Training images (the validation split excluded).
    pub train_images: usize,
    /// Held-out training images: the recipes' validation split and the Parzen bandwidth's.
    #[serde(default)]
    pub validation_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// The models' training seconds, summed (for models reused from earlier runs, the seconds
    /// those runs recorded, over all their sittings).
    #[serde(default)]
    pub train_seconds: f64,
    /// The rows, in table order.
    pub rows: Vec<ComparisonRow>,
    /// Test NLL against training seconds, per likelihood model.
    pub curves: Vec<NllCurve>,
    /// Warnings raised while training (GAN health checks), per model, and the models a zoo
    /// lacks.
    pub warnings: Vec<String>,
}

/// How a model's data is presented, which decides its test set and its quality reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presentation {
    /// Bernoulli pixels: dynamic binarisation for training, one fixed draw for testing.
    Binary,
    /// Grey levels in `[0, 1]`.
    Grey,
}

impl Presentation {
    fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Grey => "grey",
        }
    }
}

/// The data and the judge's view of it, shared by every model.
pub(crate) struct Arena {
    pub(crate) plan: BudgetPlan,
    pub(crate) device: Device,
    pub(crate) seed: u64,
    pub(crate) judge: Judge,
    binary: Stage,
    grey: Stage,
}

/// One presentation of the data with its judged reference and floor.
struct Stage {
    train: Dataset,
    validation: Dataset,
    test: Dataset,
    reference: GaussianFit,
    floor: QualityFloor,
    /// The Laplacian energy of the test images, the samples' sharpness reference.
    energy: LaplacianEnergy,
}

impl Arena {
    /// Both presentations of `mnist` under `plan`, judged by the bundled judge on `device`.
    fn new(mnist: &Mnist, plan: &BudgetPlan, seed: u64, device: &Device) -> Result<Self> {
        let judge = genmodels_data::mnist_judge(device)?;
        let stage = |presentation| build_stage(mnist, presentation, plan, seed, &judge, device);
        let (binary, grey) = (stage(Presentation::Binary)?, stage(Presentation::Grey)?);
        Ok(Self {
            plan: plan.clone(),
            device: device.clone(),
            seed,
            judge,
            binary,
            grey,
        })
    }

    pub(crate) fn train(&self, presentation: Presentation) -> &Dataset {
        &self.stage(presentation).train
    }

    pub(crate) fn test(&self, presentation: Presentation) -> &Dataset {
        &self.stage(presentation).test
    }

    /// The held-out training images: the recipes' validation split and the Parzen
    /// bandwidth's.
    pub(crate) fn validation(&self, presentation: Presentation) -> &Dataset {
        &self.stage(presentation).validation
    }

    /// The sharpness of `images` against the test images in `presentation`.
    pub(crate) fn sharpness(
        &self,
        images: &LaplacianEnergy,
        presentation: Presentation,
    ) -> Result<f64> {
        images.sharpness_against(&self.stage(presentation).energy)
    }

    fn stage(&self, presentation: Presentation) -> &Stage {
        match presentation {
            Presentation::Binary => &self.binary,
            Presentation::Grey => &self.grey,
        }
    }

    /// Scores samples against the test split in the same presentation.
    pub(crate) fn quality(
        &self,
        samples: &JudgedImages,
        presentation: Presentation,
    ) -> Result<(f64, f64, ModeCoverage, QualityFloor)> {
        let stage = self.stage(presentation);
        let quality =
            genmodels_eval::quality::SampleQuality::measure_against(samples, &stage.reference)?;
        Ok((
            quality.fid,
            quality.inception_score,
            quality.coverage,
            stage.floor.clone(),
        ))
    }
}

fn build_stage(
    mnist: &Mnist,
    presentation: Presentation,
    plan: &BudgetPlan,
    seed: u64,
    judge: &Judge,
    device: &Device,
) -> Result<Stage> {
    let (train_mode, validation_mode, test_mode) = match presentation {
        Presentation::Binary => (
            Binarization::Dynamic { seed },
            Binarization::Stochastic {
                seed: VALIDATION_BINARIZATION_SEED,
            },
            Binarization::Stochastic {
                seed: TEST_BINARIZATION_SEED,
            },
        ),
        Presentation::Grey => (Binarization::None, Binarization::None, Binarization::None),
    };
    let test_images = match plan.test_images {
        Some(n) => mnist.test.take(n),
        None => mnist.test.clone(),
    };
    let (train, validation) = validation_split(mnist.train.clone())?;
    let train = train.with_binarization(train_mode);
    let validation = validation.with_binarization(validation_mode);
    let test = test_images.with_binarization(test_mode);
    let mut energy = LaplacianEnergy::new();
    let indices: Vec<usize> = (0..test.len()).collect();
    for chunk in indices.chunks(500) {
        energy.add(test.batch(chunk, 0, device)?.images().clone())?;
    }
    let judged_test = judge.judge_dataset(&test, None, device)?;
    let reference = GaussianFit::of(&judged_test)?;
    // The floor: as many real training images as each model draws samples.
    let floor_images = plan.quality_samples.min(train.len());
    let judged_train = judge.judge_dataset(&train, Some(floor_images), device)?;
    let floor_quality =
        genmodels_eval::quality::SampleQuality::measure_against(&judged_train, &reference)?;
    Ok(Stage {
        train,
        validation,
        test,
        reference,
        energy,
        floor: QualityFloor {
            presentation: presentation.name().into(),
            fid: floor_quality.fid,
            inception_score: inception_score(&judged_train),
            classes_hit: floor_quality.coverage.classes_hit,
            coverage_kl: floor_quality.coverage.kl_to_uniform,
            images: judged_train.len(),
        },
    })
}

/// Runs the comparison on `mnist` and writes its files into `options.out`.
///
/// # Errors
/// [`GenError::InvalidConfig`] for an unknown model in [`CompareOptions::only`]; data,
/// training, evaluation and I/O errors as they occur (a model that diverges stops the run
/// with the step named; the models finished before it keep their checkpoints).
pub fn run(options: &CompareOptions, mnist: &Mnist) -> Result<ComparisonResults> {
    // Timed sampling included, everything runs as the trainer does: on flex's compute threads.
    let device = options.backend.device()?;
    genmodels_kernels::on_compute_threads(&device, || run_here(options, mnist))
}

fn run_here(options: &CompareOptions, mnist: &Mnist) -> Result<ComparisonResults> {
    let started = Instant::now();
    let plan = options.budget.plan();
    if options.zoo.is_some() && (options.budget != Budget::Converged || options.retrain) {
        return Err(GenError::InvalidConfig(
            "a zoo holds models trained by the `converged` budget: evaluate it with that \
             budget, without retraining"
                .into(),
        ));
    }
    let mut contenders = contenders::select(options.only.as_deref(), &plan)?;
    let mut warnings = Vec::new();
    // A zoo evaluated whole compares what it holds and says what it lacks; a model asked for
    // by name must be there (its run says so).
    if let (Some(zoo), None) = (&options.zoo, &options.only) {
        let missing: Vec<&str> = contenders
            .iter()
            .filter(|c| !zoo.join(c.name()).is_dir())
            .map(|c| c.name())
            .collect();
        if missing.len() == contenders.len() {
            return Err(GenError::InvalidConfig(format!(
                "the zoo at {} holds none of the comparison's models",
                zoo.display()
            )));
        }
        if !missing.is_empty() {
            warnings.push(format!(
                "not in the zoo, so not compared: {}; `genmodels compare --budget converged \
                 --only {}` trains them",
                missing.join(", "),
                missing.join(",")
            ));
            contenders.retain(|c| zoo.join(c.name()).is_dir());
        }
    }
    std::fs::create_dir_all(&options.out).map_err(|e| GenError::io(&options.out, e))?;
    let device = options.backend.device()?;
    let arena = Arena::new(mnist, &plan, options.seed, &device)?;

    let overall = Progress::count(contenders.len() as u64, "compare", "models");
    let mut rows = Vec::new();
    let mut curves = Vec::new();
    let mut panels = Vec::new();
    let mut train_seconds = 0.0;
    for contender in &contenders {
        overall.set_message(|| contender.label().to_string());
        let dir = model_dir(&options.out, contender.name());
        let (dir, from_zoo) = match &options.zoo {
            Some(zoo) => (zoo.join(contender.name()), true),
            None => (dir, false),
        };
        let outcome = contender.run(&arena, &dir, options.budget, options.retrain, from_zoo)?;
        // A model's rows (the VAE's estimators) share its training.
        train_seconds += outcome.rows.first().map_or(0.0, |r| r.train_seconds);
        rows.extend(outcome.rows);
        if let Some(curve) = outcome.curve {
            curves.push(curve);
        }
        warnings.extend(
            outcome
                .warnings
                .into_iter()
                .map(|w| format!("{}: {w}", contender.label())),
        );
        panels.push((contender.label().to_string(), outcome.panel));
        overall.advance(1);
    }
    overall.finish();

    let results = ComparisonResults {
        budget: options.budget,
        plan,
        backend: options.backend.to_string(),
        command: options.command.clone(),
        machine: machine_description(),
        date: utc_date(std::time::SystemTime::now()),
        data: options.data_description.clone(),
        source: match &options.zoo {
            Some(zoo) => format!("the trained models in {}", zoo.display()),
            None => "trained by this run".to_string(),
        },
        train_images: arena.train(Presentation::Binary).len(),
        validation_images: arena.validation(Presentation::Binary).len(),
        test_images: arena.test(Presentation::Binary).len(),
        total_seconds: started.elapsed().as_secs_f64(),
        train_seconds,
        rows,
        curves,
        warnings,
    };
    report::write_all(&options.out, &results, panels)?;
    Ok(results)
}

/// Packs a `converged` comparison's models into a zoo: what [`crate::zoo::pack`] runs.
pub(crate) fn pack_models(
    options: &crate::zoo::PackOptions,
    mnist: &Mnist,
) -> Result<Vec<crate::zoo::PackedModel>> {
    let device = options.backend.device()?;
    genmodels_kernels::on_compute_threads(&device, || {
        let plan = Budget::Converged.plan();
        let contenders = contenders::select(options.only.as_deref(), &plan)?;
        let arena = Arena::new(mnist, &plan, options.seed, &device)?;
        let mut packed = Vec::new();
        for contender in &contenders {
            let from = model_dir(&options.compared, contender.name());
            let to = options.zoo.join(contender.name());
            packed.push(contender.pack(&arena, &from, &to)?);
        }
        Ok(packed)
    })
}

/// Where a model's checkpoint lives.
pub fn model_dir(out: &Path, name: &str) -> PathBuf {
    out.join("models").join(name)
}

/// The files [`run`] writes into the output directory (`nll_vs_time.png` where a likelihood
/// model of the binarised track was measured, and `nll_vs_time_grey.png` where one of the
/// grey track was).
pub const OUTPUT_FILES: [&str; 5] = [
    "results.md",
    "results.json",
    "results.csv",
    "samples.png",
    "nll_vs_time.png",
];

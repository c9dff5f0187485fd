//! Benchmarks of every model's default preset on every backend: what `genmodels bench` prints
//! and what the criterion benches (`benches/backends.rs`) time.
//!
//! A [`Benchmark`] is one (model, operation, backend) with its model, data and optimiser
//! already built; [`Benchmark::run_once`] does the operation once:
//! - [`BenchOp::TrainStep`]: one [`TrainingStep`] on a batch of bundled digits, prepared as
//!   the model trains on them: forward, backward and optimiser update of every player (a
//!   GAN's discriminator and generator both), exactly what the [`crate::Trainer`] repeats;
//! - [`BenchOp::TrainLoop`]: the trainer's own loop ([`Trainer::fit`]) over all the bundled
//!   training digits, a new shuffled batch each step, as `genmodels train` and `compare` run
//!   it (the same step plus the loop's batch assembly, read-backs and observers);
//! - [`BenchOp::LogLikelihood`]: [`GenerativeModel::log_likelihood`](genmodels_core::GenerativeModel::log_likelihood) of the batch (exact for
//!   the autoregressive models, the ELBO for the VAE; a GAN has none);
//! - [`BenchOp::SampleNaive`] and [`BenchOp::SampleCached`]: drawing `batch` images. The
//!   autoregressive models have both samplers; a diffusion model's slow one is its ancestral
//!   sampler (every step) and its fast one DDIM (50 steps); the VAE and the GAN draw in one
//!   decoder pass, reported as `sample_naive` (there is nothing to cache).

mod measure;

pub use measure::{Measurement, PeakMemory, measure, sync};

use std::sync::{Arc, Mutex};

use genmodels_core::burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::registry::{self, DensityType, Entry, ModelVisitor, Pixels, Registered};
use genmodels_core::batch::to_host;
use genmodels_core::{
    Backend, GenError, ImageBatch, ImageDataset, ImageShape, LikelihoodOptions, Result, StepRecord,
    Trainer, TrainerConfig, TrainingObserver, TrainingStep, init_seeded,
};
use genmodels_data::{Binarization, Dataset, Mnist};

/// A model benchmarked: an entry of the [`registry`], at the configuration
/// its name stands for (the binary default, or its preset).
#[derive(Debug, Clone, Copy)]
pub struct BenchModel(&'static Entry);

impl PartialEq for BenchModel {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for BenchModel {}

impl BenchModel {
    /// The entries [benchmarked by default](Entry::benchmarked), in registry order.
    pub fn all() -> Vec<BenchModel> {
        registry::ENTRIES
            .iter()
            .filter(|e| e.benchmarked)
            .map(BenchModel)
            .collect()
    }

    /// The name the CLI uses.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// Whether the model can do `op` at all.
    pub fn supports(&self, op: BenchOp) -> bool {
        self.unsupported_reason(op).is_none()
    }

    /// Why the model cannot do `op`, for tables.
    pub fn unsupported_reason(&self, op: BenchOp) -> Option<&'static str> {
        struct Reason(BenchOp);
        impl ModelVisitor for Reason {
            type Output = Option<&'static str>;
            fn visit<M: Registered>(self, _: &'static Entry) -> Option<&'static str> {
                match self.0 {
                    BenchOp::TrainStep | BenchOp::TrainLoop | BenchOp::SampleNaive => None,
                    BenchOp::LogLikelihood => (M::DENSITY == DensityType::Implicit)
                        .then_some("implicit density: no likelihood"),
                    BenchOp::SampleCached => M::CAPABILITIES
                        .sample_with
                        .is_none()
                        .then_some("one decoder pass: nothing to cache"),
                }
            }
        }
        self.0.visit(Reason(op))
    }

    /// Whether the model can sample at other image sizes than the data's (a raster-order
    /// model, which any size fits; [`Registered::resized`]).
    fn resizable(&self) -> bool {
        struct Resizable;
        impl ModelVisitor for Resizable {
            type Output = bool;
            fn visit<M: Registered>(self, _: &'static Entry) -> bool {
                M::resized(M::default_config(Pixels::Binary), ImageShape::new(1, 8, 8)).is_some()
            }
        }
        self.0.visit(Resizable)
    }
}

impl std::fmt::Display for BenchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchModel {
    type Err = GenError;

    /// Any entry of the registry by name: the default set ([`BenchModel::all`]) leaves out
    /// the ones whose full set of operations takes too long to run by default (the DDPM's
    /// ancestral sampler: 1,000 network passes per batch), not what can be asked for.
    fn from_str(name: &str) -> Result<Self> {
        registry::ENTRIES
            .iter()
            .find(|e| e.name == name)
            .map(BenchModel)
            .ok_or_else(|| {
                GenError::InvalidConfig(format!(
                    "no benchmark for model `{name}`; choose one of {}",
                    registry::ENTRIES
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchOp {
    /// Forward, backward and optimiser step of every player on one batch.
    TrainStep,
    /// Training steps through the trainer's loop, each on a new batch of the training digits.
    TrainLoop,
    /// The test log-likelihood (or its bound) of one batch.
    LogLikelihood,
    /// Drawing a batch of images with the slow sampler (naive; a diffusion model's ancestral
    /// one), or the model's only one.
    SampleNaive,
    /// Drawing a batch of images with the fast sampler (cached / carried-state; a diffusion
    /// model's DDIM): [`Registered::default_method`].
    SampleCached,
}

impl BenchOp {
    /// All operations.
    pub const ALL: [BenchOp; 5] = [
        Self::TrainStep,
        Self::TrainLoop,
        Self::LogLikelihood,
        Self::SampleNaive,
        Self::SampleCached,
    ];

    /// The name in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrainStep => "train_step",
            Self::TrainLoop => "train_loop",
            Self::LogLikelihood => "log_likelihood",
            Self::SampleNaive => "sample_naive",
            Self::SampleCached => "sample_cached",
        }
    }

    fn is_sampling(&self) -> bool {
        matches!(self, Self::SampleNaive | Self::SampleCached)
    }

    /// Whether it trains (a step, or the loop).
    pub fn is_training(&self) -> bool {
        matches!(self, Self::TrainStep | Self::TrainLoop)
    }

    /// Images per run when none are asked for: the comparison's batch for the trainer's loop
    /// (how users train), 32 otherwise (as the PyTorch side-by-side runs).
    pub fn default_batch(&self) -> usize {
        match self {
            Self::TrainLoop => crate::compare::Budget::Quick.plan().batch_size,
            _ => 32,
        }
    }
}

impl std::fmt::Display for BenchOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchOp {
    type Err = GenError;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| {
                GenError::InvalidConfig(format!(
                    "unknown operation `{name}`; choose one of {}",
                    Self::ALL.map(|op| op.name()).join(", ")
                ))
            })
    }
}

/// One benchmark's result: a row of `genmodels bench`, an object of its `--json` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The model (`pixelcnn`, …).
    pub model: String,
    /// The backend (`flex`, `ndarray`, `wgpu`).
    pub backend: String,
    /// The operation (`train_step`, `train_loop`, `log_likelihood`, `sample_naive`,
    /// `sample_cached`).
    pub op: String,
    /// Images per run.
    pub batch: usize,
    /// Side of the square images.
    pub image_size: usize,
    /// Timed runs.
    pub repetitions: usize,
    /// Images per second over the timed runs.
    pub images_per_second: f64,
    /// Seconds of the timed runs together.
    pub seconds: f64,
    /// Peak resident memory from just before the model was built (its data already loaded) to
    /// the end of the timed runs, above the resident memory then: weights, optimiser state,
    /// activations and
    /// whatever the allocator kept (CPU backends on Linux; `None` elsewhere).
    pub peak_memory_bytes: Option<u64>,
    /// Whether genmodels' hand-written kernels ran (flex with the kernels compiled in and
    /// switched on); `false` means burn's own ops did all the work.
    #[serde(default)]
    pub kernels: bool,
    /// The CPU's vector extensions ([`genmodels_kernels::machine::vector_extensions`]): speed
    /// differs 2–3× between CPUs with and without AVX-512.
    #[serde(default)]
    pub vector_extensions: Vec<String>,
}

/// One (model, operation, backend), ready to run: model, data and optimiser built, nothing
/// run yet.
pub struct Benchmark {
    model: BenchModel,
    op: BenchOp,
    backend: Backend,
    batch: usize,
    image_size: usize,
    device: Device,
    memory: PeakMemory,
    run: Operation,
}

/// How a benchmarked operation runs.
enum Operation {
    /// Once per call.
    PerRun(Box<dyn FnMut() -> Result<()> + Send>),
    /// Through the trainer's loop, `(warm_up, timed)` steps in one run, returning the seconds
    /// of the timed steps as the loop measured them.
    Loop(Box<dyn FnMut(usize, usize) -> Result<f64> + Send>),
}

impl std::fmt::Debug for Benchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Benchmark")
            .field("model", &self.model)
            .field("op", &self.op)
            .field("backend", &self.backend)
            .field("batch", &self.batch)
            .field("image_size", &self.image_size)
            .finish_non_exhaustive()
    }
}

impl Benchmark {
    /// Builds the model (seed 0) and its input on `backend`: the first `batch` bundled training
    /// digits, binarised at 0.5 for the Bernoulli models, grey for the GAN. `image_size` other
    /// than 28 is for the autoregressive samplers only (there is no data of that size).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a batch of 0, an operation the model does not have
    /// ([`BenchModel::supports`]) or an image size the operation cannot use;
    /// [`GenError::BackendUnavailable`] for a backend not compiled in or without a device.
    pub fn prepare(
        model: BenchModel,
        op: BenchOp,
        backend: Backend,
        batch: usize,
        image_size: usize,
    ) -> Result<Self> {
        if batch == 0 || image_size == 0 {
            return Err(GenError::InvalidConfig(
                "a benchmark needs at least one image of at least one pixel".into(),
            ));
        }
        if let Some(reason) = model.unsupported_reason(op) {
            return Err(GenError::InvalidConfig(format!(
                "{model} has no {op}: {reason}"
            )));
        }
        if image_size != 28 && !(op.is_sampling() && model.resizable()) {
            return Err(GenError::InvalidConfig(format!(
                "--image-size {image_size}: only the autoregressive samplers run at other sizes \
                 than the 28×28 data"
            )));
        }
        let device = backend.device()?;
        let shape = ImageShape::new(1, image_size, image_size);
        let (run, memory) = model.0.visit(Prepare {
            op,
            batch,
            shape,
            device: &device,
        })?;
        Ok(Self {
            model,
            op,
            backend,
            batch,
            image_size,
            device,
            memory,
            run,
        })
    }

    /// Runs the operation once, waiting for its result.
    ///
    /// # Errors
    /// As the operation ([`GenError::Diverged`] should a training step produce a non-finite
    /// loss).
    pub fn run_once(&mut self) -> Result<()> {
        match &mut self.run {
            Operation::PerRun(run) => run()?,
            Operation::Loop(train) => {
                train(0, 1)?;
            }
        }
        sync(&self.device)
    }

    /// `warm_up` untimed runs, then `repetitions` timed ones. Measure once per benchmark: the
    /// peak memory counts from [`prepare`](Self::prepare).
    ///
    /// # Errors
    /// As [`run_once`](Self::run_once); zero repetitions.
    pub fn measure(&mut self, warm_up: usize, repetitions: usize) -> Result<BenchResult> {
        let Measurement {
            seconds,
            images_per_second,
        } = match &mut self.run {
            Operation::PerRun(run) => measure(&self.device, warm_up, repetitions, self.batch, run)?,
            Operation::Loop(train) => {
                if repetitions == 0 {
                    return Err(GenError::InvalidConfig(
                        "a measurement needs at least one timed repetition".into(),
                    ));
                }
                let seconds = train(warm_up, repetitions)?;
                Measurement {
                    seconds,
                    images_per_second: (repetitions * self.batch) as f64 / seconds,
                }
            }
        };
        let peak_memory_bytes = self.memory.peak_above_start();
        Ok(BenchResult {
            model: self.model.name().into(),
            backend: self.backend.name().into(),
            op: self.op.name().into(),
            batch: self.batch,
            image_size: self.image_size,
            repetitions,
            images_per_second,
            seconds,
            // GPU memory is not the process's resident memory.
            peak_memory_bytes: peak_memory_bytes.filter(|_| !self.backend.is_gpu()),
            kernels: self.backend == Backend::Flex && genmodels_kernels::enabled(),
            vector_extensions: genmodels_kernels::machine::vector_extensions()
                .into_iter()
                .map(String::from)
                .collect(),
        })
    }
}

/// Builds the runner of `op` on an entry's model (see [`operation`]).
struct Prepare<'a> {
    op: BenchOp,
    batch: usize,
    shape: ImageShape,
    device: &'a Device,
}

impl ModelVisitor for Prepare<'_> {
    type Output = Result<(Operation, PeakMemory)>;

    fn visit<M: Registered>(self, entry: &'static Entry) -> Self::Output {
        let config = entry.config::<M>(Pixels::Binary)?;
        let config = if self.shape == ImageShape::MNIST {
            config
        } else {
            M::resized(config, self.shape).ok_or_else(|| {
                GenError::InvalidConfig(format!("{} cannot be resized", entry.name))
            })?
        };
        operation::<M>(&config, self.op, self.batch, self.device)
    }
}

/// The runner of `op` on a model built from `config`, and the memory baseline: taken after
/// loading the data and before building the model, so that the peak counts weights, optimiser
/// state and everything the runs allocate (the PyTorch reference measures the same span).
fn operation<M: Registered>(
    config: &M::Config,
    op: BenchOp,
    batch: usize,
    device: &Device,
) -> Result<(Operation, PeakMemory)> {
    let pixels = M::pixels(config);
    match op {
        BenchOp::TrainStep => {
            let train_device = device.clone().autodiff();
            let images = digits(pixels, batch, &train_device)?;
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, &train_device)?.train();
            let (_, settings) = M::training(config.clone(), None);
            let mut training_step = TrainingStep::new(model.players(), settings.learning_rate)?;
            let mut model = Some(model);
            let mut step = 0;
            let run = move || {
                step += 1;
                let current = model
                    .take()
                    .expect("the model is put back after every step");
                let (stepped, _) = training_step.step(current, &images, step)?;
                model = Some(stepped);
                Ok(())
            };
            Ok((Operation::PerRun(Box::new(run)), memory))
        }
        BenchOp::TrainLoop => {
            let train = training_digits(pixels)?;
            let memory = PeakMemory::start();
            let (config, settings) = M::training(config.clone(), None);
            let device = device.clone();
            let run = move |warm_up: usize, timed: usize| {
                let steps = warm_up + timed;
                let step_seconds = Arc::new(Mutex::new(Vec::with_capacity(steps)));
                let trainer = Trainer::new(TrainerConfig {
                    // The step budget ends it; every epoch has at least one step.
                    epochs: steps,
                    batch_size: batch,
                    learning_rate: settings.learning_rate,
                    seed: 0,
                    max_steps: Some(steps),
                    ..TrainerConfig::default()
                })
                .with_observer(StepTimes(step_seconds.clone()));
                let model = init_seeded(&config, 0, &device)?;
                trainer.fit(model, &train, None, &device)?;
                let times = step_seconds.lock().expect("the observer does not panic");
                let at = |step: usize| if step == 0 { 0.0 } else { times[step - 1] };
                if times.len() != steps {
                    return Err(GenError::Backend(format!(
                        "the trainer's loop took {} steps, {steps} were asked for",
                        times.len()
                    )));
                }
                Ok(at(steps) - at(warm_up))
            };
            Ok((Operation::Loop(Box::new(run)), memory))
        }
        BenchOp::LogLikelihood => {
            let images = digits(pixels, batch, device)?;
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, device)?;
            let run = move || {
                model.log_likelihood(&images, &LikelihoodOptions::default())?;
                Ok(())
            };
            Ok((Operation::PerRun(Box::new(run)), memory))
        }
        BenchOp::SampleNaive | BenchOp::SampleCached => {
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, device)?;
            let fast = model.default_method();
            let method = match op {
                BenchOp::SampleCached => fast,
                _ => fast.slow_counterpart().unwrap_or(fast),
            };
            let mut seed = 0;
            let run = move || {
                seed += 1;
                let images = match M::CAPABILITIES.sample_with {
                    Some(sample_with) => sample_with(&model, batch, seed, method)?,
                    None => model.sample(batch, seed)?,
                };
                to_host(images)?;
                Ok(())
            };
            Ok((Operation::PerRun(Box::new(run)), memory))
        }
    }
}

/// The bundled training digits as a model of `pixels` trains on them (binarised at 0.5, or
/// grey).
fn training_digits(pixels: Pixels) -> Result<Dataset> {
    let train = Mnist::bundled()?.train;
    Ok(match pixels {
        Pixels::Grey => train.with_binarization(Binarization::None),
        Pixels::Binary => train.with_binarization(Binarization::Threshold(0.5)),
    })
}

/// The first `batch` bundled training digits, as a model of `pixels` trains on them.
fn digits(pixels: Pixels, batch: usize, device: &Device) -> Result<ImageBatch> {
    let train = training_digits(pixels)?;
    let indices: Vec<usize> = (0..batch).map(|i| i % train.len()).collect();
    train.batch(&indices, 0, device)
}

/// Records the loop's training seconds after every step.
struct StepTimes(Arc<Mutex<Vec<f64>>>);

impl TrainingObserver for StepTimes {
    fn stepped(&mut self, step: &StepRecord<'_>) {
        if let Ok(mut times) = self.0.lock() {
            times.push(step.train_seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench_model(name: &str) -> BenchModel {
        name.parse().unwrap()
    }

    #[test]
    fn names_round_trip_and_unsupported_operations_are_refused() {
        for model in BenchModel::all() {
            assert_eq!(model.name().parse::<BenchModel>().unwrap(), model);
        }
        for op in BenchOp::ALL {
            assert_eq!(op.name().parse::<BenchOp>().unwrap(), op);
        }
        assert!("pixelcnn++".parse::<BenchModel>().is_err());
        for (model, op) in [
            (bench_model("dcgan"), BenchOp::LogLikelihood),
            (bench_model("vae"), BenchOp::SampleCached),
        ] {
            let err = Benchmark::prepare(model, op, Backend::Flex, 4, 28).unwrap_err();
            assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");
        }
        let err = Benchmark::prepare(bench_model("vae"), BenchOp::TrainStep, Backend::Flex, 4, 16)
            .unwrap_err();
        assert!(err.to_string().contains("image-size"), "{err}");
        assert!(
            Benchmark::prepare(bench_model("vae"), BenchOp::TrainStep, Backend::Flex, 0, 28)
                .is_err()
        );
    }

    #[test]
    fn a_training_step_benchmark_reports_what_the_json_promises() {
        let mut bench = Benchmark::prepare(
            bench_model("vae"),
            BenchOp::TrainStep,
            Backend::Flex,
            16,
            28,
        )
        .unwrap();
        let result = bench.measure(1, 2).unwrap();
        assert_eq!(result.op, "train_step");
        assert_eq!((result.batch, result.repetitions), (16, 2));
        assert!(result.images_per_second > 0.0 && result.seconds > 0.0);
        let json = serde_json::to_value(&result).unwrap();
        for key in ["model", "backend", "op", "batch", "images_per_second"] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn the_trainer_loop_benchmark_times_the_timed_steps_of_a_real_run() {
        let model = bench_model("vae");
        let mut bench =
            Benchmark::prepare(model, BenchOp::TrainLoop, Backend::Flex, 8, 28).unwrap();
        let result = bench.measure(2, 3).unwrap();
        assert_eq!(
            (result.op.as_str(), result.batch, result.repetitions),
            ("train_loop", 8, 3)
        );
        assert!(result.seconds > 0.0 && result.images_per_second.is_finite());
        assert_eq!(result.images_per_second, 24.0 / result.seconds);
        assert!(bench.measure(0, 0).is_err());
        assert_eq!(BenchOp::TrainLoop.default_batch(), 64);
        assert_eq!(BenchOp::TrainStep.default_batch(), 32);
    }

    #[test]
    fn sampling_benchmarks_run_at_other_image_sizes() {
        let mut bench = Benchmark::prepare(
            bench_model("pixelcnn"),
            BenchOp::SampleCached,
            Backend::Flex,
            2,
            8,
        )
        .unwrap();
        let result = bench.measure(0, 1).unwrap();
        assert_eq!(result.image_size, 8);
        assert!(result.images_per_second > 0.0);
    }
}

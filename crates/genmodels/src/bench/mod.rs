//! Benchmarks of every model's default preset on every backend: what `genmodels bench` prints
//! and what the criterion benches (`benches/backends.rs`) time.
//!
//! A [`Benchmark`] is one (model, operation, backend) with its model, data and optimiser
//! already built; [`Benchmark::run_once`] does the operation once:
//! - [`BenchOp::TrainStep`]: one [`TrainingStep`] on a batch of bundled digits, prepared as
//!   the model trains on them: forward, backward and optimiser update of every player (a
//!   GAN's discriminator and generator both), exactly what the [`crate::Trainer`] repeats;
//! - [`BenchOp::LogLikelihood`]: [`GenerativeModel::log_likelihood`] of the batch (exact for
//!   the autoregressive models, the ELBO for the VAE; a GAN has none);
//! - [`BenchOp::SampleNaive`] and [`BenchOp::SampleCached`]: drawing `batch` images. The
//!   autoregressive models have both samplers; the VAE and the GAN draw in one decoder pass,
//!   reported as `sample_naive` (there is nothing to cache).

mod measure;

pub use measure::{Measurement, PeakMemory, measure, sync};

use genmodels_core::burn::module::Module;
use genmodels_core::burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use genmodels_autoregressive::{
    DiagonalBiLstmConfig, GatedPixelCnnConfig, IncrementalSampling, PixelCnnConfig, RowLstmConfig,
    SamplingMethod,
};
use genmodels_core::batch::to_host;
use genmodels_core::{
    Backend, GenError, GenerativeModel, ImageBatch, ImageDataset, ImageShape, LikelihoodOptions,
    ModelConfig, Result, Trainable, TrainingStep, init_seeded,
};
use genmodels_data::{Binarization, Mnist};
use genmodels_gan::GanConfig;
use genmodels_vae::VaeConfig;

/// The models benchmarked, each at its default preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchModel {
    /// PixelCNN `small`.
    Pixelcnn,
    /// Gated PixelCNN `small`.
    GatedPixelcnn,
    /// PixelRNN Row LSTM `small`.
    RowLstm,
    /// PixelRNN Diagonal BiLSTM `small`.
    DiagonalBilstm,
    /// The VAE default (Bernoulli decoder).
    Vae,
    /// DCGAN, non-saturating.
    Dcgan,
}

impl BenchModel {
    /// All of them, in the order tables list them.
    pub const ALL: [BenchModel; 6] = [
        Self::Pixelcnn,
        Self::GatedPixelcnn,
        Self::RowLstm,
        Self::DiagonalBilstm,
        Self::Vae,
        Self::Dcgan,
    ];

    /// The name the CLI uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pixelcnn => "pixelcnn",
            Self::GatedPixelcnn => "gated-pixelcnn",
            Self::RowLstm => "row-lstm",
            Self::DiagonalBilstm => "diagonal-bilstm",
            Self::Vae => "vae",
            Self::Dcgan => "dcgan",
        }
    }

    fn is_autoregressive(&self) -> bool {
        !matches!(self, Self::Vae | Self::Dcgan)
    }

    /// Whether the model can do `op` at all.
    pub fn supports(&self, op: BenchOp) -> bool {
        match op {
            BenchOp::TrainStep | BenchOp::SampleNaive => true,
            BenchOp::LogLikelihood => *self != Self::Dcgan,
            BenchOp::SampleCached => self.is_autoregressive(),
        }
    }

    /// Why the model cannot do `op`, for tables.
    pub fn unsupported_reason(&self, op: BenchOp) -> Option<&'static str> {
        match op {
            _ if self.supports(op) => None,
            BenchOp::LogLikelihood => Some("implicit density: no likelihood"),
            _ => Some("one decoder pass: nothing to cache"),
        }
    }

    /// The learning rate it trains at by default (the CLI's).
    fn learning_rate(&self) -> f64 {
        match self {
            Self::Dcgan => GanConfig::new().objective.recommended_learning_rate(),
            _ => 1e-3,
        }
    }
}

impl std::fmt::Display for BenchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchModel {
    type Err = GenError;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                GenError::InvalidConfig(format!(
                    "no benchmark for model `{name}`; choose one of {}",
                    Self::ALL.map(|m| m.name()).join(", ")
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
    /// The test log-likelihood (or its bound) of one batch.
    LogLikelihood,
    /// Drawing a batch of images with the naive sampler (or the model's only one).
    SampleNaive,
    /// Drawing a batch of images with the cached / carried-state sampler.
    SampleCached,
}

impl BenchOp {
    /// All operations.
    pub const ALL: [BenchOp; 4] = [
        Self::TrainStep,
        Self::LogLikelihood,
        Self::SampleNaive,
        Self::SampleCached,
    ];

    /// The name in tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrainStep => "train_step",
            Self::LogLikelihood => "log_likelihood",
            Self::SampleNaive => "sample_naive",
            Self::SampleCached => "sample_cached",
        }
    }

    fn is_sampling(&self) -> bool {
        matches!(self, Self::SampleNaive | Self::SampleCached)
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
    /// The operation (`train_step`, `log_likelihood`, `sample_naive`, `sample_cached`).
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

/// One run of a benchmarked operation.
type Operation = Box<dyn FnMut() -> Result<()> + Send>;

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
        if image_size != 28 && !(op.is_sampling() && model.is_autoregressive()) {
            return Err(GenError::InvalidConfig(format!(
                "--image-size {image_size}: only the autoregressive samplers run at other sizes \
                 than the 28×28 data"
            )));
        }
        let device = backend.device()?;
        let shape = ImageShape::new(1, image_size, image_size);
        let (run, memory) = match model {
            BenchModel::Pixelcnn => operation(
                &PixelCnnConfig::small().with_image_shape(shape),
                model,
                op,
                batch,
                &device,
            )?,
            BenchModel::GatedPixelcnn => operation(
                &GatedPixelCnnConfig::small().with_image_shape(shape),
                model,
                op,
                batch,
                &device,
            )?,
            BenchModel::RowLstm => operation(
                &RowLstmConfig::new().with_image_shape(shape),
                model,
                op,
                batch,
                &device,
            )?,
            BenchModel::DiagonalBilstm => operation(
                &DiagonalBiLstmConfig::new().with_image_shape(shape),
                model,
                op,
                batch,
                &device,
            )?,
            BenchModel::Vae => operation(&VaeConfig::new(), model, op, batch, &device)?,
            BenchModel::Dcgan => operation(&GanConfig::default(), model, op, batch, &device)?,
        };
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
        (self.run)()?;
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
        } = measure(
            &self.device,
            warm_up,
            repetitions,
            self.batch,
            &mut self.run,
        )?;
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
            peak_memory_bytes: peak_memory_bytes.filter(|_| self.backend != Backend::Wgpu),
            kernels: self.backend == Backend::Flex && genmodels_kernels::enabled(),
        })
    }
}

/// The runner of `op` on a model built from `config`, and the memory baseline: taken after
/// loading the data and before building the model, so that the peak counts weights, optimiser
/// state and everything the runs allocate (the PyTorch reference measures the same span).
fn operation<C>(
    config: &C,
    model_name: BenchModel,
    op: BenchOp,
    batch: usize,
    device: &Device,
) -> Result<(Operation, PeakMemory)>
where
    C: ModelConfig,
    C::Model: Sampler + 'static,
{
    match op {
        BenchOp::TrainStep => {
            let train_device = device.clone().autodiff();
            let images = digits(model_name, batch, &train_device)?;
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, &train_device)?.train();
            let mut training_step = TrainingStep::new(model.players(), model_name.learning_rate())?;
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
            Ok((Box::new(run), memory))
        }
        BenchOp::LogLikelihood => {
            let images = digits(model_name, batch, device)?;
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, device)?;
            let run = move || {
                model.log_likelihood(&images, &LikelihoodOptions::default())?;
                Ok(())
            };
            Ok((Box::new(run), memory))
        }
        BenchOp::SampleNaive | BenchOp::SampleCached => {
            let memory = PeakMemory::start();
            let model = init_seeded(config, 0, device)?;
            let method = if op == BenchOp::SampleCached {
                SamplingMethod::Cached
            } else {
                SamplingMethod::Naive
            };
            let mut seed = 0;
            let run = move || {
                seed += 1;
                to_host(model.draw(batch, seed, method)?)?;
                Ok(())
            };
            Ok((Box::new(run), memory))
        }
    }
}

/// The first `batch` bundled training digits, prepared as `model` trains on them.
fn digits(model: BenchModel, batch: usize, device: &Device) -> Result<ImageBatch> {
    let train = Mnist::bundled()?.train;
    let train = match model {
        BenchModel::Dcgan => train.with_binarization(Binarization::None),
        _ => train.with_binarization(Binarization::Threshold(0.5)),
    };
    let indices: Vec<usize> = (0..batch).map(|i| i % train.len()).collect();
    train.batch(&indices, 0, device)
}

/// Sampling with a chosen method, for the models that have one.
trait Sampler: Trainable {
    fn draw(&self, n: usize, seed: u64, method: SamplingMethod) -> Result<Tensor<4>>;
}

macro_rules! incremental_sampler {
    ($($model:ty),*) => {$(
        impl Sampler for $model {
            fn draw(&self, n: usize, seed: u64, method: SamplingMethod) -> Result<Tensor<4>> {
                self.sample_with(n, seed, method)
            }
        }
    )*};
}

incremental_sampler!(
    genmodels_autoregressive::PixelCnn,
    genmodels_autoregressive::GatedPixelCnn,
    genmodels_autoregressive::RowLstm,
    genmodels_autoregressive::DiagonalBiLstm
);

macro_rules! one_pass_sampler {
    ($($model:ty),*) => {$(
        impl Sampler for $model {
            fn draw(&self, n: usize, seed: u64, _: SamplingMethod) -> Result<Tensor<4>> {
                self.sample(n, seed)
            }
        }
    )*};
}

one_pass_sampler!(genmodels_vae::Vae, genmodels_gan::Gan);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unsupported_operations_are_refused() {
        for model in BenchModel::ALL {
            assert_eq!(model.name().parse::<BenchModel>().unwrap(), model);
        }
        for op in BenchOp::ALL {
            assert_eq!(op.name().parse::<BenchOp>().unwrap(), op);
        }
        assert!("pixelcnn++".parse::<BenchModel>().is_err());
        for (model, op) in [
            (BenchModel::Dcgan, BenchOp::LogLikelihood),
            (BenchModel::Vae, BenchOp::SampleCached),
        ] {
            let err = Benchmark::prepare(model, op, Backend::Flex, 4, 28).unwrap_err();
            assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");
        }
        let err = Benchmark::prepare(BenchModel::Vae, BenchOp::TrainStep, Backend::Flex, 4, 16)
            .unwrap_err();
        assert!(err.to_string().contains("image-size"), "{err}");
        assert!(
            Benchmark::prepare(BenchModel::Vae, BenchOp::TrainStep, Backend::Flex, 0, 28).is_err()
        );
    }

    #[test]
    fn a_training_step_benchmark_reports_what_the_json_promises() {
        let mut bench =
            Benchmark::prepare(BenchModel::Vae, BenchOp::TrainStep, Backend::Flex, 16, 28).unwrap();
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
    fn sampling_benchmarks_run_at_other_image_sizes() {
        let mut bench = Benchmark::prepare(
            BenchModel::Pixelcnn,
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

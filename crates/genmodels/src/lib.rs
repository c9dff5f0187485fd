//! # genmodels
//!
//! Classic generative models of images in Rust, on [Burn](https://burn.dev): one
//! [`GenerativeModel`] trait with `loss`, `log_likelihood` and `sample`, and one crate per model
//! family behind it. This facade re-exports them all; enable families and backends with
//! cargo features (`ae`, `vae`, `autoregressive`, `gan`, `mixture`, `diffusion`, `data`; `flex` (default), `ndarray`, `wgpu`).
//!
//! ```no_run
//! use genmodels::prelude::*;
//! use genmodels::vae::VaeConfig;
//!
//! # fn main() -> genmodels::Result<()> {
//! let device = Backend::Flex.device()?;
//! let mnist = Mnist::bundled()?;
//! let train = mnist.train.with_binarization(Binarization::Dynamic { seed: 0 });
//! let test = mnist.test.with_binarization(Binarization::Stochastic { seed: 1 });
//!
//! let model = init_seeded(&VaeConfig::new(), 0, &device)?;
//! let trainer = Trainer::new(TrainerConfig { epochs: 5, ..TrainerConfig::default() })
//!     .with_observer(TrainingProgress::new());
//! let trained = trainer.fit(model, &train, Some(&test), &device)?;
//! let ll = trained.report.test_log_likelihood.expect("a VAE has a likelihood bound");
//! println!("test {}: {:.2} nats, {:.4} bits/dim", ll.kind, ll.mean_nll_nats(), ll.nll_bits_per_dim());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

// The core, by name: the modules a user reads about and the items most programs name.
pub use genmodels_core::{
    AnomalyScore, AnomalyScores, Complete, ConditionalSample, Interpolate, InterpolateLatents,
    Reconstruct, SampleWithMethod, SamplingMethod,
};
pub use genmodels_core::{
    Backend, CurveOptions, CurvePoint, DensityScale, GenError, GenerativeModel, ImageBatch,
    ImageDataset, ImageShape, InMemoryDataset, LikelihoodKind, LikelihoodOptions, LogLikelihood,
    Loss, ModelConfig, OptimizerKind, PixelDomain, Player, PlayerLoss, Result, Trainable, Trained,
    Trainer, TrainerConfig, TrainingObserver, TrainingReport, TrainingStep, check_data,
    init_seeded,
};
pub use genmodels_core::{
    EpochLoop, EpochRecord, Learner, LoopReport, LoopSettings, StepOutcome, StepPosition,
    StepRecord, TrainingPlan,
};
pub use genmodels_core::{
    backend, batch, burn, capabilities, checkpoint, distributions, error, evaluation, likelihood,
    model, nn, progress, random, trainer,
};

/// Evaluation beyond a model's own likelihood: Parzen-window estimates and the offline
/// sample-quality judge (MNIST-FID, Inception-style score, mode coverage).
pub mod eval {
    pub use genmodels_eval::{
        Judge, ParzenEstimate, ParzenOptions, SampleQuality, evaluate_parzen, latent, parzen,
        probe, quality,
    };
    pub use genmodels_eval::{metrics, superres};
}

/// What people look at: PNG sample sheets, charts and progress bars.
pub mod report {
    pub use genmodels_report::{
        BarChart, GridLayout, LineChart, TerminalProgress, TrainingProgress, image_output, plot,
        progress, save_image_grid, save_labelled_panels,
    };
}

/// The hand-written CPU kernels, seen from outside: whether they are compiled in and switched
/// on, the run-time switch, the compute-thread helper, the machine (vector extensions, the
/// matrix library's peak) and the binaries' allocator. The kernels
/// themselves are private to `genmodels-kernels`.
pub mod kernels {
    #[cfg(feature = "mimalloc")]
    pub use genmodels_kernels::Allocator;
    pub use genmodels_kernels::{COMPILED, enabled, machine, on_compute_threads, set_enabled};
}

/// Data: IDX/MNIST, PNG folders, binarisation and batching.
#[cfg(feature = "data")]
pub use genmodels_data as data;

/// Autoencoders (no likelihood; the non-generative baseline).
#[cfg(feature = "ae")]
pub use genmodels_ae as ae;

/// Variational autoencoders.
#[cfg(feature = "vae")]
pub use genmodels_vae as vae;

/// Autoregressive models with exact likelihoods (PixelCNN, Gated PixelCNN, PixelRNN).
#[cfg(feature = "autoregressive")]
pub use genmodels_autoregressive as autoregressive;

/// Generative adversarial networks (MLP, DCGAN, cGAN; five objectives) and the VAE-GAN.
#[cfg(feature = "gan")]
pub use genmodels_gan as gan;

/// Mixture models fitted by EM: Bernoulli and diagonal-Gaussian mixtures with exact
/// likelihoods.
#[cfg(feature = "mixture")]
pub use genmodels_mixture as mixture;

/// Diffusion models: DDPM with ancestral and DDIM sampling, and its variational bound.
#[cfg(feature = "diffusion")]
pub use genmodels_diffusion as diffusion;

#[cfg(feature = "data")]
pub mod anomaly;

#[cfg(all(
    feature = "ae",
    feature = "autoregressive",
    feature = "gan",
    feature = "mixture",
    feature = "vae",
    feature = "diffusion"
))]
pub mod registry;

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan",
    feature = "ae",
    feature = "mixture",
    feature = "diffusion"
))]
pub mod bench;

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan",
    feature = "ae",
    feature = "mixture",
    feature = "diffusion"
))]
pub mod compare;

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan",
    feature = "ae",
    feature = "mixture",
    feature = "diffusion"
))]
pub mod recipe;

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan",
    feature = "ae",
    feature = "mixture",
    feature = "diffusion"
))]
pub mod zoo;

/// The README's code blocks, compiled and run as doctests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The names most programs need.
pub mod prelude {
    #[cfg(feature = "data")]
    pub use genmodels_data::{Binarization, Dataset, ImageSet, Mnist};

    pub use genmodels_core::burn::tensor::Device;
    pub use genmodels_core::evaluation::evaluate_log_likelihood;
    pub use genmodels_core::{
        AnomalyScore, AnomalyScores, Backend, Complete, ConditionalSample, GenError,
        GenerativeModel, ImageBatch, ImageDataset, ImageShape, Interpolate, InterpolateLatents,
        LikelihoodKind, LikelihoodOptions, LogLikelihood, ModelConfig, PixelDomain, Reconstruct,
        Result, SampleWithMethod, SamplingMethod, Trainable, Trained, Trainer, TrainerConfig,
        TrainingReport, init_seeded,
    };
    pub use genmodels_report::{GridLayout, TerminalProgress, TrainingProgress, save_image_grid};
}

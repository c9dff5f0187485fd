//! # genmodels-core
//!
//! What every genmodels family shares: the [`GenerativeModel`] trait and the [`capabilities`]
//! some models add, typed likelihoods
//! ([`LogLikelihood`], [`LikelihoodKind`]), the error type ([`GenError`]), validated image
//! batches ([`ImageBatch`]) and the data-set interface ([`ImageDataset`]), the one training
//! loop ([`Trainer`]), checkpoints ([`checkpoint`]), whole-data-set evaluation
//! ([`evaluation`]), backend selection ([`Backend`]), and the network blocks ([`nn`]) and
//! log-densities ([`distributions`]) that several families use.
//!
//! The CPU kernels live in `genmodels-kernels`, Parzen estimates and the sample-quality judge
//! in `genmodels-eval`, charts and sample sheets in `genmodels-report`.
//!
//! Tensors follow burn 0.22: `Tensor<D>` carries no backend type; the backend is the run-time
//! [`burn::tensor::Device`].

#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod capabilities;
pub mod checkpoint;
pub mod distributions;
pub mod error;
pub mod evaluation;
pub mod fs;
pub mod likelihood;
pub mod model;
pub mod nn;
pub mod progress;
pub mod random;
pub mod trainer;

pub use backend::Backend;
pub use batch::{ImageBatch, ImageDataset, ImageShape, InMemoryDataset, PixelDomain};
pub use capabilities::{
    AnomalyScore, AnomalyScores, Complete, ConditionalSample, Interpolate, InterpolateLatents,
    Reconstruct, SampleWithMethod, SamplingMethod,
};
pub use error::{GenError, Result};
pub use likelihood::{DensityScale, LikelihoodKind, LikelihoodOptions, LogLikelihood};
pub use model::{GenerativeModel, Loss, ModelConfig, OptimizerKind, Player, Trainable};
pub use trainer::{
    CurveOptions, CurvePoint, EpochLoop, EpochRecord, Learner, LoopReport, LoopSettings,
    PlayerLoss, StepOutcome, StepPosition, StepRecord, Trained, Trainer, TrainerConfig,
    TrainingObserver, TrainingPlan, TrainingReport, TrainingStep, check_data, init_seeded,
};

/// Burn, re-exported so that downstream crates use the same version.
pub use burn;

//! # genmodels-core
//!
//! What every genmodels family shares: the [`GenerativeModel`] trait, typed likelihoods
//! ([`LogLikelihood`], [`LikelihoodKind`]), the error type ([`GenError`]), validated image
//! batches ([`ImageBatch`]) and the data-set interface ([`ImageDataset`]), the one training
//! loop ([`Trainer`]), checkpoints ([`checkpoint`]), whole-data-set evaluation
//! ([`evaluation`]), PNG grids ([`image_output`]), backend selection ([`Backend`]), and the
//! network blocks ([`nn`]) and log-densities ([`distributions`]) that several families use,
//! and the offline sample-quality judge with MNIST-FID, an Inception-style score and mode
//! coverage ([`quality`]).
//!
//! Tensors follow burn 0.22: `Tensor<D>` carries no backend type; the backend is the run-time
//! [`burn::tensor::Device`].

#![warn(missing_docs)]

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod backend;
pub mod batch;
pub mod batch_norm;
pub mod bench;
pub mod checkpoint;
pub mod distributions;
pub mod error;
pub mod evaluation;
#[cfg(feature = "flex")]
mod flex_support;
pub mod fs;
pub mod image_output;
pub mod likelihood;
pub mod model;
pub mod nn;
pub mod parzen;
pub mod plot;
pub mod progress;
pub mod quality;
pub mod random;
pub mod tap_conv;
pub mod trainer;

pub use backend::Backend;
pub use batch::{ImageBatch, ImageDataset, ImageShape, InMemoryDataset, PixelDomain};
pub use error::{GenError, Result};
pub use likelihood::{DensityScale, LikelihoodKind, LikelihoodOptions, LogLikelihood};
pub use model::{GenerativeModel, Loss, ModelConfig, OptimizerKind, Player};
pub use parzen::{ParzenEstimate, ParzenOptions, evaluate_parzen};
pub use trainer::{
    CurveOptions, CurvePoint, PlayerLoss, Trained, Trainer, TrainerConfig, TrainingReport,
    TrainingStep, init_seeded,
};

/// Burn, re-exported so that downstream crates use the same version.
pub use burn;

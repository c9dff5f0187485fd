//! # genmodels-eval
//!
//! Scores for generative models beyond their own likelihoods:
//!
//! - [`parzen`]: the Parzen-window log-likelihood estimate of Goodfellow et al. (2014), for
//!   models that can only sample (GANs), returned as a [`LogLikelihood`] of kind
//!   [`LikelihoodKind::ParzenEstimate`] and documented with why the number is unreliable.
//! - [`quality`]: the offline sample-quality judge, a small MNIST classifier whose features
//!   and predictions give an MNIST-FID, an Inception-style score and mode coverage.
//! - [`metrics`]: scores of what the models are used for: AUROC (anomaly detection), PSNR
//!   and SSIM (super-resolution, inpainting).
//! - [`latent`]: measures for latent control: an image's ink and slant, Spearman's rank
//!   correlation, class means and attribute directions of codes.
//! - [`superres`]: super-resolution's baselines (bicubic and nearest-neighbour upsampling)
//!   and scores (the low-pass error, a classifier's accuracy).
//! - [`probe`]: linear probes, a logistic regression on a model's representation trained
//!   with a few labels per class, scored by its test accuracy.
//!
//! [`LogLikelihood`]: genmodels_core::LogLikelihood
//! [`LikelihoodKind::ParzenEstimate`]: genmodels_core::LikelihoodKind::ParzenEstimate

#![warn(missing_docs)]

pub mod latent;
pub mod metrics;
pub mod parzen;
pub mod probe;
pub mod quality;
pub mod superres;

pub use parzen::{ParzenEstimate, ParzenOptions, evaluate_parzen};
pub use quality::{Judge, SampleQuality};

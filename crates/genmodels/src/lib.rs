//! # genmodels
//!
//! Classic generative models of images in Rust, on [Burn](https://burn.dev): one
//! [`GenerativeModel`] trait with `loss`, `log_likelihood` and `sample`, and one crate per model
//! family behind it. This facade re-exports them all; enable families and backends with
//! cargo features (`ae`, `vae`, `autoregressive`, `gan`, `mixture`, `data`; `flex` (default), `ndarray`, `wgpu`).
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
//! let trainer = Trainer::new(TrainerConfig { epochs: 5, ..TrainerConfig::default() });
//! let trained = trainer.fit(model, &train, Some(&test), &device)?;
//! let ll = trained.report.test_log_likelihood.expect("a VAE has a likelihood bound");
//! println!("test {}: {:.2} nats, {:.4} bits/dim", ll.kind, ll.mean_nll_nats(), ll.bits_per_dim());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub use genmodels_core::*;

/// Data: IDX/MNIST, PNG folders, binarisation and batching.
#[cfg(feature = "data")]
pub mod data {
    pub use genmodels_data::*;
}

/// Autoencoders (no likelihood; the non-generative baseline).
#[cfg(feature = "ae")]
pub mod ae {
    pub use genmodels_ae::*;
}

/// Variational autoencoders.
#[cfg(feature = "vae")]
pub mod vae {
    pub use genmodels_vae::*;
}

/// Autoregressive models with exact likelihoods (PixelCNN, Gated PixelCNN, PixelRNN).
#[cfg(feature = "autoregressive")]
pub mod autoregressive {
    pub use genmodels_autoregressive::*;
}

/// Generative adversarial networks (MLP, DCGAN, cGAN; five objectives) and the VAE-GAN.
#[cfg(feature = "gan")]
pub mod gan {
    pub use genmodels_gan::*;
}

/// Mixture models fitted by EM: Bernoulli and diagonal-Gaussian mixtures with exact
/// likelihoods.
#[cfg(feature = "mixture")]
pub mod mixture {
    pub use genmodels_mixture::*;
}

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan"
))]
pub mod bench;

#[cfg(all(
    feature = "data",
    feature = "autoregressive",
    feature = "vae",
    feature = "gan",
    feature = "ae",
    feature = "mixture"
))]
pub mod compare;

/// The names most programs need.
pub mod prelude {
    #[cfg(feature = "autoregressive")]
    pub use genmodels_autoregressive::{IncrementalSampling, SamplingMethod};
    #[cfg(feature = "data")]
    pub use genmodels_data::{Binarization, Dataset, ImageSet, Mnist};

    pub use genmodels_core::backend::on_compute_threads;
    pub use genmodels_core::image_output::{GridLayout, save_image_grid};
    pub use genmodels_core::{
        Backend, GenError, GenerativeModel, ImageBatch, ImageDataset, ImageShape, LikelihoodKind,
        LikelihoodOptions, LogLikelihood, ModelConfig, PixelDomain, Trained, Trainer,
        TrainerConfig, init_seeded,
    };
}

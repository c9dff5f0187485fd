//! # genmodels-gan
//!
//! Generative adversarial networks (Goodfellow et al. 2014): MLP and DCGAN (Radford et al.
//! 2015) players, five objectives, spectral normalisation (Miyato et al. 2018), weight
//! clipping (Arjovsky et al. 2017), and class-conditional models with a projection
//! discriminator (Miyato & Koyama 2018).
//!
//! ## The game
//! A generator `G` maps noise `z ~ N(0, I)` to images; a discriminator `D` scores images as
//! data or samples. The original game is
//!
//! ```text
//! min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))],
//! ```
//!
//! whose optimal `D*(x) = p_data(x) / (p_data(x) + p_G(x))` turns the generator's objective
//! into `2·JSD(p_data ‖ p_G) − log 4`. The two players train in turn, each minimising its own
//! loss with its own optimiser: the shared [`genmodels_core::Trainer`] steps the
//! discriminator on every batch and the generator on every `critic_steps`-th
//! ([`Trainable::players`](genmodels_core::Trainable::players)).
//!
//! ## Objectives
//! On raw discriminator outputs `d_r = D(x)`, `d_f = D(G(z))` (logits or scores), with
//! `softplus(t) = log(1 + eᵗ)`:
//!
//! | objective        | `L_D`                                    | `L_G`                          | defaults |
//! |------------------|------------------------------------------|--------------------------------|----------|
//! | `minimax`        | `E[softplus(−d_r)] + E[softplus(d_f)]`   | `−E[softplus(d_f)]` = `E[log(1 − σ(d_f))]` | Adam(0.5, 0.999) |
//! | `non_saturating` | as minimax                               | `E[softplus(−d_f)]` = `−E[log σ(d_f)]` | Adam(0.5, 0.999) |
//! | `lsgan`          | `½E[(d_r − 1)²] + ½E[d_f²]`              | `½E[(d_f − 1)²]`               | Adam(0.5, 0.999) |
//! | `hinge`          | `E[relu(1 − d_r)] + E[relu(1 + d_f)]`    | `−E[d_f]`                      | Adam(0.5, 0.999), spectral norm |
//! | `wasserstein`    | `E[d_f] − E[d_r]`                        | `−E[d_f]`                      | RMSProp(0.99), 5 critic steps, clipping to `[−0.01, 0.01]` |
//!
//! Recommended learning rates: 2e-4 with Adam (DCGAN, non-saturating), 5e-5 with RMSProp
//! (WGAN).
//!
//! **No WGAN-GP.** The gradient penalty of Gulrajani et al. (2017),
//! `λ E[(‖∇_x̂ D(x̂)‖ − 1)²]`, is a loss built from a gradient, so its own gradient needs
//! second-order differentiation. Burn 0.22's autodiff is first-order only, so WGAN-GP cannot
//! be trained here; the Wasserstein objective keeps its critic Lipschitz by weight clipping
//! (and [`GanObjective::Hinge`] by spectral normalisation).
//!
//! ## Monitoring
//! Each training epoch reports `discriminator_loss`, `generator_loss`, `d_real` and `d_fake`
//! (mean `σ(D(·))` for the probability objectives, mean raw output for the others) and the
//! generator's `sample_diversity` (its samples' mean pairwise distance over the data's). The
//! model warns when the discriminator wins outright or samples lose diversity
//! ([`Gan`]'s `training_warnings`).
//!
//! ## VAE-GAN
//! [`VaeGan`] (Larsen et al. 2016) puts an encoder in front of the DCGAN generator and
//! measures reconstructions in the discriminator's feature space; three players train in
//! turn (see [`vae_gan`]).
//!
//! ## Likelihood
//! A GAN has an implicit density: it defines how to sample, not `p(x)`. `log_likelihood`
//! returns [`genmodels_core::GenError::LikelihoodNotAvailable`].

#![warn(missing_docs)]

pub mod model;
pub mod network;
pub mod objective;
pub mod ring;
pub mod spectral_norm;
pub mod vae_gan;

pub use model::{DISCRIMINATOR, GENERATOR, Gan, GanConfig, LatentPath};
pub use network::{Discriminator, GanArchitecture, Generator};
pub use objective::{GanObjective, discriminator_loss, generator_loss};
pub use spectral_norm::{SnConv2d, SnLinear, SpectralNorm};
pub use vae_gan::{VaeGan, VaeGanConfig};

/// The DCGAN preset for 28×28 grey images (MNIST).
impl Default for GanConfig {
    /// [`GanConfig::new`]: the MNIST DCGAN, non-saturating.
    fn default() -> Self {
        GanConfig::new()
    }
}

#[cfg(test)]
mod tests;

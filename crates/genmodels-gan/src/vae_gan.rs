//! VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction term is measured in the
//! discriminator's feature space instead of pixel space, trained against that discriminator.
//!
//! With encoder `q(z|x)`, decoder (the generator) `x̃ = Dec(z)` and discriminator features
//! `φ(x)` (the penultimate layer, [`Discriminator::features`]):
//!
//! - `L_prior = KL(q(z|x) ‖ N(0, I))`;
//! - `L_feature = −E_q[log N(φ(x) | φ(Dec(z)), I)] = ½ E_q ‖φ(x) − φ(Dec(z))‖² + const`,
//!   replacing the pixel likelihood `−E_q[log p(x|z)]`;
//! - `L_GAN = log D(x) + log(1 − D(Dec(z_p))) + log(1 − D(Dec(z)))`, with `z_p ~ N(0, I)` and
//!   `z ~ q(z|x)`: reconstructions count as fakes too, as in the paper.
//!
//! Three players train in turn ([`Trainable::players`]), each on its own parameters:
//!
//! | player | minimises |
//! |---|---|
//! | discriminator | `−L_GAN` |
//! | encoder | `L_prior + L_feature` |
//! | decoder | `γ·L_feature + L_G`, `L_G = −log D(Dec(z_p)) − log D(Dec(z))` |
//!
//! The decoder uses the non-saturating generator loss (the paper writes `−L_GAN`, the
//! saturating form). The discriminator is not trained on `L_feature`, as in the paper: the
//! metric would otherwise collapse to make reconstruction trivially easy.
//!
//! There is no likelihood: `L_prior + L_feature` bounds a density over discriminator features,
//! not over pixels, so [`GenerativeModel::log_likelihood`] is a typed
//! [`GenError::LikelihoodNotAvailable`].

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};
use genmodels_core::distributions::{kl_diagonal_gaussian_to_standard_normal, softplus};
use genmodels_core::model::{materialise_parameters, module_device, require_samples};
use genmodels_core::nn::{Architecture, ImageEncoder, interpolate_codes};
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageShape, Interpolate, LikelihoodOptions,
    LogLikelihood, Loss, ModelConfig, OptimizerKind, Player, Reconstruct, Result, Trainable,
    capabilities::check_interpolation, random,
};
use serde::{Deserialize, Serialize};

use crate::model::{collapse_warnings, mean_pairwise_distance};
use crate::network::{Discriminator, GanArchitecture, Generator, NetworkSpec};

/// Index of the discriminator among a VAE-GAN's [`players`](Trainable::players).
pub const VAE_GAN_DISCRIMINATOR: usize = 0;
/// Index of the encoder.
pub const VAE_GAN_ENCODER: usize = 1;
/// Index of the decoder.
pub const VAE_GAN_DECODER: usize = 2;

/// Configuration of a [`VaeGan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeGanConfig {
    /// Shape of the images (H and W divisible by 4).
    pub image_shape: ImageShape,
    /// Latent dimension.
    pub latent_dim: usize,
    /// Channels of the encoder's two stride-2 convolutions (the VAE's conv encoder).
    pub encoder_channels: [usize; 2],
    /// DCGAN base width `w` of the decoder and the discriminator.
    pub width: usize,
    /// `γ`, the weight of the feature reconstruction against the GAN loss in the decoder's
    /// objective.
    pub feature_weight: f64,
}

impl Default for VaeGanConfig {
    fn default() -> Self {
        Self::new(ImageShape::MNIST)
    }
}

impl VaeGanConfig {
    /// Latent 32, encoder channels [32, 64], DCGAN width 32, γ = 0.01 for `image_shape`.
    pub fn new(image_shape: ImageShape) -> Self {
        Self {
            image_shape,
            latent_dim: 32,
            encoder_channels: [32, 64],
            width: 32,
            feature_weight: 0.01,
        }
    }

    /// With latent dimension `latent_dim`.
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    /// With DCGAN base width `width`.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// With encoder channels `channels`.
    pub fn with_encoder_channels(mut self, channels: [usize; 2]) -> Self {
        self.encoder_channels = channels;
        self
    }

    /// With feature weight `γ`.
    pub fn with_feature_weight(mut self, gamma: f64) -> Self {
        self.feature_weight = gamma;
        self
    }

    fn spec(&self) -> NetworkSpec {
        NetworkSpec {
            architecture: GanArchitecture::Dcgan { width: self.width },
            image_shape: self.image_shape,
            latent_dim: self.latent_dim,
            classes: None,
            label_embedding_dim: 0,
            spectral_norm: None,
        }
    }

    fn validate(&self) -> Result<()> {
        let s = self.image_shape;
        if self.latent_dim == 0 || self.width == 0 {
            return Err(GenError::InvalidConfig(
                "the VAE-GAN's latent dimension and width must be positive".into(),
            ));
        }
        if s.dims() == 0 || !s.height.is_multiple_of(4) || !s.width.is_multiple_of(4) {
            return Err(GenError::InvalidConfig(format!(
                "the VAE-GAN's DCGAN networks need H and W divisible by 4, got {s}"
            )));
        }
        if !(self.feature_weight.is_finite() && self.feature_weight >= 0.0) {
            return Err(GenError::InvalidConfig(format!(
                "the feature weight γ must be finite and ≥ 0, got {}",
                self.feature_weight
            )));
        }
        Ok(())
    }
}

impl ModelConfig for VaeGanConfig {
    type Model = VaeGan;
    const MODEL_NAME: &'static str = "vae-gan";

    fn init(&self, device: &Device) -> Result<VaeGan> {
        self.validate()?;
        let spec = self.spec();
        let encoder = Architecture::Conv {
            channels: self.encoder_channels,
        }
        .encoder(self.image_shape, 2 * self.latent_dim, device)?;
        let model = VaeGan {
            encoder,
            decoder: Generator::new(&spec, device),
            discriminator: Discriminator::new(&spec, device),
            config: self.clone(),
        };
        materialise_parameters(&model);
        Ok(model)
    }
}

/// A VAE-GAN (Larsen et al. 2016); see the [module docs](self).
#[derive(Module, Debug)]
pub struct VaeGan {
    /// `q(z|x)`: images in `[0, 1]` → `[mean, log-variance]`.
    pub encoder: ImageEncoder,
    /// `Dec(z)`, a DCGAN generator: latents → images in `[−1, 1]`.
    pub decoder: Generator,
    /// `D` and its features `φ`, a DCGAN discriminator.
    pub discriminator: Discriminator,
    #[module(skip)]
    config: VaeGanConfig,
}

/// One pass of every network on a batch.
struct Pass {
    /// Data and prior samples in `[−1, 1]`, flattened, for the diversity figure.
    data: Tensor<2>,
    prior_samples: Tensor<2>,
    kl: Tensor<1>,
    feature_reconstruction: Tensor<1>,
    d_real: Tensor<1>,
    d_reconstruction: Tensor<1>,
    d_prior: Tensor<1>,
}

impl VaeGan {
    /// The posterior mean and log-variance of each image.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]` in `[0, 1]`
    /// - output: two `[N, latent_dim]`
    pub fn encode(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let l = self.config.latent_dim;
        let stats = self.encoder.forward(images);
        let [n, _] = stats.dims();
        (
            stats.clone().slice([0..n, 0..l]),
            stats.slice([0..n, l..2 * l]),
        )
    }

    /// Decodes latents to images in `[0, 1]`.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for latents of the wrong size.
    pub fn decode(&self, z: Tensor<2>) -> Result<Tensor<4>> {
        let [n, l] = z.dims();
        if l != self.config.latent_dim || n == 0 {
            return Err(GenError::ShapeMismatch {
                context: "VAE-GAN latent codes".into(),
                expected: format!("[N ≥ 1, {}]", self.config.latent_dim),
                actual: format!("[{n}, {l}]"),
            });
        }
        Ok((self.decoder.forward(z, None) + 1.0) * 0.5)
    }

    /// Every network on the batch: the encoder with one reparameterised draw, the decoder on
    /// it and on a prior draw, the discriminator on the data and both.
    /// `detach_images` cuts the graph between the decoder and the discriminator (for D's step).
    fn pass(&self, batch: &ImageBatch, detach_images: bool) -> Result<Pass> {
        batch.require_shape(self.config.image_shape, "VAE-GAN")?;
        let device = batch.device();
        let n = batch.len();
        let l = self.config.latent_dim;
        let x = batch.images().clone();
        let (mean, log_var) = self.encode(x.clone());
        let epsilon = Tensor::random([n, l], Distribution::Normal(0.0, 1.0), &device);
        let z = mean.clone() + (log_var.clone() * 0.5).exp() * epsilon;
        let z_prior = Tensor::random([n, l], Distribution::Normal(0.0, 1.0), &device);
        let mut reconstruction = self.decoder.forward(z, None);
        let mut prior_sample = self.decoder.forward(z_prior, None);
        if detach_images {
            reconstruction = reconstruction.detach();
            prior_sample = prior_sample.detach();
        }
        let x_scaled = x * 2.0 - 1.0;
        // φ(x) is the target of the reconstruction: no gradient flows into it.
        let features_real = self.discriminator.features(x_scaled.clone()).detach();
        let features_reconstruction = self.discriminator.features(reconstruction.clone());
        let feature_reconstruction = (features_reconstruction - features_real)
            .powi_scalar(2)
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .mean()
            * 0.5;
        let dims = self.config.image_shape.dims();
        Ok(Pass {
            data: x_scaled.clone().reshape([n, dims]),
            prior_samples: prior_sample.clone().detach().reshape([n, dims]),
            kl: kl_diagonal_gaussian_to_standard_normal(mean, log_var).mean(),
            feature_reconstruction,
            d_real: self.discriminator.forward(x_scaled, None),
            d_reconstruction: self.discriminator.forward(reconstruction, None),
            d_prior: self.discriminator.forward(prior_sample, None),
        })
    }

    fn discriminator_loss(pass: &Pass) -> Tensor<1> {
        softplus(pass.d_real.clone().neg()).mean()
            + softplus(pass.d_reconstruction.clone()).mean()
            + softplus(pass.d_prior.clone()).mean()
    }

    fn decoder_gan_loss(pass: &Pass) -> Tensor<1> {
        softplus(pass.d_reconstruction.clone().neg()).mean()
            + softplus(pass.d_prior.clone().neg()).mean()
    }

    fn monitored(pass: &Pass, loss: Loss) -> Loss {
        let fake = Tensor::cat(vec![pass.d_reconstruction.clone(), pass.d_prior.clone()], 0);
        loss.with_component("d_real", sigmoid(pass.d_real.clone().detach()).mean())
            .with_component("d_fake", sigmoid(fake.detach()).mean())
    }
}

impl Reconstruct for VaeGan {
    /// Reconstructions `Dec(E_q[z|x])` of a batch, in `[0, 1]`.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn reconstruct(&self, batch: &ImageBatch) -> Result<Tensor<4>> {
        batch.require_shape(self.config.image_shape, "VAE-GAN")?;
        let (mean, _) = self.encode(batch.images().clone());
        self.decode(mean)
    }
}

impl genmodels_core::capabilities::Represent for VaeGan {
    /// The encoder's posterior mean `μ(x)` of each image (as the VAE's).
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, L]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        batch.require_shape(self.config.image_shape, "VAE-GAN")?;
        Ok(self.encode(batch.images().clone()).0)
    }

    fn representation_name(&self) -> &'static str {
        "posterior mean μ(x)"
    }
}

impl Interpolate for VaeGan {
    /// Decoded straight-line paths between the posterior means of `a`'s and `b`'s images,
    /// `steps` per pair, pair by pair.
    ///
    /// # Errors
    /// Shape errors for batches of another shape or size; [`GenError::InvalidConfig`] for
    /// fewer than 2 steps.
    fn interpolate(&self, a: &ImageBatch, b: &ImageBatch, steps: usize) -> Result<Tensor<4>> {
        check_interpolation(a, b, steps, self.config.image_shape, "VAE-GAN")?;
        let (start, _) = self.encode(a.images().clone());
        let (end, _) = self.encode(b.images().clone());
        self.decode(interpolate_codes(start, end, steps))
    }
}

impl GenerativeModel for VaeGan {
    type Config = VaeGanConfig;

    fn config(&self) -> &VaeGanConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    fn compute_log_likelihood(
        &self,
        batch: &ImageBatch,
        _: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        batch.require_shape(self.config.image_shape, "VAE-GAN")?;
        Err(GenError::LikelihoodNotAvailable {
            model: "vae-gan".into(),
            reason: "its reconstruction term is a Gaussian over discriminator features, not a \
                     density over pixels, so KL + feature error bounds no log p(x)"
                .into(),
        })
    }

    /// `Dec(z)` for `z ~ N(0, I)`, in `[0, 1]`.
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let z = random::standard_normal(
            [n, self.config.latent_dim],
            &mut random::rng(seed),
            &module_device(self),
        );
        self.decode(z)
    }
}

impl genmodels_core::AnomalyScore for VaeGan {
    /// The encoder's loss of each image, taken at the posterior mean `μ(x)` instead of a draw:
    /// `KL(q(z|x) ‖ N(0, I)) + ½ ‖φ(x) − φ(Dec(μ(x)))‖²`, the VAE-GAN's ELBO-like score
    /// (`L_prior + L_feature` of the [module docs](self), without its constant). Higher is
    /// more anomalous: a code the prior finds unlikely, or a reconstruction the discriminator's
    /// features tell apart from the image.
    ///
    /// Chosen over the discriminator's output because it uses what the VAE-GAN adds to a GAN
    /// (an encoder, and a learned similarity between an image and its reconstruction), and the
    /// discriminator here also learns to reject reconstructions, so its output on an image
    /// says little about the image alone. It is in units of squared features, not nats of
    /// pixels, and compares only between images scored by the same model. `options` are
    /// ignored (no noise is drawn).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn anomaly_scores(
        &self,
        batch: &ImageBatch,
        _: &LikelihoodOptions,
    ) -> Result<genmodels_core::AnomalyScores> {
        batch.require_shape(self.config.image_shape, "VAE-GAN")?;
        let x = batch.images().clone();
        let (mean, log_var) = self.encode(x.clone());
        let reconstruction = self.decoder.forward(mean.clone(), None);
        let feature_error = (self.discriminator.features(reconstruction)
            - self.discriminator.features(x * 2.0 - 1.0))
        .powi_scalar(2)
        .sum_dim(1)
        .squeeze_dim::<1>(1)
            * 0.5;
        let score = kl_diagonal_gaussian_to_standard_normal(mean, log_var) + feature_error;
        Ok(genmodels_core::AnomalyScores {
            name: "vae_gan_kl_plus_feature_error".into(),
            description: "KL(q(z|x) ‖ p(z)) + ½‖φ(x) − φ(Dec(μ(x)))‖², the VAE-GAN encoder's \
                          loss at the posterior mean (discriminator features φ; not nats of \
                          pixels)"
                .into(),
            scores: genmodels_core::batch::to_host(score)?
                .into_iter()
                .map(f64::from)
                .collect(),
        })
    }
}

impl Trainable for VaeGan {
    fn players(&self) -> Vec<Player> {
        // DCGAN's Adam settings for all three, as in Larsen et al.'s adversarial setup.
        let adam = OptimizerKind::Adam {
            beta_1: 0.5,
            beta_2: 0.999,
        };
        vec![
            Player::new("discriminator").with_optimizer(adam),
            Player::new("encoder").with_optimizer(adam),
            Player::new("decoder").with_optimizer(adam),
        ]
    }

    fn loss(&self, player: usize, batch: &ImageBatch) -> Result<Loss> {
        let pass = self.pass(batch, player == VAE_GAN_DISCRIMINATOR)?;
        let loss = match player {
            VAE_GAN_DISCRIMINATOR => Loss::new(Self::discriminator_loss(&pass)),
            VAE_GAN_ENCODER => Loss::new(pass.kl.clone() + pass.feature_reconstruction.clone())
                .with_component("kl", pass.kl.clone())
                .with_component(
                    "feature_reconstruction",
                    pass.feature_reconstruction.clone(),
                ),
            VAE_GAN_DECODER => {
                let loss = Loss::new(
                    pass.feature_reconstruction.clone() * self.config.feature_weight
                        + Self::decoder_gan_loss(&pass),
                );
                if batch.len() >= 2 {
                    let spread = mean_pairwise_distance(pass.prior_samples.clone())
                        / mean_pairwise_distance(pass.data.clone()).clamp_min(1e-12);
                    loss.with_component("sample_diversity", spread)
                } else {
                    loss
                }
            }
            other => {
                return Err(GenError::InvalidConfig(format!(
                    "a VAE-GAN has players 0–2, not {other}"
                )));
            }
        };
        Ok(if player == VAE_GAN_DISCRIMINATOR {
            Self::monitored(&pass, loss)
        } else {
            loss
        })
    }

    fn player_gradients(
        &self,
        player: usize,
        grads: burn::tensor::Gradients,
    ) -> burn::optim::GradientsParams {
        match player {
            VAE_GAN_DISCRIMINATOR => {
                burn::optim::GradientsParams::from_grads(grads, &self.discriminator)
            }
            VAE_GAN_ENCODER => burn::optim::GradientsParams::from_grads(grads, &self.encoder),
            _ => burn::optim::GradientsParams::from_grads(grads, &self.decoder),
        }
    }

    fn training_warnings(&self, epoch_components: &[(String, f64)]) -> Vec<String> {
        collapse_warnings(true, epoch_components)
    }
}

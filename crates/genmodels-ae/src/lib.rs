//! # genmodels-ae
//!
//! The deterministic autoencoder, the non-generative baseline of the comparison.
//!
//! An encoder `f` maps an image to a code `c = f(x)` and a decoder `g` maps it back; training
//! minimises the reconstruction error of `g(f(x))`: binary cross-entropy
//! `−Σ_d x_d log x̂_d + (1 − x_d) log(1 − x̂_d)` for binary data, or squared error
//! `Σ_d (x_d − x̂_d)²` for grey levels, summed over pixels and averaged over the batch.
//!
//! An autoencoder defines no distribution over images, so it has **no likelihood**:
//! [`GenerativeModel::log_likelihood`] returns [`GenError::LikelihoodNotAvailable`].
//!
//! To make pictures anyway, [`GenerativeModel::sample`] draws codes from a Gaussian
//! `N(m, S)` fitted (by maximum likelihood, after training) to the codes of the training
//! images, and decodes them. This is a heuristic, not a model of `p(x)`: nothing forces the
//! decoder to produce digits away from the training codes, which is what a VAE's prior and
//! KL term add.

#![warn(missing_docs)]

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use genmodels_core::distributions::bernoulli_log_prob;
use genmodels_core::nn::{Activation, Architecture, ImageDecoder, ImageEncoder, interpolate_codes};
use genmodels_core::{
    AnomalyScore, AnomalyScores, GenError, GenerativeModel, ImageBatch, ImageDataset, ImageShape,
    Interpolate, LikelihoodOptions, LogLikelihood, Loss, ModelConfig, Reconstruct, Result,
    Trainable, batch::to_host, capabilities::check_interpolation, model::require_samples, random,
};

/// How reconstructions are scored.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ReconstructionLoss {
    /// Binary cross-entropy on sigmoid outputs, for binary (or `[0, 1]`) data.
    Bce,
    /// Squared error on sigmoid outputs, for grey levels.
    Mse,
}

/// Configuration of an [`Autoencoder`].
#[derive(Config, Debug)]
pub struct AutoencoderConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// Dimension of the code.
    #[config(default = 32)]
    pub latent_dim: usize,
    /// Encoder and decoder networks (the decoder mirrors the encoder).
    #[config(
        default = "Architecture::Mlp { hidden: vec![400, 200], activation: Activation::Relu }"
    )]
    pub architecture: Architecture,
    /// The reconstruction loss.
    #[config(default = "ReconstructionLoss::Bce")]
    pub loss: ReconstructionLoss,
}

impl Default for AutoencoderConfig {
    /// The configuration with every field at its default.
    fn default() -> Self {
        Self::new()
    }
}

impl ModelConfig for AutoencoderConfig {
    type Model = Autoencoder;
    const MODEL_NAME: &'static str = "ae";

    fn init(&self, device: &Device) -> Result<Autoencoder> {
        if self.latent_dim == 0 {
            return Err(GenError::InvalidConfig(
                "latent_dim must be positive".into(),
            ));
        }
        let l = self.latent_dim;
        let frozen = |t| Param::from_tensor(t).set_require_grad(false);
        Ok(Autoencoder {
            encoder: self.architecture.encoder(self.image_shape, l, device)?,
            decoder: self.architecture.decoder(self.image_shape, l, device)?,
            code_mean: frozen(Tensor::<2>::zeros([1, l], device)),
            code_cholesky: frozen(Tensor::<2>::zeros([l, l], device)),
            config: self.clone(),
        })
    }
}

/// An autoencoder; build it with [`AutoencoderConfig::init`].
#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder: ImageEncoder,
    decoder: ImageDecoder,
    /// Mean `m` of the fitted code Gaussian, `[1, L]` (not trained by gradient).
    code_mean: Param<Tensor<2>>,
    /// Lower Cholesky factor of the fitted code covariance, `[L, L]`; all zeros until
    /// [`Autoencoder::fit_code_distribution`] has run.
    code_cholesky: Param<Tensor<2>>,
    #[module(skip)]
    config: AutoencoderConfig,
}

impl Autoencoder {
    /// The codes of `images`.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, L]`
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(images)
    }

    /// The decoded images (sigmoid outputs in `[0, 1]`).
    ///
    /// # Shapes
    /// - codes: `[N, L]`
    /// - output: `[N, C, H, W]`
    pub fn decode(&self, codes: Tensor<2>) -> Tensor<4> {
        let n = codes.dims()[0];
        sigmoid(self.decoder.forward(codes)).reshape(self.config.image_shape.batch_dims(n))
    }

    /// Mean reconstruction error per image, `[N]`, in the configured loss.
    fn reconstruction_error(&self, batch: &ImageBatch) -> Tensor<1> {
        let logits = self.decoder.forward(self.encode(batch.images().clone()));
        let x = batch.flat_images();
        match self.config.loss {
            ReconstructionLoss::Bce => -bernoulli_log_prob(logits, x),
            ReconstructionLoss::Mse => (sigmoid(logits) - x)
                .powi_scalar(2)
                .sum_dim(1)
                .squeeze_dim(1),
        }
    }

    /// Fits the code Gaussian `N(m, S)` to the codes of every image in `data` (epoch 0),
    /// by maximum likelihood with `10⁻⁶·I` added to `S` for numerical safety.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for an empty set; data errors as they occur.
    pub fn fit_code_distribution(self, data: &dyn ImageDataset, device: &Device) -> Result<Self> {
        if data.is_empty() {
            return Err(GenError::EmptyData {
                context: "autoencoder code fit".into(),
            });
        }
        let l = self.config.latent_dim;
        let mut codes: Vec<f64> = Vec::with_capacity(data.len() * l);
        let indices: Vec<usize> = (0..data.len()).collect();
        for chunk in indices.chunks(500) {
            let batch = data.batch(chunk, 0, device)?;
            codes.extend(
                to_host(self.encode(batch.images().clone()))?
                    .into_iter()
                    .map(f64::from),
            );
        }
        let n = data.len() as f64;
        let mut mean = vec![0.0; l];
        for row in codes.chunks(l) {
            for (m, &c) in mean.iter_mut().zip(row) {
                *m += c / n;
            }
        }
        let mut cov = vec![0.0; l * l];
        for row in codes.chunks(l) {
            for i in 0..l {
                for j in 0..=i {
                    cov[i * l + j] += (row[i] - mean[i]) * (row[j] - mean[j]) / n;
                }
            }
        }
        for i in 0..l {
            cov[i * l + i] += 1e-6;
        }
        let chol = cholesky(&cov, l).ok_or_else(|| {
            GenError::Backend("the code covariance is not positive definite".into())
        })?;
        let to_tensor = |v: Vec<f64>, shape: [usize; 2]| {
            let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
            Tensor::<2>::from_data(TensorData::new(v, shape), device)
        };
        let mut model = self;
        model.code_mean = Param::from_tensor(to_tensor(mean, [1, l])).set_require_grad(false);
        model.code_cholesky = Param::from_tensor(to_tensor(chol, [l, l])).set_require_grad(false);
        Ok(model)
    }

    /// Whether the code distribution has been fitted (the Cholesky factor is non-zero).
    pub fn has_code_distribution(&self) -> Result<bool> {
        Ok(to_host(self.code_cholesky.val())?.iter().any(|&v| v != 0.0))
    }
}

/// Lower Cholesky factor of a symmetric positive-definite `n×n` matrix (lower triangle used).
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

impl GenerativeModel for Autoencoder {
    type Config = AutoencoderConfig;

    fn config(&self) -> &AutoencoderConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// Always [`GenError::LikelihoodNotAvailable`]: an autoencoder defines no density.
    fn compute_log_likelihood(
        &self,
        _: &ImageBatch,
        _: &LikelihoodOptions,
    ) -> Result<LogLikelihood> {
        Err(GenError::LikelihoodNotAvailable {
            model: "autoencoder".into(),
            reason: "a deterministic autoencoder defines no distribution over images; \
                     use a VAE for a likelihood bound"
                .into(),
        })
    }

    /// Decodes `n` codes drawn from the Gaussian fitted to the training codes (see the crate
    /// docs: a heuristic, not a density model). Returns the decoder's mean images.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0` or before the code distribution is fitted.
    fn compute_samples(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        Ok(self.decode(self.code_draws(n, seed)?))
    }
}

impl Autoencoder {
    /// `n` codes from the fitted code Gaussian `N(m, S)`, drawn from `seed`: `m + L ε` with
    /// `S = L Lᵀ`, `ε ~ N(0, I)`.
    fn code_draws(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        require_samples(n)?;
        if !self.has_code_distribution()? {
            return Err(GenError::InvalidConfig(
                "the autoencoder's code distribution is not fitted yet; train it (the \
                 trainer fits it at the end) or call fit_code_distribution"
                    .into(),
            ));
        }
        let l = self.config.latent_dim;
        let device = self.code_mean.val().device();
        let eps = random::standard_normal([n, l], &mut random::rng(seed), &device);
        Ok(self.code_mean.val() + eps.matmul(self.code_cholesky.val().transpose()))
    }
}

impl genmodels_core::capabilities::LatentCode for Autoencoder {
    fn latent_size(&self) -> usize {
        self.config.latent_dim
    }

    /// Draws from the Gaussian fitted to the training codes (a heuristic prior, see the
    /// crate docs): the codes [`GenerativeModel::sample`] decodes for the same seed.
    fn prior_codes(&self, n: usize, seed: u64) -> Result<Tensor<2>> {
        self.code_draws(n, seed)
    }

    /// `g(z)`, sigmoid outputs in `[0, 1]`.
    fn decode_codes(&self, codes: Tensor<2>) -> Result<Tensor<4>> {
        genmodels_core::capabilities::check_codes(&codes, self.config.latent_dim, "autoencoder")?;
        Ok(self.decode(codes))
    }

    fn can_encode(&self) -> bool {
        true
    }

    /// The code `f(x)`.
    fn encode_codes(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        batch.require_shape(self.config.image_shape, "autoencoder")?;
        Ok(self.encode(batch.images().clone()))
    }
}

impl Trainable for Autoencoder {
    /// Mean reconstruction error over the batch (BCE or squared error, summed over pixels).
    fn loss(&self, _player: usize, batch: &ImageBatch) -> Result<Loss> {
        batch.require_shape(self.config.image_shape, "autoencoder")?;
        let error = self.reconstruction_error(batch).mean();
        Ok(Loss::new(error.clone()).with_component("reconstruction", error))
    }

    /// Fits the code Gaussian on the training data.
    fn fit_after_training(self, train: &dyn ImageDataset, _: u64, device: &Device) -> Result<Self> {
        self.fit_code_distribution(train, device)
    }
}

impl Reconstruct for Autoencoder {
    /// `g(f(x))`.
    ///
    /// # Errors
    /// When the images do not fit the model.
    fn reconstruct(&self, batch: &ImageBatch) -> Result<Tensor<4>> {
        batch.require_shape(self.config.image_shape, "autoencoder")?;
        Ok(self.decode(self.encode(batch.images().clone())))
    }
}

impl Interpolate for Autoencoder {
    /// Decoded points on the straight line between the codes of `start[i]` and `end[i]`,
    /// `steps` per pair: `[N·steps, C, H, W]`.
    ///
    /// # Errors
    /// When the batches do not fit the model or differ in size.
    fn interpolate(&self, start: &ImageBatch, end: &ImageBatch, steps: usize) -> Result<Tensor<4>> {
        check_interpolation(start, end, steps, self.config.image_shape, "autoencoder")?;
        let a = self.encode(start.images().clone());
        let b = self.encode(end.images().clone());
        Ok(self.decode(interpolate_codes(a, b, steps)))
    }
}

impl AnomalyScore for Autoencoder {
    /// The reconstruction error of each image, the per-image term of the training loss:
    /// binary cross-entropy `−Σ_d x_d log x̂_d + (1 − x_d) log(1 − x̂_d)` in nats (for binary
    /// pixels, `−log` of the Bernoulli probability of `x` given `x̂ = g(f(x))`), or squared
    /// error `Σ_d (x_d − x̂_d)²` of `[0, 1]` pixels, by the configured loss. Not a likelihood:
    /// an image the code cannot carry reconstructs badly, whatever its probability. `options`
    /// are ignored (the score is deterministic).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn anomaly_scores(&self, batch: &ImageBatch, _: &LikelihoodOptions) -> Result<AnomalyScores> {
        batch.require_shape(self.config.image_shape, "autoencoder")?;
        let (name, description) = match self.config.loss {
            ReconstructionLoss::Bce => (
                "reconstruction_bce_nats",
                "reconstruction error, binary cross-entropy of g(f(x)) summed over pixels, nats \
                 per image (the autoencoder's training loss per image)",
            ),
            ReconstructionLoss::Mse => (
                "reconstruction_squared_error",
                "reconstruction error, squared error of g(f(x)) summed over [0, 1] pixels per \
                 image (the autoencoder's training loss per image)",
            ),
        };
        Ok(AnomalyScores {
            name: name.into(),
            description: description.into(),
            scores: to_host(self.reconstruction_error(batch))?
                .into_iter()
                .map(f64::from)
                .collect(),
        })
    }
}

impl genmodels_core::capabilities::Represent for Autoencoder {
    /// The code `c = f(x)` of each image.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`
    /// - output: `[N, L]`
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape.
    fn representation(&self, batch: &ImageBatch) -> Result<Tensor<2>> {
        batch.require_shape(self.config.image_shape, "autoencoder")?;
        Ok(self.encode(batch.images().clone()))
    }

    fn representation_name(&self) -> &'static str {
        "code f(x)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reproduces_the_matrix() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((v - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn the_latent_code_is_the_code_and_its_prior_the_fitted_gaussian() {
        use genmodels_core::InMemoryDataset;
        use genmodels_core::capabilities::{LatentCode, Represent};
        let device = Device::flex();
        let shape = ImageShape::new(1, 4, 4);
        let ae = AutoencoderConfig::new()
            .with_image_shape(shape)
            .with_latent_dim(3)
            .init(&device)
            .unwrap();
        let pixels: Vec<f32> = (0..16 * 20).map(|i| (i as f32 * 0.37).fract()).collect();
        let batch = ImageBatch::from_host(pixels.clone(), shape, None, &device).unwrap();
        assert_eq!(ae.latent_size(), 3);
        assert!(ae.can_encode());
        assert_eq!(
            to_host(ae.encode_codes(&batch).unwrap()).unwrap(),
            to_host(ae.representation(&batch).unwrap()).unwrap()
        );
        // Before the fit there is no prior to draw from.
        assert!(matches!(
            ae.prior_codes(2, 0),
            Err(GenError::InvalidConfig(_))
        ));
        let data = InMemoryDataset::new(pixels, shape, None).unwrap();
        let ae = ae.fit_code_distribution(&data, &device).unwrap();
        // The prior codes decode to the samples of the same seed.
        let codes = ae.prior_codes(4, 7).unwrap();
        assert_eq!(codes.dims(), [4, 3]);
        assert_eq!(
            to_host(ae.decode_codes(codes).unwrap()).unwrap(),
            to_host(ae.sample(4, 7).unwrap()).unwrap()
        );
        assert!(matches!(
            ae.decode_codes(Tensor::<2>::zeros([1, 2], &device)),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn likelihood_is_a_typed_error_and_sampling_needs_a_fit() {
        let device = Device::flex();
        let config = AutoencoderConfig::new().with_image_shape(ImageShape::new(1, 4, 4));
        let ae = config.init(&device).unwrap();
        let batch =
            ImageBatch::from_host(vec![0.0; 32], ImageShape::new(1, 4, 4), None, &device).unwrap();
        let err = ae
            .log_likelihood(&batch, &LikelihoodOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, GenError::LikelihoodNotAvailable { .. }),
            "{err}"
        );
        assert!(matches!(ae.sample(2, 0), Err(GenError::InvalidConfig(_))));
    }

    #[test]
    fn the_representation_is_the_code_of_each_image_alone() {
        use genmodels_core::capabilities::Represent;
        let device = Device::flex();
        let shape = ImageShape::new(1, 4, 4);
        let ae = AutoencoderConfig::new()
            .with_image_shape(shape)
            .init(&device)
            .unwrap();
        let pixels: Vec<f32> = (0..48).map(|i| f32::from(u8::from(i % 5 < 2))).collect();
        let batch = ImageBatch::from_host(pixels.clone(), shape, None, &device).unwrap();
        let r = ae.representation(&batch).unwrap();
        assert_eq!(r.dims(), [3, ae.config.latent_dim]);
        let values = to_host(r.clone()).unwrap();
        assert!(values.iter().all(|v| v.is_finite()));
        assert_eq!(values, to_host(ae.representation(&batch).unwrap()).unwrap());
        assert_eq!(values, to_host(ae.encode(batch.images().clone())).unwrap());
        // An image's row does not depend on the rest of the batch.
        let first = ImageBatch::from_host(pixels[16..32].to_vec(), shape, None, &device).unwrap();
        let alone = to_host(ae.representation(&first).unwrap()).unwrap();
        let l = ae.config.latent_dim;
        for (a, b) in alone.iter().zip(&values[l..2 * l]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let wrong =
            ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &device).unwrap();
        assert!(matches!(
            ae.representation(&wrong),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn anomaly_scores_are_the_per_image_training_loss() {
        let device = Device::flex();
        let shape = ImageShape::new(1, 4, 4);
        let pixels: Vec<f32> = (0..48).map(|i| f32::from(u8::from(i % 3 == 0))).collect();
        let batch = ImageBatch::from_host(pixels, shape, None, &device).unwrap();
        let options = LikelihoodOptions::default();
        for loss in [ReconstructionLoss::Bce, ReconstructionLoss::Mse] {
            let ae = AutoencoderConfig::new()
                .with_image_shape(shape)
                .with_loss(loss)
                .init(&device)
                .unwrap();
            let scores = ae.anomaly_scores(&batch, &options).unwrap();
            assert_eq!(scores.scores.len(), 3);
            assert!(scores.scores.iter().all(|&s| s > 0.0), "{scores:?}");
            // The training loss is their mean.
            let mean = scores.scores.iter().sum::<f64>() / 3.0;
            let trained = to_host(ae.loss(0, &batch).unwrap().objective).unwrap()[0];
            assert!((mean - f64::from(trained)).abs() < 1e-4 * mean, "{loss:?}");
            // Each image's score is its own error: scoring it alone gives the same number.
            let first = ImageBatch::from_host(
                to_host(batch.images().clone()).unwrap()[..16].to_vec(),
                shape,
                None,
                &device,
            )
            .unwrap();
            let alone = ae.anomaly_scores(&first, &options).unwrap().scores[0];
            assert!((alone - scores.scores[0]).abs() < 1e-4 * alone);
        }
        let wrong =
            ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &device).unwrap();
        assert!(matches!(
            AutoencoderConfig::new()
                .with_image_shape(shape)
                .init(&device)
                .unwrap()
                .anomaly_scores(&wrong, &options),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
}

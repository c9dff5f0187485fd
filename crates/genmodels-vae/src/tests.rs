//! The likelihood maths, checked against closed forms and quadrature.

use super::*;
use genmodels_core::batch::to_host;
use genmodels_core::distributions::discretized_gaussian_log_prob_f64;
use genmodels_core::nn::Activation;

/// A linear-Gaussian VAE (probabilistic PCA): `x = zW + b + ε`, `ε ~ N(0, diag σ²)`, so
/// `p(x) = N(b, WᵀW + diag σ²)` exactly.
fn linear_gaussian(device: &Device) -> Vae {
    // The tests of this binary run in parallel threads that share the device RNG.
    random::build_with_seed(device, 11, |device| {
        VaeConfig::new()
            .with_image_shape(ImageShape::new(1, 1, 4))
            .with_latent_dim(2)
            .with_architecture(Architecture::Mlp {
                hidden: vec![],
                activation: Activation::Tanh,
            })
            .with_decoder(DecoderDistribution::Gaussian)
            .init(device)
    })
    .unwrap()
}

/// The linear-Gaussian VAE's parameters in f64: `W` `[L = 2, D = 4]` row-major, `b` and `σ²`.
struct LinearGaussian {
    w: Vec<f64>,
    b: Vec<f64>,
    var: Vec<f64>,
}

impl LinearGaussian {
    const L: usize = 2;
    const D: usize = 4;

    fn of(vae: &Vae) -> Self {
        let ImageDecoder::Mlp(mlp) = &vae.decoder else {
            unreachable!("an MLP decoder")
        };
        let layer = &mlp.layers[0];
        let host =
            |t: Tensor<1>| -> Vec<f64> { to_host(t).unwrap().into_iter().map(f64::from).collect() };
        let log_var = vae
            .decoder_log_var
            .as_ref()
            .unwrap()
            .val()
            .clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1);
        Self {
            w: host(layer.weight.val().reshape([Self::L * Self::D])),
            b: host(layer.bias.as_ref().unwrap().val()),
            var: host(log_var).into_iter().map(f64::exp).collect(),
        }
    }

    /// The decoder mean `zW + b`.
    fn mean(&self, z: [f64; 2], d: usize) -> f64 {
        z[0] * self.w[d] + z[1] * self.w[Self::D + d] + self.b[d]
    }

    /// The closed-form log-density `log N(x; b, WᵀW + diag σ²)` of the continuous model
    /// `x = zW + b + ε`, at `x = v/255`.
    fn continuous_log_density(&self, levels: &[u8]) -> f64 {
        let (l, d) = (Self::L, Self::D);
        let x: Vec<f64> = levels.iter().map(|&v| f64::from(v) / 255.0).collect();
        // Σ = WᵀW + diag σ², with W stored [L, D].
        let mut sigma = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                sigma[i * d + j] = (0..l)
                    .map(|k| self.w[k * d + i] * self.w[k * d + j])
                    .sum::<f64>();
            }
            sigma[i * d + i] += self.var[i];
        }
        // Cholesky Σ = LLᵀ; log N = −½ (d ln 2π + 2 Σ ln L_ii + ‖L⁻¹(x − b)‖²).
        let mut chol = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                let s: f64 = (0..j).map(|k| chol[i * d + k] * chol[j * d + k]).sum();
                chol[i * d + j] = if i == j {
                    (sigma[i * d + i] - s).sqrt()
                } else {
                    (sigma[i * d + j] - s) / chol[j * d + j]
                };
            }
        }
        let mut y = vec![0.0; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|k| chol[i * d + k] * y[k]).sum();
            y[i] = (x[i] - self.b[i] - s) / chol[i * d + i];
        }
        let log_det: f64 = (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>() * 2.0;
        -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln()
            + log_det
            + y.iter().map(|v| v * v).sum::<f64>())
    }

    /// The exact log-probability of the 8-bit image under the discretized model,
    /// `log ∫ N(z; 0, I) Π_d P(v_d | (zW + b)_d, σ²_d) dz`: the mass of `N(b, WᵀW + diag σ²)`
    /// on the image's box of bins (edge bins open). The 2-D integral by the rectangle rule on
    /// `[−6.5, 6.5]²` with step 0.05, in log space, from the f64 reference of each pixel's
    /// probability: the integrand is smooth and its posterior at least 0.2 wide here (σ² is
    /// 0.1, the weights below 0.71), so the rule's error is negligible (half the step on
    /// `[−8, 8]²` moves no value by 10⁻¹³).
    fn discrete_log_likelihood(&self, levels: &[u8]) -> f64 {
        self.discrete_log_likelihood_by_quadrature(levels, 6.5, 0.05)
    }

    /// [`discrete_log_likelihood`](Self::discrete_log_likelihood) on `[−range, range]²` with
    /// `step`.
    fn discrete_log_likelihood_by_quadrature(&self, levels: &[u8], range: f64, step: f64) -> f64 {
        let n = (2.0 * range / step).round() as usize + 1;
        let grid: Vec<f64> = (0..n).map(|i| -range + i as f64 * step).collect();
        let log_std: Vec<f64> = self.var.iter().map(|v| 0.5 * v.ln()).collect();
        let mut terms = Vec::with_capacity(n * n);
        for &z0 in &grid {
            for &z1 in &grid {
                let log_prior = -0.5 * (z0 * z0 + z1 * z1) - (2.0 * std::f64::consts::PI).ln();
                let log_px: f64 = levels
                    .iter()
                    .enumerate()
                    .map(|(d, &v)| {
                        discretized_gaussian_log_prob_f64(
                            v,
                            self.mean([z0, z1], d),
                            log_std[d].exp(),
                        )
                    })
                    .sum();
                terms.push(log_prior + log_px);
            }
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln() + 2.0 * step.ln()
    }
}

/// `n` 4-pixel 8-bit images: levels drawn uniformly, with every fourth image holding the edge
/// levels 0 and 255 (the bins that take the Gaussian's tails).
fn images(n: usize, seed: u64) -> Vec<[u8; 4]> {
    let mut rng = random::rng(seed);
    use rand::Rng;
    (0..n)
        .map(|i| {
            let mut image: [u8; 4] = std::array::from_fn(|_| rng.random::<u8>());
            if i % 4 == 0 {
                image[i / 4 % 4] = 0;
                image[(i / 4 + 1) % 4] = 255;
            }
            image
        })
        .collect()
}

fn batch_of(images: &[[u8; 4]], device: &Device) -> ImageBatch {
    let levels: Vec<u8> = images.iter().flatten().copied().collect();
    ImageBatch::from_levels(&levels, 255, ImageShape::new(1, 1, 4), None, device).unwrap()
}

#[test]
fn the_discrete_likelihood_of_inner_levels_is_the_closed_form_density_times_the_bin_volume() {
    // For an image without edge levels the box of bins is bounded and 1/255 wide per pixel,
    // far below the Gaussian's scale (σ² ≥ 0.1), so its mass is the density at x times the
    // bin volume 255⁻⁴ up to O((1/255)²/σ²) (measured: 4·10⁻⁵ nats at most): the quadrature
    // checked against the closed form.
    let model = LinearGaussian::of(&linear_gaussian(&Device::flex()));
    // The quadrature has converged: a finer, wider grid gives the same values, edge bins too.
    for image in images(4, 5) {
        let (coarse, fine) = (
            model.discrete_log_likelihood(&image),
            model.discrete_log_likelihood_by_quadrature(&image, 8.0, 0.025),
        );
        assert!(
            (coarse - fine).abs() < 1e-9,
            "{image:?}: {coarse} vs {fine}"
        );
    }
    for image in images(24, 9)
        .iter()
        .filter(|im| im.iter().all(|&v| v > 0 && v < 255))
    {
        let discrete = model.discrete_log_likelihood(image);
        let continuous = model.continuous_log_density(image) - 4.0 * 255f64.ln();
        assert!(
            (discrete - continuous).abs() < 1e-4,
            "{image:?}: quadrature {discrete:.6} vs density × volume {continuous:.6}"
        );
    }
}

#[test]
fn iwae_with_1000_samples_is_within_half_a_nat_of_the_exact_discrete_linear_gaussian_likelihood() {
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let model = LinearGaussian::of(&vae);
    let images = images(20, 3);
    let iwae = vae
        .log_likelihood(
            &batch_of(&images, &device),
            &LikelihoodOptions::iwae(1000).with_seed(1),
        )
        .unwrap();
    assert_eq!(iwae.kind, LikelihoodKind::ImportanceWeighted { k: 1000 });
    assert_eq!(iwae.scale, DensityScale::Discrete);
    for (image, estimate) in images.iter().zip(&iwae.log_likelihood_nats) {
        let exact = model.discrete_log_likelihood(image);
        assert!(
            (estimate - exact).abs() < 0.5,
            "{image:?}: IWAE-1000 {estimate:.4} vs exact {exact:.4}"
        );
        assert!(exact < 0.0, "a log-probability: {exact}");
    }
}

#[test]
fn elbo_is_below_iwae_k_which_is_below_iwae_k_prime_on_average() {
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let images = images(200, 2);
    let batch = batch_of(&images, &device);
    let mean = |k: usize| {
        vae.log_likelihood(&batch, &LikelihoodOptions::iwae(k).with_seed(2))
            .unwrap()
            .mean_log_likelihood_nats()
    };
    let (elbo, k5, k50) = (mean(1), mean(5), mean(50));
    assert!(
        elbo < k5 && k5 < k50,
        "ELBO {elbo}, IWAE-5 {k5}, IWAE-50 {k50}"
    );
    let model = LinearGaussian::of(&vae);
    let exact: f64 = images
        .iter()
        .map(|image| model.discrete_log_likelihood(image))
        .sum::<f64>()
        / 200.0;
    assert!(k50 < exact + 0.01, "IWAE-50 {k50} above log p(x) {exact}");
}

/// A Gaussian-decoder VAE of 1×1×2 images with a hidden layer, its decoder log-variances
/// set to `log_var`.
fn tiny_gaussian_vae(log_var: [f32; 2], device: &Device) -> Vae {
    let mut vae = random::build_with_seed(device, 17, |device| {
        VaeConfig::new()
            .with_image_shape(ImageShape::new(1, 1, 2))
            .with_latent_dim(2)
            .with_architecture(Architecture::Mlp {
                hidden: vec![8],
                activation: Activation::Tanh,
            })
            .with_decoder(DecoderDistribution::Gaussian)
            .init(device)
    })
    .unwrap();
    vae.decoder_log_var = Some(Param::from_tensor(Tensor::from_data(
        burn::tensor::TensorData::new(log_var.to_vec(), [2]),
        device,
    )));
    vae
}

#[test]
fn the_gaussian_decoder_gives_probabilities_that_sum_to_one_over_every_8_bit_image() {
    let device = Device::flex();
    // All 65,536 images of two pixels, rows v₀·256 + v₁.
    let grid: Vec<f32> = (0..256 * 256)
        .flat_map(|i| [(i / 256) as f32 / 255.0, (i % 256) as f32 / 255.0])
        .collect();
    let all = Tensor::<2>::from_data(burn::tensor::TensorData::new(grid, [256 * 256, 2]), &device);
    // Decoder means from z ~ p(z), and by hand beyond [0, 1]; σ at both ends of its range
    // (0.01 and 1) and between.
    for log_var in [[-9.21f32, 0.0], [-4.0, -1.5], [-20.0, 3.0]] {
        let vae = tiny_gaussian_vae(log_var, &device);
        let z = random::standard_normal([3, 2], &mut random::rng(4), &device);
        let means = Tensor::cat(
            vec![
                vae.decoder_outputs(z),
                Tensor::from_data(
                    burn::tensor::TensorData::new(vec![-3.0f32, 0.42, 5.0, 1.0], [2, 2]),
                    &device,
                ),
            ],
            0,
        );
        for row in 0..means.dims()[0] {
            let outputs = means.clone().narrow(0, row, 1).expand([256 * 256, 2]);
            let log_p = to_host(vae.log_px_given_z(outputs.clone(), all.clone())).unwrap();
            assert!(log_p.iter().all(|v| v.is_finite() && *v <= 1e-6));
            let total: f64 = log_p.iter().map(|&v| f64::from(v).exp()).sum();
            assert!(
                (total - 1.0).abs() < 1e-5,
                "σ² = exp{log_var:?}, mean row {row}: Σ p(x|z) = {total}"
            );
            // Each pixel's 256 levels sum to 1, and the image's probability is the product.
            let pixel = |d: usize| -> Vec<f64> {
                let log_var = vae
                    .decoder_log_var
                    .as_ref()
                    .unwrap()
                    .val()
                    .clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1)
                    .narrow(0, d, 1)
                    .reshape([1, 1])
                    .expand([256, 1]);
                let levels = Tensor::<1, burn::tensor::Int>::arange(0..256, &device)
                    .float()
                    .reshape([256, 1])
                    / 255.0;
                let mean = outputs.clone().narrow(0, 0, 256).narrow(1, d, 1);
                to_host(discretized_gaussian_log_prob(levels, mean, log_var))
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect()
            };
            let (p0, p1) = (pixel(0), pixel(1));
            for p in [&p0, &p1] {
                let total: f64 = p.iter().map(|v| v.exp()).sum();
                assert!((total - 1.0).abs() < 1e-5, "Σ_v p(v|z) = {total}");
            }
            for (i, &image) in log_p.iter().enumerate().step_by(97) {
                let product = p0[i / 256] + p1[i % 256];
                // (f32 sums: relatively.)
                assert!(
                    (f64::from(image) - product).abs() < 1e-6 * product.abs().max(100.0),
                    "{image} vs {product}"
                );
            }
        }
    }
}

#[test]
fn a_gaussian_vae_samples_8_bit_images_and_its_loss_is_a_positive_nll_bound() {
    let device = Device::flex();
    let vae = tiny_gaussian_vae([-9.21, -2.0], &device);
    let samples = to_host(vae.sample(500, 3).unwrap()).unwrap();
    assert!(
        samples
            .iter()
            .all(|&v| (v * 255.0 - (v * 255.0).round()).abs() < 1e-3 && (0.0..=1.0).contains(&v)),
        "samples off the 8-bit grid"
    );
    // The reconstruction term is −log of a probability: never negative (a density's could be).
    let batch = ImageBatch::from_tensor(vae.sample(64, 5).unwrap()).unwrap();
    let loss = vae.loss(0, &batch).unwrap();
    let reconstruction = loss
        .components
        .iter()
        .find(|(name, _)| *name == "reconstruction")
        .map(|(_, value)| to_host(value.clone()).unwrap()[0])
        .unwrap();
    assert!(
        reconstruction > 0.0 && reconstruction.is_finite(),
        "{reconstruction}"
    );
    let ll = vae
        .log_likelihood(&batch, &LikelihoodOptions::iwae(10))
        .unwrap();
    assert_eq!(ll.scale, DensityScale::Discrete);
    assert!(
        ll.log_likelihood_nats
            .iter()
            .all(|&v| v.is_finite() && v < 0.0)
    );
}

#[test]
fn gaussian_decoder_means_are_the_clamped_draws_expectation() {
    let device = Device::flex();
    // Means inside, at the edges of and beyond [0, 1], with narrow and wide noise.
    let mu = [0.5f32, 0.02, 0.98, -0.3, 1.4, 0.5];
    let sigma = [0.01f32, 0.1, 0.1, 0.5, 0.5, 1.0];
    let mean = Tensor::<1>::from_floats(mu, &device).reshape([1, 1, 1, 6]);
    let std = Tensor::<1>::from_floats(sigma, &device).reshape([1, 1, 1, 6]);
    let closed_form = to_host(clamped_gaussian_mean(mean.clone(), std.clone())).unwrap();
    let draws = 200_000;
    let noise = random::standard_normal([draws, 1, 1, 6], &mut random::rng(11), &device);
    let clamped =
        (mean.expand([draws, 1, 1, 6]) + std.expand([draws, 1, 1, 6]) * noise).clamp(0.0, 1.0);
    let monte_carlo = to_host(clamped.mean_dim(0)).unwrap();
    for i in 0..6 {
        // Four standard errors of a mean of draws in [0, 1] (std ≤ 0.5).
        let tolerance = 4.0 * 0.5 / (draws as f32).sqrt();
        assert!(
            (closed_form[i] - monte_carlo[i]).abs() < tolerance,
            "μ {} σ {}: {} against {}",
            mu[i],
            sigma[i],
            closed_form[i],
            monte_carlo[i]
        );
    }
    // A VAE's decoder means are images in [0, 1], whatever its μ.
    let vae = tiny_gaussian_vae([-2.0, 0.0], &device);
    let means = to_host(vae.sample_means(100, 4).unwrap()).unwrap();
    assert!(means.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn bernoulli_bounds_are_ordered_and_below_zero() {
    let device = Device::flex();
    // The same weights in every run, whatever the other tests draw meanwhile.
    let vae = random::build_with_seed(&device, 5, |device| {
        VaeConfig::new()
            .with_image_shape(ImageShape::new(1, 4, 4))
            .with_latent_dim(3)
            .with_architecture(Architecture::Mlp {
                hidden: vec![16],
                activation: Activation::Tanh,
            })
            .init(device)
    })
    .unwrap();
    let mut rng = random::rng(8);
    use rand::Rng;
    // 2,000 images: IWAE-100 lies 0.018–0.033 nats above IWAE-10 here over estimator seeds
    // 0–19 (100 images left the two within their noise).
    let pixels: Vec<f32> = (0..2000 * 16)
        .map(|_| f32::from(u8::from(rng.random::<bool>())))
        .collect();
    let batch = ImageBatch::from_host(pixels, ImageShape::new(1, 4, 4), None, &device).unwrap();
    let ll = |k| {
        vae.log_likelihood(&batch, &LikelihoodOptions::iwae(k).with_seed(4))
            .unwrap()
    };
    let (elbo, k10, k100) = (ll(1), ll(10), ll(100));
    assert_eq!(elbo.kind, LikelihoodKind::Elbo);
    let means = [&elbo, &k10, &k100].map(|ll| ll.mean_log_likelihood_nats());
    assert!(
        means[0] < means[1] && means[1] < means[2],
        "ELBO, IWAE-10, IWAE-100: {means:?}"
    );
    // A Bernoulli model's log-probability of binary data is at most 0.
    assert!(k100.log_likelihood_nats.iter().all(|&v| v < 0.0));
}

#[test]
fn anomaly_scores_are_the_negated_elbo_or_iwae_with_the_same_seed() {
    use genmodels_core::AnomalyScore;
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let batch = batch_of(&images(10, 5), &device);
    for (options, name) in [
        (LikelihoodOptions::default().with_seed(3), "neg_elbo_nats"),
        (
            LikelihoodOptions::iwae(20).with_seed(3),
            "neg_iwae_k20_nats",
        ),
    ] {
        let scores = vae.anomaly_scores(&batch, &options).unwrap();
        let ll = vae.log_likelihood(&batch, &options).unwrap();
        assert_eq!(scores.name, name);
        assert_eq!(scores.scores.len(), 10);
        for (score, l) in scores.scores.iter().zip(&ll.log_likelihood_nats) {
            assert!((score + l).abs() <= 1e-9 * l.abs(), "{score} vs −{l}");
        }
    }
}

#[test]
fn the_representation_is_the_posterior_mean_and_reconstructs_through_the_decoder() {
    use genmodels_core::capabilities::Represent;
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let shape = ImageShape::new(1, 1, 4);
    let pixels: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).fract()).collect();
    let batch = ImageBatch::from_host(pixels.clone(), shape, None, &device).unwrap();
    let r = vae.representation(&batch).unwrap();
    assert_eq!(r.dims(), [3, 2]);
    let values = to_host(r.clone()).unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // Deterministic, and exactly the encoder's mean (not a draw from q).
    assert_eq!(
        values,
        to_host(vae.representation(&batch).unwrap()).unwrap()
    );
    assert_eq!(
        values,
        to_host(vae.encode(batch.images().clone()).mean).unwrap()
    );
    // The reconstruction is the decoder's mean at the representation.
    let reconstructed = to_host(vae.reconstruct(&batch).unwrap()).unwrap();
    assert_eq!(reconstructed, to_host(vae.decode(r)).unwrap());
    // One image alone gets its own row.
    let alone = ImageBatch::from_host(pixels[4..8].to_vec(), shape, None, &device).unwrap();
    let alone = to_host(vae.representation(&alone).unwrap()).unwrap();
    for (a, b) in alone.iter().zip(&values[2..4]) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let wrong =
        ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &device).unwrap();
    assert!(matches!(
        vae.representation(&wrong),
        Err(GenError::ShapeMismatch { .. })
    ));
}

#[test]
fn the_latent_code_is_the_prior_the_posterior_mean_and_the_mean_image() {
    use genmodels_core::capabilities::{LatentCode, Represent};
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    assert_eq!(vae.latent_size(), 2);
    assert!(vae.can_encode());
    // The prior codes decode to the mean images the sampler shows for the same seed.
    let codes = vae.prior_codes(5, 3).unwrap();
    assert_eq!(codes.dims(), [5, 2]);
    let decoded = to_host(vae.decode_codes(codes).unwrap()).unwrap();
    assert_eq!(decoded, to_host(vae.sample_means(5, 3).unwrap()).unwrap());
    assert!(decoded.iter().all(|v| (0.0..=1.0).contains(v)));
    // A different seed, different codes.
    assert_ne!(
        to_host(vae.prior_codes(5, 3).unwrap()).unwrap(),
        to_host(vae.prior_codes(5, 4).unwrap()).unwrap()
    );
    // Encoding gives the posterior mean, the representation.
    let pixels: Vec<f32> = (0..12).map(|i| (i as f32 * 0.29).fract()).collect();
    let batch = ImageBatch::from_host(pixels, ImageShape::new(1, 1, 4), None, &device).unwrap();
    assert_eq!(
        to_host(vae.encode_codes(&batch).unwrap()).unwrap(),
        to_host(vae.representation(&batch).unwrap()).unwrap()
    );
    // Codes of the wrong size are refused.
    let wrong = Tensor::<2>::zeros([2, 3], &device);
    assert!(matches!(
        vae.decode_codes(wrong),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        vae.prior_codes(0, 1),
        Err(GenError::InvalidConfig(_))
    ));
}

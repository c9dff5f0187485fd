//! The likelihood maths, checked against closed forms.

use super::*;
use genmodels_core::batch::to_host;
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

/// `log N(x; b, WᵀW + diag σ²)` in f64, from the model's own parameters.
fn exact_log_likelihood(vae: &Vae, x: &[f64]) -> f64 {
    let ImageDecoder::Mlp(mlp) = &vae.decoder else {
        unreachable!("an MLP decoder")
    };
    let layer = &mlp.layers[0];
    let w: Vec<f64> = to_host(layer.weight.val())
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let b: Vec<f64> = to_host(layer.bias.as_ref().unwrap().val())
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let log_var = vae
        .decoder_log_var
        .as_ref()
        .unwrap()
        .val()
        .clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1);
    let var: Vec<f64> = to_host(log_var)
        .unwrap()
        .into_iter()
        .map(|v| f64::from(v).exp())
        .collect();
    let (l, d) = (2, 4);
    // Σ = WᵀW + diag σ², with W stored [L, D].
    let mut sigma = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            sigma[i * d + j] = (0..l).map(|k| w[k * d + i] * w[k * d + j]).sum::<f64>();
        }
        sigma[i * d + i] += var[i];
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
        y[i] = (x[i] - b[i] - s) / chol[i * d + i];
    }
    let log_det: f64 = (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>() * 2.0;
    -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln()
        + log_det
        + y.iter().map(|v| v * v).sum::<f64>())
}

fn points(n: usize) -> Vec<f32> {
    let mut rng = random::rng(3);
    use rand::Rng;
    (0..n * 4).map(|_| rng.random::<f32>()).collect()
}

#[test]
fn iwae_with_1000_samples_is_within_half_a_nat_of_the_exact_linear_gaussian_likelihood() {
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let x = points(20);
    let batch = ImageBatch::from_host(x.clone(), ImageShape::new(1, 1, 4), None, &device).unwrap();
    let iwae = vae
        .log_likelihood(&batch, &LikelihoodOptions::iwae(1000).with_seed(1))
        .unwrap();
    assert_eq!(iwae.kind, LikelihoodKind::ImportanceWeighted { k: 1000 });
    for (i, estimate) in iwae.log_likelihood_nats.iter().enumerate() {
        let row: Vec<f64> = x[4 * i..4 * i + 4].iter().map(|&v| f64::from(v)).collect();
        let exact = exact_log_likelihood(&vae, &row);
        assert!(
            (estimate - exact).abs() < 0.5,
            "point {i}: IWAE-1000 {estimate:.4} vs exact {exact:.4}"
        );
    }
}

#[test]
fn elbo_is_below_iwae_k_which_is_below_iwae_k_prime_on_average() {
    let device = Device::flex();
    let vae = linear_gaussian(&device);
    let batch =
        ImageBatch::from_host(points(200), ImageShape::new(1, 1, 4), None, &device).unwrap();
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
    let exact: f64 = batch_rows(&batch)
        .iter()
        .map(|row| exact_log_likelihood(&vae, row))
        .sum::<f64>()
        / 200.0;
    assert!(k50 < exact + 0.01, "IWAE-50 {k50} above log p(x) {exact}");
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

fn batch_rows(batch: &ImageBatch) -> Vec<Vec<f64>> {
    to_host(batch.flat_images())
        .unwrap()
        .chunks(4)
        .map(|c| c.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

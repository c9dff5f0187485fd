//! Tests of the mixture maths, EM, sampling, input checks and checkpoints.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use genmodels_core::Trainable;
use genmodels_core::batch::to_host;
use genmodels_core::checkpoint::{TrainingPosition, load_model, save_checkpoint};
use genmodels_core::{
    DensityScale, GenError, GenerativeModel, ImageBatch, ImageDataset, ImageShape, InMemoryDataset,
    LikelihoodKind, LikelihoodOptions, ModelConfig,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use crate::{EmOptions, Mixture, MixtureConfig, fit_em, fit_em_points};
use genmodels_core::distributions::discretized_gaussian_log_prob_f64;

fn device() -> Device {
    Device::flex()
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), &device())
}

fn vector(values: Vec<f32>) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), &device())
}

fn host(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [_, d] = t.dims();
    to_host(t)
        .unwrap()
        .chunks(d)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

fn host1(t: Tensor<1>) -> Vec<f64> {
    to_host(t).unwrap().into_iter().map(f64::from).collect()
}

/// `counts[k]` points from `N(means[k], sd² I)`, shuffled, as host rows and component labels.
fn gaussian_data(means: &[Vec<f64>], sd: f64, counts: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for (mean, &count) in means.iter().zip(counts) {
        for _ in 0..count {
            rows.push(
                mean.iter()
                    .map(|&m| (m + sd * rng.sample::<f64, _>(StandardNormal)) as f32)
                    .collect(),
            );
        }
    }
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.random_range(0..=i));
    }
    rows.concat()
}

/// `n` binary vectors from a Bernoulli mixture with `probabilities[k]` and weights `weights`.
fn bernoulli_data(probabilities: &[Vec<f64>], weights: &[f64], n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        let u: f64 = rng.random();
        let mut cumulative = 0.0;
        let k = weights
            .iter()
            .position(|&w| {
                cumulative += w;
                u < cumulative
            })
            .unwrap_or(weights.len() - 1);
        out.extend(
            probabilities[k]
                .iter()
                .map(|&p| f32::from(u8::from(rng.random::<f64>() < p))),
        );
    }
    out
}

fn points_config(likelihood_gaussian: bool, k: usize, d: usize) -> MixtureConfig {
    let shape = ImageShape::new(1, 1, d);
    if likelihood_gaussian {
        MixtureConfig::gaussian(k, shape)
    } else {
        MixtureConfig::bernoulli(k, shape)
    }
}

/// Asserts no EM step lowers the mean training log-likelihood by more than f32 round-off,
/// `10⁻⁵·|LL|`, and that it rose overall.
fn assert_monotone(history: &[f64]) {
    for (t, pair) in history.windows(2).enumerate() {
        let tolerance = 1e-5 * pair[0].abs();
        assert!(
            pair[1] >= pair[0] - tolerance,
            "LL fell at iteration {}: {} → {}",
            t + 1,
            pair[0],
            pair[1]
        );
    }
    assert!(
        history.last().unwrap() > &(history[0] + 1e-3),
        "LL did not rise: {history:?}"
    );
}

#[test]
fn em_never_decreases_the_training_log_likelihood() {
    // Overlapping 2-D Gaussians, so EM needs many iterations.
    let means = vec![vec![0.0, 0.0], vec![2.0, 1.0], vec![-1.0, 2.0]];
    let x = gaussian_data(&means, 0.8, &[300, 200, 100], 1);
    let options = EmOptions {
        max_iterations: 30,
        tolerance: 0.0,
        ..EmOptions::default()
    };
    let (_, report) =
        fit_em_points(&points_config(true, 3, 2), matrix(x, 600, 2), &options).unwrap();
    assert_eq!(
        report.log_likelihood_per_iteration.len(),
        report.iterations + 1
    );
    assert!(report.iterations >= 10, "{report:?}");
    assert_monotone(&report.log_likelihood_per_iteration);

    // Binary data from a 3-component Bernoulli mixture in 16 dimensions, fitted with K = 4.
    let mut rng = StdRng::seed_from_u64(2);
    let probabilities: Vec<Vec<f64>> = (0..3)
        .map(|_| (0..16).map(|_| rng.random_range(0.05..0.95)).collect())
        .collect();
    let x = bernoulli_data(&probabilities, &[0.5, 0.3, 0.2], 500, 3);
    let (_, report) =
        fit_em_points(&points_config(false, 4, 16), matrix(x, 500, 16), &options).unwrap();
    assert!(report.iterations >= 10, "{report:?}");
    assert_monotone(&report.log_likelihood_per_iteration);
}

/// Trapezoid rule of `p(x)` over `[-15, 15]` with step `10⁻³`.
fn integrate_1d(model: &Mixture) -> f64 {
    let (lo, hi, steps) = (-15.0f64, 15.0f64, 30_000usize);
    let h = (hi - lo) / steps as f64;
    let grid: Vec<f32> = (0..=steps).map(|i| (lo + i as f64 * h) as f32).collect();
    let density: Vec<f64> = host1(
        model
            .log_likelihood_points(matrix(grid, steps + 1, 1))
            .unwrap(),
    )
    .into_iter()
    .map(f64::exp)
    .collect();
    h * (density.iter().sum::<f64>() - 0.5 * (density[0] + density[steps]))
}

#[test]
fn gaussian_density_integrates_to_one_on_a_1d_grid() {
    let config = points_config(true, 3, 1);
    let by_hand = Mixture::from_parameters(
        &config,
        vector(vec![0.2, 0.5, 0.3]),
        matrix(vec![-2.0, 0.5, 3.0], 3, 1),
        Some(matrix(vec![0.25, 1.0, 0.04], 3, 1)),
    )
    .unwrap();
    let integral = integrate_1d(&by_hand);
    assert!((integral - 1.0).abs() < 1e-3, "∫ p = {integral}");

    // A fitted one as well.
    let x = gaussian_data(
        &[vec![-3.0], vec![0.0], vec![4.0]],
        0.5,
        &[200, 200, 200],
        4,
    );
    let (fitted, _) = fit_em_points(&config, matrix(x, 600, 1), &EmOptions::default()).unwrap();
    let integral = integrate_1d(&fitted);
    assert!((integral - 1.0).abs() < 1e-3, "∫ p = {integral}");
}

#[test]
fn bernoulli_pmf_sums_to_one_over_all_binary_vectors() {
    let d = 10;
    let mut rng = StdRng::seed_from_u64(5);
    let probabilities: Vec<f32> = (0..3 * d).map(|_| rng.random_range(0.02..0.98)).collect();
    let model = Mixture::from_parameters(
        &points_config(false, 3, d),
        vector(vec![0.6, 0.3, 0.1]),
        matrix(probabilities, 3, d),
        None,
    )
    .unwrap();
    let all: Vec<f32> = (0..1usize << d)
        .flat_map(|bits| (0..d).map(move |i| ((bits >> i) & 1) as f32))
        .collect();
    let log_p = host1(model.log_likelihood_points(matrix(all, 1 << d, d)).unwrap());
    let total: f64 = log_p.iter().map(|v| v.exp()).sum();
    assert!((total - 1.0).abs() < 1e-4, "Σ p = {total}");
}

/// A 3-component diagonal-Gaussian mixture of 1×1×2 images with means inside and outside
/// `[0, 1]`, one of them between two levels, and standard deviations from the floor (0.03) to 1.
struct GreyPairs {
    config: MixtureConfig,
    weights: [f64; 3],
    means: [[f64; 2]; 3],
    variances: [[f64; 2]; 3],
}

impl GreyPairs {
    fn new() -> Self {
        Self {
            config: MixtureConfig::gaussian(3, ImageShape::new(1, 1, 2)),
            weights: [0.5, 0.3, 0.2],
            means: [[0.1, 0.55], [-0.2, 100.5 / 255.0], [0.97, 1.3]],
            variances: [[1e-3, 0.04], [0.01, 1e-3], [0.25, 1.0]],
        }
    }

    fn model(&self) -> Mixture {
        let flat = |rows: &[[f64; 2]; 3]| rows.iter().flatten().map(|&v| v as f32).collect();
        Mixture::from_parameters(
            &self.config,
            vector(self.weights.iter().map(|&w| w as f32).collect()),
            matrix(flat(&self.means), 3, 2),
            Some(matrix(flat(&self.variances), 3, 2)),
        )
        .unwrap()
    }
}

/// Every 8-bit 1×1×2 image, `v₀·256 + v₁`, as one batch.
fn every_grey_pair() -> ImageBatch {
    let levels: Vec<u8> = (0..=255u8)
        .flat_map(|a| (0..=255u8).flat_map(move |b| [a, b]))
        .collect();
    ImageBatch::from_levels(&levels, 255, ImageShape::new(1, 1, 2), None, &device()).unwrap()
}

#[test]
fn the_discretized_gaussian_mixture_sums_to_one_over_every_8_bit_image() {
    let pairs = GreyPairs::new();
    let by_hand = pairs.model();
    let config = pairs.config;
    let all = every_grey_pair();
    let ll = by_hand
        .log_likelihood(&all, &LikelihoodOptions::default())
        .unwrap();
    assert_eq!(ll.kind, LikelihoodKind::Exact);
    assert_eq!(ll.scale, DensityScale::Discrete);
    assert_eq!(ll.len(), 65_536);
    assert!(
        ll.log_likelihood_nats
            .iter()
            .all(|v| v.is_finite() && *v <= 1e-6)
    );
    let total: f64 = ll.log_likelihood_nats.iter().map(|v| v.exp()).sum();
    assert!((total - 1.0).abs() < 1e-4, "Σ p = {total}");
    // A mean between two levels with σ far below a bin splits its mass between them.
    let [lower, upper] = [100usize, 101].map(|v| ll.log_likelihood_nats[v].exp());
    assert!(lower > 0.01 && upper > 0.01, "{lower} {upper}");

    // One fitted by EM to grey images, with the default variance floor.
    let mut rng = StdRng::seed_from_u64(21);
    let pixels: Vec<f32> = (0..400)
        .flat_map(|i| {
            let centre = if i % 2 == 0 { [0.2, 0.8] } else { [0.9, 0.0] };
            centre.map(|c: f64| {
                let v = (c + 0.1 * rng.sample::<f64, _>(StandardNormal)).clamp(0.0, 1.0);
                ((v * 255.0).round() / 255.0) as f32
            })
        })
        .collect();
    let data = InMemoryDataset::new(pixels, config.image_shape, None).unwrap();
    let (fitted, _) = fit_em(&config, &data, &EmOptions::default(), &device()).unwrap();
    let total: f64 = fitted
        .log_likelihood(&all, &LikelihoodOptions::default())
        .unwrap()
        .log_likelihood_nats
        .iter()
        .map(|v| v.exp())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "Σ p = {total} (fitted)");
}

#[test]
fn the_discretized_gaussian_mixture_matches_a_brute_force_computation() {
    let pairs = GreyPairs::new();
    let model = pairs.model();
    let GreyPairs {
        config,
        weights,
        means,
        variances,
    } = pairs;
    let images: [[u8; 2]; 6] = [
        [0, 0],
        [255, 255],
        [26, 140],
        [0, 100],
        [250, 101],
        [128, 7],
    ];
    let levels: Vec<u8> = images.iter().flatten().copied().collect();
    let batch = ImageBatch::from_levels(&levels, 255, config.image_shape, None, &device()).unwrap();
    let ll = model
        .log_likelihood(&batch, &LikelihoodOptions::default())
        .unwrap();
    for (image, got) in images.iter().zip(&ll.log_likelihood_nats) {
        let expected = brute_force(&[0.0, 0.0], &weights, |k, _| {
            (0..2)
                .map(|d| {
                    discretized_gaussian_log_prob_f64(image[d], means[k][d], variances[k][d].sqrt())
                })
                .sum()
        });
        assert!(
            (got - expected).abs() < 1e-4 * expected.abs().max(1.0),
            "{image:?}: {got} vs {expected}"
        );
    }
    // A batch of 256 images or more is scored from the table of every level: the same values.
    let table = model
        .log_likelihood(&every_grey_pair(), &LikelihoodOptions::default())
        .unwrap();
    for (image, got) in images.iter().zip(&ll.log_likelihood_nats) {
        let from_table =
            table.log_likelihood_nats[usize::from(image[0]) * 256 + usize::from(image[1])];
        assert!(
            (got - from_table).abs() < 1e-5 * got.abs().max(1.0),
            "{got} vs {from_table}"
        );
    }
    // The loss is the mean NLL of the same model, with finite gradients for every parameter.
    let loss = host1(model.loss(0, &batch).unwrap().objective)[0];
    assert!(
        (loss + ll.mean_log_likelihood_nats()).abs() < 1e-4,
        "{loss}"
    );
    let autodiff = device().autodiff();
    let model = model.fork(&autodiff).train();
    let batch = batch.to_device(&autodiff);
    let grads = model.loss(0, &batch).unwrap().objective.backward();
    let grads = GradientsParams::from_grads(grads, &model);
    assert_eq!(grads.len(), 3, "mixture logits, means and log-variances");
    let mut all = host1(grads.get::<1>(model.mixture_logits.id).unwrap());
    for param in [&model.gaussian_means, &model.gaussian_log_variances] {
        all.extend(host(grads.get::<2>(param.as_ref().unwrap().id).unwrap()).concat());
    }
    assert!(all.iter().all(|v| v.is_finite()), "{all:?}");
    assert!(all.iter().any(|&v| v != 0.0), "{all:?}");
}

#[test]
fn gaussian_mixture_samples_are_8_bit_images() {
    let pairs = GreyPairs::new();
    let model = pairs.model();
    let GreyPairs {
        weights,
        means,
        variances,
        ..
    } = pairs;
    let samples = to_host(model.sample(2000, 6).unwrap()).unwrap();
    assert!(
        samples
            .iter()
            .all(|&v| (0.0..=1.0).contains(&v) && (v * 255.0 - (v * 255.0).round()).abs() < 1e-3)
    );
    // The share of images whose second pixel is level 255 is that level's probability,
    // Σ_k π_k P(255 | μ_k2, σ_k2): the last bin takes the upper tail (μ = 1.3, σ = 1 puts 62%
    // of component 2 there).
    let last = samples.chunks(2).filter(|pixels| pixels[1] == 1.0).count() as f64 / 2000.0;
    let expected: f64 = (0..3)
        .map(|k| {
            weights[k]
                * discretized_gaussian_log_prob_f64(255, means[k][1], variances[k][1].sqrt()).exp()
        })
        .sum();
    assert!((last - expected).abs() < 0.03, "{last} vs {expected}");
}

#[test]
fn em_recovers_the_means_and_weights_of_a_well_separated_mixture() {
    // Means 5 apart with σ = 0.5 (10σ), 3000 points with weights 0.5, 0.3, 0.2.
    let means = vec![vec![0.0, 0.0], vec![5.0, 0.0], vec![0.0, 5.0]];
    let weights = [0.5, 0.3, 0.2];
    let x = gaussian_data(&means, 0.5, &[1500, 900, 600], 6);
    let (model, report) = fit_em_points(
        &points_config(true, 3, 2),
        matrix(x, 3000, 2),
        &EmOptions::default(),
    )
    .unwrap();
    assert!(report.converged, "{report:?}");
    let fitted_means = host(model.component_means());
    let fitted_variances = host(model.component_variances().unwrap());
    let fitted_weights = host1(model.weights());
    let mut used = [false; 3];
    for (true_mean, &true_weight) in means.iter().zip(&weights) {
        // The fitted component nearest this true mean; each fitted one used once.
        let distance = |m: &Vec<f64>| {
            m.iter()
                .zip(true_mean)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let k = (0..3)
            .min_by(|&a, &b| distance(&fitted_means[a]).total_cmp(&distance(&fitted_means[b])))
            .unwrap();
        assert!(!used[k], "two true means matched fitted component {k}");
        used[k] = true;
        // Standard errors: 0.5/√600 ≈ 0.02 for a mean, √(0.2·0.8/3000) ≈ 0.007 for a weight.
        assert!(
            distance(&fitted_means[k]) < 0.1,
            "{:?} vs {true_mean:?}",
            fitted_means[k]
        );
        assert!(
            (fitted_weights[k] - true_weight).abs() < 0.03,
            "{fitted_weights:?}"
        );
        for &v in &fitted_variances[k] {
            assert!((v - 0.25).abs() < 0.05, "variance {v} vs 0.25");
        }
    }
}

#[test]
fn ancestral_samples_follow_the_mixture() {
    // Gaussian: each sample lies near one of three far-apart means; frequencies match π.
    let weights = [0.2, 0.5, 0.3];
    let means = [[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]];
    let model = Mixture::from_parameters(
        &points_config(true, 3, 2),
        vector(weights.iter().map(|&w| w as f32).collect()),
        matrix(means.iter().flatten().map(|&m| m as f32).collect(), 3, 2),
        Some(matrix(vec![1.0; 6], 3, 2)),
    )
    .unwrap();
    let n = 4000;
    let samples = host(model.sample_points(n, 7).unwrap());
    let mut counts = [0usize; 3];
    for s in &samples {
        let d2 = |m: &[f64; 2]| (s[0] - m[0]).powi(2) + (s[1] - m[1]).powi(2);
        let k = (0..3)
            .min_by(|&a, &b| d2(&means[a]).total_cmp(&d2(&means[b])))
            .unwrap();
        assert!(
            d2(&means[k]).sqrt() < 6.0,
            "sample {s:?} is far from every mean"
        );
        counts[k] += 1;
    }
    for (count, w) in counts.iter().zip(weights) {
        // Standard error √(0.25/4000) ≈ 0.008.
        assert!((*count as f64 / n as f64 - w).abs() < 0.03, "{counts:?}");
    }
    // Unclamped points; images are clamped to [0, 1] and shaped [n, 1, 1, 2].
    assert!(samples.iter().flatten().any(|&v| v > 1.0));
    let images = model.sample(5, 7).unwrap();
    assert_eq!(images.dims(), [5, 1, 1, 2]);
    assert!(
        to_host(images)
            .unwrap()
            .iter()
            .all(|v| (0.0..=1.0).contains(v))
    );

    // Bernoulli: binary samples whose mean matches Σ π_k μ_k, reproducible from the seed.
    let d = 8;
    let mut rng = StdRng::seed_from_u64(8);
    let probabilities: Vec<f32> = (0..3 * d).map(|_| rng.random_range(0.05..0.95)).collect();
    let model = Mixture::from_parameters(
        &points_config(false, 3, d),
        vector(weights.iter().map(|&w| w as f32).collect()),
        matrix(probabilities.clone(), 3, d),
        None,
    )
    .unwrap();
    let n = 5000;
    let samples = to_host(model.sample_points(n, 9).unwrap()).unwrap();
    assert!(samples.iter().all(|&v| v == 0.0 || v == 1.0));
    for j in 0..d {
        let empirical = (0..n).map(|i| f64::from(samples[i * d + j])).sum::<f64>() / n as f64;
        let expected: f64 = (0..3)
            .map(|k| weights[k] * f64::from(probabilities[k * d + j]))
            .sum();
        // Standard error at most 0.5/√5000 ≈ 0.007.
        assert!(
            (empirical - expected).abs() < 0.03,
            "pixel {j}: {empirical} vs {expected}"
        );
    }
    let again = to_host(model.sample_points(n, 9).unwrap()).unwrap();
    assert_eq!(samples, again);
    let other = to_host(model.sample_points(n, 10).unwrap()).unwrap();
    assert_ne!(samples, other);
    assert!(matches!(
        model.sample(0, 0),
        Err(GenError::InvalidConfig(_))
    ));
}

/// `log Σ_k π_k p(x | k)` in f64 with loops.
fn brute_force(x: &[f64], weights: &[f64], log_component: impl Fn(usize, &[f64]) -> f64) -> f64 {
    weights
        .iter()
        .enumerate()
        .map(|(k, w)| w * log_component(k, x).exp())
        .sum::<f64>()
        .ln()
}

#[test]
fn log_likelihood_matches_a_brute_force_computation() {
    // Gaussian, K = 2, D = 3.
    let weights = [0.35, 0.65];
    let means = [[0.1, -0.4, 1.2], [0.9, 0.3, -0.5]];
    let variances = [[0.5, 1.5, 0.2], [2.0, 0.3, 0.8]];
    let model = Mixture::from_parameters(
        &points_config(true, 2, 3),
        vector(weights.iter().map(|&w| w as f32).collect()),
        matrix(means.iter().flatten().map(|&v| v as f32).collect(), 2, 3),
        Some(matrix(
            variances.iter().flatten().map(|&v| v as f32).collect(),
            2,
            3,
        )),
    )
    .unwrap();
    let x = [
        [0.0, 0.0, 0.0],
        [1.0, -1.0, 2.0],
        [0.5, 0.2, -0.3],
        [-2.0, 1.5, 0.7],
    ];
    let got = host1(
        model
            .log_likelihood_points(matrix(
                x.iter().flatten().map(|&v| v as f32).collect(),
                4,
                3,
            ))
            .unwrap(),
    );
    for (row, g) in x.iter().zip(&got) {
        let expected = brute_force(row, &weights, |k, x| {
            (0..3)
                .map(|d| {
                    let v = variances[k][d];
                    -0.5 * ((2.0 * std::f64::consts::PI * v).ln()
                        + (x[d] - means[k][d]).powi(2) / v)
                })
                .sum()
        });
        assert!(
            (g - expected).abs() < 1e-4 * expected.abs().max(1.0),
            "{g} vs {expected}"
        );
    }

    // Bernoulli, K = 3, D = 5, through the image interface as well.
    let weights = [0.5, 0.2, 0.3];
    let mu: [[f64; 5]; 3] = [
        [0.1, 0.9, 0.5, 0.3, 0.7],
        [0.8, 0.2, 0.6, 0.05, 0.95],
        [0.4, 0.4, 0.4, 0.6, 0.6],
    ];
    let config = points_config(false, 3, 5);
    let model = Mixture::from_parameters(
        &config,
        vector(weights.iter().map(|&w| w as f32).collect()),
        matrix(mu.iter().flatten().map(|&v| v as f32).collect(), 3, 5),
        None,
    )
    .unwrap();
    let x = [
        [1.0, 0.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.0, 1.0],
    ];
    let flat: Vec<f32> = x.iter().flatten().map(|&v| v as f32).collect();
    let batch = ImageBatch::from_host(flat.clone(), config.image_shape, None, &device()).unwrap();
    let ll = model
        .log_likelihood(&batch, &LikelihoodOptions::default())
        .unwrap();
    assert_eq!(ll.kind, LikelihoodKind::Exact);
    assert_eq!(ll.scale, DensityScale::Discrete);
    let points = host1(model.log_likelihood_points(matrix(flat, 3, 5)).unwrap());
    for ((row, g), p) in x.iter().zip(&ll.log_likelihood_nats).zip(&points) {
        let expected = brute_force(row, &weights, |k, x| {
            (0..5)
                .map(|d| {
                    if x[d] == 1.0 {
                        mu[k][d].ln()
                    } else {
                        (1.0 - mu[k][d]).ln()
                    }
                })
                .sum()
        });
        assert!(
            (g - expected).abs() < 1e-4 * expected.abs(),
            "{g} vs {expected}"
        );
        assert_eq!(g, p);
    }
    // The loss is the mean NLL.
    let loss = host1(model.loss(0, &batch).unwrap().objective)[0];
    assert!(
        (loss + ll.mean_log_likelihood_nats()).abs() < 1e-4,
        "{loss} vs {}",
        -ll.mean_log_likelihood_nats()
    );
}

#[test]
fn the_loss_gradient_of_the_mixture_logits_is_weight_minus_mean_responsibility() {
    // ∂(mean NLL)/∂a_k = π_k − (1/N) Σ_n r_nk for π = softmax(a).
    let config = points_config(false, 3, 4);
    let model = Mixture::from_parameters(
        &config,
        vector(vec![0.5, 0.3, 0.2]),
        matrix(
            vec![0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.6, 0.05, 0.4, 0.4, 0.4, 0.6],
            3,
            4,
        ),
        None,
    )
    .unwrap();
    let x = vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0];
    let responsibilities = host(model.responsibilities(matrix(x.clone(), 3, 4)).unwrap());
    let weights = host1(model.weights());

    let autodiff = device().autodiff();
    let model = model.fork(&autodiff).train();
    let batch = ImageBatch::from_host(x, config.image_shape, None, &autodiff).unwrap();
    let grads = model.loss(0, &batch).unwrap().objective.backward();
    let grads = GradientsParams::from_grads(grads, &model);
    assert_eq!(grads.len(), 2, "mixture logits and Bernoulli logits");
    let grad = host1(grads.get::<1>(model.mixture_logits.id).unwrap());
    for k in 0..3 {
        let mean_r = responsibilities.iter().map(|r| r[k]).sum::<f64>() / 3.0;
        assert!((grad[k] - (weights[k] - mean_r)).abs() < 1e-5, "{grad:?}");
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let options = EmOptions::default();
    let gaussian = points_config(true, 2, 3);
    let bernoulli = points_config(false, 2, 3);

    // Configs.
    for bad in [
        gaussian.clone().with_components(0),
        gaussian.clone().with_min_variance(0.0),
        gaussian.clone().with_min_variance(f64::NAN),
        bernoulli.clone().with_min_probability(0.0),
        bernoulli.clone().with_min_probability(0.5),
        bernoulli.clone().with_image_shape(ImageShape::new(1, 0, 3)),
    ] {
        assert!(
            matches!(bad.init(&device()), Err(GenError::InvalidConfig(_))),
            "{bad:?}"
        );
        let err = fit_em_points(&bad, matrix(vec![0.0; 6], 2, 3), &options).unwrap_err();
        assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");
    }

    // K > N.
    let err = fit_em_points(
        &gaussian.clone().with_components(3),
        matrix(vec![0.0; 6], 2, 3),
        &options,
    )
    .unwrap_err();
    assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");

    // Points: wrong D, NaN, ∞, non-binary for Bernoulli, none at all.
    let model = gaussian.init(&device()).unwrap();
    let err = model
        .log_likelihood_points(matrix(vec![0.0; 4], 2, 2))
        .unwrap_err();
    assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
    let err = fit_em_points(&gaussian, matrix(vec![0.0; 8], 2, 4), &options).unwrap_err();
    assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
    for bad in [f32::NAN, f32::INFINITY] {
        let x = matrix(vec![0.0, 1.0, bad, 0.5, 0.2, 0.1], 2, 3);
        let err = model.log_likelihood_points(x.clone()).unwrap_err();
        assert!(matches!(err, GenError::NonFiniteInput { .. }), "{err}");
        let err = fit_em_points(&gaussian, x, &options).unwrap_err();
        assert!(matches!(err, GenError::NonFiniteInput { .. }), "{err}");
    }
    let err = model
        .log_likelihood_points(matrix(vec![], 0, 3))
        .unwrap_err();
    assert!(matches!(err, GenError::EmptyData { .. }), "{err}");
    let grey = matrix(vec![0.0, 1.0, 0.5, 1.0, 0.0, 0.0], 2, 3);
    let err = bernoulli
        .init(&device())
        .unwrap()
        .log_likelihood_points(grey.clone())
        .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
    let err = fit_em_points(&bernoulli, grey, &options).unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");

    // Images: wrong shape, grey levels for Bernoulli, an empty data set.
    let image_config = MixtureConfig::bernoulli(2, ImageShape::new(1, 2, 2));
    let model = image_config.init(&device()).unwrap();
    let wrong =
        ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &device()).unwrap();
    let err = model
        .log_likelihood(&wrong, &LikelihoodOptions::default())
        .unwrap_err();
    assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
    assert!(matches!(
        model.loss(0, &wrong),
        Err(GenError::ShapeMismatch { .. })
    ));
    let grey =
        ImageBatch::from_host(vec![0.5; 4], ImageShape::new(1, 2, 2), None, &device()).unwrap();
    let err = model
        .log_likelihood(&grey, &LikelihoodOptions::default())
        .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
    let grey_set = InMemoryDataset::new(vec![0.5; 12], ImageShape::new(1, 2, 2), None).unwrap();
    let err = fit_em(&image_config, &grey_set, &options, &device()).unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
    let err = fit_em(
        &image_config
            .clone()
            .with_image_shape(ImageShape::new(1, 1, 4)),
        &grey_set,
        &options,
        &device(),
    )
    .unwrap_err();
    assert!(matches!(err, GenError::ShapeMismatch { .. }), "{err}");
    let empty = InMemoryDataset::new(vec![], ImageShape::new(1, 2, 2), None).unwrap();
    let err = fit_em(&image_config, &empty, &options, &device()).unwrap_err();
    assert!(matches!(err, GenError::EmptyData { .. }), "{err}");

    // Hand-set parameters out of their domain.
    let err = Mixture::from_parameters(
        &bernoulli,
        vector(vec![0.5, 0.5]),
        matrix(vec![0.0, 0.5, 0.5, 0.5, 0.5, 0.5], 2, 3),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
    let err = Mixture::from_parameters(
        &gaussian,
        vector(vec![0.5, 0.5]),
        matrix(vec![0.0; 6], 2, 3),
        Some(matrix(vec![-1.0; 6], 2, 3)),
    )
    .unwrap_err();
    assert!(matches!(err, GenError::ValueOutOfRange { .. }), "{err}");
}

#[test]
fn em_survives_more_components_than_distinct_points() {
    // Two distinct points repeated: D² seeding runs out of distance, and a component may end
    // with no mass; the fit must still be a finite, normalised mixture.
    let x: Vec<f32> = (0..20)
        .flat_map(|i| if i % 2 == 0 { [0.0, 0.0] } else { [3.0, 1.0] })
        .collect();
    let (model, report) = fit_em_points(
        &points_config(true, 3, 2),
        matrix(x.clone(), 20, 2),
        &EmOptions::default(),
    )
    .unwrap();
    assert!(report.final_log_likelihood().is_finite());
    let weights = host1(model.weights());
    assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert!(weights.iter().all(|&w| w > 0.0));
    assert!(
        host1(model.log_likelihood_points(matrix(x, 20, 2)).unwrap())
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn a_checkpoint_round_trip_keeps_the_log_likelihoods() {
    // Fit on images through `fit_em`, then save and load.
    let shape = ImageShape::new(1, 4, 4);
    let mut rng = StdRng::seed_from_u64(11);
    let probabilities: Vec<Vec<f64>> = (0..2)
        .map(|_| (0..16).map(|_| rng.random_range(0.1..0.9)).collect())
        .collect();
    let images = InMemoryDataset::new(
        bernoulli_data(&probabilities, &[0.6, 0.4], 200, 12),
        shape,
        None,
    )
    .unwrap();
    let config = MixtureConfig::bernoulli(3, shape);
    let (model, report) = fit_em(&config, &images, &EmOptions::default(), &device()).unwrap();
    assert!(report.iterations > 0);
    let batch = images
        .batch(&(0..200).collect::<Vec<_>>(), 0, &device())
        .unwrap();
    let before = model
        .log_likelihood(&batch, &LikelihoodOptions::default())
        .unwrap();
    // The report's final training LL is the model's.
    assert!((before.mean_log_likelihood_nats() - report.final_log_likelihood()).abs() < 1e-4);

    let dir = tempfile::tempdir().unwrap();
    let position = TrainingPosition {
        epoch: 0,
        step: report.iterations,
        seed: 0,
    };
    save_checkpoint(dir.path(), &model, &[], position).unwrap();
    let (loaded, manifest) = load_model::<MixtureConfig>(dir.path(), &device()).unwrap();
    assert_eq!(manifest.model, "gmm");
    let after = loaded
        .log_likelihood(&batch, &LikelihoodOptions::default())
        .unwrap();
    assert_eq!(before, after);

    // A Gaussian mixture too (its parameters are other tensors).
    let config = MixtureConfig::gaussian(2, shape);
    let grey = InMemoryDataset::new(
        (0..16 * 50)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect(),
        shape,
        None,
    )
    .unwrap();
    let (model, _) = fit_em(&config, &grey, &EmOptions::default(), &device()).unwrap();
    let batch = grey
        .batch(&(0..50).collect::<Vec<_>>(), 0, &device())
        .unwrap();
    let before = model
        .log_likelihood(&batch, &LikelihoodOptions::default())
        .unwrap();
    assert_eq!(before.scale, DensityScale::Discrete);
    save_checkpoint(dir.path(), &model, &[], position).unwrap();
    let (loaded, _) = load_model::<MixtureConfig>(dir.path(), &device()).unwrap();
    assert_eq!(
        before,
        loaded
            .log_likelihood(&batch, &LikelihoodOptions::default())
            .unwrap()
    );
}

#[test]
fn a_mixture_fitted_to_digits_scores_noise_above_every_test_digit() {
    use genmodels_core::AnomalyScore;
    use genmodels_data::{Binarization, Mnist};
    let d = device();
    let mnist = Mnist::bundled().unwrap();
    let train = mnist
        .train
        .take(500)
        .with_binarization(Binarization::Threshold(0.5));
    let config = MixtureConfig::bernoulli(10, ImageShape::MNIST);
    let options = EmOptions {
        max_iterations: 20,
        ..EmOptions::default()
    };
    let (model, _) = fit_em(&config, &train, &options, &d).unwrap();
    let test = mnist
        .test
        .take(100)
        .with_binarization(Binarization::Threshold(0.5));
    let likelihood_options = LikelihoodOptions::default();
    let digits = model
        .anomaly_scores(&test.first(100, &d).unwrap(), &likelihood_options)
        .unwrap();
    assert_eq!(digits.name, "neg_log_likelihood_nats");
    let mut rng = StdRng::seed_from_u64(3);
    let noise: Vec<f32> = (0..10 * 784)
        .map(|_| f32::from(u8::from(rng.random::<bool>())))
        .collect();
    let noise = ImageBatch::from_host(noise, ImageShape::MNIST, None, &d).unwrap();
    let noise = model.anomaly_scores(&noise, &likelihood_options).unwrap();
    let most_anomalous_digit = digits.scores.iter().copied().fold(f64::MIN, f64::max);
    let least_anomalous_noise = noise.scores.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        least_anomalous_noise > most_anomalous_digit,
        "noise {least_anomalous_noise} vs digits up to {most_anomalous_digit}"
    );
}

#[test]
fn the_representation_is_the_posterior_over_components() {
    use genmodels_core::capabilities::Represent;
    // Two equally weighted Bernoulli components over two pixels, means 0.9 and 0.1:
    // p(k = 0 | 11) = 0.81 / (0.81 + 0.01), p(k = 0 | 10) = ½, p(k = 0 | 00) = 0.01 / 0.82.
    let shape = ImageShape::new(1, 1, 2);
    let config = MixtureConfig::bernoulli(2, shape);
    let mixture = Mixture::from_parameters(
        &config,
        vector(vec![0.5, 0.5]),
        matrix(vec![0.9, 0.9, 0.1, 0.1], 2, 2),
        None,
    )
    .unwrap();
    let batch =
        ImageBatch::from_host(vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0], shape, None, &device()).unwrap();
    let r = mixture.representation(&batch).unwrap();
    assert_eq!(r.dims(), [3, 2]);
    let values = to_host(r).unwrap();
    let expected = [0.81 / 0.82, 0.01 / 0.82, 0.5, 0.5, 0.01 / 0.82, 0.81 / 0.82];
    for (got, want) in values.iter().zip(expected) {
        assert!((f64::from(*got) - want).abs() < 1e-5, "{values:?}");
    }
    for row in values.chunks(2) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert_eq!(
        values,
        to_host(mixture.representation(&batch).unwrap()).unwrap()
    );
    // A Bernoulli mixture takes binary images only.
    let grey = ImageBatch::from_host(vec![0.5, 1.0], shape, None, &device()).unwrap();
    assert!(matches!(
        mixture.representation(&grey),
        Err(GenError::ValueOutOfRange { .. })
    ));
}

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use super::linalg::{matmul, psd_sqrt, symmetric_eigen};
use super::*;
use genmodels_core::batch::{ImageShape, InMemoryDataset};

fn random_symmetric(n: usize, rng: &mut StdRng) -> Vec<f64> {
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v: f64 = rng.sample(StandardNormal);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

/// `X Xᵀ / k` for a random `n × k` matrix `X`: positive semi-definite, singular when `k < n`.
fn random_psd(n: usize, k: usize, rng: &mut StdRng) -> Vec<f64> {
    let x: Vec<f64> = (0..n * k).map(|_| rng.sample(StandardNormal)).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| x[i * k + t] * x[j * k + t]).sum::<f64>() / k as f64;
        }
    }
    out
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    (0..n * n).map(|k| a[(k % n) * n + k / n]).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn identity(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn jacobi_reconstructs_random_symmetric_matrices_with_orthonormal_vectors() {
    let mut rng = StdRng::seed_from_u64(1);
    for n in [1, 2, 3, 7, 20, 64] {
        let a = random_symmetric(n, &mut rng);
        let eig = symmetric_eigen(&a, n).unwrap();
        assert_eq!(eig.dim(), n);
        let back = eig.reconstruct_with(|l| l);
        let err = max_abs_diff(&back, &a);
        assert!(err < 1e-11 * n as f64, "n = {n}: V Λ Vᵀ is off by {err}");
        let vtv = matmul(&transpose(&eig.vectors, n), &eig.vectors, n);
        let err = max_abs_diff(&vtv, &identity(n));
        assert!(err < 1e-12 * n as f64, "n = {n}: VᵀV is off I by {err}");
        // The trace is the sum of the eigenvalues.
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        assert!((trace - eig.values.iter().sum::<f64>()).abs() < 1e-10 * n as f64);
    }
}

#[test]
fn jacobi_finds_known_eigenvalues_including_repeated_ones() {
    // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
    let mut values = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap().values;
    values.sort_by(f64::total_cmp);
    assert!((values[0] - 1.0).abs() < 1e-14 && (values[1] - 3.0).abs() < 1e-14);
    // Repeated eigenvalues and the zero matrix need no rotation at all.
    let eig = symmetric_eigen(&identity(4), 4).unwrap();
    assert_eq!(eig.values, vec![1.0; 4]);
    assert_eq!(symmetric_eigen(&[0.0; 9], 3).unwrap().values, vec![0.0; 3]);
    // A rank-one matrix u uᵀ: eigenvalues ‖u‖² and zeros.
    let u = [1.0, 2.0, 3.0];
    let a: Vec<f64> = (0..9).map(|k| u[k / 3] * u[k % 3]).collect();
    let mut values = symmetric_eigen(&a, 3).unwrap().values;
    values.sort_by(f64::total_cmp);
    assert!(values[0].abs() < 1e-13 && values[1].abs() < 1e-13);
    assert!((values[2] - 14.0).abs() < 1e-12);
}

#[test]
fn jacobi_rejects_bad_input() {
    assert!(matches!(
        symmetric_eigen(&[1.0, 2.0, 3.0], 2),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        symmetric_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2),
        Err(GenError::NonFiniteInput { .. })
    ));
}

#[test]
fn psd_square_root_squares_back_also_when_singular() {
    let mut rng = StdRng::seed_from_u64(2);
    for (n, k) in [(5, 50), (16, 40), (16, 4), (30, 1)] {
        let a = random_psd(n, k, &mut rng);
        let root = psd_sqrt(&a, n).unwrap();
        let err = max_abs_diff(&matmul(&root, &root, n), &a);
        assert!(err < 1e-10, "n = {n}, rank {k}: (A^½)² is off by {err}");
        assert!(max_abs_diff(&root, &transpose(&root, n)) < 1e-12);
    }
}

fn fit(mean: Vec<f64>, covariance: Vec<f64>) -> GaussianFit {
    GaussianFit { mean, covariance }
}

#[test]
fn fid_of_a_set_against_itself_is_zero() {
    let mut rng = StdRng::seed_from_u64(3);
    // Well-conditioned (n ≫ d) and singular (n < d) covariances.
    for (n, d) in [(500, 16), (10, 16), (300, 128)] {
        let features: Vec<f64> = (0..n * d)
            .map(|k| rng.sample::<f64, _>(StandardNormal) * (1.0 + (k % d) as f64))
            .collect();
        let g = GaussianFit::fit(&features, n, d).unwrap();
        let fid = frechet_distance(&g, &g).unwrap();
        assert!((0.0..1e-3).contains(&fid), "n = {n}, d = {d}: FID {fid}");
    }
}

#[test]
fn fid_of_sampled_diagonal_gaussians_matches_the_closed_form() {
    // For diagonal covariances a and b the distance is ‖μ₁ − μ₂‖² + Σᵢ (√aᵢ − √bᵢ)².
    let (mu1, var1): ([f64; 4], [f64; 4]) = ([0.0, 1.0, 2.0, -1.0], [1.0, 4.0, 0.25, 2.0]);
    let (mu2, var2): ([f64; 4], [f64; 4]) = ([0.5, 1.0, 1.0, -1.0], [2.0, 1.0, 0.25, 0.5]);
    let expected: f64 = (0..4)
        .map(|i| (mu1[i] - mu2[i]).powi(2) + (f64::sqrt(var1[i]) - f64::sqrt(var2[i])).powi(2))
        .sum();
    let mut rng = StdRng::seed_from_u64(4);
    let n = 200_000;
    let mut draw = |mu: &[f64; 4], var: &[f64; 4]| -> GaussianFit {
        let x: Vec<f64> = (0..n * 4)
            .map(|k| mu[k % 4] + var[k % 4].sqrt() * rng.sample::<f64, _>(StandardNormal))
            .collect();
        GaussianFit::fit(&x, n, 4).unwrap()
    };
    let (a, b) = (draw(&mu1, &var1), draw(&mu2, &var2));
    let fid = frechet_distance(&a, &b).unwrap();
    // The estimates of means and variances are off by about σ/√n ≈ 0.003.
    assert!(
        (fid - expected).abs() < 0.03,
        "FID {fid}, closed form {expected}"
    );
}

#[test]
fn fid_of_non_commuting_two_by_two_covariances_matches_the_hand_computation() {
    // For 2×2 PSD M, tr √M = √(tr M + 2√det M); Σ₁^½ Σ₂ Σ₁^½ has the trace and determinant
    // of Σ₁ Σ₂. With Σ₁ = [[2, 1], [1, 2]], Σ₂ = diag(1, 3): tr Σ₁Σ₂ = 8, det = 3 · 3, so the
    // cross term is √14, and with means 3 apart in the first coordinate
    // FID = 9 + 4 + 4 − 2√14.
    let a = fit(vec![0.0, 1.0], vec![2.0, 1.0, 1.0, 2.0]);
    let b = fit(vec![3.0, 1.0], vec![1.0, 0.0, 0.0, 3.0]);
    let expected = 17.0 - 2.0 * 14f64.sqrt();
    let fid = frechet_distance(&a, &b).unwrap();
    assert!((fid - expected).abs() < 1e-12, "{fid} vs {expected}");
    // The distance is symmetric.
    assert!((frechet_distance(&b, &a).unwrap() - expected).abs() < 1e-12);

    // A singular Σ₂ = [[1, 1], [1, 1]] (det 0): tr Σ₁Σ₂ = 6, cross term √6.
    let c = fit(vec![0.0, 1.0], vec![1.0, 1.0, 1.0, 1.0]);
    let expected = 4.0 + 2.0 - 2.0 * 6f64.sqrt();
    assert!((frechet_distance(&a, &c).unwrap() - expected).abs() < 1e-12);
}

#[test]
fn fid_is_invariant_under_a_common_rotation() {
    let mut rng = StdRng::seed_from_u64(5);
    let d = 6;
    let q = symmetric_eigen(&random_symmetric(d, &mut rng), d)
        .unwrap()
        .vectors;
    let qt = transpose(&q, d);
    let rotate = |g: &GaussianFit| GaussianFit {
        mean: (0..d)
            .map(|i| (0..d).map(|j| q[i * d + j] * g.mean[j]).sum())
            .collect(),
        covariance: matmul(&matmul(&q, &g.covariance, d), &qt, d),
    };
    let a = fit(vec![0.3; d], random_psd(d, 20, &mut rng));
    let b = fit(
        (0..d).map(|i| i as f64 * 0.1).collect(),
        random_psd(d, 9, &mut rng),
    );
    let before = frechet_distance(&a, &b).unwrap();
    let after = frechet_distance(&rotate(&a), &rotate(&b)).unwrap();
    assert!(before > 0.1);
    assert!((before - after).abs() < 1e-10, "{before} vs {after}");
}

#[test]
fn gaussian_fit_has_the_unbiased_covariance_and_rejects_bad_input() {
    // Points (0, 0), (2, 0), (1, 3): mean (1, 1), covariance [[1, 0], [0, 3]].
    let g = GaussianFit::fit(&[0.0, 0.0, 2.0, 0.0, 1.0, 3.0], 3, 2).unwrap();
    assert_eq!(g.mean, vec![1.0, 1.0]);
    assert!(max_abs_diff(&g.covariance, &[1.0, 0.0, 0.0, 3.0]) < 1e-15);

    assert!(matches!(
        GaussianFit::fit(&[1.0, 2.0], 1, 2),
        Err(GenError::EmptyData { .. })
    ));
    assert!(matches!(
        GaussianFit::fit(&[1.0, 2.0, 3.0], 2, 2),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        GaussianFit::fit(&[1.0, f64::NAN, 3.0, 4.0], 2, 2),
        Err(GenError::NonFiniteInput { .. })
    ));
}

#[test]
fn frechet_distance_rejects_mismatched_or_invalid_gaussians() {
    let a = fit(vec![0.0, 0.0], identity(2));
    let three = fit(vec![0.0; 3], identity(3));
    assert!(matches!(
        frechet_distance(&a, &three),
        Err(GenError::ShapeMismatch { .. })
    ));
    let short = fit(vec![0.0, 0.0], vec![1.0, 0.0, 0.0]);
    assert!(matches!(
        frechet_distance(&a, &short),
        Err(GenError::ShapeMismatch { .. })
    ));
    let indefinite = fit(vec![0.0, 0.0], vec![1.0, 0.0, 0.0, -1.0]);
    assert!(matches!(
        frechet_distance(&a, &indefinite),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let asymmetric = fit(vec![0.0, 0.0], vec![1.0, 0.5, 0.0, 1.0]);
    assert!(matches!(
        frechet_distance(&asymmetric, &a),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let nan = fit(vec![f64::NAN, 0.0], identity(2));
    assert!(matches!(
        frechet_distance(&a, &nan),
        Err(GenError::NonFiniteInput { .. })
    ));
}

/// Judged images with one-hot predictions of `classes` and two features.
fn one_hot(classes: &[usize]) -> JudgedImages {
    let probabilities = classes
        .iter()
        .flat_map(|&c| (0..CLASSES).map(move |k| f64::from(u8::from(k == c))))
        .collect();
    let features = classes.iter().flat_map(|&c| [c as f64, 1.0]).collect();
    JudgedImages::new(features, probabilities, 2).unwrap()
}

#[test]
fn inception_score_is_ten_for_confident_even_predictions_and_one_for_a_constant_one() {
    let even: Vec<usize> = (0..50).map(|i| i % CLASSES).collect();
    assert!((inception_score(&one_hot(&even)) - 10.0).abs() < 1e-12);
    assert!((inception_score(&one_hot(&[3; 40])) - 1.0).abs() < 1e-12);
    // A constant but uncertain prediction also scores 1: p(y|x) = p(y).
    let soft = JudgedImages::new(vec![0.0; 5], vec![0.1; 50], 1).unwrap();
    assert!((inception_score(&soft) - 1.0).abs() < 1e-12);
    // Confident predictions over 5 classes used equally: exactly 5.
    let five: Vec<usize> = (0..100).map(|i| i % 5).collect();
    assert!((inception_score(&one_hot(&five)) - 5.0).abs() < 1e-12);
}

#[test]
fn mode_coverage_counts_classes_above_a_tenth_of_their_share() {
    // 1,000 samples: the threshold is ⌈0.1 · 1000 / 10⌉ = 10.
    let mut classes = vec![0usize; 900];
    classes.extend([1; 10]);
    classes.extend([2; 9]);
    classes.extend([3; 81]);
    let coverage = ModeCoverage::of(&one_hot(&classes));
    assert_eq!(coverage.hit_threshold, 10);
    assert_eq!(coverage.histogram, vec![900, 10, 9, 81, 0, 0, 0, 0, 0, 0]);
    assert_eq!(coverage.classes_hit, 3);
    assert_eq!(coverage.classes, 10);

    let even: Vec<usize> = (0..20).map(|i| i % CLASSES).collect();
    let coverage = ModeCoverage::of(&one_hot(&even));
    assert_eq!((coverage.classes_hit, coverage.hit_threshold), (10, 1));
    assert!(coverage.kl_to_uniform.abs() < 1e-12);

    let collapsed = ModeCoverage::of(&one_hot(&[7; 5]));
    assert_eq!(collapsed.classes_hit, 1);
    assert!((collapsed.kl_to_uniform - 10f64.ln()).abs() < 1e-12);
}

#[test]
fn judged_images_check_their_shape_and_append() {
    assert!(matches!(
        JudgedImages::new(vec![], vec![], 2),
        Err(GenError::EmptyData { .. })
    ));
    assert!(matches!(
        JudgedImages::new(vec![0.0; 3], vec![0.1; 10], 2),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        JudgedImages::new(vec![0.0; 2], vec![0.1; 11], 2),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        JudgedImages::new(vec![f64::NAN; 2], vec![0.1; 10], 2),
        Err(GenError::NonFiniteInput { .. })
    ));
    assert!(matches!(
        JudgedImages::new(vec![0.0; 2], vec![1.5; 10], 2),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let mut a = one_hot(&[1, 2]);
    a.append(one_hot(&[9])).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.predicted_classes(), vec![1, 2, 9]);
    assert_eq!(a.feature_row(2), &[9.0, 1.0]);
    let other = JudgedImages::new(vec![0.0; 3], vec![0.1; 10], 3).unwrap();
    assert!(matches!(
        a.append(other),
        Err(GenError::ShapeMismatch { .. })
    ));
}

#[test]
fn sample_quality_of_a_set_against_itself() {
    let classes: Vec<usize> = (0..200).map(|i| (i * 7) % CLASSES).collect();
    let mut judged = one_hot(&classes);
    // Give the features some spread in both dimensions.
    let features: Vec<f64> = (0..400).map(|k| ((k * 37) % 11) as f64).collect();
    judged = JudgedImages::new(features, judged.probabilities().to_vec(), 2).unwrap();
    let quality = SampleQuality::measure(&judged, &judged).unwrap();
    assert!(quality.fid.abs() < 1e-9);
    assert!((quality.inception_score - 10.0).abs() < 1e-9);
    assert_eq!(quality.coverage.classes_hit, 10);
    let single = one_hot(&[1]);
    assert!(matches!(
        SampleQuality::measure(&single, &judged),
        Err(GenError::EmptyData { .. })
    ));
}

fn untrained_judge(device: &Device) -> Judge {
    device.seed(0);
    Judge::new(ClassifierConfig::new().init(device).unwrap())
}

#[test]
fn the_judge_checks_its_input() {
    let device = Device::flex();
    let judge = untrained_judge(&device);
    let judged = judge
        .judge(Tensor::<4>::full([3, 1, 28, 28], 0.5, &device))
        .unwrap();
    assert_eq!((judged.len(), judged.feature_dim()), (3, 128));
    for i in 0..3 {
        let total: f64 = judged.probability_row(i).iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(judged.feature_row(i).iter().all(|&f| f >= 0.0));
    }

    let bad = |images: Tensor<4>| judge.judge(images).unwrap_err();
    assert!(matches!(
        bad(Tensor::zeros([0, 1, 28, 28], &device)),
        GenError::EmptyData { .. }
    ));
    assert!(matches!(
        bad(Tensor::zeros([2, 1, 28, 27], &device)),
        GenError::ShapeMismatch { .. }
    ));
    assert!(matches!(
        bad(Tensor::zeros([2, 3, 28, 28], &device)),
        GenError::ShapeMismatch { .. }
    ));
    assert!(matches!(
        bad(Tensor::full([1, 1, 28, 28], f32::NAN, &device)),
        GenError::NonFiniteInput { .. }
    ));
    assert!(matches!(
        bad(Tensor::full([1, 1, 28, 28], 1.5, &device)),
        GenError::ValueOutOfRange { .. }
    ));
    assert!(matches!(
        bad(Tensor::full([1, 1, 28, 28], -0.1, &device)),
        GenError::ValueOutOfRange { .. }
    ));
}

#[test]
fn judging_in_chunks_matches_judging_at_once_and_a_data_set_in_batches() {
    let device = Device::flex();
    let judge = untrained_judge(&device);
    let mut rng = StdRng::seed_from_u64(6);
    let n = 1_100; // three chunks of at most 500
    let pixels: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [n, 1, 28, 28]), &device);
    let all = judge.judge(images).unwrap();
    assert_eq!(all.len(), n);
    let first = judge
        .judge(Tensor::from_data(
            TensorData::new(pixels[..784].to_vec(), [1, 1, 28, 28]),
            &device,
        ))
        .unwrap();
    assert!(max_abs_diff(first.features(), all.feature_row(0)) < 1e-5);

    let data = InMemoryDataset::new(pixels.clone(), ImageShape::MNIST, None).unwrap();
    let limited = judge.judge_dataset(&data, Some(700), &device).unwrap();
    assert_eq!(limited.len(), 700);
    assert!(max_abs_diff(limited.features(), &all.features()[..700 * 128]) < 1e-5);
    assert!(matches!(
        judge.judge_dataset(&data, Some(0), &device),
        Err(GenError::EmptyData { .. })
    ));
    let small = InMemoryDataset::new(vec![0.0; 2 * 16], ImageShape::new(1, 4, 4), None).unwrap();
    assert!(matches!(
        judge.judge_dataset(&small, None, &device),
        Err(GenError::ShapeMismatch { .. })
    ));

    // Uneven batches of 300 (the last 200) come in order, each asked for once.
    let mut asked = Vec::new();
    let batched = judge
        .judge_in_batches(n, 300, |start, count| {
            asked.push((start, count));
            Ok(Tensor::from_data(
                TensorData::new(
                    pixels[start * 784..(start + count) * 784].to_vec(),
                    [count, 1, 28, 28],
                ),
                &device,
            ))
        })
        .unwrap();
    assert_eq!(asked, [(0, 300), (300, 300), (600, 300), (900, 200)]);
    assert!(max_abs_diff(batched.features(), all.features()) < 1e-5);
    assert!(matches!(
        judge.judge_in_batches(0, 300, |_, _| unreachable!("no images are asked for")),
        Err(GenError::EmptyData { .. })
    ));
}

#[test]
fn judge_weights_round_trip_and_foreign_weights_are_typed_errors() {
    let device = Device::flex();
    let judge = untrained_judge(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge.safetensors");
    judge.save(&path).unwrap();
    let loaded = Judge::load(&path, &device).unwrap();
    let x = Tensor::<4>::full([2, 1, 28, 28], 0.25, &device);
    let (a, b) = (judge.judge(x.clone()).unwrap(), loaded.judge(x).unwrap());
    assert_eq!(a, b);

    // Weights of another architecture do not fit.
    device.seed(1);
    let other = Judge::new(
        ClassifierConfig::new()
            .with_hidden(64)
            .init(&device)
            .unwrap(),
    );
    let bytes = other.to_safetensors_bytes().unwrap();
    assert!(matches!(
        Judge::from_safetensors_bytes(&bytes, &device),
        Err(GenError::CheckpointMismatch { .. })
    ));
    assert!(matches!(
        Judge::from_safetensors_bytes(b"not safetensors at all", &device),
        Err(GenError::CorruptCheckpoint { .. })
    ));
    let good = judge.to_safetensors_bytes().unwrap();
    assert!(matches!(
        Judge::from_safetensors_bytes(&good[..good.len() / 2], &device),
        Err(GenError::CorruptCheckpoint { .. })
    ));
    assert!(matches!(
        Judge::load(&dir.path().join("missing.safetensors"), &device),
        Err(GenError::CorruptCheckpoint { .. })
    ));
}

/// 1×28×28 images of ten classes: class `c` is a bright 6×6 square in the `c`-th cell of a
/// grid, plus faint noise.
fn squares(n: usize, seed: u64, labels: bool) -> InMemoryDataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 784);
    let mut classes = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLASSES;
        let (top, left) = (2 + (c / 5) * 13, 1 + (c % 5) * 5);
        for y in 0..28 {
            for x in 0..28 {
                let inside = (top..top + 6).contains(&y) && (left..left + 4).contains(&x);
                let noise = 0.1 * rng.random::<f32>();
                pixels.push(if inside { 0.9 + noise } else { noise });
            }
        }
        classes.push(c as i64);
    }
    InMemoryDataset::new(pixels, ImageShape::MNIST, labels.then_some(classes)).unwrap()
}

fn quick_config() -> ClassifierTrainingConfig {
    ClassifierTrainingConfig {
        model: ClassifierConfig::new()
            .with_channels([4, 8])
            .with_hidden(16),
        epochs: 10,
        batch_size: 20,
        learning_rate: 3e-3,
        seed: 7,
        binarize_fraction: 0.5,
        max_shift: 1,
        dropout: 0.1,
        progress: false,
    }
}

#[test]
fn a_small_classifier_learns_a_separable_task_reproducibly() {
    let device = Device::flex();
    let config = quick_config();
    let (classifier, report) = train_classifier(&config, &squares(300, 1, true), &device).unwrap();
    assert_eq!((report.epochs, report.steps), (10, 150));
    assert!(report.epoch_losses.iter().all(|l| l.is_finite()));
    assert!(report.epoch_losses[9] < report.epoch_losses[0]);
    let accuracy = classifier_accuracy(&classifier, &squares(200, 2, true), 64, &device).unwrap();
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
    // The same seed gives the same weights.
    let (again, _) = train_classifier(&config, &squares(300, 1, true), &device).unwrap();
    let x = Tensor::<4>::full([1, 1, 28, 28], 0.3, &device);
    assert_eq!(
        genmodels_core::batch::to_host(classifier.forward(x.clone())).unwrap(),
        genmodels_core::batch::to_host(again.forward(x)).unwrap()
    );
}

#[test]
fn classifier_training_rejects_bad_data_and_configs() {
    let device = Device::flex();
    let config = quick_config();
    assert!(matches!(
        train_classifier(&config, &squares(20, 1, false), &device),
        Err(GenError::InvalidLabels(_))
    ));
    let wrong_labels =
        InMemoryDataset::new(vec![0.5; 2 * 784], ImageShape::MNIST, Some(vec![3, 10])).unwrap();
    assert!(matches!(
        train_classifier(&config, &wrong_labels, &device),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let small =
        InMemoryDataset::new(vec![0.0; 16], ImageShape::new(1, 4, 4), Some(vec![1])).unwrap();
    assert!(matches!(
        train_classifier(&config, &small, &device),
        Err(GenError::ShapeMismatch { .. })
    ));
    let empty = InMemoryDataset::new(vec![], ImageShape::MNIST, Some(vec![])).unwrap();
    assert!(matches!(
        train_classifier(&config, &empty, &device),
        Err(GenError::EmptyData { .. })
    ));
    for bad in [
        ClassifierTrainingConfig {
            epochs: 0,
            ..quick_config()
        },
        ClassifierTrainingConfig {
            learning_rate: f64::NAN,
            ..quick_config()
        },
        ClassifierTrainingConfig {
            binarize_fraction: 1.5,
            ..quick_config()
        },
        ClassifierTrainingConfig {
            dropout: 1.0,
            ..quick_config()
        },
        ClassifierTrainingConfig {
            model: ClassifierConfig::new().with_hidden(0),
            ..quick_config()
        },
    ] {
        assert!(matches!(
            train_classifier(&bad, &squares(10, 1, true), &device),
            Err(GenError::InvalidConfig(_))
        ));
    }
    assert!(matches!(
        classifier_accuracy(
            &ClassifierConfig::new().init(&device).unwrap(),
            &squares(10, 1, false),
            5,
            &device
        ),
        Err(GenError::InvalidLabels(_))
    ));
}

//! Scores of what generative models are used for: how well a score separates two sets
//! ([`auroc`], for anomaly detection) and how close an image is to a reference ([`psnr`],
//! [`ssim`], for super-resolution and inpainting).
//!
//! Written here rather than taken from a crate: each is a few lines of well-known maths, and
//! [`ssim`] runs on the same tensors (and backend) as the models, where an image crate would
//! need the images copied out one by one.

use genmodels_core::burn::tensor::Tensor;
use genmodels_core::burn::tensor::module::conv2d;
use genmodels_core::burn::tensor::ops::ConvOptions;
use genmodels_core::{GenError, Result};

/// The area under the ROC curve of a score that should be higher on `positive` than on
/// `negative` examples: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann–Whitney U statistic over `|P|·|N|`). 1 is a
/// perfect separation, 0.5 chance, 0 a perfect separation the wrong way round.
///
/// Computed by sorting, `O((|P| + |N|) log(|P| + |N|))`: tied scores share their average
/// rank.
///
/// # Errors
/// [`GenError::EmptyData`] when either set is empty; [`GenError::NonFiniteInput`] for a NaN
/// or infinite score.
pub fn auroc(positive: &[f64], negative: &[f64]) -> Result<f64> {
    for (scores, name) in [(positive, "positive"), (negative, "negative")] {
        if scores.is_empty() {
            return Err(GenError::EmptyData {
                context: format!("AUROC's {name} scores"),
            });
        }
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: format!("AUROC's {name} scores"),
            });
        }
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' ranks (1-based), ties at their average rank.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < all.len() {
        let end = start
            + all[start..]
                .iter()
                .take_while(|e| e.0 == all[start].0)
                .count();
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let positives = all[start..end].iter().filter(|e| e.1).count();
        positive_rank_sum += average_rank * positives as f64;
        start = end;
    }
    let (p, n) = (positive.len() as f64, negative.len() as f64);
    let u = positive_rank_sum - p * (p + 1.0) / 2.0;
    Ok(u / (p * n))
}

/// Peak signal-to-noise ratio of each image of `estimate` against the same image of
/// `reference`, in dB, for pixel values in `[0, 1]`: `10 log₁₀(1 / MSE)`. Identical images
/// give `+∞`.
///
/// # Shapes
/// - reference, estimate: `[N, C, H, W]`, the same
/// - output: `N` values
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the shapes differ; [`GenError::EmptyData`] for no images.
pub fn psnr(reference: Tensor<4>, estimate: Tensor<4>) -> Result<Vec<f64>> {
    check_pair("PSNR", &reference, &estimate, 1)?;
    let n = reference.dims()[0];
    let squared_error = (reference - estimate)
        .powi_scalar(2)
        .reshape([n as i32, -1]);
    let mse = to_f64(squared_error.mean_dim(1).reshape([n]))?;
    Ok(mse.into_iter().map(|e| -10.0 * e.log10()).collect())
}

/// Side of [`ssim`]'s Gaussian window.
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of [`ssim`]'s Gaussian window, pixels.
pub const SSIM_WINDOW_SIGMA: f64 = 1.5;

/// The structural similarity index (Wang et al. 2004) of each image of `estimate` against
/// the same image of `reference`, for pixel values in `[0, 1]`: the mean over every 11×11
/// window position (Gaussian weights, σ = 1.5, windows inside the image only) and channel of
///
/// `SSIM(x, y) = (2 μ_x μ_y + C₁)(2 σ_xy + C₂) / ((μ_x² + μ_y² + C₁)(σ_x² + σ_y² + C₂))`,
///
/// with `C₁ = (0.01)²` and `C₂ = (0.03)²` (the paper's constants for a dynamic range of 1).
/// 1 for identical images; symmetric in its arguments.
///
/// # Shapes
/// - reference, estimate: `[N, C, H, W]`, the same, with `H, W ≥ 11`
/// - output: `N` values
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the shapes differ or an image is smaller than the
/// window; [`GenError::EmptyData`] for no images.
pub fn ssim(reference: Tensor<4>, estimate: Tensor<4>) -> Result<Vec<f64>> {
    check_pair("SSIM", &reference, &estimate, SSIM_WINDOW)?;
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let [n, c, h, w] = reference.dims();
    // Every channel filtered alone: channels become images.
    let x = reference.reshape([n * c, 1, h, w]);
    let y = estimate.reshape([n * c, 1, h, w]);
    let window = gaussian_window(&x.device());
    let filter = |t: Tensor<4>| {
        conv2d(
            t,
            window.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
    };
    let (mean_x, mean_y) = (filter(x.clone()), filter(y.clone()));
    let var_x = filter(x.clone().powi_scalar(2)) - mean_x.clone().powi_scalar(2);
    let var_y = filter(y.clone().powi_scalar(2)) - mean_y.clone().powi_scalar(2);
    let covariance = filter(x * y) - mean_x.clone() * mean_y.clone();
    let numerator =
        (mean_x.clone() * mean_y.clone() * 2.0).add_scalar(C1) * (covariance * 2.0).add_scalar(C2);
    let denominator = (mean_x.powi_scalar(2) + mean_y.powi_scalar(2)).add_scalar(C1)
        * (var_x + var_y).add_scalar(C2);
    let map = (numerator / denominator).reshape([n as i32, -1]);
    to_f64(map.mean_dim(1).reshape([n]))
}

/// The normalised 11×11 Gaussian window, `[1, 1, 11, 11]`.
fn gaussian_window(device: &genmodels_core::burn::tensor::Device) -> Tensor<4> {
    let half = (SSIM_WINDOW / 2) as f64;
    let taps: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * SSIM_WINDOW_SIGMA.powi(2))).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    let weights: Vec<f32> = taps
        .iter()
        .flat_map(|a| taps.iter().map(move |b| (a * b / (total * total)) as f32))
        .collect();
    Tensor::<1>::from_floats(weights.as_slice(), device).reshape([1, 1, SSIM_WINDOW, SSIM_WINDOW])
}

fn check_pair(
    metric: &str,
    reference: &Tensor<4>,
    estimate: &Tensor<4>,
    min_side: usize,
) -> Result<()> {
    let (a, b) = (reference.dims(), estimate.dims());
    if a != b {
        return Err(GenError::ShapeMismatch {
            context: format!("{metric}'s estimate against its reference"),
            expected: format!("{a:?}"),
            actual: format!("{b:?}"),
        });
    }
    if a[0] == 0 {
        return Err(GenError::EmptyData {
            context: format!("{metric}'s images"),
        });
    }
    if a[2] < min_side || a[3] < min_side {
        return Err(GenError::ShapeMismatch {
            context: format!("{metric}'s images (its window is {min_side}×{min_side})"),
            expected: format!("[N, C, H ≥ {min_side}, W ≥ {min_side}]"),
            actual: format!("{a:?}"),
        });
    }
    Ok(())
}

fn to_f64(values: Tensor<1>) -> Result<Vec<f64>> {
    Ok(genmodels_core::batch::to_host(values)?
        .into_iter()
        .map(f64::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use genmodels_core::burn::tensor::Device;
    use genmodels_core::random;

    #[test]
    fn auroc_is_the_probability_that_a_positive_outscores_a_negative() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]).unwrap(), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]).unwrap(), 0.5);
        // scikit-learn's example: labels [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8].
        assert_eq!(auroc(&[0.35, 0.8], &[0.1, 0.4]).unwrap(), 0.75);
        // Against counting every pair, ties at one half.
        let positive = [0.3, 0.5, 0.5, 0.9, 0.1, 0.7];
        let negative = [0.2, 0.5, 0.4, 0.1, 0.6];
        let mut pairs = 0.0;
        for p in positive {
            for n in negative {
                pairs += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let expected = pairs / (positive.len() * negative.len()) as f64;
        assert!((auroc(&positive, &negative).unwrap() - expected).abs() < 1e-12);
        assert!(matches!(
            auroc(&[], &[1.0]),
            Err(GenError::EmptyData { .. })
        ));
        assert!(matches!(
            auroc(&[f64::NAN], &[1.0]),
            Err(GenError::NonFiniteInput { .. })
        ));
    }

    #[test]
    fn psnr_is_ten_log_of_one_over_the_mean_squared_error() {
        let device = Device::flex();
        let reference = Tensor::<4>::zeros([2, 1, 4, 4], &device);
        // An error of 0.1 everywhere: MSE 0.01, 20 dB; the second image identical.
        let estimate = Tensor::cat(
            vec![
                Tensor::<4>::full([1, 1, 4, 4], 0.1, &device),
                Tensor::<4>::zeros([1, 1, 4, 4], &device),
            ],
            0,
        );
        let values = psnr(reference.clone(), estimate).unwrap();
        assert!((values[0] - 20.0).abs() < 1e-4, "{values:?}");
        assert_eq!(values[1], f64::INFINITY);
        assert!(matches!(
            psnr(reference, Tensor::<4>::zeros([2, 1, 4, 5], &device)),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn ssim_is_one_for_identical_images_and_matches_its_closed_form_on_flat_ones() {
        let device = Device::flex();
        let image = random::uniform([3, 2, 16, 16], &mut random::rng(1), &device);
        for value in ssim(image.clone(), image.clone()).unwrap() {
            assert!((value - 1.0).abs() < 1e-5, "{value}");
        }
        // Flat images a and b: no variance, so SSIM = (2ab + C₁) / (a² + b² + C₁).
        let (a, b) = (0.2f64, 0.5f64);
        let flat = |v: f64| Tensor::<4>::full([1, 1, 12, 12], v, &device);
        let c1 = 1e-4;
        let expected = (2.0 * a * b + c1) / (a * a + b * b + c1);
        let value = ssim(flat(a), flat(b)).unwrap()[0];
        // f32 moments: E[x²] − E[x]² leaves ~1e-6 of variance next to C₂ = 9e-4.
        assert!(
            (value - expected).abs() < 1e-4,
            "{value} against {expected}"
        );
        // Symmetric, and lower the more noise is added.
        let noise = |scale: f64, seed| {
            (image.clone()
                + random::standard_normal([3, 2, 16, 16], &mut random::rng(seed), &device) * scale)
                .clamp(0.0, 1.0)
        };
        let (slightly, badly) = (noise(0.05, 2), noise(0.3, 3));
        let forward = ssim(image.clone(), slightly.clone()).unwrap();
        let backward = ssim(slightly, image.clone()).unwrap();
        let worse = ssim(image.clone(), badly).unwrap();
        for i in 0..3 {
            assert!((forward[i] - backward[i]).abs() < 1e-5);
            assert!(
                worse[i] < forward[i] && forward[i] < 1.0,
                "{worse:?} {forward:?}"
            );
        }
        assert!(matches!(
            ssim(flat(a).narrow(2, 0, 8), flat(b).narrow(2, 0, 8)),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
}

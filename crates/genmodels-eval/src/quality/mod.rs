//! Offline sample-quality metrics, judged by a small MNIST classifier.
//!
//! The Fréchet Inception Distance and the Inception Score need an Inception network, which is
//! neither small nor available offline. genmodels brings its own judge instead: a LeNet-like
//! digit [`Classifier`], trained by [`train_classifier`] on the bundled MNIST training split
//! and shipped with `genmodels-data` (`genmodels_data::mnist_judge`). A [`Judge`] runs it on
//! images and keeps, per image, the 128 penultimate activations (the *features*) and the
//! softmax over the ten digits ([`JudgedImages`]). From these:
//!
//! - **MNIST-FID** ([`frechet_distance`]): the Fréchet distance between Gaussians fitted to the
//!   features of the samples and of real images ([`GaussianFit`]),
//!   `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})`. Lower is better.
//! - **Inception-style score** ([`inception_score`]): `exp E_x KL(p(y|x) ‖ p(y))`, between 1
//!   (every image gets the same class distribution) and 10 (confident predictions spread
//!   evenly over the digits). Higher is better.
//! - **Mode coverage** ([`ModeCoverage`]): how many digits the samples hit, and how far the
//!   histogram of predicted digits is from uniform.
//!
//! [`SampleQuality::measure`] computes all three. None of the numbers is comparable with the
//! Inception-based ones of papers; they compare models of this library with each other and
//! with the floor that real images reach (real test against real training images).
//!
//! The matrix square roots come from a cyclic Jacobi eigendecomposition in `f64`
//! ([`linalg`]), which stays accurate on the singular covariances of small sample sets.

mod classifier;
pub mod linalg;
mod sharpness;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use genmodels_core::error::{GenError, Result};

pub use classifier::{
    Classifier, ClassifierConfig, ClassifierReport, ClassifierTrainingConfig, Judge,
    classifier_accuracy, train_classifier,
};
pub use sharpness::{LaplacianEnergy, gaussian_blur};

/// Number of classes the judge tells apart: the ten digits.
pub const CLASSES: usize = 10;

/// What the judge saw in a set of images: per image, the penultimate-layer features and the
/// softmax probabilities of the ten digits. Never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedImages {
    features: Vec<f64>,
    probabilities: Vec<f64>,
    len: usize,
    feature_dim: usize,
}

impl JudgedImages {
    /// Wraps features (`len × feature_dim`, row-major) and probabilities (`len × 10`).
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for no images; [`GenError::ShapeMismatch`] when the lengths do
    /// not agree; [`GenError::NonFiniteInput`] for NaN or ±∞; [`GenError::ValueOutOfRange`]
    /// for a probability outside `[0, 1]`.
    pub fn new(features: Vec<f64>, probabilities: Vec<f64>, feature_dim: usize) -> Result<Self> {
        let len = probabilities.len() / CLASSES;
        if len == 0 {
            return Err(GenError::EmptyData {
                context: "judged images".into(),
            });
        }
        if probabilities.len() != len * CLASSES {
            return Err(GenError::shape(
                "judged class probabilities",
                format!("a multiple of {CLASSES}"),
                probabilities.len(),
            ));
        }
        if feature_dim == 0 || features.len() != len * feature_dim {
            return Err(GenError::shape(
                "judged features",
                format!("{len} × {feature_dim} values"),
                features.len(),
            ));
        }
        if features
            .iter()
            .chain(&probabilities)
            .any(|v| !v.is_finite())
        {
            return Err(GenError::NonFiniteInput {
                context: "judged images".into(),
            });
        }
        if let Some(&p) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(GenError::ValueOutOfRange {
                context: "judged class probabilities".into(),
                expected: "[0, 1]".into(),
                found: p as f32,
            });
        }
        Ok(Self {
            features,
            probabilities,
            len,
            feature_dim,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a judged set holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Features per image.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// All features, `len × feature_dim`, row-major.
    pub fn features(&self) -> &[f64] {
        &self.features
    }

    /// All class probabilities, `len × 10`, row-major.
    pub fn probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// The features of image `i`. Panics when `i ≥ len`, like slice indexing.
    pub fn feature_row(&self, i: usize) -> &[f64] {
        &self.features[i * self.feature_dim..(i + 1) * self.feature_dim]
    }

    /// The class probabilities of image `i`. Panics when `i ≥ len`, like slice indexing.
    pub fn probability_row(&self, i: usize) -> &[f64] {
        &self.probabilities[i * CLASSES..(i + 1) * CLASSES]
    }

    /// Appends the images of `other`.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when the feature dimensions differ.
    pub fn append(&mut self, other: JudgedImages) -> Result<()> {
        if other.feature_dim != self.feature_dim {
            return Err(GenError::shape(
                "appending judged images (features per image)",
                self.feature_dim,
                other.feature_dim,
            ));
        }
        self.features.extend(other.features);
        self.probabilities.extend(other.probabilities);
        self.len += other.len;
        Ok(())
    }

    /// The most probable digit of each image (the lowest one on a tie).
    pub fn predicted_classes(&self) -> Vec<usize> {
        self.probabilities
            .chunks_exact(CLASSES)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |best, (c, &p)| {
                        if p > best.1 { (c, p) } else { best }
                    })
                    .0
            })
            .collect()
    }
}

/// A Gaussian fitted to feature vectors: their mean and unbiased covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianFit {
    /// The mean, `d` values.
    pub mean: Vec<f64>,
    /// The covariance `Σ = (1/(n−1)) Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ`, `d × d`, row-major.
    pub covariance: Vec<f64>,
}

impl GaussianFit {
    /// Fits `n` feature vectors of dimension `d`, row-major in `features`.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for fewer than two vectors (no covariance);
    /// [`GenError::ShapeMismatch`] when `features` does not hold `n × d` values;
    /// [`GenError::NonFiniteInput`] for NaN or ±∞.
    pub fn fit(features: &[f64], n: usize, d: usize) -> Result<Self> {
        if n < 2 {
            return Err(GenError::EmptyData {
                context: format!("a Gaussian fit needs at least 2 feature vectors, got {n}"),
            });
        }
        if d == 0 || features.len() != n * d {
            return Err(GenError::shape(
                "Gaussian fit features",
                format!("{n} × {d} values"),
                features.len(),
            ));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: "Gaussian fit features".into(),
            });
        }
        let mut mean = vec![0.0; d];
        for row in features.chunks_exact(d) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        // Two passes (centre, then multiply) avoid the cancellation of E[xxᵀ] − μμᵀ.
        let mut covariance = vec![0.0; d * d];
        let mut centred = vec![0.0; d];
        for row in features.chunks_exact(d) {
            for ((c, &x), &m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = x - m;
            }
            for i in 0..d {
                let ci = centred[i];
                if ci == 0.0 {
                    continue;
                }
                for (cov, &cj) in covariance[i * d + i..(i + 1) * d]
                    .iter_mut()
                    .zip(&centred[i..])
                {
                    *cov += ci * cj;
                }
            }
        }
        let scale = 1.0 / (n - 1) as f64;
        for i in 0..d {
            for j in i..d {
                let v = covariance[i * d + j] * scale;
                covariance[i * d + j] = v;
                covariance[j * d + i] = v;
            }
        }
        Ok(Self { mean, covariance })
    }

    /// Fits the features of judged images.
    ///
    /// # Errors
    /// As [`GaussianFit::fit`]: at least two images are needed.
    pub fn of(judged: &JudgedImages) -> Result<Self> {
        Self::fit(judged.features(), judged.len(), judged.feature_dim())
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    fn check(&self, which: &str) -> Result<()> {
        let d = self.dim();
        if d == 0 || self.covariance.len() != d * d {
            return Err(GenError::shape(
                format!("{which} Gaussian covariance"),
                format!("{d} × {d} values"),
                self.covariance.len(),
            ));
        }
        if self
            .mean
            .iter()
            .chain(&self.covariance)
            .any(|v| !v.is_finite())
        {
            return Err(GenError::NonFiniteInput {
                context: format!("{which} Gaussian"),
            });
        }
        Ok(())
    }
}

/// The Fréchet distance between two Gaussians (the squared 2-Wasserstein distance):
///
/// ```text
/// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})
/// ```
///
/// `Σ₁^{1/2}` comes from the eigendecomposition of `Σ₁`; the symmetric product `Σ₁^{1/2} Σ₂
/// Σ₁^{1/2}` has the same eigenvalues as `Σ₁ Σ₂` but, unlike it, is symmetric, so its
/// eigenvalues are real and the square-root trace is the sum of their square roots. Small
/// negative eigenvalues from rounding are clamped to 0, and so is a result that rounding
/// alone makes slightly negative.
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the dimensions differ or a covariance is not `d × d`;
/// [`GenError::NonFiniteInput`] for NaN or ±∞; [`GenError::ValueOutOfRange`] when a
/// covariance is not symmetric positive semi-definite (beyond rounding).
pub fn frechet_distance(a: &GaussianFit, b: &GaussianFit) -> Result<f64> {
    a.check("first")?;
    b.check("second")?;
    let d = a.dim();
    if b.dim() != d {
        return Err(GenError::shape("Fréchet distance dimensions", d, b.dim()));
    }
    let eig_a = checked_psd_eigen(&a.covariance, d, "first")?;
    checked_psd_eigen(&b.covariance, d, "second")?;
    let sqrt_a = eig_a.reconstruct_with(|l| l.max(0.0).sqrt());
    let product = linalg::matmul(&linalg::matmul(&sqrt_a, &b.covariance, d), &sqrt_a, d);
    let sqrt_trace: f64 = linalg::symmetric_eigen(&product, d)?
        .values
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    let (trace_a, trace_b) = (trace(&a.covariance), trace(&b.covariance));
    let distance = mean_term + trace_a + trace_b - 2.0 * sqrt_trace;
    // The terms cancel when the Gaussians agree, leaving rounding of the traces' order.
    let rounding = 1e-9 * (mean_term + trace_a + trace_b).max(f64::MIN_POSITIVE);
    if distance < -rounding {
        return Err(GenError::ValueOutOfRange {
            context: "Fréchet distance".into(),
            expected: "≥ 0 (covariances that are positive semi-definite)".into(),
            found: distance as f32,
        });
    }
    Ok(distance.max(0.0))
}

/// The eigendecomposition of a covariance, checked to be symmetric positive semi-definite up
/// to rounding.
fn checked_psd_eigen(c: &[f64], d: usize, which: &str) -> Result<linalg::SymmetricEigen> {
    let scale = c.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let tolerance = 1e-9 * scale.max(f64::MIN_POSITIVE);
    for i in 0..d {
        for j in i + 1..d {
            let asymmetry = (c[i * d + j] - c[j * d + i]).abs();
            if asymmetry > tolerance {
                return Err(GenError::ValueOutOfRange {
                    context: format!("{which} Gaussian covariance"),
                    expected: "a symmetric matrix (|Σ_ij − Σ_ji| ≈ 0)".into(),
                    found: asymmetry as f32,
                });
            }
        }
    }
    let eig = linalg::symmetric_eigen(c, d)?;
    let largest = eig.values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let smallest = eig.values.iter().copied().fold(f64::INFINITY, f64::min);
    if smallest < -1e-9 * largest.max(f64::MIN_POSITIVE) {
        return Err(GenError::ValueOutOfRange {
            context: format!("{which} Gaussian covariance eigenvalues"),
            expected: "≥ 0 (a positive semi-definite matrix)".into(),
            found: smallest as f32,
        });
    }
    Ok(eig)
}

/// The Inception-style score `exp E_x[KL(p(y|x) ‖ p(y))]` of judged images, with `p(y)` the
/// mean of `p(y|x)` over the set.
///
/// It is 1 when every image gets the same class distribution and at most 10 (the number of
/// classes), reached when each image is classified with certainty and the classes are used
/// equally often. Terms with `p(y|x) = 0` contribute 0 (`0 · log 0 = 0`).
pub fn inception_score(judged: &JudgedImages) -> f64 {
    let n = judged.len() as f64;
    let mut marginal = [0.0; CLASSES];
    for row in judged.probabilities().chunks_exact(CLASSES) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += p / n;
        }
    }
    let mean_kl = judged
        .probabilities()
        .chunks_exact(CLASSES)
        .map(|row| {
            row.iter()
                .zip(&marginal)
                .filter(|(p, _)| **p > 0.0)
                // p(y) ≥ p(y|x)/n > 0 wherever p(y|x) > 0, so the logarithm is finite.
                .map(|(&p, &m)| p * (p.ln() - m.ln()))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    mean_kl.exp()
}

/// Which digits a set of samples covers, by the judge's predicted class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeCoverage {
    /// Classes that received at least `hit_threshold` samples.
    pub classes_hit: usize,
    /// Number of classes (10).
    pub classes: usize,
    /// Samples predicted as each class.
    pub histogram: Vec<usize>,
    /// `KL(histogram / n ‖ uniform)` in nats: 0 for a perfectly even spread, `ln 10 ≈ 2.303`
    /// when every sample is one digit.
    pub kl_to_uniform: f64,
    /// Samples a class needs to count as hit: `max(1, ⌈0.1 · n / 10⌉)`, a tenth of its share
    /// under a uniform spread.
    pub hit_threshold: usize,
}

impl ModeCoverage {
    /// The coverage of judged images.
    ///
    /// A class counts as hit when it receives at least 10% of its uniform share of the `n`
    /// samples, `max(1, ⌈0.1 · n / 10⌉)` of them, so a handful of stray misclassifications
    /// does not count as covering a digit the model never draws.
    pub fn of(judged: &JudgedImages) -> Self {
        let mut histogram = vec![0usize; CLASSES];
        for class in judged.predicted_classes() {
            histogram[class] += 1;
        }
        let n = judged.len();
        // ⌈0.1 · n / 10⌉ = ⌈n / 100⌉ in integers.
        let hit_threshold = n.div_ceil(10 * CLASSES).max(1);
        let classes_hit = histogram.iter().filter(|&&h| h >= hit_threshold).count();
        let uniform = 1.0 / CLASSES as f64;
        let kl_to_uniform = histogram
            .iter()
            .filter(|&&h| h > 0)
            .map(|&h| {
                let q = h as f64 / n as f64;
                q * (q / uniform).ln()
            })
            .sum();
        Self {
            classes_hit,
            classes: CLASSES,
            histogram,
            kl_to_uniform,
            hit_threshold,
        }
    }
}

/// The three numbers for a set of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleQuality {
    /// MNIST-FID of the samples against the reference images (lower is better).
    pub fid: f64,
    /// Inception-style score of the samples (higher is better, at most 10).
    pub inception_score: f64,
    /// Which digits the samples cover.
    pub coverage: ModeCoverage,
}

impl SampleQuality {
    /// Measures `samples` against `reference` (real images, e.g. the test split).
    ///
    /// # Errors
    /// [`GenError::EmptyData`] when either set holds fewer than two images;
    /// [`GenError::ShapeMismatch`] when their feature dimensions differ.
    pub fn measure(samples: &JudgedImages, reference: &JudgedImages) -> Result<Self> {
        Self::measure_against(samples, &GaussianFit::of(reference)?)
    }

    /// Measures `samples` against an already fitted reference Gaussian (fit the reference
    /// once when scoring several models).
    ///
    /// # Errors
    /// As [`SampleQuality::measure`].
    pub fn measure_against(samples: &JudgedImages, reference: &GaussianFit) -> Result<Self> {
        Ok(Self {
            fid: frechet_distance(&GaussianFit::of(samples)?, reference)?,
            inception_score: inception_score(samples),
            coverage: ModeCoverage::of(samples),
        })
    }
}

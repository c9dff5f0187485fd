//! Linear probes: how much of a class label a representation makes linearly readable.
//!
//! A probe is a multinomial logistic regression trained on a few labelled examples' features
//! and scored by its accuracy on a test set. The features are standardised on the labelled
//! set (each feature to mean 0 and variance 1; a feature constant there is dropped), and the
//! weights `W ∈ ℝ^{D×K}`, bias `b ∈ ℝ^K` minimise the L2-penalised cross-entropy in the
//! convention of scikit-learn's `LogisticRegression(C)`:
//!
//! ```text
//! J(W, b) = ½‖W‖²_F + C Σᵢ −log softmax(Wᵀxᵢ + b)_{yᵢ},
//! ```
//!
//! with the bias not penalised. [`fit_linear_probe`] minimises `J / (C·N)` (the mean
//! cross-entropy plus `‖W‖²_F / (2CN)`, the same minimiser, better scaled) by L-BFGS over the
//! full labelled set: strictly convex, so the optimum is unique and the probe's accuracy
//! depends on the features and the labels only, not on an initialisation or a step size.
//! The two matrix products of each evaluation (`XW` and `Xᵀ(P − Y)`) run on the caller's
//! burn device; the optimiser's vectors live on the host in `f64`.
//!
//! [`labelled_subset`] draws the labelled examples: `n` per class, the same ones for the same
//! seed, and nested (the examples for `n` are the first `n` of those for any larger `n`).
//!
//! Written here rather than taken from a crate: logistic regression by L-BFGS is a hundred
//! lines, and the crates that have it (`linfa-logistic`) bring `ndarray` and `argmin` and run
//! on the host, where the features of a convolutional discriminator (6,272 per image for
//! DCGAN's) want the backend's matrix product.

use std::collections::VecDeque;

use genmodels_core::batch::to_host;
use genmodels_core::burn::tensor::{Device, Tensor, TensorData};
use genmodels_core::{GenError, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Features of a set of examples, on the host: `[N, D]`, row-major, every value finite.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    values: Vec<f32>,
    rows: usize,
    dims: usize,
}

impl FeatureMatrix {
    /// `rows` feature vectors of `dims` values each, row after row.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when `values` does not hold `rows·dims` numbers or
    /// `dims = 0`; [`GenError::NonFiniteInput`] for a NaN or infinite value.
    pub fn new(values: Vec<f32>, rows: usize, dims: usize) -> Result<Self> {
        if dims == 0 || values.len() != rows * dims {
            return Err(GenError::shape(
                "feature matrix",
                format!("{rows}·D values, D ≥ 1"),
                format!("{} values for D = {dims}", values.len()),
            ));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: "probe features".into(),
            });
        }
        Ok(Self { values, rows, dims })
    }

    /// The features in `tensor`.
    ///
    /// # Shapes
    /// - tensor: `[N, D]`
    ///
    /// # Errors
    /// As [`new`](Self::new); [`GenError::Backend`] reading the tensor back.
    pub fn from_tensor(tensor: Tensor<2>) -> Result<Self> {
        let [rows, dims] = tensor.dims();
        Self::new(to_host(tensor)?, rows, dims)
    }

    /// Examples `N`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Features per example `D`.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Example `i`'s features.
    ///
    /// # Panics
    /// When `i ≥ N`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dims..(i + 1) * self.dims]
    }

    /// The rows `indices`, in that order.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for an index out of range.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut values = Vec::with_capacity(indices.len() * self.dims);
        for &i in indices {
            if i >= self.rows {
                return Err(GenError::InvalidConfig(format!(
                    "row {i} of a feature matrix with {} rows",
                    self.rows
                )));
            }
            values.extend_from_slice(self.row(i));
        }
        Ok(Self {
            values,
            rows: indices.len(),
            dims: self.dims,
        })
    }

    /// Appends `more`'s rows (the next batch's features).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when `more` has another number of features.
    pub fn append(&mut self, more: Self) -> Result<()> {
        if more.dims != self.dims {
            return Err(GenError::shape("appended features", self.dims, more.dims));
        }
        self.values.extend(more.values);
        self.rows += more.rows;
        Ok(())
    }
}

/// The labelled examples of a probe, chosen by [`labelled_subset`].
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSubset {
    /// Indices into the pool, ascending.
    pub indices: Vec<usize>,
    /// Examples asked for per class.
    pub requested_per_class: usize,
    /// Examples taken per class: the request, or all a class has when it has fewer.
    pub per_class: Vec<usize>,
}

impl LabelledSubset {
    /// Whether some class had fewer examples than asked for (and gave all it had).
    pub fn clipped(&self) -> bool {
        self.per_class.iter().any(|&n| n < self.requested_per_class)
    }

    /// The fewest examples any class gave.
    pub fn min_per_class(&self) -> usize {
        self.per_class.iter().copied().min().unwrap_or(0)
    }
}

/// `per_class` examples of each of `classes` classes from a pool with labels `labels`, the
/// same for the same seed: each class's examples (in pool order) are shuffled by one
/// generator seeded with `seed`, class 0 first, and the first `per_class` taken. A class
/// with fewer examples gives all of them, and the subset says so
/// ([`LabelledSubset::clipped`]). The shuffle does not depend on `per_class`, so the subsets
/// of one seed are nested.
///
/// # Errors
/// [`GenError::InvalidConfig`] for `per_class = 0` or fewer than 2 classes;
/// [`GenError::InvalidLabels`] for a label `≥ classes`; [`GenError::EmptyData`] for a class
/// without examples.
pub fn labelled_subset(
    labels: &[usize],
    classes: usize,
    per_class: usize,
    seed: u64,
) -> Result<LabelledSubset> {
    if per_class == 0 {
        return Err(GenError::InvalidConfig(
            "a probe needs at least 1 labelled example per class".into(),
        ));
    }
    check_labels(labels, classes)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut indices = Vec::new();
    let mut taken = Vec::with_capacity(classes);
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if members.is_empty() {
            return Err(GenError::EmptyData {
                context: format!("class {class} of the labelled pool"),
            });
        }
        members.shuffle(&mut rng);
        let n = per_class.min(members.len());
        indices.extend_from_slice(&members[..n]);
        taken.push(n);
    }
    indices.sort_unstable();
    Ok(LabelledSubset {
        indices,
        requested_per_class: per_class,
        per_class: taken,
    })
}

fn check_labels(labels: &[usize], classes: usize) -> Result<()> {
    if classes < 2 {
        return Err(GenError::InvalidConfig(format!(
            "a probe tells at least 2 classes apart, not {classes}"
        )));
    }
    match labels.iter().find(|&&y| y >= classes) {
        Some(y) => Err(GenError::InvalidLabels(format!(
            "label {y} is out of range for {classes} classes"
        ))),
        None => Ok(()),
    }
}

/// How a probe is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeOptions {
    /// The inverse penalty `C > 0` of `J(W, b) = ½‖W‖²_F + C Σᵢ ℓᵢ` (scikit-learn's default,
    /// 1): smaller is a stronger penalty.
    pub inverse_penalty: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: usize,
    /// Converged when every partial derivative of `J / (C·N)` is at most this in magnitude.
    pub gradient_tolerance: f64,
    /// Curvature pairs L-BFGS keeps.
    pub history: usize,
}

impl Default for ProbeOptions {
    /// `C = 1`, 1,000 iterations, gradient tolerance `10⁻⁵`, 10 pairs.
    fn default() -> Self {
        Self {
            inverse_penalty: 1.0,
            max_iterations: 1_000,
            gradient_tolerance: 1e-5,
            history: 10,
        }
    }
}

/// A fitted probe: the standardisation of its labelled set and the logistic regression on it.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    /// Per-feature mean of the labelled set, `[D]`.
    mean: Vec<f64>,
    /// Per-feature `1/std` of the labelled set (0 for a feature constant there), `[D]`.
    inverse_std: Vec<f64>,
    /// `[D, K]`, row-major.
    weights: Vec<f64>,
    /// `[K]`.
    bias: Vec<f64>,
    classes: usize,
}

/// A probe and how its fit went.
#[derive(Debug, Clone)]
pub struct ProbeFit {
    /// The probe.
    pub probe: LinearProbe,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether the gradient tolerance was met (otherwise the iterations ran out, or
    /// [`stalled`](Self::stalled)).
    pub converged: bool,
    /// Whether the fit stopped because no step along the search direction lowered the
    /// objective any more: the objective is computed from `f32` products, so near the optimum
    /// its changes fall below their rounding (`~10⁻⁷` relative) before the gradient reaches a
    /// strict tolerance. [`largest_gradient`](Self::largest_gradient) says how close it got.
    pub stalled: bool,
    /// `‖∇(J / (C·N))‖∞` at the end.
    pub largest_gradient: f64,
    /// `J / (C·N)` at the end: the mean cross-entropy plus the penalty, nats.
    pub objective: f64,
}

/// The per-feature mean and inverse standard deviation of `features` (0 where a feature is
/// constant: it carries nothing on this set).
fn standardisation(features: &FeatureMatrix) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (features.rows as f64, features.dims);
    let mut mean = vec![0.0; d];
    for i in 0..features.rows {
        for (m, &v) in mean.iter_mut().zip(features.row(i)) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut variance = vec![0.0; d];
    for i in 0..features.rows {
        for ((s, &v), m) in variance.iter_mut().zip(features.row(i)).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let inverse_std = variance
        .iter()
        .zip(&mean)
        .map(|(s, m)| {
            let std = (s / n).sqrt();
            if std > 1e-7 * (1.0 + m.abs()) {
                1.0 / std
            } else {
                0.0
            }
        })
        .collect();
    (mean, inverse_std)
}

/// `features` standardised by `mean` and `inverse_std`, as a `[N, D]` tensor on `device`.
fn standardised(
    features: &FeatureMatrix,
    mean: &[f64],
    inverse_std: &[f64],
    device: &Device,
) -> Tensor<2> {
    let values: Vec<f32> = features
        .values
        .chunks(features.dims)
        .flat_map(|row| {
            row.iter()
                .zip(mean)
                .zip(inverse_std)
                .map(|((&v, m), s)| ((f64::from(v) - m) * s) as f32)
        })
        .collect();
    Tensor::from_data(
        TensorData::new(values, [features.rows, features.dims]),
        device,
    )
}

/// `x · W` for `W` `[D, K]` row-major on the host: `[N, K]` on the host.
fn products(x: &Tensor<2>, weights: &[f64], dims: usize, classes: usize) -> Result<Vec<f32>> {
    let w: Vec<f32> = weights.iter().map(|&v| v as f32).collect();
    let w = Tensor::<2>::from_data(TensorData::new(w, [dims, classes]), &x.device());
    to_host(x.clone().matmul(w))
}

/// The objective `J / (C·N)` of a standardised set and its gradient.
struct Objective<'a> {
    x: Tensor<2>,
    labels: &'a [usize],
    dims: usize,
    classes: usize,
    /// `1 / (C·N)`.
    penalty: f64,
}

impl Objective<'_> {
    /// The value and gradient at `theta = [W (D·K, row-major), b (K)]`:
    ///
    /// ```text
    /// f = (1/N) Σᵢ (logsumexp(zᵢ) − z_{i,yᵢ}) + (λ/2)‖W‖²,   zᵢ = Wᵀxᵢ + b,  λ = 1/(CN),
    /// ∂f/∂W = Xᵀ(P − Y)/N + λW,   ∂f/∂b = Σᵢ (pᵢ − e_{yᵢ})/N,
    /// ```
    ///
    /// with `P` the softmax of each row of `Z` and `Y` the one-hot labels.
    fn evaluate(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let (d, k) = (self.dims, self.classes);
        let (weights, bias) = theta.split_at(d * k);
        let z = products(&self.x, weights, d, k)?;
        let n = self.labels.len();
        let mut residual = vec![0f32; n * k];
        let mut grad_bias = vec![0.0; k];
        let mut loss = 0.0;
        for (i, &y) in self.labels.iter().enumerate() {
            let logits: Vec<f64> = (0..k).map(|c| f64::from(z[i * k + c]) + bias[c]).collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            let log_sum = max + sum.ln();
            loss += log_sum - logits[y];
            for c in 0..k {
                let p = (logits[c] - log_sum).exp();
                let r = (p - f64::from(u8::from(c == y))) / n as f64;
                residual[i * k + c] = r as f32;
                grad_bias[c] += r;
            }
        }
        let residual = Tensor::<2>::from_data(TensorData::new(residual, [n, k]), &self.x.device());
        let grad_weights = to_host(self.x.clone().transpose().matmul(residual))?;
        let penalty = 0.5 * self.penalty * weights.iter().map(|w| w * w).sum::<f64>();
        let mut gradient: Vec<f64> = grad_weights
            .iter()
            .zip(weights)
            .map(|(&g, &w)| f64::from(g) + self.penalty * w)
            .collect();
        gradient.extend(grad_bias);
        Ok((loss / n as f64 + penalty, gradient))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fits a linear probe to `features` (`[N, D]`) with `labels` in `0..classes` (see the
/// [module docs](self) for the objective), the matrix products on `device`.
///
/// L-BFGS (Nocedal & Wright 2006, Alg. 7.4) with `options.history` curvature pairs and a
/// backtracking line search to the Armijo condition (`c₁ = 10⁻⁴`, halving from a unit step),
/// from `W = 0, b = 0`.
///
/// # Errors
/// [`GenError::EmptyData`] for no examples; [`GenError::ShapeMismatch`] when `labels` and
/// `features` differ in length; [`GenError::InvalidLabels`] and [`GenError::InvalidConfig`]
/// as [`labelled_subset`]; [`GenError::InvalidConfig`] for `C ≤ 0`, no iterations or no
/// history; backend errors.
pub fn fit_linear_probe(
    features: &FeatureMatrix,
    labels: &[usize],
    classes: usize,
    options: &ProbeOptions,
    device: &Device,
) -> Result<ProbeFit> {
    if features.rows == 0 {
        return Err(GenError::EmptyData {
            context: "probe training set".into(),
        });
    }
    if labels.len() != features.rows {
        return Err(GenError::shape("probe labels", features.rows, labels.len()));
    }
    check_labels(labels, classes)?;
    if !(options.inverse_penalty > 0.0 && options.inverse_penalty.is_finite()) {
        return Err(GenError::InvalidConfig(format!(
            "the probe's inverse penalty C must be positive and finite, not {}",
            options.inverse_penalty
        )));
    }
    if options.max_iterations == 0 || options.history == 0 {
        return Err(GenError::InvalidConfig(
            "the probe needs at least 1 iteration and 1 curvature pair".into(),
        ));
    }
    let (mean, inverse_std) = standardisation(features);
    let (d, k) = (features.dims, classes);
    let objective = Objective {
        x: standardised(features, &mean, &inverse_std, device),
        labels,
        dims: d,
        classes: k,
        penalty: 1.0 / (options.inverse_penalty * features.rows as f64),
    };
    let mut theta = vec![0.0; d * k + k];
    let (mut value, mut gradient) = objective.evaluate(&theta)?;
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut iterations = 0;
    let mut converged = false;
    let mut stalled = false;
    while iterations < options.max_iterations {
        if gradient
            .iter()
            .all(|g| g.abs() <= options.gradient_tolerance)
        {
            converged = true;
            break;
        }
        // Two-loop recursion: direction = −H·g.
        let mut q = gradient.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let alpha = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= alpha * y);
            alphas.push(alpha);
        }
        let gamma = match pairs.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            // No curvature yet: a first step of length 1 along −g.
            None => 1.0 / dot(&gradient, &gradient).sqrt().max(1.0),
        };
        q.iter_mut().for_each(|q| *q *= gamma);
        for ((s, y, rho), alpha) in pairs.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            q.iter_mut()
                .zip(s)
                .for_each(|(q, s)| *q += s * (alpha - beta));
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&gradient, &direction);
        if slope >= 0.0 {
            // Not a descent direction (round-off): restart from steepest descent.
            pairs.clear();
            let scale = 1.0 / dot(&gradient, &gradient).sqrt().max(1.0);
            direction = gradient.iter().map(|g| -g * scale).collect();
            slope = dot(&gradient, &direction);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let candidate: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .map(|(t, d)| t + step * d)
                .collect();
            let (candidate_value, candidate_gradient) = objective.evaluate(&candidate)?;
            if candidate_value <= value + 1e-4 * step * slope {
                accepted = Some((candidate, candidate_value, candidate_gradient));
                break;
            }
            step *= 0.5;
        }
        iterations += 1;
        let Some((next, next_value, next_gradient)) = accepted else {
            // No step lowers the objective any more: at the precision of the products.
            stalled = true;
            break;
        };
        let s: Vec<f64> = next.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_gradient
            .iter()
            .zip(&gradient)
            .map(|(a, b)| a - b)
            .collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            pairs.push_back((s, y, 1.0 / sy));
            if pairs.len() > options.history {
                pairs.pop_front();
            }
        }
        (theta, value, gradient) = (next, next_value, next_gradient);
    }
    let largest_gradient = gradient.iter().fold(0f64, |m, g| m.max(g.abs()));
    converged |= largest_gradient <= options.gradient_tolerance;
    let bias = theta.split_off(d * k);
    Ok(ProbeFit {
        probe: LinearProbe {
            mean,
            inverse_std,
            weights: theta,
            bias,
            classes,
        },
        iterations,
        converged,
        stalled,
        largest_gradient,
        objective: value,
    })
}

impl LinearProbe {
    /// The number of classes it tells apart.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The predicted class of each example, `argmax_k (Wᵀx̃ + b)_k` of the features `x̃`
    /// standardised as the labelled set was (ties to the lower class).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for features of another width than the labelled set's.
    pub fn predict(&self, features: &FeatureMatrix, device: &Device) -> Result<Vec<usize>> {
        let d = self.mean.len();
        if features.dims != d {
            return Err(GenError::shape("probe features", d, features.dims));
        }
        if features.rows == 0 {
            return Ok(Vec::new());
        }
        let x = standardised(features, &self.mean, &self.inverse_std, device);
        let k = self.classes;
        let z = products(&x, &self.weights, d, k)?;
        Ok(z.chunks(k)
            .map(|row| {
                let mut best = 0;
                for c in 1..k {
                    if f64::from(row[c]) + self.bias[c] > f64::from(row[best]) + self.bias[best] {
                        best = c;
                    }
                }
                best
            })
            .collect())
    }

    /// The fraction of examples whose predicted class is their label.
    ///
    /// # Errors
    /// As [`predict`](Self::predict); [`GenError::ShapeMismatch`] when `labels` and
    /// `features` differ in length; [`GenError::EmptyData`] for no examples.
    pub fn accuracy(
        &self,
        features: &FeatureMatrix,
        labels: &[usize],
        device: &Device,
    ) -> Result<f64> {
        if labels.len() != features.rows {
            return Err(GenError::shape("probe labels", features.rows, labels.len()));
        }
        if labels.is_empty() {
            return Err(GenError::EmptyData {
                context: "probe test set".into(),
            });
        }
        let predicted = self.predict(features, device)?;
        let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
        Ok(correct as f64 / labels.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::StandardNormal;

    fn device() -> Device {
        Device::flex()
    }

    /// `per_class` points of each class, class `c` around `centres[c]` with unit noise.
    fn blobs(centres: &[Vec<f32>], per_class: usize, seed: u64) -> (FeatureMatrix, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = centres[0].len();
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..per_class * centres.len() {
            let c = i % centres.len();
            labels.push(c);
            values.extend(
                centres[c]
                    .iter()
                    .map(|&m| m + rng.sample::<f32, _>(StandardNormal)),
            );
        }
        (FeatureMatrix::new(values, labels.len(), d).unwrap(), labels)
    }

    #[test]
    fn separable_blobs_are_read_perfectly() {
        // Three classes 8 standard deviations apart in 5 dimensions.
        let centres = vec![
            vec![8.0, 0.0, 0.0, 0.0, 3.0],
            vec![0.0, 8.0, 0.0, 0.0, 3.0],
            vec![0.0, 0.0, 8.0, 0.0, 3.0],
        ];
        let (train, train_labels) = blobs(&centres, 30, 1);
        let (test, test_labels) = blobs(&centres, 300, 2);
        let fit = fit_linear_probe(
            &train,
            &train_labels,
            3,
            &ProbeOptions::default(),
            &device(),
        )
        .unwrap();
        assert!(fit.converged, "{} iterations", fit.iterations);
        assert!(fit.largest_gradient <= ProbeOptions::default().gradient_tolerance);
        let accuracy = fit.probe.accuracy(&test, &test_labels, &device()).unwrap();
        assert!(accuracy >= 0.995, "{accuracy}");
    }

    #[test]
    fn the_fit_is_the_penalised_optimum() {
        // Overlapping blobs: the optimum is finite and not trivially separable.
        let centres = vec![
            vec![1.0, 0.0, -0.5],
            vec![0.0, 1.0, 0.5],
            vec![0.5, 0.5, 0.0],
        ];
        let (x, labels) = blobs(&centres, 40, 3);
        let options = ProbeOptions {
            inverse_penalty: 0.3,
            ..ProbeOptions::default()
        };
        let fit = fit_linear_probe(&x, &labels, 3, &options, &device()).unwrap();
        assert!(fit.converged);
        // The gradient of J/(CN), recomputed independently in f64, vanishes there.
        let p = &fit.probe;
        let (n, d, k) = (x.rows(), x.dims(), 3);
        let lambda = 1.0 / (options.inverse_penalty * n as f64);
        let mut grad_w = vec![0.0; d * k];
        let mut grad_b = vec![0.0; k];
        for (i, &y) in labels.iter().enumerate() {
            let xs: Vec<f64> = (0..d)
                .map(|j| (f64::from(x.row(i)[j]) - p.mean[j]) * p.inverse_std[j])
                .collect();
            let z: Vec<f64> = (0..k)
                .map(|c| p.bias[c] + (0..d).map(|j| xs[j] * p.weights[j * k + c]).sum::<f64>())
                .collect();
            let norm: f64 = z.iter().map(|v| v.exp()).sum();
            for c in 0..k {
                let r = (z[c].exp() / norm - f64::from(u8::from(c == y))) / n as f64;
                grad_b[c] += r;
                for j in 0..d {
                    grad_w[j * k + c] += r * xs[j];
                }
            }
        }
        for (g, w) in grad_w.iter_mut().zip(&p.weights) {
            *g += lambda * w;
        }
        let largest = grad_w
            .iter()
            .chain(&grad_b)
            .fold(0f64, |m, g| m.max(g.abs()));
        assert!(largest < 1e-4, "gradient {largest}");
        // A stronger penalty gives smaller weights.
        let strong = fit_linear_probe(
            &x,
            &labels,
            3,
            &ProbeOptions {
                inverse_penalty: 0.01,
                ..options
            },
            &device(),
        )
        .unwrap();
        let norm = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>();
        assert!(norm(&strong.probe.weights) < norm(&p.weights));
    }

    #[test]
    fn features_that_say_nothing_give_chance() {
        // Every example has the same features: the probe can only guess one class.
        let labels: Vec<usize> = (0..40).map(|i| i % 4).collect();
        let same = FeatureMatrix::new([0.5f32, -2.0, 7.0].repeat(40), 40, 3).unwrap();
        let fit = fit_linear_probe(&same, &labels, 4, &ProbeOptions::default(), &device()).unwrap();
        assert!(fit.converged);
        assert_eq!(fit.probe.accuracy(&same, &labels, &device()).unwrap(), 0.25);
        // Noise independent of the class: chance on fresh examples, 0.25 ± 3.5 standard
        // errors (√(0.25·0.75/2000) ≈ 0.0097).
        let noise = |rows: usize, seed: u64| {
            let mut rng = StdRng::seed_from_u64(seed);
            let values = (0..rows * 6)
                .map(|_| rng.sample::<f32, _>(StandardNormal))
                .collect();
            FeatureMatrix::new(values, rows, 6).unwrap()
        };
        let train_labels: Vec<usize> = (0..400).map(|i| i % 4).collect();
        let test_labels: Vec<usize> = (0..2000).map(|i| i % 4).collect();
        let fit = fit_linear_probe(
            &noise(400, 5),
            &train_labels,
            4,
            &ProbeOptions::default(),
            &device(),
        )
        .unwrap();
        let accuracy = fit
            .probe
            .accuracy(&noise(2000, 6), &test_labels, &device())
            .unwrap();
        assert!((accuracy - 0.25).abs() < 0.035, "{accuracy}");
    }

    #[test]
    fn subsets_are_balanced_seeded_nested_and_clipped() {
        // Class 2 has 5 examples, the others 20.
        let labels: Vec<usize> = (0..65).map(|i| if i < 5 { 2 } else { i % 2 }).collect();
        let small = labelled_subset(&labels, 3, 3, 9).unwrap();
        assert_eq!(small.per_class, [3, 3, 3]);
        assert!(!small.clipped());
        assert!(small.indices.windows(2).all(|w| w[0] < w[1]));
        for class in 0..3 {
            let count = small
                .indices
                .iter()
                .filter(|&&i| labels[i] == class)
                .count();
            assert_eq!(count, 3);
        }
        assert_eq!(small, labelled_subset(&labels, 3, 3, 9).unwrap());
        assert_ne!(
            small.indices,
            labelled_subset(&labels, 3, 3, 10).unwrap().indices
        );
        let large = labelled_subset(&labels, 3, 10, 9).unwrap();
        assert!(small.indices.iter().all(|i| large.indices.contains(i)));
        // More than class 2 has: all 5 of it, said so.
        assert_eq!(large.per_class, [10, 10, 5]);
        assert!(large.clipped());
        assert_eq!(large.min_per_class(), 5);
        let all = labelled_subset(&labels, 3, 1_000, 9).unwrap();
        assert_eq!(all.indices, (0..65).collect::<Vec<_>>());
        assert!(matches!(
            labelled_subset(&labels, 3, 0, 9),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(matches!(
            labelled_subset(&labels, 4, 3, 9),
            Err(GenError::EmptyData { .. })
        ));
        assert!(matches!(
            labelled_subset(&labels, 2, 3, 9),
            Err(GenError::InvalidLabels(_))
        ));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            FeatureMatrix::new(vec![1.0; 5], 2, 3),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            FeatureMatrix::new(vec![1.0, f32::NAN], 1, 2),
            Err(GenError::NonFiniteInput { .. })
        ));
        let x = FeatureMatrix::new(vec![0.0, 1.0, 2.0, 3.0], 2, 2).unwrap();
        let options = ProbeOptions::default();
        assert!(matches!(
            fit_linear_probe(&x, &[0], 2, &options, &device()),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            fit_linear_probe(&x, &[0, 2], 2, &options, &device()),
            Err(GenError::InvalidLabels(_))
        ));
        assert!(matches!(
            fit_linear_probe(&x, &[0, 1], 1, &options, &device()),
            Err(GenError::InvalidConfig(_))
        ));
        let no_penalty = ProbeOptions {
            inverse_penalty: 0.0,
            ..options
        };
        assert!(matches!(
            fit_linear_probe(&x, &[0, 1], 2, &no_penalty, &device()),
            Err(GenError::InvalidConfig(_))
        ));
        let fit = fit_linear_probe(&x, &[0, 1], 2, &options, &device()).unwrap();
        let narrow = FeatureMatrix::new(vec![0.0; 3], 1, 3).unwrap();
        assert!(matches!(
            fit.probe.predict(&narrow, &device()),
            Err(GenError::ShapeMismatch { .. })
        ));
        let mut grown = x.clone();
        grown.append(x.select(&[1]).unwrap()).unwrap();
        assert_eq!(grown.rows(), 3);
        assert_eq!(grown.row(2), [2.0, 3.0]);
        assert!(grown.append(narrow).is_err());
        assert!(x.select(&[2]).is_err());
    }
}

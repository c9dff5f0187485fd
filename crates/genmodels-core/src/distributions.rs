//! Log-densities and divergences shared by the model families, in numerically stable forms.
//!
//! All functions take flattened `[N, D]` tensors and return one value per row, `[N]`, summed
//! over the `D` dimensions, in nats.

use burn::tensor::Tensor;
use std::f64::consts::PI;

/// `log(1 + eˣ)` without overflow: `max(x, 0) + log1p(e^{−|x|})`.
pub fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Bernoulli log-probability of `targets` under `logits`, summed over dimension 1.
///
/// `log p(x) = Σ_d x_d·l_d − softplus(l_d)`, which equals
/// `x·log σ(l) + (1 − x)·log(1 − σ(l))` without ever taking the log of 0.
///
/// On flex with `f32` tensors this is one fused kernel with its own backward pass,
/// `∂/∂l = x − σ(l)` and `∂/∂x = l` (see [`BernoulliLogProbBackend`]); elsewhere it is
/// [`bernoulli_log_prob_composed`] (tested to agree).
///
/// # Shapes
/// - logits, targets: `[N, D]`
/// - output: `[N]`
///
/// # Panics
/// If the two shapes differ.
pub fn bernoulli_log_prob(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    assert_eq!(
        logits.dims(),
        targets.dims(),
        "Bernoulli logits and targets must have the same shape"
    );
    #[cfg(feature = "flex")]
    if flex_kernel::applies(&logits, &targets) {
        return flex_kernel::bernoulli_log_prob(logits, targets);
    }
    bernoulli_log_prob_composed(logits, targets)
}

/// [`bernoulli_log_prob`] from burn's differentiable operations, for every backend.
///
/// # Shapes
/// As [`bernoulli_log_prob`].
pub fn bernoulli_log_prob_composed(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (targets * logits.clone() - softplus(logits))
        .sum_dim(1)
        .squeeze_dim(1)
}

#[cfg(feature = "flex")]
pub use flex_kernel::BernoulliLogProbBackend;

#[cfg(feature = "flex")]
mod flex_kernel {
    //! The fused Bernoulli log-probability on flex, and its autodiff node.

    use crate::flex_support::{flex_tensor, is_flex_f32, values};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    /// Rows per parallel task: a few thousand values each.
    const ROWS_PER_TASK: usize = 4;

    /// `Σ_d x_d·l_d − softplus(l_d)` per row as a backend operation with its own backward
    /// pass; implemented for flex and autodiff-over-flex. Called through
    /// [`super::bernoulli_log_prob`].
    #[backend_extension(Flex, Autodiff)]
    pub trait BernoulliLogProbBackend: Backend {
        /// `[N, D]` logits and targets → `[N]`.
        fn bernoulli_log_prob(
            logits: FloatTensor<Self>,
            targets: FloatTensor<Self>,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies(logits: &Tensor<2>, targets: &Tensor<2>) -> bool {
        is_flex_f32(&logits.device(), &[logits.dtype(), targets.dtype()])
    }

    pub(super) fn bernoulli_log_prob(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        Tensor::from_dispatch(
            <burn::backend::Dispatch as BernoulliLogProbBackend>::bernoulli_log_prob(
                logits.into_dispatch(),
                targets.into_dispatch(),
            ),
        )
    }

    /// One pass over the rows: each row's log-probability and, where the backward pass will
    /// need it, `x − σ(l)`. `softplus(l) = max(l, 0) + log1p(e^{−|l|})` and `σ(l)` share
    /// `e^{−|l|}`.
    fn forward(logits: &[f32], targets: &[f32], width: usize, keep_gradient: bool) -> Forward {
        let rows = logits.len() / width.max(1);
        let mut log_probs = vec![0.0f32; rows];
        let mut logit_gradient = if keep_gradient {
            vec![0.0f32; logits.len()]
        } else {
            Vec::new()
        };
        let row_sum = |r: usize, gradient_row: Option<&mut [f32]>| {
            let span = r * width..(r + 1) * width;
            let (l, x) = (&logits[span.clone()], &targets[span]);
            let mut sum = 0.0f64;
            match gradient_row {
                Some(gradient_row) => {
                    for ((&l, &x), g) in l.iter().zip(x).zip(gradient_row) {
                        let e = (-l.abs()).exp();
                        let sigmoid = if l >= 0.0 {
                            1.0 / (1.0 + e)
                        } else {
                            e / (1.0 + e)
                        };
                        *g = x - sigmoid;
                        sum += f64::from(x * l - (l.max(0.0) + e.ln_1p()));
                    }
                }
                None => {
                    for (&l, &x) in l.iter().zip(x) {
                        let e = (-l.abs()).exp();
                        sum += f64::from(x * l - (l.max(0.0) + e.ln_1p()));
                    }
                }
            }
            sum as f32
        };
        if keep_gradient {
            log_probs
                .par_iter_mut()
                .zip(logit_gradient.par_chunks_mut(width))
                .enumerate()
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(r, (out, gradient_row))| *out = row_sum(r, Some(gradient_row)));
        } else {
            log_probs
                .par_iter_mut()
                .enumerate()
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(r, out)| *out = row_sum(r, None));
        }
        Forward {
            log_probs,
            logit_gradient,
        }
    }

    struct Forward {
        log_probs: Vec<f32>,
        /// `x − σ(l)`, or empty.
        logit_gradient: Vec<f32>,
    }

    impl BernoulliLogProbBackend for Flex {
        fn bernoulli_log_prob(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
            let shape = logits.layout().shape().clone();
            let forward = forward(&values(&logits), &values(&targets), shape[1], false);
            flex_tensor(forward.log_probs, [shape[0]])
        }
    }

    impl<C: CheckpointStrategy> BernoulliLogProbBackend for Autodiff<Flex, C> {
        fn bernoulli_log_prob(
            logits: FloatTensor<Self>,
            targets: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            let (logits_tracked, targets_tracked) = (logits.is_tracked(), targets.is_tracked());
            let (logits, logits_node) = logits.into_parts();
            let (targets, targets_node) = targets.into_parts();
            let shape = logits.layout().shape().clone();
            let (logit_values, target_values) = (values(&logits), values(&targets));
            let forward = forward(&logit_values, &target_values, shape[1], logits_tracked);
            let output = flex_tensor(forward.log_probs, [shape[0]]);
            match BernoulliNode
                .prepare::<C>([logits_node, targets_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let state = NodeState {
                        width: shape[1],
                        logit_gradient: logits_tracked.then_some(forward.logit_gradient),
                        logits: targets_tracked.then(|| logit_values.into_owned()),
                    };
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct BernoulliNode;

    #[derive(Clone, Debug)]
    struct NodeState {
        width: usize,
        /// `x − σ(l)`, when the logits are tracked.
        logit_gradient: Option<Vec<f32>>,
        /// `l`, when the targets are tracked.
        logits: Option<Vec<f32>>,
    }

    /// Each row's upstream gradient times a per-value factor, `[N, D]`.
    fn scale_rows(mut gradient: Vec<f32>, upstream: &[f32], width: usize) -> FlexTensor {
        gradient
            .par_chunks_mut(width)
            .zip(upstream.par_iter())
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(row, &g)| row.iter_mut().for_each(|v| *v *= g));
        flex_tensor(gradient, [upstream.len(), width])
    }

    impl Backward<Flex, 2> for BernoulliNode {
        type State = NodeState;

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [logits_parent, targets_parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            let upstream = values(&upstream);
            let NodeState {
                width,
                logit_gradient,
                logits,
            } = ops.state;
            if let (Some(parent), Some(factor)) = (logits_parent, logit_gradient) {
                grads.register::<Flex>(parent.id, scale_rows(factor, &upstream, width));
            }
            if let (Some(parent), Some(logits)) = (targets_parent, logits) {
                grads.register::<Flex>(parent.id, scale_rows(logits, &upstream, width));
            }
        }
    }
}

/// Diagonal Gaussian log-density `log N(x; μ, diag(e^{log σ²}))`, summed over dimension 1.
///
/// # Shapes
/// - x, mean, log_var: `[N, D]` (`log_var` may also broadcast from `[1, D]`)
/// - output: `[N]`
pub fn gaussian_log_prob(x: Tensor<2>, mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    let sq = (x - mean).powi_scalar(2) * log_var.clone().neg().exp();
    ((sq + log_var + (2.0 * PI).ln()) * -0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// Standard normal log-density `log N(z; 0, I)`, summed over dimension 1.
///
/// # Shapes
/// - z: `[N, D]`
/// - output: `[N]`
pub fn standard_normal_log_prob(z: Tensor<2>) -> Tensor<1> {
    ((z.powi_scalar(2) + (2.0 * PI).ln()) * -0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// `KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (σ²_d + μ²_d − 1 − log σ²_d)`, in closed form.
///
/// # Shapes
/// - mean, log_var: `[N, D]`
/// - output: `[N]`
pub fn kl_diagonal_gaussian_to_standard_normal(mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    ((log_var.clone().exp() + mean.powi_scalar(2) - 1.0 - log_var) * 0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// `log Σ_i e^{x_i}` over dimension `dim` (0 or 1) of a matrix, shifted by the maximum so no
/// term overflows.
///
/// # Shapes
/// - x: `[A, B]`
/// - output: `[B]` for `dim = 0`, `[A]` for `dim = 1`
pub fn log_sum_exp(x: Tensor<2>, dim: usize) -> Tensor<1> {
    let max = x.clone().max_dim(dim).detach();
    let shifted = (x - max.clone()).exp().sum_dim(dim).log();
    (shifted + max).squeeze_dim(dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::to_host;
    use burn::tensor::{Device, TensorData};

    fn device() -> Device {
        Device::flex()
    }

    fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, [rows, cols]), &device())
    }

    #[test]
    fn bernoulli_log_prob_matches_the_direct_formula_and_stays_finite_for_large_logits() {
        let logits = vec![-3.0f32, 0.0, 2.5, 80.0, -80.0];
        let targets = vec![1.0f32, 0.0, 1.0, 1.0, 1.0];
        let got = to_host(bernoulli_log_prob(
            matrix(logits.clone(), 1, 5),
            matrix(targets.clone(), 1, 5),
        ))
        .unwrap()[0] as f64;
        let expected: f64 = logits
            .iter()
            .zip(&targets)
            .map(|(&l, &x)| {
                let l = l as f64;
                let log_sig = -(1.0 + (-l).exp()).ln();
                let log_one_minus = -(1.0 + l.exp()).ln();
                x as f64 * log_sig + (1.0 - x as f64) * log_one_minus
            })
            .sum();
        assert!(got.is_finite());
        assert!((got - expected).abs() < 1e-3, "{got} vs {expected}");
    }

    /// The flex kernel against the composed form: values, and the gradients of logits and
    /// targets through a random upstream gradient, for logits that include ±80, a transposed
    /// (non-contiguous) logits view, and targets tracked or not.
    #[cfg(feature = "flex")]
    #[test]
    fn the_flex_kernel_is_the_composed_form_in_values_and_gradients() {
        use burn::tensor::{Distribution, Tolerance};
        let device = Device::flex().autodiff();
        for track_targets in [false, true] {
            let (rows, width) = (7, 45);
            let mut logit_values: Vec<f32> = Tensor::<2>::random(
                [width, rows],
                Distribution::Normal(0.0, 4.0),
                &Device::flex(),
            )
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
            logit_values[3] = 80.0;
            logit_values[10] = -80.0;
            let logits_t: Tensor<2> =
                Tensor::from_data(TensorData::new(logit_values, [width, rows]), &device)
                    .require_grad();
            let targets: Tensor<2> =
                Tensor::random([rows, width], Distribution::Uniform(0.0, 1.0), &device);
            let targets = if track_targets {
                targets.require_grad()
            } else {
                targets
            };
            let upstream: Tensor<1> =
                Tensor::random([rows], Distribution::Normal(0.0, 1.0), &device);
            assert!(flex_kernel::applies(
                &logits_t.clone().transpose(),
                &targets
            ));
            let run = |f: fn(Tensor<2>, Tensor<2>) -> Tensor<1>| {
                let out = f(logits_t.clone().transpose(), targets.clone());
                let grads = (out.clone() * upstream.clone()).sum().backward();
                (
                    out,
                    logits_t.grad(&grads).expect("logit gradient"),
                    targets.grad(&grads),
                )
            };
            let (out, grad_logits, grad_targets) = run(bernoulli_log_prob);
            let (expected, expected_logits, expected_targets) = run(bernoulli_log_prob_composed);
            let tolerance = Tolerance::rel_abs(1e-5, 1e-4);
            out.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
            grad_logits
                .into_data()
                .assert_approx_eq::<f32>(&expected_logits.into_data(), tolerance);
            assert_eq!(grad_targets.is_some(), track_targets);
            if let (Some(got), Some(expected)) = (grad_targets, expected_targets) {
                got.into_data()
                    .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
            }
        }
        // Without autodiff, too.
        let logits: Tensor<2> =
            Tensor::random([3, 20], Distribution::Normal(0.0, 3.0), &Device::flex());
        let targets: Tensor<2> =
            Tensor::random([3, 20], Distribution::Uniform(0.0, 1.0), &Device::flex());
        bernoulli_log_prob(logits.clone(), targets.clone())
            .into_data()
            .assert_approx_eq::<f32>(
                &bernoulli_log_prob_composed(logits, targets).into_data(),
                Tolerance::rel_abs(1e-5, 1e-4),
            );
    }

    #[test]
    fn log_sum_exp_is_stable_and_correct() {
        let x = matrix(vec![1000.0, 1000.0, -5.0, 0.0], 2, 2);
        let got = to_host(log_sum_exp(x, 1)).unwrap();
        assert!((got[0] as f64 - (1000.0 + 2f64.ln())).abs() < 1e-3);
        let expected = ((-5f64).exp() + 1.0).ln();
        assert!((got[1] as f64 - expected).abs() < 1e-5);
    }

    #[test]
    fn gaussian_log_prob_matches_closed_form() {
        // log N(1; 0, e^{0}) = -0.5 (1 + ln 2π)
        let got = to_host(gaussian_log_prob(
            matrix(vec![1.0], 1, 1),
            matrix(vec![0.0], 1, 1),
            matrix(vec![0.0], 1, 1),
        ))
        .unwrap()[0] as f64;
        assert!((got + 0.5 * (1.0 + (2.0 * PI).ln())).abs() < 1e-5);
        let standard = to_host(standard_normal_log_prob(matrix(vec![1.0], 1, 1))).unwrap()[0];
        assert!((standard as f64 - got).abs() < 1e-6);
    }

    #[test]
    fn analytic_kl_agrees_with_monte_carlo() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mean = [0.7f64, -1.2, 0.0];
        let log_var = [-0.5f64, 0.8, -2.0];
        let kl = to_host(kl_diagonal_gaussian_to_standard_normal(
            matrix(mean.iter().map(|&v| v as f32).collect(), 1, 3),
            matrix(log_var.iter().map(|&v| v as f32).collect(), 1, 3),
        ))
        .unwrap()[0] as f64;

        // KL = E_q[log q(z) − log p(z)], estimated with 200k draws of z ~ q.
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 200_000;
        let mut sum = 0.0;
        for _ in 0..draws {
            for d in 0..3 {
                let sd = (0.5 * log_var[d]).exp();
                let eps: f64 = rng.sample(rand_distr::StandardNormal);
                let z = mean[d] + sd * eps;
                let log_q = -0.5 * ((2.0 * PI).ln() + log_var[d] + eps * eps);
                let log_p = -0.5 * ((2.0 * PI).ln() + z * z);
                sum += log_q - log_p;
            }
        }
        let mc = sum / draws as f64;
        assert!((kl - mc).abs() < 0.02, "analytic {kl} vs Monte Carlo {mc}");
    }
}

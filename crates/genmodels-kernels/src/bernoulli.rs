//! The Bernoulli log-probability, fused on flex, and the softplus it is built from.

use burn::tensor::Tensor;

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
/// `∂/∂l = x − σ(l)` and `∂/∂x = l` (see `BernoulliLogProbBackend`); elsewhere it is
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
    #[cfg(feature = "kernels")]
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

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The fused Bernoulli log-probability on flex, and its autodiff node.

    use crate::sigmoid::{exp, log1p_unit, vectorised};
    use crate::support::{flex_tensor, is_flex_f32, values};
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
    /// need it, `x − σ(l)`.
    fn forward(logits: &[f32], targets: &[f32], width: usize, keep_gradient: bool) -> Forward {
        let rows = logits.len() / width.max(1);
        let mut log_probs = vec![0.0f32; rows];
        let mut logit_gradient = if keep_gradient {
            vec![0.0f32; logits.len()]
        } else {
            Vec::new()
        };
        let span = |r: usize| r * width..(r + 1) * width;
        if keep_gradient {
            log_probs
                .par_iter_mut()
                .zip(logit_gradient.par_chunks_mut(width))
                .enumerate()
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(r, (out, gradient_row))| {
                    *out = row_with_gradient(&logits[span(r)], &targets[span(r)], gradient_row);
                });
        } else {
            log_probs
                .par_iter_mut()
                .enumerate()
                .with_min_len(ROWS_PER_TASK)
                .for_each(|(r, out)| *out = row(&logits[span(r)], &targets[span(r)]));
        }
        Forward {
            log_probs,
            logit_gradient,
        }
    }

    /// Partial sums per row: the vector lanes of the loops below. A float sum is not
    /// reassociated by the compiler, so the lanes are spelled out.
    const LANES: usize = 16;

    /// `x·l − softplus(l)` and `σ(l)`, which share `e^{−|l|}`:
    /// `softplus(l) = max(l, 0) + log1p(e^{−|l|})`, `σ(l) = 1/(1 + e^{−|l|})` for `l ≥ 0`
    /// and `e^{−|l|}/(1 + e^{−|l|})` below.
    #[inline(always)]
    fn term(l: f32, x: f32) -> (f32, f32) {
        let e = exp(-l.abs());
        let log_prob = x * l - (l.max(0.0) + log1p_unit(e));
        let sigmoid = if l >= 0.0 { 1.0 } else { e } / (1.0 + e);
        (log_prob, sigmoid)
    }

    /// The lanes' sum, in f64.
    fn lane_sum(lanes: &[f32; LANES], rest: f32) -> f32 {
        (lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(rest)) as f32
    }

    /// A row's log-probability and, with `WITH_GRADIENT`, `x − σ(l)` written into `gradient`
    /// (left untouched, and may be empty, without). Both vectorised entry points below inline
    /// this one loop; the switch is a constant, so each compiles without the other's work.
    #[inline(always)]
    fn row_body<const WITH_GRADIENT: bool>(
        logits: &[f32],
        targets: &[f32],
        gradient: &mut [f32],
    ) -> f32 {
        let mut lanes = [0.0f32; LANES];
        let (l_chunks, x_chunks) = (logits.chunks_exact(LANES), targets.chunks_exact(LANES));
        let (l_rest, x_rest) = (l_chunks.remainder(), x_chunks.remainder());
        let full = logits.len() - l_rest.len();
        for (chunk, (l, x)) in l_chunks.zip(x_chunks).enumerate() {
            let mut sigmoids = [0.0f32; LANES];
            for lane in 0..LANES {
                let (log_prob, sigmoid) = term(l[lane], x[lane]);
                lanes[lane] += log_prob;
                sigmoids[lane] = sigmoid;
            }
            if WITH_GRADIENT {
                let g = &mut gradient[chunk * LANES..(chunk + 1) * LANES];
                for lane in 0..LANES {
                    g[lane] = x[lane] - sigmoids[lane];
                }
            }
        }
        let mut rest = 0.0;
        for (i, (&l, &x)) in l_rest.iter().zip(x_rest).enumerate() {
            let (log_prob, sigmoid) = term(l, x);
            rest += log_prob;
            if WITH_GRADIENT {
                gradient[full + i] = x - sigmoid;
            }
        }
        lane_sum(&lanes, rest)
    }

    vectorised! {
        /// A row's log-probability.
        fn row(logits: &[f32], targets: &[f32]) -> f32 {
            row_body::<false>(logits, targets, &mut [])
        }
    }

    vectorised! {
        /// A row's log-probability, writing `x − σ(l)` into `gradient`.
        fn row_with_gradient(logits: &[f32], targets: &[f32], gradient: &mut [f32]) -> f32 {
            row_body::<true>(logits, targets, gradient)
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let got = bernoulli_log_prob(matrix(logits.clone(), 1, 5), matrix(targets.clone(), 1, 5))
            .into_data()
            .try_to_vec::<f32>()
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
    #[cfg(feature = "kernels")]
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
            assert_eq!(
                flex_kernel::applies(&logits_t.clone().transpose(), &targets),
                crate::enabled(),
                "the kernel applies where it is switched on"
            );
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
}

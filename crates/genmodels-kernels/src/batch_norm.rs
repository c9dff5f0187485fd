//! Batch normalisation with a fused training-mode kernel on flex.
//!
//! burn's [`BatchNorm::forward`] differentiates batch norm as one autodiff operation, but on
//! flex its forward and backward passes are composed of about twenty element-wise passes,
//! transposed copies and reductions. [`batch_norm`] computes the same function with two
//! passes each way on flex (a burn backend extension, see `BatchNormBackend`), and is
//! burn's layer everywhere else.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;

/// [`BatchNorm::forward`]: the same arguments, result and running-statistics update (tested).
///
/// In training (an autodiff device and the layer's training flag enabled), each channel is
/// normalised by the mean `μ` and biased variance `σ²` of its values over the batch and the
/// spatial positions, then scaled and shifted:
///
/// ```text
/// y = γ · (x − μ) / √(σ² + ε) + β
/// running_μ ← (1 − m)·running_μ + m·μ      running_σ² ← (1 − m)·running_σ² + m·σ²
/// ```
///
/// Otherwise the running statistics stand in for `μ` and `σ²`. On flex with `f32` tensors the
/// training path runs `BatchNormBackend`'s kernels; every other case is burn's `forward`.
///
/// # Shapes
/// - input: `[N, C, ...]`
/// - output: `[N, C, ...]`
///
/// # Panics
/// If the input's rank is below 2 or its second axis is not the layer's feature count, as
/// burn's layer does.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, input: Tensor<D>) -> Tensor<D> {
    // Checked here, not only in the kernel, so that the message is the same with the kernels
    // switched off.
    let [features] = norm.gamma.dims();
    assert!(
        D >= 2 && input.dims()[1] == features,
        "batch norm input must have {features} channels on its second axis, got shape {:?}",
        input.dims()
    );
    #[cfg(feature = "kernels")]
    if input.device().is_autodiff() && norm.training.is_enabled() && flex_kernel::applies(&input) {
        return flex_kernel::forward_train(norm, input);
    }
    norm.forward(input)
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The flex kernel and its autodiff node.

    use crate::support::{
        flex_tensor, is_flex_f32, lane_sum_and_dot, lane_sum_of, par_filled, par_filled_pair,
        values,
    };
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::nn::BatchNorm;
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    /// Training-mode batch norm as a backend operation with its own backward pass;
    /// implemented for flex and autodiff-over-flex. Called through [`super::batch_norm`].
    #[backend_extension(Flex, Autodiff)]
    pub trait BatchNormBackend: Backend {
        /// `[N, C, ...]`, `γ: [C]`, `β: [C]` → the output `[N, C, ...]`, and the batch's mean
        /// and biased variance, `[C]` each. Only the output is differentiable.
        fn batch_norm_train(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    pub(super) fn applies<const D: usize>(input: &Tensor<D>) -> bool {
        D >= 2 && is_flex_f32(&input.device(), &[input.dtype()])
    }

    pub(super) fn forward_train<const D: usize>(norm: &BatchNorm, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        let (output, mean, variance) =
            <burn::backend::Dispatch as BatchNormBackend>::batch_norm_train(
                input.into_dispatch(),
                norm.gamma.val().into_dispatch(),
                norm.beta.val().into_dispatch(),
                norm.epsilon,
            );
        let (mean, variance): (Tensor<1>, Tensor<1>) =
            (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance));
        let momentum = norm.momentum;
        let running_mean = norm.running_mean.value_sync().to_device(&device);
        let running_var = norm.running_var.value_sync().to_device(&device);
        norm.running_mean
            .update((running_mean.mul_scalar(1.0 - momentum) + mean.mul_scalar(momentum)).detach());
        norm.running_var.update(
            (running_var.mul_scalar(1.0 - momentum) + variance.mul_scalar(momentum)).detach(),
        );
        Tensor::from_dispatch(output)
    }

    impl BatchNormBackend for Flex {
        fn batch_norm_train(
            input: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            epsilon: f64,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let forward = Forward::compute(&input, &values(&gamma), &values(&beta), epsilon);
            forward.into_tensors(&input)
        }
    }

    impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
        fn batch_norm_train(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let (input, input_node) = input.into_parts();
            let (gamma, gamma_node) = gamma.into_parts();
            let (beta, beta_node) = beta.into_parts();
            let gamma = values(&gamma).into_owned();
            let forward = Forward::compute(&input, &gamma, &values(&beta), epsilon);
            let state = NodeState {
                layout: forward.layout,
                normalised: forward.normalised.clone(),
                gamma,
                inv_std: forward.inv_std.clone(),
            };
            let (output, mean, variance) = forward.into_tensors(&input);
            let output = match BatchNormNode
                .prepare::<C>([input_node, gamma_node, beta_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            };
            // The statistics feed the running averages only; they carry no gradient.
            (
                output,
                FloatTensor::<Self>::new(mean),
                FloatTensor::<Self>::new(variance),
            )
        }
    }

    /// `[N, C, S]`: the input seen as `N·C` rows of `S` values, row `r` in channel `r mod C`.
    #[derive(Clone, Copy, Debug)]
    struct Layout {
        channels: usize,
        row: usize,
    }

    impl Layout {
        fn of(input: &FlexTensor) -> Self {
            let shape = input.layout().shape();
            let channels = shape[1];
            Self {
                channels,
                row: shape[2..].iter().product(),
            }
        }

        /// For each channel, the sums over its rows of `f(row)`'s pair of partial sums,
        /// accumulated in `f64` across rows.
        fn per_channel_sums(
            &self,
            len: usize,
            row_sums: impl Fn(usize) -> (f32, f32) + Sync,
        ) -> Vec<(f64, f64)> {
            let rows = len / self.row.max(1);
            (0..self.channels)
                .into_par_iter()
                .map(|channel| {
                    (channel..rows)
                        .step_by(self.channels)
                        .fold((0.0, 0.0), |(a, b), r| {
                            let (ra, rb) = row_sums(r);
                            (a + f64::from(ra), b + f64::from(rb))
                        })
                })
                .collect()
        }

        /// Values per channel: `N·S`.
        fn count(&self, len: usize) -> f64 {
            (len / self.channels) as f64
        }
    }

    /// Lanes of the row sums: independent accumulators the compiler vectorises.
    const LANES: usize = 8;

    /// The forward pass's results, and what the backward pass keeps.
    struct Forward {
        layout: Layout,
        output: Vec<f32>,
        /// `x̂ = (x − μ)/√(σ² + ε)`.
        normalised: Vec<f32>,
        mean: Vec<f32>,
        variance: Vec<f32>,
        inv_std: Vec<f32>,
    }

    impl Forward {
        /// Two passes: the mean, then the variance about it (as burn computes it, rather than
        /// `E[x²] − μ²`, which cancels badly), and one more writing `x̂` and `y`.
        fn compute(input: &FlexTensor, gamma: &[f32], beta: &[f32], epsilon: f64) -> Self {
            let layout = Layout::of(input);
            let x = values(input);
            let row = layout.row;
            let count = layout.count(x.len());
            let mean: Vec<f32> = layout
                .per_channel_sums(x.len(), |r| {
                    (lane_sum_of::<LANES>(&x[r * row..(r + 1) * row], |v| v), 0.0)
                })
                .iter()
                .map(|&(sum, _)| (sum / count) as f32)
                .collect();
            let variance: Vec<f32> = layout
                .per_channel_sums(x.len(), |r| {
                    let mu = mean[r % layout.channels];
                    let squares =
                        lane_sum_of::<LANES>(&x[r * row..(r + 1) * row], |v| (v - mu) * (v - mu));
                    (squares, 0.0)
                })
                .iter()
                .map(|&(sum, _)| (sum / count) as f32)
                .collect();
            let inv_std: Vec<f32> = variance
                .iter()
                .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
                .collect();
            let (normalised, output) =
                par_filled_pair(x.len(), row, |r, normalised_row, output_row| {
                    let c = r % layout.channels;
                    let (mu, scale, g, b) = (mean[c], inv_std[c], gamma[c], beta[c]);
                    let input_row = &x[r * row..(r + 1) * row];
                    for ((n, y), v) in normalised_row.iter_mut().zip(output_row).zip(input_row) {
                        *n = (v - mu) * scale;
                        *y = *n * g + b;
                    }
                });
            Self {
                layout,
                output,
                normalised,
                mean,
                variance,
                inv_std,
            }
        }

        fn into_tensors(self, input: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
            let channels = [self.layout.channels];
            (
                flex_tensor(self.output, input.layout().shape().clone()),
                flex_tensor(self.mean, channels),
                flex_tensor(self.variance, channels),
            )
        }
    }

    #[derive(Debug)]
    struct BatchNormNode;

    #[derive(Clone, Debug)]
    struct NodeState {
        layout: Layout,
        normalised: Vec<f32>,
        gamma: Vec<f32>,
        inv_std: Vec<f32>,
    }

    impl Backward<Flex, 3> for BatchNormNode {
        type State = NodeState;

        /// With `M` values per channel, `∂L/∂β = Σ g`, `∂L/∂γ = Σ g·x̂`, and
        /// `∂L/∂x = γ/√(σ² + ε) · (g − Σg/M − x̂·Σg·x̂/M)`.
        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, gamma_parent, beta_parent] = ops.parents;
            let grad_output = grads.consume::<Flex>(&ops.node);
            let shape = grad_output.layout().shape().clone();
            let NodeState {
                layout,
                normalised,
                gamma,
                inv_std,
            } = ops.state;
            let g = values(&grad_output);
            let row = layout.row;
            let sums = layout.per_channel_sums(g.len(), |r| {
                let span = r * row..(r + 1) * row;
                lane_sum_and_dot::<LANES>(&g[span.clone()], &normalised[span])
            });
            if let Some(parent) = input_parent {
                let count = layout.count(g.len());
                let input_grad = par_filled(g.len(), row, |r, grad_row| {
                    let c = r % layout.channels;
                    let mean_g = (sums[c].0 / count) as f32;
                    let mean_gx = (sums[c].1 / count) as f32;
                    let scale = gamma[c] * inv_std[c];
                    let span = r * row..(r + 1) * row;
                    for ((out, gv), n) in grad_row
                        .iter_mut()
                        .zip(&g[span.clone()])
                        .zip(&normalised[span])
                    {
                        *out = scale * (gv - mean_g - n * mean_gx);
                    }
                });
                grads.register::<Flex>(parent.id, flex_tensor(input_grad, shape));
            }
            let channels = [layout.channels];
            if let Some(parent) = gamma_parent {
                let gamma_grad = sums.iter().map(|&(_, dot)| dot as f32).collect();
                grads.register::<Flex>(parent.id, flex_tensor(gamma_grad, channels));
            }
            if let Some(parent) = beta_parent {
                let beta_grad = sums.iter().map(|&(sum, _)| sum as f32).collect();
                grads.register::<Flex>(parent.id, flex_tensor(beta_grad, channels));
            }
        }
    }
}

#[cfg(all(test, feature = "kernels"))]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// Two layers with the same non-trivial `γ` and `β` and separate running statistics.
    fn twin_layers(channels: usize, device: &Device) -> (BatchNorm, BatchNorm) {
        let gamma: Tensor<1> = Tensor::random([channels], Distribution::Uniform(0.5, 1.5), device);
        let beta: Tensor<1> = Tensor::random([channels], Distribution::Normal(0.0, 1.0), device);
        let layer = || {
            let mut norm = BatchNormConfig::new(channels)
                .with_momentum(0.3)
                .init(device);
            norm.gamma = Param::from_tensor(gamma.clone());
            norm.beta = Param::from_tensor(beta.clone());
            norm
        };
        (layer(), layer())
    }

    /// The kernel against burn's layer over two training steps: outputs, the gradients of
    /// input, `γ` and `β` (through a random upstream gradient: the plain sum of a batch
    /// norm's output has none for its input), and the running statistics after both steps.
    fn assert_matches_burn<const D: usize>(shape: [usize; D]) {
        let device = Device::flex().autodiff();
        device.seed(17);
        let (ours, burns) = twin_layers(shape[1], &device);
        let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
        let assert_close = |a: Tensor<D>, b: Tensor<D>| {
            a.into_data()
                .assert_approx_eq::<f32>(&b.into_data(), tolerance)
        };
        let assert_close_1 = |a: Tensor<1>, b: Tensor<1>| {
            a.into_data()
                .assert_approx_eq::<f32>(&b.into_data(), tolerance)
        };
        for step in 0..2 {
            let input: Tensor<D> = Tensor::random(
                shape,
                Distribution::Normal(5.0 + 2.0 * step as f64, 3.0),
                &device,
            )
            .require_grad();
            assert_eq!(
                flex_kernel::applies(&input),
                crate::enabled(),
                "the kernel applies where it is switched on"
            );
            let upstream: Tensor<D> =
                Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let run = |layer: &BatchNorm, kernel: bool| {
                let output = if kernel {
                    batch_norm(layer, input.clone())
                } else {
                    layer.forward(input.clone())
                };
                let grads = (output.clone() * upstream.clone()).sum().backward();
                (
                    output,
                    input.grad(&grads).expect("input gradient"),
                    layer.gamma.grad(&grads).expect("γ gradient"),
                    layer.beta.grad(&grads).expect("β gradient"),
                )
            };
            let (output, grad_input, grad_gamma, grad_beta) = run(&ours, true);
            let (burn_output, burn_grad_input, burn_grad_gamma, burn_grad_beta) =
                run(&burns, false);
            assert_close(output, burn_output);
            assert_close(grad_input, burn_grad_input);
            assert_close_1(grad_gamma, burn_grad_gamma);
            assert_close_1(grad_beta, burn_grad_beta);
        }
        assert_close_1(ours.running_mean.value(), burns.running_mean.value());
        assert_close_1(ours.running_var.value(), burns.running_var.value());
        // The statistics moved from their initial zeros towards the inputs' means of 5 and 7:
        // 0.7·0.3·5 + 0.3·7 ≈ 3.2 per channel.
        let moved: f32 = ours.running_mean.value().min().into_scalar();
        assert!(moved > 1.0, "running mean did not move: {moved}");
    }

    #[test]
    fn flex_kernel_is_burns_batch_norm_for_images() {
        assert_matches_burn([6, 5, 7, 3]);
    }

    #[test]
    fn flex_kernel_is_burns_batch_norm_for_vectors_and_odd_rows() {
        assert_matches_burn([9, 4]);
        assert_matches_burn([3, 2, 17]);
    }

    #[test]
    fn outside_training_it_is_burns_inference_path_and_keeps_the_statistics() {
        let device = Device::flex().autodiff();
        let (ours, burns) = twin_layers(3, &device);
        // Give the running statistics something to hold, then freeze training.
        let input: Tensor<4> =
            Tensor::random([4, 3, 5, 5], Distribution::Normal(1.0, 2.0), &device);
        let _ = batch_norm(&ours, input.clone());
        let _ = burns.forward(input.clone());
        let (mut ours, mut burns) = (ours, burns);
        ours.training = Param::from_bool(false);
        burns.training = Param::from_bool(false);
        let before = ours.running_mean.value();
        batch_norm(&ours, input.clone())
            .into_data()
            .assert_approx_eq::<f32>(&burns.forward(input).into_data(), Tolerance::default());
        // Inference leaves the running statistics alone.
        before
            .into_data()
            .assert_eq(&ours.running_mean.value().into_data(), true);
    }

    #[test]
    #[should_panic(expected = "channels")]
    fn a_wrong_channel_count_is_refused() {
        let device = Device::flex().autodiff();
        let (ours, _) = twin_layers(3, &device);
        let _ = batch_norm(&ours, Tensor::<4>::zeros([2, 4, 3, 3], &device));
    }
}

//! Group normalisation (Wu & He 2018), alone or followed by SiLU, with a fused kernel on flex:
//! the normalisation of a diffusion U-Net's residual blocks.
//!
//! burn's [`GroupNorm::forward`] is composed of a dozen element-wise passes and reductions, and
//! its gradient of as many again; a SiLU after it adds a sigmoid, a product and their
//! gradients. On flex, [`group_norm`] and [`group_norm_silu`] compute each group's statistics
//! and write the output in one task per group, and the backward pass is two passes over each
//! group (see `GroupNormBackend`); everywhere else they are burn's ops.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;

/// [`GroupNorm::forward`]: the same arguments and result (tested, with the gradients).
///
/// The channels are split into `G` groups of consecutive channels; each image's group is
/// normalised by its own mean `μ` and biased variance `σ²` over the group's channels and
/// positions, then each channel is scaled and shifted:
///
/// ```text
/// y = γ_c · (x − μ) / √(σ² + ε) + β_c
/// ```
///
/// # Shapes
/// - input: `[N, C, ...]` (rank at least 3)
/// - output: `[N, C, ...]`
///
/// # Panics
/// As burn's layer: if the input's second axis is not the layer's channel count.
pub fn group_norm<const D: usize>(norm: &GroupNorm, input: Tensor<D>) -> Tensor<D> {
    check(norm, &input);
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(norm, &input) {
        return flex_kernel::group_norm(norm, input, false);
    }
    norm.forward(input)
}

/// `SiLU(GroupNorm(x))`, with `SiLU(z) = z·σ(z)`: a diffusion U-Net's normalisation and
/// activation, fused on flex into the one pass of [`group_norm`].
///
/// # Shapes
/// - input: `[N, C, ...]` (rank at least 3)
/// - output: `[N, C, ...]`
///
/// # Panics
/// As [`group_norm`].
pub fn group_norm_silu<const D: usize>(norm: &GroupNorm, input: Tensor<D>) -> Tensor<D> {
    check(norm, &input);
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(norm, &input) {
        return flex_kernel::group_norm(norm, input, true);
    }
    group_norm_silu_composed(norm, input)
}

/// [`group_norm_silu`] from burn's layer and `silu`, for every backend.
///
/// # Shapes
/// As [`group_norm_silu`].
pub fn group_norm_silu_composed<const D: usize>(norm: &GroupNorm, input: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::silu(norm.forward(input))
}

/// Checked here, not only in the kernel, so that the message is the same with the kernels
/// switched off.
fn check<const D: usize>(norm: &GroupNorm, input: &Tensor<D>) {
    assert!(
        D >= 3 && input.dims()[1] == norm.num_channels,
        "group norm input must have rank 3 or more and {} channels on its second axis, got \
         shape {:?}",
        norm.num_channels,
        input.dims()
    );
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The flex kernel and its autodiff node.

    use crate::sigmoid::{exp, vectorised};
    use crate::support::{flex_tensor, is_flex_f32, lane_sum_and_dot, lane_sum_of, values};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::nn::GroupNorm;
    use burn::tensor::Tensor;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Group normalisation, optionally followed by SiLU, as a backend operation with its own
    /// backward pass; implemented for flex and autodiff-over-flex. Called through
    /// [`super::group_norm`] and [`super::group_norm_silu`].
    #[backend_extension(Flex, Autodiff)]
    pub trait GroupNormBackend: Backend {
        /// `[N, C, ...]`, `γ: [C]`, `β: [C]` → `[N, C, ...]`.
        fn fused_group_norm(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            groups: usize,
            epsilon: f64,
            silu: bool,
        ) -> FloatTensor<Self>;
    }

    /// Flex, `f32`, and the affine parameters present (a layer without them is rare enough to
    /// be left to burn).
    pub(super) fn applies<const D: usize>(norm: &GroupNorm, input: &Tensor<D>) -> bool {
        norm.affine
            && norm.gamma.is_some()
            && norm.beta.is_some()
            && is_flex_f32(&input.device(), &[input.dtype()])
    }

    pub(super) fn group_norm<const D: usize>(
        norm: &GroupNorm,
        input: Tensor<D>,
        silu: bool,
    ) -> Tensor<D> {
        let (gamma, beta) = match (&norm.gamma, &norm.beta) {
            (Some(gamma), Some(beta)) => (gamma.val(), beta.val()),
            _ => unreachable!("`applies` checked the affine parameters"),
        };
        Tensor::from_dispatch(
            <burn::backend::Dispatch as GroupNormBackend>::fused_group_norm(
                input.into_dispatch(),
                gamma.into_dispatch(),
                beta.into_dispatch(),
                norm.num_groups,
                norm.epsilon,
                silu,
            ),
        )
    }

    /// `[N, C, S]`: `N·G` groups of `C/G` channels of `S` values each, one after another.
    #[derive(Clone, Copy, Debug)]
    struct Layout {
        channels: usize,
        groups: usize,
        /// Values per channel of one image (the product of the spatial sizes).
        spatial: usize,
    }

    impl Layout {
        fn of(input: &FlexTensor, groups: usize) -> Self {
            let shape = input.layout().shape();
            Self {
                channels: shape[1],
                groups,
                spatial: shape[2..].iter().product(),
            }
        }

        fn channels_per_group(&self) -> usize {
            self.channels / self.groups
        }

        fn group_len(&self) -> usize {
            self.channels_per_group() * self.spatial
        }

        /// The channels of group `index` (counted over the batch), as a range of `0..C`.
        fn group_channels(&self, index: usize) -> std::ops::Range<usize> {
            let first = (index % self.groups) * self.channels_per_group();
            first..first + self.channels_per_group()
        }
    }

    /// Lanes of the sums: independent accumulators the compiler vectorises.
    const LANES: usize = 16;

    vectorised! {
        /// One group forward: its mean, then its variance about the mean (two passes, as burn
        /// computes it, rather than `E[x²] − μ²`, which cancels badly); then `x̂` (kept when
        /// `normalised` is not empty) and `y = γ_c x̂ + β_c`, or its SiLU. Returns
        /// `1/√(σ² + ε)`.
        fn forward_group(
            x: &[f32],
            normalised: &mut [MaybeUninit<f32>],
            output: &mut [MaybeUninit<f32>],
            gamma: &[f32],
            beta: &[f32],
            epsilon: f64,
            silu: bool,
        ) -> f32 {
            let count = x.len() as f64;
            let mean = (f64::from(lane_sum_of::<LANES>(x, |v| v)) / count) as f32;
            let squares = lane_sum_of::<LANES>(x, |v| (v - mean) * (v - mean));
            let variance = f64::from(squares) / count;
            let inv_std = (1.0 / (variance + epsilon).sqrt()) as f32;
            let spatial = x.len() / gamma.len();
            let keep = !normalised.is_empty();
            for (c, (&g, &b)) in gamma.iter().zip(beta).enumerate() {
                let span = c * spatial..(c + 1) * spatial;
                let (x, y) = (&x[span.clone()], &mut output[span.clone()]);
                if keep {
                    for ((n, y), &v) in normalised[span].iter_mut().zip(y.iter_mut()).zip(x) {
                        let hat = (v - mean) * inv_std;
                        n.write(hat);
                        let z = g * hat + b;
                        y.write(if silu { z / (1.0 + exp(-z)) } else { z });
                    }
                } else if silu {
                    for (y, &v) in y.iter_mut().zip(x) {
                        let z = g * ((v - mean) * inv_std) + b;
                        y.write(z / (1.0 + exp(-z)));
                    }
                } else {
                    for (y, &v) in y.iter_mut().zip(x) {
                        y.write(g * ((v - mean) * inv_std) + b);
                    }
                }
            }
            inv_std
        }
    }

    vectorised! {
        /// One group backward. With `g_z` the gradient at the normalisation's output `z`
        /// (`g_y · σ(z)·(1 + z·(1 − σ(z)))` through SiLU, `g_y` without), `∂L/∂β_c = Σ g_z`
        /// and `∂L/∂γ_c = Σ g_z·x̂` over the channel's positions (written into `sums` as
        /// `[Σ g_z, Σ g_z·x̂]` per channel), and with `g_x̂ = γ_c·g_z` and `M` values in the
        /// group, `∂L/∂x = (g_x̂ − Σg_x̂/M − x̂·Σg_x̂·x̂/M) / √(σ² + ε)`.
        fn backward_group(
            upstream: &[f32],
            normalised: &[f32],
            gradient: &mut [MaybeUninit<f32>],
            affine: (&[f32], &[f32]),
            inv_std: f32,
            silu: bool,
            sums: &mut [f32],
        ) {
            let (gamma, beta) = affine;
            let spatial = upstream.len() / gamma.len();
            let (mut group_sum, mut group_dot) = (0.0f64, 0.0f64);
            // First pass: g_z into `gradient`, and the channel sums.
            for (c, (&g, &b)) in gamma.iter().zip(beta).enumerate() {
                let span = c * spatial..(c + 1) * spatial;
                let (up, hat) = (&upstream[span.clone()], &normalised[span.clone()]);
                let out = &mut gradient[span];
                if silu {
                    for ((o, &gy), &h) in out.iter_mut().zip(up).zip(hat) {
                        let z = g * h + b;
                        let s = 1.0 / (1.0 + exp(-z));
                        o.write(gy * s * (1.0 + z * (1.0 - s)));
                    }
                } else {
                    for (o, &gy) in out.iter_mut().zip(up) {
                        o.write(gy);
                    }
                }
                // SAFETY: every value of `out` was just written.
                let gz = unsafe { &*(out as *const [MaybeUninit<f32>] as *const [f32]) };
                let (sum, dot) = lane_sum_and_dot::<LANES>(gz, hat);
                let (sum, dot) = (f64::from(sum), f64::from(dot));
                sums[2 * c] = sum as f32;
                sums[2 * c + 1] = dot as f32;
                group_sum += f64::from(g) * sum;
                group_dot += f64::from(g) * dot;
            }
            let count = upstream.len() as f64;
            let (mean_g, mean_gh) = ((group_sum / count) as f32, (group_dot / count) as f32);
            // Second pass, in place: g_z → ∂L/∂x.
            for (c, &g) in gamma.iter().enumerate() {
                let span = c * spatial..(c + 1) * spatial;
                for (o, &h) in gradient[span.clone()].iter_mut().zip(&normalised[span]) {
                    // SAFETY: the first pass wrote every value of `gradient`.
                    let gz = unsafe { o.assume_init() };
                    o.write(inv_std * (g * gz - mean_g - h * mean_gh));
                }
            }
        }
    }

    /// The forward pass's results; `normalised` is empty unless asked for.
    struct Forward {
        output: Vec<f32>,
        normalised: Vec<f32>,
        /// `1/√(σ² + ε)` per group of each image.
        inv_std: Vec<f32>,
    }

    fn forward(
        x: &[f32],
        layout: Layout,
        gamma: &[f32],
        beta: &[f32],
        epsilon: f64,
        silu: bool,
        keep_normalised: bool,
    ) -> Forward {
        let len = x.len();
        let group_len = layout.group_len();
        let mut output = Vec::with_capacity(len);
        let mut normalised = Vec::with_capacity(if keep_normalised { len } else { 0 });
        let normalised_chunks: Vec<&mut [MaybeUninit<f32>]> = if keep_normalised {
            normalised.spare_capacity_mut()[..len]
                .chunks_mut(group_len)
                .collect()
        } else {
            (0..len / group_len).map(|_| Default::default()).collect()
        };
        let inv_std: Vec<f32> = output.spare_capacity_mut()[..len]
            .par_chunks_mut(group_len)
            .zip(normalised_chunks)
            .enumerate()
            .map(|(group, (output, normalised))| {
                let channels = layout.group_channels(group);
                forward_group(
                    &x[group * group_len..(group + 1) * group_len],
                    normalised,
                    output,
                    &gamma[channels.clone()],
                    &beta[channels],
                    epsilon,
                    silu,
                )
            })
            .collect();
        // SAFETY: `forward_group` wrote every value of each group's chunks.
        unsafe {
            output.set_len(len);
            if keep_normalised {
                normalised.set_len(len);
            }
        }
        Forward {
            output,
            normalised,
            inv_std,
        }
    }

    impl GroupNormBackend for Flex {
        fn fused_group_norm(
            input: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            groups: usize,
            epsilon: f64,
            silu: bool,
        ) -> FlexTensor {
            let layout = Layout::of(&input, groups);
            let (gamma, beta) = (values(&gamma), values(&beta));
            let forward = forward(&values(&input), layout, &gamma, &beta, epsilon, silu, false);
            flex_tensor(forward.output, input.layout().shape().clone())
        }
    }

    impl<C: CheckpointStrategy> GroupNormBackend for Autodiff<Flex, C> {
        fn fused_group_norm(
            input: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            groups: usize,
            epsilon: f64,
            silu: bool,
        ) -> FloatTensor<Self> {
            let (input, input_node) = input.into_parts();
            let (gamma, gamma_node) = gamma.into_parts();
            let (beta, beta_node) = beta.into_parts();
            let layout = Layout::of(&input, groups);
            let (gamma, beta) = (values(&gamma).into_owned(), values(&beta).into_owned());
            let shape = input.layout().shape().clone();
            let prep = GroupNormNode
                .prepare::<C>([input_node, gamma_node, beta_node])
                .compute_bound()
                .stateful();
            let tracked = matches!(prep, OpsKind::Tracked(_));
            let forward = forward(
                &values(&input),
                layout,
                &gamma,
                &beta,
                epsilon,
                silu,
                tracked,
            );
            let output = flex_tensor(forward.output, shape);
            match prep {
                OpsKind::Tracked(prep) => prep.finish(
                    NodeState {
                        layout,
                        normalised: forward.normalised,
                        gamma,
                        beta,
                        inv_std: forward.inv_std,
                        silu,
                    },
                    output,
                ),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct GroupNormNode;

    #[derive(Clone, Debug)]
    struct NodeState {
        layout: Layout,
        normalised: Vec<f32>,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        inv_std: Vec<f32>,
        silu: bool,
    }

    impl Backward<Flex, 3> for GroupNormNode {
        type State = NodeState;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, gamma_parent, beta_parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            let shape = upstream.layout().shape().clone();
            let NodeState {
                layout,
                normalised,
                gamma,
                beta,
                inv_std,
                silu,
            } = ops.state;
            let upstream = values(&upstream);
            let len = upstream.len();
            let group_len = layout.group_len();
            let per_group = layout.channels_per_group();
            let mut gradient = Vec::with_capacity(len);
            let sums: Vec<Vec<f32>> = gradient.spare_capacity_mut()[..len]
                .par_chunks_mut(group_len)
                .enumerate()
                .map(|(group, gradient)| {
                    let channels = layout.group_channels(group);
                    let span = group * group_len..(group + 1) * group_len;
                    let mut sums = vec![0.0f32; 2 * per_group];
                    backward_group(
                        &upstream[span.clone()],
                        &normalised[span],
                        gradient,
                        (&gamma[channels.clone()], &beta[channels]),
                        inv_std[group],
                        silu,
                        &mut sums,
                    );
                    sums
                })
                .collect();
            // SAFETY: `backward_group` wrote every value of each group's chunk.
            unsafe { gradient.set_len(len) };
            if let Some(parent) = input_parent {
                grads.register::<Flex>(parent.id, flex_tensor(gradient, shape));
            }
            // Per channel, over the images: [Σ g_z, Σ g_z·x̂].
            let mut channel_sums = vec![[0.0f64; 2]; layout.channels];
            for (group, sums) in sums.iter().enumerate() {
                for (c, pair) in layout.group_channels(group).zip(sums.chunks_exact(2)) {
                    channel_sums[c][0] += f64::from(pair[0]);
                    channel_sums[c][1] += f64::from(pair[1]);
                }
            }
            let channels = [layout.channels];
            if let Some(parent) = gamma_parent {
                let gamma_grad = channel_sums.iter().map(|s| s[1] as f32).collect();
                grads.register::<Flex>(parent.id, flex_tensor(gamma_grad, channels));
            }
            if let Some(parent) = beta_parent {
                let beta_grad = channel_sums.iter().map(|s| s[0] as f32).collect();
                grads.register::<Flex>(parent.id, flex_tensor(beta_grad, channels));
            }
        }
    }
}

#[cfg(all(test, feature = "kernels"))]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// A layer with non-trivial `γ` and `β`.
    fn layer(groups: usize, channels: usize, device: &Device) -> GroupNorm {
        let mut norm = GroupNormConfig::new(groups, channels).init(device);
        norm.gamma = Some(Param::from_tensor(Tensor::random(
            [channels],
            Distribution::Uniform(0.5, 1.5),
            device,
        )));
        norm.beta = Some(Param::from_tensor(Tensor::random(
            [channels],
            Distribution::Normal(0.0, 1.0),
            device,
        )));
        norm
    }

    /// Kernel against composed form: output, and the gradients of input, `γ` and `β` through
    /// a random upstream gradient (the plain sum of a normalisation's output has none for
    /// its input), with and without SiLU.
    fn assert_matches_burn<const D: usize>(shape: [usize; D], groups: usize, silu: bool) {
        let device = Device::flex().autodiff();
        device.seed(23);
        let norm = layer(groups, shape[1], &device);
        let input: Tensor<D> =
            Tensor::random(shape, Distribution::Normal(3.0, 2.0), &device).require_grad();
        let upstream: Tensor<D> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
        // Not `set_enabled(false)` for the composed side: tests run in parallel.
        let run = |kernel: bool| {
            let output = match (kernel, silu) {
                (true, false) => group_norm(&norm, input.clone()),
                (false, false) => norm.forward(input.clone()),
                (true, true) => group_norm_silu(&norm, input.clone()),
                (false, true) => group_norm_silu_composed(&norm, input.clone()),
            };
            let grads = (output.clone() * upstream.clone()).sum().backward();
            (
                output,
                input.grad(&grads).expect("input gradient"),
                norm.gamma
                    .as_ref()
                    .unwrap()
                    .grad(&grads)
                    .expect("γ gradient"),
                norm.beta
                    .as_ref()
                    .unwrap()
                    .grad(&grads)
                    .expect("β gradient"),
            )
        };
        assert_eq!(flex_kernel::applies(&norm, &input), crate::enabled());
        let (output, grad_input, grad_gamma, grad_beta) = run(true);
        let (burn_output, burn_grad_input, burn_grad_gamma, burn_grad_beta) = run(false);
        let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
        output
            .into_data()
            .assert_approx_eq::<f32>(&burn_output.into_data(), tolerance);
        grad_input
            .into_data()
            .assert_approx_eq::<f32>(&burn_grad_input.into_data(), tolerance);
        grad_gamma
            .into_data()
            .assert_approx_eq::<f32>(&burn_grad_gamma.into_data(), tolerance);
        grad_beta
            .into_data()
            .assert_approx_eq::<f32>(&burn_grad_beta.into_data(), tolerance);
    }

    #[test]
    fn flex_kernel_is_burns_group_norm_in_values_and_gradients() {
        assert_matches_burn([3, 6, 5, 4], 3, false);
        assert_matches_burn([2, 8, 7], 2, false);
        assert_matches_burn([2, 4, 3, 5], 4, false);
    }

    #[test]
    fn flex_kernel_is_silu_of_burns_group_norm_in_values_and_gradients() {
        assert_matches_burn([3, 6, 5, 4], 3, true);
        assert_matches_burn([2, 8, 7], 1, true);
        // More than one vector of lanes per channel, and a ragged tail.
        assert_matches_burn([2, 16, 9, 7], 8, true);
    }

    #[test]
    fn without_autodiff_and_on_a_strided_view_it_is_burns() {
        let device = Device::flex();
        let norm = layer(2, 4, &device);
        // [N, H, W, C] permuted to [N, C, H, W]: not contiguous.
        let input: Tensor<4> =
            Tensor::random([3, 5, 6, 4], Distribution::Normal(-1.0, 3.0), &device)
                .permute([0, 3, 1, 2]);
        let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
        group_norm(&norm, input.clone())
            .into_data()
            .assert_approx_eq::<f32>(&norm.forward(input.clone()).into_data(), tolerance);
        group_norm_silu(&norm, input.clone())
            .into_data()
            .assert_approx_eq::<f32>(
                &group_norm_silu_composed(&norm, input).into_data(),
                tolerance,
            );
    }

    #[test]
    #[should_panic(expected = "channels")]
    fn a_wrong_channel_count_is_refused() {
        let device = Device::flex();
        let norm = layer(2, 4, &device);
        let _ = group_norm_silu(&norm, Tensor::<4>::zeros([2, 6, 3, 3], &device));
    }
}

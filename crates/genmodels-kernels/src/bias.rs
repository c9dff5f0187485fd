//! A per-channel bias added in place on flex: the bias of the convolution kernels.

use burn::tensor::Tensor;

/// `x + b`, the bias `b[c]` added to every value of channel `c`, with the channels on axis
/// `channel_axis` (1 for `[N, C, H, W]`, 3 for `[N, H, W, C]`):
///
/// ```text
/// y[…, c, …] = x[…, c, …] + b[c]      ∂L/∂x = ∂L/∂y      ∂L/∂b[c] = Σ_{…} ∂L/∂y[…, c, …]
/// ```
///
/// The same function as burn's broadcast sum ([`add_channel_bias_composed`], tested to agree),
/// for speed. On flex (`f32`) the forward pass adds in place into `x`'s buffer where no other
/// tensor shares it (the convolutions' fresh outputs), and the backward pass hands the upstream
/// gradient on unchanged and sums it per channel once; flex's broadcast sum was about 5% of a
/// Gated PixelCNN training step.
///
/// # Shapes
/// - x, output: `[N, C, H, W]` or `[N, H, W, C]`
/// - bias: `[C]`
///
/// # Panics
/// If `channel_axis` is neither 1 nor 3, or the bias does not have one value per channel (a
/// programming error in the calling layer).
pub fn add_channel_bias(x: Tensor<4>, bias: Tensor<1>, channel_axis: usize) -> Tensor<4> {
    check(&x, &bias, channel_axis);
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&x, &bias) {
        return flex_kernel::add_channel_bias(x, bias, channel_axis);
    }
    add_channel_bias_composed(x, bias, channel_axis)
}

/// [`add_channel_bias`] as burn's broadcast sum.
pub fn add_channel_bias_composed(x: Tensor<4>, bias: Tensor<1>, channel_axis: usize) -> Tensor<4> {
    check(&x, &bias, channel_axis);
    let mut shape = [1; 4];
    shape[channel_axis] = bias.dims()[0];
    x + bias.reshape(shape)
}

fn check(x: &Tensor<4>, bias: &Tensor<1>, channel_axis: usize) {
    assert!(
        (channel_axis == 1 || channel_axis == 3) && x.dims()[channel_axis] == bias.dims()[0],
        "add_channel_bias: bias {:?} does not fit channel axis {channel_axis} of {:?}",
        bias.dims(),
        x.dims()
    );
}

#[cfg(feature = "kernels")]
pub(crate) use flex_kernel::column_sums;

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The flex kernel and its autodiff node.

    use crate::support::{Images, flex_tensor, images, is_flex_f32, values, whole_buffer};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    /// Values per parallel task, at least.
    const VALUES_PER_TASK: usize = 1 << 14;

    /// The bias sum as a backend operation with its own backward pass; implemented for flex
    /// and autodiff-over-flex. Called through [`super::add_channel_bias`].
    #[backend_extension(Flex, Autodiff)]
    pub trait ChannelBiasBackend: Backend {
        /// `[N, C, H, W]` (axis 1) or `[N, H, W, C]` (axis 3), and `[C]` → the input's shape.
        fn channel_bias(
            x: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            channel_axis: usize,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies(x: &Tensor<4>, bias: &Tensor<1>) -> bool {
        is_flex_f32(&x.device(), &[x.dtype(), bias.dtype()])
    }

    pub(super) fn add_channel_bias(
        x: Tensor<4>,
        bias: Tensor<1>,
        channel_axis: usize,
    ) -> Tensor<4> {
        Tensor::from_dispatch(
            <burn::backend::Dispatch as ChannelBiasBackend>::channel_bias(
                x.into_dispatch(),
                bias.into_dispatch(),
                channel_axis,
            ),
        )
    }

    /// How one channel's values lie: runs of `run` values of one channel, cycling through the
    /// `channels` (a plane for channels first, one value for channels last).
    fn run_length(shape: &[usize], channel_axis: usize) -> usize {
        if channel_axis == 1 {
            shape[2] * shape[3]
        } else {
            1
        }
    }

    /// The runs per parallel task: whole cycles through the channels, so that every task starts
    /// at channel 0.
    fn runs_per_task(run: usize, channels: usize) -> usize {
        let cycle = (run * channels).max(1);
        VALUES_PER_TASK.div_ceil(cycle) * channels.max(1)
    }

    fn forward(x: FlexTensor, bias: &FlexTensor, channel_axis: usize) -> FlexTensor {
        let mut x = whole_buffer(x);
        let shape = x.layout().shape().to_vec();
        let b = values(bias);
        let (run, channels) = (run_length(&shape, channel_axis), b.len());
        let per_task = runs_per_task(run, channels);
        if run == 0 || channels == 0 {
            return x;
        }
        x.storage_mut::<f32>()
            .par_chunks_mut(per_task * run)
            .for_each(|chunk| {
                if run == 1 {
                    // Channels last: each pixel's row gets the whole bias vector.
                    for row in chunk.chunks_exact_mut(channels) {
                        for (value, &add) in row.iter_mut().zip(b.iter()) {
                            *value += add;
                        }
                    }
                    return;
                }
                for (index, values) in chunk.chunks_mut(run).enumerate() {
                    let add = b[index % channels];
                    for value in values {
                        *value += add;
                    }
                }
            });
        x
    }

    /// The sum of each column of a row-major matrix `columns` wide (the bias gradient of
    /// [`crate::linear`]).
    pub(crate) fn column_sums(matrix: &[f32], columns: usize) -> Vec<f32> {
        channel_sums(matrix, 1, columns)
    }

    /// `Σ` of the gradient per channel, in `f64` per task.
    fn channel_sums(gradient: &[f32], run: usize, channels: usize) -> Vec<f32> {
        if run == 0 || channels == 0 {
            return vec![0.0; channels];
        }
        let per_task = runs_per_task(run, channels);
        total(
            gradient
                .par_chunks(per_task * run)
                .map(|chunk| chunk_sums(chunk, run, channels)),
            channels,
        )
    }

    /// [`channel_sums`] over the images of a gradient whose images lie apart (a slice of a
    /// concatenation's gradient), one task per image, read in place.
    fn image_channel_sums(
        gradient: &Images,
        batch: usize,
        run: usize,
        channels: usize,
    ) -> Vec<f32> {
        if run == 0 || channels == 0 {
            return vec![0.0; channels];
        }
        total(
            (0..batch)
                .into_par_iter()
                .map(|n| chunk_sums(gradient.image(n), run, channels)),
            channels,
        )
    }

    /// The per-channel sums of one chunk that starts at channel 0, in `f64`.
    fn chunk_sums(chunk: &[f32], run: usize, channels: usize) -> Vec<f64> {
        if run == 1 {
            // Channels last: rows of the whole channel vector, summed in f32 per task (at
            // most a task's rows each).
            let mut sums = vec![0.0f32; channels];
            for row in chunk.chunks_exact(channels) {
                for (sum, &value) in sums.iter_mut().zip(row) {
                    *sum += value;
                }
            }
            return sums.into_iter().map(f64::from).collect();
        }
        let mut sums = vec![0.0f64; channels];
        for (index, values) in chunk.chunks(run).enumerate() {
            sums[index % channels] += f64::from(values.iter().sum::<f32>());
        }
        sums
    }

    fn total(partials: impl ParallelIterator<Item = Vec<f64>>, channels: usize) -> Vec<f32> {
        partials
            .reduce(
                || vec![0.0f64; channels],
                |mut left, right| {
                    for (l, r) in left.iter_mut().zip(right) {
                        *l += r;
                    }
                    left
                },
            )
            .into_iter()
            .map(|sum| sum as f32)
            .collect()
    }

    impl ChannelBiasBackend for Flex {
        fn channel_bias(x: FlexTensor, bias: FlexTensor, channel_axis: usize) -> FlexTensor {
            forward(x, &bias, channel_axis)
        }
    }

    impl<C: CheckpointStrategy> ChannelBiasBackend for Autodiff<Flex, C> {
        fn channel_bias(
            x: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            channel_axis: usize,
        ) -> FloatTensor<Self> {
            let (x, x_node) = x.into_parts();
            let (bias, bias_node) = bias.into_parts();
            let output = forward(x, &bias, channel_axis);
            match ChannelBiasNode
                .prepare::<C>([x_node, bias_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(channel_axis, output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct ChannelBiasNode;

    impl Backward<Flex, 2> for ChannelBiasNode {
        /// The channel axis.
        type State = usize;

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [x_parent, bias_parent] = ops.parents;
            let channel_axis = ops.state;
            let mut upstream = grads.consume::<Flex>(&ops.node);
            if let Some(parent) = bias_parent {
                let shape = upstream.layout().shape().to_vec();
                let (channels, run) = (shape[channel_axis], run_length(&shape, channel_axis));
                let images = images(&upstream);
                let sums = if images.strided() {
                    // A slice of a concatenation's gradient, whose images lie apart: summed
                    // and handed on in place (the convolution below reads it so too).
                    image_channel_sums(&images, shape[0], run, channels)
                } else {
                    let values = values(&upstream);
                    let sums = channel_sums(&values, run, channels);
                    // Any other layout was just copied into order: hand the copy on, so that
                    // the operation below does not copy it again.
                    if let std::borrow::Cow::Owned(contiguous) = values {
                        upstream = flex_tensor(contiguous, shape);
                    }
                    sums
                };
                grads.register::<Flex>(parent.id, flex_tensor(sums, [channels]));
            }
            // ∂L/∂x is the upstream gradient itself: handed on, not copied again.
            if let Some(parent) = x_parent {
                grads.register::<Flex>(parent.id, upstream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// Kernel and composed form agree in values and both gradients, channels first and last,
    /// on a fresh input, on one that another tensor shares (which must keep its values) and
    /// on a transposed view.
    #[test]
    fn the_flex_kernel_is_the_composed_form_and_leaves_shared_inputs_alone() {
        let device = Device::flex().autodiff();
        for (channel_axis, dims) in [(1, [3, 5, 7, 9]), (3, [2, 40, 41, 6]), (1, [2, 70, 30, 30])] {
            let channels = dims[channel_axis];
            let x: Tensor<4> =
                Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let bias: Tensor<1> =
                Tensor::random([channels], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let upstream: Tensor<4> = Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let before = x.to_data();
            let run = |f: fn(Tensor<4>, Tensor<1>, usize) -> Tensor<4>| {
                // `x * 1` is a fresh buffer the kernel may write in place; `x` itself is
                // shared with the test and must not change.
                let mut outputs = vec![];
                for input in [x.clone() * 1.0, x.clone()] {
                    let output = f(input, bias.clone(), channel_axis);
                    let grads = (output.clone() * upstream.clone()).sum().backward();
                    outputs.push((
                        output.into_data(),
                        x.grad(&grads).expect("x gradient").into_data(),
                        bias.grad(&grads).expect("bias gradient").into_data(),
                    ));
                }
                outputs
            };
            let (ours, theirs) = (run(add_channel_bias), run(add_channel_bias_composed));
            let tolerance = Tolerance::rel_abs(1e-5, 1e-4);
            for (ours, theirs) in ours.iter().zip(&theirs) {
                ours.0.assert_approx_eq::<f32>(&theirs.0, tolerance);
                ours.1.assert_approx_eq::<f32>(&theirs.1, tolerance);
                ours.2.assert_approx_eq::<f32>(&theirs.2, tolerance);
            }
            x.to_data()
                .assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
        }
        // A transposed (strided) input, without autodiff: H and W swapped.
        let device = Device::flex();
        let x: Tensor<4> = Tensor::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let bias: Tensor<1> = Tensor::random([3], Distribution::Normal(0.0, 1.0), &device);
        let strided = x.swap_dims(2, 3);
        add_channel_bias(strided.clone(), bias.clone(), 1)
            .into_data()
            .assert_approx_eq::<f32>(
                &add_channel_bias_composed(strided, bias, 1).into_data(),
                Tolerance::absolute(1e-6),
            );
    }

    #[test]
    #[should_panic(expected = "does not fit channel axis")]
    fn a_bias_of_the_wrong_size_is_refused() {
        let device = Device::flex();
        let _ = add_channel_bias(
            Tensor::zeros([1, 2, 3, 4], &device),
            Tensor::zeros([3], &device),
            1,
        );
    }
}

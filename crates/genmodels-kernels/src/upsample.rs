//! Nearest-neighbour upsampling, each pixel repeated as an `f × f` block: the U-Net's way up
//! and the super-resolution tools' `U`.

use burn::tensor::Tensor;

/// Each pixel repeated as a `factor × factor` block: `y[n, c, i, j] = x[n, c, ⌊i/f⌋, ⌊j/f⌋]`.
/// Its gradient sums each block: `∂L/∂x[n, c, y, x] = Σ_{a,b<f} ∂L/∂y[n, c, f·y + a, f·x + b]`.
///
/// On flex (`f32`) one pass each way (see `UpsampleBackend`). burn has no nearest-neighbour
/// repeat of its own but `interpolate`, and the composed form's reshape of a broadcast view
/// walks flex's general strided iterator value by value: with its backward's two reductions,
/// about 3% of a DDPM training step in a profile. Elsewhere it is
/// [`upsample_nearest_composed`] (tested to agree).
///
/// # Shapes
/// - x: `[N, C, H, W]`
/// - output: `[N, C, f·H, f·W]`
///
/// # Panics
/// If `factor` is 0.
pub fn upsample_nearest(x: Tensor<4>, factor: usize) -> Tensor<4> {
    assert!(factor > 0, "an upsampling factor must be positive");
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&x) {
        return flex_kernel::upsample_nearest(x, factor);
    }
    upsample_nearest_composed(x, factor)
}

/// [`upsample_nearest`] composed from burn's operations: a reshape, a broadcast and a reshape.
pub fn upsample_nearest_composed(x: Tensor<4>, factor: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, factor, w, factor])
        .reshape([n, c, h * factor, w * factor])
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The repeat and its block sums on flex, and the autodiff node.

    use crate::sigmoid::vectorised;
    use crate::support::{flex_tensor, is_flex_f32, par_written, values};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::tensor::Tensor;
    use std::mem::MaybeUninit;

    /// Input values per parallel task (whole planes, at least one).
    const VALUES_PER_TASK: usize = 1 << 13;

    /// Nearest-neighbour upsampling as a backend operation with its own backward pass;
    /// implemented for flex and autodiff-over-flex. Called through [`super::upsample_nearest`].
    #[backend_extension(Flex, Autodiff)]
    pub trait UpsampleBackend: Backend {
        /// `[N, C, H, W] → [N, C, f·H, f·W]`, each pixel an `f × f` block.
        fn fused_upsample_nearest(tensor: FloatTensor<Self>, factor: usize) -> FloatTensor<Self>;
    }

    pub(super) fn applies(x: &Tensor<4>) -> bool {
        is_flex_f32(&x.device(), &[x.dtype()])
    }

    pub(super) fn upsample_nearest(x: Tensor<4>, factor: usize) -> Tensor<4> {
        Tensor::from_dispatch(
            <burn::backend::Dispatch as UpsampleBackend>::fused_upsample_nearest(
                x.into_dispatch(),
                factor,
            ),
        )
    }

    /// Whole `[H, W]` planes per task.
    fn planes_per_task(plane: usize) -> usize {
        (VALUES_PER_TASK / plane.max(1)).max(1)
    }

    /// The repeat, plane by plane: each input row becomes one output row of `f`-fold values,
    /// copied `f − 1` times below itself.
    fn forward(x: &[f32], [h, w]: [usize; 2], f: usize) -> Vec<f32> {
        let (plane, wide) = (h * w, w * f);
        let out_plane = plane * f * f;
        let chunk = planes_per_task(plane) * out_plane;
        // SAFETY: every output row of every plane of a chunk is written: row `f·y` value by
        // value, rows `f·y + 1 .. f·y + f` as copies of it.
        unsafe {
            par_written(x.len() * f * f, chunk, |task, output| {
                let first_plane = task * chunk / out_plane;
                for (p, out) in output.chunks_mut(out_plane).enumerate() {
                    let input = &x[(first_plane + p) * plane..][..plane];
                    for (row, block) in input.chunks(w).zip(out.chunks_mut(wide * f)) {
                        let (first, rest) = block.split_at_mut(wide);
                        for (pixel, &value) in first.chunks_mut(f).zip(row) {
                            for slot in pixel {
                                slot.write(value);
                            }
                        }
                        for copy in rest.chunks_mut(wide) {
                            copy.copy_from_slice(first);
                        }
                    }
                }
            })
        }
    }

    /// The adjoint of the repeat: each `f × f` block of the upstream gradient summed.
    fn backward(upstream: &[f32], [h, w]: [usize; 2], f: usize) -> Vec<f32> {
        let (plane, wide) = (h * w, w * f);
        let out_plane = plane * f * f;
        let chunk = planes_per_task(plane) * plane;
        // SAFETY: every value of every plane of a chunk is written, row by row.
        unsafe {
            par_written(upstream.len() / (f * f), chunk, |task, gradient| {
                let first_plane = task * chunk / plane;
                for (p, plane_gradient) in gradient.chunks_mut(plane).enumerate() {
                    let up = &upstream[(first_plane + p) * out_plane..][..out_plane];
                    for (row, block) in plane_gradient.chunks_mut(w).zip(up.chunks(wide * f)) {
                        block_sums(row, block, wide, f);
                    }
                }
            })
        }
    }

    vectorised! {
        /// `row[x] = Σ_{a,b<f} block[a·wide + f·x + b]`: one input row's gradient from the `f`
        /// output rows (`wide` values each) it was copied to.
        fn block_sums(row: &mut [MaybeUninit<f32>], block: &[f32], wide: usize, f: usize) {
            assert_eq!(block.len(), f * wide);
            for (x, slot) in row.iter_mut().enumerate() {
                let mut sum = 0.0f32;
                for a in 0..f {
                    for &value in &block[a * wide + f * x..a * wide + f * x + f] {
                        sum += value;
                    }
                }
                slot.write(sum);
            }
        }
    }

    fn spatial(shape: &[usize]) -> [usize; 2] {
        let [_, _, h, w] = shape[..] else {
            panic!("nearest-neighbour upsampling takes [N, C, H, W]");
        };
        [h, w]
    }

    fn upsampled_shape(shape: &[usize], f: usize) -> [usize; 4] {
        [shape[0], shape[1], shape[2] * f, shape[3] * f]
    }

    impl UpsampleBackend for Flex {
        fn fused_upsample_nearest(tensor: FlexTensor, factor: usize) -> FlexTensor {
            let shape = tensor.layout().shape().to_vec();
            let output = forward(&values(&tensor), spatial(&shape), factor);
            flex_tensor(output, upsampled_shape(&shape, factor))
        }
    }

    impl<C: CheckpointStrategy> UpsampleBackend for Autodiff<Flex, C> {
        fn fused_upsample_nearest(tensor: FloatTensor<Self>, factor: usize) -> FloatTensor<Self> {
            let (input, node) = tensor.into_parts();
            let input_size = spatial(input.layout().shape());
            let output = <Flex as UpsampleBackend>::fused_upsample_nearest(input, factor);
            match UpsampleNode.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((input_size, factor), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct UpsampleNode;

    impl Backward<Flex, 1> for UpsampleNode {
        /// The input's `[H, W]` and the factor.
        type State = ([usize; 2], usize);

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            if let Some(parent) = parent {
                let ([h, w], factor) = ops.state;
                let shape = upstream.layout().shape().to_vec();
                let gradient = backward(&values(&upstream), [h, w], factor);
                grads
                    .register::<Flex>(parent.id, flex_tensor(gradient, [shape[0], shape[1], h, w]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// Kernel and composed form agree in values and gradients, for factors 1 to 3, on planes
    /// that fill several tasks and on a transposed (strided) input.
    #[test]
    fn the_flex_kernel_is_the_composed_form() {
        let device = Device::flex().autodiff();
        for (dims, factor) in [
            ([2, 3, 4, 5], 2),
            ([1, 2, 3, 3], 1),
            ([2, 2, 5, 3], 3),
            ([3, 70, 14, 14], 2),
        ] {
            for transposed in [false, true] {
                let x: Tensor<4> =
                    Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device).require_grad();
                // Made afresh for each run: a backward pass consumes the swap's node.
                let input = || {
                    if transposed {
                        x.clone().swap_dims(2, 3)
                    } else {
                        x.clone()
                    }
                };
                let [n, c, h, w] = input().dims();
                let upstream: Tensor<4> = Tensor::random(
                    [n, c, h * factor, w * factor],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                let run = |f: fn(Tensor<4>, usize) -> Tensor<4>| {
                    let output = f(input(), factor);
                    let grads = (output.clone() * upstream.clone()).sum().backward();
                    (
                        output.into_data(),
                        x.grad(&grads).expect("x gradient").into_data(),
                    )
                };
                let (ours, theirs) = (run(upsample_nearest), run(upsample_nearest_composed));
                ours.0
                    .assert_approx_eq::<f32>(&theirs.0, Tolerance::absolute(0.0));
                ours.1
                    .assert_approx_eq::<f32>(&theirs.1, Tolerance::rel_abs(1e-6, 1e-5));
            }
        }
    }

    #[test]
    fn each_pixel_becomes_a_block_and_the_gradient_sums_it() {
        let device = Device::flex().autodiff();
        let x: Tensor<4> = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device)
            .reshape([1, 1, 2, 2])
            .require_grad();
        let output = upsample_nearest(x.clone(), 2);
        let expected: Tensor<4> = Tensor::<1>::from_floats(
            [
                1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
            ],
            &device,
        )
        .reshape([1, 1, 4, 4]);
        output
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(0.0));
        // Weights 0..16 over the output: each input pixel's gradient is its block's sum.
        let weights: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let weights: Tensor<4> =
            Tensor::<1>::from_floats(weights.as_slice(), &device).reshape([1, 1, 4, 4]);
        let grads = (output * weights).sum().backward();
        let gradient: Vec<f32> = x
            .grad(&grads)
            .expect("gradient")
            .to_data()
            .try_to_vec()
            .expect("f32 values");
        assert_eq!(gradient, vec![10.0, 18.0, 42.0, 50.0]);
    }
}

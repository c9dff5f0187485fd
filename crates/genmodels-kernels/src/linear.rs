//! An affine map `x·W + b` with a fused flex kernel: the 1×1 convolutions of the PixelCNNs on
//! channels-last maps.

use burn::tensor::Tensor;

/// `y = x·W + b`, each row of `x` mapped by the same weight and shifted by the same bias:
///
/// ```text
/// y[r, j] = Σ_i x[r, i] · W[i, j] + b[j]
/// ∂L/∂x = ∂L/∂y · Wᵀ     ∂L/∂W = xᵀ · ∂L/∂y     ∂L/∂b[j] = Σ_r ∂L/∂y[r, j]
/// ```
///
/// The same function as burn's `x.matmul(W) + b` ([`linear_composed`], tested to agree), for
/// speed. On flex (`f32`) it is `LinearBackend`'s kernel: the rows of the result start as the
/// bias and gemm adds the product onto them, so the bias costs no pass of its own, and the
/// backward pass is two products and one column sum. flex's `matmul` writes its result into a
/// zeroed buffer that it then copies to realign it (about 10% of a PixelCNN training step
/// was that copy and zeroing), and the bias is a separate pass each way.
///
/// # Shapes
/// - input: `[rows, in]`
/// - weight: `[in, out]`
/// - bias: `[out]`
/// - output: `[rows, out]`
///
/// # Panics
/// If the shapes do not fit together (a programming error in the calling layer).
pub fn linear(input: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    check_shapes(&input, &weight, &bias);
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&input, &weight, &bias) {
        return flex_kernel::linear(input, weight, bias);
    }
    linear_composed(input, weight, bias)
}

/// [`linear`] from burn's differentiable operations: a matrix product and a broadcast sum.
pub fn linear_composed(input: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    check_shapes(&input, &weight, &bias);
    input.matmul(weight) + bias.unsqueeze_dim(0)
}

fn check_shapes(input: &Tensor<2>, weight: &Tensor<2>, bias: &Tensor<1>) {
    let ([_, input_width], [weight_rows, outputs], [biases]) =
        (input.dims(), weight.dims(), bias.dims());
    assert!(
        input_width == weight_rows && biases == outputs,
        "linear: input {:?}, weight {:?} and bias {:?} do not fit together",
        input.dims(),
        weight.dims(),
        bias.dims()
    );
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The flex kernel and its autodiff node.

    use crate::bias::column_sums;
    use crate::product::{Operand, product, written_by};
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

    /// Rows per parallel task of the bias fill.
    const ROWS_PER_TASK: usize = 1024;

    /// `x·W + b` as a backend operation with its own backward pass; implemented for flex and
    /// autodiff-over-flex. Called through [`super::linear`], which checks the shapes.
    #[backend_extension(Flex, Autodiff)]
    pub trait LinearBackend: Backend {
        /// `[rows, in]`, `[in, out]`, `[out]` → `[rows, out]`.
        fn fused_linear(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies(input: &Tensor<2>, weight: &Tensor<2>, bias: &Tensor<1>) -> bool {
        is_flex_f32(
            &input.device(),
            &[input.dtype(), weight.dtype(), bias.dtype()],
        )
    }

    pub(super) fn linear(input: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
        Tensor::from_dispatch(<burn::backend::Dispatch as LinearBackend>::fused_linear(
            input.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    }

    /// `[rows, in]` and `[in, out]` of a call.
    fn sizes(input: &FlexTensor, weight: &FlexTensor) -> (usize, usize, usize) {
        let (input_shape, weight_shape) = (input.layout().shape(), weight.layout().shape());
        (input_shape[0], input_shape[1], weight_shape[1])
    }

    /// The forward pass: each row of the result set to the bias, then `x·W` added by gemm.
    fn forward(input: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
        let (rows, inputs, outputs) = sizes(input, weight);
        let (x, w, b) = (values(input), values(weight), values(bias));
        let mut y = Vec::with_capacity(rows * outputs);
        y.spare_capacity_mut()[..rows * outputs]
            .par_chunks_mut((ROWS_PER_TASK * outputs).max(1))
            .for_each(|chunk| {
                for row in chunk.chunks_exact_mut(outputs.max(1)) {
                    for (value, &bias) in row.iter_mut().zip(b.iter()) {
                        value.write(bias);
                    }
                }
            });
        // SAFETY: every value was written just above.
        unsafe { y.set_len(rows * outputs) };
        if rows > 0 && outputs > 0 && inputs > 0 {
            // SAFETY: `x` is rows × inputs, `w` inputs × outputs and `y` rows × outputs, all
            // row-major and distinct.
            unsafe {
                product(
                    [rows, outputs, inputs],
                    Operand::row_major(y.as_mut_ptr(), outputs),
                    true,
                    Operand::row_major(x.as_ptr(), inputs),
                    Operand::row_major(w.as_ptr(), outputs),
                    gemm::Parallelism::Rayon(0),
                )
            };
        }
        flex_tensor(y, [rows, outputs])
    }

    impl LinearBackend for Flex {
        fn fused_linear(input: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
            forward(&input, &weight, &bias)
        }
    }

    impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
        fn fused_linear(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            let (input_tracked, weight_tracked) = (input.is_tracked(), weight.is_tracked());
            let (input, input_node) = input.into_parts();
            let (weight, weight_node) = weight.into_parts();
            let (bias, bias_node) = bias.into_parts();
            let output = forward(&input, &weight, &bias);
            match LinearNode
                .prepare::<C>([input_node, weight_node, bias_node])
                .compute_bound()
                .stateful()
            {
                // Each gradient needs the other operand only: the tensors themselves are kept
                // (shared, not copied).
                OpsKind::Tracked(prep) => prep.finish(
                    NodeState {
                        input: weight_tracked.then_some(input),
                        weight: input_tracked.then_some(weight),
                    },
                    output,
                ),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    /// `lhs · rhs` for `[m, n, k]` into a new row-major `m × n` buffer, every value written by
    /// the product (so the buffer is not zeroed first).
    ///
    /// # Safety
    /// Each operand's values, for its shape and strides, must lie inside one allocation.
    unsafe fn fresh_product(
        [m, n, k]: [usize; 3],
        lhs: Operand<*const f32>,
        rhs: Operand<*const f32>,
    ) -> Vec<f32> {
        // SAFETY: the caller's promise for the operands; `dst` is the new m × n buffer, which
        // the product writes whole (accumulate off).
        unsafe {
            written_by(m * n, |dst| {
                product(
                    [m, n, k],
                    Operand::row_major(dst, n),
                    false,
                    lhs,
                    rhs,
                    gemm::Parallelism::Rayon(0),
                )
            })
        }
    }

    #[derive(Debug)]
    struct LinearNode;

    #[derive(Clone, Debug)]
    struct NodeState {
        /// `x`, where the weight's gradient is needed.
        input: Option<FlexTensor>,
        /// `W`, where the input's gradient is needed.
        weight: Option<FlexTensor>,
    }

    impl Backward<Flex, 3> for LinearNode {
        type State = NodeState;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, weight_parent, bias_parent] = ops.parents;
            let grad_output = grads.consume::<Flex>(&ops.node);
            let g = values(&grad_output);
            let [rows, outputs] = [
                grad_output.layout().shape()[0],
                grad_output.layout().shape()[1],
            ];
            if let (Some(parent), Some(weight)) = (input_parent, ops.state.weight) {
                let inputs = weight.layout().shape()[0];
                let w = values(&weight);
                // ∂L/∂x = G·Wᵀ: Wᵀ read from W's rows, column stride `outputs`.
                // SAFETY: `g` is rows × outputs, `w` inputs × outputs.
                let gradient = unsafe {
                    fresh_product(
                        [rows, inputs, outputs],
                        Operand::row_major(g.as_ptr(), outputs),
                        Operand::strided(w.as_ptr(), (outputs as isize, 1)),
                    )
                };
                grads.register::<Flex>(parent.id, flex_tensor(gradient, [rows, inputs]));
            }
            if let (Some(parent), Some(input)) = (weight_parent, ops.state.input) {
                let inputs = input.layout().shape()[1];
                let x = values(&input);
                // ∂L/∂W = xᵀ·G: xᵀ read from x's rows, column stride `inputs`.
                // SAFETY: `x` is rows × inputs, `g` rows × outputs.
                let gradient = unsafe {
                    fresh_product(
                        [inputs, outputs, rows],
                        Operand::strided(x.as_ptr(), (inputs as isize, 1)),
                        Operand::row_major(g.as_ptr(), outputs),
                    )
                };
                grads.register::<Flex>(parent.id, flex_tensor(gradient, [inputs, outputs]));
            }
            if let Some(parent) = bias_parent {
                grads.register::<Flex>(parent.id, flex_tensor(column_sums(&g, outputs), [outputs]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// The kernel and the composed form agree in values and in all three gradients, over
    /// shapes that cross the kernel's task size and a transposed (strided) input.
    #[test]
    fn the_flex_kernel_is_the_composed_form_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        for (rows, inputs, outputs, transposed) in [
            (3, 5, 7, false),
            (2500, 24, 48, false),
            (1030, 64, 1, true),
            (1, 1, 1, false),
        ] {
            let input: Tensor<2> = if transposed {
                Tensor::random([inputs, rows], Distribution::Normal(0.0, 1.0), &device).transpose()
            } else {
                Tensor::random([rows, inputs], Distribution::Normal(0.0, 1.0), &device)
            };
            let input = input.detach().require_grad();
            let weight: Tensor<2> =
                Tensor::random([inputs, outputs], Distribution::Normal(0.0, 0.5), &device)
                    .require_grad();
            let bias: Tensor<1> =
                Tensor::random([outputs], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let upstream: Tensor<2> =
                Tensor::random([rows, outputs], Distribution::Normal(0.0, 1.0), &device);
            let run = |f: fn(Tensor<2>, Tensor<2>, Tensor<1>) -> Tensor<2>| {
                let output = f(input.clone(), weight.clone(), bias.clone());
                let grads = (output.clone() * upstream.clone()).sum().backward();
                (
                    output.into_data(),
                    input.grad(&grads).expect("input gradient").into_data(),
                    weight.grad(&grads).expect("weight gradient").into_data(),
                    bias.grad(&grads).expect("bias gradient").into_data(),
                )
            };
            let ours = run(linear);
            let theirs = run(linear_composed);
            // Sums of up to 2,500 terms of order 1 in f32, added in different orders.
            let tolerance = Tolerance::rel_abs(1e-4, 1e-3);
            ours.0.assert_approx_eq::<f32>(&theirs.0, tolerance);
            ours.1.assert_approx_eq::<f32>(&theirs.1, tolerance);
            ours.2.assert_approx_eq::<f32>(&theirs.2, tolerance);
            ours.3.assert_approx_eq::<f32>(&theirs.3, tolerance);
        }
    }

    /// A hand-checked case, with and without autodiff: `[1 2; 3 4]·[1 0 2; 0 1 1] + [10 20 30]`.
    #[test]
    fn linear_gives_the_affine_map_by_hand() {
        let expected =
            burn::tensor::TensorData::new(vec![11.0f32, 22.0, 34.0, 13.0, 24.0, 40.0], [2, 3]);
        for device in [Device::flex(), Device::flex().autodiff()] {
            let input = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
            let weight = Tensor::<2>::from_floats([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]], &device);
            let bias = Tensor::<1>::from_floats([10.0, 20.0, 30.0], &device);
            linear(input, weight, bias)
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
        }
    }

    #[test]
    #[should_panic(expected = "do not fit together")]
    fn mismatched_shapes_are_refused() {
        let device = Device::flex();
        let input = Tensor::<2>::zeros([2, 3], &device);
        let weight = Tensor::<2>::zeros([4, 5], &device);
        let bias = Tensor::<1>::zeros([5], &device);
        let _ = linear(input, weight, bias);
    }
}

//! Activations on flex: `tanh` as a scaled sigmoid, ReLU and LeakyReLU in one pass each way.

use burn::tensor::Tensor;
use burn::tensor::activation::relu as relu_burn;

use crate::sigmoid;

/// `tanh(x)`, computed as `2·σ(2x) − 1`.
///
/// The same function as burn's `tanh` (within 4e-6, tested; near `x = 0` the subtraction
/// keeps σ's absolute rounding error, about 1e-6 at worst on flex), for speed: on flex, `tanh` is a
/// scalar libm call in the forward pass and again in the backward pass (autodiff recomputes it
/// from the input), while the sigmoid's backward pass reuses its output. This made the default
/// VAE's training step on flex about 1.3× faster.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x * 2.0) * 2.0 - 1.0
}

/// ReLU, `max(x, 0)`, with derivative `1` above zero and `0` at and below it: burn's `relu`,
/// for speed. On flex (`f32`) it is [`leaky_relu`]'s kernel with slope 0, one vectorised pass
/// each way; flex's own `relu` and its backward are scalar loops (together 7% of a PixelCNN
/// training step in a profile). Elsewhere burn's `relu`.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&x) {
        return flex_kernel::leaky_relu(x, 0.0);
    }
    relu_composed(x)
}

/// burn's `relu`, the form [`relu`] takes off flex (tested to agree with the kernel).
pub fn relu_composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu_burn(x)
}

/// LeakyReLU, `x` for `x ≥ 0` and `a·x` below (for `0 ≤ a ≤ 1`), with derivative `1` above
/// zero and `a` at and below it.
///
/// The same function as burn's `leaky_relu`, for speed. On flex (`f32`) it is one pass forward
/// and one backward (see `LeakyReluBackend`); elsewhere [`leaky_relu_composed`] (tested to
/// agree).
pub fn leaky_relu<const D: usize>(x: Tensor<D>, negative_slope: f64) -> Tensor<D> {
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&x) {
        return flex_kernel::leaky_relu(x, negative_slope);
    }
    leaky_relu_composed(x, negative_slope)
}

/// [`leaky_relu`] as `(1 − a)·relu(x) + a·x`, from burn's differentiable operations. burn's own
/// `leaky_relu` runs as a comparison and a masked select under autodiff, differentiated with
/// two more (slow on flex); this form's backward pass is a ReLU mask and two scalings (it made
/// a DCGAN training step on flex about 1.25× faster than burn's).
pub fn leaky_relu_composed<const D: usize>(x: Tensor<D>, negative_slope: f64) -> Tensor<D> {
    relu_burn(x.clone()) * (1.0 - negative_slope) + x * negative_slope
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! LeakyReLU on flex in one pass, and its autodiff node.

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

    /// Values per parallel task.
    const VALUES_PER_TASK: usize = 1 << 14;

    /// LeakyReLU as a backend operation with its own backward pass; implemented for flex and
    /// autodiff-over-flex. Called through [`super::leaky_relu`].
    #[backend_extension(Flex, Autodiff)]
    pub trait LeakyReluBackend: Backend {
        /// `x` for `x ≥ 0`, `negative_slope·x` below; any shape.
        fn fused_leaky_relu(tensor: FloatTensor<Self>, negative_slope: f32) -> FloatTensor<Self>;
    }

    pub(super) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
        is_flex_f32(&x.device(), &[x.dtype()])
    }

    pub(super) fn leaky_relu<const D: usize>(x: Tensor<D>, negative_slope: f64) -> Tensor<D> {
        Tensor::from_dispatch(
            <burn::backend::Dispatch as LeakyReluBackend>::fused_leaky_relu(
                x.into_dispatch(),
                negative_slope as f32,
            ),
        )
    }

    /// `x·(x > 0 ? 1 : a)`, applied to `values` (the forward pass) or to the upstream
    /// gradient, with the input deciding the factor (the backward pass).
    fn scaled(values: &[f32], input: &[f32], negative_slope: f32) -> Vec<f32> {
        // SAFETY: `scale_by_sign` writes every value of its output chunk.
        unsafe {
            par_written(values.len(), VALUES_PER_TASK, |task, output| {
                let span = task * VALUES_PER_TASK..task * VALUES_PER_TASK + output.len();
                scale_by_sign(output, &values[span.clone()], &input[span], negative_slope)
            })
        }
    }

    vectorised! {
        /// The loop of [`scaled`]: a factor of 1 or `a` picked per value, which compiles to a
        /// vector blend (an `if` around the product compiled to a branch, mispredicted on
        /// half of all values; 16-value blocks made AVX-512 gather across blocks).
        fn scale_by_sign(
            output: &mut [MaybeUninit<f32>],
            values: &[f32],
            input: &[f32],
            negative_slope: f32,
        ) {
            assert_eq!((values.len(), input.len()), (output.len(), output.len()));
            for ((out, &value), &x) in output.iter_mut().zip(values).zip(input) {
                let factor = if x > 0.0 { 1.0 } else { negative_slope };
                out.write(value * factor);
            }
        }
    }

    impl LeakyReluBackend for Flex {
        fn fused_leaky_relu(tensor: FlexTensor, negative_slope: f32) -> FlexTensor {
            let x = values(&tensor);
            let shape = tensor.layout().shape().clone();
            flex_tensor(scaled(&x, &x, negative_slope), shape)
        }
    }

    impl<C: CheckpointStrategy> LeakyReluBackend for Autodiff<Flex, C> {
        fn fused_leaky_relu(tensor: FloatTensor<Self>, negative_slope: f32) -> FloatTensor<Self> {
            let (input, node) = tensor.into_parts();
            let shape = input.layout().shape().clone();
            let output = flex_tensor(
                {
                    let x = values(&input);
                    scaled(&x, &x, negative_slope)
                },
                shape,
            );
            match LeakyReluNode
                .prepare::<C>([node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(
                    NodeState {
                        input,
                        negative_slope,
                    },
                    output,
                ),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct LeakyReluNode;

    #[derive(Clone, Debug)]
    struct NodeState {
        /// The input itself (shared, not copied): the backward pass reads its signs.
        input: FlexTensor,
        negative_slope: f32,
    }

    impl Backward<Flex, 1> for LeakyReluNode {
        type State = NodeState;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            if let Some(parent) = parent {
                let shape = upstream.layout().shape().clone();
                let NodeState {
                    input,
                    negative_slope,
                } = ops.state;
                let gradient = scaled(&values(&upstream), &values(&input), negative_slope);
                grads.register::<Flex>(parent.id, flex_tensor(gradient, shape));
            }
        }
    }
}

#[cfg(test)]
mod activation_tests {
    use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};

    /// `ours` and `theirs` give the same values and the same gradients (within `tolerance`),
    /// over inputs that reach far into the tails.
    fn assert_same_function(
        tolerance: f32,
        ours: impl Fn(Tensor<2>) -> Tensor<2>,
        theirs: impl Fn(Tensor<2>) -> Tensor<2>,
    ) {
        let device = Device::flex().autodiff();
        let x: Tensor<2> =
            Tensor::random([16, 33], Distribution::Normal(0.0, 4.0), &device).require_grad();
        let weights: Tensor<2> = Tensor::random([16, 33], Distribution::Normal(0.0, 1.0), &device);
        let (ours, theirs) = (ours(x.clone()), theirs(x.clone()));
        ours.to_data()
            .assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::absolute(tolerance));
        let ours = x
            .grad(&(ours * weights.clone()).sum().backward())
            .expect("gradient");
        let theirs = x
            .grad(&(theirs * weights).sum().backward())
            .expect("gradient");
        ours.into_data()
            .assert_approx_eq::<f32>(&theirs.into_data(), Tolerance::absolute(tolerance));
    }

    #[test]
    fn tanh_matches_burns() {
        // 2σ(2x) − 1 keeps σ's absolute rounding error near 0: up to 1.1e-6 was seen in 300
        // runs on flex with AVX2, so 1e-6 failed one run in a hundred.
        assert_same_function(4e-6, super::tanh, burn::tensor::activation::tanh);
    }

    #[test]
    fn leaky_relu_matches_burns() {
        for slope in [0.0, 0.01, 0.2, 1.0] {
            assert_same_function(
                1e-6,
                |x| super::leaky_relu(x, slope),
                |x| burn::tensor::activation::leaky_relu(x, slope),
            );
            assert_same_function(
                1e-6,
                |x| super::leaky_relu_composed(x, slope),
                |x| burn::tensor::activation::leaky_relu(x, slope),
            );
        }
    }

    #[test]
    fn relu_matches_burns() {
        assert_same_function(0.0, super::relu, burn::tensor::activation::relu);
        assert_same_function(0.0, super::relu_composed, burn::tensor::activation::relu);
    }

    #[test]
    fn leaky_relu_has_slope_a_at_zero_and_reads_strided_views() {
        // A transposed view, values at zero, and a slope of 0.2: y and ∂L/∂x by hand.
        let x_values = vec![-2.0f32, 0.0, 3.0, -0.5, 1.5, 0.0];
        let expected_output = TensorData::new(vec![-0.4f32, -0.1, 0.0, 1.5, 3.0, 0.0], [3, 2]);
        let expected_gradient = TensorData::new(vec![0.2f32, 0.6, 5.0, 0.4, 4.0, 1.2], [2, 3]);
        let device = Device::flex().autodiff();
        let upstream: Tensor<2> = Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]),
            &device,
        );
        for leaky_relu in [super::leaky_relu, super::leaky_relu_composed] {
            let x: Tensor<2> =
                Tensor::from_data(TensorData::new(x_values.clone(), [2, 3]), &device)
                    .require_grad();
            let output = leaky_relu(x.clone().transpose(), 0.2);
            let gradient = x
                .grad(&(output.clone() * upstream.clone()).sum().backward())
                .expect("gradient");
            output
                .into_data()
                .assert_approx_eq::<f32>(&expected_output, Tolerance::absolute(1e-6));
            gradient
                .into_data()
                .assert_approx_eq::<f32>(&expected_gradient, Tolerance::absolute(1e-6));
        }
        // Without autodiff.
        let x: Tensor<2> = Tensor::from_data(TensorData::new(x_values, [2, 3]), &Device::flex());
        super::leaky_relu(x.transpose(), 0.2)
            .into_data()
            .assert_approx_eq::<f32>(&expected_output, Tolerance::absolute(1e-6));
    }
}

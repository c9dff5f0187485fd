//! The logistic sigmoid on flex in one vectorised pass each way: the gates of the Gated
//! PixelCNN and the LSTM cells (and, through [`crate::tanh`], every tanh).

use burn::tensor::Tensor;

/// The logistic sigmoid `σ(x) = 1 / (1 + e^{−x})`, with derivative `σ(x)·(1 − σ(x))`.
///
/// The same function as burn's `sigmoid` (within 1e-6, tested), for speed. On flex (`f32`) it
/// is one vectorised pass forward and one backward (see `SigmoidBackend`): flex computes
/// `e^{−x}` with a scalar libm call per value, which took about 40% of a Gated PixelCNN
/// training step in a profile. Elsewhere it is burn's `sigmoid`.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&x) {
        return flex_kernel::sigmoid(x);
    }
    burn::tensor::activation::sigmoid(x)
}

/// `e^x` for `f32` in a form the compiler vectorises (no libm call, no branch, no float-to-int
/// conversion, whose saturation checks compile to scalar code per lane): Cephes' `expf`, a
/// degree-6 polynomial after reducing `x = n·ln 2 + r` with `n` the nearest integer to
/// `x·log₂e` (so `|r| ≤ ln 2 / 2`), then `2^n` put into the exponent bits. Relative error below
/// 3e-7 for `x` in `[−87.3, 88.3]`; `x` is clamped to that range (so `e^x` stays a normal,
/// finite number), and NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so that n·LN2_HIGH is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let polynomial =
        ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let mantissa = polynomial * r * r + r + 1.0;
    // n (in −126..=127) from the bits of `shifted`, moved into the exponent field.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let two_to_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    mantissa * two_to_n
}

/// `ln(1 + e)` for `e` in `[0, 1]` (the `log1p(e^{−|x|})` of a softplus), in a form the compiler
/// vectorises: Cephes' `logf` polynomial for `ln(1 + f)` with `|f| ≤ √2 − 1`, taking `f = e`
/// below `√2 − 1` (so small `e` keep every bit, as `log1p` does) and `1 + e = 2·(1 + f)` above.
/// Relative error below 3e-7 on that range.
#[inline(always)]
pub(crate) fn log1p_unit(e: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let upper = e >= std::f32::consts::SQRT_2 - 1.0;
    // (1 + e)/2 − 1 = (e − 1)/2, exact in f32.
    let f = if upper { (e - 1.0) * 0.5 } else { e };
    let k = if upper { 1.0 } else { 0.0 };
    let z = f * f;
    let polynomial = ((((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * z;
    let y = polynomial + LN2_LOW * k - 0.5 * z;
    f + y + LN2_HIGH * k
}

/// Defines `fn $name($args)` whose body is compiled three times, for AVX-512, for AVX2 with
/// FMA and for the baseline, the first one the CPU has picked at run time. The binaries are
/// built for the baseline x86-64, whose 4-wide vectors would leave most of a wider unit idle;
/// AVX-512 is used only with the `avx512` feature, as gemm's;
/// the loops of the body are vectorised for each target. (A closure passed to one
/// `#[target_feature]` function is not enough: it is compiled on its own, for the baseline.)
#[cfg(feature = "kernels")]
macro_rules! vectorised {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                // Without the `avx512` feature (benches/avx2.sh) AVX-512 stays unused.
                if cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
#[cfg(feature = "kernels")]
pub(crate) use vectorised;

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! σ on flex in one pass each way, and its autodiff node.

    use super::exp;
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

    /// σ as a backend operation with its own backward pass; implemented for flex and
    /// autodiff-over-flex. Called through [`super::sigmoid`].
    #[backend_extension(Flex, Autodiff)]
    pub trait SigmoidBackend: Backend {
        /// `1 / (1 + e^{−x})`; any shape.
        fn fused_sigmoid(tensor: FloatTensor<Self>) -> FloatTensor<Self>;
    }

    pub(super) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
        is_flex_f32(&x.device(), &[x.dtype()])
    }

    pub(super) fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        Tensor::from_dispatch(<burn::backend::Dispatch as SigmoidBackend>::fused_sigmoid(
            x.into_dispatch(),
        ))
    }

    /// σ of every value, in parallel chunks.
    fn forward(x: &[f32]) -> Vec<f32> {
        // SAFETY: `forward_into` writes every value of its output chunk.
        unsafe {
            par_written(x.len(), VALUES_PER_TASK, |task, output| {
                let start = task * VALUES_PER_TASK;
                forward_into(output, &x[start..start + output.len()]);
            })
        }
    }

    /// `g·y·(1 − y)` for the upstream gradient `g` and the output `y`, in parallel chunks.
    fn backward(upstream: &[f32], output: &[f32]) -> Vec<f32> {
        assert_eq!(upstream.len(), output.len());
        // SAFETY: the loop writes every value of its chunk: the spans have the chunk's length.
        unsafe {
            par_written(upstream.len(), VALUES_PER_TASK, |task, gradient| {
                let span = task * VALUES_PER_TASK..task * VALUES_PER_TASK + gradient.len();
                for ((gradient, &g), &y) in gradient
                    .iter_mut()
                    .zip(&upstream[span.clone()])
                    .zip(&output[span])
                {
                    gradient.write(g * y * (1.0 - y));
                }
            })
        }
    }

    vectorised! {
        /// σ of `x` into `output`.
        fn forward_into(output: &mut [MaybeUninit<f32>], x: &[f32]) {
            assert_eq!(output.len(), x.len());
            for (y, &x) in output.iter_mut().zip(x) {
                y.write(1.0 / (1.0 + exp(-x)));
            }
        }
    }

    impl SigmoidBackend for Flex {
        fn fused_sigmoid(tensor: FlexTensor) -> FlexTensor {
            let shape = tensor.layout().shape().clone();
            flex_tensor(forward(&values(&tensor)), shape)
        }
    }

    impl<C: CheckpointStrategy> SigmoidBackend for Autodiff<Flex, C> {
        fn fused_sigmoid(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
            let (input, node) = tensor.into_parts();
            let shape = input.layout().shape().clone();
            let y = forward(&values(&input));
            match SigmoidNode.prepare::<C>([node]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    // The output itself is the state (shared, not copied).
                    let output = flex_tensor(y, shape);
                    prep.finish(output.clone(), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(flex_tensor(y, shape)),
            }
        }
    }

    #[derive(Debug)]
    struct SigmoidNode;

    impl Backward<Flex, 1> for SigmoidNode {
        /// The output `y = σ(x)`, all the backward pass needs.
        type State = FlexTensor;

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
                let gradient = backward(&values(&upstream), &values(&ops.state));
                grads.register::<Flex>(parent.id, flex_tensor(gradient, shape));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData, Tolerance};

    #[test]
    fn exp_is_libms_within_float_rounding() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let relative = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(relative);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        // Clamped outside the normal range, never infinite or zero.
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn log1p_unit_is_libms_within_float_rounding() {
        let mut worst = 0f32;
        // Every scale of e down to the smallest normal, where ln(1 + e) = e to float precision.
        let mut e = f32::MIN_POSITIVE;
        while e <= 1.0 {
            let relative = (log1p_unit(e) - e.ln_1p()).abs() / e.ln_1p();
            worst = worst.max(relative);
            e *= 1.013;
        }
        for e in [0.0, std::f32::consts::SQRT_2 - 1.0, 0.5, 1.0] {
            let error = (log1p_unit(e) - e.ln_1p()).abs();
            assert!(error <= 3e-7 * e.ln_1p(), "ln(1 + {e}) off by {error}");
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(log1p_unit(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_matches_burns_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        for scale in [0.5, 4.0, 40.0] {
            let x: Tensor<2> =
                Tensor::random([37, 29], Distribution::Normal(0.0, scale), &device).require_grad();
            let weights: Tensor<2> =
                Tensor::random([37, 29], Distribution::Normal(0.0, 1.0), &device);
            let ours = sigmoid(x.clone());
            let theirs = burn::tensor::activation::sigmoid(x.clone());
            ours.to_data()
                .assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::absolute(1e-6));
            let gradient = |y: Tensor<2>| {
                x.grad(&(y * weights.clone()).sum().backward())
                    .expect("gradient")
                    .into_data()
            };
            gradient(ours).assert_approx_eq::<f32>(&gradient(theirs), Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn sigmoid_by_hand_on_a_strided_view_and_without_autodiff() {
        let x = TensorData::new(vec![0.0f32, 2.0, -2.0, 100.0, -100.0, 1.0], [2, 3]);
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let expected = TensorData::new(
            vec![s(0.0), s(100.0), s(2.0), s(-100.0), s(-2.0), s(1.0)],
            [3, 2],
        );
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x: Tensor<2> = Tensor::from_data(x.clone(), &device);
            sigmoid(x.transpose())
                .into_data()
                .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-7));
        }
    }
}

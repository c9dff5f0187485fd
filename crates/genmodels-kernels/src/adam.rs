//! Adam's parameter update in one pass on flex.

use burn::optim::{
    Adam, AdamConfig, AdamState, LearningRate, ModuleOptimizer, Optimizer, decay::WeightDecayConfig,
};
use burn::tensor::{Device, Tensor};

/// Adam (Kingma & Ba, 2015) as burn's [`Adam`] computes it (no weight decay, no AMSGrad), for
/// speed. With the gradient `g_t` of step `t`:
///
/// ```text
/// m_t = β₁·m_{t−1} + (1 − β₁)·g_t
/// v_t = β₂·v_{t−1} + (1 − β₂)·g_t²
/// θ_t = θ_{t−1} − lr·c_t·m_t / (√v_t + ε·√(1 − β₂ᵗ)),   c_t = √(1 − β₂ᵗ) / (1 − β₁ᵗ)
/// ```
///
/// which is `θ − lr·m̂ / (√v̂ + ε)` with the bias-corrected moments `m̂ = m/(1 − β₁ᵗ)` and
/// `v̂ = v/(1 − β₂ᵗ)`, in burn's arrangement.
///
/// On flex with `f32` tensors each parameter is one pass that reads `θ`, `g`, `m`, `v` and
/// writes `θ`, `m`, `v`, in place where no other tensor shares their buffers: burn's Adam runs
/// a dozen element-wise operations, each a pass over memory with a new buffer (about a sixth of a
/// VAE training step in a profile). Elsewhere it is burn's [`Adam`] (tested to agree). The state
/// is burn's [`AdamState`], so an optimiser record written by either loads into the other.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// burn's Adam with the same settings: the fallback.
    composed: Adam,
}

impl FusedAdam {
    /// Adam with decay rates `beta_1`, `beta_2` for the two moments and `epsilon` added to the
    /// bias-corrected `√v̂`.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> Self {
        Self {
            beta_1,
            beta_2,
            epsilon,
            composed: Self::composed_config(beta_1, beta_2, epsilon).build(),
        }
    }

    /// burn's [`AdamConfig`] for the same update, which [`Adam`] computes with composed
    /// operations.
    pub fn composed_config(beta_1: f32, beta_2: f32, epsilon: f32) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_amsgrad(false)
            .with_weight_decay(None::<WeightDecayConfig>)
    }

    /// A module optimiser that updates every parameter so.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "kernels")]
        if flex_kernel::applies(&tensor, &grad, state.as_ref()) {
            return flex_kernel::step(self, lr, tensor, grad, state);
        }
        self.composed.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The fused update on flex.

    use super::FusedAdam;
    use crate::sigmoid::vectorised;
    use crate::support::{is_flex_f32, values, whole_buffer};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Flex, backend_extension};
    use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate};
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    /// Values per parallel task.
    const VALUES_PER_TASK: usize = 1 << 14;

    /// One Adam update as a backend operation on flex. Called through [`super::FusedAdam`].
    #[backend_extension(Flex)]
    pub trait AdamStepBackend: Backend {
        /// The parameter, its gradient and the two moments (one shape) → the updated
        /// parameter and moments, with the decay rates, `lr·c_t` and `ε·√(1 − β₂ᵗ)`.
        #[allow(clippy::too_many_arguments)]
        fn adam_step(
            parameter: FloatTensor<Self>,
            gradient: FloatTensor<Self>,
            moment_1: FloatTensor<Self>,
            moment_2: FloatTensor<Self>,
            beta_1: f32,
            beta_2: f32,
            step_size: f32,
            epsilon: f32,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    pub(super) fn applies<const D: usize>(
        tensor: &Tensor<D>,
        grad: &Tensor<D>,
        state: Option<&AdamState<D>>,
    ) -> bool {
        // The parameter and gradient, then the moments where there are any: no allocation
        // per parameter per step.
        let mut dtypes = [tensor.dtype(), grad.dtype(), tensor.dtype(), tensor.dtype()];
        if let Some(state) = state {
            let momentum = &state.momentum;
            if momentum.max_moment_2.is_some()
                || momentum.moment_1.device() != tensor.device()
                || momentum.moment_2.device() != tensor.device()
            {
                return false;
            }
            dtypes[2] = momentum.moment_1.dtype();
            dtypes[3] = momentum.moment_2.dtype();
        }
        tensor.dims() == grad.dims() && is_flex_f32(&tensor.device(), &dtypes)
    }

    pub(super) fn step<const D: usize>(
        adam: &FusedAdam,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let (time, moment_1, moment_2) = match state {
            Some(state) => (
                state.momentum.time + 1,
                state.momentum.moment_1,
                state.momentum.moment_2,
            ),
            None => (1, grad.zeros_like(), grad.zeros_like()),
        };
        // The bias corrections in f64, as scalars: burn computes them in f32.
        let exponent = i32::try_from(time).unwrap_or(i32::MAX);
        let correction_2 = (1.0 - f64::from(adam.beta_2).powi(exponent)).sqrt();
        let correction_1 = 1.0 - f64::from(adam.beta_1).powi(exponent);
        let (parameter, moment_1, moment_2) =
            <burn::backend::Dispatch as AdamStepBackend>::adam_step(
                tensor.into_dispatch(),
                grad.into_dispatch(),
                moment_1.into_dispatch(),
                moment_2.into_dispatch(),
                adam.beta_1,
                adam.beta_2,
                (lr * correction_2 / correction_1) as f32,
                (f64::from(adam.epsilon) * correction_2) as f32,
            );
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        );
        (
            Tensor::from_dispatch(parameter),
            Some(AdamState::new(momentum)),
        )
    }

    /// The update's per-step numbers.
    #[derive(Clone, Copy)]
    struct Coefficients {
        beta_1: f32,
        beta_2: f32,
        step_size: f32,
        epsilon: f32,
    }

    vectorised! {
        /// One chunk of the update, in place.
        fn update(
            parameter: &mut [f32],
            moment_1: &mut [f32],
            moment_2: &mut [f32],
            gradient: &[f32],
            c: Coefficients,
        ) {
            let values = parameter.iter_mut().zip(moment_1.iter_mut()).zip(moment_2.iter_mut());
            for (((p, m), v), &g) in values.zip(gradient) {
                *m = c.beta_1 * *m + (1.0 - c.beta_1) * g;
                *v = c.beta_2 * *v + (1.0 - c.beta_2) * (g * g);
                *p -= c.step_size * *m / (v.sqrt() + c.epsilon);
            }
        }
    }

    impl AdamStepBackend for Flex {
        fn adam_step(
            parameter: FlexTensor,
            gradient: FlexTensor,
            moment_1: FlexTensor,
            moment_2: FlexTensor,
            beta_1: f32,
            beta_2: f32,
            step_size: f32,
            epsilon: f32,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let coefficients = Coefficients {
                beta_1,
                beta_2,
                step_size,
                epsilon,
            };
            let mut parameter = whole_buffer(parameter);
            let mut moment_1 = whole_buffer(moment_1);
            let mut moment_2 = whole_buffer(moment_2);
            let gradient = values(&gradient);
            parameter
                .storage_mut::<f32>()
                .par_chunks_mut(VALUES_PER_TASK)
                .zip(
                    moment_1
                        .storage_mut::<f32>()
                        .par_chunks_mut(VALUES_PER_TASK),
                )
                .zip(
                    moment_2
                        .storage_mut::<f32>()
                        .par_chunks_mut(VALUES_PER_TASK),
                )
                .zip(gradient.par_chunks(VALUES_PER_TASK))
                .for_each(|(((p, m), v), g)| update(p, m, v, g, coefficients));
            (parameter, moment_1, moment_2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// Standard normal values from a generator of the test's own: flex's is shared with the
    /// tests running beside this one, so seeding it would not give both runs the same draws.
    fn random(shape: [usize; 2], seed: u64) -> Tensor<2> {
        let mut rng = StdRng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rng.sample(StandardNormal))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    /// Five steps of `optimizer` from the same start and gradients.
    fn run(
        optimizer: &impl Optimizer<State<2> = AdamState<2>>,
    ) -> (Tensor<2>, Option<AdamState<2>>) {
        let mut parameter = random([37, 1029], 1);
        let mut state = None;
        for step in 0..5 {
            // Gradients of every size, tiny ones among them, as Adam's ε matters there.
            let gradient = random([37, 1029], 10 + step).mul_scalar(10f32.powi(step as i32 - 3));
            (parameter, state) = optimizer.step(1e-3, parameter, gradient, state);
        }
        (parameter, state)
    }

    #[test]
    fn the_fused_update_matches_burns_adam_over_several_steps() {
        let fused = FusedAdam::new(0.5, 0.999, 1e-8);
        let composed = FusedAdam::composed_config(0.5, 0.999, 1e-8).build();
        let (parameter, state) = run(&fused);
        let (expected, expected_state) = run(&composed);
        let tolerance = Tolerance::<f32>::relative(1e-5).set_absolute(1e-7);
        parameter
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
        let (state, expected_state) = (state.unwrap().momentum, expected_state.unwrap().momentum);
        assert_eq!(state.time, 5);
        assert_eq!(state.time, expected_state.time);
        for (moment, expected) in [
            (state.moment_1, expected_state.moment_1),
            (state.moment_2, expected_state.moment_2),
        ] {
            moment
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), tolerance);
        }
    }

    #[test]
    fn a_parameter_shared_with_another_tensor_is_not_changed_behind_its_back() {
        let parameter = random([8, 300], 3);
        let kept = parameter.clone();
        let before = kept.to_data();
        let (updated, state) =
            FusedAdam::new(0.9, 0.999, 1e-8).step(0.1, parameter, random([8, 300], 4), None);
        kept.into_data()
            .assert_approx_eq::<f32>(&before, Tolerance::absolute(0.0));
        // The first step moves every value by lr (m̂/√v̂ = ±1) unless its gradient is 0.
        let moved = (updated - Tensor::from_data(before, &Device::flex()))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!((moved - 0.1).abs() < 1e-4, "moved {moved}");
        assert!(state.is_some());
    }

    #[test]
    fn a_transposed_parameter_is_updated_in_its_own_order() {
        let fused = FusedAdam::new(0.9, 0.999, 1e-8);
        let composed = FusedAdam::composed_config(0.9, 0.999, 1e-8).build();
        let parameter = random([20, 30], 5).transpose();
        let gradient = random([30, 20], 6);
        let (got, _) = fused.step(1e-2, parameter.clone(), gradient.clone(), None);
        let (expected, _) = composed.step(1e-2, parameter, gradient, None);
        got.into_data().assert_approx_eq::<f32>(
            &expected.into_data(),
            Tolerance::<f32>::relative(1e-5).set_absolute(1e-7),
        );
    }
}

//! Host-side random numbers for sampling and estimation.
//!
//! Samples and likelihood estimates draw their noise on the host from a seeded [`StdRng`], so
//! the same seed gives the same numbers on every backend, and no global device RNG state is
//! disturbed (training uses the device RNG, seeded per epoch by the trainer).

use std::sync::Mutex;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use crate::model::materialise_parameters;

/// Seeds `device`, builds a module with `init` and draws every one of its parameters, all
/// under one process-wide lock, so that the weights are the ones the seed names.
///
/// burn draws a parameter when it is first read, from one RNG per process on the CPU
/// backends: two threads that seed and build at once (parallel tests, say) interleave their
/// draws and get weights no seed names. Builders that go through here cannot interleave
/// with each other; code that draws from the device RNG without it still can. Unlike
/// [`init_seeded`](crate::init_seeded), which leaves the draws to the first forward pass as
/// burn does, the weights here are drawn in the module's own order.
pub fn build_with_seed<M: Module, E>(
    device: &Device,
    seed: u64,
    init: impl FnOnce(&Device) -> std::result::Result<M, E>,
) -> std::result::Result<M, E> {
    static SEEDED_INIT: Mutex<()> = Mutex::new(());
    // A panic inside another build leaves nothing half-done that this one could see.
    let _guard = SEEDED_INIT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    let module = init(device)?;
    materialise_parameters(&module);
    Ok(module)
}

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A tensor of standard normal draws.
pub fn standard_normal<const D: usize>(
    shape: [usize; D],
    rng: &mut StdRng,
    device: &Device,
) -> Tensor<D> {
    let len = shape.iter().product();
    let values: Vec<f32> = (0..len).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A tensor of uniform draws in `[0, 1)`.
pub fn uniform<const D: usize>(shape: [usize; D], rng: &mut StdRng, device: &Device) -> Tensor<D> {
    let len = shape.iter().product();
    let values: Vec<f32> = (0..len).map(|_| rng.random::<f32>()).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

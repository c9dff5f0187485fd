//! Host-side random numbers for sampling and estimation.
//!
//! Samples and likelihood estimates draw their noise on the host from a seeded [`StdRng`], so
//! the same seed gives the same numbers on every backend, and no global device RNG state is
//! disturbed (training uses the device RNG, seeded per epoch by the trainer).

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

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

//! Small data and models shared by the integration tests.
#![allow(dead_code)]

use genmodels::burn::store::ModuleSnapshot;
use genmodels::data::{Binarization, Dataset, Mnist};
use genmodels::nn::{Activation, Architecture};
use genmodels::vae::VaeConfig;

/// Burn's random generator is global to a device, so tests that train (and must be
/// reproducible) hold this lock: one training at a time per test process.
pub static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`DEVICE_RNG`], surviving a panic in another test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first `n` bundled training digits, dynamically binarised.
pub fn mnist_train(n: usize) -> Dataset {
    Mnist::bundled()
        .unwrap()
        .train
        .take(n)
        .with_binarization(Binarization::Dynamic { seed: 0 })
}

/// The first `n` bundled test digits, binarised once.
pub fn mnist_test(n: usize) -> Dataset {
    Mnist::bundled()
        .unwrap()
        .test
        .take(n)
        .with_binarization(Binarization::Stochastic { seed: 1 })
}

/// A small MNIST VAE that trains in a second.
pub fn small_vae() -> VaeConfig {
    VaeConfig::new()
        .with_latent_dim(8)
        .with_architecture(Architecture::Mlp {
            hidden: vec![64],
            activation: Activation::Tanh,
        })
}

/// Every parameter's path and raw values: equal for two models exactly when their weights are.
pub fn weight_values<M: ModuleSnapshot>(model: &M) -> Vec<(String, Vec<u8>)> {
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
        .collect()
}

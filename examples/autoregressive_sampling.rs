//! Sampling speed of the autoregressive models: the naive sampler (one full network pass per
//! sub-pixel) against the incremental one (cached activations for the PixelCNNs, carried LSTM
//! state for the PixelRNNs), side by side in one run, on the default (`small`) MNIST-size
//! configurations with seeded random weights. The work per pixel does not depend on the weight
//! values, so untrained weights time the samplers as well as trained ones would.
//!
//! Each sampler draws the same images with the same seed; this checks it and says so.
//!
//! ```text
//! cargo run --release --example autoregressive_sampling -- [IMAGES] [BACKEND] [MODELS]
//! ```
//! `IMAGES` defaults to 16, `BACKEND` to flex, `MODELS` to
//! `pixelcnn,gated-pixelcnn,row-lstm,diagonal-bilstm`.

use std::time::Instant;

use genmodels::autoregressive::{
    DiagonalBiLstmConfig, GatedPixelCnnConfig, PixelCnnConfig, RowLstmConfig,
};
use genmodels::batch::to_host;
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::kernels::on_compute_threads;
use genmodels::prelude::*;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

const SEED: u64 = 0;

/// Seconds of each sampler, and whether they drew the same images.
struct Timing {
    naive_seconds: f64,
    cached_seconds: f64,
    identical: bool,
}

fn time_samplers(
    images: usize,
    sample: impl Fn(usize, u64, SamplingMethod) -> genmodels::Result<Tensor<4>>,
) -> genmodels::Result<Timing> {
    // Warm-up: first calls pay for kernel compilation and allocation.
    sample(1, SEED, SamplingMethod::Cached)?;
    let started = Instant::now();
    let cached = to_host(sample(images, SEED, SamplingMethod::Cached)?)?;
    let cached_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let naive = to_host(sample(images, SEED, SamplingMethod::Naive)?)?;
    let naive_seconds = started.elapsed().as_secs_f64();
    Ok(Timing {
        naive_seconds,
        cached_seconds,
        identical: naive == cached,
    })
}

fn time_model(name: &str, images: usize, device: &Device) -> genmodels::Result<Timing> {
    match name {
        "pixelcnn" => {
            let model = init_seeded(&PixelCnnConfig::small(), SEED, device)?;
            time_samplers(images, |n, seed, method| model.sample_with(n, seed, method))
        }
        "gated-pixelcnn" => {
            let model = init_seeded(&GatedPixelCnnConfig::new(), SEED, device)?;
            time_samplers(images, |n, seed, method| model.sample_with(n, seed, method))
        }
        "row-lstm" => {
            let model = init_seeded(&RowLstmConfig::new(), SEED, device)?;
            time_samplers(images, |n, seed, method| model.sample_with(n, seed, method))
        }
        "diagonal-bilstm" => {
            let model = init_seeded(&DiagonalBiLstmConfig::new(), SEED, device)?;
            time_samplers(images, |n, seed, method| model.sample_with(n, seed, method))
        }
        other => Err(GenError::InvalidConfig(format!("unknown model `{other}`"))),
    }
}

fn main() -> genmodels::Result<()> {
    let mut args = std::env::args().skip(1);
    let images: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let backend: Backend = args.next().as_deref().unwrap_or("flex").parse()?;
    let models = args
        .next()
        .unwrap_or_else(|| "pixelcnn,gated-pixelcnn,row-lstm,diagonal-bilstm".into());
    let device = backend.device()?;
    println!("{images} samples of 28×28 binary images on {backend}, seed {SEED}\n");
    println!("| model | naive (s) | cached (s) | speed-up | same images |\n|---|---|---|---|---|");
    for name in models.split(',') {
        // As the CLI runs: on flex's compute threads (docs/benchmarks.md, change 11).
        let timing = on_compute_threads(&device, || time_model(name, images, &device))?;
        println!(
            "| {name} | {:.2} | {:.3} | {:.1}x | {} |",
            timing.naive_seconds,
            timing.cached_seconds,
            timing.naive_seconds / timing.cached_seconds,
            if timing.identical { "yes" } else { "NO" }
        );
    }
    Ok(())
}

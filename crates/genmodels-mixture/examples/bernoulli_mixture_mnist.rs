//! Bernoulli mixtures of binarised MNIST fitted by EM: the exact test NLL for several `K`.
//!
//! Trains on the 8,000 bundled training digits binarised once (epoch 0 of the CLI's default
//! dynamic binarisation with seed 0, i.e. each pixel Bernoulli(v/255) drawn once), and scores
//! the 2,000 test digits binarised as every other model's test set is (one stochastic
//! binarisation with the CLI's fixed test seed). Writes, per `K`, a grid of 64 samples and a
//! grid of the component means.
//!
//! ```text
//! cargo run --release -p genmodels-mixture --example bernoulli_mixture_mnist -- [OUT_DIR] [K ...]
//! ```
//!
//! `OUT_DIR` defaults to `runs/gmm-samples`, the `K`s to 10 50 100.

use std::path::PathBuf;

use genmodels_core::burn::tensor::Device;
use genmodels_core::evaluation::evaluate_log_likelihood;
use genmodels_core::{GenerativeModel, ImageShape, LikelihoodOptions};
use genmodels_data::{Binarization, Mnist};
use genmodels_mixture::{EmOptions, MixtureConfig, fit_em};
use genmodels_report::image_output::{GridLayout, save_image_grid};

// burn allocates a buffer per op; see `genmodels_kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels_kernels::Allocator = genmodels_kernels::Allocator;

/// The seed the CLI binarises every test set with (`TEST_BINARIZATION_SEED` in
/// `genmodels-cli/src/data.rs`).
const TEST_BINARIZATION_SEED: u64 = 0x7E57;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "runs/gmm-samples".into()));
    let mut ks: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if ks.is_empty() {
        ks = vec![10, 50, 100];
    }
    std::fs::create_dir_all(&out)?;

    let device = Device::flex();
    let mnist = Mnist::bundled()?;
    let train = mnist
        .train
        .with_binarization(Binarization::Dynamic { seed: 0 });
    let test = mnist.test.with_binarization(Binarization::Stochastic {
        seed: TEST_BINARIZATION_SEED,
    });
    let options = EmOptions {
        max_iterations: 100,
        tolerance: 1e-6,
        seed: 0,
        progress: true,
    };

    let mut rows = Vec::new();
    for &k in &ks {
        let config = MixtureConfig::bernoulli(k, ImageShape::MNIST);
        let (model, report) = fit_em(&config, &train, &options, &device)?;
        let ll =
            evaluate_log_likelihood(&model, &test, &LikelihoodOptions::default(), 500, &device)?;
        save_image_grid(
            &out.join(format!("samples-k{k}.png")),
            model.sample(64, 0)?,
            GridLayout::with_columns(8),
        )?;
        save_image_grid(
            &out.join(format!("means-k{k}.png")),
            model.component_images(),
            GridLayout::with_columns(10),
        )?;
        let row = format!(
            "| {k:>3} | {:>8.2} ± {:.2} | {:>6.4} | {:>9.2} | {:>10} | {:>9} | {:>7.1} | {:>7.3} |",
            ll.mean_nll_nats(),
            ll.standard_error_nats(),
            ll.nll_bits_per_dim(),
            -report.final_log_likelihood(),
            report.iterations,
            report.converged,
            report.seconds,
            report.seconds / report.iterations.max(1) as f64,
        );
        // EM should never lower the training log-likelihood (up to f32 round-off).
        let largest_drop = report
            .log_likelihood_per_iteration
            .windows(2)
            .map(|w| w[0] - w[1])
            .fold(0.0f64, f64::max);
        println!("{row}  (largest train-LL drop between iterations: {largest_drop:.2e} nats)");
        rows.push(row);
    }

    println!();
    println!(
        "Bernoulli mixture, EM on 8,000 binarised MNIST digits, exact NLL of 2,000 test digits"
    );
    println!(
        "|   K | test NLL (nats) | bits/dim | train NLL | iterations | converged | seconds | s/iter |"
    );
    println!(
        "|----:|----------------:|---------:|----------:|-----------:|----------:|--------:|-------:|"
    );
    for row in rows {
        println!("{row}");
    }
    println!("\nsample and component-mean grids in {}", out.display());
    Ok(())
}

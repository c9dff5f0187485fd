//! Train the default VAE (Burda et al.'s 784-200-200-50) on the bundled MNIST sample with the
//! library API, report its test ELBO and IWAE likelihood, and write sample, reconstruction and
//! interpolation grids.
//!
//! ```text
//! cargo run --release --example vae -- [EPOCHS] [OUT_DIR]
//! ```

use genmodels::burn::tensor::Tensor;
use genmodels::evaluation::evaluate_log_likelihood;
use genmodels::prelude::*;
use genmodels::vae::VaeConfig;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

fn main() -> genmodels::Result<()> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "runs/example-vae".into()));
    std::fs::create_dir_all(&out).map_err(|e| GenError::io(&out, e))?;

    // Bars with rate and ETA for the long evaluation passes too, not only for training.
    TerminalProgress::install();
    let device = Backend::Flex.device()?;
    let mnist = Mnist::bundled()?;
    let train = mnist
        .train
        .with_binarization(Binarization::Dynamic { seed: 0 });
    let test = mnist
        .test
        .with_binarization(Binarization::Stochastic { seed: 1 });

    let model = init_seeded(&VaeConfig::new(), 0, &device)?;
    let trainer = Trainer::new(TrainerConfig {
        epochs,
        eval_options: LikelihoodOptions::iwae(100),
        ..TrainerConfig::default()
    })
    .with_observer(TrainingProgress::new());
    let trained = trainer.fit(model, &train, Some(&test), &device)?;
    let vae = trained.model;
    let report = trained.report;
    println!(
        "trained {epochs} epochs in {:.1} s ({:.0} images/s)",
        report.train_seconds, report.images_per_second
    );

    let elbo = evaluate_log_likelihood(&vae, &test, &LikelihoodOptions::default(), 100, &device)?;
    let iwae = report
        .test_log_likelihood
        .expect("a VAE has a likelihood bound");
    for ll in [&elbo, &iwae] {
        println!(
            "test {:>10}: NLL {:.2} ± {:.2} nats, {:.4} bits/dim",
            ll.kind.to_string(),
            ll.mean_nll_nats(),
            ll.standard_error_nats(),
            ll.nll_bits_per_dim()
        );
    }

    save_image_grid(
        &out.join("samples.png"),
        vae.sample_means(64, 0)?,
        GridLayout::with_columns(8),
    )?;
    let originals = test.first(16, &device)?;
    let both = Tensor::cat(
        vec![originals.images().clone(), vae.reconstruct(&originals)?],
        0,
    );
    save_image_grid(
        &out.join("reconstructions.png"),
        both,
        GridLayout::with_columns(16),
    )?;
    let start = test.batch(&[0, 1, 2, 3], 0, &device)?;
    let end = test.batch(&[4, 5, 6, 7], 0, &device)?;
    save_image_grid(
        &out.join("interpolation.png"),
        vae.interpolate(&start, &end, 10)?,
        GridLayout::with_columns(10),
    )?;
    println!(
        "wrote samples.png, reconstructions.png and interpolation.png to {}",
        out.display()
    );
    Ok(())
}

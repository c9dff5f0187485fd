//! Train the convolutional autoencoder on the bundled MNIST sample with the library API; show
//! that it has no likelihood (a typed error), its test reconstruction error, and grids of
//! reconstructions and of samples decoded from the Gaussian fitted to its codes.
//!
//! ```text
//! cargo run --release --example ae -- [EPOCHS] [OUT_DIR]
//! ```

use genmodels::ae::AutoencoderConfig;
use genmodels::burn::tensor::Tensor;
use genmodels::nn::Architecture;
use genmodels::prelude::*;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

fn main() -> genmodels::Result<()> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "runs/example-ae".into()));
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

    let config = AutoencoderConfig::new().with_architecture(Architecture::conv());
    let model = init_seeded(&config, 0, &device)?;
    let trainer = Trainer::new(TrainerConfig {
        epochs,
        ..TrainerConfig::default()
    })
    .with_observer(TrainingProgress::new());
    let trained = trainer.fit(model, &train, Some(&test), &device)?;
    let report = trained.report;
    let ae = trained.model;
    println!(
        "trained {epochs} epochs in {:.1} s ({:.0} images/s); test reconstruction BCE {:.2} nats/image",
        report.train_seconds,
        report.images_per_second,
        report.test_loss.expect("a test split was given").mean
    );
    println!(
        "log-likelihood: {}",
        report
            .likelihood_unavailable
            .as_deref()
            .unwrap_or("available?!")
    );

    let originals = test.first(16, &device)?;
    let both = Tensor::cat(
        vec![originals.images().clone(), ae.reconstruct(&originals)?],
        0,
    );
    save_image_grid(
        &out.join("reconstructions.png"),
        both,
        GridLayout::with_columns(16),
    )?;
    // Outside the trainer, on flex's compute threads too (README, "The library").
    let samples = ae.sample(64, 0)?;
    save_image_grid(
        &out.join("samples.png"),
        samples,
        GridLayout::with_columns(8),
    )?;
    println!(
        "wrote reconstructions.png and samples.png to {}",
        out.display()
    );
    Ok(())
}

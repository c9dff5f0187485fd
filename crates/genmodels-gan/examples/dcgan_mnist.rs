//! Train the DCGAN (non-saturating, Adam 2e-4, β₁ = 0.5) on the bundled MNIST grey levels
//! through the shared trainer, report training throughput and write a sample grid.
//!
//! ```text
//! cargo run --release -p genmodels-gan --example dcgan_mnist -- [IMAGES] [EPOCHS] [OUT_DIR]
//! ```
//!
//! `IMAGES` (default 8000) limits the training set: `3200 1` times 50 steps of batch 64.

use genmodels_core::{
    Backend, GenError, GenerativeModel, ImageShape, Trainer, TrainerConfig, init_seeded,
};
use genmodels_data::{Binarization, Mnist};
use genmodels_gan::GanConfig;
use genmodels_report::image_output::{GridLayout, save_image_grid};

// burn allocates a buffer per op; see `genmodels_kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels_kernels::Allocator = genmodels_kernels::Allocator;

fn main() -> genmodels_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let images: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8000);
    let epochs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "runs/example-dcgan".into()));
    std::fs::create_dir_all(&out).map_err(|e| GenError::io(&out, e))?;

    let device = Backend::Flex.device()?;
    let mnist = Mnist::bundled().map_err(|e| GenError::Data(Box::new(e)))?;
    let train = mnist
        .train
        .take(images)
        .with_binarization(Binarization::None);

    let model = init_seeded(&GanConfig::dcgan(ImageShape::MNIST), 0, &device)?;
    let trainer = Trainer::new(TrainerConfig {
        epochs,
        batch_size: 64,
        learning_rate: 2e-4,
        ..TrainerConfig::default()
    });
    let trained = trainer.fit(model, &train, None, &device)?;
    let report = &trained.report;
    println!(
        "{} steps of batch 64 ({} images × {epochs} epochs) in {:.1} s: {:.1} images/s",
        report.steps, images, report.train_seconds, report.images_per_second
    );
    for (epoch, components) in report.epoch_components.iter().enumerate() {
        let figures: Vec<String> = components
            .iter()
            .map(|(name, value)| format!("{name} {value:.3}"))
            .collect();
        println!("epoch {}: {}", epoch + 1, figures.join(", "));
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    let path = out.join("samples.png");
    save_image_grid(
        &path,
        trained.model.sample(64, 0)?,
        GridLayout::with_columns(8),
    )?;
    println!("samples: {}", path.display());
    Ok(())
}

//! Train the non-saturating MLP GAN on eight Gaussians on a ring (the classic mode-collapse
//! test) through the shared trainer, and draw its samples over the modes.
//!
//! ```text
//! cargo run --release -p genmodels-gan --example gan_ring -- [EPOCHS] [OUT.png] [OBJECTIVE] [SN]
//! ```
//!
//! `SN` is `on` or `off` to force spectral normalisation of the discriminator (default: the
//! objective's).
//!
//! The data are 2-D points stored as 1×1×2 images in `[0, 1]`: centre 0.5, radius 0.4,
//! standard deviation 0.01. The picture shows the 3-std circle around each mode in red and
//! 1,000 samples in black; the count of samples inside each circle is printed.

use genmodels_core::batch::to_host;
use genmodels_core::{Backend, GenError, GenerativeModel, Trainer, TrainerConfig, init_seeded};
use genmodels_gan::ring::{
    RING_MODES, RING_SHAPE, RING_STD, ring_mode, ring_mode_counts, ring_of_gaussians,
};
use genmodels_gan::{GanArchitecture, GanConfig, GanObjective};
use image::{ImageBuffer, Rgb};

// burn allocates a buffer per op; see `genmodels_kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels_kernels::Allocator = genmodels_kernels::Allocator;

const SIZE: u32 = 512;

fn main() -> genmodels_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(250);
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "gan_ring.png".into()));
    let objective: GanObjective = match args.next() {
        Some(name) => name.parse()?,
        None => GanObjective::NonSaturating,
    };
    let spectral_norm = match args.next().as_deref() {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    };

    let device = Backend::Flex.device()?;
    let config = GanConfig::mlp(RING_SHAPE)
        .with_architecture(GanArchitecture::Mlp {
            hidden: vec![128, 128],
        })
        .with_latent_dim(8)
        .with_objective(objective)
        .with_spectral_norm(spectral_norm);
    let gan = init_seeded(&config, 0, &device)?;
    let trainer = Trainer::new(TrainerConfig {
        epochs,
        batch_size: 100,
        learning_rate: if objective == GanObjective::Wasserstein {
            5e-5
        } else {
            1e-3
        },
        ..TrainerConfig::default()
    });
    let trained = trainer.fit(gan, &ring_of_gaussians(2000, 0)?, None, &device)?;
    println!(
        "{objective}: {} steps in {:.1} s",
        trained.report.steps, trained.report.train_seconds
    );
    println!("{} epoch warnings", trained.report.warnings.len());

    let samples = to_host(trained.model.sample(1000, 1)?)?;
    let mut canvas = ImageBuffer::from_pixel(SIZE, SIZE, Rgb([255u8, 255, 255]));
    let to_pixel = |v: f64| (v * (SIZE - 1) as f64).round() as i64;
    let mut plot = |x: i64, y: i64, colour: Rgb<u8>| {
        if (0..SIZE as i64).contains(&x) && (0..SIZE as i64).contains(&y) {
            // Images count rows downwards; the plot's y axis points up.
            canvas.put_pixel(x as u32, SIZE - 1 - y as u32, colour);
        }
    };
    for p in samples.chunks(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            plot(to_pixel(x) + dx, to_pixel(y) + dy, Rgb([0, 0, 0]));
        }
    }
    for k in 0..RING_MODES {
        let (mx, my) = ring_mode(k);
        for step in 0..360 {
            let a = (step as f64).to_radians();
            let r = 3.0 * RING_STD;
            plot(
                to_pixel(mx + r * a.cos()),
                to_pixel(my + r * a.sin()),
                Rgb([220, 0, 0]),
            );
        }
    }
    canvas.save(&out).map_err(|e| GenError::Image {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    let counts = ring_mode_counts(&samples);
    let covered = counts.iter().filter(|&&c| c >= 20).count();
    println!("samples within 3 std of each mode: {counts:?} ({covered} of 8 modes with ≥ 2%)");
    println!("scatter plot: {}", out.display());
    Ok(())
}

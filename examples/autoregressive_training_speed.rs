//! Training throughput of the four autoregressive models, side by side in one run: a training
//! step (forward, backward, Adam) of each model's default configuration on a batch of 32
//! bundled binarised digits, the models taking turns over several repetitions so that a busy
//! moment of the machine does not fall on one model only. Prints the median images/s.
//!
//! ```text
//! cargo run --release --example autoregressive_training_speed -- [REPETITIONS] [BACKEND]
//! ```

use std::time::Instant;

use genmodels::autoregressive::{
    DiagonalBiLstmConfig, GatedPixelCnnConfig, PixelCnnConfig, RowLstmConfig,
};
use genmodels::burn::optim::{AdamConfig, GradientsParams};
use genmodels::burn::tensor::Device;
use genmodels::kernels::on_compute_threads;
use genmodels::prelude::*;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

const BATCH: usize = 32;
const STEPS: usize = 5;

/// Images/s of `STEPS` training steps of a freshly initialised `config`, after one warm-up step.
fn steps_per_second<C>(config: &C, batch: &ImageBatch, device: &Device) -> genmodels::Result<f64>
where
    C: ModelConfig,
    C::Model: Trainable,
{
    let mut model = init_seeded(config, 0, device)?;
    let mut optimizer = AdamConfig::new().init();
    let mut rate = 0.0;
    for timed in [false, true] {
        let steps = if timed { STEPS } else { 1 };
        let started = Instant::now();
        for _ in 0..steps {
            let loss = model.loss(0, batch)?.objective;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model, grads);
        }
        device
            .sync()
            .map_err(|e| GenError::Backend(format!("{e:?}")))?;
        rate = (steps * BATCH) as f64 / started.elapsed().as_secs_f64();
    }
    Ok(rate)
}

fn main() -> genmodels::Result<()> {
    let mut args = std::env::args().skip(1);
    let repetitions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let backend: Backend = args.next().as_deref().unwrap_or("flex").parse()?;
    let device = backend.device()?.autodiff();
    let data = Mnist::bundled()?
        .train
        .with_binarization(Binarization::Threshold(0.5));
    let indices: Vec<usize> = (0..BATCH).collect();
    let batch = data.batch(&indices, 0, &device)?;

    let names = ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    // As the trainer runs: on flex's compute threads (docs/benchmarks.md, change 11).
    on_compute_threads(&device, || -> genmodels::Result<()> {
        for _ in 0..repetitions {
            rates[0].push(steps_per_second(&PixelCnnConfig::small(), &batch, &device)?);
            rates[1].push(steps_per_second(
                &GatedPixelCnnConfig::small(),
                &batch,
                &device,
            )?);
            rates[2].push(steps_per_second(&RowLstmConfig::new(), &batch, &device)?);
            rates[3].push(steps_per_second(
                &DiagonalBiLstmConfig::new(),
                &batch,
                &device,
            )?);
        }
        Ok(())
    })?;
    println!(
        "training step, batch {BATCH}, {backend}, default configurations, \
         {repetitions} repetitions of {STEPS} steps\n"
    );
    println!("| model | median images/s | min | max |\n|---|---|---|---|");
    for (name, rate) in names.iter().zip(rates.iter_mut()) {
        rate.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            rate[rate.len() / 2],
            rate[0],
            rate[rate.len() - 1]
        );
    }
    Ok(())
}

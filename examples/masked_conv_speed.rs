//! Which form of masked convolution trains PixelCNN faster: one `k×k` convolution with the
//! masked weights zeroed, the split form that skips them (`(k/2)×k` over the rows above
//! plus `1×(k/2+1)` over the current row), or channels-last im2col over the kept taps and
//! one matrix product per layer? All compute the same function (a unit test checks it); this
//! times a PixelCNN `small` training step (forward, backward, Adam) on a
//! batch of 32 bundled digits, alternating the three forms over several repetitions, and
//! prints the median images/s of each.
//!
//! ```text
//! cargo run --release --example masked_conv_speed -- [REPETITIONS] [BACKEND]
//! ```

use std::time::Instant;

use genmodels::autoregressive::{MaskedConvImpl, PixelCnnConfig};
use genmodels::burn::optim::{AdamConfig, GradientsParams};
use genmodels::kernels::on_compute_threads;
use genmodels::prelude::*;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

const BATCH: usize = 32;
const STEPS: usize = 5;

fn main() -> genmodels::Result<()> {
    let mut args = std::env::args().skip(1);
    let repetitions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let backend: Backend = args.next().as_deref().unwrap_or("flex").parse()?;
    let device = backend.device()?.autodiff();
    let data = Mnist::bundled()?
        .train
        .with_binarization(Binarization::Threshold(0.5));
    let indices: Vec<usize> = (0..BATCH).collect();
    let batch = data.batch(&indices, 0, &device)?;

    let forms = [
        MaskedConvImpl::Masked,
        MaskedConvImpl::Split,
        MaskedConvImpl::Gemm,
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); forms.len()];
    // As the trainer runs: on flex's compute threads (docs/benchmarks.md, change 11).
    on_compute_threads(&device, || -> genmodels::Result<()> {
        for _ in 0..repetitions {
            for (form, rate) in forms.iter().zip(rates.iter_mut()) {
                let mut model =
                    init_seeded(&PixelCnnConfig::small().with_conv_impl(*form), 0, &device)?;
                let mut optimizer = AdamConfig::new().init();
                // One warm-up step, then the timed ones.
                for timed in [false, true] {
                    let steps = if timed { STEPS } else { 1 };
                    let started = Instant::now();
                    for _ in 0..steps {
                        let loss = model.loss(0, &batch)?.objective;
                        let grads = GradientsParams::from_grads(loss.backward(), &model);
                        model = optimizer.step(1e-3, model, grads);
                    }
                    device
                        .sync()
                        .map_err(|e| GenError::Backend(format!("{e:?}")))?;
                    if timed {
                        rate.push((steps * BATCH) as f64 / started.elapsed().as_secs_f64());
                    }
                }
            }
        }
        Ok(())
    })?;
    println!(
        "PixelCNN small training step, batch {BATCH}, {backend}, {repetitions} repetitions of {STEPS} steps"
    );
    for (form, rate) in forms.iter().zip(rates.iter_mut()) {
        rate.sort_by(f64::total_cmp);
        println!(
            "{:>7?}: median {:.1} images/s (min {:.1}, max {:.1})",
            form,
            rate[rate.len() / 2],
            rate[0],
            rate[rate.len() - 1]
        );
    }
    Ok(())
}

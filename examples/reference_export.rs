//! Exports what the PyTorch side-by-side reference (`benches/reference/`) needs to prove that
//! its networks are ours: the weights of PixelCNN `small`, the default VAE and the default
//! DCGAN (each `init_seeded(&config, 0, flex)`), in burn's safetensors format, and for each a
//! fixed input batch with what genmodels computes on it.
//!
//! ```text
//! cargo run --release --example reference_export -- OUT_DIR
//! ```
//!
//! writes, for `MODEL` in `pixelcnn`, `vae`, `dcgan`:
//!
//! - `OUT_DIR/MODEL.safetensors`: the weights under burn's own names and layouts (a `Linear`
//!   weight is `[in, out]`, the transpose of PyTorch's; convolution kernels are laid out as in
//!   PyTorch);
//! - `OUT_DIR/MODEL-check.json`: the first 32 bundled training digits prepared as the model
//!   trains on them (binarised with threshold 0.5 for PixelCNN and the VAE, grey levels `v/255`
//!   for the DCGAN, which scales them to `[−1, 1]` itself), the fixed noise (the VAE's `ε`, the
//!   DCGAN's `z`), and genmodels' results:
//!   - PixelCNN: `log p(x)` per image in nats ([`GenerativeModel::log_likelihood`]), and
//!     again after one training step on the batch (Adam, lr 1e-3);
//!   - VAE: per image, `log p(x|z)` at `z = μ + σ ⊙ ε` and `KL(q(z|x) ‖ p(z))`;
//!   - DCGAN: the raw discriminator outputs on the data and on `G(z)`, and both players'
//!     non-saturating losses, in training mode (batch norm on batch statistics), as a
//!     training step computes them before either player steps.

use std::path::{Path, PathBuf};

use genmodels::autoregressive::PixelCnnConfig;
use genmodels::burn::module::Module;
use genmodels::burn::store::{ModuleSnapshot, SafetensorsStore};
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::distributions::{bernoulli_log_prob, kl_diagonal_gaussian_to_standard_normal};
use genmodels::gan::{GanConfig, discriminator_loss, generator_loss};
use genmodels::prelude::*;
use genmodels::vae::VaeConfig;
use genmodels::{TrainingStep, batch::to_host, random};
use serde_json::{Value, json};

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

/// Images in the check batch.
const BATCH: usize = 32;
/// Seed of the weights (as `init_seeded` takes it).
const WEIGHT_SEED: u64 = 0;
/// Seed of the fixed noise (the VAE's ε, the DCGAN's z).
const NOISE_SEED: u64 = 1;

fn main() -> genmodels::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: reference_export OUT_DIR");
        std::process::exit(2)
    }));
    std::fs::create_dir_all(&out).map_err(|e| GenError::io(&out, e))?;
    let device = Backend::Flex.device()?;
    let digits = Mnist::bundled()?.train;
    let first: Vec<usize> = (0..BATCH).collect();
    let binary = digits
        .clone()
        .with_binarization(Binarization::Threshold(0.5))
        .batch(&first, 0, &device)?;
    let grey = digits
        .with_binarization(Binarization::None)
        .batch(&first, 0, &device)?;

    export_pixelcnn(&out, &binary, &device)?;
    export_vae(&out, &binary, &device)?;
    export_dcgan(&out, &grey, &device)?;
    println!(
        "wrote pixelcnn, vae and dcgan weights and checks to {}",
        out.display()
    );
    Ok(())
}

fn export_pixelcnn(out: &Path, batch: &ImageBatch, device: &Device) -> genmodels::Result<()> {
    let model = init_seeded(&PixelCnnConfig::small(), WEIGHT_SEED, device)?;
    save_weights(&model, &out.join("pixelcnn.safetensors"))?;
    let ll = model.log_likelihood(batch, &LikelihoodOptions::default())?;
    // One training step as the trainer (and `genmodels bench`) takes it: loss, backward, Adam
    // with lr 1e-3, β = (0.9, 0.999), ε = 1e-8. Then the likelihood again: PixelCNN's loss
    // draws no noise, so PyTorch can repeat the step and check that the timed work is the same.
    let train_device = device.clone().autodiff();
    let model = model.fork(&train_device).train();
    let train_batch = batch.to_device(&train_device);
    let mut training_step = TrainingStep::new(model.players(), 1e-3)?;
    let (model, _) = training_step.step(model, &train_batch, 1)?;
    let ll_after_step = model.log_likelihood(&train_batch, &LikelihoodOptions::default())?;
    write_check(
        out,
        "pixelcnn",
        json!({
            "model": "pixelcnn",
            "config": "PixelCnnConfig::small()",
            "data": "first 32 bundled training digits, v/255 > 0.5",
            "images": host(batch.images().clone())?,
            "log_likelihood": ll.log_likelihood_nats,
            "log_likelihood_after_step": ll_after_step.log_likelihood_nats,
        }),
    )
}

fn export_vae(out: &Path, batch: &ImageBatch, device: &Device) -> genmodels::Result<()> {
    let config = VaeConfig::new();
    let model = init_seeded(&config, WEIGHT_SEED, device)?;
    save_weights(&model, &out.join("vae.safetensors"))?;
    let posterior = model.encode(batch.images().clone());
    let eps = random::standard_normal(
        [BATCH, config.latent_dim],
        &mut random::rng(NOISE_SEED),
        device,
    );
    let z = posterior.mean.clone() + (posterior.log_var.clone() * 0.5).exp() * eps.clone();
    let log_px = bernoulli_log_prob(model.decoder_outputs(z), batch.flat_images());
    let kl = kl_diagonal_gaussian_to_standard_normal(posterior.mean, posterior.log_var);
    write_check(
        out,
        "vae",
        json!({
            "model": "vae",
            "config": "VaeConfig::new()",
            "data": "first 32 bundled training digits, v/255 > 0.5",
            "images": host(batch.images().clone())?,
            "eps": host(eps)?,
            "log_px_given_z": host(log_px)?,
            "kl": host(kl)?,
        }),
    )
}

fn export_dcgan(out: &Path, batch: &ImageBatch, device: &Device) -> genmodels::Result<()> {
    let config = GanConfig::default();
    let model = init_seeded(&config, WEIGHT_SEED, device)?;
    save_weights(&model, &out.join("dcgan.safetensors"))?;
    // Training mode: batch norm uses the batch's statistics only on an autodiff device.
    let train_device = device.clone().autodiff();
    let model = model.fork(&train_device).train();
    let z = random::standard_normal(
        [BATCH, config.latent_dim],
        &mut random::rng(NOISE_SEED),
        &train_device,
    );
    let x = batch.to_device(&train_device).images().clone() * 2.0 - 1.0;
    let fake = model.generator.forward(z.clone(), None);
    let d_real = model.discriminator.forward(x, None);
    let d_fake = model.discriminator.forward(fake.detach(), None);
    let objective = config.objective;
    let d_loss = discriminator_loss(objective, d_real.clone(), d_fake.clone());
    let g_loss = generator_loss(objective, d_fake.clone());
    write_check(
        out,
        "dcgan",
        json!({
            "model": "dcgan",
            "config": "GanConfig::default() (DCGAN, non-saturating, MNIST)",
            "data": "first 32 bundled training digits, v/255 (the model scales to 2x - 1)",
            "images": host(batch.images().clone())?,
            "z": host(z)?,
            "d_real": host(d_real)?,
            "d_fake": host(d_fake)?,
            "discriminator_loss": host(d_loss)?[0],
            "generator_loss": host(g_loss)?[0],
        }),
    )
}

/// Writes `model`'s weights with burn's safetensors store, under burn's names.
fn save_weights<M: Module>(model: &M, path: &Path) -> genmodels::Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| GenError::Backend(format!("writing {}: {e}", path.display())))
}

fn host<const D: usize>(tensor: Tensor<D>) -> genmodels::Result<Vec<f32>> {
    to_host(tensor)
}

fn write_check(out: &Path, model: &str, check: Value) -> genmodels::Result<()> {
    let path = out.join(format!("{model}-check.json"));
    let text = serde_json::to_string(&check)
        .map_err(|e| GenError::Backend(format!("encoding {}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| GenError::io(&path, e))
}

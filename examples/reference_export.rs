//! Exports what the PyTorch side-by-side reference (`benches/reference/`) needs to prove that
//! its networks are ours: the weights of the four autoregressive models (PixelCNN `small`, the
//! Gated PixelCNN, the PixelRNN Row LSTM and Diagonal BiLSTM, each at the configuration
//! `genmodels bench` builds for it), the default VAE, the default DCGAN (each
//! `init_seeded(&config, 0, flex)`) and the DDPM's trained U-Net, in burn's safetensors format,
//! and for each a fixed input batch with what genmodels computes on it.
//!
//! ```text
//! cargo run --release --example reference_export -- OUT_DIR
//! ```
//!
//! writes, for `MODEL` in `pixelcnn`, `gated-pixelcnn`, `row-lstm`, `diagonal-bilstm`, `vae`,
//! `dcgan`, `ddpm` (the CLI's model names):
//!
//! - `OUT_DIR/MODEL.safetensors`: the weights under burn's own names and layouts (a `Linear`
//!   weight is `[in, out]`, the transpose of PyTorch's; convolution kernels are laid out as in
//!   PyTorch);
//! - `OUT_DIR/MODEL-check.json`: the first 32 bundled training digits prepared as the model
//!   trains on them (binarised with threshold 0.5 for the autoregressive models and the VAE,
//!   grey levels `v/255` for the DCGAN, which scales them to `[−1, 1]` itself), the fixed noise
//!   (the VAE's `ε`, the DCGAN's `z`), and genmodels' results:
//!   - the autoregressive models: their configuration, `log p(x)` per image in nats
//!     ([`GenerativeModel::log_likelihood`]), and again after one training step on the batch
//!     (Adam at the registry's learning rate, 1e-3);
//!   - VAE: per image, `log p(x|z)` at `z = μ + σ ⊙ ε` and `KL(q(z|x) ‖ p(z))`;
//!   - DCGAN: the raw discriminator outputs on the data and on `G(z)`, and both players'
//!     non-saturating losses, in training mode (batch norm on batch statistics), as a
//!     training step computes them before either player steps;
//!   - DDPM (`DiffusionConfig::small` for binary MNIST, the registry's `ddpm`): the weights
//!     are those of the trained network ([`Diffusion::network`], not the moving average)
//!     after [`DDPM_WARM_STEPS`] training steps on the batch (its output convolution starts
//!     at zero, so at initialisation `ε_θ ≡ 0` whatever the rest computes); fixed steps `t`
//!     spread over `1..=T` and fixed noise `ε`, with `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`
//!     (`x_0 = 2x − 1`), the network's `ε_θ(x_t, t)` and `L_simple = mean (ε − ε_θ)²`; and
//!     a DDIM run of the same network (50 steps, `η = 0`, `x̂_0` clipped, as the default
//!     sampler) from a fixed `x_T`, its last continuous image before the binary read-out.

use std::path::{Path, PathBuf};

use genmodels::burn::module::Module;
use genmodels::burn::store::{ModuleSnapshot, SafetensorsStore};
use genmodels::burn::tensor::{Device, Tensor};
use genmodels::diffusion::{DEFAULT_DDIM_STEPS, DataGrid, Diffusion, DiffusionConfig};
use genmodels::distributions::{bernoulli_log_prob, kl_diagonal_gaussian_to_standard_normal};
use genmodels::gan::{GanConfig, discriminator_loss, generator_loss};
use genmodels::prelude::*;
use genmodels::registry::{self, DensityType, Entry, ModelVisitor, Pixels, Registered};
use genmodels::vae::VaeConfig;
use genmodels::{OptimizerKind, Player, TrainingStep, batch::to_host, random};
use serde_json::{Value, json};

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

/// Images in the check batch.
const BATCH: usize = 32;
/// Seed of the weights (as `init_seeded` takes it).
const WEIGHT_SEED: u64 = 0;
/// Seed of the fixed noise (the VAE's ε, the DCGAN's z, the DDPM's ε).
const NOISE_SEED: u64 = 1;
/// Seed of the DDPM's DDIM start `x_T`.
const DDIM_SEED: u64 = 2;
/// The autoregressive models exported, by their names in the CLI and the model registry.
const AUTOREGRESSIVE: [&str; 4] = ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"];
/// Training steps the DDPM takes on the batch before its network is exported: its output
/// convolution is zero at initialisation, and `ε_θ ≡ 0` would check nothing else.
const DDPM_WARM_STEPS: usize = 20;

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

    for name in AUTOREGRESSIVE {
        registry::entry(name)?.visit(ExportAutoregressive {
            out: &out,
            batch: &binary,
            device: &device,
        })?;
    }
    export_vae(&out, &binary, &device)?;
    export_dcgan(&out, &grey, &device)?;
    export_ddpm(&out, &binary, &device)?;
    println!(
        "wrote {}, vae, dcgan and ddpm weights and checks to {}",
        AUTOREGRESSIVE.join(", "),
        out.display()
    );
    Ok(())
}

/// Exports an autoregressive model of the registry at the configuration `genmodels bench`
/// builds for its entry (`Entry::config` for binary pixels), trained as the bench trains it.
struct ExportAutoregressive<'a> {
    out: &'a Path,
    batch: &'a ImageBatch,
    device: &'a Device,
}

impl ModelVisitor for ExportAutoregressive<'_> {
    type Output = genmodels::Result<()>;

    fn visit<M: Registered>(self, entry: &'static Entry) -> genmodels::Result<()> {
        let config = entry.config::<M>(Pixels::Binary)?;
        if M::DENSITY != DensityType::ExplicitTractable || M::pixels(&config) != Pixels::Binary {
            return Err(GenError::InvalidConfig(format!(
                "{}: not an exact-likelihood model of binary pixels",
                entry.name
            )));
        }
        let model = init_seeded(&config, WEIGHT_SEED, self.device)?;
        save_weights(
            &model,
            &self.out.join(format!("{}.safetensors", entry.name)),
        )?;
        let ll = model.log_likelihood(self.batch, &LikelihoodOptions::default())?;
        // One training step as the trainer (and `genmodels bench`) takes it: loss, backward,
        // each player's optimiser (Adam, β = (0.9, 0.999), ε = 1e-8) at the registry's learning
        // rate. Then the likelihood again: these losses draw no noise, so PyTorch can repeat
        // the step and check that the timed work is the same.
        let (_, settings) = M::training(config.clone(), None);
        let train_device = self.device.clone().autodiff();
        let model = model.fork(&train_device).train();
        let train_batch = self.batch.to_device(&train_device);
        let players = model.players();
        let optimizers: Vec<Value> = players
            .iter()
            .map(|player| optimizer_json(player, settings.learning_rate))
            .collect();
        let mut training_step = TrainingStep::new(players, settings.learning_rate)?;
        let (model, _) = training_step.step(model, &train_batch, 1)?;
        let ll_after_step = model.log_likelihood(&train_batch, &LikelihoodOptions::default())?;
        let config = serde_json::to_value(&config)
            .map_err(|e| GenError::Backend(format!("encoding the {} config: {e}", entry.name)))?;
        write_check(
            self.out,
            entry.name,
            json!({
                "model": entry.name,
                "config": config,
                "optimizers": optimizers,
                "data": "first 32 bundled training digits, v/255 > 0.5",
                "images": host(self.batch.images().clone())?,
                "log_likelihood": ll.log_likelihood_nats,
                "log_likelihood_after_step": ll_after_step.log_likelihood_nats,
            }),
        )
    }
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

/// The DDPM the registry's `ddpm` entry builds for binary pixels (`DiffusionConfig::small`),
/// trained [`DDPM_WARM_STEPS`] steps on the batch as `genmodels bench` trains it; then the
/// trained network's noise prediction and `L_simple` at fixed steps and noise.
fn export_ddpm(out: &Path, batch: &ImageBatch, device: &Device) -> genmodels::Result<()> {
    let config = DiffusionConfig::small(ImageShape::MNIST, DataGrid::Binary);
    let registered = registry::entry("ddpm")?.config::<Diffusion>(Pixels::Binary)?;
    if serde_json::to_value(&registered).ok() != serde_json::to_value(&config).ok() {
        return Err(GenError::InvalidConfig(
            "the registry's ddpm is no longer DiffusionConfig::small for binary MNIST".into(),
        ));
    }
    let (_, settings) = Diffusion::training(config.clone(), None);
    let train_device = device.clone().autodiff();
    let mut model = init_seeded(&config, WEIGHT_SEED, &train_device)?.train();
    let players = model.players();
    let optimizers: Vec<Value> = players
        .iter()
        .map(|player| optimizer_json(player, settings.learning_rate))
        .collect();
    let mut training_step = TrainingStep::new(players, settings.learning_rate)?;
    let train_batch = batch.to_device(&train_device);
    for step in 1..=DDPM_WARM_STEPS {
        model = training_step.step(model, &train_batch, step)?.0;
    }
    let model = model.fork(device);
    let network = model.network();
    save_weights(network, &out.join("ddpm.safetensors"))?;

    let t_max = config.timesteps;
    // 1, 33, …, 1000: both ends and the steps between, evenly.
    let timesteps: Vec<usize> = (0..BATCH)
        .map(|i| 1 + (i * (t_max - 1) + (BATCH - 1) / 2) / (BATCH - 1))
        .collect();
    let x0 = batch.images().clone() * 2.0 - 1.0;
    let noise = random::standard_normal(
        config.image_shape.batch_dims(BATCH),
        &mut random::rng(NOISE_SEED),
        device,
    );
    let process = model.process();
    let xt = process.q_sample(x0, &timesteps, noise.clone());
    let steps: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    let predicted = network.forward(
        xt.clone(),
        Tensor::<1>::from_floats(steps.as_slice(), device),
    );
    let loss = (predicted.clone() - noise.clone()).powi_scalar(2).mean();
    // DDIM as the default sampler runs it (there on the moving average, here on the exported
    // network), from a fixed x_T: deterministic at η = 0.
    let predictor = |noisy: Tensor<4>, steps: &[usize]| {
        let steps: Vec<f32> = steps.iter().map(|&t| t as f32).collect();
        network.forward(noisy, Tensor::<1>::from_floats(steps.as_slice(), device))
    };
    let ddim_start = random::standard_normal(
        config.image_shape.batch_dims(BATCH),
        &mut random::rng(DDIM_SEED),
        device,
    );
    let ddim = process.sample_ddim(
        &predictor,
        ddim_start.clone(),
        DEFAULT_DDIM_STEPS,
        0.0,
        config.clip_denoised,
        &mut random::rng(DDIM_SEED),
    );
    // The schedule's per-image coefficients as genmodels uses them: f64, then f32.
    let schedule = &process.schedule;
    let coefficient =
        |f: &dyn Fn(usize) -> f64| -> Vec<f32> { timesteps.iter().map(|&t| f(t) as f32).collect() };
    let config_json = serde_json::to_value(&config)
        .map_err(|e| GenError::Backend(format!("encoding the ddpm config: {e}")))?;
    write_check(
        out,
        "ddpm",
        json!({
            "model": "ddpm",
            "config": config_json,
            "optimizers": optimizers,
            "warm_steps": DDPM_WARM_STEPS,
            "weights": "the trained network (Diffusion::network), not the moving average",
            "data": "first 32 bundled training digits, v/255 > 0.5",
            "images": host(batch.images().clone())?,
            "timesteps": timesteps,
            "noise": host(noise)?,
            "sqrt_alpha_bar": coefficient(&|t| schedule.alpha_bar(t).sqrt()),
            "sqrt_one_minus_alpha_bar": coefficient(&|t| (1.0 - schedule.alpha_bar(t)).sqrt()),
            "noisy": host(xt)?,
            "predicted_noise": host(predicted)?,
            "loss": host(loss)?[0],
            "ddim_steps": DEFAULT_DDIM_STEPS,
            "ddim_start": host(ddim_start)?,
            "ddim_output": host(ddim)?,
        }),
    )
}

/// A player's optimiser as the check JSON records it, for the PyTorch side to compare with its
/// own.
fn optimizer_json(player: &Player, base_learning_rate: f64) -> Value {
    let learning_rate = base_learning_rate * player.learning_rate_scale;
    match player.optimizer {
        OptimizerKind::Adam { beta_1, beta_2 } => json!({
            "player": player.name,
            "every": player.every,
            "kind": "adam",
            "learning_rate": learning_rate,
            "betas": [beta_1, beta_2],
            "eps": 1e-8,
        }),
        OptimizerKind::RmsProp { alpha } => json!({
            "player": player.name,
            "every": player.every,
            "kind": "rmsprop",
            "learning_rate": learning_rate,
            "alpha": alpha,
            "eps": 1e-8,
        }),
    }
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

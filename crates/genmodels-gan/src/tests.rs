//! Objectives against hand-computed values, player isolation, spectral normalisation against
//! an independent SVD estimate, mode coverage on the 8-Gaussian ring, typed errors, shapes
//! and monitoring.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor, TensorData};
use genmodels_core::batch::to_host;
use genmodels_core::{ConditionalSample, Interpolate, Reconstruct};
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageDataset, ImageShape, LikelihoodOptions,
    ModelConfig, OptimizerKind, Trainable, Trainer, TrainerConfig, checkpoint, init_seeded,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::model::{DISCRIMINATOR, GENERATOR, LatentPath};
use crate::network::GanArchitecture;
use crate::objective::{GanObjective, discriminator_loss, generator_loss};
use crate::ring::{RING_SHAPE, ring_mode_counts, ring_of_gaussians};
use crate::spectral_norm::{SnLinear, SpectralNorm};
use crate::vae_gan::{VAE_GAN_DECODER, VAE_GAN_DISCRIMINATOR, VAE_GAN_ENCODER};
use crate::{Gan, GanConfig, VaeGanConfig};

fn device() -> Device {
    Device::flex()
}

/// burn's random generator is global to a device, and the test harness runs tests in
/// parallel: every test that draws from the device RNG (weight initialisation, training
/// noise) holds this lock, so each one's draws are reproducible.
fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn vector(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

fn value(t: Tensor<1>) -> f64 {
    to_host(t).unwrap()[0] as f64
}

// ---------------------------------------------------------------- objectives

#[test]
fn every_objective_gives_the_hand_computed_losses_on_fixed_outputs() {
    let d = device();
    let (real, fake) = ([2.0f32, -1.0], [0.5f32, -3.0]);
    let sp = |t: f64| (1.0 + t.exp()).ln();
    let relu = |t: f64| t.max(0.0);
    // E[softplus(−d_r)] + E[softplus(d_f)]
    let bce_d = (sp(-2.0) + sp(1.0)) / 2.0 + (sp(0.5) + sp(-3.0)) / 2.0;
    let expected = [
        // minimax: L_G = E[log(1 − σ(d_f))] = −E[softplus(d_f)]
        (GanObjective::Minimax, bce_d, -(sp(0.5) + sp(-3.0)) / 2.0),
        // non-saturating: L_G = −E[log σ(d_f)] = E[softplus(−d_f)]
        (
            GanObjective::NonSaturating,
            bce_d,
            (sp(-0.5) + sp(3.0)) / 2.0,
        ),
        // LSGAN: ½·((2−1)² + (−1−1)²)/2 + ½·(0.5² + 3²)/2; ½·((0.5−1)² + (−3−1)²)/2
        (
            GanObjective::Lsgan,
            0.5 * (1.0 + 4.0) / 2.0 + 0.5 * (0.25 + 9.0) / 2.0,
            0.5 * (0.25 + 16.0) / 2.0,
        ),
        // hinge: (relu(1−2) + relu(1+1))/2 + (relu(1+0.5) + relu(1−3))/2; −(0.5 − 3)/2
        (
            GanObjective::Hinge,
            (relu(-1.0) + relu(2.0)) / 2.0 + (relu(1.5) + relu(-2.0)) / 2.0,
            -(0.5 - 3.0) / 2.0,
        ),
        // Wasserstein: (0.5 − 3)/2 − (2 − 1)/2; −(0.5 − 3)/2
        (
            GanObjective::Wasserstein,
            (0.5 - 3.0) / 2.0 - (2.0 - 1.0) / 2.0,
            -(0.5 - 3.0) / 2.0,
        ),
    ];
    for (objective, l_d, l_g) in expected {
        let got_d = value(discriminator_loss(
            objective,
            vector(&real, &d),
            vector(&fake, &d),
        ));
        let got_g = value(generator_loss(objective, vector(&fake, &d)));
        assert!(
            (got_d - l_d).abs() < 1e-5,
            "{objective} L_D {got_d} vs {l_d}"
        );
        assert!(
            (got_g - l_g).abs() < 1e-5,
            "{objective} L_G {got_g} vs {l_g}"
        );
        // The methods are the same functions.
        let via_method = value(objective.generator_loss(vector(&fake, &d)));
        assert_eq!(via_method, got_g);
    }
}

#[test]
fn objective_names_round_trip_through_the_cli_and_serde_spellings() {
    for objective in GanObjective::ALL {
        assert_eq!(
            objective.to_string().parse::<GanObjective>().unwrap(),
            objective
        );
        let json = serde_json::to_string(&objective).unwrap();
        assert_eq!(json, format!("\"{}\"", objective.name().replace('-', "_")));
        assert_eq!(
            serde_json::from_str::<GanObjective>(&json).unwrap(),
            objective
        );
    }
    assert_eq!(
        "non_saturating".parse::<GanObjective>().unwrap(),
        GanObjective::NonSaturating
    );
    assert!(matches!(
        "wgan-gp".parse::<GanObjective>(),
        Err(GenError::InvalidConfig(_))
    ));
}

#[test]
fn players_follow_the_objective_defaults() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 1, 2);
    let gan = GanConfig::mlp(shape)
        .with_objective(GanObjective::Wasserstein)
        .init(&device())
        .unwrap();
    let players = gan.players();
    assert_eq!(players[DISCRIMINATOR].name, "discriminator");
    assert_eq!(players[DISCRIMINATOR].every, 1);
    assert_eq!(players[GENERATOR].name, "generator");
    assert_eq!(players[GENERATOR].every, 5);
    assert_eq!(
        players[GENERATOR].optimizer,
        OptimizerKind::RmsProp { alpha: 0.99 }
    );
    let gan = GanConfig::mlp(shape).init(&device()).unwrap();
    assert_eq!(gan.players()[GENERATOR].every, 1);
    assert_eq!(
        gan.players()[DISCRIMINATOR].optimizer,
        OptimizerKind::Adam {
            beta_1: 0.5,
            beta_2: 0.999
        }
    );
    assert!(
        GanConfig::mlp(shape)
            .with_objective(GanObjective::Hinge)
            .uses_spectral_norm()
    );
    assert!(!GanConfig::mlp(shape).uses_spectral_norm());
}

// ---------------------------------------------------------------- player isolation

/// Every float tensor of a module by path, running statistics (batch norm's, spectral
/// norm's `u`) marked.
#[derive(Default)]
struct Collect {
    path: Vec<String>,
    tensors: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tensors
            .push((self.path.join("."), to_host(param.val()).unwrap()));
    }
}

fn is_running_state(path: &str) -> bool {
    ["running_mean", "running_var", "u"]
        .iter()
        .any(|s| path.rsplit('.').next() == Some(*s))
}

/// The trainable weights of a model, by path.
fn weights<M: Module>(gan: &M) -> Vec<(String, Vec<f32>)> {
    let mut collect = Collect::default();
    gan.visit(&mut collect);
    collect
        .tensors
        .into_iter()
        .filter(|(path, _)| !is_running_state(path))
        .collect()
}

fn running_states(gan: &Gan) -> Vec<(String, Vec<f32>)> {
    let mut collect = Collect::default();
    gan.visit(&mut collect);
    collect
        .tensors
        .into_iter()
        .filter(|(path, _)| is_running_state(path))
        .collect()
}

/// Random images in `[0, 1]`, with labels `i mod 3`.
fn random_batch(shape: ImageShape, n: usize, seed: u64, device: &Device) -> ImageBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let pixels = (0..n * shape.dims()).map(|_| rng.random::<f32>()).collect();
    let labels = (0..n as i64).map(|i| i % 3).collect();
    ImageBatch::from_host(pixels, shape, Some(labels), device).unwrap()
}

/// One optimiser step of `player`, exactly as the trainer makes it.
fn step(gan: Gan, player: usize, batch: &ImageBatch) -> Gan {
    let mut optimizer = AdamConfig::new().with_beta_1(0.5).init();
    let loss = gan.loss(player, batch).unwrap();
    let grads = gan.player_gradients(player, loss.objective.backward());
    let gan = optimizer.step(1e-2, gan, grads);
    gan.after_player_step(player)
}

#[test]
fn each_step_changes_only_its_own_players_weights() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let ad = device().autodiff();
    let configs = [
        GanConfig::mlp(shape).with_architecture(GanArchitecture::Mlp { hidden: vec![16] }),
        GanConfig::dcgan(shape).with_architecture(GanArchitecture::Dcgan { width: 4 }),
        GanConfig::cgan(shape, 3)
            .with_architecture(GanArchitecture::Dcgan { width: 4 })
            .with_objective(GanObjective::Hinge),
    ];
    for config in configs {
        ad.seed(3);
        let batch = random_batch(shape, 6, 1, &ad);
        let mut gan = config.clone().init(&ad).unwrap().train();
        for (player, own) in [(DISCRIMINATOR, "discriminator"), (GENERATOR, "generator")] {
            let before = weights(&gan);
            gan = step(gan, player, &batch);
            let after = weights(&gan);
            assert_eq!(before.len(), after.len());
            for ((name, b), (name_after, a)) in before.iter().zip(&after) {
                assert_eq!(name, name_after);
                // Under hinge (all margins active, as at initialisation) and Wasserstein
                // losses the head's bias adds equally to real and fake terms of opposite
                // sign: its gradient is exactly zero.
                let bias_cancels = config.objective == GanObjective::Hinge
                    && name == "discriminator.head.linear.bias";
                if name.starts_with(own) && !bias_cancels {
                    assert_ne!(b, a, "{own} step left its weight {name} unchanged");
                } else if !name.starts_with(own) {
                    assert_eq!(b, a, "{own} step changed {name}");
                }
            }
        }
    }
}

#[test]
fn wasserstein_clips_every_critic_weight_and_no_running_statistic() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let ad = device().autodiff();
    ad.seed(5);
    let c = 0.01;
    let gan = GanConfig::dcgan(shape)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .with_objective(GanObjective::Wasserstein)
        .with_clip_value(c)
        .init(&ad)
        .unwrap()
        .train();
    let before_g = weights(&gan);
    // Initial weights exceed the bound somewhere, so the clip is doing work.
    assert!(before_g.iter().chain(&weights(&gan)).any(|(name, w)| {
        name.starts_with("discriminator") && w.iter().any(|v| v.abs() > c as f32)
    }));
    let gan = step(gan, DISCRIMINATOR, &random_batch(shape, 6, 2, &ad));
    for (name, w) in weights(&gan) {
        if name.starts_with("discriminator") {
            assert!(
                w.iter().all(|v| v.abs() <= c as f32),
                "{name} has a weight outside [−c, c]"
            );
        }
    }
    // Batch norm's running variance (≈ 1) is state, not a weight: left alone.
    let running_var = running_states(&gan)
        .into_iter()
        .find(|(name, _)| name.starts_with("discriminator") && name.ends_with("running_var"))
        .unwrap();
    assert!(running_var.1.iter().all(|&v| v > 0.5), "{running_var:?}");
    let g_after: Vec<_> = weights(&gan)
        .into_iter()
        .filter(|(n, _)| n.starts_with("generator"))
        .collect();
    let g_before: Vec<_> = before_g
        .into_iter()
        .filter(|(n, _)| n.starts_with("generator"))
        .collect();
    assert_eq!(g_before, g_after);
}

// ---------------------------------------------------------------- spectral norm

/// The largest singular value of a row-major `[rows, cols]` matrix, in f64: power iteration
/// on `MᵀM` to convergence.
fn largest_singular_value(m: &[f32], rows: usize, cols: usize) -> f64 {
    let m: Vec<f64> = m.iter().map(|&v| v as f64).collect();
    let mut v = vec![1.0 / (cols as f64).sqrt(); cols];
    let mut sigma = 0.0;
    for _ in 0..5000 {
        let mv: Vec<f64> = (0..rows)
            .map(|i| (0..cols).map(|j| m[i * cols + j] * v[j]).sum())
            .collect();
        let mtmv: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| m[i * cols + j] * mv[i]).sum())
            .collect();
        let norm = mtmv.iter().map(|x| x * x).sum::<f64>().sqrt();
        v = mtmv.iter().map(|x| x / norm).collect();
        sigma = norm.sqrt();
    }
    sigma
}

fn random_matrix(rows: usize, cols: usize, seed: u64, device: &Device) -> Tensor<2> {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| 3.0 * rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

#[test]
fn spectral_normalisation_gives_unit_largest_singular_value() {
    let _rng = rng_lock();
    let d = device();
    // A conv weight [16, 8, 3, 3] as the matrix [16, 72].
    let w = random_matrix(16, 72, 1, &d);
    let raw = largest_singular_value(&to_host(w.clone()).unwrap(), 16, 72);
    assert!(
        raw > 5.0,
        "the test matrix should be far from normalised: {raw}"
    );
    d.seed(2);
    let sn = SpectralNorm::new(16, 1, &d);
    sn.power_iteration(w.clone(), 200);
    let normalised = sn.normalise(w);
    let sigma = largest_singular_value(&to_host(normalised).unwrap(), 16, 72);
    assert!((sigma - 1.0).abs() < 0.01, "σ_max {sigma}");
}

#[test]
fn spectral_normalisation_of_a_linear_layer_converges_over_training_forwards() {
    let _rng = rng_lock();
    let ad = device().autodiff();
    ad.seed(4);
    let layer = SnLinear::new(
        24,
        10,
        burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        },
        Some(1),
        &ad,
    );
    // One power iteration per training forward; the persistent u accumulates them.
    for _ in 0..100 {
        let _ = layer.effective_weight();
    }
    let w = to_host(layer.effective_weight()).unwrap();
    let sigma = largest_singular_value(&w, 24, 10);
    assert!((sigma - 1.0).abs() < 0.01, "σ_max {sigma}");
    // Inference reuses the stored u: no change, same normalisation.
    let inference = layer.valid();
    let u_before = to_host(inference.spectral_norm.as_ref().unwrap().u.value()).unwrap();
    let w_inf = to_host(inference.effective_weight()).unwrap();
    let u_after = to_host(inference.spectral_norm.as_ref().unwrap().u.value()).unwrap();
    assert_eq!(u_before, u_after);
    assert!((largest_singular_value(&w_inf, 24, 10) - 1.0).abs() < 0.01);
}

// ---------------------------------------------------------------- ring mode coverage

/// Trains the non-saturating MLP GAN on the ring; returns (modes covered, fraction of
/// samples near a mode), a sample being near mode k within 3 std (0.03).
fn ring_coverage(seed: u64) -> (usize, f64) {
    let d = device();
    let config = GanConfig::mlp(RING_SHAPE)
        .with_architecture(GanArchitecture::Mlp {
            hidden: vec![128, 128],
        })
        .with_latent_dim(8);
    let gan = init_seeded(&config, seed, &d).unwrap();
    let trainer = Trainer::new(TrainerConfig {
        epochs: RING_EPOCHS,
        batch_size: 100,
        learning_rate: 1e-3,
        seed,
        ..TrainerConfig::default()
    });
    let data = ring_of_gaussians(2000, seed).unwrap();
    let trained = trainer.fit(gan, &data, None, &d).unwrap();
    let samples = to_host(trained.model.sample(1000, seed + 100).unwrap()).unwrap();
    let per_mode = ring_mode_counts(&samples);
    let near: usize = per_mode.iter().sum();
    let covered = per_mode.iter().filter(|&&c| c >= 20).count();
    (covered, near as f64 / 1000.0)
}

/// 20 steps per epoch: 5,000 steps (about 8 s in release on 2 cores). Measured with this
/// setting: seeds 0–4 cover 8, 7, 8, 8, 8 modes with 92, 77, 87, 67, 78% of samples near a
/// mode; with 60 epochs most seeds cover 0–2 modes.
const RING_EPOCHS: usize = 250;

#[test]
fn non_saturating_mlp_gan_covers_the_ring_of_eight_gaussians() {
    let _rng = rng_lock();
    let (covered, near) = ring_coverage(0);
    assert!(covered >= 6, "only {covered} of 8 modes covered");
    assert!(
        near >= 0.5,
        "only {:.0}% of samples near a mode",
        100.0 * near
    );
}

/// Other seeds, for tuning: `cargo test --release -p genmodels-gan ring_seeds -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn ring_seeds() {
    let _rng = rng_lock();
    for seed in 0..=4 {
        let (covered, near) = ring_coverage(seed);
        println!(
            "seed {seed}: {covered} modes, {:.0}% near a mode",
            100.0 * near
        );
    }
}

// ---------------------------------------------------------------- typed errors

#[test]
fn bad_input_gives_typed_errors() {
    let _rng = rng_lock();
    let d = device();
    let shape = ImageShape::new(1, 8, 8);
    let tiny = GanArchitecture::Dcgan { width: 4 };
    let gan = GanConfig::dcgan(shape)
        .with_architecture(tiny.clone())
        .with_latent_dim(8)
        .init(&d)
        .unwrap();
    // Wrong latent size.
    let z = Tensor::<2>::zeros([3, 7], &d);
    assert!(matches!(
        gan.generate(z, None),
        Err(GenError::ShapeMismatch { .. })
    ));
    // Labels for an unconditional model.
    let z = Tensor::<2>::zeros([2, 8], &d);
    assert!(matches!(
        gan.generate(z, Some(&[0, 1])),
        Err(GenError::InvalidLabels(_))
    ));
    // Wrong image shape.
    let other = random_batch(ImageShape::new(1, 4, 4), 2, 0, &d);
    for player in [DISCRIMINATOR, GENERATOR] {
        assert!(matches!(
            gan.loss(player, &other),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
    // No likelihood.
    let batch = random_batch(shape, 2, 0, &d);
    assert!(matches!(
        gan.log_likelihood(&batch, &LikelihoodOptions::default()),
        Err(GenError::LikelihoodNotAvailable { .. })
    ));
    assert!(matches!(gan.sample(0, 0), Err(GenError::InvalidConfig(_))));

    // The conditional model: labels outside the classes, or none.
    let cgan = GanConfig::cgan(shape, 3)
        .with_architecture(tiny.clone())
        .init(&d)
        .unwrap();
    assert!(matches!(
        cgan.sample_with_labels(&[0, 3], 0),
        Err(GenError::InvalidLabels(_))
    ));
    let z = Tensor::<2>::zeros([2, 100], &d);
    assert!(matches!(
        cgan.generate(z.clone(), None),
        Err(GenError::InvalidLabels(_))
    ));
    assert!(matches!(
        cgan.generate(z, Some(&[1])),
        Err(GenError::ShapeMismatch { .. })
    ));
    let pixels = vec![0.5; 2 * shape.dims()];
    let unlabelled = ImageBatch::from_host(pixels.clone(), shape, None, &d).unwrap();
    for player in [DISCRIMINATOR, GENERATOR] {
        assert!(matches!(
            cgan.loss(player, &unlabelled),
            Err(GenError::InvalidLabels(_))
        ));
    }
    let bad_label = ImageBatch::from_host(pixels, shape, Some(vec![0, 5]), &d).unwrap();
    for player in [DISCRIMINATOR, GENERATOR] {
        assert!(matches!(
            cgan.loss(player, &bad_label),
            Err(GenError::InvalidLabels(_))
        ));
    }
    assert!(cgan.loss(DISCRIMINATOR, &batch).is_ok());
    assert!(cgan.loss(GENERATOR, &batch).is_ok());

    // Invalid configurations.
    let invalid = [
        GanConfig::mlp(shape).with_latent_dim(0),
        GanConfig::dcgan(ImageShape::new(1, 10, 10)),
        GanConfig::dcgan(shape).with_architecture(GanArchitecture::Dcgan { width: 0 }),
        GanConfig::mlp(shape).with_architecture(GanArchitecture::Mlp { hidden: vec![8, 0] }),
        GanConfig::cgan(shape, 0),
        GanConfig::mlp(shape).with_clip_value(0.0),
        GanConfig::mlp(shape).with_critic_steps(Some(0)),
        GanConfig::mlp(shape)
            .with_objective(GanObjective::Hinge)
            .with_power_iterations(0),
    ];
    for config in invalid {
        assert!(
            matches!(config.init(&d), Err(GenError::InvalidConfig(_))),
            "{config:?} should be rejected"
        );
    }
}

#[test]
fn a_checkpoint_with_another_latent_size_is_a_typed_mismatch() {
    let _rng = rng_lock();
    let d = device();
    let dir = tempfile::tempdir().unwrap();
    let shape = ImageShape::new(1, 8, 8);
    let config = GanConfig::dcgan(shape)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .with_latent_dim(8);
    let gan = config.init(&d).unwrap();
    let position = checkpoint::TrainingPosition {
        epoch: 0,
        step: 0,
        seed: 0,
    };
    checkpoint::save_checkpoint(dir.path(), &gan, &[], position).unwrap();
    // It loads back as saved...
    let (loaded, _) = checkpoint::load_model::<GanConfig>(dir.path(), &d).unwrap();
    assert_eq!(loaded.config(), &config);
    // ...but not under a config that asks for latent 16.
    let path = dir.path().join(checkpoint::CONFIG_FILE);
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["config"]["latent_dim"], 8);
    saved["config"]["latent_dim"] = 16.into();
    std::fs::write(&path, saved.to_string()).unwrap();
    assert!(matches!(
        checkpoint::load_model::<GanConfig>(dir.path(), &d),
        Err(GenError::CheckpointMismatch { .. })
    ));
}

// ---------------------------------------------------------------- shapes and sampling

#[test]
fn dcgan_shapes_sampling_and_interpolation() {
    let _rng = rng_lock();
    let d = device();
    d.seed(9);
    let gan = GanConfig::dcgan(ImageShape::MNIST)
        .with_architecture(GanArchitecture::Dcgan { width: 8 })
        .init(&d)
        .unwrap();
    let samples = gan.sample(5, 1).unwrap();
    assert_eq!(samples.dims(), [5, 1, 28, 28]);
    let values = to_host(samples).unwrap();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(values, to_host(gan.sample(5, 1).unwrap()).unwrap());
    assert_ne!(values, to_host(gan.sample(5, 2).unwrap()).unwrap());

    let x = Tensor::<4>::zeros([3, 1, 28, 28], &d);
    assert_eq!(
        gan.discriminator.features(x.clone()).dims(),
        [3, 16 * 7 * 7]
    );
    assert_eq!(gan.discriminator.forward(x, None).dims(), [3]);

    for path in [LatentPath::Linear, LatentPath::Spherical] {
        let line = to_host(gan.interpolate(1, 2, 4, None, path).unwrap()).unwrap();
        assert_eq!(line.len(), 4 * 784);
        // The ends are the samples of the two seeds.
        let from = to_host(gan.sample(1, 1).unwrap()).unwrap();
        let to = to_host(gan.sample(1, 2).unwrap()).unwrap();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close(&line[..784], &from));
        assert!(close(&line[3 * 784..], &to));
    }
}

#[test]
fn conditional_samples_follow_the_requested_labels() {
    let _rng = rng_lock();
    let d = device();
    d.seed(10);
    let gan = GanConfig::cgan(ImageShape::MNIST, 10)
        .with_architecture(GanArchitecture::Dcgan { width: 8 })
        .init(&d)
        .unwrap();
    assert_eq!(
        gan.sample_with_labels(&[3, 3, 7], 0).unwrap().dims(),
        [3, 1, 28, 28]
    );
    // The label reaches the generator: one z, two labels, two images.
    let z = Tensor::<2>::zeros([1, 100], &d).repeat_dim(0, 2);
    let pair = to_host(gan.generate(z, Some(&[0, 1])).unwrap()).unwrap();
    assert_ne!(pair[..784], pair[784..]);
    // sample() cycles the labels: sample i of sample(n) is class i mod 10.
    let cycled = to_host(gan.sample(12, 4).unwrap()).unwrap();
    let labels: Vec<usize> = (0..12).map(|i| i % 10).collect();
    let explicit = to_host(gan.sample_with_labels(&labels, 4).unwrap()).unwrap();
    assert_eq!(cycled, explicit);
    // The projection term reaches the discriminator.
    let x = Tensor::<4>::ones([1, 1, 28, 28], &d).repeat_dim(0, 2);
    let labels = Tensor::from_data(TensorData::new(vec![0i64, 1], [2]), &d);
    let out = to_host(gan.discriminator.forward(x, Some(labels))).unwrap();
    assert_ne!(out[0], out[1]);
}

#[test]
fn a_conditional_dcgan_trains_through_the_shared_trainer() {
    let _rng = rng_lock();
    struct Labelled;
    impl ImageDataset for Labelled {
        fn len(&self) -> usize {
            12
        }
        fn image_shape(&self) -> ImageShape {
            ImageShape::new(1, 8, 8)
        }
        fn batch(
            &self,
            indices: &[usize],
            _: usize,
            device: &Device,
        ) -> genmodels_core::Result<ImageBatch> {
            let pixels = indices
                .iter()
                .flat_map(|&i| (0..64).map(move |p| ((i * 7 + p) % 11) as f32 / 10.0))
                .collect();
            let labels = indices.iter().map(|&i| (i % 3) as i64).collect();
            ImageBatch::from_host(pixels, self.image_shape(), Some(labels), device)
        }
    }
    let d = device();
    let config = GanConfig::cgan(ImageShape::new(1, 8, 8), 3)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .with_objective(GanObjective::Lsgan);
    let gan = init_seeded(&config, 0, &d).unwrap();
    let trainer = Trainer::new(TrainerConfig {
        epochs: 2,
        batch_size: 4,
        learning_rate: 2e-4,
        ..TrainerConfig::default()
    });
    let trained = trainer.fit(gan, &Labelled, Some(&Labelled), &d).unwrap();
    let report = trained.report;
    let names: Vec<&str> = report.epoch_components[0]
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    for name in [
        "discriminator_loss",
        "d_real",
        "d_fake",
        "generator_loss",
        "sample_diversity",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(report.likelihood_unavailable.is_some());
    assert!(report.test_loss.is_some());
}

// ---------------------------------------------------------------- monitoring

#[test]
fn warnings_flag_a_winning_discriminator_and_collapsed_samples() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 1, 2);
    let gan = GanConfig::mlp(shape).init(&device()).unwrap();
    let components = |real: f64, fake: f64, diversity: f64| {
        vec![
            ("discriminator_loss".to_string(), 0.01),
            ("d_real".to_string(), real),
            ("d_fake".to_string(), fake),
            ("generator_loss".to_string(), 5.0),
            ("sample_diversity".to_string(), diversity),
        ]
    };
    assert!(gan.training_warnings(&components(0.7, 0.3, 0.9)).is_empty());
    let wins = gan.training_warnings(&components(0.998, 0.002, 0.9));
    assert_eq!(wins.len(), 1);
    assert!(
        wins[0].contains("discriminator wins") && wins[0].contains("0.998"),
        "{wins:?}"
    );
    let collapsed = gan.training_warnings(&components(0.7, 0.3, 0.05));
    assert_eq!(collapsed.len(), 1);
    assert!(
        collapsed[0].contains("diversity") && collapsed[0].contains("0.05"),
        "{collapsed:?}"
    );
    assert_eq!(
        gan.training_warnings(&components(0.999, 0.001, 0.01)).len(),
        2
    );
    // Scores of a critic are not probabilities: no "wins" warning for Wasserstein.
    let wgan = GanConfig::mlp(shape)
        .with_objective(GanObjective::Wasserstein)
        .init(&device())
        .unwrap();
    assert!(
        wgan.training_warnings(&components(5.0, -5.0, 0.9))
            .is_empty()
    );
    // Missing components: nothing to say.
    assert!(gan.training_warnings(&[]).is_empty());
}

// ---------------------------------------------------------------- VAE-GAN

fn tiny_vae_gan(shape: ImageShape) -> VaeGanConfig {
    VaeGanConfig::new(shape)
        .with_latent_dim(4)
        .with_width(4)
        .with_encoder_channels([4, 8])
}

#[test]
fn each_vae_gan_step_changes_only_its_own_players_weights() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let ad = device().autodiff();
    ad.seed(5);
    let batch = random_batch(shape, 6, 2, &ad);
    let mut model = tiny_vae_gan(shape).init(&ad).unwrap().train();
    let players = model.players();
    let names: Vec<&str> = players.iter().map(|p| p.name).collect();
    assert_eq!(names, ["discriminator", "encoder", "decoder"]);
    for (player, own) in [
        (VAE_GAN_DISCRIMINATOR, "discriminator"),
        (VAE_GAN_ENCODER, "encoder"),
        (VAE_GAN_DECODER, "decoder"),
    ] {
        let before = weights(&model);
        let mut optimizer = AdamConfig::new().with_beta_1(0.5).init();
        let loss = model.loss(player, &batch).unwrap();
        assert!(value(loss.objective.clone()).is_finite());
        let grads = model.player_gradients(player, loss.objective.backward());
        model = optimizer.step(1e-2, model, grads);
        let after = weights(&model);
        let mut changed = 0;
        for ((name, b), (_, a)) in before.iter().zip(&after) {
            if name.starts_with(own) {
                changed += usize::from(b != a);
            } else {
                assert_eq!(b, a, "the {own} step changed {name}");
            }
        }
        assert!(changed > 0, "the {own} step changed none of its weights");
    }
}

#[test]
fn vae_gan_losses_samples_and_typed_errors() {
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(6);
    let model = tiny_vae_gan(shape).init(&d).unwrap();
    let batch = random_batch(shape, 4, 3, &d);
    // Each player's loss: finite objective and components, the KL and the feature
    // reconstruction (the encoder's parts) non-negative, the encoder's objective their sum.
    let mut names = Vec::new();
    for player in 0..3 {
        let loss = model.loss(player, &batch).unwrap();
        assert!(value(loss.objective.clone()).is_finite(), "player {player}");
        for (name, v) in &loss.components {
            let v = value(v.clone());
            assert!(v.is_finite(), "{name} = {v}");
            if *name == "kl" || *name == "feature_reconstruction" {
                assert!(v >= 0.0, "{name} = {v}");
            }
            names.push(*name);
        }
        if player == 1 {
            let total: f64 = loss.components.iter().map(|(_, v)| value(v.clone())).sum();
            let objective = value(loss.objective.clone());
            assert!((objective - total).abs() < 1e-3 * total.abs().max(1.0));
        }
    }
    for name in ["d_real", "d_fake", "kl", "feature_reconstruction"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }

    let samples = model.sample(5, 9).unwrap();
    assert_eq!(samples.dims(), [5, 1, 8, 8]);
    let pixels = to_host(samples.clone()).unwrap();
    assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(pixels, to_host(model.sample(5, 9).unwrap()).unwrap());
    assert_eq!(model.reconstruct(&batch).unwrap().dims(), [4, 1, 8, 8]);
    assert_eq!(
        model.interpolate(&batch, &batch, 3).unwrap().dims(),
        [12, 1, 8, 8]
    );

    assert!(matches!(
        model.log_likelihood(&batch, &LikelihoodOptions::default()),
        Err(GenError::LikelihoodNotAvailable { .. })
    ));
    assert!(matches!(
        model.decode(Tensor::zeros([2, 5], &d)),
        Err(GenError::ShapeMismatch { .. })
    ));
    let other = random_batch(ImageShape::new(1, 12, 12), 2, 4, &d);
    for player in 0..3 {
        assert!(matches!(
            model.loss(player, &other),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
    assert!(matches!(
        model.sample(0, 0),
        Err(GenError::InvalidConfig(_))
    ));
    for bad in [
        tiny_vae_gan(shape).with_latent_dim(0),
        tiny_vae_gan(ImageShape::new(1, 6, 6)),
        tiny_vae_gan(shape).with_feature_weight(-1.0),
    ] {
        assert!(matches!(bad.init(&d), Err(GenError::InvalidConfig(_))));
    }
}

// ---------------------------------------------------------------- anomaly scores

#[test]
fn gan_anomaly_scores_are_minus_d_which_discriminator_steps_lower_on_data() {
    use genmodels_core::AnomalyScore;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let ad = device().autodiff();
    ad.seed(7);
    let options = LikelihoodOptions::default();
    let batch = random_batch(shape, 6, 4, &ad);
    let mut gan = GanConfig::mlp(shape)
        .with_architecture(GanArchitecture::Mlp { hidden: vec![16] })
        .init(&ad)
        .unwrap()
        .train();
    let scores = gan.anomaly_scores(&batch, &options).unwrap();
    assert_eq!(scores.name, "neg_discriminator_output");
    let d = to_host(
        gan.discriminator
            .forward(batch.images().clone() * 2.0 - 1.0, None),
    )
    .unwrap();
    assert_eq!(scores.scores.len(), 6);
    for (score, d) in scores.scores.iter().zip(&d) {
        assert!((score + f64::from(*d)).abs() < 1e-6, "{score} vs −{d}");
    }
    // The discriminator learns to output more on data: its steps lower the data's scores.
    let mean = |gan: &Gan| {
        gan.anomaly_scores(&batch, &options)
            .unwrap()
            .scores
            .iter()
            .sum::<f64>()
            / 6.0
    };
    let before = mean(&gan);
    for _ in 0..5 {
        gan = step(gan, DISCRIMINATOR, &batch);
    }
    let after = mean(&gan);
    assert!(after < before, "{before} → {after}");
}

#[test]
fn a_conditional_gan_scores_each_image_given_its_label() {
    use genmodels_core::AnomalyScore;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(8);
    let options = LikelihoodOptions::default();
    let gan = GanConfig::cgan(shape, 3)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .init(&d)
        .unwrap();
    let batch = random_batch(shape, 4, 5, &d);
    let scores = gan.anomaly_scores(&batch, &options).unwrap();
    assert!(scores.description.contains("given its label"), "{scores:?}");
    let labels = batch.labels().unwrap().clone();
    let outputs = to_host(
        gan.discriminator
            .forward(batch.images().clone() * 2.0 - 1.0, Some(labels)),
    )
    .unwrap();
    for (score, d) in scores.scores.iter().zip(&outputs) {
        assert!((score + f64::from(*d)).abs() < 1e-6, "{score} vs −{d}");
    }
    let unlabelled =
        ImageBatch::from_host(to_host(batch.images().clone()).unwrap(), shape, None, &d).unwrap();
    assert!(matches!(
        gan.anomaly_scores(&unlabelled, &options),
        Err(GenError::InvalidLabels(_))
    ));
}

#[test]
fn vae_gan_anomaly_scores_are_its_deterministic_encoder_loss() {
    use genmodels_core::AnomalyScore;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(9);
    let options = LikelihoodOptions::default();
    let model = tiny_vae_gan(shape).init(&d).unwrap();
    let batch = random_batch(shape, 5, 6, &d);
    let scores = model.anomaly_scores(&batch, &options).unwrap();
    assert_eq!(scores.name, "vae_gan_kl_plus_feature_error");
    assert_eq!(scores.scores.len(), 5);
    // KL and a squared error: non-negative; no noise is drawn, so a second call agrees.
    assert!(scores.scores.iter().all(|&s| s >= 0.0 && s.is_finite()));
    assert_eq!(
        model
            .anomaly_scores(&batch, &options.with_seed(1))
            .unwrap()
            .scores,
        scores.scores
    );
    // The KL part alone, from the encoder, is a lower bound of each score.
    let (mean, log_var) = model.encode(batch.images().clone());
    let kl = to_host(
        genmodels_core::distributions::kl_diagonal_gaussian_to_standard_normal(mean, log_var),
    )
    .unwrap();
    for (score, kl) in scores.scores.iter().zip(&kl) {
        assert!(*score >= f64::from(*kl) - 1e-6, "{score} < KL {kl}");
    }
    let wrong = random_batch(ImageShape::new(1, 4, 4), 2, 0, &d);
    assert!(matches!(
        model.anomaly_scores(&wrong, &options),
        Err(GenError::ShapeMismatch { .. })
    ));
}

#[test]
fn the_representation_is_what_the_discriminator_head_reads() {
    use genmodels_core::capabilities::Represent;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(4);
    for (config, width) in [
        (
            GanConfig::mlp(shape).with_architecture(GanArchitecture::Mlp { hidden: vec![16] }),
            16,
        ),
        (
            GanConfig::dcgan(shape).with_architecture(GanArchitecture::Dcgan { width: 4 }),
            2 * 4 * 2 * 2,
        ),
    ] {
        let gan = config.init(&d).unwrap();
        let batch = random_batch(shape, 5, 6, &d);
        let r = gan.representation(&batch).unwrap();
        assert_eq!(r.dims(), [5, width]);
        let values = to_host(r.clone()).unwrap();
        assert!(values.iter().all(|v| v.is_finite()));
        assert_eq!(
            values,
            to_host(gan.representation(&batch).unwrap()).unwrap()
        );
        // D(x) = ψ(φ(x)): the head's readout of the representation is the output.
        let read_out = to_host(gan.discriminator.head.forward(r)).unwrap();
        let scaled = batch.images().clone() * 2.0 - 1.0;
        let output = to_host(gan.discriminator.forward(scaled, None)).unwrap();
        for (a, b) in read_out.iter().zip(&output) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // An image's row does not depend on the rest of the batch (batch norm in inference).
        let first = ImageBatch::from_host(
            to_host(batch.images().clone()).unwrap()[..shape.dims()].to_vec(),
            shape,
            None,
            &d,
        )
        .unwrap();
        let alone = to_host(gan.representation(&first).unwrap()).unwrap();
        for (a, b) in alone.iter().zip(&values[..width]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let wrong =
            ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &d).unwrap();
        assert!(matches!(
            gan.representation(&wrong),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
}

#[test]
fn the_vae_gan_representation_is_its_posterior_mean_and_reconstructs() {
    use genmodels_core::capabilities::Represent;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(10);
    let model = tiny_vae_gan(shape).init(&d).unwrap();
    let batch = random_batch(shape, 3, 7, &d);
    let r = model.representation(&batch).unwrap();
    assert_eq!(r.dims(), [3, 4]);
    let values = to_host(r.clone()).unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    assert_eq!(
        values,
        to_host(model.representation(&batch).unwrap()).unwrap()
    );
    assert_eq!(
        values,
        to_host(model.encode(batch.images().clone()).0).unwrap()
    );
    // The reconstruction decodes the representation.
    assert_eq!(
        to_host(model.reconstruct(&batch).unwrap()).unwrap(),
        to_host(model.decode(r).unwrap()).unwrap()
    );
    let wrong = ImageBatch::from_host(vec![0.0; 9], ImageShape::new(1, 3, 3), None, &d).unwrap();
    assert!(matches!(
        model.representation(&wrong),
        Err(GenError::ShapeMismatch { .. })
    ));
}

#[test]
fn the_latent_code_decodes_like_the_sampler_and_cannot_be_encoded() {
    use genmodels_core::capabilities::LatentCode;
    let _rng = rng_lock();
    let shape = ImageShape::new(1, 8, 8);
    let d = device();
    d.seed(5);
    let gan = GanConfig::dcgan(shape)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .with_latent_dim(6)
        .init(&d)
        .unwrap();
    assert_eq!(gan.latent_size(), 6);
    assert!(!gan.can_encode());
    let codes = gan.prior_codes(4, 9).unwrap();
    assert_eq!(codes.dims(), [4, 6]);
    // G(z) of the prior codes is what `sample` draws for the same seed.
    assert_eq!(
        to_host(gan.decode_codes(codes).unwrap()).unwrap(),
        to_host(gan.sample(4, 9).unwrap()).unwrap()
    );
    let batch = random_batch(shape, 2, 0, &d);
    assert!(matches!(
        gan.encode_codes(&batch),
        Err(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        gan.decode_codes(Tensor::<2>::zeros([2, 5], &d)),
        Err(GenError::ShapeMismatch { .. })
    ));
    // A conditional GAN decodes a code only with a label.
    let cgan = GanConfig::cgan(shape, 3)
        .with_architecture(GanArchitecture::Dcgan { width: 4 })
        .init(&d)
        .unwrap();
    let z = cgan.prior_codes(2, 1).unwrap();
    assert!(matches!(
        cgan.decode_codes(z),
        Err(GenError::InvalidLabels(_))
    ));
}

//! Checkpoints: round trips, mismatches, corruption and resuming.

mod common;

use genmodels::burn::tensor::Device;
use genmodels::checkpoint::{self, CONFIG_FILE, load_model, read_manifest};
use genmodels::evaluation::evaluate_log_likelihood;
use genmodels::prelude::*;
use genmodels::vae::VaeConfig;
use genmodels::{ImageDataset, InMemoryDataset, TrainingObserver};

use common::{mnist_test, mnist_train, small_vae, weight_values};

fn trainer(epochs: usize, dir: &std::path::Path) -> Trainer {
    Trainer::new(TrainerConfig {
        epochs,
        batch_size: 50,
        seed: 5,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..TrainerConfig::default()
    })
}

fn trained_checkpoint(dir: &std::path::Path, epochs: usize) -> genmodels::vae::Vae {
    let device = Device::flex();
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    trainer(epochs, dir)
        .fit(model, &mnist_train(300), None, &device)
        .unwrap()
        .model
}

#[test]
fn save_then_load_gives_identical_likelihoods() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let model = trained_checkpoint(dir.path(), 1);
    let (loaded, manifest) = load_model::<VaeConfig>(dir.path(), &device).unwrap();
    assert_eq!(manifest.epoch, 1);
    let test = mnist_test(50);
    let options = LikelihoodOptions::iwae(3).with_seed(9);
    let before = evaluate_log_likelihood(&model, &test, &options, 25, &device).unwrap();
    let after = evaluate_log_likelihood(&loaded, &test, &options, 25, &device).unwrap();
    assert_eq!(before, after);
}

#[test]
fn a_config_that_does_not_match_the_weights_is_an_error() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    trained_checkpoint(dir.path(), 1);
    let path = dir.path().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    saved["config"]["latent_dim"] = serde_json::json!(4);
    std::fs::write(&path, saved.to_string()).unwrap();
    let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(err, GenError::CheckpointMismatch { .. }), "{err}");

    // A checkpoint of one model loaded as another.
    saved["model"] = serde_json::json!("ae");
    std::fs::write(&path, saved.to_string()).unwrap();
    let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(err, GenError::CheckpointMismatch { .. }), "{err}");
}

#[test]
fn a_truncated_or_missing_checkpoint_is_an_error() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    trained_checkpoint(dir.path(), 1);
    let manifest = read_manifest(dir.path()).unwrap();
    let weights = dir.path().join(&manifest.weights);
    let bytes = std::fs::read(&weights).unwrap();
    for cut in [bytes.len() / 2, 10, 0] {
        std::fs::write(&weights, &bytes[..cut]).unwrap();
        let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
        assert!(
            matches!(err, GenError::CorruptCheckpoint { .. }),
            "cut {cut}: {err}"
        );
    }
    std::fs::remove_file(&weights).unwrap();
    let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(err, GenError::CorruptCheckpoint { .. }), "{err}");
    std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
    let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
    assert!(matches!(err, GenError::CorruptCheckpoint { .. }), "{err}");
}

#[test]
fn resuming_continues_training_exactly_where_it_stopped() {
    let _serial = common::serial();
    let straight = tempfile::tempdir().unwrap();
    let two_epochs = trained_checkpoint(straight.path(), 2);

    let resumed_dir = tempfile::tempdir().unwrap();
    trained_checkpoint(resumed_dir.path(), 1);
    let device = Device::flex();
    let resumed = trainer(2, resumed_dir.path())
        .resume::<VaeConfig>(resumed_dir.path(), &mnist_train(300), None, &device)
        .unwrap();
    assert_eq!(resumed.report.epochs, 2);
    assert_eq!(resumed.report.epoch_losses.len(), 1, "only epoch 2 ran");
    assert_eq!(read_manifest(resumed_dir.path()).unwrap().step, 12);
    assert_eq!(
        weight_values(&resumed.model),
        weight_values(&two_epochs),
        "1 epoch + resume must equal 2 epochs straight"
    );
}

#[test]
fn saving_a_new_checkpoint_removes_only_superseded_files() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    trained_checkpoint(dir.path(), 2);
    let manifest = read_manifest(dir.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        CONFIG_FILE.to_string(),
        checkpoint::MANIFEST_FILE.to_string(),
        manifest.weights.clone(),
    ];
    assert_eq!(
        manifest.optimizers.len(),
        1,
        "one player, one optimiser file"
    );
    expected.extend(manifest.optimizers.iter().cloned());
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn a_manifest_written_before_players_existed_still_reads() {
    // Manifests before multi-player training named one `optimizer` file (or null).
    let legacy = r#"{"model":"vae","weights":"weights-00000080.bpk",
        "optimizer":"optimizer-00000080.bpk","epoch":1,"step":80,"seed":0,
        "genmodels_version":"0.1.0"}"#;
    let manifest: checkpoint::CheckpointManifest = serde_json::from_str(legacy).unwrap();
    assert_eq!(
        manifest.optimizers,
        vec!["optimizer-00000080.bpk".to_string()]
    );
    let without = legacy.replace(r#""optimizer-00000080.bpk""#, "null");
    let manifest: checkpoint::CheckpointManifest = serde_json::from_str(&without).unwrap();
    assert!(manifest.optimizers.is_empty());
}

#[test]
fn weights_holding_nan_are_refused_on_load() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let model = trained_checkpoint(dir.path(), 1);
    let manifest = read_manifest(dir.path()).unwrap();
    let weights = dir.path().join(&manifest.weights);
    let mut bytes = std::fs::read(&weights).unwrap();
    // The first weight's four bytes, found in the file and replaced by a NaN.
    let (name, values) = &weight_values(&model)[0];
    let first = &values[..4];
    let at = bytes
        .windows(4)
        .position(|w| w == first)
        .unwrap_or_else(|| panic!("{name}'s first value is not in the file"));
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&weights, &bytes).unwrap();
    let err = load_model::<VaeConfig>(dir.path(), &Device::flex()).unwrap_err();
    match err {
        GenError::CorruptCheckpoint { reason, .. } => assert!(reason.contains("NaN"), "{reason}"),
        other => panic!("expected a corrupt checkpoint, got {other}"),
    }
}

#[test]
fn a_save_removes_superseded_checkpoint_files_but_nothing_else() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    // What a save killed before its manifest leaves, and files that are the user's.
    let leftovers = ["weights-00000001.bpk", "optimizer-d-00000001.bpk"];
    let users = ["pretrained.bpk", "weights-final.bpk", "notes.txt"];
    for name in leftovers.iter().chain(&users) {
        std::fs::write(dir.path().join(name), b"bytes").unwrap();
    }
    trained_checkpoint(dir.path(), 1);
    for name in leftovers {
        assert!(!dir.path().join(name).exists(), "{name} was left behind");
    }
    for name in users {
        assert_eq!(
            std::fs::read(dir.path().join(name)).unwrap(),
            b"bytes",
            "{name}"
        );
    }
}

#[test]
fn a_test_split_that_cannot_be_scored_is_refused_before_the_first_step() {
    let _serial = common::serial();
    let device = Device::flex();
    let empty = mnist_test(0);
    let small =
        InMemoryDataset::new(vec![0.0; 2 * 14 * 14], ImageShape::new(1, 14, 14), None).unwrap();
    let refusals: [(&dyn ImageDataset, &str); 2] = [(&empty, "test set"), (&small, "test images")];
    for (test, context) in refusals {
        let dir = tempfile::tempdir().unwrap();
        let model = init_seeded(&small_vae(), 5, &device).unwrap();
        let err = trainer(1, dir.path())
            .fit(model, &mnist_train(100), Some(test), &device)
            .unwrap_err();
        assert!(
            matches!(
                err,
                GenError::EmptyData { .. } | GenError::ShapeMismatch { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(context), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}

/// SplitMix64, so a failing mutation can be replayed from its number.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `bytes` with a few bits flipped or bytes overwritten (half the time near the start, where
/// the headers are), cut short, or grown.
fn mutated(bytes: &[u8], state: &mut u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let below = |n: usize, state: &mut u64| (next_random(state) % n.max(1) as u64) as usize;
    for _ in 0..1 + below(3, state) {
        match below(4, state) {
            0 if !out.is_empty() => {
                let at = below(out.len(), state);
                out[at] ^= 1 << below(8, state);
            }
            1 if !out.is_empty() => {
                let span = if below(2, state) == 0 {
                    out.len().min(256)
                } else {
                    out.len()
                };
                let at = below(span, state);
                out[at] = next_random(state) as u8;
            }
            2 => out.truncate(below(out.len() + 1, state)),
            _ => out.extend((0..below(32, state)).map(|_| next_random(state) as u8)),
        }
    }
    out
}

/// Loads the checkpoint as `eval` and `train --resume` do: the model, then the optimiser.
fn load_everything(dir: &std::path::Path) -> genmodels::Result<()> {
    let device = Device::flex();
    let (_, manifest) = load_model::<VaeConfig>(dir, &device)?;
    let optimizers = vec![genmodels::burn::optim::AdamConfig::new().init()];
    checkpoint::load_optimizers(dir, &manifest, optimizers)?;
    Ok(())
}

#[test]
fn mutated_checkpoints_load_or_are_refused_with_a_typed_error_never_a_panic() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    trained_checkpoint(dir.path(), 1);
    load_everything(dir.path()).unwrap();
    let manifest = read_manifest(dir.path()).unwrap();
    let files = [
        manifest.weights.clone(),
        manifest.optimizers[0].clone(),
        checkpoint::MANIFEST_FILE.to_string(),
        CONFIG_FILE.to_string(),
    ];
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    let iterations = std::env::var("GENMODELS_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let mut state = 21;
    let mut refused = 0;
    for i in 0..iterations {
        let which = (next_random(&mut state) % files.len() as u64) as usize;
        let path = dir.path().join(&files[which]);
        std::fs::write(&path, mutated(&originals[which], &mut state)).unwrap();
        let outcome = std::panic::catch_unwind(|| load_everything(dir.path()));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(
                GenError::CorruptCheckpoint { .. }
                | GenError::CheckpointMismatch { .. }
                | GenError::InvalidConfig(_),
            )) => refused += 1,
            Ok(Err(other)) => panic!("mutation {i} of {}: untyped refusal {other}", files[which]),
            Err(_) => panic!("mutation {i} of {} panicked", files[which]),
        }
        std::fs::write(&path, &originals[which]).unwrap();
    }
    assert!(refused > 0, "no mutation was refused");
}

/// The inode of `dir/name` when training's last step is done, before the post-training fit:
/// a file rewritten afterwards (atomically, by rename) gets a new one.
#[cfg(unix)]
struct InodeAtFinish {
    file: std::path::PathBuf,
    inode: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
}

#[cfg(unix)]
impl TrainingObserver for InodeAtFinish {
    fn finished(&mut self, _failed: bool) {
        use std::os::unix::fs::MetadataExt;
        *self.inode.lock().unwrap() = std::fs::metadata(&self.file).ok().map(|m| m.ino());
    }
}

#[cfg(unix)]
#[test]
fn the_last_checkpoint_is_written_once_when_the_fit_changes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join(checkpoint::MANIFEST_FILE);
    let inode = std::sync::Arc::new(std::sync::Mutex::new(None));
    let observer = InodeAtFinish {
        file: manifest.clone(),
        inode: inode.clone(),
    };
    let device = Device::flex();
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    trainer(1, dir.path())
        .with_observer(observer)
        .fit(model, &mnist_train(100), None, &device)
        .unwrap();
    let at_finish = inode.lock().unwrap().expect("a checkpoint after the epoch");
    assert_eq!(std::fs::metadata(&manifest).unwrap().ino(), at_finish);
}

/// Scores read off a script, one per epoch from `first_epoch` on (counted from 1): early
/// stopping and the best checkpoint are then known in advance.
struct ScriptedScores {
    scores: Vec<f64>,
    next: usize,
}

impl ScriptedScores {
    fn from_epoch(scores: &[f64], first_epoch: usize) -> Self {
        Self {
            scores: scores.to_vec(),
            next: first_epoch - 1,
        }
    }
}

impl genmodels::trainer::Validation<genmodels::vae::Vae> for ScriptedScores {
    fn metric(&self) -> String {
        "scripted score".into()
    }

    fn score(&mut self, _: &genmodels::vae::Vae, _: &Device) -> genmodels::Result<f64> {
        self.next += 1;
        Ok(self.scores[self.next - 1])
    }
}

/// What a validation record says of a run, its timings aside: per epoch, the steps, the score,
/// the learning rate and the mean training loss (to 1e-9, a JSON round trip may round the
/// last bit).
fn course(record: &genmodels::trainer::ValidationRecord) -> Vec<(usize, usize, f64, f64, i64)> {
    record
        .points
        .iter()
        .map(|p| {
            let loss = p
                .training
                .iter()
                .find(|(name, _)| name == "loss")
                .unwrap()
                .1;
            (
                p.epoch,
                p.steps,
                p.score,
                p.learning_rate,
                (loss * 1e9).round() as i64,
            )
        })
        .collect()
}

/// Best at epoch 2; with a patience of 2, epoch 4 is the last.
const SCRIPT: [f64; 8] = [5.0, 4.0, 4.5, 4.2, 3.0, 2.0, 1.0, 0.5];

fn validated_trainer(max_epochs: usize, dir: &std::path::Path) -> Trainer {
    Trainer::new(TrainerConfig {
        early_stopping: Some(genmodels::trainer::EarlyStopping {
            patience: 2,
            min_improvement: 0.0,
        }),
        ..trainer(max_epochs, dir).config().clone()
    })
}

#[test]
fn a_validated_run_stops_after_its_patience_and_hands_back_its_best_epoch() {
    let _serial = common::serial();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    let mut scores = ScriptedScores::from_epoch(&SCRIPT, 1);
    let trained = validated_trainer(8, dir.path())
        .fit_validated(model, &mnist_train(300), &mut scores, None, &device)
        .unwrap();
    let report = &trained.report;
    assert_eq!(
        report.epochs, 4,
        "two epochs without a better score after epoch 2"
    );
    assert!(report.stopped_early);
    assert_eq!(report.best_epoch, Some(2));
    let record = report.validation.as_ref().unwrap();
    assert_eq!(
        record.points.iter().map(|p| p.score).collect::<Vec<_>>(),
        SCRIPT[..4].to_vec()
    );

    let best_dir = dir.path().join(genmodels::trainer::BEST_DIR);
    let (best, best_manifest) = load_model::<VaeConfig>(&best_dir, &device).unwrap();
    let (last, last_manifest) = load_model::<VaeConfig>(dir.path(), &device).unwrap();
    assert_eq!((best_manifest.epoch, last_manifest.epoch), (2, 4));
    assert!(best_manifest.optimizers.is_empty());
    assert_eq!(weight_values(&trained.model), weight_values(&best));
    assert_ne!(weight_values(&best), weight_values(&last));
    // The best epoch's weights are those a plain two-epoch run ends with.
    let two_epochs = tempfile::tempdir().unwrap();
    assert_eq!(
        weight_values(&trained_checkpoint(two_epochs.path(), 2)),
        weight_values(&best)
    );
    let saved = genmodels::trainer::ValidationRecord::read(dir.path(), 4).unwrap();
    assert_eq!(course(&saved), course(record));
    let seconds: Vec<f64> = record.points.iter().map(|p| p.train_seconds).collect();
    assert!(
        seconds[0] > 0.0 && seconds.windows(2).all(|w| w[1] > w[0]),
        "{seconds:?}"
    );
}

#[test]
fn a_validated_run_resumed_ends_where_an_unbroken_one_does() {
    let _serial = common::serial();
    let device = Device::flex();
    let unbroken_dir = tempfile::tempdir().unwrap();
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    let unbroken = validated_trainer(8, unbroken_dir.path())
        .fit_validated(
            model,
            &mnist_train(300),
            &mut ScriptedScores::from_epoch(&SCRIPT, 1),
            None,
            &device,
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    let first = validated_trainer(3, dir.path())
        .fit_validated(
            model,
            &mnist_train(300),
            &mut ScriptedScores::from_epoch(&SCRIPT, 1),
            None,
            &device,
        )
        .unwrap();
    assert!(!first.report.stopped_early);
    assert_eq!(first.report.best_epoch, Some(2));
    let resumed = validated_trainer(8, dir.path())
        .resume_validated::<VaeConfig>(
            dir.path(),
            &mnist_train(300),
            &mut ScriptedScores::from_epoch(&SCRIPT, 4),
            None,
            &device,
        )
        .unwrap();
    assert_eq!(resumed.report.epochs, 4);
    assert!(resumed.report.stopped_early);
    assert_eq!(resumed.report.best_epoch, Some(2));
    let record = resumed.report.validation.as_ref().unwrap();
    assert_eq!(
        course(record),
        course(unbroken.report.validation.as_ref().unwrap())
    );
    // The training time counts both sittings.
    assert!(record.points[3].train_seconds > record.points[2].train_seconds);
    assert_eq!(
        weight_values(&resumed.model),
        weight_values(&unbroken.model)
    );

    // Early stopping ended it: resuming again trains nothing more.
    let again = validated_trainer(8, dir.path())
        .resume_validated::<VaeConfig>(
            dir.path(),
            &mnist_train(300),
            &mut ScriptedScores::from_epoch(&SCRIPT, 5),
            None,
            &device,
        )
        .unwrap();
    assert_eq!(again.report.epochs, 4);
    assert!(again.report.epoch_losses.is_empty());
    assert_eq!(weight_values(&again.model), weight_values(&unbroken.model));
}

#[test]
fn the_validation_likelihood_of_the_best_model_is_its_recorded_score() {
    let _serial = common::serial();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let validation = mnist_test(100);
    let options = LikelihoodOptions::default().with_seed(3);
    let mut score = genmodels::trainer::LikelihoodValidation::new(&validation, options, 50);
    let model = init_seeded(&small_vae(), 5, &device).unwrap();
    let trained = validated_trainer(3, dir.path())
        .fit_validated(model, &mnist_train(300), &mut score, None, &device)
        .unwrap();
    let record = trained.report.validation.clone().unwrap();
    assert_eq!(record.metric, "validation NLL (ELBO), nats per image");
    let best = record.best(None).unwrap();
    assert_eq!(trained.report.best_epoch, Some(best.epoch));
    let nll = evaluate_log_likelihood(&trained.model, &validation, &options, 50, &device)
        .unwrap()
        .mean_nll_nats();
    assert_eq!(nll, best.score);
}

#[test]
fn the_learning_rate_follows_its_schedule() {
    let _serial = common::serial();
    let device = Device::flex();
    let run = |schedule, epochs| {
        let dir = tempfile::tempdir().unwrap();
        let trainer = Trainer::new(TrainerConfig {
            schedule,
            ..validated_trainer(epochs, dir.path()).config().clone()
        });
        let model = init_seeded(&small_vae(), 5, &device).unwrap();
        trainer
            .fit_validated(
                model,
                &mnist_train(300),
                &mut ScriptedScores::from_epoch(&[3.0, 2.0, 1.0], 1),
                None,
                &device,
            )
            .unwrap()
    };
    use genmodels::trainer::LearningRateSchedule::{Constant, Exponential};
    let halving = Exponential {
        decay_per_epoch: 0.5,
    };
    let decayed = run(halving, 3);
    let rates: Vec<f64> = decayed
        .report
        .validation
        .as_ref()
        .unwrap()
        .points
        .iter()
        .map(|p| p.learning_rate)
        .collect();
    assert_eq!(rates, vec![1e-3, 5e-4, 2.5e-4]);
    // The first epoch trains at the base rate either way; the second no longer does.
    assert_eq!(
        weight_values(&run(halving, 1).model),
        weight_values(&run(Constant, 1).model)
    );
    assert_ne!(
        weight_values(&run(halving, 2).model),
        weight_values(&run(Constant, 2).model)
    );
}

//! Checkpoints: round trips, mismatches, corruption and resuming.

mod common;

use genmodels::burn::tensor::Device;
use genmodels::checkpoint::{self, CONFIG_FILE, load_model, read_manifest};
use genmodels::evaluation::evaluate_log_likelihood;
use genmodels::prelude::*;
use genmodels::vae::VaeConfig;

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

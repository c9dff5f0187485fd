//! What a command may do to the files the user saved: a refused command touches nothing in the
//! run folder, nothing outside it is ever deleted, one run at a time writes into a folder, and
//! every input is checked before the first write.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_fails_with, assert_ok, genmodels};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Trains a small VAE for one epoch into `out`.
fn small_vae_run(out: &Path) {
    let out = out.to_str().unwrap();
    let args = [
        "train",
        "vae",
        "--epochs",
        "1",
        "--train-images",
        "200",
        "--batch-size",
        "50",
        "--iwae-k",
        "2",
        "--out",
        out,
    ];
    assert_ok(&genmodels(&args));
}

#[test]
fn a_refused_resume_leaves_every_file_of_the_run_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    small_vae_run(&out);
    let before = snapshot(&out);
    let ck = out.to_str().unwrap();
    let other_config = tmp.path().join("other.json");
    std::fs::write(&other_config, r#"{"latent_dim": 3}"#).unwrap();
    let other_config = other_config.to_str().unwrap();
    let refusals: [(&[&str], &str); 5] = [
        (
            &[
                "train",
                "ae",
                "--resume",
                "--binarize",
                "none",
                "--epochs",
                "2",
            ],
            "cannot continue as `ae`",
        ),
        (
            &["train", "vae", "--resume", "--seed", "3", "--epochs", "2"],
            "--seed 0",
        ),
        (
            &[
                "train",
                "vae",
                "--resume",
                "--binarize",
                "none",
                "--epochs",
                "2",
            ],
            "binarised `dynamic`",
        ),
        (
            &[
                "train",
                "vae",
                "--resume",
                "--config",
                other_config,
                "--epochs",
                "2",
            ],
            "`latent_dim`",
        ),
        (
            &["train", "vae", "--epochs", "2"],
            "already holds a checkpoint",
        ),
    ];
    for (args, message) in refusals {
        let mut args = args.to_vec();
        args.extend(["--out", ck]);
        assert_fails_with(&genmodels(&args), message);
        assert!(snapshot(&out) == before, "{args:?} changed the run folder");
    }
    // The run still evaluates as it was trained (its run.json is intact).
    assert_ok(&genmodels(&["eval", "--checkpoint", ck, "--iwae-k", "2"]));
}

#[test]
fn a_manifest_naming_a_file_outside_its_folder_is_refused_and_the_file_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    small_vae_run(&out);
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let precious = shared.join("pretrained.bpk");
    std::fs::write(&precious, b"the user's weights").unwrap();
    let manifest_path = out.join("checkpoint.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    for outside in ["../shared/pretrained.bpk", precious.to_str().unwrap()] {
        manifest["weights"] = serde_json::json!(outside);
        std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        let before = snapshot(tmp.path());
        let args = [
            "train",
            "vae",
            "--resume",
            "--epochs",
            "2",
            "--train-images",
            "200",
            "--out",
            out.to_str().unwrap(),
        ];
        assert_fails_with(&genmodels(&args), "not a file in the checkpoint's folder");
        assert!(snapshot(tmp.path()) == before, "{outside}: files changed");
        assert_eq!(std::fs::read(&precious).unwrap(), b"the user's weights");
    }
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("busy");
    let out_s = out.to_str().unwrap();
    // A run long enough to be caught in the middle: it is killed once checked.
    let mut first = Command::new(env!("CARGO_BIN_EXE_genmodels"))
        .args([
            "train",
            "pixelcnn",
            "--epochs",
            "50",
            "--train-images",
            "2000",
            "--out",
            out_s,
        ])
        .env("GENMODELS_NO_PROGRESS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".genmodels.lock");
    let started = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("process")) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = genmodels(&["train", "vae", "--epochs", "1", "--out", out_s]);
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(still_running, "the first run ended before the check");
    assert_fails_with(&second, "in use by another genmodels process");
    assert_fails_with(&second, &format!("process {}", first.id()));
    // A killed holder leaves no stale lock: the folder can be used again.
    small_vae_run(&tmp.path().join("busy"));
}

#[test]
fn eval_with_a_seed_gives_the_same_figures_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    small_vae_run(&out);
    let ck = out.to_str().unwrap();
    let eval = || {
        let run = genmodels(&["eval", "--checkpoint", ck, "--iwae-k", "2", "--seed", "4"]);
        assert_ok(&run);
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let first = eval();
    assert!(first.contains("test loss"), "{first}");
    assert_eq!(first, eval());
}

#[test]
fn eval_leaves_the_metrics_of_a_folder_in_use_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    small_vae_run(&out);
    let metrics = out.join("metrics.json");
    let before = std::fs::read(&metrics).unwrap();
    let eval = || {
        let args = [
            "eval",
            "--checkpoint",
            out.to_str().unwrap(),
            "--iwae-k",
            "2",
        ];
        genmodels(&[&args[..], &["--quality-samples", "100"]].concat())
    };
    {
        // As a training run into the folder would hold it.
        let _lock = genmodels_core::fs::FolderLock::acquire(&out, "a training run").unwrap();
        let run = eval();
        assert_ok(&run);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("not updated") && stderr.contains("a training run"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(&metrics).unwrap(), before);
    }
    assert_ok(&eval());
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).unwrap()).unwrap();
    assert!(after["sample_quality"].is_object(), "{after}");
}

/// Writes an IDX image file of `count` images of `side`×`side` mid-grey pixels.
fn write_idx_images(path: &Path, count: u32, side: u32) {
    let mut bytes = vec![0, 0, 8, 3];
    for dim in [count, side, side] {
        bytes.extend(dim.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(128u8, (count * side * side) as usize));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn test_data_that_cannot_be_scored_is_refused_before_anything_is_written() {
    for (count, side, message) in [(0, 28, "test set"), (20, 14, "test images")] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        write_idx_images(&data.join("train-images-idx3-ubyte"), 60, 28);
        write_idx_images(&data.join("test-images-idx3-ubyte"), count, side);
        let out = tmp.path().join("run");
        let args = [
            "train",
            "vae",
            "--epochs",
            "1",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        assert_fails_with(&genmodels(&args), message);
        assert!(!out.exists(), "a refused run created {}", out.display());
    }
}

#[test]
fn small_refusals_say_what_is_wrong_and_say_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ck");
    small_vae_run(&out);
    let ck = out.to_str().unwrap();

    // PNG bytes are never written under another format's name.
    let jpg = tmp.path().join("x.jpg");
    let sample = genmodels(&["sample", "--checkpoint", ck, "--out", jpg.to_str().unwrap()]);
    assert_fails_with(&sample, ".png");
    assert!(!jpg.exists());

    // A negative learning rate reaches the learning-rate check.
    let fresh = tmp.path().join("fresh");
    let lr = genmodels(&[
        "train",
        "vae",
        "--lr",
        "-1",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_fails_with(&lr, "learning rate must be positive");

    // A misspelt field is named as such.
    let config = tmp.path().join("typo.json");
    std::fs::write(&config, r#"{"latnet_dim": 3}"#).unwrap();
    let typo = genmodels(&[
        "train",
        "vae",
        "--config",
        config.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_fails_with(&typo, "unknown vae config fields [\"latnet_dim\"]");

    // An I/O error's cause is printed once, not again as its source.
    let missing = tmp.path().join("nowhere.json");
    let args = [
        "train",
        "vae",
        "--config",
        missing.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
    ];
    let refused = genmodels(&args);
    assert!(!refused.status.success());
    assert!(!fresh.exists(), "refused runs create no folder");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let cause = "No such file or directory";
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
}

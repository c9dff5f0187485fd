//! What the CLI tests share: running the binary and checking how it ended.

use std::process::{Command, Output};

/// Runs `genmodels` with `args`, without progress bars.
pub fn genmodels(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genmodels"))
        .args(args)
        .env("GENMODELS_NO_PROGRESS", "1")
        .output()
        .expect("the binary runs")
}

/// Runs `genmodels` with `args` and the zoo at `zoo` ($GENMODELS_ZOO).
#[allow(dead_code)] // not every test file asks for a zoo
pub fn genmodels_with_zoo(args: &[&str], zoo: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genmodels"))
        .args(args)
        .env("GENMODELS_NO_PROGRESS", "1")
        .env("GENMODELS_ZOO", zoo)
        .output()
        .expect("the binary runs")
}

/// Asserts the command succeeded, showing its stderr if not.
pub fn assert_ok(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

/// Asserts the command failed with `message` in its stderr.
pub fn assert_fails_with(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure ({message}): {stderr}"
    );
    assert!(
        stderr.contains(message),
        "stderr lacks {message:?}: {stderr}"
    );
}

/// Trains the tiny VAE the capability tests share (one epoch on 64 digits, IWAE with
/// `iwae_k` samples for its test likelihood) into `dir`.
#[allow(dead_code)] // not every test file trains one
pub fn train_tiny_vae(dir: &std::path::Path, iwae_k: &str) {
    assert_ok(&genmodels(&[
        "train",
        "vae",
        "--epochs",
        "1",
        "--train-images",
        "64",
        "--iwae-k",
        iwae_k,
        "--out",
        dir.to_str().unwrap(),
    ]));
}

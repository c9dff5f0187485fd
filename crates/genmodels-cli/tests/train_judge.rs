//! `genmodels train-judge`: it refuses to write weights below 97% test accuracy unless forced,
//! and what it writes loads as a judge.

use std::process::Command;

use genmodels::burn::tensor::Device;
use genmodels::eval::quality::Judge;

fn train_judge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_genmodels"))
        .arg("train-judge")
        .args(args)
        .env("GENMODELS_NO_PROGRESS", "1")
        .output()
        .expect("the binary runs")
}

#[test]
fn one_epoch_is_not_good_enough_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("judge.safetensors");
    let out_s = out.to_str().unwrap();

    // One epoch gets about 90% of the test digits: not written.
    let refused = train_judge(&["--epochs", "1", "--out", out_s]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("was not written"), "{stderr}");
    assert!(!out.exists());

    let forced = train_judge(&["--epochs", "1", "--out", out_s, "--force"]);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(
        stdout.contains("test accuracy on 2000 digits: grey"),
        "{stdout}"
    );
    let judge = Judge::load(&out, &Device::flex()).unwrap();
    assert_eq!(judge.classifier().feature_dim(), 128);
}

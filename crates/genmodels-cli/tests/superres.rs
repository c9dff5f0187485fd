//! `genmodels superres` end to end: a tiny trained DDPM and a tiny super-resolution Gated
//! PixelCNN against the baselines, and the errors.

mod common;

use std::path::Path;

use common::{assert_fails_with, assert_ok, genmodels};

/// Trains a tiny DDPM (T = 5, a U-Net of 4 base channels) for one epoch on 64 digits.
fn tiny_ddpm(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("ddpm.json");
    std::fs::write(
        &config,
        r#"{"timesteps": 5,
            "unet": {"base_channels": 4, "channel_multipliers": [1, 2], "groups": 2}}"#,
    )
    .unwrap();
    let run = dir.join("ddpm");
    assert_ok(&genmodels(&[
        "train",
        "ddpm",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "64",
        "--out",
        run.to_str().unwrap(),
    ]));
    run
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("superres.json")).unwrap()).unwrap()
}

fn number(row: &serde_json::Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not finite: {row}"))
}

#[test]
fn a_tiny_ddpm_super_resolves_beside_the_baselines_and_keeps_the_low_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_ddpm(tmp.path());
    let out = tmp.path().join("superres");
    let (run_s, out_s) = (run.to_str().unwrap(), out.to_str().unwrap());
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["superres", "--checkpoint", run_s, "--out", out_s];
        args.extend_from_slice(extra);
        args
    };
    let ddim = [
        "--factor",
        "4",
        "-n",
        "6",
        "--samples",
        "2",
        "--method",
        "ddim",
        "--steps",
        "3",
    ];
    let output = genmodels(&args(&ddim));
    assert_ok(&output);
    for file in ["superres.md", "superres.json", "superres.png"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("| method | PSNR (dB) | SSIM |"), "{stdout}");
    let json = report(&out);
    assert_eq!(json["model"], "ddpm");
    assert_eq!(json["factor"], 4);
    assert_eq!(json["low_resolution"], "7×7");
    assert_eq!(json["digits"], 6);
    let truth = number(&json, "truth_judge_accuracy");
    assert!((0.0..=1.0).contains(&truth));
    let rows = json["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        ["nearest", "bicubic", "DDPM (DDIM, 3 steps, η = 0)"]
    );
    for row in rows {
        assert!(number(row, "psnr_db") > 0.0, "{row}");
        assert!(number(row, "psnr_stderr_db") >= 0.0, "{row}");
        let ssim = number(row, "ssim");
        assert!((-1.0..=1.0).contains(&ssim), "{row}");
        let accuracy = number(row, "judge_accuracy");
        assert!((0.0..=1.0).contains(&accuracy), "{row}");
        assert!(number(row, "low_pass_rms") <= number(row, "low_pass_max") + 1e-12);
        assert!(row["conditional_nll_nats"].is_null());
    }
    // Nearest upsampling keeps the block means exactly; bicubic does not.
    assert_eq!(number(&rows[0], "low_pass_max"), 0.0);
    assert!(number(&rows[1], "low_pass_max") > 0.0);
    // The DDPM: two results per digit, its continuous result's block means are the input's,
    // and binarising them moves them.
    let ddpm = &rows[2];
    assert_eq!(ddpm["results"], 12);
    assert!(number(ddpm, "continuous_low_pass_max") < 1e-4, "{ddpm}");
    assert!(number(ddpm, "low_pass_max") > 1e-3, "{ddpm}");
    assert!(number(ddpm, "seconds_per_image") > 0.0);
    assert!(rows[0]["continuous_low_pass_max"].is_null());
    // The same seed gives the same pictures.
    let sheet = std::fs::read(out.join("superres.png")).unwrap();
    assert_ok(&genmodels(&args(&ddim)));
    assert_eq!(sheet, std::fs::read(out.join("superres.png")).unwrap());

    // Factor 2 with the ancestral sampler: 14×14 inputs.
    assert_ok(&genmodels(&args(&[
        "--factor",
        "2",
        "-n",
        "3",
        "--method",
        "ancestral",
    ])));
    let json = report(&out);
    assert_eq!(json["low_resolution"], "14×14");
    assert_eq!(json["rows"][2]["method"], "DDPM (ancestral)");
    assert!(number(&json["rows"][2], "continuous_low_pass_max") < 1e-4);

    // A factor that does not divide 28, and a sampler the DDPM does not have.
    assert_fails_with(
        &genmodels(&args(&["--factor", "3", "-n", "2"])),
        "must be at least 2 and divide the image size 28×28, got 3",
    );
    assert_fails_with(
        &genmodels(&args(&["-n", "2", "--method", "naive"])),
        "a diffusion model samples with `ancestral` or `ddim`",
    );
}

#[test]
fn a_model_without_super_resolution_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("vae");
    common::train_tiny_vae(&run, "2");
    let out = tmp.path().join("superres");
    assert_fails_with(
        &genmodels(&[
            "superres",
            "--checkpoint",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "a `vae` model cannot super-resolve",
    );
    assert!(!out.exists());
}

#[test]
fn a_tiny_super_resolution_gated_pixelcnn_reports_its_exact_conditional_nll() {
    let tmp = tempfile::tempdir().unwrap();
    // Trained through the registry entry, with a tiny network: 1 epoch on 32 digits.
    let config = tmp.path().join("gated.json");
    std::fs::write(
        &config,
        r#"{"hidden": 6, "layers": 2, "input_kernel": 3,
            "condition_channels": 1, "super_resolution_factor": 4}"#,
    )
    .unwrap();
    let run = tmp.path().join("gated-sr");
    let run_s = run.to_str().unwrap();
    let trained = genmodels(&[
        "train",
        "gated-pixelcnn-superres",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "32",
        "--out",
        run_s,
    ]);
    assert_ok(&trained);
    // Its test NLL is said to be conditional, in the report and in metrics.json.
    let condition = "the 7×7 block means (×4 super-resolution)";
    let stdout = String::from_utf8_lossy(&trained.stdout);
    assert!(
        stdout.contains(&format!("test NLL (exact, conditional on {condition})")),
        "{stdout}"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["nll_condition"], condition);
    let out = tmp.path().join("superres");
    let out_s = out.to_str().unwrap();
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["superres", "--checkpoint", run_s, "--out", out_s];
        args.extend_from_slice(extra);
        args
    };
    let output = genmodels(&args(&["--factor", "4", "-n", "4", "--samples", "2"]));
    assert_ok(&output);
    for file in ["superres.md", "superres.json", "superres.png"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("−log p(x∣y), nats |"), "{stdout}");
    let json = report(&out);
    assert_eq!(json["model"], "gated-pixelcnn-superres");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows[2]["method"], "Gated PixelCNN of p(x∣y) (cached)");
    assert_eq!(rows[2]["results"], 8);
    // The exact −log p(x | y), finite and positive (at most 784 ln 2 for a near-uniform
    // model, a little more for a worse one), for the model only.
    let nll = number(&rows[2], "conditional_nll_nats");
    assert!(nll > 0.0 && nll < 2000.0, "{nll}");
    assert!(number(&rows[2], "conditional_nll_stderr_nats") >= 0.0);
    for baseline in &rows[..2] {
        assert!(baseline["conditional_nll_nats"].is_null());
    }
    // Binary results: no continuous form, and a PSNR like any other.
    assert!(rows[2]["continuous_low_pass_max"].is_null());
    assert!(number(&rows[2], "psnr_db") > 0.0);
    // The naive sampler draws the same pictures as the cached one.
    let sheet = std::fs::read(out.join("superres.png")).unwrap();
    assert_ok(&genmodels(&args(&[
        "--factor",
        "4",
        "-n",
        "4",
        "--samples",
        "2",
        "--method",
        "naive",
    ])));
    assert_eq!(
        report(&out)["rows"][2]["method"],
        "Gated PixelCNN of p(x∣y) (naive)"
    );
    assert_eq!(sheet, std::fs::read(out.join("superres.png")).unwrap());
    // Another factor than the one it was trained for, and a diffusion sampler, are refused.
    assert_fails_with(
        &genmodels(&args(&["--factor", "2", "-n", "2"])),
        "super-resolves by the factor it was trained for, 4, not 2",
    );
    assert_fails_with(
        &genmodels(&args(&["-n", "2", "--method", "ancestral"])),
        "the autoregressive models sample with `naive` or `cached`",
    );
}

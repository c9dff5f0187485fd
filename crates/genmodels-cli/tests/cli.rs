//! The CLI end to end on a few hundred bundled digits.

mod common;

use std::path::Path;

use common::{assert_fails_with, assert_ok, genmodels, genmodels_with_zoo};

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn train_eval_sample_and_resume_a_vae() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vae");
    let out_s = out.to_str().unwrap();
    let train = |epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "vae",
            "--epochs",
            epochs,
            "--train-images",
            "300",
            "--iwae-k",
            "5",
            "--batch-size",
            "50",
            "--out",
            out_s,
        ];
        args.extend(extra);
        genmodels(&args)
    };
    let run = train("1", &[]);
    assert_ok(&run);
    for file in [
        "config.json",
        "checkpoint.json",
        "samples.png",
        "reconstructions.png",
        "interpolation.png",
        "metrics.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let m = metrics(&out);
    for key in [
        "model",
        "backend",
        "epochs",
        "train_images",
        "train_seconds",
        "train_images_per_second",
        "params",
        "test_nll_nats",
        "nll_kind",
        "iwae_k",
        "test_bits_per_dim",
        "test_elbo_nats",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(m["model"], "vae");
    assert_eq!(m["nll_kind"], "iwae");
    assert_eq!(m["iwae_k"], 5);
    assert_eq!(m["train_images"], 300);
    let nll = m["test_nll_nats"].as_f64().unwrap();
    let elbo = m["test_elbo_nats"].as_f64().unwrap();
    assert!(nll > 0.0 && -elbo >= nll - 1.0, "NLL {nll}, ELBO {elbo}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("test NLL (iwae, k=5)"), "{stdout}");

    // Training again into the same directory must not overwrite the checkpoint.
    let again = train("1", &[]);
    assert_fails_with(&again, "--resume");

    let resumed = train("2", &["--resume"]);
    assert_ok(&resumed);
    assert_eq!(metrics(&out)["epochs"], 2);

    let eval = genmodels(&["eval", "--checkpoint", out_s, "--iwae-k", "2"]);
    assert_ok(&eval);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("iwae, k=2"));

    let refused = genmodels(&["complete", "--checkpoint", out_s, "--rows-observed", "3"]);
    assert_fails_with(&refused, "cannot complete");

    let png = tmp.path().join("s.png");
    let sample = genmodels(&[
        "sample",
        "--checkpoint",
        out_s,
        "-n",
        "9",
        "--seed",
        "1",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_ok(&sample);
    assert!(png.is_file());
}

#[test]
fn a_recipe_run_validates_on_held_out_digits_keeps_its_best_epoch_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vae");
    let out_s = out.to_str().unwrap();
    let common = ["--train-images", "300", "--iwae-k", "2", "--out", out_s];
    let first = genmodels(
        &[
            &["train", "vae", "--recipe", "converged", "--epochs", "2"],
            &common[..],
        ]
        .concat(),
    );
    assert_ok(&first);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("by the `converged` recipe"), "{stderr}");
    assert!(stderr.contains("validation NLL (ELBO)"), "{stderr}");
    for file in [
        "validation.json",
        "validation.png",
        "best/checkpoint.json",
        "best/config.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let m = metrics(&out);
    assert_eq!(m["recipe"], "converged");
    assert_eq!(m["validation_images"], 1000);
    assert_eq!(
        m["train_images"], 300,
        "the first 300 of the 7,000 left to train on"
    );
    assert_eq!(m["batch_size"], 100, "the recipe's batch");
    assert_eq!(m["validation"]["points"].as_array().unwrap().len(), 2);
    let best = m["best_epoch"].as_u64().unwrap();
    assert!((1..=2).contains(&best));

    // --resume continues the recipe without naming it again; another recipe is refused.
    let resumed =
        genmodels(&[&["train", "vae", "--epochs", "3", "--resume"], &common[..]].concat());
    assert_ok(&resumed);
    let m = metrics(&out);
    assert_eq!(m["recipe"], "converged");
    assert_eq!(m["epochs"], 3);
    assert_eq!(m["validation"]["points"].as_array().unwrap().len(), 3);
    let best = m["best_epoch"].as_u64().unwrap();
    let unknown = genmodels(&[&["train", "vae", "--recipe", "fastest"], &common[..]].concat());
    assert_fails_with(&unknown, "converged");

    // On grey levels, the grey track's recipe: the discretized Gaussian decoder.
    let grey = tmp.path().join("vae-grey");
    let trained = genmodels(&[
        "train",
        "vae",
        "--recipe",
        "converged",
        "--binarize",
        "none",
        "--epochs",
        "1",
        "--train-images",
        "300",
        "--iwae-k",
        "2",
        "--out",
        grey.to_str().unwrap(),
    ]);
    assert_ok(&trained);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(grey.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["decoder"], "Gaussian", "{config}");
    let m = metrics(&grey);
    assert_eq!(m["recipe"], "converged");
    assert_eq!(m["binarize"], "none");

    // eval, sample and complete use the best checkpoint.
    let eval = genmodels(&["eval", "--checkpoint", out_s, "--iwae-k", "1"]);
    assert_ok(&eval);
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert!(
        stderr.contains(&format!(
            "the best checkpoint by validation score, epoch {best}"
        )),
        "{stderr}"
    );
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found.sort();
    found
}

#[test]
fn pretrained_models_come_from_the_zoo_which_is_only_read() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let vae = zoo.join("vae");
    let trained = genmodels(&[
        "train",
        "vae",
        "--epochs",
        "1",
        "--train-images",
        "200",
        "--iwae-k",
        "2",
        "--out",
        vae.to_str().unwrap(),
    ]);
    assert_ok(&trained);
    let before = files(&zoo);
    let png = tmp.path().join("from-zoo.png");
    let sample = genmodels_with_zoo(
        &[
            "sample",
            "--pretrained",
            "vae",
            "-n",
            "4",
            "--out",
            png.to_str().unwrap(),
        ],
        &zoo,
    );
    assert_ok(&sample);
    assert!(png.is_file());
    let eval = genmodels_with_zoo(&["eval", "--pretrained", "vae", "--iwae-k", "1"], &zoo);
    assert_ok(&eval);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("test NLL"));
    assert_eq!(files(&zoo), before, "a command changed the zoo");
    let unknown = genmodels_with_zoo(&["sample", "--pretrained", "pixelcnn"], &zoo);
    assert_fails_with(&unknown, "has no model `pixelcnn`; it has vae");
    let both = genmodels_with_zoo(
        &[
            "sample",
            "--pretrained",
            "vae",
            "--checkpoint",
            vae.to_str().unwrap(),
        ],
        &zoo,
    );
    assert_fails_with(&both, "cannot be used with");
    let nowhere = genmodels_with_zoo(&["eval", "--pretrained", "vae"], &tmp.path().join("none"));
    assert_fails_with(&nowhere, "there is no zoo at");
}

#[test]
fn the_comparison_has_an_eight_bit_grey_track() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("compare");
    let run = genmodels(&[
        "compare",
        "--budget",
        "tiny",
        "--only",
        "pixelcnn-256,vae-grey,gaussian-mixture",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let rows = results["rows"].as_array().unwrap();
    // The VAE has two rows (ELBO and IWAE), the others one each.
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in rows {
        assert_eq!(row["grey_track"], true, "{row}");
        assert_eq!(row["floor"]["presentation"], "grey", "{row}");
        // Discrete likelihoods of 8-bit digits: positive nats, and a model barely trained
        // is near the uniform 8 bits per pixel, not on a density's scale.
        let nll = &row["nll"]["value"];
        let bits = nll["bits_per_dim"].as_f64().unwrap();
        assert!(bits > 0.0 && bits < 12.0, "{row}");
        assert!(nll["nats"].as_f64().unwrap() > 0.0, "{row}");
    }
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert!(labels[0].contains("256 levels"), "{labels:?}");
    assert!(labels.iter().any(|l| l.contains("discretized Gaussian")));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## The 8-bit grey track"), "{md}");
    for chart in ["nll_vs_time_grey.png", "samples.png"] {
        assert!(out.join(chart).is_file(), "{chart} missing");
    }
    // No binarised model, no binarised table or curve.
    assert!(!out.join("nll_vs_time.png").exists());
    assert!(!md.contains("NLLs of binary models"), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",grey")), "{csv}");
}

#[test]
fn a_diffusion_model_trains_samples_and_reports_its_bound_on_either_grid() {
    let tmp = tempfile::tempdir().unwrap();
    // T = 5 (the bound then sums every step exactly) and a U-Net of 4 base channels.
    for (grid, binarize) in [("Binary", "dynamic"), ("Grey256", "none")] {
        let config = tmp.path().join(format!("{grid}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{"data_grid": "{grid}", "timesteps": 5,
                    "unet": {{"base_channels": 4, "channel_multipliers": [1, 2], "groups": 2}}}}"#
            ),
        )
        .unwrap();
        let out = tmp.path().join(grid);
        let trained = genmodels(&[
            "train",
            "ddpm",
            "--config",
            config.to_str().unwrap(),
            "--binarize",
            binarize,
            "--epochs",
            "1",
            "--train-images",
            "64",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_ok(&trained);
        let m = metrics(&out);
        assert_eq!(m["model"], "ddpm");
        assert_eq!(m["nll_kind"], "elbo", "{m}");
        // A bound on a discrete probability: positive nats.
        assert!(m["test_nll_nats"].as_f64().unwrap() > 0.0, "{m}");
        let png = tmp.path().join(format!("{grid}.png"));
        let sampled = genmodels(&[
            "sample",
            "--checkpoint",
            out.to_str().unwrap(),
            "-n",
            "2",
            "--out",
            png.to_str().unwrap(),
        ]);
        assert_ok(&sampled);
        assert!(png.is_file());
        // The default sampler is DDIM on all T = 5 steps, deterministic.
        assert!(
            String::from_utf8_lossy(&sampled.stdout).contains("DDIM, 5 steps, η = 0"),
            "{}",
            String::from_utf8_lossy(&sampled.stdout)
        );
        let draw = |args: &[&str], file: &str| {
            let png = tmp.path().join(file);
            let mut all = vec![
                "sample",
                "--checkpoint",
                out.to_str().unwrap(),
                "-n",
                "2",
                "--out",
                png.to_str().unwrap(),
            ];
            all.extend_from_slice(args);
            (genmodels(&all), png)
        };
        let (ancestral, _) = draw(&["--method", "ancestral"], "ancestral.png");
        assert_ok(&ancestral);
        assert!(String::from_utf8_lossy(&ancestral.stdout).contains("ancestral sampler"));
        let (ddim, ddim_png) = draw(&["--method", "ddim", "--steps", "3", "--eta", "1"], "d.png");
        assert_ok(&ddim);
        assert!(String::from_utf8_lossy(&ddim.stdout).contains("DDIM, 3 steps, η = 1"));
        assert!(ddim_png.is_file());
        // An autoregressive model's sampler, DDIM settings out of range or without DDIM.
        let (naive, _) = draw(&["--method", "naive"], "x.png");
        assert_fails_with(
            &naive,
            "a diffusion model samples with `ancestral` or `ddim`",
        );
        let (too_many, _) = draw(&["--method", "ddim", "--steps", "6"], "x.png");
        assert_fails_with(&too_many, "DDIM takes 1 to T = 5 steps, got 6");
        let (stray, _) = draw(&["--steps", "3"], "x.png");
        assert_fails_with(&stray, "--steps and --eta apply to --method ddim");
        // The judge scores samples of the sampler named, and says which with its time.
        let eval = |args: &[&str]| {
            let mut all = vec!["eval", "--checkpoint", out.to_str().unwrap()];
            all.extend_from_slice(args);
            genmodels(&all)
        };
        let judged = eval(&["--quality-samples", "4", "--method", "ddim", "--steps", "2"]);
        assert_ok(&judged);
        let quality = &metrics(&out)["sample_quality"];
        assert_eq!(quality["sampler"], "DDIM, 2 steps, η = 0", "{quality}");
        assert!(quality["seconds_per_image"].as_f64().unwrap() > 0.0);
        assert!(quality["sharpness"].as_f64().unwrap() >= 0.0);
        assert_fails_with(&eval(&["--method", "ancestral"]), "add --quality-samples");
        // Quality and time against DDIM's steps: a table, JSON, CSV and two charts.
        let curve_dir = tmp.path().join(format!("{grid}-curve"));
        let curve = |steps: &str| {
            genmodels(&[
                "ddim-curve",
                "--checkpoint",
                out.to_str().unwrap(),
                "--steps",
                steps,
                "--samples",
                "4",
                "--out",
                curve_dir.to_str().unwrap(),
            ])
        };
        assert_fails_with(&curve("2,6"), "DDIM takes 1 to T = 5 steps, got 6");
        assert!(
            !curve_dir.exists(),
            "nothing is written before the steps are checked"
        );
        assert_ok(&curve("5,1"));
        let points: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(curve_dir.join("ddim_curve.json")).unwrap(),
        )
        .unwrap();
        let steps: Vec<u64> = points
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["steps"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [1, 5]);
        for file in [
            "ddim_curve.md",
            "ddim_curve.csv",
            "fid_vs_steps.png",
            "time_vs_steps.png",
        ] {
            assert!(curve_dir.join(file).is_file(), "{file}");
        }
        // Inpainting of the bottom rows, with either sampler.
        for method in ["ancestral", "ddim"] {
            let completion = tmp.path().join(format!("{grid}-{method}-completion.png"));
            let run = genmodels(&[
                "complete",
                "--checkpoint",
                out.to_str().unwrap(),
                "--rows-observed",
                "14",
                "-n",
                "2",
                "--samples",
                "1",
                "--method",
                method,
                "--out",
                completion.to_str().unwrap(),
            ]);
            assert_ok(&run);
            assert!(completion.is_file());
        }
    }
}

#[test]
fn an_autoencoder_reports_no_likelihood() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ae");
    let run = genmodels(&[
        "train",
        "ae",
        "--epochs",
        "1",
        "--train-images",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let m = metrics(&out);
    assert!(m["test_nll_nats"].is_null());
    assert!(m["nll_kind"].is_null());
    assert!(m["test_reconstruction"].as_f64().unwrap() > 0.0);
    assert!(out.join("samples.png").is_file());
    let curve = genmodels(&["ddim-curve", "--checkpoint", out.to_str().unwrap()]);
    assert_fails_with(&curve, "ddim-curve applies to diffusion models, not the");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let run = genmodels(&["train", "vae", "--backend", "tpu"]);
    assert_fails_with(&run, "unknown backend; choose flex, ndarray, wgpu or cuda");
    // CUDA is a backend, but not of this build (its feature is off by default).
    let run = genmodels(&["train", "vae", "--backend", "cuda", "--epochs", "1"]);
    assert_fails_with(&run, "enable the cargo feature `cuda`");
    // Data-parallel training needs GPUs: flex is one device.
    let run = genmodels(&["train", "vae", "--devices", "0,1", "--epochs", "1"]);
    assert_fails_with(&run, "needs a GPU backend (--backend wgpu or cuda)");
    let tmp = tempfile::tempdir().unwrap();
    let run = genmodels(&[
        "train",
        "vae",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "no train images");
}

#[test]
fn grey_levels_get_a_gaussian_vae_and_a_bernoulli_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grey");
    let run = genmodels(&[
        "train",
        "vae",
        "--epochs",
        "1",
        "--train-images",
        "200",
        "--iwae-k",
        "2",
        "--binarize",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("Gaussian"), "{config}");
    assert!(
        metrics(&out)["test_bits_per_dim"]
            .as_f64()
            .unwrap()
            .is_finite()
    );

    let bernoulli = tmp.path().join("bernoulli.json");
    std::fs::write(&bernoulli, r#"{"latent_dim": 4}"#).unwrap();
    let run = genmodels(&[
        "train",
        "vae",
        "--config",
        bernoulli.to_str().unwrap(),
        "--binarize",
        "none",
        "--out",
        tmp.path().join("refused").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "Bernoulli decoder needs binary");
}

#[test]
fn a_pixelcnn_reports_an_exact_likelihood_and_its_sampling_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pixelcnn");
    let tiny = tmp.path().join("tiny.json");
    std::fs::write(
        &tiny,
        r#"{"hidden": 4, "residual_blocks": 1, "input_kernel": 3}"#,
    )
    .unwrap();
    let run = genmodels(&[
        "train",
        "pixelcnn",
        "--epochs",
        "1",
        "--train-images",
        "100",
        "--batch-size",
        "50",
        "--config",
        tiny.to_str().unwrap(),
        "--method",
        "naive",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let m = metrics(&out);
    assert_eq!(m["nll_kind"], "exact");
    assert!(m["iwae_k"].is_null());
    assert!(m["test_nll_nats"].as_f64().unwrap() > 0.0);
    assert_eq!(m["sample_method"], "naive");
    assert!(m["sample_seconds_per_image"].as_f64().unwrap() > 0.0);
    assert!(out.join("samples.png").is_file());
    assert!(!out.join("reconstructions.png").exists());
    assert!(String::from_utf8_lossy(&run.stdout).contains("sampling s/image (naive)"));

    let png = tmp.path().join("completion.png");
    let complete = genmodels(&[
        "complete",
        "--checkpoint",
        out.to_str().unwrap(),
        "--rows-observed",
        "14",
        "-n",
        "4",
        "--samples",
        "2",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_ok(&complete);
    let grid = image::open(&png).unwrap();
    // 4 columns; originals, observed part and 2 completions: 4 rows of 28×2 + 2 px padding.
    assert_eq!((grid.width(), grid.height()), (4 * 58 + 2, 4 * 58 + 2));
    let too_many = genmodels(&[
        "complete",
        "--checkpoint",
        out.to_str().unwrap(),
        "--rows-observed",
        "29",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_fails_with(&too_many, "exceeds the image height");

    let unknown = genmodels(&[
        "train",
        "pixelcnn",
        "--preset",
        "huge",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_fails_with(&unknown, "unknown PixelCNN preset");
}

/// Trains a tiny `model` for one epoch on 100 digits, then checks what every autoregressive
/// model promises on the command line: an exact likelihood, a cached sampler by default that
/// draws the same images as the naive one, and completion.
fn check_autoregressive_model(model: &str, tiny_config: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(model);
    let out_s = out.to_str().unwrap();
    let tiny = tmp.path().join("tiny.json");
    std::fs::write(&tiny, tiny_config).unwrap();
    let run = genmodels(&[
        "train",
        model,
        "--epochs",
        "1",
        "--train-images",
        "100",
        "--batch-size",
        "50",
        "--config",
        tiny.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert_ok(&run);
    let m = metrics(&out);
    assert_eq!(m["model"], model);
    assert_eq!(m["nll_kind"], "exact", "{model}");
    assert!(m["test_nll_nats"].as_f64().unwrap() > 0.0, "{model}");
    assert_eq!(m["sample_method"], "cached", "{model}");

    let draw = |method: &str| {
        let png = tmp.path().join(format!("{method}.png"));
        let sample = genmodels(&[
            "sample",
            "--checkpoint",
            out_s,
            "-n",
            "4",
            "--seed",
            "3",
            "--method",
            method,
            "--out",
            png.to_str().unwrap(),
        ]);
        assert_ok(&sample);
        std::fs::read(png).unwrap()
    };
    assert_eq!(
        draw("naive"),
        draw("cached"),
        "{model}: the samplers drew different images"
    );
    // A diffusion model's samplers are refused by name.
    let refused = genmodels(&[
        "sample",
        "--checkpoint",
        out_s,
        "--method",
        "ddim",
        "--out",
        tmp.path().join("ddim.png").to_str().unwrap(),
    ]);
    assert_fails_with(
        &refused,
        "the autoregressive models sample with `naive` or `cached`, not `ddim`",
    );

    let png = tmp.path().join("completion.png");
    let complete = genmodels(&[
        "complete",
        "--checkpoint",
        out_s,
        "--rows-observed",
        "20",
        "-n",
        "2",
        "--samples",
        "1",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_ok(&complete);
    assert!(png.is_file());
}

#[test]
fn the_other_autoregressive_models_train_sample_with_both_samplers_and_complete() {
    check_autoregressive_model(
        "gated-pixelcnn",
        r#"{"hidden": 6, "layers": 2, "input_kernel": 3}"#,
    );
    check_autoregressive_model(
        "row-lstm",
        r#"{"hidden": 4, "layers": 1, "input_kernel": 3}"#,
    );
    check_autoregressive_model(
        "diagonal-bilstm",
        r#"{"hidden": 4, "layers": 1, "input_kernel": 3}"#,
    );
}

#[test]
fn sampling_options_that_do_not_apply_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ae");
    let run = genmodels(&[
        "train",
        "ae",
        "--epochs",
        "1",
        "--train-images",
        "100",
        "--method",
        "cached",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails_with(
        &run,
        "--method applies to the autoregressive and diffusion models",
    );
}

/// A DCGAN of width 8 trains in seconds.
const TINY_DCGAN: &str = r#"{"architecture": {"dcgan": {"width": 8}}, "latent_dim": 8}"#;

#[test]
fn a_conditional_gan_trains_samples_a_chosen_digit_and_gets_a_parzen_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.json");
    std::fs::write(&config, TINY_DCGAN).unwrap();
    let out = tmp.path().join("cgan");
    let out_s = out.to_str().unwrap();
    let run = genmodels(&[
        "train",
        "cgan",
        "--objective",
        "hinge",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "128",
        "--batch-size",
        "32",
        "--out",
        out_s,
    ]);
    assert_ok(&run);
    for file in [
        "samples.png",
        "interpolation.png",
        "metrics.json",
        "config.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let saved = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(saved.contains(r#""objective": "hinge""#), "{saved}");
    assert!(saved.contains(r#""classes": 10"#), "{saved}");
    let m = metrics(&out);
    assert_eq!(m["model"], "cgan");
    assert_eq!(m["lr"], 2e-4);
    assert!(m["test_nll_nats"].is_null());
    assert!(
        m["likelihood_unavailable"]
            .as_str()
            .unwrap()
            .contains("implicit")
    );
    let names: Vec<&str> = m["final_train_components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap())
        .collect();
    for name in ["discriminator_loss", "generator_loss", "d_real", "d_fake"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    // Two optimisers, one per player.
    let optimizers = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("optimizer-")
        })
        .count();
    assert_eq!(optimizers, 2);

    let sevens = tmp.path().join("sevens.png");
    let run = genmodels(&[
        "sample",
        "--checkpoint",
        out_s,
        "-n",
        "4",
        "--label",
        "7",
        "--out",
        sevens.to_str().unwrap(),
    ]);
    assert_ok(&run);
    assert!(String::from_utf8_lossy(&run.stdout).contains("of class 7"));
    assert!(sevens.exists());
    let run = genmodels(&[
        "sample",
        "--checkpoint",
        out_s,
        "--label",
        "10",
        "--out",
        tmp.path().join("no.png").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "10");

    let run = genmodels(&[
        "eval",
        "--checkpoint",
        out_s,
        "--parzen",
        "--parzen-samples",
        "300",
        "--parzen-validation",
        "100",
    ]);
    assert_ok(&run);
    let m = metrics(&out);
    let parzen = m["parzen_log_likelihood_nats"].as_f64().unwrap();
    let sigma = m["parzen_sigma"].as_f64().unwrap();
    assert!(parzen.is_finite() && sigma > 0.0, "{parzen} {sigma}");
    assert_eq!(m["parzen_samples"], 300);

    // Sample quality by the judge; the Parzen figures of the earlier eval stay.
    let run = genmodels(&["eval", "--checkpoint", out_s, "--quality-samples", "50"]);
    assert_ok(&run);
    assert!(String::from_utf8_lossy(&run.stdout).contains("MNIST-FID (50 samples, grey)"));
    let m = metrics(&out);
    assert_eq!(m["parzen_log_likelihood_nats"].as_f64().unwrap(), parzen);
    let quality = &m["sample_quality"];
    assert_eq!(quality["samples"], 50);
    assert_eq!(quality["presentation"], "grey");
    let (fid, floor) = (
        quality["fid"].as_f64().unwrap(),
        quality["floor_fid"].as_f64().unwrap(),
    );
    // One epoch on 128 images: far from real digits.
    assert!(
        fid.is_finite() && floor >= 0.0 && fid > floor,
        "{fid} vs {floor}"
    );
    let is = quality["inception_score"].as_f64().unwrap();
    assert!((1.0..=10.0).contains(&is), "{is}");
    // Grey samples of one epoch: a positive sharpness, with no sampler to name.
    assert!(quality["sharpness"].as_f64().unwrap() > 0.0, "{quality}");
    assert!(quality["sampler"].is_null());
    let run = genmodels(&["eval", "--checkpoint", out_s, "--quality-samples", "1"]);
    assert_fails_with(&run, "at least 2");
}

#[test]
fn gan_only_options_are_refused_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let run = genmodels(&[
        "train",
        "vae",
        "--objective",
        "hinge",
        "--out",
        tmp.path().join("vae").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "--objective applies to GAN models");

    let config = tmp.path().join("tiny.json");
    std::fs::write(&config, TINY_DCGAN).unwrap();
    let out = tmp.path().join("dcgan");
    let run = genmodels(&[
        "train",
        "dcgan",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "64",
        "--batch-size",
        "32",
        "--objective",
        "wasserstein",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    assert_eq!(metrics(&out)["lr"], 5e-5);
    let run = genmodels(&[
        "sample",
        "--checkpoint",
        out.to_str().unwrap(),
        "--label",
        "3",
        "--out",
        tmp.path().join("x.png").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "--label applies to class-conditional models");
}

#[test]
fn a_mixture_is_fitted_by_em_and_reports_an_exact_likelihood() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gmm");
    let run = genmodels(&[
        "train",
        "gmm",
        "--preset",
        "bernoulli-3",
        "--epochs",
        "5",
        "--train-images",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    assert!(String::from_utf8_lossy(&run.stderr).contains("EM: 5 iterations"));
    for file in ["samples.png", "components.png", "metrics.json"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let m = metrics(&out);
    assert_eq!(m["model"], "gmm");
    assert_eq!(m["nll_kind"], "exact");
    let nll = m["test_nll_nats"].as_f64().unwrap();
    // Better than independent fair coins (784 ln 2 ≈ 543 nats), worse than the best models.
    assert!(nll > 80.0 && nll < 543.0, "{nll}");

    let grey = tmp.path().join("grey");
    let run = genmodels(&[
        "train",
        "gmm",
        "--preset",
        "gaussian-2",
        "--epochs",
        "3",
        "--train-images",
        "200",
        "--out",
        grey.to_str().unwrap(),
    ]);
    assert_ok(&run);
    assert_eq!(metrics(&grey)["nll_kind"], "exact");

    let run = genmodels(&[
        "train",
        "gmm",
        "--preset",
        "poisson-4",
        "--out",
        tmp.path().join("bad").to_str().unwrap(),
    ]);
    assert_fails_with(&run, "unknown mixture preset");
}

#[test]
fn a_vae_gan_trains_three_players_and_reconstructs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.json");
    std::fs::write(
        &config,
        r#"{"latent_dim": 4, "width": 4, "encoder_channels": [4, 8]}"#,
    )
    .unwrap();
    let out = tmp.path().join("vae-gan");
    let run = genmodels(&[
        "train",
        "vae-gan",
        "--config",
        config.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "64",
        "--batch-size",
        "32",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    for file in ["samples.png", "reconstructions.png", "interpolation.png"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let optimizers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("optimizer-"))
        .collect();
    assert_eq!(optimizers.len(), 3, "{optimizers:?}");
    let m = metrics(&out);
    assert_eq!(m["model"], "vae-gan");
    assert!(m["test_nll_nats"].is_null());
}

#[test]
fn bench_prints_the_promised_json_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let plots = tmp.path().join("plots");
    let output = genmodels(&[
        "bench",
        "--model",
        "vae",
        "--model",
        "pixelcnn",
        "--backend",
        "flex",
        "--op",
        "train_step",
        "--op",
        "log_likelihood",
        "--batch",
        "4",
        "--steps",
        "1",
        "--json",
        "--plot",
        plots.to_str().unwrap(),
    ]);
    assert_ok(&output);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    // `--kernels both` by default: every row with the kernels and on burn's ops alone.
    assert_eq!(rows.len(), 8);
    for row in &rows {
        assert!(["vae", "pixelcnn"].contains(&row["model"].as_str().unwrap()));
        assert_eq!(row["backend"], "flex");
        assert!(["train_step", "log_likelihood"].contains(&row["op"].as_str().unwrap()));
        assert_eq!(row["batch"], 4);
        assert!(row["images_per_second"].as_f64().unwrap() > 0.0);
    }
    for kernels in [true, false] {
        assert_eq!(rows.iter().filter(|r| r["kernels"] == kernels).count(), 4);
    }
    for op in ["train_step", "log_likelihood"] {
        let png = image::open(plots.join(format!("{op}.png"))).unwrap();
        assert!(png.width() > 100 && png.height() > 100);
    }

    // Asked for by name, an operation the model lacks is an error, not a silent gap.
    let output = genmodels(&["bench", "--model", "dcgan", "--op", "log_likelihood"]);
    assert_fails_with(&output, "no log_likelihood");
    // Left to "all", it is a row that says why.
    let output = genmodels(&[
        "bench",
        "--model",
        "dcgan",
        "--backend",
        "flex",
        "--batch",
        "2",
        "--steps",
        "1",
    ]);
    assert_ok(&output);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("| dcgan | flex | on | train_step | "),
        "{table}"
    );
    assert!(
        table.contains("| dcgan | flex | off | train_step | "),
        "{table}"
    );
    // The trainer's loop is among "all", at the batch asked for.
    assert!(
        table.contains("| dcgan | flex | on | train_loop | 2 | "),
        "{table}"
    );
    let gap = "| dcgan | flex | | log_likelihood | | n/a: implicit density";
    assert_eq!(table.matches(gap).count(), 1, "{table}");
    // A speed figure names the machine's vector extensions and matrix kernel.
    assert!(table.contains("vector extensions: "), "{table}");
    assert!(table.contains("matrix kernel: gemm "), "{table}");
    // One setting asked for: its rows only.
    let output = genmodels(&[
        "bench",
        "--model",
        "vae",
        "--backend",
        "flex",
        "--op",
        "train_step",
        "--batch",
        "2",
        "--steps",
        "1",
        "--kernels",
        "off",
        "--json",
    ]);
    assert_ok(&output);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["kernels"], false);
    assert!(rows[0]["vector_extensions"].is_array());

    // The matrix library's peak, the rate training FLOP/s are a share of.
    let output = genmodels(&["bench", "--gemm-peak", "--json"]);
    assert_ok(&output);
    let peak: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(peak["gemm_peak_flops_per_second"].as_f64().unwrap() > 1e8);
    assert!([256, 512, 1024, 2048].contains(&peak["size"].as_u64().unwrap()));
    let output = genmodels(&["bench", "--gemm-peak", "--model", "vae"]);
    assert_fails_with(&output, "cannot be used with");
}

/// The repository's zoo, as a fresh clone has it.
fn shipped_zoo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoo")
}

#[test]
fn the_shipped_zoo_samples_completes_and_scores_as_it_says() {
    let zoo = shipped_zoo();
    let tmp = tempfile::tempdir().unwrap();
    let mut models: Vec<String> = std::fs::read_dir(&zoo)
        .expect("the repository ships a zoo/ folder")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    models.sort();
    for name in ["pixelcnn", "vae", "dcgan", "bernoulli-mixture"] {
        assert!(models.iter().any(|m| m == name), "no {name} in {models:?}");
    }
    // Every model of the zoo loads and samples, with no training.
    for model in &models {
        let png = tmp.path().join(format!("{model}.png"));
        let run = genmodels_with_zoo(
            &[
                "sample",
                "--pretrained",
                model,
                "-n",
                "4",
                "--out",
                png.to_str().unwrap(),
            ],
            &zoo,
        );
        assert_ok(&run);
        assert!(png.is_file(), "{model}");
    }
    let png = tmp.path().join("completion.png");
    let run = genmodels_with_zoo(
        &[
            "complete",
            "--pretrained",
            "pixelcnn",
            "--rows-observed",
            "14",
            "-n",
            "2",
            "--samples",
            "1",
            "--out",
            png.to_str().unwrap(),
        ],
        &zoo,
    );
    assert_ok(&run);
    assert!(png.is_file());
    // The shipped weights score what the zoo records for them, as shipped (after half
    // precision): an exact likelihood, and an ELBO (its noise from the same seed).
    for model in ["bernoulli-mixture", "pixelcnn", "vae"] {
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(zoo.join(model).join("metrics.json")).unwrap())
                .unwrap();
        let shipped = match metrics["precision"].as_str() {
            Some("f16") => &metrics["likelihoods_half_precision"],
            _ => &metrics["likelihoods_full_precision"],
        };
        let nats = shipped[0]["nats"].as_f64().unwrap();
        let eval = genmodels_with_zoo(&["eval", "--pretrained", model, "--iwae-k", "1"], &zoo);
        assert_ok(&eval);
        let stdout = String::from_utf8_lossy(&eval.stdout);
        assert!(
            stdout.contains(&format!("{nats:.3} ± ")),
            "{model}: the zoo records {nats:.3} nats; eval printed\n{stdout}"
        );
    }
}

/// The rows of a scores CSV under its header.
fn read_scores(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

#[test]
fn score_writes_one_named_anomaly_score_per_test_image() {
    let tmp = tempfile::tempdir().unwrap();
    let mean_of = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| r[2].parse::<f64>().unwrap())
            .sum::<f64>()
            / rows.len() as f64
    };
    // An exact model: the scores are −log p(x), whose mean is the test NLL that `train` reports.
    let gmm = tmp.path().join("gmm");
    let run = genmodels(&[
        "train",
        "gmm",
        "--preset",
        "bernoulli-3",
        "--epochs",
        "2",
        "--train-images",
        "200",
        "--out",
        gmm.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let csv = tmp.path().join("gmm.csv");
    let run = genmodels(&[
        "score",
        "--checkpoint",
        gmm.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("−log p(x), exact"), "{stdout}");
    let (header, rows) = read_scores(&csv);
    assert_eq!(header, "index,label,neg_log_likelihood_nats");
    let m = metrics(&gmm);
    assert_eq!(rows.len() as u64, m["test_images"].as_u64().unwrap());
    assert!(rows.iter().enumerate().all(|(i, r)| r[0] == i.to_string()));
    assert!(rows.iter().all(|r| r[1].parse::<u8>().unwrap() < 10));
    let nll = m["test_nll_nats"].as_f64().unwrap();
    assert!(
        (mean_of(&rows) - nll).abs() < 1e-3 * nll,
        "{} vs {nll}",
        mean_of(&rows)
    );

    // The AE: its reconstruction error, whose mean is the test reconstruction it reports.
    let ae = tmp.path().join("ae");
    let run = genmodels(&[
        "train",
        "ae",
        "--epochs",
        "1",
        "--train-images",
        "200",
        "--out",
        ae.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let run = genmodels(&[
        "score",
        "--checkpoint",
        ae.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let (header, rows) = read_scores(&csv);
    assert_eq!(header, "index,label,reconstruction_bce_nats");
    let reconstruction = metrics(&ae)["test_reconstruction"].as_f64().unwrap();
    assert!((mean_of(&rows) - reconstruction).abs() < 1e-3 * reconstruction);

    // A file that is not a CSV is refused before any scoring, and nothing is written.
    let txt = tmp.path().join("scores.txt");
    let run = genmodels(&[
        "score",
        "--checkpoint",
        ae.to_str().unwrap(),
        "--out",
        txt.to_str().unwrap(),
    ]);
    assert_fails_with(&run, "give the file a .csv name");
    assert!(!txt.exists());
}

//! `genmodels latent` end to end: a freshly trained VAE, tiny GANs (unconditional and
//! class-conditional), and what is refused.

mod common;

use std::path::Path;

use common::{assert_fails_with, assert_ok, genmodels};
use serde_json::Value;

/// The report a run wrote.
fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("latent.json")).unwrap()).unwrap()
}

/// A share in `[0, 1]`.
fn share(v: &Value) -> f64 {
    let v = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((0.0..=1.0).contains(&v), "{v}");
    v
}

/// Asserts `out` holds a PNG called `name`, `columns` digits wide (28 px at ×2 scale, with
/// 2 px padding).
fn assert_sheet(out: &Path, name: &str, columns: u32) {
    let image = image::open(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(image.width(), columns * 56 + (columns + 1) * 2, "{name}");
}

/// Checks what every run with a latent code reports: shares in range, finite correlations.
fn check_latent_parts(r: &Value) {
    let a = &r["arithmetic"];
    for key in [
        "transfer",
        "random_direction",
        "unmoved",
        "prior_share",
        "items_kept",
    ] {
        share(&a[key]);
    }
    assert!(a["shift_norm"].as_f64().unwrap() > 0.0);
    assert_eq!(a["matrix"].as_array().unwrap().len(), 10);
    let attributes = r["attributes"].as_array().unwrap();
    let names: Vec<&str> = attributes
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["thickness", "slant"]);
    for s in attributes {
        for key in ["spearman", "spearman_random"] {
            let rho = s[key].as_f64().unwrap();
            assert!((-1.0..=1.0).contains(&rho), "{key} {rho}");
        }
        share(&s["keeps_class"]);
        share(&s["keeps_class_random"]);
        assert_eq!(s["alphas"].as_array().unwrap().len(), 7);
        let means = s["mean_by_alpha"].as_array().unwrap();
        assert_eq!(means.len(), 7);
        assert!(means.iter().all(|m| m.as_f64().unwrap().is_finite()));
        assert!(s["direction_norm"].as_f64().unwrap() > 0.0);
    }
    // Ink is a mean grey level.
    for m in attributes[0]["mean_by_alpha"].as_array().unwrap() {
        share(m);
    }
    let i = &r["interpolation"];
    share(&i["mean_confidence"]);
    share(&i["confident"]);
}

#[test]
fn a_trained_vae_gets_its_latent_control_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vae");
    let dir_s = dir.to_str().unwrap();
    common::train_tiny_vae(&dir, "1");
    let run = |out: &Path| {
        genmodels(&[
            "latent",
            "--checkpoint",
            dir_s,
            "--per-class",
            "3",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = tmp.path().join("latent");
    let first = run(&out);
    assert_ok(&first);
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(stdout.contains("## Class arithmetic"), "{stdout}");
    assert!(stdout.contains("## Attribute vectors"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("latent.md")).unwrap(),
        stdout
    );
    assert_sheet(&out, "arithmetic.png", 10);
    assert_sheet(&out, "thickness.png", 7);
    assert_sheet(&out, "slant.png", 7);
    assert_sheet(&out, "interpolation.png", 10);
    assert!(!out.join("conditional.png").exists());
    let r = report(&out);
    assert_eq!(r["latent_size"], 50);
    assert!(
        r["codes"]
            .as_str()
            .unwrap()
            .contains("codes of the 8000 training digits")
    );
    check_latent_parts(&r);
    // Every class has test digits: 3 items each, 90 ordered pairs.
    let a = &r["arithmetic"];
    assert_eq!(a["pairs"], 90);
    assert!(
        a["items_per_class"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n == 3)
    );
    assert_eq!(r["attributes"][0]["items"], 30);
    assert!(r["conditional"].is_null());
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("has no class labels")
    );

    // The same seed gives the same numbers.
    let again = tmp.path().join("again");
    assert_ok(&run(&again));
    let mut r2 = report(&again);
    let mut r1 = r;
    for r in [&mut r1, &mut r2] {
        r["seconds"] = Value::Null;
        r["checkpoint"] = Value::Null;
    }
    assert_eq!(r1, r2);

    // Bad arguments are refused before any work.
    let bad = |flag: &str, value: &str, message: &str| {
        assert_fails_with(
            &genmodels(&["latent", "--checkpoint", dir_s, flag, value]),
            message,
        );
    };
    bad("--per-class", "0", "--per-class 0: move at least one item");
    bad(
        "--confidence",
        "1",
        "--confidence 1: a probability in [0, 1)",
    );
    bad("--draws", "3", "--draws 3: draw at least 10");
}

const TINY_DCGAN: &str = r#"{"architecture": {"dcgan": {"width": 8}}, "latent_dim": 8}"#;

/// Trains a tiny GAN of `preset` (dcgan or cgan) for one epoch into `tmp/name`.
fn tiny_gan(tmp: &Path, preset: &str) -> String {
    let config = tmp.join("tiny.json");
    std::fs::write(&config, TINY_DCGAN).unwrap();
    let out = tmp.join(preset);
    assert_ok(&genmodels(&[
        "train",
        preset,
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
    ]));
    out.to_str().unwrap().to_string()
}

#[test]
fn a_gan_labels_its_draws_with_the_judge_and_a_cgan_draws_its_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let dcgan = tiny_gan(tmp.path(), "dcgan");
    let out = tmp.path().join("latent-dcgan");
    // An untrained generator's images convince the judge of nothing: confidence 0 keeps
    // every draw with its most probable class.
    assert_ok(&genmodels(&[
        "latent",
        "--checkpoint",
        &dcgan,
        "--draws",
        "300",
        "--per-class",
        "2",
        "--confidence",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]));
    let r = report(&out);
    assert_eq!(r["latent_size"], 8);
    let codes = r["codes"].as_str().unwrap();
    assert!(codes.contains("300 of 300 prior draws"), "{codes}");
    assert!(
        r["interpolation"]["how"]
            .as_str()
            .unwrap()
            .contains("spherical paths")
    );
    assert_sheet(&out, "interpolation.png", 10);
    for sheet in ["thickness.png", "slant.png"] {
        assert!(out.join(sheet).is_file(), "{sheet}");
    }
    // The classes the judge found among the draws were swept, at most 2 items each.
    let items = r["attributes"][0]["items"].as_u64().unwrap();
    assert!((1..=20).contains(&items), "{items}");
    for s in r["attributes"].as_array().unwrap() {
        share(&s["keeps_class"]);
        // An untrained generator may change nothing along a direction: then ρ is undefined.
        if let Some(rho) = s["spearman"].as_f64() {
            assert!((-1.0..=1.0).contains(&rho), "{rho}");
        }
    }
    if !r["arithmetic"].is_null() {
        check_latent_parts(&r);
    }

    // A class-conditional GAN: its sheet, one row per class, and no latent arithmetic.
    let cgan = tiny_gan(tmp.path(), "cgan");
    let out = tmp.path().join("latent-cgan");
    assert_ok(&genmodels(&[
        "latent",
        "--checkpoint",
        &cgan,
        "--out",
        out.to_str().unwrap(),
    ]));
    let r = report(&out);
    assert_eq!(r["conditional"]["classes"], 10);
    share(&r["conditional"]["judge_agrees"]);
    assert_sheet(&out, "conditional.png", 10);
    assert!(r["arithmetic"].is_null());
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("decodes a code only with one")
    );
}

#[test]
fn a_model_without_a_latent_code_is_refused_before_loading() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model": "pixelcnn", "config": {}}"#,
    )
    .unwrap();
    assert_fails_with(
        &genmodels(&["latent", "--checkpoint", tmp.path().to_str().unwrap()]),
        "has no latent code to move in and no class labels to sample with; models with a \
         latent code: ae, vae, gan, dcgan, cgan",
    );
}

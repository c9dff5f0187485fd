//! `genmodels anomaly` end to end: a tiny trained model, a model of the shipped zoo, the
//! held-out-class data and the errors.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_fails_with, assert_ok, genmodels, genmodels_with_zoo};

/// The repository's zoo, as a fresh clone has it.
fn shipped_zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoo")
}

/// One row of anomaly.csv.
#[derive(Debug)]
struct Row {
    anomaly: String,
    images: usize,
    auroc: f64,
    typicality: f64,
    ratio: Option<f64>,
}

fn read_rows(out: &Path) -> Vec<Row> {
    let csv = std::fs::read_to_string(out.join("anomaly.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("anomaly,images,auroc,auroc_typicality,auroc_ratio,"),
        "{csv}"
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Row {
                anomaly: f[0].to_string(),
                images: f[1].parse().unwrap(),
                auroc: f[2].parse().unwrap(),
                typicality: f[3].parse().unwrap(),
                ratio: (!f[4].is_empty()).then(|| f[4].parse().unwrap()),
            }
        })
        .collect()
}

fn assert_aurocs_are_probabilities(rows: &[Row]) {
    for row in rows {
        for a in [Some(row.auroc), Some(row.typicality), row.ratio]
            .into_iter()
            .flatten()
        {
            assert!((0.0..=1.0).contains(&a), "{row:?}");
        }
    }
}

#[test]
fn a_tiny_vae_is_measured_on_every_corruption_with_both_corrections() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("vae");
    let out = tmp.path().join("anomaly");
    common::train_tiny_vae(&run, "2");
    let (run_s, out_s) = (run.to_str().unwrap(), out.to_str().unwrap());
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["anomaly", "--checkpoint", run_s, "--out", out_s];
        args.extend_from_slice(extra);
        args
    };
    let output = genmodels(&args(&["--images", "20", "--iwae-k", "2"]));
    assert_ok(&output);
    for file in [
        "anomaly.md",
        "anomaly.csv",
        "anomaly.json",
        "anomaly.png",
        "corruptions.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let rows = read_rows(&out);
    let names: Vec<&str> = rows.iter().map(|r| r.anomaly.as_str()).collect();
    assert_eq!(
        names,
        [
            "noise",
            "inversion",
            "occlusion",
            "rotation-90",
            "rotation-180",
            "blank"
        ]
    );
    assert!(rows.iter().all(|r| r.images == 20 && r.ratio.is_some()));
    assert_aurocs_are_probabilities(&rows);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("| anomaly | images | AUROC |"), "{stdout}");
    assert!(stdout.contains("neg_iwae_k2_nats"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("anomaly.json")).unwrap()).unwrap();
    assert_eq!(json["model"], "vae");
    assert_eq!(json["inliers"], 20);
    assert_eq!(json["rows"].as_array().unwrap().len(), 6);
    // The same seed gives the same table (the task and the estimator are seeded).
    let first = std::fs::read_to_string(out.join("anomaly.csv")).unwrap();
    assert_ok(&genmodels(&args(&["--images", "20", "--iwae-k", "2"])));
    assert_eq!(
        std::fs::read_to_string(out.join("anomaly.csv")).unwrap(),
        first
    );

    // Bad input: typed errors before any scoring.
    assert_fails_with(&genmodels(&args(&["--images", "0"])), "at least 1");
    assert_fails_with(
        &genmodels(&args(&["--images", "1001"])),
        "at most 1000 images",
    );
    assert_fails_with(&genmodels(&args(&["--iwae-k", "0"])), "--iwae-k");
    assert_fails_with(
        &genmodels(&["anomaly", "--out", out.to_str().unwrap()]),
        "--checkpoint or a --pretrained",
    );
    let file = out.join("anomaly.md");
    assert_fails_with(
        &genmodels(&[
            "anomaly",
            "--checkpoint",
            run.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ]),
        "is a file",
    );
}

#[test]
fn the_zoo_mixture_prefers_blank_images_and_typicality_corrects_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bmm");
    let output = genmodels_with_zoo(
        &[
            "anomaly",
            "--pretrained",
            "bernoulli-mixture",
            "--images",
            "50",
            "--out",
            out.to_str().unwrap(),
        ],
        &shipped_zoo(),
    );
    assert_ok(&output);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 6);
    assert_aurocs_are_probabilities(&rows);
    let row = |name: &str| rows.iter().find(|r| r.anomaly == name).unwrap();
    // Nalisnick et al.'s failure: the blank image is more likely than a real digit ...
    assert!(row("blank").auroc < 0.5, "{:?}", row("blank"));
    // ... and the typicality test flags it.
    assert!(row("blank").typicality > 0.5, "{:?}", row("blank"));
    // Noise and inversion are far from any digit.
    assert!(row("noise").auroc > 0.95 && row("inversion").auroc > 0.95);
}

#[test]
fn a_class_held_out_of_training_is_written_trained_on_and_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("without-3");
    let output = genmodels(&[
        "anomaly",
        "--holdout-class",
        "3",
        "--write-holdout-data",
        data.to_str().unwrap(),
    ]);
    assert_ok(&output);
    let written = genmodels::data::Mnist::from_dir(&data).unwrap();
    let bundled = genmodels::data::Mnist::bundled().unwrap();
    assert_eq!(written.test, bundled.test);
    assert!(written.train.labels().unwrap().iter().all(|&l| l != 3));
    let threes = bundled
        .train
        .labels()
        .unwrap()
        .iter()
        .filter(|&&l| l == 3)
        .count();
    assert_eq!(written.train.len() + threes, bundled.train.len());

    let run = tmp.path().join("bmm");
    assert_ok(&genmodels(&[
        "train",
        "gmm",
        "--preset",
        "bernoulli-5",
        "--epochs",
        "2",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    let out = tmp.path().join("anomaly");
    let output = genmodels(&[
        "anomaly",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--holdout-class",
        "3",
        "--images",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&output);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].anomaly.as_str(), rows[0].images), ("class-3", 50));
    assert!(rows[0].ratio.is_some());
    assert_aurocs_are_probabilities(&rows);
    assert!(out.join("anomaly.png").is_file());
    assert!(!out.join("corruptions.png").exists());
    // A class that is not a digit is refused by the parser.
    assert_fails_with(
        &genmodels(&[
            "anomaly",
            "--holdout-class",
            "10",
            "--write-holdout-data",
            "x",
        ]),
        "10",
    );
    // Writing the data needs the class.
    assert_fails_with(
        &genmodels(&["anomaly", "--write-holdout-data", "x"]),
        "--holdout-class",
    );
}

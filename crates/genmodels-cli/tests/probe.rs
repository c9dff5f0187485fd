//! `genmodels probe` end to end: a freshly trained VAE, a model of the zoo, and bad input.

mod common;

use common::{assert_fails_with, assert_ok, genmodels};

/// The accuracies (representation, raw pixels) in percent of each row of a probe's table, by
/// its first column.
fn accuracies(table: &str) -> Vec<(String, f64, f64)> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && l.ends_with("% |"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let percent = |cell: &str| cell.trim_end_matches('%').parse::<f64>().unwrap();
            (cells[0].to_string(), percent(cells[2]), percent(cells[3]))
        })
        .collect()
}

#[test]
fn probes_a_trained_vae_and_writes_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vae");
    let dir_s = dir.to_str().unwrap();
    common::train_tiny_vae(&dir, "1");
    let out = tmp.path().join("probe.md");
    let probe = |out: &str| {
        genmodels(&[
            "probe",
            "--checkpoint",
            dir_s,
            "--labels",
            "3,20",
            "--seed",
            "4",
            "--out",
            out,
        ])
    };
    let run = probe(out.to_str().unwrap());
    assert_ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        stdout.contains("posterior mean μ(x), 50 features"),
        "{stdout}"
    );
    assert!(stdout.contains("raw pixels (binarised"), "{stdout}");
    let rows = accuracies(&stdout);
    let counts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(counts, ["3", "20"], "{stdout}");
    for (_, representation, pixels) in &rows {
        // Ten classes: chance is 10%; even a VAE trained for one epoch carries more.
        assert!(
            *representation > 15.0 && *representation <= 100.0,
            "{stdout}"
        );
        assert!(*pixels > 15.0 && *pixels <= 100.0, "{stdout}");
    }
    assert!(stdout.contains("| 3 | 30 |"), "{stdout}");
    assert!(stdout.contains("| 20 | 200 |"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout);
    // The same seed gives the same table (the fits' timings aside).
    let again = tmp.path().join("again.md");
    assert_ok(&probe(again.to_str().unwrap()));
    let table = |report: &str| report.split("\nFits:").next().unwrap().to_string();
    assert_eq!(
        table(&std::fs::read_to_string(&again).unwrap()),
        table(&stdout)
    );
    assert!(stdout.contains("\nFits:"), "{stdout}");

    assert_fails_with(
        &genmodels(&["probe", "--checkpoint", dir_s, "--labels", "0"]),
        "at least 1",
    );
    assert_fails_with(
        &genmodels(&["probe", "--checkpoint", dir_s, "--out", "probe.csv"]),
        ".md",
    );
}

#[test]
fn probes_a_zoo_mixture_and_clips_counts_a_class_lacks() {
    let run = genmodels(&[
        "probe",
        "--pretrained",
        "bernoulli-mixture",
        "--labels",
        "10,5000",
    ]);
    assert_ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        stdout.contains("responsibilities p(k|x), 50 features"),
        "{stdout}"
    );
    let rows = accuracies(&stdout);
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(rows[0].0, "10");
    // 5,000 per class is more than any class has: every training image is used.
    assert!(rows[1].0.starts_with("5000 (clipped: "), "{stdout}");
    assert!(stdout.contains("| 8000 |"), "{stdout}");
    assert!(
        stdout.contains("every image of that class is used"),
        "{stdout}"
    );
    for (_, representation, pixels) in &rows {
        // A converged mixture's 50 clusters carry the digit well above chance (10%).
        assert!(*representation > 50.0, "{stdout}");
        assert!(*pixels > 50.0, "{stdout}");
    }
}

#[test]
fn probes_of_several_models_share_one_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("probes.png");
    let chart_s = chart.to_str().unwrap();
    for model in ["bernoulli-mixture", "vae", "vae"] {
        assert_ok(&genmodels(&[
            "probe",
            "--pretrained",
            model,
            "--labels",
            "10,20",
            "--chart",
            chart_s,
        ]));
    }
    assert!(chart.is_file());
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("probes.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = data["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    // The VAE probed twice keeps one line; both models see binary pixels: one baseline.
    assert_eq!(names, ["bernoulli-mixture", "raw pixels, binary", "vae"]);
    let points = &data["lines"][2]["points"];
    assert_eq!(points[0][0], 10.0);
    assert_eq!(points[1][0], 20.0);

    // A chart holds 8 lines at most: a ninth is refused before any work.
    let full = tmp.path().join("full.png");
    let lines: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"name": "line {i}", "points": [[10.0, 50.0]]}}"#))
        .collect();
    std::fs::write(
        tmp.path().join("full.json"),
        format!(r#"{{"lines": [{}]}}"#, lines.join(", ")),
    )
    .unwrap();
    assert_fails_with(
        &genmodels(&[
            "probe",
            "--pretrained",
            "vae",
            "--chart",
            full.to_str().unwrap(),
        ]),
        "more than a chart's 8",
    );
    assert!(!full.exists());
}

#[test]
fn a_model_without_a_representation_is_refused_before_loading() {
    // The DDPM has no representation: its config names it, and nothing more is read.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model": "diffusion", "config": {}}"#,
    )
    .unwrap();
    assert_fails_with(
        &genmodels(&["probe", "--checkpoint", tmp.path().to_str().unwrap()]),
        "has no representation to probe; models with one: ae, vae",
    );
}

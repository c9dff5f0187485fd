//! `compare` end to end on the tiny budget: every file, every column, reuse and retraining.

mod common;

use genmodels::Backend;
use genmodels::compare::{self, Budget, CompareOptions, ComparisonResults, Figure, OUTPUT_FILES};
use genmodels::data::Mnist;

fn options(out: &std::path::Path, only: Option<&[&str]>, retrain: bool) -> CompareOptions {
    CompareOptions {
        budget: Budget::Tiny,
        out: out.to_path_buf(),
        backend: Backend::Flex,
        zoo: None,
        retrain,
        seed: 0,
        only: only.map(|names| names.iter().map(|n| n.to_string()).collect()),
        command: "tests/compare.rs".into(),
        data_description: "the bundled MNIST sample".into(),
    }
}

#[test]
fn tiny_comparison_writes_every_file_and_every_column() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let mnist = Mnist::bundled().unwrap();
    let results = compare::run(&options(out.path(), None, false), &mnist).unwrap();

    for file in OUTPUT_FILES {
        let path = out.path().join(file);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", path.display());
    }
    // Fourteen models, each VAE in two rows (ELBO and IWAE-k).
    let models: Vec<&str> = results.rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(results.rows.len(), 16, "{models:?}");
    for name in [
        "pixelcnn",
        "gated-pixelcnn",
        "row-lstm",
        "diagonal-bilstm",
        "bernoulli-mixture",
        "ddpm",
        "dcgan",
        "dcgan-hinge",
        "ae",
        "pixelcnn-256",
        "ddpm-256",
        "gaussian-mixture",
    ] {
        assert!(models.contains(&name), "no row for {name}: {models:?}");
    }
    // The grey track: the four models with a likelihood on the 256-level grid (the VAE in
    // two rows), judged against grey digits, with curves of their own.
    let grey: Vec<&str> = results
        .rows
        .iter()
        .filter(|r| r.grey_track)
        .map(|r| r.model.as_str())
        .collect();
    assert_eq!(grey.len(), 5, "{grey:?}");
    for row in results.rows.iter().filter(|r| r.grey_track) {
        assert_eq!(row.floor.presentation, "grey", "{}", row.label);
        assert!(row.nll.value().is_some(), "{}", row.label);
    }
    assert!(out.path().join("nll_vs_time_grey.png").is_file());
    for row in &results.rows {
        assert!(
            row.fid.is_finite() && row.fid >= 0.0,
            "{}: FID {}",
            row.label,
            row.fid
        );
        assert!(
            (1.0..=10.0 + 1e-9).contains(&row.inception_score),
            "{}",
            row.label
        );
        assert!(row.coverage.classes_hit <= 10);
        assert!(row.sampling.seconds_per_image > 0.0);
        assert!(row.parameters > 0);
        assert!(row.train_seconds > 0.0, "{}", row.label);
        assert!(row.floor.fid.is_finite());
        for reason in [
            not_available(&row.nll),
            not_available(&row.slow_sampling),
            not_available(&row.train_images_per_second),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                !reason.trim().is_empty(),
                "{}: n/a without a reason",
                row.label
            );
        }
    }
    let kinds: Vec<String> = results
        .rows
        .iter()
        .filter_map(|r| r.nll.value().map(|n| n.kind.clone()))
        .collect();
    for kind in ["exact", "ELBO", "IWAE k=4", "Parzen estimate"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} row: {kinds:?}");
    }
    // Sharpness: every row's samples have some; only the VAE's rows have decoder means.
    for row in &results.rows {
        assert!(
            row.sharpness.is_finite() && row.sharpness > 0.0,
            "{}",
            row.label
        );
        let means = row.mean_sharpness.value();
        assert_eq!(
            means.is_some(),
            row.model.starts_with("vae"),
            "{}",
            row.label
        );
        if let Some(&means) = means {
            assert!(means.is_finite() && means > 0.0);
        }
    }
    // Each model's training counted once: the VAEs' second rows add nothing.
    let every_row: f64 = results.rows.iter().map(|r| r.train_seconds).sum();
    let vae_rows: f64 = results
        .rows
        .iter()
        .filter(|r| r.model.contains("(IWAE"))
        .map(|r| r.train_seconds)
        .sum();
    assert_close(
        results.train_seconds,
        every_row - vae_rows,
        "training seconds",
    );
    assert_eq!(results.validation_images, 1_000);
    assert_eq!(results.train_images, 7_000);
    let ae = results.rows.iter().find(|r| r.model == "ae").unwrap();
    assert!(matches!(&ae.nll, Figure::NotAvailable(reason) if !reason.is_empty()));
    // Even one naive image takes 784 network passes: far slower per image than the cached
    // sampler's batch.
    let pixelcnn = results.rows.iter().find(|r| r.model == "pixelcnn").unwrap();
    let naive = pixelcnn.slow_sampling.value().unwrap();
    assert_eq!(naive.sampler, "naive");
    assert!(naive.seconds_per_image > 10.0 * pixelcnn.sampling.seconds_per_image);
    // The DDPM: its bound in the approximate-density group, judged on DDIM's samples (50 of
    // its 1,000 steps), with the ancestral sampler's every step timed beside them.
    let ddpm = results.rows.iter().find(|r| r.model == "ddpm").unwrap();
    assert_eq!(ddpm.nll.value().unwrap().kind, "ELBO");
    assert_eq!(ddpm.sampling.sampler, "DDIM, 50 steps, η = 0");
    let ancestral = ddpm.slow_sampling.value().unwrap();
    assert_eq!(ancestral.sampler, "ancestral");
    assert!(ancestral.seconds_per_image > 5.0 * ddpm.sampling.seconds_per_image);
    assert!(
        results
            .curves
            .iter()
            .any(|c| c.label.starts_with("PixelCNN"))
    );

    // The JSON is the same table; the CSV has a line per row, each with every field.
    let json: ComparisonResults =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    // serde_json may round the last bit of a float: compare what the table shows.
    assert_eq!(json.rows.len(), results.rows.len());
    for (read, written) in json.rows.iter().zip(&results.rows) {
        assert_eq!(read.label, written.label);
        assert_close(read.fid, written.fid, &read.label);
        let nats = |row: &genmodels::compare::ComparisonRow| row.nll.value().map(|n| n.nats);
        assert_eq!(nats(read).is_some(), nats(written).is_some());
        if let (Some(a), Some(b)) = (nats(read), nats(written)) {
            assert_close(a, b, &read.label);
        }
    }
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), results.rows.len() + 1);
    let columns = lines[0].split(',').count();
    for line in &lines[1..] {
        assert_eq!(csv_fields(line), columns, "{line}");
        assert!(!line.contains(",,"), "an empty field: {line}");
    }
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    for row in &results.rows {
        assert!(md.contains(&row.label), "results.md lacks {}", row.label);
    }
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
        "{what}: {a} vs {b}"
    );
}

fn not_available<T>(figure: &Figure<T>) -> Option<&str> {
    match figure {
        Figure::Value(_) => None,
        Figure::NotAvailable(reason) => Some(reason),
    }
}

/// Fields of a CSV line, counting quoted commas as text.
fn csv_fields(line: &str) -> usize {
    let mut quoted = false;
    1 + line
        .chars()
        .filter(|&c| {
            if c == '"' {
                quoted = !quoted;
            }
            c == ',' && !quoted
        })
        .count()
}

#[test]
fn a_second_run_reuses_finished_models_unless_told_to_retrain() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let mnist = Mnist::bundled().unwrap();
    let only = ["vae", "bernoulli-mixture"];
    let first = compare::run(&options(out.path(), Some(&only), false), &mnist).unwrap();
    assert!(first.rows.iter().all(|r| !r.reused_checkpoint));
    let second = compare::run(&options(out.path(), Some(&only), false), &mnist).unwrap();
    assert!(second.rows.iter().all(|r| r.reused_checkpoint));
    for (a, b) in first.rows.iter().zip(&second.rows) {
        // Same weights and seeds: the same likelihoods and sample scores (up to the last bit
        // serde_json may round).
        let nats = |row: &genmodels::compare::ComparisonRow| row.nll.value().unwrap().nats;
        assert_close(nats(a), nats(b), &a.label);
        assert_close(a.fid, b.fid, &a.label);
        assert_close(a.train_seconds, b.train_seconds, &a.label);
    }
    let third = compare::run(&options(out.path(), Some(&only), true), &mnist).unwrap();
    assert!(third.rows.iter().all(|r| !r.reused_checkpoint));

    let unknown = compare::run(&options(out.path(), Some(&["nope"]), false), &mnist);
    assert!(matches!(
        unknown,
        Err(genmodels::GenError::InvalidConfig(_))
    ));
}

/// The first `train` bundled training digits followed by the last 1,000 (the validation
/// split), and the first `test` test digits.
fn small_mnist(train: usize, test: usize) -> Mnist {
    let mnist = Mnist::bundled().unwrap();
    let (_, validation) = mnist.train.split_at(mnist.train.len() - 1_000);
    let first = mnist.train.take(train);
    let joined = genmodels::data::ImageSet::concat(&[first, validation]).unwrap();
    Mnist {
        train: joined,
        test: mnist.test.take(test),
    }
}

#[test]
fn a_converged_model_packed_into_a_zoo_is_evaluated_from_it_without_training() {
    let _serial = common::serial();
    let work = tempfile::tempdir().unwrap();
    let mnist = small_mnist(60, 40);
    let only = ["bernoulli-mixture"];
    let mut trained = options(work.path(), Some(&only), false);
    trained.budget = Budget::Converged;
    let first = compare::run(&trained, &mnist).unwrap();
    assert!(!first.rows[0].reused_checkpoint);
    assert_eq!(first.train_images, 60);

    let zoo = work.path().join("zoo");
    let packed = genmodels::zoo::pack(
        &genmodels::zoo::PackOptions {
            compared: work.path().to_path_buf(),
            zoo: zoo.clone(),
            backend: Backend::Flex,
            seed: 0,
            only: Some(vec!["bernoulli-mixture".into()]),
        },
        &mnist,
    )
    .unwrap();
    assert_eq!(packed.len(), 1);
    let model = &packed[0];
    let change = model.largest_change_nats.unwrap();
    assert_eq!(
        model.precision,
        if change < genmodels::zoo::MAX_HALF_PRECISION_CHANGE_NATS {
            "f16"
        } else {
            "f32"
        }
    );
    let entry = genmodels::zoo::model_dir(&zoo, "bernoulli-mixture").unwrap();
    for file in [
        "config.json",
        "checkpoint.json",
        "training.json",
        "run.json",
        "metrics.json",
    ] {
        assert!(
            entry.join(file).is_file(),
            "{file} missing from the zoo entry"
        );
    }
    assert!(zoo.join("README.md").is_file());
    let missing = genmodels::zoo::model_dir(&zoo, "pixelcnn")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("bernoulli-mixture"), "{missing}");

    // Evaluated from the zoo: nothing trained, the shipped weights scored afresh.
    let out = work.path().join("from-zoo");
    let mut from_zoo = options(&out, Some(&only), false);
    from_zoo.budget = Budget::Converged;
    from_zoo.zoo = Some(zoo.clone());
    let results = compare::run(&from_zoo, &mnist).unwrap();
    let row = &results.rows[0];
    assert!(row.reused_checkpoint);
    assert!(!genmodels::compare::model_dir(&out, "bernoulli-mixture").exists());
    let shipped = if model.precision == "f16" {
        &model.likelihoods_half_precision
    } else {
        &model.likelihoods_full_precision
    };
    assert_eq!(row.nll.value().unwrap().nats, shipped[0].nats);
    assert!(results.source.contains("zoo"));

    // Evaluated whole, the zoo compares the models it holds and names those it lacks.
    let whole = work.path().join("whole");
    let mut whole_zoo = options(&whole, None, false);
    whole_zoo.budget = Budget::Converged;
    whole_zoo.zoo = Some(zoo.clone());
    let results = compare::run(&whole_zoo, &mnist).unwrap();
    assert_eq!(results.rows.len(), 1);
    assert_eq!(results.rows[0].model, "bernoulli-mixture");
    let lacking = results
        .warnings
        .iter()
        .find(|w| w.starts_with("not in the zoo"))
        .expect("a warning naming the missing models");
    assert!(
        lacking.contains("pixelcnn") && lacking.contains("ddpm"),
        "{lacking}"
    );
    // An empty zoo is an error, not an empty table.
    let empty = work.path().join("empty-zoo");
    std::fs::create_dir_all(&empty).unwrap();
    whole_zoo.zoo = Some(empty);
    let refused = compare::run(&whole_zoo, &mnist).unwrap_err().to_string();
    assert!(refused.contains("holds none"), "{refused}");

    // A zoo is evaluated as it is: retraining or another budget is refused.
    from_zoo.retrain = true;
    assert!(compare::run(&from_zoo, &mnist).is_err());
}

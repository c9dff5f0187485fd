//! The `train-judge` command: trains the sample-quality judge (docs/sample-quality.md) and
//! writes the weights that `genmodels-data` ships.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use genmodels::data::Binarization;
use genmodels::eval::quality::{
    ClassifierTrainingConfig, Judge, classifier_accuracy, train_classifier,
};

use crate::data::{datasets, load_mnist};
use crate::{BinarizeMode, DataArgs};

/// Weights that classify fewer test digits correctly are not written without `--force`.
const MIN_ACCURACY: f64 = 0.97;
const EVAL_BATCH: usize = 500;

#[derive(clap::Args, Debug, Clone)]
pub struct TrainJudgeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Passes over the training split.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Seed of the weights, shuffle, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the weights (safetensors).
    #[arg(
        long,
        default_value = "crates/genmodels-data/assets/mnist-judge.safetensors"
    )]
    pub out: PathBuf,
    /// Write the weights even when the grey test accuracy is below 97%.
    #[arg(long)]
    pub force: bool,
}

/// Trains the judge on the training split, reports its test accuracy on grey and on
/// stochastically binarised digits, and saves it atomically if it is good enough.
pub fn train_judge(args: &TrainJudgeArgs) -> anyhow::Result<()> {
    let device = args.data.backend.device()?;
    let mnist = load_mnist(&args.data)?;
    // The binary test digits are the same single draw `train` and `eval` score models on.
    let (_, binary_test) = datasets(mnist.clone(), BinarizeMode::Stochastic, args.seed, None);
    let train = mnist.train.with_binarization(Binarization::None);
    let grey_test = mnist.test.with_binarization(Binarization::None);
    let config = ClassifierTrainingConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..ClassifierTrainingConfig::default()
    };
    eprintln!(
        "training the judge on {} images for {} epochs ({} backend)",
        train.images().len(),
        config.epochs,
        args.data.backend.name()
    );
    let started = Instant::now();
    let (classifier, report) = train_classifier(&config, &train, &device)?;
    let grey = classifier_accuracy(&classifier, &grey_test, EVAL_BATCH, &device)?;
    let binary = classifier_accuracy(&classifier, &binary_test, EVAL_BATCH, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    let last_loss = report.epoch_losses.last().copied().unwrap_or(f64::NAN);
    println!(
        "trained in {:.0} s ({} steps, final training loss {last_loss:.4})",
        report.train_seconds, report.steps
    );
    println!(
        "test accuracy on {} digits: grey {:.2}%, binarised {:.2}%",
        grey_test.images().len(),
        100.0 * grey,
        100.0 * binary
    );
    if grey < MIN_ACCURACY && !args.force {
        bail!(
            "the judge classifies only {:.2}% of the grey test digits correctly (< {:.0}%); \
             {} was not written (train longer, or pass --force)",
            100.0 * grey,
            100.0 * MIN_ACCURACY,
            args.out.display()
        );
    }
    let judge = Judge::new(classifier);
    judge
        .save(&args.out)
        .with_context(|| format!("saving the judge to {}", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({:.2} MB) in {seconds:.0} s in all",
        args.out.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}

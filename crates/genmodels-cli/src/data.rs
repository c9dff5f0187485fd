//! Loading the data the CLI trains and evaluates on.

use anyhow::Context;
use genmodels::data::{Binarization, Dataset, Mnist};
use genmodels::recipe::VALIDATION_BINARIZATION_SEED;

use crate::{BinarizeMode, DataArgs};

/// Seed of the test split's one stochastic binarisation, fixed so every run and every
/// `eval` scores the same binary test images.
const TEST_BINARIZATION_SEED: u64 = 0x7E57;

/// The bundled sample, or MNIST-style IDX files from `--data-dir`.
pub fn load_mnist(args: &DataArgs) -> anyhow::Result<Mnist> {
    match &args.data_dir {
        Some(dir) => Mnist::from_dir(dir).with_context(|| format!("loading {}", dir.display())),
        None => Ok(Mnist::bundled()?),
    }
}

/// The splits a run trains, validates and tests on.
pub struct Splits {
    /// The training images.
    pub train: Dataset,
    /// The validation split held out of the training images, for a recipe's run.
    pub validation: Option<Dataset>,
    /// The test images.
    pub test: Dataset,
}

/// Train and test sets presented with `mode`.
pub fn datasets(
    mnist: Mnist,
    mode: BinarizeMode,
    seed: u64,
    train_images: Option<usize>,
) -> (Dataset, Dataset) {
    let (train, test) = presentations(mode, seed);
    let train_set = match train_images {
        Some(n) => mnist.train.take(n),
        None => mnist.train,
    };
    (
        train_set.with_binarization(train),
        mnist.test.with_binarization(test),
    )
}

/// The splits presented with `mode`; with `validate`, the last
/// [`VALIDATION_IMAGES`](genmodels::registry::VALIDATION_IMAGES) training images are held out
/// as the validation split (binarised once, with a fixed seed, as the test split is), and
/// `train_images` takes the first of the rest.
///
/// # Errors
/// When `validate` and there are too few training images to hold the split out.
pub fn splits(
    mnist: Mnist,
    mode: BinarizeMode,
    seed: u64,
    train_images: Option<usize>,
    validate: bool,
) -> anyhow::Result<Splits> {
    if !validate {
        let (train, test) = datasets(mnist, mode, seed, train_images);
        return Ok(Splits {
            train,
            validation: None,
            test,
        });
    }
    let (train, test) = presentations(mode, seed);
    let validation = match test {
        Binarization::Stochastic { .. } => Binarization::Stochastic {
            seed: VALIDATION_BINARIZATION_SEED,
        },
        other => other,
    };
    let (train_set, validation_set) = genmodels::recipe::validation_split(mnist.train)?;
    let train_set = match train_images {
        Some(n) => train_set.take(n),
        None => train_set,
    };
    Ok(Splits {
        train: train_set.with_binarization(train),
        validation: Some(validation_set.with_binarization(validation)),
        test: mnist.test.with_binarization(test),
    })
}

/// How the training and the held-out splits are presented for `mode`.
fn presentations(mode: BinarizeMode, seed: u64) -> (Binarization, Binarization) {
    match mode {
        BinarizeMode::Dynamic => (
            Binarization::Dynamic { seed },
            Binarization::Stochastic {
                seed: TEST_BINARIZATION_SEED,
            },
        ),
        BinarizeMode::Stochastic => (
            Binarization::Stochastic { seed },
            Binarization::Stochastic {
                seed: TEST_BINARIZATION_SEED,
            },
        ),
        BinarizeMode::Threshold => (Binarization::Threshold(0.5), Binarization::Threshold(0.5)),
        BinarizeMode::None => (Binarization::None, Binarization::None),
    }
}

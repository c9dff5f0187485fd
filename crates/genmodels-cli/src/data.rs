//! Loading the data the CLI trains and evaluates on.

use anyhow::Context;
use genmodels::data::{Binarization, Dataset, Mnist};

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

/// Train and test sets presented with `mode`.
pub fn datasets(
    mnist: Mnist,
    mode: BinarizeMode,
    seed: u64,
    train_images: Option<usize>,
) -> (Dataset, Dataset) {
    let (train, test) = match mode {
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
    };
    let train_set = match train_images {
        Some(n) => mnist.train.take(n),
        None => mnist.train,
    };
    (
        train_set.with_binarization(train),
        mnist.test.with_binarization(test),
    )
}

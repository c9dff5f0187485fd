//! Training a registered model by its [`Recipe`]: the validation split carved from the
//! training images, the score it is judged by after every epoch, and the trainer set up to keep
//! the best epoch and stop when the score stops improving.
//!
//! ```no_run
//! use genmodels::prelude::*;
//! use genmodels::recipe::{self, RecipeRun};
//! use genmodels::registry;
//!
//! # fn main() -> genmodels::Result<()> {
//! let device = Backend::Flex.device()?;
//! let entry = registry::entry("vae")?;
//! let (train, validation) = recipe::validation_split(Mnist::bundled()?.train)?;
//! let recipe = entry.converged;
//! let run = RecipeRun::new(&recipe);
//! let train = train.with_binarization(Binarization::Dynamic { seed: recipe.seed });
//! let validation = validation.with_binarization(Binarization::Stochastic { seed: 1 });
//! let config = TrainerConfig { checkpoint_dir: Some("runs/vae".into()), ..run.trainer_config() };
//! # let _ = (train, validation, config);
//! # Ok(())
//! # }
//! ```

use genmodels_core::burn::tensor::Device;
use genmodels_core::trainer::{LikelihoodValidation, Validation};
use genmodels_core::{GenError, ImageDataset, LikelihoodOptions, Result, TrainerConfig};
use genmodels_data::ImageSet;
use genmodels_eval::Judge;
use genmodels_eval::quality::{GaussianFit, SampleQuality};

use crate::registry::{Recipe, RecipeValidation, Registered, VALIDATION_IMAGES};

/// Seed of the validation split's one stochastic binarisation (for binary models), fixed as
/// the test split's is, so every run is scored on the same binary validation images.
pub const VALIDATION_BINARIZATION_SEED: u64 = 0x5A1D;

/// Images per call when a score draws samples.
const SAMPLE_BATCH: usize = 500;

/// Images per batch when a score evaluates a likelihood.
const EVAL_BATCH: usize = 100;

/// The training images without their last [`VALIDATION_IMAGES`], and those last images: the
/// split a recipe trains and validates on (file order, so the same for every seed).
///
/// # Errors
/// [`GenError::InvalidConfig`] when there are not more training images than that.
pub fn validation_split(train: ImageSet) -> Result<(ImageSet, ImageSet)> {
    if train.len() <= VALIDATION_IMAGES {
        return Err(GenError::InvalidConfig(format!(
            "a recipe holds out the last {VALIDATION_IMAGES} training images for validation, \
             so it needs more than that; the data has {}",
            train.len()
        )));
    }
    Ok(train.split_at(train.len() - VALIDATION_IMAGES))
}

/// A [`Recipe`] turned into the trainer's settings.
#[derive(Debug, Clone, Copy)]
pub struct RecipeRun<'a> {
    recipe: &'a Recipe,
}

impl<'a> RecipeRun<'a> {
    /// The run of `recipe`.
    pub fn new(recipe: &'a Recipe) -> Self {
        Self { recipe }
    }

    /// The trainer's configuration: epochs, batch, learning rate and its schedule, seed and
    /// early stopping (no checkpoint folder: the caller's).
    pub fn trainer_config(&self) -> TrainerConfig {
        let recipe = self.recipe;
        TrainerConfig {
            epochs: recipe.max_epochs,
            batch_size: recipe.batch_size,
            learning_rate: recipe.learning_rate,
            seed: recipe.seed,
            schedule: recipe.schedule,
            early_stopping: Some(recipe.early_stopping),
            ..TrainerConfig::default()
        }
    }

    /// The score model `M` is validated by on `validation`, or `None` for a model the recipe
    /// does not validate (one fitted in closed form). `train` is what a model with a
    /// post-training fit (the autoencoder's code distribution) is fitted on before it samples.
    ///
    /// # Errors
    /// As loading the bundled judge and judging the validation images.
    pub fn validation<M: Registered>(
        &self,
        validation: &'a dyn ImageDataset,
        train: &'a dyn ImageDataset,
        device: &Device,
    ) -> Result<Option<Box<dyn Validation<M> + 'a>>> {
        Ok(match self.recipe.validation {
            RecipeValidation::Likelihood => {
                let scored = LikelihoodValidation::new(
                    validation,
                    LikelihoodOptions::default().with_seed(self.recipe.seed),
                    EVAL_BATCH,
                );
                Some(Box::new(match self.recipe.validation_images {
                    Some(images) => scored.with_images(images),
                    None => scored,
                }))
            }
            RecipeValidation::Fid { samples } => Some(Box::new(FidValidation::new(
                validation,
                train,
                samples,
                self.recipe.seed,
                device,
            )?)),
            RecipeValidation::None => None,
        })
    }
}

/// The MNIST-FID of a model's samples against a validation split, by the bundled judge: the
/// score of the models without a likelihood. The samples come from the same seed every epoch,
/// so that the scores differ by the model, not by the draw.
pub struct FidValidation<'a> {
    judge: Judge,
    reference: GaussianFit,
    train: &'a dyn ImageDataset,
    samples: usize,
    seed: u64,
}

impl<'a> FidValidation<'a> {
    /// FID of `samples` samples (seed `seed`) against the judge's features of `validation`;
    /// `train` fits a model's post-training fit before it samples.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for fewer than 2 samples; as loading the judge and judging
    /// the validation images.
    pub fn new(
        validation: &dyn ImageDataset,
        train: &'a dyn ImageDataset,
        samples: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if samples < 2 {
            return Err(GenError::InvalidConfig(
                "an FID needs at least 2 samples (a covariance needs two)".into(),
            ));
        }
        let judge = genmodels_data::mnist_judge(device)?;
        let reference = GaussianFit::of(&judge.judge_dataset(validation, None, device)?)?;
        Ok(Self {
            judge,
            reference,
            train,
            samples,
            seed,
        })
    }
}

impl<M: Registered> Validation<M> for FidValidation<'_> {
    fn metric(&self) -> String {
        format!("validation MNIST-FID ({} samples)", self.samples)
    }

    fn score(&mut self, model: &M, device: &Device) -> Result<f64> {
        let model = model
            .clone()
            .fit_after_training(self.train, self.seed, device)?;
        let judged = self
            .judge
            .judge_in_batches(self.samples, SAMPLE_BATCH, |start, n| {
                model.sample(n, self.seed.wrapping_add(start as u64))
            })?;
        Ok(SampleQuality::measure_against(&judged, &self.reference)?.fid)
    }
}

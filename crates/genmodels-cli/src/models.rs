//! The CLI's view of the model registry: model names as clap values, and how `samples.png` and
//! `genmodels sample` draw. Everything else the CLI knows about a model comes from
//! [`genmodels::registry`].

use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;
use genmodels::SamplingMethod;
use genmodels::burn::tensor::Tensor;
use genmodels::registry::{self, Entry, Registered};
use genmodels::{GenError, Result};

use crate::BinarizeMode;

/// A model name on the command line: an entry of the registry.
#[derive(Debug, Clone, Copy)]
pub struct ModelName(pub &'static Entry);

impl ModelName {
    /// The name on the command line and in `metrics.json`.
    pub fn name(self) -> &'static str {
        self.0.name
    }
}

impl ValueEnum for ModelName {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<ModelName>> =
            LazyLock::new(|| registry::ENTRIES.iter().map(ModelName).collect());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name).help(self.0.about))
    }
}

/// How `samples.png` and `genmodels sample` draw images.
#[derive(Debug, Clone, Copy, Default)]
pub struct SampleOptions {
    /// For a VAE: pixels drawn from `p(x|z)` instead of the mean image.
    pub pixel_draws: bool,
    /// For a model with a choice of sampler: the sampler (default cached).
    pub method: Option<SamplingMethod>,
}

/// The sampler `options` ask for, with the default filled in; `None` for a model with one
/// sampler.
///
/// # Errors
/// A `--method` for a model that has one sampler.
pub fn sampling_method<M: Registered>(options: &SampleOptions) -> Result<Option<SamplingMethod>> {
    match (M::CAPABILITIES.sample_with.is_some(), options.method) {
        (true, method) => Ok(Some(method.unwrap_or(SamplingMethod::Cached))),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(GenError::InvalidConfig(format!(
            "--method applies to autoregressive models, not the {}",
            M::LABEL
        ))),
    }
}

/// Images for `samples.png` and `genmodels sample`: the chosen sampler's, pixel draws when
/// asked for, or the model's preview (a VAE's mean images).
///
/// # Errors
/// As the sampler.
pub fn preview_samples<M: Registered>(
    model: &M,
    n: usize,
    seed: u64,
    options: &SampleOptions,
) -> Result<Tensor<4>> {
    match (M::CAPABILITIES.sample_with, sampling_method::<M>(options)?) {
        (Some(sample_with), Some(method)) => sample_with(model, n, seed, method),
        _ if options.pixel_draws => model.sample(n, seed),
        _ => model.preview(n, seed),
    }
}

/// The binarisation a configuration's observation model expects.
pub fn default_binarize<M: Registered>(config: &M::Config) -> BinarizeMode {
    match M::pixels(config) {
        registry::Pixels::Binary => BinarizeMode::Dynamic,
        registry::Pixels::Grey => BinarizeMode::None,
    }
}

/// Why `config` cannot be trained on data presented with `binarize`, if it cannot.
pub fn data_mismatch<M: Registered>(config: &M::Config, binarize: BinarizeMode) -> Option<String> {
    (binarize == BinarizeMode::None && M::needs_binary(config)).then(|| {
        format!(
            "{} needs binary pixels: choose --binarize dynamic, stochastic or threshold, or {}",
            M::BINARY_MODEL,
            M::GREY_LEVEL_HINT
        )
    })
}

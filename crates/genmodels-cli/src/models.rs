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

use crate::{BinarizeMode, MethodArg, SamplerArgs};

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
    /// For a model with a choice of sampler: the sampler (default: the model's own,
    /// [`Registered::default_method`]) and DDIM's settings.
    pub sampler: SamplerArgs,
}

/// Refuses, before any work is done, a `--method` for a model with one sampler and DDIM's
/// settings without DDIM.
///
/// # Errors
/// As said.
pub fn check_method<M: Registered>(options: &SampleOptions) -> Result<()> {
    let sampler = &options.sampler;
    if (sampler.steps.is_some() || sampler.eta.is_some()) && sampler.method != Some(MethodArg::Ddim)
    {
        return Err(GenError::InvalidConfig(
            "--steps and --eta apply to --method ddim".into(),
        ));
    }
    match (M::CAPABILITIES.sample_with.is_some(), sampler.method) {
        (false, Some(_)) => Err(GenError::InvalidConfig(format!(
            "--method applies to the autoregressive and diffusion models, not the {}",
            M::LABEL
        ))),
        _ => Ok(()),
    }
}

/// The sampler `options` ask for, with `model`'s defaults filled in (its own sampler; for
/// `--method ddim`, the steps of its default DDIM, or 50, and η = 0); `None` for a model with
/// one sampler.
///
/// # Errors
/// As [`check_method`].
pub fn sampling_method<M: Registered>(
    model: &M,
    options: &SampleOptions,
) -> Result<Option<SamplingMethod>> {
    check_method::<M>(options)?;
    if M::CAPABILITIES.sample_with.is_none() {
        return Ok(None);
    }
    let own = model.default_method();
    let sampler = &options.sampler;
    Ok(Some(match sampler.method {
        None => own,
        Some(MethodArg::Naive) => SamplingMethod::Naive,
        Some(MethodArg::Cached) => SamplingMethod::Cached,
        Some(MethodArg::Ancestral) => SamplingMethod::Ancestral,
        Some(MethodArg::Ddim) => SamplingMethod::Ddim {
            steps: sampler.steps.unwrap_or(match own {
                SamplingMethod::Ddim { steps, .. } => steps,
                _ => DDIM_STEPS,
            }),
            eta: sampler.eta.unwrap_or(0.0),
        },
    }))
}

/// DDIM's steps for a model whose own sampler is not DDIM (which then refuses it).
const DDIM_STEPS: usize = 50;

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
    match (
        M::CAPABILITIES.sample_with,
        sampling_method(model, options)?,
    ) {
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

//! Evaluating a model over a whole data set: mean loss and log-likelihood.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::batch::ImageDataset;
use crate::error::{GenError, Result};
use crate::likelihood::{LikelihoodOptions, LogLikelihood};
use crate::model::{GenerativeModel, Trainable};
use crate::progress::Progress;
use genmodels_kernels::on_compute_threads;

/// The mean loss over a data set, with its named components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSummary {
    /// Mean of the training objective per example.
    pub mean: f64,
    /// Means of the named components, e.g. `("reconstruction", 93.1)`.
    pub components: Vec<(String, f64)>,
}

/// The `[start, end)` ranges of consecutive batches over `len` examples.
fn batch_ranges(len: usize, batch_size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let batch_size = batch_size.max(1);
    (0..len.div_ceil(batch_size)).map(move |b| b * batch_size..((b + 1) * batch_size).min(len))
}

fn require_data(data: &dyn ImageDataset, context: &str) -> Result<()> {
    if data.is_empty() {
        return Err(GenError::EmptyData {
            context: context.into(),
        });
    }
    Ok(())
}

/// Per-example log-likelihoods of every image in `data` (as presented in epoch 0), in order.
///
/// Batch `b` uses the estimator seed `options.seed + b`, so a run is reproducible.
///
/// # Errors
/// [`GenError::EmptyData`] for an empty set, and whatever the model's
/// [`GenerativeModel::log_likelihood`] returns.
pub fn evaluate_log_likelihood<M: GenerativeModel>(
    model: &M,
    data: &dyn ImageDataset,
    options: &LikelihoodOptions,
    batch_size: usize,
    device: &Device,
) -> Result<LogLikelihood> {
    require_data(data, "log-likelihood evaluation")?;
    let (model, options) = (model.clone(), *options);
    on_compute_threads(device, move || {
        let progress = Progress::count(data.len() as u64, "log-likelihood", "images");
        let mut total: Option<LogLikelihood> = None;
        for (b, range) in batch_ranges(data.len(), batch_size).enumerate() {
            let indices: Vec<usize> = range.collect();
            let batch = data.batch(&indices, 0, device)?;
            let batch_options = options.with_seed(options.seed.wrapping_add(b as u64));
            let ll = model.compute_log_likelihood(&batch, &batch_options)?;
            match &mut total {
                Some(t) => t.extend(ll),
                None => total = Some(ll),
            }
            progress.advance(indices.len() as u64);
        }
        progress.finish();
        Ok(total.expect("a non-empty data set gives at least one batch"))
    })
}

/// The mean loss of `model` over `data` (as presented in epoch 0): for a one-player model its
/// objective and components; for several players (a GAN), the first player's objective as
/// the mean and every player's objective as a component `<player>_loss`, each followed by
/// that player's components, as the trainer names them per epoch.
///
/// A loss that draws noise (a VAE's ε, a GAN's z) draws it from `device`'s generator, seeded
/// here with `seed`: the same seed gives the same figures.
///
/// # Errors
/// [`GenError::EmptyData`] for an empty set, and whatever [`Trainable::loss`] returns.
pub fn evaluate_loss<M: Trainable>(
    model: &M,
    data: &dyn ImageDataset,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<LossSummary> {
    require_data(data, "loss evaluation")?;
    let model = model.clone();
    device.seed(seed);
    on_compute_threads(device, move || {
        let players = model.players();
        let mut mean = 0.0;
        let mut components: Vec<(String, f64)> = Vec::new();
        for range in batch_ranges(data.len(), batch_size) {
            let indices: Vec<usize> = range.collect();
            let weight = indices.len() as f64 / data.len() as f64;
            let batch = data.batch(&indices, 0, device)?;
            let mut named = Vec::new();
            for (p, player) in players.iter().enumerate() {
                let loss = model.loss(p, &batch)?;
                let objective = weight * scalar(loss.objective)?;
                if p == 0 {
                    mean += objective;
                }
                if players.len() > 1 {
                    named.push((format!("{}_loss", player.name), objective));
                }
                for (name, value) in loss.components {
                    named.push((name.to_string(), weight * scalar(value)?));
                }
            }
            for (i, (name, value)) in named.into_iter().enumerate() {
                match components.get_mut(i) {
                    Some((_, acc)) => *acc += value,
                    None => components.push((name, value)),
                }
            }
        }
        Ok(LossSummary { mean, components })
    })
}

/// Reads a one-element tensor back as `f64`.
///
/// # Errors
/// [`GenError::Backend`] when the device cannot return it.
pub fn scalar(tensor: burn::tensor::Tensor<1>) -> Result<f64> {
    tensor
        .try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| GenError::Backend(format!("reading a scalar back: {e:?}")))
}

//! Expectation-maximisation for [`Mixture`]s, batched over the whole data set.
//!
//! Each iteration, with `r_nk = p(k | x_n)` the responsibilities under the current parameters
//! (E-step: a softmax over `k` of the `[N, K]` log-joint) and `N_k = Σ_n r_nk`, sets (M-step)
//!
//! ```text
//! π_k   = N_k / N
//! μ_k   = Σ_n r_nk x_n / N_k                               (Bernoulli: clamped to [ε, 1 − ε])
//! σ²_kd = max(Σ_n r_nk (x_nd − μ_kd)² / N_k, min_variance)  (Gaussian)
//! ```
//!
//! Every sum over `n` is one matrix product `rᵀ·x` (or `rᵀ·x²`), so an iteration on
//! 8,000 × 784 images with `K = 100` is a handful of `[N, D] × [D, K]` products.
//!
//! **Monotonicity.** EM never decreases the log-likelihood because the M-step maximises the
//! expected complete-data log-likelihood `Σ_nk r_nk [log π_k + log p(x_n | k)]`. The floors keep
//! this true: per coordinate that objective is concave in `μ_kd` (Bernoulli) and unimodal in
//! `σ²_kd` (Gaussian, for fixed `μ_kd`, whose maximiser does not depend on `σ²_kd`), so the
//! maximiser over `[ε, 1 − ε]` or `[min_variance, ∞)` is the unconstrained one clamped into the
//! interval — the update above is still the exact constrained maximiser.
//!
//! **Empty components.** A component whose mass `N_k` falls below `10⁻⁶` examples keeps its
//! previous parameters (any value maximises a term with zero weight), and every weight is
//! floored at `10⁻¹⁰` before renormalising so `log π_k` stays finite. The floor moves the
//! likelihood by at most about `K·10⁻¹⁰` nats per example; components are never re-seeded,
//! which would break monotonicity.
//!
//! **Initialisation**, reproducible from the seed: `K` distinct examples chosen by k-means++
//! `D²` seeding (the first uniformly, each next with probability proportional to its squared
//! distance to the nearest chosen one). Bernoulli means are `½·chosen + ½·data mean`, clamped;
//! Gaussian means are the chosen examples, every variance the data's per-dimension variance
//! (floored); weights are uniform.
//!
//! For the Gaussian mixture, EM fits the continuous Gaussians to the values `v/255` (the
//! discretized model that is then evaluated has no closed-form M-step; see the crate docs),
//! and runs on data centred by its mean (the log-likelihood does not change under a shift),
//! which keeps the expanded squared distances well-conditioned in f32.

use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::distributions::log_sum_exp;
use genmodels_core::progress::Progress;
use genmodels_core::{GenError, ImageDataset, Result, batch::to_host, random};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{ComponentLikelihood, Components, Mixture, MixtureConfig, check_points};

/// Components with less mass than this (in examples) keep their previous parameters.
const MIN_COMPONENT_MASS: f64 = 1e-6;
/// Floor of each mixture weight before renormalisation.
const MIN_WEIGHT: f64 = 1e-10;
/// Examples per batch when loading a data set onto the device.
const LOAD_CHUNK: usize = 1000;

/// Options of an EM fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmOptions {
    /// At most this many EM iterations.
    pub max_iterations: usize,
    /// Stop once the mean training log-likelihood changes by at most
    /// `tolerance · |previous value|` in one iteration.
    pub tolerance: f64,
    /// Seed of the initialisation.
    pub seed: u64,
    /// Show a progress bar with the iteration and the training log-likelihood.
    pub progress: bool,
}

impl Default for EmOptions {
    /// 100 iterations, relative tolerance `10⁻⁶`, seed 0, no progress bar.
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance: 1e-6,
            seed: 0,
            progress: false,
        }
    }
}

/// What an EM fit did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmReport {
    /// Mean training log-likelihood in nats per example, after initialisation (entry 0) and
    /// after each iteration: EM's objective, which for a Gaussian mixture is the continuous
    /// Gaussians' log-density of the values `v/255`, not the discretized model's
    /// log-probability that [`GenerativeModel::log_likelihood`](genmodels_core::GenerativeModel::log_likelihood)
    /// reports (see the crate docs).
    pub log_likelihood_per_iteration: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was met before `max_iterations`.
    pub converged: bool,
    /// Wall-clock seconds of the fit (initialisation and iterations, not data loading).
    pub seconds: f64,
}

impl EmReport {
    /// The mean training log-likelihood of the fitted model.
    pub fn final_log_likelihood(&self) -> f64 {
        *self
            .log_likelihood_per_iteration
            .last()
            .expect("a report holds at least the initial value")
    }
}

/// Fits a mixture of `config` to `data` by EM, on the images as presented in epoch 0 (so a
/// dynamically binarised set is binarised once), loaded onto `device` once.
///
/// # Errors
/// [`GenError::InvalidConfig`] for an invalid config or `K > N`; [`GenError::EmptyData`] for
/// an empty set; [`GenError::ShapeMismatch`] when the images are not the config's shape;
/// [`GenError::ValueOutOfRange`] for grey levels given to a Bernoulli mixture;
/// [`GenError::Diverged`] (the step is the EM iteration) if the log-likelihood becomes NaN.
pub fn fit_em(
    config: &MixtureConfig,
    data: &dyn ImageDataset,
    options: &EmOptions,
    device: &Device,
) -> Result<(Mixture, EmReport)> {
    config.validate()?;
    if data.is_empty() {
        return Err(GenError::EmptyData {
            context: "mixture EM training data".into(),
        });
    }
    if data.image_shape() != config.image_shape {
        return Err(GenError::ShapeMismatch {
            context: "mixture EM training images (C×H×W)".into(),
            expected: config.image_shape.to_string(),
            actual: data.image_shape().to_string(),
        });
    }
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut parts = Vec::with_capacity(indices.len().div_ceil(LOAD_CHUNK));
    for chunk in indices.chunks(LOAD_CHUNK) {
        let batch = data.batch(chunk, 0, device)?;
        batch.require_shape(config.image_shape, "mixture")?;
        if config.likelihood == ComponentLikelihood::Bernoulli {
            batch.require_binary("Bernoulli mixture")?;
        }
        parts.push(batch.flat_images());
    }
    run_em(config, Tensor::cat(parts, 0), options)
}

/// Fits a mixture of `config` to raw points `[N, D]` by EM (synthetic data, or data that is
/// not images).
///
/// # Errors
/// As [`fit_em`], and [`GenError::NonFiniteInput`] for NaN or ±∞ points.
pub fn fit_em_points(
    config: &MixtureConfig,
    points: Tensor<2>,
    options: &EmOptions,
) -> Result<(Mixture, EmReport)> {
    config.validate()?;
    check_points(config, &points, "mixture EM training data")?;
    run_em(config, points, options)
}

/// The EM state: log-weights `[K]` and components, in the (possibly centred) coordinates of
/// the data EM runs on.
struct State {
    log_weights: Tensor<1>,
    components: Components,
}

/// The data EM runs on, with `x²` kept for the Gaussian.
struct Data {
    x: Tensor<2>,
    x_sq: Option<Tensor<2>>,
}

fn run_em(
    config: &MixtureConfig,
    x: Tensor<2>,
    options: &EmOptions,
) -> Result<(Mixture, EmReport)> {
    let [n, _] = x.dims();
    let k = config.components;
    if k > n {
        return Err(GenError::InvalidConfig(format!(
            "{k} components cannot be fitted to {n} examples (K must not exceed N)"
        )));
    }
    let start = Instant::now();
    let gaussian = config.likelihood == ComponentLikelihood::DiagonalGaussian;
    // Centre Gaussian data: a shift changes no likelihood, and keeps x² small in f32.
    let offset = gaussian.then(|| x.clone().mean_dim(0));
    let x = match &offset {
        Some(offset) => x - offset.clone(),
        None => x,
    };
    let data = Data {
        x_sq: gaussian.then(|| x.clone().powi_scalar(2)),
        x,
    };

    let mut state = initialise(config, &data.x, options.seed)?;
    let bar = options
        .progress
        .then(|| Progress::count(options.max_iterations as u64, "EM", "it"));
    let (mut log_likelihood, mut responsibilities) = e_step(&state, &data)?;
    let mut history = vec![log_likelihood];
    require_finite(log_likelihood, 0)?;
    let mut converged = false;
    let mut iterations = 0;
    for iteration in 1..=options.max_iterations {
        state = m_step(config, state, &data, responsibilities);
        let previous = log_likelihood;
        (log_likelihood, responsibilities) = e_step(&state, &data)?;
        require_finite(log_likelihood, iteration)?;
        history.push(log_likelihood);
        iterations = iteration;
        if let Some(bar) = &bar {
            bar.set_message(|| format!("train LL {log_likelihood:.4} nats"));
            bar.advance(1);
        }
        if (log_likelihood - previous).abs() <= options.tolerance * previous.abs() {
            converged = true;
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }

    let components = match (state.components, offset) {
        (
            Components::Gaussian {
                means,
                log_variances,
            },
            Some(offset),
        ) => Components::Gaussian {
            means: means + offset,
            log_variances,
        },
        (components, _) => components,
    };
    let model = Mixture::from_fitted(config, state.log_weights, components);
    let report = EmReport {
        log_likelihood_per_iteration: history,
        iterations,
        converged,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

fn require_finite(log_likelihood: f64, iteration: usize) -> Result<()> {
    if log_likelihood.is_finite() {
        Ok(())
    } else {
        Err(GenError::Diverged {
            step: iteration,
            epoch: iteration,
            loss: -log_likelihood,
            last_checkpoint: None,
        })
    }
}

/// The mean log-likelihood of the data (summed in f64 on the host) and the responsibilities
/// `[N, K]` under `state`.
fn e_step(state: &State, data: &Data) -> Result<(f64, Tensor<2>)> {
    let [n, _] = data.x.dims();
    let k = state.log_weights.dims()[0];
    let log_joint = state
        .components
        .log_likelihoods(data.x.clone(), data.x_sq.clone())
        + state.log_weights.clone().reshape([1, k]);
    let per_example = to_host(log_sum_exp(log_joint.clone(), 1))?;
    let mean = per_example.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    Ok((mean, softmax(log_joint, 1)))
}

/// The closed-form M-step (see the module docs).
fn m_step(config: &MixtureConfig, state: State, data: &Data, responsibilities: Tensor<2>) -> State {
    let [n, d] = data.x.dims();
    let k = config.components;
    let mass = responsibilities.clone().sum_dim(0).reshape([k, 1]);
    let weights = (mass.clone().reshape([k]) / n as f64).clamp_min(MIN_WEIGHT);
    let log_weights = (weights.clone() / weights.sum()).log();
    // Components without mass keep their parameters; the others divide by at least the floor.
    let empty = mass.clone().lower_elem(MIN_COMPONENT_MASS).expand([k, d]);
    let mass = mass.clamp_min(MIN_COMPONENT_MASS);
    let resp_t = responsibilities.transpose();
    let means = resp_t.clone().matmul(data.x.clone()) / mass.clone();

    let components = match state.components {
        Components::Bernoulli { logits } => {
            let eps = config.min_probability;
            let p = means.clamp(eps, 1.0 - eps);
            let new_logits = p.clone().log() - p.neg().log1p();
            Components::Bernoulli {
                logits: new_logits.mask_where(empty, logits),
            }
        }
        Components::Gaussian {
            means: old_means,
            log_variances: old_log_variances,
        } => {
            let x_sq = data.x_sq.clone().expect("Gaussian EM keeps x²");
            let second_moment = resp_t.matmul(x_sq) / mass;
            let variances =
                (second_moment - means.clone().powi_scalar(2)).clamp_min(config.min_variance);
            Components::Gaussian {
                means: means.mask_where(empty.clone(), old_means),
                log_variances: variances.log().mask_where(empty, old_log_variances),
            }
        }
    };
    State {
        log_weights,
        components,
    }
}

/// k-means++ `D²` seeding of the components and uniform weights (see the module docs).
fn initialise(config: &MixtureConfig, x: &Tensor<2>, seed: u64) -> Result<State> {
    let [n, d] = x.dims();
    let k = config.components;
    let device = x.device();
    let mut rng = random::rng(seed);
    let squared_distances = |i: usize| -> Result<Vec<f32>> {
        let row = x.clone().slice([i..i + 1, 0..d]);
        to_host((x.clone() - row).powi_scalar(2).sum_dim(1))
    };

    let first = rng.random_range(0..n);
    let mut chosen = vec![first];
    let mut nearest = squared_distances(first)?;
    while chosen.len() < k {
        let total: f64 = nearest.iter().map(|&v| f64::from(v.max(0.0))).sum();
        let next = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut cumulative = 0.0;
            let mut pick = None;
            for (i, &v) in nearest.iter().enumerate() {
                cumulative += f64::from(v.max(0.0));
                if v > 0.0 && target < cumulative {
                    pick = Some(i);
                    break;
                }
            }
            // Rounding can leave the target past the last positive entry: take that entry.
            pick.unwrap_or_else(|| nearest.iter().rposition(|&v| v > 0.0).unwrap_or(0))
        } else {
            // Every example coincides with a chosen one: take any example not yet chosen.
            let unchosen: Vec<usize> = (0..n).filter(|i| !chosen.contains(i)).collect();
            unchosen[rng.random_range(0..unchosen.len())]
        };
        chosen.push(next);
        for (v, new) in nearest.iter_mut().zip(squared_distances(next)?) {
            *v = v.min(new);
        }
    }

    let chosen: Vec<i64> = chosen.into_iter().map(|i| i as i64).collect();
    let centres = x.clone().select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(chosen, [k]), &device),
    );
    let data_mean = x.clone().mean_dim(0);
    let components = match config.likelihood {
        ComponentLikelihood::Bernoulli => {
            let eps = config.min_probability;
            let p = (centres * 0.5 + data_mean * 0.5).clamp(eps, 1.0 - eps);
            Components::Bernoulli {
                logits: p.clone().log() - p.neg().log1p(),
            }
        }
        ComponentLikelihood::DiagonalGaussian => {
            let variance = (x.clone() - data_mean)
                .powi_scalar(2)
                .mean_dim(0)
                .clamp_min(config.min_variance);
            Components::Gaussian {
                means: centres,
                log_variances: variance.log().expand([k, d]),
            }
        }
    };
    Ok(State {
        log_weights: Tensor::full([k], -(k as f64).ln(), &device),
        components,
    })
}

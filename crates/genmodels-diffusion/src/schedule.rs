//! The forward (noising) process `q(x_t|x_{t−1})`: its variance schedule and every quantity
//! derived from it, in f64.

use burn::config::Config;
use genmodels_core::{GenError, Result};

/// How the noise variances `β_1, …, β_T` of the forward process grow with `t`.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum NoiseSchedule {
    /// `β_t` evenly spaced from `beta_start` (at `t = 1`) to `beta_end` (at `t = T`), as in
    /// Ho et al. (2020), who use `10⁻⁴` to `0.02` with `T = 1000`.
    Linear {
        /// `β_1`.
        beta_start: f64,
        /// `β_T`.
        beta_end: f64,
    },
    /// The cosine schedule of Nichol & Dhariwal (2021):
    /// `ᾱ_t = f(t)/f(0)`, `f(t) = cos²(π/2 · (t/T + s)/(1 + s))`, with
    /// `β_t = min(1 − ᾱ_t/ᾱ_{t−1}, 0.999)` (and `ᾱ_t` recomputed from the clipped `β_t`).
    /// They use `s = 0.008`.
    Cosine {
        /// The small offset `s` that keeps `β_1` from vanishing.
        offset: f64,
    },
}

impl NoiseSchedule {
    /// Ho et al. (2020)'s linear schedule, `β` from `10⁻⁴` to `0.02`.
    pub const HO: Self = Self::Linear {
        beta_start: 1e-4,
        beta_end: 0.02,
    };

    /// Nichol & Dhariwal (2021)'s cosine schedule, `s = 0.008`.
    pub const COSINE: Self = Self::Cosine { offset: 0.008 };
}

/// The largest `β_t` the cosine schedule allows: near `t = T` the ratio `ᾱ_t/ᾱ_{t−1}`
/// tends to 0, and `β_t = 1` would make the reverse process singular.
pub const MAX_COSINE_BETA: f64 = 0.999;

/// Which variance the reverse process `p_θ(x_{t−1}|x_t) = N(μ_θ(x_t, t), σ_t² I)` uses. Ho et
/// al. (2020) found both to give similar samples: `β_t` is optimal for `x_0 ~ N(0, I)`,
/// `β̃_t` for a deterministic `x_0`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ReverseVariance {
    /// `σ_t² = β_t` ("fixed large").
    Beta,
    /// `σ_t² = β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)`, the forward posterior's variance ("fixed
    /// small"); at `t = 1`, where `β̃_1 = 0`, it is `β̃_2` (as in Ho et al.'s code), so that the
    /// decoder `p(x_0|x_1)` has a positive variance.
    PosteriorVariance,
}

/// The precomputed forward process of a [`NoiseSchedule`] with `T` steps, in f64.
///
/// With `α_t = 1 − β_t` and `ᾱ_t = Π_{s≤t} α_s` (`ᾱ_0 = 1`):
///
/// ```text
/// q(x_t | x_0)        = N(√ᾱ_t x_0, (1 − ᾱ_t) I),
/// q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I),
///     μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t,
///     β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t).
/// ```
///
/// Steps are numbered `1..=T`; every accessor takes such a `t` (and `ᾱ` also `t = 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `β_t` at index `t`; index 0 holds 0.
    betas: Vec<f64>,
    /// `ᾱ_t` at index `t`; index 0 holds 1.
    alpha_bars: Vec<f64>,
}

impl Schedule {
    /// The schedule of `schedule` with `timesteps` steps.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `T = 0`, a linear schedule with a `β` outside `(0, 1)`
    /// or a cosine offset that is negative or not finite.
    pub fn new(schedule: NoiseSchedule, timesteps: usize) -> Result<Self> {
        if timesteps == 0 {
            return Err(GenError::InvalidConfig(
                "a diffusion needs at least one timestep (T ≥ 1)".into(),
            ));
        }
        let t_max = timesteps as f64;
        let betas: Vec<f64> = match schedule {
            NoiseSchedule::Linear {
                beta_start,
                beta_end,
            } => {
                for (name, beta) in [("beta_start", beta_start), ("beta_end", beta_end)] {
                    if !(beta > 0.0 && beta < 1.0) {
                        return Err(GenError::InvalidConfig(format!(
                            "{name} must lie in (0, 1), got {beta}"
                        )));
                    }
                }
                (0..timesteps)
                    .map(|i| {
                        if timesteps == 1 {
                            beta_start
                        } else {
                            beta_start + (beta_end - beta_start) * i as f64 / (t_max - 1.0)
                        }
                    })
                    .collect()
            }
            NoiseSchedule::Cosine { offset } => {
                if !(offset.is_finite() && offset >= 0.0) {
                    return Err(GenError::InvalidConfig(format!(
                        "the cosine schedule's offset must be finite and non-negative, got \
                         {offset}"
                    )));
                }
                let f = |t: f64| {
                    ((t / t_max + offset) / (1.0 + offset) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (1..=timesteps)
                    .map(|t| (1.0 - f(t as f64) / f(t as f64 - 1.0)).clamp(0.0, MAX_COSINE_BETA))
                    .collect()
            }
        };
        if let Some(bad) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
            return Err(GenError::InvalidConfig(format!(
                "every β_t must lie in (0, 1), the schedule gives {bad}"
            )));
        }
        let mut alpha_bars = Vec::with_capacity(timesteps + 1);
        alpha_bars.push(1.0);
        for beta in &betas {
            let last = *alpha_bars.last().expect("ᾱ_0 is there");
            alpha_bars.push(last * (1.0 - beta));
        }
        let mut with_zero = Vec::with_capacity(timesteps + 1);
        with_zero.push(0.0);
        with_zero.extend(betas);
        Ok(Self {
            betas: with_zero,
            alpha_bars,
        })
    }

    /// The number of steps `T`.
    pub fn timesteps(&self) -> usize {
        self.betas.len() - 1
    }

    /// `β_t`, `1 ≤ t ≤ T`.
    pub fn beta(&self, t: usize) -> f64 {
        debug_assert!(t >= 1);
        self.betas[t]
    }

    /// `α_t = 1 − β_t`, `1 ≤ t ≤ T`.
    pub fn alpha(&self, t: usize) -> f64 {
        1.0 - self.beta(t)
    }

    /// `ᾱ_t = Π_{s≤t} α_s`, `0 ≤ t ≤ T` (`ᾱ_0 = 1`).
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bars[t]
    }

    /// The posterior variance `β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)`, `1 ≤ t ≤ T` (0 at `t = 1`).
    pub fn posterior_variance(&self, t: usize) -> f64 {
        self.beta(t) * (1.0 - self.alpha_bar(t - 1)) / (1.0 - self.alpha_bar(t))
    }

    /// The coefficients `(c₀, c_t)` of the posterior mean `μ̃_t = c₀ x_0 + c_t x_t`:
    /// `c₀ = √ᾱ_{t−1} β_t/(1 − ᾱ_t)`, `c_t = √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)`.
    pub fn posterior_mean_coefficients(&self, t: usize) -> (f64, f64) {
        let denominator = 1.0 - self.alpha_bar(t);
        (
            self.alpha_bar(t - 1).sqrt() * self.beta(t) / denominator,
            self.alpha(t).sqrt() * (1.0 - self.alpha_bar(t - 1)) / denominator,
        )
    }

    /// The reverse process's variance `σ_t²` at step `t` (see [`ReverseVariance`]).
    pub fn reverse_variance(&self, t: usize, choice: ReverseVariance) -> f64 {
        match choice {
            ReverseVariance::Beta => self.beta(t),
            ReverseVariance::PosteriorVariance => {
                if t == 1 {
                    if self.timesteps() >= 2 {
                        self.posterior_variance(2)
                    } else {
                        self.beta(1)
                    }
                } else {
                    self.posterior_variance(t)
                }
            }
        }
    }
}

//! Typed log-likelihood results: what kind of number, per example, in nats and bits/dim.

use serde::{Deserialize, Serialize};
use std::f64::consts::LN_2;

/// What kind of number a log-likelihood is.
///
/// An exact value and a bound are not the same quantity and must not be compared as if they
/// were; every [`LogLikelihood`] carries its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LikelihoodKind {
    /// `log p(x)` itself (autoregressive models, mixtures).
    Exact,
    /// The evidence lower bound `E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) ≤ log p(x)`.
    Elbo,
    /// The importance-weighted bound of Burda et al. (2015) with `k` samples:
    /// `E[log (1/k) Σ p(x, zᵢ)/q(zᵢ|x)]`, which rises to `log p(x)` as `k → ∞`.
    ImportanceWeighted {
        /// The number of importance samples.
        k: usize,
    },
    /// A Parzen-window (Gaussian kernel density) estimate of `log p(x)` from the model's own
    /// samples, as in Goodfellow et al. (2014); see `genmodels_eval::parzen`. Neither a bound nor
    /// consistent in practice: Theis et al. (2016) show it can be far from the true
    /// log-likelihood and rank models wrongly, so it must not be compared with the other kinds.
    ParzenEstimate,
}

impl LikelihoodKind {
    /// The short name used in metrics files: `exact`, `elbo`, `iwae` or `parzen`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Elbo => "elbo",
            Self::ImportanceWeighted { .. } => "iwae",
            Self::ParzenEstimate => "parzen",
        }
    }

    /// The number of importance samples, for the importance-weighted kind.
    pub fn iwae_k(&self) -> Option<usize> {
        match self {
            Self::ImportanceWeighted { k } => Some(*k),
            _ => None,
        }
    }
}

impl std::fmt::Display for LikelihoodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact => write!(f, "exact"),
            Self::Elbo => write!(f, "ELBO"),
            Self::ImportanceWeighted { k } => write!(f, "IWAE k={k}"),
            Self::ParzenEstimate => write!(f, "Parzen estimate"),
        }
    }
}

/// How the density relates to the 8-bit data it models, which decides the bits/dim formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DensityScale {
    /// A probability mass function over the data's discrete values (binary pixels, or 8-bit
    /// grey levels through 256-way softmaxes or discretized Gaussians): bits/dim =
    /// −log₂ p(x) / D. Every model's own likelihood in genmodels is of this kind, so they
    /// compare directly.
    Discrete,
    /// A density over pixels scaled to `[0, 1]` by 1/256 levels: bits/dim adds the 8 bits of
    /// the change of variables, −(log p(x) − D·ln 256) / (D·ln 2), as for dequantised data.
    /// Only density *estimates* use it (the Parzen windows of `genmodels_eval::parzen`, fitted
    /// to grey samples): it is not a probability of the 8-bit images, and not comparable with
    /// [`DensityScale::Discrete`] values.
    ContinuousUnitInterval,
}

/// Per-example log-likelihoods (or bounds) in nats, with their kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLikelihood {
    /// What kind of number this is.
    pub kind: LikelihoodKind,
    /// One `log p(x)` (or bound, or estimate) per example, in nats: negative numbers, higher
    /// is better. (Saved before 0.1 as `nats`, which still reads.)
    #[serde(alias = "nats")]
    pub log_likelihood_nats: Vec<f64>,
    /// Dimensions per example (C·H·W), for bits/dim.
    pub dims: usize,
    /// Whether the values are log-probabilities or log-densities.
    pub scale: DensityScale,
}

impl LogLikelihood {
    /// A result of `kind` over `nats`, for examples of `dims` dimensions.
    pub fn new(
        kind: LikelihoodKind,
        log_likelihood_nats: Vec<f64>,
        dims: usize,
        scale: DensityScale,
    ) -> Self {
        Self {
            kind,
            log_likelihood_nats,
            dims,
            scale,
        }
    }

    /// A result of `kind` from per-example values on a device (read back once).
    ///
    /// # Errors
    /// [`crate::GenError::Backend`] when the values cannot be read back.
    pub fn from_tensor(
        kind: LikelihoodKind,
        values: burn::tensor::Tensor<1>,
        dims: usize,
        scale: DensityScale,
    ) -> crate::Result<Self> {
        let nats = crate::batch::to_host(values)?
            .into_iter()
            .map(f64::from)
            .collect();
        Ok(Self::new(kind, nats, dims, scale))
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.log_likelihood_nats.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.log_likelihood_nats.is_empty()
    }

    /// Mean log-likelihood per example, in nats.
    pub fn mean_log_likelihood_nats(&self) -> f64 {
        self.log_likelihood_nats.iter().sum::<f64>() / self.log_likelihood_nats.len().max(1) as f64
    }

    /// Mean negative log-likelihood per example, in nats.
    pub fn mean_nll_nats(&self) -> f64 {
        -self.mean_log_likelihood_nats()
    }

    /// Standard error of the mean, in nats.
    pub fn standard_error_nats(&self) -> f64 {
        let n = self.log_likelihood_nats.len();
        if n < 2 {
            return f64::NAN;
        }
        let mean = self.mean_log_likelihood_nats();
        let var = self
            .log_likelihood_nats
            .iter()
            .map(|v| (v - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64;
        (var / n as f64).sqrt()
    }

    /// Mean negative log-likelihood in bits per dimension.
    pub fn nll_bits_per_dim(&self) -> f64 {
        nats_to_bits_per_dim(self.mean_log_likelihood_nats(), self.dims, self.scale)
    }

    /// Each example's negative log-likelihood in bits per dimension.
    pub fn per_example_nll_bits_per_dim(&self) -> Vec<f64> {
        self.log_likelihood_nats
            .iter()
            .map(|&v| nats_to_bits_per_dim(v, self.dims, self.scale))
            .collect()
    }

    /// Appends another result of the same kind (used to gather a data set batch by batch).
    ///
    /// # Panics
    /// If the two results differ in kind, dims or scale: that is a bug in the caller.
    pub fn extend(&mut self, other: LogLikelihood) {
        assert_eq!(self.kind, other.kind, "cannot mix likelihood kinds");
        assert_eq!(self.dims, other.dims, "cannot mix image sizes");
        assert_eq!(self.scale, other.scale, "cannot mix density scales");
        self.log_likelihood_nats.extend(other.log_likelihood_nats);
    }
}

/// Converts a log-likelihood in nats for one `dims`-dimensional example into bits/dim of NLL.
pub fn nats_to_bits_per_dim(log_likelihood_nats: f64, dims: usize, scale: DensityScale) -> f64 {
    let d = dims as f64;
    match scale {
        DensityScale::Discrete => -log_likelihood_nats / (d * LN_2),
        DensityScale::ContinuousUnitInterval => {
            -(log_likelihood_nats - d * 256f64.ln()) / (d * LN_2)
        }
    }
}

/// Options for likelihood estimation; models with exact likelihoods ignore them. The default
/// is the ELBO with seed 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikelihoodOptions {
    /// Importance samples per example for latent-variable models; `None` or `Some(1)` gives
    /// the ELBO.
    pub iwae_k: Option<usize>,
    /// Seed of the estimator's own random numbers, so estimates are reproducible.
    pub seed: u64,
}

impl LikelihoodOptions {
    /// Importance-weighted estimation with `k` samples.
    pub fn iwae(k: usize) -> Self {
        Self {
            iwae_k: Some(k),
            ..Self::default()
        }
    }

    /// The same options with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_are_in_the_names_and_results_saved_as_nats_still_read() {
        let ll = LogLikelihood::new(
            LikelihoodKind::Elbo,
            vec![-2.0, -4.0],
            1,
            DensityScale::Discrete,
        );
        assert_eq!(ll.mean_log_likelihood_nats(), -3.0);
        assert_eq!(ll.mean_nll_nats(), 3.0);
        assert!((ll.nll_bits_per_dim() - 3.0 / LN_2).abs() < 1e-12);
        let json = serde_json::to_string(&ll).unwrap();
        assert!(json.contains("\"log_likelihood_nats\""), "{json}");
        let old = json.replace("log_likelihood_nats", "nats");
        assert_eq!(serde_json::from_str::<LogLikelihood>(&old).unwrap(), ll);
    }

    #[test]
    fn bits_per_dim_of_a_fair_coin_per_pixel_is_one() {
        let dims = 784;
        let ll = LogLikelihood::new(
            LikelihoodKind::Exact,
            vec![-(dims as f64) * LN_2; 3],
            dims,
            DensityScale::Discrete,
        );
        assert!((ll.nll_bits_per_dim() - 1.0).abs() < 1e-12);
        assert!((ll.mean_nll_nats() - 784.0 * LN_2).abs() < 1e-9);
    }

    #[test]
    fn continuous_uniform_density_on_unit_interval_is_eight_bits() {
        // The uniform density on [0,1]^D has log p = 0; as 8-bit data that is 8 bits/dim.
        let ll = LogLikelihood::new(
            LikelihoodKind::Elbo,
            vec![0.0],
            10,
            DensityScale::ContinuousUnitInterval,
        );
        assert!((ll.nll_bits_per_dim() - 8.0).abs() < 1e-12);
    }

    #[test]
    fn standard_error_matches_hand_computation() {
        let ll = LogLikelihood::new(
            LikelihoodKind::Exact,
            vec![1.0, 2.0, 3.0, 4.0],
            1,
            DensityScale::Discrete,
        );
        // sample variance 5/3, n = 4
        assert!((ll.standard_error_nats() - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
    }
}

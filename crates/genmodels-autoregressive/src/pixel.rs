//! The distribution of one sub-pixel given its context: the output head of every
//! autoregressive model.

use burn::config::Config;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use genmodels_core::distributions::bernoulli_log_prob;
use genmodels_core::{GenError, ImageBatch, Result, batch::to_host};

/// How each sub-pixel is distributed given the pixels before it.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PixelDistribution {
    /// One Bernoulli logit per sub-pixel, for binary images.
    Bernoulli,
    /// A softmax over `levels` grey levels per sub-pixel (256 for 8-bit images); level `ℓ` is
    /// the pixel value `ℓ / (levels − 1)`.
    Categorical {
        /// Number of levels (at least 2).
        levels: usize,
    },
}

impl PixelDistribution {
    /// Logits the network outputs per sub-pixel.
    pub fn logits_per_channel(&self) -> usize {
        match self {
            Self::Bernoulli => 1,
            Self::Categorical { levels } => *levels,
        }
    }

    /// Checks the configuration can work.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for fewer than 2 levels.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Categorical { levels } if *levels < 2 => Err(GenError::InvalidConfig(format!(
                "a categorical pixel needs at least 2 levels, got {levels}"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the batch holds values this distribution puts mass on.
    ///
    /// # Errors
    /// [`GenError::ValueOutOfRange`] for a non-binary image under a Bernoulli head, or a value
    /// that is not one of the levels under a categorical head.
    pub fn check_values(&self, batch: &ImageBatch, model: &str) -> Result<()> {
        match self {
            Self::Bernoulli => batch.require_binary(model),
            Self::Categorical { levels } => {
                let scale = (*levels - 1) as f32;
                let off_level = to_host(batch.images().clone())?
                    .into_iter()
                    .find(|v| ((v * scale).round() - v * scale).abs() > 1e-3);
                match off_level {
                    Some(found) => Err(GenError::ValueOutOfRange {
                        context: format!("{model} ({levels}-level softmax)"),
                        expected: format!("multiples of 1/{}", levels - 1),
                        found,
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// `log p(x)` per image, summed over all sub-pixels.
    ///
    /// # Shapes
    /// - logits: `[N, C·K, H, W]`, the `K` logits of channel `c` at `c·K .. (c+1)·K`
    /// - images: `[N, C, H, W]` with values this distribution supports
    /// - output: `[N]`
    pub fn log_prob(&self, logits: Tensor<4>, images: Tensor<4>) -> Tensor<1> {
        let [n, c, h, w] = images.dims();
        match self {
            Self::Bernoulli => bernoulli_log_prob(
                logits.reshape([n, c * h * w]),
                images.reshape([n, c * h * w]),
            ),
            Self::Categorical { levels } => {
                let k = *levels;
                let log_p = log_softmax(logits.reshape([n, c, k, h, w]), 2);
                let level: Tensor<5, Int> = (images * (k - 1) as f64)
                    .round()
                    .int()
                    .reshape([n, c, 1, h, w]);
                log_p
                    .gather(2, level)
                    .reshape([n, c * h * w])
                    .sum_dim(1)
                    .squeeze_dim(1)
            }
        }
    }

    /// Draws one sub-pixel value from its `K` logits with the uniform number `u ∈ [0, 1)`,
    /// by inverting the CDF; computed in `f64` on the host so every sampler agrees.
    pub fn draw(&self, logits: &[f32], u: f64) -> f32 {
        match self {
            Self::Bernoulli => {
                let p = 1.0 / (1.0 + (-f64::from(logits[0])).exp());
                f32::from(u8::from(u < p))
            }
            Self::Categorical { levels } => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut cumulative = 0.0;
                let level = weights
                    .iter()
                    .position(|w| {
                        cumulative += w / total;
                        u < cumulative
                    })
                    .unwrap_or(levels - 1);
                level as f32 / (levels - 1) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_invert_the_cdf() {
        let bern = PixelDistribution::Bernoulli;
        // sigmoid(0) = 0.5
        assert_eq!(bern.draw(&[0.0], 0.49), 1.0);
        assert_eq!(bern.draw(&[0.0], 0.51), 0.0);
        let cat = PixelDistribution::Categorical { levels: 3 };
        let logits = [0.0f32, 0.0, (2.0f32).ln()]; // probabilities 1/4, 1/4, 1/2
        assert_eq!(cat.draw(&logits, 0.2), 0.0);
        assert_eq!(cat.draw(&logits, 0.3), 0.5);
        assert_eq!(cat.draw(&logits, 0.9), 1.0);
    }
}

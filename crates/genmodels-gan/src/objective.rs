//! The adversarial objectives: each gives the discriminator's and the generator's loss from
//! raw discriminator outputs, and its own training defaults.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use genmodels_core::distributions::softplus;
use genmodels_core::{GenError, OptimizerKind};
use serde::{Deserialize, Serialize};

/// The game the two players play.
///
/// On raw discriminator outputs `d` (logits for the probability objectives, scores
/// otherwise), with `d_r = D(x)` on data and `d_f = D(G(z))` on samples, and
/// `log σ(d) = −softplus(−d)`, `log(1 − σ(d)) = −softplus(d)`:
///
/// | objective        | discriminator loss `L_D`                        | generator loss `L_G`        |
/// |------------------|-------------------------------------------------|-----------------------------|
/// | `minimax`        | `E[softplus(−d_r)] + E[softplus(d_f)]`          | `−E[softplus(d_f)]` = `E[log(1 − σ(d_f))]` |
/// | `non_saturating` | same as minimax                                 | `E[softplus(−d_f)]` = `−E[log σ(d_f)]` |
/// | `lsgan`          | `½E[(d_r − 1)²] + ½E[d_f²]`                     | `½E[(d_f − 1)²]`            |
/// | `hinge`          | `E[relu(1 − d_r)] + E[relu(1 + d_f)]`           | `−E[d_f]`                   |
/// | `wasserstein`    | `E[d_f] − E[d_r]`                               | `−E[d_f]`                   |
///
/// Wasserstein keeps the critic (roughly) 1-Lipschitz by clipping its weights to `[−c, c]`
/// after every critic step (Arjovsky et al. 2017). The gradient penalty of WGAN-GP
/// (Gulrajani et al. 2017) needs the gradient of a loss that itself contains a gradient;
/// burn 0.22 has first-order autodiff only, so WGAN-GP cannot be expressed and is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanObjective {
    /// The original game (Goodfellow et al. 2014): `min_G max_D E[log D(x)] +
    /// E[log(1 − D(G(z)))]`. The generator's loss saturates when D rejects its samples
    /// confidently, which is why it is rarely used in practice.
    Minimax,
    /// The same discriminator, but the generator maximises `log D(G(z))` (Goodfellow et al.
    /// 2014, §3): strong gradients early in training.
    NonSaturating,
    /// Least-squares GAN (Mao et al. 2017) with targets `a = 0` (fake), `b = c = 1` (real).
    Lsgan,
    /// Hinge loss (Lim & Ye 2017; Miyato et al. 2018), with spectral normalisation of the
    /// discriminator by default.
    Hinge,
    /// Wasserstein GAN (Arjovsky et al. 2017) with weight clipping; the discriminator is a
    /// critic with unbounded scores.
    Wasserstein,
}

impl GanObjective {
    /// Every objective, in table order.
    pub const ALL: [Self; 5] = [
        Self::Minimax,
        Self::NonSaturating,
        Self::Lsgan,
        Self::Hinge,
        Self::Wasserstein,
    ];

    /// The command-line spelling (`non-saturating`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Minimax => "minimax",
            Self::NonSaturating => "non-saturating",
            Self::Lsgan => "lsgan",
            Self::Hinge => "hinge",
            Self::Wasserstein => "wasserstein",
        }
    }

    /// Whether `σ(d)` is the discriminator's probability that its input is real (minimax and
    /// non-saturating); the others output scores.
    pub fn is_probabilistic(&self) -> bool {
        matches!(self, Self::Minimax | Self::NonSaturating)
    }

    /// Discriminator steps per generator step: 5 for Wasserstein (the critic must be near
    /// optimal for its score to estimate the distance), 1 otherwise.
    pub fn default_critic_steps(&self) -> usize {
        match self {
            Self::Wasserstein => 5,
            _ => 1,
        }
    }

    /// Whether the discriminator is spectrally normalised by default (hinge only).
    pub fn default_spectral_norm(&self) -> bool {
        matches!(self, Self::Hinge)
    }

    /// The optimiser both players use: Adam with β₁ = 0.5, β₂ = 0.999 (Radford et al. 2015)
    /// for all but Wasserstein, which uses RMSProp (α = 0.99, no momentum), as momentum-based
    /// optimisers made clipped critics unstable (Arjovsky et al. 2017, §4).
    ///
    /// The learning rate to set on the trainer: [`recommended_learning_rate`](Self::recommended_learning_rate).
    pub fn default_optimizer(&self) -> OptimizerKind {
        match self {
            Self::Wasserstein => OptimizerKind::RmsProp { alpha: 0.99 },
            _ => OptimizerKind::Adam {
                beta_1: 0.5,
                beta_2: 0.999,
            },
        }
    }

    /// The learning rate that goes with [`default_optimizer`](Self::default_optimizer), the
    /// one every genmodels tool (`genmodels train`, `compare`, `bench`) trains at: Radford et
    /// al.'s 2e-4 for Adam, Arjovsky et al.'s 5e-5 for RMSProp (Wasserstein).
    pub fn recommended_learning_rate(&self) -> f64 {
        match self {
            Self::Wasserstein => 5e-5,
            _ => 2e-4,
        }
    }

    /// The discriminator's loss `L_D` (see the table on [`GanObjective`]).
    ///
    /// # Shapes
    /// - d_real: `[N]`, d_fake: `[M]` (raw outputs)
    /// - output: `[1]`
    pub fn discriminator_loss(&self, d_real: Tensor<1>, d_fake: Tensor<1>) -> Tensor<1> {
        discriminator_loss(*self, d_real, d_fake)
    }

    /// The generator's loss `L_G` (see the table on [`GanObjective`]).
    ///
    /// # Shapes
    /// - d_fake: `[M]` (raw outputs)
    /// - output: `[1]`
    pub fn generator_loss(&self, d_fake: Tensor<1>) -> Tensor<1> {
        generator_loss(*self, d_fake)
    }
}

/// The discriminator's loss `L_D` of `objective` from raw outputs on data (`d_real`) and on
/// generated samples (`d_fake`); see the table on [`GanObjective`].
///
/// # Shapes
/// - d_real: `[N]`, d_fake: `[M]`
/// - output: `[1]`
pub fn discriminator_loss(
    objective: GanObjective,
    d_real: Tensor<1>,
    d_fake: Tensor<1>,
) -> Tensor<1> {
    match objective {
        GanObjective::Minimax | GanObjective::NonSaturating => {
            softplus(d_real.neg()).mean() + softplus(d_fake).mean()
        }
        GanObjective::Lsgan => {
            (d_real - 1.0).powi_scalar(2).mean() * 0.5 + d_fake.powi_scalar(2).mean() * 0.5
        }
        GanObjective::Hinge => relu(d_real.neg() + 1.0).mean() + relu(d_fake + 1.0).mean(),
        GanObjective::Wasserstein => d_fake.mean() - d_real.mean(),
    }
}

/// The generator's loss `L_G` of `objective` from raw discriminator outputs on generated
/// samples; see the table on [`GanObjective`].
///
/// # Shapes
/// - d_fake: `[M]`
/// - output: `[1]`
pub fn generator_loss(objective: GanObjective, d_fake: Tensor<1>) -> Tensor<1> {
    match objective {
        // log(1 − σ(d)) = −softplus(d): minimising it pushes D(G(z)) up, but its gradient
        // vanishes as σ(d) → 0 (the saturation).
        GanObjective::Minimax => softplus(d_fake).mean().neg(),
        GanObjective::NonSaturating => softplus(d_fake.neg()).mean(),
        GanObjective::Lsgan => (d_fake - 1.0).powi_scalar(2).mean() * 0.5,
        GanObjective::Hinge | GanObjective::Wasserstein => d_fake.mean().neg(),
    }
}

impl fmt::Display for GanObjective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GanObjective {
    type Err = GenError;

    /// Parses the command-line spellings `minimax`, `non-saturating`, `lsgan`, `hinge` and
    /// `wasserstein` (the serde spellings with `_` are accepted too).
    fn from_str(s: &str) -> Result<Self, GenError> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|o| o.name() == wanted)
            .ok_or_else(|| {
                GenError::InvalidConfig(format!(
                    "unknown GAN objective `{s}`; expected one of minimax, non-saturating, \
                     lsgan, hinge, wasserstein"
                ))
            })
    }
}

//! The unit of work the trainer repeats ([`TrainingStep`]) and the bookkeeping of an epoch.

use burn::optim::{ModuleOptimizer, RmsPropConfig};

use crate::batch::ImageBatch;
use crate::error::{GenError, Result};
use crate::evaluation::scalar;
use crate::model::{OptimizerKind, Player, Trainable};

/// One player's loss on one step, read back to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerLoss {
    /// Index of the player in [`Trainable::players`].
    pub player: usize,
    /// The objective it minimised.
    pub objective: f64,
    /// The loss's named components.
    pub components: Vec<(&'static str, f64)>,
}

/// The unit of work the [`Trainer`](crate::Trainer) repeats: on one batch, every player whose turn it is takes
/// one step (forward pass of its loss, NaN/∞ check, backward pass, optimiser update, the
/// model's `after_player_step`).
///
/// Public so that benchmarks time exactly what training does (`genmodels bench`).
pub struct TrainingStep {
    players: Vec<Player>,
    optimizers: Vec<ModuleOptimizer>,
    learning_rate: f64,
}

impl TrainingStep {
    /// Fresh optimisers for `players` at the base `learning_rate`.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for no players or a player that never steps.
    pub fn new(players: Vec<Player>, learning_rate: f64) -> Result<Self> {
        let optimizers = optimizers_for(&players)?;
        Self::with_optimizers(players, optimizers, learning_rate)
    }

    /// Continues with existing optimiser state, one optimiser per player.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when the counts differ.
    pub fn with_optimizers(
        players: Vec<Player>,
        optimizers: Vec<ModuleOptimizer>,
        learning_rate: f64,
    ) -> Result<Self> {
        if players.len() != optimizers.len() {
            return Err(GenError::InvalidConfig(format!(
                "{} players but {} optimisers",
                players.len(),
                optimizers.len()
            )));
        }
        Ok(Self {
            players,
            optimizers,
            learning_rate,
        })
    }

    /// Steps every player due at `step` (1-based, counted over the whole run) on `batch`.
    /// `model` must live on an autodiff device.
    ///
    /// # Errors
    /// [`GenError::Diverged`] (with epoch 0 and no checkpoint: the caller knows those) when a
    /// player's loss is not finite, before any update from it; input errors from the model.
    pub fn step<M: Trainable>(
        &mut self,
        mut model: M,
        batch: &ImageBatch,
        step: usize,
    ) -> Result<(M, Vec<PlayerLoss>)> {
        let mut losses = Vec::with_capacity(self.players.len());
        for (p, player) in self.players.iter().enumerate() {
            if !step.is_multiple_of(player.every) {
                continue;
            }
            let loss = model.loss(p, batch)?;
            let objective = scalar(loss.objective.clone())?;
            if !objective.is_finite() {
                return Err(GenError::Diverged {
                    step,
                    epoch: 0,
                    loss: objective,
                    last_checkpoint: None,
                });
            }
            let components = loss
                .components
                .into_iter()
                .map(|(name, value)| Ok((name, scalar(value)?)))
                .collect::<Result<Vec<_>>>()?;
            let grads = model.player_gradients(p, loss.objective.backward());
            model = self.optimizers[p].step(
                self.learning_rate * player.learning_rate_scale,
                model,
                grads,
            );
            model = model.after_player_step(p);
            losses.push(PlayerLoss {
                player: p,
                objective,
                components,
            });
        }
        Ok((model, losses))
    }

    /// The base learning rate of the steps that follow (each player scales it by its own
    /// factor): a schedule sets it every epoch.
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    /// The base learning rate the steps use.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// The optimisers by player name, as checkpoints store them.
    pub fn named_optimizers(&self) -> Vec<(&str, &ModuleOptimizer)> {
        self.players
            .iter()
            .map(|p| p.name)
            .zip(&self.optimizers)
            .collect()
    }
}

/// One fresh optimiser per player.
pub(crate) fn optimizers_for(players: &[Player]) -> Result<Vec<ModuleOptimizer>> {
    if players.is_empty() {
        return Err(GenError::InvalidConfig(
            "a model must train at least one player".into(),
        ));
    }
    players
        .iter()
        .map(|player| {
            if player.every == 0 {
                return Err(GenError::InvalidConfig(format!(
                    "player `{}` must step on every n-th batch with n ≥ 1",
                    player.name
                )));
            }
            Ok(match player.optimizer {
                OptimizerKind::Adam { beta_1, beta_2 } => {
                    genmodels_kernels::FusedAdam::new(beta_1, beta_2, 1e-8).init()
                }
                OptimizerKind::RmsProp { alpha } => RmsPropConfig::new()
                    .with_alpha(alpha)
                    .with_momentum(0.0)
                    .with_epsilon(1e-8)
                    .init(),
            })
        })
        .collect()
}

/// A per-epoch seed from the run seed (SplitMix64 finaliser), so epochs draw unrelated streams.
pub(crate) fn mix(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

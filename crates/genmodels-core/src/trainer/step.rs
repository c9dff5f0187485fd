//! The unit of work the trainer repeats ([`TrainingStep`]) and the bookkeeping of an epoch.

use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer, RmsPropConfig};
use burn::tensor::Device;

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
/// With replicas ([`TrainingStep::with_replicas`]) the step is data-parallel, as burn-train's
/// multi-device strategy does it: every device takes a share of the batch, a copy of the model
/// forked to it computes the gradients of its share on its own thread, the gradients move to
/// the main device and burn's [`GradientsAccumulator`] sums them, and the optimiser steps
/// there once. Each share's loss is weighted by its share of the images, so the sum is the
/// gradient of the whole batch's mean loss, as on one device.
///
/// Public so that benchmarks time exactly what training does (`genmodels bench`).
pub struct TrainingStep {
    players: Vec<Player>,
    optimizers: Vec<ModuleOptimizer>,
    learning_rate: f64,
    /// Autodiff devices beside the model's own that take a share of every batch.
    replicas: Vec<Device>,
}

/// A player's objective and loss components on a batch (or, on one device of a data-parallel
/// step, its share's part of them), with the gradients on the main device.
struct PlayerGradients {
    objective: f64,
    components: Vec<(&'static str, f64)>,
    grads: GradientsParams,
}

impl PlayerGradients {
    /// Player `player`'s loss on `batch` and its gradients, each scaled by `weight` (a
    /// data-parallel share's part of the whole batch); `None` leaves them as they are.
    fn of<M: Trainable>(
        model: &M,
        player: usize,
        batch: &ImageBatch,
        weight: Option<f64>,
    ) -> Result<Self> {
        let loss = model.loss(player, batch)?;
        let scale = weight.unwrap_or(1.0);
        let objective = scale * scalar(loss.objective.clone())?;
        let components = loss
            .components
            .into_iter()
            .map(|(name, value)| Ok((name, scale * scalar(value)?)))
            .collect::<Result<Vec<_>>>()?;
        let objective_tensor = match weight {
            Some(weight) => loss.objective * weight,
            None => loss.objective,
        };
        Ok(Self {
            objective,
            components,
            grads: model.player_gradients(player, objective_tensor.backward()),
        })
    }
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
            replicas: Vec::new(),
        })
    }

    /// Makes the step data-parallel over the model's device and `replicas` (see
    /// [`TrainingStep`]); they are made autodiff devices here.
    pub fn with_replicas(mut self, replicas: &[Device]) -> Self {
        self.replicas = replicas.iter().map(|d| d.clone().autodiff()).collect();
        self
    }

    /// The replicas' autodiff devices (empty on one device).
    pub fn replicas(&self) -> &[Device] {
        &self.replicas
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
            let PlayerGradients {
                objective,
                components,
                grads,
            } = if self.replicas.is_empty() {
                let outcome = PlayerGradients::of(&model, p, batch, None)?;
                check_finite(outcome.objective, step)?;
                outcome
            } else {
                self.data_parallel_gradients(&model, p, batch, step)?
            };
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

    /// Player `player`'s objective, components and gradients on `batch`, computed in shares
    /// on the model's device and every replica at once.
    fn data_parallel_gradients<M: Trainable>(
        &self,
        model: &M,
        player: usize,
        batch: &ImageBatch,
        step: usize,
    ) -> Result<PlayerGradients> {
        let main = batch.device();
        let devices: Vec<&Device> = std::iter::once(&main).chain(&self.replicas).collect();
        let total = batch.len();
        // Shares differ by at most one image; a batch smaller than the device count leaves
        // the last devices idle.
        let mut shares = Vec::with_capacity(devices.len());
        let mut start = 0;
        for (i, device) in devices.iter().enumerate() {
            let len = total / devices.len() + usize::from(i < total % devices.len());
            if len > 0 {
                shares.push((*device, batch.share(start, len, device)?));
            }
            start += len;
        }
        // Modules may be sent to a thread, not shared: each share takes its own copy.
        let share_step =
            |replica: M, device: &Device, share: &ImageBatch| -> Result<PlayerGradients> {
                let replica = if *device == main {
                    replica
                } else {
                    replica.fork(device)
                };
                let weight = share.len() as f64 / total as f64;
                let outcome = PlayerGradients::of(&replica, player, share, Some(weight))?;
                Ok(PlayerGradients {
                    grads: outcome.grads.to_device(&main, &replica),
                    ..outcome
                })
            };
        let outcomes: Vec<Result<PlayerGradients>> = std::thread::scope(|scope| {
            let (first, rest) = shares.split_first().expect("a batch holds an image");
            let handles: Vec<_> = rest
                .iter()
                .map(|(device, share)| {
                    let replica = model.clone();
                    scope.spawn(|| share_step(replica, device, share))
                })
                .collect();
            let mut outcomes = vec![share_step(model.clone(), first.0, &first.1)];
            outcomes.extend(handles.into_iter().map(|handle| {
                handle.join().unwrap_or_else(|panic| {
                    Err(GenError::Backend(format!(
                        "the data-parallel step on a replica device panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                })
            }));
            outcomes
        });
        let mut objective = 0.0;
        let mut components: Vec<(&'static str, f64)> = Vec::new();
        let mut accumulator = GradientsAccumulator::<M>::new();
        for outcome in outcomes {
            let outcome = outcome?;
            objective += outcome.objective;
            for (name, value) in outcome.components {
                match components.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, sum)) => *sum += value,
                    None => components.push((name, value)),
                }
            }
            accumulator.accumulate(model, outcome.grads);
        }
        check_finite(objective, step)?;
        Ok(PlayerGradients {
            objective,
            components,
            grads: accumulator.grads(),
        })
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

/// [`GenError::Diverged`] for a loss that is not finite (epoch 0 and no checkpoint: the
/// caller knows those).
fn check_finite(objective: f64, step: usize) -> Result<()> {
    if objective.is_finite() {
        return Ok(());
    }
    Err(GenError::Diverged {
        step,
        epoch: 0,
        loss: objective,
        last_checkpoint: None,
    })
}

/// The text of a thread's panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
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

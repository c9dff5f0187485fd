//! The models of the comparison, and how each is trained, reused and measured.

use std::path::Path;
use std::time::Instant;

use crate::bench::sync;
use crate::recipe::RecipeRun;
use crate::registry::{
    self, DensityType, Entry, ModelVisitor, Pixels, Recipe, Registered, TrainingSettings,
};
use crate::zoo::{MAX_HALF_PRECISION_CHANGE_NATS, METRICS_FILE, PackedModel};
use genmodels_core::burn::tensor::Tensor;
use genmodels_core::checkpoint::{self, MANIFEST_FILE, TrainingPosition};
use genmodels_core::evaluation::evaluate_log_likelihood;
use genmodels_core::fs::{read_json, write_json_atomic};
use genmodels_core::trainer::{BEST_DIR, VALIDATION_FILE, ValidationRecord};
use genmodels_core::{
    CurveOptions, CurvePoint, GenError, ImageDataset, LikelihoodOptions, ModelConfig, Result,
    Trainer, TrainerConfig, init_seeded,
};
use genmodels_eval::parzen::{ParzenOptions, evaluate_parzen};
use genmodels_eval::quality::LaplacianEnergy;
use genmodels_report::{TrainingProgress, validation_chart};
use serde::{Deserialize, Serialize};

use super::{
    Arena, Budget, BudgetPlan, ComparisonRow, Figure, NllCurve, NllFigure, Presentation,
    SamplingTime,
};

/// File in a model's directory recording a finished training run and its likelihoods.
const TRAINING_FILE: &str = "training.json";
/// Images of each model on the sample sheet.
const PANEL_IMAGES: usize = 64;
/// Components of the Bernoulli mixture.
const MIXTURE_COMPONENTS: usize = 50;

/// The most of a model's training time its likelihood curve may cost: a diffusion model's
/// bound takes 33 network passes per image, and every 60 s would cost more than the training.
const CURVE_SHARE: f64 = 0.25;

/// One model of the comparison: a registry entry, at a preset.
#[derive(Debug, Clone)]
pub struct Contender {
    name: &'static str,
    label: String,
    entry: &'static Entry,
    preset: Option<String>,
    presentation: Option<Presentation>,
    /// Binarised digits, or the 8-bit grey track (a likelihood on the 256-level grid).
    pixels: Pixels,
}

impl Contender {
    /// The name used on the command line (`--only`) and for its checkpoint directory.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The label in tables and on the sample sheet.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the model is on the 8-bit grey track (its likelihood is on the 256-level grid
    /// of the grey digits) rather than the binarised one.
    pub fn grey_track(&self) -> bool {
        self.pixels == Pixels::Grey
    }

    /// Its `converged` recipe: the entry's, for its track.
    fn recipe(&self) -> Recipe {
        self.entry
            .recipe("converged", self.pixels)
            .expect("`converged` is a recipe")
    }

    /// Every model of the comparison under `plan`, in table order.
    pub fn all(plan: &BudgetPlan) -> Vec<Contender> {
        let (pixelcnn, pixelcnn_label) = if plan.paper_presets {
            ("paper", "PixelCNN (paper)")
        } else {
            ("small", "PixelCNN (small)")
        };
        let contender = |name, label: &str, entry: &str, preset: Option<&str>| Contender {
            name,
            label: label.to_string(),
            entry: registry::entry(entry).expect("the comparison's models are registered"),
            preset: preset.map(str::to_string),
            presentation: None,
            pixels: Pixels::Binary,
        };
        // The grey track: the same digits as 256 levels, for the models whose likelihood has
        // a form on that grid.
        let grey = |name, label: &str, entry: &str, preset: Option<&str>| Contender {
            pixels: Pixels::Grey,
            ..contender(name, label, entry, preset)
        };
        let all = vec![
            contender("pixelcnn", pixelcnn_label, "pixelcnn", Some(pixelcnn)),
            contender("gated-pixelcnn", "Gated PixelCNN", "gated-pixelcnn", None),
            contender("row-lstm", "PixelRNN Row LSTM", "row-lstm", None),
            contender(
                "diagonal-bilstm",
                "PixelRNN Diagonal BiLSTM",
                "diagonal-bilstm",
                None,
            ),
            contender(
                "bernoulli-mixture",
                &format!("Bernoulli mixture (K={MIXTURE_COMPONENTS})"),
                "gmm",
                Some(format!("bernoulli-{MIXTURE_COMPONENTS}").as_str()),
            ),
            contender("vae", "VAE", "vae", None),
            contender("ddpm", "DDPM", "ddpm", None),
            contender("dcgan", "DCGAN (non-saturating)", "dcgan", None),
            contender(
                "dcgan-hinge",
                "DCGAN (hinge, spectral norm)",
                "dcgan",
                Some("dcgan-hinge"),
            ),
            // The baseline sees grey levels, as the GANs do (its cross-entropy is defined on
            // them), so that its samples are judged against the same reference.
            Contender {
                presentation: Some(Presentation::Grey),
                ..contender("ae", "Autoencoder (baseline)", "ae", None)
            },
            grey(
                "pixelcnn-256",
                &format!("{}, 256 levels)", pixelcnn_label.trim_end_matches(')')),
                "pixelcnn",
                Some(if plan.paper_presets {
                    "paper-256"
                } else {
                    "small-256"
                }),
            ),
            grey("vae-grey", "VAE (discretized Gaussian)", "vae", None),
            // Ho et al.'s discretized Gaussian decoder on the 256 levels.
            grey(
                "ddpm-256",
                "DDPM (256 levels)",
                "ddpm",
                Some(if plan.paper_presets {
                    "paper-256"
                } else {
                    "small-256"
                }),
            ),
            grey(
                "gaussian-mixture",
                &format!("Gaussian mixture (K={MIXTURE_COMPONENTS})"),
                "gmm",
                Some(format!("gaussian-{MIXTURE_COMPONENTS}").as_str()),
            ),
        ];
        if !plan.recipes {
            return all;
        }
        // Trained to convergence, a model takes its recipe's preset where the comparison
        // does not fix one of its own (PixelCNN's size is the budget's choice otherwise).
        all.into_iter()
            .map(|c| {
                let recipe_preset = c.recipe().preset;
                match recipe_preset {
                    Some(preset)
                        if (c.preset.is_none() && c.entry.preset != Some(preset))
                            || c.entry.name == "pixelcnn" =>
                    {
                        Contender {
                            label: match (c.entry.name, c.pixels) {
                                ("pixelcnn", Pixels::Binary) => format!("PixelCNN ({preset})"),
                                ("pixelcnn", Pixels::Grey) => format!(
                                    "PixelCNN ({}, 256 levels)",
                                    preset.trim_end_matches("-256")
                                ),
                                _ => format!("{} ({preset})", c.label),
                            },
                            preset: Some(preset.to_string()),
                            ..c
                        }
                    }
                    _ => c,
                }
            })
            .collect()
    }

    /// Trains (or reuses, or takes from the zoo) and measures the model.
    pub(crate) fn run(
        &self,
        arena: &Arena,
        dir: &Path,
        budget: Budget,
        retrain: bool,
        from_zoo: bool,
    ) -> Result<Outcome> {
        self.entry.visit(Run {
            contender: self,
            arena,
            dir,
            budget,
            retrain,
            from_zoo,
        })
    }
}

impl Contender {
    /// Packs this model's finished `converged` run in `from` into the zoo entry `to`.
    pub(crate) fn pack(&self, arena: &Arena, from: &Path, to: &Path) -> Result<PackedModel> {
        self.entry.visit(Pack {
            contender: self,
            arena,
            from,
            to,
        })
    }

    /// The configuration and presentation of model type `M` for this contender.
    fn config<M: Registered>(&self) -> Result<(M::Config, Presentation)> {
        let config = match &self.preset {
            Some(name) => registry::preset::<M>(name)?,
            None => self.entry.config::<M>(self.pixels)?,
        };
        let presentation = self.presentation.unwrap_or(match M::pixels(&config) {
            Pixels::Binary => Presentation::Binary,
            Pixels::Grey => Presentation::Grey,
        });
        Ok((config, presentation))
    }
}

/// One model packed into the zoo.
struct Pack<'a> {
    contender: &'a Contender,
    arena: &'a Arena,
    from: &'a Path,
    to: &'a Path,
}

impl ModelVisitor for Pack<'_> {
    type Output = Result<PackedModel>;

    fn visit<M: Registered>(self, entry: &'static Entry) -> Result<PackedModel> {
        let (config, presentation) = self.contender.config::<M>()?;
        let cap = self.contender.recipe().max_epochs;
        let (config, _) = M::training(config, Some(cap));
        let run = Run {
            contender: self.contender,
            arena: self.arena,
            dir: self.from,
            budget: Budget::Converged,
            retrain: false,
            from_zoo: false,
        };
        let Some((model, record)) = run.reusable(&config, M::GRADIENT_TRAINED.then_some(cap))?
        else {
            return Err(GenError::InvalidConfig(format!(
                "{} holds no finished `converged` run of the {} (seed {}); run `genmodels \
                 compare --budget converged --only {}` first",
                self.from.display(),
                self.contender.label,
                self.arena.seed,
                self.contender.name
            )));
        };
        let device = &self.arena.device;
        // Half precision where no test likelihood moves by the zoo's limit; models without a
        // likelihood of their own (the GANs' is a Parzen estimate) keep full precision.
        let has_likelihood = !matches!(
            M::DENSITY,
            DensityType::Implicit | DensityType::NotGenerative
        );
        let (full, _) = if has_likelihood {
            run.likelihoods(&model, presentation)?
        } else {
            (Vec::new(), None)
        };
        let half_bytes = checkpoint::weights_to_half_bytes(&model)?;
        let (half, change) = if full.is_empty() {
            (Vec::new(), None)
        } else {
            let half_model =
                checkpoint::weights_from_bytes(config.init(device)?, half_bytes.clone(), "f16")?;
            let (half, _) = run.likelihoods(&half_model, presentation)?;
            let change = full
                .iter()
                .zip(&half)
                .map(|(a, b)| (a.nats - b.nats).abs())
                .fold(0.0, f64::max);
            (half, Some(change))
        };
        let use_half = change.is_some_and(|c| c < MAX_HALF_PRECISION_CHANGE_NATS);
        let weights = if use_half {
            half_bytes
        } else {
            checkpoint::weights_to_bytes(&model)?
        };
        let position = TrainingPosition {
            epoch: record.best_epoch.unwrap_or(record.epochs),
            step: record
                .validation
                .as_ref()
                .and_then(|v| v.points.iter().find(|p| Some(p.epoch) == record.best_epoch))
                .map_or(record.steps, |p| p.steps),
            seed: self.arena.seed,
        };
        // The entry is rewritten whole: a folder of its own, named by the comparison.
        if self.to.exists() {
            std::fs::remove_dir_all(self.to).map_err(|e| GenError::io(self.to, e))?;
        }
        let manifest = checkpoint::save_weights_checkpoint(self.to, &config, &weights, position)?;
        write_json_atomic(&self.to.join(TRAINING_FILE), &record)?;
        let binarize = match presentation {
            Presentation::Binary => "dynamic",
            Presentation::Grey => "none",
        };
        write_json_atomic(
            &self.to.join("run.json"),
            &serde_json::json!({
                "model": entry.name,
                "binarize": binarize,
                "seed": self.arena.seed,
                "recipe": "converged",
            }),
        )?;
        if let Some(validation) = &record.validation {
            validation_chart(validation, record.best_epoch)
                .save_png(self.to.join("validation.png"))?;
        }
        let packed = PackedModel {
            name: self.contender.name.to_string(),
            precision: if use_half { "f16" } else { "f32" }.to_string(),
            weights_bytes: std::fs::metadata(self.to.join(&manifest.weights))
                .map_err(|e| GenError::io(self.to, e))?
                .len(),
            likelihoods_full_precision: full,
            likelihoods_half_precision: half,
            largest_change_nats: change,
            epochs: record.epochs,
            best_epoch: record.best_epoch,
            train_seconds: record.train_seconds + record.fit_seconds,
        };
        write_json_atomic(&self.to.join(METRICS_FILE), &packed)?;
        Ok(packed)
    }
}

/// The models `only` names (all when `None`), in table order.
pub(crate) fn select(only: Option<&[String]>, plan: &BudgetPlan) -> Result<Vec<Contender>> {
    let all = Contender::all(plan);
    let Some(names) = only else {
        return Ok(all);
    };
    if let Some(unknown) = names
        .iter()
        .find(|n| !all.iter().any(|c| c.name == n.as_str()))
    {
        return Err(GenError::InvalidConfig(format!(
            "the comparison has no model `{unknown}`; choose from {}",
            all.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(all
        .into_iter()
        .filter(|c| names.iter().any(|n| n == c.name))
        .collect())
}

/// What measuring one model produced.
pub(crate) struct Outcome {
    pub(crate) rows: Vec<ComparisonRow>,
    pub(crate) curve: Option<NllCurve>,
    pub(crate) warnings: Vec<String>,
    pub(crate) panel: Tensor<4>,
}

/// A finished training run, as `training.json` records it: enough to reuse the checkpoint
/// without training or scoring the likelihood again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainingRecord {
    budget: Budget,
    seed: u64,
    config: serde_json::Value,
    train_seconds: f64,
    fit_seconds: f64,
    /// Of the last sitting; see [`TrainingRecord::images_per_second`] for the whole run.
    images_per_second: f64,
    steps: usize,
    epochs: usize,
    curve: Vec<CurvePoint>,
    likelihoods: Vec<NllFigure>,
    likelihood_unavailable: Option<String>,
    warnings: Vec<String>,
    /// The validation score after every epoch, for a recipe's run.
    #[serde(default)]
    validation: Option<ValidationRecord>,
    /// The epoch whose weights the checkpoint holds, for a recipe's run: the best.
    #[serde(default)]
    best_epoch: Option<usize>,
    /// Whether early stopping ended the recipe's run.
    #[serde(default)]
    stopped_early: bool,
}

impl TrainingRecord {
    /// Whether the run is finished under a recipe of at most `cap` gradient epochs: stopped
    /// by its patience, or at `cap` (or beyond). A run that stopped at a lower cap, one the
    /// recipe has since raised, is not: it continues from its last epoch.
    fn finished_under(&self, cap: Option<usize>) -> bool {
        self.stopped_early || cap.is_none_or(|cap| self.epochs >= cap)
    }

    /// Training images per second over every sitting of the run: for a recipe's run, the
    /// epochs its validation record counts (a point at the end of each, so every one of the
    /// `train_images` was seen in each) over their training seconds; otherwise the run's own
    /// figure (one sitting).
    fn images_per_second(&self, train_images: usize) -> f64 {
        match self.validation.as_ref().and_then(|v| v.points.last()) {
            Some(last) if last.train_seconds > 0.0 => {
                (last.epoch * train_images) as f64 / last.train_seconds
            }
            _ => self.images_per_second,
        }
    }
}

/// One model's run through the comparison.
struct Run<'a> {
    contender: &'a Contender,
    arena: &'a Arena,
    dir: &'a Path,
    budget: Budget,
    retrain: bool,
    /// Whether `dir` is a zoo entry, evaluated as it is.
    from_zoo: bool,
}

impl ModelVisitor for Run<'_> {
    type Output = Result<Outcome>;

    fn visit<M: Registered>(self, _: &'static Entry) -> Result<Outcome> {
        let (config, presentation) = self.contender.config::<M>()?;
        let plan = &self.arena.plan;
        // The recipe's own preset is the entry's; the contender's configuration stands.
        let recipe = plan.recipes.then(|| self.contender.recipe());
        let (config, settings) = match &recipe {
            Some(recipe) => M::training(config, Some(recipe.max_epochs)),
            None => registry::budget_training::<M>(config, plan.max_epochs, plan.em_iterations),
        };
        let cap = recipe.filter(|_| M::GRADIENT_TRAINED).map(|r| r.max_epochs);
        let (model, mut record, reused) = match self.reusable(&config, cap)? {
            Some((model, record)) => (model, record, true),
            None if self.from_zoo => {
                return Err(GenError::InvalidConfig(format!(
                    "{} holds no trained {} of this configuration and seed; train it with \
                     `genmodels compare --budget converged --retrain --only {}` and pack the \
                     result into the zoo",
                    self.dir.display(),
                    self.contender.label,
                    self.contender.name
                )));
            }
            None => {
                let (model, record) =
                    self.train::<M>(&config, settings, recipe.as_ref(), presentation)?;
                (model, record, false)
            }
        };
        if self.from_zoo {
            // The zoo's weights are scored afresh (they may be stored at half precision);
            // its record keeps the training run's own figures.
            let (likelihoods, unavailable) = self.likelihoods(&model, presentation)?;
            record.likelihoods = likelihoods;
            record.likelihood_unavailable = unavailable;
        }
        self.measure(&model, &record, reused, presentation)
    }
}

impl Run<'_> {
    /// The model and record of a finished run with the same budget, seed and config: under
    /// a recipe whose epoch cap is `cap`, see [`TrainingRecord::finished_under`] (the zoo's
    /// entries are evaluated as they are).
    fn reusable<C: ModelConfig>(
        &self,
        config: &C,
        cap: Option<usize>,
    ) -> Result<Option<(C::Model, TrainingRecord)>> {
        let record_path = self.dir.join(TRAINING_FILE);
        if self.retrain || !record_path.exists() || !self.dir.join(MANIFEST_FILE).exists() {
            return Ok(None);
        }
        let record: TrainingRecord = read_json(&record_path)?;
        if record.budget != self.budget
            || record.seed != self.arena.seed
            || !same_config(&record.config, config)?
            || (!self.from_zoo && !record.finished_under(cap))
        {
            return Ok(None);
        }
        // A recipe's run measures its best epoch.
        let best = self.dir.join(BEST_DIR);
        let from = if best.join(MANIFEST_FILE).exists() {
            best
        } else {
            self.dir.to_path_buf()
        };
        let (model, _) = checkpoint::load_model::<C>(&from, &self.arena.device)?;
        Ok(Some((model, record)))
    }

    fn train<M: Registered>(
        &self,
        config: &M::Config,
        settings: TrainingSettings,
        recipe: Option<&Recipe>,
        presentation: Presentation,
    ) -> Result<(M, TrainingRecord)> {
        let arena = self.arena;
        let plan = &arena.plan;
        // A run that stops half-way must not look finished to the next one.
        let record_path = self.dir.join(TRAINING_FILE);
        if record_path.exists() {
            std::fs::remove_file(&record_path).map_err(|e| GenError::io(&record_path, e))?;
        }
        let estimators = M::likelihood_estimators(plan.iwae_k);
        let base = match recipe {
            Some(recipe) => RecipeRun::new(recipe).trainer_config(),
            None => TrainerConfig {
                epochs: settings.epochs,
                batch_size: plan.batch_size,
                learning_rate: settings.learning_rate,
                max_steps: plan.max_steps,
                max_train_seconds: plan.max_train_seconds,
                ..TrainerConfig::default()
            },
        };
        let trainer = Trainer::new(TrainerConfig {
            epochs: settings.epochs,
            seed: arena.seed,
            checkpoint_dir: Some(self.dir.to_path_buf()),
            eval_options: estimators[0],
            eval_batch_size: 100,
            likelihood_curve: Some(CurveOptions {
                every_seconds: plan.curve_every_seconds,
                test_images: plan.curve_test_images,
                options: LikelihoodOptions::default(),
                max_share: Some(CURVE_SHARE),
            }),
            ..base
        })
        .with_observer(TrainingProgress::new());
        let train = arena.train(presentation);
        let test = arena.test(presentation);
        let validation_set = arena.validation(presentation);
        let mut validation = match recipe {
            Some(recipe) => {
                RecipeRun::new(recipe).validation::<M>(validation_set, train, &arena.device)?
            }
            None => None,
        };
        // A recipe's run killed part-way (by the end of a session, say) continues from its
        // last epoch; a run of another kind, or one asked to start over, starts afresh.
        let resumable = recipe.is_some()
            && !self.retrain
            && self.dir.join(MANIFEST_FILE).exists()
            && checkpoint::load_config::<M::Config>(self.dir).is_ok_and(|saved| {
                serde_json::to_value(saved).ok() == serde_json::to_value(config).ok()
            })
            && checkpoint::read_manifest(self.dir).is_ok_and(|m| m.seed == arena.seed);
        if !resumable {
            for stale in [self.dir.join(BEST_DIR), self.dir.join(VALIDATION_FILE)] {
                let removed = if stale.is_dir() {
                    std::fs::remove_dir_all(&stale)
                } else {
                    std::fs::remove_file(&stale)
                };
                if let Err(e) = removed
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(GenError::io(&stale, e));
                }
            }
        }
        let trained = match (resumable, validation.as_deref_mut()) {
            (true, Some(validation)) => trainer.resume_validated::<M::Config>(
                self.dir,
                train,
                validation,
                Some(test),
                &arena.device,
            )?,
            (true, None) => {
                trainer.resume::<M::Config>(self.dir, train, Some(test), &arena.device)?
            }
            (false, validation) => {
                let model = init_seeded(config, arena.seed, &arena.device)?;
                match validation {
                    Some(validation) => trainer.fit_validated(
                        model,
                        train,
                        validation,
                        Some(test),
                        &arena.device,
                    )?,
                    None => trainer.fit(model, train, Some(test), &arena.device)?,
                }
            }
        };
        let model = trained.model;
        let report = trained.report;

        let mut likelihoods = Vec::new();
        let mut likelihood_unavailable = report.likelihood_unavailable.clone();
        if let Some(ll) = &report.test_log_likelihood {
            likelihoods.push(NllFigure::of(ll));
            for options in &estimators[1..] {
                let ll = evaluate_log_likelihood(&model, test, options, 100, &arena.device)?;
                likelihoods.push(NllFigure::of(&ll));
            }
        } else if M::DENSITY == DensityType::Implicit {
            (likelihoods, likelihood_unavailable) = self.likelihoods(&model, presentation)?;
        }
        let mut curve = report.likelihood_curve;
        // The mixture learns in its post-training fit: its curve ends when the fit does.
        if !M::GRADIENT_TRAINED
            && let Some(ll) = &report.test_log_likelihood
        {
            curve.push(CurvePoint {
                train_seconds: report.train_seconds + report.fit_seconds,
                steps: report.steps,
                nll_nats: ll.mean_nll_nats(),
                bits_per_dim: ll.nll_bits_per_dim(),
                kind: ll.kind.to_string(),
            });
        }
        // A recipe's run may span sittings: its validation record counts all of them.
        let train_seconds = report
            .validation
            .as_ref()
            .and_then(|v| v.points.last())
            .map_or(report.train_seconds, |p| p.train_seconds);
        let record = TrainingRecord {
            budget: self.budget,
            seed: arena.seed,
            config: serde_json::to_value(config).map_err(json_error)?,
            train_seconds,
            fit_seconds: report.fit_seconds,
            images_per_second: report.images_per_second,
            steps: report.steps,
            epochs: report.epochs,
            curve,
            likelihoods,
            likelihood_unavailable,
            warnings: report.warnings,
            validation: report.validation,
            best_epoch: report.best_epoch,
            stopped_early: report.stopped_early,
        };
        write_json_atomic(&record_path, &record)?;
        Ok((model, record))
    }

    /// The test likelihoods of `model`: each of its estimators (the VAE's ELBO and IWAE-k), a
    /// Parzen-window estimate for an implicit model (σ chosen on the held-out validation
    /// split), or why there is none.
    fn likelihoods<M: Registered>(
        &self,
        model: &M,
        presentation: Presentation,
    ) -> Result<(Vec<NllFigure>, Option<String>)> {
        let arena = self.arena;
        let plan = &arena.plan;
        let test = arena.test(presentation);
        if M::DENSITY == DensityType::Implicit {
            let options = ParzenOptions {
                samples: plan.parzen_samples,
                validation: plan.parzen_validation,
                seed: arena.seed ^ 0x9A22E,
                ..ParzenOptions::default()
            };
            let validation = arena.validation(presentation);
            let estimate = evaluate_parzen(model, validation, test, &options, &arena.device)?;
            return Ok((vec![NllFigure::of(&estimate.log_likelihood)], None));
        }
        let mut likelihoods = Vec::new();
        for options in &M::likelihood_estimators(plan.iwae_k) {
            match evaluate_log_likelihood(model, test, options, 100, &arena.device) {
                Ok(ll) => likelihoods.push(NllFigure::of(&ll)),
                Err(e @ GenError::LikelihoodNotAvailable { .. }) => {
                    return Ok((Vec::new(), Some(e.to_string())));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((likelihoods, None))
    }

    fn measure<M: Registered>(
        &self,
        model: &M,
        record: &TrainingRecord,
        reused: bool,
        presentation: Presentation,
    ) -> Result<Outcome> {
        let arena = self.arena;
        let plan = &arena.plan;
        let contender = self.contender;
        let device = &arena.device;

        // Quality samples, timed; the first of them go on the sheet.
        let sample_seed = arena.seed ^ 0x5A3B1E;
        let batch = M::SAMPLE_BATCH.min(plan.quality_samples);
        let mut panel = Vec::new();
        let mut panel_len = 0;
        let mut sampling_seconds = 0.0;
        let mut energy = LaplacianEnergy::new();
        let judged = arena
            .judge
            .judge_in_batches(plan.quality_samples, batch, |start, n| {
                let started = Instant::now();
                let images = model.draw(n, sample_seed.wrapping_add(start as u64))?;
                sync(device)?;
                sampling_seconds += started.elapsed().as_secs_f64();
                energy.add(images.clone())?;
                if panel_len < PANEL_IMAGES {
                    let take = n.min(PANEL_IMAGES - panel_len);
                    panel.push(images.clone().narrow(0, 0, take));
                    panel_len += take;
                }
                Ok(images)
            })?;
        let drawn = plan.quality_samples;
        let (fid, inception_score, coverage, floor) = arena.quality(&judged, presentation)?;
        let sampling = SamplingTime {
            sampler: match M::CAPABILITIES.sample_with {
                Some(_) => model.default_method().describe(),
                None => M::SAMPLER.to_string(),
            },
            seconds_per_image: sampling_seconds / drawn as f64,
            batch,
            images: drawn,
        };
        let sharpness = arena.sharpness(&energy, presentation)?;
        // Decoder means are grey images, whatever the samples are: judged against grey digits.
        let mean_sharpness = match model.decoder_means(plan.quality_samples, sample_seed) {
            Some(means) => {
                Figure::Value(arena.sharpness(&LaplacianEnergy::of(means?)?, Presentation::Grey)?)
            }
            None => Figure::not_available("its samples are not draws around decoder means"),
        };
        let slow_sampling = slow_sampling(model, plan.slow_samples, sample_seed, device)?;
        let train_images_per_second = if M::GRADIENT_TRAINED {
            Figure::Value(record.images_per_second(arena.train(presentation).len()))
        } else {
            Figure::not_available(format!(
                "fitted by EM in {:.1} s, not by gradient steps",
                record.fit_seconds
            ))
        };

        let row = |model_name: String, label: String, nll: Figure<NllFigure>| ComparisonRow {
            model: model_name,
            label,
            density: M::DENSITY,
            nll,
            fid,
            inception_score,
            coverage: coverage.clone(),
            floor: floor.clone(),
            sampling: sampling.clone(),
            slow_sampling: slow_sampling.clone(),
            train_images_per_second: train_images_per_second.clone(),
            train_seconds: record.train_seconds + record.fit_seconds,
            parameters: model.num_params(),
            reused_checkpoint: reused,
            sharpness,
            mean_sharpness: mean_sharpness.clone(),
            epochs: record.epochs,
            best_epoch: record.best_epoch,
            grey_track: contender.grey_track(),
        };
        let rows = if record.likelihoods.is_empty() {
            let reason = record
                .likelihood_unavailable
                .clone()
                .unwrap_or_else(|| "no likelihood".into());
            vec![row(
                contender.name.to_string(),
                contender.label.clone(),
                Figure::NotAvailable(reason),
            )]
        } else if record.likelihoods.len() == 1 {
            vec![row(
                contender.name.to_string(),
                contender.label.clone(),
                Figure::Value(record.likelihoods[0].clone()),
            )]
        } else {
            record
                .likelihoods
                .iter()
                .map(|nll| {
                    row(
                        format!("{} ({})", contender.name, nll.kind),
                        format!("{} ({})", contender.label, nll.kind),
                        Figure::Value(nll.clone()),
                    )
                })
                .collect()
        };
        let curve = (!record.curve.is_empty()).then(|| NllCurve {
            label: contender.label.clone(),
            points: record.curve.clone(),
            grey_track: contender.grey_track(),
        });
        Ok(Outcome {
            rows,
            curve,
            warnings: record.warnings.clone(),
            panel: Tensor::cat(panel, 0),
        })
    }
}

/// The time per image over `images` images of the slow sampler that a model's default one
/// stands in for (the autoregressive models' naive sampler, a diffusion model's ancestral
/// one), or why a model has none.
fn slow_sampling<M: Registered>(
    model: &M,
    images: usize,
    seed: u64,
    device: &genmodels_core::burn::tensor::Device,
) -> Result<Figure<SamplingTime>> {
    let slow = M::CAPABILITIES
        .sample_with
        .and_then(|sample_with| Some((sample_with, model.default_method().slow_counterpart()?)));
    let Some((sample_with, method)) = slow else {
        return Ok(Figure::not_available("one network pass per image"));
    };
    let started = Instant::now();
    sample_with(model, images, seed, method)?;
    sync(device)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Figure::Value(SamplingTime {
        sampler: method.describe(),
        seconds_per_image: seconds / images as f64,
        batch: images,
        images,
    }))
}

/// Whether a run's recorded configuration is `config`: the record read as today's type and
/// written again, so that a field added since with its default (e.g. the Gated PixelCNN's
/// `condition_channels`) does not make a trained model of the same configuration look
/// different (the zoo's models were recorded before some fields existed).
fn same_config<C: ModelConfig>(recorded: &serde_json::Value, config: &C) -> Result<bool> {
    let Ok(recorded) = serde_json::from_value::<C>(recorded.clone()) else {
        return Ok(false);
    };
    Ok(serde_json::to_value(&recorded).map_err(json_error)?
        == serde_json::to_value(config).map_err(json_error)?)
}

fn json_error(e: serde_json::Error) -> GenError {
    GenError::InvalidConfig(format!("a config that does not serialise: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use genmodels_core::trainer::ValidationPoint;

    #[cfg(feature = "autoregressive")]
    #[test]
    fn a_record_from_before_a_field_existed_matches_its_default_but_not_other_configs() {
        let config = genmodels_autoregressive::GatedPixelCnnConfig::deep();
        let mut old = serde_json::to_value(&config).unwrap();
        // How the zoo's Gated PixelCNN was recorded: before `condition_channels` existed.
        let removed = old.as_object_mut().unwrap().remove("condition_channels");
        assert_eq!(removed, Some(serde_json::Value::Null));
        assert!(same_config(&old, &config).unwrap());
        assert!(
            !same_config(
                &old,
                &genmodels_autoregressive::GatedPixelCnnConfig::small()
            )
            .unwrap()
        );
        assert!(!same_config(&serde_json::json!({"not": "a config"}), &config).unwrap());
    }

    fn record(images_per_second: f64, points: Option<Vec<(usize, f64)>>) -> TrainingRecord {
        TrainingRecord {
            budget: Budget::Converged,
            seed: 0,
            config: serde_json::Value::Null,
            train_seconds: 0.0,
            fit_seconds: 0.0,
            images_per_second,
            steps: 0,
            epochs: 0,
            curve: Vec::new(),
            likelihoods: Vec::new(),
            likelihood_unavailable: None,
            warnings: Vec::new(),
            validation: points.map(|points| ValidationRecord {
                metric: "validation NLL".into(),
                points: points
                    .into_iter()
                    .map(|(epoch, train_seconds)| ValidationPoint {
                        epoch,
                        steps: epoch * 10,
                        score: 1.0,
                        learning_rate: 1e-3,
                        train_seconds,
                        training: Vec::new(),
                    })
                    .collect(),
            }),
            best_epoch: None,
            stopped_early: false,
        }
    }

    #[test]
    fn a_run_stopped_at_a_cap_since_raised_is_not_finished() {
        let at = |epochs, stopped_early| TrainingRecord {
            epochs,
            stopped_early,
            ..record(0.0, None)
        };
        // At its cap of 60, and under a recipe that now allows 100: it goes on.
        assert!(at(60, false).finished_under(Some(60)));
        assert!(!at(60, false).finished_under(Some(100)));
        // Stopped by its patience: finished whatever the cap.
        assert!(at(61, true).finished_under(Some(100)));
        // A cap lowered below the epochs run, or no cap (a budget's run, a fitted model).
        assert!(at(60, false).finished_under(Some(40)));
        assert!(at(0, false).finished_under(None));
    }

    #[test]
    fn a_run_over_several_sittings_reports_the_throughput_of_all_of_them() {
        // The last sitting trained nothing (it found the run finished): its own figure is 0,
        // the run's is 30 epochs of 700 images over 300 seconds.
        let resumed = record(0.0, Some(vec![(10, 100.0), (30, 300.0)]));
        assert_eq!(resumed.images_per_second(700), 70.0);
        // A run without a validation record (a budget's) keeps its own figure.
        assert_eq!(record(123.0, None).images_per_second(700), 123.0);
    }
}

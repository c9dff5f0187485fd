//! `metrics.json` and the summary printed after training or evaluation.

use serde::{Deserialize, Serialize};

use crate::BinarizeMode;

/// What a run measured. `null` where a figure does not exist for the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// The model, as named on the command line (`vae`, `pixelcnn`, `row-lstm`, …).
    pub model: String,
    /// Backend used.
    pub backend: String,
    /// Epochs trained in total.
    pub epochs: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Binarisation of the data.
    pub binarize: BinarizeMode,
    /// Seconds spent in training steps in this run.
    pub train_seconds: f64,
    /// Training throughput of this run.
    pub train_images_per_second: f64,
    /// Seconds of the fit after the gradient epochs (the AE's code distribution, the
    /// mixture's EM).
    pub fit_seconds: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Mean training loss of the last epoch (of the first player, for adversarial models).
    pub final_train_loss: Option<f64>,
    /// The last epoch's mean loss components of every player (a GAN's `discriminator_loss`,
    /// `generator_loss`, `d_real`, `d_fake`, `sample_diversity`, …).
    pub final_train_components: Vec<(String, f64)>,
    /// Warnings the model raised during training (a discriminator winning outright, mode
    /// collapse, …).
    pub training_warnings: Vec<String>,
    /// Seconds per image to draw the preview samples of `samples.png`.
    pub sample_seconds_per_image: f64,
    /// The sampler used, where the model offers a choice.
    pub sample_method: Option<String>,
    /// The registry recipe the run followed (`converged`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// Training images held out as the validation split, for a recipe's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_images: Option<usize>,
    /// The epoch whose weights these figures are of: the best by validation score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended training before the most epochs.
    #[serde(default)]
    pub stopped_early: bool,
    /// The validation score after every epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<genmodels::trainer::ValidationRecord>,
    /// Figures on the test split.
    #[serde(flatten)]
    pub test: TestMetrics,
}

/// Figures on the test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestMetrics {
    /// Test images evaluated.
    pub test_images: usize,
    /// Mean test loss (the training objective).
    pub test_loss: f64,
    /// Mean test reconstruction term (AE: BCE or squared error; VAE: −E_q log p(x|z)).
    pub test_reconstruction: Option<f64>,
    /// Mean test negative log-likelihood in nats (a bound or estimate; see `nll_kind`).
    pub test_nll_nats: Option<f64>,
    /// Its standard error over the test images.
    pub test_nll_stderr_nats: Option<f64>,
    /// `exact`, `elbo`, `iwae`, or null where no likelihood exists.
    pub nll_kind: Option<String>,
    /// What the likelihood conditions on, where it is a conditional `log p(x | c)` (a
    /// class-conditional or super-resolution model); absent for `log p(x)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll_condition: Option<String>,
    /// Importance samples of an `iwae` figure.
    pub iwae_k: Option<usize>,
    /// `test_nll_nats` in bits per dimension.
    pub test_bits_per_dim: Option<f64>,
    /// Mean test ELBO in nats (a log-likelihood lower bound; −ELBO bounds the NLL above).
    pub test_elbo_nats: Option<f64>,
    /// Why there is no likelihood, where there is none.
    pub likelihood_unavailable: Option<String>,
    /// Mean test log-likelihood in nats of a Parzen window on the model's samples (Goodfellow
    /// et al. 2014), where `--parzen` asked for it. An unreliable estimate (Theis et al. 2016).
    pub parzen_log_likelihood_nats: Option<f64>,
    /// Its standard error over the test images.
    pub parzen_stderr_nats: Option<f64>,
    /// The kernel width chosen on the validation images.
    pub parzen_sigma: Option<f64>,
    /// Samples in the window.
    pub parzen_samples: Option<usize>,
    /// The judge's scores of the model's samples and of real training images (the floor),
    /// where `--quality-samples` asked for them.
    pub sample_quality: Option<QualityMetrics>,
}

/// Sample quality by the MNIST judge (docs/sample-quality.md), against the test split as the
/// model sees it (binary or grey), next to the same scores of as many real training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityMetrics {
    /// Samples scored (and real training images in the floor).
    pub samples: usize,
    /// `binary` or `grey`: the presentation of the reference images.
    pub presentation: String,
    /// MNIST-FID of the samples (lower is better).
    pub fid: f64,
    /// Inception-style score of the samples (higher is better, at most 10).
    pub inception_score: f64,
    /// Digit classes the samples hit.
    pub classes_hit: usize,
    /// KL of the sample class histogram to uniform, nats.
    pub class_kl_to_uniform: f64,
    /// MNIST-FID of real training images: the floor.
    pub floor_fid: f64,
    /// Inception-style score of real training images.
    pub floor_inception_score: f64,
    /// The sampler that drew the samples, for a model with a choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    /// Wall seconds per sample of drawing them (batches of 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_image: Option<f64>,
    /// The samples' Laplacian energy over the test images' (1.0: as sharp as real digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness: Option<f64>,
}

impl Metrics {
    /// A human-readable table of the figures.
    pub fn summary(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("model".into(), self.model.clone()),
            ("backend".into(), self.backend.clone()),
            ("epochs".into(), self.epochs.to_string()),
            ("train images".into(), self.train_images.to_string()),
            ("parameters".into(), self.params.to_string()),
            ("train seconds".into(), format!("{:.1}", self.train_seconds)),
            (
                "train images/s".into(),
                format!("{:.0}", self.train_images_per_second),
            ),
            (
                "fit seconds (after training)".into(),
                format!("{:.1}", self.fit_seconds),
            ),
            (
                match &self.sample_method {
                    Some(method) => format!("sampling s/image ({method})"),
                    None => "sampling s/image".into(),
                },
                format!("{:.4}", self.sample_seconds_per_image),
            ),
        ];
        if let (Some(recipe), Some(record)) = (&self.recipe, &self.validation) {
            rows.push(("recipe".into(), recipe.clone()));
            if let Some(best) = record
                .points
                .iter()
                .find(|p| Some(p.epoch) == self.best_epoch)
            {
                rows.push((
                    format!("best {}", record.metric),
                    format!("{:.4} at epoch {}", best.score, best.epoch),
                ));
            }
            let ending = if self.stopped_early {
                "early stopping"
            } else {
                "the most epochs"
            };
            rows.push(("stopped by".into(), ending.into()));
        }
        for (name, value) in &self.final_train_components {
            rows.push((format!("last epoch {name}"), format!("{value:.4}")));
        }
        for warning in &self.training_warnings {
            rows.push(("warning".into(), warning.clone()));
        }
        rows.extend(self.test.rows());
        table(&rows)
    }
}

impl TestMetrics {
    /// The test figures as (label, value) rows.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("test images".into(), self.test_images.to_string()),
            ("test loss".into(), format!("{:.3}", self.test_loss)),
        ];
        if let Some(r) = self.test_reconstruction {
            rows.push(("test reconstruction".into(), format!("{r:.3}")));
        }
        if let Some(e) = self.test_elbo_nats {
            rows.push(("test ELBO (nats)".into(), format!("{e:.3}")));
        }
        match (self.test_nll_nats, &self.nll_kind) {
            (Some(nll), Some(kind)) => {
                let mut kind = match self.iwae_k {
                    Some(k) => format!("{kind}, k={k}"),
                    None => kind.clone(),
                };
                if let Some(condition) = &self.nll_condition {
                    kind = format!("{kind}, conditional on {condition}");
                }
                rows.push((
                    format!("test NLL ({kind})"),
                    format!(
                        "{nll:.3} ± {:.3} nats, {:.4} bits/dim",
                        self.test_nll_stderr_nats.unwrap_or(f64::NAN),
                        self.test_bits_per_dim.unwrap_or(f64::NAN)
                    ),
                ));
            }
            _ => rows.push((
                "test NLL".into(),
                format!(
                    "n/a ({})",
                    self.likelihood_unavailable
                        .as_deref()
                        .unwrap_or("not computed")
                ),
            )),
        }
        if let (Some(ll), Some(sigma)) = (self.parzen_log_likelihood_nats, self.parzen_sigma) {
            rows.push((
                format!(
                    "test Parzen log-likelihood ({} samples)",
                    self.parzen_samples.unwrap_or(0)
                ),
                format!(
                    "{ll:.2} ± {:.2} nats, σ = {sigma:.3}",
                    self.parzen_stderr_nats.unwrap_or(f64::NAN)
                ),
            ));
        }
        if let Some(q) = &self.sample_quality {
            rows.push((
                format!("MNIST-FID ({} samples, {})", q.samples, q.presentation),
                format!("{:.2} (real training images: {:.2})", q.fid, q.floor_fid),
            ));
            rows.push((
                "Inception-style score".into(),
                format!(
                    "{:.2} (real training images: {:.2})",
                    q.inception_score, q.floor_inception_score
                ),
            ));
            rows.push((
                "digit classes hit".into(),
                format!(
                    "{}/10 (KL to uniform {:.3})",
                    q.classes_hit, q.class_kl_to_uniform
                ),
            ));
            if let Some(sharpness) = q.sharpness {
                rows.push((
                    "sharpness (real digits: 1.00)".into(),
                    format!("{sharpness:.2}"),
                ));
            }
            if let Some(seconds) = q.seconds_per_image {
                let label = match &q.sampler {
                    Some(sampler) => format!("sampling time / image ({sampler})"),
                    None => "sampling time / image".into(),
                };
                rows.push((label, format!("{:.3} ms", seconds * 1e3)));
            }
        }
        rows
    }
}

/// Aligns (label, value) rows into a two-column table.
pub fn table(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

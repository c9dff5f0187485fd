//! `genmodels`: train, evaluate and sample the generative models of the genmodels library.

mod anomaly;
mod bench;
mod commands;
mod compare;
mod data;
mod judge;
mod latent;
mod metrics;
mod models;
mod probe;
mod superres;
mod zoo;

pub use models::ModelName;
use models::SampleOptions;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use genmodels::Backend;
use genmodels::gan::GanObjective;

// burn allocates a buffer per op; see `genmodels::kernels::Allocator`.
#[global_allocator]
static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;

#[derive(Parser, Debug)]
#[command(
    name = "genmodels",
    version,
    about = "Train, evaluate and sample generative models of images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How autoregressive and diffusion models sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Autoregressive: one full network pass per sub-pixel.
    Naive,
    /// Autoregressive: incremental, with cached activations (PixelCNNs) or carried LSTM state
    /// (PixelRNNs); the same images as naive.
    Cached,
    /// Diffusion: every one of the T reverse steps.
    Ancestral,
    /// Diffusion: DDIM, --steps of the T steps with noise scale --eta.
    Ddim,
}

/// The sampler of a model with a choice: `--method`, and DDIM's `--steps` and `--eta`
/// ([`models::sampling_method`] resolves them for a model).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct SamplerArgs {
    /// Sampler: naive or cached (autoregressive models; default cached), ancestral or ddim
    /// (diffusion models; default ddim with 50 steps, η = 0).
    #[arg(long)]
    pub method: Option<MethodArg>,
    /// DDIM's reverse steps, 1 to T (default 50).
    #[arg(long)]
    pub steps: Option<usize>,
    /// DDIM's noise scale η ≥ 0: 0 is deterministic given the starting noise (default 0).
    #[arg(long)]
    pub eta: Option<f64>,
}

impl From<ObjectiveArg> for GanObjective {
    fn from(objective: ObjectiveArg) -> Self {
        match objective {
            ObjectiveArg::Minimax => GanObjective::Minimax,
            ObjectiveArg::NonSaturating => GanObjective::NonSaturating,
            ObjectiveArg::Lsgan => GanObjective::Lsgan,
            ObjectiveArg::Hinge => GanObjective::Hinge,
            ObjectiveArg::Wasserstein => GanObjective::Wasserstein,
        }
    }
}

/// A GAN's training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// The original game: D by cross-entropy, G minimises log(1 − D(G(z))) (saturating).
    Minimax,
    /// G maximises log D(G(z)) instead.
    NonSaturating,
    /// Least squares (LSGAN).
    Lsgan,
    /// Hinge loss with a spectrally normalised discriminator.
    Hinge,
    /// Wasserstein critic with weight clipping, 5 critic steps per generator step.
    Wasserstein,
}

/// How images are binarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinarizeMode {
    /// Redraw Bernoulli(v/255) pixels every epoch (the default for Bernoulli models).
    Dynamic,
    /// Draw Bernoulli(v/255) pixels once.
    Stochastic,
    /// v/255 > 0.5.
    Threshold,
    /// Keep grey levels in [0, 1].
    None,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory with MNIST-style IDX files (raw or .gz); default: the bundled 10k sample.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Backend: flex, ndarray, wgpu or cuda.
    #[arg(long, default_value = "flex")]
    pub backend: Backend,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model to train.
    pub model: ModelName,
    #[command(flatten)]
    pub data: DataArgs,
    /// Train by the model's recipe from the registry: `converged` trains until the
    /// likelihood (or, for the GANs and the AE, the FID) of a validation split (the last
    /// 1,000 training images) stops improving, and keeps the best epoch. Its epochs (then a
    /// maximum), batch size, learning rate and seed apply unless given here.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(genmodels::registry::RECIPES))]
    pub recipe: Option<String>,
    /// Training epochs [default: 10, or the recipe's maximum; for gmm, the EM iterations,
    /// default 100].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: 100, or the recipe's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 1e-3; GANs and the VAE-GAN 2e-4, Wasserstein GANs 5e-5].
    // Hyphen values allowed, so that `--lr -1` reaches the learning-rate check instead of
    // being taken for a flag.
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// GAN objective (gan, dcgan, cgan) [default: non-saturating].
    #[arg(long)]
    pub objective: Option<ObjectiveArg>,
    /// Seed for initialisation, data order, binarisation and noise [default: 0, or the
    /// recipe's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Importance samples for the test likelihood of latent-variable models (1 = ELBO only).
    #[arg(long, default_value_t = 500)]
    pub iwae_k: usize,
    /// Model configuration as JSON (a checkpoint's config.json, or the bare config).
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A named configuration of the model (PixelCNN: small or paper; the other
    /// autoregressive models: small; the GANs: mlp, dcgan, cgan or dcgan-hinge; gmm:
    /// bernoulli-K or gaussian-K, e.g. bernoulli-50).
    #[arg(long)]
    pub preset: Option<String>,
    /// Sampler for samples.png.
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Binarisation; default: dynamic for Bernoulli models, none for grey-level ones.
    #[arg(long)]
    pub binarize: Option<BinarizeMode>,
    /// Output directory: checkpoint, PNGs and metrics.json.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out instead of refusing to overwrite it.
    #[arg(long)]
    pub resume: bool,
    /// Train data-parallel on these GPUs of --backend (wgpu or cuda), e.g. `--devices 0,1`:
    /// each takes a share of every batch (the batch size stays the global one) and their
    /// gradients are summed on the first, where the optimiser steps (burn's multi-device
    /// training). Default: the backend's one device.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub devices: Option<Vec<usize>>,
}

/// Where a trained model comes from: a run folder, or the zoo.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ModelSource {
    /// Checkpoint directory (the --out of `train`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A model of the zoo, trained to convergence and shipped with the repository (pixelcnn,
    /// gated-pixelcnn, row-lstm, diagonal-bilstm, bernoulli-mixture, vae, ddpm, dcgan,
    /// dcgan-hinge, ae, and on 8-bit grey digits pixelcnn-256, vae-grey, gaussian-mixture,
    /// ddpm-256;
    /// `genmodels zoo list` shows them).
    #[arg(long)]
    pub pretrained: Option<String>,
}

impl ModelSource {
    /// The checkpoint folder, and whether it is the zoo's (which commands only read).
    pub fn dir(&self) -> anyhow::Result<(PathBuf, bool)> {
        match (&self.checkpoint, &self.pretrained) {
            (Some(dir), _) => Ok((dir.clone(), false)),
            (None, Some(name)) => Ok((
                genmodels::zoo::model_dir(&genmodels::zoo::default_dir(), name)?,
                true,
            )),
            (None, None) => anyhow::bail!("name a --checkpoint or a --pretrained model"),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model and write its checkpoint, sample grids and metrics.json.
    Train(TrainArgs),
    /// Evaluate a checkpoint (or a model of the zoo) on the test split.
    Eval {
        #[command(flatten)]
        source: ModelSource,
        #[command(flatten)]
        data: DataArgs,
        /// Importance samples (1 = ELBO).
        #[arg(long, default_value_t = 500)]
        iwae_k: usize,
        /// Seed of the estimator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also estimate the test log-likelihood with a Parzen window on the model's samples
        /// (Goodfellow et al. 2014), for any model that samples. Unreliable (Theis et al.
        /// 2016); for comparison with papers that report it.
        #[arg(long)]
        parzen: bool,
        /// Samples in the Parzen window.
        #[arg(long, default_value_t = 10_000)]
        parzen_samples: usize,
        /// Held-out images on which the kernel width σ is chosen: the first of the last
        /// 1,000 training images, the validation split of `--recipe` (held out from training
        /// only when the model was trained by a recipe).
        #[arg(long, default_value_t = 1_000)]
        parzen_validation: usize,
        /// Also score this many samples with the MNIST judge (docs/sample-quality.md):
        /// MNIST-FID against the test split, Inception-style score and mode coverage, next to
        /// the same scores of as many real training images (the floor).
        #[arg(long)]
        quality_samples: Option<usize>,
        /// The sampler of the scored samples (with --quality-samples), for a model with a
        /// choice: e.g. `--method ddim --steps 20` for a DDPM; its time per image is reported.
        #[command(flatten)]
        sampler: SamplerArgs,
    },
    /// Score every test image for anomaly detection (higher = more anomalous) into a CSV:
    /// −log p(x) in nats for a model with a likelihood (exact; −ELBO or −IWAE-k for the VAE;
    /// the variational bound for the DDPM), the reconstruction error for the AE, the
    /// discriminator's output negated for a GAN, the encoder's loss for the VAE-GAN.
    Score {
        #[command(flatten)]
        source: ModelSource,
        #[command(flatten)]
        data: DataArgs,
        /// Importance samples for a latent-variable model's score (1 = −ELBO, k > 1 =
        /// −IWAE-k, tighter and k times slower); ignored by the other models.
        #[arg(long, default_value_t = 1)]
        iwae_k: usize,
        /// Seed of the estimator (the VAE's and the DDPM's draws).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output CSV: index, label (when the data has labels) and the score, under a header
        /// naming it. Written when the scores are done, replacing the file atomically.
        #[arg(long, default_value = "scores.csv")]
        out: PathBuf,
    },
    /// Anomaly detection measured: AUROC of the model's anomaly score on clean test digits
    /// against corrupted ones (noise, inversion, occlusion, rotations, blank), or with
    /// --holdout-class on a class held out of training, raw and corrected (typicality;
    /// likelihood ratio against an independent-pixel background), into anomaly.md, .csv,
    /// .json, .png and corruptions.png.
    Anomaly(anomaly::AnomalyArgs),
    /// Latent control measured (the VAE, the AE, the GANs): class arithmetic (z + mean(a) −
    /// mean(b), judged), thickness and slant vectors swept over α, interpolation grids, and a
    /// class-conditional sheet for a model with labels, into latent.md, latent.json and PNG
    /// sheets.
    Latent(latent::LatentArgs),
    /// Linear probes: the test accuracy of a logistic regression trained on the model's
    /// representation (the AE's code, the VAE's posterior mean, a GAN discriminator's
    /// features, an autoregressive model's pooled last hidden layer, a mixture's
    /// responsibilities) with --labels labelled training images per class, beside the same
    /// probe on the raw pixels.
    Probe(probe::ProbeArgs),
    /// Super-resolution of test digits from their f×f block means (--factor 2: 14×14, 4: 7×7)
    /// by a model that can (the DDPM's ILVR-guided sampling), beside nearest-neighbour and
    /// bicubic upsampling: PSNR, SSIM, the judge's accuracy, the low-pass error and time per
    /// image, into superres.md, .json and a picture sheet superres.png.
    Superres(superres::SuperResArgs),
    /// Draw samples from a checkpoint (or a model of the zoo) into a PNG grid.
    Sample {
        #[command(flatten)]
        source: ModelSource,
        /// Number of samples.
        #[arg(short = 'n', long, default_value_t = 64)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Backend: flex, ndarray, wgpu or cuda.
        #[arg(long, default_value = "flex")]
        backend: Backend,
        /// For a VAE, draw pixels from p(x|z) instead of showing the mean image E[x|z].
        #[arg(long)]
        pixel_draws: bool,
        #[command(flatten)]
        sampler: SamplerArgs,
        /// Draw every sample of this class (class-conditional models: cgan).
        #[arg(long)]
        label: Option<usize>,
    },
    /// Complete test images from their top rows (autoregressive and diffusion models) into a
    /// PNG grid: originals, the observed part, then one row per completion.
    Complete {
        #[command(flatten)]
        source: ModelSource,
        /// Rows observed at the top of each image.
        #[arg(long)]
        rows_observed: usize,
        /// Output PNG.
        #[arg(long, default_value = "completion.png")]
        out: PathBuf,
        /// Test images to complete.
        #[arg(short = 'n', long, default_value_t = 8)]
        n: usize,
        /// Completions per image.
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Seed of the first completion (the next ones use seed + 1, …).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        sampler: SamplerArgs,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Sample quality against DDIM's number of steps (diffusion models): MNIST-FID, the
    /// Inception-style score, sharpness and sampling time per image for each --steps, into
    /// ddim_curve.md, .csv and .json, and fid_vs_steps.png and time_vs_steps.png.
    DdimCurve {
        #[command(flatten)]
        source: ModelSource,
        /// DDIM's reverse steps, one point each (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [10, 20, 50, 100, 1000])]
        steps: Vec<usize>,
        /// DDIM's noise scale η ≥ 0 (0: deterministic given the starting noise).
        #[arg(long, default_value_t = 0.0)]
        eta: f64,
        /// Samples scored per point (the same starting noise for every point).
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "runs/ddim-curve")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Time each model's default preset on each backend: a training step (forward, backward,
    /// optimiser), log-likelihood evaluation and sampling (naive and cached), in images/s,
    /// with peak memory on the CPU backends.
    Bench(bench::BenchArgs),
    /// Train every model of the comparison (PixelCNN, Gated PixelCNN, Row LSTM, Diagonal
    /// BiLSTM, Bernoulli mixture, VAE, DDPM, two DCGANs, AE; and on 8-bit grey digits
    /// PixelCNN with a 256-way softmax, a VAE with a discretized Gaussian decoder and a
    /// Gaussian mixture) on the same data and score them on the same test split: likelihoods,
    /// MNIST-FID, Inception-style score, mode coverage, sharpness, sampling and training
    /// speed. Writes results.md/.json/.csv, samples.png and nll_vs_time.png
    /// (nll_vs_time_grey.png).
    Compare(compare::CompareArgs),
    /// The zoo of trained models: list it, or pack a `converged` comparison into it.
    #[command(subcommand)]
    Zoo(zoo::ZooCommand),
    /// Train the sample-quality judge (a LeNet-like MNIST classifier, docs/sample-quality.md)
    /// and write its weights.
    TrainJudge(judge::TrainJudgeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Long work (evaluation, EM, Parzen, the judge, compare, bench) shows bars on a terminal.
    genmodels::report::TerminalProgress::install();
    let backend = match &cli.command {
        Command::Train(args) => args.data.backend,
        Command::Eval { data, .. } => data.backend,
        Command::Score { data, .. } => data.backend,
        Command::Anomaly(args) => args.data.backend,
        Command::Latent(args) => args.data.backend,
        Command::Probe(args) => args.data.backend,
        Command::Superres(args) => args.data.backend,
        Command::Sample { backend, .. } => *backend,
        Command::Complete { data, .. } => data.backend,
        Command::DdimCurve { data, .. } => data.backend,
        Command::Bench(args) => args.backends.first().copied().unwrap_or_default(),
        Command::TrainJudge(args) => args.data.backend,
        Command::Compare(args) => args.data.backend,
        Command::Zoo(command) => command.backend(),
    };
    // burn restores optimiser state onto `Device::default()`; pin that to the chosen backend.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("BURN_DEVICE", backend.name()) };

    // On flex, every command runs on the compute threads (see `on_compute_threads`); a backend
    // that is not compiled in gets its error from the command itself.
    let command = cli.command;
    let run = move || match command {
        Command::Train(args) => commands::train(&args),
        Command::Eval {
            source,
            data,
            iwae_k,
            seed,
            parzen,
            parzen_samples,
            parzen_validation,
            quality_samples,
            sampler,
        } => source.dir().and_then(|(dir, read_only)| {
            commands::eval(
                &dir,
                &data,
                &commands::EvalRequest {
                    read_only,
                    iwae_k,
                    seed,
                    parzen: parzen.then_some(commands::ParzenRequest {
                        samples: parzen_samples,
                        validation: parzen_validation,
                    }),
                    quality_samples,
                    sampler,
                },
            )
        }),
        Command::Score {
            source,
            data,
            iwae_k,
            seed,
            out,
        } => source.dir().and_then(|(dir, _)| {
            commands::score(&dir, &data, &commands::ScoreRequest { iwae_k, seed }, &out)
        }),
        Command::Sample {
            source,
            n,
            seed,
            out,
            backend,
            pixel_draws,
            sampler,
            label,
        } => source.dir().and_then(|(dir, _)| {
            commands::sample(
                &dir,
                &commands::SampleRequest { n, seed, label },
                &out,
                backend,
                &SampleOptions {
                    pixel_draws,
                    sampler,
                },
            )
        }),
        Command::Complete {
            source,
            rows_observed,
            out,
            n,
            samples,
            seed,
            sampler,
            data,
        } => source.dir().and_then(|(dir, _)| {
            commands::complete(
                &dir,
                &commands::CompletionRequest {
                    rows_observed,
                    images: n,
                    samples,
                    seed,
                    sampler,
                },
                &out,
                &data,
            )
        }),
        Command::DdimCurve {
            source,
            steps,
            eta,
            samples,
            seed,
            out,
            data,
        } => source.dir().and_then(|(dir, _)| {
            commands::ddim_curve(
                &dir,
                &commands::DdimCurveRequest {
                    steps,
                    eta,
                    samples,
                    seed,
                },
                &out,
                &data,
            )
        }),
        Command::Anomaly(args) => anomaly::anomaly(&args),
        Command::Latent(args) => latent::latent(&args),
        Command::Probe(args) => probe::probe(&args),
        Command::Superres(args) => superres::superres(&args),
        Command::Zoo(command) => zoo::zoo(&command),
        Command::Bench(args) => bench::bench(&args),
        Command::TrainJudge(args) => judge::train_judge(&args),
        Command::Compare(args) => compare::compare(&args),
    };
    let result = match backend.device() {
        Ok(device) => genmodels::kernels::on_compute_threads(&device, run),
        Err(_) => run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_model_is_a_command_line_name() {
        let names: Vec<&str> = ModelName::value_variants()
            .iter()
            .map(|m| m.name())
            .collect();
        assert_eq!(names, genmodels::registry::names());
        for model in ModelName::value_variants() {
            let parsed = <ModelName as ValueEnum>::from_str(model.name(), false).unwrap();
            assert_eq!(parsed.name(), model.name());
        }
        assert!(<ModelName as ValueEnum>::from_str("pixelcnn++", false).is_err());
    }
}

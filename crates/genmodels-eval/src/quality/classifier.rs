//! The judge: a LeNet-like MNIST classifier, its training, and running it over images.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::{CLASSES, JudgedImages};
use genmodels_core::batch::{ImageBatch, ImageDataset, ImageShape, to_host};
use genmodels_core::checkpoint::{load_exactly, weights_are_finite};
use genmodels_core::error::{GenError, Result};
use genmodels_core::evaluation::scalar;
use genmodels_core::fs::write_atomic;
use genmodels_core::progress::Progress;
use genmodels_core::trainer::{
    EpochLoop, EpochRecord, Learner, LoopSettings, StepOutcome, StepPosition, StepRecord,
    TrainingObserver, TrainingPlan,
};

/// Images per forward pass when judging or measuring accuracy: small enough that the
/// activations of a chunk (about 45 MB at 500 images) fit anywhere.
const CHUNK: usize = 500;

/// Configuration of the judge's [`Classifier`], created with [`ClassifierConfig::init`].
///
/// The defaults are the shipped judge's architecture; weights only load into a classifier
/// built from the same configuration.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// Output channels of the two 5×5 convolutions.
    #[config(default = "[32, 64]")]
    pub channels: [usize; 2],
    /// Width of the hidden layer, whose activations are the judge's features.
    #[config(default = 128)]
    pub hidden: usize,
}

impl ClassifierConfig {
    /// Builds the classifier with fresh weights from the device's random generator (seed it
    /// with `device.seed`).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when a width is zero.
    pub fn init(&self, device: &Device) -> Result<Classifier> {
        if self.channels.contains(&0) || self.hidden == 0 {
            return Err(GenError::InvalidConfig(format!(
                "classifier widths must be positive, got channels {:?} and hidden {}",
                self.channels, self.hidden
            )));
        }
        let [c1, c2] = self.channels;
        // 28 → conv 5 → 24 → pool → 12 → conv 5 → 8 → pool → 4.
        let flat = c2 * 4 * 4;
        Ok(Classifier {
            conv1: Conv2dConfig::new([1, c1], [5, 5]).init(device),
            conv2: Conv2dConfig::new([c1, c2], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            hidden: LinearConfig::new(flat, self.hidden).init(device),
            output: LinearConfig::new(self.hidden, CLASSES).init(device),
        })
    }

    /// Builds the classifier with weights drawn on the host from `seed`, with burn's default
    /// scheme (every weight and bias uniform in `±1/√fan_in`). The same seed gives the same
    /// weights on every backend, whatever else draws from the device's global generator at
    /// the same time.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when a width is zero.
    pub fn init_seeded(&self, seed: u64, device: &Device) -> Result<Classifier> {
        let mut c = self.init(device)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw = |shape: &[usize], fan_in: usize| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let values: Vec<f32> = (0..shape.iter().product())
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            TensorData::new(values, shape.to_vec())
        };
        let [c1, c2] = self.channels;
        let (h, flat) = (self.hidden, c2 * 4 * 4);
        c.conv1.weight = Param::from_data(draw(&[c1, 1, 5, 5], 25), device);
        c.conv1.bias = Some(Param::from_data(draw(&[c1], 25), device));
        c.conv2.weight = Param::from_data(draw(&[c2, c1, 5, 5], c1 * 25), device);
        c.conv2.bias = Some(Param::from_data(draw(&[c2], c1 * 25), device));
        c.hidden.weight = Param::from_data(draw(&[flat, h], flat), device);
        c.hidden.bias = Some(Param::from_data(draw(&[h], flat), device));
        c.output.weight = Param::from_data(draw(&[h, CLASSES], h), device);
        c.output.bias = Some(Param::from_data(draw(&[CLASSES], h), device));
        Ok(c)
    }
}

/// A LeNet-like classifier of 28×28 grey digits:
/// `conv 5×5 → ReLU → max-pool 2 → conv 5×5 → ReLU → max-pool 2 → flatten → Linear → ReLU →
/// Linear`. The activations after the hidden ReLU are the *features* the sample-quality
/// metrics compare.
#[derive(Module, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    hidden: Linear,
    output: Linear,
}

impl Classifier {
    /// The class logits.
    ///
    /// # Shapes
    /// - images: `[N, 1, 28, 28]`, values in `[0, 1]`
    /// - output: `[N, 10]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.features_and_logits(images).1
    }

    /// The penultimate features and the class logits.
    ///
    /// # Shapes
    /// - images: `[N, 1, 28, 28]`, values in `[0, 1]`
    /// - output: features `[N, hidden]` (after the ReLU, so non-negative), logits `[N, 10]`
    pub fn features_and_logits(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let features = relu(self.hidden.forward(self.flat_conv(images)));
        let logits = self.output.forward(features.clone());
        (features, logits)
    }

    /// Features per image (the hidden width).
    pub fn feature_dim(&self) -> usize {
        self.hidden.weight.dims()[1]
    }

    fn flat_conv(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv1.forward(images)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let [n, c, h, w] = x.dims();
        x.reshape([n, c * h * w])
    }

    /// Logits with dropout of probability `dropout` on the flattened convolution output and
    /// on the features, the masks drawn from `rng` on the host (so that training does not
    /// depend on the device's global generator).
    fn forward_dropout(&self, images: Tensor<4>, dropout: f64, rng: &mut StdRng) -> Tensor<2> {
        let mut drop = |x: Tensor<2>| {
            if dropout == 0.0 {
                return x;
            }
            let [n, d] = x.dims();
            let keep = 1.0 - dropout;
            let scale = (1.0 / keep) as f32;
            let mask: Vec<f32> = (0..n * d)
                .map(|_| {
                    if rng.random::<f64>() < keep {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_data(TensorData::new(mask, [n, d]), &x.device());
            x * mask
        };
        let features = relu(self.hidden.forward(drop(self.flat_conv(images))));
        self.output.forward(drop(features))
    }
}

/// How [`train_classifier`] trains the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierTrainingConfig {
    /// The architecture.
    pub model: ClassifierConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per Adam step.
    pub batch_size: usize,
    /// Adam's initial learning rate; it decays to 0 along a cosine over the run.
    pub learning_rate: f64,
    /// Seeds the weights, the shuffle, the augmentation and the dropout, all drawn on the host:
    /// a seed gives the same classifier on a given backend, however many trainings run at
    /// once.
    pub seed: u64,
    /// Probability that a training image is shown binarised (each pixel drawn as
    /// Bernoulli(grey level)) instead of grey, so that the judge's features mean the same on
    /// the grey samples of GANs and the binary samples of Bernoulli models.
    pub binarize_fraction: f64,
    /// Training images are shifted by up to this many pixels in each direction (uniformly,
    /// zero fill): translations the classifier should not care about.
    pub max_shift: usize,
    /// Dropout probability on the flattened convolution output and on the features.
    pub dropout: f64,
    /// Report progress to the installed display ([`genmodels_core::progress`]): a bar on a
    /// terminal, or one line per epoch elsewhere.
    pub progress: bool,
}

impl Default for ClassifierTrainingConfig {
    fn default() -> Self {
        Self {
            model: ClassifierConfig::new(),
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
            binarize_fraction: 0.5,
            max_shift: 2,
            dropout: 0.25,
            progress: true,
        }
    }
}

impl ClassifierTrainingConfig {
    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(GenError::InvalidConfig(reason));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("the classifier needs at least one epoch and a positive batch size".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "the learning rate must be positive and finite, got {}",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.binarize_fraction) {
            return bad(format!(
                "binarize_fraction must lie in [0, 1], got {}",
                self.binarize_fraction
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must lie in [0, 1), got {}", self.dropout));
        }
        if self.max_shift >= 28 {
            return bad(format!(
                "a shift of {} pixels would move a digit out of its 28×28 image",
                self.max_shift
            ));
        }
        Ok(())
    }
}

/// What [`train_classifier`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierReport {
    /// Epochs run.
    pub epochs: usize,
    /// Adam steps taken.
    pub steps: usize,
    /// Mean training cross-entropy (nats) of each epoch, on augmented images with dropout.
    pub epoch_losses: Vec<f64>,
    /// Fraction of augmented training images classified correctly during each epoch.
    pub epoch_accuracies: Vec<f64>,
    /// Wall-clock seconds of training.
    pub train_seconds: f64,
}

/// The shape every judged image must have.
const JUDGE_SHAPE: ImageShape = ImageShape::MNIST;

/// Trains a classifier on labelled 1×28×28 images with cross-entropy and Adam, through the
/// trainer's [`EpochLoop`]: shuffled each epoch from the seed, each image randomly shifted and
/// (with probability `binarize_fraction`) binarised, dropout on the two fully connected
/// layers, the learning rate decaying along a cosine. Runs on `device.autodiff()` and returns
/// the classifier on `device`.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a bad configuration, [`GenError::InvalidLabels`] for a data set
/// without labels;
/// [`GenError::EmptyData`] and [`GenError::ShapeMismatch`] for an empty set or images that
/// are not 1×28×28; [`GenError::ValueOutOfRange`] for a label outside `0..=9`;
/// [`GenError::Diverged`] when the loss becomes NaN or infinite.
pub fn train_classifier(
    config: &ClassifierTrainingConfig,
    train: &dyn ImageDataset,
    device: &Device,
) -> Result<(Classifier, ClassifierReport)> {
    config.validate()?;
    require_images(train, "classifier training images")?;
    let model = config.model.init_seeded(config.seed, device)?;
    let train_device = device.clone().autodiff();
    let model = model.fork(&train_device).train();
    let settings = LoopSettings {
        epochs: config.epochs,
        batch_size: config.batch_size,
        seed: config.seed,
        max_steps: None,
        max_train_seconds: None,
    };
    let mut learner = ClassifierLearner {
        config,
        optimizer: AdamConfig::new().with_epsilon(1e-8).init(),
        total_steps: config.epochs * train.len().div_ceil(config.batch_size),
        device: train_device.clone(),
    };
    let mut progress = JudgeProgress {
        show: config.progress,
        progress: Progress::silent(),
    };
    let (model, done) = EpochLoop::new(settings, train, &train_device)
        .with_observer(&mut progress)
        .run(&mut learner, model, StepPosition::default())?;
    let model = model.valid().fork(device);
    // A finite loss can still leave non-finite weights behind the last update.
    if !weights_are_finite(&model)? {
        return Err(GenError::Diverged {
            step: done.steps,
            epoch: config.epochs,
            loss: f64::NAN,
            last_checkpoint: None,
        });
    }
    let mean_of = |name: &str| -> Vec<f64> {
        done.epoch_means
            .iter()
            .map(|means| {
                means
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(f64::NAN, |m| m.1)
            })
            .collect()
    };
    let report = ClassifierReport {
        epochs: done.epoch_means.len(),
        steps: done.steps,
        epoch_losses: mean_of(LOSS),
        epoch_accuracies: mean_of(ACCURACY),
        train_seconds: done.train_seconds,
    };
    Ok((model, report))
}

/// The names the classifier's epoch means go by.
const LOSS: &str = "loss";
const ACCURACY: &str = "accuracy";

/// One Adam step of the classifier on an augmented batch, for the [`EpochLoop`].
struct ClassifierLearner<'a> {
    config: &'a ClassifierTrainingConfig,
    optimizer: ModuleOptimizer,
    total_steps: usize,
    device: Device,
}

impl Learner<Classifier> for ClassifierLearner<'_> {
    fn step(
        &mut self,
        model: Classifier,
        batch: &ImageBatch,
        at: StepPosition,
        random: &mut StdRng,
    ) -> Result<(Classifier, StepOutcome)> {
        let config = self.config;
        let labels = host_labels(batch)?;
        let mut pixels = to_host(batch.images().clone())?;
        augment(&mut pixels, config, random);
        let m = labels.len();
        let images = Tensor::from_data(
            TensorData::new(pixels, JUDGE_SHAPE.batch_dims(m)),
            &self.device,
        );
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [m]), &self.device);
        let logits = model.forward_dropout(images, config.dropout, random);
        let correct = count_correct(logits.clone(), &labels)?;
        let loss = cross_entropy(logits, targets);
        let value = scalar(loss.clone())?;
        if !value.is_finite() {
            return Err(GenError::Diverged {
                step: at.step,
                epoch: at.epoch + 1,
                loss: value,
                last_checkpoint: None,
            });
        }
        // Cosine decay from the initial rate to 0 over the run.
        let progress = (at.step - 1) as f64 / self.total_steps as f64;
        let lr = config.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optimizer.step(lr, model, grads);
        let outcome = StepOutcome {
            objectives: vec![(LOSS.into(), value)],
            // Epoch means over images: the batch mean weighted by its size, and the hits.
            tallies: vec![
                (LOSS.into(), value * m as f64, m as f64),
                (ACCURACY.into(), correct as f64, m as f64),
            ],
        };
        Ok((model, outcome))
    }
}

/// The judge's training as shown: a bar of images, or a line per epoch where no bar is drawn.
struct JudgeProgress {
    show: bool,
    progress: Progress,
}

impl TrainingObserver for JudgeProgress {
    fn started(&mut self, plan: &TrainingPlan) {
        if self.show {
            self.progress = Progress::count(plan.planned_images as u64, "judge", "img");
        }
    }

    fn stepped(&mut self, step: &StepRecord<'_>) {
        self.progress.advance(step.images as u64);
        if let Some((_, loss)) = step.objectives.first() {
            self.progress
                .set_message(|| format!("epoch {}/{} · loss {loss:.3}", step.epoch, step.epochs));
        }
    }

    fn epoch_ended(&mut self, epoch: &EpochRecord<'_>) {
        if !self.progress.is_shown() || self.progress.is_drawn() {
            return;
        }
        let mean = |name: &str| {
            epoch
                .components
                .iter()
                .find(|(n, _)| n == name)
                .map_or(f64::NAN, |m| m.1)
        };
        self.progress.print_line(&format!(
            "judge epoch {}/{}: loss {:.4}, training accuracy {:.2}%",
            epoch.epoch,
            epoch.epochs,
            mean(LOSS),
            100.0 * mean(ACCURACY)
        ));
    }

    fn finished(&mut self, failed: bool) {
        let progress = std::mem::replace(&mut self.progress, Progress::silent());
        if !failed {
            progress.finish();
        }
        // Dropped unfinished, a failed bar shows as failed.
    }
}

/// Mean cross-entropy of `logits` `[N, 10]` against class indices `[N]`.
fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([n, 1]));
    picked.mean().neg()
}

/// How many rows of `logits` have their largest value at the label.
fn count_correct(logits: Tensor<2>, labels: &[i64]) -> Result<usize> {
    let predicted = logits
        .argmax(1)
        .try_into_vec_as::<i64>()
        .map_err(|e| GenError::Backend(format!("reading predictions back: {e:?}")))?;
    Ok(predicted.iter().zip(labels).filter(|(p, l)| p == l).count())
}

/// The batch's labels on the host, checked to be digits.
fn host_labels(batch: &ImageBatch) -> Result<Vec<i64>> {
    let labels = batch
        .labels()
        .ok_or_else(|| {
            GenError::InvalidLabels(
                "the judge's classifier needs labelled images; this data set has no labels".into(),
            )
        })?
        .clone()
        .try_into_vec_as::<i64>()
        .map_err(|e| GenError::Backend(format!("reading labels back: {e:?}")))?;
    if let Some(&bad) = labels.iter().find(|&&l| !(0..CLASSES as i64).contains(&l)) {
        return Err(GenError::ValueOutOfRange {
            context: "classifier labels".into(),
            expected: format!("a digit 0..={}", CLASSES - 1),
            found: bad as f32,
        });
    }
    Ok(labels)
}

/// Shifts each 28×28 image by a random offset in `[-max_shift, max_shift]²` (zero fill), then
/// binarises it with probability `binarize_fraction`.
fn augment(pixels: &mut [f32], config: &ClassifierTrainingConfig, rng: &mut StdRng) {
    let (h, w) = (JUDGE_SHAPE.height, JUDGE_SHAPE.width);
    let s = config.max_shift as i64;
    let mut shifted = vec![0.0f32; h * w];
    for image in pixels.chunks_exact_mut(h * w) {
        if s > 0 {
            let dy = rng.random_range(-s..=s);
            let dx = rng.random_range(-s..=s);
            shifted.fill(0.0);
            for y in 0..h as i64 {
                let sy = y - dy;
                if !(0..h as i64).contains(&sy) {
                    continue;
                }
                for x in 0..w as i64 {
                    let sx = x - dx;
                    if (0..w as i64).contains(&sx) {
                        shifted[(y as usize) * w + x as usize] =
                            image[(sy as usize) * w + sx as usize];
                    }
                }
            }
            image.copy_from_slice(&shifted);
        }
        if rng.random::<f64>() < config.binarize_fraction {
            for v in image.iter_mut() {
                *v = f32::from(u8::from(rng.random::<f32>() < *v));
            }
        }
    }
}

/// Checks that a data set is non-empty and holds 1×28×28 images.
fn require_images(data: &dyn ImageDataset, context: &str) -> Result<()> {
    if data.is_empty() {
        return Err(GenError::EmptyData {
            context: context.into(),
        });
    }
    if data.image_shape() != JUDGE_SHAPE {
        return Err(GenError::ShapeMismatch {
            context: context.into(),
            expected: JUDGE_SHAPE.to_string(),
            actual: data.image_shape().to_string(),
        });
    }
    Ok(())
}

/// The device a module's weights live on (`fallback` for a module without weights).
fn module_device<M: Module>(module: &M, fallback: &Device) -> Device {
    module
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(|| fallback.clone())
}

/// The fraction of `test` images whose most probable class is their label, in chunks of
/// `batch` images presented as in epoch 0 (so a stochastically binarised set gives the same
/// number every time). The images are built on `device` and moved to the classifier's device.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a zero batch, [`GenError::InvalidLabels`] for a data set without
/// labels;
/// [`GenError::EmptyData`] and [`GenError::ShapeMismatch`] for an empty set or images that
/// are not 1×28×28.
pub fn classifier_accuracy(
    classifier: &Classifier,
    test: &dyn ImageDataset,
    batch: usize,
    device: &Device,
) -> Result<f64> {
    if batch == 0 {
        return Err(GenError::InvalidConfig(
            "the evaluation batch size must be positive".into(),
        ));
    }
    require_images(test, "classifier test images")?;
    let model_device = module_device(classifier, device);
    let indices: Vec<usize> = (0..test.len()).collect();
    let mut correct = 0;
    for chunk in indices.chunks(batch) {
        let images = test.batch(chunk, 0, device)?;
        let labels = host_labels(&images)?;
        let logits = classifier.forward(images.images().clone().to_device(&model_device));
        correct += count_correct(logits, &labels)?;
    }
    Ok(correct as f64 / test.len() as f64)
}

/// The sample-quality judge: a trained [`Classifier`] that turns images into features and
/// class probabilities ([`JudgedImages`]).
///
/// The shipped MNIST judge is `genmodels_data::mnist_judge`.
#[derive(Debug, Clone)]
pub struct Judge {
    classifier: Classifier,
    device: Device,
}

impl Judge {
    /// Wraps a trained classifier; it judges on the device its weights live on.
    pub fn new(classifier: Classifier) -> Self {
        let device = module_device(&classifier, &Device::default());
        Self {
            classifier: classifier.valid(),
            device,
        }
    }

    /// Loads weights saved by [`Judge::save`] (safetensors) into the default
    /// [`ClassifierConfig`], on `device`.
    ///
    /// # Errors
    /// [`GenError::CorruptCheckpoint`] when the bytes are not safetensors or hold non-finite
    /// weights; [`GenError::CheckpointMismatch`] when the tensors do not fit the architecture
    /// (missing, surplus or of another shape).
    pub fn from_safetensors_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        Self::decode(bytes, device, Path::new("<safetensors bytes>"))
    }

    /// Loads a judge from a safetensors file written by [`Judge::save`].
    ///
    /// # Errors
    /// [`GenError::CorruptCheckpoint`] when the file is missing or unreadable; otherwise as
    /// [`Judge::from_safetensors_bytes`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| GenError::CorruptCheckpoint {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Self::decode(&bytes, device, path)
    }

    fn decode(bytes: &[u8], device: &Device, path: &Path) -> Result<Self> {
        let corrupt = |reason: String| GenError::CorruptCheckpoint {
            path: PathBuf::from(path),
            reason,
        };
        let classifier = ClassifierConfig::new().init(device)?;
        // Collect every problem instead of failing on the first, so that bytes that do not
        // decode (corrupt) are told apart from tensors that do not fit (mismatch).
        let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
            .validate(false)
            .allow_partial(true);
        let classifier = load_exactly(classifier, &mut store, path, "classifier")?;
        if !weights_are_finite(&classifier)? {
            return Err(corrupt("the weights hold NaN or infinite values".into()));
        }
        Ok(Self {
            classifier: classifier.valid(),
            device: device.clone(),
        })
    }

    /// The classifier's weights as safetensors bytes. The same weights always give the same
    /// bytes, so a retrained judge can be compared with the shipped one by checksum.
    ///
    /// # Errors
    /// [`GenError::Backend`] when the tensors cannot be read or encoded.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        // burn's default metadata is a hash map of three entries, written in a random order;
        // a single entry keeps the header, and so the file, reproducible.
        let mut store = SafetensorsStore::from_bytes(None)
            .clear_metadata()
            .metadata("producer", "genmodels quality::Judge");
        self.classifier
            .save_into(&mut store)
            .map_err(|e| GenError::Backend(format!("serialising the judge: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| GenError::Backend(format!("serialising the judge: {e}")))
    }

    /// Writes the weights to `path` as safetensors, atomically (a crash leaves the old file or
    /// the new one, never a torn mix).
    ///
    /// # Errors
    /// [`GenError::Backend`] when the weights cannot be encoded, [`GenError::Io`] when the
    /// file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_safetensors_bytes()?)
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The device the judge runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the classifier on `images` in chunks of 500, keeping each image's features and
    /// class probabilities.
    ///
    /// # Shapes
    /// - images: `[N, 1, 28, 28]`, `N ≥ 1`, values in `[0, 1]`, on any device
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for `N = 0`; [`GenError::ShapeMismatch`] for another image
    /// shape; [`GenError::NonFiniteInput`] for NaN or ±∞; [`GenError::ValueOutOfRange`] for
    /// values outside `[0, 1]`.
    pub fn judge(&self, images: Tensor<4>) -> Result<JudgedImages> {
        let [n, c, h, w] = images.dims();
        if n == 0 {
            return Err(GenError::EmptyData {
                context: "images to judge".into(),
            });
        }
        if [c, h, w] != [1, 28, 28] {
            return Err(GenError::shape(
                "images to judge",
                JUDGE_SHAPE.batch_dims(n),
                [n, c, h, w],
            ));
        }
        let pixels = to_host(images)?;
        if pixels.iter().any(|v| !v.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: "images to judge".into(),
            });
        }
        if let Some(&v) = pixels.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(GenError::ValueOutOfRange {
                context: "images to judge".into(),
                expected: "[0, 1]".into(),
                found: v,
            });
        }
        let d = JUDGE_SHAPE.dims();
        let mut features = Vec::with_capacity(n * self.classifier.feature_dim());
        let mut probabilities = Vec::with_capacity(n * CLASSES);
        for chunk in pixels.chunks(CHUNK * d) {
            let m = chunk.len() / d;
            let x = Tensor::from_data(
                TensorData::new(chunk.to_vec(), JUDGE_SHAPE.batch_dims(m)),
                &self.device,
            );
            let (f, logits) = self.classifier.features_and_logits(x);
            features.extend(to_host(f)?.into_iter().map(f64::from));
            probabilities.extend(to_host(softmax(logits, 1))?.into_iter().map(f64::from));
        }
        JudgedImages::new(features, probabilities, self.classifier.feature_dim())
    }

    /// Judges the first `limit` images of `data` (all of them for `None`), presented as in
    /// epoch 0 and built on `device`, 500 at a time.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] when there is no image to judge (an empty set or `limit` 0);
    /// [`GenError::ShapeMismatch`] for images that are not 1×28×28; errors of the data set.
    pub fn judge_dataset(
        &self,
        data: &dyn ImageDataset,
        limit: Option<usize>,
        device: &Device,
    ) -> Result<JudgedImages> {
        let n = limit.map_or(data.len(), |l| l.min(data.len()));
        if n == 0 {
            return Err(GenError::EmptyData {
                context: "images to judge".into(),
            });
        }
        require_images(data, "images to judge")?;
        self.judge_in_batches(n, CHUNK, |start, count| {
            let indices: Vec<usize> = (start..start + count).collect();
            Ok(data.batch(&indices, 0, device)?.images().clone())
        })
    }

    /// Judges `total` images made `batch` at a time by `images(start, count)` (images
    /// `start..start + count`, e.g. samples drawn with a seed offset by `start`), so that
    /// only one batch of images is alive at once.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for `total` or `batch` 0; errors of `images`; as
    /// [`Judge::judge`] for images that are not 1×28×28.
    pub fn judge_in_batches(
        &self,
        total: usize,
        batch: usize,
        mut images: impl FnMut(usize, usize) -> Result<Tensor<4>>,
    ) -> Result<JudgedImages> {
        if total == 0 || batch == 0 {
            return Err(GenError::EmptyData {
                context: "images to judge".into(),
            });
        }
        let mut judged = self.judge(images(0, batch.min(total))?)?;
        let mut start = batch.min(total);
        while start < total {
            let count = batch.min(total - start);
            judged.append(self.judge(images(start, count)?)?)?;
            start += count;
        }
        Ok(judged)
    }
}

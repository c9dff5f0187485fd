//! Anomaly detection measured: how well a model's per-image anomaly score
//! ([`AnomalyScore`](genmodels_core::AnomalyScore)) separates test digits from anomalies, as
//! the area under the ROC curve (AUROC), on two tasks built from the bundled data.
//!
//! - **Corruptions** ([`CorruptionTask`]): for a seed, `N` clean test digits against `N`
//!   *other* test digits corrupted by each [`Corruption`] in turn (Gaussian pixel noise,
//!   inversion, an occluding square, rotations by 90° and 180°, and the blank image). The
//!   corruptions act on the 8-bit grey digits; the corrupted images are then presented exactly
//!   as the model's test data is (binarised once with the test split's seed for a binary
//!   model, kept grey for a grey one), so every image lies on the model's pixel grid.
//! - **A held-out class** ([`HoldoutSplit`]): a model trained on the digits of every class but
//!   `k` scores the test digits of class `k` against the test digits of the other classes.
//!   Building the split is here; training the model on it is the caller's.
//!
//! Higher scores are more anomalous, so AUROC 1 is a perfect detector, 0.5 chance, and an
//! AUROC under 0.5 means the model finds the anomalies *more* typical than real digits: the
//! failure Nalisnick et al. (2019, "Do deep generative models know what they don't know?")
//! found for likelihood models. Two corrected scores are reported beside the raw one, on the
//! same images:
//!
//! - **typicality** ([`typicality`]): `|s(x) − mean s over held-out training digits|`, the
//!   per-image form of Nalisnick et al.'s (2019b) typicality test: an image is anomalous when
//!   its score is far from the typical score *in either direction*, so an image that is too
//!   likely (a blank) is flagged as well as one that is too unlikely. It applies to any score.
//! - **likelihood ratio** ([`likelihood_ratio`]): `−log p(x) − (−log p_bg(x))`, the model's
//!   surprise minus that of a background model that knows only each pixel's marginal
//!   ([`PixelBackground`]: an independent Bernoulli or 256-way categorical per pixel, fitted to
//!   the training digits). Like Ren et al.'s (2019) ratio and Serrà et al.'s (2020) input
//!   complexity, it removes the part of the likelihood that simple images win by being simple.
//!   It needs a likelihood in nats, so the AE's and the GANs' scores get none.

use genmodels_core::burn::tensor::Device;
use genmodels_core::progress::Progress;
use genmodels_core::{
    AnomalyScores, GenError, ImageBatch, ImageDataset, ImageShape, LikelihoodOptions, Result,
};
use genmodels_data::{Binarization, Dataset, ImageSet};
use genmodels_eval::metrics::auroc;

/// Clean (and corrupted) test digits per task unless told otherwise.
pub const DEFAULT_IMAGES: usize = 500;
/// The standard deviation of [`Corruption::GaussianNoise`], on pixels scaled to `[0, 1]`.
pub const NOISE_SIGMA: f32 = 0.3;
/// The side of [`Corruption::Occlusion`]'s square, in pixels (at most the image's side).
pub const OCCLUSION_SIDE: usize = 10;
/// The Laplace smoothing count of [`PixelBackground::fit`].
pub const BACKGROUND_SMOOTHING: f64 = 1.0;

/// How a test digit is made anomalous. Every corruption maps 8-bit pixels to 8-bit pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// `clip(x + σ·ε, 0, 1)` per pixel, `ε ~ N(0, 1)`, σ = [`NOISE_SIGMA`], rounded to 8 bits.
    GaussianNoise,
    /// `1 − x`: white background, black strokes.
    Inversion,
    /// A square of side [`OCCLUSION_SIDE`] at a uniformly drawn place, all 0 or all 1 (a fair
    /// coin per image).
    Occlusion,
    /// Turned by 90° clockwise (square images only).
    Rotation90,
    /// Turned by 180°.
    Rotation180,
    /// All pixels 0: the simplest image there is, Nalisnick et al.'s classic case.
    Blank,
}

impl Corruption {
    /// Every corruption, in the order of the tables.
    pub const ALL: [Corruption; 6] = [
        Corruption::GaussianNoise,
        Corruption::Inversion,
        Corruption::Occlusion,
        Corruption::Rotation90,
        Corruption::Rotation180,
        Corruption::Blank,
    ];

    /// The short name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Self::GaussianNoise => "noise",
            Self::Inversion => "inversion",
            Self::Occlusion => "occlusion",
            Self::Rotation90 => "rotation-90",
            Self::Rotation180 => "rotation-180",
            Self::Blank => "blank",
        }
    }

    /// What it does, in words.
    pub fn description(self) -> &'static str {
        match self {
            Self::GaussianNoise => "Gaussian pixel noise, σ = 0.3, clipped to [0, 1]",
            Self::Inversion => "inverted, 1 − x",
            Self::Occlusion => "a 10×10 square set to 0 or 1",
            Self::Rotation90 => "rotated by 90°",
            Self::Rotation180 => "rotated by 180°",
            Self::Blank => "all pixels 0",
        }
    }

    /// The corrupted copy of one 8-bit image of `shape` (planar `[C, H, W]`), drawing what it
    /// needs from `rng`.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when `image` does not hold `shape`'s pixels, or for
    /// [`Corruption::Rotation90`] of an image that is not square.
    pub fn apply(self, image: &[u8], shape: ImageShape, rng: &mut SplitMix64) -> Result<Vec<u8>> {
        if image.len() != shape.dims() {
            return Err(GenError::shape(
                "image to corrupt",
                shape.dims(),
                image.len(),
            ));
        }
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        let at = |ch: usize, y: usize, x: usize| image[(ch * h + y) * w + x];
        Ok(match self {
            Self::GaussianNoise => image
                .iter()
                .map(|&v| {
                    let noisy = f32::from(v) / 255.0 + NOISE_SIGMA * rng.standard_normal() as f32;
                    (noisy.clamp(0.0, 1.0) * 255.0).round() as u8
                })
                .collect(),
            Self::Inversion => image.iter().map(|&v| 255 - v).collect(),
            Self::Occlusion => {
                let side = OCCLUSION_SIDE.min(h).min(w);
                let y0 = rng.below(h - side + 1);
                let x0 = rng.below(w - side + 1);
                let value = if rng.below(2) == 1 { 255 } else { 0 };
                let mut out = image.to_vec();
                for ch in 0..c {
                    for y in y0..y0 + side {
                        for x in x0..x0 + side {
                            out[(ch * h + y) * w + x] = value;
                        }
                    }
                }
                out
            }
            Self::Rotation90 => {
                if h != w {
                    return Err(GenError::ShapeMismatch {
                        context: "a rotation by 90°".into(),
                        expected: "a square image".into(),
                        actual: format!("{shape}"),
                    });
                }
                // Clockwise: the left column, read bottom-up, becomes the top row.
                let mut out = Vec::with_capacity(image.len());
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            out.push(at(ch, h - 1 - x, y));
                        }
                    }
                }
                out
            }
            Self::Rotation180 => {
                let mut out = Vec::with_capacity(image.len());
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            out.push(at(ch, h - 1 - y, w - 1 - x));
                        }
                    }
                }
                out
            }
            Self::Blank => vec![0; image.len()],
        })
    }
}

/// A small, fully specified random number generator (SplitMix64, Steele et al. 2014), so that a
/// task's images are fixed by its seed whatever the `rand` crate's version does.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for item `index` of stream `stream` under `seed`: independent of how many
    /// items other streams draw.
    pub fn keyed(seed: u64, stream: u64, index: u64) -> Self {
        let mut mix = Self::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let key = mix.next_u64() ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        Self::new(key)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`), by rejection, so without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n.max(1) as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// A standard normal draw (Box–Muller).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Stream keys of [`SplitMix64::keyed`] in a [`CorruptionTask`].
const SELECTION_STREAM: u64 = 1;
const CORRUPTION_STREAM: u64 = 100;

/// The corruption task: `N` clean test digits and `N` other test digits under each
/// [`Corruption`], fixed by a seed.
///
/// The test split is shuffled by the seed (Fisher–Yates on [`SplitMix64`]); its first `N`
/// digits are the clean ones and the next `N` the ones corrupted. Corruption `j` of image `i`
/// draws from its own generator ([`SplitMix64::keyed`] with `seed`, stream `100 + j`, index
/// `i`), so a task's images depend on the seed and `N` alone.
#[derive(Debug, Clone)]
pub struct CorruptionTask {
    /// The seed.
    pub seed: u64,
    /// The clean digits (8-bit, with their labels).
    pub clean: ImageSet,
    /// The digits before corruption.
    pub source: ImageSet,
    /// Each corruption of `source`, in [`Corruption::ALL`]'s order.
    pub corrupted: Vec<(Corruption, ImageSet)>,
}

impl CorruptionTask {
    /// Builds the task from a test split.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `images` 0 or more than half the test split (the clean
    /// and the corrupted digits are different digits); [`GenError::ShapeMismatch`] for a
    /// non-square image (the 90° rotation).
    pub fn new(test: &ImageSet, images: usize, seed: u64) -> Result<Self> {
        if images == 0 {
            return Err(GenError::InvalidConfig(
                "the anomaly task needs at least 1 image".into(),
            ));
        }
        if 2 * images > test.len() {
            return Err(GenError::InvalidConfig(format!(
                "{images} clean and {images} corrupted digits need {} test digits, but the test \
                 split has {} (at most {} images)",
                2 * images,
                test.len(),
                test.len() / 2
            )));
        }
        let mut order: Vec<usize> = (0..test.len()).collect();
        let mut rng = SplitMix64::keyed(seed, SELECTION_STREAM, 0);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let clean = select(test, &order[..images])?;
        let source = select(test, &order[images..2 * images])?;
        let shape = test.shape();
        let corrupted = Corruption::ALL
            .iter()
            .enumerate()
            .map(|(j, &corruption)| {
                let mut pixels = Vec::with_capacity(images * shape.dims());
                for i in 0..images {
                    let mut rng = SplitMix64::keyed(seed, CORRUPTION_STREAM + j as u64, i as u64);
                    pixels.extend(corruption.apply(source.image(i), shape, &mut rng)?);
                }
                let set = ImageSet::new(shape, pixels, source.labels().map(<[u8]>::to_vec))?;
                Ok((corruption, set))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            seed,
            clean,
            source,
            corrupted,
        })
    }
}

/// The images of `set` at `indices`, in that order, with their labels.
fn select(set: &ImageSet, indices: &[usize]) -> Result<ImageSet> {
    let pixels = indices
        .iter()
        .flat_map(|&i| set.image(i).to_vec())
        .collect();
    let labels = set
        .labels()
        .map(|l| indices.iter().map(|&i| l[i]).collect());
    Ok(ImageSet::new(set.shape(), pixels, labels)?)
}

/// Task (a): one class held out of training.
///
/// `train` is the training split without class `class`; `inliers` the test digits of the other
/// classes and `outliers` those of `class`, each in file order (so the split has no seed),
/// each cut to its first `images` when asked.
#[derive(Debug, Clone)]
pub struct HoldoutSplit {
    /// The held-out class.
    pub class: u8,
    /// Training digits of every other class.
    pub train: ImageSet,
    /// Test digits of the trained classes.
    pub inliers: ImageSet,
    /// Test digits of the held-out class.
    pub outliers: ImageSet,
}

impl HoldoutSplit {
    /// Splits `train` and `test` (both labelled) for held-out class `class`.
    ///
    /// # Errors
    /// [`GenError::InvalidLabels`] for a split without labels;
    /// [`GenError::InvalidConfig`] for `images` 0, or a class with no test digits (none to
    /// score). A training split that already lacks the class (data written by
    /// [`HoldoutSplit::write_idx`]) is fine.
    pub fn new(
        train: &ImageSet,
        test: &ImageSet,
        class: u8,
        images: Option<usize>,
    ) -> Result<Self> {
        if images == Some(0) {
            return Err(GenError::InvalidConfig(
                "the anomaly task needs at least 1 image".into(),
            ));
        }
        let cap = |set: ImageSet| match images {
            Some(n) => set.take(n),
            None => set,
        };
        let outliers = cap(of_class(test, class, true, "test")?);
        if outliers.is_empty() {
            return Err(GenError::InvalidConfig(format!(
                "class {class} has no test digits to score"
            )));
        }
        Ok(Self {
            class,
            train: of_class(train, class, false, "training")?,
            inliers: cap(of_class(test, class, false, "test")?),
            outliers,
        })
    }

    /// Writes the split as MNIST-style IDX files in `dir` (created if missing), for
    /// `genmodels train --data-dir dir`: `train-…` holds [`train`](Self::train) (every class but
    /// the held-out one) and `test-…` the whole `test` split given, so that a model trained
    /// on it is evaluated on the usual test digits.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of more than one channel (IDX holds `[N, H, W]`);
    /// [`GenError::Io`] when a file cannot be written.
    pub fn write_idx(&self, test: &ImageSet, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| GenError::io(dir, e))?;
        for (set, split) in [(&self.train, "train"), (test, "test")] {
            let shape = set.shape();
            if shape.channels != 1 {
                return Err(GenError::shape("IDX images", "1 channel", shape.channels));
            }
            let pixels: Vec<u8> = (0..set.len()).flat_map(|i| set.image(i).to_vec()).collect();
            let images = idx_bytes(0x08, &[set.len(), shape.height, shape.width], &pixels)?;
            write_file(&dir.join(format!("{split}-images-idx3-ubyte")), &images)?;
            if let Some(labels) = set.labels() {
                let labels = idx_bytes(0x08, &[set.len()], labels)?;
                write_file(&dir.join(format!("{split}-labels-idx1-ubyte")), &labels)?;
            }
        }
        Ok(())
    }
}

/// The images of `set` whose label is `class` (`wanted`) or is not (`!wanted`), in order.
///
/// # Errors
/// [`GenError::InvalidLabels`] for a set without labels.
pub fn of_class(set: &ImageSet, class: u8, wanted: bool, split: &str) -> Result<ImageSet> {
    let labels = set.labels().ok_or_else(|| {
        GenError::InvalidLabels(format!(
            "holding a class out needs labels, and the {split} split has none"
        ))
    })?;
    let indices: Vec<usize> = (0..set.len())
        .filter(|&i| (labels[i] == class) == wanted)
        .collect();
    select(set, &indices)
}

/// An IDX file's bytes: magic `0 0 type rank`, each dimension as a big-endian `u32`, the data.
fn idx_bytes(data_type: u8, dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0, 0, data_type, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| {
            GenError::InvalidConfig(format!("an IDX dimension of {d} is too large"))
        })?;
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    genmodels_core::fs::write_atomic(path, bytes)
}

/// A background model that knows each pixel's marginal and nothing else: an independent
/// Bernoulli (binary data) or 256-way categorical (8-bit data) per pixel, fitted by counting
/// with [`BACKGROUND_SMOOTHING`] added to every count. Its `−log p(x)` is in the same nats as
/// a model's exact likelihood of the same discrete image.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBackground {
    levels: usize,
    shape: ImageShape,
    /// `log p(pixel d = level l)` at `d · levels + l`.
    log_probs: Vec<f64>,
}

impl PixelBackground {
    /// Fits to `train` as presented in epoch 0 (binarised as it is for the model).
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for no images; any error of building the batches.
    pub fn fit(train: &Dataset, device: &Device) -> Result<Self> {
        let levels = presented_levels(train.binarization());
        let shape = train.image_shape();
        let dims = shape.dims();
        if train.is_empty() {
            return Err(GenError::EmptyData {
                context: "the background model's training digits".into(),
            });
        }
        let mut counts = vec![0u64; dims * levels];
        for_each_level_image(train, device, |image| {
            for (d, &l) in image.iter().enumerate() {
                counts[d * levels + l] += 1;
            }
        })?;
        let total = train.len() as f64 + BACKGROUND_SMOOTHING * levels as f64;
        let log_probs = counts
            .iter()
            .map(|&c| ((c as f64 + BACKGROUND_SMOOTHING) / total).ln())
            .collect();
        Ok(Self {
            levels,
            shape,
            log_probs,
        })
    }

    /// From explicit probabilities, `p[d · levels + l]` (for tests and hand-made backgrounds).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] unless each pixel's `levels` probabilities are positive and
    /// sum to 1 (within 1e-9), and `levels` is 2 or 256.
    pub fn from_probabilities(shape: ImageShape, levels: usize, p: &[f64]) -> Result<Self> {
        if levels != 2 && levels != 256 {
            return Err(GenError::InvalidConfig(format!(
                "a pixel background has 2 or 256 levels, not {levels}"
            )));
        }
        if p.len() != shape.dims() * levels {
            return Err(GenError::shape(
                "background probabilities",
                shape.dims() * levels,
                p.len(),
            ));
        }
        for pixel in p.chunks(levels) {
            let sum: f64 = pixel.iter().sum();
            if pixel.iter().any(|&q| q.is_nan() || q <= 0.0) || (sum - 1.0).abs() > 1e-9 {
                return Err(GenError::InvalidConfig(format!(
                    "a pixel's background probabilities must be positive and sum to 1, got {pixel:?}"
                )));
            }
        }
        Ok(Self {
            levels,
            shape,
            log_probs: p.iter().map(|q| q.ln()).collect(),
        })
    }

    /// Pixel levels: 2 (binary) or 256.
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// `−log p_bg(x)` in nats of every image of `data` (as presented in epoch 0).
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] for images of another shape, [`GenError::InvalidConfig`] for
    /// data presented with another number of levels than the background was fitted on.
    pub fn neg_log_likelihood(&self, data: &Dataset, device: &Device) -> Result<Vec<f64>> {
        if data.image_shape() != self.shape {
            return Err(GenError::shape(
                "the background model's images",
                self.shape,
                data.image_shape(),
            ));
        }
        let levels = presented_levels(data.binarization());
        if levels != self.levels {
            return Err(GenError::InvalidConfig(format!(
                "the background model was fitted on {}-level pixels, the data has {levels}",
                self.levels
            )));
        }
        let mut out = Vec::with_capacity(data.len());
        for_each_level_image(data, device, |image| {
            let ll: f64 = image
                .iter()
                .enumerate()
                .map(|(d, &l)| self.log_probs[d * self.levels + l])
                .sum();
            out.push(-ll);
        })?;
        Ok(out)
    }
}

/// How many pixel levels a presentation gives: 2 once binarised, 256 for grey bytes.
fn presented_levels(binarization: Binarization) -> usize {
    match binarization {
        Binarization::None => 256,
        _ => 2,
    }
}

/// Images per batch when a set is read or scored.
const READ_BATCH: usize = 100;

/// Calls `f` with the pixel levels (`0..levels`) of every image of `data` as presented in
/// epoch 0, in order.
fn for_each_level_image(
    data: &Dataset,
    device: &Device,
    mut f: impl FnMut(&[usize]),
) -> Result<()> {
    let max = (presented_levels(data.binarization()) - 1) as f32;
    let dims = data.image_shape().dims();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(READ_BATCH) {
        let batch = data.batch(chunk, 0, device)?;
        let pixels = genmodels_core::batch::to_host(batch.images().clone())?;
        for image in pixels.chunks(dims) {
            let levels: Vec<usize> = image.iter().map(|&v| (v * max).round() as usize).collect();
            f(&levels);
        }
    }
    Ok(())
}

/// The typicality score of each of `scores`: `|s − reference_mean|`, its distance from the
/// mean score of in-distribution images.
pub fn typicality(scores: &[f64], reference_mean: f64) -> Vec<f64> {
    scores.iter().map(|s| (s - reference_mean).abs()).collect()
}

/// The likelihood-ratio score of each image: `model_nll − background_nll`, i.e.
/// `−log p(x) + log p_bg(x)`.
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the two lists differ in length.
pub fn likelihood_ratio(model_nll: &[f64], background_nll: &[f64]) -> Result<Vec<f64>> {
    if model_nll.len() != background_nll.len() {
        return Err(GenError::shape(
            "likelihood ratio",
            model_nll.len(),
            background_nll.len(),
        ));
    }
    Ok(model_nll
        .iter()
        .zip(background_nll)
        .map(|(m, b)| m - b)
        .collect())
}

/// A model's anomaly score of one batch: usually a model's
/// [`anomaly_scores`](genmodels_core::AnomalyScore::anomaly_scores).
pub type Scorer<'a> = dyn FnMut(&ImageBatch, &LikelihoodOptions) -> Result<AnomalyScores> + 'a;

/// Scores every image of `data` (epoch 0) in batches of `batch_size`, batch `b` with
/// `options`' seed plus `b` (as whole-set evaluation does).
///
/// # Errors
/// [`GenError::EmptyData`] for no images or `batch_size` 0 is [`GenError::InvalidConfig`];
/// whatever the scorer returns.
pub fn score_dataset(
    scorer: &mut Scorer<'_>,
    data: &dyn ImageDataset,
    options: &LikelihoodOptions,
    batch_size: usize,
    device: &Device,
    name: &str,
) -> Result<AnomalyScores> {
    if batch_size == 0 {
        return Err(GenError::InvalidConfig(
            "scoring needs a batch size of at least 1".into(),
        ));
    }
    let progress = Progress::count(data.len() as u64, name, "images");
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut all: Option<AnomalyScores> = None;
    for (b, chunk) in indices.chunks(batch_size).enumerate() {
        let batch = data.batch(chunk, 0, device)?;
        let scores = scorer(
            &batch,
            &options.with_seed(options.seed.wrapping_add(b as u64)),
        )?;
        if scores.scores.len() != chunk.len() {
            return Err(GenError::shape(
                "anomaly scores of a batch",
                chunk.len(),
                scores.scores.len(),
            ));
        }
        match &mut all {
            Some(all) => all.extend(scores)?,
            None => all = Some(scores),
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    all.ok_or_else(|| GenError::EmptyData {
        context: name.to_string(),
    })
}

/// What an anomaly task measures besides the model: its presentation and the corrections.
#[derive(Clone, Copy)]
pub struct AnomalyInputs<'a> {
    /// Held-out in-distribution digits (presented as the model's), whose mean score is the
    /// typical score.
    pub reference: &'a Dataset,
    /// The background of the likelihood ratio; `None` for a score that is not `−log p(x)`.
    pub background: Option<&'a PixelBackground>,
    /// The estimator's options (`iwae_k`, the seed of batch 0).
    pub options: LikelihoodOptions,
    /// Images per scored batch.
    pub batch_size: usize,
}

/// One row of an [`AnomalyReport`]: the inliers against one set of anomalies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnomalyRow {
    /// The anomalies' name (`noise`, …, or `class-7`).
    pub anomaly: String,
    /// What they are.
    pub description: String,
    /// How many.
    pub images: usize,
    /// AUROC of the model's own score.
    pub auroc: f64,
    /// AUROC of the typicality score.
    pub auroc_typicality: f64,
    /// AUROC of the likelihood ratio, for a score that is `−log p(x)`.
    pub auroc_ratio: Option<f64>,
    /// The anomalies' mean score.
    pub mean_score: f64,
}

/// The AUROCs of one model on one task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnomalyReport {
    /// The task, in words.
    pub task: String,
    /// The score's column name (`neg_log_likelihood_nats`, …).
    pub score: String,
    /// The score, in words.
    pub score_description: String,
    /// In-distribution images scored.
    pub inliers: usize,
    /// Their mean score.
    pub inlier_mean_score: f64,
    /// Reference images whose mean score is the typical one.
    pub reference_images: usize,
    /// That mean.
    pub reference_mean_score: f64,
    /// One row per set of anomalies.
    pub rows: Vec<AnomalyRow>,
}

impl AnomalyReport {
    /// A Markdown table: one row per set of anomalies, AUROC raw, by typicality and by the
    /// likelihood ratio ("–" where it does not apply), and the mean scores.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "{}\n\nscore: {} (`{}`); {} inliers, mean score {:.2}; typical score {:.2} (mean of \
             {} held-out training digits)\n\n",
            self.task,
            self.score_description,
            self.score,
            self.inliers,
            self.inlier_mean_score,
            self.reference_mean_score,
            self.reference_images
        );
        out.push_str(
            "| anomaly | images | AUROC | AUROC typicality | AUROC likelihood ratio | mean score |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.3} | {:.3} | {} | {:.2} |\n",
                row.anomaly,
                row.images,
                row.auroc,
                row.auroc_typicality,
                row.auroc_ratio
                    .map_or_else(|| "–".to_string(), |a| format!("{a:.3}")),
                row.mean_score
            ));
        }
        out
    }

    /// CSV: a header, then one line per row (`auroc_ratio` empty where it does not apply).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "anomaly,images,auroc,auroc_typicality,auroc_ratio,mean_score,inlier_mean_score,score\n",
        );
        for row in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                row.anomaly,
                row.images,
                row.auroc,
                row.auroc_typicality,
                row.auroc_ratio.map_or_else(String::new, |a| a.to_string()),
                row.mean_score,
                self.inlier_mean_score,
                self.score
            ));
        }
        out
    }
}

/// Scores `inliers` and each set of `anomalies` with `scorer` and reports the AUROC of the
/// raw score, the typicality score and (with a background) the likelihood ratio.
///
/// # Errors
/// [`GenError::EmptyData`] for an empty set; whatever the scorer or the background return.
pub fn evaluate(
    scorer: &mut Scorer<'_>,
    task: &str,
    inliers: &Dataset,
    anomalies: &[(String, String, Dataset)],
    inputs: AnomalyInputs<'_>,
    device: &Device,
) -> Result<AnomalyReport> {
    let AnomalyInputs {
        reference,
        background,
        options,
        batch_size,
    } = inputs;
    let reference_scores = score_dataset(
        scorer,
        reference,
        &options,
        batch_size,
        device,
        "anomaly: reference",
    )?;
    let reference_mean = mean(&reference_scores.scores);
    let clean = score_dataset(
        scorer,
        inliers,
        &options,
        batch_size,
        device,
        "anomaly: inliers",
    )?;
    let ratio_of = |scores: &[f64], data: &Dataset| -> Result<Option<Vec<f64>>> {
        background
            .map(|bg| likelihood_ratio(scores, &bg.neg_log_likelihood(data, device)?))
            .transpose()
    };
    let clean_ratio = ratio_of(&clean.scores, inliers)?;
    let clean_typicality = typicality(&clean.scores, reference_mean);
    let mut rows = Vec::with_capacity(anomalies.len());
    for (name, description, data) in anomalies {
        let scores = score_dataset(
            scorer,
            data,
            &options,
            batch_size,
            device,
            &format!("anomaly: {name}"),
        )?;
        if scores.name != clean.name {
            return Err(GenError::InvalidConfig(format!(
                "the anomalies were scored as `{}`, the inliers as `{}`",
                scores.name, clean.name
            )));
        }
        let auroc_ratio = match (&clean_ratio, ratio_of(&scores.scores, data)?) {
            (Some(clean), Some(ratio)) => Some(auroc(&ratio, clean)?),
            _ => None,
        };
        rows.push(AnomalyRow {
            anomaly: name.clone(),
            description: description.clone(),
            images: data.len(),
            auroc: auroc(&scores.scores, &clean.scores)?,
            auroc_typicality: auroc(
                &typicality(&scores.scores, reference_mean),
                &clean_typicality,
            )?,
            auroc_ratio,
            mean_score: mean(&scores.scores),
        });
    }
    Ok(AnomalyReport {
        task: task.to_string(),
        score: clean.name,
        score_description: clean.description,
        inliers: inliers.len(),
        inlier_mean_score: mean(&clean.scores),
        reference_images: reference.len(),
        reference_mean_score: reference_mean,
        rows,
    })
}

/// The corruption task for a model whose test data is presented with `presentation`.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_corruptions(
    scorer: &mut Scorer<'_>,
    task: &CorruptionTask,
    presentation: Binarization,
    inputs: AnomalyInputs<'_>,
    device: &Device,
) -> Result<AnomalyReport> {
    let inliers = task.clean.clone().with_binarization(presentation);
    let anomalies: Vec<(String, String, Dataset)> = task
        .corrupted
        .iter()
        .map(|(c, set)| {
            (
                c.name().to_string(),
                c.description().to_string(),
                set.clone().with_binarization(presentation),
            )
        })
        .collect();
    let title = format!(
        "Corrupted test digits against clean ones (seed {}, {} clean, {} per corruption)",
        task.seed,
        task.clean.len(),
        task.source.len()
    );
    evaluate(scorer, &title, &inliers, &anomalies, inputs, device)
}

/// The held-out-class task, for a model trained on `split.train` whose test data is presented
/// with `presentation`.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_holdout(
    scorer: &mut Scorer<'_>,
    split: &HoldoutSplit,
    presentation: Binarization,
    inputs: AnomalyInputs<'_>,
    device: &Device,
) -> Result<AnomalyReport> {
    let inliers = split.inliers.clone().with_binarization(presentation);
    let anomalies = vec![(
        format!("class-{}", split.class),
        format!("test digits of class {}, held out of training", split.class),
        split.outliers.clone().with_binarization(presentation),
    )];
    let title = format!(
        "Test digits of class {} (held out of training) against those of the other classes",
        split.class
    );
    evaluate(scorer, &title, &inliers, &anomalies, inputs, device)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use genmodels_core::Backend;

    fn device() -> Device {
        Backend::Flex.device().unwrap()
    }

    /// `n` (at most 60) 1×4×4 images: image `i` has pixel `d` at grey level `i + 13 d`, so its
    /// first pixel names it and its mean is `(i + 97.5) / 255`.
    fn ramp_set(n: usize) -> ImageSet {
        let shape = ImageShape::new(1, 4, 4);
        let pixels = (0..n)
            .flat_map(|i| (0..16).map(move |d| (i + 13 * d) as u8))
            .collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        ImageSet::new(shape, pixels, Some(labels)).unwrap()
    }

    #[test]
    fn a_perfect_separator_scores_one_and_a_reversed_one_zero() {
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]).unwrap(), 1.0);
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]).unwrap(), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]).unwrap(), 0.5);
    }

    #[test]
    fn rotations_and_inversion_are_the_known_permutations() {
        let shape = ImageShape::new(1, 2, 2);
        // a b / c d
        let image = [1u8, 2, 3, 4];
        let mut rng = SplitMix64::new(0);
        // Clockwise: c a / d b.
        assert_eq!(
            Corruption::Rotation90
                .apply(&image, shape, &mut rng)
                .unwrap(),
            [3, 1, 4, 2]
        );
        assert_eq!(
            Corruption::Rotation180
                .apply(&image, shape, &mut rng)
                .unwrap(),
            [4, 3, 2, 1]
        );
        assert_eq!(
            Corruption::Inversion
                .apply(&image, shape, &mut rng)
                .unwrap(),
            [254, 253, 252, 251]
        );
        assert_eq!(
            Corruption::Blank.apply(&image, shape, &mut rng).unwrap(),
            [0; 4]
        );
        // Four quarter turns are the identity.
        let big = ramp_set(1);
        let mut turned = big.image(0).to_vec();
        for _ in 0..4 {
            turned = Corruption::Rotation90
                .apply(&turned, big.shape(), &mut rng)
                .unwrap();
        }
        assert_eq!(turned, big.image(0));
        assert!(matches!(
            Corruption::Rotation90.apply(&[0; 6], ImageShape::new(1, 2, 3), &mut rng),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Corruption::Inversion.apply(&[0; 3], shape, &mut rng),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn occlusion_sets_one_square_to_one_value() {
        let shape = ImageShape::new(1, 28, 28);
        let image = vec![128u8; shape.dims()];
        for seed in 0..20 {
            let out = Corruption::Occlusion
                .apply(&image, shape, &mut SplitMix64::new(seed))
                .unwrap();
            let changed: Vec<usize> = (0..out.len()).filter(|&i| out[i] != 128).collect();
            assert_eq!(changed.len(), OCCLUSION_SIDE * OCCLUSION_SIDE);
            let value = out[changed[0]];
            assert!(value == 0 || value == 255);
            assert!(changed.iter().all(|&i| out[i] == value));
            let (ys, xs): (Vec<usize>, Vec<usize>) =
                changed.iter().map(|&i| (i / 28, i % 28)).unzip();
            assert_eq!(
                ys.iter().max().unwrap() - ys.iter().min().unwrap(),
                OCCLUSION_SIDE - 1
            );
            assert_eq!(
                xs.iter().max().unwrap() - xs.iter().min().unwrap(),
                OCCLUSION_SIDE - 1
            );
        }
    }

    #[test]
    fn noise_has_the_stated_spread() {
        let shape = ImageShape::new(1, 100, 100);
        let image = vec![128u8; shape.dims()];
        let out = Corruption::GaussianNoise
            .apply(&image, shape, &mut SplitMix64::new(3))
            .unwrap();
        let deltas: Vec<f64> = out
            .iter()
            .map(|&v| (f64::from(v) - 128.0) / 255.0)
            .collect();
        let m = mean(&deltas);
        let sd = (deltas.iter().map(|d| (d - m).powi(2)).sum::<f64>() / deltas.len() as f64).sqrt();
        // Clipping at 0 and 1 (about 1.6 σ away) trims the spread a little.
        assert!(m.abs() < 0.01, "mean shift {m}");
        assert!((0.25..0.31).contains(&sd), "spread {sd}");
    }

    #[test]
    fn tasks_are_fixed_by_their_seed_and_keep_pixels_on_the_grid() {
        let test = ramp_set(40);
        let a = CorruptionTask::new(&test, 10, 7).unwrap();
        let b = CorruptionTask::new(&test, 10, 7).unwrap();
        let c = CorruptionTask::new(&test, 10, 8).unwrap();
        assert_eq!(a.clean, b.clean);
        assert_eq!(a.corrupted.len(), Corruption::ALL.len());
        for ((ca, sa), (cb, sb)) in a.corrupted.iter().zip(&b.corrupted) {
            assert_eq!((ca, sa), (cb, sb));
            assert_eq!(sa.len(), 10);
        }
        assert_ne!(a.clean, c.clean);
        // Clean and corrupted digits are different test digits: every ramp image is unique by
        // its first pixel.
        let firsts = |s: &ImageSet| (0..s.len()).map(|i| s.image(i)[0]).collect::<Vec<_>>();
        let clean = firsts(&a.clean);
        assert!(firsts(&a.source).iter().all(|f| !clean.contains(f)));
        // Presented binarised, every corrupted image is binary; kept grey, 8-bit.
        let device = device();
        for (_, set) in &a.corrupted {
            let binary = set
                .clone()
                .with_binarization(Binarization::Stochastic { seed: 1 });
            let batch = binary.first(10, &device).unwrap();
            assert_eq!(batch.domain(), genmodels_core::PixelDomain::Binary);
            let pixels = genmodels_core::batch::to_host(batch.images().clone()).unwrap();
            assert!(pixels.iter().all(|&v| v == 0.0 || v == 1.0));
            let grey = set.clone().with_binarization(Binarization::None);
            let pixels =
                genmodels_core::batch::to_host(grey.first(10, &device).unwrap().images().clone())
                    .unwrap();
            assert!(
                pixels
                    .iter()
                    .all(|&v| ((v * 255.0).round() - v * 255.0).abs() < 1e-4)
            );
        }
        assert!(matches!(
            CorruptionTask::new(&test, 0, 0),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(matches!(
            CorruptionTask::new(&test, 21, 0),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(CorruptionTask::new(&test, 20, 0).is_ok());
    }

    #[test]
    fn the_holdout_split_separates_one_class() {
        let train = ramp_set(30);
        let test = ramp_set(20);
        let split = HoldoutSplit::new(&train, &test, 3, None).unwrap();
        assert_eq!(split.train.len(), 27);
        assert!(split.train.labels().unwrap().iter().all(|&l| l != 3));
        assert_eq!(split.outliers.labels().unwrap(), [3, 3]);
        assert_eq!(split.inliers.len(), 18);
        assert!(split.inliers.labels().unwrap().iter().all(|&l| l != 3));
        let capped = HoldoutSplit::new(&train, &test, 3, Some(1)).unwrap();
        assert_eq!((capped.inliers.len(), capped.outliers.len()), (1, 1));
        assert_eq!(capped.train.len(), 27);
        assert!(matches!(
            HoldoutSplit::new(&train, &test, 11, None),
            Err(GenError::InvalidConfig(_))
        ));
        // A training split that already lacks the class splits the same way.
        let again = HoldoutSplit::new(&split.train, &test, 3, None).unwrap();
        assert_eq!(again.train, split.train);
        // Written as IDX files, the split reads back as MNIST.
        let dir = tempfile::tempdir().unwrap();
        split.write_idx(&test, dir.path()).unwrap();
        let back = genmodels_data::Mnist::from_dir(dir.path()).unwrap();
        assert_eq!(back.train, split.train);
        assert_eq!(back.test, test);
        let unlabelled = ImageSet::new(test.shape(), test.image(0).to_vec(), None).unwrap();
        assert!(matches!(
            HoldoutSplit::new(&train, &unlabelled, 3, None),
            Err(GenError::InvalidLabels(_))
        ));
    }

    #[test]
    fn corrected_scores_follow_their_formulas() {
        assert_eq!(typicality(&[1.0, 5.0, 3.0], 3.0), [2.0, 2.0, 0.0]);
        assert_eq!(
            likelihood_ratio(&[10.0, 4.0], &[7.0, 6.0]).unwrap(),
            [3.0, -2.0]
        );
        assert!(matches!(
            likelihood_ratio(&[1.0], &[]),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn the_background_counts_pixels_with_laplace_smoothing() {
        let device = device();
        let shape = ImageShape::new(1, 1, 2);
        // Three binary images: pixel 0 is on in two, pixel 1 in none.
        let set = ImageSet::new(shape, vec![255, 0, 255, 0, 0, 0], None)
            .unwrap()
            .with_binarization(Binarization::Threshold(0.5));
        let bg = PixelBackground::fit(&set, &device).unwrap();
        assert_eq!(bg.levels(), 2);
        // p(pixel 0 = 1) = (2 + 1) / (3 + 2), p(pixel 1 = 0) = (3 + 1) / 5.
        let nll = bg.neg_log_likelihood(&set, &device).unwrap();
        let on = -(0.6f64.ln() + 0.8f64.ln());
        let off = -(0.4f64.ln() + 0.8f64.ln());
        for (got, want) in nll.iter().zip([on, on, off]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        let grey = ImageSet::new(shape, vec![1, 2], None)
            .unwrap()
            .with_binarization(Binarization::None);
        assert!(matches!(
            bg.neg_log_likelihood(&grey, &device),
            Err(GenError::InvalidConfig(_))
        ));
        let grey_bg = PixelBackground::fit(&grey, &device).unwrap();
        assert_eq!(grey_bg.levels(), 256);
        // One image: its levels get (1 + 1) / (1 + 256) each.
        let want = -2.0 * (2.0f64 / 257.0).ln();
        assert!((grey_bg.neg_log_likelihood(&grey, &device).unwrap()[0] - want).abs() < 1e-12);
        let uniform = PixelBackground::from_probabilities(shape, 2, &[0.5; 4]).unwrap();
        assert!(
            (uniform.neg_log_likelihood(&set, &device).unwrap()[0] - 2.0 * 2f64.ln()).abs() < 1e-12
        );
        assert!(PixelBackground::from_probabilities(shape, 2, &[0.5, 0.6, 0.5, 0.5]).is_err());
        assert!(PixelBackground::from_probabilities(shape, 3, &[0.5; 6]).is_err());
    }

    #[test]
    fn evaluation_reports_separation_and_its_corrections() {
        // A scorer whose score is the image's mean pixel, in "nats": blank images score
        // lowest, inverted ones highest. The blank set is then detected only by typicality.
        let device = device();
        let test = ramp_set(40);
        let task = CorruptionTask::new(&test, 10, 1).unwrap();
        let mut scorer = |batch: &ImageBatch, _: &LikelihoodOptions| -> Result<AnomalyScores> {
            let pixels = genmodels_core::batch::to_host(batch.images().clone())?;
            Ok(AnomalyScores {
                name: "neg_log_likelihood_nats".into(),
                description: "mean pixel".into(),
                scores: pixels
                    .chunks(16)
                    .map(|p| mean(&p.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
                    .collect(),
            })
        };
        let reference = ramp_set(20).with_binarization(Binarization::None);
        let background = PixelBackground::fit(&reference, &device).unwrap();
        let inputs = AnomalyInputs {
            reference: &reference,
            background: Some(&background),
            options: LikelihoodOptions::default(),
            batch_size: 3,
        };
        let report =
            evaluate_corruptions(&mut scorer, &task, Binarization::None, inputs, &device).unwrap();
        assert_eq!(report.rows.len(), 6);
        assert_eq!(report.inliers, 10);
        let row = |name: &str| report.rows.iter().find(|r| r.anomaly == name).unwrap();
        assert_eq!(row("blank").auroc, 0.0);
        assert_eq!(row("blank").mean_score, 0.0);
        assert_eq!(row("blank").auroc_typicality, 1.0);
        for r in &report.rows {
            assert!((0.0..=1.0).contains(&r.auroc));
            assert!(r.auroc_ratio.is_some_and(|a| (0.0..=1.0).contains(&a)));
        }
        let md = report.to_markdown();
        assert!(md.contains("| blank | 10 | 0.000 | 1.000 |"), "{md}");
        let csv = report.to_csv();
        assert_eq!(csv.lines().count(), 7);
        assert!(csv.starts_with("anomaly,images,auroc,"));
        // Without a background there is no ratio.
        let inputs = AnomalyInputs {
            background: None,
            ..inputs
        };
        let report =
            evaluate_corruptions(&mut scorer, &task, Binarization::None, inputs, &device).unwrap();
        assert!(report.rows.iter().all(|r| r.auroc_ratio.is_none()));
        assert!(report.to_markdown().contains("| – |"));
        // The held-out class task on the same scorer.
        let split = HoldoutSplit::new(&ramp_set(30), &test, 2, None).unwrap();
        let report =
            evaluate_holdout(&mut scorer, &split, Binarization::None, inputs, &device).unwrap();
        assert_eq!(report.rows.len(), 1);
        assert_eq!(report.rows[0].anomaly, "class-2");
        assert_eq!(report.rows[0].images, 4);
        assert_eq!(report.inliers, 36);
    }
}

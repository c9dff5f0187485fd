//! The maths of the autoregressive models, checked directly: causality by perturbation,
//! exact normalisation by enumeration, and sampling against the model's own probabilities.

use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::batch::to_host;
use genmodels_core::{AnomalyScore, Complete, SampleWithMethod};
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodOptions, ModelConfig, Trainable,
};
use rand::Rng;

use crate::raster::{self, RasterModel, SamplingMethod};
use crate::{MaskedConvImpl, PixelCnn, PixelCnnConfig, PixelDistribution};

mod cached;
mod diagonal_bilstm;
mod gated_pixelcnn;
mod row_lstm;

pub(crate) fn device() -> Device {
    Device::flex()
}

fn pixelcnn(shape: ImageShape, distribution: PixelDistribution, seed: u64) -> PixelCnn {
    pixelcnn_with(shape, distribution, seed, MaskedConvImpl::Split)
}

fn pixelcnn_with(
    shape: ImageShape,
    distribution: PixelDistribution,
    seed: u64,
    conv_impl: MaskedConvImpl,
) -> PixelCnn {
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        PixelCnnConfig::new()
            .with_conv_impl(conv_impl)
            .with_image_shape(shape)
            .with_distribution(distribution)
            .with_hidden(6)
            .with_residual_blocks(2)
            .with_input_kernel(5)
            .init(device)
    })
    .unwrap()
}

/// The value a sub-pixel can take at level `l` of `levels`.
pub(crate) fn level_value(l: usize, levels: usize) -> f32 {
    l as f32 / (levels - 1) as f32
}

pub(crate) fn levels_of(distribution: PixelDistribution) -> usize {
    match distribution {
        PixelDistribution::Bernoulli => 2,
        PixelDistribution::Categorical { levels } => levels,
    }
}

/// The logits of one image (labelled 0 for a conditional model).
pub(crate) fn logits<M: RasterModel>(model: &M, pixels: &[f32]) -> Vec<f32> {
    let shape = model.raster_shape();
    let images = Tensor::<4>::from_data(
        TensorData::new(pixels.to_vec(), shape.batch_dims(1)),
        &device(),
    );
    to_host(model.logits(images, test_labels(model, 1))).unwrap()
}

/// Labels `0, 1, 2, …` for a conditional model, `None` otherwise.
pub(crate) fn test_labels<M: RasterModel>(model: &M, n: usize) -> Option<Tensor<1, Int>> {
    model
        .is_conditional()
        .then(|| raster::cycling_labels(n, 10, &device()))
}

/// Changes sub-pixel `(c, y, x)` and checks that no conditional at or before it in
/// raster/channel order moves, and that some later one does.
fn assert_causal(distribution: PixelDistribution, shape: ImageShape) {
    for conv_impl in [MaskedConvImpl::Masked, MaskedConvImpl::Split] {
        let model = pixelcnn_with(shape, distribution, 3, conv_impl);
        assert_model_is_causal(&model, &format!("PixelCNN, {conv_impl:?}"));
    }
}

/// Checks a model's [`Represent`](genmodels_core::capabilities::Represent): `[N, F]`,
/// finite and deterministic; the mean over positions of the hidden map whose readout is the
/// logits; each image's row its own; and blind to the last sub-pixel, which no position of
/// the hidden map sees (each sees only the sub-pixels before its own).
pub(crate) fn assert_representation_is_the_pooled_hidden_map<M>(model: &M, what: &str)
where
    M: RasterModel + genmodels_core::capabilities::Represent,
{
    let shape = model.raster_shape();
    let levels = levels_of(model.distribution());
    let n = 3;
    let mut rng = genmodels_core::random::rng(17);
    let pixels: Vec<f32> = (0..n * shape.dims())
        .map(|_| level_value(rng.random_range(0..levels), levels))
        .collect();
    let labels = model.is_conditional().then(|| vec![0, 1, 2]);
    let batch = ImageBatch::from_host(pixels.clone(), shape, labels.clone(), &device()).unwrap();
    let r = model.representation(&batch).unwrap();
    let [rows, features] = r.dims();
    assert_eq!(rows, n, "{what}");
    let values = to_host(r).unwrap();
    assert!(values.iter().all(|v| v.is_finite()), "{what}");
    assert_eq!(
        values,
        to_host(model.representation(&batch).unwrap()).unwrap(),
        "{what}: not deterministic"
    );
    // The pooled map is the one the head reads: its readout is the logits.
    let images = batch.images().clone();
    let hidden = model.hidden_map(images.clone(), batch.labels().cloned());
    let [_, f, h, w] = hidden.dims();
    assert_eq!(f, features, "{what}");
    let read_out = to_host(model.read_out(hidden.clone())).unwrap();
    let logits = to_host(model.logits(images, batch.labels().cloned())).unwrap();
    assert_eq!(read_out.len(), logits.len(), "{what}");
    for (a, b) in read_out.iter().zip(&logits) {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    }
    let hidden = to_host(hidden).unwrap();
    for (i, row) in values.chunks(features).enumerate() {
        for (c, v) in row.iter().enumerate() {
            let start = (i * features + c) * h * w;
            let mean = hidden[start..start + h * w].iter().sum::<f32>() / (h * w) as f32;
            assert!(
                (v - mean).abs() < 1e-5 * (1.0 + mean.abs()),
                "{what}: {v} vs {mean}"
            );
        }
    }
    // The second image alone gets its own row.
    let one = shape.dims();
    let alone = ImageBatch::from_host(
        pixels[one..2 * one].to_vec(),
        shape,
        labels.as_ref().map(|l| vec![l[1]]),
        &device(),
    )
    .unwrap();
    let alone = to_host(model.representation(&alone).unwrap()).unwrap();
    for (a, b) in alone.iter().zip(&values[features..2 * features]) {
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    }
    // Changing the last sub-pixel of every image changes nothing.
    let mut changed = pixels.clone();
    for image in changed.chunks_mut(one) {
        let last = image.len() - 1;
        image[last] = level_value(levels - 1, levels) - image[last];
    }
    let changed = ImageBatch::from_host(changed, shape, labels, &device()).unwrap();
    assert_eq!(
        values,
        to_host(model.representation(&changed).unwrap()).unwrap(),
        "{what}: the representation saw the last sub-pixel"
    );
}

/// Perturbs sub-pixels at a corner, in the middle, in the last row and at the end of a row,
/// and checks that no conditional at or before the perturbed one in raster/channel order
/// moves, and that some later one does (the network is not dead).
///
/// Causality is checked in each of [`CAUSALITY_CONTEXTS`] random images. Liveness needs only
/// one of them: in a small random network the ReLUs of the one conditional after the last
/// sub-pixel's perturbation can all be off in a given image, which says nothing about
/// the wiring.
pub(crate) fn assert_model_is_causal<M: RasterModel>(model: &M, what: &str) {
    let shape = model.raster_shape();
    let distribution = model.distribution();
    let levels = levels_of(distribution);
    let (ch, h, w) = (shape.channels, shape.height, shape.width);
    let mut rng = genmodels_core::random::rng(9);
    let contexts: Vec<Vec<f32>> = (0..CAUSALITY_CONTEXTS)
        .map(|_| {
            (0..shape.dims())
                .map(|_| level_value(rng.random_range(0..levels), levels))
                .collect()
        })
        .collect();
    let positions = [
        (0, 0),
        (h / 2, w / 2),
        (h - 1, 1),
        (h - 1, w - 1),
        (1, w - 1),
    ];
    for &(y, x) in &positions {
        for c in 0..ch {
            let later_change = contexts
                .iter()
                .map(|base| largest_later_change(model, base, (c, y, x), what))
                .fold(0f32, f32::max);
            let is_last = (y, x) == (h - 1, w - 1) && c == ch - 1;
            assert!(
                is_last || later_change > 1e-5,
                "{what}: changing (c{c}, {y}, {x}) moved nothing after it in \
                 {CAUSALITY_CONTEXTS} images: the network is dead"
            );
        }
    }
}

/// Random images in which [`assert_model_is_causal`] perturbs each sub-pixel.
const CAUSALITY_CONTEXTS: usize = 4;

/// Flips sub-pixel `(c, y, x)` of `base`, asserts that no conditional at or before it moved,
/// and returns the largest move of a conditional after it.
fn largest_later_change<M: RasterModel>(
    model: &M,
    base: &[f32],
    (c, y, x): (usize, usize, usize),
    what: &str,
) -> f32 {
    let shape = model.raster_shape();
    let k = model.distribution().logits_per_channel();
    let (ch, h, w) = (shape.channels, shape.height, shape.width);
    let before = logits(model, base);
    let mut perturbed = base.to_vec();
    let at = (c * h + y) * w + x;
    perturbed[at] = if perturbed[at] == 0.0 { 1.0 } else { 0.0 };
    let after = logits(model, &perturbed);
    let mut later_change = 0f32;
    for oc in 0..ch {
        for yy in 0..h {
            for xx in 0..w {
                let not_after = (yy, xx) < (y, x) || ((yy, xx) == (y, x) && oc <= c);
                for j in 0..k {
                    let idx = ((oc * k + j) * h + yy) * w + xx;
                    let diff = (before[idx] - after[idx]).abs();
                    if not_after {
                        assert!(
                            diff < 1e-6,
                            "{what}: changing sub-pixel (c{c}, {y}, {x}) moved the \
                             conditional of (c{oc}, {yy}, {xx}) by {diff}"
                        );
                    } else {
                        later_change = later_change.max(diff);
                    }
                }
            }
        }
    }
    later_change
}

#[test]
fn pixelcnn_is_causal_on_binary_images() {
    assert_causal(PixelDistribution::Bernoulli, ImageShape::new(1, 6, 5));
}

#[test]
fn pixelcnn_is_causal_across_colour_channels() {
    assert_causal(
        PixelDistribution::Categorical { levels: 4 },
        ImageShape::new(3, 5, 5),
    );
}

#[test]
fn the_paper_preset_is_the_papers_size_and_causal() {
    let config = PixelCnnConfig::paper();
    assert_eq!(
        (config.hidden, config.residual_blocks, config.input_kernel),
        (16, 7, 7)
    );
    let model = genmodels_core::random::build_with_seed(&device(), 5, |device| {
        config
            .with_image_shape(ImageShape::new(1, 6, 5))
            .init(device)
    })
    .unwrap();
    assert_model_is_causal(&model, "PixelCNN paper preset");
}

/// Completes 3 random binary images with their top two rows and one later pixel observed:
/// observed sub-pixels stay as they were, the others are drawn, and both samplers complete
/// alike (the incremental one catching up over the skipped positions). With nothing observed,
/// completion gives the images sampling draws; a mask of the wrong length is a typed error.
pub(crate) fn assert_completion_keeps_observed<M>(model: &M)
where
    M: SampleWithMethod + Complete + RasterModel,
{
    let shape = model.raster_shape();
    let n = 3;
    let mut rng = genmodels_core::random::rng(1);
    let pixels: Vec<f32> = (0..n * shape.dims())
        .map(|_| f32::from(u8::from(rng.random::<bool>())))
        .collect();
    let batch = ImageBatch::from_host(pixels.clone(), shape, None, &device()).unwrap();
    let scattered = 2 * shape.width + shape.width / 2 + shape.width + 1;
    let observed: Vec<bool> = (0..n * shape.dims())
        .map(|i| {
            let within = i % shape.dims();
            within < 2 * shape.width || within == scattered
        })
        .collect();
    let complete = |observed: &[bool], seed, method| {
        to_host(model.complete(&batch, observed, seed, method).unwrap()).unwrap()
    };
    for seed in [0, 1] {
        let completed = complete(&observed, seed, SamplingMethod::Cached);
        for (i, (&kept, &flag)) in pixels.iter().zip(&observed).enumerate() {
            if flag {
                assert_eq!(completed[i], kept, "observed sub-pixel {i} changed");
            } else {
                assert!(completed[i] == 0.0 || completed[i] == 1.0);
            }
        }
        assert_eq!(
            completed,
            complete(&observed, seed, SamplingMethod::Naive),
            "seed {seed}: the samplers completed differently"
        );
    }
    let nothing = vec![false; n * shape.dims()];
    let sampled = to_host(model.sample(n, 7).unwrap()).unwrap();
    assert_eq!(complete(&nothing, 7, SamplingMethod::Cached), sampled);
    assert!(matches!(
        model.complete(&batch, &nothing[1..], 7, SamplingMethod::Cached),
        Err(GenError::ShapeMismatch { .. })
    ));
}

/// Bad images are typed errors for a Bernoulli and a 256-level softmax model of 1×4×4
/// images: wrong channels, a non-binary image under the Bernoulli head, a value off the
/// softmax levels, and zero samples; a value on the levels is accepted.
pub(crate) fn assert_rejects_bad_images<B, S>(bernoulli: &B, softmax: &S)
where
    B: SampleWithMethod + Complete + AnomalyScore + Trainable,
    S: SampleWithMethod + Complete,
{
    let shape = ImageShape::new(1, 4, 4);
    let options = LikelihoodOptions::default();
    let images = |value: f32, shape: ImageShape| {
        ImageBatch::from_host(vec![value; shape.dims()], shape, None, &device()).unwrap()
    };
    let rgb = images(0.0, ImageShape::new(3, 4, 4));
    assert!(matches!(
        bernoulli.log_likelihood(&rgb, &options),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        bernoulli.complete(&rgb, &[false; 48], 0, SamplingMethod::Cached),
        Err(GenError::ShapeMismatch { .. })
    ));
    let grey = images(0.5, shape);
    // On a valid image the anomaly score is the exact −log p(x), and says so.
    let blank = images(0.0, shape);
    let scores = bernoulli.anomaly_scores(&blank, &options).unwrap();
    let nll = -bernoulli
        .log_likelihood(&blank, &options)
        .unwrap()
        .log_likelihood_nats[0];
    assert_eq!(scores.name, "neg_log_likelihood_nats");
    assert!(
        (scores.scores[0] - nll).abs() <= 1e-6 * nll.abs(),
        "{scores:?} vs {nll}"
    );
    assert!(matches!(
        bernoulli.loss(0, &grey),
        Err(GenError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        bernoulli.anomaly_scores(&grey, &options),
        Err(GenError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        bernoulli.complete(&grey, &[false; 16], 0, SamplingMethod::Cached),
        Err(GenError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        bernoulli.sample(0, 0),
        Err(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        softmax.log_likelihood(&images(0.1234, shape), &options),
        Err(GenError::ValueOutOfRange { .. })
    ));
    assert!(
        softmax
            .log_likelihood(&images(17.0 / 255.0, shape), &options)
            .is_ok()
    );
}

/// Every image of `shape` with `levels` values per sub-pixel, as one batch.
pub(crate) fn all_images(shape: ImageShape, levels: usize) -> ImageBatch {
    let d = shape.dims();
    let count = levels.pow(d as u32);
    let mut pixels = Vec::with_capacity(count * d);
    for index in 0..count {
        let mut rest = index;
        for _ in 0..d {
            pixels.push(level_value(rest % levels, levels));
            rest /= levels;
        }
    }
    ImageBatch::from_host(pixels, shape, None, &device()).unwrap()
}

/// `Σ_x p(x)` over every image the model's shape and head allow; for a conditional model,
/// with every image given the same label, `0`.
pub(crate) fn model_total_probability<M: RasterModel>(model: &M) -> f64 {
    let mut batch = all_images(model.raster_shape(), levels_of(model.distribution()));
    if model.is_conditional() {
        let zeros = Tensor::<1, Int>::zeros([batch.len()], &device());
        batch = batch.with_labels(zeros).unwrap();
    }
    raster::log_likelihood(model, &batch)
        .unwrap()
        .log_likelihood_nats
        .iter()
        .map(|v| v.exp())
        .sum()
}

fn total_probability(distribution: PixelDistribution, shape: ImageShape) -> f64 {
    model_total_probability(&pixelcnn(shape, distribution, 4))
}

#[test]
fn probabilities_of_all_binary_3x3_images_sum_to_one() {
    let bernoulli = total_probability(PixelDistribution::Bernoulli, ImageShape::new(1, 3, 3));
    assert!(
        (bernoulli - 1.0).abs() < 1e-4,
        "Bernoulli head: Σ p = {bernoulli}"
    );
    let two_levels = PixelDistribution::Categorical { levels: 2 };
    let softmax = total_probability(two_levels, ImageShape::new(1, 3, 3));
    assert!(
        (softmax - 1.0).abs() < 1e-4,
        "2-level softmax head: Σ p = {softmax}"
    );
}

#[test]
fn probabilities_of_all_two_level_rgb_2x2_images_sum_to_one() {
    let two_levels = PixelDistribution::Categorical { levels: 2 };
    let total = total_probability(two_levels, ImageShape::new(3, 2, 2));
    assert!((total - 1.0).abs() < 1e-4, "RGB: Σ p = {total}");
}

#[test]
fn samples_follow_the_model_distribution() {
    // 2×2 binary images: 16 outcomes whose probabilities the model gives exactly.
    let shape = ImageShape::new(1, 2, 2);
    let model = pixelcnn(shape, PixelDistribution::Bernoulli, 6);
    let all = all_images(shape, 2);
    let probabilities: Vec<f64> = model
        .log_likelihood(&all, &LikelihoodOptions::default())
        .unwrap()
        .log_likelihood_nats
        .iter()
        .map(|v| v.exp())
        .collect();
    let n = 4000;
    for method in [SamplingMethod::Naive, SamplingMethod::Cached] {
        assert_samples_follow(&model, &probabilities, n, method);
    }
}

fn assert_samples_follow(
    model: &PixelCnn,
    probabilities: &[f64],
    n: usize,
    method: SamplingMethod,
) {
    let samples = to_host(model.sample_with(n, 11, method).unwrap()).unwrap();
    let mut counts = [0usize; 16];
    for image in samples.chunks(4) {
        let index = image
            .iter()
            .enumerate()
            .map(|(i, &v)| usize::from(v == 1.0) << i)
            .sum::<usize>();
        counts[index] += 1;
    }
    for (index, &count) in counts.iter().enumerate() {
        let p = probabilities[index];
        let expected = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (count as f64 - expected).abs() < 5.0 * sd + 1.0,
            "{method:?}, image {index}: {count} draws, expected {expected:.1} ± {sd:.1}"
        );
    }
    // The same seed gives the same samples.
    let again = to_host(model.sample_with(n, 11, method).unwrap()).unwrap();
    assert_eq!(samples, again);
}

#[test]
fn bad_input_is_a_typed_error() {
    let shape = ImageShape::new(1, 4, 4);
    assert_rejects_bad_images(
        &pixelcnn(shape, PixelDistribution::Bernoulli, 1),
        &pixelcnn(shape, PixelDistribution::Categorical { levels: 256 }, 1),
    );

    let bad = PixelCnnConfig::new().with_distribution(PixelDistribution::Categorical { levels: 1 });
    assert!(bad.init(&device()).is_err());
    let bad = PixelCnnConfig::new().with_input_kernel(4);
    assert!(bad.init(&device()).is_err());
}

#[test]
fn completion_keeps_observed_pixels_and_matches_sampling_when_nothing_is_observed() {
    let model = pixelcnn(ImageShape::new(1, 5, 4), PixelDistribution::Bernoulli, 2);
    assert_completion_keeps_observed(&model);
}

#[test]
fn a_one_by_one_mask_a_input_kernel_is_refused_by_every_model() {
    use crate::{DiagonalBiLstmConfig, GatedPixelCnnConfig, RowLstmConfig};
    let is_refused = |result: genmodels_core::Result<()>| match result {
        Err(GenError::InvalidConfig(reason)) => reason.contains("input kernel"),
        _ => false,
    };
    for kernel in [1, 3] {
        let refusals = [
            is_refused(
                PixelCnnConfig::new()
                    .with_input_kernel(kernel)
                    .init(&device())
                    .map(drop),
            ),
            is_refused(
                GatedPixelCnnConfig::new()
                    .with_input_kernel(kernel)
                    .init(&device())
                    .map(drop),
            ),
            is_refused(
                RowLstmConfig::new()
                    .with_input_kernel(kernel)
                    .init(&device())
                    .map(drop),
            ),
            is_refused(
                DiagonalBiLstmConfig::new()
                    .with_input_kernel(kernel)
                    .init(&device())
                    .map(drop),
            ),
        ];
        assert_eq!(refusals, [kernel == 1; 4], "input kernel {kernel}");
    }
}

#[test]
fn pixelcnn_representation_is_the_pooled_hidden_map() {
    for conv_impl in [MaskedConvImpl::Split, MaskedConvImpl::Gemm] {
        let model = pixelcnn_with(
            ImageShape::new(1, 5, 5),
            PixelDistribution::Bernoulli,
            3,
            conv_impl,
        );
        assert_representation_is_the_pooled_hidden_map(&model, "PixelCNN");
    }
    let model = pixelcnn(
        ImageShape::new(3, 4, 4),
        PixelDistribution::Categorical { levels: 4 },
        4,
    );
    assert_representation_is_the_pooled_hidden_map(&model, "PixelCNN, RGB, 4 levels");
    let grey =
        ImageBatch::from_host(vec![0.5; 25], ImageShape::new(1, 5, 5), None, &device()).unwrap();
    let binary = pixelcnn(ImageShape::new(1, 5, 5), PixelDistribution::Bernoulli, 3);
    assert!(matches!(
        genmodels_core::capabilities::Represent::representation(&binary, &grey),
        Err(GenError::ValueOutOfRange { .. })
    ));
}

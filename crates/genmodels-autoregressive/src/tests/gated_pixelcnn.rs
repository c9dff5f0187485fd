//! Gated PixelCNN: causality (no blind spot either), exact normalisation, cached sampling
//! against naive, completion, conditioning and input checks.

use burn::tensor::{Int, Tensor, TensorData};
use genmodels_core::batch::to_host;
use genmodels_core::{AnomalyScore, Complete, SampleWithMethod};
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodOptions, ModelConfig, Trainable,
};

use super::cached::{assert_same_logits, binary, random_pixels, rgb, scattered_observed};
use super::{
    all_images, assert_model_is_causal, device, level_value, levels_of, model_total_probability,
};
use crate::cached::CachedConditionals;
use crate::gated_pixelcnn::GatedPixelCnnCache;
use crate::raster::{self, NaiveConditionals, RasterModel, SamplingMethod};
use crate::{GatedPixelCnn, GatedPixelCnnConfig, PixelDistribution};

/// Classes of the conditional test models: `test_labels` cycles through 10.
const CLASSES: usize = 10;

fn config(shape: ImageShape, distribution: PixelDistribution) -> GatedPixelCnnConfig {
    GatedPixelCnnConfig::new()
        .with_image_shape(shape)
        .with_distribution(distribution)
        .with_hidden(12)
        .with_layers(2)
        .with_kernel_size(3)
        .with_input_kernel(5)
}

fn gated(
    shape: ImageShape,
    distribution: PixelDistribution,
    classes: Option<usize>,
    seed: u64,
) -> GatedPixelCnn {
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        config(shape, distribution)
            .with_classes(classes)
            .init(device)
    })
    .unwrap()
}

fn labels(values: &[i64]) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device())
}

fn batch(
    shape: ImageShape,
    distribution: PixelDistribution,
    n: usize,
    labelled: bool,
) -> ImageBatch {
    let batch = ImageBatch::from_host(
        random_pixels(shape, distribution, n, 2),
        shape,
        None,
        &device(),
    )
    .unwrap();
    if labelled {
        let values: Vec<i64> = (0..n as i64)
            .map(|i| (3 * i + 1) % CLASSES as i64)
            .collect();
        batch.with_labels(labels(&values)).unwrap()
    } else {
        batch
    }
}

fn samples(result: genmodels_core::Result<Tensor<4>>) -> Vec<f32> {
    to_host(result.unwrap()).unwrap()
}

#[test]
fn gated_pixelcnn_is_causal() {
    let cases = [
        (ImageShape::new(1, 6, 5), PixelDistribution::Bernoulli),
        (
            ImageShape::new(3, 5, 5),
            PixelDistribution::Categorical { levels: 4 },
        ),
    ];
    for (shape, distribution) in cases {
        for classes in [None, Some(CLASSES)] {
            let model = gated(shape, distribution, classes, 3);
            assert_model_is_causal(
                &model,
                &format!("Gated PixelCNN {shape:?}, classes {classes:?}"),
            );
        }
    }
}

#[test]
fn gated_pixelcnn_has_no_blind_spot() {
    // With 3-wide kernels a PixelCNN's conditional at (2, 1) never sees pixel (1, 3), up and
    // to the right; the vertical stack of two gated layers reaches it.
    let shape = ImageShape::new(1, 4, 5);
    let model = genmodels_core::random::build_with_seed(&device(), 8, |device| {
        config(shape, PixelDistribution::Bernoulli)
            .with_input_kernel(3)
            .init(device)
    })
    .unwrap();
    let base = random_pixels(shape, PixelDistribution::Bernoulli, 1, 4);
    let mut perturbed = base.clone();
    let at = shape.width + 3;
    perturbed[at] = 1.0 - perturbed[at];
    let before = super::logits(&model, &base);
    let after = super::logits(&model, &perturbed);
    let target = 2 * shape.width + 1;
    assert!(
        (before[target] - after[target]).abs() > 1e-6,
        "the conditional at (2, 1) does not see pixel (1, 3): a blind spot"
    );
}

#[test]
fn gated_pixelcnn_probabilities_sum_to_one() {
    let two_levels = PixelDistribution::Categorical { levels: 2 };
    let cases = [
        (ImageShape::new(1, 3, 3), PixelDistribution::Bernoulli),
        (ImageShape::new(1, 3, 3), two_levels),
        (ImageShape::new(3, 2, 2), two_levels),
    ];
    for (shape, distribution) in cases {
        let total = model_total_probability(&gated(shape, distribution, None, 4));
        assert!(
            (total - 1.0).abs() < 1e-4,
            "{shape:?}, {distribution:?}: Σ p = {total}"
        );
        // Conditional: Σ_x p(x | y) = 1 for every label y.
        let model = gated(shape, distribution, Some(CLASSES), 4);
        let images = all_images(shape, levels_of(distribution));
        for label in [0, 7] {
            let batch = images
                .clone()
                .with_labels(labels(&vec![label; images.len()]))
                .unwrap();
            let total: f64 = raster::log_likelihood(&model, &batch)
                .unwrap()
                .log_likelihood_nats
                .iter()
                .map(|v| v.exp())
                .sum();
            assert!(
                (total - 1.0).abs() < 1e-4,
                "{shape:?}, {distribution:?}, label {label}: Σ p = {total}"
            );
        }
    }
}

#[test]
fn gated_pixelcnn_cached_logits_match_the_full_forward_pass() {
    for (shape, distribution) in [binary(), rgb()] {
        for classes in [None, Some(CLASSES)] {
            let model = gated(shape, distribution, classes, 5);
            let n = 3;
            let image_labels = classes.map(|_| labels(&[7, 0, 3]));
            for stride in [1, 2, 5] {
                let cache =
                    GatedPixelCnnCache::new(&model, n, image_labels.clone(), None, &device());
                let k = distribution.logits_per_channel();
                let mut cached = CachedConditionals::new(cache, shape, k);
                let mut naive = raster::naive_conditionals(&model, image_labels.clone(), device());
                let what =
                    format!("Gated {shape:?}, classes {classes:?}, every {stride}th sub-pixel");
                assert_same_logits(&model, &mut cached, &mut naive, n, stride, &what);
            }
        }
    }
}

#[test]
fn gated_pixelcnn_cached_and_naive_samples_are_bit_identical() {
    for (shape, distribution) in [binary(), rgb()] {
        for classes in [None, Some(CLASSES)] {
            let model = gated(shape, distribution, classes, 7);
            let n = 4;
            let images = batch(shape, distribution, n, classes.is_some());
            let observed = scattered_observed(shape, n);
            let what = format!("{shape:?}, classes {classes:?}");
            for seed in [0, 1] {
                let cached = samples(model.sample_with(n, seed, SamplingMethod::Cached));
                let naive = samples(model.sample_with(n, seed, SamplingMethod::Naive));
                assert_eq!(naive, cached, "{what}, seed {seed}: samples differ");
                let levels = levels_of(distribution);
                assert!(
                    (1..levels).any(|l| naive.contains(&level_value(l, levels))),
                    "{what}: degenerate samples"
                );
                let complete = |method| samples(model.complete(&images, &observed, seed, method));
                assert_eq!(
                    complete(SamplingMethod::Naive),
                    complete(SamplingMethod::Cached),
                    "{what}, seed {seed}: completions differ"
                );
            }
        }
    }
}

#[test]
fn gated_completion_keeps_observed_pixels() {
    for (shape, distribution) in [binary(), rgb()] {
        for classes in [None, Some(CLASSES)] {
            let model = gated(shape, distribution, classes, 2);
            let n = 3;
            let images = batch(shape, distribution, n, classes.is_some());
            let pixels = to_host(images.images().clone()).unwrap();
            let observed = scattered_observed(shape, n);
            let completed = samples(model.complete(&images, &observed, 9, SamplingMethod::Cached));
            let levels = levels_of(distribution);
            for (i, (&kept, &flag)) in pixels.iter().zip(&observed).enumerate() {
                if flag {
                    assert_eq!(completed[i], kept, "observed sub-pixel {i} changed");
                } else {
                    assert!((0..levels).any(|l| completed[i] == level_value(l, levels)));
                }
            }
            // Nothing observed: the samples of the same seed (and labels).
            let nothing = vec![false; n * shape.dims()];
            let completed = samples(model.complete(&images, &nothing, 4, SamplingMethod::Cached));
            let sampled = match classes {
                Some(_) => samples(model.sample_labels_with(&[1, 4, 7], 4, SamplingMethod::Cached)),
                None => samples(model.sample_with(n, 4, SamplingMethod::Cached)),
            };
            assert_eq!(completed, sampled);
        }
    }
}

#[test]
fn labels_condition_the_model_and_sampling_cycles_through_them() {
    let (shape, distribution) = binary();
    let model = gated(shape, distribution, Some(3), 6);
    let pixels = random_pixels(shape, distribution, 1, 3);
    let images = Tensor::<4>::from_data(TensorData::new(pixels, shape.batch_dims(1)), &device());
    let with = |label| to_host(model.forward(images.clone(), Some(labels(&[label])))).unwrap();
    let (zero, one) = (with(0), with(1));
    let moved = zero
        .iter()
        .zip(&one)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved > 1e-4, "the label does not change the conditionals");
    let cycled = samples(model.sample_with(5, 2, SamplingMethod::Cached));
    let explicit = samples(model.sample_labels_with(&[0, 1, 2, 0, 1], 2, SamplingMethod::Cached));
    assert_eq!(cycled, explicit);
    assert!(matches!(
        gated(shape, distribution, None, 6).sample_labels_with(&[0], 2, SamplingMethod::Cached),
        Err(GenError::InvalidLabels(_))
    ));
}

#[test]
fn gated_bad_input_is_a_typed_error() {
    let options = LikelihoodOptions::default();
    let shape = ImageShape::new(1, 4, 4);
    let model = gated(shape, PixelDistribution::Bernoulli, None, 1);
    let rgb =
        ImageBatch::from_host(vec![0.0; 48], ImageShape::new(3, 4, 4), None, &device()).unwrap();
    assert!(matches!(
        model.log_likelihood(&rgb, &options),
        Err(GenError::ShapeMismatch { .. })
    ));
    let grey = ImageBatch::from_host(vec![0.5; 16], shape, None, &device()).unwrap();
    assert!(matches!(
        model.loss(0, &grey),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let softmax = gated(
        shape,
        PixelDistribution::Categorical { levels: 256 },
        None,
        1,
    );
    let off_level = ImageBatch::from_host(vec![0.1234; 16], shape, None, &device()).unwrap();
    assert!(matches!(
        softmax.log_likelihood(&off_level, &options),
        Err(GenError::ValueOutOfRange { .. })
    ));

    let conditional = gated(shape, PixelDistribution::Bernoulli, Some(3), 1);
    let unlabelled = ImageBatch::from_host(vec![1.0; 32], shape, None, &device()).unwrap();
    assert!(matches!(
        conditional.loss(0, &unlabelled),
        Err(GenError::InvalidLabels(_))
    ));
    let observed = vec![false; 32];
    assert!(matches!(
        conditional.complete(&unlabelled, &observed, 0, SamplingMethod::Cached),
        Err(GenError::InvalidLabels(_))
    ));
    for bad in [3, -1] {
        let mislabelled = unlabelled.clone().with_labels(labels(&[0, bad])).unwrap();
        assert!(matches!(
            conditional.log_likelihood(&mislabelled, &options),
            Err(GenError::InvalidLabels(_))
        ));
        assert!(matches!(
            conditional.loss(0, &mislabelled),
            Err(GenError::InvalidLabels(_))
        ));
        assert!(matches!(
            conditional.anomaly_scores(&mislabelled, &options),
            Err(GenError::InvalidLabels(_))
        ));
        assert!(matches!(
            conditional.complete(&mislabelled, &observed, 0, SamplingMethod::Naive),
            Err(GenError::InvalidLabels(_))
        ));
    }
    assert!(matches!(
        conditional.sample_labels_with(&[1, 3], 0, SamplingMethod::Cached),
        Err(GenError::InvalidLabels(_))
    ));
    assert!(
        conditional
            .sample_labels_with(&[], 0, SamplingMethod::Cached)
            .is_err()
    );
    let labelled = unlabelled.with_labels(labels(&[0, 2])).unwrap();
    assert!(conditional.log_likelihood(&labelled, &options).is_ok());

    let base = config(shape, PixelDistribution::Bernoulli);
    let rgb_base = config(ImageShape::new(3, 4, 4), PixelDistribution::Bernoulli);
    let invalid = [
        base.clone().with_kernel_size(4),
        base.clone().with_input_kernel(6),
        base.clone().with_hidden(0),
        base.clone().with_layers(0),
        base.clone().with_classes(Some(0)),
        base.with_distribution(PixelDistribution::Categorical { levels: 1 }),
        rgb_base.with_hidden(8),
    ];
    for config in invalid {
        assert!(
            matches!(config.init(&device()), Err(GenError::InvalidConfig(_))),
            "{config:?} was accepted"
        );
    }
}

#[test]
fn gated_model_reports_its_shape_and_conditioning() {
    let model = gated(
        ImageShape::new(1, 3, 3),
        PixelDistribution::Bernoulli,
        Some(4),
        0,
    );
    assert!(model.is_conditional());
    assert_eq!(model.classes(), Some(4));
    assert_eq!(model.raster_shape(), ImageShape::new(1, 3, 3));
    assert!(
        !gated(
            ImageShape::new(1, 3, 3),
            PixelDistribution::Bernoulli,
            None,
            0
        )
        .is_conditional()
    );
}

#[test]
fn gated_parameters_are_initialised_by_init() {
    let model = gated(rgb().0, rgb().1, Some(CLASSES), 0);
    super::cached::assert_all_parameters_initialised(&model);
}

#[test]
fn gated_pixelcnn_representation_is_the_pooled_hidden_map() {
    let shape = ImageShape::new(1, 5, 5);
    let model = gated(shape, PixelDistribution::Bernoulli, None, 3);
    super::assert_representation_is_the_pooled_hidden_map(&model, "Gated PixelCNN");
    let conditional = gated(shape, PixelDistribution::Bernoulli, Some(CLASSES), 3);
    super::assert_representation_is_the_pooled_hidden_map(
        &conditional,
        "conditional Gated PixelCNN",
    );
    // A conditional model's representation needs the labels.
    let unlabelled = ImageBatch::from_host(vec![0.0; 25], shape, None, &device()).unwrap();
    assert!(matches!(
        genmodels_core::capabilities::Represent::representation(&conditional, &unlabelled),
        Err(GenError::InvalidLabels(_))
    ));
}

/// A Gated PixelCNN with a spatial conditioning map held fixed, seen as an ordinary raster
/// model: its logits are those of `p(x | s)` for the map `s` (repeated over the batch).
struct Given<'a> {
    model: &'a GatedPixelCnn,
    condition: Tensor<4>,
}

impl Given<'_> {
    fn map(&self, n: usize) -> Tensor<4> {
        self.condition.clone().repeat_dim(0, n)
    }
}

impl RasterModel for Given<'_> {
    const DISPLAY_NAME: &'static str = "Gated PixelCNN given a map";

    fn raster_shape(&self) -> ImageShape {
        self.model.raster_shape()
    }

    fn distribution(&self) -> PixelDistribution {
        self.model.distribution()
    }

    fn logits(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let n = images.dims()[0];
        self.model
            .forward_conditioned(images, labels, Some(self.map(n)))
    }

    fn hidden_map(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.model.hidden_map(images, labels)
    }

    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4> {
        self.model.read_out(hidden)
    }
}

fn spatially_conditioned(shape: ImageShape, channels: usize, seed: u64) -> GatedPixelCnn {
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        config(shape, PixelDistribution::Bernoulli)
            .with_condition_channels(Some(channels))
            .init(device)
    })
    .unwrap()
}

/// A map of `[1, channels, H, W]` values in `[0, 1]`, e.g. a low-resolution image upsampled.
fn some_map(shape: ImageShape, channels: usize, seed: u64) -> Tensor<4> {
    let mut rng = genmodels_core::random::rng(seed);
    let values: Vec<f32> = (0..channels * shape.height * shape.width)
        .map(|_| rand::Rng::random::<f32>(&mut rng))
        .collect();
    Tensor::from_data(
        TensorData::new(values, [1, channels, shape.height, shape.width]),
        &device(),
    )
}

#[test]
fn a_spatially_conditioned_gated_pixelcnn_is_causal_and_normalised_given_its_map() {
    // Causality given the map: perturbing a sub-pixel moves no conditional at or before it.
    let shape = ImageShape::new(1, 6, 5);
    let model = spatially_conditioned(shape, 1, 3);
    for seed in [1, 2] {
        let given = Given {
            model: &model,
            condition: some_map(shape, 1, seed),
        };
        assert_model_is_causal(&given, &format!("Gated PixelCNN given map {seed}"));
    }
    // Σ_x p(x | s) = 1 over all 512 binary 3×3 images, for two maps of two channels each; the
    // map changes the probabilities, and with the exact same sum.
    let shape = ImageShape::new(1, 3, 3);
    let model = spatially_conditioned(shape, 2, 4);
    let images = all_images(shape, 2);
    let mut per_map = Vec::new();
    for seed in [5, 6] {
        let map = some_map(shape, 2, seed).repeat_dim(0, images.len());
        let log_p = model
            .log_likelihood_given(&images, map)
            .unwrap()
            .log_likelihood_nats;
        let total: f64 = log_p.iter().map(|v| v.exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "map {seed}: Σ p(x | s) = {total}"
        );
        per_map.push(log_p);
    }
    let largest = per_map[0]
        .iter()
        .zip(&per_map[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        largest > 1e-3,
        "the map does not condition the model: {largest}"
    );
    // No map reads as a zero map (the 1×1 convolution has no bias).
    let pixels = to_host(images.images().clone().narrow(0, 100, 4)).unwrap();
    let some = Tensor::<4>::from_data(TensorData::new(pixels, shape.batch_dims(4)), &device());
    let zeros = Tensor::<4>::zeros([4, 2, 3, 3], &device());
    assert_eq!(
        to_host(model.forward(some.clone(), None)).unwrap(),
        to_host(model.forward_conditioned(some, None, Some(zeros))).unwrap()
    );
}

#[test]
fn sampling_given_a_map_draws_on_the_grid_and_bad_maps_are_typed_errors() {
    let shape = ImageShape::new(1, 4, 4);
    let model = spatially_conditioned(shape, 1, 7);
    let map = some_map(shape, 1, 8).repeat_dim(0, 3);
    let drawn = samples(model.sample_given(map.clone(), 2));
    assert_eq!(drawn.len(), 3 * 16);
    assert!(drawn.iter().all(|&v| v == 0.0 || v == 1.0));
    assert_eq!(drawn, samples(model.sample_given(map, 2)));
    // A map of the wrong size or channels, with NaN, or for a model without conditioning.
    let images = batch(shape, PixelDistribution::Bernoulli, 2, false);
    for dims in [[2, 1, 4, 3], [2, 2, 4, 4], [3, 1, 4, 4]] {
        assert!(matches!(
            model.log_likelihood_given(&images, Tensor::zeros(dims, &device())),
            Err(GenError::ShapeMismatch { .. })
        ));
    }
    let nan = Tensor::<4>::full([2, 1, 4, 4], f32::NAN, &device());
    assert!(matches!(
        model.log_likelihood_given(&images, nan),
        Err(GenError::NonFiniteInput { .. })
    ));
    let plain = gated(shape, PixelDistribution::Bernoulli, None, 7);
    assert_eq!(plain.condition_channels(), None);
    assert!(matches!(
        plain.sample_given(Tensor::zeros([1, 1, 4, 4], &device()), 0),
        Err(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        config(shape, PixelDistribution::Bernoulli)
            .with_condition_channels(Some(0))
            .init(&device()),
        Err(GenError::InvalidConfig(_))
    ));
}

#[test]
fn cached_sampling_given_a_map_matches_the_full_forward_pass_and_the_naive_sampler() {
    for (shape, distribution) in [binary(), rgb()] {
        for classes in [None, Some(CLASSES)] {
            let model = genmodels_core::random::build_with_seed(&device(), 9, |device| {
                config(shape, distribution)
                    .with_classes(classes)
                    .with_condition_channels(Some(2))
                    .init(device)
            })
            .unwrap();
            let n = 3;
            // A different map per image, so that a map term read at the wrong row, column or
            // image shows.
            let map = Tensor::cat(
                (0..n).map(|i| some_map(shape, 2, 20 + i as u64)).collect(),
                0,
            );
            let image_labels = classes.map(|_| labels(&[7, 0, 3]));
            let k = distribution.logits_per_channel();
            for stride in [1, 3] {
                let cache = GatedPixelCnnCache::new(
                    &model,
                    n,
                    image_labels.clone(),
                    Some(map.clone()),
                    &device(),
                );
                let mut cached = CachedConditionals::new(cache, shape, k);
                let mut naive = NaiveConditionals::new(shape, k, device(), |images| {
                    model.forward_conditioned(images, image_labels.clone(), Some(map.clone()))
                });
                let what = format!(
                    "Gated {shape:?} given a map, classes {classes:?}, every {stride}th sub-pixel"
                );
                assert_same_logits(&model, &mut cached, &mut naive, n, stride, &what);
            }
            // Both samplers draw the same images (the logits above show that the map enters;
            // an untrained model's draws need not move with it).
            let draw = |map: Tensor<4>, method| samples(model.sample_given_with(map, 4, method));
            let cached = draw(map.clone(), SamplingMethod::Cached);
            assert_eq!(
                cached,
                draw(map.clone(), SamplingMethod::Naive),
                "{shape:?}"
            );
            // With a zero map, the cached sampler given the map draws what it draws without.
            let unconditioned = samples(model.sample_with(n, 4, SamplingMethod::Cached));
            let zeros = Tensor::zeros([n, 2, shape.height, shape.width], &device());
            assert_eq!(draw(zeros, SamplingMethod::Cached), unconditioned);
            assert!(matches!(
                model.sample_given_with(map, 4, SamplingMethod::DDIM_50),
                Err(GenError::InvalidConfig(_))
            ));
        }
    }
}

/// A tiny super-resolution model of 1×8×8 images by `factor`.
fn super_resolution_model(factor: usize, seed: u64) -> GatedPixelCnn {
    let shape = ImageShape::new(1, 8, 8);
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        GatedPixelCnnConfig::super_resolution(shape, factor)
            .with_hidden(12)
            .with_layers(2)
            .with_input_kernel(5)
            .init(device)
    })
    .unwrap()
}

/// `n` binary 8×8 images whose 4×4 blocks are each all ink or all paper, seeded (with a few
/// pixels of every image flipped), so that the low-pass says much about the image.
fn blocky_batch(n: usize, seed: u64) -> ImageBatch {
    let mut rng = genmodels_core::random::rng(seed);
    let mut pixels = Vec::with_capacity(n * 64);
    for _ in 0..n {
        let blocks: Vec<bool> = (0..4).map(|_| rand::Rng::random(&mut rng)).collect();
        for y in 0..8 {
            for x in 0..8 {
                let ink = blocks[(y / 4) * 2 + x / 4] ^ (rand::Rng::random::<f32>(&mut rng) < 0.05);
                pixels.push(if ink { 1.0 } else { 0.0 });
            }
        }
    }
    ImageBatch::from_host(pixels, ImageShape::new(1, 8, 8), None, &device()).unwrap()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn the_super_resolution_loss_is_minus_the_likelihood_given_the_batchs_own_low_pass() {
    use genmodels_core::capabilities::{SuperResolve, low_pass};
    let options = LikelihoodOptions::default();
    for factor in [2, 4] {
        let model = super_resolution_model(factor, 11);
        assert_eq!(model.super_resolution_factor(), Some(factor));
        let images = blocky_batch(6, 12);
        let map = low_pass(images.images().clone(), factor).unwrap();
        let given = model
            .log_likelihood_given(&images, map.clone())
            .unwrap()
            .log_likelihood_nats;
        let loss = to_host(model.loss(0, &images).unwrap().objective).unwrap()[0] as f64;
        assert!(
            (loss + mean(&given)).abs() < 1e-4 * loss.abs(),
            "×{factor}: loss {loss} against −mean log p(x | U(D(x))) {}",
            -mean(&given)
        );
        // The likelihood is the conditional one too, and so is the capability's.
        let own = model
            .log_likelihood(&images, &options)
            .unwrap()
            .log_likelihood_nats;
        let capability = model
            .conditional_log_likelihood(&images, factor)
            .unwrap()
            .expect("a super-resolution model has a conditional likelihood")
            .log_likelihood_nats;
        for ((a, b), c) in own.iter().zip(&given).zip(&capability) {
            assert!((a - b).abs() < 1e-4 && (b - c).abs() < 1e-4, "{a} {b} {c}");
        }
        // And it is not the likelihood given no map, nor given another image's map.
        let unmapped = model
            .log_likelihood_given(&images, Tensor::zeros(map.dims(), &device()))
            .unwrap()
            .log_likelihood_nats;
        let shifted = model
            .log_likelihood_given(&images, map.clone().flip([0]))
            .unwrap()
            .log_likelihood_nats;
        for other in [unmapped, shifted] {
            let gap = given
                .iter()
                .zip(&other)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(gap > 1e-3, "×{factor}: the map does not enter the loss");
        }
        // The first pixel already sees the block below and the one to the right: the map
        // is read through a 3×3 convolution over the block means.
        let first_pixel = |map: Tensor<4>| {
            let logits = model.forward_conditioned(images.images().clone(), None, Some(map));
            to_host(logits.slice([0..1, 0..1, 0..1, 0..1])).unwrap()[0]
        };
        for (y, x) in [(factor, 0), (0, factor)] {
            let mut moved = to_host(map.clone()).unwrap();
            for dy in 0..factor {
                for dx in 0..factor {
                    let at = (y + dy) * 8 + x + dx;
                    moved[at] = 1.0 - moved[at];
                }
            }
            let moved = Tensor::<4>::from_data(TensorData::new(moved, map.dims()), &device());
            let gap = (first_pixel(moved) - first_pixel(map.clone())).abs();
            assert!(
                gap > 1e-5,
                "×{factor}: pixel (0, 0) does not see block ({y}, {x})"
            );
        }
        // A super-resolution model needs a map of its image's channels, and a factor that fits.
        let shape = ImageShape::new(1, 8, 8);
        for bad in [
            GatedPixelCnnConfig::super_resolution(shape, factor).with_condition_channels(None),
            GatedPixelCnnConfig::super_resolution(shape, factor).with_condition_channels(Some(2)),
            GatedPixelCnnConfig::super_resolution(shape, 3),
            GatedPixelCnnConfig::super_resolution(shape, 1),
        ] {
            assert!(matches!(
                bad.init(&device()),
                Err(GenError::InvalidConfig(_))
            ));
        }
    }
}

#[test]
fn training_a_tiny_super_resolution_model_lowers_its_conditional_nll() {
    use genmodels_core::capabilities::SuperResolve;
    use genmodels_core::{InMemoryDataset, Trainer, TrainerConfig};
    let factor = 4;
    let model = super_resolution_model(factor, 13);
    let train = blocky_batch(64, 14);
    let test = blocky_batch(32, 15);
    let nll = |model: &GatedPixelCnn| {
        -mean(
            &model
                .conditional_log_likelihood(&test, factor)
                .unwrap()
                .unwrap()
                .log_likelihood_nats,
        )
    };
    let before = nll(&model);
    let data = |batch: &ImageBatch| {
        InMemoryDataset::new(
            to_host(batch.images().clone()).unwrap(),
            batch.image_shape(),
            None,
        )
        .unwrap()
    };
    let trainer = Trainer::new(TrainerConfig {
        epochs: 4,
        batch_size: 16,
        learning_rate: 1e-2,
        seed: 2,
        ..TrainerConfig::default()
    });
    let trained = trainer
        .fit(model, &data(&train), Some(&data(&test)), &device())
        .unwrap();
    let after = nll(&trained.model);
    // The trainer's test likelihood is the conditional one.
    let reported = trained
        .report
        .test_log_likelihood
        .unwrap()
        .mean_log_likelihood_nats();
    assert!(
        (reported + after).abs() < 1e-3,
        "{reported} against −{after}"
    );
    // 64 pixels at ln 2 each is 44 nats untrained; given the blocks, ~5% flipped pixels cost
    // ~64·H(0.05) ≈ 12.7 nats.
    assert!(
        after < 0.7 * before,
        "16 steps moved the conditional NLL from {before} to {after} nats"
    );
}

#[test]
fn super_resolving_draws_binary_images_of_the_shape_that_repeat_with_the_seed() {
    use genmodels_core::capabilities::{SuperResolve, downsample};
    let factor = 4;
    let model = super_resolution_model(factor, 16);
    let truth = blocky_batch(5, 17);
    let low_res = downsample(truth.images().clone(), factor).unwrap();
    assert_eq!(low_res.dims(), [5, 1, 2, 2]);
    let resolve = |seed, method| {
        let resolved = model
            .super_resolve(low_res.clone(), factor, seed, method)
            .unwrap();
        assert!(resolved.continuous.is_none());
        assert_eq!(resolved.images.dims(), [5, 1, 8, 8]);
        to_host(resolved.images).unwrap()
    };
    let drawn = resolve(3, SamplingMethod::Cached);
    assert!(drawn.iter().all(|&v| v == 0.0 || v == 1.0));
    assert!(drawn.contains(&0.0) && drawn.contains(&1.0));
    assert_eq!(drawn, resolve(3, SamplingMethod::Cached));
    assert_eq!(drawn, resolve(3, SamplingMethod::Naive));
    assert_ne!(drawn, resolve(4, SamplingMethod::Cached));
    // It is a draw from p(x | U(y)): the same as sampling given the upsampled map.
    let map = genmodels_core::capabilities::upsample_nearest(low_res.clone(), factor).unwrap();
    assert_eq!(
        drawn,
        samples(model.sample_given_with(map, 3, SamplingMethod::Cached))
    );
    // Another factor than the trained one, a model of p(x), bad shapes and values, and a
    // diffusion sampler are typed errors.
    let refuse = |model: &GatedPixelCnn, low_res: Tensor<4>, factor, method| {
        model.super_resolve(low_res, factor, 0, method).err()
    };
    let cached = SamplingMethod::Cached;
    let low_res_2 = downsample(truth.images().clone(), 2).unwrap();
    assert!(matches!(
        refuse(&model, low_res_2.clone(), 2, cached),
        Some(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        model.conditional_log_likelihood(&truth, 2),
        Err(GenError::InvalidConfig(_))
    ));
    let plain = gated(
        ImageShape::new(1, 8, 8),
        PixelDistribution::Bernoulli,
        None,
        1,
    );
    assert!(matches!(
        refuse(&plain, low_res.clone(), factor, cached),
        Some(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        refuse(&model, low_res_2, factor, cached),
        Some(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        refuse(
            &model,
            Tensor::full([2, 1, 2, 2], f32::NAN, &device()),
            factor,
            cached
        ),
        Some(GenError::NonFiniteInput { .. })
    ));
    assert!(matches!(
        refuse(
            &model,
            Tensor::full([2, 1, 2, 2], 1.5, &device()),
            factor,
            cached
        ),
        Some(GenError::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        refuse(&model, low_res, factor, SamplingMethod::Ancestral),
        Some(GenError::InvalidConfig(_))
    ));
    let wrong_size = blocky_batch(2, 18);
    let other = ImageBatch::from_host(vec![0.0; 2 * 36], ImageShape::new(1, 6, 6), None, &device())
        .unwrap();
    assert!(
        model
            .conditional_log_likelihood(&wrong_size, factor)
            .is_ok()
    );
    assert!(matches!(
        model.conditional_log_likelihood(&other, factor),
        Err(GenError::ShapeMismatch { .. })
    ));
}

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
                let cache = GatedPixelCnnCache::new(&model, n, image_labels.clone(), &device());
                let k = distribution.logits_per_channel();
                let mut cached = CachedConditionals::new(cache, shape, k);
                let mut naive = NaiveConditionals::new(&model, image_labels.clone(), device());
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

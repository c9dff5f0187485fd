//! The Diagonal BiLSTM: skewing, causality, no blind spot, normalisation, and the
//! state-carrying sampler against the naive one.

use burn::tensor::{Tensor, TensorData};
use genmodels_core::SampleWithMethod;
use genmodels_core::batch::to_host;
use genmodels_core::{GenError, GenerativeModel, ImageShape, ModelConfig};
use rand::Rng;

use super::{
    assert_completion_keeps_observed, assert_model_is_causal, assert_rejects_bad_images, device,
    level_value, levels_of, logits, model_total_probability,
};
use crate::diagonal_bilstm::{skew, unskew};
use crate::raster::SamplingMethod;
use crate::{DiagonalBiLstm, DiagonalBiLstmConfig, PixelDistribution};

fn model(
    shape: ImageShape,
    distribution: PixelDistribution,
    hidden: usize,
    layers: usize,
    input_kernel: usize,
    seed: u64,
) -> DiagonalBiLstm {
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        DiagonalBiLstmConfig::new()
            .with_image_shape(shape)
            .with_distribution(distribution)
            .with_hidden(hidden)
            .with_layers(layers)
            .with_input_kernel(input_kernel)
            .init(device)
    })
    .unwrap()
}

fn binary(shape: ImageShape, seed: u64) -> DiagonalBiLstm {
    model(shape, PixelDistribution::Bernoulli, 4, 2, 3, seed)
}

fn rgb(shape: ImageShape, levels: usize, seed: u64) -> DiagonalBiLstm {
    model(
        shape,
        PixelDistribution::Categorical { levels },
        6,
        2,
        3,
        seed,
    )
}

fn random_images(shape: ImageShape, n: usize, levels: usize, seed: u64) -> Vec<f32> {
    let mut rng = genmodels_core::random::rng(seed);
    (0..n * shape.dims())
        .map(|_| level_value(rng.random_range(0..levels), levels))
        .collect()
}

#[test]
fn skew_puts_pixel_i_j_in_column_i_plus_j_and_unskew_undoes_it() {
    let (n, h, w, c) = (2, 4, 5, 3);
    let values: Vec<f32> = (1..=n * h * w * c).map(|v| v as f32).collect();
    let input = Tensor::<4>::from_data(TensorData::new(values.clone(), [n, h, w, c]), &device());
    let skewed = skew(input.clone());
    let s = w + h - 1;
    assert_eq!(skewed.dims(), [n, h, s, c]);
    let skewed_values = to_host(skewed.clone()).unwrap();
    for image in 0..n {
        for i in 0..h {
            for column in 0..s {
                for channel in 0..c {
                    let got = skewed_values[((image * h + i) * s + column) * c + channel];
                    let expected = match column.checked_sub(i) {
                        Some(j) if j < w => values[((image * h + i) * w + j) * c + channel],
                        _ => 0.0,
                    };
                    assert_eq!(got, expected, "row {i}, skewed column {column}");
                }
            }
        }
    }
    assert_eq!(to_host(unskew(skewed)).unwrap(), values);
    // A single row is its own skew.
    let row = input.narrow(1, 0, 1);
    assert_eq!(to_host(skew(row.clone())).unwrap(), to_host(row).unwrap());
}

#[test]
fn diagonal_bilstm_is_causal_on_binary_images() {
    let model = model(
        ImageShape::new(1, 6, 5),
        PixelDistribution::Bernoulli,
        4,
        2,
        3,
        3,
    );
    assert_model_is_causal(&model, "Diagonal BiLSTM, binary");
    // And with the paper's 7×7 input convolution, wider than the image.
    let wide = model_with_kernel_7();
    assert_model_is_causal(&wide, "Diagonal BiLSTM, 7×7 input");
}

fn model_with_kernel_7() -> DiagonalBiLstm {
    model(
        ImageShape::new(1, 6, 5),
        PixelDistribution::Bernoulli,
        4,
        2,
        7,
        5,
    )
}

#[test]
fn diagonal_bilstm_is_causal_across_colour_channels() {
    let model = rgb(ImageShape::new(3, 5, 5), 4, 3);
    assert_model_is_causal(&model, "Diagonal BiLSTM, RGB");
}

#[test]
fn the_receptive_field_reaches_above_right_beyond_the_input_kernel() {
    // With a 3×3 input kernel and the left-to-right LSTM alone, (y − 1, x + 2) is in the blind
    // spot of (y, x): only the shifted right-to-left pass over row y − 1 brings it in. One
    // layer, so the stack cannot route around it.
    let shape = ImageShape::new(1, 5, 7);
    let (y, x) = (2, 3);
    for layers in [1, 2] {
        let model = model(shape, PixelDistribution::Bernoulli, 4, layers, 3, 8);
        let base = random_images(shape, 1, 2, 4);
        let mut perturbed = base.clone();
        let at = (y - 1) * shape.width + x + 2;
        perturbed[at] = 1.0 - perturbed[at];
        let before = logits(&model, &base)[y * shape.width + x];
        let after = logits(&model, &perturbed)[y * shape.width + x];
        assert!(
            (before - after).abs() > 1e-6,
            "{layers} layer(s): (y − 1, x + 2) does not reach (y, x): {before} vs {after}"
        );
    }
}

#[test]
fn probabilities_of_all_binary_3x3_images_sum_to_one() {
    let shape = ImageShape::new(1, 3, 3);
    for distribution in [
        PixelDistribution::Bernoulli,
        PixelDistribution::Categorical { levels: 2 },
    ] {
        let total = model_total_probability(&model(shape, distribution, 4, 2, 3, 4));
        assert!(
            (total - 1.0).abs() < 1e-4,
            "{distribution:?}: Σ p = {total}"
        );
    }
}

#[test]
fn probabilities_of_all_two_level_rgb_2x2_images_sum_to_one() {
    let total = model_total_probability(&rgb(ImageShape::new(3, 2, 2), 2, 4));
    assert!((total - 1.0).abs() < 1e-4, "RGB: Σ p = {total}");
}

fn assert_samplers_agree(model: &DiagonalBiLstm, what: &str) {
    for seed in [0, 1] {
        let carried = to_host(model.sample(4, seed).unwrap()).unwrap();
        let naive = to_host(model.sample_with(4, seed, SamplingMethod::Naive).unwrap()).unwrap();
        assert_eq!(carried, naive, "{what}, seed {seed}");
        let levels = levels_of(model.config().distribution);
        let distinct = carried
            .iter()
            .map(|&v| (v * (levels - 1) as f32).round() as usize)
            .collect::<std::collections::BTreeSet<_>>();
        assert!(
            distinct.len() > 1,
            "{what}: every sampled value is the same"
        );
    }
}

#[test]
fn carried_state_sampling_matches_naive_sampling() {
    let binary_model = binary(ImageShape::new(1, 5, 6), 2);
    assert_samplers_agree(&binary_model, "binary");
    let rgb_model = rgb(ImageShape::new(3, 4, 4), 4, 2);
    assert_samplers_agree(&rgb_model, "RGB, 4 levels");
}

#[test]
fn carried_state_logits_match_the_forward_pass() {
    // Every conditional the sampler hands out for a fixed image, against one forward pass.
    let shape = ImageShape::new(3, 4, 5);
    let model = rgb(shape, 3, 6);
    let k = 3;
    let pixels = random_images(shape, 2, 3, 9);
    let images = Tensor::<4>::from_data(
        TensorData::new(pixels.clone(), shape.batch_dims(2)),
        &device(),
    );
    let expected = to_host(model.forward(images)).unwrap();
    let mut conditionals = model.conditionals(2);
    let (h, w) = (shape.height, shape.width);
    for y in 0..h {
        for x in 0..w {
            for c in 0..shape.channels {
                use crate::raster::Conditionals;
                let got = conditionals.logits_at(&pixels, c, y, x).unwrap();
                for i in 0..2 {
                    for j in 0..k {
                        let want = expected[((i * 3 * k + c * k + j) * h + y) * w + x];
                        let diff = (got[i * k + j] - want).abs();
                        assert!(diff < 1e-4, "(c{c}, {y}, {x}), image {i}: off by {diff}");
                    }
                }
            }
        }
    }
}

#[test]
fn completion_keeps_observed_pixels_and_matches_sampling_when_nothing_is_observed() {
    assert_completion_keeps_observed(&binary(ImageShape::new(1, 5, 4), 2));
}

#[test]
fn bad_input_is_a_typed_error() {
    let shape = ImageShape::new(1, 4, 4);
    let softmax = model(
        shape,
        PixelDistribution::Categorical { levels: 256 },
        4,
        1,
        3,
        1,
    );
    assert_rejects_bad_images(&binary(shape, 1), &softmax);

    let rgb_shape = ImageShape::new(3, 4, 4);
    for bad in [
        DiagonalBiLstmConfig::new().with_distribution(PixelDistribution::Categorical { levels: 1 }),
        DiagonalBiLstmConfig::new().with_input_kernel(4),
        DiagonalBiLstmConfig::new().with_hidden(0),
        DiagonalBiLstmConfig::new().with_layers(0),
        DiagonalBiLstmConfig::new().with_image_shape(ImageShape::new(1, 0, 4)),
        DiagonalBiLstmConfig::new()
            .with_image_shape(rgb_shape)
            .with_hidden(8),
    ] {
        assert!(
            matches!(bad.init(&device()), Err(GenError::InvalidConfig(_))),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn diagonal_bilstm_representation_is_the_pooled_hidden_map() {
    let model = binary(ImageShape::new(1, 4, 5), 3);
    super::assert_representation_is_the_pooled_hidden_map(&model, "Diagonal BiLSTM");
}

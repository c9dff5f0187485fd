//! The Row LSTM: causality, exact normalisation, the row-by-row sampler against the naive one,
//! completion and bad input.

use genmodels_core::SampleWithMethod;
use genmodels_core::batch::to_host;
use genmodels_core::{GenError, GenerativeModel, ImageShape, ModelConfig, Result};
use rand::Rng;

use super::{
    assert_completion_keeps_observed, assert_model_is_causal, assert_rejects_bad_images, device,
    level_value, levels_of, model_total_probability,
};
use crate::PixelDistribution;
use crate::raster::{self, Conditionals, RasterModel, SamplingMethod};
use crate::row_lstm::{RowLstm, RowLstmConditionals, RowLstmConfig};

/// A tiny Row LSTM: `h` = 6 (a multiple of 3 for RGB), 2 layers, 3-wide rows, 5×5 input.
fn row_lstm(shape: ImageShape, distribution: PixelDistribution, seed: u64) -> RowLstm {
    genmodels_core::random::build_with_seed(&device(), seed, |device| {
        RowLstmConfig::new()
            .with_image_shape(shape)
            .with_distribution(distribution)
            .with_hidden(6)
            .with_layers(2)
            .with_kernel_size(3)
            .with_input_kernel(5)
            .init(device)
    })
    .unwrap()
}

#[test]
fn row_lstm_is_causal_on_binary_images() {
    let model = row_lstm(ImageShape::new(1, 6, 5), PixelDistribution::Bernoulli, 3);
    assert_model_is_causal(&model, "Row LSTM, binary");
}

#[test]
fn row_lstm_is_causal_across_colour_channels() {
    let model = row_lstm(
        ImageShape::new(3, 5, 5),
        PixelDistribution::Categorical { levels: 4 },
        3,
    );
    assert_model_is_causal(&model, "Row LSTM, RGB");
}

#[test]
fn row_lstm_with_a_wide_row_kernel_is_causal() {
    // k = 5 reaches two columns to each side in the row above and two to the left.
    let model = genmodels_core::random::build_with_seed(&device(), 8, |device| {
        RowLstmConfig::new()
            .with_image_shape(ImageShape::new(3, 4, 6))
            .with_distribution(PixelDistribution::Categorical { levels: 2 })
            .with_hidden(3)
            .with_layers(2)
            .with_kernel_size(5)
            .with_input_kernel(3)
            .init(device)
    })
    .unwrap();
    assert_model_is_causal(&model, "Row LSTM, k = 5");
}

#[test]
fn probabilities_of_all_binary_3x3_images_sum_to_one() {
    let shape = ImageShape::new(1, 3, 3);
    for distribution in [
        PixelDistribution::Bernoulli,
        PixelDistribution::Categorical { levels: 2 },
    ] {
        let total = model_total_probability(&row_lstm(shape, distribution, 4));
        assert!(
            (total - 1.0).abs() < 1e-4,
            "{distribution:?}: Σ p = {total}"
        );
    }
}

#[test]
fn probabilities_of_all_two_level_rgb_2x2_images_sum_to_one() {
    let model = row_lstm(
        ImageShape::new(3, 2, 2),
        PixelDistribution::Categorical { levels: 2 },
        4,
    );
    let total = model_total_probability(&model);
    assert!((total - 1.0).abs() < 1e-4, "RGB: Σ p = {total}");
}

/// Records every logit the wrapped conditionals hand out.
struct Recording<C> {
    inner: C,
    logits: Vec<f32>,
}

impl<C: Conditionals> Conditionals for Recording<C> {
    fn logits_at(
        &mut self,
        pixels: &[f32],
        channel: usize,
        y: usize,
        x: usize,
    ) -> Result<Vec<f32>> {
        let logits = self.inner.logits_at(pixels, channel, y, x)?;
        self.logits.extend_from_slice(&logits);
        Ok(logits)
    }
}

fn fill(
    model: &RowLstm,
    conditionals: &mut impl Conditionals,
    pixels: Vec<f32>,
    observed: &[bool],
    seed: u64,
) -> Vec<f32> {
    let filled = raster::fill_in_raster_order(
        model.raster_shape(),
        model.distribution(),
        conditionals,
        pixels,
        observed,
        seed,
        &device(),
    );
    to_host(filled.unwrap()).unwrap()
}

/// Fills `pixels` outside `observed` with both samplers; returns the naive and the
/// row-by-row result and the largest difference between their logits.
fn fill_with_both(
    model: &RowLstm,
    pixels: Vec<f32>,
    observed: &[bool],
    seed: u64,
) -> (Vec<f32>, Vec<f32>, f32) {
    let mut naive = Recording {
        inner: raster::naive_conditionals(model, None, device()),
        logits: Vec::new(),
    };
    let mut carried = Recording {
        inner: RowLstmConditionals::new(model),
        logits: Vec::new(),
    };
    let from_naive = fill(model, &mut naive, pixels.clone(), observed, seed);
    let from_carried = fill(model, &mut carried, pixels, observed, seed);
    assert_eq!(naive.logits.len(), carried.logits.len());
    let worst = naive
        .logits
        .iter()
        .zip(&carried.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    (from_naive, from_carried, worst)
}

fn assert_samplers_agree(shape: ImageShape, distribution: PixelDistribution) {
    let model = row_lstm(shape, distribution, 5);
    let n = 4;
    let levels = levels_of(distribution);
    for seed in [0, 1] {
        let naive = to_host(model.sample_with(n, seed, SamplingMethod::Naive).unwrap()).unwrap();
        let carried = to_host(model.sample(n, seed).unwrap()).unwrap();
        assert_eq!(naive, carried, "{distribution:?}, seed {seed}");
        let distinct = (0..levels)
            .filter(|&l| carried.contains(&level_value(l, levels)))
            .count();
        assert!(distinct > 1, "the samples are constant: {carried:?}");

        let dims = n * shape.dims();
        let (_, _, worst) = fill_with_both(&model, vec![0.0; dims], &vec![false; dims], seed);
        assert!(worst < 1e-4, "the samplers' logits differ by {worst}");
    }
}

#[test]
fn row_by_row_sampler_matches_the_naive_sampler_on_binary_images() {
    assert_samplers_agree(ImageShape::new(1, 6, 5), PixelDistribution::Bernoulli);
}

#[test]
fn row_by_row_sampler_matches_the_naive_sampler_on_rgb_images() {
    assert_samplers_agree(
        ImageShape::new(3, 4, 4),
        PixelDistribution::Categorical { levels: 4 },
    );
}

#[test]
fn completion_catches_up_over_skipped_positions_like_the_naive_sampler() {
    let shape = ImageShape::new(3, 4, 5);
    let distribution = PixelDistribution::Categorical { levels: 3 };
    let model = row_lstm(shape, distribution, 6);
    let n = 3;
    let mut rng = genmodels_core::random::rng(2);
    let pixels: Vec<f32> = (0..n * shape.dims())
        .map(|_| level_value(rng.random_range(0..3), 3))
        .collect();
    // Every image observes the first row, R of pixel (1, 2), G and B of (2, 0) and all of
    // (2, 3) — positions the samplers skip — and each image a few pixels of its own.
    let (h, w) = (shape.height, shape.width);
    let observed: Vec<bool> = (0..n * shape.dims())
        .map(|i| {
            let (image, c, y, x) = (i / shape.dims(), i / (h * w) % 3, i / w % h, i % w);
            y == 0
                || (c == 0 && (y, x) == (1, 2))
                || (c > 0 && (y, x) == (2, 0))
                || (y, x) == (2, 3)
                || (y * w + x) % 4 == image
        })
        .collect();
    for seed in [0, 1] {
        let (naive, carried, worst) = fill_with_both(&model, pixels.clone(), &observed, seed);
        assert_eq!(naive, carried, "seed {seed}");
        assert!(worst < 1e-4, "the samplers' logits differ by {worst}");
    }
}

#[test]
fn completion_keeps_observed_pixels_and_matches_sampling_when_nothing_is_observed() {
    let model = row_lstm(ImageShape::new(1, 5, 4), PixelDistribution::Bernoulli, 2);
    assert_completion_keeps_observed(&model);
}

#[test]
fn bad_input_is_a_typed_error() {
    let shape = ImageShape::new(1, 4, 4);
    assert_rejects_bad_images(
        &row_lstm(shape, PixelDistribution::Bernoulli, 1),
        &row_lstm(shape, PixelDistribution::Categorical { levels: 256 }, 1),
    );

    let rgb_config = RowLstmConfig::new().with_image_shape(ImageShape::new(3, 8, 8));
    for (bad, what) in [
        (RowLstmConfig::new().with_kernel_size(4), "even row kernel"),
        (RowLstmConfig::new().with_kernel_size(1), "row kernel 1"),
        (
            RowLstmConfig::new().with_input_kernel(6),
            "even input kernel",
        ),
        (RowLstmConfig::new().with_hidden(0), "hidden 0"),
        (RowLstmConfig::new().with_layers(0), "no layers"),
        (
            rgb_config.clone().with_hidden(8),
            "hidden not a multiple of 3",
        ),
        (
            RowLstmConfig::new().with_distribution(PixelDistribution::Categorical { levels: 1 }),
            "one level",
        ),
    ] {
        assert!(
            matches!(bad.init(&device()), Err(GenError::InvalidConfig(_))),
            "{what} was accepted"
        );
    }
    assert!(rgb_config.with_hidden(9).init(&device()).is_ok());
}

#[test]
fn row_lstm_representation_is_the_pooled_hidden_map() {
    let model = row_lstm(ImageShape::new(1, 5, 4), PixelDistribution::Bernoulli, 3);
    super::assert_representation_is_the_pooled_hidden_map(&model, "Row LSTM");
}

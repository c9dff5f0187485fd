//! The cached samplers against the naive one: the same logits up to float rounding at every
//! sub-pixel, and bit-identical samples and completions for the same seed.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use genmodels_core::batch::to_host;
use genmodels_core::{Complete, SampleWithMethod};
use genmodels_core::{ImageBatch, ImageShape};
use rand::Rng;

use super::{device, level_value, levels_of};
use crate::cached::{CachedConditionals, PixelCnnCache};
use crate::raster::{self, Conditionals, RasterModel, SamplingMethod};
use crate::{MaskedConvImpl, PixelCnn, PixelDistribution};

/// The tiny PixelCNN of the other tests, with the default (GEMM) masked convolutions.
fn pixelcnn(shape: ImageShape, distribution: PixelDistribution, seed: u64) -> PixelCnn {
    super::pixelcnn_with(shape, distribution, seed, MaskedConvImpl::Gemm)
}

pub(crate) fn binary() -> (ImageShape, PixelDistribution) {
    (ImageShape::new(1, 6, 5), PixelDistribution::Bernoulli)
}

pub(crate) fn rgb() -> (ImageShape, PixelDistribution) {
    (
        ImageShape::new(3, 4, 3),
        PixelDistribution::Categorical { levels: 4 },
    )
}

/// `n` random images of `shape` on the levels of `distribution`.
pub(crate) fn random_pixels(
    shape: ImageShape,
    distribution: PixelDistribution,
    n: usize,
    seed: u64,
) -> Vec<f32> {
    let levels = levels_of(distribution);
    let mut rng = genmodels_core::random::rng(seed);
    (0..n * shape.dims())
        .map(|_| level_value(rng.random_range(0..levels), levels))
        .collect()
}

/// Asks `cached` and `naive` for every `stride`-th sub-pixel's logits of fixed random images
/// (so the cached one must catch up over the others) and checks they agree.
pub(crate) fn assert_same_logits(
    model: &impl RasterModel,
    cached: &mut impl Conditionals,
    naive: &mut impl Conditionals,
    n: usize,
    stride: usize,
    what: &str,
) {
    let shape = model.raster_shape();
    let pixels = random_pixels(shape, model.distribution(), n, 5);
    let mut asked = 0;
    for y in 0..shape.height {
        for x in 0..shape.width {
            for c in 0..shape.channels {
                let index = (y * shape.width + x) * shape.channels + c;
                if !index.is_multiple_of(stride) {
                    continue;
                }
                let a = cached.logits_at(&pixels, c, y, x).unwrap();
                let b = naive.logits_at(&pixels, c, y, x).unwrap();
                assert_eq!(a.len(), b.len());
                for (u, v) in a.iter().zip(&b) {
                    assert!(
                        (u - v).abs() < 1e-4,
                        "{what}: logits of (c{c}, {y}, {x}) differ: cached {u}, naive {v}"
                    );
                }
                asked += 1;
            }
        }
    }
    assert!(asked > 3, "{what}: asked for too few sub-pixels");
}

#[test]
fn pixelcnn_cached_logits_match_the_full_forward_pass() {
    for (shape, distribution) in [binary(), rgb()] {
        let model = pixelcnn(shape, distribution, 3);
        let n = 2;
        for stride in [1, 2, 5] {
            let k = distribution.logits_per_channel();
            let mut cached =
                CachedConditionals::new(PixelCnnCache::new(&model, n, &device()), shape, k);
            let mut naive = raster::naive_conditionals(&model, None, device());
            let what = format!("PixelCNN {shape:?}, every {stride}th sub-pixel");
            assert_same_logits(&model, &mut cached, &mut naive, n, stride, &what);
        }
    }
}

/// Observed flags: the top row, one whole pixel further down and, for colour images, only
/// the first channel of another pixel, in every image; the rest is sampled.
pub(crate) fn scattered_observed(shape: ImageShape, n: usize) -> Vec<bool> {
    let (h, w) = (shape.height, shape.width);
    (0..n * shape.dims())
        .map(|i| {
            let within = i % shape.dims();
            let (c, y, x) = (within / (h * w), within / w % h, within % w);
            y == 0 || (y, x) == (2, 1) || ((y, x) == (3, 2) && c == 0)
        })
        .collect()
}

fn samples(result: genmodels_core::Result<Tensor<4>>) -> Vec<f32> {
    to_host(result.unwrap()).unwrap()
}

#[test]
fn pixelcnn_cached_and_naive_samples_are_bit_identical() {
    for (shape, distribution) in [binary(), rgb()] {
        let model = pixelcnn(shape, distribution, 7);
        let n = 4;
        let batch = ImageBatch::from_host(
            random_pixels(shape, distribution, n, 2),
            shape,
            None,
            &device(),
        )
        .unwrap();
        let observed = scattered_observed(shape, n);
        for seed in [0, 1] {
            let cached = samples(model.sample_with(n, seed, SamplingMethod::Cached));
            let naive = samples(model.sample_with(n, seed, SamplingMethod::Naive));
            assert_eq!(naive, cached, "{shape:?}, seed {seed}: samples differ");
            let levels = levels_of(distribution);
            assert!(
                (0..levels).any(|l| naive.contains(&level_value(l, levels)) && l > 0),
                "{shape:?}: degenerate samples"
            );
            let naive = samples(model.complete(&batch, &observed, seed, SamplingMethod::Naive));
            let cached = samples(model.complete(&batch, &observed, seed, SamplingMethod::Cached));
            assert_eq!(naive, cached, "{shape:?}, seed {seed}: completions differ");
        }
    }
}

struct InitialisationCheck {
    parameters: usize,
    lazy: usize,
}

impl ModuleVisitor for InitialisationCheck {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.parameters += 1;
        self.lazy += usize::from(!param.is_initialized());
    }
}

/// Burn initialises parameters lazily, on first read, from the device's seeded RNG: a model
/// whose first use is the cached sampler (which reads them in another order than `forward`)
/// would get other weights from the same seed. `init` must initialise them all.
pub(crate) fn assert_all_parameters_initialised<M: Module>(model: &M) {
    let mut check = InitialisationCheck {
        parameters: 0,
        lazy: 0,
    };
    model.visit(&mut check);
    assert!(check.parameters > 0);
    assert_eq!(
        check.lazy, 0,
        "{} of {} parameters are still lazy",
        check.lazy, check.parameters
    );
}

#[test]
fn pixelcnn_parameters_are_initialised_by_init() {
    let (shape, distribution) = rgb();
    assert_all_parameters_initialised(&pixelcnn(shape, distribution, 0));
}

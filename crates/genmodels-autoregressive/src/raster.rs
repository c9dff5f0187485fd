//! What every autoregressive model shares: the exact likelihood from one pass of conditional
//! logits, and the raster-order loop that samples and completes images one sub-pixel at a time.
//!
//! A model implements [`RasterModel`] (its logits for a whole batch) and gets input checks,
//! [`log_prob`], [`loss`], [`log_likelihood`] and the naive sampler from here. Faster samplers
//! implement [`Conditionals`]: they hand out the logits of one sub-pixel at a time and may keep
//! whatever state makes the next one cheap.

use burn::tensor::{Device, Int, Tensor, TensorData};
pub use genmodels_core::SamplingMethod;
use genmodels_core::{
    DensityScale, GenError, ImageBatch, ImageShape, LikelihoodKind, LogLikelihood, Loss, Result,
    batch::to_host, random,
};
use rand::Rng;

use crate::pixel::PixelDistribution;

/// An autoregressive image model: one pass of [`RasterModel::logits`] gives every sub-pixel's
/// conditional distribution given the sub-pixels before it in raster order (rows top to
/// bottom, pixels left to right, channels R → G → B within a pixel).
pub trait RasterModel {
    /// The model's name in error messages.
    const DISPLAY_NAME: &'static str;

    /// Shape of the images it models.
    fn raster_shape(&self) -> ImageShape;

    /// The output head.
    fn distribution(&self) -> PixelDistribution;

    /// Whether the model needs a class label per image.
    fn is_conditional(&self) -> bool {
        false
    }

    /// What the likelihood conditions on (see
    /// [`GenerativeModel::likelihood_condition`](genmodels_core::GenerativeModel::likelihood_condition)):
    /// the class label for a conditional model.
    fn likelihood_condition(&self) -> Option<String> {
        self.is_conditional().then(|| "the class label".to_string())
    }

    /// Checks the labels of a batch are ones the model knows.
    ///
    /// # Errors
    /// [`GenError::InvalidLabels`] for a label out of range.
    fn check_labels(&self, _labels: Option<&Tensor<1, Int>>) -> Result<()> {
        Ok(())
    }

    /// The labels `n` new samples are drawn for when the caller gives none: `None` for an
    /// unconditional model.
    fn default_labels(&self, _n: usize, _device: &Device) -> Option<Tensor<1, Int>> {
        None
    }

    /// The conditional logits of every sub-pixel.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - labels: `[N]` for a conditional model, ignored otherwise
    /// - output: `[N, C·K, H, W]`, the `K` logits of channel `c` at `c·K..(c+1)·K`
    fn logits(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4>;

    /// The logits [`log_prob`] reads, and with it the likelihood and the training loss, for a
    /// batch that passed [`check_input`]: those of [`logits`](Self::logits) by default. A
    /// model conditioned on a map it builds from the image itself (the super-resolution Gated
    /// PixelCNN, on the image's low-pass `U(D(x))`) gives its logits given that map, so that
    /// its likelihood is `log p(x | U(D(x)))` and the ordinary trainer and data loader train
    /// it. The samplers read [`logits`](Self::logits): a map built from the image being drawn
    /// would change as it is drawn.
    ///
    /// # Shapes
    /// As [`logits`](Self::logits).
    ///
    /// # Errors
    /// Those of building the map.
    fn likelihood_logits(
        &self,
        images: Tensor<4>,
        labels: Option<Tensor<1, Int>>,
    ) -> Result<Tensor<4>> {
        Ok(self.logits(images, labels))
    }

    /// The last hidden map: the activations the output head's final 1×1 convolution reads,
    /// so that [`read_out`](Self::read_out) of it gives [`logits`](Self::logits). Position
    /// `(i, j)` of it sees only the sub-pixels before pixel `(i, j)`'s own (and the pixel's
    /// earlier colours).
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - labels: `[N]` for a conditional model, ignored otherwise
    /// - output: `[N, F, H, W]`
    fn hidden_map(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4>;

    /// The output head's final 1×1 convolution.
    ///
    /// # Shapes
    /// - hidden: `[N, F, H, W]`, from [`hidden_map`](Self::hidden_map)
    /// - output: `[N, C·K, H, W]`
    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4>;
}

/// Checks the settings every autoregressive model shares: a valid output head, an image with
/// pixels, `hidden` a positive multiple of the colour channels, at least one layer, and odd
/// kernels (each named for the error message).
///
/// # Errors
/// [`GenError::InvalidConfig`] naming the first setting that is wrong.
pub fn validate_config(
    model: &str,
    image_shape: ImageShape,
    distribution: PixelDistribution,
    hidden: usize,
    layers: usize,
    odd_kernels: &[(&str, usize)],
) -> Result<()> {
    distribution.validate()?;
    let colours = image_shape.channels;
    if image_shape.dims() == 0 {
        return Err(GenError::InvalidConfig(
            "the image shape has no pixels".into(),
        ));
    }
    if hidden == 0 || !hidden.is_multiple_of(colours) {
        return Err(GenError::InvalidConfig(format!(
            "hidden = {hidden} must be a positive multiple of the {colours} colour channels"
        )));
    }
    if layers == 0 {
        return Err(GenError::InvalidConfig(format!(
            "a {model} needs at least one layer"
        )));
    }
    for &(name, k) in odd_kernels {
        if k.is_multiple_of(2) {
            return Err(GenError::InvalidConfig(format!(
                "the {name} must be odd, got {k}"
            )));
        }
    }
    Ok(())
}

/// Checks the first layer's mask-A kernel: at least 3 wide, since a 1×1 mask-A kernel sees no
/// earlier pixel at all (for grey images it has no tap, and the model never sees the image).
/// A kernel wider than the image is fine: its outer taps read the zero padding.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a kernel narrower than 3.
pub fn validate_input_kernel(input_kernel: usize) -> Result<()> {
    if input_kernel < 3 {
        return Err(GenError::InvalidConfig(format!(
            "the input kernel must be at least 3 wide, got {input_kernel}: its mask A hides \
             the current pixel, so a 1×1 kernel sees no earlier pixel"
        )));
    }
    Ok(())
}

/// Checks that `batch` is something `model` puts probability on: its shape, its values and,
/// for a conditional model, its labels (present, and in range).
///
/// # Errors
/// [`GenError::ShapeMismatch`], [`GenError::ValueOutOfRange`], or
/// [`GenError::InvalidLabels`] when a conditional model gets no labels.
pub fn check_input<M: RasterModel>(model: &M, batch: &ImageBatch) -> Result<()> {
    batch.require_shape(model.raster_shape(), M::DISPLAY_NAME)?;
    model.distribution().check_values(batch, M::DISPLAY_NAME)?;
    if model.is_conditional() && batch.labels().is_none() {
        return Err(GenError::InvalidLabels(format!(
            "this {} is class-conditional: its images need labels",
            M::DISPLAY_NAME
        )));
    }
    model.check_labels(batch.labels())
}

/// `log p(x)` per image, `[N]`, after [`check_input`], from
/// [`likelihood_logits`](RasterModel::likelihood_logits).
///
/// # Errors
/// As [`check_input`].
pub fn log_prob<M: RasterModel>(model: &M, batch: &ImageBatch) -> Result<Tensor<1>> {
    check_input(model, batch)?;
    let images = batch.images().clone();
    let logits = model.likelihood_logits(images.clone(), batch.labels().cloned())?;
    Ok(model.distribution().log_prob(logits, images))
}

/// The representation of each image for [`Represent`](genmodels_core::capabilities::Represent):
/// the last hidden map `h(x)` averaged over positions,
///
/// ```text
/// r(x)_f = (1/HW) Σ_{i,j} h(x)_{f,i,j},
/// ```
///
/// after [`check_input`].
///
/// # Shapes
/// - batch: `[N, C, H, W]`
/// - output: `[N, F]`
///
/// # Errors
/// As [`check_input`].
pub fn representation<M: RasterModel>(model: &M, batch: &ImageBatch) -> Result<Tensor<2>> {
    check_input(model, batch)?;
    let hidden = model.hidden_map(batch.images().clone(), batch.labels().cloned());
    let [n, features, _, _] = hidden.dims();
    Ok(hidden.mean_dim(3).mean_dim(2).reshape([n, features]))
}

/// The training loss: `−log p(x)` averaged over the batch, in nats per image.
///
/// # Errors
/// As [`check_input`].
pub fn loss<M: RasterModel>(model: &M, batch: &ImageBatch) -> Result<Loss> {
    Ok(Loss::new(-log_prob(model, batch)?.mean()))
}

/// The exact `log p(x)` per image, from one forward pass.
///
/// # Errors
/// As [`check_input`]; backend errors reading the result back.
pub fn log_likelihood<M: RasterModel>(model: &M, batch: &ImageBatch) -> Result<LogLikelihood> {
    LogLikelihood::from_tensor(
        LikelihoodKind::Exact,
        log_prob(model, batch)?,
        model.raster_shape().dims(),
        DensityScale::Discrete,
    )
}

/// A source of one sub-pixel's conditional logits at a time, called in raster order.
pub trait Conditionals {
    /// The logits of sub-pixel `(channel, y, x)` for every image, `[N·K]` image-major.
    ///
    /// `pixels` holds the batch `[N, C, H, W]` row-major; every sub-pixel before
    /// `(channel, y, x)` in raster order is final. Calls come in raster order but may skip
    /// positions (those every image observes when completing); an implementation with state
    /// must catch up over the skipped ones.
    ///
    /// # Errors
    /// Backend errors reading logits back.
    fn logits_at(&mut self, pixels: &[f32], channel: usize, y: usize, x: usize)
    -> Result<Vec<f32>>;
}

/// The naive sampler's conditionals: one full forward pass per call of `logits`, a function
/// from the batch `[N, C, H, W]` to every sub-pixel's logits `[N, C·K, H, W]` (a
/// [`RasterModel`]'s [`logits`](RasterModel::logits) for its labels through
/// [`naive_conditionals`], or a Gated PixelCNN's given a fixed spatial map).
pub struct NaiveConditionals<F> {
    logits: F,
    shape: ImageShape,
    logits_per_channel: usize,
    device: Device,
}

impl<F: FnMut(Tensor<4>) -> Tensor<4>> NaiveConditionals<F> {
    /// Conditionals of images of `shape` with `logits_per_channel` logits per sub-pixel, on
    /// `device`, from the whole-batch function `logits`.
    pub fn new(shape: ImageShape, logits_per_channel: usize, device: Device, logits: F) -> Self {
        Self {
            logits,
            shape,
            logits_per_channel,
            device,
        }
    }
}

/// The naive conditionals of `model` for images with `labels` (for a conditional model) on
/// `device`: its [`logits`](RasterModel::logits).
pub fn naive_conditionals<M: RasterModel>(
    model: &M,
    labels: Option<Tensor<1, Int>>,
    device: Device,
) -> NaiveConditionals<impl FnMut(Tensor<4>) -> Tensor<4> + '_> {
    let (shape, k) = (
        model.raster_shape(),
        model.distribution().logits_per_channel(),
    );
    NaiveConditionals::new(shape, k, device, move |images| {
        model.logits(images, labels.clone())
    })
}

impl<F: FnMut(Tensor<4>) -> Tensor<4>> Conditionals for NaiveConditionals<F> {
    fn logits_at(
        &mut self,
        pixels: &[f32],
        channel: usize,
        y: usize,
        x: usize,
    ) -> Result<Vec<f32>> {
        let n = pixels.len() / self.shape.dims();
        let k = self.logits_per_channel;
        let images = Tensor::<4>::from_data(
            TensorData::new(pixels.to_vec(), self.shape.batch_dims(n)),
            &self.device,
        );
        let logits =
            (self.logits)(images).slice([0..n, channel * k..(channel + 1) * k, y..y + 1, x..x + 1]);
        to_host(logits)
    }
}

/// Fills every sub-pixel that is not `observed`, in raster order, drawing each from the
/// logits `conditionals` gives for it with a host RNG seeded with `seed`.
///
/// One uniform number is drawn per image and sub-pixel whether it is used or not, so the random
/// stream does not depend on what is observed, nor on the sampler: every [`Conditionals`]
/// gives the same images for the same seed, up to logits that differ by float rounding landing
/// on opposite sides of a uniform draw (probability about 1e-7 per draw).
///
/// # Shapes
/// - pixels, observed: `N·C·H·W` values, `[N, C, H, W]` row-major
/// - output: `[N, C, H, W]` on `device`
///
/// # Errors
/// [`GenError::ShapeMismatch`] when `observed` and `pixels` differ in length or `pixels` is not
/// a whole number of images; errors of `conditionals`.
pub fn fill_in_raster_order(
    shape: ImageShape,
    distribution: PixelDistribution,
    conditionals: &mut (impl Conditionals + ?Sized),
    mut pixels: Vec<f32>,
    observed: &[bool],
    seed: u64,
    device: &Device,
) -> Result<Tensor<4>> {
    if observed.len() != pixels.len() {
        return Err(GenError::shape(
            "observed mask (one flag per sub-pixel)",
            pixels.len(),
            observed.len(),
        ));
    }
    if pixels.is_empty() || !pixels.len().is_multiple_of(shape.dims()) {
        return Err(GenError::shape(
            "pixels (whole images)",
            shape.dims(),
            pixels.len(),
        ));
    }
    let n = pixels.len() / shape.dims();
    let k = distribution.logits_per_channel();
    let mut rng = random::rng(seed);
    let index = |i: usize, c: usize, y: usize, x: usize| {
        ((i * shape.channels + c) * shape.height + y) * shape.width + x
    };
    for y in 0..shape.height {
        for x in 0..shape.width {
            for c in 0..shape.channels {
                let uniforms: Vec<f64> = (0..n).map(|_| rng.random()).collect();
                if (0..n).all(|i| observed[index(i, c, y, x)]) {
                    continue;
                }
                let logits = conditionals.logits_at(&pixels, c, y, x)?;
                for (i, image_logits) in logits.chunks(k).enumerate() {
                    let at = index(i, c, y, x);
                    if !observed[at] {
                        pixels[at] = distribution.draw(image_logits, uniforms[i]);
                    }
                }
            }
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(pixels, shape.batch_dims(n)),
        device,
    ))
}

/// Sampling and completion for an autoregressive model, naive or incremental.
///
/// A model provides its incremental sampler (cached activations for the PixelCNNs, carried
/// LSTM states for the PixelRNNs); the naive one comes with [`naive_conditionals`], and
/// [`sample_with`] and [`fill_with`] choose between them. Every autoregressive model offers both
/// through the capabilities [`SampleWithMethod`](genmodels_core::SampleWithMethod) and
/// [`Complete`](genmodels_core::Complete).
pub trait IncrementalSampling: RasterModel + burn::module::Module {
    /// Conditionals for a batch of `n` images (with `labels`, for a conditional model) that
    /// keep state from one sub-pixel to the next and compute only what each new one changes.
    fn incremental_conditionals(
        &self,
        n: usize,
        labels: Option<Tensor<1, Int>>,
        device: &Device,
    ) -> impl Conditionals + '_;
}

/// Implements [`GenerativeModel`](genmodels_core::GenerativeModel) and
/// [`Trainable`](genmodels_core::Trainable) for an autoregressive model whose `config` field holds its `$config` (with an `image_shape`): the loss and the
/// exact likelihood from [`loss`] and [`log_likelihood`], samples from the incremental
/// sampler.
macro_rules! raster_generative_model {
    ($model:ty, $config:ty) => {
        impl genmodels_core::GenerativeModel for $model {
            type Config = $config;

            fn config(&self) -> &$config {
                &self.config
            }

            fn image_shape(&self) -> genmodels_core::ImageShape {
                self.config.image_shape
            }

            fn likelihood_condition(&self) -> Option<String> {
                $crate::raster::RasterModel::likelihood_condition(self)
            }

            /// The exact `log p(x)`, in one forward pass.
            fn compute_log_likelihood(
                &self,
                batch: &genmodels_core::ImageBatch,
                _: &genmodels_core::LikelihoodOptions,
            ) -> genmodels_core::Result<genmodels_core::LogLikelihood> {
                $crate::raster::log_likelihood(self, batch)
            }

            /// Draws `n` images with the incremental sampler ([`SamplingMethod::Cached`]($crate::raster::SamplingMethod::Cached)).
            fn compute_samples(
                &self,
                n: usize,
                seed: u64,
            ) -> genmodels_core::Result<burn::tensor::Tensor<4>> {
                let device = genmodels_core::model::module_device(self);
                let labels = $crate::raster::RasterModel::default_labels(self, n, &device);
                $crate::raster::sample_with(
                    self,
                    n,
                    labels,
                    seed,
                    $crate::raster::SamplingMethod::Cached,
                )
            }
        }

        impl genmodels_core::SampleWithMethod for $model {
            /// Draws `n` images sub-pixel by sub-pixel in raster order, from a host RNG seeded
            /// with `seed`, with the conditionals computed as `method` says; both methods give
            /// the same images. A conditional model draws them for its
            /// [`default_labels`]($crate::RasterModel::default_labels).
            fn sample_with(
                &self,
                n: usize,
                seed: u64,
                method: $crate::raster::SamplingMethod,
            ) -> genmodels_core::Result<burn::tensor::Tensor<4>> {
                let model = self.clone();
                genmodels_kernels::on_compute_threads(
                    &genmodels_core::model::module_device(self),
                    move || {
                        let device = genmodels_core::model::module_device(&model);
                        let labels =
                            $crate::raster::RasterModel::default_labels(&model, n, &device);
                        $crate::raster::sample_with(&model, n, labels, seed, method)
                    },
                )
            }
        }

        impl genmodels_core::Complete for $model {
            /// Keeps every sub-pixel where `observed` is true and samples the others in raster
            /// order, each given every sub-pixel before it (observed or already sampled) and,
            /// for a conditional model, the batch's labels.
            ///
            /// A raster-order model conditions only on the past. The completion is an exact
            /// sample from `p(unobserved | observed)` when every observed sub-pixel comes
            /// before every unobserved one, e.g. "given the top rows, complete the bottom".
            /// Observed sub-pixels after the first unobserved one are kept as they are, but the
            /// sub-pixels sampled before them did not take them into account.
            ///
            /// The random stream is that of
            /// [`sample_with`](genmodels_core::SampleWithMethod::sample_with), so completing
            /// with nothing observed gives the images sampling draws with the same seed (and
            /// labels), whatever the `method`.
            fn complete(
                &self,
                batch: &genmodels_core::ImageBatch,
                observed: &[bool],
                seed: u64,
                method: $crate::raster::SamplingMethod,
            ) -> genmodels_core::Result<burn::tensor::Tensor<4>> {
                let (pixels, labels) = $crate::raster::completion_input(self, batch)?;
                let labels = labels.filter(|_| $crate::raster::RasterModel::is_conditional(self));
                let (model, observed) = (self.clone(), observed.to_vec());
                genmodels_kernels::on_compute_threads(&batch.device(), move || {
                    $crate::raster::fill_with(&model, pixels, &observed, labels, seed, method)
                })
            }
        }

        /// `−log p(x)`, exact.
        impl genmodels_core::AnomalyScore for $model {}

        impl genmodels_core::capabilities::Represent for $model {
            /// The last hidden map before the output head, averaged over positions
            /// ([`representation`]($crate::raster::representation)).
            fn representation(
                &self,
                batch: &genmodels_core::ImageBatch,
            ) -> genmodels_core::Result<burn::tensor::Tensor<2>> {
                $crate::raster::representation(self, batch)
            }

            fn representation_name(&self) -> &'static str {
                "last hidden layer, mean over positions"
            }
        }

        impl genmodels_core::Trainable for $model {
            /// `−log p(x)` averaged over the batch, in nats per image.
            fn loss(
                &self,
                _player: usize,
                batch: &genmodels_core::ImageBatch,
            ) -> genmodels_core::Result<genmodels_core::Loss> {
                $crate::raster::loss(self, batch)
            }
        }
    };
}
pub(crate) use raster_generative_model;

/// Fills the sub-pixels that are not `observed` with the sampler `method` names (see
/// [`fill_in_raster_order`]): both samplers give the same images for the same seed.
///
/// # Shapes
/// - pixels, observed: `N·C·H·W` values, `[N, C, H, W]` row-major
/// - labels: `[N]` for a conditional model
/// - output: `[N, C, H, W]` on the model's device
///
/// # Errors
/// As [`fill_in_raster_order`]; [`GenError::InvalidConfig`] for a diffusion model's sampler
/// (ancestral, DDIM).
pub fn fill_with<M: IncrementalSampling>(
    model: &M,
    pixels: Vec<f32>,
    observed: &[bool],
    labels: Option<Tensor<1, Int>>,
    seed: u64,
    method: SamplingMethod,
) -> Result<Tensor<4>> {
    let (shape, distribution) = (model.raster_shape(), model.distribution());
    let device = genmodels_core::model::module_device(model);
    match method {
        SamplingMethod::Naive => fill_in_raster_order(
            shape,
            distribution,
            &mut naive_conditionals(model, labels, device.clone()),
            pixels,
            observed,
            seed,
            &device,
        ),
        SamplingMethod::Cached => {
            let n = pixels.len() / shape.dims().max(1);
            fill_in_raster_order(
                shape,
                distribution,
                &mut model.incremental_conditionals(n, labels, &device),
                pixels,
                observed,
                seed,
                &device,
            )
        }
        SamplingMethod::Ancestral | SamplingMethod::Ddim { .. } => {
            Err(method.unsupported("the autoregressive models sample", "`naive` or `cached`"))
        }
    }
}

/// Draws `n` new images (with `labels`, for a conditional model) with the sampler `method`
/// names.
///
/// # Errors
/// [`GenError::InvalidConfig`] for `n = 0`; as [`fill_in_raster_order`].
pub fn sample_with<M: IncrementalSampling>(
    model: &M,
    n: usize,
    labels: Option<Tensor<1, Int>>,
    seed: u64,
    method: SamplingMethod,
) -> Result<Tensor<4>> {
    genmodels_core::model::require_samples(n)?;
    let values = n * model.raster_shape().dims();
    fill_with(
        model,
        vec![0.0; values],
        &vec![false; values],
        labels,
        seed,
        method,
    )
}

/// The labels a conditional model samples with when none are given: `0, 1, …, classes − 1, 0,
/// …` in turn, so a grid of samples shows every class.
pub fn cycling_labels(n: usize, classes: usize, device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = (0..n).map(|i| (i % classes.max(1)) as i64).collect();
    Tensor::from_data(TensorData::new(labels, [n]), device)
}

/// The host copy of a batch's pixels and its labels, for completion.
///
/// # Errors
/// As [`check_input`].
pub fn completion_input<M: RasterModel>(
    model: &M,
    batch: &ImageBatch,
) -> Result<(Vec<f32>, Option<Tensor<1, Int>>)> {
    check_input(model, batch)?;
    Ok((to_host(batch.images().clone())?, batch.labels().cloned()))
}

/// Splits `tensor` along `dim` into its slices of width 1: the steps of a recurrence (the
/// Row LSTM's rows, the Diagonal BiLSTM's columns).
///
/// Autodiff turns the gradient of every slice into a zero tensor the size of what was sliced,
/// and sums them: slicing `S` steps off a tensor one by one moves `S` whole tensors in the
/// backward pass. Splitting into a few blocks, then each block into a few, and so on, moves
/// about `4 log₄ S` instead.
pub(crate) fn steps<const D: usize>(tensor: Tensor<D>, dim: usize) -> Vec<Tensor<D>> {
    const LEAF: usize = 8;
    const BRANCHES: usize = 4;
    let len = tensor.dims()[dim];
    if len <= LEAF {
        return tensor.split(1, dim);
    }
    tensor
        .split(len.div_ceil(BRANCHES), dim)
        .into_iter()
        .flat_map(|block| steps(block, dim))
        .collect()
}

//! Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016,
//! "Conditional Image Generation with PixelCNN Decoders").

use std::collections::VecDeque;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, PaddingConfig2d};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::capabilities;
use genmodels_core::{
    DensityScale, GenError, ImageBatch, ImageShape, LikelihoodKind, LogLikelihood, ModelConfig,
    Result,
    model::{module_device, require_samples},
};
use genmodels_kernels::relu;
use genmodels_kernels::{conv2d_padded, sigmoid, tanh};

use crate::cached::{Affine, CachedConditionals, IncrementalNet, RowWindows, image_window};
use crate::gates::gated_activation;
use crate::masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig};
use crate::pixel::PixelDistribution;
use crate::raster::{
    self, Conditionals, IncrementalSampling, NaiveConditionals, RasterModel, SamplingMethod,
};

/// Configuration of a [`GatedPixelCnn`]. The default is the `small` preset.
#[derive(Config, Debug)]
pub struct GatedPixelCnnConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The output head.
    #[config(default = "PixelDistribution::Bernoulli")]
    pub distribution: PixelDistribution,
    /// `p`: feature maps per stack (a multiple of the colour channels).
    #[config(default = 24)]
    pub hidden: usize,
    /// Gated layers, the first one reading the image.
    #[config(default = 6)]
    pub layers: usize,
    /// Width `k` of the later layers' kernels (odd): `(k/2+1)×k` vertical, `1×(k/2+1)`
    /// horizontal.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Width of the first layer's kernels (odd).
    #[config(default = 7)]
    pub input_kernel: usize,
    /// Number of classes for class-conditional modelling; `None` for an unconditional model.
    #[config(default = "None")]
    pub classes: Option<usize>,
    /// Channels of a spatial conditioning map `s` of the image's height and width (e.g. a
    /// low-resolution image upsampled to the image size, for super-resolution), which enters
    /// every gated layer through a 1×1 convolution (3×3 over the block means for a
    /// super-resolution model); `None` for none. See
    /// [`GatedPixelCnn::forward_conditioned`].
    #[config(default = "None")]
    pub condition_channels: Option<usize>,
    /// For a super-resolution model, the factor `f` of its low-resolution input: the model
    /// is `p(x | U(D(x)))`, its map the image's own low-pass (`D` the `f×f` block means, `U`
    /// nearest upsampling, [`capabilities::low_pass`]), built from each batch, so that its
    /// training loss and its likelihood are the conditional `−log p(x | y)` and
    /// `log p(x | y)` of `y = D(x)`. Needs `condition_channels` equal to the image's
    /// channels, which it reads through a 3×3 convolution over the block means instead of a
    /// 1×1 one (see `GatedPixelCnn::condition_terms`); `None` for a model of `p(x)` (and for
    /// checkpoints from before the field).
    #[config(default = "None")]
    pub super_resolution_factor: Option<usize>,
}

impl Default for GatedPixelCnnConfig {
    /// The `small` preset.
    fn default() -> Self {
        Self::new()
    }
}

impl GatedPixelCnnConfig {
    /// The `small` preset: `p = 24` maps per stack, 6 gated layers (the first with 7-wide
    /// kernels, the others 3-wide), and the head ReLU → 1×1 p→p → ReLU → 1×1 p→out.
    ///
    /// Sized against [`PixelCnnConfig::small`](crate::PixelCnnConfig::small): the same
    /// reach of 8 rows up (3 + 5·1), a similar parameter count (≈ 66k against ≈ 74k), a
    /// training step about 1.5× as long on CPU (`examples/autoregressive_training_speed.rs`);
    /// and, unlike it, no blind spot and gated units. A multiple of 3 maps, so it also fits
    /// RGB images.
    pub fn small() -> Self {
        Self::new()
    }

    /// The `deep` preset: `small` with 16 layers instead of 6, a reach of 18 rows up
    /// (3 + 15·1) instead of 8, as PixelCNN's `deep`. About 2.7× the compute of `small` per
    /// image.
    pub fn deep() -> Self {
        Self::new().with_layers(16)
    }

    /// The `superres-xF` presets: `small` conditioned on the low-pass `U(D(x))` of its own
    /// image by `factor` (one map channel per colour), a model of `p(x | D(x))` for
    /// super-resolution (see [`super_resolution_factor`](Self::super_resolution_factor)).
    /// `small`'s reach of 8 rows up is enough here: the map gives the whole digit's coarse
    /// shape at every position.
    pub fn super_resolution(image_shape: ImageShape, factor: usize) -> Self {
        Self::new()
            .with_image_shape(image_shape)
            .with_condition_channels(Some(image_shape.channels))
            .with_super_resolution_factor(Some(factor))
    }
}

impl ModelConfig for GatedPixelCnnConfig {
    type Model = GatedPixelCnn;
    const MODEL_NAME: &'static str = "gated-pixelcnn";

    fn init(&self, device: &Device) -> Result<GatedPixelCnn> {
        raster::validate_config(
            "Gated PixelCNN",
            self.image_shape,
            self.distribution,
            self.hidden,
            self.layers,
            &[
                ("kernel size", self.kernel_size),
                ("input kernel", self.input_kernel),
            ],
        )?;
        raster::validate_input_kernel(self.input_kernel)?;
        let colours = self.image_shape.channels;
        if self.classes == Some(0) {
            return Err(GenError::InvalidConfig(
                "a class-conditional model needs at least one class".into(),
            ));
        }
        if self.condition_channels == Some(0) {
            return Err(GenError::InvalidConfig(
                "a spatial conditioning map needs at least one channel".into(),
            ));
        }
        if let Some(factor) = self.super_resolution_factor {
            capabilities::check_resolution_factor(factor, self.image_shape)?;
            if self.condition_channels != Some(colours) {
                return Err(GenError::InvalidConfig(format!(
                    "a super-resolution Gated PixelCNN reads its image's low-pass as its map: \
                     it needs condition_channels = Some({colours}), got {:?}",
                    self.condition_channels
                )));
            }
        }
        let p = self.hidden;
        let layers = (0..self.layers)
            .map(|index| {
                let (c_in, k, mask) = match index {
                    0 => (colours, self.input_kernel, MaskType::A),
                    _ => (p, self.kernel_size, MaskType::B),
                };
                GatedLayer {
                    vertical: VerticalConv::new([c_in, 2 * p], k, device),
                    horizontal: HorizontalConv::new([c_in, 2 * p], k, mask, colours, device),
                    link: Conv2dConfig::new([2 * p, 2 * p], [1, 1]).init(device),
                    output: masked_1x1([p, p], colours, device),
                    residual: index > 0,
                }
            })
            .collect();
        let out = colours * self.distribution.logits_per_channel();
        let label_embedding = self.classes.map(|classes| {
            EmbeddingConfig::new(classes, self.layers * 4 * p)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.1,
                })
                .init(device)
        });
        // One convolution gives every layer's terms, as the label embedding's one table does;
        // no bias (the layers have theirs), so a zero map adds nothing. 1×1 for a general map;
        // 3×3 over the block means for a super-resolution model (see `condition_terms`).
        let condition = self.condition_channels.map(|channels| {
            let (kernel, padding) = match self.super_resolution_factor {
                Some(_) => (3, 1),
                None => (1, 0),
            };
            Conv2dConfig::new([channels, self.layers * 4 * p], [kernel, kernel])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .with_bias(false)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.1,
                })
                .init(device)
        });
        let model = GatedPixelCnn {
            layers,
            label_embedding,
            condition,
            head_hidden: masked_1x1([p, p], colours, device),
            head_out: masked_1x1([p, out], colours, device),
            config: self.clone(),
        };
        model.initialise_parameters();
        Ok(model)
    }
}

fn masked_1x1(channels: [usize; 2], colours: usize, device: &Device) -> MaskedConv2d {
    MaskedConv2dConfig::new(channels, 1, MaskType::B)
        .with_colour_groups(colours)
        .init(device)
}

/// The vertical stack's convolution: `(k/2+1)×k` over the rows above and the row itself, so
/// row `y` of its output sees input rows `≤ y` (and every column within reach). It needs no
/// colour mask: it reaches the horizontal stack only shifted down one row.
#[derive(Module, Debug)]
pub struct VerticalConv {
    conv: Conv2d,
    #[module(skip)]
    reach: usize,
}

impl VerticalConv {
    fn new(channels: [usize; 2], kernel: usize, device: &Device) -> Self {
        let reach = kernel / 2;
        Self {
            conv: Conv2dConfig::new(channels, [reach + 1, kernel]).init(device),
            reach,
        }
    }

    fn convolve(&self, input: Tensor<4>, rows_above: usize) -> Tensor<4> {
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let padding = [rows_above, 0, self.reach, self.reach];
        conv2d_padded(input, self.conv.weight.val(), bias, padding)
    }

    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H, W]`, row `y` from input rows `y − k/2 ..= y`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.convolve(input, self.reach)
    }

    /// The output row whose input rows (the last one and the `k/2` above it) are `rows`.
    ///
    /// # Shapes
    /// - rows: `[N, in, k/2+1, W]`
    /// - output: `[N, out, 1, W]`
    fn forward_row(&self, rows: Tensor<4>) -> Tensor<4> {
        self.convolve(rows, 0)
    }
}

/// The horizontal stack's convolution: `1×(k/2+1)` over the current row up to and including
/// the pixel, whose centre column is colour-masked like a [`MaskedConv2d`] (mask A: only
/// earlier colours of the pixel; mask B: also its own).
#[derive(Module, Debug)]
pub struct HorizontalConv {
    conv: Conv2d,
    /// `[out, in, 1, k/2+1]`: ones left of the centre, the colour mask at the centre.
    mask: Tensor<4>,
    #[module(skip)]
    reach: usize,
}

impl HorizontalConv {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        mask: MaskType,
        colours: usize,
        device: &Device,
    ) -> Self {
        let reach = kernel / 2;
        let [c_in, c_out] = channels;
        let centre = MaskedConv2dConfig::new(channels, 1, mask)
            .with_colour_groups(colours)
            .mask_values();
        let values: Vec<f32> = centre
            .iter()
            .flat_map(|&at_centre| std::iter::repeat_n(1.0, reach).chain([at_centre]))
            .collect();
        Self {
            conv: Conv2dConfig::new(channels, [1, reach + 1]).init(device),
            mask: Tensor::from_data(TensorData::new(values, [c_out, c_in, 1, reach + 1]), device),
            reach,
        }
    }

    /// The masked kernel `[out, in, 1, k/2+1]` and the bias, the bias read first as in
    /// [`forward`](Self::forward).
    fn masked_weight_and_bias(&self) -> (Tensor<4>, Option<Tensor<1>>) {
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        (self.conv.weight.val() * self.mask.clone(), bias)
    }

    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H, W]`, pixel `(y, x)` from input `(y, x − k/2 ..= x)`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let (weight, bias) = self.masked_weight_and_bias();
        conv2d_padded(input, weight, bias, [0, 0, self.reach, 0])
    }
}

/// One gated layer of both stacks (Fig. 2 of the paper), with `p` maps per stack:
///
/// ```text
/// v' = V * v + e_v(label)                                   (2p pre-activations)
/// h' = H * h + L (v' shifted down one row) + e_h(label)      (2p pre-activations)
/// v_out = tanh(v'_f) ⊙ σ(v'_g)
/// h_out = [h +] O (tanh(h'_f) ⊙ σ(h'_g))
/// ```
///
/// with `V` the vertical convolution, `H` the horizontal one, `L` and `O` 1×1 convolutions
/// (`O` colour-masked, mask B) and the residual `h +` in every layer but the first. The two
/// gates are laid out inside each colour block (see [`gates`](crate::gates)), so that a gate
/// of colour `g` multiplies only features of colour `g`.
#[derive(Module, Debug)]
pub struct GatedLayer {
    vertical: VerticalConv,
    horizontal: HorizontalConv,
    link: Conv2d,
    output: MaskedConv2d,
    #[module(skip)]
    residual: bool,
}

impl GatedLayer {
    /// `L(v' shifted down one row)`: row 0 gets `L(0)`, the bias.
    fn link_shifted(&self, vertical_pre: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = vertical_pre.dims();
        let bias = self.link.bias.as_ref().map(|b| b.val());
        conv2d_padded(vertical_pre, self.link.weight.val(), bias, [1, 0, 0, 0]).slice([
            0..n,
            0..c,
            0..h,
            0..w,
        ])
    }

    /// # Shapes
    /// - vertical, horizontal: `[N, in, H, W]` (the image for the first layer)
    /// - label_terms: `[N, 2p]` each (vertical, horizontal), for a conditional model
    /// - output: `(v_out, h_out)`, `[N, p, H, W]` each
    pub fn forward(
        &self,
        vertical: Tensor<4>,
        horizontal: Tensor<4>,
        label_terms: Option<(Tensor<4>, Tensor<4>)>,
        colours: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let (vertical_pre, horizontal_out) =
            self.forward_preactivated(vertical, horizontal, label_terms, colours);
        (gated_activation(vertical_pre, colours), horizontal_out)
    }

    /// [`forward`](Self::forward) with the vertical stack's output left as its gate
    /// pre-activations `v'` (the last layer needs only the horizontal output).
    fn forward_preactivated(
        &self,
        vertical: Tensor<4>,
        horizontal: Tensor<4>,
        label_terms: Option<(Tensor<4>, Tensor<4>)>,
        colours: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let mut vertical_pre = self.vertical.forward(vertical);
        let mut horizontal_pre = self.horizontal.forward(horizontal.clone());
        if let Some((on_vertical, on_horizontal)) = label_terms {
            vertical_pre = vertical_pre + on_vertical;
            horizontal_pre = horizontal_pre + on_horizontal;
        }
        let horizontal_pre = horizontal_pre + self.link_shifted(vertical_pre.clone());
        let gated = self
            .output
            .forward(gated_activation(horizontal_pre, colours));
        let horizontal_out = if self.residual {
            horizontal + gated
        } else {
            gated
        };
        (vertical_pre, horizontal_out)
    }
}

/// A Gated PixelCNN: `p(x) = Π_i p(x_i | x_<i)` over sub-pixels in raster order (R → G → B
/// within a pixel), optionally conditioned on a class label `p(x | y)`.
///
/// A vertical stack sees every row above, a horizontal stack the current row to the left, so
/// the receptive field has no blind spot; gated units `tanh(W_f * x + V_f e_y) ⊙ σ(W_g * x +
/// V_g e_y)` replace the ReLUs. The label enters as a learned embedding, one `2p`-wide vector
/// per stack and layer (all of them one row of one table, `classes × layers·4p`), added to the
/// gate pre-activations. A spatial conditioning map `s` (optional,
/// [`GatedPixelCnnConfig::condition_channels`]) enters the same way, position by position:
/// one 1×1 convolution `V_s * s` gives each layer's `2p`-wide terms for both stacks, so that
/// the gates read `tanh(W_f * x + V_f e_y + V_{s,f} * s) ⊙ σ(…)` and the model is
/// `p(x | s) = Π_i p(x_i | x_<i, s)`: every conditional sees all of `s`, which is given, not
/// generated. The head is ReLU → 1×1 → ReLU → 1×1 (mask B) to `C·K` logits, laid
/// out as [`PixelDistribution`] reads them.
///
/// A super-resolution model ([`GatedPixelCnnConfig::super_resolution_factor`] `f`) takes as
/// its map the low-pass `U(D(x))` of its own image, so that its loss and likelihood are
/// those of `p(x | y)`, `y = D(x)`, and it super-resolves
/// ([`SuperResolve`](capabilities::SuperResolve)) by sampling `p(x | U(y))`. It reads `y`
/// through a 3×3 convolution at the low resolution, so that every pixel's conditional sees
/// the blocks around its own, below and to the right too. Its unconditioned sampling reads a
/// zero map: draws given a blank low-resolution image.
#[derive(Module, Debug)]
pub struct GatedPixelCnn {
    layers: Vec<GatedLayer>,
    label_embedding: Option<Embedding>,
    condition: Option<Conv2d>,
    head_hidden: MaskedConv2d,
    head_out: MaskedConv2d,
    #[module(skip)]
    config: GatedPixelCnnConfig,
}

impl GatedPixelCnn {
    /// Initialises every (lazily initialised) parameter now, in the order a first forward pass
    /// reads them, so that the weights a seed gives do not depend on what uses them first.
    fn initialise_parameters(&self) {
        if let Some(embedding) = &self.label_embedding {
            embedding.weight.val();
        }
        if let Some(condition) = &self.condition {
            condition.weight.val();
        }
        for layer in &self.layers {
            let vertical = &layer.vertical.conv;
            vertical.bias.as_ref().map(|b| b.val());
            vertical.weight.val();
            layer.horizontal.masked_weight_and_bias();
            layer.link.bias.as_ref().map(|b| b.val());
            layer.link.weight.val();
            layer.output.masked_weight_and_bias();
        }
        self.head_hidden.masked_weight_and_bias();
        self.head_out.masked_weight_and_bias();
    }

    /// The label embedding of every image, `[N, layers·4p]`: per layer `[vertical 2p,
    /// horizontal 2p]`.
    fn label_terms(&self, labels: Option<Tensor<1, Int>>) -> Option<Tensor<2>> {
        let embedding = self.label_embedding.as_ref()?;
        let labels = labels.expect("a conditional model's input is checked to have labels");
        Some(embedding.weight.val().select(0, labels))
    }

    /// The logits of every sub-pixel's conditional distribution given the sub-pixels before
    /// it (and the label, for a conditional model).
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - labels: `[N]`, in `0..classes`, for a conditional model; ignored otherwise
    /// - output: `[N, C·K, H, W]` with `K` logits per channel, channel `c` at `c·K..(c+1)·K`
    ///
    /// # Panics
    /// When a conditional model gets no labels; [`GenerativeModel`](genmodels_core::GenerativeModel)'s methods check.
    pub fn forward(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.forward_conditioned(images, labels, None)
    }

    /// [`forward`](Self::forward) given a spatial conditioning map `s` (for a model built with
    /// [`condition_channels`](GatedPixelCnnConfig::condition_channels)): the logits of
    /// `p(x_i | x_<i, s)` for every sub-pixel. Without a map (`None`) the model reads a zero
    /// map.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`; labels as for [`forward`](Self::forward)
    /// - condition: `[N, condition_channels, H, W]`
    /// - output: `[N, C·K, H, W]`
    ///
    /// # Panics
    /// When a map is given to a model without conditioning, or a map of the wrong shape;
    /// [`log_likelihood_given`](Self::log_likelihood_given) and
    /// [`sample_given`](Self::sample_given) check.
    pub fn forward_conditioned(
        &self,
        images: Tensor<4>,
        labels: Option<Tensor<1, Int>>,
        condition: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let x = self
            .head_hidden
            .forward(relu(self.horizontal_stack(images, labels, condition)));
        self.head_out.forward(relu(x))
    }

    /// The horizontal stack's output after the last gated layer, `[N, p, H, W]`: what the
    /// head reads.
    fn horizontal_stack(
        &self,
        images: Tensor<4>,
        labels: Option<Tensor<1, Int>>,
        condition: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let colours = self.config.image_shape.channels;
        let p = self.config.hidden;
        let label_terms = self.label_terms(labels);
        // Every layer's spatial terms at once, [N, layers·4p, H, W].
        let spatial_terms = condition.map(|map| self.condition_terms(map));
        let (mut vertical, mut horizontal) = (images.clone(), images);
        for (index, layer) in self.layers.iter().enumerate() {
            let label = label_terms.as_ref().map(|terms| {
                let [n, _] = terms.dims();
                let term = |offset| {
                    terms
                        .clone()
                        .narrow(1, index * 4 * p + offset, 2 * p)
                        .reshape([n, 2 * p, 1, 1])
                };
                (term(0), term(2 * p))
            });
            let spatial = spatial_terms.as_ref().map(|terms| {
                let term = |offset| terms.clone().narrow(1, index * 4 * p + offset, 2 * p);
                (term(0), term(2 * p))
            });
            let terms = match (label, spatial) {
                (Some((lv, lh)), Some((sv, sh))) => Some((sv + lv, sh + lh)),
                (label, None) => label,
                (None, spatial) => spatial,
            };
            let vertical_pre;
            (vertical_pre, horizontal) =
                layer.forward_preactivated(vertical, horizontal, terms, colours);
            vertical = match index + 1 < self.layers.len() {
                true => gated_activation(vertical_pre, colours),
                false => vertical_pre,
            };
        }
        horizontal
    }

    /// Whether the model is class-conditional, and how many classes it has.
    pub fn classes(&self) -> Option<usize> {
        self.config.classes
    }

    /// The channels of the model's spatial conditioning map, `None` for a model without one.
    pub fn condition_channels(&self) -> Option<usize> {
        self.config.condition_channels
    }

    /// Every layer's terms of a spatial conditioning map `s`, `[N, layers·4p, H, W]`: per
    /// layer `[vertical 2p, horizontal 2p]`.
    ///
    /// For a general map, `V_s * s` with a 1×1 `V_s`: each position reads the map where it
    /// is. A super-resolution model (factor `f`) reads its map's block means `D(s)` (for its
    /// map `U(y)`, the low-resolution image `y` itself) through a 3×3 convolution and repeats
    /// the result over each block, `U(V_s * D(s))`: every position sees its own block and the
    /// eight around it, those below and to the right included. The map is given, not drawn,
    /// so this breaks no causality; a 1×1 map term would leave the first row of a block
    /// blind to the blocks below it and to the right.
    ///
    /// # Shapes
    /// - map: `[N, condition_channels, H, W]`
    /// - output: `[N, layers·4p, H, W]`
    ///
    /// # Panics
    /// For a model without conditioning, or a map of the wrong shape; the public methods
    /// check.
    fn condition_terms(&self, map: Tensor<4>) -> Tensor<4> {
        let convolution = self
            .condition
            .as_ref()
            .expect("a conditioning map is checked to fit the model");
        match self.config.super_resolution_factor {
            Some(factor) => {
                let block_means = capabilities::downsample(map, factor)
                    .expect("the factor is checked to divide the image size");
                capabilities::upsample_nearest(convolution.forward(block_means), factor)
                    .expect("the factor is checked to be positive")
            }
            None => convolution.forward(map),
        }
    }

    /// The factor of a super-resolution model's low-resolution input, `None` for a model of
    /// `p(x)` ([`GatedPixelCnnConfig::super_resolution_factor`]).
    pub fn super_resolution_factor(&self) -> Option<usize> {
        self.config.super_resolution_factor
    }

    /// A super-resolution model's map for `images`: their low-pass `U(D(x))` by its factor
    /// (`None` for a model of `p(x)`), what its likelihood and training loss condition on.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, C, H, W]`, constant on every `f×f` block
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for images whose size the factor does not divide.
    pub fn own_low_pass(&self, images: Tensor<4>) -> Result<Option<Tensor<4>>> {
        self.config
            .super_resolution_factor
            .map(|factor| capabilities::low_pass(images, factor))
            .transpose()
    }

    /// Checks a conditioning map for `n` images: the model has one, of its shape, finite.
    fn check_condition(&self, condition: &Tensor<4>, n: usize) -> Result<()> {
        let Some(channels) = self.config.condition_channels else {
            return Err(GenError::InvalidConfig(
                "this Gated PixelCNN has no spatial conditioning (condition_channels is None)"
                    .into(),
            ));
        };
        let shape = self.config.image_shape;
        let expected = [n, channels, shape.height, shape.width];
        if condition.dims() != expected {
            return Err(GenError::shape(
                "Gated PixelCNN conditioning map",
                expected,
                condition.dims(),
            ));
        }
        if genmodels_core::batch::to_host(condition.clone())?
            .iter()
            .any(|v| !v.is_finite())
        {
            return Err(GenError::NonFiniteInput {
                context: "Gated PixelCNN conditioning map".into(),
            });
        }
        Ok(())
    }

    /// The exact `log p(x | s)` of every image given its conditioning map (and its label, for
    /// a class-conditional model), from one forward pass.
    ///
    /// # Shapes
    /// - batch: `[N, C, H, W]`; condition: `[N, condition_channels, H, W]`
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`](genmodels_core::GenerativeModel::log_likelihood);
    /// [`GenError::InvalidConfig`] for a model without conditioning;
    /// [`GenError::ShapeMismatch`] and [`GenError::NonFiniteInput`] for a map that does not
    /// fit.
    pub fn log_likelihood_given(
        &self,
        batch: &ImageBatch,
        condition: Tensor<4>,
    ) -> Result<LogLikelihood> {
        raster::check_input(self, batch)?;
        self.check_condition(&condition, batch.len())?;
        let images = batch.images().clone();
        let logits =
            self.forward_conditioned(images.clone(), batch.labels().cloned(), Some(condition));
        LogLikelihood::from_tensor(
            LikelihoodKind::Exact,
            self.config.distribution.log_prob(logits, images),
            self.config.image_shape.dims(),
            DensityScale::Discrete,
        )
    }

    /// One image per conditioning map, drawn from `p(x | s)` in raster order by the naive
    /// sampler (one full forward pass per sub-pixel), with the default labels for a
    /// class-conditional model: [`sample_given_with`](Self::sample_given_with) with
    /// [`SamplingMethod::Naive`].
    ///
    /// # Errors
    /// As [`sample_given_with`](Self::sample_given_with).
    pub fn sample_given(&self, condition: Tensor<4>, seed: u64) -> Result<Tensor<4>> {
        self.sample_given_with(condition, seed, SamplingMethod::Naive)
    }

    /// One image per conditioning map, drawn from `p(x | s)` in raster order with the sampler
    /// `method` names: the naive one (a full forward pass per sub-pixel) or the cached one (the
    /// map's terms of every layer computed once, then row by row and pixel by pixel as for
    /// unconditioned sampling); both give the same images for the same seed. A
    /// class-conditional model draws for its default labels.
    ///
    /// # Shapes
    /// - condition: `[N, condition_channels, H, W]`
    /// - output: `[N, C, H, W]`
    ///
    /// # Errors
    /// As [`log_likelihood_given`](Self::log_likelihood_given) for the map;
    /// [`GenError::InvalidConfig`] for a diffusion model's sampler; backend errors reading
    /// logits back.
    pub fn sample_given_with(
        &self,
        condition: Tensor<4>,
        seed: u64,
        method: SamplingMethod,
    ) -> Result<Tensor<4>> {
        let n = condition.dims()[0];
        require_samples(n)?;
        self.check_condition(&condition, n)?;
        let device = module_device(self);
        let shape = self.config.image_shape;
        let k = self.config.distribution.logits_per_channel();
        let values = n * shape.dims();
        let (pixels, observed) = (vec![0.0; values], vec![false; values]);
        let labels = self.default_labels(n, &device);
        let fill = |conditionals: &mut dyn Conditionals| {
            raster::fill_in_raster_order(
                shape,
                self.config.distribution,
                conditionals,
                pixels,
                &observed,
                seed,
                &device,
            )
        };
        match method {
            SamplingMethod::Naive => fill(&mut NaiveConditionals::new(
                shape,
                k,
                device.clone(),
                |images| self.forward_conditioned(images, labels.clone(), Some(condition.clone())),
            )),
            SamplingMethod::Cached => fill(&mut CachedConditionals::new(
                GatedPixelCnnCache::new(self, n, labels.clone(), Some(condition), &device),
                shape,
                k,
            )),
            SamplingMethod::Ancestral | SamplingMethod::Ddim { .. } => {
                Err(method.unsupported("the autoregressive models sample", "`naive` or `cached`"))
            }
        }
    }

    /// Draws one image per label of a conditional model with the sampler `method` names, as
    /// [`sample_with`](genmodels_core::SampleWithMethod::sample_with) does for the default
    /// labels.
    ///
    /// # Errors
    /// [`GenError::InvalidLabels`] for no labels, a label out of range or an unconditional
    /// model; backend errors reading logits back.
    pub fn sample_labels_with(
        &self,
        labels: &[usize],
        seed: u64,
        method: SamplingMethod,
    ) -> Result<Tensor<4>> {
        require_samples(labels.len())?;
        if self.config.classes.is_none() {
            return Err(GenError::InvalidLabels(
                "this Gated PixelCNN is unconditional: it samples without labels".into(),
            ));
        }
        let device = module_device(self);
        let values: Vec<i64> = labels.iter().map(|&label| label as i64).collect();
        let labels = Tensor::from_data(TensorData::new(values, [labels.len()]), &device);
        self.check_labels(Some(&labels))?;
        let n = labels.dims()[0];
        raster::sample_with(self, n, Some(labels), seed, method)
    }
}

impl GatedPixelCnn {
    /// Checks that `factor` is the one this model was trained for.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a model of `p(x)` or one trained for another factor.
    fn check_trained_factor(&self, factor: usize) -> Result<()> {
        match self.config.super_resolution_factor {
            Some(trained) if trained == factor => Ok(()),
            Some(trained) => Err(GenError::InvalidConfig(format!(
                "this Gated PixelCNN super-resolves by the factor it was trained for, \
                 {trained}, not {factor}"
            ))),
            None => Err(GenError::InvalidConfig(
                "this Gated PixelCNN is a model of p(x), not trained on low-resolution images \
                 (train `gated-pixelcnn-superres` for super-resolution)"
                    .into(),
            )),
        }
    }
}

impl capabilities::SuperResolve for GatedPixelCnn {
    /// Draws one image from `p(x | U(y))` per low-resolution image `y`, in raster order, with
    /// the map `U(y)` (`y` repeated as `f×f` blocks) as the model's spatial conditioning.
    /// `method` picks the sampler: the cached one (the default the tools use; the map's terms
    /// are computed once, then every layer row by row and pixel by pixel) or the naive one (a
    /// full forward pass per pixel), with the same images for the same seed. Nothing forces
    /// the draws' block means to equal `y`: the model has learned to put its mass there.
    /// `continuous` is `None`: the draws are the model's own binary (or grey-level) pixels.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for a factor other than the one the model was trained for,
    /// a model of `p(x)` or a diffusion sampler; as
    /// [`check_super_resolution`](capabilities::check_super_resolution) for the
    /// low-resolution images.
    fn super_resolve(
        &self,
        low_res: Tensor<4>,
        factor: usize,
        seed: u64,
        method: SamplingMethod,
    ) -> Result<capabilities::SuperResolved> {
        self.check_trained_factor(factor)?;
        capabilities::check_super_resolution(
            &low_res,
            factor,
            self.config.image_shape,
            "super-resolution Gated PixelCNN",
        )?;
        let map = capabilities::upsample_nearest(low_res, factor)?;
        let model = self.clone();
        let images = genmodels_kernels::on_compute_threads(&module_device(self), move || {
            model.sample_given_with(map, seed, method)
        })?;
        Ok(capabilities::SuperResolved {
            images,
            continuous: None,
        })
    }

    /// `log p(x | U(D(x)))`, exact, from one forward pass: the model's own
    /// [`log_likelihood`](genmodels_core::GenerativeModel::log_likelihood) when `factor` is
    /// the one it was trained for.
    ///
    /// # Errors
    /// As [`super_resolve`](capabilities::SuperResolve::super_resolve) for the factor; as
    /// [`log_likelihood_given`](GatedPixelCnn::log_likelihood_given) for the images.
    fn conditional_log_likelihood(
        &self,
        high_res: &ImageBatch,
        factor: usize,
    ) -> Result<Option<LogLikelihood>> {
        self.check_trained_factor(factor)?;
        raster::check_input(self, high_res)?;
        let map = capabilities::low_pass(high_res.images().clone(), factor)?;
        self.log_likelihood_given(high_res, map).map(Some)
    }
}

impl genmodels_core::ConditionalSample for GatedPixelCnn {
    fn classes(&self) -> Option<usize> {
        self.config.classes
    }

    /// With the cached sampler ([`sample_labels_with`](GatedPixelCnn::sample_labels_with)).
    fn sample_with_labels(&self, labels: &[usize], seed: u64) -> Result<Tensor<4>> {
        let model = self.clone();
        genmodels_kernels::on_compute_threads(&module_device(self), move || {
            model.sample_labels_with(labels, seed, SamplingMethod::Cached)
        })
    }
}

impl IncrementalSampling for GatedPixelCnn {
    fn incremental_conditionals(
        &self,
        n: usize,
        labels: Option<Tensor<1, Int>>,
        device: &Device,
    ) -> impl Conditionals + '_ {
        let (shape, distribution) = (self.config.image_shape, self.config.distribution);
        CachedConditionals::new(
            GatedPixelCnnCache::new(self, n, labels, None, device),
            shape,
            distribution.logits_per_channel(),
        )
    }
}

impl RasterModel for GatedPixelCnn {
    const DISPLAY_NAME: &'static str = "Gated PixelCNN";

    fn raster_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    fn distribution(&self) -> PixelDistribution {
        self.config.distribution
    }

    fn is_conditional(&self) -> bool {
        self.config.classes.is_some()
    }

    fn likelihood_condition(&self) -> Option<String> {
        let shape = self.config.image_shape;
        let map = self.config.super_resolution_factor.map(|f| {
            format!(
                "the {}×{} block means (×{f} super-resolution)",
                shape.height / f,
                shape.width / f
            )
        });
        let label = self.is_conditional().then(|| "the class label".to_string());
        match (map, label) {
            (Some(map), Some(label)) => Some(format!("{map} and {label}")),
            (map, label) => map.or(label),
        }
    }

    fn check_labels(&self, labels: Option<&Tensor<1, Int>>) -> Result<()> {
        let (Some(classes), Some(labels)) = (self.config.classes, labels) else {
            return Ok(());
        };
        let values = labels
            .clone()
            .try_into_vec_as::<i64>()
            .map_err(|e| GenError::Backend(format!("reading labels back: {e:?}")))?;
        match values
            .into_iter()
            .find(|&label| label < 0 || label as usize >= classes)
        {
            Some(label) => Err(GenError::InvalidLabels(format!(
                "label {label} is out of range: this Gated PixelCNN has {classes} classes"
            ))),
            None => Ok(()),
        }
    }

    /// `0, 1, …, classes − 1, 0, …` in turn, so a grid of samples shows every class.
    fn default_labels(&self, n: usize, device: &Device) -> Option<Tensor<1, Int>> {
        self.config
            .classes
            .map(|classes| raster::cycling_labels(n, classes, device))
    }

    fn logits(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.forward(images, labels)
    }

    /// For a super-resolution model, the logits given the images' own low-pass
    /// ([`own_low_pass`](GatedPixelCnn::own_low_pass)): its loss is `−log p(x | U(D(x)))`.
    fn likelihood_logits(
        &self,
        images: Tensor<4>,
        labels: Option<Tensor<1, Int>>,
    ) -> Result<Tensor<4>> {
        let condition = self.own_low_pass(images.clone())?;
        Ok(self.forward_conditioned(images, labels, condition))
    }

    /// `ReLU(head_hidden(ReLU(horizontal stack)))`, `[N, p, H, W]`.
    fn hidden_map(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        relu(
            self.head_hidden
                .forward(relu(self.horizontal_stack(images, labels, None))),
        )
    }

    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4> {
        self.head_out.forward(hidden)
    }
}

/// `[rows, G·2·m]` with the two gates inside each colour block → `[rows, 2·G·m]`, gate-major:
/// gate 0 of every colour, then gate 1, each in the colour order [`gated_activation`] gives.
fn gate_major(preactivations: Tensor<2>, colours: usize) -> Tensor<2> {
    let [rows, width] = preactivations.dims();
    preactivations
        .reshape([rows, colours, 2, width / (2 * colours)])
        .swap_dims(1, 2)
        .reshape([rows, width])
}

/// One gated layer in incremental form.
struct CachedGatedLayer {
    /// The horizontal convolution without its bias (folded into `row_terms`), gate-major.
    horizontal: Affine,
    output: Affine,
    /// The last `k/2` input rows of the vertical convolution, `[N, in, 1, W]` each.
    vertical_inputs: VecDeque<Tensor<4>>,
    /// The horizontal stack's input at the positions of the current row computed so far.
    horizontal_inputs: RowWindows,
    /// Per position of the current row, `[N, W, 2p]` gate-major: everything the horizontal
    /// pre-activation gets besides its convolution (the link from the vertical stack one row
    /// up, the horizontal bias, the label term and the map's term).
    row_terms: Tensor<3>,
    /// The vertical and horizontal label terms, `[N, 2p, 1, 1]` (zeros when unconditional).
    label_terms: (Tensor<4>, Tensor<4>),
    /// The vertical and horizontal terms of a spatial conditioning map, `[N, 2p, H, W]`
    /// each, computed once for the whole image (the map is given, not drawn).
    spatial_terms: Option<(Tensor<4>, Tensor<4>)>,
    /// The horizontal convolution's bias, `[1, 2p, 1, 1]`.
    horizontal_bias: Tensor<4>,
    residual: bool,
}

/// The incremental form of a [`GatedPixelCnn`] for `N` images.
///
/// At the start of row `y` the vertical stack's row `y − 1` is computed for every layer in
/// one convolution per layer (from its cached input rows), and with it everything row `y` of
/// the horizontal stack gets from above. Per pixel, each layer's horizontal pre-activation is
/// one matrix product of the cached row window of its input, plus that row term.
pub(crate) struct GatedPixelCnnCache<'a> {
    model: &'a GatedPixelCnn,
    shape: ImageShape,
    n: usize,
    layers: Vec<CachedGatedLayer>,
    head_hidden: Affine,
    head_out: Affine,
    first_kernel: usize,
    device: Device,
}

impl<'a> GatedPixelCnnCache<'a> {
    /// An empty cache of `model` for `n` images with `labels` (for a class-conditional model)
    /// and a spatial conditioning map `condition` (`[N, condition_channels, H, W]`, checked by
    /// the caller; `None` reads as a zero map, as in
    /// [`forward_conditioned`](GatedPixelCnn::forward_conditioned)).
    pub(crate) fn new(
        model: &'a GatedPixelCnn,
        n: usize,
        labels: Option<Tensor<1, Int>>,
        condition: Option<Tensor<4>>,
        device: &Device,
    ) -> Self {
        let config = &model.config;
        let (shape, p) = (config.image_shape, config.hidden);
        let colours = shape.channels;
        let label_terms = model.label_terms(labels);
        // Every layer's map terms at once, [N, layers·4p, H, W], as the full pass has them.
        let spatial_terms = condition.map(|map| model.condition_terms(map));
        let layers = model
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let reach = layer.horizontal.reach;
                let (weight, bias) = layer.horizontal.masked_weight_and_bias();
                let c_in = weight.dims()[1];
                let horizontal = Affine::new(weight, None, 0, reach)
                    .map_columns(|columns| gate_major(columns, colours));
                let horizontal_bias = bias
                    .map(|b| b.reshape([1, 2 * p, 1, 1]))
                    .unwrap_or_else(|| Tensor::zeros([1, 2 * p, 1, 1], device));
                let term = |offset| match &label_terms {
                    Some(terms) => terms
                        .clone()
                        .narrow(1, index * 4 * p + offset, 2 * p)
                        .reshape([n, 2 * p, 1, 1]),
                    None => Tensor::zeros([n, 2 * p, 1, 1], device),
                };
                CachedGatedLayer {
                    horizontal,
                    output: Affine::from_masked(&layer.output),
                    vertical_inputs: (0..layer.vertical.reach)
                        .map(|_| Tensor::zeros([n, c_in, 1, shape.width], device))
                        .collect(),
                    horizontal_inputs: RowWindows::new(
                        n,
                        shape.width,
                        c_in,
                        0,
                        reach + 1,
                        reach,
                        device,
                    ),
                    row_terms: Tensor::zeros([n, shape.width, 2 * p], device),
                    label_terms: (term(0), term(2 * p)),
                    spatial_terms: spatial_terms.as_ref().map(|terms| {
                        let term = |offset| terms.clone().narrow(1, index * 4 * p + offset, 2 * p);
                        (term(0), term(2 * p))
                    }),
                    horizontal_bias,
                    residual: layer.residual,
                }
            })
            .collect();
        Self {
            model,
            shape,
            n,
            layers,
            head_hidden: Affine::from_masked(&model.head_hidden),
            head_out: Affine::from_masked(&model.head_out),
            first_kernel: config.input_kernel,
            device: device.clone(),
        }
    }

    /// Row `y` of the image, `[N, C, 1, W]`.
    fn image_row(&self, pixels: &[f32], y: usize) -> Tensor<4> {
        let (c, h, w) = (self.shape.channels, self.shape.height, self.shape.width);
        let row: Vec<f32> = pixels
            .chunks(w)
            .enumerate()
            .filter(|(index, _)| index % h == y)
            .flat_map(|(_, values)| values.iter().copied())
            .collect();
        Tensor::from_data(TensorData::new(row, [self.n, c, 1, w]), &self.device)
    }
}

impl IncrementalNet for GatedPixelCnnCache<'_> {
    fn begin_row(&mut self, pixels: &[f32], y: usize) {
        let (n, w) = (self.n, self.shape.width);
        let colours = self.shape.channels;
        let p = self.model.config.hidden;
        // The vertical stack's row y − 1 (zero above the image), layer by layer.
        let mut vertical_input = (y > 0).then(|| self.image_row(pixels, y - 1));
        for (layer, cached) in self.model.layers.iter().zip(&mut self.layers) {
            let vertical_pre = vertical_input.map(|input| {
                cached.vertical_inputs.push_back(input);
                let rows = Tensor::cat(cached.vertical_inputs.iter().cloned().collect(), 2);
                cached.vertical_inputs.pop_front();
                let pre = layer.vertical.forward_row(rows) + cached.label_terms.0.clone();
                match &cached.spatial_terms {
                    Some((on_vertical, _)) => pre + on_vertical.clone().narrow(2, y - 1, 1),
                    None => pre,
                }
            });
            let above = vertical_pre
                .clone()
                .unwrap_or_else(|| Tensor::zeros([n, 2 * p, 1, w], &self.device));
            // The link of the shifted vertical stack, the horizontal bias, the label term and
            // the map's row y.
            let link = conv2d(
                above,
                layer.link.weight.val(),
                layer.link.bias.as_ref().map(|b| b.val()),
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            ) + cached.horizontal_bias.clone()
                + cached.label_terms.1.clone();
            let link = match &cached.spatial_terms {
                Some((_, on_horizontal)) => link + on_horizontal.clone().narrow(2, y, 1),
                None => link,
            };
            // [N, 2p, 1, W] → [N, W, 2p] → gate-major per position.
            let per_position = link.reshape([n, 2 * p, w]).swap_dims(1, 2);
            cached.row_terms =
                gate_major(per_position.reshape([n * w, 2 * p]), colours).reshape([n, w, 2 * p]);
            cached.horizontal_inputs.finish_row();
            vertical_input = vertical_pre.map(|pre| gated_activation(pre, colours));
        }
    }

    fn column(&mut self, pixels: &[f32], y: usize, x: usize, logits: bool) -> Option<Tensor<2>> {
        let (n, p) = (self.n, self.model.config.hidden);
        let reach = self.first_kernel / 2;
        let mut horizontal: Option<Tensor<2>> = None;
        for cached in &mut self.layers {
            let window = match horizontal.clone() {
                None => image_window(
                    pixels,
                    self.shape,
                    (y, x),
                    (0, reach + 1, reach),
                    &self.device,
                ),
                Some(input) => {
                    cached.horizontal_inputs.set(x, input.clone());
                    cached.horizontal_inputs.window(x, input)
                }
            };
            let row_term = cached
                .row_terms
                .clone()
                .slice([0..n, x..x + 1, 0..2 * p])
                .reshape([n, 2 * p]);
            let pre = cached.horizontal.forward(window) + row_term;
            let gated = tanh(pre.clone().narrow(1, 0, p)) * sigmoid(pre.narrow(1, p, p));
            let out = cached.output.forward(gated);
            horizontal = Some(match horizontal {
                Some(input) if cached.residual => input + out,
                _ => out,
            });
        }
        let horizontal = horizontal.expect("a Gated PixelCNN has at least one layer");
        logits.then(|| {
            self.head_out
                .forward(relu(self.head_hidden.forward(relu(horizontal))))
        })
    }
}

raster::raster_generative_model!(GatedPixelCnn, GatedPixelCnnConfig);

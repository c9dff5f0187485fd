//! PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use genmodels_core::{ImageShape, ModelConfig, Result};
use genmodels_kernels::relu;

use crate::cached::{CachedConditionals, PixelCnnCache};
use crate::masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig, MaskedConvImpl};
use crate::pixel::PixelDistribution;
use crate::raster::{self, Conditionals, IncrementalSampling, RasterModel};

/// Configuration of a [`PixelCnn`]. The default is the `small` preset.
#[derive(Config, Debug)]
pub struct PixelCnnConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The output head.
    #[config(default = "PixelDistribution::Bernoulli")]
    pub distribution: PixelDistribution,
    /// `h`: the residual stream has `2h` channels, the blocks' inner convolutions `h`.
    #[config(default = 32)]
    pub hidden: usize,
    /// Residual blocks of mask-B 3×3 convolutions.
    #[config(default = 5)]
    pub residual_blocks: usize,
    /// Side of the mask-A input convolution.
    #[config(default = 7)]
    pub input_kernel: usize,
    /// How the masked convolutions are computed (the same function either way).
    #[config(default = "MaskedConvImpl::Gemm")]
    pub conv_impl: MaskedConvImpl,
}

impl Default for PixelCnnConfig {
    /// The `small` preset.
    fn default() -> Self {
        Self::new()
    }
}

impl PixelCnnConfig {
    /// The `small` preset: a 7×7 mask-A convolution to `2h = 64` channels, 5 residual blocks
    /// (ReLU → 1×1 2h→h → ReLU → 3×3 mask-B h→h → ReLU → 1×1 h→2h, added to the input), and
    /// the head ReLU → 1×1 2h→2h → ReLU → 1×1 2h→out.
    pub fn small() -> Self {
        Self::new()
    }

    /// The `paper` preset: the PixelCNN of the PixelRNN paper (van den Oord et al. 2016,
    /// Table 1 and Fig. 5: a 7×7 mask-A convolution, residual blocks of 3×3 mask-B
    /// convolutions between 1×1 convolutions, two ReLU → 1×1 output layers) at the size the
    /// paper gives for its MNIST models (Table 4: 7 layers, `h = 16`): `2h = 32` channels and
    /// 7 residual blocks. The paper names the size for its Diagonal BiLSTM; it does not list a
    /// separate MNIST size for PixelCNN, so applying it to PixelCNN is this crate's reading.
    pub fn paper() -> Self {
        Self::new().with_hidden(16).with_residual_blocks(7)
    }

    /// The `deep` preset: `small` with 15 residual blocks instead of 5, so that a pixel sees
    /// 18 rows above it (3 + 15·1) instead of 8, most of a 28-pixel digit: the reach that
    /// `small`'s samples lack (they draw strokes, not digits). About 2.7× the compute of
    /// `small` per image.
    pub fn deep() -> Self {
        Self::new().with_residual_blocks(15)
    }
}

impl ModelConfig for PixelCnnConfig {
    type Model = PixelCnn;
    const MODEL_NAME: &'static str = "pixelcnn";

    fn init(&self, device: &Device) -> Result<PixelCnn> {
        raster::validate_config(
            "PixelCNN",
            self.image_shape,
            self.distribution,
            self.hidden,
            1,
            &[("input kernel", self.input_kernel)],
        )?;
        raster::validate_input_kernel(self.input_kernel)?;
        let colours = self.image_shape.channels;
        let h = self.hidden;
        let conv = |c_in, c_out, k, mask| {
            MaskedConv2dConfig::new([c_in, c_out], k, mask)
                .with_colour_groups(colours)
                .with_implementation(self.conv_impl)
                .init(device)
        };
        let out = colours * self.distribution.logits_per_channel();
        let model = PixelCnn {
            input: conv(colours, 2 * h, self.input_kernel, MaskType::A),
            blocks: (0..self.residual_blocks)
                .map(|_| ResidualBlock {
                    reduce: conv(2 * h, h, 1, MaskType::B),
                    conv: conv(h, h, 3, MaskType::B),
                    expand: conv(h, 2 * h, 1, MaskType::B),
                })
                .collect(),
            head_hidden: conv(2 * h, 2 * h, 1, MaskType::B),
            head_out: conv(2 * h, out, 1, MaskType::B),
            config: self.clone(),
        };
        model.initialise_parameters();
        Ok(model)
    }
}

/// `x + 1×1(ReLU(3×3 mask-B(ReLU(1×1(ReLU(x))))))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub(crate) reduce: MaskedConv2d,
    pub(crate) conv: MaskedConv2d,
    pub(crate) expand: MaskedConv2d,
}

impl ResidualBlock {
    /// # Shapes
    /// - x, output: `[N, 2h, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.reduce.forward(relu(x.clone()));
        let y = self.conv.forward(relu(y));
        x + self.expand.forward(relu(y))
    }

    /// [`forward`](Self::forward) on channels-last feature maps.
    ///
    /// # Shapes
    /// - x, output: `[N, H, W, 2h]`
    pub fn forward_channels_last(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.reduce.forward_channels_last(relu(x.clone()));
        let y = self.conv.forward_channels_last(relu(y));
        x + self.expand.forward_channels_last(relu(y))
    }
}

/// A PixelCNN: `p(x) = Π_i p(x_i | x_<i)` over sub-pixels in raster order (and R → G → B
/// within a pixel), each conditional computed by masked convolutions in one pass.
#[derive(Module, Debug)]
pub struct PixelCnn {
    pub(crate) input: MaskedConv2d,
    pub(crate) blocks: Vec<ResidualBlock>,
    pub(crate) head_hidden: MaskedConv2d,
    pub(crate) head_out: MaskedConv2d,
    #[module(skip)]
    pub(crate) config: PixelCnnConfig,
}

impl PixelCnn {
    /// Initialises every (lazily initialised) parameter now, in the order a first forward pass
    /// reads them, so that the weights a seed gives do not depend on whether the model is first
    /// used by [`forward`](Self::forward) or by the cached sampler.
    fn initialise_parameters(&self) {
        let convs = std::iter::once(&self.input)
            .chain(
                self.blocks
                    .iter()
                    .flat_map(|block| [&block.reduce, &block.conv, &block.expand]),
            )
            .chain([&self.head_hidden, &self.head_out]);
        for conv in convs {
            conv.masked_weight_and_bias();
        }
    }

    /// The logits of every sub-pixel's conditional distribution given the sub-pixels before
    /// it.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, C·K, H, W]` with `K` logits per channel, channel `c` at `c·K..(c+1)·K`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        if self.config.conv_impl == MaskedConvImpl::Gemm {
            // Channels-last throughout: every layer is one matrix product, with no layout
            // change between layers; the layout changes once at each end.
            let x = self
                .input
                .forward_channels_last(images.permute([0, 2, 3, 1]));
            let x = self
                .blocks
                .iter()
                .fold(x, |x, block| block.forward_channels_last(x));
            let x = self.head_hidden.forward_channels_last(relu(x));
            return self
                .head_out
                .forward_channels_last(relu(x))
                .permute([0, 3, 1, 2]);
        }
        let x = self.input.forward(images);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        let x = self.head_hidden.forward(relu(x));
        self.head_out.forward(relu(x))
    }
}

impl IncrementalSampling for PixelCnn {
    fn incremental_conditionals(
        &self,
        n: usize,
        _labels: Option<Tensor<1, Int>>,
        device: &Device,
    ) -> impl Conditionals + '_ {
        let (shape, distribution) = (self.config.image_shape, self.config.distribution);
        CachedConditionals::new(
            PixelCnnCache::new(self, n, device),
            shape,
            distribution.logits_per_channel(),
        )
    }
}

impl RasterModel for PixelCnn {
    const DISPLAY_NAME: &'static str = "PixelCNN";

    fn raster_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    fn distribution(&self) -> PixelDistribution {
        self.config.distribution
    }

    fn logits(&self, images: Tensor<4>, _labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.forward(images)
    }

    /// `ReLU(head_hidden(ReLU(residual blocks(input(x)))))`, `[N, 2h, H, W]`.
    fn hidden_map(&self, images: Tensor<4>, _labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let x = self.input.forward(images);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        relu(self.head_hidden.forward(relu(x)))
    }

    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4> {
        self.head_out.forward(hidden)
    }
}

raster::raster_generative_model!(PixelCnn, PixelCnnConfig);

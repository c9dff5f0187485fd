//! The noise-prediction network: a small U-Net (Ronneberger et al. 2015) with a sinusoidal
//! time embedding, as Ho et al. (2020) use it, scaled down.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use genmodels_core::{GenError, ImageShape, Result};
use genmodels_kernels::{KernelForward, group_norm_silu, sigmoid, upsample_nearest};

/// Configuration of a [`UNet`].
///
/// The network has one resolution level per entry of `channel_multipliers`; each level but
/// the last halves the image (a stride-2 convolution), so `L` levels need images whose height
/// and width divide by `2^{L−1}` (28 → 14 → 7 for MNIST and three levels).
#[derive(Config, Debug)]
pub struct UNetConfig {
    /// Channels of the first level (and of the time embedding's sinusoids; the embedding
    /// itself has four times as many).
    #[config(default = 32)]
    pub base_channels: usize,
    /// Channels of each level as multiples of `base_channels`, from full resolution down.
    #[config(default = "vec![1, 2, 2]")]
    pub channel_multipliers: Vec<usize>,
    /// Residual blocks per level on the way down (the way up has one more, as in Ho et al.).
    #[config(default = 1)]
    pub blocks_per_level: usize,
    /// Single-head self-attention after each residual block of the lowest resolution (7×7
    /// for MNIST) and in the middle.
    #[config(default = true)]
    pub attention: bool,
    /// Groups of every group normalisation; it must divide every level's channel count.
    #[config(default = 8)]
    pub groups: usize,
    /// Dropout probability inside the residual blocks (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl UNetConfig {
    /// Checks the configuration against the images it will see.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for zero channels, levels or blocks, a multiplier of 0,
    /// groups that do not divide a level's channels, a dropout outside `[0, 1)`, or images the
    /// network cannot halve `L − 1` times.
    pub fn validate(&self, image_shape: ImageShape) -> Result<()> {
        let invalid = |message: String| Err(GenError::InvalidConfig(message));
        if self.base_channels == 0 || image_shape.channels == 0 {
            return invalid("the U-Net needs at least one channel".into());
        }
        if self.channel_multipliers.is_empty() || self.channel_multipliers.contains(&0) {
            return invalid(format!(
                "channel_multipliers must be non-empty and positive, got {:?}",
                self.channel_multipliers
            ));
        }
        if self.blocks_per_level == 0 {
            return invalid("blocks_per_level must be at least 1".into());
        }
        if self.groups == 0 {
            return invalid("groups must be at least 1".into());
        }
        for channels in self.level_channels() {
            if !channels.is_multiple_of(self.groups) {
                return invalid(format!(
                    "{} groups do not divide a level's {channels} channels",
                    self.groups
                ));
            }
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return invalid(format!("dropout must lie in [0, 1), got {}", self.dropout));
        }
        let factor = 1usize << (self.channel_multipliers.len() - 1);
        if !image_shape.height.is_multiple_of(factor) || !image_shape.width.is_multiple_of(factor) {
            return invalid(format!(
                "a U-Net of {} levels halves the image {} times: {}×{} images do not divide \
                 by {factor}",
                self.channel_multipliers.len(),
                self.channel_multipliers.len() - 1,
                image_shape.height,
                image_shape.width
            ));
        }
        Ok(())
    }

    /// The channels of each level: `base_channels` times its multiplier.
    fn level_channels(&self) -> Vec<usize> {
        std::iter::once(self.base_channels)
            .chain(
                self.channel_multipliers
                    .iter()
                    .map(|m| m * self.base_channels),
            )
            .collect()
    }

    /// Builds the network for images of `image_shape` (its channels in and out).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init(&self, image_shape: ImageShape, device: &Device) -> Result<UNet> {
        self.validate(image_shape)?;
        let base = self.base_channels;
        let sinusoid_dim = 2 * base.div_ceil(2);
        let time_dim = 4 * base;
        let levels = self.channel_multipliers.len();
        let block = |c_in: usize, c_out: usize, device: &Device| {
            ResidualBlock::new(c_in, c_out, time_dim, self.groups, self.dropout, device)
        };
        let attention = |c: usize, device: &Device| SelfAttention::new(c, self.groups, device);

        let conv_in = conv3x3(image_shape.channels, base, 1, device);
        let mut skip_channels = vec![base];
        let mut channels = base;
        let mut down = Vec::with_capacity(levels);
        for (level, multiplier) in self.channel_multipliers.iter().enumerate() {
            let lowest = level + 1 == levels;
            let c_out = base * multiplier;
            let mut blocks = Vec::new();
            let mut attentions = Vec::new();
            for _ in 0..self.blocks_per_level {
                blocks.push(block(channels, c_out, device));
                channels = c_out;
                if lowest && self.attention {
                    attentions.push(attention(channels, device));
                }
                skip_channels.push(channels);
            }
            let downsample = (!lowest).then(|| {
                skip_channels.push(channels);
                conv3x3(channels, channels, 2, device)
            });
            down.push(DownLevel {
                blocks,
                attentions,
                downsample,
            });
        }
        let middle = Middle {
            first: block(channels, channels, device),
            attention: self.attention.then(|| attention(channels, device)),
            second: block(channels, channels, device),
        };
        let mut up = Vec::with_capacity(levels);
        for (level, multiplier) in self.channel_multipliers.iter().enumerate().rev() {
            let lowest = level + 1 == levels;
            let c_out = base * multiplier;
            let mut blocks = Vec::new();
            let mut attentions = Vec::new();
            for _ in 0..=self.blocks_per_level {
                let skip = skip_channels
                    .pop()
                    .expect("one skip per block on the way up");
                blocks.push(block(channels + skip, c_out, device));
                channels = c_out;
                if lowest && self.attention {
                    attentions.push(attention(channels, device));
                }
            }
            let upsample = (level > 0).then(|| conv3x3(channels, channels, 1, device));
            up.push(UpLevel {
                blocks,
                attentions,
                upsample,
            });
        }
        debug_assert!(skip_channels.is_empty());
        Ok(UNet {
            time_in: LinearConfig::new(sinusoid_dim, time_dim).init(device),
            time_out: LinearConfig::new(time_dim, time_dim).init(device),
            conv_in,
            down,
            middle,
            up,
            norm_out: GroupNormConfig::new(self.groups, channels).init(device),
            // Zero, as in Ho et al.: the untrained network predicts ε̂ = 0.
            conv_out: Conv2dConfig::new([channels, image_shape.channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(Initializer::Zeros)
                .init(device),
            sinusoid_dim,
        })
    }
}

fn conv3x3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// A residual block with the time embedding added between its two convolutions:
/// `h = conv(SiLU(GN(x))) + W·SiLU(e_t)`, `out = skip(x) + conv(dropout(SiLU(GN(h))))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    norm_in: GroupNorm,
    conv_in: Conv2d,
    time: Linear,
    norm_out: GroupNorm,
    dropout: Dropout,
    conv_out: Conv2d,
    /// A 1×1 convolution where the channel count changes.
    skip: Option<Conv2d>,
}

impl ResidualBlock {
    fn new(
        c_in: usize,
        c_out: usize,
        time_dim: usize,
        groups: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        Self {
            norm_in: GroupNormConfig::new(groups, c_in).init(device),
            conv_in: conv3x3(c_in, c_out, 1, device),
            time: LinearConfig::new(time_dim, c_out).init(device),
            norm_out: GroupNormConfig::new(groups, c_out).init(device),
            dropout: DropoutConfig::new(dropout).init(),
            conv_out: conv3x3(c_out, c_out, 1, device),
            skip: (c_in != c_out).then(|| Conv2dConfig::new([c_in, c_out], [1, 1]).init(device)),
        }
    }

    /// # Shapes
    /// - x: `[N, C_in, H, W]`
    /// - time: `[N, E]`, the activated time embedding
    /// - output: `[N, C_out, H, W]`
    fn forward(&self, x: Tensor<4>, time: Tensor<2>) -> Tensor<4> {
        let h = self
            .conv_in
            .kernel_forward(group_norm_silu(&self.norm_in, x.clone()));
        let [n, c, _, _] = h.dims();
        let h = h + self.time.kernel_forward(time).reshape([n, c, 1, 1]);
        let h = self
            .conv_out
            .kernel_forward(self.dropout.forward(group_norm_silu(&self.norm_out, h)));
        let skip = match &self.skip {
            Some(conv) => conv.kernel_forward(x),
            None => x,
        };
        skip + h
    }
}

/// Single-head self-attention over the `H·W` positions, with a residual connection:
/// `out = x + P·(V softmax(QᵀK/√C)ᵀ)` on the group-normalised input.
#[derive(Module, Debug)]
pub struct SelfAttention {
    norm: GroupNorm,
    /// Queries, keys and values in one 1×1 convolution.
    qkv: Conv2d,
    projection: Conv2d,
}

impl SelfAttention {
    fn new(channels: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm: GroupNormConfig::new(groups, channels).init(device),
            qkv: Conv2dConfig::new([channels, 3 * channels], [1, 1]).init(device),
            projection: Conv2dConfig::new([channels, channels], [1, 1]).init(device),
        }
    }

    /// # Shapes
    /// - x, output: `[N, C, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let qkv = self
            .qkv
            .kernel_forward(self.norm.kernel_forward(x.clone()))
            .reshape([n, 3 * c, h * w]);
        let query = qkv.clone().narrow(1, 0, c);
        let key = qkv.clone().narrow(1, c, c);
        let value = qkv.narrow(1, 2 * c, c);
        // weights[n, i, j]: how much position i attends to position j.
        let weights = softmax(query.swap_dims(1, 2).matmul(key) / (c as f64).sqrt(), 2);
        let attended = value.matmul(weights.swap_dims(1, 2)).reshape([n, c, h, w]);
        x + self.projection.kernel_forward(attended)
    }
}

/// One resolution level on the way down.
#[derive(Module, Debug)]
pub struct DownLevel {
    blocks: Vec<ResidualBlock>,
    /// One per block at the lowest level with attention on; none elsewhere.
    attentions: Vec<SelfAttention>,
    /// A stride-2 3×3 convolution, except at the lowest level.
    downsample: Option<Conv2d>,
}

/// The bottleneck: two residual blocks around an optional attention layer.
#[derive(Module, Debug)]
pub struct Middle {
    first: ResidualBlock,
    attention: Option<SelfAttention>,
    second: ResidualBlock,
}

/// One resolution level on the way up.
#[derive(Module, Debug)]
pub struct UpLevel {
    blocks: Vec<ResidualBlock>,
    attentions: Vec<SelfAttention>,
    /// Nearest-neighbour doubling and a 3×3 convolution, except at full resolution.
    upsample: Option<Conv2d>,
}

/// The noise predictor `ε_θ(x_t, t)`: a U-Net whose residual blocks all see an embedding of
/// `t`. Build it with [`UNetConfig::init`].
///
/// The time embedding is Vaswani et al.'s sinusoids of `t` (`sin(t·ω_i), cos(t·ω_i)`,
/// `ω_i = 10000^{−i/(d/2)}`), then `Linear → SiLU → Linear`; each block adds a linear map of
/// its SiLU to its feature maps. The way down keeps every block's output (and the input and
/// each downsampled map) as a skip connection; the way up concatenates them back in reverse
/// order. The output convolution starts at zero.
#[derive(Module, Debug)]
pub struct UNet {
    time_in: Linear,
    time_out: Linear,
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    middle: Middle,
    up: Vec<UpLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    #[module(skip)]
    sinusoid_dim: usize,
}

impl UNet {
    /// The predicted noise `ε_θ(x_t, t)`.
    ///
    /// # Shapes
    /// - noisy: `[N, C, H, W]`, with `H` and `W` divisible by `2^{L−1}` (see [`UNetConfig`])
    /// - timesteps: `[N]`, the step `t` of each image as a float
    /// - output: `[N, C, H, W]`
    pub fn forward(&self, noisy: Tensor<4>, timesteps: Tensor<1>) -> Tensor<4> {
        let time = silu(
            self.time_out.forward(silu(
                self.time_in
                    .forward(sinusoidal_embedding(timesteps, self.sinusoid_dim)),
            )),
        );
        let mut h = self.conv_in.kernel_forward(noisy);
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for (i, block) in level.blocks.iter().enumerate() {
                h = block.forward(h, time.clone());
                if let Some(attention) = level.attentions.get(i) {
                    h = attention.forward(h);
                }
                skips.push(h.clone());
            }
            if let Some(downsample) = &level.downsample {
                h = downsample.kernel_forward(h);
                skips.push(h.clone());
            }
        }
        h = self.middle.first.forward(h, time.clone());
        if let Some(attention) = &self.middle.attention {
            h = attention.forward(h);
        }
        h = self.middle.second.forward(h, time.clone());
        for level in &self.up {
            for (i, block) in level.blocks.iter().enumerate() {
                let skip = skips.pop().expect("one skip per block on the way up");
                h = block.forward(Tensor::cat(vec![h, skip], 1), time.clone());
                if let Some(attention) = level.attentions.get(i) {
                    h = attention.forward(h);
                }
            }
            if let Some(upsample) = &level.upsample {
                h = upsample.kernel_forward(upsample_nearest(h, 2));
            }
        }
        self.conv_out
            .kernel_forward(group_norm_silu(&self.norm_out, h))
    }
}

/// SiLU, `x·σ(x)`, with the kernels' vectorised sigmoid on flex (burn's `silu` calls libm's
/// `exp` per value, about 6% of a training step in a profile).
fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x)
}

/// Sinusoids of the timesteps: `[sin(t ω_0), …, sin(t ω_{k−1}), cos(t ω_0), …]` with
/// `ω_i = 10000^{−i/k}`, `k = dim/2`.
///
/// # Shapes
/// - timesteps: `[N]`
/// - output: `[N, dim]` (`dim` even)
pub fn sinusoidal_embedding(timesteps: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let device = timesteps.device();
    let frequencies: Vec<f32> = (0..half)
        .map(|i| (-(10_000f64.ln()) * i as f64 / half as f64).exp() as f32)
        .collect();
    let frequencies = Tensor::<1>::from_floats(frequencies.as_slice(), &device).reshape([1, half]);
    let n = timesteps.dims()[0];
    let angles = timesteps.reshape([n, 1]) * frequencies;
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}

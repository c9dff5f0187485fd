//! Network building blocks shared by the latent-variable families (AE, VAE, …): MLP and
//! convolutional encoders and decoders between images and flat vectors.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use genmodels_kernels::{KernelForward, relu};

use crate::batch::ImageShape;
use crate::error::{GenError, Result};

pub use genmodels_kernels::{leaky_relu, tanh};

/// A pointwise non-linearity.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`, as in Burda et al. (2015).
    Tanh,
}

impl Activation {
    /// Applies the non-linearity.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => relu(x),
            Self::Tanh => tanh(x),
        }
    }
}

/// Configuration of a multi-layer perceptron, created with [`MlpConfig::init`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub d_input: usize,
    /// Widths of the hidden layers, in order.
    pub hidden: Vec<usize>,
    /// Output features.
    pub d_output: usize,
    /// Non-linearity after each hidden layer (none after the output layer).
    #[config(default = "Activation::Tanh")]
    pub activation: Activation,
}

/// A multi-layer perceptron: `Linear → act → … → Linear`, with no activation at the end.
#[derive(Module, Debug)]
pub struct Mlp {
    /// The affine layers, input first.
    pub layers: Vec<Linear>,
    /// The hidden non-linearity.
    #[module(skip)]
    pub activation: Activation,
}

impl MlpConfig {
    /// Builds the MLP.
    pub fn init(&self, device: &Device) -> Mlp {
        let widths: Vec<usize> = std::iter::once(self.d_input)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.d_output))
            .collect();
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Mlp {
            layers,
            activation: self.activation,
        }
    }
}

impl Mlp {
    /// Applies the layers.
    ///
    /// # Shapes
    /// - input: `[N, d_input]`
    /// - output: `[N, d_output]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(input, |x, (i, layer)| {
            let y = layer.kernel_forward(x);
            if i < last {
                self.activation.forward(y)
            } else {
                y
            }
        })
    }
}

/// Which network maps images to vectors and back.
#[derive(Config, Debug, PartialEq)]
pub enum Architecture {
    /// Fully connected layers on the flattened image.
    Mlp {
        /// Hidden widths of the encoder; the decoder mirrors them.
        hidden: Vec<usize>,
        /// Hidden non-linearity.
        activation: Activation,
    },
    /// Two stride-2 4×4 convolutions (H and W must be divisible by 4), then a linear layer;
    /// the decoder mirrors them with transposed convolutions. ReLU throughout.
    Conv {
        /// Channels of the first and second convolution.
        channels: [usize; 2],
    },
}

impl Architecture {
    /// Burda et al. (2015)'s one-stochastic-layer network: two tanh layers of 200 units.
    pub fn burda() -> Self {
        Self::Mlp {
            hidden: vec![200, 200],
            activation: Activation::Tanh,
        }
    }

    /// A small convolutional network with 32 and 64 channels.
    pub fn conv() -> Self {
        Self::Conv { channels: [32, 64] }
    }

    fn check(&self, image: ImageShape) -> Result<()> {
        if image.dims() == 0 {
            return Err(GenError::InvalidConfig(format!(
                "image shape {image} has no pixels"
            )));
        }
        match self {
            Self::Mlp { hidden, .. } if hidden.contains(&0) => Err(GenError::InvalidConfig(
                "MLP hidden widths must be positive".into(),
            )),
            Self::Conv { channels } if channels.contains(&0) => Err(GenError::InvalidConfig(
                "conv channel counts must be positive".into(),
            )),
            Self::Conv { .. }
                if !image.height.is_multiple_of(4) || !image.width.is_multiple_of(4) =>
            {
                Err(GenError::InvalidConfig(format!(
                    "the conv architecture needs H and W divisible by 4, got {image}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// An encoder from images of `image` shape to `d_output` features.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when the architecture cannot take this image shape.
    pub fn encoder(
        &self,
        image: ImageShape,
        d_output: usize,
        device: &Device,
    ) -> Result<ImageEncoder> {
        self.check(image)?;
        Ok(match self {
            Self::Mlp { hidden, activation } => ImageEncoder::Mlp(
                MlpConfig::new(image.dims(), hidden.clone(), d_output)
                    .with_activation(*activation)
                    .init(device),
            ),
            Self::Conv { channels } => {
                ImageEncoder::Conv(ConvEncoder::new(image, *channels, d_output, device))
            }
        })
    }

    /// A decoder from `d_input` features to `[N, C·H·W]` outputs (logits or means).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] when the architecture cannot produce this image shape.
    pub fn decoder(
        &self,
        image: ImageShape,
        d_input: usize,
        device: &Device,
    ) -> Result<ImageDecoder> {
        self.check(image)?;
        Ok(match self {
            Self::Mlp { hidden, activation } => {
                let mirrored: Vec<usize> = hidden.iter().rev().copied().collect();
                ImageDecoder::Mlp(
                    MlpConfig::new(d_input, mirrored, image.dims())
                        .with_activation(*activation)
                        .init(device),
                )
            }
            Self::Conv { channels } => {
                ImageDecoder::Conv(ConvDecoder::new(image, *channels, d_input, device))
            }
        })
    }
}

/// Maps images to flat feature vectors.
// Built once per model, so the size of the larger variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageEncoder {
    /// On the flattened image.
    Mlp(Mlp),
    /// Convolutional.
    Conv(ConvEncoder),
}

impl ImageEncoder {
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, d_output]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Mlp(mlp) => {
                let [n, c, h, w] = images.dims();
                mlp.forward(images.reshape([n, c * h * w]))
            }
            Self::Conv(conv) => conv.forward(images),
        }
    }
}

/// Maps flat vectors to flattened images.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageDecoder {
    /// Fully connected.
    Mlp(Mlp),
    /// Transposed convolutions.
    Conv(ConvDecoder),
}

impl ImageDecoder {
    /// # Shapes
    /// - z: `[N, d_input]`
    /// - output: `[N, C·H·W]` (row-major over C, H, W)
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Mlp(mlp) => mlp.forward(z),
            Self::Conv(conv) => conv.forward(z),
        }
    }
}

/// `conv 4×4/2 → ReLU → conv 4×4/2 → ReLU → Linear`.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    conv1: Conv2d,
    conv2: Conv2d,
    head: Linear,
}

impl ConvEncoder {
    fn new(image: ImageShape, channels: [usize; 2], d_output: usize, device: &Device) -> Self {
        let down = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let flat = channels[1] * (image.height / 4) * (image.width / 4);
        Self {
            conv1: down(image.channels, channels[0]),
            conv2: down(channels[0], channels[1]),
            head: LinearConfig::new(flat, d_output).init(device),
        }
    }

    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, d_output]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(images));
        let x = relu(self.conv2.forward(x));
        let [n, c, h, w] = x.dims();
        self.head.kernel_forward(x.reshape([n, c * h * w]))
    }
}

/// `Linear → ReLU → convT 4×4/2 → ReLU → convT 4×4/2`.
#[derive(Module, Debug)]
pub struct ConvDecoder {
    head: Linear,
    deconv1: ConvTranspose2d,
    deconv2: ConvTranspose2d,
    #[module(skip)]
    image: ImageShape,
    #[module(skip)]
    channels: [usize; 2],
}

impl ConvDecoder {
    fn new(image: ImageShape, channels: [usize; 2], d_input: usize, device: &Device) -> Self {
        let up = |c_in, c_out| {
            ConvTranspose2dConfig::new([c_in, c_out], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .init(device)
        };
        let flat = channels[1] * (image.height / 4) * (image.width / 4);
        Self {
            head: LinearConfig::new(d_input, flat).init(device),
            deconv1: up(channels[1], channels[0]),
            deconv2: up(channels[0], image.channels),
            image,
            channels,
        }
    }

    /// # Shapes
    /// - z: `[N, d_input]`
    /// - output: `[N, C·H·W]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let n = z.dims()[0];
        let x = relu(self.head.kernel_forward(z)).reshape([
            n,
            self.channels[1],
            self.image.height / 4,
            self.image.width / 4,
        ]);
        let x = relu(self.deconv1.forward(x));
        self.deconv2.forward(x).reshape([n, self.image.dims()])
    }
}

/// Points on the straight lines between paired codes: for each row `i`, `steps` codes from
/// `start[i]` to `end[i]` inclusive, row by row.
///
/// # Shapes
/// - start, end: `[N, L]`
/// - output: `[N·steps, L]`, the `steps` codes of pair 0 first
pub fn interpolate_codes(start: Tensor<2>, end: Tensor<2>, steps: usize) -> Tensor<2> {
    let [n, l] = start.dims();
    let steps = steps.max(2);
    let device = start.device();
    let t: Vec<f32> = (0..steps).map(|s| s as f32 / (steps - 1) as f32).collect();
    let t = Tensor::<1>::from_floats(t.as_slice(), &device).reshape([1, steps, 1]);
    let start = start.reshape([n, 1, l]);
    let end = end.reshape([n, 1, l]);
    (start.clone() + (end - start) * t).reshape([n * steps, l])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_and_decoders_have_the_documented_shapes() {
        let device = Device::flex();
        let image = ImageShape::new(1, 8, 12);
        for arch in [
            Architecture::burda(),
            Architecture::Conv { channels: [4, 8] },
        ] {
            let enc = arch.encoder(image, 6, &device).unwrap();
            let dec = arch.decoder(image, 3, &device).unwrap();
            let x = Tensor::<4>::zeros(image.batch_dims(5), &device);
            assert_eq!(enc.forward(x).dims(), [5, 6]);
            assert_eq!(dec.forward(Tensor::zeros([5, 3], &device)).dims(), [5, 96]);
        }
    }

    #[test]
    fn interpolation_starts_and_ends_at_the_codes() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[0.0, 2.0]], &device);
        let b = Tensor::<2>::from_floats([[1.0, 4.0]], &device);
        let path = interpolate_codes(a, b, 3);
        let v = crate::batch::to_host(path).unwrap();
        assert_eq!(v, vec![0.0, 2.0, 0.5, 3.0, 1.0, 4.0]);
    }

    #[test]
    fn conv_architecture_rejects_sizes_not_divisible_by_four() {
        let err = Architecture::conv()
            .encoder(ImageShape::new(1, 10, 10), 4, &Device::flex())
            .unwrap_err();
        assert!(matches!(err, GenError::InvalidConfig(_)), "{err}");
    }
}

//! The two players' networks: MLP and DCGAN generators and discriminators, optionally
//! class-conditional.
//!
//! Both work on images in `[−1, 1]` (the [`Gan`](crate::Gan) maps data `x ↦ 2x − 1`, and the
//! generator ends in tanh).

use burn::module::{Module, Param};
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};
use genmodels_core::ImageShape;
use genmodels_core::nn::{Activation, Mlp, MlpConfig, leaky_relu, tanh};
use genmodels_kernels::KernelForward;
use genmodels_kernels::relu;
use serde::{Deserialize, Serialize};

use crate::spectral_norm::{SnConv2d, SnLinear, SpectralNorm};

/// Slope of the discriminators' LeakyReLU for negative inputs (Radford et al. 2015).
pub const LEAKY_SLOPE: f64 = 0.2;

/// DCGAN weights are drawn from `N(0, 0.02²)` (Radford et al. 2015, §4).
fn dcgan_init() -> Initializer {
    Initializer::Normal {
        mean: 0.0,
        std: 0.02,
    }
}

/// Which networks the players use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanArchitecture {
    /// Fully connected players on the flattened image: the generator `z → hidden (ReLU) → D,
    /// tanh`, the discriminator `D → hidden (LeakyReLU 0.2) → 1`.
    Mlp {
        /// Hidden widths, used by both players (the discriminator in the same order).
        hidden: Vec<usize>,
    },
    /// DCGAN (Radford et al. 2015) for images whose H and W are divisible by 4 (28×28 MNIST):
    ///
    /// - generator: `z → Linear → 2w×H/4×W/4, BN, ReLU → ConvT 4×4/2 → w×H/2×W/2, BN, ReLU →
    ///   ConvT 4×4/2 → C×H×W, tanh`;
    /// - discriminator: `Conv 4×4/2 → w×H/2×W/2, LeakyReLU → Conv 4×4/2 → 2w×H/4×W/4, BN,
    ///   LeakyReLU → flatten (the features) → Linear → 1`; no batch norm on the first layer,
    ///   as in the paper, and none at all when the discriminator is spectrally normalised
    ///   (spectral normalisation replaces it, Miyato et al. 2018).
    Dcgan {
        /// Base channel count `w` (64 by default).
        width: usize,
    },
}

impl GanArchitecture {
    /// The MLP players with two hidden layers of 256 units.
    pub fn mlp() -> Self {
        Self::Mlp {
            hidden: vec![256, 256],
        }
    }

    /// DCGAN with base width 64.
    pub fn dcgan() -> Self {
        Self::Dcgan { width: 64 }
    }
}

/// What a generator or discriminator is built from.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// The architecture.
    pub architecture: GanArchitecture,
    /// The image shape made / judged.
    pub image_shape: ImageShape,
    /// Latent dimension (generator only).
    pub latent_dim: usize,
    /// Number of classes of a conditional model.
    pub classes: Option<usize>,
    /// Width of the generator's label embedding.
    pub label_embedding_dim: usize,
    /// Power iterations of spectral normalisation (discriminator only), `None` for none.
    pub spectral_norm: Option<usize>,
}

/// The generator's body.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum GeneratorNet {
    /// Fully connected; tanh applied outside.
    Mlp(Mlp),
    /// Radford et al.'s transposed-convolution generator.
    Dcgan(DcganGenerator),
}

/// DCGAN generator body: `Linear → BN → ReLU → ConvT → BN → ReLU → ConvT` (tanh outside).
#[derive(Module, Debug)]
pub struct DcganGenerator {
    project: Linear,
    bn0: BatchNorm,
    deconv1: ConvTranspose2d,
    bn1: BatchNorm,
    deconv2: ConvTranspose2d,
    #[module(skip)]
    image_shape: ImageShape,
    #[module(skip)]
    width: usize,
}

impl DcganGenerator {
    fn new(d_input: usize, image_shape: ImageShape, width: usize, device: &Device) -> Self {
        let (h4, w4) = (image_shape.height / 4, image_shape.width / 4);
        let up = |c_in: usize, c_out: usize, bias: bool| {
            // 4×4, stride 2, padding 1: (H − 1)·2 − 2 + 4 = 2H, so 7 → 14 → 28.
            ConvTranspose2dConfig::new([c_in, c_out], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .with_bias(bias)
                .with_initializer(dcgan_init())
                .init(device)
        };
        Self {
            project: LinearConfig::new(d_input, 2 * width * h4 * w4)
                .with_bias(false)
                .with_initializer(dcgan_init())
                .init(device),
            bn0: BatchNormConfig::new(2 * width).init(device),
            deconv1: up(2 * width, width, false),
            bn1: BatchNormConfig::new(width).init(device),
            deconv2: up(width, image_shape.channels, true),
            image_shape,
            width,
        }
    }

    /// # Shapes
    /// - input: `[N, d_input]`
    /// - output: `[N, C, H, W]`, before tanh
    pub fn forward(&self, input: Tensor<2>) -> Tensor<4> {
        let n = input.dims()[0];
        let s = self.image_shape;
        let x = self.project.kernel_forward(input).reshape([
            n,
            2 * self.width,
            s.height / 4,
            s.width / 4,
        ]);
        // The layers' own forward, on flex run by the genmodels kernels.
        let x = relu(self.bn0.kernel_forward(x));
        let x = relu(self.bn1.kernel_forward(self.deconv1.kernel_forward(x)));
        self.deconv2.kernel_forward(x)
    }
}

/// The generator `G(z, y)`: images in `[−1, 1]`. A conditional generator takes
/// `concat(z, E_y)`, with `E` a learned label embedding.
#[derive(Module, Debug)]
pub struct Generator {
    /// The body.
    pub net: GeneratorNet,
    /// Label embedding `[classes, e]` of a conditional generator.
    pub label_embedding: Option<Param<Tensor<2>>>,
    #[module(skip)]
    image_shape: ImageShape,
}

impl Generator {
    /// Builds the generator `spec` describes.
    pub fn new(spec: &NetworkSpec, device: &Device) -> Self {
        let label_embedding = spec.classes.map(|k| {
            Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            }
            .init([k, spec.label_embedding_dim], device)
        });
        let d_input = spec.latent_dim + spec.classes.map_or(0, |_| spec.label_embedding_dim);
        let net = match &spec.architecture {
            GanArchitecture::Mlp { hidden } => GeneratorNet::Mlp(
                MlpConfig::new(d_input, hidden.clone(), spec.image_shape.dims())
                    .with_activation(Activation::Relu)
                    .init(device),
            ),
            GanArchitecture::Dcgan { width } => GeneratorNet::Dcgan(DcganGenerator::new(
                d_input,
                spec.image_shape,
                *width,
                device,
            )),
        };
        Self {
            net,
            label_embedding,
            image_shape: spec.image_shape,
        }
    }

    /// `G(z, y)` in `[−1, 1]`. `labels` must be given exactly when the generator is
    /// conditional (the [`Gan`](crate::Gan) checks this).
    ///
    /// # Shapes
    /// - z: `[N, latent_dim]`, labels: `[N]`
    /// - output: `[N, C, H, W]`
    pub fn forward(&self, z: Tensor<2>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let n = z.dims()[0];
        let input = match (&self.label_embedding, labels) {
            (Some(embedding), Some(labels)) => {
                Tensor::cat(vec![z, embedding.val().select(0, labels)], 1)
            }
            _ => z,
        };
        let raw = match &self.net {
            GeneratorNet::Mlp(mlp) => mlp.forward(input).reshape(self.image_shape.batch_dims(n)),
            GeneratorNet::Dcgan(dcgan) => dcgan.forward(input),
        };
        tanh(raw)
    }
}

/// The discriminator's feature extractor `φ`.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum DiscriminatorNet {
    /// Hidden layers with LeakyReLU; no hidden layers means `φ(x) = x`.
    Mlp(Vec<SnLinear>),
    /// Radford et al.'s strided-convolution discriminator.
    Dcgan(DcganDiscriminator),
}

/// DCGAN discriminator body: `Conv → LeakyReLU → Conv → BN → LeakyReLU → flatten`.
#[derive(Module, Debug)]
pub struct DcganDiscriminator {
    conv1: SnConv2d,
    conv2: SnConv2d,
    /// Absent when the convolutions are spectrally normalised.
    bn2: Option<BatchNorm>,
}

impl DcganDiscriminator {
    fn new(channels: usize, width: usize, spectral_norm: Option<usize>, device: &Device) -> Self {
        let with_bn = spectral_norm.is_none();
        Self {
            conv1: SnConv2d::down(channels, width, true, dcgan_init(), spectral_norm, device),
            conv2: SnConv2d::down(
                width,
                2 * width,
                !with_bn,
                dcgan_init(),
                spectral_norm,
                device,
            ),
            bn2: with_bn.then(|| BatchNormConfig::new(2 * width).init(device)),
        }
    }

    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, 2w·(H/4)·(W/4)]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = leaky_relu(self.conv1.forward(images), LEAKY_SLOPE);
        let x = self.conv2.forward(x);
        let x = match &self.bn2 {
            Some(bn) => bn.kernel_forward(x),
            None => x,
        };
        let x = leaky_relu(x, LEAKY_SLOPE);
        let [n, c, h, w] = x.dims();
        x.reshape([n, c * h * w])
    }
}

/// A spectrally normalisable class embedding: the projection discriminator's `E`.
#[derive(Module, Debug)]
pub struct SnEmbedding {
    /// `[classes, d]`.
    pub weight: Param<Tensor<2>>,
    /// The normalisation state, when on (`u` has `classes` entries).
    pub spectral_norm: Option<SpectralNorm>,
}

impl SnEmbedding {
    /// The rows of `labels`.
    ///
    /// # Shapes
    /// - labels: `[N]`
    /// - output: `[N, d]`
    pub fn forward(&self, labels: Tensor<1, Int>) -> Tensor<2> {
        let weight = self.weight.val();
        let weight = match &self.spectral_norm {
            Some(sn) => sn.normalise(weight),
            None => weight,
        };
        weight.select(0, labels)
    }
}

/// The discriminator `D(x, y) = ψ(φ(x)) + ⟨E_y, φ(x)⟩` on images in `[−1, 1]`: a feature
/// extractor `φ`, a linear head `ψ`, and for a conditional model the projection term of
/// Miyato & Koyama (2018) with a learned class embedding `E`.
#[derive(Module, Debug)]
pub struct Discriminator {
    /// `φ`.
    pub net: DiscriminatorNet,
    /// `ψ`: features → one raw output.
    pub head: SnLinear,
    /// `E` of a conditional discriminator.
    pub projection: Option<SnEmbedding>,
}

impl Discriminator {
    /// Builds the discriminator `spec` describes.
    pub fn new(spec: &NetworkSpec, device: &Device) -> Self {
        let s = spec.image_shape;
        let sn = spec.spectral_norm;
        let (net, features) = match &spec.architecture {
            GanArchitecture::Mlp { hidden } => {
                let mut d_in = s.dims();
                let mut layers = Vec::with_capacity(hidden.len());
                for &h in hidden {
                    let init = Initializer::KaimingUniform {
                        gain: 1.0 / 3f64.sqrt(),
                        fan_out_only: false,
                    };
                    layers.push(SnLinear::new(d_in, h, init, sn, device));
                    d_in = h;
                }
                (DiscriminatorNet::Mlp(layers), d_in)
            }
            GanArchitecture::Dcgan { width } => (
                DiscriminatorNet::Dcgan(DcganDiscriminator::new(s.channels, *width, sn, device)),
                2 * width * (s.height / 4) * (s.width / 4),
            ),
        };
        let head_init = match spec.architecture {
            GanArchitecture::Dcgan { .. } => dcgan_init(),
            GanArchitecture::Mlp { .. } => Initializer::KaimingUniform {
                gain: 1.0 / 3f64.sqrt(),
                fan_out_only: false,
            },
        };
        let head = SnLinear::new(features, 1, head_init, sn, device);
        let projection = spec.classes.map(|k| SnEmbedding {
            weight: Initializer::XavierUniform { gain: 1.0 }.init_with(
                [k, features],
                Some(k),
                Some(features),
                device,
            ),
            spectral_norm: sn.map(|iterations| SpectralNorm::new(k, iterations, device)),
        });
        Self {
            net,
            head,
            projection,
        }
    }

    /// The penultimate activations `φ(x)` (a VAE-GAN measures reconstructions here). They do
    /// not depend on the label: the projection discriminator uses the label only in its
    /// output.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]` in `[−1, 1]`
    /// - output: `[N, F]`
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match &self.net {
            DiscriminatorNet::Mlp(layers) => {
                let [n, c, h, w] = images.dims();
                layers
                    .iter()
                    .fold(images.reshape([n, c * h * w]), |x, layer| {
                        leaky_relu(layer.forward(x), LEAKY_SLOPE)
                    })
            }
            DiscriminatorNet::Dcgan(dcgan) => dcgan.forward(images),
        }
    }

    /// The raw outputs `D(x, y)`: logits for the probability objectives, scores otherwise.
    /// `labels` must be given exactly when the discriminator is conditional (the
    /// [`Gan`](crate::Gan) checks this).
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]` in `[−1, 1]`, labels: `[N]`
    /// - output: `[N]`
    pub fn forward(&self, images: Tensor<4>, labels: Option<Tensor<1, Int>>) -> Tensor<1> {
        let features = self.features(images);
        let out = self.head.forward(features.clone());
        let out = match (&self.projection, labels) {
            (Some(embedding), Some(labels)) => {
                out + (embedding.forward(labels) * features).sum_dim(1)
            }
            _ => out,
        };
        out.squeeze_dim(1)
    }
}

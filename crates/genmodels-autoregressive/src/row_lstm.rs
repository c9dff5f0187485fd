//! PixelRNN's Row LSTM (van den Oord, Kalchbrenner & Kavukcuoglu 2016, §3.1, §3.4).
//!
//! The network is a mask-A convolution (7×7 by default) to `2h` features, `layers` Row LSTM layers with
//! residual connections, and the PixelCNN head (ReLU → 1×1 → ReLU → 1×1 to the logits).
//!
//! # The layer and the paper's eq. 3
//!
//! A Row LSTM layer runs an LSTM down the image one row at a time, every pixel of a row at
//! once. With `x_y` the layer input at row `y` and `h_{y−1}`, `c_{y−1}` the hidden and cell
//! state of the row above (zero above row 0):
//!
//! ```text
//! [o, f, i, g] = K^ss ⊛ h_{y−1} + K^is ⊛ x_y
//! c_y = σ(f) ⊙ c_{y−1} + σ(i) ⊙ tanh(g)
//! h_y = σ(o) ⊙ tanh(c_y)
//! ```
//!
//! - `K^is ⊛ x_y`, the input-to-state, is a `k`-wide 1-D convolution along the current row of
//!   the layer input, masked so that pixel `x` reads columns `x − ⌊k/2⌋ … x`, and at `x` itself
//!   only the same and earlier colour groups (mask B). It is computed for the whole map at once
//!   before the row loop, as in the paper. Only the `⌊k/2⌋ + 1` columns the mask keeps are
//!   stored as weights.
//! - `K^ss ⊛ h_{y−1}`, the state-to-state, is an unmasked `k`-wide 1-D convolution along the
//!   row above: every pixel of row `y − 1` comes before every sub-pixel of row `y`, whatever
//!   its colour, so nothing needs masking.
//!
//! The paper's "k × 1" kernels are these `k`-wide kernels along the row ("a k × 1 convolution
//! … that follows the row-wise orientation of the LSTM itself"). The input-to-state reads the
//! current row, not the row above: the row above enters a layer through the state-to-state
//! (and `c_{y−1}`), and at the first layer also through the 7×7 mask-A convolution, whose
//! output is that layer's `x_y`. Stacked layers widen the receptive field into the paper's
//! triangle above each pixel; the masked input-to-state adds the pixels to the left in the
//! pixel's own row.
//!
//! The layer's output `h_y` (`h` channels) goes through a 1×1 mask-B convolution to `2h` and is
//! added to the layer input (§3.4's residual connections).
//!
//! # Colour groups
//!
//! For `C` colour channels every feature map is split into `C` contiguous groups R → G → B
//! (see [`MaskedConv2dConfig`]): the masked convolutions carry the colour masks, the four
//! gates are laid out inside each colour block ([`gates::lstm_update`]), and `h` must be a
//! multiple of `C`. The state-to-state convolution mixes colours freely, which is causal
//! because it only reads the row above.
//!
//! # Sampling
//!
//! [`SampleWithMethod::sample_with`](genmodels_core::SampleWithMethod::sample_with) and [`Complete::complete`](genmodels_core::Complete::complete) with
//! [`SamplingMethod::Cached`](crate::SamplingMethod::Cached) (and
//! [`GenerativeModel::sample`](genmodels_core::GenerativeModel::sample)) go pixel by pixel
//! with [`RowLstmConditionals`], which carries each layer's `(h, c)` of the row above and
//! computes only what a new pixel changes; [`SamplingMethod::Naive`](crate::SamplingMethod::Naive)
//! runs the whole network per sub-pixel. Both give the same images for the same seed.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::{
    GenError, ImageShape, ModelConfig, Result,
    batch::to_host,
    model::{materialise_parameters, module_device},
};
use genmodels_kernels::relu;
use genmodels_kernels::{KernelForward, conv2d_padded};

use crate::gates;
use crate::masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig};
use crate::pixel::PixelDistribution;
use crate::raster::{self, Conditionals, IncrementalSampling, RasterModel, steps};

/// Configuration of a [`RowLstm`].
///
/// The default (`h = 16`, 5 layers, `k = 3`, 7×7 input) is the paper's MNIST width with fewer
/// layers than its 7, so that binarised MNIST trains at about 60 images/s on two CPU cores.
#[derive(Config, Debug)]
pub struct RowLstmConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The output head.
    #[config(default = "PixelDistribution::Bernoulli")]
    pub distribution: PixelDistribution,
    /// `h`: LSTM state channels; the residual stream between layers has `2h`. A positive
    /// multiple of the colour channels.
    #[config(default = 16)]
    pub hidden: usize,
    /// Row LSTM layers (at least 1).
    #[config(default = 5)]
    pub layers: usize,
    /// Width `k` of the input-to-state and state-to-state row convolutions; odd, at least 3.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Side of the mask-A input convolution; odd.
    #[config(default = 7)]
    pub input_kernel: usize,
}

impl Default for RowLstmConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelConfig for RowLstmConfig {
    type Model = RowLstm;
    const MODEL_NAME: &'static str = "row-lstm";

    fn init(&self, device: &Device) -> Result<RowLstm> {
        raster::validate_config(
            "Row LSTM",
            self.image_shape,
            self.distribution,
            self.hidden,
            self.layers,
            &[
                ("row kernel", self.kernel_size),
                ("input kernel", self.input_kernel),
            ],
        )?;
        raster::validate_input_kernel(self.input_kernel)?;
        if self.kernel_size < 3 {
            return Err(GenError::InvalidConfig(format!(
                "the row kernel must be at least 3 wide, got {}",
                self.kernel_size
            )));
        }
        let colours = self.image_shape.channels;
        let h = self.hidden;
        let masked = |c_in, c_out, k, mask| {
            MaskedConv2dConfig::new([c_in, c_out], k, mask)
                .with_colour_groups(colours)
                .init(device)
        };
        let out = colours * self.distribution.logits_per_channel();
        let model = RowLstm {
            input: masked(colours, 2 * h, self.input_kernel, MaskType::A),
            layers: (0..self.layers)
                .map(|_| RowLstmLayer {
                    input_to_state: MaskedRowConv::new(
                        [2 * h, 4 * h],
                        self.kernel_size,
                        colours,
                        device,
                    ),
                    state_to_state: Conv2dConfig::new([h, 4 * h], [1, self.kernel_size])
                        .with_padding(PaddingConfig2d::Explicit(
                            0,
                            self.kernel_size / 2,
                            0,
                            self.kernel_size / 2,
                        ))
                        .with_bias(false)
                        .init(device),
                    residual: masked(h, 2 * h, 1, MaskType::B),
                    colour_groups: colours,
                })
                .collect(),
            head_hidden: masked(2 * h, 2 * h, 1, MaskType::B),
            head_out: masked(2 * h, out, 1, MaskType::B),
            config: self.clone(),
        };
        // The sampler reads the layers in another order than `forward`.
        materialise_parameters(&model);
        Ok(model)
    }
}

/// A mask-B convolution along the row: output pixel `x` reads input columns
/// `x − ⌊k/2⌋ … x` of its own row, and at `x` only the same and earlier colour groups.
///
/// Only the `⌊k/2⌋ + 1` columns the mask keeps are weights; the centre column carries the
/// colour mask.
#[derive(Module, Debug)]
pub struct MaskedRowConv {
    /// Weight `[out, in, 1, ⌊k/2⌋ + 1]` (the last column is the centre) and bias.
    conv: Conv2d,
    /// The 0/1 mask of the weight; a constant, rebuilt from the config, not trained.
    mask: Tensor<4>,
}

impl MaskedRowConv {
    /// A row convolution of width `kernel_size` (odd) from `channels[0]` to `channels[1]`
    /// channels in `colour_groups` groups.
    fn new(
        channels: [usize; 2],
        kernel_size: usize,
        colour_groups: usize,
        device: &Device,
    ) -> Self {
        let [c_in, c_out] = channels;
        let (k, half) = (kernel_size, kernel_size / 2);
        // The centre row of the square mask-B mask, up to and including the centre.
        let square = MaskedConv2dConfig::new(channels, k, MaskType::B)
            .with_colour_groups(colour_groups)
            .mask_values();
        let mut row = Vec::with_capacity(c_out * c_in * (half + 1));
        for o in 0..c_out {
            for i in 0..c_in {
                let centre_row = ((o * c_in + i) * k + half) * k;
                row.extend_from_slice(&square[centre_row..centre_row + half + 1]);
            }
        }
        MaskedRowConv {
            conv: Conv2dConfig::new(channels, [1, half + 1]).init(device),
            mask: Tensor::from_data(TensorData::new(row, [c_out, c_in, 1, half + 1]), device),
        }
    }

    fn half(&self) -> usize {
        self.mask.dims()[3] - 1
    }

    /// Convolves input that is already padded or cut to the columns the output needs, with
    /// `left_padding` zero columns added on the left.
    fn convolve(&self, input: Tensor<4>, left_padding: usize) -> Tensor<4> {
        let weight = self.conv.weight.val() * self.mask.clone();
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        conv2d_padded(input, weight, bias, [0, 0, left_padding, 0])
    }

    /// Applies the convolution to every row, with zeros left of the image.
    ///
    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H, W]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let half = self.half();
        self.convolve(input, half)
    }

    /// The output at column `x` alone, from the input columns of one row.
    ///
    /// # Shapes
    /// - columns: at least `x + 1` tensors `[N, in, 1, 1]`, columns `0, 1, …` of the row
    /// - output: `[N, out, 1, 1]`
    fn forward_at(&self, columns: &[Tensor<4>], x: usize) -> Tensor<4> {
        let half = self.half();
        let first = x.saturating_sub(half);
        let window = Tensor::cat(columns[first..=x].to_vec(), 3);
        self.convolve(window, half - (x - first))
    }
}

/// One Row LSTM layer: the LSTM of eq. 3 run down the rows, and the residual connection.
#[derive(Module, Debug)]
pub struct RowLstmLayer {
    /// `K^is`: masked `k`-wide row convolution of the layer input, `2h → 4h`.
    input_to_state: MaskedRowConv,
    /// `K^ss`: `k`-wide row convolution of the row above's hidden state, `h → 4h`, no bias.
    state_to_state: Conv2d,
    /// 1×1 mask-B convolution `h → 2h` added to the layer input.
    residual: MaskedConv2d,
    #[module(skip)]
    colour_groups: usize,
}

impl RowLstmLayer {
    fn state_channels(&self) -> usize {
        self.state_to_state.weight.dims()[1]
    }

    /// `x + 1×1(h)`, with `h` the hidden states of the LSTM run down the rows of `x`.
    ///
    /// The feature maps are stacked by rows, row `y` of image `i` at `y·N + i`, so that each
    /// step of the row loop reads and writes one contiguous block.
    ///
    /// # Shapes
    /// - rows, output: `[H·N, 2h, 1, W]`
    pub fn forward(&self, rows: Tensor<4>, images: usize) -> Tensor<4> {
        let [stacked, _, _, width] = rows.dims();
        let height = stacked / images;
        let input_to_state = self.input_to_state.forward(rows.clone());
        let gate_channels = input_to_state.dims()[1];
        // Row by row, split so that the backward pass does not move the whole map per row.
        let from_inputs = steps(
            input_to_state.reshape([height, images, gate_channels, width]),
            0,
        );
        let mut cell =
            Tensor::<4>::zeros([images, self.state_channels(), 1, width], &rows.device());
        let mut hidden_rows: Vec<Tensor<4>> = Vec::with_capacity(height);
        for from_input in from_inputs {
            let from_input = from_input.reshape([images, gate_channels, 1, width]);
            // Above row 0 the state is zero and so is K^ss ⊛ h_{−1} (no bias).
            let preactivations = match hidden_rows.last() {
                Some(above) => from_input + self.state_to_state.kernel_forward(above.clone()),
                None => from_input,
            };
            let (hidden, next_cell) = gates::lstm_update(preactivations, cell, self.colour_groups);
            cell = next_cell;
            hidden_rows.push(hidden);
        }
        rows + self.residual.forward(Tensor::cat(hidden_rows, 0))
    }
}

/// PixelRNN's Row LSTM: `p(x) = Π_i p(x_i | x_<i)` over sub-pixels in raster order (and
/// R → G → B within a pixel), with the context carried down the image by row-wise LSTMs.
/// See the [module docs](self) for the layer.
#[derive(Module, Debug)]
pub struct RowLstm {
    input: MaskedConv2d,
    layers: Vec<RowLstmLayer>,
    head_hidden: MaskedConv2d,
    head_out: MaskedConv2d,
    #[module(skip)]
    config: RowLstmConfig,
}

impl RowLstm {
    /// The logits of every sub-pixel's conditional distribution given the sub-pixels before
    /// it.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, C·K, H, W]` with `K` logits per channel, channel `c` at `c·K..(c+1)·K`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let [n, _, height, width] = images.dims();
        let logits = self.head(self.layer_rows(images));
        let channels = logits.dims()[1];
        logits
            .reshape([height, n, channels, width])
            .permute([1, 2, 0, 3])
    }

    /// The last layer's output, rows stacked: `[H·N, 2h, 1, W]`, row `y` of image `i` at
    /// `y·N + i`.
    fn layer_rows(&self, images: Tensor<4>) -> Tensor<4> {
        let [n, _, height, width] = images.dims();
        let features = self.input.forward(images);
        let channels = features.dims()[1];
        let rows = features
            .permute([2, 0, 1, 3])
            .reshape([height * n, channels, 1, width]);
        self.layers
            .iter()
            .fold(rows, |rows, layer| layer.forward(rows, n))
    }

    fn head(&self, features: Tensor<4>) -> Tensor<4> {
        let x = self.head_hidden.forward(relu(features));
        self.head_out.forward(relu(x))
    }
}

impl IncrementalSampling for RowLstm {
    fn incremental_conditionals(
        &self,
        _n: usize,
        _labels: Option<Tensor<1, Int>>,
        _device: &Device,
    ) -> impl Conditionals + '_ {
        RowLstmConditionals::new(self)
    }
}

impl RasterModel for RowLstm {
    const DISPLAY_NAME: &'static str = "Row LSTM";

    fn raster_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    fn distribution(&self) -> PixelDistribution {
        self.config.distribution
    }

    fn logits(&self, images: Tensor<4>, _labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.forward(images)
    }

    /// `ReLU(head_hidden(ReLU(last layer)))`, `[N, 2h, H, W]`.
    fn hidden_map(&self, images: Tensor<4>, _labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let [n, _, height, width] = images.dims();
        let hidden = relu(self.head_hidden.forward(relu(self.layer_rows(images))));
        let channels = hidden.dims()[1];
        hidden
            .reshape([height, n, channels, width])
            .permute([1, 2, 0, 3])
    }

    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4> {
        self.head_out.forward(hidden)
    }
}

/// The Row LSTM's conditionals, one pixel at a time, carrying each layer's LSTM state from
/// row to row.
///
/// Per pixel it computes only what that pixel changes: the first-layer convolution from the
/// image window around it, and per layer the input-to-state from the cached layer inputs of the
/// current row, the LSTM update with the cached state-to-state and cell of the row above, and
/// the residual; then the head. The state-to-state of a row is computed once, when the sampler
/// enters the row. All of it runs on the model's device, with the model's own layers.
///
/// A pixel's activations are final once every sub-pixel it reads is: at the call for its last
/// channel (the first layer's mask A never reads a pixel's own last channel), or when a later
/// position is asked for. Calls that skip positions make the sampler catch up over them first.
pub struct RowLstmConditionals<'a> {
    model: &'a RowLstm,
    state: Option<SamplerState>,
}

/// What the sampler carries for `n` images.
struct SamplerState {
    n: usize,
    /// Pixels, in raster order, whose cached activations are final.
    finalised: usize,
    /// The row the per-column caches belong to.
    row: usize,
    layers: Vec<LayerState>,
}

/// One layer's caches.
struct LayerState {
    /// The layer input at each column of the current row, `[N, 2h, 1, 1]`.
    inputs: Vec<Tensor<4>>,
    /// `h_y` at each column of the current row, `[N, h, 1, 1]`.
    hidden: Vec<Tensor<4>>,
    /// `c_y` at each column of the current row, `[N, h, 1, 1]`.
    cell: Vec<Tensor<4>>,
    /// `K^ss ⊛ h_{y−1}`, `[N, 4h, 1, W]`.
    from_above: Tensor<4>,
    /// `c_{y−1}`, `[N, h, 1, W]`.
    cell_above: Tensor<4>,
}

impl<'a> RowLstmConditionals<'a> {
    /// The conditionals of `model`, before the first row.
    pub fn new(model: &'a RowLstm) -> Self {
        Self { model, state: None }
    }
}

impl SamplerState {
    /// Zero state above row 0, for `n` images.
    fn new(model: &RowLstm, n: usize) -> Self {
        let device = module_device(model);
        let width = model.config.image_shape.width;
        let h = model.config.hidden;
        let column = |channels| Tensor::<4>::zeros([n, channels, 1, 1], &device);
        let layers = model
            .layers
            .iter()
            .map(|_| LayerState {
                inputs: vec![column(2 * h); width],
                hidden: vec![column(h); width],
                cell: vec![column(h); width],
                from_above: Tensor::zeros([n, 4 * h, 1, width], &device),
                cell_above: Tensor::zeros([n, h, 1, width], &device),
            })
            .collect();
        Self {
            n,
            finalised: 0,
            row: 0,
            layers,
        }
    }

    /// The features entering the head at pixel `(y, x)`, `[N, 2h, 1, 1]`, caching the pixel's
    /// layer inputs and LSTM state. Every pixel before it must be final.
    fn pixel_features(&mut self, model: &RowLstm, pixels: &[f32], y: usize, x: usize) -> Tensor<4> {
        if y != self.row {
            // Row y − 1 is complete: its hidden states feed the new row's state-to-state.
            for (layer, cache) in model.layers.iter().zip(&mut self.layers) {
                cache.from_above = layer
                    .state_to_state
                    .forward(Tensor::cat(cache.hidden.clone(), 3));
                cache.cell_above = Tensor::cat(cache.cell.clone(), 3);
            }
            self.row = y;
        }
        let n = self.n;
        let mut features = model.input_features_at(pixels, n, y, x);
        for (layer, cache) in model.layers.iter().zip(&mut self.layers) {
            cache.inputs[x] = features.clone();
            let gate_channels = cache.from_above.dims()[1];
            let h = cache.cell_above.dims()[1];
            let from_above =
                cache
                    .from_above
                    .clone()
                    .slice([0..n, 0..gate_channels, 0..1, x..x + 1]);
            let preactivations = layer.input_to_state.forward_at(&cache.inputs, x) + from_above;
            let cell_above = cache.cell_above.clone().slice([0..n, 0..h, 0..1, x..x + 1]);
            let (hidden, cell) =
                gates::lstm_update(preactivations, cell_above, layer.colour_groups);
            cache.hidden[x] = hidden.clone();
            cache.cell[x] = cell;
            features = features + layer.residual.forward(hidden);
        }
        features
    }
}

impl RowLstm {
    /// The mask-A input convolution at `(y, x)` alone, `[N, 2h, 1, 1]`, from the image window
    /// it reads: rows `y − ⌊k/2⌋ … y`, columns `x − ⌊k/2⌋ … x + ⌊k/2⌋`, zero outside the image.
    fn input_features_at(&self, pixels: &[f32], n: usize, y: usize, x: usize) -> Tensor<4> {
        let shape = self.config.image_shape;
        let (channels, height, width) = (shape.channels, shape.height, shape.width);
        let k = self.config.input_kernel;
        let half = k / 2;
        let mut window = Vec::with_capacity(n * channels * (half + 1) * k);
        for image in pixels.chunks(shape.dims()).take(n) {
            for plane in image.chunks(height * width) {
                for row in y as isize - half as isize..=y as isize {
                    for column in x as isize - half as isize..=(x + half) as isize {
                        let inside = row >= 0 && column >= 0 && (column as usize) < width;
                        window.push(if inside {
                            plane[row as usize * width + column as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
        let window = Tensor::<4>::from_data(
            TensorData::new(window, [n, channels, half + 1, k]),
            &module_device(self),
        );
        let features = self.input.forward(window);
        let [_, c_out, _, _] = features.dims();
        // The window's bottom row at its centre is (y, x); the rows below it are masked out.
        features.slice([0..n, 0..c_out, half..half + 1, half..half + 1])
    }
}

impl Conditionals for RowLstmConditionals<'_> {
    fn logits_at(
        &mut self,
        pixels: &[f32],
        channel: usize,
        y: usize,
        x: usize,
    ) -> Result<Vec<f32>> {
        let model = self.model;
        let shape = model.config.image_shape;
        let n = pixels.len() / shape.dims();
        let position = y * shape.width + x;
        // A position before the ones already final starts a new raster pass.
        if self
            .state
            .as_ref()
            .is_some_and(|state| state.n != n || position < state.finalised)
        {
            self.state = None;
        }
        let state = self
            .state
            .get_or_insert_with(|| SamplerState::new(model, n));
        // Catch up over skipped positions, whose sub-pixels are all final now.
        while state.finalised < position {
            let at = state.finalised;
            state.pixel_features(model, pixels, at / shape.width, at % shape.width);
            state.finalised += 1;
        }
        let features = state.pixel_features(model, pixels, y, x);
        if channel + 1 == shape.channels {
            state.finalised = position + 1;
        }
        let k = model.config.distribution.logits_per_channel();
        let logits = model.head(features);
        to_host(logits.slice([0..n, channel * k..(channel + 1) * k, 0..1, 0..1]))
    }
}

raster::raster_generative_model!(RowLstm, RowLstmConfig);

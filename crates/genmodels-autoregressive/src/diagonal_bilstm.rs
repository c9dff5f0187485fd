//! PixelRNN's Diagonal BiLSTM (van den Oord, Kalchbrenner & Kavukcuoglu 2016, §3.2).
//!
//! Each layer runs two LSTMs over the image along its diagonals. Skewing the feature map,
//! row `i` shifted right by `i`, turns every diagonal into a column; a column-wise LSTM whose
//! state-to-state convolution is a `2×1` kernel over the previous column then updates, for
//! original pixel `(y, x)`, from the states at `(y − 1, x)` (above) and `(y, x − 1)` (left):
//!
//! ```text
//! [o, f, i, g]_{y,x} = K^is ⊛ x_{y,x} + K^ss_0 · h_{y−1,x} + K^ss_1 · h_{y,x−1}
//! c_{y,x} = σ(f) ⊙ c_{y,x−1} + σ(i) ⊙ tanh(g),    h_{y,x} = σ(o) ⊙ tanh(c_{y,x})
//! ```
//!
//! so the state at `(y, x)` sees the whole triangle above and to the left of it. A second LSTM
//! with its own weights does the same right to left; it sees the current row's future, so its
//! output is shifted down one row before the two are added. Together they see the rows above
//! on both sides, unlike PixelCNN's triangular field: no blind spot, with one exception
//! inherited from the architecture. The last pixel of row `y − 1` enters the network only
//! through features of row `y` (the mask-A input convolution keeps it out of its own row's
//! features), so the conditionals of row `y` left of column `W − 1 − k/2` do not see it, at any
//! depth; rows `y + 1` on see it through the right-to-left pass over row `y`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::{
    GenError, ImageShape, ModelConfig, Result,
    batch::to_host,
    model::{materialise_parameters, module_device},
};
use genmodels_kernels::relu;

use crate::gates::lstm_update;
use crate::masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig};
use crate::pixel::PixelDistribution;
use crate::raster::steps;
use crate::raster::{self, Conditionals, IncrementalSampling, RasterModel};

/// Configuration of a [`DiagonalBiLstm`].
#[derive(Config, Debug)]
pub struct DiagonalBiLstmConfig {
    /// Shape of the images.
    #[config(default = "ImageShape::MNIST")]
    pub image_shape: ImageShape,
    /// The output head.
    #[config(default = "PixelDistribution::Bernoulli")]
    pub distribution: PixelDistribution,
    /// `h`: the LSTM state has `h` channels per direction, the residual stream `2h`. A positive
    /// multiple of the colour channels. The paper's MNIST model has `h = 16`.
    #[config(default = 16)]
    pub hidden: usize,
    /// Diagonal BiLSTM layers (at least 1). The paper's MNIST model has 7; the default of 2
    /// keeps training above 40 images/s at batch 32 on two CPU cores.
    #[config(default = 2)]
    pub layers: usize,
    /// Side of the mask-A input convolution; odd.
    #[config(default = 7)]
    pub input_kernel: usize,
}

impl Default for DiagonalBiLstmConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelConfig for DiagonalBiLstmConfig {
    type Model = DiagonalBiLstm;
    const MODEL_NAME: &'static str = "diagonal-bilstm";

    fn init(&self, device: &Device) -> Result<DiagonalBiLstm> {
        raster::validate_config(
            "Diagonal BiLSTM",
            self.image_shape,
            self.distribution,
            self.hidden,
            self.layers,
            &[("input kernel", self.input_kernel)],
        )?;
        raster::validate_input_kernel(self.input_kernel)?;
        let colours = self.image_shape.channels;
        let h = self.hidden;
        let masked = |c_in, c_out, k, mask| {
            MaskedConv2dConfig::new([c_in, c_out], k, mask)
                .with_colour_groups(colours)
                .init(device)
        };
        let out = colours * self.distribution.logits_per_channel();
        let model = DiagonalBiLstm {
            input: masked(colours, 2 * h, self.input_kernel, MaskType::A),
            layers: (0..self.layers)
                .map(|_| DiagonalBiLstmLayer {
                    input_to_state_lr: masked(2 * h, 4 * h, 1, MaskType::B),
                    input_to_state_rl: Conv2dConfig::new([2 * h, 4 * h], [1, 1]).init(device),
                    // As a 2×1 convolution over h channels would be initialised.
                    state_to_state: Initializer::KaimingUniform {
                        gain: 1.0 / 3f64.sqrt(),
                        fan_out_only: false,
                    }
                    .init_with(
                        [2, 2 * h, 4 * h],
                        Some(2 * h),
                        Some(8 * h),
                        device,
                    ),
                    residual: masked(h, 2 * h, 1, MaskType::B),
                    hidden: h,
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

/// Skews a channels-last feature map: row `i` shifted right by `i`, so that pixel `(i, j)`
/// lands in column `i + j` and each of the paper's diagonals, `i + j = const`, becomes a
/// column. The new positions are zeros.
///
/// Padding every row to `W + H` and reading the flat buffer back with rows of `W + H − 1`
/// shifts row `i` by exactly `i`, without a loop over rows.
///
/// # Shapes
/// - input: `[N, H, W, C]`
/// - output: `[N, H, W + H − 1, C]`
pub fn skew(input: Tensor<4>) -> Tensor<4> {
    let [n, h, w, c] = input.dims();
    let skewed_width = w + h - 1;
    input
        .pad([(0, h), (0, 0)], PadMode::Constant(0.0))
        .reshape([n, h * (w + h), c])
        .narrow(1, 0, h * skewed_width)
        .reshape([n, h, skewed_width, c])
}

/// Undoes [`skew`]: output `(i, x)` is input `(i, i + x)`.
///
/// # Shapes
/// - input: `[N, H, S, C]` with `S ≥ H`
/// - output: `[N, H, S − H + 1, C]`
pub fn unskew(input: Tensor<4>) -> Tensor<4> {
    let [n, h, skewed_width, c] = input.dims();
    let w = skewed_width + 1 - h;
    input
        .reshape([n, h * skewed_width, c])
        .pad([(0, h), (0, 0)], PadMode::Constant(0.0))
        .reshape([n, h, skewed_width + 1, c])
        .narrow(2, 0, w)
}

/// Reverses the columns of a channels-last map, `[N, H, W, C]`, by gathering them: a
/// negative-stride view would make every later copy of it slow.
fn flip_columns(map: Tensor<4>) -> Tensor<4> {
    let width = map.dims()[2];
    let reversed: Vec<i64> = (0..width as i64).rev().collect();
    let indices = Tensor::<1, Int>::from_data(TensorData::new(reversed, [width]), &map.device());
    map.select(2, indices)
}

/// One Diagonal BiLSTM layer with its residual connection.
///
/// Both directions share one column loop over the skewed map. A column is a matrix with a row
/// per image and skewed row inside the image (padding rows are never computed), whose
/// channels hold the left-to-right then the right-to-left direction, so each column costs one
/// matrix product (`K^ss` of both directions, block-diagonal) and one LSTM update.
#[derive(Module, Debug)]
pub struct DiagonalBiLstmLayer {
    /// `K^is` of the left-to-right LSTM: 1×1, mask B, `2h → 4h`. Its state at `(y, x)` feeds
    /// the conditional at `(y, x)`, so colour `g`'s gates may see only colours `≤ g` of the
    /// input there.
    input_to_state_lr: MaskedConv2d,
    /// `K^is` of the right-to-left LSTM: an unmasked 1×1 `2h → 4h`. Its state at `(y, x)` is
    /// used only from row `y + 1` on, where all of pixel `(y, x)` is in the past.
    input_to_state_rl: Conv2d,
    /// `K^ss` of both directions, `[2, 2h, 4h]`: the `2×1` kernel over the previous column's
    /// `h` as a matrix per direction, rows `0..h` for the state above and `h..2h` for the state
    /// to the left. No bias: `K^is` has one.
    state_to_state: Param<Tensor<3>>,
    /// 1×1 mask-B `h → 2h` from the summed outputs back to the residual stream.
    residual: MaskedConv2d,
    #[module(skip)]
    hidden: usize,
    #[module(skip)]
    colour_groups: usize,
}

impl DiagonalBiLstmLayer {
    /// `x + K^res ⊛ (h_lr + shift_down(h_rl))`.
    ///
    /// # Shapes
    /// - input, output: `[N, 2h, H, W]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_channels_last(input.permute([0, 2, 3, 1]))
            .permute([0, 3, 1, 2])
    }

    /// [`forward`](Self::forward) on channels-last maps, as the model chains its layers: a
    /// column's rows are then contiguous, and no layer changes the layout of its input.
    ///
    /// # Shapes
    /// - input, output: `[N, H, W, 2h]`
    pub fn forward_channels_last(&self, input: Tensor<4>) -> Tensor<4> {
        let [n, height, width, _] = input.dims();
        let h = self.hidden;
        // 1×1 convolutions commute with skewing and flipping: compute them on the plain map.
        let pre_lr = self.input_to_state_lr.forward_channels_last(input.clone());
        let pre_rl = pointwise_channels_last(&self.input_to_state_rl, input.clone());
        let pre = skew(Tensor::cat(vec![pre_lr, flip_columns(pre_rl)], 3));

        let weight = self.state_to_state.val();
        let [lr, rl] = [0, 1].map(|d| weight.clone().narrow(0, d, 1).reshape([2 * h, 4 * h]));
        let zeros = lr.zeros_like();
        let block_diagonal = Tensor::cat(
            vec![
                Tensor::cat(vec![lr, zeros.clone()], 1),
                Tensor::cat(vec![zeros, rl], 1),
            ],
            0,
        );
        // Column j holds pixels of the image only in rows lo..=hi; only those are computed.
        // Rows of column j − 1 are kept in a frame padded with one zero row on each side: the
        // row above the first is zero (above the image), and so is the row below the last,
        // which is left of the image when a new row enters the column.
        let zeros_frame = Tensor::<3>::zeros([n, 2, 2 * h], &input.device());
        let (mut state, mut cell) = (zeros_frame.clone(), zeros_frame);
        let mut previous_lo = 0;
        let mut states = Vec::with_capacity(width + height - 1);
        for (j, column) in steps(pre, 2).into_iter().enumerate() {
            let lo = (j + 1).saturating_sub(width);
            let hi = j.min(height - 1);
            let len = hi + 1 - lo;
            // Skewed row r of column j reads rows r − 1 and r of column j − 1: the pixels
            // above and to the left of it in the image.
            let left = state.clone().narrow(1, lo + 1 - previous_lo, len);
            let above = state.narrow(1, lo - previous_lo, len);
            let recurrent = Tensor::cat(
                vec![above.reshape([n, len, 2, h]), left.reshape([n, len, 2, h])],
                3,
            )
            .reshape([n * len, 4 * h])
            .matmul(block_diagonal.clone());
            let pre = column.narrow(1, lo, len).reshape([n * len, 8 * h]) + recurrent;
            let left_cell = cell.narrow(1, lo + 1 - previous_lo, len);
            let (hidden, new_cell) = lstm_update(
                pre.reshape([n * len, 8 * h, 1, 1]),
                left_cell.reshape([n * len, 2 * h, 1, 1]),
                2 * self.colour_groups,
            );
            let hidden = hidden.reshape([n, len, 2 * h]);
            states.push(
                hidden
                    .clone()
                    .pad([(lo, height - 1 - hi), (0, 0)], PadMode::Constant(0.0))
                    .reshape([n, height, 1, 2 * h]),
            );
            let frame = |t: Tensor<3>| t.pad([(1, 1), (0, 0)], PadMode::Constant(0.0));
            state = frame(hidden);
            cell = frame(new_cell.reshape([n, len, 2 * h]));
            previous_lo = lo;
        }
        let states = unskew(Tensor::cat(states, 2));
        let lr = states.clone().narrow(3, 0, h);
        // Right to left ran on the flipped map; flip back, then shift down one row so that
        // row y sees only rows above it.
        let rl = flip_columns(states.narrow(3, h, h))
            .pad([(1, 0), (0, 0), (0, 0)], PadMode::Constant(0.0))
            .narrow(1, 0, height);
        input + self.residual.forward_channels_last(lr + rl)
    }
}

/// An unmasked 1×1 convolution on a channels-last map: one matrix product per pixel.
///
/// # Shapes
/// - input: `[N, H, W, in]`
/// - output: `[N, H, W, out]`
fn pointwise_channels_last(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let [n, h, w, c_in] = input.dims();
    let [c_out, ..] = conv.weight.dims();
    let weight = conv.weight.val().reshape([c_out, c_in]).transpose();
    let pixels = input.reshape([n * h * w, c_in]);
    let output = match &conv.bias {
        Some(bias) => genmodels_kernels::linear(pixels, weight, bias.val()),
        None => pixels.matmul(weight),
    };
    output.reshape([n, h, w, c_out])
}

/// PixelRNN's Diagonal BiLSTM: `p(x) = Π_i p(x_i | x_<i)` over sub-pixels in raster order
/// (R → G → B within a pixel), every conditional computed from the whole past by diagonal
/// LSTMs in both directions.
///
/// A `k×k` (7×7) mask-A convolution to `2h` features, `layers` residual
/// [`DiagonalBiLstmLayer`]s, and the head ReLU → 1×1 mask-B `2h → 2h` → ReLU → 1×1 mask-B `2h → C·K`.
#[derive(Module, Debug)]
pub struct DiagonalBiLstm {
    input: MaskedConv2d,
    layers: Vec<DiagonalBiLstmLayer>,
    head_hidden: MaskedConv2d,
    head_out: MaskedConv2d,
    #[module(skip)]
    config: DiagonalBiLstmConfig,
}

impl DiagonalBiLstm {
    /// The logits of every sub-pixel's conditional distribution given the sub-pixels before
    /// it.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    /// - output: `[N, C·K, H, W]` with `K` logits per channel, channel `c` at `c·K..(c+1)·K`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        self.head_out
            .forward_channels_last(self.head_hidden_channels_last(images))
            .permute([0, 3, 1, 2])
    }

    /// `ReLU(head_hidden(ReLU(last layer)))`, channels last, `[N, H, W, 2h]`.
    fn head_hidden_channels_last(&self, images: Tensor<4>) -> Tensor<4> {
        let last = relu(self.last_layer(images));
        relu(self.head_hidden.forward_channels_last(last))
    }

    /// The last layer's output, channels last, `[N, H, W, 2h]`. From the input convolution
    /// to the head every layer works channels last: no layout changes between them (and on
    /// wgpu, an input convolution's output permuted to `[N, C, H, W]` and back into the next
    /// 1×1 convolution gave other values for every image after the first of a batch; found
    /// with burn 0.22.1 on lavapipe, not reproduced with the same operations outside the
    /// model).
    fn last_layer(&self, images: Tensor<4>) -> Tensor<4> {
        let x = self
            .input
            .forward_channels_last(images.permute([0, 2, 3, 1]));
        self.layers
            .iter()
            .fold(x, |x, layer| layer.forward_channels_last(x))
    }

    /// The head on the sampler's `[N, 2h, 1, 1]` pixel stacks.
    fn head(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.head_hidden.forward(relu(x));
        self.head_out.forward(relu(x))
    }

    /// The state-carrying conditionals for a batch of `n` images (see
    /// [`DiagonalBiLstmConditionals`]).
    pub fn conditionals(&self, n: usize) -> DiagonalBiLstmConditionals<'_> {
        DiagonalBiLstmConditionals::new(self, n)
    }
}

impl IncrementalSampling for DiagonalBiLstm {
    fn incremental_conditionals(
        &self,
        n: usize,
        _labels: Option<Tensor<1, Int>>,
        _device: &Device,
    ) -> impl Conditionals + '_ {
        self.conditionals(n)
    }
}

impl RasterModel for DiagonalBiLstm {
    const DISPLAY_NAME: &'static str = "Diagonal BiLSTM";

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
        self.head_hidden_channels_last(images).permute([0, 3, 1, 2])
    }

    fn read_out(&self, hidden: Tensor<4>) -> Tensor<4> {
        self.head_out.forward(hidden)
    }
}

/// `K^ss` at one pixel: `[h_above, h_left] · K`, as the layer's column loop computes it.
///
/// # Shapes
/// - above, left: `[N, h, 1, 1]`
/// - weight: `[2h, 4h]`
/// - output: `[N, 4h, 1, 1]`
fn recurrent(above: Tensor<4>, left: Tensor<4>, weight: &Tensor<2>) -> Tensor<4> {
    let [n, h, _, _] = above.dims();
    Tensor::cat(vec![above, left], 1)
        .reshape([n, 2 * h])
        .matmul(weight.clone())
        .reshape([n, 4 * h, 1, 1])
}

/// What one pixel contributes to every layer, and its logits.
struct PixelStack {
    /// Per layer: its input at the pixel `[N, 2h, 1, 1]`, and the left-to-right `(h, c)`
    /// there, `[N, h, 1, 1]` each.
    layers: Vec<(Tensor<4>, Tensor<4>, Tensor<4>)>,
    /// `[N, C·K, 1, 1]`.
    logits: Tensor<4>,
}

/// One layer's carried state while sampling row `y`.
struct LayerState {
    /// The layer's input at the committed pixels of row `y`, `[N, 2h, 1, 1]` each.
    row_inputs: Vec<Tensor<4>>,
    /// Left-to-right `h` at the committed pixels of row `y`.
    row_lr: Vec<Tensor<4>>,
    /// Left-to-right `c` at the last committed pixel of row `y` (zero at the row start).
    left_cell: Tensor<4>,
    /// Left-to-right `h` of row `y − 1`, `W` entries (zero for `y = 0`).
    above_lr: Vec<Tensor<4>>,
    /// Right-to-left `h` of row `y − 1`, `W` entries (zero for `y = 0`): the shifted
    /// right-to-left output at row `y`.
    above_rl: Vec<Tensor<4>>,
    /// This layer's left-to-right `K^ss`, `[2h, 4h]`.
    state_to_state_lr: Tensor<2>,
    /// This layer's right-to-left `K^ss`, `[2h, 4h]`.
    state_to_state_rl: Tensor<2>,
}

/// The Diagonal BiLSTM's conditionals, one sub-pixel at a time, carrying the LSTM states
/// through the image ("row by row, carrying the state", §3.2).
///
/// The left-to-right state at `(y, x)` depends only on the states at `(y, x − 1)` and
/// `(y − 1, x)` and on the layer input at `(y, x)`, so it advances pixel by pixel. The
/// right-to-left states of row `y` feed only row `y + 1`, so they are computed once, when row
/// `y` is complete. A new pixel costs the first layer's convolution over its window, one
/// left-to-right step, residual and the head per layer; a completed row one right-to-left
/// pass per layer. Every other activation is reused.
///
/// The logits equal those of [`DiagonalBiLstm::forward`] up to float rounding.
pub struct DiagonalBiLstmConditionals<'a> {
    model: &'a DiagonalBiLstm,
    n: usize,
    device: Device,
    layers: Vec<LayerState>,
    /// Pixels (raster index) whose states are final.
    committed: usize,
    /// The last pixel computed for [`Conditionals::logits_at`], with the channel asked.
    pending: Option<(usize, usize, PixelStack)>,
}

impl<'a> DiagonalBiLstmConditionals<'a> {
    /// Fresh conditionals of `model` for `n` images.
    pub fn new(model: &'a DiagonalBiLstm, n: usize) -> Self {
        let device = module_device(model);
        let h = model.config.hidden;
        let width = model.config.image_shape.width;
        let zeros = Tensor::<4>::zeros([n, h, 1, 1], &device);
        let layers = model
            .layers
            .iter()
            .map(|layer| {
                let weight = layer.state_to_state.val();
                LayerState {
                    row_inputs: Vec::with_capacity(width),
                    row_lr: Vec::with_capacity(width),
                    left_cell: zeros.clone(),
                    above_lr: vec![zeros.clone(); width],
                    above_rl: vec![zeros.clone(); width],
                    state_to_state_lr: weight.clone().narrow(0, 0, 1).reshape([2 * h, 4 * h]),
                    state_to_state_rl: weight.narrow(0, 1, 1).reshape([2 * h, 4 * h]),
                }
            })
            .collect();
        Self {
            model,
            n,
            device,
            layers,
            committed: 0,
            pending: None,
        }
    }

    fn shape(&self) -> ImageShape {
        self.model.config.image_shape
    }

    /// The first layer's input at `(y, x)`: the mask-A convolution over the `(k/2 + 1) × k`
    /// window of rows `y − k/2 ..= y` centred on column `x`, with everything right of `x` on
    /// row `y` zeroed (the mask ignores it anyway).
    fn first_input(&self, pixels: &[f32], y: usize, x: usize) -> Tensor<4> {
        let shape = self.shape();
        let (c, h, w) = (shape.channels, shape.height, shape.width);
        let k = self.model.config.input_kernel;
        let half = k / 2;
        let mut window = vec![0f32; self.n * c * (half + 1) * k];
        let mut at = 0;
        for i in 0..self.n {
            for channel in 0..c {
                for wy in 0..=half {
                    for wx in 0..k {
                        let (py, px) = ((y + wy).checked_sub(half), (x + wx).checked_sub(half));
                        if let (Some(py), Some(px)) = (py, px)
                            && px < w
                            && (py < y || px <= x)
                        {
                            window[at] = pixels[((i * c + channel) * h + py) * w + px];
                        }
                        at += 1;
                    }
                }
            }
        }
        let window = Tensor::<4>::from_data(
            TensorData::new(window, [self.n, c, half + 1, k]),
            &self.device,
        );
        let features = self.model.input.forward(window);
        let channels = features.dims()[1];
        features.slice([0..self.n, 0..channels, half..half + 1, half..half + 1])
    }

    /// Every layer at pixel `(y, x)`, given final states for all pixels before it.
    fn pixel_stack(&self, pixels: &[f32], y: usize, x: usize) -> PixelStack {
        let colours = self.shape().channels;
        let mut input = self.first_input(pixels, y, x);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, state) in self.model.layers.iter().zip(&self.layers) {
            let left = match x {
                0 => state.left_cell.zeros_like(),
                _ => state.row_lr[x - 1].clone(),
            };
            let pre = layer.input_to_state_lr.forward(input.clone())
                + recurrent(state.above_lr[x].clone(), left, &state.state_to_state_lr);
            let (hidden, cell) = lstm_update(pre, state.left_cell.clone(), colours);
            let output = hidden.clone() + state.above_rl[x].clone();
            let next = input.clone() + layer.residual.forward(output);
            layers.push((input, hidden, cell));
            input = next;
        }
        PixelStack {
            layers,
            logits: self.model.head(input),
        }
    }

    /// Makes pixel `index` final: records its states, and when it ends a row, runs every
    /// layer's right-to-left LSTM over that row.
    fn commit(&mut self, pixels: &[f32], index: usize) {
        let shape = self.shape();
        let (y, x) = (index / shape.width, index % shape.width);
        // The stack at a pixel never depends on the pixel's last channel (mask A, then mask B
        // everywhere), so the one computed for that channel is already final.
        let stack = match self.pending.take() {
            Some((at, channel, stack)) if at == index && channel + 1 == shape.channels => stack,
            _ => self.pixel_stack(pixels, y, x),
        };
        for (state, (input, hidden, cell)) in self.layers.iter_mut().zip(stack.layers) {
            state.row_inputs.push(input);
            state.row_lr.push(hidden);
            state.left_cell = cell;
        }
        if x + 1 == shape.width {
            self.finish_row();
        }
        self.committed = index + 1;
    }

    /// Runs the right-to-left LSTM of every layer over the completed row and moves on.
    fn finish_row(&mut self) {
        let colours = self.shape().channels;
        for (layer, state) in self.model.layers.iter().zip(&mut self.layers) {
            let zeros = state.left_cell.zeros_like();
            let inputs = Tensor::cat(std::mem::take(&mut state.row_inputs), 3);
            let pre = layer.input_to_state_rl.forward(inputs).split(1, 3);
            let (mut hidden, mut cell) = (zeros.clone(), zeros.clone());
            let mut row_rl = vec![zeros.clone(); pre.len()];
            for (x, pre) in pre.into_iter().enumerate().rev() {
                // In the flipped map the right neighbour is the left one.
                let pre =
                    pre + recurrent(state.above_rl[x].clone(), hidden, &state.state_to_state_rl);
                (hidden, cell) = lstm_update(pre, cell, colours);
                row_rl[x] = hidden.clone();
            }
            state.above_rl = row_rl;
            state.above_lr = std::mem::take(&mut state.row_lr);
            state.left_cell = zeros;
        }
    }
}

impl Conditionals for DiagonalBiLstmConditionals<'_> {
    fn logits_at(
        &mut self,
        pixels: &[f32],
        channel: usize,
        y: usize,
        x: usize,
    ) -> Result<Vec<f32>> {
        let shape = self.shape();
        if pixels.len() != self.n * shape.dims() {
            return Err(GenError::shape(
                "pixels of the batch being sampled",
                self.n * shape.dims(),
                pixels.len(),
            ));
        }
        let index = y * shape.width + x;
        if index < self.committed
            || channel >= shape.channels
            || y >= shape.height
            || x >= shape.width
        {
            return Err(GenError::InvalidConfig(format!(
                "Diagonal BiLSTM conditionals asked for (c{channel}, {y}, {x}) out of raster \
                 order or outside the image"
            )));
        }
        while self.committed < index {
            self.commit(pixels, self.committed);
        }
        let stack = self.pixel_stack(pixels, y, x);
        let k = self.model.config.distribution.logits_per_channel();
        let logits = to_host(stack.logits.clone().narrow(1, channel * k, k))?;
        self.pending = Some((index, channel, stack));
        Ok(logits)
    }
}

raster::raster_generative_model!(DiagonalBiLstm, DiagonalBiLstmConfig);

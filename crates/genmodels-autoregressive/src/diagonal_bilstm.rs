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
//! output is shifted down one row before the two are added. Together every conditional sees
//! every pixel of the rows above and every pixel to its left: no blind spot.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_core::{
    GenError, GenerativeModel, ImageBatch, ImageShape, LikelihoodOptions, LogLikelihood, Loss,
    ModelConfig, Result,
    batch::to_host,
    model::{module_device, require_samples},
};

use crate::gates::lstm_update;
use crate::masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig};
use crate::pixel::PixelDistribution;
use crate::raster::{self, Conditionals, NaiveConditionals, RasterModel};

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
    /// multiple of the colour channels.
    #[config(default = 16)]
    pub hidden: usize,
    /// Diagonal BiLSTM layers (at least 1).
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
        self.distribution.validate()?;
        let colours = self.image_shape.channels;
        if self.image_shape.dims() == 0 {
            return Err(GenError::InvalidConfig(
                "the image shape has no pixels".into(),
            ));
        }
        if self.hidden == 0 || !self.hidden.is_multiple_of(colours) {
            return Err(GenError::InvalidConfig(format!(
                "hidden = {} must be a positive multiple of the {colours} colour channels",
                self.hidden
            )));
        }
        if self.layers == 0 {
            return Err(GenError::InvalidConfig(
                "a Diagonal BiLSTM needs at least one layer".into(),
            ));
        }
        if self.input_kernel.is_multiple_of(2) {
            return Err(GenError::InvalidConfig(format!(
                "the input kernel must be odd, got {}",
                self.input_kernel
            )));
        }
        let h = self.hidden;
        let masked = |c_in, c_out, k, mask| {
            MaskedConv2dConfig::new([c_in, c_out], k, mask)
                .with_colour_groups(colours)
                .init(device)
        };
        let out = colours * self.distribution.logits_per_channel();
        Ok(DiagonalBiLstm {
            input: masked(colours, 2 * h, self.input_kernel, MaskType::A),
            layers: (0..self.layers)
                .map(|_| DiagonalBiLstmLayer {
                    input_to_state_lr: masked(2 * h, 4 * h, 1, MaskType::B),
                    input_to_state_rl: Conv2dConfig::new([2 * h, 4 * h], [1, 1]).init(device),
                    state_to_state: Conv2dConfig::new([2 * h, 8 * h], [2, 1])
                        .with_groups(2)
                        .with_bias(false)
                        .init(device),
                    residual: masked(h, 2 * h, 1, MaskType::B),
                    hidden: h,
                    colour_groups: colours,
                })
                .collect(),
            head_hidden: masked(2 * h, 2 * h, 1, MaskType::B),
            head_out: masked(2 * h, out, 1, MaskType::B),
            config: self.clone(),
        })
    }
}

/// Skews a feature map: row `i` shifted right by `i`, so that pixel `(i, j)` lands in column
/// `i + j` and each of the paper's diagonals, `i + j = const`, becomes a column. The new
/// positions are zeros.
///
/// Padding every row to `W + H` and reading the flat buffer back with rows of `W + H − 1`
/// shifts row `i` by exactly `i`, without a loop over rows.
///
/// # Shapes
/// - input: `[N, C, H, W]`
/// - output: `[N, C, H, W + H − 1]`
pub fn skew(input: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = input.dims();
    let skewed_width = w + h - 1;
    input
        .pad([(0, 0), (0, h)], PadMode::Constant(0.0))
        .reshape([n, c, h * (w + h)])
        .narrow(2, 0, h * skewed_width)
        .reshape([n, c, h, skewed_width])
}

/// Undoes [`skew`]: output `(i, x)` is input `(i, i + x)`.
///
/// # Shapes
/// - input: `[N, C, H, S]` with `S ≥ H`
/// - output: `[N, C, H, S − H + 1]`
pub fn unskew(input: Tensor<4>) -> Tensor<4> {
    let [n, c, h, skewed_width] = input.dims();
    let w = skewed_width + 1 - h;
    input
        .reshape([n, c, h * skewed_width])
        .pad([(0, h)], PadMode::Constant(0.0))
        .reshape([n, c, h, skewed_width + 1])
        .narrow(3, 0, w)
}

/// One Diagonal BiLSTM layer with its residual connection.
///
/// Both directions share one column loop: their pre-activations and states are concatenated
/// along channels (left-to-right first) and the state-to-state convolution is grouped, so each
/// column costs one convolution and one LSTM update for both.
#[derive(Module, Debug)]
pub struct DiagonalBiLstmLayer {
    /// `K^is` of the left-to-right LSTM: 1×1, mask B, `2h → 4h`. Its state at `(y, x)` feeds
    /// the conditional at `(y, x)`, so colour `g`'s gates may see only colours `≤ g` of the
    /// input there.
    input_to_state_lr: MaskedConv2d,
    /// `K^is` of the right-to-left LSTM: an unmasked 1×1 `2h → 4h`. Its state at `(y, x)` is
    /// used only from row `y + 1` on, where all of pixel `(y, x)` is in the past.
    input_to_state_rl: Conv2d,
    /// `K^ss` of both directions: a `2×1` kernel over the previous column's `h`, grouped
    /// (`h → 4h` per direction), no bias (`K^is` has one).
    state_to_state: Conv2d,
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
        let [n, _, height, width] = input.dims();
        let h = self.hidden;
        let device = input.device();
        // 1×1 convolutions commute with skewing and flipping: compute them on the plain map.
        let pre_lr = self.input_to_state_lr.forward(input.clone());
        let pre_rl = self.input_to_state_rl.forward(input.clone()).flip([3]);
        let columns = skew(Tensor::cat(vec![pre_lr, pre_rl], 1)).split(1, 3);

        let weight = self.state_to_state.weight.val();
        // Skewed row r of column j reads rows r − 1 and r of column j − 1: the pixels above
        // and to the left of it in the image. Left of the image (skewed rows r > j) the
        // pre-activations stay exactly zero, because K^is's bias is added before skewing and
        // K^ss has none, and an LSTM step from zero pre-activations and a zero cell gives
        // h = c = 0: the state left of every row is zero, as above the first.
        let options = ConvOptions::new_with_padding([1, 1], [(1, 0), (0, 0)], [1, 1], 2);
        let mut state = Tensor::<4>::zeros([n, 2 * h, height, 1], &device);
        let mut cell = state.clone();
        let mut states = Vec::with_capacity(columns.len());
        for column in columns {
            let pre = column + conv2d(state, weight.clone(), None, options.clone());
            (state, cell) = lstm_update(pre, cell, 2 * self.colour_groups);
            states.push(state.clone());
        }
        let states = unskew(Tensor::cat(states, 3));
        let lr = states.clone().narrow(1, 0, h);
        // Right to left was computed on the flipped map; flip back, then shift down one row so
        // that row y sees only rows above it.
        let rl = states
            .narrow(1, h, h)
            .flip([3])
            .pad([(1, 0), (0, 0)], PadMode::Constant(0.0))
            .narrow(2, 0, height);
        debug_assert_eq!(rl.dims(), [n, h, height, width]);
        input + self.residual.forward(lr + rl)
    }
}

/// PixelRNN's Diagonal BiLSTM: `p(x) = Π_i p(x_i | x_<i)` over sub-pixels in raster order
/// (R → G → B within a pixel), every conditional computed from the whole past by diagonal
/// LSTMs in both directions.
///
/// A 7×7 mask-A convolution to `2h` features, `layers` residual [`DiagonalBiLstmLayer`]s, and
/// the head ReLU → 1×1 mask-B `2h → 2h` → ReLU → 1×1 mask-B `2h → C·K`.
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
        let x = self.input.forward(images);
        let x = self.layers.iter().fold(x, |x, layer| layer.forward(x));
        self.head(x)
    }

    fn head(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.head_hidden.forward(relu(x));
        self.head_out.forward(relu(x))
    }

    /// Per-image `−log p(x)` in nats: an anomaly score (higher is less likely).
    ///
    /// # Errors
    /// As [`GenerativeModel::log_likelihood`].
    pub fn anomaly_scores(&self, batch: &ImageBatch) -> Result<Vec<f64>> {
        raster::anomaly_scores(self, batch)
    }

    /// The state-carrying conditionals for a batch of `n` images (see
    /// [`DiagonalBiLstmConditionals`]).
    pub fn conditionals(&self, n: usize) -> DiagonalBiLstmConditionals<'_> {
        DiagonalBiLstmConditionals::new(self, n)
    }

    /// Samples by running the whole network once per sub-pixel (`C·H·W` passes): the
    /// reference for [`GenerativeModel::sample`], which gives the same images.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `n = 0`; backend errors reading logits back.
    pub fn sample_naive(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let dims = self.config.image_shape.dims();
        let device = module_device(self);
        let mut conditionals = NaiveConditionals::new(self, None, device.clone());
        raster::fill_in_raster_order(
            self.config.image_shape,
            self.config.distribution,
            &mut conditionals,
            vec![0.0; n * dims],
            &vec![false; n * dims],
            seed,
            &device,
        )
    }

    /// Completes images: keeps every sub-pixel where `observed` is true and samples the others
    /// in raster order, each given every sub-pixel before it (observed or already sampled),
    /// carrying the LSTM states as [`GenerativeModel::sample`] does.
    ///
    /// The completion is an exact sample from `p(unobserved | observed)` when every observed
    /// sub-pixel comes before every unobserved one ("given the top rows, complete the
    /// bottom"); observed sub-pixels after the first unobserved one are kept, but what was
    /// sampled before them did not take them into account.
    ///
    /// `observed` is one flag per sub-pixel of the batch, laid out like the images
    /// (`[N, C, H, W]` row-major). With nothing observed this gives the images of
    /// [`GenerativeModel::sample`] with the same seed.
    ///
    /// # Errors
    /// Input errors as for [`GenerativeModel::log_likelihood`];
    /// [`GenError::ShapeMismatch`] when `observed` has the wrong length.
    pub fn complete(&self, batch: &ImageBatch, observed: &[bool], seed: u64) -> Result<Tensor<4>> {
        let (pixels, _) = raster::completion_input(self, batch)?;
        let mut conditionals = self.conditionals(batch.len());
        raster::fill_in_raster_order(
            self.config.image_shape,
            self.config.distribution,
            &mut conditionals,
            pixels,
            observed,
            seed,
            &module_device(self),
        )
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
}

impl GenerativeModel for DiagonalBiLstm {
    type Config = DiagonalBiLstmConfig;

    fn config(&self) -> &DiagonalBiLstmConfig {
        &self.config
    }

    fn image_shape(&self) -> ImageShape {
        self.config.image_shape
    }

    /// `−log p(x)` averaged over the batch, in nats per image.
    fn loss(&self, batch: &ImageBatch) -> Result<Loss> {
        raster::loss(self, batch)
    }

    /// The exact `log p(x)`, in one forward pass.
    fn log_likelihood(&self, batch: &ImageBatch, _: &LikelihoodOptions) -> Result<LogLikelihood> {
        raster::log_likelihood(self, batch)
    }

    /// Draws `n` images pixel by pixel, carrying the LSTM states
    /// ([`DiagonalBiLstmConditionals`]); the same images as
    /// [`DiagonalBiLstm::sample_naive`].
    fn sample(&self, n: usize, seed: u64) -> Result<Tensor<4>> {
        require_samples(n)?;
        let dims = self.config.image_shape.dims();
        let mut conditionals = self.conditionals(n);
        raster::fill_in_raster_order(
            self.config.image_shape,
            self.config.distribution,
            &mut conditionals,
            vec![0.0; n * dims],
            &vec![false; n * dims],
            seed,
            &module_device(self),
        )
    }
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
    /// This layer's left-to-right `K^ss`, `[4h, h, 2, 1]`.
    state_to_state_lr: Tensor<4>,
    /// This layer's right-to-left `K^ss`, `[4h, h, 2, 1]`.
    state_to_state_rl: Tensor<4>,
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
                let weight = layer.state_to_state.weight.val();
                LayerState {
                    row_inputs: Vec::with_capacity(width),
                    row_lr: Vec::with_capacity(width),
                    left_cell: zeros.clone(),
                    above_lr: vec![zeros.clone(); width],
                    above_rl: vec![zeros.clone(); width],
                    state_to_state_lr: weight.clone().narrow(0, 0, 4 * h),
                    state_to_state_rl: weight.narrow(0, 4 * h, 4 * h),
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
        let valid = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let mut input = self.first_input(pixels, y, x);
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, state) in self.model.layers.iter().zip(&self.layers) {
            let left = match x {
                0 => state.left_cell.zeros_like(),
                _ => state.row_lr[x - 1].clone(),
            };
            // [above; left] against the 2×1 kernel's rows, as in the skewed column.
            let neighbours = Tensor::cat(vec![state.above_lr[x].clone(), left], 2);
            let pre = layer.input_to_state_lr.forward(input.clone())
                + conv2d(
                    neighbours,
                    state.state_to_state_lr.clone(),
                    None,
                    valid.clone(),
                );
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
        let valid = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        for (layer, state) in self.model.layers.iter().zip(&mut self.layers) {
            let zeros = state.left_cell.zeros_like();
            let inputs = Tensor::cat(std::mem::take(&mut state.row_inputs), 3);
            let pre = layer.input_to_state_rl.forward(inputs).split(1, 3);
            let (mut hidden, mut cell) = (zeros.clone(), zeros.clone());
            let mut row_rl = vec![zeros.clone(); pre.len()];
            for (x, pre) in pre.into_iter().enumerate().rev() {
                // In the flipped map the right neighbour is the left one.
                let neighbours = Tensor::cat(vec![state.above_rl[x].clone(), hidden], 2);
                let pre = pre
                    + conv2d(
                        neighbours,
                        state.state_to_state_rl.clone(),
                        None,
                        valid.clone(),
                    );
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

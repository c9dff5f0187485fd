//! Cached sampling (Ramachandran et al. 2017, "Fast Generation for Convolutional
//! Autoregressive Models").
//!
//! A naive sampler runs the whole network over the whole image for every sub-pixel, although a
//! new pixel changes only the activations after it. The cached samplers keep every layer's
//! activations and, per pixel, compute each layer's output at that one position from a cached
//! window of its input: the finished rows above (one tensor per row) and the positions to the
//! left in the current row. A masked convolution evaluated at one position is a matrix
//! product of its flattened causal window with the flattened kernel, so a pixel costs a few
//! small batched matrix products per layer instead of a pass over the image.
//!
//! [`CachedConditionals`] drives an [`IncrementalNet`] through the raster order, catching up
//! over positions the caller skips; [`PixelCnnCache`] is the PixelCNN's incremental form (the
//! Gated PixelCNN's is in [`gated_pixelcnn`](crate::gated_pixelcnn)).

use std::collections::VecDeque;

use burn::tensor::{Device, Tensor, TensorData};
use genmodels_core::{ImageShape, Result, batch::to_host};
use genmodels_kernels::relu;

use crate::masked_conv::MaskedConv2d;
use crate::pixelcnn::PixelCnn;
use crate::raster::Conditionals;

/// The causal window of a kernel flattened into a matrix: the first `rows_above` kernel rows
/// in full, then the last row up to and including column `centre_col` (the centre), each
/// position's input channels contiguous. Multiplying a window laid out the same way (see
/// [`RowWindows::window`] and [`image_window`]) gives the convolution at the window's centre.
///
/// # Shapes
/// - weight: `[out, in, rows_above + 1, kw]` (masked already where the layer masks)
/// - output: `[(rows_above · kw + centre_col + 1) · in, out]`
pub(crate) fn window_matrix(weight: Tensor<4>, rows_above: usize, centre_col: usize) -> Tensor<2> {
    let [c_out, c_in, _, kw] = weight.dims();
    // [kh, kw, in, out]: row-major over the window, channels innermost.
    let taps = weight.permute([2, 3, 1, 0]);
    let current_row = taps
        .clone()
        .slice([
            rows_above..rows_above + 1,
            0..centre_col + 1,
            0..c_in,
            0..c_out,
        ])
        .reshape([(centre_col + 1) * c_in, c_out]);
    if rows_above == 0 {
        return current_row;
    }
    let above = taps
        .slice([0..rows_above, 0..kw, 0..c_in, 0..c_out])
        .reshape([rows_above * kw * c_in, c_out]);
    Tensor::cat(vec![above, current_row], 0)
}

/// `x ↦ x·W + b` with `W` a flattened (causal window of a) convolution kernel.
#[derive(Clone, Debug)]
pub(crate) struct Affine {
    weight: Tensor<2>,
    bias: Option<Tensor<2>>,
}

impl Affine {
    /// From a kernel and bias as [`window_matrix`] flattens it.
    pub(crate) fn new(
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        rows_above: usize,
        centre_col: usize,
    ) -> Self {
        Self {
            weight: window_matrix(weight, rows_above, centre_col),
            bias: bias.map(|b| b.unsqueeze_dim(0)),
        }
    }

    /// The causal window of a square masked convolution (`k/2` rows above, centre `k/2`).
    pub(crate) fn from_masked(conv: &MaskedConv2d) -> Self {
        let (weight, bias) = conv.masked_weight_and_bias();
        let half = weight.dims()[3] / 2;
        Self::new(weight, bias, half, half)
    }

    /// Reorders the output columns with `f` applied to both the weight and the bias.
    pub(crate) fn map_columns(self, f: impl Fn(Tensor<2>) -> Tensor<2>) -> Self {
        Self {
            weight: f(self.weight),
            bias: self.bias.map(f),
        }
    }

    /// # Shapes
    /// - input: `[N, in]`
    /// - output: `[N, out]`
    pub(crate) fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let output = input.matmul(self.weight.clone());
        match &self.bias {
            Some(bias) => output + bias.clone(),
            None => output,
        }
    }
}

/// The cached input of one convolution whose input is produced one position at a time: the
/// last `rows_above` finished rows, zero-padded left and right so that every window is a plain
/// slice, and the positions of the current row computed so far.
pub(crate) struct RowWindows {
    above: VecDeque<Tensor<3>>,
    current: Vec<Option<Tensor<2>>>,
    zero: Tensor<2>,
    kw: usize,
    centre_col: usize,
}

impl RowWindows {
    /// A cache for `n` images `width` wide with `channels` input channels, for a kernel with
    /// `rows_above` full rows `kw` wide and its centre at column `centre_col`.
    pub(crate) fn new(
        n: usize,
        width: usize,
        channels: usize,
        rows_above: usize,
        kw: usize,
        centre_col: usize,
        device: &Device,
    ) -> Self {
        let padded = Tensor::zeros([n, width + kw - 1, channels], device);
        Self {
            above: (0..rows_above).map(|_| padded.clone()).collect(),
            current: vec![None; width],
            zero: Tensor::zeros([n, channels], device),
            kw,
            centre_col,
        }
    }

    /// Stores the input at column `x` of the current row.
    pub(crate) fn set(&mut self, x: usize, input: Tensor<2>) {
        self.current[x] = Some(input);
    }

    /// The flattened causal window around column `x` of the current row whose centre input
    /// is `centre`.
    ///
    /// # Shapes
    /// - centre: `[N, in]`
    /// - output: `[N, (rows_above · kw + centre_col + 1) · in]`
    pub(crate) fn window(&self, x: usize, centre: Tensor<2>) -> Tensor<2> {
        let [n, channels] = centre.dims();
        let mut pieces: Vec<Tensor<2>> = self
            .above
            .iter()
            .map(|row| {
                row.clone()
                    .slice([0..n, x..x + self.kw, 0..channels])
                    .reshape([n, self.kw * channels])
            })
            .collect();
        for left in (1..=self.centre_col).rev() {
            let input = x
                .checked_sub(left)
                .and_then(|column| self.current[column].clone());
            pieces.push(input.unwrap_or_else(|| self.zero.clone()));
        }
        pieces.push(centre);
        Tensor::cat(pieces, 1)
    }

    /// Moves the finished current row into the rows above and starts an empty one.
    pub(crate) fn finish_row(&mut self) {
        if self.above.is_empty() {
            self.current.fill(None);
            return;
        }
        let [n, channels] = self.zero.dims();
        let device = self.zero.device();
        let row: Vec<Tensor<2>> = self
            .current
            .iter_mut()
            .map(|input| input.take().unwrap_or_else(|| self.zero.clone()))
            .collect();
        let mut pieces = vec![];
        if self.centre_col > 0 {
            pieces.push(Tensor::zeros([n, self.centre_col, channels], &device));
        }
        pieces.push(Tensor::stack(row, 1));
        let right = self.kw - 1 - self.centre_col;
        if right > 0 {
            pieces.push(Tensor::zeros([n, right, channels], &device));
        }
        self.above.pop_front();
        self.above.push_back(Tensor::cat(pieces, 1));
    }
}

/// The flattened causal window of the image itself around `(y, x)`, built on the host from
/// the pixels: `rows_above` rows `kw` wide, then the current row up to column `centre_col`
/// (the pixel itself), each position's channels contiguous, zeros outside the image.
///
/// # Shapes
/// - pixels: `[N, C, H, W]` row-major
/// - output: `[N, (rows_above · kw + centre_col + 1) · C]`
pub(crate) fn image_window(
    pixels: &[f32],
    shape: ImageShape,
    (y, x): (usize, usize),
    (rows_above, kw, centre_col): (usize, usize, usize),
    device: &Device,
) -> Tensor<2> {
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let n = pixels.len() / shape.dims();
    let width = (rows_above * kw + centre_col + 1) * c;
    let mut window = Vec::with_capacity(n * width);
    let taps = (0..rows_above)
        .flat_map(|r| (0..kw).map(move |j| (r, j)))
        .chain((0..=centre_col).map(|j| (rows_above, j)));
    let taps: Vec<(usize, usize)> = taps.collect();
    for image in pixels.chunks(shape.dims()) {
        for &(r, j) in &taps {
            let row = (y + r).checked_sub(rows_above);
            let column = (x + j).checked_sub(centre_col).filter(|&col| col < w);
            for channel in 0..c {
                window.push(match (row, column) {
                    (Some(row), Some(col)) if row < h => image[(channel * h + row) * w + col],
                    _ => 0.0,
                });
            }
        }
    }
    Tensor::from_data(TensorData::new(window, [n, width]), device)
}

/// A network evaluated one position at a time, in raster order, from its cached activations.
pub(crate) trait IncrementalNet {
    /// Called before the first position of row `y`; every row above is final in `pixels`.
    fn begin_row(&mut self, pixels: &[f32], y: usize);

    /// Computes and caches every layer's activations at `(y, x)` from the cached activations
    /// before it and the current values of pixel `(y, x)`, and returns the logits there,
    /// `[N, C·K]`, when `logits` is set.
    fn column(&mut self, pixels: &[f32], y: usize, x: usize, logits: bool) -> Option<Tensor<2>>;
}

/// [`Conditionals`] from an [`IncrementalNet`]: one column per call, after catching up over
/// the positions the caller skipped.
///
/// The activations at a position depend on every earlier pixel and on the channels of the
/// pixel itself before the last one (colour masks keep the last channel out of every feature
/// at its own position), so a column computed when the last channel is asked for, or when
/// catching up, is final; one computed for an earlier channel is recomputed.
pub(crate) struct CachedConditionals<Net> {
    net: Net,
    shape: ImageShape,
    logits_per_channel: usize,
    /// Positions (in raster order) whose cached activations are final.
    final_positions: usize,
    row: Option<usize>,
}

impl<Net: IncrementalNet> CachedConditionals<Net> {
    /// Conditionals of `net` for images of `shape` with `logits_per_channel` logits per
    /// sub-pixel.
    pub(crate) fn new(net: Net, shape: ImageShape, logits_per_channel: usize) -> Self {
        Self {
            net,
            shape,
            logits_per_channel,
            final_positions: 0,
            row: None,
        }
    }

    fn column(&mut self, pixels: &[f32], y: usize, x: usize, logits: bool) -> Option<Tensor<2>> {
        if self.row != Some(y) {
            self.net.begin_row(pixels, y);
            self.row = Some(y);
        }
        self.net.column(pixels, y, x, logits)
    }
}

impl<Net: IncrementalNet> Conditionals for CachedConditionals<Net> {
    fn logits_at(
        &mut self,
        pixels: &[f32],
        channel: usize,
        y: usize,
        x: usize,
    ) -> Result<Vec<f32>> {
        let width = self.shape.width;
        let position = y * width + x;
        while self.final_positions < position {
            let skipped = self.final_positions;
            self.column(pixels, skipped / width, skipped % width, false);
            self.final_positions += 1;
        }
        let logits = self
            .column(pixels, y, x, true)
            .expect("a column asked for logits returns them");
        self.final_positions = if channel + 1 == self.shape.channels {
            position + 1
        } else {
            position
        };
        let k = self.logits_per_channel;
        let [n, _] = logits.dims();
        to_host(logits.slice([0..n, channel * k..(channel + 1) * k]))
    }
}

/// One residual block of a [`PixelCnn`], flattened for one position at a time.
struct CachedBlock {
    reduce: Affine,
    conv: Affine,
    expand: Affine,
    /// The input of the 3×3 convolution (`ReLU(reduce(ReLU(x)))`) at the positions computed.
    conv_inputs: RowWindows,
}

/// The incremental form of a [`PixelCnn`] for `N` images: the input convolution reads its
/// window straight from the pixels; each residual block caches the input of its 3×3
/// convolution (one row above and the current row); the 1×1 layers need nothing cached.
pub(crate) struct PixelCnnCache {
    shape: ImageShape,
    input: Affine,
    input_kernel: usize,
    blocks: Vec<CachedBlock>,
    head_hidden: Affine,
    head_out: Affine,
    device: Device,
}

impl PixelCnnCache {
    /// An empty cache of `model` for `n` images.
    pub(crate) fn new(model: &PixelCnn, n: usize, device: &Device) -> Self {
        let shape = model.config.image_shape;
        let blocks = model
            .blocks
            .iter()
            .map(|block| {
                let conv = Affine::from_masked(&block.conv);
                let (weight, _) = block.conv.masked_weight_and_bias();
                let [_, channels, k, _] = weight.dims();
                CachedBlock {
                    reduce: Affine::from_masked(&block.reduce),
                    conv,
                    expand: Affine::from_masked(&block.expand),
                    conv_inputs: RowWindows::new(n, shape.width, channels, k / 2, k, k / 2, device),
                }
            })
            .collect();
        Self {
            shape,
            input: Affine::from_masked(&model.input),
            input_kernel: model.config.input_kernel,
            blocks,
            head_hidden: Affine::from_masked(&model.head_hidden),
            head_out: Affine::from_masked(&model.head_out),
            device: device.clone(),
        }
    }
}

impl IncrementalNet for PixelCnnCache {
    fn begin_row(&mut self, _pixels: &[f32], y: usize) {
        if y > 0 {
            for block in &mut self.blocks {
                block.conv_inputs.finish_row();
            }
        }
    }

    fn column(&mut self, pixels: &[f32], y: usize, x: usize, logits: bool) -> Option<Tensor<2>> {
        let (k, half) = (self.input_kernel, self.input_kernel / 2);
        let window = image_window(pixels, self.shape, (y, x), (half, k, half), &self.device);
        let mut stream = self.input.forward(window);
        for block in &mut self.blocks {
            let reduced = relu(block.reduce.forward(relu(stream.clone())));
            block.conv_inputs.set(x, reduced.clone());
            let convolved = block.conv.forward(block.conv_inputs.window(x, reduced));
            stream = stream + block.expand.forward(relu(convolved));
        }
        logits.then(|| {
            self.head_out
                .forward(relu(self.head_hidden.forward(relu(stream))))
        })
    }
}

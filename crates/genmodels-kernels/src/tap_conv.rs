//! Stride-1 channels-last convolution over a chosen set of kernel taps: the kernel of
//! PixelCNN's masked convolutions, which compute only the taps their mask keeps.
//!
//! On flex with `f32` tensors, [`tap_conv`] runs its own forward and backward kernels (a
//! burn backend extension, see `TapConvBackend`); on every other backend, or another float
//! type, it composes burn's differentiable operations into the same function.

use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

/// Where the taps of a [`tap_conv`] sit, in a zero-padded copy of the input.
///
/// With `[top, bottom, left, right]` padding, output pixel `(y, x)` reads padded pixel
/// `(y + ky, x + kx)` for each tap `(ky, kx)`: a "same" 3×3 convolution has padding
/// `[1, 1, 1, 1]` and the nine taps `(0..3, 0..3)`; a causal one pads only above and to the
/// sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapGeometry {
    /// `(ky, kx)` per tap, in the order of the weight's row blocks.
    pub taps: Vec<[usize; 2]>,
    /// Zero padding `[top, bottom, left, right]`.
    pub padding: [usize; 4],
}

impl TapGeometry {
    /// Padded height and width for an `h × w` input.
    fn padded_size(&self, h: usize, w: usize) -> (usize, usize) {
        let [top, bottom, left, right] = self.padding;
        (h + top + bottom, w + left + right)
    }

    /// Panics unless every tap's window lies inside the padded input: a programming error in
    /// the calling layer, not a data error.
    fn check(&self, h: usize, w: usize) {
        let (padded_h, padded_w) = self.padded_size(h, w);
        assert!(!self.taps.is_empty(), "a tap convolution needs a tap");
        for &[ky, kx] in &self.taps {
            assert!(
                ky + h <= padded_h && kx + w <= padded_w,
                "tap ({ky}, {kx}) reaches outside the padded {padded_h}×{padded_w} input"
            );
        }
    }
}

/// Below this many input channels the composed form gathers the taps into one im2col matrix,
/// and flex does not use its own kernel: per-tap matrix products would have an inner
/// dimension too small for the matrix kernels. [`conv2d`] and [`conv_transpose2d`] apply the
/// same bound to their products' inner dimension, one kernel row of `s×s` blocks.
pub const PER_TAP_MIN_CHANNELS: usize = 8;

/// The inner dimension of the flex kernels' products for every position of a kernel `width`
/// wide, at `stride`, over `channels` input channels: a kernel row spans `⌈width/s⌉`
/// consecutive `s×s` blocks of `s²·channels` values each.
#[cfg(feature = "kernels")]
fn full_kernel_depth(width: usize, stride: usize, channels: usize) -> usize {
    width.div_ceil(stride) * stride * stride * channels
}

/// The sum over taps of each tap's shifted window times its block of the weight:
///
/// ```text
/// y[n, y, x, :] = Σ_t x̃[n, y + ky_t, x + kx_t, :] · W[t·in .. (t+1)·in, :]
/// ```
///
/// where `x̃` is the input zero-padded as `geometry` says. This is a stride-1 convolution
/// restricted to the given taps. Its backward pass is matrix products again, for the weight
/// and for the input, instead of burn's convolution backward (whose weight gradient is a
/// convolution with an `H×W` kernel).
///
/// On flex (`f32`, at least [`PER_TAP_MIN_CHANNELS`] input channels) the forward and
/// backward passes are `TapConvBackend`'s kernels: the padded input is one flat matrix whose
/// rows are pixels of the padded grid, so each tap's window is the same matrix shifted by
/// `ky·W̃ + kx` rows, and the taps of one kernel row, side by side, are one wider matrix with
/// overlapping rows: one product per run of adjacent taps, straight on the buffer with no
/// copy. Elsewhere, burn's operations compute the same function (tested to agree).
///
/// # Shapes
/// - input: `[N, H, W, in]`
/// - weight: `[T·in, out]` for `T` taps
/// - output: `[N, H, W, out]`
///
/// # Panics
/// If the weight's rows are not `T·in`, or a tap reaches outside the padded input.
pub fn tap_conv(input: Tensor<4>, weight: Tensor<2>, geometry: &TapGeometry) -> Tensor<4> {
    let [_, h, w, c_in] = input.dims();
    let [rows, _] = weight.dims();
    assert_eq!(
        rows,
        geometry.taps.len() * c_in,
        "tap convolution weight rows must be taps × input channels"
    );
    geometry.check(h, w);
    #[cfg(feature = "kernels")]
    if c_in >= PER_TAP_MIN_CHANNELS && flex_kernel::applies(&input, &weight) {
        let spec = ConvSpec::stride_one(geometry.clone(), [h, w]);
        return flex_kernel::conv(input, weight, spec);
    }
    tap_conv_composed(input, weight, geometry)
}

/// [`tap_conv`] from burn's differentiable operations, for every backend.
///
/// # Shapes
/// As [`tap_conv`].
pub fn tap_conv_composed(input: Tensor<4>, weight: Tensor<2>, geometry: &TapGeometry) -> Tensor<4> {
    let [n, h, w, c_in] = input.dims();
    let [_, c_out] = weight.dims();
    let taps = geometry.taps.len();
    let [top, bottom, left, right] = geometry.padding;
    let padded = input.pad(
        [(0, 0), (top, bottom), (left, right), (0, 0)],
        PadMode::Constant(0.0),
    );
    let window = |[ky, kx]: [usize; 2]| {
        padded
            .clone()
            .slice([0..n, ky..ky + h, kx..kx + w, 0..c_in])
    };
    if c_in < PER_TAP_MIN_CHANNELS {
        let windows = geometry.taps.iter().map(|&tap| window(tap)).collect();
        return Tensor::cat(windows, 3)
            .reshape([n * h * w, taps * c_in])
            .matmul(weight)
            .reshape([n, h, w, c_out]);
    }
    geometry
        .taps
        .iter()
        .enumerate()
        .map(|(t, &tap)| {
            let tap_weight = weight
                .clone()
                .slice([t * c_in..(t + 1) * c_in, 0..c_out])
                .reshape([1, 1, c_in, c_out]);
            // The window is a strided view: matmul reads it without a copy per tap.
            window(tap).matmul(tap_weight)
        })
        .reduce(|sum, term| sum + term)
        .expect("a tap convolution has at least one tap")
}

#[cfg(feature = "kernels")]
use flex_kernel::ConvSpec;

/// burn's `conv2d` (same arguments, same result) for symmetric padding and no dilation or
/// groups. On flex with `f32` tensors it runs the tap kernels, every kernel position a tap,
/// with the stride folded into the input's layout, unless their products would be less than
/// [`PER_TAP_MIN_CHANNELS`] deep (e.g. one input channel at stride 1); elsewhere it is burn's
/// `conv2d`.
///
/// # Shapes
/// - input: `[N, in, H, W]`
/// - weight: `[out, in, kh, kw]`
/// - bias: `[out]`
/// - output: `[N, out, H', W']`, `H' = (H + 2·p − kh)/s + 1`
pub fn conv2d(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    strided_conv2d(input, weight, bias, stride, [padding; 4])
}

/// burn's `conv2d` at stride 1 with any zero padding `[top, bottom, left, right]` (burn's
/// `ConvOptions::new_with_padding`) and no dilation or groups: the causal convolutions of the
/// Gated PixelCNN's stacks and the PixelRNNs' row convolutions, which pad on one side only.
/// On flex with `f32` tensors it runs the tap kernels, as [`conv2d`] does, when a kernel row
/// is at least [`PER_TAP_MIN_CHANNELS`] deep (`kw · in`); elsewhere it is burn's `conv2d`.
///
/// # Shapes
/// - input: `[N, in, H, W]`
/// - weight: `[out, in, kh, kw]`
/// - bias: `[out]`
/// - output: `[N, out, H + top + bottom − kh + 1, W + left + right − kw + 1]`
pub fn conv2d_padded(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    padding: [usize; 4],
) -> Tensor<4> {
    strided_conv2d(input, weight, bias, 1, padding)
}

/// [`conv2d`] with padding `[top, bottom, left, right]`: the body of [`conv2d`] and
/// [`conv2d_padded`].
fn strided_conv2d(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: [usize; 4],
) -> Tensor<4> {
    #[cfg(feature = "kernels")]
    if full_kernel_depth(weight.dims()[3], stride, input.dims()[1]) >= PER_TAP_MIN_CHANNELS
        && flex_kernel::applies(&input, &weight)
    {
        let [_, _, h, w] = input.dims();
        let spec = ConvSpec::full_kernel(&weight, stride, padding, [h, w]);
        let output = flex_kernel::conv(input, weight, spec);
        return add_bias(output, bias);
    }
    let [top, bottom, left, right] = padding;
    let options = burn::tensor::ops::ConvOptions::new_with_padding(
        [stride; 2],
        [(top, bottom), (left, right)],
        [1, 1],
        1,
    );
    burn::tensor::module::conv2d(input, weight, bias, options)
}

/// burn's `conv_transpose2d` (same arguments, same result) for symmetric padding and no
/// output padding, dilation or groups: the adjoint of [`conv2d`] with the same weight, run by
/// the tap kernels on flex as [`conv2d`] is.
///
/// # Shapes
/// - input: `[N, in, H, W]`
/// - weight: `[in, out, kh, kw]`
/// - bias: `[out]`
/// - output: `[N, out, H', W']`, `H' = (H − 1)·s − 2·p + kh`
pub fn conv_transpose2d(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    #[cfg(feature = "kernels")]
    if full_kernel_depth(weight.dims()[3], stride, weight.dims()[1]) >= PER_TAP_MIN_CHANNELS
        && flex_kernel::applies(&input, &weight)
    {
        let ([_, _, h, w], [_, _, kh, kw]) = (input.dims(), weight.dims());
        // The size of the input of the convolution this is the adjoint of.
        let big = [
            (h - 1) * stride + kh - 2 * padding,
            (w - 1) * stride + kw - 2 * padding,
        ];
        let spec = ConvSpec::full_kernel(&weight, stride, [padding; 4], big);
        let output = flex_kernel::conv_transpose(input, weight, spec);
        return add_bias(output, bias);
    }
    let options =
        burn::tensor::ops::ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1);
    burn::tensor::module::conv_transpose2d(input, weight, bias, options)
}

/// Adds a per-channel bias to `[N, C, H, W]`.
#[cfg(feature = "kernels")]
fn add_bias(output: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(bias) => crate::add_channel_bias(output, bias, 1),
        None => output,
    }
}

#[cfg(feature = "kernels")]
mod relayout;

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The flex kernels, and their autodiff nodes.

    use super::TapGeometry;
    use super::relayout::{planes_to_rows, rows_to_planes};
    use crate::product::{Operand, product, written_by};
    use crate::support::{
        Images, as_uninit_mut, flex_tensor, images, is_flex_f32, par_written, values,
    };
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::tensor::Tensor;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// A convolution for the kernels: its taps `(ky, kx)` in the zero-padded input
    /// (`[top, bottom, left, right]`), its stride, and the size of its (unpadded) input.
    /// Output pixel `(y, x)` reads padded pixel `(s·y + ky, s·x + kx)` for each tap.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ConvSpec {
        /// `(ky, kx)` per tap, in the order of the weight's row blocks.
        pub taps: Vec<[usize; 2]>,
        /// Zero padding `[top, bottom, left, right]`.
        pub padding: [usize; 4],
        /// Stride in both directions.
        pub stride: usize,
        /// Height and width of the input (for a transposed convolution, of its output).
        pub input_size: [usize; 2],
        /// Whether the tensors are laid out as burn's convolutions have them: input and
        /// output `[N, C, H, W]` and the weight `[out, in, kh, kw]` (`taps` then being every
        /// kernel position, row-major), rather than `[N, H, W, C]` and `[T·in, out]`.
        pub burn_layout: bool,
    }

    impl ConvSpec {
        pub(super) fn stride_one(geometry: TapGeometry, input_size: [usize; 2]) -> Self {
            Self {
                taps: geometry.taps,
                padding: geometry.padding,
                stride: 1,
                input_size,
                burn_layout: false,
            }
        }

        /// Every position of a `kh×kw` kernel (weight `[_, _, kh, kw]`), in row-major order, with
        /// padding `[top, bottom, left, right]`,
        /// for tensors in burn's layout.
        pub(super) fn full_kernel(
            weight: &Tensor<4>,
            stride: usize,
            padding: [usize; 4],
            input_size: [usize; 2],
        ) -> Self {
            let [_, _, kh, kw] = weight.dims();
            Self {
                taps: (0..kh)
                    .flat_map(|ky| (0..kw).map(move |kx| [ky, kx]))
                    .collect(),
                padding,
                stride,
                input_size,
                burn_layout: true,
            }
        }

        /// `[H', W']`: `(padded − 1 − max tap)/s + 1` in each direction.
        pub(super) fn output_size(&self) -> [usize; 2] {
            let [top, bottom, left, right] = self.padding;
            let [h, w] = self.input_size;
            let max_ky = self.taps.iter().map(|t| t[0]).max().unwrap_or(0);
            let max_kx = self.taps.iter().map(|t| t[1]).max().unwrap_or(0);
            [
                (h + top + bottom - 1 - max_ky) / self.stride + 1,
                (w + left + right - 1 - max_kx) / self.stride + 1,
            ]
        }
    }

    /// The tap convolution and its adjoint as backend operations with their own backward
    /// passes; implemented for flex and autodiff-over-flex. Called through
    /// [`super::tap_conv`], [`super::conv2d`] and [`super::conv_transpose2d`], which check
    /// the arguments and pick the backend.
    #[backend_extension(Flex, Autodiff)]
    pub trait TapConvBackend: Backend {
        /// `[N, H, W, in]`, `[T·in, out]` → `[N, H', W', out]` (or channels first, as `spec`
        /// says).
        fn tap_conv(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            spec: ConvSpec,
        ) -> FloatTensor<Self>;

        /// The adjoint: `[N, H', W', out]`, `[T·in, out]` → `[N, H, W, in]` (or channels
        /// first, as `spec` says).
        fn tap_conv_transpose(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            spec: ConvSpec,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies<const D: usize>(input: &Tensor<4>, weight: &Tensor<D>) -> bool {
        is_flex_f32(&input.device(), &[input.dtype(), weight.dtype()])
    }

    pub(super) fn conv<const D: usize>(
        input: Tensor<4>,
        weight: Tensor<D>,
        spec: ConvSpec,
    ) -> Tensor<4> {
        let output = <burn::backend::Dispatch as TapConvBackend>::tap_conv(
            input.into_dispatch(),
            weight.into_dispatch(),
            spec,
        );
        Tensor::from_dispatch(output)
    }

    pub(super) fn conv_transpose<const D: usize>(
        input: Tensor<4>,
        weight: Tensor<D>,
        spec: ConvSpec,
    ) -> Tensor<4> {
        let output = <burn::backend::Dispatch as TapConvBackend>::tap_conv_transpose(
            input.into_dispatch(),
            weight.into_dispatch(),
            spec,
        );
        Tensor::from_dispatch(output)
    }

    impl TapConvBackend for Flex {
        fn tap_conv(input: FlexTensor, weight: FlexTensor, spec: ConvSpec) -> FlexTensor {
            let grid = Grid::new(&input, &weight, &spec, Direction::Forward);
            let padded = grid.pad_input(&images(&input));
            grid.forward(&padded, &values(&weight))
        }

        fn tap_conv_transpose(input: FlexTensor, weight: FlexTensor, spec: ConvSpec) -> FlexTensor {
            let grid = Grid::new(&input, &weight, &spec, Direction::Transposed);
            let scattered = grid.scatter_output(&images(&input));
            grid.input_gradient(&scattered, &values(&weight))
        }
    }

    impl<C: CheckpointStrategy> TapConvBackend for Autodiff<Flex, C> {
        fn tap_conv(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            spec: ConvSpec,
        ) -> FloatTensor<Self> {
            let kernels = (Grid::pad_input as LayOut, Grid::forward as Product);
            tracked::<C, _>(
                TapConvNode,
                input,
                weight,
                &spec,
                Direction::Forward,
                kernels,
            )
        }

        fn tap_conv_transpose(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            spec: ConvSpec,
        ) -> FloatTensor<Self> {
            let kernels = (
                Grid::scatter_output as LayOut,
                Grid::input_gradient as Product,
            );
            tracked::<C, _>(
                TapConvTransposeNode,
                input,
                weight,
                &spec,
                Direction::Transposed,
                kernels,
            )
        }
    }

    /// Lays an operation's input out over the grid.
    type LayOut = fn(&Grid, &Images) -> Vec<f32>;
    /// The operation's product: the laid-out input and the weight to the output.
    type Product = fn(&Grid, &[f32], &[f32]) -> FlexTensor;

    /// Either operation under autodiff: lay the input out, compute, and keep for `node`'s
    /// backward pass only what a tracked parent's gradient needs.
    fn tracked<C: CheckpointStrategy, N: Backward<Flex, 2, State = NodeState>>(
        node: N,
        input: FloatTensor<Autodiff<Flex, C>>,
        weight: FloatTensor<Autodiff<Flex, C>>,
        spec: &ConvSpec,
        direction: Direction,
        (lay_out, product): (LayOut, Product),
    ) -> FloatTensor<Autodiff<Flex, C>> {
        let grid = Grid::new(input.primitive(), weight.primitive(), spec, direction);
        let (input_tracked, weight_tracked) = (input.is_tracked(), weight.is_tracked());
        let (input, input_node) = input.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let laid_out = lay_out(&grid, &images(&input));
        let weight = values(&weight).into_owned();
        let output = product(&grid, &laid_out, &weight);
        match node
            .prepare::<C>([input_node, weight_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = NodeState {
                    grid,
                    padded_input: weight_tracked.then_some(laid_out),
                    weight: input_tracked.then_some(weight),
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    #[derive(Debug)]
    struct TapConvNode;

    #[derive(Debug)]
    struct TapConvTransposeNode;

    /// What a node keeps for its backward pass. For the transposed convolution,
    /// `padded_input` holds its input spread over the grid's output rows.
    #[derive(Clone, Debug)]
    struct NodeState {
        grid: Grid,
        padded_input: Option<Vec<f32>>,
        weight: Option<Vec<f32>>,
    }

    impl Backward<Flex, 2> for TapConvNode {
        type State = NodeState;

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, weight_parent] = ops.parents;
            let grad_output = grads.consume::<Flex>(&ops.node);
            let NodeState {
                grid,
                padded_input,
                weight,
            } = ops.state;
            let grad_grid = grid.scatter_output(&images(&grad_output));
            if let (Some(parent), Some(weight)) = (input_parent, weight) {
                grads.register::<Flex>(parent.id, grid.input_gradient(&grad_grid, &weight));
            }
            if let (Some(parent), Some(padded)) = (weight_parent, padded_input) {
                grads.register::<Flex>(parent.id, grid.weight_gradient(&grad_grid, &padded));
            }
        }
    }

    impl Backward<Flex, 2> for TapConvTransposeNode {
        type State = NodeState;

        /// The adjoint's adjoint is the convolution: `∂L/∂x = conv(∂L/∂y)`, and the weight
        /// gradient is the convolution's with the roles of input and output swapped.
        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, weight_parent] = ops.parents;
            let grad_output = grads.consume::<Flex>(&ops.node);
            let NodeState {
                grid,
                padded_input: scattered_input,
                weight,
            } = ops.state;
            let padded_grad = grid.pad_input(&images(&grad_output));
            if let (Some(parent), Some(weight)) = (input_parent, weight) {
                grads.register::<Flex>(parent.id, grid.forward(&padded_grad, &weight));
            }
            if let (Some(parent), Some(scattered)) = (weight_parent, scattered_input) {
                grads.register::<Flex>(parent.id, grid.weight_gradient(&scattered, &padded_grad));
            }
        }
    }

    /// Writes a row-major `rows × cols` matrix's transpose into `transposed`, tile by tile, so
    /// that neither side is walked with a long stride alone.
    fn transpose_into(matrix: &[f32], rows: usize, cols: usize, transposed: &mut [f32]) {
        const TILE: usize = 16;
        assert_eq!((matrix.len(), transposed.len()), (rows * cols, rows * cols));
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for c in c0..(c0 + TILE).min(cols) {
                        transposed[c * rows + r] = matrix[r * cols + c];
                    }
                }
            }
        }
    }

    /// Rows per parallel chunk of the forward and input-gradient products, whose results are
    /// `columns` wide: each thread runs whole products on its own chunks (rather than the
    /// matrix kernel splitting every product between the threads, which synchronises them
    /// once per product), and a chunk's result, about 256 KiB, stays in the core's L2 cache
    /// while every run's product adds to it. At least 8 chunks in all, for load balance, and
    /// at least 64 rows each.
    fn product_chunk_rows(rows: usize, columns: usize) -> usize {
        const CHUNK_VALUES: usize = 1 << 16;
        let cache_rows = (CHUNK_VALUES / columns.max(1)).max(64);
        let balance_rows = rows
            .div_ceil(4 * rayon::current_num_threads().max(2))
            .max(64);
        cache_rows.min(balance_rows).min(rows.max(1))
    }

    /// Rows of the grid per parallel chunk of the weight gradient, at most and at least.
    const WEIGHT_GRADIENT_CHUNK_ROWS: usize = 4096;
    const WEIGHT_GRADIENT_MIN_CHUNK_ROWS: usize = 256;

    /// Which side of the convolution a tensor primitive handed to [`Grid::new`] is on.
    enum Direction {
        /// The input is the convolution's input, `[N, H, W, in]`.
        Forward,
        /// The input is the convolution's output, `[N, H', W', out]`.
        Transposed,
    }

    /// The zero-padded input laid out so that every tap is one strided matrix.
    ///
    /// The padded image is cut into `s×s` blocks; block `(Y, X)` of image `n` is grid row
    /// `(n·Hb + Y)·Wb + X` and holds its `s·s` pixels' `in` channels, `[rows, s·s·in]`. Tap
    /// `(ky, kx)` of output pixel `(y, x)` is then pixel `(ky mod s, kx mod s)` of block
    /// `(y + ky/s, x + kx/s)`: the same matrix shifted by `(ky/s)·Wb + kx/s` rows and
    /// `((ky mod s)·s + kx mod s)·in` columns, with row stride `s·s·in`. The output is
    /// computed at the same rows, `[rows, out]`; rows outside `H'×W'` are discarded. With
    /// `s = 1` a block is a pixel.
    ///
    /// Taps are not multiplied one by one: the taps whose row shifts are consecutive
    /// (`σ, σ+1, …`, e.g. one kernel row at stride 1, or two kernel rows' worth of `s×s`
    /// blocks at stride 2) read consecutive grid rows, so the matrix starting at row `σ`
    /// with row stride `s·s·in` and `len·s·s·in` columns holds all their windows side by
    /// side, overlapping its next rows. One product with the matching rows of the weight
    /// stacked (zero where a block position has no tap) covers the whole run of shifts:
    /// DCGAN's 4×4 stride-2 kernel is two products with an inner dimension of `8·in`
    /// instead of sixteen of `in`. The buffer has as many zero rows more as the largest
    /// shift, which only discarded rows read.
    #[derive(Clone, Debug)]
    struct Grid {
        batch: usize,
        input_size: [usize; 2],
        output_size: [usize; 2],
        /// Blocks per image, down and across.
        blocks: [usize; 2],
        top: usize,
        left: usize,
        stride: usize,
        c_in: usize,
        c_out: usize,
        /// Per tap: its run, and the first row of its `in × out` weight block in the run's
        /// stacked weight.
        tap_slots: Vec<(usize, usize)>,
        /// The runs of consecutive row shifts, by first shift.
        runs: Vec<ShiftRun>,
        /// `Some([kh, kw])` when the tensors outside are in burn's layout (see
        /// [`ConvSpec::burn_layout`]), the weight `[out, in, kh, kw]`.
        burn_kernel: Option<[usize; 2]>,
        /// `pixel_start(y, x)` for every pixel of an input image, row-major (the channels-first
        /// copies would otherwise divide by the stride once per value).
        pixel_starts: Vec<usize>,
        /// The rest of an image's part of the input buffer: the padding, zero.
        padding_spans: Vec<std::ops::Range<usize>>,
        /// Where output pixel `(y, x)`'s row starts in its image's part of the output grid,
        /// for every pixel of an output image, row-major.
        output_starts: Vec<usize>,
    }

    /// Row shifts `first..first + len`, all of which some tap has.
    #[derive(Clone, Copy, Debug)]
    struct ShiftRun {
        first: usize,
        len: usize,
    }

    impl Grid {
        fn new(
            input: &FlexTensor,
            weight: &FlexTensor,
            spec: &ConvSpec,
            direction: Direction,
        ) -> Self {
            let batch = input.layout().shape()[0];
            let weight_shape = weight.layout().shape();
            let (c_in, c_out, burn_kernel) = if spec.burn_layout {
                let [c_out, c_in, kh, kw] = weight_shape[..] else {
                    panic!("a weight in burn's layout is [out, in, kh, kw]");
                };
                assert_eq!(kh * kw, spec.taps.len(), "every kernel position is a tap");
                (c_in, c_out, Some([kh, kw]))
            } else {
                (weight_shape[0] / spec.taps.len(), weight_shape[1], None)
            };
            let [top, bottom, left, right] = spec.padding;
            let s = spec.stride;
            let [h, w] = spec.input_size;
            let blocks = [
                (h + top + bottom).div_ceil(s),
                (w + left + right).div_ceil(s),
            ];
            let output_size = spec.output_size();
            let given = &input.layout().shape()[1..];
            let [size_y, size_x, channels] = match direction {
                Direction::Forward => [h, w, c_in],
                Direction::Transposed => [output_size[0], output_size[1], c_out],
            };
            let expected = if spec.burn_layout {
                [channels, size_y, size_x]
            } else {
                [size_y, size_x, channels]
            };
            assert_eq!(given, expected, "tap convolution input shape");
            let block = s * s * c_in;
            // Per tap: its row shift and its column offset within a grid row.
            let shifts: Vec<(usize, usize)> = spec
                .taps
                .iter()
                .map(|&[ky, kx]| {
                    (
                        (ky / s) * blocks[1] + kx / s,
                        ((ky % s) * s + kx % s) * c_in,
                    )
                })
                .collect();
            let mut distinct: Vec<usize> = shifts.iter().map(|&(shift, _)| shift).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let mut runs: Vec<ShiftRun> = Vec::new();
            for shift in distinct {
                match runs.last_mut() {
                    Some(run) if run.first + run.len == shift => run.len += 1,
                    _ => runs.push(ShiftRun {
                        first: shift,
                        len: 1,
                    }),
                }
            }
            let tap_slots = shifts
                .iter()
                .map(|&(shift, column)| {
                    let run = runs
                        .iter()
                        .position(|run| (run.first..run.first + run.len).contains(&shift))
                        .expect("every shift is in a run");
                    (run, (shift - runs[run].first) * block + column)
                })
                .collect();
            let mut grid = Self {
                batch,
                input_size: [h, w],
                output_size,
                blocks,
                top,
                left,
                stride: s,
                c_in,
                c_out,
                tap_slots,
                runs,
                burn_kernel,
                pixel_starts: Vec::new(),
                padding_spans: Vec::new(),
                output_starts: (0..output_size[0])
                    .flat_map(|y| (0..output_size[1]).map(move |x| (y * blocks[1] + x) * c_out))
                    .collect(),
            };
            grid.pixel_starts = (0..h)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .map(|(y, x)| grid.pixel_start(y, x))
                .collect();
            grid.padding_spans = grid.padding_spans();
            grid
        }

        /// The spans of an image's part of the input buffer that no pixel fills.
        fn padding_spans(&self) -> Vec<std::ops::Range<usize>> {
            let mut starts = self.pixel_starts.clone();
            starts.sort_unstable();
            let mut spans = Vec::new();
            let mut end = 0;
            for start in starts {
                if start > end {
                    spans.push(end..start);
                }
                end = start + self.c_in;
            }
            let image = self.image_blocks() * self.block();
            if image > end {
                spans.push(end..image);
            }
            spans
        }

        fn burn_layout(&self) -> bool {
            self.burn_kernel.is_some()
        }

        /// `[N, C, H, W]` or `[N, H, W, C]`, as the tensors outside are.
        fn outside_shape(&self, [h, w]: [usize; 2], c: usize) -> [usize; 4] {
            if self.burn_layout() {
                [self.batch, c, h, w]
            } else {
                [self.batch, h, w, c]
            }
        }

        fn rows(&self) -> usize {
            self.batch * self.blocks[0] * self.blocks[1]
        }

        /// Floats per grid row of the input buffer.
        fn block(&self) -> usize {
            self.stride * self.stride * self.c_in
        }

        /// The largest row shift: the input buffer's extra zero rows, and the output
        /// buffer's zero rows on either side.
        fn max_shift(&self) -> usize {
            self.runs.last().map_or(0, |run| run.first + run.len - 1)
        }

        fn input_rows(&self) -> usize {
            self.rows() + self.max_shift()
        }

        /// Inner dimension of each run's product, `len·s·s·in`.
        fn run_depth(&self, run: usize) -> usize {
            self.runs[run].len * self.block()
        }

        /// Whether the stacked weights are stored transposed, `[out, len·s·s·in]`: in burn's
        /// layout, where that is a gather within one output channel's `in·kh·kw` weights
        /// rather than a transpose of the whole kernel.
        fn stacked_transposed(&self) -> bool {
            self.burn_layout()
        }

        /// `(column stride, row stride)` of run `run`'s stacked weight read as the
        /// `len·s·s·in × out` matrix it is.
        fn stacked_strides(&self, run: usize) -> (isize, isize) {
            if self.stacked_transposed() {
                (self.run_depth(run) as isize, 1)
            } else {
                (1, self.c_out as isize)
            }
        }

        /// The weight as one `len·s·s·in × out` matrix per run (laid out as
        /// [`Self::stacked_strides`] says): the rows a product over the run's windows
        /// multiplies, zero where no tap sits.
        fn stacked_weight(&self, weight: &[f32]) -> Vec<Vec<f32>> {
            let mut stacked = self.zero_stacked();
            let (c_in, c_out) = (self.c_in, self.c_out);
            if self.stacked_transposed() {
                // `[out, in, T]`: output channel `o`'s weights are row `o` of every run.
                let taps = self.tap_slots.len();
                for (o, kernel) in weight.chunks(c_in * taps).enumerate() {
                    for (t, &(run, row)) in self.tap_slots.iter().enumerate() {
                        let start = o * self.run_depth(run) + row;
                        for (i, value) in stacked[run][start..start + c_in].iter_mut().enumerate() {
                            *value = kernel[i * taps + t];
                        }
                    }
                }
                return stacked;
            }
            for (t, &(run, row)) in self.tap_slots.iter().enumerate() {
                stacked[run][row * c_out..(row + c_in) * c_out]
                    .copy_from_slice(&weight[t * c_in * c_out..(t + 1) * c_in * c_out]);
            }
            stacked
        }

        /// The stacked weights' gradient, row-major `[len·s·s·in, out]` per run in either
        /// layout → the weight's gradient, in the weight's layout (the adjoint of
        /// `stacked_weight`, which drops the rows no tap has).
        fn unstack_weight(&self, stacked: &[Vec<f32>]) -> FlexTensor {
            let (c_in, c_out) = (self.c_in, self.c_out);
            let taps = self.tap_slots.len();
            let mut weight = vec![0f32; taps * c_in * c_out];
            if let Some([kh, kw]) = self.burn_kernel {
                for (o, kernel) in weight.chunks_mut(c_in * taps).enumerate() {
                    for (t, &(run, row)) in self.tap_slots.iter().enumerate() {
                        for i in 0..c_in {
                            kernel[i * taps + t] = stacked[run][(row + i) * c_out + o];
                        }
                    }
                }
                return flex_tensor(weight, [c_out, c_in, kh, kw]);
            }
            for (t, &(run, row)) in self.tap_slots.iter().enumerate() {
                weight[t * c_in * c_out..(t + 1) * c_in * c_out]
                    .copy_from_slice(&stacked[run][row * c_out..(row + c_in) * c_out]);
            }
            flex_tensor(weight, [taps * c_in, c_out])
        }

        /// One zero stacked matrix (or its gradient) per run.
        fn zero_stacked(&self) -> Vec<Vec<f32>> {
            (0..self.runs.len())
                .map(|run| vec![0f32; self.run_depth(run) * self.c_out])
                .collect()
        }

        /// Per run, the weight for the input gradient, `[len·out, s·s·in]`: row block `j`
        /// (read against the output gradient `j` rows after the run's last shift's) is the
        /// transpose of shift `first + len − 1 − j`'s rows of the stacked weight.
        fn adjoint_weight(&self, stacked: &[Vec<f32>]) -> Vec<Vec<f32>> {
            let (block, c_out) = (self.block(), self.c_out);
            let size = block * c_out;
            self.runs
                .iter()
                .zip(stacked)
                .enumerate()
                .map(|(r, (run, stacked))| {
                    let mut adjoint = vec![0f32; run.len * size];
                    for position in 0..run.len {
                        let j = run.len - 1 - position;
                        let target = &mut adjoint[j * size..(j + 1) * size];
                        if self.stacked_transposed() {
                            // Already `[out, s·s·in]` per shift: one row per output channel.
                            let depth = self.run_depth(r);
                            for (o, row) in target.chunks_mut(block).enumerate() {
                                let start = o * depth + position * block;
                                row.copy_from_slice(&stacked[start..start + block]);
                            }
                        } else {
                            let rows = &stacked[position * size..(position + 1) * size];
                            transpose_into(rows, block, c_out, target);
                        }
                    }
                    adjoint
                })
                .collect()
        }

        fn image_blocks(&self) -> usize {
            self.blocks[0] * self.blocks[1]
        }

        /// Where pixel `(y, x)` of an unpadded image starts in its image's part of the
        /// input buffer.
        fn pixel_start(&self, y: usize, x: usize) -> usize {
            let s = self.stride;
            let (py, px) = (y + self.top, x + self.left);
            ((py / s) * self.blocks[1] + px / s) * self.block()
                + ((py % s) * s + px % s) * self.c_in
        }

        /// The input, `[N, H, W, in]` or `[N, in, H, W]` → the input buffer: every value written
        /// once, the padding's zeros (`padding_spans`) and the pixels.
        fn pad_input(&self, input: &Images) -> Vec<f32> {
            let [h, w] = self.input_size;
            let c = self.c_in;
            let padded_image = self.image_blocks() * self.block();
            // One chunk per image, then the `max_shift` zero rows after the last.
            let fill = |n: usize, padded: &mut [MaybeUninit<f32>]| {
                if n >= self.batch {
                    padded.fill(MaybeUninit::new(0.0));
                    return;
                }
                for span in &self.padding_spans {
                    padded[span.clone()].fill(MaybeUninit::new(0.0));
                }
                let image = input.image(n);
                if self.burn_layout() {
                    return planes_to_rows(image, h * w, c, &self.pixel_starts, padded);
                }
                for (y, row) in image.chunks(w * c).enumerate() {
                    if self.stride == 1 {
                        let start = self.pixel_start(y, 0);
                        padded[start..start + w * c].write_copy_of_slice(row);
                        continue;
                    }
                    for (x, pixel) in row.chunks(c).enumerate() {
                        let start = self.pixel_start(y, x);
                        padded[start..start + c].write_copy_of_slice(pixel);
                    }
                }
            };
            // SAFETY: an image's chunk is its pixels' spans (`pixel_start(y, x)`, `in` wide) and
            // `padding_spans`, their complement; the chunk after the last image is zeroed whole.
            unsafe { par_written(self.input_rows() * self.block(), padded_image, fill) }
        }

        /// The input buffer's image pixels → the input's shape (the adjoint of `pad_input`).
        fn unpad_input(&self, padded: &[f32]) -> FlexTensor {
            let [h, w] = self.input_size;
            let c = self.c_in;
            let padded_image = self.image_blocks() * self.block();
            let fill = |n: usize, image: &mut [MaybeUninit<f32>]| {
                let padded = &padded[n * padded_image..(n + 1) * padded_image];
                if self.burn_layout() {
                    return rows_to_planes(padded, &self.pixel_starts, c, image, h * w);
                }
                for (y, row) in image.chunks_mut(w * c).enumerate() {
                    if self.stride == 1 {
                        let start = self.pixel_start(y, 0);
                        row.write_copy_of_slice(&padded[start..start + w * c]);
                        continue;
                    }
                    for (x, pixel) in row.chunks_mut(c).enumerate() {
                        let start = self.pixel_start(y, x);
                        pixel.write_copy_of_slice(&padded[start..start + c]);
                    }
                }
            };
            // SAFETY: every pixel of every image is written, in either layout.
            let input = unsafe { par_written(self.batch * h * w * c, h * w * c, fill) };
            flex_tensor(input, self.outside_shape([h, w], c))
        }

        /// Grid rows → the output, `[N, H', W', out]` or `[N, out, H', W']`, dropping the rows
        /// outside it.
        fn gather_output(&self, grid: &[f32]) -> FlexTensor {
            let [out_h, out_w] = self.output_size;
            let row = out_w * self.c_out;
            let grid_image = self.image_blocks() * self.c_out;
            let fill = |n: usize, image: &mut [MaybeUninit<f32>]| {
                let grid = &grid[n * grid_image..(n + 1) * grid_image];
                if self.burn_layout() {
                    let plane = out_h * out_w;
                    return rows_to_planes(grid, &self.output_starts, self.c_out, image, plane);
                }
                for (y, out) in image.chunks_mut(row).enumerate() {
                    let start = y * self.blocks[1] * self.c_out;
                    out.write_copy_of_slice(&grid[start..start + row]);
                }
            };
            // SAFETY: every row of every output image is written, in either layout.
            let output = unsafe { par_written(self.batch * out_h * row, out_h * row, fill) };
            flex_tensor(output, self.outside_shape([out_h, out_w], self.c_out))
        }

        /// The output's shape → grid rows, zero outside the output, with `max_shift` zero
        /// rows before and after (which the input gradient's products read).
        fn scatter_output(&self, output: &Images) -> Vec<f32> {
            let [out_h, out_w] = self.output_size;
            let row = out_w * self.c_out;
            let margin = self.max_shift() * self.c_out;
            let mut buffer = vec![0f32; self.rows() * self.c_out + 2 * margin];
            buffer[margin..margin + self.rows() * self.c_out]
                .par_chunks_mut(self.image_blocks() * self.c_out)
                .enumerate()
                .for_each(|(n, grid)| {
                    let image = output.image(n);
                    if self.burn_layout() {
                        let plane = out_h * out_w;
                        // SAFETY: writes initialised values only.
                        let grid = unsafe { as_uninit_mut(grid) };
                        return planes_to_rows(image, plane, self.c_out, &self.output_starts, grid);
                    }
                    for (y, out) in image.chunks(row).enumerate() {
                        let start = y * self.blocks[1] * self.c_out;
                        grid[start..start + row].copy_from_slice(out);
                    }
                });
            buffer
        }

        /// `y = Σ_t shift_t(x̃) · W_t`, one product per run of shifts, over chunks of rows in
        /// parallel (see [`product_chunk_rows`]).
        fn forward(&self, padded: &[f32], weight: &[f32]) -> FlexTensor {
            let (rows, block, c_out) = (self.rows(), self.block(), self.c_out);
            let stacked = self.stacked_weight(weight);
            let chunk_rows = product_chunk_rows(rows, c_out);
            let products = |chunk: usize, grid: &mut [MaybeUninit<f32>]| {
                let first_row = chunk * chunk_rows;
                let len = grid.len() / c_out;
                let dst = Operand::row_major(grid.as_mut_ptr().cast::<f32>(), c_out);
                for (r, (run, rhs)) in self.runs.iter().zip(&stacked).enumerate() {
                    let depth = run.len * block;
                    let start = (run.first + first_row) * block;
                    let lhs = &padded[start..start + (len - 1) * block + depth];
                    // SAFETY: `dst` is len × out; `lhs` is len × depth with row stride
                    // `block` (rows overlap, which a read allows), and `rhs` depth × out, its
                    // `depth · out` values laid out as `stacked_strides` says; the slices
                    // above check the bounds.
                    unsafe {
                        product(
                            [len, c_out, depth],
                            dst,
                            r > 0,
                            Operand::row_major(lhs.as_ptr(), block),
                            Operand::strided(rhs.as_ptr(), self.stacked_strides(r)),
                            gemm::Parallelism::None,
                        );
                    }
                }
            };
            // SAFETY: the first run's product writes every value of a chunk and reads none
            // (`accumulate` is `r > 0`); a grid has at least one run.
            let grid = unsafe { par_written(rows * c_out, chunk_rows * c_out, products) };
            self.gather_output(&grid)
        }

        /// `∂L/∂x = unpad(Σ_t shift_t⁻¹(∂L/∂y · W_tᵀ))`, from `∂L/∂y` as `scatter_output`
        /// lays it out. Padded row `p` gathers `∂L/∂y` at rows `p − σ` for the run's shifts
        /// `σ`: again consecutive rows, so one product per run, every padded row written
        /// whole; over chunks of rows in parallel, as `forward`.
        fn input_gradient(&self, grad_buffer: &[f32], weight: &[f32]) -> FlexTensor {
            let (input_rows, block, c_out) = (self.input_rows(), self.block(), self.c_out);
            let adjoint = self.adjoint_weight(&self.stacked_weight(weight));
            let chunk_rows = product_chunk_rows(input_rows, block);
            let products = |chunk: usize, grad_padded: &mut [MaybeUninit<f32>]| {
                let first_row = chunk * chunk_rows;
                let len = grad_padded.len() / block;
                let dst = Operand::row_major(grad_padded.as_mut_ptr().cast::<f32>(), block);
                for (r, (run, rhs)) in self.runs.iter().zip(&adjoint).enumerate() {
                    let depth = run.len * c_out;
                    // Buffer row of `∂L/∂y` row `p − last` for padded row `p = first_row`.
                    let start = (self.max_shift() - (run.first + run.len - 1) + first_row) * c_out;
                    let lhs = &grad_buffer[start..start + (len - 1) * c_out + depth];
                    // SAFETY: `dst` is len × block; `lhs` is len × depth with row stride
                    // `out` (overlapping rows, read only); `rhs` is depth × block; the slices
                    // above check the bounds.
                    unsafe {
                        product(
                            [len, block, depth],
                            dst,
                            r > 0,
                            Operand::row_major(lhs.as_ptr(), c_out),
                            Operand::row_major(rhs.as_ptr(), block),
                            gemm::Parallelism::None,
                        );
                    }
                }
            };
            // SAFETY: as in `forward`, the first run's product writes all of each chunk.
            let grad_padded =
                unsafe { par_written(input_rows * block, chunk_rows * block, products) };
            self.unpad_input(&grad_padded)
        }

        /// `∂L/∂W_t = shift_t(x̃)ᵀ · ∂L/∂y`: per run, the stacked weight's gradient, summed
        /// over chunks of rows computed in parallel (each product is only `len·s·s·in ×
        /// out`, too small for the matrix kernel's own threads to split well).
        fn weight_gradient(&self, grad_buffer: &[f32], padded: &[f32]) -> FlexTensor {
            let (rows, block, c_out) = (self.rows(), self.block(), self.c_out);
            let margin = self.max_shift() * c_out;
            let grad_grid = &grad_buffer[margin..margin + rows * c_out];
            let runs = self.runs.len();
            // Enough jobs for every thread twice over, none shorter than a minimum.
            let wanted = (2 * rayon::current_num_threads()).div_ceil(runs);
            let chunks = rows
                .div_ceil(WEIGHT_GRADIENT_CHUNK_ROWS)
                .max(wanted)
                .min(rows.div_ceil(WEIGHT_GRADIENT_MIN_CHUNK_ROWS))
                .max(1);
            let chunk_rows = rows.div_ceil(chunks).max(1);
            let chunks = rows.div_ceil(chunk_rows);
            // The matrix kernel runs its widest register blocks (64 rows with AVX-512) along
            // the dimension its result is contiguous in: a partial laid out depth-major keeps
            // them busy when the depth (`len·s·s·in`) exceeds the output channels, as in a
            // U-Net's 16- and 32-channel convolutions (16 rows use a quarter of the widest
            // block, with as many loads per multiply-add as it has).
            let depth_major = self.runs.iter().all(|run| run.len * block > c_out);
            let partial_strides = |depth: usize| {
                if depth_major {
                    (depth as isize, 1)
                } else {
                    (1, c_out as isize)
                }
            };
            let partials: Vec<Vec<f32>> = (0..runs * chunks)
                .into_par_iter()
                .map(|job| {
                    let (run, chunk) = (self.runs[job / chunks], job % chunks);
                    let depth = run.len * block;
                    let first_row = chunk * chunk_rows;
                    let len = chunk_rows.min(rows - first_row);
                    let start = (run.first + first_row) * block;
                    let lhs = &padded[start..start + (len - 1) * block + depth];
                    let rhs = &grad_grid[first_row * c_out..(first_row + len) * c_out];
                    let product = |partial: *mut f32| {
                        // SAFETY: `partial` is depth × out, row-major or column-major as
                        // `partial_strides` says; `lhs` read transposed is depth × len (row
                        // stride 1, column stride `block`); `rhs` is len × out.
                        unsafe {
                            product(
                                [depth, c_out, len],
                                Operand::strided(partial, partial_strides(depth)),
                                false,
                                Operand::strided(lhs.as_ptr(), (block as isize, 1)),
                                Operand::row_major(rhs.as_ptr(), c_out),
                                gemm::Parallelism::None,
                            );
                        }
                    };
                    // SAFETY: the product writes every value of `partial` and reads none.
                    unsafe { written_by(depth * c_out, product) }
                })
                .collect();
            let mut stacked_gradient = self.zero_stacked();
            for (job, partial) in partials.iter().enumerate() {
                let sum = &mut stacked_gradient[job / chunks];
                if depth_major {
                    let depth = sum.len() / c_out;
                    for (o, column) in partial.chunks_exact(depth).enumerate() {
                        for (d, value) in column.iter().enumerate() {
                            sum[d * c_out + o] += value;
                        }
                    }
                } else {
                    for (sum, value) in sum.iter_mut().zip(partial) {
                        *sum += value;
                    }
                }
            }
            self.unstack_weight(&stacked_gradient)
        }
    }
}

#[cfg(all(test, feature = "kernels"))]
mod tests {
    use super::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution, Tolerance};

    fn causal_3x3() -> TapGeometry {
        TapGeometry {
            taps: vec![[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]],
            padding: [1, 0, 1, 1],
        }
    }

    fn full_3x3() -> TapGeometry {
        TapGeometry {
            taps: (0..3)
                .flat_map(|ky| (0..3).map(move |kx| [ky, kx]))
                .collect(),
            padding: [1, 1, 1, 1],
        }
    }

    /// Taps below and to the right, with more padding than they reach.
    fn lopsided() -> TapGeometry {
        TapGeometry {
            taps: vec![[2, 0], [1, 3], [0, 1]],
            padding: [0, 2, 0, 3],
        }
    }

    /// Values and both gradients of `tap_conv` (flex's kernel) and `tap_conv_composed`
    /// (burn's operations) agree, for an input that is itself a permuted, strided view.
    fn assert_kernel_matches_composed(
        geometry: &TapGeometry,
        [n, h, w, c_in, c_out]: [usize; 5],
        track_input: bool,
    ) {
        let device = Device::flex().autodiff();
        device.seed(29);
        let taps = geometry.taps.len();
        let input_nchw: Tensor<4> =
            Tensor::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        let input_nchw = if track_input {
            input_nchw.require_grad()
        } else {
            input_nchw
        };
        let weight: Tensor<2> = Tensor::random(
            [taps * c_in, c_out],
            Distribution::Normal(0.0, 0.3),
            &device,
        )
        .require_grad();
        let upstream: Tensor<4> =
            Tensor::random([n, h, w, c_out], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(
            flex_kernel::applies(&input_nchw.clone().permute([0, 2, 3, 1]), &weight),
            crate::enabled(),
            "the kernel applies where it is switched on"
        );

        let run = |conv: &dyn Fn(Tensor<4>, Tensor<2>, &TapGeometry) -> Tensor<4>| {
            let output = conv(
                input_nchw.clone().permute([0, 2, 3, 1]),
                weight.clone(),
                geometry,
            );
            let grads = (output.clone() * upstream.clone()).sum().backward();
            let grad_input = input_nchw.grad(&grads);
            let grad_weight = weight.grad(&grads).expect("weight gradient");
            (output, grad_input, grad_weight)
        };
        let (kernel_out, kernel_grad_input, kernel_grad_weight) = run(&tap_conv);
        let (composed_out, composed_grad_input, composed_grad_weight) = run(&tap_conv_composed);
        // Sums over thousands of rows of terms of order one, added in different orders:
        // a few float32 rounding errors per thousand terms. A wrong tap is off by O(1).
        let tolerance = Tolerance::rel_abs(1e-4, 1e-4);
        kernel_out
            .into_data()
            .assert_approx_eq::<f32>(&composed_out.into_data(), tolerance);
        kernel_grad_weight
            .into_data()
            .assert_approx_eq::<f32>(&composed_grad_weight.into_data(), tolerance);
        assert_eq!(kernel_grad_input.is_some(), track_input);
        if let (Some(kernel), Some(composed)) = (kernel_grad_input, composed_grad_input) {
            kernel
                .into_data()
                .assert_approx_eq::<f32>(&composed.into_data(), tolerance);
        }
    }

    #[test]
    fn flex_kernel_matches_the_composed_form_in_values_and_gradients() {
        for geometry in [causal_3x3(), full_3x3(), lopsided()] {
            for shape in [[2, 5, 7, 8, 3], [3, 4, 4, 9, 12], [1, 6, 3, 16, 1]] {
                assert_kernel_matches_composed(&geometry, shape, true);
            }
        }
    }

    #[test]
    fn flex_kernel_gives_the_weight_gradient_alone_for_an_untracked_input() {
        assert_kernel_matches_composed(&causal_3x3(), [2, 5, 7, 8, 3], false);
    }

    #[test]
    fn flex_kernel_chunks_the_weight_gradient_over_many_rows() {
        // 4 × 40 × 42 grid rows: several chunks of the weight gradient's row split.
        assert_kernel_matches_composed(&causal_3x3(), [4, 38, 40, 8, 4], true);
    }

    #[test]
    fn full_taps_are_burns_same_convolution() {
        // An independent oracle: nine taps with padding 1 are conv2d with padding 1.
        let device = Device::flex();
        let (n, c_in, c_out, h, w) = (2, 8, 5, 6, 7);
        let input: Tensor<4> =
            Tensor::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        let kernel: Tensor<4> =
            Tensor::random([c_out, c_in, 3, 3], Distribution::Normal(0.0, 0.3), &device);
        let expected = conv2d(
            input.clone(),
            kernel.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        // [out, in, ky, kx] → rows (ky·3 + kx)·in + i.
        let weight = kernel.permute([2, 3, 1, 0]).reshape([9 * c_in, c_out]);
        let geometry = full_3x3();
        for conv in [tap_conv, tap_conv_composed] {
            let output = conv(
                input.clone().permute([0, 2, 3, 1]),
                weight.clone(),
                &geometry,
            );
            output
                .permute([0, 3, 1, 2])
                .into_data()
                .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-4));
        }
    }

    /// `ours` and burn's convolution agree in values and in the gradients of input, weight
    /// and bias.
    fn assert_same_convolution(
        ours: impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
        burns: impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
        input_shape: [usize; 4],
        weight_shape: [usize; 4],
        bias_size: usize,
    ) {
        let device = Device::flex().autodiff();
        let input: Tensor<4> =
            Tensor::random(input_shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
        let weight: Tensor<4> =
            Tensor::random(weight_shape, Distribution::Normal(0.0, 0.2), &device).require_grad();
        let bias: Tensor<1> =
            Tensor::random([bias_size], Distribution::Normal(0.0, 1.0), &device).require_grad();
        assert_eq!(
            flex_kernel::applies(&input, &weight),
            crate::enabled(),
            "the kernel applies where it is switched on"
        );
        // Through a concatenation, the output's gradient arrives as a strided slice of the
        // concatenation's, which the bias and the convolution read in place.
        let run = |conv: &dyn Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
                   through_concatenation: bool| {
            let output = conv(input.clone(), weight.clone(), Some(bias.clone()));
            let [n, c, h, w] = output.dims();
            let joined = if through_concatenation {
                Tensor::cat(vec![output.clone(), Tensor::ones([n, 2, h, w], &device)], 1)
            } else {
                output.clone()
            };
            let upstream: Tensor<4> = Tensor::ones(joined.dims(), &device).cumsum(3).sin()
                + Tensor::ones(joined.dims(), &device).cumsum(1).cos();
            let grads = (joined * upstream).sum().backward();
            assert_eq!(output.dims()[1], c);
            [
                output.into_data(),
                input.grad(&grads).expect("input gradient").into_data(),
                weight.grad(&grads).expect("weight gradient").into_data(),
                bias.grad(&grads).expect("bias gradient").into_data(),
            ]
        };
        for through_concatenation in [false, true] {
            let ours = run(&ours, through_concatenation);
            let theirs = run(&burns, through_concatenation);
            for (what, (ours, theirs)) in ["output", "input grad", "weight grad", "bias grad"]
                .iter()
                .zip(ours.iter().zip(&theirs))
            {
                assert_eq!(ours.shape(), theirs.shape(), "{what}");
                ours.assert_approx_eq::<f32>(theirs, Tolerance::rel_abs(1e-5, 1e-4));
            }
        }
    }

    #[test]
    fn conv2d_is_burns_conv2d_on_the_tap_kernels() {
        use burn::tensor::module::conv2d as burn_conv2d;
        // DCGAN's 4×4 stride-2 down-sampling, odd sizes, a plain 3×3, and a 3×3 at stride 2
        // (block positions without a tap: zero rows in the stacked weight).
        for (input, weight, stride, padding) in [
            ([3, 8, 14, 14], [16, 8, 4, 4], 2, 1),
            ([2, 9, 13, 11], [5, 9, 4, 4], 2, 1),
            ([2, 8, 7, 6], [4, 8, 3, 3], 1, 1),
            ([2, 8, 9, 9], [4, 8, 3, 3], 3, 0),
            ([2, 8, 9, 10], [6, 8, 3, 3], 2, 1),
            // DCGAN's first layer: one input channel, products 2·2·2 deep.
            ([3, 1, 28, 28], [16, 1, 4, 4], 2, 1),
        ] {
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
            assert_same_convolution(
                |x, w, b| super::conv2d(x, w, b, stride, padding),
                |x, w, b| burn_conv2d(x, w, b, options.clone()),
                input,
                weight,
                weight[0],
            );
        }
    }

    #[test]
    fn conv2d_padded_is_burns_conv2d_with_one_sided_padding() {
        use burn::tensor::module::conv2d as burn_conv2d;
        // The Gated PixelCNN's vertical (k/2+1)×k over the rows above, its horizontal
        // 1×(k/2+1) over the pixels to the left, its 1×1 link computed one row down, and the
        // Row LSTM's 1×3 state convolution; then a kernel row too shallow for the kernels
        // (2·3 deep), which must give burn's result by burn's path.
        for (input, weight, padding) in [
            ([2, 24, 7, 6], [48, 24, 2, 3], [1, 0, 1, 1]),
            ([2, 24, 7, 6], [48, 24, 1, 2], [0, 0, 1, 0]),
            ([3, 48, 5, 5], [48, 48, 1, 1], [1, 0, 0, 0]),
            ([4, 16, 1, 9], [64, 16, 1, 3], [0, 0, 1, 1]),
            ([2, 8, 6, 7], [5, 8, 4, 3], [3, 0, 2, 0]),
            ([2, 3, 6, 7], [5, 3, 2, 2], [1, 0, 1, 0]),
        ] {
            let [top, bottom, left, right] = padding;
            let options =
                ConvOptions::new_with_padding([1, 1], [(top, bottom), (left, right)], [1, 1], 1);
            assert_same_convolution(
                |x, w, b| conv2d_padded(x, w, b, padding),
                |x, w, b| burn_conv2d(x, w, b, options.clone()),
                input,
                weight,
                weight[0],
            );
        }
    }

    #[test]
    fn conv_transpose2d_is_burns_on_the_tap_kernels() {
        use burn::tensor::module::conv_transpose2d as burn_conv_transpose2d;
        use burn::tensor::ops::ConvTransposeOptions;
        // DCGAN's 4×4 stride-2 up-sampling (7 → 14), an odd size, a plain 3×3, and a 3×3
        // at stride 2.
        for (input, weight, stride, padding) in [
            ([3, 16, 7, 7], [16, 8, 4, 4], 2, 1),
            ([2, 5, 6, 5], [5, 9, 4, 4], 2, 1),
            ([2, 4, 7, 6], [4, 8, 3, 3], 1, 1),
            ([2, 6, 5, 4], [6, 8, 3, 3], 2, 1),
            // DCGAN's last layer: one output channel.
            ([3, 16, 14, 14], [16, 1, 4, 4], 2, 1),
        ] {
            let options = ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1);
            assert_same_convolution(
                |x, w, b| conv_transpose2d(x, w, b, stride, padding),
                |x, w, b| burn_conv_transpose2d(x, w, b, options.clone()),
                input,
                weight,
                weight[1],
            );
        }
    }

    #[test]
    #[should_panic(expected = "reaches outside the padded")]
    fn a_tap_outside_the_padding_is_refused() {
        let device = Device::flex();
        let input: Tensor<4> = Tensor::zeros([1, 4, 4, 8], &device);
        let weight: Tensor<2> = Tensor::zeros([8, 2], &device);
        let geometry = TapGeometry {
            taps: vec![[1, 0]],
            padding: [0, 0, 0, 0],
        };
        tap_conv(input, weight, &geometry);
    }
}

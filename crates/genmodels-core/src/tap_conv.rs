//! Stride-1 channels-last convolution over a chosen set of kernel taps: the kernel of
//! PixelCNN's masked convolutions, which compute only the taps their mask keeps.
//!
//! On flex with `f32` tensors, [`tap_conv`] runs its own forward and backward kernels (a
//! burn backend extension, see [`TapConvBackend`]); on every other backend, or another float
//! type, it composes burn's differentiable operations into the same function.

use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

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
/// dimension too small for the matrix kernels.
pub const PER_TAP_MIN_CHANNELS: usize = 8;

/// The sum over taps of each tap's shifted window times its block of the weight:
///
/// ```text
/// y[n, y, x, :] = Σ_t x̃[n, y + ky_t, x + kx_t, :] · W[t·in .. (t+1)·in, :]
/// ```
///
/// where `x̃` is the input zero-padded as `geometry` says. This is a stride-1 convolution
/// restricted to the given taps. Its backward pass is two sets of matrix products, one per
/// tap for the weight and one per tap for the input, instead of burn's convolution backward
/// (whose weight gradient is a convolution with an `H×W` kernel).
///
/// On flex (`f32`, at least [`PER_TAP_MIN_CHANNELS`] input channels) the forward and
/// backward passes are [`TapConvBackend`]'s kernels: the padded input is one flat matrix whose
/// rows are pixels of the padded grid, so each tap's window is the same matrix shifted by
/// `ky·W̃ + kx` rows, and every product runs straight on it with no copy per tap. Elsewhere,
/// burn's operations compute the same function (tested to agree).
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
    #[cfg(feature = "flex")]
    if c_in >= PER_TAP_MIN_CHANNELS && flex_kernel::applies(&input, &weight) {
        return flex_kernel::tap_conv(input, weight, geometry.clone());
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

#[cfg(feature = "flex")]
pub use flex_kernel::TapConvBackend;

#[cfg(feature = "flex")]
mod flex_kernel {
    //! The flex kernels, and their autodiff node.

    use super::TapGeometry;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, DispatchDevice, Flex, backend_extension};
    use burn::tensor::{DType, Shape, Tensor, TensorData};
    use rayon::prelude::*;
    use std::borrow::Cow;

    /// The tap convolution as a backend operation with its own backward pass; implemented for
    /// flex and autodiff-over-flex. Call it through [`super::tap_conv`], which checks the
    /// arguments and picks the backend.
    #[backend_extension(Flex, Autodiff)]
    pub trait TapConvBackend: Backend {
        /// [`super::tap_conv`] on backend primitives.
        fn tap_conv(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: TapGeometry,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies(input: &Tensor<4>, weight: &Tensor<2>) -> bool {
        let on_flex = matches!(
            input.device().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        );
        // f32 is the only float type the kernels handle.
        on_flex && input.dtype() == DType::F32 && weight.dtype() == DType::F32
    }

    pub(super) fn tap_conv(input: Tensor<4>, weight: Tensor<2>, geometry: TapGeometry) -> Tensor<4> {
        let output = <burn::backend::Dispatch as TapConvBackend>::tap_conv(
            input.into_dispatch(),
            weight.into_dispatch(),
            geometry,
        );
        Tensor::from_dispatch(output)
    }

    impl TapConvBackend for Flex {
        fn tap_conv(input: FlexTensor, weight: FlexTensor, geometry: TapGeometry) -> FlexTensor {
            let grid = Grid::new(&input, &weight, &geometry);
            let padded = grid.pad_input(&values(&input));
            grid.forward(&padded, &values(&weight))
        }
    }

    impl<C: CheckpointStrategy> TapConvBackend for Autodiff<Flex, C> {
        fn tap_conv(
            input: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: TapGeometry,
        ) -> FloatTensor<Self> {
            let input_tracked = input.is_tracked();
            let weight_tracked = weight.is_tracked();
            let grid = Grid::new(input.primitive(), weight.primitive(), &geometry);
            let (input_primitive, input_node) = input.into_parts();
            let (weight_primitive, weight_node) = weight.into_parts();
            let padded = grid.pad_input(&values(&input_primitive));
            let weight_values = values(&weight_primitive).into_owned();
            let output = grid.forward(&padded, &weight_values);
            match TapConvBackward
                .prepare::<C>([input_node, weight_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let state = TapConvState {
                        grid,
                        // Only what a tracked parent's gradient needs is kept.
                        padded: weight_tracked.then_some(padded),
                        weight: input_tracked.then_some(weight_values),
                    };
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct TapConvBackward;

    #[derive(Clone, Debug)]
    struct TapConvState {
        grid: Grid,
        padded: Option<Vec<f32>>,
        weight: Option<Vec<f32>>,
    }

    impl Backward<Flex, 2> for TapConvBackward {
        type State = TapConvState;

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [input_parent, weight_parent] = ops.parents;
            let grad_output = grads.consume::<Flex>(&ops.node);
            let state = ops.state;
            let grid = &state.grid;
            let grad_grid = grid.scatter_output(&values(&grad_output));
            if let (Some(parent), Some(weight)) = (input_parent, state.weight.as_ref()) {
                grads.register::<Flex>(parent.id, grid.input_gradient(&grad_grid, weight));
            }
            if let (Some(parent), Some(padded)) = (weight_parent, state.padded.as_ref()) {
                grads.register::<Flex>(parent.id, grid.weight_gradient(&grad_grid, padded));
            }
        }
    }

    /// The values of an `f32` flex tensor in row-major order, copied only where its layout
    /// is not already contiguous.
    fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
        match tensor.as_slice::<f32>() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(
                tensor
                    .to_contiguous()
                    .as_slice::<f32>()
                    .expect("a contiguous copy is contiguous")
                    .to_vec(),
            ),
        }
    }

    fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape.into()))
    }

    /// Rows of the padded grid per parallel chunk of the weight gradient.
    const WEIGHT_GRADIENT_CHUNK_ROWS: usize = 4096;

    /// The padded grid: the zero-padded input as one `[rows, in]` matrix whose row
    /// `(n·H̃ + y)·W̃ + x` is padded pixel `(n, y, x)`. The output is computed at the same
    /// rows, `[rows, out]`, where row `(n, y, x)` with `y < H`, `x < W` is output pixel
    /// `(n, y, x)` and the rest is discarded: tap `t` is then the input matrix shifted by
    /// `offset_t = ky·W̃ + kx` rows, one matrix product per tap on the same buffer. The input
    /// buffer has `max offset` zero rows more, which the discarded rows read.
    #[derive(Clone, Debug)]
    struct Grid {
        batch: usize,
        height: usize,
        width: usize,
        padded_height: usize,
        padded_width: usize,
        top: usize,
        left: usize,
        c_in: usize,
        c_out: usize,
        offsets: Vec<usize>,
    }

    impl Grid {
        fn new(input: &FlexTensor, weight: &FlexTensor, geometry: &TapGeometry) -> Self {
            let input_shape = input.layout().shape();
            let [batch, height, width, c_in] = [0, 1, 2, 3].map(|d| input_shape[d]);
            let c_out = weight.layout().shape()[1];
            let (padded_height, padded_width) = geometry.padded_size(height, width);
            let offsets = geometry
                .taps
                .iter()
                .map(|&[ky, kx]| ky * padded_width + kx)
                .collect();
            Self {
                batch,
                height,
                width,
                padded_height,
                padded_width,
                top: geometry.padding[0],
                left: geometry.padding[2],
                c_in,
                c_out,
                offsets,
            }
        }

        fn rows(&self) -> usize {
            self.batch * self.padded_height * self.padded_width
        }

        fn input_rows(&self) -> usize {
            self.rows() + self.offsets.iter().max().copied().unwrap_or(0)
        }

        /// The grid row of pixel `(n, y, x)` of the unpadded image.
        fn input_row(&self, n: usize, y: usize) -> usize {
            (n * self.padded_height + y + self.top) * self.padded_width + self.left
        }

        /// The grid row of output pixel `(n, y, 0)`.
        fn output_row(&self, n: usize, y: usize) -> usize {
            (n * self.padded_height + y) * self.padded_width
        }

        /// `[N, H, W, in]` → the padded input matrix.
        fn pad_input(&self, input: &[f32]) -> Vec<f32> {
            let mut padded = vec![0f32; self.input_rows() * self.c_in];
            let image_row = self.width * self.c_in;
            let padded_image = self.padded_height * self.padded_width * self.c_in;
            padded[..self.batch * padded_image]
                .par_chunks_mut(padded_image)
                .zip(input.par_chunks(self.height * image_row))
                .for_each(|(padded, image)| {
                    for (y, row) in image.chunks(image_row).enumerate() {
                        let start = self.input_row(0, y) * self.c_in;
                        padded[start..start + image_row].copy_from_slice(row);
                    }
                });
            padded
        }

        /// Grid rows → `[N, H, W, out]`, dropping the rows outside the image.
        fn gather_output(&self, grid: &[f32]) -> Vec<f32> {
            let image_row = self.width * self.c_out;
            let grid_image = self.padded_height * self.padded_width * self.c_out;
            let mut output = vec![0f32; self.batch * self.height * image_row];
            output
                .par_chunks_mut(self.height * image_row)
                .zip(grid.par_chunks(grid_image))
                .for_each(|(image, grid)| {
                    for (y, row) in image.chunks_mut(image_row).enumerate() {
                        let start = self.output_row(0, y) * self.c_out;
                        row.copy_from_slice(&grid[start..start + image_row]);
                    }
                });
            output
        }

        /// `[N, H, W, out]` gradient → grid rows, zero outside the image.
        fn scatter_output(&self, grad_output: &[f32]) -> Vec<f32> {
            let image_row = self.width * self.c_out;
            let grid_image = self.padded_height * self.padded_width * self.c_out;
            let mut grid = vec![0f32; self.rows() * self.c_out];
            grid.par_chunks_mut(grid_image)
                .zip(grad_output.par_chunks(self.height * image_row))
                .for_each(|(grid, image)| {
                    for (y, row) in image.chunks(image_row).enumerate() {
                        let start = self.output_row(0, y) * self.c_out;
                        grid[start..start + image_row].copy_from_slice(row);
                    }
                });
            grid
        }

        /// `y = Σ_t shift_t(x̃) · W_t`.
        fn forward(&self, padded: &[f32], weight: &[f32]) -> FlexTensor {
            let (rows, c_in, c_out) = (self.rows(), self.c_in, self.c_out);
            let mut grid = vec![0f32; rows * c_out];
            for (t, &offset) in self.offsets.iter().enumerate() {
                let lhs = &padded[offset * c_in..(offset + rows) * c_in];
                let rhs = &weight[t * c_in * c_out..(t + 1) * c_in * c_out];
                // SAFETY: `grid` is rows × out, `lhs` rows × in and `rhs` in × out, all
                // row-major and in bounds (the slices above check the bounds).
                unsafe {
                    gemm::gemm(
                        rows,
                        c_out,
                        c_in,
                        grid.as_mut_ptr(),
                        1,
                        c_out as isize,
                        t > 0,
                        lhs.as_ptr(),
                        1,
                        c_in as isize,
                        rhs.as_ptr(),
                        1,
                        c_out as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(0),
                    );
                }
            }
            let output = self.gather_output(&grid);
            flex_tensor(output, [self.batch, self.height, self.width, c_out])
        }

        /// `∂L/∂x = unpad(Σ_t shift_{−t}(∂L/∂y · W_tᵀ))`.
        fn input_gradient(&self, grad_grid: &[f32], weight: &[f32]) -> FlexTensor {
            let (rows, c_in, c_out) = (self.rows(), self.c_in, self.c_out);
            let mut grad_padded = vec![0f32; self.input_rows() * c_in];
            for (t, &offset) in self.offsets.iter().enumerate() {
                let dst = &mut grad_padded[offset * c_in..(offset + rows) * c_in];
                let weight_t = &weight[t * c_in * c_out..(t + 1) * c_in * c_out];
                // SAFETY: `dst` is rows × in (row stride in), `grad_grid` rows × out, and
                // `weight_t` read transposed is out × in (row stride 1, column stride out).
                unsafe {
                    gemm::gemm(
                        rows,
                        c_in,
                        c_out,
                        dst.as_mut_ptr(),
                        1,
                        c_in as isize,
                        true,
                        grad_grid.as_ptr(),
                        1,
                        c_out as isize,
                        weight_t.as_ptr(),
                        c_out as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(0),
                    );
                }
            }
            let image_row = self.width * c_in;
            let padded_image = self.padded_height * self.padded_width * c_in;
            let mut grad_input = vec![0f32; self.batch * self.height * image_row];
            grad_input
                .par_chunks_mut(self.height * image_row)
                .zip(grad_padded.par_chunks(padded_image))
                .for_each(|(image, padded)| {
                    for (y, row) in image.chunks_mut(image_row).enumerate() {
                        let start = self.input_row(0, y) * c_in;
                        row.copy_from_slice(&padded[start..start + image_row]);
                    }
                });
            flex_tensor(grad_input, [self.batch, self.height, self.width, c_in])
        }

        /// `∂L/∂W_t = shift_t(x̃)ᵀ · ∂L/∂y`, summed over chunks of rows computed in parallel
        /// (each product is only `in × out`, too small for the matrix kernel's own threads).
        fn weight_gradient(&self, grad_grid: &[f32], padded: &[f32]) -> FlexTensor {
            let (rows, c_in, c_out) = (self.rows(), self.c_in, self.c_out);
            let block = c_in * c_out;
            let taps = self.offsets.len();
            let chunks = rows.div_ceil(WEIGHT_GRADIENT_CHUNK_ROWS);
            let partials: Vec<Vec<f32>> = (0..taps * chunks)
                .into_par_iter()
                .map(|job| {
                    let (t, chunk) = (job / chunks, job % chunks);
                    let start = chunk * WEIGHT_GRADIENT_CHUNK_ROWS;
                    let len = WEIGHT_GRADIENT_CHUNK_ROWS.min(rows - start);
                    let first = self.offsets[t] + start;
                    let lhs = &padded[first * c_in..(first + len) * c_in];
                    let rhs = &grad_grid[start * c_out..(start + len) * c_out];
                    let mut partial = vec![0f32; block];
                    // SAFETY: `partial` is in × out; `lhs` read transposed is in × len (row
                    // stride 1, column stride in); `rhs` is len × out.
                    unsafe {
                        gemm::gemm(
                            c_in,
                            c_out,
                            len,
                            partial.as_mut_ptr(),
                            1,
                            c_out as isize,
                            false,
                            lhs.as_ptr(),
                            c_in as isize,
                            1,
                            rhs.as_ptr(),
                            1,
                            c_out as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    partial
                })
                .collect();
            let mut grad_weight = vec![0f32; taps * block];
            for (job, partial) in partials.iter().enumerate() {
                let t = job / chunks;
                for (sum, value) in grad_weight[t * block..(t + 1) * block]
                    .iter_mut()
                    .zip(partial)
                {
                    *sum += value;
                }
            }
            flex_tensor(grad_weight, [taps * c_in, c_out])
        }
    }
}

#[cfg(all(test, feature = "flex"))]
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
            taps: (0..3).flat_map(|ky| (0..3).map(move |kx| [ky, kx])).collect(),
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
        let taps = geometry.taps.len();
        let input_nchw: Tensor<4> =
            Tensor::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        let input_nchw = if track_input {
            input_nchw.require_grad()
        } else {
            input_nchw
        };
        let weight: Tensor<2> =
            Tensor::random([taps * c_in, c_out], Distribution::Normal(0.0, 0.3), &device)
                .require_grad();
        let upstream: Tensor<4> =
            Tensor::random([n, h, w, c_out], Distribution::Normal(0.0, 1.0), &device);
        assert!(flex_kernel::applies(&input_nchw.clone().permute([0, 2, 3, 1]), &weight));

        let run = |conv: &dyn Fn(Tensor<4>, Tensor<2>, &TapGeometry) -> Tensor<4>| {
            let output = conv(input_nchw.clone().permute([0, 2, 3, 1]), weight.clone(), geometry);
            let grads = (output.clone() * upstream.clone()).sum().backward();
            let grad_input = input_nchw.grad(&grads);
            let grad_weight = weight.grad(&grads).expect("weight gradient");
            (output, grad_input, grad_weight)
        };
        let (kernel_out, kernel_grad_input, kernel_grad_weight) = run(&tap_conv);
        let (composed_out, composed_grad_input, composed_grad_weight) = run(&tap_conv_composed);
        // Sums over thousands of rows, added in different orders.
        let tolerance = Tolerance::rel_abs(1e-5, 1e-4);
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
            let output = conv(input.clone().permute([0, 2, 3, 1]), weight.clone(), &geometry);
            output
                .permute([0, 3, 1, 2])
                .into_data()
                .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-4));
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

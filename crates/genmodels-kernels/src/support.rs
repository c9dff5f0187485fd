//! What the flex kernels share: whether one applies (flex, `f32`, switched on), and moving
//! `f32` values in and out of flex tensors.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device, Shape, TensorData};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Whether a kernel applies: the kernels are switched on ([`crate::enabled`]), `device` is flex
/// and every tensor is `f32`, the only float type the kernels handle.
pub(crate) fn is_flex_f32(device: &Device, dtypes: &[DType]) -> bool {
    crate::enabled()
        && crate::threads::is_flex(device)
        && dtypes.iter().all(|&dtype| dtype == DType::F32)
}

/// The values of an `f32` flex tensor in row-major order, copied only where its layout is not
/// already contiguous.
pub(crate) fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
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

/// An `f32` flex tensor `[N, …]` read as `N` images, each a contiguous run of values with
/// images a fixed stride apart: read in place when its layout is that (as a slice of a
/// concatenation along a later axis is, the U-Net's skip connections' gradients), copied into
/// order otherwise.
pub(crate) struct Images<'a> {
    values: Cow<'a, [f32]>,
    first: usize,
    stride: usize,
    len: usize,
}

impl Images<'_> {
    /// Image `n`'s values in row-major order.
    pub(crate) fn image(&self, n: usize) -> &[f32] {
        &self.values[self.first + n * self.stride..][..self.len]
    }

    /// Whether the images were read in place from a layout that is not contiguous.
    pub(crate) fn strided(&self) -> bool {
        matches!(self.values, Cow::Borrowed(_)) && self.stride != self.len
    }
}

/// `tensor`'s images, in place where each is contiguous (see [`Images`]).
pub(crate) fn images(tensor: &FlexTensor) -> Images<'_> {
    let layout = tensor.layout();
    let shape = layout.shape();
    let len: usize = shape[1..].iter().product();
    let strides = layout.strides();
    // Dimensions 1.. contiguous (a dimension of size 1 may have any stride), and the images
    // apart by at least their length, forwards.
    let mut expected = 1isize;
    let mut inner_contiguous = true;
    for d in (1..shape.len()).rev() {
        if shape[d] != 1 && strides[d] != expected {
            inner_contiguous = false;
        }
        expected *= shape[d] as isize;
    }
    let stride = if shape[0] > 1 {
        strides[0]
    } else {
        len as isize
    };
    if inner_contiguous && stride >= len as isize && len > 0 {
        let storage = tensor.storage::<f32>();
        let first = layout.start_offset();
        let stride = stride as usize;
        if shape[0] == 0 || first + (shape[0] - 1) * stride + len <= storage.len() {
            return Images {
                values: Cow::Borrowed(storage),
                first,
                stride,
                len,
            };
        }
    }
    Images {
        values: values(tensor),
        first: 0,
        stride: len,
        len,
    }
}

/// `values` as `MaybeUninit`, for kernels that write through either.
///
/// # Safety
/// The caller may only write initialised values through the result.
pub(crate) unsafe fn as_uninit_mut(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same size and alignment; the caller writes only initialised values.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `tensor` with a contiguous buffer of exactly its values, which it may then write in place
/// (flex copies a buffer that another tensor shares before the first write).
pub(crate) fn whole_buffer(tensor: FlexTensor) -> FlexTensor {
    let whole = tensor
        .as_slice::<f32>()
        .is_some_and(|slice| slice.len() == tensor.storage::<f32>().len());
    if whole {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// An `f32` flex tensor of `values` in row-major order.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// `len` values written in parallel, `chunk` per task (the last chunk shorter):
/// `fill(index, values)` writes chunk `index`, which it receives zeroed.
///
/// Zeroing each chunk on the thread that then writes it, just before it does, rather than the
/// whole buffer on one thread up front (`vec![0.0; len]`), takes a serial pass over memory out
/// of each kernel: while one thread zeroed megabytes the others waited.
pub(crate) fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(index, values)| fill(index, zeroed(values)));
    // SAFETY: every chunk of the first `len` values was initialised by `zeroed`.
    unsafe { buffer.set_len(len) };
    buffer
}

/// [`par_filled`] without the zeroing, for maps that write every value of their chunk: the
/// zeroing pass is a write of the whole buffer (in a PixelCNN training step, about as long as
/// the ReLU it preceded).
///
/// # Safety
/// `fill` must initialise every value of each chunk it is given.
pub(crate) unsafe fn par_written(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(index, values)| fill(index, values));
    // SAFETY: the caller's promise: every chunk of the first `len` values was initialised.
    unsafe { buffer.set_len(len) };
    buffer
}

/// [`par_filled`] for two buffers of the same length written together.
pub(crate) fn par_filled_pair(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> (Vec<f32>, Vec<f32>) {
    let (mut first, mut second) = (Vec::with_capacity(len), Vec::with_capacity(len));
    first.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .zip(second.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)))
        .enumerate()
        .for_each(|(index, (a, b))| fill(index, zeroed(a), zeroed(b)));
    // SAFETY: every chunk of the first `len` values of both was initialised by `zeroed`.
    unsafe {
        first.set_len(len);
        second.set_len(len);
    }
    (first, second)
}

/// `Σ f(a)` over `a`, in `LANES` independent `f32` accumulators that the compiler vectorises
/// (inlined, so that a caller compiled for AVX-512 or AVX2 gets those instructions).
#[inline(always)]
pub(crate) fn lane_sum_of<const LANES: usize>(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    let mut lanes = [0.0f32; LANES];
    for x in chunks {
        for lane in 0..LANES {
            lanes[lane] += f(x[lane]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ a` and `Σ a·b` over `a` and `b` (of equal lengths), as [`lane_sum_of`].
#[inline(always)]
pub(crate) fn lane_sum_and_dot<const LANES: usize>(a: &[f32], b: &[f32]) -> (f32, f32) {
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: (f32, f32) = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .fold((0.0, 0.0), |(s, d), (x, y)| (s + x, d + x * y));
    let (mut sum, mut dot) = ([0.0f32; LANES], [0.0f32; LANES]);
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            sum[lane] += x[lane];
            dot[lane] += x[lane] * y[lane];
        }
    }
    (
        sum.iter().sum::<f32>() + tail.0,
        dot.iter().sum::<f32>() + tail.1,
    )
}

fn zeroed(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    values.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was just initialised, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel slice of `[N, C, H, W]` is read in place, image by image; a transposed view
    /// is copied into order; both give the tensor's values.
    #[test]
    fn images_are_read_in_place_where_each_is_contiguous() {
        let values: Vec<f32> = (0..3 * 5 * 4 * 2).map(|i| i as f32).collect();
        let whole = flex_tensor(values, [3, 5, 4, 2]);
        // The values of channels `channels`, image by image, rows of x (or, transposed, of y).
        let in_order = |channels: std::ops::Range<usize>, transposed: bool| {
            let mut values = Vec::new();
            for n in 0..3 {
                for c in channels.clone() {
                    for outer in 0..if transposed { 2 } else { 4 } {
                        for inner in 0..if transposed { 4 } else { 2 } {
                            let (y, x) = if transposed {
                                (inner, outer)
                            } else {
                                (outer, inner)
                            };
                            values.push((((n * 5 + c) * 4 + y) * 2 + x) as f32);
                        }
                    }
                }
            }
            values
        };
        for (view, expected, in_place) in [
            (whole.narrow(1, 1, 3), in_order(1..4, false), true),
            (whole.clone(), in_order(0..5, false), false),
            (whole.transpose(2, 3), in_order(0..5, true), false),
        ] {
            let images = images(&view);
            assert_eq!(images.strided(), in_place);
            let image = expected.len() / 3;
            for n in 0..3 {
                assert_eq!(images.image(n), &expected[n * image..(n + 1) * image]);
            }
        }
    }
}

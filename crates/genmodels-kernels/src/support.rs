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

//! gemm's `f32` product as the flex kernels call it, and buffers it fills.

/// A matrix operand of [`product`]: where its first value is, and its column and row
/// strides (in values).
#[derive(Clone, Copy)]
pub(crate) struct Operand<P> {
    pub(crate) first: P,
    pub(crate) column_stride: isize,
    pub(crate) row_stride: isize,
}

impl<P> Operand<P> {
    pub(crate) fn row_major(first: P, row_stride: usize) -> Self {
        Self::strided(first, (1, row_stride as isize))
    }

    pub(crate) fn strided(first: P, (column_stride, row_stride): (isize, isize)) -> Self {
        Self {
            first,
            column_stride,
            row_stride,
        }
    }
}

/// `dst = lhs · rhs` for `[m, n, k]` (`lhs` m × k, `rhs` k × n), or `dst += lhs · rhs`
/// when `accumulate`: gemm's call with the arguments the kernels never vary left out.
///
/// # Safety
/// Each operand's values, for its shape and strides, must lie inside one allocation, and
/// `dst`'s must be writable and overlap neither of the others.
pub(crate) unsafe fn product(
    [m, n, k]: [usize; 3],
    dst: Operand<*mut f32>,
    accumulate: bool,
    lhs: Operand<*const f32>,
    rhs: Operand<*const f32>,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's promise.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.first,
            dst.column_stride,
            dst.row_stride,
            accumulate,
            lhs.first,
            lhs.column_stride,
            lhs.row_stride,
            rhs.first,
            rhs.column_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// A buffer of `len` floats that `write` fills, left uninitialised until then: the
/// products' first writes to their results read nothing, so zeroing would be wasted.
///
/// # Safety
/// `write` must write all `len` values through the pointer it is given.
pub(crate) unsafe fn written_by(len: usize, write: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    write(buffer.as_mut_ptr());
    // SAFETY: the caller's promise: all `len` values are written.
    unsafe { buffer.set_len(len) };
    buffer
}

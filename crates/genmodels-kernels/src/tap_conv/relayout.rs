//! Channels-first planes ↔ channels-last rows: the copies between burn's `[N, C, H, W]`
//! tensors and the tap kernels' grids.
//!
//! Both are transposes with the pixel rows at arbitrary offsets. An element at a time, the
//! copy costs a load, a store and the index arithmetic per value; on x86 with AVX, 8×8
//! blocks go through registers instead (eight loads, 24 shuffles, eight stores per 64
//! values). docs/benchmarks.md (change 15) measures what that gives a DCGAN step.

use std::mem::MaybeUninit;

/// `rows[offsets[p] + c] = planes[c·plane + p]` for every channel `c < channels` and pixel
/// `p < offsets.len()`. Writes only those values (so `rows` may be uninitialised elsewhere).
///
/// # Panics
/// If a plane or a row would reach past its slice.
pub(super) fn planes_to_rows(
    planes: &[f32],
    plane: usize,
    channels: usize,
    offsets: &[usize],
    rows: &mut [MaybeUninit<f32>],
) {
    planes_to_rows_on(Kernel::best(), planes, plane, channels, offsets, rows);
}

fn planes_to_rows_on(
    kernel: Kernel,
    planes: &[f32],
    plane: usize,
    channels: usize,
    offsets: &[usize],
    rows: &mut [MaybeUninit<f32>],
) {
    check(planes.len(), plane, channels, offsets, rows.len());
    let done = match kernel {
        Kernel::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx => full_blocks(channels, offsets.len()).inspect(|_| {
            // SAFETY: `Kernel::Avx` means AVX is present; `check` bounds every index.
            unsafe { avx::planes_to_rows(planes, plane, channels, offsets, rows) }
        }),
    };
    for_the_rest(done, channels, offsets, |c, p| {
        rows[offsets[p] + c].write(planes[c * plane + p]);
    });
}

/// `planes[c·plane + p] = rows[offsets[p] + c]`: the inverse of [`planes_to_rows`]. Writes
/// only those values.
///
/// # Panics
/// If a plane or a row would reach past its slice.
pub(super) fn rows_to_planes(
    rows: &[f32],
    offsets: &[usize],
    channels: usize,
    planes: &mut [MaybeUninit<f32>],
    plane: usize,
) {
    rows_to_planes_on(Kernel::best(), rows, offsets, channels, planes, plane);
}

fn rows_to_planes_on(
    kernel: Kernel,
    rows: &[f32],
    offsets: &[usize],
    channels: usize,
    planes: &mut [MaybeUninit<f32>],
    plane: usize,
) {
    check(planes.len(), plane, channels, offsets, rows.len());
    let done = match kernel {
        Kernel::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx => full_blocks(channels, offsets.len()).inspect(|_| {
            // SAFETY: `Kernel::Avx` means AVX is present; `check` bounds every index.
            unsafe { avx::rows_to_planes(rows, offsets, channels, planes, plane) }
        }),
    };
    for_the_rest(done, channels, offsets, |c, p| {
        planes[c * plane + p].write(rows[offsets[p] + c]);
    });
}

const BLOCK: usize = 8;

/// How the copies run: value by value, or in 8×8 blocks with AVX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx,
}

impl Kernel {
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            return Self::Avx;
        }
        Self::Scalar
    }
}

fn check(planes_len: usize, plane: usize, channels: usize, offsets: &[usize], rows_len: usize) {
    let pixels = offsets.len();
    assert!(pixels <= plane, "{pixels} pixels in planes of {plane}");
    if channels == 0 || pixels == 0 {
        return;
    }
    assert!(
        (channels - 1) * plane + pixels <= planes_len,
        "{channels} planes of {plane} in {planes_len} values"
    );
    let last = offsets.iter().max().expect("pixels > 0");
    assert!(last + channels <= rows_len, "a row past {rows_len} values");
}

/// `(channels, pixels)` rounded down to whole blocks, when there is at least one.
#[cfg(target_arch = "x86_64")]
fn full_blocks(channels: usize, pixels: usize) -> Option<(usize, usize)> {
    let (c, p) = (channels / BLOCK * BLOCK, pixels / BLOCK * BLOCK);
    (c > 0 && p > 0).then_some((c, p))
}

/// Visits the `(channel, pixel)` pairs outside the `(channels, pixels)` already `done`.
fn for_the_rest(
    done: Option<(usize, usize)>,
    channels: usize,
    offsets: &[usize],
    mut copy: impl FnMut(usize, usize),
) {
    let (full_c, full_p) = done.unwrap_or((0, 0));
    for p in 0..offsets.len() {
        let first = if p < full_p { full_c } else { 0 };
        for c in first..channels {
            copy(c, p);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::BLOCK;
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// The transpose of eight rows of eight values.
    #[target_feature(enable = "avx")]
    fn transpose8(r: [__m256; BLOCK]) -> [__m256; BLOCK] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// [`super::planes_to_rows`] over the whole 8×8 blocks.
    ///
    /// # Safety
    /// AVX must be present and the indices in bounds (`super::check`).
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn planes_to_rows(
        planes: &[f32],
        plane: usize,
        channels: usize,
        offsets: &[usize],
        rows: &mut [MaybeUninit<f32>],
    ) {
        let (source, target) = (planes.as_ptr(), rows.as_mut_ptr().cast::<f32>());
        for (p0, block_offsets) in offsets.chunks_exact(BLOCK).enumerate() {
            let p0 = p0 * BLOCK;
            for c0 in (0..channels / BLOCK * BLOCK).step_by(BLOCK) {
                // SAFETY: channel `c0 + i < channels` and pixels `p0..p0 + 8 ≤ offsets.len()`
                // are in bounds by the caller's check, as are the rows they go to.
                unsafe {
                    let block =
                        std::array::from_fn(|i| _mm256_loadu_ps(source.add((c0 + i) * plane + p0)));
                    for (&offset, values) in block_offsets.iter().zip(transpose8(block)) {
                        _mm256_storeu_ps(target.add(offset + c0), values);
                    }
                }
            }
        }
    }

    /// [`super::rows_to_planes`] over the whole 8×8 blocks.
    ///
    /// # Safety
    /// AVX must be present and the indices in bounds (`super::check`).
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn rows_to_planes(
        rows: &[f32],
        offsets: &[usize],
        channels: usize,
        planes: &mut [MaybeUninit<f32>],
        plane: usize,
    ) {
        let (source, target) = (rows.as_ptr(), planes.as_mut_ptr().cast::<f32>());
        for (p0, block_offsets) in offsets.chunks_exact(BLOCK).enumerate() {
            let p0 = p0 * BLOCK;
            for c0 in (0..channels / BLOCK * BLOCK).step_by(BLOCK) {
                // SAFETY: as in `planes_to_rows`, the other way round.
                unsafe {
                    let block =
                        std::array::from_fn(|j| _mm256_loadu_ps(source.add(block_offsets[j] + c0)));
                    for (i, values) in transpose8(block).into_iter().enumerate() {
                        _mm256_storeu_ps(target.add((c0 + i) * plane + p0), values);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::as_uninit_mut;

    /// Every channel count and pixel count around a block, with rows spread apart
    /// (a gap of 3 values between rows) and out of order, on each kernel this machine has.
    #[test]
    fn both_directions_match_the_definition_on_ragged_sizes() {
        let mut kernels = vec![Kernel::Scalar];
        if Kernel::best() != Kernel::Scalar {
            kernels.push(Kernel::best());
        }
        for kernel in kernels {
            check_both_directions(kernel);
        }
    }

    fn check_both_directions(kernel: Kernel) {
        for channels in [1, 3, 8, 9, 16, 21] {
            for pixels in [1, 7, 8, 13, 24] {
                let plane = pixels + 2;
                let planes: Vec<f32> = (0..channels * plane).map(|i| i as f32 + 0.5).collect();
                let offsets: Vec<usize> = (0..pixels)
                    .map(|p| (pixels - 1 - p) * (channels + 3) + 1)
                    .collect();
                let len = pixels * (channels + 3) + 1;
                let mut rows = vec![-1f32; len];
                // SAFETY: writes initialised values only.
                planes_to_rows_on(kernel, &planes, plane, channels, &offsets, unsafe {
                    as_uninit_mut(&mut rows)
                });
                let mut expected = vec![-1f32; len];
                for (p, &offset) in offsets.iter().enumerate() {
                    for c in 0..channels {
                        expected[offset + c] = planes[c * plane + p];
                    }
                }
                assert_eq!(
                    rows, expected,
                    "{kernel:?}: {channels} channels, {pixels} pixels"
                );

                let mut back = vec![-1f32; channels * plane];
                // SAFETY: as above.
                rows_to_planes_on(
                    kernel,
                    &rows,
                    &offsets,
                    channels,
                    unsafe { as_uninit_mut(&mut back) },
                    plane,
                );
                for c in 0..channels {
                    for p in 0..plane {
                        let want = if p < pixels {
                            planes[c * plane + p]
                        } else {
                            -1.0
                        };
                        let at = c * plane + p;
                        assert_eq!(
                            back[at], want,
                            "{kernel:?}: {channels}×{pixels} at {c}, {p}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "a row past")]
    fn a_row_past_the_end_is_refused() {
        let planes = vec![0f32; 16 * 8];
        let mut rows = vec![0f32; 16 * 8];
        let offsets: Vec<usize> = (0..8).map(|p| p * 16 + 1).collect();
        // SAFETY: writes initialised values only.
        planes_to_rows(&planes, 8, 16, &offsets, unsafe {
            as_uninit_mut(&mut rows)
        });
    }
}

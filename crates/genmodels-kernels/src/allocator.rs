//! The global allocator of the genmodels binaries (CLI, examples, benchmarks): mimalloc, told
//! to keep the memory it frees instead of handing it back to the operating system.
//!
//! Burn allocates a fresh buffer for nearly every tensor op, many of them megabytes, and frees
//! it a moment later. With the system allocator, or mimalloc's default of purging freed memory
//! after a delay, each training step page-faults its working set back in and the kernel zeroes
//! it again (about 900 page faults per PixelCNN step; `perf` showed 10–20% of a step in
//! `clear_page`). Keeping freed memory makes steady-state training fault-free
//! (docs/benchmarks.md measures it). The price: the process keeps its peak memory until it
//! exits, which suits a training or benchmarking run.
//!
//! It also counts the bytes it has handed out, so that `genmodels::bench::PeakMemory` can report
//! the peak of live heap memory exactly: resident memory cannot show it once freed memory is
//! kept and reused.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: genmodels::kernels::Allocator = genmodels::kernels::Allocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (milliseconds; −1: never purge).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

static CONFIGURED: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Whether [`Allocator`] is this process's global allocator (it has served an allocation).
pub fn is_installed() -> bool {
    CONFIGURED.load(Ordering::Relaxed)
}

/// Bytes allocated through [`Allocator`] and not yet freed.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The most [`live_bytes`] has been since the last [`reset_peak`].
pub fn peak_live_bytes() -> usize {
    PEAK_LIVE_BYTES.load(Ordering::Relaxed)
}

/// Starts a new peak at the bytes live now.
pub fn reset_peak() {
    PEAK_LIVE_BYTES.store(live_bytes(), Ordering::Relaxed);
}

#[inline]
fn count_allocation(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
}

#[inline]
fn count_free(bytes: usize) {
    LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// mimalloc that never returns freed memory to the operating system.
#[derive(Debug, Default, Clone, Copy)]
pub struct Allocator;

impl Allocator {
    #[inline]
    fn configure() {
        if !CONFIGURED.load(Ordering::Relaxed) {
            // Two threads may both get here; setting the option twice is harmless.
            CONFIGURED.store(true, Ordering::Relaxed);
            // SAFETY: sets a process-wide mimalloc option; it allocates nothing.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
        }
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc's own `GlobalAlloc`.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        let block = unsafe { MiMalloc.alloc(layout) };
        if !block.is_null() {
            count_allocation(layout.size());
        }
        block
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        let block = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !block.is_null() {
            count_allocation(layout.size());
        }
        block
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let block = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !block.is_null() {
            count_free(layout.size());
            count_allocation(new_size);
        }
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc v3's purge delay defaults to 1000 ms; no other option has that default, so
        // this pins the option number (unless the environment overrides it).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a mimalloc option.
            let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(
                default, 1000,
                "option {MI_OPTION_PURGE_DELAY} is not the purge delay"
            );
        }
        let layout = Layout::from_size_align(1 << 20, 64).unwrap();
        // SAFETY: a fresh allocation of `layout`, freed with the same layout.
        unsafe {
            let block = Allocator.alloc_zeroed(layout);
            assert!(!block.is_null());
            assert!(
                std::slice::from_raw_parts(block, 1 << 20)
                    .iter()
                    .all(|&b| b == 0)
            );
            Allocator.dealloc(block, layout);
        }
        // The counters follow the Allocator's own blocks (the test binary's global allocator
        // is the system one, so nothing else moves them).
        reset_peak();
        let before = live_bytes();
        // SAFETY: as above.
        unsafe {
            let block = Allocator.alloc(layout);
            assert_eq!(live_bytes(), before + (1 << 20));
            let grown = Allocator.realloc(block, layout, 3 << 20);
            assert_eq!(live_bytes(), before + (3 << 20));
            Allocator.dealloc(grown, Layout::from_size_align(3 << 20, 64).unwrap());
        }
        assert_eq!(live_bytes(), before);
        assert_eq!(peak_live_bytes(), before + (3 << 20));
        // SAFETY: reads a mimalloc option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, -1);
    }
}

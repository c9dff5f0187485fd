//! # genmodels-kernels
//!
//! genmodels' hand-written CPU kernels for burn's flex backend, in one place: each is a
//! drop-in for a burn operation or layer (same arguments, same result, same gradients), runs
//! its own fused forward and backward passes on flex with `f32` tensors, and falls back to the
//! *composed* form from burn's own ops everywhere else. Each kernel sits beside its fallback
//! and the test that holds them equal.
//!
//! | entry point | stands for | kernel |
//! |---|---|---|
//! | [`conv2d`], [`conv2d_padded`], [`conv_transpose2d`] | burn's `conv2d` (also with one-sided padding), `conv_transpose2d` | tap convolutions: one matrix product per kernel tap |
//! | [`tap_conv`] | a masked convolution over its kept taps | the same tap kernels |
//! | [`batch_norm`] | `BatchNorm::forward` | two passes each way in training |
//! | [`group_norm`], [`group_norm_silu`] | `GroupNorm::forward`, and SiLU after it | one task per group forward, two passes back |
//! | [`KernelForward`] | the `forward` of burn's `BatchNorm`, `GroupNorm`, `Conv2d`, `ConvTranspose2d`, `Linear` | the entry points above |
//! | [`leaky_relu`] | burn's `leaky_relu` | one pass each way |
//! | [`sigmoid`] | burn's `sigmoid` | one vectorised pass each way (no libm `expf`) |
//! | [`upsample_nearest`] | a nearest-neighbour repeat (reshape, broadcast, reshape) | one pass each way |
//! | [`gated_tanh`], [`lstm_cell`] | `tanh(a) ⊙ σ(b)`; an LSTM step | one pass each way |
//! | [`bernoulli_log_prob`] | `Σ x·l − softplus(l)` | one pass each way |
//! | [`FusedAdam`] | burn's `Adam` optimiser | one pass per parameter, in place |
//!
//! [`tanh`] needs no kernel of its own: it is a [`sigmoid`], whose backward pass is cheaper.
//!
//! ## Switching the kernels off
//!
//! Without the `kernels` cargo feature (on by default) none of them is compiled; at run time
//! [`set_enabled`]`(false)`, or the environment variable `GENMODELS_KERNELS=off`, sends every
//! call to the composed form, so that benchmarks measure what the kernels are worth and the
//! test suite checks the fallbacks (CI runs it both ways). Deleting a kernel touches this crate
//! only: models call their burn layers through [`KernelForward`] (`layer.kernel_forward(x)`),
//! and the functional entry points where burn has a function (a convolution with a computed
//! weight, a masked convolution's kept taps, an activation).
//!
//! Also here: [`machine`], the CPU's vector extensions and the matrix library's peak rate
//! that speed figures name; [`on_compute_threads`], which runs work on flex's own thread pool, and
//! [`Allocator`] (feature `mimalloc`), the global allocator of the genmodels binaries.

#![warn(missing_docs)]

mod activation;
mod adam;
#[cfg(feature = "mimalloc")]
pub mod allocator;
mod batch_norm;
mod bernoulli;
mod bias;
mod gates;
mod group_norm;
mod layers;
mod linear;
pub mod machine;
#[cfg(feature = "kernels")]
mod product;
mod sigmoid;
#[cfg(feature = "kernels")]
mod support;
mod tap_conv;
mod threads;
mod upsample;

use std::sync::atomic::{AtomicU8, Ordering};

pub use activation::{leaky_relu, leaky_relu_composed, relu, relu_composed, tanh};
pub use adam::FusedAdam;
#[cfg(feature = "mimalloc")]
pub use allocator::Allocator;
pub use batch_norm::batch_norm;
pub use bernoulli::{bernoulli_log_prob, bernoulli_log_prob_composed, softplus};
pub use bias::{add_channel_bias, add_channel_bias_composed};
pub use gates::{gated_tanh, gated_tanh_composed, lstm_cell, lstm_cell_composed, split_gates};
pub use group_norm::{group_norm, group_norm_silu, group_norm_silu_composed};
pub use layers::KernelForward;
pub use linear::{linear, linear_composed};
pub use sigmoid::sigmoid;
pub use tap_conv::{
    PER_TAP_MIN_CHANNELS, TapGeometry, conv_transpose2d, conv2d, conv2d_padded, tap_conv,
    tap_conv_composed,
};
pub use threads::on_compute_threads;
pub use upsample::{upsample_nearest, upsample_nearest_composed};

/// Whether the kernels were compiled in (the `kernels` cargo feature).
pub const COMPILED: bool = cfg!(feature = "kernels");

/// The run-time switch: unset (read the environment on first use), on or off.
static SWITCH: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

/// Whether the kernels run: compiled in ([`COMPILED`]) and not switched off, by
/// [`set_enabled`] or by `GENMODELS_KERNELS=off` (also `0` or `false`) in the environment.
pub fn enabled() -> bool {
    if !COMPILED {
        return false;
    }
    match SWITCH.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let off = std::env::var("GENMODELS_KERNELS").is_ok_and(|value| {
                matches!(value.to_ascii_lowercase().as_str(), "off" | "0" | "false")
            });
            SWITCH.store(if off { OFF } else { ON }, Ordering::Relaxed);
            !off
        }
    }
}

/// Switches the kernels on or off for the whole process, for every later call (a benchmark's
/// side-by-side runs). Has no effect where they were not compiled in.
pub fn set_enabled(on: bool) {
    SWITCH.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

//! Gate arithmetic shared by the gated and LSTM models, respecting colour groups.
//!
//! A masked convolution with `C` colour groups splits its output channels into `C` contiguous
//! blocks, one per colour (see [`MaskedConv2dConfig`](crate::MaskedConv2dConfig)). A layer
//! that computes several gates in one convolution lays them out *inside* each colour block:
//! block `g` holds gate 0, gate 1, … of colour `g`. [`split_gates`] takes such an output apart
//! so that every gate tensor again has contiguous colour blocks, and elementwise products of
//! gates never mix colours (which would let R see G of the same pixel).

//!
//! The arithmetic itself lives in `genmodels-kernels`, which runs each unit as one fused pass
//! on flex and composes burn's operations elsewhere.

pub use genmodels_kernels::split_gates;

/// The gated activation `tanh(a) ⊙ σ(b)` of van den Oord et al. (2016), with `a` and `b` the
/// two gates of `input` laid out per colour group ([`genmodels_kernels::gated_tanh`]).
///
/// # Shapes
/// - input: `[N, G·2·m, H, W]`
/// - output: `[N, G·m, H, W]`
pub use genmodels_kernels::gated_tanh as gated_activation;

/// One LSTM update from the pre-activations of the output, forget, input and content gates
/// (in that order inside each colour group), returning `(h, c)`:
///
/// ```text
/// c = σ(f) ⊙ c_prev + σ(i) ⊙ tanh(g),    h = σ(o) ⊙ tanh(c)
/// ```
///
/// ([`genmodels_kernels::lstm_cell`].)
///
/// # Shapes
/// - preactivations: `[N, G·4·m, H, W]`
/// - previous_cell, h, c: `[N, G·m, H, W]`
pub use genmodels_kernels::lstm_cell as lstm_update;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn gates_are_taken_from_inside_each_colour_block() {
        let device = Device::flex();
        // 2 colour groups × 2 gates × 1 channel: channels [R.a, R.b, G.a, G.b].
        let input = Tensor::<4>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4.], [1, 4, 1, 1]),
            &device,
        );
        let gates = split_gates(input, 2, 2);
        let a = gates[0].clone().try_into_vec_as::<f32>().unwrap();
        let b = gates[1].clone().try_into_vec_as::<f32>().unwrap();
        assert_eq!(a, vec![1., 3.]);
        assert_eq!(b, vec![2., 4.]);
    }
}

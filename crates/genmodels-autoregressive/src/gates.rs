//! Gate arithmetic shared by the gated and LSTM models, respecting colour groups.
//!
//! A masked convolution with `C` colour groups splits its output channels into `C` contiguous
//! blocks, one per colour (see [`MaskedConv2dConfig`](crate::MaskedConv2dConfig)). A layer
//! that computes several gates in one convolution lays them out *inside* each colour block:
//! block `g` holds gate 0, gate 1, … of colour `g`. [`split_gates`] takes such an output apart
//! so that every gate tensor again has contiguous colour blocks, and elementwise products of
//! gates never mix colours (which would let R see G of the same pixel).

use burn::tensor::Tensor;
use genmodels_kernels::{sigmoid, tanh};

/// Splits `[N, G·gates·m, H, W]` laid out per colour group into `gates` tensors `[N, G·m, H, W]`.
///
/// # Shapes
/// - input: `[N, colour_groups · gates · m, H, W]`
/// - output: `gates` tensors `[N, colour_groups · m, H, W]`
pub fn split_gates(input: Tensor<4>, gates: usize, colour_groups: usize) -> Vec<Tensor<4>> {
    let [n, channels, h, w] = input.dims();
    let m = channels / (gates * colour_groups);
    assert_eq!(
        channels,
        gates * colour_groups * m,
        "{channels} channels do not split into {gates} gates × {colour_groups} colour groups"
    );
    let grouped = input.reshape([n, colour_groups, gates, m, h * w]);
    (0..gates)
        .map(|gate| {
            grouped
                .clone()
                .narrow(2, gate, 1)
                .reshape([n, colour_groups * m, h, w])
        })
        .collect()
}

/// The gated activation `tanh(a) ⊙ σ(b)` of van den Oord et al. (2016), with `a` and `b` the
/// two gates of `input` laid out per colour group.
///
/// # Shapes
/// - input: `[N, G·2·m, H, W]`
/// - output: `[N, G·m, H, W]`
pub fn gated_activation(input: Tensor<4>, colour_groups: usize) -> Tensor<4> {
    let mut gates = split_gates(input, 2, colour_groups).into_iter();
    let (a, b) = (gates.next().unwrap(), gates.next().unwrap());
    tanh(a) * sigmoid(b)
}

/// One LSTM update from the pre-activations of the output, forget, input and content gates
/// (in that order inside each colour group):
///
/// ```text
/// c = σ(f) ⊙ c_prev + σ(i) ⊙ tanh(g),    h = σ(o) ⊙ tanh(c)
/// ```
///
/// Returns `(h, c)`.
///
/// # Shapes
/// - preactivations: `[N, G·4·m, H, W]`
/// - previous_cell, h, c: `[N, G·m, H, W]`
pub fn lstm_update(
    preactivations: Tensor<4>,
    previous_cell: Tensor<4>,
    colour_groups: usize,
) -> (Tensor<4>, Tensor<4>) {
    let mut gates = split_gates(preactivations, 4, colour_groups).into_iter();
    let mut next = || gates.next().unwrap();
    let (o, f, i, g) = (next(), next(), next(), next());
    let cell = sigmoid(f) * previous_cell + sigmoid(i) * tanh(g);
    (sigmoid(o) * tanh(cell.clone()), cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

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

//! Gated units in one pass each way: the Gated PixelCNN's `tanh(a) ⊙ σ(b)` and the LSTM cell
//! of the PixelRNNs.
//!
//! Both read their gates from one pre-activation tensor laid out in colour blocks: with `K`
//! gates of `m` maps each and `G` colour groups, the channels are `[G, K, m]` (group-major), so
//! that a gate of colour `g` multiplies only features of colour `g` ([`split_gates`]).

use burn::tensor::Tensor;

use crate::{sigmoid, tanh};

/// The `gates` gates of `input`, each `[N, G·m, H, W]`, taken from inside each of the
/// `colour_groups` blocks of channels (`[G, gates, m]`, group-major).
///
/// # Shapes
/// - input: `[N, G·gates·m, H, W]`
/// - output: `gates` tensors `[N, G·m, H, W]`
///
/// # Panics
/// If the channels do not split into `gates × colour_groups` blocks.
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
/// two gates of `input` ([`split_gates`]).
///
/// On flex (`f32`) one pass forward and one backward (see `GateBackend`), in place of about
/// ten element-wise passes and the copies of the gate views; elsewhere
/// [`gated_tanh_composed`] (tested to agree).
///
/// # Shapes
/// - input: `[N, G·2·m, H, W]`
/// - output: `[N, G·m, H, W]`
pub fn gated_tanh(input: Tensor<4>, colour_groups: usize) -> Tensor<4> {
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&[&input]) {
        return flex_kernel::gated_tanh(input, colour_groups);
    }
    gated_tanh_composed(input, colour_groups)
}

/// [`gated_tanh`] from burn's differentiable operations.
///
/// # Shapes
/// As [`gated_tanh`].
pub fn gated_tanh_composed(input: Tensor<4>, colour_groups: usize) -> Tensor<4> {
    let mut gates = split_gates(input, 2, colour_groups).into_iter();
    let (a, b) = (gates.next().unwrap(), gates.next().unwrap());
    tanh(a) * sigmoid(b)
}

/// One LSTM step from its gate pre-activations, gates in the order output, forget, input,
/// candidate (`o, f, i, g`, [`split_gates`]):
///
/// ```text
/// c = σ(f) ⊙ c_prev + σ(i) ⊙ tanh(g)
/// h = σ(o) ⊙ tanh(c)
/// ```
///
/// Returns `(h, c)`. On flex (`f32`) one pass forward and one backward for both outputs (see
/// `GateBackend`); elsewhere [`lstm_cell_composed`] (tested to agree).
///
/// # Shapes
/// - preactivations: `[N, G·4·m, H, W]`
/// - previous_cell: `[N, G·m, H, W]`
/// - output: `(h, c)`, `[N, G·m, H, W]` each
pub fn lstm_cell(
    preactivations: Tensor<4>,
    previous_cell: Tensor<4>,
    colour_groups: usize,
) -> (Tensor<4>, Tensor<4>) {
    #[cfg(feature = "kernels")]
    if flex_kernel::applies(&[&preactivations, &previous_cell]) {
        return flex_kernel::lstm_cell(preactivations, previous_cell, colour_groups);
    }
    lstm_cell_composed(preactivations, previous_cell, colour_groups)
}

/// [`lstm_cell`] from burn's differentiable operations.
///
/// # Shapes
/// As [`lstm_cell`].
pub fn lstm_cell_composed(
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

#[cfg(feature = "kernels")]
mod flex_kernel {
    //! The two gated units on flex, and their autodiff nodes. The backward passes recompute
    //! the gates from the pre-activations (a few vectorised exponentials per value) rather than
    //! keep them: nothing is stored beyond the inputs, which the graph holds anyway.

    use crate::sigmoid::{exp, vectorised};
    use crate::support::{flex_tensor, is_flex_f32, values};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Flex, backend_extension};
    use burn::tensor::Tensor;
    use rayon::prelude::*;

    /// About this many output values per parallel task (whole colour blocks).
    const VALUES_PER_TASK: usize = 1 << 13;

    /// The gated units as backend operations with their own backward passes; implemented for
    /// flex and autodiff-over-flex. Called through [`super::gated_tanh`] and
    /// [`super::lstm_cell`].
    #[backend_extension(Flex, Autodiff)]
    pub trait GateBackend: Backend {
        /// `[N, G·2·m, H, W]` → `tanh(a) ⊙ σ(b)`, `[N, G·m, H, W]`.
        fn fused_gated_tanh(input: FloatTensor<Self>, colour_groups: usize) -> FloatTensor<Self>;

        /// `[N, G·4·m, H, W]` and `[N, G·m, H, W]` → `h` and `c` stacked on the batch axis,
        /// `[2N, G·m, H, W]`.
        fn fused_lstm_cell(
            preactivations: FloatTensor<Self>,
            previous_cell: FloatTensor<Self>,
            colour_groups: usize,
        ) -> FloatTensor<Self>;
    }

    pub(super) fn applies(tensors: &[&Tensor<4>]) -> bool {
        let dtypes: Vec<_> = tensors.iter().map(|t| t.dtype()).collect();
        is_flex_f32(&tensors[0].device(), &dtypes)
    }

    pub(super) fn gated_tanh(input: Tensor<4>, colour_groups: usize) -> Tensor<4> {
        Tensor::from_dispatch(<burn::backend::Dispatch as GateBackend>::fused_gated_tanh(
            input.into_dispatch(),
            colour_groups,
        ))
    }

    pub(super) fn lstm_cell(
        preactivations: Tensor<4>,
        previous_cell: Tensor<4>,
        colour_groups: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let n = previous_cell.dims()[0];
        let stacked: Tensor<4> =
            Tensor::from_dispatch(<burn::backend::Dispatch as GateBackend>::fused_lstm_cell(
                preactivations.into_dispatch(),
                previous_cell.into_dispatch(),
                colour_groups,
            ));
        (stacked.clone().narrow(0, 0, n), stacked.narrow(0, n, n))
    }

    /// Where the gates lie: `blocks = N·G` colour blocks of `gates` gates of `block = m·H·W`
    /// values each.
    #[derive(Clone, Copy, Debug)]
    struct Blocks {
        blocks: usize,
        gates: usize,
        block: usize,
    }

    impl Blocks {
        fn of(input: &FlexTensor, gates: usize, colour_groups: usize) -> Self {
            let shape = input.layout().shape();
            let [n, channels, h, w] = shape[..] else {
                panic!("gate pre-activations are [N, C, H, W]");
            };
            assert_eq!(
                channels % (gates * colour_groups),
                0,
                "{channels} channels do not split into {gates} gates × {colour_groups} colour groups"
            );
            Self {
                blocks: n * colour_groups,
                gates,
                block: channels / (gates * colour_groups) * h * w,
            }
        }

        /// Blocks per parallel task.
        fn per_task(&self) -> usize {
            (VALUES_PER_TASK / self.block.max(1)).max(1)
        }

        /// The output shape `[N, G·m, H, W]` for input `shape`.
        fn output_shape(&self, shape: &[usize]) -> [usize; 4] {
            [shape[0], shape[1] / self.gates, shape[2], shape[3]]
        }
    }

    /// σ and tanh from the vectorisable `exp`.
    #[inline(always)]
    fn sigma(x: f32) -> f32 {
        1.0 / (1.0 + exp(-x))
    }

    #[inline(always)]
    fn tanh(x: f32) -> f32 {
        2.0 / (1.0 + exp(-2.0 * x)) - 1.0
    }

    vectorised! {
        /// `y = tanh(a)·σ(b)` over one colour block.
        fn gated_block(y: &mut [f32], a: &[f32], b: &[f32]) {
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = tanh(a) * sigma(b);
            }
        }
    }

    vectorised! {
        /// The gradients of one colour block's two gates from the output's, `g`.
        fn gated_block_backward(da: &mut [f32], db: &mut [f32], g: &[f32], a: &[f32], b: &[f32]) {
            for ((((da, db), &g), &a), &b) in
                da.iter_mut().zip(db.iter_mut()).zip(g).zip(a).zip(b)
            {
                let (t, s) = (tanh(a), sigma(b));
                *da = g * s * (1.0 - t * t);
                *db = g * t * s * (1.0 - s);
            }
        }
    }

    fn gated_forward(pre: &[f32], at: Blocks) -> Vec<f32> {
        let mut output = vec![0f32; at.blocks * at.block];
        let per_task = at.per_task();
        output
            .par_chunks_mut(at.block * per_task)
            .enumerate()
            .for_each(|(task, output)| {
                for (j, y) in output.chunks_mut(at.block).enumerate() {
                    let start = (task * per_task + j) * 2 * at.block;
                    let (a, b) = pre[start..start + 2 * at.block].split_at(at.block);
                    gated_block(y, a, b);
                }
            });
        output
    }

    fn gated_backward(pre: &[f32], upstream: &[f32], at: Blocks) -> Vec<f32> {
        let mut gradient = vec![0f32; at.blocks * 2 * at.block];
        let per_task = at.per_task();
        gradient
            .par_chunks_mut(2 * at.block * per_task)
            .enumerate()
            .for_each(|(task, gradient)| {
                for (j, gradient) in gradient.chunks_mut(2 * at.block).enumerate() {
                    let index = task * per_task + j;
                    let g = &upstream[index * at.block..(index + 1) * at.block];
                    let input = &pre[index * 2 * at.block..(index + 1) * 2 * at.block];
                    let (a, b) = input.split_at(at.block);
                    let (da, db) = gradient.split_at_mut(at.block);
                    gated_block_backward(da, db, g, a, b);
                }
            });
        gradient
    }

    vectorised! {
        /// One colour block of the LSTM step: `h` and `c` from the gates and `c_prev`.
        fn lstm_block(out: [&mut [f32]; 2], gates: [&[f32]; 4], c_prev: &[f32]) {
            let [h, c] = out;
            let [o, f, i, g] = gates;
            let n = h.len();
            let (c, o, f, i, g, c_prev) = (&mut c[..n], &o[..n], &f[..n], &i[..n], &g[..n], &c_prev[..n]);
            for k in 0..n {
                let c_new = sigma(f[k]) * c_prev[k] + sigma(i[k]) * tanh(g[k]);
                c[k] = c_new;
                h[k] = sigma(o[k]) * tanh(c_new);
            }
        }
    }

    vectorised! {
        /// One colour block of the LSTM step's backward pass: the gates' gradients (`o, f, i,
        /// g` side by side in `d_gates`) and `c_prev`'s, from those of `h` and `c`.
        fn lstm_block_backward(
            d_gates: &mut [f32],
            d_prev: &mut [f32],
            gates: [&[f32]; 4],
            c_prev: &[f32],
            dh: &[f32],
            dc: &[f32],
        ) {
            let n = d_prev.len();
            let [o, f, i, g] = gates;
            let (d_o, rest) = d_gates.split_at_mut(n);
            let (d_f, rest) = rest.split_at_mut(n);
            let (d_i, d_g) = rest.split_at_mut(n);
            let (d_g, o, f, i, g, c_prev, dh, dc) =
                (&mut d_g[..n], &o[..n], &f[..n], &i[..n], &g[..n], &c_prev[..n], &dh[..n], &dc[..n]);
            for k in 0..n {
                let (so, sf, si, tg) = (sigma(o[k]), sigma(f[k]), sigma(i[k]), tanh(g[k]));
                let tc = tanh(sf * c_prev[k] + si * tg);
                let dc_total = dc[k] + dh[k] * so * (1.0 - tc * tc);
                d_o[k] = dh[k] * tc * so * (1.0 - so);
                d_f[k] = dc_total * c_prev[k] * sf * (1.0 - sf);
                d_i[k] = dc_total * tg * si * (1.0 - si);
                d_g[k] = dc_total * si * (1.0 - tg * tg);
                d_prev[k] = dc_total * sf;
            }
        }
    }

    /// `h` then `c`, each `blocks · block` values.
    fn lstm_forward(pre: &[f32], previous: &[f32], at: Blocks) -> Vec<f32> {
        let len = at.blocks * at.block;
        let mut output = vec![0f32; 2 * len];
        let (hidden, cell) = output.split_at_mut(len);
        let per_task = at.per_task();
        let chunk = at.block * per_task;
        hidden
            .par_chunks_mut(chunk)
            .zip(cell.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(task, (hidden, cell))| {
                for (j, (h, c)) in hidden
                    .chunks_mut(at.block)
                    .zip(cell.chunks_mut(at.block))
                    .enumerate()
                {
                    let index = task * per_task + j;
                    let gates = &pre[index * 4 * at.block..(index + 1) * 4 * at.block];
                    let (o, rest) = gates.split_at(at.block);
                    let (f, rest) = rest.split_at(at.block);
                    let (i, g) = rest.split_at(at.block);
                    let c_prev = &previous[index * at.block..(index + 1) * at.block];
                    lstm_block([h, c], [o, f, i, g], c_prev);
                }
            });
        output
    }

    /// The gradients of the pre-activations and of the previous cell from those of `h` and
    /// `c` (stacked as the forward pass returned them).
    fn lstm_backward(
        pre: &[f32],
        previous: &[f32],
        upstream: &[f32],
        at: Blocks,
    ) -> (Vec<f32>, Vec<f32>) {
        let len = at.blocks * at.block;
        let (grad_hidden, grad_cell) = upstream.split_at(len);
        let mut grad_pre = vec![0f32; 4 * len];
        let mut grad_previous = vec![0f32; len];
        let per_task = at.per_task();
        grad_pre
            .par_chunks_mut(4 * at.block * per_task)
            .zip(grad_previous.par_chunks_mut(at.block * per_task))
            .enumerate()
            .for_each(|(task, (grad_pre, grad_previous))| {
                for (j, (d_gates, d_prev)) in grad_pre
                    .chunks_mut(4 * at.block)
                    .zip(grad_previous.chunks_mut(at.block))
                    .enumerate()
                {
                    let index = task * per_task + j;
                    let span = index * at.block..(index + 1) * at.block;
                    let gates = &pre[index * 4 * at.block..(index + 1) * 4 * at.block];
                    let (o, rest) = gates.split_at(at.block);
                    let (f, rest) = rest.split_at(at.block);
                    let (i, g) = rest.split_at(at.block);
                    let (c_prev, dh, dc) = (
                        &previous[span.clone()],
                        &grad_hidden[span.clone()],
                        &grad_cell[span],
                    );
                    lstm_block_backward(d_gates, d_prev, [o, f, i, g], c_prev, dh, dc);
                }
            });
        (grad_pre, grad_previous)
    }

    impl GateBackend for Flex {
        fn fused_gated_tanh(input: FlexTensor, colour_groups: usize) -> FlexTensor {
            let at = Blocks::of(&input, 2, colour_groups);
            let shape = at.output_shape(input.layout().shape());
            flex_tensor(gated_forward(&values(&input), at), shape)
        }

        fn fused_lstm_cell(
            preactivations: FlexTensor,
            previous_cell: FlexTensor,
            colour_groups: usize,
        ) -> FlexTensor {
            let at = Blocks::of(&preactivations, 4, colour_groups);
            let [n, c, h, w] = at.output_shape(preactivations.layout().shape());
            assert_eq!(
                previous_cell.layout().shape()[..],
                [n, c, h, w],
                "LSTM cell shape"
            );
            let output = lstm_forward(&values(&preactivations), &values(&previous_cell), at);
            flex_tensor(output, [2 * n, c, h, w])
        }
    }

    impl<C: CheckpointStrategy> GateBackend for Autodiff<Flex, C> {
        fn fused_gated_tanh(input: FloatTensor<Self>, colour_groups: usize) -> FloatTensor<Self> {
            let (input, node) = input.into_parts();
            let output = <Flex as GateBackend>::fused_gated_tanh(input.clone(), colour_groups);
            match GatedTanhNode
                .prepare::<C>([node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((input, colour_groups), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }

        fn fused_lstm_cell(
            preactivations: FloatTensor<Self>,
            previous_cell: FloatTensor<Self>,
            colour_groups: usize,
        ) -> FloatTensor<Self> {
            let (pre, pre_node) = preactivations.into_parts();
            let (previous, previous_node) = previous_cell.into_parts();
            let output = <Flex as GateBackend>::fused_lstm_cell(
                pre.clone(),
                previous.clone(),
                colour_groups,
            );
            match LstmCellNode
                .prepare::<C>([pre_node, previous_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((pre, previous, colour_groups), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    #[derive(Debug)]
    struct GatedTanhNode;

    impl Backward<Flex, 1> for GatedTanhNode {
        /// The input and the colour groups.
        type State = (FlexTensor, usize);

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            if let Some(parent) = parent {
                let (input, colour_groups) = ops.state;
                let at = Blocks::of(&input, 2, colour_groups);
                let gradient = gated_backward(&values(&input), &values(&upstream), at);
                let shape = input.layout().shape().clone();
                grads.register::<Flex>(parent.id, flex_tensor(gradient, shape));
            }
        }
    }

    #[derive(Debug)]
    struct LstmCellNode;

    impl Backward<Flex, 2> for LstmCellNode {
        /// The pre-activations, the previous cell and the colour groups.
        type State = (FlexTensor, FlexTensor, usize);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [pre_parent, previous_parent] = ops.parents;
            let upstream = grads.consume::<Flex>(&ops.node);
            let (pre, previous, colour_groups) = ops.state;
            let at = Blocks::of(&pre, 4, colour_groups);
            let (grad_pre, grad_previous) =
                lstm_backward(&values(&pre), &values(&previous), &values(&upstream), at);
            if let Some(parent) = pre_parent {
                let shape = pre.layout().shape().clone();
                grads.register::<Flex>(parent.id, flex_tensor(grad_pre, shape));
            }
            if let Some(parent) = previous_parent {
                let shape = previous.layout().shape().clone();
                grads.register::<Flex>(parent.id, flex_tensor(grad_previous, shape));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData, Tolerance};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 2.0), device)
    }

    /// Values and gradients of `ours` and `composed` agree on inputs of `shapes`.
    fn assert_same<const P: usize>(
        shapes: [[usize; 4]; P],
        ours: impl Fn([Tensor<4>; P]) -> Vec<Tensor<4>>,
        composed: impl Fn([Tensor<4>; P]) -> Vec<Tensor<4>>,
    ) {
        let device = Device::flex().autodiff();
        let inputs = shapes.map(|shape| random(shape, &device).require_grad());
        let run = |f: &dyn Fn([Tensor<4>; P]) -> Vec<Tensor<4>>| {
            let outputs = f(inputs.clone());
            let mut loss: Option<Tensor<1>> = None;
            let mut values = Vec::new();
            for (k, output) in outputs.into_iter().enumerate() {
                let weights = Tensor::ones(output.dims(), &device).cumsum(3).sin() * (k + 1) as f64;
                values.push(output.to_data());
                let term = (output * weights).sum();
                loss = Some(match loss {
                    Some(loss) => loss + term,
                    None => term,
                });
            }
            let grads = loss.expect("an output").backward();
            let gradients: Vec<TensorData> = inputs
                .iter()
                .map(|x| x.grad(&grads).expect("gradient").into_data())
                .collect();
            (values, gradients)
        };
        let (ours, theirs) = (run(&ours), run(&composed));
        for (a, b) in ours.0.iter().zip(&theirs.0) {
            a.assert_approx_eq::<f32>(b, Tolerance::absolute(2e-6));
        }
        for (a, b) in ours.1.iter().zip(&theirs.1) {
            a.assert_approx_eq::<f32>(b, Tolerance::absolute(1e-5));
        }
    }

    #[test]
    fn the_gated_activation_is_the_composed_one() {
        for (shape, groups) in [([3, 8, 5, 7], 1), ([2, 12, 4, 3], 3), ([1, 2, 1, 1], 1)] {
            assert_same(
                [shape],
                |[x]| vec![gated_tanh(x, groups)],
                |[x]| vec![gated_tanh_composed(x, groups)],
            );
        }
    }

    #[test]
    fn the_lstm_cell_is_the_composed_one_in_both_outputs() {
        for ([n, c, h, w], groups) in [([3, 16, 1, 7], 1), ([2, 24, 2, 3], 3), ([4, 32, 1, 28], 1)]
        {
            let cell = [n, c / 4, h, w];
            assert_same(
                [[n, c, h, w], cell],
                |[pre, previous]| {
                    let (h, c) = lstm_cell(pre, previous, groups);
                    vec![h, c]
                },
                |[pre, previous]| {
                    let (h, c) = lstm_cell_composed(pre, previous, groups);
                    vec![h, c]
                },
            );
        }
    }

    #[test]
    fn an_lstm_cell_by_hand_and_untracked() {
        // One image, one map, one pixel: o = 0, f = 2, i = −1, g = 0.5, c_prev = 3.
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let c = s(2.0) * 3.0 + s(-1.0) * 0.5f32.tanh();
        let h = s(0.0) * c.tanh();
        for device in [Device::flex(), Device::flex().autodiff()] {
            let pre: Tensor<4> = Tensor::from_data(
                TensorData::new(vec![0.0f32, 2.0, -1.0, 0.5], [1, 4, 1, 1]),
                &device,
            );
            let previous: Tensor<4> =
                Tensor::from_data(TensorData::new(vec![3.0f32], [1, 1, 1, 1]), &device);
            let (hidden, cell) = lstm_cell(pre, previous, 1);
            hidden.into_data().assert_approx_eq::<f32>(
                &TensorData::new(vec![h], [1, 1, 1, 1]),
                Tolerance::absolute(1e-6),
            );
            cell.into_data().assert_approx_eq::<f32>(
                &TensorData::new(vec![c], [1, 1, 1, 1]),
                Tolerance::absolute(1e-6),
            );
        }
    }
}

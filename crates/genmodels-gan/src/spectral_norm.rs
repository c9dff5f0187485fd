//! Spectral normalisation (Miyato et al. 2018): a layer uses `W / σ(W)`, with `σ(W)` the
//! largest singular value of its weight, estimated by power iteration with a persistent
//! vector.
//!
//! With a unit vector `u` carried from step to step, one power iteration is
//!
//! ```text
//! v ← Wᵀu / ‖Wᵀu‖,   u ← Wv / ‖Wv‖,   σ(W) ≈ uᵀWv,
//! ```
//!
//! on `W` reshaped to a matrix (a convolution's `[out, in·kh·kw]`). `u` and `v` are held
//! constant in the gradient (as in the paper), so gradients flow through `W` both directly and
//! through `σ`. One iteration per training step suffices because `W` changes slowly and `u`
//! is kept: over steps the iterations accumulate.
//!
//! `u` is a [`RunningState`], like batch norm's running mean: saved in checkpoints, never
//! trained. Power iterations run on training forwards (on an autodiff device) only; inference
//! uses the stored `u`, so evaluating a model does not change it.

use burn::module::{Module, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::linear;
use burn::tensor::{Device, Distribution, Tensor};
use genmodels_kernels::KernelForward;

/// Guards the normalisations against a zero vector.
const EPSILON: f64 = 1e-12;

/// The power-iteration state of one spectrally normalised weight.
#[derive(Module, Debug)]
pub struct SpectralNorm {
    /// The left singular vector estimate `u`, `[rows]` of the weight matrix.
    pub u: RunningState<Tensor<1>>,
    /// Power iterations per training forward.
    pub iterations: usize,
}

impl SpectralNorm {
    /// A state for a weight matrix with `rows` rows, with a random unit `u` (drawn from the
    /// device RNG, so seeded with the model).
    pub fn new(rows: usize, iterations: usize, device: &Device) -> Self {
        let u = Tensor::<1>::random([rows], Distribution::Normal(0.0, 1.0), device);
        let u = l2_normalise(u.reshape([1, rows])).reshape([rows]);
        Self {
            u: RunningState::new(u),
            iterations,
        }
    }

    /// Runs `iterations` power iterations on `weight` (held constant) and stores the new `u`.
    /// Returns `(u, v)`.
    ///
    /// # Shapes
    /// - weight: `[rows, cols]`
    /// - output: `[1, rows]`, `[1, cols]`
    pub fn power_iteration(&self, weight: Tensor<2>, iterations: usize) -> (Tensor<2>, Tensor<2>) {
        let weight = weight.detach();
        let [rows, _] = weight.dims();
        let device = weight.device();
        let mut u = self
            .u
            .value_sync()
            .to_device(&device)
            .detach()
            .reshape([1, rows]);
        let mut v = l2_normalise(u.clone().matmul(weight.clone()));
        for _ in 0..iterations {
            v = l2_normalise(u.matmul(weight.clone()));
            u = l2_normalise(v.clone().matmul(weight.clone().transpose()));
        }
        if iterations > 0 {
            self.u.update(u.clone().reshape([rows]).detach());
        }
        (u, v)
    }

    /// The estimate `σ(W) = uᵀWv`, after [`Self::iterations`] power iterations on a training
    /// forward (none at inference). Differentiable in `W`.
    ///
    /// # Shapes
    /// - weight: `[rows, cols]`
    /// - output: `[1, 1]`
    pub fn sigma(&self, weight: Tensor<2>) -> Tensor<2> {
        let iterations = if weight.device().is_autodiff() {
            self.iterations
        } else {
            0
        };
        let (u, v) = self.power_iteration(weight.clone(), iterations);
        u.matmul(weight).matmul(v.transpose())
    }

    /// `W / σ(W)`.
    ///
    /// # Shapes
    /// - weight: `[rows, cols]`
    /// - output: `[rows, cols]`
    pub fn normalise(&self, weight: Tensor<2>) -> Tensor<2> {
        let sigma = self.sigma(weight.clone());
        weight / sigma
    }
}

/// `x / ‖x‖` for a row vector.
fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum()
        .sqrt()
        .clamp_min(EPSILON)
        .reshape([1, 1]);
    x / norm
}

/// A linear layer whose weight is optionally spectrally normalised.
///
/// burn stores a linear weight as `[d_input, d_output]`; `σ` is the same for a matrix and its
/// transpose, so `u` here has `d_input` entries.
#[derive(Module, Debug)]
pub struct SnLinear {
    /// The affine layer (its raw weight when normalised).
    pub linear: Linear,
    /// The normalisation state, when on.
    pub spectral_norm: Option<SpectralNorm>,
}

impl SnLinear {
    /// A `d_input → d_output` layer drawn from `initializer`, normalised with
    /// `power_iterations` per training forward when `Some`.
    pub fn new(
        d_input: usize,
        d_output: usize,
        initializer: Initializer,
        power_iterations: Option<usize>,
        device: &Device,
    ) -> Self {
        let linear = LinearConfig::new(d_input, d_output)
            .with_initializer(initializer)
            .init(device);
        Self {
            linear,
            spectral_norm: power_iterations.map(|k| SpectralNorm::new(d_input, k, device)),
        }
    }

    /// The weight the layer applies, `[d_input, d_output]`: `W/σ(W)` or `W`.
    pub fn effective_weight(&self) -> Tensor<2> {
        let weight = self.linear.weight.val();
        match &self.spectral_norm {
            Some(sn) => sn.normalise(weight),
            None => weight,
        }
    }

    /// `x W + b`.
    ///
    /// # Shapes
    /// - input: `[N, d_input]`
    /// - output: `[N, d_output]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        match &self.spectral_norm {
            None => self.linear.kernel_forward(input),
            Some(_) => match &self.linear.bias {
                Some(bias) => genmodels_kernels::linear(input, self.effective_weight(), bias.val()),
                None => linear(input, self.effective_weight(), None),
            },
        }
    }
}

/// A 4×4, stride-2, padding-1 convolution (halves H and W) whose weight is optionally
/// spectrally normalised.
#[derive(Module, Debug)]
pub struct SnConv2d {
    /// The convolution (its raw weight when normalised).
    pub conv: Conv2d,
    /// The normalisation state, when on; `u` has `channels_out` entries.
    pub spectral_norm: Option<SpectralNorm>,
}

impl SnConv2d {
    /// A `c_in → c_out` down-sampling convolution drawn from `initializer`, with a bias when
    /// `bias` (none before batch norm, which has its own shift).
    pub fn down(
        c_in: usize,
        c_out: usize,
        bias: bool,
        initializer: Initializer,
        power_iterations: Option<usize>,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new([c_in, c_out], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(bias)
            .with_initializer(initializer)
            .init(device);
        Self {
            conv,
            spectral_norm: power_iterations.map(|k| SpectralNorm::new(c_out, k, device)),
        }
    }

    /// The weight the layer applies, `[c_out, c_in, 4, 4]`.
    pub fn effective_weight(&self) -> Tensor<4> {
        let weight = self.conv.weight.val();
        match &self.spectral_norm {
            Some(sn) => {
                let dims = weight.dims();
                let matrix = weight.reshape([dims[0], dims[1] * dims[2] * dims[3]]);
                sn.normalise(matrix).reshape(dims)
            }
            None => weight,
        }
    }

    /// # Shapes
    /// - input: `[N, c_in, H, W]`
    /// - output: `[N, c_out, H/2, W/2]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        if self.spectral_norm.is_none() {
            return self.conv.kernel_forward(input);
        }
        // burn's convolution with the normalised weight (padding 1 as `down` builds it): the
        // function, as the weight is computed; on flex run by the tap kernels.
        genmodels_kernels::conv2d(
            input,
            self.effective_weight(),
            self.conv.bias.as_ref().map(|b| b.val()),
            self.conv.stride[0],
            1,
        )
    }
}

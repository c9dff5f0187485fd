//! Masked 2-D convolution: the causal building block of PixelCNN.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use genmodels_kernels::{TapGeometry, conv2d, conv2d_padded, tap_conv};

/// Which connections to the centre pixel a mask keeps.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum MaskType {
    /// Excludes the centre pixel's own channel (and later channels): the first layer, which
    /// must not see the value it predicts.
    A,
    /// Includes the centre pixel's own channel group: every later layer, whose centre
    /// features already depend only on earlier pixels.
    B,
}

/// How a [`MaskedConv2d`] computes its convolution. Both give the same result.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum MaskedConvImpl {
    /// One `k×k` convolution with the masked weights zeroed: simple, but half the
    /// multiplications are by zero.
    Masked,
    /// Two convolutions over only what the mask keeps: `(k/2)×k` on the rows above and
    /// `1×(k/2+1)` on the current row up to the centre (whose channel mask is applied).
    Split,
    /// Channels-last matrix products over only the taps the mask keeps (see
    /// [`MaskedConv2d::forward_channels_last`]): the fastest on flex, and the leanest in
    /// memory during training.
    Gemm,
}

/// Configuration of a [`MaskedConv2d`].
#[derive(Config, Debug)]
pub struct MaskedConv2dConfig {
    /// Input and output channels. Both must be multiples of `colour_groups`, except that the
    /// input of the first layer may be the image itself (`colour_groups` channels).
    pub channels: [usize; 2],
    /// Side of the square kernel; odd.
    pub kernel_size: usize,
    /// Mask type.
    pub mask: MaskType,
    /// Colour channels C of the image (1 for grey, 3 for RGB). Feature maps are split into C
    /// contiguous groups, one per colour, in R → G → B order, as in the PixelRNN paper.
    #[config(default = 1)]
    pub colour_groups: usize,
    /// How the convolution is computed.
    #[config(default = "MaskedConvImpl::Split")]
    pub implementation: MaskedConvImpl,
}

/// A convolution whose kernel sees only pixels before the centre in raster order, and at the
/// centre only earlier colour groups (mask A) or also its own (mask B).
///
/// For kernel position `(dy, dx)` relative to the centre, input group `g_in` and output group
/// `g_out`, the weight is kept when `dy < 0`, or `dy = 0 ∧ dx < 0`, or at the centre when
/// `g_in < g_out` (mask A) or `g_in ≤ g_out` (mask B).
#[derive(Module, Debug)]
pub struct MaskedConv2d {
    conv: Conv2d,
    /// The 0/1 mask, `[out, in, k, k]`; a constant, rebuilt from the config, not trained.
    mask: Tensor<4>,
    /// The centre row's mask up to the centre, `[out, in, 1, k/2+1]`, for the split form.
    row_mask: Tensor<4>,
    /// Indices `ky·k + kx` of the kernel taps the mask keeps (for any channel pair), in
    /// raster order, for the matrix-product form.
    #[module(skip)]
    kept_taps: Vec<usize>,
    #[module(skip)]
    kernel_size: usize,
    #[module(skip)]
    implementation: MaskedConvImpl,
}

impl MaskedConv2dConfig {
    /// Builds the layer.
    ///
    /// # Panics
    /// For an even kernel or channel counts that do not split into the colour groups: these
    /// are programming errors in a model definition, caught by its own config validation.
    pub fn init(&self, device: &Device) -> MaskedConv2d {
        let k = self.kernel_size;
        assert!(
            k % 2 == 1,
            "masked convolutions need an odd kernel, got {k}"
        );
        let conv = Conv2dConfig::new(self.channels, [k, k]).init(device);
        let [c_in, c_out] = self.channels;
        let mask = Tensor::<4>::from_data(
            TensorData::new(self.mask_values(), [c_out, c_in, k, k]),
            device,
        );
        let row_mask = mask
            .clone()
            .slice([0..c_out, 0..c_in, k / 2..k / 2 + 1, 0..k / 2 + 1]);
        let values = self.mask_values();
        let kept_taps = (0..k * k)
            .filter(|&tap| values.chunks(k * k).any(|kernel| kernel[tap] != 0.0))
            .collect();
        MaskedConv2d {
            conv,
            mask,
            row_mask,
            kept_taps,
            kernel_size: k,
            implementation: self.implementation,
        }
    }

    /// The mask, `[out, in, k, k]` row-major.
    pub fn mask_values(&self) -> Vec<f32> {
        let [c_in, c_out] = self.channels;
        let k = self.kernel_size;
        let groups = self.colour_groups.max(1);
        let group_of = |channel: usize, total: usize| {
            assert!(
                total.is_multiple_of(groups),
                "{total} channels do not split into {groups} colour groups"
            );
            channel / (total / groups)
        };
        let centre = (k / 2) as isize;
        let mut mask = vec![0f32; c_out * c_in * k * k];
        for o in 0..c_out {
            let g_out = group_of(o, c_out);
            for i in 0..c_in {
                let g_in = group_of(i, c_in);
                for y in 0..k {
                    for x in 0..k {
                        let (dy, dx) = (y as isize - centre, x as isize - centre);
                        let keep = dy < 0
                            || (dy == 0 && dx < 0)
                            || (dy == 0
                                && dx == 0
                                && match self.mask {
                                    MaskType::A => g_in < g_out,
                                    MaskType::B => g_in <= g_out,
                                });
                        if keep {
                            mask[((o * c_in + i) * k + y) * k + x] = 1.0;
                        }
                    }
                }
            }
        }
        mask
    }
}

impl MaskedConv2d {
    /// The kernel with the mask applied, `[out, in, k, k]`, and the bias `[out]`: what the
    /// cached samplers multiply cached activation windows with.
    ///
    /// Reads the bias before the weight, as [`forward`](Self::forward) does: burn initialises
    /// parameters lazily on first read, so the order of first reads fixes the weights a seed
    /// gives.
    pub(crate) fn masked_weight_and_bias(&self) -> (Tensor<4>, Option<Tensor<1>>) {
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        (self.conv.weight.val() * self.mask.clone(), bias)
    }

    /// Applies the masked convolution with "same" padding.
    ///
    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H, W]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        if self.implementation == MaskedConvImpl::Gemm {
            let output = self.forward_channels_last(input.permute([0, 2, 3, 1]));
            return output.permute([0, 3, 1, 2]);
        }
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let weight = self.conv.weight.val();
        let k = self.kernel_size;
        let half = k / 2;
        if self.implementation == MaskedConvImpl::Masked || k == 1 {
            return conv2d(input, weight * self.mask.clone(), bias, 1, half);
        }
        let [n, _, h, w] = input.dims();
        let [c_out, c_in, _, _] = weight.dims();
        // Rows above: output row y reads input rows y−k/2 … y−1. Padding k/2 on top and none
        // below yields H+1 rows; the last one would read row H−1 for row H, and is dropped.
        let above = weight.clone().slice([0..c_out, 0..c_in, 0..half, 0..k]);
        let from_above = conv2d_padded(input.clone(), above, None, [half, 0, half, half]).slice([
            0..n,
            0..c_out,
            0..h,
            0..w,
        ]);
        // The current row, left of the centre and the centre itself (channel-masked).
        let row =
            weight.slice([0..c_out, 0..c_in, half..half + 1, 0..half + 1]) * self.row_mask.clone();
        from_above + conv2d_padded(input, row, bias, [0, 0, half, 0])
    }
}

impl MaskedConv2d {
    /// The same convolution on channels-last feature maps, computed only over the kernel taps
    /// the mask keeps, with matrix products, whatever the configured implementation:
    ///
    /// ```text
    /// y[n, y, x, :] = b + Σ_t x[n, y + dy_t, x + dx_t, :] · W_t,   W_t = (W ⊙ M)[:, :, t]ᵀ
    /// ```
    ///
    /// over the `T` kept taps `t = (dy_t, dx_t)`, zero outside the image. A 1×1 layer is one
    /// matrix product; a wider kernel is a [`tap_conv`] over the kept taps, with the input
    /// padded above and to both sides (flex runs it with its own backward kernels). burn's
    /// convolution would compute the masked-out half, and its weight gradient is a
    /// convolution with an `H×W` kernel, while here the backward pass is matrix products.
    ///
    /// Layers in a row of channels-last calls need no layout changes between them (PixelCNN's
    /// forward pass).
    ///
    /// # Shapes
    /// - input: `[N, H, W, in]`
    /// - output: `[N, H, W, out]`
    pub fn forward_channels_last(&self, input: Tensor<4>) -> Tensor<4> {
        let [n, h, w, c_in] = input.dims();
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let weight = self.conv.weight.val();
        let [c_out, _, k, _] = weight.dims();
        let taps = self.kept_taps.len();
        let tap_indices: Vec<i64> = self.kept_taps.iter().map(|&tap| tap as i64).collect();
        let tap_indices =
            Tensor::<1, Int>::from_data(TensorData::new(tap_indices, [taps]), &weight.device());
        // [out, in, k, k] → the kept taps' rows of a `[T·in, out]` matrix, row t·in + i.
        let weight = (weight * self.mask.clone())
            .reshape([c_out, c_in, k * k])
            .select(2, tap_indices)
            .permute([2, 1, 0])
            .reshape([taps * c_in, c_out]);
        if k == 1 {
            // One product per pixel: with a bias, one fused kernel on flex.
            let pixels = input.reshape([n * h * w, c_in]);
            let output = match bias {
                Some(bias) => genmodels_kernels::linear(pixels, weight, bias),
                None => pixels.matmul(weight),
            };
            return output.reshape([n, h, w, c_out]);
        }

        // Taps reach k/2 rows up and k/2 columns either way, never down: pad top, left and
        // right with zeros, and tap (ky, kx) is the window starting at (ky, kx).
        let half = k / 2;
        let geometry = TapGeometry {
            taps: self
                .kept_taps
                .iter()
                .map(|&tap| [tap / k, tap % k])
                .collect(),
            padding: [half, 0, half, half],
        };
        let output = tap_conv(input, weight, &geometry);
        match bias {
            Some(bias) => genmodels_kernels::add_channel_bias(output, bias, 3),
            None => output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(kind: MaskType, channels: [usize; 2], groups: usize) -> Vec<f32> {
        MaskedConv2dConfig::new(channels, 3, kind)
            .with_colour_groups(groups)
            .mask_values()
    }

    #[test]
    fn single_channel_masks_keep_rows_above_and_pixels_to_the_left() {
        let a = mask(MaskType::A, [1, 1], 1);
        assert_eq!(a, vec![1., 1., 1., 1., 0., 0., 0., 0., 0.]);
        let b = mask(MaskType::B, [1, 1], 1);
        assert_eq!(b, vec![1., 1., 1., 1., 1., 0., 0., 0., 0.]);
    }

    #[test]
    fn colour_masks_follow_r_g_b_order_at_the_centre() {
        // Image RGB in, six features (two per colour) out.
        let a = mask(MaskType::A, [3, 6], 3);
        let centre = |m: &[f32], o: usize, i: usize| m[(o * 3 + i) * 9 + 4];
        // R features see no colour of the current pixel; G sees R; B sees R and G.
        for (o, allowed) in [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)] {
            for i in 0..3 {
                assert_eq!(
                    centre(&a, o, i),
                    f32::from(u8::from(i < allowed)),
                    "out {o}, in {i}"
                );
            }
        }
        let b = mask(MaskType::B, [6, 6], 3);
        let centre_b = |o: usize, i: usize| b[(o * 6 + i) * 9 + 4];
        assert_eq!(centre_b(2, 3), 1.0, "G sees G under mask B");
        assert_eq!(centre_b(2, 4), 0.0, "G does not see B");
    }

    #[test]
    fn split_gemm_and_masked_forms_compute_the_same_convolution() {
        let device = Device::flex();
        for (k, mask, groups, channels) in [
            (7, MaskType::A, 1, [1, 8]),
            (1, MaskType::B, 1, [4, 6]),
            // At least 8 input channels: the matrix-product form's per-tap path.
            (3, MaskType::B, 1, [8, 5]),
            (5, MaskType::A, 3, [12, 6]),
            (3, MaskType::B, 1, [4, 4]),
            (5, MaskType::A, 3, [3, 6]),
            (3, MaskType::B, 3, [6, 3]),
        ] {
            let config = MaskedConv2dConfig::new(channels, k, mask).with_colour_groups(groups);
            let masked = config
                .clone()
                .with_implementation(MaskedConvImpl::Masked)
                .init(&device);
            // The same weights in both forms.
            let mut split = config
                .clone()
                .with_implementation(MaskedConvImpl::Split)
                .init(&device);
            split.conv = masked.conv.clone();
            let input = Tensor::<4>::random(
                [2, channels[0], 6, 5],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let a = masked
                .forward(input.clone())
                .try_into_vec_as::<f32>()
                .unwrap();
            let mut gemm = config
                .clone()
                .with_implementation(MaskedConvImpl::Gemm)
                .init(&device);
            gemm.conv = masked.conv.clone();
            let b = split
                .forward(input.clone())
                .try_into_vec_as::<f32>()
                .unwrap();
            let c = gemm.forward(input).try_into_vec_as::<f32>().unwrap();
            for (form, other) in [("split", &b), ("gemm", &c)] {
                let worst = a
                    .iter()
                    .zip(other)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-5, "k = {k}, {mask:?}, {form}: differ by {worst}");
            }
        }
    }
}

//! Masked 2-D convolution: the causal building block of PixelCNN.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

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
    #[module(skip)]
    padding: usize,
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
        let mask = Tensor::from_data(
            TensorData::new(
                self.mask_values(),
                [self.channels[1], self.channels[0], k, k],
            ),
            device,
        );
        MaskedConv2d {
            conv,
            mask,
            padding: k / 2,
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
    /// Applies the masked convolution with "same" padding.
    ///
    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H, W]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let weight = self.conv.weight.val() * self.mask.clone();
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let p = self.padding;
        conv2d(
            input,
            weight,
            bias,
            ConvOptions::new([1, 1], [p, p], [1, 1], 1),
        )
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
}

//! burn's layers, run by this crate's kernels: [`KernelForward`] is a layer's `forward` under
//! another name, so that model code calls its layers and never a kernel entry point.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{BatchNorm, GroupNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::{batch_norm, conv_transpose2d, conv2d, conv2d_padded, group_norm, linear};

/// A burn layer's `forward`, with the same result and gradients, run on flex by this crate's
/// kernel where one applies and by the layer's own `forward` everywhere else (other
/// backends, geometries the kernel does not cover, the kernels switched off).
///
/// A trait rather than wrapper modules: the layers stay burn's, so checkpoints keep their keys.
pub trait KernelForward<Input> {
    /// What the layer's `forward` returns.
    type Output;

    /// The layer's `forward`.
    fn kernel_forward(&self, input: Input) -> Self::Output;
}

impl<const D: usize> KernelForward<Tensor<D>> for BatchNorm {
    type Output = Tensor<D>;

    /// # Shapes
    /// - input: `[N, C, ...]`
    /// - output: `[N, C, ...]`
    fn kernel_forward(&self, input: Tensor<D>) -> Tensor<D> {
        batch_norm(self, input)
    }
}

impl<const D: usize> KernelForward<Tensor<D>> for GroupNorm {
    type Output = Tensor<D>;

    /// # Shapes
    /// - input: `[N, C, ...]`
    /// - output: `[N, C, ...]`
    fn kernel_forward(&self, input: Tensor<D>) -> Tensor<D> {
        group_norm(self, input)
    }
}

impl KernelForward<Tensor<2>> for Linear {
    type Output = Tensor<2>;

    /// # Shapes
    /// - input: `[N, d_input]`
    /// - output: `[N, d_output]`
    fn kernel_forward(&self, input: Tensor<2>) -> Tensor<2> {
        match &self.bias {
            Some(bias) => linear(input, self.weight.val(), bias.val()),
            None => self.forward(input),
        }
    }
}

impl KernelForward<Tensor<4>> for Conv2d {
    type Output = Tensor<4>;

    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H', W']`
    fn kernel_forward(&self, input: Tensor<4>) -> Tensor<4> {
        let padding = match self.padding {
            PaddingConfig2d::Valid => Some(0),
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == left && top == bottom && top == right =>
            {
                Some(top)
            }
            _ => None,
        };
        let plain = self.stride[0] == self.stride[1] && self.dilation == [1, 1] && self.groups == 1;
        let bias = self.bias.as_ref().map(|bias| bias.val());
        match (padding, &self.padding) {
            (Some(padding), _) if plain => {
                conv2d(input, self.weight.val(), bias, self.stride[0], padding)
            }
            // One-sided padding at stride 1: the PixelRNNs' causal row convolutions.
            (None, &PaddingConfig2d::Explicit(top, left, bottom, right))
                if plain && self.stride[0] == 1 =>
            {
                conv2d_padded(input, self.weight.val(), bias, [top, bottom, left, right])
            }
            _ => self.forward(input),
        }
    }
}

impl KernelForward<Tensor<4>> for ConvTranspose2d {
    type Output = Tensor<4>;

    /// # Shapes
    /// - input: `[N, in, H, W]`
    /// - output: `[N, out, H', W']`, `H' = (H − 1)·s − 2·p + kh`
    fn kernel_forward(&self, input: Tensor<4>) -> Tensor<4> {
        let covered = self.stride[0] == self.stride[1]
            && self.padding[0] == self.padding[1]
            && self.padding_out == [0, 0]
            && self.dilation == [1, 1]
            && self.groups == 1;
        if !covered {
            return self.forward(input);
        }
        conv_transpose2d(
            input,
            self.weight.val(),
            self.bias.as_ref().map(|bias| bias.val()),
            self.stride[0],
            self.padding[0],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::{Device, Distribution};

    fn assert_close(a: Tensor<4>, b: Tensor<4>) {
        assert_eq!(a.dims(), b.dims());
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "kernel_forward and forward differ by {worst}");
    }

    fn input(device: &Device, channels: usize) -> Tensor<4> {
        Tensor::random([2, channels, 7, 7], Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn layers_give_their_own_forward_on_covered_and_uncovered_geometries() {
        let device = Device::flex();
        let down = Conv2dConfig::new([16, 8], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = input(&device, 16);
        assert_close(down.kernel_forward(x.clone()), down.forward(x));
        // One-sided padding at stride 1 (the PixelRNNs' row convolutions) runs
        // `conv2d_padded`; at stride 2 it is not the kernels' geometry, and the layer's own
        // forward runs.
        for stride in [1, 2] {
            let lopsided = Conv2dConfig::new([16, 8], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0))
                .init(&device);
            let x = input(&device, 16);
            assert_close(lopsided.kernel_forward(x.clone()), lopsided.forward(x));
        }
        let row = Conv2dConfig::new([16, 64], [1, 3])
            .with_padding(PaddingConfig2d::Explicit(0, 1, 0, 1))
            .with_bias(false)
            .init(&device);
        let x = input(&device, 16);
        assert_close(row.kernel_forward(x.clone()), row.forward(x));
        let up = ConvTranspose2dConfig::new([16, 8], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init(&device);
        let x = input(&device, 16);
        assert_close(up.kernel_forward(x.clone()), up.forward(x));
        let up_with_output_padding = ConvTranspose2dConfig::new([16, 8], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_padding_out([1, 1])
            .init(&device);
        let x = input(&device, 16);
        assert_close(
            up_with_output_padding.kernel_forward(x.clone()),
            up_with_output_padding.forward(x),
        );
    }
}

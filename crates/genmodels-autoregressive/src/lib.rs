//! # genmodels-autoregressive
//!
//! Autoregressive models: explicit, tractable densities that factor an image into
//! conditionals in raster order,
//!
//! ```text
//! p(x) = Π_i p(x_i | x_<i),
//! ```
//!
//! over pixels row by row, left to right, and within a pixel over colour channels R → G → B.
//! Every conditional comes out of one forward pass, so `log p(x)` is exact and cheap
//! ([`genmodels_core::LikelihoodKind::Exact`]); sampling must go pixel by pixel.
//!
//! - [`MaskedConv2d`]: the masked convolution (mask A excludes the current sub-pixel, mask B
//!   includes it), with colour-group masks for C > 1;
//! - [`PixelDistribution`]: the output head, Bernoulli logits for binary images or a softmax
//!   over grey levels;
//! - [`PixelCnn`]: van den Oord et al. (2016)'s PixelCNN;
//! - [`GatedPixelCnn`]: the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image
//!   Generation with PixelCNN Decoders"), vertical and horizontal stacks without a blind
//!   spot, gated units, optional class conditioning;
//! - [`RowLstm`] and [`DiagonalBiLstm`]: the PixelRNNs (van den Oord, Kalchbrenner &
//!   Kavukcuoglu 2016).
//!
//! Every model implements [`RasterModel`], so the likelihood, sampling and completion code
//! lives once, in [`raster`]. Each samples naively (one network pass per sub-pixel) or
//! incrementally ([`IncrementalSampling`]: cached activations for the PixelCNNs, after
//! Ramachandran et al. 2017; carried LSTM state for the PixelRNNs), and both give the same
//! images for the same seed ([`SamplingMethod`]).

#![warn(missing_docs)]

mod cached;
pub mod diagonal_bilstm;
pub mod gated_pixelcnn;
pub mod gates;
pub mod masked_conv;
pub mod pixel;
pub mod pixelcnn;
pub mod raster;
pub mod row_lstm;

pub use diagonal_bilstm::{DiagonalBiLstm, DiagonalBiLstmConfig};
pub use gated_pixelcnn::{GatedPixelCnn, GatedPixelCnnConfig};
pub use masked_conv::{MaskType, MaskedConv2d, MaskedConv2dConfig, MaskedConvImpl};
pub use pixel::PixelDistribution;
pub use pixelcnn::{PixelCnn, PixelCnnConfig};
pub use raster::{Conditionals, IncrementalSampling, RasterModel, SamplingMethod};
pub use row_lstm::{RowLstm, RowLstmConditionals, RowLstmConfig};

#[cfg(test)]
mod tests;

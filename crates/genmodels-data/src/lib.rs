//! # genmodels-data
//!
//! Image data for genmodels:
//! - [`idx`]: the IDX format of MNIST, raw or gzip, with its magic number, dimensions and
//!   lengths checked;
//! - [`Mnist`]: the bundled 10,000-digit MNIST sample ([`Mnist::bundled`], the default data
//!   set, embedded so nothing is downloaded) or the full MNIST from a directory
//!   ([`Mnist::from_dir`]);
//! - [`load_png_folder`]: a folder of same-size PNG images;
//! - [`Dataset`]: scaling to `[0, 1]`, [`Binarization`] (fixed threshold, one stochastic draw,
//!   or dynamic re-binarisation each epoch) and batching to `[N, C, H, W]` tensors through
//!   [`genmodels_core::ImageDataset`];
//! - [`mnist_judge`]: the shipped sample-quality judge, a small MNIST classifier whose weights
//!   are embedded like the data (see [`genmodels_eval::quality`]).

#![warn(missing_docs)]

pub mod dataset;
pub mod error;
pub mod idx;
pub mod judge;
pub mod mnist;
pub mod png;

pub use dataset::{Binarization, Dataset, ImageSet};
pub use error::DataError;
pub use judge::mnist_judge;
pub use mnist::Mnist;
pub use png::load_png_folder;

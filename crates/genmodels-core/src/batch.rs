//! Image batches, their shape and value domain, and the data-set interface the trainer reads.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{GenError, Result};

/// The shape of one image: channels, height and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Number of channels (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// A shape from its three extents.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// The MNIST shape: one channel, 28×28.
    pub const MNIST: Self = Self::new(1, 28, 28);

    /// Number of dimensions of one image (C·H·W), the `D` of bits per dimension.
    pub const fn dims(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `[n, C, H, W]`.
    pub const fn batch_dims(&self, n: usize) -> [usize; 4] {
        [n, self.channels, self.height, self.width]
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// What values the pixels of a batch take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelDomain {
    /// Every pixel is exactly 0 or 1.
    Binary,
    /// Pixels lie in `[0, 1]` (grey levels scaled by 1/255).
    UnitInterval,
}

/// A validated batch of images of shape `[N, C, H, W]`, with optional class labels.
///
/// The constructors check the values once (finite, inside `[0, 1]`) and record whether they
/// are binary, so models can check their input without another pass over the data.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    images: Tensor<4>,
    labels: Option<Tensor<1, Int>>,
    domain: PixelDomain,
}

impl ImageBatch {
    /// Builds a batch from host pixels in `[0, 1]`, laid out `[N, C, H, W]` row-major.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] for zero images, [`GenError::ShapeMismatch`] when the pixel or
    /// label count does not fit the shape, [`GenError::NonFiniteInput`] for NaN or ±∞ and
    /// [`GenError::ValueOutOfRange`] for values outside `[0, 1]`.
    pub fn from_host(
        pixels: Vec<f32>,
        shape: ImageShape,
        labels: Option<Vec<i64>>,
        device: &Device,
    ) -> Result<Self> {
        let n = check_counts(pixels.len(), shape, labels.as_deref())?;
        let domain = check_pixels(&pixels, "image batch")?;
        Ok(Self::from_checked(pixels, shape, n, labels, domain, device))
    }

    /// Builds a batch from quantised pixels: level `l` of `0..=max_level` becomes `l /
    /// max_level`, so that bytes (`max_level` 255) and bits (`max_level` 1) need no range
    /// check; the batch is [`PixelDomain::Binary`] when every level is 0 or `max_level`. This
    /// is how `genmodels-data` hands its images over, converted and checked in one pass.
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for `max_level` 0 or a level above it; otherwise as
    /// [`ImageBatch::from_host`] (empty batch, pixel or label count).
    pub fn from_levels(
        levels: &[u8],
        max_level: u8,
        shape: ImageShape,
        labels: Option<Vec<i64>>,
        device: &Device,
    ) -> Result<Self> {
        if max_level == 0 {
            return Err(GenError::InvalidConfig(
                "quantised pixels need a positive maximum level".into(),
            ));
        }
        let n = check_counts(levels.len(), shape, labels.as_deref())?;
        let mut binary = true;
        let mut pixels = Vec::with_capacity(levels.len());
        for &level in levels {
            if level > max_level {
                return Err(GenError::InvalidConfig(format!(
                    "pixel level {level} is above the maximum level {max_level}"
                )));
            }
            binary &= level == 0 || level == max_level;
            pixels.push(f32::from(level) / f32::from(max_level));
        }
        let domain = if binary {
            PixelDomain::Binary
        } else {
            PixelDomain::UnitInterval
        };
        Ok(Self::from_checked(pixels, shape, n, labels, domain, device))
    }

    /// The shared tail of the host constructors: `n` images whose counts and values are
    /// checked, in `domain`.
    fn from_checked(
        pixels: Vec<f32>,
        shape: ImageShape,
        n: usize,
        labels: Option<Vec<i64>>,
        domain: PixelDomain,
        device: &Device,
    ) -> Self {
        let images = Tensor::from_data(TensorData::new(pixels, shape.batch_dims(n)), device);
        let labels = labels.map(|l| Tensor::from_data(TensorData::new(l, [n]), device));
        Self {
            images,
            labels,
            domain,
        }
    }

    /// Wraps an image tensor after checking its values (this reads it back to the host once).
    ///
    /// # Errors
    /// As [`ImageBatch::from_host`].
    pub fn from_tensor(images: Tensor<4>) -> Result<Self> {
        let [n, c, h, w] = images.dims();
        let pixels = to_host(images.clone())?;
        if n == 0 {
            return Err(GenError::EmptyData {
                context: "image batch".into(),
            });
        }
        let domain = check_pixels(&pixels, "image batch")?;
        debug_assert_eq!(pixels.len(), n * c * h * w);
        Ok(Self {
            images,
            labels: None,
            domain,
        })
    }

    /// Attaches class labels, one per image.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when the label count differs from the image count.
    pub fn with_labels(mut self, labels: Tensor<1, Int>) -> Result<Self> {
        let [n] = labels.dims();
        if n != self.len() {
            return Err(GenError::shape("image batch labels", self.len(), n));
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// The images, `[N, C, H, W]`.
    pub fn images(&self) -> &Tensor<4> {
        &self.images
    }

    /// The class labels `[N]`, when the data set has them.
    pub fn labels(&self) -> Option<&Tensor<1, Int>> {
        self.labels.as_ref()
    }

    /// Whether the pixels are binary or grey levels in `[0, 1]`.
    pub fn domain(&self) -> PixelDomain {
        self.domain
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dims()[0]
    }

    /// Always false: a batch holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one image.
    pub fn image_shape(&self) -> ImageShape {
        let [_, c, h, w] = self.images.dims();
        ImageShape::new(c, h, w)
    }

    /// The device the images live on.
    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// The images flattened to `[N, C·H·W]`.
    pub fn flat_images(&self) -> Tensor<2> {
        let n = self.len();
        self.images.clone().reshape([n, self.image_shape().dims()])
    }

    /// The same images moved to `device`.
    pub fn to_device(&self, device: &Device) -> Self {
        Self {
            images: self.images.clone().to_device(device),
            labels: self.labels.clone().map(|l| l.to_device(device)),
            domain: self.domain,
        }
    }

    /// Images `start..start + len` of this batch, on `device`: a data-parallel replica's share
    /// ([`Trainer::with_replicas`](crate::Trainer::with_replicas)). The share keeps the batch's
    /// pixel domain (a binary batch's images are all binary).
    ///
    /// # Errors
    /// [`GenError::InvalidConfig`] for an empty range or one past the last image.
    pub fn share(&self, start: usize, len: usize, device: &Device) -> Result<Self> {
        if len == 0 || start + len > self.len() {
            return Err(GenError::InvalidConfig(format!(
                "images {start}..{} of a batch of {}",
                start + len,
                self.len()
            )));
        }
        Ok(Self {
            images: self.images.clone().narrow(0, start, len).to_device(device),
            labels: self
                .labels
                .clone()
                .map(|l| l.narrow(0, start, len).to_device(device)),
            domain: self.domain,
        })
    }

    /// Checks that the images have the shape a model was built for.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] naming `model`, the expected and the actual shape.
    pub fn require_shape(&self, expected: ImageShape, model: &str) -> Result<()> {
        let actual = self.image_shape();
        if actual != expected {
            return Err(GenError::ShapeMismatch {
                context: format!("{model} input image (C×H×W)"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Checks that every pixel is 0 or 1, as a Bernoulli likelihood needs.
    ///
    /// # Errors
    /// [`GenError::ValueOutOfRange`] when the batch holds grey levels.
    pub fn require_binary(&self, model: &str) -> Result<()> {
        if self.domain != PixelDomain::Binary {
            let pixels = to_host(self.images.clone())?;
            let found = pixels
                .iter()
                .copied()
                .find(|&v| v != 0.0 && v != 1.0)
                .unwrap_or(f32::NAN);
            return Err(GenError::ValueOutOfRange {
                context: format!("{model} (Bernoulli likelihood)"),
                expected: "{0, 1} (binarise the data first)".into(),
                found,
            });
        }
        Ok(())
    }
}

/// The number of images in `len` values of `shape`, checked against the label count.
fn check_counts(len: usize, shape: ImageShape, labels: Option<&[i64]>) -> Result<usize> {
    let n = len.checked_div(shape.dims()).unwrap_or(0);
    if n == 0 {
        return Err(GenError::EmptyData {
            context: "image batch".into(),
        });
    }
    if len != n * shape.dims() {
        return Err(GenError::shape(
            "image batch pixels",
            format!("a multiple of {}", shape.dims()),
            len,
        ));
    }
    if let Some(labels) = labels
        && labels.len() != n
    {
        return Err(GenError::shape("image batch labels", n, labels.len()));
    }
    Ok(n)
}

/// Checks pixels are finite and in `[0, 1]`, and reports whether they are all binary.
fn check_pixels(pixels: &[f32], context: &str) -> Result<PixelDomain> {
    let mut binary = true;
    for &v in pixels {
        if !v.is_finite() {
            return Err(GenError::NonFiniteInput {
                context: context.into(),
            });
        }
        if !(0.0..=1.0).contains(&v) {
            return Err(GenError::ValueOutOfRange {
                context: context.into(),
                expected: "[0, 1]".into(),
                found: v,
            });
        }
        binary &= v == 0.0 || v == 1.0;
    }
    Ok(if binary {
        PixelDomain::Binary
    } else {
        PixelDomain::UnitInterval
    })
}

/// Reads a float tensor back to the host.
///
/// # Errors
/// [`GenError::Backend`] when the device cannot return the data.
pub fn to_host<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .try_into_vec_as::<f32>()
        .map_err(|e| GenError::Backend(format!("reading a tensor back: {e:?}")))
}

/// A source of image batches: what the trainer and the evaluators read.
///
/// `genmodels-data` implements it for IDX and PNG data with its binarisation modes; any other
/// data can be plugged in by implementing it. It is `Sync` so that the trainer can read it from
/// the CPU backends' compute threads (see [`genmodels_kernels::on_compute_threads`]).
pub trait ImageDataset: Sync {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one image.
    fn image_shape(&self) -> ImageShape;

    /// The images at `indices`, as they are presented in epoch `epoch` (0-based).
    ///
    /// A data set with dynamic binarisation draws new binary images each epoch; otherwise
    /// `epoch` is ignored. The same `(indices, epoch)` always gives the same batch.
    ///
    /// # Errors
    /// When an index is out of range or the batch cannot be built.
    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<ImageBatch>;
}

/// Images held in memory as `[0, 1]` floats: a data set for synthetic data (2-D points as
/// `1×1×2` images, test fixtures) or images already decoded elsewhere. Every epoch presents
/// the same values.
#[derive(Debug, Clone, PartialEq)]
pub struct InMemoryDataset {
    pixels: Vec<f32>,
    shape: ImageShape,
    labels: Option<Vec<i64>>,
}

impl InMemoryDataset {
    /// `pixels` laid out `[N, C, H, W]` row-major, with optional labels, one per image. The
    /// values are checked when batches are built.
    ///
    /// # Errors
    /// [`GenError::ShapeMismatch`] when the pixel count is not a multiple of the image size,
    /// or the label count differs from the image count.
    pub fn new(pixels: Vec<f32>, shape: ImageShape, labels: Option<Vec<i64>>) -> Result<Self> {
        let dims = shape.dims();
        if dims == 0 || !pixels.len().is_multiple_of(dims) {
            return Err(GenError::shape(
                "in-memory images",
                format!("a multiple of {dims} values"),
                pixels.len(),
            ));
        }
        if let Some(labels) = &labels
            && labels.len() != pixels.len() / dims
        {
            return Err(GenError::shape(
                "in-memory labels",
                pixels.len() / dims,
                labels.len(),
            ));
        }
        Ok(Self {
            pixels,
            shape,
            labels,
        })
    }

    /// The pixels, `[N, C, H, W]` row-major.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }
}

impl ImageDataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.pixels.len() / self.shape.dims()
    }

    fn image_shape(&self) -> ImageShape {
        self.shape
    }

    /// # Errors
    /// [`GenError::ShapeMismatch`] for an index out of range; as [`ImageBatch::from_host`]
    /// for the values.
    fn batch(&self, indices: &[usize], _epoch: usize, device: &Device) -> Result<ImageBatch> {
        let d = self.shape.dims();
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(GenError::shape(
                "in-memory image index",
                format!("< {}", self.len()),
                bad,
            ));
        }
        let pixels = indices
            .iter()
            .flat_map(|&i| self.pixels[i * d..(i + 1) * d].iter().copied())
            .collect();
        let labels = self
            .labels
            .as_ref()
            .map(|labels| indices.iter().map(|&i| labels[i]).collect());
        ImageBatch::from_host(pixels, self.shape, labels, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_levels_give_the_same_batch_as_their_scaled_pixels() {
        let device = Device::flex();
        let shape = ImageShape::new(1, 2, 2);
        for (levels, max_level, domain) in [
            (vec![0u8, 255, 17, 128], 255, PixelDomain::UnitInterval),
            (vec![0u8, 255, 255, 0], 255, PixelDomain::Binary),
            (vec![1u8, 0, 0, 1, 1, 1, 0, 0], 1, PixelDomain::Binary),
        ] {
            let pixels: Vec<f32> = levels
                .iter()
                .map(|&l| f32::from(l) / f32::from(max_level))
                .collect();
            let quantised =
                ImageBatch::from_levels(&levels, max_level, shape, None, &device).unwrap();
            let direct = ImageBatch::from_host(pixels, shape, None, &device).unwrap();
            assert_eq!(quantised.domain(), domain);
            assert_eq!(direct.domain(), domain);
            assert_eq!(
                to_host(quantised.images().clone()).unwrap(),
                to_host(direct.images().clone()).unwrap()
            );
        }
        assert!(matches!(
            ImageBatch::from_levels(&[0, 2, 1, 0], 1, shape, None, &device),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(matches!(
            ImageBatch::from_levels(&[0, 0, 0, 0], 0, shape, None, &device),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(matches!(
            ImageBatch::from_levels(&[0, 1, 1, 0, 1], 1, shape, None, &device),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ImageBatch::from_levels(&[], 1, shape, None, &device),
            Err(GenError::EmptyData { .. })
        ));
    }

    #[test]
    fn an_in_memory_dataset_batches_its_images_and_labels_and_checks_them() {
        let device = Device::flex();
        let shape = ImageShape::new(1, 1, 2);
        let data = InMemoryDataset::new(
            vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
            shape,
            Some(vec![7, 8, 9]),
        )
        .unwrap();
        assert_eq!(data.len(), 3);
        let batch = data.batch(&[2, 0], 5, &device).unwrap();
        assert_eq!(
            to_host(batch.images().clone()).unwrap(),
            [0.4, 0.5, 0.0, 0.1]
        );
        let labels = batch
            .labels()
            .unwrap()
            .clone()
            .try_into_vec_as::<i64>()
            .unwrap();
        assert_eq!(labels, [9, 7]);

        assert!(matches!(
            data.batch(&[3], 0, &device),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            InMemoryDataset::new(vec![0.0; 5], shape, None),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            InMemoryDataset::new(vec![0.0; 4], shape, Some(vec![1])),
            Err(GenError::ShapeMismatch { .. })
        ));
        // Values are checked when a batch is built.
        let out_of_range = InMemoryDataset::new(vec![0.5, 1.5], shape, None).unwrap();
        assert!(matches!(
            out_of_range.batch(&[0], 0, &device),
            Err(GenError::ValueOutOfRange { .. })
        ));
    }
}

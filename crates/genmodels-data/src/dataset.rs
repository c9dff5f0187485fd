//! In-memory image sets, scaling to `[0, 1]`, binarisation and batching.

use genmodels_core::burn::tensor::Device;
use genmodels_core::{GenError, ImageBatch, ImageDataset, ImageShape, Result};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::error::DataError;
use crate::idx::IdxArray;

/// 8-bit images, planar `[N, C, H, W]`, with optional class labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    shape: ImageShape,
    pixels: Vec<u8>,
    labels: Option<Vec<u8>>,
}

impl ImageSet {
    /// An image set from planar 8-bit pixels.
    ///
    /// # Errors
    /// [`DataError::DimensionMismatch`] when the pixel count is not a multiple of the image
    /// size or the label count differs from the image count.
    pub fn new(
        shape: ImageShape,
        pixels: Vec<u8>,
        labels: Option<Vec<u8>>,
    ) -> Result<Self, DataError> {
        let dims = shape.dims();
        if dims == 0 || !pixels.len().is_multiple_of(dims) {
            return Err(DataError::DimensionMismatch {
                path: "<memory>".into(),
                reason: format!(
                    "{} pixels do not divide into images of {shape}",
                    pixels.len()
                ),
            });
        }
        let n = pixels.len() / dims;
        if let Some(labels) = &labels
            && labels.len() != n
        {
            return Err(DataError::DimensionMismatch {
                path: "<memory>".into(),
                reason: format!("{n} images but {} labels", labels.len()),
            });
        }
        Ok(Self {
            shape,
            pixels,
            labels,
        })
    }

    /// Grey images from an IDX array `[N, H, W]`, with labels from an IDX array `[N]`.
    ///
    /// # Errors
    /// [`DataError::DimensionMismatch`] when the arrays do not have those shapes or their `N`
    /// differ.
    pub fn from_idx(
        images: IdxArray,
        labels: Option<IdxArray>,
        source: &std::path::Path,
    ) -> Result<Self, DataError> {
        let [n, h, w] = images.dims[..] else {
            return Err(DataError::DimensionMismatch {
                path: source.into(),
                reason: format!("images must be [N, H, W], got {:?}", images.dims),
            });
        };
        let labels = match labels {
            Some(l) if l.dims != [n] => {
                return Err(DataError::DimensionMismatch {
                    path: source.into(),
                    reason: format!("{n} images but labels of shape {:?}", l.dims),
                });
            }
            Some(l) => Some(l.data),
            None => None,
        };
        Self::new(ImageShape::new(1, h, w), images.data, labels)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.dims()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// The shape of one image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The 8-bit pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.shape.dims();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// The class labels, when known.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// The first `n` images (all of them when `n ≥ len`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            shape: self.shape,
            pixels: self.pixels[..n * self.shape.dims()].to_vec(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
        }
    }

    /// The first `k` images and the rest (all and none when `k ≥ len`).
    pub fn split_at(&self, k: usize) -> (Self, Self) {
        let k = k.min(self.len());
        let at = k * self.shape.dims();
        let part = |pixels: &[u8], labels: Option<&[u8]>| Self {
            shape: self.shape,
            pixels: pixels.to_vec(),
            labels: labels.map(<[u8]>::to_vec),
        };
        let labels = self.labels.as_deref().map(|l| l.split_at(k));
        (
            part(&self.pixels[..at], labels.map(|l| l.0)),
            part(&self.pixels[at..], labels.map(|l| l.1)),
        )
    }

    /// The images of `sets`, one after another (labels kept when every set has them).
    ///
    /// # Errors
    /// [`DataError::DimensionMismatch`] when the sets' image shapes differ.
    pub fn concat(sets: &[Self]) -> Result<Self, DataError> {
        let Some(first) = sets.first() else {
            return Err(DataError::DimensionMismatch {
                path: "<memory>".into(),
                reason: "no image sets to join".into(),
            });
        };
        if let Some(other) = sets.iter().find(|s| s.shape != first.shape) {
            return Err(DataError::DimensionMismatch {
                path: "<memory>".into(),
                reason: format!(
                    "images of {} and of {} cannot be joined",
                    first.shape, other.shape
                ),
            });
        }
        let labels = sets
            .iter()
            .map(|s| s.labels.as_deref())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat());
        Ok(Self {
            shape: first.shape,
            pixels: sets.iter().flat_map(|s| s.pixels.iter().copied()).collect(),
            labels,
        })
    }

    /// This set presented with `binarization`, ready for batching.
    pub fn with_binarization(self, binarization: Binarization) -> Dataset {
        Dataset::new(self, binarization)
    }
}

/// How grey levels become the pixels a model sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binarization {
    /// Grey levels scaled to `[0, 1]` (`v / 255`).
    None,
    /// `1` where `v / 255 > threshold`, else `0`.
    Threshold(f32),
    /// Each pixel drawn once as Bernoulli(`v / 255`) from `seed`; the same every epoch.
    Stochastic {
        /// Seed of the draw.
        seed: u64,
    },
    /// Each pixel redrawn as Bernoulli(`v / 255`) every epoch (dynamic binarisation, as in
    /// Burda et al. 2015), the default for Bernoulli models. Epoch 0 is also how the set is
    /// evaluated.
    Dynamic {
        /// Seed of the draws; epoch and image index are mixed in.
        seed: u64,
    },
}

/// An [`ImageSet`] with its binarisation: what the trainer and evaluators read.
#[derive(Debug, Clone)]
pub struct Dataset {
    images: ImageSet,
    binarization: Binarization,
}

impl Dataset {
    /// Presents `images` with `binarization`.
    pub fn new(images: ImageSet, binarization: Binarization) -> Self {
        Self {
            images,
            binarization,
        }
    }

    /// The underlying 8-bit images.
    pub fn images(&self) -> &ImageSet {
        &self.images
    }

    /// The binarisation mode.
    pub fn binarization(&self) -> Binarization {
        self.binarization
    }

    /// Pixel values of image `i` in epoch `epoch`, appended to `out`.
    fn push_levels(&self, i: usize, epoch: usize, out: &mut Vec<u8>) {
        let raw = self.images.image(i);
        let scaled = raw.iter().map(|&v| f32::from(v) / 255.0);
        match self.binarization {
            Binarization::None => out.extend_from_slice(raw),
            Binarization::Threshold(t) => out.extend(scaled.map(|v| u8::from(v > t))),
            Binarization::Stochastic { seed } => bernoulli(scaled, pixel_rng(seed, 0, i), out),
            Binarization::Dynamic { seed } => bernoulli(scaled, pixel_rng(seed, epoch, i), out),
        }
    }

    /// The largest level [`push_levels`](Self::push_levels) writes: 255 for grey bytes, 1 for
    /// binarised bits.
    fn max_level(&self) -> u8 {
        match self.binarization {
            Binarization::None => u8::MAX,
            _ => 1,
        }
    }

    /// All images as one batch (epoch 0), e.g. for plotting a handful.
    ///
    /// # Errors
    /// As [`ImageDataset::batch`].
    pub fn first(&self, n: usize, device: &Device) -> Result<ImageBatch> {
        let indices: Vec<usize> = (0..n.min(self.len())).collect();
        self.batch(&indices, 0, device)
    }
}

fn bernoulli(probabilities: impl Iterator<Item = f32>, mut rng: StdRng, out: &mut Vec<u8>) {
    out.extend(probabilities.map(|p| u8::from(rng.random::<f32>() < p)));
}

/// An RNG for one image in one epoch, independent of how images are batched.
fn pixel_rng(seed: u64, epoch: usize, index: usize) -> StdRng {
    let key = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(index as u64);
    StdRng::seed_from_u64(key)
}

impl ImageDataset for Dataset {
    fn len(&self) -> usize {
        self.images.len()
    }

    fn image_shape(&self) -> ImageShape {
        self.images.shape()
    }

    fn batch(&self, indices: &[usize], epoch: usize, device: &Device) -> Result<ImageBatch> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(GenError::InvalidConfig(format!(
                "image index {bad} is out of range for a set of {}",
                self.len()
            )));
        }
        // Bytes or bits, turned into pixels in [0, 1] by `from_levels` without a range check.
        let mut levels = Vec::with_capacity(indices.len() * self.image_shape().dims());
        for &i in indices {
            self.push_levels(i, epoch, &mut levels);
        }
        let labels = self
            .images
            .labels()
            .map(|l| indices.iter().map(|&i| i64::from(l[i])).collect());
        ImageBatch::from_levels(
            &levels,
            self.max_level(),
            self.image_shape(),
            labels,
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genmodels_core::PixelDomain;
    use genmodels_core::batch::to_host;

    fn set() -> ImageSet {
        // Four 1×2×2 images with grey levels 0, 64, 128, 255.
        let pixels = (0..4).flat_map(|_| [0u8, 64, 128, 255]).collect();
        ImageSet::new(ImageShape::new(1, 2, 2), pixels, Some(vec![0, 1, 2, 3])).unwrap()
    }

    #[test]
    fn a_set_split_and_joined_again_is_the_same_set() {
        let set = set();
        for k in 0..=set.len() + 1 {
            let (first, rest) = set.split_at(k);
            assert_eq!(first.len(), k.min(set.len()));
            assert_eq!(first.len() + rest.len(), set.len());
            assert_eq!(ImageSet::concat(&[first, rest]).unwrap(), set);
        }
        let unlabelled = ImageSet::new(set.shape(), set.image(0).to_vec(), None).unwrap();
        let joined = ImageSet::concat(&[set.clone(), unlabelled]).unwrap();
        assert_eq!(joined.len(), set.len() + 1);
        assert!(joined.labels().is_none());
        let other = ImageSet::new(ImageShape::new(1, 1, 1), vec![0], None).unwrap();
        assert!(ImageSet::concat(&[set, other]).is_err());
        assert!(ImageSet::concat(&[]).is_err());
    }

    #[test]
    fn scaling_threshold_and_shapes() {
        let device = Device::flex();
        let grey = set().with_binarization(Binarization::None);
        let batch = grey.batch(&[1, 3], 0, &device).unwrap();
        assert_eq!(batch.images().dims(), [2, 1, 2, 2]);
        assert_eq!(batch.domain(), PixelDomain::UnitInterval);
        let v = to_host(batch.images().clone()).unwrap();
        assert!((v[1] - 64.0 / 255.0).abs() < 1e-6 && v[3] == 1.0);

        let bin = set().with_binarization(Binarization::Threshold(0.5));
        let batch = bin.batch(&[0], 0, &device).unwrap();
        assert_eq!(batch.domain(), PixelDomain::Binary);
        assert_eq!(
            to_host(batch.images().clone()).unwrap(),
            vec![0.0, 0.0, 1.0, 1.0]
        );
    }

    #[test]
    fn dynamic_binarisation_changes_between_epochs_but_not_within_one() {
        let pixels = vec![128u8; 4 * 400];
        let images = ImageSet::new(ImageShape::new(1, 20, 20), pixels, None).unwrap();
        let data = images.with_binarization(Binarization::Dynamic { seed: 3 });
        let device = Device::flex();
        let get = |idx: &[usize], epoch| {
            to_host(data.batch(idx, epoch, &device).unwrap().images().clone()).unwrap()
        };
        let a0 = get(&[0, 1], 0);
        // Same image, same epoch, different batch composition: identical pixels.
        assert_eq!(&get(&[1, 0], 0)[400..], &a0[..400]);
        // A new epoch redraws.
        assert_ne!(get(&[0, 1], 1), a0);
        // About half of the p = 0.502 pixels are on.
        let on = a0.iter().filter(|&&v| v == 1.0).count();
        assert!((330..470).contains(&on), "{on} of 800 on");

        let once = ImageSet::new(ImageShape::new(1, 20, 20), vec![128u8; 400], None)
            .unwrap()
            .with_binarization(Binarization::Stochastic { seed: 3 });
        let e0 = to_host(once.batch(&[0], 0, &device).unwrap().images().clone()).unwrap();
        let e5 = to_host(once.batch(&[0], 5, &device).unwrap().images().clone()).unwrap();
        assert_eq!(e0, e5);
    }

    #[test]
    fn labels_follow_indices_and_bad_indices_are_errors() {
        let data = set().with_binarization(Binarization::None);
        let device = Device::flex();
        let batch = data.batch(&[2, 0], 0, &device).unwrap();
        let labels: Vec<i64> = batch
            .labels()
            .unwrap()
            .clone()
            .try_into_vec_as::<i64>()
            .unwrap();
        assert_eq!(labels, vec![2, 0]);
        assert!(data.batch(&[4], 0, &device).is_err());
    }

    #[test]
    fn mismatched_labels_are_rejected() {
        let err = ImageSet::new(ImageShape::new(1, 2, 2), vec![0; 8], Some(vec![1])).unwrap_err();
        assert!(matches!(err, DataError::DimensionMismatch { .. }));
    }
}

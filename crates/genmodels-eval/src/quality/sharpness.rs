//! Sharpness: how much fine detail a set of images has, against real images.
//!
//! The lecture's claim that VAE samples are blurry and GAN samples sharp is measured by the
//! images' **Laplacian energy**: the mean over images of `Σ_pixels (Δx)²`, with the 5-point
//! discrete Laplacian `Δx[i, j] = x[i−1, j] + x[i+1, j] + x[i, j−1] + x[i, j+1] − 4 x[i, j]`
//! (zero outside the image, where digits are black anyway). **Sharpness** is the samples'
//! energy over the energy of real images presented the same way (grey, or binarised as the
//! model sees them): 1.0 for real images, below 1 for blurrier ones, above 1 for images with
//! more pixel-level detail than real digits (binary noise has plenty).
//!
//! Why it falls monotonically under blur: the Laplacian is a high-pass filter, and a Gaussian
//! blur of width σ scales each spatial frequency ω by `exp(−σ²ω²/2)`, which shrinks every
//! frequency's contribution to the energy as σ grows.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use genmodels_core::error::{GenError, Result};

/// The Laplacian energy of a set of images, accumulated batch by batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaplacianEnergy {
    total: f64,
    images: usize,
}

impl LaplacianEnergy {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The energy of `images` alone.
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn of(images: Tensor<4>) -> Result<Self> {
        let mut energy = Self::new();
        energy.add(images)?;
        Ok(energy)
    }

    /// Adds a batch of images in `[0, 1]`.
    ///
    /// # Shapes
    /// - images: `[N, C, H, W]`
    ///
    /// # Errors
    /// [`GenError::NonFiniteInput`] for NaN or infinite pixels.
    pub fn add(&mut self, images: Tensor<4>) -> Result<()> {
        let [n, c, h, w] = images.dims();
        let pixels: Vec<f32> = images
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| GenError::Backend(format!("reading images back: {e:?}")))?;
        if pixels.iter().any(|v| !v.is_finite()) {
            return Err(GenError::NonFiniteInput {
                context: "images whose sharpness is measured".into(),
            });
        }
        let at = |plane: &[f32], i: isize, j: isize| -> f64 {
            if i < 0 || j < 0 || i >= h as isize || j >= w as isize {
                0.0
            } else {
                f64::from(plane[i as usize * w + j as usize])
            }
        };
        for image in pixels.chunks_exact(c * h * w) {
            for plane in image.chunks_exact(h * w) {
                for i in 0..h as isize {
                    for j in 0..w as isize {
                        let laplacian = at(plane, i - 1, j)
                            + at(plane, i + 1, j)
                            + at(plane, i, j - 1)
                            + at(plane, i, j + 1)
                            - 4.0 * at(plane, i, j);
                        self.total += laplacian * laplacian;
                    }
                }
            }
        }
        self.images += n;
        Ok(())
    }

    /// Images seen.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The mean energy per image.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] before any image.
    pub fn mean(&self) -> Result<f64> {
        if self.images == 0 {
            return Err(GenError::EmptyData {
                context: "images whose sharpness is measured".into(),
            });
        }
        Ok(self.total / self.images as f64)
    }

    /// The sharpness of these images against `reference` (real images presented the same
    /// way): the ratio of their mean energies, 1.0 for images as sharp as the reference.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] when either set is empty or the reference has no detail at
    /// all (blank images).
    pub fn sharpness_against(&self, reference: &Self) -> Result<f64> {
        let reference = reference.mean()?;
        if reference <= 0.0 {
            return Err(GenError::EmptyData {
                context: "reference images with any detail (they are blank)".into(),
            });
        }
        Ok(self.mean()? / reference)
    }
}

/// The images blurred by a Gaussian of width `sigma` pixels (separable, the kernel cut at
/// ±3σ and normalised, zero outside the image): the blur that [`LaplacianEnergy`]'s
/// sharpness is tested against.
///
/// # Shapes
/// - images: `[N, C, H, W]`, and the same out
///
/// # Errors
/// [`GenError::InvalidConfig`] unless `sigma` is positive and finite.
pub fn gaussian_blur(images: &Tensor<4>, sigma: f64) -> Result<Tensor<4>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(GenError::InvalidConfig(format!(
            "a blur width must be positive and finite, got {sigma}"
        )));
    }
    let [n, c, h, w] = images.dims();
    let radius = (3.0 * sigma).ceil() as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f64 = weights.iter().sum();
    let pixels: Vec<f32> = images
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| GenError::Backend(format!("reading images back: {e:?}")))?;
    let pass = |source: &[f32], along_rows: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; source.len()];
        for (plane_out, plane) in out.chunks_exact_mut(h * w).zip(source.chunks_exact(h * w)) {
            for i in 0..h as isize {
                for j in 0..w as isize {
                    let mut sum = 0.0;
                    for (k, weight) in weights.iter().enumerate() {
                        let d = k as isize - radius;
                        let (ii, jj) = if along_rows { (i + d, j) } else { (i, j + d) };
                        if ii >= 0 && jj >= 0 && ii < h as isize && jj < w as isize {
                            sum += weight * f64::from(plane[ii as usize * w + jj as usize]);
                        }
                    }
                    plane_out[i as usize * w + j as usize] = (sum / norm) as f32;
                }
            }
        }
        out
    };
    let blurred = pass(&pass(&pixels, true), false);
    Ok(Tensor::from_data(
        burn::tensor::TensorData::new(blurred, [n, c, h, w]),
        &images.device(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Strokes (rings and bars at several positions) standing in for digits; the bundled
    /// digits themselves are `genmodels-data`'s, whose tests measure them too.
    fn strokes(device: &Device) -> Tensor<4> {
        let (n, size) = (12, 28);
        let mut pixels = vec![0.0f32; n * size * size];
        for k in 0..n {
            let image = &mut pixels[k * size * size..(k + 1) * size * size];
            let (ci, cj) = (8.0 + k as f32, 10.0 + (k % 5) as f32 * 2.0);
            for i in 0..size {
                for j in 0..size {
                    let r = ((i as f32 - ci).powi(2) + (j as f32 - cj).powi(2)).sqrt();
                    let ring = (r - 5.0).abs() < 1.2;
                    let bar = k % 2 == 0 && j == 20 && (4..24).contains(&i);
                    if ring || bar {
                        image[i * size + j] = 1.0;
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(pixels, [n, 1, size, size]), device)
    }

    #[test]
    fn real_images_read_one_and_blurring_them_lowers_it_step_by_step() {
        let device = Device::flex();
        let real = strokes(&device);
        let reference = LaplacianEnergy::of(real.clone()).unwrap();
        assert_eq!(
            LaplacianEnergy::of(real.clone())
                .unwrap()
                .sharpness_against(&reference)
                .unwrap(),
            1.0
        );
        let mut last = 1.0;
        for sigma in [0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0] {
            let sharpness = LaplacianEnergy::of(gaussian_blur(&real, sigma).unwrap())
                .unwrap()
                .sharpness_against(&reference)
                .unwrap();
            assert!(
                sharpness < last,
                "σ = {sigma}: sharpness {sharpness} is not below {last}"
            );
            last = sharpness;
        }
        assert!(last < 0.05, "a 3-pixel blur leaves {last}");
    }

    #[test]
    fn energy_adds_up_over_batches_and_a_single_pixel_has_the_stencils_energy() {
        let device = Device::flex();
        let real = strokes(&device);
        let whole = LaplacianEnergy::of(real.clone()).unwrap();
        let mut parts = LaplacianEnergy::new();
        parts.add(real.clone().narrow(0, 0, 5)).unwrap();
        parts.add(real.narrow(0, 5, 7)).unwrap();
        assert_eq!(parts.images(), 12);
        assert!((parts.mean().unwrap() - whole.mean().unwrap()).abs() < 1e-9);
        // One lit pixel away from the edges: (−4)² at it and 1² at its four neighbours.
        let mut dot = vec![0.0f32; 5 * 5];
        dot[12] = 1.0;
        let dot = Tensor::<4>::from_data(TensorData::new(dot, [1, 1, 5, 5]), &device);
        assert_eq!(LaplacianEnergy::of(dot).unwrap().mean().unwrap(), 20.0);
    }

    #[test]
    fn blank_references_empty_sets_and_nan_are_typed_errors() {
        let device = Device::flex();
        let blank = LaplacianEnergy::of(Tensor::zeros([2, 1, 4, 4], &device)).unwrap();
        let real = LaplacianEnergy::of(strokes(&device)).unwrap();
        assert!(matches!(
            real.sharpness_against(&blank),
            Err(GenError::EmptyData { .. })
        ));
        assert!(matches!(
            LaplacianEnergy::new().sharpness_against(&real),
            Err(GenError::EmptyData { .. })
        ));
        let nan = Tensor::<4>::full([1, 1, 3, 3], f32::NAN, &device);
        assert!(matches!(
            LaplacianEnergy::new().add(nan),
            Err(GenError::NonFiniteInput { .. })
        ));
    }
}

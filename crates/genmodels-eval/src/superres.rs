//! Super-resolution's baselines and scores: bicubic and nearest-neighbour upsampling of
//! low-resolution images, how far an image's block means are from the low-resolution image it
//! should agree with ([`low_pass_error`]), and a classifier's accuracy ([`accuracy`]).
//!
//! The low-resolution image of `x` is its `f×f` block means `D(x)`
//! ([`downsample`]); nearest-neighbour upsampling
//! `U` ([`upsample_nearest`](genmodels_core::capabilities::upsample_nearest)) repeats each
//! pixel, so `D(U(y)) = y` exactly. Bicubic upsampling ([`upsample_bicubic`]) is the `image`
//! crate's Catmull-Rom resize, which the workspace already depends on for its PNGs.

use genmodels_core::burn::tensor::{Tensor, TensorData};
use genmodels_core::capabilities::downsample;
use genmodels_core::{GenError, Result};
use image::imageops::{FilterType, resize};
use image::{ImageBuffer, Luma};

/// Bicubic upsampling by `factor`, `[N, C, h, w] → [N, C, f·h, f·w]`, of images in `[0, 1]`:
/// `image::imageops::resize` with its Catmull-Rom filter (the cubic convolution kernel with
/// `a = −0.5`), channel by channel. Output pixel centres map to input coordinates
/// `(i + ½)/f − ½`; near the border the kernel's taps that fall outside the image are dropped
/// and the others renormalised; values are clamped to `[0, 1]` (the resize clamps to the pixel
/// type's range). A constant image stays constant; a linear ramp is reproduced wherever all
/// four taps lie inside the image.
///
/// # Errors
/// [`GenError::InvalidConfig`] for a factor of 0; [`GenError::EmptyData`] for no images;
/// [`GenError::NonFiniteInput`] for NaN or infinite pixels.
pub fn upsample_bicubic(low_res: Tensor<4>, factor: usize) -> Result<Tensor<4>> {
    if factor == 0 {
        return Err(GenError::InvalidConfig(
            "bicubic upsampling needs a factor of at least 1, got 0".into(),
        ));
    }
    let [n, c, h, w] = low_res.dims();
    if n * c * h * w == 0 {
        return Err(GenError::EmptyData {
            context: "images to upsample".into(),
        });
    }
    let device = low_res.device();
    let pixels = genmodels_core::batch::to_host(low_res)?;
    if pixels.iter().any(|v| !v.is_finite()) {
        return Err(GenError::NonFiniteInput {
            context: "images to upsample".into(),
        });
    }
    let (big_h, big_w) = (h * factor, w * factor);
    let mut out = Vec::with_capacity(n * c * big_h * big_w);
    for plane in pixels.chunks(h * w) {
        let small: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(w as u32, h as u32, plane.to_vec())
                .expect("the plane has h·w pixels");
        let big = resize(&small, big_w as u32, big_h as u32, FilterType::CatmullRom);
        out.extend(big.into_raw());
    }
    Ok(Tensor::from_data(
        TensorData::new(out, [n, c, big_h, big_w]),
        &device,
    ))
}

/// How far each image's `factor × factor` block means are from `low_res`: the
/// root-mean-square and the largest absolute difference over the low-resolution pixels,
/// `(RMS_i, max_i)` per image. Both 0 for an image whose block means are exactly `low_res`
/// (e.g. its nearest-neighbour upsampling).
///
/// # Shapes
/// - images: `[N, C, H, W]`; low_res: `[N, C, H/f, W/f]`
/// - output: `N` pairs
///
/// # Errors
/// [`GenError::InvalidConfig`] for a factor that does not divide `H` and `W`;
/// [`GenError::ShapeMismatch`] when `low_res` does not have the block means' shape.
pub fn low_pass_error(
    images: Tensor<4>,
    low_res: Tensor<4>,
    factor: usize,
) -> Result<Vec<(f64, f64)>> {
    let means = downsample(images, factor)?;
    if means.dims() != low_res.dims() {
        return Err(GenError::shape(
            "low-resolution images against the block means",
            means.dims(),
            low_res.dims(),
        ));
    }
    let [n, c, h, w] = means.dims();
    let per_image = c * h * w;
    if n == 0 || per_image == 0 {
        return Err(GenError::EmptyData {
            context: "images to compare with their low-resolution versions".into(),
        });
    }
    let difference = genmodels_core::batch::to_host(means - low_res)?;
    Ok(difference
        .chunks(per_image)
        .map(|d| {
            let squares: f64 = d.iter().map(|&v| f64::from(v).powi(2)).sum();
            let largest = d.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
            ((squares / per_image as f64).sqrt(), largest)
        })
        .collect())
}

/// The fraction of `predicted` classes equal to `labels`.
///
/// # Errors
/// [`GenError::EmptyData`] for no predictions; [`GenError::ShapeMismatch`] when the lengths
/// differ.
pub fn accuracy(predicted: &[usize], labels: &[usize]) -> Result<f64> {
    if predicted.len() != labels.len() {
        return Err(GenError::shape(
            "predicted classes against labels",
            labels.len(),
            predicted.len(),
        ));
    }
    if predicted.is_empty() {
        return Err(GenError::EmptyData {
            context: "predicted classes".into(),
        });
    }
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(right as f64 / predicted.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use genmodels_core::batch::to_host;
    use genmodels_core::burn::tensor::Device;
    use genmodels_core::capabilities::upsample_nearest;

    fn images(values: Vec<f32>, dims: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, dims), &Device::flex())
    }

    #[test]
    fn bicubic_keeps_a_constant_and_reproduces_a_ramp_inside() {
        for factor in [2, 4] {
            // A constant stays constant, border included.
            let flat = upsample_bicubic(images(vec![0.3; 2 * 49], [2, 1, 7, 7]), factor).unwrap();
            assert_eq!(flat.dims(), [2, 1, 7 * factor, 7 * factor]);
            assert!(
                to_host(flat)
                    .unwrap()
                    .iter()
                    .all(|v| (v - 0.3).abs() < 1e-6)
            );
            // A ramp along the columns, y[r][j] = 0.1 + 0.1·j: output column i sits at input
            // coordinate u = (i + ½)/f − ½, where the ramp is 0.1 + 0.1·u. Inside means all
            // four taps floor(u) − 1 ..= floor(u) + 2 lie in 0..7.
            let ramp: Vec<f32> = (0..49).map(|k| 0.1 + 0.1 * (k % 7) as f32).collect();
            let up =
                to_host(upsample_bicubic(images(ramp, [1, 1, 7, 7]), factor).unwrap()).unwrap();
            let side = 7 * factor;
            let mut inside = 0;
            for (k, &v) in up.iter().enumerate() {
                let u = ((k % side) as f64 + 0.5) / factor as f64 - 0.5;
                if u.floor() >= 1.0 && u.floor() + 2.0 <= 6.0 {
                    inside += 1;
                    let expected = 0.1 + 0.1 * u;
                    assert!(
                        (f64::from(v) - expected).abs() < 1e-5,
                        "factor {factor}, column {}: {v} against {expected}",
                        k % side
                    );
                }
            }
            assert!(inside >= side * side / 2, "{inside}");
            // It is not nearest-neighbour upsampling: the ramp is smooth where U steps.
            let ramp: Vec<f32> = (0..49).map(|k| 0.1 + 0.1 * (k % 7) as f32).collect();
            let nearest = to_host(upsample_nearest(images(ramp, [1, 1, 7, 7]), factor).unwrap());
            assert_ne!(nearest.unwrap(), up);
        }
        assert!(matches!(
            upsample_bicubic(images(vec![0.0; 4], [1, 1, 2, 2]), 0),
            Err(GenError::InvalidConfig(_))
        ));
        assert!(matches!(
            upsample_bicubic(images(vec![f32::NAN; 4], [1, 1, 2, 2]), 2),
            Err(GenError::NonFiniteInput { .. })
        ));
    }

    #[test]
    fn the_low_pass_error_measures_the_block_means_against_the_input() {
        let low = images(vec![0.25, 0.5, 0.75, 1.0], [1, 1, 2, 2]);
        // Nearest-neighbour upsampling agrees exactly.
        let nearest = upsample_nearest(low.clone(), 2).unwrap();
        assert_eq!(
            low_pass_error(nearest.clone(), low.clone(), 2).unwrap(),
            [(0.0, 0.0)]
        );
        // Adding 0.1 to one block's four pixels moves its mean by 0.1: RMS √(0.01/4) = 0.05.
        let mut pixels = to_host(nearest).unwrap();
        for k in [0, 1, 4, 5] {
            pixels[k] += 0.1;
        }
        let errors = low_pass_error(images(pixels, [1, 1, 4, 4]), low.clone(), 2).unwrap();
        assert_eq!(errors.len(), 1);
        let (rms, max) = errors[0];
        assert!(
            (rms - 0.05).abs() < 1e-6 && (max - 0.1).abs() < 1e-6,
            "{rms} {max}"
        );
        assert!(matches!(
            low_pass_error(images(vec![0.0; 16], [1, 1, 4, 4]), low.clone(), 4),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            low_pass_error(images(vec![0.0; 16], [1, 1, 4, 4]), low, 3),
            Err(GenError::InvalidConfig(_))
        ));
    }

    #[test]
    fn accuracy_counts_the_right_predictions() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 0]).unwrap(), 0.5);
        assert_eq!(accuracy(&[7], &[7]).unwrap(), 1.0);
        assert_eq!(accuracy(&[7], &[1]).unwrap(), 0.0);
        assert!(matches!(
            accuracy(&[1], &[1, 2]),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            accuracy(&[], &[]),
            Err(GenError::EmptyData { .. })
        ));
    }
}

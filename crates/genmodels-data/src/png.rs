//! A folder of PNG images as an [`ImageSet`].

use std::path::{Path, PathBuf};

use genmodels_core::ImageShape;
use image::DynamicImage;

use crate::dataset::ImageSet;
use crate::error::DataError;

/// Reads every `*.png` in `dir` (sorted by file name) as one unlabelled image set.
///
/// Grey images (with or without alpha) give one channel, colour images three (alpha is
/// dropped); 16-bit images are reduced to 8 bits. All images must have the same size and
/// channel count.
///
/// # Errors
/// [`DataError::Empty`] when the folder has no PNG, [`DataError::Decode`] for a file that does
/// not decode, [`DataError::InconsistentImages`] naming the first image that differs.
pub fn load_png_folder(dir: &Path) -> Result<ImageSet, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.into(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::Empty(dir.into()));
    }

    let mut shape: Option<ImageShape> = None;
    let mut pixels = Vec::new();
    for path in &files {
        let image = image::open(path).map_err(|e| DataError::Decode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let (planar, this) = planar_pixels(&image);
        match shape {
            None => shape = Some(this),
            Some(first) if first != this => {
                return Err(DataError::InconsistentImages {
                    path: path.clone(),
                    expected: first.to_string(),
                    actual: this.to_string(),
                });
            }
            Some(_) => {}
        }
        pixels.extend(planar);
    }
    let shape = shape.expect("at least one image was read");
    ImageSet::new(shape, pixels, None)
}

/// The image as planar 8-bit `[C, H, W]` pixels and its shape.
fn planar_pixels(image: &DynamicImage) -> (Vec<u8>, ImageShape) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if image.color().has_color() {
        let rgb = image.to_rgb8();
        let mut planar = vec![0u8; 3 * h * w];
        for (x, y, p) in rgb.enumerate_pixels() {
            for c in 0..3 {
                planar[(c * h + y as usize) * w + x as usize] = p.0[c];
            }
        }
        (planar, ImageShape::new(3, h, w))
    } else {
        (image.to_luma8().into_raw(), ImageShape::new(1, h, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    #[test]
    fn reads_grey_and_rgb_folders_in_planar_layout() {
        let dir = tempfile::tempdir().unwrap();
        GrayImage::from_pixel(3, 2, Luma([9]))
            .save(dir.path().join("a.png"))
            .unwrap();
        GrayImage::from_pixel(3, 2, Luma([200]))
            .save(dir.path().join("b.png"))
            .unwrap();
        let set = load_png_folder(dir.path()).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.shape(), ImageShape::new(1, 2, 3));
        assert_eq!(set.image(1), &[200; 6]);

        let dir = tempfile::tempdir().unwrap();
        RgbImage::from_pixel(2, 2, Rgb([1, 2, 3]))
            .save(dir.path().join("c.png"))
            .unwrap();
        let set = load_png_folder(dir.path()).unwrap();
        assert_eq!(set.shape(), ImageShape::new(3, 2, 2));
        assert_eq!(set.image(0), &[1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    }

    #[test]
    fn mixed_sizes_and_empty_folders_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_png_folder(dir.path()),
            Err(DataError::Empty(_))
        ));
        GrayImage::new(3, 2).save(dir.path().join("a.png")).unwrap();
        GrayImage::new(2, 2).save(dir.path().join("b.png")).unwrap();
        assert!(matches!(
            load_png_folder(dir.path()),
            Err(DataError::InconsistentImages { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        GrayImage::new(2, 2).save(dir.path().join("a.png")).unwrap();
        RgbImage::new(2, 2).save(dir.path().join("b.png")).unwrap();
        assert!(matches!(
            load_png_folder(dir.path()),
            Err(DataError::InconsistentImages { .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_a_png_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
        assert!(matches!(
            load_png_folder(dir.path()),
            Err(DataError::Decode { .. })
        ));
    }
}

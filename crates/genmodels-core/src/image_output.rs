//! PNG sample grids.

use std::path::Path;

use burn::tensor::Tensor;
use image::{ImageBuffer, ImageFormat, Rgb, RgbImage};

use crate::batch::to_host;
use crate::error::{GenError, Result};
use crate::fs::write_atomic;

/// Layout of an image grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    /// Images per row.
    pub columns: usize,
    /// Pixels of background between images.
    pub padding: usize,
    /// Each pixel becomes a `scale × scale` block, so small images are visible.
    pub scale: usize,
}

impl GridLayout {
    /// `columns` per row, 2 px padding, ×2 scale.
    pub fn with_columns(columns: usize) -> Self {
        Self {
            columns,
            padding: 2,
            scale: 2,
        }
    }
}

/// Writes images `[N, C, H, W]` with values in `[0, 1]` (C = 1 or 3) as one PNG grid.
///
/// Values are clamped to `[0, 1]` and rounded to 8 bits. The file is written atomically.
///
/// # Errors
/// [`GenError::ShapeMismatch`] for channel counts other than 1 or 3 or an empty batch,
/// [`GenError::Image`]/[`GenError::Io`] when the PNG cannot be written.
pub fn save_image_grid(path: &Path, images: Tensor<4>, layout: GridLayout) -> Result<()> {
    let [n, c, h, w] = images.dims();
    if n == 0 {
        return Err(GenError::EmptyData {
            context: format!("image grid {}", path.display()),
        });
    }
    if c != 1 && c != 3 {
        return Err(GenError::shape("image grid channels", "1 or 3", c));
    }
    let pixels = to_host(images)?;
    let png = encode_grid(&pixels, [n, c, h, w], layout, path)?;
    write_atomic(path, &png)
}

/// Encodes host pixels `[N, C, H, W]` as a PNG grid in memory.
fn encode_grid(
    pixels: &[f32],
    [n, c, h, w]: [usize; 4],
    layout: GridLayout,
    path: &Path,
) -> Result<Vec<u8>> {
    let columns = layout.columns.clamp(1, n);
    let rows = n.div_ceil(columns);
    let s = layout.scale.max(1);
    let pad = layout.padding;
    let cell_w = w * s + pad;
    let cell_h = h * s + pad;
    let width = columns * cell_w + pad;
    let height = rows * cell_h + pad;
    let background = Rgb([40u8, 40, 40]);
    let mut canvas = ImageBuffer::from_pixel(width as u32, height as u32, background);
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for i in 0..n {
        let x0 = pad + (i % columns) * cell_w;
        let y0 = pad + (i / columns) * cell_h;
        for y in 0..h {
            for x in 0..w {
                let at = |ch: usize| pixels[((i * c + ch) * h + y) * w + x];
                let rgb = if c == 1 {
                    let g = to_u8(at(0));
                    Rgb([g, g, g])
                } else {
                    Rgb([to_u8(at(0)), to_u8(at(1)), to_u8(at(2))])
                };
                for dy in 0..s {
                    for dx in 0..s {
                        canvas.put_pixel((x0 + x * s + dx) as u32, (y0 + y * s + dy) as u32, rgb);
                    }
                }
            }
        }
    }
    encode_png(&canvas, path)
}

/// Encodes an RGB image as PNG bytes in memory; `path` only names the file in errors.
pub(crate) fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| GenError::Image {
            path: path.into(),
            reason: e.to_string(),
        })?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn grid_has_expected_size_and_pixel_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        // Three 2×2 grey images: black, white, grey.
        let mut values = vec![0.0f32; 4];
        values.extend([1.0; 4]);
        values.extend([0.5; 4]);
        let images = Tensor::<4>::from_data(TensorData::new(values, [3, 1, 2, 2]), &Device::flex());
        let layout = GridLayout {
            columns: 2,
            padding: 1,
            scale: 1,
        };
        save_image_grid(&path, images, layout).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 2 columns × (2 + 1) + 1 = 7 wide; 2 rows × 3 + 1 = 7 high.
        assert_eq!(img.dimensions(), (7, 7));
        assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 4).0, [128, 128, 128]);
    }

    #[test]
    fn grid_rejects_two_channel_images() {
        let images = Tensor::<4>::zeros([1, 2, 2, 2], &Device::flex());
        let err = save_image_grid(Path::new("x.png"), images, GridLayout::with_columns(1));
        assert!(matches!(err, Err(GenError::ShapeMismatch { .. })));
    }
}

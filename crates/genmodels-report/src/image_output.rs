//! PNG sample grids, alone or as labelled panels side by side.

use std::path::Path;

use burn::tensor::Tensor;
use image::{ImageBuffer, ImageFormat, Rgb, RgbImage};

use genmodels_core::batch::to_host;
use genmodels_core::error::{GenError, Result};
use genmodels_core::fs::write_atomic;

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
    let png = encode_png(&render_grid(&pixels, [n, c, h, w], layout), path)?;
    write_atomic(path, &png)
}

/// Writes several image grids side by side in one PNG, each under its label: one panel per
/// model on a sample sheet. Panels fill rows of `panels_per_row`; each panel lays its images
/// out by `layout`.
///
/// # Errors
/// As [`save_image_grid`] for each panel, and [`GenError::EmptyData`] without panels.
pub fn save_labelled_panels(
    path: &Path,
    panels: Vec<(String, Tensor<4>)>,
    layout: GridLayout,
    panels_per_row: usize,
) -> Result<()> {
    if panels.is_empty() {
        return Err(GenError::EmptyData {
            context: format!("panel sheet {}", path.display()),
        });
    }
    let mut grids = Vec::with_capacity(panels.len());
    for (label, images) in panels {
        let [n, c, h, w] = images.dims();
        if n == 0 {
            return Err(GenError::EmptyData {
                context: format!("panel `{label}` of {}", path.display()),
            });
        }
        if c != 1 && c != 3 {
            return Err(GenError::shape("panel channels", "1 or 3", c));
        }
        grids.push((label, render_grid(&to_host(images)?, [n, c, h, w], layout)));
    }
    let sheet = compose_panels(&grids, panels_per_row.max(1));
    write_atomic(path, &encode_png(&sheet, path)?)
}

/// Lays labelled grids out in rows on a white sheet, each label above its grid.
fn compose_panels(grids: &[(String, RgbImage)], panels_per_row: usize) -> RgbImage {
    const GAP: u32 = 16;
    const TEXT_SCALE: i32 = 2;
    let label_h = crate::plot::text_height(TEXT_SCALE) as u32 + 8;
    // Cells are wide enough for the widest grid and the widest label.
    let cell_w = grids
        .iter()
        .map(|(label, g)| {
            g.width()
                .max(crate::plot::text_width(label, TEXT_SCALE) as u32)
        })
        .max()
        .unwrap_or(0);
    let cell_h = grids.iter().map(|(_, g)| g.height()).max().unwrap_or(0) + label_h;
    let columns = panels_per_row.min(grids.len()) as u32;
    let rows = grids.len().div_ceil(panels_per_row) as u32;
    let width = columns * (cell_w + GAP) + GAP;
    let height = rows * (cell_h + GAP) + GAP;
    let mut sheet = ImageBuffer::from_pixel(width, height, Rgb([255u8, 255, 255]));
    for (i, (label, grid)) in grids.iter().enumerate() {
        let x0 = GAP + (i as u32 % columns) * (cell_w + GAP);
        let y0 = GAP + (i as u32 / columns) * (cell_h + GAP);
        crate::plot::draw_text(
            &mut sheet,
            x0 as i32,
            y0 as i32,
            label,
            TEXT_SCALE,
            Rgb([34, 34, 34]),
        );
        image::imageops::replace(&mut sheet, grid, x0.into(), (y0 + label_h).into());
    }
    sheet
}

/// Draws host pixels `[N, C, H, W]` as a grid image.
fn render_grid(pixels: &[f32], [n, c, h, w]: [usize; 4], layout: GridLayout) -> RgbImage {
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
    canvas
}

/// Encodes an RGB image as PNG bytes in memory; `path` only names the file in errors.
/// Checks that `path` names a PNG file (extension `.png`, any case): PNG is the one format
/// written, and bytes of one format under another's name would mislead every viewer.
///
/// # Errors
/// [`GenError::Image`] naming the path.
pub fn check_png_path(path: &Path) -> Result<()> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        Ok(())
    } else {
        Err(GenError::Image {
            path: path.into(),
            reason: "images are written as PNG only: give the file a .png name".into(),
        })
    }
}

pub(crate) fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    check_png_path(path)?;
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
    fn only_png_names_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let images = Tensor::<4>::from_data(
            TensorData::new(vec![0.5f32; 4], [1, 1, 2, 2]),
            &Device::flex(),
        );
        let layout = GridLayout {
            columns: 1,
            scale: 1,
            padding: 0,
        };
        for name in ["grid.jpg", "grid", "grid.png.txt"] {
            let path = dir.path().join(name);
            let err = save_image_grid(&path, images.clone(), layout).unwrap_err();
            assert!(matches!(err, GenError::Image { .. }), "{name}: {err}");
            assert!(!path.exists(), "{name} was written");
        }
        save_image_grid(&dir.path().join("grid.PNG"), images, layout).unwrap();
    }

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
    fn panels_sit_side_by_side_under_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheet.png");
        let device = Device::flex();
        let white = Tensor::<4>::ones([4, 1, 3, 3], &device);
        let black = Tensor::<4>::zeros([2, 1, 3, 3], &device);
        let layout = GridLayout {
            columns: 2,
            padding: 1,
            scale: 1,
        };
        let panels = vec![("a".to_string(), white), ("b".to_string(), black)];
        save_labelled_panels(&path, panels, layout, 2).unwrap();
        let sheet = image::open(&path).unwrap().to_rgb8();
        // Each grid is 2 × (3 + 1) + 1 = 9 px wide, a one-letter label 10 px: cells of 10 px,
        // two panels with 16 px gaps.
        let cell = crate::plot::text_width("a", 2) as u32;
        assert_eq!(cell, 10);
        assert_eq!(sheet.width(), 16 + 2 * (cell + 16));
        let label_h = crate::plot::text_height(2) as u32 + 8;
        // First image of the first panel is white, of the second black; labels are drawn.
        assert_eq!(sheet.get_pixel(17, 16 + label_h + 1).0, [255, 255, 255]);
        assert_eq!(
            sheet.get_pixel(16 + cell + 16 + 1, 16 + label_h + 1).0,
            [0, 0, 0]
        );
        let label_ink = (16..16 + label_h)
            .flat_map(|y| (16..16 + cell).map(move |x| (x, y)))
            .filter(|&(x, y)| sheet.get_pixel(x, y).0 != [255, 255, 255])
            .count();
        assert!(label_ink > 0);
        let none = save_labelled_panels(&path, Vec::new(), layout, 2);
        assert!(matches!(none, Err(GenError::EmptyData { .. })));
    }

    #[test]
    fn grid_rejects_two_channel_images() {
        let images = Tensor::<4>::zeros([1, 2, 2, 2], &Device::flex());
        let err = save_image_grid(Path::new("x.png"), images, GridLayout::with_columns(1));
        assert!(matches!(err, Err(GenError::ShapeMismatch { .. })));
    }
}

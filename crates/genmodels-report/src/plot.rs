//! PNG charts drawn by our own code: grouped bar charts ([`BarChart`]) and line charts
//! ([`LineChart`]).
//!
//! Everything, text included, is drawn pixel by pixel into an [`RgbImage`]: an embedded 5×7
//! bitmap font (printable ASCII; anything else draws as a hollow box) means no font has to
//! exist on the machine. Series take their colours in order from [`PALETTE`] (Okabe–Ito,
//! readable with the common colour-vision deficiencies). Axis ticks fall on 1, 2, 5 × 10^k.
//!
//! ```
//! use genmodels_report::plot::BarChart;
//!
//! let chart = BarChart::new("Training throughput")
//!     .with_y_label("images/s")
//!     .with_log_y(true)
//!     .with_categories(["pixelcnn", "vae", "dcgan"])
//!     .with_series("flex", [Some(86.0), Some(2100.0), Some(310.0)])
//!     .with_series("wgpu", [Some(1900.0), None, Some(4200.0)]);
//! let image = chart.render()?;
//! assert_eq!(image.dimensions(), (900, 500));
//! # Ok::<(), genmodels_core::GenError>(())
//! ```

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::image_output::encode_png;
use genmodels_core::error::{GenError, Result};
use genmodels_core::fs::write_atomic;

/// Series colours, in the order series are added: the Okabe–Ito palette (blue, orange, bluish
/// green, vermillion, reddish purple, sky blue, yellow, black). A chart holds at most this
/// many series, so that no two share a colour.
pub const PALETTE: [Rgb<u8>; 8] = [
    Rgb([0, 114, 178]),
    Rgb([230, 159, 0]),
    Rgb([0, 158, 115]),
    Rgb([213, 94, 0]),
    Rgb([204, 121, 167]),
    Rgb([86, 180, 233]),
    Rgb([240, 228, 66]),
    Rgb([0, 0, 0]),
];

/// Default image size in pixels (width, height).
pub const DEFAULT_SIZE: (u32, u32) = (900, 500);

/// Smallest accepted image side, in pixels.
const MIN_SIDE: u32 = 200;
/// Largest accepted image side, in pixels (keeps a typo from allocating gigabytes).
const MAX_SIDE: u32 = 8192;

const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const TEXT: Rgb<u8> = Rgb([34, 34, 34]);
const AXIS: Rgb<u8> = Rgb([90, 90, 90]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);

/// Blank space around the whole chart, in pixels.
const MARGIN: i32 = 14;
/// Scale of tick labels, legend and axis labels (5×7 glyphs drawn as 10×14).
const TEXT_SCALE: i32 = 2;
/// Length of a tick mark outside the plot area.
const TICK_LEN: i32 = 5;

// ---------------------------------------------------------------------------------------------
// Bitmap font
// ---------------------------------------------------------------------------------------------

/// Glyph width in font pixels.
const GLYPH_W: i32 = 5;
/// Height of capitals and digits in font pixels.
const CAP_H: i32 = 7;
/// Rows a glyph may use: the capital height plus one row for descenders (g, j, p, q, y).
const GLYPH_H: i32 = CAP_H + 1;
/// Horizontal advance per character in font pixels (one blank column between glyphs).
const ADVANCE: i32 = GLYPH_W + 1;

/// 5×7 glyphs for ASCII 32 (space) to 126 (`~`), with descenders in an eighth row. Each glyph
/// is five columns, left to right; bit `r` of a column byte is pixel row `r`, counted from the
/// top (rows 0–6 above the baseline, row 7 below it).
#[rustfmt::skip]
const FONT: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x00, 0x00, 0x5F, 0x00, 0x00], // !
    [0x00, 0x07, 0x00, 0x07, 0x00], // "
    [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
    [0x23, 0x13, 0x08, 0x64, 0x62], // %
    [0x36, 0x49, 0x55, 0x22, 0x50], // &
    [0x00, 0x05, 0x03, 0x00, 0x00], // '
    [0x00, 0x1C, 0x22, 0x41, 0x00], // (
    [0x00, 0x41, 0x22, 0x1C, 0x00], // )
    [0x14, 0x08, 0x3E, 0x08, 0x14], // *
    [0x08, 0x08, 0x3E, 0x08, 0x08], // +
    [0x00, 0x80, 0x60, 0x00, 0x00], // ,
    [0x08, 0x08, 0x08, 0x08, 0x08], // -
    [0x00, 0x60, 0x60, 0x00, 0x00], // .
    [0x20, 0x10, 0x08, 0x04, 0x02], // /
    [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
    [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
    [0x42, 0x61, 0x51, 0x49, 0x46], // 2
    [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
    [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
    [0x27, 0x45, 0x45, 0x45, 0x39], // 5
    [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
    [0x01, 0x71, 0x09, 0x05, 0x03], // 7
    [0x36, 0x49, 0x49, 0x49, 0x36], // 8
    [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
    [0x00, 0x36, 0x36, 0x00, 0x00], // :
    [0x00, 0x80, 0x6C, 0x00, 0x00], // ;
    [0x08, 0x14, 0x22, 0x41, 0x00], // <
    [0x14, 0x14, 0x14, 0x14, 0x14], // =
    [0x00, 0x41, 0x22, 0x14, 0x08], // >
    [0x02, 0x01, 0x51, 0x09, 0x06], // ?
    [0x32, 0x49, 0x79, 0x41, 0x3E], // @
    [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
    [0x7F, 0x49, 0x49, 0x49, 0x36], // B
    [0x3E, 0x41, 0x41, 0x41, 0x22], // C
    [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
    [0x7F, 0x49, 0x49, 0x49, 0x41], // E
    [0x7F, 0x09, 0x09, 0x09, 0x01], // F
    [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
    [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
    [0x00, 0x41, 0x7F, 0x41, 0x00], // I
    [0x20, 0x40, 0x41, 0x3F, 0x01], // J
    [0x7F, 0x08, 0x14, 0x22, 0x41], // K
    [0x7F, 0x40, 0x40, 0x40, 0x40], // L
    [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
    [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
    [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
    [0x7F, 0x09, 0x09, 0x09, 0x06], // P
    [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
    [0x7F, 0x09, 0x19, 0x29, 0x46], // R
    [0x46, 0x49, 0x49, 0x49, 0x31], // S
    [0x01, 0x01, 0x7F, 0x01, 0x01], // T
    [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
    [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
    [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
    [0x63, 0x14, 0x08, 0x14, 0x63], // X
    [0x07, 0x08, 0x70, 0x08, 0x07], // Y
    [0x61, 0x51, 0x49, 0x45, 0x43], // Z
    [0x00, 0x7F, 0x41, 0x41, 0x00], // [
    [0x02, 0x04, 0x08, 0x10, 0x20], // \
    [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
    [0x04, 0x02, 0x01, 0x02, 0x04], // ^
    [0x40, 0x40, 0x40, 0x40, 0x40], // _
    [0x00, 0x01, 0x02, 0x04, 0x00], // `
    [0x20, 0x54, 0x54, 0x54, 0x78], // a
    [0x7F, 0x48, 0x44, 0x44, 0x38], // b
    [0x38, 0x44, 0x44, 0x44, 0x20], // c
    [0x38, 0x44, 0x44, 0x48, 0x7F], // d
    [0x38, 0x54, 0x54, 0x54, 0x18], // e
    [0x08, 0x7E, 0x09, 0x01, 0x02], // f
    [0x98, 0xA4, 0xA4, 0xA4, 0x7C], // g
    [0x7F, 0x08, 0x04, 0x04, 0x78], // h
    [0x00, 0x44, 0x7D, 0x40, 0x00], // i
    [0x40, 0x80, 0x84, 0x7D, 0x00], // j
    [0x7F, 0x10, 0x28, 0x44, 0x00], // k
    [0x00, 0x41, 0x7F, 0x40, 0x00], // l
    [0x7C, 0x04, 0x18, 0x04, 0x78], // m
    [0x7C, 0x08, 0x04, 0x04, 0x78], // n
    [0x38, 0x44, 0x44, 0x44, 0x38], // o
    [0xFC, 0x24, 0x24, 0x24, 0x18], // p
    [0x18, 0x24, 0x24, 0x24, 0xFC], // q
    [0x7C, 0x08, 0x04, 0x04, 0x08], // r
    [0x48, 0x54, 0x54, 0x54, 0x20], // s
    [0x04, 0x3F, 0x44, 0x40, 0x20], // t
    [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
    [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
    [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
    [0x44, 0x28, 0x10, 0x28, 0x44], // x
    [0x9C, 0xA0, 0xA0, 0xA0, 0x7C], // y
    [0x44, 0x64, 0x54, 0x4C, 0x44], // z
    [0x00, 0x08, 0x36, 0x41, 0x00], // {
    [0x00, 0x00, 0x7F, 0x00, 0x00], // |
    [0x00, 0x41, 0x36, 0x08, 0x00], // }
    [0x08, 0x04, 0x08, 0x10, 0x08], // ~
];

/// Drawn for any character outside printable ASCII: a hollow box.
const FALLBACK_GLYPH: [u8; 5] = [0x7F, 0x41, 0x41, 0x41, 0x7F];

/// The glyph of `c`, or [`FALLBACK_GLYPH`] outside ASCII 32..=126.
fn glyph(c: char) -> &'static [u8; 5] {
    match c {
        ' '..='~' => &FONT[c as usize - ' ' as usize],
        _ => &FALLBACK_GLYPH,
    }
}

/// Width in pixels of `text` drawn at `scale` (no trailing blank column).
pub(crate) fn text_width(text: &str, scale: i32) -> i32 {
    let n = text.chars().count() as i32;
    if n == 0 { 0 } else { (n * ADVANCE - 1) * scale }
}

/// Height in pixels of one line of text at `scale`, descenders included.
pub(crate) fn text_height(scale: i32) -> i32 {
    GLYPH_H * scale
}

/// Height in pixels of capitals and digits at `scale` (what the eye centres on).
fn cap_height(scale: i32) -> i32 {
    CAP_H * scale
}

/// `text` cut to at most `max_width` pixels at `scale`, ending in `..` when cut.
fn fit_text(text: &str, max_width: i32, scale: i32) -> String {
    if text_width(text, scale) <= max_width {
        return text.to_string();
    }
    let mut kept: String = text.chars().collect();
    while !kept.is_empty() {
        kept.pop();
        let candidate = format!("{}..", kept.trim_end());
        if text_width(&candidate, scale) <= max_width {
            return candidate;
        }
    }
    String::new()
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel a `scale`×`scale`
/// block. Pixels outside the image are skipped.
pub(crate) fn draw_text(
    img: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    scale: i32,
    colour: Rgb<u8>,
) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i32 * ADVANCE * scale;
        for (col, bits) in glyph(c).iter().enumerate() {
            for row in 0..GLYPH_H {
                if bits >> row & 1 == 1 {
                    fill_rect(
                        img,
                        gx + col as i32 * scale,
                        y + row * scale,
                        scale,
                        scale,
                        colour,
                    );
                }
            }
        }
    }
}

/// Draws `text` turned 90° anticlockwise, reading bottom to top: (`x`, `y`) is the left edge
/// of the glyphs' tops and the bottom end of the text.
fn draw_text_up(img: &mut RgbImage, x: i32, y: i32, text: &str, scale: i32, colour: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let along = i as i32 * ADVANCE * scale;
        for (col, bits) in glyph(c).iter().enumerate() {
            for row in 0..GLYPH_H {
                if bits >> row & 1 == 1 {
                    // Text x runs up the screen, text y runs right.
                    let tx = along + col as i32 * scale;
                    fill_rect(
                        img,
                        x + row * scale,
                        y - tx - scale + 1,
                        scale,
                        scale,
                        colour,
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pixel primitives (all clip to the image, so no coordinate can panic)
// ---------------------------------------------------------------------------------------------

fn put(img: &mut RgbImage, x: i32, y: i32, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, colour);
    }
}

/// Fills the `w`×`h` rectangle whose top-left pixel is (`x`, `y`).
fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, colour: Rgb<u8>) {
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + w).min(img.width() as i32);
    let y1 = (y + h).min(img.height() as i32);
    for py in y0..y1 {
        for px in x0..x1 {
            img.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// A line about 3 px thick from (`x0`, `y0`) to (`x1`, `y1`) (Bresenham, a plus-shaped pen).
fn draw_line(img: &mut RgbImage, (x0, y0): (i32, i32), (x1, y1): (i32, i32), colour: Rgb<u8>) {
    let dx = (x1 - x0).abs();
    let dy = -(y1 - y0).abs();
    let sx = if x0 < x1 { 1 } else { -1 };
    let sy = if y0 < y1 { 1 } else { -1 };
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        for (ox, oy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
            put(img, x + ox, y + oy, colour);
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// A filled disc of radius 3.5 px centred on (`cx`, `cy`).
fn draw_marker(img: &mut RgbImage, cx: i32, cy: i32, colour: Rgb<u8>) {
    for dy in -3..=3 {
        for dx in -3..=3 {
            if dx * dx + dy * dy <= 12 {
                put(img, cx + dx, cy + dy, colour);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Axes and tick values
// ---------------------------------------------------------------------------------------------

/// The smallest of 1, 2, 5 × 10^k that is ≥ `x` (for `x` > 0).
fn nice_at_least(x: f64) -> f64 {
    let base = 10f64.powi(x.log10().floor() as i32);
    let m = x / base;
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|&n| m <= n * (1.0 + 1e-9))
        .unwrap_or(10.0)
        * base
}

/// The largest of 1, 2, 5 × 10^k that is ≤ `x` (for `x` > 0).
fn nice_at_most(x: f64) -> f64 {
    let base = 10f64.powi(x.log10().floor() as i32);
    let m = x / base;
    [10.0, 5.0, 2.0, 1.0]
        .into_iter()
        .find(|&n| m >= n * (1.0 - 1e-9))
        .unwrap_or(1.0)
        * base
}

/// Values a chart can place: far enough from f64's limits that tick arithmetic stays finite.
const PLOTTABLE: f64 = 1e300;

/// One axis: its range, scale and labelled ticks.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    /// A linear axis covering `[min, max]`, widened to whole tick steps of 1, 2, 5 × 10^k
    /// (4 to 7 intervals).
    fn linear(min: f64, max: f64) -> Result<Self> {
        if min.abs() > PLOTTABLE || max.abs() > PLOTTABLE {
            return Err(out_of_plottable_range());
        }
        let (min, max) = if max > min {
            (min, max)
        } else {
            let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            (min - pad, max + pad)
        };
        let step = nice_at_least((max - min) / 7.0);
        let k_lo = (min / step + 1e-9).floor();
        let k_hi = (max / step - 1e-9).ceil();
        if !(step.is_finite() && step > 0.0 && k_hi - k_lo <= 64.0) {
            return Err(out_of_plottable_range());
        }
        let ticks: Vec<f64> = (k_lo as i64..=k_hi as i64)
            .map(|k| {
                let t = k as f64 * step;
                if t.abs() < step * 1e-9 { 0.0 } else { t }
            })
            .collect();
        let labels = linear_labels(&ticks, step);
        Ok(Self {
            lo: k_lo * step,
            hi: k_hi * step,
            log: false,
            ticks,
            labels,
        })
    }

    /// A base-10 logarithmic axis covering `[min, max]` (both > 0), widened to 1, 2, 5 × 10^k.
    /// Up to three decades every 1, 2, 5 is a tick; beyond that only powers of ten.
    fn log(min: f64, max: f64) -> Result<Self> {
        if !(min > 1.0 / PLOTTABLE && max < PLOTTABLE) {
            return Err(out_of_plottable_range());
        }
        let mut lo = nice_at_most(min);
        let mut hi = nice_at_least(max);
        if hi <= lo * (1.0 + 1e-9) {
            lo = nice_at_most(lo * 0.99);
            hi = nice_at_least(hi * 1.01);
        }
        let decades = (hi / lo).log10();
        let mut ticks = Vec::new();
        if decades <= 3.0 + 1e-9 {
            let mut t = lo;
            while t <= hi * (1.0 + 1e-9) {
                ticks.push(t);
                t = nice_at_least(t * 1.01);
            }
        } else {
            let first = (lo.log10() - 1e-9).ceil() as i32;
            let last = (hi.log10() + 1e-9).floor() as i32;
            let stride = ((last - first) / 8 + 1).max(1);
            ticks.extend(
                (first..=last)
                    .step_by(stride as usize)
                    .map(|k| 10f64.powi(k)),
            );
        }
        let labels = ticks.iter().map(|&t| log_label(t)).collect();
        Ok(Self {
            lo,
            hi,
            log: true,
            ticks,
            labels,
        })
    }

    /// Where `v` lies along the axis: 0 at `lo`, 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// The widest tick label in pixels at `scale`.
    fn label_width(&self, scale: i32) -> i32 {
        self.labels
            .iter()
            .map(|l| text_width(l, scale))
            .max()
            .unwrap_or(0)
    }
}

fn out_of_plottable_range() -> GenError {
    GenError::InvalidConfig(format!(
        "chart values must lie within ±{PLOTTABLE:e} (and above {:e} on a logarithmic axis)",
        1.0 / PLOTTABLE
    ))
}

/// Labels of evenly spaced ticks: as many decimals as `step` needs, thousands as `k`/`M`/`G`.
fn linear_labels(ticks: &[f64], step: f64) -> Vec<String> {
    let largest = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    if largest > 0.0 && largest < 1e-3 {
        return ticks.iter().map(|t| format!("{t:.1e}")).collect();
    }
    let (unit, suffix) = thousands_unit(largest);
    let decimals = (-(step / unit).log10() - 1e-9).ceil().max(0.0) as usize;
    ticks
        .iter()
        .map(|t| {
            if *t == 0.0 {
                "0".to_string()
            } else {
                format!("{:.*}{suffix}", decimals, t / unit)
            }
        })
        .collect()
}

/// The unit and suffix for showing numbers up to `largest`: 10 000 and more in k, M or G.
fn thousands_unit(largest: f64) -> (f64, &'static str) {
    if largest >= 1e9 {
        (1e9, "G")
    } else if largest >= 1e6 {
        (1e6, "M")
    } else if largest >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    }
}

/// Label of a tick on a logarithmic axis (a 1, 2, 5 × 10^k value): `0.02`, `500`, `20k`, `5e-5`.
fn log_label(t: f64) -> String {
    let k = (t.log10() + 1e-9).floor() as i32;
    if !(-3..12).contains(&k) {
        format!("{t:e}")
    } else if k >= 4 {
        let (unit, suffix) = thousands_unit(t);
        format!("{}{suffix}", (t / unit).round())
    } else if k >= 0 {
        format!("{t:.0}")
    } else {
        format!("{:.*}", (-k) as usize, t)
    }
}

/// A bar's value label: three significant digits, thousands as `k`/`M`/`G`.
fn value_label(v: f64) -> String {
    let a = v.abs();
    let sig3 = |x: f64| {
        let decimals = match x.abs() {
            a if a >= 100.0 => 0,
            a if a >= 10.0 => 1,
            _ => 2,
        };
        trim_zeros(format!("{x:.decimals$}"))
    };
    if a == 0.0 {
        "0".to_string()
    } else if a >= 1e4 {
        let (unit, suffix) = thousands_unit(a);
        format!("{}{suffix}", sig3(v / unit))
    } else if a >= 1.0 {
        sig3(v)
    } else if a >= 1e-3 {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        trim_zeros(format!("{v:.decimals$}"))
    } else {
        format!("{v:.2e}")
    }
}

/// `"2.50"` → `"2.5"`, `"3.00"` → `"3"`; integers are left alone.
fn trim_zeros(mut s: String) -> String {
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Layout shared by both chart kinds
// ---------------------------------------------------------------------------------------------

/// The plot area in image pixels: `left` is the y axis column, `bottom` the x axis row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
}

impl Frame {
    fn width(&self) -> i32 {
        self.right - self.left
    }

    fn height(&self) -> i32 {
        self.bottom - self.top
    }

    /// Column of an axis fraction (0 = left, 1 = right).
    fn x_at(&self, fraction: f64) -> i32 {
        self.left + (fraction * self.width() as f64).round() as i32
    }

    /// Row of an axis fraction (0 = bottom, 1 = top).
    fn y_at(&self, fraction: f64) -> i32 {
        self.bottom - (fraction * self.height() as f64).round() as i32
    }
}

/// What surrounds the plot area: title, legend, axis labels and the y axis.
struct Chrome<'a> {
    width: u32,
    height: u32,
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    legend: Vec<(&'a str, Rgb<u8>)>,
    y_axis: &'a Axis,
}

/// A piece of text placed at a top-left corner.
#[derive(Debug, Clone)]
struct Placed {
    text: String,
    x: i32,
    y: i32,
    scale: i32,
}

/// Where everything outside the plot area goes.
#[derive(Debug, Clone)]
struct Layout {
    frame: Frame,
    title: Option<Placed>,
    /// Legend entries: the swatch's top-left corner, its colour, and the name beside it.
    legend: Vec<(i32, i32, Rgb<u8>, Placed)>,
    x_label: Option<Placed>,
    /// The y label, drawn turned: `x` is its left edge, `y` its bottom end.
    y_label: Option<Placed>,
}

impl Chrome<'_> {
    /// Places the chrome around a plot area that leaves `right_pad` pixels to the right of the
    /// frame and `bottom_band(plot_width)` pixels below the x axis for tick or category labels.
    fn layout(&self, right_pad: i32, bottom_band: impl FnOnce(i32) -> i32) -> Result<Layout> {
        let (w, h) = (self.width as i32, self.height as i32);
        let line = text_height(TEXT_SCALE);
        let inner_w = w - 2 * MARGIN;

        // Horizontal: [margin][y label][gap][tick labels][tick][frame ...][right pad][margin].
        let y_label_w = if self.y_label.is_empty() {
            0
        } else {
            line + 10
        };
        let left = MARGIN + y_label_w + self.y_axis.label_width(TEXT_SCALE) + TICK_LEN + 5;
        let right = w - 1 - MARGIN - right_pad;

        // Vertical, top down: title, legend rows, then the frame.
        let mut y = MARGIN;
        let title = (!self.title.is_empty()).then(|| {
            let scale = [3, 2]
                .into_iter()
                .find(|&s| text_width(self.title, s) <= inner_w)
                .unwrap_or(TEXT_SCALE);
            let text = fit_text(self.title, inner_w, scale);
            let placed = Placed {
                x: (w - text_width(&text, scale)) / 2,
                y,
                text,
                scale,
            };
            y += text_height(scale) + 12;
            placed
        });
        let legend = self.layout_legend(&mut y, inner_w);
        // Half a tick label of room, so the top tick's label stays clear of the legend.
        let top = y + 4 + line / 2;

        let x_label_h = if self.x_label.is_empty() {
            0
        } else {
            line + 10
        };
        let bottom = h - 1 - MARGIN - x_label_h - bottom_band(right - left);
        let frame = Frame {
            left,
            top,
            right,
            bottom,
        };
        if frame.width() < 40 || frame.height() < 40 {
            return Err(GenError::InvalidConfig(format!(
                "a {w}×{h} px chart leaves no room to plot beside its labels; make it larger"
            )));
        }

        let x_label = (!self.x_label.is_empty()).then(|| {
            let text = fit_text(self.x_label, inner_w, TEXT_SCALE);
            let width = text_width(&text, TEXT_SCALE);
            Placed {
                // Centred under the frame, unless that would push it off the image.
                x: ((frame.left + frame.right - width) / 2).min(w - MARGIN - width),
                y: h - 1 - MARGIN - line,
                text,
                scale: TEXT_SCALE,
            }
        });
        let y_label = (!self.y_label.is_empty()).then(|| {
            let text = fit_text(self.y_label, frame.height(), TEXT_SCALE);
            Placed {
                x: MARGIN,
                y: (frame.top + frame.bottom + text_width(&text, TEXT_SCALE)) / 2,
                text,
                scale: TEXT_SCALE,
            }
        });
        Ok(Layout {
            frame,
            title,
            legend,
            x_label,
            y_label,
        })
    }

    /// Legend entries in centred rows that wrap to `inner_w`; advances `y` past them.
    fn layout_legend(&self, y: &mut i32, inner_w: i32) -> Vec<(i32, i32, Rgb<u8>, Placed)> {
        let (line, swatch) = (text_height(TEXT_SCALE), cap_height(TEXT_SCALE));
        let (swatch_gap, entry_gap) = (6, 22);
        let entries: Vec<(String, Rgb<u8>, i32)> = self
            .legend
            .iter()
            .map(|(name, colour)| {
                let text = fit_text(name, inner_w - swatch - swatch_gap, TEXT_SCALE);
                let width = swatch + swatch_gap + text_width(&text, TEXT_SCALE);
                (text, *colour, width)
            })
            .collect();
        // Greedy rows: each holds as many entries as fit.
        let mut rows: Vec<Vec<&(String, Rgb<u8>, i32)>> = Vec::new();
        let mut row_w = 0;
        for entry in &entries {
            match rows.last_mut() {
                Some(row) if row_w + entry_gap + entry.2 <= inner_w => {
                    row_w += entry_gap + entry.2;
                    row.push(entry);
                }
                _ => {
                    rows.push(vec![entry]);
                    row_w = entry.2;
                }
            }
        }
        let mut placed = Vec::new();
        for row in rows {
            let total: i32 =
                row.iter().map(|e| e.2).sum::<i32>() + entry_gap * (row.len() as i32 - 1);
            let mut x = MARGIN + (inner_w - total) / 2;
            for (text, colour, width) in row {
                let name = Placed {
                    text: text.clone(),
                    x: x + swatch + swatch_gap,
                    y: *y,
                    scale: TEXT_SCALE,
                };
                placed.push((x, *y, *colour, name));
                x += width + entry_gap;
            }
            *y += line + 8;
        }
        *y += 4;
        placed
    }
}

impl Layout {
    /// Draws the title, legend, axis labels, and the y grid and tick labels; the caller then
    /// draws [`Layout::draw_axes`] and the data on top (so points on an axis stay visible).
    fn draw_chrome(&self, img: &mut RgbImage, y_axis: &Axis) {
        let f = self.frame;
        for p in self.title.iter().chain(&self.x_label) {
            draw_text(img, p.x, p.y, &p.text, p.scale, TEXT);
        }
        if let Some(p) = &self.y_label {
            draw_text_up(img, p.x, p.y, &p.text, p.scale, TEXT);
        }
        let side = cap_height(TEXT_SCALE);
        for (x, y, colour, name) in &self.legend {
            fill_rect(img, *x, *y, side, side, *colour);
            draw_text(img, name.x, name.y, &name.text, name.scale, TEXT);
        }
        // Label every tick, or every other, … so labels stay at least 1.2 lines apart.
        let spacing = f.height() as f64 / (y_axis.ticks.len().max(2) - 1) as f64;
        let line = text_height(TEXT_SCALE) as f64;
        let stride = ((line * 1.2) / spacing).ceil().max(1.0) as usize;
        for (i, (&t, label)) in y_axis.ticks.iter().zip(&y_axis.labels).enumerate() {
            let y = f.y_at(y_axis.fraction(t));
            fill_rect(img, f.left + 1, y, f.width(), 1, GRID);
            if i % stride == 0 {
                fill_rect(img, f.left - TICK_LEN, y, TICK_LEN, 1, AXIS);
                let lx = f.left - TICK_LEN - 5 - text_width(label, TEXT_SCALE);
                draw_text(img, lx, y - side / 2, label, TEXT_SCALE, TEXT);
            }
        }
    }

    /// The y axis (left) and x axis (bottom) lines.
    fn draw_axes(&self, img: &mut RgbImage) {
        let f = self.frame;
        fill_rect(img, f.left, f.top, 1, f.height() + 1, AXIS);
        fill_rect(img, f.left, f.bottom, f.width() + 1, 1, AXIS);
    }
}

/// Checks the image size.
fn check_size(chart: &str, (w, h): (u32, u32)) -> Result<()> {
    if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
        return Err(GenError::InvalidConfig(format!(
            "{chart} size {w}×{h} px: each side must lie in {MIN_SIDE}..={MAX_SIDE}"
        )));
    }
    Ok(())
}

/// Checks a value for an axis: finite, and positive on a logarithmic axis.
fn check_value(context: impl FnOnce() -> String, v: f64, log: bool) -> Result<()> {
    if !v.is_finite() {
        return Err(GenError::NonFiniteInput { context: context() });
    }
    if log && v <= 0.0 {
        return Err(GenError::ValueOutOfRange {
            context: context(),
            expected: "(0, ∞) on a logarithmic axis".to_string(),
            found: v as f32,
        });
    }
    Ok(())
}

/// Checks that there are between one and [`PALETTE`]`.len()` series.
fn check_series_count(chart: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(GenError::EmptyData {
            context: format!("{chart} series"),
        });
    }
    if n > PALETTE.len() {
        return Err(GenError::InvalidConfig(format!(
            "{chart} has {n} series; at most {} can have distinct colours",
            PALETTE.len()
        )));
    }
    Ok(())
}

fn save(image: &RgbImage, path: &Path) -> Result<()> {
    let png = encode_png(image, path)?;
    write_atomic(path, &png)
}

// ---------------------------------------------------------------------------------------------
// Bar chart
// ---------------------------------------------------------------------------------------------

/// A grouped bar chart: categories along the x axis, one bar per series within each category.
///
/// Bars start at zero on a linear axis and at the axis floor on a logarithmic one. A missing
/// value (`None`) leaves a gap where its bar would be. Built with `with_*` methods; nothing is
/// checked until [`BarChart::render`] or [`BarChart::save_png`].
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    log_y: bool,
    value_labels: bool,
    size: (u32, u32),
    categories: Vec<String>,
    series: Vec<(String, Vec<Option<f64>>)>,
}

impl BarChart {
    /// An empty chart with a title, 900×500 px, linear y axis, value labels on.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_y: false,
            value_labels: true,
            size: DEFAULT_SIZE,
            categories: Vec::new(),
            series: Vec::new(),
        }
    }

    /// The y axis label, drawn turned along the axis.
    pub fn with_y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// The x axis label, drawn under the category names.
    pub fn with_x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// A base-10 logarithmic y axis (all values must then be > 0).
    pub fn with_log_y(mut self, log_y: bool) -> Self {
        self.log_y = log_y;
        self
    }

    /// Whether each bar carries its value above it (on by default; a label that does not fit
    /// the bar's width is left out).
    pub fn with_value_labels(mut self, value_labels: bool) -> Self {
        self.value_labels = value_labels;
        self
    }

    /// The image size in pixels (each side 200..=8192).
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// The category names, left to right.
    pub fn with_categories<S: Into<String>>(
        mut self,
        categories: impl IntoIterator<Item = S>,
    ) -> Self {
        self.categories = categories.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a series: one value per category, `None` where it has none. Series take the
    /// colours of [`PALETTE`] in the order they are added.
    pub fn with_series(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = Option<f64>>,
    ) -> Self {
        self.series
            .push((name.into(), values.into_iter().collect()));
        self
    }

    /// Draws the chart.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] without categories or series, [`GenError::ShapeMismatch`] when
    /// a series' length differs from the number of categories, [`GenError::NonFiniteInput`]
    /// for a NaN or infinite value, [`GenError::ValueOutOfRange`] for a value ≤ 0 on a
    /// logarithmic axis, [`GenError::InvalidConfig`] for more series than colours or a size
    /// out of range or too small for the labels.
    pub fn render(&self) -> Result<RgbImage> {
        check_size("bar chart", self.size)?;
        if self.categories.is_empty() {
            return Err(GenError::EmptyData {
                context: "bar chart categories".to_string(),
            });
        }
        check_series_count("bar chart", self.series.len())?;
        for (name, values) in &self.series {
            if values.len() != self.categories.len() {
                return Err(GenError::shape(
                    format!("bar chart series `{name}` (one value per category)"),
                    self.categories.len(),
                    values.len(),
                ));
            }
            for (category, v) in self.categories.iter().zip(values) {
                if let Some(v) = *v {
                    check_value(
                        || format!("bar chart `{name}` at `{category}`"),
                        v,
                        self.log_y,
                    )?;
                }
            }
        }
        let y_axis = self.y_axis()?;
        let chrome = Chrome {
            width: self.size.0,
            height: self.size.1,
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            legend: self
                .series
                .iter()
                .zip(PALETTE)
                .map(|((name, _), colour)| (name.as_str(), colour))
                .collect(),
            y_axis: &y_axis,
        };
        let n = self.categories.len() as f64;
        let mut category_scale = TEXT_SCALE;
        let layout = chrome.layout(0, |plot_w| {
            let group_w = plot_w as f64 / n;
            let widest = self
                .categories
                .iter()
                .map(|c| text_width(c, TEXT_SCALE))
                .max();
            if widest.unwrap_or(0) as f64 > group_w - 6.0 {
                category_scale = 1;
            }
            8 + text_height(category_scale)
        })?;
        let mut img = RgbImage::from_pixel(self.size.0, self.size.1, BACKGROUND);
        layout.draw_chrome(&mut img, &y_axis);
        layout.draw_axes(&mut img);
        self.draw_bars(&mut img, &layout.frame, &y_axis, category_scale);
        Ok(img)
    }

    /// Draws the chart and writes it as a PNG file (atomically).
    ///
    /// # Errors
    /// Those of [`BarChart::render`]; [`GenError::Image`]/[`GenError::Io`] when the file
    /// cannot be written.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        save(&self.render()?, path.as_ref())
    }

    /// The y axis: from 0 (linear) or below the smallest value (log) to above the largest,
    /// with headroom for value labels.
    fn y_axis(&self) -> Result<Axis> {
        let values = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().copied());
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if self.log_y {
            if min > max {
                return Axis::log(1.0, 10.0);
            }
            // Room below the smallest bar (so it is visibly a bar) and above the largest.
            Axis::log(min / 1.5, max * 1.6)
        } else {
            let (lo, hi) = if min > max {
                (0.0, 1.0)
            } else {
                (min.min(0.0), max.max(0.0))
            };
            let room = if self.value_labels {
                0.1 * (hi - lo)
            } else {
                0.0
            };
            Axis::linear(
                if lo < 0.0 { lo - room } else { lo },
                if hi > 0.0 { hi + room } else { hi },
            )
        }
    }

    fn draw_bars(&self, img: &mut RgbImage, f: &Frame, y_axis: &Axis, category_scale: i32) {
        let n_series = self.series.len() as f64;
        let group_w = f.width() as f64 / self.categories.len() as f64;
        let inner_w = group_w * 0.8;
        let slot = inner_w / n_series;
        let gap = if slot >= 10.0 { 2 } else { 0 };
        // Bars grow from 0 on a linear axis (the axis always contains it), from the floor on a
        // log axis.
        let base_y = f.y_at(if y_axis.log {
            0.0
        } else {
            y_axis.fraction(0.0)
        });
        if base_y != f.bottom {
            fill_rect(img, f.left, base_y, f.width() + 1, 1, AXIS);
        }

        let labels: Vec<Vec<Option<String>>> = self
            .series
            .iter()
            .map(|(_, values)| values.iter().map(|v| v.map(value_label)).collect())
            .collect();
        let widest = labels
            .iter()
            .flatten()
            .flatten()
            .map(|l| text_width(l, 1))
            .max();
        // One scale for every value label: the largest at which the widest fits its bar slot.
        let label_scale = [2, 1]
            .into_iter()
            .find(|&s| widest.unwrap_or(0) * s <= slot as i32 - 2)
            .unwrap_or(1);

        for (c, category) in self.categories.iter().enumerate() {
            let group_x = f.left as f64 + c as f64 * group_w + (group_w - inner_w) / 2.0;
            for (s, ((_, values), colour)) in self.series.iter().zip(PALETTE).enumerate() {
                let Some(v) = values[c] else { continue };
                let x0 = (group_x + s as f64 * slot).round() as i32;
                let x1 = ((group_x + (s + 1) as f64 * slot).round() as i32 - gap).max(x0 + 1);
                let top_y = f.y_at(y_axis.fraction(v));
                let (y0, y1) = if top_y < base_y {
                    (top_y, base_y)
                } else {
                    (base_y + 1, top_y + 1)
                };
                fill_rect(img, x0, y0, x1 - x0, y1 - y0, colour);
                if let Some(label) = labels[s][c].as_ref().filter(|_| self.value_labels) {
                    let lw = text_width(label, label_scale);
                    if lw <= (slot as i32 - 2).max(x1 - x0) {
                        let lx = (x0 + x1 - lw) / 2;
                        let ly = if top_y <= base_y {
                            top_y - 3 - cap_height(label_scale)
                        } else {
                            top_y + 4
                        };
                        draw_text(img, lx, ly, label, label_scale, TEXT);
                    }
                }
            }
            let text = fit_text(category, group_w as i32 - 4, category_scale);
            let cx = f.left as f64 + (c as f64 + 0.5) * group_w;
            let lx = cx.round() as i32 - text_width(&text, category_scale) / 2;
            draw_text(img, lx, f.bottom + 8, &text, category_scale, TEXT);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Line chart
// ---------------------------------------------------------------------------------------------

/// A line chart: named series of (x, y) points, each joined in the given order and marked.
///
/// Built with `with_*` methods; nothing is checked until [`LineChart::render`] or
/// [`LineChart::save_png`].
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    log_y: bool,
    markers: bool,
    size: (u32, u32),
    series: Vec<(String, Vec<(f64, f64)>)>,
}

impl LineChart {
    /// An empty chart with a title, 900×500 px, linear axes, point markers on.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            markers: true,
            size: DEFAULT_SIZE,
            series: Vec::new(),
        }
    }

    /// The x axis label.
    pub fn with_x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// The y axis label, drawn turned along the axis.
    pub fn with_y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// A base-10 logarithmic x axis (all x must then be > 0).
    pub fn with_log_x(mut self, log_x: bool) -> Self {
        self.log_x = log_x;
        self
    }

    /// A base-10 logarithmic y axis (all y must then be > 0).
    pub fn with_log_y(mut self, log_y: bool) -> Self {
        self.log_y = log_y;
        self
    }

    /// Whether each point gets a dot (on by default; a one-point series always gets one).
    pub fn with_markers(mut self, markers: bool) -> Self {
        self.markers = markers;
        self
    }

    /// The image size in pixels (each side 200..=8192).
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// Adds a series of (x, y) points, joined in this order. Series take the colours of
    /// [`PALETTE`] in the order they are added.
    pub fn with_series(
        mut self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        self.series
            .push((name.into(), points.into_iter().collect()));
        self
    }

    /// Draws the chart.
    ///
    /// # Errors
    /// [`GenError::EmptyData`] without series or for a series without points,
    /// [`GenError::NonFiniteInput`] for a NaN or infinite coordinate,
    /// [`GenError::ValueOutOfRange`] for a coordinate ≤ 0 on a logarithmic axis,
    /// [`GenError::InvalidConfig`] for more series than colours or a size out of range or too
    /// small for the labels.
    pub fn render(&self) -> Result<RgbImage> {
        check_size("line chart", self.size)?;
        check_series_count("line chart", self.series.len())?;
        for (name, points) in &self.series {
            if points.is_empty() {
                return Err(GenError::EmptyData {
                    context: format!("line chart series `{name}`"),
                });
            }
            for (i, &(x, y)) in points.iter().enumerate() {
                check_value(|| format!("line chart `{name}` point {i} x"), x, self.log_x)?;
                check_value(|| format!("line chart `{name}` point {i} y"), y, self.log_y)?;
            }
        }
        let axis = |log: bool, coordinate: fn(&(f64, f64)) -> f64| {
            let all = self
                .series
                .iter()
                .flat_map(|(_, p)| p.iter().map(coordinate));
            let (min, max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            if log {
                Axis::log(min, max)
            } else {
                Axis::linear(min, max)
            }
        };
        let x_axis = axis(self.log_x, |p| p.0)?;
        let y_axis = axis(self.log_y, |p| p.1)?;

        let chrome = Chrome {
            width: self.size.0,
            height: self.size.1,
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            legend: self
                .series
                .iter()
                .zip(PALETTE)
                .map(|((name, _), colour)| (name.as_str(), colour))
                .collect(),
            y_axis: &y_axis,
        };
        let last_label_w = x_axis
            .labels
            .last()
            .map_or(0, |l| text_width(l, TEXT_SCALE));
        let layout = chrome.layout(last_label_w / 2, |_| 8 + text_height(TEXT_SCALE))?;
        let f = layout.frame;
        let mut img = RgbImage::from_pixel(self.size.0, self.size.1, BACKGROUND);
        layout.draw_chrome(&mut img, &y_axis);

        // Vertical grid and x tick labels, thinned so labels keep 12 px apart.
        let widest = x_axis.label_width(TEXT_SCALE);
        let spacing = f.width() as f64 / (x_axis.ticks.len().max(2) - 1) as f64;
        let stride = ((widest + 12) as f64 / spacing).ceil().max(1.0) as usize;
        for (i, (&t, label)) in x_axis.ticks.iter().zip(&x_axis.labels).enumerate() {
            let x = f.x_at(x_axis.fraction(t));
            fill_rect(&mut img, x, f.top, 1, f.height(), GRID);
            if i % stride == 0 {
                fill_rect(&mut img, x, f.bottom + 1, 1, TICK_LEN, AXIS);
                let lx = x - text_width(label, TEXT_SCALE) / 2;
                draw_text(&mut img, lx, f.bottom + 8, label, TEXT_SCALE, TEXT);
            }
        }

        layout.draw_axes(&mut img);
        for ((_, points), colour) in self.series.iter().zip(PALETTE) {
            let pixels: Vec<(i32, i32)> = points
                .iter()
                .map(|&(x, y)| (f.x_at(x_axis.fraction(x)), f.y_at(y_axis.fraction(y))))
                .collect();
            for pair in pixels.windows(2) {
                draw_line(&mut img, pair[0], pair[1], colour);
            }
            if self.markers || pixels.len() == 1 {
                for &(x, y) in &pixels {
                    draw_marker(&mut img, x, y, colour);
                }
            }
        }
        Ok(img)
    }

    /// Draws the chart and writes it as a PNG file (atomically).
    ///
    /// # Errors
    /// Those of [`LineChart::render`]; [`GenError::Image`]/[`GenError::Io`] when the file
    /// cannot be written.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        save(&self.render()?, path.as_ref())
    }
}

/// A training run's validation score after every epoch (`validation.png`), the kept (best)
/// epoch marked by a second series.
pub fn validation_chart(
    record: &genmodels_core::trainer::ValidationRecord,
    best_epoch: Option<usize>,
) -> LineChart {
    let points: Vec<(f64, f64)> = record
        .points
        .iter()
        .map(|p| (p.epoch as f64, p.score))
        .collect();
    let best: Vec<(f64, f64)> = record
        .points
        .iter()
        .filter(|p| Some(p.epoch) == best_epoch)
        .map(|p| (p.epoch as f64, p.score))
        .collect();
    let mut chart = LineChart::new(format!("{} after each epoch", record.metric))
        .with_x_label("epoch")
        .with_y_label(record.metric.clone())
        .with_markers(true)
        .with_series("validation", points);
    if !best.is_empty() {
        chart = chart.with_series("best (kept)", best);
    }
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vertical run of one colour in a range of adjacent columns.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Block {
        x0: u32,
        x1: u32,
        top: u32,
        bottom: u32,
    }

    impl Block {
        fn height(&self) -> u32 {
            self.bottom - self.top + 1
        }
    }

    /// Solid rectangles of `colour`: vertical runs of that colour, merged across adjacent
    /// columns where they span the same rows.
    fn blocks(img: &RgbImage, colour: Rgb<u8>) -> Vec<Block> {
        let (mut done, mut open) = (Vec::new(), Vec::<Block>::new());
        for x in 0..img.width() {
            let mut next = Vec::new();
            let mut y = 0;
            while y < img.height() {
                if *img.get_pixel(x, y) != colour {
                    y += 1;
                    continue;
                }
                let top = y;
                while y < img.height() && *img.get_pixel(x, y) == colour {
                    y += 1;
                }
                let bottom = y - 1;
                match open.iter().position(|b| (b.top, b.bottom) == (top, bottom)) {
                    Some(i) => next.push(Block {
                        x1: x,
                        ..open.swap_remove(i)
                    }),
                    None => next.push(Block {
                        x0: x,
                        x1: x,
                        top,
                        bottom,
                    }),
                }
            }
            done.append(&mut open);
            open = next;
        }
        done.append(&mut open);
        done.sort_by_key(|b| (b.x0, b.top));
        done
    }

    /// Bars are the blocks standing on the lowest base row (the legend swatch sits higher).
    fn bars(img: &RgbImage, colour: Rgb<u8>) -> Vec<Block> {
        let all = blocks(img, colour);
        let base = all.iter().map(|b| b.bottom).max().unwrap();
        all.into_iter().filter(|b| b.bottom == base).collect()
    }

    fn count(img: &RgbImage, colour: Rgb<u8>) -> usize {
        img.pixels().filter(|p| **p == colour).count()
    }

    #[test]
    fn linear_bar_heights_are_proportional_to_values() {
        let chart = BarChart::new("linear")
            .with_y_label("images/s")
            .with_categories(["a", "b", "c"])
            .with_series("s", [Some(25.0), Some(50.0), Some(100.0)]);
        let img = chart.render().unwrap();
        let bars = bars(&img, PALETTE[0]);
        assert_eq!(bars.len(), 3, "{bars:?}");
        let h: Vec<f64> = bars.iter().map(|b| b.height() as f64).collect();
        assert!(h[2] > 200.0, "tallest bar only {} px", h[2]);
        // Rounding to pixels costs at most one pixel per bar.
        assert!((h[1] * 2.0 - h[2]).abs() <= 2.0, "{h:?}");
        assert!((h[0] * 4.0 - h[2]).abs() <= 4.0, "{h:?}");
        // Left to right in category order, equally wide.
        assert!(bars[0].x1 < bars[1].x0 && bars[1].x1 < bars[2].x0);
        assert!(
            (bars[0].x1 as i64 - bars[0].x0 as i64).abs_diff(bars[2].x1 as i64 - bars[2].x0 as i64)
                <= 1
        );
    }

    #[test]
    fn log_bar_axis_gives_equal_heights_per_decade() {
        let chart = BarChart::new("log")
            .with_log_y(true)
            .with_categories(["a", "b", "c", "d"])
            .with_series("s", [Some(1.0), Some(10.0), Some(100.0), Some(1000.0)]);
        let h: Vec<i64> = bars(&chart.render().unwrap(), PALETTE[0])
            .iter()
            .map(|b| b.height() as i64)
            .collect();
        assert_eq!(h.len(), 4);
        // The smallest value still draws a visible bar.
        assert!(h[0] > 5, "{h:?}");
        let steps: Vec<i64> = h.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps[0] > 30, "{steps:?}");
        for s in &steps {
            assert!((s - steps[0]).abs() <= 1, "decade steps differ: {steps:?}");
        }
    }

    #[test]
    fn missing_value_leaves_a_gap() {
        let both = BarChart::new("")
            .with_categories(["a", "b"])
            .with_series("s", [Some(5.0), Some(5.0)])
            .render()
            .unwrap();
        let one = BarChart::new("")
            .with_categories(["a", "b"])
            .with_series("s", [Some(5.0), None])
            .render()
            .unwrap();
        let both_bars = bars(&both, PALETTE[0]);
        let one_bars = bars(&one, PALETTE[0]);
        assert_eq!(both_bars.len(), 2);
        assert_eq!(one_bars, vec![both_bars[0]]);
    }

    #[test]
    fn legend_shows_every_series_colour() {
        let img = BarChart::new("legend")
            .with_categories(["a", "b"])
            .with_series("one", [Some(1.0), Some(2.0)])
            .with_series("two", [Some(3.0), Some(4.0)])
            .with_series("never", [None, None])
            .render()
            .unwrap();
        let side = cap_height(TEXT_SCALE) as u32;
        // The all-missing series appears only as its legend swatch.
        let never = blocks(&img, PALETTE[2]);
        assert_eq!(never.len(), 1, "{never:?}");
        assert_eq!(
            (never[0].x1 - never[0].x0 + 1, never[0].height()),
            (side, side)
        );
        // The others: two bars plus one swatch each, the swatch above every bar.
        for colour in &PALETTE[..2] {
            let b = blocks(&img, *colour);
            assert_eq!(b.len(), 3, "{b:?}");
            let swatch = b.iter().find(|b| b.height() == side).unwrap();
            assert!(b.iter().all(|bar| bar == swatch || bar.top > swatch.bottom));
        }
        assert_eq!(count(&img, PALETTE[3]), 0);
    }

    #[test]
    fn bad_bar_input_is_a_typed_error() {
        let base = || BarChart::new("t").with_categories(["a", "b"]);
        let short = base().with_series("s", [Some(1.0)]).render();
        assert!(
            matches!(short, Err(GenError::ShapeMismatch { .. })),
            "{short:?}"
        );
        let zero = base()
            .with_log_y(true)
            .with_series("s", [Some(0.0), Some(1.0)])
            .render();
        assert!(
            matches!(zero, Err(GenError::ValueOutOfRange { .. })),
            "{zero:?}"
        );
        let negative = base()
            .with_log_y(true)
            .with_series("s", [None, Some(-3.0)])
            .render();
        assert!(
            matches!(negative, Err(GenError::ValueOutOfRange { .. })),
            "{negative:?}"
        );
        // A negative value on a linear axis is fine: the bar hangs below zero.
        assert!(
            base()
                .with_series("s", [Some(-2.0), Some(3.0)])
                .render()
                .is_ok()
        );
        let nan = base().with_series("s", [Some(f64::NAN), None]).render();
        assert!(
            matches!(nan, Err(GenError::NonFiniteInput { .. })),
            "{nan:?}"
        );
        let no_series = base().render();
        assert!(
            matches!(no_series, Err(GenError::EmptyData { .. })),
            "{no_series:?}"
        );
        let no_categories = BarChart::new("t").with_series("s", []).render();
        assert!(matches!(no_categories, Err(GenError::EmptyData { .. })));
        let mut many = base();
        for i in 0..=PALETTE.len() {
            many = many.with_series(format!("s{i}"), [Some(1.0), Some(2.0)]);
        }
        assert!(matches!(many.render(), Err(GenError::InvalidConfig(_))));
        let tiny = base()
            .with_series("s", [Some(1.0), Some(2.0)])
            .with_size(10, 10);
        assert!(matches!(tiny.render(), Err(GenError::InvalidConfig(_))));
        let huge = base()
            .with_series("s", [Some(1e308), Some(-1e308)])
            .render();
        assert!(matches!(huge, Err(GenError::InvalidConfig(_))), "{huge:?}");
    }

    #[test]
    fn glyphs_land_where_drawn_and_differ() {
        let render = |text: &str, scale: i32| {
            let mut img = RgbImage::from_pixel(40, 40, BACKGROUND);
            draw_text(&mut img, 3, 4, text, scale, TEXT);
            img
        };
        let one = render("1", 1);
        let seven = render("7", 1);
        assert_ne!(one, seven);
        // Every font pixel of "1" and nothing else, offset by the origin.
        for y in 0..40 {
            for x in 0..40 {
                let (col, row) = (x as i32 - 3, y as i32 - 4);
                let on = (0..GLYPH_W).contains(&col)
                    && (0..GLYPH_H).contains(&row)
                    && FONT['1' as usize - 32][col as usize] >> row & 1 == 1;
                assert_eq!(*one.get_pixel(x, y) == TEXT, on, "pixel ({x}, {y})");
            }
        }
        // At scale 3 each font pixel is a 3×3 block.
        let big = render("7", 3);
        assert_eq!(count(&big, TEXT), 9 * count(&seven, TEXT));
        // The second character starts one advance to the right.
        let pair = render("11", 1);
        assert_eq!(count(&pair, TEXT), 2 * count(&one, TEXT));
        assert_eq!(*pair.get_pixel(3 + 2 + ADVANCE as u32, 4), TEXT);
        assert_eq!(text_width("11", 2), (2 * ADVANCE - 1) * 2);
    }

    #[test]
    fn non_ascii_draws_the_fallback_box() {
        let mut expected = RgbImage::from_pixel(20, 20, BACKGROUND);
        fill_rect(&mut expected, 1, 1, 5, 7, TEXT);
        fill_rect(&mut expected, 2, 2, 3, 5, BACKGROUND);
        for text in ["×", "·", "\n"] {
            let mut img = RgbImage::from_pixel(20, 20, BACKGROUND);
            draw_text(&mut img, 1, 1, text, 1, TEXT);
            assert_eq!(img, expected, "{text:?}");
        }
        let mut img = RgbImage::from_pixel(20, 20, BACKGROUND);
        assert_eq!(text_width("a×b", 1), 3 * ADVANCE - 1);
        // Text running off the image is clipped, not a panic.
        draw_text(&mut img, 15, -3, "€ off the edge", 3, TEXT);
        draw_text_up(&mut img, -4, 2, "up and away", 2, TEXT);
    }

    #[test]
    fn turned_text_reads_bottom_to_top() {
        let mut img = RgbImage::from_pixel(20, 30, BACKGROUND);
        draw_text_up(&mut img, 2, 25, "-", 1, TEXT);
        // "-" is row 3 of columns 0..5: turned, column 2 + 3 from rows 25 down to 21.
        let on: Vec<(u32, u32)> = (0..30)
            .flat_map(|y| (0..20).map(move |x| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == TEXT)
            .collect();
        assert_eq!(on, (21..=25).map(|y| (5, y)).collect::<Vec<_>>());
    }

    #[test]
    fn ticks_are_nice_numbers() {
        let axis = Axis::linear(0.0, 97.0).unwrap();
        assert_eq!(axis.ticks, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(axis.labels, vec!["0", "20", "40", "60", "80", "100"]);
        let axis = Axis::linear(-0.13, 0.31).unwrap();
        assert!(
            (axis.lo + 0.2).abs() < 1e-12 && (axis.hi - 0.4).abs() < 1e-12,
            "{axis:?}"
        );
        assert_eq!(
            axis.labels,
            ["-0.2", "-0.1", "0", "0.1", "0.2", "0.3", "0.4"]
        );
        assert_eq!(Axis::linear(0.0, 25_000.0).unwrap().labels[1], "5k");
        let axis = Axis::log(3.0, 70.0).unwrap();
        assert_eq!(axis.ticks, vec![2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        let axis = Axis::log(0.004, 3e5).unwrap();
        assert_eq!(
            axis.labels,
            vec!["0.01", "0.1", "1", "10", "100", "1000", "10k", "100k"]
        );
        assert_eq!((axis.lo, axis.hi), (0.002, 5e5));
        assert_eq!(log_label(5e-5), "5e-5");
        assert_eq!(value_label(1523.0), "1523");
        assert_eq!(value_label(45_678.0), "45.7k");
        assert_eq!(value_label(0.01234), "0.0123");
        assert_eq!(value_label(-12.34), "-12.3");
        assert_eq!(value_label(86.0), "86");
        assert_eq!(value_label(2.4), "2.4");
        assert_eq!(value_label(120_000.0), "120k");
        assert_eq!(value_label(0.05), "0.05");
        for v in [0.37, 1.0, 3.0, 7.1, 49.0, 51.0, 999.0] {
            let (lo, hi) = (nice_at_most(v), nice_at_least(v));
            assert!(lo <= v && v <= hi, "{lo} {v} {hi}");
            for n in [lo, hi] {
                let m = n / 10f64.powi(n.log10().floor() as i32);
                assert!([1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-9), "{n}");
            }
        }
    }

    #[test]
    fn line_points_land_on_their_pixels() {
        // Axes widen to x in [0, 10], y in [0, 100]; no point sits on the frame.
        let points: Vec<(f64, f64)> = (0..5)
            .map(|i| (1.0 + 2.0 * i as f64, 10.0 + 20.0 * i as f64))
            .collect();
        let chart = LineChart::new("line")
            .with_x_label("seconds")
            .with_y_label("nll")
            .with_series("s", points.clone());
        let img = chart.render().unwrap();
        let frame = frame_of(&img);
        let mut previous_row = f64::INFINITY;
        for &(x, y) in &points {
            let px = frame.left as f64 + x / 10.0 * frame.width() as f64;
            let py = frame.bottom as f64 - y / 100.0 * frame.height() as f64;
            let row = mean_row(&img, px.round() as u32, PALETTE[0]);
            assert!(
                (row - py).abs() <= 1.5,
                "point ({x}, {y}): row {row}, expected {py}"
            );
            // Rising data: each point higher up the image than the last.
            assert!(row < previous_row);
            previous_row = row;
        }
    }

    #[test]
    fn log_x_spaces_decades_evenly() {
        // Axes widen to x in [2, 5000] (log), y in [3, 9].
        let points = [(3.0, 9.0), (30.0, 7.0), (300.0, 5.0), (3000.0, 3.5)];
        let img = LineChart::new("log x")
            .with_log_x(true)
            .with_series("s", points)
            .render()
            .unwrap();
        let frame = frame_of(&img);
        let decade = frame.width() as f64 / 2500f64.log10();
        let first = frame.left as f64 + 1.5f64.log10() * decade;
        let mut previous_row = 0.0;
        for (i, &(_, y)) in points.iter().enumerate() {
            // Each 10× step in x moves the same distance right.
            let px = first + i as f64 * decade;
            let py = frame.bottom as f64 - (y - 3.0) / 6.0 * frame.height() as f64;
            let row = mean_row(&img, px.round() as u32, PALETTE[0]);
            assert!(
                (row - py).abs() <= 1.5,
                "point {i}: row {row}, expected {py}"
            );
            assert!(row > previous_row, "falling data must go down the image");
            previous_row = row;
        }
    }

    /// The plot frame found from the image: the axis-coloured column and row that are longest.
    fn frame_of(img: &RgbImage) -> Frame {
        let axis_len =
            |pixels: &mut dyn Iterator<Item = &Rgb<u8>>| pixels.filter(|p| **p == AXIS).count();
        let left = (0..img.width())
            .max_by_key(|&x| axis_len(&mut (0..img.height()).map(|y| img.get_pixel(x, y))))
            .unwrap();
        let bottom = (0..img.height())
            .max_by_key(|&y| axis_len(&mut (0..img.width()).map(|x| img.get_pixel(x, y))))
            .unwrap();
        let top = (0..img.height())
            .find(|&y| *img.get_pixel(left, y) == AXIS)
            .unwrap();
        let right = (0..img.width())
            .rev()
            .find(|&x| *img.get_pixel(x, bottom) == AXIS)
            .unwrap();
        Frame {
            left: left as i32,
            top: top as i32,
            right: right as i32,
            bottom: bottom as i32,
        }
    }

    /// Mean row of the pixels of `colour` in column `x` (a marker is symmetric about its
    /// centre, so this is the point's row).
    fn mean_row(img: &RgbImage, x: u32, colour: Rgb<u8>) -> f64 {
        let rows: Vec<u32> = (0..img.height())
            .filter(|&y| *img.get_pixel(x, y) == colour)
            .collect();
        assert!(!rows.is_empty(), "no series pixel in column {x}");
        rows.iter().sum::<u32>() as f64 / rows.len() as f64
    }

    #[test]
    fn bad_line_input_is_a_typed_error() {
        let empty = LineChart::new("t").render();
        assert!(
            matches!(empty, Err(GenError::EmptyData { .. })),
            "{empty:?}"
        );
        let no_points = LineChart::new("t").with_series("s", []).render();
        assert!(
            matches!(no_points, Err(GenError::EmptyData { .. })),
            "{no_points:?}"
        );
        let zero_x = LineChart::new("t")
            .with_log_x(true)
            .with_series("s", [(0.0, 1.0)])
            .render();
        assert!(
            matches!(zero_x, Err(GenError::ValueOutOfRange { .. })),
            "{zero_x:?}"
        );
        let inf = LineChart::new("t")
            .with_series("s", [(1.0, f64::INFINITY)])
            .render();
        assert!(
            matches!(inf, Err(GenError::NonFiniteInput { .. })),
            "{inf:?}"
        );
        // One point, all points equal: still a chart.
        let single = LineChart::new("t")
            .with_series("s", [(3.0, 3.0)])
            .render()
            .unwrap();
        assert!(count(&single, PALETTE[0]) > 30);
    }

    #[test]
    fn odd_but_valid_input_renders() {
        let many: Vec<String> = (0..300).map(|i| format!("category {i}")).collect();
        let cases = [
            BarChart::new("many")
                .with_categories(many.clone())
                .with_series("s", (0..300).map(|i| Some(i as f64))),
            BarChart::new("zeros")
                .with_categories(["a"])
                .with_series("s", [Some(0.0)]),
            BarChart::new("negative")
                .with_categories(["a", "b"])
                .with_series("s", [Some(-1.0), Some(-3.0)]),
            BarChart::new("nothing")
                .with_log_y(true)
                .with_categories(["a"])
                .with_series("s", [None]),
            BarChart::new("wide range ünïcödé")
                .with_log_y(true)
                .with_categories(["≤", ""])
                .with_series("€", [Some(1e-290), Some(1e290)]),
            BarChart::new("near")
                .with_categories(["a", "b"])
                .with_series("s", [Some(1e15), Some(1e15 + 1.0)]),
        ];
        for chart in cases {
            let img = chart.render().unwrap();
            assert_eq!(img.dimensions(), DEFAULT_SIZE);
            assert!(count(&img, TEXT) > 0);
        }
        let wide = BarChart::new("wide")
            .with_size(MAX_SIDE, MIN_SIDE)
            .with_categories(many)
            .with_series("s", vec![Some(1.0); 300]);
        assert_eq!(wide.render().unwrap().dimensions(), (MAX_SIDE, MIN_SIDE));
        let lines = LineChart::new("flat")
            .with_log_x(true)
            .with_log_y(true)
            .with_series("a", [(5.0, 5.0), (5.0, 5.0)])
            .with_series("b", [(1e-200, 3.0)]);
        assert!(count(&lines.render().unwrap(), PALETTE[1]) > 0);
    }

    #[test]
    fn save_png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let bar_path = dir.path().join("charts/bar.png");
        let chart = BarChart::new("t")
            .with_size(640, 360)
            .with_categories(["a"])
            .with_series("s", [Some(1.0)]);
        chart.save_png(&bar_path).unwrap();
        let decoded = image::open(&bar_path).unwrap().to_rgb8();
        assert_eq!(decoded, chart.render().unwrap());
        let line_path = dir.path().join("line.png");
        LineChart::new("t")
            .with_series("s", [(1.0, 2.0), (2.0, 1.0)])
            .save_png(&line_path)
            .unwrap();
        assert_eq!(image::image_dimensions(&line_path).unwrap(), DEFAULT_SIZE);
        // A directory where the file should go is an I/O error, not a panic.
        let folder = dir.path().join("taken.png");
        std::fs::create_dir(&folder).unwrap();
        let err = chart.save_png(&folder);
        assert!(matches!(err, Err(GenError::Io { .. })), "{err:?}");
        // A name that is not a PNG's is refused before anything is written.
        let err = chart.save_png(dir.path().join("bar.jpg"));
        assert!(matches!(err, Err(GenError::Image { .. })), "{err:?}");
    }
}

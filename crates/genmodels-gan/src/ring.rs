//! Eight Gaussians on a ring: the classic mode-coverage check for GANs.
//!
//! Points are 2-D and stored as `1×1×2` images in `[0, 1]`: mode `k` sits at angle `2πk/8` on
//! a circle of radius 0.4 around (0.5, 0.5), with standard deviation 0.01 per coordinate. A
//! sample is near a mode when it lies within 3 standard deviations of its centre.

use genmodels_core::{ImageShape, InMemoryDataset, Result};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Number of modes.
pub const RING_MODES: usize = 8;
/// Radius of the ring.
pub const RING_RADIUS: f64 = 0.4;
/// Standard deviation of each mode, per coordinate.
pub const RING_STD: f64 = 0.01;

/// The shape of one point as an image.
pub const RING_SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 1,
    width: 2,
};

/// The centre of mode `k`.
pub fn ring_mode(k: usize) -> (f64, f64) {
    let angle = 2.0 * std::f64::consts::PI * k as f64 / RING_MODES as f64;
    (
        0.5 + RING_RADIUS * angle.cos(),
        0.5 + RING_RADIUS * angle.sin(),
    )
}

/// `n` points, point `i` drawn from mode `i mod 8`, reproducible from `seed`.
///
/// # Errors
/// None in practice; the data set constructor's shape check.
pub fn ring_of_gaussians(n: usize, seed: u64) -> Result<InMemoryDataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut points = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (x, y) = ring_mode(i % RING_MODES);
        for centre in [x, y] {
            let noise: f64 = rng.sample(rand_distr::StandardNormal);
            points.push((centre + RING_STD * noise).clamp(0.0, 1.0) as f32);
        }
    }
    InMemoryDataset::new(points, RING_SHAPE, None)
}

/// How many of `points` (`x, y` pairs) lie within 3 standard deviations of each mode.
pub fn ring_mode_counts(points: &[f32]) -> [usize; RING_MODES] {
    let mut counts = [0; RING_MODES];
    for p in points.chunks_exact(2) {
        for (k, count) in counts.iter_mut().enumerate() {
            let (x, y) = ring_mode(k);
            let distance = ((p[0] as f64 - x).powi(2) + (p[1] as f64 - y).powi(2)).sqrt();
            if distance < 3.0 * RING_STD {
                *count += 1;
            }
        }
    }
    counts
}

//! Log-densities and divergences shared by the model families, in numerically stable forms.
//!
//! The log-densities and log-probabilities take flattened `[N, D]` tensors and return one value
//! per row, `[N]`, summed over the `D` dimensions, in nats; the `_elements` and `_level_`
//! forms of the discretized Gaussian keep one value per pixel (and level).

use burn::tensor::{Int, Tensor};
use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI};

pub use genmodels_kernels::{bernoulli_log_prob, softplus};

/// Diagonal Gaussian log-density `log N(x; μ, diag(e^{log σ²}))`, summed over dimension 1.
///
/// # Shapes
/// - x, mean, log_var: `[N, D]` (`log_var` may also broadcast from `[1, D]`)
/// - output: `[N]`
pub fn gaussian_log_prob(x: Tensor<2>, mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    let sq = (x - mean).powi_scalar(2) * log_var.clone().neg().exp();
    ((sq + log_var + (2.0 * PI).ln()) * -0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// Number of levels of an 8-bit pixel.
pub const GREY_LEVELS: usize = 256;

/// Half the width of one level's bin when level `v` of `0..=255` is read as `v/255`: the bin
/// of `v` is `[v/255 − 1/510, v/255 + 1/510]`.
pub const HALF_BIN: f64 = 0.5 / 255.0;

/// The discretized Gaussian's log-variances are clamped into `[−60, 60]` (standard deviations
/// from `e⁻³⁰ ≈ 10⁻¹³` to `e³⁰`), and its standardised values into `±10¹⁵`, so no
/// intermediate value or gradient overflows f32.
const DISCRETIZED_LOG_VAR_LIMIT: f64 = 60.0;
const DISCRETIZED_Z_LIMIT: f64 = 1e15;

/// The level `v = round(255·x)` of pixels `x` in `[0, 1]`, the bin of the 256-level grid that
/// holds `x` (values outside `[0, 1]` are clamped into it first).
///
/// # Shapes
/// - x: any, e.g. `[N, D]`
/// - output: the same, integers in `0..=255`
pub fn grey_levels<const R: usize>(x: Tensor<R>) -> Tensor<R, Int> {
    (x.clamp(0.0, 1.0) * 255.0).round().int()
}

/// Element-wise log-probability of the **discretized Gaussian** of 8-bit pixels (the decoder of
/// Ho et al. 2020, the binning of PixelCNN++): level `v` of `0..=255`, observed as
/// `x = v/255`, has probability
///
/// ```text
/// P(v | μ, σ²) = Φ((x + 1/510 − μ)/σ) − Φ((x − 1/510 − μ)/σ),
/// ```
///
/// with the first bin extended to `−∞` (`P(0) = Φ((1/510 − μ)/σ)`) and the last to `+∞`
/// (`P(255) = 1 − Φ((1 − 1/510 − μ)/σ)`), so the 256 probabilities sum to 1 for every `μ`
/// and `σ`. A pixel that is not on the grid is read as the level whose bin holds it,
/// `round(255·x)`.
///
/// The difference of two CDFs is computed in log space so that no bin underflows or cancels:
///
/// - the bin is reflected through `μ` (`Φ(b) − Φ(a) = Φ(−a) − Φ(−b)`) so that it lies below
///   the mean, or straddles it, and the edge bins become lower tails;
/// - below the mean, `log(Φ(b) − Φ(a)) = log Φ(b) + log(1 − e^{log Φ(a) − log Φ(b)})`;
///   straddling it, `log(1 − Φ(a) − Φ(−b))`;
/// - `log Φ(y)` for `y ≤ 0` is `log ½ erfc(−y/√2)` with erfc from the rational Chebyshev fit
///   of Numerical Recipes (`erfc(z) = t·exp(−z² + P₉(t))`, `t = 1/(1 + z/2)`, relative error
///   below `1.2·10⁻⁷` for every `z ≥ 0`), evaluated as a logarithm, so it stays finite far into
///   the tail (`≈ −y²/2` at `y = −10⁶`);
/// - a narrow bin, `w = (1/255)/σ` standard deviations wide with `w·max(|m|, 1) ≤ ½` at its
///   midpoint `m`, where the two CDFs would nearly cancel, uses the series
///   `P = w φ(m) Σ_k He_{2k}(m) (w/2)^{2k} / (2k+1)!` (Hermite polynomials, three terms,
///   truncation below `10⁻⁷` relatively) instead.
///
/// Every branch is computed on clamped inputs and stays finite, so gradients through the
/// branch not taken are zero, never NaN: the result is finite, and differentiable in `mean`
/// and `log_var`, for any finite inputs (log-variances are clamped into `[−60, 60]`; `x` only
/// picks the level and gets no gradient).
///
/// # Shapes
/// - x, mean, log_var: the same shape, any rank
/// - output: that shape, log-probabilities in nats
pub fn discretized_gaussian_log_prob_elements<const R: usize>(
    x: Tensor<R>,
    mean: Tensor<R>,
    log_var: Tensor<R>,
) -> Tensor<R> {
    let log_var = log_var.clamp(-DISCRETIZED_LOG_VAR_LIMIT, DISCRETIZED_LOG_VAR_LIMIT);
    let inv_std = (log_var * -0.5).exp();
    let level = grey_levels(x).float();
    let first = level.clone().lower_elem(0.5);
    let last = level.clone().greater_elem(254.5);
    let edge = first.clone().bool_or(last.clone());
    let standardise = |at: Tensor<R>| {
        ((at - mean.clone()) * inv_std.clone()).clamp(-DISCRETIZED_Z_LIMIT, DISCRETIZED_Z_LIMIT)
    };
    // The bin's ends in standard deviations, `a` of level v computed exactly as `b` of level
    // v − 1, so that neighbouring bins share their boundary bit for bit and the probabilities
    // telescope to 1 even where σ is far below a bin's width; its midpoint and width.
    let a = standardise((level.clone() - 0.5) / 255.0);
    let b = standardise((level.clone() + 0.5) / 255.0);
    let m = standardise(level / 255.0);
    let w = inv_std * (2.0 * HALF_BIN);

    // Reflected through the mean to lie below it or across it: the inner bins above the mean,
    // and the last bin (an upper tail), are reflected; the first bin is a lower tail already.
    let reflect = m
        .clone()
        .greater_elem(0.0)
        .bool_and(first.bool_not())
        .bool_or(last);
    let hi = b.clone().mask_where(reflect.clone(), a.clone().neg());
    let lo = a.mask_where(reflect, b.neg());
    let log_cdf_lo = log_ndtr_nonpositive(lo.clamp_max(0.0));
    let log_cdf_r = log_ndtr_nonpositive(hi.clone().abs().neg());
    let inner = edge.clone().bool_not().float();
    let below_mean = hi.lower_equal_elem(0.0);
    // (Clamped: for an edge bin, or a bin across the mean, the difference means nothing and
    // could overflow exp, whose infinite gradient would turn the masked branch's zero into NaN.)
    let tail = ((log_cdf_lo.clone() - log_cdf_r.clone())
        .clamp_max(0.0)
        .exp()
        * inner.clone())
    .neg()
    .add_scalar(1.0)
    .clamp_min(1e-30);
    let below_value = log_cdf_r.clone() + tail.log();
    let outside =
        (log_cdf_lo.exp() * inner + log_cdf_r.exp()).clamp_max(1.0 - f64::from(f32::EPSILON) / 2.0);
    let exact = outside.neg().log1p().mask_where(below_mean, below_value);

    // The series for narrow bins, on clamped values (only used where w·max(|m|, 1) ≤ ½).
    let w_series = w.clone().clamp_max(1.0);
    let u = w_series.clone().powi_scalar(2) * 0.25;
    let q = (m.clone() * w_series.clone())
        .clamp(-1.0, 1.0)
        .powi_scalar(2)
        * 0.25;
    let he2 = q.clone() - u.clone();
    let he4 =
        q.clone().powi_scalar(2) - q.clone() * u.clone() * 6.0 + u.clone().powi_scalar(2) * 3.0;
    let he6 = q.clone().powi_scalar(3) - q.clone().powi_scalar(2) * u.clone() * 15.0
        + q * u.clone().powi_scalar(2) * 45.0
        - u.powi_scalar(3) * 15.0;
    let series = he2 / 6.0 + he4 / 120.0 + he6 / 5040.0;
    let midpoint =
        w_series.log() - m.clone().powi_scalar(2) * 0.5 - 0.5 * (2.0 * PI).ln() + series.log1p();
    let narrow = (w * m.abs().clamp_min(1.0))
        .lower_equal_elem(0.5)
        .bool_and(edge.bool_not());
    exact.mask_where(narrow, midpoint)
}

/// `log Φ(y)` of the standard normal CDF, finite far into both tails: for `y ≤ 0`
/// `log ½ erfc(−y/√2)` with Numerical Recipes' fit `erfc(z) = t·exp(−z² + P₉(t))`,
/// `t = 1/(1 + z/2)` (relative error below `1.2·10⁻⁷`), taken as a logarithm so that it never
/// underflows; for `y > 0`, `log(1 − Φ(−y))`.
///
/// # Shapes
/// - y, output: any, the same
pub fn log_ndtr<const R: usize>(y: Tensor<R>) -> Tensor<R> {
    let lower = log_ndtr_nonpositive(y.clone().abs().neg());
    // For y > 0: log(1 − Φ(−y)) = log1p(−exp(log Φ(−|y|))).
    let upper = lower.clone().exp().neg().clamp_min(-1.0 + 1e-7).log1p();
    upper.mask_where(y.lower_equal_elem(0.0), lower)
}

/// `log Φ(y)` of the standard normal CDF for `y ≤ 0`, as `log ½ erfc(−y/√2)` with Numerical
/// Recipes' `erfc(z) ≈ t·exp(−z² + P₉(t))`, `t = 1/(1 + z/2)` (relative error below
/// `1.2·10⁻⁷`), taken as a logarithm so that it never underflows.
fn log_ndtr_nonpositive<const R: usize>(y: Tensor<R>) -> Tensor<R> {
    const COEFFICIENTS: [f64; 10] = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let z = y * -FRAC_1_SQRT_2;
    let t = (z.clone() * 0.5).add_scalar(1.0).recip();
    let mut poly = t.clone() * COEFFICIENTS[9];
    for &c in COEFFICIENTS[1..9].iter().rev() {
        poly = (poly.add_scalar(c)) * t.clone();
    }
    t.log() - z.powi_scalar(2) + poly.add_scalar(COEFFICIENTS[0] - LN_2)
}

/// The discretized Gaussian log-probability of 8-bit images, summed over dimension 1: see
/// [`discretized_gaussian_log_prob_elements`].
///
/// # Shapes
/// - x, mean, log_var: `[N, D]`
/// - output: `[N]`
pub fn discretized_gaussian_log_prob(
    x: Tensor<2>,
    mean: Tensor<2>,
    log_var: Tensor<2>,
) -> Tensor<1> {
    discretized_gaussian_log_prob_elements(x, mean, log_var)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// The discretized Gaussian's log-probability of every level `0..=255` of every pixel of
/// every component: `out[k, d, v] = log P(v | μ_kd, σ²_kd)`, a lookup table for models whose
/// Gaussians do not depend on the image (mixtures).
///
/// # Shapes
/// - mean, log_var: `[K, D]`
/// - output: `[K, D, 256]`
pub fn discretized_gaussian_level_log_probs(mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<3> {
    let [k, d] = mean.dims();
    let shape = [k, d, GREY_LEVELS];
    let levels = Tensor::<1, Int>::arange(0..GREY_LEVELS as i64, &mean.device()).float() / 255.0;
    discretized_gaussian_log_prob_elements(
        levels.reshape([1, 1, GREY_LEVELS]).expand(shape),
        mean.reshape([k, d, 1]).expand(shape),
        log_var.reshape([k, d, 1]).expand(shape),
    )
}

/// [`discretized_gaussian_log_prob_elements`] of one level in f64 on the host, from libm's
/// `erfc` (and the asymptotic series of `log Φ` beyond 30 standard deviations): a reference
/// for tests. NaN for a standard deviation that is not positive and finite.
pub fn discretized_gaussian_log_prob_f64(level: u8, mean: f64, std: f64) -> f64 {
    if !(std > 0.0 && std.is_finite()) {
        return f64::NAN;
    }
    let centre = f64::from(level) / 255.0;
    let lower = if level == 0 {
        f64::NEG_INFINITY
    } else {
        (centre - HALF_BIN - mean) / std
    };
    let upper = if level == 255 {
        f64::INFINITY
    } else {
        (centre + HALF_BIN - mean) / std
    };
    log_normal_interval_f64(lower, upper)
}

/// `log(Φ(b) − Φ(a))` for `a < b` in f64, reflected to the lower tail.
fn log_normal_interval_f64(a: f64, b: f64) -> f64 {
    if a > 0.0 {
        return log_normal_interval_f64(-b, -a);
    }
    if b <= 0.0 {
        let (log_a, log_b) = (log_ndtr_f64(a), log_ndtr_f64(b));
        log_b + (-(log_a - log_b).exp_m1()).ln()
    } else {
        (-(ndtr_f64(a) + ndtr_f64(-b))).ln_1p()
    }
}

fn ndtr_f64(y: f64) -> f64 {
    0.5 * libm::erfc(-y * FRAC_1_SQRT_2)
}

fn log_ndtr_f64(y: f64) -> f64 {
    if y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if y < -30.0 {
        let r = 1.0 / (y * y);
        -0.5 * y * y - (-y).ln() - 0.5 * (2.0 * PI).ln()
            + (1.0 - r + 3.0 * r * r - 15.0 * r.powi(3) + 105.0 * r.powi(4)).ln()
    } else if y < -1.0 {
        ndtr_f64(y).ln()
    } else {
        (-ndtr_f64(-y)).ln_1p()
    }
}

/// Standard normal log-density `log N(z; 0, I)`, summed over dimension 1.
///
/// # Shapes
/// - z: `[N, D]`
/// - output: `[N]`
pub fn standard_normal_log_prob(z: Tensor<2>) -> Tensor<1> {
    ((z.powi_scalar(2) + (2.0 * PI).ln()) * -0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// `KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (σ²_d + μ²_d − 1 − log σ²_d)`, in closed form.
///
/// # Shapes
/// - mean, log_var: `[N, D]`
/// - output: `[N]`
pub fn kl_diagonal_gaussian_to_standard_normal(mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    ((log_var.clone().exp() + mean.powi_scalar(2) - 1.0 - log_var) * 0.5)
        .sum_dim(1)
        .squeeze_dim(1)
}

/// `log Σ_i e^{x_i}` over dimension `dim` (0 or 1) of a matrix, shifted by the maximum so no
/// term overflows.
///
/// # Shapes
/// - x: `[A, B]`
/// - output: `[B]` for `dim = 0`, `[A]` for `dim = 1`
pub fn log_sum_exp(x: Tensor<2>, dim: usize) -> Tensor<1> {
    let max = x.clone().max_dim(dim).detach();
    let shifted = (x - max.clone()).exp().sum_dim(dim).log();
    (shifted + max).squeeze_dim(dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::to_host;
    use burn::tensor::{Device, TensorData};

    fn device() -> Device {
        Device::flex()
    }

    fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, [rows, cols]), &device())
    }

    #[test]
    fn log_sum_exp_is_stable_and_correct() {
        let x = matrix(vec![1000.0, 1000.0, -5.0, 0.0], 2, 2);
        let got = to_host(log_sum_exp(x, 1)).unwrap();
        assert!((got[0] as f64 - (1000.0 + 2f64.ln())).abs() < 1e-3);
        let expected = ((-5f64).exp() + 1.0).ln();
        assert!((got[1] as f64 - expected).abs() < 1e-5);
    }

    #[test]
    fn gaussian_log_prob_matches_closed_form() {
        // log N(1; 0, e^{0}) = -0.5 (1 + ln 2π)
        let got = to_host(gaussian_log_prob(
            matrix(vec![1.0], 1, 1),
            matrix(vec![0.0], 1, 1),
            matrix(vec![0.0], 1, 1),
        ))
        .unwrap()[0] as f64;
        assert!((got + 0.5 * (1.0 + (2.0 * PI).ln())).abs() < 1e-5);
        let standard = to_host(standard_normal_log_prob(matrix(vec![1.0], 1, 1))).unwrap()[0];
        assert!((standard as f64 - got).abs() < 1e-6);
    }

    /// Every level of every `(μ, σ)` pair: `[pairs, 256]` levels, means and log-variances.
    fn level_grid(pairs: &[(f64, f64)]) -> [Tensor<2>; 3] {
        let p = pairs.len();
        let levels = (0..p)
            .flat_map(|_| (0..GREY_LEVELS).map(|v| v as f32 / 255.0))
            .collect();
        let column = |f: &dyn Fn(f64, f64) -> f64| {
            pairs
                .iter()
                .flat_map(|&(mean, std)| std::iter::repeat_n(f(mean, std) as f32, GREY_LEVELS))
                .collect()
        };
        [
            matrix(levels, p, GREY_LEVELS),
            matrix(column(&|mean, _| mean), p, GREY_LEVELS),
            matrix(column(&|_, std| 2.0 * std.ln()), p, GREY_LEVELS),
        ]
    }

    /// `log P(v | μ, σ)` for every level of every pair, as `[pairs][256]` f64 rows.
    fn discretized_rows(pairs: &[(f64, f64)]) -> Vec<Vec<f64>> {
        let [x, mean, log_var] = level_grid(pairs);
        to_host(discretized_gaussian_log_prob_elements(x, mean, log_var))
            .unwrap()
            .chunks(GREY_LEVELS)
            .map(|row| row.iter().map(|&v| f64::from(v)).collect())
            .collect()
    }

    /// Means across and beyond `[0, 1]`, on and between levels, and widths from a tenth of a
    /// bin to thirty times the whole range.
    fn mean_and_std_pairs() -> Vec<(f64, f64)> {
        let means = [
            -0.3,
            0.0,
            0.0031,
            0.25,
            0.5,
            100.0 / 255.0 + 7e-4,
            0.77,
            1.0,
            1.4,
        ];
        let stds = [2e-4, 1e-3, 0.01, 0.05, 0.1, 0.3, 1.0, 3.0, 30.0];
        means
            .iter()
            .flat_map(|&m| stds.iter().map(move |&s| (m, s)))
            .collect()
    }

    #[test]
    fn the_256_discretized_gaussian_probabilities_of_a_pixel_sum_to_one() {
        let pairs = mean_and_std_pairs();
        for ((mean, std), row) in pairs.iter().zip(discretized_rows(&pairs)) {
            assert!(row.iter().all(|v| v.is_finite() && *v <= 1e-6), "{row:?}");
            let total: f64 = row.iter().map(|v| v.exp()).sum();
            assert!(
                (total - 1.0).abs() < 1e-5,
                "μ = {mean}, σ = {std}: Σ_v P(v) = {total}"
            );
        }
    }

    #[test]
    fn discretized_gaussian_log_probabilities_match_an_f64_reference() {
        let pairs = mean_and_std_pairs();
        let (mut worst_mass, mut worst_log) = ((0.0f64, 0.0, 0.0, 0), (0.0f64, 0.0, 0.0, 0));
        for (&(mean, std), row) in pairs.iter().zip(discretized_rows(&pairs)) {
            for (v, &got) in row.iter().enumerate() {
                let reference = discretized_gaussian_log_prob_f64(v as u8, mean, std);
                let mass_error = (got.exp() - reference.exp()).abs();
                if mass_error > worst_mass.0 {
                    worst_mass = (mass_error, mean, std, v);
                }
                let log_error = (got - reference).abs() / reference.abs().max(1.0);
                if log_error > worst_log.0 {
                    worst_log = (log_error, mean, std, v);
                }
            }
        }
        // Measured: 1.8e-6 and 2.8e-5, both at σ far below a bin's width, where f32's rounding
        // of a bin edge (3e-8) moves it by 3e-8/σ standard deviations.
        assert!(
            worst_mass.0 < 5e-6,
            "worst error of P (μ, σ, level): {worst_mass:?}"
        );
        assert!(
            worst_log.0 < 1e-4,
            "worst relative error of log P (μ, σ, level): {worst_log:?}"
        );
    }

    #[test]
    fn a_tighter_gaussian_puts_more_mass_on_the_bin_of_its_mean() {
        let mean = 100.0 / 255.0 + 7e-4;
        let stds = [1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-5];
        let pairs: Vec<(f64, f64)> = stds.iter().map(|&s| (mean, s)).collect();
        let mass: Vec<f64> = discretized_rows(&pairs)
            .iter()
            .map(|row| row[100].exp())
            .collect();
        assert!(mass.windows(2).all(|p| p[1] > p[0]), "{mass:?}");
        assert!(mass[8] > 1.0 - 1e-6, "{mass:?}");
        // A wide Gaussian spreads its mass: about one bin's share of the density.
        let expected = (1.0 / 255.0) * (-0.5 * (7e-4f64).powi(2)).exp() / (2.0 * PI).sqrt();
        assert!(
            (mass[0] - expected).abs() < 1e-5 * expected.max(1e-3),
            "{mass:?}"
        );
    }

    #[test]
    fn the_edge_bins_take_the_tails() {
        let phi = |y: f64| 0.5 * libm::erfc(-y / 2f64.sqrt());
        let rows = discretized_rows(&[(0.0, 0.1), (1.0, 0.1), (-0.5, 0.1), (2.0, 0.3), (0.5, 0.2)]);
        // A mean on the first level: half the Gaussian lies below 0, all of it in level 0.
        let p0 = rows[0][0].exp();
        assert!((p0 - phi(HALF_BIN / 0.1)).abs() < 1e-6 && p0 > 0.5, "{p0}");
        let p255 = rows[1][255].exp();
        assert!((p255 - p0).abs() < 1e-6, "{p255} vs {p0}: symmetric");
        // Means beyond the range put (nearly) everything in the edge bin.
        assert!(
            rows[2][0] > -1e-6 && rows[3][255] > -1e-3,
            "{} {}",
            rows[2][0],
            rows[3][255]
        );
        // Centred in the range, each edge bin holds a whole tail: more than its neighbour.
        let tail = phi((HALF_BIN - 0.5) / 0.2);
        assert!(
            (rows[4][0].exp() - tail).abs() < 1e-6,
            "{} vs {tail}",
            rows[4][0].exp()
        );
        assert!(rows[4][0] > rows[4][1] && rows[4][255] > rows[4][254]);
    }

    #[test]
    fn extreme_means_and_widths_give_finite_log_probabilities_and_gradients() {
        let device = device().autodiff();
        let cases: [(f64, f64); 12] = [
            (-1e6, 1e-3),
            (-1e3, 1e-2),
            (-50.0, 1e-13),
            (50.0, 1e-6),
            (1e3, 1.0),
            (1e6, 1e-2),
            (1e20, 1e-2),
            (0.37, 1e-7),
            (0.37, 1e-20),
            (0.37, 1e6),
            (0.37, 1e40),
            (-3.0, 1e5),
        ];
        for (mean, std) in cases {
            let levels: Vec<f32> = (0..GREY_LEVELS).map(|v| v as f32 / 255.0).collect();
            let x = Tensor::<2>::from_data(TensorData::new(levels, [1, GREY_LEVELS]), &device);
            let mu = Tensor::<2>::from_data(TensorData::new(vec![mean as f32], [1, 1]), &device)
                .require_grad();
            let lv = Tensor::<2>::from_data(
                TensorData::new(vec![(2.0 * std.ln()) as f32], [1, 1]),
                &device,
            )
            .require_grad();
            let log_p = discretized_gaussian_log_prob_elements(
                x,
                mu.clone().expand([1, GREY_LEVELS]),
                lv.clone().expand([1, GREY_LEVELS]),
            );
            let values = to_host(log_p.clone()).unwrap();
            assert!(
                values.iter().all(|v| v.is_finite() && *v <= 1e-6),
                "μ = {mean}, σ = {std}: {values:?}"
            );
            // The bin that holds μ (an edge bin for a mean outside [0, 1]) has log-probability
            // near 0 when σ is far below a bin's width.
            let holder = (mean.clamp(0.0, 1.0) * 255.0).round() as usize;
            if std < 1e-4 || (mean - 0.5).abs() > 100.0 * std {
                assert!(
                    values[holder] > -1e-4,
                    "μ = {mean}, σ = {std}: {}",
                    values[holder]
                );
            }
            let grads = log_p.sum().backward();
            for (name, g) in [
                ("μ", mu.grad(&grads).unwrap()),
                ("log σ²", lv.grad(&grads).unwrap()),
            ] {
                let g = to_host(g).unwrap()[0];
                assert!(g.is_finite(), "μ = {mean}, σ = {std}: ∂/∂{name} = {g}");
            }
        }
    }

    #[test]
    fn discretized_gaussian_gradients_match_finite_differences_of_the_reference() {
        let device = device().autodiff();
        // (level, μ, σ): narrow bins (the series), wide ones below and across the mean, tails,
        // and both edge bins.
        let cases: [(u8, f64, f64); 10] = [
            (100, 0.41, 0.3),
            (100, 0.2, 0.5),
            (100, 0.39, 0.004),
            (100, 0.3, 0.02),
            (130, 0.45, 0.01),
            (0, 0.05, 0.03),
            (0, -0.02, 0.01),
            (255, 0.9, 0.05),
            (255, 1.01, 0.1),
            (7, 0.5, 0.08),
        ];
        for (level, mean, std) in cases {
            let x = matrix(vec![f32::from(level) / 255.0], 1, 1).to_device(&device);
            let mu = Tensor::<2>::from_data(TensorData::new(vec![mean as f32], [1, 1]), &device)
                .require_grad();
            let lv = Tensor::<2>::from_data(
                TensorData::new(vec![(2.0 * std.ln()) as f32], [1, 1]),
                &device,
            )
            .require_grad();
            let grads = discretized_gaussian_log_prob_elements(x, mu.clone(), lv.clone())
                .sum()
                .backward();
            let got_mu = f64::from(to_host(mu.grad(&grads).unwrap()).unwrap()[0]);
            let got_lv = f64::from(to_host(lv.grad(&grads).unwrap()).unwrap()[0]);
            let h = 1e-6;
            let f = |m: f64, s: f64| discretized_gaussian_log_prob_f64(level, m, s);
            let want_mu = (f(mean + h, std) - f(mean - h, std)) / (2.0 * h);
            // σ = e^{log σ²/2}.
            let want_lv =
                (f(mean, std * (h / 2.0).exp()) - f(mean, std * (-h / 2.0).exp())) / (2.0 * h);
            for (name, got, want) in [("μ", got_mu, want_mu), ("log σ²", got_lv, want_lv)] {
                assert!(
                    (got - want).abs() < 1e-3 * want.abs().max(1.0),
                    "level {level}, μ = {mean}, σ = {std}: ∂/∂{name} {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn grey_levels_round_to_the_nearest_of_256() {
        let x = matrix(vec![0.0, 1.0 / 255.0, 0.5, 0.499, 1.0, 0.0021], 1, 6);
        let levels: Vec<i64> = grey_levels(x).into_data().iter::<i64>().collect();
        assert_eq!(levels, [0, 1, 128, 127, 255, 1]);
    }

    #[test]
    fn analytic_kl_agrees_with_monte_carlo() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mean = [0.7f64, -1.2, 0.0];
        let log_var = [-0.5f64, 0.8, -2.0];
        let kl = to_host(kl_diagonal_gaussian_to_standard_normal(
            matrix(mean.iter().map(|&v| v as f32).collect(), 1, 3),
            matrix(log_var.iter().map(|&v| v as f32).collect(), 1, 3),
        ))
        .unwrap()[0] as f64;

        // KL = E_q[log q(z) − log p(z)], estimated with 200k draws of z ~ q.
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 200_000;
        let mut sum = 0.0;
        for _ in 0..draws {
            for d in 0..3 {
                let sd = (0.5 * log_var[d]).exp();
                let eps: f64 = rng.sample(rand_distr::StandardNormal);
                let z = mean[d] + sd * eps;
                let log_q = -0.5 * ((2.0 * PI).ln() + log_var[d] + eps * eps);
                let log_p = -0.5 * ((2.0 * PI).ln() + z * z);
                sum += log_q - log_p;
            }
        }
        let mc = sum / draws as f64;
        assert!((kl - mc).abs() < 0.02, "analytic {kl} vs Monte Carlo {mc}");
    }
}

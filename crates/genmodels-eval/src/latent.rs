//! Measures for latent control (`genmodels latent`): attributes of an image (its ink and its
//! slant), the rank correlation of an attribute with how far a code was moved, and the
//! directions of latent arithmetic (class means, attribute vectors) computed from codes.
//!
//! Everything here works on host values: images as rows of `H·W` grey levels in `[0, 1]`,
//! codes as rows of `L` numbers, both flattened row after row.

use genmodels_core::{GenError, Result};

/// The thickness of a digit: its ink, the mean grey level of the image (`Σ p / (H·W)`). A
/// thicker stroke of the same shape covers more pixels, so has more ink.
pub fn ink(image: &[f64]) -> f64 {
    if image.is_empty() {
        return 0.0;
    }
    image.iter().sum::<f64>() / image.len() as f64
}

/// The slant of a digit of `width` pixels per row: how far its ink moves right per row
/// upwards, from the ink's second moments,
///
/// ```text
/// slant = Cov(x, y) / Var(y),
/// ```
///
/// with `x` the column, `y` the row counted upwards (`y = −row`) and every pixel weighted by
/// its grey level. It is the slope `dx/dy` of the least-squares line `x = a + slant·y`
/// through the ink: 0 for an upright stroke, positive for one leaning right (its top to the
/// right, as in italics), negative for one leaning left. A stroke sheared by `x ↦ x + s·y`
/// has slant `s` exactly when its unsheared ink has `Cov(x, y) = 0`.
///
/// An image without ink, or with all its ink on one row (no vertical extent), has no slant
/// to measure: 0.
pub fn slant(image: &[f64], width: usize) -> f64 {
    if width == 0 {
        return 0.0;
    }
    let (mut total, mut sum_x, mut sum_y) = (0.0, 0.0, 0.0);
    for (i, &p) in image.iter().enumerate() {
        let (x, y) = ((i % width) as f64, -((i / width) as f64));
        total += p;
        sum_x += p * x;
        sum_y += p * y;
    }
    if total <= 0.0 {
        return 0.0;
    }
    let (mean_x, mean_y) = (sum_x / total, sum_y / total);
    let (mut cov, mut var_y) = (0.0, 0.0);
    for (i, &p) in image.iter().enumerate() {
        let (x, y) = ((i % width) as f64, -((i / width) as f64));
        cov += p * (x - mean_x) * (y - mean_y);
        var_y += p * (y - mean_y) * (y - mean_y);
    }
    // Relative to the ink's spread: a few stray rows of numerical dust are not extent.
    if var_y <= 1e-12 * total {
        return 0.0;
    }
    cov / var_y
}

/// The ranks of `values`, 1 for the smallest; tied values share their average rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| values[i] == values[order[start]])
                .count();
        let average = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation of `x` and `y`: the Pearson correlation of their
/// [`ranks`] (ties at their average rank, as scipy's `spearmanr`). 1 when `y` rises with
/// `x` at every step, −1 when it falls at every step. `None` when either side is constant
/// (the correlation is undefined).
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the lengths differ; [`GenError::EmptyData`] for fewer
/// than 2 pairs; [`GenError::NonFiniteInput`] for a NaN or infinite value.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Option<f64>> {
    if x.len() != y.len() {
        return Err(GenError::shape("Spearman's pairs", x.len(), y.len()));
    }
    if x.len() < 2 {
        return Err(GenError::EmptyData {
            context: "Spearman's correlation of fewer than 2 pairs".into(),
        });
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(GenError::NonFiniteInput {
            context: "Spearman's correlation".into(),
        });
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let mean = (x.len() as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mean) * (b - mean);
        sxx += (a - mean) * (a - mean);
        syy += (b - mean) * (b - mean);
    }
    if sxx == 0.0 || syy == 0.0 {
        return Ok(None);
    }
    Ok(Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)))
}

/// Checks `codes` holds rows of `size` and one row per label.
fn check_rows(codes: &[f64], size: usize, rows: usize, what: &str) -> Result<()> {
    if size == 0 || codes.len() != rows * size {
        return Err(GenError::shape(
            format!("codes and {what}"),
            format!("{rows} rows of {size}"),
            format!("{} values", codes.len()),
        ));
    }
    Ok(())
}

/// The mean code of each class `0..classes`: `None` for a class without a code. `codes` holds
/// `labels.len()` rows of `size`.
///
/// # Errors
/// [`GenError::ShapeMismatch`] when the codes are not one row of `size` per label;
/// [`GenError::InvalidLabels`] for a label `≥ classes`.
pub fn class_means(
    codes: &[f64],
    size: usize,
    labels: &[usize],
    classes: usize,
) -> Result<Vec<Option<Vec<f64>>>> {
    check_rows(codes, size, labels.len(), "labels")?;
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(GenError::InvalidLabels(format!(
            "label {bad} outside the {classes} classes"
        )));
    }
    let mut sums = vec![vec![0.0; size]; classes];
    let mut counts = vec![0usize; classes];
    for (row, &label) in codes.chunks(size).zip(labels) {
        counts[label] += 1;
        for (s, v) in sums[label].iter_mut().zip(row) {
            *s += v;
        }
    }
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(sum, n)| (n > 0).then(|| sum.into_iter().map(|s| s / n as f64).collect()))
        .collect())
}

/// An attribute vector: within each group (a class), the mean code of the quarter of its
/// codes with the highest `attribute` minus the mean code of the quarter with the lowest,
/// averaged over the groups that have at least 2 codes (a quarter is at least one code).
/// Taking the quartiles within each class keeps the class out of the direction: across
/// classes, ink mostly tells a 1 from a 0.
///
/// Returns the direction (`size` numbers) and the groups it averages.
///
/// # Errors
/// [`GenError::ShapeMismatch`] when `codes`, `attribute` and `groups` do not agree;
/// [`GenError::NonFiniteInput`] for a NaN attribute; [`GenError::EmptyData`] when no group
/// has 2 codes.
pub fn attribute_direction(
    codes: &[f64],
    size: usize,
    attribute: &[f64],
    groups: &[usize],
) -> Result<(Vec<f64>, usize)> {
    check_rows(codes, size, groups.len(), "groups")?;
    if attribute.len() != groups.len() {
        return Err(GenError::shape(
            "attribute values",
            groups.len(),
            attribute.len(),
        ));
    }
    if attribute.iter().any(|v| !v.is_finite()) {
        return Err(GenError::NonFiniteInput {
            context: "attribute values".into(),
        });
    }
    let classes = groups.iter().max().map_or(0, |m| m + 1);
    let mut direction = vec![0.0; size];
    let mut used = 0;
    for class in 0..classes {
        let mut members: Vec<usize> = (0..groups.len()).filter(|&i| groups[i] == class).collect();
        if members.len() < 2 {
            continue;
        }
        members.sort_by(|&a, &b| attribute[a].total_cmp(&attribute[b]));
        let quarter = (members.len() / 4).max(1);
        let mean_of = |rows: &[usize]| {
            let mut mean = vec![0.0; size];
            for &r in rows {
                for (m, v) in mean.iter_mut().zip(&codes[r * size..(r + 1) * size]) {
                    *m += v / rows.len() as f64;
                }
            }
            mean
        };
        let low = mean_of(&members[..quarter]);
        let high = mean_of(&members[members.len() - quarter..]);
        for ((d, h), l) in direction.iter_mut().zip(high).zip(low) {
            *d += h - l;
        }
        used += 1;
    }
    if used == 0 {
        return Err(GenError::EmptyData {
            context: "an attribute direction: no class has 2 codes".into(),
        });
    }
    for d in &mut direction {
        *d /= used as f64;
    }
    Ok((direction, used))
}

/// The Euclidean norm of `v`.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 28;

    /// A 28×28 image with a vertical bar `width` pixels wide, rows 4..24, sheared so that
    /// its centre moves `shear` pixels right per row upwards (rounded to whole pixels).
    fn bar(width: usize, shear: f64) -> Vec<f64> {
        let mut image = vec![0.0; W * W];
        for row in 4..24 {
            let up = 13.5 - row as f64;
            let left = (12.0 + shear * up).round() as i64;
            for x in left..left + width as i64 {
                image[row * W + x as usize] = 1.0;
            }
        }
        image
    }

    #[test]
    fn a_thicker_stroke_has_more_ink() {
        let (thin, thick) = (bar(1, 0.0), bar(3, 0.0));
        assert_eq!(ink(&thin), 20.0 / 784.0);
        assert_eq!(ink(&thick), 60.0 / 784.0);
        assert!(ink(&bar(2, 0.5)) > ink(&thin));
        assert_eq!(ink(&vec![0.0; W * W]), 0.0);
        assert_eq!(ink(&vec![1.0; W * W]), 1.0);
    }

    #[test]
    fn a_sheared_bar_has_the_slant_of_its_shear() {
        // Upright: no slant; a bar leaning right (top to the right) slants positive.
        assert!(slant(&bar(2, 0.0), W).abs() < 1e-12);
        assert!((slant(&bar(1, 0.5), W) - 0.5).abs() < 0.05);
        assert!((slant(&bar(1, -0.5), W) + 0.5).abs() < 0.05);
        // An exact diagonal, one pixel per row: slant 1.
        assert!((slant(&bar(1, 1.0), W) - 1.0).abs() < 1e-9);
        // Monotone in the shear, and odd: leaning left mirrors leaning right.
        let shears = [-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6];
        let slants: Vec<f64> = shears.iter().map(|&s| slant(&bar(3, s), W)).collect();
        assert!(slants.windows(2).all(|w| w[0] < w[1]), "{slants:?}");
        for (a, b) in slants.iter().zip(slants.iter().rev()) {
            assert!((a + b).abs() < 0.05, "{slants:?}");
        }
        // Grey levels weigh: a faint stray pixel moves the slant less than a dark one.
        let mut faint = bar(1, 0.0);
        faint[4 * W + 20] = 0.1;
        let mut dark = bar(1, 0.0);
        dark[4 * W + 20] = 1.0;
        assert!(0.0 < slant(&faint, W) && slant(&faint, W) < slant(&dark, W));
        // Nothing to measure: no ink, or ink on one row.
        assert_eq!(slant(&vec![0.0; W * W], W), 0.0);
        let mut row = vec![0.0; W * W];
        row[10 * W + 3..10 * W + 20].fill(1.0);
        assert_eq!(slant(&row, W), 0.0);
    }

    #[test]
    fn spearman_has_its_known_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        // Monotone but not linear: still 1 (or −1 falling).
        let rising = [0.1, 0.2, 5.0, 7.0, 100.0];
        assert_eq!(spearman(&x, &rising).unwrap(), Some(1.0));
        let falling: Vec<f64> = rising.iter().map(|v| -v).collect();
        assert_eq!(spearman(&x, &falling).unwrap(), Some(-1.0));
        // With a tie, as scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]): 8/√95.
        let tied = [5.0, 6.0, 7.0, 8.0, 7.0];
        let rho = spearman(&x, &tied).unwrap().unwrap();
        assert!((rho - 0.820_782_681_668_123_3).abs() < 1e-12, "{rho}");
        // Ranks: ties share their average.
        assert_eq!(ranks(&tied), [1.0, 2.0, 3.5, 5.0, 3.5]);
        // Orthogonal ranks: 0.
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 3.0]).unwrap();
        assert!((rho.unwrap() - 0.6).abs() < 1e-12);
        let rho = spearman(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap();
        assert!((rho.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(spearman(&x, &[3.0; 5]).unwrap(), None);
        assert!(matches!(
            spearman(&x, &[1.0]),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            spearman(&[1.0], &[1.0]),
            Err(GenError::EmptyData { .. })
        ));
        assert!(matches!(
            spearman(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(GenError::NonFiniteInput { .. })
        ));
    }

    #[test]
    fn class_means_average_each_class() {
        let codes = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0];
        let means = class_means(&codes, 2, &[0, 0, 2], 4).unwrap();
        assert_eq!(means[0], Some(vec![2.0, 3.0]));
        assert_eq!(means[1], None);
        assert_eq!(means[2], Some(vec![10.0, 20.0]));
        assert_eq!(means[3], None);
        assert!(matches!(
            class_means(&codes, 2, &[0, 4, 1], 4),
            Err(GenError::InvalidLabels(_))
        ));
        assert!(matches!(
            class_means(&codes, 2, &[0, 1], 4),
            Err(GenError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn the_attribute_direction_finds_the_dimension_that_carries_it() {
        // Codes (a, c, u): a is the attribute, c the class's own offset, u unrelated noise.
        // Two classes of 8 codes with a = 0..8: the top quarter (a = 6, 7) minus the bottom
        // (0, 1) is 6 along a, and the class offset cancels within each class.
        let mut codes = Vec::new();
        let (mut attribute, mut groups) = (Vec::new(), Vec::new());
        for class in 0..2 {
            for i in 0..8 {
                let a = i as f64;
                let u = if i % 2 == 0 { 1.0 } else { -1.0 };
                codes.extend([a, 10.0 * class as f64, u]);
                attribute.push(a);
                groups.push(class);
            }
        }
        let (direction, used) = attribute_direction(&codes, 3, &attribute, &groups).unwrap();
        assert_eq!(used, 2);
        assert_eq!(direction, [6.0, 0.0, 0.0]);
        // When one class has more of the attribute (class 1's shifted up by 100), quartiles
        // within each class still give the attribute's dimension only; quartiles over all
        // codes pooled would give the class offset too (10 along c).
        let shifted: Vec<f64> = attribute
            .iter()
            .zip(&groups)
            .map(|(a, g)| a + 100.0 * *g as f64)
            .collect();
        let (within, _) = attribute_direction(&codes, 3, &shifted, &groups).unwrap();
        assert_eq!(within, [6.0, 0.0, 0.0]);
        let (pooled, _) = attribute_direction(&codes, 3, &shifted, &[0; 16]).unwrap();
        assert_eq!(pooled[1], 10.0);
        // The direction is antisymmetric in the attribute.
        let negated: Vec<f64> = attribute.iter().map(|a| -a).collect();
        let (opposite, _) = attribute_direction(&codes, 3, &negated, &groups).unwrap();
        assert_eq!(opposite, [-6.0, 0.0, 0.0]);
        assert!(matches!(
            attribute_direction(&codes[..3], 3, &[1.0], &[0]),
            Err(GenError::EmptyData { .. })
        ));
        assert!(matches!(
            attribute_direction(&codes, 3, &attribute[..4], &groups),
            Err(GenError::ShapeMismatch { .. })
        ));
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
    }
}

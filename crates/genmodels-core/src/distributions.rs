//! Log-densities and divergences shared by the model families, in numerically stable forms.
//!
//! All functions take flattened `[N, D]` tensors and return one value per row, `[N]`, summed
//! over the `D` dimensions, in nats.

use burn::tensor::Tensor;
use std::f64::consts::PI;

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

//! What the machine gives the kernels: the CPU's vector extensions, which of gemm's kernels
//! multiplies `f32` matrices here, and how fast that kernel runs at its best (the peak that
//! speed figures are a share of).
//!
//! Speed differs 2–3× between CPUs with and without AVX-512, so every speed table names the
//! extensions it ran with ([`vector_extensions`], [`matrix_kernel`]).

#[cfg(feature = "kernels")]
use std::time::Instant;

/// The vector instruction sets this CPU reports at run time, of those that decide which code
/// runs: `avx`, `avx2`, `fma`, `avx512f`, `avx512bw`, `avx512vl` on x86-64 (as
/// `is_x86_feature_detected!` reads them), `neon`, `sve` on aarch64. Empty elsewhere.
pub fn vector_extensions() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, present) in [
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
        ] {
            if present {
                found.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        for (name, present) in [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ] {
            if present {
                found.push(name);
            }
        }
    }
    found
}

/// The name of the gemm kernel that multiplies `f32` matrices on this machine, chosen the way
/// gemm chooses it at run time: `avx512f` (gemm's `x86-v4` kernels, which this crate's
/// `avx512` feature enables) where the CPU has AVX-512, else `fma` (AVX2 and FMA), `neon` on
/// aarch64, `scalar` otherwise. Without the `avx512` feature gemm is built without `x86-v4`,
/// and AVX-512 is not used even where the CPU has it.
pub fn matrix_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "avx512") && std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return "fma";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return "neon";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// The threads flex computes on: rayon's pool (`RAYON_NUM_THREADS`, else one per core).
pub fn compute_threads() -> usize {
    #[cfg(feature = "flex")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "flex"))]
    {
        1
    }
}

/// The best `f32` matrix-product rate gemm reached here ([`gemm_peak`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GemmPeak {
    /// Floating-point operations per second (a multiply-add counts two) of the fastest size.
    pub flops_per_second: f64,
    /// The side `n` of the square `n × n` products that reached it.
    pub size: usize,
    /// Threads gemm ran on (rayon's pool, as the kernels use it).
    pub threads: usize,
    /// The gemm kernel ([`matrix_kernel`]).
    pub kernel: &'static str,
}

/// Times gemm's `f32` product `C = A·B` of square matrices of each side in `sizes` on all of
/// rayon's threads, as the kernels call it, for at least `seconds_per_size` each (after one
/// untimed product), and returns the fastest rate: the peak that a model's training FLOP/s is
/// a share of. The operands hold small non-zero values (denormals or zeros could change the
/// speed).
///
/// `None` without the `kernels` feature (gemm is then not a dependency of this crate) or
/// when `sizes` is empty.
pub fn gemm_peak(sizes: &[usize], seconds_per_size: f64) -> Option<GemmPeak> {
    #[cfg(feature = "kernels")]
    {
        let mut best: Option<GemmPeak> = None;
        for &n in sizes.iter().filter(|&&n| n > 0) {
            let flops_per_second = time_square_product(n, seconds_per_size);
            if best
                .as_ref()
                .is_none_or(|b| flops_per_second > b.flops_per_second)
            {
                best = Some(GemmPeak {
                    flops_per_second,
                    size: n,
                    threads: rayon::current_num_threads(),
                    kernel: matrix_kernel(),
                });
            }
        }
        best
    }
    #[cfg(not(feature = "kernels"))]
    {
        let _ = (sizes, seconds_per_size);
        None
    }
}

/// FLOP/s of repeated `n × n` products for at least `seconds` (one untimed product first).
#[cfg(feature = "kernels")]
fn time_square_product(n: usize, seconds: f64) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| 1.0 + (i % 7) as f32 * 0.125).collect();
    let b: Vec<f32> = (0..n * n).map(|i| 1.0 - (i % 5) as f32 * 0.125).collect();
    let mut c = vec![0f32; n * n];
    let product = |c: &mut [f32]| square_product(n, &a, &b, c, gemm::Parallelism::Rayon(0));
    product(&mut c);
    let start = Instant::now();
    let mut products = 0u64;
    while products == 0 || start.elapsed().as_secs_f64() < seconds {
        product(&mut c);
        products += 1;
    }
    std::hint::black_box(&c);
    2.0 * (n as f64).powi(3) * products as f64 / start.elapsed().as_secs_f64()
}

/// `c = a·b` for row-major `n × n` matrices, by gemm.
///
/// # Panics
/// If a slice does not hold `n²` values.
#[cfg(feature = "kernels")]
fn square_product(n: usize, a: &[f32], b: &[f32], c: &mut [f32], parallelism: gemm::Parallelism) {
    assert!(a.len() == n * n && b.len() == n * n && c.len() == n * n);
    let stride = n as isize;
    // SAFETY: a, b and c each hold n × n values (checked), row-major with row stride n; c is
    // borrowed mutably, so it overlaps neither of the others.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            stride,
            false,
            a.as_ptr(),
            1,
            stride,
            b.as_ptr(),
            1,
            stride,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_kernel_is_one_the_cpu_has() {
        let extensions = vector_extensions();
        match matrix_kernel() {
            "avx512f" => assert!(extensions.contains(&"avx512f")),
            "fma" => assert!(extensions.contains(&"fma") && extensions.contains(&"avx")),
            "neon" => assert_eq!(std::env::consts::ARCH, "aarch64"),
            other => assert_eq!(other, "scalar"),
        }
    }

    #[cfg(feature = "kernels")]
    #[test]
    fn the_peak_is_a_rate_of_one_of_the_sizes_and_products_are_right() {
        let peak = gemm_peak(&[16, 64], 0.01).unwrap();
        assert!([16, 64].contains(&peak.size));
        assert!(peak.flops_per_second.is_finite() && peak.flops_per_second > 0.0);
        assert_eq!(peak.threads, rayon::current_num_threads());
        assert!(gemm_peak(&[], 0.01).is_none());
        // The timed call computes C = A·B: check one entry of a 3 × 3 product against the sum.
        let n = 3;
        let a: Vec<f32> = (0..n * n).map(|i| 1.0 + (i % 7) as f32 * 0.125).collect();
        let b: Vec<f32> = (0..n * n).map(|i| 1.0 - (i % 5) as f32 * 0.125).collect();
        let mut c = vec![f32::NAN; n * n];
        square_product(n, &a, &b, &mut c, gemm::Parallelism::None);
        let expected: f32 = (0..n).map(|k| a[n + k] * b[k * n + 2]).sum();
        assert!(
            (c[n + 2] - expected).abs() < 1e-5,
            "{} vs {expected}",
            c[n + 2]
        );
    }
}

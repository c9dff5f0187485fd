//! The diffusion maths against closed forms and Monte Carlo, and the model's behaviour on
//! tiny images.

use super::*;
use burn::optim::{AdamConfig, ModuleOptimizer};
use genmodels_core::distributions::log_ndtr;
use rand::Rng;
use std::f64::consts::PI;

/// Held by every test that draws from the device RNG (building a model, the training loss,
/// the trainer): the tests of this binary run in parallel threads that share it, and the
/// trainer test expects a resumed run to repeat a straight one exactly.
fn device_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DEVICE_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Standard normal draws on the host (Box–Muller).
fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * PI * v).cos()
}

fn host(t: Tensor<1>) -> Vec<f64> {
    to_host(t).unwrap().into_iter().map(f64::from).collect()
}

fn host4(t: Tensor<4>) -> Vec<f64> {
    to_host(t).unwrap().into_iter().map(f64::from).collect()
}

/// A column of scalars as `[N, 1, 1, 1]` images.
fn column(values: &[f64], device: &Device) -> Tensor<4> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1, 1, 1]), device)
}

#[test]
fn alpha_bar_and_the_posterior_match_their_closed_forms() {
    for (schedule, t_max) in [
        (NoiseSchedule::HO, 1000),
        (NoiseSchedule::COSINE, 1000),
        (
            NoiseSchedule::Linear {
                beta_start: 0.05,
                beta_end: 0.3,
            },
            10,
        ),
    ] {
        let s = Schedule::new(schedule, t_max).unwrap();
        assert_eq!(s.timesteps(), t_max);
        assert_eq!(s.alpha_bar(0), 1.0);
        let mut product = 1.0;
        for t in 1..=t_max {
            let beta = s.beta(t);
            assert!(beta > 0.0 && beta < 1.0);
            if let NoiseSchedule::Linear {
                beta_start,
                beta_end,
            } = schedule
            {
                let expected =
                    beta_start + (beta_end - beta_start) * (t - 1) as f64 / (t_max - 1) as f64;
                assert!((beta - expected).abs() < 1e-15);
            }
            product *= 1.0 - beta;
            assert!((s.alpha_bar(t) - product).abs() < 1e-12 * product.max(1e-300));
            // The posterior as the product of q(x_{t−1}|x_0) = N(a x_0, A) and
            // q(x_t|x_{t−1}) = N(√α x_{t−1}, β), normalised: precision 1/A + α/β.
            if t >= 2 {
                let (a, big_a) = (s.alpha_bar(t - 1).sqrt(), 1.0 - s.alpha_bar(t - 1));
                let precision = 1.0 / big_a + s.alpha(t) / beta;
                let (c0, ct) = s.posterior_mean_coefficients(t);
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-10 * y.abs().max(1e-12);
                assert!(close(c0, a / big_a / precision), "t = {t}: c₀ {c0}");
                assert!(
                    close(ct, s.alpha(t).sqrt() / beta / precision),
                    "t = {t}: c_t"
                );
                assert!(
                    close(s.posterior_variance(t), 1.0 / precision),
                    "t = {t}: β̃"
                );
            }
        }
        assert_eq!(s.posterior_variance(1), 0.0);
        assert_eq!(
            s.reverse_variance(1, ReverseVariance::PosteriorVariance),
            s.posterior_variance(2)
        );
    }
    // The cosine schedule: ᾱ_t = f(t)/f(0) wherever β is not clipped, and x_T is noise.
    let s = Schedule::new(NoiseSchedule::COSINE, 1000).unwrap();
    let f = |t: f64| ((t / 1000.0 + 0.008) / 1.008 * PI / 2.0).cos().powi(2);
    for t in [1, 10, 500, 900] {
        let expected = f(t as f64) / f(0.0);
        assert!((s.alpha_bar(t) - expected).abs() < 1e-12, "t = {t}");
    }
    assert_eq!(s.beta(1000), MAX_COSINE_BETA);
    assert!(s.alpha_bar(1000) < 1e-8);
    assert!(
        Schedule::new(NoiseSchedule::HO, 1000)
            .unwrap()
            .alpha_bar(1000)
            < 1e-4
    );
}

#[test]
fn the_posterior_is_the_conditional_law_of_x_t_minus_1_by_monte_carlo() {
    // x_{t−1} ~ q(x_{t−1}|x_0), x_t ~ q(x_t|x_{t−1}) jointly; regressing x_{t−1} on x_t gives
    // E[x_{t−1}|x_t, x_0] = c₀ x_0 + c_t x_t and the residual variance β̃_t.
    let s = Schedule::new(NoiseSchedule::COSINE, 10).unwrap();
    let mut rng = random::rng(3);
    let x0 = 0.7;
    let n = 200_000;
    for t in [2, 5, 9] {
        let (mut sx, mut sy, mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let previous = s.alpha_bar(t - 1).sqrt() * x0
                + (1.0 - s.alpha_bar(t - 1)).sqrt() * normal(&mut rng);
            let current = s.alpha(t).sqrt() * previous + s.beta(t).sqrt() * normal(&mut rng);
            sx += current;
            sy += previous;
            sxx += current * current;
            sxy += current * previous;
            syy += previous * previous;
        }
        let nf = n as f64;
        let (mx, my) = (sx / nf, sy / nf);
        let (vx, cxy, vy) = (sxx / nf - mx * mx, sxy / nf - mx * my, syy / nf - my * my);
        let slope = cxy / vx;
        let intercept = my - slope * mx;
        let residual = vy - slope * cxy;
        let (c0, ct) = s.posterior_mean_coefficients(t);
        let variance = s.posterior_variance(t);
        assert!(
            (slope - ct).abs() < 0.01,
            "t = {t}: slope {slope} vs c_t {ct}"
        );
        assert!(
            (intercept - c0 * x0).abs() < 0.01,
            "t = {t}: intercept {intercept} vs c₀x₀ {}",
            c0 * x0
        );
        assert!(
            (residual / variance - 1.0).abs() < 0.02,
            "t = {t}: residual variance {residual} vs β̃ {variance}"
        );
    }
    // The tensor form agrees with the f64 coefficients.
    let device = Device::flex();
    let process = GaussianDiffusion::new(s.clone(), ReverseVariance::Beta);
    let (mean, variances) = process.q_posterior(
        column(&[0.7, -0.2], &device),
        column(&[0.1, 0.4], &device),
        &[3, 8],
    );
    let mean = host4(mean);
    for (i, (t, x0, xt)) in [(3, 0.7, 0.1), (8, -0.2, 0.4)].into_iter().enumerate() {
        let (c0, ct) = s.posterior_mean_coefficients(t);
        assert!((mean[i] - (c0 * x0 + ct * xt)).abs() < 1e-6);
        assert_eq!(variances[i], s.posterior_variance(t));
    }
}

#[test]
fn the_decoders_probabilities_sum_to_one_over_their_bins() {
    let device = Device::flex();
    let means = [-3.0, -1.0, -0.4, 0.0, 0.013, 0.5, 1.0, 2.5];
    for variance in [1e-4, 2e-3, 0.05, 1.0] {
        // Two bins: x₀ = −1 and x₀ = 1.
        let mean = column(&means, &device);
        let p = |side: f64| {
            host4(
                Decoder::Binary
                    .log_prob_elements(mean.ones_like() * side, mean.clone(), variance)
                    .exp(),
            )
        };
        for (low, high) in p(-1.0).iter().zip(p(1.0)) {
            assert!(
                (low + high - 1.0).abs() < 1e-6,
                "σ² {variance}: {low} + {high}"
            );
        }
        // 256 bins: every level of each mean.
        for &m in &means {
            let levels: Vec<f64> = (0..256).map(|v| 2.0 * v as f64 / 255.0 - 1.0).collect();
            let x0 = column(&levels, &device);
            let log_p =
                Decoder::Grey256.log_prob_elements(x0.clone(), x0.zeros_like() + m, variance);
            let total: f64 = host4(log_p).iter().map(|v| v.exp()).sum();
            assert!(
                (total - 1.0).abs() < 1e-5,
                "σ² {variance}, μ {m}: Σ = {total}"
            );
        }
    }
    // The scales: two bins split at 0 give P(x₀ = 1) = Φ(μ/σ) (Φ(1) for μ = 0.5, σ = 0.5);
    // an inner level of the 256, at a σ far above the bin width 2/255, has about the density
    // on [−1, 1] times the bin width, and equals the f64 reference on the [0, 1] scale.
    let p_one = host4(
        Decoder::Binary
            .log_prob_elements(column(&[1.0], &device), column(&[0.5], &device), 0.25)
            .exp(),
    );
    assert!((p_one[0] - 0.841_344_746_068_543).abs() < 1e-6, "{p_one:?}");
    let (level, mean, variance) = (100u8, 0.013, 0.05);
    let x = 2.0 * f64::from(level) / 255.0 - 1.0;
    let got = host4(Decoder::Grey256.log_prob_elements(
        column(&[x], &device),
        column(&[mean], &device),
        variance,
    ))[0];
    let density = -0.5 * ((x - mean).powi(2) / variance + (2.0 * PI * variance).ln());
    assert!(
        (got - (density + (2.0f64 / 255.0).ln())).abs() < 1e-3,
        "{got} vs {density}"
    );
    let reference = genmodels_core::distributions::discretized_gaussian_log_prob_f64(
        level,
        (mean + 1.0) / 2.0,
        variance.sqrt() / 2.0,
    );
    assert!((got - reference).abs() < 1e-4, "{got} vs {reference}");
    // log Φ against known values, deep in the lower tail too.
    let y = Tensor::<1>::from_floats([0.0f32, 1.0, -3.0, -20.0, 8.0].as_slice(), &device);
    let expected = [
        0.5f64.ln(),
        0.841_344_746_068_543f64.ln(),
        0.001_349_898_031_630_095f64.ln(),
        -203.917_155_259_8,
        (1.0 - 6.220_960_574_271_785e-16f64).ln(),
    ];
    for (got, want) in host(log_ndtr(y)).iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

/// The optimal noise predictor for one-pixel data `x_0 ~ N(μ, s²)`: `x_0` and `ε` are jointly
/// Gaussian with `x_t = a x_0 + b ε` (`a = √ᾱ_t`, `b = √(1 − ᾱ_t)`), so
/// `E[ε|x_t] = b (x_t − a μ)/(a² s² + b²)`.
fn gaussian_predictor(
    schedule: &Schedule,
    mu: f64,
    s: f64,
) -> impl Fn(Tensor<4>, &[usize]) -> Tensor<4> + '_ {
    move |noisy: Tensor<4>, timesteps: &[usize]| {
        let device = noisy.device();
        let (gain, offset): (Vec<f64>, Vec<f64>) = timesteps
            .iter()
            .map(|&t| {
                let (a, b) = (
                    schedule.alpha_bar(t).sqrt(),
                    (1.0 - schedule.alpha_bar(t)).sqrt(),
                );
                let gain = b / (a * a * s * s + b * b);
                (gain, -gain * a * mu)
            })
            .unzip();
        noisy * column(&gain, &device) + column(&offset, &device)
    }
}

fn gaussian_data(n: usize, mu: f64, s: f64, seed: u64) -> Vec<f64> {
    let mut rng = random::rng(seed);
    (0..n).map(|_| mu + s * normal(&mut rng)).collect()
}

/// The bound's expectation for one-pixel data at `x_0`, in closed form, with the optimal
/// predictor of [`gaussian_predictor`]: its `x̂_0` is the posterior mean `E[x_0|x_t] = μ +
/// k (x_t − aμ)`, `k = a s²/(a² s² + b²)`, so `x_0 − x̂_0 = (1 − ka)(x_0 − μ) − kbε` and
/// `E[(μ̃_t − μ_θ)²|x_0] = c₀² ((1 − ka)² (x_0 − μ)² + k² b²)`. `deviation²` is
/// `(x_0 − μ)²` and `square` is `x_0²` (or their expectations `s²` and `μ² + s²`).
fn expected_gaussian_bound(
    process: &GaussianDiffusion,
    s: f64,
    deviation2: f64,
    square: f64,
) -> f64 {
    let schedule = &process.schedule;
    let t_max = schedule.timesteps();
    let alpha_bar_t = schedule.alpha_bar(t_max);
    let mut total = 0.5 * (alpha_bar_t * square - alpha_bar_t - (1.0 - alpha_bar_t).ln());
    for t in 1..=t_max {
        let (a, b) = (
            schedule.alpha_bar(t).sqrt(),
            (1.0 - schedule.alpha_bar(t)).sqrt(),
        );
        let k = a * s * s / (a * a * s * s + b * b);
        let error2 = (1.0 - k * a).powi(2) * deviation2 + k * k * b * b;
        let (c0, _) = schedule.posterior_mean_coefficients(t);
        let variance = schedule.reverse_variance(t, process.reverse_variance);
        total += if t == 1 {
            // −log N(x_0; x̂_0, σ_1²), c₀ = 1 at t = 1.
            0.5 * (2.0 * PI * variance).ln() + error2 / (2.0 * variance)
        } else {
            let true_variance = schedule.posterior_variance(t);
            0.5 * ((variance / true_variance).ln() + true_variance / variance - 1.0)
                + c0 * c0 * error2 / (2.0 * variance)
        };
    }
    total
}

#[test]
fn with_the_optimal_predictor_the_bound_is_its_closed_form_above_the_exact_nll() {
    let device = Device::flex();
    let (mu, s) = (0.3, 0.2);
    let data = gaussian_data(1000, mu, s, 1);
    let x0 = column(&data, &device);
    // The mean over the data of the bound the code computes, and of its closed form.
    let mean_bound = |process: &GaussianDiffusion, terms: BoundTerms| {
        let predictor = gaussian_predictor(&process.schedule, mu, s);
        let bound = process.variational_bound(
            &predictor,
            x0.clone(),
            Decoder::Continuous,
            BoundOptions { terms, seed: 4 },
        );
        host(bound).iter().sum::<f64>() / data.len() as f64
    };
    let closed_form = |process: &GaussianDiffusion| {
        data.iter()
            .map(|x| expected_gaussian_bound(process, s, (x - mu).powi(2), x * x))
            .sum::<f64>()
            / data.len() as f64
    };
    // E[−log p(x_0)] = ½ log(2πe s²); and the bound's expectation over x_0 as well.
    let entropy = 0.5 * (2.0 * PI * std::f64::consts::E * s * s).ln();
    let population =
        |process: &GaussianDiffusion| expected_gaussian_bound(process, s, s * s, mu * mu + s * s);
    for variance in [ReverseVariance::Beta, ReverseVariance::PosteriorVariance] {
        let process =
            GaussianDiffusion::new(Schedule::new(NoiseSchedule::HO, 1000).unwrap(), variance);
        let computed = mean_bound(&process, BoundTerms::Exact);
        let expected = closed_form(&process);
        assert!(
            (computed - expected).abs() < 0.02,
            "{variance:?}: the code's bound {computed} vs its closed form {expected}"
        );
        let bound = population(&process);
        assert!(bound > entropy, "{variance:?}: {bound} vs −log p {entropy}");
        // The sampled estimates are unbiased: per image they differ from the full sum by
        // noise of mean 0 (within 4 standard errors), the stratified one by less.
        let per_image = |terms: BoundTerms| {
            let predictor = gaussian_predictor(&process.schedule, mu, s);
            host(process.variational_bound(
                &predictor,
                x0.clone(),
                Decoder::Continuous,
                BoundOptions { terms, seed: 5 },
            ))
        };
        let full = per_image(BoundTerms::Exact);
        let spread = |stratified: bool| {
            let estimate = per_image(BoundTerms::Sampled { k: 50, stratified });
            let differences: Vec<f64> = estimate.iter().zip(&full).map(|(e, f)| e - f).collect();
            let (mean, var) = moments(&differences);
            let standard_error = (var / differences.len() as f64).sqrt();
            assert!(
                mean.abs() < 4.0 * standard_error,
                "{variance:?}, stratified {stratified}: the estimate is off the full sum by \
                 {mean} ± {standard_error}"
            );
            var.sqrt()
        };
        let (uniform, stratified) = (spread(false), spread(true));
        assert!(stratified < uniform, "{stratified} vs {uniform}");
        match variance {
            // σ_t² = β_t is the true reverse variance near t = 1 for data much wider than
            // the first steps' noise, and elsewhere off by O(β_t²) per step: tight at T = 1000.
            ReverseVariance::Beta => {
                assert!(bound - entropy < 0.02, "β: {bound} vs −log p {entropy}")
            }
            // σ_t² = β̃_t misses the true reverse variance β̃_t + c₀² Var(x_0|x_t) by a
            // factor about 1 + 1/(t − 1) in the first steps, whatever T: about π²/24 nats,
            // plus ≈ 0.15 for the decoder's σ_1² = β̃_2 ≈ β_1/2 (against ≈ β_1).
            ReverseVariance::PosteriorVariance => {
                let gap = bound - entropy;
                assert!((0.4..0.7).contains(&gap), "β̃: gap {gap}")
            }
        }
    }
    // Fewer steps: looser.
    let coarse = GaussianDiffusion::new(
        Schedule::new(NoiseSchedule::HO, 50).unwrap(),
        ReverseVariance::Beta,
    );
    let fine = GaussianDiffusion::new(
        Schedule::new(NoiseSchedule::HO, 1000).unwrap(),
        ReverseVariance::Beta,
    );
    assert!(population(&coarse) > population(&fine) + 0.01);
}

fn moments(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

#[test]
fn ddim_with_every_step_and_eta_1_matches_ancestral_sampling_and_eta_0_is_deterministic() {
    let device = Device::flex();
    let (mu, s) = (0.3, 0.2);
    let process = GaussianDiffusion::new(
        Schedule::new(NoiseSchedule::COSINE, 50).unwrap(),
        ReverseVariance::PosteriorVariance,
    );
    let predictor = gaussian_predictor(&process.schedule, mu, s);
    let n = 4000;
    let start = |seed| random::standard_normal([n, 1, 1, 1], &mut random::rng(seed), &device);
    let ancestral =
        host4(process.sample_ancestral(&predictor, start(1), false, &mut random::rng(2)));
    let ddim =
        host4(process.sample_ddim(&predictor, start(3), 50, 1.0, false, &mut random::rng(4)));
    let ((m_a, v_a), (m_d, v_d)) = (moments(&ancestral), moments(&ddim));
    assert!((m_a - m_d).abs() < 0.02, "means {m_a} vs {m_d}");
    assert!((v_a - v_d).abs() < 0.006, "variances {v_a} vs {v_d}");
    // With the same noise draws the two samplers are one algorithm: equal up to rounding.
    let a = host4(process.sample_ancestral(&predictor, start(5), false, &mut random::rng(6)));
    let d = host4(process.sample_ddim(&predictor, start(5), 50, 1.0, false, &mut random::rng(6)));
    let worst = a
        .iter()
        .zip(&d)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-4,
        "ancestral and DDIM(η = 1, S = T) differ by {worst}"
    );
    // η = 0: the noise generator does not matter, and each step is the linear map
    // x_prev − a_p μ = (a_p a s² + b_p b)/(a² s² + b²) · (x_t − a μ) of the optimal predictor
    // (a = √ᾱ_t, b = √(1 − ᾱ_t), a_p, b_p of the previous step), so the result is known exactly.
    let x_t = start(7);
    let x =
        host4(process.sample_ddim(&predictor, x_t.clone(), 10, 0.0, false, &mut random::rng(8)));
    let y =
        host4(process.sample_ddim(&predictor, x_t.clone(), 10, 0.0, false, &mut random::rng(9)));
    assert_eq!(x, y);
    let schedule = &process.schedule;
    let gain: f64 = (1..=10)
        .map(|i| {
            let (t, previous) = (5 * i, 5 * (i - 1));
            let (a, b) = (
                schedule.alpha_bar(t).sqrt(),
                (1.0 - schedule.alpha_bar(t)).sqrt(),
            );
            let (a_p, b_p) = (
                schedule.alpha_bar(previous).sqrt(),
                (1.0 - schedule.alpha_bar(previous)).sqrt(),
            );
            (a_p * a * s * s + b_p * b) / (a * a * s * s + b * b)
        })
        .product();
    let a_t = schedule.alpha_bar(50).sqrt();
    for (got, start) in x.iter().zip(host4(x_t)) {
        let want = mu + gain * (start - a_t * mu);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}

#[test]
fn clipped_ddim_with_every_step_and_eta_1_is_clipped_ancestral_sampling() {
    // Data near the clipping edge (μ = 0.8, s = 0.3: a quarter of it above 1), so that x̂_0
    // is clipped at many steps. DDIM's direction term must then use the noise the clipped
    // x̂_0 implies: with the network's ε̂ it drifts by √ᾱ_{t−1} times the clipped amount per
    // step, and deterministic DDIM on all T steps drew no digits.
    let device = Device::flex();
    let (mu, s) = (0.8, 0.3);
    let process = GaussianDiffusion::new(
        Schedule::new(NoiseSchedule::HO, 200).unwrap(),
        ReverseVariance::PosteriorVariance,
    );
    let predictor = gaussian_predictor(&process.schedule, mu, s);
    let x_t = random::standard_normal([2000, 1, 1, 1], &mut random::rng(11), &device);
    let ancestral =
        |clip| host4(process.sample_ancestral(&predictor, x_t.clone(), clip, &mut random::rng(12)));
    let ddim = host4(process.sample_ddim(
        &predictor,
        x_t.clone(),
        200,
        1.0,
        true,
        &mut random::rng(12),
    ));
    let worst = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    let (clipped, unclipped) = (ancestral(true), ancestral(false));
    // Clipping matters here, or the check below would say nothing.
    assert!(worst(&clipped, &unclipped) > 0.05);
    let gap = worst(&clipped, &ddim);
    assert!(
        gap < 1e-4,
        "clipped ancestral and DDIM(η = 1, S = T) differ by {gap}"
    );
}

/// A tiny model of 1×4×4 images (two levels, 8 channels, `T = 20`).
fn tiny_config(grid: DataGrid) -> DiffusionConfig {
    DiffusionConfig::new()
        .with_image_shape(ImageShape::new(1, 4, 4))
        .with_data_grid(grid)
        .with_timesteps(20)
        .with_schedule(NoiseSchedule::COSINE)
        .with_unet(
            UNetConfig::new()
                .with_base_channels(8)
                .with_channel_multipliers(vec![1, 2])
                .with_groups(4),
        )
}

fn tiny(grid: DataGrid, device: &Device) -> Diffusion {
    random::build_with_seed(device, 7, |device| tiny_config(grid).init(device)).unwrap()
}

/// Eight binary 1×4×4 images: two bars and their shifts.
fn binary_batch(device: &Device) -> ImageBatch {
    let mut pixels = Vec::new();
    for i in 0..8 {
        for row in 0..4 {
            for col in 0..4 {
                let on = if i % 2 == 0 {
                    row == i / 2
                } else {
                    col == i / 2
                };
                pixels.push(f32::from(u8::from(on)));
            }
        }
    }
    ImageBatch::from_host(pixels, ImageShape::new(1, 4, 4), None, device).unwrap()
}

fn adam_step(model: Diffusion, batch: &ImageBatch, optimizer: &mut ModuleOptimizer) -> Diffusion {
    let loss = model.loss(0, batch).unwrap();
    let grads = model.player_gradients(0, loss.objective.backward());
    let model = optimizer.step(3e-3, model, grads);
    model.after_player_step(0)
}

#[test]
fn the_unet_keeps_the_shape_and_the_presets_have_the_parameters_their_docs_state() {
    let _rng = device_rng_lock();
    let device = Device::flex();
    for (shape, multipliers, attention) in [
        (ImageShape::new(1, 8, 8), vec![1, 2], false),
        (ImageShape::new(2, 8, 4), vec![1, 2, 2], true),
        (ImageShape::new(1, 28, 28), vec![1, 2, 2], true),
    ] {
        let unet = UNetConfig::new()
            .with_base_channels(8)
            .with_channel_multipliers(multipliers)
            .with_attention(attention)
            .with_groups(4)
            .init(shape, &device)
            .unwrap();
        let x = random::standard_normal(shape.batch_dims(3), &mut random::rng(1), &device);
        let t = Tensor::<1>::from_floats([1.0f32, 5.0, 20.0].as_slice(), &device);
        assert_eq!(unet.forward(x, t).dims(), shape.batch_dims(3));
    }
    let small = DiffusionConfig::small(ImageShape::MNIST, DataGrid::Binary)
        .init(&device)
        .unwrap();
    assert_eq!(small.network().num_params(), 280_177);
    assert_eq!(small.average_network().num_params(), 280_177);
    let paper = DiffusionConfig::paper(ImageShape::MNIST, DataGrid::Grey256)
        .init(&device)
        .unwrap();
    assert_eq!(paper.network().num_params(), 6_469_889);
}

#[test]
fn bad_configurations_and_inputs_are_typed_errors() {
    let _rng = device_rng_lock();
    let device = Device::flex();
    let invalid =
        |config: DiffusionConfig| matches!(config.init(&device), Err(GenError::InvalidConfig(_)));
    let base = || tiny_config(DataGrid::Binary);
    assert!(invalid(base().with_timesteps(0)));
    for (beta_start, beta_end) in [(0.0, 0.02), (1e-4, 1.0), (-0.1, 0.2), (f64::NAN, 0.2)] {
        assert!(invalid(base().with_schedule(NoiseSchedule::Linear {
            beta_start,
            beta_end
        })));
    }
    assert!(invalid(
        base().with_schedule(NoiseSchedule::Cosine { offset: -1.0 })
    ));
    assert!(invalid(base().with_ema_decay(1.5)));
    // 6×6 cannot be halved twice; 4×4 cannot be halved three times.
    assert!(invalid(
        base()
            .with_image_shape(ImageShape::new(1, 6, 6))
            .with_unet(UNetConfig::new().with_base_channels(8).with_groups(4))
    ));
    assert!(invalid(
        base().with_unet(
            UNetConfig::new()
                .with_base_channels(8)
                .with_channel_multipliers(vec![1, 2, 2, 2])
                .with_groups(4)
        )
    ));
    // 3 groups do not divide 8 channels.
    assert!(invalid(
        base().with_unet(
            UNetConfig::new()
                .with_base_channels(8)
                .with_channel_multipliers(vec![1, 2])
                .with_groups(3)
        )
    ));
    assert!(invalid(
        base().with_unet(UNetConfig::new().with_channel_multipliers(vec![]))
    ));
    assert!(invalid(
        base().with_unet(UNetConfig::new().with_dropout(1.0))
    ));

    let model = tiny(DataGrid::Binary, &device);
    let mut nan = vec![0.0f32; 16];
    nan[3] = f32::NAN;
    let nan = Tensor::<4>::from_data(TensorData::new(nan, [1, 1, 4, 4]), &device);
    assert!(matches!(
        model.predict_noise(nan.clone(), &[1]),
        Err(GenError::NonFiniteInput { .. })
    ));
    assert!(matches!(
        model.sample_ddim_from(nan, 5, 0.0, random::rng(0)),
        Err(GenError::NonFiniteInput { .. })
    ));
    let zeros = Tensor::<4>::zeros([1, 1, 4, 4], &device);
    assert!(matches!(
        model.predict_noise(zeros.clone(), &[21]),
        Err(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        model.predict_noise(zeros.clone(), &[1, 2]),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        model.predict_noise(Tensor::zeros([1, 1, 8, 8], &device), &[1]),
        Err(GenError::ShapeMismatch { .. })
    ));
    for steps in [0, 21] {
        assert!(matches!(
            model.sample_ddim(1, steps, 0.0, 0),
            Err(GenError::InvalidConfig(_))
        ));
    }
    assert!(matches!(
        model.sample_ddim(1, 5, -1.0, 0),
        Err(GenError::InvalidConfig(_))
    ));
    assert!(matches!(
        model.sample(0, 0),
        Err(GenError::InvalidConfig(_))
    ));
    let batch = binary_batch(&device);
    assert!(matches!(
        model.complete(&batch, &[true; 3], 0, SamplingMethod::Ancestral),
        Err(GenError::ShapeMismatch { .. })
    ));
    // The autoregressive models' samplers are refused, and DDIM out of range.
    let mask = vec![true; batch.images().dims().iter().product()];
    for method in [
        SamplingMethod::Naive,
        SamplingMethod::Cached,
        SamplingMethod::Ddim { steps: 0, eta: 0.0 },
        SamplingMethod::Ddim {
            steps: 5,
            eta: f64::NAN,
        },
    ] {
        assert!(
            matches!(
                model.complete(&batch, &mask, 0, method),
                Err(GenError::InvalidConfig(_))
            ),
            "{method:?}"
        );
        assert!(
            matches!(
                model.sample_with(1, 0, method),
                Err(GenError::InvalidConfig(_))
            ),
            "{method:?}"
        );
    }
    for k in [0, 20] {
        let options = BoundOptions {
            terms: BoundTerms::Sampled {
                k,
                stratified: true,
            },
            seed: 0,
        };
        assert!(matches!(
            model.variational_bound(&batch, options),
            Err(GenError::InvalidConfig(_))
        ));
    }
    let grey =
        ImageBatch::from_host(vec![0.5; 16], ImageShape::new(1, 4, 4), None, &device).unwrap();
    assert!(matches!(
        model.log_likelihood(&grey, &LikelihoodOptions::default()),
        Err(GenError::ValueOutOfRange { .. })
    ));
    let wrong =
        ImageBatch::from_host(vec![0.0; 64], ImageShape::new(1, 8, 8), None, &device).unwrap();
    assert!(matches!(
        model.loss(0, &wrong),
        Err(GenError::ShapeMismatch { .. })
    ));
}

#[test]
fn training_lowers_the_bound_and_the_average_follows_the_weights() {
    let _rng = device_rng_lock();
    let device = Device::flex().autodiff();
    let batch = binary_batch(&device);
    let mut model = random::build_with_seed(&device, 7, |device| {
        tiny_config(DataGrid::Binary)
            .with_ema_decay(0.5)
            .init(device)
    })
    .unwrap();
    let exact = BoundOptions {
        terms: BoundTerms::Exact,
        seed: 3,
    };
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let before = mean(model.variational_bound(&batch, exact).unwrap());
    let mut optimizer = AdamConfig::new().init();

    // One step: the average is 0.1·old + 0.9·new (warm-up decay min(0.5, 1/10)).
    let flatten = |unet: &UNet| {
        let mut all = Flatten(Vec::new());
        unet.visit(&mut all);
        host(Tensor::cat(all.0, 0))
    };
    let old = flatten(model.average_network());
    model = adam_step(model, &batch, &mut optimizer);
    let (new, average) = (flatten(model.network()), flatten(model.average_network()));
    assert_ne!(old, new, "the step moved the weights");
    for ((o, n), a) in old.iter().zip(&new).zip(&average) {
        assert!(
            (a - (0.1 * o + 0.9 * n)).abs() < 1e-6,
            "{a} vs 0.1·{o} + 0.9·{n}"
        );
    }
    for _ in 0..40 {
        model = adam_step(model, &batch, &mut optimizer);
    }
    let after = mean(model.variational_bound(&batch, exact).unwrap());
    assert!(after < before - 1.0, "bound before {before}, after {after}");
    // The trained network reads the step: the same x_t at t = 2 and t = 19 gets different
    // predictions (its output layer started at zero, so it was constant before training).
    let x_t = random::standard_normal([1, 1, 4, 4], &mut random::rng(6), &device);
    let at = |t: f32| {
        host4(
            model
                .network()
                .forward(x_t.clone(), Tensor::from_floats([t].as_slice(), &device)),
        )
    };
    let (early, late) = (at(2.0), at(19.0));
    let change = early
        .iter()
        .zip(&late)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(change > 1e-3, "ε̂ hardly depends on t: {change}");
    // The likelihood is minus the bound, a log-probability of binary images.
    let ll = model
        .log_likelihood(&batch, &LikelihoodOptions::default().with_seed(3))
        .unwrap();
    assert_eq!(ll.kind, LikelihoodKind::Elbo);
    assert_eq!(ll.scale, DensityScale::Discrete);
    assert!(
        ll.log_likelihood_nats
            .iter()
            .all(|v| v.is_finite() && *v < 0.0)
    );
    assert!(
        (ll.mean_nll_nats() - after).abs() < 1e-9,
        "T ≤ 32: the full sum"
    );

    // The average is saved and loaded with the model.
    let dir = std::env::temp_dir().join(format!("genmodels-diffusion-test-{}", std::process::id()));
    let inference = model.valid();
    inference.save(&dir).unwrap();
    let loaded = Diffusion::load(&dir, &Device::flex()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        flatten(loaded.average_network()),
        flatten(inference.average_network())
    );
    assert_eq!(host(loaded.ema_updates.val()), vec![41.0]);
}

#[test]
fn samples_lie_on_the_grid_repeat_with_the_seed_and_inpainting_keeps_what_is_observed() {
    let _rng = device_rng_lock();
    let device = Device::flex();
    for grid in [DataGrid::Binary, DataGrid::Grey256] {
        let model = tiny(grid, &device);
        let on_grid = |values: &[f64]| match grid {
            DataGrid::Binary => values.iter().all(|&v| v == 0.0 || v == 1.0),
            DataGrid::Grey256 => values.iter().all(|&v| {
                (0.0..=1.0).contains(&v) && (v * 255.0 - (v * 255.0).round()).abs() < 1e-3
            }),
        };
        let a = host4(model.sample(6, 1).unwrap());
        assert!(on_grid(&a));
        assert_eq!(a, host4(model.sample(6, 1).unwrap()));
        let d = host4(model.sample_ddim(6, 5, 0.5, 2).unwrap());
        assert!(on_grid(&d));
        assert_eq!(d, host4(model.sample_ddim(6, 5, 0.5, 2).unwrap()));
        // DDIM with η = 0 is a function of x_T.
        let x_t = random::standard_normal([6, 1, 4, 4], &mut random::rng(5), &device);
        assert_eq!(
            host4(
                model
                    .sample_ddim_from(x_t.clone(), 7, 0.0, random::rng(1))
                    .unwrap()
            ),
            host4(model.sample_ddim_from(x_t, 7, 0.0, random::rng(2)).unwrap())
        );

        let observed = match grid {
            DataGrid::Binary => binary_batch(&device),
            DataGrid::Grey256 => {
                let levels: Vec<u8> = (0..8 * 16).map(|i| (i * 37 % 256) as u8).collect();
                ImageBatch::from_levels(&levels, 255, ImageShape::new(1, 4, 4), None, &device)
                    .unwrap()
            }
        };
        let mask: Vec<bool> = (0..8 * 16).map(|i| (i / 4) % 2 == 0).collect();
        // The sampler interface draws what the named samplers draw.
        assert_eq!(
            host4(model.sample_with(3, 4, SamplingMethod::Ancestral).unwrap()),
            host4(model.sample_ancestral(3, 4).unwrap())
        );
        assert_eq!(
            host4(
                model
                    .sample_with(3, 4, SamplingMethod::Ddim { steps: 7, eta: 0.5 })
                    .unwrap()
            ),
            host4(model.sample_ddim(3, 7, 0.5, 4).unwrap())
        );
        // Inpainting keeps the observed pixels exactly, with either sampler.
        for method in [
            SamplingMethod::Ancestral,
            SamplingMethod::Ddim { steps: 7, eta: 0.5 },
        ] {
            let completed = host4(model.complete(&observed, &mask, 3, method).unwrap());
            let original = host4(observed.images().clone());
            assert!(on_grid(&completed));
            for ((c, o), &keep) in completed.iter().zip(&original).zip(&mask) {
                if keep {
                    assert_eq!(c, o);
                }
            }
        }
    }
}

#[test]
fn the_trainer_steps_the_average_checkpoints_and_resumes_it_and_scores_the_test_split() {
    let _rng = device_rng_lock();
    use genmodels_core::{InMemoryDataset, Trainer, TrainerConfig, init_seeded};
    let device = Device::flex();
    let images = to_host(binary_batch(&device).images().clone()).unwrap();
    let data = InMemoryDataset::new(images, ImageShape::new(1, 4, 4), None).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "genmodels-diffusion-trainer-{}",
        std::process::id()
    ));
    let trainer = Trainer::new(TrainerConfig {
        epochs: 2,
        batch_size: 4,
        learning_rate: 3e-3,
        seed: 1,
        checkpoint_dir: Some(dir.clone()),
        ..TrainerConfig::default()
    });
    let model = init_seeded(&tiny_config(DataGrid::Binary), 1, &device).unwrap();
    let trained = trainer.fit(model, &data, Some(&data), &device).unwrap();
    // Two epochs of two batches: four steps, four updates of the average.
    assert_eq!(trained.report.steps, 4);
    assert_eq!(host(trained.model.ema_updates.val()), vec![4.0]);
    let ll = trained.report.test_log_likelihood.unwrap();
    assert_eq!(ll.kind, LikelihoodKind::Elbo);
    assert_eq!(ll.len(), 8);
    let loaded = Diffusion::load(&dir, &device).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let flatten = |unet: &UNet| {
        let mut all = Flatten(Vec::new());
        unet.visit(&mut all);
        host(Tensor::cat(all.0, 0))
    };
    assert_eq!(
        flatten(loaded.average_network()),
        flatten(trained.model.average_network())
    );
    // One epoch, then a resumed second: the same average and count as the straight run.
    let first = Trainer::new(TrainerConfig {
        epochs: 1,
        ..trainer.config().clone()
    });
    let model = init_seeded(&tiny_config(DataGrid::Binary), 1, &device).unwrap();
    first.fit(model, &data, None, &device).unwrap();
    let resumed = trainer
        .resume::<DiffusionConfig>(&dir, &data, None, &device)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(host(resumed.model.ema_updates.val()), vec![4.0]);
    assert_eq!(
        flatten(resumed.model.average_network()),
        flatten(trained.model.average_network())
    );
    assert_ne!(
        flatten(trained.model.average_network()),
        flatten(trained.model.network())
    );
}

#[test]
fn super_resolution_keeps_the_low_pass_of_the_input_exactly_with_either_sampler() {
    use genmodels_core::capabilities::{downsample, low_pass};
    let _rng = device_rng_lock();
    let device = Device::flex();
    // Grey block means of the binary bars: 2×2 images for factor 2, 1×1 for factor 4.
    let truth = binary_batch(&device).images().clone();
    for grid in [DataGrid::Binary, DataGrid::Grey256] {
        let model = tiny(grid, &device);
        for factor in [2, 4] {
            let low_res = downsample(truth.clone(), factor).unwrap();
            let wanted = host4(low_res.clone());
            for method in [
                SamplingMethod::Ancestral,
                SamplingMethod::Ddim { steps: 7, eta: 0.0 },
                SamplingMethod::Ddim { steps: 5, eta: 0.5 },
            ] {
                let result = model
                    .super_resolve(low_res.clone(), factor, 3, method)
                    .unwrap();
                let continuous = result.continuous.clone().unwrap();
                assert_eq!(continuous.dims(), [8, 1, 4, 4]);
                let means = host4(downsample(continuous.clone(), factor).unwrap());
                let gap = means
                    .iter()
                    .zip(&wanted)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    gap < 1e-5,
                    "{grid:?}, factor {factor}, {method:?}: block means off by {gap}"
                );
                // The detail is the model's: the result is not its own low-pass.
                let detail = host4(continuous.clone() - low_pass(continuous, factor).unwrap());
                assert!(detail.iter().any(|d| d.abs() > 1e-3), "{grid:?} {method:?}");
                // The images are read out on the grid, and repeat with the seed.
                let images = host4(result.images);
                assert!(images.iter().all(|&v| (0.0..=1.0).contains(&v)));
                if grid == DataGrid::Binary {
                    assert!(images.iter().all(|&v| v == 0.0 || v == 1.0));
                }
                let again = model
                    .super_resolve(low_res.clone(), factor, 3, method)
                    .unwrap();
                assert_eq!(images, host4(again.images));
            }
        }
    }
}

#[test]
fn bad_super_resolution_inputs_are_typed_errors() {
    use genmodels_core::capabilities::downsample;
    let _rng = device_rng_lock();
    let device = Device::flex();
    let model = tiny(DataGrid::Binary, &device);
    let truth = binary_batch(&device).images().clone();
    let low_res = downsample(truth.clone(), 2).unwrap();
    let resolve = |low: Tensor<4>, factor, method| model.super_resolve(low, factor, 0, method);
    let ddim = SamplingMethod::Ddim { steps: 3, eta: 0.0 };
    // Factors that leave nothing to resolve or do not divide 4.
    for factor in [0, 1, 3] {
        assert!(matches!(
            resolve(low_res.clone(), factor, ddim),
            Err(GenError::InvalidConfig(_))
        ));
    }
    // Low-resolution images of the wrong size for the factor: 2×2 for factor 4.
    assert!(matches!(
        resolve(low_res.clone(), 4, ddim),
        Err(GenError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        resolve(truth, 2, ddim),
        Err(GenError::ShapeMismatch { .. })
    ));
    let mut values = host4(low_res.clone());
    values[5] = f64::NAN;
    let bad = |values: &[f64]| {
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Tensor::<4>::from_data(TensorData::new(values, [8, 1, 2, 2]), &device)
    };
    assert!(matches!(
        resolve(bad(&values), 2, ddim),
        Err(GenError::NonFiniteInput { .. })
    ));
    values[5] = -0.5;
    assert!(matches!(
        resolve(bad(&values), 2, ddim),
        Err(GenError::ValueOutOfRange { .. })
    ));
    for method in [
        SamplingMethod::Naive,
        SamplingMethod::Ddim {
            steps: 21,
            eta: 0.0,
        },
        SamplingMethod::Ddim {
            steps: 3,
            eta: -1.0,
        },
    ] {
        assert!(matches!(
            resolve(low_res.clone(), 2, method),
            Err(GenError::InvalidConfig(_))
        ));
    }
}

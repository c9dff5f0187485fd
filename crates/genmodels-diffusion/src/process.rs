//! The diffusion maths on tensors, for any noise predictor: forward noising, the reverse
//! step, the variational bound, ancestral and DDIM sampling, inpainting and super-resolution.
//!
//! Images here are on the model's scale, `[−1, 1]` (data `x ∈ [0, 1]` becomes `2x − 1`).

use burn::config::Config;
use burn::tensor::{Bool, Tensor, TensorData};
use genmodels_core::capabilities::low_pass;
use genmodels_core::distributions::{discretized_gaussian_log_prob_elements, log_ndtr};
use genmodels_core::random;
use rand::Rng;
use rand::rngs::StdRng;
use std::f64::consts::PI;

use crate::schedule::{ReverseVariance, Schedule};

/// A noise predictor `ε̂(x_t, t)`: the trained network, or a closed form in tests.
pub trait NoisePredictor {
    /// The predicted noise of each noisy image at its own step.
    ///
    /// # Shapes
    /// - noisy: `[N, C, H, W]`
    /// - timesteps: `N` steps, each in `1..=T`
    /// - output: `[N, C, H, W]`
    fn predict_noise(&self, noisy: Tensor<4>, timesteps: &[usize]) -> Tensor<4>;
}

impl<F: Fn(Tensor<4>, &[usize]) -> Tensor<4>> NoisePredictor for F {
    fn predict_noise(&self, noisy: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
        self(noisy, timesteps)
    }
}

/// The grid the data lie on, which decides the decoder `p(x_0|x_1)` of the bound and how
/// samples are read out.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum DataGrid {
    /// Binary pixels, `{0, 1}` (`{−1, 1}` on the model's scale).
    Binary,
    /// 8-bit grey levels `v/255`.
    Grey256,
}

/// The decoder `p(x_0|x_1) = ∫_{bin of x_0} N(x; μ_θ(x_1, 1), σ_1²) dx` of the bound's last
/// term, on the model's `[−1, 1]` scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// Two bins split at 0: `P(x_0 = 1) = Φ(μ/σ)`, `P(x_0 = −1) = Φ(−μ/σ)`.
    Binary,
    /// 256 bins of width `2/255` around the levels `2v/255 − 1`, the edge bins open
    /// (Ho et al. 2020), via [`discretized_gaussian_log_prob_elements`] on the `[0, 1]` scale.
    Grey256,
    /// No bins: the Gaussian density `N(x_0; μ, σ²)` itself, for continuous data. The bound
    /// is then one on `−log p(x_0)` as a density.
    Continuous,
}

impl From<DataGrid> for Decoder {
    fn from(grid: DataGrid) -> Self {
        match grid {
            DataGrid::Binary => Self::Binary,
            DataGrid::Grey256 => Self::Grey256,
        }
    }
}

impl Decoder {
    /// `log p(x_0|x_1)` per pixel for decoder means `mean` and a variance `variance` (on the
    /// model's scale).
    ///
    /// # Shapes
    /// - x0, mean: `[N, C, H, W]`
    /// - output: `[N, C, H, W]`, log-probabilities (log-densities for
    ///   [`Decoder::Continuous`])
    pub fn log_prob_elements(self, x0: Tensor<4>, mean: Tensor<4>, variance: f64) -> Tensor<4> {
        match self {
            Self::Binary => {
                // x₀ ∈ {−1, 1}: the mass on x₀'s side of 0 is Φ(x₀·μ/σ).
                log_ndtr(x0.sign() * mean / variance.sqrt())
            }
            Self::Grey256 => {
                // On the [0, 1] scale of the core function: x = (x₀ + 1)/2, variance / 4.
                let log_var = mean.ones_like() * (variance.ln() - 4f64.ln());
                discretized_gaussian_log_prob_elements(
                    (x0 + 1.0) * 0.5,
                    (mean + 1.0) * 0.5,
                    log_var,
                )
            }
            Self::Continuous => {
                ((x0 - mean).powi_scalar(2) / variance + variance.ln() + (2.0 * PI).ln()) * -0.5
            }
        }
    }
}

/// Which terms of the bound are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundTerms {
    /// Every `t` of `1..=T`: `T` network passes per image.
    Exact,
    /// `L_0` exactly and an unbiased estimate of `Σ_{t=2}^T L_{t−1}` from `k` steps per
    /// image: drawn uniformly from `2..=T` (the sum of their terms scaled by `(T − 1)/k`),
    /// or, `stratified`, one uniformly from each of `k` near-equal runs of consecutive steps
    /// (each term weighted by its run's length), which has lower variance. `k + 1` network
    /// passes per image.
    Sampled {
        /// Terms per image besides `L_0` (at most `T − 1` when stratified).
        k: usize,
        /// One draw per run of steps instead of `k` independent draws.
        stratified: bool,
    },
}

/// How the variational bound is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundOptions {
    /// The terms summed.
    pub terms: BoundTerms,
    /// Seed of the forward noise and of the drawn steps.
    pub seed: u64,
}

/// The reverse process of a [`Schedule`]: `p_θ(x_{t−1}|x_t) = N(μ_θ(x_t, t), σ_t² I)` with
/// the ε-parameterisation of Ho et al. (2020),
///
/// ```text
/// x̂_0 = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t,    μ_θ(x_t, t) = μ̃_t(x̂_0, x_t)
///                                                = (x_t − β_t/√(1 − ᾱ_t) · ε̂)/√α_t,
/// ```
///
/// (optionally with `x̂_0` clipped to `[−1, 1]` when sampling), and `p(x_T) = N(0, I)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianDiffusion {
    /// The forward process.
    pub schedule: Schedule,
    /// The reverse variances `σ_t²`.
    pub reverse_variance: ReverseVariance,
}

/// A per-image coefficient as a `[N, 1, 1, 1]` tensor.
fn per_image(values: impl IntoIterator<Item = f64>, like: &Tensor<4>) -> Tensor<4> {
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1, 1, 1]), &like.device())
}

/// Sums each image's values: `[N, C, H, W]` → `[N]`.
fn sum_per_image(x: Tensor<4>) -> Tensor<1> {
    let n = x.dims()[0];
    x.reshape([n as i64, -1]).sum_dim(1).squeeze_dim(1)
}

impl GaussianDiffusion {
    /// The process of `schedule` with reverse variances `reverse_variance`.
    pub fn new(schedule: Schedule, reverse_variance: ReverseVariance) -> Self {
        Self {
            schedule,
            reverse_variance,
        }
    }

    /// `T`.
    pub fn timesteps(&self) -> usize {
        self.schedule.timesteps()
    }

    /// `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`, a draw of `q(x_t|x_0)` from the noise `ε`.
    ///
    /// # Shapes
    /// - x0, noise: `[N, C, H, W]`; timesteps: `N` steps in `0..=T`
    /// - output: `[N, C, H, W]`
    pub fn q_sample(&self, x0: Tensor<4>, timesteps: &[usize], noise: Tensor<4>) -> Tensor<4> {
        let s = &self.schedule;
        let signal = per_image(timesteps.iter().map(|&t| s.alpha_bar(t).sqrt()), &x0);
        let scale = per_image(
            timesteps.iter().map(|&t| (1.0 - s.alpha_bar(t)).sqrt()),
            &x0,
        );
        x0 * signal + noise * scale
    }

    /// The forward posterior `q(x_{t−1}|x_t, x_0)`: its mean `μ̃_t` and (per image) variance
    /// `β̃_t`.
    ///
    /// # Shapes
    /// - x0, xt: `[N, C, H, W]`; timesteps: `N` steps in `1..=T`
    /// - output: the mean `[N, C, H, W]` and `N` variances
    pub fn q_posterior(
        &self,
        x0: Tensor<4>,
        xt: Tensor<4>,
        timesteps: &[usize],
    ) -> (Tensor<4>, Vec<f64>) {
        let s = &self.schedule;
        let coefficients: Vec<(f64, f64)> = timesteps
            .iter()
            .map(|&t| s.posterior_mean_coefficients(t))
            .collect();
        let c0 = per_image(coefficients.iter().map(|c| c.0), &x0);
        let ct = per_image(coefficients.iter().map(|c| c.1), &x0);
        let variances = timesteps.iter().map(|&t| s.posterior_variance(t)).collect();
        (x0 * c0 + xt * ct, variances)
    }

    /// The denoised estimate `x̂_0 = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t`, clipped to `[−1, 1]` when
    /// `clip`.
    ///
    /// # Shapes
    /// - xt, noise: `[N, C, H, W]`; timesteps: `N` steps in `1..=T`
    /// - output: `[N, C, H, W]`
    pub fn predict_x0(
        &self,
        xt: Tensor<4>,
        timesteps: &[usize],
        noise: Tensor<4>,
        clip: bool,
    ) -> Tensor<4> {
        let s = &self.schedule;
        let recip = per_image(timesteps.iter().map(|&t| 1.0 / s.alpha_bar(t).sqrt()), &xt);
        let scale = per_image(
            timesteps
                .iter()
                .map(|&t| ((1.0 - s.alpha_bar(t)) / s.alpha_bar(t)).sqrt()),
            &xt,
        );
        let x0 = xt * recip - noise * scale;
        if clip { x0.clamp(-1.0, 1.0) } else { x0 }
    }

    /// The reverse mean `μ_θ(x_t, t) = μ̃_t(x̂_0, x_t)` from the predicted noise.
    ///
    /// # Shapes
    /// - xt, noise: `[N, C, H, W]`; timesteps: `N` steps in `1..=T`
    /// - output: `[N, C, H, W]`
    pub fn reverse_mean(
        &self,
        xt: Tensor<4>,
        timesteps: &[usize],
        noise: Tensor<4>,
        clip: bool,
    ) -> Tensor<4> {
        let x0 = self.predict_x0(xt.clone(), timesteps, noise, clip);
        self.q_posterior(x0, xt, timesteps).0
    }

    /// The prior term `L_T = KL(q(x_T|x_0) ‖ N(0, I))
    /// = ½ Σ_pixels (ᾱ_T x_0² + (1 − ᾱ_T) − 1 − log(1 − ᾱ_T))`, in nats per image.
    ///
    /// # Shapes
    /// - x0: `[N, C, H, W]`
    /// - output: `[N]`
    pub fn prior_term(&self, x0: Tensor<4>) -> Tensor<1> {
        let alpha_bar = self.schedule.alpha_bar(self.timesteps());
        let constant = -alpha_bar - (1.0 - alpha_bar).ln();
        sum_per_image((x0.powi_scalar(2) * alpha_bar).add_scalar(constant) * 0.5)
    }

    /// Each image's term at its step `t`, in nats: for `t ≥ 2`,
    /// `L_{t−1} = KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t))
    /// = ½ Σ_pixels (log(σ_t²/β̃_t) + (β̃_t + (μ̃_t − μ_θ)²)/σ_t² − 1)`; for `t = 1`,
    /// `L_0 = −log p(x_0|x_1)` under `decoder`. `x_t` is drawn from `q(x_t|x_0)` with `noise`.
    /// No clipping of `x̂_0`: the bound is that of the unclipped model.
    ///
    /// # Shapes
    /// - x0, noise: `[N, C, H, W]`; timesteps: `N` steps in `1..=T`
    /// - output: `[N]`
    pub fn step_terms(
        &self,
        predictor: &impl NoisePredictor,
        x0: Tensor<4>,
        timesteps: &[usize],
        noise: Tensor<4>,
        decoder: Decoder,
    ) -> Tensor<1> {
        let s = &self.schedule;
        let xt = self.q_sample(x0.clone(), timesteps, noise);
        let predicted = predictor.predict_noise(xt.clone(), timesteps);
        let model_mean = self.reverse_mean(xt.clone(), timesteps, predicted, false);
        let (true_mean, true_variances) = self.q_posterior(x0.clone(), xt, timesteps);
        let variances: Vec<f64> = timesteps
            .iter()
            .map(|&t| s.reverse_variance(t, self.reverse_variance))
            .collect();
        let is_first: Vec<f64> = timesteps
            .iter()
            .map(|&t| f64::from(u8::from(t == 1)))
            .collect();
        let any_first = timesteps.contains(&1);
        let any_later = timesteps.iter().any(|&t| t > 1);
        let mut terms = None;
        if any_later {
            // The KL, with the (t = 1) posterior variance 0 replaced by 1 where its term is
            // not used, so that its logarithm stays finite.
            let safe_true: Vec<f64> = true_variances
                .iter()
                .zip(timesteps)
                .map(|(&v, &t)| if t == 1 { 1.0 } else { v })
                .collect();
            let inv_var = per_image(variances.iter().map(|v| 1.0 / v), &x0);
            let constant = per_image(
                variances
                    .iter()
                    .zip(&safe_true)
                    .map(|(v, tv)| (v / tv).ln() + tv / v - 1.0),
                &x0,
            );
            let kl = ((true_mean - model_mean.clone()).powi_scalar(2) * inv_var + constant) * 0.5;
            let later = per_image(is_first.iter().map(|f| 1.0 - f), &x0);
            terms = Some(kl * later);
        }
        if any_first {
            // The decoder term is needed at t = 1 alone, where σ_1² is one number.
            let decoder_variance = s.reverse_variance(1, self.reverse_variance);
            let nll = decoder.log_prob_elements(x0.clone(), model_mean, decoder_variance) * -1.0;
            let nll = nll * per_image(is_first, &x0);
            terms = Some(match terms {
                Some(kl) => kl + nll,
                None => nll,
            });
        }
        sum_per_image(terms.expect("every step is 1 or later"))
    }

    /// The variational bound on `−log p(x_0)` per image, in nats (Ho et al. 2020, eq. 5):
    ///
    /// ```text
    /// L = L_T + Σ_{t=2}^T L_{t−1} + L_0 ≥ −log p_θ(x_0),
    /// ```
    ///
    /// with `L_T` in closed form ([`prior_term`](Self::prior_term)) and the other terms from
    /// [`step_terms`](Self::step_terms), all of them ([`BoundTerms::Exact`]) or an unbiased
    /// sample of them ([`BoundTerms::Sampled`]). Each term draws its own `x_t ~ q(x_t|x_0)`,
    /// so either way it is an unbiased estimate of the bound. A probability of the binary or
    /// 8-bit image for [`Decoder::Binary`] and [`Decoder::Grey256`].
    ///
    /// # Shapes
    /// - x0: `[N, C, H, W]` on the model's scale
    /// - output: `[N]`
    ///
    /// # Panics
    /// If `k = 0`, or a stratified `k > T − 1` (with `T ≥ 2`): callers check the options
    /// first.
    pub fn variational_bound(
        &self,
        predictor: &impl NoisePredictor,
        x0: Tensor<4>,
        decoder: Decoder,
        options: BoundOptions,
    ) -> Tensor<1> {
        let t_max = self.timesteps();
        let dims = x0.dims();
        let n = dims[0];
        let device = x0.device();
        let mut rng = random::rng(options.seed);
        let mut total = self.prior_term(x0.clone());
        match options.terms {
            BoundTerms::Exact => {
                for t in 1..=t_max {
                    let noise = random::standard_normal(dims, &mut rng, &device);
                    total =
                        total + self.step_terms(predictor, x0.clone(), &vec![t; n], noise, decoder);
                }
            }
            BoundTerms::Sampled { k, stratified } => {
                // L_0 always, exactly: it is the largest term by far (a log-density at the
                // scale of σ_1), and drawing it with probability 1/T would dominate the
                // estimate's variance.
                let noise = random::standard_normal(dims, &mut rng, &device);
                total = total + self.step_terms(predictor, x0.clone(), &vec![1; n], noise, decoder);
                let later = t_max - 1;
                if later == 0 {
                    return total;
                }
                assert!(
                    k >= 1 && (!stratified || k <= later),
                    "checked by the caller"
                );
                for j in 0..k {
                    let (timesteps, weights): (Vec<usize>, Vec<f64>) = (0..n)
                        .map(|_| {
                            if stratified {
                                // Run j is steps 1 + (j·(T−1)/k, (j+1)·(T−1)/k].
                                let (low, high) = (j * later / k, (j + 1) * later / k);
                                (1 + rng.random_range(low + 1..=high), (high - low) as f64)
                            } else {
                                (1 + rng.random_range(1..=later), later as f64 / k as f64)
                            }
                        })
                        .unzip();
                    let noise = random::standard_normal(dims, &mut rng, &device);
                    let terms = self.step_terms(predictor, x0.clone(), &timesteps, noise, decoder);
                    let weights: Vec<f32> = weights.into_iter().map(|w| w as f32).collect();
                    total = total + terms * Tensor::<1>::from_floats(weights.as_slice(), &device);
                }
            }
        }
        total
    }

    /// Ancestral sampling (Ho et al. 2020, algorithm 2) from `x_T`: for `t = T, …, 1`,
    /// `x_{t−1} = μ_θ(x_t, t) + σ_t z` with `z ~ N(0, I)`, and no noise at the last step,
    /// which returns the decoder's mean `μ_θ(x_1, 1)` (with `clip`, `x̂_0` is clipped to
    /// `[−1, 1]` in every step's mean).
    ///
    /// # Shapes
    /// - x_t: `[N, C, H, W]`, the start `x_T`
    /// - output: `[N, C, H, W]` on the model's scale
    pub fn sample_ancestral(
        &self,
        predictor: &impl NoisePredictor,
        x_t: Tensor<4>,
        clip: bool,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        self.ancestral(predictor, x_t, clip, None, rng)
    }

    fn ancestral(
        &self,
        predictor: &impl NoisePredictor,
        mut x: Tensor<4>,
        clip: bool,
        guide: Option<Guide<'_>>,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        let dims = x.dims();
        let device = x.device();
        for t in (1..=self.timesteps()).rev() {
            let timesteps = vec![t; dims[0]];
            let predicted = predictor.predict_noise(x.clone(), &timesteps);
            x = self.reverse_mean(x, &timesteps, predicted, clip);
            if t > 1 {
                let std = self
                    .schedule
                    .reverse_variance(t, self.reverse_variance)
                    .sqrt();
                x = x + random::standard_normal(dims, rng, &device) * std;
            }
            if let Some(guide) = guide {
                x = self.guide(x, guide, t - 1, rng);
            }
        }
        x
    }

    /// DDIM sampling (Song et al. 2021) on `steps` evenly spaced steps
    /// `τ_i = round(i·T/S)`, `i = 1..=S`: from `x_{τ_i}`, with `x̂_0` as in
    /// [`predict_x0`](Self::predict_x0) and `τ_0 = 0`,
    ///
    /// ```text
    /// σ_i = η √((1 − ᾱ_{τ_{i−1}})/(1 − ᾱ_{τ_i})) √(1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}),
    /// x_{τ_{i−1}} = √ᾱ_{τ_{i−1}} x̂_0 + √(1 − ᾱ_{τ_{i−1}} − σ_i²) ε̂ + σ_i z.
    /// ```
    ///
    /// With `clip`, `x̂_0` is clipped to `[−1, 1]` and `ε̂` in the direction term is replaced
    /// by the noise the clipped `x̂_0` implies, `(x_{τ_i} − √ᾱ_{τ_i} x̂_0)/√(1 − ᾱ_{τ_i})`
    /// (as GLIDE does), so that clipping changes each step by an amount that shrinks with the
    /// step, as in ancestral sampling.
    ///
    /// `η = 0` is deterministic given `x_T`; `η = 1` with `S = T` is ancestral sampling with
    /// `σ_t² = β̃_t` ([`ReverseVariance::PosteriorVariance`]), clipped or not. The last step
    /// returns `x̂_0`.
    ///
    /// # Shapes
    /// - x_t: `[N, C, H, W]`, the start `x_T`
    /// - output: `[N, C, H, W]` on the model's scale
    ///
    /// # Panics
    /// If `steps` is 0 or above `T`: callers check it first.
    pub fn sample_ddim(
        &self,
        predictor: &impl NoisePredictor,
        x: Tensor<4>,
        steps: usize,
        eta: f64,
        clip: bool,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        self.ddim(predictor, x, steps, eta, clip, None, rng)
    }

    #[allow(clippy::too_many_arguments)]
    fn ddim(
        &self,
        predictor: &impl NoisePredictor,
        mut x: Tensor<4>,
        steps: usize,
        eta: f64,
        clip: bool,
        guide: Option<Guide<'_>>,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        let t_max = self.timesteps();
        assert!(steps >= 1 && steps <= t_max, "checked by the caller");
        let taus: Vec<usize> = (0..=steps)
            .map(|i| ((i as f64) * t_max as f64 / steps as f64).round() as usize)
            .collect();
        let dims = x.dims();
        let device = x.device();
        let s = &self.schedule;
        for i in (1..=steps).rev() {
            let (t, previous) = (taus[i], taus[i - 1]);
            let timesteps = vec![t; dims[0]];
            let predicted = predictor.predict_noise(x.clone(), &timesteps);
            let x0 = self.predict_x0(x.clone(), &timesteps, predicted.clone(), clip);
            let (a_t, a_prev) = (s.alpha_bar(t), s.alpha_bar(previous));
            // With a clipped x̂_0 the direction term takes the noise that the clipped x̂_0
            // implies, so that (x̂_0, ε) still give back x_t. Keeping the network's ε̂ instead
            // moves every step by √ᾱ_{τ_{i−1}} times the clipped amount, whatever the step
            // size: the error grows with S and wrecked deterministic DDIM at S = T.
            let noise = if clip {
                (x.clone() - x0.clone() * a_t.sqrt()) / (1.0 - a_t).sqrt()
            } else {
                predicted
            };
            let sigma =
                eta * ((1.0 - a_prev) / (1.0 - a_t)).sqrt() * (1.0 - a_t / a_prev).max(0.0).sqrt();
            let direction = (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
            x = x0 * a_prev.sqrt() + noise * direction;
            if sigma > 0.0 {
                x = x + random::standard_normal(dims, rng, &device) * sigma;
            }
            if let Some(guide) = guide {
                x = self.guide(x, guide, previous, rng);
            }
        }
        x
    }

    /// Inpainting by replacement: ancestral sampling (`ddim = None`) or DDIM with `(steps, η)`
    /// in which, after every step to `x_s` (and at the start `x_T`), the observed pixels are
    /// replaced by a draw of `q(x_s|x_0)` of the observation, its forward-noised copy at that
    /// step's noise level; at `s = 0` that is the observation itself, so the result keeps it
    /// exactly.
    ///
    /// # Shapes
    /// - observed: `[N, C, H, W]` on the model's scale; mask: the same, true where observed
    /// - output: `[N, C, H, W]`
    ///
    /// # Panics
    /// If DDIM's `steps` is 0 or above `T`: callers check it first.
    pub fn complete(
        &self,
        predictor: &impl NoisePredictor,
        observed: &Tensor<4>,
        mask: &Tensor<4, Bool>,
        ddim: Option<(usize, f64)>,
        clip: bool,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        self.guided(
            predictor,
            Guide::Replace { observed, mask },
            ddim,
            clip,
            rng,
        )
    }

    /// Super-resolution by ILVR (Choi et al. 2021, "ILVR: Conditioning Method for Denoising
    /// Diffusion Probabilistic Models"): ancestral sampling (`ddim = None`) or DDIM with
    /// `(steps, η)` in which, after every step to `x_s` (and at the start `x_T`), the sample's
    /// low-pass is replaced by that of `y_s`, a draw of `q(y_s|y_0)` of the reference `y_0`:
    ///
    /// ```text
    /// x_s ← x_s − φ(x_s) + φ(y_s),
    /// ```
    ///
    /// with `φ` the low-pass of [`low_pass`] by `factor` (`f×f` block means, repeated), a
    /// projection. At `s = 0`, `y_0` is the reference itself, so the result's low-pass equals
    /// `φ(y_0)` exactly (up to rounding): its `f×f` block means are the reference's.
    ///
    /// # Shapes
    /// - reference: `[N, C, H, W]` on the model's scale, e.g. the low-resolution image
    ///   upsampled ([`upsample_nearest`](genmodels_core::capabilities::upsample_nearest))
    ///   and scaled to `[−1, 1]`
    /// - output: `[N, C, H, W]`
    ///
    /// # Panics
    /// If `factor` does not divide `H` and `W`, or DDIM's `steps` is 0 or above `T`: callers
    /// check them first.
    pub fn super_resolve(
        &self,
        predictor: &impl NoisePredictor,
        reference: &Tensor<4>,
        factor: usize,
        ddim: Option<(usize, f64)>,
        clip: bool,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        let guide = Guide::LowPass { reference, factor };
        self.guided(predictor, guide, ddim, clip, rng)
    }

    /// Either sampler from `x_T ~ N(0, I)`, guided after every step (and at the start).
    fn guided(
        &self,
        predictor: &impl NoisePredictor,
        guide: Guide<'_>,
        ddim: Option<(usize, f64)>,
        clip: bool,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        let target = match guide {
            Guide::Replace { observed, .. } => observed,
            Guide::LowPass { reference, .. } => reference,
        };
        let start = random::standard_normal(target.dims(), rng, &target.device());
        let start = self.guide(start, guide, self.timesteps(), rng);
        match ddim {
            None => self.ancestral(predictor, start, clip, Some(guide), rng),
            Some((steps, eta)) => self.ddim(predictor, start, steps, eta, clip, Some(guide), rng),
        }
    }

    /// `x_t` brought in line with what is known, at step `t`.
    fn guide(&self, x: Tensor<4>, guide: Guide<'_>, t: usize, rng: &mut StdRng) -> Tensor<4> {
        match guide {
            Guide::Replace { observed, mask } => self.replace_observed(x, observed, mask, t, rng),
            Guide::LowPass { reference, factor } => {
                let noised = self.noised(reference, t, rng);
                let phi = |v: Tensor<4>| low_pass(v, factor).expect("the caller checks the factor");
                x.clone() - phi(x) + phi(noised)
            }
        }
    }

    /// A draw of `q(x_t|x_0)` for `x_0 = clean`; `clean` itself at `t = 0`.
    fn noised(&self, clean: &Tensor<4>, t: usize, rng: &mut StdRng) -> Tensor<4> {
        if t == 0 {
            return clean.clone();
        }
        let dims = clean.dims();
        let noise = random::standard_normal(dims, rng, &clean.device());
        self.q_sample(clean.clone(), &vec![t; dims[0]], noise)
    }

    fn replace_observed(
        &self,
        x: Tensor<4>,
        observed: &Tensor<4>,
        mask: &Tensor<4, Bool>,
        t: usize,
        rng: &mut StdRng,
    ) -> Tensor<4> {
        let noised = self.noised(observed, t, rng);
        x.mask_where(mask.clone(), noised)
    }
}

/// What guides a sampler after each step: the observed pixels of inpainting, or the low-pass
/// of super-resolution.
#[derive(Clone, Copy)]
enum Guide<'a> {
    /// Replace the observed pixels by their forward-noised copy.
    Replace {
        observed: &'a Tensor<4>,
        mask: &'a Tensor<4, Bool>,
    },
    /// Replace the low-pass by the forward-noised reference's (ILVR).
    LowPass {
        reference: &'a Tensor<4>,
        factor: usize,
    },
}

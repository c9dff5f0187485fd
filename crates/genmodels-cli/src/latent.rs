//! `genmodels latent`: latent control measured. Class arithmetic (add the mean code of class
//! `a` minus that of class `b` to the codes of `b` digits: how often does the judge call the
//! result an `a`?), attribute vectors (thickness and slant: does moving along the direction
//! move the attribute, and keep the digit?), interpolation grids and, for a model with class
//! labels, a class-conditional sheet. The measures are [`genmodels::eval::latent`]'s; the
//! labels of generated images are the bundled judge's.
//!
//! Where the codes come from:
//! - a model with an encoder (the VAE, the AE): the codes of the training digits (posterior
//!   means, codes), labelled with their own labels; the moved items are test digits drawn
//!   with the seed;
//! - a GAN: prior draws (seed `s`) whose image the judge calls a class with at least
//!   `--confidence`, labelled by the judge; the moved items are confident draws of seed
//!   `s + 1`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use genmodels::burn::tensor::{Device, Tensor, TensorData};
use genmodels::eval::latent::{attribute_direction, class_means, ink, norm, slant, spearman};
use genmodels::eval::probe::labelled_subset;
use genmodels::eval::quality::Judge;
use genmodels::prelude::*;
use genmodels::registry::{self, Entry, Latent, ModelVisitor, Registered};
use genmodels::report::image_output::{GridLayout, save_image_grid};
use genmodels_core::batch::to_host;
use genmodels_core::fs::{write_atomic, write_json_atomic};
use genmodels_core::progress::Progress;
use serde::Serialize;

use crate::data::{datasets, load_mnist};
use crate::{DataArgs, ModelSource};

/// The digit classes (the judge's).
const CLASSES: usize = 10;
/// The side of a digit.
const SIDE: usize = 28;
/// Pixels per digit.
const PIXELS: usize = SIDE * SIDE;
/// Codes per decoder call.
const BATCH: usize = 500;
/// How far along an attribute vector the sweeps move a code, in units of the vector (the
/// vector itself goes from the bottom quarter's mean code to the top quarter's).
pub const ALPHAS: [f64; 7] = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5];
/// Prior draws whose classes give the chance rate of each class.
const PRIOR_DRAWS: usize = 2_000;
/// Rows and steps of the interpolation grid.
const PATHS: (usize, usize) = (10, 10);
/// Samples per class on the class-conditional sheet.
const CONDITIONAL_COLUMNS: usize = 10;

#[derive(clap::Args, Debug, Clone)]
pub struct LatentArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder: latent.md, latent.json, arithmetic.png, thickness.png, slant.png,
    /// interpolation.png (and conditional.png for a model with class labels).
    #[arg(long, default_value = "runs/latent")]
    pub out: PathBuf,
    /// Items moved per class: test digits of each class drawn with --seed (a model with an
    /// encoder) or the first confident draws of each class (a GAN).
    #[arg(long, default_value_t = 50)]
    pub per_class: usize,
    /// A GAN's prior draws labelled by the judge, from which the class means and attribute
    /// vectors are computed; as many again (at least 30 per item) give the items.
    #[arg(long, default_value_t = 5_000)]
    pub draws: usize,
    /// The judge's probability a generated image's class needs for the image to count as
    /// that class (a GAN's labelled draws); 0 keeps every draw with its most probable class.
    #[arg(long, default_value_t = 0.9)]
    pub confidence: f64,
    /// Seed of the items, the draws, the random control directions and the GANs'
    /// interpolation paths.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What `genmodels latent` refuses.
#[derive(Debug, thiserror::Error)]
pub enum LatentError {
    /// The model has neither a latent code nor class labels.
    #[error(
        "the {label} (`{name}`) has no latent code to move in and no class labels to sample \
         with; models with a latent code: {with}"
    )]
    NoLatentControl {
        /// The model's label.
        label: &'static str,
        /// Its entry.
        name: &'static str,
        /// The entries that have a latent code.
        with: String,
    },
    /// An argument out of its range.
    #[error("--{flag} {value}: {reason}")]
    BadArgument {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// Images the judge cannot read.
    #[error("the {label} makes {shape} images; latent control is measured on 1×28×28 digits")]
    NotDigits {
        /// The model's label.
        label: &'static str,
        /// Its image shape.
        shape: String,
    },
}

impl LatentArgs {
    fn check(&self) -> Result<(), LatentError> {
        let bad = |flag, value: String, reason| {
            Err(LatentError::BadArgument {
                flag,
                value,
                reason,
            })
        };
        if self.per_class == 0 {
            return bad("per-class", "0".into(), "move at least one item per class");
        }
        if self.draws < CLASSES {
            return bad(
                "draws",
                self.draws.to_string(),
                "draw at least 10 codes, one per class at best",
            );
        }
        if !(0.0..1.0).contains(&self.confidence) {
            return bad(
                "confidence",
                self.confidence.to_string(),
                "a probability in [0, 1): 0 keeps every draw",
            );
        }
        Ok(())
    }
}

pub fn latent(args: &LatentArgs) -> anyhow::Result<()> {
    args.check()?;
    let (dir, _) = args.source.dir()?;
    let entry = crate::commands::checkpoint_entry(&dir)?;
    struct Visit<'a> {
        dir: &'a Path,
        args: &'a LatentArgs,
    }
    impl ModelVisitor for Visit<'_> {
        type Output = anyhow::Result<()>;
        fn visit<M: Registered>(self, entry: &'static Entry) -> anyhow::Result<()> {
            latent_model::<M>(entry, self.dir, self.args)
        }
    }
    entry.visit(Visit { dir: &dir, args })
}

/// The names of the models with a latent code, for the error of one without.
fn models_with_a_latent_code() -> String {
    struct Has;
    impl ModelVisitor for Has {
        type Output = bool;
        fn visit<M: Registered>(self, _: &'static Entry) -> bool {
            M::CAPABILITIES.latent.is_some()
        }
    }
    registry::ENTRIES
        .iter()
        .filter(|e| e.visit(Has))
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole report (`latent.json`).
#[derive(Debug, Serialize)]
struct Report {
    model: String,
    checkpoint: String,
    seed: u64,
    latent_size: Option<usize>,
    /// Where the codes and their labels come from.
    codes: Option<String>,
    arithmetic: Option<Arithmetic>,
    attributes: Vec<AttributeSweep>,
    interpolation: Option<Interpolation>,
    conditional: Option<Conditional>,
    /// What was not measured, and why.
    notes: Vec<String>,
    seconds: f64,
}

/// Class arithmetic: `z + mean(a) − mean(b)` for items `z` of class `b`, every `a ≠ b`.
#[derive(Debug, Serialize)]
struct Arithmetic {
    /// Codes each class mean averages.
    codes_per_class: Vec<usize>,
    /// Items moved per class.
    items_per_class: Vec<usize>,
    /// Ordered pairs `(a, b)` measured.
    pairs: usize,
    /// Share of moved items the judge calls `a`, averaged over the pairs.
    transfer: f64,
    /// The same with a random direction of the same length instead of `mean(a) − mean(b)`.
    random_direction: f64,
    /// Share of the unmoved items the judge calls `a` (before the move).
    unmoved: f64,
    /// Share of prior draws the judge calls `a` (chance), averaged over the pairs.
    prior_share: f64,
    /// Share of the unmoved items the judge calls `b` (their own class).
    items_kept: f64,
    /// The mean length of `mean(a) − mean(b)`, and of a prior code for scale.
    shift_norm: f64,
    prior_code_norm: f64,
    /// `transfer` by source class `b` (rows) and target `a` (columns); `None` on the diagonal.
    matrix: Vec<Vec<Option<f64>>>,
}

/// One attribute vector and its sweep.
#[derive(Debug, Serialize)]
struct AttributeSweep {
    name: &'static str,
    measure: &'static str,
    alphas: Vec<f64>,
    /// Classes whose quartiles the direction averages.
    classes: usize,
    direction_norm: f64,
    /// Items swept.
    items: usize,
    /// Mean over items of Spearman's ρ between α and the attribute of the decoded image;
    /// items whose attribute does not change are left out (counted in `undefined`); `None`
    /// when no item's does.
    spearman: Option<f64>,
    undefined: usize,
    /// The same along a random direction of the same length.
    spearman_random: Option<f64>,
    /// Share of the moved images (α ≠ 0) the judge gives the class it gives at α = 0.
    keeps_class: f64,
    keeps_class_random: f64,
    /// The attribute's mean over items at each α.
    mean_by_alpha: Vec<f64>,
    /// The mean attribute at the last α minus at the first: how much the sweep moves it.
    change: f64,
    /// The same along the random direction.
    change_random: f64,
}

/// The interpolation grid.
#[derive(Debug, Serialize)]
struct Interpolation {
    how: String,
    rows: usize,
    steps: usize,
    /// The judge's mean top probability over the grid's images.
    mean_confidence: f64,
    /// Share of the grid's images the judge calls a class with at least `--confidence`.
    confident: f64,
}

/// The class-conditional sheet.
#[derive(Debug, Serialize)]
struct Conditional {
    classes: usize,
    per_class: usize,
    /// Share of the samples the judge calls their label.
    judge_agrees: f64,
}

fn latent_model<M: Registered>(
    entry: &'static Entry,
    dir: &Path,
    args: &LatentArgs,
) -> anyhow::Result<()> {
    let latent = M::CAPABILITIES.latent.as_ref();
    let conditional = M::CAPABILITIES.conditional.as_ref();
    let refuse = || LatentError::NoLatentControl {
        label: M::LABEL,
        name: entry.name,
        with: models_with_a_latent_code(),
    };
    if latent.is_none() && conditional.is_none() {
        return Err(refuse().into());
    }
    let started = Instant::now();
    let device = args.data.backend.device()?;
    let (model, manifest) = crate::commands::load_trained::<M>(dir, &device)?;
    let shape = model.image_shape();
    if shape != ImageShape::MNIST {
        return Err(LatentError::NotDigits {
            label: M::LABEL,
            shape: format!("{}×{}×{}", shape.channels, shape.height, shape.width),
        }
        .into());
    }
    let classes = conditional.and_then(|c| (c.classes)(&model));
    if latent.is_none() && classes.is_none() {
        return Err(refuse().into());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let judge = genmodels::data::mnist_judge(&device)?;
    let title = args.source.pretrained.as_deref().unwrap_or(entry.name);
    let mut report = Report {
        model: title.to_string(),
        checkpoint: dir.display().to_string(),
        seed: args.seed,
        latent_size: None,
        codes: None,
        arithmetic: None,
        attributes: Vec::new(),
        interpolation: None,
        conditional: None,
        notes: Vec::new(),
        seconds: 0.0,
    };
    match (latent, classes) {
        (Some(latent), None) => {
            let ctx = Ctx {
                model: &model,
                latent,
                judge: &judge,
                device: &device,
                args,
                run_seed: manifest.seed,
            };
            latent_parts(&ctx, dir, &mut report)?;
        }
        (Some(_), Some(k)) => report.notes.push(format!(
            "latent arithmetic, attribute vectors and interpolation: not run; this {} has {k} \
             class labels and decodes a code only with one",
            M::LABEL
        )),
        _ => {}
    }
    match classes {
        Some(k) => {
            let sample = conditional
                .expect("classes come from it")
                .sample_with_labels;
            report.conditional = Some(conditional_sheet(&model, sample, k, &judge, args)?);
        }
        None => report.notes.push(format!(
            "class-conditional sampling: none; this {} has no class labels{}",
            M::LABEL,
            if args.source.pretrained.is_some() {
                " (the zoo holds no class-conditional model: a cGAN or a Gated PixelCNN \
                 with classes would be trained for it)"
            } else {
                ""
            }
        )),
    }
    report.seconds = started.elapsed().as_secs_f64();
    let md = markdown(&report);
    print!("{md}");
    write_atomic(&args.out.join("latent.md"), md.as_bytes())?;
    write_json_atomic(&args.out.join("latent.json"), &report)?;
    eprintln!("wrote {} in {:.0} s", args.out.display(), report.seconds);
    Ok(())
}

/// What the latent parts share.
struct Ctx<'a, M> {
    model: &'a M,
    latent: &'a Latent<M>,
    judge: &'a Judge,
    device: &'a Device,
    args: &'a LatentArgs,
    /// The checkpoint's seed (its run's binarisation).
    run_seed: u64,
}

/// Labelled codes: `labels.len()` rows of `size`.
struct Codes {
    values: Vec<f64>,
    labels: Vec<usize>,
    size: usize,
}

impl Codes {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.size..(i + 1) * self.size]
    }

    /// The rows of each class, in order.
    fn by_class(&self) -> Vec<Vec<usize>> {
        let mut rows = vec![Vec::new(); CLASSES];
        for (i, &l) in self.labels.iter().enumerate() {
            rows[l].push(i);
        }
        rows
    }

    /// The first `per_class` rows of each class.
    fn first_per_class(self, per_class: usize) -> Self {
        let mut counts = [0usize; CLASSES];
        let mut kept = Codes {
            values: Vec::new(),
            labels: Vec::new(),
            size: self.size,
        };
        for i in 0..self.len() {
            let l = self.labels[i];
            if counts[l] < per_class {
                counts[l] += 1;
                kept.values.extend_from_slice(self.row(i));
                kept.labels.push(l);
            }
        }
        kept
    }
}

impl<M: Registered> Ctx<'_, M> {
    fn size(&self) -> usize {
        (self.latent.size)(self.model)
    }

    /// The mean images of `codes` (rows of `size`), as host rows of 784 grey levels.
    fn decode(&self, codes: &[f64], what: &str) -> anyhow::Result<Vec<f64>> {
        let size = self.size();
        let n = codes.len() / size;
        let progress = Progress::count(n as u64, what, "images");
        let mut images = Vec::with_capacity(n * PIXELS);
        for chunk in codes.chunks(BATCH * size) {
            let m = chunk.len() / size;
            let values: Vec<f32> = chunk.iter().map(|&v| v as f32).collect();
            let z = Tensor::<2>::from_data(TensorData::new(values, [m, size]), self.device);
            let decoded = (self.latent.decode)(self.model, z)?;
            images.extend(
                to_host(decoded)?
                    .into_iter()
                    .map(|v| f64::from(v).clamp(0.0, 1.0)),
            );
            progress.advance(m as u64);
        }
        progress.finish();
        Ok(images)
    }

    /// Host rows of a `[N, L]` tensor.
    fn host_codes(codes: Tensor<2>) -> anyhow::Result<Vec<f64>> {
        Ok(to_host(codes)?.into_iter().map(f64::from).collect())
    }

    /// `n` prior codes drawn from `seed`.
    fn prior(&self, n: usize, seed: u64) -> anyhow::Result<Vec<f64>> {
        Self::host_codes((self.latent.prior)(self.model, n, seed)?)
    }

    /// A random direction of length `length`, drawn from `seed`.
    fn random_direction(&self, length: f64, seed: u64) -> anyhow::Result<Vec<f64>> {
        let size = self.size();
        let mut rng = genmodels_core::random::rng(seed);
        let v = Self::host_codes(genmodels_core::random::standard_normal(
            [1, size],
            &mut rng,
            self.device,
        ))?;
        let scale = length / norm(&v).max(f64::MIN_POSITIVE);
        Ok(v.into_iter().map(|x| x * scale).collect())
    }
}

/// The judge's class and top probability of each image (host rows of 784).
fn judge_images(
    judge: &Judge,
    images: &[f64],
    device: &Device,
) -> anyhow::Result<(Vec<usize>, Vec<f64>)> {
    let mut classes = Vec::new();
    let mut confidence = Vec::new();
    for chunk in images.chunks(BATCH * PIXELS) {
        let judged = judge.judge(image_tensor(chunk, device))?;
        classes.extend(judged.predicted_classes());
        confidence.extend(
            judged
                .probabilities()
                .chunks_exact(CLASSES)
                .map(|row| row.iter().copied().fold(0.0, f64::max)),
        );
    }
    Ok((classes, confidence))
}

/// Host rows of 784 as a `[N, 1, 28, 28]` tensor.
fn image_tensor(images: &[f64], device: &Device) -> Tensor<4> {
    let n = images.len() / PIXELS;
    let values: Vec<f32> = images.iter().map(|&v| v as f32).collect();
    Tensor::<4>::from_data(TensorData::new(values, [n, 1, SIDE, SIDE]), device)
}

/// Writes host rows of 784 as a PNG grid of `columns` per row.
fn save_sheet(path: &Path, images: &[f64], columns: usize, device: &Device) -> anyhow::Result<()> {
    save_image_grid(
        path,
        image_tensor(images, device),
        GridLayout::with_columns(columns),
    )?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The codes [`labelled_codes`] finds.
struct Labelled {
    /// The codes the class means and attribute vectors are computed from.
    reference: Codes,
    /// The codes moved.
    items: Codes,
    /// For a model with an encoder, the test split and the index of each item in it.
    item_images: Option<(Dataset, Vec<usize>)>,
    /// Where the codes come from, in words.
    how: String,
}

/// The reference codes (class means, attribute vectors) and the items to move.
fn labelled_codes<M: Registered>(
    ctx: &Ctx<'_, M>,
    dir: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Labelled> {
    let size = ctx.size();
    let args = ctx.args;
    if (ctx.latent.can_encode)(ctx.model) {
        // The digits as the model's run presented them (binarised for a binary model).
        let binarize = crate::commands::checkpoint_binarize(dir, ctx.model);
        let (train, test) = datasets(load_mnist(&args.data)?, binarize, ctx.run_seed, None);
        let encode = |set: &Dataset, indices: &[usize], what: &str| -> anyhow::Result<Codes> {
            let labels = set
                .images()
                .labels()
                .context("the data has no labels: class means need them")?;
            let progress = Progress::count(indices.len() as u64, what, "images");
            let mut values = Vec::with_capacity(indices.len() * size);
            for chunk in indices.chunks(BATCH) {
                let batch = set.batch(chunk, 0, ctx.device)?;
                values.extend(Ctx::<M>::host_codes((ctx.latent.encode)(
                    ctx.model, &batch,
                )?)?);
                progress.advance(chunk.len() as u64);
            }
            progress.finish();
            Ok(Codes {
                values,
                labels: indices.iter().map(|&i| usize::from(labels[i])).collect(),
                size,
            })
        };
        let all: Vec<usize> = (0..train.len()).collect();
        let reference = encode(&train, &all, "encoding the training digits")?;
        let test_labels = test
            .images()
            .labels()
            .context("the test split has no labels")?;
        // The items: `per_class` test digits of each class drawn with the seed (all of a
        // class that has fewer), in file order.
        let test_labels: Vec<usize> = test_labels.iter().map(|&l| usize::from(l)).collect();
        let items = labelled_subset(&test_labels, CLASSES, args.per_class, args.seed)?.indices;
        let moved = encode(&test, &items, "encoding the test digits")?;
        let how = format!(
            "the encoder's codes of the {} training digits, with their labels; moved: {} test \
             digits of each class drawn with seed {}",
            reference.len(),
            args.per_class,
            args.seed
        );
        return Ok(Labelled {
            reference,
            items: moved,
            item_images: Some((test, items)),
            how,
        });
    }
    // A GAN: prior draws labelled by the judge.
    let draw = |n: usize, seed: u64, what: &str| -> anyhow::Result<(Codes, usize)> {
        let codes = ctx.prior(n, seed)?;
        let images = ctx.decode(&codes, what)?;
        let (classes, confidence) = judge_images(ctx.judge, &images, ctx.device)?;
        let mut kept = Codes {
            values: Vec::new(),
            labels: Vec::new(),
            size,
        };
        for i in 0..n {
            if confidence[i] >= args.confidence {
                kept.values
                    .extend_from_slice(&codes[i * size..(i + 1) * size]);
                kept.labels.push(classes[i]);
            }
        }
        Ok((kept, n))
    };
    let (reference, drawn) = draw(args.draws, args.seed, "drawing the labelled codes")?;
    // As many draws again, at least three times the items wanted.
    let item_draws = args.draws.max(3 * CLASSES * args.per_class);
    let (items, _) = draw(item_draws, args.seed.wrapping_add(1), "drawing the items")?;
    let items = items.first_per_class(args.per_class);
    let short: Vec<String> = items
        .by_class()
        .iter()
        .enumerate()
        .filter(|(_, rows)| rows.len() < args.per_class)
        .map(|(c, rows)| format!("{c}: {}", rows.len()))
        .collect();
    if !short.is_empty() {
        notes.push(format!(
            "items: {item_draws} draws (seed {}) gave fewer than {} confident items of some \
             classes ({})",
            args.seed.wrapping_add(1),
            args.per_class,
            short.join(", ")
        ));
    }
    let how = format!(
        "{} of {drawn} prior draws (seed {}) that the judge calls a class with probability ≥ {}, \
         labelled by the judge; moved: the first {} such draws of each class from seed {}",
        reference.len(),
        args.seed,
        args.confidence,
        args.per_class,
        args.seed.wrapping_add(1)
    );
    Ok(Labelled {
        reference,
        items,
        item_images: None,
        how,
    })
}

fn latent_parts<M: Registered>(
    ctx: &Ctx<'_, M>,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let args = ctx.args;
    let size = ctx.size();
    report.latent_size = Some(size);
    let Labelled {
        reference,
        items,
        item_images,
        how,
    } = labelled_codes(ctx, dir, &mut report.notes)?;
    eprintln!("codes: {how}");
    report.codes = Some(how);
    let out = &args.out;

    // Chance: the classes of prior draws.
    let prior_codes = ctx.prior(PRIOR_DRAWS, args.seed.wrapping_add(2))?;
    let prior_images = ctx.decode(&prior_codes, "decoding prior draws")?;
    let (prior_classes, _) = judge_images(ctx.judge, &prior_images, ctx.device)?;
    let mut prior_share = [0.0; CLASSES];
    for &c in &prior_classes {
        prior_share[c] += 1.0 / prior_classes.len() as f64;
    }
    let prior_code_norm = prior_codes.chunks(size).map(norm).sum::<f64>() / PRIOR_DRAWS as f64;

    let means = class_means(&reference.values, size, &reference.labels, CLASSES)?;
    let item_rows = items.by_class();
    let unmoved_images = ctx.decode(&items.values, "decoding the items")?;
    let (unmoved_classes, _) = judge_images(ctx.judge, &unmoved_images, ctx.device)?;

    // Class arithmetic.
    let usable: Vec<usize> = (0..CLASSES)
        .filter(|&c| means[c].is_some() && !item_rows[c].is_empty())
        .collect();
    if usable.len() < 2 {
        report.notes.push(format!(
            "class arithmetic: not measured; only {} classes have both labelled codes and items",
            usable.len()
        ));
    } else {
        report.arithmetic = Some(arithmetic(
            ctx,
            &reference,
            &items,
            &means,
            &usable,
            &unmoved_classes,
            &prior_share,
            prior_code_norm,
        )?);
        // The sheet: row b is the first item of class b, column a its code moved to a.
        let mut sheet_codes = Vec::new();
        for &b in &usable {
            let z = items.row(item_rows[b][0]);
            for a in 0..CLASSES {
                let (ma, mb) = (means[a].as_ref(), means[b].as_ref().expect("usable"));
                match ma {
                    Some(ma) => {
                        sheet_codes.extend(z.iter().zip(ma).zip(mb).map(|((z, a), b)| z + a - b))
                    }
                    None => sheet_codes.extend_from_slice(z),
                }
            }
        }
        let sheet = ctx.decode(&sheet_codes, "arithmetic sheet")?;
        save_sheet(&out.join("arithmetic.png"), &sheet, CLASSES, ctx.device)?;
    }

    // Attribute vectors, measured on the decoded reference codes.
    let reference_images = ctx.decode(&reference.values, "decoding the labelled codes")?;
    type Measure = fn(&[f64]) -> f64;
    let attributes: [(&str, &str, Measure); 2] = [
        ("thickness", "ink: the mean grey level", |image| ink(image)),
        (
            "slant",
            "Cov(x, y)/Var(y) of the ink, y upwards: > 0 leans right",
            |image| slant(image, SIDE),
        ),
    ];
    for (index, (name, measure, f)) in attributes.into_iter().enumerate() {
        let values: Vec<f64> = reference_images.chunks(PIXELS).map(f).collect();
        let (direction, used) =
            match attribute_direction(&reference.values, size, &values, &reference.labels) {
                Ok(found) => found,
                Err(e) => {
                    report.notes.push(format!("{name}: not measured ({e})"));
                    continue;
                }
            };
        let random = ctx.random_direction(norm(&direction), args.seed ^ (0xA77 + index as u64))?;
        let along = sweep(ctx, &items, &direction, f, &format!("{name} sweep"))?;
        let control = sweep(ctx, &items, &random, f, &format!("{name} control"))?;
        // The sheet: the first item of each class, one column per α.
        let mut sheet = Vec::new();
        for rows in &item_rows {
            if let Some(&i) = rows.first() {
                sheet.extend_from_slice(
                    &along.images[i * ALPHAS.len() * PIXELS..(i + 1) * ALPHAS.len() * PIXELS],
                );
            }
        }
        save_sheet(
            &out.join(format!("{name}.png")),
            &sheet,
            ALPHAS.len(),
            ctx.device,
        )?;
        report.attributes.push(AttributeSweep {
            name,
            measure,
            alphas: ALPHAS.to_vec(),
            classes: used,
            direction_norm: norm(&direction),
            items: items.len(),
            spearman: along.spearman,
            undefined: along.undefined,
            spearman_random: control.spearman,
            keeps_class: along.keeps_class,
            keeps_class_random: control.keeps_class,
            change: along.mean_by_alpha[ALPHAS.len() - 1] - along.mean_by_alpha[0],
            change_random: control.mean_by_alpha[ALPHAS.len() - 1] - control.mean_by_alpha[0],
            mean_by_alpha: along.mean_by_alpha,
        });
    }

    // Interpolation: the registry's own paths where the model has them.
    let (rows, steps) = PATHS;
    let grid = if let (Some(interpolate), Some((test, test_indices))) =
        (M::CAPABILITIES.interpolate, item_images.as_ref())
    {
        // Row r: the first test item of class r to the first of class r + 1.
        let first = |class: usize| item_rows[class].first().map(|&i| test_indices[i]);
        let ends: Vec<usize> = (0..rows).filter_map(|r| first(r % CLASSES)).collect();
        let next: Vec<usize> = (0..rows).filter_map(|r| first((r + 1) % CLASSES)).collect();
        if ends.len() == rows && next.len() == rows {
            let a = test.batch(&ends, 0, ctx.device)?;
            let b = test.batch(&next, 0, ctx.device)?;
            Some((
                "straight lines between the codes of a test digit of class r and one of class \
                 r + 1 (row r)"
                    .to_string(),
                interpolate(ctx.model, &a, &b, steps)?,
            ))
        } else {
            None
        }
    } else if let Some(interpolate) = M::CAPABILITIES.interpolate_latents {
        Some((
            format!(
                "spherical paths between prior draws of seeds s + 2r and s + 2r + 1 (s = {})",
                args.seed
            ),
            interpolate(ctx.model, args.seed, rows, steps)?,
        ))
    } else {
        None
    };
    match grid {
        Some((how, images)) => {
            let images: Vec<f64> = to_host(images)?
                .into_iter()
                .map(|v| f64::from(v).clamp(0.0, 1.0))
                .collect();
            let (_, confidence) = judge_images(ctx.judge, &images, ctx.device)?;
            save_sheet(&out.join("interpolation.png"), &images, steps, ctx.device)?;
            let n = confidence.len() as f64;
            report.interpolation = Some(Interpolation {
                how,
                rows,
                steps,
                mean_confidence: confidence.iter().sum::<f64>() / n,
                confident: confidence.iter().filter(|&&c| c >= args.confidence).count() as f64 / n,
            });
        }
        None => report
            .notes
            .push("interpolation: not drawn; some class has no item".into()),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn arithmetic<M: Registered>(
    ctx: &Ctx<'_, M>,
    reference: &Codes,
    items: &Codes,
    means: &[Option<Vec<f64>>],
    usable: &[usize],
    unmoved_classes: &[usize],
    prior_share: &[f64; CLASSES],
    prior_code_norm: f64,
) -> anyhow::Result<Arithmetic> {
    let item_rows = items.by_class();
    // Every ordered pair (a, b), a ≠ b: the items of b moved by mean(a) − mean(b), then by a
    // random direction of the same length.
    let mut pairs = Vec::new();
    let mut moved = Vec::new();
    let mut control = Vec::new();
    for &b in usable {
        for &a in usable {
            if a == b {
                continue;
            }
            let (ma, mb) = (
                means[a].as_ref().expect("usable"),
                means[b].as_ref().expect("usable"),
            );
            let shift: Vec<f64> = ma.iter().zip(mb).map(|(a, b)| a - b).collect();
            let seed = ctx.args.seed ^ (0xA217_0000 + (b * CLASSES + a) as u64);
            let random = ctx.random_direction(norm(&shift), seed)?;
            for &i in &item_rows[b] {
                let z = items.row(i);
                moved.extend(z.iter().zip(&shift).map(|(z, s)| z + s));
                control.extend(z.iter().zip(&random).map(|(z, s)| z + s));
            }
            pairs.push((a, b, item_rows[b].len(), norm(&shift)));
        }
    }
    let moved = ctx.decode(&moved, "class arithmetic")?;
    let (moved_classes, _) = judge_images(ctx.judge, &moved, ctx.device)?;
    let control = ctx.decode(&control, "random-direction control")?;
    let (control_classes, _) = judge_images(ctx.judge, &control, ctx.device)?;
    let mut matrix = vec![vec![None; CLASSES]; CLASSES];
    let (mut transfer, mut random, mut unmoved, mut chance, mut shift_norm) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut start = 0;
    for &(a, b, n, length) in &pairs {
        let share = |classes: &[usize]| {
            classes[start..start + n]
                .iter()
                .filter(|&&c| c == a)
                .count() as f64
                / n as f64
        };
        let t = share(&moved_classes);
        matrix[b][a] = Some(t);
        transfer += t;
        random += share(&control_classes);
        unmoved += item_rows[b]
            .iter()
            .filter(|&&i| unmoved_classes[i] == a)
            .count() as f64
            / n as f64;
        chance += prior_share[a];
        shift_norm += length;
        start += n;
    }
    let p = pairs.len() as f64;
    let kept = usable
        .iter()
        .map(|&b| {
            item_rows[b]
                .iter()
                .filter(|&&i| unmoved_classes[i] == b)
                .count() as f64
                / item_rows[b].len() as f64
        })
        .sum::<f64>()
        / usable.len() as f64;
    Ok(Arithmetic {
        codes_per_class: reference.by_class().iter().map(Vec::len).collect(),
        items_per_class: item_rows.iter().map(Vec::len).collect(),
        pairs: pairs.len(),
        transfer: transfer / p,
        random_direction: random / p,
        unmoved: unmoved / p,
        prior_share: chance / p,
        items_kept: kept,
        shift_norm: shift_norm / p,
        prior_code_norm,
        matrix,
    })
}

/// What a sweep along one direction measured.
struct Sweep {
    /// Item after item, one image per α.
    images: Vec<f64>,
    spearman: Option<f64>,
    undefined: usize,
    keeps_class: f64,
    mean_by_alpha: Vec<f64>,
}

/// Decodes `z + α·direction` for every item and α, and measures the attribute `f`.
fn sweep<M: Registered>(
    ctx: &Ctx<'_, M>,
    items: &Codes,
    direction: &[f64],
    f: fn(&[f64]) -> f64,
    what: &str,
) -> anyhow::Result<Sweep> {
    let mut codes = Vec::with_capacity(items.len() * ALPHAS.len() * items.size);
    for i in 0..items.len() {
        for alpha in ALPHAS {
            codes.extend(
                items
                    .row(i)
                    .iter()
                    .zip(direction)
                    .map(|(z, d)| z + alpha * d),
            );
        }
    }
    let images = ctx.decode(&codes, what)?;
    let (classes, _) = judge_images(ctx.judge, &images, ctx.device)?;
    let values: Vec<f64> = images.chunks(PIXELS).map(f).collect();
    let k = ALPHAS.len();
    let centre = ALPHAS
        .iter()
        .position(|&a| a == 0.0)
        .expect("α = 0 is swept");
    let (mut total, mut defined, mut kept) = (0.0, 0usize, 0usize);
    let mut mean_by_alpha = vec![0.0; k];
    for i in 0..items.len() {
        let row = &values[i * k..(i + 1) * k];
        if let Some(rho) = spearman(&ALPHAS, row)? {
            total += rho;
            defined += 1;
        }
        for (m, v) in mean_by_alpha.iter_mut().zip(row) {
            *m += v / items.len() as f64;
        }
        let own = classes[i * k + centre];
        kept += (0..k)
            .filter(|&j| j != centre && classes[i * k + j] == own)
            .count();
    }
    Ok(Sweep {
        images,
        spearman: (defined > 0).then(|| total / defined as f64),
        undefined: items.len() - defined,
        keeps_class: kept as f64 / (items.len() * (k - 1)) as f64,
        mean_by_alpha,
    })
}

/// A sheet of `per row` samples for each class, and how often the judge agrees with the label.
fn conditional_sheet<M: Registered>(
    model: &M,
    sample: fn(&M, &[usize], u64) -> genmodels::Result<Tensor<4>>,
    classes: usize,
    judge: &Judge,
    args: &LatentArgs,
) -> anyhow::Result<Conditional> {
    let labels: Vec<usize> = (0..classes)
        .flat_map(|c| std::iter::repeat_n(c, CONDITIONAL_COLUMNS))
        .collect();
    let images = sample(model, &labels, args.seed)?;
    let images: Vec<f64> = to_host(images)?
        .into_iter()
        .map(|v| f64::from(v).clamp(0.0, 1.0))
        .collect();
    let device = judge.device().clone();
    let (judged, _) = judge_images(judge, &images, &device)?;
    save_sheet(
        &args.out.join("conditional.png"),
        &images,
        CONDITIONAL_COLUMNS,
        &device,
    )?;
    let agree = judged.iter().zip(&labels).filter(|(a, b)| a == b).count();
    Ok(Conditional {
        classes,
        per_class: CONDITIONAL_COLUMNS,
        judge_agrees: agree as f64 / labels.len() as f64,
    })
}

/// A correlation with three decimals, or "n/a" where undefined.
fn rho(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// `v` as a percentage with one decimal.
fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn markdown(report: &Report) -> String {
    let mut md = format!(
        "# Latent control: {}\n\n- checkpoint: {}\n- seed: {}\n",
        report.model, report.checkpoint, report.seed
    );
    if let Some(size) = report.latent_size {
        md.push_str(&format!("- code size: {size}\n"));
    }
    if let Some(codes) = &report.codes {
        md.push_str(&format!("- codes: {codes}\n"));
    }
    if let Some(a) = &report.arithmetic {
        md.push_str(&format!(
            "\n## Class arithmetic: z + mean(a) − mean(b) for items z of class b\n\n\
             {} ordered pairs; items per class {:?}; mean ‖mean(a) − mean(b)‖ = {:.2} (a prior \
             code's length: {:.2}).\n\n\
             | judged a after the move (transfer) | along a random direction of the same length | \
             before the move | share of a among prior draws | items judged b before the move |\n\
             |---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n\n\
             Transfer by source class b (rows) and target a (columns):\n\n| b \\ a |",
            a.pairs,
            a.items_per_class,
            a.shift_norm,
            a.prior_code_norm,
            percent(a.transfer),
            percent(a.random_direction),
            percent(a.unmoved),
            percent(a.prior_share),
            percent(a.items_kept),
        ));
        for c in 0..CLASSES {
            md.push_str(&format!(" {c} |"));
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(CLASSES));
        md.push('\n');
        for (b, row) in a.matrix.iter().enumerate() {
            md.push_str(&format!("| {b} |"));
            for cell in row {
                match cell {
                    Some(v) => md.push_str(&format!(" {:.0} |", 100.0 * v)),
                    None => md.push_str(" |"),
                }
            }
            md.push('\n');
        }
    }
    if !report.attributes.is_empty() {
        md.push_str(&format!(
            "\n## Attribute vectors: z + α·d, α in {:?}\n\n\
             d: within each class, the mean code of the top quarter by the attribute minus that \
             of the bottom quarter, averaged over the classes.\n\n\
             | attribute | measure | ‖d‖ | items | Spearman ρ(α, attribute) | along a random \
             direction | change, α = {} → {} | along a random direction | keeps its class | \
             along a random direction | mean attribute at each α |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
            ALPHAS,
            ALPHAS[0],
            ALPHAS[ALPHAS.len() - 1]
        ));
        for s in &report.attributes {
            let means: Vec<String> = s.mean_by_alpha.iter().map(|v| format!("{v:.3}")).collect();
            md.push_str(&format!(
                "| {} | {} | {:.2} | {} | {} | {} | {:+.3} | {:+.3} | {} | {} | {} |\n",
                s.name,
                s.measure,
                s.direction_norm,
                s.items,
                rho(s.spearman),
                rho(s.spearman_random),
                s.change,
                s.change_random,
                percent(s.keeps_class),
                percent(s.keeps_class_random),
                means.join(" "),
            ));
        }
    }
    if let Some(i) = &report.interpolation {
        md.push_str(&format!(
            "\n## Interpolation\n\n{} rows of {} steps: {}. The judge's mean top probability \
             along them: {:.3}; images it calls a class confidently: {}.\n",
            i.rows,
            i.steps,
            i.how,
            i.mean_confidence,
            percent(i.confident)
        ));
    }
    if let Some(c) = &report.conditional {
        md.push_str(&format!(
            "\n## Class-conditional samples\n\n{} per class for {} classes: the judge calls {} \
             of them their label.\n",
            c.per_class,
            c.classes,
            percent(c.judge_agrees)
        ));
    }
    if !report.notes.is_empty() {
        md.push_str("\n## Not measured\n\n");
        for note in &report.notes {
            md.push_str(&format!("- {note}\n"));
        }
    }
    md.push_str(&format!("\nTook {:.0} s.\n", report.seconds));
    md
}

//! The zoo: every model of the comparison trained to convergence by its registry recipe,
//! shipped in the repository's `zoo/` folder so that `genmodels compare`, `sample
//! --pretrained`, `complete --pretrained` and `eval --pretrained` work without training.
//!
//! Each `zoo/<model>/` is a checkpoint folder (its `config.json`, `checkpoint.json` and
//! weights; no optimiser state) with the training run's record (`training.json`: recipe
//! figures, the validation score and mean training loss of every epoch, training time), its
//! curve (`validation.png`), `run.json` (how its data is presented) and `metrics.json` (what
//! packing it measured). [`pack`] makes it from the folder of a `converged` comparison: the
//! best epoch's weights, at half precision where that moves no test likelihood by
//! [`MAX_HALF_PRECISION_CHANGE_NATS`] or more, and at full precision otherwise.

use std::path::{Path, PathBuf};

use genmodels_core::{Backend, GenError, Result};
use genmodels_data::Mnist;
use serde::{Deserialize, Serialize};

use crate::compare::{self, NllFigure};

/// The environment variable that names a zoo folder other than the repository's.
pub const ZOO_ENV: &str = "GENMODELS_ZOO";

/// The largest change of a test likelihood (nats per image) that half-precision weights may
/// cause; a model whose likelihood moves more ships at full precision.
pub const MAX_HALF_PRECISION_CHANGE_NATS: f64 = 0.05;

/// The file in a zoo entry with what packing measured.
pub const METRICS_FILE: &str = "metrics.json";

/// The zoo folder: `$GENMODELS_ZOO` when set, else the `zoo/` folder of the repository this
/// library was built from.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(ZOO_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoo"),
    }
}

/// `dir`, if it is a zoo folder.
///
/// # Errors
/// [`GenError::InvalidConfig`] when it does not exist, saying how to get or name one.
pub fn check_dir(dir: &Path) -> Result<PathBuf> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    Err(GenError::InvalidConfig(format!(
        "there is no zoo at {}: the trained models ship in the repository's zoo/ folder; \
         name another with --zoo or ${ZOO_ENV}, or train them with `genmodels compare \
         --budget converged --retrain`",
        dir.display()
    )))
}

/// The zoo entry of model `name` (a checkpoint folder).
///
/// # Errors
/// [`GenError::InvalidConfig`] when the zoo has no such model, listing those it has.
pub fn model_dir(zoo: &Path, name: &str) -> Result<PathBuf> {
    let dir = zoo.join(name);
    if dir
        .join(genmodels_core::checkpoint::MANIFEST_FILE)
        .is_file()
    {
        return Ok(dir);
    }
    let zoo = check_dir(zoo)?;
    let mut names: Vec<String> = std::fs::read_dir(&zoo)
        .map_err(|e| GenError::io(&zoo, e))?
        .flatten()
        .filter(|e| {
            e.path()
                .join(genmodels_core::checkpoint::MANIFEST_FILE)
                .is_file()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Err(GenError::InvalidConfig(format!(
        "the zoo at {} has no model `{name}`; it has {}",
        zoo.display(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// What to pack.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The output folder of a `converged` comparison (`genmodels compare --budget converged
    /// --out DIR`): its `models/<name>/` are packed.
    pub compared: PathBuf,
    /// The zoo folder to write (its entries are replaced; nothing else in it is touched).
    pub zoo: PathBuf,
    /// The backend the likelihoods are measured on.
    pub backend: Backend,
    /// The seed the comparison ran with.
    pub seed: u64,
    /// Only these models (all of the comparison's when `None`).
    pub only: Option<Vec<String>>,
}

/// One model as packed: [`METRICS_FILE`] in its entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedModel {
    /// The comparison's name for it.
    pub name: String,
    /// `f16` or `f32`: the precision its weights ship at.
    pub precision: String,
    /// Bytes of the weights file.
    pub weights_bytes: u64,
    /// Its test likelihoods with the trained (full-precision) weights.
    pub likelihoods_full_precision: Vec<NllFigure>,
    /// The same with half-precision weights (empty for a model without a likelihood, which
    /// ships at full precision).
    pub likelihoods_half_precision: Vec<NllFigure>,
    /// The largest change between the two, nats per image.
    pub largest_change_nats: Option<f64>,
    /// Epochs trained, and the epoch shipped (the best by validation).
    pub epochs: usize,
    /// The epoch whose weights ship.
    pub best_epoch: Option<usize>,
    /// Training seconds over every sitting.
    pub train_seconds: f64,
}

/// Packs the `converged` comparison in `options.compared` into the zoo (see the
/// [module docs](self)).
///
/// # Errors
/// [`GenError::InvalidConfig`] when a model has no finished `converged` run there; data,
/// evaluation and I/O errors as they occur.
pub fn pack(options: &PackOptions, mnist: &Mnist) -> Result<Vec<PackedModel>> {
    let packed = compare::pack_models(options, mnist)?;
    write_readme(&options.zoo)?;
    Ok(packed)
}

/// `zoo/README.md`: a table of every entry's [`METRICS_FILE`].
fn write_readme(zoo: &Path) -> Result<()> {
    let mut entries: Vec<PackedModel> = std::fs::read_dir(zoo)
        .map_err(|e| GenError::io(zoo, e))?
        .flatten()
        .filter_map(|e| {
            genmodels_core::fs::read_json::<PackedModel>(&e.path().join(METRICS_FILE)).ok()
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::from(
        "# The zoo\n\nEvery model of `genmodels compare`, trained to convergence by its \
         registry recipe (`genmodels compare --budget converged --retrain`, then \
         `genmodels zoo pack`). Written by `genmodels zoo pack`; see docs/results.md for \
         what the models show.\n\n| model | weights | precision | epochs (best) | training s | \
         test NLL, full precision | test NLL, as shipped | change (nats) |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut total = 0;
    for entry in &entries {
        total += entry.weights_bytes;
        let nll = |figures: &[NllFigure]| {
            figures
                .iter()
                .map(|f| format!("{:.3} ({})", f.nats, f.kind))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let shipped = if entry.precision == "f16" {
            nll(&entry.likelihoods_half_precision)
        } else {
            nll(&entry.likelihoods_full_precision)
        };
        text.push_str(&format!(
            "| {} | {:.2} MB | {} | {} ({}) | {:.0} | {} | {} | {} |\n",
            entry.name,
            entry.weights_bytes as f64 / 1e6,
            entry.precision,
            entry.epochs,
            entry
                .best_epoch
                .map_or_else(|| "n/a".to_string(), |e| e.to_string()),
            entry.train_seconds,
            nll(&entry.likelihoods_full_precision),
            shipped,
            entry
                .largest_change_nats
                .map_or_else(|| "n/a".to_string(), |c| format!("{c:.4}")),
        ));
    }
    text.push_str(&format!(
        "\nWeights in all: {:.2} MB.\n",
        total as f64 / 1e6
    ));
    genmodels_core::fs::write_atomic(&zoo.join("README.md"), text.as_bytes())
}

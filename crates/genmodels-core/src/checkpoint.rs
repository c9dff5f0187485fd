//! Checkpoints: a directory with the model's JSON config, its weights (burnpack, through
//! `burn::store`), the optimiser state, and a manifest that ties them together.
//!
//! ```text
//! DIR/config.json                 {"model": "vae", "config": {...}}
//! DIR/checkpoint.json             the manifest: which files, epoch, step, seed
//! DIR/weights-00000800.bpk        model weights after step 800
//! DIR/optimizer-00000800.bpk      optimiser state after step 800
//! ```
//!
//! A model trained as several players (a GAN's discriminator and generator) has one optimiser
//! file per player, `optimizer-<player>-00000800.bpk`.
//!
//! Every file is written atomically (temporary file, then rename), and the weights of a new
//! checkpoint go to new file names; only once they are on disk does the manifest switch to
//! them, and only then are the old files removed. An interrupted save therefore always leaves
//! the previous checkpoint intact and loadable.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, FloatCastAdapter, ModuleSnapshot, ModuleStore};
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::error::{GenError, Result};
use crate::fs::{read_json, write_atomic, write_json_atomic};
use crate::model::{GenerativeModel, ModelConfig};

/// File name of the model configuration inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the checkpoint manifest.
pub const MANIFEST_FILE: &str = "checkpoint.json";

/// `config.json`: the model's name and its configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedConfig<C> {
    /// The model's short name, e.g. `vae`.
    pub model: String,
    /// The model's configuration.
    pub config: C,
}

/// `checkpoint.json`: what the checkpoint holds and where training stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointManifest {
    /// The model's short name.
    pub model: String,
    /// Weights file, relative to the directory.
    pub weights: String,
    /// Optimiser state files, relative to the directory, one per training player (see
    /// [`crate::Player`]); empty when no training state was saved. Older manifests wrote a
    /// single `optimizer` entry, which still reads.
    #[serde(default, alias = "optimizer", deserialize_with = "one_or_many")]
    pub optimizers: Vec<String>,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimisation steps completed.
    pub step: usize,
    /// The training seed.
    pub seed: u64,
    /// The genmodels version that wrote it.
    pub genmodels_version: String,
}

/// Where training stood when a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingPosition {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimisation steps completed.
    pub step: usize,
    /// The training seed.
    pub seed: u64,
}

/// Writes `config.json` for `config` into `dir`.
///
/// # Errors
/// [`GenError::Io`] on write failure.
pub fn save_config<C: ModelConfig>(dir: &Path, config: &C) -> Result<()> {
    write_json_atomic(
        &dir.join(CONFIG_FILE),
        &SavedConfig {
            model: C::MODEL_NAME.to_string(),
            config: config.clone(),
        },
    )
}

/// The model name recorded in a checkpoint's `config.json`, to choose the model type.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] when `config.json` is missing or has no `model` field.
pub fn read_model_name(dir: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct NameOnly {
        model: String,
    }
    let path = dir.join(CONFIG_FILE);
    read_json::<NameOnly>(&path)
        .map(|n| n.model)
        .map_err(|e| corrupt(&path, e))
}

/// Reads a checkpoint's configuration as `C`.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] when missing or unparsable, [`GenError::CheckpointMismatch`]
/// when it belongs to another model.
pub fn load_config<C: ModelConfig>(dir: &Path) -> Result<C> {
    let path = dir.join(CONFIG_FILE);
    let saved: SavedConfig<C> = read_json(&path).map_err(|e| corrupt(&path, e))?;
    if saved.model != C::MODEL_NAME {
        return Err(GenError::CheckpointMismatch {
            path,
            reason: format!(
                "it holds a `{}` model, not `{}`",
                saved.model,
                C::MODEL_NAME
            ),
        });
    }
    Ok(saved.config)
}

/// Reads a checkpoint's manifest.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] when missing or unparsable, or when it names a file that
/// is not a plain file name in `dir` (an absolute path, `..`, a subfolder): genmodels never
/// reads, writes or deletes outside a checkpoint's folder on a manifest's word.
pub fn read_manifest(dir: &Path) -> Result<CheckpointManifest> {
    let path = dir.join(MANIFEST_FILE);
    let manifest: CheckpointManifest = read_json(&path).map_err(|e| corrupt(&path, e))?;
    let files = std::iter::once(&manifest.weights).chain(&manifest.optimizers);
    if let Some(outside) = files.into_iter().find(|f| !is_plain_file_name(f)) {
        return Err(corrupt(
            &path,
            format!(
                "it names `{outside}`, which is not a file in the checkpoint's folder; \
                 files outside it are never read, written or deleted"
            ),
        ));
    }
    Ok(manifest)
}

/// Whether `name` is one normal path component: no separator, no `..` or `.`, not absolute,
/// not empty.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    let one_normal = matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    );
    // A backslash separates on Windows; refuse it everywhere so a manifest means the same.
    one_normal && !name.contains(['/', '\\'])
}

/// Reads `null`, one file name, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(file)) => vec![file],
        Some(OneOrMany::Many(files)) => files,
    })
}

/// Saves `model`, and the optimiser state of each training player (none for a model saved
/// outside training), as the directory's new checkpoint.
///
/// `optimizers` pairs each player's name with its optimiser, in the order of
/// [`Trainable::players`](crate::Trainable::players).
///
/// # Errors
/// [`GenError::Io`] on write failure; the previous checkpoint is then still in place.
pub fn save_checkpoint<M: GenerativeModel>(
    dir: &Path,
    model: &M,
    optimizers: &[(&str, &ModuleOptimizer)],
    position: TrainingPosition,
) -> Result<CheckpointManifest> {
    let optimizers = optimizers
        .iter()
        .map(|(player, optim)| {
            let bytes = optim.into_bytes().map_err(|e| {
                GenError::Backend(format!("serialising the optimiser state: {e:?}"))
            })?;
            Ok((*player, bytes.to_vec()))
        })
        .collect::<Result<Vec<_>>>()?;
    write_checkpoint(
        dir,
        model.config(),
        &weights_to_bytes(model)?,
        &optimizers,
        position,
    )
}

/// Saves a checkpoint of a `config` model from its weights as burnpack bytes (full or half
/// precision, [`weights_to_half_bytes`]) and no optimiser state: a model to use, not to
/// resume (the zoo's).
///
/// # Errors
/// [`GenError::Io`] on write failure; the previous checkpoint is then still in place.
pub fn save_weights_checkpoint<C: ModelConfig>(
    dir: &Path,
    config: &C,
    weights: &[u8],
    position: TrainingPosition,
) -> Result<CheckpointManifest> {
    write_checkpoint(dir, config, weights, &[], position)
}

fn write_checkpoint<C: ModelConfig>(
    dir: &Path,
    config: &C,
    weights: &[u8],
    optimizers: &[(&str, Vec<u8>)],
    position: TrainingPosition,
) -> Result<CheckpointManifest> {
    std::fs::create_dir_all(dir).map_err(|e| GenError::io(dir, e))?;
    save_config(dir, config)?;

    let weights_file = format!("weights-{:08}.bpk", position.step);
    write_atomic(&dir.join(&weights_file), weights)?;
    let mut optimizer_files = Vec::with_capacity(optimizers.len());
    for (player, bytes) in optimizers {
        let name = if optimizers.len() == 1 {
            format!("optimizer-{:08}.bpk", position.step)
        } else {
            format!("optimizer-{player}-{:08}.bpk", position.step)
        };
        write_atomic(&dir.join(&name), bytes)?;
        optimizer_files.push(name);
    }
    let manifest = CheckpointManifest {
        model: C::MODEL_NAME.to_string(),
        weights: weights_file,
        optimizers: optimizer_files,
        epoch: position.epoch,
        step: position.step,
        seed: position.seed,
        genmodels_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    write_json_atomic(&dir.join(MANIFEST_FILE), &manifest)?;

    // Every checkpoint file the new manifest does not name is superseded: the previous
    // checkpoint's, and any that a save killed before its manifest left behind. Found by
    // listing the folder, never by following an old manifest's names.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = name == manifest.weights || manifest.optimizers.contains(&name);
            if !named && is_checkpoint_file_name(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(manifest)
}

/// Whether `name` is a weights or optimiser file as [`save_checkpoint`] names them:
/// `weights-STEP.bpk`, `optimizer-STEP.bpk` or `optimizer-PLAYER-STEP.bpk`, STEP being 8 or
/// more digits.
fn is_checkpoint_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".bpk") else {
        return false;
    };
    let Some((kind, step)) = stem.rsplit_once('-') else {
        return false;
    };
    let step_ok = step.len() >= 8 && step.bytes().all(|b| b.is_ascii_digit());
    let kind_ok = kind == "weights"
        || kind == "optimizer"
        || kind
            .strip_prefix("optimizer-")
            .is_some_and(|player| !player.is_empty());
    step_ok && kind_ok
}

/// Loads the model saved in `dir` onto `device`: builds it from `config.json`, then loads the
/// weights the manifest names.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] for missing, truncated or corrupt files;
/// [`GenError::CheckpointMismatch`] when the weights do not fit the config.
pub fn load_model<C: ModelConfig>(
    dir: &Path,
    device: &Device,
) -> Result<(C::Model, CheckpointManifest)> {
    let config: C = load_config(dir)?;
    let manifest = read_manifest(dir)?;
    if manifest.model != C::MODEL_NAME {
        return Err(GenError::CheckpointMismatch {
            path: dir.join(MANIFEST_FILE),
            reason: format!(
                "the manifest names a `{}` model, the config `{}`",
                manifest.model,
                C::MODEL_NAME
            ),
        });
    }
    let model = config.init(device)?;
    let model = load_weights(model, &dir.join(&manifest.weights))?;
    Ok((model, manifest))
}

/// Loads the optimiser states a checkpoint saved into `optimizers`, one per player in order.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] when the manifest names no optimiser state, or a number of
/// states other than the number of players, or one is corrupt.
pub fn load_optimizers(
    dir: &Path,
    manifest: &CheckpointManifest,
    optimizers: Vec<ModuleOptimizer>,
) -> Result<Vec<ModuleOptimizer>> {
    if manifest.optimizers.len() != optimizers.len() {
        return Err(GenError::CorruptCheckpoint {
            path: dir.join(MANIFEST_FILE),
            reason: if manifest.optimizers.is_empty() {
                "no optimiser state was saved, so training cannot resume".into()
            } else {
                format!(
                    "it holds {} optimiser states, the model trains {} players",
                    manifest.optimizers.len(),
                    optimizers.len()
                )
            },
        });
    }
    manifest
        .optimizers
        .iter()
        .zip(optimizers)
        .map(|(name, optimizer)| load_optimizer_file(&dir.join(name), optimizer))
        .collect()
}

fn load_optimizer_file(path: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let bytes = std::fs::read(path).map_err(|e| corrupt(path, e))?;
    // A corrupt record may panic deep in the decoder; turn that into an error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        optimizer.from_bytes(Bytes::from_bytes_vec(bytes))
    }))
    .map_err(|_| corrupt(path, "the optimiser record could not be decoded"))?
    .map_err(|e| corrupt(path, format!("{e:?}")))
}

/// Serialises a module's weights to burnpack bytes.
///
/// # Errors
/// [`GenError::Backend`] when the tensors cannot be read or encoded.
pub fn weights_to_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    store_bytes(model, BurnpackStore::from_bytes(None))
}

/// Serialises a module's weights to burnpack bytes at half precision (`f16`), half the size;
/// [`load_weights`] reads them back into the module's own precision. The zoo ships weights so
/// where the likelihoods move by less than it allows.
///
/// # Errors
/// [`GenError::Backend`] when the tensors cannot be read or encoded.
pub fn weights_to_half_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let store = BurnpackStore::from_bytes(None)
        .with_to_adapter(FloatCastAdapter::to(burn::tensor::DType::F16));
    store_bytes(model, store)
}

/// `model` saved into the in-memory `store`, as bytes.
fn store_bytes<M: Module>(model: &M, mut store: BurnpackStore) -> Result<Vec<u8>> {
    model
        .save_into(&mut store)
        .map_err(|e| GenError::Backend(format!("serialising weights: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| GenError::Backend(format!("serialising weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// Whether every floating-point weight of `model` is finite.
///
/// # Errors
/// [`GenError::Backend`] when the weights cannot be read back.
pub fn weights_are_finite<M: Module>(model: &M) -> Result<bool> {
    for tensor in model.collect(None, None, false) {
        let name = tensor.name.clone();
        let (_, dtype, _, _, bytes) = tensor
            .into_parts()
            .map_err(|e| GenError::Backend(format!("reading weight {name}: {e}")))?;
        let finite = match dtype {
            burn::tensor::DType::F32 => bytes
                .chunks_exact(4)
                .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
            burn::tensor::DType::F64 => bytes.chunks_exact(8).all(|b| {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).is_finite()
            }),
            // Other dtypes (integers, flags, half precision) are not checked.
            _ => true,
        };
        if !finite {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Loads burnpack weights from `path` into `model`, requiring every tensor to match exactly:
/// no tensor missing, none left over, every shape equal, every value finite.
///
/// # Errors
/// [`GenError::CorruptCheckpoint`] when the file is missing, truncated or not burnpack, or
/// holds NaN or infinite weights; [`GenError::CheckpointMismatch`] when the tensors do not
/// fit the model.
pub fn load_weights<M: Module>(model: M, path: &Path) -> Result<M> {
    let bytes = std::fs::read(path).map_err(|e| corrupt(path, e))?;
    load_weights_bytes(model, bytes, path)
}

/// Loads burnpack `bytes` (as [`weights_to_bytes`] makes them) into `model`, with the checks
/// of [`load_weights`]; `what` names them in errors.
///
/// # Errors
/// As [`load_weights`].
pub fn weights_from_bytes<M: Module>(model: M, bytes: Vec<u8>, what: &str) -> Result<M> {
    load_weights_bytes(model, bytes, Path::new(what))
}

fn load_weights_bytes<M: Module>(model: M, bytes: Vec<u8>, path: &Path) -> Result<M> {
    // Let the store report what matched instead of failing on the first problem, so a file
    // that does not decode (corrupt) is told apart from one that does not fit (mismatch).
    // Weights saved at half precision (the zoo's) load into the module's own `f32`.
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)))
        .validate(false)
        .allow_partial(true)
        .with_from_adapter(FloatCastAdapter::to(burn::tensor::DType::F32));
    let model = load_exactly(model, &mut store, path, "model")?;
    // Training never saves such weights, so they were damaged or edited afterwards; they
    // would only turn every figure into NaN.
    if !weights_are_finite(&model)? {
        return Err(corrupt(path, "the weights hold NaN or infinite values"));
    }
    Ok(model)
}

/// Loads `store` into `model` (a `what`, for messages), requiring every tensor to match:
/// [`GenError::CorruptCheckpoint`] when the bytes do not decode (the decoder may panic deep
/// inside on malformed input; that is caught too), [`GenError::CheckpointMismatch`] when
/// tensors are missing, left over or of another shape.
pub fn load_exactly<M: Module, S: ModuleStore>(
    mut model: M,
    store: &mut S,
    path: &Path,
    what: &str,
) -> Result<M> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.load_from(store).map(|result| (model, result))
    }));
    let (model, result) = match outcome {
        Err(_) => return Err(corrupt(path, "the weights could not be decoded")),
        Ok(Err(e)) => return Err(corrupt(path, e)),
        Ok(Ok(loaded)) => loaded,
    };
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        problems.push(format!("{:?}", result.errors));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        problems.push(format!("tensors missing from the file: {missing:?}"));
    }
    if !result.unused.is_empty() {
        problems.push(format!("tensors not in the {what}: {:?}", result.unused));
    }
    if !problems.is_empty() {
        return Err(GenError::CheckpointMismatch {
            path: path.into(),
            reason: problems.join("; "),
        });
    }
    Ok(model)
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> GenError {
    GenError::CorruptCheckpoint {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_in_the_folder_pass_as_manifest_files() {
        for good in ["weights-00000010.bpk", "optimizer-d-00000010.bpk", "w..bpk"] {
            assert!(is_plain_file_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../shared/pretrained.bpk",
            "/etc/passwd",
            "sub/weights.bpk",
            "sub\\weights.bpk",
            "./weights.bpk",
        ] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn checkpoint_file_names_are_recognised_exactly() {
        for ours in [
            "weights-00000010.bpk",
            "optimizer-00000010.bpk",
            "optimizer-discriminator-123456789.bpk",
        ] {
            assert!(is_checkpoint_file_name(ours), "{ours}");
        }
        for theirs in [
            "weights-10.bpk",
            "weights-00000010.safetensors",
            "my-weights-00000010.bpk",
            "optimizer--00000010.bpk",
            "weights-0000001x.bpk",
            "pretrained.bpk",
        ] {
            assert!(!is_checkpoint_file_name(theirs), "{theirs}");
        }
    }
}

//! MNIST: the bundled 10,000-digit sample, or the full set (or any IDX files) from a directory.

use std::path::{Path, PathBuf};

use crate::dataset::ImageSet;
use crate::error::DataError;
use crate::idx::{decompress_if_gzip, parse_idx, read_idx_file};

const BUNDLED_DIR: &str = "data/mnist-10k";
static BUNDLED_TRAIN_IMAGES: &[u8] = include_bytes!("../data/mnist-10k/train-images-idx3-ubyte.gz");
static BUNDLED_TRAIN_LABELS: &[u8] = include_bytes!("../data/mnist-10k/train-labels-idx1-ubyte.gz");
static BUNDLED_TEST_IMAGES: &[u8] = include_bytes!("../data/mnist-10k/test-images-idx3-ubyte.gz");
static BUNDLED_TEST_LABELS: &[u8] = include_bytes!("../data/mnist-10k/test-labels-idx1-ubyte.gz");

/// A train/test split of labelled MNIST-style images.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The training split.
    pub train: ImageSet,
    /// The test split.
    pub test: ImageSet,
}

impl Mnist {
    /// The sample bundled in this crate: 8,000 training and 2,000 test digits of the real
    /// MNIST, embedded in the binary (see `data/mnist-10k/README.md` for their provenance).
    ///
    /// # Errors
    /// Only if the embedded files were damaged at build time.
    pub fn bundled() -> Result<Self, DataError> {
        let name = |f: &str| PathBuf::from(format!("<bundled>/{BUNDLED_DIR}/{f}"));
        let load = |bytes: &[u8], file: &str| {
            let path = name(file);
            parse_idx(&decompress_if_gzip(bytes, true, &path)?, &path)
        };
        let train = ImageSet::from_idx(
            load(BUNDLED_TRAIN_IMAGES, "train-images-idx3-ubyte.gz")?,
            Some(load(BUNDLED_TRAIN_LABELS, "train-labels-idx1-ubyte.gz")?),
            &name("train"),
        )?;
        let test = ImageSet::from_idx(
            load(BUNDLED_TEST_IMAGES, "test-images-idx3-ubyte.gz")?,
            Some(load(BUNDLED_TEST_LABELS, "test-labels-idx1-ubyte.gz")?),
            &name("test"),
        )?;
        Ok(Self { train, test })
    }

    /// Reads MNIST (or any IDX images with the same file names) from `dir`.
    ///
    /// The files may be raw or gzip-compressed: `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`, and for the test split `t10k-…` (the original MNIST
    /// names) or `test-…`. Label files are optional; images without them have no labels.
    ///
    /// # Errors
    /// [`DataError::MissingFile`] when an image file is absent; any IDX error of the files.
    pub fn from_dir(dir: &Path) -> Result<Self, DataError> {
        let train = load_split(dir, &["train"])?;
        let test = load_split(dir, &["t10k", "test"])?;
        Ok(Self { train, test })
    }
}

fn load_split(dir: &Path, prefixes: &[&str]) -> Result<ImageSet, DataError> {
    let candidates = |kind: &str| -> Vec<String> {
        prefixes
            .iter()
            .flat_map(|p| {
                let base = format!("{p}-{kind}");
                [base.clone(), format!("{base}.gz")]
            })
            .collect()
    };
    let find = |kind: &str| {
        let names = candidates(kind);
        let found = names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
        (found, names)
    };
    let (images, tried) = find("images-idx3-ubyte");
    let images = images.ok_or_else(|| DataError::MissingFile {
        dir: dir.into(),
        what: format!("{} images", prefixes[0]),
        tried,
    })?;
    let labels = match find("labels-idx1-ubyte").0 {
        Some(path) => Some(read_idx_file(&path)?),
        None => None,
    };
    ImageSet::from_idx(read_idx_file(&images)?, labels, &images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{IdxArray, encode_idx};

    #[test]
    fn bundled_sample_has_the_documented_sizes_and_class_counts() {
        let mnist = Mnist::bundled().unwrap();
        assert_eq!(mnist.train.len(), 8000);
        assert_eq!(mnist.test.len(), 2000);
        assert_eq!(mnist.train.shape(), genmodels_core::ImageShape::MNIST);
        let mut counts = [0usize; 10];
        for &l in mnist.train.labels().unwrap() {
            counts[l as usize] += 1;
        }
        // From data/mnist-10k/README.md.
        assert_eq!(counts, [794, 900, 793, 834, 794, 691, 812, 854, 762, 766]);
    }

    #[test]
    fn reads_raw_files_with_original_mnist_names_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let images = IdxArray {
            dims: vec![3, 2, 2],
            data: (0..12).collect(),
        };
        let labels = IdxArray {
            dims: vec![3],
            data: vec![7, 8, 9],
        };
        for prefix in ["train", "t10k"] {
            std::fs::write(
                dir.path().join(format!("{prefix}-images-idx3-ubyte")),
                encode_idx(&images),
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("{prefix}-labels-idx1-ubyte")),
                encode_idx(&labels),
            )
            .unwrap();
        }
        let mnist = Mnist::from_dir(dir.path()).unwrap();
        assert_eq!(mnist.test.len(), 3);
        assert_eq!(mnist.train.labels().unwrap(), &[7, 8, 9]);
    }

    #[test]
    fn a_directory_without_images_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Mnist::from_dir(dir.path()),
            Err(DataError::MissingFile { .. })
        ));
    }
}

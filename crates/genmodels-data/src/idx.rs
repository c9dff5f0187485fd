//! The IDX format of MNIST: a 4-byte magic number `00 00 TT NN` (element type, number of
//! dimensions), `NN` big-endian `u32` dimensions, then the elements in row-major order.
//! Files may be gzip-compressed.

use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// IDX element type code for unsigned bytes, the only one MNIST uses.
pub const IDX_TYPE_U8: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[N, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file, gzip-compressed or raw.
///
/// A file whose name ends in `.gz` must be gzip data; any other file is decompressed when it
/// starts with the gzip magic bytes and read raw otherwise.
///
/// # Errors
/// [`DataError::NotGzip`], [`DataError::Gzip`] for broken compression, and the errors of
/// [`parse_idx`].
pub fn read_idx_file(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let raw = decompress_if_gzip(&bytes, named_gz, path)?;
    parse_idx(&raw, path)
}

/// Decompresses gzip data; passes raw data through. `must_be_gzip` rejects raw data.
///
/// # Errors
/// [`DataError::NotGzip`] when `must_be_gzip` and the data is raw; [`DataError::Gzip`] when
/// decompression fails.
pub fn decompress_if_gzip(
    bytes: &[u8],
    must_be_gzip: bool,
    path: &Path,
) -> Result<Vec<u8>, DataError> {
    let is_gzip = bytes.starts_with(&[0x1f, 0x8b]);
    if !is_gzip {
        if must_be_gzip {
            return Err(DataError::NotGzip { path: path.into() });
        }
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| DataError::Gzip {
            path: path.into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Parses uncompressed IDX bytes; `path` only names the source in errors.
///
/// # Errors
/// [`DataError::BadMagic`], [`DataError::UnsupportedType`], [`DataError::Truncated`] when
/// the header or data is cut short, and [`DataError::DimensionMismatch`] when bytes remain
/// after the data the dimensions describe.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: 4,
            actual: bytes.len(),
        });
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: magic,
        });
    }
    if magic[2] != IDX_TYPE_U8 {
        return Err(DataError::UnsupportedType {
            path: path.into(),
            code: magic[2],
        });
    }
    let ndims = magic[3] as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: header_len,
            actual: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::DimensionMismatch {
            path: path.into(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let data = &bytes[header_len..];
    if data.len() < expected {
        return Err(DataError::Truncated {
            path: path.into(),
            expected,
            actual: data.len(),
        });
    }
    if data.len() > expected {
        return Err(DataError::DimensionMismatch {
            path: path.into(),
            reason: format!(
                "dimensions {dims:?} call for {expected} bytes, but {} follow the header",
                data.len()
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Encodes an array as IDX bytes (unsigned bytes), e.g. to write test fixtures or subsets.
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = vec![0, 0, IDX_TYPE_U8, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend(&array.data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> IdxArray {
        IdxArray {
            dims: vec![2, 2, 3],
            data: (0..12).collect(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn round_trips_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_idx(&sample());
        let raw = write(dir.path(), "a-idx3-ubyte", &bytes);
        let gz = write(dir.path(), "a-idx3-ubyte.gz", &gzip(&bytes));
        assert_eq!(read_idx_file(&raw).unwrap(), sample());
        assert_eq!(read_idx_file(&gz).unwrap(), sample());
    }

    #[test]
    fn rejects_truncated_data() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_idx(&sample());
        let path = write(dir.path(), "t", &bytes[..bytes.len() - 1]);
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::Truncated {
                expected: 12,
                actual: 11,
                ..
            })
        ));
        let path = write(dir.path(), "h", &bytes[..6]);
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_a_truncated_gzip_stream() {
        let dir = tempfile::tempdir().unwrap();
        let gz = gzip(&encode_idx(&sample()));
        let path = write(dir.path(), "t.gz", &gz[..gz.len() / 2]);
        assert!(matches!(read_idx_file(&path), Err(DataError::Gzip { .. })));
    }

    #[test]
    fn rejects_a_wrong_magic_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_idx(&sample());
        bytes[0] = 0x42;
        let path = write(dir.path(), "m", &bytes);
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::BadMagic { .. })
        ));
        let mut bytes = encode_idx(&sample());
        bytes[2] = 0x0D; // float elements
        let path = write(dir.path(), "f", &bytes);
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::UnsupportedType { code: 0x0D, .. })
        ));
    }

    #[test]
    fn rejects_a_dimension_length_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_idx(&sample());
        bytes.extend([1, 2, 3]);
        let path = write(dir.path(), "d", &bytes);
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn rejects_a_non_gzip_file_named_gz() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "x-idx3-ubyte.gz", &encode_idx(&sample()));
        assert!(matches!(
            read_idx_file(&path),
            Err(DataError::NotGzip { .. })
        ));
    }
}

//! Seeded mutations of IDX files, raw and gzip-compressed: whatever the bytes, reading them
//! gives data or a typed [`DataError`], never a panic.
//!
//! `GENMODELS_MUTATIONS=N` sets how many mutations run (default 20,000, a few seconds); the
//! longer runs quoted in docs/reliability.md set it higher.

use std::io::Write;
use std::path::Path;

use genmodels_data::ImageSet;
use genmodels_data::idx::{IdxArray, decompress_if_gzip, encode_idx, parse_idx};

/// SplitMix64: a seeded stream of random words, so that a failing mutation can be replayed
/// from its number.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `bytes` changed in one to three ways: bits flipped, bytes overwritten (often in the
    /// header, where the dimensions are), a cut, bytes appended, or a header word set to an
    /// extreme value.
    fn mutate(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for _ in 0..1 + self.below(3) {
            match self.below(6) {
                0 if !out.is_empty() => {
                    let at = self.below(out.len());
                    out[at] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let at = self.below(out.len().min(16));
                    out[at] = self.next() as u8;
                }
                2 if !out.is_empty() => {
                    let at = self.below(out.len());
                    out[at] = self.next() as u8;
                }
                3 => out.truncate(self.below(out.len() + 1)),
                4 => {
                    let extra = self.below(64);
                    out.extend((0..extra).map(|_| self.next() as u8));
                }
                _ if out.len() >= 8 => {
                    let word = [0u32, 1, 0x7FFF_FFFF, u32::MAX, self.next() as u32];
                    let at = 4 * self.below(out.len().min(16) / 4);
                    out[at..at + 4].copy_from_slice(&word[self.below(word.len())].to_be_bytes());
                }
                _ => {}
            }
        }
        out
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn iterations() -> usize {
    std::env::var("GENMODELS_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

/// Reads `images` and `labels` as the loader does (gzip or raw, parsed, paired).
fn read(images: &[u8], labels: &[u8]) -> Result<ImageSet, genmodels_data::DataError> {
    let path = Path::new("mutated");
    let images = parse_idx(&decompress_if_gzip(images, false, path)?, path)?;
    let labels = parse_idx(&decompress_if_gzip(labels, false, path)?, path)?;
    ImageSet::from_idx(images, Some(labels), path)
}

#[test]
fn mutated_idx_files_are_read_or_refused_with_a_typed_error_never_a_panic() {
    let images = encode_idx(&IdxArray {
        dims: vec![5, 4, 3],
        data: (0..60).map(|v| (v * 4) as u8).collect(),
    });
    let labels = encode_idx(&IdxArray {
        dims: vec![5],
        data: vec![0, 1, 2, 3, 9],
    });
    assert_eq!(read(&images, &labels).unwrap().len(), 5);
    let mut mutator = Mutator(20);
    let (mut read_fine, mut refused) = (0, 0);
    for i in 0..iterations() {
        // Raw or compressed, the images or the labels, the compressed stream itself or the
        // bytes inside it.
        let choice = mutator.below(4);
        let (mut mutated_images, mut mutated_labels) = (images.clone(), labels.clone());
        match choice {
            0 => mutated_images = mutator.mutate(&images),
            1 => mutated_labels = mutator.mutate(&labels),
            2 => mutated_images = gzip(&mutator.mutate(&images)),
            _ => mutated_images = mutator.mutate(&gzip(&images)),
        }
        let outcome = std::panic::catch_unwind(|| read(&mutated_images, &mutated_labels));
        match outcome {
            Ok(Ok(set)) => {
                read_fine += 1;
                assert!(set.len() <= mutated_images.len(), "mutation {i}");
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("mutation {i} (kind {choice}) panicked"),
        }
    }
    assert!(
        refused > 0 && read_fine > 0,
        "{read_fine} read, {refused} refused"
    );
}

//! Content-defined chunking of files: FastCDC (v2020) with a gear table derived from a
//! per-vault key, so that chunk boundaries do not fingerprint content across vaults.

use serde::{Deserialize, Serialize};

use crate::FormatError;

/// Chunk size bounds of the file chunker, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 64 KiB / 256 KiB / 1 MiB: see DESIGN.md for the measurements behind it.
    fn default() -> Self {
        ChunkerParams {
            min_size: 64 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC supports.
    pub fn validate(&self) -> crate::Result<()> {
        // FastCDC's own limits; it also requires even sizes (its masks assume them).
        let ok = (64..=1 << 20).contains(&self.min_size)
            && (256..=1 << 22).contains(&self.avg_size)
            && (1024..=1 << 24).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && [self.min_size, self.avg_size, self.max_size]
                .iter()
                .all(|s| s % 2 == 0);
        if ok {
            Ok(())
        } else {
            Err(FormatError::malformed(
                "chunker parameters",
                format!("{self:?} out of range"),
            ))
        }
    }
}

/// Finds chunk boundaries in file content.
///
/// Callers feed a window that holds at least `max_size` bytes or the rest of the file;
/// [`FileChunker::next_cut`] returns where the first chunk of that window ends.
#[derive(Clone)]
pub struct FileChunker {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl FileChunker {
    /// A chunker whose gear table is derived from `key` (32 bytes: from the vault key in an
    /// encrypted vault, a random per-vault seed otherwise).
    pub fn new(params: ChunkerParams, key: &[u8; 32]) -> crate::Result<Self> {
        params.validate()?;
        let mut bytes = [0u8; 256 * 8];
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(b"kura chunker gear table v1");
        hasher.finalize_xof().fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        let mut gear_ls = Box::new([0u64; 256]);
        for (i, word) in bytes.chunks_exact(8).enumerate() {
            let v = u64::from_le_bytes(word.try_into().expect("8-byte chunk"));
            gear[i] = v;
            gear_ls[i] = v << 1;
        }
        let (mask_s, mask_l) =
            fastcdc::v2020::select_masks(params.avg_size as usize, fastcdc::v2020::Normalization::Level1);
        Ok(FileChunker {
            params,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        })
    }

    /// The bounds this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `window`. `window` must hold at least `max_size`
    /// bytes unless it is the end of the file; a window shorter than `min_size` is one
    /// chunk.
    pub fn next_cut(&self, window: &[u8]) -> usize {
        if window.is_empty() {
            return 0;
        }
        let (_, cut) = fastcdc::v2020::cut_gear(
            window,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        cut.max(1)
    }

    /// Lengths of all chunks of a whole in-memory file.
    pub fn chunk_lengths(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.next_cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new_keyed(&[seed; 32])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn cut_points(chunker: &FileChunker, data: &[u8]) -> Vec<usize> {
        let mut pos = 0;
        chunker
            .chunk_lengths(data)
            .into_iter()
            .map(|n| {
                pos += n;
                pos
            })
            .collect()
    }

    /// Pins the cut points of the default parameters: if this changes, every existing
    /// vault stops deduplicating against new backups. Never update it casually.
    #[test]
    fn golden_cut_points() {
        let data = pseudo_random(4 << 20, 7);
        let chunker = FileChunker::new(ChunkerParams::default(), &[42; 32]).unwrap();
        assert_eq!(cut_points(&chunker, &data), GOLDEN);
    }

    const GOLDEN: &[usize] = &[
        202956, 368190, 638449, 937886, 1269041, 1384914, 1717044, 1841104, 2116548, 2280676, 2587316,
        2747541, 2877539, 3387091, 3680193, 4008742, 4194304,
    ];

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(4 << 20, 9);
        let a = FileChunker::new(ChunkerParams::default(), &[1; 32]).unwrap();
        let b = FileChunker::new(ChunkerParams::default(), &[2; 32]).unwrap();
        assert_ne!(cut_points(&a, &data), cut_points(&b, &data));
    }

    #[test]
    fn rejects_params_fastcdc_cannot_take() {
        for (min, avg, max) in [(1 << 16, 1 << 25, 1 << 26), (1 << 16, (1 << 18) + 1, 1 << 20)] {
            let p = ChunkerParams {
                min_size: min,
                avg_size: avg,
                max_size: max,
            };
            assert!(FileChunker::new(p, &[0; 32]).is_err(), "{p:?}");
        }
    }

    #[test]
    fn rejects_bad_params() {
        let p = ChunkerParams {
            min_size: 1 << 20,
            avg_size: 1024,
            max_size: 4096,
        };
        assert!(FileChunker::new(p, &[0; 32]).is_err());
    }

    #[test]
    fn insertion_only_disturbs_nearby_chunks() {
        let chunker = FileChunker::new(ChunkerParams::default(), &[3; 32]).unwrap();
        let data = pseudo_random(8 << 20, 1);
        let mut edited = data.clone();
        edited.splice(3_000_000..3_000_000, pseudo_random(1000, 2));
        let ids = |d: &[u8]| {
            let mut pos = 0;
            chunker
                .chunk_lengths(d)
                .into_iter()
                .map(|n| {
                    let h = blake3::hash(&d[pos..pos + n]);
                    pos += n;
                    h
                })
                .collect::<std::collections::HashSet<_>>()
        };
        let before = ids(&data);
        let after = ids(&edited);
        let new = after.difference(&before).count();
        assert!(new <= 3, "{new} new chunks after a 1000-byte insertion");
    }

    proptest! {
        #[test]
        fn chunks_cover_input_within_bounds(len in 0usize..3_000_000, seed in any::<u8>()) {
            let params = ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 };
            let chunker = FileChunker::new(params, &[seed; 32]).unwrap();
            let data = pseudo_random(len, seed);
            let lens = chunker.chunk_lengths(&data);
            prop_assert_eq!(lens.iter().sum::<usize>(), len);
            for (i, &n) in lens.iter().enumerate() {
                prop_assert!(n <= 65536);
                if i + 1 < lens.len() {
                    prop_assert!(n >= 4096);
                }
            }
        }

        #[test]
        fn windowed_equals_whole(len in 0usize..600_000) {
            // Cutting a stream through a window of max_size bytes gives the same chunks as
            // cutting the whole buffer.
            let params = ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 };
            let chunker = FileChunker::new(params, &[5; 32]).unwrap();
            let data = pseudo_random(len, 3);
            let mut pos = 0;
            let mut windowed = Vec::new();
            while pos < data.len() {
                let end = (pos + 65536).min(data.len());
                let n = chunker.next_cut(&data[pos..end]);
                windowed.push(n);
                pos += n;
            }
            prop_assert_eq!(windowed, chunker.chunk_lengths(&data));
        }
    }
}

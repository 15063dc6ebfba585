//! FastCDC content-defined chunking (Xia et al., USENIX ATC 2016): a gear rolling hash with
//! cut-point skipping and normalized chunking, so that chunk boundaries depend on the content
//! around them and not on their position. An insertion or deletion moves the boundaries near the
//! edit only; the chunks after it are cut exactly as before and deduplicate.
//!
//! The gear table comes from a fixed seed, so boundaries are a pure function of the bytes and the
//! [`CdcParams`]: every libdat build cuts the same input the same way, which is what lets a dedup
//! index built by one version be reused by the next. Changing the seed, the masks or the loop below
//! changes every boundary; the unit tests pin them.

use crate::error::{Error, Result};

/// Default smallest chunk: 16 KiB.
pub const DEFAULT_MIN_SIZE: usize = 16 * 1024;
/// Default target chunk size: 32 KiB.
pub const DEFAULT_AVG_SIZE: usize = 32 * 1024;
/// Default largest chunk: 64 KiB, so that one chunk never exceeds one default blob block.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

/// The smallest `min_size` accepted: the gear hash looks at the last 64 bytes.
pub const MIN_CHUNK_SIZE: usize = 64;
/// The largest `max_size` accepted (hypercore's largest suggested block, 15 MiB).
pub const MAX_CHUNK_SIZE: usize = 15 * 1024 * 1024;

/// Seed of the gear table ("libdat-c"). Part of the chunk format: do not change.
const GEAR_SEED: u64 = 0x6c69_6264_6174_2d63;

/// The 256 gear values, from SplitMix64 seeded with [`GEAR_SEED`].
static GEAR: [u64; 256] = gear_table(GEAR_SEED);

const fn gear_table(seed: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state = seed;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
}

/// A mask of the `bits` highest bits. The high bits of a gear hash depend on the last 64 bytes,
/// the low ones on only the last few, so the masks sit at the top.
fn top_bits(bits: u32) -> u64 {
    if bits == 0 { 0 } else { !0u64 << (64 - bits) }
}

/// Chunk size bounds for [`FastCdc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdcParams {
    /// No cut before this many bytes (the last chunk of an input may be shorter).
    pub min_size: usize,
    /// The size the cut-point masks aim at (rounded down to a power of two for the masks).
    pub avg_size: usize,
    /// A chunk is cut here at the latest.
    pub max_size: usize,
}

impl Default for CdcParams {
    fn default() -> Self {
        CdcParams {
            min_size: DEFAULT_MIN_SIZE,
            avg_size: DEFAULT_AVG_SIZE,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// A FastCDC chunker: cheap to copy, no state between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastCdc {
    params: CdcParams,
    /// Harder mask (more bits) used below `avg_size`.
    mask_small: u64,
    /// Easier mask (fewer bits) used from `avg_size` on.
    mask_large: u64,
}

impl Default for FastCdc {
    fn default() -> Self {
        FastCdc::new(CdcParams::default()).expect("the default parameters are valid")
    }
}

impl FastCdc {
    /// A chunker for `params`. Needs `64 <= min_size <= avg_size <= max_size <= 15 MiB`.
    pub fn new(params: CdcParams) -> Result<FastCdc> {
        let CdcParams {
            min_size,
            avg_size,
            max_size,
        } = params;
        if min_size < MIN_CHUNK_SIZE
            || min_size > avg_size
            || avg_size > max_size
            || max_size > MAX_CHUNK_SIZE
        {
            return Err(Error::InvalidArgument(format!(
                "chunk sizes must satisfy {MIN_CHUNK_SIZE} <= min ({min_size}) <= avg ({avg_size}) \
                 <= max ({max_size}) <= {MAX_CHUNK_SIZE}"
            )));
        }
        // Normalization level 2: two bits harder before the target size, two easier after.
        let bits = avg_size.ilog2();
        Ok(FastCdc {
            params,
            mask_small: top_bits(bits + 2),
            mask_large: top_bits(bits.saturating_sub(2)),
        })
    }

    /// The parameters.
    pub fn params(&self) -> CdcParams {
        self.params
    }

    /// Length of the first chunk of `data`. `data` must be the rest of the input, or at least
    /// `max_size` bytes of it: the cut only looks at the first `max_size` bytes, so the result
    /// does not depend on what follows them (a stream can cut as soon as it holds `max_size`
    /// bytes). Returns 0 only for empty input.
    pub fn cut(&self, data: &[u8]) -> usize {
        let CdcParams {
            min_size,
            avg_size,
            max_size,
        } = self.params;
        if data.len() <= min_size {
            return data.len();
        }
        let end = data.len().min(max_size);
        let normal = avg_size.min(end);
        let mut hash = 0u64;
        let mut i = min_size;
        while i < normal {
            hash = (hash << 1).wrapping_add(GEAR[data[i] as usize]);
            if hash & self.mask_small == 0 {
                return i + 1;
            }
            i += 1;
        }
        while i < end {
            hash = (hash << 1).wrapping_add(GEAR[data[i] as usize]);
            if hash & self.mask_large == 0 {
                return i + 1;
            }
            i += 1;
        }
        end
    }

    /// The chunks of `data`, in order; they concatenate to `data`.
    pub fn chunks<'d>(&self, data: &'d [u8]) -> Chunks<'d> {
        Chunks { cdc: *self, data }
    }
}

/// Iterator over the chunks of a buffer, from [`FastCdc::chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'d> {
    cdc: FastCdc,
    data: &'d [u8],
}

impl<'d> Iterator for Chunks<'d> {
    type Item = &'d [u8];

    fn next(&mut self) -> Option<&'d [u8]> {
        if self.data.is_empty() {
            return None;
        }
        let n = self.cdc.cut(self.data);
        let (chunk, rest) = self.data.split_at(n);
        self.data = rest;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// xorshift64*: test data only.
    fn random(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    fn lengths(cdc: &FastCdc, data: &[u8]) -> Vec<usize> {
        cdc.chunks(data).map(<[u8]>::len).collect()
    }

    #[test]
    fn gear_table_is_pinned() {
        // Changing these changes every chunk boundary (and defeats existing dedup indexes).
        assert_eq!(GEAR[0], 0x7af7_526c_59bc_7307);
        assert_eq!(GEAR[1], 0xb120_a4ca_5f3b_f59a);
        assert_eq!(GEAR[255], 0x937d_d1c4_7733_efe5);
    }

    #[test]
    fn boundaries_are_pinned() {
        let data = random(7, 1 << 20);
        let lens = lengths(&FastCdc::default(), &data);
        assert_eq!(
            &lens[..8],
            &[34033, 20935, 35196, 36156, 36197, 43253, 36471, 17133]
        );
    }

    #[test]
    fn chunks_cover_input_within_bounds() {
        let cdc = FastCdc::default();
        for (seed, n) in [
            (1, 0),
            (2, 1),
            (3, 16 * 1024),
            (4, 16 * 1024 + 1),
            (5, 3 << 20),
        ] {
            let data = random(seed, n);
            let chunks: Vec<&[u8]> = cdc.chunks(&data).collect();
            assert_eq!(chunks.concat(), data);
            for (i, c) in chunks.iter().enumerate() {
                assert!(c.len() <= DEFAULT_MAX_SIZE);
                assert!(!c.is_empty());
                if i + 1 < chunks.len() {
                    assert!(c.len() >= DEFAULT_MIN_SIZE);
                }
            }
            // Deterministic.
            assert_eq!(lengths(&cdc, &data), lengths(&cdc, &data));
        }
    }

    #[test]
    fn average_is_near_target() {
        let cdc = FastCdc::default();
        let data = random(11, 8 << 20);
        let lens = lengths(&cdc, &data);
        let avg = data.len() / lens.len();
        assert!((28 * 1024..48 * 1024).contains(&avg), "average chunk {avg}");
        // Normalized chunking: few chunks hit the maximum.
        let at_max = lens.iter().filter(|&&l| l == DEFAULT_MAX_SIZE).count();
        assert!(
            at_max * 20 < lens.len(),
            "{at_max} of {} at max",
            lens.len()
        );
    }

    #[test]
    fn cut_ignores_bytes_past_max() {
        let cdc = FastCdc::default();
        let mut data = random(12, 200_000);
        let first = cdc.cut(&data[..DEFAULT_MAX_SIZE]);
        data.truncate(DEFAULT_MAX_SIZE + 1);
        assert_eq!(cdc.cut(&data), first);
    }

    fn reused_share(original: &[u8], edited: &[u8]) -> (usize, usize) {
        let cdc = FastCdc::default();
        let before: HashSet<&[u8]> = cdc.chunks(original).collect();
        let after: Vec<&[u8]> = cdc.chunks(edited).collect();
        let reused = after.iter().filter(|c| before.contains(*c)).count();
        (reused, after.len())
    }

    #[test]
    fn insertion_in_front_keeps_later_boundaries() {
        let data = random(21, 2 << 20);
        for insert in [1usize, 100, 5000] {
            let mut edited = random(99, insert);
            edited.extend_from_slice(&data);
            let (reused, total) = reused_share(&data, &edited);
            // Only the chunks around the edit change (resynchronizing can take a few chunks).
            assert!(
                reused + 5 >= total,
                "{insert} bytes in front: {reused} of {total} reused"
            );
            assert!(reused * 10 >= total * 9);
        }
    }

    #[test]
    fn insertion_in_the_middle_reuses_most_chunks() {
        let data = random(22, 2 << 20);
        let mut edited = data[..1_000_000].to_vec();
        edited.extend_from_slice(b"an edit in the middle of the file");
        edited.extend_from_slice(&data[1_000_000..]);
        let (reused, total) = reused_share(&data, &edited);
        assert!(reused + 5 >= total, "{reused} of {total} reused");
        assert!(reused * 10 >= total * 9);
    }

    #[test]
    fn params_are_checked() {
        let p = |min, avg, max| {
            FastCdc::new(CdcParams {
                min_size: min,
                avg_size: avg,
                max_size: max,
            })
        };
        assert!(p(63, 128, 256).is_err());
        assert!(p(256, 128, 512).is_err());
        assert!(p(64, 1024, 512).is_err());
        assert!(p(64, 1024, MAX_CHUNK_SIZE + 1).is_err());
        let small = p(64, 256, 1024).unwrap();
        let data = random(3, 100_000);
        assert!(small.chunks(&data).all(|c| c.len() <= 1024));
        assert_eq!(small.chunks(&data).collect::<Vec<_>>().concat(), data);
    }
}

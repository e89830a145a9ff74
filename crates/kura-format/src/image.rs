//! Image indexes: how an image snapshot maps the bytes of a disk image to chunks.
//!
//! An image is cut into fixed-size chunks. Their ids are grouped into segments of
//! [`SEGMENT_CHUNKS`] chunks (1 GiB of image at 256 KiB chunks), each stored as its own
//! blob, and the [`ImageIndex`] lists the segments. An unchanged gigabyte of a 100 TB
//! image therefore costs one deduplicated segment, not 4096 index entries, and the root
//! index stays small (3.2 MB for 100 TB). An all-zero chunk has no id: it is a bit in
//! the segment's zero bitmap and is never stored.
//!
//! Encoded as CBOR with short field names (`docs/format.md` lists them).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{ChunkId, FormatError};

/// Current image index and segment format version.
pub const IMAGE_INDEX_VERSION: u32 = 1;
/// Chunks per index segment.
pub const SEGMENT_CHUNKS: u32 = 4096;
/// Largest image this format describes (8 EiB would overflow offsets long before).
pub const MAX_IMAGE_SIZE: u64 = 1 << 60;

/// The root of an image snapshot: the image's size, how it was cut, and its segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageIndex {
    /// Image size in bytes; the last chunk may be shorter than `chunk_size`.
    pub size: u64,
    pub chunk_size: u32,
    pub segment_chunks: u32,
    /// One id per segment, in image order.
    pub segments: Vec<ChunkId>,
    /// The image file's identity when it was read; `None` for block devices.
    pub source: Option<SourceStamp>,
}

/// What identifies an unchanged image file without reading it (as for files in a tree):
/// a later backup whose file has the same stamp reuses the index as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStamp {
    #[serde(rename = "s")]
    pub size: u64,
    #[serde(rename = "m")]
    pub mtime_ns: i64,
    #[serde(rename = "c")]
    pub ctime_ns: i64,
    #[serde(rename = "d")]
    pub device: u64,
    #[serde(rename = "n")]
    pub inode: u64,
}

#[derive(Serialize, Deserialize)]
struct IndexWire {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "s")]
    size: u64,
    #[serde(rename = "c")]
    chunk_size: u32,
    #[serde(rename = "g")]
    segment_chunks: u32,
    /// Segment ids, 32 bytes each, concatenated.
    #[serde(rename = "i")]
    segments: ByteBuf,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    source: Option<SourceStamp>,
}

impl ImageIndex {
    /// Number of chunks an image of `size` bytes has at `chunk_size`.
    pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
        size.div_ceil(u64::from(chunk_size))
    }

    /// Number of segments an image of `size` bytes has.
    pub fn segment_count(size: u64, chunk_size: u32, segment_chunks: u32) -> u64 {
        Self::chunk_count(size, chunk_size).div_ceil(u64::from(segment_chunks))
    }

    /// How many chunks segment `n` holds (the last one may hold fewer).
    pub fn chunks_in_segment(&self, n: u64) -> u32 {
        let total = Self::chunk_count(self.size, self.chunk_size);
        let start = n * u64::from(self.segment_chunks);
        total.saturating_sub(start).min(u64::from(self.segment_chunks)) as u32
    }

    /// The byte range of the image that chunk `n` covers.
    pub fn chunk_range(&self, n: u64) -> std::ops::Range<u64> {
        let start = n * u64::from(self.chunk_size);
        start..(start + u64::from(self.chunk_size)).min(self.size)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut ids = Vec::with_capacity(self.segments.len() * 32);
        for s in &self.segments {
            ids.extend_from_slice(s.as_bytes());
        }
        let wire = IndexWire {
            version: IMAGE_INDEX_VERSION,
            size: self.size,
            chunk_size: self.chunk_size,
            segment_chunks: self.segment_chunks,
            segments: ByteBuf::from(ids),
            source: self.source,
        };
        let mut out = Vec::new();
        ciborium::into_writer(&wire, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// Decodes untrusted bytes and checks that sizes, chunking and segments agree.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let w: IndexWire = ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("image index", e))?;
        check_version("image index", w.version)?;
        if !(4096..=16 << 20).contains(&w.chunk_size) || !w.chunk_size.is_power_of_two() {
            return Err(FormatError::malformed(
                "image index",
                format!(
                    "chunk size {} is not a power of two from 4 KiB to 16 MiB",
                    w.chunk_size
                ),
            ));
        }
        if w.segment_chunks == 0 || w.segment_chunks > 1 << 20 {
            return Err(FormatError::malformed(
                "image index",
                format!("{} chunks per segment is out of range", w.segment_chunks),
            ));
        }
        if w.size > MAX_IMAGE_SIZE {
            return Err(FormatError::malformed(
                "image index",
                format!("image size {} is too large", w.size),
            ));
        }
        let want = Self::segment_count(w.size, w.chunk_size, w.segment_chunks);
        if !w.segments.len().is_multiple_of(32) || (w.segments.len() / 32) as u64 != want {
            return Err(FormatError::malformed(
                "image index",
                format!(
                    "{} bytes of segment ids for an image of {} segments",
                    w.segments.len(),
                    want
                ),
            ));
        }
        Ok(ImageIndex {
            size: w.size,
            chunk_size: w.chunk_size,
            segment_chunks: w.segment_chunks,
            segments: ids_of(&w.segments),
            source: w.source,
        })
    }
}

/// The chunks of one segment: `None` marks an all-zero chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSegment {
    pub chunks: Vec<Option<ChunkId>>,
}

#[derive(Serialize, Deserialize)]
struct SegmentWire {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "n")]
    count: u32,
    /// One bit per chunk, least significant bit first: set when the chunk is all zeros.
    #[serde(rename = "z")]
    zero: ByteBuf,
    /// Ids of the chunks that are not zero, in order, 32 bytes each.
    #[serde(rename = "i")]
    ids: ByteBuf,
}

impl ImageSegment {
    pub fn encode(&self) -> Vec<u8> {
        let mut zero = vec![0u8; self.chunks.len().div_ceil(8)];
        let mut ids = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            match c {
                Some(id) => ids.extend_from_slice(id.as_bytes()),
                None => zero[i / 8] |= 1 << (i % 8),
            }
        }
        let wire = SegmentWire {
            version: IMAGE_INDEX_VERSION,
            count: self.chunks.len() as u32,
            zero: ByteBuf::from(zero),
            ids: ByteBuf::from(ids),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&wire, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// Decodes untrusted bytes of a segment that must hold `expected` chunks.
    pub fn decode(bytes: &[u8], expected: u32) -> crate::Result<Self> {
        let w: SegmentWire =
            ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("image segment", e))?;
        check_version("image segment", w.version)?;
        if w.count != expected {
            return Err(FormatError::malformed(
                "image segment",
                format!("holds {} chunks where the index expects {expected}", w.count),
            ));
        }
        let count = w.count as usize;
        if w.zero.len() != count.div_ceil(8) {
            return Err(FormatError::malformed(
                "image segment",
                "zero bitmap has the wrong length",
            ));
        }
        let is_zero = |i: usize| w.zero[i / 8] & (1 << (i % 8)) != 0;
        let present = (0..count).filter(|&i| !is_zero(i)).count();
        if w.ids.len() != present * 32 {
            return Err(FormatError::malformed(
                "image segment",
                format!("{} bytes of ids for {present} stored chunks", w.ids.len()),
            ));
        }
        let mut ids = ids_of(&w.ids).into_iter();
        let chunks = (0..count)
            .map(|i| if is_zero(i) { None } else { ids.next() })
            .collect();
        Ok(ImageSegment { chunks })
    }
}

fn check_version(what: &'static str, version: u32) -> crate::Result<()> {
    if version == IMAGE_INDEX_VERSION {
        Ok(())
    } else {
        Err(FormatError::UnsupportedVersion {
            what,
            version,
            supported: IMAGE_INDEX_VERSION,
        })
    }
}

fn ids_of(bytes: &[u8]) -> Vec<ChunkId> {
    bytes
        .chunks_exact(32)
        .map(|c| ChunkId(c.try_into().expect("32 bytes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn index_geometry() {
        let idx = ImageIndex {
            size: 10 * 4096 + 1,
            chunk_size: 4096,
            segment_chunks: 4,
            segments: vec![id(1), id(2), id(3)],
            source: Some(SourceStamp {
                size: 10 * 4096 + 1,
                mtime_ns: 1,
                ctime_ns: -2,
                device: 3,
                inode: 4,
            }),
        };
        assert_eq!(ImageIndex::chunk_count(idx.size, 4096), 11);
        assert_eq!(idx.chunks_in_segment(0), 4);
        assert_eq!(idx.chunks_in_segment(2), 3);
        assert_eq!(idx.chunk_range(10), 40960..40961);
        assert_eq!(ImageIndex::decode(&idx.encode()).unwrap(), idx);
    }

    #[test]
    fn index_with_wrong_segment_count_is_refused() {
        let idx = ImageIndex {
            size: 1 << 30,
            chunk_size: 1 << 18,
            segment_chunks: SEGMENT_CHUNKS,
            segments: vec![id(1), id(2)],
            source: None,
        };
        let err = ImageIndex::decode(&idx.encode()).unwrap_err();
        assert!(err.to_string().contains("segment"), "{err}");
    }

    #[test]
    fn segment_with_inconsistent_ids_is_refused() {
        let seg = ImageSegment {
            chunks: vec![Some(id(1)), None, Some(id(2))],
        };
        assert!(ImageSegment::decode(&seg.encode(), 4).is_err());
        let mut wire: SegmentWire = ciborium::from_reader(seg.encode().as_slice()).unwrap();
        wire.zero[0] = 0;
        let mut bytes = Vec::new();
        ciborium::into_writer(&wire, &mut bytes).unwrap();
        assert!(ImageSegment::decode(&bytes, 3).is_err());
    }

    proptest! {
        #[test]
        fn segment_round_trips(chunks in proptest::collection::vec(proptest::option::of(any::<u8>()), 0..300)) {
            let seg = ImageSegment { chunks: chunks.iter().map(|c| c.map(id)).collect() };
            let n = seg.chunks.len() as u32;
            prop_assert_eq!(ImageSegment::decode(&seg.encode(), n).unwrap(), seg);
        }

        #[test]
        fn index_round_trips(size in 0u64..(1 << 40), shift in 12u32..24, per in 1u32..5000) {
            let chunk_size = 1u32 << shift;
            let n = ImageIndex::segment_count(size, chunk_size, per);
            prop_assume!(n < 2000);
            let idx = ImageIndex {
                size,
                chunk_size,
                segment_chunks: per,
                segments: (0..n).map(|i| id(i as u8)).collect(),
                source: None,
            };
            prop_assert_eq!(ImageIndex::decode(&idx.encode()).unwrap(), idx);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), n in 0u32..100) {
            let _ = ImageIndex::decode(&bytes);
            let _ = ImageSegment::decode(&bytes, n);
        }
    }
}

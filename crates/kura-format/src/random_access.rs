//! [`ImageReader`]: the bytes of an image snapshot read at any offset, without restoring
//! the image. File systems inside an image are browsed through it (the agent's `kura ls`
//! and `restore --partition`, the service's web restore), so it caches recently used
//! segments and chunks: a file system reader makes many small reads close to each other.
//!
//! It does no I/O itself: the plaintext of each segment and chunk comes from a
//! [`ChunkSource`] its caller implements over its vault (the agent over its repository,
//! the service over the tenant's vault), blocking.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::image::{ImageIndex, ImageSegment};
use crate::{ChunkId, FormatError};

/// Segments kept decoded (each maps 1 GiB of image at the default chunk size).
const CACHED_SEGMENTS: usize = 16;
/// Chunks kept decoded (64 × 256 KiB = 16 MiB).
const CACHED_CHUNKS: usize = 64;

/// Where an [`ImageReader`] gets plaintext: one chunk (a segment or image data) at a time,
/// read from the vault and opened with its codec. May block.
pub trait ChunkSource: Send + Sync {
    /// The caller's error; decoding failures of this module arrive as [`FormatError`].
    type Error: From<FormatError>;

    /// The plaintext of chunk `id`.
    fn read_plain(&self, id: &ChunkId) -> Result<Vec<u8>, Self::Error>;
}

/// Random access to an image snapshot, given its index.
pub struct ImageReader<S: ChunkSource> {
    source: S,
    index: ImageIndex,
    segments: Mutex<Lru<u64, Arc<ImageSegment>>>,
    chunks: Mutex<Lru<ChunkId, Arc<Vec<u8>>>>,
}

impl<S: ChunkSource> ImageReader<S> {
    /// A reader of the image `index` describes, reading through `source`.
    pub fn new(source: S, index: ImageIndex) -> Self {
        ImageReader {
            source,
            index,
            segments: Mutex::new(Lru::new(CACHED_SEGMENTS)),
            chunks: Mutex::new(Lru::new(CACHED_CHUNKS)),
        }
    }

    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.index.size
    }

    /// The image's index.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// Fills `buf` from `offset`; reading past the end is an error.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), S::Error> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.index.size)
            .ok_or_else(|| {
                FormatError::malformed(
                    "image read",
                    format!(
                        "{} bytes at {offset} is past the end of the {}-byte image",
                        buf.len(),
                        self.index.size
                    ),
                )
            })?;
        let chunk_size = u64::from(self.index.chunk_size);
        let mut pos = offset;
        while pos < end {
            let chunk = pos / chunk_size;
            let within = (pos % chunk_size) as usize;
            let n = ((end - pos) as usize).min(chunk_size as usize - within);
            let out = &mut buf[(pos - offset) as usize..][..n];
            match self.chunk_id(chunk)? {
                None => out.fill(0),
                Some(id) => {
                    let data = self.chunk(&id)?;
                    let piece = data.get(within..within + n).ok_or_else(|| {
                        FormatError::malformed(
                            "image chunk",
                            format!("chunk {} is shorter than its place in the image", id.short()),
                        )
                    })?;
                    out.copy_from_slice(piece);
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn chunk_id(&self, chunk: u64) -> Result<Option<ChunkId>, S::Error> {
        let per = u64::from(self.index.segment_chunks);
        let n = chunk / per;
        let cached = self.segments.lock().expect("segment cache").get(&n);
        let segment = match cached {
            Some(s) => s,
            None => {
                let id =
                    self.index.segments.get(n as usize).ok_or_else(|| {
                        FormatError::malformed("image index", format!("it has no segment {n}"))
                    })?;
                let bytes = self.source.read_plain(id)?;
                let s = Arc::new(ImageSegment::decode(&bytes, self.index.chunks_in_segment(n))?);
                self.segments
                    .lock()
                    .expect("segment cache")
                    .put(n, Arc::clone(&s));
                s
            }
        };
        segment
            .chunks
            .get((chunk % per) as usize)
            .copied()
            .ok_or_else(|| FormatError::malformed("image segment", format!("it has no chunk {chunk}")).into())
    }

    fn chunk(&self, id: &ChunkId) -> Result<Arc<Vec<u8>>, S::Error> {
        if let Some(c) = self.chunks.lock().expect("chunk cache").get(id) {
            return Ok(c);
        }
        let data = Arc::new(self.source.read_plain(id)?);
        if data.len() > self.index.chunk_size as usize {
            return Err(FormatError::malformed(
                "image chunk",
                format!("chunk {} is larger than the chunk size", id.short()),
            )
            .into());
        }
        self.chunks
            .lock()
            .expect("chunk cache")
            .put(*id, Arc::clone(&data));
        Ok(data)
    }
}

/// A small least-recently-used cache; linear scans are fine at these sizes.
struct Lru<K, V> {
    capacity: usize,
    order: VecDeque<K>,
    map: HashMap<K, V>,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        let value = self.map.get(key)?.clone();
        self.touch(key);
        Some(value)
    }

    fn put(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        } else {
            self.touch(&key);
        }
    }

    fn touch(&mut self, key: &K) {
        if let Some(at) = self.order.iter().position(|k| k == key) {
            let k = self.order.remove(at).expect("position is in range");
            self.order.push_back(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobCodec;

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.put(1, "a");
        lru.put(2, "b");
        assert_eq!(lru.get(&1), Some("a"));
        lru.put(3, "c");
        assert_eq!(lru.get(&2), None);
        assert_eq!(lru.get(&1), Some("a"));
        assert_eq!(lru.get(&3), Some("c"));
    }

    struct Memory(HashMap<ChunkId, Vec<u8>>);

    impl ChunkSource for Memory {
        type Error = FormatError;
        fn read_plain(&self, id: &ChunkId) -> Result<Vec<u8>, FormatError> {
            self.0
                .get(id)
                .cloned()
                .ok_or_else(|| FormatError::malformed("test", "no such chunk"))
        }
    }

    #[test]
    fn reads_span_chunks_and_zero_chunks() {
        let codec = BlobCodec::plain(0);
        let a = vec![1u8; 8];
        let c = vec![3u8; 4];
        let (ida, idc) = (codec.id(&a), codec.id(&c));
        let segment = ImageSegment {
            chunks: vec![Some(ida), None, Some(idc)],
        };
        let seg_bytes = segment.encode();
        let seg_id = codec.id(&seg_bytes);
        let index = ImageIndex {
            size: 20,
            chunk_size: 8,
            segment_chunks: 4096,
            segments: vec![seg_id],
            source: None,
        };
        let source = Memory(HashMap::from([(ida, a), (idc, c), (seg_id, seg_bytes)]));
        let reader = ImageReader::new(source, index);
        let mut buf = vec![9u8; 20];
        reader.read_exact_at(0, &mut buf).unwrap();
        let mut want = vec![1u8; 8];
        want.extend([0u8; 8]);
        want.extend([3u8; 4]);
        assert_eq!(buf, want);
        let mut two = [9u8; 2];
        reader.read_exact_at(7, &mut two).unwrap();
        assert_eq!(two, [1, 0]);
        assert!(reader.read_exact_at(19, &mut two).is_err());
    }
}

//! [`VaultImage`]: the bytes of an image snapshot read at any offset, straight from the
//! vault, without restoring the image. File systems inside the image are browsed through
//! it, so it caches recently used segments and chunks: a file system reader makes many
//! small reads close to each other.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use kura_format::image::{ImageIndex, ImageSegment};
use kura_format::{ChunkId, SnapshotId};

use super::{index_of, load_segment};
use crate::{AgentError, OpenVault, Result};

/// Segments kept decoded (each maps 1 GiB of image at the default chunk size).
const CACHED_SEGMENTS: usize = 16;
/// Chunks kept decoded (64 × 256 KiB = 16 MiB).
const CACHED_CHUNKS: usize = 64;

/// Random access to an image snapshot.
pub struct VaultImage {
    vault: OpenVault,
    index: ImageIndex,
    segments: Mutex<Lru<u64, Arc<ImageSegment>>>,
    chunks: Mutex<Lru<ChunkId, Arc<Vec<u8>>>>,
}

impl VaultImage {
    /// Opens image snapshot `id`.
    pub async fn open(vault: &OpenVault, id: &SnapshotId) -> Result<Self> {
        Ok(VaultImage {
            vault: vault.clone(),
            index: index_of(vault, id).await?,
            segments: Mutex::new(Lru::new(CACHED_SEGMENTS)),
            chunks: Mutex::new(Lru::new(CACHED_CHUNKS)),
        })
    }

    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.index.size
    }

    /// Fills `buf` from `offset`; reading past the end is an error. Blocks on the vault:
    /// call from a thread outside the async runtime.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.index.size)
            .ok_or_else(|| {
                AgentError::Usage(format!(
                    "read of {} bytes at {offset} is past the end of the {}-byte image",
                    buf.len(),
                    self.index.size
                ))
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
                Some(id) => out.copy_from_slice(&self.chunk(&id)?[within..within + n]),
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn chunk_id(&self, chunk: u64) -> Result<Option<ChunkId>> {
        let per = u64::from(self.index.segment_chunks);
        let n = chunk / per;
        let cached = self.segments.lock().expect("segment cache").get(&n);
        let segment = match cached {
            Some(s) => s,
            None => {
                let s = Arc::new(
                    self.vault
                        .handle
                        .block_on(load_segment(&self.vault, &self.index, n))?,
                );
                self.segments
                    .lock()
                    .expect("segment cache")
                    .put(n, Arc::clone(&s));
                s
            }
        };
        Ok(segment.chunks[(chunk % per) as usize])
    }

    fn chunk(&self, id: &ChunkId) -> Result<Arc<Vec<u8>>> {
        if let Some(c) = self.chunks.lock().expect("chunk cache").get(id) {
            return Ok(c);
        }
        let data = Arc::new(self.vault.handle.block_on(self.vault.read_plain(id))?);
        if data.len() > self.index.chunk_size as usize {
            return Err(AgentError::Unsafe(format!(
                "image chunk {} is larger than the chunk size",
                id.short()
            )));
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
    use super::Lru;

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
}

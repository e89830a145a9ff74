//! Random access to the bytes of an image: the [`ImageSource`] trait that every reader in
//! this crate goes through, its implementations for files and memory, and [`ImageSlice`],
//! a window onto one partition.

use std::io;
use std::sync::Arc;

/// Bytes of a disk image (or of one partition), read at arbitrary offsets.
///
/// Implementations must be safe to call from several threads at once: `read_at` takes
/// `&self` and carries its own offset, so no seek position is shared.
pub trait ImageSource: Send + Sync {
    /// Length of the image in bytes.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes starting at `offset` and returns how many were read.
    /// Returns 0 only at or past the end of the image (or for an empty `buf`).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Fills `buf` from `offset`, or fails with [`io::ErrorKind::UnexpectedEof`] when the
    /// image ends first.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(offset, buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("image ends before byte {}", offset + buf.len() as u64),
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ImageSource for std::fs::File {
    fn size(&self) -> u64 {
        // A file whose metadata cannot be read is treated as empty: every read then fails
        // with a clear end-of-image error instead of a panic.
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ImageSource for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }
}

impl ImageSource for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let available = self.get(start..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }
}

impl<T: ImageSource + ?Sized> ImageSource for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ImageSource + ?Sized> ImageSource for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
}

/// A byte range of another source, seen as a source of its own: one partition of a disk.
/// Reads never reach outside the range.
#[derive(Clone)]
pub struct ImageSlice {
    inner: Arc<dyn ImageSource>,
    start: u64,
    len: u64,
}

impl ImageSlice {
    /// The bytes `start..start + len` of `inner`, clipped to the end of `inner`.
    pub fn new(inner: Arc<dyn ImageSource>, start: u64, len: u64) -> Self {
        let size = inner.size();
        let start = start.min(size);
        let len = len.min(size - start);
        Self { inner, start, len }
    }

    /// Offset of the slice in the underlying source.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl std::fmt::Debug for ImageSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSlice")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ImageSource for ImageSlice {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = usize::try_from(self.len - offset).map_or(buf.len(), |left| left.min(buf.len()));
        self.inner.read_at(self.start + offset, &mut buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_stay_inside_the_range() {
        let bytes: Vec<u8> = (0..=255).collect();
        let slice = ImageSlice::new(Arc::new(bytes), 10, 20);
        assert_eq!(slice.size(), 20);
        let mut buf = [0u8; 64];
        assert_eq!(slice.read_at(15, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], &[25, 26, 27, 28, 29]);
        assert_eq!(slice.read_at(20, &mut buf).unwrap(), 0);
        assert_eq!(
            slice.read_exact_at(18, &mut buf[..3]).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn slice_past_the_end_of_its_source_is_clipped() {
        let slice = ImageSlice::new(Arc::new(vec![1u8; 100]), 90, 1 << 40);
        assert_eq!(slice.size(), 10);
        let slice = ImageSlice::new(Arc::new(vec![1u8; 100]), u64::MAX, 5);
        assert_eq!(slice.size(), 0);
    }
}

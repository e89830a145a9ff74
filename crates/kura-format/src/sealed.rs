//! A byte stream sealed under a passphrase, for copies kept away from the service (the
//! service's own metadata backup). Anyone holding the file and not the passphrase learns
//! its length and nothing else; a changed, reordered, cut or extended file fails to open.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "KURASEAL"  u16 version  u32 slot_len  slot (a passphrase KeySlot, CBOR)
//! segment*    each: u32 len, then AES-256-GCM ciphertext + tag of up to SEGMENT bytes
//! ```
//!
//! The slot wraps a random key exactly as a vault's key slots do (Argon2id, the cost kept
//! in the slot); the segments are sealed with that key's data key. Segment `n` has the
//! nonce `n` (u64 big-endian) followed by `0,0,0,last`, where `last` is 1 for the final
//! segment only (STREAM, Hoang et al.): so segments cannot be reordered or dropped, and a
//! file cut after a whole segment is detected because no segment said it was the last.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};

use crate::error::FormatError;
use crate::keys::{KdfParams, KeySlot, MasterKey, SlotKind, aead_key};

/// The first bytes of a sealed stream.
pub const SEALED_MAGIC: &[u8; 8] = b"KURASEAL";
/// The layout version this build writes and reads.
pub const SEALED_VERSION: u16 = 1;
/// Plaintext bytes per segment.
pub const SEGMENT: usize = 1 << 20;
const TAG_LEN: usize = 16;
/// A slot is a few hundred bytes; more is not a slot.
const MAX_SLOT_LEN: u32 = 4096;

/// Writes a sealed stream into `W`. Call [`SealedWriter::finish`] at the end: without its
/// final segment the stream does not open.
pub struct SealedWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    counter: u64,
    buf: Vec<u8>,
}

impl<W: Write> SealedWriter<W> {
    /// Starts a stream that `passphrase` opens, deriving the key with `kdf`.
    pub fn new(mut inner: W, passphrase: &[u8], kdf: KdfParams) -> crate::Result<Self> {
        let master = MasterKey::generate()?;
        let slot = KeySlot::for_passphrase(&master, passphrase, "sealed stream", kdf, 0)?;
        let encoded = slot.encode();
        let mut header = Vec::with_capacity(14 + encoded.len());
        header.extend_from_slice(SEALED_MAGIC);
        header.extend_from_slice(&SEALED_VERSION.to_le_bytes());
        header.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        header.extend_from_slice(&encoded);
        inner.write_all(&header).map_err(io_error)?;
        Ok(SealedWriter {
            inner,
            key: aead_key(&master.data_key()),
            counter: 0,
            buf: Vec::with_capacity(SEGMENT + TAG_LEN),
        })
    }

    fn seal_segment(&mut self, last: bool) -> io::Result<()> {
        let nonce = segment_nonce(self.counter, last);
        self.key
            .seal_in_place_append_tag(nonce, aad(), &mut self.buf)
            .map_err(|_| io::Error::other("sealing a segment failed"))?;
        self.inner.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Seals the final segment and answers the inner writer (not flushed or synced).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_segment(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(SEGMENT - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        // A full segment waits for the next write: only `finish` knows which is last.
        if self.buf.len() == SEGMENT && take < data.len() {
            self.seal_segment(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the plaintext of a sealed stream. A read fails (with `InvalidData`) at the
/// first segment that does not open, and at an end before the final segment.
pub struct SealedReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    counter: u64,
    plain: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<R: Read> SealedReader<R> {
    /// Reads the header and opens it with `passphrase`
    /// ([`FormatError::WrongPassphrase`] when it does not).
    pub fn open(mut inner: R, passphrase: &[u8]) -> crate::Result<Self> {
        let slot = Self::read_header(&mut inner)?;
        let master = slot.open(passphrase)?;
        Ok(SealedReader {
            inner,
            key: aead_key(&master.data_key()),
            counter: 0,
            plain: Vec::new(),
            pos: 0,
            ended: false,
        })
    }

    /// Reads and checks the header, answering its key slot.
    pub fn read_header(inner: &mut R) -> crate::Result<KeySlot> {
        let mut fixed = [0u8; 14];
        read_exact(inner, &mut fixed, "sealed stream header")?;
        if &fixed[..8] != SEALED_MAGIC {
            return Err(FormatError::BadMagic {
                what: "sealed stream",
            });
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != SEALED_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "sealed stream",
                version: version.into(),
                supported: SEALED_VERSION.into(),
            });
        }
        let slot_len = u32::from_le_bytes(fixed[10..14].try_into().expect("4 bytes"));
        if slot_len > MAX_SLOT_LEN {
            return Err(FormatError::malformed("sealed stream", "key slot too long"));
        }
        let mut slot = vec![0u8; slot_len as usize];
        read_exact(inner, &mut slot, "sealed stream key slot")?;
        let slot = KeySlot::decode(&slot)?;
        if !matches!(slot.kind, SlotKind::Passphrase { .. }) {
            return Err(FormatError::malformed(
                "sealed stream",
                "the key slot is not a passphrase slot",
            ));
        }
        Ok(slot)
    }

    /// Opens the next segment into `plain`; `false` at the end of the stream.
    fn next_segment(&mut self) -> crate::Result<bool> {
        let mut len = [0u8; 4];
        let got = read_full(&mut self.inner, &mut len)
            .map_err(|e| FormatError::malformed("sealed stream", e.to_string()))?;
        if got == 0 && self.ended {
            return Ok(false);
        }
        if self.ended {
            return Err(FormatError::malformed(
                "sealed stream",
                "bytes after the final segment",
            ));
        }
        if got < 4 {
            return Err(FormatError::malformed(
                "sealed stream",
                "the stream ends before its final segment (cut off)",
            ));
        }
        let len = u32::from_le_bytes(len) as usize;
        if !(TAG_LEN..=SEGMENT + TAG_LEN).contains(&len) {
            return Err(FormatError::malformed(
                "sealed stream",
                format!("segment of {len} bytes"),
            ));
        }
        self.plain.resize(len, 0);
        read_exact(&mut self.inner, &mut self.plain, "sealed stream segment")?;
        // Whichever it is, only one of the two nonces opens it.
        let mut opened = None;
        for last in [false, true] {
            let mut attempt = self.plain.clone();
            if let Ok(plain) = self
                .key
                .open_in_place(segment_nonce(self.counter, last), aad(), &mut attempt)
            {
                let n = plain.len();
                attempt.truncate(n);
                opened = Some((attempt, last));
                break;
            }
        }
        let Some((plain, last)) = opened else {
            return Err(FormatError::AuthenticationFailed {
                what: "sealed stream segment",
            });
        };
        self.plain = plain;
        self.pos = 0;
        self.counter += 1;
        self.ended = last;
        Ok(true)
    }
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if !self
                .next_segment()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn segment_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

fn aad() -> Aad<[u8; 10]> {
    let mut aad = [0u8; 10];
    aad[..8].copy_from_slice(SEALED_MAGIC);
    aad[8..].copy_from_slice(&SEALED_VERSION.to_le_bytes());
    Aad::from(aad)
}

fn io_error(err: io::Error) -> FormatError {
    FormatError::malformed("sealed stream", err.to_string())
}

/// Reads as many bytes as `buf` holds or until the end; answers how many.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> crate::Result<()> {
    let got = read_full(r, buf).map_err(|e| FormatError::malformed(what, e.to_string()))?;
    if got < buf.len() {
        return Err(FormatError::Truncated {
            what,
            need: buf.len(),
            have: got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cheap Argon2 for tests; real streams use the default cost.
    const TEST_KDF: KdfParams = KdfParams {
        m_cost: 8,
        t_cost: 1,
        p_cost: 1,
    };

    fn seal(data: &[u8]) -> Vec<u8> {
        let mut w = SealedWriter::new(Vec::new(), b"correct horse", TEST_KDF).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn open(bytes: &[u8], passphrase: &[u8]) -> crate::Result<Vec<u8>> {
        let mut r = SealedReader::open(bytes, passphrase)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| FormatError::malformed("test", e.to_string()))?;
        Ok(out)
    }

    #[test]
    fn round_trip_across_segments() {
        for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(open(&seal(&data), b"correct horse").unwrap(), data, "{len}");
        }
    }

    #[test]
    fn wrong_passphrase_is_named() {
        assert!(matches!(
            open(&seal(b"x"), b"wrong"),
            Err(FormatError::WrongPassphrase)
        ));
    }

    #[test]
    fn cut_extended_reordered_or_changed_streams_fail() {
        let data: Vec<u8> = (0..2 * SEGMENT + 10).map(|i| (i % 13) as u8).collect();
        let sealed = seal(&data);
        let header = 14 + u32::from_le_bytes(sealed[10..14].try_into().unwrap()) as usize;
        let segment = 4 + SEGMENT + TAG_LEN;
        // Cut after a whole segment: no segment said it was the last.
        let cut = &sealed[..header + segment];
        assert!(
            open(cut, b"correct horse")
                .unwrap_err()
                .to_string()
                .contains("cut off")
        );
        // Cut inside a segment.
        assert!(open(&sealed[..sealed.len() - 3], b"correct horse").is_err());
        // Bytes after the end.
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&longer, b"correct horse").is_err());
        // Two segments swapped.
        let mut swapped = sealed[..header].to_vec();
        swapped.extend_from_slice(&sealed[header + segment..header + 2 * segment]);
        swapped.extend_from_slice(&sealed[header..header + segment]);
        swapped.extend_from_slice(&sealed[header + 2 * segment..]);
        assert!(open(&swapped, b"correct horse").is_err());
        // One bit changed.
        let mut flipped = sealed.clone();
        flipped[header + 100] ^= 1;
        assert!(matches!(
            open(&flipped, b"correct horse"),
            Err(FormatError::Malformed { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut with_magic = SEALED_MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = SealedReader::read_header(&mut bytes.as_slice());
            let _ = SealedReader::read_header(&mut with_magic.as_slice());
        }
    }
}

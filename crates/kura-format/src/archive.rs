//! Named files in one stream: the content of the service's metadata backup (inside a
//! zstd frame inside a [sealed stream](crate::sealed)).
//!
//! Layout (integers little-endian), one record per file and an end mark:
//!
//! ```text
//! u8 1  u16 name_len  name (UTF-8)  u32 mode  u64 size  size bytes
//! …
//! u8 0
//! ```
//!
//! Names are relative paths with `/` between parts; a reader refuses absolute names,
//! empty parts, `.` and `..`, so unpacking an archive cannot write outside its folder.

use std::io::{self, Read, Write};

use crate::error::FormatError;

const FILE: u8 = 1;
const END: u8 = 0;
const MAX_NAME: usize = 1024;

/// One file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    pub name: String,
    /// Unix permission bits.
    pub mode: u32,
    pub size: u64,
}

/// Writes an archive into `W`; [`ArchiveWriter::finish`] writes the end mark.
pub struct ArchiveWriter<W: Write> {
    inner: W,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(inner: W) -> Self {
        ArchiveWriter { inner }
    }

    /// Adds a file of `size` bytes read from `content`, which must hold exactly that many.
    pub fn add(&mut self, entry: &ArchiveEntry, content: &mut impl Read) -> crate::Result<()> {
        check_name(&entry.name)?;
        let mut head = vec![FILE];
        head.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        head.extend_from_slice(entry.name.as_bytes());
        head.extend_from_slice(&entry.mode.to_le_bytes());
        head.extend_from_slice(&entry.size.to_le_bytes());
        self.inner.write_all(&head).map_err(write_error)?;
        let copied = io::copy(&mut content.take(entry.size), &mut self.inner).map_err(write_error)?;
        if copied != entry.size {
            return Err(FormatError::malformed(
                "archive",
                format!("{} ended after {copied} of {} bytes", entry.name, entry.size),
            ));
        }
        Ok(())
    }

    /// Writes the end mark and answers the inner writer.
    pub fn finish(mut self) -> crate::Result<W> {
        self.inner.write_all(&[END]).map_err(write_error)?;
        Ok(self.inner)
    }
}

/// Reads an archive's records in order.
pub struct ArchiveReader<R: Read> {
    inner: R,
    /// Bytes of the current file not yet read by the caller.
    unread: u64,
    ended: bool,
}

impl<R: Read> ArchiveReader<R> {
    pub fn new(inner: R) -> Self {
        ArchiveReader {
            inner,
            unread: 0,
            ended: false,
        }
    }

    /// The next file's record and a reader of exactly its bytes, or `None` after the end
    /// mark. What the caller left unread of the previous file is skipped.
    pub fn next_entry(&mut self) -> crate::Result<Option<(ArchiveEntry, EntryContent<'_, R>)>> {
        if self.ended {
            return Ok(None);
        }
        if self.unread > 0 {
            let skipped =
                io::copy(&mut (&mut self.inner).take(self.unread), &mut io::sink()).map_err(read_error)?;
            if skipped != self.unread {
                return Err(truncated("archive file", self.unread, skipped));
            }
            self.unread = 0;
        }
        let mut tag = [0u8; 1];
        self.read_exact(&mut tag, "archive record")?;
        match tag[0] {
            END => {
                self.ended = true;
                return Ok(None);
            }
            FILE => {}
            other => {
                return Err(FormatError::malformed(
                    "archive",
                    format!("unknown record {other}"),
                ));
            }
        }
        let mut len = [0u8; 2];
        self.read_exact(&mut len, "archive name length")?;
        let len = u16::from_le_bytes(len) as usize;
        if len > MAX_NAME {
            return Err(FormatError::malformed("archive", "name too long"));
        }
        let mut name = vec![0u8; len];
        self.read_exact(&mut name, "archive name")?;
        let name =
            String::from_utf8(name).map_err(|_| FormatError::malformed("archive", "name is not UTF-8"))?;
        check_name(&name)?;
        let mut fixed = [0u8; 12];
        self.read_exact(&mut fixed, "archive record")?;
        let entry = ArchiveEntry {
            name,
            mode: u32::from_le_bytes(fixed[..4].try_into().expect("4 bytes")),
            size: u64::from_le_bytes(fixed[4..].try_into().expect("8 bytes")),
        };
        self.unread = entry.size;
        Ok(Some((entry, EntryContent { archive: self })))
    }

    /// The reader after the archive (what follows its end mark).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> crate::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Err(truncated(what, buf.len() as u64, got as u64)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        Ok(())
    }
}

/// The bytes of one file of an archive. An archive that ends inside the file is an
/// error (`UnexpectedEof`), never a short file.
pub struct EntryContent<'a, R: Read> {
    archive: &'a mut ArchiveReader<R>,
}

impl<R: Read> Read for EntryContent<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf
            .len()
            .min(usize::try_from(self.archive.unread).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(0);
        }
        let n = self.archive.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a file (cut off)",
            ));
        }
        self.archive.unread -= n as u64;
        Ok(n)
    }
}

/// Refuses names that could leave the folder an archive is unpacked into.
fn check_name(name: &str) -> crate::Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name.starts_with('/')
        || name.contains('\0')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(FormatError::malformed(
            "archive",
            format!("file name {name:?} is not a plain relative path"),
        ));
    }
    Ok(())
}

fn truncated(what: &'static str, need: u64, have: u64) -> FormatError {
    FormatError::Truncated {
        what,
        need: need as usize,
        have: have as usize,
    }
}

fn write_error(err: io::Error) -> FormatError {
    FormatError::malformed("archive", format!("writing: {err}"))
}

fn read_error(err: io::Error) -> FormatError {
    FormatError::malformed("archive", format!("reading: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new());
        for (name, data) in files {
            let entry = ArchiveEntry {
                name: name.to_string(),
                mode: 0o600,
                size: data.len() as u64,
            };
            w.add(&entry, &mut &data[..]).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> crate::Result<Vec<(ArchiveEntry, Vec<u8>)>> {
        let mut r = ArchiveReader::new(bytes);
        let mut out = Vec::new();
        while let Some((entry, mut content)) = r.next_entry()? {
            let mut data = Vec::new();
            content.read_to_end(&mut data).map_err(read_error)?;
            out.push((entry, data));
        }
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let bytes = build(&[
            ("service.db", b"sqlite"),
            ("tls/ca.pem", b""),
            ("a/b/c", &[7; 3000]),
        ]);
        let files = read_all(&bytes).unwrap();
        let names: Vec<&str> = files.iter().map(|(e, _)| e.name.as_str()).collect();
        assert_eq!(names, ["service.db", "tls/ca.pem", "a/b/c"]);
        assert_eq!(files[2].1, vec![7; 3000]);
        assert_eq!(files[0].0.mode, 0o600);
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for name in ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", ""] {
            let mut w = ArchiveWriter::new(Vec::new());
            let entry = ArchiveEntry {
                name: name.into(),
                mode: 0,
                size: 0,
            };
            assert!(w.add(&entry, &mut io::empty()).is_err(), "{name}");
        }
        // Forged by hand: the reader refuses it too.
        let mut forged = vec![FILE, 4, 0];
        forged.extend_from_slice(b"../x");
        forged.extend_from_slice(&[0; 12]);
        forged.push(END);
        assert!(read_all(&forged).is_err());
    }

    #[test]
    fn short_content_and_cut_archives_fail() {
        let mut w = ArchiveWriter::new(Vec::new());
        let entry = ArchiveEntry {
            name: "x".into(),
            mode: 0,
            size: 10,
        };
        assert!(w.add(&entry, &mut &b"short"[..]).is_err());
        let bytes = build(&[("a", b"0123456789")]);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn unread_content_is_skipped() {
        let bytes = build(&[("a", &[1; 100]), ("b", b"second")]);
        let mut r = ArchiveReader::new(&bytes[..]);
        let (first, mut content) = r.next_entry().unwrap().unwrap();
        assert_eq!(first.name, "a");
        let mut some = [0u8; 10];
        content.read_exact(&mut some).unwrap();
        let (second, mut content) = r.next_entry().unwrap().unwrap();
        let mut data = Vec::new();
        content.read_to_end(&mut data).unwrap();
        assert_eq!((second.name.as_str(), data.as_slice()), ("b", &b"second"[..]));
        assert!(r.next_entry().unwrap().is_none());
    }

    proptest! {
        #[test]
        fn reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_all(&bytes);
        }
    }
}

//! A `.zip` writer for downloads, built as it streams, for the users whose desktop opens
//! a zip but not a tar (Windows Explorer before 11, most mail filters). Entries are
//! *stored* (backed-up data is mostly compressed already, and storing keeps the download
//! at the vault's read speed). A file's CRC-32 is known only after its content, so its
//! local header says so (flag bit 3) and a data descriptor follows the content; the
//! central directory at the end repeats every entry with its CRC and offset. Only the
//! central directory is held (about 90 bytes and the path per entry), never content.
//!
//! ZIP64 fields appear exactly where a size, an offset or the number of entries does
//! not fit the classic fields, so small archives stay readable by every tool. Names are
//! the stored bytes, flagged UTF-8 (bit 11) when they are. Unix modes go in the external
//! attributes (made by "Unix") and the modification time both as a DOS time in the
//! tenant's time zone (what Windows shows) and as an extended timestamp in UTC.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::archive::{ArchiveEntry, ArchiveKind};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// Made by Unix (high byte), spec version 4.5 (ZIP64).
const MADE_BY: u16 = (3 << 8) | 45;
const NEEDS_ZIP64: u16 = 45;
const NEEDS_PLAIN: u16 = 20;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;
const STORED: u16 = 0;
const EXTENDED_TIME: u16 = 0x5455;
const ZIP64_EXTRA: u16 = 0x0001;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// MS-DOS directory attribute, for readers that look only at the low byte.
const DOS_DIRECTORY: u32 = 0x10;

/// What the central directory keeps of one entry.
struct Written {
    path: Vec<u8>,
    flags: u16,
    dos_time: u32,
    mtime: i64,
    crc: u32,
    size: u64,
    offset: u64,
    attributes: u32,
}

/// The archive being written: where the next entry starts, the entries so far, and the
/// file whose content is being sent.
pub struct ZipWriter {
    /// The tenant's time zone, for DOS times.
    zone: TimeZone,
    written: u64,
    entries: Vec<Written>,
    open_file: Option<Written>,
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// `v`, or the marker that sends readers to the ZIP64 field.
fn clip32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A DOS date and time (local, two-second steps, 1980–2107; clamped to that range).
fn dos_time(unix: i64, zone: &TimeZone) -> u32 {
    let Ok(stamp) = Timestamp::from_second(unix) else {
        return (1 << 21) | (1 << 16);
    };
    let t = stamp.to_zoned_datetime(zone.clone()).datetime();
    let year = i32::from(t.year());
    if year < 1980 {
        return (1 << 21) | (1 << 16);
    }
    if year > 2107 {
        return (127 << 25) | (12 << 21) | (31 << 16) | (23 << 11) | (59 << 5) | 29;
    }
    let date = (((year - 1980) as u32) << 9) | ((t.month() as u32) << 5) | (t.day() as u32);
    let time = ((t.hour() as u32) << 11) | ((t.minute() as u32) << 5) | ((t.second() as u32) / 2);
    (date << 16) | time
}

impl ZipWriter {
    pub fn new(zone: TimeZone) -> Self {
        ZipWriter {
            zone,
            written: 0,
            entries: Vec::new(),
            open_file: None,
        }
    }

    fn extended_time(out: &mut Vec<u8>, mtime: i64) {
        put16(out, EXTENDED_TIME);
        put16(out, 5);
        out.push(1);
        put32(out, mtime.clamp(0, i64::from(u32::MAX)) as u32);
    }

    fn local_header(&self, entry: &Written, crc: u32, size: Option<u64>) -> Vec<u8> {
        // A file written with a descriptor whose size will not fit 32 bits takes a
        // ZIP64 extra now, so that the descriptor's 8-byte sizes are expected.
        let zip64 = entry.size >= u64::from(u32::MAX);
        let mut out = Vec::with_capacity(30 + entry.path.len() + 29);
        put32(&mut out, LOCAL_HEADER);
        put16(&mut out, if zip64 { NEEDS_ZIP64 } else { NEEDS_PLAIN });
        put16(&mut out, entry.flags);
        put16(&mut out, STORED);
        put32(&mut out, entry.dos_time);
        put32(&mut out, crc);
        let small = size.map_or(0, clip32);
        put32(&mut out, if zip64 { u32::MAX } else { small });
        put32(&mut out, if zip64 { u32::MAX } else { small });
        put16(&mut out, entry.path.len() as u16);
        put16(&mut out, if zip64 { 9 + 20 } else { 9 });
        out.extend_from_slice(&entry.path);
        Self::extended_time(&mut out, entry.mtime);
        if zip64 {
            put16(&mut out, ZIP64_EXTRA);
            put16(&mut out, 16);
            put64(&mut out, size.unwrap_or(0));
            put64(&mut out, size.unwrap_or(0));
        }
        out
    }

    fn written_of(&self, entry: &ArchiveEntry<'_>, size: u64, descriptor: bool) -> Written {
        let mut path = entry.path.to_vec();
        let (kind_bits, dos_bits) = match entry.kind {
            ArchiveKind::File { .. } => (S_IFREG, 0),
            ArchiveKind::Dir => {
                if path.last() != Some(&b'/') {
                    path.push(b'/');
                }
                (S_IFDIR, DOS_DIRECTORY)
            }
            ArchiveKind::Symlink { .. } => (S_IFLNK, 0),
        };
        // Names longer than a zip field can hold are cut; a tree's names never are.
        path.truncate(usize::from(u16::MAX) - 1);
        let utf8 = std::str::from_utf8(&path).is_ok_and(|p| !p.is_ascii());
        Written {
            flags: if descriptor { FLAG_DESCRIPTOR } else { 0 } | if utf8 { FLAG_UTF8 } else { 0 },
            dos_time: dos_time(entry.mtime, &self.zone),
            mtime: entry.mtime,
            crc: 0,
            size,
            offset: self.written,
            attributes: ((kind_bits | (entry.mode & 0o7777)) << 16) | dos_bits,
            path,
        }
    }

    /// What goes before an entry's content: the whole entry for a directory or a
    /// symlink (whose target is its content), the local header for a file, whose
    /// content the caller sends next and then ends with [`ZipWriter::end_file`].
    pub fn start(&mut self, entry: &ArchiveEntry<'_>) -> Vec<u8> {
        match entry.kind {
            ArchiveKind::File { size } => {
                let written = self.written_of(entry, size, true);
                let out = self.local_header(&written, 0, None);
                self.written += out.len() as u64;
                self.open_file = Some(written);
                out
            }
            ArchiveKind::Dir | ArchiveKind::Symlink { .. } => {
                let content: &[u8] = match entry.kind {
                    ArchiveKind::Symlink { target } => target,
                    _ => &[],
                };
                let mut written = self.written_of(entry, content.len() as u64, false);
                written.crc = crc32fast::hash(content);
                let mut out = self.local_header(&written, written.crc, Some(written.size));
                out.extend_from_slice(content);
                self.written += out.len() as u64;
                self.entries.push(written);
                out
            }
        }
    }

    /// The data descriptor after a file's content, given the CRC-32 of the content sent.
    pub fn end_file(&mut self, crc: u32) -> Vec<u8> {
        let Some(mut file) = self.open_file.take() else {
            return Vec::new();
        };
        file.crc = crc;
        let mut out = Vec::with_capacity(24);
        put32(&mut out, DATA_DESCRIPTOR);
        put32(&mut out, crc);
        if file.size >= u64::from(u32::MAX) {
            put64(&mut out, file.size);
            put64(&mut out, file.size);
        } else {
            put32(&mut out, file.size as u32);
            put32(&mut out, file.size as u32);
        }
        self.written += file.size + out.len() as u64;
        self.entries.push(file);
        out
    }

    /// The central directory and the end records.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let directory_start = self.written;
        for e in &self.entries {
            let mut zip64 = Vec::new();
            if e.size >= u64::from(u32::MAX) {
                put64(&mut zip64, e.size);
                put64(&mut zip64, e.size);
            }
            if e.offset >= u64::from(u32::MAX) {
                put64(&mut zip64, e.offset);
            }
            let big_size = e.size >= u64::from(u32::MAX);
            put32(&mut out, CENTRAL_HEADER);
            put16(&mut out, MADE_BY);
            put16(
                &mut out,
                if zip64.is_empty() {
                    NEEDS_PLAIN
                } else {
                    NEEDS_ZIP64
                },
            );
            put16(&mut out, e.flags);
            put16(&mut out, STORED);
            put32(&mut out, e.dos_time);
            put32(&mut out, e.crc);
            put32(&mut out, if big_size { u32::MAX } else { e.size as u32 });
            put32(&mut out, if big_size { u32::MAX } else { e.size as u32 });
            put16(&mut out, e.path.len() as u16);
            let extra = 9 + if zip64.is_empty() { 0 } else { 4 + zip64.len() };
            put16(&mut out, extra as u16);
            put16(&mut out, 0); // comment
            put16(&mut out, 0); // disk
            put16(&mut out, 0); // internal attributes
            put32(&mut out, e.attributes);
            put32(&mut out, clip32(e.offset));
            out.extend_from_slice(&e.path);
            Self::extended_time(&mut out, e.mtime);
            if !zip64.is_empty() {
                put16(&mut out, ZIP64_EXTRA);
                put16(&mut out, zip64.len() as u16);
                out.extend_from_slice(&zip64);
            }
        }
        let directory_size = out.len() as u64;
        let count = self.entries.len() as u64;
        let zip64_end = count >= u64::from(u16::MAX)
            || directory_start >= u64::from(u32::MAX)
            || directory_size >= u64::from(u32::MAX);
        if zip64_end {
            let end_start = directory_start + directory_size;
            put32(&mut out, ZIP64_END);
            put64(&mut out, 44);
            put16(&mut out, MADE_BY);
            put16(&mut out, NEEDS_ZIP64);
            put32(&mut out, 0);
            put32(&mut out, 0);
            put64(&mut out, count);
            put64(&mut out, count);
            put64(&mut out, directory_size);
            put64(&mut out, directory_start);
            put32(&mut out, ZIP64_LOCATOR);
            put32(&mut out, 0);
            put64(&mut out, end_start);
            put32(&mut out, 1);
        }
        put32(&mut out, END);
        put16(&mut out, 0);
        put16(&mut out, 0);
        let short_count = u16::try_from(count).unwrap_or(u16::MAX);
        put16(&mut out, short_count);
        put16(&mut out, short_count);
        put32(&mut out, clip32(directory_size));
        put32(&mut out, clip32(directory_start));
        put16(&mut out, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes entries of (path, kind, content) as the download does.
    fn archive(entries: &[(Vec<u8>, &str, Vec<u8>)], zone: TimeZone) -> Vec<u8> {
        let mut zip = ZipWriter::new(zone);
        let mut out = Vec::new();
        for (path, kind, content) in entries {
            let kind = match *kind {
                "file" => ArchiveKind::File {
                    size: content.len() as u64,
                },
                "dir" => ArchiveKind::Dir,
                _ => ArchiveKind::Symlink { target: content },
            };
            let entry = ArchiveEntry {
                path,
                kind,
                mode: 0o640,
                uid: 0,
                gid: 0,
                mtime: 1_767_225_600, // 2026-01-01T00:00:00Z
            };
            out.extend(zip.start(&entry));
            if let ArchiveKind::File { .. } = kind {
                out.extend_from_slice(content);
                out.extend(zip.end_file(crc32fast::hash(content)));
            }
        }
        out.extend(zip.finish());
        out
    }

    #[test]
    fn dos_times_are_local_and_clamped() {
        // 2026-01-01T00:00:00Z is 09:00 in Tokyo.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let t = dos_time(1_767_225_600, &tokyo);
        assert_eq!(t >> 25, 2026 - 1980);
        assert_eq!((t >> 11) & 0x1f, 9);
        assert_eq!(dos_time(0, &TimeZone::UTC), (1 << 21) | (1 << 16));
    }

    /// Info-ZIP's unzip (Debian's) tests and extracts what this writes: CRCs, Unix modes,
    /// a symlink, UTF-8 and non-UTF-8 names, and the local time.
    #[test]
    fn unzip_extracts_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.zip");
        let entries = vec![
            (b"top".to_vec(), "dir", Vec::new()),
            (b"top/hello.txt".to_vec(), "file", b"hello".to_vec()),
            ("top/報告.txt".as_bytes().to_vec(), "file", vec![7u8; 100_000]),
            (b"top/empty".to_vec(), "file", Vec::new()),
            (b"top/link".to_vec(), "symlink", b"hello.txt".to_vec()),
        ];
        std::fs::write(&file, archive(&entries, TimeZone::get("Asia/Tokyo").unwrap())).unwrap();
        let test = std::process::Command::new("unzip")
            .arg("-tq")
            .arg(&file)
            .output()
            .unwrap();
        assert!(test.status.success(), "{}", String::from_utf8_lossy(&test.stdout));
        let out = dir.path().join("out");
        let status = std::process::Command::new("unzip")
            .arg("-q")
            .arg(&file)
            .arg("-d")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(out.join("top/hello.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read(out.join("top/報告.txt")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(std::fs::read(out.join("top/empty")).unwrap(), b"");
        assert_eq!(
            std::fs::read_link(out.join("top/link")).unwrap(),
            std::path::Path::new("hello.txt")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("top/hello.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let mtime = std::fs::metadata(out.join("top/hello.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_600
        );
    }

    /// ZIP64 appears when there are too many entries for the classic end record, and
    /// Python's reader (strict about the end records) lists every entry.
    #[test]
    fn many_entries_take_the_zip64_end_record() {
        let entries: Vec<_> = (0..70_000)
            .map(|i| (format!("d/{i}").into_bytes(), "file", Vec::new()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("many.zip");
        std::fs::write(&file, archive(&entries, TimeZone::UTC)).unwrap();
        let listed = std::process::Command::new("python3")
            .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(len(z.namelist()))"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "70000");
    }

    /// A file over 4 GiB and an entry after it take ZIP64 sizes and offsets; Python
    /// finds both (the content is a hole of the archive file, so the test costs no disk).
    #[test]
    fn large_files_take_zip64_fields() {
        use std::io::{Seek, SeekFrom, Write};
        let big = 5u64 << 30;
        let mut zip = ZipWriter::new(TimeZone::UTC);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.zip");
        let mut file = std::fs::File::create(&path).unwrap();
        let entry = |path: &'static [u8], size| ArchiveEntry {
            path,
            kind: ArchiveKind::File { size },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_767_225_600,
        };
        file.write_all(&zip.start(&entry(b"big.img", big))).unwrap();
        file.seek(SeekFrom::Current(big as i64)).unwrap();
        let mut crc = crc32fast::Hasher::new();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(big >> 20) {
            crc.update(&zeros);
        }
        file.write_all(&zip.end_file(crc.finalize())).unwrap();
        file.write_all(&zip.start(&entry(b"after.txt", 5))).unwrap();
        file.write_all(b"after").unwrap();
        file.write_all(&zip.end_file(crc32fast::hash(b"after"))).unwrap();
        file.write_all(&zip.finish()).unwrap();
        drop(file);
        let script = "import sys, zipfile\n\
            z = zipfile.ZipFile(sys.argv[1])\n\
            print(z.getinfo('big.img').file_size, z.getinfo('after.txt').header_offset > 2**32, z.read('after.txt'))";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{big} True b'after'")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the names and contents, Python's zipfile reads back each entry's
        /// bytes and CRC exactly.
        #[test]
        fn python_reads_back_what_was_written(
            files in proptest::collection::btree_map("[a-z0-9ぁ-ん]{1,12}", proptest::collection::vec(any::<u8>(), 0..3000), 1..8)
        ) {
            let entries: Vec<_> = files
                .iter()
                .map(|(name, content)| (format!("t/{name}").into_bytes(), "file", content.clone()))
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("p.zip");
            std::fs::write(&file, archive(&entries, TimeZone::UTC)).unwrap();
            let script = "import sys, zipfile\n\
                z = zipfile.ZipFile(sys.argv[1])\n\
                for i in z.infolist(): print(i.filename, z.read(i).hex())";
            let out = std::process::Command::new("python3").args(["-c", script]).arg(&file).output().unwrap();
            prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let expected: String = files
                .iter()
                .map(|(name, content)| format!("t/{name} {}\n", hex::encode(content)))
                .collect();
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        }
    }
}

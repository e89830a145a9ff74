//! A `.tar` writer for downloads, built as it streams: each entry is a header (POSIX
//! ustar, with a pax extended header before it when a path, a link target, a size, an id
//! or a time does not fit ustar's fields), then the content, padded to 512 bytes. The
//! caller sends the blocks as it produces them; nothing is held but one header.

use super::archive::{ArchiveEntry, ArchiveKind};

/// Tar's block size.
pub const BLOCK: usize = 512;

/// Largest value of an octal field `width` bytes wide (digits plus a NUL).
fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len();
    let text = format!("{value:0w$o}", w = width - 1);
    field[..width - 1].copy_from_slice(text.as_bytes());
    field[width - 1] = 0;
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN KEY=VALUE\n", where LEN counts the whole record including its own digits.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest > len {
        len += 1;
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The header blocks of `entry` (one ustar block, or a pax header, its records and the
/// ustar block).
pub fn header(entry: &ArchiveEntry<'_>) -> Vec<u8> {
    let mut path = entry.path.to_vec();
    if entry.kind == ArchiveKind::Dir && path.last() != Some(&b'/') {
        path.push(b'/');
    }
    let size = match entry.kind {
        ArchiveKind::File { size } => size,
        _ => 0,
    };
    let link = match entry.kind {
        ArchiveKind::Symlink { target } => target,
        _ => &[],
    };
    let mtime = u64::try_from(entry.mtime).ok().filter(|&t| t <= octal_max(12));
    let mut pax = Vec::new();
    if path.len() > 100 {
        pax_record(&mut pax, "path", &path);
    }
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", link);
    }
    if size > octal_max(12) {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    if entry.uid > octal_max(8) {
        pax_record(&mut pax, "uid", entry.uid.to_string().as_bytes());
    }
    if entry.gid > octal_max(8) {
        pax_record(&mut pax, "gid", entry.gid.to_string().as_bytes());
    }
    if mtime.is_none() {
        pax_record(&mut pax, "mtime", entry.mtime.to_string().as_bytes());
    }
    let mut out = Vec::with_capacity(BLOCK * 2);
    if !pax.is_empty() {
        let name = b"././@PaxHeader";
        out.extend(ustar_block(name, b'x', pax.len() as u64, 0o644, 0, 0, 0, b""));
        let padded = pax.len().div_ceil(BLOCK) * BLOCK;
        pax.resize(padded, 0);
        out.extend(pax);
    }
    let typeflag = match entry.kind {
        ArchiveKind::File { .. } => b'0',
        ArchiveKind::Dir => b'5',
        ArchiveKind::Symlink { .. } => b'2',
    };
    // The pax header carries what does not fit; the ustar fields get what does.
    let short_path = &path[..path.len().min(100)];
    let short_link = &link[..link.len().min(100)];
    out.extend(ustar_block(
        short_path,
        typeflag,
        size.min(octal_max(12)),
        entry.mode & 0o7777,
        entry.uid.min(octal_max(8)),
        entry.gid.min(octal_max(8)),
        mtime.unwrap_or(0),
        short_link,
    ));
    out
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    name: &[u8],
    typeflag: u8,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: &[u8],
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    put_octal(&mut b[100..108], u64::from(mode));
    put_octal(&mut b[108..116], uid);
    put_octal(&mut b[116..124], gid);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as eight spaces.
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    b
}

/// Zeros that pad `size` bytes of content to a whole block.
pub fn padding(size: u64) -> &'static [u8] {
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 { &[] } else { &ZEROS[..BLOCK - rest] }
}

/// The end of an archive: two zero blocks.
pub static END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let long: Vec<u8> = format!("top/{}/file", "d".repeat(120)).into_bytes();
        let mut out = Vec::new();
        let entries: Vec<(ArchiveEntry, &[u8])> = vec![
            (
                ArchiveEntry {
                    path: b"top",
                    kind: ArchiveKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: 1_700_000_000,
                },
                b"",
            ),
            (
                ArchiveEntry {
                    path: b"top/hello.txt",
                    kind: ArchiveKind::File { size: 5 },
                    mode: 0o640,
                    uid: 1000,
                    gid: 1000,
                    mtime: 1_700_000_000,
                },
                b"hello",
            ),
            (
                ArchiveEntry {
                    path: &long,
                    kind: ArchiveKind::File { size: 3 },
                    mode: 0o600,
                    uid: 5_000_000,
                    gid: 0,
                    mtime: -5,
                },
                b"abc",
            ),
            (
                ArchiveEntry {
                    path: b"top/link",
                    kind: ArchiveKind::Symlink { target: b"hello.txt" },
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                },
                b"",
            ),
        ];
        for (entry, content) in entries {
            out.extend(header(&entry));
            out.extend_from_slice(content);
            out.extend_from_slice(padding(content.len() as u64));
        }
        out.extend_from_slice(&END);
        out
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", b"abcdef");
        assert_eq!(out, b"15 path=abcdef\n");
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'x'; 89]);
        assert_eq!(out.len(), 98);
        assert!(out.starts_with(b"98 path="));
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'x'; 92]);
        assert_eq!(out.len(), 102);
        assert!(out.starts_with(b"102 path="));
    }

    /// GNU tar (Debian's) reads what this writes, long paths and all.
    #[test]
    fn gnu_tar_extracts_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let tar_file = dir.path().join("a.tar");
        std::fs::write(&tar_file, archive()).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar_file)
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(out.join("top/hello.txt")).unwrap(), b"hello");
        let long = out.join(format!("top/{}/file", "d".repeat(120)));
        assert_eq!(std::fs::read(long).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_link(out.join("top/link")).unwrap(),
            std::path::Path::new("hello.txt")
        );
    }
}

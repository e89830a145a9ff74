//! Pack trailers: `pack::parse_pack`, and `PackFooter::parse` + `parse_trailer` as a
//! reader that fetched only the end of a pack would call them.
//!
//! The first input byte picks a mode:
//! - even: the rest is a whole pack, parsed as is;
//! - odd: the rest is `blob-area length (u16 LE)`, blob area, trailer entries; the
//!   harness appends a footer with the right entry count and trailer checksum, so the
//!   fuzzer gets past the BLAKE3 check and exercises the entry validation.
//!
//! Whenever a trailer parses, every entry must lie inside the blob area without overlap,
//! and a pack rebuilt from those blobs with `PackWriter` must parse to the same entries.
#![no_main]

use kura_format::pack::{self, ENTRY_LEN, FOOTER_LEN, PACK_VERSION, PackEntry, PackFooter};
use kura_format::{PackId, PackWriter};
use libfuzzer_sys::fuzz_target;

fn check(pack_bytes: &[u8], entries: &[PackEntry]) {
    let area = pack_bytes.len() - FOOTER_LEN - entries.len() * ENTRY_LEN;
    let mut end_prev = 0u64;
    // `default()`, not `new()`: `new()` reserves a whole pack (17 MiB) per input.
    let mut w = PackWriter::default();
    for e in entries {
        let start = e.offset as u64;
        let end = start + e.length as u64;
        assert!(
            start >= end_prev && end <= area as u64,
            "entry outside blob area: {e:?}"
        );
        end_prev = end;
        w.add(
            e.id,
            e.kind,
            &pack_bytes[start as usize..end as usize],
            e.raw_length,
        );
    }
    let (id, bytes, written) = w.finish();
    assert_eq!(PackId::of(&bytes), id);
    let reparsed = pack::parse_pack(&bytes).expect("a rebuilt pack parses");
    assert_eq!(reparsed, written);
    assert_eq!(reparsed.len(), entries.len());
    for (a, b) in reparsed.iter().zip(entries) {
        assert_eq!(
            (a.id, a.kind, a.length, a.raw_length),
            (b.id, b.kind, b.length, b.raw_length)
        );
    }
}

fn parse_split(pack_bytes: &[u8]) {
    // What a reader holding only the tail of a pack does.
    if pack_bytes.len() < FOOTER_LEN {
        return;
    }
    let rest = pack_bytes.len() - FOOTER_LEN;
    let Ok(footer) = PackFooter::parse(&pack_bytes[rest..]) else {
        return;
    };
    let tl = footer.trailer_len();
    if tl > rest {
        return;
    }
    let trailer = &pack_bytes[rest - tl..rest];
    let whole = pack::parse_trailer(&footer, trailer, (rest - tl) as u64);
    // A wrong blob-area size must never make a bad trailer pass or panic.
    let _ = pack::parse_trailer(&footer, trailer, 0);
    let _ = pack::parse_trailer(&footer, trailer, u64::MAX);
    let _ = pack::parse_trailer(&footer, &trailer[..tl / 2], (rest - tl) as u64);
    if let Ok(entries) = whole {
        check(pack_bytes, &entries);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = PackFooter::parse(rest);
        if let Ok(entries) = pack::parse_pack(rest) {
            check(rest, &entries);
        }
        parse_split(rest);
    } else {
        if rest.len() < 2 {
            return;
        }
        let area_len = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let (area, trailer) = rest[2..].split_at(area_len);
        let n = trailer.len() / ENTRY_LEN;
        let trailer = &trailer[..n * ENTRY_LEN];
        let mut bytes = Vec::with_capacity(area.len() + trailer.len() + FOOTER_LEN);
        bytes.extend_from_slice(area);
        bytes.extend_from_slice(trailer);
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
        bytes.extend_from_slice(kura_format_blake3(trailer).as_slice());
        bytes.push(PACK_VERSION);
        bytes.extend_from_slice(&[0; 3]);
        bytes.extend_from_slice(b"KURAPACK");
        if let Ok(entries) = pack::parse_pack(&bytes) {
            check(&bytes, &entries);
        }
        parse_split(&bytes);
    }
});

/// BLAKE3 of `bytes`, through kura-format's public API (a pack id is the BLAKE3 of its
/// bytes), so this crate needs no direct blake3 dependency.
fn kura_format_blake3(bytes: &[u8]) -> [u8; 32] {
    PackId::of(bytes).0
}

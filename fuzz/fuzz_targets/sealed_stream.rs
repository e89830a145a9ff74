//! Sealed streams (the metadata backup's outer layer). The first input byte picks a mode:
//! - even: the rest is read as a stream's header (`SealedReader::read_header`), which must
//!   fail cleanly or give a passphrase slot;
//! - odd: the rest follows a real header made with a cheap Argon2 cost, as the stream's
//!   segments: reading must fail cleanly or give plaintext; and the same bytes sealed
//!   anew must read back unchanged.
#![no_main]

use std::io::{Read, Write};

use kura_format::keys::{KdfParams, SlotKind};
use kura_format::sealed::{SealedReader, SealedWriter};
use libfuzzer_sys::fuzz_target;

const CHEAP: KdfParams = KdfParams {
    m_cost: 8,
    t_cost: 1,
    p_cost: 1,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(slot) = SealedReader::read_header(&mut &rest[..]) {
            assert!(matches!(slot.kind, SlotKind::Passphrase { .. }));
        }
        return;
    }
    let empty = SealedWriter::new(Vec::new(), b"fuzz", CHEAP).unwrap().finish().unwrap();
    let header_len = 14 + u32::from_le_bytes(empty[10..14].try_into().unwrap()) as usize;
    let mut forged = empty[..header_len].to_vec();
    forged.extend_from_slice(rest);
    if let Ok(mut reader) = SealedReader::open(&forged[..], b"fuzz") {
        let _ = reader.read_to_end(&mut Vec::new());
    }

    let mut writer = SealedWriter::new(Vec::new(), b"fuzz", CHEAP).unwrap();
    writer.write_all(rest).unwrap();
    let sealed = writer.finish().unwrap();
    let mut plain = Vec::new();
    SealedReader::open(&sealed[..], b"fuzz")
        .unwrap()
        .read_to_end(&mut plain)
        .expect("a sealed stream reads back");
    assert_eq!(plain, rest);
});

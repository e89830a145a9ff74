//! Blobs as read from a pack: `BlobHeader::parse` and `BlobCodec::open` with a plain and
//! an encrypted codec. Input: 32 bytes of chunk id, then the blob.
//!
//! A hostile blob must be refused with an error, never a panic. Because ids are hashes
//! the fuzzer can rarely make `open` succeed; when it does, sealing the content again must
//! open to the same bytes. Every input is also used as plaintext for a seal/open round
//! trip, so the encoder is exercised with arbitrary content too.
#![no_main]

use std::sync::OnceLock;

use kura_format::blob::{BlobHeader, MAX_RAW_LEN};
use kura_format::{BlobCodec, ChunkId, MasterKey};
use libfuzzer_sys::fuzz_target;

fn codecs() -> &'static [BlobCodec; 2] {
    static CODECS: OnceLock<[BlobCodec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        // MasterKey has no constructor from bytes: one random key per fuzzing process.
        let master = MasterKey::generate().expect("random master key");
        [BlobCodec::plain(3), BlobCodec::encrypted(&master, 3)]
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BlobHeader::parse(data) {
        assert!(h.raw_len as usize <= MAX_RAW_LEN);
    }

    if data.len() >= ChunkId::LEN {
        let id = ChunkId::from_slice(&data[..ChunkId::LEN]).expect("32 bytes");
        let blob = &data[ChunkId::LEN..];
        let header = BlobHeader::parse(blob);
        for codec in codecs() {
            if let Ok(plain) = codec.open(&id, blob) {
                let h = header.as_ref().expect("an opened blob has a valid header");
                assert_eq!(plain.len(), h.raw_len as usize);
                assert_eq!(codec.id(&plain), id);
                let again = codec.seal(&id, &plain).expect("re-seal");
                assert_eq!(codec.open(&id, &again).expect("re-open"), plain);
            }
        }
    }

    // Encoder round trip on arbitrary content.
    for codec in codecs() {
        let id = codec.id(data);
        let blob = codec.seal(&id, data).expect("seal");
        let h = BlobHeader::parse(&blob).expect("a sealed blob has a valid header");
        assert_eq!(h.raw_len as usize, data.len());
        assert_eq!(h.encrypted, codec.is_encrypted());
        assert!(
            blob.len() <= 8 + 12 + data.len() + 16,
            "sealing grew the data too much"
        );
        assert_eq!(codec.open(&id, &blob).expect("open what was sealed"), data);
    }
});

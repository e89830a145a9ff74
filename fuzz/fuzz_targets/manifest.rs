//! Snapshot manifests and reference lists: `Manifest::decode` and
//! `ReferenceList::decode` of arbitrary bytes must fail cleanly or give a value whose
//! encoding decodes to the same value and encodes to the same bytes again. A decoded
//! manifest's sealed body is also opened (which must fail, never panic, with the wrong
//! codec or damaged bytes).
#![no_main]

use std::sync::OnceLock;

use kura_format::{BlobCodec, Manifest, MasterKey, ReferenceList};
use libfuzzer_sys::fuzz_target;

fn codecs() -> &'static [BlobCodec; 2] {
    static CODECS: OnceLock<[BlobCodec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let master = MasterKey::generate().expect("random master key");
        [BlobCodec::plain(3), BlobCodec::encrypted(&master, 3)]
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        let bytes = m.encode();
        let again = Manifest::decode(&bytes).expect("a re-encoded manifest decodes");
        assert_eq!(again, m);
        assert_eq!(again.encode(), bytes, "manifest encoding is not stable");
        assert_eq!(Manifest::id_of(&bytes), Manifest::id_of(&again.encode()));
        for codec in codecs() {
            let _ = m.open_body(codec);
        }
    }

    if let Ok(refs) = ReferenceList::decode(data) {
        let bytes = refs.encode();
        let again = ReferenceList::decode(&bytes).expect("a re-encoded reference list decodes");
        assert_eq!(again, refs);
        assert_eq!(again.encode(), bytes);
        assert_eq!(bytes.len(), 16 + 32 * refs.ids().len());
        assert!(refs.ids().windows(2).all(|w| w[0] < w[1]));
        for id in refs.ids() {
            assert!(refs.contains(id));
        }
        assert_eq!(ReferenceList::from_ids(refs.ids().to_vec()), refs);
    }
});

//! Vault configurations: `VaultConfig::decode` of arbitrary bytes must fail cleanly or
//! give a configuration whose encoding decodes to the same value. A configuration that
//! decodes is then used the way opening a vault uses it: `codec()` builds the blob codec
//! and the file chunker from its parameters, and the chunker cuts a small buffer. All of
//! that must fail cleanly or work, never panic: `decode` is the only validation.
#![no_main]

use std::sync::OnceLock;

use kura_format::{MasterKey, VaultConfig};
use libfuzzer_sys::fuzz_target;

fn master() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| MasterKey::generate().expect("random master key"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = VaultConfig::decode(data) else {
        return;
    };
    let bytes = config.encode();
    let again = VaultConfig::decode(&bytes).expect("a re-encoded vault config decodes");
    assert_eq!(again, config);
    assert_eq!(again.encode(), bytes, "vault config encoding is not stable");

    let key = config.encrypted.then(master);
    let (codec, chunker) = config.codec(key).expect("a decoded config gives a codec");
    assert_eq!(codec.is_encrypted(), config.encrypted);
    let buf = [0x5au8; 4096];
    let lens = chunker.chunk_lengths(&buf);
    assert_eq!(lens.iter().sum::<usize>(), buf.len());
});

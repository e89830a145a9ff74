//! ext2/3/4: the input is a whole filesystem image. Opening, listing, walking and reading
//! every file must end with a value or an error, never a panic or a hang; a directory
//! cycle must end the walk with an error. Start from a real image (see README) and raise
//! `-max_len`, or the fuzzer rarely gets past the superblock.
#![no_main]

use std::sync::Arc;

use kura_image::{EntryKind, Ext4Volume, detect::detect_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detect_bytes(data);
    let Ok(volume) = Ext4Volume::open(Arc::new(data.to_vec())) else {
        return;
    };
    let mut files = Vec::new();
    let _ = volume.walk("/", |relative, entry| {
        if entry.kind == EntryKind::File {
            files.push(relative.to_vec());
        }
        Ok(())
    });
    for relative in files {
        let mut path = b"/".to_vec();
        path.extend_from_slice(&relative);
        let _ = volume.stat(&path);
        let _ = volume.copy_file(&path, &mut std::io::sink());
    }
});

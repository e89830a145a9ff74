//! Archives (the metadata backup's content): reading arbitrary bytes must fail cleanly or
//! give files with plain relative names; an archive written again from what was read
//! must read back to the same files.
#![no_main]

use std::io::Read;

use kura_format::archive::{ArchiveEntry, ArchiveReader, ArchiveWriter};
use libfuzzer_sys::fuzz_target;

fn read_all(bytes: &[u8]) -> Option<Vec<(ArchiveEntry, Vec<u8>)>> {
    let mut reader = ArchiveReader::new(bytes);
    let mut files = Vec::new();
    while let Some((entry, mut content)) = reader.next_entry().ok()? {
        let mut data = Vec::new();
        content.read_to_end(&mut data).ok()?;
        files.push((entry, data));
    }
    Some(files)
}

fuzz_target!(|data: &[u8]| {
    let Some(files) = read_all(data) else {
        return;
    };
    let mut writer = ArchiveWriter::new(Vec::new());
    for (entry, content) in &files {
        assert!(!entry.name.starts_with('/') && !entry.name.split('/').any(|p| p == ".."));
        assert_eq!(entry.size, content.len() as u64);
        writer.add(entry, &mut content.as_slice()).expect("what was read can be written");
    }
    let again = writer.finish().unwrap();
    let reread = read_all(&again).expect("a written archive reads back");
    assert_eq!(reread, files);
});

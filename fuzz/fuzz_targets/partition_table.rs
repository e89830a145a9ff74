//! Partition tables: `PartitionTable::read` of an arbitrary image (MBR, EBR chains, GPT
//! headers and entry arrays) must succeed or fail cleanly, list a bounded number of
//! partitions, and every listed partition must be safe to slice and probe.
#![no_main]

use std::sync::Arc;

use kura_image::{DiskImage, ImageSource, PartitionTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = PartitionTable::read(&data) else {
        return;
    };
    let source: Arc<dyn ImageSource> = Arc::new(data.to_vec());
    let image = DiskImage::open(source).expect("a table that read once reads again");
    assert_eq!(image.table(), &table, "reading a table is not deterministic");
    for p in &table.partitions {
        assert!(table.get(p.number).is_some());
        if let Ok(slice) = image.partition(p.number) {
            assert!(slice.size() <= p.len);
            let _ = image.detect(p.number);
        }
    }
    let _ = image.detect(0);
});

//! Property tests: hostile bytes never panic, hang or over-allocate the parsers. Random
//! sectors with table signatures exercise MBR/EBR/GPT parsing; random byte flips in the
//! metadata of a real ext4 image exercise loading, listing, walking and reading.

mod common;

use std::fs;
use std::sync::{Arc, OnceLock};

use kura_image::detect::detect_bytes;
use kura_image::{DiskImage, Ext4Volume, ImageSource, PartitionTable};
use proptest::prelude::*;

/// Puts an MBR slot at `slot` of the sector starting at byte `base`.
fn put_slot(disk: &mut [u8], base: usize, slot: usize, kind: u8, first: u32, len: u32) {
    let e = base + 446 + slot * 16;
    disk[e + 4] = kind;
    disk[e + 8..e + 12].copy_from_slice(&first.to_le_bytes());
    disk[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    disk[base + 510] = 0x55;
    disk[base + 511] = 0xaa;
}

fn slot_kind() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0u8),
        Just(0x05),
        Just(0x0f),
        Just(0x83),
        Just(0xee),
        any::<u8>()
    ]
}

/// Reads the table and touches every partition the way a caller would.
fn exercise(disk: Vec<u8>) {
    let source: Arc<dyn ImageSource> = Arc::new(disk);
    let Ok(image) = DiskImage::open(source) else {
        return;
    };
    let table = image.table();
    assert!(table.partitions.len() <= 4 + 128 + 4096);
    for p in &table.partitions {
        if let Ok(slice) = image.partition(p.number) {
            assert!(slice.size() <= p.len);
            let _ = image.detect(p.number);
            let _ = image.open_ext4(p.number);
        }
    }
}

/// A small ext4 image without metadata checksums, so flipped bytes reach the parsers
/// instead of being caught by a CRC; `None` without `mkfs.ext4`.
fn ext4_image() -> Option<&'static Vec<u8>> {
    static IMAGE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Some(message) = common::tools_missing() {
                eprintln!("{message}");
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let (tree, image) = (dir.path().join("tree"), dir.path().join("fs.img"));
            common::make_tree(&tree);
            fs::remove_file(tree.join("var/big.bin")).unwrap();
            fs::File::create(&image).unwrap().set_len(2 << 20).unwrap();
            common::mkfs_ext4_at(&image, 0, 4096, &tree, &["-O", "^metadata_csum,^has_journal"]);
            Some(fs::read(&image).unwrap())
        })
        .as_ref()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_first_sectors_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..4096), signed: bool) {
        if signed && bytes.len() >= 512 {
            bytes[510] = 0x55;
            bytes[511] = 0xaa;
            for slot in 0..4 {
                bytes[446 + slot * 16] &= 0x80;
            }
        }
        let _ = PartitionTable::read(&bytes);
        let _ = detect_bytes(&bytes);
        exercise(bytes);
    }

    #[test]
    fn random_mbr_and_ebr_chains_never_panic(
        slots in proptest::collection::vec((0usize..64, 0usize..4, slot_kind(), 0u32..140, 0u32..140), 1..40),
    ) {
        let mut disk = vec![0u8; 128 * 512];
        put_slot(&mut disk, 0, 0, 0x05, 1, 127);
        for (sector, slot, kind, first, len) in slots {
            put_slot(&mut disk, sector * 512, slot, kind, first, len);
        }
        exercise(disk);
    }

    #[test]
    fn gpt_headers_with_random_fields_never_panic(
        fields in proptest::collection::vec((0usize..92, any::<u8>()), 0..12),
        entries in proptest::collection::vec((0usize..(128 * 128), any::<u8>()), 0..64),
    ) {
        let sectors = 256u64;
        let mut disk = vec![0u8; sectors as usize * 512];
        put_slot(&mut disk, 0, 0, 0xee, 1, u32::MAX);
        let h = &mut disk[512..1024];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&(sectors - 1).to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        for (at, byte) in fields {
            if !(16..20).contains(&at) {
                h[at] = byte;
            }
        }
        for (at, byte) in entries {
            disk[1024 + at] = byte;
        }
        // Correct CRCs, so the fields themselves (counts, sizes, LBAs) are what is tested.
        let count = u32::from_le_bytes(disk[512 + 80..512 + 84].try_into().unwrap()) as usize;
        let size = u32::from_le_bytes(disk[512 + 84..512 + 88].try_into().unwrap()) as usize;
        let lba = u64::from_le_bytes(disk[512 + 72..512 + 80].try_into().unwrap());
        if let Some(array) = count
            .checked_mul(size)
            .zip(usize::try_from(lba).ok().and_then(|l| l.checked_mul(512)))
            .and_then(|(len, at)| disk.get(at..at.checked_add(len)?))
        {
            let crc = crc_of(array);
            disk[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
        }
        let header_size = (u32::from_le_bytes(disk[512 + 12..512 + 16].try_into().unwrap()) as usize).min(512);
        disk[512 + 16..512 + 20].fill(0);
        let crc = crc_of(&disk[512..512 + header_size]);
        disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        exercise(disk);
    }

    #[test]
    fn random_superblock_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1024..3072)) {
        let mut image = vec![0u8; 1024];
        image.extend_from_slice(&bytes);
        image[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
        image.resize(64 * 1024, 0);
        if let Ok(volume) = Ext4Volume::open(Arc::new(image)) {
            let _ = volume.walk("/", |_, _| Ok(()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn flipped_bytes_in_a_real_ext4_image_never_panic(
        flips in proptest::collection::vec((0usize..(256 * 1024), any::<u8>()), 1..24),
    ) {
        let Some(image) = ext4_image() else {
            return Ok(());
        };
        let mut image = image.clone();
        for (at, byte) in flips {
            image[at] ^= byte | 1;
        }
        let Ok(volume) = Ext4Volume::open(Arc::new(image)) else {
            return Ok(());
        };
        let mut files = Vec::new();
        let _ = volume.walk("/", |relative, entry| {
            if entry.kind == kura_image::EntryKind::File {
                files.push(relative.to_vec());
            }
            Ok(())
        });
        for file in files {
            let mut path = b"/".to_vec();
            path.extend_from_slice(&file);
            let _ = volume.copy_file(&path, &mut std::io::sink());
        }
    }
}

fn crc_of(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

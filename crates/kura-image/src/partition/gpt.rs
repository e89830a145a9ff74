//! GUID partition tables: the primary header at LBA 1, its entry array, and the backup
//! header at the last LBA, used when the primary is damaged. Both CRC32s (header and
//! entry array) are checked before anything in them is trusted.

use crc::{CRC_32_ISO_HDLC, Crc};

use super::{Guid, Partition, PartitionTable, PartitionType, TableScheme, read_u32, read_u64};
use crate::error::{ImageError, Result};
use crate::source::ImageSource;

/// Most entries read from one array. Tools create 128; the cap bounds memory and reads.
pub(crate) const MAX_ENTRIES: u32 = 4096;
/// Largest entry size accepted (the spec allows 128·2ⁿ; nobody uses more than 128).
const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest entry array read, in bytes.
const MAX_ARRAY_BYTES: u64 = 1 << 20;
const SIGNATURE: &[u8; 8] = b"EFI PART";
const MIN_HEADER_SIZE: u32 = 92;
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// The parts of a GPT header used here, after validation.
#[derive(Debug)]
struct GptHeader {
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Reads the GPT of a disk with a protective MBR: the primary at LBA 1 of a 512- or
/// 4096-byte-sector disk, else the backup at the last LBA.
pub(crate) fn read(source: &dyn ImageSource) -> Result<PartitionTable> {
    let mut primary_problems = Vec::new();
    let mut backup_problems = Vec::new();
    for sector_size in [512u64, 4096] {
        match read_copy(source, sector_size, 1) {
            Ok((header, partitions)) => {
                let mut warnings = Vec::new();
                if let Err(problem) = read_copy(source, sector_size, header.alternate_lba) {
                    warnings.push(format!(
                        "the backup GPT header is damaged ({problem}); the primary is fine"
                    ));
                }
                return Ok(table(sector_size, &header, partitions, warnings));
            }
            Err(problem) => primary_problems.push(format!("{sector_size}-byte sectors: {problem}")),
        }
    }
    for sector_size in [512u64, 4096] {
        let last_lba = (source.size() / sector_size).saturating_sub(1);
        match read_copy(source, sector_size, last_lba) {
            Ok((header, partitions)) => {
                let warning = format!(
                    "the primary GPT header is damaged ({}); using the backup at the end of the disk",
                    primary_problems.join("; ")
                );
                return Ok(table(sector_size, &header, partitions, vec![warning]));
            }
            Err(problem) => backup_problems.push(format!("{sector_size}-byte sectors: {problem}")),
        }
    }
    Err(ImageError::GptDamaged {
        primary: primary_problems.join("; "),
        backup: backup_problems.join("; "),
    })
}

fn table(
    sector_size: u64,
    header: &GptHeader,
    partitions: Vec<Partition>,
    mut warnings: Vec<String>,
) -> PartitionTable {
    for p in &partitions {
        let first = p.start / sector_size;
        let last = (p.end() / sector_size).saturating_sub(1);
        if first < header.first_usable || last > header.last_usable {
            warnings.push(format!(
                "partition {} (sectors {first}..={last}) lies outside the usable area {}..={}",
                p.number, header.first_usable, header.last_usable
            ));
        }
    }
    PartitionTable {
        scheme: TableScheme::Gpt,
        sector_size,
        disk_guid: Some(header.disk_guid),
        partitions,
        warnings,
    }
}

/// Reads and checks one header copy at `lba` and its entry array. The error is a short
/// description of what is wrong, for the warning or the final error.
fn read_copy(
    source: &dyn ImageSource,
    sector_size: u64,
    lba: u64,
) -> Result<(GptHeader, Vec<Partition>), String> {
    let size = source.size();
    let at = lba
        .checked_mul(sector_size)
        .filter(|at| lba > 0 && at.saturating_add(sector_size) <= size)
        .ok_or_else(|| format!("header LBA {lba} is outside the image"))?;
    let mut sector = vec![0u8; sector_size as usize];
    source
        .read_exact_at(at, &mut sector)
        .map_err(|e| format!("reading LBA {lba}: {e}"))?;
    let header = parse_header(&sector, lba, size / sector_size)?;
    let array_len = u64::from(header.entry_count) * u64::from(header.entry_size);
    let array_at = header
        .entries_lba
        .checked_mul(sector_size)
        .filter(|at| at.saturating_add(array_len) <= size)
        .ok_or_else(|| format!("entry array at LBA {} is outside the image", header.entries_lba))?;
    let mut array = vec![0u8; array_len as usize];
    source
        .read_exact_at(array_at, &mut array)
        .map_err(|e| format!("reading the entry array: {e}"))?;
    if crc32(&array) != header.entries_crc {
        return Err("entry array CRC32 mismatch".into());
    }
    let partitions = array
        .chunks_exact(header.entry_size as usize)
        .enumerate()
        .filter_map(|(index, raw)| parse_entry(index as u32 + 1, raw, sector_size))
        .collect();
    Ok((header, partitions))
}

/// Checks signature, size, CRC, self-location and limits of a header sector.
fn parse_header(sector: &[u8], lba: u64, disk_sectors: u64) -> Result<GptHeader, String> {
    if &sector[..8] != SIGNATURE {
        return Err("no \"EFI PART\" signature".into());
    }
    let header_size = read_u32(sector, 12);
    if header_size < MIN_HEADER_SIZE || header_size as usize > sector.len() {
        return Err(format!("header size {header_size} is invalid"));
    }
    let mut copy = sector[..header_size as usize].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != read_u32(sector, 16) {
        return Err("header CRC32 mismatch".into());
    }
    if read_u64(sector, 24) != lba {
        return Err(format!(
            "header claims to be at LBA {}, found at {lba}",
            read_u64(sector, 24)
        ));
    }
    let header = GptHeader {
        alternate_lba: read_u64(sector, 32),
        first_usable: read_u64(sector, 40),
        last_usable: read_u64(sector, 48),
        disk_guid: Guid(sector[56..72].try_into().expect("16 bytes")),
        entries_lba: read_u64(sector, 72),
        entry_count: read_u32(sector, 80),
        entry_size: read_u32(sector, 84),
        entries_crc: read_u32(sector, 88),
    };
    if header.first_usable > header.last_usable || header.last_usable >= disk_sectors {
        return Err(format!(
            "usable area {}..={} does not fit a disk of {disk_sectors} sectors",
            header.first_usable, header.last_usable
        ));
    }
    if header.entry_size < 128 || header.entry_size > MAX_ENTRY_SIZE || !header.entry_size.is_multiple_of(8) {
        return Err(format!("entry size {} is invalid", header.entry_size));
    }
    if header.entry_count > MAX_ENTRIES
        || u64::from(header.entry_count) * u64::from(header.entry_size) > MAX_ARRAY_BYTES
    {
        return Err(format!(
            "{} entries of {} bytes is more than this reader accepts ({MAX_ENTRIES} entries, {MAX_ARRAY_BYTES} bytes)",
            header.entry_count, header.entry_size
        ));
    }
    Ok(header)
}

/// One entry; `None` for an unused slot (zero type GUID) or an inverted range.
fn parse_entry(number: u32, raw: &[u8], sector_size: u64) -> Option<Partition> {
    let type_guid = Guid(raw[..16].try_into().expect("16 bytes"));
    if type_guid.is_zero() {
        return None;
    }
    let first = read_u64(raw, 32);
    let last = read_u64(raw, 40);
    if last < first {
        return None;
    }
    let units: Vec<u16> = raw[56..128]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    Some(Partition {
        number,
        start: first.saturating_mul(sector_size),
        len: (last - first).saturating_add(1).saturating_mul(sector_size),
        kind: PartitionType::Gpt(type_guid),
        name: String::from_utf16_lossy(&units),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::partition::mbr::tests::put_entry;

    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";

    /// Writes a header at `lba` pointing at an entry array at `entries_lba`.
    fn put_header(disk: &mut [u8], lba: u64, alternate: u64, entries_lba: u64, count: u32, sectors: u64) {
        let array = &disk[entries_lba as usize * 512..][..count as usize * 128];
        let entries_crc = crc32(array);
        let h = &mut disk[lba as usize * 512..][..512];
        h.fill(0);
        h[..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56..72].copy_from_slice(&[7; 16]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&count.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    fn put_gpt_entry(
        disk: &mut [u8],
        entries_lba: u64,
        index: usize,
        kind: &str,
        first: u64,
        last: u64,
        name: &str,
    ) {
        let e = &mut disk[entries_lba as usize * 512 + index * 128..][..128];
        e[..16].copy_from_slice(&Guid::parse(kind).unwrap().0);
        e[16..32].copy_from_slice(&[index as u8 + 1; 16]);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (i, unit) in name.encode_utf16().enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }

    /// A 2048-sector disk with a protective MBR, two partitions (numbers 1 and 3), and
    /// both headers.
    pub(crate) fn gpt_disk() -> Vec<u8> {
        let sectors = 2048u64;
        let mut disk = vec![0u8; sectors as usize * 512];
        put_entry(&mut disk, 0, 0, 0xee, 1, u32::MAX);
        for entries_lba in [2, sectors - 33] {
            put_gpt_entry(&mut disk, entries_lba, 0, LINUX, 100, 599, "root");
            put_gpt_entry(&mut disk, entries_lba, 2, SWAP, 600, 699, "swap");
        }
        put_header(&mut disk, 1, sectors - 1, 2, 128, sectors);
        put_header(&mut disk, sectors - 1, 1, sectors - 33, 128, sectors);
        disk
    }

    #[test]
    fn reads_entries_with_names_types_and_slot_numbers() {
        let table = PartitionTable::read(&gpt_disk()).unwrap();
        assert_eq!(table.scheme, TableScheme::Gpt);
        assert!(table.warnings.is_empty(), "{:?}", table.warnings);
        assert_eq!(table.partitions.len(), 2);
        let root = table.get(1).unwrap();
        assert_eq!(
            (root.start, root.len, root.name.as_str()),
            (100 * 512, 500 * 512, "root")
        );
        assert_eq!(root.kind.description(), Some("Linux filesystem"));
        let swap = table.get(3).unwrap();
        assert_eq!(
            (swap.start, swap.len, swap.name.as_str()),
            (600 * 512, 100 * 512, "swap")
        );
        assert_eq!(table.disk_guid, Some(Guid([7; 16])));
    }

    #[test]
    fn damaged_primary_header_falls_back_to_the_backup() {
        let mut disk = gpt_disk();
        disk[512 + 40] ^= 1; // header CRC no longer matches
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 2);
        assert!(
            table.warnings[0].contains("header CRC32 mismatch"),
            "{:?}",
            table.warnings
        );
        assert!(table.warnings[0].contains("using the backup"));
    }

    #[test]
    fn damaged_primary_entry_array_falls_back_to_the_backup() {
        let mut disk = gpt_disk();
        disk[2 * 512 + 56] ^= 1; // a name byte of entry 1
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.get(1).unwrap().name, "root");
        assert!(
            table.warnings[0].contains("entry array CRC32 mismatch"),
            "{:?}",
            table.warnings
        );
    }

    #[test]
    fn damaged_backup_is_a_warning_only() {
        let mut disk = gpt_disk();
        let last = disk.len() - 512;
        disk[last] = b'X';
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 2);
        assert!(
            table.warnings[0].contains("backup GPT header is damaged"),
            "{:?}",
            table.warnings
        );
    }

    #[test]
    fn both_headers_damaged_is_an_error_that_says_why() {
        let mut disk = gpt_disk();
        disk[512] = b'X';
        let last = disk.len() - 512;
        disk[last + 16] ^= 0xff;
        let err = PartitionTable::read(&disk).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ImageError::GptDamaged { .. }), "{text}");
        assert!(text.contains("signature") && text.contains("CRC32"), "{text}");
    }

    #[test]
    fn huge_entry_counts_are_refused_before_reading() {
        let mut disk = gpt_disk();
        disk[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
        let h = &mut disk[512..1024];
        h[16..20].fill(0);
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        let table = PartitionTable::read(&disk).unwrap();
        assert!(
            table.warnings[0].contains("more than this reader accepts"),
            "{:?}",
            table.warnings
        );
    }

    #[test]
    fn entries_outside_the_usable_area_or_disk_are_reported() {
        let mut disk = gpt_disk();
        let sectors = (disk.len() / 512) as u64;
        for entries_lba in [2, sectors - 33] {
            put_gpt_entry(&mut disk, entries_lba, 1, LINUX, 5000, 9000, "far");
            put_gpt_entry(&mut disk, entries_lba, 3, LINUX, 500, 650, "overlap");
        }
        put_header(&mut disk, 1, sectors - 1, 2, 128, sectors);
        put_header(&mut disk, sectors - 1, 1, sectors - 33, 128, sectors);
        let table = PartitionTable::read(&disk).unwrap();
        let text = table.warnings.join("\n");
        assert!(
            text.contains("partition 2 (sectors 5000..=9000) lies outside"),
            "{text}"
        );
        assert!(text.contains("partition 2 (bytes"), "{text}");
        assert!(text.contains("partitions 1 and 4 overlap"), "{text}");
        assert!(text.contains("partitions 3 and 4 overlap"), "{text}");
    }
}

//! DOS/MBR tables: four primary slots in sector 0, and logical partitions in a linked
//! chain of extended boot records (EBRs) inside an extended partition.

use std::collections::HashSet;

use super::{Partition, PartitionTable, PartitionType, SECTOR_SIZE, TableScheme, read_u32};
use crate::error::{ImageError, Result};
use crate::source::ImageSource;

/// Most logical partitions followed in one chain; Linux itself stops far earlier in
/// practice, and the cap keeps a hostile chain from costing more than this many reads.
pub(crate) const MAX_LOGICAL_PARTITIONS: usize = 128;

const ENTRIES_AT: usize = 446;
const ENTRY_LEN: usize = 16;

/// One 16-byte slot of an MBR or EBR, in sectors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MbrEntry {
    type_byte: u8,
    first_sector: u32,
    sectors: u32,
}

impl MbrEntry {
    fn is_empty(&self) -> bool {
        self.type_byte == 0 || self.sectors == 0
    }
}

/// Sector 0 (or an EBR) with a boot signature and plausible slots.
pub(crate) struct MasterBootRecord {
    entries: [MbrEntry; 4],
}

impl MasterBootRecord {
    /// Parses a 512-byte sector; `None` when it carries no table: no 55 AA signature, or
    /// a slot whose boot flag is neither 0x00 nor 0x80 (boot code, not a table).
    pub(crate) fn parse(sector: &[u8; SECTOR_SIZE as usize]) -> Option<Self> {
        if sector[510..512] != [0x55, 0xaa] {
            return None;
        }
        let mut entries = [MbrEntry {
            type_byte: 0,
            first_sector: 0,
            sectors: 0,
        }; 4];
        for (i, entry) in entries.iter_mut().enumerate() {
            let raw = &sector[ENTRIES_AT + i * ENTRY_LEN..][..ENTRY_LEN];
            if raw[0] & 0x7f != 0 {
                return None;
            }
            *entry = MbrEntry {
                type_byte: raw[4],
                first_sector: read_u32(raw, 8),
                sectors: read_u32(raw, 12),
            };
        }
        Some(Self { entries })
    }

    /// Whether slot types say "the real table is a GPT".
    pub(crate) fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.type_byte == 0xee)
    }
}

fn partition(number: u32, base_sector: u64, entry: &MbrEntry) -> Partition {
    Partition {
        number,
        start: (base_sector + u64::from(entry.first_sector)) * SECTOR_SIZE,
        len: u64::from(entry.sectors) * SECTOR_SIZE,
        kind: PartitionType::Mbr(entry.type_byte),
        name: String::new(),
    }
}

/// The partitions of an MBR disk: primaries by slot, then the logical partitions of each
/// extended partition.
pub(crate) fn read(source: &dyn ImageSource, mbr: &MasterBootRecord) -> Result<PartitionTable> {
    let mut table = PartitionTable {
        scheme: TableScheme::Mbr,
        sector_size: SECTOR_SIZE,
        disk_guid: None,
        partitions: Vec::new(),
        warnings: Vec::new(),
    };
    let mut next_logical = 5;
    let mut extended = Vec::new();
    for (slot, entry) in mbr.entries.iter().enumerate() {
        if entry.is_empty() {
            continue;
        }
        let primary = partition(slot as u32 + 1, 0, entry);
        if primary.kind.is_extended() {
            extended.push(primary.clone());
        }
        table.partitions.push(primary);
    }
    for container in &extended {
        read_logical(source, container, &mut next_logical, &mut table)?;
    }
    Ok(table)
}

/// Follows the EBR chain of one extended partition. Each EBR holds the logical
/// partition (relative to the EBR) and a link to the next EBR (relative to the start of
/// the extended partition). A chain that leaves the container, revisits an EBR, runs too
/// long, or hits an unreadable sector ends with a warning; what was found stays.
fn read_logical(
    source: &dyn ImageSource,
    container: &Partition,
    next_number: &mut u32,
    table: &mut PartitionTable,
) -> Result<()> {
    let container_sector = container.start / SECTOR_SIZE;
    let container_sectors = container.len / SECTOR_SIZE;
    let mut ebr_offset = 0u64;
    let mut visited = HashSet::new();
    loop {
        if !visited.insert(ebr_offset) {
            table.warnings.push(format!(
                "the EBR chain of extended partition {} loops back to sector {}; stopped there",
                container.number,
                container_sector + ebr_offset
            ));
            return Ok(());
        }
        if visited.len() > MAX_LOGICAL_PARTITIONS {
            table.warnings.push(format!(
                "extended partition {} has more than {MAX_LOGICAL_PARTITIONS} EBRs; stopped there",
                container.number
            ));
            return Ok(());
        }
        let ebr_sector = container_sector + ebr_offset;
        let mut sector = [0u8; SECTOR_SIZE as usize];
        let read = ebr_sector
            .checked_mul(SECTOR_SIZE)
            .filter(|at| at.saturating_add(SECTOR_SIZE) <= source.size())
            .map(|at| source.read_exact_at(at, &mut sector));
        match read {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(ImageError::io(format!("the EBR at sector {ebr_sector}"), e));
            }
            None => {
                table.warnings.push(format!(
                    "an EBR of extended partition {} lies past the end of the image (sector {ebr_sector})",
                    container.number
                ));
                return Ok(());
            }
        }
        let Some(ebr) = MasterBootRecord::parse(&sector) else {
            table.warnings.push(format!(
                "sector {ebr_sector} in extended partition {} is not a valid EBR; logical partitions after it are ignored",
                container.number
            ));
            return Ok(());
        };
        let [logical, link, ..] = ebr.entries;
        if !logical.is_empty() {
            let p = partition(*next_number, ebr_sector, &logical);
            if p.end() > container.end() {
                table.warnings.push(format!(
                    "logical partition {} reaches past its extended partition {}",
                    p.number, container.number
                ));
            }
            table.partitions.push(p);
            *next_number += 1;
        }
        if link.is_empty() {
            return Ok(());
        }
        ebr_offset = u64::from(link.first_sector);
        if ebr_offset == 0 || ebr_offset >= container_sectors {
            if ebr_offset != 0 {
                table.warnings.push(format!(
                    "the EBR chain of extended partition {} points outside it (sector {}); stopped there",
                    container.number,
                    container_sector + ebr_offset
                ));
            } else {
                table.warnings.push(format!(
                    "the EBR chain of extended partition {} loops back to its first EBR; stopped there",
                    container.number
                ));
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes an MBR/EBR slot (boot flag 0) into a sector at `at`.
    pub(crate) fn put_entry(disk: &mut [u8], sector: u64, slot: usize, kind: u8, first: u32, len: u32) {
        let base = sector as usize * 512;
        let e = base + ENTRIES_AT + slot * ENTRY_LEN;
        disk[e + 4] = kind;
        disk[e + 8..e + 12].copy_from_slice(&first.to_le_bytes());
        disk[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        disk[base + 510] = 0x55;
        disk[base + 511] = 0xaa;
    }

    fn summary(table: &PartitionTable) -> Vec<(u32, u64, u64, u8)> {
        table
            .partitions
            .iter()
            .map(|p| {
                let PartitionType::Mbr(t) = p.kind else {
                    panic!("gpt type in an mbr table")
                };
                (p.number, p.start / 512, p.len / 512, t)
            })
            .collect()
    }

    #[test]
    fn primary_and_logical_partitions_are_numbered_like_linux() {
        let mut disk = vec![0u8; 4096 * 512];
        put_entry(&mut disk, 0, 0, 0x83, 2048, 1000);
        // slot 2 empty: numbers keep their slot
        put_entry(&mut disk, 0, 2, 0x05, 3100, 900);
        // first EBR at 3100: logical at +2, next EBR at container+400
        put_entry(&mut disk, 3100, 0, 0x83, 2, 300);
        put_entry(&mut disk, 3100, 1, 0x05, 400, 500);
        put_entry(&mut disk, 3500, 0, 0x82, 2, 100);
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.scheme, TableScheme::Mbr);
        assert_eq!(
            summary(&table),
            vec![
                (1, 2048, 1000, 0x83),
                (3, 3100, 900, 0x05),
                (5, 3102, 300, 0x83),
                (6, 3502, 100, 0x82),
            ]
        );
        assert!(table.warnings.is_empty(), "{:?}", table.warnings);
    }

    #[test]
    fn ebr_loop_stops_with_a_warning() {
        let mut disk = vec![0u8; 4096 * 512];
        put_entry(&mut disk, 0, 0, 0x0f, 1000, 2000);
        put_entry(&mut disk, 1000, 0, 0x83, 2, 10);
        put_entry(&mut disk, 1000, 1, 0x05, 100, 50);
        put_entry(&mut disk, 1100, 0, 0x83, 2, 10);
        put_entry(&mut disk, 1100, 1, 0x05, 100, 50); // points to itself
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 3);
        assert!(table.warnings[0].contains("loops"), "{:?}", table.warnings);

        // a link back to the first EBR (relative offset 0)
        put_entry(&mut disk, 1100, 1, 0x05, 0, 50);
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 3);
        assert!(table.warnings[0].contains("loops"), "{:?}", table.warnings);
    }

    #[test]
    fn long_ebr_chain_is_capped() {
        let ebrs = MAX_LOGICAL_PARTITIONS as u64 + 20;
        let mut disk = vec![0u8; (ebrs as usize * 4 + 100) * 512];
        put_entry(&mut disk, 0, 0, 0x05, 10, (ebrs * 4) as u32);
        for i in 0..ebrs {
            put_entry(&mut disk, 10 + i * 4, 0, 0x83, 1, 2);
            put_entry(&mut disk, 10 + i * 4, 1, 0x05, ((i + 1) * 4) as u32, 4);
        }
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 1 + MAX_LOGICAL_PARTITIONS);
        assert!(table.warnings.iter().any(|w| w.contains("more than")));
    }

    #[test]
    fn out_of_range_and_overlapping_entries_are_reported() {
        let mut disk = vec![0u8; 2048 * 512];
        put_entry(&mut disk, 0, 0, 0x83, 100, 500);
        put_entry(&mut disk, 0, 1, 0x83, 400, 500);
        put_entry(&mut disk, 0, 2, 0x83, u32::MAX, u32::MAX);
        put_entry(&mut disk, 0, 3, 0x05, 1500, 40_000);
        let table = PartitionTable::read(&disk).unwrap();
        let text = table.warnings.join("\n");
        assert!(text.contains("partitions 1 and 2 overlap"), "{text}");
        assert!(text.contains("partition 3 (bytes"), "{text}");
        assert!(text.contains("partition 4 (bytes"), "{text}");
        // the EBR of partition 4 is blank: not an EBR
        assert!(text.contains("not a valid EBR"), "{text}");
        assert_eq!(table.partitions.len(), 4);
    }

    #[test]
    fn ebr_outside_the_image_or_container_ends_the_chain() {
        let mut disk = vec![0u8; 2048 * 512];
        put_entry(&mut disk, 0, 0, 0x05, 1000, 1048);
        put_entry(&mut disk, 1000, 0, 0x83, 2, 10);
        put_entry(&mut disk, 1000, 1, 0x05, 5000, 10);
        let table = PartitionTable::read(&disk).unwrap();
        assert_eq!(table.partitions.len(), 2);
        assert!(
            table.warnings[0].contains("points outside"),
            "{:?}",
            table.warnings
        );

        put_entry(&mut disk, 0, 0, 0x05, 4000, 100);
        let table = PartitionTable::read(&disk).unwrap();
        assert!(
            table
                .warnings
                .iter()
                .any(|w| w.contains("past the end of the image"))
        );
    }

    #[test]
    fn boot_code_without_valid_boot_flags_is_not_a_table() {
        let mut disk = vec![0u8; 1024];
        put_entry(&mut disk, 0, 0, 0x83, 1, 1);
        disk[ENTRIES_AT] = 0x12;
        assert_eq!(PartitionTable::read(&disk).unwrap().scheme, TableScheme::None);
    }
}

//! Partition tables: finding the partitions of a disk image (MBR with its chain of
//! extended boot records, or GPT) and numbering them as Linux does (`/dev/sdX1`…).
//!
//! Every table is untrusted input. Parsers here read a bounded number of sectors, cap
//! entry counts, follow a chain at most a fixed number of steps, and report damage that
//! leaves the rest usable (an entry past the end of the image, overlaps, a broken EBR
//! chain, a bad primary GPT header) as [`PartitionTable::warnings`] instead of failing.

mod gpt;
mod mbr;

use std::fmt;

use crate::detect;
use crate::error::{ImageError, Result};
use crate::source::ImageSource;

/// Sector size assumed by MBR and tried first for GPT.
pub const SECTOR_SIZE: u64 = 512;

/// How the disk is divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableScheme {
    /// DOS/MBR table, possibly with logical partitions in an extended one.
    Mbr,
    /// GUID partition table (behind a protective MBR).
    Gpt,
    /// No partition table: the image is one filesystem (or empty, or unknown);
    /// address it as partition 0.
    None,
}

impl fmt::Display for TableScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mbr => "dos",
            Self::Gpt => "gpt",
            Self::None => "none",
        })
    }
}

/// A 16-byte GUID as stored on disk (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses the usual text form (`0FC63DAF-8483-4772-8E79-3D69D8477DE4`).
    pub fn parse(text: &str) -> Option<Self> {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || text.len() != 36 {
            return None;
        }
        let mut text_order = [0u8; 16];
        for (i, byte) in text_order.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let mut disk = text_order;
        disk[0..4].reverse();
        disk[4..6].reverse();
        disk[6..8].reverse();
        Some(Self(disk))
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// What a partition is declared to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    /// MBR system id byte (0x83 Linux, 0x82 swap, 0x05/0x0f/0x85 extended…).
    Mbr(u8),
    /// GPT partition type GUID.
    Gpt(Guid),
}

const GPT_TYPE_NAMES: [(&str, &str); 8] = [
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data"),
    ("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64)"),
];

impl PartitionType {
    /// Whether this MBR entry is a container of logical partitions.
    pub fn is_extended(&self) -> bool {
        matches!(self, Self::Mbr(0x05 | 0x0f | 0x85))
    }

    /// A human name for well-known types, as `sfdisk -l` shows them.
    pub fn description(&self) -> Option<&'static str> {
        match self {
            Self::Mbr(byte) => match byte {
                0x01 => Some("FAT12"),
                0x04 | 0x06 | 0x0e => Some("FAT16"),
                0x05 | 0x0f | 0x85 => Some("Extended"),
                0x07 => Some("HPFS/NTFS/exFAT"),
                0x0b | 0x0c => Some("W95 FAT32"),
                0x82 => Some("Linux swap"),
                0x83 => Some("Linux"),
                0x8e => Some("Linux LVM"),
                0xa5 | 0xa6 | 0xa9 => Some("BSD"),
                0xee => Some("GPT"),
                0xef => Some("EFI (FAT-12/16/32)"),
                0xfd => Some("Linux raid autodetect"),
                _ => None,
            },
            Self::Gpt(guid) => GPT_TYPE_NAMES
                .iter()
                .find(|(text, _)| Guid::parse(text) == Some(*guid))
                .map(|(_, name)| *name),
        }
    }
}

impl fmt::Display for PartitionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.description()) {
            (Self::Mbr(byte), Some(name)) => write!(f, "{byte:02x} ({name})"),
            (Self::Mbr(byte), None) => write!(f, "{byte:02x}"),
            (Self::Gpt(guid), Some(name)) => write!(f, "{guid} ({name})"),
            (Self::Gpt(guid), None) => write!(f, "{guid}"),
        }
    }
}

/// One partition, located in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number as Linux gives it: MBR slots 1–4 (empty slots keep their number),
    /// logical partitions from 5 in chain order; GPT entry index + 1.
    pub number: u32,
    /// Offset of the first byte in the image.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    pub kind: PartitionType,
    /// GPT partition name; empty for MBR.
    pub name: String,
}

impl Partition {
    /// One past the last byte (saturating, for hostile tables).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The partitions of an image, with the damage found while reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub scheme: TableScheme,
    /// Logical sector size the table was found with (512 or 4096).
    pub sector_size: u64,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// In number order; for MBR this includes the extended container itself.
    pub partitions: Vec<Partition>,
    /// Damage that did not stop the table from being read, one sentence each.
    pub warnings: Vec<String>,
}

impl PartitionTable {
    /// Reads the table of `source`. Fails only when the source cannot be read or a
    /// protective MBR promises a GPT that is damaged beyond using; an image without a
    /// recognisable table gives [`TableScheme::None`].
    pub fn read(source: &dyn ImageSource) -> Result<Self> {
        let size = source.size();
        let mut sector0 = [0u8; SECTOR_SIZE as usize];
        if size < SECTOR_SIZE {
            return Ok(Self::without_table());
        }
        source
            .read_exact_at(0, &mut sector0)
            .map_err(|e| ImageError::io("the first sector", e))?;
        // A FAT/NTFS/exFAT boot sector also ends in 55 AA; it is a filesystem on the
        // whole disk, not a table.
        if detect::boot_sector_filesystem(&sector0).is_some() {
            return Ok(Self::without_table());
        }
        let Some(mbr) = mbr::MasterBootRecord::parse(&sector0) else {
            return Ok(Self::without_table());
        };
        let mut table = if mbr.is_protective() {
            gpt::read(source)?
        } else {
            mbr::read(source, &mbr)?
        };
        table.check_bounds(size);
        Ok(table)
    }

    fn without_table() -> Self {
        Self {
            scheme: TableScheme::None,
            sector_size: SECTOR_SIZE,
            disk_guid: None,
            partitions: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The partition with this number.
    pub fn get(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// Warns about partitions past the end of the image and about overlaps (the
    /// extended container is meant to overlap its logical partitions).
    fn check_bounds(&mut self, size: u64) {
        for p in &self.partitions {
            if p.end() > size {
                self.warnings.push(format!(
                    "partition {} (bytes {}..{}) reaches past the end of the image ({size} bytes)",
                    p.number,
                    p.start,
                    p.end()
                ));
            }
        }
        let data: Vec<&Partition> = self.partitions.iter().filter(|p| !p.kind.is_extended()).collect();
        for (i, a) in data.iter().enumerate() {
            for b in &data[i + 1..] {
                if a.start < b.end() && b.start < a.end() {
                    self.warnings
                        .push(format!("partitions {} and {} overlap", a.number, b.number));
                }
            }
        }
    }
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trips_in_mixed_endian_order() {
        let text = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
        let guid = Guid::parse(text).unwrap();
        assert_eq!(&guid.0[..4], &[0xaf, 0x3d, 0xc6, 0x0f]);
        assert_eq!(guid.to_string(), text);
        assert_eq!(PartitionType::Gpt(guid).description(), Some("Linux filesystem"));
        assert_eq!(Guid::parse("0FC63DAF"), None);
    }

    #[test]
    fn tiny_and_blank_images_have_no_table() {
        let table = PartitionTable::read(&vec![0u8; 100]).unwrap();
        assert_eq!(table.scheme, TableScheme::None);
        let table = PartitionTable::read(&vec![0u8; 4096]).unwrap();
        assert_eq!(table.scheme, TableScheme::None);
        assert!(table.partitions.is_empty());
    }
}

//! Which filesystem (or container) a partition holds, told by superblock signatures.
//! Detection reads a few fixed sectors and never trusts a length from the image.

use std::fmt;

use crate::error::{ImageError, Result};
use crate::partition::{read_u16, read_u32};
use crate::source::ImageSource;

/// A filesystem or volume format found on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Ntfs,
    Fat12,
    Fat16,
    Fat32,
    ExFat,
    Swap,
    Lvm2,
    Luks,
}

impl FsKind {
    /// Whether [`crate::Ext4Volume`] can read it.
    pub fn is_browsable(self) -> bool {
        matches!(self, Self::Ext2 | Self::Ext3 | Self::Ext4)
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ext2 => "ext2",
            Self::Ext3 => "ext3",
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
            Self::Btrfs => "btrfs",
            Self::Ntfs => "ntfs",
            Self::Fat12 => "fat12",
            Self::Fat16 => "fat16",
            Self::Fat32 => "fat32",
            Self::ExFat => "exfat",
            Self::Swap => "swap",
            Self::Lvm2 => "LVM2 physical volume",
            Self::Luks => "LUKS encrypted volume",
        })
    }
}

/// Bytes read from the start of a partition: enough for every signature below
/// (btrfs's superblock sits at 64 KiB).
const PROBE_LEN: usize = 0x10040 + 8;
/// Offset of the ext2/3/4 superblock.
pub(crate) const EXT_SUPERBLOCK_AT: usize = 1024;
const EXT_MAGIC: u16 = 0xef53;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x4;
/// Incompat features only ext4 has: extents, 64bit, flex_bg, inline data…
const EXT4_INCOMPAT: u32 = 0x40 | 0x80 | 0x200 | 0x8000 | 0x10000;
/// Page sizes whose last 10 bytes may hold a swap signature.
const SWAP_PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 65536];

/// Identifies the filesystem at the start of `source`; `None` when no signature matches.
pub fn detect(source: &dyn ImageSource) -> Result<Option<FsKind>> {
    let len = usize::try_from(source.size()).map_or(PROBE_LEN, |s| s.min(PROBE_LEN));
    let mut probe = vec![0u8; len];
    source
        .read_exact_at(0, &mut probe)
        .map_err(|e| ImageError::io("the filesystem superblock", e))?;
    Ok(detect_bytes(&probe))
}

/// [`detect`] on the first bytes of a partition (any length; short input matches less).
pub fn detect_bytes(probe: &[u8]) -> Option<FsKind> {
    let at = |offset: usize, magic: &[u8]| probe.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"LUKS\xba\xbe") {
        return Some(FsKind::Luks);
    }
    if at(0, b"XFSB") {
        return Some(FsKind::Xfs);
    }
    if (0..4).any(|sector| at(sector * 512, b"LABELONE") && at(sector * 512 + 24, b"LVM2 001")) {
        return Some(FsKind::Lvm2);
    }
    if at(0x10040, b"_BHRfS_M") {
        return Some(FsKind::Btrfs);
    }
    if let Some(kind) = ext_kind(probe) {
        return Some(kind);
    }
    if SWAP_PAGE_SIZES
        .iter()
        .any(|page| at(page - 10, b"SWAPSPACE2") || at(page - 10, b"SWAP-SPACE"))
    {
        return Some(FsKind::Swap);
    }
    probe.first_chunk::<512>().and_then(boot_sector_filesystem)
}

fn ext_kind(probe: &[u8]) -> Option<FsKind> {
    let sb = probe.get(EXT_SUPERBLOCK_AT..EXT_SUPERBLOCK_AT + 0x68)?;
    if read_u16(sb, 0x38) != EXT_MAGIC {
        return None;
    }
    let compat = read_u32(sb, 0x5c);
    let incompat = read_u32(sb, 0x60);
    Some(if incompat & EXT4_INCOMPAT != 0 {
        FsKind::Ext4
    } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    })
}

/// Filesystems whose boot sector, like an MBR, ends in 55 AA: NTFS, exFAT and FAT.
pub(crate) fn boot_sector_filesystem(sector: &[u8; 512]) -> Option<FsKind> {
    if &sector[3..11] == b"NTFS    " {
        return Some(FsKind::Ntfs);
    }
    if &sector[3..11] == b"EXFAT   " {
        return Some(FsKind::ExFat);
    }
    let bytes_per_sector = read_u16(sector, 11);
    let plausible_fat = sector[510..512] == [0x55, 0xaa]
        && matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && sector[13].is_power_of_two()
        && sector[16] > 0;
    if !plausible_fat {
        return None;
    }
    if &sector[82..87] == b"FAT32" {
        Some(FsKind::Fat32)
    } else if &sector[54..59] == b"FAT16" {
        Some(FsKind::Fat16)
    } else if &sector[54..59] == b"FAT12" {
        Some(FsKind::Fat12)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut probe = vec![0u8; PROBE_LEN];
        probe[at..at + bytes.len()].copy_from_slice(bytes);
        probe
    }

    #[test]
    fn signatures_are_recognised() {
        assert_eq!(detect_bytes(&with(0, b"XFSB")), Some(FsKind::Xfs));
        assert_eq!(detect_bytes(&with(0x10040, b"_BHRfS_M")), Some(FsKind::Btrfs));
        assert_eq!(
            detect_bytes(&with(0, b"LUKS\xba\xbe\x00\x02")),
            Some(FsKind::Luks)
        );
        assert_eq!(detect_bytes(&with(4086, b"SWAPSPACE2")), Some(FsKind::Swap));
        let mut lvm = with(512, b"LABELONE");
        lvm[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        assert_eq!(detect_bytes(&lvm), Some(FsKind::Lvm2));
        assert_eq!(detect_bytes(&with(3, b"NTFS    ")), Some(FsKind::Ntfs));
        assert_eq!(detect_bytes(&with(3, b"EXFAT   ")), Some(FsKind::ExFat));
        assert_eq!(detect_bytes(&vec![0u8; PROBE_LEN]), None);
        assert_eq!(detect_bytes(&[]), None);
    }

    #[test]
    fn ext_generation_follows_feature_flags() {
        let mut sb = with(EXT_SUPERBLOCK_AT + 0x38, &EXT_MAGIC.to_le_bytes());
        assert_eq!(detect_bytes(&sb), Some(FsKind::Ext2));
        sb[EXT_SUPERBLOCK_AT + 0x5c] = 0x4;
        assert_eq!(detect_bytes(&sb), Some(FsKind::Ext3));
        sb[EXT_SUPERBLOCK_AT + 0x60] = 0x40;
        assert_eq!(detect_bytes(&sb), Some(FsKind::Ext4));
    }

    #[test]
    fn fat_needs_a_plausible_bios_parameter_block() {
        let mut fat = with(82, b"FAT32   ");
        assert_eq!(detect_bytes(&fat), None);
        fat[11..13].copy_from_slice(&512u16.to_le_bytes());
        fat[13] = 8;
        fat[16] = 2;
        fat[510] = 0x55;
        fat[511] = 0xaa;
        assert_eq!(detect_bytes(&fat), Some(FsKind::Fat32));
    }
}

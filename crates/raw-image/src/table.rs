//! Writing partition tables (MBR, GPT, GPT with a hybrid MBR) onto any `Write + Seek`.
//!
//! Pure format code over byte offsets the layout has already checked; the writer only refuses
//! what cannot be encoded (sizes beyond 32-bit sectors in an MBR, names too long for GPT).

use std::io::{Seek, SeekFrom, Write};

use crate::crc;
use crate::error::{Error, IoContext, Result};

/// Sector size the writer uses.
pub const SECTOR: u64 = 512;
/// GPT entries written (128 entries of 128 bytes = 32 sectors).
pub const GPT_ENTRIES: u64 = 128;
const GPT_ENTRY_SIZE: u64 = 128;
/// Sectors taken by the GPT entry array.
pub const GPT_ARRAY_SECTORS: u64 = GPT_ENTRIES * GPT_ENTRY_SIZE / SECTOR;
/// Bytes at the start of the disk the table itself takes (MBR: sector 0; GPT: MBR, header, array).
pub fn head_bytes(gpt: bool) -> u64 {
    if gpt {
        (2 + GPT_ARRAY_SECTORS) * SECTOR
    } else {
        SECTOR
    }
}
/// Bytes at the end of the disk the table takes (GPT backup array and header).
pub fn tail_bytes(gpt: bool) -> u64 {
    if gpt {
        (1 + GPT_ARRAY_SECTORS) * SECTOR
    } else {
        0
    }
}

/// What kind of table to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Mbr,
    Gpt,
    /// GPT plus an MBR that mirrors the partitions with `in_hybrid` set (at most 3).
    HybridMbr,
}

/// One partition to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub mbr_type: u8,
    /// GPT type GUID, on-disk byte order.
    pub gpt_type: [u8; 16],
    /// GPT partition GUID, on-disk byte order.
    pub gpt_guid: [u8; 16],
    pub name: String,
    pub bootable: bool,
    /// Mirror this partition into the hybrid MBR.
    pub in_hybrid: bool,
}

/// A whole table.
#[derive(Debug, Clone)]
pub struct Spec {
    pub style: Style,
    pub disk_size: u64,
    pub mbr_disk_id: u32,
    /// GPT disk GUID, on-disk byte order.
    pub gpt_disk_guid: [u8; 16],
    pub entries: Vec<Entry>,
}

fn chs(lba: u64) -> [u8; 3] {
    const H: u64 = 255;
    const S: u64 = 63;
    let c = lba / (H * S);
    if c > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let h = (lba / S) % H;
    let s = lba % S + 1;
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

fn mbr_slot(
    buf: &mut [u8],
    slot: usize,
    boot: bool,
    ptype: u8,
    lba: u64,
    sectors: u64,
) -> Result<()> {
    if lba > u32::MAX as u64 || sectors > u32::MAX as u64 {
        return Err(Error::Table(format!(
            "MBR entry {}: start sector {lba} or {sectors} sectors do not fit in 32 bits (2 TiB limit)",
            slot + 1
        )));
    }
    let o = 446 + 16 * slot;
    buf[o] = if boot { 0x80 } else { 0 };
    buf[o + 1..o + 4].copy_from_slice(&chs(lba));
    buf[o + 4] = ptype;
    buf[o + 5..o + 8].copy_from_slice(&chs(lba + sectors.max(1) - 1));
    buf[o + 8..o + 12].copy_from_slice(&(lba as u32).to_le_bytes());
    buf[o + 12..o + 16].copy_from_slice(&(sectors as u32).to_le_bytes());
    Ok(())
}

fn write_at<W: Write + Seek>(w: &mut W, off: u64, data: &[u8]) -> Result<()> {
    w.seek(SeekFrom::Start(off))
        .ctx(|| format!("seeking to byte {off}"))?;
    w.write_all(data)
        .ctx(|| format!("writing {} bytes at byte {off}", data.len()))
}

/// Write the table. The target must already be `disk_size` long (or become so; GPT writes its
/// backup at the end).
pub fn write<W: Write + Seek>(w: &mut W, spec: &Spec) -> Result<()> {
    if spec.disk_size % SECTOR != 0 {
        return Err(Error::Table(format!(
            "disk size {} is not a multiple of {SECTOR}",
            spec.disk_size
        )));
    }
    let total = spec.disk_size / SECTOR;
    let mut mbr = vec![0u8; 512];
    mbr[440..444].copy_from_slice(&spec.mbr_disk_id.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    match spec.style {
        Style::Mbr => {
            if spec.entries.len() > 4 {
                return Err(Error::Table(format!(
                    "{} partitions do not fit in an MBR without an extended partition (at most 4)",
                    spec.entries.len()
                )));
            }
            for (i, e) in spec.entries.iter().enumerate() {
                mbr_slot(
                    &mut mbr,
                    i,
                    e.bootable,
                    e.mbr_type,
                    e.start_bytes / SECTOR,
                    e.size_bytes / SECTOR,
                )?;
            }
            write_at(w, 0, &mbr)?;
        }
        Style::Gpt | Style::HybridMbr => {
            if spec.entries.len() as u64 > GPT_ENTRIES {
                return Err(Error::Table(format!(
                    "{} partitions do not fit in a GPT of {GPT_ENTRIES} entries",
                    spec.entries.len()
                )));
            }
            let min_sectors = 2 * (GPT_ARRAY_SECTORS + 1) + 2;
            if total < min_sectors {
                return Err(Error::Table(format!(
                    "disk of {} bytes is too small for a GPT",
                    spec.disk_size
                )));
            }
            if spec.style == Style::Gpt {
                mbr_slot(
                    &mut mbr,
                    0,
                    false,
                    0xEE,
                    1,
                    (total - 1).min(u32::MAX as u64),
                )?;
            } else {
                let hybrid: Vec<&Entry> = spec.entries.iter().filter(|e| e.in_hybrid).collect();
                if hybrid.len() > 3 {
                    return Err(Error::Table(format!(
                        "a hybrid MBR mirrors at most 3 partitions, {} asked",
                        hybrid.len()
                    )));
                }
                let first = spec
                    .entries
                    .iter()
                    .map(|e| e.start_bytes / SECTOR)
                    .min()
                    .unwrap_or(total);
                mbr_slot(&mut mbr, 0, false, 0xEE, 1, first.max(2) - 1)?;
                for (i, e) in hybrid.iter().enumerate() {
                    mbr_slot(
                        &mut mbr,
                        i + 1,
                        e.bootable,
                        e.mbr_type,
                        e.start_bytes / SECTOR,
                        e.size_bytes / SECTOR,
                    )?;
                }
            }
            write_at(w, 0, &mbr)?;
            let mut array = vec![0u8; (GPT_ENTRIES * GPT_ENTRY_SIZE) as usize];
            for (i, e) in spec.entries.iter().enumerate() {
                let o = i * GPT_ENTRY_SIZE as usize;
                let a = &mut array[o..o + GPT_ENTRY_SIZE as usize];
                a[0..16].copy_from_slice(&e.gpt_type);
                a[16..32].copy_from_slice(&e.gpt_guid);
                let first = e.start_bytes / SECTOR;
                let last = (e.start_bytes + e.size_bytes) / SECTOR - 1;
                a[32..40].copy_from_slice(&first.to_le_bytes());
                a[40..48].copy_from_slice(&last.to_le_bytes());
                let attrs: u64 = if e.bootable { 4 } else { 0 };
                a[48..56].copy_from_slice(&attrs.to_le_bytes());
                let name: Vec<u16> = e.name.encode_utf16().collect();
                if name.len() > 36 {
                    return Err(Error::Table(format!(
                        "GPT name {:?} has {} UTF-16 units; at most 36 fit",
                        e.name,
                        name.len()
                    )));
                }
                for (k, c) in name.iter().enumerate() {
                    a[56 + 2 * k..58 + 2 * k].copy_from_slice(&c.to_le_bytes());
                }
            }
            let array_crc = crc::crc32(&array);
            let first_usable = 2 + GPT_ARRAY_SECTORS;
            let last_usable = total - 2 - GPT_ARRAY_SECTORS;
            let header = |this: u64, alt: u64, entries: u64| {
                let mut h = vec![0u8; 92];
                h[0..8].copy_from_slice(b"EFI PART");
                h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
                h[12..16].copy_from_slice(&92u32.to_le_bytes());
                h[24..32].copy_from_slice(&this.to_le_bytes());
                h[32..40].copy_from_slice(&alt.to_le_bytes());
                h[40..48].copy_from_slice(&first_usable.to_le_bytes());
                h[48..56].copy_from_slice(&last_usable.to_le_bytes());
                h[56..72].copy_from_slice(&spec.gpt_disk_guid);
                h[72..80].copy_from_slice(&entries.to_le_bytes());
                h[80..84].copy_from_slice(&(GPT_ENTRIES as u32).to_le_bytes());
                h[84..88].copy_from_slice(&(GPT_ENTRY_SIZE as u32).to_le_bytes());
                h[88..92].copy_from_slice(&array_crc.to_le_bytes());
                let c = crc::crc32(&h);
                h[16..20].copy_from_slice(&c.to_le_bytes());
                h.resize(SECTOR as usize, 0);
                h
            };
            let backup_array = total - 1 - GPT_ARRAY_SECTORS;
            write_at(w, SECTOR, &header(1, total - 1, 2))?;
            write_at(w, 2 * SECTOR, &array)?;
            write_at(w, backup_array * SECTOR, &array)?;
            write_at(w, (total - 1) * SECTOR, &header(total - 1, 1, backup_array))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{read_table_from, Kind, PartType};
    use std::io::Cursor;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                start_bytes: 1 << 20,
                size_bytes: 4 << 20,
                mbr_type: 0x0c,
                gpt_type: crate::guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap(),
                gpt_guid: crate::guid::parse("11111111-2222-4333-8444-555555555555").unwrap(),
                name: "boot".into(),
                bootable: true,
                in_hybrid: true,
            },
            Entry {
                start_bytes: 5 << 20,
                size_bytes: 2 << 20,
                mbr_type: 0x83,
                gpt_type: crate::guid::parse("b921b045-1df0-41c3-af44-4c6f280d3fae").unwrap(),
                gpt_guid: crate::guid::parse("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee").unwrap(),
                name: "root".into(),
                bootable: false,
                in_hybrid: false,
            },
        ]
    }

    fn write_read(style: Style) -> crate::inspect::Table {
        let spec = Spec {
            style,
            disk_size: 8 << 20,
            mbr_disk_id: 0xdeadbeef,
            gpt_disk_guid: crate::guid::parse("0b3e5a5f-1c2d-4e6f-8a9b-0c1d2e3f4a5b").unwrap(),
            entries: entries(),
        };
        let mut c = Cursor::new(vec![0u8; 8 << 20]);
        write(&mut c, &spec).unwrap();
        c.set_position(0);
        read_table_from(&mut c).unwrap()
    }

    #[test]
    fn mbr_roundtrip() {
        let t = write_read(Style::Mbr);
        assert_eq!(t.kind, Kind::Mbr);
        assert_eq!(t.disk_id, "deadbeef");
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.partitions[0].partuuid, "deadbeef-01");
        assert_eq!(t.partitions[0].part_type, PartType::Mbr(0x0c));
        assert!(t.partitions[0].bootable);
        assert_eq!(t.partitions[1].start_bytes, 5 << 20);
        assert_eq!(t.partitions[1].size_bytes, 2 << 20);
    }

    #[test]
    fn gpt_roundtrip() {
        let t = write_read(Style::Gpt);
        assert_eq!(t.kind, Kind::Gpt);
        assert!(!t.hybrid_mbr);
        assert_eq!(t.disk_id, "0b3e5a5f-1c2d-4e6f-8a9b-0c1d2e3f4a5b");
        assert_eq!(
            t.partitions[0].partuuid,
            "11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(t.partitions[0].name, "boot");
        assert!(t.partitions[0].bootable);
        assert_eq!(
            t.partitions[1].part_type,
            PartType::Gpt("b921b045-1df0-41c3-af44-4c6f280d3fae".into())
        );
        assert_eq!(t.partitions[1].size_bytes, 2 << 20);
    }

    #[test]
    fn hybrid_roundtrip() {
        let t = write_read(Style::HybridMbr);
        assert_eq!(t.kind, Kind::Gpt);
        assert!(t.hybrid_mbr);
        assert_eq!(t.mbr_entries.len(), 1);
        assert_eq!(t.mbr_entries[0].start_bytes, 1 << 20);
        assert_eq!(t.mbr_entries[0].part_type, PartType::Mbr(0x0c));
        assert_eq!(t.partitions.len(), 2);
    }

    #[test]
    fn corrupt_gpt_is_an_error_not_a_panic() {
        let spec = Spec {
            style: Style::Gpt,
            disk_size: 8 << 20,
            mbr_disk_id: 1,
            gpt_disk_guid: [1; 16],
            entries: entries(),
        };
        let mut c = Cursor::new(vec![0u8; 8 << 20]);
        write(&mut c, &spec).unwrap();
        c.get_mut()[512 + 40] ^= 1;
        c.set_position(0);
        let e = read_table_from(&mut c).unwrap_err().to_string();
        assert!(e.contains("GPT header checksum"), "{e}");
        // Every truncation of a valid table gives an error or a table, never a panic.
        let full = {
            let mut c = Cursor::new(vec![0u8; 8 << 20]);
            write(&mut c, &spec).unwrap();
            c.into_inner()
        };
        for len in [0usize, 511, 512, 1000, 1024, 17000, 17408] {
            let _ = read_table_from(&mut Cursor::new(full[..len].to_vec()));
        }
    }
}

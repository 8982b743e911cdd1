//! Reading partition tables back: MBR (with logical partitions) and GPT, over any `Read + Seek`.
//!
//! Pure format code: no host tools, no root. Used by `drydock test`, `configure`, `flash`, the
//! assembler and this crate's own tests.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::{crc, guid};

/// Which kind of partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Mbr,
    Gpt,
}

/// A partition's type: the MBR type byte or the GPT type GUID (lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartType {
    Mbr(u8),
    Gpt(String),
}

/// One partition as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    /// 1-based, as Linux numbers them (`mmcblk0p<index>`); MBR logical partitions start at 5.
    pub index: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    /// What `/dev/disk/by-partuuid` shows: MBR `xxxxxxxx-NN` (disk signature, index), GPT the
    /// partition GUID, both lower-case.
    pub partuuid: String,
    pub part_type: PartType,
    /// GPT partition name (empty for MBR).
    pub name: String,
    /// MBR active flag (0x80), or the GPT "legacy BIOS bootable" attribute (bit 2).
    pub bootable: bool,
}

/// A partition table read from an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub kind: Kind,
    /// MBR disk signature as 8 lower-case hex digits, or the GPT disk GUID.
    pub disk_id: String,
    pub sector_size: u64,
    pub partitions: Vec<PartInfo>,
    /// GPT with a hybrid MBR (the MBR carries real partitions beside the 0xEE entry).
    pub hybrid_mbr: bool,
    /// The MBR entries of a hybrid MBR (empty otherwise).
    pub mbr_entries: Vec<PartInfo>,
}

impl Table {
    /// The partition with a given 1-based index.
    pub fn partition(&self, index: u32) -> Option<&PartInfo> {
        self.partitions.iter().find(|p| p.index == index)
    }
}

/// Read the partition table of an image file.
pub fn read_table(path: &Path) -> Result<Table> {
    let mut f = std::fs::File::open(path).ctx(|| format!("opening image {}", path.display()))?;
    read_table_from(&mut f).map_err(|e| match e {
        Error::Table(m) => Error::Table(format!("{}: {m}", path.display())),
        Error::Io { context, source } => Error::Io {
            context: format!("{}: {context}", path.display()),
            source,
        },
        other => other,
    })
}

fn read_at<R: Read + Seek>(r: &mut R, off: u64, len: usize) -> Result<Vec<u8>> {
    r.seek(SeekFrom::Start(off))
        .ctx(|| format!("seeking to byte {off}"))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Table(format!(
                "image ends before byte {} (reading {len} bytes at {off})",
                off + len as u64
            ))
        } else {
            Error::Io {
                context: format!("reading {len} bytes at byte {off}"),
                source: e,
            }
        }
    })?;
    Ok(buf)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}

struct MbrEntry {
    boot: u8,
    ptype: u8,
    lba: u32,
    sectors: u32,
}

fn mbr_entries(sector0: &[u8]) -> [MbrEntry; 4] {
    std::array::from_fn(|i| {
        let o = 446 + 16 * i;
        MbrEntry {
            boot: sector0[o],
            ptype: sector0[o + 4],
            lba: le32(sector0, o + 8),
            sectors: le32(sector0, o + 12),
        }
    })
}

/// Read a partition table from any `Read + Seek` (an image file, a `Cursor`).
pub fn read_table_from<R: Read + Seek>(r: &mut R) -> Result<Table> {
    let s0 = read_at(r, 0, 512)?;
    if s0[510] != 0x55 || s0[511] != 0xAA {
        return Err(Error::Table(format!(
            "no partition table: boot signature is {:02x}{:02x}, not 55aa",
            s0[510], s0[511]
        )));
    }
    let entries = mbr_entries(&s0);
    let has_protective = entries.iter().any(|e| e.ptype == 0xEE);
    if has_protective {
        for ss in [512u64, 4096] {
            let hdr = read_at(r, ss, 92);
            if let Ok(h) = hdr {
                if &h[0..8] == b"EFI PART" {
                    let mut t = read_gpt(r, ss)?;
                    let disk_sig = format!("{:08x}", le32(&s0, 440));
                    let others: Vec<PartInfo> = mbr_primary(&entries, &disk_sig, 512)
                        .into_iter()
                        .filter(|p| p.part_type != PartType::Mbr(0xEE))
                        .collect();
                    t.hybrid_mbr = !others.is_empty();
                    t.mbr_entries = others;
                    return Ok(t);
                }
            }
        }
        return Err(Error::Table(
            "protective MBR (type 0xee) but no GPT header at sector 1 (512 or 4096 byte sectors)"
                .into(),
        ));
    }
    let disk_id = format!("{:08x}", le32(&s0, 440));
    let mut parts = mbr_primary(&entries, &disk_id, 512);
    // Logical partitions: follow the EBR chain of the first extended partition.
    if let Some(ext) = entries
        .iter()
        .find(|e| matches!(e.ptype, 0x05 | 0x0F | 0x85) && e.sectors > 0)
    {
        let ext_start = ext.lba as u64;
        let mut ebr = ext_start;
        let mut index = 5u32;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            if !seen.insert(ebr) || seen.len() > 128 {
                return Err(Error::Table(format!(
                    "extended partition chain loops or is too long (at sector {ebr})"
                )));
            }
            let s = read_at(r, ebr * 512, 512)?;
            if s[510] != 0x55 || s[511] != 0xAA {
                return Err(Error::Table(format!(
                    "extended boot record at sector {ebr} has no 55aa signature"
                )));
            }
            let e = mbr_entries(&s);
            if e[0].ptype != 0 && e[0].sectors > 0 {
                let start = ebr + e[0].lba as u64;
                parts.push(PartInfo {
                    index,
                    start_bytes: start * 512,
                    size_bytes: e[0].sectors as u64 * 512,
                    partuuid: format!("{disk_id}-{index:02x}"),
                    part_type: PartType::Mbr(e[0].ptype),
                    name: String::new(),
                    bootable: e[0].boot & 0x80 != 0,
                });
                index += 1;
            }
            if e[1].ptype == 0 || e[1].sectors == 0 {
                break;
            }
            ebr = ext_start + e[1].lba as u64;
        }
    }
    Ok(Table {
        kind: Kind::Mbr,
        disk_id,
        sector_size: 512,
        partitions: parts,
        hybrid_mbr: false,
        mbr_entries: Vec::new(),
    })
}

fn mbr_primary(entries: &[MbrEntry; 4], disk_id: &str, ss: u64) -> Vec<PartInfo> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.ptype != 0 && e.sectors > 0 && !matches!(e.ptype, 0x05 | 0x0F | 0x85))
        .map(|(i, e)| PartInfo {
            index: i as u32 + 1,
            start_bytes: e.lba as u64 * ss,
            size_bytes: e.sectors as u64 * ss,
            partuuid: format!("{disk_id}-{:02x}", i + 1),
            part_type: PartType::Mbr(e.ptype),
            name: String::new(),
            bootable: e.boot & 0x80 != 0,
        })
        .collect()
}

fn read_gpt<R: Read + Seek>(r: &mut R, ss: u64) -> Result<Table> {
    let h = read_at(r, ss, ss as usize)?;
    let hsize = le32(&h, 12) as usize;
    if !(92..=ss as usize).contains(&hsize) {
        return Err(Error::Table(format!("GPT header size {hsize} is invalid")));
    }
    let mut hc = h[..hsize].to_vec();
    hc[16..20].fill(0);
    let want = le32(&h, 16);
    let got = crc::crc32(&hc);
    if want != got {
        return Err(Error::Table(format!(
            "GPT header checksum is {want:08x} but the header hashes to {got:08x}"
        )));
    }
    let disk_guid: [u8; 16] = h[56..72].try_into().unwrap_or([0; 16]);
    let entries_lba = le64(&h, 72);
    let count = le32(&h, 80) as u64;
    let esize = le32(&h, 84) as u64;
    if esize < 128 || esize % 8 != 0 || count > 4096 {
        return Err(Error::Table(format!(
            "GPT entry array of {count} entries of {esize} bytes is not supported"
        )));
    }
    let array = read_at(r, entries_lba * ss, (count * esize) as usize)?;
    let got = crc::crc32(&array);
    let want = le32(&h, 88);
    if want != got {
        return Err(Error::Table(format!(
            "GPT partition entry array checksum is {want:08x} but the entries hash to {got:08x}"
        )));
    }
    let mut parts = Vec::new();
    for i in 0..count as usize {
        let e = &array[i * esize as usize..(i + 1) * esize as usize];
        let tguid: [u8; 16] = e[0..16].try_into().unwrap_or([0; 16]);
        if tguid == [0; 16] {
            continue;
        }
        let pguid: [u8; 16] = e[16..32].try_into().unwrap_or([0; 16]);
        let first = le64(e, 32);
        let last = le64(e, 40);
        if last < first {
            return Err(Error::Table(format!(
                "GPT partition {} ends (sector {last}) before it starts (sector {first})",
                i + 1
            )));
        }
        let attrs = le64(e, 48);
        let name_u16: Vec<u16> = (0..36)
            .map(|k| le16(e, 56 + 2 * k))
            .take_while(|&c| c != 0)
            .collect();
        parts.push(PartInfo {
            index: i as u32 + 1,
            start_bytes: first * ss,
            size_bytes: (last - first + 1) * ss,
            partuuid: guid::format(&pguid),
            part_type: PartType::Gpt(guid::format(&tguid)),
            name: String::from_utf16_lossy(&name_u16),
            bootable: attrs & 4 != 0,
        });
    }
    Ok(Table {
        kind: Kind::Gpt,
        disk_id: guid::format(&disk_guid),
        sector_size: ss,
        partitions: parts,
        hybrid_mbr: false,
        mbr_entries: Vec::new(),
    })
}

//! Clamping inode timestamps of an ext4 file system in place (pure format code).
//!
//! `mke2fs -d` copies atime, mtime and ctime from the source tree, and a tree's ctimes are the time
//! it was extracted: the one part of the image `E2FSPROGS_FAKE_TIME` does not cover. This pass
//! walks the inode tables and clamps every inode time (atime, ctime, mtime, crtime) newer than
//! `epoch` down to `epoch` (nanoseconds zeroed), then recomputes the inode checksum when the file
//! system has `metadata_csum`. Nothing else is touched, so `e2fsck -fn` stays clean.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::crc::crc32c_raw;
use crate::error::{Error, IoContext, Result};

const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn bad(msg: String) -> Error {
    Error::Fs {
        fs: "ext4",
        image: String::new(),
        offset: 0,
        message: msg,
    }
}

/// Clamp inode times above `epoch` in the ext4 file system starting `offset` bytes into `f`.
/// Returns how many inodes changed.
pub fn clamp_times<F: Read + Write + Seek>(f: &mut F, offset: u64, epoch: i64) -> Result<u64> {
    let mut sb = vec![0u8; 1024];
    f.seek(SeekFrom::Start(offset + 1024))
        .ctx(|| "seeking to the ext4 superblock".into())?;
    f.read_exact(&mut sb)
        .ctx(|| "reading the ext4 superblock".into())?;
    if le16(&sb, 0x38) != 0xEF53 {
        return Err(bad(format!("no ext4 superblock at byte {}", offset + 1024)));
    }
    let inodes_count = le32(&sb, 0x00) as u64;
    let first_data_block = le32(&sb, 0x14) as u64;
    let log_bs = le32(&sb, 0x18);
    if log_bs > 6 {
        return Err(bad(format!("unsupported block size 1024<<{log_bs}")));
    }
    let bs = 1024u64 << log_bs;
    let ipg = le32(&sb, 0x28) as u64;
    let rev = le32(&sb, 0x4C);
    let isize = if rev == 0 {
        128
    } else {
        le16(&sb, 0x58) as u64
    };
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    if ipg == 0 || !(128..=4096).contains(&isize) || !isize.is_power_of_two() {
        return Err(bad(format!(
            "implausible superblock: {ipg} inodes per group, inode size {isize}"
        )));
    }
    let desc_size = if incompat & INCOMPAT_64BIT != 0 {
        (le16(&sb, 0xFE) as u64).max(32)
    } else {
        32
    };
    let csum = ro_compat & RO_COMPAT_METADATA_CSUM != 0;
    let unused_valid = ro_compat & (RO_COMPAT_METADATA_CSUM | RO_COMPAT_GDT_CSUM) != 0;
    let csum_seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
        le32(&sb, 0x270)
    } else {
        crc32c_raw(!0, &sb[0x68..0x78])
    };
    let groups = inodes_count.div_ceil(ipg);
    let gdt = (first_data_block + 1) * bs;
    let mut descs = vec![0u8; (groups * desc_size) as usize];
    f.seek(SeekFrom::Start(offset + gdt))
        .ctx(|| "seeking to the group descriptors".into())?;
    f.read_exact(&mut descs)
        .ctx(|| "reading the group descriptors".into())?;
    let epoch_lo = epoch as u32;
    let epoch_hi = ((epoch >> 32) & 3) as u32;
    let mut changed = 0u64;
    for g in 0..groups {
        let d = &descs[(g * desc_size) as usize..((g + 1) * desc_size) as usize];
        let flags = le16(d, 0x12);
        if unused_valid && flags & BG_INODE_UNINIT != 0 {
            continue;
        }
        let mut table = le32(d, 0x08) as u64;
        let mut unused = le16(d, 0x1C) as u64;
        if desc_size >= 64 {
            table |= (le32(d, 0x28) as u64) << 32;
            unused |= (le16(d, 0x32) as u64) << 16;
        }
        let used = if unused_valid {
            ipg.saturating_sub(unused)
        } else {
            ipg
        };
        if used == 0 {
            continue;
        }
        let start = offset + table * bs;
        let mut buf = vec![0u8; (used * isize) as usize];
        f.seek(SeekFrom::Start(start))
            .ctx(|| format!("seeking to the inode table of group {g}"))?;
        f.read_exact(&mut buf)
            .ctx(|| format!("reading the inode table of group {g}"))?;
        for i in 0..used {
            let ino = g * ipg + i + 1;
            let o = (i * isize) as usize;
            let inode = &mut buf[o..o + isize as usize];
            let extra = if isize > 128 {
                le16(inode, 0x80) as usize
            } else {
                0
            };
            let fits = |field_end: usize| isize > 128 && 0x80 + extra >= field_end;
            let mut dirty = false;
            // (base offset, extra offset)
            let fields: [(usize, usize); 4] =
                [(0x08, 0x8C), (0x0C, 0x84), (0x10, 0x88), (0x90, 0x94)];
            for (base, ext) in fields {
                if base == 0x90 && !fits(0x94) {
                    continue;
                }
                let has_extra = fits(ext + 4);
                let lo = le32(inode, base) as i32 as i64;
                let hi = if has_extra {
                    (le32(inode, ext) & 3) as i64
                } else {
                    0
                };
                let t = lo + (hi << 32);
                if t > epoch {
                    put32(inode, base, epoch_lo);
                    if has_extra {
                        put32(inode, ext, epoch_hi);
                    }
                    dirty = true;
                } else if has_extra && t == epoch && le32(inode, ext) >> 2 != 0 {
                    put32(inode, ext, epoch_hi);
                    dirty = true;
                }
            }
            if !dirty {
                continue;
            }
            if csum {
                let gen = le32(inode, 0x64);
                let mut c = crc32c_raw(csum_seed, &(ino as u32).to_le_bytes());
                c = crc32c_raw(c, &gen.to_le_bytes());
                inode[0x7C..0x7E].fill(0);
                let hi_fits = fits(0x84);
                if hi_fits {
                    inode[0x82..0x84].fill(0);
                }
                c = crc32c_raw(c, inode);
                inode[0x7C..0x7E].copy_from_slice(&(c as u16).to_le_bytes());
                if hi_fits {
                    inode[0x82..0x84].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
                }
            }
            f.seek(SeekFrom::Start(start + o as u64))
                .ctx(|| format!("seeking to inode {ino}"))?;
            f.write_all(&buf[o..o + isize as usize])
                .ctx(|| format!("writing inode {ino}"))?;
            changed += 1;
        }
    }
    f.flush().ctx(|| "flushing the inode tables".into())?;
    Ok(changed)
}

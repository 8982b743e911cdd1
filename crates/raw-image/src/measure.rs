//! How much room a directory tree needs in a file system (for `fit` sizes and fits-checks).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::layout::{ContentSize, Fs};

const BLOCK: u64 = 4096;

fn round(v: u64) -> u64 {
    v.div_ceil(BLOCK) * BLOCK
}

/// Bytes of data blocks (4 KiB granularity, hard links once for ext4), directory blocks and
/// long-symlink blocks the tree needs in `fs`, and its node count.
pub fn measure(root: &Path, fs: Fs) -> Result<ContentSize> {
    let mut seen = BTreeSet::new();
    let mut out = ContentSize::default();
    walk(root, fs, &mut seen, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, fs: Fs, seen: &mut BTreeSet<(u64, u64)>, out: &mut ContentSize) -> Result<()> {
    let md = std::fs::symlink_metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    if !md.is_dir() {
        return Err(crate::Error::Io {
            context: format!("{} is not a folder", dir.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a folder"),
        });
    }
    out.nodes += 1;
    let mut dirent_bytes = 24u64; // "." and ".."
    for e in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let e = e.ctx(|| format!("listing {}", dir.display()))?;
        let name_len = e.file_name().len() as u64;
        dirent_bytes += match fs {
            // ext4 dirent: 8 bytes + name padded to 4
            Fs::Ext4 => 8 + name_len.div_ceil(4) * 4,
            // FAT: one 32-byte 8.3 entry + one per 13 characters of long name
            _ => 32 * (1 + name_len.div_ceil(13)),
        };
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).ctx(|| format!("stat {}", p.display()))?;
        if m.is_dir() {
            walk(&p, fs, seen, out)?;
            continue;
        }
        out.nodes += 1;
        if fs == Fs::Ext4 && m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        if m.is_file() {
            out.bytes += round(m.size());
            // extent tree blocks of large files (one per ~340 extents; assume 128 MiB extents)
            if fs == Fs::Ext4 && m.size() > (512 << 20) {
                out.bytes += BLOCK;
            }
        } else if m.file_type().is_symlink() && (fs != Fs::Ext4 || m.size() >= 60) {
            out.bytes += BLOCK;
        }
    }
    out.bytes += round(dirent_bytes);
    Ok(())
}

//! [`Disk`] for an image file: raw-image reads the partition table (pure Rust), FAT (mtools) and
//! ext4 (debugfs) at a partition's offset; blkid, dumpe2fs, e2fsck and fsck.vfat identify and
//! check each partition. No mounts, no loop devices, no root.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use raw_image::ext4::Ext4;
use raw_image::fat::Fat;
use raw_image::inspect::{self, PartType};

use crate::checks::image::{Disk, FsRead, Kind, Meta, Part, Probe, Table, TableKind};

/// An image file opened for the checks.
pub struct ImageDisk {
    path: PathBuf,
    size: u64,
    table: Table,
}

impl ImageDisk {
    pub fn open(path: &Path) -> Result<ImageDisk> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("reading image {}", path.display()))?
            .len();
        let t = inspect::read_table(path)
            .with_context(|| format!("reading the partition table of {}", path.display()))?;
        let table = Table {
            kind: match t.kind {
                inspect::Kind::Mbr => TableKind::Mbr,
                inspect::Kind::Gpt => TableKind::Gpt,
            },
            hybrid_mbr: t.hybrid_mbr,
            disk_id: t.disk_id.clone(),
            parts: t
                .partitions
                .iter()
                .map(|p| Part {
                    index: p.index,
                    start: p.start_bytes,
                    size: p.size_bytes,
                    partuuid: p.partuuid.to_lowercase(),
                    ptype: match &p.part_type {
                        PartType::Mbr(b) => format!("0x{b:02x}"),
                        PartType::Gpt(g) => g.to_lowercase(),
                    },
                    bootable: p.bootable,
                })
                .collect(),
        };
        Ok(ImageDisk {
            path: path.to_path_buf(),
            size,
            table,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copy a partition's bytes into a file (sparse), for tools without an offset option.
    pub fn extract(&self, part: &Part, to: &Path) -> Result<()> {
        let mut src = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        src.seek(SeekFrom::Start(part.start))
            .with_context(|| format!("seeking in {}", self.path.display()))?;
        let mut dst =
            std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
        let mut left = part.size;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let n = buf.len().min(left as usize);
            src.read_exact(&mut buf[..n]).with_context(|| {
                format!(
                    "reading partition {} of {}",
                    part.index,
                    self.path.display()
                )
            })?;
            if buf[..n].iter().all(|&b| b == 0) {
                dst.seek(SeekFrom::Current(n as i64))
                    .with_context(|| format!("seeking in {}", to.display()))?;
            } else {
                dst.write_all(&buf[..n])
                    .with_context(|| format!("writing {}", to.display()))?;
            }
            left -= n as u64;
        }
        dst.set_len(part.size)
            .with_context(|| format!("sizing {}", to.display()))?;
        Ok(())
    }
}

fn export_field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn dumpe2fs_field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

impl Disk for ImageDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn table(&self) -> &Table {
        &self.table
    }

    fn probe(&self, part: &Part) -> Result<Probe> {
        let mut c = Command::new("blkid");
        c.args(["-p", "-o", "export", "-O"])
            .arg(part.start.to_string())
            .arg("-S")
            .arg(part.size.to_string())
            .arg(&self.path);
        // blkid exits 2 when it recognises nothing: that is an answer, not an error.
        let out = match artifact::cmd::run(&mut c) {
            Ok(o) => o.stdout_str(),
            Err(e) if e.to_string().contains("exit status: 2") => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut p = Probe {
            fs_type: export_field(&out, "TYPE").unwrap_or("").to_string(),
            label: export_field(&out, "LABEL").unwrap_or("").to_string(),
            uuid: export_field(&out, "UUID").unwrap_or("").to_string(),
            fs_bytes: None,
            state: None,
        };
        if p.fs_type == "ext4" {
            let fs = Ext4::new(&self.path, part.start);
            let mut c = Command::new("dumpe2fs");
            c.arg("-h").arg(fs.device());
            let d = artifact::cmd::run(&mut c)?.stdout_str();
            let count: Option<u64> = dumpe2fs_field(&d, "Block count").and_then(|v| v.parse().ok());
            let bs: Option<u64> = dumpe2fs_field(&d, "Block size").and_then(|v| v.parse().ok());
            p.fs_bytes = count.zip(bs).map(|(c, b)| c * b);
            p.state = dumpe2fs_field(&d, "Filesystem state").map(String::from);
        }
        Ok(p)
    }

    fn fsck(&self, part: &Part, fs_type: &str) -> Result<Result<String, String>> {
        match fs_type {
            "ext4" => {
                let fs = Ext4::new(&self.path, part.start);
                let mut c = Command::new("e2fsck");
                c.arg("-fn").arg(fs.device());
                Ok(match artifact::cmd::run(&mut c) {
                    Ok(o) => Ok(o.stdout_str().lines().last().unwrap_or("clean").to_string()),
                    Err(e) => Err(e.to_string()),
                })
            }
            "vfat" => {
                let dir = tempfile::tempdir().context("creating a temporary folder")?;
                let copy = dir.path().join(format!("p{}.fat", part.index));
                self.extract(part, &copy)?;
                let mut c = Command::new("fsck.vfat");
                c.arg("-n").arg(&copy);
                Ok(match artifact::cmd::run(&mut c) {
                    Ok(o) => {
                        let out = o.stdout_str();
                        // fsck.fat -n exits 0 on a clean file system, 1 when it found errors;
                        // warnings it would fix are printed with exit 0 too.
                        let fixes: Vec<&str> = out
                            .lines()
                            .filter(|l| {
                                l.contains("Fix?")
                                    || l.contains("differ")
                                    || l.contains("Dirty bit")
                            })
                            .collect();
                        if fixes.is_empty() {
                            Ok(out.lines().last().unwrap_or("clean").to_string())
                        } else {
                            Err(fixes.join("; "))
                        }
                    }
                    Err(e) => Err(e.to_string()),
                })
            }
            other => anyhow::bail!("no checker for file system {other:?}"),
        }
    }

    fn fs(&self, part: &Part, fs_type: &str) -> Result<Box<dyn FsRead + '_>> {
        match fs_type {
            "ext4" => Ok(Box::new(Ext4Read {
                fs: Ext4::new(&self.path, part.start),
                stats: Default::default(),
            })),
            "vfat" => Ok(Box::new(FatRead {
                fs: Fat::new(&self.path, part.start),
                dirs: Default::default(),
            })),
            other => anyhow::bail!("cannot read file system {other:?}"),
        }
    }
}

/// ext4 through debugfs; `stat` answers are remembered (the checks stat many paths twice).
struct Ext4Read {
    fs: Ext4,
    stats: RefCell<HashMap<String, Option<Meta>>>,
}

fn kind(k: raw_image::tree::Kind) -> Kind {
    use raw_image::tree::Kind as K;
    match k {
        K::File => Kind::File,
        K::Dir => Kind::Dir,
        K::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn not_found(e: &raw_image::Error) -> bool {
    let s = e.to_string();
    s.contains("File not found") || s.contains("not found")
}

impl FsRead for Ext4Read {
    fn stat(&self, path: &str) -> Result<Option<Meta>> {
        if let Some(m) = self.stats.borrow().get(path) {
            return Ok(m.clone());
        }
        let m = match self.fs.stat(path) {
            Ok(st) => Some(Meta {
                kind: kind(st.kind),
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
                size: st.size,
                target: st.target,
            }),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        self.stats.borrow_mut().insert(path.to_string(), m.clone());
        Ok(m)
    }

    fn read_raw(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.fs.read_file(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>> {
        match self.fs.list_dir(dir) {
            Ok(l) => Ok(Some(l.into_iter().map(|e| e.name).collect())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// FAT through mtools; folder listings are remembered (each `stat` lists the parent folder).
struct FatRead {
    fs: Fat,
    dirs: RefCell<HashMap<String, Option<Vec<raw_image::fat::FatEntry>>>>,
}

impl FatRead {
    fn listing(&self, dir: &str) -> Result<Option<Vec<raw_image::fat::FatEntry>>> {
        let key = format!("/{}", dir.trim_matches('/'));
        if let Some(l) = self.dirs.borrow().get(&key) {
            return Ok(l.clone());
        }
        let l = match self.fs.list(&key) {
            Ok(e) => Some(e),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(e.into()),
        };
        self.dirs.borrow_mut().insert(key, l.clone());
        Ok(l)
    }
}

impl FsRead for FatRead {
    fn stat(&self, path: &str) -> Result<Option<Meta>> {
        let p = path.trim_end_matches('/');
        if p.is_empty() {
            return Ok(Some(Meta {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                target: None,
            }));
        }
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        let Some(entries) = self.listing(dir)? else {
            return Ok(None);
        };
        Ok(entries
            .into_iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .map(|e| Meta {
                kind: if e.is_dir { Kind::Dir } else { Kind::File },
                mode: if e.is_dir { 0o755 } else { 0o644 },
                uid: 0,
                gid: 0,
                size: e.size,
                target: None,
            }))
    }

    fn read_raw(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.fs.read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>> {
        Ok(self
            .listing(dir)?
            .map(|l| l.into_iter().map(|e| e.name).collect()))
    }
}

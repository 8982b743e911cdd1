//! The layout model: what a disk image holds, where, and how big.
//!
//! A [`Layout`] is the builder spec (serialised into cache keys; also readable from a YAML/JSON
//! layout file for the `raw-image` binary). [`Layout::plan`] checks it and places every partition
//! and blob at byte offsets; every error names the layout, the partition or blob, and the numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table;

/// Bytes, written as a number or a string with a binary unit (`8KiB`, `256MiB`, `2GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;

    /// Parse `N`, `NKiB`, `NMiB`, `NGiB`, `NTiB` (also `K`, `M`, `G`, `T`).
    pub fn parse(s: &str) -> std::result::Result<Bytes, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected a number with an optional unit"))?;
        let mul: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "T" | "TiB" => 1 << 40,
            u => return Err(format!("invalid size {s:?}: unknown unit {u:?}")),
        };
        n.checked_mul(mul)
            .map(Bytes)
            .ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        human(self.0, f)
    }
}

fn human(b: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if b >= m && b % m == 0 {
            return write!(f, "{b} bytes ({} {unit})", b / m);
        }
    }
    if b >= 1 << 20 {
        return write!(f, "{b} bytes ({:.1} MiB)", b as f64 / (1u64 << 20) as f64);
    }
    write!(f, "{b} bytes")
}

/// `{n} bytes ({m} MiB)` for error messages.
pub fn show(b: u64) -> String {
    Bytes(b).to_string()
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Bytes(n)),
            Raw::S(s) => Bytes::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Partition table kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    Mbr,
    Gpt,
    /// GPT plus an MBR mirroring the partitions that set `mbr-type` (at most 3).
    HybridMbr,
}

/// File system of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fs {
    Fat32,
    Ext4,
    /// Left zeroed (a raw partition, or one another tool fills).
    None,
}

/// A partition's size. Written as a size (`256MiB`, or bytes), `rest`, or `fit+HEADROOM`
/// (`fit+384MiB`; plain `fit` means no headroom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// Exactly this many bytes.
    Fixed(Bytes),
    /// Everything up to the end of the disk (needs `disk-size`; at most one partition).
    Rest,
    /// The content plus file system overhead plus `headroom`, rounded up to the alignment.
    Fit { headroom: Bytes },
}

impl Serialize for SizeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SizeSpec::Fixed(b) => s.serialize_u64(b.0),
            SizeSpec::Rest => s.serialize_str("rest"),
            SizeSpec::Fit { headroom } => s.serialize_str(&format!("fit+{}", headroom.0)),
        }
    }
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(SizeSpec::Fixed(Bytes(n))),
            Raw::S(s) if s.trim() == "rest" => Ok(SizeSpec::Rest),
            Raw::S(s) if s.trim() == "fit" => Ok(SizeSpec::Fit { headroom: Bytes(0) }),
            Raw::S(s) => {
                if let Some(h) = s.trim().strip_prefix("fit+") {
                    Bytes::parse(h)
                        .map(|headroom| SizeSpec::Fit { headroom })
                        .map_err(serde::de::Error::custom)
                } else {
                    Bytes::parse(&s).map(SizeSpec::Fixed).map_err(|e| {
                        serde::de::Error::custom(format!("{e}, or `rest`, or `fit+HEADROOM`"))
                    })
                }
            }
        }
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Partition {
    /// Identifier the caller uses to pass a tree (`boot`, `root`, `root-b`, `data`); also the GPT
    /// partition name.
    pub name: String,
    /// File system label (FAT: at most 11 characters; ext4: at most 16 bytes).
    #[serde(default)]
    pub label: Option<String>,
    pub fs: Fs,
    pub size: SizeSpec,
    /// Fixed start offset; default: right after the previous partition, aligned.
    #[serde(default)]
    pub start: Option<Bytes>,
    #[serde(default)]
    pub bootable: bool,
    /// GPT type GUID or a short name (see [`GPT_TYPES`]); default by file system.
    #[serde(default)]
    pub gpt_type: Option<String>,
    /// MBR type byte; default `0x0c` for FAT32, `0x83` otherwise.
    #[serde(default)]
    pub mbr_type: Option<u8>,
}

/// A raw blob written at a fixed byte offset (u-boot, bl1...). Its content comes with the fill
/// inputs; the layout reserves `offset .. offset + max-size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Blob {
    pub name: String,
    pub offset: Bytes,
    /// Largest size allowed; the reserved region. Default: the blob's actual size.
    #[serde(default)]
    pub max_size: Option<Bytes>,
}

/// A whole disk layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layout {
    /// Names the image files (`<name>-raw.img.zst`) and appears in errors.
    pub name: String,
    pub table: TableKind,
    #[serde(default = "default_align")]
    pub align: Bytes,
    /// Total size; absent means the end of the last partition (plus the GPT backup, aligned).
    #[serde(default)]
    pub disk_size: Option<Bytes>,
    pub partitions: Vec<Partition>,
    #[serde(default)]
    pub blobs: Vec<Blob>,
}

fn default_align() -> Bytes {
    Bytes(Bytes::MIB)
}

/// Short names accepted for GPT types.
pub const GPT_TYPES: &[(&str, &str)] = &[
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("linux", "0fc63daf-8483-4772-8e79-3d69d8477de4"),
    ("linux-root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("linux-root-arm", "69dad710-2ce4-4e3c-b16c-21a1d49abed3"),
    ("linux-root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("linux-home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"),
    ("linux-swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("basic-data", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"),
    ("bios-boot", "21686148-6449-6e6f-744e-656564454649"),
];

/// Smallest FAT32 file system mkfs.vfat accepts (65525 clusters of 512 bytes plus FATs).
pub const FAT32_MIN: u64 = 34 * Bytes::MIB;

/// What the planner needs to know about a partition's content (for `fit` sizes and the
/// "content larger than partition" check).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentSize {
    /// Bytes the content needs in the file system, including its own metadata overhead.
    pub bytes: u64,
    /// Number of files, folders and other nodes.
    pub nodes: u64,
}

/// A partition placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    /// 1-based table index.
    pub index: u32,
    pub name: String,
    pub start: u64,
    pub size: u64,
}

/// A blob placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacedBlob {
    pub name: String,
    pub offset: u64,
    /// The reserved length (max-size, else the actual size).
    pub len: u64,
}

/// A checked layout with byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub disk_size: u64,
    pub partitions: Vec<Placed>,
    pub blobs: Vec<PlacedBlob>,
}

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

impl Partition {
    /// The GPT type GUID (lower-case), resolving short names and defaults.
    pub fn gpt_type_guid(&self) -> std::result::Result<String, String> {
        match &self.gpt_type {
            None => Ok(match self.fs {
                Fs::Fat32 => "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7".into(),
                _ => "0fc63daf-8483-4772-8e79-3d69d8477de4".into(),
            }),
            Some(t) => {
                if let Some((_, g)) = GPT_TYPES.iter().find(|(n, _)| n == t) {
                    Ok((*g).into())
                } else if crate::guid::is_guid(t) {
                    Ok(t.to_lowercase())
                } else {
                    Err(format!(
                        "gpt-type {t:?} is neither a GUID nor one of {}",
                        GPT_TYPES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }

    /// The MBR type byte, defaulting by file system.
    pub fn mbr_type_byte(&self) -> u8 {
        self.mbr_type.unwrap_or(match self.fs {
            Fs::Fat32 => 0x0c,
            _ => 0x83,
        })
    }
}

impl Layout {
    fn err(&self, message: String) -> Error {
        Error::Layout {
            layout: self.name.clone(),
            message,
        }
    }

    /// Checks that need no sizes: names, labels, types, counts, alignment.
    pub fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(self.err(format!(
                "name {:?} must be letters, digits, '-', '_' or '.'",
                self.name
            )));
        }
        let a = self.align.0;
        if a < 512 || !a.is_power_of_two() {
            return Err(self.err(format!(
                "align {} must be a power of two of at least 512 bytes",
                show(a)
            )));
        }
        if self.partitions.is_empty() {
            return Err(self.err("no partitions".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &self.partitions {
            if p.name.is_empty() {
                return Err(self.err("a partition has an empty name".into()));
            }
            if !names.insert(p.name.as_str()) {
                return Err(self.err(format!("partition name {:?} is used twice", p.name)));
            }
            if let Some(l) = &p.label {
                match p.fs {
                    Fs::Fat32 => {
                        if l.chars().count() > 11 {
                            return Err(self.err(format!(
                                "partition {:?}: FAT label {l:?} has {} characters; at most 11 fit",
                                p.name,
                                l.chars().count()
                            )));
                        }
                        if let Some(c) = l.chars().find(|c| {
                            !c.is_ascii()
                                || c.is_ascii_control()
                                || "\"*+,./:;<=>?[\\]|".contains(*c)
                        }) {
                            return Err(self.err(format!(
                                "partition {:?}: FAT label {l:?} holds {c:?}, which FAT labels cannot",
                                p.name
                            )));
                        }
                    }
                    Fs::Ext4 if l.len() > 16 => {
                        return Err(self.err(format!(
                            "partition {:?}: ext4 label {l:?} has {} bytes; at most 16 fit",
                            p.name,
                            l.len()
                        )));
                    }
                    _ => {}
                }
            }
            if self.table != TableKind::Mbr {
                p.gpt_type_guid()
                    .map_err(|m| self.err(format!("partition {:?}: {m}", p.name)))?;
                if p.name.encode_utf16().count() > 36 {
                    return Err(self.err(format!(
                        "partition {:?}: a GPT name holds at most 36 characters",
                        p.name
                    )));
                }
            }
            if let SizeSpec::Fixed(b) = p.size {
                if b.0 == 0 || b.0 % 512 != 0 {
                    return Err(self.err(format!(
                        "partition {:?}: size {} is not a positive multiple of 512",
                        p.name,
                        show(b.0)
                    )));
                }
            }
            if let Some(s) = p.start {
                if s.0 % 512 != 0 {
                    return Err(self.err(format!(
                        "partition {:?}: start {} is not a multiple of 512",
                        p.name,
                        show(s.0)
                    )));
                }
            }
            if p.fs == Fs::Fat32 {
                if let SizeSpec::Fixed(b) = p.size {
                    if b.0 < FAT32_MIN {
                        return Err(self.err(format!(
                            "partition {:?}: {} is too small for FAT32 (at least {})",
                            p.name,
                            show(b.0),
                            show(FAT32_MIN)
                        )));
                    }
                }
            }
        }
        match self.table {
            TableKind::Mbr if self.partitions.len() > 4 => {
                return Err(self.err(format!(
                    "{} partitions ({}) but an MBR holds at most 4 primary partitions and this layout asks for no extended partition",
                    self.partitions.len(),
                    self.partitions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            TableKind::HybridMbr => {
                let n = self
                    .partitions
                    .iter()
                    .filter(|p| p.mbr_type.is_some())
                    .count();
                if n == 0 || n > 3 {
                    return Err(self.err(format!(
                        "a hybrid MBR mirrors the partitions that set mbr-type: 1 to 3 of them, not {n}"
                    )));
                }
            }
            _ => {}
        }
        let rest: Vec<&str> = self
            .partitions
            .iter()
            .filter(|p| p.size == SizeSpec::Rest)
            .map(|p| p.name.as_str())
            .collect();
        if rest.len() > 1 {
            return Err(self.err(format!(
                "partitions {} all ask for the rest of the disk; at most one can",
                rest.join(", ")
            )));
        }
        if let (Some(r), None) = (rest.first(), self.disk_size) {
            return Err(self.err(format!(
                "partition {r:?} asks for the rest of the disk but the layout sets no disk-size"
            )));
        }
        let mut bnames = std::collections::BTreeSet::new();
        for b in &self.blobs {
            if !bnames.insert(b.name.as_str()) {
                return Err(self.err(format!("blob name {:?} is used twice", b.name)));
            }
        }
        Ok(())
    }

    /// Place every partition and blob. `content(name)` gives the size of a partition's content
    /// (for `fit` sizes and the fits-check; `None` when the partition stays empty), `blob_len(name)`
    /// a blob's actual length when its content is known.
    pub fn plan(
        &self,
        content: &dyn Fn(&str) -> Option<ContentSize>,
        blob_len: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Plan> {
        self.check()?;
        let a = self.align.0;
        let gpt = self.table != TableKind::Mbr;
        let head = table::head_bytes(gpt);
        let tail = table::tail_bytes(gpt);
        // Sizes, except `rest`.
        let mut sizes: Vec<Option<u64>> = Vec::new();
        for p in &self.partitions {
            let c = content(&p.name);
            let size = match p.size {
                SizeSpec::Fixed(b) => Some(b.0),
                SizeSpec::Rest => None,
                SizeSpec::Fit { headroom } => {
                    let c = c.unwrap_or_default();
                    let base = c.bytes + headroom.0;
                    let mut s = round_up(base.max(1), a);
                    // Overhead grows with the size (journal, inode tables): iterate to a fixpoint.
                    for _ in 0..64 {
                        let need = base + fs_overhead(p.fs, s, c.nodes);
                        if need <= s {
                            break;
                        }
                        s = round_up(need, a);
                    }
                    if p.fs == Fs::Fat32 {
                        s = s.max(round_up(FAT32_MIN, a));
                    }
                    Some(s)
                }
            };
            sizes.push(size);
        }
        // Starts; a `rest` partition takes what the others leave.
        let fixed_total: u64 = sizes.iter().flatten().sum();
        let mut placed = Vec::new();
        let mut cursor = round_up(head, a);
        for (i, p) in self.partitions.iter().enumerate() {
            let start = match p.start {
                Some(s) => s.0,
                None => round_up(cursor, a),
            };
            let size = match sizes[i] {
                Some(s) => s,
                None => {
                    // Everything from here to the end, minus what later partitions need.
                    let disk = self.disk_size.map(|d| d.0).unwrap_or(0);
                    let later: u64 = sizes[i + 1..]
                        .iter()
                        .flatten()
                        .map(|s| round_up(*s, a))
                        .sum();
                    let end = disk.saturating_sub(tail) / a * a;
                    let avail = end.saturating_sub(start).saturating_sub(later);
                    let s = avail / a * a;
                    if s == 0 {
                        return Err(self.err(format!(
                            "partition {:?} takes the rest of the disk, but nothing is left: it would start at byte {start} and the disk of {} has {} after the other partitions ({} in total)",
                            p.name,
                            show(disk),
                            show(avail),
                            show(fixed_total)
                        )));
                    }
                    s
                }
            };
            placed.push(Placed {
                index: i as u32 + 1,
                name: p.name.clone(),
                start,
                size,
            });
            cursor = start + size;
        }
        // The disk.
        let last_end = placed
            .iter()
            .map(|p| p.start + p.size)
            .max()
            .unwrap_or(head);
        let disk_size = match self.disk_size {
            Some(d) => d.0,
            None => round_up(last_end + tail, a),
        };
        if disk_size % 512 != 0 {
            return Err(self.err(format!(
                "disk-size {} is not a multiple of 512",
                show(disk_size)
            )));
        }
        // Each partition inside the usable area, none overlapping, content fits.
        for (p, spec) in placed.iter().zip(&self.partitions) {
            if p.start < head {
                return Err(self.err(format!(
                    "partition {:?} starts at byte {} inside the partition table (bytes 0..{head})",
                    p.name, p.start
                )));
            }
            let end = p.start + p.size;
            if end > disk_size - tail {
                return Err(self.err(format!(
                    "partition {:?} ends at byte {end} ({} + {}), past the end of the disk: the disk is {}{}",
                    p.name,
                    p.start,
                    show(p.size),
                    show(disk_size),
                    if tail > 0 {
                        format!(" and its last {tail} bytes hold the backup GPT")
                    } else {
                        String::new()
                    }
                )));
            }
            if let Some(c) = content(&p.name) {
                let need = c.bytes + fs_overhead(spec.fs, p.size, c.nodes);
                if need > p.size {
                    return Err(self.err(format!(
                        "partition {:?}: content needs about {} ({} files and folders plus file system overhead) but the partition is {}",
                        p.name,
                        show(need),
                        c.nodes,
                        show(p.size)
                    )));
                }
            }
        }
        let mut by_start: Vec<&Placed> = placed.iter().collect();
        by_start.sort_by_key(|p| p.start);
        for w in by_start.windows(2) {
            let (x, y) = (w[0], w[1]);
            if x.start + x.size > y.start {
                return Err(self.err(format!(
                    "partitions {:?} (bytes {}..{}) and {:?} (bytes {}..{}) overlap by {} bytes",
                    x.name,
                    x.start,
                    x.start + x.size,
                    y.name,
                    y.start,
                    y.start + y.size,
                    x.start + x.size - y.start
                )));
            }
        }
        // Blobs: outside the table, outside partitions, inside the disk, within max-size.
        let mut blobs: Vec<PlacedBlob> = Vec::new();
        for b in &self.blobs {
            let actual = blob_len(&b.name);
            if let (Some(n), Some(m)) = (actual, b.max_size) {
                if n > m.0 {
                    return Err(self.err(format!(
                        "blob {:?} is {} but max-size is {}",
                        b.name,
                        show(n),
                        show(m.0)
                    )));
                }
            }
            let len = match (b.max_size, actual) {
                (Some(m), _) => m.0,
                (None, Some(n)) => n,
                (None, None) => continue,
            };
            let (bs, be) = (b.offset.0, b.offset.0 + len);
            // Bytes 0..440 of sector 0 are boot code that bootloaders may own; the disk
            // signature and partition entries (440..512) and the GPT structures are off limits.
            let table_ranges: Vec<(u64, u64, &str)> = if gpt {
                vec![
                    (440, 512, "the protective MBR"),
                    (512, head, "the primary GPT"),
                    (disk_size - tail, disk_size, "the backup GPT"),
                ]
            } else {
                vec![(440, 512, "the MBR")]
            };
            for (ts, te, what) in table_ranges {
                if bs < te && ts < be {
                    return Err(self.err(format!(
                        "blob {:?} (bytes {bs}..{be}) overlaps {what} (bytes {ts}..{te})",
                        b.name
                    )));
                }
            }
            if be > disk_size {
                return Err(self.err(format!(
                    "blob {:?} (bytes {bs}..{be}) ends past the end of the disk ({})",
                    b.name,
                    show(disk_size)
                )));
            }
            for p in &placed {
                if bs < p.start + p.size && p.start < be {
                    return Err(self.err(format!(
                        "blob {:?} (bytes {bs}..{be}) overlaps partition {:?} (bytes {}..{})",
                        b.name,
                        p.name,
                        p.start,
                        p.start + p.size
                    )));
                }
            }
            for o in &blobs {
                if bs < o.offset + o.len && o.offset < be {
                    return Err(self.err(format!(
                        "blobs {:?} (bytes {}..{}) and {:?} (bytes {bs}..{be}) overlap",
                        o.name,
                        o.offset,
                        o.offset + o.len,
                        b.name
                    )));
                }
            }
            blobs.push(PlacedBlob {
                name: b.name.clone(),
                offset: bs,
                len,
            });
        }
        Ok(Plan {
            disk_size,
            partitions: placed,
            blobs,
        })
    }
}

/// Journal blocks mke2fs picks for a file system of `blocks` 4 KiB blocks
/// (`ext2fs_default_journal_size`).
fn journal_bytes(blocks: u64) -> u64 {
    let j = match blocks {
        0..=2047 => 0,
        2048..=32767 => 1024,
        32768..=262_143 => 4096,
        262_144..=524_287 => 8192,
        524_288..=4_194_303 => 16384,
        4_194_304..=8_388_607 => 32768,
        8_388_608..=16_777_215 => 65536,
        16_777_216..=33_554_431 => 131_072,
        _ => 262_144,
    };
    j * 4096
}

/// Inodes an ext4 of `size` bytes gets for `nodes` files: the default ratio (one per 16 KiB),
/// or more when the content needs them (then passed to mke2fs as `-N`).
pub fn ext4_inodes(size: u64, nodes: u64) -> u64 {
    (size / 16384).max(nodes + nodes / 4 + 64)
}

/// File system metadata a content estimate does not include (journal, inode tables, bitmaps,
/// group descriptors, FATs, reserved sectors) for a file system of `size` bytes holding `nodes`
/// nodes: added to `fit` sizes and to the "content fits" check.
pub fn fs_overhead(fs: Fs, size: u64, nodes: u64) -> u64 {
    match fs {
        Fs::Ext4 => {
            let inode_tables = ext4_inodes(size, nodes) * 256;
            // bitmaps, descriptors, backup superblocks, resize inode reserve: under 1%.
            journal_bytes(size / 4096) + inode_tables + size / 100 + Bytes::MIB
        }
        // two FATs of 4 bytes per 512-byte cluster at worst, reserved sectors, root cluster
        Fs::Fat32 => size / 64 + 256 * Bytes::KIB,
        Fs::None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = Bytes::MIB;

    fn part(name: &str, fs: Fs, size: SizeSpec) -> Partition {
        Partition {
            name: name.into(),
            label: None,
            fs,
            size,
            start: None,
            bootable: false,
            gpt_type: None,
            mbr_type: None,
        }
    }

    fn fixed(m: u64) -> SizeSpec {
        SizeSpec::Fixed(Bytes(m * MIB))
    }

    fn layout(table: TableKind, parts: Vec<Partition>) -> Layout {
        Layout {
            name: "t".into(),
            table,
            align: Bytes(MIB),
            disk_size: None,
            partitions: parts,
            blobs: vec![],
        }
    }

    fn plan(l: &Layout) -> Result<Plan> {
        l.plan(&|_| None, &|_| None)
    }

    fn err(l: &Layout) -> String {
        plan(l).unwrap_err().to_string()
    }

    #[test]
    fn sequential_placement() {
        let l = layout(
            TableKind::Mbr,
            vec![
                part("boot", Fs::Fat32, fixed(64)),
                part("root", Fs::Ext4, fixed(100)),
            ],
        );
        let p = plan(&l).unwrap();
        assert_eq!(p.partitions[0].start, MIB);
        assert_eq!(p.partitions[1].start, 65 * MIB);
        assert_eq!(p.disk_size, 165 * MIB);
        let g = Layout {
            table: TableKind::Gpt,
            ..l
        };
        // GPT: the backup table needs room at the end; the disk rounds up to the alignment.
        assert_eq!(plan(&g).unwrap().disk_size, 166 * MIB);
    }

    #[test]
    fn rest_takes_what_is_left() {
        let mut l = layout(
            TableKind::Gpt,
            vec![
                part("boot", Fs::Fat32, fixed(64)),
                part("data", Fs::Ext4, SizeSpec::Rest),
                part("tail", Fs::None, fixed(8)),
            ],
        );
        l.disk_size = Some(Bytes(200 * MIB));
        let p = plan(&l).unwrap();
        assert_eq!(p.partitions[1].start, 65 * MIB);
        assert_eq!(p.partitions[1].size, 200 * MIB - 65 * MIB - 8 * MIB - MIB);
        assert_eq!(p.partitions[2].start + p.partitions[2].size, 199 * MIB);
    }

    #[test]
    fn fit_grows_with_content() {
        let l = layout(
            TableKind::Mbr,
            vec![part(
                "root",
                Fs::Ext4,
                SizeSpec::Fit {
                    headroom: Bytes(100 * MIB),
                },
            )],
        );
        let small = l.plan(&|_| None, &|_| None).unwrap().partitions[0].size;
        let big = l
            .plan(
                &|_| {
                    Some(ContentSize {
                        bytes: 1000 * MIB,
                        nodes: 40_000,
                    })
                },
                &|_| None,
            )
            .unwrap()
            .partitions[0]
            .size;
        assert!(small >= 100 * MIB && small % MIB == 0);
        assert!(
            big >= 1100 * MIB + fs_overhead(Fs::Ext4, big, 40_000) - MIB,
            "{big}"
        );
        assert!(big < 1400 * MIB, "{big}");
    }

    #[test]
    fn overlapping_partitions() {
        let mut b = part("b", Fs::Ext4, fixed(100));
        b.start = Some(Bytes(50 * MIB));
        let l = layout(TableKind::Mbr, vec![part("a", Fs::Fat32, fixed(64)), b]);
        let e = err(&l);
        assert!(
            e.contains(r#"partitions "a" (bytes 1048576..68157440) and "b" (bytes 52428800..157286400) overlap by 15728640 bytes"#),
            "{e}"
        );
    }

    #[test]
    fn partition_past_the_end() {
        let mut l = layout(
            TableKind::Mbr,
            vec![
                part("boot", Fs::Fat32, fixed(64)),
                part("root", Fs::Ext4, fixed(100)),
            ],
        );
        l.disk_size = Some(Bytes(128 * MIB));
        let e = err(&l);
        assert!(
            e.contains(r#"partition "root" ends at byte 173015040 (68157440 + 104857600 bytes (100 MiB)), past the end of the disk: the disk is 134217728 bytes (128 MiB)"#),
            "{e}"
        );
        l.table = TableKind::Gpt;
        l.disk_size = Some(Bytes(165 * MIB));
        let e = err(&l);
        assert!(
            e.contains("past the end of the disk") && e.contains("backup GPT"),
            "{e}"
        );
    }

    #[test]
    fn content_larger_than_partition() {
        let l = layout(TableKind::Mbr, vec![part("root", Fs::Ext4, fixed(64))]);
        let e = l
            .plan(
                &|_| {
                    Some(ContentSize {
                        bytes: 80 * MIB,
                        nodes: 10,
                    })
                },
                &|_| None,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"partition "root": content needs about"#),
            "{e}"
        );
        assert!(
            e.contains("10 files and folders")
                && e.contains("but the partition is 67108864 bytes (64 MiB)"),
            "{e}"
        );
    }

    #[test]
    fn fat_label_too_long() {
        let mut p = part("boot", Fs::Fat32, fixed(64));
        p.label = Some("RASPIFIRMWARE".into());
        let e = err(&layout(TableKind::Mbr, vec![p]));
        assert!(
            e.contains(
                r#"partition "boot": FAT label "RASPIFIRMWARE" has 13 characters; at most 11 fit"#
            ),
            "{e}"
        );
    }

    #[test]
    fn too_many_mbr_partitions() {
        let parts = (1..=5)
            .map(|i| part(&format!("p{i}"), Fs::None, fixed(8)))
            .collect();
        let e = err(&layout(TableKind::Mbr, parts));
        assert!(
            e.contains("5 partitions (p1, p2, p3, p4, p5) but an MBR holds at most 4 primary partitions and this layout asks for no extended partition"),
            "{e}"
        );
    }

    #[test]
    fn blobs_checked_against_table_and_partitions() {
        let mut l = layout(TableKind::Mbr, vec![part("boot", Fs::Fat32, fixed(64))]);
        // u-boot at 8 KiB up to 1016 KiB: fits before the first partition.
        l.blobs = vec![Blob {
            name: "u-boot".into(),
            offset: Bytes(8192),
            max_size: Some(Bytes(1016 * 1024)),
        }];
        assert_eq!(plan(&l).unwrap().blobs[0].len, 1016 * 1024);
        // Into the first partition.
        l.blobs[0].max_size = Some(Bytes(1024 * 1024));
        let e = err(&l);
        assert!(e.contains(r#"blob "u-boot" (bytes 8192..1056768) overlaps partition "boot" (bytes 1048576..68157440)"#), "{e}");
        // Over the MBR partition entries.
        l.blobs[0] = Blob {
            name: "bl1".into(),
            offset: Bytes(0),
            max_size: Some(Bytes(1024)),
        };
        let e = err(&l);
        assert!(
            e.contains(r#"blob "bl1" (bytes 0..1024) overlaps the MBR (bytes 440..512)"#),
            "{e}"
        );
        // GPT: 8 KiB is inside the primary entry array.
        let mut g = l.clone();
        g.table = TableKind::Gpt;
        g.blobs[0] = Blob {
            name: "u-boot".into(),
            offset: Bytes(8192),
            max_size: None,
        };
        let e = g
            .plan(&|_| None, &|_| Some(500_000))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                r#"blob "u-boot" (bytes 8192..508192) overlaps the primary GPT (bytes 512..17408)"#
            ),
            "{e}"
        );
        // Larger than its max-size.
        l.blobs[0] = Blob {
            name: "u-boot".into(),
            offset: Bytes(8192),
            max_size: Some(Bytes(4096)),
        };
        let e = l.plan(&|_| None, &|_| Some(5000)).unwrap_err().to_string();
        assert!(
            e.contains(r#"blob "u-boot" is 5000 bytes but max-size is 4096 bytes"#),
            "{e}"
        );
    }

    #[test]
    fn other_bad_inputs() {
        let e = err(&layout(
            TableKind::Gpt,
            vec![Partition {
                gpt_type: Some("linux-rooot".into()),
                ..part("r", Fs::Ext4, fixed(8))
            }],
        ));
        assert!(
            e.contains(
                r#"partition "r": gpt-type "linux-rooot" is neither a GUID nor one of esp, linux"#
            ),
            "{e}"
        );
        let e = err(&layout(
            TableKind::Mbr,
            vec![part("r", Fs::Ext4, SizeSpec::Rest)],
        ));
        assert!(
            e.contains(
                r#"partition "r" asks for the rest of the disk but the layout sets no disk-size"#
            ),
            "{e}"
        );
        let e = err(&layout(
            TableKind::Mbr,
            vec![part("r", Fs::Ext4, fixed(8)), part("r", Fs::Ext4, fixed(8))],
        ));
        assert!(e.contains(r#"partition name "r" is used twice"#), "{e}");
        let e = err(&layout(
            TableKind::Mbr,
            vec![part("boot", Fs::Fat32, fixed(16))],
        ));
        assert!(
            e.contains(r#"partition "boot": 16777216 bytes (16 MiB) is too small for FAT32"#),
            "{e}"
        );
        let mut l = layout(TableKind::Mbr, vec![part("r", Fs::Ext4, fixed(8))]);
        l.align = Bytes(3000);
        assert!(err(&l).contains("align 3000 bytes must be a power of two"));
        let e = err(&layout(
            TableKind::HybridMbr,
            vec![part("r", Fs::Ext4, fixed(8))],
        ));
        assert!(
            e.contains(
                "hybrid MBR mirrors the partitions that set mbr-type: 1 to 3 of them, not 0"
            ),
            "{e}"
        );
    }

    #[test]
    fn layout_file_is_strict() {
        let y = "name: x\ntable: gpt\nalign: 1MiB\npartitions:\n  - name: boot\n    fs: fat32\n    size: 64MiB\n  - name: root\n    fs: ext4\n    size: fit+384MiB\n    gpt-type: esp\n";
        let l: Layout = serde_yaml::from_str(y).unwrap();
        assert_eq!(l.partitions[0].size, SizeSpec::Fixed(Bytes(64 * MIB)));
        assert_eq!(
            l.partitions[1].size,
            SizeSpec::Fit {
                headroom: Bytes(384 * MIB)
            }
        );
        let back: Layout = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        let bad = "name: x\ntable: gpt\npartitions: []\nbogus: 1\n";
        let e = serde_yaml::from_str::<Layout>(bad).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}

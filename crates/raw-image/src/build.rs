//! Making images: the partition table written by Rust on a plain sparse file, file systems made
//! in place at their offsets (`mkfs.vfat --offset` + `mcopy -s`, `mke2fs -E offset= -d`), blobs
//! written at theirs. Everything deterministic from a seed (the build digest) and an epoch.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::fat::Fat;
use crate::inspect::{self, Table};
use crate::layout::{self, show, ContentSize, Fs, Layout, Plan, TableKind};
use crate::{ext4time, guid, measure, table};

/// The mke2fs configuration every ext4 is made with, so the result does not depend on the host's
/// `/etc/mke2fs.conf`. Features: those Debian 12/13 kernels, e2fsck and u-boot all read.
pub const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
\treserved_ratio = 5.0
\tlazy_itable_init = false
\tlazy_journal_init = false

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// What to put into an image: folder trees by partition name, blob files by blob name.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub trees: BTreeMap<String, PathBuf>,
    pub blobs: BTreeMap<String, PathBuf>,
    /// Keep made ext4 partitions between fills and reuse them (see [`crate::keep`]).
    pub reuse: Option<crate::keep::Reuse>,
    /// The caller makes the image durable itself (e.g. a store that fsyncs what it publishes):
    /// only start its writeback, and leave newly kept partitions pending until
    /// [`crate::keep::seal`] (so the disk writes while the caller works).
    pub defer_sync: bool,
}

/// One partition of a made image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilledPartition {
    pub name: String,
    pub index: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    /// As `/dev/disk/by-partuuid` shows it (and `root=PARTUUID=` wants it).
    pub partuuid: String,
    pub fs: Fs,
    pub label: Option<String>,
    /// As blkid shows it: ext4 a lower-case UUID, FAT `XXXX-XXXX` (the volume id).
    pub fs_uuid: Option<String>,
    /// Whether a tree was copied in.
    pub filled: bool,
    /// Whether the file system was a kept copy put into place rather than made (see
    /// [`crate::keep`]).
    pub reused: bool,
    /// `<keep dir>/<partition>-<key>` when the partition is kept: the key names its bytes, and
    /// callers may keep their own `<that>.*` files about them.
    #[serde(skip)]
    pub kept: Option<PathBuf>,
    /// A kept copy made by this fill and not yet sealed ([`Inputs::defer_sync`]).
    #[serde(skip)]
    pub pending: Option<PathBuf>,
}

/// A made image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilledImage {
    pub layout: String,
    pub disk_size: u64,
    /// The table as read back from the file.
    pub table: Table,
    pub partitions: Vec<FilledPartition>,
    /// Blobs written (name, offset, length).
    pub blobs: Vec<(String, u64, u64)>,
}

impl FilledImage {
    /// A partition by layout name.
    pub fn partition(&self, name: &str) -> Option<&FilledPartition> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// The deterministic identifiers of an image, derived from a seed.
#[derive(Debug, Clone)]
pub struct Ids {
    seed: String,
}

impl Ids {
    pub fn new(seed: &str) -> Ids {
        Ids { seed: seed.into() }
    }
    pub fn mbr_disk_id(&self) -> u32 {
        let b = artifact::digest::derive_bytes(&self.seed, "mbr-disk-id", 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]).max(1)
    }
    pub fn gpt_disk_guid(&self) -> String {
        artifact::digest::derive_uuid(&self.seed, "gpt-disk-guid")
    }
    pub fn partition_guid(&self, name: &str) -> String {
        artifact::digest::derive_uuid(&self.seed, &format!("partition-guid:{name}"))
    }
    pub fn ext4_uuid(&self, name: &str) -> String {
        artifact::digest::derive_uuid(&self.seed, &format!("ext4-uuid:{name}"))
    }
    pub fn ext4_hash_seed(&self, name: &str) -> String {
        artifact::digest::derive_uuid(&self.seed, &format!("ext4-hash-seed:{name}"))
    }
    /// 8 upper-case hex digits.
    pub fn fat_volume_id(&self, name: &str) -> String {
        let b = artifact::digest::derive_bytes(&self.seed, &format!("fat-volume-id:{name}"), 4);
        format!("{:02X}{:02X}{:02X}{:02X}", b[0], b[1], b[2], b[3])
    }
}

/// Fill `layout` with `trees` (partition name → folder) into a new image at `out`. See
/// [`fill_with`].
pub fn fill(
    layout: &Layout,
    trees: &BTreeMap<String, PathBuf>,
    seed: &str,
    epoch: i64,
    out: &Path,
) -> Result<FilledImage> {
    let inputs = Inputs {
        trees: trees.clone(),
        blobs: BTreeMap::new(),
        reuse: None,
        defer_sync: false,
    };
    fill_with(layout, &inputs, seed, epoch, out)
}

/// Make the image `out` for `layout`: measure the trees, place the partitions (fit sizes from the
/// trees), write the table, make each file system in place (filled from its tree if one is
/// given, else empty), write the blobs, clamp timestamps to `epoch`. Identifiers derive from
/// `seed`. The image is written beside `out` and renamed into place when complete.
///
/// ext4 copies owners, modes, symlinks, hard links and device nodes from the tree (`mke2fs -d`):
/// give a tree whose ownership is already right. FAT holds names and contents only.
pub fn fill_with(
    layout: &Layout,
    inputs: &Inputs,
    seed: &str,
    epoch: i64,
    out: &Path,
) -> Result<FilledImage> {
    layout.check()?;
    let lerr = |message: String| Error::Layout {
        layout: layout.name.clone(),
        message,
    };
    for (name, dir) in &inputs.trees {
        let p = layout
            .partitions
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| {
                lerr(format!(
                    "a tree is given for partition {name:?}, which the layout does not have (it has {})",
                    layout.partitions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
        if p.fs == Fs::None {
            return Err(lerr(format!(
                "a tree is given for partition {name:?}, which has no file system"
            )));
        }
        if !dir.is_dir() {
            return Err(lerr(format!(
                "the tree for partition {name:?}, {}, is not a folder",
                dir.display()
            )));
        }
    }
    for name in inputs.blobs.keys() {
        if !layout.blobs.iter().any(|b| &b.name == name) {
            return Err(lerr(format!(
                "a file is given for blob {name:?}, which the layout does not have"
            )));
        }
    }
    let mut content: BTreeMap<String, ContentSize> = BTreeMap::new();
    for p in &layout.partitions {
        if let Some(dir) = inputs.trees.get(&p.name) {
            content.insert(p.name.clone(), measure::measure(dir, p.fs)?);
        }
    }
    let mut blob_lens: BTreeMap<String, u64> = BTreeMap::new();
    for (name, f) in &inputs.blobs {
        let m = std::fs::metadata(f).ctx(|| format!("blob {name:?}: stat {}", f.display()))?;
        blob_lens.insert(name.clone(), m.len());
    }
    let plan = layout.plan(&|n| content.get(n).copied(), &|n| blob_lens.get(n).copied())?;
    tracing::info!(layout = %layout.name, disk_size = plan.disk_size, "placing partitions");

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fname = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{fname}.tmp-"))
        .tempfile_in(dir)
        .ctx(|| format!("creating a temporary image in {}", dir.display()))?;
    let tmp_path = tmp.path().to_path_buf();
    {
        let f = tmp.as_file();
        f.set_len(plan.disk_size)
            .ctx(|| format!("sizing {} to {}", tmp_path.display(), plan.disk_size))?;
    }
    let ids = Ids::new(seed);
    write_table(
        layout,
        &plan,
        &ids,
        &mut tmp
            .as_file()
            .try_clone()
            .ctx(|| "reopening the image".into())?,
    )?;

    // File systems, in parallel (disjoint byte ranges of one file).
    let conf_dir = tempfile::tempdir().ctx(|| "creating a temporary folder".into())?;
    let conf = conf_dir.path().join("mke2fs.conf");
    std::fs::write(&conf, MKE2FS_CONF).ctx(|| format!("writing {}", conf.display()))?;
    // Kept partitions: the maker's version is part of every key.
    let mke2fs_version = match &inputs.reuse {
        Some(r) if !r.trees.is_empty() => Some(tool_version("mke2fs")?),
        _ => None,
    };
    // Per partition, when kept: (base path, reused, copy pending its seal).
    type KeptPart = Option<(PathBuf, bool, Option<PathBuf>)>;
    let results: Vec<Result<KeptPart>> = std::thread::scope(|s| {
        let handles: Vec<_> = layout
            .partitions
            .iter()
            .zip(&plan.partitions)
            .filter(|(p, _)| p.fs != Fs::None)
            .map(|(p, placed)| {
                let tree = inputs.trees.get(&p.name).cloned();
                let c = content.get(&p.name).copied();
                let (ids, tmp_path, conf) = (&ids, &tmp_path, &conf);
                let keep = match (&inputs.reuse, &mke2fs_version) {
                    (Some(r), Some(v)) if p.fs == Fs::Ext4 => r
                        .trees
                        .get(&p.name)
                        .map(|k| (r.dir.as_path(), k.as_str(), v.as_str())),
                    _ => None,
                };
                s.spawn(move || -> Result<KeptPart> {
                    match p.fs {
                        Fs::Fat32 => {
                            make_fat(layout, p, placed, ids, tmp_path, tree.as_deref(), epoch)
                                .map(|_| None)
                        }
                        Fs::Ext4 => {
                            let args = ext4_args(p, placed, ids, c);
                            let Some((dir, tree_key, version)) = keep else {
                                make_ext4(layout, p, placed, &args, tmp_path, tree.as_deref(), epoch, conf)?;
                                return Ok(None);
                            };
                            let mut what = args.clone();
                            what.extend([
                                format!("epoch={epoch}"),
                                format!("conf={MKE2FS_CONF}"),
                                format!("version={version}"),
                            ]);
                            let key = crate::keep::key(tree_key, &what);
                            let part = crate::keep::part_path(dir, &p.name, &key);
                            let base = dir.join(format!("{}-{key}", p.name));
                            if part.is_file() {
                                let image = std::fs::OpenOptions::new()
                                    .write(true)
                                    .open(tmp_path)
                                    .ctx(|| format!("opening {}", tmp_path.display()))?;
                                let t = std::time::Instant::now();
                                crate::keep::place(&part, &image, tmp_path, placed.start, placed.size)?;
                                tracing::debug!(partition = %p.name, seconds = t.elapsed().as_secs_f64(), "kept file system copied");
                                tracing::info!(partition = %p.name, kept = %part.display(), "reused the kept file system");
                                return Ok(Some((base, true, None)));
                            }
                            let t = std::time::Instant::now();
                            make_ext4(layout, p, placed, &args, tmp_path, tree.as_deref(), epoch, conf)?;
                            let made = t.elapsed().as_secs_f64();
                            let pending = crate::keep::store(
                                tmp_path,
                                placed.start,
                                placed.size,
                                dir,
                                &p.name,
                                &key,
                                !inputs.defer_sync,
                            )?;
                            tracing::debug!(partition = %p.name, made, kept = t.elapsed().as_secs_f64() - made, "made the file system and kept it");
                            Ok(Some((base, false, pending)))
                        }
                        Fs::None => Ok(None),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(lerr("a file system thread panicked".into())))
            })
            .collect()
    });
    let mut kept: BTreeMap<String, (PathBuf, bool, Option<PathBuf>)> = BTreeMap::new();
    for (r, p) in results
        .into_iter()
        .zip(layout.partitions.iter().filter(|p| p.fs != Fs::None))
    {
        if let Some(k) = r? {
            kept.insert(p.name.clone(), k);
        }
    }
    // Blobs.
    let mut written_blobs = Vec::new();
    {
        let mut f = tmp
            .as_file()
            .try_clone()
            .ctx(|| "reopening the image".into())?;
        for b in &plan.blobs {
            if let Some(src) = inputs.blobs.get(&b.name) {
                let data = std::fs::read(src)
                    .ctx(|| format!("blob {:?}: reading {}", b.name, src.display()))?;
                f.seek(SeekFrom::Start(b.offset))
                    .ctx(|| format!("seeking to blob {:?}", b.name))?;
                f.write_all(&data)
                    .ctx(|| format!("writing blob {:?} at byte {}", b.name, b.offset))?;
                written_blobs.push((b.name.clone(), b.offset, data.len() as u64));
            }
        }
        if inputs.defer_sync {
            crate::keep::start_writeback(&f);
        } else {
            let t = std::time::Instant::now();
            f.sync_all()
                .ctx(|| format!("syncing {}", tmp_path.display()))?;
            tracing::debug!(seconds = t.elapsed().as_secs_f64(), "image synced");
        }
    }
    let table = inspect::read_table(&tmp_path)?;
    tmp.persist(out)
        .map_err(|e| e.error)
        .ctx(|| format!("renaming the image to {}", out.display()))?;
    if !inputs.defer_sync {
        artifact::fsutil::sync_dir(dir)?;
    }
    let partitions = layout
        .partitions
        .iter()
        .zip(&plan.partitions)
        .map(|(p, placed)| {
            let info = table.partition(placed.index);
            FilledPartition {
                name: p.name.clone(),
                index: placed.index,
                start_bytes: placed.start,
                size_bytes: placed.size,
                partuuid: info.map(|i| i.partuuid.clone()).unwrap_or_default(),
                fs: p.fs,
                label: p.label.clone(),
                fs_uuid: match p.fs {
                    Fs::Ext4 => Some(ids.ext4_uuid(&p.name)),
                    Fs::Fat32 => {
                        let v = ids.fat_volume_id(&p.name);
                        Some(format!("{}-{}", &v[..4], &v[4..]))
                    }
                    Fs::None => None,
                },
                filled: inputs.trees.contains_key(&p.name),
                reused: kept.get(&p.name).is_some_and(|k| k.1),
                kept: kept.get(&p.name).map(|k| k.0.clone()),
                pending: kept.get(&p.name).and_then(|k| k.2.clone()),
            }
        })
        .collect();
    Ok(FilledImage {
        layout: layout.name.clone(),
        disk_size: plan.disk_size,
        table,
        partitions,
        blobs: written_blobs,
    })
}

fn write_table(layout: &Layout, plan: &Plan, ids: &Ids, f: &mut std::fs::File) -> Result<()> {
    let lerr = |message: String| Error::Layout {
        layout: layout.name.clone(),
        message,
    };
    let style = match layout.table {
        TableKind::Mbr => table::Style::Mbr,
        TableKind::Gpt => table::Style::Gpt,
        TableKind::HybridMbr => table::Style::HybridMbr,
    };
    let mut entries = Vec::new();
    for (p, placed) in layout.partitions.iter().zip(&plan.partitions) {
        let gpt_type = if layout.table == TableKind::Mbr {
            [0u8; 16]
        } else {
            let t = p
                .gpt_type_guid()
                .map_err(|m| lerr(format!("partition {:?}: {m}", p.name)))?;
            guid::parse(&t).ok_or_else(|| lerr(format!("partition {:?}: bad GUID {t}", p.name)))?
        };
        let pg = ids.partition_guid(&p.name);
        entries.push(table::Entry {
            start_bytes: placed.start,
            size_bytes: placed.size,
            mbr_type: p.mbr_type_byte(),
            gpt_type,
            gpt_guid: guid::parse(&pg).unwrap_or([0; 16]),
            name: p.name.clone(),
            bootable: p.bootable,
            in_hybrid: p.mbr_type.is_some(),
        });
    }
    let gg = ids.gpt_disk_guid();
    let spec = table::Spec {
        style,
        disk_size: plan.disk_size,
        mbr_disk_id: ids.mbr_disk_id(),
        gpt_disk_guid: guid::parse(&gg).unwrap_or([0; 16]),
        entries,
    };
    table::write(f, &spec).map_err(|e| match e {
        Error::Table(m) => lerr(m),
        other => other,
    })
}

/// Sectors per cluster for FAT32 on `size` bytes: the largest of 8, 4, 2, 1 that still gives
/// at least 65525 clusters (the FAT32 minimum), so small boot partitions stay valid FAT32.
pub fn fat32_cluster_sectors(size: u64) -> Option<u32> {
    let sectors = size / 512;
    [8u32, 4, 2, 1].into_iter().find(|&s| {
        let s = s as u64;
        // reserved 32 sectors, 2 FATs of 4 bytes per cluster
        let approx_clusters = sectors.saturating_sub(32) / s;
        let fat_sectors = (approx_clusters + 2) * 4 / 512 + 1;
        let clusters = sectors.saturating_sub(32 + 2 * fat_sectors) / s;
        clusters >= 65525 + 16
    })
}

fn make_fat(
    layout: &Layout,
    p: &layout::Partition,
    placed: &layout::Placed,
    ids: &Ids,
    image: &Path,
    tree: Option<&Path>,
    epoch: i64,
) -> Result<()> {
    let lerr = |message: String| Error::Layout {
        layout: layout.name.clone(),
        message,
    };
    let spc = fat32_cluster_sectors(placed.size).ok_or_else(|| {
        lerr(format!(
            "partition {:?}: {} is too small for FAT32",
            p.name,
            show(placed.size)
        ))
    })?;
    let mut c = Command::new("mkfs.vfat");
    c.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args([
            "-F",
            "32",
            "-S",
            "512",
            "-s",
            &spc.to_string(),
            "--invariant",
            "--mbr=n",
        ])
        .args(["-i", &ids.fat_volume_id(&p.name)])
        .arg(format!("--offset={}", placed.start / 512))
        .args(["-h", &(placed.start / 512).to_string()]);
    if let Some(l) = &p.label {
        c.args(["-n", l]);
    }
    c.arg(image).arg((placed.size / 1024).to_string());
    artifact::cmd::run(&mut c)?;
    if let Some(tree) = tree {
        let fat = Fat::new(image, placed.start).with_mtime(epoch);
        fat.copy_tree(tree, "/").map_err(|e| {
            let full =
                e.to_string().contains("Disk full") || e.to_string().contains("No free cluster");
            if full {
                lerr(format!(
                    "partition {:?}: the tree {} does not fit in the FAT32 partition of {}: {e}",
                    p.name,
                    tree.display(),
                    show(placed.size)
                ))
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// mke2fs's arguments for partition `p`, except the offset, the tree and the image (those do not
/// change the file system's bytes).
fn ext4_args(
    p: &layout::Partition,
    placed: &layout::Placed,
    ids: &Ids,
    content: Option<ContentSize>,
) -> Vec<String> {
    let uuid = ids.ext4_uuid(&p.name);
    let mut a: Vec<String> = ["-F", "-q", "-t", "ext4", "-b", "4096", "-U", &uuid]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push("-E".into());
    a.push(format!(
        "hash_seed={},root_owner=0:0,nodiscard",
        ids.ext4_hash_seed(&p.name)
    ));
    let nodes = content.map(|c| c.nodes).unwrap_or(0);
    let inodes = layout::ext4_inodes(placed.size, nodes);
    if inodes > placed.size / 16384 {
        a.extend(["-N".to_string(), inodes.to_string()]);
    }
    if let Some(l) = &p.label {
        a.extend(["-L".to_string(), l.clone()]);
    }
    a.push(format!("{}k", placed.size / 1024));
    a
}

/// First line of `tool -V` (e2fsprogs tools print it on stderr).
fn tool_version(tool: &str) -> Result<String> {
    let out = Command::new(tool)
        .arg("-V")
        .output()
        .ctx(|| format!("running {tool} -V"))?;
    let text = String::from_utf8_lossy(if out.stderr.is_empty() {
        &out.stdout
    } else {
        &out.stderr
    })
    .into_owned();
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

#[allow(clippy::too_many_arguments)]
fn make_ext4(
    layout: &Layout,
    p: &layout::Partition,
    placed: &layout::Placed,
    args: &[String],
    image: &Path,
    tree: Option<&Path>,
    epoch: i64,
    conf: &Path,
) -> Result<()> {
    let mut c = Command::new("mke2fs");
    c.env("MKE2FS_CONFIG", conf)
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .env("LC_ALL", "C")
        .env_remove("MKE2FS_SYNC")
        .env_remove("MKE2FS_DEVICE_SECTSIZE");
    let (size_arg, rest) = args.split_last().expect("ext4_args ends with the size");
    for a in rest {
        match a.strip_prefix("hash_seed=") {
            Some(_) => c.arg(format!("offset={},{a}", placed.start)),
            None => c.arg(a),
        };
    }
    if let Some(t) = tree {
        c.arg("-d").arg(t);
    }
    c.arg(image).arg(size_arg);
    artifact::cmd::run(&mut c).map_err(|e| {
        let t = e.stderr_tail().to_string();
        if t.contains("Could not allocate block")
            || t.contains("No space left")
            || t.contains("Could not allocate inode")
        {
            Error::Layout {
                layout: layout.name.clone(),
                message: format!(
                    "partition {:?}: the tree {} does not fit in the ext4 partition of {}: {e}",
                    p.name,
                    tree.map(|t| t.display().to_string()).unwrap_or_default(),
                    show(placed.size)
                ),
            }
        } else {
            e.into()
        }
    })?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .ctx(|| format!("opening {}", image.display()))?;
    let n = ext4time::clamp_times(&mut f, placed.start, epoch).map_err(|e| match e {
        Error::Fs { message, .. } => Error::Fs {
            fs: "ext4",
            image: image.display().to_string(),
            offset: placed.start,
            message,
        },
        other => other,
    })?;
    tracing::debug!(partition = %p.name, clamped = n, "ext4 inode times clamped");
    Ok(())
}

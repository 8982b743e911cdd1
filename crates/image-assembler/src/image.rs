//! The per-image stage (artifact kind `image`): the system tarball plus per-image settings, filled
//! into the layout's partitions, and the bundle.
//!
//! Steps: unpack the system tarball into a staging tree; write `/etc/hostname`, `/etc/hosts`,
//! `/etc/os-release`, cloud-init's datasource settings, the NoCloud seed on the boot partition and
//! the preloaded container archives; check the boot configuration; split the tree by mount
//! point; fill the partitions (`raw_image::build::fill`); then one pass over the image for its
//! sha256, the block map and the compressed copy; the SBOM and `SHA256SUMS` last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bootcfg::{self, Boot, OsRelease, PartRef};
use crate::bundle::{self, Compression};
use crate::dpkg::{self, Package};
use crate::split::{self, MountPoint};
use crate::treecache::Journal;
use crate::{bmap, sbom, sums};

/// Where preloaded container archives go: on the boot partition, where drydock-firstboot (from
/// the deb-repo artifact) loads every `*.tar` into the engine on the first boot. (The boot
/// partition's free space bounds them; the fill says so when they do not fit.)
pub const PRELOAD_DIR: &str = "/boot/firmware/preload";
/// cloud-init settings written per image.
pub const CLOUD_CFG: &str = "/etc/cloud/cloud.cfg.d/99-drydock.cfg";

/// A container archive to preload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Preload {
    /// File name in [`PRELOAD_DIR`].
    pub name: String,
    pub sha256: String,
}

/// Everything per image. All of it is in the stage's cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageSpec {
    /// Base name of the files: `<image-name>.img`, `.img.zst`, `.img.bmap`, `.spdx.json`.
    pub image_name: String,
    pub board: String,
    pub board_description: String,
    pub version: String,
    pub hostname: String,
    /// The host name written to the root file system's `/etc/hostname` and `/etc/hosts`: the
    /// board's default, the same for every image of a system (`hostname` is in the seed).
    pub root_hostname: String,
    /// The NoCloud seed files written at the boot partition's root: (file name, content).
    pub seed_files: Vec<(String, String)>,
    pub preload: Vec<Preload>,
    pub compression: Compression,
    /// The partitions with the PARTUUIDs the system stage wrote into fstab and the boot config.
    pub parts: Vec<PartRef>,
    pub boot: Boot,
    pub layout: raw_image::layout::Layout,
    /// Seed of the disk's identifiers (disk id, PARTUUIDs, filesystem UUIDs).
    pub disk_seed: String,
    pub epoch: i64,
}

/// The consumed files.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    pub system_tarball: PathBuf,
    /// Preload archives, in the order of [`ImageSpec::preload`].
    pub preload_files: Vec<PathBuf>,
    /// Keep the unpacked system tree between builds: (folder of trees, key of this system).
    pub tree_cache: Option<(PathBuf, String)>,
}

/// What the stage produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageReport {
    pub image: String,
    pub image_sha256: String,
    pub image_size: u64,
    /// Bytes the image's data ranges hold (what a bmap-aware writer copies).
    pub mapped_bytes: u64,
    pub compressed: Option<String>,
    pub compressed_size: Option<u64>,
    pub compressed_sha256: Option<String>,
    pub bmap: String,
    pub sbom: String,
    pub partitions: Vec<raw_image::build::FilledPartition>,
    pub packages: Vec<Package>,
    pub timings: Vec<(String, f64)>,
}

/// The PARTUUIDs `raw_image::build::fill` will give the layout's partitions for `seed` (the same
/// derivation: MBR `<disk id>-<index>`, GPT the derived partition GUID). The image stage checks
/// the filled image against them, so fstab and cmdline.txt can never disagree with the disk.
pub fn partuuids(layout: &raw_image::layout::Layout, seed: &str) -> Vec<(String, String)> {
    use raw_image::layout::TableKind;
    let ids = raw_image::build::Ids::new(seed);
    layout
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let u = match layout.table {
                TableKind::Mbr => format!("{:08x}-{:02x}", ids.mbr_disk_id(), i + 1),
                TableKind::Gpt | TableKind::HybridMbr => {
                    ids.partition_guid(&p.name).to_ascii_lowercase()
                }
            };
            (p.name.clone(), u)
        })
        .collect()
}

/// Writes into a tree; with a journal, every original is moved aside first (never changed in
/// place), so the tree can be restored.
struct Writer<'a> {
    tree: &'a Path,
    journal: Option<&'a mut Journal>,
    written: Vec<Written>,
}

/// A file the per-image settings wrote into the tree: its path, mode and content's sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub path: String,
    pub mode: u32,
    pub sha256: String,
}

impl Writer<'_> {
    fn prepare(&mut self, path: &str) -> Result<PathBuf> {
        let p = self.tree.join(path.trim_start_matches('/'));
        match self.journal.as_deref_mut() {
            Some(j) => j.save(&p)?,
            None => {
                crate::treecache::create_parents(&p)?;
                if std::fs::symlink_metadata(&p).is_ok() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("replacing {}", p.display()))?;
                }
            }
        }
        Ok(p)
    }

    fn write(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.prepare(path)?;
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", p.display()))?;
        self.written.push(Written {
            path: path.to_string(),
            mode,
            sha256: artifact::sha256_bytes(content),
        });
        Ok(())
    }

    /// Copy `from` to `path`; it must have the content `sha256`.
    fn copy(&mut self, path: &str, from: &Path, sha256: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.prepare(path)?;
        std::fs::copy(from, &p)
            .with_context(|| format!("copying {} to {}", from.display(), p.display()))?;
        let (sha, _) = artifact::sha256_file(&p)?;
        if sha != sha256 {
            bail!(
                "{} changed while it was copied (sha256 {sha}, expected {sha256})",
                from.display(),
            );
        }
        let mode = std::fs::metadata(&p)
            .with_context(|| format!("stat {}", p.display()))?
            .permissions()
            .mode()
            & 0o7777;
        self.written.push(Written {
            path: path.to_string(),
            mode,
            sha256: sha,
        });
        Ok(p)
    }
}

fn read_tree_file(tree: &Path, path: &str) -> Result<String> {
    let mut p = tree.join(path.trim_start_matches('/'));
    // Resolve a relative symlink inside the tree (e.g. /etc/os-release -> ../usr/lib/os-release).
    for _ in 0..8 {
        match std::fs::read_link(&p) {
            Ok(target) if target.is_absolute() => {
                p = tree.join(target.strip_prefix("/").unwrap_or(&target))
            }
            Ok(target) => p = p.parent().unwrap_or(tree).join(target),
            Err(_) => break,
        }
    }
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// Apply the per-image settings to an unpacked system tree; returns what was written, in order.
pub fn apply_settings(
    tree: &Path,
    spec: &ImageSpec,
    preload_files: &[PathBuf],
    journal: Option<&mut Journal>,
) -> Result<Vec<Written>> {
    let mut w = Writer {
        tree,
        journal,
        written: Vec::new(),
    };
    for (what, h) in [
        ("hostname", &spec.hostname),
        ("root-hostname", &spec.root_hostname),
    ] {
        if !bootcfg::valid_hostname(h) {
            bail!("{what} {h:?} is not a valid host name (letters, digits and inner hyphens, dot-separated labels of at most 63)");
        }
    }
    // The root file system names the board's default host; the image's own hostname is in the
    // seed, which cloud-init applies at first boot. So every image of a system shares one root
    // partition (kept and copied into place, see raw_image::keep).
    w.write(
        "/etc/hostname",
        format!("{}\n", spec.root_hostname).as_bytes(),
        0o644,
    )?;
    w.write(
        "/etc/hosts",
        bootcfg::hosts(&spec.root_hostname).as_bytes(),
        0o644,
    )?;
    let base = read_tree_file(tree, "/etc/os-release")
        .or_else(|_| read_tree_file(tree, "/usr/lib/os-release"))?;
    let os = bootcfg::os_release(
        &base,
        &OsRelease {
            image_id: spec.image_name.clone(),
            image_version: spec.version.clone(),
            board: spec.board.clone(),
            board_description: spec.board_description.clone(),
        },
    );
    w.write("/etc/os-release", os.as_bytes(), 0o644)?;
    let boot = spec
        .parts
        .iter()
        .find(|p| p.mount.as_deref().is_some_and(|m| m != "/") && p.fs == "vfat")
        .context("the layout has no FAT boot partition to hold the cloud-init seed")?;
    let label = boot
        .label
        .clone()
        .context("the boot partition needs a label (cloud-init finds the seed by it)")?;
    w.write(CLOUD_CFG, bootcfg::cloud_cfg(&label).as_bytes(), 0o644)?;
    let boot_dir = boot.mount.clone().unwrap_or_default();
    for (name, content) in &spec.seed_files {
        if name.contains('/') || name.is_empty() {
            bail!("seed file name {name:?} must be a plain file name");
        }
        w.write(&format!("{boot_dir}/{name}"), content.as_bytes(), 0o644)?;
    }
    if spec.preload.len() != preload_files.len() {
        bail!(
            "{} preload archives named but {} given",
            spec.preload.len(),
            preload_files.len()
        );
    }
    for (p, file) in spec.preload.iter().zip(preload_files) {
        if p.name.contains('/') || !p.name.ends_with(".tar") {
            bail!(
                "preload archive name {:?} must be a plain `*.tar` file name",
                p.name
            );
        }
        w.copy(&format!("{PRELOAD_DIR}/{}", p.name), file, &p.sha256)
            .with_context(|| {
                format!("copying preload archive {} into the image", file.display())
            })?;
    }
    Ok(w.written)
}

/// The key of each partition's tree: the system's key, the mount point, every mount point (the
/// split takes the others out) and the files written under this one (not under a deeper one).
pub fn tree_keys(
    system_key: &str,
    mounts: &[MountPoint],
    written: &[Written],
) -> BTreeMap<String, String> {
    let under = |path: &str, m: &str| {
        m == "/" || path == m || path.starts_with(&format!("{}/", m.trim_end_matches('/')))
    };
    let all: Vec<(&str, &str)> = mounts
        .iter()
        .map(|m| (m.partition.as_str(), m.mount.as_str()))
        .collect();
    mounts
        .iter()
        .map(|m| {
            let mine: Vec<&Written> = written
                .iter()
                .filter(|w| {
                    under(&w.path, &m.mount)
                        && !mounts.iter().any(|o| {
                            o.mount.len() > m.mount.len()
                                && under(&o.mount, &m.mount)
                                && under(&w.path, &o.mount)
                        })
                })
                .collect();
            let key = artifact::CacheKey::new("image-tree", &(system_key, &m.mount, &all, mine));
            (m.partition.clone(), key.digest())
        })
        .collect()
}

/// Check the boot files the system stage produced against the partitions and the profile.
pub fn check_boot(tree: &Path, spec: &ImageSpec) -> Result<()> {
    let root = bootcfg::root_part(&spec.parts).context("no partition is mounted at /")?;
    let boot_dir = spec
        .parts
        .iter()
        .filter_map(|p| p.mount.as_deref())
        .find(|m| *m != "/")
        .context("no boot partition")?;
    let dir = tree.join(boot_dir.trim_start_matches('/'));
    let files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let problems = match &spec.boot {
        Boot::RpiFirmware {
            cmdline,
            config_txt,
        } => {
            let c = read_tree_file(tree, &format!("{boot_dir}/cmdline.txt"))?;
            let k = read_tree_file(tree, &format!("{boot_dir}/config.txt"))?;
            bootcfg::check_rpi_boot(&c, &k, root, cmdline, config_txt, &files)
        }
        Boot::Direct { cmdline } => {
            let c = read_tree_file(tree, &format!("{boot_dir}/cmdline.txt"))?;
            let mut p = Vec::new();
            if c != bootcfg::direct_cmdline(root, cmdline) {
                p.push(format!(
                    "cmdline.txt is {:?}, expected {:?}",
                    c,
                    bootcfg::direct_cmdline(root, cmdline)
                ));
            }
            for f in ["vmlinuz", "initrd.img"] {
                if !files.iter().any(|x| x == f) {
                    p.push(format!("{f} is missing"));
                }
            }
            p
        }
    };
    if !problems.is_empty() {
        bail!(
            "the boot files in {boot_dir} do not match the disk and profile: {}",
            problems.join("; ")
        );
    }
    Ok(())
}

/// The file names of the bundle for `spec`.
pub struct Names {
    pub img: String,
    pub compressed: Option<String>,
    pub bmap: String,
    pub sbom: String,
}

pub fn names(spec: &ImageSpec) -> Names {
    let img = format!("{}.img", spec.image_name);
    Names {
        compressed: spec.compression.file_name(&img),
        bmap: format!("{img}.bmap"),
        sbom: format!("{}.spdx.json", spec.image_name),
        img,
    }
}

/// Run the stage: `work` is scratch space on the same file system as `out`, `out` the artifact's
/// staging folder.
pub fn build(
    spec: &ImageSpec,
    inputs: &ImageInputs,
    work: &Path,
    out: &Path,
    step: &dyn Fn(&str),
) -> Result<ImageReport> {
    let mut timings: Vec<(String, f64)> = Vec::new();
    let timed = |timings: &mut Vec<(String, f64)>, name: &str, t: Instant| {
        timings.push((name.to_string(), t.elapsed().as_secs_f64()))
    };
    // The PARTUUIDs the system was configured with must be the ones the disk will get.
    let expected = partuuids(&spec.layout, &spec.disk_seed);
    for p in &spec.parts {
        let want = expected
            .iter()
            .find(|(n, _)| n == &p.name)
            .map(|(_, u)| u.as_str());
        if want != Some(p.partuuid.as_str()) {
            bail!(
                "partition {} is configured with PARTUUID {} but the disk seed gives {:?}",
                p.name,
                p.partuuid,
                want
            );
        }
    }
    let n = names(spec);
    let t = Instant::now();
    // The system tree: leased from the tree cache (unpacked once per system), or unpacked here.
    let (lease, tree) = match &inputs.tree_cache {
        Some((base, key)) => {
            step("preparing the system tree");
            let (l, unpacked) = crate::treecache::lease(base, key, &inputs.system_tarball)?;
            let tree = l.tree().to_path_buf();
            timed(&mut timings, if unpacked { "unpack" } else { "lease" }, t);
            (Some(l), tree)
        }
        None => {
            step("unpacking the system");
            let tree = work.join("tree");
            crate::tarball::unpack(&inputs.system_tarball, &tree)?;
            timed(&mut timings, "unpack", t);
            (None, tree)
        }
    };
    let t = Instant::now();
    let mut journal = match &lease {
        Some(_) => Some(Journal::new(&work.join("originals"))?),
        None => None,
    };
    let written = apply_settings(&tree, spec, &inputs.preload_files, journal.as_mut())?;
    check_boot(&tree, spec)?;
    let status = read_tree_file(&tree, "/var/lib/dpkg/status")?;
    let packages = dpkg::parse_status(&status).map_err(anyhow::Error::msg)?;
    let mounts: Vec<MountPoint> = spec
        .parts
        .iter()
        .filter_map(|p| {
            p.mount.as_ref().map(|m| MountPoint {
                partition: p.name.clone(),
                mount: m.clone(),
            })
        })
        .collect();
    let split = split::split_by_mounts(&tree, &mounts, &work.join("parts"))?;
    let trees: BTreeMap<String, PathBuf> = split.iter().cloned().collect();
    // A leased tree is the system's content plus what was written: that names each partition's
    // tree, so a partition whose tree did not change is copied from its kept file system.
    let reuse = match (&lease, &inputs.tree_cache) {
        (Some(l), Some((_, system_key))) => Some(raw_image::keep::Reuse {
            dir: l.kept_dir(),
            trees: tree_keys(system_key, &mounts, &written),
        }),
        _ => None,
    };
    timed(&mut timings, "settings", t);
    let t = Instant::now();
    step("filling the partitions");
    let img = out.join(&n.img);
    let filled = raw_image::build::fill_with(
        &spec.layout,
        &raw_image::build::Inputs {
            trees,
            blobs: BTreeMap::new(),
            reuse,
            // The store fsyncs what it publishes; the disk writes while the image is scanned.
            defer_sync: true,
        },
        &spec.disk_seed,
        spec.epoch,
        &img,
    )
    .with_context(|| format!("filling the partitions of {}", img.display()))?;
    timed(&mut timings, "fill", t);
    for p in &spec.parts {
        let got = filled
            .partition(&p.name)
            .map(|f| f.partuuid.to_ascii_lowercase());
        if got.as_deref() != Some(p.partuuid.to_ascii_lowercase().as_str()) {
            bail!(
                "partition {} got PARTUUID {:?} but fstab and the boot config say {}",
                p.name,
                got,
                p.partuuid
            );
        }
    }
    // Give the tree back: restored when leased (any failure before leaves it marked in use, and
    // the next build unpacks it again), removed when unpacked here.
    let t = Instant::now();
    match (lease, journal) {
        (Some(l), Some(j)) => {
            split::unsplit(&tree, &mounts, &split)?;
            j.restore()?;
            l.release()?;
        }
        _ => {
            for d in [work.join("tree"), work.join("parts")] {
                if d.exists() {
                    std::fs::remove_dir_all(&d)
                        .with_context(|| format!("removing {}", d.display()))?;
                }
            }
        }
    }
    timed(&mut timings, "restore", t);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("chmod {}", img.display()))?;
    }

    let t = Instant::now();
    let reused: Vec<&str> = filled
        .partitions
        .iter()
        .filter(|p| p.reused)
        .map(|p| p.name.as_str())
        .collect();
    if reused.is_empty() {
        step("hashing, mapping and compressing the image");
    } else {
        step(&format!(
            "hashing, mapping and compressing the image (kept file system of {} reused)",
            reused.join(", ")
        ));
    }
    let compressed_path = n.compressed.as_ref().map(|c| out.join(c));
    // One zstd frame per partition; kept partitions keep theirs too.
    let segments: Vec<bundle::Segment> = filled
        .partitions
        .iter()
        .map(|p| bundle::Segment {
            start: p.start_bytes,
            end: p.start_bytes + p.size_bytes,
            keep: p.kept.clone(),
        })
        .collect();
    let scan = bundle::scan_with(
        &img,
        compressed_path.as_deref().map(|p| (spec.compression, p)),
        bundle::threads(),
        &segments,
    );
    // A root file system made here is kept only once the image it is part of checked out.
    let scan = match scan {
        Ok(s) => {
            raw_image::keep::seal(&filled)?;
            s
        }
        Err(e) => {
            for p in filled.partitions.iter().filter_map(|p| p.pending.as_ref()) {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
    };
    if spec.compression == Compression::Zip {
        if let Some(p) = &compressed_path {
            bundle::zip(&img, p, spec.epoch)?;
        }
    }
    timed(&mut timings, "scan+compress", t);
    std::fs::write(out.join(&n.bmap), bmap::render(&scan.bmap)?)
        .with_context(|| format!("writing {}", n.bmap))?;
    let doc = sbom::render(
        &sbom::ImageInfo {
            file_name: &n.img,
            sha256: &scan.sha256,
            version: &spec.version,
            digest: &scan.sha256,
            epoch: spec.epoch,
            tool: &format!("drydock-{}", env!("CARGO_PKG_VERSION")),
            namespace_base: "https://drydock.invalid/spdx",
        },
        &packages,
    );
    let sbom_text = serde_json::to_string_pretty(&doc).context("rendering the SBOM")? + "\n";
    std::fs::write(out.join(&n.sbom), &sbom_text).with_context(|| format!("writing {}", n.sbom))?;
    // SHA256SUMS last: its presence marks a complete bundle.
    let mut entries = vec![(n.img.clone(), scan.sha256.clone())];
    let (mut compressed_size, mut compressed_sha256) = (None, None);
    if let Some(c) = &n.compressed {
        let (sha, size) = match &scan.compressed {
            Some(x) => x.clone(),
            None => artifact::sha256_file(&out.join(c))?,
        };
        compressed_size = Some(size);
        compressed_sha256 = Some(sha.clone());
        entries.push((c.clone(), sha));
    }
    for name in [&n.bmap, &n.sbom] {
        let (sha, _) = artifact::sha256_file(&out.join(name))?;
        entries.push((name.clone(), sha));
    }
    artifact::fsutil::write_synced(&out.join("SHA256SUMS"), sums::render(&entries).as_bytes())?;
    Ok(ImageReport {
        image: n.img,
        image_sha256: scan.sha256,
        image_size: scan.size,
        mapped_bytes: scan.mapped_bytes,
        compressed: n.compressed,
        compressed_size,
        compressed_sha256,
        bmap: n.bmap,
        sbom: n.sbom,
        partitions: filled.partitions,
        packages,
        timings,
    })
}

//! Block devices as `drydock flash` sees them: what a path is (a whole disk, a partition, a regular
//! file), what it is (size, model, removable), and every reason not to overwrite it: mounted (itself
//! or any partition), holding the running system, used as swap or by device-mapper/RAID, not
//! removable, too small. Reads sysfs and /proc only; nothing here writes.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A block device's major:minor.
pub type DevNo = (u32, u32);

/// Split a Linux `dev_t` (glibc's encoding) into major and minor.
pub fn split_dev(dev: u64) -> DevNo {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// A block device.
#[derive(Debug, Clone)]
pub struct Disk {
    /// The device node (symlinks resolved), e.g. `/dev/sdb`.
    pub path: PathBuf,
    /// The kernel name, e.g. `sdb`, `mmcblk0`, `loop3`.
    pub name: String,
    /// Its folder in sysfs.
    pub sys: PathBuf,
    pub devno: DevNo,
    pub size: u64,
    /// A partition of another disk (`sdb1`).
    pub is_partition: bool,
    /// The kernel's removable flag.
    pub removable_flag: bool,
    /// `usb`, `mmc`, ... when the device sits on such a bus.
    pub transport: Option<String>,
    pub vendor: String,
    pub model: String,
    /// Logical block size (O_DIRECT alignment).
    pub logical_block_size: u64,
}

/// What a flash target is.
#[derive(Debug, Clone)]
pub enum Target {
    Block(Disk),
    /// A regular file (created if missing).
    File(PathBuf),
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Disk {
    /// The disk with this major:minor, from /sys/dev/block.
    pub fn from_devno(devno: DevNo, path: PathBuf) -> Result<Disk> {
        let link = PathBuf::from(format!("/sys/dev/block/{}:{}", devno.0, devno.1));
        let sys = std::fs::canonicalize(&link)
            .with_context(|| format!("{}: no {} in sysfs", path.display(), link.display()))?;
        let name = sys
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_partition = sys.join("partition").exists();
        let disk_dir = if is_partition {
            sys.parent().map(Path::to_path_buf).unwrap_or(sys.clone())
        } else {
            sys.clone()
        };
        let sectors: u64 = read_trim(&sys.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let removable_flag = read_trim(&disk_dir.join("removable")).as_deref() == Some("1");
        let real = std::fs::canonicalize(&disk_dir).unwrap_or(disk_dir.clone());
        let real_s = real.to_string_lossy();
        let transport = if real_s.contains("/usb") {
            Some("usb".to_string())
        } else if real_s.contains("/mmc_host/") || name.starts_with("mmcblk") {
            Some("mmc".to_string())
        } else if name.starts_with("loop") {
            Some("loop".to_string())
        } else if name.starts_with("nvme") {
            Some("nvme".to_string())
        } else if real_s.contains("/virtio") {
            Some("virtio".to_string())
        } else {
            None
        };
        Ok(Disk {
            path,
            name,
            devno,
            size: sectors * 512,
            is_partition,
            removable_flag,
            transport,
            vendor: read_trim(&disk_dir.join("device/vendor")).unwrap_or_default(),
            model: read_trim(&disk_dir.join("device/model"))
                .or_else(|| read_trim(&disk_dir.join("device/name")))
                .unwrap_or_default(),
            logical_block_size: read_trim(&disk_dir.join("queue/logical_block_size"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(512),
            sys,
        })
    }

    /// Removable media a user flashes: the kernel's removable flag, or a USB or SD/MMC device.
    pub fn is_removable(&self) -> bool {
        self.removable_flag || matches!(self.transport.as_deref(), Some("usb" | "mmc"))
    }

    /// A target flash accepts without `--force-non-removable`: removable media, or a loop device
    /// (a file the user attached on purpose; the in-use checks still apply).
    pub fn is_flashable(&self) -> bool {
        self.is_removable() || self.transport.as_deref() == Some("loop")
    }

    /// "29.7 GiB, SanDisk Ultra (usb, removable)".
    pub fn describe(&self) -> String {
        let mut what = vec![];
        if let Some(t) = &self.transport {
            what.push(t.clone());
        }
        what.push(if self.is_removable() {
            "removable".to_string()
        } else {
            "not removable".to_string()
        });
        let model = format!("{} {}", self.vendor, self.model);
        let model = model.trim();
        format!(
            "{}{} ({})",
            crate::cache_cmd_human(self.size),
            if model.is_empty() {
                String::new()
            } else {
                format!(", {model}")
            },
            what.join(", ")
        )
    }

    /// The partitions of this disk: (kernel name, major:minor).
    pub fn partitions(&self) -> Vec<(String, DevNo)> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.sys) {
            for e in rd.flatten() {
                let p = e.path();
                if p.join("partition").exists() {
                    if let Some(d) = read_trim(&p.join("dev")).and_then(|s| parse_devno(&s)) {
                        out.push((e.file_name().to_string_lossy().into_owned(), d));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Devices stacked on this disk or its partitions (device-mapper, md RAID).
    pub fn holders(&self) -> Vec<String> {
        let mut dirs = vec![self.sys.clone()];
        dirs.extend(self.partitions().into_iter().map(|(n, _)| self.sys.join(n)));
        let mut out = Vec::new();
        for d in dirs {
            if let Ok(rd) = std::fs::read_dir(d.join("holders")) {
                out.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn parse_devno(s: &str) -> Option<DevNo> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What a `--device` path is.
pub fn inspect(path: &Path) -> Result<Target> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => {
            let real = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
            Ok(Target::Block(Disk::from_devno(split_dev(m.rdev()), real)?))
        }
        Ok(m) if m.is_file() => Ok(Target::File(path.to_path_buf())),
        Ok(m) if m.is_dir() => bail!("{} is a folder, not a device or file", path.display()),
        Ok(_) => bail!(
            "{} is neither a block device nor a regular file",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if path.starts_with("/dev") {
                bail!("{}: no such device", path.display());
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!(
                    "{}: folder {} does not exist",
                    path.display(),
                    parent.display()
                );
            }
            Ok(Target::File(path.to_path_buf()))
        }
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

/// A mounted file system: its device, where, and the source as /proc shows it.
#[derive(Debug, Clone)]
pub struct Mount {
    pub devno: DevNo,
    pub mount_point: String,
    pub source: String,
}

/// Every mount of this process's namespace (from /proc/self/mountinfo).
pub fn mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(devno), Some(mp), Some(source)) = (
            fields.get(2).and_then(|s| parse_devno(s)),
            fields.get(4),
            fields.get(sep + 2),
        ) else {
            continue;
        };
        out.push(Mount {
            devno,
            mount_point: unescape_octal(mp),
            source: unescape_octal(source),
        });
    }
    out
}

/// The devices the running system's `/` lives on, down to the whole disks: the device of `/`
/// (or its mount source, for file systems like btrfs with anonymous device numbers), the disk a
/// partition belongs to, and the devices under device-mapper or RAID.
pub fn root_devices() -> BTreeSet<DevNo> {
    let mut start = BTreeSet::new();
    if let Ok(m) = std::fs::metadata("/") {
        start.insert(split_dev(m.dev()));
    }
    for m in mounts() {
        if m.mount_point == "/" {
            start.insert(m.devno);
            if let Ok(md) = std::fs::metadata(&m.source) {
                if md.file_type().is_block_device() {
                    start.insert(split_dev(md.rdev()));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<DevNo> = start.into_iter().collect();
    while let Some(d) = todo.pop() {
        if !seen.insert(d) {
            continue;
        }
        let Ok(sys) = std::fs::canonicalize(format!("/sys/dev/block/{}:{}", d.0, d.1)) else {
            continue;
        };
        if sys.join("partition").exists() {
            if let Some(parent) = sys.parent() {
                if let Some(p) = read_trim(&parent.join("dev")).and_then(|s| parse_devno(&s)) {
                    todo.push(p);
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(sys.join("slaves")) {
            for e in rd.flatten() {
                if let Some(p) = read_trim(&e.path().join("dev")).and_then(|s| parse_devno(&s)) {
                    todo.push(p);
                }
            }
        }
    }
    seen
}

/// Devices in use as swap.
pub fn swap_devices() -> BTreeSet<DevNo> {
    let text = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| std::fs::metadata(unescape_octal(p)).ok())
        .filter(|m| m.file_type().is_block_device())
        .map(|m| split_dev(m.rdev()))
        .collect()
}

/// Why a device must not be touched at all: it holds the running system, is mounted (itself or a
/// partition), is swap, or has device-mapper/RAID holders. Each message names the device and what
/// to do.
pub fn in_use(disk: &Disk) -> Option<String> {
    let dev = disk.path.display();
    let mut own: BTreeSet<DevNo> = disk.partitions().into_iter().map(|(_, d)| d).collect();
    own.insert(disk.devno);
    let root = root_devices();
    if !own.is_disjoint(&root) {
        return Some(format!(
            "{dev} holds the running system (the root file system / is on it); refusing to overwrite it"
        ));
    }
    let ms = mounts();
    if let Some(m) = ms.iter().find(|m| own.contains(&m.devno)) {
        return Some(format!(
            "{dev} is in use: {} is mounted at {}; unmount it first (umount {})",
            m.source, m.mount_point, m.mount_point
        ));
    }
    if !own.is_disjoint(&swap_devices()) {
        return Some(format!("{dev} is in use as swap; swapoff it first"));
    }
    let holders = disk.holders();
    if !holders.is_empty() {
        return Some(format!(
            "{dev} is in use by {} (device-mapper, LVM, RAID or encryption); stop those first",
            holders.join(", ")
        ));
    }
    None
}

/// Why a device must not be flashed: a partition instead of a disk, [`in_use`], not removable
/// (unless forced), smaller than the image. Each message names the device and what to do.
pub fn refusal(disk: &Disk, image_size: Option<u64>, force_non_removable: bool) -> Option<String> {
    let dev = disk.path.display();
    if disk.is_partition {
        return Some(format!(
            "{dev} is a partition; give the whole disk (e.g. {})",
            disk.sys
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| format!("/dev/{}", n.to_string_lossy()))
                .unwrap_or_else(|| "/dev/sdX".into())
        ));
    }
    if let Some(why) = in_use(disk) {
        return Some(why);
    }
    if !disk.is_flashable() && !force_non_removable {
        return Some(format!(
            "{dev} ({}) is not a removable drive; pass --force-non-removable if you are sure",
            disk.describe()
        ));
    }
    if let Some(n) = image_size {
        if n > disk.size {
            return Some(format!(
                "{dev} is smaller than the image: the device holds {} ({} bytes), the image needs {} ({} bytes)",
                crate::cache_cmd_human(disk.size),
                disk.size,
                crate::cache_cmd_human(n),
                n
            ));
        }
    }
    None
}

/// Removable drives a user may mean: SD cards, USB sticks, card readers with a card in them.
pub fn candidates() -> Vec<Disk> {
    let mut out = Vec::new();
    let root = root_devices();
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram", "dm-", "md", "sr", "nbd"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let Some(devno) = read_trim(&e.path().join("dev")).and_then(|s| parse_devno(&s)) else {
            continue;
        };
        let Ok(d) = Disk::from_devno(devno, PathBuf::from(format!("/dev/{name}"))) else {
            continue;
        };
        if d.size > 0 && d.is_removable() && !root.contains(&devno) {
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/parent\\040dir rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    22 27 0:21 / /proc rw,relatime - proc proc rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].devno, (98, 0));
        assert_eq!(m[0].mount_point, "/mnt/parent dir");
        assert_eq!(m[0].source, "/dev/root");
    }

    #[test]
    fn dev_split() {
        // makedev(8, 17) and makedev(259, 65540)
        assert_eq!(split_dev((8 << 8) | 17), (8, 17));
        let dev: u64 = ((259u64 & 0xfff) << 8)
            | ((259u64 & !0xfff) << 32)
            | (65540u64 & 0xff)
            | ((65540u64 & !0xff) << 12);
        assert_eq!(split_dev(dev), (259, 65540));
    }

    fn fake(transport: Option<&str>, removable: bool, size: u64) -> Disk {
        Disk {
            path: PathBuf::from("/dev/fake"),
            name: "fake".into(),
            sys: PathBuf::from("/nonexistent/sys/block/fake"),
            devno: (4095, 1_048_575),
            size,
            is_partition: false,
            removable_flag: removable,
            transport: transport.map(String::from),
            vendor: "ACME".into(),
            model: "Disk".into(),
            logical_block_size: 512,
        }
    }

    #[test]
    fn removable_policy_and_size() {
        let fixed = fake(Some("nvme"), false, 1 << 30);
        let why = refusal(&fixed, Some(1 << 20), false).unwrap();
        assert!(
            why.contains("not a removable drive") && why.contains("--force-non-removable"),
            "{why}"
        );
        assert!(refusal(&fixed, Some(1 << 20), true).is_none());
        for ok in [
            fake(Some("usb"), false, 1 << 30),
            fake(Some("mmc"), false, 1 << 30),
            fake(None, true, 1 << 30),
            fake(Some("loop"), false, 1 << 30),
        ] {
            assert!(refusal(&ok, Some(1 << 20), false).is_none(), "{ok:?}");
        }
        let small = fake(Some("usb"), true, 8 << 20);
        let why = refusal(&small, Some(16 << 20), false).unwrap();
        assert!(
            why.contains("smaller than the image") && why.contains("8.0 MiB"),
            "{why}"
        );
    }

    #[test]
    fn the_root_disk_is_found_and_refused() {
        let root = root_devices();
        assert!(!root.is_empty());
        // Whatever disk / lives on, flashing it is refused (read-only check; nothing is opened
        // for writing).
        for d in &root {
            if let Ok(disk) = Disk::from_devno(*d, PathBuf::from("/dev/x")) {
                if !disk.is_partition && disk.size > 0 {
                    let why = refusal(&disk, Some(1), true).unwrap();
                    assert!(why.contains("running system"), "{why}");
                }
            }
        }
    }
}

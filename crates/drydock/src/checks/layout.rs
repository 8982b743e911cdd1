//! Partition table and file systems; fstab and the kernel command line against the table.

use crate::checks::image::{Part, TableKind};
use crate::checks::subject::{text, Subject};
use crate::checks::Report;
use crate::profile::{FsKind, PartSize, TableKind as ProfileTable};

/// The partition type the builder's layout gives a profile partition (raw-image resolves short
/// names and defaults): `0x0c` for MBR, a lower-case GUID for GPT.
fn expected_type(
    profile: &crate::profile::Profile,
    kind: TableKind,
    index: usize,
) -> Option<String> {
    let layout = crate::artifacts::raw_image::layout(profile).ok()?;
    let p = layout.partitions.get(index)?;
    if p.fs == raw_image::layout::Fs::None && p.gpt_type.is_none() && p.mbr_type.is_none() {
        return None;
    }
    match kind {
        TableKind::Mbr => Some(format!("0x{:02x}", p.mbr_type_byte())),
        TableKind::Gpt => p.gpt_type_guid().ok(),
    }
}

fn mib(b: u64) -> String {
    if b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{b} bytes")
    }
}

/// Partition table and file systems.
pub fn partitions(s: &Subject, r: &mut Report) {
    r.group("partition table and filesystems");
    let t = s.disk.table();
    let layout = &s.profile.layout;
    let want_kind = match layout.table {
        ProfileTable::Mbr => TableKind::Mbr,
        ProfileTable::Gpt | ProfileTable::HybridMbr => TableKind::Gpt,
    };
    r.check(
        format!(
            "table is {}",
            if want_kind == TableKind::Mbr {
                "MBR"
            } else {
                "GPT"
            }
        ),
        t.kind == want_kind,
        format!(
            "found {:?}{}",
            t.kind,
            if t.hybrid_mbr {
                " with a hybrid MBR"
            } else {
                ""
            }
        ),
    );
    if layout.table == ProfileTable::HybridMbr {
        r.check(
            "hybrid MBR present",
            t.hybrid_mbr,
            format!("hybrid MBR: {}", t.hybrid_mbr),
        );
    }
    r.check(
        format!("{} partitions", layout.partitions.len()),
        t.parts.len() == layout.partitions.len(),
        format!("found {}", t.parts.len()),
    );
    let zero_id = t.disk_id.chars().all(|c| c == '0' || c == '-');
    r.check(
        "disk id set",
        !t.disk_id.is_empty() && !zero_id,
        format!("disk id {:?}", t.disk_id),
    );
    let mut uuids: Vec<&str> = t.parts.iter().map(|p| p.partuuid.as_str()).collect();
    uuids.sort();
    let n = uuids.len();
    uuids.dedup();
    r.check(
        "PARTUUIDs unique",
        n == uuids.len() && !uuids.iter().any(|u| u.is_empty()),
        format!(
            "{:?}",
            t.parts.iter().map(|p| &p.partuuid).collect::<Vec<_>>()
        ),
    );
    let mut sorted: Vec<&Part> = t.parts.iter().collect();
    sorted.sort_by_key(|p| p.start);
    let overlaps: Vec<String> = sorted
        .windows(2)
        .filter(|w| w[0].start + w[0].size > w[1].start)
        .map(|w| {
            format!(
                "p{} [{}..{}) overlaps p{} at {}",
                w[0].index,
                w[0].start,
                w[0].start + w[0].size,
                w[1].index,
                w[1].start
            )
        })
        .collect();
    r.check(
        "partitions do not overlap",
        overlaps.is_empty(),
        if overlaps.is_empty() {
            "none overlap".to_string()
        } else {
            overlaps.join("; ")
        },
    );
    let align = layout.align.0.max(1);
    for (i, (spec, part)) in s.parts.iter().enumerate() {
        let n = &spec.name;
        let Some(part) = part else {
            r.fail(
                format!("{n}: partition present"),
                "the table has no partition at this position",
            );
            continue;
        };
        r.check(
            format!("{n}: starts on a {} boundary", mib(align)),
            part.start % align == 0,
            format!("p{} starts at byte {}", part.index, part.start),
        );
        r.check(
            format!("{n}: ends inside the image"),
            part.start + part.size <= s.disk.size() && part.size > 0,
            format!(
                "p{} ends at byte {} of {}",
                part.index,
                part.start + part.size,
                s.disk.size()
            ),
        );
        if let PartSize::Fixed(sz) = spec.size {
            r.check(
                format!("{n}: size {}", mib(sz.0)),
                part.size == sz.0,
                format!("p{} is {}", part.index, mib(part.size)),
            );
        }
        if let Some(want) = expected_type(s.profile, t.kind, i) {
            r.check(
                format!("{n}: type {want}"),
                part.ptype.eq_ignore_ascii_case(&want),
                format!("p{} type {}", part.index, part.ptype),
            );
        }
        r.check(
            format!(
                "{n}: bootable flag {}",
                if spec.bootable { "set" } else { "clear" }
            ),
            part.bootable == spec.bootable,
            format!("p{} bootable={}", part.index, part.bootable),
        );
        if spec.fs == FsKind::None {
            continue;
        }
        let want_fs = if spec.fs == FsKind::Fat32 {
            "vfat"
        } else {
            "ext4"
        };
        match s.disk.probe(part) {
            Ok(pr) => {
                r.check(
                    format!("{n}: {want_fs} filesystem"),
                    pr.fs_type == want_fs,
                    format!("blkid: TYPE={:?}", pr.fs_type),
                );
                if let Some(label) = &spec.label {
                    r.check(
                        format!("{n}: label {label}"),
                        &pr.label == label,
                        format!("blkid: LABEL={:?}", pr.label),
                    );
                }
                let uuid_ok = !pr.uuid.is_empty()
                    && pr.uuid.chars().any(|c| c.is_ascii_hexdigit() && c != '0');
                r.check(
                    format!("{n}: filesystem UUID set"),
                    uuid_ok,
                    format!("blkid: UUID={:?}", pr.uuid),
                );
                if let Some(bytes) = pr.fs_bytes {
                    r.check(
                        format!("{n}: filesystem fits its partition"),
                        bytes <= part.size && bytes + (1 << 20) >= part.size,
                        format!(
                            "filesystem {} in a {} partition",
                            mib(bytes),
                            mib(part.size)
                        ),
                    );
                }
                if let Some(state) = &pr.state {
                    r.check(
                        format!("{n}: superblock state clean"),
                        state.trim() == "clean",
                        format!("state {state:?}"),
                    );
                }
            }
            Err(e) => {
                r.fail(
                    format!("{n}: {want_fs} filesystem"),
                    format!("blkid failed: {e:#}"),
                );
            }
        }
        let tool = if spec.fs == FsKind::Fat32 {
            "fsck.vfat -n"
        } else {
            "e2fsck -fn"
        };
        match s.disk.fsck(part, want_fs) {
            Ok(Ok(sum)) => r.pass(format!("{n}: {tool} clean"), sum),
            Ok(Err(what)) => r.fail(format!("{n}: {tool} clean"), what),
            Err(e) => r.fail(
                format!("{n}: {tool} clean"),
                format!("could not run: {e:#}"),
            ),
        };
    }
}

/// A `root=`/fstab source (`PARTUUID=…`, `UUID=…`, `LABEL=…`, `/dev/disk/by-*/…`) resolved to the
/// table partition it names, if any.
pub fn resolve_source<'p>(s: &'p Subject, source: &str) -> Result<&'p Part, String> {
    let t = s.disk.table();
    let (kind, value) = if let Some(v) = source.strip_prefix("PARTUUID=") {
        ("PARTUUID", v)
    } else if let Some(v) = source.strip_prefix("/dev/disk/by-partuuid/") {
        ("PARTUUID", v)
    } else if let Some(v) = source.strip_prefix("UUID=") {
        ("UUID", v)
    } else if let Some(v) = source.strip_prefix("/dev/disk/by-uuid/") {
        ("UUID", v)
    } else if let Some(v) = source.strip_prefix("LABEL=") {
        ("LABEL", v)
    } else if let Some(v) = source.strip_prefix("/dev/disk/by-label/") {
        ("LABEL", v)
    } else {
        return Err(format!(
            "{source:?} is a device name, not a stable id (PARTUUID=, UUID= or LABEL=)"
        ));
    };
    let found = t.parts.iter().find(|p| match kind {
        "PARTUUID" => p.partuuid.eq_ignore_ascii_case(value),
        _ => s
            .disk
            .probe(p)
            .map(|pr| {
                if kind == "UUID" {
                    pr.uuid.eq_ignore_ascii_case(value)
                } else {
                    pr.label == value
                }
            })
            .unwrap_or(false),
    });
    found.ok_or_else(|| {
        format!(
            "{source} names no partition of the table (PARTUUIDs: {})",
            t.parts
                .iter()
                .map(|p| p.partuuid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// One fstab entry.
#[derive(Debug, Clone)]
pub struct FstabEntry {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
    pub pass: String,
}

pub fn parse_fstab(t: &str) -> Vec<FstabEntry> {
    t.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 {
                return None;
            }
            Some(FstabEntry {
                source: f[0].into(),
                target: f[1].into(),
                fstype: f[2].into(),
                options: f.get(3).unwrap_or(&"defaults").to_string(),
                pass: f.get(5).unwrap_or(&"0").to_string(),
            })
        })
        .collect()
}

/// The kernel command line the image boots with: `cmdline.txt` on the boot partition.
pub fn cmdline(s: &Subject) -> Result<Option<String>, String> {
    let Some(b) = &s.boot else {
        return Ok(None);
    };
    Ok(text(b.fs.as_ref(), "/cmdline.txt")?.map(|t| t.trim().to_string()))
}

/// fstab and the kernel command line agree with the partition table.
pub fn fstab_cmdline(s: &Subject, r: &mut Report) {
    r.group("fstab and cmdline");
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition (mount /) could be opened",
        );
        return;
    };
    let fstab = match text(root.fs.as_ref(), "/etc/fstab") {
        Ok(Some(t)) => t,
        Ok(None) => {
            r.fail("/etc/fstab present", "missing");
            return;
        }
        Err(e) => {
            r.fail("/etc/fstab present", e);
            return;
        }
    };
    let entries = parse_fstab(&fstab);
    r.check(
        "/etc/fstab present",
        !entries.is_empty(),
        format!("{} entries", entries.len()),
    );
    for (spec, part) in &s.parts {
        let (Some(mount), Some(part)) = (&spec.mount, part) else {
            continue;
        };
        let name = format!("fstab mounts {mount} from the {} partition", spec.name);
        let Some(e) = entries.iter().find(|e| &e.target == mount) else {
            r.fail(name, format!("no entry for {mount}"));
            continue;
        };
        match resolve_source(s, &e.source) {
            Ok(p) if p.index == part.index => r.pass(
                name,
                format!("{} is p{} ({})", e.source, p.index, p.partuuid),
            ),
            Ok(p) => r.fail(
                name,
                format!(
                    "{} is p{}, expected p{} ({})",
                    e.source, p.index, part.index, part.partuuid
                ),
            ),
            Err(why) => r.fail(name, why),
        };
        let want_fs = match spec.fs {
            FsKind::Fat32 => "vfat",
            FsKind::Ext4 => "ext4",
            FsKind::None => continue,
        };
        r.check(
            format!("fstab {mount} type {want_fs}"),
            e.fstype == want_fs,
            format!("fstab says {}", e.fstype),
        );
        let want_pass = if mount == "/" { "1" } else { "2" };
        r.check(
            format!("fstab {mount} fsck pass {want_pass}"),
            e.pass == want_pass,
            format!("pass {}", e.pass),
        );
    }
    let unresolved: Vec<String> = entries
        .iter()
        .filter(|e| e.source.contains('=') || e.source.starts_with("/dev/disk/"))
        .filter_map(|e| resolve_source(s, &e.source).err())
        .collect();
    r.check(
        "every fstab id names a partition",
        unresolved.is_empty(),
        if unresolved.is_empty() {
            "all resolve".into()
        } else {
            unresolved.join("; ")
        },
    );

    let is_pi = s.profile.bootloader.kind == crate::profile::BootloaderKind::RpiFirmware;
    let needs_cmdline =
        is_pi || s.profile.bootloader.kind == crate::profile::BootloaderKind::Direct;
    let line = match cmdline(s) {
        Ok(Some(l)) => l,
        Ok(None) => {
            if needs_cmdline {
                r.fail("cmdline.txt present", "missing on the boot partition");
            }
            return;
        }
        Err(e) => {
            r.fail("cmdline.txt present", e);
            return;
        }
    };
    r.check(
        "cmdline.txt is one line",
        !line.contains('\n'),
        format!("{} lines", line.lines().count()),
    );
    let args: Vec<&str> = line.split_whitespace().collect();
    let roots: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("root="))
        .collect();
    let root_part = s
        .parts
        .iter()
        .find(|(sp, _)| sp.mount.as_deref() == Some("/"))
        .and_then(|(_, p)| p.as_ref());
    let name = "cmdline.txt root= is the root partition's PARTUUID";
    match (roots.as_slice(), root_part) {
        ([one], Some(rp)) => match resolve_source(s, one) {
            Ok(p) if p.index == rp.index && one.starts_with("PARTUUID=") => {
                r.pass(name, format!("root={one} is p{}", p.index))
            }
            Ok(p) => r.fail(
                name,
                format!(
                    "root={one} is p{}, expected PARTUUID={}",
                    p.index, rp.partuuid
                ),
            ),
            Err(why) => r.fail(name, format!("root={one}: {why}")),
        },
        (_, None) => r.fail(name, "the table has no root partition"),
        (many, _) => r.fail(name, format!("{} root= arguments: {many:?}", many.len())),
    };
    if let Some(fst) = args.iter().find_map(|a| a.strip_prefix("rootfstype=")) {
        r.check(
            "cmdline.txt rootfstype=ext4",
            fst == "ext4",
            format!("rootfstype={fst}"),
        );
    }
    if is_pi {
        match text(root.fs.as_ref(), "/etc/default/raspi-firmware") {
            Ok(Some(t)) => {
                let v = shell_var(&t, "ROOTPART");
                let ok = v.as_deref().is_some_and(|v| roots.contains(&v));
                r.check(
                    "/etc/default/raspi-firmware ROOTPART matches cmdline.txt",
                    ok,
                    format!("ROOTPART={:?}, cmdline root={:?} (a kernel upgrade regenerates cmdline.txt from ROOTPART)", v, roots),
                );
            }
            Ok(None) => {
                r.fail(
                    "/etc/default/raspi-firmware ROOTPART matches cmdline.txt",
                    "file missing",
                );
            }
            Err(e) => {
                r.fail(
                    "/etc/default/raspi-firmware ROOTPART matches cmdline.txt",
                    e,
                );
            }
        }
    }
}

/// The value of `NAME=value` / `NAME="value"` in a shell-style file (last assignment wins).
pub fn shell_var(text: &str, name: &str) -> Option<String> {
    let mut v = None;
    for l in text.lines() {
        let l = l.trim();
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some(rest) = l.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            v = Some(rest.trim().trim_matches('"').trim_matches('\'').to_string());
        }
    }
    v
}

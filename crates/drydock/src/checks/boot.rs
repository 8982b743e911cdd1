//! Boot files (firmware, kernel, initrd, device trees, config.txt, cmdline.txt) and the kernel:
//! modules, version agreement and the container-readiness report of its config.

use std::io::Read;

use artifact::sha256_bytes;

use crate::checks::image::{read_follow, FsRead, Kind};
use crate::checks::layout::cmdline;
use crate::checks::subject::{text, Subject};
use crate::checks::{list_some, Report};
use crate::profile::BootloaderKind;

/// Firmware files every Raspberry Pi model needs on the boot partition (Pi 3: bootcode.bin,
/// start.elf, fixup.dat; Pi 4/400/CM4: start4.elf, fixup4.dat).
pub const PI_FIRMWARE_REQUIRED: &[&str] = &[
    "bootcode.bin",
    "start.elf",
    "fixup.dat",
    "start4.elf",
    "fixup4.dat",
];

/// Where Debian's raspi-firmware package keeps the blobs it copies to the boot partition.
const RASPI_FIRMWARE_DIR: &str = "/usr/lib/raspi-firmware";

/// Kernel versions installed in `/boot` (from `vmlinuz-<version>`), newest last.
pub fn kernel_versions(root: &dyn FsRead) -> Result<Vec<String>, String> {
    let names = root
        .list("/boot")
        .map_err(|e| format!("cannot list /boot: {e:#}"))?
        .ok_or("no /boot folder")?;
    let mut v: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .filter(|n| !n.ends_with(".dpkg-bak") && !n.ends_with(".old-dkms"))
        .map(String::from)
        .collect();
    v.sort_by(|a, b| version_cmp(a, b));
    Ok(v)
}

/// Compare kernel versions the way `sort -V` does for common cases (numeric runs as numbers).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((k, t)) if *k == d => t.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = if x.0 && y.0 {
            let xn = x.1.trim_start_matches('0');
            let yn = y.1.trim_start_matches('0');
            xn.len().cmp(&yn.len()).then(xn.cmp(yn))
        } else {
            x.1.cmp(&y.1)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// The `config.txt` settings: `key=value` lines and bare directives (`initramfs file addr`).
pub fn config_txt_value<'t>(t: &'t str, key: &str) -> Option<&'t str> {
    let mut found = None;
    for l in t.lines() {
        let l = l.trim();
        if l.starts_with('#') || l.starts_with('[') {
            continue;
        }
        if let Some(v) = l.strip_prefix(key) {
            if let Some(v) = v.strip_prefix('=') {
                found = Some(v.trim());
            } else if v.starts_with(' ') || v.starts_with('\t') {
                found = v.split_whitespace().next();
            }
        }
    }
    found
}

/// The kernel version the image boots: config.txt's `kernel=vmlinuz-<v>` on a Pi, else the newest
/// `/boot/vmlinuz-<v>`.
pub fn boot_kernel_version(s: &Subject) -> Result<String, String> {
    let root = s.root.as_ref().ok_or("no root file system")?;
    if s.profile.bootloader.kind == BootloaderKind::RpiFirmware {
        let boot = s.boot.as_ref().ok_or("no boot partition")?;
        let cfg = text(boot.fs.as_ref(), "/config.txt")?.ok_or("config.txt missing")?;
        let k = config_txt_value(&cfg, "kernel").ok_or("config.txt has no kernel= line")?;
        if let Some(v) = k.strip_prefix("vmlinuz-") {
            return Ok(v.to_string());
        }
        // A kernel file not named after its version: the only installed kernel.
        let v = kernel_versions(root.fs.as_ref())?;
        return match v.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!("config.txt kernel={k} and /boot has kernels {v:?}")),
        };
    }
    kernel_versions(root.fs.as_ref())?
        .pop()
        .ok_or_else(|| "no /boot/vmlinuz-* in the root filesystem".to_string())
}

/// What kind of kernel image bytes these are.
pub fn kernel_image_kind(b: &[u8]) -> Option<&'static str> {
    if b.len() > 64 && &b[56..60] == b"ARMd" {
        Some("arm64 Image")
    } else if b.len() > 8 && b[0] == 0x1f && b[1] == 0x8b {
        Some("gzip-compressed Image")
    } else if b.len() > 8 && &b[0..2] == b"MZ" && &b[4..8] == b"zimg" {
        Some("EFI zboot Image")
    } else if b.len() > 64 && &b[0..2] == b"MZ" && &b[56..60] == b"ARMd" {
        Some("arm64 EFI-stub Image")
    } else {
        None
    }
}

/// Find `Linux version <v>` in a kernel image (gzip payloads are decompressed).
pub fn kernel_banner_version(b: &[u8]) -> Option<String> {
    let mut plain: Vec<u8> = Vec::new();
    let data: &[u8] = if b.len() > 2 && b[0] == 0x1f && b[1] == 0x8b {
        let mut d = flate2::read::GzDecoder::new(b);
        d.read_to_end(&mut plain).ok()?;
        &plain
    } else if let Some(off) = gzip_payload(b) {
        let mut d = flate2::read::GzDecoder::new(&b[off..]);
        // zboot payloads carry trailing data; a partial read still holds the banner.
        let _ = d.read_to_end(&mut plain);
        &plain
    } else {
        b
    };
    let needle = b"Linux version ";
    let pos = data.windows(needle.len()).position(|w| w == needle)?;
    let rest = &data[pos + needle.len()..];
    let end = rest.iter().position(|&c| c == b' ' || c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The offset of an EFI zboot image's gzip payload.
fn gzip_payload(b: &[u8]) -> Option<usize> {
    if b.len() < 16 || &b[0..2] != b"MZ" || &b[4..8] != b"zimg" {
        return None;
    }
    let off = u32::from_le_bytes(b[8..12].try_into().ok()?) as usize;
    (off + 2 < b.len() && b[off] == 0x1f && b[off + 1] == 0x8b).then_some(off)
}

/// Check a flattened device tree: magic and header size.
pub fn dtb_ok(b: &[u8]) -> Result<String, String> {
    if b.len() < 40 || b[0..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return Err(format!(
            "not a device tree ({} bytes, no d00dfeed magic)",
            b.len()
        ));
    }
    let total = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if total != b.len() {
        return Err(format!("header says {total} bytes, file has {}", b.len()));
    }
    Ok(format!("device tree, {total} bytes"))
}

fn initrd_kind(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"070701") || b.starts_with(b"070702") {
        Some("cpio")
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if b.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Some("xz")
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Some("lz4")
    } else {
        None
    }
}

fn read_bytes(fs: &dyn FsRead, path: &str) -> Result<Option<Vec<u8>>, String> {
    read_follow(fs, path).map_err(|e| format!("cannot read {path}: {e:#}"))
}

/// Boot files: firmware, kernel, initrd, device trees, config.txt and cmdline.txt.
pub fn boot_files(s: &Subject, r: &mut Report) {
    r.group("boot files");
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition could be opened",
        );
        return;
    };
    let rootfs = root.fs.as_ref();
    let version = boot_kernel_version(s);
    match kernel_versions(rootfs) {
        Ok(v) => r.check(
            "one kernel installed in /boot",
            v.len() == 1,
            format!("vmlinuz versions: {v:?}"),
        ),
        Err(e) => r.fail("one kernel installed in /boot", e),
    };
    let ver = match &version {
        Ok(v) => {
            r.pass("boot kernel version known", v.clone());
            v.clone()
        }
        Err(e) => {
            r.fail("boot kernel version known", e.clone());
            return;
        }
    };
    let vmlinuz_path = format!("/boot/vmlinuz-{ver}");
    let initrd_path = format!("/boot/initrd.img-{ver}");
    let vmlinuz = read_bytes(rootfs, &vmlinuz_path);
    let initrd = read_bytes(rootfs, &initrd_path);
    match &vmlinuz {
        Ok(Some(b)) => r.result(
            format!("{vmlinuz_path} is a kernel image"),
            kernel_image_kind(b)
                .map(|k| format!("{k}, {} bytes", b.len()))
                .ok_or_else(|| format!("unknown format, {} bytes", b.len())),
        ),
        Ok(None) => r.fail(format!("{vmlinuz_path} is a kernel image"), "missing"),
        Err(e) => r.fail(format!("{vmlinuz_path} is a kernel image"), e.clone()),
    };
    match &vmlinuz {
        Ok(Some(b)) => {
            let found = kernel_banner_version(b);
            r.check(
                format!("{vmlinuz_path} is Linux {ver}"),
                found.as_deref() == Some(ver.as_str()),
                format!("banner says {:?}", found),
            )
        }
        _ => r.fail(
            format!("{vmlinuz_path} is Linux {ver}"),
            "kernel image unreadable",
        ),
    };
    match &initrd {
        Ok(Some(b)) => r.result(
            format!("{initrd_path} is an initramfs"),
            initrd_kind(b)
                .map(|k| format!("{k}, {} bytes", b.len()))
                .ok_or_else(|| format!("unknown format, {} bytes", b.len())),
        ),
        Ok(None) => r.fail(format!("{initrd_path} is an initramfs"), "missing"),
        Err(e) => r.fail(format!("{initrd_path} is an initramfs"), e.clone()),
    };

    if s.profile.bootloader.kind == BootloaderKind::Direct {
        direct_boot_files(s, &vmlinuz, &initrd, &vmlinuz_path, &initrd_path, r);
        return;
    }
    if s.profile.bootloader.kind != BootloaderKind::RpiFirmware {
        return;
    }
    let Some(boot) = &s.boot else {
        r.fail(
            "boot partition readable",
            "no FAT boot partition could be opened",
        );
        return;
    };
    let bootfs = boot.fs.as_ref();
    let listing = match bootfs.list("/") {
        Ok(Some(l)) => l,
        Ok(None) | Err(_) => {
            r.fail("boot partition readable", "cannot list the FAT root folder");
            return;
        }
    };
    // Firmware: the required set, plus every blob the installed raspi-firmware ships, each equal
    // to the package's copy.
    let mut blobs: Vec<String> = PI_FIRMWARE_REQUIRED.iter().map(|s| s.to_string()).collect();
    match rootfs.list(RASPI_FIRMWARE_DIR) {
        Ok(Some(names)) => {
            for n in names {
                if (n.ends_with(".elf") || n.ends_with(".dat") || n.ends_with(".bin"))
                    && !blobs.contains(&n)
                {
                    blobs.push(n);
                }
            }
        }
        _ => {
            r.fail(
                format!("{RASPI_FIRMWARE_DIR} present"),
                "raspi-firmware's blobs are not in the root filesystem",
            );
        }
    }
    for blob in &blobs {
        let name = format!("{blob} matches raspi-firmware");
        let on_boot = read_bytes(bootfs, &format!("/{blob}"));
        let pkg = read_bytes(rootfs, &format!("{RASPI_FIRMWARE_DIR}/{blob}"));
        match (on_boot, pkg) {
            (Ok(Some(a)), Ok(Some(b))) if a == b => r.pass(
                name,
                format!("{} bytes, sha256 {}", a.len(), &sha256_bytes(&a)[..16]),
            ),
            (Ok(Some(a)), Ok(Some(b))) => r.fail(
                name,
                format!(
                    "boot copy {} bytes differs from the package's {} bytes",
                    a.len(),
                    b.len()
                ),
            ),
            (Ok(None), _) => r.fail(name, format!("{blob} missing on the boot partition")),
            (Ok(Some(a)), Ok(None)) => r.fail(
                name,
                format!(
                    "{blob} ({} bytes) is not shipped in {RASPI_FIRMWARE_DIR}",
                    a.len()
                ),
            ),
            (Err(e), _) | (_, Err(e)) => r.fail(name, e),
        };
    }

    // config.txt
    let cfg = match text(bootfs, "/config.txt") {
        Ok(Some(t)) => {
            r.pass("config.txt present", format!("{} bytes", t.len()));
            t
        }
        Ok(None) => {
            r.fail("config.txt present", "missing");
            String::new()
        }
        Err(e) => {
            r.fail("config.txt present", e);
            String::new()
        }
    };
    for opt in &s.profile.bootloader.config_txt {
        let (k, v) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        let found = config_txt_value(&cfg, k.trim());
        r.check(
            format!("config.txt {opt}"),
            found == Some(v.trim()),
            format!("{k} is {found:?}"),
        );
    }
    let kernel_file = config_txt_value(&cfg, "kernel").map(String::from);
    match &kernel_file {
        Some(k) => {
            let b = read_bytes(bootfs, &format!("/{k}"));
            let name = format!("config.txt kernel={k} equals {vmlinuz_path}");
            match (b, &vmlinuz) {
                (Ok(Some(a)), Ok(Some(v))) if &a == v => r.pass(name, format!("{} bytes", a.len())),
                (Ok(Some(a)), Ok(Some(v))) => r.fail(
                    name,
                    format!("{} bytes vs {} bytes: different", a.len(), v.len()),
                ),
                (Ok(None), _) => r.fail(name, format!("{k} missing on the boot partition")),
                (Err(e), _) => r.fail(name, e),
                (_, _) => r.fail(name, format!("{vmlinuz_path} unreadable")),
            }
        }
        None => r.fail("config.txt names the kernel", "no kernel= line"),
    };
    let initramfs = config_txt_value(&cfg, "initramfs").map(String::from);
    match &initramfs {
        Some(i) => {
            let b = read_bytes(bootfs, &format!("/{i}"));
            let name = format!("config.txt initramfs {i} equals {initrd_path}");
            match (b, &initrd) {
                (Ok(Some(a)), Ok(Some(v))) if &a == v => r.pass(name, format!("{} bytes", a.len())),
                (Ok(Some(a)), Ok(Some(v))) => r.fail(
                    name,
                    format!("{} bytes vs {} bytes: different", a.len(), v.len()),
                ),
                (Ok(None), _) => r.fail(name, format!("{i} missing on the boot partition")),
                (Err(e), _) => r.fail(name, e),
                (_, _) => r.fail(name, format!("{initrd_path} unreadable")),
            }
        }
        None => r.fail("config.txt names the initramfs", "no initramfs line"),
    };

    // Device trees: each of the board's models, on the boot partition (where the firmware looks:
    // the top folder, by base name) and equal to the kernel package's copy.
    for dtb in &s.profile.kernel.dtbs {
        let base = dtb.rsplit('/').next().unwrap_or(dtb);
        let on_boot = read_bytes(bootfs, &format!("/{base}"));
        let name = format!("{base} on the boot partition");
        match &on_boot {
            Ok(Some(b)) => r.result(name, dtb_ok(b)),
            Ok(None) => r.fail(
                name,
                format!(
                    "missing ({} .dtb files present)",
                    listing.iter().filter(|n| n.ends_with(".dtb")).count()
                ),
            ),
            Err(e) => r.fail(name, e.clone()),
        };
        let pkg_path = format!("/usr/lib/linux-image-{ver}/{dtb}");
        let name = format!("{base} matches {pkg_path}");
        match (&on_boot, &read_bytes(rootfs, &pkg_path)) {
            (Ok(Some(a)), Ok(Some(b))) => r.check(
                name,
                a == b,
                if a == b {
                    format!("{} bytes", a.len())
                } else {
                    "contents differ".to_string()
                },
            ),
            (_, Ok(None)) => r.fail(name, format!("{pkg_path} missing in the root filesystem")),
            (Ok(None), _) => r.fail(name, "missing on the boot partition"),
            (Err(e), _) | (_, Err(e)) => r.fail(name, e.clone()),
        };
    }

    // cmdline.txt options from the profile.
    match cmdline(s) {
        Ok(Some(line)) => {
            let args: Vec<&str> = line.split_whitespace().collect();
            for want in &s.profile.kernel.cmdline {
                r.check(
                    format!("cmdline.txt has {want}"),
                    args.contains(&want.as_str()),
                    list_some(&args, 12),
                );
            }
        }
        Ok(None) => {
            r.fail("cmdline.txt present", "missing on the boot partition");
        }
        Err(e) => {
            r.fail("cmdline.txt present", e);
        }
    }
}

type Bytes = Result<Option<Vec<u8>>, String>;

/// Direct boot (a VM or a later stage loads the kernel): `vmlinuz`, `initrd.img` and
/// `cmdline.txt` on the boot partition, equal to the installed kernel's.
fn direct_boot_files(
    s: &Subject,
    vmlinuz: &Bytes,
    initrd: &Bytes,
    vpath: &str,
    ipath: &str,
    r: &mut Report,
) {
    let Some(boot) = &s.boot else {
        r.fail(
            "boot partition readable",
            "no FAT boot partition could be opened",
        );
        return;
    };
    for (name, want, wpath) in [("vmlinuz", vmlinuz, vpath), ("initrd.img", initrd, ipath)] {
        let check = format!("/{name} on the boot partition equals {wpath}");
        match (read_bytes(boot.fs.as_ref(), &format!("/{name}")), want) {
            (Ok(Some(a)), Ok(Some(b))) if &a == b => r.pass(check, format!("{} bytes", a.len())),
            (Ok(Some(a)), Ok(Some(b))) => r.fail(
                check,
                format!("{} bytes vs {} bytes: different", a.len(), b.len()),
            ),
            (Ok(None), _) => r.fail(check, "missing on the boot partition"),
            (Err(e), _) => r.fail(check, e),
            (_, _) => r.fail(check, format!("{wpath} unreadable")),
        };
    }
    match cmdline(s) {
        Ok(Some(line)) => {
            let args: Vec<&str> = line.split_whitespace().collect();
            for want in &s.profile.kernel.cmdline {
                r.check(
                    format!("cmdline.txt has {want}"),
                    args.contains(&want.as_str()),
                    list_some(&args, 12),
                );
            }
        }
        Ok(None) => {
            r.fail("cmdline.txt present", "missing on the boot partition");
        }
        Err(e) => {
            r.fail("cmdline.txt present", e);
        }
    }
}

/// Modules the container engine loads at run time (overlay storage, bridge networking with NAT,
/// conntrack), each required as a module file or built into the kernel.
pub const CONTAINER_MODULES: &[&str] = &[
    "overlay",
    "bridge",
    "br_netfilter",
    "veth",
    "nf_nat",
    "nf_conntrack",
    "xt_conntrack",
    "xt_MASQUERADE",
    "xt_addrtype",
    "nf_tables",
    "ip_tables",
    "iptable_nat",
    "vxlan",
];

/// Files depmod writes; all must exist for modprobe to work.
pub const DEPMOD_FILES: &[&str] = &[
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.symbols",
    "modules.builtin",
    "modules.order",
];

/// Kernel and modules, and the container-readiness report on `/boot/config-<version>`.
pub fn kernel(s: &Subject, r: &mut Report) {
    r.group("kernel and modules");
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition could be opened",
        );
        return;
    };
    let rootfs = root.fs.as_ref();
    let ver = match boot_kernel_version(s) {
        Ok(v) => v,
        Err(e) => {
            r.fail("boot kernel version known", e);
            return;
        }
    };
    let moddir = format!("/lib/modules/{ver}");
    let present = matches!(rootfs.stat(&moddir), Ok(Some(m)) if m.kind == Kind::Dir)
        || matches!(crate::checks::image::stat_follow(rootfs, &moddir), Ok(Some((_, m))) if m.kind == Kind::Dir);
    r.check(
        format!("{moddir} present (matches the boot kernel)"),
        present,
        match rootfs.list("/lib/modules") {
            Ok(Some(l)) => format!("/lib/modules holds {l:?}"),
            _ => "/lib/modules missing".to_string(),
        },
    );
    for f in DEPMOD_FILES.iter().filter(|_| present) {
        let p = format!("{moddir}/{f}");
        match rootfs.stat(&p) {
            Ok(Some(m)) if m.kind == Kind::File && m.size > 0 => {
                r.pass(format!("{f} present"), format!("{} bytes", m.size))
            }
            Ok(Some(m)) => r.fail(
                format!("{f} present"),
                format!("{:?} of {} bytes", m.kind, m.size),
            ),
            Ok(None) => r.fail(
                format!("{f} present"),
                format!("{p} missing (depmod not run)"),
            ),
            Err(e) => r.fail(format!("{f} present"), format!("{e:#}")),
        };
    }
    let dep = text(rootfs, &format!("{moddir}/modules.dep"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let builtin = text(rootfs, &format!("{moddir}/modules.builtin"))
        .ok()
        .flatten()
        .unwrap_or_default();
    for m in CONTAINER_MODULES.iter().filter(|_| present) {
        let hit = |t: &str| {
            t.lines()
                .find(|l| {
                    let path = l.split(':').next().unwrap_or("");
                    let base = path.rsplit('/').next().unwrap_or("");
                    let stem = base.split(".ko").next().unwrap_or("");
                    stem == *m || stem.replace('-', "_") == *m
                })
                .map(|l| l.split(':').next().unwrap_or("").to_string())
        };
        let name = format!("module {m} available");
        if let Some(p) = hit(&dep) {
            r.pass(name, format!("module file {p}"));
        } else if let Some(p) = hit(&builtin) {
            r.pass(name, format!("built in ({p})"));
        } else {
            r.fail(name, "neither in modules.dep nor modules.builtin");
        }
    }
    for f in [
        format!("/boot/System.map-{ver}"),
        format!("/boot/config-{ver}"),
    ] {
        match rootfs.stat(&f) {
            Ok(Some(m)) if m.kind == Kind::File && m.size > 0 => {
                r.pass(format!("{f} present"), format!("{} bytes", m.size))
            }
            Ok(_) => r.fail(format!("{f} present"), "missing or empty"),
            Err(e) => r.fail(format!("{f} present"), format!("{e:#}")),
        };
    }
    match text(rootfs, &format!("/boot/config-{ver}")) {
        Ok(Some(cfg)) => crate::checks::readiness::report(
            &cfg,
            s.profile.kernel.readiness,
            &format!("/boot/config-{ver}"),
            r,
        ),
        Ok(None) => {
            r.fail(
                "container readiness of the kernel config",
                format!("/boot/config-{ver} missing"),
            );
        }
        Err(e) => {
            r.fail("container readiness of the kernel config", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec!["6.12.9-arm64", "6.12.10-arm64", "6.1.0-28-arm64"];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v, vec!["6.1.0-28-arm64", "6.12.9-arm64", "6.12.10-arm64"]);
    }

    #[test]
    fn config_txt_values() {
        let t = "# c\narm_64bit=1\nkernel=vmlinuz-6.12\n# initramfs old\ninitramfs initrd.img-6.12 followkernel\n[pi4]\n";
        assert_eq!(config_txt_value(t, "kernel"), Some("vmlinuz-6.12"));
        assert_eq!(config_txt_value(t, "initramfs"), Some("initrd.img-6.12"));
        assert_eq!(config_txt_value(t, "arm_64bit"), Some("1"));
        assert_eq!(config_txt_value(t, "enable_uart"), None);
    }

    #[test]
    fn kernel_banner_in_gzip() {
        use std::io::Write;
        let mut raw = vec![0u8; 64];
        raw[56..60].copy_from_slice(b"ARMd");
        raw.extend_from_slice(b"\0Linux version 6.12.1-arm64 (debian-kernel@lists) #1 SMP\0");
        assert_eq!(kernel_banner_version(&raw).as_deref(), Some("6.12.1-arm64"));
        assert_eq!(kernel_image_kind(&raw), Some("arm64 Image"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(kernel_image_kind(&gz), Some("gzip-compressed Image"));
        assert_eq!(kernel_banner_version(&gz).as_deref(), Some("6.12.1-arm64"));
        assert_eq!(kernel_banner_version(b"no banner here"), None);
    }

    #[test]
    fn dtb_header() {
        let mut d = vec![0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 48];
        d.resize(48, 0);
        assert!(dtb_ok(&d).is_ok());
        d.push(0);
        assert!(dtb_ok(&d).is_err());
        assert!(dtb_ok(b"nope").is_err());
    }
}

//! Fixtures shared by the integration tests: layouts (Raspberry Pi, A/B in MBR and GPT) and
//! small trees generated on the fly (no checked-in binaries).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use raw_image::layout::{Bytes, Fs, Layout, Partition, SizeSpec, TableKind};

pub const MIB: u64 = 1 << 20;

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn part(name: &str, label: Option<&str>, fs: Fs, size: SizeSpec) -> Partition {
    Partition {
        name: name.into(),
        label: label.map(Into::into),
        fs,
        size,
        start: None,
        bootable: false,
        gpt_type: None,
        mbr_type: None,
    }
}

/// The Raspberry Pi layout of boards/rpi-arm64.yaml (FAT boot 256 MiB + ext4 root fit+384 MiB),
/// with a smaller headroom to keep tests light.
pub fn rpi(headroom: u64) -> Layout {
    let mut boot = part(
        "boot",
        Some("RASPIFIRM"),
        Fs::Fat32,
        SizeSpec::Fixed(Bytes(256 * MIB)),
    );
    boot.bootable = true;
    boot.mbr_type = Some(0x0c);
    let mut root = part(
        "root",
        Some("RASPIROOT"),
        Fs::Ext4,
        SizeSpec::Fit {
            headroom: Bytes(headroom),
        },
    );
    root.mbr_type = Some(0x83);
    Layout {
        name: "rpi-arm64".into(),
        table: TableKind::Mbr,
        align: Bytes(MIB),
        disk_size: None,
        partitions: vec![boot, root],
        blobs: vec![],
    }
}

/// A/B: boot, root-a, root-b, data (rest of a 512 MiB disk).
pub fn ab(table: TableKind) -> Layout {
    let mut boot = part(
        "boot",
        Some("BOOT"),
        Fs::Fat32,
        SizeSpec::Fixed(Bytes(64 * MIB)),
    );
    boot.bootable = true;
    let mut root_a = part(
        "root-a",
        Some("root-a"),
        Fs::Ext4,
        SizeSpec::Fixed(Bytes(160 * MIB)),
    );
    let mut root_b = part(
        "root-b",
        Some("root-b"),
        Fs::Ext4,
        SizeSpec::Fixed(Bytes(160 * MIB)),
    );
    let data = part("data", Some("data"), Fs::Ext4, SizeSpec::Rest);
    if table != TableKind::Mbr {
        boot.gpt_type = Some("esp".into());
        root_a.gpt_type = Some("linux-root-arm64".into());
        root_b.gpt_type = Some("linux-root-arm64".into());
    }
    if table == TableKind::HybridMbr {
        boot.mbr_type = Some(0x0c);
    }
    Layout {
        name: format!("ab-{table:?}").to_lowercase(),
        table,
        align: Bytes(MIB),
        disk_size: Some(Bytes(512 * MIB)),
        partitions: vec![boot, root_a, root_b, data],
        blobs: vec![],
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A root tree with every kind of node ext4 keeps: modes (setuid, sticky), owners (when root),
/// hard links, fast and slow symlinks, device nodes (when root), a FIFO, names with spaces and
/// non-ASCII, an empty file and a 3 MiB file.
pub fn root_tree(dir: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("etc/hostname", b"black-pearl\n");
    w("etc/os-release", b"PRETTY_NAME=\"drydock test\"\n");
    w("usr/bin/tool", b"#!/bin/sh\necho tool\n");
    w("usr/share/doc/a b/ünïcode.txt", "grüße\n".as_bytes());
    w("var/empty-file", b"");
    let big: Vec<u8> = (0..3 * MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    w("usr/lib/big.bin", &big);
    chmod(&dir.join("usr/bin/tool"), 0o4755);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    chmod(&dir.join("tmp"), 0o1777);
    std::fs::create_dir_all(dir.join("root")).unwrap();
    chmod(&dir.join("root"), 0o700);
    std::fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", dir.join("etc/fast-link")).unwrap();
    std::os::unix::fs::symlink(
        "/".to_string() + &"long-target/".repeat(10),
        dir.join("etc/slow-link"),
    )
    .unwrap();
    std::os::unix::fs::symlink("hostname", dir.join("etc/dangling-ok")).unwrap();
    let fifo = dir.join("run-fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(dir.join("etc/os-release"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(dir.join("usr/share/doc/a b"), Some(0), Some(42)).unwrap();
        std::os::unix::fs::lchown(dir.join("etc/fast-link"), Some(5), Some(6)).unwrap();
        assert!(Command::new("mknod")
            .arg(dir.join("dev/null"))
            .args(["c", "1", "3"])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("mknod")
            .arg(dir.join("dev/sda"))
            .args(["b", "8", "0"])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("mknod")
            .arg(dir.join("dev/big"))
            .args(["c", "259", "65536"])
            .status()
            .unwrap()
            .success());
    } else {
        eprintln!("not root: skipping owners and device nodes in the fixture tree");
    }
}

/// A boot tree: Raspberry Pi firmware-like files.
pub fn boot_tree(dir: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("config.txt", b"arm_64bit=1\nenable_uart=1\n");
    w(
        "cmdline.txt",
        b"console=serial0,115200 root=PARTUUID=x rootwait\n",
    );
    w("overlays/vc4-kms-v3d.dtbo", &vec![0xd0u8; 5000]);
    w("bcm2711-rpi-4-b.dtb", &vec![0xedu8; 50_000]);
    w("A Long File Name With Spaces.txt", b"x");
}

pub fn sha256(p: &Path) -> String {
    artifact::sha256_file(p).unwrap().0
}

pub fn trees(pairs: &[(&str, &Path)]) -> BTreeMap<String, PathBuf> {
    pairs
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_path_buf()))
        .collect()
}

/// Copy `len` bytes at `offset` of `img` into a new file (sparse), for tools without offsets.
pub fn extract(img: &Path, offset: u64, len: u64, out: &Path) {
    let st = Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", out.display()))
        .args([
            "bs=1M",
            "iflag=skip_bytes,count_bytes",
            "conv=sparse",
            "status=none",
        ])
        .arg(format!("skip={offset}"))
        .arg(format!("count={len}"))
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `blkid -p` of a partition: (TYPE, LABEL, UUID).
pub fn blkid(img: &Path, offset: u64, size: u64) -> BTreeMap<String, String> {
    let out = run_ok(
        Command::new("blkid")
            .args([
                "-p",
                "-o",
                "export",
                "-O",
                &offset.to_string(),
                "-S",
                &size.to_string(),
            ])
            .arg(img),
    );
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

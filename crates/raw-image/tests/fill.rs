//! Filling layouts from trees: the images agree with sfdisk, fsck and blkid, read back equal to
//! their trees, and are byte-for-byte reproducible.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use raw_image::ext4::Ext4;
use raw_image::fat::Fat;
use raw_image::layout::{Fs, Layout, TableKind};
use raw_image::tree;
use raw_image::FilledImage;

const EPOCH: i64 = 1_700_000_000;

fn sfdisk_json(img: &Path) -> serde_json::Value {
    let out = run_ok(Command::new("sfdisk").arg("--json").arg(img));
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["partitiontable"].clone()
}

/// sfdisk's view of the image agrees with the layout and with what fill reported.
fn check_sfdisk(img: &Path, layout: &Layout, filled: &FilledImage) {
    let t = sfdisk_json(img);
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), layout.partitions.len(), "{t}");
    match layout.table {
        TableKind::Mbr => {
            assert_eq!(t["label"], "dos");
            assert_eq!(
                t["id"].as_str().unwrap().to_lowercase(),
                format!("0x{}", filled.table.disk_id)
            );
        }
        _ => {
            assert_eq!(t["label"], "gpt");
            assert_eq!(
                t["id"].as_str().unwrap().to_lowercase(),
                filled.table.disk_id
            );
            // The backup GPT sits at the very end of the disk.
            assert_eq!(
                t["lastlba"].as_u64().unwrap(),
                filled.disk_size / 512 - 34,
                "{t}"
            );
        }
    }
    for ((j, spec), fp) in parts.iter().zip(&layout.partitions).zip(&filled.partitions) {
        assert_eq!(j["start"].as_u64().unwrap() * 512, fp.start_bytes, "{j}");
        assert_eq!(j["size"].as_u64().unwrap() * 512, fp.size_bytes, "{j}");
        assert_eq!(fp.start_bytes % layout.align.0, 0);
        match layout.table {
            TableKind::Mbr => {
                assert_eq!(
                    u8::from_str_radix(j["type"].as_str().unwrap(), 16).unwrap(),
                    spec.mbr_type_byte()
                );
                assert_eq!(
                    j["bootable"].as_bool().unwrap_or(false),
                    spec.bootable,
                    "{j}"
                );
                assert_eq!(
                    fp.partuuid,
                    format!("{}-{:02x}", filled.table.disk_id, fp.index)
                );
            }
            _ => {
                assert_eq!(
                    j["type"].as_str().unwrap().to_lowercase(),
                    spec.gpt_type_guid().unwrap()
                );
                assert_eq!(j["uuid"].as_str().unwrap().to_lowercase(), fp.partuuid);
                assert_eq!(j["name"].as_str().unwrap(), spec.name);
                let attrs = j["attrs"].as_str().unwrap_or("");
                assert_eq!(attrs.contains("LegacyBIOSBootable"), spec.bootable, "{j}");
            }
        }
    }
}

/// fsck.vfat -n / e2fsck -fn clean; blkid shows the labels and UUIDs fill reported.
fn check_filesystems(img: &Path, filled: &FilledImage) {
    for p in &filled.partitions {
        match p.fs {
            Fs::Fat32 => {
                let d = tempfile::tempdir().unwrap();
                let part = d.path().join("part.img");
                extract(img, p.start_bytes, p.size_bytes, &part);
                run_ok(Command::new("fsck.vfat").arg("-n").arg(&part));
                let b = blkid(img, p.start_bytes, p.size_bytes);
                assert_eq!(b["TYPE"], "vfat", "{b:?}");
                assert_eq!(b["VERSION"], "FAT32", "{b:?}");
                assert_eq!(Some(&b["UUID"]), p.fs_uuid.as_ref(), "{b:?}");
                assert_eq!(b.get("LABEL"), p.label.as_ref(), "{b:?}");
            }
            Fs::Ext4 => {
                Ext4::new(img, p.start_bytes).fsck().unwrap();
                let b = blkid(img, p.start_bytes, p.size_bytes);
                assert_eq!(b["TYPE"], "ext4", "{b:?}");
                assert_eq!(Some(&b["UUID"]), p.fs_uuid.as_ref(), "{b:?}");
                assert_eq!(b.get("LABEL"), p.label.as_ref(), "{b:?}");
            }
            Fs::None => {}
        }
    }
}

fn check_ext4_equals(img: &Path, offset: u64, src: &Path) {
    let mut want = tree::scan(src).unwrap();
    let root = want.nodes.get_mut("/").unwrap();
    (root.uid, root.gid) = (0, 0); // root_owner=0:0
    let mut got = Ext4::new(img, offset).dump_tree().unwrap();
    got.remove("/lost+found");
    let diff = want.diff(&got);
    assert!(
        diff.is_empty(),
        "ext4 differs from {}: {diff:#?}",
        src.display()
    );
    let kinds: std::collections::BTreeSet<_> = got.nodes.values().map(|n| n.kind).collect();
    if is_root() {
        assert!(
            kinds.contains(&tree::Kind::CharDevice) && kinds.contains(&tree::Kind::BlockDevice)
        );
        assert_eq!(got.nodes["/dev/big"].rdev, Some((259, 65536)));
        assert_eq!(
            (
                got.nodes["/etc/os-release"].uid,
                got.nodes["/etc/os-release"].gid
            ),
            (1000, 1000)
        );
    } else {
        eprintln!("not root: device nodes and owners were not part of the comparison");
    }
    assert_eq!(
        got.nodes["/usr/bin/tool-link"].hardlink_of.as_deref(),
        Some("/usr/bin/tool")
    );
    assert_eq!(got.nodes["/usr/bin/tool"].mode, 0o4755);
    assert_eq!(got.nodes["/tmp"].mode, 0o1777);
    assert!(got.nodes["/etc/slow-link"].target.as_ref().unwrap().len() > 60);
}

fn check_fat_equals(img: &Path, offset: u64, src: &Path) {
    let d = tempfile::tempdir().unwrap();
    Fat::new(img, offset).extract_all(d.path()).unwrap();
    let want = tree::scan(src).unwrap().content_only();
    let got = tree::scan(d.path()).unwrap().content_only();
    // Compare names, kinds, sizes and contents (FAT has no owners or modes).
    let diff = want.diff(&got);
    assert!(diff.is_empty(), "FAT differs: {diff:#?}");
}

/// No inode time in the ext4 is later than the epoch (ctime comes from the tree otherwise).
fn check_times_clamped(img: &Path, offset: u64, paths: &[&str]) {
    let dev = Ext4::new(img, offset).device();
    for p in paths {
        let out = run_ok(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat \"{p}\""))
                .arg(&dev),
        );
        for l in out.lines() {
            for key in ["ctime:", "atime:", "mtime:", "crtime:"] {
                if let Some(rest) = l.trim().strip_prefix(key) {
                    let hex = rest
                        .trim()
                        .split(':')
                        .next()
                        .unwrap()
                        .trim_start_matches("0x");
                    let t = i64::from_str_radix(hex, 16).unwrap();
                    assert!(t <= EPOCH, "{p}: {key} {t} is after {EPOCH}");
                }
            }
        }
    }
}

#[test]
fn rpi_image_agrees_reads_back_and_reproduces() {
    let d = tempfile::tempdir().unwrap();
    let (boot, root) = (d.path().join("boot"), d.path().join("root"));
    boot_tree(&boot);
    root_tree(&root);
    let layout = rpi(64 * MIB);
    let img = d.path().join("rpi.img");
    let filled = raw_image::fill(
        &layout,
        &trees(&[("boot", &boot), ("root", &root)]),
        "seed-1",
        EPOCH,
        &img,
    )
    .unwrap();
    assert_eq!(
        filled.partitions[1].partuuid,
        format!("{}-02", filled.table.disk_id)
    );
    // The root is sized to fit: content + overhead + 64 MiB headroom, aligned.
    let rootp = filled.partition("root").unwrap();
    assert!(
        rootp.size_bytes >= 64 * MIB + 3 * MIB && rootp.size_bytes < 160 * MIB,
        "{}",
        rootp.size_bytes
    );
    assert_eq!(filled.disk_size, rootp.start_bytes + rootp.size_bytes);
    check_sfdisk(&img, &layout, &filled);
    check_filesystems(&img, &filled);
    check_ext4_equals(&img, rootp.start_bytes, &root);
    check_fat_equals(&img, filled.partitions[0].start_bytes, &boot);
    check_times_clamped(
        &img,
        rootp.start_bytes,
        &[
            "/",
            "/etc/hostname",
            "/usr/bin/tool",
            "/etc/slow-link",
            "/tmp",
        ],
    );
    // Sparse: far fewer blocks than the disk size.
    let used = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&img).unwrap()) * 512;
    assert!(
        used < filled.disk_size / 4,
        "{used} of {}",
        filled.disk_size
    );

    // Again, from a fresh copy of the trees (new inodes, new ctimes): the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let copy = d.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&root)
            .arg(&boot)
            .arg(&copy),
    );
    let img2 = d.path().join("rpi2.img");
    let filled2 = raw_image::fill(
        &layout,
        &trees(&[("boot", &copy.join("boot")), ("root", &copy.join("root"))]),
        "seed-1",
        EPOCH,
        &img2,
    )
    .unwrap();
    assert_eq!(filled, filled2);
    assert_eq!(sha256(&img), sha256(&img2));
    // A different seed: different ids, different bytes.
    let img3 = d.path().join("rpi3.img");
    let filled3 = raw_image::fill(
        &layout,
        &trees(&[("boot", &boot), ("root", &root)]),
        "seed-2",
        EPOCH,
        &img3,
    )
    .unwrap();
    assert_ne!(filled3.table.disk_id, filled.table.disk_id);
    assert_ne!(filled3.partitions[1].fs_uuid, filled.partitions[1].fs_uuid);
    assert_ne!(sha256(&img), sha256(&img3));
}

fn ab_case(table: TableKind) {
    let d = tempfile::tempdir().unwrap();
    let (boot, root) = (d.path().join("boot"), d.path().join("root"));
    boot_tree(&boot);
    root_tree(&root);
    let layout = ab(table);
    let img = d.path().join("ab.img");
    let filled = raw_image::fill(
        &layout,
        &trees(&[("boot", &boot), ("root-a", &root)]),
        "ab",
        EPOCH,
        &img,
    )
    .unwrap();
    assert_eq!(filled.disk_size, 512 * MIB);
    let data = filled.partition("data").unwrap();
    // `rest` runs to the last aligned byte before the backup GPT (or the disk end for MBR).
    assert_eq!(
        data.start_bytes + data.size_bytes,
        511 * MIB + if table == TableKind::Mbr { MIB } else { 0 }
    );
    check_sfdisk(&img, &layout, &filled);
    check_filesystems(&img, &filled);
    check_ext4_equals(&img, filled.partition("root-a").unwrap().start_bytes, &root);
    check_fat_equals(&img, filled.partitions[0].start_bytes, &boot);
    // root-b is an empty file system.
    let b = Ext4::new(&img, filled.partition("root-b").unwrap().start_bytes);
    let names: Vec<String> = b
        .list_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["lost+found"]);
    if table == TableKind::HybridMbr {
        assert!(filled.table.hybrid_mbr);
        assert_eq!(filled.table.mbr_entries.len(), 1);
        assert_eq!(
            filled.table.mbr_entries[0].start_bytes,
            filled.partitions[0].start_bytes
        );
    }
    let mut uuids: Vec<_> = filled
        .partitions
        .iter()
        .map(|p| p.partuuid.clone())
        .collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 4);
}

#[test]
fn ab_mbr() {
    ab_case(TableKind::Mbr);
}

#[test]
fn ab_gpt() {
    ab_case(TableKind::Gpt);
}

#[test]
fn ab_hybrid_mbr() {
    ab_case(TableKind::HybridMbr);
}

/// Every short GPT type name maps to the GUID util-linux's sfdisk knows by that name (a typo in
/// a GUID would still agree with itself in `check_sfdisk`, but not with sfdisk's own table).
#[test]
fn gpt_type_names_agree_with_sfdisk() {
    let out = run_ok(Command::new("sfdisk").args(["--label", "gpt", "-T"]));
    let known: std::collections::HashMap<String, String> = out
        .lines()
        .filter_map(|l| {
            let (guid, name) = l.trim().split_once(char::is_whitespace)?;
            Some((guid.to_lowercase(), name.trim().to_string()))
        })
        .collect();
    let want = [
        ("esp", "EFI System"),
        ("linux", "Linux filesystem"),
        ("linux-root-arm64", "Linux root (ARM-64)"),
        ("linux-root-arm", "Linux root (ARM)"),
        ("linux-root-x86-64", "Linux root (x86-64)"),
        ("linux-home", "Linux home"),
        ("linux-swap", "Linux swap"),
        ("basic-data", "Microsoft basic data"),
        ("bios-boot", "BIOS boot"),
    ];
    assert_eq!(raw_image::layout::GPT_TYPES.len(), want.len());
    for (short, name) in want {
        let guid = raw_image::layout::GPT_TYPES
            .iter()
            .find(|(s, _)| *s == short)
            .unwrap_or_else(|| panic!("{short} missing"))
            .1;
        assert_eq!(
            known.get(guid).map(String::as_str),
            Some(name),
            "{short} = {guid}"
        );
    }
}

/// A kept ext4 partition is put into place on the next fill with the same tree key: the same
/// bytes as making it, one file kept per partition, and a new key makes (and keeps) it again.
#[test]
fn kept_partition_is_reused_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let (boot, root) = (d.path().join("boot"), d.path().join("root"));
    boot_tree(&boot);
    root_tree(&root);
    let layout = rpi(64 * MIB);
    let keep = d.path().join("keep");
    let fill = |name: &str, boot: &Path, key: Option<&str>| {
        let img = d.path().join(name);
        let inputs = raw_image::Inputs {
            trees: trees(&[("boot", boot), ("root", &root)]),
            blobs: Default::default(),
            reuse: key.map(|k| raw_image::keep::Reuse {
                dir: keep.clone(),
                trees: [("root".to_string(), k.to_string())].into(),
            }),
            defer_sync: false,
        };
        let f = raw_image::fill_with(&layout, &inputs, "seed-1", EPOCH, &img).unwrap();
        (img, f)
    };
    let (plain, fp) = fill("plain.img", &boot, None);
    assert!(fp.partitions.iter().all(|p| !p.reused && p.kept.is_none()));
    let (first, f1) = fill("first.img", &boot, Some("tree-v1"));
    let r1 = f1.partition("root").unwrap();
    assert!(!r1.reused);
    let kept = r1.kept.clone().unwrap();
    let part = kept.with_extension("part");
    assert!(part.is_file(), "{}", part.display());
    assert_eq!(std::fs::metadata(&part).unwrap().len(), r1.size_bytes);
    // The kept file is sparse like the partition it copies.
    let alloc = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&part).unwrap()) * 512;
    assert!(alloc < r1.size_bytes / 2, "{alloc} of {}", r1.size_bytes);
    assert!(f1.partition("boot").unwrap().kept.is_none());
    assert_eq!(sha256(&plain), sha256(&first));

    // Same key, a different boot tree: the root is copied into place, the image equals a fill
    // made from scratch.
    let boot2 = d.path().join("boot2");
    run_ok(Command::new("cp").arg("-a").arg(&boot).arg(&boot2));
    std::fs::write(boot2.join("user-data"), "#cloud-config\nhostname: other\n").unwrap();
    let (second, f2) = fill("second.img", &boot2, Some("tree-v1"));
    let r2 = f2.partition("root").unwrap();
    assert!(r2.reused);
    assert_eq!(r2.kept.as_ref(), Some(&kept));
    let (plain2, _) = fill("plain2.img", &boot2, None);
    assert_eq!(sha256(&second), sha256(&plain2));
    check_filesystems(&second, &f2);
    check_ext4_equals(&second, r2.start_bytes, &root);
    // Holes stay holes: the copy allocates no more than the made image.
    let blocks = |p: &Path| std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p).unwrap());
    assert!(
        blocks(&second) <= blocks(&plain2) + 8,
        "{} vs {}",
        blocks(&second),
        blocks(&plain2)
    );

    // A new key: made again, and the old kept file (and its sidecars) removed.
    std::fs::write(kept.with_extension("sidecar"), "x").unwrap();
    let (_, f3) = fill("third.img", &boot, Some("tree-v2"));
    let r3 = f3.partition("root").unwrap();
    assert!(!r3.reused);
    assert_ne!(r3.kept.as_ref(), Some(&kept));
    assert!(!part.exists() && !kept.with_extension("sidecar").exists());
    assert_eq!(raw_image::keep::list(&keep).len(), 1);

    // Deferred: the new copy is not used before it is sealed.
    let inputs = |key: &str| raw_image::Inputs {
        trees: trees(&[("boot", &boot), ("root", &root)]),
        blobs: Default::default(),
        reuse: Some(raw_image::keep::Reuse {
            dir: keep.clone(),
            trees: [("root".to_string(), key.to_string())].into(),
        }),
        defer_sync: true,
    };
    let img4 = d.path().join("fourth.img");
    let f4 = raw_image::fill_with(&layout, &inputs("tree-v3"), "seed-1", EPOCH, &img4).unwrap();
    let r4 = f4.partition("root").unwrap();
    let pending = r4.pending.clone().expect("a pending kept copy");
    assert!(pending.is_file() && !r4.reused);
    let part4 = r4.kept.clone().unwrap().with_extension("part");
    assert!(!part4.exists());
    raw_image::keep::seal(&f4).unwrap();
    assert!(part4.is_file() && !pending.exists());
    assert_eq!(raw_image::keep::list(&keep).len(), 1);
    let f5 = raw_image::fill_with(
        &layout,
        &inputs("tree-v3"),
        "seed-1",
        EPOCH,
        &d.path().join("fifth.img"),
    )
    .unwrap();
    assert!(f5.partition("root").unwrap().reused);
    assert_eq!(sha256(&img4), sha256(&d.path().join("fifth.img")));
    assert_eq!(sha256(&img4), sha256(&plain));
}

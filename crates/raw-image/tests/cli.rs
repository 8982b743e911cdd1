//! The `raw-image` binary: the blank artifact (reproducible, and buildable as an unprivileged
//! user), `fill`, and bad input as exit code 2 with a message naming the partition and numbers.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_raw-image");

fn write_layout(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("layout.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

const RPI: &str = "name: rpi-test\ntable: mbr\npartitions:\n  - name: boot\n    label: RASPIFIRM\n    fs: fat32\n    size: 64MiB\n    bootable: true\n    mbr-type: 0x0c\n  - name: root\n    label: RASPIROOT\n    fs: ext4\n    size: fit+32MiB\n";

fn build(layout: &Path, cache: &Path, out: &Path, unprivileged: bool) -> String {
    let mut c = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    c.arg("build")
        .arg("--layout")
        .arg(layout)
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache);
    c.env("SOURCE_DATE_EPOCH", "1700000000");
    run_ok(&mut c);
    let sums = std::fs::read_to_string(out.join("rpi-test-raw.img.zst.sha256")).unwrap();
    let (sha, name) = sums.trim().split_once("  ").unwrap();
    assert_eq!(name, "rpi-test-raw.img.zst");
    assert_eq!(
        sha256(&out.join(name)),
        sha,
        "the .sha256 matches the image"
    );
    assert!(out.join("manifest.json").is_file());
    sha.to_string()
}

#[test]
fn blank_artifact_is_reproducible_and_needs_no_privileges() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let layout = write_layout(d.path(), RPI);
    std::fs::set_permissions(&layout, std::fs::Permissions::from_mode(0o644)).unwrap();
    let a = build(
        &layout,
        &d.path().join("cache-a"),
        &d.path().join("out-a"),
        false,
    );
    // A second build in another cache (no reuse): the same bytes.
    let b = build(
        &layout,
        &d.path().join("cache-b"),
        &d.path().join("out-b"),
        false,
    );
    assert_eq!(a, b);
    // Cached: same again, and the cache entry was reused.
    let a2 = build(
        &layout,
        &d.path().join("cache-a"),
        &d.path().join("out-a2"),
        false,
    );
    assert_eq!(a, a2);
    // The decompressed image has the layout's table and clean, labelled file systems.
    let img = d.path().join("x.img");
    run_ok(
        Command::new("zstd")
            .args(["-dqf"])
            .arg(d.path().join("out-a/rpi-test-raw.img.zst"))
            .arg("-o")
            .arg(&img),
    );
    let t = raw_image::inspect::read_table(&img).unwrap();
    assert_eq!(t.partitions.len(), 2);
    assert!(t.partitions[0].bootable);
    assert_eq!(
        blkid(
            &img,
            t.partitions[0].start_bytes,
            t.partitions[0].size_bytes
        )["LABEL"],
        "RASPIFIRM"
    );
    raw_image::ext4::Ext4::new(&img, t.partitions[1].start_bytes)
        .fsck()
        .unwrap();

    if !is_root() {
        artifact::skip_test("not root: cannot demonstrate the setpriv (unprivileged) build here");
        return;
    }
    // As nobody, with a copy of the binary it can read, a fresh cache and output folder.
    let bin_dir = d.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = d.path().join("nobody");
    std::fs::create_dir(&nobody).unwrap();
    std::os::unix::fs::chown(&nobody, Some(65534), Some(65534)).unwrap();
    let c = build(&layout, &nobody.join("cache"), &nobody.join("out"), true);
    assert_eq!(a, c, "the unprivileged build gives the same bytes");
    let md = std::fs::metadata(nobody.join("out/rpi-test-raw.img.zst")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), 65534);
}

#[test]
fn fill_command_and_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    root_tree(&root);
    let layout = write_layout(d.path(), RPI);
    let img = d.path().join("x.img");
    let out = run_ok(
        Command::new(BIN)
            .arg("fill")
            .arg("--layout")
            .arg(&layout)
            .arg("--tree")
            .arg(format!("root={}", root.display()))
            .arg("--out")
            .arg(&img)
            .arg("--json"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"][1]["name"], "root");
    assert!(v["partitions"][1]["partuuid"]
        .as_str()
        .unwrap()
        .ends_with("-02"));

    let bad = |layout_text: &str, extra: &[&str]| -> String {
        let l = write_layout(d.path(), layout_text);
        let o = Command::new(BIN)
            .arg("fill")
            .arg("--layout")
            .arg(&l)
            .args(extra)
            .arg("--out")
            .arg(d.path().join("bad.img"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        assert!(!d.path().join("bad.img").exists(), "nothing half-written");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Content larger than its partition.
    let fat_tree = d.path().join("fat");
    std::fs::create_dir(&fat_tree).unwrap();
    std::fs::write(fat_tree.join("big.bin"), vec![1u8; 20 << 20]).unwrap();
    let small = RPI.replace("size: fit+32MiB", "size: 16MiB");
    let e = bad(&small, &["--tree", &format!("root={}", fat_tree.display())]);
    assert!(
        e.contains(r#"layout rpi-test: partition "root": content needs about"#),
        "{e}"
    );
    assert!(
        e.contains("but the partition is 16777216 bytes (16 MiB)"),
        "{e}"
    );
    let e = bad(
        RPI,
        &[
            "--tree",
            &format!("boot={}", {
                std::fs::write(fat_tree.join("big2.bin"), vec![2u8; 50 << 20]).unwrap();
                fat_tree.display()
            }),
        ],
    );
    assert!(
        e.contains(r#"partition "boot": content needs about"#)
            && e.contains("but the partition is 67108864 bytes (64 MiB)"),
        "{e}"
    );
    // FAT label over 11 characters.
    let e = bad(&RPI.replace("RASPIFIRM", "RASPIFIRMWARE"), &[]);
    assert!(
        e.contains(
            r#"partition "boot": FAT label "RASPIFIRMWARE" has 13 characters; at most 11 fit"#
        ),
        "{e}"
    );
    // A partition past the end of the disk.
    let e = bad(
        &RPI.replace("table: mbr", "table: mbr\ndisk-size: 80MiB"),
        &[],
    );
    assert!(
        e.contains(r#"partition "root" ends at byte"#)
            && e.contains("past the end of the disk: the disk is 83886080 bytes (80 MiB)"),
        "{e}"
    );
    // A tree for a partition the layout lacks.
    let e = bad(RPI, &["--tree", &format!("data={}", root.display())]);
    assert!(e.contains(r#"a tree is given for partition "data", which the layout does not have (it has boot, root)"#), "{e}");
    // Unknown key in the layout file.
    let e = bad(&RPI.replace("table: mbr", "table: mbr\nbogus: 1"), &[]);
    assert!(e.contains("bogus"), "{e}");
    // A blob over the partition table.
    let e = bad(
        &(RPI.to_string() + "blobs:\n  - name: spl\n    offset: 256\n    max-size: 1KiB\n"),
        &[],
    );
    assert!(
        e.contains(r#"blob "spl" (bytes 256..1280) overlaps the MBR (bytes 440..512)"#),
        "{e}"
    );
}

//! The read API on images made by the host tools (sfdisk, mkfs.vfat --offset, mke2fs -E offset=):
//! partition tables, FAT through mtools and ext4 through debugfs, all at offsets in one file.

use std::path::Path;
use std::process::Command;

use raw_image::ext4::Ext4;
use raw_image::fat::Fat;
use raw_image::inspect::{read_table, Kind, PartType};
use raw_image::tree::{self, Kind as NodeKind};

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sfdisk(img: &Path, script: &str) {
    use std::io::Write;
    let mut c = Command::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const MIB: u64 = 1 << 20;

#[test]
fn mbr_made_by_sfdisk_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    sfdisk(
        &img,
        "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=20480, type=c, bootable\nstart=22528, size=40960, type=83\n",
    );
    let t = read_table(&img).unwrap();
    assert_eq!(t.kind, Kind::Mbr);
    assert_eq!(t.disk_id, "1234abcd");
    assert_eq!(t.partitions.len(), 2);
    let p1 = &t.partitions[0];
    assert_eq!(
        (p1.index, p1.start_bytes, p1.size_bytes),
        (1, MIB, 10 * MIB)
    );
    assert_eq!(p1.partuuid, "1234abcd-01");
    assert_eq!(p1.part_type, PartType::Mbr(0x0c));
    assert!(p1.bootable);
    let p2 = &t.partitions[1];
    assert_eq!((p2.start_bytes, p2.size_bytes), (11 * MIB, 20 * MIB));
    assert_eq!(p2.partuuid, "1234abcd-02");
    assert!(!p2.bootable);
}

#[test]
fn mbr_logical_partitions_read_back() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    sfdisk(
        &img,
        "label: dos\nlabel-id: 0xdeadbeef\nstart=2048, size=8192, type=c\nstart=10240, size=40960, type=5\nstart=12288, size=8192, type=83\nstart=22528, size=8192, type=83\n",
    );
    let t = read_table(&img).unwrap();
    let idx: Vec<(u32, u64, String)> = t
        .partitions
        .iter()
        .map(|p| (p.index, p.start_bytes, p.partuuid.clone()))
        .collect();
    assert_eq!(
        idx,
        vec![
            (1, MIB, "deadbeef-01".to_string()),
            (5, 6 * MIB, "deadbeef-05".to_string()),
            (6, 11 * MIB, "deadbeef-06".to_string()),
        ]
    );
}

#[test]
fn gpt_made_by_sfdisk_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    sfdisk(
        &img,
        "label: gpt\nlabel-id: 0B3E5A5F-1C2D-4E6F-8A9B-0C1D2E3F4A5B\n\
         start=2048, size=20480, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=11111111-2222-4333-8444-555555555555, name=boot, attrs=LegacyBIOSBootable\n\
         start=22528, size=40960, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE, name=root\n",
    );
    let t = read_table(&img).unwrap();
    assert_eq!(t.kind, Kind::Gpt);
    assert_eq!(t.sector_size, 512);
    assert_eq!(t.disk_id, "0b3e5a5f-1c2d-4e6f-8a9b-0c1d2e3f4a5b");
    assert!(!t.hybrid_mbr);
    let p1 = &t.partitions[0];
    assert_eq!(
        (p1.index, p1.start_bytes, p1.size_bytes),
        (1, MIB, 10 * MIB)
    );
    assert_eq!(p1.partuuid, "11111111-2222-4333-8444-555555555555");
    assert_eq!(
        p1.part_type,
        PartType::Gpt("c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into())
    );
    assert_eq!(p1.name, "boot");
    assert!(p1.bootable);
    let p2 = &t.partitions[1];
    assert_eq!(p2.partuuid, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    assert_eq!(p2.name, "root");
    assert!(!p2.bootable);
}

#[test]
fn not_a_partition_table() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("blank.img");
    std::fs::write(&img, vec![0u8; 4096]).unwrap();
    let e = read_table(&img).unwrap_err().to_string();
    assert!(e.contains("blank.img") && e.contains("55aa"), "{e}");
    std::fs::write(&img, [0u8; 100]).unwrap();
    let e = read_table(&img).unwrap_err().to_string();
    assert!(e.contains("image ends before byte 512"), "{e}");
}

#[test]
fn fat_at_an_offset() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(80 * MIB)
        .unwrap();
    sh(Command::new("mkfs.vfat")
        .args([
            "-F",
            "32",
            "-s",
            "1",
            "--invariant",
            "-i",
            "a1b2c3d4",
            "-n",
            "BOOT",
        ])
        .args(["--offset", "2048"])
        .arg(&img)
        .arg((64 * 1024).to_string()));
    let fat = Fat::new(&img, MIB).with_mtime(1_700_000_000);
    assert!(fat.list("/").unwrap().is_empty());
    fat.write("/config.txt", b"arm_64bit=1\n").unwrap();
    fat.write("/overlays/deep/Long Name.dtbo", &[0u8, 1, 2, 255])
        .unwrap();
    assert_eq!(fat.read("/config.txt").unwrap(), b"arm_64bit=1\n");
    assert_eq!(
        fat.read("/overlays/deep/Long Name.dtbo").unwrap(),
        vec![0u8, 1, 2, 255]
    );
    // Replace in place.
    fat.write("/config.txt", b"arm_64bit=1\nenable_uart=1\n")
        .unwrap();
    assert_eq!(
        fat.read("/config.txt").unwrap(),
        b"arm_64bit=1\nenable_uart=1\n"
    );
    let root = fat.list("/").unwrap();
    let names: Vec<(&str, bool, u64)> = root
        .iter()
        .map(|e| (e.name.as_str(), e.is_dir, e.size))
        .collect();
    assert_eq!(
        names,
        vec![("config.txt", false, 26), ("overlays", true, 0)]
    );
    let deep = fat.list("/overlays/deep").unwrap();
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].name, "Long Name.dtbo");
    assert_eq!(deep[0].size, 4);
    assert!(fat.exists("/overlays/deep").unwrap());
    assert!(fat.exists("/overlays/deep/Long Name.dtbo").unwrap());
    assert!(
        fat.exists("/CONFIG.TXT").unwrap(),
        "FAT names are case-insensitive"
    );
    assert!(!fat.exists("/nope.txt").unwrap());
    let e = fat.read("/nope.txt").unwrap_err().to_string();
    assert!(e.contains("nope.txt") && e.contains("not found"), "{e}");
    fat.mkdir_p("/a/b/c").unwrap();
    fat.mkdir_p("/a/b/c").unwrap();
    assert!(fat.exists("/a/b/c").unwrap());
    fat.remove("/config.txt").unwrap();
    fat.remove("/overlays").unwrap();
    assert!(!fat.exists("/config.txt").unwrap());
    assert!(!fat.exists("/overlays").unwrap());
    // Clean, and the stamps are the given time (2023-11-14).
    sh(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", img.display(), MIB))
        .arg("::/a"))
    .contains("2023-11-14")
    .then_some(())
    .expect("mtime stamp");
    let part = d.path().join("part.img");
    sh(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", part.display()))
        .args(["bs=1M", "skip=1", "count=64", "status=none"]));
    sh(Command::new("fsck.vfat").arg("-n").arg(&part));
}

#[test]
fn fat_copy_tree_and_extract() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(40 * MIB)
        .unwrap();
    sh(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "--invariant", "-i", "a1b2c3d4"])
        .args(["--offset", "2048"])
        .arg(&img)
        .arg((36 * 1024).to_string()));
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("overlays")).unwrap();
    std::fs::write(src.join("cmdline.txt"), b"console=tty1 root=PARTUUID=x\n").unwrap();
    std::fs::write(src.join("overlays/a.dtbo"), vec![7u8; 70000]).unwrap();
    let fat = Fat::new(&img, MIB).with_mtime(1_700_000_000);
    fat.copy_tree(&src, "/").unwrap();
    let out = d.path().join("out");
    fat.extract_all(&out).unwrap();
    let want = tree::scan(&src).unwrap().content_only();
    let got = tree::scan(&out).unwrap().content_only();
    assert_eq!(want.diff(&got), Vec::<String>::new());
}

#[test]
fn ext4_at_an_offset() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("tree");
    std::fs::create_dir_all(src.join("etc/deep dir")).unwrap();
    std::fs::write(src.join("etc/hostname"), b"black-pearl\n").unwrap();
    std::fs::write(src.join("etc/deep dir/big"), vec![42u8; 300_000]).unwrap();
    std::fs::hard_link(src.join("etc/hostname"), src.join("etc/hostname2")).unwrap();
    std::os::unix::fs::symlink("hostname", src.join("etc/fast")).unwrap();
    let long = "x".repeat(120);
    std::os::unix::fs::symlink(&long, src.join("etc/slow")).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("etc/hostname"),
        std::fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    let img = d.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(40 * MIB)
        .unwrap();
    sh(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-E",
            "offset=3145728,root_owner=0:0",
            "-d",
        ])
        .arg(&src)
        .arg(&img)
        .arg("32M"));
    let fs = Ext4::new(&img, 3 * MIB);
    assert_eq!(fs.read_file("/etc/hostname").unwrap(), b"black-pearl\n");
    assert_eq!(
        fs.read_file("/etc/deep dir/big").unwrap(),
        vec![42u8; 300_000]
    );
    assert_eq!(fs.read_file("/empty").unwrap(), b"");
    let st = fs.stat("/etc/hostname").unwrap();
    assert_eq!(st.kind, NodeKind::File);
    assert_eq!(st.mode, 0o4751);
    assert_eq!(st.links, 2);
    assert_eq!(st.size, 12);
    assert_eq!(
        fs.stat("/etc/fast").unwrap().target.as_deref(),
        Some("hostname")
    );
    assert_eq!(
        fs.stat("/etc/slow").unwrap().target.as_deref(),
        Some(long.as_str())
    );
    assert_eq!(fs.stat("/etc").unwrap().kind, NodeKind::Dir);
    assert!(fs.exists("/etc/deep dir").unwrap());
    assert!(!fs.exists("/etc/nope").unwrap());
    let e = fs.read_file("/etc/nope").unwrap_err().to_string();
    assert!(e.contains("/etc/nope") && e.contains("not found"), "{e}");
    let e = fs.read_file("/etc").unwrap_err().to_string();
    assert!(e.contains("not a file"), "{e}");
    let names: Vec<String> = fs
        .list_dir("/etc")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["deep dir", "fast", "hostname", "hostname2", "slow"]
    );
    let mut got = fs.dump_tree().unwrap();
    got.remove("/lost+found");
    let mut want = tree::scan(&src).unwrap();
    // The test runs as any user; mke2fs -d copies the tree's owners, root_owner sets `/`.
    want.nodes.get_mut("/").unwrap().uid = 0;
    want.nodes.get_mut("/").unwrap().gid = 0;
    let diff = want.diff(&got);
    assert!(diff.is_empty(), "{diff:#?}");
    fs.fsck().unwrap();
}

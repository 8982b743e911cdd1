//! The image stage end to end on a small fixture system (no network, no chroot): a tree shaped
//! like a system artifact (os-release, dpkg status, raspi-firmware boot files with the right
//! PARTUUIDs) is packed, assembled into a bundle with real mkfs.vfat/mcopy/mke2fs, and the
//! bundle is checked with the real tools: `bmaptool copy` reproduces the image, `sha256sum -c`
//! accepts SHA256SUMS, pyspdxtools accepts the SBOM. Assembling again — from a fresh unpack and
//! from the cached tree — gives the same image bytes, and the cached tree comes back unchanged.
//!
//! Needs the host tools of scripts/setup-host.sh (dosfstools, mtools, e2fsprogs, bmap-tools,
//! the pyspdxtools venv); a missing tool fails the test with its name.

use std::path::{Path, PathBuf};
use std::process::Command;

use image_assembler::bootcfg::{Boot, PartRef};
use image_assembler::bundle::Compression;
use image_assembler::image::{self, ImageInputs, ImageSpec, Preload};

const EPOCH: i64 = 1_700_000_000;

fn layout() -> raw_image::layout::Layout {
    serde_json::from_value(serde_json::json!({
        "name": "fixture",
        "table": "mbr",
        "align": "1MiB",
        "partitions": [
            {"name": "boot", "label": "RASPIFIRM", "fs": "fat32", "size": "40MiB", "bootable": true, "mbr-type": 12},
            {"name": "root", "label": "RASPIROOT", "fs": "ext4", "size": "fit+8MiB", "mbr-type": 131}
        ]
    }))
    .unwrap()
}

fn spec(hostname: &str, preload: Vec<Preload>) -> ImageSpec {
    let layout = layout();
    let ids = image::partuuids(&layout, "fixture-seed");
    let part = |name: &str, mount: &str, fs: &str, label: &str| PartRef {
        name: name.into(),
        mount: Some(mount.into()),
        fs: fs.into(),
        partuuid: ids.iter().find(|(n, _)| n == name).unwrap().1.clone(),
        label: Some(label.into()),
    };
    ImageSpec {
        image_name: "drydock-fixture".into(),
        board: "fixture".into(),
        board_description: "a test board".into(),
        version: "0.1.0".into(),
        hostname: hostname.into(),
        root_hostname: "black-pearl".into(),
        seed_files: vec![
            (
                "user-data".into(),
                format!("#cloud-config\nhostname: {hostname}\n"),
            ),
            ("meta-data".into(), "instance-id: fixture\n".into()),
        ],
        preload,
        compression: Compression::Zstd,
        parts: vec![
            part("boot", "/boot/firmware", "vfat", "RASPIFIRM"),
            part("root", "/", "ext4", "RASPIROOT"),
        ],
        boot: Boot::RpiFirmware {
            cmdline: vec!["console=tty1".into(), "cgroup_memory=1".into()],
            config_txt: vec!["arm_64bit=1".into()],
        },
        layout,
        disk_seed: "fixture-seed".into(),
        epoch: EPOCH,
    }
}

/// A tree like the system stage leaves, packed as its tarball.
fn system_tarball(dir: &Path, root_partuuid: &str) -> PathBuf {
    let t = dir.join("system");
    let w = |p: &str, c: &str| {
        let p = t.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    };
    w(
        "usr/lib/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_CODENAME=trixie\n",
    );
    std::os::unix::fs::symlink("../usr/lib/os-release", t.join("etc-os-release-tmp")).unwrap();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::rename(t.join("etc-os-release-tmp"), t.join("etc/os-release")).unwrap();
    w("etc/hostname", "localhost\n");
    w("etc/machine-id", "");
    w(
        "var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nArchitecture: arm64\nVersion: 5.2.37-2\n\n\
         Package: libstdc++6\nStatus: install ok installed\nArchitecture: arm64\nSource: gcc-14 (14.2.0-19)\nVersion: 14.2.0-19\n",
    );
    w("usr/bin/tool", &"x".repeat(300_000));
    std::fs::hard_link(t.join("usr/bin/tool"), t.join("usr/bin/tool-alias")).unwrap();
    w("boot/vmlinuz-6.12.1-arm64", "kernel");
    w("boot/firmware/vmlinuz-6.12.1-arm64", "kernel");
    w("boot/firmware/initrd.img-6.12.1-arm64", "initrd");
    w(
        "boot/firmware/cmdline.txt",
        &format!(" console=tty1 root=PARTUUID={root_partuuid} rw fsck.repair=yes net.ifnames=0  rootwait cgroup_memory=1\n"),
    );
    w(
        "boot/firmware/config.txt",
        "arm_64bit=1\nenable_uart=1\nkernel=vmlinuz-6.12.1-arm64\ninitramfs initrd.img-6.12.1-arm64\n",
    );
    let tarball = dir.join("system.tar.zst");
    image_assembler::tarball::pack(&t, &tarball, EPOCH).unwrap();
    tarball
}

fn need(tool: &str) -> PathBuf {
    artifact::cmd::which(tool)
        .unwrap_or_else(|| panic!("{tool} is not installed: run scripts/setup-host.sh"))
}

fn build(
    spec: &ImageSpec,
    tarball: &Path,
    preload: Vec<PathBuf>,
    cache: Option<&Path>,
    out: &Path,
) -> image::ImageReport {
    std::fs::create_dir_all(out).unwrap();
    let work = tempfile::tempdir_in(out.parent().unwrap()).unwrap();
    let inputs = ImageInputs {
        system_tarball: tarball.to_path_buf(),
        preload_files: preload,
        tree_cache: cache.map(|c| (c.to_path_buf(), "system-digest".to_string())),
    };
    image::build(spec, &inputs, work.path(), out, &|_| {}).unwrap()
}

#[test]
fn bundle_is_valid_and_reproducible() {
    for t in ["mkfs.vfat", "mcopy", "mke2fs", "bmaptool", "sha256sum"] {
        need(t);
    }
    let d = tempfile::tempdir().unwrap();
    let ids = image::partuuids(&layout(), "fixture-seed");
    let tarball = system_tarball(d.path(), &ids[1].1);
    let archive = d.path().join("hello.tar");
    std::fs::write(&archive, b"pretend docker save output").unwrap();
    let preload = vec![Preload {
        name: "hello.tar".into(),
        sha256: artifact::sha256_bytes(b"pretend docker save output"),
    }];
    let s = spec("black-pearl", preload);

    let out1 = d.path().join("out1");
    let r1 = build(&s, &tarball, vec![archive.clone()], None, &out1);
    let img = out1.join("drydock-fixture.img");
    assert_eq!(artifact::sha256_file(&img).unwrap().0, r1.image_sha256);
    for f in [
        "drydock-fixture.img.zst",
        "drydock-fixture.img.bmap",
        "drydock-fixture.spdx.json",
        "SHA256SUMS",
    ] {
        assert!(out1.join(f).is_file(), "{f} missing");
    }

    // The settings are in the partitions.
    let root_part = r1.partitions.iter().find(|p| p.name == "root").unwrap();
    let boot_part = r1.partitions.iter().find(|p| p.name == "boot").unwrap();
    let ext4 = raw_image::ext4::Ext4::new(&img, root_part.start_bytes);
    assert_eq!(ext4.read_file("/etc/hostname").unwrap(), b"black-pearl\n");
    let os = String::from_utf8(ext4.read_file("/etc/os-release").unwrap()).unwrap();
    assert!(
        os.contains("DRYDOCK_BOARD=\"fixture\"") && os.contains("IMAGE_VERSION=\"0.1.0\""),
        "{os}"
    );
    assert!(ext4
        .read_file("/etc/cloud/cloud.cfg.d/99-drydock.cfg")
        .is_ok());
    assert!(
        !ext4.exists("/boot/firmware/config.txt").unwrap(),
        "boot files leaked into the root fs"
    );
    let fat = raw_image::fat::Fat::new(&img, boot_part.start_bytes);
    assert_eq!(
        fat.read("/user-data").unwrap(),
        b"#cloud-config\nhostname: black-pearl\n"
    );
    assert_eq!(
        fat.read("/preload/hello.tar").unwrap(),
        b"pretend docker save output"
    );
    assert!(fat.exists("/config.txt").unwrap());

    // sha256sum -c accepts SHA256SUMS, which lists every bundle file.
    let o = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out1)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);

    // bmaptool copy with our bmap writes the same bytes.
    let copy = d.path().join("copy.img");
    let o = Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(out1.join("drydock-fixture.img.bmap"))
        .arg(&img)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bmaptool: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(artifact::sha256_file(&copy).unwrap().0, r1.image_sha256);

    // A real SPDX validator accepts the SBOM, which lists the dpkg packages.
    let sbom_text = std::fs::read_to_string(out1.join("drydock-fixture.spdx.json")).unwrap();
    assert!(sbom_text.contains("pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=arm64"));
    let tool = image_assembler::sbom::pyspdxtools()
        .expect("pyspdxtools not found: run scripts/setup-host.sh");
    let o = Command::new(tool)
        .arg("-i")
        .arg(out1.join("drydock-fixture.spdx.json"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // Reproducible: through the tree cache, twice (unpack, then reuse), same bytes; the cached
    // tree is back to the system's content afterwards.
    let cache = d.path().join("trees");
    let r2 = build(
        &s,
        &tarball,
        vec![archive.clone()],
        Some(&cache),
        &d.path().join("out2"),
    );
    let r3 = build(
        &s,
        &tarball,
        vec![archive.clone()],
        Some(&cache),
        &d.path().join("out3"),
    );
    assert_eq!(r2.image_sha256, r1.image_sha256);
    assert_eq!(r3.image_sha256, r1.image_sha256);
    // The second build copied the root file system the first one kept.
    let reused = |r: &image::ImageReport, name: &str| {
        r.partitions.iter().find(|p| p.name == name).unwrap().reused
    };
    assert!(!reused(&r2, "root") && reused(&r3, "root"));
    // The compressed copy too: one frame per partition, the kept root's frame copied.
    assert!(r1.compressed_sha256.is_some());
    assert_eq!(r2.compressed_sha256, r1.compressed_sha256);
    assert_eq!(r3.compressed_sha256, r1.compressed_sha256);
    assert!(!reused(&r3, "boot"));
    assert!(
        r3.timings.iter().any(|(n, _)| n == "lease"),
        "{:?}",
        r3.timings
    );
    let tree = cache.join("system-digest/tree");
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/hostname")).unwrap(),
        "localhost\n"
    );
    assert!(std::fs::read_link(tree.join("etc/os-release")).is_ok());
    assert!(!tree.join("boot/firmware/user-data").exists());
    assert!(!tree.join("boot/firmware/preload").exists());
    assert!(tree.join("boot/firmware/config.txt").exists());

    // A kept root file system changed on disk: the build that copied it refuses the image
    // (its bytes hash differently from the record) and removes it; the next build makes it again.
    let kept = std::fs::read_dir(cache.join("system-digest/kept"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "part"))
        .expect("a kept root file system");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options().write(true).open(&kept).unwrap();
        f.write_all_at(b"DAMAGED!", 1024 + 0x78).unwrap(); // the superblock's volume name
    }
    let work = tempfile::tempdir_in(d.path()).unwrap();
    let out_bad = d.path().join("out-bad");
    std::fs::create_dir_all(&out_bad).unwrap();
    let inputs = ImageInputs {
        system_tarball: tarball.clone(),
        preload_files: vec![archive.clone()],
        tree_cache: Some((cache.clone(), "system-digest".to_string())),
    };
    let e = format!(
        "{:#}",
        image::build(&s, &inputs, work.path(), &out_bad, &|_| {}).unwrap_err()
    );
    assert!(e.contains("changed on disk"), "{e}");
    assert!(!kept.exists());
    assert!(!out_bad.join("SHA256SUMS").exists());
    let r6 = build(
        &s,
        &tarball,
        vec![archive.clone()],
        Some(&cache),
        &d.path().join("out6"),
    );
    assert!(!reused(&r6, "root"));
    assert_eq!(r6.image_sha256, r1.image_sha256);
    assert_eq!(r6.compressed_sha256, r1.compressed_sha256);

    // Another hostname: another image, from the same cached tree and the same kept root file
    // system (the hostname is in the seed; the root names the board's default); the same bytes
    // as building it without the cache.
    let other = spec("other-ship", vec![]);
    let r4 = build(
        &other,
        &tarball,
        vec![],
        Some(&cache),
        &d.path().join("out4"),
    );
    assert_ne!(r4.image_sha256, r1.image_sha256);
    assert!(reused(&r4, "root"));
    let r5 = build(&other, &tarball, vec![], None, &d.path().join("out5"));
    assert_eq!(r5.image_sha256, r4.image_sha256);
    assert_eq!(r5.compressed_sha256, r4.compressed_sha256);
    let img4 = d.path().join("out4/drydock-fixture.img");
    let root4 = r4.partitions.iter().find(|p| p.name == "root").unwrap();
    let boot4 = r4.partitions.iter().find(|p| p.name == "boot").unwrap();
    assert_eq!(
        raw_image::ext4::Ext4::new(&img4, root4.start_bytes)
            .read_file("/etc/hostname")
            .unwrap(),
        b"black-pearl\n"
    );
    assert_eq!(
        raw_image::fat::Fat::new(&img4, boot4.start_bytes)
            .read("/user-data")
            .unwrap(),
        b"#cloud-config\nhostname: other-ship\n"
    );
}

#[test]
fn wrong_partuuid_in_the_system_is_refused() {
    need("mke2fs");
    let d = tempfile::tempdir().unwrap();
    let tarball = system_tarball(d.path(), "deadbeef-02");
    let s = spec("black-pearl", vec![]);
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir_in(d.path()).unwrap();
    let inputs = ImageInputs {
        system_tarball: tarball,
        preload_files: vec![],
        tree_cache: None,
    };
    let e = format!(
        "{:#}",
        image::build(&s, &inputs, work.path(), &out, &|_| {}).unwrap_err()
    );
    assert!(e.contains("root=PARTUUID="), "{e}");
    assert!(!out.join("drydock-fixture.img").exists());
}

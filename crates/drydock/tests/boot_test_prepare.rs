//! `drydock boot-test`'s preparation on a small real image, hermetically: the copy is grown to the
//! profile's disk size, configured through its seed (SSH key, hostname, non-expiring password),
//! and kernel, initrd and device tree come out of the boot partition; the original is untouched.

mod common;

use common::*;
use drydock::boot_test::prepare;
use drydock::checks::testkit;

#[test]
fn prepare_grows_configures_and_unpacks_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_fixture(dir.path());
    let before = artifact::sha256_file(&img).unwrap();
    let profile = testkit::rpi_profile();
    let work = dir.path().join("work");
    let p = prepare(&profile, &img, &work).unwrap();

    assert_eq!(
        artifact::sha256_file(&img).unwrap(),
        before,
        "the image itself is not changed"
    );
    let disk = &p.launch.disk;
    assert_eq!(std::fs::metadata(disk).unwrap().len(), 4 << 30);
    assert!(p.disk_size.is_power_of_two());
    // Boot files equal the image's.
    let f = fat(&img, 1);
    let v = testkit::V;
    assert_eq!(
        std::fs::read(&p.launch.kernel).unwrap(),
        f.read(&format!("vmlinuz-{v}")).unwrap()
    );
    assert_eq!(
        std::fs::read(p.launch.initrd.as_ref().unwrap()).unwrap(),
        f.read(&format!("initrd.img-{v}")).unwrap()
    );
    assert_eq!(
        std::fs::read(p.launch.dtb.as_ref().unwrap()).unwrap(),
        f.read("bcm2837-rpi-3-b.dtb").unwrap()
    );
    assert_eq!(p.kernel_version, v);
    // The command line: the image's root, the QEMU console only.
    let root = raw_image::inspect::read_table(&img)
        .unwrap()
        .partition(2)
        .unwrap()
        .partuuid
        .clone();
    assert!(
        p.launch.append.contains(&format!("root=PARTUUID={root}")),
        "{}",
        p.launch.append
    );
    assert!(
        p.launch.append.ends_with("console=ttyS1,115200"),
        "{}",
        p.launch.append
    );
    assert_eq!(
        p.launch.append.matches("console=").count(),
        1,
        "{}",
        p.launch.append
    );
    // The copy's seed: the test key, the test hostname, no forced password change.
    let cf = fat(disk, 1);
    let ud = String::from_utf8(cf.read("user-data").unwrap()).unwrap();
    assert!(ud.contains(&p.key.public), "{ud}");
    assert!(ud.contains(&format!("hostname: {}", p.hostname)), "{ud}");
    assert!(ud.contains("expire: false"), "{ud}");
    let md = String::from_utf8(cf.read("meta-data").unwrap()).unwrap();
    let md0 = String::from_utf8(f.read("meta-data").unwrap()).unwrap();
    assert_ne!(md, md0, "instance-id changes with the seed");
    // raspi3b's NIC is usb0 in the guest (the profile's qemu.interface): DHCP on that.
    assert_eq!(
        profile.qemu.as_ref().unwrap().interface.as_deref(),
        Some("usb0")
    );
    let nc = String::from_utf8(cf.read("network-config").unwrap()).unwrap();
    assert!(nc.contains("  usb0:\n    dhcp4: true"), "{nc}");
    // The copy's FAT is still clean.
    let part = raw_image::inspect::read_table(disk)
        .unwrap()
        .partition(1)
        .unwrap()
        .clone();
    let dumped = dir.path().join("p1.fat");
    let mut src = std::fs::File::open(disk).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    src.seek(SeekFrom::Start(part.start_bytes)).unwrap();
    let mut buf = vec![0u8; part.size_bytes as usize];
    src.read_exact(&mut buf).unwrap();
    std::fs::write(&dumped, &buf).unwrap();
    let out = std::process::Command::new("fsck.vfat")
        .arg("-n")
        .arg(&dumped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The QEMU command line names the machine, the SD card and the loopback-only forward.
    let mut l = p.launch.clone();
    l.ssh_port = 2299;
    let line = artifact::cmd::display(&l.command());
    assert!(line.contains("-M raspi3b"), "{line}");
    assert!(line.contains("if=sd"), "{line}");
    assert!(line.contains("hostfwd=tcp:127.0.0.1:2299-:22"), "{line}");

    // The fixture preloads nothing; with the test container in the boot partition's preload
    // folder (where the assembler puts it), prepare sees it.
    assert!(!p.image_has_preload);
    let f = fat(&img, 1);
    f.mkdir_p("preload").unwrap();
    f.write(
        &format!("preload/{}", drydock::test_container::ARCHIVE),
        b"archive",
    )
    .unwrap();
    let p = prepare(&profile, &img, &dir.path().join("work2")).unwrap();
    assert!(p.image_has_preload);
}

#[test]
fn refuses_boards_without_qemu_and_bad_disk_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_fixture(dir.path());
    let mut profile = testkit::rpi_profile();
    if let Some(q) = profile.qemu.as_mut() {
        q.disk_size = drydock::size::Size(3 << 30);
    }
    let e = prepare(&profile, &img, &dir.path().join("w1")).unwrap_err();
    assert!(format!("{e:#}").contains("not a power of two"), "{e:#}");
    profile.qemu = None;
    let e = prepare(&profile, &img, &dir.path().join("w2")).unwrap_err();
    assert!(format!("{e:#}").contains("no `qemu:` section"), "{e:#}");
}

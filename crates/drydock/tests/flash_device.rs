//! `drydock flash` onto loop devices the tests make (the one place in drydock where loop devices
//! are used): the written device equals the image; with a bmap only the mapped bytes are written
//! (counted by drydock and by the kernel's own write statistics of the loop device); a mounted
//! device, a too-small device and the device holding `/` are refused with a clear message, and so
//! is writing without --yes when there is no terminal; settings are applied to the written card.
//! Needs root; skipped otherwise.

mod configure_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use configure_fixture::*;

/// Whether loop devices can be made here. Outside CI a machine without them skips these tests
/// (saying so); under CI (`CI=true`, as root) a missing capability is a failure, not a skip.
fn can_loop() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        "flash tests on loop devices need root"
    } else if !Path::new("/dev/loop-control").exists() {
        "no /dev/loop-control (no loop device support)"
    } else {
        return true;
    };
    artifact::skip_test(why);
    false
}

/// A loop device over a file, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn new(backing: &Path, partscan: bool) -> Loop {
        let mut c = Command::new("losetup");
        c.args(["-f", "--show"]);
        if partscan {
            c.arg("-P");
        }
        let o = run_ok(c.arg(backing));
        let dev = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        Loop { dev }
    }

    fn name(&self) -> String {
        self.dev.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// Sectors written, from /sys/block/NAME/stat (field 7).
    fn sectors_written(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/sys/block/{}/stat", self.name())).unwrap();
        s.split_whitespace().nth(6).unwrap().parse().unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A mount, unmounted on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn sparse_file(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// sha256 of the first `len` bytes of a device.
fn sha256_prefix(dev: &Path, len: u64) -> String {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(dev).unwrap().take(len);
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

fn flash(img: &Path, dev: &Path) -> Command {
    let mut c = drydock();
    c.arg("flash").arg(img).arg("--device").arg(dev);
    c
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn flashed_device_equals_the_image_and_bmap_writes_only_mapped_bytes() {
    if !can_loop() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let want = sha256(&img);

    // Whole image, no bmap.
    let back = d.path().join("card1");
    sparse_file(&back, 128 << 20);
    let lo = Loop::new(&back, false);
    let before = lo.sectors_written();
    // The checked invocation: `drydock flash IMAGE --device PATH --yes`.
    let o = run_ok(flash(&img, &lo.dev).args(["--yes", "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        sha256_prefix(&lo.dev, IMAGE_SIZE),
        want,
        "device equals the image"
    );
    assert_eq!(s["bytes_written"], IMAGE_SIZE);
    assert_eq!(s["verified_bytes"], IMAGE_SIZE);
    assert_eq!((lo.sectors_written() - before) * 512, IMAGE_SIZE);

    // With a bmap beside the image: only the mapped bytes.
    run_ok(
        Command::new("bmaptool")
            .args(["-q", "create"])
            .arg(&img)
            .arg("-o")
            .arg(d.path().join("x.bmap")),
    );
    let back2 = d.path().join("card2");
    sparse_file(&back2, 128 << 20);
    let lo2 = Loop::new(&back2, false);
    let before = lo2.sectors_written();
    let o = run_ok(flash(&img, &lo2.dev).args(["--yes", "--force-non-removable", "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mapped = s["mapped_bytes"].as_u64().unwrap();
    assert!(mapped < IMAGE_SIZE / 2, "fixture is sparse: {mapped}");
    assert_eq!(s["bytes_written"].as_u64().unwrap(), mapped);
    assert_eq!(s["verified_bytes"].as_u64().unwrap(), mapped);
    assert_eq!(
        (lo2.sectors_written() - before) * 512,
        mapped,
        "the kernel saw exactly the mapped bytes written"
    );
    // The card was blank, so it now equals the image.
    assert_eq!(sha256_prefix(&lo2.dev, IMAGE_SIZE), want);
}

#[test]
fn compressed_image_with_settings_on_the_way() {
    if !can_loop() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    sh(&format!(
        "cd {} && bmaptool -q create x.img -o x.img.bmap && zstd -q x.img -o x.img.zst",
        d.path().display()
    ));
    let back = d.path().join("card");
    sparse_file(&back, 128 << 20);
    let lo = Loop::new(&back, true);
    let key = ssh_pubkey(d.path());
    let o = run_ok(
        flash(&d.path().join("x.img.zst"), &lo.dev)
            .args(["--yes", "--force-non-removable", "--hostname", "flashed-1"])
            .arg("--ssh-key")
            .arg(&key),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("verified") && out.contains("configured"),
        "{out}"
    );
    let ud = mread(&lo.dev, BOOT_START, "user-data").unwrap();
    assert!(ud.contains("hostname: flashed-1"), "{ud}");
    assert!(
        ud.contains(std::fs::read_to_string(&key).unwrap().trim()),
        "{ud}"
    );
    let o = fsck_boot(&lo.dev, BOOT_START, BOOT_SIZE, d.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn mounted_device_is_refused() {
    if !can_loop() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let card = d.path().join("card");
    std::fs::copy(&img, &card).unwrap();
    let lo = Loop::new(&card, true);
    // The ext4 root partition (every kernel running this test has ext4; not all have vfat).
    let part = PathBuf::from(format!("{}p2", lo.dev.display()));
    for i in 0..50 {
        if part.exists() {
            break;
        }
        if i == 10 {
            // Kernels without the partition-table parser drydock's image uses: add the
            // partitions from user space (BLKPG).
            let _ = Command::new("partx").arg("-a").arg(&lo.dev).status();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run_ok(
        Command::new("mount")
            .arg("-o")
            .arg("ro")
            .arg(&part)
            .arg(&mnt),
    );
    let _m = Mounted(mnt.clone());
    let before = sha256(&card);
    let o = flash(&img, &lo.dev)
        .args(["--yes", "--force-non-removable"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is mounted at") && err.contains(&mnt.display().to_string()),
        "{err}"
    );
    drop(_m);
    drop(lo);
    assert_eq!(sha256(&card), before, "nothing written");
}

#[test]
fn too_small_and_unconfirmed_are_refused() {
    if !can_loop() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let back = d.path().join("small");
    sparse_file(&back, 32 << 20);
    let lo = Loop::new(&back, false);
    let o = flash(&img, &lo.dev)
        .args(["--yes", "--force-non-removable"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("smaller than the image") && err.contains("32.0 MiB"),
        "{err}"
    );

    // (Non-removable fixed disks are refused without --force-non-removable: a unit test in
    // blockdev.rs, since the only fixed disk here is the one under `/`.)
    let back = d.path().join("big");
    sparse_file(&back, 128 << 20);
    let lo = Loop::new(&back, false);
    let before = lo.sectors_written();
    // Without --yes and without a terminal: refused, nothing written.
    let o = flash(&img, &lo.dev)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(lo.sectors_written(), before, "nothing written");
}

/// The disk holding `/` is refused. Run without --yes and with stdin not a terminal, so that even
/// if the refusal failed, the confirmation would stop the write (and O_EXCL would too: the kernel
/// holds a mounted disk exclusively).
#[test]
fn the_disk_holding_root_is_refused() {
    if !can_loop() {
        return;
    }
    let o = run_ok(Command::new("findmnt").args(["-n", "-o", "SOURCE", "/"]));
    let src = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !src.starts_with("/dev/") {
        artifact::skip_test(&format!("/ is on {src:?}, not a block device"));
        return;
    }
    // The whole disk under the root file system's device.
    let o = run_ok(
        Command::new("lsblk")
            .args(["-n", "-s", "-r", "-o", "NAME,TYPE"])
            .arg(&src),
    );
    let disk = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, t)| *t == "disk")
        .map(|(n, _)| format!("/dev/{n}"))
        .next()
        .unwrap_or(src);
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("x.img");
    image(&img, false);
    let o = flash(&img, Path::new(&disk))
        .arg("--force-non-removable")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("holds the running system"), "{disk}: {err}");
}

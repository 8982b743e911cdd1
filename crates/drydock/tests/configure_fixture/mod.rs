//! Fixture images for the configure and flash tests, built by the tests themselves: a sparse
//! 100 MiB file with a partition table written by sfdisk, a FAT32 boot partition made in place with
//! `mkfs.vfat --offset` holding drydock's default seed and a config.txt, and an ext4 root made in
//! place with `mke2fs -E offset=`. No network, no loop devices, no root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BOOT_START: u64 = 2048 * 512;
pub const BOOT_SIZE: u64 = 64 << 20;
pub const ROOT_START: u64 = BOOT_START + BOOT_SIZE;
pub const IMAGE_SIZE: u64 = 100 << 20;

pub fn drydock() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drydock"));
    c.env("DRYDOCK_LOG", "warn");
    c
}

pub fn run_ok(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn sh(script: &str) -> Output {
    run_ok(Command::new("sh").args(["-ec", script]))
}

/// Build the fixture image at `path` (MBR, or GPT with an EFI system partition).
pub fn image(path: &Path, gpt: bool) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(IMAGE_SIZE).unwrap();
    drop(f);
    let table = if gpt {
        format!(
            "label: gpt\nstart=2048, size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart={}, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
            BOOT_SIZE / 512,
            ROOT_START / 512
        )
    } else {
        format!(
            "label: dos\nlabel-id: 0x1234abcd\nstart=2048, size={}, type=c, bootable\nstart={}, size=65536, type=83\n",
            BOOT_SIZE / 512,
            ROOT_START / 512
        )
    };
    let mut c = Command::new("sfdisk");
    c.args(["-q", "--no-reread", "--no-tell-kernel"]).arg(path);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    run_ok(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-s", "1", "-n", "RASPIFIRM", "-i", "12345678"])
            .arg(format!("--offset={}", BOOT_START / 512))
            .arg(path)
            .arg((BOOT_SIZE / 1024).to_string()),
    );
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "RASPIROOT"])
            .arg("-E")
            .arg(format!("offset={ROOT_START}"))
            .arg(path)
            .arg("32M"),
    );
    let fat = raw_image::fat::Fat::new(path, BOOT_START).with_mtime(1_700_000_000);
    let seed = drydock::seed::Seed::default_for("pirate", "hypriot", "black-pearl").unwrap();
    for (name, text) in seed.files() {
        fat.write(name, text.as_bytes()).unwrap();
    }
    fat.write("config.txt", b"arm_64bit=1\nenable_uart=1\n")
        .unwrap();
    fat.write(
        "cmdline.txt",
        b"console=serial0,115200 root=PARTUUID=1234abcd-02 ds=nocloud;s=file:///boot/firmware/\n",
    )
    .unwrap();
}

/// Read a file of the fixture's boot partition with the mcopy CLI (independently of drydock).
pub fn mread(img: &Path, offset: u64, name: &str) -> Option<String> {
    let o = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{offset}", img.display()))
        .arg(format!("::/{name}"))
        .arg("-")
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8(o.stdout).unwrap())
}

/// `fsck.vfat -n` on the boot partition, copied out of the image with dd.
pub fn fsck_boot(img: &Path, offset: u64, size: u64, work: &Path) -> Output {
    let part = work.join("boot-part.img");
    run_ok(
        Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", part.display()))
            .args(["bs=1M", "status=none", "iflag=skip_bytes,count_bytes"])
            .arg(format!("skip={offset}"))
            .arg(format!("count={size}")),
    );
    let o = Command::new("fsck.vfat")
        .arg("-n")
        .arg(&part)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&part);
    o
}

pub fn sha256(path: &Path) -> String {
    artifact::sha256_file(path).unwrap().0
}

/// A real ed25519 public key made by ssh-keygen (or a fixed one when ssh-keygen is missing).
pub fn ssh_pubkey(dir: &Path) -> PathBuf {
    let key = dir.join("id_ed25519");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@drydock", "-f"])
        .arg(&key)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let pubk = dir.join("id_ed25519.pub");
    if !ok {
        std::fs::write(
            &pubk,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIl6dB2C1cjHcFkvu5dbYF3bG+3QdTk1ZCvo1WOt3Rcq test@drydock\n",
        )
        .unwrap();
    }
    pubk
}

/// The extracted cloud-init tree `scripts/setup-host.sh` prepares.
pub fn cloud_init_dir() -> PathBuf {
    let dir = std::env::var_os("DRYDOCK_CLOUD_INIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("drydock/cloud-init")
        });
    let pkg = dir.join("usr/lib/python3/dist-packages");
    assert!(
        pkg.join("cloudinit/__init__.py").is_file(),
        "cloud-init is not extracted at {}: run scripts/setup-host.sh (it downloads Debian's cloud-init .deb and extracts it; cloud-init is not installed on the host)",
        dir.display()
    );
    pkg
}

/// Run cloud-init's own CLI (`python3 -m cloudinit.cmd.main ARGS`) from the extracted tree, with
/// Debian's python3 (its dist-packages hold cloud-init's dependencies).
pub fn cloud_init(args: &[&str]) -> Output {
    let pkg = cloud_init_dir();
    Command::new("/usr/bin/python3")
        .env("PYTHONPATH", &pkg)
        .args(["-m", "cloudinit.cmd.main"])
        .args(args)
        .output()
        .unwrap()
}

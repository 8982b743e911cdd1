//! `drydock test` on a small real image, hermetically: the unit tests' complete rpi-arm64 fixture
//! trees filled into an image file by raw-image (table, FAT and ext4 made in place), with a bundle
//! made by the assembler's format code (SHA256SUMS, .bmap, SPDX SBOM) and a manifest. The binary
//! reads it with the real readers (mtools, debugfs, blkid, fsck). It passes; then copies broken
//! with real tools (mtools, debugfs -w) fail the checks that name each corruption.

mod common;

use std::path::Path;

use common::*;

#[test]
fn fixture_image_passes_then_each_corruption_fails_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let img = build_fixture(dir.path());
    eprintln!("fixture built in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let (out, checks) = run_test(&img, "rpi-arm64");
    eprintln!("drydock test ran in {:?}", t.elapsed());
    let bad = failed(&checks);
    assert!(bad.is_empty(), "good fixture image failed:\n{}", show(&bad));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(checks.len() >= 150, "{} checks", checks.len());
    // Every group HypriotOS had is there.
    for g in [
        "partition table and filesystems",
        "boot files",
        "kernel and modules",
        "container engine",
        "users and security",
        "cloud-init seed",
        "os-release",
        "fstab and cmdline",
        "manifest and SBOM",
    ] {
        assert!(checks.iter().any(|c| c.group == g), "no group {g}");
    }

    type Corrupt = fn(&Path) -> Vec<String>;
    let cases: Vec<(&str, Corrupt)> = vec![
        ("wrong-partuuid", |p| {
            corrupt_wrong_partuuid(p)
                .into_iter()
                .map(String::from)
                .collect()
        }),
        ("ssh-host-key", |p| {
            corrupt_ssh_host_key(p)
                .into_iter()
                .map(String::from)
                .collect()
        }),
        ("root-unlocked", |p| {
            corrupt_root_unlocked(p)
                .into_iter()
                .map(String::from)
                .collect()
        }),
        ("missing-dtb", |p| {
            corrupt_missing_dtb(p, "bcm2711-rpi-4-b.dtb")
        }),
    ];
    for (what, corrupt) in cases {
        // A copy in its own folder, with no bundle: only the image's own checks count here.
        let copy = copy_image(&img, &dir.path().join(what));
        let must_fail = corrupt(&copy);
        let (out, checks) = run_test(&copy, "rpi-arm64");
        assert_eq!(out.status.code(), Some(1), "{what}: exit status");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let bad: Vec<&Check> = failed(&checks)
            .into_iter()
            .filter(|c| c.group != "manifest and SBOM")
            .collect();
        for name in &must_fail {
            assert!(
                bad.iter().any(|c| &c.name == name),
                "{what}: check {name:?} did not fail; failures:\n{}",
                show(&bad)
            );
            assert!(
                stderr.contains(name.as_str()),
                "{what}: stderr does not name {name:?}: {stderr}"
            );
        }
        // Nothing unrelated fails (root-unlocked also trips the "no password baked in" check;
        // a removed dtb also fails its "matches the kernel package's copy" twin).
        let allowed = |c: &Check| {
            must_fail.contains(&c.name)
                || (what == "root-unlocked" && c.name == "no account has a password baked in")
                || (what == "wrong-partuuid" && c.name.contains("ROOTPART"))
                || (what == "missing-dtb" && c.name.starts_with("bcm2711-rpi-4-b.dtb matches"))
        };
        let unrelated: Vec<&Check> = bad.iter().copied().filter(|c| !allowed(c)).collect();
        assert!(
            unrelated.is_empty(),
            "{what}: unrelated failures:\n{}",
            show(&unrelated)
        );
    }
}

#[test]
fn human_report_names_failures_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let img = build_fixture(dir.path());
    corrupt_ssh_host_key(&img);
    let out = drydock()
        .args(["test", "--board", "rpi-arm64"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("== users and security"), "{stdout}");
    assert!(
        stdout.contains("FAIL  no SSH host keys in the image: found /etc/ssh/ssh_host_ed25519_key"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  root password locked"), "{stdout}");
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = drydock()
        .args(["test", "--board", "rpi-arm64"])
        .arg(dir.path().join("missing.img"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.img"));
    let zst = dir.path().join("x.img.zst");
    std::fs::write(&zst, b"x").unwrap();
    let out = drydock().args(["test"]).arg(&zst).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compressed image"));
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let out = drydock()
        .args(["test", "--board", "rpi-arm64"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("partition table"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

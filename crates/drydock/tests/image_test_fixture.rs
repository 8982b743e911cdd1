//! `drydock test` on a small real image, hermetically: the unit tests' complete rpi-arm64 fixture
//! trees filled into an image file by raw-image (table, FAT and ext4 made in place), with a bundle
//! made by the assembler's format code (SHA256SUMS, .bmap, SPDX SBOM) and a manifest. The binary
//! reads it with the real readers (mtools, debugfs, blkid, fsck). It passes; then copies broken
//! with real tools (mtools, debugfs -w) fail the checks that name each corruption.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use drydock::checks::testkit;

const SEED: &str = "drydock-image-test-fixture";
const EPOCH: i64 = 1_700_000_000;

/// Build the fixture bundle in `dir`; returns the image path.
fn build_fixture(dir: &Path) -> PathBuf {
    let profile = testkit::rpi_profile();
    let ids = raw_image::build::Ids::new(SEED);
    let disk_id = format!("{:08x}", ids.mbr_disk_id());
    let d = testkit::good_disk_with_id(&disk_id);
    let mut trees = BTreeMap::new();
    for (name, idx) in [("boot", 1u32), ("root", 2u32)] {
        let t = dir.join(format!("tree-{name}"));
        let part = d.parts.iter().find(|p| p.part.index == idx).unwrap();
        part.tree.materialize(&t).unwrap();
        trees.insert(name.to_string(), t);
    }
    let img = dir.join("drydock-rpi-arm64.img");
    let layout = drydock::artifacts::raw_image::layout(&profile).unwrap();
    let filled = raw_image::build::fill(&layout, &trees, SEED, EPOCH, &img).unwrap();
    assert_eq!(
        filled.partition("root").unwrap().partuuid,
        format!("{disk_id}-02")
    );

    // The bundle, with the assembler's own format code.
    let scan = image_assembler::bundle::scan(&img, None, 1).unwrap();
    std::fs::write(
        dir.join("drydock-rpi-arm64.img.bmap"),
        image_assembler::bmap::render(&scan.bmap).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("SHA256SUMS"),
        image_assembler::sums::render(&[("drydock-rpi-arm64.img".into(), scan.sha256.clone())]),
    )
    .unwrap();
    let pkgs = image_assembler::dpkg::parse_status(&testkit::dpkg_status()).unwrap();
    let info = image_assembler::sbom::ImageInfo {
        file_name: "drydock-rpi-arm64.img",
        sha256: &scan.sha256,
        version: "0.1.0",
        digest: &"d".repeat(64),
        epoch: EPOCH,
        tool: "drydock-0.1.0",
        namespace_base: "https://example.invalid/drydock/spdx",
    };
    let sbom = image_assembler::sbom::render(&info, &pkgs);
    std::fs::write(
        dir.join("drydock-rpi-arm64.spdx.json"),
        serde_json::to_string_pretty(&sbom).unwrap(),
    )
    .unwrap();
    let manifest = serde_json::json!({
        "board": "rpi-arm64",
        "version": "0.1.0",
        "artifacts": {"rootfs": "a".repeat(64), "kernel": "b".repeat(64), "raw-image": "c".repeat(64)},
        "packages": pkgs.iter().map(|p| serde_json::json!({"name": p.name, "version": p.version, "arch": p.arch})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    img
}

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

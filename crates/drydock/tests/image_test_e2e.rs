//! `drydock test` on the real default bundles (networked: `drydock build` from the shared cache,
//! run by scripts/test.sh after the assembler's own build test, so the bundles are cache hits):
//! both boards pass every check; copies of the rpi-arm64 image broken the four ways the checks
//! must catch fail exactly those checks.

mod common;

use std::path::Path;

use common::*;

fn passes(board: &str) {
    let img = e2e_bundle(board);
    let t = std::time::Instant::now();
    let (out, checks) = run_test(&img, board);
    let bad = failed(&checks);
    assert!(
        bad.is_empty(),
        "{board}: {} failed:\n{}",
        bad.len(),
        show(&bad)
    );
    assert!(out.status.success());
    let per_package = checks
        .iter()
        .filter(|c| c.name.starts_with("package ") && c.name.ends_with("in manifest and SBOM"))
        .count();
    eprintln!(
        "drydock test {board}: {} checks ({} per installed package, {} others), all pass, {:.1} s",
        checks.len(),
        per_package,
        checks.len() - per_package,
        t.elapsed().as_secs_f64()
    );
    assert!(
        checks.len() - per_package >= 150,
        "{} checks besides the per-package ones",
        checks.len() - per_package
    );
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn rpi_arm64_bundle_passes() {
    passes("rpi-arm64");
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn qemu_arm64_bundle_passes() {
    passes("qemu-arm64");
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn corrupted_rpi_arm64_copies_fail_the_named_checks() {
    let img = e2e_bundle("rpi-arm64");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
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
            corrupt_missing_dtb(p, "bcm2837-rpi-3-b.dtb")
        }),
    ];
    for (what, corrupt) in cases {
        let copy = copy_image(&img, &dir.path().join(what));
        let must_fail = corrupt(&copy);
        let (out, checks) = run_test(&copy, "rpi-arm64");
        assert_eq!(out.status.code(), Some(1), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let bad = failed(&checks);
        for name in &must_fail {
            let hit = bad.iter().find(|c| &c.name == name);
            assert!(
                hit.is_some(),
                "{what}: {name:?} did not fail; failures:\n{}",
                show(&bad)
            );
            assert!(
                stderr.contains(name.as_str()),
                "{what}: stderr does not name {name:?}"
            );
            eprintln!(
                "{what}: FAIL {name}: {}",
                hit.map(|c| c.detail.as_str()).unwrap_or("")
            );
        }
        let unrelated: Vec<&Check> = bad
            .iter()
            .copied()
            .filter(|c| c.group != "manifest and SBOM")
            .filter(|c| !must_fail.contains(&c.name))
            .filter(|c| {
                !(what == "root-unlocked" && c.name == "no account has a password baked in")
            })
            .filter(|c| !(what == "wrong-partuuid" && c.name.contains("ROOTPART")))
            .filter(|c| {
                !(what == "missing-dtb" && c.name.starts_with("bcm2837-rpi-3-b.dtb matches"))
            })
            .collect();
        assert!(
            unrelated.is_empty(),
            "{what}: unrelated failures:\n{}",
            show(&unrelated)
        );
    }
}

//! `drydock boot-test` on the real default bundles under QEMU (networked e2e, run by
//! scripts/test.sh): both boards boot, log in over SSH and run the preloaded container; an image
//! whose cmdline.txt names a root partition that does not exist fails within the timeout with
//! the reason, and the serial log is kept.

mod common;

use common::*;

fn boot_test(
    img: &std::path::Path,
    board: &str,
    work: &std::path::Path,
    timeout: u64,
) -> (std::process::Output, Vec<Check>) {
    let out = drydock()
        .args([
            "boot-test",
            "--json",
            "--board",
            board,
            "--timeout",
            &timeout.to_string(),
            "--work-dir",
        ])
        .arg(work)
        .arg(img)
        .output()
        .expect("running drydock boot-test");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let checks = parse_checks(&out);
    (out, checks)
}

fn boots(board: &str) {
    let img = e2e_bundle(board);
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-boot-{board}"));
    let (out, checks) = boot_test(&img, board, &work, 900);
    let bad = failed(&checks);
    assert!(bad.is_empty(), "{board}: boot-test failed:\n{}", show(&bad));
    assert!(out.status.success());
    for name in [
        "system reaches running",
        "root filesystem grew to the disk",
        "docker storage driver overlay2",
        "docker cgroup driver set",
        "preloaded drydock/boot-test:busybox loaded at first boot",
        "docker run drydock/boot-test:busybox prints the token",
    ] {
        assert!(
            checks.iter().any(|c| c.name == name && c.ok),
            "{board}: no passing {name:?}"
        );
    }
    assert!(checks
        .iter()
        .any(|c| c.name.starts_with("hostname is boottest-") && c.ok));
    assert!(
        work.join("serial.log").metadata().unwrap().len() > 0,
        "serial log kept"
    );
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn rpi_arm64_boots_in_raspi3b() {
    boots("rpi-arm64");
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn qemu_arm64_boots_in_virt() {
    boots("qemu-arm64");
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn wrong_root_fails_with_a_reason_and_keeps_the_serial_log() {
    let board = "qemu-arm64";
    let img = e2e_bundle(board);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let copy = copy_image(&img, &dir.path().join("bundle"));
    corrupt_wrong_partuuid(&copy);
    let work = dir.path().join("work");
    let t = std::time::Instant::now();
    let (out, checks) = boot_test(&copy, board, &work, 900);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(took.as_secs() < 900 + 120, "took {took:?}");
    let login = checks
        .iter()
        .find(|c| c.name.starts_with("reaches SSH login"))
        .expect("login check");
    assert!(!login.ok);
    assert!(
        login.detail.contains("root") || login.detail.contains("shell"),
        "reason: {}",
        login.detail
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reaches SSH login"), "{stderr}");
    assert!(
        stderr.contains("last lines of the serial console"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(work.join("serial.log")).unwrap();
    assert!(
        log.contains("0badc0de"),
        "the serial log shows the wrong root"
    );
    assert!(!work.join("disk.img").exists(), "the disk copy is removed");
    eprintln!(
        "unbootable image failed after {:.0} s: {}",
        took.as_secs_f64(),
        login.detail
    );
}

//! The `rootfs-builder` binary on bad input: hermetic (the only "mirror" is a closed port on the
//! loopback), so these run with plain `cargo test`.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rootfs-builder"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    // Nothing was published, whatever happened.
    let entries = cache.path().join("entries/rootfs");
    let published: Vec<_> = std::fs::read_dir(&entries)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(published.is_empty(), "{published:?}");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// An unknown arch or suite fails before any download: the mirror given is unreachable, and the
/// error is about the value, not the mirror (which would take the retries first).
#[test]
fn unknown_arch_and_suite_fail_before_download() {
    let (code, err) = run(&[
        "--arch",
        "sparc",
        "--mirror",
        "http://127.0.0.1:9/debian",
        "--retry-delay-ms",
        "5000",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("arch: \"sparc\" is not valid (expected one of arm64, armhf, amd64)"),
        "{err}"
    );
    assert!(!err.contains("127.0.0.1"), "{err}");

    let (code, err) = run(&["--suite", "buster", "--mirror", "http://127.0.0.1:9/debian"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "suite: \"buster\" is not valid (expected one of trixie, bookworm, forky, sid)"
        ),
        "{err}"
    );
}

#[test]
fn unreachable_mirror_fails_after_retries_naming_it() {
    let (code, err) = run(&[
        "--mirror",
        "http://127.0.0.1:9/debian",
        "--retries",
        "3",
        "--retry-delay-ms",
        "10",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("mirror http://127.0.0.1:9/debian unreachable after 3 attempts"),
        "{err}"
    );
    assert_eq!(err.matches("attempt ").count(), 3, "{err}");
}

#[test]
fn print_command_needs_no_network() {
    let o = Command::new(env!("CARGO_BIN_EXE_rootfs-builder"))
        .args([
            "--print-command",
            "--arch",
            "armhf",
            "--suite",
            "bookworm",
            "--packages",
            "sudo",
            "--mirror",
            "http://127.0.0.1:9/debian",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains(
            "mmdebstrap --mode=unshare --format=tar --variant=minbase --architectures=armhf"
        ),
        "{s}"
    );
    assert!(s.contains("--include=locales,sudo,tzdata"), "{s}");
    assert!(
        s.contains("bookworm rootfs.tar http://127.0.0.1:9/debian"),
        "{s}"
    );
}

//! The `image-assembler` binary refuses bad input artifacts by name, before any work.

use std::path::Path;
use std::process::Command;

use artifact::Manifest;

fn artifact(dir: &Path, kind: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let mut m = Manifest::new(kind, kind, "1", "arm64", &"d".repeat(64));
    m.add_files_from(dir).unwrap();
    m.write(dir).unwrap();
}

fn run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_image-assembler"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn corrupt_or_missing_artifacts_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s);
    artifact(
        &p("rootfs"),
        "rootfs",
        &[("rootfs-arm64.tar.zst", b"tarball bytes")],
    );
    artifact(&p("kernel"), "kernel", &[("linux-image.deb", b"deb bytes")]);
    artifact(
        &p("repo"),
        "deb-repo",
        &[
            ("key.asc", b"key"),
            ("dists/drydock/InRelease", b"Components: main\n"),
        ],
    );
    let spec = serde_json::json!({
        "name": "system-x", "arch": "arm64", "mirror-packages": [], "repo-packages": [],
        "repo-suite": "drydock", "repo-component": "main", "parts": [],
        "boot": {"kind": "direct", "cmdline": []}, "epoch": 0
    });
    std::fs::write(p("spec.json"), spec.to_string()).unwrap();
    let args = |rootfs: &str, kernel: &str| {
        vec![
            std::ffi::OsString::from("system"),
            "--spec".into(),
            p("spec.json").into_os_string(),
            "--rootfs".into(),
            p(rootfs).into_os_string(),
            "--kernel".into(),
            p(kernel).into_os_string(),
            "--deb-repo".into(),
            p("repo").into_os_string(),
            "--out".into(),
            p("out").into_os_string(),
        ]
    };
    // One flipped byte in the rootfs tarball (same size, so only hashing finds it).
    std::fs::write(p("rootfs/rootfs-arm64.tar.zst"), b"tarball bytez").unwrap();
    let a = args("rootfs", "kernel");
    let (ok, err) = run(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    assert!(!ok);
    assert!(
        err.contains("the rootfs artifact")
            && err.contains("is corrupt")
            && err.contains("rootfs-arm64.tar.zst: sha256"),
        "{err}"
    );
    assert!(
        !p("out").exists(),
        "work started before the inputs were checked"
    );
    // A missing kernel artifact.
    let a = args("rootfs", "no-kernel");
    let (ok, err) = run(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    assert!(!ok);
    assert!(
        err.contains("the kernel artifact") && err.contains("no-kernel") && err.contains("missing"),
        "{err}"
    );
}

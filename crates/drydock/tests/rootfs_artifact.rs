//! `drydock build-artifact rootfs --board rpi-arm64 --out DIR`, end to end (networked): the
//! profile's full rootfs, through the shared store, so a warm machine (or the image tests that
//! need the same rootfs) pays for it once.

use std::process::Command;

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn build_artifact_rootfs_rpi_arm64() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["build-artifact", "rootfs", "--board", "rpi-arm64", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");

    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "manifest.json");
    let tarball = &names[1];
    assert!(tarball.starts_with("rootfs-arm64-trixie-") && tarball.ends_with(".tar.zst"));
    assert_eq!(names[2], format!("{tarball}.sha256"));

    // The manifest lists the tarball with its sha256, which the .sha256 file repeats.
    let m = artifact::Manifest::load(out.path()).unwrap();
    assert_eq!(m.kind, "rootfs");
    assert!(m.verify(out.path()).is_empty());
    let sha = &m.file(tarball).unwrap().sha256;
    let side = std::fs::read_to_string(out.path().join(&names[2])).unwrap();
    assert_eq!(side, format!("{sha}  {tarball}\n"));

    // Every package of the profile's rootfs list is installed; the assembler's are not.
    let profile = drydock::profile::load("rpi-arm64").unwrap();
    let installed: Vec<String> = m.metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    for p in &profile.rootfs.packages {
        assert!(installed.contains(p), "{p} is not installed");
    }
    for p in ["cloud-init", "docker.io", "linux-image-arm64"] {
        assert!(
            !installed.iter().any(|i| i == p),
            "{p} is in the base rootfs"
        );
    }
}

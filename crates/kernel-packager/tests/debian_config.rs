//! The readiness check on Debian's real arm64 kernel config.
//!
//! Fixture: `fixtures/debian-trixie-arm64-6.12.107.config.xz` is `/boot/config-6.12.107+deb13-arm64`
//! from Debian trixie's `linux-image-6.12.107+deb13-arm64_6.12.107-1_arm64.deb`, compressed with
//! `xz -9e`. Recipe: `dpkg-deb --fsys-tarfile linux-image-…_arm64.deb | tar -xO
//! ./boot/config-6.12.107+deb13-arm64 | xz -9e > …config.xz`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use kernel_packager::readiness::{check, Level};
use kernel_packager::{input, KernelConfig};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/debian-trixie-arm64-6.12.107.config.xz")
}

fn debian_text() -> String {
    let mut s = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(fixture()).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn debian_arm64_config_meets_docker_level() {
    let l = input::load(&fixture()).unwrap();
    assert!(l.config.len() > 5000, "{} options", l.config.len());
    let r = check(&l.config, Level::Docker);
    assert!(r.ok, "{}", r.table());
    assert!(r.missing.is_empty());
    // The other levels hold on Debian's kernel too.
    for level in [Level::Kubernetes, Level::Podman] {
        let r = check(&l.config, level);
        assert!(r.ok, "{level}: {}", r.table());
    }
}

#[test]
fn removing_three_options_names_exactly_those() {
    let text: String = debian_text()
        .lines()
        .filter(|l| {
            !["CONFIG_OVERLAY_FS=", "CONFIG_VETH=", "CONFIG_MEMCG="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text.lines().count() + 3, debian_text().lines().count());
    let cfg = KernelConfig::parse(&text, "edited").unwrap();
    let r = check(&cfg, Level::Docker);
    assert!(!r.ok);
    let mut missing = r.missing.clone();
    missing.sort();
    assert_eq!(
        missing,
        ["CONFIG_MEMCG", "CONFIG_OVERLAY_FS", "CONFIG_VETH"],
        "{}",
        r.table()
    );
    let t = r.table();
    assert!(t.contains("NOT met"), "{t}");
}

/// A kernel `.deb` built here with `dpkg-deb --build` (hermetic): its /boot/config-* is read.
#[test]
fn reads_config_from_a_kernel_deb() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: linux-image-test\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@example.org>\nDescription: test\n",
    )
    .unwrap();
    std::fs::write(root.join("boot/config-6.12.0-test"), debian_text()).unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.12.0-test"), b"not a kernel").unwrap();
    let deb = d.path().join("linux-image-test.deb");
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let l = input::load(&deb).unwrap();
    assert!(
        l.origin.ends_with("/boot/config-6.12.0-test"),
        "{}",
        l.origin
    );
    assert!(check(&l.config, Level::Docker).ok);

    // A .deb without a config is a clear error naming the file.
    std::fs::remove_file(root.join("boot/config-6.12.0-test")).unwrap();
    let deb2 = d.path().join("no-config.deb");
    assert!(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb2)
        .status()
        .unwrap()
        .success());
    let e = input::load(&deb2).unwrap_err();
    assert!(e.is_bad_input());
    let s = e.to_string();
    assert!(
        s.contains("no-config.deb") && s.contains("/boot/config-"),
        "{s}"
    );
}

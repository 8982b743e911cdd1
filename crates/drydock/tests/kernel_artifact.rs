//! `drydock build-artifact kernel` end to end against the real Debian mirror (networked, ignored
//! by plain `cargo test`; scripts/test.sh runs them). They use the shared artifact cache
//! (`DRYDOCK_CACHE_DIR` or ~/.cache/drydock) so a warm machine reruns fast, except the failure
//! tests, which use a temporary cache to show that nothing is left behind.
//!
//! The source-mode profile is `tests/fixtures/kernel-tiny-source.yaml`: QEMU virt's layout with a
//! kernel cross-compiled from Debian's linux-source at tinyconfig plus the containers fragment,
//! small enough to compile in minutes on two cores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    secs: f64,
}

fn drydock(args: &[&str], cache: Option<&Path>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drydock"));
    c.args(args);
    if let Some(cache) = cache {
        c.env("DRYDOCK_CACHE_DIR", cache);
    }
    let t = Instant::now();
    let o = c.output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        secs: t.elapsed().as_secs_f64(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Every package the manifest lists is in the folder with the recorded sha256.
fn check_packages(dir: &Path) -> Vec<serde_json::Value> {
    let m = manifest(dir);
    let pkgs = m["metadata"]["packages"].as_array().unwrap().clone();
    for p in &pkgs {
        let f = dir.join(p["file"].as_str().unwrap());
        let (sha, size) = artifact::sha256_file(&f).unwrap();
        assert_eq!(sha, p["sha256"].as_str().unwrap(), "{}", f.display());
        assert_eq!(size, p["size"].as_u64().unwrap());
    }
    pkgs
}

fn entries(cache: &Path) -> Vec<String> {
    let k = cache.join("entries/kernel");
    if !k.exists() {
        return vec![];
    }
    files(&k)
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn upstream_rpi_arm64() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let cold = drydock(
        &[
            "build-artifact",
            "kernel",
            "--board",
            "rpi-arm64",
            "--out",
            o,
        ],
        None,
    );
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    let names = files(out.path());
    eprintln!(
        "first run {:.1}s: {}",
        cold.secs,
        cold.stdout.lines().next().unwrap_or("")
    );
    for prefix in [
        "linux-image-arm64_",
        "linux-image-6.",
        "raspi-firmware_",
        "drydock-kernel-config-rpi-arm64_",
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(".deb")),
            "{prefix}*.deb missing in {names:?}"
        );
    }
    for f in ["report.json", "report.txt", "manifest.json"] {
        assert!(names.iter().any(|n| n == f), "{f} missing in {names:?}");
    }
    let pkgs = check_packages(out.path());
    assert!(pkgs
        .iter()
        .any(|p| p["name"] == "raspi-firmware" && p["origin"] == "mirror"));
    let m = manifest(out.path());
    assert_eq!(m["kind"], "kernel");
    assert!(m["version"].as_str().unwrap().ends_with("-arm64"), "{m}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["readiness"]["ok"], true);
    assert_eq!(report["required_level"], "docker");
    let txt = std::fs::read_to_string(out.path().join("report.txt")).unwrap();
    assert!(txt.contains("docker level: met"), "{txt}");

    // The board package carries the profile's boot settings.
    let bp = names
        .iter()
        .find(|n| n.starts_with("drydock-kernel-config-rpi-arm64_"))
        .unwrap();
    let o2 = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(out.path().join(bp))
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(std::io::Cursor::new(o2.stdout));
    let mut custom = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path()
            .unwrap()
            .ends_with("etc/default/raspi-firmware-custom")
        {
            std::io::Read::read_to_string(&mut e, &mut custom).unwrap();
        }
    }
    assert!(custom.contains("arm_64bit=1"), "{custom:?}");

    // Warm: served from the cache.
    let out2 = tempfile::tempdir().unwrap();
    let warm = drydock(
        &[
            "build-artifact",
            "kernel",
            "--board",
            "rpi-arm64",
            "--out",
            out2.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    assert!(warm.stdout.starts_with("cached"), "{}", warm.stdout);
    assert_eq!(files(out2.path()), names);
    eprintln!("warm run {:.1}s", warm.secs);
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn upstream_missing_package_is_named_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards/qemu-arm64.yaml"),
    )
    .unwrap()
    .replace(
        "packages: [linux-image-arm64]",
        "packages: [linux-image-arm64, drydock-no-such-package]",
    );
    assert!(text.contains("drydock-no-such-package"));
    let profile = d.path().join("missing-pkg.yaml");
    std::fs::write(&profile, text).unwrap();
    let cache = d.path().join("cache");
    let r = drydock(
        &[
            "build-artifact",
            "kernel",
            "--board",
            profile.to_str().unwrap(),
            "--out",
            d.path().join("out").to_str().unwrap(),
        ],
        Some(&cache),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("drydock-no-such-package"), "{}", r.stderr);
    assert!(r.stderr.contains("trixie"), "{}", r.stderr);
    assert!(entries(&cache).is_empty(), "{:?}", entries(&cache));
    assert!(!d.path().join("out").exists());
}

/// Source mode: tinyconfig + the containers fragment cross-compiled for arm64 and packaged by
/// `make bindeb-pkg`; the packaged kernel's config carries every fragment option; a warm run is
/// served from the cache without compiling.
#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn source_tinyconfig_with_containers_fragment() {
    let profile = fixture("kernel-tiny-source.yaml");
    let out = tempfile::tempdir().unwrap();
    let args = |o: &Path| {
        vec![
            "build-artifact".to_string(),
            "kernel".into(),
            "--board".into(),
            profile.to_str().unwrap().into(),
            "--out".into(),
            o.to_str().unwrap().into(),
        ]
    };
    let a = args(out.path());
    let cold = drydock(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    eprintln!(
        "first run {:.1}s: {}",
        cold.secs,
        cold.stdout.lines().next().unwrap_or("")
    );
    let names = files(out.path());
    let image = names
        .iter()
        .find(|n| n.starts_with("linux-image-") && n.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no linux-image .deb in {names:?}"))
        .clone();
    for p in ["linux-libc-dev_", "linux-headers-"] {
        assert!(names.iter().any(|n| n.starts_with(p)), "{p} in {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("drydock-kernel-config-kernel-tiny-source_")),
        "{names:?}"
    );
    check_packages(out.path());

    // dpkg-deb --info: the version names the board and the fragments.
    let info = Command::new("dpkg-deb")
        .arg("--info")
        .arg(out.path().join(&image))
        .output()
        .unwrap();
    assert!(info.status.success());
    let info = String::from_utf8_lossy(&info.stdout);
    eprintln!("dpkg-deb --info {image}:\n{info}");
    assert!(info.contains("Architecture: arm64"), "{info}");
    assert!(
        info.contains("+drydock.kernel-tiny-source.containers.modules-1"),
        "{info}"
    );
    assert!(info.contains("Package: linux-image-6."), "{info}");

    // The packaged kernel's config (and the artifact's copy) carry the fragment's options.
    let fragment = kernel_packager::spec::shipped_fragment("containers").unwrap();
    let wanted =
        kernel_packager::KernelConfig::parse_fragment(&fragment.text, "containers").unwrap();
    let in_deb = kernel_packager::input::load(&out.path().join(&image)).unwrap();
    let cfg_file = names.iter().find(|n| n.starts_with("config-")).unwrap();
    let in_artifact = kernel_packager::input::load(&out.path().join(cfg_file)).unwrap();
    assert!(wanted.len() > 40);
    for (name, value) in wanted.iter() {
        assert_eq!(
            in_deb.config.get(name),
            Some(value),
            "CONFIG_{name} in {image}"
        );
        assert_eq!(in_artifact.config.get(name), Some(value), "CONFIG_{name}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["readiness"]["ok"], true, "{report}");
    assert!(report["kernel_release"]
        .as_str()
        .unwrap()
        .ends_with("-drydock-kernel-tiny-source"));

    // Warm: cached, no compile.
    let out2 = tempfile::tempdir().unwrap();
    let a2 = args(out2.path());
    let warm = drydock(&a2.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    assert!(warm.stdout.starts_with("cached"), "{}", warm.stdout);
    assert_eq!(files(out2.path()), names);
    eprintln!("warm run {:.1}s", warm.secs);
}

/// A fragment value the Kconfig drops (CONFIG_VETH without networking on tinyconfig) is an error
/// naming the option, exit 2, and no artifact.
#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn source_dropped_fragment_value_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let frag = d.path().join("veth-only.config");
    std::fs::write(&frag, "CONFIG_VETH=y\n").unwrap();
    let text = std::fs::read_to_string(fixture("kernel-tiny-source.yaml"))
        .unwrap()
        .replace(
            "fragments: [containers, modules]",
            &format!("fragments: [{}]", frag.display()),
        );
    let profile = d.path().join("dropped.yaml");
    std::fs::write(&profile, text).unwrap();
    let cache = artifact::Store::default_root();
    let before = entries(&cache);
    let out = d.path().join("out");
    let r = drydock(
        &[
            "build-artifact",
            "kernel",
            "--board",
            profile.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("CONFIG_VETH"), "{}", r.stderr);
    assert!(r.stderr.contains("veth-only"), "{}", r.stderr);
    assert!(r.stderr.contains("dropped"), "{}", r.stderr);
    assert_eq!(entries(&cache), before);
    assert!(!out.exists());
}

/// A missing source tree: exit 2 naming it, before any work (hermetic).
#[test]
fn source_missing_tree_is_clear() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("kernel-tiny-source.yaml"))
        .unwrap()
        .replace("tree: debian", "tree: /nonexistent/drydock/linux");
    let profile = d.path().join("notree.yaml");
    std::fs::write(&profile, text).unwrap();
    let cache = d.path().join("cache");
    let r = drydock(
        &[
            "build-artifact",
            "kernel",
            "--board",
            profile.to_str().unwrap(),
            "--out",
            d.path().join("out").to_str().unwrap(),
        ],
        Some(&cache),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/drydock/linux"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("no such folder"), "{}", r.stderr);
    assert!(entries(&cache).is_empty());
}

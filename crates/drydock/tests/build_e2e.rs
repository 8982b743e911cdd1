//! `drydock build` end to end (networked: real mirror, real apt in a qemu-user chroot, real
//! mkfs). Run by scripts/test.sh with the shared cache, so a warm machine only reassembles.
//!
//! - rpi-arm64 and qemu-arm64: `drydock build BOARD --out DIR` leaves the .img, the .img.zst,
//!   SHA256SUMS, the .bmap, manifest.json and the SPDX SBOM; `sha256sum -c`, `bmaptool copy`
//!   (same sha256 as the .img) and pyspdxtools accept them; the manifest names the board, the
//!   version, every artifact's digest and the installed packages.
//! - `drydock build` (default board) with nothing changed: every step a cache hit, nothing copied.
//! - Reproducible: the image artifact removed and assembled again gives the same .img and .img.zst
//!   sha256, with the root file system made afresh and with the kept one copied into place.
//! - A build killed during assembly leaves no complete bundle and no image artifact.
//! - A package apt cannot install fails the build with apt's own message.

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn drydock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_drydock"))
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `drydock build ARGS --json`; progress on the test's stderr; the summary parsed.
fn build(args: &[&str], out: &Path) -> serde_json::Value {
    let o = drydock()
        .arg("build")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .expect("running drydock build");
    assert!(o.status.success(), "drydock build {args:?} failed");
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json output: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn step<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {j}"))
}

fn sha(p: &Path) -> String {
    artifact::sha256_file(p).unwrap().0
}

/// The installed package names a bundle's manifest lists.
fn package_names(m: &serde_json::Value) -> Vec<&str> {
    m["metadata"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// Every promise of the bundle in `out`. Returns the .img path.
fn check_bundle(board: &str, out: &Path) -> PathBuf {
    let name = format!("drydock-{board}");
    let img = out.join(format!("{name}.img"));
    for f in [
        format!("{name}.img"),
        format!("{name}.img.zst"),
        format!("{name}.img.bmap"),
        format!("{name}.spdx.json"),
        "manifest.json".into(),
        "SHA256SUMS".into(),
    ] {
        assert!(
            out.join(&f).is_file(),
            "{board}: {f} missing in {}",
            out.display()
        );
    }
    // SHA256SUMS covers the image, the compressed copy, the bmap and the SBOM.
    let o = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{board}: sha256sum -c: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
    let img_sha = sha(&img);
    // The compressed copy is the image.
    let mut dec = zstd::stream::read::Decoder::new(
        std::fs::File::open(out.join(format!("{name}.img.zst"))).unwrap(),
    )
    .unwrap();
    let (zsha, zlen) = artifact::digest::sha256_reader(&mut dec).unwrap();
    assert_eq!(
        (zsha, zlen),
        (img_sha.clone(), std::fs::metadata(&img).unwrap().len()),
        "{board}: .img.zst is not the .img"
    );
    // bmaptool writes the same bytes from our block map.
    let copy = tmp(&format!("bmap-copy-{board}.img"));
    let _ = std::fs::remove_file(&copy);
    let o = Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(out.join(format!("{name}.img.bmap")))
        .arg(&img)
        .arg(&copy)
        .output()
        .expect("bmaptool (scripts/setup-host.sh installs bmap-tools)");
    assert!(
        o.status.success(),
        "{board}: bmaptool copy: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        sha(&copy),
        img_sha,
        "{board}: bmaptool copy differs from the .img"
    );
    std::fs::remove_file(&copy).unwrap();
    // A real SPDX validator.
    let tool = image_assembler::sbom::pyspdxtools()
        .expect("pyspdxtools (scripts/setup-host.sh installs it)");
    let o = Command::new(tool)
        .arg("-i")
        .arg(out.join(format!("{name}.spdx.json")))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{board}: pyspdxtools: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The manifest: board, version, digests, packages.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["metadata"]["board"], board);
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    for a in ["rootfs", "kernel", "deb-repo", "raw-image", "system"] {
        let d = m["metadata"]["artifacts"][a]
            .as_str()
            .unwrap_or_else(|| panic!("{board}: manifest has no {a} digest"));
        assert!(
            d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()),
            "{a}: {d}"
        );
    }
    let pk = package_names(&m);
    for want in [
        "docker.io",
        "docker-cli",
        "docker-compose",
        "cloud-init",
        "drydock-firstboot",
        "systemd",
        "openssh-server",
        "apparmor",
    ] {
        assert!(pk.contains(&want), "{board}: {want} not installed");
    }
    assert!(
        pk.iter().any(|p| p.starts_with("linux-image-6")),
        "{board}: no kernel package"
    );
    assert_eq!(m["metadata"]["image-sha256"], img_sha.as_str());
    img
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn rpi_arm64_bundle_default_board_and_reproducible() {
    let out = tmp("build-e2e-rpi-arm64");
    let j = build(&["rpi-arm64"], &out);
    let img = check_bundle("rpi-arm64", &out);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert!(package_names(&m).contains(&"raspi-firmware"));
    eprintln!("rpi-arm64: {}", serde_json::to_string(&j["steps"]).unwrap());

    // `drydock build` alone: the default board, nothing changed: all cache hits, nothing copied.
    let ino = std::fs::metadata(&img).unwrap().ino();
    let j2 = build(&[], &out);
    assert_eq!(j2["board"], "rpi-arm64");
    for s in j2["steps"].as_array().unwrap() {
        assert_eq!(s["cached"], true, "{s}");
    }
    assert_eq!(
        std::fs::metadata(&img).unwrap().ino(),
        ino,
        "the unchanged image was copied again"
    );
    eprintln!(
        "rpi-arm64 with nothing changed: {:.2} s",
        j2["seconds"].as_f64().unwrap()
    );

    // Reproducible: assemble the image again from the cached artifacts, once making the root
    // file system afresh (the kept one removed), once copying the kept one into place: the
    // same .img and the same .img.zst each time.
    let zst = out.join("drydock-rpi-arm64.img.zst");
    let (before, before_zst) = (sha(&img), sha(&zst));
    let store = artifact::Store::open(artifact::Store::default_root()).unwrap();
    let digest = step(&j2, "image")["digest"].as_str().unwrap().to_string();
    let entry = store.root().join("entries/image").join(&digest);
    let root_reused = || -> bool {
        let m = artifact::Manifest::load(&entry).unwrap();
        let parts = m.metadata["partitions"].as_array().unwrap().clone();
        let root = parts.iter().find(|p| p["name"] == "root").unwrap();
        root["reused"].as_bool().unwrap()
    };
    let trees = store.root().join("aux/system-trees/rpi-arm64");
    for kept in std::fs::read_dir(&trees).unwrap() {
        let kept = kept.unwrap().path().join("kept");
        if kept.exists() {
            std::fs::remove_dir_all(&kept).unwrap();
        }
    }
    for reused in [false, true] {
        std::fs::remove_dir_all(&entry).unwrap();
        let j3 = build(&["rpi-arm64"], &out);
        assert_eq!(step(&j3, "image")["cached"], false);
        assert_eq!(step(&j3, "system")["cached"], true);
        assert_eq!(root_reused(), reused);
        assert_eq!(
            sha(&img),
            before,
            "assembling again gave a different image (kept root: {reused})"
        );
        assert_eq!(
            sha(&zst),
            before_zst,
            "assembling again gave a different .img.zst (kept root: {reused})"
        );
        eprintln!(
            "rpi-arm64 image stage, kept root {reused}: {:.2} s",
            step(&j3, "image")["seconds"].as_f64().unwrap()
        );
    }
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn qemu_arm64_bundle() {
    let out = tmp("build-e2e-qemu-arm64");
    let j = build(&["qemu-arm64"], &out);
    check_bundle("qemu-arm64", &out);
    eprintln!(
        "qemu-arm64: {}",
        serde_json::to_string(&j["steps"]).unwrap()
    );
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn killed_build_leaves_no_complete_bundle() {
    // A hostname never used before: the image stage must run (the system is cached by the
    // rpi-arm64 test, or built here).
    let host = format!(
        "killed-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let out = tmp("build-e2e-killed");
    let _ = std::fs::remove_dir_all(&out);
    let mut child = drydock()
        .args(["build", "rpi-arm64", "--hostname", &host, "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut saw = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        eprintln!("{line}");
        if line.contains("image: filling the partitions") {
            saw = true;
            break;
        }
    }
    assert!(saw, "the build never reached the image stage");
    // The fill copies the kept root file system in about a second: kill it mid-way.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the build ended before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("SHA256SUMS").exists(),
        "a killed build left a bundle that looks complete"
    );
    // Nothing was published: the same build assembles the image (not a cache hit) and completes.
    let j = build(&["rpi-arm64", "--hostname", &host], &out);
    assert_eq!(step(&j, "image")["cached"], false);
    let o = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
#[ignore = "networked e2e: run by scripts/test.sh"]
fn failed_package_install_reports_apts_message() {
    let src = drydock::profile::resolve("rpi-arm64").unwrap();
    let text = std::fs::read_to_string(&src).unwrap();
    let bad = text.replace(
        "image-packages: [",
        "image-packages: [drydock-no-such-package, ",
    );
    assert_ne!(bad, text, "the profile's image-packages line moved");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("rpi-arm64.yaml");
    std::fs::write(&profile, bad).unwrap();
    let out = dir.path().join("out");
    let o = drydock()
        .arg("build")
        .arg(&profile)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Unable to locate package drydock-no-such-package"),
        "apt's message is not in the error:\n{err}"
    );
    assert!(!out.join("SHA256SUMS").exists());
}

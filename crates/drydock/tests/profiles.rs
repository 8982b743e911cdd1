//! Bad board profiles: each case is rejected with exit code 2 and an error naming the file, the
//! line and column, and the field.

use std::path::{Path, PathBuf};
use std::process::Command;

fn drydock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_drydock"))
}

fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards")
}

/// Write the shipped rpi-arm64 profile with one textual edit applied, run `boards show` on it.
fn run_edited(name: &str, from: &str, to: &str) -> (i32, String, PathBuf, tempfile::TempDir) {
    let text = std::fs::read_to_string(boards_dir().join("rpi-arm64.yaml")).unwrap();
    assert!(text.contains(from), "fixture edit {from:?} does not apply");
    let edited = text.replacen(from, to, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, edited).unwrap();
    let out = drydock()
        .args(["boards", "show"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr, path, dir)
}

fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn shipped_profiles_load() {
    for b in ["rpi-arm64", "qemu-arm64"] {
        let out = drydock()
            .args(["boards", "show", b, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v["name"], b);
        assert_eq!(v["arch"], "arm64");
    }
    let out = drydock().arg("boards").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("rpi-arm64") && s.contains("qemu-arm64") && s.contains("(default)"),
        "{s}"
    );
}

#[test]
fn bad_yaml() {
    let (code, err, path, _d) = run_edited("bad-yaml", "arch: arm64", "arch: [arm64");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains(&format!(":{}:", line_of(&path, "arch: [arm64"))) || err.contains("line"),
        "{err}"
    );
}

#[test]
fn unknown_key() {
    let (code, err, path, _d) = run_edited(
        "unknown-key",
        "  readiness: docker",
        "  readiness: docker\n  flavour: spicy",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("flavour"), "{err}");
    let line = line_of(&path, "flavour: spicy");
    assert!(
        err.contains(&format!(":{line}:")),
        "line {line} not named: {err}"
    );
}

#[test]
fn wrong_type() {
    let (code, err, path, _d) = run_edited(
        "wrong-type",
        "      bootable: true",
        "      bootable: maybe",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bootable"), "{err}");
    let line = line_of(&path, "bootable: maybe");
    assert!(
        err.contains(&format!(":{line}:")),
        "line {line} not named: {err}"
    );
}

#[test]
fn missing_field() {
    let (code, err, path, _d) = run_edited("missing-field", "arch: arm64\n", "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("missing field `arch`"), "{err}");
    assert!(
        err.contains(":1:") || err.contains("line"),
        "no location: {err}"
    );
}

#[test]
fn unsupported_arch() {
    let (code, err, path, _d) = run_edited("bad-arch", "arch: arm64", "arch: mips64el");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("mips64el") && err.contains("arm64, armhf, amd64"),
        "{err}"
    );
    let line = line_of(&path, "arch: mips64el");
    assert!(
        err.contains(&format!(":{line}:")),
        "line {line} not named: {err}"
    );
}

#[test]
fn unknown_board_name() {
    let out = drydock()
        .args(["boards", "show", "banana-pi-z9"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("banana-pi-z9") && err.contains("rpi-arm64"),
        "{err}"
    );
}

#[test]
fn fat_label_too_long() {
    let (code, err, path, _d) =
        run_edited("long-label", "label: RASPIFIRM", "label: RASPIFIRMWARE12");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("RASPIFIRMWARE12") && err.contains("11"),
        "{err}"
    );
    let line = line_of(&path, "label: RASPIFIRMWARE12");
    assert!(
        err.contains(&format!(":{line}:")),
        "line {line} not named: {err}"
    );
}

#[test]
fn bad_qemu_interface_name() {
    let (code, err, path, _d) =
        run_edited("bad-iface", "interface: usb0", "interface: usb0;reboot");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("qemu.interface") && err.contains("usb0;reboot"),
        "{err}"
    );
    let line = line_of(&path, "interface: usb0;reboot");
    assert!(
        err.contains(&format!(":{line}:")),
        "line {line} not named: {err}"
    );
}

#[test]
fn missing_profile_file() {
    let out = drydock()
        .args(["boards", "show", "/nonexistent/board.yaml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("/nonexistent/board.yaml"), "{err}");
}

#[test]
fn doctor_names_missing_mmdebstrap_with_apt_command() {
    let empty = tempfile::tempdir().unwrap();
    let out = drydock()
        .args(["doctor", "--board", "rpi-arm64"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(s.contains("[MISS] mmdebstrap"), "{s}");
    let apt = s
        .lines()
        .find(|l| l.contains("apt-get install -y"))
        .expect("an apt command");
    assert!(apt.split_whitespace().any(|w| w == "mmdebstrap"), "{apt}");
}

#[test]
fn cache_verify_finds_flipped_byte() {
    let cache = tempfile::tempdir().unwrap();
    let store = artifact::Store::open(cache.path()).unwrap();
    let key = artifact::CacheKey::new("test", &"x");
    let e = store
        .publish(&key, |dir| -> Result<_, artifact::Error> {
            std::fs::write(dir.join("blob"), b"0123456789").unwrap();
            Ok(artifact::Manifest::new("test", "blob", "1", "all", ""))
        })
        .unwrap();
    let ok = drydock()
        .args(["cache", "verify", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let mut bytes = std::fs::read(e.path("blob")).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(e.path("blob"), bytes).unwrap();
    let bad = drydock()
        .args(["cache", "verify", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{s}");
    assert!(s.contains("CORRUPT") && s.contains("blob: sha256"), "{s}");
    assert!(store.lookup("test", &key.digest()).is_none());
    let ls = drydock()
        .args(["cache", "ls", "--json", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "quarantined entry still listed"
    );
    // The text listing also names the working caches, per board for the system trees.
    let kept = cache.path().join("aux/system-trees/board-x/kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("root-k.part"), vec![1u8; 5000]).unwrap();
    let ls = drydock()
        .args(["cache", "ls", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("system-trees/board-x"))
        .unwrap_or_else(|| panic!("no working cache line:\n{text}"));
    assert!(line.contains("KiB"), "{line}");
}

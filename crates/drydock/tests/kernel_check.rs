//! `drydock kernel-check` exit codes and output, on kernel-packager's Debian arm64 config fixture.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kernel-packager/tests/fixtures/debian-trixie-arm64-6.12.107.config.xz")
}

fn drydock(args: &[&str], file: &Path) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("kernel-check")
        .arg(file)
        .args(args)
        .env("DRYDOCK_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn met_not_met_and_bad_input() {
    let (code, out, _) = drydock(&[], &fixture());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("docker level: met"), "{out}");

    let (code, out, _) = drydock(&["--level", "kubernetes", "--json"], &fixture());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["level"], "kubernetes");

    // Without OVERLAY_FS, VETH and MEMCG: exit 1 naming exactly those.
    let mut text = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(fixture()).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let edited: String = text
        .lines()
        .filter(|l| {
            !l.starts_with("CONFIG_OVERLAY_FS=")
                && !l.starts_with("CONFIG_VETH=")
                && !l.starts_with("CONFIG_MEMCG=")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("config");
    std::fs::write(&f, edited).unwrap();
    let (code, out, err) = drydock(&["--json"], &f);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut missing: Vec<String> = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        ["CONFIG_MEMCG", "CONFIG_OVERLAY_FS", "CONFIG_VETH"]
    );
    for m in &missing {
        assert!(err.contains(m.as_str()), "{err}");
    }
    let (code, out, _) = drydock(&[], &f);
    assert_eq!(code, 1);
    assert!(out.contains("MISSING"), "{out}");

    // Bad input: exit 2 with the file named.
    let (code, _, err) = drydock(&[], &d.path().join("absent.config"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("absent.config"), "{err}");
    std::fs::write(d.path().join("junk"), "this is not a config\n").unwrap();
    let (code, _, err) = drydock(&[], &d.path().join("junk"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("junk:1"), "{err}");
}

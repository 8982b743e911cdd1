//! `drydock build-artifact raw-image --board rpi-arm64 --out DIR`: leaves the image and its
//! .sha256 in DIR, reproducibly, and works as an unprivileged user (setpriv to nobody when the
//! test runs as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_drydock");

fn build(bin: &Path, boards: &Path, cache: &Path, out: &Path, as_nobody: bool) -> String {
    let mut c = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.env("DRYDOCK_BOARDS_DIR", boards)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("HOME", cache)
        .arg("--cache-dir")
        .arg(cache)
        .args([
            "build-artifact",
            "raw-image",
            "--board",
            "rpi-arm64",
            "--out",
        ])
        .arg(out);
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = out.join("rpi-arm64-raw.img.zst");
    assert!(img.is_file());
    let sums = std::fs::read_to_string(out.join("rpi-arm64-raw.img.zst.sha256")).unwrap();
    let (sha, name) = sums.trim().split_once("  ").unwrap();
    assert_eq!(name, "rpi-arm64-raw.img.zst");
    assert_eq!(artifact::sha256_file(&img).unwrap().0, sha);
    sha.to_string()
}

#[test]
fn rpi_raw_image_reproducible_and_unprivileged() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
    let a = build(
        Path::new(BIN),
        &boards,
        &d.path().join("cache-a"),
        &d.path().join("out-a"),
        false,
    );
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        let b = build(
            Path::new(BIN),
            &boards,
            &d.path().join("cache-b"),
            &d.path().join("out-b"),
            false,
        );
        assert_eq!(a, b, "built twice, the same sha256");
        artifact::skip_test("not root: the setpriv (unprivileged) run");
        return;
    }
    // nobody gets a readable copy of the binary and boards, and its own cache and output folders.
    let pub_dir = d.path().join("pub");
    std::fs::create_dir_all(pub_dir.join("boards")).unwrap();
    let bin = pub_dir.join("drydock");
    std::fs::copy(BIN, &bin).unwrap();
    for e in std::fs::read_dir(&boards).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pub_dir.join("boards").join(e.file_name())).unwrap();
    }
    let home = d.path().join("nobody");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let b = build(
        &bin,
        &pub_dir.join("boards"),
        &home.join("cache"),
        &home.join("out"),
        true,
    );
    assert_eq!(
        a, b,
        "built twice (second time as nobody, fresh cache): the same sha256"
    );
    let md = std::fs::metadata(home.join("out/rpi-arm64-raw.img.zst")).unwrap();
    assert_eq!(md.uid(), 65534);
}

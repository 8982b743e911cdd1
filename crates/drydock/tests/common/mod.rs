//! Shared by the image_test_* and boot_test_* integration tests: running the drydock binary and
//! corrupting image copies with real tools (mtools through raw-image's FAT writer, `debugfs -w`
//! at the partition's offset), without mounting.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::collections::BTreeMap;

use drydock::checks::testkit;
use raw_image::inspect;

pub fn drydock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_drydock"))
}

/// One check from `--json` output.
#[derive(Debug, Clone)]
pub struct Check {
    pub group: String,
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub fn parse_checks(out: &Output) -> Vec<Check> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
            Check {
                group: v["group"].as_str().unwrap().to_string(),
                name: v["name"].as_str().unwrap().to_string(),
                ok: v["ok"].as_bool().unwrap(),
                detail: v["detail"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// `drydock test IMAGE --board BOARD --json`: exit status and the checks.
pub fn run_test(image: &Path, board: &str) -> (Output, Vec<Check>) {
    let out = drydock()
        .args(["test", "--json", "--board", board])
        .arg(image)
        .env("DRYDOCK_LOG", "warn")
        .output()
        .expect("running drydock test");
    let checks = parse_checks(&out);
    (out, checks)
}

pub fn failed(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| !c.ok).collect()
}

pub fn show(checks: &[&Check]) -> String {
    checks
        .iter()
        .map(|c| format!("[{}] {}: {}", c.group, c.name, c.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Byte offset of a partition (1-based index).
pub fn part_offset(image: &Path, index: u32) -> u64 {
    inspect::read_table(image)
        .unwrap()
        .partition(index)
        .unwrap_or_else(|| panic!("no partition {index}"))
        .start_bytes
}

/// Copy an image (sparse) into `dir`, keeping its file name.
pub fn copy_image(image: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(image.file_name().unwrap());
    artifact::fsutil::copy_sparse(image, &to).unwrap();
    to
}

/// Run debugfs in write mode on the ext4 at `offset`; panic on any error it prints.
pub fn debugfs_w(image: &Path, offset: u64, requests: &[String]) {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), requests.join("\n") + "\n").unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(script.path())
        .arg(format!("{}?offset={offset}", image.display()))
        .output()
        .expect("running debugfs");
    let err = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && bad.is_empty(),
        "debugfs {requests:?}: {err}"
    );
}

/// Replace (or create) a file in the ext4 root: remove the old inode, write the new content
/// with `mode` (octal permission bits) and owner root.
pub fn ext4_put(image: &Path, root_index: u32, path: &str, content: &[u8], mode: u32, gid: u32) {
    let off = part_offset(image, root_index);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), content).unwrap();
    let ext = raw_image::ext4::Ext4::new(image, off);
    let mut reqs = Vec::new();
    if ext.exists(path).unwrap() {
        reqs.push(format!("rm {path}"));
    }
    let (dir, name) = path.rsplit_once('/').unwrap();
    reqs.push(format!("cd {}", if dir.is_empty() { "/" } else { dir }));
    reqs.push(format!("write {} {name}", src.path().display()));
    reqs.push(format!(
        "set_inode_field {name} mode 0{:o}",
        0o100000 | mode
    ));
    reqs.push(format!("set_inode_field {name} uid 0"));
    reqs.push(format!("set_inode_field {name} gid {gid}"));
    debugfs_w(image, off, &reqs);
}

/// Read a file of the ext4 root.
pub fn ext4_read(image: &Path, root_index: u32, path: &str) -> Vec<u8> {
    raw_image::ext4::Ext4::new(image, part_offset(image, root_index))
        .read_file(path)
        .unwrap()
}

pub fn fat(image: &Path, boot_index: u32) -> raw_image::fat::Fat {
    raw_image::fat::Fat::new(image, part_offset(image, boot_index))
}

/// The four corruptions the checks must catch, applied to a copy of `image` in `dir`; each
/// returns the check names that must fail.
pub fn corrupt_wrong_partuuid(img: &Path) -> Vec<&'static str> {
    let f = fat(img, 1);
    let line = String::from_utf8(f.read("cmdline.txt").unwrap()).unwrap();
    let root = line
        .split_whitespace()
        .find(|t| t.starts_with("root=PARTUUID="))
        .expect("cmdline.txt has root=PARTUUID=");
    let wrong = line.replace(root, "root=PARTUUID=0badc0de-02");
    f.write("cmdline.txt", wrong.as_bytes()).unwrap();
    vec!["cmdline.txt root= is the root partition's PARTUUID"]
}

pub fn corrupt_ssh_host_key(img: &Path) -> Vec<&'static str> {
    ext4_put(
        img,
        2,
        "/etc/ssh/ssh_host_ed25519_key",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nleft behind\n-----END OPENSSH PRIVATE KEY-----\n",
        0o600,
        0,
    );
    vec!["no SSH host keys in the image"]
}

pub fn corrupt_root_unlocked(img: &Path) -> Vec<&'static str> {
    let shadow = String::from_utf8(ext4_read(img, 2, "/etc/shadow")).unwrap();
    let unlocked: String = shadow
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("root:") {
                let after = rest.split_once(':').map(|x| x.1).unwrap_or("");
                format!("root:$6$drydock$0123456789abcdef:{after}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    ext4_put(img, 2, "/etc/shadow", unlocked.as_bytes(), 0o640, 42);
    vec!["root password locked"]
}

pub fn corrupt_missing_dtb(img: &Path, dtb: &str) -> Vec<String> {
    fat(img, 1).remove(dtb).unwrap();
    vec![format!("{dtb} on the boot partition")]
}

const SEED: &str = "drydock-image-test-fixture";
const EPOCH: i64 = 1_700_000_000;

/// Build the fixture bundle in `dir`; returns the image path.
pub fn build_fixture(dir: &Path) -> PathBuf {
    let profile = testkit::rpi_profile();
    let ids = raw_image::build::Ids::new(SEED);
    let disk_id = format!("{:08x}", ids.mbr_disk_id());
    let d = testkit::good_disk_with_id(&disk_id);
    let mut trees = BTreeMap::new();
    for (name, idx) in [("boot", 1u32), ("root", 2u32)] {
        let t = dir.join(format!("tree-{name}"));
        let part = d.parts.iter().find(|p| p.part.index == idx).unwrap();
        part.tree.materialize(&t).unwrap();
        trees.insert(name.to_string(), t);
    }
    let img = dir.join("drydock-rpi-arm64.img");
    let layout = drydock::artifacts::raw_image::layout(&profile).unwrap();
    let filled = raw_image::build::fill(&layout, &trees, SEED, EPOCH, &img).unwrap();
    assert_eq!(
        filled.partition("root").unwrap().partuuid,
        format!("{disk_id}-02")
    );

    // The bundle, with the assembler's own format code.
    let scan = image_assembler::bundle::scan(&img, None, 1).unwrap();
    std::fs::write(
        dir.join("drydock-rpi-arm64.img.bmap"),
        image_assembler::bmap::render(&scan.bmap).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("SHA256SUMS"),
        image_assembler::sums::render(&[("drydock-rpi-arm64.img".into(), scan.sha256.clone())]),
    )
    .unwrap();
    let pkgs = image_assembler::dpkg::parse_status(&testkit::dpkg_status()).unwrap();
    let info = image_assembler::sbom::ImageInfo {
        file_name: "drydock-rpi-arm64.img",
        sha256: &scan.sha256,
        version: "0.1.0",
        digest: &"d".repeat(64),
        epoch: EPOCH,
        tool: "drydock-0.1.0",
        namespace_base: "https://example.invalid/drydock/spdx",
    };
    let sbom = image_assembler::sbom::render(&info, &pkgs);
    std::fs::write(
        dir.join("drydock-rpi-arm64.spdx.json"),
        serde_json::to_string_pretty(&sbom).unwrap(),
    )
    .unwrap();
    let manifest = serde_json::json!({
        "board": "rpi-arm64",
        "version": "0.1.0",
        "artifacts": {"rootfs": "a".repeat(64), "kernel": "b".repeat(64), "raw-image": "c".repeat(64)},
        "packages": pkgs.iter().map(|p| serde_json::json!({"name": p.name, "version": p.version, "arch": p.arch})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    img
}

/// Build (or take from the shared cache) a board's bundle with the boot-test container preloaded,
/// exported to a folder under the target directory; returns the `.img` path. Uses the default
/// artifact cache (DRYDOCK_CACHE_DIR or ~/.cache/drydock) so a warm machine reruns fast.
pub fn e2e_bundle(board: &str) -> PathBuf {
    let profile = drydock::profile::load(board).unwrap();
    let store = artifact::Store::open(artifact::Store::default_root()).unwrap();
    let archive = drydock::test_container::ensure(&store, &profile).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-bundle-{board}"));
    let status = drydock()
        .args(["build", board, "--out"])
        .arg(&out)
        .arg("--preload")
        .arg(&archive)
        .status()
        .expect("running drydock build");
    assert!(status.success(), "drydock build {board} failed");
    let img = out.join(format!("{}.img", profile.image_name()));
    assert!(img.is_file(), "no {} after drydock build", img.display());
    // The bundle's manifest names the preloaded archive and its sha256.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let (sha, _) = artifact::sha256_file(&archive).unwrap();
    let listed = m["metadata"]["preload"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        listed.iter().any(|p| p["sha256"] == sha.as_str()),
        "manifest.json preload {listed:?} does not list {} ({sha})",
        archive.display()
    );
    img
}

//! Real apt against a repository built and served by deb-repo on loopback: `apt-get update` and
//! `apt-get install` succeed with the exported key in `signed-by` (no trusted=yes); after one
//! byte of `Packages` (or of `InRelease`) is flipped, apt refuses.
//!
//! Hermetic: apt runs with every state, cache, config and keyring folder inside a temporary
//! folder, and talks only to 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deb_repo::gpg::SigningKey;
use deb_repo::repo::{self, RepoOptions};
use deb_repo::serve::Server;
use deb_repo::{Compression, DebBuilder, Stanza};

/// The host's architecture (apt's default).
fn host_arch() -> String {
    let o = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn make_debs(dir: &Path, arch: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let hello = Stanza::parse(
        "Package: drydock-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: drydock <drydock@example.invalid>\nDepends: drydock-native\nDescription: hello from drydock\n Installed by apt from a deb-repo repository.\n",
    )
    .unwrap();
    let mut b = DebBuilder::new(hello);
    b.epoch(1_700_000_000);
    b.file("usr/share/drydock-hello/greeting", "ahoy\n", 0o644)
        .unwrap();
    out.push(b.write_into(dir).unwrap());
    let native = Stanza::parse(&format!(
        "Package: drydock-native\nVersion: 2\nArchitecture: {arch}\nMaintainer: drydock <drydock@example.invalid>\nDescription: an arch-specific package\n"
    ))
    .unwrap();
    let mut b = DebBuilder::new(native);
    b.epoch(1_700_000_000);
    b.file("usr/lib/drydock-native/marker", "native\n", 0o644)
        .unwrap();
    out.push(b.write_into(dir).unwrap());
    out
}

struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(dir: &Path, source_line: &str) -> Apt {
        for d in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
        std::fs::write(dir.join("status"), "").unwrap();
        std::fs::write(dir.join("etc/apt.conf"), "").unwrap();
        Apt {
            dir: dir.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let d = |s: &str| self.dir.join(s).display().to_string();
        let mut c = Command::new("apt-get");
        c.env("APT_CONFIG", d("etc/apt.conf"))
            .env("LC_ALL", "C")
            .arg("-o")
            .arg(format!("Dir::Etc={}", d("etc")))
            .arg("-o")
            .arg(format!("Dir::State={}", d("state")))
            .arg("-o")
            .arg(format!("Dir::State::status={}", d("status")))
            .arg("-o")
            .arg(format!("Dir::Cache={}", d("cache")))
            .arg("-o")
            .arg(format!("Dir::Log={}", d("log")))
            .args(["-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=0"])
            .args(["-o", "Acquire::Languages=none", "-o", "Debug::NoLocking=1"])
            .args(args);
        c.output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn apt_trusts_signed_repo_and_refuses_tampering() {
    let t = tempfile::tempdir().unwrap();
    let arch = host_arch();
    let debs = t.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    make_debs(&debs, &arch);
    let key = SigningKey::open_or_create(&t.path().join("key"), None).unwrap();
    let repo_dir = t.path().join("repo");
    let opts = RepoOptions {
        date: Some(1_700_000_000),
        ..RepoOptions::default()
    };
    let report = repo::update(&repo_dir, std::slice::from_ref(&debs), &opts, &key).unwrap();
    assert_eq!(report.packages, 2);
    key.close().unwrap();
    assert!(repo_dir.join("key.asc").is_file());
    let srv = Server::start(&repo_dir, "127.0.0.1:0").unwrap();
    let source = format!(
        "deb [signed-by={}] http://{}/ drydock main",
        repo_dir.join("key.asc").display(),
        srv.addr()
    );

    // Trusted: update and install.
    let apt = Apt::new(&t.path().join("apt-ok"), &source);
    let o = apt.run(&["update"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("W:") && !err.contains("E:"), "{}", text(&o));
    let o = apt.run(&["install", "-y", "--download-only", "drydock-hello"]);
    assert!(o.status.success(), "{}", text(&o));
    let archives = apt.dir.join("cache/archives");
    let mut got: Vec<PathBuf> = std::fs::read_dir(&archives)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    got.sort();
    assert_eq!(
        got.len(),
        2,
        "dependency resolved through the index: {got:?}"
    );
    // Install what apt fetched into a dpkg root.
    let root = t.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let o = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--log=/dev/null", "--force-script-chrootless", "-i"])
        .args(&got)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/drydock-hello/greeting")).unwrap(),
        "ahoy\n"
    );

    // Release.gpg (the detached signature) verifies with gpgv, and apt accepts it when there is
    // no InRelease.
    let dists = std::fs::canonicalize(repo_dir.join("dists/drydock")).unwrap();
    let o = Command::new("gpgv")
        .arg("--keyring")
        .arg(repo_dir.join("key.gpg"))
        .arg(dists.join("Release.gpg"))
        .arg(dists.join("Release"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let inrelease_bytes = std::fs::read(dists.join("InRelease")).unwrap();
    std::fs::remove_file(dists.join("InRelease")).unwrap();
    let apt = Apt::new(&t.path().join("apt-release-gpg"), &source);
    let o = apt.run(&["update"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Release.gpg"), "{}", text(&o));
    assert!(!text(&o).contains("W:"), "{}", text(&o));
    std::fs::write(dists.join("InRelease"), &inrelease_bytes).unwrap();

    // One byte of Packages flipped, and Packages.gz / Packages.xz regenerated from the tampered
    // text (whichever form apt picks, its content differs from what Release signs): refused.
    let bin = dists.join(format!("main/binary-{arch}"));
    let originals: Vec<(PathBuf, Vec<u8>)> = ["Packages", "Packages.gz", "Packages.xz"]
        .iter()
        .map(|n| (bin.join(n), std::fs::read(bin.join(n)).unwrap()))
        .collect();
    flip_byte(&bin.join("Packages"), 6);
    let tampered = std::fs::read(bin.join("Packages")).unwrap();
    assert!(String::from_utf8_lossy(&tampered).starts_with("Packagd: "));
    for (name, c) in [
        ("Packages.gz", Compression::Gzip),
        ("Packages.xz", Compression::Xz),
    ] {
        std::fs::write(bin.join(name), c.compress(&tampered).unwrap()).unwrap();
    }
    let apt = Apt::new(&t.path().join("apt-bad-packages"), &source);
    let o = apt.run(&["update"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Hash Sum mismatch") || text(&o).contains("unexpected size"),
        "{}",
        text(&o)
    );
    let o = apt.run(&["install", "-y", "--download-only", "drydock-hello"]);
    assert!(!o.status.success(), "{}", text(&o));
    for (p, b) in &originals {
        std::fs::write(p, b).unwrap();
    }

    // Only Packages.xz (apt's default choice) damaged by one byte: refused.
    let xz = bin.join("Packages.xz");
    flip_byte(&xz, 40);
    let apt = Apt::new(&t.path().join("apt-bad-xz"), &source);
    let o = apt.run(&["update"]);
    assert!(!o.status.success(), "{}", text(&o));
    for (p, b) in &originals {
        std::fs::write(p, b).unwrap();
    }

    // Tampered InRelease (a byte of the signed text): the signature fails.
    let inrelease = dists.join("InRelease");
    let good_in = std::fs::read_to_string(&inrelease).unwrap();
    let at = good_in.find("Origin: drydock").unwrap() + 8;
    flip_byte(&inrelease, at);
    std::fs::remove_file(dists.join("Release.gpg")).unwrap();
    let apt = Apt::new(&t.path().join("apt-bad-sig"), &source);
    let o = apt.run(&["update"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("BADSIG") || text(&o).contains("not signed"),
        "{}",
        text(&o)
    );

    // A key that is not the repository's: refused.
    let other = SigningKey::open_or_create(&t.path().join("other-key"), None).unwrap();
    let other_asc = t.path().join("other.asc");
    std::fs::write(&other_asc, other.public_armored().unwrap()).unwrap();
    other.close().unwrap();
    std::fs::write(&inrelease, &good_in).unwrap();
    let apt = Apt::new(
        &t.path().join("apt-wrong-key"),
        &format!(
            "deb [signed-by={}] http://{}/ drydock main",
            other_asc.display(),
            srv.addr()
        ),
    );
    let o = apt.run(&["update"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("NO_PUBKEY"), "{}", text(&o));
    srv.stop();
}

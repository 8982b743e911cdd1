//! Repository building: incremental re-indexing, atomic publication, and bad input (truncated
//! .deb, bad control file, two files claiming one package/version/arch) leaving the published
//! repository intact.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use deb_repo::gpg::SigningKey;
use deb_repo::repo::{self, RepoOptions};
use deb_repo::{DebBuilder, Stanza};

fn control(pkg: &str, version: &str, arch: &str) -> Stanza {
    Stanza::parse(&format!(
        "Package: {pkg}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@example.invalid>\nDescription: test {pkg}\n"
    ))
    .unwrap()
}

fn deb(dir: &Path, pkg: &str, version: &str, arch: &str, content: &str) -> PathBuf {
    let mut b = DebBuilder::new(control(pkg, version, arch));
    b.epoch(1_700_000_000);
    b.file(&format!("usr/share/{pkg}/data"), content, 0o644)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    b.write_into(dir).unwrap()
}

/// A .deb whose control file is `control_text`, verbatim (bypassing the builder's checks).
fn raw_deb(path: &Path, control_text: &str) {
    let mut ctar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control_text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ctar.append_data(&mut h, "./control", control_text.as_bytes())
        .unwrap();
    let ctar = ctar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&ctar).unwrap();
    let ctar = gz.finish().unwrap();
    let data = {
        let t = tar::Builder::new(Vec::new()).into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&t).unwrap();
        gz.finish().unwrap()
    };
    let mut ar = deb_repo::ar::Writer::new(Vec::new()).unwrap();
    ar.append("debian-binary", 0, 0o100644, b"2.0\n").unwrap();
    ar.append("control.tar.gz", 0, 0o100644, &ctar).unwrap();
    ar.append("data.tar.gz", 0, 0o100644, &data).unwrap();
    std::fs::write(path, ar.finish().unwrap()).unwrap();
}

fn opts() -> RepoOptions {
    RepoOptions {
        date: Some(1_700_000_000),
        architectures: vec!["arm64".into()],
        ..RepoOptions::default()
    }
}

/// What a reader sees: the dists target and every file under it, byte for byte.
type Snapshot = (PathBuf, Vec<(PathBuf, Vec<u8>)>, Vec<PathBuf>);

fn snapshot(repo: &Path) -> Snapshot {
    let target = std::fs::read_link(repo.join("dists")).unwrap();
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut ents: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        ents.sort();
        for p in ents {
            if p.is_dir() {
                walk(&p, out);
            } else {
                let b = std::fs::read(&p).unwrap();
                out.push((p, b));
            }
        }
    }
    walk(&repo.join("dists"), &mut files);
    let pool = repo::find_debs(&repo.join("pool")).unwrap();
    (target, files, pool)
}

struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    key: SigningKey,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let key = SigningKey::open_or_create(&root.join("key"), None).unwrap();
    let repo = root.join("repo");
    deb(&root.join("debs"), "alpha", "1.0", "arm64", "a");
    deb(&root.join("debs"), "beta", "2.0", "all", "b");
    let r = repo::update(&repo, &[root.join("debs")], &opts(), &key).unwrap();
    assert_eq!(r.packages, 2);
    Fixture {
        _t: t,
        root,
        repo,
        key,
    }
}

fn assert_fails_intact(f: &Fixture, input: &Path, want: &[&str]) {
    let before = snapshot(&f.repo);
    let e = repo::update(&f.repo, &[input.to_path_buf()], &opts(), &f.key).unwrap_err();
    let msg = format!("{e:#}");
    for w in want {
        assert!(msg.contains(w), "error {msg:?} should contain {w:?}");
    }
    assert_eq!(snapshot(&f.repo), before, "published repository changed");
    // Nothing half-built left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(f.repo.join(".dists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn truncated_deb_is_refused_and_repo_intact() {
    let f = fixture();
    let good = deb(
        &f.root.join("new"),
        "gamma",
        "1",
        "arm64",
        &"x".repeat(5000),
    );
    let bytes = std::fs::read(&good).unwrap();
    let bad = f.root.join("bad/gamma_1_arm64.deb");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
    assert_fails_intact(&f, &bad, &[&bad.display().to_string(), "truncated"]);
    // Not even a valid ar header.
    std::fs::write(&bad, &bytes[..30]).unwrap();
    assert_fails_intact(&f, &bad, &[&bad.display().to_string()]);
    std::fs::write(&bad, b"").unwrap();
    assert_fails_intact(&f, &bad, &[&bad.display().to_string(), "not an ar archive"]);
}

#[test]
fn bad_control_is_refused_and_repo_intact() {
    let f = fixture();
    let dir = f.root.join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "noversion.deb",
            "Package: gamma\nArchitecture: arm64\nMaintainer: t <t@x>\nDescription: d\n",
            &["missing required field Version"],
        ),
        (
            "badversion.deb",
            "Package: gamma\nVersion: one\nArchitecture: arm64\nMaintainer: t <t@x>\nDescription: d\n",
            &["field Version: invalid value \"one\""],
        ),
        (
            "badname.deb",
            "Package: Gamma_X\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@x>\nDescription: d\n",
            &["field Package: invalid value"],
        ),
        (
            "syntax.deb",
            "Package: gamma\nVersion: 1\nthis line has no colon\n",
            &["line 3: expected `Field: value`"],
        ),
        (
            "dup.deb",
            "Package: gamma\nVersion: 1\nVersion: 2\n",
            &["line 3: field Version appears twice"],
        ),
    ];
    for (name, text, want) in cases {
        let p = dir.join(name);
        raw_deb(&p, text);
        let mut w: Vec<&str> = want.to_vec();
        let shown = p.display().to_string();
        w.push(&shown);
        assert_fails_intact(&f, &p, &w);
        std::fs::remove_file(&p).unwrap();
    }
    // Several bad files at once: every one is named.
    raw_deb(&dir.join("a.deb"), "Package: a1\n");
    raw_deb(&dir.join("b.deb"), "Package: b1\nVersion: 1\n");
    let e = repo::update(&f.repo, std::slice::from_ref(&dir), &opts(), &f.key).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("2 bad input file(s)"), "{msg}");
    assert!(msg.contains("a.deb") && msg.contains("b.deb"), "{msg}");
}

#[test]
fn conflicting_files_are_refused_and_repo_intact() {
    let f = fixture();
    // Same package, version and arch as one in the repository, different bytes.
    let other = deb(&f.root.join("other"), "alpha", "1.0", "arm64", "different");
    assert_fails_intact(
        &f,
        &other,
        &[
            &other.display().to_string(),
            "claims alpha 1.0 arm64",
            "pool/main/a/alpha_1.0_arm64.deb",
        ],
    );
    // Two new files claiming one identity in the same run.
    let d = f.root.join("two");
    let a = deb(&d.join("x"), "delta", "1", "all", "one");
    let b = deb(&d.join("y"), "delta", "1", "all", "two");
    assert_fails_intact(
        &f,
        &d,
        &[
            &a.display().to_string(),
            &b.display().to_string(),
            "claims delta 1 all",
        ],
    );
    // The identical file again is fine (no change).
    let same = f.root.join("debs/alpha_1.0_arm64.deb");
    let copy = f.root.join("copy/alpha_1.0_arm64.deb");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&same, &copy).unwrap();
    let r = repo::update(&f.repo, &[copy], &opts(), &f.key).unwrap();
    assert_eq!(r.packages, 2);
    assert!(r.added.is_empty());
}

#[test]
fn incremental_reads_only_new_files() {
    let f = fixture();
    // No-op: nothing read.
    let r = repo::update(&f.repo, &[f.root.join("debs")], &opts(), &f.key).unwrap();
    assert!(r.read.is_empty(), "{:?}", r.read);
    // One new file: only it is read.
    let new = deb(&f.root.join("debs"), "gamma", "3", "arm64", "g");
    let r = repo::update(&f.repo, &[f.root.join("debs")], &opts(), &f.key).unwrap();
    assert_eq!(r.read, vec![std::fs::canonicalize(&new).unwrap()]);
    assert_eq!(r.packages, 3);
    assert_eq!(r.added, vec!["pool/main/g/gamma_3_arm64.deb"]);
    // Adding by file name works the same.
    let one = deb(&f.root.join("more"), "epsilon", "1", "all", "e");
    let r = repo::update(&f.repo, std::slice::from_ref(&one), &opts(), &f.key).unwrap();
    assert_eq!(r.read.len(), 1);
    assert_eq!(r.packages, 4);
    // A re-index with no inputs walks the pool but reads nothing.
    let r = repo::update(&f.repo, &[], &opts(), &f.key).unwrap();
    assert!(r.read.is_empty(), "{:?}", r.read);
    assert_eq!(r.packages, 4);
    // A lost cache means reading the pool again, with the same result.
    let before = std::fs::read(f.repo.join("dists/drydock/Release")).unwrap();
    std::fs::remove_file(f.repo.join(".deb-repo/index.json")).unwrap();
    let r = repo::update(&f.repo, &[], &opts(), &f.key).unwrap();
    assert_eq!(r.read.len(), 4);
    assert_eq!(
        std::fs::read(f.repo.join("dists/drydock/Release")).unwrap(),
        before
    );
    // The arch-specific Packages holds the `all` packages too.
    let p =
        std::fs::read_to_string(f.repo.join("dists/drydock/main/binary-arm64/Packages")).unwrap();
    let names: Vec<&str> = p
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .collect();
    assert_eq!(names, ["alpha", "beta", "epsilon", "gamma"]);
    let release = String::from_utf8(before).unwrap();
    assert!(
        release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC\n"),
        "{release}"
    );
    assert!(release.contains("Architectures: arm64\n"), "{release}");
    assert!(
        release.ends_with(" main/binary-arm64/Packages.xz"),
        "{release}"
    );
}

#[test]
fn index_is_the_same_whatever_the_history() {
    // Built in one go or one package at a time: identical Packages bytes (chunked compression
    // included) and Release.
    let f = fixture();
    for (i, name) in ["gamma", "delta", "epsilon", "zeta", "eta"]
        .iter()
        .enumerate()
    {
        let d = deb(&f.root.join("debs"), name, &format!("{i}"), "arm64", name);
        repo::update(&f.repo, &[d], &opts(), &f.key).unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let other = t.path().join("repo");
    repo::update(&other, &[f.root.join("debs")], &opts(), &f.key).unwrap();
    for file in ["Packages", "Packages.gz", "Packages.xz"] {
        let rel = format!("dists/drydock/main/binary-arm64/{file}");
        assert_eq!(
            std::fs::read(f.repo.join(&rel)).unwrap(),
            std::fs::read(other.join(&rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read(f.repo.join("dists/drydock/Release")).unwrap(),
        std::fs::read(other.join("dists/drydock/Release")).unwrap()
    );
}

#[test]
fn readers_never_see_a_mixed_index() {
    let f = fixture();
    let repo = f.repo.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // A reader resolves `dists` once per look and checks that Packages matches the Release
    // of the same generation.
    let reader = std::thread::spawn(move || {
        let mut checked = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok(target) = std::fs::read_link(repo.join("dists")) else {
                continue;
            };
            let gen = repo.join(target).join("drydock");
            let (Ok(release), Ok(packages)) = (
                std::fs::read_to_string(gen.join("Release")),
                std::fs::read(gen.join("main/binary-arm64/Packages")),
            ) else {
                continue; // an old generation removed meanwhile: look again
            };
            let sha = artifact::sha256_bytes(&packages);
            assert!(
                release.contains(&format!(
                    "{sha} {:>8} main/binary-arm64/Packages\n",
                    packages.len()
                )),
                "Packages does not match its Release"
            );
            checked += 1;
        }
        checked
    });
    for i in 0..8 {
        let d = deb(&f.root.join("debs"), &format!("pkg{i}"), "1", "arm64", "x");
        repo::update(&f.repo, &[d], &opts(), &f.key).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let checked = reader.join().unwrap();
    assert!(checked > 0);
    // Acquire-By-Hash: the current indices and the previous generation's are under by-hash.
    let release = std::fs::read_to_string(f.repo.join("dists/drydock/Release")).unwrap();
    assert!(release.contains("Acquire-By-Hash: yes\n"));
    let bh = f
        .repo
        .join("dists/drydock/main/binary-arm64/by-hash/SHA256");
    let mut current = 0;
    for line in release.lines().filter(|l| l.starts_with(' ')) {
        let sha = line.split_whitespace().next().unwrap();
        let got = std::fs::read(bh.join(sha)).unwrap();
        assert_eq!(artifact::sha256_bytes(&got), sha);
        current += 1;
    }
    assert_eq!(current, 3);
    assert_eq!(
        std::fs::read_dir(&bh).unwrap().count(),
        6,
        "current + previous"
    );
    // Only the current and the previous generation are kept.
    let gens = std::fs::read_dir(f.repo.join(".dists")).unwrap().count();
    assert!(gens <= 2, "{gens} generations kept");
}

#[test]
fn cli_build_reports_bad_file_and_exits_nonzero() {
    let t = tempfile::tempdir().unwrap();
    let debs = t.path().join("debs");
    let good = deb(&debs, "alpha", "1", "all", "a");
    let out = t.path().join("repo");
    let key = t.path().join("key");
    let run = |inputs: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_deb-repo"))
            .arg("build")
            .args(inputs)
            .arg("--out")
            .arg(&out)
            .arg("--key-dir")
            .arg(&key)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap()
    };
    let o = run(&[&debs]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "dists/drydock/InRelease",
        "dists/drydock/Release.gpg",
        "key.asc",
        "key.gpg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let asc = std::fs::read_to_string(out.join("key.asc")).unwrap();
    assert!(asc.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let release = std::fs::read_to_string(out.join("dists/drydock/Release")).unwrap();
    assert!(
        release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC"),
        "{release}"
    );
    let bytes = std::fs::read(&good).unwrap();
    let bad = t.path().join("cut.deb");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&[&bad]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&*bad.display().to_string()), "{err}");
    assert!(err.contains("repository was not changed"), "{err}");
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(&key)
        .args(["--kill", "gpg-agent"])
        .status();
}

#[test]
fn supplied_key_is_used() {
    // A key exported from one GnuPG home and imported into another signs the repository, and
    // the exported public key is that key.
    let t = tempfile::tempdir().unwrap();
    let first = SigningKey::open_or_create(&t.path().join("k1"), None).unwrap();
    let fpr = first.fingerprint().to_string();
    let secret = t.path().join("secret.asc");
    let o = Command::new("gpg")
        .arg("--homedir")
        .arg(first.home())
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(["--armor", "--export-secret-keys", "-o"])
        .arg(&secret)
        .arg(&fpr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    first.close().unwrap();
    let key = SigningKey::import(&t.path().join("k2"), &secret).unwrap();
    assert_eq!(key.fingerprint(), fpr);
    let debs = t.path().join("debs");
    deb(&debs, "alpha", "1", "all", "a");
    let repo = t.path().join("repo");
    repo::update(&repo, &[debs], &opts(), &key).unwrap();
    key.close().unwrap();
    // Reopening the second home finds the same key (no new one generated).
    let again =
        SigningKey::open_or_create(&t.path().join("k2"), Some(&fpr[fpr.len() - 16..])).unwrap();
    assert_eq!(again.fingerprint(), fpr);
    again.close().unwrap();
    let o = Command::new("gpgv")
        .arg("--keyring")
        .arg(repo.join("key.gpg"))
        .arg(repo.join("dists/drydock/InRelease"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&fpr[fpr.len() - 16..]));
    // A fingerprint that is not there is a clear error.
    let e = SigningKey::open_or_create(&t.path().join("k2"), Some("DEADBEEF")).unwrap_err();
    assert!(
        e.to_string()
            .contains("DEADBEEF is not a secret signing key"),
        "{e}"
    );
}

//! The upstream build path without the network: a kernel image package built here with
//! `dpkg-deb`, listed in a `Packages` text, and placed in the download cache under its sha256 (so
//! the fetcher never goes to the mirror). Shows that a config missing required options fails the
//! build naming each of them and leaves no artifact, and that a good one gives the .debs, the board
//! package, the report and the manifest metadata.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use artifact::{Builder, Store};
use kernel_packager::builder::{prepare_with, KIND};
use kernel_packager::mirror::{Index, Mirror};
use kernel_packager::readiness::Level;
use kernel_packager::spec::{BoardFile, BoardPackage, KernelSpec, Mode};
use kernel_packager::Error;

fn debian_config() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/debian-trixie-arm64-6.12.107.config.xz");
    let mut s = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Build `linux-image-6.0.0-test` holding `config` as /boot/config-6.0.0-test.
fn kernel_deb(dir: &Path, config: &str) -> PathBuf {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: linux-image-6.0.0-test\nVersion: 6.0.0-1\nArchitecture: arm64\nMaintainer: t <t@example.org>\nDescription: test kernel\n",
    )
    .unwrap();
    std::fs::write(root.join("boot/config-6.0.0-test"), config).unwrap();
    let deb = dir.join("linux-image-6.0.0-test_6.0.0-1_arm64.deb");
    let o = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::remove_dir_all(&root).unwrap();
    deb
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    work: PathBuf,
    packages: String,
}

fn setup(config: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let deb = kernel_deb(dir.path(), config);
    let (sha, size) = artifact::sha256_file(&deb).unwrap();
    let store = Store::open(dir.path().join("cache")).unwrap();
    let work = store.aux_dir("kernel").unwrap();
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    let cached = work.join("mirror/by-hash").join(&sha).join(&name);
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::rename(&deb, &cached).unwrap();
    let packages = format!(
        "Package: linux-image-6.0.0-test\nVersion: 6.0.0-1\nArchitecture: arm64\nFilename: pool/main/l/{name}\nSize: {size}\nSHA256: {sha}\n"
    );
    Setup {
        _dir: dir,
        store,
        work,
        packages,
    }
}

fn spec() -> KernelSpec {
    KernelSpec {
        name: "kernel-test".into(),
        board: "test-board".into(),
        arch: "arm64".into(),
        mirror: Mirror {
            url: "http://mirror.invalid/debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into()],
            arch: "arm64".into(),
            keyring: "/usr/share/keyrings/debian-archive-keyring.gpg".into(),
        },
        mode: Mode::Upstream {
            packages: vec!["linux-image-6.0.0-test".parse().unwrap()],
        },
        board_package: Some(BoardPackage {
            name: "drydock-kernel-config-test-board".into(),
            description: "test board".into(),
            files: vec![BoardFile {
                path: "/etc/default/raspi-firmware-custom".into(),
                content: "arm_64bit=1\n".into(),
                conffile: true,
            }],
        }),
        readiness: Some(Level::Docker),
    }
}

fn run(s: &Setup) -> Result<artifact::Entry, Error> {
    let texts = s.packages.clone();
    let p = prepare_with(spec(), &s.work, move |m: &Mirror, _| {
        Ok(Index::from_texts(m, vec![("main".into(), texts.clone())]))
    })?;
    let key = p.cache_key()?;
    let e = s.store.publish(&key, |staging| p.build(&key, staging))?;
    p.validate(&e)?;
    Ok(e)
}

#[test]
fn missing_required_options_fail_the_build_and_leave_nothing() {
    let text: String = debian_config()
        .lines()
        .filter(|l| {
            !l.starts_with("CONFIG_OVERLAY_FS=")
                && !l.starts_with("CONFIG_VETH=")
                && !l.starts_with("CONFIG_MEMCG=")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let s = setup(&text);
    let e = run(&s).unwrap_err();
    let Error::NotReady { level, missing, .. } = &e else {
        panic!("expected NotReady, got {e}")
    };
    assert_eq!(*level, Level::Docker);
    let mut m = missing.clone();
    m.sort();
    assert_eq!(m, ["CONFIG_MEMCG", "CONFIG_OVERLAY_FS", "CONFIG_VETH"]);
    let msg = e.to_string();
    for o in ["CONFIG_MEMCG", "CONFIG_OVERLAY_FS", "CONFIG_VETH", "docker"] {
        assert!(msg.contains(o), "{msg}");
    }
    // Nothing published, no staging left behind.
    let kdir = s.store.root().join("entries").join(KIND);
    let left: Vec<_> = std::fs::read_dir(&kdir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn good_config_gives_debs_report_and_manifest() {
    let s = setup(&debian_config());
    let e = run(&s).unwrap();
    let names: Vec<&str> = e.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        names.contains(&"linux-image-6.0.0-test_6.0.0-1_arm64.deb"),
        "{names:?}"
    );
    assert!(names.contains(&"report.json") && names.contains(&"report.txt"));
    let bp = names
        .iter()
        .find(|n| n.starts_with("drydock-kernel-config-test-board_"))
        .expect("board package");
    let info = deb_repo::read_deb(&e.path(bp)).unwrap();
    assert_eq!(info.conffiles(), ["/etc/default/raspi-firmware-custom"]);
    assert_eq!(e.manifest.version, "6.0.0-test");
    let md = &e.manifest.metadata;
    assert_eq!(md["kernel_release"], "6.0.0-test");
    assert_eq!(md["readiness"]["ok"], true);
    let pkgs = md["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 2);
    assert_eq!(pkgs[0]["name"], "linux-image-6.0.0-test");
    assert_eq!(pkgs[0]["origin"], "mirror");
    assert_eq!(pkgs[1]["origin"], "built");
}

//! What the builder writes is accepted by the real dpkg-deb and dpkg.

use std::path::Path;
use std::process::Command;

use deb_repo::{Compression, DebBuilder, DebReader, Stanza};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{cmd:?} warned: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn package(c: Compression) -> DebBuilder {
    let control = Stanza::parse(
        "Package: drydock-test\nVersion: 1:2.0-1\nArchitecture: all\nMaintainer: drydock <drydock@example.invalid>\nSection: admin\nPriority: optional\nDescription: dpkg acceptance test\n Built by deb-repo's DebBuilder.\n .\n Second paragraph.\n",
    )
    .unwrap();
    let mut b = DebBuilder::new(control);
    b.epoch(1_600_000_000)
        .data_compression(c)
        .control_compression(c);
    b.file("usr/bin/drydock-test", "#!/bin/sh\necho ok\n", 0o755)
        .unwrap();
    b.file("etc/drydock-test.conf", "a=1\n", 0o644).unwrap();
    b.conffile("/etc/drydock-test.conf").unwrap();
    b.symlink("usr/bin/dt", "drydock-test").unwrap();
    b.file(
        &format!("usr/share/doc/drydock-test/{}", "n".repeat(130)),
        "long\n",
        0o644,
    )
    .unwrap();
    b.script(
        "postinst",
        "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then echo configured > \"$DPKG_ROOT/postinst-ran\"; fi\n",
    )
    .unwrap();
    b.script("prerm", "#!/bin/sh\nset -e\nexit 0\n").unwrap();
    b
}

fn install_into(deb: &Path, root: &Path) {
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--log=/dev/null",
            "--force-script-chrootless",
            "--force-not-root",
            "-i",
        ])
        .arg(deb));
}

#[test]
fn dpkg_deb_and_dpkg_accept_builder_output() {
    let d = tempfile::tempdir().unwrap();
    for c in [
        Compression::Xz,
        Compression::Gzip,
        Compression::Zstd,
        Compression::None,
    ] {
        let dir = d.path().join(format!("{c:?}"));
        std::fs::create_dir_all(&dir).unwrap();
        let b = package(c);
        let deb = b.write_into(&dir).unwrap();
        assert_eq!(deb.file_name().unwrap(), "drydock-test_2.0-1_all.deb");

        let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
        assert!(info.contains("Package: drydock-test"), "{info}");
        assert!(info.contains("Installed-Size: "), "{info}");
        assert!(info.contains(" postinst"), "{info}");
        let field = run(Command::new("dpkg-deb")
            .args(["--field"])
            .arg(&deb)
            .arg("Version"));
        assert_eq!(field.trim(), "1:2.0-1");
        let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
        assert!(contents.contains("root/root"), "{contents}");
        assert!(
            contents.contains("./usr/bin/dt -> drydock-test"),
            "{contents}"
        );
        assert!(contents.contains(&"n".repeat(130)), "{contents}");
        assert!(contents.contains("2020-09-13"), "mtime clamp: {contents}");

        // dpkg-deb's own view of the control file equals ours.
        let ours = DebReader::open(&deb).unwrap().control().to_string();
        let theirs = run(Command::new("dpkg-deb").args(["--field"]).arg(&deb));
        assert_eq!(ours, theirs);

        let root = dir.join("root");
        install_into(&deb, &root);
        assert_eq!(
            std::fs::read_to_string(root.join("usr/bin/drydock-test")).unwrap(),
            "#!/bin/sh\necho ok\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("postinst-ran")).unwrap(),
            "configured\n"
        );
        let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        assert!(status.contains("Status: install ok installed"), "{status}");
        assert!(
            status.contains("Conffiles:\n /etc/drydock-test.conf "),
            "{status}"
        );
        // dpkg verifies files against md5sums: nothing reported.
        let verify = run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["--verify", "drydock-test"]));
        assert_eq!(verify, "");
    }
}

#[test]
fn dpkg_deb_build_output_is_readable() {
    // The reader handles what dpkg-deb itself writes.
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("pkg");
    std::fs::create_dir_all(src.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(src.join("usr/share/foo")).unwrap();
    std::fs::write(src.join("usr/share/foo/bar"), "baz\n").unwrap();
    std::fs::write(
        src.join("DEBIAN/control"),
        "Package: foo\nVersion: 1.0\nArchitecture: arm64\nMaintainer: x <x@y.z>\nDescription: foo\n",
    )
    .unwrap();
    for z in ["xz", "gzip", "zstd"] {
        let deb = d.path().join(format!("foo-{z}.deb"));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Z", z, "--build"])
            .arg(&src)
            .arg(&deb));
        let mut r = DebReader::open(&deb).unwrap();
        assert_eq!(r.info().architecture(), "arm64");
        assert_eq!(
            r.extract_file("/usr/share/foo/bar").unwrap().unwrap(),
            b"baz\n"
        );
    }
}

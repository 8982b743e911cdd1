//! System trees as tarballs, through GNU tar (it keeps ownership, modes, device nodes, hard links
//! and extended attributes — file capabilities among them — exactly).
//!
//! [`pack`] is reproducible: entries sorted by name, POSIX format without atime/ctime, numeric
//! owners, mtimes clamped to `SOURCE_DATE_EPOCH`, compressed by `zstd` (multithreaded; its output
//! does not depend on the thread count).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// The zstd level of system tarballs.
const LEVEL: u32 = 3;

/// Extract `tarball` (any compression GNU tar detects: .tar, .tar.zst, .tar.xz, .tar.gz) into
/// `dest`, keeping owners (numeric), modes, hard links and xattrs.
pub fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut c = Command::new("tar");
    c.args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(tarball)
        .arg("-C")
        .arg(dest);
    if tarball.extension().is_some_and(|e| e == "zst") {
        c.arg("--use-compress-program=zstd -q");
    }
    artifact::cmd::run(&mut c).with_context(|| format!("unpacking {}", tarball.display()))?;
    Ok(())
}

/// Pack `tree` into `out` (`.tar.zst`), reproducibly.
pub fn pack(tree: &Path, out: &Path, epoch: i64) -> Result<()> {
    let mut c = Command::new("tar");
    c.env("ZSTD_CLEVEL", LEVEL.to_string())
        .args([
            "--sort=name",
            "--format=posix",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            &format!("--mtime=@{epoch}"),
            "--clamp-mtime",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            &format!("--use-compress-program=zstd -q -T0 -{LEVEL}"),
            "-cf",
        ])
        .arg(out)
        .arg("-C")
        .arg(tree)
        .arg(".");
    artifact::cmd::run(&mut c)
        .with_context(|| format!("packing {} into {}", tree.display(), out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn roundtrip_keeps_links_modes_and_is_reproducible() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("usr/bin")).unwrap();
        std::fs::write(t.join("usr/bin/a"), "a").unwrap();
        std::fs::hard_link(t.join("usr/bin/a"), t.join("usr/bin/b")).unwrap();
        std::os::unix::fs::symlink("a", t.join("usr/bin/c")).unwrap();
        std::fs::set_permissions(
            t.join("usr/bin/a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        pack(&t, &d.path().join("1.tar.zst"), 1_700_000_000).unwrap();
        // Touching the tree (mtime now, after the epoch) does not change the packed bytes.
        std::fs::write(t.join("usr/bin/a"), "a").unwrap();
        pack(&t, &d.path().join("2.tar.zst"), 1_700_000_000).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("1.tar.zst")).unwrap(),
            std::fs::read(d.path().join("2.tar.zst")).unwrap()
        );
        let u = d.path().join("u");
        unpack(&d.path().join("1.tar.zst"), &u).unwrap();
        let a = std::fs::metadata(u.join("usr/bin/a")).unwrap();
        let b = std::fs::metadata(u.join("usr/bin/b")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o4755);
        assert_eq!(a.mtime(), 1_700_000_000);
        assert_eq!(
            std::fs::read_link(u.join("usr/bin/c")).unwrap(),
            Path::new("a")
        );
    }

    #[test]
    fn corrupt_tarball_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rootfs.tar.zst");
        std::fs::write(&p, b"not a tarball").unwrap();
        let e = format!("{:#}", unpack(&p, &d.path().join("x")).unwrap_err());
        assert!(e.contains("rootfs.tar.zst"), "{e}");
    }
}

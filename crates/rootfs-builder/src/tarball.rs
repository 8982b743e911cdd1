//! Compressing the tarball and reading it back: the dpkg status and the cleanliness checks are
//! read from the finished `.tar.zst` itself, so what is checked is exactly what is published.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use artifact::IoContext;

use crate::spec::Arch;
use crate::Error;

/// Fixed zstd parameters (part of the cache key): the output depends only on the input and these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Zstd {
    pub level: i32,
    /// Long-distance matching window (log2 bytes); 0 disables long mode.
    pub window_log: u32,
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd {
            level: 6,
            window_log: 0,
        }
    }
}

/// Worker threads for zstd: the machine's cores. zstd's multithreaded output does not depend on
/// the number of workers (a unit test checks it), so this is not part of the cache key.
pub fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .max(1)
}

/// Compress `src` into `dst` with multithreaded zstd; returns (input bytes, output bytes).
pub fn compress(src: &Path, dst: &Path, z: Zstd, workers: u32) -> Result<(u64, u64), Error> {
    let input = File::open(src).io_context(|| format!("opening {}", src.display()))?;
    let len = input
        .metadata()
        .io_context(|| format!("stat {}", src.display()))?
        .len();
    let out = File::create(dst).io_context(|| format!("creating {}", dst.display()))?;
    let ctx = || format!("compressing {} into {}", src.display(), dst.display());
    let mut enc = zstd::stream::Encoder::new(BufWriter::new(out), z.level).io_context(ctx)?;
    enc.multithread(workers.max(1)).io_context(ctx)?;
    enc.include_checksum(true).io_context(ctx)?;
    enc.set_pledged_src_size(Some(len)).io_context(ctx)?;
    if z.window_log > 0 {
        enc.long_distance_matching(true).io_context(ctx)?;
        enc.window_log(z.window_log).io_context(ctx)?;
    }
    std::io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc).io_context(ctx)?;
    let w = enc.finish().io_context(ctx)?;
    let f = w.into_inner().map_err(|e| e.into_error()).io_context(ctx)?;
    f.sync_all()
        .io_context(|| format!("syncing {}", dst.display()))?;
    let out_len = f
        .metadata()
        .io_context(|| format!("stat {}", dst.display()))?
        .len();
    Ok((len, out_len))
}

/// What the checks need from a tarball, collected in one pass.
#[derive(Debug, Default, Clone)]
pub struct Contents {
    /// Member paths without the leading `./`, with their type and (for links) target.
    pub entries: BTreeMap<String, Member>,
    /// Small files read whole: dpkg status, shadow, os-release, hostname, hosts, machine-id.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The first 64 bytes of `usr/bin/bash`.
    pub bash_head: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    File { size: u64 },
    Dir,
    Symlink(String),
    Hardlink(String),
    Other,
}

/// Files read whole by [`read_contents`].
pub const READ_FILES: &[&str] = &[
    "var/lib/dpkg/status",
    "etc/shadow",
    "etc/os-release",
    "etc/hostname",
    "etc/hosts",
    "etc/machine-id",
    "etc/default/locale",
    "etc/timezone",
    "etc/apt/sources.list.d/debian.sources",
];

/// Normalise a member path: strip `./` and a trailing `/`.
pub fn norm(p: &str) -> String {
    p.trim_start_matches("./")
        .trim_end_matches('/')
        .trim_start_matches('/')
        .to_string()
}

/// Read a `.tar.zst` (or plain `.tar` when `zstd` is false) and collect [`Contents`].
pub fn read_contents(path: &Path) -> Result<Contents, Error> {
    let ctx = || format!("reading rootfs tarball {}", path.display());
    let f = File::open(path).io_context(ctx)?;
    let is_zst = path.extension().is_some_and(|e| e == "zst");
    let reader: Box<dyn Read> = if is_zst {
        Box::new(zstd::stream::Decoder::new(f).io_context(ctx)?)
    } else {
        Box::new(BufReader::new(f))
    };
    let mut ar = tar::Archive::new(reader);
    let mut c = Contents::default();
    for ent in ar.entries().io_context(ctx)? {
        let mut ent = ent.io_context(ctx)?;
        let p = norm(&ent.path().io_context(ctx)?.to_string_lossy());
        let h = ent.header();
        let link = || {
            ent.link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let m = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                Member::File { size: ent.size() }
            }
            tar::EntryType::Directory => Member::Dir,
            tar::EntryType::Symlink => Member::Symlink(link()),
            tar::EntryType::Link => Member::Hardlink(norm(&link())),
            _ => Member::Other,
        };
        if matches!(m, Member::File { .. }) {
            if READ_FILES.contains(&p.as_str()) {
                let mut v = Vec::new();
                ent.read_to_end(&mut v).io_context(ctx)?;
                c.files.insert(p.clone(), v);
            } else if p == "usr/bin/bash" {
                let mut v = vec![0u8; 64];
                let mut got = 0;
                while got < v.len() {
                    let n = ent.read(&mut v[got..]).io_context(ctx)?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                v.truncate(got);
                c.bash_head = v;
            }
        }
        c.entries.insert(p, m);
    }
    Ok(c)
}

/// The ELF `e_machine` of a file head, if it is an ELF file.
pub fn elf_machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let le = head[5] == 1;
    let b = [head[18], head[19]];
    Some(if le {
        u16::from_le_bytes(b)
    } else {
        u16::from_be_bytes(b)
    })
}

impl Contents {
    fn text(&self, p: &str) -> Option<String> {
        self.files
            .get(p)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every way the tree breaks the promises of a clean image; empty when it keeps them all.
    pub fn problems(&self, arch: Arch, hostname: &str, image_id: &str) -> Vec<String> {
        let mut p = Vec::new();
        match elf_machine(&self.bash_head) {
            Some(m) if m == arch.elf_machine() => {}
            other => p.push(format!(
                "/usr/bin/bash is not an {arch} ELF binary (e_machine {other:?})"
            )),
        }
        match self.text("etc/shadow") {
            None => p.push("/etc/shadow is missing".into()),
            Some(s) => {
                let root = s.lines().find(|l| l.starts_with("root:"));
                let pw = root.and_then(|l| l.split(':').nth(1)).unwrap_or("");
                if !(pw.starts_with('!') || pw == "*") {
                    p.push(format!(
                        "root is not locked in /etc/shadow (password field {pw:?})"
                    ));
                }
            }
        }
        for path in self.entries.keys() {
            if path.starts_with("etc/ssh/ssh_host_") {
                p.push(format!("SSH host key /{path} is in the image"));
            }
            if let Some(rest) = path.strip_prefix("var/lib/apt/lists/") {
                if !(rest == "partial" || rest == "lock" || rest == "auxfiles") {
                    p.push(format!("apt list /{path} is in the image"));
                }
            }
            if path.starts_with("var/cache/apt/")
                && (path.ends_with(".bin") || path.ends_with(".deb"))
            {
                p.push(format!("apt cache /{path} is in the image"));
            }
        }
        match self.entries.get("etc/machine-id") {
            Some(Member::File { size: 0 }) => {}
            other => p.push(format!("/etc/machine-id is not an empty file ({other:?})")),
        }
        if self.entries.contains_key("var/lib/dbus/machine-id") {
            p.push("/var/lib/dbus/machine-id is in the image".into());
        }
        if let Some(Member::File { .. }) = self.entries.get("etc/resolv.conf") {
            p.push("/etc/resolv.conf (the build host's) is in the image".into());
        }
        if self.text("etc/hostname").as_deref().map(str::trim) != Some(hostname) {
            p.push(format!(
                "/etc/hostname is {:?}, not {hostname:?}",
                self.text("etc/hostname")
            ));
        }
        let want = format!("IMAGE_ID=\"{image_id}\"");
        if !self
            .text("etc/os-release")
            .is_some_and(|t| t.lines().any(|l| l == want))
        {
            p.push(format!("/etc/os-release lacks {want}"));
        }
        if !self.files.contains_key("var/lib/dpkg/status") {
            p.push("/var/lib/dpkg/status is missing".into());
        }
        p
    }

    /// The dpkg status text.
    pub fn dpkg_status(&self) -> Option<String> {
        self.text("var/lib/dpkg/status")
    }
}

/// Write `<name>.sha256` in `sha256sum` format beside `path`.
pub fn write_sha256_file(path: &Path, sha256: &str) -> Result<std::path::PathBuf, Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let side = path.with_file_name(format!("{name}.sha256"));
    let mut f = File::create(&side).io_context(|| format!("creating {}", side.display()))?;
    writeln!(f, "{sha256}  {name}").io_context(|| format!("writing {}", side.display()))?;
    f.sync_all()
        .io_context(|| format!("syncing {}", side.display()))?;
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic, compressible test data (a few MiB of text-like bytes).
    fn data(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x: u32 = 12345;
        while v.len() < n {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            let w = (x >> 16) % 64;
            v.extend_from_slice(format!("word{w} ").as_bytes());
        }
        v.truncate(n);
        v
    }

    /// zstd's multithreaded frames do not depend on the number of workers: the tarball is the
    /// same on a 2-core CI machine and a 32-core workstation.
    #[test]
    fn zstd_output_independent_of_workers() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in.tar");
        std::fs::write(&src, data(24 << 20)).unwrap();
        let z = Zstd::default();
        let mut outs = Vec::new();
        for w in [1, 2, 4] {
            let dst = d.path().join(format!("out{w}.zst"));
            let (i, o) = compress(&src, &dst, z, w).unwrap();
            assert_eq!(i, 24 << 20);
            assert!(o < i / 2);
            outs.push(std::fs::read(&dst).unwrap());
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
        let back = zstd::stream::decode_all(&outs[0][..]).unwrap();
        assert_eq!(back, data(24 << 20));
    }

    fn tar_with(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, c) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(c.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("./{p}"), *c).unwrap();
        }
        for (p, t) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, format!("./{p}"), t).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn aarch64_head() -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&183u16.to_le_bytes());
        h
    }

    #[test]
    fn clean_tree_has_no_problems_and_dirty_one_lists_them() {
        let d = tempfile::tempdir().unwrap();
        let bash = aarch64_head();
        let clean = tar_with(
            &[
                ("usr/bin/bash", &bash),
                ("etc/shadow", b"root:!*:19000:0:99999:7:::\n"),
                ("etc/machine-id", b""),
                ("etc/hostname", b"black-pearl\n"),
                ("etc/os-release", b"ID=debian\nIMAGE_ID=\"drydock\"\n"),
                ("var/lib/dpkg/status", b"Package: a\n"),
            ],
            &[("bin", "usr/bin")],
        );
        let p = d.path().join("clean.tar");
        std::fs::write(&p, &clean).unwrap();
        let c = read_contents(&p).unwrap();
        assert_eq!(
            c.entries.get("bin"),
            Some(&Member::Symlink("usr/bin".into()))
        );
        assert_eq!(
            c.problems(Arch::Arm64, "black-pearl", "drydock"),
            Vec::<String>::new()
        );
        // The same tree is wrong for another arch.
        assert_eq!(c.problems(Arch::Amd64, "black-pearl", "drydock").len(), 1);

        let dirty = tar_with(
            &[
                ("usr/bin/bash", &bash),
                ("etc/shadow", b"root:$y$abc:19000:0:99999:7:::\n"),
                ("etc/machine-id", b"0123456789abcdef\n"),
                ("etc/hostname", b"buildhost\n"),
                ("etc/resolv.conf", b"nameserver 1.1.1.1\n"),
                ("etc/ssh/ssh_host_ed25519_key", b"k"),
                (
                    "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease",
                    b"x",
                ),
                ("var/cache/apt/pkgcache.bin", b"x"),
                ("etc/os-release", b"ID=debian\n"),
            ],
            &[],
        );
        let p = d.path().join("dirty.tar");
        std::fs::write(&p, &dirty).unwrap();
        let probs = read_contents(&p)
            .unwrap()
            .problems(Arch::Arm64, "black-pearl", "drydock");
        for needle in [
            "root is not locked",
            "SSH host key /etc/ssh/ssh_host_ed25519_key",
            "apt list /var/lib/apt/lists/",
            "apt cache /var/cache/apt/pkgcache.bin",
            "/etc/machine-id is not an empty file",
            "/etc/resolv.conf",
            "/etc/hostname is",
            "/etc/os-release lacks IMAGE_ID=\"drydock\"",
            "/var/lib/dpkg/status is missing",
        ] {
            assert!(
                probs.iter().any(|p| p.contains(needle)),
                "{needle}: {probs:#?}"
            );
        }
    }

    #[test]
    fn reads_zstd_tarballs() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_with(&[("var/lib/dpkg/status", b"Package: a\n")], &[]);
        let plain = d.path().join("r.tar");
        std::fs::write(&plain, &t).unwrap();
        let z = d.path().join("r.tar.zst");
        compress(&plain, &z, Zstd::default(), 2).unwrap();
        let c = read_contents(&z).unwrap();
        assert_eq!(c.dpkg_status().as_deref(), Some("Package: a\n"));
        let side = write_sha256_file(&z, "abc").unwrap();
        assert_eq!(std::fs::read_to_string(side).unwrap(), "abc  r.tar.zst\n");
    }

    #[test]
    fn elf_machines() {
        assert_eq!(elf_machine(&aarch64_head()), Some(183));
        assert_eq!(elf_machine(b"#!/bin/sh\n"), None);
    }
}

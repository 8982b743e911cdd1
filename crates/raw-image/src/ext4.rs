//! Read-only access to an ext4 file system inside an image file, at a byte offset, without
//! mounting: `debugfs` with the device name `IMAGE?offset=BYTES` (an e2fsprogs unix-io option).
//!
//! debugfs exits 0 even when a request fails; errors are recognised on its stderr (anything but
//! the version banner) and returned naming the path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::tree::{self, Kind, Node, Tree};

/// An ext4 file system `offset` bytes into `image`.
#[derive(Debug, Clone)]
pub struct Ext4 {
    image: PathBuf,
    offset: u64,
}

/// What `stat` tells about one inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub ino: u64,
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u32,
    /// A fast or slow symlink's target.
    pub target: Option<String>,
    /// A device node's (major, minor).
    pub rdev: Option<(u32, u32)>,
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirEntry {
    pub name: String,
    pub ino: u64,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size for non-folders; 0 for folders.
    pub size: u64,
}

/// Quote a path for debugfs' request parser (double quotes, inner quotes doubled).
fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// Lines of debugfs stderr that are not the banner.
fn errors(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Ext4 {
    /// The ext4 file system starting `offset` bytes into `image` (a partition's `start_bytes`).
    pub fn new(image: impl Into<PathBuf>, offset: u64) -> Ext4 {
        Ext4 {
            image: image.into(),
            offset,
        }
    }

    /// The device name e2fsprogs tools accept for this file system (`IMAGE?offset=N`).
    pub fn device(&self) -> String {
        format!("{}?offset={}", self.image.display(), self.offset)
    }

    fn fs_err(&self, message: String) -> Error {
        Error::Fs {
            fs: "ext4",
            image: self.image.display().to_string(),
            offset: self.offset,
            message,
        }
    }

    /// Run one debugfs request; `Err` when it printed an error.
    fn request(&self, req: &str) -> Result<Vec<u8>> {
        let mut c = Command::new("debugfs");
        c.arg("-R").arg(req).arg(self.device());
        let out = artifact::cmd::run(&mut c)?;
        let e = errors(&out.stderr);
        if !e.is_empty() {
            return Err(self.fs_err(format!("debugfs {req}: {e}")));
        }
        Ok(out.stdout)
    }

    /// Run many requests in one debugfs; returns each request's stdout (in order).
    fn batch(&self, reqs: &[String]) -> Result<Vec<String>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut script =
            tempfile::NamedTempFile::new().ctx(|| "creating a temporary file".into())?;
        {
            use std::io::Write;
            for r in reqs {
                writeln!(script, "{r}").ctx(|| "writing a debugfs script".into())?;
            }
            script.flush().ctx(|| "writing a debugfs script".into())?;
        }
        let mut c = Command::new("debugfs");
        c.arg("-f").arg(script.path()).arg(self.device());
        let out = artifact::cmd::run(&mut c)?;
        let e = errors(&out.stderr);
        if !e.is_empty() {
            return Err(self.fs_err(format!("debugfs: {e}")));
        }
        let text = out.stdout_str();
        let mut sections: Vec<String> = Vec::new();
        for line in text.split_inclusive('\n') {
            if line.starts_with("debugfs: ") {
                sections.push(String::new());
            } else if let Some(s) = sections.last_mut() {
                s.push_str(line);
            }
        }
        if sections.len() != reqs.len() {
            return Err(self.fs_err(format!(
                "debugfs answered {} of {} requests",
                sections.len(),
                reqs.len()
            )));
        }
        Ok(sections)
    }

    /// Read a whole file (symlinks are not followed).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let st = self.stat(path)?;
        if st.kind != Kind::File {
            return Err(self.fs_err(format!("{path:?} is a {:?}, not a file", st.kind)));
        }
        let data = self.request(&format!("cat <{}>", st.ino))?;
        if data.len() as u64 != st.size {
            return Err(self.fs_err(format!(
                "{path:?}: read {} bytes but the inode says {}",
                data.len(),
                st.size
            )));
        }
        Ok(data)
    }

    /// Whether a path exists (the last component is not followed).
    pub fn exists(&self, path: &str) -> Result<bool> {
        match self.stat(path) {
            Ok(_) => Ok(true),
            Err(Error::Fs { message, .. }) if message.contains("File not found") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Kind, mode, owner, size, link count, symlink target and device numbers of a path.
    pub fn stat(&self, path: &str) -> Result<Stat> {
        let out = self.request(&format!("stat {}", quote(path)))?;
        let text = String::from_utf8_lossy(&out);
        let mut st = parse_stat(&text)
            .ok_or_else(|| self.fs_err(format!("cannot parse debugfs stat of {path:?}")))?;
        if st.kind == Kind::Symlink && st.target.is_none() {
            let t = self.request(&format!("cat <{}>", st.ino))?;
            st.target = Some(String::from_utf8_lossy(&t).into_owned());
        }
        Ok(st)
    }

    /// List a folder (without `.` and `..`), in directory order.
    pub fn list_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let out = self.request(&format!("ls -p {}", quote(path)))?;
        let text = String::from_utf8_lossy(&out);
        parse_ls(&text).ok_or_else(|| self.fs_err(format!("cannot parse debugfs ls of {path:?}")))
    }

    /// Read the whole file system as a [`Tree`] (names, kinds, modes, owners, sizes, content
    /// hashes, symlink targets, device numbers, hard links), with a few debugfs runs: one per
    /// folder depth, one for symlinks and devices, one to dump file contents.
    pub fn dump_tree(&self) -> Result<Tree> {
        let root = self.stat("/")?;
        let mut tree = Tree::default();
        tree.nodes.insert(
            "/".into(),
            Node {
                kind: Kind::Dir,
                mode: root.mode,
                uid: root.uid,
                gid: root.gid,
                size: 0,
                sha256: None,
                target: None,
                rdev: None,
                hardlink_of: None,
            },
        );
        let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut level: Vec<(String, u64)> = vec![("/".into(), root.ino)];
        while !level.is_empty() {
            let reqs: Vec<String> = level
                .iter()
                .map(|(_, ino)| format!("ls -p <{ino}>"))
                .collect();
            let outs = self.batch(&reqs)?;
            let mut next = Vec::new();
            for ((dir, _), out) in level.iter().zip(outs) {
                let entries = parse_ls(&out)
                    .ok_or_else(|| self.fs_err(format!("cannot parse debugfs ls of {dir:?}")))?;
                for e in entries {
                    let p = tree::join(dir, &e.name);
                    if e.kind == Kind::Dir {
                        next.push((p.clone(), e.ino));
                    } else {
                        by_ino.entry(e.ino).or_default().push(p.clone());
                    }
                    tree.nodes.insert(
                        p,
                        Node {
                            kind: e.kind,
                            mode: e.mode,
                            uid: e.uid,
                            gid: e.gid,
                            size: if matches!(e.kind, Kind::File | Kind::Symlink) {
                                e.size
                            } else {
                                0
                            },
                            sha256: None,
                            target: None,
                            rdev: None,
                            hardlink_of: None,
                        },
                    );
                }
            }
            level = next;
        }
        // Symlink targets and device numbers: one stat per such inode.
        let special: Vec<(u64, String)> = by_ino
            .iter()
            .filter_map(|(ino, paths)| {
                let n = &tree.nodes[&paths[0]];
                matches!(n.kind, Kind::Symlink | Kind::CharDevice | Kind::BlockDevice)
                    .then(|| (*ino, paths[0].clone()))
            })
            .collect();
        let outs = self.batch(
            &special
                .iter()
                .map(|(ino, _)| format!("stat <{ino}>"))
                .collect::<Vec<_>>(),
        )?;
        let mut slow_links = Vec::new();
        for ((ino, path), out) in special.iter().zip(outs) {
            let st = parse_stat(&out)
                .ok_or_else(|| self.fs_err(format!("cannot parse debugfs stat of {path:?}")))?;
            if st.kind == Kind::Symlink && st.target.is_none() {
                slow_links.push(*ino);
            }
            for p in &by_ino[ino] {
                if let Some(n) = tree.nodes.get_mut(p) {
                    n.target = st.target.clone();
                    n.rdev = st.rdev;
                }
            }
        }
        // Regular file contents and slow symlink targets: dump each inode once to a temp folder.
        let tmp = tempfile::tempdir().ctx(|| "creating a temporary folder".into())?;
        let files: Vec<u64> = by_ino
            .iter()
            .filter(|(_, paths)| tree.nodes[&paths[0]].kind == Kind::File)
            .map(|(ino, _)| *ino)
            .chain(slow_links.iter().copied())
            .collect();
        let reqs: Vec<String> = files
            .iter()
            .map(|ino| {
                format!(
                    "dump <{ino}> {}",
                    quote(&tmp.path().join(ino.to_string()).to_string_lossy())
                )
            })
            .collect();
        self.batch(&reqs)?;
        for ino in files {
            let f = tmp.path().join(ino.to_string());
            let kind = tree.nodes[&by_ino[&ino][0]].kind;
            let (sha, target) = if kind == Kind::Symlink {
                let t = std::fs::read(&f).ctx(|| format!("reading {}", f.display()))?;
                (None, Some(String::from_utf8_lossy(&t).into_owned()))
            } else {
                (Some(artifact::sha256_file(&f)?.0), None)
            };
            let _ = std::fs::remove_file(&f);
            for p in &by_ino[&ino] {
                if let Some(n) = tree.nodes.get_mut(p) {
                    if sha.is_some() {
                        n.sha256 = sha.clone();
                    }
                    if target.is_some() {
                        n.target = target.clone();
                    }
                }
            }
        }
        tree.mark_hardlinks(by_ino.into_values());
        Ok(tree)
    }

    /// `e2fsck -fn` on the file system; `Err` with its output when it finds anything.
    pub fn fsck(&self) -> Result<()> {
        let mut c = Command::new("e2fsck");
        c.arg("-fn").arg(self.device());
        match artifact::cmd::run(&mut c) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fs_err(format!("e2fsck -fn is not clean: {e}"))),
        }
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }
}

fn kind_from_type(t: &str) -> Option<Kind> {
    Some(match t {
        "regular" => Kind::File,
        "directory" => Kind::Dir,
        "symlink" => Kind::Symlink,
        "character special" => Kind::CharDevice,
        "block special" => Kind::BlockDevice,
        "FIFO" => Kind::Fifo,
        "socket" => Kind::Socket,
        _ => return None,
    })
}

/// The token after `key` in `line`, up to whitespace.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line[at..].split_whitespace().next()
}

/// Parse debugfs `stat` output.
fn parse_stat(text: &str) -> Option<Stat> {
    let mut ino = None;
    let mut kind = None;
    let mut mode = None;
    let mut uid = None;
    let mut gid = None;
    let mut size = None;
    let mut links = None;
    let mut target = None;
    let mut rdev = None;
    for line in text.lines() {
        if line.starts_with("Inode: ") {
            ino = field(line, "Inode:")?.parse().ok();
            let t = line.split("Type: ").nth(1)?;
            let t = t.split("Mode:").next()?.trim();
            kind = kind_from_type(t);
            mode = u32::from_str_radix(field(line, "Mode:")?, 8).ok();
        } else if line.starts_with("User: ") {
            uid = field(line, "User:")?.parse().ok();
            gid = field(line, "Group:")?.parse().ok();
            size = field(line, "Size:")?.parse().ok();
        } else if line.starts_with("Links: ") {
            links = field(line, "Links:")?.parse().ok();
        } else if let Some(rest) = line.strip_prefix("Fast link dest: \"") {
            target = Some(rest.strip_suffix('"').unwrap_or(rest).to_string());
        } else if let Some(rest) = line
            .strip_prefix("Device major/minor number: ")
            .or_else(|| line.strip_prefix("(New-style) Device major/minor number: "))
        {
            let mm = rest.split_whitespace().next()?;
            let (a, b) = mm.split_once(':')?;
            rdev = Some((a.parse().ok()?, b.parse().ok()?));
        }
    }
    Some(Stat {
        ino: ino?,
        kind: kind?,
        mode: mode? & 0o7777,
        uid: uid?,
        gid: gid?,
        size: size?,
        links: links?,
        target,
        rdev,
    })
}

/// Parse debugfs `ls -p` output: `/INO/MODE/UID/GID/NAME/SIZE/` per line.
fn parse_ls(text: &str) -> Option<Vec<DirEntry>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let inner = line.strip_prefix('/')?.strip_suffix('/')?;
        // NAME cannot hold '/', so split from both ends.
        let mut head = inner.splitn(5, '/');
        let ino: u64 = head.next()?.parse().ok()?;
        let mode = u32::from_str_radix(head.next()?, 8).ok()?;
        let uid: u32 = head.next()?.parse().ok()?;
        let gid: u32 = head.next()?.parse().ok()?;
        let rest = head.next()?;
        let (name, size) = rest.rsplit_once('/')?;
        if name == "." || name == ".." || ino == 0 {
            // ino 0: unused directory slots (lost+found is pre-allocated with them)
            continue;
        }
        let kind = Kind::from_mode(mode)?;
        out.push(DirEntry {
            name: name.to_string(),
            ino,
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: if kind == Kind::Dir {
                0
            } else {
                size.parse().ok()?
            },
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines() {
        let t = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n/12/020644/0/0/cdev/0/\n/17/120777/5/6/long link/100/\n\n";
        let e = parse_ls(t).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "lost+found");
        assert_eq!(e[0].mode, 0o700);
        assert_eq!(e[1].kind, Kind::CharDevice);
        assert_eq!(e[2].name, "long link");
        assert_eq!((e[2].uid, e[2].gid, e[2].size), (5, 6, 100));
        assert!(parse_ls("garbage\n").is_none());
    }

    #[test]
    fn stat_text() {
        let t = "Inode: 12   Type: character special    Mode:  0644   Flags: 0x0\nGeneration: 0    Version: 0x00000000:00000000\nUser:     0   Group:     5   Project:     0   Size: 0\nFile ACL: 0\nLinks: 1   Blockcount: 0\nDevice major/minor number: 01:03 (hex 01:03)\n";
        let s = parse_stat(t).unwrap();
        assert_eq!(s.kind, Kind::CharDevice);
        assert_eq!(s.rdev, Some((1, 3)));
        assert_eq!((s.ino, s.mode, s.gid, s.links), (12, 0o644, 5, 1));
        let t = "Inode: 15   Type: symlink    Mode:  0777   Flags: 0x0\nUser:     0   Group:     0   Project:     0   Size: 1\nLinks: 1   Blockcount: 0\nFast link dest: \"x\"\n";
        assert_eq!(parse_stat(t).unwrap().target.as_deref(), Some("x"));
    }
}

//! A comparable description of a file tree: what a filled image must hold.
//!
//! [`scan`] reads a host folder; [`crate::ext4::Ext4::dump_tree`] and [`crate::fat::Fat`] read a
//! file system inside an image into the same shape, and [`Tree::diff`] says how two differ.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;

use crate::error::{IoContext, Result};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl Kind {
    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            0o020000 => Kind::CharDevice,
            0o060000 => Kind::BlockDevice,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => return None,
        })
    }
}

/// One node of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files and symlinks; 0 otherwise.
    pub size: u64,
    /// sha256 of a regular file's contents.
    pub sha256: Option<String>,
    /// A symlink's target.
    pub target: Option<String>,
    /// A device node's (major, minor).
    pub rdev: Option<(u32, u32)>,
    /// For the second and later paths of a hard-linked file: the first path (in sorted order).
    pub hardlink_of: Option<String>,
}

/// Paths (`/`, `/etc`, `/etc/hostname`) to nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

/// Linux's encoding of `dev_t` into major and minor.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    (major as u32, minor as u32)
}

/// Join a parent path and a name into a tree path.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Read a host folder: every node's kind, mode, owner, size, content hash, link target, device
/// numbers and hard links.
pub fn scan(root: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    scan_into(root, "/", &mut tree, &mut inodes)?;
    tree.mark_hardlinks(inodes.into_values());
    Ok(tree)
}

fn scan_into(
    host: &Path,
    path: &str,
    tree: &mut Tree,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) -> Result<()> {
    let md = std::fs::symlink_metadata(host).ctx(|| format!("stat {}", host.display()))?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_char_device() {
        Kind::CharDevice
    } else if ft.is_block_device() {
        Kind::BlockDevice
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let mut node = Node {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: 0,
        sha256: None,
        target: None,
        rdev: None,
        hardlink_of: None,
    };
    match kind {
        Kind::File => {
            node.size = md.size();
            node.sha256 = Some(artifact::sha256_file(host)?.0);
        }
        Kind::Symlink => {
            let t = std::fs::read_link(host).ctx(|| format!("readlink {}", host.display()))?;
            node.target = Some(t.to_string_lossy().into_owned());
            node.size = md.size();
        }
        Kind::CharDevice | Kind::BlockDevice => node.rdev = Some(split_dev(md.rdev())),
        _ => {}
    }
    if kind != Kind::Dir && md.nlink() > 1 {
        inodes
            .entry((md.dev(), md.ino()))
            .or_default()
            .push(path.to_string());
    }
    tree.nodes.insert(path.to_string(), node);
    if kind == Kind::Dir {
        let mut names: Vec<_> = std::fs::read_dir(host)
            .ctx(|| format!("listing {}", host.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .ctx(|| format!("listing {}", host.display()))?;
        names.sort();
        for n in names {
            let name = n.to_string_lossy();
            scan_into(&host.join(&n), &join(path, &name), tree, inodes)?;
        }
    }
    Ok(())
}

impl Tree {
    /// Record hard links: given groups of paths sharing an inode, every path but the first (in
    /// sorted order) points at the first.
    pub fn mark_hardlinks(&mut self, groups: impl IntoIterator<Item = Vec<String>>) {
        for mut g in groups {
            if g.len() < 2 {
                continue;
            }
            g.sort();
            for p in &g[1..] {
                if let Some(n) = self.nodes.get_mut(p) {
                    n.hardlink_of = Some(g[0].clone());
                }
            }
        }
    }

    /// The tree as FAT can hold it: folders and files with sizes and contents only.
    pub fn content_only(&self) -> Tree {
        Tree {
            nodes: self
                .nodes
                .iter()
                .map(|(p, n)| {
                    (
                        p.to_lowercase(),
                        Node {
                            kind: n.kind,
                            mode: 0,
                            uid: 0,
                            gid: 0,
                            size: n.size,
                            sha256: n.sha256.clone(),
                            target: None,
                            rdev: None,
                            hardlink_of: None,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Remove a path and everything under it.
    pub fn remove(&mut self, path: &str) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.nodes
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    /// Human-readable differences, `expected` being `self`; empty when equal.
    pub fn diff(&self, actual: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (p, e) in &self.nodes {
            match actual.nodes.get(p) {
                None => out.push(format!("{p}: missing")),
                Some(a) if a != e => out.push(format!("{p}: expected {e:?}, found {a:?}")),
                Some(_) => {}
            }
        }
        for p in actual.nodes.keys() {
            if !self.nodes.contains_key(p) {
                out.push(format!("{p}: unexpected"));
            }
        }
        out
    }

    /// Total bytes of regular files (each inode once) and the number of nodes.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = self
            .nodes
            .values()
            .filter(|n| n.kind == Kind::File && n.hardlink_of.is_none())
            .map(|n| n.size)
            .sum();
        (bytes, self.nodes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_split() {
        // makedev(1, 3) and makedev(259, 65536)
        assert_eq!(split_dev(0x103), (1, 3));
        let dev: u64 = ((259u64 & 0xfff) << 8) | (65536u64 & 0xff) | ((65536u64 & !0xff) << 12);
        assert_eq!(split_dev(dev), (259, 65536));
    }

    #[test]
    fn scan_and_diff() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/a"), b"x").unwrap();
        std::fs::hard_link(d.path().join("etc/a"), d.path().join("etc/b")).unwrap();
        std::os::unix::fs::symlink("a", d.path().join("etc/l")).unwrap();
        let t = scan(d.path()).unwrap();
        assert_eq!(t.nodes["/etc/b"].hardlink_of.as_deref(), Some("/etc/a"));
        assert_eq!(t.nodes["/etc/l"].target.as_deref(), Some("a"));
        assert_eq!(t.nodes["/etc/a"].size, 1);
        assert!(t.diff(&t).is_empty());
        let mut other = t.clone();
        other.nodes.get_mut("/etc/a").unwrap().mode = 0o600;
        other.remove("/etc/l");
        let d = t.diff(&other);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("/etc/a: expected"));
        assert_eq!(d[1], "/etc/l: missing");
    }
}

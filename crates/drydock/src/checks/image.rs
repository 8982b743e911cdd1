//! What the static checks read from an image: its partition table, the file systems inside it, and
//! what host tools say about each partition (blkid, fsck).
//!
//! [`Disk`] and [`FsRead`] are the seam between the checks and the readers. The real
//! implementation ([`crate::checks::disk::ImageDisk`]) reads an image file through raw-image
//! (`inspect::read_table`, `fat::Fat`, `ext4::Ext4`) without mounting and without root; unit tests
//! use an in-memory [`fixture`] so every check is exercised on data that passes and on data that
//! must fail.

use anyhow::Result;

/// Kind of a file system object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// What `stat` tells (symlinks not followed in the last component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits (`0o7777`); 0o755/0o644 on FAT.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub target: Option<String>,
}

/// Read access to one file system. Paths are absolute inside the file system.
pub trait FsRead {
    /// Kind, mode, owner and size of `path`; `None` when it does not exist. Symlinks in the last
    /// component are not followed (those in earlier components are).
    fn stat(&self, path: &str) -> Result<Option<Meta>>;
    /// The bytes of a regular file, `None` when it does not exist; no symlink following in the
    /// last component (use [`read_follow`]).
    fn read_raw(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Names in a folder (without `.` and `..`), `None` when the folder does not exist.
    fn list(&self, dir: &str) -> Result<Option<Vec<String>>>;
}

/// Join a symlink target onto the folder holding the link, normalising `.` and `..`.
pub fn resolve_link(link: &str, target: &str) -> String {
    let base = if target.starts_with('/') {
        String::new()
    } else {
        match link.rfind('/') {
            Some(i) => link[..i].to_string(),
            None => String::new(),
        }
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in base.split('/').chain(target.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Read a file following symlinks in the last component (at most 16 hops).
pub fn read_follow(fs: &dyn FsRead, path: &str) -> Result<Option<Vec<u8>>> {
    let mut p = path.to_string();
    for _ in 0..16 {
        match fs.stat(&p)? {
            None => return Ok(None),
            Some(m) if m.kind == Kind::Symlink => {
                let t = m.target.unwrap_or_default();
                p = resolve_link(&p, &t);
            }
            Some(m) if m.kind == Kind::File => return fs.read_raw(&p),
            Some(m) => anyhow::bail!("{path}: is a {:?}, not a file", m.kind),
        }
    }
    anyhow::bail!("{path}: too many levels of symbolic links")
}

/// `stat` following symlinks in the last component.
pub fn stat_follow(fs: &dyn FsRead, path: &str) -> Result<Option<(String, Meta)>> {
    let mut p = path.to_string();
    for _ in 0..16 {
        match fs.stat(&p)? {
            None => return Ok(None),
            Some(m) if m.kind == Kind::Symlink => {
                let t = m.target.unwrap_or_default();
                p = resolve_link(&p, &t);
            }
            Some(m) => return Ok(Some((p, m))),
        }
    }
    anyhow::bail!("{path}: too many levels of symbolic links")
}

/// Partition table kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
}

/// One partition as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1-based, as Linux numbers them.
    pub index: u32,
    pub start: u64,
    pub size: u64,
    /// `/dev/disk/by-partuuid` form, lower-case.
    pub partuuid: String,
    /// MBR type byte as `0x0c`, or the GPT type GUID (lower-case).
    pub ptype: String,
    pub bootable: bool,
}

/// A partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    pub hybrid_mbr: bool,
    pub disk_id: String,
    pub parts: Vec<Part>,
}

/// What blkid says about a partition's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// `vfat`, `ext4`, ... (empty when nothing was recognised).
    pub fs_type: String,
    pub label: String,
    pub uuid: String,
    /// ext4 only: block count × block size, as the superblock says.
    pub fs_bytes: Option<u64>,
    /// ext4 only: the superblock's state (`clean`).
    pub state: Option<String>,
}

/// A whole image.
pub trait Disk {
    /// The image's size in bytes.
    fn size(&self) -> u64;
    fn table(&self) -> &Table;
    /// Identify the file system in a partition.
    fn probe(&self, part: &Part) -> Result<Probe>;
    /// Check a partition's file system read-only: `Ok(Ok(summary))` when clean, `Ok(Err(what))`
    /// when the checker found problems.
    fn fsck(&self, part: &Part, fs_type: &str) -> Result<Result<String, String>>;
    /// Read access to a partition's FAT or ext4 file system.
    fn fs(&self, part: &Part, fs_type: &str) -> Result<Box<dyn FsRead + '_>>;
}

pub mod fixture {
    //! An in-memory image for unit tests: a table, per-partition probes, and file trees.

    use std::collections::BTreeMap;

    use super::*;

    /// One file system object of a fixture tree.
    #[derive(Debug, Clone)]
    pub enum Node {
        File {
            data: Vec<u8>,
            mode: u32,
            uid: u32,
            gid: u32,
        },
        Dir,
        Link(String),
    }

    /// A file tree.
    #[derive(Debug, Clone, Default)]
    pub struct Tree {
        pub nodes: BTreeMap<String, Node>,
    }

    fn parent(p: &str) -> Option<&str> {
        let i = p.rfind('/')?;
        Some(if i == 0 { "/" } else { &p[..i] })
    }

    impl Tree {
        fn mkdirs(&mut self, path: &str) {
            let mut cur = String::new();
            self.nodes.insert("/".into(), Node::Dir);
            for part in path.split('/').filter(|s| !s.is_empty()) {
                cur.push('/');
                cur.push_str(part);
                self.nodes.entry(cur.clone()).or_insert(Node::Dir);
            }
        }

        /// Add a file (mode 0644, root-owned), creating its folders.
        pub fn file(&mut self, path: &str, data: impl AsRef<[u8]>) -> &mut Self {
            self.file_mode(path, data, 0o644, 0, 0)
        }

        pub fn file_mode(
            &mut self,
            path: &str,
            data: impl AsRef<[u8]>,
            mode: u32,
            uid: u32,
            gid: u32,
        ) -> &mut Self {
            if let Some(p) = parent(path) {
                self.mkdirs(p);
            }
            self.nodes.insert(
                path.into(),
                Node::File {
                    data: data.as_ref().to_vec(),
                    mode,
                    uid,
                    gid,
                },
            );
            self
        }

        pub fn dir(&mut self, path: &str) -> &mut Self {
            self.mkdirs(path);
            self
        }

        pub fn link(&mut self, path: &str, target: &str) -> &mut Self {
            if let Some(p) = parent(path) {
                self.mkdirs(p);
            }
            self.nodes.insert(path.into(), Node::Link(target.into()));
            self
        }

        /// Write the tree into a host folder (modes set; owners set when running as root), to be
        /// filled into a real image.
        pub fn materialize(&self, dir: &std::path::Path) -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let as_root = nix::unistd::geteuid().is_root();
            for (p, n) in &self.nodes {
                let dest = dir.join(p.trim_start_matches('/'));
                match n {
                    Node::Dir => std::fs::create_dir_all(&dest)?,
                    Node::File {
                        data,
                        mode,
                        uid,
                        gid,
                    } => {
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        std::fs::write(&dest, data)?;
                        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(*mode))?;
                        if as_root {
                            std::os::unix::fs::lchown(&dest, Some(*uid), Some(*gid))?;
                        }
                    }
                    Node::Link(t) => {
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        std::os::unix::fs::symlink(t, &dest)?;
                    }
                }
            }
            Ok(())
        }

        pub fn remove(&mut self, path: &str) -> &mut Self {
            let prefix = format!("{}/", path.trim_end_matches('/'));
            self.nodes
                .retain(|k, _| k != path && !k.starts_with(&prefix));
            self
        }

        /// Resolve symlinks in all but the last component.
        fn resolve_dirs(&self, path: &str) -> Option<String> {
            let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let mut cur = String::new();
            for (i, c) in comps.iter().enumerate() {
                let next = format!("{cur}/{c}");
                if i + 1 == comps.len() {
                    return Some(next);
                }
                let mut p = next;
                for _ in 0..16 {
                    match self.nodes.get(&p)? {
                        Node::Link(t) => p = resolve_link(&p, t),
                        _ => break,
                    }
                }
                cur = if p == "/" { String::new() } else { p };
            }
            Some(if cur.is_empty() { "/".into() } else { cur })
        }
    }

    impl FsRead for Tree {
        fn stat(&self, path: &str) -> Result<Option<Meta>> {
            let Some(p) = self.resolve_dirs(path) else {
                return Ok(None);
            };
            Ok(self.nodes.get(&p).map(|n| match n {
                Node::File {
                    data,
                    mode,
                    uid,
                    gid,
                } => Meta {
                    kind: Kind::File,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    size: data.len() as u64,
                    target: None,
                },
                Node::Dir => Meta {
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    target: None,
                },
                Node::Link(t) => Meta {
                    kind: Kind::Symlink,
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                    size: t.len() as u64,
                    target: Some(t.clone()),
                },
            }))
        }

        fn read_raw(&self, path: &str) -> Result<Option<Vec<u8>>> {
            let Some(p) = self.resolve_dirs(path) else {
                return Ok(None);
            };
            match self.nodes.get(&p) {
                Some(Node::File { data, .. }) => Ok(Some(data.clone())),
                Some(_) => anyhow::bail!("{path} is not a file"),
                None => Ok(None),
            }
        }

        fn list(&self, dir: &str) -> Result<Option<Vec<String>>> {
            let Some(mut p) = self.resolve_dirs(dir) else {
                return Ok(None);
            };
            for _ in 0..16 {
                match self.nodes.get(&p) {
                    Some(Node::Link(t)) => p = resolve_link(&p, t),
                    Some(Node::Dir) => break,
                    _ => return Ok(None),
                }
            }
            let prefix = if p == "/" {
                "/".to_string()
            } else {
                format!("{p}/")
            };
            Ok(Some(
                self.nodes
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                    .map(String::from)
                    .collect(),
            ))
        }
    }

    /// A partition of the fixture disk: its table entry, probe, fsck verdict and tree.
    #[derive(Debug, Clone)]
    pub struct FixturePart {
        pub part: Part,
        pub probe: Probe,
        pub fsck: Result<String, String>,
        pub tree: Tree,
    }

    /// The fixture disk.
    #[derive(Debug, Clone)]
    pub struct FixtureDisk {
        pub size: u64,
        pub table: Table,
        pub parts: Vec<FixturePart>,
    }

    impl FixtureDisk {
        pub fn part_mut(&mut self, index: u32) -> &mut FixturePart {
            let i = self
                .parts
                .iter()
                .position(|p| p.part.index == index)
                .unwrap_or_else(|| panic!("fixture has no partition {index}"));
            &mut self.parts[i]
        }

        pub fn tree_mut(&mut self, index: u32) -> &mut Tree {
            &mut self.part_mut(index).tree
        }

        /// Rebuild the table's partition list from the parts (after editing a part).
        pub fn sync_table(&mut self) {
            self.table.parts = self.parts.iter().map(|p| p.part.clone()).collect();
        }

        fn find(&self, part: &Part) -> Result<&FixturePart> {
            self.parts
                .iter()
                .find(|p| p.part.index == part.index)
                .ok_or_else(|| anyhow::anyhow!("no partition {}", part.index))
        }
    }

    impl Disk for FixtureDisk {
        fn size(&self) -> u64 {
            self.size
        }
        fn table(&self) -> &Table {
            &self.table
        }
        fn probe(&self, part: &Part) -> Result<Probe> {
            Ok(self.find(part)?.probe.clone())
        }
        fn fsck(&self, part: &Part, _fs_type: &str) -> Result<Result<String, String>> {
            Ok(self.find(part)?.fsck.clone())
        }
        fn fs(&self, part: &Part, _fs_type: &str) -> Result<Box<dyn FsRead + '_>> {
            Ok(Box::new(self.find(part)?.tree.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::Tree;
    use super::*;

    #[test]
    fn links_resolve() {
        assert_eq!(
            resolve_link("/etc/os-release", "../usr/lib/os-release"),
            "/usr/lib/os-release"
        );
        assert_eq!(resolve_link("/a/b", "/x/./y"), "/x/y");
        assert_eq!(resolve_link("/lib", "usr/lib"), "/usr/lib");
    }

    #[test]
    fn tree_follows_links() {
        let mut t = Tree::default();
        t.file("/usr/lib/os-release", "ID=debian\n")
            .link("/etc/os-release", "../usr/lib/os-release")
            .link("/lib", "usr/lib");
        assert_eq!(
            read_follow(&t, "/etc/os-release").unwrap().unwrap(),
            b"ID=debian\n"
        );
        assert_eq!(
            t.stat("/etc/os-release").unwrap().unwrap().kind,
            Kind::Symlink
        );
        assert!(t.read_raw("/lib/os-release").unwrap().is_some());
        assert_eq!(t.list("/lib").unwrap().unwrap(), vec!["os-release"]);
        assert!(read_follow(&t, "/nope").unwrap().is_none());
        t.link("/loop", "/loop");
        assert!(read_follow(&t, "/loop").is_err());
    }
}

//! Reading and writing binary `.deb` packages.
//!
//! A `.deb` is an ar archive: `debian-binary` (`2.0\n`), `control.tar[.gz|.xz|.zst]`,
//! `data.tar[.gz|.xz|.zst]`. [`read_deb`] reads the control part and hashes the whole file in one
//! sequential pass (this is what the repository indexer uses); [`DebReader`] lists and extracts the
//! data part; [`DebBuilder`] writes policy-correct packages with deterministic bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::ar::{self, ArError};
use crate::control::{ControlError, Stanza};
use crate::tarw;

/// Upper bound for the (decompressed) control part and for any one file extracted into memory.
pub const MAX_CONTROL_BYTES: u64 = 64 << 20;

/// Errors reading a `.deb` (the caller adds the file name, see [`crate::Error::Deb`]).
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("ar container: {0}")]
    Ar(#[from] ArError),
    #[error("not a binary package: {0}")]
    NotDeb(String),
    #[error("missing member {0}")]
    MissingMember(&'static str),
    #[error("member {0}: unsupported compression (gz, xz, zst or none)")]
    UnsupportedCompression(String),
    #[error("member {member}: {source}")]
    Tar {
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("control.tar has no ./control file")]
    NoControlFile,
    #[error("control file: {0}")]
    Control(#[from] ControlError),
    #[error("member {member}: {what} exceeds {MAX_CONTROL_BYTES} bytes")]
    TooLarge { member: String, what: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Compression of a `control.tar` or `data.tar` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// The member-name suffix (`""`, `.gz`, `.xz`, `.zst`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    fn from_member(name: &str, stem: &str) -> Option<Result<Compression, DebError>> {
        let rest = name.strip_prefix(stem)?;
        Some(match rest {
            "" => Ok(Compression::None),
            ".gz" => Ok(Compression::Gzip),
            ".xz" => Ok(Compression::Xz),
            ".zst" => Ok(Compression::Zstd),
            _ => Err(DebError::UnsupportedCompression(name.to_string())),
        })
    }

    /// A decompressing reader.
    pub fn reader<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }

    /// Compress a whole buffer deterministically (gzip without name or time, xz preset 6
    /// single-threaded, zstd level 19).
    pub fn compress(self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.compress_level(data, None)
    }

    /// [`Compression::compress`] with an explicit level (gzip 0-9, xz 0-9, zstd 1-22).
    pub fn compress_level(self, data: &[u8], level: Option<u32>) -> io::Result<Vec<u8>> {
        Ok(match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::GzBuilder::new().mtime(0).write(
                    Vec::new(),
                    flate2::Compression::new(level.unwrap_or(9).min(9)),
                );
                e.write_all(data)?;
                e.finish()?
            }
            Compression::Xz => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), level.unwrap_or(6).min(9));
                e.write_all(data)?;
                e.finish()?
            }
            Compression::Zstd => {
                zstd::stream::encode_all(data, level.unwrap_or(19).clamp(1, 22) as i32)?
            }
        })
    }
}

/// What a `.deb` says about itself, read from its control part.
#[derive(Debug, Clone)]
pub struct DebInfo {
    /// The `control` file.
    pub control: Stanza,
    /// Every regular file of `control.tar` by name without `./` (`control`, `md5sums`,
    /// `conffiles`, `postinst`, ...).
    pub control_members: BTreeMap<String, Vec<u8>>,
    pub control_compression: Compression,
    pub data_compression: Compression,
    /// Size of the whole `.deb` in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the whole `.deb`.
    pub sha256: String,
}

impl DebInfo {
    pub fn package(&self) -> &str {
        self.control.get("Package").unwrap_or("")
    }
    pub fn version(&self) -> &str {
        self.control.get("Version").unwrap_or("")
    }
    pub fn architecture(&self) -> &str {
        self.control.get("Architecture").unwrap_or("")
    }
    /// `conffiles` entries.
    pub fn conffiles(&self) -> Vec<String> {
        self.control_members
            .get("conffiles")
            .map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A reader that feeds everything it reads to sha256.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Read a `.deb`'s control part and hash the whole file, in one sequential pass. The error names
/// the file.
pub fn read_deb(path: &Path) -> Result<DebInfo, crate::Error> {
    let f =
        File::open(path).map_err(|e| crate::Error::io(format!("opening {}", path.display()), e))?;
    read_deb_from(f).map_err(|source| crate::Error::Deb {
        path: path.display().to_string(),
        source,
    })
}

/// Like [`read_deb`], but `control.tar` is decompressed only up to the `control` file, so
/// [`DebInfo::control_members`] holds just `control` (what a repository index needs).
pub fn scan_deb(path: &Path) -> Result<DebInfo, crate::Error> {
    let f =
        File::open(path).map_err(|e| crate::Error::io(format!("opening {}", path.display()), e))?;
    read_deb_impl(f, true).map_err(|source| crate::Error::Deb {
        path: path.display().to_string(),
        source,
    })
}

/// [`read_deb`] over any reader (the whole package is consumed and hashed).
pub fn read_deb_from<R: Read>(r: R) -> Result<DebInfo, DebError> {
    read_deb_impl(r, false)
}

fn read_deb_impl<R: Read>(r: R, only_control: bool) -> Result<DebInfo, DebError> {
    let hashing = Hashing {
        inner: r,
        sha: Sha256::new(),
        n: 0,
    };
    let mut ar = ar::Reader::new(BufReader::with_capacity(1 << 20, hashing))?;
    let (control, control_members, control_compression) = read_control_part(&mut ar, only_control)?;
    let data_compression = loop {
        let Some(h) = ar.next_header()? else {
            return Err(DebError::MissingMember("data.tar"));
        };
        if let Some(c) = Compression::from_member(&h.name, "data.tar") {
            break c?;
        }
        if !h.name.starts_with('_') {
            return Err(DebError::NotDeb(format!(
                "unexpected member {} before data.tar",
                h.name
            )));
        }
    };
    // Skip (and hash) the data member and anything after it; this detects truncation.
    while ar.next_header()?.is_some() {}
    let mut rest = ar.into_inner();
    loop {
        let n = rest.fill_buf()?.len();
        if n == 0 {
            break;
        }
        rest.consume(n);
    }
    let hashing = rest.into_inner();
    Ok(DebInfo {
        control,
        control_members,
        control_compression,
        data_compression,
        size: hashing.n,
        sha256: hex::encode(hashing.sha.finalize()),
    })
}

type ControlPart = (Stanza, BTreeMap<String, Vec<u8>>, Compression);

fn read_control_part<R: Read>(
    ar: &mut ar::Reader<R>,
    only_control: bool,
) -> Result<ControlPart, DebError> {
    let first = ar
        .next_header()?
        .ok_or(DebError::MissingMember("debian-binary"))?;
    if first.name != "debian-binary" {
        return Err(DebError::NotDeb(format!(
            "first member is {:?}, not debian-binary",
            first.name
        )));
    }
    let mut v = Vec::new();
    ar.member().take(64).read_to_end(&mut v)?;
    let text = String::from_utf8_lossy(&v);
    if !text.starts_with("2.") {
        return Err(DebError::NotDeb(format!(
            "format version {:?} is not 2.x",
            text.trim()
        )));
    }
    let (name, comp) = loop {
        let h = ar
            .next_header()?
            .ok_or(DebError::MissingMember("control.tar"))?;
        if let Some(c) = Compression::from_member(&h.name, "control.tar") {
            if h.size > MAX_CONTROL_BYTES {
                return Err(DebError::TooLarge {
                    member: h.name,
                    what: "compressed size".into(),
                });
            }
            break (h.name, c?);
        }
        if !h.name.starts_with('_') {
            return Err(DebError::NotDeb(format!(
                "unexpected member {} before control.tar",
                h.name
            )));
        }
    };
    let members = read_control_tar(comp.reader(ar.member())?, &name, only_control)?;
    let control = members.get("control").ok_or(DebError::NoControlFile)?;
    let control = Stanza::parse_bytes(control)?;
    control.validate_binary()?;
    Ok((control, members, comp))
}

fn tar_err(member: &str) -> impl Fn(io::Error) -> DebError + '_ {
    move |source| DebError::Tar {
        member: member.to_string(),
        source,
    }
}

fn read_control_tar(
    r: impl Read,
    member: &str,
    only_control: bool,
) -> Result<BTreeMap<String, Vec<u8>>, DebError> {
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().map_err(tar_err(member))? {
        let mut entry = entry.map_err(tar_err(member))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path_bytes();
        let name = normalize(&String::from_utf8_lossy(&path));
        total += entry.size();
        if total > MAX_CONTROL_BYTES {
            return Err(DebError::TooLarge {
                member: member.to_string(),
                what: "decompressed control".into(),
            });
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_CONTROL_BYTES)
            .read_to_end(&mut data)
            .map_err(tar_err(member))?;
        let done = only_control && name == "control";
        out.insert(name, data);
        if done {
            break;
        }
    }
    Ok(out)
}

/// `./usr/bin/x`, `/usr/bin/x`, `usr/bin/x/` → `usr/bin/x`.
fn normalize(p: &str) -> String {
    let p = p.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_string()
}

/// The kind of a data entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Other,
}

/// One entry of `data.tar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    /// Absolute path in the installed system (`/usr/bin/x`; `/` for the root).
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub size: u64,
    pub mtime: u64,
    /// Symlink or hardlink target.
    pub link: Option<String>,
}

/// Random access to a `.deb`: its control part and its data entries.
pub struct DebReader<R: Read + Seek> {
    inner: R,
    info: DebInfo,
    origin: String,
}

impl DebReader<File> {
    /// Open a `.deb` file (reads and hashes it once).
    pub fn open(path: &Path) -> Result<Self, crate::Error> {
        let mut f = File::open(path)
            .map_err(|e| crate::Error::io(format!("opening {}", path.display()), e))?;
        let info = read_deb_from(&mut f).map_err(|source| crate::Error::Deb {
            path: path.display().to_string(),
            source,
        })?;
        Ok(DebReader {
            inner: f,
            info,
            origin: path.display().to_string(),
        })
    }
}

impl<R: Read + Seek> DebReader<R> {
    /// Read from any seekable reader; `origin` names it in errors.
    pub fn new(mut inner: R, origin: &str) -> Result<Self, crate::Error> {
        let wrap = |source| crate::Error::Deb {
            path: origin.to_string(),
            source,
        };
        inner.seek(SeekFrom::Start(0)).map_err(|e| wrap(e.into()))?;
        let info = read_deb_from(&mut inner).map_err(wrap)?;
        Ok(DebReader {
            inner,
            info,
            origin: origin.to_string(),
        })
    }

    pub fn info(&self) -> &DebInfo {
        &self.info
    }

    pub fn control(&self) -> &Stanza {
        &self.info.control
    }

    fn err(&self, source: DebError) -> crate::Error {
        crate::Error::Deb {
            path: self.origin.clone(),
            source,
        }
    }

    /// Call `f` with each data entry and a reader over its contents, in archive order. Stop early
    /// by returning `Ok(false)`.
    pub fn for_each_data_entry(
        &mut self,
        mut f: impl FnMut(&DataEntry, &mut dyn Read) -> io::Result<bool>,
    ) -> Result<(), crate::Error> {
        self.inner
            .seek(SeekFrom::Start(0))
            .map_err(|e| self.err(e.into()))?;
        let res = (|| -> Result<(), DebError> {
            let mut ar = ar::Reader::new(BufReader::new(&mut self.inner))?;
            let comp = loop {
                let h = ar
                    .next_header()?
                    .ok_or(DebError::MissingMember("data.tar"))?;
                if let Some(c) = Compression::from_member(&h.name, "data.tar") {
                    break c?;
                }
            };
            let member = "data.tar";
            let mut archive = tar::Archive::new(comp.reader(ar.member())?);
            for entry in archive.entries().map_err(tar_err(member))? {
                let mut entry = entry.map_err(tar_err(member))?;
                let h = entry.header();
                let kind = match h.entry_type() {
                    t if t.is_file() => EntryKind::File,
                    t if t.is_dir() => EntryKind::Dir,
                    t if t.is_symlink() => EntryKind::Symlink,
                    t if t.is_hard_link() => EntryKind::Hardlink,
                    _ => EntryKind::Other,
                };
                let path = format!(
                    "/{}",
                    normalize(&String::from_utf8_lossy(&entry.path_bytes()))
                );
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                let de = DataEntry {
                    path,
                    kind,
                    mode: h.mode().unwrap_or(0),
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                    uname: h.username().ok().flatten().unwrap_or_default().to_string(),
                    gname: h.groupname().ok().flatten().unwrap_or_default().to_string(),
                    size: entry.size(),
                    mtime: h.mtime().unwrap_or(0),
                    link,
                };
                if !f(&de, &mut entry).map_err(tar_err(member))? {
                    break;
                }
            }
            Ok(())
        })();
        res.map_err(|e| self.err(e))
    }

    /// Every data entry (without contents).
    pub fn data_entries(&mut self) -> Result<Vec<DataEntry>, crate::Error> {
        let mut out = Vec::new();
        self.for_each_data_entry(|e, _| {
            out.push(e.clone());
            Ok(true)
        })?;
        Ok(out)
    }

    /// The contents of one regular file of the data part (`/etc/x` or `etc/x`), if present.
    pub fn extract_file(&mut self, path_in_pkg: &str) -> Result<Option<Vec<u8>>, crate::Error> {
        let want = format!("/{}", normalize(path_in_pkg));
        let mut found = None;
        self.for_each_data_entry(|e, r| {
            if e.path == want && e.kind == EntryKind::File {
                let mut v = Vec::new();
                r.take(MAX_CONTROL_BYTES.max(1 << 30)).read_to_end(&mut v)?;
                found = Some(v);
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(found)
    }
}

/// One node of a package's file tree.
#[derive(Debug, Clone)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        source: Source,
        mode: u32,
        mtime: u64,
    },
    Symlink {
        target: String,
        mtime: u64,
    },
}

#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    Path(PathBuf, u64),
}

/// Maintainer scripts and other control files a package may carry.
pub const CONTROL_SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
const CONTROL_DATA: &[&str] = &["triggers", "templates", "shlibs", "symbols"];

/// Builds a binary package.
///
/// Every entry is owned by root:root, files are 0644 unless given a mode, directories 0755,
/// every mtime is clamped to the build epoch (`SOURCE_DATE_EPOCH`, see [`DebBuilder::epoch`]);
/// the builder writes `md5sums` (all regular files except conffiles), `conffiles`, the maintainer
/// scripts (0755) and computes `Installed-Size`. The same inputs give the same bytes.
#[derive(Debug, Clone)]
pub struct DebBuilder {
    control: Stanza,
    nodes: BTreeMap<String, Node>,
    conffiles: Vec<String>,
    control_files: BTreeMap<String, (Vec<u8>, u32)>,
    epoch: u64,
    data_compression: Compression,
    control_compression: Compression,
}

/// Errors of the builder (bad paths, missing fields...).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("control: {0}")]
    Control(#[from] ControlError),
    #[error("path {path:?}: {why}")]
    BadPath { path: String, why: String },
    #[error("conffile {0} is not a regular file in the package")]
    MissingConffile(String),
    #[error("{name} is not a control file a package may carry ({})", CONTROL_SCRIPTS.join(", "))]
    BadScript { name: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// The build epoch from `SOURCE_DATE_EPOCH` (0 when unset or unparsable).
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn clean_path(path: &str) -> Result<String, BuildError> {
    let p = normalize(path);
    let bad = |why: &str| BuildError::BadPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    if p.is_empty() {
        return Err(bad("empty path"));
    }
    for c in p.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad("empty, `.` or `..` component"));
        }
    }
    if p.contains('\n') || p.contains('\0') {
        return Err(bad("newline or NUL in path"));
    }
    Ok(p)
}

impl DebBuilder {
    /// Start a package from its control stanza (Package, Version, Architecture, Maintainer,
    /// Description required; `Installed-Size` is computed and replaced).
    pub fn new(control: Stanza) -> Self {
        DebBuilder {
            control,
            nodes: BTreeMap::new(),
            conffiles: Vec::new(),
            control_files: BTreeMap::new(),
            epoch: source_date_epoch(),
            data_compression: Compression::Xz,
            control_compression: Compression::Xz,
        }
    }

    /// The timestamp every mtime is clamped to (default: `SOURCE_DATE_EPOCH`, else 0).
    pub fn epoch(&mut self, epoch: u64) -> &mut Self {
        self.epoch = epoch;
        self
    }

    /// Compression of `data.tar` (default xz).
    pub fn data_compression(&mut self, c: Compression) -> &mut Self {
        self.data_compression = c;
        self
    }

    /// Compression of `control.tar` (default xz).
    pub fn control_compression(&mut self, c: Compression) -> &mut Self {
        self.control_compression = c;
        self
    }

    pub fn control(&self) -> &Stanza {
        &self.control
    }

    fn add_parents(&mut self, p: &str) {
        let mut cur = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            self.nodes
                .entry(cur.clone())
                .or_insert(Node::Dir { mode: 0o755 });
        }
    }

    /// Add a regular file from memory (`mode` such as 0o644 or 0o755).
    pub fn file(
        &mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self, BuildError> {
        let p = clean_path(path)?;
        self.add_parents(&p);
        self.nodes.insert(
            p,
            Node::File {
                source: Source::Bytes(data.into()),
                mode: mode & 0o7777,
                mtime: u64::MAX,
            },
        );
        Ok(self)
    }

    /// Add a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, BuildError> {
        let p = clean_path(path)?;
        self.add_parents(&p);
        self.nodes.insert(
            p,
            Node::Dir {
                mode: mode & 0o7777,
            },
        );
        Ok(self)
    }

    /// Add a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, BuildError> {
        let p = clean_path(path)?;
        if target.is_empty() || target.contains('\0') || target.contains('\n') {
            return Err(BuildError::BadPath {
                path: path.to_string(),
                why: format!("bad symlink target {target:?}"),
            });
        }
        self.add_parents(&p);
        self.nodes.insert(
            p,
            Node::Symlink {
                target: target.to_string(),
                mtime: u64::MAX,
            },
        );
        Ok(self)
    }

    /// Add every file, folder and symlink under `root` as the package's `/`. Permission bits are
    /// kept (setuid/setgid dropped), owners become root, mtimes are clamped. Files are read when
    /// the package is built.
    pub fn tree(&mut self, root: &Path) -> Result<&mut Self, BuildError> {
        self.walk(root, root)?;
        Ok(self)
    }

    fn walk(&mut self, root: &Path, dir: &Path) -> Result<(), BuildError> {
        use std::os::unix::fs::MetadataExt;
        let mut ents: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_ctx(format!("listing {}", dir.display())))?
            .collect::<Result<_, _>>()
            .map_err(io_ctx(format!("listing {}", dir.display())))?;
        ents.sort_by_key(|e| e.file_name());
        for e in ents {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let rel = rel.to_str().ok_or_else(|| BuildError::BadPath {
                path: p.display().to_string(),
                why: "not UTF-8".into(),
            })?;
            let rel = clean_path(rel)?;
            let md =
                std::fs::symlink_metadata(&p).map_err(io_ctx(format!("stat {}", p.display())))?;
            let mtime = md.mtime().max(0) as u64;
            if md.is_dir() {
                self.add_parents(&rel);
                self.nodes.insert(
                    rel,
                    Node::Dir {
                        mode: md.mode() & 0o1777,
                    },
                );
                self.walk(root, &p)?;
            } else if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p)
                    .map_err(io_ctx(format!("reading link {}", p.display())))?;
                let t = t.to_str().ok_or_else(|| BuildError::BadPath {
                    path: p.display().to_string(),
                    why: "link target not UTF-8".into(),
                })?;
                self.symlink(&rel, t)?;
                if let Some(Node::Symlink { mtime: m, .. }) = self.nodes.get_mut(&rel) {
                    *m = mtime;
                }
            } else if md.is_file() {
                self.add_parents(&rel);
                self.nodes.insert(
                    rel,
                    Node::File {
                        source: Source::Path(p.clone(), md.len()),
                        mode: md.mode() & 0o1777,
                        mtime,
                    },
                );
            } else {
                return Err(BuildError::BadPath {
                    path: p.display().to_string(),
                    why: "only files, folders and symlinks can be packaged".into(),
                });
            }
        }
        Ok(())
    }

    /// Mark an installed path (`/etc/...`) as a conffile; it must be a regular file of the package.
    pub fn conffile(&mut self, path: &str) -> Result<&mut Self, BuildError> {
        let p = format!("/{}", clean_path(path)?);
        if !self.conffiles.contains(&p) {
            self.conffiles.push(p);
        }
        Ok(self)
    }

    /// Add a maintainer script (`preinst`, `postinst`, `prerm`, `postrm`, `config`; mode 0755) or
    /// a control data file (`triggers`, `templates`, `shlibs`, `symbols`; mode 0644).
    pub fn script(
        &mut self,
        name: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, BuildError> {
        let mode = if CONTROL_SCRIPTS.contains(&name) {
            0o755
        } else if CONTROL_DATA.contains(&name) {
            0o644
        } else {
            return Err(BuildError::BadScript {
                name: name.to_string(),
            });
        };
        self.control_files
            .insert(name.to_string(), (body.into(), mode));
        Ok(self)
    }

    /// The conventional file name `<package>_<version without epoch>_<arch>.deb`.
    pub fn file_name(&self) -> String {
        deb_file_name(
            self.control.get("Package").unwrap_or("unknown"),
            self.control.get("Version").unwrap_or("0"),
            self.control.get("Architecture").unwrap_or("all"),
        )
    }

    /// Build the package bytes.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let epoch = self.epoch;
        let clamp = |t: u64| t.min(epoch);
        for c in &self.conffiles {
            match self.nodes.get(&c[1..]) {
                Some(Node::File { .. }) => {}
                _ => return Err(BuildError::MissingConffile(c.clone())),
            }
        }
        // data.tar
        let mut data = tarw::Writer::new(Vec::new());
        let mut md5sums = String::new();
        let mut installed_kib: u64 = 0;
        data.dir("./", 0o755, epoch)
            .map_err(io_ctx("writing data.tar"))?;
        for (path, node) in &self.nodes {
            let name = format!("./{path}");
            match node {
                Node::Dir { mode } => {
                    installed_kib += 1;
                    data.dir(&format!("{name}/"), *mode, epoch)
                        .map_err(io_ctx("writing data.tar"))?;
                }
                Node::Symlink { target, mtime } => {
                    installed_kib += 1;
                    data.symlink(&name, target, clamp(*mtime))
                        .map_err(io_ctx("writing data.tar"))?;
                }
                Node::File {
                    source,
                    mode,
                    mtime,
                } => {
                    let mut md5 = Md5::new();
                    let size = match source {
                        Source::Bytes(b) => {
                            md5.update(b);
                            data.file(&name, *mode, clamp(*mtime), b)
                                .map_err(io_ctx("writing data.tar"))?;
                            b.len() as u64
                        }
                        Source::Path(p, len) => {
                            let f = File::open(p)
                                .map_err(io_ctx(format!("opening {}", p.display())))?;
                            let mut tee = TeeMd5 {
                                inner: f,
                                md5: &mut md5,
                            };
                            data.file_from(&name, *mode, clamp(*mtime), *len, &mut tee)
                                .map_err(io_ctx(format!("reading {}", p.display())))?;
                            *len
                        }
                    };
                    installed_kib += size.div_ceil(1024);
                    if !self.conffiles.iter().any(|c| &c[1..] == path) {
                        md5sums.push_str(&format!("{}  {}\n", hex::encode(md5.finalize()), path));
                    }
                }
            }
        }
        let data = data.finish().map_err(io_ctx("writing data.tar"))?;
        let data = self
            .data_compression
            .compress(&data)
            .map_err(io_ctx("compressing data.tar"))?;

        // control
        let mut control = self.control.clone();
        control.remove("Installed-Size");
        let before = [
            "Depends",
            "Pre-Depends",
            "Recommends",
            "Suggests",
            "Breaks",
            "Conflicts",
            "Provides",
            "Replaces",
            "Section",
            "Priority",
            "Homepage",
            "Description",
        ]
        .into_iter()
        .find(|f| control.contains(f))
        .unwrap_or("Description");
        control.insert_before(before, "Installed-Size", installed_kib.max(1).to_string())?;
        control.validate_binary()?;
        let mut ctar = tarw::Writer::new(Vec::new());
        ctar.dir("./", 0o755, epoch)
            .map_err(io_ctx("writing control.tar"))?;
        let mut files: BTreeMap<&str, (Vec<u8>, u32)> = BTreeMap::new();
        files.insert("control", (control.to_string().into_bytes(), 0o644));
        if !md5sums.is_empty() {
            files.insert("md5sums", (md5sums.into_bytes(), 0o644));
        }
        if !self.conffiles.is_empty() {
            let mut s = self.conffiles.join("\n");
            s.push('\n');
            files.insert("conffiles", (s.into_bytes(), 0o644));
        }
        for (name, (body, mode)) in &self.control_files {
            files.insert(name, (body.clone(), *mode));
        }
        for (name, (body, mode)) in &files {
            ctar.file(&format!("./{name}"), *mode, epoch, body)
                .map_err(io_ctx("writing control.tar"))?;
        }
        let ctar = ctar.finish().map_err(io_ctx("writing control.tar"))?;
        let ctar = self
            .control_compression
            .compress(&ctar)
            .map_err(io_ctx("compressing control.tar"))?;

        let mut ar = ar::Writer::new(Vec::new()).map_err(io_ctx("writing ar"))?;
        let io = io_ctx("writing ar");
        let res = (|| {
            ar.append("debian-binary", epoch, 0o100644, b"2.0\n")?;
            ar.append(
                &format!("control.tar{}", self.control_compression.suffix()),
                epoch,
                0o100644,
                &ctar,
            )?;
            ar.append(
                &format!("data.tar{}", self.data_compression.suffix()),
                epoch,
                0o100644,
                &data,
            )?;
            ar.finish()
        })();
        res.map_err(io)
    }

    /// Build and write the package to `path` atomically.
    pub fn write_to(&self, path: &Path) -> Result<(), BuildError> {
        let bytes = self.build()?;
        artifact::fsutil::write_atomic(path, &bytes).map_err(|e| BuildError::Io {
            context: format!("writing {}", path.display()),
            source: io::Error::other(e.to_string()),
        })
    }

    /// Build into `dir` under [`DebBuilder::file_name`]; returns the path.
    pub fn write_into(&self, dir: &Path) -> Result<PathBuf, BuildError> {
        let path = dir.join(self.file_name());
        self.write_to(&path)?;
        Ok(path)
    }
}

/// `<package>_<version without epoch>_<arch>.deb`.
pub fn deb_file_name(package: &str, version: &str, arch: &str) -> String {
    let v = version.split_once(':').map(|(_, v)| v).unwrap_or(version);
    format!("{package}_{v}_{arch}.deb")
}

struct TeeMd5<'a, R> {
    inner: R,
    md5: &'a mut Md5,
}

impl<R: Read> Read for TeeMd5<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    pub(crate) fn sample() -> DebBuilder {
        let control = Stanza::parse(
            "Package: hello-drydock\nVersion: 1.0-1\nArchitecture: all\nMaintainer: drydock <drydock@example.invalid>\nDepends: bash\nDescription: test package\n A package built by the tests.\n",
        )
        .unwrap();
        let mut b = DebBuilder::new(control);
        b.epoch(1_700_000_000);
        b.file("/usr/bin/hello-drydock", "#!/bin/sh\necho hello\n", 0o755)
            .unwrap();
        b.file("etc/hello.conf", "greeting=hi\n", 0o644).unwrap();
        b.conffile("/etc/hello.conf").unwrap();
        b.symlink("usr/bin/hi", "hello-drydock").unwrap();
        b.file(
            &format!("usr/share/{}/long", "x".repeat(120)),
            vec![1u8; 3000],
            0o644,
        )
        .unwrap();
        b.script("postinst", "#!/bin/sh\nset -e\nexit 0\n").unwrap();
        b
    }

    #[test]
    fn build_then_read_back() {
        let b = sample();
        let bytes = b.build().unwrap();
        assert_eq!(bytes, b.build().unwrap(), "deterministic");
        let info = read_deb_from(&bytes[..]).unwrap();
        assert_eq!(info.package(), "hello-drydock");
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.sha256, artifact::sha256_bytes(&bytes));
        assert_eq!(info.data_compression, Compression::Xz);
        // files 1 + 1 + 3 KiB, dirs etc usr usr/bin usr/share usr/share/xxx 5, symlink 1.
        assert_eq!(info.control.get("Installed-Size"), Some("11"));
        assert_eq!(info.conffiles(), vec!["/etc/hello.conf"]);
        let md5 = String::from_utf8(info.control_members["md5sums"].clone()).unwrap();
        assert!(md5.contains("  usr/bin/hello-drydock\n"), "{md5}");
        assert!(!md5.contains("etc/hello.conf"), "{md5}");
        assert!(info.control_members.contains_key("postinst"));

        let mut r = DebReader::new(Cursor::new(bytes), "mem").unwrap();
        let ents = r.data_entries().unwrap();
        let paths: Vec<_> = ents.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths[0], "/");
        assert!(paths.contains(&"/usr/bin/hi"));
        assert!(ents
            .iter()
            .all(|e| e.uid == 0 && e.uname == "root" && e.mtime == 1_700_000_000));
        let long = ents.iter().find(|e| e.path.ends_with("/long")).unwrap();
        assert_eq!(long.size, 3000);
        assert!(long.path.len() > 100);
        assert_eq!(
            r.extract_file("/etc/hello.conf").unwrap().unwrap(),
            b"greeting=hi\n"
        );
        assert!(r.extract_file("/nope").unwrap().is_none());
    }

    #[test]
    fn all_compressions_read_back() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let mut b = sample();
            b.data_compression(c).control_compression(c);
            let bytes = b.build().unwrap();
            let info = read_deb_from(&bytes[..]).unwrap();
            assert_eq!(info.data_compression, c);
            assert_eq!(info.control_compression, c);
            let mut r = DebReader::new(Cursor::new(bytes), "mem").unwrap();
            assert_eq!(
                r.extract_file("usr/bin/hello-drydock").unwrap().unwrap(),
                b"#!/bin/sh\necho hello\n"
            );
        }
    }

    #[test]
    fn truncated_is_an_error() {
        let bytes = sample().build().unwrap();
        for cut in [0, 7, 8, 60, 100, bytes.len() / 2, bytes.len() - 1] {
            let e = read_deb_from(&bytes[..cut]);
            assert!(e.is_err(), "cut at {cut} of {}", bytes.len());
        }
    }

    #[test]
    fn builder_rejects_bad_input() {
        let mut b = sample();
        assert!(b.file("../etc/x", "", 0o644).is_err());
        assert!(b.script("evil", "").is_err());
        b.conffile("/etc/missing").unwrap();
        assert!(matches!(b.build(), Err(BuildError::MissingConffile(_))));
        let mut b = sample();
        let mut c = b.control().clone();
        c.remove("Maintainer");
        b.control = c;
        assert!(b.build().unwrap_err().to_string().contains("Maintainer"));
    }

    #[test]
    fn tree_is_clamped_and_rooted() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/drydock")).unwrap();
        std::fs::write(d.path().join("etc/drydock/board"), "rpi-arm64\n").unwrap();
        std::os::unix::fs::symlink("board", d.path().join("etc/drydock/link")).unwrap();
        let mut b = sample();
        b.epoch(1000);
        b.tree(d.path()).unwrap();
        let bytes = b.build().unwrap();
        let mut r = DebReader::new(Cursor::new(bytes), "mem").unwrap();
        let ents = r.data_entries().unwrap();
        let board = ents
            .iter()
            .find(|e| e.path == "/etc/drydock/board")
            .unwrap();
        assert_eq!(board.mtime, 1000);
        assert_eq!(board.uid, 0);
        let link = ents.iter().find(|e| e.path == "/etc/drydock/link").unwrap();
        assert_eq!(link.link.as_deref(), Some("board"));
    }
}

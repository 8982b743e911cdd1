//! FAT file systems inside an image file, at a byte offset, without mounting: mtools
//! (`mcopy -i 'IMAGE@@OFFSET'`, `mdir`, `mmd`, `mdel`, `mdeltree`, `mtype`).
//!
//! Deterministic: mtools runs with `MTOOLS_SKIP_CHECK=1`, `MTOOLSRC=/dev/null`, `TZ=UTC`, never
//! asks (name clashes overwrite), and stamps every file and folder it writes with the time
//! [`Fat::with_mtime`] gives (else `$SOURCE_DATE_EPOCH`, else the current time).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// One entry of a FAT folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FatEntry {
    /// The long name when there is one, else the 8.3 name as mtools shows it.
    pub name: String,
    pub is_dir: bool,
    /// 0 for folders.
    pub size: u64,
}

/// A FAT file system at `offset` bytes into `image`.
#[derive(Debug, Clone)]
pub struct Fat {
    image: PathBuf,
    offset: u64,
    mtime: Option<i64>,
}

fn norm(path: &str) -> String {
    let t = path.trim_matches('/');
    if t.is_empty() {
        "::/".to_string()
    } else {
        format!("::/{t}")
    }
}

impl Fat {
    /// The FAT file system starting `offset` bytes into `image` (a partition's `start_bytes`).
    pub fn new(image: impl Into<PathBuf>, offset: u64) -> Fat {
        Fat {
            image: image.into(),
            offset,
            mtime: None,
        }
    }

    /// Stamp written files and folders with this Unix time (FAT keeps 2-second resolution, years
    /// 1980–2107).
    pub fn with_mtime(mut self, epoch: i64) -> Fat {
        self.mtime = Some(epoch);
        self
    }

    fn spec(&self) -> String {
        format!("{}@@{}", self.image.display(), self.offset)
    }

    /// An mtools command with the environment and image set.
    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("MTOOLS_SKIP_CHECK", "1")
            .env("MTOOLSRC", "/dev/null")
            .env("TZ", "UTC")
            .env_remove("MTOOLS_LOWER_CASE");
        let epoch = self
            .mtime
            .map(|t| t.to_string())
            .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok());
        match epoch {
            Some(e) => {
                c.env("SOURCE_DATE_EPOCH", e);
            }
            None => {
                c.env_remove("SOURCE_DATE_EPOCH");
            }
        }
        c.arg("-i").arg(self.spec());
        c
    }

    fn fs_err(&self, message: String) -> Error {
        Error::Fs {
            fs: "FAT",
            image: self.image.display().to_string(),
            offset: self.offset,
            message,
        }
    }

    /// Whether a file or folder exists.
    pub fn exists(&self, path: &str) -> Result<bool> {
        if path.trim_matches('/').is_empty() {
            return Ok(true);
        }
        let mut c = self.tool("mdir");
        c.args(["-b", "-a"]).arg(norm(path));
        match artifact::cmd::run(&mut c) {
            Ok(_) => Ok(true),
            Err(e) if e.stderr_tail().contains("not found") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// List a folder (without `.` and `..`), in directory order.
    pub fn list(&self, dir: &str) -> Result<Vec<FatEntry>> {
        let mut c = self.tool("mdir");
        c.arg("-a").arg(norm(dir));
        let out = artifact::cmd::run(&mut c).map_err(|e| {
            if e.stderr_tail().contains("not found") {
                self.fs_err(format!("folder {dir:?} not found"))
            } else {
                e.into()
            }
        })?;
        let text = out.stdout_str();
        let mut entries = Vec::new();
        let mut in_listing = false;
        for line in text.lines() {
            if line.starts_with("Directory for ") {
                in_listing = true;
                continue;
            }
            if !in_listing || line.trim().is_empty() {
                continue;
            }
            if line.len() < 13 || line.starts_with("        ") || line.starts_with(' ') {
                // summary lines ("   3 files   2 bytes") and free space
                continue;
            }
            let entry = parse_mdir_line(line).ok_or_else(|| {
                self.fs_err(format!("cannot parse mdir line {line:?} listing {dir:?}"))
            })?;
            if entry.name == "." || entry.name == ".." {
                continue;
            }
            entries.push(entry);
        }
        if !text.contains("Directory for ") {
            return Err(self.fs_err(format!("{dir:?} is not a folder")));
        }
        Ok(entries)
    }

    /// Read a whole file.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        // `mcopy FILE -` gives the exact bytes (mtype -t would translate line ends).
        let mut c = self.tool("mcopy");
        c.arg("-n").arg(norm(path)).arg("-");
        match artifact::cmd::run(&mut c) {
            Ok(o) => Ok(o.stdout),
            Err(e) if e.stderr_tail().contains("not found") => {
                Err(self.fs_err(format!("file {path:?} not found")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Make a folder and its parents (like `mkdir -p`).
    pub fn mkdir_p(&self, path: &str) -> Result<()> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            if !self.exists(&cur)? {
                let mut c = self.tool("mmd");
                c.arg(norm(&cur));
                artifact::cmd::run(&mut c)?;
            }
        }
        Ok(())
    }

    /// Write (create or replace) a file with `data`, creating parent folders.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        let tmp = tempfile::NamedTempFile::new().ctx(|| "creating a temporary file".into())?;
        std::fs::write(tmp.path(), data)
            .ctx(|| format!("writing temporary file {}", tmp.path().display()))?;
        self.write_from(path, tmp.path())
    }

    /// Copy a host file into the FAT (create or replace), creating parent folders.
    pub fn write_from(&self, path: &str, src: &Path) -> Result<()> {
        let t = path.trim_matches('/');
        if let Some((parent, _)) = t.rsplit_once('/') {
            self.mkdir_p(parent)?;
        }
        let mut c = self.tool("mcopy");
        c.args(["-o", "-D", "o"]).arg(src).arg(norm(path));
        artifact::cmd::run(&mut c)?;
        Ok(())
    }

    /// Copy the contents of a host folder into `dest` (recursively, `mcopy -s`), replacing
    /// files of the same name.
    pub fn copy_tree(&self, src_dir: &Path, dest: &str) -> Result<()> {
        self.mkdir_p(dest)?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(src_dir)
            .ctx(|| format!("listing {}", src_dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .ctx(|| format!("listing {}", src_dir.display()))?;
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let mut c = self.tool("mcopy");
        c.args(["-s", "-o", "-D", "o", "-Q"]);
        c.args(&names);
        c.arg(format!("{}/", norm(dest).trim_end_matches('/')));
        artifact::cmd::run(&mut c)?;
        Ok(())
    }

    /// Copy everything in the FAT to a host folder (`mcopy -s ::/ DIR`), for comparisons.
    pub fn extract_all(&self, dest: &Path) -> Result<()> {
        std::fs::create_dir_all(dest).ctx(|| format!("creating {}", dest.display()))?;
        if self.list("/")?.is_empty() {
            return Ok(());
        }
        let mut c = self.tool("mcopy");
        c.args(["-s", "-n", "-Q"]).arg("::/*").arg(dest);
        artifact::cmd::run(&mut c)?;
        Ok(())
    }

    /// Delete a file, or a folder with everything in it.
    pub fn remove(&self, path: &str) -> Result<()> {
        let t = path.trim_matches('/');
        let (parent, name) = t.rsplit_once('/').unwrap_or(("", t));
        let entry = self
            .list(parent)?
            .into_iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| self.fs_err(format!("{path:?} not found")))?;
        let mut c = self.tool(if entry.is_dir { "mdeltree" } else { "mdel" });
        c.arg(norm(path));
        artifact::cmd::run(&mut c)?;
        Ok(())
    }
}

/// Parse one entry line of `mdir` (without `-b`):
/// `NAME     EXT       SIZE YYYY-MM-DD  HH:MM  [long name]` or `<DIR>` in place of the size.
fn parse_mdir_line(line: &str) -> Option<FatEntry> {
    let short_name = line.get(0..8)?.trim_end();
    let ext = line.get(9..12)?.trim_end();
    let rest = line.get(12..)?;
    let mut toks = rest.split_whitespace();
    let size_tok = toks.next()?;
    let (is_dir, size) = if size_tok == "<DIR>" {
        (true, 0)
    } else {
        (false, size_tok.parse::<u64>().ok()?)
    };
    let date = toks.next()?;
    let time = toks.next()?;
    // Everything after the time token is the long name (which may hold spaces).
    let date_at = rest.find(date)?;
    let time_at = date_at + date.len() + rest[date_at + date.len()..].find(time)?;
    let long = rest[time_at + time.len()..].trim_start_matches(' ');
    let name = if !long.is_empty() {
        long.to_string()
    } else if ext.is_empty() {
        short_name.to_string()
    } else {
        format!("{short_name}.{ext}")
    };
    Some(FatEntry { name, is_dir, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdir_lines() {
        assert_eq!(
            parse_mdir_line("config   txt         2 2026-11-22   2:37 "),
            Some(FatEntry {
                name: "config.txt".into(),
                is_dir: false,
                size: 2
            })
        );
        assert_eq!(
            parse_mdir_line("sub          <DIR>     2026-11-22   2:37 "),
            Some(FatEntry {
                name: "sub".into(),
                is_dir: true,
                size: 0
            })
        );
        assert_eq!(
            parse_mdir_line("LONG_N~1 TXT   1234567 2026-11-22  12:37  Long Name File.txt"),
            Some(FatEntry {
                name: "Long Name File.txt".into(),
                is_dir: false,
                size: 1234567
            })
        );
        assert_eq!(parse_mdir_line("garbage"), None);
    }
}

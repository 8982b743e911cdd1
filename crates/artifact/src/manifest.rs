//! `manifest.json`: what an artifact is and which files it holds.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_file;
use crate::{Error, IoContext, Result};

/// The manifest format version written by this code.
pub const SCHEMA: u32 = 1;

/// One file of an artifact, relative to the artifact folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// An artifact's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    /// Stable builder kind: `rootfs`, `kernel`, `raw-image`, `deb-repo`, `image`.
    pub kind: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The cache key (digest of the inputs) that produced this artifact.
    pub inputs_digest: String,
    /// Every file of the artifact except `manifest.json`, sorted by path.
    pub files: Vec<FileEntry>,
    /// Builder-specific metadata (package lists, layout, readiness report...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

impl Manifest {
    /// A manifest with no files yet.
    pub fn new(kind: &str, name: &str, version: &str, arch: &str, inputs_digest: &str) -> Self {
        Manifest {
            schema: SCHEMA,
            kind: kind.into(),
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            inputs_digest: inputs_digest.into(),
            files: Vec::new(),
            metadata: serde_json::Value::Null,
        }
    }

    /// Hash and record every regular file under `dir` (recursively, except `manifest.json`).
    pub fn add_files_from(&mut self, dir: &Path) -> Result<()> {
        let mut paths = Vec::new();
        walk(dir, dir, &mut paths)?;
        for rel in paths {
            if rel == "manifest.json" || self.files.iter().any(|f| f.path == rel) {
                continue;
            }
            let (sha256, size) = sha256_file(&dir.join(&rel))?;
            self.files.push(FileEntry {
                path: rel,
                size,
                sha256,
            });
        }
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(())
    }

    /// Read and parse `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        let text =
            std::fs::read_to_string(&path).io_context(|| format!("reading {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Manifest {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if m.schema != SCHEMA {
            return Err(Error::Manifest {
                path: path.display().to_string(),
                message: format!("schema {} is not supported (expected {SCHEMA})", m.schema),
            });
        }
        Ok(m)
    }

    /// Write `dir/manifest.json` (pretty, trailing newline) and fsync it.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("manifest.json");
        let mut text = serde_json::to_string_pretty(self).map_err(|e| Error::Manifest {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        text.push('\n');
        crate::fsutil::write_synced(&path, text.as_bytes())
    }

    /// Re-hash every listed file in `dir`; return the problems found (empty when intact).
    pub fn verify(&self, dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for f in &self.files {
            let p = dir.join(&f.path);
            match sha256_file(&p) {
                Ok((sha, size)) => {
                    if size != f.size {
                        problems.push(format!(
                            "{}: size {} but manifest says {}",
                            f.path, size, f.size
                        ));
                    } else if sha != f.sha256 {
                        problems.push(format!(
                            "{}: sha256 {} but manifest says {}",
                            f.path, sha, f.sha256
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", f.path)),
            }
        }
        problems
    }

    /// The entry for a file path, if listed.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Total size of the listed files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let rd = std::fs::read_dir(dir).io_context(|| format!("listing {}", dir.display()))?;
    for ent in rd {
        let ent = ent.io_context(|| format!("listing {}", dir.display()))?;
        let ft = ent
            .file_type()
            .io_context(|| format!("stat {}", ent.path().display()))?;
        let p = ent.path();
        if ft.is_dir() {
            walk(root, &p, out)?;
        } else if ft.is_file() {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_verify() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a.txt"), b"hello").unwrap();
        std::fs::write(d.path().join("sub/b.bin"), b"world!").unwrap();
        let mut m = Manifest::new("rootfs", "rootfs-arm64", "1", "arm64", "abc");
        m.add_files_from(d.path()).unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.files[0].path, "a.txt");
        assert_eq!(m.files[1].size, 6);
        m.write(d.path()).unwrap();
        let back = Manifest::load(d.path()).unwrap();
        assert_eq!(back, m);
        assert!(back.verify(d.path()).is_empty());
        std::fs::write(d.path().join("a.txt"), b"hellO").unwrap();
        let problems = back.verify(d.path());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("a.txt: sha256"), "{problems:?}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("manifest.json"),
            r#"{"schema":1,"kind":"k","name":"n","version":"v","arch":"a","inputs_digest":"d","files":[],"bogus":1}"#,
        )
        .unwrap();
        let e = Manifest::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(e.contains("manifest.json"), "{e}");
    }
}

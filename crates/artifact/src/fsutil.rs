//! Small file-system helpers for atomic, durable writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{IoContext, Result};

/// Write a file and fsync it.
pub fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f =
        std::fs::File::create(path).io_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .io_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .io_context(|| format!("syncing {}", path.display()))
}

/// Write a file atomically: write a temporary file beside it, fsync, rename over, fsync the folder.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .io_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(data)
        .io_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .io_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .io_context(|| format!("renaming into {}", path.display()))?;
    sync_dir(dir)
}

/// fsync a folder (so a rename inside it is durable).
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).io_context(|| format!("opening {}", dir.display()))?;
    f.sync_all()
        .io_context(|| format!("syncing {}", dir.display()))
}

/// fsync every regular file under `dir`, then every folder, bottom-up.
pub fn sync_tree(dir: &Path) -> Result<()> {
    let rd = std::fs::read_dir(dir).io_context(|| format!("listing {}", dir.display()))?;
    for ent in rd {
        let ent = ent.io_context(|| format!("listing {}", dir.display()))?;
        let ft = ent
            .file_type()
            .io_context(|| format!("stat {}", ent.path().display()))?;
        if ft.is_dir() {
            sync_tree(&ent.path())?;
        } else if ft.is_file() {
            let f = std::fs::File::open(ent.path())
                .io_context(|| format!("opening {}", ent.path().display()))?;
            f.sync_all()
                .io_context(|| format!("syncing {}", ent.path().display()))?;
        }
    }
    sync_dir(dir)
}

/// Copy every file of an artifact folder into `out`, atomically per file and keeping holes, and
/// return the written paths. Used for `--out DIR`. Files are copied, never hard-linked, so editing
/// an exported image (`drydock configure`) cannot corrupt the store.
pub fn export_files(src: &Path, files: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).io_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    for rel in files {
        let from = src.join(rel);
        let to = out.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .io_context(|| format!("creating {}", parent.display()))?;
        }
        let tmp = to.with_file_name(format!(
            ".tmp-{}",
            to.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_file(&tmp);
        copy_sparse(&from, &tmp)?;
        std::fs::rename(&tmp, &to).io_context(|| format!("renaming into {}", to.display()))?;
        written.push(to);
    }
    Ok(written)
}

/// Copy a file, leaving runs of zero blocks as holes in the destination.
pub fn copy_sparse(from: &Path, to: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: usize = 64 * 1024;
    let mut src = std::fs::File::open(from).io_context(|| format!("opening {}", from.display()))?;
    let mut dst = std::fs::File::create(to).io_context(|| format!("creating {}", to.display()))?;
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            let n = src
                .read(&mut buf[filled..])
                .io_context(|| format!("reading {}", from.display()))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().all(|&b| b == 0) {
            dst.seek(SeekFrom::Current(filled as i64))
                .io_context(|| format!("seeking in {}", to.display()))?;
        } else {
            dst.write_all(&buf[..filled])
                .io_context(|| format!("writing {}", to.display()))?;
        }
        total += filled as u64;
        if filled < BLOCK {
            break;
        }
    }
    dst.set_len(total)
        .io_context(|| format!("sizing {}", to.display()))?;
    dst.sync_all()
        .io_context(|| format!("syncing {}", to.display()))?;
    Ok(total)
}

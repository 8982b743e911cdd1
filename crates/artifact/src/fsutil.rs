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
    // A bare file name ("x.bmap") has the empty path as parent: that is the current folder.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
///
/// A copy gets its source's modification time; a destination that already has the source's size
/// and modification time (to the nanosecond) is taken as that same copy and not rewritten, so
/// exporting an unchanged multi-GB bundle again costs two `stat`s per file. Editing the copy
/// changes its mtime, so it is copied again next time.
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
        let src_meta =
            std::fs::metadata(&from).io_context(|| format!("stat {}", from.display()))?;
        if let Ok(dst_meta) = std::fs::symlink_metadata(&to) {
            if dst_meta.is_file()
                && dst_meta.len() == src_meta.len()
                && dst_meta.modified().ok() == src_meta.modified().ok()
            {
                written.push(to);
                continue;
            }
        }
        let tmp = to.with_file_name(format!(
            ".tmp-{}",
            to.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_file(&tmp);
        copy_sparse(&from, &tmp)?;
        if let Ok(mtime) = src_meta.modified() {
            std::fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(mtime))
                .io_context(|| format!("setting the mtime of {}", tmp.display()))?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_skips_unchanged_and_recopies_edited() {
        let d = tempfile::tempdir().unwrap();
        let (src, out) = (d.path().join("src"), d.path().join("out"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.img"), b"image").unwrap();
        let files = vec!["a.img".to_string()];
        export_files(&src, &files, &out).unwrap();
        let m1 = std::fs::metadata(out.join("a.img")).unwrap();
        assert_eq!(
            m1.modified().unwrap(),
            std::fs::metadata(src.join("a.img"))
                .unwrap()
                .modified()
                .unwrap()
        );
        // Unchanged: not rewritten (same inode).
        export_files(&src, &files, &out).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(out.join("a.img")).unwrap().ino(),
            m1.ino()
        );
        // The copy was edited (same size, new mtime): copied again.
        std::fs::write(out.join("a.img"), b"IMAGE").unwrap();
        export_files(&src, &files, &out).unwrap();
        assert_eq!(std::fs::read(out.join("a.img")).unwrap(), b"image");
        // The source changed: copied again.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(src.join("a.img"), b"newer").unwrap();
        export_files(&src, &files, &out).unwrap();
        assert_eq!(std::fs::read(out.join("a.img")).unwrap(), b"newer");
    }
}

//! Partitions kept between fills.
//!
//! Making an ext4 from a tree (`mke2fs -d`) is most of a fill, and an image builder that changes
//! only a hostname or a seed on the boot partition fills the same root tree again and again. So
//! the caller may name a tree's content with a key ([`Reuse`]); the fill then keeps the made file
//! system as a sparse file `<dir>/<partition>-<key>.part`, where `<key>` digests everything the
//! bytes depend on (the tree's key, the mke2fs arguments and configuration, its version, the
//! epoch, this crate's format revision), and the next fill asking for the same bytes copies the
//! file's data extents into place instead. Files are written beside their final name and renamed
//! when complete and synced; one file per partition name is kept (older keys are removed with
//! everything else named `<partition>-<key>.*`, which callers may use for their own sidecars).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// The caller's promise: partition name → a key of its tree's content (same key, same tree:
/// owners, modes, times, contents). Only ext4 partitions are kept; FAT is cheap to fill.
#[derive(Debug, Clone, Default)]
pub struct Reuse {
    /// Where kept partitions live (created if missing).
    pub dir: PathBuf,
    pub trees: BTreeMap<String, String>,
}

/// The kept file of partition `name` with content `key`.
pub fn part_path(dir: &Path, name: &str, key: &str) -> PathBuf {
    dir.join(format!("{name}-{key}.part"))
}

/// Copy the data extents of `src` in `[src_off, src_off + len)` to `dst` at `dst_off` (holes
/// stay holes: nothing is written there). Returns the bytes copied. In-kernel
/// (`copy_file_range`), falling back to read and write where the kernel refuses.
pub fn copy_extents(
    src: &File,
    src_off: u64,
    len: u64,
    dst: &File,
    dst_off: u64,
) -> std::io::Result<u64> {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let end = src_off + len;
    let mut pos = src_off;
    let mut copied = 0u64;
    while pos < end {
        let data = match lseek(src.as_raw_fd(), pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = (lseek(src.as_raw_fd(), data as i64, Whence::SeekHole)? as u64).min(end);
        let mut off_in = data as i64;
        let mut off_out = (data - src_off + dst_off) as i64;
        while (off_in as u64) < hole {
            let want = (hole - off_in as u64).min(1 << 30) as usize;
            match nix::fcntl::copy_file_range(
                src.as_fd(),
                Some(&mut off_in),
                dst.as_fd(),
                Some(&mut off_out),
                want,
            ) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the source ended at byte {off_in}"),
                    ))
                }
                Ok(n) => copied += n as u64,
                Err(Errno::EXDEV | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                    let n = copy_by_hand(src, off_in as u64, want as u64, dst, off_out as u64)?;
                    off_in += n as i64;
                    off_out += n as i64;
                    copied += n;
                }
                Err(e) => return Err(e.into()),
            }
        }
        pos = hole;
    }
    Ok(copied)
}

fn copy_by_hand(src: &File, from: u64, len: u64, dst: &File, to: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (len.min(4 << 20)) as usize];
    let mut done = 0u64;
    while done < len {
        let k = ((len - done) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..k], from + done)?;
        dst.write_all_at(&buf[..k], to + done)?;
        done += k as u64;
    }
    Ok(done)
}

/// The key of a made partition's bytes: the caller's tree key plus everything else they depend
/// on (`what`: the file system maker's arguments, configuration and version, the epoch).
pub fn key(tree_key: &str, what: &[String]) -> String {
    artifact::CacheKey::new(
        "kept-partition",
        &(crate::blank::FORMAT_REVISION, tree_key, what),
    )
    .digest()
}

/// Put a copy in `keep` of the partition at `[start, start + size)` of `image`, then remove the
/// kept files of other keys of the same partition. With `seal` false the copy is left beside
/// its final name, its writeback started, and the path returned: [`seal`] it once the caller
/// trusts the partition (until then a later fill cannot pick it up).
pub fn store(
    image: &Path,
    start: u64,
    size: u64,
    keep: &Path,
    name: &str,
    key: &str,
    seal_now: bool,
) -> Result<Option<PathBuf>> {
    std::fs::create_dir_all(keep).ctx(|| format!("creating {}", keep.display()))?;
    let src = File::open(image).ctx(|| format!("opening {}", image.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-{key}.tmp-"))
        .tempfile_in(keep)
        .ctx(|| format!("creating a temporary file in {}", keep.display()))?;
    tmp.as_file()
        .set_len(size)
        .ctx(|| format!("sizing {}", tmp.path().display()))?;
    copy_extents(&src, start, size, tmp.as_file(), 0).ctx(|| {
        format!(
            "copying partition {name} of {} to {}",
            image.display(),
            tmp.path().display()
        )
    })?;
    if !seal_now {
        start_writeback(tmp.as_file());
        let path = tmp
            .into_temp_path()
            .keep()
            .map_err(|e| e.error)
            .ctx(|| format!("keeping a temporary file in {}", keep.display()))?;
        return Ok(Some(path));
    }
    seal_file(tmp.path(), keep, name, key)?;
    // The temporary name is gone (renamed): nothing for the guard to remove.
    let _ = tmp.into_temp_path().keep();
    Ok(None)
}

/// fsync `tmp`, rename it to the kept name of (`name`, `key`) and prune the others.
fn seal_file(tmp: &Path, keep: &Path, name: &str, key: &str) -> Result<()> {
    let to = part_path(keep, name, key);
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(tmp, &to).ctx(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    prune(keep, name, key)?;
    artifact::fsutil::sync_dir(keep)?;
    Ok(())
}

/// Make the kept copies a fill left pending ([`crate::build::Inputs::defer_sync`]) available
/// to later fills: synced (their writeback started when they were written, so this is quick
/// once the caller has done its own work) and renamed into place.
pub fn seal(filled: &crate::build::FilledImage) -> Result<()> {
    for p in &filled.partitions {
        if let (Some(tmp), Some(base)) = (&p.pending, &p.kept) {
            let keep = base.parent().unwrap_or(Path::new("."));
            let stem = base.file_name().unwrap_or_default().to_string_lossy();
            let key = stem.rsplit('-').next().unwrap_or_default();
            seal_file(tmp, keep, &p.name, key)?;
        }
    }
    Ok(())
}

/// Start writing `f`'s dirty pages to disk without waiting: an fsync on a thread of its own.
/// Whoever needs the data durable fsyncs again (quick by then); errors surface there.
pub fn start_writeback(f: &File) {
    if let Ok(f) = f.try_clone() {
        std::thread::spawn(move || {
            let _ = f.sync_all();
        });
    }
}

/// Remove every `<name>-<other key>.*` in `keep` (and stale temporary files of `name`).
pub fn prune(keep: &Path, name: &str, key: &str) -> Result<()> {
    let ours = format!("{name}-{key}.");
    let rd = std::fs::read_dir(keep).ctx(|| format!("listing {}", keep.display()))?;
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let f = f.strip_prefix('.').unwrap_or(&f).to_string();
        let Some(rest) = f.strip_prefix(&format!("{name}-")) else {
            continue;
        };
        // Another partition whose name starts with `<name>-` has a key that is not 64 hex digits.
        let k = rest.split('.').next().unwrap_or("");
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let stale = if f.contains(".tmp-") {
            // Another fill may be writing it right now.
            artifact::store::age_of(&e, std::time::SystemTime::now())
                > std::time::Duration::from_secs(6 * 3600)
        } else {
            !f.starts_with(&ours)
        };
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Copy kept partition `part` into `image` at `start`; its length must be `size`.
pub fn place(part: &Path, image: &File, image_path: &Path, start: u64, size: u64) -> Result<u64> {
    let src = File::open(part).ctx(|| format!("opening {}", part.display()))?;
    let len = src
        .metadata()
        .ctx(|| format!("stat {}", part.display()))?
        .len();
    if len != size {
        return Err(crate::Error::Io {
            context: format!("kept partition {}", part.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("is {len} bytes, the partition {size}"),
            ),
        });
    }
    copy_extents(&src, 0, size, image, start)
        .ctx(|| format!("copying {} into {}", part.display(), image_path.display()))
}

/// Files kept in `keep`, by partition name (for listings and tests).
pub fn list(keep: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(keep) {
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = f.strip_suffix(".part") {
                if let Some((name, _)) = stem.rsplit_once('-') {
                    out.insert(name.to_string(), e.path());
                }
            }
        }
    }
    out
}

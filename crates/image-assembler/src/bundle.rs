//! The bundle writers that read the finished image: one pass over the sparse `.img` that computes
//! its sha256, the per-range sha256 of the block map and the compressed copy at once (holes are
//! not read from disk: they hash and compress as zeros).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bmap::{self, Bmap, Range};

/// Compression of the image copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    Zstd,
    Xz,
    Zip,
    None,
}

impl Compression {
    /// File name of the compressed copy of `img_name`.
    pub fn file_name(self, img_name: &str) -> Option<String> {
        match self {
            Compression::Zstd => Some(format!("{img_name}.zst")),
            Compression::Xz => Some(format!("{img_name}.xz")),
            Compression::Zip => Some(format!("{}.zip", img_name.trim_end_matches(".img"))),
            Compression::None => None,
        }
    }
}

/// zstd level of the compressed image (zstd's default; the floor benchmark uses the same).
pub const ZSTD_LEVEL: i32 = 3;
/// xz preset.
pub const XZ_PRESET: u32 = 6;

/// What one pass over the image found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub sha256: String,
    pub size: u64,
    pub bmap: Bmap,
    /// Bytes read from disk (the mapped ranges).
    pub mapped_bytes: u64,
    /// sha256 and size of the compressed copy written in the same pass (zstd, xz).
    pub compressed: Option<(String, u64)>,
}

/// Worker threads for compression: every core.
pub fn threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// A writer that hashes what passes through it (the compressed copy's sha256 for SHA256SUMS,
/// without reading the file again).
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type Out = HashingWriter<BufWriter<File>>;

enum Sink {
    None,
    Zstd(zstd::stream::write::Encoder<'static, Out>),
    Xz(xz2::write::XzEncoder<Out>),
}

impl Sink {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::None => Ok(()),
            Sink::Zstd(e) => e.write_all(b),
            Sink::Xz(e) => e.write_all(b),
        }
    }
    fn finish(self) -> std::io::Result<Option<(File, String, u64)>> {
        let w = match self {
            Sink::None => return Ok(None),
            Sink::Zstd(e) => e.finish()?,
            Sink::Xz(e) => e.finish()?,
        };
        let sha = hex::encode(w.hash.finalize());
        let f = w.inner.into_inner().map_err(|e| e.into_error())?;
        Ok(Some((f, sha, w.len)))
    }
}

/// Read `img` once: its sha256, the block map with per-range sha256, and (for zstd and xz) the
/// compressed copy written to `compressed`. `.zip` is made afterwards by [`zip`].
pub fn scan(img: &Path, compressed: Option<(Compression, &Path)>, threads: u32) -> Result<Scan> {
    let mut f = File::open(img).with_context(|| format!("opening {}", img.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("stat {}", img.display()))?
        .len();
    let ranges = bmap::data_ranges(&f, bmap::BLOCK_SIZE)
        .with_context(|| format!("finding the data ranges of {}", img.display()))?;
    let mut sink = match compressed {
        None | Some((Compression::None | Compression::Zip, _)) => Sink::None,
        Some((c, path)) => {
            let out = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let w = HashingWriter {
                inner: BufWriter::with_capacity(1 << 20, out),
                hash: Sha256::new(),
                len: 0,
            };
            if c == Compression::Zstd {
                let mut e =
                    zstd::stream::write::Encoder::new(w, ZSTD_LEVEL).context("starting zstd")?;
                e.multithread(threads).context("zstd threads")?;
                e.include_checksum(true).context("zstd checksum flag")?;
                e.set_pledged_src_size(Some(size))
                    .context("zstd source size")?;
                Sink::Zstd(e)
            } else {
                let stream = xz2::stream::MtStreamBuilder::new()
                    .threads(threads)
                    .preset(XZ_PRESET)
                    .check(xz2::stream::Check::Crc64)
                    .encoder()
                    .context("starting xz")?;
                Sink::Xz(xz2::write::XzEncoder::new_stream(w, stream))
            }
        }
    };
    let out_name = compressed
        .map(|(_, p)| p.display().to_string())
        .unwrap_or_default();
    // The reads and the compression run here; the hashing (whole image and per range) runs on a
    // thread of its own, fed the same buffers, so neither waits for the other.
    enum Piece {
        Data(std::sync::Arc<Vec<u8>>),
        EndRange,
        Zeros(u64),
    }
    let zeros = vec![0u8; 1 << 20];
    let feed_sink_zeros = |n: u64, sink: &mut Sink| -> Result<()> {
        let mut left = n;
        while left > 0 {
            let k = left.min(zeros.len() as u64) as usize;
            sink.write_all(&zeros[..k])
                .with_context(|| format!("writing {out_name}"))?;
            left -= k as u64;
        }
        Ok(())
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(8);
    let mut mapped_bytes = 0u64;
    let (whole_sha, range_shas, read_result) = std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let zeros = vec![0u8; 1 << 20];
            let mut whole = Sha256::new();
            let mut cur = Sha256::new();
            let mut shas = Vec::new();
            for p in rx {
                match p {
                    Piece::Data(b) => {
                        cur.update(&b[..]);
                        whole.update(&b[..]);
                    }
                    Piece::EndRange => shas.push(hex::encode(cur.finalize_reset())),
                    Piece::Zeros(n) => {
                        let mut left = n;
                        while left > 0 {
                            let k = left.min(zeros.len() as u64) as usize;
                            whole.update(&zeros[..k]);
                            left -= k as u64;
                        }
                    }
                }
            }
            (hex::encode(whole.finalize()), shas)
        });
        let read = (|| -> Result<()> {
            let mut pos = 0u64;
            let send = |p: Piece| {
                tx.send(p)
                    .map_err(|_| anyhow::anyhow!("the hashing thread stopped"))
            };
            for &(start, end) in &ranges {
                send(Piece::Zeros(start - pos))?;
                feed_sink_zeros(start - pos, &mut sink)?;
                f.seek(SeekFrom::Start(start))
                    .with_context(|| format!("seeking in {}", img.display()))?;
                let mut left = end - start;
                while left > 0 {
                    let k = left.min(4 << 20) as usize;
                    let mut buf = vec![0u8; k];
                    f.read_exact(&mut buf)
                        .with_context(|| format!("reading {}", img.display()))?;
                    let buf = std::sync::Arc::new(buf);
                    send(Piece::Data(buf.clone()))?;
                    sink.write_all(&buf)
                        .with_context(|| format!("writing {out_name}"))?;
                    left -= k as u64;
                }
                send(Piece::EndRange)?;
                mapped_bytes += end - start;
                pos = end;
            }
            send(Piece::Zeros(size - pos))?;
            feed_sink_zeros(size - pos, &mut sink)?;
            Ok(())
        })();
        drop(tx);
        let (w, r) = hasher.join().unwrap_or_default();
        (w, r, read)
    });
    read_result?;
    if range_shas.len() != ranges.len() {
        bail!("hashing {} stopped early", img.display());
    }
    let mapped: Vec<Range> = ranges
        .iter()
        .zip(range_shas)
        .map(|(&(start, end), sha256)| Range {
            first: start / bmap::BLOCK_SIZE,
            last: (end - 1) / bmap::BLOCK_SIZE,
            sha256,
        })
        .collect();
    let mut compressed = None;
    if let Some((out, sha, len)) = sink
        .finish()
        .with_context(|| format!("finishing {out_name}"))?
    {
        out.sync_all()
            .with_context(|| format!("syncing {out_name}"))?;
        compressed = Some((sha, len));
    }
    Ok(Scan {
        sha256: whole_sha,
        size,
        bmap: Bmap {
            image_size: size,
            block_size: bmap::BLOCK_SIZE,
            ranges: mapped,
        },
        mapped_bytes,
        compressed,
    })
}

/// Make `out` (.zip) holding `img` alone, reproducibly: no extra attributes, and the entry's time
/// is `epoch` (the image's mtime is set to it while zip reads it, then back to now: exported
/// copies are told apart by their mtimes).
pub fn zip(img: &Path, out: &Path, epoch: i64) -> Result<()> {
    if out.exists() {
        std::fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
    }
    let set_mtime = |t: std::time::SystemTime| -> Result<()> {
        std::fs::File::options()
            .write(true)
            .open(img)
            .and_then(|f| f.set_modified(t))
            .with_context(|| format!("setting the mtime of {}", img.display()))
    };
    set_mtime(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64))?;
    let r = artifact::cmd::run_logged(
        std::process::Command::new("zip")
            .args(["-q", "-X", "-j", "-1"])
            .arg(out)
            .arg(img),
    )
    .with_context(|| format!("zipping {}", img.display()));
    set_mtime(std::time::SystemTime::now())?;
    r?;
    if !out.is_file() {
        bail!("zip did not write {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sparse file with data, holes and a partial last block.
    fn sparse(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("t.img");
        let mut f = File::create(&p).unwrap();
        f.write_all(&[1u8; 10_000]).unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.seek(SeekFrom::Start((8 << 20) - 100)).unwrap();
        f.write_all(&[9u8; 200]).unwrap(); // crosses a block boundary
        f.set_len((16 << 20) + 1000).unwrap();
        f.seek(SeekFrom::Start(16 << 20)).unwrap();
        f.write_all(&[5u8; 1000]).unwrap(); // partial last block
        f.sync_all().unwrap();
        p
    }

    #[test]
    fn scan_hashes_and_compresses_like_the_tools() {
        let d = tempfile::tempdir().unwrap();
        let img = sparse(d.path());
        let zst = d.path().join("t.img.zst");
        let s = scan(&img, Some((Compression::Zstd, &zst)), 2).unwrap();
        assert_eq!(
            s.compressed.clone().unwrap(),
            artifact::sha256_file(&zst).unwrap()
        );
        let (sha, size) = artifact::sha256_file(&img).unwrap();
        assert_eq!(s.sha256, sha);
        assert_eq!(s.size, size);
        assert!(
            s.mapped_bytes < size / 2,
            "holes were read: {}",
            s.mapped_bytes
        );
        // Per-range hashes are what bmaptool would compute.
        let data = std::fs::read(&img).unwrap();
        for r in &s.bmap.ranges {
            let a = (r.first * 4096) as usize;
            let b = (((r.last + 1) * 4096) as usize).min(data.len());
            assert_eq!(r.sha256, artifact::sha256_bytes(&data[a..b]));
        }
        // The compressed copy decompresses to the image.
        let back = zstd::decode_all(File::open(&zst).unwrap()).unwrap();
        assert_eq!(back, data);
        let xz = d.path().join("t.img.xz");
        scan(&img, Some((Compression::Xz, &xz)), 2).unwrap();
        let mut back = Vec::new();
        xz2::read::XzDecoder::new(File::open(&xz).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    /// bmaptool itself copies the image using our block map and verifies every range.
    #[test]
    fn bmaptool_copy_accepts_our_bmap() {
        if artifact::cmd::which("bmaptool").is_none() {
            artifact::skip_test(
                "bmaptool not installed (scripts/setup-host.sh installs bmap-tools)",
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let img = sparse(d.path());
        let s = scan(&img, None, 1).unwrap();
        let bmap_path = d.path().join("t.bmap");
        std::fs::write(&bmap_path, bmap::render(&s.bmap).unwrap()).unwrap();
        let out = d.path().join("copy.img");
        let o = std::process::Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(&bmap_path)
            .arg(&img)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bmaptool copy: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(artifact::sha256_file(&out).unwrap().0, s.sha256);
        // A wrong range hash makes bmaptool refuse.
        let mut bad = s.bmap.clone();
        bad.ranges[0].sha256 = "0".repeat(64);
        std::fs::write(&bmap_path, bmap::render(&bad).unwrap()).unwrap();
        let o = std::process::Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(&bmap_path)
            .arg(&img)
            .arg(d.path().join("copy2.img"))
            .output()
            .unwrap();
        assert!(!o.status.success());
    }

    #[test]
    fn zip_roundtrip() {
        if artifact::cmd::which("zip").is_none() || artifact::cmd::which("unzip").is_none() {
            artifact::skip_test("zip/unzip not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let img = sparse(d.path());
        let z = d.path().join("t.zip");
        zip(&img, &z, 1_700_000_000).unwrap();
        let z2 = d.path().join("t2.zip");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        zip(&img, &z2, 1_700_000_000).unwrap();
        assert_eq!(
            std::fs::read(&z).unwrap(),
            std::fs::read(&z2).unwrap(),
            "zip is not reproducible"
        );
        let o = std::process::Command::new("unzip")
            .arg("-p")
            .arg(&z)
            .output()
            .unwrap();
        assert_eq!(o.stdout, std::fs::read(&img).unwrap());
    }
}

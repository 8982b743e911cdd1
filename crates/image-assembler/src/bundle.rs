//! The bundle writers that read the finished image: one pass over the sparse `.img` that computes
//! its sha256, the per-range sha256 of the block map and the compressed copy at once (holes are
//! not read from disk: they hash and compress as zeros).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

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
    /// Segments whose kept frame was copied instead of compressed.
    pub kept_frames: usize,
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

/// Read `img` once: its sha256, the block map with per-range sha256, and (for zstd and xz) the
/// compressed copy written to `compressed`. `.zip` is made afterwards by [`zip`].
pub fn scan(img: &Path, compressed: Option<(Compression, &Path)>, threads: u32) -> Result<Scan> {
    scan_with(img, compressed, threads, &[])
}

/// A byte range of the image (a partition) compressed as a zstd frame of its own. When its bytes
/// have a name (a kept partition, see `raw_image::keep`), the frame and the block map's hashes
/// are kept between builds at `<keep>.zst` and `<keep>.frame.json`.
#[derive(Debug, Clone)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub keep: Option<PathBuf>,
}

/// What is kept about a kept segment's bytes: its data ranges with their sha256 (checked each
/// time the segment is scanned again) and, with zstd, its compressed frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// Length of the segment.
    length: u64,
    /// Data ranges relative to the segment's start, with their sha256.
    ranges: Vec<(u64, u64, String)>,
    frame: Option<FrameInfo>,
}

/// A kept zstd frame: it decompresses to the segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameInfo {
    level: i32,
    threads: u32,
    zstd: u32,
    size: u64,
    sha256: String,
}

impl Segment {
    fn kept(&self, ext: &str) -> Option<PathBuf> {
        self.keep.as_ref().map(|k| k.with_extension(ext))
    }
    fn frame(&self) -> PathBuf {
        self.kept("zst").unwrap_or_default()
    }
    fn record(&self) -> PathBuf {
        self.kept("record.json").unwrap_or_default()
    }
    /// The kept record of this segment, if any.
    fn load(&self) -> Option<Record> {
        let text = std::fs::read_to_string(self.kept("record.json")?).ok()?;
        let r: Record = serde_json::from_str(&text).ok()?;
        (r.length == self.end - self.start).then_some(r)
    }
    /// Whether the record's frame can stand for a frame compressed here.
    fn frame_usable(&self, r: &Record, threads: u32) -> bool {
        let len = std::fs::metadata(self.frame()).map(|m| m.len()).ok();
        r.frame.as_ref().is_some_and(|f| {
            f.level == ZSTD_LEVEL
                && f.threads == threads
                && f.zstd == zstd::zstd_safe::version_number()
                && Some(f.size) == len
        })
    }
    fn forget(&self) {
        if self.keep.is_some() {
            let _ = std::fs::remove_file(self.record());
            let _ = std::fs::remove_file(self.frame());
        }
    }
    /// The segment's bytes are not the recorded ones: the kept partition (`<keep>.part`)
    /// changed on disk. Remove everything kept about it.
    fn damaged(&self, img: &Path, why: &str) -> anyhow::Error {
        self.forget();
        if let Some(part) = self.kept("part") {
            let _ = std::fs::remove_file(part);
        }
        anyhow::anyhow!(
            "bytes {}..{} of {} are not the ones recorded in {} ({why}): a kept file system changed on disk; it is removed, build again",
            self.start,
            self.end,
            img.display(),
            self.record().display()
        )
    }
}

/// Split `ranges` at every segment boundary (a range never spans two frames).
fn split_ranges(ranges: &[(u64, u64)], segments: &[Segment]) -> Vec<(u64, u64)> {
    let mut cuts: Vec<u64> = segments.iter().flat_map(|s| [s.start, s.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for &(s, e) in ranges {
        let mut a = s;
        for &c in cuts.iter().filter(|&&c| c > s && c < e) {
            out.push((a, c));
            a = c;
        }
        out.push((a, e));
    }
    out
}

/// A writer that copies what passes through it into a second file (a segment's frame, kept).
struct Tee<W: Write> {
    out: W,
    copy: Option<BufWriter<File>>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(b)?;
        if let Some(c) = &mut self.copy {
            c.write_all(&b[..n])?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The compressed copy: one zstd frame per piece of the image (the pieces are cut at the
/// segments' boundaries), or one xz stream.
enum Sink {
    None,
    Zstd {
        out: Option<Out>,
        frame: Option<zstd::stream::write::Encoder<'static, Tee<Out>>>,
        threads: u32,
    },
    Xz(xz2::write::XzEncoder<Out>),
}

impl Sink {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::None => Ok(()),
            Sink::Zstd { frame, .. } => match frame {
                Some(e) => e.write_all(b),
                None => Ok(()),
            },
            Sink::Xz(e) => e.write_all(b),
        }
    }
    /// zstd: start the frame of a piece of `len` bytes, copying it to `keep` when given.
    fn start_frame(&mut self, len: u64, keep: Option<File>) -> std::io::Result<()> {
        if let Sink::Zstd {
            out,
            frame,
            threads,
        } = self
        {
            let o = out.take().expect("the previous frame was finished");
            let mut e = zstd::stream::write::Encoder::new(
                Tee {
                    out: o,
                    copy: keep.map(|f| BufWriter::with_capacity(1 << 20, f)),
                },
                ZSTD_LEVEL,
            )?;
            e.multithread(*threads)?;
            e.include_checksum(true)?;
            e.set_pledged_src_size(Some(len))?;
            *frame = Some(e);
        }
        Ok(())
    }
    /// zstd: finish the current frame; returns the kept copy's file, if any.
    fn end_frame(&mut self) -> std::io::Result<Option<File>> {
        if let Sink::Zstd { out, frame, .. } = self {
            if let Some(e) = frame.take() {
                let tee = e.finish()?;
                *out = Some(tee.out);
                return tee
                    .copy
                    .map(|c| c.into_inner().map_err(|e| e.into_error()))
                    .transpose();
            }
        }
        Ok(None)
    }
    /// zstd: put a kept frame in as it is; returns the sha256 of what was copied.
    fn copy_frame(&mut self, from: &Path) -> std::io::Result<String> {
        let Sink::Zstd { out: Some(o), .. } = self else {
            return Err(std::io::Error::other("no frame can be copied here"));
        };
        let mut f = File::open(from)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 4 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            o.write_all(&buf[..n])?;
        }
        Ok(hex::encode(h.finalize()))
    }
    fn finish(self) -> std::io::Result<Option<(File, String, u64)>> {
        let w = match self {
            Sink::None => return Ok(None),
            Sink::Zstd { out, frame, .. } => {
                if frame.is_some() {
                    return Err(std::io::Error::other("a frame was left open"));
                }
                out.expect("no frame is open")
            }
            Sink::Xz(e) => e.finish()?,
        };
        let sha = hex::encode(w.hash.finalize());
        let f = w.inner.into_inner().map_err(|e| e.into_error())?;
        Ok(Some((f, sha, w.len)))
    }
}

/// [`scan`], in segments: with zstd, every segment is a frame of its own (and so is every gap
/// between them); a kept segment whose frame matches (same length, level, threads, zstd version, and the image's data ranges
/// there are the recorded ones) is copied instead of compressed, and its bytes are still read
/// and hashed, and must hash as recorded. A segment compressed here is kept for the next scan.
pub fn scan_with(
    img: &Path,
    compressed: Option<(Compression, &Path)>,
    threads: u32,
    segments: &[Segment],
) -> Result<Scan> {
    match scan_once(img, compressed, threads, segments, true) {
        Err(e) if e.downcast_ref::<StaleFrame>().is_some() => {
            tracing::warn!("{e:#}; compressing the image afresh");
            scan_once(img, compressed, threads, segments, false)
        }
        other => other,
    }
}

/// A kept frame whose bytes are not the recorded ones (it is removed).
#[derive(Debug)]
struct StaleFrame(String);
impl std::fmt::Display for StaleFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::error::Error for StaleFrame {}

fn scan_once(
    img: &Path,
    compressed: Option<(Compression, &Path)>,
    threads: u32,
    segments: &[Segment],
    use_kept: bool,
) -> Result<Scan> {
    use std::os::unix::fs::FileExt;
    let f = File::open(img).with_context(|| format!("opening {}", img.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("stat {}", img.display()))?
        .len();
    let zstd = matches!(compressed, Some((Compression::Zstd, _)));
    // Cut only at whole blocks, so no block map range shares a block with another.
    let whole = |o: u64| o.is_multiple_of(bmap::BLOCK_SIZE) || o == size;
    let mut segments: Vec<&Segment> = segments
        .iter()
        .filter(|s| s.start < s.end && s.end <= size && whole(s.start) && whole(s.end))
        .collect();
    segments.sort_by_key(|s| s.start);
    if segments.windows(2).any(|w| w[0].end > w[1].start) {
        bail!("kept segments of {} overlap", img.display());
    }
    let all_ranges = bmap::data_ranges(&f, bmap::BLOCK_SIZE)
        .with_context(|| format!("finding the data ranges of {}", img.display()))?;
    let owned: Vec<Segment> = segments.iter().map(|s| (*s).clone()).collect();
    let ranges = split_ranges(&all_ranges, &owned);
    let mapped_bytes: u64 = ranges.iter().map(|(s, e)| e - s).sum();
    // The pieces, each one frame: (start, end, segment, first range, number of ranges).
    let mut cuts: Vec<(u64, u64, Option<&Segment>)> = Vec::new();
    let mut pos = 0;
    for s in &segments {
        if s.start > pos {
            cuts.push((pos, s.start, None));
        }
        cuts.push((s.start, s.end, Some(s)));
        pos = s.end;
    }
    if pos < size || cuts.is_empty() {
        cuts.push((pos, size, None));
    }
    let mut pieces = Vec::new();
    let mut next = 0usize;
    for (ps, pe, seg) in cuts {
        let first = next;
        while next < ranges.len() && ranges[next].0 < pe {
            next += 1;
        }
        pieces.push((ps, pe, seg, first, next - first));
    }
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
                Sink::Zstd {
                    out: Some(w),
                    frame: None,
                    threads,
                }
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
    let zeros = vec![0u8; 1 << 20];
    const CHUNK: u64 = 4 << 20;

    // Per kept segment: the record used (checked against the hashes afterwards), or the frame
    // made here to keep.
    struct Kept<'a> {
        segment: &'a Segment,
        record: Option<Record>,
        /// The kept frame was copied.
        frame_used: bool,
        /// A frame compressed here, to keep.
        frame: Option<tempfile::NamedTempFile>,
        first_range: usize,
        ranges: usize,
    }
    let mut kept: Vec<Kept> = Vec::new();
    // A record whose ranges are not where the image has data: the kept bytes changed.
    for &(ps, _, seg, first, n) in &pieces {
        if let Some((s, r)) = seg.and_then(|s| s.load().map(|r| (s, r))) {
            let mine = &ranges[first..first + n];
            let same = r.ranges.len() == mine.len()
                && r.ranges
                    .iter()
                    .zip(mine)
                    .all(|(k, m)| k.0 + ps == m.0 && k.1 + ps == m.1);
            if !same {
                return Err(s.damaged(img, "its data ranges moved"));
            }
        }
    }

    // Three threads: one reads the image and hashes all of it, one hashes each data range (fed
    // the same buffers), and this one writes the compressed copy, frame by frame (reading the
    // image again where it compresses: cheaper than waiting for the hashers).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(8);
    let (hashed, compress_result) = std::thread::scope(|scope| {
        // Buffers go back to the reader once hashed (fresh 4 MiB buffers cost page faults).
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let ranger = scope.spawn(move || {
            let mut cur = Sha256::new();
            let mut shas = Vec::new();
            for m in rx {
                match m {
                    Some(b) => {
                        cur.update(&b[..]);
                        let _ = back_tx.send(b);
                    }
                    None => shas.push(hex::encode(cur.finalize_reset())),
                }
            }
            shas
        });
        let ranges = &ranges;
        let zeros = &zeros;
        let reader = scope.spawn(move || -> Result<String> {
            let f = File::open(img).with_context(|| format!("opening {}", img.display()))?;
            let mut whole = Sha256::new();
            let hash_zeros = |whole: &mut Sha256, n: u64| {
                let mut left = n;
                while left > 0 {
                    let k = left.min(zeros.len() as u64) as usize;
                    whole.update(&zeros[..k]);
                    left -= k as u64;
                }
            };
            let mut pos = 0u64;
            for &(start, end) in ranges {
                hash_zeros(&mut whole, start - pos);
                let mut at = start;
                while at < end {
                    let k = (end - at).min(CHUNK) as usize;
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    buf.resize(k, 0);
                    f.read_exact_at(&mut buf, at)
                        .with_context(|| format!("reading {}", img.display()))?;
                    whole.update(&buf);
                    tx.send(Some(buf))
                        .map_err(|_| anyhow::anyhow!("the range hashing thread stopped"))?;
                    at += k as u64;
                }
                tx.send(None)
                    .map_err(|_| anyhow::anyhow!("the range hashing thread stopped"))?;
                pos = end;
            }
            hash_zeros(&mut whole, size - pos);
            drop(tx);
            Ok(hex::encode(whole.finalize()))
        });
        let compress = (|| -> Result<()> {
            let compressing = !matches!(sink, Sink::None);
            let mut buf = vec![0u8; CHUNK as usize];
            let feed_zeros = |n: u64, sink: &mut Sink| -> Result<()> {
                let mut left = n;
                while left > 0 {
                    let k = left.min(zeros.len() as u64) as usize;
                    sink.write_all(&zeros[..k])
                        .with_context(|| format!("writing {out_name}"))?;
                    left -= k as u64;
                }
                Ok(())
            };
            for &(ps, pe, seg, first, n) in &pieces {
                let mine = &ranges[first..first + n];
                // The kept record (its ranges checked above), and whether its frame stands in.
                let record = seg.and_then(|s| s.load());
                let frame_used = zstd
                    && use_kept
                    && matches!((seg, &record), (Some(s), Some(r)) if s.frame_usable(r, threads));
                let mut frame = None;
                match (&record, seg) {
                    (Some(r), Some(s)) if frame_used => {
                        let sha = sink.copy_frame(&s.frame()).with_context(|| {
                            format!("copying {} into {out_name}", s.frame().display())
                        })?;
                        let want = r
                            .frame
                            .as_ref()
                            .map(|f| f.sha256.as_str())
                            .unwrap_or_default();
                        if sha != want {
                            s.forget();
                            return Err(StaleFrame(format!(
                                "the kept frame {} is not the recorded one (sha256 {sha}, recorded {want}); removed",
                                s.frame().display(),
                            ))
                            .into());
                        }
                    }
                    _ if !compressing => {}
                    _ => {
                        let mut copy = None;
                        if let Some(keep) = seg.and_then(|s| s.keep.as_ref()).filter(|_| zstd) {
                            let dir = keep.parent().unwrap_or(Path::new("."));
                            // `.<keep>.zst.tmp-*`: raw_image::keep::prune removes what a killed
                            // build left.
                            let name = keep.file_name().unwrap_or_default().to_string_lossy();
                            let t = tempfile::Builder::new()
                                .prefix(&format!(".{name}.zst.tmp-"))
                                .tempfile_in(dir)
                                .with_context(|| {
                                    format!("creating a temporary file in {}", dir.display())
                                })?;
                            copy = Some(
                                t.reopen()
                                    .with_context(|| format!("opening {}", t.path().display()))?,
                            );
                            frame = Some(t);
                        }
                        sink.start_frame(pe - ps, copy)
                            .with_context(|| format!("starting a frame of {out_name}"))?;
                        let mut pos = ps;
                        for &(start, end) in mine {
                            feed_zeros(start - pos, &mut sink)?;
                            let mut at = start;
                            while at < end {
                                let k = (end - at).min(CHUNK) as usize;
                                f.read_exact_at(&mut buf[..k], at)
                                    .with_context(|| format!("reading {}", img.display()))?;
                                sink.write_all(&buf[..k])
                                    .with_context(|| format!("writing {out_name}"))?;
                                at += k as u64;
                            }
                            pos = end;
                        }
                        feed_zeros(pe - pos, &mut sink)?;
                        let copy = sink
                            .end_frame()
                            .with_context(|| format!("finishing a frame of {out_name}"))?;
                        if let (Some(t), Some(c)) = (&frame, copy) {
                            c.sync_all()
                                .with_context(|| format!("syncing {}", t.path().display()))?;
                        }
                    }
                }
                if let Some(s) = seg.filter(|s| s.keep.is_some()) {
                    kept.push(Kept {
                        segment: s,
                        record,
                        frame_used,
                        frame,
                        first_range: first,
                        ranges: n,
                    });
                }
            }
            Ok(())
        })();
        let whole = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the image reading thread panicked")));
        let shas = ranger.join().unwrap_or_default();
        (whole.map(|w| (w, shas)), compress)
    });
    compress_result?;
    let (whole_sha, range_shas) = hashed?;
    if range_shas.len() != ranges.len() {
        bail!("hashing {} stopped early", img.display());
    }
    // Kept segments: the bytes must be the recorded ones; what was made here is kept.
    let kept_frames = kept.iter().filter(|k| k.frame_used).count();
    for k in kept {
        let shas = &range_shas[k.first_range..k.first_range + k.ranges];
        let here: Vec<(u64, u64, String)> = ranges[k.first_range..k.first_range + k.ranges]
            .iter()
            .zip(shas)
            .map(|(&(s, e), sha)| (s - k.segment.start, e - k.segment.start, sha.clone()))
            .collect();
        if let Some(r) = &k.record {
            if r.ranges != here {
                return Err(k.segment.damaged(img, "its data hash differently"));
            }
        }
        let frame = match k.frame {
            Some(t) => {
                let (sha256, size) = artifact::sha256_file(t.path())?;
                t.persist(k.segment.frame())
                    .map_err(|e| e.error)
                    .with_context(|| format!("keeping {}", k.segment.frame().display()))?;
                Some(FrameInfo {
                    level: ZSTD_LEVEL,
                    threads,
                    zstd: zstd::zstd_safe::version_number(),
                    size,
                    sha256,
                })
            }
            None => None,
        };
        if k.record.is_none() || frame.is_some() {
            let record = Record {
                length: k.segment.end - k.segment.start,
                ranges: here,
                frame,
            };
            artifact::fsutil::write_atomic(
                &k.segment.record(),
                (serde_json::to_string(&record)? + "\n").as_bytes(),
            )?;
        }
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
        kept_frames,
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
    use std::io::{Seek, SeekFrom};

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

    /// Segments are frames of their own; a kept one is copied next time (same bytes out), a
    /// damaged kept frame is replaced, and image bytes that differ from the record are refused.
    #[test]
    fn kept_segments_give_the_same_bytes() {
        let d = tempfile::tempdir().unwrap();
        let img = sparse(d.path());
        let data = std::fs::read(&img).unwrap();
        let keep = d.path().join("keep");
        std::fs::create_dir(&keep).unwrap();
        let segs = |kept: bool| {
            vec![
                Segment {
                    start: 1 << 20,
                    end: 4 << 20,
                    keep: None,
                },
                Segment {
                    start: 4 << 20,
                    end: 12 << 20,
                    keep: kept.then(|| keep.join("root-k")),
                },
            ]
        };
        let run = |name: &str, kept: bool| {
            let zst = d.path().join(name);
            let s = scan_with(&img, Some((Compression::Zstd, &zst)), 2, &segs(kept)).unwrap();
            assert_eq!(
                s.compressed.clone().unwrap(),
                artifact::sha256_file(&zst).unwrap()
            );
            (zst, s)
        };
        let (plain, p) = run("plain.zst", false);
        assert_eq!(p.kept_frames, 0);
        // Frames: before, the two segments, after; the concatenation decompresses to the image
        // (zstd's own tool agrees).
        assert_eq!(zstd::decode_all(File::open(&plain).unwrap()).unwrap(), data);
        let o = std::process::Command::new("zstd")
            .arg("-t")
            .arg(&plain)
            .output();
        if let Ok(o) = o {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let (first, f) = run("first.zst", true);
        assert_eq!(f.kept_frames, 0);
        assert!(keep.join("root-k.zst").is_file() && keep.join("root-k.record.json").is_file());
        let (second, s) = run("second.zst", true);
        assert_eq!(s.kept_frames, 1);
        let sha = |p: &Path| artifact::sha256_file(p).unwrap().0;
        assert_eq!(sha(&first), sha(&plain));
        assert_eq!(sha(&second), sha(&plain));
        assert_eq!(s.bmap, p.bmap);
        assert_eq!(s.sha256, p.sha256);
        // A damaged kept frame: noticed, replaced, same bytes out.
        let frame = keep.join("root-k.zst");
        let mut b = std::fs::read(&frame).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        std::fs::write(&frame, &b).unwrap();
        let (third, t) = run("third.zst", true);
        assert_eq!(t.kept_frames, 0);
        assert_eq!(sha(&third), sha(&plain));
        assert_eq!(run("fourth.zst", true).1.kept_frames, 1);
        // The image's bytes in the kept segment changed (same ranges): refused, kept files removed.
        let img2 = img.clone();
        {
            use std::os::unix::fs::FileExt;
            let f = File::options().write(true).open(&img2).unwrap();
            f.write_all_at(b"MIDDLE", 8 << 20).unwrap();
        }
        let e = scan_with(
            &img2,
            Some((Compression::Zstd, &d.path().join("x.zst"))),
            2,
            &segs(true),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not the ones recorded"), "{e:#}");
        assert!(!keep.join("root-k.record.json").exists());
        // Without zstd: no frames, the same block map, and the kept bytes are still checked.
        let a = scan_with(&img, None, 1, &segs(true)).unwrap();
        assert_eq!(a.bmap, scan(&img, None, 1).unwrap().bmap);
        assert!(keep.join("root-k.record.json").is_file());
        {
            use std::os::unix::fs::FileExt;
            let f = File::options().write(true).open(&img).unwrap();
            f.write_all_at(b"middle", 8 << 20).unwrap();
        }
        let e = scan_with(&img, None, 1, &segs(true)).unwrap_err();
        assert!(format!("{e:#}").contains("not the ones recorded"), "{e:#}");
        // No range is empty, none spans a segment boundary.
        for r in &p.bmap.ranges {
            assert!(r.first <= r.last, "{r:?}");
            assert!(!(r.first < 1024 && r.last >= 1024), "{r:?}");
        }
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

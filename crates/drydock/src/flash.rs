//! `drydock flash`: write an image to a card (or a file), only the mapped blocks when a `.bmap`
//! describes it, then read back what was written and compare sha256; optionally apply per-device
//! settings to the written copy's boot partition.
//!
//! A reader thread decompresses (zstd, xz, zip) or reads the mapped ranges of a raw image and
//! hashes each range, checking it against the bmap, while the main thread writes: block devices
//! with O_DIRECT (honest progress, no page-cache flood), regular files sparsely. Nothing is opened
//! for writing before every refusal check has passed and the user has confirmed.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use image_assembler::bmap::Bmap;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::blockdev::{self, Target};
use crate::cli::FlashArgs;
use crate::imagefile::{self, Format};
use crate::{Ctx, UsageError};

/// Size of one write.
const CHUNK: usize = 4 << 20;
/// Buffer alignment for O_DIRECT.
const ALIGN: usize = 4096;

fn usage(msg: String) -> anyhow::Error {
    UsageError(msg).into()
}

fn human(b: u64) -> String {
    crate::cache_cmd_human(b)
}

/// A heap buffer whose usable part starts at a 4 KiB boundary (for O_DIRECT), without unsafe code.
struct AlignedBuf {
    v: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let v = vec![0u8; CHUNK + ALIGN];
        let addr = v.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        AlignedBuf { v, start }
    }
    fn buf(&mut self) -> &mut [u8] {
        &mut self.v[self.start..self.start + CHUNK]
    }
    fn data(&self, len: usize) -> &[u8] {
        &self.v[self.start..self.start + len]
    }
}

struct Chunk {
    offset: u64,
    len: usize,
    buf: AlignedBuf,
    /// Index of the span (bmap range, or 0 for the whole image) the chunk belongs to.
    span: usize,
}

/// What flows from the reader to the hasher and on to the writer.
enum Msg {
    Data(Chunk),
    /// The span is complete; from the hasher on it carries the span's sha256.
    End {
        span: usize,
        sha256: String,
    },
}

/// What the writer tells the verifier.
enum Notice {
    Written { offset: u64, len: u64, span: usize },
    End { span: usize, sha256: String },
}

/// An error that only says another stage of the pipeline stopped (the other stage's error is the
/// one to report).
#[derive(Debug, thiserror::Error)]
#[error("{0} stopped")]
struct Stopped(&'static str);

/// The byte span of a bmap range, clipped to the image size.
fn byte_range(b: &Bmap, first: u64, last: u64) -> (u64, u64) {
    let start = first * b.block_size;
    let end = ((last + 1) * b.block_size).min(b.image_size);
    (start, end.saturating_sub(start))
}

/// Bytes a flash writes with this bmap.
pub fn mapped_bytes(b: &Bmap) -> u64 {
    b.ranges
        .iter()
        .map(|r| byte_range(b, r.first, r.last).1)
        .sum()
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Where the reader takes bytes from.
enum Input {
    /// A raw image file: mapped ranges are read at their offsets.
    Raw(File),
    /// A decompressing stream, read front to back.
    Stream(Box<dyn Read + Send>),
}

/// Stage 1: read (and decompress) the bytes to write, in chunks, span by span. Returns the number
/// of raw image bytes (the image size when the stream tells it).
fn reader(
    input: Input,
    bmap: Option<&Bmap>,
    tx: SyncSender<Msg>,
    free: Receiver<AlignedBuf>,
    image: &Path,
) -> Result<u64> {
    let next_buf = || free.recv().map_err(|_| anyhow!(Stopped("the writer")));
    let send = |m: Msg| tx.send(m).map_err(|_| anyhow!(Stopped("the hasher")));
    let short = |at: u64, want: u64| {
        anyhow!(
            "{} ends at byte {at} but its bmap maps bytes up to {want}",
            image.display()
        )
    };
    match bmap {
        Some(b) => {
            let mut input = input;
            let mut stream_pos = 0u64;
            let mut scratch = Vec::new();
            for (i, r) in b.ranges.iter().enumerate() {
                let (start, len) = byte_range(b, r.first, r.last);
                if let Input::Stream(s) = &mut input {
                    // Skip the unmapped bytes before the range.
                    scratch.resize(CHUNK, 0);
                    let mut skip = start - stream_pos;
                    while skip > 0 {
                        let n = skip.min(CHUNK as u64) as usize;
                        let got = read_full(s.as_mut(), &mut scratch[..n])
                            .with_context(|| format!("reading {}", image.display()))?;
                        if got < n {
                            return Err(short(start - skip + got as u64, start + len));
                        }
                        skip -= n as u64;
                    }
                }
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    let mut buf = next_buf()?;
                    let off = start + done;
                    let got = match &mut input {
                        Input::Raw(f) => f
                            .read_exact_at(&mut buf.buf()[..n], off)
                            .map(|_| n)
                            .map_err(|e| {
                                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                    short(off, start + len)
                                } else {
                                    anyhow!(e).context(format!(
                                        "reading {} at byte {off}",
                                        image.display()
                                    ))
                                }
                            })?,
                        Input::Stream(s) => read_full(s.as_mut(), &mut buf.buf()[..n])
                            .with_context(|| format!("reading {}", image.display()))?,
                    };
                    if got < n {
                        return Err(short(off + got as u64, start + len));
                    }
                    send(Msg::Data(Chunk {
                        offset: off,
                        len: n,
                        buf,
                        span: i,
                    }))?;
                    done += n as u64;
                }
                stream_pos = start + len;
                send(Msg::End {
                    span: i,
                    sha256: String::new(),
                })?;
            }
            Ok(b.image_size)
        }
        None => {
            let mut s: Box<dyn Read + Send> = match input {
                Input::Raw(f) => Box::new(f),
                Input::Stream(s) => s,
            };
            let mut pos = 0u64;
            loop {
                let mut buf = next_buf()?;
                let n = read_full(s.as_mut(), buf.buf())
                    .with_context(|| format!("reading {}", image.display()))?;
                if n == 0 {
                    break;
                }
                send(Msg::Data(Chunk {
                    offset: pos,
                    len: n,
                    buf,
                    span: 0,
                }))?;
                pos += n as u64;
                if n < CHUNK {
                    break;
                }
            }
            send(Msg::End {
                span: 0,
                sha256: String::new(),
            })?;
            Ok(pos)
        }
    }
}

/// Stage 2: the sha256 of each span, checked against the bmap, passed on with the data.
fn hasher(rx: Receiver<Msg>, tx: SyncSender<Msg>, bmap: Option<&Bmap>, image: &Path) -> Result<()> {
    let mut h = Sha256::new();
    for m in rx.iter() {
        match m {
            Msg::Data(c) => {
                h.update(c.buf.data(c.len));
                tx.send(Msg::Data(c))
                    .map_err(|_| anyhow!(Stopped("the writer")))?;
            }
            Msg::End { span, .. } => {
                let got = hex::encode(std::mem::take(&mut h).finalize());
                if let Some(r) = bmap.and_then(|b| b.ranges.get(span)) {
                    if got != r.sha256 {
                        bail!(
                            "{}: blocks {}-{} do not match the bmap's sha256 (image {got}, bmap {}); the image or its bmap is damaged, or the image was changed after the bmap was made",
                            image.display(),
                            r.first,
                            r.last,
                            r.sha256
                        );
                    }
                }
                tx.send(Msg::End { span, sha256: got })
                    .map_err(|_| anyhow!(Stopped("the writer")))?;
            }
        }
    }
    Ok(())
}

/// The open target.
enum Sink {
    File {
        f: File,
        /// Skip all-zero blocks (the file was truncated, so they read as zeros).
        sparse: bool,
    },
    Block {
        direct: Option<File>,
        buffered: File,
        lbs: u64,
        size: u64,
        path: PathBuf,
    },
}

impl Sink {
    fn open(target: &Target, image_size: Option<u64>, sparse: bool) -> Result<Sink> {
        match target {
            Target::File(p) => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(p)
                    .with_context(|| format!("opening {} for writing", p.display()))?;
                if let Some(n) = image_size {
                    f.set_len(n)
                        .with_context(|| format!("sizing {}", p.display()))?;
                }
                Ok(Sink::File { f, sparse })
            }
            Target::Block(d) => {
                let excl = nix::fcntl::OFlag::O_EXCL.bits();
                let busy = |e: std::io::Error| {
                    if e.raw_os_error() == Some(nix::errno::Errno::EBUSY as i32) {
                        anyhow!(
                            "{} is busy: the kernel has it in use (mounted, or held by another program)",
                            d.path.display()
                        )
                    } else {
                        anyhow!(e).context(format!("opening {} for writing", d.path.display()))
                    }
                };
                let buffered = OpenOptions::new()
                    .write(true)
                    .custom_flags(excl)
                    .open(&d.path)
                    .map_err(busy)?;
                let direct = OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
                    .open(&d.path)
                    .ok();
                Ok(Sink::Block {
                    direct,
                    buffered,
                    lbs: d.logical_block_size.max(512),
                    size: d.size,
                    path: d.path.clone(),
                })
            }
        }
    }

    /// Write one chunk; returns the bytes actually written.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<u64> {
        match self {
            Sink::File { f, sparse } => {
                if *sparse {
                    Ok(imagefile::write_sparse(f, data, offset)?)
                } else {
                    f.write_all_at(data, offset)?;
                    Ok(data.len() as u64)
                }
            }
            Sink::Block {
                direct,
                buffered,
                lbs,
                size,
                path,
            } => {
                let end = offset + data.len() as u64;
                if end > *size {
                    bail!(
                        "the image is larger than {}: it continues past the device's end ({} bytes)",
                        path.display(),
                        size
                    );
                }
                let aligned = offset % *lbs == 0
                    && data.len() as u64 % *lbs == 0
                    && data.as_ptr() as usize % ALIGN == 0;
                match direct {
                    Some(d) if aligned => d.write_all_at(data, offset)?,
                    _ => buffered.write_all_at(data, offset)?,
                }
                Ok(data.len() as u64)
            }
        }
    }

    fn finish(self, total: u64) -> Result<()> {
        match self {
            Sink::File { f, .. } => {
                if f.metadata()?.len() < total {
                    f.set_len(total)?;
                }
                f.sync_all()?;
            }
            Sink::Block {
                direct, buffered, ..
            } => {
                if let Some(d) = direct {
                    d.sync_all()?;
                }
                buffered.sync_all()?;
            }
        }
        Ok(())
    }
}

fn bar(total: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg.to_string());
    pb
}

/// What a flash did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub image: String,
    pub device: String,
    pub bmap: Option<String>,
    pub image_size: u64,
    /// Bytes the bmap maps (the image size without a bmap).
    pub mapped_bytes: u64,
    pub bytes_written: u64,
    /// Until every byte was written and synced (verification runs alongside).
    pub write_seconds: f64,
    pub verified_bytes: u64,
    /// How much longer the verification took after the writing was done.
    pub verify_seconds: f64,
    /// Seed files written and files copied by the settings.
    pub configured: Vec<String>,
}

fn path_of(t: &Target) -> &Path {
    match t {
        Target::Block(d) => &d.path,
        Target::File(p) => p,
    }
}

/// What [`write_image`] did.
#[derive(Debug)]
struct Written {
    bytes_written: u64,
    image_bytes: u64,
    verified: u64,
    /// Seconds until the last byte was written and synced.
    write_seconds: f64,
    /// Seconds the verification went on after that.
    verify_tail_seconds: f64,
}

/// The first error that is not just "another stage stopped".
fn first_real(errs: Vec<anyhow::Error>) -> Option<anyhow::Error> {
    let mut fallback = None;
    for e in errs {
        if e.downcast_ref::<Stopped>().is_none() {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}

/// Write `input` to the target through the pipeline reader → hasher → writer (this thread) →
/// verifier. The verifier reads back what is written while the writer goes on.
fn write_image(
    input: Input,
    bmap: Option<&Bmap>,
    target: &Target,
    image: &Path,
    image_size: Option<u64>,
    verify: bool,
) -> Result<Written> {
    let to_write = match bmap {
        Some(b) => mapped_bytes(b),
        None => image_size.unwrap_or(0),
    };
    let mut sink = Sink::open(target, image_size, bmap.is_none())?;
    let path = path_of(target).to_path_buf();
    let t0 = Instant::now();
    std::thread::scope(|scope| -> Result<Written> {
        let (read_tx, read_rx) = sync_channel::<Msg>(2);
        let (hash_tx, hash_rx) = sync_channel::<Msg>(2);
        let (free_tx, free_rx) = sync_channel::<AlignedBuf>(6);
        for _ in 0..6 {
            let _ = free_tx.send(AlignedBuf::new());
        }
        let r = scope.spawn(move || reader(input, bmap, read_tx, free_rx, image));
        let h = scope.spawn(move || hasher(read_rx, hash_tx, bmap, image));
        let (note_tx, note_rx) = std::sync::mpsc::channel::<Notice>();
        let p = path.clone();
        let v = scope.spawn(move || verifier(&p, note_rx, verify));
        let pb = bar(to_write, "writing");
        let mut written = 0u64;
        let mut errs = Vec::new();
        for m in hash_rx.iter() {
            match m {
                Msg::Data(c) => {
                    match sink.write(c.offset, c.buf.data(c.len)) {
                        Ok(n) => written += n,
                        Err(e) => {
                            errs.push(e.context(format!(
                                "writing {} at byte {}",
                                path.display(),
                                c.offset
                            )));
                            break;
                        }
                    }
                    pb.inc(c.len as u64);
                    let _ = note_tx.send(Notice::Written {
                        offset: c.offset,
                        len: c.len as u64,
                        span: c.span,
                    });
                    let _ = free_tx.send(c.buf);
                }
                Msg::End { span, sha256 } => {
                    let _ = note_tx.send(Notice::End { span, sha256 });
                }
            }
        }
        drop(hash_rx);
        drop(free_tx);
        let image_bytes = match r.join() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                errs.push(e);
                0
            }
            Err(_) => {
                errs.push(anyhow!("the reader thread panicked"));
                0
            }
        };
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push(anyhow!("the hasher thread panicked")),
        }
        if errs.is_empty() {
            if let Err(e) = sink.finish(image_bytes) {
                errs.push(e.context(format!("syncing {}", path.display())));
            }
        }
        let write_seconds = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
        drop(note_tx);
        let mut verified = 0;
        match v.join() {
            Ok(Ok(n)) => verified = n,
            Ok(Err(e)) => errs.push(e),
            Err(_) => errs.push(anyhow!("the verifier thread panicked")),
        }
        if let Some(e) = first_real(errs) {
            return Err(e.context(format!("{} is not (completely) written", path.display())));
        }
        Ok(Written {
            bytes_written: written,
            image_bytes,
            verified,
            write_seconds,
            verify_tail_seconds: t0.elapsed().as_secs_f64() - write_seconds,
        })
    })
}

/// Bytes read back per batch: the verifier flushes the target's dirty pages (fdatasync), drops the
/// batch's pages from the page cache, then reads it back, from the medium.
const VERIFY_BATCH: u64 = 64 << 20;

/// Per span: the running hash and the bytes it covers.
type SpanHashes = std::collections::HashMap<usize, (Sha256, u64, u64)>;

/// Stage 4: read back what the writer wrote and compare each span's sha256 with the image's.
/// Runs alongside the writer, a batch behind it. (Reading each chunk with O_DIRECT right after
/// it is written was measured twice as slow: it makes the writeback synchronous per chunk.)
///
/// With `read_back` false it only keeps the writeback going (fdatasync and drop the cached pages
/// every batch): measured faster than one large fsync at the end when other programs write too,
/// and it keeps the image out of the page cache.
fn verifier(path: &Path, rx: Receiver<Notice>, read_back: bool) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let f = File::open(path).with_context(|| format!("opening {} to verify", path.display()))?;
    let drop_cache = |lo: u64, hi: u64| {
        let _ = nix::fcntl::posix_fadvise(
            f.as_raw_fd(),
            lo as i64,
            (hi - lo) as i64,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    };
    let mut hashes = SpanHashes::default();
    let mut pending: Vec<(u64, u64, usize)> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut verified = 0u64;
    let mut flush =
        |pending: &mut Vec<(u64, u64, usize)>, hashes: &mut SpanHashes| -> Result<u64> {
            if pending.is_empty() {
                return Ok(0);
            }
            f.sync_data()
                .with_context(|| format!("syncing {}", path.display()))?;
            let lo = pending.iter().map(|p| p.0).min().unwrap_or(0);
            let hi = pending.iter().map(|p| p.0 + p.1).max().unwrap_or(0);
            drop_cache(lo, hi);
            if !read_back {
                pending.clear();
                return Ok(0);
            }
            let mut total = 0;
            for (off, len, span) in pending.drain(..) {
                let e = hashes
                    .entry(span)
                    .or_insert_with(|| (Sha256::new(), off, off + len));
                e.1 = e.1.min(off);
                e.2 = e.2.max(off + len);
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    let at = off + done;
                    f.read_exact_at(&mut buf[..n], at)
                        .with_context(|| format!("reading {} back at byte {at}", path.display()))?;
                    e.0.update(&buf[..n]);
                    done += n as u64;
                }
                total += len;
            }
            // Leave no copy of the card in the page cache.
            drop_cache(lo, hi);
            Ok(total)
        };
    for n in rx.iter() {
        match n {
            Notice::Written { offset, len, span } => {
                pending.push((offset, len, span));
                pending_bytes += len;
                if pending_bytes >= VERIFY_BATCH {
                    verified += flush(&mut pending, &mut hashes)?;
                    pending_bytes = 0;
                }
            }
            Notice::End { span, sha256 } => {
                verified += flush(&mut pending, &mut hashes)?;
                pending_bytes = 0;
                let (h, lo, hi) = hashes
                    .remove(&span)
                    .unwrap_or_else(|| (Sha256::new(), 0, 0));
                let got = hex::encode(h.finalize());
                if read_back && got != sha256 {
                    bail!(
                        "verification failed: bytes {lo}..{hi} of {} read back with sha256 {got}, but the image has {sha256}; the card may be faulty, counterfeit or worn out",
                        path.display()
                    );
                }
            }
        }
    }
    Ok(verified)
}

/// Ask on the terminal; refuse when there is none.
fn confirm(target: &Target, image: &Path) -> Result<()> {
    let what = match target {
        Target::Block(d) => format!("{} ({})", d.path.display(), d.describe()),
        Target::File(p) => format!("the file {}", p.display()),
    };
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "refusing to overwrite {what} without confirmation: stdin is not a terminal; pass --yes"
        )));
    }
    eprint!(
        "Write {} to {what}? Everything on it will be lost. Type 'yes' to continue: ",
        image.display()
    );
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the confirmation")?;
    if !matches!(line.trim(), "yes" | "y" | "YES") {
        return Err(usage("not confirmed; nothing was written".into()));
    }
    Ok(())
}

fn list_candidates() -> ExitCode {
    let c = blockdev::candidates();
    if c.is_empty() {
        println!(
            "No removable drive found. Insert a card, or give --device PATH (a block device or a file)."
        );
    } else {
        println!("Removable drives (pass one with --device):");
        for d in c {
            println!("  {:<14} {}", d.path.display(), d.describe());
        }
    }
    ExitCode::from(2)
}

/// The bmap to use: --bmap, else one beside the image; None with --no-bmap.
fn load_bmap(args: &FlashArgs) -> Result<Option<(PathBuf, Bmap)>> {
    if args.no_bmap {
        return Ok(None);
    }
    let path = match &args.bmap {
        Some(p) => p.clone(),
        None => match imagefile::find_bmap(&args.image) {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| usage(format!("bmap {}: {e}", path.display())))?;
    let b = image_assembler::bmap::parse(&text).map_err(|e| {
        usage(format!(
            "bmap {} is invalid: {e}; fix it, or pass --no-bmap to write the whole image",
            path.display()
        ))
    })?;
    Ok(Some((path, b)))
}

pub fn run(_ctx: &Ctx, args: FlashArgs) -> Result<ExitCode> {
    // Everything that can be wrong with the input is checked before anything is written.
    let plan = crate::configure::plan_from_settings(&args.settings)?;
    let image = &args.image;
    if !image.is_file() {
        return Err(usage(format!("{}: no such image file", image.display())));
    }
    let profile = if plan.is_empty() {
        None
    } else {
        crate::configure::image_profile(image, args.board.as_deref())?
    };
    let bmap = load_bmap(&args)?;
    let src = imagefile::open(image)?;
    let image_size = match (&bmap, src.size) {
        (Some((p, b)), Some(n)) if b.image_size != n => {
            return Err(usage(format!(
                "bmap {} is for an image of {} bytes, but {} holds {n}; pass the right --bmap or --no-bmap",
                p.display(),
                b.image_size,
                image.display()
            )))
        }
        (Some((_, b)), _) => Some(b.image_size),
        (None, n) => n,
    };
    let Some(device) = &args.device else {
        return Ok(list_candidates());
    };
    let target = blockdev::inspect(device)?;
    match &target {
        Target::Block(d) => {
            if let Some(why) = blockdev::refusal(d, image_size, args.force_non_removable) {
                return Err(usage(why));
            }
        }
        Target::File(p) => {
            if let (Ok(a), Ok(b)) = (std::fs::metadata(p), std::fs::metadata(image)) {
                if a.dev() == b.dev() && a.ino() == b.ino() {
                    return Err(usage(format!(
                        "{} is the image itself; give another target",
                        p.display()
                    )));
                }
            }
        }
    }
    let needs_confirm = match &target {
        Target::Block(_) => true,
        Target::File(p) => std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false),
    };
    if needs_confirm && !args.yes {
        confirm(&target, image)?;
    }

    let input = if src.format == Format::Raw && bmap.is_some() {
        Input::Raw(File::open(image).with_context(|| format!("opening {}", image.display()))?)
    } else {
        Input::Stream(src.reader)
    };
    let w = write_image(
        input,
        bmap.as_ref().map(|(_, b)| b),
        &target,
        image,
        image_size,
        !args.no_verify,
    )?;
    if let Target::Block(d) = &target {
        // Let the kernel see the new partition table (best effort; the data is written either way).
        if let Err(e) = artifact::cmd::run(
            std::process::Command::new("blockdev")
                .arg("--rereadpt")
                .arg(&d.path),
        ) {
            // EINVAL: a device without partition support (a loop device without -P).
            if e.stderr_tail().contains("Invalid argument") {
                tracing::debug!("the kernel does not re-read partitions of this device: {e}");
            } else {
                tracing::warn!("could not make the kernel re-read the partition table: {e}");
            }
        }
    }

    let mut configured = Vec::new();
    if !plan.is_empty() {
        let a = crate::configure::apply_to(
            path_of(&target),
            profile.as_ref(),
            &plan.changes_for(None)?,
            &plan.files,
        )?;
        File::open(path_of(&target))
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", path_of(&target).display()))?;
        configured.extend(a.written.iter().map(|s| s.to_string()));
        configured.extend(a.copied);
    }

    let summary = Summary {
        image: image.display().to_string(),
        device: path_of(&target).display().to_string(),
        bmap: bmap.as_ref().map(|(p, _)| p.display().to_string()),
        image_size: w.image_bytes,
        mapped_bytes: bmap
            .as_ref()
            .map(|(_, b)| mapped_bytes(b))
            .unwrap_or(w.image_bytes),
        bytes_written: w.bytes_written,
        write_seconds: w.write_seconds,
        verified_bytes: w.verified,
        verify_seconds: w.verify_tail_seconds,
        configured,
    };
    print_summary(&summary, args.json);
    Ok(ExitCode::SUCCESS)
}

fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

fn print_summary(s: &Summary, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        );
        return;
    }
    let how = match &s.bmap {
        Some(b) => format!(
            "{} mapped of {} (bmap {b})",
            human(s.mapped_bytes),
            human(s.image_size)
        ),
        None => format!("whole image, {}", human(s.image_size)),
    };
    println!(
        "wrote {} to {} in {:.1} s ({}; {}, image rate {})",
        human(s.bytes_written),
        s.device,
        s.write_seconds,
        how,
        rate(s.bytes_written, s.write_seconds),
        rate(s.image_size, s.write_seconds)
    );
    if s.verified_bytes > 0 {
        println!(
            "verified {} read back from the target, done {:.1} s after the write: sha256 matches",
            human(s.verified_bytes),
            s.verify_seconds,
        );
    } else {
        println!("not verified (--no-verify)");
    }
    if !s.configured.is_empty() {
        println!("configured: {}", s.configured.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers() {
        for _ in 0..4 {
            let mut b = AlignedBuf::new();
            assert_eq!(b.buf().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.buf().len(), CHUNK);
        }
    }

    #[test]
    fn clipped_ranges() {
        let b = Bmap {
            image_size: 10 * 4096 + 100,
            block_size: 4096,
            ranges: vec![
                image_assembler::bmap::Range {
                    first: 0,
                    last: 1,
                    sha256: "a".repeat(64),
                },
                image_assembler::bmap::Range {
                    first: 10,
                    last: 10,
                    sha256: "b".repeat(64),
                },
            ],
        };
        assert_eq!(byte_range(&b, 10, 10), (40960, 100));
        assert_eq!(mapped_bytes(&b), 8192 + 100);
    }

    fn sample(d: &Path) -> (PathBuf, Vec<u8>) {
        let img = d.join("a.img");
        let mut data = vec![0u8; 9 << 20];
        for (i, x) in data.iter_mut().enumerate().skip(3 << 20).take(5 << 20) {
            *x = (i % 253) as u8 | 1;
        }
        data[100] = 1;
        std::fs::write(&img, &data).unwrap();
        (img, data)
    }

    /// Writing to a file: whole image (sparse) and bmap ranges, verified; a damaged image is
    /// caught by the bmap check.
    #[test]
    fn write_and_verify_to_files() {
        let d = tempfile::tempdir().unwrap();
        let (img, data) = sample(d.path());
        let scan = image_assembler::bundle::scan(&img, None, 1).unwrap();
        let mapped = mapped_bytes(&scan.bmap);
        for (bm, want_written, want_verified) in [
            (None, 4096 + (5 << 20), data.len() as u64),
            (Some(&scan.bmap), mapped, mapped),
        ] {
            let out = d.path().join("out.img");
            let target = Target::File(out.clone());
            let input = match &bm {
                Some(_) => Input::Raw(File::open(&img).unwrap()),
                None => Input::Stream(Box::new(File::open(&img).unwrap())),
            };
            let w = write_image(input, bm, &target, &img, Some(data.len() as u64), true).unwrap();
            assert!(std::fs::read(&out).unwrap() == data);
            assert_eq!(w.bytes_written, want_written);
            assert_eq!(w.verified, want_verified);
            assert_eq!(w.image_bytes, data.len() as u64);
        }
        // The image changed after its bmap was made: refused by range.
        let mut bad = data.clone();
        bad[(3 << 20) + 5] ^= 0xff;
        std::fs::write(&img, &bad).unwrap();
        let e = write_image(
            Input::Raw(File::open(&img).unwrap()),
            Some(&scan.bmap),
            &Target::File(d.path().join("o2.img")),
            &img,
            Some(data.len() as u64),
            true,
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("do not match the bmap"), "{msg}");
        assert!(msg.contains("not (completely) written"), "{msg}");
    }

    /// The verifier reads back from the target and catches bytes that differ from the image.
    #[test]
    fn verifier_catches_a_bad_read_back() {
        let d = tempfile::tempdir().unwrap();
        let (img, data) = sample(d.path());
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(Notice::Written {
            offset: 0,
            len: data.len() as u64,
            span: 0,
        })
        .unwrap();
        let mut wrong = data.clone();
        wrong[(4 << 20) + 7] ^= 1;
        tx.send(Notice::End {
            span: 0,
            sha256: hex::encode(Sha256::digest(&wrong)),
        })
        .unwrap();
        drop(tx);
        let e = verifier(&img, rx, true).unwrap_err().to_string();
        assert!(
            e.contains("verification failed") && e.contains("bytes 0..9437184"),
            "{e}"
        );
        // And the right digest passes.
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(Notice::Written {
            offset: 0,
            len: data.len() as u64,
            span: 0,
        })
        .unwrap();
        tx.send(Notice::End {
            span: 0,
            sha256: hex::encode(Sha256::digest(&data)),
        })
        .unwrap();
        drop(tx);
        assert_eq!(verifier(&img, rx, true).unwrap(), data.len() as u64);
        // An unaligned tail goes the buffered way; the span's hash covers both paths in order.
        let mut odd = data.clone();
        odd.extend_from_slice(&[7u8; 100]);
        std::fs::write(&img, &odd).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for (offset, len) in [(0u64, 1u64 << 20), (1 << 20, odd.len() as u64 - (1 << 20))] {
            tx.send(Notice::Written {
                offset,
                len,
                span: 3,
            })
            .unwrap();
        }
        tx.send(Notice::End {
            span: 3,
            sha256: hex::encode(Sha256::digest(&odd)),
        })
        .unwrap();
        drop(tx);
        assert_eq!(verifier(&img, rx, true).unwrap(), odd.len() as u64);
    }
}

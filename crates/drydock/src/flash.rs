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
}

/// A span of the image and the sha256 of its bytes, as read from the image.
#[derive(Debug, Clone)]
struct Span {
    offset: u64,
    len: u64,
    sha256: String,
}

/// What the reader saw.
#[derive(Debug)]
struct ReadOutcome {
    spans: Vec<Span>,
    /// Bytes of raw image streamed (the image size when no bmap told it).
    image_bytes: u64,
}

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

/// The reader thread: sends chunks of the ranges to write, hashes each range and checks it
/// against the bmap.
fn reader(
    input: Input,
    bmap: Option<Bmap>,
    tx: SyncSender<Chunk>,
    free: Receiver<AlignedBuf>,
    image: PathBuf,
) -> Result<ReadOutcome> {
    let next_buf = || free.recv().map_err(|_| anyhow!("the writer stopped"));
    let send =
        |tx: &SyncSender<Chunk>, c: Chunk| tx.send(c).map_err(|_| anyhow!("the writer stopped"));
    let mut spans = Vec::new();
    match (input, bmap) {
        (input, Some(b)) => {
            let mut stream_pos = 0u64;
            let mut input = input;
            let mut scratch = vec![0u8; CHUNK];
            for r in &b.ranges {
                let (start, len) = byte_range(&b, r.first, r.last);
                if let Input::Stream(s) = &mut input {
                    // Skip the unmapped bytes before the range.
                    let mut skip = start - stream_pos;
                    while skip > 0 {
                        let n = skip.min(CHUNK as u64) as usize;
                        let got = read_full(s.as_mut(), &mut scratch[..n])
                            .with_context(|| format!("reading {}", image.display()))?;
                        if got < n {
                            bail!(
                                "{} ends at byte {} but its bmap maps blocks up to byte {}",
                                image.display(),
                                start - skip + got as u64,
                                start + len
                            );
                        }
                        skip -= n as u64;
                    }
                }
                let mut h = Sha256::new();
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    let mut buf = next_buf()?;
                    let off = start + done;
                    let got = match &mut input {
                        Input::Raw(f) => f
                            .read_exact_at(&mut buf.buf()[..n], off)
                            .map(|_| n)
                            .with_context(|| {
                                format!("reading {} at byte {off}", image.display())
                            })?,
                        Input::Stream(s) => read_full(s.as_mut(), &mut buf.buf()[..n])
                            .with_context(|| format!("reading {}", image.display()))?,
                    };
                    if got < n {
                        bail!(
                            "{} ends at byte {} but its bmap maps blocks up to byte {}",
                            image.display(),
                            off + got as u64,
                            start + len
                        );
                    }
                    h.update(buf.data(n));
                    send(
                        &tx,
                        Chunk {
                            offset: off,
                            len: n,
                            buf,
                        },
                    )?;
                    done += n as u64;
                }
                stream_pos = start + len;
                let got = hex::encode(h.finalize());
                if got != r.sha256 {
                    bail!(
                        "{}: blocks {}-{} do not match the bmap's sha256 (image {got}, bmap {}); the image or its bmap is damaged, or the image was changed after the bmap was made",
                        image.display(),
                        r.first,
                        r.last,
                        r.sha256
                    );
                }
                spans.push(Span {
                    offset: start,
                    len,
                    sha256: got,
                });
            }
            Ok(ReadOutcome {
                spans,
                image_bytes: b.image_size,
            })
        }
        (input, None) => {
            let mut s: Box<dyn Read + Send> = match input {
                Input::Raw(f) => Box::new(f),
                Input::Stream(s) => s,
            };
            let mut h = Sha256::new();
            let mut pos = 0u64;
            loop {
                let mut buf = next_buf()?;
                let n = read_full(s.as_mut(), buf.buf())
                    .with_context(|| format!("reading {}", image.display()))?;
                if n == 0 {
                    break;
                }
                h.update(buf.data(n));
                send(
                    &tx,
                    Chunk {
                        offset: pos,
                        len: n,
                        buf,
                    },
                )?;
                pos += n as u64;
                if n < CHUNK {
                    break;
                }
            }
            spans.push(Span {
                offset: 0,
                len: pos,
                sha256: hex::encode(h.finalize()),
            });
            Ok(ReadOutcome {
                spans,
                image_bytes: pos,
            })
        }
    }
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
    pub write_seconds: f64,
    pub verified_bytes: u64,
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

/// Write `input` to the target. Returns (bytes written, what was read).
fn write_image(
    input: Input,
    bmap: Option<Bmap>,
    target: &Target,
    image: &Path,
    image_size: Option<u64>,
) -> Result<(u64, ReadOutcome)> {
    let to_write = match &bmap {
        Some(b) => mapped_bytes(b),
        None => image_size.unwrap_or(0),
    };
    let sparse_file = bmap.is_none();
    let mut sink = Sink::open(target, image_size, sparse_file)?;
    let (tx, rx) = sync_channel::<Chunk>(3);
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(5);
    for _ in 0..5 {
        let _ = free_tx.send(AlignedBuf::new());
    }
    let image_owned = image.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("flash-reader".into())
        .spawn(move || reader(input, bmap, tx, free_rx, image_owned))
        .context("starting the reader thread")?;
    let pb = bar(to_write, "writing");
    let mut written = 0u64;
    let mut write_err = None;
    for chunk in rx.iter() {
        match sink.write(chunk.offset, chunk.buf.data(chunk.len)) {
            Ok(n) => written += n,
            Err(e) => {
                write_err = Some(e.context(format!(
                    "writing {} at byte {}",
                    path_of(target).display(),
                    chunk.offset
                )));
                break;
            }
        }
        pb.inc(chunk.len as u64);
        let _ = free_tx.send(chunk.buf);
    }
    drop(rx);
    drop(free_tx);
    let outcome = handle
        .join()
        .map_err(|_| anyhow!("the reader thread panicked"))?;
    pb.finish_and_clear();
    if let Some(e) = write_err {
        return Err(e);
    }
    let outcome = outcome.map_err(|e| {
        e.context(format!(
            "{} is only partly written",
            path_of(target).display()
        ))
    })?;
    sink.finish(outcome.image_bytes)
        .with_context(|| format!("syncing {}", path_of(target).display()))?;
    Ok((written, outcome))
}

/// Read the spans back from the target (page cache dropped first) and compare their sha256.
fn verify(target: &Target, spans: &[Span]) -> Result<u64> {
    let path = path_of(target);
    let f = File::open(path).with_context(|| format!("opening {} to verify", path.display()))?;
    use std::os::fd::AsRawFd;
    let _ = nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    let total: u64 = spans.iter().map(|s| s.len).sum();
    let pb = bar(total, "verifying");
    let mut buf = vec![0u8; CHUNK];
    for s in spans {
        let mut h = Sha256::new();
        let mut done = 0u64;
        while done < s.len {
            let n = (s.len - done).min(CHUNK as u64) as usize;
            f.read_exact_at(&mut buf[..n], s.offset + done)
                .with_context(|| {
                    format!(
                        "reading {} back at byte {}",
                        path.display(),
                        s.offset + done
                    )
                })?;
            h.update(&buf[..n]);
            done += n as u64;
            pb.inc(n as u64);
        }
        let got = hex::encode(h.finalize());
        if got != s.sha256 {
            pb.finish_and_clear();
            bail!(
                "verification failed: bytes {}..{} of {} read back with sha256 {got}, but the image has {}; the card may be faulty, counterfeit or worn out",
                s.offset,
                s.offset + s.len,
                path.display(),
                s.sha256
            );
        }
    }
    pb.finish_and_clear();
    Ok(total)
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
    let t0 = Instant::now();
    let (written, outcome) = write_image(
        input,
        bmap.as_ref().map(|(_, b)| b.clone()),
        &target,
        image,
        image_size,
    )?;
    let write_seconds = t0.elapsed().as_secs_f64();
    if let Target::Block(d) = &target {
        // Let the kernel see the new partition table (best effort; the data is written either way).
        if let Err(e) = artifact::cmd::run(
            std::process::Command::new("blockdev")
                .arg("--rereadpt")
                .arg(&d.path),
        ) {
            tracing::warn!("could not make the kernel re-read the partition table: {e}");
        }
    }
    let t1 = Instant::now();
    let verified = if args.no_verify {
        0
    } else {
        verify(&target, &outcome.spans)?
    };
    let verify_seconds = t1.elapsed().as_secs_f64();

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
        image_size: outcome.image_bytes,
        mapped_bytes: bmap
            .as_ref()
            .map(|(_, b)| mapped_bytes(b))
            .unwrap_or(outcome.image_bytes),
        bytes_written: written,
        write_seconds,
        verified_bytes: verified,
        verify_seconds,
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
            "verified {} in {:.1} s ({}): sha256 matches",
            human(s.verified_bytes),
            s.verify_seconds,
            rate(s.verified_bytes, s.verify_seconds)
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

    /// Writing to a file: whole image (sparse) and bmap ranges; a damaged image is caught.
    #[test]
    fn write_and_verify_to_files() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("a.img");
        let mut data = vec![0u8; 9 << 20];
        for (i, x) in data.iter_mut().enumerate().skip(3 << 20).take(5 << 20) {
            *x = (i % 253) as u8 | 1;
        }
        data[100] = 1;
        std::fs::write(&img, &data).unwrap();
        // A bmap of exactly the non-zero data.
        let f = File::open(&img).unwrap();
        let ranges = image_assembler::bmap::data_ranges(&f, 4096).unwrap();
        assert!(!ranges.is_empty());
        let scan = image_assembler::bundle::scan(&img, None, 1).unwrap();
        for (bm, want_written) in [
            (None, 4096 + (5 << 20)),
            (Some(scan.bmap.clone()), mapped_bytes(&scan.bmap)),
        ] {
            let out = d.path().join("out.img");
            let target = Target::File(out.clone());
            let input = match &bm {
                Some(_) => Input::Raw(File::open(&img).unwrap()),
                None => Input::Stream(Box::new(File::open(&img).unwrap())),
            };
            let (written, outcome) =
                write_image(input, bm.clone(), &target, &img, Some(data.len() as u64)).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), data);
            if bm.is_none() {
                // Sparse: only the non-zero 4 KiB blocks are written.
                assert_eq!(written, want_written as u64);
            } else {
                assert_eq!(written, want_written);
            }
            assert_eq!(
                verify(&target, &outcome.spans).unwrap(),
                outcome.spans.iter().map(|s| s.len).sum::<u64>()
            );
            // Corrupt the copy: verification names the bytes.
            let f = OpenOptions::new().write(true).open(&out).unwrap();
            f.write_all_at(b"X", 3 << 20).unwrap();
            let e = verify(&target, &outcome.spans).unwrap_err().to_string();
            assert!(e.contains("verification failed"), "{e}");
        }
        // The image changed after its bmap was made: refused by range.
        let mut bad = data.clone();
        bad[(3 << 20) + 5] ^= 0xff;
        std::fs::write(&img, &bad).unwrap();
        let e = write_image(
            Input::Raw(File::open(&img).unwrap()),
            Some(scan.bmap),
            &Target::File(d.path().join("o2.img")),
            &img,
            Some(data.len() as u64),
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("do not match the bmap"), "{msg}");
        assert!(msg.contains("only partly written"), "{msg}");
    }
}

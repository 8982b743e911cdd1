//! Image files as drydock's bundles ship them: `.img` (sparse raw), `.img.zst`, `.img.xz`, `.zip`.
//! Opening one gives a stream of the raw image bytes and, where the container records it, the raw
//! size; [`decompress_sparse`] serves `drydock configure` on a `.img.zst` (the compressed copy is
//! written back by `image_assembler::bundle::scan`, with the new block map, in one pass).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The container format of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Zstd,
    Xz,
    Zip,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Zstd => "zstd",
            Format::Xz => "xz",
            Format::Zip => "zip",
        }
    }
}

/// The format of a file, by its first bytes (the extension is not trusted).
pub fn detect(path: &Path) -> Result<Format> {
    let mut f = File::open(path).with_context(|| format!("opening image {}", path.display()))?;
    let mut magic = [0u8; 6];
    let n = read_full(&mut f, &mut magic)
        .with_context(|| format!("reading image {}", path.display()))?;
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Format::Zstd
    } else if m.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        Format::Xz
    } else if m.starts_with(b"PK\x03\x04") {
        Format::Zip
    } else {
        Format::Raw
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

/// An image opened for streaming.
pub struct Source {
    pub format: Format,
    /// The raw image bytes, from the start.
    pub reader: Box<dyn Read + Send>,
    /// The raw size, when the container records it.
    pub size: Option<u64>,
    /// For a zip: the name of the image inside.
    pub inner_name: Option<String>,
}

/// Open an image for streaming its raw bytes.
pub fn open(path: &Path) -> Result<Source> {
    let format = detect(path)?;
    let file = File::open(path).with_context(|| format!("opening image {}", path.display()))?;
    const BUF: usize = 4 << 20;
    Ok(match format {
        Format::Raw => {
            let size = file
                .metadata()
                .with_context(|| format!("stat {}", path.display()))?
                .len();
            Source {
                format,
                reader: Box::new(file),
                size: Some(size),
                inner_name: None,
            }
        }
        Format::Zstd => {
            let mut f = file;
            let size = zstd_content_size(&mut f).ok().flatten();
            f.seek(SeekFrom::Start(0))
                .with_context(|| format!("seeking in {}", path.display()))?;
            let mut dec =
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUF, f))
                    .with_context(|| {
                        format!("starting zstd decompression of {}", path.display())
                    })?;
            // Images are written with long windows (zstd --long): allow up to 2 GiB.
            dec.window_log_max(31)
                .with_context(|| format!("configuring zstd for {}", path.display()))?;
            Source {
                format,
                reader: Box::new(dec),
                size,
                inner_name: None,
            }
        }
        Format::Xz => {
            let mut f = file;
            let size = xz_uncompressed_size(&mut f).ok().flatten();
            f.seek(SeekFrom::Start(0))
                .with_context(|| format!("seeking in {}", path.display()))?;
            Source {
                format,
                reader: Box::new(xz2::read::XzDecoder::new_multi_decoder(
                    BufReader::with_capacity(BUF, f),
                )),
                size,
                inner_name: None,
            }
        }
        Format::Zip => open_zip(path, file)?,
    })
}

/// The image inside a zip: the one `*.img` file, or the only file.
fn open_zip(path: &Path, file: File) -> Result<Source> {
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("reading the zip archive {}", path.display()))?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let e = archive
            .by_index_raw(i)
            .with_context(|| format!("reading entry {i} of {}", path.display()))?;
        if e.is_file() {
            files.push((i, e.name().to_string()));
        }
    }
    let imgs: Vec<&(usize, String)> = files.iter().filter(|(_, n)| n.ends_with(".img")).collect();
    let (index, name) = match (imgs.as_slice(), files.as_slice()) {
        ([one], _) => (*one).clone(),
        ([], [only]) => only.clone(),
        _ => bail!(
            "{}: expected one .img file inside the zip, found: {}",
            path.display(),
            files
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let (start, csize, usize_, method, encrypted) = {
        let e = archive
            .by_index_raw(index)
            .with_context(|| format!("reading {name} in {}", path.display()))?;
        (
            e.data_start(),
            e.compressed_size(),
            e.size(),
            e.compression(),
            e.encrypted(),
        )
    };
    if encrypted {
        bail!("{}: {name} is encrypted", path.display());
    }
    let mut f = archive.into_inner();
    f.seek(SeekFrom::Start(start))
        .with_context(|| format!("seeking to {name} in {}", path.display()))?;
    let raw = BufReader::with_capacity(4 << 20, f.take(csize));
    let reader: Box<dyn Read + Send> = match method {
        zip::CompressionMethod::Stored => Box::new(raw),
        zip::CompressionMethod::Deflated => Box::new(flate2::bufread::DeflateDecoder::new(raw)),
        other => bail!(
            "{}: {name} is compressed with {other:?}; drydock reads stored and deflated zip entries",
            path.display()
        ),
    };
    Ok(Source {
        format: Format::Zip,
        reader,
        size: Some(usize_),
        inner_name: Some(name),
    })
}

/// The decompressed size of a zstd file: the sum of each frame's content size, walking frame and
/// block headers without decompressing. None when a frame does not record its size.
pub fn zstd_content_size(f: &mut File) -> std::io::Result<Option<u64>> {
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    let mut total = 0u64;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    while pos < len {
        f.seek(SeekFrom::Start(pos))?;
        let mut hdr = [0u8; 18];
        let n = read_full(f, &mut hdr)?;
        if n < 8 {
            return Err(bad("truncated zstd frame"));
        }
        let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let skip = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as u64;
            pos += 8 + skip;
            continue;
        }
        if magic != 0xFD2F_B528 {
            return Err(bad("not a zstd frame"));
        }
        let fhd = hdr[4];
        let fcs_flag = fhd >> 6;
        let single = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dict_len = [0usize, 1, 2, 4][(fhd & 3) as usize];
        let mut o = 5 + usize::from(!single) + dict_len;
        let fcs_len = match fcs_flag {
            0 => usize::from(single),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        if o + fcs_len > n {
            return Err(bad("truncated zstd frame header"));
        }
        let mut v = 0u64;
        for i in 0..fcs_len {
            v |= (hdr[o + i] as u64) << (8 * i);
        }
        if fcs_len == 0 {
            return Ok(None);
        }
        if fcs_len == 2 {
            v += 256;
        }
        total += v;
        o += fcs_len;
        pos += o as u64;
        // Blocks.
        loop {
            f.seek(SeekFrom::Start(pos))?;
            let mut b = [0u8; 3];
            if read_full(f, &mut b)? < 3 {
                return Err(bad("truncated zstd block"));
            }
            let h = u32::from_le_bytes([b[0], b[1], b[2], 0]);
            let last = h & 1 != 0;
            let btype = (h >> 1) & 3;
            let size = (h >> 3) as u64;
            pos += 3 + match btype {
                1 => 1,
                3 => return Err(bad("reserved zstd block type")),
                _ => size,
            };
            if last {
                break;
            }
        }
        if checksum {
            pos += 4;
        }
    }
    Ok(Some(total))
}

fn read_vli(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7F) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The uncompressed size of an xz file, from the index of each stream (read backwards from the
/// end, as `xz --list` does). None when the file does not parse as expected.
pub fn xz_uncompressed_size(f: &mut File) -> std::io::Result<Option<u64>> {
    let mut end = f.metadata()?.len();
    let mut total = 0u64;
    while end > 0 {
        // Stream padding: zero bytes in multiples of four.
        let mut four = [0u8; 4];
        f.seek(SeekFrom::Start(end - 4))?;
        f.read_exact(&mut four)?;
        if four == [0; 4] {
            end -= 4;
            continue;
        }
        if end < 24 {
            return Ok(None);
        }
        let mut footer = [0u8; 12];
        f.seek(SeekFrom::Start(end - 12))?;
        f.read_exact(&mut footer)?;
        if &footer[10..12] != b"YZ" {
            return Ok(None);
        }
        let backward =
            (u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]) as u64 + 1) * 4;
        let index_start = match (end - 12).checked_sub(backward) {
            Some(s) => s,
            None => return Ok(None),
        };
        let mut index = vec![0u8; backward as usize];
        f.seek(SeekFrom::Start(index_start))?;
        f.read_exact(&mut index)?;
        if index.first() != Some(&0) {
            return Ok(None);
        }
        let mut p = 1usize;
        let Some(records) = read_vli(&index, &mut p) else {
            return Ok(None);
        };
        let mut blocks_size = 0u64;
        for _ in 0..records {
            let (Some(unpadded), Some(uncompressed)) =
                (read_vli(&index, &mut p), read_vli(&index, &mut p))
            else {
                return Ok(None);
            };
            blocks_size += unpadded.div_ceil(4) * 4;
            total += uncompressed;
        }
        let stream_size = 12 + blocks_size + backward + 12;
        end = match end.checked_sub(stream_size) {
            Some(e) => e,
            None => return Ok(None),
        };
    }
    Ok(Some(total))
}

/// Copy a stream into a new file, leaving all-zero 4 KiB blocks as holes; returns the size.
pub fn decompress_sparse(mut src: impl Read, dest: &Path) -> Result<u64> {
    let mut out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut src, &mut buf).context("decompressing the image")?;
        if n == 0 {
            break;
        }
        write_sparse(&mut out, &buf[..n], total)
            .with_context(|| format!("writing {}", dest.display()))?;
        total += n as u64;
        if n < buf.len() {
            break;
        }
    }
    out.set_len(total)
        .with_context(|| format!("sizing {}", dest.display()))?;
    out.sync_all()
        .with_context(|| format!("syncing {}", dest.display()))?;
    Ok(total)
}

/// Write `data` at `offset`, skipping all-zero 4 KiB blocks (the file must read zero there).
pub fn write_sparse(out: &mut File, data: &[u8], offset: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    const BS: usize = 4096;
    let mut written = 0u64;
    let mut i = 0;
    while i < data.len() {
        let end = (i + BS).min(data.len());
        if data[i..end].iter().all(|&b| b == 0) {
            i = end;
            continue;
        }
        // Extend the run over following non-zero blocks.
        let mut j = end;
        while j < data.len() {
            let e = (j + BS).min(data.len());
            if data[j..e].iter().all(|&b| b == 0) {
                break;
            }
            j = e;
        }
        out.write_all_at(&data[i..j], offset + i as u64)?;
        written += (j - i) as u64;
        i = j;
    }
    Ok(written)
}

/// Where a `.bmap` for an image is looked for, as bmaptool does: `IMAGE.bmap`, then with each
/// extension stripped in turn (`x.img.zst` → `x.img.zst.bmap`, `x.img.bmap`, `x.bmap`).
pub fn bmap_candidates(image: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let name = match image.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => return out,
    };
    let mut stem = name.as_str();
    loop {
        out.push(image.with_file_name(format!("{stem}.bmap")));
        match stem.rfind('.') {
            Some(i) if i > 0 => stem = &stem[..i],
            _ => break,
        }
    }
    out
}

/// The bmap beside an image, if any.
pub fn find_bmap(image: &Path) -> Option<std::path::PathBuf> {
    bmap_candidates(image).into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
        let mut data = vec![0u8; 3 << 20];
        for (i, b) in data.iter_mut().enumerate().skip(1 << 20).take(100_000) {
            *b = (i % 251) as u8;
        }
        data[5] = 7;
        let p = dir.join("a.img");
        std::fs::write(&p, &data).unwrap();
        (p, data)
    }

    fn zstd_file(raw: &Path, zst: &Path) {
        use image_assembler::bundle::{scan, Compression};
        scan(raw, Some((Compression::Zstd, zst)), 2).unwrap();
    }

    #[test]
    fn bmap_names() {
        let names: Vec<String> = bmap_candidates(Path::new("/d/x.img.zst"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["x.img.zst.bmap", "x.img.bmap", "x.bmap"]);
    }

    fn read_all(path: &Path) -> (Source, Vec<u8>) {
        let mut s = open(path).unwrap();
        let mut v = Vec::new();
        s.reader.read_to_end(&mut v).unwrap();
        (s, v)
    }

    #[test]
    fn formats_round_trip_with_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let (raw, data) = sample(dir.path());
        // zstd (ours, single frame) and the zstd CLI's multi-frame output.
        let zst = dir.path().join("a.img.zst");
        zstd_file(&raw, &zst);
        let (s, v) = read_all(&zst);
        assert_eq!((s.format, s.size), (Format::Zstd, Some(data.len() as u64)));
        assert!(v == data);
        // Two concatenated frames.
        let two = dir.path().join("two.zst");
        let mut both = std::fs::read(&zst).unwrap();
        both.extend(std::fs::read(&zst).unwrap());
        std::fs::write(&two, &both).unwrap();
        assert_eq!(open(&two).unwrap().size, Some(2 * data.len() as u64));
        // xz through the xz tool (multi-stream: two streams concatenated).
        let xz = dir.path().join("a.img.xz");
        let out = std::process::Command::new("xz")
            .args(["-T2", "-k", "-c"])
            .arg(&raw)
            .output()
            .unwrap();
        let mut xzdata = out.stdout.clone();
        xzdata.extend(&out.stdout);
        std::fs::write(&xz, &xzdata).unwrap();
        let (s, v) = read_all(&xz);
        assert_eq!(
            (s.format, s.size),
            (Format::Xz, Some(2 * data.len() as u64))
        );
        assert_eq!(v.len(), 2 * data.len());
        // zip, deflated, with a README beside the image.
        let zip = dir.path().join("a.zip");
        std::fs::write(dir.path().join("README"), "hi").unwrap();
        let st = std::process::Command::new("zip")
            .current_dir(dir.path())
            .args(["-q", "a.zip", "a.img", "README"])
            .status()
            .unwrap();
        assert!(st.success());
        let (s, v) = read_all(&zip);
        assert_eq!((s.format, s.size), (Format::Zip, Some(data.len() as u64)));
        assert_eq!(s.inner_name.as_deref(), Some("a.img"));
        assert!(v == data);
        // raw
        let (s, v) = read_all(&raw);
        assert_eq!((s.format, s.size), (Format::Raw, Some(data.len() as u64)));
        assert!(v == data);
    }

    #[test]
    fn sparse_decompression_keeps_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (raw, data) = sample(dir.path());
        let zst = dir.path().join("a.img.zst");
        zstd_file(&raw, &zst);
        let out = dir.path().join("b.img");
        let n = decompress_sparse(open(&zst).unwrap().reader, &out).unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(std::fs::read(&out).unwrap() == data);
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(allocated < 1 << 20, "allocated {allocated}");
    }
}

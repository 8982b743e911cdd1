//! Block maps in bmaptool's format 2.0: which blocks of a sparse image hold data, with a sha256 per
//! range, so `bmaptool copy` (and `drydock flash`) write only those blocks and verify them.
//!
//! The format code ([`render`], [`parse`]) is pure; [`data_ranges`] is the OS edge that asks the
//! file system where the data is (`SEEK_DATA`/`SEEK_HOLE`).

use std::fmt::Write as _;
use std::os::fd::AsRawFd;

use sha2::{Digest, Sha256};

/// Block size of the maps we write (bmaptool's default).
pub const BLOCK_SIZE: u64 = 4096;

/// Errors of the bmap format.
#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    #[error("bmap: {0}")]
    Invalid(String),
    #[error("bmap: BmapFileChecksum is {found} but the file hashes to {computed}")]
    FileChecksum { found: String, computed: String },
}

/// One mapped range: blocks `first..=last` and the sha256 of their bytes (the last block cut at
/// the image size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub last: u64,
    pub sha256: String,
}

/// A parsed or to-be-written block map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    pub image_size: u64,
    pub block_size: u64,
    pub ranges: Vec<Range>,
}

impl Bmap {
    /// Number of blocks of the image (the last one may be partial).
    pub fn blocks(&self) -> u64 {
        self.image_size.div_ceil(self.block_size)
    }

    /// Number of mapped blocks.
    pub fn mapped_blocks(&self) -> u64 {
        self.ranges.iter().map(|r| r.last - r.first + 1).sum()
    }
}

fn human(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Render a bmap file (format 2.0, sha256), including its own `BmapFileChecksum`: the sha256 of the
/// file with that field's value written as 64 ASCII zeros, as bmaptool computes it.
pub fn render(map: &Bmap) -> Result<String, BmapError> {
    let blocks = map.blocks();
    let mut prev_last: Option<u64> = None;
    for r in &map.ranges {
        if r.first > r.last || r.last >= blocks || prev_last.is_some_and(|p| r.first <= p) {
            return Err(BmapError::Invalid(format!(
                "range {}-{} is empty, overlaps or lies beyond block {}",
                r.first,
                r.last,
                blocks.saturating_sub(1)
            )));
        }
        if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BmapError::Invalid(format!(
                "range {}-{}: {:?} is not a sha256",
                r.first, r.last, r.sha256
            )));
        }
        prev_last = Some(r.last);
    }
    let mapped = map.mapped_blocks();
    let pct = if blocks == 0 {
        0.0
    } else {
        mapped as f64 * 100.0 / blocks as f64
    };
    let zeros = "0".repeat(64);
    let mut x = String::new();
    let _ = write!(
        x,
        "<?xml version=\"1.0\" ?>\n\
         <!-- This file contains the block map for an image file, which is basically\n     \
         a list of useful (mapped) block numbers in the image file. In other words,\n     \
         it lists only those blocks which contain data (boot sector, partition\n     \
         table, file-system metadata, files, directories, extents, etc). These\n     \
         blocks have to be copied to the target device. The other blocks do not\n     \
         contain any useful data and do not have to be copied to the target\n     \
         device.\n\n     \
         Written by drydock (image-assembler); read by bmaptool and drydock flash. -->\n\
         <bmap version=\"2.0\">\n    \
         <!-- Image size in bytes: {} -->\n    \
         <ImageSize> {} </ImageSize>\n\n    \
         <!-- Size of a block in bytes -->\n    \
         <BlockSize> {} </BlockSize>\n\n    \
         <!-- Count of blocks in the image file -->\n    \
         <BlocksCount> {} </BlocksCount>\n\n    \
         <!-- Count of mapped blocks: {} or {:.1}% -->\n    \
         <MappedBlocksCount> {} </MappedBlocksCount>\n\n    \
         <!-- Type of checksum used in this file -->\n    \
         <ChecksumType> sha256 </ChecksumType>\n\n    \
         <!-- The checksum of this bmap file. When it is calculated, the value of\n         \
         the checksum has be zero (all ASCII \"0\" symbols).  -->\n    \
         <BmapFileChecksum> {zeros} </BmapFileChecksum>\n\n    \
         <!-- The block map which consists of elements which may either be a\n         \
         range of blocks or a single block. The 'chksum' attribute\n         \
         (if present) is the checksum of this blocks range. -->\n    \
         <BlockMap>\n",
        human(map.image_size),
        map.image_size,
        map.block_size,
        blocks,
        human(mapped * map.block_size),
        pct,
        mapped
    );
    for r in &map.ranges {
        if r.first == r.last {
            let _ = writeln!(
                x,
                "        <Range chksum=\"{}\"> {} </Range>",
                r.sha256, r.first
            );
        } else {
            let _ = writeln!(
                x,
                "        <Range chksum=\"{}\"> {}-{} </Range>",
                r.sha256, r.first, r.last
            );
        }
    }
    x.push_str("    </BlockMap>\n</bmap>\n");
    let sum = hex::encode(Sha256::digest(x.as_bytes()));
    Ok(x.replacen(
        &format!("<BmapFileChecksum> {zeros} </BmapFileChecksum>"),
        &format!("<BmapFileChecksum> {sum} </BmapFileChecksum>"),
        1,
    ))
}

fn element<'a>(text: &'a str, name: &str) -> Result<&'a str, BmapError> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let s = text
        .find(&open)
        .ok_or_else(|| BmapError::Invalid(format!("no <{name}> element")))?
        + open.len();
    let e = text[s..]
        .find(&close)
        .ok_or_else(|| BmapError::Invalid(format!("<{name}> is not closed")))?;
    Ok(text[s..s + e].trim())
}

fn number(text: &str, name: &str) -> Result<u64, BmapError> {
    let v = element(text, name)?;
    v.parse()
        .map_err(|_| BmapError::Invalid(format!("<{name}> {v:?} is not a number")))
}

/// The text without its `<!-- ... -->` comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        match rest[i..].find("-->") {
            Some(j) => rest = &rest[i + j + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Parse a bmap file written by us or by `bmaptool create` (format 2.x, sha256), checking its
/// `BmapFileChecksum` and that ranges are ordered and inside the image.
pub fn parse(text: &str) -> Result<Bmap, BmapError> {
    let version = text
        .find("<bmap version=\"")
        .map(|i| &text[i + 15..])
        .and_then(|t| t.split('"').next())
        .ok_or_else(|| BmapError::Invalid("no <bmap version=...> element".into()))?;
    if !version.starts_with("2.") {
        return Err(BmapError::Invalid(format!(
            "version {version} is not supported (2.x is)"
        )));
    }
    let ctype = element(text, "ChecksumType")?;
    if ctype != "sha256" {
        return Err(BmapError::Invalid(format!(
            "checksum type {ctype} is not supported (sha256 is)"
        )));
    }
    let found = element(text, "BmapFileChecksum")?.to_string();
    let zeroed = text.replacen(&found, &"0".repeat(found.len()), 1);
    let computed = hex::encode(Sha256::digest(zeroed.as_bytes()));
    if computed != found {
        return Err(BmapError::FileChecksum { found, computed });
    }
    // Elements are looked up outside comments: bmaptool's header comment mentions
    // "<MappedBlocksCount> blocks instead of <BlocksCount> blocks".
    let stripped = strip_comments(text);
    let text = stripped.as_str();
    let image_size = number(text, "ImageSize")?;
    let block_size = number(text, "BlockSize")?;
    if block_size == 0 {
        return Err(BmapError::Invalid("<BlockSize> is 0".into()));
    }
    let blocks = number(text, "BlocksCount")?;
    if blocks != image_size.div_ceil(block_size) {
        return Err(BmapError::Invalid(format!(
            "<BlocksCount> {blocks} does not match ImageSize {image_size} / BlockSize {block_size}"
        )));
    }
    let body = element(text, "BlockMap")?;
    let mut ranges = Vec::new();
    for part in body.split("<Range").skip(1) {
        let (attrs, rest) = part
            .split_once('>')
            .ok_or_else(|| BmapError::Invalid("unterminated <Range>".into()))?;
        let value = rest
            .split_once("</Range>")
            .ok_or_else(|| BmapError::Invalid("<Range> is not closed".into()))?
            .0
            .trim();
        let sha256 = attrs
            .split_once("chksum=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_string())
            .ok_or_else(|| BmapError::Invalid(format!("range {value} has no chksum")))?;
        let (a, b) = value.split_once('-').unwrap_or((value, value));
        let parse = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| BmapError::Invalid(format!("range {value:?} is not N or N-M")))
        };
        ranges.push(Range {
            first: parse(a)?,
            last: parse(b)?,
            sha256,
        });
    }
    let map = Bmap {
        image_size,
        block_size,
        ranges,
    };
    let mapped = number(text, "MappedBlocksCount")?;
    if mapped != map.mapped_blocks() {
        return Err(BmapError::Invalid(format!(
            "<MappedBlocksCount> {mapped} but the ranges map {}",
            map.mapped_blocks()
        )));
    }
    // Reuse render's range checks.
    render(&map)?;
    Ok(map)
}

/// Byte ranges `[start, end)` of a file that hold data, as the file system reports them with
/// `SEEK_DATA`/`SEEK_HOLE`, widened to whole `block`s, clamped to the file size, and merged.
pub fn data_ranges(file: &std::fs::File, block: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let size = file.metadata()?.len();
    let fd = file.as_raw_fd();
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        let start = match lseek(fd, pos as i64, Whence::SeekData) {
            Ok(s) => s as u64,
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(std::io::Error::from(e)),
        };
        let end = match lseek(fd, start as i64, Whence::SeekHole) {
            Ok(e) => e as u64,
            Err(e) => return Err(std::io::Error::from(e)),
        };
        let s = start / block * block;
        let e = end.div_ceil(block).saturating_mul(block).min(size);
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
        pos = end.max(start + 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bmap {
        Bmap {
            image_size: 10 * 4096 + 100,
            block_size: 4096,
            ranges: vec![
                Range {
                    first: 0,
                    last: 1,
                    sha256: "a".repeat(64),
                },
                Range {
                    first: 4,
                    last: 4,
                    sha256: "b".repeat(64),
                },
                Range {
                    first: 9,
                    last: 10,
                    sha256: "c".repeat(64),
                },
            ],
        }
    }

    #[test]
    fn render_parse_roundtrip() {
        let text = render(&sample()).unwrap();
        assert!(text.contains("<BlocksCount> 11 </BlocksCount>"), "{text}");
        assert!(text.contains("<MappedBlocksCount> 5 </MappedBlocksCount>"));
        assert!(text.contains("> 4 </Range>"));
        assert!(text.contains("> 9-10 </Range>"));
        assert_eq!(parse(&text).unwrap(), sample());
    }

    /// What `bmaptool create` (3.6) writes: its header comment names elements in angle brackets.
    #[test]
    fn parses_bmaptool_output() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("a.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(10 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"hello", 5000).unwrap();
        drop(f);
        let out = d.path().join("a.bmap");
        let st = std::process::Command::new("bmaptool")
            .args(["-q", "create"])
            .arg(&img)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("<BlocksCount> blocks"), "{text}");
        let map = parse(&text).unwrap();
        assert_eq!(map.image_size, 10 << 20);
        assert_eq!(map.ranges.len(), 1);
        assert_eq!((map.ranges[0].first, map.ranges[0].last), (1, 1));
    }

    #[test]
    fn tampered_file_fails_checksum() {
        let text = render(&sample()).unwrap().replace("9-10", "8-10");
        assert!(matches!(parse(&text), Err(BmapError::FileChecksum { .. })));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for ranges in [
            vec![(3, 2)],
            vec![(0, 11)],
            vec![(0, 4), (4, 5)],
            vec![(5, 6), (1, 2)],
        ] {
            let mut m = sample();
            m.ranges = ranges
                .into_iter()
                .map(|(first, last)| Range {
                    first,
                    last,
                    sha256: "0".repeat(64),
                })
                .collect();
            assert!(render(&m).is_err(), "{:?}", m.ranges);
        }
        let mut m = sample();
        m.ranges[0].sha256 = "xyz".into();
        assert!(render(&m).is_err());
    }

    #[test]
    fn data_ranges_of_a_sparse_file() {
        use std::io::{Seek, SeekFrom, Write};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sparse");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 5000]).unwrap();
        f.set_len(4 << 20).unwrap();
        f.sync_all().unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let r = data_ranges(&f, 4096).unwrap();
        // The file system may allocate more than we wrote, but never less, and never the tail.
        assert!(r[0].0 == 0 && r[0].1 >= 4096, "{r:?}");
        assert!(
            r.iter()
                .any(|&(s, e)| s <= 1 << 20 && e >= (1 << 20) + 8192),
            "{r:?}"
        );
        assert!(r.last().unwrap().1 < 4 << 20, "{r:?}");
        assert!(r.iter().all(|&(s, e)| s % 4096 == 0 && e % 4096 == 0));
    }
}

//! An `.xz` stream assembled from independently compressed blocks.
//!
//! apt reads only the first stream of a multi-stream `.xz` file, but a single stream may hold many
//! blocks, each compressed on its own (LZMA2 state resets per block). So `Packages.xz` can be
//! built from per-chunk blocks that are cached and reused: after adding one package only its
//! chunk is compressed again. The container follows the .xz file format 1.0.4: stream header,
//! blocks (header with one LZMA2 filter, raw LZMA2 data, padding, CRC32 check), index, footer.

use std::io;

use xz2::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

/// Dictionary size of every block (chunks are far smaller).
const DICT_SIZE: u32 = 1 << 20;
/// Check type 1: CRC32.
const CHECK: u8 = 0x01;

/// One compressed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Block header, compressed data, padding and check.
    pub bytes: Vec<u8>,
    /// Header + compressed data + check (what the index records).
    pub unpadded: u64,
    pub uncompressed: u64,
}

fn crc32(data: &[u8]) -> [u8; 4] {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum().to_le_bytes()
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() & 3 != 0 {
        out.push(0);
    }
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for i in 0..9 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn bad(why: &str) -> io::Error {
    io::Error::other(format!("unexpected xz encoder output: {why}"))
}

/// Compress `data` into one block with xz preset `preset` (0-9).
///
/// liblzma (through xz2) has no public raw encoder here, so the block is cut out of a one-block
/// stream: everything between the 12-byte stream header and the index, whose single record gives
/// the block's unpadded and uncompressed sizes.
pub fn block(data: &[u8], preset: u32) -> io::Result<Block> {
    let mut opts = LzmaOptions::new_preset(preset.min(9)).map_err(io::Error::other)?;
    opts.dict_size(DICT_SIZE);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut enc = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(data.len() / 3 + 1024);
    loop {
        let consumed = enc.total_in() as usize;
        if out.capacity() - out.len() < 4096 {
            out.reserve(64 * 1024);
        }
        if let Status::StreamEnd = enc
            .process_vec(&data[consumed..], &mut out, Action::Finish)
            .map_err(io::Error::other)?
        {
            break;
        }
    }
    if out.len() < 24 || &out[out.len() - 2..] != b"YZ" || out[7] != CHECK {
        return Err(bad("not a CRC32 xz stream"));
    }
    let footer = &out[out.len() - 12..];
    let backward = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]) as usize;
    let index_size = (backward + 1) * 4;
    let index_start = out
        .len()
        .checked_sub(12 + index_size)
        .filter(|&s| s >= 12)
        .ok_or_else(|| bad("index size"))?;
    let index = &out[index_start..out.len() - 12];
    let mut pos = 1;
    if index[0] != 0 || read_varint(index, &mut pos) != Some(1) {
        return Err(bad("expected one block"));
    }
    let unpadded = read_varint(index, &mut pos).ok_or_else(|| bad("index record"))?;
    let uncompressed = read_varint(index, &mut pos).ok_or_else(|| bad("index record"))?;
    if uncompressed != data.len() as u64 || unpadded.div_ceil(4) * 4 != (index_start - 12) as u64 {
        return Err(bad("block sizes"));
    }
    Ok(Block {
        bytes: out[12..index_start].to_vec(),
        unpadded,
        uncompressed,
    })
}

/// Assemble blocks into one `.xz` stream.
pub fn stream<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Vec<u8> {
    let flags = [0x00, CHECK];
    let mut out = vec![0xFD, b'7', b'z', b'X', b'Z', 0x00];
    out.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&flags));
    let mut index = vec![0x00];
    let mut records = Vec::new();
    let mut n = 0u64;
    for b in blocks {
        out.extend_from_slice(&b.bytes);
        varint(b.unpadded, &mut records);
        varint(b.uncompressed, &mut records);
        n += 1;
    }
    varint(n, &mut index);
    index.extend_from_slice(&records);
    pad4(&mut index);
    let crc = crc32(&index);
    index.extend_from_slice(&crc);
    let backward = (index.len() / 4 - 1) as u32;
    out.extend_from_slice(&index);
    let mut tail = backward.to_le_bytes().to_vec();
    tail.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&tail));
    out.extend_from_slice(&tail);
    out.extend_from_slice(b"YZ");
    out
}

/// Serialise a block for a cache file (8-byte unpadded size, 8-byte uncompressed size, bytes).
pub fn to_cache(b: &Block) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.bytes.len() + 16);
    v.extend_from_slice(&b.unpadded.to_le_bytes());
    v.extend_from_slice(&b.uncompressed.to_le_bytes());
    v.extend_from_slice(&b.bytes);
    v
}

/// Read a cache file written by [`to_cache`]; `None` when malformed.
pub fn from_cache(v: &[u8]) -> Option<Block> {
    let unpadded = u64::from_le_bytes(v.get(0..8)?.try_into().ok()?);
    let uncompressed = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    let bytes = v.get(16..)?.to_vec();
    (unpadded <= bytes.len() as u64 && bytes.len() % 4 == 0).then_some(Block {
        bytes,
        unpadded,
        uncompressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(x: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        xz2::read::XzDecoder::new(x).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn blocks_decode_as_one_stream() {
        let parts: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                format!("Package: p{i}\nVersion: 1\n\n")
                    .repeat(i * 50 + 1)
                    .into_bytes()
            })
            .collect();
        let blocks: Vec<Block> = parts.iter().map(|p| block(p, 6).unwrap()).collect();
        let x = stream(&blocks);
        assert_eq!(decode(&x), parts.concat());
        assert_eq!(decode(&stream(&[])), b"");
        let b = from_cache(&to_cache(&blocks[2])).unwrap();
        assert_eq!(b, blocks[2]);
    }

    #[test]
    fn xz_tool_accepts_it() {
        let d = tempfile::tempdir().unwrap();
        let data = b"Package: x\n\n".repeat(1000);
        let blocks = vec![block(&data, 6).unwrap(), block(b"tail\n", 1).unwrap()];
        let p = d.path().join("P.xz");
        std::fs::write(&p, stream(&blocks)).unwrap();
        let o = std::process::Command::new("xz")
            .args(["-dc"])
            .arg(&p)
            .output();
        if let Ok(o) = o {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(o.stdout.len(), data.len() + 5);
        }
        // And apt's own decompressor reads all blocks.
        let o = std::process::Command::new("/usr/lib/apt/apt-helper")
            .arg("cat-file")
            .arg(&p)
            .output();
        if let Ok(o) = o {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(o.stdout.len(), data.len() + 5);
        }
    }
}

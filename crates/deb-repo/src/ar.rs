//! The `ar` container as used by `.deb` files: a sequential reader over any `Read` and a writer.
//!
//! Only what dpkg uses: the common format with member names of at most 15 characters (a GNU `/`
//! terminator is accepted when reading), no symbol tables, no long-name tables.

use std::io::{self, Read, Write};

/// The global header.
pub const MAGIC: &[u8; 8] = b"!<arch>\n";

/// Errors reading an ar archive.
#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("not an ar archive (bad magic)")]
    BadMagic,
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("member header at offset {offset}: {why}")]
    BadHeader { offset: u64, why: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One member header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub mtime: u64,
    pub mode: u32,
    pub size: u64,
}

/// Reads members one after the other.
pub struct Reader<R: Read> {
    inner: R,
    offset: u64,
    /// Bytes of the current member not yet consumed, plus its padding byte.
    remaining: u64,
    pad: bool,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn num(field: &[u8], radix: u32, what: &str, offset: u64) -> Result<u64, ArError> {
    let s = std::str::from_utf8(field)
        .map_err(|_| bad(offset, format!("{what} is not ASCII")))?
        .trim_end_matches(' ');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, radix).map_err(|_| bad(offset, format!("{what} {s:?} is not a number")))
}

fn bad(offset: u64, why: String) -> ArError {
    ArError::BadHeader { offset, why }
}

impl<R: Read> Reader<R> {
    /// Check the global header.
    pub fn new(mut inner: R) -> Result<Self, ArError> {
        let mut m = [0u8; 8];
        let n = read_full(&mut inner, &mut m)?;
        if n < 8 || &m != MAGIC {
            return Err(ArError::BadMagic);
        }
        Ok(Reader {
            inner,
            offset: 8,
            remaining: 0,
            pad: false,
        })
    }

    /// Skip what is left of the current member and read the next header; `None` at the end.
    pub fn next_header(&mut self) -> Result<Option<Header>, ArError> {
        self.skip_rest()?;
        let mut h = [0u8; 60];
        let n = read_full(&mut self.inner, &mut h)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        if n < 60 {
            return Err(ArError::Truncated(format!(
                "member header at offset {offset} has {n} of 60 bytes"
            )));
        }
        self.offset += 60;
        if &h[58..60] != b"`\n" {
            return Err(bad(offset, "bad header terminator".into()));
        }
        let raw_name = std::str::from_utf8(&h[0..16])
            .map_err(|_| bad(offset, "member name is not ASCII".into()))?;
        let name = raw_name.trim_end_matches(' ');
        let name = name.strip_suffix('/').unwrap_or(name);
        if name.is_empty() || name.starts_with('/') {
            return Err(bad(offset, format!("unsupported member name {raw_name:?}")));
        }
        let header = Header {
            name: name.to_string(),
            mtime: num(&h[16..28], 10, "mtime", offset)?,
            mode: num(&h[40..48], 8, "mode", offset)? as u32,
            size: num(&h[48..58], 10, "size", offset)?,
        };
        self.remaining = header.size;
        self.pad = header.size % 2 == 1;
        Ok(Some(header))
    }

    /// A reader over the current member's data.
    pub fn member(&mut self) -> Member<'_, R> {
        Member { ar: self }
    }

    fn skip_rest(&mut self) -> Result<(), ArError> {
        let want = self.remaining;
        let got = io::copy(&mut self.member(), &mut io::sink())?;
        if got < want {
            return Err(ArError::Truncated(format!(
                "member ends {} bytes early at offset {}",
                want - got,
                self.offset
            )));
        }
        if self.pad {
            let mut b = [0u8; 1];
            // A missing final padding byte is tolerated (some tools omit it at the very end).
            let n = read_full(&mut self.inner, &mut b)?;
            self.offset += n as u64;
            self.pad = false;
        }
        Ok(())
    }

    /// The offset in the archive of the next byte to be read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Give back the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// The data of one member; reading past its end returns EOF.
pub struct Member<'a, R: Read> {
    ar: &'a mut Reader<R>,
}

impl<R: Read> Member<'_, R> {
    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.ar.remaining
    }
}

impl<R: Read> Read for Member<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ar.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.ar.remaining.min(usize::MAX as u64) as usize);
        let n = self.ar.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "ar member truncated: {} bytes missing at offset {}",
                    self.ar.remaining, self.ar.offset
                ),
            ));
        }
        self.ar.remaining -= n as u64;
        self.ar.offset += n as u64;
        Ok(n)
    }
}

/// Writes an ar archive.
pub struct Writer<W: Write> {
    inner: W,
}

impl<W: Write> Writer<W> {
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(MAGIC)?;
        Ok(Writer { inner })
    }

    /// Append one member (name of at most 15 ASCII characters, no spaces).
    pub fn append(&mut self, name: &str, mtime: u64, mode: u32, data: &[u8]) -> io::Result<()> {
        if name.is_empty() || name.len() > 15 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ar member name {name:?} must be 1-15 printable ASCII characters"),
            ));
        }
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8o}{:<10}`\n",
            name,
            mtime,
            0,
            0,
            mode,
            data.len()
        );
        debug_assert_eq!(header.len(), 60);
        self.inner.write_all(header.as_bytes())?;
        self.inner.write_all(data)?;
        if data.len() % 2 == 1 {
            self.inner.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_padding() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.append("debian-binary", 5, 0o100644, b"2.0\n").unwrap();
        w.append("odd", 5, 0o100644, b"abc").unwrap();
        w.append("empty", 5, 0o100644, b"").unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some(h) = r.next_header().unwrap() {
            let mut v = Vec::new();
            r.member().read_to_end(&mut v).unwrap();
            seen.push((h.name, h.mode, v));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[0],
            ("debian-binary".into(), 0o100644, b"2.0\n".to_vec())
        );
        assert_eq!(seen[1].2, b"abc");
        assert_eq!(seen[2].2, b"");
    }

    #[test]
    fn truncation_is_an_error() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.append("data.tar.xz", 0, 0o100644, &[7u8; 100]).unwrap();
        let bytes = w.finish().unwrap();
        for cut in [4usize, 30, 90, 120] {
            let r = Reader::new(&bytes[..cut]);
            let res = r.and_then(|mut r| {
                r.next_header()?;
                r.next_header()
            });
            assert!(res.is_err(), "cut at {cut}");
        }
    }
}

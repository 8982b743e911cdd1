//! A minimal deterministic GNU tar writer for package members.
//!
//! Written by hand (rather than with the `tar` crate's builder) to keep the `./` prefix dpkg-deb
//! uses, to emit the `./` root entry, and to fix every header field: owner root:root (0/0),
//! the given mode and mtime, no device numbers. Names and link targets longer than 100 bytes use
//! GNU `././@LongLink` records, which dpkg reads.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

pub struct Writer<W: Write> {
    inner: W,
}

fn octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    if s.len() > width {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("value {value} does not fit a {width}-digit tar field"),
        ));
    }
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
    Ok(())
}

fn header(
    name: &[u8],
    mode: u32,
    size: u64,
    mtime: u64,
    kind: u8,
    link: &[u8],
) -> io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode))?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], size)?;
    octal(&mut h[136..148], mtime)?;
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer { inner }
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.inner.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn long(&mut self, kind: u8, value: &[u8]) -> io::Result<()> {
        let mut data = value.to_vec();
        data.push(0);
        let h = header(b"././@LongLink", 0o644, data.len() as u64, 0, kind, b"")?;
        self.inner.write_all(&h)?;
        self.inner.write_all(&data)?;
        self.pad(data.len() as u64)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        mtime: u64,
        kind: u8,
        link: &str,
    ) -> io::Result<()> {
        if name.len() > 100 {
            self.long(b'L', name.as_bytes())?;
        }
        if link.len() > 100 {
            self.long(b'K', link.as_bytes())?;
        }
        let h = header(name.as_bytes(), mode, size, mtime, kind, link.as_bytes())?;
        self.inner.write_all(&h)
    }

    /// A directory (`name` should end with `/`).
    pub fn dir(&mut self, name: &str, mode: u32, mtime: u64) -> io::Result<()> {
        self.entry(name, mode, 0, mtime, b'5', "")
    }

    pub fn symlink(&mut self, name: &str, target: &str, mtime: u64) -> io::Result<()> {
        self.entry(name, 0o777, 0, mtime, b'2', target)
    }

    pub fn file(&mut self, name: &str, mode: u32, mtime: u64, data: &[u8]) -> io::Result<()> {
        self.entry(name, mode, data.len() as u64, mtime, b'0', "")?;
        self.inner.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// A regular file of exactly `len` bytes read from `r` (an error if `r` has fewer).
    pub fn file_from(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u64,
        len: u64,
        r: &mut impl Read,
    ) -> io::Result<()> {
        self.entry(name, mode, len, mtime, b'0', "")?;
        let n = io::copy(&mut r.take(len), &mut self.inner)?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: file shrank from {len} to {n} bytes while packaging"),
            ));
        }
        self.pad(len)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&[0u8; 2 * BLOCK])?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

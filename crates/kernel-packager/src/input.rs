//! Where a kernel config comes from: a `.config` (plain, gzip as in `/proc/config.gz`, or xz) or a
//! kernel image `.deb` (its `/boot/config-*`). The kind is told by the file's first bytes.

use std::io::Read;
use std::path::Path;

use crate::config::KernelConfig;
use crate::{debfile, Error, IoContext, Result};

/// A config read from some input, and a name for it in reports.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: KernelConfig,
    /// `FILE` or `DEB:/boot/config-…`.
    pub origin: String,
}

/// Read a kernel config from `path` (a config file, compressed or not, or a kernel `.deb`).
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::BadInput(format!("{}: no such file", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return Err(Error::BadInput(format!(
                "{}: is a folder, not a kernel config or .deb",
                path.display()
            )))
        }
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    };
    let shown = path.display().to_string();
    if bytes.starts_with(b"!<arch>\n") {
        let (name, text) = debfile::boot_config(path)?;
        let origin = format!("{shown}:/{name}");
        let config = KernelConfig::parse(&text, &origin)?;
        return Ok(Loaded { config, origin });
    }
    let text = decompress(&bytes, &shown)?;
    let config = KernelConfig::parse(&text, &shown)?;
    Ok(Loaded {
        config,
        origin: shown,
    })
}

/// Plain text, gzip or xz, by magic bytes.
fn decompress(bytes: &[u8], shown: &str) -> Result<String> {
    let mut out = Vec::new();
    let bad = |e: std::io::Error| Error::BadInput(format!("{shown}: cannot decompress: {e}"));
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(bad)?;
    } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        xz2::read::XzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(bad)?;
    } else {
        out = bytes.to_vec();
    }
    String::from_utf8(out).map_err(|_| {
        Error::BadInput(format!(
            "{shown}: not text; expected a kernel .config (plain, .gz or .xz) or a kernel .deb"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_gzip_and_xz() {
        let d = tempfile::tempdir().unwrap();
        let text = b"CONFIG_A=y\n";
        std::fs::write(d.path().join("plain"), text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text).unwrap();
        std::fs::write(d.path().join("c.gz"), gz.finish().unwrap()).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, text).unwrap();
        std::fs::write(d.path().join("c.xz"), xz.finish().unwrap()).unwrap();
        for f in ["plain", "c.gz", "c.xz"] {
            let l = load(&d.path().join(f)).unwrap();
            assert!(l.config.is_enabled("A"), "{f}");
        }
    }

    #[test]
    fn bad_inputs_are_bad_input() {
        let d = tempfile::tempdir().unwrap();
        let e = load(&d.path().join("nope")).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("no such file"),
            "{e}"
        );
        let e = load(d.path()).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        std::fs::write(d.path().join("bin"), [0u8, 159, 146, 150]).unwrap();
        let e = load(&d.path().join("bin")).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("not text"),
            "{e}"
        );
        std::fs::write(d.path().join("txt"), "hello\n").unwrap();
        let e = load(&d.path().join("txt")).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        // An ar archive that is not a .deb.
        std::fs::write(d.path().join("x.deb"), b"!<arch>\ngarbage").unwrap();
        let e = load(&d.path().join("x.deb")).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("x.deb"), "{e}");
    }
}

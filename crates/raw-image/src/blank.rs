//! The blank raw-image artifact: a layout made into an image with empty file systems, shipped as
//! `<layout>-raw.img.zst`, `<layout>-raw.img.zst.sha256` and `manifest.json` (what HypriotOS'
//! image-builder-raw shipped, minus the privileged container).

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use artifact::{CacheKey, Manifest};
use serde::Serialize;

use crate::build::{fill_with, Inputs};
use crate::error::{IoContext, Result};
use crate::layout::Layout;

/// Artifact kind name.
pub const KIND: &str = "raw-image";

/// Bumped when the bytes this crate writes change for the same inputs (part of the cache key).
pub const FORMAT_REVISION: u32 = 2;

/// The default epoch when `SOURCE_DATE_EPOCH` is unset: 1980-01-01, the earliest FAT time.
pub const DEFAULT_EPOCH: i64 = 315_532_800;

/// `SOURCE_DATE_EPOCH` if set (an error names a bad value), else [`DEFAULT_EPOCH`].
pub fn source_date_epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|e| *e >= 0)
            .ok_or_else(|| crate::Error::Io {
                context: format!("SOURCE_DATE_EPOCH={v:?}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a non-negative number of seconds since 1970",
                ),
            }),
        _ => Ok(DEFAULT_EPOCH),
    }
}

/// What the cache key covers.
#[derive(Debug, Clone, Serialize)]
pub struct BlankSpec {
    pub layout: Layout,
    pub epoch: i64,
    pub format_revision: u32,
}

/// Builds the blank raw image of a layout.
#[derive(Debug, Clone)]
pub struct BlankBuilder {
    spec: BlankSpec,
}

impl BlankBuilder {
    pub fn new(layout: Layout, epoch: i64) -> BlankBuilder {
        BlankBuilder {
            spec: BlankSpec {
                layout,
                epoch,
                format_revision: FORMAT_REVISION,
            },
        }
    }

    /// File name of the compressed image.
    pub fn image_name(&self) -> String {
        format!("{}-raw.img.zst", self.spec.layout.name)
    }
}

/// Versions of the host tools whose output lands in images (for cache keys).
pub fn tool_versions() -> Vec<(&'static str, String)> {
    vec![
        (
            "e2fsprogs",
            artifact::cmd::tool_version("mke2fs", "e2fsprogs"),
        ),
        (
            "dosfstools",
            artifact::cmd::tool_version("mkfs.vfat", "dosfstools"),
        ),
        ("mtools", artifact::cmd::tool_version("mcopy", "mtools")),
    ]
}

/// Compress `src` into `dst` with zstd (level 3, two worker threads).
pub fn compress(src: &Path, dst: &Path) -> Result<()> {
    let input = std::fs::File::open(src).ctx(|| format!("opening {}", src.display()))?;
    let out = std::fs::File::create(dst).ctx(|| format!("creating {}", dst.display()))?;
    let mut enc = zstd::stream::Encoder::new(BufWriter::new(out), 3)
        .ctx(|| format!("starting zstd for {}", dst.display()))?;
    enc.multithread(2)
        .ctx(|| "enabling zstd worker threads".into())?;
    std::io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc)
        .ctx(|| format!("compressing {} into {}", src.display(), dst.display()))?;
    let mut w = enc
        .finish()
        .ctx(|| format!("finishing {}", dst.display()))?;
    w.flush().ctx(|| format!("writing {}", dst.display()))?;
    w.get_ref()
        .sync_all()
        .ctx(|| format!("syncing {}", dst.display()))?;
    Ok(())
}

impl artifact::Builder for BlankBuilder {
    type Error = crate::Error;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn cache_key(&self) -> Result<CacheKey> {
        self.spec.layout.check()?;
        let mut key = CacheKey::new(KIND, &self.spec);
        for (tool, version) in tool_versions() {
            key = key.tool(tool, &version);
        }
        Ok(key)
    }

    fn build(&self, key: &CacheKey, staging: &Path) -> Result<Manifest> {
        let name = &self.spec.layout.name;
        let raw = staging.join(format!("{name}-raw.img"));
        let filled = fill_with(
            &self.spec.layout,
            &Inputs::default(),
            &key.digest(),
            self.spec.epoch,
            &raw,
        )?;
        let zst = staging.join(self.image_name());
        compress(&raw, &zst)?;
        std::fs::remove_file(&raw).ctx(|| format!("removing {}", raw.display()))?;
        let (sha, _) = artifact::sha256_file(&zst)?;
        let sums = staging.join(format!("{}.sha256", self.image_name()));
        artifact::fsutil::write_synced(
            &sums,
            format!("{sha}  {}\n", self.image_name()).as_bytes(),
        )?;
        let mut m = Manifest::new(
            KIND,
            &format!("{name}-raw"),
            env!("CARGO_PKG_VERSION"),
            "any",
            &key.digest(),
        );
        m.metadata = serde_json::json!({
            "layout": self.spec.layout,
            "epoch": self.spec.epoch,
            "image": filled,
            "uncompressed_size": filled.disk_size,
        });
        Ok(m)
    }

    fn validate(&self, entry: &artifact::Entry) -> Result<()> {
        let p = entry.path(&self.image_name());
        let f = std::fs::File::open(&p).ctx(|| format!("opening {}", p.display()))?;
        let mut dec = zstd::stream::Decoder::new(f).ctx(|| format!("reading {}", p.display()))?;
        let mut head = vec![0u8; 64 * 1024];
        std::io::Read::read_exact(&mut dec, &mut head)
            .ctx(|| format!("decompressing {}", p.display()))?;
        crate::inspect::read_table_from(&mut std::io::Cursor::new(head))?;
        Ok(())
    }
}

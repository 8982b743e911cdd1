//! The raw-image artifact of a board: profile → [`raw_image::Layout`] → store.
//!
//! [`layout`] is also what the image assembler and `drydock test` use to turn a profile's
//! `layout:` into the builder's layout (builders never read profiles).

use std::path::Path;

use anyhow::{Context, Result};
use artifact::Builder;
use raw_image::layout::{Blob, Bytes, Fs, Layout, Partition, SizeSpec, TableKind};

use super::Built;
use crate::profile::{self, Profile};
use crate::{Ctx, UsageError};

fn parse_mbr_type(s: &str) -> Option<u8> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16).ok(),
        None => u8::from_str_radix(t, 16).ok(),
    }
}

/// The builder layout of a profile. Errors are bad input (exit code 2) naming the profile, the
/// partition and the value.
pub fn layout(profile: &Profile) -> Result<Layout> {
    let l = &profile.layout;
    let bad = |m: String| UsageError(format!("{}: layout: {m}", profile.name));
    let mut partitions = Vec::new();
    for p in &l.partitions {
        let size = match p.size {
            profile::PartSize::Fixed(s) => SizeSpec::Fixed(Bytes(s.0)),
            profile::PartSize::Rest => SizeSpec::Rest,
            profile::PartSize::Fit => SizeSpec::Fit {
                headroom: Bytes(p.headroom.map(|h| h.0).unwrap_or(0)),
            },
        };
        if p.headroom.is_some() && p.size != profile::PartSize::Fit {
            return Err(bad(format!(
                "partition {:?}: headroom only applies to `size: fit`",
                p.name
            ))
            .into());
        }
        let mbr_type = match &p.mbr_type {
            None => None,
            Some(s) => Some(parse_mbr_type(s).ok_or_else(|| {
                bad(format!(
                    "partition {:?}: mbr-type {s:?} is not a byte like \"0x0c\"",
                    p.name
                ))
            })?),
        };
        partitions.push(Partition {
            name: p.name.clone(),
            label: p.label.clone(),
            fs: match p.fs {
                profile::FsKind::Fat32 => Fs::Fat32,
                profile::FsKind::Ext4 => Fs::Ext4,
                profile::FsKind::None => Fs::None,
            },
            size,
            start: None,
            bootable: p.bootable,
            gpt_type: p.gpt_type.clone(),
            mbr_type,
        });
    }
    let layout = Layout {
        name: profile.name.clone(),
        table: match l.table {
            profile::TableKind::Mbr => TableKind::Mbr,
            profile::TableKind::Gpt => TableKind::Gpt,
            profile::TableKind::HybridMbr => TableKind::HybridMbr,
        },
        align: Bytes(l.align.0),
        disk_size: l.disk_size.map(|s| Bytes(s.0)),
        partitions,
        blobs: l
            .blobs
            .iter()
            .map(|b| Blob {
                name: b.name.clone(),
                offset: Bytes(b.offset.0),
                max_size: b.max_size.map(|s| Bytes(s.0)),
            })
            .collect(),
    };
    layout
        .check()
        .map_err(|e| UsageError(format!("{}: {e}", profile.name)))?;
    Ok(layout)
}

/// Build (or reuse) the blank raw image of `profile` and export it to `out`.
pub fn build(ctx: &Ctx, profile: &Profile, out: &Path) -> Result<Built> {
    let layout = layout(profile)?;
    // Check placement (overlaps, disk size, blobs) before any work; errors are bad input.
    layout
        .plan(&|_| None, &|_| None)
        .map_err(|e| UsageError(format!("{}: {e}", profile.name)))?;
    let epoch = raw_image::blank::source_date_epoch().map_err(|e| UsageError(e.to_string()))?;
    let builder = raw_image::blank::BlankBuilder::new(layout, epoch);
    let key = builder.cache_key()?;
    let (entry, cached) = ctx
        .store
        .get_or_build(&key, |staging| builder.build(&key, staging))
        .with_context(|| format!("building the raw image of {}", profile.name))?;
    if !cached {
        builder.validate(&entry)?;
    }
    super::exported(entry, cached, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpi_profile_converts() {
        let p = crate::profile::load("rpi-arm64").unwrap();
        let l = layout(&p).unwrap();
        assert_eq!(l.name, "rpi-arm64");
        assert_eq!(l.table, TableKind::Mbr);
        assert_eq!(l.partitions[0].fs, Fs::Fat32);
        assert_eq!(l.partitions[0].mbr_type, Some(0x0c));
        assert!(l.partitions[0].bootable);
        assert_eq!(
            l.partitions[1].size,
            SizeSpec::Fit {
                headroom: Bytes(384 << 20)
            }
        );
        let q = crate::profile::load("qemu-arm64").unwrap();
        let l = layout(&q).unwrap();
        assert_eq!(l.table, TableKind::Gpt);
        assert_eq!(
            l.partitions[1].gpt_type.as_deref(),
            Some("linux-root-arm64")
        );
    }

    #[test]
    fn bad_mbr_type_is_named() {
        let mut p = crate::profile::load("rpi-arm64").unwrap();
        p.layout.partitions[1].mbr_type = Some("0xzz".into());
        let e = layout(&p).unwrap_err();
        assert_eq!(crate::exit_code(&e), 2);
        let s = format!("{e:#}");
        assert!(s.contains(r#"partition "root": mbr-type "0xzz""#), "{s}");
    }
}

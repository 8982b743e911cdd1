//! Reading files out of a `.deb`'s data member.
//!
//! Until deb-repo's reader is available, the data member is unpacked by `dpkg-deb --fsys-tarfile`
//! (through the one host-tool runner) and the tar stream is searched in memory.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::{Error, Result};

/// The files of `deb`'s data member whose path (without the leading `./`) satisfies `want`,
/// as (path, contents).
pub fn read_files(deb: &Path, want: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
    let out = artifact::cmd::run(Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb)).map_err(
        |e| Error::Deb {
            path: deb.display().to_string(),
            message: format!("cannot read its data member: {e}"),
        },
    )?;
    let mut ar = tar::Archive::new(std::io::Cursor::new(out.stdout));
    let bad = |e: std::io::Error| Error::Deb {
        path: deb.display().to_string(),
        message: format!("reading its data tarball: {e}"),
    };
    let mut found = Vec::new();
    for ent in ar.entries().map_err(bad)? {
        let mut ent = ent.map_err(bad)?;
        let path = ent.path().map_err(bad)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        if ent.header().entry_type().is_file() && want(&path) {
            let mut data = Vec::new();
            ent.read_to_end(&mut data).map_err(bad)?;
            found.push((path, data));
        }
    }
    Ok(found)
}

/// The `/boot/config-*` of a kernel image package, as (file name, text).
pub fn boot_config(deb: &Path) -> Result<(String, String)> {
    let mut files = read_files(deb, |p| {
        p.strip_prefix("boot/config-")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    })?;
    match files.len() {
        1 => {
            let (name, data) = files.remove(0);
            Ok((name, String::from_utf8_lossy(&data).into_owned()))
        }
        0 => Err(Error::Deb {
            path: deb.display().to_string(),
            message: "holds no /boot/config-*; is it a kernel image package (linux-image-*)?"
                .into(),
        }),
        _ => Err(Error::Deb {
            path: deb.display().to_string(),
            message: format!(
                "holds several kernel configs ({}); check the config file instead",
                files
                    .iter()
                    .map(|f| f.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

//! Reading files out of a `.deb`'s data member, through deb-repo's reader.

use std::path::Path;

use deb_repo::deb::{DebReader, EntryKind};

use crate::{Error, Result};

fn deb_err(deb: &Path, e: deb_repo::Error) -> Error {
    match e {
        deb_repo::Error::Io { context, source } => Error::Io { context, source },
        other => Error::Deb {
            path: deb.display().to_string(),
            message: format!("not a readable .deb: {other}"),
        },
    }
}

/// The regular files of `deb`'s data member whose path (without the leading `/`) satisfies
/// `want`, as (path, contents).
pub fn read_files(deb: &Path, want: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
    let mut r = DebReader::open(deb).map_err(|e| deb_err(deb, e))?;
    let mut found = Vec::new();
    r.for_each_data_entry(|e, data| {
        let path = e.path.trim_start_matches('/');
        if e.kind == EntryKind::File && want(path) {
            let mut v = Vec::new();
            data.read_to_end(&mut v)?;
            found.push((path.to_string(), v));
        }
        Ok(true)
    })
    .map_err(|e| deb_err(deb, e))?;
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

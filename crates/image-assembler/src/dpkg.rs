//! The installed package list, read from a tree's `/var/lib/dpkg/status`.

use serde::{Deserialize, Serialize};

/// One installed binary package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Source package name (the binary name when the stanza has no `Source:`).
    pub source: String,
    /// Source version (the binary version when `Source:` carries none).
    pub source_version: String,
}

/// Parse dpkg's status file; only packages whose status is `install ok installed` are returned,
/// sorted by name and arch.
pub fn parse_status(text: &str) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (n, stanza) in text.split("\n\n").enumerate() {
        let mut fields = std::collections::BTreeMap::new();
        let mut last: Option<String> = None;
        for line in stanza.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field (Description, Conffiles)
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.to_string(), v.trim().to_string());
                last = Some(k.to_string());
            } else if !line.trim().is_empty() {
                return Err(format!(
                    "dpkg status stanza {}: line {line:?} is not `Field: value`{}",
                    n + 1,
                    last.map(|l| format!(" (after {l})")).unwrap_or_default()
                ));
            }
        }
        if fields.is_empty()
            || fields.get("Status").map(String::as_str) != Some("install ok installed")
        {
            continue;
        }
        let get = |k: &str| {
            fields
                .get(k)
                .cloned()
                .ok_or_else(|| format!("dpkg status stanza {}: no {k} field", n + 1))
        };
        let name = get("Package")?;
        let version = get("Version")?;
        let arch = get("Architecture")?;
        let (source, source_version) = match fields.get("Source") {
            Some(s) => match s.split_once(' ') {
                Some((src, v)) => (
                    src.to_string(),
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                ),
                None => (s.clone(), version.clone()),
            },
            None => (name.clone(), version.clone()),
        };
        out.push(Package {
            name,
            version,
            arch,
            source,
            source_version,
        });
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_installed_only() {
        let text = "Package: bash\nStatus: install ok installed\nArchitecture: arm64\nVersion: 5.2.37-2\nDescription: shell\n more text\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nArchitecture: arm64\nVersion: 1\n\n\
                    Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nSource: glibc\nVersion: 2.41-12\n\n\
                    Package: libgcc-s1\nStatus: install ok installed\nArchitecture: arm64\nSource: gcc-14 (14.2.0-19)\nVersion: 14.2.0-19\n";
        let p = parse_status(text).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "bash");
        assert_eq!(p[0].source, "bash");
        assert_eq!(p[1].source, "glibc");
        assert_eq!(p[1].source_version, "2.41-12");
        assert_eq!(p[2].source, "gcc-14");
        assert_eq!(p[2].source_version, "14.2.0-19");
    }

    #[test]
    fn missing_version_is_an_error() {
        let e = parse_status("Package: x\nStatus: install ok installed\nArchitecture: all\n")
            .unwrap_err();
        assert!(e.contains("Version"), "{e}");
    }
}

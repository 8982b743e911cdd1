//! Parsing `/var/lib/dpkg/status` into the package list of the manifest. Pure: works on text.

use serde::{Deserialize, Serialize};

/// One installed package, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Source package name (the binary's own name when the stanza has no `Source:`).
    pub source: String,
    /// Source version (the binary's version unless `Source: name (version)` says otherwise).
    pub source_version: String,
    /// `Installed-Size`, in KiB (0 when the stanza has none).
    pub installed_size_kib: u64,
}

/// A malformed status file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    #[error("dpkg status line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("dpkg status stanza at line {line}: missing field {field}")]
    Missing { line: usize, field: &'static str },
    #[error("dpkg status stanza at line {line} ({package}): {field} {value:?} is not a number")]
    Number {
        line: usize,
        package: String,
        field: &'static str,
        value: String,
    },
}

/// The packages of a dpkg status file whose state is `installed` (`install ok installed`, or
/// `hold ok installed` for a held package), sorted by name and arch. Stanzas in other states (config-files, half-installed, not-installed) are not part of
/// the installed system and are skipped.
pub fn parse(text: &str) -> Result<Vec<Package>, StatusError> {
    let mut out = Vec::new();
    for (line, fields) in stanzas(text)? {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let status = get("Status").ok_or(StatusError::Missing {
            line,
            field: "Status",
        })?;
        // `<want> <flag> <state>`: installed whatever the selection (install, hold...).
        let words: Vec<&str> = status.split_whitespace().collect();
        if words.len() != 3 || words[1] != "ok" || words[2] != "installed" {
            continue;
        }
        let name = get("Package").ok_or(StatusError::Missing {
            line,
            field: "Package",
        })?;
        let version = get("Version").ok_or(StatusError::Missing {
            line,
            field: "Version",
        })?;
        let arch = get("Architecture").ok_or(StatusError::Missing {
            line,
            field: "Architecture",
        })?;
        let (source, source_version) = match get("Source") {
            None => (name.to_string(), version.to_string()),
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim().trim_end_matches(')').trim().to_string(),
                ),
                None => (s.trim().to_string(), version.to_string()),
            },
        };
        let installed_size_kib = match get("Installed-Size") {
            None => 0,
            Some(v) => v.trim().parse().map_err(|_| StatusError::Number {
                line,
                package: name.into(),
                field: "Installed-Size",
                value: v.into(),
            })?,
        };
        out.push(Package {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source,
            source_version,
            installed_size_kib,
        });
    }
    out.sort();
    Ok(out)
}

type Stanza = (usize, Vec<(String, String)>);

/// Split deb822 text into stanzas of (field, value); continuation lines are joined with `\n`.
fn stanzas(text: &str) -> Result<Vec<Stanza>, StatusError> {
    let mut all = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    let mut start = 1;
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        if l.trim().is_empty() {
            if !cur.is_empty() {
                all.push((start, std::mem::take(&mut cur)));
            }
            continue;
        }
        if cur.is_empty() {
            start = n;
        }
        if l.starts_with(' ') || l.starts_with('\t') {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(l.trim());
                }
                None => {
                    return Err(StatusError::Syntax {
                        line: n,
                        message: "continuation line outside a field".into(),
                    })
                }
            }
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(StatusError::Syntax {
                line: n,
                message: format!("expected `Field: value`, got {l:?}"),
            });
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(StatusError::Syntax {
                line: n,
                message: format!("bad field name {k:?}"),
            });
        }
        cur.push((k.to_string(), v.trim().to_string()));
    }
    if !cur.is_empty() {
        all.push((start, cur));
    }
    Ok(all)
}

/// Sum of the installed sizes, in KiB.
pub fn total_installed_kib(pkgs: &[Package]) -> u64 {
    pkgs.iter().map(|p| p.installed_size_kib).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three stanzas shaped like a real trixie arm64 status file (fields trimmed), plus one
    /// removed package that left only its conffiles.
    const FIXTURE: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12345
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: arm64
Multi-Arch: same
Source: glibc
Version: 2.41-12
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: bash
Essential: yes
Status: install ok installed
Priority: required
Installed-Size: 7000
Architecture: arm64
Version: 5.2.37-2+b5
Conffiles:
 /etc/bash.bashrc 89269e1298235f1b12b4c16e4065ad0d
 /etc/skel/.bashrc 3ae8fc5a7e5e5ea0d3a0e8d1fa1a2bea
Description: GNU Bourne Again SHell

Package: libgcc-s1
Status: install ok installed
Installed-Size: 140
Architecture: arm64
Source: gcc-14 (14.2.0-19)
Version: 14.2.0-19

Package: oldthing
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0

Package: zheld
Status: hold ok installed
Architecture: all
Version: 2
";

    #[test]
    fn parses_installed_packages() {
        let p = parse(FIXTURE).unwrap();
        assert_eq!(
            p[..3],
            [
                Package {
                    name: "bash".into(),
                    version: "5.2.37-2+b5".into(),
                    arch: "arm64".into(),
                    source: "bash".into(),
                    source_version: "5.2.37-2+b5".into(),
                    installed_size_kib: 7000,
                },
                Package {
                    name: "libc6".into(),
                    version: "2.41-12".into(),
                    arch: "arm64".into(),
                    source: "glibc".into(),
                    source_version: "2.41-12".into(),
                    installed_size_kib: 12345,
                },
                Package {
                    name: "libgcc-s1".into(),
                    version: "14.2.0-19".into(),
                    arch: "arm64".into(),
                    source: "gcc-14".into(),
                    source_version: "14.2.0-19".into(),
                    installed_size_kib: 140,
                },
            ]
        );
        assert_eq!(
            p[3],
            Package {
                name: "zheld".into(),
                version: "2".into(),
                arch: "all".into(),
                source: "zheld".into(),
                source_version: "2".into(),
                installed_size_kib: 0,
            }
        );
        assert_eq!(p.len(), 4);
        assert_eq!(total_installed_kib(&p), 19485);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("Package: x\nnot a field\n").unwrap_err(),
            StatusError::Syntax {
                line: 2,
                message: "expected `Field: value`, got \"not a field\"".into()
            }
        );
        assert_eq!(
            parse(" continued\n").unwrap_err().to_string(),
            "dpkg status line 1: continuation line outside a field"
        );
        assert_eq!(
            parse("Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\nArchitecture: all\n")
                .unwrap_err(),
            StatusError::Missing { line: 1, field: "Architecture" }
        );
        let e = parse("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\nInstalled-Size: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Installed-Size \"lots\""), "{e}");
    }

    #[test]
    fn empty_and_crlf_free_inputs() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("\n\n\n").unwrap(), vec![]);
    }
}

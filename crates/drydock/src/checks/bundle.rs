//! The bundle beside the image: `manifest.json`, the SPDX SBOM, `SHA256SUMS` and the `.bmap`,
//! checked against the image file and its dpkg status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checks::subject::{Bundle, Subject};
use crate::checks::{list_some, Report};

/// Find the bundle files beside an image (`<dir>/manifest.json`, `*.spdx.json`, `SHA256SUMS`,
/// `<image>.bmap`).
pub fn find(image: &Path) -> Bundle {
    let dir = image
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let read_json = |p: &Path| -> Result<serde_json::Value, String> {
        let t = std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: not JSON: {e}", p.display()))
    };
    let manifest_path = dir.join("manifest.json");
    let manifest = manifest_path.exists().then(|| read_json(&manifest_path));
    let mut sbom = None;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".spdx.json"))
            .collect();
        names.sort();
        if let Some(p) = names.into_iter().next() {
            let v = read_json(&p);
            sbom = Some((p, v));
        }
    }
    let sums = dir.join("SHA256SUMS");
    let bmap = PathBuf::from(format!("{}.bmap", image.display()));
    let bmap_alt = image.with_extension("bmap");
    Bundle {
        image: image.to_path_buf(),
        dir,
        manifest,
        sbom,
        sha256sums: sums.exists().then_some(sums),
        bmap: if bmap.exists() {
            Some(bmap)
        } else {
            bmap_alt.exists().then_some(bmap_alt)
        },
    }
}

/// The board named by a bundle's manifest, if any.
pub fn manifest_board(b: &Bundle) -> Option<String> {
    let m = b.manifest.as_ref()?.as_ref().ok()?;
    m.get("board")
        .and_then(|v| {
            v.as_str()
                .map(String::from)
                .or_else(|| v.get("name").and_then(|n| n.as_str()).map(String::from))
        })
        .or_else(|| {
            m.pointer("/metadata/board")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
}

/// Package name → version from a manifest's package list (a list of objects with name/version,
/// a list of `name=version` strings, or an object name → version).
pub fn manifest_packages(m: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    let list = m
        .get("packages")
        .or_else(|| m.pointer("/metadata/packages"))
        .or_else(|| m.get("installed_packages"))?;
    let mut out = BTreeMap::new();
    match list {
        serde_json::Value::Array(a) => {
            for p in a {
                if let Some(s) = p.as_str() {
                    let (n, v) = s.split_once('=').unwrap_or((s, ""));
                    out.insert(n.to_string(), v.to_string());
                } else {
                    let n = p
                        .get("name")
                        .or_else(|| p.get("package"))
                        .and_then(|x| x.as_str())?;
                    let v = p.get("version").and_then(|x| x.as_str()).unwrap_or("");
                    out.insert(n.to_string(), v.to_string());
                }
            }
        }
        serde_json::Value::Object(o) => {
            for (n, v) in o {
                let v = v
                    .as_str()
                    .map(String::from)
                    .or_else(|| v.get("version").and_then(|x| x.as_str()).map(String::from))
                    .unwrap_or_default();
                out.insert(n.clone(), v);
            }
        }
        _ => return None,
    }
    Some(out)
}

/// Package name → version from an SPDX document's packages (the image's own package, which
/// describes the whole image, is included; callers look names up).
pub fn sbom_packages(doc: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in doc
        .get("packages")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(n) = p.get("name").and_then(|x| x.as_str()) {
            let v = p.get("versionInfo").and_then(|x| x.as_str()).unwrap_or("");
            out.insert(n.to_string(), v.to_string());
        }
    }
    out
}

type ShaKey = (PathBuf, u64, Option<std::time::SystemTime>);

thread_local! {
    /// sha256 by (path, size, mtime): an image is listed in both manifest.json and SHA256SUMS;
    /// hash it once.
    static SHA_MEMO: std::cell::RefCell<BTreeMap<ShaKey, String>> = Default::default();
}

fn file_sha256(p: &Path) -> Result<(String, u64), String> {
    let md = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let key = (
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()),
        md.len(),
        md.modified().ok(),
    );
    if let Some(sha) = SHA_MEMO.with(|m| m.borrow().get(&key).cloned()) {
        return Ok((sha, key.1));
    }
    let (sha, size) = artifact::sha256_file(p).map_err(|e| format!("{e}"))?;
    SHA_MEMO.with(|m| m.borrow_mut().insert(key, sha.clone()));
    Ok((sha, size))
}

/// Manifest, SBOM, checksums and block map.
pub fn bundle(s: &Subject, r: &mut Report) {
    r.group("manifest and SBOM");
    let Some(b) = &s.bundle else {
        r.fail("bundle beside the image", "no bundle information");
        return;
    };
    let image_name = b
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // manifest.json
    let manifest = match &b.manifest {
        Some(Ok(m)) => {
            r.pass(
                "manifest.json present",
                b.dir.join("manifest.json").display().to_string(),
            );
            Some(m)
        }
        Some(Err(e)) => {
            r.fail("manifest.json present", e.clone());
            None
        }
        None => {
            r.fail(
                "manifest.json present",
                format!("no manifest.json in {}", b.dir.display()),
            );
            None
        }
    };
    if let Some(m) = manifest {
        let board = manifest_board(b);
        r.check(
            format!("manifest board is {}", s.profile.name),
            board.as_deref() == Some(s.profile.name.as_str()),
            format!("board {board:?}"),
        );
        let version = m.get("version").and_then(|v| v.as_str());
        r.check(
            "manifest version set",
            version.is_some_and(|v| !v.is_empty()),
            format!("version {version:?}"),
        );
        let digests: Vec<String> = m
            .get("artifacts")
            .or_else(|| m.pointer("/metadata/artifacts"))
            .map(|a| match a {
                serde_json::Value::Object(o) => o
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_str()
                                .or_else(|| v.get("digest").and_then(|d| d.as_str()))
                                .unwrap_or("")
                        )
                    })
                    .collect(),
                serde_json::Value::Array(l) => l
                    .iter()
                    .map(|v| {
                        format!(
                            "{}={}",
                            v.get("kind")
                                .or_else(|| v.get("name"))
                                .and_then(|x| x.as_str())
                                .unwrap_or("?"),
                            v.get("digest")
                                .or_else(|| v.get("inputs_digest"))
                                .and_then(|x| x.as_str())
                                .unwrap_or("")
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default();
        let hexish = |d: &str| d.len() >= 32 && d.chars().all(|c| c.is_ascii_hexdigit());
        let ok = !digests.is_empty()
            && digests
                .iter()
                .all(|d| hexish(d.rsplit('=').next().unwrap_or("")));
        r.check(
            "manifest lists the artifact digests",
            ok,
            if digests.is_empty() {
                "no artifacts".to_string()
            } else {
                list_some(&digests, 6)
            },
        );
        // The image file's own digest, when the manifest lists it.
        let listed = m.get("files").and_then(|f| f.as_array()).and_then(|f| {
            f.iter()
                .find(|e| e.get("path").and_then(|p| p.as_str()) == Some(image_name.as_str()))
                .cloned()
        });
        if let Some(e) = listed {
            let want = e
                .get("sha256")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_string();
            match file_sha256(&b.image) {
                Ok((sha, _)) => r.check(
                    format!("manifest sha256 of {image_name}"),
                    sha == want,
                    format!("image {sha}, manifest {want}"),
                ),
                Err(e) => r.fail(format!("manifest sha256 of {image_name}"), e),
            };
        }
    }
    // SHA256SUMS: every listed file matches.
    match &b.sha256sums {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => {
                let mut listed_image = false;
                for l in t.lines().filter(|l| !l.trim().is_empty()) {
                    let mut it = l.split_whitespace();
                    let (Some(sum), Some(name)) = (it.next(), it.next()) else {
                        r.fail("SHA256SUMS well-formed", format!("line {l:?}"));
                        continue;
                    };
                    let name = name.trim_start_matches('*');
                    listed_image |= name == image_name;
                    let path = b.dir.join(name);
                    match file_sha256(&path) {
                        Ok((sha, _)) => r.check(
                            format!("SHA256SUMS {name}"),
                            sha == sum,
                            format!("file {sha}, listed {sum}"),
                        ),
                        Err(e) => r.fail(format!("SHA256SUMS {name}"), e),
                    };
                }
                r.check(
                    "SHA256SUMS lists the image",
                    listed_image,
                    format!("looking for {image_name}"),
                );
            }
            Err(e) => {
                r.fail(
                    "SHA256SUMS lists the image",
                    format!("reading {}: {e}", p.display()),
                );
            }
        },
        None => {
            r.fail(
                "SHA256SUMS lists the image",
                format!("no SHA256SUMS in {}", b.dir.display()),
            );
        }
    }
    // .bmap
    match &b.bmap {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => {
                let tag = |name: &str| -> Option<String> {
                    let open = format!("<{name}>");
                    let start = t.find(&open)? + open.len();
                    let end = t[start..].find(&format!("</{name}>"))? + start;
                    Some(t[start..end].trim().to_string())
                };
                let size: Option<u64> = tag("ImageSize").and_then(|v| v.parse().ok());
                let actual = std::fs::metadata(&b.image).map(|m| m.len()).ok();
                r.check(
                    ".bmap ImageSize is the image's size",
                    size.is_some() && size == actual,
                    format!("bmap {size:?}, image {actual:?}"),
                );
                let ct = tag("ChecksumType");
                r.check(
                    ".bmap uses sha256",
                    ct.as_deref() == Some("sha256"),
                    format!("ChecksumType {ct:?}"),
                );
                let mapped: Option<u64> = tag("MappedBlocksCount").and_then(|v| v.parse().ok());
                let total: Option<u64> = tag("BlocksCount").and_then(|v| v.parse().ok());
                r.check(
                    ".bmap maps some but not all blocks",
                    matches!((mapped, total), (Some(m), Some(t)) if m > 0 && m <= t),
                    format!("mapped {mapped:?} of {total:?}"),
                );
            }
            Err(e) => {
                r.fail(
                    ".bmap ImageSize is the image's size",
                    format!("reading {}: {e}", p.display()),
                );
            }
        },
        None => {
            r.fail(
                ".bmap ImageSize is the image's size",
                format!("no {image_name}.bmap beside the image"),
            );
        }
    }
    // SBOM
    let sbom = match &b.sbom {
        Some((p, Ok(v))) => {
            r.pass("SPDX SBOM present", p.display().to_string());
            Some(v)
        }
        Some((_, Err(e))) => {
            r.fail("SPDX SBOM present", e.clone());
            None
        }
        None => {
            r.fail(
                "SPDX SBOM present",
                format!("no *.spdx.json in {}", b.dir.display()),
            );
            None
        }
    };
    if let Some(doc) = sbom {
        let sv = doc.get("spdxVersion").and_then(|v| v.as_str());
        r.check(
            "SBOM spdxVersion SPDX-2.3",
            sv == Some("SPDX-2.3"),
            format!("{sv:?}"),
        );
        let dl = doc.get("dataLicense").and_then(|v| v.as_str());
        r.check(
            "SBOM dataLicense CC0-1.0",
            dl == Some("CC0-1.0"),
            format!("{dl:?}"),
        );
        let id = doc.get("SPDXID").and_then(|v| v.as_str());
        r.check(
            "SBOM SPDXID SPDXRef-DOCUMENT",
            id == Some("SPDXRef-DOCUMENT"),
            format!("{id:?}"),
        );
        let ns = doc.get("documentNamespace").and_then(|v| v.as_str());
        r.check(
            "SBOM documentNamespace set",
            ns.is_some_and(|n| n.contains("://")),
            format!("{ns:?}"),
        );
        let created = doc
            .pointer("/creationInfo/created")
            .and_then(|v| v.as_str());
        r.check(
            "SBOM creationInfo.created set",
            created.is_some_and(|c| c.ends_with('Z')),
            format!("{created:?}"),
        );
        let ids: Vec<&str> = doc
            .get("packages")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("SPDXID").and_then(|x| x.as_str()))
            .collect();
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        r.check(
            "SBOM package SPDXIDs unique",
            !ids.is_empty() && uniq.len() == ids.len(),
            format!("{} packages, {} unique ids", ids.len(), uniq.len()),
        );
        let describes = doc
            .get("documentDescribes")
            .and_then(|d| d.as_array())
            .is_some_and(|d| !d.is_empty())
            || doc
                .get("relationships")
                .and_then(|r| r.as_array())
                .is_some_and(|rs| {
                    rs.iter().any(|x| {
                        x.get("relationshipType").and_then(|t| t.as_str()) == Some("DESCRIBES")
                    })
                });
        r.check(
            "SBOM describes the image",
            describes,
            "documentDescribes or a DESCRIBES relationship",
        );
    }
    // Every installed package, by name and version, in both the manifest and the SBOM.
    let installed = match &s.dpkg {
        Ok(p) => p
            .values()
            .filter(|p| p.installed())
            .cloned()
            .collect::<Vec<_>>(),
        Err(e) => {
            r.fail("installed packages readable", e.clone());
            return;
        }
    };
    let mpk = manifest.and_then(manifest_packages);
    if manifest.is_some() && mpk.is_none() {
        r.fail(
            "manifest lists the installed packages",
            "no packages list in manifest.json",
        );
    }
    let spk = sbom.map(sbom_packages);
    for p in &installed {
        let mut problems = Vec::new();
        match &mpk {
            Some(m) => match m.get(&p.name) {
                Some(v) if *v == p.version => {}
                Some(v) => problems.push(format!("manifest says {v}")),
                None => problems.push("not in the manifest".to_string()),
            },
            None => problems.push("no manifest package list".to_string()),
        }
        match &spk {
            Some(m) => match m.get(&p.name) {
                Some(v) if *v == p.version => {}
                Some(v) => problems.push(format!("SBOM says {v}")),
                None => problems.push("not in the SBOM".to_string()),
            },
            None => problems.push("no SBOM".to_string()),
        }
        r.check(
            format!("package {} {} in manifest and SBOM", p.name, p.version),
            problems.is_empty(),
            if problems.is_empty() {
                "listed with this version in both".to_string()
            } else {
                problems.join("; ")
            },
        );
    }
    let names: std::collections::BTreeSet<&str> =
        installed.iter().map(|p| p.name.as_str()).collect();
    if let Some(m) = &mpk {
        let extra: Vec<&String> = m.keys().filter(|k| !names.contains(k.as_str())).collect();
        r.check(
            "manifest lists no package the image lacks",
            extra.is_empty(),
            if extra.is_empty() {
                format!("{} packages", m.len())
            } else {
                list_some(&extra, 8)
            },
        );
    }
    if let Some(m) = &spk {
        // The SBOM also describes the image itself (and may describe non-deb components): only
        // entries with a Debian purl are package claims.
        let debs: Vec<String> = sbom
            .and_then(|d| d.get("packages"))
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter(|p| {
                p.get("externalRefs")
                    .and_then(|e| e.as_array())
                    .is_some_and(|refs| {
                        refs.iter().any(|r| {
                            r.get("referenceLocator")
                                .and_then(|l| l.as_str())
                                .is_some_and(|l| l.starts_with("pkg:deb/"))
                        })
                    })
            })
            .filter_map(|p| p.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect();
        let extra: Vec<&String> = debs
            .iter()
            .filter(|k| !names.contains(k.as_str()))
            .collect();
        r.check(
            "SBOM lists no package the image lacks",
            extra.is_empty() && (debs.len() >= installed.len() || m.len() >= installed.len()),
            if extra.is_empty() {
                format!("{} deb packages (purl pkg:deb/...)", debs.len())
            } else {
                list_some(&extra, 8)
            },
        );
    }
}

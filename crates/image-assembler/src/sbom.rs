//! An SPDX 2.3 JSON software bill of materials for an image: one package for the image itself
//! (with its sha256) that CONTAINS one package per installed Debian binary package, each with a
//! purl (`pkg:deb/debian/NAME@VERSION?arch=ARCH`).

use serde_json::{json, Value};

use crate::dpkg::Package;

/// What the SBOM describes.
#[derive(Debug, Clone)]
pub struct ImageInfo<'a> {
    /// Image file name, e.g. `drydock-rpi-arm64.img`.
    pub file_name: &'a str,
    /// sha256 of the image file.
    pub sha256: &'a str,
    /// Image version (becomes the image package's versionInfo).
    pub version: &'a str,
    /// Unique id for the document namespace (the image artifact's digest).
    pub digest: &'a str,
    /// Seconds since the epoch of the build (SOURCE_DATE_EPOCH).
    pub epoch: i64,
    /// Tool name and version for creationInfo.creators.
    pub tool: &'a str,
    /// Namespace prefix (a URI without `#`).
    pub namespace_base: &'a str,
}

/// SPDX ids allow letters, digits, `.` and `-`.
fn spdx_id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Percent-encode a purl component (unreserved characters stay).
fn purl_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `YYYY-MM-DDThh:mm:ssZ` for seconds since the epoch (UTC, proleptic Gregorian).
pub fn iso8601(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Build the SPDX 2.3 document.
pub fn render(image: &ImageInfo, packages: &[Package]) -> Value {
    let image_id = "SPDXRef-Image";
    let mut pkgs = vec![json!({
        "name": image.file_name,
        "SPDXID": image_id,
        "versionInfo": image.version,
        "packageFileName": image.file_name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": image.sha256}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "OPERATING-SYSTEM",
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut seen = std::collections::BTreeSet::new();
    for p in packages {
        let mut id = format!(
            "SPDXRef-deb-{}-{}",
            spdx_id_part(&p.name),
            spdx_id_part(&p.arch)
        );
        let mut n = 2;
        while !seen.insert(id.clone()) {
            id = format!(
                "SPDXRef-deb-{}-{}-{n}",
                spdx_id_part(&p.name),
                spdx_id_part(&p.arch)
            );
            n += 1;
        }
        let mut purl = format!(
            "pkg:deb/debian/{}@{}?arch={}",
            purl_escape(&p.name),
            purl_escape(&p.version),
            purl_escape(&p.arch)
        );
        if p.source != p.name {
            purl.push_str(&format!("&upstream={}", purl_escape(&p.source)));
        }
        pkgs.push(json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("built from Debian source package {} {}", p.source, p.source_version),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }],
        }));
        rels.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.file_name,
        "documentNamespace": format!("{}/{}-{}", image.namespace_base.trim_end_matches('/'), image.file_name, image.digest),
        "creationInfo": {
            "created": iso8601(image.epoch),
            "creators": [format!("Tool: {}", image.tool)],
        },
        "packages": pkgs,
        "relationships": rels,
    })
}

/// Where a real SPDX validator lives: `pyspdxtools` on PATH, or in the venv scripts/setup-host.sh
/// makes (`$DRYDOCK_VENV`, default `~/.cache/drydock/venv`).
pub fn pyspdxtools() -> Option<std::path::PathBuf> {
    if let Some(p) = artifact::cmd::which("pyspdxtools") {
        return Some(p);
    }
    let venv = std::env::var_os("DRYDOCK_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/drydock/venv"))
        })?;
    let p = venv.join("bin/pyspdxtools");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, source: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: "arm64".into(),
            source: source.into(),
            source_version: version.into(),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn shape() {
        let info = ImageInfo {
            file_name: "drydock-rpi-arm64.img",
            sha256: &"a".repeat(64),
            version: "0.1.0",
            digest: "abc",
            epoch: 1_700_000_000,
            tool: "drydock-0.1.0",
            namespace_base: "https://example.invalid/drydock/spdx",
        };
        let doc = render(
            &info,
            &[
                pkg("libstdc++6", "14.2.0-19", "gcc-14"),
                pkg("tzdata", "1:2025a-1", "tzdata"),
            ],
        );
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let pk = doc["packages"].as_array().unwrap();
        assert_eq!(pk.len(), 3);
        assert_eq!(pk[1]["SPDXID"], "SPDXRef-deb-libstdc--6-arm64");
        assert_eq!(
            pk[1]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=arm64&upstream=gcc-14"
        );
        assert_eq!(
            pk[2]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/tzdata@1%3A2025a-1?arch=arm64"
        );
        let rel = doc["relationships"].as_array().unwrap();
        assert_eq!(rel.len(), 3);
        assert_eq!(rel[0]["relationshipType"], "DESCRIBES");
        assert!(rel[1..].iter().all(|r| r["relationshipType"] == "CONTAINS"));
        assert!(!doc["documentNamespace"].as_str().unwrap().contains('#'));
    }

    #[test]
    fn colliding_ids_are_made_unique() {
        let info = ImageInfo {
            file_name: "x.img",
            sha256: &"a".repeat(64),
            version: "1",
            digest: "d",
            epoch: 0,
            tool: "t",
            namespace_base: "https://example.invalid",
        };
        let doc = render(&info, &[pkg("a+b", "1", "a"), pkg("a-b", "1", "a")]);
        let ids: Vec<_> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["SPDXID"].clone())
            .collect();
        assert_eq!(ids[1], "SPDXRef-deb-a-b-arm64");
        assert_eq!(ids[2], "SPDXRef-deb-a-b-arm64-2");
    }

    /// The real validator (spdx-tools from PyPI) accepts the document.
    #[test]
    fn pyspdxtools_validates() {
        let Some(tool) = pyspdxtools() else {
            artifact::skip_test(
                "pyspdxtools not found (scripts/setup-host.sh installs it in a venv)",
            );
            return;
        };
        let info = ImageInfo {
            file_name: "drydock-rpi-arm64.img",
            sha256: &"a".repeat(64),
            version: "0.1.0",
            digest: "abc123",
            epoch: 1_700_000_000,
            tool: "drydock-0.1.0",
            namespace_base: "https://example.invalid/drydock/spdx",
        };
        let doc = render(
            &info,
            &[
                pkg("libstdc++6", "14.2.0-19", "gcc-14"),
                pkg("tzdata", "1:2025a-1", "tzdata"),
            ],
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.spdx.json");
        std::fs::write(&p, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let o = std::process::Command::new(&tool)
            .arg("-i")
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // And it does reject a broken document, so the check means something.
        let mut bad = doc.clone();
        bad["packages"][1]["SPDXID"] = "not an id".into();
        std::fs::write(&p, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
        let o = std::process::Command::new(&tool)
            .arg("-i")
            .arg(&p)
            .output()
            .unwrap();
        assert!(!o.status.success(), "a bad SPDXID was accepted");
    }
}

//! Packages from a Debian mirror, with hashes checked through the signed chain:
//! `InRelease` verified by `gpgv` against the archive keyring → sha256 of `Packages.xz` from the
//! verified text → sha256 of each `.deb` from `Packages`.
//!
//! Downloads are cached (under the store's aux folder) by their sha256, so a warm run fetches only
//! `InRelease` (to learn the mirror state); when the mirror cannot be reached, the last verified
//! `InRelease` is used and a warning says so. Network errors and 5xx answers are retried; a 404 is
//! not (it means the file is not there).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{version, Error, IoContext, Result};

/// The keyring Debian's `debian-archive-keyring` package installs.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Where packages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// e.g. `http://deb.debian.org/debian`
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Debian architecture (`arm64`); `all` packages are found in its Packages too.
    pub arch: String,
    /// OpenPGP keyring `InRelease` must be signed by.
    pub keyring: PathBuf,
}

/// A requested package: a name, optionally pinned to a version (`name=version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub name: String,
    pub version: Option<String>,
}

impl std::str::FromStr for Request {
    type Err = Error;
    fn from_str(s: &str) -> Result<Request> {
        let (name, version) = match s.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (s.trim(), None),
        };
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !ok || version.as_deref() == Some("") {
            return Err(Error::BadInput(format!(
                "package {s:?}: expected a Debian package name, optionally `=VERSION`"
            )));
        }
        Ok(Request {
            name: name.into(),
            version,
        })
    }
}

/// A package as the mirror's `Packages` index describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub component: String,
    /// Path below the mirror root (`pool/main/...`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub depends: String,
}

impl Package {
    /// The file name in the pool.
    pub fn file_name(&self) -> String {
        self.filename
            .rsplit('/')
            .next()
            .unwrap_or(&self.filename)
            .to_string()
    }
}

/// The verified indices of one suite.
#[derive(Debug)]
pub struct Index {
    mirror: Mirror,
    /// (component, decompressed Packages text)
    packages: Vec<(String, String)>,
    /// sha256 of the verified InRelease (the mirror state).
    pub inrelease_sha256: String,
}

/// Downloads with retries and a cache folder.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache: PathBuf,
    agent: ureq::Agent,
    tries: u32,
}

enum GetError {
    NotFound,
    Fatal(String),
}

impl Fetcher {
    /// A fetcher caching under `cache` (created if needed).
    pub fn new(cache: &Path) -> Result<Fetcher> {
        std::fs::create_dir_all(cache).ctx(|| format!("creating {}", cache.display()))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .try_proxy_from_env(true)
            .build();
        Ok(Fetcher {
            cache: cache.to_path_buf(),
            agent,
            tries: 4,
        })
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// GET `url` into `sink`, retrying network errors and 5xx answers. `sink` is reset before
    /// each try.
    fn get_with(
        &self,
        url: &str,
        mut reset: impl FnMut() -> std::io::Result<()>,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::result::Result<(), GetError> {
        if url.starts_with("https://") {
            return Err(GetError::Fatal(
                "https mirrors are not supported (the content is verified through the signed \
                 InRelease chain, so use the http:// URL of the mirror)"
                    .into(),
            ));
        }
        let mut last = String::new();
        for attempt in 1..=self.tries {
            if attempt > 1 {
                let wait = Duration::from_secs(2u64 << (attempt - 2));
                tracing::warn!("{url}: {last}; retrying in {}s", wait.as_secs());
                std::thread::sleep(wait);
            }
            if let Err(e) = reset() {
                return Err(GetError::Fatal(e.to_string()));
            }
            match self.agent.get(url).call() {
                Ok(resp) => {
                    let mut r = resp.into_reader();
                    let mut buf = vec![0u8; 1 << 20];
                    let res: std::io::Result<()> = (|| loop {
                        let n = r.read(&mut buf)?;
                        if n == 0 {
                            return Ok(());
                        }
                        sink(&buf[..n])?;
                    })();
                    match res {
                        Ok(()) => return Ok(()),
                        Err(e) => last = format!("reading the answer: {e}"),
                    }
                }
                Err(ureq::Error::Status(404 | 410, _)) => return Err(GetError::NotFound),
                Err(ureq::Error::Status(code, r)) if code >= 500 || code == 429 => {
                    last = format!("HTTP {code} {}", r.status_text());
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(GetError::Fatal(format!("HTTP {code} {}", r.status_text())))
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(GetError::Fatal(format!(
            "{last} (gave up after {} tries)",
            self.tries
        )))
    }

    /// GET a small file into memory.
    pub fn get(&self, url: &str) -> Result<Vec<u8>> {
        let buf = std::cell::RefCell::new(Vec::new());
        self.get_with(
            url,
            || {
                buf.borrow_mut().clear();
                Ok(())
            },
            |b| {
                buf.borrow_mut().extend_from_slice(b);
                Ok(())
            },
        )
        .map_err(|e| match e {
            GetError::NotFound => Error::NotFound { url: url.into() },
            GetError::Fatal(m) => Error::Http {
                url: url.into(),
                message: m,
            },
        })?;
        Ok(buf.into_inner())
    }

    /// A file known by its sha256: from the cache, or downloaded, checked and cached. The
    /// returned path is `cache/by-hash/<sha256>/<name>`.
    pub fn get_verified(&self, url: &str, name: &str, size: u64, sha256: &str) -> Result<PathBuf> {
        let dir = self.cache.join("by-hash").join(sha256);
        let dest = dir.join(name);
        if let Ok(m) = std::fs::metadata(&dest) {
            if m.len() == size {
                let (got, _) = artifact::sha256_file(&dest)?;
                if got == sha256 {
                    tracing::debug!("{name}: cached at {}", dest.display());
                    return Ok(dest);
                }
            }
            tracing::warn!(
                "{}: cached copy is damaged; downloading again",
                dest.display()
            );
            let _ = std::fs::remove_file(&dest);
        }
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .ctx(|| format!("creating a temporary file in {}", dir.display()))?;
        let file = std::cell::RefCell::new(tmp.reopen().ctx(|| "reopening a temp file".into())?);
        let hasher = std::cell::RefCell::new((Sha256::new(), 0u64));
        tracing::info!("downloading {url}");
        self.get_with(
            url,
            || {
                use std::io::Seek;
                let mut f = file.borrow_mut();
                f.set_len(0)?;
                f.seek(std::io::SeekFrom::Start(0))?;
                *hasher.borrow_mut() = (Sha256::new(), 0);
                Ok(())
            },
            |b| {
                file.borrow_mut().write_all(b)?;
                let mut h = hasher.borrow_mut();
                h.0.update(b);
                h.1 += b.len() as u64;
                Ok(())
            },
        )
        .map_err(|e| match e {
            GetError::NotFound => Error::NotFound { url: url.into() },
            GetError::Fatal(m) => Error::Http {
                url: url.into(),
                message: m,
            },
        })?;
        let (h, n) = hasher.into_inner();
        let got = hex::encode(h.finalize());
        if got != sha256 || n != size {
            return Err(Error::HashMismatch {
                what: url.into(),
                expected: format!("sha256 {sha256}, {size} bytes"),
                got: format!("sha256 {got}, {n} bytes"),
            });
        }
        file.into_inner()
            .sync_all()
            .ctx(|| format!("syncing {}", tmp.path().display()))?;
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .ctx(|| format!("renaming into {}", dest.display()))?;
        Ok(dest)
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `gpgv --output - --keyring KEYRING FILE`: the signed text when the signature is good.
pub fn verify_inrelease(path: &Path, keyring: &Path) -> Result<String> {
    if !keyring.is_file() {
        return Err(Error::BadInput(format!(
            "keyring {} does not exist (install debian-archive-keyring)",
            keyring.display()
        )));
    }
    let out = artifact::cmd::run(
        Command::new("gpgv")
            .arg("--keyring")
            .arg(keyring)
            .args(["--output", "-"])
            .arg(path),
    )
    .map_err(|e| Error::Signature {
        what: path.display().to_string(),
        message: format!("gpgv did not accept the signature: {e}"),
    })?;
    String::from_utf8(out.stdout).map_err(|_| Error::Signature {
        what: path.display().to_string(),
        message: "signed text is not UTF-8".into(),
    })
}

/// The `SHA256` entries of a Release file: path → (sha256, size).
pub fn release_sha256(text: &str) -> Result<BTreeMap<String, (String, u64)>> {
    let stanzas = deb_repo::control::parse_stanzas(text).map_err(|e| Error::Signature {
        what: "InRelease".into(),
        message: format!("cannot parse the signed Release text: {e}"),
    })?;
    let first = stanzas.first().map(|(_, s)| s);
    let mut out = BTreeMap::new();
    if let Some(v) = first.and_then(|s| s.get("SHA256")) {
        for line in v.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [sha, size, path] = parts[..] {
                if let Ok(size) = size.parse() {
                    out.insert(path.to_string(), (sha.to_string(), size));
                }
            }
        }
    }
    Ok(out)
}

impl Index {
    /// Fetch and verify `InRelease`, then each component's `Packages.xz`.
    pub fn open(mirror: &Mirror, fetcher: &Fetcher) -> Result<Index> {
        let base = mirror.url.trim_end_matches('/');
        let dir = fetcher
            .cache_dir()
            .join("dists")
            .join(slug(base))
            .join(slug(&mirror.suite));
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let inrelease_url = format!("{base}/dists/{}/InRelease", mirror.suite);
        let saved = dir.join("InRelease");
        let text = match fetcher.get(&inrelease_url) {
            Ok(bytes) => {
                let tmp = dir.join("InRelease.new");
                std::fs::write(&tmp, &bytes).ctx(|| format!("writing {}", tmp.display()))?;
                let text = verify_inrelease(&tmp, &mirror.keyring)?;
                std::fs::rename(&tmp, &saved)
                    .ctx(|| format!("renaming into {}", saved.display()))?;
                text
            }
            Err(Error::NotFound { url }) => {
                return Err(Error::BadInput(format!(
                    "{url}: not found; is {:?} a suite of the mirror {base}?",
                    mirror.suite
                )))
            }
            Err(e) if saved.is_file() => {
                tracing::warn!(
                    "{e}; using the last verified InRelease from {}",
                    saved.display()
                );
                verify_inrelease(&saved, &mirror.keyring)?
            }
            Err(e) => return Err(e),
        };
        let inrelease_sha256 = artifact::sha256_file(&saved)?.0;
        let stanzas = deb_repo::control::parse_stanzas(&text).map_err(|e| Error::Signature {
            what: inrelease_url.clone(),
            message: format!("cannot parse: {e}"),
        })?;
        let first = stanzas.first().map(|(_, s)| s);
        let names: Vec<&str> = ["Suite", "Codename"]
            .iter()
            .filter_map(|f| first.and_then(|s| s.get(f)))
            .collect();
        if !names.contains(&mirror.suite.as_str()) {
            return Err(Error::Signature {
                what: inrelease_url,
                message: format!(
                    "signed for {} but {:?} was asked for",
                    names.join("/"),
                    mirror.suite
                ),
            });
        }
        let sums = release_sha256(&text)?;
        let mut packages = Vec::new();
        for comp in &mirror.components {
            let rel = format!("{comp}/binary-{}/Packages.xz", mirror.arch);
            let (sha, size) = sums.get(&rel).ok_or_else(|| {
                Error::BadInput(format!(
                    "{inrelease_url} lists no {rel}: is {comp:?} a component of {} with {}?",
                    mirror.suite, mirror.arch
                ))
            })?;
            let url = format!("{base}/dists/{}/{rel}", mirror.suite);
            let path = fetcher.get_verified(&url, "Packages.xz", *size, sha)?;
            let f = std::fs::File::open(&path).ctx(|| format!("opening {}", path.display()))?;
            let mut text = String::new();
            xz2::read::XzDecoder::new(std::io::BufReader::new(f))
                .read_to_string(&mut text)
                .ctx(|| format!("decompressing {}", path.display()))?;
            packages.push((comp.clone(), text));
        }
        Ok(Index {
            mirror: mirror.clone(),
            packages,
            inrelease_sha256,
        })
    }

    /// Build an index from Packages texts (tests).
    pub fn from_texts(mirror: &Mirror, packages: Vec<(String, String)>) -> Index {
        Index {
            mirror: mirror.clone(),
            packages,
            inrelease_sha256: String::new(),
        }
    }

    /// Every candidate of the named packages.
    fn candidates(&self, names: &BTreeSet<String>) -> Result<BTreeMap<String, Vec<Package>>> {
        let mut out: BTreeMap<String, Vec<Package>> = BTreeMap::new();
        for (comp, text) in &self.packages {
            for para in text.split("\n\n") {
                let para = para.trim_start_matches('\n');
                let Some(first) = para.lines().next() else {
                    continue;
                };
                let Some(name) = first.strip_prefix("Package: ") else {
                    continue;
                };
                if !names.contains(name.trim()) {
                    continue;
                }
                let stanzas = deb_repo::control::parse_stanzas(para).map_err(|e| {
                    Error::BadInput(format!("{comp} Packages, stanza of {name}: {e}"))
                })?;
                let Some((_, s)) = stanzas.into_iter().next() else {
                    continue;
                };
                let field = |f: &str| -> Result<String> {
                    s.get(f).map(str::to_string).ok_or_else(|| {
                        Error::BadInput(format!("{comp} Packages: {name} has no {f} field"))
                    })
                };
                let p = Package {
                    name: name.trim().to_string(),
                    version: field("Version")?,
                    architecture: field("Architecture")?,
                    component: comp.clone(),
                    filename: field("Filename")?,
                    size: field("Size")?.parse().map_err(|_| {
                        Error::BadInput(format!("{comp} Packages: {name} has a bad Size"))
                    })?,
                    sha256: field("SHA256")?,
                    depends: s.get("Depends").unwrap_or("").to_string(),
                };
                if p.architecture == self.mirror.arch || p.architecture == "all" {
                    out.entry(p.name.clone()).or_default().push(p);
                }
            }
        }
        Ok(out)
    }

    /// Resolve requests to packages: the newest version (or the pinned one), then, for kernel
    /// metapackages (`linux-image-arm64`, `linux-source`), the real package they depend on with
    /// the exact version they name. A package the mirror does not have is an error naming it.
    pub fn resolve(&self, requests: &[Request]) -> Result<Vec<Package>> {
        let mut want: Vec<(Request, Option<String>)> =
            requests.iter().map(|r| (r.clone(), None)).collect();
        let mut done: Vec<Package> = Vec::new();
        let mut seen = BTreeSet::new();
        while !want.is_empty() {
            let names: BTreeSet<String> = want.iter().map(|(r, _)| r.name.clone()).collect();
            let cands = self.candidates(&names)?;
            let mut next = Vec::new();
            for (req, via) in want {
                let all = cands.get(&req.name).cloned().unwrap_or_default();
                let pick = match &req.version {
                    Some(v) => all.iter().find(|p| &p.version == v).cloned(),
                    None => all
                        .iter()
                        .max_by(|a, b| version::compare(&a.version, &b.version))
                        .cloned(),
                };
                let Some(p) = pick else {
                    let have: Vec<&str> = all.iter().map(|p| p.version.as_str()).collect();
                    return Err(Error::MissingPackage {
                        name: match &req.version {
                            Some(v) => format!("{}={v}", req.name),
                            None => req.name.clone(),
                        },
                        place: format!(
                            "{} {} ({}) for {}{}{}",
                            self.mirror.url,
                            self.mirror.suite,
                            self.mirror.components.join(", "),
                            self.mirror.arch,
                            if have.is_empty() {
                                String::new()
                            } else {
                                format!("; versions there: {}", have.join(", "))
                            },
                            via.map(|v| format!("; needed by {v}")).unwrap_or_default()
                        ),
                    });
                };
                if !seen.insert(p.name.clone()) {
                    continue;
                }
                for dep in kernel_deps(&p) {
                    next.push((dep, Some(p.name.clone())));
                }
                done.push(p);
            }
            want = next;
        }
        Ok(done)
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }
}

/// The kernel packages a metapackage depends on (first alternative of each `Depends` group whose
/// name is a `linux-image-`, `linux-source-` or `linux-headers-` package), with `(= version)` kept.
fn kernel_deps(p: &Package) -> Vec<Request> {
    let mut out = Vec::new();
    for group in p.depends.split(',') {
        let first = group.split('|').next().unwrap_or("").trim();
        let (name, rest) = match first.split_once('(') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (first, None),
        };
        let name = name.split(':').next().unwrap_or(name);
        let family = ["linux-image-", "linux-source-", "linux-headers-"]
            .iter()
            .any(|f| name.starts_with(f) && p.name.starts_with(&f[..f.len() - 1]));
        if !family || name == p.name {
            continue;
        }
        let version = rest.and_then(|r| {
            let r = r.trim_end_matches(')').trim();
            r.strip_prefix('=').map(|v| v.trim().to_string())
        });
        out.push(Request {
            name: name.to_string(),
            version,
        });
    }
    out
}

/// Download resolved packages (cached by sha256) and return their paths.
pub fn download(index: &Index, fetcher: &Fetcher, pkgs: &[Package]) -> Result<Vec<PathBuf>> {
    let base = index.mirror.url.trim_end_matches('/');
    pkgs.iter()
        .map(|p| {
            let url = format!("{base}/{}", p.filename);
            fetcher
                .get_verified(&url, &p.file_name(), p.size, &p.sha256)
                .map_err(|e| match e {
                    Error::NotFound { url } => Error::MissingPackage {
                        name: format!("{}={}", p.name, p.version),
                        place: format!("{url} (listed in Packages but the file is gone)"),
                    },
                    other => other,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGES: &str = "Package: linux-image-arm64
Source: linux-signed-arm64 (6.12.107+1)
Version: 6.12.107-1
Architecture: arm64
Depends: linux-image-6.12.107+deb13-arm64 (= 6.12.107-1)
Filename: pool/main/l/linux-signed-arm64/linux-image-arm64_6.12.107-1_arm64.deb
Size: 1444
SHA256: 90a83fd1735f14840ca8805f9528f517d4fbb93e7c39c421a2e0e68a22c20067

Package: linux-image-6.12.107+deb13-arm64
Version: 6.12.107-1
Architecture: arm64
Depends: kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Filename: pool/main/l/linux-signed-arm64/linux-image-6.12.107+deb13-arm64_6.12.107-1_arm64.deb
Size: 92902468
SHA256: 20c92f3f97dd466e0400a6fcb792bde85af842fbb5e8b471370065e3de9d9fc9

Package: linux-source
Version: 6.12.94-1
Architecture: all
Depends: linux-source-6.12 (= 6.12.94-1)
Filename: pool/main/l/linux/linux-source_6.12.94-1_all.deb
Size: 1
SHA256: 00

Package: linux-source
Version: 6.12.107-1
Architecture: all
Depends: linux-source-6.12 (= 6.12.107-1)
Filename: pool/main/l/linux/linux-source_6.12.107-1_all.deb
Size: 1
SHA256: 01

Package: linux-source-6.12
Version: 6.12.94-1
Architecture: all
Depends: binutils, xz-utils
Filename: pool/main/l/linux/linux-source-6.12_6.12.94-1_all.deb
Size: 2
SHA256: 02

Package: linux-source-6.12
Version: 6.12.107-1
Architecture: all
Depends: binutils, xz-utils
Filename: pool/main/l/linux/linux-source-6.12_6.12.107-1_all.deb
Size: 3
SHA256: 03

Package: amd64-only
Version: 1
Architecture: amd64
Filename: pool/x.deb
Size: 1
SHA256: 04
";

    fn index() -> Index {
        let m = Mirror {
            url: "http://mirror.invalid/debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into()],
            arch: "arm64".into(),
            keyring: DEBIAN_KEYRING.into(),
        };
        Index::from_texts(&m, vec![("main".into(), PACKAGES.into())])
    }

    fn req(s: &str) -> Request {
        s.parse().unwrap()
    }

    #[test]
    fn metapackage_resolves_to_the_real_image() {
        let r = index().resolve(&[req("linux-image-arm64")]).unwrap();
        let names: Vec<_> = r.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["linux-image-arm64", "linux-image-6.12.107+deb13-arm64"]
        );
        assert_eq!(r[1].size, 92902468);
        assert_eq!(
            r[1].file_name(),
            "linux-image-6.12.107+deb13-arm64_6.12.107-1_arm64.deb"
        );
    }

    #[test]
    fn newest_or_pinned_version() {
        let r = index().resolve(&[req("linux-source")]).unwrap();
        assert_eq!(r[0].version, "6.12.107-1");
        assert_eq!(r[1].name, "linux-source-6.12");
        assert_eq!(r[1].version, "6.12.107-1");
        let r = index().resolve(&[req("linux-source=6.12.94-1")]).unwrap();
        assert_eq!(r[1].version, "6.12.94-1");
    }

    #[test]
    fn missing_package_is_named() {
        let e = index()
            .resolve(&[req("linux-image-arm64"), req("raspi-firmware")])
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("raspi-firmware"), "{s}");
        assert!(s.contains("trixie") && s.contains("main"), "{s}");
        let e = index().resolve(&[req("amd64-only")]).unwrap_err();
        assert!(e.to_string().contains("amd64-only"), "{e}");
        let e = index().resolve(&[req("linux-source=9.9")]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("linux-source=9.9") && s.contains("6.12.94-1"),
            "{s}"
        );
    }

    #[test]
    fn request_syntax() {
        assert_eq!(req("a=1").version.as_deref(), Some("1"));
        assert!("Bad Name".parse::<Request>().is_err());
        assert!("x=".parse::<Request>().is_err());
    }

    #[test]
    fn release_sums() {
        let text = "Origin: Debian\nSuite: stable\nCodename: trixie\nSHA256:\n 0123 42 main/binary-arm64/Packages.xz\n abcd 7 main/binary-arm64/Release\n";
        let s = release_sha256(text).unwrap();
        assert_eq!(s["main/binary-arm64/Packages.xz"], ("0123".to_string(), 42));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn bad_signature_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("InRelease");
        std::fs::write(&f, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: stable\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n").unwrap();
        if Path::new(DEBIAN_KEYRING).is_file() {
            let e = verify_inrelease(&f, Path::new(DEBIAN_KEYRING)).unwrap_err();
            assert!(e.to_string().contains("signature"), "{e}");
        }
        let e = verify_inrelease(&f, &d.path().join("nokeyring.gpg")).unwrap_err();
        assert!(e.to_string().contains("nokeyring.gpg"), "{e}");
    }
}

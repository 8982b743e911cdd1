//! The kernel artifact: `.deb`s, `report.json` + `report.txt` (container readiness), and in source
//! mode the resolved `config`. The manifest's metadata lists the kernel release and every package
//! with version and sha256.
//!
//! [`prepare`] does the work needed before the cache key is known: it fetches and verifies the
//! mirror's indices and resolves the packages (their versions and hashes are part of the key: the
//! mirror state), or fingerprints a local tree. [`Prepared`] then implements
//! [`artifact::Builder`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{FragmentCheck, KernelConfig};
use crate::mirror::{self, Fetcher, Index, Package, Request};
use crate::readiness::{self, Level, Report};
use crate::source::{self, Make};
use crate::spec::{BoardPackage, KernelSpec, Mode, Tree};
use crate::{debfile, Error, IoContext, Result};

/// Kind name in the store and manifests.
pub const KIND: &str = "kernel";

/// A spec with its inputs resolved.
#[derive(Debug)]
pub struct Prepared {
    pub spec: KernelSpec,
    fetcher: Fetcher,
    work: PathBuf,
    /// Upstream: the packages to ship; source with a Debian tree: the linux-source chain.
    pub resolved: Vec<Package>,
    index: Option<Index>,
    tree_fingerprint: Option<String>,
    tools: Vec<(String, String)>,
}

/// One package of the artifact, as recorded in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// `mirror` (fetched, checked through the signed chain) or `built` (by drydock).
    pub origin: String,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub board: String,
    pub kernel_release: String,
    /// Where the checked config came from.
    pub config: String,
    /// The level the profile requires (`null`: report only).
    pub required_level: Option<Level>,
    pub readiness: Report,
    /// Source mode: fragment options Kconfig does not know (warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragments: Option<FragmentCheck>,
}

impl KernelReport {
    /// `report.txt`.
    pub fn text(&self) -> String {
        let mut s = format!(
            "board: {}\nkernel: {}\nconfig: {}\nrequired level: {}\n\n",
            self.board,
            self.kernel_release,
            self.config,
            self.required_level.map_or("none", Level::name)
        );
        if let Some(f) = &self.fragments {
            for w in &f.unknown {
                s.push_str(&format!(
                    "warning: {}:{}: {} is not a Kconfig option of this kernel; ignored\n",
                    w.fragment, w.line, w.option
                ));
            }
            if !f.unknown.is_empty() {
                s.push('\n');
            }
        }
        s.push_str(&self.readiness.table());
        s
    }
}

/// Resolve the spec's inputs. `work` is a folder for downloads, unpacked trees and builds (the
/// store's aux folder).
pub fn prepare(spec: KernelSpec, work: &Path) -> Result<Prepared> {
    prepare_with(spec, work, Index::open)
}

/// [`prepare`] with the mirror index obtained by `open_index` (tests give a fixed index).
pub fn prepare_with(
    spec: KernelSpec,
    work: &Path,
    open_index: impl Fn(&crate::mirror::Mirror, &Fetcher) -> Result<Index>,
) -> Result<Prepared> {
    let fetcher = Fetcher::new(&work.join("mirror"))?;
    let mut tools = vec![(
        "kernel-packager".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    let (index, resolved, tree_fingerprint) = match &spec.mode {
        Mode::Upstream { packages } => {
            if packages.is_empty() {
                return Err(Error::BadInput(
                    "upstream mode needs at least one package".into(),
                ));
            }
            let index = open_index(&spec.mirror, &fetcher)?;
            let resolved = index.resolve(packages)?;
            (Some(index), resolved, None)
        }
        Mode::Source(src) => {
            if let Tree::Path(p) = &src.tree {
                source::check_tree(p)?;
            }
            let (_, cross, pkg) = source::cross(&spec.arch)?;
            let gcc = format!("{cross}gcc");
            if artifact::cmd::which(&gcc).is_none() {
                return Err(Error::BadInput(format!(
                    "{gcc} is not installed (apt-get install {pkg}; `drydock doctor` lists host tools)"
                )));
            }
            tools.push((gcc.clone(), artifact::cmd::tool_version(&gcc, pkg)));
            tools.push(("make".into(), artifact::cmd::tool_version("make", "make")));
            tools.push((
                "dpkg-buildpackage".into(),
                artifact::cmd::tool_version("dpkg-buildpackage", "dpkg-dev"),
            ));
            for f in &src.fragments {
                crate::KernelConfig::parse_fragment(&f.text, &f.name)?;
            }
            match &src.tree {
                Tree::Debian(req) => {
                    let index = open_index(&spec.mirror, &fetcher)?;
                    let resolved = index.resolve(std::slice::from_ref(req))?;
                    (Some(index), resolved, None)
                }
                Tree::Path(p) => {
                    source::check_tree(p)?;
                    (None, Vec::new(), Some(source::tree_fingerprint(p)?))
                }
            }
        }
    };
    Ok(Prepared {
        spec,
        fetcher,
        work: work.to_path_buf(),
        resolved,
        index,
        tree_fingerprint,
        tools,
    })
}

fn board_package_deb(bp: &BoardPackage, arch: &str, dir: &Path) -> Result<(PathBuf, String)> {
    use deb_repo::{DebBuilder, Stanza};
    let mut canon = String::new();
    for f in &bp.files {
        canon.push_str(&format!("{}\0{}\0{}\n", f.path, f.content, f.conffile));
    }
    let version = format!("1+{}", &artifact::sha256_bytes(canon.as_bytes())[..10]);
    let bad =
        |e: &dyn std::fmt::Display| Error::BadInput(format!("board package {}: {e}", bp.name));
    let control = Stanza::new()
        .with("Package", bp.name.as_str())
        .and_then(|s| s.with("Version", version.as_str()))
        .and_then(|s| s.with("Architecture", "all"))
        .and_then(|s| s.with("Maintainer", "drydock <drydock@localhost>"))
        .and_then(|s| s.with("Section", "kernel"))
        .and_then(|s| s.with("Priority", "optional"))
        .and_then(|s| s.with("Description", bp.description.as_str()))
        .map_err(|e| bad(&e))?;
    let _ = arch;
    let mut b = DebBuilder::new(control);
    for f in &bp.files {
        b.file(&f.path, f.content.as_bytes().to_vec(), 0o644)
            .map_err(|e| bad(&e))?;
        if f.conffile {
            b.conffile(&f.path).map_err(|e| bad(&e))?;
        }
    }
    let bytes = b.build().map_err(|e| bad(&e))?;
    let path = dir.join(b.file_name());
    artifact::fsutil::write_synced(&path, &bytes)?;
    Ok((path, version))
}

fn record(path: &Path, origin: &str) -> Result<PackageRecord> {
    let info = deb_repo::read_deb(path).map_err(|e| Error::Deb {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(PackageRecord {
        name: info.package().to_string(),
        version: info.version().to_string(),
        architecture: info.architecture().to_string(),
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: info.size,
        sha256: info.sha256.clone(),
        origin: origin.to_string(),
    })
}

/// The kernel config shipped in kernel image packages: (package file, config file, text).
fn configs_in(debs: &[PathBuf]) -> Result<Vec<(PathBuf, String, String)>> {
    let mut out = Vec::new();
    for d in debs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if !name.starts_with("linux-image-") {
            continue;
        }
        let files = debfile::read_files(d, |p| {
            p.strip_prefix("boot/config-")
                .is_some_and(|r| !r.is_empty() && !r.contains('/'))
        })?;
        for (p, data) in files {
            out.push((d.clone(), p, String::from_utf8_lossy(&data).into_owned()));
        }
    }
    Ok(out)
}

impl Prepared {
    fn mode_name(&self) -> &'static str {
        match self.spec.mode {
            Mode::Upstream { .. } => "upstream",
            Mode::Source(_) => "source",
        }
    }

    /// Copy files into the artifact folder (copies, not links: the store owns its files).
    fn copy_in(&self, from: &Path, staging: &Path) -> Result<PathBuf> {
        let name = from
            .file_name()
            .ok_or_else(|| Error::BadInput(format!("{}: not a file path", from.display())))?;
        let to = staging.join(name);
        std::fs::copy(from, &to)
            .ctx(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(to)
    }

    fn upstream(
        &self,
        staging: &Path,
    ) -> Result<(Vec<PathBuf>, String, String, KernelConfig, String)> {
        let index = self
            .index
            .as_ref()
            .ok_or_else(|| Error::BadInput("upstream mode without a mirror index".into()))?;
        let paths = mirror::download(index, &self.fetcher, &self.resolved)?;
        let mut debs = Vec::new();
        for p in &paths {
            debs.push(self.copy_in(p, staging)?);
        }
        let configs = configs_in(&debs)?;
        let (deb, file, text) = match configs.len() {
            1 => configs
                .into_iter()
                .next()
                .ok_or_else(|| Error::BadInput(String::new()))?,
            0 => {
                return Err(Error::BadInput(format!(
                    "none of the packages ({}) holds a /boot/config-*: list a kernel image package \
                     (e.g. linux-image-{}) in kernel.packages",
                    self.resolved
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.spec.arch
                )))
            }
            n => {
                return Err(Error::BadInput(format!(
                    "{n} kernel image packages with a config; pick one kernel in kernel.packages"
                )))
            }
        };
        let release = file.trim_start_matches("boot/config-").to_string();
        let origin = format!(
            "{}:/{file}",
            deb.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let cfg = KernelConfig::parse(&text, &origin)?;
        Ok((debs, release, origin, cfg, text))
    }

    /// The kernel tree of a source build: the given path, or Debian's linux-source unpacked
    /// (once, cached under the work folder by the package's sha256).
    pub fn source_tree(&self) -> Result<PathBuf> {
        let Mode::Source(src) = &self.spec.mode else {
            return Err(Error::BadInput("not a source build".into()));
        };
        match &src.tree {
            Tree::Path(p) => {
                source::check_tree(p)?;
                Ok(p.clone())
            }
            Tree::Debian(_) => {
                let index = self
                    .index
                    .as_ref()
                    .ok_or_else(|| Error::BadInput("source mode without a mirror index".into()))?;
                let pkg = self
                    .resolved
                    .iter()
                    .find(|p| {
                        p.name
                            .strip_prefix("linux-source-")
                            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                    })
                    .ok_or_else(|| {
                        Error::BadInput(format!(
                            "no linux-source-<version> package among {}",
                            self.resolved
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?
                    .clone();
                let debs = mirror::download(index, &self.fetcher, std::slice::from_ref(&pkg))?;
                let dest = self.work.join("trees").join(&pkg.sha256);
                source::unpack_linux_source(&debs[0], &dest)
            }
        }
    }

    fn source(
        &self,
        staging: &Path,
    ) -> Result<(
        Vec<PathBuf>,
        String,
        String,
        KernelConfig,
        String,
        FragmentCheck,
    )> {
        let Mode::Source(src) = &self.spec.mode else {
            return Err(Error::BadInput("not a source build".into()));
        };
        let tree = self.source_tree()?;
        let builds = self.work.join("builds");
        std::fs::create_dir_all(&builds).ctx(|| format!("creating {}", builds.display()))?;
        let work = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&builds)
            .ctx(|| format!("creating a build folder in {}", builds.display()))?;
        let (arch, cross, _) = source::cross(&self.spec.arch)?;
        let make = Make {
            tree: tree.clone(),
            obj: work.path().join("obj"),
            arch: arch.into(),
            cross_compile: cross.into(),
            localversion: format!("-drydock-{}", self.spec.board),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let configured = make.configure(&src.defconfig, &src.fragments)?;
        let version =
            source::package_version(&make.kernel_version()?, &self.spec.board, &src.fragments);
        tracing::info!(
            "compiling {} ({}), packaging as {version}",
            tree.display(),
            src.defconfig
        );
        let built = make.build_debs(&version)?;
        let release = make.kernel_release()?;
        let mut debs = Vec::new();
        for p in &built {
            debs.push(self.copy_in(p, staging)?);
        }
        let origin = format!(
            "{} {} + {}",
            tree.display(),
            src.defconfig,
            src.fragments
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        work.close().ctx(|| "removing the build folder".into())?;
        Ok((
            debs,
            release,
            origin,
            configured.config,
            configured.config_text,
            configured.fragments,
        ))
    }
}

impl artifact::Builder for Prepared {
    type Error = Error;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn cache_key(&self) -> Result<artifact::CacheKey> {
        let mut k = artifact::CacheKey::new(KIND, &self.spec);
        let resolved: Vec<String> = self
            .resolved
            .iter()
            .map(|p| format!("{}={} {}", p.name, p.version, p.sha256))
            .collect();
        k = k.input(
            "mirror-packages",
            &artifact::sha256_bytes(resolved.join("\n").as_bytes()),
        );
        if let Some(fp) = &self.tree_fingerprint {
            k = k.input("kernel-tree", fp);
        }
        for (t, v) in &self.tools {
            k = k.tool(t, v);
        }
        Ok(k)
    }

    fn build(&self, _key: &artifact::CacheKey, staging: &Path) -> Result<artifact::Manifest> {
        let (mut debs, release, origin, cfg, config_text, fragments) = match &self.spec.mode {
            Mode::Upstream { .. } => {
                let (d, r, o, c, t) = self.upstream(staging)?;
                (d, r, o, c, t, None)
            }
            Mode::Source(_) => {
                let (d, r, o, c, t, f) = self.source(staging)?;
                (d, r, o, c, t, Some(f))
            }
        };
        let mut records: Vec<PackageRecord> = Vec::new();
        for d in &debs {
            let origin = if self.resolved.iter().any(|p| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy() == p.file_name())
            }) {
                "mirror"
            } else {
                "built"
            };
            records.push(record(d, origin)?);
        }
        if let Some(bp) = &self.spec.board_package {
            let (p, _) = board_package_deb(bp, &self.spec.arch, staging)?;
            records.push(record(&p, "built")?);
            debs.push(p);
        }
        // Readiness: always reported (docker level when the profile requires none).
        let level = self.spec.readiness.unwrap_or(Level::Docker);
        let readiness = readiness::check(&cfg, level);
        let report = KernelReport {
            board: self.spec.board.clone(),
            kernel_release: release.clone(),
            config: origin,
            required_level: self.spec.readiness,
            readiness: readiness.clone(),
            fragments,
        };
        if self.spec.readiness.is_some() && !readiness.ok {
            return Err(Error::NotReady {
                level,
                config: report.config.clone(),
                missing: readiness.missing.clone(),
            });
        }
        let mut json = serde_json::to_string_pretty(&report).unwrap_or_default();
        json.push('\n');
        artifact::fsutil::write_synced(&staging.join("report.json"), json.as_bytes())?;
        artifact::fsutil::write_synced(&staging.join("report.txt"), report.text().as_bytes())?;
        if matches!(self.spec.mode, Mode::Source(_)) {
            artifact::fsutil::write_synced(
                &staging.join(format!("config-{release}")),
                config_text.as_bytes(),
            )?;
        }
        let mut m = artifact::Manifest::new(KIND, &self.spec.name, &release, &self.spec.arch, "");
        m.metadata = serde_json::json!({
            "board": self.spec.board,
            "mode": self.mode_name(),
            "kernel_release": release,
            "packages": records,
            "mirror": {
                "url": self.spec.mirror.url,
                "suite": self.spec.mirror.suite,
                "inrelease_sha256": self.index.as_ref().map(|i| i.inrelease_sha256.clone()),
            },
            "readiness": {
                "level": level,
                "required": self.spec.readiness.is_some(),
                "ok": readiness.ok,
                "missing": readiness.missing,
                "optional_missing": readiness.optional_missing,
            },
        });
        Ok(m)
    }

    fn validate(&self, entry: &artifact::Entry) -> Result<()> {
        for f in ["report.json", "report.txt"] {
            if entry.manifest.file(f).is_none() {
                return Err(Error::BadInput(format!(
                    "{}: kernel artifact without {f}",
                    entry.dir.display()
                )));
            }
        }
        for d in entry.files_ending_with(".deb") {
            deb_repo::read_deb(&d).map_err(|e| Error::Deb {
                path: d.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Prepare, look up and (on a miss) build through the store. Returns the entry and whether it
/// came from the cache.
pub fn build_in_store(
    spec: KernelSpec,
    store: &artifact::Store,
) -> Result<(artifact::Entry, bool)> {
    use artifact::Builder as _;
    let work = store.aux_dir("kernel")?;
    let prepared = prepare(spec, &work)?;
    let key = prepared.cache_key()?;
    let (entry, cached) = store.get_or_build(&key, |staging| prepared.build(&key, staging))?;
    if !cached {
        prepared.validate(&entry)?;
    }
    Ok((entry, cached))
}

/// Requests from profile strings (`name` or `name=version`).
pub fn requests(names: &[String]) -> Result<Vec<Request>> {
    names.iter().map(|n| n.parse()).collect()
}

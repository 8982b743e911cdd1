//! A tiny container image for boot tests, built here because there is no registry to pull from:
//! one layer holding a static busybox from Debian's `busybox-static` package (for the image's
//! architecture), written as a `docker save` archive that is also an OCI image layout (`docker
//! load`, `podman load` and `ctr import` all read it).
//!
//! The archive is a cached artifact (kind `test-container`): the .deb is fetched once with apt
//! (signature-checked against Debian's keyring), and the archive is byte-for-byte reproducible
//! from it. Pass it to `drydock build --preload`; `drydock boot-test` then runs
//! `docker run --rm IMAGE echo TOKEN` on the booted image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use artifact::{sha256_bytes, CacheKey, Manifest, Store};
use serde::Serialize;

use crate::profile::Profile;

/// The tag the archive loads as.
pub const IMAGE_REF: &str = "drydock/boot-test:busybox";
/// The archive's file name inside the artifact.
pub const ARCHIVE: &str = "drydock-boot-test-busybox.tar";
/// Busybox applets linked in the image's /bin.
const APPLETS: &[&str] = &["sh", "echo", "cat", "uname", "true", "sleep", "ls"];

/// What the artifact is built from.
#[derive(Debug, Clone, Serialize)]
struct Spec {
    arch: String,
    suite: String,
    mirror: String,
    package: &'static str,
    image_ref: &'static str,
    applets: &'static [&'static str],
    format: u32,
}

/// Docker/OCI architecture name for a Debian architecture.
pub fn oci_arch(debian: &str) -> Option<(&'static str, Option<&'static str>)> {
    match debian {
        "arm64" => Some(("arm64", None)),
        "armhf" => Some(("arm", Some("v7"))),
        "amd64" => Some(("amd64", None)),
        _ => None,
    }
}

/// The cached archive for a board's architecture (built on first use).
pub fn ensure(store: &Store, profile: &Profile) -> Result<PathBuf> {
    let spec = Spec {
        arch: profile.arch.clone(),
        suite: profile.rootfs.suite.clone(),
        mirror: profile.rootfs.mirror.clone(),
        package: "busybox-static",
        image_ref: IMAGE_REF,
        applets: APPLETS,
        format: 1,
    };
    if oci_arch(&spec.arch).is_none() {
        bail!("no container architecture for Debian arch {:?}", spec.arch);
    }
    let key = CacheKey::new("test-container", &spec);
    let (entry, cached) = store.get_or_build(&key, |staging| -> Result<Manifest> {
        let work = tempfile::tempdir().context("creating a temporary folder")?;
        let deb = fetch_deb(&spec, work.path())?;
        let busybox = busybox_from_deb(&deb)?;
        let version = deb_version(&deb)?;
        let archive = build_archive(&busybox, &spec.arch, &format!("busybox-static {version}"))?;
        artifact::fsutil::write_synced(&staging.join(ARCHIVE), &archive)?;
        let mut m = Manifest::new(
            "test-container",
            "boot-test-busybox",
            &version,
            &spec.arch,
            "",
        );
        m.metadata = serde_json::json!({"image": IMAGE_REF, "busybox_static": version});
        Ok(m)
    })?;
    tracing::info!(
        "{} test container {} ({})",
        if cached { "cached" } else { "built" },
        IMAGE_REF,
        entry.dir.display()
    );
    Ok(entry.path(ARCHIVE))
}

/// Download one package for `spec.arch` from `spec.mirror`/`spec.suite` with apt, using a private
/// state folder (the host's apt configuration is not touched).
fn fetch_deb(spec: &Spec, work: &Path) -> Result<PathBuf> {
    let root = work.join("apt");
    for d in ["lists/partial", "cache/archives/partial", "etc", "debs"] {
        std::fs::create_dir_all(root.join(d))
            .with_context(|| format!("creating {}", root.join(d).display()))?;
    }
    let sources = root.join("etc/sources.list");
    std::fs::write(
        &sources,
        format!(
            "deb [arch={}] {} {} main\n",
            spec.arch, spec.mirror, spec.suite
        ),
    )
    .with_context(|| format!("writing {}", sources.display()))?;
    let opts = |c: &mut Command| {
        c.arg("-q")
            .arg("-o")
            .arg(format!("Dir::State={}", root.display()))
            .arg("-o")
            .arg(format!(
                "Dir::State::Lists={}",
                root.join("lists").display()
            ))
            .arg("-o")
            .arg("Dir::State::status=/dev/null")
            .arg("-o")
            .arg(format!("Dir::Cache={}", root.join("cache").display()))
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .arg("-o")
            .arg("Dir::Etc::SourceParts=/dev/null")
            .arg("-o")
            .arg("Dir::Etc::Preferences=/dev/null")
            .arg("-o")
            .arg("Dir::Etc::PreferencesParts=/dev/null")
            .arg("-o")
            .arg(format!("APT::Architecture={}", spec.arch))
            .arg("-o")
            .arg(format!("APT::Architectures={}", spec.arch))
            .arg("-o")
            .arg("APT::Sandbox::User=root")
            .arg("-o")
            .arg("Acquire::Retries=3");
    };
    let mut update = Command::new("apt-get");
    opts(&mut update);
    update.arg("update");
    artifact::cmd::run(&mut update).context("apt-get update for the test container's busybox")?;
    let mut dl = Command::new("apt-get");
    opts(&mut dl);
    dl.arg("download")
        .arg(spec.package)
        .current_dir(root.join("debs"));
    artifact::cmd::run(&mut dl).with_context(|| format!("apt-get download {}", spec.package))?;
    let debs: Vec<PathBuf> = std::fs::read_dir(root.join("debs"))
        .context("listing downloaded packages")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    match debs.as_slice() {
        [one] => Ok(one.clone()),
        other => bail!(
            "apt-get download {} left {} .deb files",
            spec.package,
            other.len()
        ),
    }
}

fn deb_version(deb: &Path) -> Result<String> {
    let out = artifact::cmd::run(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"))?;
    Ok(out.stdout_str().trim().to_string())
}

/// `/usr/bin/busybox` (or `/bin/busybox`) from a busybox-static .deb.
pub fn busybox_from_deb(deb: &Path) -> Result<Vec<u8>> {
    let out = artifact::cmd::run(Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb))
        .with_context(|| format!("reading {}", deb.display()))?;
    let mut ar = tar::Archive::new(std::io::Cursor::new(out.stdout));
    for e in ar.entries().context("reading the package's data tarball")? {
        let mut e = e.context("reading the package's data tarball")?;
        let p = e
            .path()
            .context("a path in the data tarball")?
            .to_path_buf();
        let s = p.to_string_lossy();
        if s == "./usr/bin/busybox" || s == "./bin/busybox" {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).context("reading busybox")?;
            if !data.starts_with(b"\x7fELF") {
                bail!("{s} in {} is not an ELF binary", deb.display());
            }
            return Ok(data);
        }
    }
    bail!("{} holds no /usr/bin/busybox", deb.display())
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) -> Result<()> {
    let mut h = tar_header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
        .with_context(|| format!("adding {path} to a tar"))
}

/// The layer: /bin/busybox plus applet symlinks, /tmp.
pub fn layer_tar(busybox: &[u8]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin/", "tmp/"] {
        let mut h = tar_header(
            tar::EntryType::Directory,
            if d == "tmp/" { 0o1777 } else { 0o755 },
            0,
        );
        b.append_data(&mut h, d, std::io::empty())
            .with_context(|| format!("adding {d}"))?;
    }
    append_file(&mut b, "bin/busybox", busybox, 0o755)?;
    for a in APPLETS {
        let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")
            .with_context(|| format!("adding bin/{a}"))?;
    }
    b.into_inner().context("finishing the layer tar")
}

/// The whole archive: a docker-save `manifest.json` and an OCI layout sharing the same blobs.
pub fn build_archive(busybox: &[u8], debian_arch: &str, created_by: &str) -> Result<Vec<u8>> {
    let Some((arch, variant)) = oci_arch(debian_arch) else {
        bail!("no container architecture for Debian arch {debian_arch:?}");
    };
    let layer = layer_tar(busybox)?;
    let layer_sha = sha256_bytes(&layer);
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_sha}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": created_by}],
    });
    if let Some(v) = variant {
        config["variant"] = serde_json::Value::String(v.into());
    }
    let config = serde_json::to_vec(&config).context("rendering the image config")?;
    let config_sha = sha256_bytes(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_sha}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_sha}"), "size": layer.len()}],
    }))
    .context("rendering the OCI manifest")?;
    let manifest_sha = sha256_bytes(&manifest);
    let (repo, tag) = IMAGE_REF.rsplit_once(':').unwrap_or((IMAGE_REF, "latest"));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_sha}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": format!("docker.io/{IMAGE_REF}"),
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))
    .context("rendering index.json")?;
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{config_sha}"),
        "RepoTags": [IMAGE_REF],
        "Layers": [format!("blobs/sha256/{layer_sha}")],
    }]))
    .context("rendering manifest.json")?;
    let repositories = serde_json::to_vec(&serde_json::json!({repo: {tag: layer_sha}}))
        .context("rendering repositories")?;

    let mut b = tar::Builder::new(Vec::new());
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, d, std::io::empty())
            .with_context(|| format!("adding {d}"))?;
    }
    append_file(
        &mut b,
        &format!("blobs/sha256/{config_sha}"),
        &config,
        0o644,
    )?;
    append_file(&mut b, &format!("blobs/sha256/{layer_sha}"), &layer, 0o644)?;
    append_file(
        &mut b,
        &format!("blobs/sha256/{manifest_sha}"),
        &manifest,
        0o644,
    )?;
    append_file(&mut b, "index.json", &index, 0o644)?;
    append_file(&mut b, "manifest.json", &docker_manifest, 0o644)?;
    append_file(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    append_file(&mut b, "repositories", &repositories, 0o644)?;
    b.into_inner().context("finishing the archive")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    pub(super) fn entries(
        tar_bytes: &[u8],
    ) -> BTreeMap<String, (tar::EntryType, Vec<u8>, Option<String>)> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(tar_bytes);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            out.insert(p, (kind, d, link));
        }
        out
    }

    #[test]
    fn archive_is_consistent_docker_save_and_oci_layout() {
        let bb = b"\x7fELF fake busybox".to_vec();
        let a = build_archive(&bb, "arm64", "test").unwrap();
        assert_eq!(
            a,
            build_archive(&bb, "arm64", "test").unwrap(),
            "reproducible"
        );
        let e = entries(&a);
        let dm: serde_json::Value = serde_json::from_slice(&e["manifest.json"].1).unwrap();
        assert_eq!(dm[0]["RepoTags"][0], IMAGE_REF);
        let cfg_path = dm[0]["Config"].as_str().unwrap();
        let cfg_bytes = &e[cfg_path].1;
        assert_eq!(
            cfg_path,
            format!("blobs/sha256/{}", sha256_bytes(cfg_bytes))
        );
        let cfg: serde_json::Value = serde_json::from_slice(cfg_bytes).unwrap();
        assert_eq!(cfg["architecture"], "arm64");
        let layer_path = dm[0]["Layers"][0].as_str().unwrap();
        let layer = &e[layer_path].1;
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_bytes(layer))
        );
        // OCI side: index -> manifest -> the same config and layer.
        let idx: serde_json::Value = serde_json::from_slice(&e["index.json"].1).unwrap();
        let md = idx["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let m: serde_json::Value =
            serde_json::from_slice(&e[&format!("blobs/sha256/{md}")].1).unwrap();
        assert_eq!(
            m["config"]["digest"],
            format!("sha256:{}", sha256_bytes(cfg_bytes))
        );
        assert_eq!(m["layers"][0]["size"], layer.len());
        // The layer: busybox executable plus applet links.
        let l = entries(layer);
        assert_eq!(l["bin/busybox"].1, bb);
        assert_eq!(l["bin/echo"].0, tar::EntryType::Symlink);
        assert_eq!(l["bin/echo"].2.as_deref(), Some("busybox"));
        assert!(build_archive(&bb, "mips", "x").is_err());
    }
}

#[cfg(test)]
mod networked {
    use super::*;

    #[test]
    #[ignore = "networked e2e: run by scripts/test.sh"]
    fn builds_from_debian_busybox_static() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let p = crate::checks::testkit::rpi_profile();
        let a = ensure(&store, &p).unwrap();
        let bytes = std::fs::read(&a).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
        // A second call is a cache hit with the same bytes.
        let again = ensure(&store, &p).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), bytes);
        // The layer's busybox is a static aarch64 ELF (e_machine 183).
        let e = super::tests::entries(&bytes);
        let dm: serde_json::Value = serde_json::from_slice(&e["manifest.json"].1).unwrap();
        let layer = &e[dm[0]["Layers"][0].as_str().unwrap()].1;
        let bb = &super::tests::entries(layer)["bin/busybox"].1;
        assert_eq!(&bb[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([bb[18], bb[19]]), 183);
        assert!(bb.len() > 500_000, "{} bytes", bb.len());
    }
}

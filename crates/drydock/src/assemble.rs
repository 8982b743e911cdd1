//! The assembler's two artifacts, `system` and `image`: profile → image-assembler specs → store.
//!
//! The system key holds what the expensive package installation depends on (the three input
//! artifacts, the package lists, the partitions' PARTUUIDs and the boot settings) and nothing per
//! image; the image key holds the system's digest plus the per-image settings (hostname, seed,
//! preload archives by sha256, compression, name). So changing the hostname only redoes the cheap
//! stage, and nothing changed means two cache hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use artifact::{CacheKey, Entry, Manifest};
use image_assembler::bootcfg::{Boot, PartRef};
use image_assembler::bundle::Compression;
use image_assembler::image::{ImageInputs, ImageSpec, Preload};
use image_assembler::inputs::{Input, Repo};
use image_assembler::system::{SystemInputs, SystemSpec};

use crate::profile::{BootloaderKind, Engine, FsKind, Profile};
use crate::Ctx;

/// Bumped whenever the system stage's output changes for the same inputs (part of its key).
pub const FORMAT: u32 = 2;

/// Bumped whenever the image stage's output (the bundle, its manifest) changes for the same
/// inputs (part of its key); cheap to rebuild, so kept apart from [`FORMAT`].
pub const IMAGE_FORMAT: u32 = 4;

/// Per-image options from the command line.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    pub hostname: Option<String>,
    pub preload: Vec<PathBuf>,
    pub compression: Option<Compression>,
}

/// The seed of the disk's identifiers: the board and its layout only, never the content, so the
/// system stage (which writes the PARTUUIDs into fstab and the boot config) is reusable and the
/// image stage's fill gives the disk exactly those ids.
pub fn disk_seed(profile: &Profile) -> String {
    CacheKey::new("disk-ids", &(&profile.name, &profile.layout)).digest()
}

/// Packages of the container engine.
pub fn engine_packages(engine: Engine) -> &'static [&'static str] {
    match engine {
        // docker-cli is only a Recommends of docker.io in trixie; docker-compose is compose v2.
        Engine::Docker => &["docker.io", "docker-cli", "docker-compose"],
        Engine::Podman => &["podman", "crun"],
        Engine::None => &[],
    }
}

/// The partitions as the running system sees them, with the PARTUUIDs the disk will get.
pub fn parts(profile: &Profile, layout: &raw_image::layout::Layout) -> Result<Vec<PartRef>> {
    let ids = image_assembler::image::partuuids(layout, &disk_seed(profile));
    profile
        .layout
        .partitions
        .iter()
        .map(|p| {
            let partuuid = ids
                .iter()
                .find(|(n, _)| n == &p.name)
                .map(|(_, u)| u.clone())
                .with_context(|| format!("partition {} is not in the disk layout", p.name))?;
            Ok(PartRef {
                name: p.name.clone(),
                mount: p.mount.clone(),
                fs: match p.fs {
                    FsKind::Fat32 => "vfat".into(),
                    FsKind::Ext4 => "ext4".into(),
                    FsKind::None => "none".into(),
                },
                partuuid,
                label: p.label.clone(),
            })
        })
        .collect()
}

/// How the board boots.
pub fn boot(profile: &Profile) -> Result<Boot> {
    Ok(match profile.bootloader.kind {
        BootloaderKind::RpiFirmware => Boot::RpiFirmware {
            cmdline: profile.kernel.cmdline.clone(),
            config_txt: profile.bootloader.config_txt.clone(),
        },
        BootloaderKind::Direct => Boot::Direct {
            cmdline: profile.kernel.cmdline.clone(),
        },
        other => bail!(
            "board {}: the assembler does not support bootloader {other:?} yet (rpi-firmware and direct are supported)",
            profile.name
        ),
    })
}

/// SOURCE_DATE_EPOCH of a build: the environment's, else the rootfs artifact's (the date of the
/// Debian mirror state it was built from).
pub fn epoch(rootfs: &Entry) -> Result<i64> {
    if let Some(e) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        return Ok(e);
    }
    rootfs
        .manifest
        .metadata
        .get("source_date_epoch")
        .and_then(|v| v.as_i64())
        .with_context(|| {
            format!(
                "the rootfs artifact {} records no source_date_epoch; set SOURCE_DATE_EPOCH",
                rootfs.dir.display()
            )
        })
}

fn tool(key: CacheKey, program: &str, package: &str) -> CacheKey {
    key.tool(package, &artifact::cmd::tool_version(program, package))
}

/// The system stage's spec and inputs for a profile and its three input artifacts.
pub fn system_plan(
    profile: &Profile,
    layout: &raw_image::layout::Layout,
    rootfs: &Entry,
    kernel: &Entry,
    repo: &Entry,
    apt_cache: Option<PathBuf>,
) -> Result<(SystemSpec, SystemInputs, CacheKey)> {
    let rootfs_in = Input::open("rootfs", &rootfs.dir)?;
    let kernel_in = Input::open("kernel", &kernel.dir)?;
    let repo_in = Input::open("deb-repo", &repo.dir)?;
    let r = Repo::find(&repo_in)?;
    let component = r
        .components
        .first()
        .cloned()
        .context("the deb-repo artifact has no component")?;
    let mut mirror: Vec<String> = engine_packages(profile.rootfs.engine)
        .iter()
        .map(|s| s.to_string())
        .collect();
    for p in &profile.rootfs.image_packages {
        if !mirror.contains(p) {
            mirror.push(p.clone());
        }
    }
    let kernel_debs = kernel_in.files(".deb");
    if kernel_debs.is_empty() {
        bail!(
            "the kernel artifact {} has no .deb files",
            kernel.dir.display()
        );
    }
    let spec = SystemSpec {
        name: format!("system-{}", profile.name),
        arch: profile.arch.clone(),
        mirror_packages: mirror,
        repo_packages: r.packages(&profile.arch)?,
        repo_suite: r.suite.clone(),
        repo_component: component,
        parts: parts(profile, layout)?,
        boot: boot(profile)?,
        epoch: epoch(rootfs)?,
    };
    let inputs = SystemInputs {
        rootfs_tarball: rootfs_in.one_file(".tar.zst")?,
        kernel_dir: kernel.dir.clone(),
        kernel_debs,
        repo_dir: r.root,
        repo_key: r.key,
        apt_cache,
    };
    let mut key = CacheKey::new("system", &(&spec, FORMAT))
        .input("rootfs", rootfs.digest())
        .input("kernel", kernel.digest())
        .input("deb-repo", repo.digest());
    if let Some((qemu, _)) = crate::doctor::qemu_user(&profile.arch) {
        key = tool(key, qemu, "qemu-user-static");
    }
    key = tool(key, "tar", "tar");
    key = tool(key, "zstd", "zstd");
    Ok((spec, inputs, key))
}

/// Build (or reuse) the system artifact.
pub fn system(
    ctx: &Ctx,
    profile: &Profile,
    layout: &raw_image::layout::Layout,
    rootfs: &Entry,
    kernel: &Entry,
    repo: &Entry,
    step: &dyn Fn(&str),
) -> Result<(Entry, bool)> {
    let apt_cache = ctx
        .store
        .aux_dir(&format!("apt-archives-{}", profile.arch))?;
    let (spec, inputs, key) = system_plan(profile, layout, rootfs, kernel, repo, Some(apt_cache))?;
    tracing::debug!(spec = %serde_json::to_string(&spec).unwrap_or_default(), "system spec");
    let digests: BTreeMap<&str, String> = [
        ("rootfs", rootfs.digest().to_string()),
        ("kernel", kernel.digest().to_string()),
        ("deb-repo", repo.digest().to_string()),
    ]
    .into_iter()
    .collect();
    ctx.store.get_or_build(&key, |staging| -> Result<Manifest> {
        step("checking the input artifacts");
        for (role, e) in [("rootfs", rootfs), ("kernel", kernel), ("deb-repo", repo)] {
            Input::open(role, &e.dir)?.verify()?;
        }
        let work = work_dir(ctx)?;
        let report = image_assembler::system::build(&spec, &inputs, work.path(), staging, step)?;
        work.close()
            .context("removing the system stage's work folder")?;
        let mut m = Manifest::new(
            "system",
            &spec.name,
            env!("CARGO_PKG_VERSION"),
            &spec.arch,
            "",
        );
        m.metadata = serde_json::json!({
            "board": profile.name,
            "artifacts": digests,
            "spec": spec,
            "report": report,
        });
        Ok(m)
    })
}

/// A scratch folder on the store's file system (removed when dropped).
fn work_dir(ctx: &Ctx) -> Result<tempfile::TempDir> {
    let base = ctx.store.aux_dir("work")?;
    tempfile::Builder::new()
        .prefix("assemble-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a work folder in {}", base.display()))
}

/// The image name of a profile.
pub fn image_name(profile: &Profile) -> String {
    profile
        .outputs
        .image_name
        .clone()
        .unwrap_or_else(|| format!("drydock-{}", profile.name))
}

fn compression(profile: &Profile, opt: Option<Compression>) -> Compression {
    opt.unwrap_or(match profile.outputs.compression {
        crate::profile::Compression::Zstd => Compression::Zstd,
        crate::profile::Compression::Xz => Compression::Xz,
        crate::profile::Compression::Zip => Compression::Zip,
        crate::profile::Compression::None => Compression::None,
    })
}

/// The image stage's spec and inputs. `profile_dir` resolves the profile's relative preload paths.
pub fn image_plan(
    store: &artifact::Store,
    profile: &Profile,
    profile_dir: &Path,
    layout: &raw_image::layout::Layout,
    system: &Entry,
    opts: &ImageOptions,
) -> Result<(ImageSpec, ImageInputs, CacheKey)> {
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| profile.rootfs.hostname.clone());
    if !image_assembler::bootcfg::valid_hostname(&hostname) {
        return Err(
            crate::UsageError(format!("--hostname {hostname:?} is not a valid host name")).into(),
        );
    }
    let seed =
        crate::seed::Seed::default_for(&profile.rootfs.user, &profile.rootfs.password, &hostname)
            .map_err(|e| {
            crate::UsageError(format!(
                "board {}: the default cloud-init seed: {e}",
                profile.name
            ))
        })?;
    let seed_files: Vec<(String, String)> = seed
        .files()
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    let mut files: Vec<PathBuf> = profile
        .outputs
        .preload
        .iter()
        .map(|p| profile_dir.join(p))
        .collect();
    files.extend(opts.preload.iter().cloned());
    let mut preload = Vec::new();
    for f in &files {
        if !f.is_file() {
            return Err(crate::UsageError(format!(
                "preload archive {} does not exist",
                f.display()
            ))
            .into());
        }
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".tar") {
            return Err(crate::UsageError(format!(
                "preload archive {}: expected a .tar (docker save / OCI archive)",
                f.display()
            ))
            .into());
        }
        if preload.iter().any(|p: &Preload| p.name == name) {
            return Err(crate::UsageError(format!("two preload archives are named {name}")).into());
        }
        let (sha256, _) = artifact::sha256_file(f)?;
        preload.push(Preload { name, sha256 });
    }
    let epoch = system
        .manifest
        .metadata
        .pointer("/spec/epoch")
        .and_then(|v| v.as_i64())
        .context("the system artifact records no epoch")?;
    let spec = ImageSpec {
        image_name: image_name(profile),
        board: profile.name.clone(),
        board_description: profile.description.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname,
        root_hostname: profile.rootfs.hostname.clone(),
        seed_files,
        preload,
        compression: compression(profile, opts.compression),
        parts: parts(profile, layout)?,
        boot: boot(profile)?,
        layout: layout.clone(),
        disk_seed: disk_seed(profile),
        epoch,
    };
    let system_in = Input::open("system", &system.dir)?;
    let tree_cache = store.aux_dir(&format!("system-trees/{}", profile.name))?;
    let inputs = ImageInputs {
        system_tarball: system_in.one_file(".tar.zst")?,
        preload_files: files,
        tree_cache: Some((tree_cache, system.digest().to_string())),
    };
    let mut key = CacheKey::new(
        "image",
        &(&spec, IMAGE_FORMAT, raw_image::blank::FORMAT_REVISION),
    )
    .input("system", system.digest());
    key = tool(key, "mke2fs", "e2fsprogs");
    key = tool(key, "mkfs.vfat", "dosfstools");
    key = tool(key, "mcopy", "mtools");
    Ok((spec, inputs, key))
}

#[allow(clippy::too_many_arguments)]
/// Build (or reuse) the image artifact: the bundle. `artifacts` are the digests of every input
/// artifact, recorded in the bundle's manifest.
pub fn image(
    ctx: &Ctx,
    profile: &Profile,
    profile_dir: &Path,
    layout: &raw_image::layout::Layout,
    system: &Entry,
    artifacts: &BTreeMap<String, String>,
    opts: &ImageOptions,
    step: &dyn Fn(&str),
) -> Result<(Entry, bool)> {
    let (spec, inputs, key) = image_plan(&ctx.store, profile, profile_dir, layout, system, opts)?;
    ctx.store.get_or_build(&key, |staging| -> Result<Manifest> {
        Input::open("system", &system.dir)?.verify()?;
        let work = work_dir(ctx)?;
        let report = image_assembler::image::build(&spec, &inputs, work.path(), staging, step)?;
        work.close()
            .context("removing the image stage's work folder")?;
        let mut m = Manifest::new("image", &spec.image_name, &spec.version, &profile.arch, "");
        // The one pass over the image already hashed the .img and the compressed copy; the
        // store hashes only the files not listed here (reading 2 GB twice was a third of the
        // stage).
        m.files.push(artifact::manifest::FileEntry {
            path: report.image.clone(),
            size: report.image_size,
            sha256: report.image_sha256.clone(),
        });
        if let (Some(c), Some(size), Some(sha)) = (
            &report.compressed,
            report.compressed_size,
            &report.compressed_sha256,
        ) {
            m.files.push(artifact::manifest::FileEntry {
                path: c.clone(),
                size,
                sha256: sha.clone(),
            });
        }
        let mut all = artifacts.clone();
        all.insert("system".into(), system.digest().to_string());
        m.metadata = serde_json::json!({
            "board": profile.name,
            "version": spec.version,
            "hostname": spec.hostname,
            "compression": spec.compression,
            "artifacts": all,
            "preload": spec.preload,
            "image": report.image,
            "image-sha256": report.image_sha256,
            "image-size": report.image_size,
            "mapped-bytes": report.mapped_bytes,
            "compressed": report.compressed,
            "bmap": report.bmap,
            "sbom": report.sbom,
            "partitions": report.partitions,
            "timings": report.timings,
            "packages": report.packages,
        });
        Ok(m)
    })
}

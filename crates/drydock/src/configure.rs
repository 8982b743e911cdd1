//! `drydock configure`: per-device settings written into an image's boot partition — the
//! cloud-init NoCloud seed and extra files — without mounting and without root (mtools at the
//! partition's offset, through `raw_image::fat`).
//!
//! The boot partition is the FAT partition the board profile mounts at `/boot/firmware` (profile
//! from `--board` or the manifest.json beside the image), else the first FAT partition.
//!
//! After editing a regular image file, the bundle beside it stays consistent: a `.bmap` is
//! regenerated (its ranges and checksums changed with the FAT) and the `SHA256SUMS` lines of the
//! rewritten files are updated. `manifest.json` is left alone: it records the image as built.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use raw_image::inspect::{PartInfo, PartType};
use tempfile::NamedTempFile;

use crate::cli::{ConfigureArgs, Settings};
use crate::imagefile::{self, Format};
use crate::profile::Profile;
use crate::seed::{self, secrets, validate, Changes, Seed, StaticIp, Wifi};
use crate::{Ctx, UsageError};

/// A file to copy onto the boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    pub src: PathBuf,
    /// Path on the partition, without a leading `/`; ending in `/` for a folder.
    pub dest: String,
}

/// Validated settings, ready to apply to any number of images.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Everything but the password hash (made per image, with a fresh salt).
    pub changes: Changes,
    password: Option<String>,
    pub files: Vec<FileCopy>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.password.is_none() && self.files.is_empty()
    }

    /// The changes for one image (hostname override for `--count`), the password hashed with a
    /// fresh random salt.
    pub fn changes_for(&self, hostname: Option<String>) -> Result<Changes> {
        let mut c = self.changes.clone();
        if hostname.is_some() {
            c.hostname = hostname;
        }
        if let Some(p) = &self.password {
            c.password_hash = Some(if secrets::looks_hashed(p) {
                p.clone()
            } else {
                let salt = secrets::random_salt().map_err(|e| anyhow!(e))?;
                secrets::sha512_crypt(p, &salt).map_err(|e| anyhow!(e))?
            });
        }
        Ok(c)
    }
}

fn usage(msg: String) -> anyhow::Error {
    UsageError(msg).into()
}

/// Check every setting and read the files they name; errors name the option and the value.
pub fn plan_from_settings(s: &Settings) -> Result<Plan> {
    let v = |r: Result<String, String>| r.map_err(usage);
    let mut c = Changes {
        hostname: s
            .hostname
            .as_deref()
            .map(validate::hostname)
            .transpose()
            .map_err(usage)?,
        user: s
            .user
            .as_deref()
            .map(validate::username)
            .transpose()
            .map_err(usage)?,
        ..Default::default()
    };
    if let Some(p) = &s.password {
        validate::password(p).map_err(usage)?;
    }
    if !s.ssh_key.is_empty() {
        let mut keys = Vec::new();
        for f in &s.ssh_key {
            let text = std::fs::read_to_string(f)
                .map_err(|e| usage(format!("--ssh-key {}: {e}", f.display())))?;
            keys.extend(
                validate::ssh_keys(&format!("--ssh-key {}", f.display()), &text).map_err(usage)?,
            );
        }
        keys.dedup();
        c.ssh_keys = Some(keys);
    }
    if let Some(ssid) = &s.wifi_ssid {
        let ssid = v(validate::ssid(ssid))?;
        let psk = match &s.wifi_psk {
            None => None,
            Some(p) => {
                validate::wifi_psk(p).map_err(usage)?;
                Some(
                    if p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                        p.to_ascii_lowercase()
                    } else {
                        secrets::wpa_psk(&ssid, p)
                    },
                )
            }
        };
        c.wifi = Some(Wifi { ssid, psk });
    }
    c.wifi_country = s
        .wifi_country
        .as_deref()
        .map(validate::country)
        .transpose()
        .map_err(usage)?;
    if let Some(ip) = &s.static_ip {
        let (addr, prefix) = validate::cidr(ip).map_err(usage)?;
        let gateway = s
            .gateway
            .as_deref()
            .map(|g| validate::ip("--gateway", g, Some(addr)))
            .transpose()
            .map_err(usage)?;
        let dns = s
            .dns
            .iter()
            .map(|d| validate::ip("--dns", d, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?;
        c.static_ip = Some(StaticIp {
            addr,
            prefix,
            gateway,
            dns,
        });
    }
    c.timezone = s
        .timezone
        .as_deref()
        .map(validate::timezone)
        .transpose()
        .map_err(usage)?;
    c.locale = s
        .locale
        .as_deref()
        .map(validate::locale)
        .transpose()
        .map_err(usage)?;
    if let Some(f) = &s.user_data {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("--user-data {}: {e}", f.display())))?;
        validate::user_data(&format!("--user-data {}", f.display()), &text).map_err(usage)?;
        c.user_data = Some(text);
    }
    let files = s
        .file
        .iter()
        .map(|spec| parse_file_spec(spec))
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        changes: c,
        password: s.password.clone(),
        files,
    })
}

/// `SRC:DEST`, split at the last colon (FAT names cannot hold one).
pub fn parse_file_spec(spec: &str) -> Result<FileCopy> {
    let Some((src, dest)) = spec.rsplit_once(':') else {
        return Err(usage(format!(
            "--file {spec:?}: expected SRC:DEST (DEST is a path on the boot partition)"
        )));
    };
    let src = PathBuf::from(src);
    if !src.is_file() {
        return Err(usage(format!(
            "--file {spec:?}: {} is not a readable file",
            src.display()
        )));
    }
    let trimmed = dest.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(usage(format!("--file {spec:?}: DEST is empty")));
    }
    if trimmed.split('/').any(|p| {
        p == ".." || p == "." || p.chars().any(|c| "\\*?<>|\"".contains(c) || c.is_control())
    }) {
        return Err(usage(format!(
            "--file {spec:?}: DEST {dest:?} has a character or a `.`/`..` part FAT cannot hold"
        )));
    }
    if trimmed.eq_ignore_ascii_case(seed::USER_DATA) {
        return Err(usage(format!(
            "--file {spec:?}: use --user-data for user-data (it is validated and merged)"
        )));
    }
    Ok(FileCopy {
        src,
        dest: trimmed.to_string(),
    })
}

/// The board profile of an image: `--board`, else the board named by manifest.json beside it.
pub fn image_profile(image: &Path, board: Option<&str>) -> Result<Option<Profile>> {
    if let Some(b) = board {
        return Ok(Some(crate::profile::load(b)?));
    }
    let manifest = image
        .parent()
        .unwrap_or(Path::new("."))
        .join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(None);
    };
    let bundle = crate::checks::subject::Bundle {
        manifest: Some(serde_json::from_str(&text).map_err(|e| e.to_string())),
        ..Default::default()
    };
    let Some(name) = crate::checks::bundle::manifest_board(&bundle) else {
        return Ok(None);
    };
    match crate::profile::load(&name) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::warn!(
                "{} names board {name:?}, which cannot be loaded ({e}); using the first FAT partition",
                manifest.display()
            );
            Ok(None)
        }
    }
}

/// Whether a FAT file system starts at `offset` (boot sector signature and BPB).
pub fn is_fat(target: &Path, offset: u64) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(target).with_context(|| format!("opening {}", target.display()))?;
    let mut s = [0u8; 512];
    match f.read_exact_at(&mut s, offset) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => {
            return Err(e).with_context(|| format!("reading {} at byte {offset}", target.display()))
        }
    }
    let bps = u16::from_le_bytes([s[11], s[12]]);
    Ok(s[510] == 0x55
        && s[511] == 0xAA
        && matches!(bps, 512 | 1024 | 2048 | 4096)
        && s[13] != 0
        && (&s[54..57] == b"FAT" || &s[82..85] == b"FAT"))
}

/// The boot partition: with a profile, the partition it mounts at /boot/firmware (which must be
/// FAT); otherwise the first FAT partition.
pub fn boot_partition(target: &Path, profile: Option<&Profile>) -> Result<PartInfo> {
    let table = raw_image::inspect::read_table(target)
        .with_context(|| format!("reading the partition table of {}", target.display()))?;
    if let Some(p) = profile {
        if let Some(i) = p
            .layout
            .partitions
            .iter()
            .position(|x| x.mount.as_deref() == Some("/boot/firmware"))
        {
            let index = i as u32 + 1;
            let part = table.partition(index).ok_or_else(|| {
                anyhow!(
                    "{}: board {} puts /boot/firmware on partition {index}, but the image has no partition {index}",
                    target.display(),
                    p.name
                )
            })?;
            if !is_fat(target, part.start_bytes)? {
                bail!(
                    "{}: partition {index} (board {}'s /boot/firmware) is not a FAT file system",
                    target.display(),
                    p.name
                );
            }
            return Ok(part.clone());
        }
    }
    for part in &table.partitions {
        if matches!(part.part_type, PartType::Mbr(0x05 | 0x0f | 0x85)) {
            continue;
        }
        if is_fat(target, part.start_bytes)? {
            return Ok(part.clone());
        }
    }
    bail!(
        "{}: no FAT partition found (partitions: {}); drydock writes the seed onto the FAT boot partition",
        target.display(),
        table
            .partitions
            .iter()
            .map(|p| format!("{} at {}", p.index, crate::cache_cmd_human(p.start_bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What [`apply_to`] did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub partition: PartInfo,
    /// Seed files written (unchanged files are not rewritten).
    pub written: Vec<&'static str>,
    /// `--file` destinations.
    pub copied: Vec<String>,
}

/// Read the seed from a FAT.
pub fn read_seed(fat: &raw_image::fat::Fat) -> Result<Seed> {
    let mut texts = Vec::new();
    for name in [seed::USER_DATA, seed::META_DATA, seed::NETWORK_CONFIG] {
        let t = if fat.exists(name)? {
            let bytes = fat.read(name)?;
            Some(String::from_utf8(bytes).map_err(|_| {
                anyhow!("{name} on the boot partition is not UTF-8 text; drydock cannot edit it")
            })?)
        } else {
            None
        };
        texts.push(t);
    }
    let mut it = texts.into_iter();
    Ok(Seed::from_files(
        it.next().flatten(),
        it.next().flatten(),
        it.next().flatten(),
    ))
}

/// Apply settings to the boot partition of a raw image file or a block device: copy the files,
/// then merge the settings into the seed and write the seed files that changed.
pub fn apply_to(
    target: &Path,
    profile: Option<&Profile>,
    changes: &Changes,
    files: &[FileCopy],
) -> Result<Applied> {
    let part = boot_partition(target, profile)?;
    let fat = raw_image::fat::Fat::new(target, part.start_bytes);
    let mut copied = Vec::new();
    for f in files {
        fat.write_from(&f.dest, &f.src).with_context(|| {
            format!(
                "copying {} to {} on the boot partition",
                f.src.display(),
                f.dest
            )
        })?;
        copied.push(f.dest.clone());
    }
    let mut seed = read_seed(&fat)?;
    seed.apply(changes).map_err(|e| match e {
        seed::SeedError::Setting(m) => usage(m),
        other => anyhow!(other),
    })?;
    let mut written = Vec::new();
    for (name, text) in seed.changed_files() {
        fat.write(name, text.as_bytes())
            .with_context(|| format!("writing {name} on the boot partition"))?;
        written.push(name);
    }
    Ok(Applied {
        partition: part,
        written,
        copied,
    })
}

/// `x.img` → `x-3.img`, `x.img.zst` → `x-3.img.zst`.
pub fn numbered_name(name: &str, n: u32) -> String {
    for suffix in [".img.zst", ".img.xz", ".img", ".zst"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            if !stem.is_empty() {
                return format!("{stem}-{n}{suffix}");
            }
        }
    }
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}-{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{n}"),
    }
}

/// `node-{n}` → `node-7`; `{n:03}` pads.
pub fn expand_pattern(pattern: &str, n: u32) -> Result<String> {
    let mut out = String::new();
    let mut rest = pattern;
    let mut found = false;
    while let Some(i) = rest.find("{n") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let close = after
            .find('}')
            .ok_or_else(|| usage(format!("--hostname-pattern {pattern:?}: unclosed {{n")))?;
        let spec = &after[..close];
        let width: usize = match spec.strip_prefix(":0") {
            Some(w) => w.parse().map_err(|_| {
                usage(format!(
                    "--hostname-pattern {pattern:?}: {{n{spec}}} is not {{n}} or {{n:0W}}"
                ))
            })?,
            None if spec.is_empty() => 0,
            None => {
                return Err(usage(format!(
                    "--hostname-pattern {pattern:?}: {{n{spec}}} is not {{n}} or {{n:0W}}"
                )))
            }
        };
        out.push_str(&format!("{n:0width$}"));
        rest = &after[close + 1..];
        found = true;
    }
    out.push_str(rest);
    if !found {
        return Err(usage(format!(
            "--hostname-pattern {pattern:?} has no {{n}}: every copy would get the same name"
        )));
    }
    validate::hostname(&out).map_err(|e| usage(format!("--hostname-pattern {pattern:?}: {e}")))
}

/// The bundle files beside an image that follow it: its `.bmap` and `SHA256SUMS`.
struct Beside {
    bmap: Option<PathBuf>,
    sums: Option<PathBuf>,
}

fn beside(image: &Path) -> Beside {
    let sums = image.with_file_name("SHA256SUMS");
    Beside {
        bmap: imagefile::find_bmap(image),
        sums: sums.is_file().then_some(sums),
    }
}

/// The bmap name for `new_image`, formed the way `bmap` is named for `image`.
fn bmap_name_for(image: &Path, bmap: &Path, new_image: &str) -> String {
    let img = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let b = bmap
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = b.strip_suffix(".bmap").unwrap_or(&b);
    let stripped = img.strip_prefix(prefix).unwrap_or("");
    let new_prefix = new_image.strip_suffix(stripped).unwrap_or(new_image);
    format!("{new_prefix}.bmap")
}

/// Update (or, with `add`, insert) lines of a SHA256SUMS file, atomically.
fn update_sums(sums: &Path, entries: &[(String, String)], add: bool) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(sums).with_context(|| format!("reading {}", sums.display()))?;
    let mut list =
        image_assembler::sums::parse(&text).map_err(|e| anyhow!("{}: {e}", sums.display()))?;
    let mut touched = Vec::new();
    for (name, sha) in entries {
        match list.iter_mut().find(|(n, _)| n == name) {
            Some(e) if e.1 != *sha => {
                e.1 = sha.clone();
                touched.push(name.clone());
            }
            Some(_) => {}
            None if add => {
                list.push((name.clone(), sha.clone()));
                touched.push(name.clone());
            }
            None => {}
        }
    }
    if !touched.is_empty() {
        write_keep_mode(sums, sums, image_assembler::sums::render(&list).as_bytes())?;
    }
    Ok(touched)
}

/// The permission bits a rewritten file gets: those of the file it replaces, else those of
/// `like` (the image), else 0644. (Temporary files are created 0600.)
fn mode_for(path: &Path, like: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(like))
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the permissions of {}", path.display()))
}

/// Replace a file's content atomically, keeping its permissions.
fn write_keep_mode(path: &Path, like: &Path, data: &[u8]) -> Result<()> {
    let mode = mode_for(path, like);
    artifact::fsutil::write_atomic(path, data)?;
    set_mode(path, mode)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn temp_beside(path: &Path, what: &str) -> Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(&format!(".tmp-configure-{what}-"))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Bring a configured raw image's bundle files up to date. `raw` is the edited raw image,
/// `published` the file that now holds it (the raw image itself or its `.img.zst`), `zst_tmp` the
/// compressed copy to write when the published file is a `.img.zst`.
fn finish_bundle(
    original: &Path,
    raw: &Path,
    published: &Path,
    zst_tmp: Option<NamedTempFile>,
    b: &Beside,
    add_to_sums: bool,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let need_scan = zst_tmp.is_some() || b.bmap.is_some() || b.sums.is_some();
    if !need_scan {
        return Ok(notes);
    }
    use image_assembler::bundle::{scan, threads, Compression};
    let scan = match &zst_tmp {
        Some(t) => scan(raw, Some((Compression::Zstd, t.path())), threads()),
        None => scan(raw, None, threads()),
    }
    .with_context(|| format!("hashing {}", raw.display()))?;
    if let Some(t) = zst_tmp {
        let mode = mode_for(published, original);
        set_mode(t.path(), mode)?;
        t.persist(published)
            .map_err(|e| e.error)
            .with_context(|| format!("replacing {}", published.display()))?;
        if let Some(dir) = published.parent().filter(|p| !p.as_os_str().is_empty()) {
            artifact::fsutil::sync_dir(dir)?;
        }
    }
    let mut sums = Vec::new();
    let pub_name = file_name(published);
    if let Some(bm) = &b.bmap {
        let text = image_assembler::bmap::render(&scan.bmap)?;
        let path = bm.with_file_name(bmap_name_for(original, bm, &pub_name));
        write_keep_mode(&path, bm, text.as_bytes())?;
        notes.push(format!("wrote {}", path.display()));
        sums.push((file_name(&path), artifact::sha256_bytes(text.as_bytes())));
    }
    if let Some(s) = &b.sums {
        let sha = if published == raw {
            scan.sha256.clone()
        } else {
            artifact::sha256_file(published)?.0
        };
        sums.insert(0, (pub_name, sha));
        let touched = update_sums(s, &sums, add_to_sums)?;
        if !touched.is_empty() {
            notes.push(format!("updated {} ({})", s.display(), touched.join(", ")));
        }
    }
    Ok(notes)
}

fn report(target: &Path, a: &Applied) {
    let mut what = Vec::new();
    if !a.written.is_empty() {
        what.push(format!("wrote {}", a.written.join(", ")));
    }
    if !a.copied.is_empty() {
        what.push(format!("copied {}", a.copied.join(", ")));
    }
    if what.is_empty() {
        what.push("nothing changed".into());
    }
    println!(
        "configured {} (boot partition {} at {}): {}",
        target.display(),
        a.partition.index,
        crate::cache_cmd_human(a.partition.start_bytes),
        what.join("; ")
    );
}

/// Configure a block device (a flashed card): refused while it is in use.
fn configure_device(args: &ConfigureArgs, plan: &Plan, profile: Option<&Profile>) -> Result<()> {
    if let crate::blockdev::Target::Block(d) = crate::blockdev::inspect(&args.image)? {
        if let Some(why) = crate::blockdev::in_use(&d) {
            return Err(usage(why));
        }
    }
    let a = apply_to(&args.image, profile, &plan.changes_for(None)?, &plan.files)?;
    std::fs::File::open(&args.image)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", args.image.display()))?;
    report(&args.image, &a);
    Ok(())
}

pub fn run(_ctx: &Ctx, args: ConfigureArgs) -> Result<ExitCode> {
    let plan = plan_from_settings(&args.settings)?;
    if plan.is_empty() && args.count.is_none() {
        return Err(usage(
            "nothing to configure: give at least one setting (see drydock configure --help)".into(),
        ));
    }
    let image = &args.image;
    let meta = std::fs::metadata(image).map_err(|e| usage(format!("{}: {e}", image.display())))?;
    let profile = image_profile(image, args.board.as_deref())?;
    use std::os::unix::fs::FileTypeExt;
    if meta.file_type().is_block_device() {
        if args.count.is_some() {
            return Err(usage(
                "--count stamps copies of an image file, not of a device".into(),
            ));
        }
        configure_device(&args, &plan, profile.as_ref())?;
        return Ok(ExitCode::SUCCESS);
    }
    if !meta.is_file() {
        return Err(usage(format!("{} is not an image file", image.display())));
    }
    let format = imagefile::detect(image)?;
    if !matches!(format, Format::Raw | Format::Zstd) {
        return Err(usage(format!(
            "{}: a {} image; configure edits .img and .img.zst (decompress it first)",
            image.display(),
            format.name()
        )));
    }
    let b = beside(image);

    // The raw image to start from: the file itself, or a sparse copy decompressed beside it.
    let base_tmp = if format == Format::Zstd {
        let t = temp_beside(image, "raw")?;
        let src = imagefile::open(image)?;
        imagefile::decompress_sparse(src.reader, t.path())
            .with_context(|| format!("decompressing {}", image.display()))?;
        Some(t)
    } else {
        None
    };

    match (args.count, &args.hostname_pattern) {
        (Some(n), Some(pattern)) => {
            let names = (1..=n)
                .map(|i| expand_pattern(pattern, i))
                .collect::<Result<Vec<_>>>()?;
            let src_raw = base_tmp.as_ref().map(|t| t.path()).unwrap_or(image);
            for (i, hostname) in names.into_iter().enumerate() {
                let n = i as u32 + 1;
                let dest = image.with_file_name(numbered_name(&file_name(image), n));
                let raw = temp_beside(image, "copy")?;
                artifact::fsutil::copy_sparse(src_raw, raw.path())?;
                let a = apply_to(
                    raw.path(),
                    profile.as_ref(),
                    &plan.changes_for(Some(hostname.clone()))?,
                    &plan.files,
                )?;
                let notes = if format == Format::Zstd {
                    let zst = temp_beside(image, "zst")?;
                    finish_bundle(image, raw.path(), &dest, Some(zst), &b, true)?
                } else {
                    finish_bundle_after_persist(image, raw, &dest, &b)?
                };
                report(&dest, &a);
                for note in notes {
                    println!("  {note}");
                }
            }
        }
        _ => {
            let (raw, zst) = match &base_tmp {
                Some(t) => (t.path().to_path_buf(), Some(temp_beside(image, "zst")?)),
                None => (image.clone(), None),
            };
            let a = apply_to(
                &raw,
                profile.as_ref(),
                &plan.changes_for(None)?,
                &plan.files,
            )?;
            if zst.is_none() {
                std::fs::File::open(&raw)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("syncing {}", raw.display()))?;
            }
            let notes = if a.written.is_empty() && a.copied.is_empty() {
                Vec::new()
            } else {
                finish_bundle(image, &raw, image, zst, &b, false)?
            };
            report(image, &a);
            for note in notes {
                println!("  {note}");
            }
            // The other form of the same image (x.img <-> x.img.zst) was not changed.
            let name = file_name(image);
            let siblings = match name.strip_suffix(".zst") {
                Some(raw_name) => vec![raw_name.to_string()],
                None => vec![format!("{name}.zst"), format!("{name}.xz")],
            };
            for sibling in siblings {
                let p = image.with_file_name(&sibling);
                if p.is_file() && !(a.written.is_empty() && a.copied.is_empty()) {
                    eprintln!(
                        "note: {} beside it still holds the image as it was{}; configure it too before flashing it",
                        p.display(),
                        if b.bmap.is_some() {
                            " (and the bmap now describes the configured one)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// For a raw copy: move the configured temp file into place, then update the bundle files.
fn finish_bundle_after_persist(
    image: &Path,
    raw: NamedTempFile,
    dest: &Path,
    b: &Beside,
) -> Result<Vec<String>> {
    raw.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", raw.path().display()))?;
    set_mode(raw.path(), mode_for(dest, image))?;
    raw.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", dest.display()))?;
    finish_bundle(image, dest, dest, None, b, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert_eq!(numbered_name("x.img", 3), "x-3.img");
        assert_eq!(numbered_name("rpi-1.2.img.zst", 3), "rpi-1.2-3.img.zst");
        assert_eq!(numbered_name("disk.raw", 1), "disk-1.raw");
        assert_eq!(expand_pattern("node-{n}", 7).unwrap(), "node-7");
        assert_eq!(expand_pattern("n{n:03}x", 7).unwrap(), "n007x");
        assert!(expand_pattern("node", 1).is_err());
        assert!(expand_pattern("node-{n", 1).is_err());
        assert!(expand_pattern("node_{n}", 1).is_err());
        assert_eq!(
            bmap_name_for(
                Path::new("d/x.img.zst"),
                Path::new("d/x.img.bmap"),
                "x-1.img.zst"
            ),
            "x-1.img.bmap"
        );
        assert_eq!(
            bmap_name_for(Path::new("d/x.img"), Path::new("d/x.bmap"), "x-2.img"),
            "x-2.bmap"
        );
    }

    #[test]
    fn file_specs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.txt");
        std::fs::write(&src, "x").unwrap();
        let s = src.display();
        assert_eq!(
            parse_file_spec(&format!("{s}:/overlays/a.txt"))
                .unwrap()
                .dest,
            "overlays/a.txt"
        );
        assert!(parse_file_spec(&format!("{s}")).is_err());
        assert!(parse_file_spec(&format!("{s}:../x")).is_err());
        assert!(parse_file_spec(&format!("{s}:user-data")).is_err());
        assert!(parse_file_spec("/no/such:x").is_err());
    }

    #[test]
    fn plans_validate_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pub");
        std::fs::write(
            &key,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIl6dB2C1cjHcFkvu5dbYF3bG+3QdTk1ZCvo1WOt3Rcq u@h\n",
        )
        .unwrap();
        let s = Settings {
            hostname: Some("pi".into()),
            password: Some("secret".into()),
            ssh_key: vec![key],
            wifi_ssid: Some("home".into()),
            wifi_psk: Some("password123".into()),
            ..Default::default()
        };
        let p = plan_from_settings(&s).unwrap();
        let c = p.changes_for(None).unwrap();
        let h = c.password_hash.unwrap();
        assert!(h.starts_with("$6$"));
        assert_ne!(
            h,
            p.changes_for(None).unwrap().password_hash.unwrap(),
            "fresh salt"
        );
        assert_eq!(
            c.wifi.unwrap().psk.unwrap(),
            secrets::wpa_psk("home", "password123")
        );
        let bad = Settings {
            static_ip: Some("10.0.0.5/24".into()),
            gateway: Some("fe80::1".into()),
            ..Default::default()
        };
        let e = plan_from_settings(&bad).unwrap_err();
        assert_eq!(crate::exit_code(&e), 2, "{e}");
    }
}

//! Board profiles: `boards/*.yaml`, parsed strictly into typed profiles.
//!
//! Every error names the file, the line and column where serde_yaml saw it, and the field. Unknown
//! keys are errors. After parsing, [`Profile::validate`] checks values that the types cannot (an arch
//! no builder supports, a FAT label that is too long, ...) and points at the line of the field.
//!
//! Builders never see these types: the orchestrator converts a profile into each builder's spec.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::size::Size;

/// Architectures the builders support.
pub const ARCHES: &[&str] = &["arm64", "armhf", "amd64"];

/// A board profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// Short name, equal to the file name without `.yaml`.
    pub name: String,
    /// One line for `drydock boards`.
    pub description: String,
    /// Debian architecture of the image.
    pub arch: String,
    pub kernel: Kernel,
    pub bootloader: Bootloader,
    pub layout: Layout,
    pub rootfs: Rootfs,
    #[serde(default)]
    pub outputs: Outputs,
    /// How to boot the image under QEMU for tests, where QEMU can.
    #[serde(default)]
    pub qemu: Option<Qemu>,
}

/// Which kernel the image gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kernel {
    pub mode: KernelMode,
    /// `upstream`: Debian packages to take from the mirror (kernel, firmware).
    #[serde(default)]
    pub packages: Vec<String>,
    /// `source`: the kernel tree and config.
    #[serde(default)]
    pub source: Option<KernelSource>,
    /// Device trees the board's models need, relative to the kernel's dtb folder.
    #[serde(default)]
    pub dtbs: Vec<String>,
    /// Kernel command-line arguments (root= is added by the assembler).
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Container-readiness level the kernel config must meet.
    #[serde(default)]
    pub readiness: Readiness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelMode {
    Upstream,
    Source,
}

/// A kernel built from source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelSource {
    /// `debian` (Debian's linux-source package) or a path to a kernel tree.
    #[serde(default = "default_tree")]
    pub tree: String,
    /// Base configuration target: `defconfig`, `tinyconfig`, `allnoconfig`, ...
    #[serde(default = "default_defconfig")]
    pub defconfig: String,
    /// Config fragments: a name shipped with drydock (`containers`) or a path.
    #[serde(default)]
    pub fragments: Vec<String>,
}

fn default_tree() -> String {
    "debian".into()
}
fn default_defconfig() -> String {
    "defconfig".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    None,
    #[default]
    Docker,
    Kubernetes,
    Podman,
}

/// How the board boots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bootloader {
    pub kind: BootloaderKind,
    /// Extra lines for the Raspberry Pi `config.txt`.
    #[serde(default)]
    pub config_txt: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootloaderKind {
    /// Raspberry Pi GPU firmware (start*.elf, config.txt) loading the kernel from the FAT partition.
    RpiFirmware,
    /// u-boot blob(s) at fixed offsets (see `layout.blobs`).
    Uboot,
    /// UEFI (EFI system partition with GRUB or systemd-boot).
    Efi,
    /// No bootloader: the VM loads kernel and initrd directly.
    Direct,
}

/// The partition layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layout {
    pub table: TableKind,
    #[serde(default = "default_align")]
    pub align: Size,
    /// Total disk size; absent means the sum of the partitions.
    #[serde(default)]
    pub disk_size: Option<Size>,
    pub partitions: Vec<Partition>,
    #[serde(default)]
    pub blobs: Vec<Blob>,
}

fn default_align() -> Size {
    Size(1 << 20)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    Mbr,
    Gpt,
    /// GPT plus a hybrid MBR mirroring the first partitions.
    HybridMbr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Partition {
    /// Identifier used by the assembler (`boot`, `root`, `root-b`, `data`).
    pub name: String,
    /// Filesystem label (FAT: at most 11 characters).
    #[serde(default)]
    pub label: Option<String>,
    pub fs: FsKind,
    /// `256MiB`, `rest` (the rest of the disk) or `fit` (content plus headroom).
    pub size: PartSize,
    /// Free space added to a `fit` partition.
    #[serde(default)]
    pub headroom: Option<Size>,
    #[serde(default)]
    pub bootable: bool,
    /// GPT partition type GUID or a short name (`esp`, `linux`, `linux-root-arm64`).
    #[serde(default)]
    pub gpt_type: Option<String>,
    /// MBR partition type byte, e.g. `0x0c` (FAT32 LBA) or `0x83` (Linux).
    #[serde(default)]
    pub mbr_type: Option<String>,
    /// Where the assembler mounts it in the running system (`/`, `/boot/firmware`, `/data`).
    #[serde(default)]
    pub mount: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsKind {
    Fat32,
    Ext4,
    None,
}

/// A partition size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSize {
    Fixed(Size),
    Rest,
    Fit,
}

impl Serialize for PartSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PartSize::Fixed(sz) => sz.serialize(s),
            PartSize::Rest => s.serialize_str("rest"),
            PartSize::Fit => s.serialize_str("fit"),
        }
    }
}

impl<'de> Deserialize<'de> for PartSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(PartSize::Fixed(Size(n))),
            Raw::S(s) if s == "rest" => Ok(PartSize::Rest),
            Raw::S(s) if s == "fit" => Ok(PartSize::Fit),
            Raw::S(s) => Size::parse(&s)
                .map(PartSize::Fixed)
                .map_err(|e| serde::de::Error::custom(format!("{e}, or `rest`, or `fit`"))),
        }
    }
}

/// A raw blob written at a fixed byte offset (u-boot, bl1...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Blob {
    pub name: String,
    /// File inside the kernel artifact or a Debian package path (`u-boot-sunxi:/usr/lib/...`).
    pub file: String,
    pub offset: Size,
    /// Largest size allowed (checked).
    #[serde(default)]
    pub max_size: Option<Size>,
}

/// The root filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rootfs {
    #[serde(default = "default_suite")]
    pub suite: String,
    #[serde(default = "default_mirror")]
    pub mirror: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// mmdebstrap variant (`minbase`, `important`, `apt`...).
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Packages installed in the base rootfs artifact.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Packages installed by the assembler (next to the kernel and the engine).
    #[serde(default)]
    pub image_packages: Vec<String>,
    #[serde(default)]
    pub engine: Engine,
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default = "default_password")]
    pub password: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

fn default_suite() -> String {
    "trixie".into()
}
fn default_mirror() -> String {
    "http://deb.debian.org/debian".into()
}
fn default_components() -> Vec<String> {
    vec!["main".into()]
}
fn default_variant() -> String {
    "minbase".into()
}
fn default_hostname() -> String {
    "black-pearl".into()
}
fn default_user() -> String {
    "pirate".into()
}
fn default_password() -> String {
    "hypriot".into()
}
fn default_locale() -> String {
    "en_US.UTF-8".into()
}
fn default_timezone() -> String {
    "Etc/UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    #[default]
    Docker,
    Podman,
    None,
}

/// What the bundle contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Outputs {
    /// Base name of the image files; default `drydock-<board>`.
    #[serde(default)]
    pub image_name: Option<String>,
    #[serde(default)]
    pub compression: Compression,
    /// Container image archives (docker save / OCI) to preload, paths relative to the profile.
    #[serde(default)]
    pub preload: Vec<String>,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            image_name: None,
            compression: Compression::default(),
            preload: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    #[default]
    Zstd,
    Xz,
    Zip,
    None,
}

/// How to boot the image under QEMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Qemu {
    /// `virt` or `raspi3b`.
    pub machine: String,
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default = "default_memory")]
    pub memory: Size,
    /// `direct` (kernel + initrd from the image), `uefi` or `firmware`.
    #[serde(default = "default_qemu_boot")]
    pub boot: String,
    /// Device tree inside the kernel's dtb folder, for machines that need one.
    #[serde(default)]
    pub dtb: Option<String>,
    /// Serial console device the kernel uses (`ttyAMA0`, `ttyS1`).
    #[serde(default = "default_console")]
    pub console: String,
    /// Network device model (`virtio-net-pci`, `usb-net`).
    #[serde(default)]
    pub net: Option<String>,
    /// Disk size for boot tests (a power of two on raspi).
    #[serde(default = "default_disk")]
    pub disk_size: Size,
    /// The name the guest gives QEMU's network device, when it is not the `eth0` the image's
    /// network-config expects (raspi3b's `usb-net` is a USB CDC device: `usb0`). boot-test's
    /// seed then does DHCP on it.
    #[serde(default)]
    pub interface: Option<String>,
}

fn default_memory() -> Size {
    Size(1 << 30)
}
fn default_qemu_boot() -> String {
    "direct".into()
}
fn default_console() -> String {
    "ttyAMA0".into()
}
fn default_disk() -> Size {
    Size(4 << 30)
}

/// A profile load error: always names the file; line, column and field when known.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}{}: {message}", fmt_loc(*.line, *.column))]
    Invalid {
        path: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("unknown board {name:?}: known boards are {known} (or give a path to a profile file)")]
    UnknownBoard { name: String, known: String },
}

fn fmt_loc(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// The folder holding the shipped profiles: `$DRYDOCK_BOARDS_DIR`, else `boards/` next to the
/// workspace (for `cargo run` and tests), else `/usr/share/drydock/boards`.
pub fn boards_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("DRYDOCK_BOARDS_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards");
    if here.is_dir() {
        return here;
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1) {
            let b = anc.join("boards");
            if b.join("rpi-arm64.yaml").is_file() {
                return b;
            }
        }
    }
    PathBuf::from("/usr/share/drydock/boards")
}

/// Names of the shipped boards, sorted.
pub fn known_boards() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(boards_dir())
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".yaml").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Resolve a board name or a path to a profile file.
pub fn resolve(board: &str) -> Result<PathBuf, ProfileError> {
    let as_path = Path::new(board);
    if board.contains('/') || board.ends_with(".yaml") || board.ends_with(".yml") {
        return Ok(as_path.to_path_buf());
    }
    let p = boards_dir().join(format!("{board}.yaml"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(ProfileError::UnknownBoard {
            name: board.into(),
            known: known_boards().join(", "),
        })
    }
}

/// Load a board by name or path.
pub fn load(board: &str) -> Result<Profile, ProfileError> {
    let path = resolve(board)?;
    load_file(&path)
}

/// Load and validate a profile file.
pub fn load_file(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parse and validate profile text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
    let profile: Profile = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        // The location is already in the prefix; drop serde_yaml's own " at line N column M".
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        ProfileError::Invalid {
            path: origin.into(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message,
        }
    })?;
    profile.validate(text, origin)?;
    Ok(profile)
}

/// Find the 1-based line and column of `key:` in the text (the first occurrence after the line of
/// `after`, if given), for errors found after parsing.
fn locate(text: &str, key: &str, nth: usize) -> (Option<usize>, Option<usize>) {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed.starts_with(&format!("{key}:")) {
            if seen == nth {
                let col = line.find(key).map(|c| c + 1);
                return (Some(i + 1), col);
            }
            seen += 1;
        }
    }
    (None, None)
}

impl Profile {
    /// Checks the types cannot express. Errors point at the field's line.
    pub fn validate(&self, text: &str, origin: &str) -> Result<(), ProfileError> {
        let err = |key: &str, nth: usize, message: String| {
            let (line, column) = locate(text, key, nth);
            ProfileError::Invalid {
                path: origin.into(),
                line,
                column,
                message,
            }
        };
        if !ARCHES.contains(&self.arch.as_str()) {
            return Err(err(
                "arch",
                0,
                format!(
                    "arch: {:?} is not supported by any builder (supported: {})",
                    self.arch,
                    ARCHES.join(", ")
                ),
            ));
        }
        if let Some(i) = self.qemu.as_ref().and_then(|q| q.interface.as_deref()) {
            if i.is_empty()
                || i.len() > 15
                || !i
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    "interface",
                    0,
                    format!("qemu.interface: {i:?} is not a network interface name (1-15 letters, digits, - or _)"),
                ));
            }
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "name",
                0,
                format!("name: {:?} must be letters, digits, '-' or '_'", self.name),
            ));
        }
        match self.kernel.mode {
            KernelMode::Upstream if self.kernel.packages.is_empty() => {
                return Err(err(
                    "mode",
                    0,
                    "kernel.packages: upstream mode needs at least one package".into(),
                ))
            }
            KernelMode::Source if self.kernel.source.is_none() => {
                return Err(err(
                    "mode",
                    0,
                    "kernel.source: source mode needs a `source:` section".into(),
                ))
            }
            _ => {}
        }
        if self.layout.partitions.is_empty() {
            return Err(err(
                "partitions",
                0,
                "layout.partitions: at least one partition is needed".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.layout.partitions.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return Err(err(
                    "name",
                    i + 1,
                    format!("layout.partitions[{i}].name: {:?} is used twice", p.name),
                ));
            }
            if let (FsKind::Fat32, Some(l)) = (p.fs, &p.label) {
                if l.len() > 11 {
                    return Err(err(
                        "label",
                        i,
                        format!(
                            "layout.partitions[{i}].label: FAT label {l:?} of partition {:?} has {} characters; at most 11 fit",
                            p.name,
                            l.len()
                        ),
                    ));
                }
            }
        }
        if !self.layout.align.0.is_power_of_two() || self.layout.align.0 < 512 {
            return Err(err(
                "align",
                0,
                format!(
                    "layout.align: {} must be a power of two of at least 512 bytes",
                    self.layout.align
                ),
            ));
        }
        if !self
            .layout
            .partitions
            .iter()
            .any(|p| p.mount.as_deref() == Some("/"))
        {
            return Err(err(
                "partitions",
                0,
                "layout.partitions: one partition must have `mount: /`".into(),
            ));
        }
        if !matches!(
            self.rootfs.suite.as_str(),
            "trixie" | "bookworm" | "forky" | "sid"
        ) {
            return Err(err(
                "suite",
                0,
                format!(
                    "rootfs.suite: {:?} is not supported (supported: trixie, bookworm, forky, sid)",
                    self.rootfs.suite
                ),
            ));
        }
        Ok(())
    }

    /// The bundle's base name.
    pub fn image_name(&self) -> String {
        self.outputs
            .image_name
            .clone()
            .unwrap_or_else(|| format!("drydock-{}", self.name))
    }

    /// The partition mounted at `/`.
    pub fn root_partition(&self) -> Option<&Partition> {
        self.layout
            .partitions
            .iter()
            .find(|p| p.mount.as_deref() == Some("/"))
    }
}

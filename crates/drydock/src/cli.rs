//! The command line: one enum per subcommand level, one options struct per leaf.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// drydock builds bootable, Docker-ready SD-card images for ARM boards.
///
/// A board profile (boards/*.yaml, or a path to one) is turned into four artifacts — a Debian root
/// filesystem, the kernel as .debs, a signed APT repository of drydock's own packages and a
/// partitioned raw image — each cached by the digest of its inputs, then assembled into an image
/// bundle (.img, .img.zst, .bmap, SHA256SUMS, manifest.json, SPDX SBOM). No loop devices, no mounts.
///
/// Start with `drydock doctor` to check the host, then `drydock build`.
#[derive(Debug, Parser)]
#[command(
    name = "drydock",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Artifact cache folder [default: $XDG_CACHE_HOME/drydock or ~/.cache/drydock].
    #[arg(long, global = true, env = "DRYDOCK_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// More log output (-v: host tool commands; -vv: everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image bundle for a board (default: rpi-arm64), reusing cached artifacts.
    ///
    /// Checks the host first (as `drydock doctor`), then builds through the cache: the rootfs,
    /// kernel, deb-repo and raw-image artifacts in parallel; the system (kernel, container engine,
    /// cloud-init and drydock's packages installed in a qemu-user chroot: the long step); the
    /// image (hostname, cloud-init seed, preloads, partitions filled, compressed, block map,
    /// SBOM). Only what changed is rebuilt: a new --hostname redoes the image step alone. The
    /// bundle is copied to --out, SHA256SUMS last. Needs root (the chroot's mounts live in a
    /// private mount namespace).
    Build(BuildArgs),
    /// Build one artifact of a board's pipeline on its own.
    BuildArtifact(BuildArtifactArgs),
    /// Run static checks on an image file (no mount, no root).
    ///
    /// Reads the partition table, the FAT boot partition (mtools) and the ext4 root (debugfs) at
    /// their offsets and checks, grouped: partition table and filesystems (types, alignment,
    /// labels, UUIDs, fsck), boot files (firmware, kernel, initrd, every dtb of the board,
    /// config.txt, cmdline.txt), kernel and modules with the container-readiness report, the
    /// container engine, users and security, the cloud-init seed, os-release, fstab and cmdline
    /// against the PARTUUIDs, and the bundle beside the image (manifest.json, SBOM, SHA256SUMS,
    /// .bmap) against the image's dpkg status. Exit 0 when every check passes, 1 naming each
    /// failed check and what it found.
    Test(TestArgs),
    /// Boot a copy of an image under QEMU and check it over SSH.
    ///
    /// Copies the image (sparse) into a work folder, grows it to the board's qemu.disk-size,
    /// writes a fresh SSH key and a test hostname into the copy's cloud-init seed, and boots it
    /// with qemu-system-aarch64 on the machine the profile names (raspi3b, virt), the serial
    /// console logged to WORK/serial.log and SSH forwarded to a free 127.0.0.1 port. Then checks:
    /// systemd reaches `running` (failed units named), hostname, root filesystem grown to the disk,
    /// host keys and machine-id generated, the running kernel's container readiness, `docker info`
    /// (overlay2, cgroup driver), and the boot-test busybox container runs (preloaded, or loaded
    /// over SSH). Prints the time to login, to docker ready and in total; on failure the tail of
    /// the serial log. The serial log is kept; the disk copy is removed.
    BootTest(BootTestArgs),
    /// Write per-device settings (cloud-init seed) into an image's boot partition.
    Configure(ConfigureArgs),
    /// Write an image to an SD card or file, only mapped blocks, verified.
    Flash(FlashArgs),
    /// Check a kernel config (or kernel .deb) for what containers need.
    KernelCheck(KernelCheckArgs),
    /// Check the host tools a build needs and say how to install what is missing.
    Doctor(DoctorArgs),
    /// List the board profiles, or show one resolved.
    Boards(BoardsArgs),
    /// Inspect and maintain the artifact cache.
    Cache(CacheArgs),
}

/// Where artifacts and bundles are written besides the cache.
#[derive(Debug, Args, Clone)]
pub struct OutArgs {
    /// Folder the artifact or bundle is copied to.
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Board name (see `drydock boards`) or path to a profile file.
    #[arg(default_value = "rpi-arm64", value_name = "BOARD")]
    pub board: String,
    #[command(flatten)]
    pub out: OutArgs,
    /// Container image archive (docker save / OCI) to load at first boot; repeatable.
    #[arg(long, value_name = "FILE.tar")]
    pub preload: Vec<PathBuf>,
    /// Compression of the image copy (default: the profile's, zstd).
    #[arg(long, value_enum)]
    pub compress: Option<CompressArg>,
    /// Hostname baked into the default seed.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Print the summary as one JSON object on stdout (steps, cache hits, bundle files).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressArg {
    Zstd,
    Xz,
    Zip,
    None,
}

#[derive(Debug, Args)]
pub struct BuildArtifactArgs {
    /// Which artifact.
    #[arg(value_enum)]
    pub kind: ArtifactKind,
    /// Board name or path to a profile file.
    #[arg(long, default_value = "rpi-arm64", value_name = "BOARD")]
    pub board: String,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArtifactKind {
    /// Debian root filesystem tarball (rootfs-builder).
    Rootfs,
    /// Kernel and firmware .debs plus the container-readiness report (kernel-packager).
    Kernel,
    /// Signed APT repository of drydock's own packages (deb-repo).
    DebRepo,
    /// Partitioned blank image (raw-image).
    RawImage,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Image file (.img).
    pub image: PathBuf,
    /// Board the image was built for (default: read from the bundle's manifest.json, else rpi-arm64).
    #[arg(long)]
    pub board: Option<String>,
    /// One JSON object per check on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BootTestArgs {
    /// Image file (.img).
    pub image: PathBuf,
    /// Board profile naming the QEMU machine (default: read from the bundle's manifest.json,
    /// else rpi-arm64).
    #[arg(long)]
    pub board: Option<String>,
    /// One JSON object per check on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seconds allowed to reach SSH login (software emulation: raspi3b needs minutes). A console
    /// message that rules out booting (kernel panic, root device missing) fails earlier.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Folder for the serial log and the working copy [default: beside the image].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// Per-device settings written into the cloud-init NoCloud seed (user-data, meta-data,
/// network-config on the boot partition). Settings not given keep the value the image has.
#[derive(Debug, Args, Clone, Default)]
pub struct Settings {
    /// Hostname of the device (a dotted name also sets the FQDN).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Login user: renames the image's user (default pirate), or creates it.
    #[arg(long)]
    pub user: Option<String>,
    /// Password for the user, stored as a SHA-512 crypt hash ($6$, random salt), never in
    /// plain text; a crypt hash given here is stored as is. Not expired at first login.
    #[arg(long)]
    pub password: Option<String>,
    /// SSH public key file (authorized_keys format) for the user; repeatable. Replaces the keys
    /// the image has.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
    /// Wi-Fi network name (network-config `wifis`, interface wlan0).
    #[arg(long)]
    pub wifi_ssid: Option<String>,
    /// Wi-Fi passphrase (8-63 characters) or 64-hex-digit PSK; stored as the PSK, as
    /// wpa_passphrase computes it. Without it the network is open.
    #[arg(long, requires = "wifi_ssid")]
    pub wifi_psk: Option<String>,
    /// Wi-Fi regulatory country (two letters, e.g. DE).
    #[arg(long)]
    pub wifi_country: Option<String>,
    /// Static address on the wired interface, ADDR/PREFIX (e.g. 192.168.1.50/24); turns DHCP off.
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub static_ip: Option<String>,
    /// Gateway for --static-ip.
    #[arg(long, requires = "static_ip")]
    pub gateway: Option<String>,
    /// DNS server for --static-ip; repeatable.
    #[arg(long, requires = "static_ip")]
    pub dns: Vec<String>,
    /// Timezone, e.g. Europe/Berlin.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Locale, e.g. de_DE.UTF-8.
    #[arg(long)]
    pub locale: Option<String>,
    /// Use this file as user-data: it must start with `#cloud-config` and be a YAML mapping.
    /// The other settings are merged into it.
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// Copy a file onto the boot partition, SRC:DEST (DEST relative to the partition's root;
    /// a DEST ending in / is a folder); repeatable.
    #[arg(long, value_name = "SRC:DEST")]
    pub file: Vec<String>,
}

/// Write per-device settings into an image, in place: no mount, no root. `.img` is edited in
/// place; `.img.zst` is decompressed beside, edited and recompressed, then replaces the original.
/// A `.bmap` beside the image is regenerated, and `SHA256SUMS` lines for the rewritten files are
/// updated (the manifest.json keeps the digests of the image as built).
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// Image file (.img or .img.zst), or a flashed card's block device.
    pub image: PathBuf,
    #[command(flatten)]
    pub settings: Settings,
    /// Stamp N copies (IMAGE-1.img ... IMAGE-N.img) with --hostname-pattern; the image itself is
    /// left as it is.
    #[arg(long, requires = "hostname_pattern", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub count: Option<u32>,
    /// Hostname pattern for --count: `{n}` is replaced by 1..N (`{n:03}` pads with zeros).
    #[arg(long, requires = "count", conflicts_with = "hostname")]
    pub hostname_pattern: Option<String>,
    /// Board the image was built for, to find its boot partition (default: the board in
    /// manifest.json beside the image, else the first FAT partition).
    #[arg(long)]
    pub board: Option<String>,
}

/// Write an image to a card or a file: only the mapped blocks when a `.bmap` is found beside the
/// image (`IMAGE.bmap`, or with extensions stripped), then read them back and check their sha256.
/// Refuses a device that is mounted, holds the running system, is used by swap/LVM/RAID, is not
/// removable (USB, SD/MMC, the kernel's removable flag, or a loop device; else only with
/// --force-non-removable) or is smaller than the image. Without --device, lists the removable
/// drives.
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// Image (.img, .img.zst, .img.xz or .zip); a .bmap beside it is used.
    pub image: PathBuf,
    /// Target block device or regular file; without it, candidate drives are listed.
    #[arg(long)]
    pub device: Option<PathBuf>,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Allow a device the kernel does not call removable (and that is not USB, SD/MMC or a loop
    /// device), e.g. an internal disk.
    #[arg(long)]
    pub force_non_removable: bool,
    /// Block map to use instead of the one beside the image.
    #[arg(long, conflicts_with = "no_bmap")]
    pub bmap: Option<PathBuf>,
    /// Ignore the block map and write the whole image.
    #[arg(long)]
    pub no_bmap: bool,
    /// Skip the read-back verification.
    #[arg(long)]
    pub no_verify: bool,
    /// Board the image was built for, to find its boot partition when settings are given.
    #[arg(long)]
    pub board: Option<String>,
    /// A JSON summary on stdout (bytes written, mapped, verified, seconds).
    #[arg(long)]
    pub json: bool,
    /// Settings applied to the written copy's boot partition after it is verified.
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Args)]
pub struct KernelCheckArgs {
    /// A kernel .config file or a kernel .deb (its /boot/config-* is read).
    pub file: PathBuf,
    /// Level that must be met.
    #[arg(long, value_enum, default_value = "docker")]
    pub level: LevelArg,
    /// JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LevelArg {
    Docker,
    Kubernetes,
    Podman,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Board whose build is checked.
    #[arg(long, default_value = "rpi-arm64")]
    pub board: String,
    /// Also check the tools `boot-test` needs.
    #[arg(long)]
    pub boot_test: bool,
}

#[derive(Debug, Args)]
pub struct BoardsArgs {
    #[command(subcommand)]
    pub command: Option<BoardsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum BoardsCommand {
    /// List the shipped boards (the default).
    List,
    /// Print a resolved profile.
    Show {
        /// Board name or path to a profile file.
        name: String,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cached artifacts.
    Ls {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every cached file; quarantine corrupt entries (exit 1 when any was found).
    Verify,
    /// Remove abandoned builds, quarantined entries and old versions.
    Gc {
        /// How many most recently used entries of each artifact name to keep.
        #[arg(long, default_value_t = 2)]
        keep: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_checked_invocations() {
        for args in [
            vec!["drydock", "build"],
            vec!["drydock", "build", "rpi-arm64", "--out", "d"],
            vec![
                "drydock",
                "build-artifact",
                "rootfs",
                "--board",
                "rpi-arm64",
                "--out",
                "d",
            ],
            vec![
                "drydock",
                "build-artifact",
                "raw-image",
                "--board",
                "rpi-arm64",
                "--out",
                "d",
            ],
            vec![
                "drydock",
                "build-artifact",
                "kernel",
                "--board",
                "rpi-arm64",
                "--out",
                "d",
            ],
            vec!["drydock", "kernel-check", "f", "--level", "kubernetes"],
            vec!["drydock", "test", "x.img", "--board", "rpi-arm64", "--json"],
            vec!["drydock", "boot-test", "x.img", "--board", "qemu-arm64"],
            vec![
                "drydock",
                "configure",
                "x.img",
                "--hostname",
                "n",
                "--ssh-key",
                "k.pub",
            ],
            vec![
                "drydock",
                "flash",
                "x.img",
                "--device",
                "/dev/null",
                "--yes",
            ],
            vec!["drydock", "boards", "show", "rpi-arm64", "--json"],
            vec!["drydock", "cache", "gc", "--keep", "1"],
        ] {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}

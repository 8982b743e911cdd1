//! The files that tie the system to its disk and board: fstab, the Raspberry Pi firmware settings
//! (`/etc/default/raspi-firmware*`, read by raspi-firmware's kernel and initramfs hooks when they
//! generate `config.txt` and `cmdline.txt`), a direct-boot `cmdline.txt`, `/etc/hostname`,
//! `/etc/hosts`, `/etc/os-release` and cloud-init's datasource settings. All pure text functions.

use serde::{Deserialize, Serialize};

/// A partition as the running system sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Layout name (`boot`, `root`).
    pub name: String,
    /// Mount point, if the partition is mounted.
    pub mount: Option<String>,
    /// `ext4` or `vfat`.
    pub fs: String,
    /// Partition UUID (`1234abcd-02` on MBR, a GUID on GPT).
    pub partuuid: String,
    /// Filesystem label.
    pub label: Option<String>,
}

/// How the board boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "kind"
)]
pub enum Boot {
    /// Raspberry Pi firmware; raspi-firmware's hooks populate /boot/firmware.
    RpiFirmware {
        /// Kernel command line tokens from the profile (`console=` tokens become CONSOLES).
        cmdline: Vec<String>,
        /// Lines for config.txt.
        config_txt: Vec<String>,
    },
    /// The VM or a later boot stage loads `vmlinuz` and `initrd.img` from the boot partition with
    /// the `cmdline.txt` beside them.
    Direct { cmdline: Vec<String> },
}

impl Boot {
    pub fn cmdline(&self) -> &[String] {
        match self {
            Boot::RpiFirmware { cmdline, .. } | Boot::Direct { cmdline } => cmdline,
        }
    }
}

/// The partition mounted at `/`.
pub fn root_part(parts: &[PartRef]) -> Option<&PartRef> {
    parts.iter().find(|p| p.mount.as_deref() == Some("/"))
}

/// `/etc/fstab` by PARTUUID: root first (fsck pass 1), then the others by mount point (pass 2).
pub fn fstab(parts: &[PartRef]) -> String {
    let mut s = String::from(
        "# /etc/fstab: written by drydock. Partitions are named by PARTUUID, which the image keeps\n\
         # when it is copied to a card; the root partition grows to the card on first boot.\n\
         # <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\n",
    );
    let mut mounted: Vec<&PartRef> = parts.iter().filter(|p| p.mount.is_some()).collect();
    mounted.sort_by_key(|p| (p.mount.as_deref() != Some("/"), p.mount.clone()));
    for p in mounted {
        let mp = p.mount.as_deref().unwrap_or("/");
        let (opts, pass) = match (p.fs.as_str(), mp) {
            (_, "/") => ("defaults,noatime,errors=remount-ro", 1),
            ("vfat", _) => ("defaults,noatime,umask=0077", 2),
            _ => ("defaults,noatime", 2),
        };
        s.push_str(&format!(
            "PARTUUID={}\t{}\t{}\t{}\t0\t{}\n",
            p.partuuid, mp, p.fs, opts, pass
        ));
    }
    s
}

/// `/etc/default/raspi-firmware` (ROOTPART by PARTUUID, CONSOLES from the profile's `console=`
/// arguments, no cma=), read by raspi-firmware's hooks when they generate `cmdline.txt` and
/// `config.txt`. Written before the kernel is installed, so the one initramfs run generates the
/// right boot files; the file is a conffile of raspi-firmware, and dpkg keeps ours. The profile's
/// other kernel arguments and config.txt lines come with the kernel artifact's board package
/// (`/etc/default/raspi-extra-cmdline`, `/etc/default/raspi-firmware-custom`).
pub fn raspi_firmware_default(root: &PartRef, cmdline: &[String]) -> String {
    let consoles: Vec<&str> = cmdline
        .iter()
        .filter_map(|t| t.strip_prefix("console="))
        .collect();
    let consoles = if consoles.is_empty() {
        "auto".to_string()
    } else {
        consoles.join(" ")
    };
    format!(
        "# Written by drydock: raspi-firmware's hooks read this when they regenerate\n\
         # /boot/firmware/cmdline.txt and config.txt (kernel upgrades, update-initramfs).\n\
         ROOTPART=PARTUUID={}\n\
         CONSOLES=\"{consoles}\"\n\
         # No cma= argument: the device tree's default pool works on every supported model\n\
         # (the hook's cma=64M must not be used on a Pi 4, and this image boots both).\n\
         CMA=0\n",
        root.partuuid
    )
}

/// Check the `cmdline.txt` and `config.txt` raspi-firmware generated: root by PARTUUID, every
/// profile token, the profile's config.txt lines, and `kernel=`/`initramfs` naming files that are
/// present in the boot folder listing `boot_files`. Returns the problems (empty when right).
pub fn check_rpi_boot(
    cmdline_txt: &str,
    config_txt: &str,
    root: &PartRef,
    cmdline: &[String],
    config_lines: &[String],
    boot_files: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let tokens: Vec<&str> = cmdline_txt.split_whitespace().collect();
    let want_root = format!("root=PARTUUID={}", root.partuuid);
    if !tokens.contains(&want_root.as_str()) {
        problems.push(format!(
            "cmdline.txt has no {want_root}: {}",
            cmdline_txt.trim()
        ));
    }
    for t in cmdline {
        if !tokens.contains(&t.as_str()) {
            problems.push(format!("cmdline.txt lacks {t}"));
        }
    }
    let lines: Vec<&str> = config_txt.lines().map(str::trim).collect();
    for l in config_lines {
        if !lines.contains(&l.as_str()) {
            problems.push(format!("config.txt lacks {l}"));
        }
    }
    for (key, sep) in [("kernel", '='), ("initramfs", ' ')] {
        match lines
            .iter()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(sep)))
        {
            Some(f) => {
                let f = f.split_whitespace().next().unwrap_or("");
                if !boot_files.iter().any(|b| b == f) {
                    problems.push(format!(
                        "config.txt names {key} {f}, which is not on the boot partition"
                    ));
                }
            }
            None => problems.push(format!("config.txt has no {key} line")),
        }
    }
    problems
}

/// `cmdline.txt` for direct boot: root by PARTUUID, read-write, `net.ifnames=0` (the wired
/// interface is `eth0`, as on the Pi, where raspi-firmware's hook adds it, so one default
/// network-config fits every board), then the profile's tokens.
pub fn direct_cmdline(root: &PartRef, cmdline: &[String]) -> String {
    let mut t = vec![
        format!("root=PARTUUID={}", root.partuuid),
        "rootfstype=ext4".into(),
        "rw".into(),
        "net.ifnames=0".into(),
    ];
    t.extend(cmdline.iter().filter(|c| !c.starts_with("root=")).cloned());
    format!("{}\n", t.join(" "))
}

/// `/etc/hosts` for a hostname.
pub fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n\n\
         # The following lines are desirable for IPv6 capable hosts\n\
         ::1\t\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
}

/// Whether a string is a valid hostname (RFC 1123 labels, at most 63 characters for a single
/// label as cloud-init and systemd expect).
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What `/etc/os-release` says about the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `drydock-rpi-arm64`.
    pub image_id: String,
    pub image_version: String,
    pub board: String,
    pub board_description: String,
}

fn quote(v: &str) -> String {
    format!(
        "\"{}\"",
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('`', "\\`")
    )
}

/// Rewrite Debian's os-release: keep its fields, set PRETTY_NAME to name the image, and add
/// IMAGE_ID, IMAGE_VERSION, VARIANT, VARIANT_ID and DRYDOCK_BOARD.
pub fn os_release(base: &str, o: &OsRelease) -> String {
    let ours = [
        "PRETTY_NAME",
        "IMAGE_ID",
        "IMAGE_VERSION",
        "VARIANT",
        "VARIANT_ID",
        "DRYDOCK_BOARD",
    ];
    let mut debian_pretty = String::from("Debian GNU/Linux");
    let mut out = String::new();
    for line in base.lines() {
        let key = line.split('=').next().unwrap_or("");
        if key == "PRETTY_NAME" {
            let v = line[key.len() + 1..].trim_matches('"');
            // Our own PRETTY_NAME wraps Debian's in parentheses: unwrap it (idempotence).
            debian_pretty = match (v.strip_prefix("drydock "), v.find('('), v.rfind(')')) {
                (Some(_), Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
                _ => v.to_string(),
            };
        }
        if ours.contains(&key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let variant_id: String = o
        .board
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "PRETTY_NAME={}\n{out}IMAGE_ID={}\nIMAGE_VERSION={}\nVARIANT={}\nVARIANT_ID={variant_id}\nDRYDOCK_BOARD={}\n",
        quote(&format!("drydock {} for {} ({debian_pretty})", o.image_version, o.board)),
        quote(&o.image_id),
        quote(&o.image_version),
        quote(&o.board_description),
        quote(&o.board),
    )
}

/// cloud-init settings: read the NoCloud seed (user-data, meta-data, network-config) from the
/// filesystem labelled `boot_label` — cloud-init finds and mounts it itself, early enough for
/// network-config, so it does not depend on /boot/firmware being mounted yet — and fall back to
/// `None` (no seed: the image's defaults apply).
pub fn cloud_cfg(boot_label: &str) -> String {
    format!(
        "# Written by drydock: first-boot settings come from the boot partition\n\
         # (user-data, meta-data, network-config), NoCloud format.\n\
         datasource_list: [NoCloud, None]\n\
         datasource:\n  NoCloud:\n    fs_label: {boot_label}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Vec<PartRef> {
        vec![
            PartRef {
                name: "boot".into(),
                mount: Some("/boot/firmware".into()),
                fs: "vfat".into(),
                partuuid: "1a2b3c4d-01".into(),
                label: Some("RASPIFIRM".into()),
            },
            PartRef {
                name: "root".into(),
                mount: Some("/".into()),
                fs: "ext4".into(),
                partuuid: "1a2b3c4d-02".into(),
                label: Some("RASPIROOT".into()),
            },
        ]
    }

    #[test]
    fn fstab_root_first() {
        let f = fstab(&parts());
        let lines: Vec<&str> = f.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines[0],
            "PARTUUID=1a2b3c4d-02\t/\text4\tdefaults,noatime,errors=remount-ro\t0\t1"
        );
        assert!(lines[1].starts_with("PARTUUID=1a2b3c4d-01\t/boot/firmware\tvfat\t"));
        assert!(lines[1].ends_with("\t0\t2"));
    }

    #[test]
    fn raspi_default_root_and_consoles() {
        let cmd: Vec<String> = [
            "console=serial0,115200",
            "console=tty1",
            "rootwait",
            "cgroup_enable=memory",
        ]
        .map(String::from)
        .to_vec();
        let f = raspi_firmware_default(&parts()[1], &cmd);
        assert!(f.contains("ROOTPART=PARTUUID=1a2b3c4d-02\n"));
        assert!(f.contains("CONSOLES=\"serial0,115200 tty1\"\n"));
        assert!(f.contains("CMA=0\n"));
        assert!(!f.contains("cgroup"));
    }

    /// What raspi-firmware 1.20240424's hook generates from our settings passes the check.
    #[test]
    fn check_generated_rpi_boot() {
        let cmd: Vec<String> = [
            "console=serial0,115200",
            "console=tty1",
            "rootwait",
            "fsck.repair=yes",
            "cgroup_enable=memory",
            "cgroup_memory=1",
        ]
        .map(String::from)
        .to_vec();
        let cfg: Vec<String> = ["arm_64bit=1", "enable_uart=1", "upstream_kernel=1"]
            .map(String::from)
            .to_vec();
        let generated = " console=serial0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rw fsck.repair=yes net.ifnames=0  rootwait rootfstype=ext4 cgroup_enable=memory cgroup_memory=1\n";
        let config = "# Do not modify\narm_64bit=1\n\nenable_uart=1\nupstream_kernel=1\n\nkernel=vmlinuz-6.12.1-arm64\n# x\ninitramfs initrd.img-6.12.1-arm64\n";
        let files = vec![
            "vmlinuz-6.12.1-arm64".to_string(),
            "initrd.img-6.12.1-arm64".to_string(),
        ];
        assert_eq!(
            check_rpi_boot(generated, config, &parts()[1], &cmd, &cfg, &files),
            Vec::<String>::new()
        );
        let p = check_rpi_boot(
            &generated
                .replace("1a2b3c4d-02", "deadbeef-02")
                .replace("cgroup_memory=1", ""),
            config,
            &parts()[1],
            &cmd,
            &cfg,
            &files[..1],
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn os_release_names_image_and_board() {
        let base = "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n";
        let o = OsRelease {
            image_id: "drydock-rpi-arm64".into(),
            image_version: "0.1.0".into(),
            board: "rpi-arm64".into(),
            board_description: "Raspberry Pi 3/4 (64-bit)".into(),
        };
        let r = os_release(base, &o);
        assert!(
            r.starts_with(
                "PRETTY_NAME=\"drydock 0.1.0 for rpi-arm64 (Debian GNU/Linux 13 (trixie))\"\n"
            ),
            "{r}"
        );
        assert!(r.contains("ID=debian\n"));
        assert!(r.contains("IMAGE_VERSION=\"0.1.0\"\n"));
        assert!(r.contains("VARIANT_ID=rpi-arm64\n"));
        assert!(r.contains("DRYDOCK_BOARD=\"rpi-arm64\"\n"));
        assert_eq!(r.matches("PRETTY_NAME").count(), 1);
        // Idempotent.
        assert_eq!(os_release(&r, &o), r);
    }

    #[test]
    fn hostnames() {
        for (h, ok) in [
            ("black-pearl", true),
            ("a.b", true),
            ("-x", false),
            ("", false),
            ("a b", false),
            ("x".repeat(64).as_str(), false),
        ] {
            assert_eq!(valid_hostname(h), ok, "{h}");
        }
    }

    #[test]
    fn direct_boot_cmdline() {
        let c = direct_cmdline(
            &parts()[1],
            &["console=ttyAMA0,115200".into(), "rootwait".into()],
        );
        assert_eq!(
            c,
            "root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 rw net.ifnames=0 console=ttyAMA0,115200 rootwait\n"
        );
    }
}

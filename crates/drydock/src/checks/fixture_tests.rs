//! The static checks on an in-memory rpi-arm64 image that has everything right, then on copies
//! broken one way each: every corruption must fail the check that names it, and only checks
//! about that thing.

use crate::checks::image::fixture::{FixtureDisk, FixturePart, Tree};
use crate::checks::image::{Part, Probe, Table, TableKind};
use crate::checks::subject::{Bundle, HostFacts, Subject};
use crate::checks::Report;
use crate::profile::{self, Profile};

pub const V: &str = "6.12.1+deb13-arm64";
const MIB: u64 = 1 << 20;

pub fn rpi_profile() -> Profile {
    profile::parse(
        include_str!("../../../../boards/rpi-arm64.yaml"),
        "boards/rpi-arm64.yaml",
    )
    .expect("shipped profile parses")
}

fn kernel_bytes() -> Vec<u8> {
    let mut k = vec![0u8; 64];
    k[56..60].copy_from_slice(b"ARMd");
    k.extend_from_slice(
        format!("\0Linux version {V} (debian-kernel@lists.debian.org) #1 SMP\0").as_bytes(),
    );
    k
}

fn dtb(seed: u8) -> Vec<u8> {
    let mut d = vec![0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 64];
    d.resize(64, seed);
    d
}

pub const PACKAGES: &[(&str, &str)] = &[
    ("apparmor", "4.1.0-1"),
    ("cloud-init", "25.1.4-1+deb13u1"),
    ("containerd", "1.7.24~ds1-6+deb13u1"),
    ("docker-cli", "26.1.5+dfsg1-9+deb13u1"),
    ("docker-compose", "2.26.1-4"),
    ("docker.io", "26.1.5+dfsg1-9+deb13u1"),
    ("iptables", "1.8.11-2"),
    ("linux-image-arm64", "6.12.1-1"),
    ("openssh-server", "1:10.0p1-7"),
    ("raspi-firmware", "1.20240424+ds-6"),
    ("runc", "1.1.15+ds1-2+b4"),
    ("sudo", "1.9.16p2-3"),
    ("tini", "0.19.0-3+b8"),
];

fn dpkg_status() -> String {
    let mut s = String::new();
    for (n, v) in PACKAGES {
        s.push_str(&format!(
            "Package: {n}\nStatus: install ok installed\nPriority: optional\nArchitecture: arm64\nVersion: {v}\nDescription: {n}\n long text\n\n"
        ));
    }
    s
}

/// Debian trixie's real arm64 kernel config (kernel-packager's test fixture).
pub fn container_config() -> String {
    use std::io::Read;
    let xz: &[u8] = include_bytes!(
        "../../../kernel-packager/tests/fixtures/debian-trixie-arm64-6.12.107.config.xz"
    );
    let mut s = String::new();
    xz2::read::XzDecoder::new(xz)
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// A complete, correct rpi-arm64 image.
pub fn good_disk() -> FixtureDisk {
    let p = rpi_profile();
    let firmware = [
        "bootcode.bin",
        "start.elf",
        "fixup.dat",
        "start4.elf",
        "fixup4.dat",
        "start_cd.elf",
        "fixup_cd.dat",
    ];
    let mut boot = Tree::default();
    let mut root = Tree::default();
    for (i, f) in firmware.iter().enumerate() {
        let data = vec![i as u8 + 1; 100 + i];
        boot.file(&format!("/{f}"), &data);
        root.file(&format!("/usr/lib/raspi-firmware/{f}"), &data);
    }
    for (i, d) in p.kernel.dtbs.iter().enumerate() {
        let base = d.rsplit('/').next().unwrap();
        boot.file(&format!("/{base}"), dtb(i as u8));
        root.file(&format!("/usr/lib/linux-image-{V}/{d}"), dtb(i as u8));
    }
    let initrd = [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3].to_vec();
    boot.file(&format!("/vmlinuz-{V}"), kernel_bytes())
        .file(&format!("/initrd.img-{V}"), &initrd)
        .file(
            "/config.txt",
            format!("# generated\narm_64bit=1\nenable_uart=1\nupstream_kernel=1\n\nkernel=vmlinuz-{V}\ninitramfs initrd.img-{V}\n"),
        )
        .file(
            "/cmdline.txt",
            "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rw rootwait fsck.repair=yes cgroup_enable=memory cgroup_memory=1\n",
        )
        .file(
            "/user-data",
            "#cloud-config\nhostname: black-pearl\nusers:\n  - name: pirate\n    groups: [sudo, docker]\n    shell: /bin/bash\n    lock_passwd: false\n    passwd: $6$x$y\nchpasswd:\n  expire: true\n",
        )
        .file("/meta-data", "instance-id: drydock-1\n")
        .file(
            "/network-config",
            "version: 2\nethernets:\n  wired:\n    match:\n      name: \"e*\"\n    dhcp4: true\n# wifis:\n#   wlan0: ...\n",
        );
    root.file(&format!("/boot/vmlinuz-{V}"), kernel_bytes())
        .file(&format!("/boot/initrd.img-{V}"), &initrd)
        .file(&format!("/boot/System.map-{V}"), "ffff T _text\n")
        .file(&format!("/boot/config-{V}"), container_config())
        .link("/lib", "usr/lib")
        .link("/sbin", "usr/sbin")
        .link("/bin", "usr/bin");
    let md = format!("/usr/lib/modules/{V}");
    let mut dep = String::new();
    for m in crate::checks::boot::CONTAINER_MODULES {
        dep.push_str(&format!("kernel/net/{m}.ko.xz:\n"));
    }
    root.file(&format!("{md}/modules.dep"), dep);
    for f in [
        "modules.dep.bin",
        "modules.alias",
        "modules.symbols",
        "modules.builtin",
        "modules.order",
    ] {
        root.file(&format!("{md}/{f}"), "x\n");
    }
    root.file("/var/lib/dpkg/status", dpkg_status());
    for b in [
        "/usr/bin/docker",
        "/usr/sbin/dockerd",
        "/usr/bin/containerd",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/sbin/runc",
        "/usr/bin/tini-static",
        "/usr/sbin/apparmor_parser",
        "/usr/libexec/docker/cli-plugins/docker-compose",
    ] {
        root.file_mode(b, "\x7fELF", 0o755, 0, 0);
    }
    for (unit, target) in [
        ("docker.service", "multi-user.target"),
        ("containerd.service", "multi-user.target"),
        ("ssh.service", "multi-user.target"),
        ("cloud-init.target", "multi-user.target"),
        ("docker.socket", "sockets.target"),
        ("apparmor.service", "sysinit.target"),
        ("cloud-init-local.service", "cloud-init.target"),
    ] {
        root.file(&format!("/usr/lib/systemd/system/{unit}"), "[Unit]\n")
            .link(
                &format!("/etc/systemd/system/{target}.wants/{unit}"),
                &format!("/usr/lib/systemd/system/{unit}"),
            );
    }
    root.file("/etc/group", "root:x:0:\nsudo:x:27:\ndocker:x:105:\n")
        .file_mode("/etc/shadow", "root:*:20000:0:99999:7:::\nsshd:!:20000::::::\n", 0o640, 0, 42)
        .file_mode("/etc/gshadow", "root:*::\n", 0o640, 0, 42)
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n")
        .file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n")
        .file("/etc/ssh/moduli", "x")
        .file("/etc/cloud/cloud.cfg", "cloud_init_modules:\n - seed_random\n - ssh\n")
        .file(
            "/etc/cloud/cloud.cfg.d/90-drydock.cfg",
            "datasource_list: [NoCloud, None]\ndatasource:\n  NoCloud:\n    fs_label: RASPIFIRM\n",
        )
        .file("/etc/machine-id", "")
        .file_mode("/etc/sudoers", "root ALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n", 0o440, 0, 0)
        .file_mode("/etc/sudoers.d/README", "# readme\n", 0o440, 0, 0)
        .file("/etc/hostname", "black-pearl\n")
        .file("/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 black-pearl\n")
        .file("/etc/resolv.conf", "")
        .file(
            "/etc/apt/sources.list.d/debian.sources",
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie trixie-updates\nComponents: main non-free-firmware\n",
        )
        .dir("/var/lib/apt/lists/partial")
        .dir("/var/cache/apt/archives/partial")
        .dir("/tmp")
        .dir("/var/tmp")
        .file(
            "/usr/lib/os-release",
            "PRETTY_NAME=\"drydock rpi-arm64 (Debian GNU/Linux 13 (trixie))\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=debian\nIMAGE_ID=drydock-rpi-arm64\nIMAGE_VERSION=0.1.0\nVARIANT_ID=rpi-arm64\n",
        )
        .link("/etc/os-release", "../usr/lib/os-release")
        .file("/etc/debian_version", "13.0\n")
        .file(
            "/etc/fstab",
            "PARTUUID=1234abcd-02 / ext4 defaults,noatime 0 1\nPARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\n",
        )
        .file("/etc/default/raspi-firmware", "ROOTPART=PARTUUID=1234abcd-02\nCONSOLES=\"serial0,115200 tty1\"\n");
    let p1 = Part {
        index: 1,
        start: MIB,
        size: 256 * MIB,
        partuuid: "1234abcd-01".into(),
        ptype: "0x0c".into(),
        bootable: true,
    };
    let p2 = Part {
        index: 2,
        start: 257 * MIB,
        size: 1024 * MIB,
        partuuid: "1234abcd-02".into(),
        ptype: "0x83".into(),
        bootable: false,
    };
    let parts = vec![
        FixturePart {
            part: p1.clone(),
            probe: Probe {
                fs_type: "vfat".into(),
                label: "RASPIFIRM".into(),
                uuid: "ABCD-1234".into(),
                fs_bytes: None,
                state: None,
            },
            fsck: Ok("clean".into()),
            tree: boot,
        },
        FixturePart {
            part: p2.clone(),
            probe: Probe {
                fs_type: "ext4".into(),
                label: "RASPIROOT".into(),
                uuid: "5d6c1a36-0d2b-4f0e-9d4e-8f0a6f1e2b3c".into(),
                fs_bytes: Some(1024 * MIB),
                state: Some("clean".into()),
            },
            fsck: Ok("clean".into()),
            tree: root,
        },
    ];
    FixtureDisk {
        size: 1281 * MIB,
        table: Table {
            kind: TableKind::Mbr,
            hybrid_mbr: false,
            disk_id: "1234abcd".into(),
            parts: vec![p1, p2],
        },
        parts,
    }
}

/// Run every generator except the bundle's (the bundle needs files; tested separately).
pub fn run_checks(disk: &FixtureDisk, profile: &Profile) -> Report {
    let host = HostFacts {
        hostname: "buildhost-42".into(),
        resolv_conf: "nameserver 10.255.255.53\n".into(),
    };
    let s = Subject::open(profile, disk, None, host);
    let mut r = Report::new();
    super::layout::partitions(&s, &mut r);
    super::boot::boot_files(&s, &mut r);
    super::boot::kernel(&s, &mut r);
    super::system::engine(&s, &mut r);
    super::system::security(&s, &mut r);
    super::system::cloud_init(&s, &mut r);
    super::system::os_release(&s, &mut r);
    super::layout::fstab_cmdline(&s, &mut r);
    r
}

fn failures(r: &Report) -> Vec<String> {
    r.failed()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn ignore_readiness(f: &[String]) -> Vec<String> {
    f.to_vec()
}

#[test]
fn good_image_passes_every_check() {
    let p = rpi_profile();
    let r = run_checks(&good_disk(), &p);
    let f = ignore_readiness(&failures(&r));
    assert!(f.is_empty(), "unexpected failures:\n{}", f.join("\n"));
    assert!(r.checks.len() >= 150, "only {} checks", r.checks.len());
    if std::env::var_os("DRYDOCK_SHOW_REPORT").is_some() {
        r.write_human(std::io::stderr()).unwrap();
    }
}

/// Apply a corruption, run the checks, and return the failed check names.
fn broken(edit: impl FnOnce(&mut FixtureDisk)) -> Vec<String> {
    let p = rpi_profile();
    let mut d = good_disk();
    edit(&mut d);
    ignore_readiness(
        &run_checks(&d, &p)
            .failed()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
    )
}

#[test]
fn wrong_partuuid_in_cmdline_fails() {
    let f = broken(|d| {
        let t = d.tree_mut(1);
        t.file(
            "/cmdline.txt",
            "console=serial0,115200 console=tty1 root=PARTUUID=deadbeef-02 rw rootwait fsck.repair=yes cgroup_enable=memory cgroup_memory=1\n",
        );
    });
    assert!(
        f.contains(&"cmdline.txt root= is the root partition's PARTUUID".to_string()),
        "{f:?}"
    );
    assert!(
        f.contains(&"/etc/default/raspi-firmware ROOTPART matches cmdline.txt".to_string()),
        "{f:?}"
    );
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn ssh_host_key_left_in_fails() {
    let f = broken(|d| {
        d.tree_mut(2)
            .file_mode("/etc/ssh/ssh_host_ed25519_key", "KEY", 0o600, 0, 0);
    });
    assert_eq!(f, vec!["no SSH host keys in the image".to_string()]);
}

#[test]
fn root_unlocked_fails() {
    let f = broken(|d| {
        d.tree_mut(2).file_mode(
            "/etc/shadow",
            "root:$6$salt$hash:20000:0:99999:7:::\n",
            0o640,
            0,
            42,
        );
    });
    assert!(f.contains(&"root password locked".to_string()), "{f:?}");
    assert!(
        f.contains(&"no account has a password baked in".to_string()),
        "{f:?}"
    );
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn missing_dtb_fails() {
    let f = broken(|d| {
        d.tree_mut(1).remove("/bcm2711-rpi-4-b.dtb");
    });
    assert_eq!(
        f,
        vec![
            "bcm2711-rpi-4-b.dtb on the boot partition".to_string(),
            "bcm2711-rpi-4-b.dtb matches /usr/lib/linux-image-6.12.1+deb13-arm64/broadcom/bcm2711-rpi-4-b.dtb".to_string(),
        ]
    );
}

#[test]
fn each_corruption_names_its_check() {
    // (corruption, a check that must fail)
    type Edit = Box<dyn FnOnce(&mut FixtureDisk)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "machine-id baked",
            Box::new(|d| {
                d.tree_mut(2)
                    .file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
            }),
        ),
        (
            "unaligned partition",
            Box::new(|d| {
                d.part_mut(2).part.start += 512;
                d.sync_table();
            }),
        ),
        (
            "wrong type",
            Box::new(|d| {
                d.part_mut(1).part.ptype = "0x83".into();
                d.sync_table();
            }),
        ),
        (
            "not bootable",
            Box::new(|d| {
                d.part_mut(1).part.bootable = false;
                d.sync_table();
            }),
        ),
        (
            "dirty ext4",
            Box::new(|d| {
                d.part_mut(2).fsck = Err("Free blocks count wrong".into());
            }),
        ),
        (
            "wrong label",
            Box::new(|d| {
                d.part_mut(2).probe.label = "rootfs".into();
            }),
        ),
        (
            "firmware differs",
            Box::new(|d| {
                d.tree_mut(1).file("/start4.elf", "other");
            }),
        ),
        (
            "firmware missing",
            Box::new(|d| {
                d.tree_mut(1).remove("/bootcode.bin");
            }),
        ),
        (
            "kernel differs",
            Box::new(|d| {
                d.tree_mut(1).file(&format!("/vmlinuz-{V}"), "garbage");
            }),
        ),
        (
            "no modules",
            Box::new(|d| {
                d.tree_mut(2).remove(&format!("/usr/lib/modules/{V}"));
            }),
        ),
        (
            "docker not enabled",
            Box::new(|d| {
                d.tree_mut(2)
                    .remove("/etc/systemd/system/multi-user.target.wants/docker.service");
            }),
        ),
        (
            "dangling unit link",
            Box::new(|d| {
                d.tree_mut(2)
                    .remove("/usr/lib/systemd/system/containerd.service");
            }),
        ),
        (
            "docker.io not installed",
            Box::new(|d| {
                let t = dpkg_status().replace(
                    "Package: docker.io\nStatus: install ok installed",
                    "Package: docker.io\nStatus: deinstall ok config-files",
                );
                d.tree_mut(2).file("/var/lib/dpkg/status", t);
            }),
        ),
        (
            "no docker group",
            Box::new(|d| {
                d.tree_mut(2).file("/etc/group", "root:x:0:\nsudo:x:27:\n");
            }),
        ),
        (
            "bad daemon.json",
            Box::new(|d| {
                d.tree_mut(2)
                    .file("/etc/docker/daemon.json", "{\"storage-driver\": \"vfs\"}");
            }),
        ),
        (
            "sudoers writable",
            Box::new(|d| {
                d.tree_mut(2)
                    .file_mode("/etc/sudoers", "%sudo ALL=(ALL:ALL) ALL\n", 0o644, 0, 0);
            }),
        ),
        (
            "nopasswd for all",
            Box::new(|d| {
                d.tree_mut(2).file_mode(
                    "/etc/sudoers.d/oops",
                    "ALL ALL=(ALL) NOPASSWD: ALL\n",
                    0o440,
                    0,
                    0,
                );
            }),
        ),
        (
            "build host name",
            Box::new(|d| {
                d.tree_mut(2).file("/etc/hostname", "buildhost-42\n");
            }),
        ),
        (
            "build host resolv.conf",
            Box::new(|d| {
                d.tree_mut(2)
                    .file("/etc/resolv.conf", "nameserver 10.255.255.53\n");
            }),
        ),
        (
            "qemu left",
            Box::new(|d| {
                d.tree_mut(2)
                    .file_mode("/usr/bin/qemu-aarch64-static", "x", 0o755, 0, 0);
            }),
        ),
        (
            "policy-rc.d left",
            Box::new(|d| {
                d.tree_mut(2)
                    .file_mode("/usr/sbin/policy-rc.d", "exit 101", 0o755, 0, 0);
            }),
        ),
        (
            "apt lists left",
            Box::new(|d| {
                d.tree_mut(2).file("/var/lib/apt/lists/deb.debian.org_debian_dists_trixie_main_binary-arm64_Packages", "x");
            }),
        ),
        (
            "local apt source",
            Box::new(|d| {
                d.tree_mut(2).file(
                    "/etc/apt/sources.list.d/drydock.list",
                    "deb [signed-by=/x.gpg] file:/tmp/repo ./\n",
                );
            }),
        ),
        (
            "user-data not cloud-config",
            Box::new(|d| {
                d.tree_mut(1).file("/user-data", "#!/bin/sh\necho hi\n");
            }),
        ),
        (
            "user not in docker",
            Box::new(|d| {
                d.tree_mut(1).file("/user-data", "#cloud-config\nhostname: black-pearl\nusers:\n  - name: pirate\n    groups: [sudo]\n    shell: /bin/bash\n    lock_passwd: false\n    passwd: x\nchpasswd:\n  expire: true\n");
            }),
        ),
        (
            "password not expired",
            Box::new(|d| {
                d.tree_mut(1).file("/user-data", "#cloud-config\nhostname: black-pearl\nusers:\n  - name: pirate\n    groups: [sudo, docker]\n    shell: /bin/bash\n    lock_passwd: false\n    passwd: x\nchpasswd:\n  expire: false\n");
            }),
        ),
        (
            "no meta-data",
            Box::new(|d| {
                d.tree_mut(1).remove("/meta-data");
            }),
        ),
        (
            "no dhcp",
            Box::new(|d| {
                d.tree_mut(1).file(
                    "/network-config",
                    "version: 2\nethernets:\n  eth0:\n    dhcp4: false\n",
                );
            }),
        ),
        (
            "seed not found",
            Box::new(|d| {
                d.tree_mut(2).file(
                    "/etc/cloud/cloud.cfg.d/90-drydock.cfg",
                    "datasource_list: [NoCloud]\n",
                );
            }),
        ),
        (
            "wrong codename",
            Box::new(|d| {
                let t = super::image::read_follow(&d.parts[1].tree, "/usr/lib/os-release")
                    .unwrap()
                    .unwrap();
                let t = String::from_utf8(t).unwrap().replace("trixie", "bookworm");
                d.tree_mut(2).file("/usr/lib/os-release", t);
            }),
        ),
        (
            "fstab by device",
            Box::new(|d| {
                d.tree_mut(2).file("/etc/fstab", "/dev/mmcblk0p2 / ext4 defaults 0 1\nPARTUUID=1234abcd-01 /boot/firmware vfat defaults 0 2\n");
            }),
        ),
        (
            "config.txt option missing",
            Box::new(|d| {
                d.tree_mut(1).file("/config.txt", format!("arm_64bit=1\nupstream_kernel=1\nkernel=vmlinuz-{V}\ninitramfs initrd.img-{V}\n"));
            }),
        ),
        (
            "cmdline lacks cgroup",
            Box::new(|d| {
                d.tree_mut(1).file("/cmdline.txt", "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rw rootwait fsck.repair=yes\n");
            }),
        ),
    ];
    let mut problems = Vec::new();
    for (what, edit) in cases {
        let f = broken(edit);
        if f.is_empty() {
            problems.push(format!("{what}: no check failed"));
        } else if f.len() > 4 {
            problems.push(format!("{what}: too many checks failed: {f:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn bundle_checks_against_files() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("drydock-rpi-arm64.img");
    std::fs::write(&img, vec![7u8; 8192]).unwrap();
    let (sha, _) = artifact::sha256_file(&img).unwrap();
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        format!("{sha}  drydock-rpi-arm64.img\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("drydock-rpi-arm64.img.bmap"),
        "<bmap version=\"2.0\">\n<ImageSize> 8192 </ImageSize>\n<BlockSize> 4096 </BlockSize>\n<BlocksCount> 2 </BlocksCount>\n<MappedBlocksCount> 2 </MappedBlocksCount>\n<ChecksumType> sha256 </ChecksumType>\n</bmap>\n",
    )
    .unwrap();
    let pk: Vec<serde_json::Value> = PACKAGES
        .iter()
        .map(|(n, v)| serde_json::json!({"name": n, "version": v, "arch": "arm64"}))
        .collect();
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::json!({"board": "rpi-arm64", "version": "0.1.0", "artifacts": {"rootfs": "a".repeat(64), "kernel": "b".repeat(64)}, "packages": pk}).to_string(),
    )
    .unwrap();
    let mut spdx_pk: Vec<serde_json::Value> = vec![
        serde_json::json!({"SPDXID": "SPDXRef-image", "name": "drydock-rpi-arm64", "versionInfo": "0.1.0"}),
    ];
    for (i, (n, v)) in PACKAGES.iter().enumerate() {
        spdx_pk.push(serde_json::json!({"SPDXID": format!("SPDXRef-pkg-{i}"), "name": n, "versionInfo": v,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": format!("pkg:deb/debian/{n}@{v}?arch=arm64")}]}));
    }
    let sbom = serde_json::json!({"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "drydock-rpi-arm64", "documentNamespace": "https://example.invalid/spdx/x",
        "creationInfo": {"created": "2025-01-01T00:00:00Z", "creators": ["Tool: drydock"]},
        "documentDescribes": ["SPDXRef-image"], "packages": spdx_pk});
    std::fs::write(
        dir.path().join("drydock-rpi-arm64.spdx.json"),
        sbom.to_string(),
    )
    .unwrap();

    let p = rpi_profile();
    let disk = good_disk();
    let run = || {
        let b = super::bundle::find(&img);
        let s = Subject::open(&p, &disk, Some(b), HostFacts::default());
        let mut r = Report::new();
        super::bundle::bundle(&s, &mut r);
        r
    };
    let r = run();
    assert!(r.ok(), "{:?}", failures(&r));
    assert!(r
        .get("package docker.io 26.1.5+dfsg1-9+deb13u1 in manifest and SBOM")
        .is_some());

    // A corrupted image no longer matches SHA256SUMS.
    std::fs::write(&img, vec![8u8; 8192]).unwrap();
    let r = run();
    assert_eq!(
        r.failed().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["SHA256SUMS drydock-rpi-arm64.img"]
    );
    // A package version the image does not have.
    let m = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    std::fs::write(
        dir.path().join("manifest.json"),
        m.replace("0.19.0-3+b8", "0.18.0-1"),
    )
    .unwrap();
    std::fs::write(&img, vec![7u8; 8192]).unwrap();
    let r = run();
    let f: Vec<String> = r
        .failed()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    assert_eq!(
        f,
        vec!["package tini 0.19.0-3+b8 in manifest and SBOM: manifest says 0.18.0-1".to_string()]
    );
    let _ = Bundle::default();
}

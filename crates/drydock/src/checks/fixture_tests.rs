//! The static checks on an in-memory rpi-arm64 image that has everything right, then on copies
//! broken one way each: every corruption must fail the check that names it, and only checks
//! about that thing.

use super::testkit::*;
use crate::checks::image::fixture::FixtureDisk;
use crate::checks::subject::{Bundle, HostFacts, Subject};
use crate::checks::Report;
use crate::profile::Profile;

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

#[test]
fn keygen_unit_in_requires_counts() {
    let f = broken(|d| {
        d.tree_mut(2)
            .file(
                "/etc/cloud/cloud.cfg",
                "cloud_init_modules:\n - seed_random\n",
            )
            .file("/etc/systemd/system/drydock-ssh-keygen.service", "[Unit]\n")
            .link(
                "/etc/systemd/system/ssh.service.requires/drydock-ssh-keygen.service",
                "/etc/systemd/system/drydock-ssh-keygen.service",
            );
    });
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn interface_name_globs() {
    use super::system::glob_match;
    assert!(glob_match("e*", "enp0s2"));
    assert!(glob_match("en*", "enx021122334455"));
    assert!(glob_match("eth0", "eth0"));
    assert!(!glob_match("eth0", "enp0s2"));
    assert!(glob_match("e?h*", "eth0"));
    assert!(!glob_match("en*", "eth0"));
}

#[test]
fn eth0_is_enough_with_net_ifnames_0() {
    let f = broken(|d| {
        d.tree_mut(1)
            .file("/network-config", "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n")
            .file("/cmdline.txt", "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rw net.ifnames=0 rootwait fsck.repair=yes cgroup_enable=memory cgroup_memory=1\n");
    });
    assert!(f.is_empty(), "{f:?}");
}

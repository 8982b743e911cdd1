//! A complete, correct rpi-arm64 image as file trees, for tests: the in-memory fixture of the
//! unit tests, and (materialized into folders and filled through raw-image) the small real image
//! of the hermetic integration tests. Not part of the CLI.

use std::path::Path;

use crate::checks::image::fixture::{FixtureDisk, FixturePart, Tree};
use crate::checks::image::{Part, Probe, Table, TableKind};
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

pub fn dpkg_status() -> String {
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
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kernel-packager/tests/fixtures/debian-trixie-arm64-6.12.107.config.xz");
    let xz = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut s = String::new();
    xz2::read::XzDecoder::new(&xz[..])
        .read_to_string(&mut s)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    s
}

/// A complete, correct rpi-arm64 image whose MBR disk id is `1234abcd`.
pub fn good_disk() -> FixtureDisk {
    good_disk_with_id("1234abcd")
}

/// A complete, correct rpi-arm64 image with the given MBR disk id (8 hex digits).
pub fn good_disk_with_id(disk_id: &str) -> FixtureDisk {
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
            format!("console=serial0,115200 console=tty1 root=PARTUUID={disk_id}-02 rw rootwait fsck.repair=yes cgroup_enable=memory cgroup_memory=1\n"),
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
            format!("PARTUUID={disk_id}-02 / ext4 defaults,noatime 0 1\nPARTUUID={disk_id}-01 /boot/firmware vfat defaults 0 2\n"),
        )
        .file("/etc/default/raspi-firmware", format!("ROOTPART=PARTUUID={disk_id}-02\nCONSOLES=\"serial0,115200 tty1\"\n"));
    let p1 = Part {
        index: 1,
        start: MIB,
        size: 256 * MIB,
        partuuid: format!("{disk_id}-01"),
        ptype: "0x0c".into(),
        bootable: true,
    };
    let p2 = Part {
        index: 2,
        start: 257 * MIB,
        size: 1024 * MIB,
        partuuid: format!("{disk_id}-02"),
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
            disk_id: disk_id.into(),
            parts: vec![p1, p2],
        },
        parts,
    }
}

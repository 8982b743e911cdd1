//! The shell that mmdebstrap runs inside the build (its `--essential-hook` and `--customize-hook`).
//!
//! All customisation happens in the same mmdebstrap run: nothing is unpacked and repacked. The
//! scripts are rendered here from the validated spec, every value single-quoted, and unit-tested
//! for content. mmdebstrap runs each hook as `sh -c SCRIPT exec ROOT`, so `$1` is the chroot
//! folder; commands that must run inside use `chroot "$1"` (qemu-user through binfmt for foreign
//! architectures). The hooks write nothing outside the chroot except into `$DRYDOCK_HOOK_OUT`,
//! a folder of the builder's staging area.

use crate::spec::{locale_charset, needs_locales, ImageSources, OsRelease, RootfsSpec};

/// Quote a string for POSIX sh: `'...'` with embedded single quotes as `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The lines appended to the base-files `/usr/lib/os-release` to make `/etc/os-release`.
/// Values are double-quoted with `\`, `"`, `$` and `` ` `` escaped (os-release(5)).
pub fn os_release_lines(osr: &OsRelease) -> String {
    let mut out = String::new();
    let mut push = |k: &str, v: &str| {
        let mut q = String::new();
        for c in v.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                q.push('\\');
            }
            q.push(c);
        }
        out.push_str(&format!("{k}=\"{q}\"\n"));
    };
    push("IMAGE_ID", &osr.image_id);
    push("IMAGE_VERSION", &osr.image_version);
    for (k, v) in &osr.extra {
        push(k, v);
    }
    out
}

/// The keys [`os_release_lines`] sets, which are dropped from the base file before appending.
pub fn os_release_keys(osr: &OsRelease) -> Vec<String> {
    let mut keys = vec!["IMAGE_ID".to_string(), "IMAGE_VERSION".to_string()];
    keys.extend(osr.extra.iter().map(|(k, _)| k.clone()));
    keys
}

/// The deb822 sources left in the image (`/etc/apt/sources.list.d/debian.sources`).
pub fn image_sources(spec: &RootfsSpec) -> String {
    match &spec.image_sources {
        ImageSources::Deb822(text) => {
            let mut t = text.clone();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            t
        }
        ImageSources::Default => {
            let comps = spec.components.join(" ");
            let suite = spec.suite.as_str();
            let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
            let mut t = String::new();
            if spec.suite.has_updates() {
                t.push_str(&format!(
                    "Types: deb\nURIs: {}\nSuites: {suite} {suite}-updates\nComponents: {comps}\nSigned-By: {keyring}\n\n\
                     Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: {suite}-security\nComponents: {comps}\nSigned-By: {keyring}\n",
                    spec.mirror
                ));
            } else {
                t.push_str(&format!(
                    "Types: deb\nURIs: {}\nSuites: {suite}\nComponents: {comps}\nSigned-By: {keyring}\n",
                    spec.mirror
                ));
            }
            t
        }
    }
}

/// `/etc/hosts` naming the image's hostname (never the build host's).
pub fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
}

/// A systemd unit that creates SSH host keys on first boot when none exist (the image ships none).
pub const SSH_KEYGEN_UNIT: &str = "[Unit]
Description=Generate SSH host keys on first boot (drydock)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
RequiredBy=ssh.service
";

/// Write `content` to `$1/<path>` with printf (no heredoc, so no delimiter can be injected).
fn write_file(path: &str, content: &str) -> String {
    format!(
        "printf '%s' {} > \"$1\"{}\n",
        sh_quote(content),
        sh_quote(path)
    )
}

/// Replace `$1/<path>` by a new regular file (mode 0644) holding `content`: for files mmdebstrap
/// copied from the build host (their mode too) and files we own.
fn new_file(path: &str, content: &str) -> String {
    let q = sh_quote(path);
    format!(
        "rm -f \"$1\"{q}\nprintf '%s' {} > \"$1\"{q}\nchmod 0644 \"$1\"{q}\n",
        sh_quote(content)
    )
}

/// The essential hook: runs after the essential packages are installed and before the rest, so
/// package scripts (openssh's, for one) already see the image's hostname, not the build host's
/// that mmdebstrap copied in for network access.
pub fn essential_hook(spec: &RootfsSpec) -> String {
    let mut s = String::from("set -eu\n");
    s.push_str("# the image's hostname, before any package script can record the build host's\n");
    s.push_str(&new_file("/etc/hostname", &format!("{}\n", spec.hostname)));
    s.push_str(&new_file("/etc/hosts", &hosts_file(&spec.hostname)));
    s
}

/// The customize hook: runs after every package is installed, before mmdebstrap's own cleanup
/// (which removes apt lists and caches, logs and ld.so's aux-cache, and empties /etc/machine-id).
pub fn customize_hook(spec: &RootfsSpec) -> String {
    let mut s = String::from("set -eu\n");

    s.push_str("# record the suite index apt really used (the mirror state of this build)\n");
    s.push_str(
        "for f in \"$1\"/var/lib/apt/lists/*_InRelease; do [ -e \"$f\" ] && sha256sum \"$f\" | cut -d' ' -f1; done > \"$DRYDOCK_HOOK_OUT/apt-inrelease.sha256\"\n",
    );

    s.push_str("# hostname and hosts: the image's, never the build host's\n");
    s.push_str(&new_file("/etc/hostname", &format!("{}\n", spec.hostname)));
    s.push_str(&new_file("/etc/hosts", &hosts_file(&spec.hostname)));

    s.push_str("# no resolv.conf from the build host (a package's symlink is kept)\n");
    s.push_str("if [ ! -L \"$1/etc/resolv.conf\" ]; then rm -f \"$1/etc/resolv.conf\"; fi\n");

    s.push_str("# root locked; no backups of the account files with the old entries\n");
    s.push_str("chroot \"$1\" passwd --lock root\n");
    s.push_str(
        "rm -f \"$1/etc/passwd-\" \"$1/etc/shadow-\" \"$1/etc/group-\" \"$1/etc/gshadow-\"\n",
    );

    s.push_str("# no SSH host keys: first boot generates them\n");
    s.push_str("rm -f \"$1\"/etc/ssh/ssh_host_*\n");
    s.push_str("if [ -x \"$1/usr/sbin/sshd\" ] && [ -d \"$1/etc/systemd/system\" ]; then\n");
    s.push_str(&new_file(
        "/etc/systemd/system/drydock-ssh-keygen.service",
        SSH_KEYGEN_UNIT,
    ));
    s.push_str("  mkdir -p \"$1/etc/systemd/system/ssh.service.requires\"\n");
    s.push_str("  ln -sf /etc/systemd/system/drydock-ssh-keygen.service \"$1/etc/systemd/system/ssh.service.requires/drydock-ssh-keygen.service\"\n");
    s.push_str("fi\n");

    s.push_str("# an empty machine-id (generated on first boot), and no copy for dbus\n");
    s.push_str(": > \"$1/etc/machine-id\"\n");
    s.push_str("rm -f \"$1/var/lib/dbus/machine-id\"\n");

    let locale = &spec.locale;
    s.push_str("# locale\n");
    if needs_locales(locale) {
        let charset = locale_charset(locale).unwrap_or("UTF-8");
        let line = format!("{locale} {charset}");
        s.push_str(&format!(
            "printf '%s\\n' {} {} | chroot \"$1\" debconf-set-selections\n",
            sh_quote(&format!(
                "locales locales/locales_to_be_generated multiselect {line}"
            )),
            sh_quote(&format!(
                "locales locales/default_environment_locale select {locale}"
            ))
        ));
        s.push_str(&write_file("/etc/locale.gen", &format!("{line}\n")));
        s.push_str("chroot \"$1\" locale-gen\n");
    }
    s.push_str(&write_file(
        "/etc/default/locale",
        &format!("LANG={locale}\n"),
    ));

    let tz = &spec.timezone;
    s.push_str("# timezone\n");
    s.push_str(&format!(
        "if [ ! -f \"$1/usr/share/zoneinfo/\"{q} ]; then echo \"timezone \"{q}\": no /usr/share/zoneinfo/\"{q}\" in the rootfs\" >&2; exit 1; fi\n",
        q = sh_quote(tz)
    ));
    s.push_str(&format!(
        "ln -sfn {} \"$1/etc/localtime\"\n",
        sh_quote(&format!("/usr/share/zoneinfo/{tz}"))
    ));
    s.push_str(&write_file("/etc/timezone", &format!("{tz}\n")));
    let (area, zone) = tz.split_once('/').unwrap_or(("Etc", tz.as_str()));
    s.push_str(&format!(
        "printf '%s\\n' {} {} | chroot \"$1\" debconf-set-selections\n",
        sh_quote(&format!("tzdata tzdata/Areas select {area}")),
        sh_quote(&format!("tzdata tzdata/Zones/{area} select {zone}"))
    ));

    s.push_str("# apt sources left in the image\n");
    s.push_str("rm -f \"$1/etc/apt/sources.list\" \"$1/etc/apt/sources.list.d/\"*\n");
    s.push_str(&new_file(
        "/etc/apt/sources.list.d/debian.sources",
        &image_sources(spec),
    ));

    s.push_str("# os-release: base-files' fields plus the image's name and version\n");
    let keys = os_release_keys(&spec.os_release).join("|");
    s.push_str("rm -f \"$1/etc/os-release\"\n");
    s.push_str(&format!(
        "{{ grep -v -E {} \"$1/usr/lib/os-release\" || true; printf '%s' {}; }} > \"$1/etc/os-release\"\n",
        sh_quote(&format!("^({keys})=")),
        sh_quote(&os_release_lines(&spec.os_release))
    ));

    s.push_str(
        "# no apt lists or caches; mmdebstrap's own cleanup (skipped) leaves the owner of\n",
    );
    s.push_str("# the partial folders to chance, so they are made afresh, root's, 0700\n");
    s.push_str("rm -rf \"$1/var/lib/apt/lists\" \"$1/var/cache/apt\"\n");
    s.push_str("mkdir -p \"$1/var/lib/apt/lists/partial\" \"$1/var/cache/apt/archives/partial\"\n");
    s.push_str(
        "chmod 0755 \"$1/var/lib/apt/lists\" \"$1/var/cache/apt\" \"$1/var/cache/apt/archives\"\n",
    );
    s.push_str(
        "chmod 0700 \"$1/var/lib/apt/lists/partial\" \"$1/var/cache/apt/archives/partial\"\n",
    );

    s.push_str("# leftovers of the steps above that differ between runs or hold nothing useful\n");
    s.push_str(
        "rm -f \"$1\"/var/cache/debconf/*-old \"$1\"/var/lib/dpkg/*-old \"$1/var/log/alternatives.log\"\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Arch, Suite};

    fn spec() -> RootfsSpec {
        RootfsSpec {
            arch: Arch::Arm64,
            suite: Suite::Trixie,
            packages: vec!["openssh-server".into()],
            timezone: "Europe/Berlin".into(),
            ..Default::default()
        }
    }

    /// Run a rendered hook with sh against a fake root, with `chroot` replaced by a logger on
    /// PATH, and return the root. Checks that the shell we generate is valid and does what the
    /// comments claim, without root or qemu.
    fn run_hook(script: &str, prepare: impl FnOnce(&std::path::Path)) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let bin = d.path().join("bin");
        let out = d.path().join("out");
        for p in [
            "etc/ssh",
            "etc/apt/sources.list.d",
            "etc/systemd/system",
            "etc/default",
            "usr/lib",
            "usr/sbin",
            "usr/share/zoneinfo/Europe",
            "var/lib/dbus",
            "var/lib/apt/lists",
            "var/cache/debconf",
            "var/lib/dpkg",
            "var/log",
        ] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        prepare(&root);
        let log = d.path().join("chroot.log");
        std::fs::write(
            bin.join("chroot"),
            format!(
                "#!/bin/sh\nshift\necho \"$*\" >> {}\ncat >> {} || true\n",
                log.display(),
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("chroot"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let st = std::process::Command::new("sh")
            .args(["-c", script, "exec"])
            .arg(&root)
            .env("PATH", path)
            .env("DRYDOCK_HOOK_OUT", &out)
            .status()
            .unwrap();
        assert!(st.success(), "hook failed:\n{script}");
        d
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        let o = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", sh_quote("a'b\"$c`d\\"))])
            .output()
            .unwrap();
        assert_eq!(o.stdout, b"a'b\"$c`d\\");
    }

    #[test]
    fn os_release_rendering() {
        let osr = OsRelease {
            image_id: "drydock".into(),
            image_version: "1.2.3".into(),
            extra: vec![("VARIANT".into(), "He said \"$HI\" `x` \\o/".into())],
        };
        assert_eq!(
            os_release_lines(&osr),
            "IMAGE_ID=\"drydock\"\nIMAGE_VERSION=\"1.2.3\"\nVARIANT=\"He said \\\"\\$HI\\\" \\`x\\` \\\\o/\"\n"
        );
        // The value parses back through a shell, as os-release(5) promises.
        let o = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("{}\nprintf %s \"$VARIANT\"", os_release_lines(&osr)),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "He said \"$HI\" `x` \\o/"
        );
    }

    #[test]
    fn essential_hook_sets_hostname_early() {
        let h = essential_hook(&spec());
        assert!(h.starts_with("set -eu\n"));
        assert!(h.contains(
            "rm -f \"$1\"'/etc/hostname'\nprintf '%s' 'black-pearl\n' > \"$1\"'/etc/hostname'\nchmod 0644 \"$1\"'/etc/hostname'\n"
        ));
        assert!(h.contains("127.0.1.1\tblack-pearl"));
    }

    #[test]
    fn customize_hook_content() {
        let h = customize_hook(&spec());
        for needle in [
            "set -eu\n",
            "chroot \"$1\" passwd --lock root\n",
            "rm -f \"$1\"/etc/ssh/ssh_host_*\n",
            ": > \"$1/etc/machine-id\"\n",
            "rm -f \"$1/var/lib/dbus/machine-id\"\n",
            "rm -f \"$1/etc/resolv.conf\"",
            "'en_US.UTF-8 UTF-8\n' > \"$1\"'/etc/locale.gen'",
            "chroot \"$1\" locale-gen\n",
            "'LANG=en_US.UTF-8\n' > \"$1\"'/etc/default/locale'",
            "ln -sfn '/usr/share/zoneinfo/Europe/Berlin' \"$1/etc/localtime\"",
            "'tzdata tzdata/Zones/Europe select Berlin'",
            "Suites: trixie trixie-updates\n",
            "Suites: trixie-security\n",
            "'^(IMAGE_ID|IMAGE_VERSION)='",
            "rm -rf \"$1/var/lib/apt/lists\" \"$1/var/cache/apt\"\n",
            "IMAGE_ID=\"drydock\"",
        ] {
            assert!(h.contains(needle), "missing {needle:?} in:\n{h}");
        }
        // C.UTF-8 is built in: nothing to generate.
        let c = customize_hook(&RootfsSpec {
            locale: "C.UTF-8".into(),
            ..spec()
        });
        assert!(!c.contains("locale-gen"));
        assert!(c.contains("LANG=C.UTF-8"));
    }

    /// The customize hook, run by sh on a fake root, leaves the tree as promised.
    #[test]
    fn customize_hook_cleans_a_fake_root() {
        let d = run_hook(&customize_hook(&spec()), |root| {
            let w = |p: &str, c: &str| std::fs::write(root.join(p), c).unwrap();
            w("etc/hostname", "buildhost\n");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                root.join("etc/hostname"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            w("etc/resolv.conf", "nameserver 10.0.0.1\n");
            w("etc/ssh/ssh_host_ed25519_key", "secret");
            w("etc/ssh/ssh_host_rsa_key.pub", "pub");
            w("etc/ssh/sshd_config", "keep");
            w("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
            w("var/lib/dbus/machine-id", "0123\n");
            w("etc/apt/sources.list", "deb http://x trixie main\n");
            w("etc/shadow-", "root:secret:1:0:99999:7:::\n");
            w(
                "usr/lib/os-release",
                "PRETTY_NAME=\"Debian\"\nID=debian\nIMAGE_ID=old\n",
            );
            w("usr/share/zoneinfo/Europe/Berlin", "TZif");
            w("usr/sbin/sshd", "");
            w(
                "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease",
                "index",
            );
            std::fs::set_permissions(
                root.join("usr/sbin/sshd"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        });
        let root = d.path().join("root");
        let r = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(r("etc/hostname"), "black-pearl\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("etc/hostname"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "the build host's mode leaked");
        assert!(!r("etc/hosts").contains("buildhost"));
        assert!(!root.join("etc/resolv.conf").exists());
        assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(!root.join("etc/ssh/ssh_host_rsa_key.pub").exists());
        assert_eq!(r("etc/ssh/sshd_config"), "keep");
        assert_eq!(r("etc/machine-id"), "");
        assert!(!root.join("var/lib/dbus/machine-id").exists());
        assert!(!root.join("etc/shadow-").exists());
        assert!(!root.join("etc/apt/sources.list").exists());
        assert!(!root
            .join("var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease")
            .exists());
        for d in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
        ] {
            let m = std::fs::metadata(root.join(d)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o7777, 0o700, "{d}");
        }
        assert!(r("etc/apt/sources.list.d/debian.sources")
            .contains("URIs: http://deb.debian.org/debian\n"));
        let osr = r("etc/os-release");
        assert_eq!(
            osr,
            format!(
                "PRETTY_NAME=\"Debian\"\nID=debian\nIMAGE_ID=\"drydock\"\nIMAGE_VERSION=\"{}\"\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/localtime")).unwrap(),
            std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin")
        );
        assert!(root
            .join("etc/systemd/system/ssh.service.requires/drydock-ssh-keygen.service")
            .symlink_metadata()
            .is_ok());
        let log = std::fs::read_to_string(d.path().join("chroot.log")).unwrap();
        assert!(log.contains("passwd --lock root"), "{log}");
        assert!(log.contains("locale-gen"), "{log}");
        assert!(
            log.contains("locales locales/locales_to_be_generated multiselect en_US.UTF-8 UTF-8")
        );
        let rec = std::fs::read_to_string(d.path().join("out/apt-inrelease.sha256")).unwrap();
        assert_eq!(rec.trim(), artifact::sha256_bytes(b"index"));
    }

    #[test]
    fn customize_hook_fails_on_unknown_timezone() {
        let s = RootfsSpec {
            timezone: "Mars/Olympus".into(),
            ..spec()
        };
        let d = tempfile::tempdir().unwrap();
        let o = std::process::Command::new("sh")
            .args(["-c", &customize_hook(&s), "exec"])
            .arg(d.path())
            .env("DRYDOCK_HOOK_OUT", d.path())
            .env("PATH", "/nonexistent:/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(!o.status.success());
    }

    #[test]
    fn default_sources_for_sid_have_no_updates() {
        let s = RootfsSpec {
            suite: Suite::Sid,
            components: vec!["main".into(), "non-free-firmware".into()],
            ..spec()
        };
        let t = image_sources(&s);
        assert_eq!(
            t,
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
    }
}

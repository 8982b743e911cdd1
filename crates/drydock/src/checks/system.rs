//! The root filesystem's system configuration: container engine, users and security, the
//! cloud-init seed, os-release.

use crate::checks::image::{stat_follow, FsRead, Kind};
use crate::checks::subject::{text, Subject};
use crate::checks::{list_some, Report};
use crate::profile::Engine;

/// Packages, binaries and units an engine needs.
pub struct EngineSpec {
    pub packages: &'static [&'static str],
    /// Each entry: alternatives (the first existing one counts).
    pub binaries: &'static [&'static [&'static str]],
    /// (unit, the target whose `.wants` must hold it)
    pub units: &'static [(&'static str, &'static str)],
    pub group: Option<&'static str>,
}

pub const DOCKER: EngineSpec = EngineSpec {
    packages: &[
        "docker.io",
        "docker-cli",
        "containerd",
        "runc",
        "tini",
        "iptables",
        "apparmor",
        "docker-compose",
    ],
    binaries: &[
        &["/usr/bin/docker"],
        &["/usr/sbin/dockerd", "/usr/bin/dockerd"],
        &["/usr/bin/containerd"],
        &["/usr/bin/containerd-shim-runc-v2"],
        &["/usr/sbin/runc", "/usr/bin/runc"],
        &["/usr/bin/tini-static", "/usr/bin/tini"],
        &["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"],
        &[
            "/usr/libexec/docker/cli-plugins/docker-compose",
            "/usr/lib/docker/cli-plugins/docker-compose",
        ],
    ],
    units: &[
        ("docker.service", "multi-user.target"),
        ("containerd.service", "multi-user.target"),
        ("docker.socket", "sockets.target"),
        ("apparmor.service", "sysinit.target"),
    ],
    group: Some("docker"),
};

pub const PODMAN: EngineSpec = EngineSpec {
    packages: &["podman", "crun", "conmon", "netavark", "apparmor"],
    binaries: &[
        &["/usr/bin/podman"],
        &["/usr/bin/crun"],
        &["/usr/bin/conmon", "/usr/libexec/podman/conmon"],
        &["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"],
    ],
    units: &[("apparmor.service", "sysinit.target")],
    group: None,
};

/// Where `systemctl enable` puts a unit's symlink.
fn wants_link(unit: &str, target: &str) -> String {
    format!("/etc/systemd/system/{target}.wants/{unit}")
}

/// Check that a unit is enabled: the `.wants` symlink exists and points at an existing unit file.
pub fn unit_enabled(fs: &dyn FsRead, unit: &str, target: &str) -> Result<String, String> {
    let link = wants_link(unit, target);
    match fs.stat(&link) {
        Ok(Some(m)) if m.kind == Kind::Symlink => {
            let t = m.target.unwrap_or_default();
            match stat_follow(fs, &link) {
                Ok(Some((p, m))) if m.kind == Kind::File => Ok(format!("{link} -> {p}")),
                Ok(_) => Err(format!("{link} -> {t}, which does not exist")),
                Err(e) => Err(format!("{link}: {e:#}")),
            }
        }
        Ok(Some(m)) => Err(format!("{link} is a {:?}, not a symlink", m.kind)),
        Ok(None) => Err(format!("{link} missing (unit not enabled)")),
        Err(e) => Err(format!("{link}: {e:#}")),
    }
}

/// `/etc/group` (or passwd) lines as fields.
fn colon_file(t: &str) -> Vec<Vec<String>> {
    t.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(String::from).collect())
        .collect()
}

fn read_or_fail(r: &mut Report, fs: &dyn FsRead, path: &str, check: &str) -> Option<String> {
    match text(fs, path) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            r.fail(check, format!("{path} missing"));
            None
        }
        Err(e) => {
            r.fail(check, e);
            None
        }
    }
}

/// Container engine: packages installed per dpkg status, binaries, enabled units, daemon config,
/// group.
pub fn engine(s: &Subject, r: &mut Report) {
    r.group("container engine");
    let spec = match s.profile.rootfs.engine {
        Engine::Docker => &DOCKER,
        Engine::Podman => &PODMAN,
        Engine::None => {
            r.pass("no engine requested", "profile rootfs.engine is none");
            return;
        }
    };
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition could be opened",
        );
        return;
    };
    let fs = root.fs.as_ref();
    for p in spec.packages {
        let name = format!("package {p} installed");
        match &s.dpkg {
            Ok(pk) => match pk.get(*p) {
                Some(pkg) if pkg.installed() => {
                    r.pass(name, format!("{} {}", pkg.name, pkg.version))
                }
                Some(pkg) => r.fail(name, format!("dpkg status {:?}", pkg.status)),
                None => r.fail(name, "not in dpkg status"),
            },
            Err(e) => r.fail(name, e.clone()),
        };
    }
    for alts in spec.binaries {
        let name = format!("{} executable", alts[0]);
        let mut found = None;
        for a in *alts {
            if let Ok(Some((p, m))) = stat_follow(fs, a) {
                found = Some((p, m));
                break;
            }
        }
        match found {
            Some((p, m)) if m.kind == Kind::File && m.mode & 0o111 != 0 && m.size > 0 => {
                r.pass(name, format!("{p} mode {:o}, {} bytes", m.mode, m.size))
            }
            Some((p, m)) => r.fail(name, format!("{p}: {:?} mode {:o}", m.kind, m.mode)),
            None => r.fail(name, format!("none of {alts:?} exists")),
        };
    }
    for (unit, target) in spec.units {
        r.result(format!("{unit} enabled"), unit_enabled(fs, unit, target));
    }
    if let Some(g) = spec.group {
        if let Some(t) = read_or_fail(r, fs, "/etc/group", &format!("group {g} exists")) {
            let lines = colon_file(&t);
            let hit = lines
                .iter()
                .find(|f| f.first().map(String::as_str) == Some(g));
            match hit {
                Some(f) => {
                    let gid: u32 = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(u32::MAX);
                    r.check(
                        format!("group {g} exists"),
                        gid < 1000,
                        format!("{g} gid {gid} (system group expected)"),
                    )
                }
                None => r.fail(format!("group {g} exists"), "not in /etc/group"),
            };
        }
    }
    if s.profile.rootfs.engine == Engine::Docker {
        match text(fs, "/etc/docker/daemon.json") {
            Ok(None) => {
                r.pass(
                    "docker daemon.json valid",
                    "absent: docker's defaults (overlay2 storage, systemd cgroup driver on cgroup v2)",
                );
            }
            Ok(Some(t)) => match serde_json::from_str::<serde_json::Value>(&t) {
                Ok(v) if v.is_object() => {
                    let mut problems = Vec::new();
                    if let Some(d) = v.get("storage-driver") {
                        if d != "overlay2" {
                            problems.push(format!("storage-driver {d} (overlay2 expected)"));
                        }
                    }
                    if let Some(opts) = v.get("exec-opts").and_then(|o| o.as_array()) {
                        for o in opts.iter().filter_map(|o| o.as_str()) {
                            if let Some(d) = o.strip_prefix("native.cgroupdriver=") {
                                if d != "systemd" && d != "cgroupfs" {
                                    problems.push(format!("cgroup driver {d}"));
                                }
                            }
                        }
                    }
                    r.check(
                        "docker daemon.json valid",
                        problems.is_empty(),
                        if problems.is_empty() {
                            t.split_whitespace().collect::<Vec<_>>().join(" ")
                        } else {
                            problems.join("; ")
                        },
                    );
                }
                Ok(_) => {
                    r.fail("docker daemon.json valid", "not a JSON object");
                }
                Err(e) => {
                    r.fail("docker daemon.json valid", format!("not JSON: {e}"));
                }
            },
            Err(e) => {
                r.fail("docker daemon.json valid", e);
            }
        }
    }
}

/// Whether a shadow password field is locked (no password login possible).
pub fn locked(field: &str) -> bool {
    field.starts_with('!') || field.starts_with('*')
}

fn mode_check(
    r: &mut Report,
    fs: &dyn FsRead,
    path: &str,
    mode: &[u32],
    uid: u32,
    gid: Option<u32>,
) {
    let name = format!("{path} mode {:o}", mode[0]);
    match fs.stat(path) {
        Ok(Some(m)) if m.kind == Kind::File => {
            let ok = mode.contains(&m.mode) && m.uid == uid && gid.map_or(true, |g| g == m.gid);
            r.check(
                name,
                ok,
                format!("mode {:o} owner {}:{}", m.mode, m.uid, m.gid),
            )
        }
        Ok(Some(m)) => r.fail(name, format!("{:?}, not a file", m.kind)),
        Ok(None) => r.fail(name, "missing"),
        Err(e) => r.fail(name, format!("{e:#}")),
    };
}

/// Users and security: locked root, no baked SSH host keys or machine id, sane sudoers, no
/// build-host leftovers.
pub fn security(s: &Subject, r: &mut Report) {
    r.group("users and security");
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition could be opened",
        );
        return;
    };
    let fs = root.fs.as_ref();
    if let Some(shadow) = read_or_fail(r, fs, "/etc/shadow", "root password locked") {
        let rows = colon_file(&shadow);
        match rows
            .iter()
            .find(|f| f.first().map(String::as_str) == Some("root"))
        {
            Some(f) => {
                let pw = f.get(1).cloned().unwrap_or_default();
                let shown = if pw.len() > 3 {
                    format!("{}...", &pw[..3])
                } else {
                    pw.clone()
                };
                r.check(
                    "root password locked",
                    locked(&pw),
                    format!("root's shadow field is {shown:?}"),
                )
            }
            None => r.fail("root password locked", "no root entry in /etc/shadow"),
        };
        let empty: Vec<String> = rows
            .iter()
            .filter(|f| f.get(1).is_some_and(|p| p.is_empty()))
            .map(|f| f[0].clone())
            .collect();
        r.check(
            "no account with an empty password",
            empty.is_empty(),
            if empty.is_empty() {
                format!("{} accounts, none empty", rows.len())
            } else {
                format!("empty: {empty:?}")
            },
        );
        let with_pw: Vec<String> = rows
            .iter()
            .filter(|f| f.get(1).is_some_and(|p| !p.is_empty() && !locked(p)))
            .map(|f| f[0].clone())
            .collect();
        r.check(
            "no account has a password baked in",
            with_pw.is_empty(),
            if with_pw.is_empty() {
                "all locked (the default user is created by cloud-init at first boot)".to_string()
            } else {
                format!("with a password: {with_pw:?}")
            },
        );
    }
    if let Some(passwd) = read_or_fail(r, fs, "/etc/passwd", "only root has uid 0") {
        let uid0: Vec<String> = colon_file(&passwd)
            .into_iter()
            .filter(|f| f.get(2).map(String::as_str) == Some("0"))
            .map(|f| f[0].clone())
            .collect();
        r.check(
            "only root has uid 0",
            uid0 == ["root"],
            format!("uid 0: {uid0:?}"),
        );
    }
    mode_check(r, fs, "/etc/shadow", &[0o640, 0o600, 0o000], 0, None);
    mode_check(r, fs, "/etc/gshadow", &[0o640, 0o600, 0o000], 0, None);
    mode_check(r, fs, "/etc/passwd", &[0o644], 0, Some(0));
    mode_check(r, fs, "/etc/group", &[0o644], 0, Some(0));

    match fs.list("/etc/ssh") {
        Ok(Some(names)) => {
            let keys: Vec<&String> = names
                .iter()
                .filter(|n| n.starts_with("ssh_host_"))
                .collect();
            r.check(
                "no SSH host keys in the image",
                keys.is_empty(),
                if keys.is_empty() {
                    "none in /etc/ssh".to_string()
                } else {
                    format!("found /etc/ssh/{}", list_some(&keys, 6))
                },
            );
        }
        Ok(None) => {
            r.fail(
                "no SSH host keys in the image",
                "/etc/ssh missing (is openssh-server installed?)",
            );
        }
        Err(e) => {
            r.fail("no SSH host keys in the image", format!("{e:#}"));
        }
    }
    // Something must make host keys at first boot: cloud-init's ssh module, or a keygen unit.
    let cloud_ssh = text(fs, "/etc/cloud/cloud.cfg")
        .ok()
        .flatten()
        .is_some_and(|t| t.lines().any(|l| l.trim() == "- ssh"));
    // A keygen unit enabled anywhere (`*.wants` or `*.requires`, e.g. ssh.service.requires).
    let mut keygen_unit = None;
    for d in fs
        .list("/etc/systemd/system")
        .ok()
        .flatten()
        .unwrap_or_default()
    {
        if !(d.ends_with(".wants") || d.ends_with(".requires")) {
            continue;
        }
        for n in fs
            .list(&format!("/etc/systemd/system/{d}"))
            .ok()
            .flatten()
            .unwrap_or_default()
        {
            if n.contains("keygen") || n.contains("host-keys") || n.contains("hostkeys") {
                let link = format!("/etc/systemd/system/{d}/{n}");
                if matches!(stat_follow(fs, &link), Ok(Some((_, m))) if m.kind == Kind::File) {
                    keygen_unit = Some(format!("{d}/{n}"));
                }
            }
        }
    }
    r.check(
        "SSH host keys are generated at first boot",
        cloud_ssh || keygen_unit.is_some(),
        match (&keygen_unit, cloud_ssh) {
            (Some(u), _) => format!("unit {u}"),
            (None, true) => "cloud-init's ssh module (cloud.cfg)".to_string(),
            (None, false) => "neither cloud-init's ssh module nor a keygen unit".to_string(),
        },
    );
    let sshd_cfg = ["/etc/ssh/sshd_config"]
        .iter()
        .map(|p| p.to_string())
        .chain(
            fs.list("/etc/ssh/sshd_config.d")
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.ends_with(".conf"))
                .map(|n| format!("/etc/ssh/sshd_config.d/{n}")),
        )
        .filter_map(|p| text(fs, &p).ok().flatten().map(|t| (p, t)))
        .collect::<Vec<_>>();
    let root_login: Vec<String> = sshd_cfg
        .iter()
        .flat_map(|(p, t)| {
            t.lines()
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() >= 2
                        && f[0].eq_ignore_ascii_case("PermitRootLogin")
                        && f[1].eq_ignore_ascii_case("yes")
                })
                .map(move |l| format!("{p}: {l}"))
        })
        .collect();
    r.check(
        "sshd does not permit root password login",
        !sshd_cfg.is_empty() && root_login.is_empty(),
        if sshd_cfg.is_empty() {
            "no sshd_config".to_string()
        } else if root_login.is_empty() {
            format!("{} config files, no PermitRootLogin yes", sshd_cfg.len())
        } else {
            root_login.join("; ")
        },
    );
    let ssh_unit = unit_enabled(fs, "ssh.service", "multi-user.target")
        .or_else(|_| unit_enabled(fs, "ssh.socket", "sockets.target"))
        .or_else(|_| unit_enabled(fs, "sshd.service", "multi-user.target"));
    r.result("ssh enabled", ssh_unit);

    match fs.stat("/etc/machine-id") {
        Ok(Some(m)) if m.kind == Kind::File => {
            let t = text(fs, "/etc/machine-id")
                .ok()
                .flatten()
                .unwrap_or_default();
            let ok = t.is_empty() || t.trim() == "uninitialized";
            r.check(
                "/etc/machine-id empty",
                ok,
                format!("{} bytes: {:?}", t.len(), t.trim()),
            )
        }
        Ok(Some(m)) => r.fail("/etc/machine-id empty", format!("{:?}, not a file", m.kind)),
        Ok(None) => r.fail(
            "/etc/machine-id empty",
            "missing (systemd needs an empty file to detect first boot with a read-only /etc)",
        ),
        Err(e) => r.fail("/etc/machine-id empty", format!("{e:#}")),
    };
    match fs.stat("/var/lib/dbus/machine-id") {
        Ok(None) => r.pass("/var/lib/dbus/machine-id not baked", "absent"),
        Ok(Some(m)) if m.kind == Kind::Symlink => r.pass(
            "/var/lib/dbus/machine-id not baked",
            format!("symlink to {:?}", m.target),
        ),
        Ok(Some(m)) => r.check(
            "/var/lib/dbus/machine-id not baked",
            m.size == 0,
            format!("a file of {} bytes", m.size),
        ),
        Err(e) => r.fail("/var/lib/dbus/machine-id not baked", format!("{e:#}")),
    };

    // sudo
    mode_check(r, fs, "/etc/sudoers", &[0o440], 0, Some(0));
    if let Some(t) = read_or_fail(r, fs, "/etc/sudoers", "sudo group may use sudo") {
        let ok = t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"%sudo") && f.len() >= 2 && f[1..].join(" ").contains("ALL")
        });
        r.check(
            "sudo group may use sudo",
            ok,
            if ok {
                "%sudo ALL=(ALL:ALL) ALL"
            } else {
                "no %sudo rule in /etc/sudoers"
            },
        );
    }
    let mut nopasswd_all = Vec::new();
    let mut bad_modes = Vec::new();
    let dropins = fs.list("/etc/sudoers.d").ok().flatten().unwrap_or_default();
    for n in &dropins {
        let p = format!("/etc/sudoers.d/{n}");
        if let Ok(Some(m)) = fs.stat(&p) {
            if m.kind == Kind::File && (m.mode != 0o440 || m.uid != 0) {
                bad_modes.push(format!("{p} mode {:o} uid {}", m.mode, m.uid));
            }
        }
    }
    for p in std::iter::once("/etc/sudoers".to_string())
        .chain(dropins.iter().map(|n| format!("/etc/sudoers.d/{n}")))
    {
        if let Ok(Some(t)) = text(fs, &p) {
            for l in t.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.first() == Some(&"ALL") && l.contains("NOPASSWD") {
                    nopasswd_all.push(format!("{p}: {l}"));
                }
            }
        }
    }
    r.check(
        "sudoers.d files mode 440",
        bad_modes.is_empty(),
        if bad_modes.is_empty() {
            format!("{} files", dropins.len())
        } else {
            bad_modes.join("; ")
        },
    );
    r.check(
        "no passwordless sudo for every user",
        nopasswd_all.is_empty(),
        if nopasswd_all.is_empty() {
            "none".to_string()
        } else {
            nopasswd_all.join("; ")
        },
    );

    // Hostname and build-host leftovers.
    let want = &s.profile.rootfs.hostname;
    if let Some(h) = read_or_fail(r, fs, "/etc/hostname", &format!("/etc/hostname is {want}")) {
        let h = h.trim();
        r.check(
            format!("/etc/hostname is {want}"),
            h == want,
            format!("{h:?}"),
        );
    }
    if !s.host.hostname.is_empty() && s.host.hostname != *want {
        let host = &s.host.hostname;
        let mut leaks = Vec::new();
        for p in ["/etc/hostname", "/etc/hosts", "/etc/mailname"] {
            if let Ok(Some(t)) = text(fs, p) {
                if t.split(|c: char| c.is_whitespace() || c == '.')
                    .any(|w| w == host)
                {
                    leaks.push(p);
                }
            }
        }
        r.check(
            "build host's name not in the image",
            leaks.is_empty(),
            if leaks.is_empty() {
                format!("{host:?} appears nowhere")
            } else {
                format!("{host:?} in {leaks:?}")
            },
        );
    }
    match text(fs, "/etc/resolv.conf") {
        Ok(t) => {
            let t = t.unwrap_or_default();
            let host_ns: Vec<&str> = s
                .host
                .resolv_conf
                .lines()
                .filter(|l| l.trim_start().starts_with("nameserver"))
                .map(str::trim)
                .collect();
            let leaked: Vec<&str> = t
                .lines()
                .map(str::trim)
                .filter(|l| host_ns.contains(l))
                .collect();
            r.check(
                "resolv.conf is not the build host's",
                leaked.is_empty(),
                if leaked.is_empty() {
                    format!("{} bytes, no build-host nameserver", t.len())
                } else {
                    format!("build host's {leaked:?}")
                },
            );
        }
        Err(e) => {
            r.fail("resolv.conf is not the build host's", e);
        }
    }
    for (path, why) in [
        (
            "/usr/bin/qemu-aarch64-static",
            "qemu-user binary left from the foreign-arch chroot",
        ),
        (
            "/usr/bin/qemu-arm-static",
            "qemu-user binary left from the foreign-arch chroot",
        ),
        (
            "/usr/sbin/policy-rc.d",
            "blocks every service start from package scripts",
        ),
        (
            "/usr/sbin/start-stop-daemon.REAL",
            "a diverted start-stop-daemon",
        ),
        ("/root/.bash_history", "shell history"),
        ("/var/cache/apt/pkgcache.bin", "apt cache"),
        ("/var/cache/apt/srcpkgcache.bin", "apt cache"),
        ("/var/log/bootstrap.log", "build log"),
        ("/var/log/apt/term.log", "build log"),
        (
            "/var/lib/cloud/instance",
            "cloud-init state from a build-time run",
        ),
    ] {
        match fs.stat(path) {
            Ok(None) => r.pass(format!("no {path}"), "absent"),
            Ok(Some(m)) => r.fail(
                format!("no {path}"),
                format!("present ({:?}, {} bytes): {why}", m.kind, m.size),
            ),
            Err(e) => r.fail(format!("no {path}"), format!("{e:#}")),
        };
    }
    for (dir, what, pred) in [
        (
            "/var/lib/apt/lists",
            "apt index files",
            (|n: &str| n != "partial" && n != "lock" && n != "auxfiles") as fn(&str) -> bool,
        ),
        ("/var/cache/apt/archives", "downloaded .debs", |n: &str| {
            n.ends_with(".deb")
        }),
        ("/tmp", "files", |_: &str| true),
        ("/var/tmp", "files", |_: &str| true),
    ] {
        match fs.list(dir) {
            Ok(Some(names)) => {
                let hits: Vec<&String> = names.iter().filter(|n| pred(n)).collect();
                r.check(
                    format!("no {what} in {dir}"),
                    hits.is_empty(),
                    if hits.is_empty() {
                        "empty".to_string()
                    } else {
                        list_some(&hits, 5)
                    },
                )
            }
            Ok(None) => r.pass(format!("no {what} in {dir}"), "folder absent"),
            Err(e) => r.fail(format!("no {what} in {dir}"), format!("{e:#}")),
        };
    }
    // APT sources: the profile's mirror, nothing pointing at the build's local repository.
    let mut sources = Vec::new();
    if let Ok(Some(t)) = text(fs, "/etc/apt/sources.list") {
        sources.push(("/etc/apt/sources.list".to_string(), t));
    }
    for n in fs
        .list("/etc/apt/sources.list.d")
        .ok()
        .flatten()
        .unwrap_or_default()
    {
        let p = format!("/etc/apt/sources.list.d/{n}");
        if let Ok(Some(t)) = text(fs, &p) {
            sources.push((p, t));
        }
    }
    let local: Vec<String> = sources
        .iter()
        .flat_map(|(p, t)| {
            t.lines()
                .map(str::trim)
                .filter(|l| {
                    !l.starts_with('#')
                        && (l.contains("file:")
                            || l.contains("127.0.0.1")
                            || l.contains("localhost")
                            || l.contains("copy:"))
                })
                .map(move |l| format!("{p}: {l}"))
        })
        .collect();
    r.check(
        "no build-time APT source left",
        local.is_empty(),
        if local.is_empty() {
            format!("{} source files", sources.len())
        } else {
            local.join("; ")
        },
    );
    let mirror = s.profile.rootfs.mirror.trim_end_matches('/');
    let suite = &s.profile.rootfs.suite;
    let has_mirror = sources.iter().any(|(_, t)| {
        t.contains(mirror)
            && t.lines().any(|l| {
                l.split_whitespace()
                    .any(|w| w == suite.as_str() || w == "Suites:" && l.contains(suite.as_str()))
            })
    });
    r.check(
        format!("APT source {mirror} {suite}"),
        has_mirror,
        sources
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
}

fn yaml_str<'v>(v: &'v serde_yaml::Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(|x| x.as_str())
}

fn yaml_list(v: Option<&serde_yaml::Value>) -> Vec<String> {
    match v {
        Some(serde_yaml::Value::Sequence(s)) => s
            .iter()
            .filter_map(|x| x.as_str())
            .map(|x| x.trim().to_string())
            .collect(),
        Some(serde_yaml::Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// The cloud-init NoCloud seed on the boot partition and cloud-init's configuration.
pub fn cloud_init(s: &Subject, r: &mut Report) {
    r.group("cloud-init seed");
    let user = &s.profile.rootfs.user;
    let Some(boot) = &s.boot else {
        r.fail(
            "boot partition readable",
            "no FAT boot partition could be opened",
        );
        return;
    };
    let bfs = boot.fs.as_ref();
    let ud = read_or_fail(r, bfs, "/user-data", "user-data present");
    if let Some(ud) = ud {
        r.pass("user-data present", format!("{} bytes", ud.len()));
        r.check(
            "user-data starts with #cloud-config",
            ud.lines().next().map(str::trim) == Some("#cloud-config"),
            format!("first line {:?}", ud.lines().next().unwrap_or("")),
        );
        match serde_yaml::from_str::<serde_yaml::Value>(&ud) {
            Ok(v) if v.is_mapping() => {
                r.pass("user-data is YAML", "a mapping");
                let users = v
                    .get("users")
                    .and_then(|u| u.as_sequence())
                    .cloned()
                    .unwrap_or_default();
                let entry = users
                    .iter()
                    .find(|u| yaml_str(u, "name") == Some(user.as_str()));
                match entry {
                    Some(u) => {
                        r.pass(format!("user-data creates user {user}"), "in users:");
                        let groups = yaml_list(u.get("groups"));
                        for g in ["sudo", "docker"] {
                            if g == "docker" && s.profile.rootfs.engine != Engine::Docker {
                                continue;
                            }
                            r.check(
                                format!("{user} is in group {g}"),
                                groups.iter().any(|x| x == g),
                                format!("groups {groups:?}"),
                            );
                        }
                        let shell = yaml_str(u, "shell");
                        r.check(
                            format!("{user} login shell"),
                            shell.is_some_and(|sh| sh.starts_with('/')),
                            format!("shell {shell:?}"),
                        );
                        let lock = u.get("lock_passwd").and_then(|x| x.as_bool());
                        let has_pw = u.get("passwd").is_some()
                            || u.get("hashed_passwd").is_some()
                            || u.get("plain_text_passwd").is_some()
                            || v.get("chpasswd")
                                .and_then(|c| c.get("users"))
                                .and_then(|x| x.as_sequence())
                                .is_some_and(|l| {
                                    l.iter().any(|e| yaml_str(e, "name") == Some(user.as_str()))
                                });
                        let keys = u
                            .get("ssh_authorized_keys")
                            .and_then(|k| k.as_sequence())
                            .map_or(0, |k| k.len());
                        r.check(
                            format!("{user} can log in"),
                            lock == Some(false) && has_pw || keys > 0,
                            format!("lock_passwd {lock:?}, password set {has_pw}, {keys} SSH keys"),
                        );
                        if has_pw {
                            let expire = v
                                .get("chpasswd")
                                .and_then(|c| c.get("expire"))
                                .and_then(|e| e.as_bool());
                            let per_user = v
                                .get("chpasswd")
                                .and_then(|c| c.get("users"))
                                .and_then(|x| x.as_sequence())
                                .and_then(|l| {
                                    l.iter()
                                        .find(|e| yaml_str(e, "name") == Some(user.as_str()))
                                        .cloned()
                                })
                                .and_then(|e| e.get("expire").and_then(|x| x.as_bool()));
                            let exp = per_user.or(expire);
                            r.check(
                                format!("{user}'s password expires at first login"),
                                exp == Some(true),
                                format!("chpasswd expire {:?}", exp),
                            );
                        }
                    }
                    None => {
                        r.fail(
                            format!("user-data creates user {user}"),
                            format!(
                                "users: {:?}",
                                users
                                    .iter()
                                    .filter_map(|u| yaml_str(u, "name").or(u.as_str()))
                                    .collect::<Vec<_>>()
                            ),
                        );
                    }
                }
                let want = &s.profile.rootfs.hostname;
                let h = yaml_str(&v, "hostname");
                r.check(
                    format!("user-data hostname {want}"),
                    h == Some(want.as_str()),
                    format!("hostname {h:?}"),
                );
            }
            Ok(_) => {
                r.fail("user-data is YAML", "not a mapping");
            }
            Err(e) => {
                r.fail("user-data is YAML", format!("{e}"));
            }
        }
    }
    if let Some(md) = read_or_fail(r, bfs, "/meta-data", "meta-data present") {
        r.pass("meta-data present", format!("{} bytes", md.len()));
        match serde_yaml::from_str::<serde_yaml::Value>(&md) {
            Ok(v) => {
                let id = v
                    .get("instance-id")
                    .and_then(|x| x.as_str())
                    .or_else(|| v.get("instance_id").and_then(|x| x.as_str()));
                r.check(
                    "meta-data has an instance-id",
                    id.is_some_and(|i| !i.is_empty()),
                    format!("instance-id {id:?}"),
                );
            }
            Err(e) => {
                r.fail("meta-data has an instance-id", format!("not YAML: {e}"));
            }
        }
    }
    if let Some(nc) = read_or_fail(r, bfs, "/network-config", "network-config present") {
        r.pass("network-config present", format!("{} bytes", nc.len()));
        match serde_yaml::from_str::<serde_yaml::Value>(&nc) {
            Ok(v) => {
                let v = v.get("network").cloned().unwrap_or(v);
                let ver = v.get("version").and_then(|x| x.as_u64());
                r.check(
                    "network-config version 1 or 2",
                    matches!(ver, Some(1) | Some(2)),
                    format!("version {ver:?}"),
                );
                let dhcp = match ver {
                    Some(2) => v
                        .get("ethernets")
                        .and_then(|e| e.as_mapping())
                        .is_some_and(|m| {
                            m.iter().any(|(k, e)| {
                                let name = e
                                    .get("match")
                                    .and_then(|m| m.get("name"))
                                    .and_then(|n| n.as_str())
                                    .or(k.as_str())
                                    .unwrap_or("");
                                // en*, eth*, e* (a glob matching both), or a name like eth0 / enp0s2.
                                let wired = name.starts_with('e');
                                wired && e.get("dhcp4").and_then(|d| d.as_bool()) == Some(true)
                            })
                        }),
                    Some(1) => v
                        .get("config")
                        .and_then(|c| c.as_sequence())
                        .is_some_and(|l| {
                            l.iter().any(|e| {
                                yaml_str(e, "type") == Some("physical")
                                    && e.get("subnets").and_then(|s| s.as_sequence()).is_some_and(
                                        |ss| {
                                            ss.iter().any(|s| {
                                                yaml_str(s, "type") == Some("dhcp")
                                                    || yaml_str(s, "type") == Some("dhcp4")
                                            })
                                        },
                                    )
                            })
                        }),
                    _ => false,
                };
                r.check(
                    "network-config does DHCP on the wired interface",
                    dhcp,
                    "ethernets (en*/eth*) with dhcp4",
                );
            }
            Err(e) => {
                r.fail("network-config version 1 or 2", format!("not YAML: {e}"));
            }
        }
    }
    let Some(root) = &s.root else {
        return;
    };
    let fs = root.fs.as_ref();
    let pkg = s.installed("cloud-init");
    r.check(
        "package cloud-init installed",
        pkg.is_some(),
        pkg.map_or("not installed".into(), |p| p.version.clone()),
    );
    match fs.stat("/etc/cloud/cloud-init.disabled") {
        Ok(None) => r.pass(
            "cloud-init not disabled",
            "no /etc/cloud/cloud-init.disabled",
        ),
        Ok(Some(_)) => r.fail(
            "cloud-init not disabled",
            "/etc/cloud/cloud-init.disabled present",
        ),
        Err(e) => r.fail("cloud-init not disabled", format!("{e:#}")),
    };
    // The datasource must find the seed on the boot partition.
    let mut cfgs = Vec::new();
    if let Ok(Some(t)) = text(fs, "/etc/cloud/cloud.cfg") {
        cfgs.push(("/etc/cloud/cloud.cfg".to_string(), t));
    }
    for n in fs
        .list("/etc/cloud/cloud.cfg.d")
        .ok()
        .flatten()
        .unwrap_or_default()
    {
        if n.ends_with(".cfg") {
            let p = format!("/etc/cloud/cloud.cfg.d/{n}");
            if let Ok(Some(t)) = text(fs, &p) {
                cfgs.push((p, t));
            }
        }
    }
    let label = boot.spec.label.clone().unwrap_or_default();
    let mount = s.boot_mount();
    let mut how = None;
    if label.eq_ignore_ascii_case("cidata") {
        how = Some(format!("boot partition label {label}"));
    }
    for (p, t) in &cfgs {
        let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(t) else {
            continue;
        };
        let Some(nc) = v.get("datasource").and_then(|d| d.get("NoCloud")) else {
            continue;
        };
        if let Some(l) = nc.get("fs_label").and_then(|x| x.as_str()) {
            if l == label {
                how = Some(format!("{p}: NoCloud fs_label {l}"));
            }
        }
        if let Some(sf) = nc.get("seedfrom").and_then(|x| x.as_str()) {
            let path = sf.trim_start_matches("file://");
            if path.trim_end_matches('/') == mount.trim_end_matches('/') {
                how = Some(format!("{p}: NoCloud seedfrom {sf}"));
            }
        }
    }
    r.check(
        "cloud-init reads the seed from the boot partition",
        how.is_some(),
        how.unwrap_or_else(|| {
            format!(
                "no NoCloud fs_label {label:?} or seedfrom {mount} in {} config files",
                cfgs.len()
            )
        }),
    );
    let units = [
        "cloud-init-local.service",
        "cloud-init-main.service",
        "cloud-init.service",
        "cloud-config.service",
        "cloud-final.service",
    ];
    let mut enabled = Vec::new();
    for d in fs
        .list("/etc/systemd/system")
        .ok()
        .flatten()
        .unwrap_or_default()
    {
        if !d.ends_with(".wants") {
            continue;
        }
        for n in fs
            .list(&format!("/etc/systemd/system/{d}"))
            .ok()
            .flatten()
            .unwrap_or_default()
        {
            if units.contains(&n.as_str()) || n == "cloud-init.target" {
                enabled.push(format!("{d}/{n}"));
            }
        }
    }
    r.check(
        "cloud-init units enabled",
        enabled.iter().any(|e| e.contains("cloud-init-local"))
            || enabled
                .iter()
                .any(|e| e.starts_with("multi-user.target.wants/cloud-init")),
        if enabled.is_empty() {
            "no cloud-init unit in /etc/systemd/system/*.wants".to_string()
        } else {
            list_some(&enabled, 6)
        },
    );
}

/// Shell-style glob match (`*`, `?`), as netplan/cloud-init match interface names.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), name.as_bytes())
}

/// Parse os-release (`KEY=value`, optionally quoted).
pub fn parse_os_release(t: &str) -> Vec<(String, String)> {
    t.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// `/etc/os-release` names the distribution, the image, its version and the board.
pub fn os_release(s: &Subject, r: &mut Report) {
    r.group("os-release");
    let Some(root) = &s.root else {
        r.fail(
            "root filesystem readable",
            "no root partition could be opened",
        );
        return;
    };
    let fs = root.fs.as_ref();
    let Some(t) = read_or_fail(r, fs, "/etc/os-release", "/etc/os-release present") else {
        return;
    };
    let kv = parse_os_release(&t);
    r.check(
        "/etc/os-release present",
        !kv.is_empty(),
        format!("{} fields", kv.len()),
    );
    let get = |k: &str| {
        kv.iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
    };
    for k in ["NAME", "ID", "PRETTY_NAME", "VERSION_ID"] {
        let v = get(k);
        r.check(
            format!("os-release {k}"),
            v.as_ref().is_some_and(|v| !v.is_empty()),
            format!("{k}={v:?}"),
        );
    }
    let id_debian = get("ID").as_deref() == Some("debian")
        || get("ID_LIKE").is_some_and(|l| l.split_whitespace().any(|w| w == "debian"));
    r.check(
        "os-release is Debian or like it",
        id_debian,
        format!("ID={:?} ID_LIKE={:?}", get("ID"), get("ID_LIKE")),
    );
    let suite = &s.profile.rootfs.suite;
    r.check(
        format!("os-release VERSION_CODENAME {suite}"),
        get("VERSION_CODENAME").as_deref() == Some(suite.as_str()),
        format!("VERSION_CODENAME={:?}", get("VERSION_CODENAME")),
    );
    let image = s.profile.image_name();
    let names_image = kv.iter().any(|(k, v)| {
        (k.starts_with("IMAGE_") || k == "VARIANT" || k == "VARIANT_ID" || k.contains("NAME"))
            && (v.contains(&image) || v.contains("drydock"))
    });
    r.check(
        "os-release names the image",
        names_image,
        format!(
            "IMAGE_ID={:?} VARIANT={:?} PRETTY_NAME={:?}",
            get("IMAGE_ID"),
            get("VARIANT"),
            get("PRETTY_NAME")
        ),
    );
    let board = &s.profile.name;
    let names_board = kv.iter().any(|(k, v)| {
        k != "NAME"
            && v.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == '"')
                .any(|w| w == board)
    });
    r.check(
        format!("os-release names the board {board}"),
        names_board,
        list_some(
            &kv.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            20,
        ),
    );
    let iv = get("IMAGE_VERSION");
    let manifest_version = s
        .bundle
        .as_ref()
        .and_then(|b| b.manifest.as_ref())
        .and_then(|m| m.as_ref().ok())
        .and_then(|m| m.get("version").and_then(|v| v.as_str()).map(String::from));
    match manifest_version {
        Some(mv) => r.check(
            "os-release IMAGE_VERSION matches the manifest",
            iv.as_deref() == Some(mv.as_str()),
            format!("IMAGE_VERSION={iv:?}, manifest version {mv:?}"),
        ),
        None => r.check(
            "os-release IMAGE_VERSION",
            iv.as_ref().is_some_and(|v| !v.is_empty()),
            format!("IMAGE_VERSION={iv:?}"),
        ),
    };
    match text(fs, "/etc/debian_version") {
        Ok(Some(v)) => r.pass("/etc/debian_version present", v.trim().to_string()),
        Ok(None) => r.fail("/etc/debian_version present", "missing"),
        Err(e) => r.fail("/etc/debian_version present", e),
    };
}

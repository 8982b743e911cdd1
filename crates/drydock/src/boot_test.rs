//! `drydock boot-test IMAGE --board B`: boot a copy of an image under QEMU software emulation and
//! check the running system over SSH.
//!
//! Steps: copy the image (sparse) into a work folder and grow it to the profile's
//! `qemu.disk-size`; configure the copy through its NoCloud seed (a fresh ed25519 key for the
//! default user, a test hostname); take kernel, initrd and device tree out of the image (FAT boot
//! partition, else `/boot` of the ext4 root via debugfs); build the kernel command line from the
//! image's `cmdline.txt` with the console QEMU captures; start QEMU (serial console to a log file,
//! SSH forwarded to a loopback port); wait for SSH; then one SSH session per check. The serial log
//! is kept; the disk copy is removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::checks::boot::{boot_kernel_version, config_txt_value};
use crate::checks::disk::ImageDisk;
use crate::checks::image::{read_follow, FsRead};
use crate::checks::layout::cmdline as image_cmdline;
use crate::checks::subject::{HostFacts, Subject};
use crate::checks::{readiness, Report};
use crate::cli::BootTestArgs;
use crate::image_test::{board_for, print_report, require_image};
use crate::profile::{self, BootloaderKind, Engine, Profile};
use crate::qemu::{self, Launch, Vm};
use crate::seed::{secrets, Changes};
use crate::ssh::{self, Ssh};
use crate::test_container;
use crate::{Ctx, UsageError};

/// Budgets after login (seconds); printed at start.
pub const SYSTEM_RUNNING_TIMEOUT: u64 = 600;
pub const DOCKER_READY_TIMEOUT: u64 = 300;
pub const CONTAINER_RUN_TIMEOUT: u64 = 300;

/// The prepared work folder: a configured, grown disk copy and what QEMU boots.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub work: PathBuf,
    pub launch: Launch,
    pub key: ssh::Key,
    pub user: String,
    pub hostname: String,
    pub disk_size: u64,
    /// Root partition size and start in the image before boot (to see it grow).
    pub root_size: u64,
    pub root_start: u64,
    /// Kernel version the image boots.
    pub kernel_version: String,
    /// Whether the image carries the test container as a preload (in the assembler's preload
    /// folder).
    pub image_has_preload: bool,
}

/// Timings of one boot.
#[derive(Debug, Clone, Default)]
pub struct Times {
    pub login: Option<Duration>,
    pub docker_ready: Option<Duration>,
    pub total: Option<Duration>,
}

fn fmt_dur(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0} s", d.as_secs_f64()))
}

/// The kernel command line for QEMU: the image's own (cmdline.txt; for direct boot without one,
/// root=PARTUUID plus the profile's arguments) with every `console=` replaced by the console QEMU
/// captures.
pub fn qemu_cmdline(image_line: &str, console: &str) -> String {
    let mut t: Vec<String> = image_line
        .split_whitespace()
        .filter(|a| !a.starts_with("console="))
        .map(String::from)
        .collect();
    t.push(format!("console={console},115200"));
    t.join(" ")
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

fn read_required(fs: &dyn FsRead, path: &str, what: &str) -> Result<Vec<u8>> {
    read_follow(fs, path)
        .with_context(|| format!("reading {what} {path}"))?
        .ok_or_else(|| anyhow::anyhow!("{what} {path} is missing in the image"))
}

/// Seed the copy through `drydock configure`'s library: SSH key and hostname for the default
/// user, plus a random password (a password set for a device is not expired, so key logins are
/// not forced through a password change first).
fn configure_copy(
    disk: &Path,
    profile: &Profile,
    user: &str,
    hostname: &str,
    pubkey: &str,
    work: &Path,
) -> Result<()> {
    let salt = secrets::random_salt().map_err(anyhow::Error::msg)?;
    let pw = format!("bt-{salt}");
    let changes = Changes {
        hostname: Some(hostname.to_string()),
        user: Some(user.to_string()),
        password_hash: Some(secrets::sha512_crypt(&pw, &salt).map_err(anyhow::Error::msg)?),
        ssh_keys: Some(vec![pubkey.to_string()]),
        ..Default::default()
    };
    // QEMU's NIC under another name than the image's network-config expects: DHCP on that one.
    let mut files = Vec::new();
    if let Some(iface) = profile.qemu.as_ref().and_then(|q| q.interface.as_deref()) {
        let src = work.join("network-config");
        write_file(
            &src,
            format!("version: 2\nethernets:\n  {iface}:\n    dhcp4: true\n").as_bytes(),
        )?;
        files.push(crate::configure::FileCopy {
            src,
            dest: "network-config".into(),
        });
    }
    crate::configure::apply_to(disk, Some(profile), &changes, &files)
        .context("configuring the seed of the test copy")?;
    Ok(())
}

/// Copy, grow, configure and unpack an image for QEMU.
pub fn prepare(profile: &Profile, image: &Path, work: &Path) -> Result<Prepared> {
    require_image(image)?;
    let q = profile.qemu.as_ref().ok_or_else(|| {
        UsageError(format!(
            "board {} has no `qemu:` section: boot-test does not know how to boot it",
            profile.name
        ))
    })?;
    if q.machine.starts_with("raspi") && !q.disk_size.0.is_power_of_two() {
        return Err(UsageError(format!(
            "board {}: qemu.disk-size {} is not a power of two, which QEMU's {} SD card needs",
            profile.name, q.disk_size.0, q.machine
        ))
        .into());
    }
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let disk_path = work.join("disk.img");
    let started = Instant::now();
    artifact::fsutil::copy_sparse(image, &disk_path)?;
    let len = std::fs::metadata(&disk_path)
        .with_context(|| format!("reading {}", disk_path.display()))?
        .len();
    if len > q.disk_size.0 {
        bail!(
            "{} is {len} bytes, larger than board {}'s qemu.disk-size {}",
            image.display(),
            profile.name,
            q.disk_size.0
        );
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk_path)
        .and_then(|f| f.set_len(q.disk_size.0))
        .with_context(|| format!("growing {} to {} bytes", disk_path.display(), q.disk_size.0))?;
    tracing::info!(
        "copied {} to {} and grew it to {} MiB in {:.1} s",
        image.display(),
        disk_path.display(),
        q.disk_size.0 >> 20,
        started.elapsed().as_secs_f64()
    );

    let disk = ImageDisk::open(&disk_path)?;
    let subject = Subject::open(profile, &disk, None, HostFacts::default());
    let root = subject
        .root
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{}: no root partition could be opened", image.display()))?;
    let boot = subject.boot.as_ref();
    let version = boot_kernel_version(&subject).map_err(anyhow::Error::msg)?;

    // Kernel, initrd, device tree.
    let mut launch = Launch::from_profile(q);
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    let (kbytes, ibytes) = match (profile.bootloader.kind, boot) {
        (BootloaderKind::RpiFirmware, Some(b)) => {
            let cfg = String::from_utf8_lossy(&read_required(
                b.fs.as_ref(),
                "/config.txt",
                "boot config",
            )?)
            .into_owned();
            let k = config_txt_value(&cfg, "kernel")
                .ok_or_else(|| anyhow::anyhow!("config.txt has no kernel= line"))?;
            let i = config_txt_value(&cfg, "initramfs")
                .ok_or_else(|| anyhow::anyhow!("config.txt has no initramfs line"))?;
            (
                read_required(b.fs.as_ref(), &format!("/{k}"), "kernel")?,
                read_required(b.fs.as_ref(), &format!("/{i}"), "initramfs")?,
            )
        }
        (_, Some(b)) if matches!(read_follow(b.fs.as_ref(), "/vmlinuz"), Ok(Some(_))) => (
            read_required(b.fs.as_ref(), "/vmlinuz", "kernel")?,
            read_required(b.fs.as_ref(), "/initrd.img", "initramfs")?,
        ),
        _ => (
            read_required(
                root.fs.as_ref(),
                &format!("/boot/vmlinuz-{version}"),
                "kernel",
            )?,
            read_required(
                root.fs.as_ref(),
                &format!("/boot/initrd.img-{version}"),
                "initramfs",
            )?,
        ),
    };
    write_file(&kernel, &kbytes)?;
    write_file(&initrd, &ibytes)?;
    launch.kernel = kernel;
    launch.initrd = Some(initrd);
    if let Some(dtb) = &q.dtb {
        let base = dtb.rsplit('/').next().unwrap_or(dtb);
        let from_boot = boot.and_then(|b| {
            read_follow(b.fs.as_ref(), &format!("/{base}"))
                .ok()
                .flatten()
        });
        let bytes = match from_boot {
            Some(b) => b,
            None => read_required(
                root.fs.as_ref(),
                &format!("/usr/lib/linux-image-{version}/{dtb}"),
                "device tree",
            )?,
        };
        let p = work.join(base);
        write_file(&p, &bytes)?;
        launch.dtb = Some(p);
    }
    // Command line.
    let line = match image_cmdline(&subject).map_err(anyhow::Error::msg)? {
        Some(l) => l,
        None => {
            let rp = subject
                .parts
                .iter()
                .find(|(s, _)| s.mount.as_deref() == Some("/"))
                .and_then(|(_, p)| p.clone())
                .ok_or_else(|| anyhow::anyhow!("no root partition in the table"))?;
            let mut t = vec![format!("root=PARTUUID={}", rp.partuuid), "rw".into()];
            t.extend(profile.kernel.cmdline.iter().cloned());
            t.join(" ")
        }
    };
    launch.append = qemu_cmdline(&line, &q.console);
    let root_part = root.part.clone();
    // The assembler puts preload archives on the boot partition (PRELOAD_DIR, under its mount
    // point); the image's first boot loads them into the engine.
    let preload_path = format!(
        "{}/{}",
        image_assembler::image::PRELOAD_DIR,
        test_container::ARCHIVE
    );
    let image_has_preload = [Some(root), boot].into_iter().flatten().any(|m| {
        let mount = m.spec.mount.as_deref().unwrap_or("/").trim_end_matches('/');
        preload_path
            .strip_prefix(mount)
            .filter(|rel| rel.starts_with('/'))
            .is_some_and(|rel| matches!(m.fs.stat(rel), Ok(Some(_))))
    });
    let boot_start = boot.map(|b| b.part.start);
    drop(subject);
    drop(disk);

    // Configure through the seed.
    let key = ssh::keygen(work)?;
    let user = profile.rootfs.user.clone();
    let hostname = format!(
        "boottest-{}",
        &artifact::sha256_bytes(key.public.as_bytes())[..6]
    );
    if boot_start.is_none() {
        bail!(
            "{}: no FAT boot partition to write the cloud-init seed to",
            image.display()
        );
    }
    configure_copy(&disk_path, profile, &user, &hostname, &key.public, work)?;
    launch.disk = disk_path;
    launch.serial_log = work.join("serial.log");
    Ok(Prepared {
        work: work.to_path_buf(),
        launch,
        key,
        user,
        hostname,
        disk_size: q.disk_size.0,
        root_size: root_part.size,
        root_start: root_part.start,
        kernel_version: version,
        image_has_preload,
    })
}

/// Boot the prepared copy and run the SSH checks. `archive` is the test container archive, loaded
/// over SSH when the image does not preload it.
pub fn boot_and_check(
    p: &Prepared,
    profile: &Profile,
    login_timeout: Duration,
    archive: Option<&Path>,
    r: &mut Report,
) -> Result<Times> {
    let mut times = Times::default();
    let mut launch = p.launch.clone();
    launch.ssh_port = qemu::free_port()?;
    let _ = std::fs::remove_file(&launch.serial_log);
    let mut vm = Vm::start(&launch)?;
    let ssh = Ssh {
        key: p.key.private.clone(),
        port: launch.ssh_port,
        user: p.user.clone(),
    };
    eprintln!(
        "boot-test: QEMU {} started; SSH on 127.0.0.1:{}; serial console {}; waiting up to {} s for login",
        launch.machine,
        launch.ssh_port,
        launch.serial_log.display(),
        login_timeout.as_secs()
    );
    r.group("boot");
    // Wait for SSH, watching QEMU and the console for reasons to stop early.
    let mut last_err = String::new();
    let login = loop {
        let waited = vm.started.elapsed();
        if let Some(status) = vm.exited()? {
            r.fail(
                format!("reaches SSH login within {} s", login_timeout.as_secs()),
                format!(
                    "QEMU exited ({status}) after {:.0} s: {}",
                    waited.as_secs_f64(),
                    vm.qemu_output().trim()
                ),
            );
            return Ok(times);
        }
        if let Some(why) = qemu::fatal_in_log(&launch.serial_log) {
            r.fail(
                format!("reaches SSH login within {} s", login_timeout.as_secs()),
                format!("after {:.0} s: {why}", waited.as_secs_f64()),
            );
            return Ok(times);
        }
        if waited > login_timeout {
            r.fail(
                format!("reaches SSH login within {} s", login_timeout.as_secs()),
                format!(
                    "no SSH login after {:.0} s (last ssh error: {}){}",
                    waited.as_secs_f64(),
                    last_err.trim(),
                    if qemu::log_tail(&launch.serial_log, 400).contains(" login:") {
                        "; the console shows a login prompt, so the system booted but SSH is unreachable (network configuration? sshd?)"
                    } else {
                        ""
                    }
                ),
            );
            return Ok(times);
        }
        let o = ssh.run_once("true", None, Duration::from_secs(60))?;
        if o.ok() {
            break vm.started.elapsed();
        }
        last_err = o.describe();
        std::thread::sleep(Duration::from_secs(5));
    };
    times.login = Some(login);
    r.pass(
        format!("reaches SSH login within {} s", login_timeout.as_secs()),
        format!("login as {} after {:.0} s", p.user, login.as_secs_f64()),
    );
    eprintln!("boot-test: logged in after {:.0} s", login.as_secs_f64());

    // systemd: running, or degraded with the failed units named.
    let o = ssh.run(
        &format!("timeout {SYSTEM_RUNNING_TIMEOUT} systemctl is-system-running --wait"),
        Duration::from_secs(SYSTEM_RUNNING_TIMEOUT + 30),
    )?;
    let state = o.stdout.trim().to_string();
    if state == "running" {
        r.pass(
            "system reaches running",
            format!(
                "is-system-running: running after {:.0} s",
                vm.started.elapsed().as_secs_f64()
            ),
        );
    } else {
        let failed = ssh.run(
            "systemctl --failed --no-legend --plain --no-pager",
            Duration::from_secs(60),
        )?;
        let units: Vec<String> = failed
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        r.fail(
            "system reaches running",
            format!(
                "is-system-running: {state:?} ({}); failed units: {}",
                o.describe(),
                if units.is_empty() {
                    "none listed".into()
                } else {
                    units.join(", ")
                }
            ),
        );
    }
    let o = ssh.run(
        "systemctl --failed --no-legend --plain --no-pager",
        Duration::from_secs(60),
    )?;
    let failed: Vec<&str> = o
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    r.check(
        "no failed units",
        o.ok() && failed.is_empty(),
        if failed.is_empty() {
            o.describe()
        } else {
            failed.join(", ")
        },
    );

    r.group("first boot");
    let o = ssh.run("hostname", Duration::from_secs(60))?;
    r.check(
        format!("hostname is {}", p.hostname),
        o.stdout.trim() == p.hostname,
        o.describe(),
    );
    let o = ssh.run("id -nG", Duration::from_secs(60))?;
    let groups: Vec<&str> = o.stdout.split_whitespace().collect();
    r.check(
        format!("{} is in group sudo", p.user),
        groups.contains(&"sudo"),
        o.describe(),
    );
    if profile.rootfs.engine == Engine::Docker {
        r.check(
            format!("{} is in group docker", p.user),
            groups.contains(&"docker"),
            o.describe(),
        );
    }
    let o = ssh.run(
        "df -B1 --output=size / | tail -n 1",
        Duration::from_secs(60),
    )?;
    let fs_size: Option<u64> = o.stdout.trim().parse().ok();
    let room = p.disk_size.saturating_sub(p.root_start);
    r.check(
        "root filesystem grew to the disk",
        fs_size.is_some_and(|s| s > p.root_size && s >= room / 100 * 90),
        format!(
            "df / says {} MiB; the partition was {} MiB, the disk leaves it {} MiB",
            fs_size.map_or("?".into(), |s| (s >> 20).to_string()),
            p.root_size >> 20,
            room >> 20
        ),
    );
    let o = ssh.run(
        "sudo -n test -s /etc/ssh/ssh_host_ed25519_key && echo yes",
        Duration::from_secs(60),
    )?;
    r.check(
        "SSH host keys generated at first boot",
        o.stdout.trim() == "yes",
        o.describe(),
    );
    let o = ssh.run("cat /etc/machine-id", Duration::from_secs(60))?;
    let mid = o.stdout.trim();
    r.check(
        "machine-id generated",
        mid.len() == 32 && mid.chars().all(|c| c.is_ascii_hexdigit()),
        format!("{mid:?}"),
    );
    let o = ssh.run("sudo -n passwd -S root", Duration::from_secs(60))?;
    let status = o.stdout.split_whitespace().nth(1).unwrap_or("").to_string();
    r.check("root stays locked", status == "L", o.describe());

    r.group("running kernel");
    let o = ssh.run("uname -r", Duration::from_secs(60))?;
    r.check(
        format!("runs kernel {}", p.kernel_version),
        o.stdout.trim() == p.kernel_version,
        o.describe(),
    );
    let o = ssh.run(
        "if [ -r /proc/config.gz ]; then zcat /proc/config.gz; else cat /boot/config-$(uname -r); fi",
        Duration::from_secs(120),
    )?;
    if o.ok() {
        readiness::report(
            &o.stdout,
            profile.kernel.readiness,
            "running kernel config",
            r,
        );
    } else {
        r.fail("running kernel config readable", o.describe());
    }

    if profile.rootfs.engine == Engine::Docker {
        r.group("docker");
        // Ready: `docker info` answers (docker.service may still be starting).
        let start = Instant::now();
        let info = loop {
            let o = ssh.run(
                "docker info --format '{{json .}}'",
                Duration::from_secs(120),
            )?;
            if o.ok() {
                break Some(o);
            }
            if start.elapsed() > Duration::from_secs(DOCKER_READY_TIMEOUT) {
                r.fail(
                    "docker info answers",
                    format!("not within {DOCKER_READY_TIMEOUT} s: {}", o.describe()),
                );
                break None;
            }
            std::thread::sleep(Duration::from_secs(5));
        };
        if let Some(o) = info {
            times.docker_ready = Some(vm.started.elapsed());
            r.pass(
                "docker info answers",
                format!("after {:.0} s", vm.started.elapsed().as_secs_f64()),
            );
            match serde_json::from_str::<serde_json::Value>(o.stdout.trim()) {
                Ok(v) => {
                    let driver = v.get("Driver").and_then(|x| x.as_str()).unwrap_or("");
                    r.check(
                        "docker storage driver overlay2",
                        driver == "overlay2",
                        format!("Driver {driver:?}"),
                    );
                    let cg = v.get("CgroupDriver").and_then(|x| x.as_str()).unwrap_or("");
                    let cv = v
                        .get("CgroupVersion")
                        .and_then(|x| x.as_str())
                        .unwrap_or("");
                    r.check(
                        "docker cgroup driver set",
                        cg == "systemd" || cg == "cgroupfs",
                        format!("CgroupDriver {cg:?}, cgroup v{cv}"),
                    );
                    let warnings: Vec<String> = v
                        .get("Warnings")
                        .and_then(|w| w.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|w| w.as_str().map(String::from))
                        .collect();
                    let serious: Vec<&String> = warnings
                        .iter()
                        .filter(|w| {
                            w.contains("memory limit") || w.contains("cgroup") && w.contains("not")
                        })
                        .collect();
                    r.check(
                        "docker sees the memory cgroup",
                        serious.is_empty(),
                        if warnings.is_empty() {
                            "no warnings".into()
                        } else {
                            warnings.join("; ")
                        },
                    );
                }
                Err(e) => {
                    r.fail(
                        "docker storage driver overlay2",
                        format!("docker info is not JSON: {e}"),
                    );
                }
            }
            container_checks(p, &ssh, archive, r)?;
        }
    }
    times.total = Some(vm.started.elapsed());
    vm.close()?;
    Ok(times)
}

fn container_checks(p: &Prepared, ssh: &Ssh, archive: Option<&Path>, r: &mut Report) -> Result<()> {
    let img = test_container::IMAGE_REF;
    let present = ssh.run(
        &format!("docker image inspect {img} >/dev/null && echo present"),
        Duration::from_secs(120),
    )?;
    let loaded_at_boot = present.stdout.trim() == "present";
    if p.image_has_preload {
        r.check(
            format!("preloaded {img} loaded at first boot"),
            loaded_at_boot,
            present.describe(),
        );
    }
    if !loaded_at_boot {
        match archive {
            Some(a) => {
                let o = ssh.run_input(
                    "docker load",
                    Some(a),
                    Duration::from_secs(CONTAINER_RUN_TIMEOUT),
                )?;
                r.check(
                    format!("{img} loads over SSH (the image has no preload)"),
                    o.ok(),
                    o.describe(),
                );
            }
            None => {
                r.fail(
                    format!("{img} available"),
                    "not preloaded, and no test container archive to load",
                );
                return Ok(());
            }
        }
    }
    let token = format!(
        "drydock-{}",
        &artifact::sha256_bytes(format!("{:?}{}", Instant::now(), p.hostname).as_bytes())[..12]
    );
    let o = ssh.run(
        &format!("docker run --rm {img} echo {token}"),
        Duration::from_secs(CONTAINER_RUN_TIMEOUT),
    )?;
    r.check(
        format!("docker run {img} prints the token"),
        o.ok() && o.stdout.trim() == token,
        o.describe(),
    );
    let o = ssh.run(
        &format!("docker run --rm {img} uname -m"),
        Duration::from_secs(CONTAINER_RUN_TIMEOUT),
    )?;
    r.check(
        "container runs natively (uname -m)",
        o.ok() && o.stdout.trim() == "aarch64",
        o.describe(),
    );
    Ok(())
}

/// The work folder: `--work-dir`, else `boot-test-<board>` beside the image.
pub fn work_dir(image: &Path, board: &str, given: Option<&Path>) -> PathBuf {
    match given {
        Some(d) => d.to_path_buf(),
        None => image
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(format!("boot-test-{board}")),
    }
}

/// Prepare, boot and check; the report, the timings and the serial log path.
pub fn boot_test(
    ctx: &Ctx,
    profile: &Profile,
    image: &Path,
    work: &Path,
    login_timeout: Duration,
) -> Result<(Report, Times, PathBuf)> {
    let t0 = Instant::now();
    let archive = if profile.rootfs.engine == Engine::Docker {
        Some(test_container::ensure(&ctx.store, profile)?)
    } else {
        None
    };
    let p = prepare(profile, image, work)?;
    let mut r = Report::new();
    let res = boot_and_check(&p, profile, login_timeout, archive.as_deref(), &mut r);
    // The disk copy and unpacked boot files are rebuilt from the image on every run.
    for f in [&p.launch.disk, &p.launch.kernel] {
        let _ = std::fs::remove_file(f);
    }
    if let Some(i) = &p.launch.initrd {
        let _ = std::fs::remove_file(i);
    }
    let mut times = res?;
    if times.total.is_none() {
        times.total = Some(t0.elapsed());
    }
    Ok((r, times, p.launch.serial_log.clone()))
}

pub fn run(ctx: &Ctx, a: BootTestArgs) -> Result<ExitCode> {
    require_image(&a.image)?;
    let (board, from) = board_for(&a.image, a.board.as_deref());
    let profile = profile::load(&board)?;
    let work = work_dir(&a.image, &board, a.work_dir.as_deref());
    eprintln!(
        "boot-test: board {board} ({from}); work folder {}; timeouts: login {} s, system running {SYSTEM_RUNNING_TIMEOUT} s, docker ready {DOCKER_READY_TIMEOUT} s, each container run {CONTAINER_RUN_TIMEOUT} s",
        work.display(),
        a.timeout
    );
    let (r, times, log) = boot_test(
        ctx,
        &profile,
        &a.image,
        &work,
        Duration::from_secs(a.timeout),
    )?;
    eprintln!(
        "boot-test: time to login {}, to docker ready {}, total {}; serial log {}",
        fmt_dur(times.login),
        fmt_dur(times.docker_ready),
        fmt_dur(times.total),
        log.display()
    );
    if !r.ok() {
        eprintln!(
            "--- last lines of the serial console ({}):\n{}\n---",
            log.display(),
            qemu::log_tail(&log, 40)
        );
    }
    print_report(&r, a.json, "boot-test")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_gets_the_qemu_console() {
        let l = "console=serial0,115200 console=tty1 root=PARTUUID=1234abcd-02 rw fsck.repair=yes net.ifnames=0 rootwait rootfstype=ext4 cgroup_enable=memory cgroup_memory=1";
        let q = qemu_cmdline(l, "ttyS1");
        assert_eq!(
            q,
            "root=PARTUUID=1234abcd-02 rw fsck.repair=yes net.ifnames=0 rootwait rootfstype=ext4 cgroup_enable=memory cgroup_memory=1 console=ttyS1,115200"
        );
    }

    #[test]
    fn work_dir_beside_the_image() {
        assert_eq!(
            work_dir(Path::new("out/x.img"), "b", None),
            PathBuf::from("out/boot-test-b")
        );
        assert_eq!(
            work_dir(Path::new("x.img"), "b", None),
            PathBuf::from("./boot-test-b")
        );
        assert_eq!(
            work_dir(Path::new("x.img"), "b", Some(Path::new("/w"))),
            PathBuf::from("/w")
        );
    }
}

//! Running an image under QEMU system emulation for boot tests: the command line from a board
//! profile's `qemu:` section, a free loopback port for SSH, and a guard that kills QEMU when
//! dropped.
//!
//! Networking is QEMU's user mode (no root, no bridge); the guest's SSH port is forwarded to
//! `127.0.0.1:PORT` only. The serial console the kernel writes to goes to a log file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::profile::Qemu;

/// Everything QEMU needs to boot one image.
#[derive(Debug, Clone)]
pub struct Launch {
    pub machine: String,
    pub cpu: Option<String>,
    pub memory: u64,
    pub smp: Option<u32>,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub dtb: Option<PathBuf>,
    pub append: String,
    pub disk: PathBuf,
    /// Network device model (`virtio-net-pci`, `usb-net`).
    pub net: String,
    pub ssh_port: u16,
    pub serial_log: PathBuf,
}

impl Launch {
    /// Fill the machine part from a profile's `qemu:` section.
    pub fn from_profile(q: &Qemu) -> Launch {
        let virt = q.machine.starts_with("virt");
        Launch {
            machine: q.machine.clone(),
            cpu: q.cpu.clone(),
            memory: q.memory.0,
            // raspi machines have a fixed core count; virt gets two (the CI machine has two).
            smp: virt.then_some(2),
            kernel: PathBuf::new(),
            initrd: None,
            dtb: None,
            append: String::new(),
            disk: PathBuf::new(),
            net: q
                .net
                .clone()
                .unwrap_or_else(|| if virt { "virtio-net-pci" } else { "usb-net" }.into()),
            ssh_port: 0,
            serial_log: PathBuf::new(),
        }
    }

    fn is_raspi(&self) -> bool {
        self.machine.starts_with("raspi")
    }

    /// The qemu-system-aarch64 command.
    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-aarch64");
        c.arg("-M").arg(&self.machine);
        if let Some(cpu) = &self.cpu {
            if !self.is_raspi() {
                c.arg("-cpu").arg(cpu);
            }
        }
        c.arg("-m").arg(format!("{}M", self.memory >> 20));
        if let Some(n) = self.smp {
            c.arg("-smp").arg(n.to_string());
        }
        c.arg("-kernel").arg(&self.kernel);
        if let Some(i) = &self.initrd {
            c.arg("-initrd").arg(i);
        }
        if let Some(d) = &self.dtb {
            c.arg("-dtb").arg(d);
        }
        c.arg("-append").arg(&self.append);
        let disk = format!("file={},format=raw", self.disk.display());
        if self.is_raspi() {
            c.arg("-drive").arg(format!("{disk},if=sd"));
        } else {
            c.arg("-drive")
                .arg(format!("{disk},if=none,id=hd0,cache=unsafe"));
            c.arg("-device").arg("virtio-blk-pci,drive=hd0");
            c.arg("-device").arg("virtio-rng-pci");
        }
        c.arg("-netdev").arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22",
            self.ssh_port
        ));
        c.arg("-device").arg(format!("{},netdev=net0", self.net));
        c.args(["-display", "none", "-monitor", "none", "-no-reboot"]);
        // raspi3b: the first UART (PL011) is taken by Bluetooth in the device tree; the kernel's
        // console is the mini UART, QEMU's second serial port.
        if self.is_raspi() {
            c.args(["-serial", "null"]);
        }
        c.arg("-serial")
            .arg(format!("file:{}", self.serial_log.display()));
        c
    }
}

/// A free TCP port on 127.0.0.1 (the listener is closed before QEMU binds it; a clash makes QEMU
/// exit at once, which [`Vm::start`] reports).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr().context("reading the port")?.port())
}

/// A running QEMU; killed when dropped.
pub struct Vm {
    child: Option<Child>,
    pub started: Instant,
    pub serial_log: PathBuf,
    stderr_log: PathBuf,
}

impl Vm {
    /// Start QEMU; stdout/stderr go to `<serial log>.qemu`.
    pub fn start(l: &Launch) -> Result<Vm> {
        let stderr_log = l.serial_log.with_extension("qemu.log");
        let out = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", stderr_log.display()))?;
        let mut cmd = l.command();
        tracing::info!(command = %artifact::cmd::display(&cmd), "starting QEMU");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| {
                "starting qemu-system-aarch64 (is qemu-system-arm installed? `drydock doctor --boot-test`)"
                    .to_string()
            })?;
        let mut vm = Vm {
            child: Some(child),
            started: Instant::now(),
            serial_log: l.serial_log.clone(),
            stderr_log,
        };
        // QEMU rejects bad options (and a taken port) within a moment.
        std::thread::sleep(Duration::from_millis(700));
        if let Some(status) = vm.exited()? {
            bail!(
                "QEMU exited at once ({status}): {}",
                std::fs::read_to_string(&vm.stderr_log)
                    .unwrap_or_default()
                    .trim()
            );
        }
        Ok(vm)
    }

    /// `Some(status)` once QEMU has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(c) => c.try_wait().context("checking on QEMU"),
            None => Ok(None),
        }
    }

    /// What QEMU itself printed (errors, warnings).
    pub fn qemu_output(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Stop QEMU and wait for it.
    pub fn close(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().context("checking on QEMU")?.is_none() {
                c.kill().context("stopping QEMU")?;
            }
            c.wait().context("waiting for QEMU to stop")?;
        }
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The last `n` lines of a log file (lossy; control characters other than tab removed).
pub fn log_tail(path: &Path, n: usize) -> String {
    let b = std::fs::read(path).unwrap_or_default();
    let t = String::from_utf8_lossy(&b);
    let lines: Vec<String> = t
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect()
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Messages on the console after which the boot cannot succeed, with what they mean.
pub const FATAL_CONSOLE: &[(&str, &str)] = &[
    ("Kernel panic", "the kernel panicked"),
    (
        "Gave up waiting for root",
        "the initramfs did not find the root filesystem",
    ),
    (
        "does not exist.  Dropping to a shell",
        "the root device named on the command line does not exist",
    ),
    (
        "Dropping to a shell",
        "the initramfs gave up and dropped to a shell",
    ),
    (
        "You are in emergency mode",
        "systemd entered emergency mode",
    ),
    (
        "Failed to mount /sysroot",
        "the root filesystem did not mount",
    ),
];

/// The first fatal console message in a serial log, with the line it was found on.
pub fn fatal_in_log(path: &Path) -> Option<String> {
    let b = std::fs::read(path).ok()?;
    let t = String::from_utf8_lossy(&b);
    for (needle, meaning) in FATAL_CONSOLE {
        if let Some(line) = t.lines().find(|l| l.contains(needle)) {
            return Some(format!("{meaning}: {:?}", line.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::Size;

    fn q(machine: &str) -> Qemu {
        Qemu {
            machine: machine.into(),
            cpu: Some("cortex-a53".into()),
            memory: Size(1 << 30),
            boot: "direct".into(),
            dtb: Some("broadcom/bcm2837-rpi-3-b.dtb".into()),
            console: "ttyS1".into(),
            net: Some("usb-net".into()),
            disk_size: Size(4 << 30),
            interface: Some("usb0".into()),
        }
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn raspi3b_command() {
        let mut l = Launch::from_profile(&q("raspi3b"));
        l.kernel = "k".into();
        l.dtb = Some("d.dtb".into());
        l.disk = "disk.img".into();
        l.ssh_port = 2222;
        l.serial_log = "serial.log".into();
        l.append = "console=ttyS1,115200 root=PARTUUID=x".into();
        let a = args(&l.command()).join(" ");
        assert!(a.contains("-M raspi3b -m 1024M"), "{a}");
        assert!(a.contains("-drive file=disk.img,format=raw,if=sd"), "{a}");
        assert!(a.contains("hostfwd=tcp:127.0.0.1:2222-:22"), "{a}");
        assert!(a.contains("-device usb-net,netdev=net0"), "{a}");
        assert!(a.contains("-serial null -serial file:serial.log"), "{a}");
        assert!(!a.contains("-cpu"), "{a}");
        assert!(a.contains("-dtb d.dtb"), "{a}");
    }

    #[test]
    fn virt_command() {
        let mut v = q("virt");
        v.net = None;
        v.cpu = Some("cortex-a57".into());
        let mut l = Launch::from_profile(&v);
        l.serial_log = "s.log".into();
        let a = args(&l.command()).join(" ");
        assert!(a.contains("-cpu cortex-a57"), "{a}");
        assert!(a.contains("-smp 2"), "{a}");
        assert!(a.contains("virtio-blk-pci,drive=hd0"), "{a}");
        assert!(a.contains("-device virtio-net-pci,netdev=net0"), "{a}");
        assert!(!a.contains("-serial null"), "{a}");
    }

    #[test]
    fn fatal_console_lines_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.log");
        std::fs::write(
            &p,
            "ok\nALERT!  PARTUUID=deadbeef-02 does not exist.  Dropping to a shell!\n",
        )
        .unwrap();
        let f = fatal_in_log(&p).unwrap();
        assert!(f.contains("root device"), "{f}");
        std::fs::write(&p, "[  OK  ] Reached target multi-user.target\n").unwrap();
        assert!(fatal_in_log(&p).is_none());
        assert_eq!(log_tail(&p, 5), "[  OK  ] Reached target multi-user.target");
    }

    #[test]
    fn vm_guard_kills_on_drop() {
        // A stand-in long-running process proves the guard's kill-on-drop.
        let mut child = Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        let status = child.try_wait().unwrap();
        assert!(status.is_none());
        let vm = Vm {
            child: Some(child),
            started: Instant::now(),
            serial_log: PathBuf::new(),
            stderr_log: PathBuf::new(),
        };
        drop(vm);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(" Z "))
                    .unwrap_or(true)
        );
    }
}

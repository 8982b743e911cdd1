//! Running commands on a booted test image over SSH: a fresh ed25519 key, the OpenSSH client
//! with host-key checking off (the guest's keys are new on every boot) and a timeout per command.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A key pair made for one test.
#[derive(Debug, Clone)]
pub struct Key {
    pub private: PathBuf,
    pub public: String,
}

/// Make a new ed25519 key in `dir` (no passphrase).
pub fn keygen(dir: &Path) -> Result<Key> {
    let private = dir.join("id_ed25519");
    let _ = std::fs::remove_file(&private);
    let _ = std::fs::remove_file(private.with_extension("pub"));
    artifact::cmd::run(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "drydock-boot-test",
                "-f",
            ])
            .arg(&private),
    )
    .context("making the test SSH key")?;
    let public = std::fs::read_to_string(private.with_extension("pub"))
        .context("reading the test SSH public key")?
        .trim()
        .to_string();
    Ok(Key { private, public })
}

/// What a remote command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; None when killed (timeout) or ended by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout trimmed, or a description of the failure.
    pub fn describe(&self) -> String {
        if self.timed_out {
            return "timed out".into();
        }
        let mut s = format!("exit {:?}", self.code);
        if !self.stdout.trim().is_empty() {
            s.push_str(&format!(", stdout {:?}", self.stdout.trim()));
        }
        if !self.stderr.trim().is_empty() {
            s.push_str(&format!(", stderr {:?}", self.stderr.trim()));
        }
        s
    }
}

/// How often a command is tried when the SSH connection fails before it runs.
pub const CONNECT_ATTEMPTS: u32 = 6;
const RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Whether ssh failed to connect (its own exit 255, with a connection-level message), so the
/// remote command never ran and running it again is safe.
pub fn connection_failed(o: &Output) -> bool {
    const MESSAGES: &[&str] = &[
        "kex_exchange_identification",
        "ssh_exchange_identification",
        "Connection reset by peer",
        "Connection refused",
        "Connection closed by",
        "Connection timed out during banner exchange",
    ];
    o.code == Some(255) && MESSAGES.iter().any(|m| o.stderr.contains(m))
}

/// An SSH target on a loopback port.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub key: PathBuf,
    pub port: u16,
    pub user: String,
}

impl Ssh {
    fn command(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=8",
                "-o",
                "LogLevel=ERROR",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(remote);
        c
    }

    /// Run a remote shell command, feeding `stdin` (if any), killing it after `timeout`. When
    /// the SSH connection itself fails before the command runs (sshd restarting during first
    /// boot: cloud-init and the host key service restart it), it is tried again, up to
    /// [`CONNECT_ATTEMPTS`] times, 5 s apart, within the same `timeout`.
    pub fn run_input(
        &self,
        remote: &str,
        stdin: Option<&Path>,
        timeout: Duration,
    ) -> Result<Output> {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let o = self.run_once(remote, stdin, left)?;
            if attempt >= CONNECT_ATTEMPTS
                || !connection_failed(&o)
                || start.elapsed() + RETRY_PAUSE >= timeout
            {
                return Ok(o);
            }
            tracing::info!(
                "ssh connection failed ({}); trying again in {} s",
                o.stderr.trim(),
                RETRY_PAUSE.as_secs()
            );
            std::thread::sleep(RETRY_PAUSE);
            attempt += 1;
        }
    }

    /// One attempt, no retry (the login wait polls with it).
    pub fn run_once(
        &self,
        remote: &str,
        stdin: Option<&Path>,
        timeout: Duration,
    ) -> Result<Output> {
        let mut c = self.command(remote);
        tracing::debug!(command = %artifact::cmd::display(&c), "ssh");
        let input = match stdin {
            Some(p) => Stdio::from(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            ),
            None => Stdio::null(),
        };
        let mut child = c
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ssh (is openssh-client installed?)")?;
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait().context("waiting for ssh")? {
                break Some(s);
            }
            if start.elapsed() > timeout {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
        Ok(Output {
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
            timed_out,
        })
    }

    /// Run a remote shell command with a timeout.
    pub fn run(&self, remote: &str, timeout: Duration) -> Result<Output> {
        self.run_input(remote, None, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_are_retried() {
        let out = |code, stderr: &str| Output {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
            timed_out: false,
        };
        assert!(connection_failed(&out(
            Some(255),
            "kex_exchange_identification: read: Connection reset by peer"
        )));
        assert!(connection_failed(&out(
            Some(255),
            "ssh: connect to host 127.0.0.1 port 2201: Connection refused"
        )));
        // The remote command ran and failed: not retried.
        assert!(!connection_failed(&out(Some(1), "Connection refused")));
        // ssh's 255 for other reasons (a refused key): not retried either.
        assert!(!connection_failed(&out(
            Some(255),
            "pirate@127.0.0.1: Permission denied (publickey)."
        )));
        assert!(!connection_failed(&out(None, "")));
    }

    #[test]
    fn command_is_loopback_only_and_non_interactive() {
        let s = Ssh {
            key: "/k".into(),
            port: 2201,
            user: "pirate".into(),
        };
        let line = artifact::cmd::display(&s.command("true"));
        assert!(line.contains("pirate@127.0.0.1"), "{line}");
        assert!(line.contains("-p 2201"), "{line}");
        assert!(line.contains("BatchMode=yes"), "{line}");
        assert!(line.contains("StrictHostKeyChecking=no"), "{line}");
        assert!(line.contains("UserKnownHostsFile=/dev/null"), "{line}");
    }

    #[test]
    fn keygen_makes_an_ed25519_key() {
        let d = tempfile::tempdir().unwrap();
        let k = keygen(d.path()).unwrap();
        assert!(k.public.starts_with("ssh-ed25519 "), "{}", k.public);
        assert!(k.private.exists());
    }
}

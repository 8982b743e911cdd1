//! The one way drydock runs host tools (mmdebstrap, mke2fs, mcopy, gpg, qemu, ...).
//!
//! [`run`] logs the command line through `tracing`, gives the child a null stdin, captures stdout and
//! stderr, and on failure returns a [`CommandError`] carrying the full command line and the tail of
//! stderr. [`run_logged`] is the variant for long steps: stderr is streamed to the log line by line
//! as it arrives and its tail kept for the error.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// How many trailing stderr lines an error keeps.
const TAIL_LINES: usize = 25;

/// A host tool failed to start or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run `{command}`: {source}{hint}")]
    Spawn {
        command: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}", fmt_tail(.stderr_tail))]
    Failed {
        command: String,
        status: String,
        stderr_tail: String,
    },
}

fn fmt_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

impl CommandError {
    /// The stderr tail of a failed command (empty for spawn errors).
    pub fn stderr_tail(&self) -> &str {
        match self {
            CommandError::Failed { stderr_tail, .. } => stderr_tail,
            CommandError::Spawn { .. } => "",
        }
    }
}

/// Render a command line the way a shell user would type it.
pub fn display(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), quote(v)));
        }
    }
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

fn spawn_error(command: String, program: &OsStr, source: std::io::Error) -> CommandError {
    let hint = if source.kind() == std::io::ErrorKind::NotFound {
        format!(
            " (is `{}` installed? `drydock doctor` lists the host tools and how to install them)",
            program.to_string_lossy()
        )
    } else {
        String::new()
    };
    CommandError::Spawn {
        command,
        hint,
        source,
    }
}

/// Captured output of a successful command.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Run a command to completion with stdin null, capturing stdout and stderr.
pub fn run(cmd: &mut Command) -> Result<Output, CommandError> {
    let line = display(cmd);
    tracing::debug!(command = %line, "running");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| spawn_error(line.clone(), cmd.get_program(), e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(CommandError::Failed {
            command: line,
            status: out.status.to_string(),
            stderr_tail: tail(&stderr),
        });
    }
    Ok(Output {
        stdout: out.stdout,
        stderr,
    })
}

/// Log a child's output line by line (at debug, target `tool`) until it closes; returns its
/// tail. Bytes, not `lines()`: a line of invalid UTF-8 must not stop the reader (closing the
/// pipe would kill the tool with SIGPIPE on its next write).
fn log_lines(s: impl std::io::Read) -> String {
    let mut kept = String::new();
    let mut r = BufReader::new(s);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let l = String::from_utf8_lossy(&buf);
                let l = l.trim_end();
                tracing::debug!(target: "tool", "{l}");
                keep_tail(&mut kept, l);
            }
        }
    }
    kept
}

/// Run a long command: stdin null, stdout and stderr streamed to the log (at `info` for stderr lines
/// with `target: "tool"`, so `-v` shows progress), their tail kept for the error.
pub fn run_logged(cmd: &mut Command) -> Result<(), CommandError> {
    let line = display(cmd);
    // The program at `info`; the whole command line (often a long script) with `-v`.
    tracing::info!("running {}", cmd.get_program().to_string_lossy());
    tracing::debug!(command = %line, "running");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(line.clone(), cmd.get_program(), e))?;
    let stdout = child.stdout.take();
    let out_thread = std::thread::spawn(move || stdout.map(log_lines).unwrap_or_default());
    let err_kept = child.stderr.take().map(log_lines).unwrap_or_default();
    let out_kept = out_thread.join().unwrap_or_default();
    let status = child
        .wait()
        .map_err(|e| spawn_error(line.clone(), cmd.get_program(), e))?;
    if !status.success() {
        let mut t = err_kept;
        if t.trim().is_empty() {
            t = out_kept;
        }
        return Err(CommandError::Failed {
            command: line,
            status: status.to_string(),
            stderr_tail: tail(&t),
        });
    }
    Ok(())
}

fn keep_tail(kept: &mut String, line: &str) {
    kept.push_str(line);
    kept.push('\n');
    if kept.len() > 64 * 1024 {
        let cut = kept.len() - 32 * 1024;
        let cut = kept[cut..].find('\n').map(|i| cut + i + 1).unwrap_or(cut);
        kept.drain(..cut);
    }
}

/// The version of a host tool, as its Debian package reports it (`dpkg-query`), falling back to the
/// first line of `TOOL --version`. Used in cache keys. Returns "unknown" when neither answers.
pub fn tool_version(program: &str, package: &str) -> String {
    let q = run(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]));
    if let Ok(o) = q {
        let v = o.stdout_str();
        if !v.trim().is_empty() {
            return v.trim().to_string();
        }
    }
    match run(Command::new(program).arg("--version")) {
        Ok(o) => {
            let mut s = o.stdout_str();
            if s.trim().is_empty() {
                s = o.stderr;
            }
            s.lines().next().unwrap_or("unknown").trim().to_string()
        }
        Err(_) => "unknown".into(),
    }
}

/// Whether a program is on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    let extra = ["/usr/sbin", "/sbin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Read a whole stream to a string, lossy.
pub fn read_lossy(mut r: impl Read) -> String {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_command_and_stderr_tail() {
        let e =
            run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"])).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("sh -c"), "{s}");
        assert!(s.contains("exit status: 3"), "{s}");
        assert!(s.contains("one\ntwo"), "{s}");
    }

    #[test]
    fn stdin_is_null() {
        let o = run(Command::new("sh").args(["-c", "cat; echo done"])).unwrap();
        assert_eq!(o.stdout_str(), "done\n");
    }

    #[test]
    fn missing_program_hints_doctor() {
        let e = run(&mut Command::new("drydock-no-such-tool"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("drydock doctor"), "{e}");
    }

    #[test]
    fn logged_failure_keeps_tail() {
        let e = run_logged(Command::new("sh").args([
            "-c",
            "for i in $(seq 1 100); do echo line$i >&2; done; exit 1",
        ]))
        .unwrap_err();
        let t = e.stderr_tail();
        assert!(t.contains("line100"));
        assert!(!t.contains("line50\n"));
    }

    /// Invalid UTF-8 on stdout must not close the pipe: the tool keeps writing after it.
    #[test]
    fn logged_survives_invalid_utf8_on_stdout() {
        run_logged(Command::new("sh").args([
            "-c",
            "printf 'bad \\377\\376 line\\n'; for i in $(seq 1 20000); do echo more output line $i; done",
        ]))
        .unwrap();
    }

    #[test]
    fn quoting() {
        let mut c = Command::new("echo");
        c.args(["a b", "it's", "plain"]);
        assert_eq!(display(&c), r"echo 'a b' 'it'\''s' plain");
    }
}

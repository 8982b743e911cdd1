//! Running commands in a foreign-arch root tree: a chroot inside a private mount namespace.
//!
//! `unshare --mount --propagation private --fork` (util-linux) starts a short shell that mounts
//! proc, sysfs, a /dev bind, tmpfs on /run and /tmp, the requested bind mounts, and then chroots.
//! Every mount lives in the namespace only, so it vanishes when the namespace's last process exits,
//! whatever happens to drydock; nothing is ever mounted on the host. Foreign binaries run through
//! qemu-user registered with binfmt's F flag (the interpreter is opened at registration, so nothing
//! is copied into the tree). [`Chroot`] is the guard: it checks that no mount is left under the
//! tree and removes the bind-mount folders it created.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The outer script: run by `sh` inside the new mount namespace, as root.
/// Arguments: ROOT INNER_SCRIPT [SRC DST ro|rw]...
const OUTER: &str = r#"set -eu
root=$1; inner=$2; shift 2
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
while [ $# -ge 3 ]; do
  src=$1; dst=$root$2; mode=$3; shift 3
  if [ -d "$src" ]; then mkdir -p "$dst"; else [ -e "$dst" ] || : > "$dst"; fi
  mount --bind "$src" "$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst"; fi
done
exec chroot "$root" /bin/sh -c "$inner"
"#;

/// A bind mount into the chroot.
#[derive(Debug, Clone)]
pub struct Bind {
    pub host: PathBuf,
    /// Absolute path inside the tree.
    pub inside: String,
    pub read_only: bool,
}

/// A root tree to run commands in.
#[derive(Debug)]
pub struct Chroot {
    root: PathBuf,
    binds: Vec<Bind>,
    created: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Chroot {
    pub fn new(root: &Path) -> Result<Chroot> {
        for d in ["proc", "sys", "dev", "run", "tmp"] {
            let p = root.join(d);
            if !p.is_dir() {
                bail!(
                    "{} is not a root tree: {} is missing",
                    root.display(),
                    p.display()
                );
            }
        }
        Ok(Chroot {
            root: root.to_path_buf(),
            binds: Vec::new(),
            created: Vec::new(),
            env: vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("LC_ALL".into(), "C.UTF-8".into()),
                ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
                ("DEBCONF_NONINTERACTIVE_SEEN".into(), "true".into()),
                ("HOME".into(), "/root".into()),
            ],
        })
    }

    /// Set an environment variable for the commands.
    pub fn env(&mut self, k: &str, v: &str) {
        self.env.retain(|(a, _)| a != k);
        self.env.push((k.into(), v.into()));
    }

    /// Bind `host` at `inside` for every later [`Chroot::run`]. Folders (or empty files) created in
    /// the tree for the mount point are removed again by [`Chroot::close`].
    pub fn bind(&mut self, host: &Path, inside: &str, read_only: bool) -> Result<()> {
        if !inside.starts_with('/') || inside.split('/').any(|c| c == "..") {
            bail!("bind target {inside:?} must be absolute without `..`");
        }
        let target = self.root.join(inside.trim_start_matches('/'));
        // Remember the outermost path component that does not exist yet, to remove it later.
        let mut first_missing = None;
        for anc in target.ancestors() {
            if anc == self.root {
                break;
            }
            if std::fs::symlink_metadata(anc).is_err() {
                first_missing = Some(anc.to_path_buf());
            }
        }
        if let Some(p) = first_missing {
            self.created.push(p);
        }
        let host = host
            .canonicalize()
            .with_context(|| format!("bind source {} for {inside}", host.display()))?;
        self.binds.push(Bind {
            host,
            inside: inside.to_string(),
            read_only,
        });
        Ok(())
    }

    /// Run `script` with `/bin/sh -c` inside the chroot; stderr is streamed to the log and its tail
    /// ends up in the error (apt's own message when a package install fails).
    pub fn run(&self, what: &str, script: &str) -> Result<()> {
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            OUTER,
            "drydock-chroot",
        ]);
        c.arg(&self.root).arg(script);
        for b in &self.binds {
            c.arg(&b.host)
                .arg(&b.inside)
                .arg(if b.read_only { "ro" } else { "rw" });
        }
        c.env_clear();
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let r = artifact::cmd::run_logged(&mut c).map_err(anyhow::Error::from);
        self.check_no_mounts()?;
        r.with_context(|| format!("{what} (in the {} chroot)", self.root.display()))
    }

    /// Fail when anything is mounted at or under the tree in drydock's own mount namespace.
    pub fn check_no_mounts(&self) -> Result<()> {
        let left = mounts_under(&self.root)?;
        if !left.is_empty() {
            bail!(
                "mounts left under {} after the chroot namespace ended: {}",
                self.root.display(),
                left.join(", ")
            );
        }
        Ok(())
    }

    /// Check for left-over mounts and remove the folders created for bind mounts.
    pub fn close(mut self) -> Result<()> {
        self.check_no_mounts()?;
        for p in std::mem::take(&mut self.created) {
            if p.is_dir() {
                std::fs::remove_dir_all(&p)
                    .with_context(|| format!("removing bind mount point {}", p.display()))?;
            } else if p.exists() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("removing bind mount point {}", p.display()))?;
            }
        }
        Ok(())
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if self.created.is_empty()
            || mounts_under(&self.root)
                .map(|m| !m.is_empty())
                .unwrap_or(true)
        {
            return;
        }
        for p in &self.created {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
    }
}

/// Mount points at or under `root` in this process's mount namespace.
pub fn mounts_under(root: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let root_s = root.to_string_lossy().to_string();
    let mut out = Vec::new();
    for line in text.lines() {
        // Field 5 is the mount point, with spaces etc. octal-escaped.
        if let Some(mp) = line.split(' ').nth(4) {
            let mp = unescape(mp);
            if mp == root_s || mp.starts_with(&format!("{root_s}/")) {
                out.push(mp);
            }
        }
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether this process can create a mount namespace and mount in it (root, or CAP_SYS_ADMIN).
pub fn can_unshare() -> bool {
    artifact::cmd::run(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "true",
    ]))
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    /// A host-arch "root tree" made of bind-mounted /usr: the namespace mounts proc and a bind,
    /// the script sees them, and afterwards nothing is mounted and the bind folder is gone.
    #[test]
    fn namespace_mounts_vanish() {
        if !can_unshare() {
            artifact::skip_test("cannot create mount namespaces here (needs root)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for p in ["proc", "sys", "dev", "run", "tmp", "usr", "data"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        for l in ["bin", "lib", "lib64", "sbin"] {
            std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
        }
        let host = d.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("x"), "from host").unwrap();
        let mut c = Chroot::new(&root).unwrap();
        c.bind(Path::new("/usr"), "/usr", true).unwrap();
        c.bind(&host, "/srv/host", false).unwrap();
        c.run("probe", "test -r /proc/self/status && grep -q 'from host' /srv/host/x && echo hi > /data/out && ! touch /usr/nope 2>/dev/null")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("data/out")).unwrap(),
            "hi\n"
        );
        assert!(mounts_under(&root).unwrap().is_empty());
        let e = format!(
            "{:#}",
            c.run(
                "failing step",
                "echo 'E: Unable to locate package nope' >&2; exit 100"
            )
            .unwrap_err()
        );
        assert!(e.contains("Unable to locate package nope"), "{e}");
        assert!(e.contains("failing step"), "{e}");
        c.close().unwrap();
        assert!(!root.join("srv").exists());
        assert!(root.join("usr").is_dir());
    }
}

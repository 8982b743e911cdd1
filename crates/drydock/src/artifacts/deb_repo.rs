//! The deb-repo artifact of a board: drydock's own packages, built with
//! [`deb_repo::DebBuilder`], in a signed APT repository.
//!
//! Packages (all `Architecture: all`):
//! - `drydock-firstboot`: a systemd unit and script that, on the first boot, loads the container
//!   image archives found in `/boot/firmware/preload/*.tar` into docker (or podman), then
//!   disables itself;
//! - `drydock-board-<board>`: `/etc/drydock/board` (the board name) and
//!   `/etc/drydock/board-description`.
//!
//! The repository (suite `drydock`, component `main`, the board's architecture) is signed with
//! the key kept in `<cache>/aux/deb-repo-key` (generated on first use). The cache key covers the
//! package specs, the repository spec, the key's fingerprint and gpg's version.

use std::path::Path;

use anyhow::{Context, Result};
use artifact::{CacheKey, Manifest};
use deb_repo::gpg::SigningKey;
use deb_repo::repo::{DistsLayout, RepoOptions};
use deb_repo::{DebBuilder, Stanza};
use serde::Serialize;

use super::Built;
use crate::profile::Profile;
use crate::Ctx;

/// Artifact kind in manifests and the store.
pub const KIND: &str = "deb-repo";
/// Suite and component of drydock's repository (what sources.list names).
pub const SUITE: &str = "drydock";
pub const COMPONENT: &str = "main";
const MAINTAINER: &str = "drydock <drydock@example.invalid>";

/// The first-boot script. `DRYDOCK_PRELOAD_DIR` and `DRYDOCK_STATE_DIR` exist for tests.
pub const FIRSTBOOT_SCRIPT: &str = r#"#!/bin/sh
# drydock first boot: load the container images preloaded on the boot partition into the
# container engine, then disable this service. A failed load keeps the service enabled, so the
# next boot tries again.
set -u
preload=${DRYDOCK_PRELOAD_DIR:-/boot/firmware/preload}
state=${DRYDOCK_STATE_DIR:-/var/lib/drydock}
if command -v docker >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null 2>&1; then
  engine=podman
else
  engine=
fi
status=0
for archive in "$preload"/*.tar; do
  [ -e "$archive" ] || continue
  if [ -z "$engine" ]; then
    echo "drydock-firstboot: neither docker nor podman is installed to load $archive" >&2
    status=1
    break
  fi
  echo "drydock-firstboot: $engine load -i $archive"
  if ! "$engine" load -i "$archive"; then
    echo "drydock-firstboot: loading $archive failed" >&2
    status=1
  fi
done
if [ "$status" -eq 0 ]; then
  mkdir -p "$state"
  : > "$state/firstboot.done"
  systemctl disable drydock-firstboot.service >/dev/null 2>&1 ||
    rm -f /etc/systemd/system/multi-user.target.wants/drydock-firstboot.service
fi
exit "$status"
"#;

/// The unit. Ordered after the engines (ordering on a unit that is not installed is a no-op).
pub const FIRSTBOOT_UNIT: &str = "[Unit]
Description=drydock first boot: load preloaded container images
After=local-fs.target docker.service podman.service
ConditionPathExists=!/var/lib/drydock/firstboot.done

[Service]
Type=oneshot
ExecStart=/usr/lib/drydock/firstboot
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
";

const UNIT_PATH: &str = "usr/lib/systemd/system/drydock-firstboot.service";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/drydock-firstboot.service";

/// One package of the repository, as data (its cache-key part) and as a builder.
#[derive(Debug, Clone, Serialize)]
pub struct PackageSpec {
    pub name: String,
    pub version: String,
    pub description: String,
    /// (installed path, content, mode, conffile)
    pub files: Vec<(String, String, u32, bool)>,
    /// (maintainer script name, body)
    pub scripts: Vec<(String, String)>,
    pub depends: Option<String>,
}

impl PackageSpec {
    /// The package builder (arch `all`, mtimes at `epoch`).
    pub fn builder(&self, epoch: u64) -> Result<DebBuilder> {
        let mut c = Stanza::new();
        c.set("Package", self.name.as_str())?;
        c.set("Version", self.version.as_str())?;
        c.set("Architecture", "all")?;
        c.set("Maintainer", MAINTAINER)?;
        if let Some(d) = &self.depends {
            c.set("Depends", d.as_str())?;
        }
        c.set("Section", "admin")?;
        c.set("Priority", "optional")?;
        c.set("Description", self.description.as_str())?;
        c.validate_binary()
            .with_context(|| format!("control file of {}", self.name))?;
        let mut b = DebBuilder::new(c);
        b.epoch(epoch);
        for (path, content, mode, conffile) in &self.files {
            b.file(path, content.as_bytes(), *mode)?;
            if *conffile {
                b.conffile(path)?;
            }
        }
        for (name, body) in &self.scripts {
            b.script(name, body.as_bytes())?;
        }
        Ok(b)
    }
}

/// The repository's spec: what the cache key covers.
#[derive(Debug, Clone, Serialize)]
pub struct RepoSpec {
    pub board: String,
    pub arch: String,
    pub suite: String,
    pub component: String,
    pub key_fingerprint: String,
    /// `SOURCE_DATE_EPOCH` when set (package mtimes and the Release date).
    pub source_date_epoch: Option<u64>,
    pub packages: Vec<PackageSpec>,
}

/// drydock's own packages for a board.
pub fn packages(profile: &Profile) -> Vec<PackageSpec> {
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let firstboot = PackageSpec {
        name: "drydock-firstboot".into(),
        version: version.clone(),
        description: "load preloaded container images on the first boot\n \
             On the first boot, loads the image archives in /boot/firmware/preload/*.tar\n \
             into docker (or podman), then disables itself."
            .into(),
        files: vec![
            ("usr/lib/drydock/firstboot".into(), FIRSTBOOT_SCRIPT.into(), 0o755, false),
            (UNIT_PATH.into(), FIRSTBOOT_UNIT.into(), 0o644, false),
        ],
        scripts: vec![
            (
                "postinst".into(),
                format!(
                    "#!/bin/sh\nset -e\n# Enable the unit (what `systemctl enable` does; works offline in an image).\n\
                     if [ \"$1\" = configure ] && [ ! -e \"$DPKG_ROOT/var/lib/drydock/firstboot.done\" ]; then\n  \
                     mkdir -p \"$DPKG_ROOT{dir}\"\n  ln -sf /{UNIT_PATH} \"$DPKG_ROOT{WANTS_LINK}\"\nfi\n",
                    dir = Path::new(WANTS_LINK)
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            ),
            (
                "postrm".into(),
                format!(
                    "#!/bin/sh\nset -e\nif [ \"$1\" = remove ] || [ \"$1\" = purge ]; then\n  rm -f \"$DPKG_ROOT{WANTS_LINK}\"\nfi\n\
                     if [ \"$1\" = purge ]; then\n  rm -f \"$DPKG_ROOT/var/lib/drydock/firstboot.done\"\nfi\n"
                ),
            ),
        ],
        depends: None,
    };
    let board = profile.name.to_ascii_lowercase();
    let summary = profile.description.lines().next().unwrap_or("").trim();
    let board_pkg = PackageSpec {
        name: format!("drydock-board-{board}"),
        version,
        description: format!(
            "drydock board identity: {board}\n {}",
            if summary.is_empty() { "." } else { summary }
        ),
        files: vec![
            (
                "etc/drydock/board".into(),
                format!("{}\n", profile.name),
                0o644,
                true,
            ),
            (
                "etc/drydock/board-description".into(),
                format!("{}\n", profile.description.trim()),
                0o644,
                true,
            ),
        ],
        scripts: vec![],
        depends: None,
    };
    vec![firstboot, board_pkg]
}

/// The spec of a board's repository, signed by `key`.
pub fn spec(profile: &Profile, key_fingerprint: &str) -> RepoSpec {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    RepoSpec {
        board: profile.name.clone(),
        arch: profile.arch.clone(),
        suite: SUITE.into(),
        component: COMPONENT.into(),
        key_fingerprint: key_fingerprint.into(),
        source_date_epoch: epoch,
        packages: packages(profile),
    }
}

/// Build `spec`'s repository into `dir` (an empty folder) and return the manifest.
pub fn build_into(spec: &RepoSpec, key: &SigningKey, dir: &Path, digest: &str) -> Result<Manifest> {
    let epoch = spec.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    // The .debs are built beside the artifact folder (never inside it), then hard-linked in.
    let parent = dir.parent().unwrap_or(dir);
    let debs = tempfile::Builder::new()
        .prefix(".tmp-debs-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    let mut names = Vec::new();
    for p in &spec.packages {
        let path = p
            .builder(epoch)?
            .write_into(debs.path())
            .with_context(|| format!("writing package {}", p.name))?;
        names.push(format!("{} {}", p.name, p.version));
        tracing::debug!(package = %path.display(), "built");
    }
    let opts = RepoOptions {
        suite: spec.suite.clone(),
        component: spec.component.clone(),
        architectures: vec![spec.arch.clone()],
        description: format!("drydock packages for {}", spec.board),
        date: Some(epoch),
        layout: DistsLayout::Plain,
        index_cache: false,
        ..RepoOptions::default()
    };
    let report = deb_repo::repo::update(dir, &[debs.path().to_path_buf()], &opts, key)
        .with_context(|| format!("indexing the repository in {}", dir.display()))?;
    debs.close()
        .context("removing the temporary package folder")?;
    let mut m = Manifest::new(
        KIND,
        &format!("deb-repo-{}", spec.board),
        env!("CARGO_PKG_VERSION"),
        &spec.arch,
        digest,
    );
    m.metadata = serde_json::json!({
        "suite": spec.suite,
        "component": spec.component,
        "architectures": report.architectures,
        "key_fingerprint": spec.key_fingerprint,
        "public_key": "key.asc",
        "packages": names,
        "release_sha256": report.release_sha256,
        "sources_list": format!(
            "deb [signed-by=/usr/share/keyrings/drydock.asc] http://HOST:PORT/ {} {}",
            spec.suite, spec.component
        ),
    });
    Ok(m)
}

/// Build (or reuse) the deb-repo artifact of `profile` and export it to `out`.
pub fn build(ctx: &Ctx, profile: &Profile, out: &Path) -> Result<Built> {
    let key_dir = ctx.store.aux_dir("deb-repo-key")?;
    let key = SigningKey::open_or_create(&key_dir, None).with_context(|| {
        format!(
            "opening the repository signing key in {}",
            key_dir.display()
        )
    })?;
    let spec = spec(profile, key.fingerprint());
    let ckey = CacheKey::new(KIND, &spec).tool("gpg", &artifact::cmd::tool_version("gpg", "gpg"));
    let digest = ckey.digest();
    let res = ctx
        .store
        .get_or_build(&ckey, |staging| build_into(&spec, &key, staging, &digest));
    key.close()?;
    let (entry, cached) = res?;
    super::exported(entry, cached, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn ctx(dir: &Path) -> Ctx {
        Ctx::new(Some(dir.to_path_buf()), 0).unwrap()
    }

    #[test]
    fn builds_signed_repo_and_reuses_it() {
        let t = tempfile::tempdir().unwrap();
        let ctx = ctx(&t.path().join("cache"));
        let profile = crate::profile::load("rpi-arm64").unwrap();
        let out = t.path().join("out");
        let b = build(&ctx, &profile, &out).unwrap();
        assert!(!b.cached);
        for f in [
            "dists/drydock/InRelease",
            "dists/drydock/Release.gpg",
            "dists/drydock/main/binary-arm64/Packages.xz",
            "key.asc",
            "manifest.json",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let packages =
            std::fs::read_to_string(out.join("dists/drydock/main/binary-arm64/Packages")).unwrap();
        assert!(
            packages.contains("Package: drydock-firstboot\n"),
            "{packages}"
        );
        assert!(
            packages.contains("Package: drydock-board-rpi-arm64\n"),
            "{packages}"
        );
        // The exported signature verifies with the exported key.
        let keyring = t.path().join("k.gpg");
        let o = Command::new("gpg")
            .args(["--batch", "--yes", "--dearmor", "-o"])
            .arg(&keyring)
            .arg(out.join("key.asc"))
            .output()
            .unwrap();
        assert!(o.status.success());
        let o = Command::new("gpgv")
            .arg("--keyring")
            .arg(&keyring)
            .arg(out.join("dists/drydock/InRelease"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The board package says which board it is.
        let mut found = false;
        for p in deb_repo::repo::find_debs(&out.join("pool")).unwrap() {
            let mut r = deb_repo::DebReader::open(&p).unwrap();
            if r.info().package() == "drydock-board-rpi-arm64" {
                assert_eq!(
                    r.extract_file("/etc/drydock/board").unwrap().unwrap(),
                    b"rpi-arm64\n"
                );
                assert_eq!(r.info().conffiles().len(), 2);
                found = true;
            }
        }
        assert!(found);
        // Same inputs: from the cache, same digest.
        let again = build(&ctx, &profile, &t.path().join("out2")).unwrap();
        assert!(again.cached);
        assert_eq!(again.entry.digest(), b.entry.digest());
        // Another board: another key.
        let q = crate::profile::load("qemu-arm64").unwrap();
        let other = build(&ctx, &q, &t.path().join("out3")).unwrap();
        assert_ne!(other.entry.digest(), b.entry.digest());
    }

    #[test]
    fn cache_key_covers_key_and_spec() {
        let p = crate::profile::load("rpi-arm64").unwrap();
        let a = CacheKey::new(KIND, &spec(&p, "AAAA")).digest();
        let b = CacheKey::new(KIND, &spec(&p, "BBBB")).digest();
        assert_ne!(a, b);
        let mut s = spec(&p, "AAAA");
        s.suite = "other".into();
        assert_ne!(CacheKey::new(KIND, &s).digest(), a);
    }

    #[test]
    fn cli_build_artifact_deb_repo() {
        use clap::Parser;
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let cli = crate::cli::Cli::try_parse_from([
            "drydock",
            "--cache-dir",
            t.path().join("cache").to_str().unwrap(),
            "build-artifact",
            "deb-repo",
            "--board",
            "rpi-arm64",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        crate::run(cli).unwrap();
        assert!(out.join("dists/drydock/InRelease").is_file());
        assert!(out.join("key.asc").is_file());
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["kind"], "deb-repo");
        assert_eq!(m["metadata"]["suite"], "drydock");
    }

    /// Both packages install into a dpkg root; the postinst enables the unit there (and only
    /// there: maintainer scripts honour DPKG_ROOT), and purging removes the link.
    #[test]
    fn packages_install_with_dpkg() {
        let t = tempfile::tempdir().unwrap();
        let profile = crate::profile::load("rpi-arm64").unwrap();
        let mut debs = Vec::new();
        for p in packages(&profile) {
            debs.push(
                p.builder(1_700_000_000)
                    .unwrap()
                    .write_into(t.path())
                    .unwrap(),
            );
        }
        let root = t.path().join("root");
        for d in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        let dpkg = |args: &[&str]| {
            let o = Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .args(["--log=/dev/null", "--force-script-chrootless"])
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let mut args = vec!["-i"];
        let paths: Vec<String> = debs.iter().map(|d| d.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        dpkg(&args);
        let link = root.join(WANTS_LINK.trim_start_matches('/'));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("/").join(UNIT_PATH)
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/drydock/board")).unwrap(),
            "rpi-arm64\n"
        );
        let script = root.join("usr/lib/drydock/firstboot");
        let o = Command::new("sh").arg("-n").arg(&script).output().unwrap();
        assert!(o.status.success());
        dpkg(&["--purge", "drydock-firstboot"]);
        assert!(std::fs::symlink_metadata(&link).is_err());
    }

    /// The first-boot script: loads every archive with the engine, records success and disables
    /// the service; a failed load leaves it enabled.
    #[test]
    fn firstboot_script_loads_and_disables() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        let preload = t.path().join("preload");
        let state = t.path().join("state");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&preload).unwrap();
        let log = t.path().join("log");
        let fake = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        fake(
            "docker",
            &format!(
                "echo \"docker $*\" >> {l}; case \"$3\" in *bad*) exit 1;; esac",
                l = log.display()
            ),
        );
        fake(
            "systemctl",
            &format!("echo \"systemctl $*\" >> {}", log.display()),
        );
        let script = t.path().join("firstboot");
        std::fs::write(&script, FIRSTBOOT_SCRIPT).unwrap();
        let run = || {
            Command::new("sh")
                .arg(&script)
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("DRYDOCK_PRELOAD_DIR", &preload)
                .env("DRYDOCK_STATE_DIR", &state)
                .output()
                .unwrap()
        };
        std::fs::write(preload.join("a.tar"), "x").unwrap();
        std::fs::write(preload.join("bad.tar"), "x").unwrap();
        let o = run();
        assert!(!o.status.success());
        let l = std::fs::read_to_string(&log).unwrap();
        assert!(
            l.contains(&format!(
                "docker load -i {}",
                preload.join("a.tar").display()
            )),
            "{l}"
        );
        assert!(!l.contains("systemctl"), "{l}");
        assert!(!state.join("firstboot.done").exists());
        std::fs::remove_file(preload.join("bad.tar")).unwrap();
        let o = run();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let l = std::fs::read_to_string(&log).unwrap();
        assert!(
            l.contains("systemctl disable drydock-firstboot.service"),
            "{l}"
        );
        assert!(state.join("firstboot.done").exists());
    }
}

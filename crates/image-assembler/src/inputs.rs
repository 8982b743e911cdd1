//! The consumed artifacts: opened by role, verified against their manifests before use.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use artifact::Manifest;

/// One input artifact folder and its manifest.
#[derive(Debug, Clone)]
pub struct Input {
    /// `rootfs`, `kernel`, `deb-repo`, `system`.
    pub role: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Input {
    /// Open an artifact folder; a missing folder or manifest is refused naming the role.
    pub fn open(role: &str, dir: &Path) -> Result<Input> {
        if !dir.is_dir() {
            bail!("the {role} artifact {} is missing", dir.display());
        }
        let manifest = Manifest::load(dir).with_context(|| {
            format!(
                "the {role} artifact {} has no usable manifest",
                dir.display()
            )
        })?;
        Ok(Input {
            role: role.into(),
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Re-hash every file against the manifest; any mismatch is refused naming the role, the
    /// artifact and the file.
    pub fn verify(&self) -> Result<()> {
        let problems = self.manifest.verify(&self.dir);
        if !problems.is_empty() {
            bail!(
                "the {} artifact {} is corrupt (its files do not match its manifest; `drydock cache verify` quarantines it): {}",
                self.role,
                self.dir.display(),
                problems.join("; ")
            );
        }
        Ok(())
    }

    /// The digest that produced it.
    pub fn digest(&self) -> &str {
        &self.manifest.inputs_digest
    }

    /// Listed files whose path ends with `suffix`, relative to the folder, sorted.
    pub fn files(&self, suffix: &str) -> Vec<String> {
        self.manifest
            .files
            .iter()
            .filter(|f| f.path.ends_with(suffix))
            .map(|f| f.path.clone())
            .collect()
    }

    /// The one listed file ending with `suffix`.
    pub fn one_file(&self, suffix: &str) -> Result<PathBuf> {
        match self.files(suffix).as_slice() {
            [one] => Ok(self.dir.join(one)),
            [] => bail!(
                "the {} artifact {} has no *{suffix} file",
                self.role,
                self.dir.display()
            ),
            many => bail!(
                "the {} artifact {} has several *{suffix} files: {}",
                self.role,
                self.dir.display(),
                many.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(dir: &Path) -> Input {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("rootfs-arm64.tar.zst"), b"tarball").unwrap();
        let mut m = Manifest::new("rootfs", "rootfs-arm64", "1", "arm64", "abc");
        m.add_files_from(dir).unwrap();
        m.write(dir).unwrap();
        Input::open("rootfs", dir).unwrap()
    }

    #[test]
    fn missing_and_corrupt_are_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let e = format!(
            "{:#}",
            Input::open("kernel", &d.path().join("nope")).unwrap_err()
        );
        assert!(
            e.contains("kernel artifact") && e.contains("nope") && e.contains("missing"),
            "{e}"
        );
        let a = artifact(&d.path().join("r"));
        a.verify().unwrap();
        assert!(a
            .one_file(".tar.zst")
            .unwrap()
            .ends_with("rootfs-arm64.tar.zst"));
        assert!(a.one_file(".deb").is_err());
        std::fs::write(a.dir.join("rootfs-arm64.tar.zst"), b"tarbalL").unwrap();
        let e = format!("{:#}", a.verify().unwrap_err());
        assert!(
            e.contains("rootfs artifact") && e.contains("rootfs-arm64.tar.zst: sha256"),
            "{e}"
        );
        std::fs::remove_file(a.dir.join("manifest.json")).unwrap();
        let e = format!("{:#}", Input::open("rootfs", &a.dir).unwrap_err());
        assert!(
            e.contains("rootfs artifact") && e.contains("manifest"),
            "{e}"
        );
    }
}

/// A signed APT repository inside a deb-repo artifact: where it is, its key, suite and
/// components, and the packages it offers for an architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The folder holding `dists/` and `pool/`.
    pub root: PathBuf,
    /// ASCII-armoured public key (`key.asc`).
    pub key: PathBuf,
    pub suite: String,
    pub components: Vec<String>,
}

impl Repo {
    /// Find the repository in an artifact: the `dists/<suite>/InRelease` it lists, and `key.asc`.
    pub fn find(a: &Input) -> Result<Repo> {
        let key = a.one_file("key.asc")?;
        let releases = a.files("/InRelease");
        let rel = match releases.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "the {} artifact {} has no dists/<suite>/InRelease (not a signed APT repository)",
                a.role,
                a.dir.display()
            ),
            many => bail!(
                "the {} artifact {} has several suites: {}",
                a.role,
                a.dir.display(),
                many.join(", ")
            ),
        };
        let (root_rel, rest) = rel.split_once("dists/").unwrap_or(("", &rel));
        let suite = rest.trim_end_matches("/InRelease").to_string();
        let release_path = a.dir.join(&rel);
        let text = std::fs::read_to_string(&release_path)
            .with_context(|| format!("reading {}", release_path.display()))?;
        let components: Vec<String> = text
            .lines()
            .find_map(|l| l.strip_prefix("Components:"))
            .map(|c| c.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        if components.is_empty() {
            bail!("{} names no Components", release_path.display());
        }
        Ok(Repo {
            root: a.dir.join(root_rel),
            key,
            suite,
            components,
        })
    }

    /// Package names offered for `arch` (its `binary-<arch>` and `binary-all` indexes), sorted.
    pub fn packages(&self, arch: &str) -> Result<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        for c in &self.components {
            for a in [arch, "all"] {
                let p = self
                    .root
                    .join("dists")
                    .join(&self.suite)
                    .join(c)
                    .join(format!("binary-{a}"))
                    .join("Packages");
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                for l in text.lines() {
                    if let Some(n) = l.strip_prefix("Package:") {
                        names.insert(n.trim().to_string());
                    }
                }
            }
        }
        Ok(names.into_iter().collect())
    }
}

#[cfg(test)]
mod repo_tests {
    use super::*;

    #[test]
    fn finds_suite_components_and_packages() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("dists/drydock/main/binary-arm64")).unwrap();
        std::fs::create_dir_all(r.join("dists/drydock/main/binary-all")).unwrap();
        std::fs::write(
            r.join("dists/drydock/InRelease"),
            "-----BEGIN PGP SIGNED MESSAGE-----\nSuite: drydock\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            r.join("dists/drydock/main/binary-arm64/Packages"),
            "Package: drydock-board-rpi\nVersion: 1\n\nPackage: drydock-firstboot\nVersion: 1\n",
        )
        .unwrap();
        std::fs::write(
            r.join("dists/drydock/main/binary-all/Packages"),
            "Package: drydock-firstboot\nVersion: 1\n",
        )
        .unwrap();
        std::fs::write(r.join("key.asc"), "KEY").unwrap();
        let mut m = Manifest::new("deb-repo", "r", "1", "all", "d");
        m.add_files_from(r).unwrap();
        m.write(r).unwrap();
        let repo = Repo::find(&Input::open("deb-repo", r).unwrap()).unwrap();
        assert_eq!(repo.suite, "drydock");
        assert_eq!(repo.components, vec!["main"]);
        assert_eq!(repo.root, r.to_path_buf());
        assert_eq!(
            repo.packages("arm64").unwrap(),
            vec!["drydock-board-rpi", "drydock-firstboot"]
        );
    }
}

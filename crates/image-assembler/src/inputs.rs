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

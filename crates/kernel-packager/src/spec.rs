//! The kernel builder's spec: what the orchestrator derives from a board profile. Not serde input
//! (profiles are); serialised only into the cache key.

use std::path::PathBuf;

use serde::Serialize;

use crate::mirror::{Mirror, Request};
use crate::readiness::Level;

/// Everything that decides the kernel artifact.
#[derive(Debug, Clone, Serialize)]
pub struct KernelSpec {
    /// Artifact name, e.g. `kernel-rpi-arm64`.
    pub name: String,
    /// Board name; goes into package versions and the board package's name.
    pub board: String,
    /// Debian architecture.
    pub arch: String,
    pub mirror: Mirror,
    pub mode: Mode,
    /// drydock's own package with the board's boot settings, when the board needs one.
    pub board_package: Option<BoardPackage>,
    /// Level the kernel config must meet; `None` reports without failing.
    pub readiness: Option<Level>,
}

/// Where the kernel comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Debian's packages, fetched through the signed chain.
    Upstream { packages: Vec<Request> },
    /// A kernel tree cross-compiled with a base config and fragments.
    Source(SourceSpec),
}

/// A source build.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSpec {
    pub tree: Tree,
    /// Base config target: `defconfig`, `tinyconfig`, `allnoconfig`, ...
    pub defconfig: String,
    /// Fragments in order (later ones win).
    pub fragments: Vec<Fragment>,
}

/// The kernel tree of a source build.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tree {
    /// Debian's `linux-source` package (or the named one, e.g. `linux-source-6.12=6.12.107-1`).
    Debian(Request),
    /// A kernel tree on disk (left untouched: the build is out of tree).
    Path(PathBuf),
}

/// A config fragment: a name (shipped fragment or file stem) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub name: String,
    pub text: String,
}

/// The fragments shipped with drydock, by name.
pub const SHIPPED_FRAGMENTS: &[(&str, &str)] = &[
    ("containers", include_str!("../fragments/containers.config")),
    ("modules", include_str!("../fragments/modules.config")),
];

/// A shipped fragment by name.
pub fn shipped_fragment(name: &str) -> Option<Fragment> {
    SHIPPED_FRAGMENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, t)| Fragment {
            name: n.to_string(),
            text: t.to_string(),
        })
}

/// drydock's board package: small files that set up booting on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardPackage {
    /// Package name, e.g. `drydock-kernel-config-rpi-arm64`.
    pub name: String,
    pub description: String,
    pub files: Vec<BoardFile>,
}

/// One file of the board package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardFile {
    /// Absolute path in the installed system.
    pub path: String,
    pub content: String,
    /// Under `/etc`: a conffile the user may edit.
    pub conffile: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::{check, Level};
    use crate::KernelConfig;

    /// The containers fragment alone asks for every option the docker level requires (on any
    /// base config, what Kconfig keeps of it is checked after olddefconfig).
    #[test]
    fn containers_fragment_covers_the_docker_level() {
        let f = shipped_fragment("containers").unwrap();
        let cfg = KernelConfig::parse_fragment(&f.text, "containers").unwrap();
        let r = check(&cfg, Level::Docker);
        assert!(r.ok, "{}", r.table());
        assert!(shipped_fragment("modules").is_some());
        assert!(shipped_fragment("nope").is_none());
    }
}
